//! Security Association payload (RFC 2408 §3.4, RFC 2407 §4.6.1) with its
//! Proposal (§3.5) and Transform (§3.6) payloads.
//!
//! ```text
//! Security Association Payload (§3.4)
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ! Next Payload  !   RESERVED    !         Payload Length        !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !              Domain of Interpretation  (DOI)                  !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                                                               !
//! ~                           Situation                           ~
//! !                                                               !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Proposal Payload (§3.5)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ! Next Payload  !   RESERVED    !         Payload Length        !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !  Proposal #   !  Protocol-Id  !    SPI Size   !# of Transforms!
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                        SPI (variable)                         !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Transform Payload (§3.6)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ! Next Payload  !   RESERVED    !         Payload Length        !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !  Transform #  !  Transform-Id !           RESERVED2           !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                                                               !
//! ~                        SA Attributes                          ~
//! !                                                               !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The Proposal payloads follow the Situation inside the SA payload's
//! length, and the Transform payloads follow the SPI inside the Proposal's
//! length. Their Next Payload fields chain them: 2 (Proposal) or 3
//! (Transform) before another one, 0 on the last (§3.5, §3.6). We check
//! that the chain ends exactly at the end of its parent, and that
//! "# of Transforms" counts the transforms.
//!
//! Several Proposal payloads with the same Proposal # are ONE proposal, the
//! logical AND of its protocols (e.g. ESP and IPCOMP, RFC 2408 §4.2); they
//! are kept here as separate [`Proposal`] entries in wire order, and the
//! engine groups them.
//!
//! The Situation of the IPsec DOI (RFC 2407 §4.2, §4.6.1) is a 4-octet
//! bitmap; with SIT_SECRECY or SIT_INTEGRITY set, labeled-domain fields
//! follow it. No VPN uses those: they are `Error::Unsupported` (answer
//! SITUATION-NOT-SUPPORTED), as is any DOI but IPsec, whose Situation
//! layout we cannot know (answer DOI-NOT-SUPPORTED).

use super::attribute::Attribute;
use super::doi;
use super::payload_type::{NONE, PROPOSAL, TRANSFORM};
use crate::error::Error;
use crate::ikev2::{len_u16, len_u8, Reader};

/// Length of a Proposal or Transform payload's generic header.
const SUB_HEADER_LEN: usize = 4;

/// A Transform payload (§3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform #.
    pub number: u8,
    /// Transform-Id: KEY_IKE in Phase 1, an ESP/AH/IPCOMP transform ID in
    /// Phase 2 (see `transform_id`).
    pub id: u8,
    pub attributes: Vec<Attribute>,
}

/// A Proposal payload (§3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal #; equal numbers are one proposal (see the module doc).
    pub number: u8,
    /// Protocol-Id (see `protocol`).
    pub protocol: u8,
    /// The SPI, SPI Size octets; empty for Phase 1 (RFC 2409 §5: the
    /// cookies are the ISAKMP SPI), 4 octets for ESP/AH, 2 for IPCOMP's CPI.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// The Security Association payload (§3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPayload {
    pub doi: u32,
    pub situation: u32,
    pub proposals: Vec<Proposal>,
}

/// Read one Proposal/Transform generic header and the body it measures.
fn sub_payload<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<(u8, &'a [u8]), Error> {
    let next = r.u8()?;
    let _reserved = r.u8()?;
    let len = usize::from(r.u16()?);
    if len < SUB_HEADER_LEN {
        return Err(Error::Malformed { what });
    }
    Ok((next, r.take(len - SUB_HEADER_LEN)?))
}

