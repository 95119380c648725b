//! Proposals written as strongSwan writes them (`ike = ...`, `esp_proposals
//! = ...` in swanctl.conf): algorithm keywords joined by `-`, proposals
//! separated by `,`.
//!
//! ```text
//! aes128gcm16-prfsha256-x25519                  IKE, AEAD: the PRF is required
//! aes128-sha256-modp2048                        IKE: PRF derived from sha256
//! aes128-aes256-sha256-sha1-modp2048-ecp256     several per transform type
//! aes128gcm16, aes128-sha1, aes128gcm16-x25519  ESP (x25519 = PFS group)
//! aes128-sha256-esn                             ESP with extended sequence numbers
//! 3des-sha1-modp1024, des-md5-modp768           IKEv1 legacy (des, md5, modp768: is_insecure)
//! ```
//!
//! A proposal holds, per transform type, the transforms in preference order
//! (RFC 7296 §3.3: the responder picks one of each type).

use core::fmt;

use super::{DhGroup, Encr, IkeSuite, Integ, Prf};
use crate::{EspAlgorithm, EspInteg};

/// Transform Type numbers (RFC 7296 §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransformType {
    /// 1
    Encr,
    /// 2
    Prf,
    /// 3
    Integ,
    /// 4 (Diffie-Hellman group / key exchange method)
    Ke,
    /// 5
    Esn,
}

impl TransformType {
    pub fn value(self) -> u8 {
        match self {
            TransformType::Encr => 1,
            TransformType::Prf => 2,
            TransformType::Integ => 3,
            TransformType::Ke => 4,
            TransformType::Esn => 5,
        }
    }

    pub fn from_value(v: u8) -> Option<TransformType> {
        Some(match v {
            1 => TransformType::Encr,
            2 => TransformType::Prf,
            3 => TransformType::Integ,
            4 => TransformType::Ke,
            5 => TransformType::Esn,
            _ => return None,
        })
    }
}

/// One Transform substructure: type, ID and Key Length attribute
/// (RFC 7296 §3.3.2, §3.3.5), ready for the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transform {
    pub ty: TransformType,
    pub id: u16,
    pub key_length: Option<u16>,
}

/// Extended Sequence Numbers transform (Transform Type 5, RFC 7296 §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Esn {
    /// 0: no extended sequence numbers.
    No,
    /// 1: extended sequence numbers (RFC 4303 §2.2.1).
    Yes,
}

impl Esn {
    pub fn transform_id(self) -> u16 {
        match self {
            Esn::No => 0,
            Esn::Yes => 1,
        }
    }

    pub fn from_transform_id(id: u16) -> Option<Esn> {
        match id {
            0 => Some(Esn::No),
            1 => Some(Esn::Yes),
            _ => None,
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            Esn::No => "noesn",
            Esn::Yes => "esn",
        }
    }
}

/// A proposal string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalError {
    /// The offending proposal (one of the comma-separated ones).
    pub proposal: String,
    pub reason: String,
}

impl fmt::Display for ProposalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proposal '{}': {}", self.proposal, self.reason)
    }
}

impl std::error::Error for ProposalError {}

/// An IKE SA proposal: acceptable transforms per type, in preference order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IkeProposal {
    pub encr: Vec<Encr>,
    /// Empty for AEAD proposals.
    pub integ: Vec<Integ>,
    pub prf: Vec<Prf>,
    pub dh: Vec<DhGroup>,
}

/// A CHILD SA (ESP) proposal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ChildProposal {
    pub encr: Vec<Encr>,
    /// Empty for AEAD proposals.
    pub integ: Vec<Integ>,
    /// Key exchange for PFS in CREATE_CHILD_SA (RFC 7296 §1.3.1); empty
    /// without PFS.
    pub dh: Vec<DhGroup>,
    pub esn: Vec<Esn>,
}

/// The algorithms negotiated for one CHILD SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildSuite {
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub dh: Option<DhGroup>,
    pub esn: bool,
}

impl ChildSuite {
    /// The ESP data-plane algorithm, when ikeda's ESP implements it (the
    /// mapping, by IANA transform IDs, lives with the data plane).
    pub fn esp_algorithm(&self) -> Option<EspAlgorithm> {
        EspAlgorithm::from_ikev2(
            self.encr.transform_id(),
            self.encr.key_length_attribute(),
            self.integ.map(Integ::transform_id),
        )
    }

