use super::*;
use crate::ip::internet_checksum;

/// Deterministic filler bytes (xorshift), so sizes and contents vary.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const SRC4: [u8; 4] = [192, 168, 11, 11];
const DST4: [u8; 4] = [192, 168, 12, 12];

fn src6() -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = 0x11;
    a
}
fn dst6() -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = 0x12;
    a
}

/// A TCP header with `opts` option bytes (a multiple of 4), flags and seq;
/// the checksum field holds junk, as a TSO packet's partial sum would.
fn tcp_header(seq: u32, flags: u8, opts: usize) -> Vec<u8> {
    let mut t = vec![0u8; 20 + opts];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&5201u16.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    t[12] = (((20 + opts) / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&512u16.to_be_bytes());
    t[16..18].copy_from_slice(&[0xde, 0xad]);
    // Options: NOPs then a timestamp (kind 8, len 10), as Linux sends.
    if opts >= 12 {
        t[20] = 1;
        t[21] = 1;
        t[22] = 8;
        t[23] = 10;
        t[24..32].copy_from_slice(&bytes(8, 99));
    }
    t
}

fn ipv4(proto: u8, id: u16, opts: usize, l4: &[u8]) -> Vec<u8> {
    let ihl = 20 + opts;
    let mut p = vec![0u8; ihl];
    p[0] = 0x40 | (ihl / 4) as u8;
    // A GSO packet's total length may exceed 16 bits' worth: the field is
    // rewritten per segment, so what is here does not matter.
    p[2..4].copy_from_slice(&((ihl + l4.len()).min(65535) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&SRC4);
    p[16..20].copy_from_slice(&DST4);
    for (k, b) in p[20..].iter_mut().enumerate() {
        *b = if k == 0 { 1 } else { 0 }; // NOP, then end of options
    }
    p.extend_from_slice(l4);
    p
}

fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(l4.len().min(65535) as u16).to_be_bytes());
    p[6] = next;
    p[7] = 64;
    p[8..24].copy_from_slice(&src6());
    p[24..40].copy_from_slice(&dst6());
    p.extend_from_slice(l4);
    p
}

fn gso(gso_type: u8, gso_size: u16, csum_start: u16, csum_offset: u16) -> VnetHdr {
    VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type,
        hdr_len: 0,
        gso_size,
        csum_start,
        csum_offset,
    }
}

/// Segments a packet, checks every invariant of every segment, and returns
/// the segments.
fn split(hdr: VnetHdr, pkt: &[u8], max_len: usize) -> Vec<Vec<u8>> {
    let s = Segments::new(hdr, pkt, max_len).unwrap();
    let mut out = Vec::new();
    for i in 0..s.count() {
        // A reused buffer, dirty from the previous segment.
        let mut buf = vec![0xa5u8; max_len + 7];
        let n = s.write(i, &mut buf).unwrap();
        assert!(n <= max_len, "segment {i} is {n} bytes, limit {max_len}");
        assert!(n <= s.max_segment_len());
        assert_eq!(l4_checksum_ok(&buf[..n]), Some(true), "segment {i} checksum");
        out.push(buf[..n].to_vec());
    }
    assert!(s.write(s.count(), &mut [0u8; 70000]).is_err());
    out
}

/// Checks TCP segments: IP lengths/IDs, contiguous sequence numbers, flags,
/// and that the payloads reassemble to `payload`.
fn check_tcp(segs: &[Vec<u8>], v6: bool, l3: usize, tcp_hdr: &[u8], id0: u16, payload: &[u8]) {
    let th = tcp_hdr.len();
    let seq0 = u32::from_be_bytes(tcp_hdr[4..8].try_into().unwrap());
    let mut stream = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        if v6 {
            assert_eq!(usize::from(u16::from_be_bytes([s[4], s[5]])), s.len() - 40);
        } else {
            assert_eq!(usize::from(u16::from_be_bytes([s[2], s[3]])), s.len());
            assert_eq!(
                u16::from_be_bytes([s[4], s[5]]),
                id0.wrapping_add(i as u16),
                "IP ID of {i}"
            );
            assert_eq!(internet_checksum(&s[..l3]), 0, "IPv4 header checksum of {i}");
        }
        let t = &s[l3..];
        let seq = u32::from_be_bytes(t[4..8].try_into().unwrap());
        assert_eq!(seq, seq0.wrapping_add(stream.len() as u32), "seq of {i}");
        // Options and everything but seq/flags/checksum copied unchanged.
        assert_eq!(&t[..4], &tcp_hdr[..4]);
        assert_eq!(&t[8..13], &tcp_hdr[8..13]);
        assert_eq!(&t[14..16], &tcp_hdr[14..16]);
        assert_eq!(&t[18..th], &tcp_hdr[18..th]);
        let last = i + 1 == segs.len();
        let want = tcp_hdr[13] & !(if last { 0 } else { TCP_FIN | TCP_PSH }) & !(if i == 0 { 0 } else { TCP_CWR });
        assert_eq!(t[13], want, "flags of segment {i}");
        stream.extend_from_slice(&t[th..]);
    }
    assert_eq!(stream, payload, "segments reassemble to the original stream");
}

