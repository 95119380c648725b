//! Security Association payload, RFC 7296 §3.3: proposals (§3.3.1), their
//! transforms (§3.3.2) and transform attributes (§3.3.5).
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                          <Proposals>                          ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Proposal Substructure (§3.3.1)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Last Substruc |   RESERVED    |         Proposal Length       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                        SPI (variable)                         ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                        <Transforms>                           ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Transform Substructure (§3.3.2)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Last Substruc |   RESERVED    |        Transform Length       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Transform Type |   RESERVED    |          Transform ID         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                      Transform Attributes                     ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Data Attributes (§3.3.5)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |A|       Attribute Type        |    AF=0  Attribute Length     |
//! |F|                             |    AF=1  Attribute Value      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   AF=0  Attribute Value                       |
//! |                   AF=1  Not Transmitted                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Last Substruc is 2 before every proposal but the last and 0 on the last;
//! 3 before every transform but the last and 0 on the last. Num Transforms
//! must equal the number of transforms in Proposal Length. Unknown
//! attributes are kept, so a proposal can be answered or refused knowingly.

use super::iana::{DhGroup, EsnTransformId, PrfTransformId, ProtocolId, TransformAttributeType, TransformType};
use super::{len_u16, len_u8, patch_len_u16, Reader};
use crate::error::Error;
use crate::iana::{EncrTransformId, IntegTransformId};
use core::fmt;

const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
const LAST: u8 = 0;
const PROPOSAL_HEADER_LEN: usize = 8;
const TRANSFORM_HEADER_LEN: usize = 8;

/// The value of a transform attribute, in the format its AF bit chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    /// AF=1: a 16-bit value in place of the length.
    Tv(u16),
    /// AF=0: a 16-bit length, then that many octets.
    Tlv(Vec<u8>),
}

/// A transform attribute (§3.3.5). The only one RFC 7296 defines is Key
/// Length (type 14, TV); others are kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransformAttribute {
    /// Attribute Type, 15 bits.
    pub attr_type: TransformAttributeType,
    pub value: AttributeValue,
}

impl TransformAttribute {
    pub fn key_length(bits: u16) -> Self {
        TransformAttribute {
            attr_type: TransformAttributeType::KEY_LENGTH,
            value: AttributeValue::Tv(bits),
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let t = r.u16()?;
        let attr_type = TransformAttributeType(t & 0x7fff);
        let value = if t & 0x8000 != 0 {
            AttributeValue::Tv(r.u16()?)
        } else {
            let n = r.u16()? as usize;
            AttributeValue::Tlv(r.take(n)?.to_vec())
        };
        Ok(TransformAttribute { attr_type, value })
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.attr_type.0 > 0x7fff {
            return Err(super::too_long(
                "Transform Attribute Type",
                self.attr_type.0 as usize,
                0x7fff,
            ));
        }
        match &self.value {
            AttributeValue::Tv(v) => {
                out.extend_from_slice(&(self.attr_type.0 | 0x8000).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            AttributeValue::Tlv(v) => {
                out.extend_from_slice(&self.attr_type.0.to_be_bytes());
                out.extend_from_slice(&len_u16("Transform Attribute Length", v.len())?.to_be_bytes());
                out.extend_from_slice(v);
            }
        }
        Ok(())
    }
}

/// A transform (§3.3.2): one algorithm of one type. The Transform ID's
/// registry depends on the type; the typed accessors pick it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transform {
    pub transform_type: TransformType,
    pub transform_id: u16,
    pub attributes: Vec<TransformAttribute>,
}

impl Transform {
    /// ENCR with an optional Key Length attribute (required for
    /// variable-length ciphers such as AES, §3.3.5).
    pub fn encr(id: EncrTransformId, key_length: Option<u16>) -> Self {
        Transform {
            transform_type: TransformType::ENCR,
            transform_id: id.0,
            attributes: key_length.map(TransformAttribute::key_length).into_iter().collect(),
        }
    }
    pub fn prf(id: PrfTransformId) -> Self {
        Self::plain(TransformType::PRF, id.0)
    }
    pub fn integ(id: IntegTransformId) -> Self {
        Self::plain(TransformType::INTEG, id.0)
    }
    pub fn dh(group: DhGroup) -> Self {
        Self::plain(TransformType::DH, group.0)
    }
    pub fn esn(id: EsnTransformId) -> Self {
        Self::plain(TransformType::ESN, id.0)
    }
    fn plain(transform_type: TransformType, transform_id: u16) -> Self {
        Transform {
            transform_type,
            transform_id,
            attributes: Vec::new(),
        }
    }

    /// The Key Length attribute in bits, if present (TV format).
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a.value {
            AttributeValue::Tv(v) if a.attr_type == TransformAttributeType::KEY_LENGTH => Some(v),
            _ => None,
        })
    }

