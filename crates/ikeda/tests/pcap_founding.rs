//! Issue 12's founding case, as its acceptance asks: an IKEv1 tunnel
//! (ikeda on gw1, strongSwan on gw2) with DPD every 2 s and Quick Mode
//! rekeys every 10 s; a capture of gw1's WAN begun only once the tunnel is
//! up, so it holds no Main Mode, while h1 pings h2. With gw1's key log,
//! `ikeda pcap --keys` decrypts the R-U-THERE / R-U-THERE-ACK messages and
//! the Quick Mode rekeys in it (every IV from the key log's last phase-1
//! block, RFC 2409 App. B). tshark, with the `ikev1_decryption_table` the
//! same key export wrote, decrypts none of them: it shows Encrypted Data
//! only. That the table itself is right is shown on a second capture of
//! the same link from before Main Mode (`lab up --capture`), in which
//! tshark decrypts the DPDs with it.
//!
//! Needs root, strongSwan and tshark; fails without them (unless
//! IKEDA_ALLOW_NO_ROOT=1 and not root, then it says it skipped).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Pings from h1 to h2 while the capture runs: 4 a second for 24 s,
/// long enough for two rounds of Quick Mode rekeys (10 s) and a dozen DPDs.
const PINGS: u32 = 96;

/// Frames of `pcap` that tshark, with the key files of `keys`, shows under
/// the display filter `filter`.
fn tshark_count(pcap: &Path, keys: &Path, filter: &str) -> usize {
    tshark_fields(pcap, keys, &["-Y", filter], &["frame.number"]).len()
}