#[test]
fn header_round_trip() {
    let h = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV6 | GSO_ECN,
        hdr_len: 86,
        gso_size: 1348,
        csum_start: 40,
        csum_offset: 16,
    };
    let mut b = h.to_bytes().to_vec();
    b.extend_from_slice(b"pkt");
    let (g, rest) = VnetHdr::parse(&b).unwrap();
    assert_eq!(g, h);
    assert_eq!(rest, b"pkt");
    assert_eq!(b[..10], [1, 0x84, 86, 0, 0x44, 5, 40, 0, 16, 0]);
    assert!(VnetHdr::parse(&b[..9]).is_err());
}

#[test]
fn sum_matches_rfc1071_for_odd_lengths() {
    for n in (0..80).chain([1399, 1400, 1401, 65535]) {
        let d = bytes(n, n as u64 + 3);
        assert_eq!(!fold(sum(&d, 0)), internet_checksum(&d), "length {n}");
    }
}

/// The sum summed in memory order and swapped once must agree with the
/// word-by-word big-endian one for any start value and any split of the
/// data (the data plane sums a pseudo-header, then the segment), including
/// the sums that fold to 0xffff and data that is all zero or all ones.
#[test]
fn sum_is_the_big_endian_word_sum_for_any_start_and_split() {
    let reference = |d: &[u8], acc: u64| {
        let mut x = acc;
        for (i, b) in d.iter().enumerate() {
            x += u64::from(*b) << if i % 2 == 0 { 8 } else { 0 };
        }
        fold(x)
    };
    let mut cases: Vec<Vec<u8>> = (0..40).map(|n| bytes(n * 37 + n % 3, n as u64)).collect();
    cases.push(vec![0; 64]);
    cases.push(vec![0xff; 64]);
    cases.push(vec![0xff; 63]);
    for d in &cases {
        for acc in [0u64, 1, 0xfffe, 0xffff, 0x1_0000, 0x1234_5678, 0xffff_ffff] {
            assert_eq!(fold(sum(d, acc)), reference(d, acc), "len {} acc {acc:#x}", d.len());
            // A split at an even offset keeps the words whole.
            for at in (0..d.len()).step_by(6) {
                assert_eq!(
                    fold(sum(&d[at..], sum(&d[..at], acc))),
                    reference(d, acc),
                    "split at {at}"
                );
            }
        }
    }
}

#[test]
fn tcp4_with_options_odd_payload_last_segment_shorter() {
    // ECN: CWR on the super-packet; PSH and FIN too.
    let th = tcp_header(1_000_000, 0x10 | TCP_PSH | TCP_FIN | TCP_CWR, 12);
    let payload = bytes(5 * 1000 + 333, 1);
    let pkt = ipv4(TCP, 0xfffe, 0, &[th.clone(), payload.clone()].concat());
    let segs = split(gso(GSO_TCPV4 | GSO_ECN, 1000, 20, 16), &pkt, 1500);
    assert_eq!(segs.len(), 6);
    assert_eq!(segs[5].len(), 20 + 32 + 333);
    // The IP ID wraps around 0xffff.
    check_tcp(&segs, false, 20, &th, 0xfffe, &payload);
}

#[test]
fn tcp4_with_ip_options() {
    let th = tcp_header(7, 0x18, 0);
    let payload = bytes(2999, 2);
    let pkt = ipv4(TCP, 100, 4, &[th.clone(), payload.clone()].concat());
    let segs = split(gso(GSO_TCPV4, 1000, 24, 16), &pkt, 1500);
    assert_eq!(segs.len(), 3);
    check_tcp(&segs, false, 24, &th, 100, &payload);
}