    pub fn encr_id(&self) -> Option<EncrTransformId> {
        (self.transform_type == TransformType::ENCR).then_some(EncrTransformId(self.transform_id))
    }
    pub fn prf_id(&self) -> Option<PrfTransformId> {
        (self.transform_type == TransformType::PRF).then_some(PrfTransformId(self.transform_id))
    }
    pub fn integ_id(&self) -> Option<IntegTransformId> {
        (self.transform_type == TransformType::INTEG).then_some(IntegTransformId(self.transform_id))
    }
    pub fn dh_group(&self) -> Option<DhGroup> {
        (self.transform_type == TransformType::DH).then_some(DhGroup(self.transform_id))
    }
    pub fn esn_id(&self) -> Option<EsnTransformId> {
        (self.transform_type == TransformType::ESN).then_some(EsnTransformId(self.transform_id))
    }

    /// Parse one transform; returns it and its Last Substruc octet.
    fn parse(r: &mut Reader<'_>) -> Result<(Self, u8), Error> {
        let mut h = Reader::new("SA Transform", r.take(TRANSFORM_HEADER_LEN)?);
        let last = h.u8()?;
        let _reserved = h.u8()?;
        let len = h.u16()? as usize;
        let transform_type = TransformType(h.u8()?);
        let _reserved = h.u8()?;
        let transform_id = h.u16()?;
        if len < TRANSFORM_HEADER_LEN {
            return Err(Error::Malformed {
                what: "SA Transform Length below 8",
            });
        }
        let mut a = Reader::new("SA Transform Attributes", r.take(len - TRANSFORM_HEADER_LEN)?);
        let mut attributes = Vec::new();
        while !a.is_empty() {
            attributes.push(TransformAttribute::parse(&mut a)?);
        }
        Ok((
            Transform {
                transform_type,
                transform_id,
                attributes,
            },
            last,
        ))
    }

    fn emit(&self, out: &mut Vec<u8>, last: bool) -> Result<(), Error> {
        let start = out.len();
        out.extend_from_slice(&[if last { LAST } else { MORE_TRANSFORMS }, 0, 0, 0]);
        out.push(self.transform_type.0);
        out.push(0);
        out.extend_from_slice(&self.transform_id.to_be_bytes());
        for a in &self.attributes {
            a.emit(out)?;
        }
        let len = out.len() - start;
        patch_len_u16(out, start + 2, "SA Transform Length", len)
    }
}

impl fmt::Display for Transform {
    /// The algorithm name as our registries spell it, with the key length:
    /// `ENCR_AES_CBC_256`, `PRF_HMAC_SHA2_256`, `MODP_2048`, `NO_ESN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.transform_id;
        match self.transform_type {
            TransformType::ENCR => write!(f, "{}", EncrTransformId(id))?,
            TransformType::PRF => write!(f, "{}", PrfTransformId(id))?,
            TransformType::INTEG => write!(f, "{}", IntegTransformId(id))?,
            TransformType::DH => write!(f, "{}", DhGroup(id))?,
            TransformType::ESN => write!(f, "{}", EsnTransformId(id))?,
            t => write!(f, "{t}:{id:#06x}")?,
        }
        if let Some(k) = self.key_length() {
            write!(f, "_{k}")?;
        }
        Ok(())
    }
}

/// A proposal (§3.3.1): a protocol, an SPI and transforms that are ANDed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// Proposal Num: 1 for the first proposal, then consecutive (§3.3.1);
    /// a responder answers with the number of the proposal it chose.
    pub proposal_num: u8,
    pub protocol_id: ProtocolId,
    /// Empty in IKE_SA_INIT, 8 octets when rekeying an IKE SA, 4 for ESP/AH.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

