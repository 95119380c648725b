//! `ikeda pcap --keys`: captures built with ikeda's own crypto (the SK
//! payload cipher of the IKEv2 engine, the data plane's outbound SAs) and
//! a key log written by ikeda's own key export; the analyzer must decrypt
//! them and say, per SA, when it cannot and why.

use super::analyze::{Analyzer, Limits};
use super::keys::KeyStore;
use super::read_capture;
use super::tests::udp;
use crate::keys::{KeyExport, KEY_LOG};
use ikeda_crypto::ike::{DhGroup, Encr, IkeKeys, IkeSuite, Integ, Prf, SeededRng, SkCipher};
use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_esp::{Encap, OutboundSa, SaParams};
use ikeda_ike::ikev2::{ChildSaInfo, IkeKeyInfo};
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip::build_ipv4;
use ikeda_wire::pcap::{link_type, pcap_file_header, pcap_record, Timestamp};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

const GW1: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 11);
const GW2: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 12);
const H1: Ipv4Addr = Ipv4Addr::new(192, 168, 11, 11);
const H2: Ipv4Addr = Ipv4Addr::new(192, 168, 12, 12);
const SPI_I: u64 = 0x1122_3344_5566_7788;
const SPI_R: u64 = 0x99aa_bbcc_ddee_ff00;

fn key(n: u8, len: usize) -> SecretBytes {
    SecretBytes::new((0..len).map(|i| n ^ i as u8).collect())
}

fn suite() -> IkeSuite {
    IkeSuite {
        encr: Encr::AesCbc { key_bits: 256 },
        integ: Some(Integ::HmacSha256_128),
        prf: Prf::HmacSha256,
        dh: DhGroup::Curve25519,
    }
}

fn ike_keys() -> IkeKeys {
    IkeKeys {
        sk_d: key(1, 32),
        sk_ai: Some(key(2, 32)),
        sk_ar: Some(key(3, 32)),
        sk_ei: key(4, 32),
        sk_er: key(5, 32),
        sk_pi: key(6, 32),
        sk_pr: key(7, 32),
    }
}

fn addr(a: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(a.into(), port)
}

/// The CHILD SAs of the test: one per cipher the data plane has, and one
/// with extended sequence numbers. (algorithm, esn, SPI gw1 -> gw2).
fn child_sas() -> Vec<(EspAlgorithm, bool, u32)> {
    vec![
        (EspAlgorithm::AesGcm16 { key_bits: 128 }, false, 0xc000_0001),
        (EspAlgorithm::parse("aes128-sha256").unwrap(), false, 0xc000_0002),
        (EspAlgorithm::ChaCha20Poly1305, false, 0xc000_0003),
        (EspAlgorithm::parse("3des-sha1").unwrap(), false, 0xc000_0004),
        (EspAlgorithm::AesGcm16 { key_bits: 256 }, true, 0xc000_0005),
    ]
}

fn child_info(alg: EspAlgorithm, esn: bool, spi_out: u32) -> ChildSaInfo {
    let n = spi_out as u8;
    ChildSaInfo {
        conn: "s2s".into(),
        algorithm: alg,
        esn,
        spi_in: spi_out ^ 0x0f00_0000,
        spi_out,
        enc_in: key(0x40 + n, alg.enc_key_len()),
        auth_in: (alg.auth_key_len() > 0).then(|| key(0x50 + n, alg.auth_key_len())),
        enc_out: key(0x60 + n, alg.enc_key_len()),
        auth_out: (alg.auth_key_len() > 0).then(|| key(0x70 + n, alg.auth_key_len())),
        local_ts: vec![],
        remote_ts: vec![],
        local: addr(GW1, 500),
        remote: addr(GW2, 500),
        udp_encap: false,
        peer_takes_trains: false,
        replaces: None,
        activate_outbound: true,
        pair: 0,
        ipcomp: None,
    }
}

