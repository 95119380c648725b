//! Just enough of IPv4 (RFC 791) and IPv6 (RFC 8200) to run the security
//! policy database: addresses, the upper-layer protocol and its ports.
//!
//! ```text
//! IPv4 header (RFC 791 §3.1)
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! IPv6 header (RFC 8200 §3)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Source Address (128 bits)                     |
//! |                 Destination Address (128 bits)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::error::Error;
use crate::iana::IpProtocol;
use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const IPV4_MIN_HEADER_LEN: usize = 20;
pub const IPV6_HEADER_LEN: usize = 40;

/// The fields of a packet that traffic selectors look at (RFC 4301 §4.4.1.1).
/// Ports are 0 for protocols without ports and for non-first fragments
/// (RFC 4301 §7: OPAQUE). For ICMP, `src_port` holds type and `dst_port`
/// code, as IKEv2 traffic selectors encode them (RFC 7296 §3.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    pub src_port: u16,
    pub dst_port: u16,
    /// True for a non-first fragment: the ports are not available.
    pub ports_opaque: bool,
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.protocol.has_ports() && !self.ports_opaque {
            write!(
                f,
                "{} {}:{} -> {}:{}",
                self.protocol, self.src, self.src_port, self.dst, self.dst_port
            )
        } else {
            write!(f, "{} {} -> {}", self.protocol, self.src, self.dst)
        }
    }
}

/// Parse the flow key of an IPv4 or IPv6 packet (version taken from the
/// first nibble). The packet must be complete up to the ports.
pub fn flow_key(packet: &[u8]) -> Result<FlowKey, Error> {
    Error::check_len("IP header", 1, packet.len())?;
    match packet[0] >> 4 {
        4 => flow_key_v4(packet),
        6 => flow_key_v6(packet),
        v => Err(Error::Unsupported {
            what: "IP version",
            value: v as u32,
        }),
    }
}

/// IP version of a packet (4 or 6) from its first nibble.
pub fn version(packet: &[u8]) -> Option<u8> {
    packet.first().map(|b| b >> 4).filter(|v| *v == 4 || *v == 6)
}

fn ports(proto: IpProtocol, l4: &[u8]) -> (u16, u16) {
    if proto.has_ports() && l4.len() >= 4 {
        (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]))
    } else if (proto == IpProtocol::ICMP || proto == IpProtocol::ICMPV6) && l4.len() >= 2 {
        (l4[0] as u16, l4[1] as u16)
    } else {
        (0, 0)
    }
}

fn flow_key_v4(p: &[u8]) -> Result<FlowKey, Error> {
    Error::check_len("IPv4 header", IPV4_MIN_HEADER_LEN, p.len())?;
    let ihl = (p[0] & 0x0f) as usize * 4;
    if ihl < IPV4_MIN_HEADER_LEN {
        return Err(Error::Malformed { what: "IPv4 IHL" });
    }
    Error::check_len("IPv4 header with options", ihl, p.len())?;
    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
    if total < ihl || total > p.len() {
        return Err(Error::Malformed {
            what: "IPv4 Total Length",
        });
    }
    let frag_offset = u16::from_be_bytes([p[6], p[7]]) & 0x1fff;
    let protocol = IpProtocol(p[9]);
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    let ports_opaque = frag_offset != 0;
    let (src_port, dst_port) = if ports_opaque {
        (0, 0)
    } else {
        ports(protocol, &p[ihl..total])
    };
    Ok(FlowKey {
        src,
        dst,
        protocol,
        src_port,
        dst_port,
        ports_opaque,
    })
}

