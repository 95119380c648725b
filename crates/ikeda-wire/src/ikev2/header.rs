//! IKE header, RFC 7296 §3.1.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Initiator's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IKE SA Responder's SPI                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Message ID                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Flags:  +-+-+-+-+-+-+-+-+
//!         |X|X|R|V|I|X|X|X|
//!         +-+-+-+-+-+-+-+-+
//! ```
//!
//! The view reads any version, so that a message with a higher major
//! version can still be answered with INVALID_MAJOR_VERSION (§2.5);
//! [`HeaderRepr::parse`] accepts major version 2 only.

use super::iana::{ExchangeType, PayloadType};
use crate::error::Error;
use core::fmt;

mod field {
    use core::ops::Range;
    pub const SPI_I: Range<usize> = 0..8;
    pub const SPI_R: Range<usize> = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE_TYPE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: Range<usize> = 20..24;
    pub const LENGTH: Range<usize> = 24..28;
}

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;
/// The IKE major version this module speaks (§3.1: "MUST set the major
/// version to 2").
pub const MAJOR_VERSION: u8 = 2;

/// The Flags octet. Only the I (Initiator), V (Version) and R (Response)
/// bits are defined; the others are sent as zero and ignored on receipt.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// R: this message is a response to a message with this Message ID.
    pub const RESPONSE: u8 = 0x20;
    /// V: the transmitter can speak a higher major version than 2.
    pub const VERSION: u8 = 0x10;
    /// I: set in messages sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    const DEFINED: u8 = Self::RESPONSE | Self::VERSION | Self::INITIATOR;

    pub fn new(initiator: bool, response: bool) -> Flags {
        let mut f = 0;
        if initiator {
            f |= Self::INITIATOR;
        }
        if response {
            f |= Self::RESPONSE;
        }
        Flags(f)
    }

    pub fn response(self) -> bool {
        self.0 & Self::RESPONSE != 0
    }
    pub fn version(self) -> bool {
        self.0 & Self::VERSION != 0
    }
    pub fn initiator(self) -> bool {
        self.0 & Self::INITIATOR != 0
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (bit, name) in [(Self::INITIATOR, "I"), (Self::VERSION, "V"), (Self::RESPONSE, "R")] {
            if self.0 & bit != 0 {
                write!(f, "{sep}{name}")?;
                sep = "|";
            }
        }
        if self.0 & !Self::DEFINED != 0 {
            write!(f, "{sep}{:#04x}", self.0 & !Self::DEFINED)?;
        } else if sep.is_empty() {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// A checked view of an IKE header: at least 28 bytes are present.
#[derive(Debug, Clone, Copy)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wrap a buffer (a whole message or just its header), checking that
    /// the 28 header bytes are there. Nothing else is checked.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        Error::check_len("IKE header", HEADER_LEN, buffer.as_ref().len())?;
        Ok(Header { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// IKE SA Initiator's SPI.
    pub fn initiator_spi(&self) -> u64 {
        let mut s = [0u8; 8];
        s.copy_from_slice(&self.b()[field::SPI_I]);
        u64::from_be_bytes(s)
    }

    /// IKE SA Responder's SPI (zero in the first IKE_SA_INIT request).
    pub fn responder_spi(&self) -> u64 {
        let mut s = [0u8; 8];
        s.copy_from_slice(&self.b()[field::SPI_R]);
        u64::from_be_bytes(s)
    }

    /// Type of the first payload after the header.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.b()[field::NEXT_PAYLOAD])
    }

    /// MjVer: the high four bits of the version octet.
    pub fn major_version(&self) -> u8 {
        self.b()[field::VERSION] >> 4
    }

    /// MnVer: the low four bits of the version octet.
    pub fn minor_version(&self) -> u8 {
        self.b()[field::VERSION] & 0x0f
    }

    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType(self.b()[field::EXCHANGE_TYPE])
    }

    pub fn flags(&self) -> Flags {
        Flags(self.b()[field::FLAGS])
    }

    pub fn message_id(&self) -> u32 {
        let b = &self.b()[field::MESSAGE_ID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Length of the total message (header + payloads) in octets.
    pub fn length(&self) -> u32 {
        let b = &self.b()[field::LENGTH];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    pub fn set_next_payload(&mut self, t: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = t.0;
    }

    pub fn set_length(&mut self, len: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }
}

/// The header fields a sender chooses. Next Payload and Length are computed
/// when a [`super::Message`] is emitted, so they are not part of the Repr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    pub initiator_spi: u64,
    pub responder_spi: u64,
    /// MnVer; 0 for RFC 7296 implementations.
    pub minor_version: u8,
    pub exchange_type: ExchangeType,
    /// I, V and R bits; undefined bits are cleared on parse (§3.1).
    pub flags: Flags,
    pub message_id: u32,
}

impl HeaderRepr {
    /// Parse the header fields. Refuses any major version but 2 with
    /// `Error::Unsupported` (the caller may answer INVALID_MAJOR_VERSION).
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> Result<HeaderRepr, Error> {
        if h.major_version() != MAJOR_VERSION {
            return Err(Error::Unsupported {
                what: "IKE header MjVer",
                value: h.major_version() as u32,
            });
        }
        Ok(HeaderRepr {
            initiator_spi: h.initiator_spi(),
            responder_spi: h.responder_spi(),
            minor_version: h.minor_version(),
            exchange_type: h.exchange_type(),
            flags: Flags(h.flags().0 & Flags::DEFINED),
            message_id: h.message_id(),
        })
    }

    /// Is this a request (R flag clear)?
    pub fn is_request(&self) -> bool {
        !self.flags.response()
    }

    /// Append the 28-octet header with the given Next Payload and Length.
    pub fn emit(&self, out: &mut Vec<u8>, next_payload: PayloadType, length: u32) {
        out.extend_from_slice(&self.initiator_spi.to_be_bytes());
        out.extend_from_slice(&self.responder_spi.to_be_bytes());
        out.push(next_payload.0);
        out.push((MAJOR_VERSION << 4) | (self.minor_version & 0x0f));
        out.push(self.exchange_type.0);
        out.push(self.flags.0);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&length.to_be_bytes());
    }
}

impl fmt::Display for HeaderRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} spi_i={:016x} spi_r={:016x} flags={:?}",
            self.exchange_type,
            if self.is_request() { "request" } else { "response" },
            self.message_id,
            self.initiator_spi,
            self.responder_spi,
            self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HeaderRepr {
        HeaderRepr {
            initiator_spi: 0x0102_0304_0506_0708,
            responder_spi: 0,
            minor_version: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags::new(true, false),
            message_id: 0,
        }
    }

    #[test]
    fn roundtrip_and_fields() {
        let mut b = Vec::new();
        sample().emit(&mut b, PayloadType::SA, 300);
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(&b[16..20], &[33, 0x20, 34, 0x08]);
        let h = Header::new_checked(&b[..]).unwrap();
        assert_eq!(h.next_payload(), PayloadType::SA);
        assert_eq!(h.major_version(), 2);
        assert_eq!(h.length(), 300);
        assert_eq!(HeaderRepr::parse(&h).unwrap(), sample());
        assert_eq!(format!("{:?}", h.flags()), "I");
        assert_eq!(
            sample().to_string(),
            "IKE_SA_INIT request 0 spi_i=0102030405060708 spi_r=0000000000000000 flags=I"
        );
    }

    #[test]
    fn truncated_and_wrong_version() {
        for n in 0..HEADER_LEN {
            assert!(matches!(
                Header::new_checked(&[0u8; HEADER_LEN][..n]),
                Err(Error::Truncated { need: 28, .. })
            ));
        }
        let mut b = Vec::new();
        sample().emit(&mut b, PayloadType::NONE, 28);
        b[17] = 0x10; // IKEv1
        let h = Header::new_checked(&b[..]).unwrap();
        assert_eq!(
            HeaderRepr::parse(&h),
            Err(Error::Unsupported {
                what: "IKE header MjVer",
                value: 1
            })
        );
    }

    #[test]
    fn undefined_flag_bits_are_cleared() {
        let mut b = Vec::new();
        sample().emit(&mut b, PayloadType::NONE, 28);
        b[19] = 0xff;
        let mut h = Header::new_checked(&mut b[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&h).unwrap().flags, Flags(0x38));
        assert_eq!(format!("{:?}", h.flags()), "I|V|R|0xc7");
        h.set_length(99);
        h.set_next_payload(PayloadType::SK);
        assert_eq!(h.length(), 99);
        assert_eq!(h.next_payload(), PayloadType::SK);
    }
}
