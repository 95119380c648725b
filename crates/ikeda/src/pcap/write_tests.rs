//! IKEv2 SKF reassembly (RFC 7383), IPComp inside ESP (RFC 3173) and
//! `--write`, on captures sealed here with ikeda's own crypto: the SK
//! payload cipher of the IKEv2 engine, the data plane's outbound SAs (with
//! IPComp), IKEv1's CBC. The rewritten capture is read back with the
//! wire crate's reader and parsers, which have no keys.

use super::analyze::{Analyzer, Limits};
use super::keys::KeyStore;
use super::tests::udp;
use super::write::{write_capture, write_in_memory, CaptureWriter, WriteStats, DECRYPTED_INTERFACE};
use ikeda_crypto::ike::{DhGroup, Encr, Integ, Prf, SeededRng, SkCipher};
use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_esp::{Encap, IpcompParams, OutboundSa, SaParams};
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip::{self, build_ipv4, build_ipv6};
use ikeda_wire::pcap::{link_type, network_layer, pcap_file_header, pcap_record, CaptureDecoder, Next, Timestamp};
use ikeda_wire::{ikev1, ikev2};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const GW1: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 11);
const GW2: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 12);
const GW1_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x50, 0, 0, 0, 0, 0x11);
const GW2_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x50, 0, 0, 0, 0, 0x12);
const H1: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 11);
const H2: Ipv4Addr = Ipv4Addr::new(192, 168, 12, 12);
const SPI_I: u64 = 0x0a0b_0c0d_0e0f_1011;
const SPI_R: u64 = 0x2122_2324_2526_2728;
const ICOOKIE: u64 = 0x3132_3334_3536_3738;
const RCOOKIE: u64 = 0x4142_4344_4546_4748;
const ESP_SPI: u32 = 0xc100_0001;
const IPCOMP_SPI: u32 = 0xc100_0002;

fn key(n: u8, len: usize) -> SecretBytes {
    SecretBytes::new((0..len).map(|i| n ^ (i as u8).wrapping_mul(7)).collect())
}

/// The IKE SA's suite: AES-GCM (the AEAD path, whose associated data is
/// the message up to the IV) or AES-CBC with HMAC (the ICV over it).
#[derive(Clone, Copy)]
enum Suite {
    Gcm,
    Cbc,
}

impl Suite {
    fn encr(self) -> Encr {
        match self {
            Suite::Gcm => Encr::AesGcm16 { key_bits: 128 },
            Suite::Cbc => Encr::AesCbc { key_bits: 128 },
        }
    }
    fn integ(self) -> Option<Integ> {
        match self {
            Suite::Gcm => None,
            Suite::Cbc => Some(Integ::HmacSha256_128),
        }
    }
    fn enc_len(self) -> usize {
        match self {
            Suite::Gcm => 20,
            Suite::Cbc => 16,
        }
    }
    /// The sender's cipher: `n` 4 for SK_ei/SK_ai, 5 for SK_er/SK_ar.
    fn cipher(self, n: u8) -> SkCipher {
        let auth = self.integ().map(|_| key(n + 0x10, 32));
        SkCipher::new(self.encr(), self.integ(), &key(n, self.enc_len()), auth.as_ref()).unwrap()
    }
}

fn esp_alg() -> EspAlgorithm {
    EspAlgorithm::AesGcm16 { key_bits: 128 }
}