    /// As [`esp_algorithm`](ChildSuite::esp_algorithm), or what the data
    /// plane lacks, named as a proposal names it: the integrity algorithm
    /// (`integrity algorithm sha384 (HMAC_SHA2_384_192)`) when that is what
    /// is missing, else the cipher (`cipher des`), else the pairing.
    pub fn esp_algorithm_or_missing(&self) -> Result<EspAlgorithm, String> {
        if let Some(a) = self.esp_algorithm() {
            return Ok(a);
        }
        let (id, kl) = (self.encr.transform_id(), self.encr.key_length_attribute());
        if let Some(i) = self.integ {
            if EspInteg::from_ikev2(i.transform_id()).is_none() {
                return Err(format!("integrity algorithm {} ({})", i.keyword(), i.strongswan_name()));
            }
        }
        let cipher_known = core::iter::once(None)
            .chain(EspInteg::ALL.map(|i| Some(i.ikev2_id())))
            .any(|i| EspAlgorithm::from_ikev2(id, kl, i).is_some());
        if !cipher_known {
            return Err(format!("cipher {}", self.encr.keyword()));
        }
        Err(match self.integ {
            Some(i) => format!("{} with {}", self.encr.keyword(), i.keyword()),
            None => format!("{} without an integrity algorithm", self.encr.keyword()),
        })
    }
}

enum Token {
    Encr(Encr),
    Integ(Integ),
    Prf(Prf),
    Dh(DhGroup),
    Esn(Esn),
}

fn token(word: &str) -> Result<Token, String> {
    use Token::*;
    Ok(match word {
        "aes" | "aes128" | "aes128cbc" => Encr(super::Encr::AesCbc { key_bits: 128 }),
        "aes256" | "aes256cbc" => Encr(super::Encr::AesCbc { key_bits: 256 }),
        "aes128gcm16" | "aes128gcm128" => Encr(super::Encr::AesGcm16 { key_bits: 128 }),
        "aes256gcm16" | "aes256gcm128" => Encr(super::Encr::AesGcm16 { key_bits: 256 }),
        "chacha20poly1305" => Encr(super::Encr::ChaCha20Poly1305),
        "3des" => Encr(super::Encr::TripleDesCbc),
        "des" => Encr(super::Encr::DesCbc),
        "md5" | "md5_96" => Integ(super::Integ::HmacMd5_96),
        "sha" | "sha1" => Integ(super::Integ::HmacSha1_96),
        "sha256" | "sha2_256" => Integ(super::Integ::HmacSha256_128),
        "sha384" | "sha2_384" => Integ(super::Integ::HmacSha384_192),
        "sha512" | "sha2_512" => Integ(super::Integ::HmacSha512_256),
        "prfmd5" => Prf(super::Prf::HmacMd5),
        "prfsha1" => Prf(super::Prf::HmacSha1),
        "prfsha256" => Prf(super::Prf::HmacSha256),
        "prfsha384" => Prf(super::Prf::HmacSha384),
        "prfsha512" => Prf(super::Prf::HmacSha512),
        "modp768" => Dh(DhGroup::Modp768),
        "modp1024" => Dh(DhGroup::Modp1024),
        "modp1536" => Dh(DhGroup::Modp1536),
        "modp2048" => Dh(DhGroup::Modp2048),
        "modp3072" => Dh(DhGroup::Modp3072),
        "modp4096" => Dh(DhGroup::Modp4096),
        "ecp256" => Dh(DhGroup::Ecp256),
        "ecp384" => Dh(DhGroup::Ecp384),
        "ecp521" => Dh(DhGroup::Ecp521),
        "curve25519" | "x25519" => Dh(DhGroup::Curve25519),
        "esn" => Esn(super::Esn::Yes),
        "noesn" => Esn(super::Esn::No),
        // Known to strongSwan, deliberately not implemented here.
        "aes192" | "aes192gcm16" | "aes128gcm8" | "aes128gcm12" | "aes256gcm8" | "aes256gcm12" | "aes128ctr"
        | "aes256ctr" | "null" | "aesxcbc" | "prfaesxcbc" | "modp6144" | "modp8192" | "ecp192" | "ecp224"
        | "curve448" | "x448" => return Err(format!("algorithm '{word}' is not supported")),
        _ => return Err(format!("unknown algorithm '{word}'")),
    })
}

fn push<T: PartialEq>(v: &mut Vec<T>, t: T) {
    if !v.contains(&t) {
        v.push(t);
    }
}

/// The transforms of a proposal by type: from a proposal string, or from
/// received transforms.
#[derive(Default)]
struct Parsed {
    encr: Vec<Encr>,
    integ: Vec<Integ>,
    prf: Vec<Prf>,
    dh: Vec<DhGroup>,
    esn: Vec<Esn>,
}

