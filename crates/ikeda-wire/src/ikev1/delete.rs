//! Delete payload, RFC 2408 §3.15.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ! Next Payload  !   RESERVED    !         Payload Length        !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !              Domain of Interpretation  (DOI)                  !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !  Protocol-Id  !   SPI Size    !           # of SPIs           !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                                                               !
//! ~               Security Parameter Index(es) (SPI)              ~
//! !                                                               !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Deleting the ISAKMP SA sends its cookies as the one SPI (SPI Size 16);
//! ESP/AH SAs are deleted by their 4-octet SPIs. # of SPIs times SPI Size
//! must be exactly the rest of the payload. SPI Size 0 (never sent by
//! IKEv1 peers, whose ISAKMP SA "SPI" is the 16 octets of cookies) is only
//! accepted with # of SPIs 0: accepting 65535 empty SPIs would either lose
//! the count on re-encoding or turn a 64 KB message into millions of empty
//! vectors.

use super::sa::take4;
use crate::error::Error;
use crate::ikev2::{len_u16, Reader};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload {
    pub doi: u32,
    /// See `protocol`.
    pub protocol: u8,
    pub spi_size: u8,
    /// Each `spi_size` octets.
    pub spis: Vec<Vec<u8>>,
}

impl DeletePayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("ISAKMP Delete payload", body);
        let doi = u32::from_be_bytes(take4(&mut r)?);
        let protocol = r.u8()?;
        let spi_size = r.u8()?;
        let count = usize::from(r.u16()?);
        let rest = r.rest();
        if spi_size != 0 && rest.len() != count * usize::from(spi_size) {
            return Err(Error::Malformed {
                what: "ISAKMP Delete # of SPIs x SPI Size disagrees with Payload Length",
            });
        }
        // SPI Size 0 lists nothing; a non-zero # of SPIs with it is a
        // contradiction we refuse rather than silently re-encode as 0.
        if spi_size == 0 && (count != 0 || !rest.is_empty()) {
            return Err(Error::Malformed {
                what: "ISAKMP Delete with SPI Size 0 and SPIs",
            });
        }
        let spis = if spi_size == 0 {
            Vec::new()
        } else {
            rest.chunks(usize::from(spi_size)).map(<[u8]>::to_vec).collect()
        };
        Ok(DeletePayload {
            doi,
            protocol,
            spi_size,
            spis,
        })
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.spis.iter().any(|s| s.len() != usize::from(self.spi_size)) {
            return Err(Error::BufferTooSmall {
                what: "ISAKMP Delete: an SPI is not SPI Size octets long",
                need: self.spis.iter().map(Vec::len).max().unwrap_or(0),
                have: usize::from(self.spi_size),
            });
        }
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.push(self.protocol);
        out.push(self.spi_size);
        let count = if self.spi_size == 0 { 0 } else { self.spis.len() };
        out.extend_from_slice(&len_u16("ISAKMP Delete # of SPIs", count)?.to_be_bytes());
        for s in &self.spis {
            out.extend_from_slice(s);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{doi, protocol};
    use super::*;

    fn emit(d: &DeletePayload) -> Vec<u8> {
        let mut b = Vec::new();
        d.emit(&mut b).unwrap();
        b
    }

    #[test]
    fn layout_and_roundtrip() {
        let esp = DeletePayload {
            doi: doi::IPSEC,
            protocol: protocol::ESP,
            spi_size: 4,
            spis: vec![vec![0xc1, 0, 0, 1], vec![0xc1, 0, 0, 2]],
        };
        let b = emit(&esp);
        assert_eq!(&b[..8], &[0, 0, 0, 1, 3, 4, 0, 2]);
        assert_eq!(DeletePayload::parse(&b).unwrap(), esp);
        for n in 0..b.len() {
            assert!(DeletePayload::parse(&b[..n]).is_err(), "cut at {n}");
        }
        let isakmp = DeletePayload {
            doi: doi::IPSEC,
            protocol: protocol::ISAKMP,
            spi_size: 16,
            spis: vec![(0..16).collect()],
        };
        assert_eq!(DeletePayload::parse(&emit(&isakmp)).unwrap(), isakmp);
    }

    #[test]
    fn counts() {
        assert!(DeletePayload::parse(&[0, 0, 0, 1, 3, 4, 0, 2, 0, 0, 0, 1]).is_err());
        assert!(DeletePayload::parse(&[0, 0, 0, 1, 3, 4, 0, 1, 0, 0, 0, 1, 2]).is_err());
        assert!(DeletePayload::parse(&[0, 0, 0, 1, 3, 0, 0, 1, 9]).is_err());
        assert!(DeletePayload::parse(&[0, 0, 0, 1, 3, 0, 0xff, 0xff]).is_err());
        let none = DeletePayload::parse(&[0, 0, 0, 1, 3, 0, 0, 0]).unwrap();
        assert!(none.spis.is_empty());
        assert_eq!(emit(&none), [0, 0, 0, 1, 3, 0, 0, 0]);
        let bad = DeletePayload {
            doi: 1,
            protocol: 3,
            spi_size: 4,
            spis: vec![vec![1, 2]],
        };
        assert!(bad.emit(&mut Vec::new()).is_err());
    }
}
