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
pub mod ikev1;
pub mod secret;

pub use esp::{EspAlgorithm, EspCipher, EspCryptoError, EspInteg};
pub use secret::SecretBytes;

/// Fill `out` from the system CSPRNG (for the daemon and tools; the
/// protocol cores take randomness from their caller).
pub fn random_fill(out: &mut [u8]) -> Result<(), &'static str> {
    aws_lc_rs::rand::fill(out).map_err(|_| "system random number generator failed")
}

/// Compare two byte strings in constant time (for the length of the
/// shorter; unequal lengths are unequal): the same aws-lc-rs check the ICVs
/// use, for every other secret-derived value a peer sends back (COOKIEs,
/// cached requests), so that the time taken tells an attacker nothing.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// SHA-1 over the concatenation of `parts`: the NAT detection hash of
/// RFC 7296 §2.23 (SHA-1(SPIi | SPIr | IP | Port)), not a MAC.
pub fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// SHA-256 over the concatenation of `parts`: a one-way name for a key
/// (the state file of a manually keyed SA names its key by this, never by
/// the key itself), not a MAC.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod ct_eq_tests {
    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(super::ct_eq(b"abc", b"abc"));
        assert!(super::ct_eq(b"", b""));
        assert!(!super::ct_eq(b"abc", b"abd"));
        assert!(!super::ct_eq(b"abc", b"ab"));
    }
}

#[cfg(test)]
mod sha1_tests {
    #[test]
    fn fips_180_abc() {
        // FIPS 180-2 Appendix A.1: SHA-1("abc").
        let d = super::sha1(&[b"a", b"bc"]);
        assert_eq!(
            d,
            [
                0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50, 0xc2, 0x6c, 0x9c,
                0xd0, 0xd8, 0x9d
            ]
        );
    }
}
