//! ISAKMP header, RFC 2408 §3.1.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                          Initiator                            !
//! !                            Cookie                             !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                          Responder                            !
//! !                            Cookie                             !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !  Next Payload ! MjVer ! MnVer ! Exchange Type !     Flags     !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                          Message ID                           !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !                            Length                             !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Flags (§3.1): E(ncryption) 0x01, C(ommit) 0x02, A(uthentication only)
//! 0x04; the other bits are ignored on receipt and kept as received, so
//! that the engine, not the codec, decides what to do with them.
//!
//! The cookies are the IKE SA's identity (the "SPIs" of RFC 2408 §2.5.3);
//! they travel as opaque 8-octet strings and are kept here as big-endian
//! `u64` so that a zero responder cookie (the first message) is just `0`.

use crate::error::Error;

/// Length of the ISAKMP header.
pub const HEADER_LEN: usize = 28;
/// MjVer 1, MnVer 0 (RFC 2408 §3.1, RFC 2409 §5).
pub const ISAKMP_VERSION: u8 = 0x10;
/// E: the payloads after the header are encrypted (RFC 2408 §3.1).
pub const FLAG_ENCRYPTION: u8 = 0x01;
/// C: key exchange synchronization (RFC 2408 §3.1, §4.8).
pub const FLAG_COMMIT: u8 = 0x02;
/// A: authenticated but not encrypted Informational exchange (§3.1).
pub const FLAG_AUTH_ONLY: u8 = 0x04;

/// Offsets of the header fields (the multi-octet ones: where they start).
mod field {
    pub const ICOOKIE: usize = 0;
    pub const RCOOKIE: usize = 8;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE_TYPE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: usize = 20;
    pub const LENGTH: usize = 24;
}

/// ISAKMP Exchange Type (RFC 2408 §3.1 and §4, RFC 2409 §5 and §9), an open
/// newtype: an unknown value is carried, not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExchangeType(pub u8);

impl ExchangeType {
    pub const NONE: Self = ExchangeType(0);
    pub const BASE: Self = ExchangeType(1);
    /// Main Mode in RFC 2409 terms.
    pub const IDENTITY_PROTECTION: Self = ExchangeType(2);
    pub const AUTHENTICATION_ONLY: Self = ExchangeType(3);
    pub const AGGRESSIVE: Self = ExchangeType(4);
    pub const INFORMATIONAL: Self = ExchangeType(5);
    /// Mode Config / XAUTH (draft-ietf-ipsec-isakmp-mode-cfg-05 §3.2).
    pub const TRANSACTION: Self = ExchangeType(6);
    /// RFC 2409 §5.5.
    pub const QUICK_MODE: Self = ExchangeType(32);
    /// RFC 2409 §5.6.
    pub const NEW_GROUP_MODE: Self = ExchangeType(33);

    /// The name strongSwan's logs use (`parsed ID_PROT request 0 [ ... ]`),
    /// or `EXCHANGE_TYPE_<n>`.
    pub fn name(self) -> String {
        match self {
            Self::BASE => "BASE".into(),
            Self::IDENTITY_PROTECTION => "ID_PROT".into(),
            Self::AUTHENTICATION_ONLY => "AUTH_ONLY".into(),
            Self::AGGRESSIVE => "AGGRESSIVE".into(),
            Self::INFORMATIONAL => "INFORMATIONAL_V1".into(),
            Self::TRANSACTION => "TRANSACTION".into(),
            Self::QUICK_MODE => "QUICK_MODE".into(),
            Self::NEW_GROUP_MODE => "NEW_GROUP_MODE".into(),
            ExchangeType(n) => format!("EXCHANGE_TYPE_{n}"),
        }
    }
}

impl core::fmt::Display for ExchangeType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.name())
    }
}

/// The ISAKMP header, field by field as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub icookie: u64,
    pub rcookie: u64,
    /// Type of the first payload.
    pub next_payload: u8,
    /// MjVer in the high nibble, MnVer in the low one.
    pub version: u8,
    pub exchange: ExchangeType,
    pub flags: u8,
    pub message_id: u32,
    /// Total length of the message, header included.
    pub length: u32,
}

