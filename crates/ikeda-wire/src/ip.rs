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

/// Where a fragment sits in its datagram (RFC 791 §3.2, RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Identification: 16 bits in IPv4, 32 in IPv6.
    pub id: u32,
    /// Fragment Offset in bytes (the header counts 8-octet units).
    pub offset: usize,
    /// The More Fragments flag.
    pub more: bool,
}

/// The network layer of one IP packet: addresses, the upper-layer protocol
/// and its bytes. For a fragment, `payload` is the fragment's part of the
/// datagram's payload and `protocol` that of the whole datagram (IPv6:
/// the Next Header of the Fragment header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    pub payload: &'a [u8],
    pub fragment: Option<Fragment>,
}

/// Parse an IPv4 or IPv6 packet down to its upper-layer payload, skipping
/// IPv6 extension headers (hop-by-hop, routing, destination options) up to
/// a Fragment header or the upper-layer protocol. Bytes after the length
/// the header claims (Ethernet padding) are not part of the payload.
pub fn datagram(packet: &[u8]) -> Result<Datagram<'_>, Error> {
    Error::check_len("IP header", 1, packet.len())?;
    match packet[0] >> 4 {
        4 => datagram_v4(packet),
        6 => datagram_v6(packet, true),
        v => Err(Error::Unsupported {
            what: "IP version",
            value: v as u32,
        }),
    }
}

fn datagram_v4(p: &[u8]) -> Result<Datagram<'_>, Error> {
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
    let flags_offset = u16::from_be_bytes([p[6], p[7]]);
    let offset = (flags_offset & 0x1fff) as usize * 8;
    let more = flags_offset & 0x2000 != 0;
    let fragment = (offset != 0 || more).then(|| Fragment {
        id: u16::from_be_bytes([p[4], p[5]]) as u32,
        offset,
        more,
    });
    Ok(Datagram {
        src: IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15])),
        dst: IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])),
        protocol: IpProtocol(p[9]),
        payload: &p[ihl..total],
        fragment,
    })
}

/// Walk the IPv6 extension headers (RFC 8200 §4) to the upper-layer
/// protocol, at most eight of them. With `stop_at_fragment` the walk ends
/// after a Fragment header: what follows it is only the first part of the
/// datagram's payload.
fn datagram_v6(p: &[u8], stop_at_fragment: bool) -> Result<Datagram<'_>, Error> {
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
    let mut next = IpProtocol(p[6]);
    let mut off = IPV6_HEADER_LEN;
    let mut fragment: Option<Fragment> = None;
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
                let flags_offset = u16::from_be_bytes([p[off + 2], p[off + 3]]);
                let this = Fragment {
                    id: u32::from_be_bytes([p[off + 4], p[off + 5], p[off + 6], p[off + 7]]),
                    offset: (flags_offset >> 3) as usize * 8,
                    more: flags_offset & 1 != 0,
                };
                // An earlier Fragment header's non-zero offset keeps the ports opaque.
                if fragment.is_none_or(|f| f.offset == 0) {
                    fragment = Some(this);
                }
                next = IpProtocol(p[off]);
                off += 8;
                if stop_at_fragment {
                    break;
                }
            }
            _ => break,
        }
    }
    if off > end {
        return Err(Error::Malformed {
            what: "IPv6 extension header chain",
        });
    }
    Ok(Datagram {
        src,
        dst,
        protocol: next,
        payload: &p[off..end],
        fragment,
    })
}

fn flow_key_v4(p: &[u8]) -> Result<FlowKey, Error> {
    flow_key_of(datagram_v4(p)?)
}

fn flow_key_v6(p: &[u8]) -> Result<FlowKey, Error> {
    flow_key_of(datagram_v6(p, false)?)
}

fn flow_key_of(d: Datagram<'_>) -> Result<FlowKey, Error> {
    let ports_opaque = d.fragment.is_some_and(|f| f.offset != 0);
    let (src_port, dst_port) = if ports_opaque {
        (0, 0)
    } else {
        ports(d.protocol, d.payload)
    };
    Ok(FlowKey {
        src: d.src,
        dst: d.dst,
        protocol: d.protocol,
        src_port,
        dst_port,
        ports_opaque,
    })
}

/// A UDP header (RFC 768) and the payload its Length field covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

