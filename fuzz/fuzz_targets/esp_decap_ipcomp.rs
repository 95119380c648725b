//! ESP decapsulation with IPComp on (RFC 3173 inside RFC 4303): the
//! decompressor reached the way a peer reaches it, through an authentic ESP
//! packet whose Next Header is 108.
//!
//! Input layout: byte 0 picks the algorithm (low 7 bits, modulo the number
//! of algorithms), byte 1 the IPComp header's Next Header and whether it
//! carries the SA's CPI (high bit set: a wrong CPI); the rest is the
//! compressed payload. The harness holds the SA's keys, so it seals
//! `IPComp header | rest` with Next Header 108 and a valid ICV, and feeds
//! it to an inbound SA with IPComp. Whatever the bytes: no panic, the inner
//! range lies inside the receive slot, and an accepted packet is an IP
//! packet within the selectors.
//!
//! Second, `rest` as an inner packet goes through an outbound SA with
//! IPComp and back: when it is a valid IP packet the roundtrip must give
//! it back whether or not it was compressed; when it is not, the receiver
//! must refuse it.

#![no_main]

use ikeda_crypto::{EspAlgorithm, EspCipher, SecretBytes};
use ikeda_esp::ipcomp::{IpcompParams, IpcompScratch, MAX_DECOMPRESSED};
use ikeda_esp::{AddrRange, Encap, InboundSa, OutboundSa, SaParams, Selector};
use ikeda_wire::esp::{self, Trailer};
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

const SPI: u32 = 0x0000_2000;
const CPI: u16 = 0x4242;

thread_local! {
    // One scratch for the whole run, as a data plane thread keeps it.
    static SCRATCH: RefCell<IpcompScratch> = RefCell::new(IpcompScratch::default());
}

fn key(n: usize, seed: u8) -> SecretBytes {
    SecretBytes::new((0..n).map(|i| seed ^ (i as u8).wrapping_mul(13)).collect())
}

fn params(alg: EspAlgorithm) -> SaParams {
    let any = |s: &str| AddrRange::parse(s).unwrap();
    SaParams {
        spi: SPI,
        algorithm: alg,
        enc_key: key(alg.enc_key_len(), 0x21),
        auth_key: (alg.auth_key_len() > 0).then(|| key(alg.auth_key_len(), 0x74)),
        esn: false,
        replay_window: 64,
        local: "192.0.2.1:4500".parse().unwrap(),
        remote: "192.0.2.2:4500".parse().unwrap(),
        encap: Encap::Udp,
        selectors: vec![
            Selector::new(any("0.0.0.0/0"), any("0.0.0.0/0")),
            Selector::new(any("::/0"), any("::/0")),
        ],
        ipcomp: Some(IpcompParams {
            cpi_out: CPI,
            cpi_in: CPI,
        }),
    }
}

/// `payload` sealed as the ESP payload of sequence number `seq`, with
/// Next Header `nh`.
fn seal(p: &SaParams, seq: u32, payload: &[u8], nh: IpProtocol) -> Vec<u8> {
    let alg = p.algorithm;
    let cipher = EspCipher::new(alg, &p.enc_key, p.auth_key.as_ref()).unwrap();
    let pad = Trailer::pad_for(payload.len(), alg.block_align());
    let body = esp::HEADER_LEN + alg.iv_len();
    let trailer_end = body + payload.len() + pad + esp::TRAILER_LEN;
    let mut pkt = vec![0u8; trailer_end + alg.icv_len()];
    esp::emit_header(&mut pkt[..esp::HEADER_LEN], p.spi, seq).unwrap();
    pkt[body..body + payload.len()].copy_from_slice(payload);
    Trailer::emit(&mut pkt[body + payload.len()..trailer_end], nh);
    cipher.seal(seq as u64, false, &mut pkt).unwrap();
    pkt
}

fuzz_target!(|data: &[u8]| {
    let [ctl, hdr, rest @ ..] = data else { return };
    let algs = EspAlgorithm::all();
    let alg = algs[(ctl & 0x7f) as usize % algs.len()];
    let p = params(alg);
    let mut inbound = InboundSa::new(&p).unwrap();

    // 1. Arbitrary compressed data behind an IPComp header, authentic.
    let cpi = if hdr & 0x80 == 0 { CPI } else { CPI ^ 1 };
    let next_header = [
        IpProtocol::IPV4,
        IpProtocol::IPV6,
        IpProtocol::NO_NEXT_HEADER,
        IpProtocol::IPCOMP,
    ][(hdr & 3) as usize];
    let mut payload = vec![next_header.0, 0];
    payload.extend_from_slice(&cpi.to_be_bytes());
    payload.extend_from_slice(rest);
    let pkt = seal(&p, 1, &payload, IpProtocol::IPCOMP);
    // The receive slot: room for the largest decompressed packet.
    let slot = pkt.len().max(MAX_DECOMPRESSED) + 64;
    let mut buf = vec![0u8; slot];
    buf[..pkt.len()].copy_from_slice(&pkt);
    let r = SCRATCH.with(|s| inbound.decapsulate_in(&mut buf, 0, pkt.len(), &mut s.borrow_mut(), 1));
    if let Ok(r) = r {
        assert!(
            r.start <= r.end && r.end <= slot,
            "inner range {r:?} outside a {slot}-byte slot"
        );
        assert_eq!(cpi, CPI, "accepted a wrong CPI");
        let key = ip::flow_key(&buf[r.clone()]);
        assert!(key.is_ok(), "accepted a packet that is not IP");
    }

    // 2. The rest as an inner packet, through IPComp and back.
    let mut out = OutboundSa::new(&p).unwrap();
    let room = out.room();
    let mut buf = vec![0u8; room.head + rest.len() + room.tail];
    buf[room.head..room.head + rest.len()].copy_from_slice(rest);
    let valid_ip = ip::flow_key(rest).is_ok();
    let sealed = SCRATCH.with(|s| out.encapsulate_with(&mut buf, room.head, rest.len(), &mut s.borrow_mut(), 1));
    let Ok(range) = sealed else {
        assert!(!valid_ip, "{alg}: refused a valid {}-byte inner packet", rest.len());
        return;
    };
    let sealed = buf[range].to_vec();
    let mut inbound = InboundSa::new(&p).unwrap();
    let slot = sealed.len().max(rest.len()) + 64;
    let mut buf = vec![0u8; slot];
    buf[..sealed.len()].copy_from_slice(&sealed);
    let r = SCRATCH.with(|s| inbound.decapsulate_in(&mut buf, 0, sealed.len(), &mut s.borrow_mut(), 1));
    // The SA seals anything whose version nibble is 4 or 6 (the SPD, not
    // the SA, checks the rest); the receiver must refuse what is not IP.
    if !valid_ip {
        assert!(
            r.is_err(),
            "{alg}: accepted an inner packet whose flow key does not parse"
        );
        return;
    }
    let want = ip::claimed_len(rest).expect("claimed_len fails where flow_key succeeded");
    match r {
        Ok(r) => assert_eq!(&buf[r], &rest[..want], "{alg}: the IPComp roundtrip changed the packet"),
        Err(e) => panic!(
            "{alg}: roundtrip of a valid {}-byte inner packet failed: {e}",
            rest.len()
        ),
    }
});
