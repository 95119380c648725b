//! Key exchange: MODP groups 14-16 (RFC 3526), ECP groups 19-21 (RFC 5903),
//! Curve25519 (RFC 8031), and for IKEv1 peers the legacy MODP groups 1 and 2
//! (RFC 2409 §6.1, §6.2) and 5 (RFC 3526 §2).
//!
//! Public values are in IKEv2 KE payload format (RFC 7296 §3.4), which is
//! also IKEv1's (RFC 2409 §5: "MUST be the length of the negotiated
//! Diffie-Hellman group enforced, if necessary, by pre-pending the value
//! with zeros"):
//! - MODP: `g^x mod p`, big-endian, zero-padded to the length of the prime.
//! - ECP: `x | y`, each padded to the field size, without SEC1's 0x04
//!   prefix (RFC 5903 §7); the shared secret is the x coordinate of the
//!   shared point (RFC 5903 §9, the erratum to RFC 4753).
//! - Curve25519: the 32-byte u coordinate (RFC 8031 §3).
//!
//! Private keys are drawn from the caller's [`Rng`] so a simulated run is
//! reproducible; the arithmetic is constant time (crypto-bigint Montgomery
//! exponentiation for MODP, which aws-lc-rs does not offer; aws-lc for the
//! curves).

use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use core::fmt;
use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Odd, Uint, U1024, U1536, U2048, U3072, U4096, U512, U768};
use zeroize::{Zeroize, Zeroizing};

use super::{IkeCryptoError, Rng};
use crate::SecretBytes;

/// IKEv2 Transform Type 4, Key Exchange Method Transform IDs (RFC 7296
/// §3.3.2, the Diffie-Hellman group numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 1: 768-bit MODP, the First Oakley Group (RFC 2409 §6.1). Broken
    /// (academic 768-bit discrete logs exist): only behind `allow_insecure`,
    /// see [`is_insecure`](DhGroup::is_insecure).
    Modp768,
    /// 2: 1024-bit MODP, the Second Oakley Group (RFC 2409 §6.2). Weak (RFC
    /// 8247 §2.4: SHOULD NOT; within reach of a nation-state precomputation,
    /// "Logjam"), but still the default of many IKEv1 peers, so not refused.
    Modp1024,
    /// 5: 1536-bit MODP (RFC 3526 §2). Weak-ish (RFC 8247: MAY), accepted.
    Modp1536,
    /// 14: 2048-bit MODP (RFC 3526 §3).
    Modp2048,
    /// 15: 3072-bit MODP (RFC 3526 §4).
    Modp3072,
    /// 16: 4096-bit MODP (RFC 3526 §5).
    Modp4096,
    /// 19: 256-bit random ECP group, NIST P-256 (RFC 5903 §3.1).
    Ecp256,
    /// 20: 384-bit random ECP group, NIST P-384 (RFC 5903 §3.2).
    Ecp384,
    /// 21: 521-bit random ECP group, NIST P-521 (RFC 5903 §3.3).
    Ecp521,
    /// 31: Curve25519 (RFC 8031).
    Curve25519,
}

impl DhGroup {
    pub const ALL: [DhGroup; 10] = [
        DhGroup::Modp768,
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Curve25519,
    ];

    pub fn transform_id(self) -> u16 {
        match self {
            DhGroup::Modp768 => 1,
            DhGroup::Modp1024 => 2,
            DhGroup::Modp1536 => 5,
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Modp4096 => 16,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Ecp521 => 21,
            DhGroup::Curve25519 => 31,
        }
    }

