//! Two gateways' data planes wired back to back, no I/O.

use super::*;
use ikeda_crypto::{EspAlgorithm, EspCipher, SecretBytes};
use ikeda_wire::esp::emit_header;
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip::{build_ipv4, build_ipv6};
use std::net::{IpAddr, Ipv4Addr};

const GW1: &str = "192.168.50.11:4500";
const GW2: &str = "192.168.50.12:4500";
const HEAD: usize = 64;

fn key(n: usize, seed: u8) -> SecretBytes {
    SecretBytes::new((0..n).map(|i| seed ^ (i as u8).wrapping_mul(7)).collect())
}

fn sel(l: &str, r: &str) -> Selector {
    Selector::new(AddrRange::parse(l).unwrap(), AddrRange::parse(r).unwrap())
}

/// The seed-style policy set, from gw1's point of view.
fn gw1_selectors() -> Vec<Selector> {
    vec![
        sel("192.168.11.0/24", "192.168.12.0/24"),
        sel("192.168.50.11", "192.168.12.0/24"),
        sel("192.168.11.0/24", "192.168.50.12"),
        sel("2001:db8:11::/48", "2001:db8:12::/48"),
    ]
}

fn mirror(s: &[Selector]) -> Vec<Selector> {
    s.iter().map(|s| Selector::new(s.remote, s.local)).collect()
}

fn params(
    alg: EspAlgorithm,
    spi: u32,
    seed: u8,
    esn: bool,
    local: &str,
    remote: &str,
    selectors: Vec<Selector>,
) -> SaParams {
    SaParams {
        spi,
        algorithm: alg,
        enc_key: key(alg.enc_key_len(), seed),
        auth_key: (alg.auth_key_len() > 0).then(|| key(alg.auth_key_len(), seed ^ 0x55)),
        esn,
        replay_window: 64,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        encap: Encap::Udp,
        selectors,
        ipcomp: None,
    }
}

struct Gw {
    out: Outbound,
    inb: Inbound,
}

/// gw1 -> gw2 uses SPI 0x1001, gw2 -> gw1 uses 0x2001.
fn pair(alg: EspAlgorithm, esn: bool) -> (Gw, Gw) {
    pair_with(alg, esn, [None, None])
}

/// [`pair`] with IPComp settings for gw1 and gw2.
fn pair_with(alg: EspAlgorithm, esn: bool, ipcomp: [Option<IpcompParams>; 2]) -> (Gw, Gw) {
    let s1 = gw1_selectors();
    let s2 = mirror(&s1);
    let mk = |spi_out, spi_in, seed_out, seed_in, local, remote, sels: Vec<Selector>, ipcomp| {
        let with = |mut p: SaParams| {
            p.ipcomp = ipcomp;
            p
        };
        let o = OutboundSa::new(&with(params(alg, spi_out, seed_out, esn, local, remote, sels.clone()))).unwrap();
        let i = InboundSa::new(&with(params(alg, spi_in, seed_in, esn, local, remote, sels.clone()))).unwrap();
        let pol = sels
            .iter()
            .map(|s| Policy::new("site", s.clone(), PolicyAction::Protect { sa: 0 }))
            .collect();
        Gw {
            out: Outbound::new(Spd::new(pol), vec![Some(o)]),
            inb: Inbound::new([i]),
        }
    };
    (
        mk(0x1001, 0x2001, 1, 2, GW1, GW2, s1, ipcomp[0]),
        mk(0x2001, 0x1001, 2, 1, GW2, GW1, s2, ipcomp[1]),
    )
}

fn icmp(src: [u8; 4], dst: [u8; 4], n: usize) -> Vec<u8> {
    let mut body = vec![8u8, 0, 0, 0];
    body.extend((0..n).map(|i| i as u8));
    build_ipv4(src.into(), dst.into(), IpProtocol::ICMP, &body)
}

/// Encapsulate `inner` on `from`, return the ESP packet bytes.
fn send(from: &mut Gw, inner: &[u8]) -> Result<(Vec<u8>, Destination), DropReason> {
    let mut buf = vec![0u8; HEAD + inner.len() + 64];
    buf[HEAD..HEAD + inner.len()].copy_from_slice(inner);
    let (r, d) = from.out.process(&mut buf, HEAD, inner.len(), 1000)?;
    Ok((buf[r].to_vec(), d))
}

fn recv(to: &mut Gw, esp: &[u8]) -> Result<Vec<u8>, DropReason> {
    let mut p = esp.to_vec();
    let r = to.inb.process(&mut p, 2000)?;
    Ok(p[r].to_vec())
}

