//! UDP segmentation trains: Linux's `UDP_SEGMENT` (send) and `UDP_GRO`
//! (receive) offloads, as pure functions over lengths and bytes.
//!
//! A *train* is one buffer holding several UDP payloads of one 4-tuple
//! back to back: every payload but the last is exactly `gso_size` bytes,
//! the last is `1..=gso_size` bytes. The kernel cuts a train handed to
//! `sendmsg` with a `UDP_SEGMENT` cmsg into that many datagrams on the wire
//! (or lets the NIC do it), and with `UDP_GRO` set on a socket it hands
//! several received datagrams of one flow back as one train, with the
//! segment size in a `UDP_GRO` cmsg (`udp(7)`).
//!
//! Nothing here knows what the payloads are: on UDP 4500 a train can mix
//! ESP, IKE behind the non-ESP marker and NAT keepalives (they share the
//! 4-tuple, RFC 3948 §2), so each segment is classified on its own after
//! [`GroTrain`] has cut it out.

use core::fmt;

/// Most datagrams one `UDP_SEGMENT` send may carry (`UDP_MAX_SEGMENTS` in
/// older kernels; newer ones allow more, none fewer).
pub const MAX_SEGMENTS: usize = 64;

/// How many datagrams one train of ours carries at most: a quarter of what
/// the kernel would take. The kernel (or a veth) delivers a train to the
/// peer all at once, and a peer that reads one datagram per syscall from a
/// socket with the default buffer (212,992 bytes hold about 92 datagrams
/// of 1.5 KB, at 2,304 bytes of truesize each) overflows when a few trains
/// of 64 land between two of its reads: strongSwan's charon (kernel-libipsec)
/// dropped 84 to 142 datagrams per lab run with trains of 64, and none in
/// six runs with trains of 16. A train of 16 still saves 15 of every 16
/// passes through the UDP and IP send path. It is the train for a peer
/// that has not said it takes more ([`TRAINS_VENDOR_ID`]).
pub const TRAIN_SEGMENTS: usize = 16;
const _: () = assert!(TRAIN_SEGMENTS <= MAX_SEGMENTS);

/// The train for a peer that takes whole trains: all the kernel allows
/// (46 datagrams of 1.4 KB fill [`MAX_TRAIN_BYTES`] first). A peer that
/// reads with `UDP_GRO` or `recvmmsg` from a large buffer (ikeda does both)
/// loses nothing to a burst of 64, and each train is one more pass through
/// the sender's UDP, IP and device layers saved: in the lab, one TCP stream
/// went 5 to 12 % faster with these than with trains of 16 (runs taking
/// turns with the same lab).
pub const FULL_TRAIN: usize = MAX_SEGMENTS;

/// The Vendor ID (RFC 7296 §3.12, RFC 2408 §3.16) by which a peer says it
/// takes [`FULL_TRAIN`]s of ESP in UDP: ikeda sends it and sends full
/// trains to a peer that sent it. Readable in a capture on purpose; any
/// other peer ignores a Vendor ID it does not know.
pub const TRAINS_VENDOR_ID: [u8; 16] = *b"ikeda-udp-trains";

/// Most payload bytes of one train: the largest IPv4 UDP payload
/// (65535 − 20 − 8). The kernel refuses a bigger `UDP_SEGMENT` send
/// (`EMSGSIZE`), and `UDP_GRO` never builds one.
pub const MAX_TRAIN_BYTES: usize = 65_507;

/// Why a received train cannot be cut into datagrams. The kernel builds
/// none of these; a train that is one is dropped whole and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainError {
    /// A `UDP_GRO` segment size of zero.
    ZeroSegmentSize,
    /// No bytes at all (or a truncated receive, which callers report as 0).
    Empty,
    /// The segment size is larger than the bytes received, so not even the
    /// first segment is whole.
    SegmentLargerThanTrain { gso_size: usize, len: usize },
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::ZeroSegmentSize => write!(f, "UDP GRO train with segment size 0"),
            TrainError::Empty => write!(f, "empty UDP GRO train"),
            TrainError::SegmentLargerThanTrain { gso_size, len } => {
                write!(f, "UDP GRO segment size {gso_size} larger than the {len}-byte train")
            }
        }
    }
}

