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
