//! `ikeda pcap`'s explanation on captures built here, one case each:
//! the initiator, retransmissions and exchange times, the NAT-T float and
//! a NAT told by the detection hashes, failure notifications, requests
//! never answered, both sides initiating at once, a CHILD SA rekey with
//! and without loss, ESP one way, SPIs without a key, IKEv1 DPD, bounds.
//! Each goes through the whole reader and analyzer, as `ikeda pcap` runs.

use super::analyze::{Analyzer, Limits};
use super::keys::KeyStore;
use super::read_capture;
use super::tests::udp;
use crate::keys::KeyExport;
use ikeda_crypto::ike::{DhGroup, Encr, IkeKeys, IkeSuite, Integ, Prf, Role, SeededRng, SkCipher};
use ikeda_crypto::SecretBytes;
use ikeda_ike::ikev2::IkeKeyInfo;
use ikeda_wire::iana::{EncrTransformId, IpProtocol};
use ikeda_wire::ikev2::{
    emit_payload_chain, emit_sk_message, DeletePayload, ExchangeType, Flags, HeaderRepr, Message, NotifyPayload,
    NotifyType, Payload, PayloadType, Proposal, ProtocolId, SaPayload, Transform,
};
use ikeda_wire::ip::build_ipv4;
use ikeda_wire::pcap::{link_type, pcap_file_header, pcap_record, Timestamp};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

const GW1: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 11);
const GW2: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 12);
/// gw1's address behind the NAT (the lab's `--nat`).
const GW1_INSIDE: Ipv4Addr = Ipv4Addr::new(10, 50, 1, 11);
const SPI_I: u64 = 0x1122_3344_5566_7788;
const SPI_R: u64 = 0x99aa_bbcc_ddee_ff00;

/// A raw-IP pcap; each packet at its time in milliseconds.
fn cap(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut f = pcap_file_header(link_type::RAW, 65535, false);
    for (ms, p) in packets {
        let t = Timestamp {
            secs: 1_700_000_000 + ms / 1000,
            nanos: (ms % 1000) as u32 * 1_000_000,
        };
        f.extend(pcap_record(t, p, p.len() as u32, false));
    }
    f
}

/// `ikeda pcap` (text) and `ikeda pcap --json` on a capture.
fn explain(file: &[u8], keys: Option<&Path>) -> (String, Value) {
    let run = |json: bool| {
        let mut a = Analyzer::new(Limits::default(), false, json);
        if let Some(k) = keys {
            let mut store = KeyStore::default();
            store.load(k).unwrap();
            a = a.with_keys(store);
        }
        let mut out = Vec::new();
        if json {
            out.extend_from_slice(b"{\"file\":\"t\",\"messages\":[");
        }
        let mut format = String::new();
        read_capture(file, |p| a.packet(p, &mut out), &mut format).unwrap();
        a.finish(&format, &mut out);
        String::from_utf8(out).unwrap()
    };
    let text = run(false);
    let v = serde_json::from_str(&run(true)).expect("--json is one object");
    (text, v)
}

/// The explanation's texts of one kind, from `--json`; each is also a
/// line of the text output.
fn kind(v: &Value, text: &str, k: &str) -> Vec<String> {
    let all: Vec<String> = v["explanation"]
        .as_array()
        .expect("an explanation array")
        .iter()
        .filter(|f| f["kind"] == k)
        .map(|f| f["text"].as_str().unwrap().to_string())
        .collect();
    let section = text.split("\nWhat the capture shows:\n").nth(1).unwrap_or_default();
    for t in &all {
        assert!(
            section.contains(&format!("  {t}\n")),
            "`{t}` is not in the text output:\n{text}"
        );
    }
    all
}

fn one(v: &Value, text: &str, k: &str) -> String {
    let all = kind(v, text, k);
    assert_eq!(all.len(), 1, "{k}: {all:#?}\n{text}");
    all.into_iter().next().unwrap()
}

fn ike_packet(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), msg: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    if src.1 == 4500 || dst.1 == 4500 || (src.1 != 500 && dst.1 != 500) {
        payload.extend_from_slice(&[0, 0, 0, 0]);
    }
    payload.extend_from_slice(msg);
    build_ipv4(src.0, dst.0, IpProtocol::UDP, &udp(src.1, dst.1, &payload))
}

fn hdr(spi_i: u64, spi_r: u64, x: ExchangeType, initiator: bool, response: bool, mid: u32) -> HeaderRepr {
    HeaderRepr {
        initiator_spi: spi_i,
        responder_spi: spi_r,
        minor_version: 0,
        exchange_type: x,
        flags: Flags::new(initiator, response),
        message_id: mid,
    }
}

fn clear(h: HeaderRepr, payloads: Vec<Payload>) -> Vec<u8> {
    Message { header: h, payloads }.emit().unwrap()
}

/// An IKEv2 message whose payloads are inside SK, sealed with `cipher`.
fn sealed(h: HeaderRepr, inner: &[Payload], cipher: &SkCipher) -> Vec<u8> {
    let plain = emit_payload_chain(inner).unwrap();
    let first = inner.first().map_or(PayloadType::NONE, Payload::payload_type);
    let (mut msg, body) = emit_sk_message(&h, &[], first, cipher.sk_body_len(plain.len())).unwrap();
    let sk = cipher
        .encrypt(&msg[..body.start], &plain, &mut SeededRng::new(b"explain"))
        .unwrap();
    msg[body].copy_from_slice(&sk);
    msg
}

