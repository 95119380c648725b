//! Pseudorandom functions and prf+ (RFC 7296 §2.13).
//!
//! HMAC-SHA-1/SHA-2 come from aws-lc-rs; HMAC-MD5 (RFC 2104 over RFC 1321),
//! which aws-lc-rs does not offer and only IKEv1 peers still use, from
//! RustCrypto's `hmac` + `md-5`.

use ::hmac::Mac as _;
use aws_lc_rs::hmac as aws_hmac;
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
    /// PRF_HMAC_MD5 (1), RFC 2104. Insecure (RFC 8247 §2.3: MUST NOT);
    /// for IKEv1 peers behind `allow_insecure` only.
    HmacMd5,
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
    pub const ALL: [Prf; 5] = [
        Prf::HmacMd5,
        Prf::HmacSha1,
        Prf::HmacSha256,
        Prf::HmacSha384,
        Prf::HmacSha512,
    ];

    pub fn transform_id(self) -> u16 {
        match self {
            Prf::HmacMd5 => 1,
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    pub fn from_transform_id(id: u16) -> Option<Prf> {
        Prf::ALL.into_iter().find(|p| p.transform_id() == id)
    }

    /// The inverse of [`name`](Prf::name) (key logs).
    pub fn from_name(s: &str) -> Option<Prf> {
        Prf::ALL.into_iter().find(|p| p.name() == s)
    }

    /// IANA name, as logs print it.
    pub fn name(self) -> &'static str {
        match self {
            Prf::HmacMd5 => "PRF_HMAC_MD5",
            Prf::HmacSha1 => "PRF_HMAC_SHA1",
            Prf::HmacSha256 => "PRF_HMAC_SHA2_256",
            Prf::HmacSha384 => "PRF_HMAC_SHA2_384",
            Prf::HmacSha512 => "PRF_HMAC_SHA2_512",
        }
    }

    /// strongSwan's proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Prf::HmacMd5 => "prfmd5",
            Prf::HmacSha1 => "prfsha1",
            Prf::HmacSha256 => "prfsha256",
            Prf::HmacSha384 => "prfsha384",
            Prf::HmacSha512 => "prfsha512",
        }
    }

    /// True for PRFs refused without `allow_insecure`: HMAC-MD5.
    pub fn is_insecure(self) -> bool {
        matches!(self, Prf::HmacMd5)
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacMd5 => 16,
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

    /// This PRF keyed with `key` (taken whole, RFC 2104 §2), reusable for
    /// several messages.
    pub(crate) fn key(self, key: &[u8]) -> MacKey {
        let alg = match self {
            Prf::HmacMd5 => {
                // HMAC accepts keys of any length: this cannot fail.
                let k = ::hmac::Hmac::<md5::Md5>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
                return MacKey::Md5(k);
            }
            Prf::HmacSha1 => aws_hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Prf::HmacSha256 => aws_hmac::HMAC_SHA256,
            Prf::HmacSha384 => aws_hmac::HMAC_SHA384,
            Prf::HmacSha512 => aws_hmac::HMAC_SHA512,
        };
        MacKey::Aws(aws_hmac::Key::new(alg, key))
    }

    /// `prf(key, data)`. The output is often secret (SKEYSEED, the PSK pad):
    /// callers keep such outputs in [`SecretBytes`].
    pub fn prf(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        self.prf_parts(key, &[data])
    }

    /// `prf(key, data[0] | data[1] | ...)` without building the
    /// concatenation (which may hold secrets).
    pub fn prf_parts(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        self.key(key).sign(data)
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
        let k = self.key(key);
        let mut out = Zeroizing::new(Vec::with_capacity(len + self.output_len()));
        let mut prev = Zeroizing::new(Vec::new());
        let mut n: u8 = 1;
        while out.len() < len {
            let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
            parts.push(&prev);
            parts.extend_from_slice(seed);
            let counter = [n];
            parts.push(&counter);
            let t = Zeroizing::new(k.sign(&parts));
            prev.clear();
            prev.extend_from_slice(&t);
            out.extend_from_slice(&t);
            n = n.wrapping_add(1);
        }
        out.truncate(len);
        Ok(SecretBytes::new(core::mem::take(&mut *out)))
    }
}

/// A keyed HMAC of one of the hashes IKE uses: aws-lc-rs for SHA-1/SHA-2,
/// RustCrypto for MD5. RustCrypto's HMAC state holds the key only hashed
/// into the inner and outer pads and is not zeroized on drop (the crate
/// has no `zeroize` feature); aws-lc-rs clears its own.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // short-lived or one per SA direction
pub(crate) enum MacKey {
    Aws(aws_hmac::Key),
    Md5(::hmac::Hmac<md5::Md5>),
}

impl MacKey {
    /// The full (untruncated) HMAC over `data[0] | data[1] | ...`.
    pub(crate) fn sign(&self, data: &[&[u8]]) -> Vec<u8> {
        match self {
            MacKey::Aws(k) => {
                let mut ctx = aws_hmac::Context::with_key(k);
                for d in data {
                    ctx.update(d);
                }
                ctx.sign().as_ref().to_vec()
            }
            MacKey::Md5(k) => {
                let mut m = k.clone();
                for d in data {
                    m.update(d);
                }
                m.finalize().into_bytes().to_vec()
            }
        }
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(<redacted>)")
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

    /// RFC 2202 §2 (HMAC-MD5), §3 (HMAC-SHA1) and RFC 4231 §4 (HMAC-SHA2)
    /// test cases 1, 2 and 6 (key longer than the hash block: hashed first).
    #[test]
    fn rfc2202_rfc4231_vectors() {
        let cases: [(&[u8], &[u8], [&str; 5]); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                [
                    // RFC 2202 case 1 uses a 16-byte key for MD5; this is for
                    // 20 bytes (python3 hmac).
                    "5ccec34ea9656392457fa1ac27f08fbc",
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
                    "750c783e6ab0b503eaa86e310a5db738", // RFC 2202 §2 case 2
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
                    // RFC 2202 case 6 uses an 80-byte key; these values are for
                    // 131 bytes (python3 hmac), the RFC 4231 case 6 key.
                    "bfecaf4efff90a3a668f3922fec3762d",
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

    /// RFC 2202 §2 case 1 exactly (16-byte key), through prf+ for MD5 too.
    #[test]
    fn hmac_md5_rfc2202_case1_and_prf_plus() {
        assert_eq!(
            Prf::HmacMd5.prf(&[0x0b; 16], b"Hi There"),
            h("9294727a3638bb1c13f48ef8158bfc9d")
        );
        let t1 = Prf::HmacMd5.prf(b"key", b"seed\x01");
        let t2 = Prf::HmacMd5.prf_parts(b"key", &[&t1, b"seed", &[2]]);
        let got = Prf::HmacMd5.prf_plus(b"key", b"seed", 20).unwrap();
        assert_eq!(got.expose(), &[t1, t2[..4].to_vec()].concat()[..]);
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
        assert_eq!(Prf::from_transform_id(1), Some(Prf::HmacMd5));
        assert_eq!(
            (Prf::HmacMd5.name(), Prf::HmacMd5.keyword()),
            ("PRF_HMAC_MD5", "prfmd5")
        );
        let insecure: Vec<Prf> = Prf::ALL.into_iter().filter(|p| p.is_insecure()).collect();
        assert_eq!(insecure, [Prf::HmacMd5]);
        assert_eq!(Prf::HmacSha256.to_string(), "PRF_HMAC_SHA2_256");
    }
}
