//! `ikeda pcap --keys LOG --write OUT`, the whole path, on captures the
//! fuzzer shapes: the capture reader, the analyzer with keys (IKEv2 SK and
//! SKF reassembly, IKEv1 CBC, ESP with IPComp), and the pcapng writer.
//! Whatever the input: no panic; the written capture reads back whole
//! with the wire crate's reader, one frame per frame read (but for the
//! ones counted as left out).
//!
//! Byte 0 picks how the rest is used:
//! - even: the rest is a capture file, as is (garbage, mostly);
//! - odd: a program over packets that decrypt with the harness's key log
//!   (an IKE_AUTH in SK, its content in 3 SKF fragments, an IKEv1 Main
//!   Mode 5, ESP with and without IPComp): 3 bytes per step pick a packet
//!   and what to do with it (send it, send it cut, flip a byte, send it
//!   again, over IPv4 or IPv6, on 500 or 4500), so fragments come in any
//!   order, duplicated, cut or forged, and decrypted paths are reached.
//!
//! The pcap module lives in the binary crate `ikeda` (no library target),
//! so it is compiled in here from its source files, with the modules of
//! the crate it uses.

#![no_main]

use ikeda_crypto::ike::{DhGroup, Encr, Integ, Prf, SeededRng, SkCipher};
use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_esp::{Encap, IpcompParams, OutboundSa, SaParams};
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip::{build_ipv4, build_ipv6};
use ikeda_wire::pcap::{link_type, pcap_file_header, pcap_record, CaptureDecoder, Next, Timestamp};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

// The key files' names and Wireshark's table formats, which the pcap
// module's key sources share with the key export.
#[allow(dead_code)]
#[path = "../../crates/ikeda/src/keys.rs"]
mod keys;

/// keys.rs stamps exported key lines with the data plane's clock; the
/// harness exports none.
#[allow(dead_code)]
mod dataplane {
    pub fn now_ms() -> u64 {
        0
    }
}

#[allow(dead_code)]
#[path = "../../crates/ikeda/src/private.rs"]
mod private;

#[allow(dead_code, unused_imports)]
#[path = "../../crates/ikeda/src/pcap/mod.rs"]
mod pcap;

const SPI_I: u64 = 0x0a0b_0c0d_0e0f_1011;
const SPI_R: u64 = 0x2122_2324_2526_2728;
const ICOOKIE: u64 = 0x3132_3334_3536_3738;
const RCOOKIE: u64 = 0x4142_4344_4546_4748;

fn key(n: u8, len: usize) -> SecretBytes {
    SecretBytes::new((0..len).map(|i| n ^ (i as u8).wrapping_mul(7)).collect())
}

fn esp_alg() -> EspAlgorithm {
    EspAlgorithm::AesGcm16 { key_bits: 128 }
}

fn key_log() -> String {
    let hex = |k: &SecretBytes| k.to_hex();
    let cbc = Encr::AesCbc { key_bits: 128 };
    let mut lines = vec![
        serde_json::json!({
            "type": "ikev2", "spi_i": format!("{SPI_I:016x}"), "spi_r": format!("{SPI_R:016x}"),
            "suite": {"encr": cbc.name(), "integ": Integ::HmacSha256_128.name(),
                      "prf": Prf::HmacSha256.name(), "dh": DhGroup::Curve25519.name()},
            "sk_ei": hex(&key(4, 16)), "sk_er": hex(&key(5, 16)),
            "sk_ai": hex(&key(0x14, 32)), "sk_ar": hex(&key(0x15, 32)),
        }),
        serde_json::json!({
            "type": "ikev1", "icookie": format!("{ICOOKIE:016x}"), "rcookie": format!("{RCOOKIE:016x}"),
            "suite": {"encr": cbc.name(), "integ": Integ::HmacSha256_128.name(),
                      "prf": Prf::HmacSha256.name(), "dh": DhGroup::Modp2048.name()},
            "enc_key": hex(&key(0x25, 16)), "iv": hex(&key(0x26, 16)),
        }),
    ];
    for spi in [0xc100_0001u32, 0xc100_0002] {
        lines.push(serde_json::json!({
            "type": "esp", "spi": format!("{spi:08x}"), "src": "192.168.50.11:500", "dst": "192.168.50.12:500",
            "algorithm": esp_alg().name(), "esn": false, "enc_key": hex(&key(spi as u8, 20)), "auth_key": null,
        }));
    }
    lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n")
}

