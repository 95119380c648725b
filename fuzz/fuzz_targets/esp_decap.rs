//! ESP receive path on untrusted input, and an encapsulate/decapsulate
//! roundtrip of arbitrary inner packets.
//!
//! Input layout: byte 0 picks the algorithm (low 7 bits, modulo the number
//! of algorithms) and extended sequence numbers (high bit); the rest is
//! used three ways:
//!
//! 1. the whole input, unchanged, is fed to `Inbound::process` (unknown
//!    SPIs, truncation);
//! 2. the rest, with the chosen SA's SPI forced into its first 4 bytes, is
//!    fed to `Inbound::process`, so every cipher's open path is reached
//!    (replay check, length checks, ICV);
//! 3. the rest is sealed as an inner packet by `Outbound::process` through
//!    the matching outbound SA and decapsulated again. The SPD and the
//!    inbound selectors cover everything (0.0.0.0/0 <-> 0.0.0.0/0 and
//!    ::/0 <-> ::/0), so whenever the inner packet is a valid IPv4/IPv6
//!    packet the roundtrip must give it back (up to its claimed length);
//!    a tampered copy must be refused, and a replay of it too.
//!
//! No panics are allowed anywhere.

#![no_main]

use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_esp::{
    AddrRange, DropReason, Encap, Inbound, InboundSa, Outbound, OutboundSa, Policy, PolicyAction, SaParams, Selector, Spd,
};
use ikeda_wire::ip;
use libfuzzer_sys::fuzz_target;

const SPI_BASE: u32 = 0x0000_1000;

fn key(n: usize, seed: u8) -> SecretBytes {
    SecretBytes::new((0..n).map(|i| seed ^ (i as u8).wrapping_mul(7)).collect())
}

fn selectors() -> Vec<Selector> {
    let any = |s: &str| AddrRange::parse(s).unwrap();
    vec![Selector::new(any("0.0.0.0/0"), any("0.0.0.0/0")), Selector::new(any("::/0"), any("::/0"))]
}

/// Parameters of the SA for algorithm number `i` (same for both
/// directions, so an outbound SA's packets open on the inbound one).
fn params(i: usize, alg: EspAlgorithm, esn: bool) -> SaParams {
    let seed = 0x10 + i as u8;
    SaParams {
        spi: SPI_BASE + i as u32,
        algorithm: alg,
        enc_key: key(alg.enc_key_len(), seed),
        auth_key: (alg.auth_key_len() > 0).then(|| key(alg.auth_key_len(), seed ^ 0x55)),
        esn,
        replay_window: 64,
        local: "192.0.2.1:4500".parse().unwrap(),
        remote: "192.0.2.2:4500".parse().unwrap(),
        encap: Encap::Udp,
        selectors: selectors(),
        ipcomp: None,
    }
}

/// Decapsulate and check that what comes back is a sane range.
fn decap(inbound: &mut Inbound, pkt: &mut [u8]) -> Result<Vec<u8>, DropReason> {
    let len = pkt.len();
    let r = inbound.process(pkt, 1)?;
    assert!(r.start <= r.end && r.end <= len, "inner range {r:?} outside a {len}-byte packet");
    Ok(pkt[r].to_vec())
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let algs = EspAlgorithm::all();
    let idx = (ctl & 0x7f) as usize % algs.len();
    let esn = ctl & 0x80 != 0;
    let mut inbound = Inbound::new(algs.iter().enumerate().map(|(i, &a)| InboundSa::new(&params(i, a, esn)).unwrap()));

    // 1. The input as it is.
    let _ = decap(&mut inbound, &mut data.to_vec());

    // 2. The rest, aimed at the chosen SA.
    let mut pkt = rest.to_vec();
    if pkt.len() >= 4 {
        pkt[..4].copy_from_slice(&(SPI_BASE + idx as u32).to_be_bytes());
    }
    let _ = decap(&mut inbound, &mut pkt);

    // 3. Roundtrip of the rest as an inner packet.
    let p = params(idx, algs[idx], esn);
    let sa = OutboundSa::new(&p).unwrap();
    let policies = selectors().into_iter().map(|s| Policy::new("all", s, PolicyAction::Protect { sa: 0 })).collect();
    let mut outbound = Outbound::new(Spd::new(policies), vec![Some(sa)]);
    let room = outbound.max_room();
    let mut buf = vec![0u8; room.head + rest.len() + room.tail];
    buf[room.head..room.head + rest.len()].copy_from_slice(rest);
    let valid_ip = ip::flow_key(rest).is_ok();
    let range = match outbound.process(&mut buf, room.head, rest.len(), 1) {
        Ok((range, dest)) => {
            assert!(valid_ip, "sealed a packet whose flow key does not parse");
            assert_eq!(dest.remote, p.remote);
            range
        }
        Err(e) => {
            assert!(!valid_ip, "{} refused a valid inner packet ({} bytes): {e}", algs[idx], rest.len());
            assert_eq!(e, DropReason::NotIp);
            return;
        }
    };
    let sealed = buf[range].to_vec();
    let a = algs[idx];
    assert_eq!((sealed.len() - 8 - a.iv_len() - a.icv_len()) % a.block_align(), 0, "{a}: misaligned ciphertext");

    // A tampered copy (one bit, position derived from the input) must be
    // refused, and must not move the replay window.
    let sum = rest.iter().fold(0usize, |s, &b| s.wrapping_mul(31).wrapping_add(b as usize));
    let mut bad = sealed.clone();
    bad[sum % sealed.len()] ^= 1 << (rest.len() % 8);
    if let Ok(inner) = decap(&mut inbound, &mut bad) {
        panic!("{a} esn={esn}: tampered packet accepted ({} inner bytes)", inner.len());
    }

    let want_len = ip::claimed_len(rest).expect("claimed_len fails where flow_key succeeded");
    let inner = match decap(&mut inbound, &mut sealed.clone()) {
        Ok(inner) => inner,
        Err(e) => panic!("{a} esn={esn}: roundtrip of a valid {}-byte inner packet failed: {e}", rest.len()),
    };
    assert_eq!(inner, &rest[..want_len], "{a} esn={esn}: roundtrip changed the inner packet");
    assert_eq!(decap(&mut inbound, &mut sealed.clone()), Err(DropReason::Replayed), "{a} esn={esn}: replay accepted");
});
