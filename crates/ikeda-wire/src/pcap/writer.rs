//! Writing pcapng (draft-ietf-opsawg-pcapng): the blocks `ikeda pcap
//! --write` emits, appended to a caller's buffer (no I/O here).
//!
//! ```text
//! SHB  0x0A0D0D0A | len | 0x1A2B3C4D | major 1 | minor 0 | section length -1 | options | len
//! IDB  0x00000001 | len | LinkType (16) | reserved | SnapLen | options | len
//! EPB  0x00000006 | len | Interface ID | Timestamp (high, low) | Captured Len | Original Len
//!                       | data, padded to 32 bits | options | len
//! option: code (16) | length (16) | value, padded to 32 bits; opt_endofopt (0, 0) last
//! ```
//!
//! pcapng rather than pcap because one file then holds frames of several
//! link types (the original frames, kept as they were, and rewritten ones
//! as raw IP) and a comment on each frame (§4.3 `opt_comment`), which
//! Wireshark shows as `frame.comment`. Everything is little-endian (the
//! section header's byte-order magic says so). Timestamps are written in
//! nanoseconds (`if_tsresol` 9 on every interface).

use super::{Timestamp, MAX_RECORD_LEN, PCAPNG_BYTE_ORDER_MAGIC, PCAPNG_EPB, PCAPNG_IDB, PCAPNG_SHB};

/// Option codes (§3.5, §4.1, §4.2).
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;

/// Bytes of an EPB around its data and options: type, length, interface,
/// timestamp (2), captured and original length, trailing length.
const EPB_OVERHEAD: usize = 32;

/// Longest option value written; longer text is cut at a character
/// boundary (an option length is 16 bits).
pub const MAX_OPTION_LEN: usize = 4096;

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn pad4(out: &mut Vec<u8>, from: usize) {
    let n = (out.len() - from).next_multiple_of(4) - (out.len() - from);
    out.extend_from_slice(&[0; 3][..n]);
}

/// `text` cut to at most [`MAX_OPTION_LEN`] bytes, on a character boundary.
fn clip(text: &str) -> &str {
    if text.len() <= MAX_OPTION_LEN {
        return text;
    }
    let mut end = MAX_OPTION_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    u16le(out, code);
    u16le(out, value.len() as u16);
    let at = out.len();
    out.extend_from_slice(value);
    pad4(out, at);
}

/// Start a block: type and a length to patch in [`end_block`].
fn begin_block(out: &mut Vec<u8>, block_type: u32) -> usize {
    let start = out.len();
    u32le(out, block_type);
    u32le(out, 0);
    start
}

fn end_block(out: &mut Vec<u8>, start: usize) {
    let len = (out.len() - start + 4) as u32;
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    u32le(out, len);
}

/// A Section Header Block naming the application (`shb_userappl`).
pub fn section_header(out: &mut Vec<u8>, application: &str) {
    let start = begin_block(out, PCAPNG_SHB);
    u32le(out, PCAPNG_BYTE_ORDER_MAGIC);
    u16le(out, 1);
    u16le(out, 0);
    // Section Length: -1, not given (the file is written as it is read).
    out.extend_from_slice(&(-1i64).to_le_bytes());
    option(out, SHB_USERAPPL, clip(application).as_bytes());
    option(out, OPT_ENDOFOPT, &[]);
    end_block(out, start);
}

/// An Interface Description Block: link type, no snap length limit,
/// nanosecond timestamps, and a name and description for Wireshark's
/// `frame.interface_name` / `frame.interface_description`.
pub fn interface_description(out: &mut Vec<u8>, link_type: u16, name: &str, description: &str) {
    let start = begin_block(out, PCAPNG_IDB);
    u16le(out, link_type);
    u16le(out, 0);
    // SnapLen 0: no limit (§4.2).
    u32le(out, 0);
    option(out, IF_NAME, clip(name).as_bytes());
    option(out, IF_DESCRIPTION, clip(description).as_bytes());
    option(out, IF_TSRESOL, &[9]);
    option(out, OPT_ENDOFOPT, &[]);
    end_block(out, start);
}