impl Parsed {
    /// From received transforms; those we do not implement are skipped (a
    /// type left empty means the proposal cannot be chosen).
    fn from_transforms(transforms: &[Transform]) -> Parsed {
        let mut p = Parsed::default();
        for t in transforms {
            match t.ty {
                TransformType::Encr => {
                    if let Ok(e) = Encr::from_transform(t.id, t.key_length) {
                        push(&mut p.encr, e)
                    }
                }
                TransformType::Prf => Prf::from_transform_id(t.id)
                    .into_iter()
                    .for_each(|x| push(&mut p.prf, x)),
                TransformType::Integ => Integ::from_transform_id(t.id)
                    .into_iter()
                    .for_each(|x| push(&mut p.integ, x)),
                TransformType::Ke => DhGroup::from_transform_id(t.id)
                    .into_iter()
                    .for_each(|x| push(&mut p.dh, x)),
                TransformType::Esn => Esn::from_transform_id(t.id)
                    .into_iter()
                    .for_each(|x| push(&mut p.esn, x)),
            }
        }
        p
    }
}

/// The cipher and, unless it is an AEAD, the integrity algorithm both lists
/// have, in our order (RFC 7296 §2.7); an AEAD offered with an integrity
/// algorithm is no match (§3.3).
fn select_encr_integ(ours: (&[Encr], &[Integ]), offered: (&[Encr], &[Integ])) -> Option<(Encr, Option<Integ>)> {
    let encr = first_common(ours.0, offered.0)?;
    if encr.is_aead() {
        return offered.1.is_empty().then_some((encr, None));
    }
    Some((encr, Some(first_common(ours.1, offered.1)?)))
}

fn parse_one(s: &str) -> Result<Parsed, String> {
    let mut p = Parsed {
        encr: vec![],
        integ: vec![],
        prf: vec![],
        dh: vec![],
        esn: vec![],
    };
    for word in s.split('-') {
        let word = word.trim().to_ascii_lowercase();
        if word.is_empty() {
            return Err("empty algorithm name".into());
        }
        match token(&word)? {
            Token::Encr(e) => push(&mut p.encr, e),
            Token::Integ(i) => push(&mut p.integ, i),
            Token::Prf(f) => push(&mut p.prf, f),
            Token::Dh(d) => push(&mut p.dh, d),
            Token::Esn(e) => push(&mut p.esn, e),
        }
    }
    if p.encr.is_empty() {
        return Err("no encryption algorithm".into());
    }
    let aead = p.encr.iter().filter(|e| e.is_aead()).count();
    if aead != 0 && aead != p.encr.len() {
        return Err("AEAD and non-AEAD ciphers cannot be combined in one proposal".into());
    }
    if aead != 0 && !p.integ.is_empty() {
        return Err("AEAD ciphers take no integrity algorithm (RFC 5282 §8)".into());
    }
    if aead == 0 && p.integ.is_empty() {
        return Err("a non-AEAD cipher needs an integrity algorithm".into());
    }
    Ok(p)
}

/// strongSwan derives the IKE PRF from the integrity algorithm when the
/// proposal names none.
fn prf_for(integ: Integ) -> Prf {
    match integ {
        Integ::HmacMd5_96 => Prf::HmacMd5,
        Integ::HmacSha1_96 => Prf::HmacSha1,
        Integ::HmacSha256_128 => Prf::HmacSha256,
        Integ::HmacSha384_192 => Prf::HmacSha384,
        Integ::HmacSha512_256 => Prf::HmacSha512,
    }
}

fn split_list<T>(s: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, ProposalError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let err = |reason: String| ProposalError {
            proposal: part.to_string(),
            reason,
        };
        if part.is_empty() {
            return Err(err("empty proposal".into()));
        }
        out.push(one(part).map_err(err)?);
    }
    Ok(out)
}

/// Parse a comma-separated list of IKE proposals.
pub fn parse_ike_proposals(s: &str) -> Result<Vec<IkeProposal>, ProposalError> {
    split_list(s, IkeProposal::parse_one)
}

/// Parse a comma-separated list of ESP proposals.
pub fn parse_esp_proposals(s: &str) -> Result<Vec<ChildProposal>, ProposalError> {
    split_list(s, ChildProposal::parse_one)
}

fn first_common<T: Copy + PartialEq>(ours: &[T], theirs: &[T]) -> Option<T> {
    ours.iter().copied().find(|t| theirs.contains(t))
}

