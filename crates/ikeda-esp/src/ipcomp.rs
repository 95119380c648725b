//! IP payload compression with DEFLATE (RFC 3173, RFC 2394), inside ESP in
//! tunnel mode, as Linux, racoon (`compression_algorithm deflate`) and
//! strongSwan (`ipcomp = yes`) do it:
//!
//! ```text
//! compressed:    outer IP | ESP (Next Header 108) | IPComp (Next Header 4/41, CPI) | deflate(inner IP packet) | ESP trailer
//! not worth it:  outer IP | ESP (Next Header 4/41) | inner IP packet | ESP trailer
//! ```
//!
//! Each packet is compressed on its own, as a raw DEFLATE stream (no zlib
//! header or checksum; RFC 2394 §2): the compressor state is reset before
//! every packet (RFC 3173 §2.1, "stateless"). A packet is sent without an
//! IPComp header when it is shorter than [`COMPRESS_THRESHOLD`] (RFC 2394
//! §2 suggests 90 bytes, the threshold Linux uses for deflate) or when
//! compressing would not make it smaller (RFC 3173 §2.2); both are counted.
//! The receiver accepts either on an SA with IPComp.
//!
//! Decompression is bounded: the output may not exceed
//! [`MAX_DECOMPRESSED`] bytes (an IP packet's largest size), so garbage or
//! a decompression bomb costs at most that much work and no allocation; it
//! is a drop with its own reason (`ipcomp_decompress`), never a panic.
//!
//! The (de)compressor state and the output buffer live in an
//! [`IpcompScratch`] that one thread uses at a time (in the [`Outbound`]
//! the TX threads take turns with, in an RX thread's [`Inbound`]); they
//! are allocated on the first compressed packet and reused after that, so
//! the hot path allocates nothing per packet.
//!
//! Interoperability note: Linux inflates with a 2 KiB window (zlib
//! windowBits 11); our matches never reach further back than the packet is
//! long, so packets up to 2048 bytes (any common MTU) decompress there.
//!
//! [`Outbound`]: crate::Outbound
//! [`Inbound`]: crate::Inbound

use core::fmt;
use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;
use std::sync::atomic::{AtomicU64, Ordering};

pub use ikeda_wire::ipcomp::HEADER_LEN;

/// Packets shorter than this are sent uncompressed (RFC 2394 §2: "a
/// threshold of 90 bytes"; Linux's deflate threshold too).
pub const COMPRESS_THRESHOLD: usize = 90;

/// The most a packet may decompress to: the largest IP packet.
pub const MAX_DECOMPRESSED: usize = 65535;

/// DEFLATE level: 1 (fast, greedy matching). Per-packet streams of an MTU
/// or less gain little from deeper searches.
const LEVEL: i32 = 1;

/// The IPComp half of an SA pair, as IKE negotiates it (IKEv2
/// IPCOMP_SUPPORTED notifies, RFC 7296 §3.10.1; IKEv1 Quick Mode IPCOMP
/// proposals, RFC 2409 §5.5 / RFC 3173 §4) or a manual configuration sets
/// it. The transform is DEFLATE (transform ID 2), the only one supported.
///
/// Both SA directions are given the same pair; the outbound SA writes
/// `cpi_out` into its IPComp headers, the inbound SA accepts only
/// `cpi_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpcompParams {
    /// The CPI the peer chose (the one it wants to receive): written into
    /// every IPComp header we send.
    pub cpi_out: u16,
    /// The CPI we chose: the one compressed packets to us must carry.
    pub cpi_in: u16,
}

/// IPComp counters of one SA, read by `show` while traffic flows.
#[derive(Debug, Default)]
pub struct IpcompStats {
    /// Outbound: packets sent compressed. Inbound: packets decompressed
    /// (counted once the packet passed every check).
    pub compressed: AtomicU64,
    /// Outbound: sent without IPComp header, shorter than [`COMPRESS_THRESHOLD`].
    pub too_small: AtomicU64,
    /// Outbound: sent without IPComp header, DEFLATE did not make them smaller.
    pub not_smaller: AtomicU64,
    /// Inbound: accepted without IPComp header (the peer did not compress them).
    pub uncompressed: AtomicU64,
    /// The (de)compressed packets' sizes as IP packets...
    pub bytes_uncompressed: AtomicU64,
    /// ... and as IPComp payloads inside ESP (IPComp header included).
    pub bytes_compressed: AtomicU64,
}

impl IpcompStats {
    fn count_compressed(&self, plain: usize, compressed: usize) {
        self.compressed.fetch_add(1, Ordering::Relaxed);
        self.bytes_uncompressed.fetch_add(plain as u64, Ordering::Relaxed);
        self.bytes_compressed.fetch_add(compressed as u64, Ordering::Relaxed);
    }

    pub(crate) fn count(&self, outcome: Compressed, plain: usize) {
        match outcome {
            Compressed::Yes(n) => self.count_compressed(plain, n),
            Compressed::TooSmall => {
                self.too_small.fetch_add(1, Ordering::Relaxed);
            }
            Compressed::NotSmaller => {
                self.not_smaller.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn count_decompressed(&self, compressed: usize, plain: usize) {
        self.count_compressed(plain, compressed)
    }

    pub(crate) fn count_uncompressed(&self) {
        self.uncompressed.fetch_add(1, Ordering::Relaxed);
    }
}

/// What became of a packet on an SA with IPComp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compressed {
    /// Compressed: the IPComp payload's length, header included.
    Yes(usize),
    TooSmall,
    NotSmaller,
}

/// Why an IPComp payload did not decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// Not a complete, valid raw DEFLATE stream.
    Malformed,
    /// It would decompress to more than the limit.
    TooLong,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InflateError::Malformed => "not a valid DEFLATE stream",
            InflateError::TooLong => "decompresses to more than 65535 bytes",
        })
    }
}

