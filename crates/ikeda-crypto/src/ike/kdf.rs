//! Key derivation (RFC 7296 §2.14, §2.17, §2.18) and shared-key AUTH
//! (RFC 7296 §2.15).

use aws_lc_rs::constant_time;
use core::fmt;
use zeroize::Zeroizing;

use super::{DhGroup, Encr, IkeCryptoError, Integ, Prf, SkCipher};
use crate::SecretBytes;

/// Which end of the IKE SA we are: the original initiator or responder
/// (RFC 7296 §2.2), which picks the direction of each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Initiator,
    Responder,
}

impl Role {
    pub fn peer(self) -> Role {
        match self {
            Role::Initiator => Role::Responder,
            Role::Responder => Role::Initiator,
        }
    }
}

/// The algorithms negotiated for one IKE SA: one transform of each type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    pub encr: Encr,
    /// `None` with an AEAD cipher (RFC 5282 §8).
    pub integ: Option<Integ>,
    pub prf: Prf,
    pub dh: DhGroup,
}

impl IkeSuite {
    /// The suite from the names `name()` gives (`ENCR_AES_GCM_16_128`,
    /// `AUTH_HMAC_SHA2_256_128`, `PRF_HMAC_SHA2_256`, `CURVE_25519`), as
    /// ikeda's key log writes them; checked with [`validate`](Self::validate).
    pub fn from_names(encr: &str, integ: Option<&str>, prf: &str, dh: &str) -> Result<IkeSuite, String> {
        let unknown = |what: &str, n: &str| format!("unknown {what} algorithm '{n}'");
        let s = IkeSuite {
            encr: Encr::from_name(encr).ok_or_else(|| unknown("encryption", encr))?,
            integ: match integ {
                Some(i) => Some(Integ::from_name(i).ok_or_else(|| unknown("integrity", i))?),
                None => None,
            },
            prf: Prf::from_name(prf).ok_or_else(|| unknown("PRF", prf))?,
            dh: DhGroup::from_name(dh).ok_or_else(|| unknown("DH group", dh))?,
        };
        s.validate()
            .map_err(|e| format!("{encr}/{}: {e}", integ.unwrap_or("no integrity")))?;
        Ok(s)
    }

    /// Check the combination: integrity exactly when the cipher is not AEAD.
    pub fn validate(&self) -> Result<(), IkeCryptoError> {
        match (self.encr.is_aead(), self.integ) {
            (true, None) | (false, Some(_)) => Ok(()),
            (true, Some(i)) => Err(IkeCryptoError::Unsupported {
                transform: "INTEG with an AEAD cipher",
                id: i.transform_id(),
            }),
            (false, None) => Err(IkeCryptoError::Unsupported {
                transform: "ENCR without INTEG",
                id: self.encr.transform_id(),
            }),
        }
    }
}

/// The seven secrets of an IKE SA (RFC 7296 §2.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeKeys {
    /// Derives CHILD SA keys and the next IKE SA's SKEYSEED.
    pub sk_d: SecretBytes,
    /// Integrity, initiator to responder (`None` for AEAD).
    pub sk_ai: Option<SecretBytes>,
    /// Integrity, responder to initiator (`None` for AEAD).
    pub sk_ar: Option<SecretBytes>,
    /// Encryption, initiator to responder (with the salt for AEAD).
    pub sk_ei: SecretBytes,
    /// Encryption, responder to initiator (with the salt for AEAD).
    pub sk_er: SecretBytes,
    /// For the initiator's AUTH payload.
    pub sk_pi: SecretBytes,
    /// For the responder's AUTH payload.
    pub sk_pr: SecretBytes,
}

impl IkeKeys {
    /// `SKEYSEED = prf(Ni | Nr, g^ir)` (RFC 7296 §2.14). HMAC PRFs take
    /// the whole `Ni | Nr` as the key.
    pub fn skeyseed(prf: Prf, shared: &SecretBytes, ni: &[u8], nr: &[u8]) -> SecretBytes {
        let key = Zeroizing::new([ni, nr].concat());
        SecretBytes::new(prf.prf(&key, shared.expose()))
    }

