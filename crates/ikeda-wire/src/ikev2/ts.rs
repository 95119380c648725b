//! Traffic Selector payloads TSi and TSr, RFC 7296 §3.13.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Number of TSs |                 RESERVED                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                       <Traffic Selectors>                     ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Traffic Selector (§3.13.1)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   TS Type     |IP Protocol ID*|       Selector Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Start Port*         |           End Port*           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                         Starting Address*                     ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                         Ending Address*                       ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Selector Length is 16 for TS_IPV4_ADDR_RANGE and 40 for
//! TS_IPV6_ADDR_RANGE. Selectors of other types (RFC 4595, RFC 9478) are
//! kept opaque so the engine can answer TS_UNACCEPTABLE instead of
//! INVALID_SYNTAX. Number of TSs must match the selectors present.

use super::iana::TsType;
use super::{len_u16, len_u8, Reader};
use crate::error::Error;
use crate::iana::IpProtocol;
use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range selector (TS_IPV4_ADDR_RANGE or TS_IPV6_ADDR_RANGE).
/// For ICMP, the ports carry type and code (§3.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsRange {
    /// 0 means any protocol.
    pub ip_protocol: IpProtocol,
    pub start_port: u16,
    pub end_port: u16,
    /// Start and end must be of the same family (checked on emit).
    pub start_address: IpAddr,
    pub end_address: IpAddr,
}

impl TsRange {
    /// All protocols, all ports, one address range.
    pub fn addresses(start_address: IpAddr, end_address: IpAddr) -> Self {
        TsRange {
            ip_protocol: IpProtocol(0),
            start_port: 0,
            end_port: 0xffff,
            start_address,
            end_address,
        }
    }

    pub fn ts_type(&self) -> TsType {
        match self.start_address {
            IpAddr::V4(_) => TsType::TS_IPV4_ADDR_RANGE,
            IpAddr::V6(_) => TsType::TS_IPV6_ADDR_RANGE,
        }
    }
}

impl fmt::Display for TsRange {
    /// strongSwan's notation: a prefix when the range is one
    /// (`10.1.0.0/16`), else `start..end`; `[proto/port]` when restricted
    /// (`10.1.0.5/32[tcp/443]`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match prefix_len(self.start_address, self.end_address) {
            Some(p) => write!(f, "{}/{p}", self.start_address)?,
            None => write!(f, "{}..{}", self.start_address, self.end_address)?,
        }
        let any_port = self.start_port == 0 && self.end_port == 0xffff;
        if self.ip_protocol.0 != 0 || !any_port {
            write!(f, "[{}", self.ip_protocol)?;
            if !any_port {
                if self.start_port == self.end_port {
                    write!(f, "/{}", self.start_port)?;
                } else {
                    write!(f, "/{}-{}", self.start_port, self.end_port)?;
                }
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

/// The prefix length if `start..end` is exactly one CIDR block.
fn prefix_len(start: IpAddr, end: IpAddr) -> Option<u32> {
    let (s, e, bits) = match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => (u32::from(s) as u128, u32::from(e) as u128, 32),
        (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s), u128::from(e), 128),
        _ => return None,
    };
    let host = s ^ e;
    // host must be 0...01...1 and s must have those bits clear, e set.
    if host & host.wrapping_add(1) != 0 || s & host != 0 || e < s {
        return None;
    }
    Some(bits - (128 - host.leading_zeros()))
}

/// One traffic selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrafficSelector {
    Range(TsRange),
    /// A selector of a type we do not interpret: its second octet and the
    /// octets after Selector Length.
    Other {
        ts_type: TsType,
        octet1: u8,
        data: Vec<u8>,
    },
}

impl TrafficSelector {
    pub fn ts_type(&self) -> TsType {
        match self {
            TrafficSelector::Range(r) => r.ts_type(),
            TrafficSelector::Other { ts_type, .. } => *ts_type,
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut h = Reader::new("Traffic Selector", r.take(4)?);
        let ts_type = TsType(h.u8()?);
        let octet1 = h.u8()?;
        let len = h.u16()? as usize;
        if len < 4 {
            return Err(Error::Malformed {
                what: "Traffic Selector Length below 4",
            });
        }
        let body = r.take(len - 4)?;
        let addr_len = match ts_type {
            TsType::TS_IPV4_ADDR_RANGE => 4,
            TsType::TS_IPV6_ADDR_RANGE => 16,
            _ => {
                return Ok(TrafficSelector::Other {
                    ts_type,
                    octet1,
                    data: body.to_vec(),
                })
            }
        };
        if body.len() != 4 + 2 * addr_len {
            return Err(Error::Malformed {
                what: "Traffic Selector Length (16 for IPv4, 40 for IPv6)",
            });
        }
        let mut b = Reader::new("Traffic Selector", body);
        let start_port = b.u16()?;
        let end_port = b.u16()?;
        let start = b.take(addr_len)?;
        let end = b.take(addr_len)?;
        let (start_address, end_address) = if addr_len == 4 {
            (ip4(start), ip4(end))
        } else {
            (ip6(start), ip6(end))
        };
        Ok(TrafficSelector::Range(TsRange {
            ip_protocol: IpProtocol(octet1),
            start_port,
            end_port,
            start_address,
            end_address,
        }))
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            TrafficSelector::Range(r) => {
                out.push(r.ts_type().0);
                out.push(r.ip_protocol.0);
                match (r.start_address, r.end_address) {
                    (IpAddr::V4(s), IpAddr::V4(e)) => {
                        out.extend_from_slice(&16u16.to_be_bytes());
                        out.extend_from_slice(&r.start_port.to_be_bytes());
                        out.extend_from_slice(&r.end_port.to_be_bytes());
                        out.extend_from_slice(&s.octets());
                        out.extend_from_slice(&e.octets());
                    }
                    (IpAddr::V6(s), IpAddr::V6(e)) => {
                        out.extend_from_slice(&40u16.to_be_bytes());
                        out.extend_from_slice(&r.start_port.to_be_bytes());
                        out.extend_from_slice(&r.end_port.to_be_bytes());
                        out.extend_from_slice(&s.octets());
                        out.extend_from_slice(&e.octets());
                    }
                    _ => {
                        return Err(Error::Malformed {
                            what: "Traffic Selector: start and end address of different families",
                        })
                    }
                }
            }
            TrafficSelector::Other { ts_type, octet1, data } => {
                out.push(ts_type.0);
                out.push(*octet1);
                out.extend_from_slice(&len_u16("Traffic Selector Length", data.len() + 4)?.to_be_bytes());
                out.extend_from_slice(data);
            }
        }
        Ok(())
    }
}

impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrafficSelector::Range(r) => write!(f, "{r}"),
            TrafficSelector::Other { ts_type, data, .. } => write!(f, "{ts_type}:{}", super::hex(data)),
        }
    }
}

fn ip4(b: &[u8]) -> IpAddr {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    IpAddr::V4(Ipv4Addr::from(a))
}

fn ip6(b: &[u8]) -> IpAddr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    IpAddr::V6(Ipv6Addr::from(a))
}

/// The body of a TSi or TSr payload ([`super::Payload`] tells which).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TsPayload {
    pub traffic_selectors: Vec<TrafficSelector>,
}

impl TsPayload {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("TS payload", body);
        let num = r.u8()? as usize;
        let _reserved = r.take(3)?;
        let mut traffic_selectors = Vec::with_capacity(num);
        while !r.is_empty() {
            traffic_selectors.push(TrafficSelector::parse(&mut r)?);
        }
        if traffic_selectors.len() != num {
            return Err(Error::Malformed {
                what: "TS payload Number of TSs disagrees with Payload Length",
            });
        }
        Ok(TsPayload { traffic_selectors })
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(len_u8("TS payload Number of TSs", self.traffic_selectors.len())?);
        out.extend_from_slice(&[0, 0, 0]);
        for ts in &self.traffic_selectors {
            ts.emit(out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TsPayload {
        TsPayload {
            traffic_selectors: vec![
                TrafficSelector::Range(TsRange::addresses(
                    "10.1.0.0".parse().unwrap(),
                    "10.1.255.255".parse().unwrap(),
                )),
                TrafficSelector::Range(TsRange {
                    ip_protocol: IpProtocol::TCP,
                    start_port: 443,
                    end_port: 443,
                    start_address: "2001:db8::".parse().unwrap(),
                    end_address: "2001:db8::ffff".parse().unwrap(),
                }),
                TrafficSelector::Other {
                    ts_type: TsType::TS_SECLABEL,
                    octet1: 0,
                    data: b"system_u".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn roundtrip_and_layout() {
        let ts = sample();
        let mut b = Vec::new();
        ts.emit(&mut b).unwrap();
        #[rustfmt::skip]
        assert_eq!(&b[..20], &[
            3, 0, 0, 0,
            7, 0, 0, 16, 0, 0, 0xff, 0xff, 10, 1, 0, 0, 10, 1, 255, 255,
        ]);
        assert_eq!(TsPayload::parse(&b).unwrap(), ts);
        assert_eq!(ts.traffic_selectors[0].to_string(), "10.1.0.0/16");
        assert_eq!(ts.traffic_selectors[1].to_string(), "2001:db8::/112[tcp/443]");
        let r = TsRange::addresses("10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap());
        assert_eq!(r.to_string(), "10.0.0.1..10.0.0.5");
        let r = TsRange::addresses("0.0.0.0".parse().unwrap(), "255.255.255.255".parse().unwrap());
        assert_eq!(r.to_string(), "0.0.0.0/0");
        let r = TsRange::addresses(
            "::".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        );
        assert_eq!(r.to_string(), "::/0");
        let r = TsRange::addresses("10.0.0.7".parse().unwrap(), "10.0.0.7".parse().unwrap());
        assert_eq!(r.to_string(), "10.0.0.7/32");
        for n in 0..b.len() {
            assert!(TsPayload::parse(&b[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn malformed() {
        let mut b = Vec::new();
        sample().emit(&mut b).unwrap();
        let mut c = b.clone();
        c[0] = 2; // Number of TSs too low
        assert!(TsPayload::parse(&c).is_err());
        let mut c = b.clone();
        c[7] = 20; // IPv4 selector claims 20 octets
        assert!(TsPayload::parse(&c).is_err());
        let mut c = b.clone();
        c[7] = 2; // below 4
        assert!(TsPayload::parse(&c).is_err());
        let mixed = TrafficSelector::Range(TsRange::addresses("10.0.0.1".parse().unwrap(), "::1".parse().unwrap()));
        assert!(mixed.emit(&mut Vec::new()).is_err());
    }
}
