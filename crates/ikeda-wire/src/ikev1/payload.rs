//! The generic payload header (RFC 2408 §3.2), the payload chain, and the
//! payloads whose body is a single opaque field.
//!
//! ```text
//! Generic Payload Header (§3.2)
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ! Next Payload  !   RESERVED    !         Payload Length        !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Key Exchange (§3.7), Hash (§3.11), Signature (§3.12), Nonce (§3.13),
//! Vendor ID (§3.16), NAT-D (RFC 3947 §3.2): the generic header, then
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                                                               !
//! ~       Key Exchange Data / Hash Data / Signature Data /        ~
//! !      Nonce Data / Vendor ID / HASH of the address and port    !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Certificate (§3.9) and Certificate Request (§3.10): the generic
//! header, then
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ! Cert Encoding !                                               !
//! +-+-+-+-+-+-+-+-+                                               !
//! ~          Certificate Data / Certificate Authority             ~
//! !                                                               !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Payload Length includes the generic header (§3.2), so it is at least 4.
//! RESERVED is sent as zero and, like strongSwan, not checked on receipt.
//! A payload type we do not know is kept as `Payload::Unknown`: RFC 2408
//! §5.1 has the receiver answer INVALID-PAYLOAD-TYPE, which is the
//! engine's decision, and IKEv1 has no critical bit to make it ours.

use super::delete::DeletePayload;
use super::id::IdPayload;
use super::notification::NotifyPayload;
use super::payload_type as pt;
use super::sa::SaPayload;
use crate::error::Error;
use crate::ikev2::{len_u16, Reader};
use core::ops::Range;

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

/// One ISAKMP payload, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(SaPayload),
    /// Key Exchange Data (the DH public value).
    Ke(Vec<u8>),
    Id(IdPayload),
    Cert {
        encoding: u8,
        data: Vec<u8>,
    },
    CertReq {
        encoding: u8,
        data: Vec<u8>,
    },
    Hash(Vec<u8>),
    Sig(Vec<u8>),
    Nonce(Vec<u8>),
    Notify(NotifyPayload),
    Delete(DeletePayload),
    VendorId(Vec<u8>),
    /// NAT-D: parsed from type 20 (RFC 3947) or 130 (drafts), sent as 20.
    /// An engine that negotiated a draft NAT-T vendor ID sends type 130
    /// with `Payload::Unknown { kind: 130, .. }`.
    NatD(Vec<u8>),
    /// NAT-OA: parsed from type 21 or 131, sent as 21; Protocol ID and Port
    /// are 0 (see the `id` module).
    NatOa(IdPayload),
    /// Any other type (including Proposal and Transform outside an SA), body
    /// kept as received.
    Unknown {
        kind: u8,
        data: Vec<u8>,
    },
}

impl Payload {
    /// The payload type number this payload is sent with.
    pub fn kind(&self) -> u8 {
        match self {
            Payload::Sa(_) => pt::SA,
            Payload::Ke(_) => pt::KE,
            Payload::Id(_) => pt::ID,
            Payload::Cert { .. } => pt::CERT,
            Payload::CertReq { .. } => pt::CERTREQ,
            Payload::Hash(_) => pt::HASH,
            Payload::Sig(_) => pt::SIG,
            Payload::Nonce(_) => pt::NONCE,
            Payload::Notify(_) => pt::NOTIFY,
            Payload::Delete(_) => pt::DELETE,
            Payload::VendorId(_) => pt::VENDOR_ID,
            Payload::NatD(_) => pt::NAT_D,
            Payload::NatOa(_) => pt::NAT_OA,
            Payload::Unknown { kind, .. } => *kind,
        }
    }

