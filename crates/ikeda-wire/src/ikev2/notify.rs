//! Notify payload, RFC 7296 §3.10.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Protocol ID  |   SPI Size    |      Notify Message Type      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                Security Parameter Index (SPI)                 ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                       Notification Data                       ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The contents of Notification Data depend on the type and are the
//! engine's business; [`NotifyPayload::invalid_ke_group`] reads the one
//! that every initiator has to understand.

use super::iana::{DhGroup, NotifyType, ProtocolId};
use super::{len_u8, Reader};
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotifyPayload {
    /// ESP, AH or IKE when an SPI is carried; otherwise sent as zero and
    /// ignored on receipt (§3.10).
    pub protocol_id: ProtocolId,
    pub spi: Vec<u8>,
    pub notify_type: NotifyType,
    pub data: Vec<u8>,
}

impl NotifyPayload {
    /// A notification about the IKE SA (no SPI), e.g. INITIAL_CONTACT,
    /// NAT_DETECTION_SOURCE_IP, NO_PROPOSAL_CHOSEN.
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> Self {
        NotifyPayload {
            protocol_id: ProtocolId::NONE,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    /// A notification about a Child SA, e.g. REKEY_SA with its SPI.
    pub fn for_child_sa(notify_type: NotifyType, protocol_id: ProtocolId, spi: u32, data: Vec<u8>) -> Self {
        NotifyPayload {
            protocol_id,
            spi: spi.to_be_bytes().to_vec(),
            notify_type,
            data,
        }
    }

    /// INVALID_KE_PAYLOAD carrying the group the responder wants (§3.10.1).
    pub fn invalid_ke(group: DhGroup) -> Self {
        Self::new(NotifyType::INVALID_KE_PAYLOAD, group.0.to_be_bytes().to_vec())
    }

    /// For INVALID_KE_PAYLOAD: the accepted group, if the data is 2 octets.
    pub fn invalid_ke_group(&self) -> Option<DhGroup> {
        if self.notify_type != NotifyType::INVALID_KE_PAYLOAD {
            return None;
        }
        <[u8; 2]>::try_from(self.data.as_slice())
            .ok()
            .map(|b| DhGroup(u16::from_be_bytes(b)))
    }

    /// The SPI as a 32-bit ESP/AH SPI, if it is 4 octets long.
    pub fn spi_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.spi.as_slice()).ok().map(u32::from_be_bytes)
    }

    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("Notify payload", body);
        let protocol_id = ProtocolId(r.u8()?);
        let spi_size = r.u8()? as usize;
        let notify_type = NotifyType(r.u16()?);
        let spi = r.take(spi_size)?.to_vec();
        Ok(NotifyPayload {
            protocol_id,
            spi,
            notify_type,
            data: r.rest().to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.protocol_id.0);
        out.push(len_u8("Notify SPI Size", self.spi.len())?);
        out.extend_from_slice(&self.notify_type.0.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_helpers() {
        let n = NotifyPayload::for_child_sa(NotifyType::REKEY_SA, ProtocolId::ESP, 0xc0ff_ee01, vec![]);
        let mut b = Vec::new();
        n.emit(&mut b).unwrap();
        assert_eq!(b, [3, 4, 0x40, 0x09, 0xc0, 0xff, 0xee, 0x01]);
        let back = NotifyPayload::parse(&b).unwrap();
        assert_eq!(back, n);
        assert_eq!(back.spi_u32(), Some(0xc0ff_ee01));

        let k = NotifyPayload::invalid_ke(DhGroup::ECP_256);
        assert_eq!(k.invalid_ke_group(), Some(DhGroup::ECP_256));
        let mut b = Vec::new();
        k.emit(&mut b).unwrap();
        assert_eq!(b, [0, 0, 0, 17, 0, 19]);
    }

    #[test]
    fn spi_size_past_the_end() {
        assert!(matches!(
            NotifyPayload::parse(&[3, 4, 0x40, 0x09, 1, 2]),
            Err(Error::Truncated { need: 8, have: 6, .. })
        ));
        for n in 0..4 {
            assert!(NotifyPayload::parse(&[0, 0, 0x40, 0][..n]).is_err());
        }
    }
}