    /// `SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)` for a rekeyed IKE
    /// SA (RFC 7296 §2.18), with the old IKE SA's PRF: "it is the old IKE
    /// SA's PRF that is used to generate SKEYSEED". Without a new key
    /// exchange there is no g^ir, but RFC 7296 requires one for IKE SA
    /// rekeying.
    pub fn rekey_skeyseed(
        old_prf: Prf,
        old_sk_d: &SecretBytes,
        shared: &SecretBytes,
        ni: &[u8],
        nr: &[u8],
    ) -> SecretBytes {
        SecretBytes::new(old_prf.prf_parts(old_sk_d.expose(), &[shared.expose(), ni, nr]))
    }

    /// The keys of a new IKE SA from IKE_SA_INIT (RFC 7296 §2.14):
    ///
    /// ```text
    /// SKEYSEED = prf(Ni | Nr, g^ir)
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
    ///                 = prf+ (SKEYSEED, Ni | Nr | SPIi | SPIr)
    /// ```
    ///
    /// `ni`/`nr` are the Nonce Data of Ni and Nr; `spi_i`/`spi_r` the IKE
    /// SPIs as they appear in the header.
    pub fn derive(
        suite: &IkeSuite,
        shared: &SecretBytes,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeKeys, IkeCryptoError> {
        let skeyseed = IkeKeys::skeyseed(suite.prf, shared, ni, nr);
        IkeKeys::expand(suite, &skeyseed, ni, nr, spi_i, spi_r)
    }

    /// The keys of the IKE SA that replaces the current one (RFC 7296
    /// §2.18): SKEYSEED from the old SK_d and old PRF, then prf+ with the
    /// new suite's PRF over the new nonces and the new IKE SPIs.
    #[allow(clippy::too_many_arguments)]
    pub fn derive_rekeyed(
        old_prf: Prf,
        old_sk_d: &SecretBytes,
        suite: &IkeSuite,
        shared: &SecretBytes,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeKeys, IkeCryptoError> {
        let skeyseed = IkeKeys::rekey_skeyseed(old_prf, old_sk_d, shared, ni, nr);
        IkeKeys::expand(suite, &skeyseed, ni, nr, spi_i, spi_r)
    }

    fn expand(
        suite: &IkeSuite,
        skeyseed: &SecretBytes,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeKeys, IkeCryptoError> {
        suite.validate()?;
        let p = suite.prf.key_len();
        let a = suite.integ.map_or(0, Integ::key_len);
        let e = suite.encr.key_len();
        let km = suite
            .prf
            .prf_plus_parts(skeyseed.expose(), &[ni, nr, spi_i, spi_r], 3 * p + 2 * a + 2 * e)?;
        let mut split = Splitter::new(km.expose());
        let sk_d = split.take(p);
        let sk_ai = split.take(a);
        let sk_ar = split.take(a);
        let sk_ei = split.take(e);
        let sk_er = split.take(e);
        let sk_pi = split.take(p);
        let sk_pr = split.take(p);
        let opt = |k: SecretBytes| (!k.is_empty()).then_some(k);
        Ok(IkeKeys {
            sk_d,
            sk_ai: opt(sk_ai),
            sk_ar: opt(sk_ar),
            sk_ei,
            sk_er,
            sk_pi,
            sk_pr,
        })
    }

    /// The SK payload ciphers for `role`: (outbound, inbound). The
    /// initiator sends with SK_ei/SK_ai and receives with SK_er/SK_ar.
    pub fn sk_ciphers(&self, suite: &IkeSuite, role: Role) -> Result<(SkCipher, SkCipher), IkeCryptoError> {
        let i = SkCipher::new(suite.encr, suite.integ, &self.sk_ei, self.sk_ai.as_ref())?;
        let r = SkCipher::new(suite.encr, suite.integ, &self.sk_er, self.sk_ar.as_ref())?;
        Ok(match role {
            Role::Initiator => (i, r),
            Role::Responder => (r, i),
        })
    }

    /// SK_pi for the initiator, SK_pr for the responder (RFC 7296 §2.15).
    pub fn sk_p(&self, role: Role) -> &SecretBytes {
        match role {
            Role::Initiator => &self.sk_pi,
            Role::Responder => &self.sk_pr,
        }
    }
}

/// Keys for one direction of a CHILD SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectionKeys {
    /// Encryption key (with the salt for AEAD: 20/36 bytes for AES-GCM,
    /// 36 for ChaCha20-Poly1305).
    pub enc: SecretBytes,
    /// Integrity key, `None` for AEAD.
    pub auth: Option<SecretBytes>,
}

/// KEYMAT of a CHILD SA pair (RFC 7296 §2.17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildKeys {
    /// For the SA carrying initiator-to-responder traffic.
    pub i_to_r: DirectionKeys,
    /// For the SA carrying responder-to-initiator traffic.
    pub r_to_i: DirectionKeys,
}

impl ChildKeys {
    /// RFC 7296 §2.17:
    ///
    /// ```text
    /// KEYMAT = prf+(SK_d, Ni | Nr)                  (no PFS)
    /// KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr)     (PFS, CREATE_CHILD_SA)
    /// ```
    ///
    /// taken in order: initiator-to-responder encryption key, its integrity
    /// key, then responder-to-initiator encryption and integrity keys.
    /// `ni`/`nr` are the nonces of the exchange that creates the SA (those
    /// of IKE_SA_INIT for the CHILD SA of IKE_AUTH).
    pub fn derive(
        prf: Prf,
        sk_d: &SecretBytes,
        encr: Encr,
        integ: Option<Integ>,
        pfs_shared: Option<&SecretBytes>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<ChildKeys, IkeCryptoError> {
        let e = encr.key_len();
        let a = integ.map_or(0, Integ::key_len);
        let g: &[u8] = pfs_shared.map_or(&[], SecretBytes::expose);
        let km = prf.prf_plus_parts(sk_d.expose(), &[g, ni, nr], 2 * (e + a))?;
        let mut split = Splitter::new(km.expose());
        let mut dir = || {
            let enc = split.take(e);
            let auth = split.take(a);
            DirectionKeys {
                enc,
                auth: (a > 0).then_some(auth),
            }
        };
        let i_to_r = dir();
        let r_to_i = dir();
        Ok(ChildKeys { i_to_r, r_to_i })
    }

    /// Keys of the SA we send on.
    pub fn outbound(&self, role: Role) -> &DirectionKeys {
        match role {
            Role::Initiator => &self.i_to_r,
            Role::Responder => &self.r_to_i,
        }
    }

    /// Keys of the SA we receive on.
    pub fn inbound(&self, role: Role) -> &DirectionKeys {
        self.outbound(role.peer())
    }
}

struct Splitter<'a> {
    rest: &'a [u8],
}

impl<'a> Splitter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Splitter { rest: bytes }
    }

    /// The caller asked prf+ for exactly the sum of the takes.
    fn take(&mut self, n: usize) -> SecretBytes {
        let n = n.min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        SecretBytes::new(head.to_vec())
    }
}