    pub fn from_transform_id(id: u16) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|g| g.transform_id() == id)
    }

    /// The inverse of [`name`](DhGroup::name) (key logs).
    pub fn from_name(s: &str) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|g| g.name() == s)
    }

    /// IANA-style name, as logs print it.
    pub fn name(self) -> &'static str {
        match self {
            DhGroup::Modp768 => "MODP_768",
            DhGroup::Modp1024 => "MODP_1024",
            DhGroup::Modp1536 => "MODP_1536",
            DhGroup::Modp2048 => "MODP_2048",
            DhGroup::Modp3072 => "MODP_3072",
            DhGroup::Modp4096 => "MODP_4096",
            DhGroup::Ecp256 => "ECP_256",
            DhGroup::Ecp384 => "ECP_384",
            DhGroup::Ecp521 => "ECP_521",
            DhGroup::Curve25519 => "CURVE_25519",
        }
    }

    /// strongSwan's proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            DhGroup::Modp768 => "modp768",
            DhGroup::Modp1024 => "modp1024",
            DhGroup::Modp1536 => "modp1536",
            DhGroup::Modp2048 => "modp2048",
            DhGroup::Modp3072 => "modp3072",
            DhGroup::Modp4096 => "modp4096",
            DhGroup::Ecp256 => "ecp256",
            DhGroup::Ecp384 => "ecp384",
            DhGroup::Ecp521 => "ecp521",
            DhGroup::Curve25519 => "curve25519",
        }
    }

    /// True for groups too weak to use without the operator's explicit
    /// `allow_insecure`: only MODP_768 (RFC 8247 §2.4: MUST NOT). MODP_1024
    /// is weak too (SHOULD NOT) but is not behind the switch, as IKEv1
    /// peers commonly still default to it.
    pub fn is_insecure(self) -> bool {
        matches!(self, DhGroup::Modp768)
    }

    /// Length of the KE payload's Key Exchange Data.
    pub fn public_value_len(self) -> usize {
        match self {
            DhGroup::Modp768 => 96,
            DhGroup::Modp1024 => 128,
            DhGroup::Modp1536 => 192,
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Modp4096 => 512,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Ecp521 => 132,
            DhGroup::Curve25519 => 32,
        }
    }

    /// Length of g^ir as it enters the key derivation.
    pub fn shared_secret_len(self) -> usize {
        match self {
            DhGroup::Modp768
            | DhGroup::Modp1024
            | DhGroup::Modp1536
            | DhGroup::Modp2048
            | DhGroup::Modp3072
            | DhGroup::Modp4096 => self.public_value_len(),
            DhGroup::Ecp256 | DhGroup::Ecp384 | DhGroup::Ecp521 => self.public_value_len() / 2,
            DhGroup::Curve25519 => 32,
        }
    }

    /// Length of the private exponent for the MODP groups: the upper
    /// "exponent size" of RFC 3526 §8's second strength estimate (240, 320,
    /// 420, 480 bits), rounded up to whole bytes; for the Oakley groups 1 and
    /// 2, which RFC 3526 does not rate, 256 bits (more than twice their
    /// strength, as RFC 3526 §8 asks).
    fn modp_exponent_len(self) -> usize {
        match self {
            DhGroup::Modp768 | DhGroup::Modp1024 => 32,
            DhGroup::Modp1536 => 30,
            DhGroup::Modp2048 => 40,
            DhGroup::Modp3072 => 53,
            DhGroup::Modp4096 => 60,
            _ => 0,
        }
    }

    fn ecdh(self) -> Option<&'static agreement::Algorithm> {
        match self {
            DhGroup::Ecp256 => Some(&agreement::ECDH_P256),
            DhGroup::Ecp384 => Some(&agreement::ECDH_P384),
            DhGroup::Ecp521 => Some(&agreement::ECDH_P521),
            DhGroup::Curve25519 => Some(&agreement::X25519),
            _ => None,
        }
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// RFC 2409 §6.1, the First Oakley Group (generator 2):
/// 2^768 - 2^704 - 1 + 2^64 * { [2^638 pi] + 149686 }.
const MODP_768_P: U768 = U768::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF",
));

/// RFC 2409 §6.2, the Second Oakley Group (generator 2):
/// 2^1024 - 2^960 - 1 + 2^64 * { [2^894 pi] + 129093 }.
const MODP_1024_P: U1024 = U1024::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
));

/// RFC 3526 §2, the 1536-bit MODP group (generator 2):
/// 2^1536 - 2^1472 - 1 + 2^64 * { [2^1406 pi] + 741804 }.
const MODP_1536_P: U1536 = U1536::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
));

/// RFC 3526 §3: the 2048-bit MODP group's prime (generator 2).
const MODP_2048_P: U2048 = U2048::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
));

/// RFC 3526 §4: the 3072-bit MODP group's prime (generator 2).
const MODP_3072_P: U3072 = U3072::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
));