#[test]
fn tcp6_segmented_below_gso_size_when_the_mtu_is_smaller() {
    // gso_size from the kernel is 1428, but only 1280-byte packets fit.
    let th = tcp_header(u32::MAX - 2000, 0x10 | TCP_PSH, 12);
    let payload = bytes(64_000 - 72, 3);
    let pkt = ipv6(TCP, &[th.clone(), payload.clone()].concat());
    let segs = split(gso(GSO_TCPV6, 1428, 40, 16), &pkt, 1280);
    assert_eq!(segs.len(), payload.len().div_ceil(1280 - 72));
    assert!(segs[..segs.len() - 1].iter().all(|s| s.len() == 1280));
    // The sequence number wraps around 2^32.
    check_tcp(&segs, true, 40, &th, 0, &payload);
}

#[test]
fn tcp_payload_within_one_segment_keeps_all_flags() {
    let th = tcp_header(5, 0x10 | TCP_PSH | TCP_FIN | TCP_CWR, 0);
    let payload = bytes(17, 4);
    let pkt = ipv6(TCP, &[th.clone(), payload.clone()].concat());
    let segs = split(gso(GSO_TCPV6 | GSO_ECN, 1000, 40, 16), &pkt, 1500);
    assert_eq!(segs.len(), 1);
    check_tcp(&segs, true, 40, &th, 0, &payload);
}

#[test]
fn udp_l4_segmentation_v4_and_v6() {
    for v6 in [false, true] {
        let payload = bytes(4 * 1200 + 1, 5);
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&4500u16.to_be_bytes());
        udp[2..4].copy_from_slice(&4501u16.to_be_bytes());
        udp.extend_from_slice(&payload);
        let (pkt, l3) = if v6 {
            (ipv6(UDP, &udp), 40)
        } else {
            (ipv4(UDP, 9, 0, &udp), 20)
        };
        let segs = split(gso(GSO_UDP_L4, 1200, l3 as u16, 6), &pkt, 1500);
        assert_eq!(segs.len(), 5);
        let mut got = Vec::new();
        for s in &segs {
            assert_eq!(usize::from(u16::from_be_bytes([s[l3 + 4], s[l3 + 5]])), s.len() - l3);
            assert_eq!(&s[l3..l3 + 4], &udp[..4]);
            got.extend_from_slice(&s[l3 + 8..]);
        }
        assert_eq!(got, payload);
        assert_eq!(segs[4].len(), l3 + 8 + 1);
    }
}

/// NEEDS_CSUM without GSO: the field holds the pseudo-header sum (what
/// the kernel leaves for CHECKSUM_PARTIAL), completed over csum_start...
#[test]
fn needs_csum_without_gso_completes_the_checksum() {
    for (v6, proto, len) in [(false, UDP, 1), (false, TCP, 1401), (true, UDP, 0), (true, TCP, 77)] {
        let (l4h, off) = if proto == TCP {
            (tcp_header(1, 0x18, 12), 16)
        } else {
            (vec![0u8; 8], 6)
        };
        let mut l4 = [l4h, bytes(len, 6)].concat();
        if proto == UDP {
            let n = l4.len() as u16;
            l4[4..6].copy_from_slice(&n.to_be_bytes());
        }
        let mut pkt = if v6 { ipv6(proto, &l4) } else { ipv4(proto, 1, 0, &l4) };
        let l3 = if v6 { 40 } else { 20 };
        let partial = fold(pseudo_header(&pkt, v6, proto, l4.len()));
        pkt[l3 + off..l3 + off + 2].copy_from_slice(&partial.to_be_bytes());
        if !v6 {
            let c = internet_checksum(&pkt[..20]);
            pkt[10..12].copy_from_slice(&c.to_be_bytes());
        }
        assert_eq!(l4_checksum_ok(&pkt), Some(false));
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: l3 as u16,
            csum_offset: off as u16,
            ..VnetHdr::default()
        };
        let segs = split(h, &pkt, 1500);
        assert_eq!(segs.len(), 1);
        // Only the checksum changed.
        let mut want = pkt.clone();
        want[l3 + off..l3 + off + 2].copy_from_slice(&segs[0][l3 + off..l3 + off + 2]);
        assert_eq!(segs[0], want);
    }
}

