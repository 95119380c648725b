//! A whole ISAKMP message: header (RFC 2408 §3.1) and payload chain.
//!
//! ```text
//! +-----------------+----------+----------+-----+----------+-----------+
//! | ISAKMP header   | payload  | payload  | ... | payload  | (padding, |
//! | Next Payload=t1 | type t1  | type t2  |     | next = 0 | if E set) |
//! +-----------------+----------+----------+-----+----------+-----------+
//!  <------------------------- header Length ------------------------->
//! ```
//!
//! With flag E set, everything after the header is ciphertext (RFC 2408
//! §3.1, RFC 2409 §5.3): the engine decrypts `bytes[28..length]` and calls
//! [`parse_payloads`] on the plaintext, with the header's Next Payload.

use super::header::{Header, HEADER_LEN, ISAKMP_VERSION};
use super::payload::{parse_payloads, try_write_payloads, ParsedPayload, Payload};
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<ParsedPayload>,
}

impl Message {
    /// Parse an unencrypted message (flag E clear): header, then the chain
    /// inside the header's Length. Offsets in `payloads` are relative to
    /// the end of the header. Octets after the chain but inside Length are
    /// ignored, as in [`parse_payloads`]; so are octets after Length.
    ///
    /// With flag E set: `Error::Unsupported` (what: "ISAKMP message with
    /// flag E set ..."): the engine decrypts first.
    pub fn parse(b: &[u8]) -> Result<Message, Error> {
        let header = Header::parse(b)?;
        if header.encrypted() {
            return Err(Error::Unsupported {
                what: "ISAKMP message with flag E set (decrypt, then parse_payloads)",
                value: u32::from(header.flags),
            });
        }
        let body = b.get(HEADER_LEN..header.length as usize).unwrap_or(&[]);
        let (payloads, _end) = parse_payloads(header.next_payload, body)?;
        Ok(Message { header, payloads })
    }

    /// The payloads alone, without their offsets.
    pub fn payload_list(&self) -> Vec<Payload> {
        self.payloads.iter().map(|p| p.payload.clone()).collect()
    }

    /// Header (Next Payload and Length filled in, everything else as given)
    /// followed by the chain.
    ///
    /// # Panics
    /// As [`write_payloads`](super::write_payloads); [`try_build`](Self::try_build)
    /// returns an error instead.
    pub fn build(header: &Header, payloads: &[Payload]) -> Vec<u8> {
        Self::try_build(header, payloads).unwrap_or_else(|e| panic!("ISAKMP message does not encode: {e}"))
    }

    /// [`build`](Self::build), failing with `Error::BufferTooSmall` when a
    /// value does not fit its field.
    pub fn try_build(header: &Header, payloads: &[Payload]) -> Result<Vec<u8>, Error> {
        let chain = try_write_payloads(payloads)?;
        let length = u32::try_from(HEADER_LEN + chain.len()).map_err(|_| Error::BufferTooSmall {
            what: "ISAKMP header Length",
            need: HEADER_LEN + chain.len(),
            have: u32::MAX as usize,
        })?;
        let h = Header {
            next_payload: payloads.first().map_or(0, Payload::kind),
            length,
            ..header.clone()
        };
        let mut out = Vec::with_capacity(HEADER_LEN + chain.len());
        h.write(&mut out);
        out.extend_from_slice(&chain);
        Ok(out)
    }

    /// A header for a new message: version 1.0, Next Payload and Length to
    /// be filled in by [`build`](Self::build).
    pub fn header(icookie: u64, rcookie: u64, exchange: super::ExchangeType, flags: u8, message_id: u32) -> Header {
        Header {
            icookie,
            rcookie,
            next_payload: 0,
            version: ISAKMP_VERSION,
            exchange,
            flags,
            message_id,
            length: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{payload_type as pt, summary, ExchangeType, FLAG_ENCRYPTION};
    use super::*;

    #[test]
    fn build_fills_next_payload_and_length() {
        let h = Message::header(1, 2, ExchangeType::INFORMATIONAL, 0, 0x1234_5678);
        let ps = [Payload::Hash(vec![0; 20]), Payload::Nonce(vec![1; 16])];
        let b = Message::build(&h, &ps);
        assert_eq!(b.len(), 28 + 24 + 20);
        assert_eq!(b[16], pt::HASH);
        assert_eq!(&b[24..28], &72u32.to_be_bytes());
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.header.message_id, 0x1234_5678);
        assert_eq!(m.payload_list(), ps);
        assert_eq!(summary(&m.payload_list()), "[ HASH No ]");
        // Empty message: Next Payload 0.
        let e = Message::build(&h, &[]);
        assert_eq!(e.len(), 28);
        assert!(Message::parse(&e).unwrap().payloads.is_empty());
    }

    #[test]
    fn encrypted_is_refused_and_length_bounds_the_chain() {
        let mut h = Message::header(1, 2, ExchangeType::IDENTITY_PROTECTION, FLAG_ENCRYPTION, 0);
        let b = Message::build(&h, &[Payload::Hash(vec![0; 20])]);
        assert!(matches!(Message::parse(&b), Err(Error::Unsupported { value: 1, .. })));
        h.flags = 0;
        let mut b = Message::build(&h, &[Payload::Hash(vec![0; 20])]);
        // Garbage after Length is not parsed.
        b.extend_from_slice(&[0xff; 3]);
        assert!(Message::parse(&b).is_ok());
        // A chain running past Length is an error even if the bytes exist.
        b[27] -= 1;
        assert!(Message::parse(&b).is_err());
    }
}