/// RFC 7296 §2.15: the fixed pad that turns a shared secret into the
/// PRF key for AUTH.
pub const KEY_PAD_FOR_IKEV2: &[u8] = b"Key Pad for IKEv2";

/// The octets a party signs or MACs (RFC 7296 §2.15):
///
/// ```text
/// InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
/// MACedIDForI = prf(SK_pi, RestOfInitIDPayload)
/// ResponderSignedOctets = RealMessage2 | NonceIData | MACedIDForR
/// MACedIDForR = prf(SK_pr, RestOfRespIDPayload)
/// ```
///
/// `message` is the signer's IKE_SA_INIT message exactly as sent;
/// `peer_nonce` is the Nonce Data of the *other* party; `sk_p` is the
/// signer's SK_pi or SK_pr; `id_payload_body` is the signer's ID payload
/// without the 4-byte generic header (ID Type, three reserved octets,
/// identification data).
pub fn signed_octets(
    prf: Prf,
    message: &[u8],
    peer_nonce: &[u8],
    sk_p: &SecretBytes,
    id_payload_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf.prf(sk_p.expose(), id_payload_body);
    let mut out = Vec::with_capacity(message.len() + peer_nonce.len() + maced_id.len());
    out.extend_from_slice(message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(&maced_id);
    out
}

/// Shared-key AUTH data (RFC 7296 §2.15, Auth Method 2):
///
/// ```text
/// AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)
/// ```
///
/// The arguments are those of [`signed_octets`], for the party whose AUTH
/// is computed: to build ours, our message, the peer's nonce, our SK_p and
/// our ID; to check the peer's, its message, our nonce, its SK_p and its ID.
pub fn psk_auth(
    prf: Prf,
    psk: &SecretBytes,
    message: &[u8],
    peer_nonce: &[u8],
    sk_p: &SecretBytes,
    id_payload_body: &[u8],
) -> Vec<u8> {
    let key = Zeroizing::new(prf.prf(psk.expose(), KEY_PAD_FOR_IKEV2));
    let octets = signed_octets(prf, message, peer_nonce, sk_p, id_payload_body);
    prf.prf(&key, &octets)
}

/// Check a received shared-key AUTH in constant time.
pub fn verify_psk_auth(
    prf: Prf,
    psk: &SecretBytes,
    message: &[u8],
    peer_nonce: &[u8],
    sk_p: &SecretBytes,
    id_payload_body: &[u8],
    received_auth: &[u8],
) -> Result<(), IkeCryptoError> {
    let want = psk_auth(prf, psk, message, peer_nonce, sk_p, id_payload_body);
    constant_time::verify_slices_are_equal(&want, received_auth).map_err(|_| IkeCryptoError::AuthenticationFailed)
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        })
    }
}

