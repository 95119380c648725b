//! Identification payloads IDi and IDr, RFC 7296 §3.5.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   ID Type     |                 RESERVED                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                   Identification Data                         ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::iana::IdType;
use super::Reader;
use crate::error::Error;
use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdPayload {
    pub id_type: IdType,
    pub data: Vec<u8>,
}

impl IdPayload {
    pub fn fqdn(name: &str) -> Self {
        IdPayload {
            id_type: IdType::ID_FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    pub fn ipv4(a: Ipv4Addr) -> Self {
        IdPayload {
            id_type: IdType::ID_IPV4_ADDR,
            data: a.octets().to_vec(),
        }
    }

    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("ID payload", body);
        let id_type = IdType(r.u8()?);
        let _reserved = r.take(3)?;
        Ok(IdPayload {
            id_type,
            data: r.rest().to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&[self.id_type.0, 0, 0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }

    /// The payload body, what §2.15 calls RestOfInitIDPayload /
    /// RestOfRespIDPayload: the input of the prf in the AUTH computation.
    pub fn rest_of_id_payload(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + self.data.len());
        let _ = self.emit(&mut v);
        v
    }
}

impl fmt::Display for IdPayload {
    /// The identity as a user would write it; opaque types in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.data[..];
        match self.id_type {
            IdType::ID_IPV4_ADDR if d.len() == 4 => write!(f, "{}", Ipv4Addr::new(d[0], d[1], d[2], d[3])),
            IdType::ID_IPV6_ADDR if d.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(d);
                write!(f, "{}", Ipv6Addr::from(a))
            }
            IdType::ID_FQDN | IdType::ID_RFC822_ADDR => match core::str::from_utf8(d) {
                Ok(s) if s.chars().all(|c| !c.is_control()) => f.write_str(s),
                _ => write!(f, "{}:{}", self.id_type, super::hex(d)),
            },
            t => write!(f, "{t}:{}", super::hex(d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_display() {
        let id = IdPayload::fqdn("gw1.example.net");
        let b = id.rest_of_id_payload();
        assert_eq!(&b[..4], &[2, 0, 0, 0]);
        assert_eq!(IdPayload::parse(&b).unwrap(), id);
        assert_eq!(id.to_string(), "gw1.example.net");
        assert_eq!(IdPayload::ipv4(Ipv4Addr::new(10, 0, 0, 1)).to_string(), "10.0.0.1");
        let k = IdPayload {
            id_type: IdType::ID_KEY_ID,
            data: vec![0xde, 0xad],
        };
        assert_eq!(k.to_string(), "ID_KEY_ID:dead");
        for n in 0..4 {
            assert!(IdPayload::parse(&b[..n]).is_err());
        }
    }
}
