//! Encryption of the SK and SKF payloads (RFC 7296 §3.14, RFC 7383 §2.5).
//!
//! What the caller passes is the same for every cipher: `aad_prefix` is
//! every byte of the message that precedes the IV, i.e. the IKE header and
//! the Encrypted payload's generic header (for SKF also the Fragment Number
//! and Total Fragments fields), with the IKE header's Length field and the
//! payload's Payload Length already holding their final values (use
//! [`SkCipher::sk_body_len`] to know them before encrypting). The SK body
//! is what follows:
//!
//! ```text
//! [ aad_prefix                        ][ IV ][ ciphertext               ][ ICV ]
//!   IKE header | SK generic header        |    payloads|pad|pad length  |
//! ```
//!
//! - CBC ciphers, AES (RFC 3602) and for IKEv1 peers 3DES and DES (RFC
//!   2451; 8-byte blocks and IV) (RFC 7296 §3.14): the ICV is HMAC(SK_a, aad_prefix | IV |
//!   ciphertext) truncated, "the entire message starting with the first
//!   octet of the IKE header through the last octet of the Pad Length".
//! - AEAD (RFC 5282 §5.1, RFC 7634 §3; RFC 7383 §2.5 for SKF): the AAD is
//!   aad_prefix ("all octets preceding the IV"), the nonce is salt | IV with
//!   the salt the last 4 bytes of SK_e, and the ICV is the 16-byte tag.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{self, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use core::fmt;
use zeroize::Zeroizing;

use super::prf::MacKey;
use super::{IkeCryptoError, Integ, Rng};
use crate::SecretBytes;

/// RFC 5282 §7.1 / RFC 7634 §4: the last four bytes of the key material
/// are the salt.
const AEAD_SALT_LEN: usize = 4;
const AEAD_IV_LEN: usize = 8;
const AEAD_TAG_LEN: usize = 16;
const AES_BLOCK: usize = 16;
const DES_BLOCK: usize = 8;

/// IKEv2 Transform Type 1, Encryption Algorithm Transform IDs, with the
/// Key Length attribute (RFC 7296 §3.3.5) where the cipher has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encr {
    /// ENCR_AES_CBC (12), RFC 3602; `key_bits` 128 or 256.
    AesCbc { key_bits: u16 },
    /// ENCR_AES_GCM_16 (20), RFC 5282 / RFC 4106; `key_bits` 128 or 256.
    AesGcm16 { key_bits: u16 },
    /// ENCR_CHACHA20_POLY1305 (28), RFC 7634 (no Key Length attribute).
    ChaCha20Poly1305,
    /// ENCR_3DES (3), RFC 2451: DES-EDE3-CBC, 24-byte key (three DES keys,
    /// parity bits ignored), 8-byte block and IV. Legacy (RFC 8247 §2.1:
    /// MAY), for IKEv1 peers; no Key Length attribute.
    TripleDesCbc,
    /// ENCR_DES (2), RFC 2405: 8-byte key (56 bits), 8-byte block and IV.
    /// Insecure (RFC 8247 §2.1: MUST NOT): only with `allow_insecure`.
    DesCbc,
}

impl Encr {
    pub const ALL: [Encr; 7] = [
        Encr::AesCbc { key_bits: 128 },
        Encr::AesCbc { key_bits: 256 },
        Encr::AesGcm16 { key_bits: 128 },
        Encr::AesGcm16 { key_bits: 256 },
        Encr::ChaCha20Poly1305,
        Encr::TripleDesCbc,
        Encr::DesCbc,
    ];

    pub fn transform_id(self) -> u16 {
        match self {
            Encr::AesCbc { .. } => 12,
            Encr::AesGcm16 { .. } => 20,
            Encr::ChaCha20Poly1305 => 28,
            Encr::TripleDesCbc => 3,
            Encr::DesCbc => 2,
        }
    }

    /// The Key Length attribute value to send (RFC 7296 §3.3.5), if any.
    pub fn key_length_attribute(self) -> Option<u16> {
        match self {
            Encr::AesCbc { key_bits } | Encr::AesGcm16 { key_bits } => Some(key_bits),
            Encr::ChaCha20Poly1305 | Encr::TripleDesCbc | Encr::DesCbc => None,
        }
    }

