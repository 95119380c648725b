//! The founding case of issue 12 without a lab: two IKEv1 engines (ikeda's
//! own, sans-IO, in the deterministic simulator) with DPD every 2 s and a
//! Quick Mode rekey every 10 s; gw1's key export writes the key log; the
//! capture holds only what went by after the tunnel came up (no Main
//! Mode). `ikeda pcap --keys` must decrypt the DPDs and the rekey with the
//! key log's last phase-1 block, say why when the key log is an older one
//! without it, match the cookies in either order, and never panic on
//! garbage.

use super::analyze::{Analyzer, Limits};
use super::keys::KeyStore;
use super::read_capture;
use super::tests::udp;
use crate::keys::{KeyExport, IKEV1_TABLE, KEY_LOG};
use ikeda_crypto::ike::{parse_esp_proposals, parse_ike_proposals, SeededRng};
use ikeda_crypto::SecretBytes;
use ikeda_ike::ikev1::{Engine, V1ConnSpec};
use ikeda_ike::ikev2::{ConnSpec, Event, Timers};
use ikeda_ike::sim::{Pair, Peer};
use ikeda_ike::{Millis, Transmit};
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ikev2::{IdPayload, TsRange};
use ikeda_wire::ip::build_ipv4;
use ikeda_wire::pcap::{link_type, pcap_file_header, pcap_record, Timestamp};
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

const GW1: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 11);
const GW2: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 12);

/// What went over the wire: (time, from, to, IKE message).
type Wire = Rc<RefCell<Vec<(Millis, SocketAddr, SocketAddr, Vec<u8>)>>>;

/// An engine whose every datagram is also written down, as a capture
/// point on the link would see it.
struct Tap {
    engine: Engine,
    now: Millis,
    wire: Wire,
    events: Vec<Event>,
}

impl Tap {
    fn drain(&mut self) {
        while let Some(e) = self.engine.poll_event() {
            self.events.push(e);
        }
    }
}

impl Peer for Tap {
    fn handle_datagram(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.now = now;
        self.engine.handle_datagram(now, local, remote, data);
        self.drain();
    }
    fn handle_timeout(&mut self, now: Millis) {
        self.now = now;
        self.engine.handle_timeout(now);
        self.drain();
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.engine.poll_transmit()?;
        self.wire
            .borrow_mut()
            .push((self.now, t.local, t.remote, t.data.clone()));
        Some(t)
    }
    fn poll_timeout(&self) -> Option<Millis> {
        self.engine.poll_timeout()
    }
}

fn spec(local: Ipv4Addr, remote: Ipv4Addr, lan: &str, rlan: &str, timers: Timers) -> V1ConnSpec {
    let net = |s: &str| TsRange::addresses(format!("{s}.0").parse().unwrap(), format!("{s}.255").parse().unwrap());
    V1ConnSpec {
        spec: ConnSpec {
            name: "s2s".into(),
            local: IpAddr::V4(local),
            remote: IpAddr::V4(remote),
            local_id: IdPayload::ipv4(local),
            remote_id: IdPayload::ipv4(remote),
            psk: SecretBytes::new(b"founding case".to_vec()),
            ike_proposals: parse_ike_proposals("aes128-sha256-modp2048").unwrap(),
            esp_proposals: parse_esp_proposals("aes128-sha1").unwrap(),
            local_ts: vec![net(lan)],
            remote_ts: vec![net(rlan)],
            ts_pairs: Vec::new(),
            timers,
            force_encap: false,
            children: Vec::new(),
        },
        aggressive: false,
        compress: false,
    }
}