#[test]
fn every_algorithm_carries_v4_and_v6_both_ways_at_many_sizes() {
    for alg in EspAlgorithm::all() {
        for esn in [false, true] {
            let (mut a, mut b) = pair(alg, esn);
            for n in [0usize, 1, 2, 3, 15, 16, 17, 100, 1372] {
                let p = icmp([192, 168, 11, 11], [192, 168, 12, 12], n);
                let (esp, d) = send(&mut a, &p).unwrap();
                assert_eq!(d.remote, GW2.parse().unwrap());
                assert_eq!((esp.len() - 8 - alg.iv_len() - alg.icv_len()) % alg.block_align(), 0);
                assert_eq!(recv(&mut b, &esp).unwrap(), p, "{alg} esn={esn} n={n}");
                let back = icmp([192, 168, 12, 12], [192, 168, 11, 11], n);
                let (esp, _) = send(&mut b, &back).unwrap();
                assert_eq!(recv(&mut a, &esp).unwrap(), back);
            }
            let p6 = build_ipv6(
                "2001:db8:11::11".parse().unwrap(),
                "2001:db8:12::12".parse().unwrap(),
                IpProtocol::ICMPV6,
                &[128, 0, 0, 0, 1, 2],
            );
            let (esp, _) = send(&mut a, &p6).unwrap();
            assert_eq!(recv(&mut b, &esp).unwrap(), p6);
            let sa = b.inb.sad.get(&0x1001).unwrap();
            assert_eq!(sa.stats.packets.load(std::sync::atomic::Ordering::Relaxed), 10);
        }
    }
}

#[test]
fn seed_policy_set_gateway_to_net_and_net_to_gateway() {
    let (mut a, mut b) = pair(EspAlgorithm::AesGcm16 { key_bits: 128 }, false);
    for (src, dst) in [
        ([192, 168, 50, 11], [192, 168, 12, 12]),
        ([192, 168, 11, 11], [192, 168, 50, 12]),
    ] {
        let p = icmp(src, dst, 8);
        let (esp, _) = send(&mut a, &p).unwrap();
        assert_eq!(recv(&mut b, &esp).unwrap(), p);
    }
    // Gateway to gateway is not in the set: the outer traffic itself.
    let p = icmp([192, 168, 50, 11], [192, 168, 50, 12], 8);
    assert_eq!(send(&mut a, &p).unwrap_err(), DropReason::NoPolicy);
    assert_eq!(a.out.drops.get(DropReason::NoPolicy), 1);
}

#[test]
fn discard_policy_and_missing_sa() {
    let (mut a, _) = pair(EspAlgorithm::AesGcm16 { key_bits: 128 }, false);
    a.out.spd.policies.insert(
        0,
        Policy::new("block", sel("192.168.11.66", "0.0.0.0/0"), PolicyAction::Discard),
    );
    assert_eq!(
        send(&mut a, &icmp([192, 168, 11, 66], [192, 168, 12, 12], 8)).unwrap_err(),
        DropReason::PolicyDiscard
    );
    a.out.sas[0] = None;
    assert_eq!(
        send(&mut a, &icmp([192, 168, 11, 11], [192, 168, 12, 12], 8)).unwrap_err(),
        DropReason::NoSa
    );
    assert_eq!(send(&mut a, b"\x00garbage").unwrap_err(), DropReason::NotIp);
    assert_eq!(a.out.drops.get(DropReason::PolicyDiscard), 1);
    assert_eq!(a.out.drops.get(DropReason::NoSa), 1);
    assert_eq!(a.out.drops.get(DropReason::NotIp), 1);
}

#[test]
fn bad_packets_are_dropped_with_a_reason_and_counted() {
    for alg in EspAlgorithm::all() {
        let (mut a, mut b) = pair(alg, false);
        let p = icmp([192, 168, 11, 11], [192, 168, 12, 12], 40);
        let (good, _) = send(&mut a, &p).unwrap();
        // truncated, at every length short of a minimal packet
        for n in 0..8 + alg.iv_len() + alg.icv_len() + 2 {
            assert_eq!(
                recv(&mut b, &good[..n]).unwrap_err(),
                DropReason::Truncated,
                "{alg} n={n}"
            );
        }
        // wrong SPI
        let mut w = good.clone();
        w[3] ^= 0xff;
        assert_eq!(recv(&mut b, &w).unwrap_err(), DropReason::UnknownSpi);
        // garbage with the right SPI
        let mut g: Vec<u8> = (0..good.len()).map(|i| (i * 31) as u8).collect();
        g[..8].copy_from_slice(&good[..8]);
        let e = recv(&mut b, &g).unwrap_err();
        assert!(
            matches!(e, DropReason::IcvMismatch | DropReason::BadCiphertextLength),
            "{alg}: {e}"
        );
        // tampered: flip one bit in the ciphertext, in the ICV
        for i in [8 + alg.iv_len() + 3, good.len() - 1] {
            let mut t = good.clone();
            t[i] ^= 0x10;
            assert_eq!(recv(&mut b, &t).unwrap_err(), DropReason::IcvMismatch);
        }
        // the genuine packet, then its replay
        assert_eq!(recv(&mut b, &good).unwrap(), p);
        assert_eq!(recv(&mut b, &good).unwrap_err(), DropReason::Replayed);
        // too old: advance the window by 64 (window size) packets
        let (old, _) = send(&mut a, &p).unwrap();
        for _ in 0..64 {
            let (x, _) = send(&mut a, &p).unwrap();
            recv(&mut b, &x).unwrap();
        }
        assert_eq!(recv(&mut b, &old).unwrap_err(), DropReason::ReplayTooOld);
        let d = &b.inb.drops;
        for r in [
            DropReason::Truncated,
            DropReason::UnknownSpi,
            DropReason::IcvMismatch,
            DropReason::Replayed,
            DropReason::ReplayTooOld,
        ] {
            assert!(d.get(r) > 0, "{alg}: no count for {r}");
        }
        let sa = b.inb.sad.get(&0x1001).unwrap();
        assert_eq!(sa.stats.drops.get(DropReason::Replayed), 1);
        assert_eq!(
            sa.stats.drops.get(DropReason::IcvMismatch),
            2 + (d.get(DropReason::IcvMismatch) - 2)
        );
    }
}

