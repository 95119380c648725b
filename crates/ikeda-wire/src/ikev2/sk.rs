//! Encrypted and Authenticated payload (SK), RFC 7296 §3.14, and Encrypted
//! and Authenticated Fragment payload (SKF), RFC 7383 §2.5.
//!
//! ```text
//! SK (§3.14)
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Initialization Vector                     |
//! |         (length is block size for encryption algorithm)       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                    Encrypted IKE Payloads                     ~
//! +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               |             Padding (0-255 octets)            |
//! +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
//! |                                               |  Pad Length   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                    Integrity Checksum Data                    ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! SKF (RFC 7383 §2.5)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        Fragment Number        |        Total Fragments        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Initialization Vector                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                      Encrypted content                        ~
//! +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               |             Padding (0-255 octets)            |
//! +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
//! |                                               |  Pad Length   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                    Integrity Checksum Data                    ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Both are opaque here: IV, ciphertext, padding and ICV lengths depend on
//! the negotiated algorithms, so the crypto layer splits the body. The Next
//! Payload field of SK names the first payload inside the ciphertext; for
//! SKF it does so in fragment 1 and is 0 in the others (RFC 7383 §2.5).

use super::iana::PayloadType;
use super::Reader;
use crate::error::Error;

/// The SK payload: the type of the first inner payload and the opaque body
/// (IV | encrypted payloads, padding and Pad Length | ICV).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SkPayload {
    /// The SK payload's Next Payload field: the first payload inside, or
    /// NONE for an empty INFORMATIONAL (a liveness check).
    pub first_payload: PayloadType,
    pub body: Vec<u8>,
}

impl SkPayload {
    pub fn parse(first_payload: PayloadType, body: &[u8]) -> Result<Self, Error> {
        Ok(SkPayload {
            first_payload,
            body: body.to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.body);
        Ok(())
    }
}

/// The SKF payload: one fragment of an encrypted message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SkfPayload {
    /// Next Payload: the first inner payload in fragment 1, else NONE.
    pub first_payload: PayloadType,
    /// Fragment Number, from 1.
    pub fragment_number: u16,
    /// Total Fragments, at least Fragment Number.
    pub total_fragments: u16,
    /// IV | encrypted content, padding and Pad Length | ICV.
    pub body: Vec<u8>,
}

impl SkfPayload {
    /// Parse; Fragment Number must be in 1..=Total Fragments (RFC 7383 §2.5).
    pub fn parse(first_payload: PayloadType, body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("SKF payload", body);
        let fragment_number = r.u16()?;
        let total_fragments = r.u16()?;
        if fragment_number == 0 || fragment_number > total_fragments {
            return Err(Error::Malformed {
                what: "SKF Fragment Number not in 1..=Total Fragments",
            });
        }
        Ok(SkfPayload {
            first_payload,
            fragment_number,
            total_fragments,
            body: r.rest().to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.fragment_number.to_be_bytes());
        out.extend_from_slice(&self.total_fragments.to_be_bytes());
        out.extend_from_slice(&self.body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skf_roundtrip_and_numbers() {
        let f = SkfPayload {
            first_payload: PayloadType::IDI,
            fragment_number: 1,
            total_fragments: 3,
            body: vec![5; 40],
        };
        let mut b = Vec::new();
        f.emit(&mut b).unwrap();
        assert_eq!(&b[..4], &[0, 1, 0, 3]);
        assert_eq!(SkfPayload::parse(PayloadType::IDI, &b).unwrap(), f);
        assert!(SkfPayload::parse(PayloadType::NONE, &[0, 0, 0, 3]).is_err());
        assert!(SkfPayload::parse(PayloadType::NONE, &[0, 4, 0, 3]).is_err());
        assert!(SkfPayload::parse(PayloadType::NONE, &[0, 1, 0]).is_err());
    }

    #[test]
    fn sk_is_opaque() {
        let s = SkPayload::parse(PayloadType::NONE, &[]).unwrap();
        assert!(s.body.is_empty());
    }
}
