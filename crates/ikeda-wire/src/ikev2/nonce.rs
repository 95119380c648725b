//! Nonce payload (Ni, Nr), RFC 7296 §3.9.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                            Nonce Data                         ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! "The size of the Nonce Data MUST be between 16 and 256 octets, inclusive."

use crate::error::Error;

pub const NONCE_MIN_LEN: usize = 16;
pub const NONCE_MAX_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NoncePayload {
    pub nonce: Vec<u8>,
}

impl NoncePayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        Error::check_len("Nonce payload", NONCE_MIN_LEN, body.len())?;
        if body.len() > NONCE_MAX_LEN {
            return Err(Error::Malformed {
                what: "Nonce Data longer than 256 octets",
            });
        }
        Ok(NoncePayload { nonce: body.to_vec() })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.nonce);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits() {
        assert!(NoncePayload::parse(&[0; 15]).is_err());
        assert!(NoncePayload::parse(&[0; 257]).is_err());
        for n in [16, 32, 256] {
            let p = NoncePayload::parse(&vec![1; n]).unwrap();
            let mut b = Vec::new();
            p.emit(&mut b).unwrap();
            assert_eq!(b, vec![1; n]);
        }
    }
}