/// Build an authentic packet with a chosen plaintext tail, as a buggy or
/// malicious peer holding the keys could.
fn forge(alg: EspAlgorithm, seq: u32, plain: &[u8]) -> Vec<u8> {
    let p = params(alg, 0x1001, 1, false, GW1, GW2, vec![]);
    let c = EspCipher::new(alg, &p.enc_key, p.auth_key.as_ref()).unwrap();
    let mut pkt = vec![0u8; 8 + alg.iv_len() + plain.len() + alg.icv_len()];
    emit_header(&mut pkt, 0x1001, seq).unwrap();
    pkt[8 + alg.iv_len()..8 + alg.iv_len() + plain.len()].copy_from_slice(plain);
    c.seal(seq as u64, false, &mut pkt).unwrap();
    pkt
}

fn with_trailer(inner: &[u8], pad: &[u8], next: u8, align: usize) -> Vec<u8> {
    let mut v = inner.to_vec();
    v.extend_from_slice(pad);
    v.push(pad.len() as u8);
    v.push(next);
    assert_eq!(v.len() % align, 0, "test packet must be block aligned");
    v
}

#[test]
fn authentic_but_wrong_contents_are_dropped() {
    for alg in [
        EspAlgorithm::AesGcm16 { key_bits: 128 },
        EspAlgorithm::AesCbc {
            key_bits: 128,
            integ: ikeda_crypto::EspInteg::HmacSha1_96,
        },
        // 8-byte blocks: the trailer lands on a different alignment.
        EspAlgorithm::TripleDesCbc {
            integ: ikeda_crypto::EspInteg::HmacMd5_96,
        },
        // A 32-byte ICV after the trailer.
        EspAlgorithm::AesCbc {
            key_bits: 256,
            integ: ikeda_crypto::EspInteg::HmacSha512_256,
        },
    ] {
        let (_, mut b) = pair(alg, false);
        let align = alg.block_align();
        // An inner packet whose length makes the trailer land aligned with
        // a pad of exactly 2 bytes.
        let mut n = 20;
        let inner = loop {
            let p = icmp([192, 168, 11, 11], [192, 168, 12, 12], n);
            if (p.len() + 4).is_multiple_of(align) {
                break p;
            }
            n += 1;
        };
        let cases: &[(&[u8], u8, DropReason)] = &[
            (&[1, 3], 4, DropReason::BadPadding),
            (&[1, 2], 6, DropReason::BadNextHeader),
            (&[1, 2], 41, DropReason::BadNextHeader), // says IPv6, carries IPv4
            (&[1, 2], 59, DropReason::DummyPacket),
        ];
        for (i, (pad, next, want)) in cases.iter().enumerate() {
            let pt = with_trailer(&inner, pad, *next, align);
            let pkt = forge(alg, 100 + i as u32, &pt);
            assert_eq!(recv(&mut b, &pkt).unwrap_err(), *want, "{alg} case {i}");
        }
        // Pad Length pointing before the start of the payload.
        let mut pt = with_trailer(&inner, &[1, 2], 4, align);
        let l = pt.len();
        pt[l - 2] = 250;
        assert_eq!(recv(&mut b, &forge(alg, 200, &pt)).unwrap_err(), DropReason::BadTrailer);
        // Inner packet outside the selectors: 192.168.99.1 is not local.
        let stray = icmp([192, 168, 11, 11], [192, 168, 99, 1], inner.len() - 24);
        let pt = with_trailer(&stray, &[1, 2], 4, align);
        assert_eq!(
            recv(&mut b, &forge(alg, 201, &pt)).unwrap_err(),
            DropReason::SelectorMismatch
        );
        // Inner packet that is not IP at all.
        let mut junk = inner.clone();
        junk[0] = 0x45;
        junk[2] = 0xff; // total length beyond the data
        let pt = with_trailer(&junk, &[1, 2], 4, align);
        assert_eq!(
            recv(&mut b, &forge(alg, 202, &pt)).unwrap_err(),
            DropReason::InnerMalformed
        );
        for r in [
            DropReason::BadPadding,
            DropReason::BadNextHeader,
            DropReason::DummyPacket,
            DropReason::BadTrailer,
            DropReason::SelectorMismatch,
            DropReason::InnerMalformed,
        ] {
            assert!(b.inb.drops.get(r) > 0, "no count for {r}");
        }
    }
}