    /// From a transform ID and its Key Length attribute. AES needs the
    /// attribute (RFC 7296 §3.3.5: no default for variable-length ciphers);
    /// ChaCha20-Poly1305 (RFC 7634 §2) and the fixed-length DES ciphers
    /// (RFC 7296 §3.3.5: "MUST NOT be used with transforms that use a fixed
    /// key length") must not have one.
    pub fn from_transform(id: u16, key_length: Option<u16>) -> Result<Encr, IkeCryptoError> {
        let unsupported = Err(IkeCryptoError::Unsupported { transform: "ENCR", id });
        match (id, key_length) {
            (12, Some(b @ (128 | 256))) => Ok(Encr::AesCbc { key_bits: b }),
            (20, Some(b @ (128 | 256))) => Ok(Encr::AesGcm16 { key_bits: b }),
            (28, None) => Ok(Encr::ChaCha20Poly1305),
            (3, None) => Ok(Encr::TripleDesCbc),
            (2, None) => Ok(Encr::DesCbc),
            _ => unsupported,
        }
    }

    /// The inverse of [`name`](Encr::name) (key logs).
    pub fn from_name(s: &str) -> Option<Encr> {
        Encr::ALL.into_iter().find(|e| e.name() == s)
    }

    /// IANA name with the key size, as logs print it (`ENCR_AES_CBC_128`).
    pub fn name(self) -> String {
        match self {
            Encr::AesCbc { key_bits } => format!("ENCR_AES_CBC_{key_bits}"),
            Encr::AesGcm16 { key_bits } => format!("ENCR_AES_GCM_16_{key_bits}"),
            Encr::ChaCha20Poly1305 => "ENCR_CHACHA20_POLY1305".into(),
            Encr::TripleDesCbc => "ENCR_3DES".into(),
            Encr::DesCbc => "ENCR_DES".into(),
        }
    }

    /// strongSwan's name with the key size, as `swanctl --list-sas` prints
    /// it (`AES_CBC-128`, `AES_GCM_16-256`, `3DES_CBC`).
    pub fn strongswan_name(self) -> String {
        match self {
            Encr::AesCbc { key_bits } => format!("AES_CBC-{key_bits}"),
            Encr::AesGcm16 { key_bits } => format!("AES_GCM_16-{key_bits}"),
            Encr::ChaCha20Poly1305 => "CHACHA20_POLY1305".into(),
            Encr::TripleDesCbc => "3DES_CBC".into(),
            Encr::DesCbc => "DES_CBC".into(),
        }
    }

    /// CBC-encrypt whole blocks in place with a one-off key schedule (IKEv1
    /// messages); `Err` for AEAD ciphers, a wrong key or IV length, or data
    /// that is not whole blocks.
    pub(crate) fn cbc_encrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), IkeCryptoError> {
        CbcKey::new(self, key)?.encrypt(iv, data)
    }

    /// CBC-decrypt whole blocks in place; see [`cbc_encrypt`](Encr::cbc_encrypt).
    pub(crate) fn cbc_decrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), IkeCryptoError> {
        CbcKey::new(self, key)?.decrypt(iv, data)
    }

    /// True for ciphers refused without `allow_insecure`: single DES.
    pub fn is_insecure(self) -> bool {
        matches!(self, Encr::DesCbc)
    }

    /// strongSwan's proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Encr::AesCbc { key_bits: 128 } => "aes128",
            Encr::AesCbc { .. } => "aes256",
            Encr::AesGcm16 { key_bits: 128 } => "aes128gcm16",
            Encr::AesGcm16 { .. } => "aes256gcm16",
            Encr::ChaCha20Poly1305 => "chacha20poly1305",
            Encr::TripleDesCbc => "3des",
            Encr::DesCbc => "des",
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16 { .. } | Encr::ChaCha20Poly1305)
    }

    /// Length of the encryption key material (SK_ei/SK_er, or an ESP
    /// encryption key from KEYMAT). For AEAD it includes the 4-byte salt
    /// (RFC 5282 §7.1, RFC 7634 §4).
    pub fn key_len(self) -> usize {
        match self {
            Encr::AesCbc { key_bits } => key_bits as usize / 8,
            Encr::AesGcm16 { key_bits } => key_bits as usize / 8 + AEAD_SALT_LEN,
            Encr::ChaCha20Poly1305 => 32 + AEAD_SALT_LEN,
            Encr::TripleDesCbc => 24,
            Encr::DesCbc => 8,
        }
    }

    /// IV length: the block length for CBC (RFC 3602 §3, RFC 2451 §2.3),
    /// 8 bytes for the AEAD modes.
    pub fn iv_len(self) -> usize {
        match self {
            Encr::AesCbc { .. } => AES_BLOCK,
            Encr::TripleDesCbc | Encr::DesCbc => DES_BLOCK,
            Encr::AesGcm16 { .. } | Encr::ChaCha20Poly1305 => AEAD_IV_LEN,
        }
    }

    /// What payloads + padding + Pad Length must be a multiple of. AEAD
    /// modes here are stream modes: 1 (no padding needed).
    pub fn block_len(self) -> usize {
        match self {
            Encr::AesCbc { .. } => AES_BLOCK,
            Encr::TripleDesCbc | Encr::DesCbc => DES_BLOCK,
            Encr::AesGcm16 { .. } | Encr::ChaCha20Poly1305 => 1,
        }
    }
}

