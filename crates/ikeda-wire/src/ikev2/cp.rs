//! Configuration payload, RFC 7296 §3.15.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C| RESERVED    |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   CFG Type    |                    RESERVED                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                   Configuration Attributes                    ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Configuration Attribute (§3.15.1)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|         Attribute Type      |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                             Value                             ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The R bit is reserved: ignored on receipt, sent as zero. Values are kept
//! as octets (a request carries empty values, §3.15.1).

use super::iana::{CfgAttributeType, CfgType};
use super::{len_u16, Reader};
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CfgAttribute {
    /// Attribute Type, 15 bits.
    pub attr_type: CfgAttributeType,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CpPayload {
    pub cfg_type: CfgType,
    pub attributes: Vec<CfgAttribute>,
}

impl CpPayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("CP payload", body);
        let cfg_type = CfgType(r.u8()?);
        let _reserved = r.take(3)?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let t = r.u16()?;
            let n = r.u16()? as usize;
            attributes.push(CfgAttribute {
                attr_type: CfgAttributeType(t & 0x7fff),
                value: r.take(n)?.to_vec(),
            });
        }
        Ok(CpPayload { cfg_type, attributes })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&[self.cfg_type.0, 0, 0, 0]);
        for a in &self.attributes {
            if a.attr_type.0 > 0x7fff {
                return Err(super::too_long("CP Attribute Type", a.attr_type.0 as usize, 0x7fff));
            }
            out.extend_from_slice(&a.attr_type.0.to_be_bytes());
            out.extend_from_slice(&len_u16("CP Attribute Length", a.value.len())?.to_be_bytes());
            out.extend_from_slice(&a.value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_truncation() {
        let cp = CpPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                CfgAttribute {
                    attr_type: CfgAttributeType::INTERNAL_IP4_ADDRESS,
                    value: vec![10, 3, 0, 1],
                },
                CfgAttribute {
                    attr_type: CfgAttributeType::INTERNAL_IP4_DNS,
                    value: vec![],
                },
            ],
        };
        let mut b = Vec::new();
        cp.emit(&mut b).unwrap();
        assert_eq!(b, [2, 0, 0, 0, 0, 1, 0, 4, 10, 3, 0, 1, 0, 3, 0, 0]);
        assert_eq!(CpPayload::parse(&b).unwrap(), cp);
        for n in (0..b.len()).filter(|&n| n != 4 && n != 12) {
            assert!(CpPayload::parse(&b[..n]).is_err(), "{n}");
        }
        // The R bit is ignored.
        b[12] |= 0x80;
        assert_eq!(CpPayload::parse(&b).unwrap(), cp);
    }
}