    /// Parse the body (after the generic header) of a payload of type
    /// `kind`.
    pub fn parse(kind: u8, body: &[u8]) -> Result<Payload, Error> {
        Ok(match kind {
            pt::SA => Payload::Sa(SaPayload::parse(body)?),
            pt::KE => Payload::Ke(body.to_vec()),
            pt::ID => Payload::Id(IdPayload::parse(body)?),
            pt::CERT | pt::CERTREQ => {
                let (&encoding, data) = body.split_first().ok_or(Error::Truncated {
                    what: "ISAKMP Certificate (Request) payload",
                    need: 1,
                    have: 0,
                })?;
                let data = data.to_vec();
                if kind == pt::CERT {
                    Payload::Cert { encoding, data }
                } else {
                    Payload::CertReq { encoding, data }
                }
            }
            pt::HASH => Payload::Hash(body.to_vec()),
            pt::SIG => Payload::Sig(body.to_vec()),
            pt::NONCE => Payload::Nonce(body.to_vec()),
            pt::NOTIFY => Payload::Notify(NotifyPayload::parse(body)?),
            pt::DELETE => Payload::Delete(DeletePayload::parse(body)?),
            pt::VENDOR_ID => Payload::VendorId(body.to_vec()),
            pt::NAT_D | pt::NAT_D_DRAFT => Payload::NatD(body.to_vec()),
            pt::NAT_OA | pt::NAT_OA_DRAFT => Payload::NatOa(IdPayload::parse_nat_oa(body)?),
            kind => Payload::Unknown {
                kind,
                data: body.to_vec(),
            },
        })
    }

    /// The payload body without the 4-octet generic header: what IKEv1
    /// hashes cover (SAi_b in HASH_I, RFC 2409 §5; IDii_b, IDir_b).
    ///
    /// For a parsed payload this is the received body, octet for octet,
    /// except that RESERVED fields inside it (a Transform's RESERVED2, the
    /// generic headers of Proposal and Transform payloads, NAT-OA's three
    /// reserved octets) are zero. To hash a peer's payload exactly as sent,
    /// hash `&input[parsed.body]` ([`ParsedPayload::body`]).
    ///
    /// # Panics
    /// If a value does not fit its length or count field (an SPI over 255
    /// octets, more than 255 transforms, an attribute over 65535 octets):
    /// a bug of the caller, never caused by parsed input. Use
    /// [`try_encode_body`](Self::try_encode_body) to get an error instead.
    pub fn encode_body(&self) -> Vec<u8> {
        self.try_encode_body()
            .unwrap_or_else(|e| panic!("ISAKMP payload does not encode: {e}"))
    }

    /// [`encode_body`](Self::encode_body), failing with
    /// `Error::BufferTooSmall` (fault: local misuse) when a value does not
    /// fit its field.
    pub fn try_encode_body(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.emit_body(&mut out)?;
        Ok(out)
    }

    fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Payload::Sa(sa) => sa.emit(out)?,
            Payload::Id(id) => id.emit(out),
            Payload::NatOa(oa) => oa.emit_nat_oa(out),
            Payload::Notify(n) => n.emit(out)?,
            Payload::Delete(d) => d.emit(out)?,
            Payload::Cert { encoding, data } | Payload::CertReq { encoding, data } => {
                out.push(*encoding);
                out.extend_from_slice(data);
            }
            Payload::Ke(d)
            | Payload::Hash(d)
            | Payload::Sig(d)
            | Payload::Nonce(d)
            | Payload::VendorId(d)
            | Payload::NatD(d)
            | Payload::Unknown { data: d, .. } => out.extend_from_slice(d),
        }
        Ok(())
    }
}

/// A parsed payload and where it sat in the input: offsets into the
/// `body` given to [`parse_payloads`].
#[derive(Debug, Clone)]
pub struct ParsedPayload {
    pub payload: Payload,
    /// The whole payload, generic header included.
    pub whole: Range<usize>,
    /// The payload body, after the 4-octet generic header (for hashes that
    /// must cover the bytes exactly as the peer sent them).
    pub body: Range<usize>,
}

/// Parse a payload chain starting with type `first`, following Next Payload
/// fields until one is 0 (`first == 0` is an empty chain).
///
/// Octets after the last payload are ignored: a decrypted IKEv1 message
/// carries its CBC padding there (RFC 2409 §5.3: padding is not counted by
/// any payload), and some implementations pad plaintext messages too. The
/// second element is the offset where the chain ended.
///
/// Errors: a Payload Length below 4 or past the end of `body`, or a payload
/// whose body does not parse. Nothing is returned for a partly valid chain:
/// RFC 2408 §5.1 has the whole message dropped.
pub fn parse_payloads(first: u8, body: &[u8]) -> Result<(Vec<ParsedPayload>, usize), Error> {
    let mut payloads = Vec::new();
    let mut kind = first;
    let mut pos = 0usize;
    while kind != pt::NONE {
        let rest = body.get(pos..).unwrap_or(&[]);
        let mut r = Reader::new("ISAKMP generic payload header", rest);
        let next = r.u8()?;
        let _reserved = r.u8()?;
        let len = usize::from(r.u16()?);
        if len < GENERIC_HEADER_LEN {
            return Err(Error::Malformed {
                what: "ISAKMP Payload Length shorter than the generic header",
            });
        }
        Error::check_len("ISAKMP payload (Payload Length)", len, rest.len())?;
        let whole = pos..pos + len;
        let body_range = pos + GENERIC_HEADER_LEN..pos + len;
        let payload = Payload::parse(kind, rest.get(GENERIC_HEADER_LEN..len).unwrap_or(&[]))?;
        payloads.push(ParsedPayload {
            payload,
            whole,
            body: body_range,
        });
        pos += len;
        kind = next;
    }
    Ok((payloads, pos))
}