/// An SK payload of random-looking bytes: encrypted, no key to read it.
fn opaque(h: HeaderRepr, n: u8) -> Vec<u8> {
    let (mut msg, body) = emit_sk_message(&h, &[], PayloadType::IDI, 80).unwrap();
    for (i, b) in msg[body].iter_mut().enumerate() {
        *b = n.wrapping_mul(31).wrapping_add(i as u8);
    }
    msg
}

fn natd(spi_i: u64, spi_r: u64, a: Ipv4Addr, port: u16) -> Vec<u8> {
    ikeda_crypto::sha1(&[
        &spi_i.to_be_bytes(),
        &spi_r.to_be_bytes(),
        &a.octets(),
        &port.to_be_bytes(),
    ])
    .to_vec()
}

fn notify(t: NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(NotifyPayload::new(t, data))
}

/// IKE_SA_INIT with the NAT detection hashes of `src` and `dst` (as the
/// sender knows them) and a nonce that tells copies apart from retries.
fn sa_init(h: HeaderRepr, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), nonce: u8) -> Vec<u8> {
    clear(
        h,
        vec![
            Payload::Nonce(ikeda_wire::ikev2::NoncePayload { nonce: vec![nonce; 32] }),
            notify(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                natd(h.initiator_spi, h.responder_spi, src.0, src.1),
            ),
            notify(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                natd(h.initiator_spi, h.responder_spi, dst.0, dst.1),
            ),
        ],
    )
}

fn esp(src: Ipv4Addr, dst: Ipv4Addr, spi: u32, seq: u32) -> Vec<u8> {
    let mut e = spi.to_be_bytes().to_vec();
    e.extend_from_slice(&seq.to_be_bytes());
    e.resize(120, 0x5a);
    build_ipv4(src, dst, IpProtocol::ESP, &e)
}

fn suite() -> IkeSuite {
    IkeSuite {
        encr: Encr::AesCbc { key_bits: 256 },
        integ: Some(Integ::HmacSha256_128),
        prf: Prf::HmacSha256,
        dh: DhGroup::Curve25519,
    }
}

fn ike_keys(n: u8) -> IkeKeys {
    let k = |i: u8| SecretBytes::new((0..32).map(|j| n ^ i ^ j).collect());
    IkeKeys {
        sk_d: k(1),
        sk_ai: Some(k(2)),
        sk_ar: Some(k(3)),
        sk_ei: k(4),
        sk_er: k(5),
        sk_pi: k(6),
        sk_pr: k(7),
    }
}

/// (initiator -> responder, responder -> initiator) ciphers of key set `n`.
fn ciphers(n: u8) -> (SkCipher, SkCipher) {
    ike_keys(n).sk_ciphers(&suite(), Role::Initiator).unwrap()
}