#[test]
fn sender_never_wraps_32bit_sequence_numbers() {
    let alg = EspAlgorithm::AesGcm16 { key_bits: 128 };
    let (mut a, _) = pair(alg, false);
    let sa = a.out.sas[0].take().unwrap().with_last_seq(u32::MAX as u64 - 1);
    a.out.sas[0] = Some(sa);
    let p = icmp([192, 168, 11, 11], [192, 168, 12, 12], 8);
    let (esp, _) = send(&mut a, &p).unwrap();
    assert_eq!(&esp[4..8], &u32::MAX.to_be_bytes());
    assert_eq!(send(&mut a, &p).unwrap_err(), DropReason::SeqExhausted);
    assert_eq!(send(&mut a, &p).unwrap_err(), DropReason::SeqExhausted);
    assert!(a.out.sas[0].as_ref().unwrap().is_exhausted());
    assert_eq!(a.out.drops.get(DropReason::SeqExhausted), 2);
}

/// A manually keyed SA sends only numbers its owner has reserved on disk:
/// at the ceiling it holds back (counted) until the ceiling moves, and then
/// goes on from where it stopped, skipping and repeating nothing.
#[test]
fn sender_stops_at_the_reserved_ceiling_and_resumes_when_it_moves() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let alg = EspAlgorithm::AesGcm16 { key_bits: 128 };
    let (mut a, mut b) = pair(alg, false);
    let ceiling = std::sync::Arc::new(AtomicU64::new(2));
    let sa = a.out.sas[0].take().unwrap().with_seq_ceiling(ceiling.clone());
    a.out.sas[0] = Some(sa);
    let p = icmp([192, 168, 11, 11], [192, 168, 12, 12], 8);
    for want in 1..=2u32 {
        let (esp, _) = send(&mut a, &p).unwrap();
        assert_eq!(&esp[4..8], &want.to_be_bytes());
        assert_eq!(recv(&mut b, &esp).unwrap(), p);
    }
    assert_eq!(send(&mut a, &p).unwrap_err(), DropReason::SeqNotReserved);
    assert_eq!(a.out.drops.get(DropReason::SeqNotReserved), 1);
    assert!(!a.out.sas[0].as_ref().unwrap().is_exhausted());
    ceiling.store(3, Ordering::Release);
    let (esp, _) = send(&mut a, &p).unwrap();
    assert_eq!(&esp[4..8], &3u32.to_be_bytes());
    assert_eq!(recv(&mut b, &esp).unwrap(), p);
    assert_eq!(send(&mut a, &p).unwrap_err(), DropReason::SeqNotReserved);
}

#[test]
fn esn_crosses_the_32bit_boundary_and_stops_at_64() {
    let alg = EspAlgorithm::AesCbc {
        key_bits: 256,
        integ: ikeda_crypto::EspInteg::HmacSha256_128,
    };
    let (mut a, mut b) = pair(alg, true);
    let start = u32::MAX as u64 - 3;
    let sa = a.out.sas[0].take().unwrap().with_last_seq(start);
    a.out.sas[0] = Some(sa);
    // The receiver's window must be near too (as after 2^32 packets).
    b.inb.sad.get_mut(&0x1001).unwrap().replay_window_mut().commit(start);
    let p = icmp([192, 168, 11, 11], [192, 168, 12, 12], 8);
    for i in 1..=8u64 {
        let (esp, _) = send(&mut a, &p).unwrap();
        assert_eq!(&esp[4..8], &((start + i) as u32).to_be_bytes());
        assert_eq!(recv(&mut b, &esp).unwrap(), p, "seq {}", start + i);
    }
    assert_eq!(b.inb.sad.get(&0x1001).unwrap().replay_window().top(), start + 8);
    let sa = a.out.sas[0].take().unwrap().with_last_seq(u64::MAX - 1);
    a.out.sas[0] = Some(sa);
    send(&mut a, &p).unwrap();
    assert_eq!(send(&mut a, &p).unwrap_err(), DropReason::SeqExhausted);
}