/// A CBC cipher keyed once, without padding (IKEv2 SK payloads and IKEv1
/// messages pad for themselves): AES from aws-lc-rs; DES and 3DES, which
/// aws-lc-rs does not offer, from RustCrypto's `des` + `cbc` (key schedules
/// zeroized on drop). One lives per IKE SA direction: not worth boxing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum CbcKey {
    Aes { enc: EncryptingKey, dec: DecryptingKey },
    TripleDes(des::TdesEde3),
    Des(des::Des),
}

impl CbcKey {
    /// Key a CBC cipher; `key` must be exactly `encr.key_len()` bytes.
    pub(crate) fn new(encr: Encr, key: &[u8]) -> Result<CbcKey, IkeCryptoError> {
        if key.len() != encr.key_len() {
            return Err(IkeCryptoError::BadKeyLength {
                what: "encryption",
                need: encr.key_len(),
                have: key.len(),
            });
        }
        let setup = IkeCryptoError::Internal("CBC key setup");
        Ok(match encr {
            Encr::AesCbc { key_bits } => {
                let alg = if key_bits == 128 {
                    &cipher::AES_128
                } else {
                    &cipher::AES_256
                };
                let unbound = || UnboundCipherKey::new(alg, key).map_err(|_| setup);
                CbcKey::Aes {
                    enc: EncryptingKey::cbc(unbound()?).map_err(|_| setup)?,
                    dec: DecryptingKey::cbc(unbound()?).map_err(|_| setup)?,
                }
            }
            Encr::TripleDesCbc => CbcKey::TripleDes(des::TdesEde3::new_from_slice(key).map_err(|_| setup)?),
            Encr::DesCbc => CbcKey::Des(des::Des::new_from_slice(key).map_err(|_| setup)?),
            Encr::AesGcm16 { .. } | Encr::ChaCha20Poly1305 => {
                return Err(IkeCryptoError::Unsupported {
                    transform: "ENCR (an AEAD cipher is not a CBC cipher)",
                    id: encr.transform_id(),
                })
            }
        })
    }

    pub(crate) fn block_len(&self) -> usize {
        match self {
            CbcKey::Aes { .. } => AES_BLOCK,
            CbcKey::TripleDes(_) | CbcKey::Des(_) => DES_BLOCK,
        }
    }

    fn check(&self, iv: &[u8], data: &[u8]) -> Result<(), IkeCryptoError> {
        if iv.len() != self.block_len() {
            return Err(IkeCryptoError::Internal("CBC IV length is not the block length"));
        }
        if !data.len().is_multiple_of(self.block_len()) {
            return Err(IkeCryptoError::Malformed("ciphertext is not a whole number of blocks"));
        }
        Ok(())
    }

    /// CBC-encrypt whole blocks in place.
    pub(crate) fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<(), IkeCryptoError> {
        self.check(iv, data)?;
        if data.is_empty() {
            return Ok(());
        }
        let fail = IkeCryptoError::Internal("CBC encrypt");
        let n = data.len();
        match self {
            CbcKey::Aes { enc, .. } => {
                let iv: [u8; AES_BLOCK] = iv.try_into().map_err(|_| fail)?;
                enc.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
                    .map_err(|_| fail)?;
            }
            CbcKey::TripleDes(k) => {
                cbc::Encryptor::<des::TdesEde3>::inner_iv_slice_init(k.clone(), iv)
                    .map_err(|_| fail)?
                    .encrypt_padded_mut::<NoPadding>(data, n)
                    .map_err(|_| fail)?;
            }
            CbcKey::Des(k) => {
                cbc::Encryptor::<des::Des>::inner_iv_slice_init(k.clone(), iv)
                    .map_err(|_| fail)?
                    .encrypt_padded_mut::<NoPadding>(data, n)
                    .map_err(|_| fail)?;
            }
        }
        Ok(())
    }

