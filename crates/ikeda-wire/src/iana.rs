//! IANA registries as open newtypes: any value is representable, known
//! values have names, unknown ones print in hex (so a log never hides what
//! the peer sent).

use core::fmt;

/// "Assigned Internet Protocol Numbers": IPv4 Protocol / IPv6 Next Header,
/// and the ESP trailer's Next Header (RFC 4303 §2.6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const HOPOPT: IpProtocol = IpProtocol(0);
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// IP-in-IP: the Next Header of an IPv4 packet carried in tunnel mode.
    pub const IPV4: IpProtocol = IpProtocol(4);
    pub const TCP: IpProtocol = IpProtocol(6);
    pub const UDP: IpProtocol = IpProtocol(17);
    /// The Next Header of an IPv6 packet carried in tunnel mode.
    pub const IPV6: IpProtocol = IpProtocol(41);
    pub const IPV6_ROUTE: IpProtocol = IpProtocol(43);
    pub const IPV6_FRAG: IpProtocol = IpProtocol(44);
    pub const ESP: IpProtocol = IpProtocol(50);
    pub const AH: IpProtocol = IpProtocol(51);
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    /// "No Next Header": an ESP dummy packet (RFC 4303 §2.6) to be discarded.
    pub const NO_NEXT_HEADER: IpProtocol = IpProtocol(59);
    pub const IPV6_OPTS: IpProtocol = IpProtocol(60);
    /// IP Payload Compression (RFC 3173): an IPComp header follows.
    pub const IPCOMP: IpProtocol = IpProtocol(108);
    pub const SCTP: IpProtocol = IpProtocol(132);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::HOPOPT => "hopopt",
            Self::ICMP => "icmp",
            Self::IPV4 => "ipv4",
            Self::TCP => "tcp",
            Self::UDP => "udp",
            Self::IPV6 => "ipv6",
            Self::IPV6_ROUTE => "ipv6-route",
            Self::IPV6_FRAG => "ipv6-frag",
            Self::ESP => "esp",
            Self::AH => "ah",
            Self::ICMPV6 => "ipv6-icmp",
            Self::NO_NEXT_HEADER => "ipv6-nonxt",
            Self::IPV6_OPTS => "ipv6-opts",
            Self::IPCOMP => "ipcomp",
            Self::SCTP => "sctp",
            _ => return None,
        })
    }

    /// Parse a protocol by name (as `/etc/protocols` spells it) or number.
    pub fn from_name(s: &str) -> Option<IpProtocol> {
        let s = s.trim().to_ascii_lowercase();
        if let Ok(n) = s.parse::<u8>() {
            return Some(IpProtocol(n));
        }
        let alias = match s.as_str() {
            "icmpv6" | "icmp6" => "ipv6-icmp",
            other => other,
        };
        (0..=255u8).map(IpProtocol).find(|p| p.name() == Some(alias))
    }

    /// Protocols whose first four bytes are source and destination ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Self::TCP | Self::UDP | Self::SCTP) || self.0 == 136 /* UDP-Lite */
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "proto({:#04x})", self.0),
        }
    }
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// IKEv2 Transform Type 1, Encryption Algorithm Transform IDs (RFC 7296
/// §3.3.2 and the IANA "IKEv2 Parameters" registry). The same numbers name
/// ESP ciphers negotiated by IKEv2.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EncrTransformId(pub u16);

impl EncrTransformId {
    pub const ENCR_3DES: Self = Self(3);
    pub const ENCR_NULL: Self = Self(11);
    pub const ENCR_AES_CBC: Self = Self(12);
    pub const ENCR_AES_CTR: Self = Self(13);
    pub const ENCR_AES_GCM_8: Self = Self(18);
    pub const ENCR_AES_GCM_12: Self = Self(19);
    pub const ENCR_AES_GCM_16: Self = Self(20);
    pub const ENCR_CHACHA20_POLY1305: Self = Self(28);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::ENCR_3DES => "ENCR_3DES",
            Self::ENCR_NULL => "ENCR_NULL",
            Self::ENCR_AES_CBC => "ENCR_AES_CBC",
            Self::ENCR_AES_CTR => "ENCR_AES_CTR",
            Self::ENCR_AES_GCM_8 => "ENCR_AES_GCM_8",
            Self::ENCR_AES_GCM_12 => "ENCR_AES_GCM_12",
            Self::ENCR_AES_GCM_16 => "ENCR_AES_GCM_16",
            Self::ENCR_CHACHA20_POLY1305 => "ENCR_CHACHA20_POLY1305",
            _ => return None,
        })
    }
}

/// IKEv2 Transform Type 3, Integrity Algorithm Transform IDs (RFC 7296
/// §3.3.2, RFC 4868).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IntegTransformId(pub u16);

impl IntegTransformId {
    pub const NONE: Self = Self(0);
    pub const AUTH_HMAC_MD5_96: Self = Self(1);
    pub const AUTH_HMAC_SHA1_96: Self = Self(2);
    pub const AUTH_HMAC_SHA2_256_128: Self = Self(12);
    pub const AUTH_HMAC_SHA2_384_192: Self = Self(13);
    pub const AUTH_HMAC_SHA2_512_256: Self = Self(14);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NONE => "NONE",
            Self::AUTH_HMAC_MD5_96 => "AUTH_HMAC_MD5_96",
            Self::AUTH_HMAC_SHA1_96 => "AUTH_HMAC_SHA1_96",
            Self::AUTH_HMAC_SHA2_256_128 => "AUTH_HMAC_SHA2_256_128",
            Self::AUTH_HMAC_SHA2_384_192 => "AUTH_HMAC_SHA2_384_192",
            Self::AUTH_HMAC_SHA2_512_256 => "AUTH_HMAC_SHA2_512_256",
            _ => return None,
        })
    }
}

macro_rules! hex_display {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({:#06x})", stringify!($t), self.0),
                }
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    )*};
}
hex_display!(EncrTransformId, IntegTransformId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_unknowns() {
        assert_eq!(IpProtocol::TCP.to_string(), "tcp");
        assert_eq!(IpProtocol(253).to_string(), "proto(0xfd)");
        assert_eq!(IpProtocol::from_name("ICMP"), Some(IpProtocol::ICMP));
        assert_eq!(IpProtocol::from_name("icmpv6"), Some(IpProtocol::ICMPV6));
        assert_eq!(IpProtocol::from_name("47"), Some(IpProtocol(47)));
        assert_eq!(IpProtocol::from_name("bogus"), None);
        assert_eq!(EncrTransformId(20).to_string(), "ENCR_AES_GCM_16");
        assert_eq!(EncrTransformId(999).to_string(), "EncrTransformId(0x03e7)");
    }
}