/// RFC 4868's longer pair: 24- and 32-byte ICVs after the ciphertext.
#[test]
fn hmac_sha2_384_and_512_carry_traffic_and_every_icv_byte_counts() {
    use ikeda_crypto::EspInteg::{HmacSha384_192, HmacSha512_256};
    for (integ, icv) in [(HmacSha384_192, 24), (HmacSha512_256, 32)] {
        for alg in [
            EspAlgorithm::AesCbc { key_bits: 128, integ },
            EspAlgorithm::AesCbc { key_bits: 256, integ },
            EspAlgorithm::TripleDesCbc { integ },
        ] {
            assert_eq!(alg.icv_len(), icv);
            for esn in [false, true] {
                let (mut a, mut b) = pair(alg, esn);
                let p = icmp([192, 168, 11, 11], [192, 168, 12, 12], 61);
                let (esp, _) = send(&mut a, &p).unwrap();
                // header, IV, payload padded to the block, ICV
                let body = p.len() + 2;
                let padded = body.div_ceil(alg.block_align()) * alg.block_align();
                assert_eq!(esp.len(), 8 + alg.iv_len() + padded + icv, "{alg}");
                for i in esp.len() - icv..esp.len() {
                    let mut t = esp.clone();
                    t[i] ^= 0x80;
                    assert_eq!(recv(&mut b, &t).unwrap_err(), DropReason::IcvMismatch, "{alg} byte {i}");
                }
                // An ICV cut to SHA-256's 16 bytes (a peer that truncates
                // wrongly): the packet is misparsed and refused, by length
                // when the cut leaves the ciphertext off the block size.
                let cut = &esp[..esp.len() - (icv - 16)];
                let aligned = (icv - 16) % alg.block_align() == 0;
                let want = if aligned {
                    DropReason::IcvMismatch
                } else {
                    DropReason::BadCiphertextLength
                };
                assert_eq!(recv(&mut b, cut).unwrap_err(), want, "{alg}: 16-byte ICV");
                assert_eq!(recv(&mut b, &esp).unwrap(), p, "{alg} esn={esn}");
                let back = icmp([192, 168, 12, 12], [192, 168, 11, 11], 1372);
                let (esp, _) = send(&mut b, &back).unwrap();
                assert_eq!(recv(&mut a, &esp).unwrap(), back);
                let sa = b.inb.sad.get(&0x1001).unwrap();
                assert_eq!(
                    sa.stats.drops.get(DropReason::IcvMismatch),
                    icv as u64 + aligned as u64,
                    "{alg}"
                );
            }
        }
    }
    // ESN across the 32-bit boundary: Seq-hi enters the HMAC-SHA-512 input.
    let alg = EspAlgorithm::AesCbc {
        key_bits: 256,
        integ: HmacSha512_256,
    };
    let (mut a, mut b) = pair(alg, true);
    let start = u32::MAX as u64 - 1;
    let sa = a.out.sas[0].take().unwrap().with_last_seq(start);
    a.out.sas[0] = Some(sa);
    b.inb.sad.get_mut(&0x1001).unwrap().replay_window_mut().commit(start);
    let p = icmp([192, 168, 11, 11], [192, 168, 12, 12], 8);
    for i in 1..=4u64 {
        let (esp, _) = send(&mut a, &p).unwrap();
        assert_eq!(recv(&mut b, &esp).unwrap(), p, "seq {}", start + i);
    }
    assert_eq!(b.inb.sad.get(&0x1001).unwrap().replay_window().top(), start + 4);
}

#[test]
fn ipv6_outer_addresses_are_carried_to_the_destination() {
    let alg = EspAlgorithm::ChaCha20Poly1305;
    let sels = vec![sel("10.1.0.0/16", "10.2.0.0/16")];
    let o = OutboundSa::new(&params(
        alg,
        0x3001,
        3,
        false,
        "[2001:db8::1]:4500",
        "[2001:db8::2]:4500",
        sels.clone(),
    ))
    .unwrap();
    let mut out = Outbound::new(
        Spd::new(vec![Policy::new(
            "v6",
            sels[0].clone(),
            PolicyAction::Protect { sa: 0 },
        )]),
        vec![Some(o)],
    );
    let p = icmp([10, 1, 0, 1], [10, 2, 0, 1], 4);
    let mut buf = vec![0u8; 256];
    buf[HEAD..HEAD + p.len()].copy_from_slice(&p);
    let (_, d) = out.process(&mut buf, HEAD, p.len(), 0).unwrap();
    assert_eq!(d.remote.ip(), "2001:db8::2".parse::<IpAddr>().unwrap());
    let _ = Ipv4Addr::LOCALHOST;
}

// ---- IPComp (RFC 3173, RFC 2394) -------------------------------------------------

mod ipcomp {
    use super::*;
    use crate::ipcomp::{IpcompStats, COMPRESS_THRESHOLD, MAX_DECOMPRESSED};
    use ikeda_wire::ipcomp::{IpcompPacket, IpcompRepr};
    use std::sync::atomic::Ordering::Relaxed;

    const GCM: EspAlgorithm = EspAlgorithm::AesGcm16 { key_bits: 128 };
    /// gw1 sends with CPI 0x1234 (gw2's choice) and receives 0x4321.
    const GW1_IPCOMP: IpcompParams = IpcompParams {
        cpi_out: 0x1234,
        cpi_in: 0x4321,
    };
    const GW2_IPCOMP: IpcompParams = IpcompParams {
        cpi_out: 0x4321,
        cpi_in: 0x1234,
    };