/// A key log as ikeda writes it (`crate::keys`): the IKEv2 SA, the IKEv1
/// phase-1 SA, and two ESP SAs gw1 -> gw2 (the second with IPComp).
fn key_log_text(suite: Suite) -> String {
    let hex = |k: &SecretBytes| k.to_hex();
    let mut lines = vec![
        serde_json::json!({
            "type": "ikev2", "spi_i": format!("{SPI_I:016x}"), "spi_r": format!("{SPI_R:016x}"),
            "suite": {"encr": suite.encr().name(), "integ": suite.integ().map(|i| i.name()),
                      "prf": Prf::HmacSha256.name(), "dh": DhGroup::Curve25519.name()},
            "sk_ei": hex(&key(4, suite.enc_len())), "sk_er": hex(&key(5, suite.enc_len())),
            "sk_ai": suite.integ().map(|_| hex(&key(0x14, 32))),
            "sk_ar": suite.integ().map(|_| hex(&key(0x15, 32))),
        }),
        serde_json::json!({
            "type": "ikev1", "icookie": format!("{ICOOKIE:016x}"), "rcookie": format!("{RCOOKIE:016x}"),
            "suite": {"encr": Encr::AesCbc { key_bits: 128 }.name(), "integ": Integ::HmacSha256_128.name(),
                      "prf": Prf::HmacSha256.name(), "dh": DhGroup::Modp2048.name()},
            "enc_key": hex(&key(0x25, 16)), "iv": hex(&key(0x26, 16)),
        }),
    ];
    for spi in [ESP_SPI, IPCOMP_SPI] {
        lines.push(serde_json::json!({
            "type": "esp", "spi": format!("{spi:08x}"), "src": format!("{GW1}:500"), "dst": format!("{GW2}:500"),
            "algorithm": esp_alg().name(), "esn": false, "enc_key": hex(&key(spi as u8, 20)), "auth_key": null,
        }));
    }
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    text.join("\n")
}

fn key_log(suite: Suite) -> KeyStore {
    let mut store = KeyStore::default();
    store.load_key_log("test", &key_log_text(suite)).unwrap();
    assert!(store.problems.is_empty(), "{:?}", store.problems);
    store
}

/// IDi(ID_IPV4_ADDR gw1) | AUTH(PSK, 40 bytes) | N(INITIAL_CONTACT): 68
/// bytes, first payload IDi (35).
fn auth_chain() -> Vec<u8> {
    let mut c = vec![39, 0, 0, 12, 1, 0, 0, 0];
    c.extend_from_slice(&GW1.octets());
    c.extend_from_slice(&[41, 0, 0, 48, 2, 0, 0, 0]);
    c.extend_from_slice(&[0xa5; 40]);
    c.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0x40, 0x00]);
    c
}

/// IKE_AUTH request 1 header fields with Next Payload `first` and a
/// total length patched later.
fn header(first: u8, response: bool) -> Vec<u8> {
    let mut m = SPI_I.to_be_bytes().to_vec();
    m.extend_from_slice(&SPI_R.to_be_bytes());
    let flags = if response { 0x20 } else { 0x08 };
    m.extend_from_slice(&[first, 0x20, 35, flags, 0, 0, 0, 1, 0, 0, 0, 0]);
    m
}

/// An IKE_AUTH request (or response) whose content is sealed in an SK
/// payload.
fn sk_message(cipher: &SkCipher, chain: &[u8], response: bool) -> Vec<u8> {
    let body = cipher.sk_body_len(chain.len());
    let mut m = header(46, response);
    m[24..28].copy_from_slice(&((28 + 4 + body) as u32).to_be_bytes());
    m.extend_from_slice(&[35, 0]);
    m.extend_from_slice(&((4 + body) as u16).to_be_bytes());
    cipher
        .encrypt_message(&mut m, chain, &mut SeededRng::new(b"sk"))
        .unwrap();
    m
}

/// Fragment `n` of `total` of `chain` (split in `total` nearly equal
/// parts), as an IKE_AUTH request with one SKF payload (RFC 7383 §2.5).
fn skf_message(cipher: &SkCipher, chain: &[u8], n: u16, total: u16) -> Vec<u8> {
    let size = chain.len().div_ceil(total as usize);
    let part = &chain[(n as usize - 1) * size..(n as usize * size).min(chain.len())];
    let body = cipher.sk_body_len(part.len());
    let mut m = header(53, false);
    m[24..28].copy_from_slice(&((28 + 8 + body) as u32).to_be_bytes());
    m.extend_from_slice(&[if n == 1 { 35 } else { 0 }, 0]);
    m.extend_from_slice(&((8 + body) as u16).to_be_bytes());
    m.extend_from_slice(&n.to_be_bytes());
    m.extend_from_slice(&total.to_be_bytes());
    cipher
        .encrypt_message(&mut m, part, &mut SeededRng::new(&[n as u8]))
        .unwrap();
    m
}

