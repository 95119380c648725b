//! Identification payload (RFC 2408 §3.8 with the IPsec DOI's layout, RFC
//! 2407 §4.6.2) and NAT Original Address payload (RFC 3947 §5.2), which
//! share one type here.
//!
//! ```text
//! Identification Payload (RFC 2407 §4.6.2)
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !  Next Payload !   RESERVED    !        Payload Length         !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !   ID Type     !  Protocol ID  !             Port              !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                     Identification Data                       ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! NAT-OA Payload (RFC 3947 §5.2)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |   RESERVED    |        Payload length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    ID Type    |   RESERVED    |            RESERVED           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           IPv4 (4 octets) or IPv6 address (16 octets)         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! In Phase 1 Protocol ID and Port are usually 0 (or UDP/500, RFC 2407
//! §4.6.2); in Quick Mode they narrow the traffic selector. The data is
//! kept raw: its shape depends on the ID type (an address, a subnet, a
//! range, a name), which the engine interprets. A NAT-OA payload becomes
//! an [`IdPayload`] with Protocol ID and Port 0, its reserved octets being
//! ignored on receipt and sent as zero.

use crate::error::Error;
use crate::ikev2::Reader;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    /// See `id_type`.
    pub id_type: u8,
    /// IP protocol number (RFC 2407 §4.6.2: "IP protocol ID"), 0 for any.
    pub protocol: u8,
    /// 0 for any port.
    pub port: u16,
    pub data: Vec<u8>,
}

impl IdPayload {
    /// Parse an Identification payload body.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("ISAKMP ID payload", body);
        let id_type = r.u8()?;
        let protocol = r.u8()?;
        let port = r.u16()?;
        Ok(IdPayload {
            id_type,
            protocol,
            port,
            data: r.rest().to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.id_type);
        out.push(self.protocol);
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(&self.data);
    }

    /// Parse a NAT-OA payload body (RFC 3947 §5.2).
    pub fn parse_nat_oa(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("NAT-OA payload", body);
        let id_type = r.u8()?;
        let _reserved = r.take(3)?;
        Ok(IdPayload {
            id_type,
            protocol: 0,
            port: 0,
            data: r.rest().to_vec(),
        })
    }

    /// Emit as a NAT-OA payload body: `protocol` and `port` have no place
    /// there and are not sent.
    pub fn emit_nat_oa(&self, out: &mut Vec<u8>) {
        out.push(self.id_type);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::super::id_type;
    use super::*;

    #[test]
    fn id_layout_and_roundtrip() {
        // Phase 1 ID of strongSwan: ID_IPV4_ADDR 192.168.50.11, UDP/500.
        let id = IdPayload {
            id_type: id_type::IPV4_ADDR,
            protocol: 17,
            port: 500,
            data: vec![192, 168, 50, 11],
        };
        let mut b = Vec::new();
        id.emit(&mut b);
        assert_eq!(b, [1, 17, 0x01, 0xf4, 192, 168, 50, 11]);
        assert_eq!(IdPayload::parse(&b).unwrap(), id);
        for n in 0..4 {
            assert!(matches!(IdPayload::parse(&b[..n]), Err(Error::Truncated { .. })));
        }
        assert_eq!(IdPayload::parse(&b[..4]).unwrap().data, Vec::<u8>::new());
    }

    #[test]
    fn nat_oa_layout() {
        let oa = IdPayload {
            id_type: id_type::IPV4_ADDR,
            protocol: 0,
            port: 0,
            data: vec![10, 0, 0, 1],
        };
        let mut b = Vec::new();
        oa.emit_nat_oa(&mut b);
        assert_eq!(b, [1, 0, 0, 0, 10, 0, 0, 1]);
        assert_eq!(IdPayload::parse_nat_oa(&b).unwrap(), oa);
        // Reserved octets are ignored on receipt.
        assert_eq!(IdPayload::parse_nat_oa(&[1, 9, 9, 9, 10, 0, 0, 1]).unwrap(), oa);
        for n in 0..4 {
            assert!(IdPayload::parse_nat_oa(&b[..n]).is_err());
        }
    }
}