    fn ipcomp_pair(alg: EspAlgorithm) -> (Gw, Gw) {
        pair_with(alg, false, [Some(GW1_IPCOMP), Some(GW2_IPCOMP)])
    }

    /// Receive with a slot's worth of room behind the packet, as the RX
    /// thread does.
    fn recv_in(to: &mut Gw, esp: &[u8]) -> Result<Vec<u8>, DropReason> {
        let mut buf = esp.to_vec();
        buf.resize(esp.len() + 1600, 0);
        let r = to.inb.process_in(&mut buf, 0, esp.len(), 2000)?;
        Ok(buf[r].to_vec())
    }

    /// Decrypt gw1's ESP packet (SPI 0x1001, key seed 1) as a third party
    /// holding the keys would: the ESP payload and its Next Header.
    fn open_gw1(alg: EspAlgorithm, esp: &[u8]) -> (Vec<u8>, IpProtocol) {
        let p = params(alg, 0x1001, 1, false, GW1, GW2, vec![]);
        let c = EspCipher::new(alg, &p.enc_key, p.auth_key.as_ref()).unwrap();
        let mut pkt = esp.to_vec();
        let seq = u32::from_be_bytes(pkt[4..8].try_into().unwrap());
        let r = c.open(seq as u64, false, &mut pkt).unwrap();
        let (t, n) = ikeda_wire::esp::Trailer::parse_and_check(&pkt[r.clone()]).unwrap();
        (pkt[r.start..r.start + n].to_vec(), t.next_header)
    }

    fn stats_out(g: &Gw) -> &IpcompStats {
        &g.out.sas[0].as_ref().unwrap().stats.ipcomp
    }

    fn stats_in(g: &Gw, spi: u32) -> &IpcompStats {
        &g.inb.sad[&spi].stats.ipcomp
    }

    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x1234_5678u32;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    fn icmp_body(body: &[u8]) -> Vec<u8> {
        let mut b = vec![8u8, 0, 0, 0];
        b.extend_from_slice(body);
        build_ipv4(
            [192, 168, 11, 11].into(),
            [192, 168, 12, 12].into(),
            IpProtocol::ICMP,
            &b,
        )
    }

    #[test]
    fn compressible_packets_travel_compressed_through_both_sas_v4_and_v6() {
        for alg in [
            GCM,
            EspAlgorithm::AesCbc {
                key_bits: 256,
                integ: ikeda_crypto::EspInteg::HmacSha256_128,
            },
        ] {
            let (mut a, mut b) = ipcomp_pair(alg);
            let (mut plain_a, _) = pair(alg, false);
            // `ping -s 1000 -p 00`: an ICMP echo of zeros.
            let p = icmp_body(&[0u8; 1000]);
            let (esp, _) = send(&mut a, &p).unwrap();
            let (esp_plain, _) = send(&mut plain_a, &p).unwrap();
            assert!(
                esp.len() < esp_plain.len() / 4,
                "{alg}: {} bytes compressed, {} without IPComp",
                esp.len(),
                esp_plain.len()
            );
            // On the wire: ESP Next Header 108, then IPComp with gw1's
            // outbound CPI, Next Header 4, flags 0, and raw DEFLATE of the
            // inner packet.
            let (payload, nh) = open_gw1(alg, &esp);
            assert_eq!(nh, IpProtocol::IPCOMP);
            let h = IpcompPacket::new_checked(&payload[..]).unwrap();
            assert_eq!(
                IpcompRepr::parse(&h),
                IpcompRepr {
                    next_header: IpProtocol::IPV4,
                    cpi: 0x1234
                }
            );
            assert_eq!(h.flags(), 0);
            assert_eq!(miniz_oxide::inflate::decompress_to_vec(h.payload()).unwrap(), p);
            assert_eq!(recv_in(&mut b, &esp).unwrap(), p, "{alg}");
            // and back, over IPv6
            let p6 = build_ipv6(
                "2001:db8:12::12".parse().unwrap(),
                "2001:db8:11::11".parse().unwrap(),
                IpProtocol::ICMPV6,
                &[b"\x81\0\0\0".as_slice(), &[0x5a; 600]].concat(),
            );
            let (esp6, _) = send(&mut b, &p6).unwrap();
            assert_eq!(recv_in(&mut a, &esp6).unwrap(), p6);
            let (o, i) = (stats_out(&a), stats_in(&b, 0x1001));
            assert_eq!(o.compressed.load(Relaxed), 1);
            assert_eq!(o.bytes_uncompressed.load(Relaxed), p.len() as u64);
            assert_eq!(o.bytes_compressed.load(Relaxed), payload.len() as u64);
            assert_eq!(i.compressed.load(Relaxed), 1);
            assert_eq!(i.bytes_compressed.load(Relaxed), payload.len() as u64);
            assert_eq!(stats_in(&a, 0x2001).compressed.load(Relaxed), 1);
            // SA byte counters stay those of the inner packets.
            let sa = &b.inb.sad[&0x1001];
            assert_eq!(sa.stats.bytes.load(Relaxed), p.len() as u64);
        }
    }

