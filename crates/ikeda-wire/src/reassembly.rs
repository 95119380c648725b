//! IP fragment reassembly for reading captures (RFC 791 §3.2, RFC 8200
//! §4.5), bounded for input we do not trust: a cap on datagrams being
//! reassembled at once, on the bytes they hold and on fragments per
//! datagram; a datagram not complete within [`Limits::timeout_nanos`] of
//! its first fragment (in capture time, passed in) is dropped. Every drop
//! is counted in [`Stats`].
//!
//! Overlapping fragments drop the whole datagram (RFC 5722 for IPv6; the
//! same rule for IPv4 here, since a capture reader must not guess which
//! copy a receiver kept). An exact duplicate of a fragment already held is
//! counted and ignored.

use crate::iana::IpProtocol;
use crate::ip::Datagram;
use std::collections::HashMap;
use std::net::IpAddr;

/// The largest payload a fragmented datagram can reassemble to (the
/// 16-bit Total Length / Payload Length fields).
pub const MAX_DATAGRAM_PAYLOAD: usize = 65535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Datagrams being reassembled at once.
    pub max_datagrams: usize,
    /// Bytes held by all of them together.
    pub max_bytes: usize,
    /// Fragments held for one datagram.
    pub max_fragments: usize,
    /// Capture time from a datagram's first fragment to its completion.
    pub timeout_nanos: u64,
}

impl Default for Limits {
    /// 256 datagrams, 4 MiB, 64 fragments each, 30 s (Linux's
    /// `ipfrag_time`).
    fn default() -> Self {
        Limits {
            max_datagrams: 256,
            max_bytes: 4 << 20,
            max_fragments: 64,
            timeout_nanos: 30_000_000_000,
        }
    }
}

/// What happened to fragments, for the reader's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub fragments: u64,
    pub reassembled: u64,
    /// Datagrams dropped incomplete after the timeout (or still incomplete
    /// at the end, see [`Reassembler::finish`]).
    pub timed_out: u64,
    /// Fragments dropped because a limit was reached.
    pub over_limit: u64,
    /// Datagrams dropped for overlapping fragments.
    pub overlapping: u64,
    pub duplicates: u64,
    /// Fragments beyond 65535 bytes or inconsistent with the datagram's end.
    pub malformed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    protocol: IpProtocol,
    id: u32,
}

#[derive(Debug)]
struct Pending {
    first_seen: u64,
    data: Vec<u8>,
    /// Byte ranges received, unsorted; at most `max_fragments`.
    have: Vec<(usize, usize)>,
    /// Payload length, known once the last fragment (MF clear) arrived.
    total: Option<usize>,
}

impl Pending {
    fn complete(&self) -> bool {
        let Some(total) = self.total else { return false };
        let mut ranges = self.have.clone();
        ranges.sort_unstable();
        let mut next = 0;
        for (s, e) in ranges {
            if s > next {
                return false;
            }
            next = next.max(e);
        }
        next >= total
    }
}

/// A whole datagram put together from its fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: IpProtocol,
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Reassembler {
    limits: Limits,
    pending: HashMap<Key, Pending>,
    bytes: usize,
    stats: Stats,
}