fn ike4(m: &[u8]) -> Vec<u8> {
    build_ipv4(GW1, GW2, IpProtocol::UDP, &udp(500, 500, m))
}

fn capture(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut f = pcap_file_header(link_type::RAW, 65535, true);
    for (i, p) in packets.iter().enumerate() {
        let t = Timestamp {
            secs: 1_700_000_000,
            nanos: i as u32 * 1000,
        };
        f.extend(pcap_record(t, p, p.len() as u32, true));
    }
    f
}

/// The analyzer's text output over `packets`, with `suite`'s keys.
fn analyze(suite: Suite, packets: &[Vec<u8>]) -> String {
    let mut a = Analyzer::new(Limits::default(), false, false).with_keys(key_log(suite));
    let mut out = Vec::new();
    let mut format = String::new();
    super::read_capture(&capture(packets)[..], |p| a.packet(p, &mut out), &mut format).unwrap();
    a.finish(&format, &mut out);
    String::from_utf8(out).unwrap()
}

fn line<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with `{what}` in:\n{out}"))
}

const WHOLE: &str = "IKE_AUTH request 1 [ IDi AUTH N(INIT_CONTACT) ]";

#[test]
fn skf_fragments_out_of_order_and_duplicated_are_reassembled_and_decrypted() {
    for suite in [Suite::Gcm, Suite::Cbc] {
        let c = suite.cipher(4);
        let chain = auth_chain();
        let f = |n| ike4(&skf_message(&c, &chain, n, 3));
        // Frames 1-4: fragment 3, 1, 1 again, 2.
        let out = analyze(suite, &[f(3), f(1), f(1), f(2)]);
        let whole = line(&out, WHOLE);
        assert!(whole.starts_with("  0.000003 #4 "), "{whole}");
        assert!(
            whole.contains("reassembled from 3 SKF fragments (RFC 7383), frames 2, 4, 1"),
            "{whole}"
        );
        assert!(whole.contains("decrypted from"), "{whole}");
        let held = line(&out, "#1 ");
        assert!(
            held.contains("[ EF(3/3) ]") && held.contains("1 of 3 held for reassembly"),
            "{held}"
        );
        assert!(
            line(&out, "#3 ").contains("SKF fragment 1/3 again: a retransmission"),
            "{out}"
        );
        assert!(out.contains("1 IKEv2 messages reassembled from SKF fragments"), "{out}");
        // The same content in one SK payload reads the same.
        let sk = analyze(suite, &[ike4(&sk_message(&c, &chain, false))]);
        line(&sk, WHOLE);
    }
}

#[test]
fn a_missing_skf_fragment_leaves_the_message_encrypted_and_is_counted() {
    let c = Suite::Gcm.cipher(4);
    let chain = auth_chain();
    let out = analyze(
        Suite::Gcm,
        &[
            ike4(&skf_message(&c, &chain, 1, 3)),
            ike4(&skf_message(&c, &chain, 3, 3)),
        ],
    );
    assert!(!out.contains("[ IDi"), "{out}");
    assert!(line(&out, "#2 ").contains("2 of 3 held"), "{out}");
    assert!(
        out.contains("1 IKEv2 messages whose SKF fragments did not all arrive"),
        "{out}"
    );
}

