//! What every firewall parser of `ikeda audit` answers about: one IPsec
//! flow between us and the peer, and the verdict for it.
//!
//! A file of its own (re-exported by `audit/mod.rs`) so that the fuzz
//! targets can compile each parser with just this beside it.

use std::net::IpAddr;

/// IP protocol numbers (IANA): UDP for IKE and NAT-T, ESP (RFC 4303).
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ESP: u8 = 50;

/// Input larger than this is refused by every parser (a gateway's rule set
/// is a few KiB; this keeps memory bounded on hostile files).
pub const MAX_BYTES: usize = 1 << 20;
/// Rules (or chains, groups, entries) beyond this are refused.
pub const MAX_RULES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the peer to us (INPUT, ingress).
    In,
    /// From us to the peer (OUTPUT, egress).
    Out,
}

/// One flow between us and the peer: UDP to/from `port` on both ends
/// (IKE 500->500, NAT-T 4500->4500, RFC 7296 §2.23), or ESP (`port`
/// ignored). `peer` is the peer's address as this firewall sees it,
/// `local` the gateway's own (for rules that name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub dir: Dir,
    pub proto: u8,
    pub port: u16,
    pub peer: IpAddr,
    pub local: IpAddr,
}

impl Flow {
    /// A flow between example addresses (RFC 5737): the peer 198.51.100.2,
    /// the gateway 192.0.2.1. For the parsers' unit tests.
    #[cfg(test)]
    pub fn example(dir: Dir, proto: u8, port: u16) -> Flow {
        Flow {
            dir,
            proto,
            port,
            peer: "198.51.100.2".parse().unwrap(),
            local: "192.0.2.1".parse().unwrap(),
        }
    }

    /// Every IPsec flow (IKE 500, NAT-T 4500, ESP; in and out) for an IPv4
    /// and an IPv6 pair of example addresses: what the fuzz targets
    /// evaluate every parsed rule set on (the binary itself has no use).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn every_ipsec() -> impl Iterator<Item = Flow> {
        let pairs: [(IpAddr, IpAddr); 2] = [
            (IpAddr::from([198, 51, 100, 2]), IpAddr::from([192, 0, 2, 1])),
            (
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]),
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
            ),
        ];
        pairs.into_iter().flat_map(|(peer, local)| {
            [Dir::In, Dir::Out].into_iter().flat_map(move |dir| {
                [(PROTO_UDP, 500), (PROTO_UDP, 4500), (PROTO_ESP, 0)]
                    .into_iter()
                    .map(move |(proto, port)| Flow { dir, proto, port, peer, local })
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A rule admits the flow's first packet.
    Explicit,
    /// Only admitted as part of a connection the other way: a reply to a
    /// flow the other end of this firewall sent first (conntrack, or an AWS
    /// security group's automatic admission of replies).
    ReplyOnly,
    /// Dropped or rejected either way.
    Denied,
    /// Could not be decided; says which rule and why.
    Unknown(String),
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Explicit => "admitted",
            Verdict::ReplyOnly => "reply-only",
            Verdict::Denied => "not admitted",
            Verdict::Unknown(_) => "unknown",
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Verdict::Explicit => 0,
            Verdict::ReplyOnly => 1,
            Verdict::Unknown(_) => 2,
            Verdict::Denied => 3,
        }
    }

    /// Two filters one after the other (a network ACL and a security group,
    /// two files for one gateway): the packet needs both, so the worse
    /// verdict holds; a drop anywhere decides even when another is unknown.
    pub fn and(self, o: Verdict) -> Verdict {
        if o.rank() > self.rank() {
            o
        } else {
            self
        }
    }
}

/// An address prefix, v4 or v6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    /// `a.b.c.d`, `a.b.c.d/n`, and the v6 forms.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = l.unwrap_or(max);
        (len <= max).then_some(Cidr { addr, len })
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.len))
                };
                (u32::from(n) & m) == (u32::from(a) & m)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.len))
                };
                (u128::from(n) & m) == (u128::from(a) & m)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ipsec_flow_once_per_family() {
        let all: Vec<Flow> = Flow::every_ipsec().collect();
        assert_eq!(all.len(), 12);
        for (i, f) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(f), "{f:?} twice");
        }
        assert_eq!(all.iter().filter(|f| f.peer.is_ipv6() && f.local.is_ipv6()).count(), 6);
    }

    #[test]
    fn cidr_and_combination() {
        let c = Cidr::parse("198.51.100.0/24").unwrap();
        assert!(c.contains("198.51.100.2".parse().unwrap()));
        assert!(!c.contains("198.51.101.2".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("203.0.113.1".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8::5".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4/33").is_none());
        assert!(Cidr::parse("x/3").is_none());
        use Verdict::*;
        assert_eq!(Explicit.and(ReplyOnly), ReplyOnly);
        assert_eq!(Unknown("x".into()).and(Denied), Denied);
        assert_eq!(ReplyOnly.and(Unknown("x".into())), Unknown("x".into()));
        assert_eq!(Explicit.and(Explicit), Explicit);
    }
}
