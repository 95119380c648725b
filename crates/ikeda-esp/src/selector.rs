//! Traffic selectors, RFC 4301 §4.4.1.1: which packets an SA or a policy
//! covers. Addresses are ranges (as IKEv2 TSi/TSr carry them, RFC 7296
//! §3.13.1), written in config as a CIDR prefix, a single address or
//! `start-end`; protocol and ports are optional.

use core::fmt;
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip::FlowKey;
use std::net::IpAddr;

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    pub start: IpAddr,
    pub end: IpAddr,
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

impl AddrRange {
    pub fn single(a: IpAddr) -> Self {
        AddrRange { start: a, end: a }
    }

    /// Parse `10.0.0.0/8`, `192.0.2.1`, `2001:db8::/32`, `10.0.0.1-10.0.0.9`.
    pub fn parse(s: &str) -> Result<AddrRange, String> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let start: IpAddr = a
                .trim()
                .parse()
                .map_err(|_| format!("bad address '{a}' in range '{s}'"))?;
            let end: IpAddr = b
                .trim()
                .parse()
                .map_err(|_| format!("bad address '{b}' in range '{s}'"))?;
            if start.is_ipv4() != end.is_ipv4() || to_u128(start) > to_u128(end) {
                return Err(format!("range '{s}' is empty or mixes address families"));
            }
            return Ok(AddrRange { start, end });
        }
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("bad address '{addr}' in '{s}'"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let len: u32 = match len {
            Some(l) => l
                .parse()
                .ok()
                .filter(|l| *l <= bits)
                .ok_or_else(|| format!("bad prefix length in '{s}'"))?,
            None => bits,
        };
        let host_bits = bits - len;
        let mask: u128 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let a = to_u128(addr);
        if a & mask != 0 {
            return Err(format!(
                "'{s}' has host bits set (did you mean {}?)",
                Self::fmt_prefix(addr, a & !mask, len)
            ));
        }
        let (start, end) = (a & !mask, a | mask);
        let mk = |v: u128| -> IpAddr {
            match addr {
                IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
                IpAddr::V6(_) => IpAddr::V6(v.into()),
            }
        };
        Ok(AddrRange {
            start: mk(start),
            end: mk(end),
        })
    }

    fn fmt_prefix(addr: IpAddr, v: u128, len: u32) -> String {
        match addr {
            IpAddr::V4(_) => format!("{}/{len}", std::net::Ipv4Addr::from(v as u32)),
            IpAddr::V6(_) => format!("{}/{len}", std::net::Ipv6Addr::from(v)),
        }
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.start.is_ipv4() && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(a))
    }

    pub fn is_ipv4(&self) -> bool {
        self.start.is_ipv4()
    }

    /// The prefix length if this range is exactly one CIDR block.
    pub fn prefix_len(&self) -> Option<u32> {
        let (s, e) = (to_u128(self.start), to_u128(self.end));
        let bits = if self.is_ipv4() { 32 } else { 128 };
        let span = e - s;
        if span == u128::MAX {
            return Some(0);
        }
        let size = span + 1;
        (size.is_power_of_two() && s % size == 0).then(|| bits - size.trailing_zeros())
    }

    /// CIDR blocks that exactly cover the range (for routes).
    pub fn to_cidrs(&self) -> Vec<String> {
        if let Some(l) = self.prefix_len() {
            return vec![format!("{}/{l}", self.start)];
        }
        let bits = if self.is_ipv4() { 32 } else { 128 };
        let (mut s, e) = (to_u128(self.start), to_u128(self.end));
        let mut out = Vec::new();
        loop {
            let mut size_bits = if s == 0 { bits } else { s.trailing_zeros().min(bits) };
            while size_bits > 0 && (size_bits >= 128 || s.checked_add((1u128 << size_bits) - 1).is_none_or(|x| x > e)) {
                size_bits -= 1;
            }
            let r = AddrRange {
                start: self.mk(s),
                end: self.mk(s + ((1u128 << size_bits) - 1)),
            };
            out.push(format!("{}/{}", r.start, bits - size_bits));
            let last = s + ((1u128 << size_bits) - 1);
            if last >= e {
                break;
            }
            s = last + 1;
        }
        out
    }

    fn mk(&self, v: u128) -> IpAddr {
        match self.start {
            IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(v.into()),
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len() {
            Some(l) if (self.is_ipv4() && l == 32) || (!self.is_ipv4() && l == 128) => {
                write!(f, "{}", self.start)
            }
            Some(l) => write!(f, "{}/{l}", self.start),
            None => write!(f, "{}-{}", self.start, self.end),
        }
    }
}

/// A traffic selector pair seen from this gateway: packets going out have
/// their source in `local` and destination in `remote`; packets coming in
/// the reverse.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    pub local: AddrRange,
    pub remote: AddrRange,
    /// `None` = any protocol.
    pub protocol: Option<IpProtocol>,
    pub local_ports: (u16, u16),
    pub remote_ports: (u16, u16),
}

