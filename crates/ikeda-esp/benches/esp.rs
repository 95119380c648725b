//! ESP data-plane micro benchmark: in-place encapsulation and
//! decapsulation per algorithm and inner packet size, next to a raw
//! aws-lc-rs AES-128-GCM seal of the same number of bytes.
//!
//! `cargo bench -p ikeda-esp --bench esp [-- FILTER]` (FILTER: substring of
//! an algorithm name). No harness: std::time::Instant, a warm-up that also
//! calibrates the iteration count, then the median of 5 runs of ~60 ms.
//!
//! * encap: copy the inner packet into a reused buffer (the payload is
//!   encrypted in place, so it must be restored) + `OutboundSa::encapsulate`.
//!   The copy is included; its cost alone is printed under the table. The
//!   SA's counters are published every 64 packets, as the data plane does
//!   once per batch.
//! * decap: `InboundSa::decapsulate` in place over an arena of packets
//!   sealed beforehand (untimed) with consecutive sequence numbers, in
//!   order, replay window 4096; each arena is refilled with fresh packets.
//! * raw GCM: `LessSafeKey::seal_in_place_separate_tag` over `size` bytes
//!   with an 8-byte AAD, as ESP's AES-GCM does.
//! * ESP against raw (issue 14's seal figure): aes128gcm16 encapsulation in
//!   place without the bench's copy, run in turn with a raw seal of the
//!   same bytes (inner packet, padding, trailer), 41 rounds of ~10 ms each,
//!   the median of the per-round ratios; the raw seal both with its tag
//!   apart and with it written in place, as ESP's ICV is. Taking turns
//!   matters: on these shared machines a run can be 40 % slower than the
//!   one before it.
//! * IPComp (aes128gcm16 with DEFLATE, RFC 3173): encapsulation with a
//!   per-thread compressor as the data plane keeps it, and decapsulation
//!   with decompression, for a compressible packet (a UDP payload counting
//!   0, 1, 2, ...) and an incompressible one (random bytes, which go out
//!   uncompressed after the attempt).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_esp::{AddrRange, Encap, InboundSa, IpcompParams, IpcompScratch, OutboundSa, SaParams, Selector};
use ikeda_wire::esp::Trailer;
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip::build_ipv4;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [64, 512, 1400];
const RUNS: usize = 5;
/// Rounds of a paired measurement (see [`measure_pair`]).
const PAIRED_RUNS: usize = 41;
/// Length of one side of a paired round.
const PAIRED_RUN_TIME: Duration = Duration::from_millis(10);
/// Length of one measured run.
const RUN_TIME: Duration = Duration::from_millis(60);
/// Warm-up / calibration: at least this long.
const WARM_TIME: Duration = Duration::from_millis(30);
/// Packets per decapsulation arena.
const ARENA_PKTS: usize = 2048;

fn key(n: usize, seed: u8) -> SecretBytes {
    SecretBytes::new((0..n).map(|i| seed ^ (i as u8).wrapping_mul(7)).collect())
}

/// One direction's parameters; the receiver's selectors mirror the sender's
/// (packets go 10.1.0.0/16 -> 10.2.0.0/16).
fn params(alg: EspAlgorithm, receiver: bool) -> SaParams {
    let (l, r) = if receiver {
        ("10.2.0.0/16", "10.1.0.0/16")
    } else {
        ("10.1.0.0/16", "10.2.0.0/16")
    };
    SaParams {
        spi: 0x1001,
        algorithm: alg,
        enc_key: key(alg.enc_key_len(), 1),
        auth_key: (alg.auth_key_len() > 0).then(|| key(alg.auth_key_len(), 0x54)),
        esn: false,
        replay_window: 4096,
        local: "192.0.2.1:4500".parse().unwrap(),
        remote: "192.0.2.2:4500".parse().unwrap(),
        encap: Encap::Udp,
        selectors: vec![Selector::new(
            AddrRange::parse(l).unwrap(),
            AddrRange::parse(r).unwrap(),
        )],
        ipcomp: None,
    }
}

fn with_ipcomp(mut p: SaParams) -> SaParams {
    p.ipcomp = Some(IpcompParams {
        cpi_out: 0x1234,
        cpi_in: 0x1234,
    });
    p
}

/// An IPv4/UDP packet of exactly `size` bytes.
fn inner_packet(size: usize) -> Vec<u8> {
    let mut udp: Vec<u8> = (0..size - 20).map(|i| i as u8).collect();
    udp[..8].copy_from_slice(&[
        0x30,
        0x39,
        0x00,
        0x35,
        ((size - 20) >> 8) as u8,
        (size - 20) as u8,
        0,
        0,
    ]);
    let p = build_ipv4(
        Ipv4Addr::new(10, 1, 0, 1),
        Ipv4Addr::new(10, 2, 0, 1),
        IpProtocol::UDP,
        &udp,
    );
    assert_eq!(p.len(), size);
    p
}