    #[test]
    fn incompressible_packet_is_sent_without_ipcomp_header() {
        let (mut a, mut b) = ipcomp_pair(GCM);
        let p = icmp_body(&noise(1200));
        let (esp, _) = send(&mut a, &p).unwrap();
        let (payload, nh) = open_gw1(GCM, &esp);
        assert_eq!((nh, payload), (IpProtocol::IPV4, p.clone()));
        assert_eq!(recv_in(&mut b, &esp).unwrap(), p);
        assert_eq!(stats_out(&a).not_smaller.load(Relaxed), 1);
        assert_eq!(stats_out(&a).compressed.load(Relaxed), 0);
        assert_eq!(stats_in(&b, 0x1001).uncompressed.load(Relaxed), 1);
    }

    #[test]
    fn packets_below_the_threshold_are_not_compressed() {
        let (mut a, mut b) = ipcomp_pair(GCM);
        // 89 bytes of zeros would compress, but stays below the threshold.
        let small = icmp_body(&[0u8; COMPRESS_THRESHOLD - 1 - 24]);
        assert_eq!(small.len(), COMPRESS_THRESHOLD - 1);
        let at = icmp_body(&[0u8; COMPRESS_THRESHOLD - 24]);
        let (esp, _) = send(&mut a, &small).unwrap();
        assert_eq!(open_gw1(GCM, &esp).1, IpProtocol::IPV4);
        assert_eq!(recv_in(&mut b, &esp).unwrap(), small);
        let (esp, _) = send(&mut a, &at).unwrap();
        assert_eq!(open_gw1(GCM, &esp).1, IpProtocol::IPCOMP);
        assert_eq!(recv_in(&mut b, &esp).unwrap(), at);
        let o = stats_out(&a);
        assert_eq!((o.too_small.load(Relaxed), o.compressed.load(Relaxed)), (1, 1));
    }

    #[test]
    fn wrong_cpi_and_ipcomp_without_agreement_are_dropped_and_counted() {
        let big = icmp_body(&[0u8; 500]);
        // gw2 expects CPI 0x9999, gw1 sends 0x1234.
        let (mut a, mut b) = pair_with(
            GCM,
            false,
            [
                Some(GW1_IPCOMP),
                Some(IpcompParams {
                    cpi_out: 0x4321,
                    cpi_in: 0x9999,
                }),
            ],
        );
        let (esp, _) = send(&mut a, &big).unwrap();
        assert_eq!(recv_in(&mut b, &esp).unwrap_err(), DropReason::IpcompBadCpi);
        assert_eq!(b.inb.drops.get(DropReason::IpcompBadCpi), 1);
        assert_eq!(b.inb.sad[&0x1001].stats.drops.get(DropReason::IpcompBadCpi), 1);
        // gw2 has no IPComp at all.
        let (mut a, mut b) = pair_with(GCM, false, [Some(GW1_IPCOMP), None]);
        let (esp, _) = send(&mut a, &big).unwrap();
        assert_eq!(recv_in(&mut b, &esp).unwrap_err(), DropReason::IpcompNotEnabled);
        // but what gw1 did not compress still gets through
        let (esp, _) = send(&mut a, &icmp_body(&[1, 2, 3])).unwrap();
        assert!(recv_in(&mut b, &esp).is_ok());
        assert_eq!(b.inb.drops.get(DropReason::IpcompNotEnabled), 1);
    }

    /// An observer's SA (`ikeda pcap`): no IPComp agreed, yet it inflates
    /// packets with any CPI and counts them; a data-plane SA without
    /// IPComp still refuses them.
    #[test]
    fn an_observer_sa_inflates_whatever_the_cpi() {
        let big = icmp_body(&[0u8; 500]);
        let small = icmp_body(&[1, 2, 3]);
        for cpi in [0x1234u16, 0x9999] {
            let ipc = IpcompParams {
                cpi_out: cpi,
                cpi_in: 0,
            };
            let (mut a, _) = pair_with(GCM, false, [Some(ipc), None]);
            let p = params(
                GCM,
                0x1001,
                1,
                false,
                GW2,
                GW1,
                vec![Selector::new(
                    AddrRange::parse("0.0.0.0/0").unwrap(),
                    AddrRange::parse("0.0.0.0/0").unwrap(),
                )],
            );
            let mut strict = InboundSa::new(&p).unwrap();
            let mut observer = InboundSa::new(&p).unwrap().with_any_ipcomp_cpi();
            for inner in [&big, &small] {
                let (esp, _) = send(&mut a, inner).unwrap();
                let mut buf = esp.clone();
                buf.resize(MAX_DECOMPRESSED, 0);
                let r = observer
                    .decapsulate_in(&mut buf, 0, esp.len(), &mut IpcompScratch::default(), 0)
                    .unwrap();
                assert_eq!(&buf[r], &inner[..]);
                let mut buf = esp.clone();
                let strict_says = strict.decapsulate(&mut buf, 0);
                if inner == &big {
                    assert_eq!(strict_says.unwrap_err(), DropReason::IpcompNotEnabled);
                } else {
                    assert!(strict_says.is_ok());
                }
            }
            let s = &observer.stats.ipcomp;
            assert_eq!((s.compressed.load(Relaxed), s.uncompressed.load(Relaxed)), (1, 1));
            assert_eq!(s.bytes_uncompressed.load(Relaxed), big.len() as u64);
        }
    }