/// Write a Proposal/Transform generic header and `body`.
fn emit_sub_payload(out: &mut Vec<u8>, next: u8, body: &[u8], what: &'static str) -> Result<(), Error> {
    out.push(next);
    out.push(0);
    out.extend_from_slice(&len_u16(what, SUB_HEADER_LEN + body.len())?.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Walk a chain of substructures whose Next Payload is `more` before another
/// one and 0 on the last, and which must fill `b` exactly.
fn parse_chain<T>(
    b: &[u8],
    more: u8,
    what: &'static str,
    mut parse_one: impl FnMut(&[u8]) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut r = Reader::new(what, b);
    let mut items = Vec::new();
    let mut next = if r.is_empty() { NONE } else { more };
    while next != NONE {
        if next != more {
            return Err(Error::Malformed { what });
        }
        let (n, body) = sub_payload(&mut r, what)?;
        items.push(parse_one(body)?);
        next = n;
    }
    if !r.is_empty() {
        return Err(Error::Malformed { what });
    }
    Ok(items)
}

impl Transform {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("ISAKMP Transform payload", body);
        let number = r.u8()?;
        let id = r.u8()?;
        let _reserved2 = r.u16()?;
        let attributes = Attribute::parse_all("ISAKMP SA attribute", r.rest())?;
        Ok(Transform { number, id, attributes })
    }

    /// The Transform payload's body (after its generic header).
    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.number);
        out.push(self.id);
        out.extend_from_slice(&[0, 0]);
        for a in &self.attributes {
            a.emit(out)?;
        }
        Ok(())
    }

    /// The first attribute of class `kind`.
    pub fn attribute(&self, kind: u16) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.kind == kind)
    }
}

impl Proposal {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("ISAKMP Proposal payload", body);
        let number = r.u8()?;
        let protocol = r.u8()?;
        let spi_size = r.u8()?;
        let count = r.u8()?;
        let spi = r.take(usize::from(spi_size))?.to_vec();
        let transforms = parse_chain(
            r.rest(),
            TRANSFORM,
            "ISAKMP Transform payloads (Next Payload / Payload Length)",
            Transform::parse,
        )?;
        if transforms.len() != usize::from(count) {
            return Err(Error::Malformed {
                what: "ISAKMP Proposal # of Transforms disagrees with its Transform payloads",
            });
        }
        Ok(Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
    }

    /// The Proposal payload's body (after its generic header).
    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.number);
        out.push(self.protocol);
        out.push(len_u8("ISAKMP Proposal SPI Size", self.spi.len())?);
        out.push(len_u8("ISAKMP Proposal # of Transforms", self.transforms.len())?);
        out.extend_from_slice(&self.spi);
        let mut body = Vec::new();
        for (i, t) in self.transforms.iter().enumerate() {
            body.clear();
            t.emit(&mut body)?;
            let next = if i + 1 < self.transforms.len() { TRANSFORM } else { NONE };
            emit_sub_payload(out, next, &body, "ISAKMP Transform Payload Length")?;
        }
        Ok(())
    }
}

impl SaPayload {
    /// Parse an SA payload body (after the generic header).
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("ISAKMP SA payload", body);
        let doi = u32::from_be_bytes(take4(&mut r)?);
        if doi != doi::IPSEC {
            return Err(Error::Unsupported {
                what: "ISAKMP SA DOI (only the IPsec DOI, RFC 2407)",
                value: doi,
            });
        }
        let situation = u32::from_be_bytes(take4(&mut r)?);
        if situation & !doi::SIT_IDENTITY_ONLY != 0 {
            return Err(Error::Unsupported {
                what: "ISAKMP SA Situation with labeled domains (RFC 2407 §4.6.1)",
                value: situation,
            });
        }
        let proposals = parse_chain(
            r.rest(),
            PROPOSAL,
            "ISAKMP Proposal payloads (Next Payload / Payload Length)",
            Proposal::parse,
        )?;
        // RFC 2408 §4.2: the initiator offers one or more proposals; an SA
        // payload with none can be neither chosen from nor answered.
        if proposals.is_empty() {
            return Err(Error::Malformed {
                what: "ISAKMP SA payload without a Proposal payload",
            });
        }
        Ok(SaPayload {
            doi,
            situation,
            proposals,
        })
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.extend_from_slice(&self.situation.to_be_bytes());
        let mut body = Vec::new();
        for (i, p) in self.proposals.iter().enumerate() {
            body.clear();
            p.emit(&mut body)?;
            let next = if i + 1 < self.proposals.len() { PROPOSAL } else { NONE };
            emit_sub_payload(out, next, &body, "ISAKMP Proposal Payload Length")?;
        }
        Ok(())
    }
}