impl Selector {
    pub fn new(local: AddrRange, remote: AddrRange) -> Self {
        Selector {
            local,
            remote,
            protocol: None,
            local_ports: (0, 65535),
            remote_ports: (0, 65535),
        }
    }

    fn ports_any(p: (u16, u16)) -> bool {
        p == (0, 65535)
    }

    fn match_parts(&self, local: IpAddr, remote: IpAddr, k: &FlowKey, lport: u16, rport: u16) -> bool {
        if !self.local.contains(local) || !self.remote.contains(remote) {
            return false;
        }
        if let Some(p) = self.protocol {
            if p != k.protocol {
                return false;
            }
        }
        let ports_restricted = !Self::ports_any(self.local_ports) || !Self::ports_any(self.remote_ports);
        if ports_restricted {
            // RFC 4301 §4.4.1.1: a non-first fragment has OPAQUE ports and
            // cannot match a selector that restricts them.
            if k.ports_opaque {
                return false;
            }
            let inr = |p: u16, r: (u16, u16)| r.0 <= p && p <= r.1;
            return inr(lport, self.local_ports) && inr(rport, self.remote_ports);
        }
        true
    }

    /// Does an outbound packet (source local, destination remote) match?
    pub fn matches_outbound(&self, k: &FlowKey) -> bool {
        self.match_parts(k.src, k.dst, k, k.src_port, k.dst_port)
    }

    /// Does an inbound inner packet (source remote, destination local) match?
    pub fn matches_inbound(&self, k: &FlowKey) -> bool {
        self.match_parts(k.dst, k.src, k, k.dst_port, k.src_port)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = |p: (u16, u16)| -> String {
            if Self::ports_any(p) {
                String::new()
            } else if p.0 == p.1 {
                format!("[{}]", p.0)
            } else {
                format!("[{}-{}]", p.0, p.1)
            }
        };
        let proto = self.protocol.map(|p| format!(" {p}")).unwrap_or_default();
        write!(
            f,
            "{}{} === {}{}{}",
            self.local,
            ports(self.local_ports),
            self.remote,
            ports(self.remote_ports),
            proto
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikeda_wire::ip::{build_ipv4, flow_key};

    #[test]
    fn parse_forms() {
        let r = AddrRange::parse("192.168.11.0/24").unwrap();
        assert_eq!(r.start.to_string(), "192.168.11.0");
        assert_eq!(r.end.to_string(), "192.168.11.255");
        assert_eq!(r.to_string(), "192.168.11.0/24");
        assert_eq!(AddrRange::parse("192.168.50.11").unwrap().to_string(), "192.168.50.11");
        assert_eq!(AddrRange::parse("0.0.0.0/0").unwrap().prefix_len(), Some(0));
        assert_eq!(AddrRange::parse("::/0").unwrap().prefix_len(), Some(0));
        assert_eq!(AddrRange::parse("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
        assert!(AddrRange::parse("192.168.11.1/24")
            .unwrap_err()
            .contains("192.168.11.0/24"));
        assert!(AddrRange::parse("10.0.0.9-10.0.0.1").is_err());
        assert!(AddrRange::parse("10.0.0.1-::1").is_err());
        assert!(AddrRange::parse("10.0.0.0/33").is_err());
        let r = AddrRange::parse("10.0.0.1-10.0.0.6").unwrap();
        assert_eq!(r.to_string(), "10.0.0.1-10.0.0.6");
        assert_eq!(
            r.to_cidrs(),
            vec!["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(AddrRange::parse("0.0.0.0/0").unwrap().to_cidrs(), vec!["0.0.0.0/0"]);
        assert_eq!(AddrRange::parse("::/0").unwrap().to_cidrs(), vec!["::/0"]);
    }

    #[test]
    fn matching_directions_protocols_ports() {
        let mut s = Selector::new(
            AddrRange::parse("192.168.11.0/24").unwrap(),
            AddrRange::parse("192.168.12.0/24").unwrap(),
        );
        let tcp = |src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16| {
            let mut l4 = vec![0u8; 20];
            l4[0..2].copy_from_slice(&sp.to_be_bytes());
            l4[2..4].copy_from_slice(&dp.to_be_bytes());
            flow_key(&build_ipv4(src.into(), dst.into(), IpProtocol::TCP, &l4)).unwrap()
        };
        let out = tcp([192, 168, 11, 11], [192, 168, 12, 12], 40000, 80);
        let back = tcp([192, 168, 12, 12], [192, 168, 11, 11], 80, 40000);
        assert!(s.matches_outbound(&out));
        assert!(!s.matches_inbound(&out));
        assert!(s.matches_inbound(&back));
        s.protocol = Some(IpProtocol::TCP);
        s.remote_ports = (80, 80);
        assert!(s.matches_outbound(&out));
        assert!(s.matches_inbound(&back));
        assert!(!s.matches_outbound(&tcp([192, 168, 11, 11], [192, 168, 12, 12], 40000, 81)));
        s.protocol = Some(IpProtocol::UDP);
        assert!(!s.matches_outbound(&out));
        assert_eq!(s.to_string(), "192.168.11.0/24 === 192.168.12.0/24[80] udp");
    }
}
