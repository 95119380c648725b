//! Vendor ID payload, RFC 7296 §3.12.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                        Vendor ID (VID)                        ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VendorIdPayload {
    pub vendor_id: Vec<u8>,
}

impl VendorIdPayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        Ok(VendorIdPayload {
            vendor_id: body.to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.vendor_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        // strongSwan's Vendor ID: MD5("strongSwan").
        let v = b"\x88\x2f\xe5\x6d\x6f\xd2\x0d\xbc\x22\x51\x61\x3b\x2e\xbe\x5b\xeb";
        let p = VendorIdPayload::parse(v).unwrap();
        let mut b = Vec::new();
        p.emit(&mut b).unwrap();
        assert_eq!(&b[..], &v[..]);
    }
}