fn sk_cipher() -> SkCipher {
    SkCipher::new(
        Encr::AesCbc { key_bits: 128 },
        Some(Integ::HmacSha256_128),
        &key(4, 16),
        Some(&key(0x14, 32)),
    )
    .unwrap()
}

/// IDi | AUTH | N(INITIAL_CONTACT).
fn chain() -> Vec<u8> {
    let mut c = vec![39, 0, 0, 12, 1, 0, 0, 0, 192, 168, 50, 11];
    c.extend_from_slice(&[41, 0, 0, 48, 2, 0, 0, 0]);
    c.extend_from_slice(&[0xa5; 40]);
    c.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0x40, 0x00]);
    c
}

/// IKE_AUTH request 1: in one SK payload (`skf` None) or fragment n/t.
fn ike_auth(skf: Option<(u16, u16)>) -> Vec<u8> {
    let c = sk_cipher();
    let chain = chain();
    let part = match skf {
        None => &chain[..],
        Some((n, t)) => {
            let size = chain.len().div_ceil(t as usize);
            &chain[(n as usize - 1) * size..(n as usize * size).min(chain.len())]
        }
    };
    let body = c.sk_body_len(part.len());
    let extra = if skf.is_some() { 4 } else { 0 };
    let mut m = SPI_I.to_be_bytes().to_vec();
    m.extend_from_slice(&SPI_R.to_be_bytes());
    m.extend_from_slice(&[if skf.is_some() { 53 } else { 46 }, 0x20, 35, 0x08, 0, 0, 0, 1]);
    m.extend_from_slice(&((28 + 4 + extra + body) as u32).to_be_bytes());
    let first = match skf {
        Some((n, _)) if n != 1 => 0,
        _ => 35,
    };
    m.extend_from_slice(&[first, 0]);
    m.extend_from_slice(&((4 + extra + body) as u16).to_be_bytes());
    if let Some((n, t)) = skf {
        m.extend_from_slice(&n.to_be_bytes());
        m.extend_from_slice(&t.to_be_bytes());
    }
    c.encrypt_message(&mut m, part, &mut SeededRng::new(b"fuzz")).unwrap();
    m
}

/// IKEv1 Main Mode 5: ID | HASH, encrypted with the key log's first IV.
fn mm5() -> Vec<u8> {
    let mut clear = vec![8, 0, 0, 12, 1, 17, 1, 244, 192, 168, 50, 11];
    clear.extend_from_slice(&[0, 0, 0, 36]);
    clear.extend_from_slice(&[0x55; 32]);
    ikeda_crypto::ikev1::pad(16, &mut clear);
    let cipher = ikeda_crypto::ikev1::Cipher::from_encr(Encr::AesCbc { key_bits: 128 }).unwrap();
    cipher
        .encrypt(key(0x25, 16).expose(), key(0x26, 16).expose(), &mut clear)
        .unwrap();
    let mut m = ICOOKIE.to_be_bytes().to_vec();
    m.extend_from_slice(&RCOOKIE.to_be_bytes());
    m.extend_from_slice(&[5, 0x10, 2, 0x01, 0, 0, 0, 0]);
    m.extend_from_slice(&((28 + clear.len()) as u32).to_be_bytes());
    m.extend(clear);
    m
}

