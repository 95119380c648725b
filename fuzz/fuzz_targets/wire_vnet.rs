//! The virtio_net_hdr parser and the TSO/USO segmentation of a TUN
//! super-packet (ikeda_wire::vnet) on arbitrary bytes: input is a 2-byte
//! segment limit, then what a TUN read would return (header + packet).
//! Nothing may panic; every segment fits the limit, carries a verifying
//! checksum when segmented, and the payloads add up to the packet's.

#![no_main]

use ikeda_wire::vnet::{l4_checksum_ok, Segments, VnetHdr, GSO_ECN, GSO_NONE};
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
    for i in 0..s.count() {
        let n = s.write(i, &mut buf).expect("a planned segment fits the limit");
        assert!(n <= max_len && n <= s.max_segment_len());
        assert!(n >= s.header_len());
        payload += n - s.header_len();
        if hdr.gso_type & !GSO_ECN != GSO_NONE {
            assert_eq!(l4_checksum_ok(&buf[..n]), Some(true), "segment {i} of {}", s.count());
        }
    }
    assert_eq!(payload, pkt.len() - s.header_len());
    assert!(s.write(s.count(), &mut buf).is_err());
});