    /// Authentic ESP (the peer holds the keys) whose IPComp payload is
    /// `payload` behind a header with `cpi` and Next Header `nh`.
    fn forge_ipcomp(seq: u32, cpi: u16, nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut inner = vec![nh, 0];
        inner.extend_from_slice(&cpi.to_be_bytes());
        inner.extend_from_slice(payload);
        let pad = ikeda_wire::esp::Trailer::pad_for(inner.len(), GCM.block_align());
        let padding: Vec<u8> = (1..=pad as u8).collect();
        forge(GCM, seq, &with_trailer(&inner, &padding, 108, GCM.block_align()))
    }

    #[test]
    fn garbage_truncation_and_decompression_bombs_are_dropped_and_counted() {
        let (_, mut b) = ipcomp_pair(GCM);
        let p = icmp_body(&[0u8; 300]);
        let good = miniz_oxide::deflate::compress_to_vec(&p, 6);
        let zeros_70k = miniz_oxide::deflate::compress_to_vec(&vec![0u8; 70_000], 9);
        let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
            (
                "header cut short",
                forge(GCM, 1, &with_trailer(&[4, 0], &[], 108, 4)),
                DropReason::IpcompDecompress,
            ),
            (
                "empty payload",
                forge_ipcomp(2, 0x1234, 4, &[]),
                DropReason::IpcompDecompress,
            ),
            (
                "reserved block type",
                forge_ipcomp(3, 0x1234, 4, &[0xff; 64]),
                DropReason::IpcompDecompress,
            ),
            (
                "truncated stream",
                forge_ipcomp(4, 0x1234, 4, &good[..good.len() / 2]),
                DropReason::IpcompDecompress,
            ),
            (
                "zlib header",
                forge_ipcomp(5, 0x1234, 4, &miniz_oxide::deflate::compress_to_vec_zlib(&p, 6)),
                DropReason::IpcompDecompress,
            ),
            (
                "bomb: 70000 bytes",
                forge_ipcomp(6, 0x1234, 4, &zeros_70k),
                DropReason::IpcompDecompress,
            ),
            (
                "says IPv6, is IPv4",
                forge_ipcomp(7, 0x1234, 41, &good),
                DropReason::BadNextHeader,
            ),
            (
                "nested IPComp",
                forge_ipcomp(8, 0x1234, 108, &good),
                DropReason::BadNextHeader,
            ),
        ];
        for (what, pkt, want) in &cases {
            assert_eq!(recv_in(&mut b, pkt).unwrap_err(), *want, "{what}");
        }
        assert_eq!(b.inb.drops.get(DropReason::IpcompDecompress), 6);
        // Decompressed to 65535 bytes, valid DEFLATE, but larger than the
        // room behind the packet: too big, not a crash.
        let max = miniz_oxide::deflate::compress_to_vec(&vec![0u8; MAX_DECOMPRESSED], 9);
        assert_eq!(
            recv_in(&mut b, &forge_ipcomp(9, 0x1234, 4, &max)).unwrap_err(),
            DropReason::TooBig
        );
        // Random payloads: never a panic.
        for seq in 10..300u32 {
            let junk = noise(seq as usize);
            assert!(recv_in(&mut b, &forge_ipcomp(seq, 0x1234, 4, &junk)).is_err());
        }
        // And after all that, a good one (zlib level 6, not ours) decompresses.
        assert_eq!(recv_in(&mut b, &forge_ipcomp(400, 0x1234, 4, &good)).unwrap(), p);
        assert_eq!(stats_in(&b, 0x1001).compressed.load(Relaxed), 1);
    }

    #[test]
    fn without_ipcomp_nothing_changes_and_nothing_is_allocated() {
        let (mut a, mut b) = pair(GCM, false);
        let p = icmp_body(&[0u8; 1000]);
        let (esp, _) = send(&mut a, &p).unwrap();
        assert_eq!(open_gw1(GCM, &esp), (p.clone(), IpProtocol::IPV4));
        assert_eq!(recv_in(&mut b, &esp).unwrap(), p);
        assert_eq!(
            stats_out(&a).too_small.load(Relaxed) + stats_out(&a).not_smaller.load(Relaxed),
            0
        );
        assert_eq!(
            format!("{:?}", a.out.ipcomp),
            "IpcompScratch { deflate: false, inflate: false }"
        );
        assert_eq!(
            format!("{:?}", b.inb.ipcomp),
            "IpcompScratch { deflate: false, inflate: false }"
        );
    }
}