/// `run(n)` performs `n` operations and returns the time they took (only
/// the part to be measured). Warm up and calibrate, then return the median
/// of `RUNS` runs in ns per operation.
fn measure(mut run: impl FnMut(u64) -> Duration) -> f64 {
    let mut n = 16u64;
    let mut warm = Duration::ZERO;
    let per_op = loop {
        let t = run(n);
        warm += t;
        if warm >= WARM_TIME && t >= WARM_TIME / 4 {
            break t.as_secs_f64() / n as f64;
        }
        if t < WARM_TIME / 4 {
            n *= 2;
        }
    };
    let iters = ((RUN_TIME.as_secs_f64() / per_op) as u64).max(1);
    let mut v: Vec<f64> = (0..RUNS).map(|_| run(iters).as_nanos() as f64 / iters as f64).collect();
    v.sort_by(f64::total_cmp);
    v[RUNS / 2]
}

fn bench_encap(alg: EspAlgorithm, inner: &[u8]) -> f64 {
    let mut sa = OutboundSa::new(&params(alg, false)).unwrap();
    let room = sa.room();
    let (head, len) = (room.head, inner.len());
    let mut buf = vec![0u8; head + len + room.tail];
    measure(|n| {
        let t = Instant::now();
        for i in 0..n {
            buf[head..head + len].copy_from_slice(inner);
            let r = sa.encapsulate(&mut buf, head, len, 0).unwrap();
            black_box((&buf, r));
            // The data plane publishes the counters once per batch of 64.
            if i % 64 == 63 {
                sa.flush_stats();
            }
        }
        sa.flush_stats();
        t.elapsed()
    })
}

/// IPComp + ESP: (encap ns, decap ns, ESP bytes on the wire).
fn bench_ipcomp(alg: EspAlgorithm, inner: &[u8]) -> (f64, f64, usize) {
    let mut tx = OutboundSa::new(&with_ipcomp(params(alg, false))).unwrap();
    let mut rx = InboundSa::new(&with_ipcomp(params(alg, true))).unwrap();
    let room = tx.room();
    let (head, len) = (room.head, inner.len());
    let mut scratch = IpcompScratch::default();
    let mut buf = vec![0u8; head + len + room.tail];
    let enc = measure(|n| {
        let t = Instant::now();
        for _ in 0..n {
            buf[head..head + len].copy_from_slice(inner);
            let r = tx.encapsulate_with(&mut buf, head, len, &mut scratch, 0).unwrap();
            black_box((&buf, r));
        }
        t.elapsed()
    });
    // Decapsulation: a fresh packet per iteration (the replay window), so
    // encapsulate untimed between the timed decapsulations.
    let mut rx_scratch = IpcompScratch::default();
    let mut wire = 0;
    let mut slot = vec![0u8; 2048];
    let dec = measure(|n| {
        let mut spent = Duration::ZERO;
        for _ in 0..n {
            slot[head..head + len].copy_from_slice(inner);
            let r = tx.encapsulate_with(&mut slot, head, len, &mut scratch, 0).unwrap();
            wire = r.len();
            let t = Instant::now();
            let got = rx
                .decapsulate_in(&mut slot, r.start, r.len(), &mut rx_scratch, 0)
                .unwrap();
            spent += t.elapsed();
            black_box(got);
        }
        spent
    });
    (enc, dec, wire)
}

fn bench_copy(inner: &[u8]) -> f64 {
    let mut buf = vec![0u8; 64 + inner.len()];
    measure(|n| {
        let t = Instant::now();
        for _ in 0..n {
            buf[64..].copy_from_slice(black_box(inner));
            black_box(&mut buf);
        }
        t.elapsed()
    })
}

fn bench_decap(alg: EspAlgorithm, inner: &[u8]) -> f64 {
    let mut tx = OutboundSa::new(&params(alg, false)).unwrap();
    let mut rx = InboundSa::new(&params(alg, true)).unwrap();
    let room = tx.room();
    let len = inner.len();
    // Each slot holds head room + inner + tail room; sealed in place at
    // offset `head`, the ESP packet then starts at the slot's start.
    let stride = (room.head + len + room.tail).next_multiple_of(64);
    let mut arena = vec![0u8; stride * ARENA_PKTS];
    let mut esp_len = 0;
    // Check once that the packets open to what was sent.
    {
        let mut slot = vec![0u8; stride];
        slot[room.head..room.head + len].copy_from_slice(inner);
        let r = tx.encapsulate(&mut slot, room.head, len, 0).unwrap();
        let got = rx.decapsulate(&mut slot[r], 0).unwrap();
        assert_eq!(&slot[got], inner, "{alg}: roundtrip");
    }
    measure(|n| {
        let mut left = n as usize;
        let mut spent = Duration::ZERO;
        while left > 0 {
            let k = left.min(ARENA_PKTS);
            for slot in arena.chunks_exact_mut(stride).take(k) {
                slot[room.head..room.head + len].copy_from_slice(inner);
                let r = tx.encapsulate(slot, room.head, len, 0).unwrap();
                esp_len = r.end;
            }
            let t = Instant::now();
            for slot in arena.chunks_exact_mut(stride).take(k) {
                let r = rx.decapsulate(&mut slot[..esp_len], 0).unwrap();
                black_box(r);
            }
            spent += t.elapsed();
            left -= k;
        }
        spent
    })
}