/// An Enhanced Packet Block on interface `interface` (whose `if_tsresol`
/// is 9), with an optional comment. Data that would make the block longer
/// than any reader of ours accepts ([`MAX_RECORD_LEN`]) is cut, as a
/// snaplen would cut it (`original_len` is kept).
pub fn enhanced_packet(
    out: &mut Vec<u8>,
    interface: u32,
    ts: Timestamp,
    data: &[u8],
    original_len: u32,
    comment: Option<&str>,
) {
    let comment = comment.map(clip).filter(|c| !c.is_empty());
    let options = comment.map_or(0, |c| 4 + c.len().next_multiple_of(4) + 4);
    let room = MAX_RECORD_LEN - EPB_OVERHEAD - options - 3;
    let data = &data[..data.len().min(room)];
    let start = begin_block(out, PCAPNG_EPB);
    u32le(out, interface);
    let units = ts.as_nanos();
    u32le(out, (units >> 32) as u32);
    u32le(out, units as u32);
    u32le(out, data.len() as u32);
    u32le(out, original_len.max(data.len() as u32));
    let at = out.len();
    out.extend_from_slice(data);
    pad4(out, at);
    if let Some(c) = comment {
        option(out, OPT_COMMENT, c.as_bytes());
        option(out, OPT_ENDOFOPT, &[]);
    }
    end_block(out, start);
}

#[cfg(test)]
mod tests {
    use super::super::{link_type, CaptureDecoder, Next};
    use super::*;

    /// Every packet of a capture the decoder reads whole.
    fn read_all(file: &[u8]) -> Vec<(u32, u32, Timestamp, Vec<u8>, u32)> {
        let mut d = CaptureDecoder::new();
        let mut at = 0;
        let mut v = Vec::new();
        loop {
            match d.next(&file[at..]).unwrap() {
                Next::Record { len, packet } => {
                    if let Some(p) = packet {
                        v.push((p.interface, p.link_type, p.timestamp, p.data.to_vec(), p.original_len));
                    }
                    at += len;
                }
                Next::Need(_) => {
                    d.finish(file.len() - at).unwrap();
                    return v;
                }
            }
        }
    }

    #[test]
    fn blocks_read_back_with_their_link_types_times_and_data() {
        let mut f = Vec::new();
        section_header(&mut f, "ikeda pcap --write");
        interface_description(&mut f, link_type::LINUX_SLL as u16, "original", "as captured");
        interface_description(&mut f, link_type::RAW as u16, "ikeda-decrypted", "rewritten");
        let t = Timestamp {
            secs: 1_700_000_000,
            nanos: 123_456_789,
        };
        enhanced_packet(&mut f, 0, t, &[1, 2, 3, 4, 5], 9, None);
        enhanced_packet(&mut f, 1, t, &[0x45; 21], 21, Some("ikeda pcap: décrypté"));
        assert_eq!(f.len() % 4, 0);
        let v = read_all(&f);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0], (0, link_type::LINUX_SLL, t, vec![1, 2, 3, 4, 5], 9));
        assert_eq!(v[1], (1, link_type::RAW, t, vec![0x45; 21], 21));
        // The comment is in the block, padded, before opt_endofopt.
        let c = "ikeda pcap: décrypté".as_bytes();
        let at = f.windows(c.len()).position(|w| w == c).unwrap();
        assert_eq!(&f[at - 4..at - 2], &OPT_COMMENT.to_le_bytes());
        assert_eq!(usize::from(u16::from_le_bytes([f[at - 2], f[at - 1]])), c.len());
    }

    #[test]
    fn long_comments_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_OPTION_LEN);
        let c = clip(&long);
        assert!(c.len() <= MAX_OPTION_LEN && c.len() >= MAX_OPTION_LEN - 1);
        assert!(c.chars().all(|ch| ch == 'é'));
        let mut f = Vec::new();
        section_header(&mut f, &long);
        interface_description(&mut f, 101, &long, "");
        enhanced_packet(&mut f, 0, Timestamp::default(), &[0x60; 40], 40, Some(&long));
        assert_eq!(read_all(&f).len(), 1);
    }

    #[test]
    fn data_too_long_for_a_block_is_cut_like_a_snaplen() {
        let big = vec![0u8; MAX_RECORD_LEN];
        let mut f = Vec::new();
        section_header(&mut f, "t");
        interface_description(&mut f, 101, "x", "y");
        enhanced_packet(&mut f, 0, Timestamp::default(), &big, big.len() as u32, Some("cut"));
        let v = read_all(&f);
        assert!(v[0].3.len() < big.len());
        assert_eq!(v[0].4 as usize, big.len());
    }
}