/// Main Mode at 0 s, then 30 s of DPD every 2 s and Quick Mode rekeys
/// every 10 s (gw1's timers, as `lab up --dpd-delay 2s --rekey-time 10s`).
/// Returns gw1's key log and the capture begun at 1 s, with its message
/// count.
fn founding_case() -> (String, Vec<u8>, usize) {
    let wire: Wire = Rc::default();
    let t1 = Timers {
        rekey_time: Duration::from_secs(10),
        life_time: Duration::from_secs(11),
        dpd_delay: Duration::from_secs(2),
        ..Timers::default()
    };
    let t2 = Timers {
        rekey_time: Duration::from_secs(60),
        life_time: Duration::from_secs(66),
        dpd_delay: Duration::from_secs(10),
        ..Timers::default()
    };
    let tap = |s: V1ConnSpec, seed: u64| Tap {
        engine: Engine::new(vec![s], Box::new(SeededRng::from_u64(seed))),
        now: Millis::ZERO,
        wire: wire.clone(),
        events: Vec::new(),
    };
    let a = tap(spec(GW1, GW2, "192.168.11", "192.168.12", t1), 21);
    let b = tap(spec(GW2, GW1, "192.168.12", "192.168.11", t2), 22);
    let mut p = Pair::new(
        a,
        SocketAddr::new(GW1.into(), 500),
        b,
        SocketAddr::new(GW2.into(), 500),
        5,
    );
    p.a.engine.initiate("s2s", Millis::ZERO).unwrap();
    p.a.drain();
    p.run_until(Millis(30_000), |_| false);

    // One directory per call: the tests of this file run side by side.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ikeda-pcap-midsession-{}-{call}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut x = KeyExport::open(&dir).unwrap();
    for e in &p.a.events {
        if let Event::Ikev1Keys(k) = e {
            x.ikev1_sa(k);
        }
    }
    drop(x);
    let log = std::fs::read_to_string(dir.join(KEY_LOG)).unwrap();
    // Wireshark's table gets the SA once, though it is exported twice.
    let table = std::fs::read_to_string(dir.join(IKEV1_TABLE)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(table.lines().count(), 1, "{table}");

    let mut f = pcap_file_header(link_type::RAW, 65535, false);
    let mut n = 0;
    for (t, from, to, data) in wire.borrow().iter().filter(|w| w.0 >= Millis(1000)) {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (from.ip(), to.ip()) else {
            unreachable!()
        };
        let ip = build_ipv4(s, d, IpProtocol::UDP, &udp(from.port(), to.port(), data));
        let ts = Timestamp {
            secs: 1_700_000_000 + t.0 / 1000,
            nanos: (t.0 % 1000) as u32 * 1_000_000,
        };
        f.extend(pcap_record(ts, &ip, ip.len() as u32, false));
        n += 1;
    }
    (log, f, n)
}

fn analyze(log: &str, cap: &[u8]) -> String {
    let mut store = KeyStore::default();
    store.load_key_log("log", log).unwrap();
    assert!(store.problems.is_empty(), "{:?}", store.problems);
    let mut a = Analyzer::new(Limits::default(), false, false).with_keys(store);
    let mut out = Vec::new();
    let mut format = String::new();
    read_capture(cap, |p| a.packet(p, &mut out), &mut format).unwrap();
    a.finish(&format, &mut out);
    String::from_utf8(out).unwrap()
}

/// Message lines that contain `what`: the conversation, not the
/// explanation after it (which names exchanges too).
fn count(out: &str, what: &str) -> usize {
    let conversation = out.split("\nWhat the capture shows:").next().unwrap_or(out);
    conversation.lines().filter(|l| l.contains(what)).count()
}

#[test]
fn dpd_and_a_quick_mode_rekey_decrypt_without_main_mode() {
    let (log, cap, n) = founding_case();
    // Two lines for the one phase-1 SA; the second has the block.
    let v1: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "ikev1")
        .collect();
    assert_eq!(v1.len(), 2, "{log}");
    assert!(v1[0]["phase1_last_block"].is_null() && v1[1]["phase1_last_block"].as_str().unwrap().len() == 32);

    let out = analyze(&log, &cap);
    assert_eq!(count(&out, "ID_PROT"), 0, "the capture begins after Main Mode:\n{out}");
    assert!(!out.contains("[ E ]"), "{out}");
    assert_eq!(count(&out, " decrypted from "), n, "every message:\n{out}");
    let (r_u_there, ack) = (count(&out, "[ HASH N(DPD) ]"), count(&out, "[ HASH N(DPD_ACK) ]"));
    // gw1 asks every 2 s from 1 s to 30 s, and gw2 answers each.
    assert!(
        r_u_there >= 12 && ack == r_u_there,
        "R-U-THERE {r_u_there}, ACK {ack}:\n{out}"
    );
    // The Quick Mode rekeys (about every 10 s, by either side): three
    // messages each, HASH(1) SA Ni IDci IDcr / HASH(2) SA Nr IDci IDcr /
    // HASH(3) (RFC 2409 §5.5).
    let qm = count(&out, "QUICK_MODE ");
    assert!(qm >= 6 && qm.is_multiple_of(3), "{out}");
    assert_eq!(
        count(&out, "QUICK_MODE request ") - count(&out, "QUICK_MODE response "),
        qm / 3,
        "{out}"
    );
    assert_eq!(count(&out, "[ HASH SA No ID ID ] "), qm / 3 * 2, "{out}");
    assert_eq!(count(&out, "[ HASH ] "), qm / 3, "{out}");
    // Each rekey's old SA is deleted: an Informational with D, decrypted too.
    let deletes = count(&out, "INFORMATIONAL_V1 request ") - r_u_there - ack;
    assert_eq!(deletes, count(&out, "[ HASH D ]"), "{out}");
    assert!(deletes >= qm / 3 - 1, "{out}");
    println!("founding case, sans-IO: {n} messages, {r_u_there} R-U-THERE, {ack} ACKs, {} Quick Mode rekeys, {deletes} DELETEs, all decrypted", qm / 3);
}

