//! Notification payload, RFC 2408 §3.14.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ! Next Payload  !   RESERVED    !         Payload Length        !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !              Domain of Interpretation  (DOI)                  !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !  Protocol-ID  !   SPI Size    !      Notify Message Type      !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                                                               !
//! ~                Security Parameter Index (SPI)                 ~
//! !                                                               !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                                                               !
//! ~                       Notification Data                       ~
//! !                                                               !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The SPI of an ISAKMP SA notification is the two cookies (SPI Size 16,
//! e.g. INITIAL-CONTACT, RFC 2407 §4.6.3.3, and DPD R-U-THERE, RFC 3706
//! §5, whose data is a 4-octet sequence number); it may also be empty.
//! The DOI is not checked: a notification about a DOI we do not speak is
//! still worth logging.

use super::sa::take4;
use crate::error::Error;
use crate::ikev2::{len_u8, Reader};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload {
    pub doi: u32,
    /// See `protocol`.
    pub protocol: u8,
    pub spi: Vec<u8>,
    /// See `notify`.
    pub notify_type: u16,
    pub data: Vec<u8>,
}

impl NotifyPayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("ISAKMP Notification payload", body);
        let doi = u32::from_be_bytes(take4(&mut r)?);
        let protocol = r.u8()?;
        let spi_size = r.u8()?;
        let notify_type = r.u16()?;
        let spi = r.take(usize::from(spi_size))?.to_vec();
        Ok(NotifyPayload {
            doi,
            protocol,
            spi,
            notify_type,
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.push(self.protocol);
        out.push(len_u8("ISAKMP Notification SPI Size", self.spi.len())?);
        out.extend_from_slice(&self.notify_type.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{doi, notify, protocol};
    use super::*;

    #[test]
    fn dpd_layout_and_roundtrip() {
        // R-U-THERE (RFC 3706 §5): SPI = the cookies, data = sequence number.
        let n = NotifyPayload {
            doi: doi::IPSEC,
            protocol: protocol::ISAKMP,
            spi: (1..=16).collect(),
            notify_type: notify::R_U_THERE,
            data: vec![0, 0, 0, 7],
        };
        let mut b = Vec::new();
        n.emit(&mut b).unwrap();
        assert_eq!(&b[..8], &[0, 0, 0, 1, 1, 16, 0x8d, 0x28]);
        assert_eq!(&b[8..24], &n.spi[..]);
        assert_eq!(&b[24..], &[0, 0, 0, 7]);
        assert_eq!(NotifyPayload::parse(&b).unwrap(), n);
        for cut in 0..24 {
            assert!(matches!(NotifyPayload::parse(&b[..cut]), Err(Error::Truncated { .. })));
        }
        let mut big = n;
        big.spi = vec![0; 256];
        assert!(big.emit(&mut Vec::new()).is_err());
    }
}
