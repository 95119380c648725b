//! Integrity algorithms for the IKE SA (RFC 7296 §3.3.2): HMAC truncated
//! to half (SHA-2, RFC 4868 §2) or to 96 bits (MD5, RFC 2403; SHA-1,
//! RFC 2404).

use aws_lc_rs::constant_time;
use core::fmt;

use super::prf::MacKey;
use super::{IkeCryptoError, Prf};

/// IKEv2 Transform Type 3, Integrity Algorithm Transform IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integ {
    /// AUTH_HMAC_MD5_96 (1), RFC 2403. Insecure (RFC 8247 §3.2: MUST NOT);
    /// for IKEv1 peers behind `allow_insecure` only.
    HmacMd5_96,
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
    pub const ALL: [Integ; 5] = [
        Integ::HmacMd5_96,
        Integ::HmacSha1_96,
        Integ::HmacSha256_128,
        Integ::HmacSha384_192,
        Integ::HmacSha512_256,
    ];

    pub fn transform_id(self) -> u16 {
        match self {
            Integ::HmacMd5_96 => 1,
            Integ::HmacSha1_96 => 2,
            Integ::HmacSha256_128 => 12,
            Integ::HmacSha384_192 => 13,
            Integ::HmacSha512_256 => 14,
        }
    }

    pub fn from_transform_id(id: u16) -> Option<Integ> {
        Integ::ALL.into_iter().find(|i| i.transform_id() == id)
    }

    /// The inverse of [`name`](Integ::name) (key logs).
    pub fn from_name(s: &str) -> Option<Integ> {
        Integ::ALL.into_iter().find(|i| i.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Integ::HmacMd5_96 => "AUTH_HMAC_MD5_96",
            Integ::HmacSha1_96 => "AUTH_HMAC_SHA1_96",
            Integ::HmacSha256_128 => "AUTH_HMAC_SHA2_256_128",
            Integ::HmacSha384_192 => "AUTH_HMAC_SHA2_384_192",
            Integ::HmacSha512_256 => "AUTH_HMAC_SHA2_512_256",
        }
    }

    /// strongSwan's proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Integ::HmacMd5_96 => "md5",
            Integ::HmacSha1_96 => "sha1",
            Integ::HmacSha256_128 => "sha256",
            Integ::HmacSha384_192 => "sha384",
            Integ::HmacSha512_256 => "sha512",
        }
    }

    /// strongSwan's name, as `swanctl --list-sas` prints it
    /// (`HMAC_MD5_96`, `HMAC_SHA2_256_128`).
    pub fn strongswan_name(self) -> &'static str {
        &self.name()["AUTH_".len()..]
    }

    /// True for algorithms refused without `allow_insecure`: HMAC-MD5-96.
    pub fn is_insecure(self) -> bool {
        matches!(self, Integ::HmacMd5_96)
    }

    /// Key length (SK_ai/SK_ar): the hash output length (RFC 2403 §3,
    /// RFC 2404 §3, RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacMd5_96 => 16,
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }

    /// Length of the truncated checksum carried in the message.
    pub fn icv_len(self) -> usize {
        match self {
            Integ::HmacMd5_96 => 12,
            Integ::HmacSha1_96 => 12,
            Integ::HmacSha256_128 => 16,
            Integ::HmacSha384_192 => 24,
            Integ::HmacSha512_256 => 32,
        }
    }

    /// The untruncated HMAC this algorithm truncates, as a PRF.
    pub(crate) fn full_hmac(self) -> Prf {
        match self {
            Integ::HmacMd5_96 => Prf::HmacMd5,
            Integ::HmacSha1_96 => Prf::HmacSha1,
            Integ::HmacSha256_128 => Prf::HmacSha256,
            Integ::HmacSha384_192 => Prf::HmacSha384,
            Integ::HmacSha512_256 => Prf::HmacSha512,
        }
    }

    pub(crate) fn mac_key(self, key: &[u8]) -> MacKey {
        self.full_hmac().key(key)
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
        Ok(self.compute_with(&self.mac_key(key), data))
    }

    /// Verify `icv` in constant time.
    pub fn verify(self, key: &[u8], data: &[&[u8]], icv: &[u8]) -> Result<(), IkeCryptoError> {
        self.check_key(key)?;
        self.verify_with(&self.mac_key(key), data, icv)
    }

    pub(crate) fn compute_with(self, key: &MacKey, data: &[&[u8]]) -> Vec<u8> {
        let mut full = key.sign(data);
        full.truncate(self.icv_len());
        full
    }

    pub(crate) fn verify_with(self, key: &MacKey, data: &[&[u8]], icv: &[u8]) -> Result<(), IkeCryptoError> {
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
            "9294727a3638bb1c13f48ef8", // RFC 2202 §2 case 1, truncated (RFC 2403)
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
        assert_eq!(Integ::from_transform_id(1), Some(Integ::HmacMd5_96));
        assert_eq!(Integ::from_transform_id(5), None); // AUTH_AES_XCBC_96: not implemented
        let md5 = Integ::HmacMd5_96;
        assert_eq!(
            (md5.name(), md5.keyword(), md5.key_len(), md5.icv_len()),
            ("AUTH_HMAC_MD5_96", "md5", 16, 12)
        );
        assert_eq!(md5.strongswan_name(), "HMAC_MD5_96");
        assert_eq!(Integ::HmacSha256_128.strongswan_name(), "HMAC_SHA2_256_128");
        let insecure: Vec<Integ> = Integ::ALL.into_iter().filter(|i| i.is_insecure()).collect();
        assert_eq!(insecure, [md5]);
    }
}
