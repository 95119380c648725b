//! Certificate payload (CERT, RFC 7296 §3.6) and Certificate Request
//! payload (CERTREQ, §3.7); both are an encoding octet and opaque data.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Cert Encoding |                                               |
//! +-+-+-+-+-+-+-+-+                                               |
//! ~                       Certificate Data                        ~
//! |        (CERTREQ: Certification Authority, a list of           |
//! |         SHA-1 hashes of trusted CAs' public keys)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::iana::CertEncoding;
use super::Reader;
use crate::error::Error;

/// The body of a CERT or CERTREQ payload ([`super::Payload`] tells which).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertPayload {
    pub cert_encoding: CertEncoding,
    /// Certificate Data (CERT) or Certification Authority (CERTREQ).
    pub data: Vec<u8>,
}

impl CertPayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("CERT payload", body);
        let cert_encoding = CertEncoding(r.u8()?);
        Ok(CertPayload {
            cert_encoding,
            data: r.rest().to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.cert_encoding.0);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let c = CertPayload {
            cert_encoding: CertEncoding::X509_CERTIFICATE_SIGNATURE,
            data: vec![0x30, 0x82, 1, 2],
        };
        let mut b = Vec::new();
        c.emit(&mut b).unwrap();
        assert_eq!(b, [4, 0x30, 0x82, 1, 2]);
        assert_eq!(CertPayload::parse(&b).unwrap(), c);
        assert!(matches!(CertPayload::parse(&[]), Err(Error::Truncated { .. })));
    }
}