/// A received train, checked: [`segment`](Self::segment) and
/// [`iter`](Self::iter) never panic once [`new`](Self::new) accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroTrain<'a> {
    buf: &'a [u8],
    gso_size: usize,
}

impl<'a> GroTrain<'a> {
    /// Checks `buf` (the bytes one receive returned) against the
    /// `UDP_GRO` cmsg's `gso_size`.
    pub fn new(buf: &'a [u8], gso_size: usize) -> Result<Self, TrainError> {
        if gso_size == 0 {
            return Err(TrainError::ZeroSegmentSize);
        }
        if buf.is_empty() {
            return Err(TrainError::Empty);
        }
        if gso_size > buf.len() {
            return Err(TrainError::SegmentLargerThanTrain {
                gso_size,
                len: buf.len(),
            });
        }
        Ok(GroTrain { buf, gso_size })
    }

    /// The segment size (all segments but the last have it).
    pub fn gso_size(&self) -> usize {
        self.gso_size
    }

    /// Number of datagrams in the train (at least 1).
    pub fn count(&self) -> usize {
        self.buf.len().div_ceil(self.gso_size)
    }

    /// Datagram `i` (`None` past the end).
    pub fn segment(&self, i: usize) -> Option<&'a [u8]> {
        let start = i.checked_mul(self.gso_size)?;
        if start >= self.buf.len() {
            return None;
        }
        let end = start.saturating_add(self.gso_size).min(self.buf.len());
        self.buf.get(start..end)
    }

    /// The datagrams in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.buf.chunks(self.gso_size)
    }
}

/// How many of the datagrams whose lengths `lens` yields, from the first,
/// one `UDP_SEGMENT` send can carry as a train: all but the last of the
/// same length as the first, the last no longer, at most `max_segments`
/// and `max_bytes` in all. The caller checks that they share a destination.
///
/// Returns 0 for no datagrams and 1 when the first cannot be joined with
/// the next (send it alone, without the cmsg). A zero-length datagram never
/// joins a train: it would vanish in the concatenation.
pub fn gso_run(lens: impl IntoIterator<Item = usize>, max_segments: usize, max_bytes: usize) -> usize {
    let mut lens = lens.into_iter();
    let Some(first) = lens.next() else {
        return 0;
    };
    let mut count = 1;
    let mut total = first;
    if first == 0 {
        return 1;
    }
    for len in lens {
        if count >= max_segments || len == 0 || len > first || total + len > max_bytes {
            break;
        }
        count += 1;
        total += len;
        if len < first {
            // A shorter datagram can only be the last of a train.
            break;
        }
    }
    count
}

/// The shortest ESP packet a captured train is taken to hold: the header
/// (8), an 8-byte IV, the two trailer bytes and a 12-byte ICV, 4-aligned.
const MIN_ESP_SEGMENT: usize = 32;