impl IkeProposal {
    fn parse_one(s: &str) -> Result<IkeProposal, String> {
        let mut p = parse_one(s)?;
        if !p.esn.is_empty() {
            return Err("ESN is not an IKE transform".into());
        }
        if p.prf.is_empty() {
            if p.integ.is_empty() {
                return Err("a PRF is required with AEAD ciphers (e.g. prfsha256)".into());
            }
            for i in &p.integ {
                push(&mut p.prf, prf_for(*i));
            }
        }
        if p.dh.is_empty() {
            return Err("a key exchange method is required (e.g. x25519)".into());
        }
        Ok(IkeProposal {
            encr: p.encr,
            integ: p.integ,
            prf: p.prf,
            dh: p.dh,
        })
    }

    /// Parse exactly one proposal.
    pub fn parse(s: &str) -> Result<IkeProposal, ProposalError> {
        IkeProposal::parse_one(s.trim()).map_err(|reason| ProposalError {
            proposal: s.trim().to_string(),
            reason,
        })
    }

    /// True if any transform is insecure (DES, MD5, MODP_768): configuration
    /// refuses such a proposal unless `allow_insecure` is set.
    pub fn is_insecure(&self) -> bool {
        self.encr.iter().any(|e| e.is_insecure())
            || self.integ.iter().any(|i| i.is_insecure())
            || self.prf.iter().any(|p| p.is_insecure())
            || self.dh.iter().any(|d| d.is_insecure())
    }

    /// strongSwan keywords, the PRF always explicit, e.g.
    /// `aes128-sha256-prfsha256-modp2048`; parses back to the same proposal.
    pub fn name(&self) -> String {
        let mut w: Vec<&str> = self.encr.iter().map(|e| e.keyword()).collect();
        w.extend(self.integ.iter().map(|i| i.keyword()));
        w.extend(self.prf.iter().map(|p| p.keyword()));
        w.extend(self.dh.iter().map(|d| d.keyword()));
        w.join("-")
    }

    /// The transforms for an SA payload, by type: ENCR, PRF, INTEG, KE.
    pub fn transforms(&self) -> Vec<Transform> {
        let mut t: Vec<Transform> = self.encr.iter().map(|e| encr_transform(*e)).collect();
        t.extend(self.prf.iter().map(|p| plain(TransformType::Prf, p.transform_id())));
        t.extend(self.integ.iter().map(|i| plain(TransformType::Integ, i.transform_id())));
        t.extend(self.dh.iter().map(|d| plain(TransformType::Ke, d.transform_id())));
        t
    }

    /// The proposal of one negotiated suite: one transform of each type
    /// (none for integrity with an AEAD cipher).
    pub fn of_suite(s: &super::IkeSuite) -> IkeProposal {
        IkeProposal {
            encr: vec![s.encr],
            integ: s.integ.into_iter().collect(),
            prf: vec![s.prf],
            dh: vec![s.dh],
        }
    }

    /// A proposal from received transforms; transforms we do not implement
    /// are skipped (a type left empty means the proposal cannot be chosen).
    pub fn from_transforms(transforms: &[Transform]) -> IkeProposal {
        let p = Parsed::from_transforms(transforms);
        IkeProposal {
            encr: p.encr,
            integ: p.integ,
            prf: p.prf,
            dh: p.dh,
        }
    }

    /// One transform of each type present in both proposals, in our
    /// preference order (RFC 7296 §2.7); `None` if a type has no match.
    pub fn select(&self, offered: &IkeProposal) -> Option<IkeSuite> {
        let (encr, integ) = select_encr_integ((&self.encr, &self.integ), (&offered.encr, &offered.integ))?;
        Some(IkeSuite {
            encr,
            integ,
            prf: first_common(&self.prf, &offered.prf)?,
            dh: first_common(&self.dh, &offered.dh)?,
        })
    }
}

impl ChildProposal {
    fn parse_one(s: &str) -> Result<ChildProposal, String> {
        let p = parse_one(s)?;
        if !p.prf.is_empty() {
            return Err("a PRF is not an ESP transform".into());
        }
        Ok(ChildProposal {
            encr: p.encr,
            integ: p.integ,
            dh: p.dh,
            esn: if p.esn.is_empty() { vec![Esn::No] } else { p.esn },
        })
    }

    /// Parse exactly one proposal.
    pub fn parse(s: &str) -> Result<ChildProposal, ProposalError> {
        ChildProposal::parse_one(s.trim()).map_err(|reason| ProposalError {
            proposal: s.trim().to_string(),
            reason,
        })
    }