/// A key log from before `phase1_last_block`: the DPDs cannot be
/// decrypted, and the line says exactly why.
#[test]
fn an_older_key_log_says_what_is_missing() {
    let (log, cap, _) = founding_case();
    let old: String = log
        .lines()
        .filter_map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("phase1_last_block");
            // Both lines say the same then: keep one, as an older ikeda wrote.
            (o["type"] != "ikev1" || !l.contains("\"phase1_last_block\":null")).then(|| v.to_string() + "\n")
        })
        .collect();
    assert!(!old.contains("phase1_last_block"));
    let out = analyze(&old, &cap);
    let dpd = out
        .lines()
        .find(|l| l.contains("INFORMATIONAL_V1 request"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(dpd.contains("[ E ]"), "{dpd}");
    assert!(
        dpd.contains("neither the capture (no Main Mode) nor the key log (no \"phase1_last_block\""),
        "{dpd}"
    );
    // Every first message of an M-ID stays encrypted (DPD, DELETE, QM1);
    // Quick Mode 2 and 3 still decrypt: their IVs are the last
    // ciphertext block of the message before, which is on the wire.
    let qm = count(&out, "QUICK_MODE ");
    assert_eq!(count(&out, " decrypted from "), qm / 3 * 2, "{out}");
    assert_eq!(
        count(&out, "QUICK_MODE request ") - count(&out, "[ HASH ] "),
        qm / 3,
        "{out}"
    );
    assert_eq!(count(&out, "[ HASH ] "), qm / 3, "{out}");
    assert_eq!(count(&out, "[ E ]"), count(&out, "INFORMATIONAL_V1") + qm / 3, "{out}");
}

/// The key log's cookies the other way round (as a user who took the
/// responder's cookie for the initiator's would write it): every message
/// still decrypts, and the first says which cookie is the initiator's.
#[test]
fn cookies_in_either_order_find_the_key_and_the_initiator_is_named() {
    let (log, cap, n) = founding_case();
    let swapped: String = log
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if v["type"] == "ikev1" {
                let (i, r) = (v["icookie"].clone(), v["rcookie"].clone());
                v["icookie"] = r;
                v["rcookie"] = i;
            }
            v.to_string() + "\n"
        })
        .collect();
    let v: serde_json::Value = serde_json::from_str(log.lines().find(|l| l.contains("ikev1")).unwrap()).unwrap();
    let (i, r) = (v["icookie"].as_str().unwrap(), v["rcookie"].as_str().unwrap());
    let out = analyze(&swapped, &cap);
    assert_eq!(count(&out, " decrypted from "), n, "{out}");
    let told = format!(
        "the key source names {r} as the initiator cookie, but it is the responder's: the initiator cookie is {i}"
    );
    assert_eq!(count(&out, &told), 1, "said once:\n{out}");
    // Each line keeps the header's order: initiator's cookie first.
    assert!(out.contains(&format!("{i}_i {r}_r")), "{out}");
}

/// Garbage never panics: every message of the capture cut at every
/// length and with its body bytes flipped, and key logs whose block is
/// not hex, not one block, or a number.
#[test]
fn garbage_in_the_capture_or_the_key_log_does_not_panic() {
    let (log, cap, _) = founding_case();
    // Both lines of the SA unusable: the key log as a whole is refused,
    // naming the field.
    let mut store = KeyStore::default();
    let bad = log
        .replace("\"phase1_last_block\":\"", "\"phase1_last_block\":\"zz")
        .replace("\"phase1_last_block\":null", "\"phase1_last_block\":7");
    assert!(store.load_key_log("log", &bad).is_err());
    assert_eq!(
        store
            .problems
            .iter()
            .filter(|p| p.contains("\"phase1_last_block\" is not hex"))
            .count(),
        2,
        "{:?}",
        store.problems
    );
    let mut store = KeyStore::default();
    let short = log.replace("\"phase1_last_block\":\"", "\"phase1_last_block\":\"0011");
    store.load_key_log("log", &short).unwrap();
    assert!(
        store
            .problems
            .iter()
            .any(|p| p.contains("\"phase1_last_block\" is not one AES")),
        "{:?}",
        store.problems
    );

    // Every IKE message of the capture, truncated and bit-flipped.
    let mut packets = Vec::new();
    let mut format = String::new();
    read_capture(&cap[..], |p| packets.push(p.data.to_vec()), &mut format).unwrap();
    let mut f = pcap_file_header(link_type::RAW, 65535, false);
    let t = Timestamp {
        secs: 1_700_000_000,
        nanos: 0,
    };
    for ip in &packets {
        // IPv4 (20) + UDP (8) + ISAKMP header (28): cut anywhere after.
        for cut in (20 + 8..ip.len()).step_by(7) {
            let (s, d) = (
                Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
                Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            );
            let mut ike = ip[28..cut].to_vec();
            if ike.len() > 40 {
                let k = ike.len() / 2;
                ike[k] ^= 0x5a;
            }
            let g = build_ipv4(s, d, IpProtocol::UDP, &udp(500, 500, &ike));
            f.extend(pcap_record(t, &g, g.len() as u32, false));
        }
    }
    let out = analyze(&log, &f);
    assert!(out.contains("IKE messages"), "{out}");
}
