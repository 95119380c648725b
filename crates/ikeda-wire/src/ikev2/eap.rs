//! Extensible Authentication payload, RFC 7296 §3.16, carrying one EAP
//! message (RFC 3748 §4).
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                       EAP Message                             ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! EAP Message (RFC 3748 §4)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Code      | Identifier    |           Length              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      | Type_Data ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The message stays opaque (the EAP method owns it); the header fields are
//! read through accessors. Length must equal the payload body length, and
//! Requests and Responses (codes 1, 2) must carry a Type.

use crate::error::Error;

/// EAP Codes (RFC 3748 §4).
pub mod code {
    pub const REQUEST: u8 = 1;
    pub const RESPONSE: u8 = 2;
    pub const SUCCESS: u8 = 3;
    pub const FAILURE: u8 = 4;
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EapPayload {
    /// The whole EAP message, at least 4 octets, its Length field equal to
    /// its length.
    message: Vec<u8>,
}

impl EapPayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        Error::check_len("EAP message", 4, body.len())?;
        let len = u16::from_be_bytes([body[2], body[3]]) as usize;
        if len != body.len() {
            return Err(Error::Malformed {
                what: "EAP Length disagrees with the EAP payload length",
            });
        }
        if matches!(body[0], code::REQUEST | code::RESPONSE) && len < 5 {
            return Err(Error::Truncated {
                what: "EAP Request/Response without Type",
                need: 5,
                have: len,
            });
        }
        Ok(EapPayload { message: body.to_vec() })
    }

    /// Wrap a complete EAP message (checked like a received one).
    pub fn new(message: Vec<u8>) -> Result<Self, Error> {
        Self::parse(&message)?;
        Ok(EapPayload { message })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.message);
        Ok(())
    }

    pub fn message(&self) -> &[u8] {
        &self.message
    }
    pub fn code(&self) -> u8 {
        self.message[0]
    }
    pub fn identifier(&self) -> u8 {
        self.message[1]
    }
    pub fn length(&self) -> u16 {
        u16::from_be_bytes([self.message[2], self.message[3]])
    }
    /// The method Type of a Request or Response.
    pub fn eap_type(&self) -> Option<u8> {
        match self.code() {
            code::REQUEST | code::RESPONSE => self.message.get(4).copied(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_accessors() {
        let m = [1, 7, 0, 5, 1];
        let e = EapPayload::parse(&m).unwrap();
        assert_eq!((e.code(), e.identifier(), e.length(), e.eap_type()), (1, 7, 5, Some(1)));
        let mut b = Vec::new();
        e.emit(&mut b).unwrap();
        assert_eq!(b, m);
        assert_eq!(EapPayload::parse(&[3, 7, 0, 4]).unwrap().eap_type(), None);
        assert!(EapPayload::parse(&[1, 7, 0, 4]).is_err());
        assert!(EapPayload::parse(&[3, 7, 0, 5]).is_err());
        assert!(EapPayload::parse(&[3, 7, 0]).is_err());
        assert!(EapPayload::new(vec![3, 7, 0, 9]).is_err());
    }
}