#[test]
fn plain_packet_is_copied_unchanged() {
    let pkt = ipv4(1, 3, 0, &bytes(100, 7)); // ICMP
    let s = Segments::new(VnetHdr::default(), &pkt, 1500).unwrap();
    assert_eq!(s.count(), 1);
    let mut buf = [0u8; 1500];
    assert_eq!(s.write(0, &mut buf).unwrap(), pkt.len());
    assert_eq!(&buf[..pkt.len()], &pkt[..]);
    // Too small an output buffer is an error, not a panic.
    assert!(s.write(0, &mut buf[..50]).is_err());
    // Larger than the segment limit: refused.
    assert!(Segments::new(VnetHdr::default(), &pkt, 100).is_err());
}

#[test]
fn refuses_what_it_cannot_segment() {
    let th = tcp_header(1, 0x10, 0);
    let l4 = [th, bytes(3000, 8)].concat();
    let p4 = ipv4(TCP, 1, 0, &l4);
    let p6 = ipv6(TCP, &l4);
    let ok4 = gso(GSO_TCPV4, 1000, 20, 16);
    assert!(Segments::new(ok4, &p4, 1500).is_ok());
    // GSO without NEEDS_CSUM.
    assert!(Segments::new(VnetHdr { flags: 0, ..ok4 }, &p4, 1500).is_err());
    // gso_type against the IP version.
    assert!(Segments::new(ok4, &p6, 1500).is_err());
    assert!(Segments::new(gso(GSO_TCPV6, 1000, 40, 16), &p4, 1500).is_err());
    // UFO and unknown types.
    assert!(Segments::new(gso(GSO_UDP, 1000, 20, 6), &p4, 1500).is_err());
    assert!(Segments::new(gso(9, 1000, 20, 16), &p4, 1500).is_err());
    // Checksum position other than the TCP checksum (e.g. an IPv6
    // extension header in front of TCP).
    assert!(Segments::new(gso(GSO_TCPV4, 1000, 24, 16), &p4, 1500).is_err());
    assert!(Segments::new(gso(GSO_TCPV4, 1000, 20, 6), &p4, 1500).is_err());
    let mut ext = p6.clone();
    ext[6] = 0; // hop-by-hop header
    assert!(Segments::new(gso(GSO_TCPV6, 1000, 48, 16), &ext, 1500).is_err());
    // L4 protocol against gso_type.
    assert!(Segments::new(gso(GSO_UDP_L4, 1000, 20, 6), &p4, 1500).is_err());
    // gso_size 0; an IPv4 fragment; a bad IHL or data offset; truncation.
    assert!(Segments::new(gso(GSO_TCPV4, 0, 20, 16), &p4, 1500).is_err());
    let mut frag = p4.clone();
    frag[6] |= 0x20;
    assert!(Segments::new(ok4, &frag, 1500).is_err());
    let mut ihl = p4.clone();
    ihl[0] = 0x44;
    assert!(Segments::new(ok4, &ihl, 1500).is_err());
    let mut doff = p4.clone();
    doff[32] = 0x40;
    assert!(Segments::new(ok4, &doff, 1500).is_err());
    for n in [0, 1, 19, 20, 39] {
        assert!(Segments::new(ok4, &p4[..n], 1500).is_err(), "truncated to {n}");
    }
    // A segment limit that leaves no room for payload.
    assert!(Segments::new(ok4, &p4, 40).is_err());
    // NEEDS_CSUM pointing past the end.
    let h = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 1499,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    assert!(Segments::new(h, &p4[..100], 1500).is_err());
}

/// A coalescer as the data plane drives it: it keeps each packet pushed
/// until the super-packet is finished, and gathers their payloads behind
/// the head then (in one buffer here, with `writev` there).
struct Tg {
    gro: Gro,
    held: Vec<Vec<u8>>,
}

impl Tg {
    fn new() -> Tg {
        Tg {
            gro: Gro::new(),
            held: Vec::new(),
        }
    }
    fn push(&mut self, pkt: &[u8], tag: u32) -> bool {
        let joined = self.gro.push(pkt, tag);
        if joined {
            self.held.push(pkt.to_vec());
        }
        joined
    }
    fn finish(&mut self) -> Option<Vec<u8>> {
        let held = std::mem::take(&mut self.held);
        let j = self.gro.finish()?;
        assert_eq!(j.segments, held.len(), "one segment per push that joined");
        Some(j.to_vec(&held.iter().map(Vec::as_slice).collect::<Vec<_>>()))
    }
    fn is_empty(&self) -> bool {
        self.gro.is_empty()
    }
    fn segments(&self) -> usize {
        self.gro.segments()
    }
}

