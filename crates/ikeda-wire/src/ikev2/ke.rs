//! Key Exchange payload, RFC 7296 §3.4.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Diffie-Hellman Group Num    |           RESERVED            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                       Key Exchange Data                       ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Whether the data has the length the group requires (e.g. 256 octets for
//! MODP_2048) is checked by the key exchange, which knows the group.

use super::iana::DhGroup;
use super::Reader;
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KePayload {
    /// Diffie-Hellman Group Num (Key Exchange Method, RFC 9370).
    pub dh_group: DhGroup,
    /// Key Exchange Data: the sender's public value.
    pub data: Vec<u8>,
}

impl KePayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("KE payload", body);
        let dh_group = DhGroup(r.u16()?);
        let _reserved = r.u16()?;
        Ok(KePayload {
            dh_group,
            data: r.rest().to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.dh_group.0.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_truncation() {
        let ke = KePayload {
            dh_group: DhGroup::CURVE_25519,
            data: vec![7; 32],
        };
        let mut b = Vec::new();
        ke.emit(&mut b).unwrap();
        assert_eq!(&b[..4], &[0, 31, 0, 0]);
        assert_eq!(KePayload::parse(&b).unwrap(), ke);
        for n in 0..4 {
            assert!(matches!(KePayload::parse(&b[..n]), Err(Error::Truncated { .. })));
        }
    }
}