pub const UDP_HEADER_LEN: usize = 8;

/// Parse a UDP header at the start of `segment` (the payload of an IP
/// datagram). Bytes past the UDP Length are not part of the payload; a
/// Length of 0 (IPv6 jumbograms, RFC 2675) takes the whole segment.
pub fn udp(segment: &[u8]) -> Result<UdpDatagram<'_>, Error> {
    Error::check_len("UDP header", UDP_HEADER_LEN, segment.len())?;
    let len = u16::from_be_bytes([segment[4], segment[5]]) as usize;
    let end = match len {
        0 => segment.len(),
        n if n < UDP_HEADER_LEN => return Err(Error::Malformed { what: "UDP Length" }),
        n => {
            Error::check_len("UDP datagram (Length)", n, segment.len())?;
            n
        }
    };
    Ok(UdpDatagram {
        src_port: u16::from_be_bytes([segment[0], segment[1]]),
        dst_port: u16::from_be_bytes([segment[2], segment[3]]),
        payload: &segment[UDP_HEADER_LEN..end],
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
    fn datagram_payload_fragments_and_padding() {
        let udp = [0x11, 0x94, 0x11, 0x94, 0, 9, 0, 0, 0xff];
        let mut p = build_ipv4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            IpProtocol::UDP,
            &udp,
        );
        p.extend_from_slice(&[0; 17]); // Ethernet padding to 60 bytes
        let d = datagram(&p).unwrap();
        assert_eq!((d.protocol, d.payload, d.fragment), (IpProtocol::UDP, &udp[..], None));
        let u = udp_of(&d);
        assert_eq!((u.src_port, u.dst_port, u.payload), (4500, 4500, &[0xff][..]));
        // Identification 0x1234, MF set, offset 185 (1480 bytes).
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[6..8].copy_from_slice(&(0x2000u16 | 185).to_be_bytes());
        let f = datagram(&p).unwrap().fragment.unwrap();
        assert_eq!(
            f,
            Fragment {
                id: 0x1234,
                offset: 1480,
                more: true
            }
        );
        // IPv6: hop-by-hop, then a Fragment header (offset 0, M set, id 7), then UDP.
        let mut payload = vec![IpProtocol::IPV6_FRAG.0, 0, 0, 0, 0, 0, 0, 0];
        payload.extend_from_slice(&[IpProtocol::UDP.0, 0, 0, 1, 0, 0, 0, 7]);
        payload.extend_from_slice(&udp);
        let p6 = build_ipv6(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            IpProtocol::HOPOPT,
            &payload,
        );
        let d6 = datagram(&p6).unwrap();
        assert_eq!(d6.protocol, IpProtocol::UDP);
        assert_eq!(
            d6.fragment,
            Some(Fragment {
                id: 7,
                offset: 0,
                more: true
            })
        );
        assert_eq!(d6.payload, &udp[..]);
        assert_eq!(flow_key(&p6).unwrap().dst_port, 4500);
    }

    fn udp_of<'a>(d: &Datagram<'a>) -> UdpDatagram<'a> {
        udp(d.payload).unwrap()
    }

    #[test]
    fn udp_lengths() {
        assert_eq!(udp(&[0, 1, 0, 2, 0, 8, 0, 0, 9]).unwrap().payload, &[] as &[u8]);
        assert_eq!(udp(&[0, 1, 0, 2, 0, 0, 0, 0, 9]).unwrap().payload, &[9]);
        assert_eq!(
            udp(&[0, 1, 0, 2, 0, 7, 0, 0]).unwrap_err(),
            Error::Malformed { what: "UDP Length" }
        );
        assert!(matches!(
            udp(&[0, 1, 0, 2, 0, 10, 0, 0, 9]),
            Err(Error::Truncated { .. })
        ));
        assert!(udp(&[0, 1, 0, 2]).is_err());
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
                let _ = datagram(&buf).map(|d| udp(d.payload));
                let mut v4 = buf.clone();
                if !v4.is_empty() {
                    v4[0] = 0x40 | (v4[0] & 0x0f);
                    let _ = flow_key(&v4);
                    let _ = datagram(&v4);
                    v4[0] = 0x60;
                    let _ = flow_key(&v4);
                    let _ = datagram(&v4);
                }
            }
        }
    }
}