impl Header {
    /// Parse and check a header at the start of `b` (a whole datagram, with
    /// any non-ESP marker already removed).
    ///
    /// - major version not 1: `Unsupported` (RFC 2408 §5.2: answer
    ///   INVALID-MAJOR-VERSION); the minor version is not checked, as RFC
    ///   2408 §5.2 leaves a newer minor version to the receiver;
    /// - `length` below 28: `Malformed`; above `b.len()`: `Truncated`.
    ///   Bytes of `b` after `length` are not part of the message.
    pub fn parse(b: &[u8]) -> Result<Header, Error> {
        // A fixed-size array: every index below is checked at compile time.
        let a: &[u8; HEADER_LEN] = b
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::Truncated {
                what: "ISAKMP header",
                need: HEADER_LEN,
                have: b.len(),
            })?;
        let be32 = |i: usize| u32::from_be_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
        let h = Header {
            icookie: u64::from(be32(field::ICOOKIE)) << 32 | u64::from(be32(field::ICOOKIE + 4)),
            rcookie: u64::from(be32(field::RCOOKIE)) << 32 | u64::from(be32(field::RCOOKIE + 4)),
            next_payload: a[field::NEXT_PAYLOAD],
            version: a[field::VERSION],
            exchange: ExchangeType(a[field::EXCHANGE_TYPE]),
            flags: a[field::FLAGS],
            message_id: be32(field::MESSAGE_ID),
            length: be32(field::LENGTH),
        };
        if h.major_version() != 1 {
            return Err(Error::Unsupported {
                what: "ISAKMP major version",
                value: u32::from(h.major_version()),
            });
        }
        let len = h.length as usize;
        if len < HEADER_LEN {
            return Err(Error::Malformed {
                what: "ISAKMP Length shorter than the header",
            });
        }
        Error::check_len("ISAKMP message (header Length)", len, b.len())?;
        Ok(h)
    }

    /// Append the 28 header octets, every field as it is (`length` is not
    /// recomputed; [`Message::build`](super::Message::build) fills it in).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.icookie.to_be_bytes());
        out.extend_from_slice(&self.rcookie.to_be_bytes());
        out.push(self.next_payload);
        out.push(self.version);
        out.push(self.exchange.0);
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }

    pub fn major_version(&self) -> u8 {
        self.version >> 4
    }

    pub fn minor_version(&self) -> u8 {
        self.version & 0x0f
    }

    /// Flag E: everything after the header is encrypted.
    pub fn encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTION != 0
    }

    pub fn commit(&self) -> bool {
        self.flags & FLAG_COMMIT != 0
    }

    pub fn auth_only(&self) -> bool {
        self.flags & FLAG_AUTH_ONLY != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            icookie: 0x0102_0304_0506_0708,
            rcookie: 0,
            next_payload: 1,
            version: ISAKMP_VERSION,
            exchange: ExchangeType::IDENTITY_PROTECTION,
            flags: 0,
            message_id: 0,
            length: 28,
        }
    }

    #[test]
    fn roundtrip_and_layout() {
        let h = sample();
        let mut b = Vec::new();
        h.write(&mut b);
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(&b[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[16..20], &[1, 0x10, 2, 0]);
        assert_eq!(&b[24..], &[0, 0, 0, 28]);
        assert_eq!(Header::parse(&b).unwrap(), h);
        // Bytes after Length are not the header's concern.
        b.extend_from_slice(&[0xff; 5]);
        assert_eq!(Header::parse(&b).unwrap(), h);
    }

    #[test]
    fn refuses_bad_headers() {
        let mut b = Vec::new();
        sample().write(&mut b);
        for n in 0..HEADER_LEN {
            assert!(matches!(Header::parse(&b[..n]), Err(Error::Truncated { .. })));
        }
        let mut v2 = b.clone();
        v2[17] = 0x20;
        assert!(matches!(Header::parse(&v2), Err(Error::Unsupported { value: 2, .. })));
        let mut minor = b.clone();
        minor[17] = 0x11;
        assert_eq!(Header::parse(&minor).unwrap().minor_version(), 1);
        let mut short = b.clone();
        short[27] = 27;
        assert!(matches!(Header::parse(&short), Err(Error::Malformed { .. })));
        let mut long = b.clone();
        long[27] = 29;
        assert!(matches!(Header::parse(&long), Err(Error::Truncated { .. })));
        let mut huge = b;
        huge[24] = 0xff;
        assert!(matches!(Header::parse(&huge), Err(Error::Truncated { .. })));
    }

    #[test]
    fn flags_and_names() {
        let mut h = sample();
        h.flags = FLAG_ENCRYPTION | FLAG_COMMIT | FLAG_AUTH_ONLY;
        assert!(h.encrypted() && h.commit() && h.auth_only());
        assert_eq!(ExchangeType::IDENTITY_PROTECTION.name(), "ID_PROT");
        assert_eq!(ExchangeType::AGGRESSIVE.name(), "AGGRESSIVE");
        assert_eq!(ExchangeType::INFORMATIONAL.name(), "INFORMATIONAL_V1");
        assert_eq!(ExchangeType::QUICK_MODE.name(), "QUICK_MODE");
        assert_eq!(ExchangeType(77).name(), "EXCHANGE_TYPE_77");
        assert_eq!(ExchangeType::QUICK_MODE.to_string(), "QUICK_MODE");
    }
}