    /// True if any transform is insecure (DES, MD5, MODP_768).
    pub fn is_insecure(&self) -> bool {
        self.encr.iter().any(|e| e.is_insecure())
            || self.integ.iter().any(|i| i.is_insecure())
            || self.dh.iter().any(|d| d.is_insecure())
    }

    /// strongSwan keywords; ESN printed only when not the default `noesn`.
    pub fn name(&self) -> String {
        let mut w: Vec<&str> = self.encr.iter().map(|e| e.keyword()).collect();
        w.extend(self.integ.iter().map(|i| i.keyword()));
        w.extend(self.dh.iter().map(|d| d.keyword()));
        if self.esn != [Esn::No] {
            w.extend(self.esn.iter().map(|e| e.keyword()));
        }
        w.join("-")
    }

    /// The transforms for an SA payload: ENCR, INTEG, KE, ESN.
    pub fn transforms(&self) -> Vec<Transform> {
        let mut t: Vec<Transform> = self.encr.iter().map(|e| encr_transform(*e)).collect();
        t.extend(self.integ.iter().map(|i| plain(TransformType::Integ, i.transform_id())));
        t.extend(self.dh.iter().map(|d| plain(TransformType::Ke, d.transform_id())));
        t.extend(self.esn.iter().map(|e| plain(TransformType::Esn, e.transform_id())));
        t
    }

    /// A proposal from received transforms (unknown ones skipped).
    pub fn from_transforms(transforms: &[Transform]) -> ChildProposal {
        let p = Parsed::from_transforms(transforms);
        ChildProposal {
            encr: p.encr,
            integ: p.integ,
            dh: p.dh,
            esn: p.esn,
        }
    }

    /// One transform of each type in both proposals, in our preference
    /// order. A KE transform must be in both or in neither (no PFS).
    pub fn select(&self, offered: &ChildProposal) -> Option<ChildSuite> {
        let (encr, integ) = select_encr_integ((&self.encr, &self.integ), (&offered.encr, &offered.integ))?;
        let dh = match (self.dh.is_empty(), offered.dh.is_empty()) {
            (true, true) => None,
            (false, false) => Some(first_common(&self.dh, &offered.dh)?),
            _ => return None,
        };
        let esn = first_common(&self.esn, &offered.esn)? == Esn::Yes;
        Some(ChildSuite { encr, integ, dh, esn })
    }

    /// The proposal without its KE transforms: what the SA payload of
    /// IKE_AUTH carries. RFC 7296 §1.2: IKE_AUTH has no KEi/KEr, so the
    /// CHILD SA it creates has no PFS of its own ("SAi2 ... must not
    /// contain a KE transform with a value other than NONE"); the group
    /// applies to later CREATE_CHILD_SA exchanges (§1.3.1, §2.17).
    pub fn without_ke(&self) -> ChildProposal {
        ChildProposal {
            dh: Vec::new(),
            ..self.clone()
        }
    }

    /// The proposal with `group` as its preferred KE transform, when it
    /// has that group at all (the initiator's proposals must agree with
    /// the KEi it sends, RFC 7296 §1.3).
    pub fn with_group_first(&self, group: DhGroup) -> Option<ChildProposal> {
        if !self.dh.contains(&group) {
            return None;
        }
        let mut p = self.clone();
        p.dh.retain(|g| *g != group);
        p.dh.insert(0, group);
        Some(p)
    }
}

/// The proposals for IKE_AUTH: KE transforms stripped (RFC 7296 §1.2), and
/// proposals that became identical by it offered once, in the original
/// order (`aes128gcm16-x25519,aes128gcm16-ecp256` is one proposal there).
pub fn ike_auth_proposals(proposals: &[ChildProposal]) -> Vec<ChildProposal> {
    let mut out: Vec<ChildProposal> = Vec::new();
    for p in proposals {
        push(&mut out, p.without_ke());
    }
    out
}

fn encr_transform(e: Encr) -> Transform {
    Transform {
        ty: TransformType::Encr,
        id: e.transform_id(),
        key_length: e.key_length_attribute(),
    }
}

fn plain(ty: TransformType, id: u16) -> Transform {
    Transform {
        ty,
        id,
        key_length: None,
    }
}