/// gw1's key log, written by ikeda's key export.
fn key_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ikeda-pcap-keys-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut x = KeyExport::open(&dir).unwrap();
    x.ike_sa(&IkeKeyInfo {
        conn: "s2s".into(),
        spi_i: SPI_I,
        spi_r: SPI_R,
        initiator: true,
        suite: suite(),
        keys: ike_keys(),
        local: addr(GW1, 500),
        remote: addr(GW2, 500),
    });
    for (alg, esn, spi) in child_sas() {
        x.child_sa(&child_info(alg, esn, spi), addr(GW1, 500), addr(GW2, 500));
    }
    dir
}

/// IKE_AUTH (exchange 35) with an SK payload around `inner`, whose first
/// payload is `first`, sealed as the engine seals it.
fn ike_auth(spi_i: u64, spi_r: u64, response: bool, first: u8, inner: &[u8], cipher: &SkCipher) -> Vec<u8> {
    let body_len = cipher.sk_body_len(inner.len());
    let total = 28 + 4 + body_len;
    let mut m = spi_i.to_be_bytes().to_vec();
    m.extend_from_slice(&spi_r.to_be_bytes());
    let flags = if response { 0x20 } else { 0x08 };
    m.extend_from_slice(&[46, 0x20, 35, flags]);
    m.extend_from_slice(&1u32.to_be_bytes());
    m.extend_from_slice(&(total as u32).to_be_bytes());
    m.extend_from_slice(&[first, 0]);
    m.extend_from_slice(&((4 + body_len) as u16).to_be_bytes());
    cipher
        .encrypt_message(&mut m, inner, &mut SeededRng::new(b"pcap"))
        .unwrap();
    m
}

/// `ID(type 1, addr) AUTH(method 2, 32 bytes)`: first payload ID (35 or 36).
fn id_auth(addr: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![39, 0, 0, 12, 1, 0, 0, 0];
    p.extend_from_slice(&addr.octets());
    p.extend_from_slice(&[0, 0, 0, 40, 2, 0, 0, 0]);
    p.extend_from_slice(&[0xaa; 32]);
    p
}

fn icmp(seq: u8) -> Vec<u8> {
    build_ipv4(H1, H2, IpProtocol::ICMP, &[8, 0, 0, 0, 0, 1, 0, seq, 1, 2, 3, 4])
}

fn tcp() -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[12] = 0x50;
    build_ipv4(H1, H2, IpProtocol::TCP, &t)
}

/// Seal `inner` on an outbound SA as the data plane does.
fn seal(sa: &mut OutboundSa, inner: &[u8]) -> Vec<u8> {
    let room = sa.room();
    let mut buf = vec![0u8; room.head + inner.len() + room.tail];
    buf[room.head..room.head + inner.len()].copy_from_slice(inner);
    let r = sa.encapsulate(&mut buf, room.head, inner.len(), 0).unwrap();
    buf[r].to_vec()
}

fn outbound(alg: EspAlgorithm, esn: bool, spi: u32, enc: SecretBytes, auth: Option<SecretBytes>) -> OutboundSa {
    OutboundSa::new(&SaParams {
        spi,
        algorithm: alg,
        enc_key: enc,
        auth_key: auth,
        esn,
        replay_window: 64,
        local: addr(GW1, 500),
        remote: addr(GW2, 500),
        encap: Encap::Esp,
        selectors: vec![],
        ipcomp: None,
    })
    .unwrap()
}

fn capture(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut f = pcap_file_header(link_type::RAW, 65535, false);
    for (i, p) in packets.iter().enumerate() {
        let t = Timestamp {
            secs: 1_700_000_000,
            nanos: i as u32 * 1000,
        };
        f.extend(pcap_record(t, p, p.len() as u32, false));
    }
    f
}