/// RFC 3526 §5: the 4096-bit MODP group's prime (generator 2).
const MODP_4096_P: U4096 = U4096::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6",
    "287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
));

enum Private {
    /// Big-endian exponent, at most 64 bytes.
    Modp(SecretBytes),
    Ecdh(agreement::PrivateKey),
}

/// Our half of one key exchange: a private key and its public value.
pub struct KeyExchange {
    group: DhGroup,
    private: Private,
    public: Vec<u8>,
}

impl fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyExchange({})", self.group)
    }
}

/// How many private keys to draw before giving up on an RNG that only
/// yields out-of-range scalars (for P-256 one draw in 2^32 is rejected).
const MAX_DRAWS: usize = 64;

impl KeyExchange {
    /// A fresh private key from `rng` and its public value.
    pub fn generate(group: DhGroup, rng: &mut dyn Rng) -> Result<KeyExchange, IkeCryptoError> {
        let len = match group.ecdh() {
            Some(alg) => alg_private_len(group, alg),
            None => group.modp_exponent_len(),
        };
        let mut buf = Zeroizing::new(vec![0u8; len]);
        for _ in 0..MAX_DRAWS {
            rng.fill(&mut buf);
            if group == DhGroup::Ecp521 {
                // 521 bits in 66 bytes: the top byte holds one bit.
                buf[0] &= 0x01;
            }
            match KeyExchange::from_private_key(group, &buf) {
                Ok(ke) => return Ok(ke),
                Err(IkeCryptoError::BadKeyLength { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(IkeCryptoError::Internal("RNG yielded no valid private key"))
    }

    /// A key exchange from a known private key (test vectors, replay):
    /// the big-endian scalar for ECP (exactly the group order's length),
    /// the 32-byte scalar for Curve25519, a big-endian exponent of 2 to 64
    /// bytes for MODP. Out-of-range scalars are `BadKeyLength`.
    pub fn from_private_key(group: DhGroup, private: &[u8]) -> Result<KeyExchange, IkeCryptoError> {
        let bad = |need| IkeCryptoError::BadKeyLength {
            what: "key exchange private",
            need,
            have: private.len(),
        };
        match group.ecdh() {
            Some(alg) => {
                let need = alg_private_len(group, alg);
                let key = agreement::PrivateKey::from_private_key(alg, private).map_err(|_| bad(need))?;
                let public = key
                    .compute_public_key()
                    .map_err(|_| IkeCryptoError::Internal("public key computation"))?;
                let public = match group {
                    // SEC1 uncompressed 0x04 | x | y; IKEv2 sends x | y.
                    DhGroup::Curve25519 => public.as_ref().to_vec(),
                    _ => public.as_ref().get(1..).unwrap_or_default().to_vec(),
                };
                if public.len() != group.public_value_len() {
                    return Err(IkeCryptoError::Internal("public key length"));
                }
                Ok(KeyExchange {
                    group,
                    private: Private::Ecdh(key),
                    public,
                })
            }
            None => {
                if private.is_empty() || private.len() > 64 {
                    return Err(bad(group.modp_exponent_len()));
                }
                let exp = exponent(private);
                // x = 0 or 1 would publish g or 1.
                if exp <= U512::ONE {
                    return Err(bad(group.modp_exponent_len()));
                }
                let mut two = vec![0u8; group.public_value_len()];
                if let Some(last) = two.last_mut() {
                    *last = 2;
                }
                let public = modp_pow(group, &two, &exp)?;
                Ok(KeyExchange {
                    group,
                    private: Private::Modp(SecretBytes::new(private.to_vec())),
                    public: public.expose().to_vec(),
                })
            }
        }
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// Our Key Exchange Data for the KE payload.
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// g^ir from the peer's Key Exchange Data, validated first: exact
    /// length, and for MODP 1 < y < p-1 (RFC 6989 §2.1: with safe primes
    /// that excludes the small subgroups); ECP points must be on the curve
    /// (RFC 6989 §2.3, aws-lc checks); Curve25519 outputs of all zeros are
    /// refused (RFC 8031 §2).
    pub fn shared_secret(&self, peer_public: &[u8]) -> Result<SecretBytes, IkeCryptoError> {
        let group = self.group;
        let invalid = |reason| IkeCryptoError::InvalidPublicValue { group, reason };
        if peer_public.len() != group.public_value_len() {
            return Err(invalid("wrong length"));
        }
        match &self.private {
            Private::Modp(x) => {
                let exp = exponent(x.expose());
                modp_check_peer(group, peer_public)?;
                let s = modp_pow(group, peer_public, &exp)?;
                // Unreachable for a valid y and a safe prime; cheap to check.
                if s.expose()[..s.len() - 1].iter().all(|b| *b == 0) && s.expose()[s.len() - 1] <= 1 {
                    return Err(invalid("shared secret is degenerate"));
                }
                Ok(s)
            }
            Private::Ecdh(key) => {
                let mut sec1 = Vec::with_capacity(peer_public.len() + 1);
                if group != DhGroup::Curve25519 {
                    sec1.push(0x04);
                }
                sec1.extend_from_slice(peer_public);
                let peer = UnparsedPublicKey::new(key.algorithm(), &sec1);
                let s = agreement::agree(key, peer, invalid("not a point on the curve"), |s| {
                    Ok(SecretBytes::new(s.to_vec()))
                })?;
                if s.len() != group.shared_secret_len() {
                    return Err(IkeCryptoError::Internal("shared secret length"));
                }
                if group == DhGroup::Curve25519
                    && aws_lc_rs::constant_time::verify_slices_are_equal(s.expose(), &[0u8; 32]).is_ok()
                {
                    return Err(invalid("shared secret is all zeros (low-order point)"));
                }
                Ok(s)
            }
        }
    }
}

fn alg_private_len(group: DhGroup, _alg: &agreement::Algorithm) -> usize {
    match group {
        DhGroup::Ecp256 | DhGroup::Curve25519 => 32,
        DhGroup::Ecp384 => 48,
        _ => 66,
    }
}

/// A big-endian exponent of at most 64 bytes as a U512.
fn exponent(bytes: &[u8]) -> U512 {
    let mut buf = Zeroizing::new([0u8; 64]);
    let n = bytes.len().min(64);
    buf[64 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    U512::from_be_slice(&buf[..])
}

/// `base^exp mod p` for the group's prime; `base` is exactly the prime's
/// length. The exponent's bit length is fixed by its type, so the running
/// time does not depend on its value (crypto-bigint `pow_bounded_exp`).
fn modp_pow(group: DhGroup, base: &[u8], exp: &U512) -> Result<SecretBytes, IkeCryptoError> {
    match group {
        DhGroup::Modp768 => pow_generic(&MODP_768_P, base, exp),
        DhGroup::Modp1024 => pow_generic(&MODP_1024_P, base, exp),
        DhGroup::Modp1536 => pow_generic(&MODP_1536_P, base, exp),
        DhGroup::Modp2048 => pow_generic(&MODP_2048_P, base, exp),
        DhGroup::Modp3072 => pow_generic(&MODP_3072_P, base, exp),
        DhGroup::Modp4096 => pow_generic(&MODP_4096_P, base, exp),
        _ => Err(IkeCryptoError::Internal("not a MODP group")),
    }
}

fn pow_generic<const L: usize>(p: &Uint<L>, base: &[u8], exp: &U512) -> Result<SecretBytes, IkeCryptoError> {
    if base.len() != Uint::<L>::BYTES {
        return Err(IkeCryptoError::Internal("MODP operand length"));
    }
    let odd: Option<Odd<Uint<L>>> = Odd::new(*p).into();
    let params = MontyParams::new_vartime(odd.ok_or(IkeCryptoError::Internal("MODP prime is even"))?);
    let b = Uint::<L>::from_be_slice(base);
    let mut r = MontyForm::new(&b, params).pow_bounded_exp(exp, U512::BITS).retrieve();
    let mut out = Vec::with_capacity(Uint::<L>::BYTES);
    for w in r.as_words().iter().rev() {
        out.extend_from_slice(&w.to_be_bytes());
    }
    r.zeroize();
    Ok(SecretBytes::new(out))
}

/// RFC 6989 §2.1: the peer's y must satisfy 1 < y < p-1.
fn modp_check_peer(group: DhGroup, y: &[u8]) -> Result<(), IkeCryptoError> {
    fn check<const L: usize>(p: &Uint<L>, y: &[u8]) -> bool {
        let y = Uint::<L>::from_be_slice(y);
        y > Uint::ONE && y < p.wrapping_sub(&Uint::ONE)
    }
    let ok = match group {
        DhGroup::Modp768 => check(&MODP_768_P, y),
        DhGroup::Modp1024 => check(&MODP_1024_P, y),
        DhGroup::Modp1536 => check(&MODP_1536_P, y),
        DhGroup::Modp2048 => check(&MODP_2048_P, y),
        DhGroup::Modp3072 => check(&MODP_3072_P, y),
        DhGroup::Modp4096 => check(&MODP_4096_P, y),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(IkeCryptoError::InvalidPublicValue {
            group,
            reason: "not in the range 1 < y < p-1",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::testutil::h;
    use crate::ike::SeededRng;
    use aws_lc_rs::digest;

    /// RFC 7748 §6.1: Alice and Bob.
    #[test]
    fn rfc7748_x25519() {
        let a = KeyExchange::from_private_key(
            DhGroup::Curve25519,
            &h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
        )
        .unwrap();
        let b = KeyExchange::from_private_key(
            DhGroup::Curve25519,
            &h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
        )
        .unwrap();
        assert_eq!(
            a.public_value(),
            &h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")[..]
        );
        assert_eq!(
            b.public_value(),
            &h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")[..]
        );
        let k = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(a.shared_secret(b.public_value()).unwrap().expose(), &k[..]);
        assert_eq!(b.shared_secret(a.public_value()).unwrap().expose(), &k[..]);
        // RFC 8031 §2: a low-order peer value (here u = 0) gives all zeros.
        let err = a.shared_secret(&[0u8; 32]).unwrap_err();
        assert!(matches!(err, IkeCryptoError::InvalidPublicValue { .. }), "{err:?}");
        assert!(err.is_peer_fault());
    }

    /// RFC 5903 §8.1 (256-bit) and §8.2 (384-bit): i, g^i, r, g^r, g^ir.
    #[test]
    fn rfc5903_ecp_vectors() {
        let cases = [
            (
                DhGroup::Ecp256,
                "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
                "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180\
                 5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
                "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
                "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63\
                 56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
                "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
            ),
            (
                DhGroup::Ecp384,
                "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
                "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA\
                 9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
                "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
                "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571\
                 DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
                "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746",
            ),
        ];
        for (g, i, gi, r, gr, gir) in cases {
            let ki = KeyExchange::from_private_key(g, &h(i)).unwrap();
            let kr = KeyExchange::from_private_key(g, &h(r)).unwrap();
            assert_eq!(ki.public_value(), &h(gi)[..], "{g} g^i");
            assert_eq!(kr.public_value(), &h(gr)[..], "{g} g^r");
            assert_eq!(ki.shared_secret(&h(gr)).unwrap().expose(), &h(gir)[..], "{g} g^ir");
            assert_eq!(kr.shared_secret(&h(gi)).unwrap().expose(), &h(gir)[..], "{g} g^ri");
            // A point off the curve (y + 1) and a SEC1-prefixed value are refused.
            let mut off = h(gr);
            let last = off.len() - 1;
            off[last] ^= 1;
            assert!(matches!(
                ki.shared_secret(&off),
                Err(IkeCryptoError::InvalidPublicValue { .. })
            ));
            let mut sec1 = vec![4u8];
            sec1.extend(h(gr));
            assert!(matches!(
                ki.shared_secret(&sec1),
                Err(IkeCryptoError::InvalidPublicValue {
                    reason: "wrong length",
                    ..
                })
            ));
        }
    }

    #[test]
    fn generated_keys_agree_for_every_group() {
        let mut rng = SeededRng::from_u64(42);
        for g in DhGroup::ALL {
            let a = KeyExchange::generate(g, &mut rng).unwrap();
            let b = KeyExchange::generate(g, &mut rng).unwrap();
            assert_eq!(a.public_value().len(), g.public_value_len(), "{g}");
            assert_ne!(a.public_value(), b.public_value(), "{g}");
            let s1 = a.shared_secret(b.public_value()).unwrap();
            let s2 = b.shared_secret(a.public_value()).unwrap();
            assert_eq!(s1, s2, "{g}");
            assert_eq!(s1.len(), g.shared_secret_len(), "{g}");
            assert!(matches!(
                a.shared_secret(&b.public_value()[1..]),
                Err(IkeCryptoError::InvalidPublicValue { .. })
            ));
        }
        // Same seed, same keys: a simulator can replay a run.
        let a = KeyExchange::generate(DhGroup::Ecp256, &mut SeededRng::from_u64(9)).unwrap();
        let b = KeyExchange::generate(DhGroup::Ecp256, &mut SeededRng::from_u64(9)).unwrap();
        assert_eq!(a.public_value(), b.public_value());
    }

    /// g^x for x = 0x1111...11 (40 bytes) against Python's
    /// `pow(2, x, p).to_bytes(n // 8, 'big')`, hashed with SHA-256 to keep
    /// the expected values short. For groups 1, 2 and 5 Python built p from
    /// the RFCs' own definitions rather than from the hex (pi by Machin's
    /// formula in integers), so this also checks the hex transcription:
    ///
    /// ```text
    /// 768:  2^768 - 2^704 - 1 + 2^64 * { [2^638 pi] + 149686 }     RFC 2409 §6.1
    /// 1024: 2^1024 - 2^960 - 1 + 2^64 * { [2^894 pi] + 129093 }    RFC 2409 §6.2
    /// 1536: 2^1536 - 2^1472 - 1 + 2^64 * { [2^1406 pi] + 741804 }  RFC 3526 §2
    /// ```
    ///
    /// (each also passes Miller-Rabin for p and (p-1)/2: safe primes).
    #[test]
    fn modp_public_values_known_answer() {
        let cases = [
            (
                DhGroup::Modp768,
                "a0cd974a760401053a5e3d7b06390822ba475c1bb5f7af27f911585e576211db",
            ),
            (
                DhGroup::Modp1024,
                "264aefc851b87c15e47d0fab96a9537065c5f86360ba8488c607f64b20508206",
            ),
            (
                DhGroup::Modp1536,
                "18d2c6770e72b85ce4b90087a5e4ec92f34a41d745005fd314f2bdfb7d43ec2e",
            ),
            (
                DhGroup::Modp2048,
                "cf620d64260beddaf4bc62234b9b3237014f895ab1b5ace7d3d26d9cd1c34fe1",
            ),
            (
                DhGroup::Modp3072,
                "909441dc2905363c92586afef81f6716c8629ee152548dbdf95e2ab74b772e6b",
            ),
            (
                DhGroup::Modp4096,
                "19a5ec2aa369b403da1fd99d4189b1be593b152ec1e3a856ca6a6b95109fa038",
            ),
        ];
        for (g, want) in cases {
            let ke = KeyExchange::from_private_key(g, &[0x11; 40]).unwrap();
            assert_eq!(
                digest::digest(&digest::SHA256, ke.public_value()).as_ref(),
                &h(want)[..],
                "{g}"
            );
        }
    }

    /// RFC 6989 §2.1: y in {0, 1, p-1, p, all ones} is refused.
    #[test]
    fn modp_rejects_degenerate_peer_values() {
        let mut rng = SeededRng::from_u64(5);
        for g in [
            DhGroup::Modp768,
            DhGroup::Modp1024,
            DhGroup::Modp1536,
            DhGroup::Modp2048,
            DhGroup::Modp3072,
            DhGroup::Modp4096,
        ] {
            let ke = KeyExchange::generate(g, &mut rng).unwrap();
            let n = g.public_value_len();
            let mut p = Vec::with_capacity(n);
            let words = match g {
                DhGroup::Modp768 => MODP_768_P.as_words().to_vec(),
                DhGroup::Modp1024 => MODP_1024_P.as_words().to_vec(),
                DhGroup::Modp1536 => MODP_1536_P.as_words().to_vec(),
                DhGroup::Modp2048 => MODP_2048_P.as_words().to_vec(),
                DhGroup::Modp3072 => MODP_3072_P.as_words().to_vec(),
                _ => MODP_4096_P.as_words().to_vec(),
            };
            for w in words.iter().rev() {
                p.extend_from_slice(&w.to_be_bytes());
            }
            let mut p_minus_1 = p.clone();
            p_minus_1[n - 1] -= 1; // p ends in 0xff
            let mut one = vec![0u8; n];
            one[n - 1] = 1;
            for bad in [vec![0u8; n], one, p_minus_1.clone(), p.clone(), vec![0xff; n]] {
                assert_eq!(
                    ke.shared_secret(&bad),
                    Err(IkeCryptoError::InvalidPublicValue {
                        group: g,
                        reason: "not in the range 1 < y < p-1"
                    }),
                    "{g}"
                );
            }
            let mut p_minus_2 = p_minus_1;
            p_minus_2[n - 1] -= 1;
            assert!(ke.shared_secret(&p_minus_2).is_ok(), "{g}: p-2 is in range");
        }
    }

    #[test]
    fn out_of_range_private_keys_are_refused() {
        // Zero and the all-ones scalar (above the group order) on P-256.
        assert!(KeyExchange::from_private_key(DhGroup::Ecp256, &[0u8; 32]).is_err());
        assert!(KeyExchange::from_private_key(DhGroup::Ecp256, &[0xff; 32]).is_err());
        assert!(KeyExchange::from_private_key(DhGroup::Ecp256, &[1u8; 31]).is_err());
        assert!(KeyExchange::from_private_key(DhGroup::Modp2048, &[0u8; 40]).is_err());
        assert!(KeyExchange::from_private_key(DhGroup::Modp2048, &[1u8; 65]).is_err());
        // An RNG that only ever yields out-of-range scalars is an error,
        // not a hang.
        let mut ones = |out: &mut [u8]| out.fill(0xff);
        assert!(KeyExchange::generate(DhGroup::Ecp256, &mut ones).is_err());
    }

    #[test]
    fn transform_ids_roundtrip() {
        for g in DhGroup::ALL {
            assert_eq!(DhGroup::from_transform_id(g.transform_id()), Some(g));
        }
        assert_eq!(DhGroup::from_transform_id(3), None); // EC2N, never implemented
        assert_eq!(DhGroup::from_transform_id(2), Some(DhGroup::Modp1024));
        let legacy = [
            (DhGroup::Modp768, 1, "MODP_768", "modp768", 96),
            (DhGroup::Modp1024, 2, "MODP_1024", "modp1024", 128),
            (DhGroup::Modp1536, 5, "MODP_1536", "modp1536", 192),
        ];
        for (g, id, name, kw, len) in legacy {
            assert_eq!((g.transform_id(), g.name(), g.keyword()), (id, name, kw));
            assert_eq!((g.public_value_len(), g.shared_secret_len()), (len, len));
        }
        let insecure: Vec<DhGroup> = DhGroup::ALL.into_iter().filter(|g| g.is_insecure()).collect();
        assert_eq!(insecure, [DhGroup::Modp768], "only group 1 is behind allow_insecure");
    }

    /// The legacy groups: both sides of one exchange agree on g^xy, a
    /// shorter (unpadded) public value is refused, and a peer value with
    /// leading zero bytes (a small y, padded per RFC 2409 §5) is accepted.
    #[test]
    fn legacy_modp_groups_agree_and_check_lengths() {
        let mut rng = SeededRng::from_u64(1409);
        for g in [DhGroup::Modp768, DhGroup::Modp1024, DhGroup::Modp1536] {
            let i = KeyExchange::generate(g, &mut rng).unwrap();
            let r = KeyExchange::generate(g, &mut rng).unwrap();
            let gxy = i.shared_secret(r.public_value()).unwrap();
            assert_eq!(gxy, r.shared_secret(i.public_value()).unwrap(), "{g}");
            assert_eq!(gxy.len(), g.public_value_len());
            let n = g.public_value_len();
            assert!(i.shared_secret(&r.public_value()[1..]).is_err());
            let mut small = vec![0u8; n];
            small[n - 1] = 7;
            assert!(i.shared_secret(&small).is_ok(), "{g}: y = 7 padded is valid");
            // Same exponent in another group gives another value.
            let x = [0x42u8; 32];
            let a = KeyExchange::from_private_key(g, &x).unwrap();
            let b = KeyExchange::from_private_key(DhGroup::Modp2048, &x).unwrap();
            assert_ne!(a.public_value(), &b.public_value()[..n]);
        }
    }
}