impl Proposal {
    /// The SPI as a 32-bit ESP/AH SPI, if it is 4 octets long.
    pub fn spi_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.spi.as_slice()).ok().map(u32::from_be_bytes)
    }

    /// Transforms of one type, in the order proposed.
    pub fn transforms_of(&self, t: TransformType) -> impl Iterator<Item = &Transform> + '_ {
        self.transforms.iter().filter(move |x| x.transform_type == t)
    }

    fn parse(r: &mut Reader<'_>) -> Result<(Self, u8), Error> {
        let mut h = Reader::new("SA Proposal", r.take(PROPOSAL_HEADER_LEN)?);
        let last = h.u8()?;
        let _reserved = h.u8()?;
        let len = h.u16()? as usize;
        let proposal_num = h.u8()?;
        let protocol_id = ProtocolId(h.u8()?);
        let spi_size = h.u8()? as usize;
        let num_transforms = h.u8()? as usize;
        if len < PROPOSAL_HEADER_LEN {
            return Err(Error::Malformed {
                what: "SA Proposal Length below 8",
            });
        }
        let mut p = Reader::new("SA Proposal", r.take(len - PROPOSAL_HEADER_LEN)?);
        let spi = p.take(spi_size)?.to_vec();
        let mut transforms = Vec::with_capacity(num_transforms);
        while !p.is_empty() {
            let (t, t_last) = Transform::parse(&mut p)?;
            transforms.push(t);
            let expect = if p.is_empty() { LAST } else { MORE_TRANSFORMS };
            if t_last != expect {
                return Err(Error::Malformed {
                    what: "SA Transform Last Substruc (must be 3, and 0 on the last transform)",
                });
            }
        }
        if transforms.len() != num_transforms {
            return Err(Error::Malformed {
                what: "SA Proposal Num Transforms disagrees with Proposal Length",
            });
        }
        Ok((
            Proposal {
                proposal_num,
                protocol_id,
                spi,
                transforms,
            },
            last,
        ))
    }

    fn emit(&self, out: &mut Vec<u8>, last: bool) -> Result<(), Error> {
        let start = out.len();
        out.extend_from_slice(&[if last { LAST } else { MORE_PROPOSALS }, 0, 0, 0]);
        out.push(self.proposal_num);
        out.push(self.protocol_id.0);
        out.push(len_u8("SA Proposal SPI Size", self.spi.len())?);
        out.push(len_u8("SA Proposal Num Transforms", self.transforms.len())?);
        out.extend_from_slice(&self.spi);
        let n = self.transforms.len();
        for (i, t) in self.transforms.iter().enumerate() {
            t.emit(out, i + 1 == n)?;
        }
        let len = out.len() - start;
        patch_len_u16(out, start + 2, "SA Proposal Length", len)
    }
}

impl fmt::Display for Proposal {
    /// strongSwan's notation: `IKE:ENCR_AES_CBC_128/AUTH_HMAC_SHA2_256_128/...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.protocol_id)?;
        for (i, t) in self.transforms.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

/// The SA payload: one or more proposals, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SaPayload {
    pub proposals: Vec<Proposal>,
}