fn conversation() -> Vec<Vec<u8>> {
    let (i_to_r, r_to_i) = ike_keys()
        .sk_ciphers(&suite(), ikeda_crypto::ike::Role::Initiator)
        .unwrap();
    let ike = |src, dst, m: Vec<u8>| build_ipv4(src, dst, IpProtocol::UDP, &udp(500, 500, &m));
    let mut p = vec![
        ike(GW1, GW2, ike_auth(SPI_I, SPI_R, false, 35, &id_auth(GW1), &i_to_r)),
        ike(GW2, GW1, ike_auth(SPI_I, SPI_R, true, 36, &id_auth(GW2), &r_to_i)),
        // An IKE SA the key log does not have, twice: said once.
        ike(GW1, GW2, ike_auth(0xdead, 0xbeef, false, 35, &id_auth(GW1), &i_to_r)),
        ike(GW1, GW2, ike_auth(0xdead, 0xbeef, false, 35, &id_auth(GW1), &i_to_r)),
    ];
    // The right SPIs, sealed with the other direction's keys.
    p.push(ike(GW2, GW1, ike_auth(SPI_I, SPI_R, true, 36, &id_auth(GW2), &i_to_r)));
    for (alg, esn, spi) in child_sas() {
        let c = child_info(alg, esn, spi);
        let mut sa = outbound(alg, esn, spi, c.enc_out, c.auth_out);
        if esn {
            // Across 2^32: the high half is in the ICV (RFC 4303 §2.2.1).
            sa = sa.with_last_seq(u32::MAX as u64 - 2);
        }
        for inner in [icmp(1), icmp(2), icmp(3), tcp()] {
            p.push(build_ipv4(GW1, GW2, IpProtocol::ESP, &seal(&mut sa, &inner)));
        }
    }
    // An SPI no key covers, and one whose packets were sealed with another key.
    let gcm = EspAlgorithm::AesGcm16 { key_bits: 128 };
    let mut nokey = outbound(gcm, false, 0x0000_beef, key(9, 20), None);
    let mut wrong = outbound(gcm, false, 0xc000_0001 ^ 0x0f00_0000, key(9, 20), None);
    for _ in 0..3 {
        p.push(build_ipv4(GW1, GW2, IpProtocol::ESP, &seal(&mut nokey, &icmp(9))));
        p.push(build_ipv4(GW2, GW1, IpProtocol::ESP, &seal(&mut wrong, &icmp(9))));
    }
    p
}

fn run(test: &str, verbose: bool, json: bool) -> String {
    run_with(test, Limits::default(), verbose, json)
}

fn run_with(test: &str, limits: Limits, verbose: bool, json: bool) -> String {
    let dir = key_dir(test);
    let mut store = KeyStore::default();
    store.load(&dir).unwrap();
    assert!(store.problems.is_empty(), "{:?}", store.problems);
    let _ = std::fs::remove_dir_all(&dir);
    let mut a = Analyzer::new(limits, verbose, json).with_keys(store);
    let mut out = Vec::new();
    if json {
        out.extend_from_slice(b"{\"file\":\"t\",\"messages\":[");
    }
    let mut format = String::new();
    let file = capture(&conversation());
    read_capture(&file[..], |p| a.packet(p, &mut out), &mut format).unwrap();
    a.finish(&format, &mut out);
    String::from_utf8(out).unwrap()
}

fn line<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with `{what}` in:\n{out}"))
}

#[test]
fn ike_auth_payloads_are_decrypted_and_a_missing_or_wrong_key_is_named() {
    let out = run("ike", false, false);
    let l = line(&out, "IKE_AUTH request 1 [ IDi AUTH ]");
    assert!(
        l.contains(&format!("{SPI_I:016x}_i")) && l.contains("decrypted from"),
        "{l}"
    );
    line(&out, "IKE_AUTH response 1 [ IDr AUTH ] ");
    let nokey = format!("no key for IKE SA {:016x}_i {:016x}_r", 0xdead, 0xbeef);
    assert_eq!(out.matches(&nokey).count(), 1, "{out}");
    assert_eq!(out.matches("IKE_AUTH request 1 [ E ]").count(), 2, "{out}");
    let wrong = line(&out, "IKE_AUTH response 1 [ E ]");
    assert!(
        wrong.contains(&format!(
            "ICV mismatch: wrong key for IKE SA {SPI_I:016x}_i {SPI_R:016x}_r (SK_er/SK_ar"
        )),
        "{wrong}"
    );
}