/// How a raw seal hands back its tag.
#[derive(Clone, Copy, PartialEq)]
enum Tag {
    /// `seal_in_place_separate_tag`: a `Tag` value (the common API).
    Apart,
    /// `seal_in_place_scatter`: written into the buffer after the
    /// ciphertext, as ESP's ICV is.
    InPlace,
}

/// A raw aws-lc-rs AES-128-GCM seal of `size` bytes in place, with an
/// 8-byte AAD as ESP's: `run(n)` seals `n` times.
fn raw_gcm(size: usize, how: Tag) -> impl FnMut(u64) -> Duration {
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).unwrap());
    let mut buf = vec![0x5au8; size + 16];
    let mut seq = 0u64;
    move |n| {
        let t = Instant::now();
        for _ in 0..n {
            seq += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&seq.to_be_bytes());
            let mut aad = [0u8; 8];
            aad[..4].copy_from_slice(&0x1001u32.to_be_bytes());
            aad[4..].copy_from_slice(&(seq as u32).to_be_bytes());
            let nonce = Nonce::assume_unique_for_key(nonce);
            let (data, tag) = buf.split_at_mut(size);
            if how == Tag::Apart {
                let t = key.seal_in_place_separate_tag(nonce, Aad::from(aad), data).unwrap();
                let _ = black_box(t);
            } else {
                key.seal_in_place_scatter(nonce, Aad::from(aad), data, &[], tag)
                    .unwrap();
                black_box(&tag[0]);
            }
        }
        t.elapsed()
    }
}

fn bench_raw_gcm(size: usize) -> f64 {
    measure(raw_gcm(size, Tag::Apart))
}

/// AES-128-GCM encapsulation without the bench's copy of the inner packet:
/// the payload is sealed in place again and again, as the raw seal does,
/// and only its first byte (the IP version, which `encapsulate` checks) is
/// put back. In the data plane the inner packet is read into the buffer by
/// the TUN `read()`, so no copy of ours precedes the seal. Two buffers take
/// turns, and each one's byte is put back while the other is sealed: a
/// byte written just before the cipher's 64-byte loads read it would stall
/// them (a store that cannot be forwarded), which the TUN's copy, long
/// done by then, does not.
fn encap_in_place(inner: &[u8]) -> impl FnMut(u64) -> Duration {
    let mut sa = OutboundSa::new(&params(EspAlgorithm::AesGcm16 { key_bits: 128 }, false)).unwrap();
    let room = sa.room();
    let (head, len) = (room.head, inner.len());
    let mut bufs = [vec![0u8; head + len + room.tail], vec![0u8; head + len + room.tail]];
    for b in &mut bufs {
        b[head..head + len].copy_from_slice(inner);
    }
    let version = inner[0];
    // Which buffer is next, across runs.
    let mut turn = 0u64;
    // The data plane's per-thread scratch (unused without IPComp).
    let mut scratch = IpcompScratch::default();
    move |n| {
        let t = Instant::now();
        for i in 0..n {
            let (a, b) = bufs.split_at_mut(1);
            let (this, next) = if turn.is_multiple_of(2) {
                (&mut a[0], &mut b[0])
            } else {
                (&mut b[0], &mut a[0])
            };
            turn += 1;
            next[head] = version;
            let r = sa.encapsulate_with(this, head, len, &mut scratch, 0).unwrap();
            black_box(r.end);
            if i % 64 == 63 {
                sa.flush_stats();
            }
        }
        sa.flush_stats();
        t.elapsed()
    }
}