#[test]
fn ikev1_dpd_and_rekey_decrypt_without_main_mode_where_tshark_cannot() {
    let test = "ikev1_dpd_and_rekey_decrypt_without_main_mode_where_tshark_cannot";
    if !require_root(test) {
        return;
    }
    need_strongswan();
    need_tshark();
    let tmp = TempDir::new("pcap-founding");
    let full = tmp.path().join("full.pcap");
    let mid = tmp.path().join("mid.pcap");
    let keys = tmp.path().join("keys");
    let (lab, _) = Lab::up(
        'f',
        &[
            "--ike",
            "1",
            "--peer",
            "strongswan",
            "--dpd-delay",
            "2s",
            "--rekey-time",
            "10s",
            "--export-keys",
            "--no-ping",
            "--capture",
            full.to_str().unwrap(),
        ],
    );
    // The tunnel is up (lab up waited for it): traffic passes.
    let o = lab.exec("h1", &["ping", "-n", "-c", "2", "-W", "2", "192.168.12.12"]);
    assert!(
        o.status.success(),
        "ping before the capture: {}\n{}",
        text(&o),
        gw1_log(&lab)
    );

    // The founding case: the capture begins after Main Mode.
    let cap = LabCapture::start(&lab, "gw1", &mid);
    let o = lab.exec(
        "h1",
        &[
            "ping",
            "-n",
            "-c",
            &PINGS.to_string(),
            "-i",
            "0.25",
            "-W",
            "2",
            "192.168.12.12",
        ],
    );
    let said = cap.stop().trim().to_string();
    assert!(
        o.status.success(),
        "ping through the rekeys: {}\n{}",
        text(&o),
        gw1_log(&lab)
    );
    lab.copy_keys("gw1", &keys);
    lab.down_with_capture();

    // ---- ikeda pcap --keys ------------------------------------------------
    let (m, k) = (mid.to_str().unwrap(), keys.to_str().unwrap());
    let o = ikeda(&["pcap", "--keys", k, m]);
    let out = text(&o);
    assert!(o.status.success(), "ikeda pcap --keys: {out}");
    let o = ikeda(&["pcap", "--json", "--keys", k, m]);
    assert!(o.status.success(), "ikeda pcap --json --keys: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let msgs = v["messages"].as_array().unwrap();
    assert!(
        msgs.iter()
            .all(|m| m["exchange"] != "ID_PROT" && m["exchange"] != "AGGRESSIVE"),
        "the capture holds phase 1 ({said}):\n{out}"
    );
    // Every IKE message of the capture is decrypted, none left `[ E ]`.
    let undecrypted: Vec<&serde_json::Value> = msgs.iter().filter(|m| m["decrypted"] != true).collect();
    assert!(undecrypted.is_empty(), "not decrypted: {undecrypted:?}\n{out}");
    let with = |summary: &str, src: &str| {
        msgs.iter()
            .filter(|m| m["summary"].as_str().unwrap().contains(summary) && m["src"] == src)
            .count()
    };
    // ikeda (gw1) asks every 2 s; strongSwan (gw2) answers each.
    let r_u_there = with("[ HASH N(DPD) ]", "192.168.50.11");
    let acks = with("[ HASH N(DPD_ACK) ]", "192.168.50.12");
    assert!(r_u_there >= 8, "{r_u_there} R-U-THERE in 24 s with a 2 s delay:\n{out}");
    // One at either end may have its partner outside the capture.
    assert!(
        acks.abs_diff(r_u_there) <= 1,
        "{r_u_there} R-U-THERE, {acks} ACKs:\n{out}"
    );
    let l = out
        .lines()
        .find(|l| l.contains("INFORMATIONAL_V1 request") && l.contains("[ HASH N(DPD_ACK) ]"))
        .unwrap();
    assert!(l.contains("192.168.50.12:") && l.contains(" decrypted from "), "{l}");

    // The Quick Mode rekeys: by M-ID, HASH(1) SA Ni ID ID from gw1,
    // HASH(2) SA Nr ID ID from strongSwan, HASH(3) from gw1 (RFC 2409 §5.5).
    let mut qm: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for m in msgs.iter().filter(|m| m["exchange"] == "QUICK_MODE") {
        let s = m["summary"].as_str().unwrap();
        let payloads = &s[s.find('[').unwrap()..];
        qm.entry(m["message_id"].as_u64().unwrap())
            .or_default()
            .push(format!("{} {payloads}", m["src"].as_str().unwrap()));
    }
    let whole = [
        "192.168.50.11 [ HASH SA No ID ID ]",
        "192.168.50.12 [ HASH SA No ID ID ]",
        "192.168.50.11 [ HASH ]",
    ];
    let rekeys = qm.values().filter(|v| v[..] == whole[..]).count();
    // Two children (IPv4 and IPv6 LANs), rekeyed every 10 s: four or more
    // in 24 s; one cut by either end of the capture at most is not whole.
    assert!(
        rekeys >= 2 && rekeys + 2 >= qm.len(),
        "Quick Modes by M-ID: {qm:#?}\n{out}"
    );
    let deletes = with("[ HASH D ]", "192.168.50.11") + with("[ HASH D ]", "192.168.50.12");
    // ESP, keyed by the same log: every packet decrypts to ICMP.
    let mut icmp = 0;
    for f in v["flows"].as_array().unwrap() {
        let d = &f["decryption"];
        assert_eq!(d["key"], true, "{f}");
        assert_eq!(d["icv_failures"], 0, "{f}");
        assert_eq!(d["decrypted"], f["packets"], "{f}");
        icmp += d["inner"]["ICMP"].as_u64().unwrap_or(0);
    }
    assert!(
        icmp >= 2 * u64::from(PINGS) - 8,
        "{icmp} ICMP packets decrypted:\n{out}"
    );

    // The cookies the other way round in the key log (the founding case's
    // user copied the responder's cookie as the initiator's): all still
    // decrypts, and ikeda pcap says once which cookie is the initiator's.
    let log = std::fs::read_to_string(keys.join("ikeda-keys.jsonl")).unwrap();
    let (mut icookie, mut rcookie) = (String::new(), String::new());
    let swapped: String = log
        .lines()
        .map(|l| {
            let mut j: serde_json::Value = serde_json::from_str(l).unwrap();
            if j["type"] == "ikev1" {
                icookie = j["icookie"].as_str().unwrap().to_string();
                rcookie = j["rcookie"].as_str().unwrap().to_string();
                j["icookie"] = rcookie.clone().into();
                j["rcookie"] = icookie.clone().into();
            }
            format!("{j}\n")
        })
        .collect();
    let swapped_log = tmp.path().join("swapped.jsonl");
    std::fs::write(&swapped_log, swapped).unwrap();
    let o = ikeda(&["pcap", "--keys", swapped_log.to_str().unwrap(), m]);
    let sw = text(&o);
    assert!(o.status.success(), "{sw}");
    assert_eq!(sw.matches(" decrypted from ").count(), msgs.len(), "{sw}");
    let told = format!(
        "names {rcookie} as the initiator cookie, but it is the responder's: the initiator cookie is {icookie}"
    );
    assert_eq!(sw.matches(&told).count(), 1, "{sw}");

    // ---- tshark with Wireshark's ikev1_decryption_table --------------------
    let table = std::fs::read_to_string(keys.join("ikev1_decryption_table")).unwrap();
    assert_eq!(table.lines().count(), 1, "{table}");
    // The table is right: with the Main Mode in the capture tshark
    // decrypts the DPDs of the same SA with it.
    let full_dpd = tshark_count(&full, &keys, "isakmp.notify.msgtype == 36136");
    assert!(full_dpd >= 1, "tshark does not decrypt even the capture with Main Mode");
    // Without it: every IKE message is Encrypted Data, no payload inside.
    let ike = tshark_count(&mid, &keys, "isakmp");
    assert_eq!(ike, msgs.len(), "IKE messages: tshark vs ikeda pcap");
    assert_eq!(tshark_count(&mid, &keys, "isakmp.enc.data"), ike);
    for inside in [
        "isakmp.notify.msgtype",
        "isakmp.typepayload == 1",
        "isakmp.typepayload == 10",
        "isakmp.enc.decrypted",
    ] {
        assert_eq!(
            tshark_count(&mid, &keys, inside),
            0,
            "tshark decrypted something: {inside}"
        );
    }
    println!(
        "{test}: capture from after Main Mode ({said}): {} IKE messages; ikeda pcap decrypts all: \
         {r_u_there} R-U-THERE, {acks} R-U-THERE-ACK, {rekeys} whole Quick Mode rekeys ({} M-IDs), \
         {deletes} DELETE, {icmp} ICMP in ESP; tshark with ikev1_decryption_table: {ike} \
         \"Encrypted Data\", 0 decrypted (and {full_dpd} R-U-THERE decrypted in the capture with \
         Main Mode)",
        msgs.len(),
        qm.len()
    );
}