/// A fragment whose ICV does not verify is named and never held: the
/// message completes only with the authentic copy.
#[test]
fn an_skf_fragment_with_a_wrong_icv_is_not_held() {
    for suite in [Suite::Gcm, Suite::Cbc] {
        let (c, forged) = (suite.cipher(4), suite.cipher(9));
        let chain = auth_chain();
        let bad: Vec<u8> = chain.iter().map(|b| b ^ 0xff).collect();
        let out = analyze(
            suite,
            &[
                ike4(&skf_message(&c, &chain, 1, 2)),
                // Fragment 2 sealed with other keys, carrying other content.
                ike4(&skf_message(&forged, &bad, 2, 2)),
                ike4(&skf_message(&c, &chain, 2, 2)),
            ],
        );
        let l = line(&out, "#2 ");
        assert!(
            l.contains("ICV mismatch: wrong key for IKE SA") && l.contains("[ EF(2/2) ]"),
            "{l}"
        );
        let whole = line(&out, WHOLE);
        assert!(whole.contains("#3 ") && whole.contains("frames 1, 3"), "{whole}");
    }
}

// ---- ESP with IPComp, and the whole --write path ---------------------------

fn outbound(spi: u32, ipcomp: bool) -> OutboundSa {
    OutboundSa::new(&SaParams {
        spi,
        algorithm: esp_alg(),
        enc_key: key(spi as u8, 20),
        auth_key: None,
        esn: false,
        replay_window: 64,
        local: SocketAddr::new(GW1.into(), 500),
        remote: SocketAddr::new(GW2.into(), 500),
        encap: Encap::Esp,
        selectors: vec![],
        ipcomp: ipcomp.then_some(IpcompParams {
            cpi_out: 0x1101,
            cpi_in: 0x1102,
        }),
    })
    .unwrap()
}

fn seal(sa: &mut OutboundSa, inner: &[u8]) -> Vec<u8> {
    let room = sa.room();
    let mut buf = vec![0u8; room.head + inner.len() + room.tail];
    buf[room.head..room.head + inner.len()].copy_from_slice(inner);
    let r = sa.encapsulate(&mut buf, room.head, inner.len(), 0).unwrap();
    buf[r].to_vec()
}

/// `ping -s 500` from h1: an echo request whose data compresses.
fn ping(seq: u8, size: usize) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, seq];
    icmp.extend((0..size).map(|i| (i % 16) as u8));
    build_ipv4(H1, H2, IpProtocol::ICMP, &icmp)
}

/// An encrypted IKEv1 Main Mode 5 (flag E): ID | HASH, CBC with the key
/// log's first IV (RFC 2409 App. B), and the payloads in clear.
fn ikev1_mm5() -> (Vec<u8>, Vec<u8>) {
    use ikeda_wire::ikev1::{ExchangeType, Header, IdPayload, Message, Payload, FLAG_ENCRYPTION, HEADER_LEN};
    let h = Header {
        icookie: ICOOKIE,
        rcookie: RCOOKIE,
        next_payload: 0,
        version: ikev1::ISAKMP_VERSION,
        exchange: ExchangeType(2),
        flags: FLAG_ENCRYPTION,
        message_id: 0,
        length: 0,
    };
    let id = Payload::Id(IdPayload {
        id_type: 1,
        protocol: 17,
        port: 500,
        data: GW1.octets().to_vec(),
    });
    let clear = Message::build(&h, &[id, Payload::Hash(vec![0x55; 32])]);
    let mut body = clear[HEADER_LEN..].to_vec();
    ikeda_crypto::ikev1::pad(16, &mut body);
    let cipher = ikeda_crypto::ikev1::Cipher::from_encr(Encr::AesCbc { key_bits: 128 }).unwrap();
    cipher
        .encrypt(key(0x25, 16).expose(), key(0x26, 16).expose(), &mut body)
        .unwrap();
    let mut m = clear[..HEADER_LEN].to_vec();
    m[24..28].copy_from_slice(&((HEADER_LEN + body.len()) as u32).to_be_bytes());
    m.extend(body);
    (m, clear[HEADER_LEN..].to_vec())
}