/// Calibrate each of `a` and `b` to ~`PAIRED_RUN_TIME`, then run them in turn,
/// `PAIRED_RUNS` times, so that the machine's noise (these machines share
/// their cores) falls on both alike. Returns the median ns per operation of
/// each and the median of the per-round ratios `b / a`.
fn measure_pair(mut a: impl FnMut(u64) -> Duration, mut b: impl FnMut(u64) -> Duration) -> (f64, f64, f64) {
    let iters = |run: &mut dyn FnMut(u64) -> Duration| {
        let mut n = 16u64;
        let mut warm = Duration::ZERO;
        loop {
            let t = run(n);
            warm += t;
            if warm >= WARM_TIME && t >= WARM_TIME / 4 {
                break ((PAIRED_RUN_TIME.as_secs_f64() / (t.as_secs_f64() / n as f64)) as u64).max(1);
            }
            if t < WARM_TIME / 4 {
                n *= 2;
            }
        }
    };
    let (na, nb) = (iters(&mut a), iters(&mut b));
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rounds: Vec<(f64, f64)> = (0..PAIRED_RUNS)
        .map(|_| {
            let ta = a(na).as_nanos() as f64 / na as f64;
            let tb = b(nb).as_nanos() as f64 / nb as f64;
            (ta, tb)
        })
        .collect();
    (
        median(rounds.iter().map(|r| r.0).collect()),
        median(rounds.iter().map(|r| r.1).collect()),
        median(rounds.iter().map(|r| r.1 / r.0).collect()),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters algorithms.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let started = Instant::now();
    let raw: Vec<f64> = SIZES.iter().map(|&s| bench_raw_gcm(s)).collect();
    let copy: Vec<f64> = SIZES.iter().map(|&s| bench_copy(&inner_packet(s))).collect();

    println!(
        "{:<18} {:>5} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "algorithm", "size", "encap ns/pkt", "decap ns/pkt", "encap Gbit/s", "decap Gbit/s", "raw GCM ns"
    );
    for alg in EspAlgorithm::all() {
        let name = alg.name();
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        for (i, &size) in SIZES.iter().enumerate() {
            let inner = inner_packet(size);
            let enc = bench_encap(alg, &inner);
            let dec = bench_decap(alg, &inner);
            let gbps = |ns: f64| size as f64 * 8.0 / ns;
            println!(
                "{:<18} {:>5} {:>12.1} {:>12.1} {:>12.2} {:>12.2} {:>12.1}",
                name,
                size,
                enc,
                dec,
                gbps(enc),
                gbps(dec),
                raw[i]
            );
        }
    }
    let gcm = EspAlgorithm::AesGcm16 { key_bits: 128 };
    if filter.is_empty() || filter.iter().any(|f| "ipcomp".contains(f.as_str())) {
        println!(
            "\n{:<30} {:>5} {:>12} {:>12} {:>12}",
            "IPComp deflate + aes128gcm16", "size", "encap ns/pkt", "decap ns/pkt", "ESP bytes"
        );
        let mut x = 0x9e37_79b9u32;
        for &size in &SIZES[1..] {
            let counting = inner_packet(size);
            let mut random = counting.clone();
            for b in &mut random[28..] {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            for (what, p) in [("compressible", &counting), ("random (sent uncompressed)", &random)] {
                let (enc, dec, wire) = bench_ipcomp(gcm, p);
                println!("{what:<30} {size:>5} {enc:>12.1} {dec:>12.1} {wire:>12}");
            }
        }
    }
    println!();
    for (i, &size) in SIZES.iter().enumerate() {
        println!(
            "size {size:>4}: inner-packet copy (included in encap above) = {:.1} ns",
            copy[i]
        );
    }
    if filter.is_empty() || filter.iter().any(|f| gcm.name().contains(f.as_str())) {
        // Issue 14's figure: ESP seal per core against the raw aws-lc seal,
        // measured in turn so that noise falls on both alike. ESP seals the
        // inner packet, its padding and the 2-byte trailer (RFC 4303 §2.4,
        // §2.6): the raw seal of those same bytes is the reference; the raw
        // seal of the inner packet alone is printed beside it.
        println!(
            "\nESP encapsulation (aes128gcm16, in place, no copy of the inner packet) against a raw aws-lc seal,\n\
             each pair run in turn {PAIRED_RUNS} times; ratio = raw ns / ESP ns (median of the rounds)"
        );
        println!(
            "{:>5} {:>7} {:>9} {:>16} {:>17} {:>19}",
            "size", "sealed", "ESP ns", "raw ns (tag apart)", "ratio (tag apart)", "ratio (tag in place)"
        );
        for &size in &SIZES {
            let inner = inner_packet(size);
            let sealed = size + Trailer::pad_for(size, gcm.block_align()) + ikeda_wire::esp::TRAILER_LEN;
            let (raw_ns, esp_ns, apart) = measure_pair(raw_gcm(sealed, Tag::Apart), encap_in_place(&inner));
            let (_, _, in_place) = measure_pair(raw_gcm(sealed, Tag::InPlace), encap_in_place(&inner));
            println!(
                "{size:>5} {sealed:>7} {esp_ns:>9.1} {raw_ns:>16.1} {:>17.3} {:>19.3}",
                1.0 / apart,
                1.0 / in_place
            );
        }
    }
    println!(
        "(median of {RUNS} runs of ~{} ms each; total {:.1} s)",
        RUN_TIME.as_millis(),
        started.elapsed().as_secs_f64()
    );
}