/// Whether a captured UDP 4500 payload is a train of ESP packets of one SA
/// (several RFC 3948 ESP-in-UDP datagrams back to back in one frame) and
/// if so its segment size. A capture on the sending gateway, taken before
/// the kernel or the NIC cut a `UDP_SEGMENT` train, records such frames,
/// and so does one on the receiving gateway after the NIC's GRO joined
/// datagrams for a `UDP_GRO` socket; the segment size is not in the
/// capture. Such a train names itself: the SPI of its first packet recurs,
/// with the next sequence number, at a multiple of 4 bytes (ESP packets are
/// 4-byte aligned, RFC 4303 §2.4), and at every further multiple of that
/// size with the number after; the last segment is no longer than the
/// others and still holds a header. A single packet would have to carry
/// its own SPI and next sequence numbers in its ciphertext at each such
/// offset to be mistaken for a train. Payloads starting with the non-ESP
/// marker (IKE) are never trains here.
pub fn captured_esp_train(payload: &[u8]) -> Option<usize> {
    if payload.len() < 2 * MIN_ESP_SEGMENT {
        return None;
    }
    let spi = payload.get(..4)?;
    if spi == [0u8; 4] {
        return None;
    }
    let seq = u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?);
    // The second packet's header: our SPI and the next sequence number.
    let mut second = [0u8; 8];
    second[..4].copy_from_slice(spi);
    second[4..].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
    // Every ESP-in-UDP frame of a capture comes through here: a SIMD search
    // for those 8 bytes (about 100 ns for a full-size packet, a third of a
    // compare per aligned word).
    let room = payload.get(MIN_ESP_SEGMENT..payload.len() - MIN_ESP_SEGMENT + 8)?;
    memchr::memmem::find_iter(room, &second)
        .map(|at| MIN_ESP_SEGMENT + at)
        .find(|&g| g % 4 == 0 && is_train_of(payload, g, spi, seq))
}