struct Conversation {
    packets: Vec<Vec<u8>>,
    /// Inner packets of the ESP frames, by frame number (1-based).
    inner: Vec<(usize, Vec<u8>)>,
    ikev1_chain: Vec<u8>,
}

/// IKE_AUTH request in SK over IPv4, again in two SKF fragments over
/// IPv6 on 4500 (non-ESP marker), the response in SK; IKEv1 MM5; ESP
/// without and with IPComp, and ESP no key covers; last a truncated IPv4
/// header (a frame that does not parse).
fn conversation(suite: Suite) -> Conversation {
    let (ci, cr) = (suite.cipher(4), suite.cipher(5));
    let chain = auth_chain();
    let mut p = vec![ike4(&sk_message(&ci, &chain, false))];
    let v6 = |m: &[u8], first: bool| {
        let mut marked = vec![0, 0, 0, 0];
        marked.extend_from_slice(m);
        let (s, d) = if first { (GW1_6, GW2_6) } else { (GW2_6, GW1_6) };
        build_ipv6(s, d, IpProtocol::UDP, &udp(4500, 4500, &marked))
    };
    p.push(v6(&skf_message(&ci, &chain, 1, 2), true));
    p.push(v6(&skf_message(&ci, &chain, 2, 2), true));
    // The responder's answer, sealed with SK_er.
    let resp = sk_message(&cr, &chain, true);
    p.push(build_ipv4(GW2, GW1, IpProtocol::UDP, &udp(500, 500, &resp)));
    let (mm5, ikev1_chain) = ikev1_mm5();
    p.push(ike4(&mm5));
    let mut inner = Vec::new();
    let (mut plain, mut comp, mut nokey) = (
        outbound(ESP_SPI, false),
        outbound(IPCOMP_SPI, true),
        outbound(0xdead_0001, false),
    );
    for seq in 1..=3u8 {
        let small = ping(seq, 16);
        p.push(build_ipv4(GW1, GW2, IpProtocol::ESP, &seal(&mut plain, &small)));
        inner.push((p.len(), small.clone()));
        // Compressed (500 bytes of a repeating pattern), and one too small.
        let big = ping(seq, if seq == 3 { 20 } else { 500 });
        p.push(build_ipv4(GW1, GW2, IpProtocol::ESP, &seal(&mut comp, &big)));
        inner.push((p.len(), big));
        p.push(build_ipv4(GW1, GW2, IpProtocol::ESP, &seal(&mut nokey, &small)));
    }
    p.push(vec![0x45, 0, 0]);
    Conversation {
        packets: p,
        inner,
        ikev1_chain,
    }
}

/// One frame of the written capture.
struct Frame {
    interface: u32,
    link_type: u32,
    data: Vec<u8>,
}

/// Read a capture back with the wire crate's reader; the pcapng blocks'
/// comments, found by scanning each EPB's options.
fn read_back(file: &[u8]) -> (Vec<Frame>, Vec<Option<String>>) {
    let mut d = CaptureDecoder::new();
    let (mut at, mut frames, mut comments) = (0, Vec::new(), Vec::new());
    loop {
        match d.next(&file[at..]).unwrap() {
            Next::Record { len, packet } => {
                if let Some(p) = packet {
                    // EPB: 28 bytes before the data, padded data, options, 4.
                    let opts = &file[at + 28 + p.data.len().next_multiple_of(4)..at + len - 4];
                    comments.push((opts.len() >= 4 && opts[..2] == [1, 0]).then(|| {
                        let n = u16::from_le_bytes([opts[2], opts[3]]) as usize;
                        String::from_utf8(opts[4..4 + n].to_vec()).unwrap()
                    }));
                    frames.push(Frame {
                        interface: p.interface,
                        link_type: p.link_type,
                        data: p.data.to_vec(),
                    });
                }
                at += len;
            }
            Next::Need(_) => {
                d.finish(file.len() - at).unwrap();
                assert_eq!(d.format(), "pcapng (little-endian)");
                return (frames, comments);
            }
        }
    }
}

