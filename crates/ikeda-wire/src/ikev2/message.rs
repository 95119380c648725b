//! A whole IKEv2 message: the header (§3.1) and its chain of typed payloads.
//!
//! ```text
//! +--------------+----------+----------+-----+------------------------+
//! | IKE header   | payload  | payload  | ... | SK (last, if present)  |
//! | Next Payload-+->  Next -+->  Next -+-> ..| Next = first inner     |
//! +--------------+----------+----------+-----+------------------------+
//! ```
//!
//! [`Message::parse`] checks the header Length against the datagram and
//! walks the unencrypted chain; an SK or SKF payload stays opaque.
//! [`Message::parse_inner`] walks the decrypted content of SK.
//! [`Message::emit`] and [`emit_payload_chain`] compute every Next Payload
//! and Length field from the payload list.

use super::cert::CertPayload;
use super::cp::CpPayload;
use super::delete::DeletePayload;
use super::eap::EapPayload;
use super::header::{Header, HeaderRepr, HEADER_LEN};
use super::iana::{NotifyType, PayloadType};
use super::id::IdPayload;
use super::ke::KePayload;
use super::nonce::NoncePayload;
use super::notify::NotifyPayload;
use super::payload::PayloadIter;
use super::sa::SaPayload;
use super::sk::{SkPayload, SkfPayload};
use super::ts::TsPayload;
use super::vendor::VendorIdPayload;
use super::{auth::AuthPayload, patch_len_u16};
use crate::error::Error;
use core::ops::Range;

/// One typed payload. The variant fixes the Payload Type; the Repr inside
/// holds the body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    Sa(SaPayload),
    Ke(KePayload),
    IdI(IdPayload),
    IdR(IdPayload),
    Cert(CertPayload),
    CertReq(CertPayload),
    Auth(AuthPayload),
    /// Ni or Nr.
    Nonce(NoncePayload),
    Notify(NotifyPayload),
    Delete(DeletePayload),
    VendorId(VendorIdPayload),
    TsI(TsPayload),
    TsR(TsPayload),
    /// Encrypted and Authenticated; must be the last payload.
    Sk(SkPayload),
    Cp(CpPayload),
    Eap(EapPayload),
    /// Encrypted and Authenticated Fragment; must be the last payload.
    Skf(SkfPayload),
}

impl Payload {
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CERTREQ,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::VendorId(_) => PayloadType::VENDOR_ID,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Sk(_) => PayloadType::SK,
            Payload::Cp(_) => PayloadType::CP,
            Payload::Eap(_) => PayloadType::EAP,
            Payload::Skf(_) => PayloadType::SKF,
        }
    }

    /// Parse the body of a payload of type `t`. `next_payload` is the
    /// payload's own Next Payload field, kept only by SK and SKF (it names
    /// their first inner payload). An unsupported type is
    /// `Error::Unsupported`.
    pub fn parse(t: PayloadType, next_payload: PayloadType, body: &[u8]) -> Result<Payload, Error> {
        Ok(match t {
            PayloadType::SA => Payload::Sa(SaPayload::parse(body)?),
            PayloadType::KE => Payload::Ke(KePayload::parse(body)?),
            PayloadType::IDI => Payload::IdI(IdPayload::parse(body)?),
            PayloadType::IDR => Payload::IdR(IdPayload::parse(body)?),
            PayloadType::CERT => Payload::Cert(CertPayload::parse(body)?),
            PayloadType::CERTREQ => Payload::CertReq(CertPayload::parse(body)?),
            PayloadType::AUTH => Payload::Auth(AuthPayload::parse(body)?),
            PayloadType::NONCE => Payload::Nonce(NoncePayload::parse(body)?),
            PayloadType::NOTIFY => Payload::Notify(NotifyPayload::parse(body)?),
            PayloadType::DELETE => Payload::Delete(DeletePayload::parse(body)?),
            PayloadType::VENDOR_ID => Payload::VendorId(VendorIdPayload::parse(body)?),
            PayloadType::TSI => Payload::TsI(TsPayload::parse(body)?),
            PayloadType::TSR => Payload::TsR(TsPayload::parse(body)?),
            PayloadType::SK => Payload::Sk(SkPayload::parse(next_payload, body)?),
            PayloadType::CP => Payload::Cp(CpPayload::parse(body)?),
            PayloadType::EAP => Payload::Eap(EapPayload::parse(body)?),
            PayloadType::SKF => Payload::Skf(SkfPayload::parse(next_payload, body)?),
            t => {
                return Err(Error::Unsupported {
                    what: "IKEv2 Payload Type",
                    value: t.0 as u32,
                })
            }
        })
    }

    /// Append the payload body (without the generic header).
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Payload::Sa(p) => p.emit(out),
            Payload::Ke(p) => p.emit(out),
            Payload::IdI(p) | Payload::IdR(p) => p.emit(out),
            Payload::Cert(p) | Payload::CertReq(p) => p.emit(out),
            Payload::Auth(p) => p.emit(out),
            Payload::Nonce(p) => p.emit(out),
            Payload::Notify(p) => p.emit(out),
            Payload::Delete(p) => p.emit(out),
            Payload::VendorId(p) => p.emit(out),
            Payload::TsI(p) | Payload::TsR(p) => p.emit(out),
            Payload::Sk(p) => p.emit(out),
            Payload::Cp(p) => p.emit(out),
            Payload::Eap(p) => p.emit(out),
            Payload::Skf(p) => p.emit(out),
        }
    }

    /// The Next Payload an SK or SKF payload carries for its content.
    fn encrypted_first(&self) -> Option<PayloadType> {
        match self {
            Payload::Sk(p) => Some(p.first_payload),
            Payload::Skf(p) => Some(p.first_payload),
            _ => None,
        }
    }
}

