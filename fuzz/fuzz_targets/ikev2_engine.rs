//! The IKEv2 engine fed arbitrary datagrams in every state: before any SA,
//! half-open (initiator after IKE_SA_INIT, responder waiting for IKE_AUTH)
//! and established. The first input byte picks the state and the side; the
//! rest is the datagram. Also, when the input is long enough, its SPIs are
//! replaced by the live SA's so the fuzzer gets past the SPI lookup.
#![no_main]

use ikeda_ike::Millis;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

#[path = "common/ikev2_pair.rs"]
mod ikev2_pair;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let a: SocketAddr = ikev2_pair::A.parse().unwrap();
    let b: SocketAddr = ikev2_pair::B.parse().unwrap();
    let mut p = ikev2_pair::pair("aes128gcm16,aes128-sha1");
    let steps = match sel % 4 {
        0 => 0,  // nothing yet
        1 => 1,  // IKE_SA_INIT request in flight
        2 => 2,  // responder answered IKE_SA_INIT
        _ => 50, // established
    };
    if steps > 0 {
        p.a.initiate("f", Millis::ZERO).unwrap();
        for _ in 0..steps {
            if !p.step() {
                break;
            }
        }
    }
    let mut msg = rest.to_vec();
    // Borrow live SPIs from the first message the initiator sent, if any.
    if sel & 0x80 != 0 && msg.len() >= 16 {
        while let Some(t) = p.a.poll_transmit() {
            if t.data.len() >= 16 {
                msg[..16].copy_from_slice(&t.data[..16]);
            }
        }
    }
    let now = p.now;
    if sel & 0x40 != 0 {
        p.a.handle_datagram(now, a, b, &msg);
    } else {
        p.b.handle_datagram(now, b, a, &msg);
    }
    p.b.handle_timeout(Millis(now.0 + 1_000_000));
    p.a.handle_timeout(Millis(now.0 + 1_000_000));
    while p.a.poll_event().is_some() {}
    while p.b.poll_event().is_some() {}
});
