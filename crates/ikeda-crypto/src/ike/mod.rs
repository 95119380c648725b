//! The IKEv2 crypto layer (RFC 7296): pure functions and small keyed structs,
//! no I/O, no clock, no hidden randomness.
//!
//! | concern | RFC | here |
//! |---|---|---|
//! | PRF, prf+ | RFC 7296 §2.13, RFC 2104, RFC 4868 | [`Prf`] |
//! | IKE SA integrity | RFC 7296 §3.3.2, RFC 2404, RFC 4868 | [`Integ`] |
//! | SK / SKF payload protection | RFC 7296 §3.14, RFC 5282, RFC 7634, RFC 7383 | [`Encr`], [`SkCipher`] |
//! | key exchange | RFC 3526, RFC 5903, RFC 8031, RFC 6989 | [`DhGroup`], [`KeyExchange`] |
//! | SKEYSEED, SK_*, KEYMAT | RFC 7296 §2.14, §2.17, §2.18 | [`IkeKeys`], [`ChildKeys`] |
//! | shared-key AUTH | RFC 7296 §2.15 | [`psk_auth`], [`verify_psk_auth`] |
//! | proposals | strongSwan proposal keywords | [`IkeProposal`], [`ChildProposal`] |
//!
//! Randomness comes in through [`Rng`] so the IKE engine can be replayed
//! exactly in a simulator: [`SystemRng`] for the daemon, [`SeededRng`] for
//! tests and simulations.
//!
//! Transform numbers are defined here as small enums with
//! `transform_id()`/`from_transform_id()` (the IANA "IKEv2 Transform
//! Attribute" registries) so this crate stays independent of the wire crate;
//! the engine maps them to and from its wire newtypes.

mod dh;
mod encr;
mod error;
mod integ;
mod kdf;
mod prf;
mod proposal;
mod rng;

pub use dh::{DhGroup, KeyExchange};
pub use encr::{Encr, SkCipher};
pub use error::IkeCryptoError;
pub use integ::Integ;
pub use kdf::{
    psk_auth, signed_octets, verify_psk_auth, ChildKeys, DirectionKeys, IkeKeys, IkeSuite, Role, KEY_PAD_FOR_IKEV2,
};
pub use prf::Prf;
pub use proposal::{
    ike_auth_proposals, parse_esp_proposals, parse_ike_proposals, ChildProposal, ChildSuite, Esn, IkeProposal,
    ProposalError, Transform, TransformType,
};
pub use rng::{Rng, SeededRng, SystemRng};

#[cfg(test)]
pub(crate) mod testutil {
    /// Hex to bytes; whitespace ignored. Test helper only.
    pub fn h(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        assert!(digits.len().is_multiple_of(2), "odd hex");
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }
}