/// A key log (ikeda's key export) with the IKE SAs `(spi_i, spi_r, key set)`.
fn key_dir(test: &str, sas: &[(u64, u64, u8)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ikeda-explain-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut x = KeyExport::open(&dir).unwrap();
    for (i, r, n) in sas {
        x.ike_sa(&IkeKeyInfo {
            conn: "s2s".into(),
            spi_i: *i,
            spi_r: *r,
            initiator: true,
            suite: suite(),
            keys: ike_keys(*n),
            local: SocketAddr::new(GW1.into(), 500),
            remote: SocketAddr::new(GW2.into(), 500),
        });
    }
    dir
}

/// IKE_SA_INIT lost once (gw1 sends it again after 1 s), answered; the
/// NAT-T float to 4500 at IKE_AUTH; no NAT (the hashes match).
#[test]
fn initiator_retransmission_exchange_times_and_float() {
    let (a, b) = ((GW1, 500), (GW2, 500));
    let (a4, b4) = ((GW1, 4500), (GW2, 4500));
    let req = sa_init(hdr(SPI_I, 0, ExchangeType::IKE_SA_INIT, true, false, 0), a, b, 1);
    let resp = sa_init(hdr(SPI_I, SPI_R, ExchangeType::IKE_SA_INIT, false, true, 0), b, a, 2);
    let file = cap(&[
        (0, ike_packet(a, b, &req)),
        (1000, ike_packet(a, b, &req)),
        (1004, ike_packet(b, a, &resp)),
        (
            1010,
            ike_packet(
                a4,
                b4,
                &opaque(hdr(SPI_I, SPI_R, ExchangeType::IKE_AUTH, true, false, 1), 1),
            ),
        ),
        (
            1030,
            ike_packet(
                b4,
                a4,
                &opaque(hdr(SPI_I, SPI_R, ExchangeType::IKE_AUTH, false, true, 1), 2),
            ),
        ),
    ]);
    let (text, v) = explain(&file, None);
    assert_eq!(
        one(&v, &text, "initiator"),
        "IKE SA 1122334455667788_i 99aabbccddeeff00_r (IKEv2): initiated by 192.168.50.11:500 towards \
         192.168.50.12:500 at 0.000 s (IKE_SA_INIT request, frame 1); established at 1.030 s (IKE_AUTH answered, \
         frame 5), encrypted: its success is not read without the keys"
    );
    assert_eq!(
        one(&v, &text, "retransmission"),
        "IKE SA 1122334455667788_i 99aabbccddeeff00_r: IKE_SA_INIT request 0 from 192.168.50.11:500 sent 2 times \
         (frames 1, 2), 1.000 s apart; answered 1.004 s after the first copy (4.0 ms after the last one before the \
         answer)"
    );
    let r = v["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "retransmission")
        .unwrap();
    assert_eq!(r["count"], 2);
    assert_eq!(r["frames"], serde_json::json!([1, 2]));
    assert!((r["intervals"][0].as_f64().unwrap() - 1.0).abs() < 1e-6, "{r}");
    assert_eq!(
        one(&v, &text, "exchange_times"),
        "IKE SA 1122334455667788_i 99aabbccddeeff00_r: exchanges (first request to response): IKE_AUTH 1 in 20.0 ms, \
         IKE_SA_INIT 1 in 1.004 s"
    );
    assert_eq!(
        one(&v, &text, "nat_float"),
        "IKE SA 1122334455667788_i 99aabbccddeeff00_r: NAT-T float (RFC 7296 §2.23): from UDP 500 to 4500 at \
         IKE_AUTH request 1 (frame 4, 1.010 s): 192.168.50.11:500 -> 192.168.50.11:4500, 192.168.50.12:500 -> \
         192.168.50.12:4500"
    );
    // The hashes match the addresses seen: no NAT is claimed.
    assert!(kind(&v, &text, "nat").is_empty(), "{text}");
    assert!(kind(&v, &text, "unanswered").is_empty(), "{text}");
    assert!(kind(&v, &text, "address_change").is_empty(), "{text}");
}

/// gw1 behind a NAT. Captured inside (gw1's side), the responder's
/// NATD_D_IP names gw1's outside address; captured outside (after a NAT
/// that remaps ports), gw1's own NATD_S_IP names its inside address, and
/// its ports after the float are not 4500.
#[test]
fn nat_told_by_the_detection_hashes_on_either_side() {
    let inside = (GW1_INSIDE, 500);
    let outside = (GW1, 500);
    let b = (GW2, 500);
    let req = |src| sa_init(hdr(SPI_I, 0, ExchangeType::IKE_SA_INIT, true, false, 0), src, b, 1);
    // gw2 answers the address it saw: the NAT's outside one.
    let resp = |seen| sa_init(hdr(SPI_I, SPI_R, ExchangeType::IKE_SA_INIT, false, true, 0), b, seen, 2);

    let file = cap(&[
        (0, ike_packet(inside, b, &req(inside))),
        (5, ike_packet(b, inside, &resp(outside))),
    ]);
    let (text, v) = explain(&file, None);
    assert_eq!(
        one(&v, &text, "nat"),
        "IKE SA 1122334455667788_i 99aabbccddeeff00_r: NAT detected (RFC 7296 §2.23): 192.168.50.12 knows \
         10.50.1.11:500 under another address or port (NATD_D_IP of IKE_SA_INIT response 0, frame 2, does not hash \
         to it): a NAT between this capture point and 192.168.50.12 translates 10.50.1.11:500"
    );

    // Outside, the NAT maps 500 to 40001 and 4500 to 40002.
    let (o500, o4500, b4) = ((GW1, 40001), (GW1, 40002), (GW2, 4500));
    let file = cap(&[
        (0, ike_packet(o500, b, &req(inside))),
        (5, ike_packet(b, o500, &resp(o500))),
        (
            10,
            ike_packet(
                o4500,
                b4,
                &opaque(hdr(SPI_I, SPI_R, ExchangeType::IKE_AUTH, true, false, 1), 1),
            ),
        ),
        (
            20,
            ike_packet(
                b4,
                o4500,
                &opaque(hdr(SPI_I, SPI_R, ExchangeType::IKE_AUTH, false, true, 1), 2),
            ),
        ),
    ]);
    let (text, v) = explain(&file, None);
    assert_eq!(
        one(&v, &text, "nat"),
        "IKE SA 1122334455667788_i 99aabbccddeeff00_r: NAT detected (RFC 7296 §2.23): 192.168.50.11 sends from \
         another address or port than 192.168.50.11:40001 seen here (NATD_S_IP of IKE_SA_INIT request 0, frame 1, \
         does not hash to it): a NAT between 192.168.50.11 and this capture point translates it"
    );
    let float = one(&v, &text, "nat_float");
    assert!(
        float.ends_with(
            "192.168.50.11:40001 -> 192.168.50.11:40002 (its port is not 4500: a NAT maps 192.168.50.11 between it \
             and this capture point), 192.168.50.12:500 -> 192.168.50.12:4500"
        ),
        "{float}"
    );
}

/// Error notifications in IKE_SA_INIT (in clear) and inside IKE_AUTH
/// (decrypted with the key log), with meaning and likely cause; a retry
/// after INVALID_KE_PAYLOAD is not a retransmission.
#[test]
fn failure_notifications_in_plain_words() {
    let (a, b) = ((GW1, 500), (GW2, 500));
    let init = |spi_i, n| sa_init(hdr(spi_i, 0, ExchangeType::IKE_SA_INIT, true, false, 0), a, b, n);
    let refuse = |spi_i, t, data| {
        clear(
            hdr(spi_i, 0, ExchangeType::IKE_SA_INIT, false, true, 0),
            vec![notify(t, data)],
        )
    };
    let (i2r, r2i) = ciphers(1);
    let auth = |resp: bool, inner: &[Payload], c: &SkCipher| {
        sealed(
            hdr(SPI_I, SPI_R, ExchangeType::IKE_AUTH, true ^ resp, resp, 1),
            inner,
            c,
        )
    };
    let file = cap(&[
        // SA 1: no proposal.
        (0, ike_packet(a, b, &init(0x01, 1))),
        (
            3,
            ike_packet(b, a, &refuse(0x01, NotifyType::NO_PROPOSAL_CHOSEN, vec![])),
        ),
        // SA 2: another DH group (31), then the retry, answered.
        (10, ike_packet(a, b, &init(0x02, 2))),
        (
            12,
            ike_packet(b, a, &refuse(0x02, NotifyType::INVALID_KE_PAYLOAD, vec![0, 31])),
        ),
        (20, ike_packet(a, b, &init(0x02, 3))),
        (
            23,
            ike_packet(
                b,
                a,
                &sa_init(hdr(0x02, 0x22, ExchangeType::IKE_SA_INIT, false, true, 0), b, a, 4),
            ),
        ),
        // SA 3 (keyed): IKE_AUTH refused, authentication failed.
        (
            30,
            ike_packet(a, b, &auth(false, &[notify(NotifyType::INITIAL_CONTACT, vec![])], &i2r)),
        ),
        (
            35,
            ike_packet(
                b,
                a,
                &auth(true, &[notify(NotifyType::AUTHENTICATION_FAILED, vec![])], &r2i),
            ),
        ),
    ]);
    let keys = key_dir("failures", &[(SPI_I, SPI_R, 1)]);
    let (text, v) = explain(&file, Some(&keys));
    let f = kind(&v, &text, "failure");
    assert_eq!(f.len(), 3, "{f:#?}");
    assert_eq!(
        f[0],
        "IKE SA 0000000000000001_i 0000000000000000_r: 192.168.50.12 sent N(NO_PROPOSAL_CHOSEN) in IKE_SA_INIT \
         response 0 (frame 2, 0.003 s): none of the IKE proposals is acceptable to 192.168.50.12. Likely cause: the \
         IKE proposals of the two sides (encryption, integrity, PRF, DH group) share no set."
    );
    assert!(
        f[1].contains("sent N(INVALID_KE_PAYLOAD) in IKE_SA_INIT response 0 (frame 4, 0.012 s): 192.168.50.12 wants the key exchange in another Diffie-Hellman group, group 31"),
        "{}",
        f[1]
    );
    assert_eq!(
        f[2],
        "IKE SA 1122334455667788_i 99aabbccddeeff00_r: 192.168.50.12 sent N(AUTHENTICATION_FAILED) in IKE_AUTH \
         response 1 (frame 8, 0.035 s): 192.168.50.12 refused the authentication. Likely cause: a pre-shared key \
         that differs, a certificate 192.168.50.12 does not trust, or an identity (IDi/IDr) it does not expect."
    );
    let json = v["explanation"].as_array().unwrap();
    assert!(json
        .iter()
        .any(|x| x["notify"] == "AUTHENTICATION_FAILED" && x["frames"] == serde_json::json!([8])));
    // The retry is a new request, not a copy; the exchange took until its answer.
    assert!(kind(&v, &text, "retransmission").is_empty(), "{text}");
    let times = kind(&v, &text, "exchange_times");
    assert!(
        times
            .iter()
            .any(|t| t.starts_with("IKE SA 0000000000000002_i 0000000000000022_r")
                && t.ends_with("IKE_SA_INIT 1 in 13.0 ms")),
        "{times:#?}"
    );
    // Refused IKE_AUTH: not established.
    let who = kind(&v, &text, "initiator");
    assert!(
        who.iter()
            .any(|t| t.starts_with("IKE SA 1122334455667788_i") && !t.contains("established at")),
        "{who:#?}"
    );
    let _ = std::fs::remove_dir_all(&keys);
}

/// An ISAKMP message (RFC 2408 §3.1) with `body` after the header.
fn v1_raw(ic: u64, rc: u64, np: u8, exchange: u8, flags: u8, mid: u32, body: &[u8]) -> Vec<u8> {
    let mut m = ic.to_be_bytes().to_vec();
    m.extend_from_slice(&rc.to_be_bytes());
    m.extend_from_slice(&[np, 0x10, exchange, flags]);
    m.extend_from_slice(&mid.to_be_bytes());
    m.extend_from_slice(&((28 + body.len()) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A Vendor ID payload (13) alone: a distinct clear message per `n`.
fn v1_vid(n: u8) -> Vec<u8> {
    vec![0, 0, 0, 12, n, n, n, n, n, n, n, n]
}

/// An unencrypted INFORMATIONAL_V1 with one notification (RFC 2408 §3.14).
fn v1_notify(ic: u64, rc: u64, t: u16, data: &[u8]) -> Vec<u8> {
    let mut n = vec![0, 0, 0, (12 + data.len()) as u8, 0, 0, 0, 1, 1, 0];
    n.extend_from_slice(&t.to_be_bytes());
    n.extend_from_slice(data);
    v1_raw(ic, rc, 11, 5, 0, 0x1234, &n)
}

/// IKEv1: a Main Mode that stops after message 5 (sent twice), one
/// refused with NO_PROPOSAL_CHOSEN in clear; an IKEv2 IKE_SA_INIT never
/// answered; and DPD, one R-U-THERE acknowledged, one not.
#[test]
fn unanswered_requests_and_stopped_exchanges() {
    let (a, b) = ((GW1, 500), (GW2, 500));
    let (ic, rc) = (0xaaaa_0000_0000_0001, 0xbbbb_0000_0000_0001);
    let mm = |rc, n| v1_raw(ic, rc, 13, 2, 0, 0, &v1_vid(n));
    let mm5 = v1_raw(ic, rc, 5, 2, 1, 0, &[0x77; 64]);
    let never = sa_init(hdr(0x0b, 0, ExchangeType::IKE_SA_INIT, true, false, 0), a, b, 9);
    let dpd = |ack: bool, seq: u32, mid: u32| {
        let t = if ack { 36137u16 } else { 36136 };
        let mut n = vec![0, 0, 0, 32, 0, 0, 0, 1, 1, 16];
        n.extend_from_slice(&t.to_be_bytes());
        n.extend_from_slice(&ic.to_be_bytes());
        n.extend_from_slice(&rc.to_be_bytes());
        n.extend_from_slice(&seq.to_be_bytes());
        v1_raw(ic, rc, 11, 5, 0, mid, &n)
    };
    let file = cap(&[
        (0, ike_packet(a, b, &mm(0, 1))),
        (2, ike_packet(b, a, &mm(rc, 2))),
        (4, ike_packet(a, b, &mm(rc, 3))),
        (6, ike_packet(b, a, &mm(rc, 4))),
        (8, ike_packet(a, b, &mm5)),
        (4008, ike_packet(a, b, &mm5)),
        // Another phase 1, refused in clear.
        (5000, ike_packet(a, b, &v1_raw(0xcc, 0, 13, 2, 0, 0, &v1_vid(7)))),
        (5002, ike_packet(b, a, &v1_notify(0xcc, 0xdd, 14, &[]))),
        // IKEv2 to a peer that never answers, three times.
        (6000, ike_packet(a, b, &never)),
        (7000, ike_packet(a, b, &never)),
        (9000, ike_packet(a, b, &never)),
        // DPD: 7 answered in 1 ms, 8 not.
        (9500, ike_packet(a, b, &dpd(false, 7, 1))),
        (9501, ike_packet(b, a, &dpd(true, 7, 2))),
        (9600, ike_packet(a, b, &dpd(false, 8, 3))),
        (10000, build_ipv4(GW1, GW2, IpProtocol::ICMP, &[8, 0, 0, 0])),
    ]);
    let (text, v) = explain(&file, None);
    let u = kind(&v, &text, "unanswered");
    assert_eq!(u.len(), 4, "{u:#?}\n{text}");
    assert_eq!(
        u[0],
        "ISAKMP SA aaaa000000000001_i bbbb000000000001_r: Main Mode stopped after message 5 of 6 (the last from \
         192.168.50.11:500 to 192.168.50.12:500, sent 2 times over 4.000 s); the capture continues 5.992 s after \
         the last copy: 192.168.50.12 did not answer the encrypted identity and HASH (message 5): it could not \
         decrypt or verify it; most often the pre-shared keys of the two sides differ"
    );
    assert!(
        u[1].starts_with("ISAKMP SA aaaa000000000001_i bbbb000000000001_r: DPD R-U-THERE 8 from 192.168.50.11:500 to 192.168.50.12:500 (frame 14, 9.600 s) was never acknowledged"),
        "{}",
        u[1]
    );
    assert!(
        u[2].starts_with("ISAKMP SA 00000000000000cc_i 00000000000000dd_r: Main Mode stopped after message 1 of 6")
            && u[2].ends_with("it was refused: N(NO_PROPOSAL_CHOSEN) in frame 8"),
        "{}",
        u[2]
    );
    assert_eq!(
        u[3],
        "IKE SA 000000000000000b_i 0000000000000000_r: IKE_SA_INIT request 0 from 192.168.50.11:500 to \
         192.168.50.12:500 was never answered (sent 3 times over 3.000 s); the capture continues 1.000 s after the \
         last copy: 192.168.50.12 does not answer IKE on UDP 500: it is down, not listening, or a firewall on the \
         way drops the request (or the answer, before this capture point)"
    );
    let r = kind(&v, &text, "retransmission");
    assert!(
        r.iter().any(|t| t.contains(
            "ID_PROT message 5 from 192.168.50.11:500 sent 2 times (frames 5, 6), 4.000 s apart; never answered"
        )),
        "{r:#?}"
    );
    assert!(r.iter().any(|t| t.contains("IKE_SA_INIT request 0 from 192.168.50.11:500 sent 3 times (frames 9, 10, 11), 1.000 s, 2.000 s apart; never answered")), "{r:#?}");
    let f = one(&v, &text, "failure");
    assert_eq!(
        f,
        "ISAKMP SA 00000000000000cc_i 00000000000000dd_r: 192.168.50.12 sent N(NO_PROPOSAL_CHOSEN) in \
         INFORMATIONAL_V1 request 4660 (frame 8, 5.002 s): none of the phase-1 proposals is acceptable to \
         192.168.50.12. Likely cause: the phase-1 proposals (cipher, hash, DH group, authentication method, \
         lifetime) share no set."
    );
    let times = kind(&v, &text, "exchange_times");
    assert!(
        times.iter().any(|t| t.ends_with(
            "DPD 2 (1 unanswered) in 1.0 ms, ID_PROT 1 (5 messages) (1 unanswered)"
        )),
        "{times:#?}"
    );
}

/// gw1 and gw2 initiate at 0 and 0.3 s; gw2's SA is deleted (DELETE read
/// with the keys): gw1's survived.
#[test]
fn both_sides_initiating_at_once_and_the_survivor() {
    let (a, b) = ((GW1, 500), (GW2, 500));
    let (s1, s2) = ((0x0a01u64, 0x0b01u64), (0x0b02u64, 0x0a02u64));
    let (i2r, r2i) = ciphers(2);
    // Without the keys, the SA used last is named, with that reservation.
    let file = cap(&[
        (
            0,
            ike_packet(
                a,
                b,
                &sa_init(hdr(s1.0, 0, ExchangeType::IKE_SA_INIT, true, false, 0), a, b, 1),
            ),
        ),
        (
            300,
            ike_packet(
                b,
                a,
                &sa_init(hdr(s2.0, 0, ExchangeType::IKE_SA_INIT, true, false, 0), b, a, 2),
            ),
        ),
        (
            302,
            ike_packet(
                a,
                b,
                &sa_init(hdr(s2.0, s2.1, ExchangeType::IKE_SA_INIT, false, true, 0), a, b, 3),
            ),
        ),
        (
            303,
            ike_packet(
                b,
                a,
                &sa_init(hdr(s1.0, s1.1, ExchangeType::IKE_SA_INIT, false, true, 0), b, a, 4),
            ),
        ),
        // gw2 deletes its own (the duplicate).
        (
            900,
            ike_packet(
                b,
                a,
                &sealed(
                    hdr(s2.0, s2.1, ExchangeType::INFORMATIONAL, true, false, 2),
                    &[Payload::Delete(DeletePayload::ike())],
                    &i2r,
                ),
            ),
        ),
        (
            901,
            ike_packet(
                a,
                b,
                &sealed(hdr(s2.0, s2.1, ExchangeType::INFORMATIONAL, false, true, 2), &[], &r2i),
            ),
        ),
    ]);
    let keys = key_dir("simultaneous", &[(s2.0, s2.1, 2)]);
    let (text, v) = explain(&file, Some(&keys));
    assert_eq!(
        one(&v, &text, "simultaneous_initiation"),
        "Both sides initiated at once: 192.168.50.11 initiated IKE SA 0000000000000a01_i 0000000000000b01_r at \
         0.000 s and 192.168.50.12 initiated IKE SA 0000000000000b02_i 0000000000000a02_r at 0.300 s (300.0 ms \
         apart). 0000000000000a01_i 0000000000000b01_r survived (0000000000000b02_i 0000000000000a02_r was deleted \
         by 192.168.50.12 at 0.900 s (frame 5)); 0000000000000b02_i 0000000000000a02_r was the duplicate (RFC 7296 \
         §2.8.1)"
    );
    let who = kind(&v, &text, "initiator");
    assert!(
        who[1].ends_with("; deleted by 192.168.50.12 at 0.900 s (frame 5)"),
        "{who:#?}"
    );
    let _ = std::fs::remove_dir_all(&keys);

    // Without the keys, the survivor is the one still used at the end.
    let (text, v) = explain(&file, None);
    let s = one(&v, &text, "simultaneous_initiation");
    assert!(
        s.contains("0000000000000b02_i 0000000000000a02_r most likely survived (it was used last: its last message at 0.901 s (frame 6), 0000000000000a01_i 0000000000000b01_r's at 0.303 s (frame 4); no DELETE of either was read (encrypted: with --keys, ikeda pcap reads them))"),
        "{s}"
    );
}

fn esp_sa(spi: u32) -> Payload {
    Payload::Sa(SaPayload {
        proposals: vec![Proposal {
            proposal_num: 1,
            protocol_id: ProtocolId::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms: vec![Transform::encr(EncrTransformId::ENCR_AES_GCM_16, Some(128))],
        }],
    })
}

fn delete_esp(spi: u32) -> Payload {
    Payload::Delete(DeletePayload {
        protocol_id: ProtocolId::ESP,
        spi_size: 4,
        spis: vec![spi.to_be_bytes().to_vec()],
    })
}

/// A CHILD SA rekey (RFC 7296 §1.3.3, §2.8): gw1 rekeys its SA (inbound
/// 0xb1, gw2's 0xa1) into 0xb2/0xa2, moves its own traffic at once, then
/// deletes the old pair. `late`: gw1 still sends 3 packets on 0xa1 after
/// the DELETE was answered; `early`: gw2 sends on its new SA as it
/// answers the DELETE.
fn rekey_capture(late: bool, early: bool) -> Vec<u8> {
    let (a, b) = ((GW1, 500), (GW2, 500));
    let (i2r, r2i) = ciphers(3);
    let rekey_sa = Payload::Notify(NotifyPayload {
        protocol_id: ProtocolId::ESP,
        spi: 0xb1u32.to_be_bytes().to_vec(),
        notify_type: NotifyType::REKEY_SA,
        data: vec![],
    });
    let x = |ex, resp: bool, mid, inner: &[Payload]| {
        let c = if resp { &r2i } else { &i2r };
        sealed(hdr(SPI_I, SPI_R, ex, !resp, resp, mid), inner, c)
    };
    let mut p = Vec::new();
    // An echo request out and its reply back, with their sequence numbers.
    let ping = |p: &mut Vec<(u64, Vec<u8>)>, ms: u64, out: (u32, u32), back: (u32, u32)| {
        p.push((ms, esp(GW1, GW2, out.0, out.1)));
        p.push((ms + 1, esp(GW2, GW1, back.0, back.1)));
    };
    for i in 0..5 {
        ping(&mut p, u64::from(i) * 200, (0xa1, i + 1), (0xb1, i + 1));
    }
    p.push((
        1000,
        ike_packet(
            a,
            b,
            &x(ExchangeType::CREATE_CHILD_SA, false, 2, &[rekey_sa, esp_sa(0xb2)]),
        ),
    ));
    p.push((
        1002,
        ike_packet(b, a, &x(ExchangeType::CREATE_CHILD_SA, true, 2, &[esp_sa(0xa2)])),
    ));
    // gw1 sends on the new SA at once; gw2 answers on the old one until the DELETE.
    ping(&mut p, 1100, (0xa2, 1), (0xb1, 6));
    p.push((
        1200,
        ike_packet(a, b, &x(ExchangeType::INFORMATIONAL, false, 3, &[delete_esp(0xb1)])),
    ));
    p.push((
        1201,
        ike_packet(b, a, &x(ExchangeType::INFORMATIONAL, true, 3, &[delete_esp(0xa1)])),
    ));
    if early {
        p.push((1201, esp(GW2, GW1, 0xb2, 100)));
    }
    if late {
        for i in 0..3 {
            p.push((1300 + i, esp(GW1, GW2, 0xa1, 100 + i as u32)));
        }
    }
    for i in 0..3 {
        ping(&mut p, 1400 + u64::from(i) * 200, (0xa2, i + 2), (0xb2, i + 1));
    }
    cap(&p)
}

#[test]
fn child_rekey_traffic_moved_before_the_delete() {
    let keys = key_dir("rekey", &[(SPI_I, SPI_R, 3)]);
    let (text, v) = explain(&rekey_capture(false, false), Some(&keys));
    let r = one(&v, &text, "child_rekey");
    assert_eq!(
        r,
        "IKE SA 1122334455667788_i 99aabbccddeeff00_r: CHILD SA rekeyed: SPIs 0x000000b1/0x000000a1 replaced by \
         0x000000b2/0x000000a2 (CREATE_CHILD_SA request 2 at 1.000 s, frame 11); the old SAs deleted by \
         192.168.50.11 at 1.200 s (INFORMATIONAL request 3, frame 15, answered at 1.201 s); the last packet on the \
         old SPIs at 1.101 s, the first on the new ones: 0x000000a2 at 1.100 s, 0x000000b2 at 1.401 s; no packet on \
         the old SPIs after the DELETE, the new SA carries the traffic after it: none lost"
    );
    let f = v["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "child_rekey")
        .unwrap()
        .clone();
    assert_eq!(f["moved_before_delete"], true);
    assert_eq!(f["lost"], 0);
    // No flow went one way, and none were mistaken for an unexplained SPI change.
    assert!(kind(&v, &text, "esp_one_way").is_empty(), "{text}");
    assert!(kind(&v, &text, "esp_spi_change").is_empty(), "{text}");
    // The ESP keys are not in this key log: said once, for all four SPIs.
    assert!(
        one(&v, &text, "no_key")
            .starts_with("No key for 0x000000a1, 0x000000a2, 0x000000b1, 0x000000b2 (18 packets in 4 flows)"),
        "{text}"
    );

    // Both directions on the new SA by the time the DELETE is answered.
    let (text, v) = explain(&rekey_capture(false, true), Some(&keys));
    let r = one(&v, &text, "child_rekey");
    assert!(
        r.ends_with(
            "the first on the new ones: 0x000000a2 at 1.100 s, 0x000000b2 at 1.201 s; the traffic moved to the new \
             SA before the old one was deleted: none lost"
        ),
        "{r}"
    );

    let (text, v) = explain(&rekey_capture(true, false), Some(&keys));
    let r = one(&v, &text, "child_rekey");
    assert!(
        r.ends_with(
            "the last packet on the old SPIs at 1.302 s, the first on the new ones: 0x000000a2 at 1.100 s, \
             0x000000b2 at 1.401 s; 3 packets on the old SPIs after the DELETE was answered (0x000000a1 3; the \
             first in frame 17 at 1.300 s): lost — neither side has those SAs any more"
        ),
        "{r}"
    );
    let f = v["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "child_rekey")
        .unwrap()
        .clone();
    assert_eq!(f["moved_before_delete"], false);
    assert_eq!(f["lost"], 3);

    // Without the keys: told from the flows, and what cannot be known is said.
    let (text, v) = explain(&rekey_capture(false, false), None);
    assert!(kind(&v, &text, "child_rekey").is_empty(), "{text}");
    let c = kind(&v, &text, "esp_spi_change");
    assert_eq!(c.len(), 2, "{c:#?}");
    assert_eq!(
        c[0],
        "ESP 192.168.50.11 -> 192.168.50.12 moved from 0x000000a1 to 0x000000a2 (a new SPI) at 1.100 s (frame 13), \
         most likely a CHILD SA rekey; the last packet on the old SPI at 0.800 s; its DELETE is encrypted: with \
         --keys, ikeda pcap tells whether packets on the old SPI were lost"
    );
    let _ = std::fs::remove_dir_all(&keys);
}

/// ESP from gw1 to gw2 with nothing back; and the other way a flow whose
/// reverse ended long before.
#[test]
fn esp_one_way_only() {
    let mut p = Vec::new();
    for i in 0..4u32 {
        p.push((u64::from(i) * 100, esp(GW1, GW2, 0xc1, i + 1)));
        p.push((u64::from(i) * 100 + 1, esp(GW2, GW1, 0xd1, i + 1)));
    }
    for i in 0..5u32 {
        p.push((10_000 + u64::from(i) * 100, esp(GW1, GW2, 0xc2, i + 1)));
    }
    let (text, v) = explain(&cap(&p), None);
    assert_eq!(
        one(&v, &text, "esp_one_way"),
        "ESP one way only: 192.168.50.11 -> 192.168.50.12 on 0x000000c2 (5 packets, 10.000-10.400 s) and no ESP from \
         192.168.50.12 back to 192.168.50.11 in that time: 192.168.50.12 receives but sends nothing back through \
         the tunnel (its inbound SA does not decrypt — other keys —, its policy drops the traffic, or the answers \
         go another way)"
    );
    // Without keys nothing is said of keys.
    assert!(kind(&v, &text, "no_key").is_empty());
}

/// More IKE SAs than the table holds: the rest counted; findings per
/// kind capped, the rest counted.
#[test]
fn tables_and_findings_are_bounded() {
    let (a, b) = ((GW1, 500), (GW2, 500));
    let n = super::explain::MAX_IKE_SAS + 10;
    let p: Vec<(u64, Vec<u8>)> = (0..n)
        .map(|i| {
            let m = sa_init(
                hdr(0x1000 + i as u64, 0, ExchangeType::IKE_SA_INIT, true, false, 0),
                a,
                b,
                1,
            );
            (i as u64, ike_packet(a, b, &m))
        })
        .collect();
    let (text, v) = explain(&cap(&p), None);
    let all = v["explanation"].as_array().unwrap();
    let max = super::explain::MAX_PER_KIND;
    assert_eq!(all.iter().filter(|f| f["kind"] == "initiator").count(), max);
    assert_eq!(all.iter().filter(|f| f["kind"] == "unanswered").count(), max);
    let more = kind(&v, &text, "more");
    assert!(
        more.contains(&"10 IKE messages of IKE SAs beyond the 1024 tracked are not explained".to_string()),
        "{more:#?}"
    );
    assert!(
        more.contains(&format!("... and {} more findings of kind initiator", 1024 - max)),
        "{more:#?}"
    );
}

/// Network bytes never make the explanation panic: every capture above,
/// with bytes changed at pseudo-random places (a fixed xorshift, so a
/// failure repeats), keys and all.
#[test]
fn mutated_captures_are_explained_without_panic() {
    let keys = key_dir("mutated", &[(SPI_I, SPI_R, 3)]);
    let (a, b) = ((GW1, 500), (GW2, 500));
    let clear_ike = cap(&[
        (
            0,
            ike_packet(
                a,
                b,
                &sa_init(hdr(SPI_I, 0, ExchangeType::IKE_SA_INIT, true, false, 0), a, b, 1),
            ),
        ),
        (
            1,
            ike_packet(
                b,
                a,
                &sa_init(hdr(SPI_I, SPI_R, ExchangeType::IKE_SA_INIT, false, true, 0), b, a, 2),
            ),
        ),
        (2, ike_packet(a, b, &v1_raw(0xcc, 0, 13, 2, 0, 0, &v1_vid(7)))),
        (3, ike_packet(b, a, &v1_notify(0xcc, 0xdd, 14, &[]))),
        (4, ike_packet(b, a, &v1_notify(0xcc, 0xdd, 36136, &[0, 0, 0, 1]))),
    ]);
    let bases = [rekey_capture(true, true), rekey_capture(false, false), clear_ike];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let mut f = bases[round % 3].clone();
        for _ in 0..1 + next() % 8 {
            // Past the file header, so that most mutants are still read.
            let at = 24 + (next() as usize) % (f.len() - 24);
            f[at] = next() as u8;
        }
        let store = |k: Option<&Path>| {
            let mut a = Analyzer::new(Limits::default(), false, round % 3 == 0);
            if let Some(k) = k {
                let mut s = KeyStore::default();
                s.load(k).unwrap();
                a = a.with_keys(s);
            }
            a
        };
        let mut a = store(if round % 2 == 0 { Some(&keys) } else { None });
        let mut out = Vec::new();
        let mut format = String::new();
        let _ = read_capture(&f[..], |p| a.packet(p, &mut out), &mut format);
        a.finish(&format, &mut out);
    }
    let _ = std::fs::remove_dir_all(&keys);
}