/// The Payload Type of the first payload of a chain (NONE if empty): the
/// Next Payload of the IKE header, or of the SK payload around the chain.
pub fn first_payload_type(payloads: &[Payload]) -> PayloadType {
    payloads.first().map_or(PayloadType::NONE, Payload::payload_type)
}

/// The first Notify payload of type `t`.
pub fn find_notify(payloads: &[Payload], t: NotifyType) -> Option<&NotifyPayload> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == t => Some(n),
        _ => None,
    })
}

/// Append `payloads` with generic headers, every Next Payload pointing at
/// the following payload (NONE after the last; the SK/SKF payload's own
/// first inner type for them, which must come last).
fn emit_chain(payloads: &[Payload], out: &mut Vec<u8>) -> Result<(), Error> {
    for (i, p) in payloads.iter().enumerate() {
        let is_last = i + 1 == payloads.len();
        let next = match p.encrypted_first() {
            Some(_) if !is_last => {
                return Err(Error::Malformed {
                    what: "IKEv2 SK/SKF payload must be the last payload (RFC 7296 §3.14)",
                })
            }
            Some(first) => first,
            None => payloads.get(i + 1).map_or(PayloadType::NONE, Payload::payload_type),
        };
        let start = out.len();
        out.extend_from_slice(&[next.0, 0, 0, 0]);
        p.emit_body(out)?;
        let len = out.len() - start;
        patch_len_u16(out, start + 2, "IKEv2 Payload Length", len)?;
    }
    Ok(())
}

/// Emit a payload chain on its own: the plaintext of an SK payload before
/// padding and encryption. Its first payload's type, for the SK payload's
/// Next Payload, is [`first_payload_type`]. SK and SKF are refused inside.
pub fn emit_payload_chain(payloads: &[Payload]) -> Result<Vec<u8>, Error> {
    if payloads.iter().any(|p| p.encrypted_first().is_some()) {
        return Err(Error::Malformed {
            what: "IKEv2 SK/SKF payload inside an encrypted payload chain",
        });
    }
    let mut out = Vec::new();
    emit_chain(payloads, &mut out)?;
    Ok(out)
}

