//! Pseudorandom functions and prf+ (RFC 7296 §2.13).

use aws_lc_rs::hmac;
use core::fmt;
use zeroize::Zeroizing;

use super::IkeCryptoError;
use crate::SecretBytes;

/// IKEv2 Transform Type 2, Pseudorandom Function Transform IDs
/// (RFC 7296 §3.3.2, RFC 4868 §4.1). Only HMAC PRFs: their key is taken
/// whole, whatever its length (RFC 2104 §2), which the key derivation
/// relies on (RFC 7296 §2.14, "Ni | Nr" as the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_SHA1 (2), RFC 2104.
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (5), RFC 4868.
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (6), RFC 4868.
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (7), RFC 4868.
    HmacSha512,
}

impl Prf {
    pub const ALL: [Prf; 4] = [Prf::HmacSha1, Prf::HmacSha256, Prf::HmacSha384, Prf::HmacSha512];

    pub fn transform_id(self) -> u16 {
        match self {
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    pub fn from_transform_id(id: u16) -> Option<Prf> {
        Prf::ALL.into_iter().find(|p| p.transform_id() == id)
    }

    /// IANA name, as logs print it.
    pub fn name(self) -> &'static str {
        match self {
            Prf::HmacSha1 => "PRF_HMAC_SHA1",
            Prf::HmacSha256 => "PRF_HMAC_SHA2_256",
            Prf::HmacSha384 => "PRF_HMAC_SHA2_384",
            Prf::HmacSha512 => "PRF_HMAC_SHA2_512",
        }
    }

    /// strongSwan's proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Prf::HmacSha1 => "prfsha1",
            Prf::HmacSha256 => "prfsha256",
            Prf::HmacSha384 => "prfsha384",
            Prf::HmacSha512 => "prfsha512",
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// The preferred key length, which is the length of SK_d, SK_pi and
    /// SK_pr (RFC 7296 §2.14). For HMAC it is the output length (RFC 2104
    /// §3, RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        self.output_len()
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Prf::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Prf::HmacSha256 => hmac::HMAC_SHA256,
            Prf::HmacSha384 => hmac::HMAC_SHA384,
            Prf::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// `prf(key, data)`. The output is often secret (SKEYSEED, the PSK pad):
    /// callers keep such outputs in [`SecretBytes`].
    pub fn prf(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        self.prf_parts(key, &[data])
    }

    /// `prf(key, data[0] | data[1] | ...)` without building the
    /// concatenation (which may hold secrets).
    pub fn prf_parts(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        let k = hmac::Key::new(self.hmac(), key);
        let mut ctx = hmac::Context::with_key(&k);
        for d in data {
            ctx.update(d);
        }
        ctx.sign().as_ref().to_vec()
    }

    /// `prf+(K, S)` truncated to `len` bytes (RFC 7296 §2.13):
    ///
    /// ```text
    /// prf+ (K,S) = T1 | T2 | T3 | T4 | ...
    /// T1 = prf (K, S | 0x01)
    /// T2 = prf (K, T1 | S | 0x02)
    /// Tn = prf (K, Tn-1 | S | n)
    /// ```
    ///
    /// The counter is one octet, so at most 255 blocks can be produced.
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Result<SecretBytes, IkeCryptoError> {
        self.prf_plus_parts(key, &[seed], len)
    }

    /// [`prf_plus`](Prf::prf_plus) with the seed given as parts
    /// (`S = seed[0] | seed[1] | ...`).
    pub fn prf_plus_parts(self, key: &[u8], seed: &[&[u8]], len: usize) -> Result<SecretBytes, IkeCryptoError> {
        let max = 255 * self.output_len();
        if len > max {
            return Err(IkeCryptoError::PrfPlusTooLong { requested: len, max });
        }
        let k = hmac::Key::new(self.hmac(), key);
        let mut out = Zeroizing::new(Vec::with_capacity(len + self.output_len()));
        let mut prev = Zeroizing::new(Vec::new());
        let mut n: u8 = 1;
        while out.len() < len {
            let mut ctx = hmac::Context::with_key(&k);
            ctx.update(&prev);
            for s in seed {
                ctx.update(s);
            }
            ctx.update(&[n]);
            let t = ctx.sign();
            prev.clear();
            prev.extend_from_slice(t.as_ref());
            out.extend_from_slice(t.as_ref());
            n = n.wrapping_add(1);
        }
        out.truncate(len);
        Ok(SecretBytes::new(core::mem::take(&mut *out)))
    }
}

impl fmt::Display for Prf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::testutil::h;