/// Pushes `segs` through a coalescer with tag `tag`, writing what it gives
/// out as a TUN writer would; returns the written (header, packet) pairs.
fn coalesce(gro: &mut Tg, segs: &[Vec<u8>], tag: u32) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut emit = |b: &[u8]| {
        let (h, p) = VnetHdr::parse(b).unwrap();
        out.push((h, p.to_vec()));
    };
    for s in segs {
        if !gro.push(s, tag) {
            if let Some(b) = gro.finish() {
                emit(&b);
            }
            if !gro.push(s, tag) {
                emit(&[&VnetHdr::default().to_bytes()[..], s].concat());
            }
        }
    }
    if let Some(b) = gro.finish() {
        emit(&b);
    }
    out
}

/// What the kernel does with a written packet: segment it again.
fn resegment(written: &[(VnetHdr, Vec<u8>)], mtu: usize) -> Vec<Vec<u8>> {
    written
        .iter()
        .flat_map(|(h, p)| {
            if h.gso_type != GSO_NONE {
                assert_eq!(h.flags, F_NEEDS_CSUM);
                split(*h, p, mtu)
            } else {
                vec![p.clone()]
            }
        })
        .collect()
}

#[test]
fn gro_round_trips_tcp4_and_tcp6_segments() {
    for v6 in [false, true] {
        let th = tcp_header(u32::MAX - 5000, 0x10 | TCP_PSH, 12);
        let payload = bytes(40_000 + 77, 11);
        let l4 = [th.clone(), payload.clone()].concat();
        let (pkt, l3, gt) = if v6 {
            (ipv6(TCP, &l4), 40, GSO_TCPV6)
        } else {
            (ipv4(TCP, 0xfff0, 0, &l4), 20, GSO_TCPV4)
        };
        let segs = split(gso(gt, 1348, l3 as u16, 16), &pkt, 1400);
        let mut gro = Tg::new();
        let written = coalesce(&mut gro, &segs, 7);
        assert_eq!(written.len(), 1, "one flow, in order: one write");
        let (h, p) = &written[0];
        assert_eq!(h.gso_type, gt);
        assert_eq!(usize::from(h.gso_size), 1348.min(1400 - (l3 + 32)));
        assert_eq!(usize::from(h.hdr_len), l3 + 32);
        assert_eq!((h.csum_start, h.csum_offset), (l3 as u16, 16));
        assert_eq!(p.len(), pkt.len());
        // The kernel's segmentation of what we wrote gives back exactly
        // the segments we joined (IDs, seq, PSH on the last, checksums).
        assert_eq!(resegment(&written, 1400), segs);
        assert!(gro.is_empty() && gro.finish().is_none());
    }
}

#[test]
fn gro_stops_at_64k() {
    let th = tcp_header(1, 0x10, 12);
    let payload = bytes(200_000, 12);
    let l4 = [th.clone(), payload.clone()].concat();
    // Built as three super-packets' worth of segments of one flow.
    let mut segs = Vec::new();
    for (k, chunk) in payload.chunks(60_000).enumerate() {
        let mut t = th.clone();
        t[4..8].copy_from_slice(&(1 + 60_000 * k as u32).to_be_bytes());
        let p = ipv4(TCP, (k * 1000) as u16, 0, &[t, chunk.to_vec()].concat());
        segs.extend(split(gso(GSO_TCPV4, 1000, 20, 16), &p, 1400));
    }
    let _ = l4;
    let mut gro = Tg::new();
    let written = coalesce(&mut gro, &segs, 1);
    assert!(written.iter().all(|(_, p)| p.len() <= GRO_MAX));
    assert!(written.len() >= 4, "{} writes", written.len());
    let again = resegment(&written, 1400);
    let mut stream = Vec::new();
    for s in &again {
        assert_eq!(l4_checksum_ok(s), Some(true));
        stream.extend_from_slice(&s[52..]);
    }
    assert_eq!(stream, payload);
}

