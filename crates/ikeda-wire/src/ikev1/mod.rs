//! IKEv1 / ISAKMP messages: RFC 2408 (ISAKMP), RFC 2409 (IKE, Appendix A
//! attributes), RFC 2407 (the IPsec DOI), RFC 3947 (NAT traversal) and
//! RFC 3706 (Dead Peer Detection numbers): bytes <-> typed values. No
//! cryptography: an encrypted message (flag E) is decrypted by the engine,
//! which then calls [`parse_payloads`] on the plaintext.
//!
//! Layers, bottom up:
//! - [`Header`]: the 28-octet ISAKMP header (`header.rs`, RFC 2408 §3.1).
//! - one type per payload body, each in a module that quotes its RFC
//!   diagram: [`SaPayload`] / [`Proposal`] / [`Transform`] / [`Attribute`]
//!   (`sa.rs`, `attribute.rs`), [`IdPayload`] (`id.rs`, also NAT-OA),
//!   [`NotifyPayload`], [`DeletePayload`]; the opaque ones (KE, HASH, SIG,
//!   Nonce, VID, NAT-D, CERT, CERTREQ) live in [`Payload`] (`payload.rs`).
//! - [`parse_payloads`] / [`write_payloads`] / [`write_payload`]: a chain
//!   linked by Next Payload fields, every length computed on emit and
//!   checked on parse. [`ParsedPayload`] keeps each payload's offsets,
//!   because IKEv1 hashes cover payload bodies as sent (SAi_b, IDii_b,
//!   RFC 2409 §5) and Quick Mode's HASH(1) covers the rest of the message.
//! - [`Message`]: header and chain of an unencrypted message.
//! - [`summary`]: strongSwan's log notation, `[ SA V V V V ]`.
//! - numbers as `pub mod`s of constants with `name` functions:
//!   [`payload_type`], [`doi`], [`protocol`], [`transform_id`], [`p1_attr`],
//!   [`ipsec_attr`], [`id_type`], [`notify`], [`vendor_id`].
//!
//! Parsing never panics, and what it allocates is bounded by a constant times
//! its input. Errors are the crate's [`Error`](crate::Error): `Truncated`/`Malformed` for
//! bytes that do not parse (answer PAYLOAD-MALFORMED, RFC 2408 §5.1, or
//! drop), `Unsupported` for legal values we do not handle (major version,
//! a DOI other than IPsec, labeled-domain situations, flag E in
//! [`Message::parse`]). Emitting cannot fail for values that came from
//! parsing; for hand-built values that overflow a length or count field
//! (an SPI of 300 octets) the `try_` variants return
//! `Error::BufferTooSmall` and the plain ones panic.
//!
//! Differences from IKEv2 worth knowing: no critical bit (an unknown payload
//! is kept as [`Payload::Unknown`]); the SA payload carries a DOI and a
//! Situation; Proposal payloads with equal numbers are one AND-ed proposal;
//! attributes are TV or TLV per class (RFC 2409 Appendix A); and a decrypted
//! message ends in padding that no length field covers.

mod attribute;
mod delete;
mod header;
mod iana;
mod id;
mod message;
mod notification;
mod payload;
mod pretty;
mod sa;

#[cfg(test)]
mod tests;

pub use attribute::{AttrValue, Attribute};
pub use delete::DeletePayload;
pub use header::{ExchangeType, Header, FLAG_AUTH_ONLY, FLAG_COMMIT, FLAG_ENCRYPTION, HEADER_LEN, ISAKMP_VERSION};
pub use iana::{doi, id_type, ipsec_attr, notify, p1_attr, payload_type, protocol, transform_id, vendor_id};
pub use id::IdPayload;
pub use message::Message;
pub use notification::NotifyPayload;
pub use payload::{
    parse_payloads, try_write_payload, try_write_payloads, write_payload, write_payloads, ParsedPayload, Payload,
    GENERIC_HEADER_LEN,
};
pub use pretty::summary;
pub use sa::{Proposal, SaPayload, Transform};
