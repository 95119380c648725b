//! The IPComp header, RFC 3173 §2.2.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |     Flags     | Compression Parameter Index   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                  Compressed Payload (variable)                ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! With ESP in tunnel mode (as Linux, racoon and strongSwan put it on the
//! wire) the header sits right after the ESP header: ESP's Next Header is
//! 108 (IPComp), the IPComp header's Next Header is 4 (IPv4) or 41 (IPv6),
//! and the compressed payload is the whole inner IP packet: compression
//! comes before encryption (RFC 3173 §1, §2.2). A packet that was not worth
//! compressing travels without an IPComp header (RFC 3173 §2.2).
//!
//! Once [`IpcompPacket::new_checked`] has seen the 4 bytes, no accessor
//! panics.

use crate::error::Error;
use crate::iana::IpProtocol;
use core::fmt;

mod field {
    pub const NEXT_HEADER: usize = 0;
    pub const FLAGS: usize = 1;
    pub const CPI: core::ops::Range<usize> = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// Length of the IPComp header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// IPComp transform IDs (RFC 2407 §4.4.5, IKEv2's "IPCOMP Transform IDs"
/// in RFC 7296 §3.10.1); also the well-known CPIs 1-63 (RFC 3173 §3.3).
pub mod transform {
    pub const OUI: u8 = 1;
    /// DEFLATE, RFC 2394: the one ikeda implements.
    pub const DEFLATE: u8 = 2;
    pub const LZS: u8 = 3;
    pub const LZJH: u8 = 4;
}

/// CPIs an IKE negotiation (or a manual configuration standing in for
/// one) may use: 256-61439. 0-63 are the well-known transform numbers,
/// 64-255 are reserved, 61440-65535 are for private use (RFC 3173 §3.3).
pub const fn cpi_is_negotiable(cpi: u16) -> bool {
    cpi >= 256 && cpi <= 61439
}

/// A checked view of an IPComp header and what follows it.
#[derive(Debug, Clone, Copy)]
pub struct IpcompPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IpcompPacket<T> {
    /// Wrap a buffer, checking that the 4-byte header is there.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        Error::check_len("IPComp header", HEADER_LEN, buffer.as_ref().len())?;
        Ok(IpcompPacket { buffer })
    }

    /// The protocol of the (decompressed) payload.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    /// Reserved: sent as zero, ignored on receipt (RFC 3173 §2.2).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Compression Parameter Index (RFC 3173 §2.2, §3.3).
    pub fn cpi(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CPI];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The compressed payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// The header's meaning, parsed; `flags` is not kept (always sent as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcompRepr {
    pub next_header: IpProtocol,
    pub cpi: u16,
}

impl IpcompRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &IpcompPacket<T>) -> IpcompRepr {
        IpcompRepr {
            next_header: p.next_header(),
            cpi: p.cpi(),
        }
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header into the first 4 bytes of `buf`, flags zero.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), Error> {
        if buf.len() < HEADER_LEN {
            return Err(Error::BufferTooSmall {
                what: "IPComp header",
                need: HEADER_LEN,
                have: buf.len(),
            });
        }
        buf[field::NEXT_HEADER] = self.next_header.0;
        buf[field::FLAGS] = 0;
        buf[field::CPI].copy_from_slice(&self.cpi.to_be_bytes());
        Ok(())
    }
}

impl<T: AsRef<[u8]>> fmt::Display for IpcompPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPComp cpi={:#06x} next={} len={}",
            self.cpi(),
            self.next_header(),
            self.payload().len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let mut b = [0xffu8; 10];
        let r = IpcompRepr {
            next_header: IpProtocol::IPV6,
            cpi: 0x1234,
        };
        r.emit(&mut b).unwrap();
        assert_eq!(&b[..4], &[41, 0, 0x12, 0x34]);
        let p = IpcompPacket::new_checked(&b[..]).unwrap();
        assert_eq!(IpcompRepr::parse(&p), r);
        assert_eq!((p.flags(), p.payload().len()), (0, 6));
        assert_eq!(p.to_string(), "IPComp cpi=0x1234 next=ipv6 len=6");
    }

    #[test]
    fn flags_are_ignored_on_receipt() {
        let p = IpcompPacket::new_checked(&[4u8, 0x80, 0x01, 0x00][..]).unwrap();
        assert_eq!(p.flags(), 0x80);
        assert_eq!(
            IpcompRepr::parse(&p),
            IpcompRepr {
                next_header: IpProtocol::IPV4,
                cpi: 0x100
            }
        );
    }

    #[test]
    fn short_header_is_truncated_and_short_buffer_refused() {
        for n in 0..HEADER_LEN {
            let e = IpcompPacket::new_checked(&[4u8, 0, 1, 0][..n]).unwrap_err();
            assert!(matches!(e, Error::Truncated { need: 4, .. }), "{e}");
            let r = IpcompRepr {
                next_header: IpProtocol::IPV4,
                cpi: 256,
            };
            assert!(matches!(
                r.emit(&mut [0u8; 4][..n]),
                Err(Error::BufferTooSmall { need: 4, .. })
            ));
        }
    }

    #[test]
    fn negotiable_cpis() {
        assert!(!cpi_is_negotiable(transform::DEFLATE as u16));
        assert!(!cpi_is_negotiable(255));
        assert!(cpi_is_negotiable(256));
        assert!(cpi_is_negotiable(61439));
        assert!(!cpi_is_negotiable(61440));
    }
}