#[test]
fn gro_joins_only_what_the_kernel_would_split_back() {
    let th = tcp_header(100, 0x10, 12);
    let payload = bytes(5000, 13);
    let pkt = ipv4(TCP, 1, 0, &[th.clone(), payload].concat());
    let segs = split(gso(GSO_TCPV4, 1000, 20, 16), &pkt, 1400);
    let mut gro = Tg::new();
    let mutated = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut s = segs[1].clone();
        f(&mut s);
        s
    };
    // Fix the IPv4 and TCP checksums after a header change, so only the
    // change itself stops the join.
    let fix = |s: &mut Vec<u8>| {
        s[10..12].fill(0);
        let c = internet_checksum(&s[..20]);
        s[10..12].copy_from_slice(&c.to_be_bytes());
        s[36..38].fill(0);
        let c = !fold(sum(&s[20..], pseudo_header(s, false, TCP, s.len() - 20)));
        s[36..38].copy_from_slice(&c.to_be_bytes());
    };
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("other SA", segs[1].clone(), 2),
        ("bad payload checksum", mutated(&|s| s[100] ^= 1), 1),
        (
            "seq gap",
            mutated(&|s| {
                s[24..28].copy_from_slice(&2000u32.to_be_bytes());
                fix(s)
            }),
            1,
        ),
        (
            "other ACK",
            mutated(&|s| {
                s[28] ^= 1;
                fix(s)
            }),
            1,
        ),
        (
            "other window",
            mutated(&|s| {
                s[34] ^= 1;
                fix(s)
            }),
            1,
        ),
        (
            "other timestamp",
            mutated(&|s| {
                s[50] ^= 1;
                fix(s)
            }),
            1,
        ),
        (
            "IP ID not +1",
            mutated(&|s| {
                s[5] ^= 4;
                fix(s)
            }),
            1,
        ),
        (
            "other TTL",
            mutated(&|s| {
                s[8] -= 1;
                fix(s)
            }),
            1,
        ),
        (
            "FIN",
            mutated(&|s| {
                s[33] |= TCP_FIN;
                fix(s)
            }),
            1,
        ),
        (
            "CWR",
            mutated(&|s| {
                s[33] |= TCP_CWR;
                fix(s)
            }),
            1,
        ),
        ("longer than the first", [segs[1].clone(), vec![0u8; 1]].concat(), 1),
    ];
    for (what, s, tag) in cases {
        assert!(gro.push(&segs[0], 1), "{what}: first segment");
        assert!(!gro.push(&s, tag), "{what}: joined");
        let first = gro.finish().unwrap().to_vec();
        assert_eq!(first, [&VnetHdr::default().to_bytes()[..], &segs[0]].concat(), "{what}");
    }
    // After a short segment or PSH, nothing more.
    let next = split(
        gso(GSO_TCPV4, 1000, 20, 16),
        &ipv4(TCP, 3, 0, &[tcp_header(1600, 0x10, 12), bytes(900, 2)].concat()),
        1400,
    );
    for flags in [0x10, 0x18] {
        let two = split(
            gso(GSO_TCPV4, 1000, 20, 16),
            &ipv4(TCP, 1, 0, &[tcp_header(100, flags, 12), bytes(1500, 1)].concat()),
            1400,
        );
        assert!(gro.push(&two[0], 1));
        assert!(
            gro.push(&two[1], 1),
            "a short or PSH segment ends a super-packet, and may be in it"
        );
        assert!(!gro.push(&next[0], 1), "nothing after it");
        assert_eq!(gro.segments(), 2);
        let b = gro.finish().unwrap();
        let (h, p) = VnetHdr::parse(&b).map(|(h, p)| (h, p.to_vec())).unwrap();
        assert_eq!(split(h, &p, 1400), two);
    }
    // Not candidates at all: UDP, SYN, IPv4 options, fragments, no payload.
    let udp = ipv4(UDP, 1, 0, &[vec![0u8; 8], bytes(100, 3)].concat());
    let syn = ipv4(TCP, 1, 0, &tcp_header(1, 0x02, 0));
    let opts = ipv4(TCP, 1, 4, &[tcp_header(1, 0x10, 0), bytes(10, 4)].concat());
    let mut frag = segs[0].clone();
    frag[6] |= 0x20;
    let bare = ipv4(TCP, 1, 0, &tcp_header(1, 0x10, 0));
    for p in [&udp, &syn, &opts, &frag, &bare, &vec![0x45u8; 3]] {
        assert!(!gro.push(p, 1));
        assert!(gro.is_empty());
    }
}
