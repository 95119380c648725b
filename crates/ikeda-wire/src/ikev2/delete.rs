//! Delete payload, RFC 7296 §3.11.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Protocol ID   |   SPI Size    |          Num of SPIs          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~               Security Parameter Index(es) (SPI)              ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! For the IKE SA, SPI Size and Num of SPIs are zero; for ESP and AH the
//! SPIs are 4 octets, the inbound SPIs of the sender. Num of SPIs times SPI
//! Size must be exactly the rest of the payload. With SPI Size 0 the Num of
//! SPIs is ignored (and emitted as 0).

use super::iana::ProtocolId;
use super::{len_u16, Reader};
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeletePayload {
    pub protocol_id: ProtocolId,
    pub spi_size: u8,
    /// Each exactly `spi_size` octets long.
    pub spis: Vec<Vec<u8>>,
}

impl DeletePayload {
    /// Delete the IKE SA that protects this message.
    pub fn ike() -> Self {
        DeletePayload {
            protocol_id: ProtocolId::IKE,
            spi_size: 0,
            spis: Vec::new(),
        }
    }

    /// Delete ESP (or AH) SAs by their SPIs.
    pub fn child(protocol_id: ProtocolId, spis: &[u32]) -> Self {
        DeletePayload {
            protocol_id,
            spi_size: 4,
            spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
        }
    }

    /// The SPIs as 32-bit ESP/AH SPIs (empty unless SPI Size is 4).
    pub fn spis_u32(&self) -> Vec<u32> {
        self.spis
            .iter()
            .filter_map(|s| <[u8; 4]>::try_from(s.as_slice()).ok().map(u32::from_be_bytes))
            .collect()
    }

    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("Delete payload", body);
        let protocol_id = ProtocolId(r.u8()?);
        let spi_size = r.u8()?;
        let num = r.u16()? as usize;
        let rest = r.rest();
        if rest.len() != num * spi_size as usize {
            return Err(Error::Malformed {
                what: "Delete Num of SPIs x SPI Size disagrees with Payload Length",
            });
        }
        // With SPI Size 0 (the IKE SA) there is nothing to list, whatever
        // Num of SPIs says; not materializing `num` empty SPIs also keeps a
        // 64 KB message from costing gigabytes.
        let spis = if spi_size == 0 {
            Vec::new()
        } else {
            rest.chunks(spi_size as usize).map(<[u8]>::to_vec).collect()
        };
        Ok(DeletePayload {
            protocol_id,
            spi_size,
            spis,
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.spis.iter().any(|s| s.len() != self.spi_size as usize) {
            return Err(Error::Malformed {
                what: "Delete payload: an SPI is not SPI Size octets long",
            });
        }
        out.push(self.protocol_id.0);
        out.push(self.spi_size);
        out.extend_from_slice(&len_u16("Delete Num of SPIs", self.spis.len())?.to_be_bytes());
        for s in &self.spis {
            out.extend_from_slice(s);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for d in [
            DeletePayload::ike(),
            DeletePayload::child(ProtocolId::ESP, &[0x1111_2222, 0x3333_4444]),
        ] {
            let mut b = Vec::new();
            d.emit(&mut b).unwrap();
            assert_eq!(DeletePayload::parse(&b).unwrap(), d);
        }
        let d = DeletePayload::child(ProtocolId::ESP, &[7]);
        let mut b = Vec::new();
        d.emit(&mut b).unwrap();
        assert_eq!(b, [3, 4, 0, 1, 0, 0, 0, 7]);
        assert_eq!(DeletePayload::parse(&b).unwrap().spis_u32(), vec![7]);
    }

    #[test]
    fn count_mismatch() {
        assert!(DeletePayload::parse(&[3, 4, 0, 2, 0, 0, 0, 7]).is_err());
        assert!(DeletePayload::parse(&[3, 4, 0, 1, 0, 0, 0, 7, 8]).is_err());
        assert!(DeletePayload::parse(&[3, 4, 0]).is_err());
        assert_eq!(DeletePayload::parse(&[1, 0, 0xff, 0xff]).unwrap(), DeletePayload::ike());
        let mut d = DeletePayload::child(ProtocolId::ESP, &[7]);
        d.spi_size = 8;
        assert!(d.emit(&mut Vec::new()).is_err());
    }
}
