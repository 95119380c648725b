//! Integrity algorithms for the IKE SA (RFC 7296 §3.3.2): HMAC truncated
//! to half (SHA-2, RFC 4868 §2) or to 96 bits (SHA-1, RFC 2404).

use aws_lc_rs::{constant_time, hmac};
use core::fmt;

use super::IkeCryptoError;

/// IKEv2 Transform Type 3, Integrity Algorithm Transform IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integ {
    /// AUTH_HMAC_SHA1_96 (2), RFC 2404.
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12), RFC 4868.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (13), RFC 4868.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (14), RFC 4868.
    HmacSha512_256,
}

impl Integ {
    pub const ALL: [Integ; 4] = [
        Integ::HmacSha1_96,
        Integ::HmacSha256_128,
        Integ::HmacSha384_192,
        Integ::HmacSha512_256,
    ];

    pub fn transform_id(self) -> u16 {
        match self {
            Integ::HmacSha1_96 => 2,
            Integ::HmacSha256_128 => 12,
            Integ::HmacSha384_192 => 13,
            Integ::HmacSha512_256 => 14,
        }
    }

    pub fn from_transform_id(id: u16) -> Option<Integ> {
        Integ::ALL.into_iter().find(|i| i.transform_id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            Integ::HmacSha1_96 => "AUTH_HMAC_SHA1_96",
            Integ::HmacSha256_128 => "AUTH_HMAC_SHA2_256_128",
            Integ::HmacSha384_192 => "AUTH_HMAC_SHA2_384_192",
            Integ::HmacSha512_256 => "AUTH_HMAC_SHA2_512_256",
        }
    }

    /// strongSwan's proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Integ::HmacSha1_96 => "sha1",
            Integ::HmacSha256_128 => "sha256",
            Integ::HmacSha384_192 => "sha384",
            Integ::HmacSha512_256 => "sha512",
        }
    }

    /// Key length (SK_ai/SK_ar): the hash output length (RFC 2404 §3,
    /// RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }

    /// Length of the truncated checksum carried in the message.
    pub fn icv_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 12,
            Integ::HmacSha256_128 => 16,
            Integ::HmacSha384_192 => 24,
            Integ::HmacSha512_256 => 32,
        }
    }

    pub(crate) fn hmac(self) -> hmac::Algorithm {
        match self {
            Integ::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integ::HmacSha256_128 => hmac::HMAC_SHA256,
            Integ::HmacSha384_192 => hmac::HMAC_SHA384,
            Integ::HmacSha512_256 => hmac::HMAC_SHA512,
        }
    }

    fn check_key(self, key: &[u8]) -> Result<(), IkeCryptoError> {
        if key.len() != self.key_len() {
            return Err(IkeCryptoError::BadKeyLength {
                what: "integrity",
                need: self.key_len(),
                have: key.len(),
            });
        }
        Ok(())
    }

    /// The truncated checksum over `data[0] | data[1] | ...`.
    pub fn compute(self, key: &[u8], data: &[&[u8]]) -> Result<Vec<u8>, IkeCryptoError> {
        self.check_key(key)?;
        Ok(self.compute_with(&hmac::Key::new(self.hmac(), key), data))
    }

    /// Verify `icv` in constant time.
    pub fn verify(self, key: &[u8], data: &[&[u8]], icv: &[u8]) -> Result<(), IkeCryptoError> {
        self.check_key(key)?;
        self.verify_with(&hmac::Key::new(self.hmac(), key), data, icv)
    }

    pub(crate) fn compute_with(self, key: &hmac::Key, data: &[&[u8]]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(key);
        for d in data {
            ctx.update(d);
        }
        ctx.sign().as_ref()[..self.icv_len()].to_vec()
    }

    pub(crate) fn verify_with(self, key: &hmac::Key, data: &[&[u8]], icv: &[u8]) -> Result<(), IkeCryptoError> {
        let want = self.compute_with(key, data);
        constant_time::verify_slices_are_equal(&want, icv).map_err(|_| IkeCryptoError::IntegrityCheckFailed)
    }
}

impl fmt::Display for Integ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::testutil::h;

    /// RFC 4868 §2.7.2 style: "Hi There" under 0x0b repeated key_len times
    /// (the keys sized as IKE uses them), truncated to the ICV length (the
    /// leftmost bytes, RFC 4868 §2.1.2, RFC 2404 §2).
    /// Values: python3 -c "import hmac,hashlib; print(hmac.new(b'\x0b'*32,
    /// b'Hi There', hashlib.sha256).hexdigest())" and likewise.
    #[test]
    fn truncated_checksums() {
        let want = [
            "b617318655057264e28bc0b6",
            "198a607eb44bfbc69903a0f1cf2bbdc5",
            "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973",
            "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8",
        ];
        for (integ, w) in Integ::ALL.into_iter().zip(want) {
            let key = vec![0x0b; integ.key_len()];
            let icv = integ.compute(&key, &[b"Hi ", b"There"]).unwrap();
            assert_eq!(icv, h(w), "{integ}");
            assert_eq!(icv.len(), integ.icv_len());
            integ.verify(&key, &[b"Hi There"], &icv).unwrap();
            let mut bad = icv.clone();
            bad[0] ^= 1;
            assert_eq!(
                integ.verify(&key, &[b"Hi There"], &bad),
                Err(IkeCryptoError::IntegrityCheckFailed)
            );
            assert_eq!(
                integ.verify(&key, &[b"Hi There"], &icv[1..]),
                Err(IkeCryptoError::IntegrityCheckFailed)
            );
            assert!(matches!(
                integ.compute(&key[1..], &[b"x"]),
                Err(IkeCryptoError::BadKeyLength { .. })
            ));
        }
    }

    #[test]
    fn transform_ids_roundtrip() {
        for i in Integ::ALL {
            assert_eq!(Integ::from_transform_id(i.transform_id()), Some(i));
        }
        assert_eq!(Integ::from_transform_id(1), None); // AUTH_HMAC_MD5_96
    }
}
