//! Authentication payload, RFC 7296 §3.8.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Auth Method   |                RESERVED                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                      Authentication Data                      ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::iana::AuthMethod;
use super::Reader;
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthPayload {
    pub auth_method: AuthMethod,
    /// Authentication Data: for SHARED_KEY_MIC, prf(prf(Shared Secret,
    /// "Key Pad for IKEv2"), `<InitiatorSignedOctets>`) (§2.15).
    pub data: Vec<u8>,
}

impl AuthPayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("AUTH payload", body);
        let auth_method = AuthMethod(r.u8()?);
        let _reserved = r.take(3)?;
        Ok(AuthPayload {
            auth_method,
            data: r.rest().to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&[self.auth_method.0, 0, 0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let a = AuthPayload {
            auth_method: AuthMethod::SHARED_KEY_MIC,
            data: vec![0xaa; 32],
        };
        let mut b = Vec::new();
        a.emit(&mut b).unwrap();
        assert_eq!(&b[..4], &[2, 0, 0, 0]);
        assert_eq!(AuthPayload::parse(&b).unwrap(), a);
        assert!(AuthPayload::parse(&b[..3]).is_err());
    }
}