/// Every `g`-byte segment of `payload` starts with `spi` and the sequence
/// number after the last, from `seq`, and the last is a whole ESP packet.
fn is_train_of(payload: &[u8], g: usize, spi: &[u8], seq: u32) -> bool {
    payload.chunks(g).zip(0u32..).all(|(s, k)| {
        s.len() >= MIN_ESP_SEGMENT
            && s.get(..4) == Some(spi)
            && s.get(4..8) == Some(&seq.wrapping_add(k).to_be_bytes()[..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(buf: &[u8], gso: usize) -> Result<Vec<Vec<u8>>, TrainError> {
        let t = GroTrain::new(buf, gso)?;
        let v: Vec<Vec<u8>> = t.iter().map(|s| s.to_vec()).collect();
        assert_eq!(v.len(), t.count());
        for (i, s) in v.iter().enumerate() {
            assert_eq!(t.segment(i), Some(s.as_slice()));
        }
        assert_eq!(t.segment(v.len()), None);
        assert_eq!(t.segment(usize::MAX), None);
        Ok(v)
    }

    #[test]
    fn odd_sizes_and_a_shorter_last() {
        let buf: Vec<u8> = (0..1001u32).map(|i| i as u8).collect();
        let v = split(&buf, 333).unwrap();
        assert_eq!(v.iter().map(Vec::len).collect::<Vec<_>>(), [333, 333, 333, 2]);
        assert_eq!(v.concat(), buf, "every byte, in order");
        let v = split(&buf, 7).unwrap();
        assert_eq!(v.len(), 143);
        assert_eq!(v[142].len(), 7, "1001 = 143 * 7");
        assert_eq!(v.concat(), buf);
    }

    #[test]
    fn equal_segments_and_exactly_one() {
        let buf = [9u8; 1400 * 3];
        assert_eq!(split(&buf, 1400).unwrap().len(), 3);
        // A train of one: the whole buffer is one datagram.
        assert_eq!(split(&buf[..1400], 1400).unwrap(), vec![buf[..1400].to_vec()]);
        // gso_size 1: every byte its own datagram.
        assert_eq!(split(&[1, 2, 3], 1).unwrap(), vec![vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn malformed_trains_are_refused() {
        assert_eq!(split(&[1, 2, 3], 0), Err(TrainError::ZeroSegmentSize));
        assert_eq!(split(&[], 0), Err(TrainError::ZeroSegmentSize));
        assert_eq!(split(&[], 1400), Err(TrainError::Empty));
        // Truncated: fewer bytes than one segment.
        assert_eq!(
            split(&[0u8; 1399], 1400),
            Err(TrainError::SegmentLargerThanTrain {
                gso_size: 1400,
                len: 1399
            })
        );
        assert_eq!(
            split(&[0u8; 10], usize::MAX),
            Err(TrainError::SegmentLargerThanTrain {
                gso_size: usize::MAX,
                len: 10
            })
        );
        assert!(!TrainError::ZeroSegmentSize.to_string().is_empty());
    }

    /// An ESP packet of `len` bytes: SPI, sequence number, then bytes that
    /// stand for ciphertext (a counter pattern that never looks like a header).
    fn esp(spi: u32, seq: u32, len: usize) -> Vec<u8> {
        let mut p = Vec::with_capacity(len);
        p.extend_from_slice(&spi.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend((8..len).map(|i| (i as u8).wrapping_mul(7) | 1));
        p
    }

    #[test]
    fn captured_trains_are_found_by_their_own_headers() {
        // 16 x 1436 (a full-size ESP packet of the lab) with a shorter last.
        let mut t = Vec::new();
        for k in 0..15 {
            t.extend(esp(0xc0ffee01, 41 + k, 1436));
        }
        t.extend(esp(0xc0ffee01, 56, 148));
        assert_eq!(captured_esp_train(&t), Some(1436));
        let seg: Vec<_> = GroTrain::new(&t, 1436).unwrap().iter().map(<[u8]>::len).collect();
        assert_eq!(seg.len(), 16);
        // Three small ones of equal size (IPv6 echo replies), and a train
        // across the 32-bit wrap of the sequence number (ESN's low half).
        let t: Vec<u8> = (0..3).flat_map(|k| esp(7, 9 + k, 152)).collect();
        assert_eq!(captured_esp_train(&t), Some(152));
        let t: Vec<u8> = [u32::MAX, 0].iter().flat_map(|&q| esp(7, q, 100)).collect();
        assert_eq!(captured_esp_train(&t), Some(100));
        // Not trains: one packet; two SAs; a gap in the numbers; a last
        // segment too short for an ESP packet; IKE (the non-ESP marker).
        assert_eq!(captured_esp_train(&esp(7, 9, 1436)), None);
        let t: Vec<u8> = [esp(7, 9, 152), esp(8, 10, 152)].concat();
        assert_eq!(captured_esp_train(&t), None);
        let t: Vec<u8> = [esp(7, 9, 152), esp(7, 11, 152)].concat();
        assert_eq!(captured_esp_train(&t), None);
        let mut t: Vec<u8> = [esp(7, 9, 152), esp(7, 10, 152)].concat();
        t.extend_from_slice(&7u32.to_be_bytes());
        t.extend_from_slice(&11u32.to_be_bytes());
        assert_eq!(captured_esp_train(&t), None);
        let t: Vec<u8> = [esp(0, 9, 152), esp(0, 10, 152)].concat();
        assert_eq!(captured_esp_train(&t), None);
        // Short and odd inputs never panic.
        for n in 0..80 {
            assert_eq!(captured_esp_train(&vec![1u8; n]), None, "{n}");
        }
    }

    #[test]
    fn runs_join_equal_lengths_and_one_shorter_last() {
        let m = (MAX_SEGMENTS, MAX_TRAIN_BYTES);
        assert_eq!(gso_run([], m.0, m.1), 0);
        assert_eq!(gso_run([1400], m.0, m.1), 1);
        assert_eq!(gso_run([1400, 1400, 1400], m.0, m.1), 3);
        // The shorter one ends the run, even if equal ones follow.
        assert_eq!(gso_run([1400, 1400, 900, 1400], m.0, m.1), 3);
        // A longer one cannot join.
        assert_eq!(gso_run([900, 1400], m.0, m.1), 1);
        assert_eq!(gso_run([900, 900, 1400, 1400], m.0, m.1), 2);
        // Zero-length datagrams stay alone.
        assert_eq!(gso_run([0, 0], m.0, m.1), 1);
        assert_eq!(gso_run([100, 0], m.0, m.1), 1);
        // Limits: segments, then bytes.
        assert_eq!(gso_run([100; 100], m.0, m.1), 64);
        assert_eq!(gso_run([1400; 64], m.0, m.1), 46, "46 * 1400 <= 65507 < 47 * 1400");
        assert_eq!(gso_run([1400, 1400, 1000], 64, 2800), 2);
        assert_eq!(gso_run([1400; 3], 2, MAX_TRAIN_BYTES), 2);
    }
}
