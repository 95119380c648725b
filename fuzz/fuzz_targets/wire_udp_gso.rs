//! The UDP GRO train splitter and the UDP_SEGMENT run planner
//! (ikeda_wire::udp_gso) on arbitrary input: 2 bytes of segment size, then
//! the train's bytes as a receive returned them. Nothing may panic; an
//! accepted train cuts into segments of the segment size (the last no
//! longer, none empty) that give back every byte in order. The same bytes,
//! read as big-endian 16-bit datagram lengths, go through the planner: a
//! run never exceeds its limits and only joins what one train can carry.
//! The bytes after the segment size, as a captured UDP payload, go through
//! the capture-side train finder: a train it names is one SPI with
//! consecutive sequence numbers in segments of that size, the last no longer.

#![no_main]

use ikeda_wire::udp_gso::{captured_esp_train, gso_run, GroTrain, MAX_SEGMENTS, MAX_TRAIN_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let gso = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let buf = &data[2..];
    if let Ok(t) = GroTrain::new(buf, gso) {
        assert!(gso > 0 && gso <= buf.len());
        let segs: Vec<&[u8]> = t.iter().collect();
        assert_eq!(segs.len(), t.count());
        assert!(t.count() >= 1);
        for (i, s) in segs.iter().enumerate() {
            assert!(!s.is_empty() && s.len() <= gso);
            if i + 1 < segs.len() {
                assert_eq!(s.len(), gso);
            }
            assert_eq!(t.segment(i), Some(*s));
        }
        assert_eq!(t.segment(segs.len()), None);
        assert_eq!(segs.concat(), buf, "every byte, in order");
    }

    if let Some(g) = captured_esp_train(buf) {
        assert!(g % 4 == 0 && g < buf.len());
        let seq0 = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        for (k, s) in buf.chunks(g).enumerate() {
            assert!(s.len() >= 8 && s[..4] == buf[..4] && s[..4] != [0; 4]);
            assert_eq!(
                u32::from_be_bytes([s[4], s[5], s[6], s[7]]),
                seq0.wrapping_add(k as u32)
            );
        }
    }

    let lens: Vec<usize> = buf
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])))
        .collect();
    // A small limit from the first byte too, so that the limits are hit.
    for (max_segs, max_bytes) in [
        (MAX_SEGMENTS, MAX_TRAIN_BYTES),
        (usize::from(data[0] % 8) + 1, usize::from(data[1]) * 64),
    ] {
        let run = gso_run(lens.iter().copied(), max_segs, max_bytes);
        assert_eq!(run == 0, lens.is_empty());
        if run > 1 {
            let r = &lens[..run];
            assert!(run <= max_segs);
            assert!(r.iter().sum::<usize>() <= max_bytes);
            assert!(r[..run - 1].iter().all(|&l| l == r[0] && l > 0));
            assert!(r[run - 1] > 0 && r[run - 1] <= r[0]);
        }
    }
});