impl SaPayload {
    /// Parse the payload body (after the generic header).
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        if body.is_empty() {
            return Err(Error::Malformed {
                what: "SA payload without proposals",
            });
        }
        let mut r = Reader::new("SA payload", body);
        let mut proposals = Vec::new();
        while !r.is_empty() {
            let (p, last) = Proposal::parse(&mut r)?;
            proposals.push(p);
            let expect = if r.is_empty() { LAST } else { MORE_PROPOSALS };
            if last != expect {
                return Err(Error::Malformed {
                    what: "SA Proposal Last Substruc (must be 2, and 0 on the last proposal)",
                });
            }
        }
        Ok(SaPayload { proposals })
    }

    /// Append the payload body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let n = self.proposals.len();
        for (i, p) in self.proposals.iter().enumerate() {
            p.emit(out, i + 1 == n)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IKE proposal as strongSwan sends for aes128-sha256-modp2048.
    pub(crate) fn ike_proposal() -> SaPayload {
        SaPayload {
            proposals: vec![Proposal {
                proposal_num: 1,
                protocol_id: ProtocolId::IKE,
                spi: vec![],
                transforms: vec![
                    Transform::encr(EncrTransformId::ENCR_AES_CBC, Some(128)),
                    Transform::integ(IntegTransformId::AUTH_HMAC_SHA2_256_128),
                    Transform::prf(PrfTransformId::PRF_HMAC_SHA2_256),
                    Transform::dh(DhGroup::MODP_2048),
                ],
            }],
        }
    }

    pub(crate) fn esp_proposals() -> SaPayload {
        SaPayload {
            proposals: vec![
                Proposal {
                    proposal_num: 1,
                    protocol_id: ProtocolId::ESP,
                    spi: vec![0xc1, 0x2b, 0x3d, 0x44],
                    transforms: vec![
                        Transform::encr(EncrTransformId::ENCR_AES_GCM_16, Some(256)),
                        Transform::esn(EsnTransformId::NO_ESN),
                    ],
                },
                Proposal {
                    proposal_num: 2,
                    protocol_id: ProtocolId::ESP,
                    spi: vec![0xc1, 0x2b, 0x3d, 0x44],
                    transforms: vec![
                        Transform {
                            transform_type: TransformType::ENCR,
                            transform_id: 12,
                            attributes: vec![
                                TransformAttribute::key_length(128),
                                TransformAttribute {
                                    attr_type: TransformAttributeType(99),
                                    value: AttributeValue::Tlv(vec![1, 2, 3]),
                                },
                            ],
                        },
                        Transform::integ(IntegTransformId::AUTH_HMAC_SHA1_96),
                        Transform::esn(EsnTransformId::ESN),
                    ],
                },
            ],
        }
    }

    fn bytes(sa: &SaPayload) -> Vec<u8> {
        let mut out = Vec::new();
        sa.emit(&mut out).unwrap();
        out
    }

    #[test]
    fn ike_proposal_bytes() {
        let b = bytes(&ike_proposal());
        #[rustfmt::skip]
        let want = [
            0, 0, 0, 44, 1, 1, 0, 4,
            3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 0, 128,
            3, 0, 0, 8, 3, 0, 0, 12,
            3, 0, 0, 8, 2, 0, 0, 5,
            0, 0, 0, 8, 4, 0, 0, 14,
        ];
        assert_eq!(b, want);
        let sa = SaPayload::parse(&b).unwrap();
        assert_eq!(sa, ike_proposal());
        assert_eq!(
            sa.proposals[0].to_string(),
            "IKE:ENCR_AES_CBC_128/AUTH_HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
        );
        assert_eq!(sa.proposals[0].transforms[0].key_length(), Some(128));
        assert_eq!(sa.proposals[0].transforms_of(TransformType::DH).count(), 1);
    }

    #[test]
    fn roundtrip_with_unknown_attributes() {
        let sa = esp_proposals();
        let b = bytes(&sa);
        let back = SaPayload::parse(&b).unwrap();
        assert_eq!(back, sa);
        assert_eq!(bytes(&back), b);
        assert_eq!(back.proposals[0].spi_u32(), Some(0xc12b_3d44));
    }

    #[test]
    fn last_substruc_and_count_mismatches() {
        let good = bytes(&esp_proposals());
        // First proposal claims to be the last.
        let mut b = good.clone();
        b[0] = 0;
        assert!(matches!(SaPayload::parse(&b), Err(Error::Malformed { .. })));
        // Last proposal claims more follow.
        let p1_len = u16::from_be_bytes([good[2], good[3]]) as usize;
        let mut b = good.clone();
        b[p1_len] = 2;
        assert!(matches!(SaPayload::parse(&b), Err(Error::Malformed { .. })));
        // Num Transforms too high / too low.
        for n in [1u8, 3] {
            let mut b = good.clone();
            b[7] = n;
            assert!(matches!(SaPayload::parse(&b), Err(Error::Malformed { .. })), "{n}");
        }
        // A transform with Last Substruc 2 (the proposal value).
        let mut b = good.clone();
        b[12] = 2;
        assert!(matches!(SaPayload::parse(&b), Err(Error::Malformed { .. })));
        // Last transform claims more.
        let mut b = bytes(&ike_proposal());
        b[36] = 3;
        assert!(matches!(SaPayload::parse(&b), Err(Error::Malformed { .. })));
        // Empty SA payload.
        assert!(SaPayload::parse(&[]).is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let good = bytes(&esp_proposals());
        for n in 0..good.len() {
            assert!(SaPayload::parse(&good[..n]).is_err(), "{n}");
        }
        // Lengths below the header size, and past the end.
        for (at, v) in [(3usize, 4u8), (3, 200), (15, 4), (15, 250), (14, 7)] {
            let mut b = good.clone();
            b[at] = v;
            assert!(SaPayload::parse(&b).is_err(), "{at} {v}");
        }
    }

    #[test]
    fn emit_refuses_oversized_fields() {
        let mut sa = ike_proposal();
        sa.proposals[0].spi = vec![0; 256];
        assert!(matches!(sa.emit(&mut Vec::new()), Err(Error::BufferTooSmall { .. })));
        let mut sa = ike_proposal();
        sa.proposals[0].transforms[0].attributes[0].attr_type = TransformAttributeType(0x8000);
        assert!(sa.emit(&mut Vec::new()).is_err());
    }
}