#[test]
fn verbose_prints_the_payloads_inside_sk() {
    let out = run("verbose", true, false);
    let after = out.split("IKE_AUTH request 1 [ IDi AUTH ]").nth(1).unwrap();
    let next: Vec<&str> = after.lines().skip(1).take(2).collect();
    assert!(next[0].trim_start().starts_with("IdI"), "{out}");
    assert!(next[1].trim_start().starts_with("Auth"), "{out}");
}

#[test]
fn esp_of_every_cipher_and_esn_is_decrypted_per_flow() {
    let out = run("esp", false, false);
    for (alg, _, spi) in child_sas() {
        let l = line(&out, &format!("SPI {spi:#010x}:"));
        assert!(l.contains("; decrypted 4 (ICMP 3, TCP 1)"), "{alg}: {l}");
        assert!(!l.contains("ICV"), "{alg}: {l}");
    }
    let nokey = "no key for SPI 0x0000beef";
    assert_eq!(out.matches(nokey).count(), 1, "{out}");
    let wrong = line(&out, "SPI 0xcf000001:");
    assert!(
        wrong.contains("; decrypted 0, 3 ICV mismatch: wrong key for SPI 0xcf000001"),
        "{wrong}"
    );
}

#[test]
fn json_carries_decryption_per_message_and_flow() {
    let out = run("json", false, true);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &v["messages"][0];
    assert_eq!(m["decrypted"], true, "{m}");
    assert!(m["summary"].as_str().unwrap().contains("[ IDi AUTH ]"), "{m}");
    let flows = v["flows"].as_array().unwrap();
    let gcm = flows.iter().find(|f| f["spi"] == "0xc0000001").unwrap();
    assert_eq!(gcm["decryption"]["decrypted"], 4, "{gcm}");
    assert_eq!(gcm["decryption"]["inner"]["ICMP"], 3, "{gcm}");
    let nokey = flows.iter().find(|f| f["spi"] == "0x0000beef").unwrap();
    assert_eq!(nokey["decryption"]["key"], false, "{nokey}");
}

