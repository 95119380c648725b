//! Key sources on real text: charon 5.9.8's logs at level 4 for `ike` and
//! `chd` from two strongSwan-only labs (`ikeda lab up --gateways strongswan
//! --export-keys --capture`, then `swanctl --rekey --ike`, `--rekey
//! --child` and pings), both gateways' logs and the capture of gw1's WAN of
//! the same run, in `testdata/` (throwaway lab keys):
//!
//! - `charon-v2-*`, `v2.pcapng`: IKEv2, AES-GCM-128 for IKE and ESP, an
//!   IKE SA rekey (its keys come without SPIs) and a CHILD SA rekey on the
//!   new IKE SA;
//! - `charon-v1-*`, `v1.pcapng`: IKEv1, AES-CBC-256/HMAC-SHA1 Main Mode,
//!   AES-CBC-128/HMAC-SHA1 ESP, two Quick Modes, a second Main Mode (the
//!   IKE SA rekey) and a Quick Mode rekey.
//!
//! And Wireshark's tables, as ikeda writes them and by hand.

use super::analyze::{Analyzer, Limits};
use super::keyfiles;
use super::keys::KeyStore;
use super::keysrc::{self, charon_line, CharonLog, Format, Record};
use super::read_capture;
use ikeda_crypto::ike::{Encr, Integ};
use ikeda_crypto::{EspAlgorithm, EspInteg, SecretBytes};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const V2_GW1: &str = include_str!("testdata/charon-v2-gw1.txt");
const V2_GW2: &str = include_str!("testdata/charon-v2-gw2.txt");
const V1_GW1: &str = include_str!("testdata/charon-v1-gw1.txt");
const V1_GW2: &str = include_str!("testdata/charon-v1-gw2.txt");
const V2_PCAP: &[u8] = include_bytes!("testdata/v2.pcapng");
const V1_PCAP: &[u8] = include_bytes!("testdata/v1.pcapng");

fn charon(text: &str) -> CharonLog {
    let mut log = CharonLog::new();
    for (i, l) in text.lines().enumerate() {
        log.line(i + 1, l);
    }
    log.finish();
    log
}