    /// RFC 2202 §3 (HMAC-SHA1) and RFC 4231 §4 (HMAC-SHA2) test cases 1, 2
    /// and 6 (key longer than the hash block: hashed first).
    #[test]
    fn rfc2202_rfc4231_vectors() {
        let cases: [(&[u8], &[u8], [&str; 4]); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                [
                    "b617318655057264e28bc0b6fb378c8ef146be00",
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                    "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                     faea9ea9076ede7f4af152e8b2fa9cb6",
                    "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                     daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
                ],
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                [
                    "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                     8e2240ca5e69e2c78b3239ecfab21649",
                    "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                     9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
                ],
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                [
                    // RFC 2202 case 6 uses an 80-byte key; this value is for 131
                    // bytes (python3 hmac), the RFC 4231 case 6 key.
                    "90d0dace1c1bdc957339307803160335bde6df2b",
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                    "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
                     0c2ef6ab4030fe8296248df163f44952",
                    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                     6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
                ],
            ),
        ];
        for (key, data, want) in cases {
            for (prf, w) in Prf::ALL.into_iter().zip(want) {
                assert_eq!(prf.prf(key, data), h(w), "{prf}");
                assert_eq!(prf.prf(key, data).len(), prf.output_len());
            }
        }
    }

    #[test]
    fn prf_parts_is_concatenation() {
        for prf in Prf::ALL {
            assert_eq!(prf.prf_parts(b"k", &[b"ab", b"", b"cd"]), prf.prf(b"k", b"abcd"));
        }
    }

    /// prf+ against an independent computation:
    /// ```text
    /// def prfplus(h, K, S, L):
    ///     out = T = b''; n = 1
    ///     while len(out) < L:
    ///         T = hmac.new(K, T + S + bytes([n]), h).digest(); out += T; n += 1
    ///     return out[:L]
    /// prfplus(hashlib.sha256, b'key', b'seed', 80).hex()
    /// ```
    #[test]
    fn prf_plus_known_answer() {
        let want = h("a2392e429a99b173341b368bb5ce320bfd483d89567c14ec187c2d77e3c0a208\
                      ba45d21d42611712996c0cd4b329ac8681e093a8a5bbbbf0fb8c9d1cf674f742\
                      3fe3d2fbd6641ff544749daa37804f04");
        let got = Prf::HmacSha256.prf_plus(b"key", b"seed", 80).unwrap();
        assert_eq!(got.expose(), &want[..]);
        // T1 = prf(K, S | 0x01); T2 = prf(K, T1 | S | 0x02).
        let t1 = Prf::HmacSha256.prf(b"key", b"seed\x01");
        assert_eq!(&want[..32], &t1[..]);
        let t2 = Prf::HmacSha256.prf_parts(b"key", &[&t1, b"seed", &[2]]);
        assert_eq!(&want[32..64], &t2[..]);
        // A shorter request is a prefix; parts are concatenation.
        let short = Prf::HmacSha256.prf_plus_parts(b"key", &[b"se", b"ed"], 33).unwrap();
        assert_eq!(short.expose(), &want[..33]);
    }

    #[test]
    fn prf_plus_stops_at_255_blocks() {
        for prf in Prf::ALL {
            let max = 255 * prf.output_len();
            assert_eq!(prf.prf_plus(b"k", b"s", max).unwrap().len(), max);
            assert_eq!(
                prf.prf_plus(b"k", b"s", max + 1),
                Err(IkeCryptoError::PrfPlusTooLong {
                    requested: max + 1,
                    max
                })
            );
        }
    }

    #[test]
    fn transform_ids_roundtrip() {
        for p in Prf::ALL {
            assert_eq!(Prf::from_transform_id(p.transform_id()), Some(p));
        }
        assert_eq!(Prf::from_transform_id(4), None); // PRF_AES128_XCBC: not implemented
        assert_eq!(Prf::HmacSha256.to_string(), "PRF_HMAC_SHA2_256");
    }
}
