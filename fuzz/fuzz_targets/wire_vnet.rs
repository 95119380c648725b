//! The virtio_net_hdr parser and the TSO/USO segmentation of a TUN
//! super-packet (ikeda_wire::vnet) on arbitrary bytes: input is a 2-byte
//! segment limit, then what a TUN read would return (header + packet).
//! Nothing may panic; every segment fits the limit, carries a verifying
//! checksum when segmented, and the payloads add up to the packet's.
//! The segments (and the raw packet) then go through the TCP coalescer:
//! what it writes must segment again, every segment verifying, and carry
//! every payload byte that went in.

#![no_main]

use ikeda_wire::vnet::{l4_checksum_ok, Gro, Segments, VnetHdr, GRO_MAX, GSO_ECN, GSO_NONE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max_len = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let Ok((hdr, pkt)) = VnetHdr::parse(&data[2..]) else {
        return;
    };
    assert_eq!(VnetHdr::parse(&hdr.to_bytes()).unwrap().0, hdr);
    let Ok(s) = Segments::new(hdr, pkt, max_len) else {
        return;
    };
    assert!(s.count() >= 1);
    let mut buf = vec![0u8; max_len.max(1)];
    let mut payload = 0;
    let mut gro = Gro::new();
    // The packets the coalescer joined and not yet written out (it keeps
    // only their headers; the writer gathers their payloads).
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut gro_in = 0usize;
    let mut gro_out = 0usize;
    for i in 0..s.count() {
        let n = s.write(i, &mut buf).expect("a planned segment fits the limit");
        assert!(n <= max_len && n <= s.max_segment_len());
        assert!(n >= s.header_len());
        payload += n - s.header_len();
        if hdr.gso_type & !GSO_ECN != GSO_NONE {
            assert_eq!(l4_checksum_ok(&buf[..n]), Some(true), "segment {i} of {}", s.count());
        }
        for _ in 0..2 {
            if gro.push(&buf[..n], 1) {
                held.push(buf[..n].to_vec());
                gro_in += n - s.header_len();
                break;
            }
            gro_out += check_gro(&mut gro, &mut held);
        }
    }
    gro_out += check_gro(&mut gro, &mut held);
    if hdr.gso_type & !GSO_ECN != GSO_NONE {
        assert_eq!(gro_in, gro_out, "coalesced payload bytes");
    }
    // Arbitrary bytes as a "decrypted packet": no panic, whatever it is.
    if gro.push(pkt, 2) {
        held.push(pkt.to_vec());
    }
    check_gro(&mut gro, &mut held);
    assert_eq!(payload, pkt.len() - s.header_len());
    assert!(s.write(s.count(), &mut buf).is_err());
});

/// Writes out what the coalescer holds: a GSO packet must segment again
/// (at the largest size) into verifying segments. Returns its TCP payload
/// bytes.
fn check_gro(gro: &mut Gro, held: &mut Vec<Vec<u8>>) -> usize {
    let segs = gro.segments();
    let pkts = std::mem::take(held);
    let Some(j) = gro.finish() else {
        assert!(pkts.is_empty());
        return 0;
    };
    assert_eq!(j.segments, pkts.len());
    let b = j.to_vec(&pkts.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let (h, p) = VnetHdr::parse(&b).unwrap();
    assert!(p.len() <= GRO_MAX);
    if h.gso_type == GSO_NONE {
        // One TCP segment (the coalescer takes nothing else), unchanged.
        assert_eq!(segs, 1);
        assert_eq!(l4_checksum_ok(p), Some(true));
        let l3 = if p[0] >> 4 == 4 { usize::from(p[0] & 15) * 4 } else { 40 };
        return p.len() - l3 - usize::from(p[l3 + 12] >> 4) * 4;
    }
    let s = Segments::new(h, p, usize::from(h.hdr_len) + usize::from(h.gso_size)).expect("coalesced packet segments");
    assert_eq!(s.count(), segs);
    let mut buf = vec![0u8; GRO_MAX];
    for i in 0..s.count() {
        let n = s.write(i, &mut buf).unwrap();
        assert_eq!(l4_checksum_ok(&buf[..n]), Some(true));
    }
    p.len() - s.header_len()
}
