//! IKEv2 SKF reassembly (RFC 7383) on whatever a capture can feed it:
//! fragments of a few messages in any order, with any Fragment Number and
//! Total Fragments, duplicates, refragmentations, sizes and capture times
//! (which may go backwards). Whatever the input: no panic; the messages,
//! bytes and fragments held stay within the limits; a completed message
//! has one fragment per number, joined in number order, within the size
//! bound.
//!
//! Input: 6 bytes per fragment: message (low 2 bits: Message ID, bit 2:
//! response, bit 3: Initiator flag), Fragment Number, Total Fragments,
//! time step (signed, in seconds), content length, content byte base.
//!
//! The reassembler lives in the binary crate `ikeda` (no library target),
//! so its module is compiled in here from its source file.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/ikeda/src/pcap/skf.rs"]
mod skf;

use skf::{Fragment, Limits, MessageKey, Outcome, SkfReassembler};

const LIMITS: Limits = Limits {
    max_messages: 3,
    max_fragments: 8,
    max_message_bytes: 600,
    max_bytes: 1000,
    timeout_nanos: 10_000_000_000,
};

fuzz_target!(|data: &[u8]| {
    let mut r = SkfReassembler::new(LIMITS);
    let mut now: u64 = 1_000_000_000_000;
    for (i, op) in data.chunks_exact(6).enumerate() {
        let key = MessageKey {
            spi_i: 1,
            spi_r: 2,
            message_id: u32::from(op[0] & 3),
            response: op[0] & 4 != 0,
            from_initiator: op[0] & 8 != 0,
        };
        let (number, total) = (u16::from(op[1] % 12), u16::from(op[2] % 12));
        now = now.saturating_add_signed(i64::from(op[3] as i8) * 1_000_000_000);
        // Content that says which fragment it is: its number, repeated.
        let content = vec![number as u8; usize::from(op[4]) * 3];
        let f = Fragment {
            number,
            total,
            next_payload: op[5],
            frame: i as u64 + 1,
            data: &content,
        };
        match r.push(now, key, f) {
            Outcome::Complete(m) => {
                assert!(m.chain.len() <= LIMITS.max_message_bytes);
                assert_eq!(m.frames.len(), usize::from(total));
                assert!(total >= 1 && total <= LIMITS.max_fragments);
                // Joined in number order: 1s, then 2s, ... each number once.
                let mut last = 0u8;
                for &b in m.chain.iter() {
                    assert!(b >= last && b >= 1 && u16::from(b) <= total, "{:?}", &m.chain[..]);
                    last = b;
                }
                let _ = skf::note(&Outcome::Complete(m), number, total);
            }
            other => {
                let _ = skf::note(&other, number, total);
            }
        }
        let (messages, bytes) = r.pending();
        assert!(messages <= LIMITS.max_messages && bytes <= LIMITS.max_bytes);
    }
    r.finish();
    assert_eq!(r.pending(), (0, 0));
    let s = r.stats();
    assert!(s.reassembled + s.duplicates + s.stale + s.over_limit <= s.fragments);
});
