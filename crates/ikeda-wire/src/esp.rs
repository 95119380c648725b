//! ESP packet format, RFC 4303 §2.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ----
//! |               Security Parameters Index (SPI)                 | ^Int.
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |Cov-
//! |                      Sequence Number                          | |ered
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ | ----
//! |                    Payload Data* (variable)                   | |   ^
//! ~                                                               ~ |   |
//! |                                                               | |Conf.
//! +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |Cov-
//! |               |     Padding (0-255 bytes)                     | |ered*
//! +-+-+-+-+-+-+-+-+               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |   |
//! |                               |  Pad Length   | Next Header   | v   v
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ ------
//! |         Integrity Check Value-ICV   (variable)                |
//! ~                                                               ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The view only knows the clear header (SPI, sequence number). Where the
//! payload ends and the ICV begins depends on the SA's algorithms, so that
//! split is the ESP core's business; the trailer (pad length, next header)
//! is parsed here once the payload has been decrypted.

use crate::error::Error;
use crate::iana::IpProtocol;
use core::fmt;

mod field {
    use core::ops::Range;
    pub const SPI: Range<usize> = 0..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const PAYLOAD: usize = 8;
}

/// Length of the clear ESP header (SPI + sequence number).
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of the ESP trailer's fixed part (Pad Length + Next Header).
pub const TRAILER_LEN: usize = 2;

/// SPI values 1-255 are reserved by IANA and 0 is for local use only
/// (RFC 4303 §2.1); none of them may appear on the wire.
pub const fn spi_is_valid(spi: u32) -> bool {
    spi > 255
}

/// A checked view of an ESP packet: at least the 8-byte header is present.
#[derive(Debug, Clone, Copy)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Wrap a buffer, checking that the clear header is there.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        Error::check_len("ESP header", HEADER_LEN, buffer.as_ref().len())?;
        Ok(EspPacket { buffer })
    }

    /// Security Parameters Index (RFC 4303 §2.1).
    pub fn spi(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The low-order 32 bits of the sequence number (RFC 4303 §2.2).
    pub fn sequence_number(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::SEQ];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Everything after the clear header: IV, ciphertext, trailer, ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    pub fn len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// Write the clear ESP header into the first 8 bytes of `buf`.
pub fn emit_header(buf: &mut [u8], spi: u32, seq_lo: u32) -> Result<(), Error> {
    if buf.len() < HEADER_LEN {
        return Err(Error::BufferTooSmall {
            what: "ESP header",
            need: HEADER_LEN,
            have: buf.len(),
        });
    }
    buf[field::SPI].copy_from_slice(&spi.to_be_bytes());
    buf[field::SEQ].copy_from_slice(&seq_lo.to_be_bytes());
    Ok(())
}

/// The decrypted ESP trailer: `Padding | Pad Length | Next Header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub pad_length: u8,
    pub next_header: IpProtocol,
}

/// Why a decrypted trailer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailerError {
    /// Fewer than two bytes, or Pad Length runs past the start of the data.
    Truncated,
    /// The padding bytes are not 1, 2, 3, ... as RFC 4303 §2.4 requires
    /// for the default (monotonic) padding scheme.
    BadPadding,
}

impl Trailer {
    /// Parse the trailer at the end of the decrypted payload `plain`
    /// (inner packet, padding, pad length, next header; no ICV) and check
    /// the padding contents. Returns the trailer and the inner length.
    pub fn parse_and_check(plain: &[u8]) -> Result<(Trailer, usize), TrailerError> {
        let n = plain.len();
        if n < TRAILER_LEN {
            return Err(TrailerError::Truncated);
        }
        let pad_length = plain[n - 2];
        let next_header = IpProtocol(plain[n - 1]);
        let inner_len = n
            .checked_sub(TRAILER_LEN + pad_length as usize)
            .ok_or(TrailerError::Truncated)?;
        // RFC 4303 §2.4: "the Padding bytes are initialized with a series of
        // (unsigned, 1-byte) integer values ... 1, 2, 3, ...". The receiver
        // SHOULD check them; a mismatch means a bug or tampering.
        let pad = &plain[inner_len..n - TRAILER_LEN];
        if pad.iter().enumerate().any(|(i, &b)| b as usize != i + 1) {
            return Err(TrailerError::BadPadding);
        }
        Ok((
            Trailer {
                pad_length,
                next_header,
            },
            inner_len,
        ))
    }