/// The whole --write path in memory, as the fuzz target runs it.
fn write(suite: Suite, packets: &[Vec<u8>]) -> (Vec<u8>, WriteStats, String) {
    let (out, read, written) = write_in_memory(&capture(packets), Some(&key_log_text(suite)), false, false);
    read.unwrap();
    let (file, stats) = written.unwrap();
    (file, stats, String::from_utf8(out).unwrap())
}

/// The UDP payload of a rewritten IKE frame, its checksum verified.
fn ike_in(frame: &Frame) -> (IpAddr, Vec<u8>) {
    let d = ip::datagram(&frame.data).unwrap();
    assert_eq!(d.fragment, None);
    let u = ip::udp(d.payload).unwrap();
    let udp_len = d.payload.len();
    assert_eq!(u16::from_be_bytes([d.payload[4], d.payload[5]]) as usize, udp_len);
    // RFC 768 / RFC 8200 §8.1: the checksum over the pseudo-header sums to 0.
    let mut pseudo = Vec::new();
    match (d.src, d.dst) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&t.octets());
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
            assert_eq!(ip::internet_checksum(&frame.data[..20]), 0, "IPv4 header checksum");
        }
        (IpAddr::V6(s), IpAddr::V6(t)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&t.octets());
            pseudo.extend_from_slice(&(udp_len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
        }
        _ => unreachable!("one family"),
    }
    pseudo.extend_from_slice(d.payload);
    assert_eq!(ip::internet_checksum(&pseudo), 0, "UDP checksum");
    let ike = if u.dst_port == 4500 {
        assert_eq!(&u.payload[..4], &[0, 0, 0, 0], "non-ESP marker kept");
        u.payload[4..].to_vec()
    } else {
        u.payload.to_vec()
    };
    (d.src, ike)
}

#[test]
fn write_replaces_esp_by_inner_packets_and_ike_by_cleartext() {
    for suite in [Suite::Gcm, Suite::Cbc] {
        let conv = conversation(suite);
        let (file, stats, out) = write(suite, &conv.packets);
        let (frames, comments) = read_back(&file);
        assert_eq!(frames.len(), conv.packets.len(), "frame for frame");
        assert_eq!(
            stats,
            WriteStats {
                frames: conv.packets.len() as u64,
                esp_decrypted: 6,
                ike_cleartext: 4,
                unchanged: conv.packets.len() as u64 - 10,
                left_out: 0,
            }
        );
        // IKEv2: SK (frame 1), SKF completed by frame 3, the response
        // (frame 4): no SK left, the payloads inside in its place.
        for n in [1, 3, 4] {
            let f = &frames[n - 1];
            assert_eq!(f.link_type, link_type::RAW, "frame {n}");
            let (src, ike) = ike_in(f);
            let m = ikev2::Message::parse(&ike).unwrap();
            assert_eq!(
                m.summary().split(" [").nth(1),
                WHOLE.split(" [").nth(1),
                "frame {n}: {m:?}"
            );
            assert_eq!(m.header.message_id, 1);
            assert_eq!(m.header.is_request(), n != 4);
            assert_eq!(src.is_ipv6(), n == 3);
            let c = comments[n - 1].as_deref().unwrap();
            assert!(c.starts_with("ikeda pcap: decrypted IKEv2 "), "{c}");
        }
        assert!(comments[2]
            .as_deref()
            .unwrap()
            .contains("reassembled from 2 SKF fragments"));
        // Fragment 1 stays as captured, with a note.
        assert_eq!(frames[1].data, conv.packets[1]);
        assert!(
            comments[1].as_deref().unwrap().contains("held for reassembly"),
            "{comments:?}"
        );
        // IKEv1 MM5: flag E cleared, the payloads in clear, no padding.
        let (_, v1) = ike_in(&frames[4]);
        let h = ikev1::Header::parse(&v1).unwrap();
        assert!(!h.encrypted());
        assert_eq!(&v1[28..], &conv.ikev1_chain[..]);
        assert_eq!(
            ikev1::summary(&ikev1::Message::parse(&v1).unwrap().payload_list()),
            "[ ID HASH ]"
        );
        // ESP: the inner packets themselves, IPComp inflated.
        for (n, inner) in &conv.inner {
            assert_eq!(&frames[n - 1].data, inner, "frame {n}");
            let f = &frames[n - 1];
            assert_eq!(f.link_type, link_type::RAW);
            let c = comments[n - 1].as_deref().unwrap();
            assert!(c.contains("decrypted ESP SPI 0xc100000"), "{c}");
            assert_eq!(c.contains("IPComp inflated"), inner.len() > 500, "{c}");
        }
        // Rewritten frames share one interface; the original frames another.
        let decrypted_if = frames[0].interface;
        for (i, f) in frames.iter().enumerate() {
            let rewritten = f.interface == decrypted_if;
            let says = comments[i]
                .as_deref()
                .is_some_and(|c| c.starts_with("ikeda pcap: decrypted"));
            assert_eq!(rewritten, says, "frame {}", i + 1);
            if !rewritten {
                assert_eq!(f.data, conv.packets[i], "frame {} as captured", i + 1);
            }
        }
        // Frames: ESP, ESP with IPComp, ESP without a key.
        let nokey = comments[conv.inner[0].0 + 1].as_deref().unwrap();
        assert_eq!(nokey, "ikeda pcap: ESP not decrypted: no key for this SPI");
        assert!(file
            .windows(DECRYPTED_INTERFACE.len())
            .any(|w| w == DECRYPTED_INTERFACE.as_bytes()));
        // The flow with IPComp says so.
        let flow = line(&out, &format!("SPI {IPCOMP_SPI:#010x}:"));
        assert!(flow.contains("; decrypted 3 (ICMP 3), IPComp: 2 inflated ("), "{flow}");
        assert!(flow.contains("), 1 not compressed"), "{flow}");
        assert!(network_layer(link_type::RAW, &frames[0].data).unwrap().is_some());
    }
}

