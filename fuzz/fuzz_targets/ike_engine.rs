//! The engine the daemon drives, with an IKEv2 and an IKEv1 connection to
//! the same peer on one UDP 500, fed arbitrary datagrams after the two
//! tunnels got some way up. Byte 0: the side that receives (0x01); how many
//! batches of datagrams the two gateways exchanged first (bits 1-4: 0 to
//! 15: before any SA, every step of IKE_SA_INIT, IKE_AUTH, Main Mode and
//! Quick Mode, established); whether the datagram borrows the SPIs or
//! cookies of the last datagram of one version (0x20; 0x40 picks IKEv1),
//! so the fuzzer gets past the lookup; whether its version octet is forced
//! to that version (0x80), so the dispatch is what is fuzzed. The rest is
//! the datagram. Whatever the bytes: no panic, and both engines keep
//! answering timers and views.
#![no_main]

#[path = "common/spec.rs"]
mod spec;

use ikeda_crypto::ike::SeededRng;
use ikeda_ike::ikev1::V1ConnSpec;
use ikeda_ike::{Connection, Engine, Millis};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

fn conns(local: [u8; 4], remote: [u8; 4], first: bool) -> Vec<Connection> {
    let spec = |name: &str, ike: &str, esp: &str, l: u8, r: u8| {
        let (l, r) = if first { (l, r) } else { (r, l) };
        spec::spec(name, (local, remote), ([10, l, 0, 0], [10, r, 0, 0]), ike, esp)
    };
    vec![
        Connection::V2(spec("v2", "aes128gcm16-prfsha256-x25519", "aes128gcm16", 1, 2)),
        Connection::V1(V1ConnSpec {
            spec: spec("v1", "aes128-sha256-ecp256", "aes128-sha1", 3, 4),
            aggressive: false,
            compress: false,
        }),
    ]
}

fn engine(local: [u8; 4], remote: [u8; 4], first: bool, seed: u64) -> Engine {
    let mut k = 0;
    Engine::new(conns(local, remote, first), move || {
        k += 1;
        Box::new(SeededRng::from_u64(seed << 4 | k))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let (sa, sb): (SocketAddr, SocketAddr) = ("10.0.0.1:500".parse().unwrap(), "10.0.0.2:500".parse().unwrap());
    let mut a = engine([10, 0, 0, 1], [10, 0, 0, 2], true, 1);
    let mut b = engine([10, 0, 0, 2], [10, 0, 0, 1], false, 2);
    let mut now = Millis(0);
    let mut last = [None::<Vec<u8>>, None];
    a.initiate("v2", now).unwrap();
    a.initiate("v1", now).unwrap();
    for _ in 0..(sel >> 1) & 0x0f {
        now = Millis(now.0 + 1);
        while let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, sb, sa, &t.data);
            let k = usize::from(ikeda_wire::ike_major_version(&t.data) == Some(1));
            last[k] = Some(t.data);
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, sa, sb, &t.data);
            let k = usize::from(ikeda_wire::ike_major_version(&t.data) == Some(1));
            last[k] = Some(t.data);
        }
        while a.poll_event().is_some() || b.poll_event().is_some() {}
    }
    let v1 = sel & 0x40 != 0;
    let mut msg = rest.to_vec();
    if sel & 0x20 != 0 && msg.len() >= 16 {
        if let Some(l) = &last[usize::from(v1)] {
            msg[..16].copy_from_slice(&l[..16]);
        }
    }
    if sel & 0x80 != 0 && msg.len() > 17 {
        msg[17] = if v1 { 0x10 } else { 0x20 };
    }
    let (to, local, remote) = if sel & 0x01 != 0 {
        (&mut b, sb, sa)
    } else {
        (&mut a, sa, sb)
    };
    to.handle_datagram(now, local, remote, &msg);
    for later in [1_000, 100_000, 10_000_000] {
        let t = Millis(now.0 + later);
        for e in [&mut a, &mut b] {
            while e.poll_transmit().is_some() {}
            e.handle_timeout(t);
            let _ = e.poll_timeout();
            let _ = e.ike_sas();
            let _ = e.counters();
            while e.poll_event().is_some() {}
        }
    }
});