    /// Number of padding bytes so that `inner_len + pad + 2` is a multiple
    /// of `align` (the cipher's block size, at least 4: RFC 4303 §2.4).
    pub fn pad_for(inner_len: usize, align: usize) -> usize {
        let align = align.max(4);
        if align.is_power_of_two() {
            // Every block size in use (4, 8, 16): a mask rather than two
            // integer divisions per packet.
            inner_len.wrapping_add(TRAILER_LEN).wrapping_neg() & (align - 1)
        } else {
            (align - (inner_len + TRAILER_LEN) % align) % align
        }
    }

    /// Write padding 1,2,3,..., Pad Length and Next Header into `out`,
    /// which must be exactly `pad_len + 2` bytes long.
    pub fn emit(out: &mut [u8], next_header: IpProtocol) {
        let pad_len = out.len() - TRAILER_LEN;
        for (i, b) in out[..pad_len].iter_mut().enumerate() {
            *b = (i + 1) as u8;
        }
        out[pad_len] = pad_len as u8;
        out[pad_len + 1] = next_header.0;
    }
}

impl<T: AsRef<[u8]>> fmt::Display for EspPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ESP spi={:#010x} seq={} len={}",
            self.spi(),
            self.sequence_number(),
            self.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_for_aligns_payload_and_trailer_to_the_block_with_the_least_padding() {
        for align in 0..=33 {
            for len in 0..200 {
                let a = align.max(4);
                let pad = Trailer::pad_for(len, align);
                assert_eq!((len + pad + TRAILER_LEN) % a, 0, "len {len} align {align}");
                assert!(pad < a, "len {len} align {align}: pad {pad}");
            }
        }
        assert_eq!(Trailer::pad_for(1400, 4), 2);
        assert_eq!(Trailer::pad_for(1400, 16), 6);
        assert_eq!(Trailer::pad_for(14, 16), 0);
    }

    #[test]
    fn header_roundtrip() {
        let mut b = [0u8; 12];
        emit_header(&mut b, 0x1234_5678, 42).unwrap();
        let p = EspPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.spi(), 0x1234_5678);
        assert_eq!(p.sequence_number(), 42);
        assert_eq!(p.payload().len(), 4);
        assert_eq!(p.to_string(), "ESP spi=0x12345678 seq=42 len=12");
    }

    #[test]
    fn short_header_is_truncated() {
        for n in 0..HEADER_LEN {
            let e = EspPacket::new_checked(&[0u8; 8][..n]).unwrap_err();
            assert!(matches!(e, Error::Truncated { need: 8, .. }));
        }
    }

    #[test]
    fn trailer_roundtrip_every_alignment() {
        for align in [4usize, 16] {
            for inner in 0..70usize {
                let pad = Trailer::pad_for(inner, align);
                assert_eq!((inner + pad + 2) % align, 0);
                let mut buf = vec![0xAA; inner + pad + 2];
                Trailer::emit(&mut buf[inner..], IpProtocol::IPV4);
                let (t, n) = Trailer::parse_and_check(&buf).unwrap();
                assert_eq!(n, inner);
                assert_eq!(t.pad_length as usize, pad);
                assert_eq!(t.next_header, IpProtocol::IPV4);
            }
        }
    }

    #[test]
    fn trailer_rejects_bad_padding_and_overlong_pad_length() {
        // padding 1,2,4 instead of 1,2,3
        assert_eq!(
            Trailer::parse_and_check(&[9, 1, 2, 4, 3, 4]),
            Err(TrailerError::BadPadding)
        );
        assert_eq!(Trailer::parse_and_check(&[1, 2, 200, 4]), Err(TrailerError::Truncated));
        assert_eq!(Trailer::parse_and_check(&[4]), Err(TrailerError::Truncated));
    }
}
