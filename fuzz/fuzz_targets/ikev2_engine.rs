//! The IKEv2 engine fed arbitrary datagrams in every state: before any SA,
//! half-open (initiator after IKE_SA_INIT, responder waiting for IKE_AUTH)
//! and established. The first input byte picks the state and the side; the
//! rest is the datagram. Also, when the input is long enough, its SPIs are
//! replaced by the live SA's so the fuzzer gets past the SPI lookup.
#![no_main]

use ikeda_crypto::ike::{parse_esp_proposals, parse_ike_proposals, SeededRng};
use ikeda_crypto::SecretBytes;
use ikeda_ike::ikev2::{ConnSpec, Engine, Timers};
use ikeda_ike::sim::Pair;
use ikeda_ike::Millis;
use ikeda_wire::ikev2::{IdPayload, TsRange};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

fn spec(local: [u8; 4], remote: [u8; 4], l: [u8; 4], r: [u8; 4]) -> ConnSpec {
    let ts = |a: [u8; 4]| TsRange::addresses(a.into(), [a[0], a[1], a[2], 255].into());
    ConnSpec {
        name: "f".into(),
        local: local.into(),
        remote: remote.into(),
        local_id: IdPayload::ipv4(local.into()),
        remote_id: IdPayload::ipv4(remote.into()),
        psk: SecretBytes::new(b"fuzz".to_vec()),
        ike_proposals: parse_ike_proposals("aes128gcm16-prfsha256-x25519,aes128-sha256-modp2048").unwrap(),
        esp_proposals: parse_esp_proposals("aes128gcm16,aes128-sha1").unwrap(),
        local_ts: vec![ts(l)],
        remote_ts: vec![ts(r)],
        ts_pairs: Vec::new(),
        timers: Timers::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let a: SocketAddr = "10.0.0.1:500".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:500".parse().unwrap();
    let ea = Engine::new(vec![spec([10, 0, 0, 1], [10, 0, 0, 2], [10, 1, 0, 0], [10, 2, 0, 0])], Box::new(SeededRng::from_u64(1)));
    let eb = Engine::new(vec![spec([10, 0, 0, 2], [10, 0, 0, 1], [10, 2, 0, 0], [10, 1, 0, 0])], Box::new(SeededRng::from_u64(2)));
    let mut p = Pair::new(ea, a, eb, b, 3);
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