/// Without keys nothing is rewritten, and the copy is the capture again:
/// every frame's bytes, in order, and no comment.
#[test]
fn without_keys_the_written_capture_holds_the_same_frames() {
    let conv = conversation(Suite::Gcm);
    let mut a = Analyzer::new(Limits::default(), false, false).with_rewrites();
    let mut w = CaptureWriter::new(Vec::new()).unwrap();
    let (mut out, mut format) = (Vec::new(), String::new());
    write_capture(&capture(&conv.packets)[..], &mut a, &mut w, &mut out, &mut format).unwrap();
    let (file, stats) = w.finish().unwrap();
    assert_eq!(stats.unchanged, conv.packets.len() as u64);
    let (frames, comments) = read_back(&file);
    let data: Vec<Vec<u8>> = frames.into_iter().map(|f| f.data).collect();
    assert_eq!(data, conv.packets);
    assert!(comments.iter().all(Option::is_none));
}

/// The output file: created 0600 beside the target, renamed over it (a
/// link there is replaced, never written through), removed when the run
/// does not commit it.
#[test]
fn the_output_file_is_private_and_never_written_through_a_link() {
    use super::write::OutputFile;
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ikeda-pcap-write-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, b"untouched").unwrap();
    let target = dir.join("out.pcap");
    std::os::unix::fs::symlink(&victim, &target).unwrap();
    let (o, mut f) = OutputFile::create(&target).unwrap();
    std::io::Write::write_all(&mut f, b"capture").unwrap();
    o.commit(f).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    assert_eq!(std::fs::read(&target).unwrap(), b"capture");
    let m = std::fs::symlink_metadata(&target).unwrap();
    assert!(m.is_file());
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    // Dropped uncommitted: nothing left behind, the old file kept.
    let (o, f) = OutputFile::create(&target).unwrap();
    drop((o, f));
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"capture");
    let _ = std::fs::remove_dir_all(&dir);
}