/// A garbage key file is refused with its name and no content; a line
/// with a bad key is named by line and field, never by value.
#[test]
fn bad_key_files_are_named_never_echoed() {
    let dir = std::env::temp_dir().join(format!("ikeda-pcap-badkeys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let e = KeyStore::default().load(&dir).err().unwrap();
    assert!(e.contains(KEY_LOG), "{e}");
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, b"\x00\x01secretsecret\n").unwrap();
    let e = KeyStore::default().load(&garbage).err().unwrap();
    assert!(e.contains("not a key file ikeda knows") && !e.contains("secret"), "{e}");
    let mut s = KeyStore::default();
    let good = std::fs::read_to_string(key_dir("bad").join(KEY_LOG)).unwrap();
    let bad = good.replacen("\"sk_ei\":\"", "\"sk_ei\":\"zz5ec7e7", 1);
    s.load_key_log("log", &bad).unwrap();
    assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
    assert!(
        s.problems[0].contains("line 1") && s.problems[0].contains("sk_ei"),
        "{:?}",
        s.problems
    );
    assert!(!s.problems[0].contains("5ec7e7"));
    // A file far larger than any key log is refused before it is read.
    let huge = dir.join("huge");
    std::fs::File::create(&huge).unwrap().set_len(1 << 40).unwrap();
    let e = KeyStore::default().load(&huge).err().unwrap();
    assert!(e.contains("larger than"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(key_dir("bad"));
}

/// Each decrypting flow holds its SAs (keys, a 4096-packet window): a
/// capture with more flows on keyed SPIs than the bound gets the rest
/// counted, not decrypted.
#[test]
fn decrypting_flows_are_bounded_and_the_rest_counted() {
    let limits = Limits {
        max_decrypting_flows: 2,
        ..Limits::default()
    };
    let out = run_with("bound", limits, false, false);
    let flows: Vec<&str> = out.lines().filter(|l| l.contains(" SPI 0x")).collect();
    assert_eq!(flows.len(), 7, "{out}");
    let decrypting = flows.iter().filter(|l| l.contains("; decrypted 4 ")).count();
    assert_eq!(decrypting, 2, "{out}");
    let over = flows.iter().filter(|l| l.contains(" beyond decryption table")).count();
    assert_eq!(over, 4, "{out}");
}

// ---- IKEv1: Main Mode 5/6, Quick Mode, Informational (RFC 2409 App. B) ----

const ICOOKIE: u64 = 0x0102_0304_0506_0708;
const RCOOKIE: u64 = 0x1112_1314_1516_1718;

fn v1_info() -> ikeda_ike::ikev2::V1KeyInfo {
    ikeda_ike::ikev2::V1KeyInfo {
        conn: "s2s".into(),
        icookie: ICOOKIE,
        rcookie: RCOOKIE,
        initiator: true,
        suite: IkeSuite {
            encr: Encr::AesCbc { key_bits: 128 },
            integ: Some(Integ::HmacSha256_128),
            prf: Prf::HmacSha256,
            dh: DhGroup::Modp2048,
        },
        skeyid: key(0x21, 32),
        skeyid_d: key(0x22, 32),
        skeyid_a: key(0x23, 32),
        skeyid_e: key(0x24, 32),
        enc_key: key(0x25, 16),
        iv: key(0x26, 16).expose().to_vec(),
        phase1_last_block: None,
        local: addr(GW1, 500),
        remote: addr(GW2, 500),
    }
}

/// An encrypted ISAKMP message (flag E) of `payloads`, CBC with `iv`;
/// returns it and its last ciphertext block (the next IV).
fn v1_message(exchange: u8, mid: u32, payloads: &[ikeda_wire::ikev1::Payload], iv: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use ikeda_wire::ikev1::{ExchangeType, Header, Message, FLAG_ENCRYPTION, HEADER_LEN, ISAKMP_VERSION};
    let h = Header {
        icookie: ICOOKIE,
        rcookie: RCOOKIE,
        next_payload: 0,
        version: ISAKMP_VERSION,
        exchange: ExchangeType(exchange),
        flags: FLAG_ENCRYPTION,
        message_id: mid,
        length: 0,
    };
    let clear = Message::build(&h, payloads);
    let mut body = clear[HEADER_LEN..].to_vec();
    ikeda_crypto::ikev1::pad(16, &mut body);
    let cipher = ikeda_crypto::ikev1::Cipher::from_encr(Encr::AesCbc { key_bits: 128 }).unwrap();
    cipher.encrypt(v1_info().enc_key.expose(), iv, &mut body).unwrap();
    let mut m = clear[..HEADER_LEN].to_vec();
    m[24..28].copy_from_slice(&((HEADER_LEN + body.len()) as u32).to_be_bytes());
    let last = body[body.len() - 16..].to_vec();
    m.extend(body);
    (m, last)
}

fn v1_conversation() -> Vec<Vec<u8>> {
    use ikeda_crypto::ikev1::{phase2_iv, Hash};
    use ikeda_wire::ikev1::{IdPayload, NotifyPayload, Payload};
    let id = |a: Ipv4Addr| {
        Payload::Id(IdPayload {
            id_type: 1,
            protocol: 0,
            port: 0,
            data: a.octets().to_vec(),
        })
    };
    let hash = Payload::Hash(vec![0x55; 32]);
    let notify = |t: u16| {
        Payload::Notify(NotifyPayload {
            doi: 1,
            protocol: 1,
            spi: vec![0; 16],
            notify_type: t,
            data: vec![0, 0, 0, 1],
        })
    };
    let ike = |src, dst, m: &Vec<u8>| build_ipv4(src, dst, IpProtocol::UDP, &udp(500, 500, m));
    // Main Mode 5 and 6 (ID_PROT, 2), then a Quick Mode (32) and a DPD (5).
    let (mm5, iv6) = v1_message(2, 0, &[id(GW1), hash.clone()], &v1_info().iv);
    let (mm6, last_p1) = v1_message(2, 0, &[id(GW2), hash.clone()], &iv6);
    let qm_iv = phase2_iv(Hash::Sha256, 16, &last_p1, 0x0bad_cafe);
    let (qm1, qm_iv2) = v1_message(32, 0x0bad_cafe, &[hash.clone(), id(H1), id(H2)], &qm_iv);
    let (qm2, _) = v1_message(32, 0x0bad_cafe, &[hash.clone(), id(H1), id(H2)], &qm_iv2);
    let dpd_iv = phase2_iv(Hash::Sha256, 16, &last_p1, 0x1234_5678);
    let (dpd, _) = v1_message(5, 0x1234_5678, &[hash.clone(), notify(36136)], &dpd_iv);
    vec![
        ike(GW1, GW2, &mm5),
        // A retransmission of MM5: the same ciphertext, the same IV.
        ike(GW1, GW2, &mm5),
        ike(GW2, GW1, &mm6),
        ike(GW1, GW2, &qm1),
        ike(GW2, GW1, &qm2),
        ike(GW1, GW2, &dpd),
    ]
}

fn run_v1(test: &str, packets: &[Vec<u8>]) -> String {
    let dir = std::env::temp_dir().join(format!("ikeda-pcap-keys-v1-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    KeyExport::open(&dir).unwrap().ikev1_sa(&v1_info());
    let mut store = KeyStore::default();
    store.load(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(store.problems.is_empty(), "{:?}", store.problems);
    let mut a = Analyzer::new(Limits::default(), false, false).with_keys(store);
    let mut out = Vec::new();
    let mut format = String::new();
    read_capture(&capture(packets)[..], |p| a.packet(p, &mut out), &mut format).unwrap();
    a.finish(&format, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn ikev1_main_mode_quick_mode_and_dpd_are_decrypted_along_the_iv_chain() {
    let out = run_v1("chain", &v1_conversation());
    assert_eq!(out.matches("ID_PROT request 0 [ ID HASH ]").count(), 2, "{out}");
    line(&out, "ID_PROT response 0 [ ID HASH ]");
    line(&out, "QUICK_MODE request 195939070 [ HASH ID ID ]");
    line(&out, "QUICK_MODE response 195939070 [ HASH ID ID ]");
    line(&out, "INFORMATIONAL_V1 request 305419896 [ HASH N(DPD) ]");
    assert!(!out.contains("[ E ]"), "{out}");
}

/// Without Main Mode 6 the chain is broken: the first Quick Mode message
/// and the DPD (whose IVs come from MM6's last block) do not parse, and
/// the line says why instead of printing garbage. (The Quick Mode
/// response still decrypts: its IV is the request's last block.)
#[test]
fn ikev1_without_the_whole_main_mode_says_why() {
    let mut p = v1_conversation();
    p.remove(2);
    let out = run_v1("broken", &p);
    let qm = line(&out, "QUICK_MODE request 195939070 [ E ]");
    assert!(qm.contains("misses a message of the IV chain"), "{qm}");
    let dpd = line(&out, "INFORMATIONAL_V1 request 305419896 [ E ]");
    assert!(dpd.contains("misses a message of the IV chain"), "{dpd}");
}

/// With HMAC integrity, a right integrity key and a wrong encryption key
/// verify and then decrypt to garbage: the line names the encryption key
/// (IKE: SK_er; ESP: the SA's encryption key), not just "does not parse".
#[test]
fn a_wrong_encryption_key_behind_a_right_integrity_key_is_named() {
    let dir = key_dir("wrong-enc");
    let log = std::fs::read_to_string(dir.join(KEY_LOG)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // SK_er and the CBC SA's encryption key, one bit off.
    let sk_er = key(5, 32).to_hex();
    let cbc = child_info(EspAlgorithm::parse("aes128-sha256").unwrap(), false, 0xc000_0002);
    let enc = cbc.enc_out.to_hex();
    let flip = |h: &str| format!("{:x}{}", u8::from_str_radix(&h[..1], 16).unwrap() ^ 1, &h[1..]);
    let field = |f: &str, h: &str| format!("\"{f}\":\"{h}\"");
    let bad = log
        .replace(&field("sk_er", &sk_er), &field("sk_er", &flip(&sk_er)))
        .replace(&field("enc_key", &enc), &field("enc_key", &flip(&enc)));
    assert_ne!(bad, log);
    let mut store = KeyStore::default();
    store.load_key_log("log", &bad).unwrap();
    let mut a = Analyzer::new(Limits::default(), false, false).with_keys(store);
    let mut out = Vec::new();
    let mut format = String::new();
    read_capture(&capture(&conversation())[..], |p| a.packet(p, &mut out), &mut format).unwrap();
    a.finish(&format, &mut out);
    let out = String::from_utf8(out).unwrap();
    let resp = line(&out, "IKE_AUTH response 1 [ E ]");
    assert!(resp.contains("the ICV verifies with SK_ar: a wrong SK_er"), "{resp}");
    let flow = line(&out, "SPI 0xc0000002:");
    assert!(
        flow.contains("the ICV verifies: a wrong encryption key for SPI 0xc0000002"),
        "{flow}"
    );
}

/// A UDP 4500 frame that holds several ESP packets back to back (a UDP GSO
/// train captured on the sending gateway before the kernel cut it) is read
/// as the packets it is on the wire: every one decrypted, no gap in the
/// flow, the frame pointed out once, and counted.
#[test]
fn a_udp_gso_train_in_one_frame_is_read_as_its_packets() {
    let dir = key_dir("train");
    let mut store = KeyStore::default();
    store.load(&dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (alg, esn, spi) = child_sas()[0];
    let c = child_info(alg, esn, spi);
    let mut sa = outbound(alg, esn, spi, c.enc_out, c.auth_out);
    let esp_udp = |p: &[u8]| build_ipv4(GW1, GW2, IpProtocol::UDP, &udp(4500, 4500, p));
    // Three echo requests in one frame and a shorter one last (a train's
    // last datagram may be shorter); then one packet alone (TCP), then a
    // train of two.
    let short = build_ipv4(H1, H2, IpProtocol::ICMP, &[8, 0, 0, 0, 0, 1, 0, 4]);
    let first: Vec<u8> = [icmp(1), icmp(2), icmp(3), short]
        .iter()
        .flat_map(|p| seal(&mut sa, p))
        .collect();
    let alone = seal(&mut sa, &tcp());
    let second: Vec<u8> = [icmp(6), icmp(7)].iter().flat_map(|p| seal(&mut sa, p)).collect();
    let file = capture(&[esp_udp(&first), esp_udp(&alone), esp_udp(&second)]);
    let mut a = Analyzer::new(Limits::default(), false, false).with_keys(store);
    let mut out = Vec::new();
    let mut format = String::new();
    read_capture(&file[..], |p| a.packet(p, &mut out), &mut format).unwrap();
    a.finish(&format, &mut out);
    let out = String::from_utf8(out).unwrap();
    let l = line(&out, &format!("SPI {spi:#010x}:"));
    assert!(l.contains("7 packets") && l.contains("seq 1-7, 0 gaps"), "{l}");
    assert!(l.contains("; decrypted 7 (ICMP 6, TCP 1)"), "{l}");
    assert!(
        out.contains("2 frames were UDP GSO/GRO trains, 6 ESP packets read from those trains"),
        "{out}"
    );
    let w = a.warnings();
    assert_eq!(w.iter().filter(|w| w.contains("UDP GSO")).count(), 1, "{w:?}");
    assert!(
        w[0].starts_with("frame 1: ") && w[0].contains("holds 4 ESP packets"),
        "{w:?}"
    );
}