impl fmt::Display for IkeProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Display for ChildProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike_aead_proposals() {
        let p = IkeProposal::parse("aes128gcm16-prfsha256-x25519").unwrap();
        assert_eq!(p.encr, [Encr::AesGcm16 { key_bits: 128 }]);
        assert!(p.integ.is_empty());
        assert_eq!(p.prf, [Prf::HmacSha256]);
        assert_eq!(p.dh, [DhGroup::Curve25519]);
        assert_eq!(p.name(), "aes128gcm16-prfsha256-curve25519");
        let p = IkeProposal::parse("aes256gcm16-prfsha384-ecp384").unwrap();
        assert_eq!(p.encr, [Encr::AesGcm16 { key_bits: 256 }]);
        assert_eq!((p.prf[0], p.dh[0]), (Prf::HmacSha384, DhGroup::Ecp384));
        let p = IkeProposal::parse("chacha20poly1305-prfsha256-x25519").unwrap();
        assert_eq!(p.encr, [Encr::ChaCha20Poly1305]);
        // strongSwan: a PRF is mandatory with AEAD.
        assert!(IkeProposal::parse("aes128gcm16-x25519").is_err());
    }

    #[test]
    fn ike_prf_derived_from_integrity() {
        let p = IkeProposal::parse("aes128-sha256-modp2048").unwrap();
        assert_eq!(p.encr, [Encr::AesCbc { key_bits: 128 }]);
        assert_eq!(p.integ, [Integ::HmacSha256_128]);
        assert_eq!(p.prf, [Prf::HmacSha256]);
        assert_eq!(p.dh, [DhGroup::Modp2048]);
        assert_eq!(p.name(), "aes128-sha256-prfsha256-modp2048");
        let p = IkeProposal::parse("aes256-sha1-modp2048").unwrap();
        assert_eq!((p.integ[0], p.prf[0]), (Integ::HmacSha1_96, Prf::HmacSha1));
        let p = IkeProposal::parse("aes128-aes256-sha256-sha1-modp2048-ecp256").unwrap();
        assert_eq!(p.encr, [Encr::AesCbc { key_bits: 128 }, Encr::AesCbc { key_bits: 256 }]);
        assert_eq!(p.integ, [Integ::HmacSha256_128, Integ::HmacSha1_96]);
        assert_eq!(p.prf, [Prf::HmacSha256, Prf::HmacSha1]);
        assert_eq!(p.dh, [DhGroup::Modp2048, DhGroup::Ecp256]);
        // An explicit PRF wins over the derived one.
        let p = IkeProposal::parse("aes256-sha384-prfsha512-ecp521").unwrap();
        assert_eq!(p.prf, [Prf::HmacSha512]);
    }

    /// The IKEv1 proposals people still write, and which of them need
    /// `allow_insecure`.
    #[test]
    fn legacy_ikev1_proposals() {
        let p = IkeProposal::parse("3des-sha1-modp1024").unwrap();
        assert_eq!(
            p,
            IkeProposal {
                encr: vec![Encr::TripleDesCbc],
                integ: vec![Integ::HmacSha1_96],
                prf: vec![Prf::HmacSha1],
                dh: vec![DhGroup::Modp1024],
            }
        );
        assert!(!p.is_insecure(), "3DES and MODP_1024 are weak, not refused");
        assert_eq!(p.name(), "3des-sha1-prfsha1-modp1024");
        let p = IkeProposal::parse("aes256-sha1-modp1024").unwrap();
        assert_eq!(
            (p.encr[0], p.integ[0], p.prf[0], p.dh[0]),
            (
                Encr::AesCbc { key_bits: 256 },
                Integ::HmacSha1_96,
                Prf::HmacSha1,
                DhGroup::Modp1024
            )
        );
        let p = IkeProposal::parse("aes128-sha256-modp2048").unwrap();
        assert!(!p.is_insecure());
        let p = IkeProposal::parse("des-md5-modp768").unwrap();
        assert_eq!(
            p,
            IkeProposal {
                encr: vec![Encr::DesCbc],
                integ: vec![Integ::HmacMd5_96],
                prf: vec![Prf::HmacMd5],
                dh: vec![DhGroup::Modp768],
            }
        );
        assert!(p.is_insecure());
        assert_eq!(IkeProposal::parse(&p.name()).unwrap(), p);
        // Each insecure transform alone is enough.
        for s in [
            "des-sha1-modp2048",
            "aes128-md5-modp2048",
            "aes128-sha1-modp768",
            "aes128-sha1-prfmd5-modp2048",
        ] {
            assert!(IkeProposal::parse(s).unwrap().is_insecure(), "{s}");
        }
        assert_eq!(
            IkeProposal::parse("aes128-sha1-modp1536").unwrap().dh,
            [DhGroup::Modp1536]
        );
        let list = parse_ike_proposals("aes128-sha256-modp2048,3des-sha1-modp1024").unwrap();
        assert!(!list.iter().any(IkeProposal::is_insecure));
        // ESP: 3des-md5 parses; the ESP data plane says whether it runs it.
        let esp = ChildProposal::parse("3des-md5").unwrap();
        assert_eq!((esp.encr[0], esp.integ[0]), (Encr::TripleDesCbc, Integ::HmacMd5_96));
        assert!(
            esp.is_insecure(),
            "HMAC-MD5-96 needs allow_insecure (RFC 8221: MUST NOT)"
        );
        assert!(ChildProposal::parse("des-sha1").unwrap().is_insecure());
        // Wire round trip: 3DES carries no Key Length attribute.
        let t = IkeProposal::parse("3des-aes128-md5-sha1-modp1024-modp768").unwrap();
        assert_eq!(
            t.transforms()[0],
            Transform {
                ty: TransformType::Encr,
                id: 3,
                key_length: None
            }
        );
        assert_eq!(IkeProposal::from_transforms(&t.transforms()), t);
    }

    #[test]
    fn lists_and_roundtrip() {
        let list = parse_ike_proposals(
            "aes256gcm16-prfsha384-ecp384, aes128-sha256-modp2048,AES256-SHA512-PRFSHA512-MODP4096-ECP521",
        )
        .unwrap();
        assert_eq!(list.len(), 3);
        for p in &list {
            assert_eq!(&IkeProposal::parse(&p.name()).unwrap(), p);
        }
        let esp = parse_esp_proposals("aes128gcm16,aes128-sha1,aes128gcm16-x25519,aes256-sha256-modp3072-esn").unwrap();
        assert_eq!(esp.len(), 4);
        for p in &esp {
            assert_eq!(&ChildProposal::parse(&p.name()).unwrap(), p);
        }
        assert_eq!(esp[0].name(), "aes128gcm16");
        assert_eq!(esp[2].dh, [DhGroup::Curve25519]);
        assert_eq!(esp[2].name(), "aes128gcm16-curve25519");
        assert_eq!(esp[3].esn, [Esn::Yes]);
        assert_eq!(esp[1].esn, [Esn::No]);
        let both = ChildProposal::parse("aes128-sha1-esn-noesn").unwrap();
        assert_eq!(both.esn, [Esn::Yes, Esn::No]);
        assert_eq!(both.name(), "aes128-sha1-esn-noesn");
    }

    #[test]
    fn bad_proposals_say_why() {
        for (s, why) in [
            ("aes128-sha256", "key exchange"),
            ("aes128-modp2048", "integrity"),
            ("aes128gcm16-sha256-prfsha256-x25519", "AEAD"),
            ("aes128-aes128gcm16-sha256-modp2048", "combined"),
            ("aes192-sha1-modp2048", "not supported"),
            ("aes128-sha256-modp8192", "not supported"),
            ("aes128-aesxcbc-modp2048", "not supported"),
            ("aes128-sha256-bogus", "unknown"),
            ("aes128--sha256-modp2048", "empty"),
            ("sha256-modp2048", "encryption"),
            ("aes128-sha256-modp2048-esn", "ESN"),
        ] {
            let e = IkeProposal::parse(s).unwrap_err();
            assert!(e.reason.contains(why), "{s}: {e}");
        }
        assert!(parse_ike_proposals("aes128gcm16-prfsha256-x25519,").is_err());
        assert!(parse_esp_proposals("aes128gcm16-prfsha256").is_err());
        assert!(parse_esp_proposals("aes128").is_err());
        let e = parse_ike_proposals("aes128gcm16-prfsha256-x25519, 3des").unwrap_err();
        assert_eq!(e.proposal, "3des");
    }

    #[test]
    fn transforms_and_selection() {
        let ours = IkeProposal::parse("aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp384-x25519").unwrap();
        let t = ours.transforms();
        assert_eq!(
            t[0],
            Transform {
                ty: TransformType::Encr,
                id: 20,
                key_length: Some(256)
            }
        );
        assert_eq!(t.len(), 6);
        assert_eq!(IkeProposal::from_transforms(&t), ours);
        let mut with_unknown = t.clone();
        with_unknown.push(Transform {
            ty: TransformType::Ke,
            id: 18, // MODP_8192: not implemented
            key_length: None,
        });
        assert_eq!(IkeProposal::from_transforms(&with_unknown), ours);

        let theirs = IkeProposal::parse("aes128gcm16-prfsha256-x25519").unwrap();
        let s = ours.select(&theirs).unwrap();
        assert_eq!(
            s,
            IkeSuite {
                encr: Encr::AesGcm16 { key_bits: 128 },
                integ: None,
                prf: Prf::HmacSha256,
                dh: DhGroup::Curve25519
            }
        );
        let cbc = IkeProposal::parse("aes128-sha256-x25519").unwrap();
        assert_eq!(ours.select(&cbc), None);
        let s = cbc.select(&cbc).unwrap();
        assert_eq!(s.integ, Some(Integ::HmacSha256_128));

        let esp = ChildProposal::parse("aes128gcm16-x25519-esn").unwrap();
        assert_eq!(ChildProposal::from_transforms(&esp.transforms()), esp);
        let peer = ChildProposal::parse("aes128gcm16-esn").unwrap();
        assert_eq!(esp.select(&peer), None, "PFS on one side only");
        assert_eq!(esp.without_ke().select(&peer.without_ke()).unwrap().dh, None);
        let list = parse_esp_proposals("aes128gcm16-x25519,aes128gcm16-ecp256-modp2048,aes256gcm16").unwrap();
        let auth = ike_auth_proposals(&list);
        assert_eq!(
            auth.iter().map(|p| p.name()).collect::<Vec<_>>(),
            ["aes128gcm16", "aes256gcm16"],
            "KE stripped, duplicates offered once"
        );
        let p = list[1].with_group_first(DhGroup::Modp2048).unwrap();
        assert_eq!(p.dh, [DhGroup::Modp2048, DhGroup::Ecp256]);
        assert_eq!(list[0].with_group_first(DhGroup::Modp2048), None);
        let s = esp.select(&esp).unwrap();
        assert_eq!(
            s,
            ChildSuite {
                encr: Encr::AesGcm16 { key_bits: 128 },
                integ: None,
                dh: Some(DhGroup::Curve25519),
                esn: true
            }
        );
        assert_eq!(s.esp_algorithm(), Some(EspAlgorithm::AesGcm16 { key_bits: 128 }));
        let s = ChildProposal::parse("aes256-sha256")
            .unwrap()
            .select(&ChildProposal::parse("aes256-sha256").unwrap());
        assert_eq!(
            s.unwrap().esp_algorithm().unwrap().name(),
            "aes256-sha256",
            "maps onto the ESP data plane's algorithm"
        );
        for (kw, integ) in [("sha384", "HMAC_SHA2_384_192"), ("sha512", "HMAC_SHA2_512_256")] {
            let p = ChildProposal::parse(&format!("aes256-{kw}")).unwrap();
            let a = p.select(&p).unwrap().esp_algorithm().unwrap();
            assert_eq!(
                (a.name(), a.strongswan_name()),
                (format!("aes256-{kw}"), format!("AES_CBC-256/{integ}"))
            );
        }
        // What the data plane lacks is named: DES (an IKEv1 phase-1
        // cipher only), or a pairing the parser would not build.
        let suite = |encr, integ| ChildSuite {
            encr,
            integ,
            dh: None,
            esn: false,
        };
        assert_eq!(
            suite(Encr::DesCbc, Some(Integ::HmacSha384_192)).esp_algorithm_or_missing(),
            Err("cipher des".into())
        );
        assert_eq!(
            suite(Encr::AesCbc { key_bits: 256 }, Some(Integ::HmacSha512_256))
                .esp_algorithm_or_missing()
                .map(|a| a.name()),
            Ok("aes256-sha512".into())
        );
        assert_eq!(
            suite(Encr::AesGcm16 { key_bits: 128 }, Some(Integ::HmacSha1_96)).esp_algorithm_or_missing(),
            Err("aes128gcm16 with sha1".into())
        );
        assert_eq!(
            suite(Encr::AesCbc { key_bits: 128 }, None).esp_algorithm_or_missing(),
            Err("aes128 without an integrity algorithm".into())
        );
        // Every IKE integrity algorithm has an ESP counterpart with the
        // same transform ID, key and ICV lengths and names.
        for i in Integ::ALL {
            let e = EspInteg::from_ikev2(i.transform_id()).unwrap();
            assert_eq!(
                (e.key_len(), e.icv_len(), e.keyword(), e.strongswan_name()),
                (i.key_len(), i.icv_len(), i.keyword(), i.strongswan_name()),
                "{i}"
            );
        }
        for v in 1..=5 {
            assert_eq!(TransformType::from_value(v).unwrap().value(), v);
        }
    }
}
