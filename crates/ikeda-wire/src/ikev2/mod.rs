//! IKEv2 messages, RFC 7296 (plus RFC 7383 fragmentation): bytes <-> typed
//! values. No cryptography: the Encrypted payload (SK, §3.14) and the
//! Encrypted Fragment payload (SKF, RFC 7383 §2.5) stay opaque here; the
//! crypto layer splits IV / ciphertext / ICV and hands the decrypted payload
//! chain back to [`Message::parse_inner`].
//!
//! Layers, bottom up:
//! - [`Header`] and [`GenericPayloadHeader`]: checked zero-copy views; once
//!   `new_checked` succeeded no accessor panics.
//! - [`PayloadIter`]: walks a chain of payloads by their Next Payload fields,
//!   checking every Payload Length, skipping unknown non-critical payloads
//!   and refusing unknown critical ones (§2.5).
//! - one Repr per payload (`SaPayload`, `KePayload`, ...), each in a module
//!   that quotes its RFC diagram, with `parse(body)` and `emit(out)` working
//!   on the payload body (everything after the 4-octet generic header).
//! - [`Payload`] and [`Message`]: a whole message, parsed or emitted with
//!   every Next Payload and Length field computed.
//! - [`summary`]: the one-line notation of strongSwan's logs,
//!   `IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]`.
//!
//! Errors are the crate's [`Error`]: `Truncated` and `Malformed` for bytes
//! that do not parse (answer INVALID_SYNTAX, §2.21), `Unsupported` for legal
//! values we do not handle. An unknown payload with the Critical bit set is
//! `Error::Unsupported { what: CRITICAL_PAYLOAD, value: type }`; use
//! [`unsupported_critical_payload`] to get the type back for the
//! UNSUPPORTED_CRITICAL_PAYLOAD notification. Emitting fails with
//! `Error::BufferTooSmall` (fault: local misuse) when a value does not fit
//! its length or count field, e.g. a 70000-byte certificate.
//!
//! Sending an encrypted message (IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL):
//! 1. `let inner = emit_payload_chain(&payloads)?;` is the plaintext whose
//!    first payload type is `first_payload_type(&payloads)`;
//! 2. the crypto layer pads it and computes the size of IV | ciphertext | ICV;
//! 3. `let (mut msg, body) = emit_sk_message(&header, &[], first, body_len)?;`
//!    lays out the message with all length fields final: `msg[..body.start]`
//!    is the AEAD associated data (RFC 5282 §5.1), and the caller writes
//!    IV | ciphertext | ICV into `msg[body]` (the ICV covers `msg` up to the
//!    ICV itself, §3.14).

mod auth;
mod cert;
mod cp;
mod delete;
mod eap;
mod header;
mod iana;
mod id;
mod ke;
mod message;
mod nonce;
mod notify;
mod payload;
mod pretty;
mod sa;
mod sk;
mod ts;
mod vendor;

#[cfg(test)]
mod tests;

pub use auth::AuthPayload;
pub use cert::CertPayload;
pub use cp::{CfgAttribute, CpPayload};
pub use delete::DeletePayload;
pub use eap::{code as eap_code, EapPayload};
pub use header::{Flags, Header, HeaderRepr, HEADER_LEN, MAJOR_VERSION};
pub use iana::{
    AuthMethod, CertEncoding, CfgAttributeType, CfgType, DhGroup, EsnTransformId, ExchangeType, IdType, NotifyType,
    PayloadType, PrfTransformId, ProtocolId, TransformAttributeType, TransformType, TsType,
};
pub use id::IdPayload;
pub use ke::KePayload;
pub use message::{emit_payload_chain, emit_sk_message, find_notify, first_payload_type, Message, Payload};
pub use nonce::{NoncePayload, NONCE_MAX_LEN, NONCE_MIN_LEN};
pub use notify::NotifyPayload;
pub use payload::{
    unsupported_critical_payload, GenericPayloadHeader, PayloadIter, RawPayload, CRITICAL_PAYLOAD, GENERIC_HEADER_LEN,
};
pub use pretty::{payload_names, summary};
pub use sa::{AttributeValue, Proposal, SaPayload, Transform, TransformAttribute};
pub use sk::{SkPayload, SkfPayload};
pub use ts::{TrafficSelector, TsPayload, TsRange};
pub use vendor::VendorIdPayload;

pub use crate::iana::{EncrTransformId, IntegTransformId};

use crate::error::Error;

/// A bounds-checked cursor over a structure's bytes: every read either
/// succeeds or returns `Error::Truncated` naming the structure.
pub(crate) struct Reader<'a> {
    what: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Reader { what, buf, pos: 0 }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let have = self.buf.len();
        let need = self.pos.saturating_add(n);
        if need > have {
            return Err(Error::Truncated {
                what: self.what,
                need,
                have,
            });
        }
        let s = &self.buf[self.pos..need];
        self.pos = need;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// `Error::BufferTooSmall` for a value that does not fit the field meant to
/// count or measure it (a local mistake: the peer never causes it).
pub(crate) fn too_long(what: &'static str, need: usize, max: usize) -> Error {
    Error::BufferTooSmall { what, need, have: max }
}

/// Convert a length to the u8 field that carries it, or fail.
pub(crate) fn len_u8(what: &'static str, n: usize) -> Result<u8, Error> {
    u8::try_from(n).map_err(|_| too_long(what, n, u8::MAX as usize))
}

/// Convert a length to the u16 field that carries it, or fail.
pub(crate) fn len_u16(what: &'static str, n: usize) -> Result<u16, Error> {
    u16::try_from(n).map_err(|_| too_long(what, n, u16::MAX as usize))
}

/// Write `len` as a big-endian u16 at `out[at..at + 2]`, checking it fits.
pub(crate) fn patch_len_u16(out: &mut [u8], at: usize, what: &'static str, len: usize) -> Result<(), Error> {
    let v = len_u16(what, len)?;
    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// Lower-case hex, for Display of opaque bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