/// One thread's DEFLATE state and output buffer, allocated on first use.
#[derive(Default)]
pub struct IpcompScratch {
    deflate: Option<Box<CompressorOxide>>,
    inflate: Option<Box<DecompressorOxide>>,
    out: Vec<u8>,
}

impl fmt::Debug for IpcompScratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpcompScratch")
            .field("deflate", &self.deflate.is_some())
            .field("inflate", &self.inflate.is_some())
            .finish()
    }
}

impl IpcompScratch {
    /// Compress `data` as one raw DEFLATE stream. Returns the compressed
    /// bytes only if they, with an IPComp header in front, are shorter
    /// than `data` (RFC 3173 §2.2); `None` otherwise.
    pub fn deflate(&mut self, data: &[u8]) -> Option<&[u8]> {
        // Strictly smaller with the header: at most len - HEADER_LEN - 1.
        let limit = data.len().checked_sub(HEADER_LEN + 1)?.min(MAX_DECOMPRESSED);
        let IpcompScratch { deflate, out, .. } = self;
        let d = deflate.get_or_insert_with(|| {
            // Negative window bits: raw DEFLATE, no zlib wrapper.
            Box::new(CompressorOxide::new(create_comp_flags_from_zip_params(LEVEL, -15, 0)))
        });
        d.reset();
        if out.len() < MAX_DECOMPRESSED {
            *out = vec![0; MAX_DECOMPRESSED];
        }
        // The output buffer ends at the limit: a stream that does not fit
        // is not Done, and not worth sending.
        let (status, _, n) = compress(d, data, &mut out[..limit], TDEFLFlush::Finish);
        (status == TDEFLStatus::Done).then(|| &out[..n])
    }

    /// Decompress one raw DEFLATE stream into the scratch buffer, at most
    /// [`MAX_DECOMPRESSED`] bytes. Bytes after the end of the stream are
    /// ignored.
    pub fn inflate(&mut self, data: &[u8]) -> Result<&[u8], InflateError> {
        let IpcompScratch { inflate, out, .. } = self;
        let d = inflate.get_or_insert_with(Box::default);
        d.init();
        if out.len() < MAX_DECOMPRESSED {
            *out = vec![0; MAX_DECOMPRESSED];
        }
        // A non-wrapping output buffer must hold the whole output: more is
        // HasMoreOutput, which is where a decompression bomb stops.
        let (status, _, n) = decompress(
            d,
            data,
            &mut out[..MAX_DECOMPRESSED],
            0,
            inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
        );
        match status {
            TINFLStatus::Done => Ok(&out[..n]),
            TINFLStatus::HasMoreOutput => Err(InflateError::TooLong),
            _ => Err(InflateError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, mut x: u32) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    }

    #[test]
    fn deflate_inflate_roundtrip_and_state_is_reset_between_packets() {
        let mut s = IpcompScratch::default();
        let a: Vec<u8> = b"the quick brown fox ".iter().cycle().take(1400).copied().collect();
        let b = vec![0u8; 1000];
        for p in [&a, &b, &a] {
            let c = s.deflate(p).expect("compressible").to_vec();
            assert!(c.len() + HEADER_LEN < p.len());
            // Stateless: another scratch (a receiver that saw nothing
            // before) decompresses each packet alone.
            let mut r = IpcompScratch::default();
            assert_eq!(r.inflate(&c).unwrap(), &p[..]);
        }
    }

    #[test]
    fn raw_deflate_without_zlib_header() {
        let mut s = IpcompScratch::default();
        let c = s.deflate(&[7u8; 500]).unwrap().to_vec();
        // A zlib stream would start 0x78; RFC 2394 wants raw DEFLATE,
        // which miniz's reference decoder reads as such.
        assert_ne!(c[0], 0x78);
        assert_eq!(miniz_oxide::inflate::decompress_to_vec(&c).unwrap(), vec![7u8; 500]);
    }

    #[test]
    fn incompressible_and_tiny_inputs_are_not_compressed() {
        let mut s = IpcompScratch::default();
        assert!(s.deflate(&noise(1400, 1)).is_none());
        for n in 0..=HEADER_LEN + 1 {
            assert!(s.deflate(&vec![0u8; n]).is_none(), "{n} bytes");
        }
        // and the scratch still works after a failed attempt
        assert!(s.deflate(&[0u8; 200]).is_some());
    }

    #[test]
    fn inflate_refuses_garbage_truncation_and_bombs() {
        let mut s = IpcompScratch::default();
        let c = s.deflate(&[1u8; 1000]).unwrap().to_vec();
        assert_eq!(s.inflate(&c[..c.len() - 1]), Err(InflateError::Malformed));
        assert_eq!(s.inflate(&[]), Err(InflateError::Malformed));
        // BTYPE 11 is reserved.
        assert_eq!(s.inflate(&[0xff; 40]), Err(InflateError::Malformed));
        for seed in 0..200 {
            let _ = s.inflate(&noise(64, seed));
        }
        // 70000 zero bytes compress to a few hundred; inflating stops at 65535.
        let bomb = miniz_oxide::deflate::compress_to_vec(&vec![0u8; 70_000], 9);
        assert!(bomb.len() < 1000, "{}", bomb.len());
        assert_eq!(s.inflate(&bomb), Err(InflateError::TooLong));
        let fits = miniz_oxide::deflate::compress_to_vec(&vec![0u8; MAX_DECOMPRESSED], 9);
        assert_eq!(s.inflate(&fits).map(|o| o.len()), Ok(MAX_DECOMPRESSED));
    }
}