/// `count` ESP packets of an ICMP echo with `size` bytes of data, on the
/// SA with `spi` (with IPComp for 0xc1000002).
fn esp(spi: u32, count: usize, size: usize) -> Vec<Vec<u8>> {
    let mut sa = OutboundSa::new(&SaParams {
        spi,
        algorithm: esp_alg(),
        enc_key: key(spi as u8, 20),
        auth_key: None,
        esn: false,
        replay_window: 64,
        local: "192.168.50.11:500".parse().unwrap(),
        remote: "192.168.50.12:500".parse().unwrap(),
        encap: Encap::Esp,
        selectors: vec![],
        ipcomp: (spi == 0xc100_0002).then_some(IpcompParams {
            cpi_out: 0x1101,
            cpi_in: 0x1102,
        }),
    })
    .unwrap();
    (0..count)
        .map(|seq| {
            let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, seq as u8];
            icmp.extend((0..size).map(|i| (i % 16) as u8));
            let inner = build_ipv4(
                Ipv4Addr::new(192, 168, 11, 11),
                Ipv4Addr::new(192, 168, 12, 12),
                IpProtocol::ICMP,
                &icmp,
            );
            let room = sa.room();
            let mut buf = vec![0u8; room.head + inner.len() + room.tail];
            buf[room.head..room.head + inner.len()].copy_from_slice(&inner);
            let r = sa.encapsulate(&mut buf, room.head, inner.len(), 0).unwrap();
            buf[r].to_vec()
        })
        .collect()
}

/// (is IKE, payload) of every packet the programs pick from.
fn packets() -> &'static (String, Vec<(bool, Vec<u8>)>) {
    static P: OnceLock<(String, Vec<(bool, Vec<u8>)>)> = OnceLock::new();
    P.get_or_init(|| {
        let mut p = vec![(true, ike_auth(None)), (true, mm5())];
        for n in 1..=3 {
            p.push((true, ike_auth(Some((n, 3)))));
        }
        p.extend(esp(0xc100_0001, 3, 16).into_iter().map(|e| (false, e)));
        p.extend(esp(0xc100_0002, 3, 400).into_iter().map(|e| (false, e)));
        (key_log(), p)
    })
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// The capture a program describes.
fn program(steps: &[u8]) -> Vec<u8> {
    let (_, p) = packets();
    let mut f = pcap_file_header(link_type::RAW, 65535, true);
    for (i, s) in steps.chunks_exact(3).enumerate() {
        let (is_ike, payload) = &p[usize::from(s[0]) % p.len()];
        let mut payload = payload.clone();
        match s[1] & 3 {
            1 => payload.truncate(usize::from(s[2])),
            2 => {
                let at = usize::from(s[2]) % payload.len().max(1);
                if let Some(b) = payload.get_mut(at) {
                    *b ^= 0x80;
                }
            }
            _ => {}
        }
        let over_4500 = s[1] & 4 != 0;
        let (proto, l4) = match (is_ike, over_4500) {
            (true, false) => (IpProtocol::UDP, udp(500, 500, &payload)),
            (true, true) => (IpProtocol::UDP, udp(4500, 4500, &[&[0u8; 4][..], &payload].concat())),
            (false, false) => (IpProtocol::ESP, payload),
            (false, true) => (IpProtocol::UDP, udp(4500, 4500, &payload)),
        };
        let pkt = if s[1] & 8 != 0 {
            build_ipv6(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
                proto,
                &l4,
            )
        } else {
            build_ipv4(
                Ipv4Addr::new(192, 168, 50, 11),
                Ipv4Addr::new(192, 168, 50, 12),
                proto,
                &l4,
            )
        };
        let t = Timestamp {
            secs: 1_700_000_000 + u64::from(s[1] >> 4) * i as u64,
            nanos: 0,
        };
        f.extend(pcap_record(t, &pkt, pkt.len() as u32, true));
    }
    f
}

/// Packets in a capture, read with the wire crate's reader.
fn count(file: &[u8]) -> Result<u64, String> {
    let mut d = CaptureDecoder::new();
    let mut at = 0;
    loop {
        match d.next(&file[at..]).map_err(|e| e.to_string())? {
            Next::Record { len, .. } => at += len,
            Next::Need(_) => {
                d.finish(file.len() - at).map_err(|e| e.to_string())?;
                return Ok(d.packets());
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let (log, _) = packets();
    let capture = if mode & 1 == 0 { rest.to_vec() } else { program(rest) };
    let read_in = count(&capture);
    let (_out, read, written) = pcap::write::write_in_memory(&capture, Some(log), mode & 2 != 0, mode & 4 != 0);
    let (file, stats) = written.expect("writing into memory does not fail");
    let back = count(&file).expect("the written capture reads back whole");
    assert_eq!(back, stats.frames - stats.left_out);
    if let (Ok(n), Ok(())) = (read_in, read) {
        assert_eq!(stats.frames, n, "one frame written per frame read");
    }
});