fn flow_key_v6(p: &[u8]) -> Result<FlowKey, Error> {
    Error::check_len("IPv6 header", IPV6_HEADER_LEN, p.len())?;
    let payload_len = u16::from_be_bytes([p[4], p[5]]) as usize;
    if IPV6_HEADER_LEN + payload_len > p.len() {
        return Err(Error::Malformed {
            what: "IPv6 Payload Length",
        });
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(&p[8..24]);
    let src = IpAddr::V6(Ipv6Addr::from(a));
    a.copy_from_slice(&p[24..40]);
    let dst = IpAddr::V6(Ipv6Addr::from(a));
    let end = IPV6_HEADER_LEN + payload_len;
    // Walk the extension headers to the upper-layer protocol (RFC 8200 §4).
    let mut next = IpProtocol(p[6]);
    let mut off = IPV6_HEADER_LEN;
    let mut ports_opaque = false;
    for _ in 0..8 {
        match next {
            IpProtocol::HOPOPT | IpProtocol::IPV6_ROUTE | IpProtocol::IPV6_OPTS => {
                Error::check_len("IPv6 extension header", off + 8, end)?;
                let len = (p[off + 1] as usize + 1) * 8;
                next = IpProtocol(p[off]);
                off += len;
            }
            IpProtocol::IPV6_FRAG => {
                Error::check_len("IPv6 fragment header", off + 8, end)?;
                let frag_offset = u16::from_be_bytes([p[off + 2], p[off + 3]]) >> 3;
                ports_opaque |= frag_offset != 0;
                next = IpProtocol(p[off]);
                off += 8;
            }
            _ => break,
        }
    }
    if off > end {
        return Err(Error::Malformed {
            what: "IPv6 extension header chain",
        });
    }
    let (src_port, dst_port) = if ports_opaque {
        (0, 0)
    } else {
        ports(next, &p[off..end])
    };
    Ok(FlowKey {
        src,
        dst,
        protocol: next,
        src_port,
        dst_port,
        ports_opaque,
    })
}

/// Length an IP packet claims for itself (IPv4 Total Length, or IPv6
/// Payload Length + 40), checked against the buffer.
pub fn claimed_len(packet: &[u8]) -> Result<usize, Error> {
    match version(packet) {
        Some(4) => {
            Error::check_len("IPv4 header", IPV4_MIN_HEADER_LEN, packet.len())?;
            let n = u16::from_be_bytes([packet[2], packet[3]]) as usize;
            if n < IPV4_MIN_HEADER_LEN || n > packet.len() {
                return Err(Error::Malformed {
                    what: "IPv4 Total Length",
                });
            }
            Ok(n)
        }
        Some(_) => {
            Error::check_len("IPv6 header", IPV6_HEADER_LEN, packet.len())?;
            let n = u16::from_be_bytes([packet[4], packet[5]]) as usize + IPV6_HEADER_LEN;
            if n > packet.len() {
                return Err(Error::Malformed {
                    what: "IPv6 Payload Length",
                });
            }
            Ok(n)
        }
        None => Err(Error::Malformed { what: "IP version" }),
    }
}

/// Build a minimal IPv4 packet (for tests and tools): header with a valid
/// checksum followed by `payload`.
pub fn build_ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let total = IPV4_MIN_HEADER_LEN + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = protocol.0;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let csum = internet_checksum(&p[..IPV4_MIN_HEADER_LEN]);
    p[10..12].copy_from_slice(&csum.to_be_bytes());
    p[IPV4_MIN_HEADER_LEN..].copy_from_slice(payload);
    p
}

/// Build a minimal IPv6 packet (for tests and tools).
pub fn build_ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; IPV6_HEADER_LEN + payload.len()];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p[6] = next.0;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[IPV6_HEADER_LEN..].copy_from_slice(payload);
    p
}

/// RFC 1071 Internet checksum.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_udp_flow() {
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        udp[2..4].copy_from_slice(&53u16.to_be_bytes());
        let p = build_ipv4(
            Ipv4Addr::new(192, 168, 11, 11),
            Ipv4Addr::new(192, 168, 12, 12),
            IpProtocol::UDP,
            &udp,
        );
        assert_eq!(internet_checksum(&p[..20]), 0);
        let k = flow_key(&p).unwrap();
        assert_eq!(k.to_string(), "udp 192.168.11.11:1234 -> 192.168.12.12:53");
        assert_eq!(claimed_len(&p).unwrap(), 28);
    }

    #[test]
    fn ipv4_icmp_type_code_and_fragments() {
        let p = build_ipv4(
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            IpProtocol::ICMP,
            &[8, 0, 0, 0],
        );
        let k = flow_key(&p).unwrap();
        assert_eq!((k.src_port, k.dst_port), (8, 0));
        let mut f = build_ipv4(
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            IpProtocol::TCP,
            &[0, 80, 0, 81],
        );
        f[7] = 10; // fragment offset 10
        let k = flow_key(&f).unwrap();
        assert!(k.ports_opaque);
        assert_eq!(k.src_port, 0);
    }

    #[test]
    fn ipv6_with_extension_headers() {
        // Hop-by-hop (8 bytes) then TCP ports 443 -> 5555.
        let mut payload = vec![IpProtocol::TCP.0, 0, 0, 0, 0, 0, 0, 0];
        payload.extend_from_slice(&[0x01, 0xbb, 0x15, 0xb3]);
        let p = build_ipv6(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            IpProtocol::HOPOPT,
            &payload,
        );
        let k = flow_key(&p).unwrap();
        assert_eq!(k.protocol, IpProtocol::TCP);
        assert_eq!((k.src_port, k.dst_port), (443, 5555));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 1;
        for len in 0..80 {
            for _ in 0..200 {
                let buf: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                let _ = flow_key(&buf);
                let _ = claimed_len(&buf);
                let mut v4 = buf.clone();
                if !v4.is_empty() {
                    v4[0] = 0x40 | (v4[0] & 0x0f);
                    let _ = flow_key(&v4);
                    v4[0] = 0x60;
                    let _ = flow_key(&v4);
                }
            }
        }
    }
}