#[cfg(test)]
mod tests {
    /// Key logs name a suite by `name()` (ikeda's `ikeda-keys.jsonl`);
    /// reading them back must give the same algorithms, for every one.
    #[test]
    fn suite_names_round_trip() {
        let mut n = 0;
        for encr in Encr::ALL {
            let integs: Vec<Option<Integ>> = if encr.is_aead() {
                vec![None]
            } else {
                Integ::ALL.into_iter().map(Some).collect()
            };
            for integ in integs {
                for prf in Prf::ALL {
                    for dh in DhGroup::ALL {
                        let s = IkeSuite { encr, integ, prf, dh };
                        let back = IkeSuite::from_names(&encr.name(), integ.map(Integ::name), prf.name(), dh.name());
                        assert_eq!(back, Ok(s));
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 100);
        assert_eq!(Encr::from_name("ENCR_AES_CBC_192"), None);
        let e = IkeSuite::from_names(
            "ENCR_AES_GCM_16_128",
            Some("AUTH_HMAC_SHA1_96"),
            "PRF_HMAC_SHA1",
            "MODP_2048",
        );
        assert!(e.unwrap_err().contains("AEAD"));
        let e = IkeSuite::from_names("ENCR_AES_CBC_128", None, "PRF_NOPE", "MODP_2048").unwrap_err();
        assert!(e.contains("PRF_NOPE"), "{e}");
    }

    use super::*;
    use crate::ike::testutil::h;
    use crate::ike::{KeyExchange, Rng, SeededRng};

    fn sb(s: &str) -> SecretBytes {
        SecretBytes::new(h(s))
    }

    /// A NIST CAVS IKEv2 KDF sample (SP 800-135 component test, SHA-1) as
    /// libreswan's CAVS driver prints it: SKEYSEED, DKM = prf+(SKEYSEED,
    /// Ni | Nr | SPIi | SPIr), child DKM with and without g^ir (new), and
    /// the rekey SKEYSEED. 132 bytes of DKM is exactly the IKE SA keys of
    /// aes128-sha1-prfsha1 (3*20 + 2*20 + 2*16).
    #[test]
    fn cavs_ikev2_kdf_sha1() {
        let gir = sb("4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52");
        let gir_new = sb("863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330");
        let (ni, nr) = (h("32b50d5f4a3763f3"), h("9206a04b26564cb1"));
        let spi_i: [u8; 8] = h("34c9e7c188868785").try_into().unwrap();
        let spi_r: [u8; 8] = h("3ff77d760d2b2199").try_into().unwrap();
        let prf = Prf::HmacSha1;

        let skeyseed = IkeKeys::skeyseed(prf, &gir, &ni, &nr);
        assert_eq!(skeyseed.expose(), &h("a9a7b222b59f8f48645f28a1db5b5f5d7479cba7")[..]);

        let dkm = h(
            "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062768b76606f9fa5e9\
                     92204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702c979fa280870d2ed41efa9c549fd1119\
                     8af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435a7a56cc4",
        );
        let suite = IkeSuite {
            encr: Encr::AesCbc { key_bits: 128 },
            integ: Some(Integ::HmacSha1_96),
            prf,
            dh: DhGroup::Modp2048,
        };
        let k = IkeKeys::derive(&suite, &gir, &ni, &nr, &spi_i, &spi_r).unwrap();
        let mut concat = Vec::new();
        for part in [
            &k.sk_d,
            k.sk_ai.as_ref().unwrap(),
            k.sk_ar.as_ref().unwrap(),
            &k.sk_ei,
            &k.sk_er,
            &k.sk_pi,
            &k.sk_pr,
        ] {
            concat.extend_from_slice(part.expose());
        }
        assert_eq!(concat, dkm);

        // Child SA KEYMAT: prf+(SK_d, Ni | Nr) and prf+(SK_d, g^ir (new) | Ni | Nr).
        let child = h(
            "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd9560b2d5e092d1f24e\
                       2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf\
                       285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c0a22f3e664994d234cb4",
        );
        let child_dh = h("bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232eab4b3ab14c400a519\
                          7dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f9a\
                          05884d1b7d2f933708450b7b3288f1fc863ab49fa901227cffc06e27899c7054d56fd74c");
        for (pfs, want) in [(None, &child), (Some(&gir_new), &child_dh)] {
            // aes256-sha1: 2 * (32 + 20) = 104 bytes, a prefix of the DKM.
            let c = ChildKeys::derive(
                prf,
                &k.sk_d,
                Encr::AesCbc { key_bits: 256 },
                Some(Integ::HmacSha1_96),
                pfs,
                &ni,
                &nr,
            )
            .unwrap();
            let mut got = Vec::new();
            for d in [&c.i_to_r, &c.r_to_i] {
                got.extend_from_slice(d.enc.expose());
                got.extend_from_slice(d.auth.as_ref().unwrap().expose());
            }
            assert_eq!(&got[..], &want[..104]);
        }

        let rekey = IkeKeys::rekey_skeyseed(prf, &k.sk_d, &gir_new, &ni, &nr);
        assert_eq!(rekey.expose(), &h("63e81194946ebd05df7df5ebf5d8750056bf1f1d")[..]);
    }

    // Inputs of the independent (python3 hmac/hashlib) computations below:
    // g^ir = 00..1f, Ni = 10..2f, Nr = 20..3f, SPIi = 0102..08, SPIr = 1112..18.
    fn inputs() -> (SecretBytes, Vec<u8>, Vec<u8>, [u8; 8], [u8; 8]) {
        (
            SecretBytes::new((0u8..32).collect()),
            (0x10u8..0x30).collect(),
            (0x20u8..0x40).collect(),
            [1, 2, 3, 4, 5, 6, 7, 8],
            [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18],
        )
    }

    #[test]
    fn ike_keys_cbc_sha256_known_answer() {
        let (g, ni, nr, si, sr) = inputs();
        let suite = IkeSuite {
            encr: Encr::AesCbc { key_bits: 128 },
            integ: Some(Integ::HmacSha256_128),
            prf: Prf::HmacSha256,
            dh: DhGroup::Curve25519,
        };
        assert_eq!(
            IkeKeys::skeyseed(suite.prf, &g, &ni, &nr).expose(),
            &h("0da8b62800484f2475994984c701b4d8e02e71795b105c7d16f0691657b1f37d")[..]
        );
        let k = IkeKeys::derive(&suite, &g, &ni, &nr, &si, &sr).unwrap();
        assert_eq!(
            k.sk_d,
            sb("5c5fd24445e53d38956cc0be36a13b8095e884bc9ec4b1f3cb5989013ac550e3")
        );
        assert_eq!(
            k.sk_ai,
            Some(sb("c342cc0423700548dc1d72cca24bec76b50c43d2d0eed7e5d6d51b1841d5e5f4"))
        );
        assert_eq!(
            k.sk_ar,
            Some(sb("27e35192c684d2e0a4a4bec4c2d67e463af94f3ed34d3d63911419cc96379a46"))
        );
        assert_eq!(k.sk_ei, sb("7276c0979f062009d70e03f9b19b4288"));
        assert_eq!(k.sk_er, sb("1bd5aee2100f1e6a0f193d06462b5ec3"));
        assert_eq!(
            k.sk_pi,
            sb("fac190c290d833cdd18d6dab696e345d7a2a52badcb8366fabdc4196d05c026e")
        );
        assert_eq!(
            k.sk_pr,
            sb("704661245f3f611340cbcf93f1ef57a0d6229ae09ecc36fac22420a156342146")
        );
    }

    #[test]
    fn ike_keys_aead_and_rekey_known_answer() {
        let (g, ni, nr, si, sr) = inputs();
        let suite = IkeSuite {
            encr: Encr::AesGcm16 { key_bits: 256 },
            integ: None,
            prf: Prf::HmacSha384,
            dh: DhGroup::Ecp384,
        };
        let k = IkeKeys::derive(&suite, &g, &ni, &nr, &si, &sr).unwrap();
        assert_eq!(k.sk_ai, None);
        assert_eq!(k.sk_ar, None);
        assert_eq!(
            k.sk_d,
            sb("79b5a4a6d6aad4578f79538bb2af3c2a97d1e99eeea566f95bbc31f87887917a04c1a7b31a6089c1675013c4a7ff006a")
        );
        assert_eq!(
            k.sk_ei,
            sb("691268d3597c728648ad7d1f817a1e3733d7e1adac7af40a8304964fe70deceb22b68631")
        );
        assert_eq!(
            k.sk_er,
            sb("3d8764e924f895dce96d621fe0204107fde4fb341defd1491e6fbe85b904b2bd86a2a9ec")
        );
        assert_eq!(
            k.sk_pr,
            sb("56ab756a1e6723c29b0b6afdb6d23b4a0b280facaf53c39b53b73b4316832c7bb00c4889d7e4c1e45b33938dc17cb5eb")
        );

        // Rekey (RFC 7296 §2.18) of the aes128-sha256 SA above into this
        // suite: old PRF (sha256) and old SK_d for SKEYSEED, new PRF
        // (sha384) for prf+, new nonces 30..4f / 40..5f, new SPIs 2122..28
        // / 3132..38, new g^ir 64..83.
        let old_sk_d = sb("5c5fd24445e53d38956cc0be36a13b8095e884bc9ec4b1f3cb5989013ac550e3");
        let g2 = SecretBytes::new((100u8..132).collect());
        let ni2: Vec<u8> = (0x30u8..0x50).collect();
        let nr2: Vec<u8> = (0x40u8..0x60).collect();
        let si2 = [0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28];
        let sr2 = [0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38];
        let r = IkeKeys::derive_rekeyed(Prf::HmacSha256, &old_sk_d, &suite, &g2, &ni2, &nr2, &si2, &sr2).unwrap();
        assert_eq!(
            r.sk_d,
            sb("6991ef2a55c9a21e2adb14823b971161066d3e71d8e8051534f202b227f4bef40b36c1f285166319b8fb538918d39bb1")
        );
        assert_eq!(
            r.sk_ei,
            sb("c24e08ab79f980834c4594d222ae9ba2fdafda9ded83cdcd3fb0788d172baac9fa1fb95b")
        );
        assert_eq!(
            r.sk_pr,
            sb("02187d0b34b015610be04342a473da259aa0eb2ff4ab29f4224f6a834468628ba0f88f26ee36442f5cae7f4763aaa86f")
        );
    }

    #[test]
    fn child_keys_aead_known_answer_and_directions() {
        let (_, ni, nr, _, _) = inputs();
        let sk_d = sb("5c5fd24445e53d38956cc0be36a13b8095e884bc9ec4b1f3cb5989013ac550e3");
        let c = ChildKeys::derive(
            Prf::HmacSha256,
            &sk_d,
            Encr::AesGcm16 { key_bits: 128 },
            None,
            None,
            &ni,
            &nr,
        )
        .unwrap();
        // 20 bytes each: 16-byte AES key and 4-byte salt.
        assert_eq!(c.i_to_r.enc, sb("2751f4a79071a72d49e0f983dcaf25a074e95c97"));
        assert_eq!(c.r_to_i.enc, sb("b60f29e1adc300e21390a209357f5af41cc64ab4"));
        assert_eq!(c.i_to_r.auth, None);
        assert_eq!(c.outbound(Role::Initiator), &c.i_to_r);
        assert_eq!(c.inbound(Role::Initiator), &c.r_to_i);
        assert_eq!(c.outbound(Role::Responder), &c.r_to_i);
        // The keys feed the ESP ciphers as they are.
        let alg = crate::EspAlgorithm::AesGcm16 { key_bits: 128 };
        crate::EspCipher::new(alg, &c.i_to_r.enc, None).unwrap();
    }

    /// RFC 7296 §2.17 with HMAC-SHA2-384-192 and -512-256 (RFC 4868
    /// §2.1.1: 48- and 64-byte keys): KEYMAT is SK_ei | SK_ai | SK_er |
    /// SK_ar, 2 * (32 + 48 or 64) bytes of prf+. Checked against python3
    /// (prf+ with HMAC-SHA-256 over Ni | Nr, as above).
    #[test]
    fn child_keys_cbc_sha2_384_and_512_known_answer() {
        let (_, ni, nr, _, _) = inputs();
        let sk_d = sb("5c5fd24445e53d38956cc0be36a13b8095e884bc9ec4b1f3cb5989013ac550e3");
        let cases = [
            (
                Integ::HmacSha384_192,
                "357f5af41cc64ab41619b8735394844015e0d9a5fb81f7d2287e1623fd1ddffa852a57add0b19ce87f756b8b4bf4b164",
                "3845792b4645ba03e5908a8001614ebe6c75eec4c35a7ef692ac43d77b01dcf5",
                "6d24610425a748524aceda4c57270999d27326d7ce99a8fe7a4052618aa07a60f51deebbf0e923bc15bd58481e22db45",
            ),
            (
                Integ::HmacSha512_256,
                "357f5af41cc64ab41619b8735394844015e0d9a5fb81f7d2287e1623fd1ddffa852a57add0b19ce87f756b8b4bf4b1643845792b4645ba03e5908a8001614ebe",
                "6c75eec4c35a7ef692ac43d77b01dcf56d24610425a748524aceda4c57270999",
                "d27326d7ce99a8fe7a4052618aa07a60f51deebbf0e923bc15bd58481e22db450da8a6004507ee6fb41c324170c2919e50bca19f86b76f4906dbe43de76980bc",
            ),
        ];
        let encr = Encr::AesCbc { key_bits: 256 };
        for (integ, ai, er, ar) in cases {
            let c = ChildKeys::derive(Prf::HmacSha256, &sk_d, encr, Some(integ), None, &ni, &nr).unwrap();
            assert_eq!(
                c.i_to_r.enc,
                sb("2751f4a79071a72d49e0f983dcaf25a074e95c97b60f29e1adc300e21390a209")
            );
            assert_eq!(c.i_to_r.auth, Some(sb(ai)), "{integ}");
            assert_eq!(c.r_to_i.enc, sb(er), "{integ}");
            assert_eq!(c.r_to_i.auth, Some(sb(ar)), "{integ}");
            // The keys feed the ESP cipher the suite maps to, as they are.
            let suite = super::super::ChildSuite {
                encr,
                integ: Some(integ),
                dh: None,
                esn: false,
            };
            let alg = suite.esp_algorithm().unwrap();
            assert_eq!(alg.auth_key_len(), integ.key_len());
            for d in [&c.i_to_r, &c.r_to_i] {
                crate::EspCipher::new(alg, &d.enc, d.auth.as_ref()).unwrap();
            }
        }
    }

    /// AUTH for the initiator with a PSK, checked against python3:
    /// ```text
    /// maced = hmac(SK_pi, b'\x02\x00\x00\x00moon.strongswan.org', sha256)
    /// auth = hmac(hmac(b'ikeda test psk', b'Key Pad for IKEv2', sha256),
    ///             bytes(range(64)) + Nr + maced, sha256)
    /// ```
    #[test]
    fn psk_auth_known_answer_and_verify() {
        let (_, _, nr, _, _) = inputs();
        let psk = SecretBytes::new(b"ikeda test psk".to_vec());
        let sk_pi = sb("fac190c290d833cdd18d6dab696e345d7a2a52badcb8366fabdc4196d05c026e");
        let msg: Vec<u8> = (0u8..64).collect();
        let mut id = vec![2u8, 0, 0, 0]; // ID_FQDN
        id.extend_from_slice(b"moon.strongswan.org");
        let want = h("fb4ed2a76d8758c6de7b3f712a2d791881cf25806a1152b9efbea0f1d820e462");
        let prf = Prf::HmacSha256;
        assert_eq!(psk_auth(prf, &psk, &msg, &nr, &sk_pi, &id), want);
        verify_psk_auth(prf, &psk, &msg, &nr, &sk_pi, &id, &want).unwrap();
        let mut bad = want.clone();
        bad[31] ^= 1;
        assert_eq!(
            verify_psk_auth(prf, &psk, &msg, &nr, &sk_pi, &id, &bad),
            Err(IkeCryptoError::AuthenticationFailed)
        );
        assert!(verify_psk_auth(prf, &psk, &msg, &nr, &sk_pi, &id, &want[..16]).is_err());
        let wrong_psk = SecretBytes::new(b"ikeda test psk!".to_vec());
        assert!(verify_psk_auth(prf, &wrong_psk, &msg, &nr, &sk_pi, &id, &want).is_err());
        let signed = signed_octets(prf, &msg, &nr, &sk_pi, &id);
        assert_eq!(signed.len(), 64 + 32 + 32);
    }

    /// Initiator and responder, each with its own key exchange, derive the
    /// same keys and can read each other's SK payloads.
    #[test]
    fn both_ends_derive_the_same_keys() {
        let mut rng = SeededRng::from_u64(2024);
        let suite = IkeSuite {
            encr: Encr::ChaCha20Poly1305,
            integ: None,
            prf: Prf::HmacSha256,
            dh: DhGroup::Ecp256,
        };
        let ki = KeyExchange::generate(suite.dh, &mut rng).unwrap();
        let kr = KeyExchange::generate(suite.dh, &mut rng).unwrap();
        let (mut ni, mut nr) = ([0u8; 32], [0u8; 32]);
        rng.fill(&mut ni);
        rng.fill(&mut nr);
        let (si, sr) = ([1u8; 8], [2u8; 8]);
        let gi = ki.shared_secret(kr.public_value()).unwrap();
        let gr = kr.shared_secret(ki.public_value()).unwrap();
        let keys_i = IkeKeys::derive(&suite, &gi, &ni, &nr, &si, &sr).unwrap();
        let keys_r = IkeKeys::derive(&suite, &gr, &ni, &nr, &si, &sr).unwrap();
        assert_eq!(keys_i, keys_r);
        let (out_i, in_i) = keys_i.sk_ciphers(&suite, Role::Initiator).unwrap();
        let (out_r, in_r) = keys_r.sk_ciphers(&suite, Role::Responder).unwrap();
        let hdr = [0x55u8; 32];
        let body = out_i.encrypt(&hdr, b"IDi AUTH SA TSi TSr", &mut rng).unwrap();
        assert_eq!(in_r.decrypt(&hdr, &body).unwrap(), b"IDi AUTH SA TSi TSr");
        let body = out_r.encrypt(&hdr, b"IDr AUTH SA TSi TSr", &mut rng).unwrap();
        assert_eq!(in_i.decrypt(&hdr, &body).unwrap(), b"IDr AUTH SA TSi TSr");
        // Own outbound cannot open own outbound traffic as inbound.
        let body = out_i.encrypt(&hdr, b"x", &mut rng).unwrap();
        assert!(in_i.decrypt(&hdr, &body).is_err());
        assert_eq!(keys_i.sk_p(Role::Initiator), &keys_i.sk_pi);
    }

    #[test]
    fn inconsistent_suites_are_refused() {
        let (g, ni, nr, si, sr) = inputs();
        let mut s = IkeSuite {
            encr: Encr::AesGcm16 { key_bits: 128 },
            integ: Some(Integ::HmacSha256_128),
            prf: Prf::HmacSha256,
            dh: DhGroup::Curve25519,
        };
        assert!(IkeKeys::derive(&s, &g, &ni, &nr, &si, &sr).is_err());
        s.encr = Encr::AesCbc { key_bits: 128 };
        s.integ = None;
        assert!(IkeKeys::derive(&s, &g, &ni, &nr, &si, &sr).is_err());
    }
}