/// Lay out a message that ends in an SK payload whose body (IV |
/// ciphertext | padding | Pad Length | ICV, `sk_body_len` octets) the caller
/// writes later. `before` are unencrypted payloads to put ahead of SK
/// (usually none). Every length field is final, so `message[..body.start]`
/// is the AEAD associated data (RFC 5282 §5.1) and the integrity check
/// covers `message` up to the ICV (§3.14). The body range is zero-filled.
pub fn emit_sk_message(
    header: &HeaderRepr,
    before: &[Payload],
    first_inner: PayloadType,
    sk_body_len: usize,
) -> Result<(Vec<u8>, Range<usize>), Error> {
    let mut payloads = before.to_vec();
    payloads.push(Payload::Sk(SkPayload {
        first_payload: first_inner,
        body: vec![0; sk_body_len],
    }));
    Message {
        header: *header,
        payloads,
    }
    .emit_for_encryption()
}

/// An IKEv2 message: header fields and payloads. Next Payload and Length
/// fields are derived, not stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    pub header: HeaderRepr,
    /// In wire order. Unrecognized non-critical payloads were skipped.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parse a datagram (UDP 500 payload, or UDP 4500 after the non-ESP
    /// marker). The header Length must equal the datagram length.
    pub fn parse(bytes: &[u8]) -> Result<Message, Error> {
        let h = Header::new_checked(bytes)?;
        let header = HeaderRepr::parse(&h)?;
        let len = h.length() as usize;
        if len < HEADER_LEN {
            return Err(Error::Malformed {
                what: "IKE header Length below 28",
            });
        }
        Error::check_len("IKE message (header Length)", len, bytes.len())?;
        if len != bytes.len() {
            return Err(Error::Malformed {
                what: "IKE message: data after header Length",
            });
        }
        let payloads = parse_chain(h.next_payload(), &bytes[HEADER_LEN..], false)?;
        Ok(Message { header, payloads })
    }

    /// Parse the decrypted content of an SK payload (or of reassembled SKF
    /// fragments), whose first payload has type `first` (the SK payload's
    /// `first_payload`). SK and SKF inside are refused.
    pub fn parse_inner(first: PayloadType, decrypted: &[u8]) -> Result<Vec<Payload>, Error> {
        parse_chain(first, decrypted, true)
    }

    /// Emit the whole message, computing every Next Payload and Length.
    pub fn emit(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64 * self.payloads.len());
        self.header.emit(&mut out, first_payload_type(&self.payloads), 0);
        emit_chain(&self.payloads, &mut out)?;
        let len =
            u32::try_from(out.len()).map_err(|_| super::too_long("IKE header Length", out.len(), u32::MAX as usize))?;
        out[24..28].copy_from_slice(&len.to_be_bytes());
        Ok(out)
    }

    /// Emit, and return where the body of the final SK or SKF payload lies
    /// (after SKF's Fragment Number and Total Fragments), for the crypto
    /// layer to fill in place. Fails if the last payload is neither.
    pub fn emit_for_encryption(&self) -> Result<(Vec<u8>, Range<usize>), Error> {
        let body_len = match self.payloads.last() {
            Some(Payload::Sk(p)) => p.body.len(),
            Some(Payload::Skf(p)) => p.body.len(),
            _ => {
                return Err(Error::Malformed {
                    what: "IKEv2 message to encrypt does not end in SK or SKF",
                })
            }
        };
        let out = self.emit()?;
        let end = out.len();
        Ok((out, end - body_len..end))
    }

    /// The SK payload, if the message has one.
    pub fn sk(&self) -> Option<&SkPayload> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Sk(s) => Some(s),
            _ => None,
        })
    }

    /// strongSwan's one-line notation, see [`super::summary`].
    pub fn summary(&self) -> String {
        super::pretty::summary(&self.header, &self.payloads)
    }
}

fn parse_chain(first: PayloadType, data: &[u8], inner: bool) -> Result<Vec<Payload>, Error> {
    let mut out = Vec::new();
    for raw in PayloadIter::new(first, data) {
        let raw = raw?;
        if inner && matches!(raw.payload_type, PayloadType::SK | PayloadType::SKF) {
            return Err(Error::Malformed {
                what: "IKEv2 SK payload inside an SK payload",
            });
        }
        out.push(Payload::parse(raw.payload_type, raw.next_payload, raw.body)?);
    }
    Ok(out)
}