/// The same log as charon writes it without `ike_name = yes`.
fn untagged(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        match charon_line(l).and_then(|c| c.tag) {
            Some(t) => out.push_str(&l.replacen(&format!("<{t}> "), "", 1)),
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("ikeda-keysrc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn store_from(sources: &[&Path]) -> KeyStore {
    let mut s = KeyStore::default();
    for p in sources {
        s.load(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    s
}

/// `ikeda pcap --json` of a capture with `store`: the report, and the
/// analyzer (its keys as the capture left them).
fn analyze(store: KeyStore, pcap: &[u8]) -> (serde_json::Value, Analyzer) {
    let mut a = Analyzer::new(Limits::default(), false, true).with_keys(store);
    let mut out = b"{\"file\":\"t\",\"messages\":[".to_vec();
    let mut format = String::new();
    read_capture(pcap, |p| a.packet(p, &mut out), &mut format).unwrap();
    a.finish(&format, &mut out);
    (serde_json::from_slice(&out).unwrap(), a)
}

/// Every encrypted IKE message decrypted, every ESP packet decrypted with
/// no ICV failure; (IKE messages decrypted, ESP packets per SPI).
fn all_decrypted(v: &serde_json::Value) -> (usize, BTreeMap<String, u64>) {
    let mut ike = 0;
    for m in v["messages"].as_array().unwrap() {
        if !m["encrypted_len"].is_null() {
            assert_eq!(m["decrypted"], true, "{m}");
            ike += 1;
        }
    }
    let mut esp = BTreeMap::new();
    for f in v["flows"].as_array().unwrap() {
        let d = &f["decryption"];
        assert_eq!(d["decrypted"], f["packets"], "{f}");
        assert_eq!(d["icv_failures"], 0, "{f}");
        esp.insert(f["spi"].as_str().unwrap().to_string(), d["decrypted"].as_u64().unwrap());
    }
    (ike, esp)
}

fn v2s(log: &CharonLog) -> Vec<&keysrc::V2Record> {
    log.records
        .iter()
        .filter_map(|r| if let Record::Ikev2(k) = r { Some(k) } else { None })
        .collect()
}

fn v1s(log: &CharonLog) -> Vec<&keysrc::V1Record> {
    log.records
        .iter()
        .filter_map(|r| if let Record::Ikev1(k) = r { Some(k) } else { None })
        .collect()
}

/// One ESP direction as a log gave it: (src, dst, enc, auth, algorithm).
type EspView = (String, String, Vec<u8>, Vec<u8>, EspAlgorithm);

/// ESP records by SPI.
fn esps(log: &CharonLog) -> BTreeMap<u32, EspView> {
    let mut m = BTreeMap::new();
    for r in &log.records {
        if let Record::Esp(e) = r {
            assert!(!e.guessed, "line {}: the role was not found", e.line);
            let v = (
                format!("{:?}", e.src),
                format!("{:?}", e.dst),
                e.enc.expose().to_vec(),
                e.auth.as_ref().map(|a| a.expose().to_vec()).unwrap_or_default(),
                e.algorithm,
            );
            if let Some(old) = m.insert(e.spi, v.clone()) {
                assert!(old == v, "SPI {:#x} with two keys", e.spi);
            }
        }
    }
    m
}

fn same(a: &SecretBytes, b: &SecretBytes) -> bool {
    a.expose() == b.expose()
}

/// gw1 initiated everything, gw2 responded: both logs must give the same
/// keys for the same SAs, and each CHILD SA direction its own key (the
/// role of each side read from the exchange it derived them in).
#[test]
fn charon_v2_logs_give_the_same_keys_from_both_sides() {
    let (g1, g2) = (charon(V2_GW1), charon(V2_GW2));
    assert!(g1.problems.is_empty() && g2.problems.is_empty(), "{:?} {:?}", g1.problems, g2.problems);
    let (a, b) = (v2s(&g1), v2s(&g2));
    assert_eq!((a.len(), b.len()), (2, 2));
    // The first IKE SA by the NAT-D input of IKE_SA_INIT; the rekeyed one
    // has no SPIs in the log.
    let first = Some((0x6a4b_a888_aac3_4c09, 0xc470_58c4_0f01_38cf));
    assert_eq!((a[0].spis, b[0].spis), (first, first));
    assert_eq!((a[1].spis, b[1].spis), (None, None));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.encr, Encr::AesGcm16 { key_bits: 128 });
        assert_eq!(x.integ, None);
        assert!(same(&x.sk_ei, &y.sk_ei) && same(&x.sk_er, &y.sk_er));
        assert_eq!(x.sk_ei.len(), 20);
        assert!(!same(&x.sk_ei, &x.sk_er));
    }
    assert!(!same(&a[0].sk_ei, &a[1].sk_ei));
    let (e1, e2) = (esps(&g1), esps(&g2));
    assert_eq!(e1, e2, "CHILD SA keys differ between the two logs");
    let spis: Vec<u32> = e1.keys().copied().collect();
    assert_eq!(spis, [0x3529_04d7, 0x7105_7e07, 0xf79d_52f3, 0xfb4f_62dd]);
    for (spi, (src, dst, enc, auth, alg)) in &e1 {
        assert_eq!(*alg, EspAlgorithm::AesGcm16 { key_bits: 128 }, "{spi:#x}");
        assert!(enc.len() == 20 && auth.is_empty(), "{spi:#x}");
        assert_ne!(src, dst);
    }
}

#[test]
fn charon_v1_logs_give_the_same_keys_from_both_sides() {
    let (g1, g2) = (charon(V1_GW1), charon(V1_GW2));
    assert!(g1.problems.is_empty() && g2.problems.is_empty(), "{:?} {:?}", g1.problems, g2.problems);
    let (a, b) = (v1s(&g1), v1s(&g2));
    assert_eq!((a.len(), b.len()), (2, 2));
    let cookies = [
        (0x8130_e569_e9b0_bd03, 0x76df_e1f3_4c34_c022),
        (0x1c25_11fa_bad7_012e, 0x0f00_6ae8_82c7_abd7),
    ];
    for ((x, y), c) in a.iter().zip(&b).zip(cookies) {
        assert_eq!((x.icookie, x.rcookie), c);
        assert_eq!((y.icookie, y.rcookie), c);
        assert_eq!(x.suite.encr, Encr::AesCbc { key_bits: 256 });
        assert_eq!(x.suite.integ, Some(Integ::HmacSha1_96));
        assert!(same(&x.enc_key, &y.enc_key) && x.enc_key.len() == 32);
        assert!(x.iv == y.iv && x.iv.len() == 16);
        // The last CBC block of phase 1 is what both sides chain from.
        assert!(x.phase1_last_iv.is_some() && x.phase1_last_iv == y.phase1_last_iv);
    }
    let (e1, e2) = (esps(&g1), esps(&g2));
    assert_eq!(e1, e2, "CHILD SA keys differ between the two logs");
    assert_eq!(e1.len(), 6, "three Quick Modes, two directions each");
    for (spi, (_, _, enc, auth, alg)) in &e1 {
        assert_eq!(
            *alg,
            EspAlgorithm::AesCbc {
                key_bits: 128,
                integ: EspInteg::HmacSha1_96
            },
            "{spi:#x}"
        );
        assert!(enc.len() == 16 && auth.len() == 20, "{spi:#x}");
    }
}

/// Keys scraped from either gateway's log decrypt everything of the
/// capture: IKE_AUTH, the INFORMATIONALs, the CHILD SA rekey on the
/// rekeyed IKE SA (bound to its SPIs by its ICV), Main Mode 5/6 and the
/// Quick Modes, and every ESP packet.
#[test]
fn charon_keys_decrypt_the_capture_of_the_same_run() {
    let t = Tmp::new("decrypt");
    for (name, log, pcap, ike, flows) in [
        ("v2-gw1", V2_GW1, V2_PCAP, 18, 4),
        ("v2-gw2", V2_GW2, V2_PCAP, 18, 4),
        ("v1-gw1", V1_GW1, V1_PCAP, 13, 6),
        ("v1-gw2", V1_GW2, V1_PCAP, 13, 6),
    ] {
        let p = t.file(&format!("{name}.log"), log);
        let store = store_from(&[&p]);
        assert!(store.problems.is_empty(), "{name}: {:?}", store.problems);
        let (v, a) = analyze(store, pcap);
        let (n, esp) = all_decrypted(&v);
        assert_eq!((n, esp.len()), (ike, flows), "{name}: {v}");
        let store = a.keys().unwrap();
        if name.starts_with("v2") {
            // Both IKE SAs, the second bound by the capture.
            assert_eq!(store.ikev2.len(), 2, "{name}");
            assert!(store.ikev2.contains_key(&(0xa14b_1378_c31f_7443, 0x501a_0f9c_38f6_6338)));
        }
    }
}

/// Without `ike_name = yes` there is no IKE SA tag: an SPI or cookie is
/// only taken from the job the keys were derived in. The initiator's
/// IKEv2 keys follow the IKE_SA_INIT response in one job; the responder
/// derives them in the next, so they come without SPIs, and the capture
/// binds them. IKEv1's cookies are in the same job either way.
#[test]
fn logs_without_ike_name_tags() {
    let (g1, g2) = (charon(&untagged(V2_GW1)), charon(&untagged(V2_GW2)));
    assert!(g1.problems.is_empty() && g2.problems.is_empty(), "{:?} {:?}", g1.problems, g2.problems);
    assert!(v2s(&g1)[0].spis.is_some() && v2s(&g2)[0].spis.is_none());
    assert_eq!(esps(&g1), esps(&charon(V2_GW1)));
    assert_eq!(esps(&g2), esps(&charon(V2_GW2)));
    let v1 = charon(&untagged(V1_GW2));
    assert!(v1.problems.is_empty(), "{:?}", v1.problems);
    let tagged = charon(V1_GW2);
    let cookies = |l: &CharonLog| v1s(l).iter().map(|k| (k.icookie, k.rcookie)).collect::<Vec<_>>();
    assert_eq!(cookies(&v1), cookies(&tagged));
    assert_eq!(esps(&v1), esps(&tagged));
    let t = Tmp::new("untagged");
    for (name, text, pcap) in [
        ("v2", untagged(V2_GW2), V2_PCAP),
        ("v1", untagged(V1_GW1), V1_PCAP),
    ] {
        let p = t.file(name, &text);
        let (v, _) = analyze(store_from(&[&p]), pcap);
        all_decrypted(&v);
    }
}

/// `--wireshark-keys`: what charon's log gave, with the SPIs the capture
/// bound, written as Wireshark's tables; read back alone (Wireshark's
/// tables only), they decrypt the same capture. The IKEv1 table has no
/// cipher, hash or IV: the capture's Main Modes give them.
#[test]
fn wireshark_tables_written_from_charon_keys_decrypt_the_capture() {
    let t = Tmp::new("wireshark");
    for (name, log, pcap, ike_lines) in [("v2", V2_GW1, V2_PCAP, 2), ("v1", V1_GW2, V1_PCAP, 2)] {
        let p = t.file(&format!("{name}.log"), log);
        let (v, a) = analyze(store_from(&[&p]), pcap);
        let (ike, esp) = all_decrypted(&v);
        let store = a.keys().unwrap();
        let dir = t.0.join(format!("ws-{name}"));
        let said = keyfiles::write_wireshark(store, &dir).unwrap();
        assert!(said.starts_with("wrote "), "{said}");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let table = if name == "v2" {
            "ikev2_decryption_table"
        } else {
            "ikev1_decryption_table"
        };
        assert_eq!(read(table).lines().count(), ike_lines, "{name}: {said}");
        assert_eq!(read("esp_sa").lines().count(), esp.len(), "{name}");
        if name == "v2" {
            assert!(read(table).contains("\"AES-GCM-128 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\""));
            assert!(read(table).starts_with("6a4ba888aac34c09,c47058c40f0138cf,"));
            assert!(read(table).contains("\na14b1378c31f7443,501a0f9c38f66338,"));
        } else {
            assert!(read("esp_sa").contains("\"AES-CBC [RFC3602]\""));
            assert!(read("esp_sa").contains("\"HMAC-SHA-1-96 [RFC2404]\""));
        }
        use std::os::unix::fs::PermissionsExt;
        for f in [table, "esp_sa", "preferences"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        // Refused over tables already there.
        assert!(keyfiles::write_wireshark(store, &dir).unwrap_err().contains("already"));
        // The directory as a --keys source: Wireshark's tables alone.
        let (again, _) = analyze(store_from(&[&dir]), pcap);
        assert_eq!(all_decrypted(&again), (ike, esp), "{name}");
    }
}

/// A key from Wireshark's IKEv1 table for a capture without Main Mode:
/// the note says what is missing.
#[test]
fn an_ikev1_table_key_without_main_mode_says_why() {
    let t = Tmp::new("nomm");
    let p = t.file("ikev1_decryption_table", &format!("8130e569e9b0bd03,{}\n", "ab".repeat(32)));
    let store = store_from(&[&p]);
    let note = store.ikev1_pending_note(0x8130_e569_e9b0_bd03).unwrap();
    assert!(note.contains("Main Mode messages 1-4"), "{note}");
    assert!(store.ikev1_pending_note(1).is_none());
}

// ---- Wireshark's tables ----------------------------------------------------------

fn err_of(r: Result<Option<Record>, String>) -> String {
    match r {
        Err(e) => e,
        Ok(_) => panic!("accepted"),
    }
}

/// No error quotes 8 hex digits in a row: no key, nor a piece of one.
fn no_hex_run(e: &str) {
    let mut run = 0;
    for c in e.chars() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        assert!(run < 8, "a message quotes hex: {e}");
    }
}

#[test]
fn wireshark_table_lines() {
    let ei = "0011223344556677889900112233445566778899";
    let line = format!(
        "0123456789abcdef,fedcba9876543210,{ei},{ei},\"AES-GCM-128 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\""
    );
    let Some(Record::Ikev2(k)) = keysrc::ikev2_table_line(1, &line).unwrap() else { panic!() };
    assert_eq!(k.spis, Some((0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)));
    assert_eq!(k.encr, Encr::AesGcm16 { key_bits: 128 });
    // CBC with HMAC; Wireshark's escapes in a quoted field.
    let (e, a) = ("11".repeat(32), "22".repeat(32));
    let line = format!("0123456789abcdef,fedcba9876543210,{e},{e},\"AES-CBC-256 \\x5bRFC3602]\",{a},{a},\"HMAC_SHA2_256_128 [RFC4868]\"");
    let Some(Record::Ikev2(k)) = keysrc::ikev2_table_line(2, &line).unwrap() else { panic!() };
    assert_eq!((k.encr, k.integ), (Encr::AesCbc { key_bits: 256 }, Some(Integ::HmacSha256_128)));
    assert!(keysrc::ikev2_table_line(3, "# a comment").unwrap().is_none());
    // What goes wrong is named by field; the value never.
    for (bad, says) in [
        (format!("0123456789abcdef,fedcba9876543210,{ei},{ei},\"AES-GCM-128 with 16 octet ICV [RFC5282]\",,"), "fields"),
        (format!("0123456789abcdef,fedcba98765432,{ei},{ei},\"AES-GCM-128 with 16 octet ICV\",,,\"NONE\""), "SPIr"),
        (format!("0123456789abcdef,fedcba9876543210,zz{ei},{ei},\"AES-GCM-128 with 16 octet ICV\",,,\"NONE\""), "SK_ei: not hex"),
        (format!("0123456789abcdef,fedcba9876543210,{ei}00,{ei},\"AES-GCM-128 with 16 octet ICV\",,,\"NONE\""), "SK_ei: 21 bytes"),
        (format!("0123456789abcdef,fedcba9876543210,{ei},{ei},\"AES-CCM-128 with 16 octet ICV [RFC5282]\",,,\"NONE\""), "AES-CCM-128"),
        (format!("0123456789abcdef,fedcba9876543210,{ei},{ei},\"AES-GCM-128 with 16 octet ICV\",{a},{a},\"HMAC_SHA2_256_128\""), "integrity"),
        (format!("0123456789abcdef,fedcba9876543210,{e},{e},\"AES-CBC-256\",{a},,\"HMAC_SHA2_256_128\""), "SK_ar: empty"),
        (format!("0123456789abcdef,fedcba9876543210,\"{ei}"), "does not end"),
    ] {
        let e = err_of(keysrc::ikev2_table_line(4, &bad));
        assert!(e.contains(says), "{bad}: {e}");
        no_hex_run(&e);
    }

    let Some(Record::Ikev1Cookie(c)) = keysrc::ikev1_table_line(1, &format!("8130e569e9b0bd03,{}", "ab".repeat(32))).unwrap()
    else {
        panic!()
    };
    assert_eq!(c.icookie, 0x8130_e569_e9b0_bd03);
    for (bad, says) in [
        ("8130e569e9b0bd03".to_string(), "fields"),
        (format!("8130e569e9b0bd,{}", "ab".repeat(32)), "cookie"),
        (format!("8130e569e9b0bd03,{}x", "ab".repeat(32)), "not hex"),
    ] {
        let e = err_of(keysrc::ikev1_table_line(1, &bad));
        assert!(e.contains(says), "{bad}: {e}");
        no_hex_run(&e);
    }

    // esp_sa as ikeda writes it (crate::keys::esp_line, tshark-checked).
    let enc = SecretBytes::new(vec![0xab; 20]);
    let l = crate::keys::esp_line(
        EspAlgorithm::AesGcm16 { key_bits: 128 },
        0xc123_4567,
        "192.168.50.12".parse().unwrap(),
        "192.168.50.11".parse().unwrap(),
        &enc,
        None,
    );
    let Some(Record::Esp(e)) = keysrc::esp_table_line(1, &l).unwrap() else { panic!() };
    assert_eq!((e.spi, e.algorithm), (0xc123_4567, EspAlgorithm::AesGcm16 { key_bits: 128 }));
    assert_eq!(e.dst, Some("192.168.50.11".parse().unwrap()));
    let k = SecretBytes::new(vec![1; 32]);
    let h = SecretBytes::new(vec![2; 48]);
    let l = crate::keys::esp_line(
        EspAlgorithm::parse("aes256-sha384").unwrap(),
        7,
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
        &k,
        Some(&h),
    );
    let Some(Record::Esp(e)) = keysrc::esp_table_line(1, &l).unwrap() else { panic!() };
    assert_eq!(e.algorithm, EspAlgorithm::parse("aes256-sha384").unwrap());
    let gcm = format!("\"0x{}\"", "ab".repeat(20));
    for (bad, says) in [
        (format!("\"IPv4\",\"*\",\"*\",\"*\",\"AES-GCM with 16 octet ICV [RFC4106]\",{gcm},\"NULL\",\"\""), "SPI: a wildcard"),
        (format!("\"IPv4\",\"10.0.0.*\",\"*\",\"0x1\",\"AES-GCM with 16 octet ICV [RFC4106]\",{gcm},\"NULL\",\"\""), "source"),
        (format!("\"IPv4\",\"*\",\"*\",\"0x1\",\"AES-CTR [RFC3686]\",{gcm},\"NULL\",\"\""), "AES-CTR"),
        (format!("\"IPv4\",\"*\",\"*\",\"0x1\",\"AES-CBC [RFC3602]\",{gcm},\"NULL\",\"\""), "NULL"),
        (format!("\"IPv4\",\"*\",\"*\",\"0x1\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{}\",\"NULL\",\"\"", "ab".repeat(24)), "20 or 36"),
        (format!("\"IPv4\",\"*\",\"*\",\"0x1\",\"AES-GCM with 16 octet ICV [RFC4106]\",{gcm},\"NULL\""), "fields"),
        (format!("\"IPv4\",\"*\",\"*\",\"0x1\",\"TripleDES-CBC [RFC2451]\",\"0x{}\",\"HMAC-SHA-1-96 [RFC2404]\",\"0x{}\"", "ab".repeat(16), "cd".repeat(20)), "encryption key: 16 bytes"),
        (format!("\"IPv4\",\"*\",\"*\",\"0x1\",\"AES-CBC [RFC3602]\",\"0x{}\",\"HMAC-SHA-1-96 [RFC2404]\",\"0x{}\"", "ab".repeat(16), "cd".repeat(16)), "authentication key: 16 bytes"),
        (format!("\"IPv4\",\"*\",\"*\",\"0x1\",\"AES-CBC [RFC3602]\",\"0x{}\",\"HMAC-SHA-1-96 [RFC2404]\",\"\"", "ab".repeat(16)), "authentication key: empty"),
    ] {
        let e = err_of(keysrc::esp_table_line(1, &bad));
        assert!(e.contains(says), "{bad}: {e}");
        no_hex_run(&e);
    }
}

#[test]
fn formats_are_recognised_and_garbage_is_named() {
    for t in [V2_GW1, V2_GW2, V1_GW1, V1_GW2] {
        assert_eq!(keysrc::detect(t), Some(Format::CharonLog));
    }
    // charon's lines inside a syslog file, after other programs' lines.
    let syslog = "Dec  5 02:59:56 gw1 systemd[1]: Started strongSwan.\n\
                  Dec  5 02:59:56 gw1 charon: 07[IKE] <s2s|1> Sk_ei secret => 20 bytes @ 0x7f7fec00a090\n";
    assert_eq!(keysrc::detect(syslog), Some(Format::CharonLog));
    assert_eq!(keysrc::detect("\n{\"type\":\"ikev2\"}\n"), Some(Format::KeyLog));
    assert_eq!(
        keysrc::detect("# comment\n0123456789abcdef,fedcba9876543210,00,00,\"3DES [RFC2451]\",00,00,\"HMAC_MD5_96 [RFC2403]\"\n"),
        Some(Format::Ikev2Table)
    );
    assert_eq!(keysrc::detect("0123456789abcdef,00112233\n"), Some(Format::Ikev1Table));
    assert_eq!(
        keysrc::detect("\"IPv6\",\"*\",\"*\",\"0x1\",\"NULL\",\"\",\"NULL\",\"\"\n"),
        Some(Format::EspTable)
    );
    for g in ["", "hello\n", "\u{0}\u{1}secret\n", "1,2,3\n", "[IKE] no thread\n"] {
        assert_eq!(keysrc::detect(g), None, "{g:?}");
    }

    let t = Tmp::new("garbage");
    let g = t.file("garbage", "\u{0}\u{1}0011223344556677 secret\n");
    let e = KeyStore::default().load(&g).unwrap_err();
    assert!(e.contains("not a key file ikeda knows") && !e.contains("secret") && !e.contains("0011"), "{e}");
    // A charon log at level 1: named, with what to change.
    let level1: String = V2_GW1
        .lines()
        .filter(|l| !l.contains(" => ") && !l.contains(": "))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = t.file("charon.log", &level1);
    let e = KeyStore::default().load(&p).unwrap_err();
    assert!(e.contains("without keys") && e.contains("level 4"), "{e}");
    // A table whose every line is bad: the first problems, no key.
    let p = t.file("esp_sa", &format!("\"IPv4\",\"*\",\"*\",\"*\",\"AES-CBC [RFC3602]\",\"0x{}\",\"NULL\",\"\"\n", "ab".repeat(16)));
    let e = KeyStore::default().load(&p).unwrap_err();
    assert!(e.contains("line 1: SPI: a wildcard"), "{e}");
    no_hex_run(&e.replace(&t.0.display().to_string(), ""));
    // A directory: its known names, and a charon log under any name;
    // other files are passed over.
    let d = t.0.join("dir");
    std::fs::create_dir_all(&d).unwrap();
    let e = KeyStore::default().load(&d).unwrap_err();
    assert!(e.contains("ikev2_decryption_table") && e.contains("charon"), "{e}");
    std::fs::write(d.join("preferences"), "esp.enable_encryption_decode: TRUE\n").unwrap();
    std::fs::write(d.join("charon-debug.txt"), V2_GW2).unwrap();
    let s = store_from(&[&d]);
    assert_eq!((s.ikev2.len(), s.esp.len()), (1, 4));
}

/// A hex dump row that does not read, or keys with a proposal that does
/// not fit them: the line and what it was are named, the bytes never.
#[test]
fn a_damaged_log_names_the_line_never_the_key() {
    let mut lines: Vec<String> = V2_GW1.lines().map(str::to_string).collect();
    let at = lines.iter().position(|l| l.contains("Sk_ei secret")).unwrap();
    lines[at + 1] = lines[at + 1].replacen(": ", ": ZZ", 1);
    let log = charon(&(lines.join("\n") + "\n"));
    assert!(
        log.problems.iter().any(|p| p.contains(&format!("line {}", at + 2)) && p.contains("Sk_ei secret")),
        "{:?}",
        log.problems
    );
    // A proposal that does not match the keys' lengths.
    let wrong = V2_GW1.replace("IKE:AES_GCM_16_128/", "IKE:AES_GCM_16_256/");
    let log = charon(&wrong);
    assert!(
        log.problems.iter().any(|p| p.contains("Sk_ei secret: 20 bytes") && p.contains("needs 36")),
        "{:?}",
        log.problems
    );
    // Without the proposal line at all.
    let none = V2_GW1.replace("selected proposal: IKE:", "chose: IKE:");
    let log = charon(&none);
    assert!(log.problems.iter().any(|p| p.contains("selected proposal")), "{:?}", log.problems);
    for l in [charon(&wrong), charon(&none), charon(&(lines.join("\n") + "\n"))] {
        for p in &l.problems {
            no_hex_run(p);
        }
    }
}

#[test]
fn proposals_as_charon_logs_them() {
    let s = keysrc::ike_proposal("IKE:AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048").unwrap();
    assert_eq!((s.encr, s.integ), (Encr::AesCbc { key_bits: 256 }, Some(Integ::HmacSha1_96)));
    let s = keysrc::ike_proposal("IKE:CHACHA20_POLY1305_256/PRF_HMAC_SHA2_512/ECP_256").unwrap();
    assert_eq!((s.encr, s.integ), (Encr::ChaCha20Poly1305, None));
    assert!(keysrc::ike_proposal("IKE:3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024").is_ok());
    assert!(keysrc::ike_proposal("IKE:AES_CTR_128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048")
        .unwrap_err()
        .contains("AES_CTR_128"));
    assert!(keysrc::ike_proposal("IKE:AES_CBC_128/PRF_HMAC_SHA1/MODP_2048").is_err());
    assert_eq!(
        keysrc::esp_proposal("ESP:AES_GCM_16_256/NO_EXT_SEQ").unwrap(),
        (EspAlgorithm::AesGcm16 { key_bits: 256 }, false)
    );
    assert_eq!(
        keysrc::esp_proposal("ESP:AES_CBC_128/HMAC_SHA2_256_128/CURVE_25519/EXT_SEQ").unwrap(),
        (EspAlgorithm::parse("aes128-sha256").unwrap(), true)
    );
    assert_eq!(
        keysrc::esp_proposal("ESP:CHACHA20_POLY1305/EXT_SEQ").unwrap(),
        (EspAlgorithm::ChaCha20Poly1305, true)
    );
    assert!(keysrc::esp_proposal("ESP:AES_GCM_16_128/HMAC_SHA1_96/NO_EXT_SEQ").is_err());
}
