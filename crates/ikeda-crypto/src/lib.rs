//! Crypto suites for ikeda.
//!
//! Protocol crates name no crypto library: they use the types here. Fast
//! AEAD and HMAC come from aws-lc-rs; AES-CBC without padding (ESP pads for
//! itself, RFC 4303 §2.4) is not exposed by aws-lc-rs, so it comes from
//! RustCrypto's `aes`/`cbc` (AES-NI accelerated).
//!
//! Key material is held in [`SecretBytes`] (zeroized on drop, redacted in
//! `Debug`); the library key schedules are zeroized by their own `Drop`.

pub mod esp;
pub mod ike;
pub mod secret;

pub use esp::{EspAlgorithm, EspCipher, EspCryptoError, EspInteg};
pub use secret::SecretBytes;

/// Fill `out` from the system CSPRNG (for the daemon and tools; the
/// protocol cores take randomness from their caller).
pub fn random_fill(out: &mut [u8]) -> Result<(), &'static str> {
    aws_lc_rs::rand::fill(out).map_err(|_| "system random number generator failed")
}