/// Emit one payload, generic header included, with an explicit Next
/// Payload: the engine builds HASH(1) over the payloads that follow it
/// (RFC 2409 §5.5) and then puts the HASH payload in front.
///
/// # Panics
/// As [`Payload::encode_body`]; also if the body exceeds 65531 octets.
/// [`try_write_payload`] returns an error instead.
pub fn write_payload(p: &Payload, next: u8, out: &mut Vec<u8>) {
    try_write_payload(p, next, out).unwrap_or_else(|e| panic!("ISAKMP payload does not encode: {e}"))
}

/// [`write_payload`], failing with `Error::BufferTooSmall` when a value
/// does not fit its field. On error `out` is left as it was.
pub fn try_write_payload(p: &Payload, next: u8, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(&[next, 0, 0, 0]);
    let r = p.emit_body(out).and_then(|()| {
        let len = len_u16("ISAKMP Payload Length", out.len() - start)?;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    });
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// Emit a chain: each generic header gets the next payload's type, the last
/// one 0. The chain's first type, for the ISAKMP header (or the HASH payload
/// in front), is `payloads[0].kind()`.
///
/// # Panics
/// As [`write_payload`]; [`try_write_payloads`] returns an error instead.
pub fn write_payloads(payloads: &[Payload]) -> Vec<u8> {
    try_write_payloads(payloads).unwrap_or_else(|e| panic!("ISAKMP payloads do not encode: {e}"))
}

/// [`write_payloads`], failing with `Error::BufferTooSmall` when a value
/// does not fit its field.
pub fn try_write_payloads(payloads: &[Payload]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads.get(i + 1).map_or(pt::NONE, Payload::kind);
        try_write_payload(p, next, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_with_padding_after_it() {
        let ps = vec![
            Payload::Hash(vec![0xaa; 20]),
            Payload::Nonce(vec![1, 2, 3]),
            Payload::Unknown { kind: 99, data: vec![] },
        ];
        let mut b = write_payloads(&ps);
        assert_eq!(&b[..4], &[pt::NONCE, 0, 0, 24]);
        assert_eq!(&b[24..28], &[99, 0, 0, 7]);
        assert_eq!(&b[31..], &[0, 0, 0, 4]);
        let end = b.len();
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 8]); // CBC padding
        let (parsed, at) = parse_payloads(pt::HASH, &b).unwrap();
        assert_eq!(at, end);
        assert_eq!(parsed.iter().map(|p| p.payload.clone()).collect::<Vec<_>>(), ps);
        assert_eq!(parsed[1].whole, 24..31);
        assert_eq!(parsed[1].body, 28..31);
        assert_eq!(&b[parsed[1].body.clone()], &[1, 2, 3]);
        assert_eq!(parse_payloads(pt::NONE, &b).unwrap().1, 0);
        assert!(write_payloads(&[]).is_empty());
    }

    #[test]
    fn bad_lengths() {
        // Length 3: shorter than its own header.
        assert!(matches!(
            parse_payloads(pt::HASH, &[0, 0, 0, 3]),
            Err(Error::Malformed { .. })
        ));
        // Length past the end.
        assert!(matches!(
            parse_payloads(pt::HASH, &[0, 0, 0, 6, 1]),
            Err(Error::Truncated { .. })
        ));
        // Next Payload promises more, nothing follows.
        assert!(matches!(
            parse_payloads(pt::HASH, &[pt::NONCE, 0, 0, 4]),
            Err(Error::Truncated { .. })
        ));
        assert!(parse_payloads(pt::HASH, &[]).is_err());
        // Certificate without its encoding octet.
        assert!(parse_payloads(pt::CERT, &[0, 0, 0, 4]).is_err());
    }

    #[test]
    fn draft_nat_numbers_parse_and_send_as_rfc() {
        let b = [
            pt::NAT_OA_DRAFT,
            0,
            0,
            6,
            0xab,
            0xcd,
            0,
            0,
            0,
            12,
            1,
            0,
            0,
            0,
            10,
            0,
            0,
            1,
        ];
        let (ps, _) = parse_payloads(pt::NAT_D_DRAFT, &b).unwrap();
        assert_eq!(ps[0].payload, Payload::NatD(vec![0xab, 0xcd]));
        assert!(matches!(&ps[1].payload, Payload::NatOa(oa) if oa.data == [10, 0, 0, 1]));
        assert_eq!(ps[0].payload.kind(), pt::NAT_D);
        assert_eq!(ps[1].payload.kind(), pt::NAT_OA);
    }

    #[test]
    fn every_payload_roundtrips() {
        use super::super::*;
        let id = IdPayload {
            id_type: id_type::FQDN,
            protocol: 0,
            port: 0,
            data: b"gw.example".to_vec(),
        };
        let all = vec![
            Payload::Sa(super::super::sa::tests::phase1()),
            Payload::Ke(vec![7; 256]),
            Payload::Id(id.clone()),
            Payload::Cert {
                encoding: 4,
                data: vec![0x30, 0x82],
            },
            Payload::CertReq {
                encoding: 4,
                data: vec![],
            },
            Payload::Hash(vec![1; 32]),
            Payload::Sig(vec![2; 64]),
            Payload::Nonce(vec![3; 32]),
            Payload::Notify(NotifyPayload {
                doi: doi::IPSEC,
                protocol: protocol::ESP,
                spi: vec![1, 2, 3, 4],
                notify_type: notify::RESPONDER_LIFETIME,
                data: vec![0x80, 1, 0, 1],
            }),
            Payload::Delete(DeletePayload {
                doi: doi::IPSEC,
                protocol: protocol::ESP,
                spi_size: 4,
                spis: vec![vec![9, 9, 9, 9]],
            }),
            Payload::VendorId(vendor_id::DPD.to_vec()),
            Payload::NatD(vec![5; 20]),
            Payload::NatOa(IdPayload {
                id_type: id_type::IPV6_ADDR,
                protocol: 0,
                port: 0,
                data: vec![0x20; 16],
            }),
            Payload::Unknown {
                kind: pt::ATTRIBUTE,
                data: vec![1, 0, 0, 0],
            },
        ];
        let b = write_payloads(&all);
        let (ps, end) = parse_payloads(all[0].kind(), &b).unwrap();
        assert_eq!(end, b.len());
        for (p, want) in ps.iter().zip(&all) {
            assert_eq!(&p.payload, want);
            assert_eq!(&b[p.body.clone()], &want.encode_body()[..]);
            assert_eq!(p.whole.start + GENERIC_HEADER_LEN, p.body.start);
        }
        assert_eq!(ps.len(), all.len());
        // Every truncation of the chain is an error, never a panic.
        for n in 0..b.len() {
            assert!(parse_payloads(all[0].kind(), &b[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn write_payload_with_explicit_next() {
        let mut out = vec![0xee];
        write_payload(&Payload::Hash(vec![1, 2]), pt::SA, &mut out);
        assert_eq!(out, [0xee, pt::SA, 0, 0, 6, 1, 2]);
        // A body that overflows Payload Length is an error, `out` untouched.
        let big = Payload::Ke(vec![0; 65533]);
        assert!(matches!(
            try_write_payload(&big, 0, &mut out),
            Err(Error::BufferTooSmall { .. })
        ));
        assert_eq!(out.len(), 7);
        assert!(try_write_payloads(&[big]).is_err());
        assert!(try_write_payload(&Payload::Ke(vec![0; 65531]), 0, &mut out).is_ok());
    }

    #[test]
    #[should_panic(expected = "not encode")]
    fn write_payloads_panics_on_local_misuse() {
        write_payloads(&[Payload::Nonce(vec![0; 70000])]);
    }
}