pub(crate) fn take4(r: &mut Reader<'_>) -> Result<[u8; 4], Error> {
    let b = r.take(4)?;
    Ok([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{ipsec_attr, p1_attr, protocol, transform_id};
    use super::*;

    fn emit(sa: &SaPayload) -> Vec<u8> {
        let mut b = Vec::new();
        sa.emit(&mut b).unwrap();
        b
    }

    /// Phase 1: AES-128 / SHA-256 / PSK / MODP-2048, as strongSwan proposes
    /// `aes128-sha256-modp2048` (compare the capture in tests.rs).
    pub(crate) fn phase1() -> SaPayload {
        SaPayload {
            doi: doi::IPSEC,
            situation: doi::SIT_IDENTITY_ONLY,
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ISAKMP,
                spi: vec![],
                transforms: vec![Transform {
                    number: 1,
                    id: transform_id::KEY_IKE,
                    attributes: vec![
                        Attribute::basic(p1_attr::ENCRYPTION_ALGORITHM, p1_attr::ENC_AES_CBC),
                        Attribute::basic(p1_attr::KEY_LENGTH, 128),
                        Attribute::basic(p1_attr::HASH_ALGORITHM, p1_attr::HASH_SHA2_256),
                        Attribute::basic(p1_attr::GROUP_DESCRIPTION, 14),
                        Attribute::basic(p1_attr::AUTHENTICATION_METHOD, p1_attr::AUTH_PSK),
                        Attribute::basic(p1_attr::LIFE_TYPE, p1_attr::LIFE_SECONDS),
                        Attribute::number(p1_attr::LIFE_DURATION, 86400),
                    ],
                }],
            }],
        }
    }

    /// Phase 2: proposal 1 = ESP (two transforms) AND IPCOMP, proposal 2 = AH.
    fn phase2() -> SaPayload {
        let esp = |n, id| Transform {
            number: n,
            id,
            attributes: vec![
                Attribute::basic(ipsec_attr::ENCAPSULATION_MODE, ipsec_attr::ENCAP_TUNNEL),
                Attribute::basic(ipsec_attr::AUTH_ALGORITHM, ipsec_attr::AUTH_HMAC_SHA1),
                Attribute::basic(ipsec_attr::KEY_LENGTH, 128),
                Attribute::basic(ipsec_attr::SA_LIFE_TYPE, ipsec_attr::LIFE_SECONDS),
                Attribute::number(ipsec_attr::SA_LIFE_DURATION, 3600),
            ],
        };
        SaPayload {
            doi: doi::IPSEC,
            situation: doi::SIT_IDENTITY_ONLY,
            proposals: vec![
                Proposal {
                    number: 1,
                    protocol: protocol::ESP,
                    spi: vec![0xc1, 0xc2, 0xc3, 0xc4],
                    transforms: vec![esp(1, transform_id::ESP_AES_CBC), esp(2, transform_id::ESP_3DES)],
                },
                Proposal {
                    number: 1,
                    protocol: protocol::IPCOMP,
                    spi: vec![0x12, 0x34],
                    transforms: vec![Transform {
                        number: 1,
                        id: transform_id::IPCOMP_DEFLATE,
                        attributes: vec![],
                    }],
                },
                Proposal {
                    number: 2,
                    protocol: protocol::AH,
                    spi: vec![0, 0, 0, 9],
                    transforms: vec![Transform {
                        number: 1,
                        id: transform_id::AH_SHA,
                        attributes: vec![Attribute::basic(ipsec_attr::AUTH_ALGORITHM, 2)],
                    }],
                },
            ],
        }
    }

    #[test]
    fn phase1_layout() {
        let b = emit(&phase1());
        let want: &[u8] = &[
            0, 0, 0, 1, 0, 0, 0, 1, // DOI, Situation
            0, 0, 0, 0x30, 1, 1, 0, 1, // Proposal: last, length 48, #1, ISAKMP, no SPI, 1 transform
            0, 0, 0, 0x28, 1, 1, 0, 0, // Transform: last, length 40, #1, KEY_IKE
            0x80, 1, 0, 7, 0x80, 14, 0, 128, 0x80, 2, 0, 4, 0x80, 4, 0, 14, 0x80, 3, 0, 1, 0x80, 11, 0, 1, 0, 12, 0, 4,
            0, 1, 0x51, 0x80,
        ];
        assert_eq!(b, want);
        assert_eq!(SaPayload::parse(&b).unwrap(), phase1());
    }

    #[test]
    fn phase2_roundtrip_keeps_and_proposals_apart() {
        let sa = phase2();
        let b = emit(&sa);
        let back = SaPayload::parse(&b).unwrap();
        assert_eq!(back, sa);
        assert_eq!(back.proposals.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 1, 2]);
        let t = &back.proposals[0].transforms[0];
        assert_eq!(
            t.attribute(ipsec_attr::SA_LIFE_DURATION).and_then(Attribute::as_u64),
            Some(3600)
        );
        assert_eq!(t.attribute(99), None);
        // Every cut is an error, never a panic.
        for n in 0..b.len() {
            assert!(SaPayload::parse(&b[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn empty_transform_list_but_not_empty_proposal_list() {
        let sa = SaPayload {
            doi: doi::IPSEC,
            situation: doi::SIT_IDENTITY_ONLY,
            proposals: vec![Proposal {
                number: 1,
                protocol: 3,
                spi: vec![],
                transforms: vec![],
            }],
        };
        assert_eq!(SaPayload::parse(&emit(&sa)).unwrap(), sa);
        let none = SaPayload {
            proposals: vec![],
            ..sa
        };
        assert_eq!(emit(&none).len(), 8);
        assert!(matches!(SaPayload::parse(&emit(&none)), Err(Error::Malformed { .. })));
    }

    #[test]
    fn malformed() {
        let good = emit(&phase1());
        // # of Transforms says 2, one Transform payload present.
        let mut b = good.clone();
        b[15] = 2;
        assert!(matches!(SaPayload::parse(&b), Err(Error::Malformed { .. })));
        // Transform says "more transforms follow" but the proposal ends.
        let mut b = good.clone();
        b[16] = TRANSFORM;
        assert!(SaPayload::parse(&b).is_err());
        // Proposal chain with a Next Payload that is neither 2 nor 0.
        let mut b = good.clone();
        b[8] = 7;
        b.extend_from_within(8..);
        assert!(matches!(SaPayload::parse(&b), Err(Error::Malformed { .. })));
        // Bytes after the last proposal.
        let mut b = good.clone();
        b.push(0);
        assert!(matches!(SaPayload::parse(&b), Err(Error::Malformed { .. })));
        // Proposal length below its own header.
        let mut b = good.clone();
        b[11] = 3;
        assert!(matches!(SaPayload::parse(&b), Err(Error::Malformed { .. })));
        // Transform length overrunning the proposal.
        let mut b = good.clone();
        b[19] = 0x29;
        assert!(SaPayload::parse(&b).is_err());
        // A TLV attribute overrunning its transform.
        let mut b = good.clone();
        let at = b.len() - 5;
        b[at] = 5;
        assert!(matches!(SaPayload::parse(&b), Err(Error::Truncated { .. })));
        // Other DOIs and labeled-domain situations are not ours.
        let mut b = good.clone();
        b[3] = 2;
        assert!(matches!(SaPayload::parse(&b), Err(Error::Unsupported { value: 2, .. })));
        let mut b = good;
        b[7] = doi::SIT_SECRECY as u8 | 1;
        assert!(matches!(SaPayload::parse(&b), Err(Error::Unsupported { value: 3, .. })));
    }

    #[test]
    fn reserved_fields_are_ignored_and_sent_as_zero() {
        let good = emit(&phase1());
        let mut b = good.clone();
        b[9] = 0xff; // Proposal generic header RESERVED
        b[17] = 0xff; // Transform generic header RESERVED
        b[22] = 0xab; // Transform RESERVED2
        let sa = SaPayload::parse(&b).unwrap();
        assert_eq!(sa, phase1());
        assert_eq!(emit(&sa), good);
    }

    #[test]
    fn oversize_is_a_local_error() {
        let mut sa = phase1();
        sa.proposals[0].spi = vec![0; 256];
        assert!(matches!(sa.emit(&mut Vec::new()), Err(Error::BufferTooSmall { .. })));
        let mut sa = phase1();
        let t = sa.proposals[0].transforms[0].clone();
        sa.proposals[0].transforms = vec![t; 256];
        assert!(matches!(sa.emit(&mut Vec::new()), Err(Error::BufferTooSmall { .. })));
        let mut sa = phase1();
        sa.proposals[0].transforms[0].attributes = vec![Attribute::variable(1, vec![0; 65000]); 2];
        assert!(matches!(sa.emit(&mut Vec::new()), Err(Error::BufferTooSmall { .. })));
    }
}
