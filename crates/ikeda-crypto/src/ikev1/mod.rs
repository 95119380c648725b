//! The IKEv1 crypto layer (RFC 2409): pure functions, no I/O, no clock, no
//! randomness (IKEv1's IVs are derived, not drawn; nonces and key exchange
//! private keys come from [`crate::ike::Rng`] through the engine).
//!
//! | concern | RFC | here |
//! |---|---|---|
//! | hash and PRF (HMAC of the negotiated hash) | RFC 2409 §4, App. A | [`Hash`](enum@Hash) |
//! | phase-1 cipher, CBC without padding | RFC 2409 App. A, RFC 2451, RFC 3602 | [`Cipher`] |
//! | message padding | RFC 2409 §5.3 | [`pad`] |
//! | SKEYID, SKEYID_d/a/e, Ka, first IV | RFC 2409 §5, App. B | [`phase1_keys_psk`], [`Phase1Keys`] |
//! | HASH_I / HASH_R | RFC 2409 §5 | [`hash_i`], [`hash_r`] |
//! | phase-2 / informational IV | RFC 2409 App. B | [`phase2_iv`] |
//! | Quick Mode HASH(1..3), informational HASH | RFC 2409 §5.5, §5.7 | [`qm_hash1`], [`qm_hash2`], [`qm_hash3`] |
//! | KEYMAT | RFC 2409 §5.5 | [`keymat`] |
//! | NAT-D | RFC 3947 §3.2 | [`nat_d`] |
//!
//! Notation as in the RFC: `Ni_b`, `Nr_b`, `SAi_b`, `IDii_b` are payload
//! *bodies* (without the 4-byte generic payload header); `CKY-I`/`CKY-R`
//! are the 8-byte cookies, big-endian as on the wire; `M-ID` the 4-byte
//! message ID.
//!
//! IV bookkeeping the engine does (RFC 2409 App. B): the first phase-1 IV is
//! [`Phase1Keys::iv`]; every later phase-1 message is encrypted with the
//! last ciphertext block of the previous one; each phase-2 or informational
//! exchange starts from [`phase2_iv`] over the last phase-1 block and then
//! chains the same way within its M-ID. strongSwan logs each as
//! "next IV for MID n".
//!
//! The vectors in `strongswan_vectors` were captured from two strongSwan
//! 5.9.8 charons negotiating Main Mode + Quick Mode (see that module).

mod keys;
#[cfg(test)]
mod strongswan_vectors;

pub use keys::{
    hash_i, hash_r, keymat, nat_d, phase1_keys_psk, phase2_iv, qm_hash1, qm_hash2, qm_hash3, Phase1Input, Phase1Keys,
};

use aws_lc_rs::digest;
use core::fmt;
use md5::Digest as _;

use crate::ike::{Encr, IkeCryptoError, Integ, Prf};