    /// CBC-decrypt whole blocks in place.
    pub(crate) fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<(), IkeCryptoError> {
        self.check(iv, data)?;
        if data.is_empty() {
            return Ok(());
        }
        let fail = IkeCryptoError::Internal("CBC decrypt");
        match self {
            CbcKey::Aes { dec, .. } => {
                let iv: [u8; AES_BLOCK] = iv.try_into().map_err(|_| fail)?;
                dec.decrypt(data, DecryptionContext::Iv128(FixedLength::from(iv)))
                    .map_err(|_| fail)?;
            }
            CbcKey::TripleDes(k) => {
                cbc::Decryptor::<des::TdesEde3>::inner_iv_slice_init(k.clone(), iv)
                    .map_err(|_| fail)?
                    .decrypt_padded_mut::<NoPadding>(data)
                    .map_err(|_| fail)?;
            }
            CbcKey::Des(k) => {
                cbc::Decryptor::<des::Des>::inner_iv_slice_init(k.clone(), iv)
                    .map_err(|_| fail)?
                    .decrypt_padded_mut::<NoPadding>(data)
                    .map_err(|_| fail)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Encr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

// Both variants hold key schedules; an SkCipher lives as long as its IKE SA
// and there are two per SA, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
enum Imp {
    Aead {
        key: LessSafeKey,
        salt: [u8; AEAD_SALT_LEN],
    },
    Cbc {
        cbc: CbcKey,
        mac: MacKey,
        integ: Integ,
    },
}

/// One direction's SK payload protection: SK_ei with SK_ai (initiator to
/// responder) or SK_er with SK_ar. Stateless, so `&self` suffices.
pub struct SkCipher {
    encr: Encr,
    integ: Option<Integ>,
    imp: Imp,
}

impl fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.integ {
            Some(i) => write!(f, "SkCipher({}, {})", self.encr, i),
            None => write!(f, "SkCipher({})", self.encr),
        }
    }
}

impl SkCipher {
    /// Key one direction. CBC ciphers need an integrity algorithm and its key;
    /// AEAD ciphers take neither (RFC 5282 §8: no integrity transform).
    pub fn new(
        encr: Encr,
        integ: Option<Integ>,
        enc_key: &SecretBytes,
        auth_key: Option<&SecretBytes>,
    ) -> Result<SkCipher, IkeCryptoError> {
        if enc_key.len() != encr.key_len() {
            return Err(IkeCryptoError::BadKeyLength {
                what: "encryption",
                need: encr.key_len(),
                have: enc_key.len(),
            });
        }
        let need_auth = integ.map_or(0, Integ::key_len);
        let have_auth = auth_key.map_or(0, SecretBytes::len);
        if need_auth != have_auth {
            return Err(IkeCryptoError::BadKeyLength {
                what: "integrity",
                need: need_auth,
                have: have_auth,
            });
        }
        let k = enc_key.expose();
        let imp = match (encr, integ) {
            (Encr::AesGcm16 { .. } | Encr::ChaCha20Poly1305, None) => {
                let alg = match encr {
                    Encr::AesGcm16 { key_bits: 128 } => &aead::AES_128_GCM,
                    Encr::AesGcm16 { .. } => &aead::AES_256_GCM,
                    _ => &aead::CHACHA20_POLY1305,
                };
                let (key, salt) = k.split_at(k.len() - AEAD_SALT_LEN);
                let unbound = UnboundKey::new(alg, key).map_err(|_| IkeCryptoError::Internal("AEAD key setup"))?;
                let mut s = [0u8; AEAD_SALT_LEN];
                s.copy_from_slice(salt);
                Imp::Aead {
                    key: LessSafeKey::new(unbound),
                    salt: s,
                }
            }
            (Encr::AesCbc { .. } | Encr::TripleDesCbc | Encr::DesCbc, Some(integ)) => Imp::Cbc {
                cbc: CbcKey::new(encr, k)?,
                mac: integ.mac_key(auth_key.map_or(&[][..], SecretBytes::expose)),
                integ,
            },
            (Encr::AesCbc { .. } | Encr::TripleDesCbc | Encr::DesCbc, None) => {
                return Err(IkeCryptoError::BadKeyLength {
                    what: "integrity (a CBC cipher needs an integrity algorithm)",
                    need: 1,
                    have: 0,
                })
            }
            (_, Some(i)) => {
                // RFC 5282 §8: AEAD proposals carry no integrity transform.
                return Err(IkeCryptoError::Unsupported {
                    transform: "INTEG with an AEAD cipher",
                    id: i.transform_id(),
                });
            }
        };
        Ok(SkCipher { encr, integ, imp })
    }

    pub fn encr(&self) -> Encr {
        self.encr
    }

    pub fn integ(&self) -> Option<Integ> {
        self.integ
    }

    pub fn iv_len(&self) -> usize {
        self.encr.iv_len()
    }

    pub fn icv_len(&self) -> usize {
        match self.integ {
            Some(i) => i.icv_len(),
            None => AEAD_TAG_LEN,
        }
    }

    /// Length of payloads + padding + Pad Length for `plain_len` bytes of
    /// inner payloads: the smallest multiple of the block length that
    /// leaves room for the Pad Length octet (RFC 7296 §3.14).
    fn padded_len(&self, plain_len: usize) -> usize {
        let b = self.encr.block_len();
        (plain_len + 1).div_ceil(b) * b
    }

    /// Exact length of the SK body (IV, ciphertext with padding and Pad
    /// Length, ICV) that [`encrypt`](SkCipher::encrypt) produces for
    /// `plain_len` bytes of inner payloads. The SK payload length is this
    /// plus 4 (plus 8 for SKF); the message length adds the aad prefix.
    pub fn sk_body_len(&self, plain_len: usize) -> usize {
        self.iv_len() + self.padded_len(plain_len) + self.icv_len()
    }

    /// Encrypt the inner payloads. `aad_prefix` is every message byte before
    /// the IV, lengths already final (module docs). Returns the SK body,
    /// `sk_body_len(plaintext.len())` bytes: IV | ciphertext | ICV. The IV
    /// comes from `rng` (RFC 7296 §3.14: "randomly chosen"; RFC 5282 §3.1
    /// only asks that it never repeat under a key, which a random 64-bit
    /// value does within any IKE SA's message count). Padding is zeros.
    pub fn encrypt(&self, aad_prefix: &[u8], plaintext: &[u8], rng: &mut dyn Rng) -> Result<Vec<u8>, IkeCryptoError> {
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        let padded = self.padded_len(plaintext.len());
        let pad_len = padded - plaintext.len() - 1;
        let pad_octet = u8::try_from(pad_len).map_err(|_| IkeCryptoError::Internal("pad length"))?;
        let mut body = vec![0u8; iv_len + padded + icv_len];
        rng.fill(&mut body[..iv_len]);
        body[iv_len..iv_len + plaintext.len()].copy_from_slice(plaintext);
        body[iv_len + padded - 1] = pad_octet;
        let (iv, rest) = body.split_at_mut(iv_len);
        let (ct, icv) = rest.split_at_mut(padded);
        match &self.imp {
            Imp::Aead { key, salt } => {
                let tag = key
                    .seal_in_place_separate_tag(nonce(salt, iv)?, Aad::from(aad_prefix), ct)
                    .map_err(|_| IkeCryptoError::Internal("AEAD seal"))?;
                icv.copy_from_slice(tag.as_ref());
            }
            Imp::Cbc { cbc, mac, integ } => {
                cbc.encrypt(iv, ct)?;
                icv.copy_from_slice(&integ.compute_with(mac, &[aad_prefix, iv, ct]));
            }
        }
        Ok(body)
    }

    /// Verify and decrypt an SK body (IV | ciphertext | ICV); return the
    /// inner payloads with padding and Pad Length removed. `aad_prefix` is
    /// every received message byte before the IV. Nothing is decrypted
    /// unless the ICV verifies. Pad bytes are not checked (RFC 7296 §3.14:
    /// any value).
    pub fn decrypt(&self, aad_prefix: &[u8], sk_body: &[u8]) -> Result<Vec<u8>, IkeCryptoError> {
        let (iv_len, icv_len) = (self.iv_len(), self.icv_len());
        let b = self.encr.block_len();
        if sk_body.len() < iv_len + b + icv_len {
            return Err(IkeCryptoError::Malformed("shorter than IV, one block and ICV"));
        }
        let (iv, rest) = sk_body.split_at(iv_len);
        let (ct, icv) = rest.split_at(rest.len() - icv_len);
        if ct.len() % b != 0 {
            return Err(IkeCryptoError::Malformed("ciphertext is not a whole number of blocks"));
        }
        let mut plain = Zeroizing::new(ct.to_vec());
        match &self.imp {
            Imp::Aead { key, salt } => {
                key.open_in_place_separate_tag(nonce(salt, iv)?, Aad::from(aad_prefix), icv, &mut plain)
                    .map_err(|_| IkeCryptoError::IntegrityCheckFailed)?;
            }
            Imp::Cbc { cbc, mac, integ } => {
                integ.verify_with(mac, &[aad_prefix, iv, ct], icv)?;
                cbc.decrypt(iv, &mut plain)?;
            }
        }
        let pad_len = usize::from(plain[plain.len() - 1]);
        if pad_len + 1 > plain.len() {
            return Err(IkeCryptoError::Malformed("pad length beyond the plaintext"));
        }
        let n = plain.len() - pad_len - 1;
        Ok(plain[..n].to_vec())
    }

    /// [`encrypt`](SkCipher::encrypt) for a message under construction:
    /// `message` holds everything up to the IV (lengths final); the SK
    /// body is appended.
    pub fn encrypt_message(
        &self,
        message: &mut Vec<u8>,
        plaintext: &[u8],
        rng: &mut dyn Rng,
    ) -> Result<(), IkeCryptoError> {
        let body = self.encrypt(message, plaintext, rng)?;
        message.extend_from_slice(&body);
        Ok(())
    }

    /// [`decrypt`](SkCipher::decrypt) for a received message whose SK (or
    /// SKF) payload is last (RFC 7296 §3.14: it must be) and whose IV starts
    /// at `iv_offset`.
    pub fn decrypt_message(&self, message: &[u8], iv_offset: usize) -> Result<Vec<u8>, IkeCryptoError> {
        if iv_offset > message.len() {
            return Err(IkeCryptoError::Malformed("IV offset beyond the message"));
        }
        let (aad, body) = message.split_at(iv_offset);
        self.decrypt(aad, body)
    }
}

/// RFC 5282 §4 / RFC 7634 §2: nonce = salt (4) | IV (8).
fn nonce(salt: &[u8; AEAD_SALT_LEN], iv: &[u8]) -> Result<Nonce, IkeCryptoError> {
    if iv.len() != AEAD_IV_LEN {
        return Err(IkeCryptoError::Internal("IV length"));
    }
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(iv);
    Ok(Nonce::assume_unique_for_key(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::testutil::h;
    use crate::ike::SeededRng;

    fn key(n: usize, start: u8) -> SecretBytes {
        SecretBytes::new((0..n).map(|i| start.wrapping_add(i as u8)).collect())
    }

    fn suites() -> Vec<(Encr, Option<Integ>)> {
        let mut v = vec![];
        for e in Encr::ALL {
            if e.is_aead() {
                v.push((e, None));
            } else {
                for i in Integ::ALL {
                    v.push((e, Some(i)));
                }
            }
        }
        v
    }

    fn cipher(e: Encr, i: Option<Integ>) -> SkCipher {
        let a = i.map(|i| key(i.key_len(), 0x80));
        SkCipher::new(e, i, &key(e.key_len(), 0x00), a.as_ref()).unwrap()
    }

    /// A fake IKE header (28 bytes) and SK generic header (4 bytes).
    fn prefix() -> Vec<u8> {
        let mut p: Vec<u8> = (0..28).collect();
        p.extend_from_slice(&[0x23, 0x00, 0x00, 0x50]);
        p
    }

    #[test]
    fn roundtrip_and_lengths_every_suite() {
        let mut rng = SeededRng::from_u64(1);
        for (e, i) in suites() {
            let c = cipher(e, i);
            for len in [0usize, 1, 15, 16, 17, 100] {
                let plain: Vec<u8> = (0..len as u8).collect();
                let body = c.encrypt(&prefix(), &plain, &mut rng).unwrap();
                assert_eq!(body.len(), c.sk_body_len(len), "{c:?} {len}");
                assert_eq!((body.len() - c.iv_len() - c.icv_len()) % e.block_len(), 0);
                assert_eq!(c.decrypt(&prefix(), &body).unwrap(), plain, "{c:?} {len}");
                let mut msg = prefix();
                c.encrypt_message(&mut msg, &plain, &mut rng).unwrap();
                assert_eq!(c.decrypt_message(&msg, 32).unwrap(), plain);
            }
        }
    }

    #[test]
    fn any_flipped_bit_in_header_iv_ciphertext_or_icv_is_refused() {
        let mut rng = SeededRng::from_u64(2);
        for (e, i) in suites() {
            let c = cipher(e, i);
            let mut msg = prefix();
            c.encrypt_message(&mut msg, b"IDi AUTH SA TSi TSr", &mut rng).unwrap();
            for pos in 0..msg.len() {
                let mut t = msg.clone();
                t[pos] ^= 0x80;
                assert_eq!(
                    c.decrypt_message(&t, 32),
                    Err(IkeCryptoError::IntegrityCheckFailed),
                    "{c:?} byte {pos}"
                );
            }
            // Other direction's keys do not open it.
            let a = i.map(|i| key(i.key_len(), 0x81));
            let other = SkCipher::new(e, i, &key(e.key_len(), 0x01), a.as_ref()).unwrap();
            assert!(other.decrypt_message(&msg, 32).is_err());
        }
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for (e, i) in suites() {
            let c = cipher(e, i);
            for n in 0..(c.iv_len() + c.icv_len() + 40) {
                let body = vec![0x42u8; n];
                assert!(c.decrypt(&prefix(), &body).is_err());
            }
            assert!(c.decrypt_message(&prefix(), 33).is_err());
        }
    }

    #[test]
    fn bad_pad_length_after_valid_icv_is_malformed() {
        // A CBC body whose last plaintext byte claims 16 bytes of padding in
        // a 16-byte plaintext, authenticated correctly.
        let (e, i) = (Encr::AesCbc { key_bits: 128 }, Integ::HmacSha256_128);
        let c = cipher(e, Some(i));
        let mut body = c.encrypt(&prefix(), &[0u8; 14], &mut SeededRng::from_u64(3)).unwrap();
        // Re-encrypt by hand: decrypt, corrupt the pad length, encrypt.
        let iv: [u8; 16] = body[..16].try_into().unwrap();
        let k = UnboundCipherKey::new(&cipher::AES_128, key(16, 0).expose()).unwrap();
        let enc = EncryptingKey::cbc(k).unwrap();
        let mut pt = [0u8; 16];
        pt[15] = 16;
        enc.less_safe_encrypt(&mut pt, EncryptionContext::Iv128(FixedLength::from(iv)))
            .unwrap();
        body[16..32].copy_from_slice(&pt);
        let icv = i.compute(key(32, 0x80).expose(), &[&prefix(), &body[..32]]).unwrap();
        body[32..].copy_from_slice(&icv);
        assert_eq!(
            c.decrypt(&prefix(), &body),
            Err(IkeCryptoError::Malformed("pad length beyond the plaintext"))
        );
    }

    #[test]
    fn key_and_algorithm_misuse_is_refused() {
        let gcm = Encr::AesGcm16 { key_bits: 128 };
        assert!(matches!(
            SkCipher::new(gcm, None, &key(16, 0), None),
            Err(IkeCryptoError::BadKeyLength { need: 20, have: 16, .. })
        ));
        let a = key(32, 0);
        assert!(SkCipher::new(gcm, Some(Integ::HmacSha256_128), &key(20, 0), Some(&a)).is_err());
        let cbc = Encr::AesCbc { key_bits: 256 };
        assert!(SkCipher::new(cbc, None, &key(32, 0), None).is_err());
        assert!(SkCipher::new(cbc, Some(Integ::HmacSha256_128), &key(32, 0), None).is_err());
        assert_eq!(
            Encr::from_transform(12, Some(192)),
            Err(IkeCryptoError::Unsupported {
                transform: "ENCR",
                id: 12
            })
        );
        assert!(Encr::from_transform(12, None).is_err());
        assert!(Encr::from_transform(28, Some(256)).is_err());
        assert_eq!(Encr::from_transform(3, None), Ok(Encr::TripleDesCbc));
        assert!(
            Encr::from_transform(3, Some(192)).is_err(),
            "fixed key length: no attribute"
        );
        assert_eq!(Encr::from_transform(2, None), Ok(Encr::DesCbc));
        assert!(Encr::from_transform(1, None).is_err()); // ENCR_DES_IV64
        let tdes = Encr::TripleDesCbc;
        assert_eq!((tdes.key_len(), tdes.iv_len(), tdes.block_len()), (24, 8, 8));
        assert_eq!(
            (tdes.name(), tdes.keyword(), tdes.strongswan_name()),
            ("ENCR_3DES".into(), "3des", "3DES_CBC".into())
        );
        assert_eq!((Encr::DesCbc.key_len(), Encr::DesCbc.keyword()), (8, "des"));
        let insecure: Vec<Encr> = Encr::ALL.into_iter().filter(|e| e.is_insecure()).collect();
        assert_eq!(insecure, [Encr::DesCbc]);
        assert!(!tdes.is_aead());
        assert!(matches!(
            SkCipher::new(tdes, Some(Integ::HmacMd5_96), &key(16, 0), Some(&key(16, 0))),
            Err(IkeCryptoError::BadKeyLength { need: 24, have: 16, .. })
        ));
        for e in Encr::ALL {
            assert_eq!(Encr::from_transform(e.transform_id(), e.key_length_attribute()), Ok(e));
        }
    }

    /// Known answers from an independent implementation (python3
    /// `cryptography` 48), fixed IV from a counting RNG (0x00, 0x01, ...),
    /// SK_e = 00 01 02 ..., SK_a = 80 81 82 ..., prefix = 00..1b | 23 00 00 50,
    /// plaintext "IDi AUTH SA TSi TSr" (19 bytes):
    ///
    /// ```text
    /// from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
    /// from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    /// import hmac, hashlib
    /// pre = bytes(range(28)) + bytes([0x23, 0, 0, 0x50]); pt = b"IDi AUTH SA TSi TSr"
    /// k = bytes(range(20)); iv = bytes(range(8))
    /// gcm = iv + AESGCM(k[:16]).encrypt(k[16:] + iv, pt + b"\x00", pre)
    /// k = bytes(range(36))
    /// cc = iv + ChaCha20Poly1305(k[:32]).encrypt(k[32:] + iv, pt + b"\x00", pre)
    /// k = bytes(range(16)); a = bytes(range(0x80, 0xa0)); iv = bytes(range(16))
    /// p = pt + bytes(12) + b"\x0c"
    /// e = Cipher(algorithms.AES(k), modes.CBC(iv)).encryptor()
    /// ct = iv + e.update(p) + e.finalize()
    /// cbc = ct + hmac.new(a, pre + ct, hashlib.sha256).digest()[:16]
    /// from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    /// k = bytes(range(24)); a = bytes(range(0x80, 0x90)); iv = bytes(range(8))
    /// p = pt + bytes(4) + b"\x04"
    /// e = Cipher(TripleDES(k), modes.CBC(iv)).encryptor()
    /// ct = iv + e.update(p) + e.finalize()
    /// tdes = ct + hmac.new(a, pre + ct, hashlib.md5).digest()[:12]
    /// ```
    #[test]
    fn known_answers_against_python_cryptography() {
        let plain = b"IDi AUTH SA TSi TSr";
        let cases = [
            (
                Encr::AesGcm16 { key_bits: 128 },
                None,
                "00010203040506071f7206d6f4678f3cf623cd57eeafbae3f1977c49a9bd42674cb3e078e64b47050de28548",
            ),
            (
                Encr::ChaCha20Poly1305,
                None,
                "0001020304050607a0cac388536e8354e0481bb431475b5b0abff1eaf473ff6100e771f2d80000a52e4c9166",
            ),
            (
                Encr::AesCbc { key_bits: 128 },
                Some(Integ::HmacSha256_128),
                "000102030405060708090a0b0c0d0e0fae6ec700b0cf4d6f94b626342ffffe236d1ac2d2afc021a04cb0e1294a2c02728e30409a52c9793bd4f34be37fe4afc6",
            ),
            (
                Encr::TripleDesCbc,
                Some(Integ::HmacMd5_96),
                "0001020304050607dd68b1d33fc9cd9e0cdc2f0ce92ee14227ea12cf4790c5930bd2243e7766ac868875441a",
            ),
        ];
        for (e, i, want) in cases {
            let c = cipher(e, i);
            let mut n = 0u8;
            let mut counting = |out: &mut [u8]| {
                for b in out {
                    *b = n;
                    n += 1;
                }
            };
            let body = c.encrypt(&prefix(), plain, &mut counting).unwrap();
            assert_eq!(body, h(want), "{c:?}");
            assert_eq!(c.decrypt(&prefix(), &h(want)).unwrap(), plain);
        }
    }
}