impl Reassembler {
    pub fn new(limits: Limits) -> Self {
        Reassembler {
            limits,
            ..Default::default()
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Datagrams being reassembled and the bytes they hold.
    pub fn pending(&self) -> (usize, usize) {
        (self.pending.len(), self.bytes)
    }

    /// Drop datagrams whose first fragment is older than the timeout.
    pub fn expire(&mut self, now_nanos: u64) {
        let timeout = self.limits.timeout_nanos;
        let before = self.pending.len();
        let mut freed = 0;
        self.pending.retain(|_, p| {
            let keep = now_nanos.saturating_sub(p.first_seen) <= timeout;
            if !keep {
                freed += p.data.len();
            }
            keep
        });
        self.bytes -= freed;
        self.stats.timed_out += (before - self.pending.len()) as u64;
    }

    /// The end of the capture: what is still incomplete is counted as
    /// timed out.
    pub fn finish(&mut self) {
        self.stats.timed_out += self.pending.len() as u64;
        self.pending.clear();
        self.bytes = 0;
    }

    /// Take one fragment (`d.fragment` is `Some`; an unfragmented datagram
    /// is returned as it is). Returns the whole datagram when this
    /// fragment completes it.
    pub fn push(&mut self, now_nanos: u64, d: &Datagram<'_>) -> Option<Reassembled> {
        let Some(frag) = d.fragment else {
            return Some(Reassembled {
                src: d.src,
                dst: d.dst,
                protocol: d.protocol,
                payload: d.payload.to_vec(),
            });
        };
        self.stats.fragments += 1;
        self.expire(now_nanos);
        let key = Key {
            src: d.src,
            dst: d.dst,
            protocol: d.protocol,
            id: frag.id,
        };
        let (start, end) = (frag.offset, frag.offset + d.payload.len());
        if end > MAX_DATAGRAM_PAYLOAD || (frag.more && d.payload.is_empty()) {
            self.stats.malformed += 1;
            return None;
        }
        if !self.pending.contains_key(&key) && self.pending.len() >= self.limits.max_datagrams {
            self.stats.over_limit += 1;
            return None;
        }
        let limits = self.limits;
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            first_seen: now_nanos,
            data: Vec::new(),
            have: Vec::new(),
            total: None,
        });
        if p.have.contains(&(start, end)) {
            self.stats.duplicates += 1;
            return None;
        }
        let overlaps = p.have.iter().any(|&(s, e)| start < e && s < end);
        let bad_end = match (p.total, frag.more) {
            (Some(t), true) => end > t,
            (Some(t), false) => end != t,
            (None, false) => p.have.iter().any(|&(_, e)| e > end),
            (None, true) => false,
        };
        if overlaps || bad_end {
            if overlaps {
                self.stats.overlapping += 1;
            } else {
                self.stats.malformed += 1;
            }
            self.bytes -= p.data.len();
            self.pending.remove(&key);
            return None;
        }
        let grow = end.saturating_sub(p.data.len());
        if p.have.len() >= limits.max_fragments || self.bytes + grow > limits.max_bytes {
            self.stats.over_limit += 1;
            return None;
        }
        if grow > 0 {
            p.data.resize(end, 0);
            self.bytes += grow;
        }
        p.data[start..end].copy_from_slice(d.payload);
        p.have.push((start, end));
        if !frag.more {
            p.total = Some(end);
        }
        if !p.complete() {
            return None;
        }
        let p = self.pending.remove(&key)?;
        self.bytes -= p.data.len();
        self.stats.reassembled += 1;
        Some(Reassembled {
            src: key.src,
            dst: key.dst,
            protocol: key.protocol,
            payload: p.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::{build_ipv4, build_ipv6, datagram};
    use std::net::Ipv4Addr;

    const SEC: u64 = 1_000_000_000;

    /// IPv4 fragment of datagram `id` at byte `offset`.
    fn frag4(id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let mut p = build_ipv4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            IpProtocol::UDP,
            data,
        );
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let fo = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        p[6..8].copy_from_slice(&fo.to_be_bytes());
        p
    }

    fn frag6(id: u32, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let mut payload = vec![IpProtocol::ESP.0, 0];
        payload.extend_from_slice(&(((offset / 8) as u16) << 3 | more as u16).to_be_bytes());
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(data);
        build_ipv6(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            IpProtocol::IPV6_FRAG,
            &payload,
        )
    }

    fn push(r: &mut Reassembler, now: u64, p: &[u8]) -> Option<Reassembled> {
        r.push(now, &datagram(p).unwrap())
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect()
    }

    #[test]
    fn in_any_order_both_versions() {
        let whole = bytes(3000, 1);
        let mut r = Reassembler::new(Limits::default());
        // Last first, then the middle, then the first.
        assert!(push(&mut r, 0, &frag4(9, 2960, false, &whole[2960..])).is_none());
        assert!(push(&mut r, 1, &frag4(9, 1480, true, &whole[1480..2960])).is_none());
        assert_eq!(r.pending(), (1, 3000));
        let done = push(&mut r, 2, &frag4(9, 0, true, &whole[..1480])).unwrap();
        assert_eq!((done.protocol, done.payload.len()), (IpProtocol::UDP, 3000));
        assert_eq!(done.payload, whole);
        assert_eq!(r.pending(), (0, 0));
        let done6 = [
            frag6(77, 1232, false, &whole[1232..]),
            frag6(77, 0, true, &whole[..1232]),
        ]
        .iter()
        .find_map(|p| push(&mut r, 3, p))
        .unwrap();
        assert_eq!((done6.protocol, &done6.payload), (IpProtocol::ESP, &whole));
        let s = r.stats();
        assert_eq!((s.fragments, s.reassembled), (5, 2));
        // Unfragmented datagrams pass through without counting.
        let plain = build_ipv4(
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            IpProtocol::ESP,
            &[1, 2],
        );
        assert_eq!(push(&mut r, 4, &plain).unwrap().payload, [1, 2]);
        assert_eq!(r.stats().fragments, 5);
    }

    #[test]
    fn timeout_by_capture_time() {
        let whole = bytes(16, 2);
        let mut r = Reassembler::new(Limits::default());
        assert!(push(&mut r, 0, &frag4(1, 0, true, &whole[..8])).is_none());
        // 31 s later the first half is gone: the second half alone completes nothing.
        assert!(push(&mut r, 31 * SEC, &frag4(1, 8, false, &whole[8..])).is_none());
        assert_eq!(r.stats().timed_out, 1);
        assert_eq!(r.pending(), (1, 16));
        r.finish();
        assert_eq!(r.stats().timed_out, 2);
        assert_eq!(r.pending(), (0, 0));
    }

    #[test]
    fn limits_overlaps_and_duplicates() {
        let limits = Limits {
            max_datagrams: 2,
            max_bytes: 4000,
            max_fragments: 3,
            timeout_nanos: 30 * SEC,
        };
        let mut r = Reassembler::new(limits);
        let d = bytes(8, 3);
        for id in 1..=3 {
            push(&mut r, 0, &frag4(id, 0, true, &d));
        }
        assert_eq!((r.pending().0, r.stats().over_limit), (2, 1));
        // Bytes: a fragment at 3992 would grow datagram 1 to 4000, over the 4000 held in all.
        assert!(push(&mut r, 0, &frag4(1, 3992, true, &d)).is_none());
        assert_eq!(r.stats().over_limit, 2);
        // Fragments per datagram: 3 held at most.
        push(&mut r, 0, &frag4(2, 8, true, &d));
        push(&mut r, 0, &frag4(2, 16, true, &d));
        push(&mut r, 0, &frag4(2, 24, true, &d));
        assert_eq!(r.stats().over_limit, 3);
        // A duplicate is ignored, an overlap drops the datagram.
        push(&mut r, 0, &frag4(2, 8, true, &d));
        assert_eq!(r.stats().duplicates, 1);
        push(&mut r, 0, &frag4(2, 0, true, &bytes(16, 3)));
        assert_eq!((r.stats().overlapping, r.pending().0), (1, 1));
        // Beyond 65535 bytes, or data after the last fragment's end.
        push(&mut r, 0, &frag4(5, 65528, true, &bytes(16, 0)));
        assert_eq!(r.stats().malformed, 1);
        push(&mut r, 0, &frag4(1, 16, false, &d));
        push(&mut r, 0, &frag4(1, 32, true, &d));
        assert_eq!(r.stats().malformed, 2);
        assert_eq!(r.pending(), (0, 0));
    }
}