/// Phase-1 hash algorithm (RFC 2409 App. A, Hash Algorithm class: 1 MD5,
/// 2 SHA, 4 SHA2-256, 5 SHA2-384, 6 SHA2-512 (RFC 4868 §3 registers 4-6)).
/// The PRF is its HMAC (RFC 2409 §4: "the HMAC version of the negotiated
/// hash algorithm is used as a pseudo-random function" when no PRF
/// attribute is negotiated, which strongSwan never does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub const ALL: [Hash; 5] = [Hash::Md5, Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512];

    /// The Hash Algorithm attribute value (class 2).
    pub fn attr_value(self) -> u16 {
        match self {
            Hash::Md5 => 1,
            Hash::Sha1 => 2,
            Hash::Sha256 => 4,
            Hash::Sha384 => 5,
            Hash::Sha512 => 6,
        }
    }

    pub fn from_attr_value(v: u16) -> Option<Hash> {
        Hash::ALL.into_iter().find(|h| h.attr_value() == v)
    }

    /// The hash whose HMAC is `p` (an IKE proposal's PRF names the IKEv1
    /// hash: `aes128-sha256-modp2048` means SHA2-256).
    pub fn from_prf(p: Prf) -> Hash {
        match p {
            Prf::HmacMd5 => Hash::Md5,
            Prf::HmacSha1 => Hash::Sha1,
            Prf::HmacSha256 => Hash::Sha256,
            Prf::HmacSha384 => Hash::Sha384,
            Prf::HmacSha512 => Hash::Sha512,
        }
    }

    /// The hash an integrity algorithm truncates (strongSwan maps an IKEv1
    /// proposal's integrity keyword to the Hash attribute this way).
    pub fn from_integ(i: Integ) -> Hash {
        match i {
            Integ::HmacMd5_96 => Hash::Md5,
            Integ::HmacSha1_96 => Hash::Sha1,
            Integ::HmacSha256_128 => Hash::Sha256,
            Integ::HmacSha384_192 => Hash::Sha384,
            Integ::HmacSha512_256 => Hash::Sha512,
        }
    }

    /// The PRF: HMAC with this hash.
    pub fn to_prf(self) -> Prf {
        match self {
            Hash::Md5 => Prf::HmacMd5,
            Hash::Sha1 => Prf::HmacSha1,
            Hash::Sha256 => Prf::HmacSha256,
            Hash::Sha384 => Prf::HmacSha384,
            Hash::Sha512 => Prf::HmacSha512,
        }
    }

    /// Output length in bytes (of the hash and of its HMAC).
    pub fn output_len(self) -> usize {
        match self {
            Hash::Md5 => 16,
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// True for MD5 (RFC 8247 §2.3 / RFC 6151): only with `allow_insecure`.
    pub fn is_insecure(self) -> bool {
        matches!(self, Hash::Md5)
    }

    /// The plain hash of `data[0] | data[1] | ...` (IVs, NAT-D; not a MAC).
    pub fn hash(self, data: &[&[u8]]) -> Vec<u8> {
        let alg = match self {
            Hash::Md5 => {
                let mut h = md5::Md5::new();
                for d in data {
                    h.update(d);
                }
                return h.finalize().to_vec();
            }
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        };
        let mut ctx = digest::Context::new(alg);
        for d in data {
            ctx.update(d);
        }
        ctx.finish().as_ref().to_vec()
    }

    /// `prf(key, data[0] | data[1] | ...)`: HMAC with this hash, the key
    /// taken whole (RFC 2104 §2). Outputs that are keys (SKEYID, KEYMAT)
    /// belong in [`SecretBytes`](crate::SecretBytes).
    pub fn prf(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        self.to_prf().prf_parts(key, data)
    }

    /// strongSwan's name for the PRF it derives from this hash
    /// (`HMAC_MD5`, `HMAC_SHA1`, `HMAC_SHA2_256`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Hash::Md5 => "HMAC_MD5",
            Hash::Sha1 => "HMAC_SHA1",
            Hash::Sha256 => "HMAC_SHA2_256",
            Hash::Sha384 => "HMAC_SHA2_384",
            Hash::Sha512 => "HMAC_SHA2_512",
        }
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Phase-1 cipher (RFC 2409 App. A, Encryption Algorithm class: 1 DES-CBC,
/// 5 3DES-CBC, 7 AES-CBC (RFC 3602 §5.3) with the Key Length attribute
/// (class 14) in bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    DesCbc,
    TripleDesCbc,
    /// `key_bits` 128 or 256.
    AesCbc {
        key_bits: u16,
    },
}

impl Cipher {
    /// The Encryption Algorithm attribute value (class 1).
    pub fn attr_value(self) -> u16 {
        match self {
            Cipher::DesCbc => 1,
            Cipher::TripleDesCbc => 5,
            Cipher::AesCbc { .. } => 7,
        }
    }

    /// The Key Length attribute (class 14) to send: `Some(bits)` for AES,
    /// `None` for the fixed-length DES ciphers.
    pub fn key_length_attr(self) -> Option<u16> {
        match self {
            Cipher::AesCbc { key_bits } => Some(key_bits),
            Cipher::DesCbc | Cipher::TripleDesCbc => None,
        }
    }

    /// From the Encryption Algorithm and Key Length attributes of a
    /// received transform. AES needs the Key Length (RFC 3602 §5.3: "the
    /// Key Length attribute MUST be specified"); the DES ciphers have a
    /// fixed key and must not carry one. AES-192 is not implemented.
    pub fn from_attrs(enc: u16, key_len: Option<u16>) -> Result<Cipher, IkeCryptoError> {
        match (enc, key_len) {
            (1, None) => Ok(Cipher::DesCbc),
            (5, None) => Ok(Cipher::TripleDesCbc),
            (7, Some(b @ (128 | 256))) => Ok(Cipher::AesCbc { key_bits: b }),
            _ => Err(IkeCryptoError::Unsupported {
                transform: "IKEv1 Encryption Algorithm",
                id: enc,
            }),
        }
    }

    /// From an IKE proposal's cipher. AEAD ciphers are refused: IKEv1
    /// phase 1 has no AEAD (strongSwan strips them from IKEv1 proposals).
    pub fn from_encr(e: Encr) -> Result<Cipher, IkeCryptoError> {
        match e {
            Encr::AesCbc { key_bits } => Ok(Cipher::AesCbc { key_bits }),
            Encr::TripleDesCbc => Ok(Cipher::TripleDesCbc),
            Encr::DesCbc => Ok(Cipher::DesCbc),
            Encr::AesGcm16 { .. } | Encr::ChaCha20Poly1305 => Err(IkeCryptoError::Unsupported {
                transform: "ENCR (AEAD is not an IKEv1 phase-1 cipher)",
                id: e.transform_id(),
            }),
        }
    }

    /// The same cipher as an IKEv2 transform (and ESP) [`Encr`].
    pub fn to_encr(self) -> Encr {
        match self {
            Cipher::AesCbc { key_bits } => Encr::AesCbc { key_bits },
            Cipher::TripleDesCbc => Encr::TripleDesCbc,
            Cipher::DesCbc => Encr::DesCbc,
        }
    }

    /// Key length in bytes: what [`Phase1Keys::enc_key`] is cut to.
    pub fn key_len(self) -> usize {
        self.to_encr().key_len()
    }

    /// Block (and IV) length in bytes.
    pub fn block_len(self) -> usize {
        self.to_encr().block_len()
    }

    /// True for single DES: only with `allow_insecure`.
    pub fn is_insecure(self) -> bool {
        matches!(self, Cipher::DesCbc)
    }

    /// strongSwan's name (`AES_CBC-128`, `3DES_CBC`, `DES_CBC`).
    pub fn name(self) -> String {
        self.to_encr().strongswan_name()
    }

    /// CBC-encrypt whole blocks in place: no padding is added (the engine
    /// pads with [`pad`], RFC 2409 §5.3). `key.len()` must be
    /// [`key_len`](Cipher::key_len), `iv.len()` the block length and
    /// `data.len()` a multiple of it, else `Err`. The next IV is the last
    /// ciphertext block (RFC 2409 App. B).
    pub fn encrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), IkeCryptoError> {
        self.to_encr().cbc_encrypt(key, iv, data)
    }

    /// CBC-decrypt whole blocks in place; padding is left for the caller
    /// (the ISAKMP payload chain says where the payloads end). A ciphertext
    /// that is not whole blocks is `Malformed` (the peer's fault).
    pub fn decrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), IkeCryptoError> {
        self.to_encr().cbc_decrypt(key, iv, data)
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// RFC 2409 §5.3 padding, appended to `plain`: pad to a multiple of
/// `block_len`; "All padding bytes, except for the last one, contain 0x00.
/// The last byte of the padding contains the number of the padding bytes
/// used, excluding the last one." Always at least one byte, so an
/// already-aligned message gets a whole block.
///
/// Receivers must not rely on it: strongSwan 5.9 pads with zeros only (and
/// also a whole block when aligned; see the captured vectors); the ISAKMP
/// header's length and the payload chain delimit the payloads.
pub fn pad(block_len: usize, plain: &mut Vec<u8>) {
    let block_len = block_len.max(1);
    let n = block_len - plain.len() % block_len;
    plain.resize(plain.len() + n - 1, 0);
    // n <= block_len <= 16 for every cipher here.
    plain.push(u8::try_from(n - 1).unwrap_or(u8::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::testutil::h;

    #[test]
    fn hash_attributes_and_lengths() {
        for hh in Hash::ALL {
            assert_eq!(Hash::from_attr_value(hh.attr_value()), Some(hh));
            assert_eq!(Hash::from_prf(hh.to_prf()), hh);
            assert_eq!(hh.hash(&[b"abc"]).len(), hh.output_len());
            assert_eq!(hh.prf(b"k", &[b"abc"]).len(), hh.output_len());
        }
        assert_eq!(Hash::from_attr_value(3), None); // Tiger
        assert_eq!(Hash::from_integ(Integ::HmacSha256_128), Hash::Sha256);
        assert_eq!(Hash::from_integ(Integ::HmacMd5_96), Hash::Md5);
        assert_eq!(Hash::Sha256.name(), "HMAC_SHA2_256");
        let insecure: Vec<Hash> = Hash::ALL.into_iter().filter(|h| h.is_insecure()).collect();
        assert_eq!(insecure, [Hash::Md5]);
    }

    /// RFC 1321 App. A.5 ("abc") and FIPS 180-2 ("abc"); HMAC from RFC 2202.
    #[test]
    fn hash_known_answers() {
        assert_eq!(Hash::Md5.hash(&[b"a", b"bc"]), h("900150983cd24fb0d6963f7d28e17f72"));
        assert_eq!(
            Hash::Sha1.hash(&[b"abc"]),
            h("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            Hash::Sha256.hash(&[b"ab", b"c"]),
            h("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            Hash::Md5.prf(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            h("750c783e6ab0b503eaa86e310a5db738")
        );
    }

    #[test]
    fn cipher_attributes() {
        for c in [
            Cipher::DesCbc,
            Cipher::TripleDesCbc,
            Cipher::AesCbc { key_bits: 128 },
            Cipher::AesCbc { key_bits: 256 },
        ] {
            assert_eq!(Cipher::from_attrs(c.attr_value(), c.key_length_attr()), Ok(c));
            assert_eq!(Cipher::from_encr(c.to_encr()), Ok(c));
        }
        assert!(Cipher::from_attrs(7, None).is_err(), "AES needs a Key Length");
        assert!(Cipher::from_attrs(7, Some(192)).is_err());
        assert!(Cipher::from_attrs(5, Some(192)).is_err());
        assert!(Cipher::from_attrs(2, None).is_err()); // IDEA
        assert!(Cipher::from_encr(Encr::AesGcm16 { key_bits: 128 }).is_err());
        assert!(Cipher::from_encr(Encr::ChaCha20Poly1305).is_err());
        assert_eq!(
            (Cipher::TripleDesCbc.key_len(), Cipher::TripleDesCbc.block_len()),
            (24, 8)
        );
        assert_eq!((Cipher::DesCbc.key_len(), Cipher::DesCbc.block_len()), (8, 8));
        let aes = Cipher::AesCbc { key_bits: 256 };
        assert_eq!(
            (aes.key_len(), aes.block_len(), aes.key_length_attr()),
            (32, 16, Some(256))
        );
        assert!(Cipher::DesCbc.is_insecure() && !Cipher::TripleDesCbc.is_insecure());
        assert_eq!(Cipher::TripleDesCbc.to_string(), "3DES_CBC");
    }

    /// NIST SP 800-38A F.2.1 (AES-128-CBC) and a 3DES/DES known answer from
    /// python `cryptography` (decrepit TripleDES; DES as 3DES with K1=K2=K3):
    ///
    /// ```text
    /// k = bytes(range(24)); iv = bytes(range(0xf0, 0xf8)); p = bytes(range(16))
    /// Cipher(TripleDES(k), modes.CBC(iv)).encryptor().update(p)
    /// Cipher(TripleDES(bytes(range(8)) * 3), modes.CBC(iv)).encryptor().update(p)
    /// ```
    #[test]
    fn cbc_known_answers_and_roundtrip() {
        let aes = Cipher::AesCbc { key_bits: 128 };
        let key = h("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = h("000102030405060708090a0b0c0d0e0f");
        let mut data = h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        aes.encrypt(&key, &iv, &mut data).unwrap();
        assert_eq!(
            data,
            h("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2")
        );
        aes.decrypt(&key, &iv, &mut data).unwrap();
        assert_eq!(
            data,
            h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
        );

        let iv8: Vec<u8> = (0xf0..0xf8).collect();
        let plain: Vec<u8> = (0..16).collect();
        let k24: Vec<u8> = (0..24).collect();
        let mut d = plain.clone();
        Cipher::TripleDesCbc.encrypt(&k24, &iv8, &mut d).unwrap();
        assert_eq!(d, h(TDES_KAT));
        Cipher::TripleDesCbc.decrypt(&k24, &iv8, &mut d).unwrap();
        assert_eq!(d, plain);
        let k8: Vec<u8> = (0..8).collect();
        let mut d = plain.clone();
        Cipher::DesCbc.encrypt(&k8, &iv8, &mut d).unwrap();
        assert_eq!(d, h(DES_KAT));
        Cipher::DesCbc.decrypt(&k8, &iv8, &mut d).unwrap();
        assert_eq!(d, plain);
    }

    const TDES_KAT: &str = "c1b1db088ea4b3ae16bd2982c68094f9";
    const DES_KAT: &str = "952686b2787a4a012c2b87cd8ca3b579";

    #[test]
    fn cbc_misuse_is_an_error_not_a_panic() {
        let c = Cipher::TripleDesCbc;
        let k = [0x11u8; 24];
        let mut seven = [0u8; 7];
        assert_eq!(
            c.decrypt(&k, &[0u8; 8], &mut seven),
            Err(IkeCryptoError::Malformed("ciphertext is not a whole number of blocks"))
        );
        assert!(c.encrypt(&k, &[0u8; 16], &mut [0u8; 8]).is_err(), "IV of AES length");
        assert!(matches!(
            c.encrypt(&k[..16], &[0u8; 8], &mut [0u8; 8]),
            Err(IkeCryptoError::BadKeyLength { need: 24, have: 16, .. })
        ));
        let mut empty = [0u8; 0];
        assert_eq!(c.encrypt(&k, &[0u8; 8], &mut empty), Ok(()));
        let aes = Cipher::AesCbc { key_bits: 256 };
        assert!(aes.encrypt(&[0u8; 32], &[0u8; 16], &mut [0u8; 17]).is_err());
    }

    #[test]
    fn rfc2409_padding() {
        let mut v = vec![0xaa; 5];
        pad(8, &mut v);
        assert_eq!(v, [0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0, 0, 2]);
        let mut v = vec![0xaa; 8];
        pad(8, &mut v);
        assert_eq!(v.len(), 16, "aligned: a whole block");
        assert_eq!(&v[8..], [0, 0, 0, 0, 0, 0, 0, 7]);
        let mut v = vec![0xaa; 15];
        pad(16, &mut v);
        assert_eq!(v.len(), 16);
        assert_eq!(v[15], 0, "one byte of padding: it counts zero others");
        for len in 0..40 {
            for bl in [8, 16] {
                let mut v = vec![1u8; len];
                pad(bl, &mut v);
                assert_eq!(v.len() % bl, 0);
                assert!(v.len() > len && v.len() <= len + bl);
                assert_eq!(usize::from(v[v.len() - 1]) + 1, v.len() - len);
            }
        }
    }
}

/// Compare a received HASH (HASH_I, HASH_R, HASH(1..3), an Informational
/// HASH(1)) with the one we computed, in constant time: a `!=` would leak
/// through its timing how many leading octets of a forgery were right.
/// Different lengths are a mismatch. The same check as every ICV's.
pub use crate::ct_eq as hash_matches;

#[cfg(test)]
mod hash_matches_tests {
    #[test]
    fn equal_only_when_equal() {
        assert!(super::hash_matches(&[1, 2, 3], &[1, 2, 3]));
        assert!(!super::hash_matches(&[1, 2, 3], &[1, 2, 4]));
        assert!(!super::hash_matches(&[1, 2, 3], &[1, 2]));
        assert!(!super::hash_matches(&[], &[0]));
    }
}
