//! The IKEv1 engine fed arbitrary datagrams in every state. Byte 0 picks
//! the mode (Main/Aggressive, 0x01), the side that receives (0x02), how
//! far the exchange between two engines got first (bits 2-5: 0 to 15
//! batches of datagrams: before any SA, every half-open step, established,
//! Quick Mode done) and whether the datagram borrows the live cookies
//! (0x40; then its first 16 octets are replaced, so the fuzzer gets past
//! the cookie lookup). The rest is the datagram.
#![no_main]

#[path = "common/ikev1.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let mut two = common::Two::new(sel & 0x01 != 0);
    let rounds = usize::from((sel >> 2) & 0x0f);
    if rounds > 0 {
        two.run(rounds);
    }
    let mut msg = rest.to_vec();
    if sel & 0x40 != 0 && msg.len() >= 16 {
        if let Some((_, last)) = two.seen.iter().rev().find(|(_, d)| d.len() >= 16 && d[8..16] != [0; 8]) {
            msg[..16].copy_from_slice(&last[..16]);
        }
    }
    two.feed(sel & 0x02 != 0, &msg);
});
