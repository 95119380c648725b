//! `ikeda pcap` on a real capture: an IKEv2 or IKEv1 lab (ikeda on both gateways)
//! recorded on gw1's WAN from before IKE_SA_INIT (`lab up --capture`), h1
//! pings h2. `ikeda pcap` must show IKE_SA_INIT and IKE_AUTH (IKEv1: Main
//! and Quick Mode) in our log
//! notation, and ESP flows whose packet counts per SPI agree with tshark's
//! reading of the same file; its IKE message count agrees with tshark's.
//!
//! Needs root and tshark; fails without them (unless IKEDA_ALLOW_NO_ROOT=1
//! and not root, then it says it skipped).

mod common;
use common::*;
use std::collections::BTreeMap;

const PINGS: usize = 5;

/// h1 pings h2 `count` times, 0.2 s apart (with `extra` ping options);
/// with `keys_to`, gw1's key directory is copied there (`lab down` removes
/// the state directory, keys and all); then `lab down`, which completes
/// the capture.
fn ping_then_down(lab: Lab, keys_to: Option<&std::path::Path>, count: usize, extra: &[&str]) {
    let count = count.to_string();
    let mut args = vec!["ping", "-n"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-c", &count, "-i", "0.2", "-W", "2", "192.168.12.12"]);
    let o = lab.exec("h1", &args);
    assert!(o.status.success(), "ping h1 -> h2 {extra:?}: {}\n{}", text(&o), gw1_log(&lab));
    if let Some(to) = keys_to {
        lab.copy_keys("gw1", to);
    }
    lab.down_with_capture();
}

fn run_case(test: &str, ike: &str, nat: bool) {
    if !require_root(test) {
        return;
    }
    need_tshark();
    let tmp = TempDir::new(test);
    let pcap = tmp.path().join("cap.pcap");
    let p = pcap.to_str().unwrap();
    let mut args = vec!["--ike", ike, "--capture", p, "--no-ping"];
    if nat {
        args.push("--nat");
    }
    let (lab, _) = Lab::up('p', &args);
    ping_then_down(lab, None, PINGS, &[]);

    let o = ikeda(&["pcap", p]);
    let out = text(&o);
    assert!(o.status.success(), "ikeda pcap {p}:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    let find = |what: &str| {
        lines
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with `{what}` in:\n{out}"))
    };
    let auth = if ike == "2" {
        find(":500 IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP)");
        find(":500 IKE_SA_INIT response 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP)");
        find("IKE_AUTH response 1 [ E ]");
        find("IKE_AUTH request 1 [ E ]")
    } else {
        // Main Mode: SA, KE, then the encrypted identities; Quick Mode encrypted.
        find(":500 ID_PROT request 0 [ SA V");
        find(":500 ID_PROT response 0 [ SA V");
        find("ID_PROT request 0 [ KE No NAT-D NAT-D ]");
        find("ID_PROT response 0 [ KE No NAT-D NAT-D ]");
        find("ID_PROT response 0 [ E ]");
        find("QUICK_MODE response ");
        find("ID_PROT request 0 [ E ]")
    };
    assert!(auth.contains(" encrypted "), "{auth}");
    if nat {
        // Behind the NAT, IKE_AUTH floats to 4500 (non-ESP marker) and ESP goes in UDP.
        assert!(auth.contains(":4500 -> "), "{auth}");
        let esp: Vec<&&str> = lines.iter().filter(|l| l.contains(" SPI 0x")).collect();
        assert!(esp.len() == 2 && esp.iter().all(|l| l.contains("ESP in UDP")), "{out}");
    }
    assert!(out.contains("ESP flows:"), "{out}");

    // The same capture rewritten by editcap as pcapng and as nanosecond
    // pcap reads the same, but for the format it names.
    let without_format = |s: &str| s.replace("pcap (microseconds, little-endian)", "FORMAT");
    for (fmt, name, says) in [
        ("pcapng", "cap.pcapng", "pcapng (little-endian)"),
        ("nsecpcap", "cap-ns.pcap", "pcap (nanoseconds, little-endian)"),
    ] {
        let conv = tmp.path().join(name);
        let e = std::process::Command::new("editcap")
            .args(["-F", fmt])
            .arg(&pcap)
            .arg(&conv)
            .output()
            .expect("running editcap");
        assert!(e.status.success(), "editcap -F {fmt}: {}", text(&e));
        let o = ikeda(&["pcap", conv.to_str().unwrap()]);
        assert!(o.status.success(), "ikeda pcap {name}: {}", text(&o));
        assert_eq!(
            text(&o).replace(says, "FORMAT"),
            without_format(&out),
            "ikeda pcap reads the {fmt} copy differently"
        );
    }

    // The same file through tshark (no keys: it only dissects).
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut tshark_spis: BTreeMap<String, u64> = BTreeMap::new();
    for row in tshark_fields(&pcap, &empty, &["-Y", "esp"], &["esp.spi"]) {
        let spi = u32::from_str_radix(row[0].trim_start_matches("0x"), 16).expect("esp.spi in hex");
        *tshark_spis.entry(format!("{spi:#010x}")).or_default() += 1;
    }
    let tshark_ike = tshark_fields(&pcap, &empty, &["-Y", "isakmp"], &["frame.number"]).len();
    let frames = tshark_fields(&pcap, &empty, &[], &["frame.number"]).len();

    let o = ikeda(&["pcap", "--json", p]);
    assert!(o.status.success(), "ikeda pcap --json: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("ikeda pcap --json is one JSON object");
    let mut ours: BTreeMap<String, u64> = BTreeMap::new();
    for f in v["flows"].as_array().unwrap() {
        *ours.entry(f["spi"].as_str().unwrap().to_string()).or_default() += f["packets"].as_u64().unwrap();
        assert_eq!(f["replays"], 0, "{f}");
    }
    assert_eq!(ours, tshark_spis, "ESP packets per SPI: ikeda pcap vs tshark\n{out}");
    // Two SAs (one each way), and at least the pings and their replies.
    assert_eq!(ours.len(), 2, "{out}");
    assert!(ours.values().all(|n| *n >= PINGS as u64), "{ours:?}");
    assert_eq!(
        v["messages"].as_array().unwrap().len(),
        tshark_ike,
        "IKE messages vs tshark\n{out}"
    );
    assert_eq!(v["stats"]["frames"].as_u64().unwrap() as usize, frames);
    println!("{test}: {frames} frames, {tshark_ike} IKE messages, ESP {ours:?}, as tshark counts them");
}

#[test]
fn pcap_of_an_ikev2_lab_agrees_with_tshark() {
    run_case("pcap_of_an_ikev2_lab_agrees_with_tshark", "2", false);
}

/// IKEv1: Main Mode in clear then encrypted, Quick Modes encrypted.
#[test]
fn pcap_of_an_ikev1_lab_agrees_with_tshark() {
    run_case("pcap_of_an_ikev1_lab_agrees_with_tshark", "1", false);
}

/// gw1 behind the lab's NAT: IKE after the non-ESP marker on 4500, ESP in UDP.
#[test]
fn pcap_of_an_ikev2_lab_behind_nat_agrees_with_tshark() {
    run_case("pcap_of_an_ikev2_lab_behind_nat_agrees_with_tshark", "2", true);
}

// ---- issue 12 part C: `ikeda pcap --keys` with the lab's key log ----------

/// IKEv2 payload types (RFC 7296 §3.2) by the names of our log notation.
fn payload_type(name: &str) -> Option<u8> {
    let base = name.split('(').next().unwrap_or(name);
    Some(match base {
        "SA" => 33,
        "KE" => 34,
        "IDi" => 35,
        "IDr" => 36,
        "CERT" => 37,
        "CERTREQ" => 38,
        "AUTH" => 39,
        "No" => 40,
        "N" => 41,
        "D" => 42,
        "V" => 43,
        "TSi" => 44,
        "TSr" => 45,
        "CPRQ" | "CPRP" | "CPS" | "CPA" | "CP" => 47,
        "EAP" => 48,
        _ => return None,
    })
}

/// A lab with key export and a capture of gw1's WAN; h1 pings h2 PINGS
/// times. Returns the capture, a copy of gw1's key directory, and the
/// directory that holds both (removed when dropped).
fn keyed_capture(test: &str, args: &[&str]) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    keyed_capture_pinging(test, args, PINGS, &[])
}

/// [`keyed_capture`] with `count` pings and `extra` ping options.
fn keyed_capture_pinging(
    test: &str,
    args: &[&str],
    count: usize,
    extra: &[&str],
) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = TempDir::new(test);
    let pcap = tmp.path().join("cap.pcap");
    let p = pcap.to_str().unwrap().to_string();
    let mut a = vec!["--export-keys", "--capture", &p, "--no-ping"];
    a.extend_from_slice(args);
    let (lab, _) = Lab::up('d', &a);
    let keys = tmp.path().join("keys");
    ping_then_down(lab, Some(&keys), count, extra);
    (tmp, pcap, keys)
}

/// `ikeda pcap --json --keys DIR FILE`, parsed, and the text output.
fn pcap_with_keys(pcap: &std::path::Path, keys: &std::path::Path) -> (serde_json::Value, String) {
    let (p, k) = (pcap.to_str().unwrap(), keys.to_str().unwrap());
    let o = ikeda(&["pcap", "--json", "--keys", k, p]);
    assert!(o.status.success(), "ikeda pcap --json --keys: {}", text(&o));
    let v = serde_json::from_slice(&o.stdout).expect("ikeda pcap --json is one JSON object");
    let o = ikeda(&["pcap", "--keys", k, p]);
    assert!(o.status.success(), "ikeda pcap --keys: {}", text(&o));
    (v, text(&o))
}

/// Decrypted ESP packets per SPI, as ikeda pcap counts them; every flow
/// has a key and no ICV failure.
fn decrypted_per_spi(v: &serde_json::Value, out: &str) -> BTreeMap<String, u64> {
    let mut ours = BTreeMap::new();
    for f in v["flows"].as_array().unwrap() {
        let d = &f["decryption"];
        assert_eq!(d["key"], true, "{f}\n{out}");
        assert_eq!(d["icv_failures"], 0, "{f}\n{out}");
        ours.insert(f["spi"].as_str().unwrap().to_string(), d["decrypted"].as_u64().unwrap());
    }
    ours
}

/// The key log with the first hex digit of each `fields` value changed.
fn flip_keys(log: &str, fields: &[&str]) -> String {
    let mut out = log.to_string();
    for f in fields {
        let pat = format!("\"{f}\":\"");
        let mut pos = 0;
        while let Some(i) = out[pos..].find(&pat) {
            let at = pos + i + pat.len();
            let d = u8::from_str_radix(&out[at..at + 1], 16).expect("a hex key");
            out.replace_range(at..at + 1, &format!("{:x}", d ^ 1));
            pos = at;
        }
    }
    out
}

/// ESP decrypted per SPI by `ikeda pcap --keys` (every flow keyed, no ICV
/// failure) equals what tshark decrypts with the exported `esp_sa` and its
/// ICV check on; two flows (one each way) with at least the pings, whose
/// inner packets are ICMP.
fn esp_agrees_with_tshark(
    pcap: &std::path::Path,
    keys: &std::path::Path,
    v: &serde_json::Value,
    out: &str,
) -> BTreeMap<String, u64> {
    let ours = decrypted_per_spi(v, out);
    let mut theirs: BTreeMap<String, u64> = BTreeMap::new();
    for r in tshark_fields(
        pcap,
        keys,
        &["-Y", "esp", "-o", "esp.enable_authentication_check:TRUE"],
        &["esp.spi", "ip.src", "esp.icv_good"],
    ) {
        let spi = u32::from_str_radix(r[0].trim_start_matches("0x"), 16).expect("esp.spi in hex");
        let e = theirs.entry(format!("{spi:#010x}")).or_default();
        // Outer and inner source: decrypted; and the ICV good.
        if r[1].split(',').count() == 2 && matches!(r[2].as_str(), "1" | "True") {
            *e += 1;
        }
    }
    assert_eq!(ours, theirs, "decrypted ESP per SPI: ikeda pcap vs tshark\n{out}");
    assert_eq!(ours.len(), 2, "{out}");
    assert!(ours.values().all(|n| *n >= PINGS as u64), "{ours:?}");
    let esp: Vec<&str> = out.lines().filter(|l| l.contains(" SPI 0x")).collect();
    assert!(esp.iter().all(|l| l.contains("(ICMP ")), "{out}");
    ours
}

/// IKEv2, AES-CBC with HMAC-SHA-256 for IKE and ESP: `ikeda pcap --keys`
/// with gw1's key log shows IKE_AUTH's payloads (the same list, in the same
/// order, as tshark given the exported Wireshark tables), and decrypts as
/// many ESP packets per SPI as tshark does (with its ICV check on).
#[test]
fn pcap_keys_decrypt_an_ikev2_lab_as_tshark_does() {
    let test = "pcap_keys_decrypt_an_ikev2_lab_as_tshark_does";
    if !require_root(test) {
        return;
    }
    need_tshark();
    let (_tmp, pcap, keys) = keyed_capture(
        test,
        &[
            "--ike",
            "2",
            "--ike-proposal",
            "aes128-sha256-modp2048",
            "--esp",
            "aes128-sha256",
        ],
    );
    let (v, out) = pcap_with_keys(&pcap, &keys);

    // IKE_AUTH: our inner payload list against tshark's (minus SK itself).
    let ours: Vec<(u64, Vec<u8>)> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["exchange"] == "IKE_AUTH")
        .map(|m| {
            assert_eq!(m["decrypted"], true, "{m}\n{out}");
            let s = m["summary"].as_str().unwrap();
            let list = s.split('[').nth(1).unwrap().trim_end_matches(']');
            let types = list
                .split_whitespace()
                .map(|n| payload_type(n).unwrap_or_else(|| panic!("payload {n} in {s}")))
                .collect();
            (m["frame"].as_u64().unwrap(), types)
        })
        .collect();
    assert_eq!(ours.len(), 2, "{out}");
    let theirs: Vec<(u64, Vec<u8>)> = tshark_fields(
        &pcap,
        &keys,
        &["-Y", "isakmp.exchangetype == 35"],
        &["frame.number", "isakmp.typepayload"],
    )
    .into_iter()
    .map(|r| {
        // isakmp.typepayload also names the Proposal (2) and Transform (3)
        // substructures inside SA; SK (46) is the envelope.
        let types = r[1]
            .split(',')
            .filter_map(|t| t.parse().ok())
            .filter(|t| *t >= 33 && *t != 46)
            .collect();
        (r[0].parse().unwrap(), types)
    })
    .collect();
    assert_eq!(
        ours, theirs,
        "IKE_AUTH payloads (frame, types): ikeda pcap vs tshark\n{out}"
    );
    for want in ["IKE_AUTH request 1 [ IDi ", "IKE_AUTH response 1 [ IDr "] {
        let l = out
            .lines()
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no `{want}`:\n{out}"));
        assert!(
            l.contains(" AUTH ") && l.contains("SA TSi TSr") && l.contains("decrypted from"),
            "{l}"
        );
    }

    let ours = esp_agrees_with_tshark(&pcap, &keys, &v, &out);

    // Negative control: every key one bit off. Each SA is named with why,
    // and nothing is decrypted.
    let bad = keys.parent().unwrap().join("bad-keys");
    std::fs::create_dir_all(&bad).unwrap();
    let log = std::fs::read_to_string(keys.join("ikeda-keys.jsonl")).unwrap();
    std::fs::write(
        bad.join("ikeda-keys.jsonl"),
        flip_keys(&log, &["sk_ei", "sk_er", "sk_ai", "sk_ar", "enc_key", "auth_key"]),
    )
    .unwrap();
    let (_, wrong) = pcap_with_keys(&pcap, &bad);
    assert_eq!(
        wrong.matches("ICV mismatch: wrong key for IKE SA ").count(),
        2,
        "{wrong}"
    );
    for spi in ours.keys() {
        assert!(
            wrong.contains(&format!("decrypted 0, 5 ICV mismatch: wrong key for SPI {spi}")),
            "{spi}:\n{wrong}"
        );
    }
    println!("{test}: IKE_AUTH payloads and ESP per SPI {ours:?} decrypted as tshark decrypts them");
}

/// ChaCha20-Poly1305 with ESN, behind the NAT (ESP in UDP): Debian's
/// tshark decrypts none of it; `ikeda pcap --keys` decrypts every packet,
/// the pings and their replies.
#[test]
fn pcap_keys_decrypt_chacha20_esn_that_tshark_cannot() {
    let test = "pcap_keys_decrypt_chacha20_esn_that_tshark_cannot";
    if !require_root(test) {
        return;
    }
    need_tshark();
    let (_tmp, pcap, keys) = keyed_capture(test, &["--ike", "2", "--esp", "chacha20poly1305-esn", "--nat"]);
    let log = std::fs::read_to_string(keys.join("ikeda-keys.jsonl")).unwrap();
    assert!(
        log.contains("\"algorithm\":\"chacha20poly1305\"") && log.contains("\"esn\":true"),
        "the lab did not negotiate ChaCha20-Poly1305 with ESN"
    );
    let (v, out) = pcap_with_keys(&pcap, &keys);
    let ours = decrypted_per_spi(&v, &out);
    assert_eq!(ours.len(), 2, "{out}");
    for f in v["flows"].as_array().unwrap() {
        let d = &f["decryption"];
        assert_eq!(d["decrypted"], f["packets"], "{f}\n{out}");
        assert!(d["inner"]["ICMP"].as_u64().unwrap() >= PINGS as u64, "{f}\n{out}");
    }
    let inner = tshark_fields(&pcap, &keys, &["-Y", "esp"], &["ip.src"]);
    assert!(!inner.is_empty(), "tshark sees no ESP");
    assert!(
        inner.iter().all(|r| r[0].split(',').count() == 1),
        "tshark decrypted ChaCha20-Poly1305 ESP after all: {inner:?}"
    );
    println!(
        "{test}: {ours:?} decrypted; tshark decrypts none of {} ESP frames",
        inner.len()
    );
}

/// IKEv1 (ikeda on both gateways): with gw1's key log, Main Mode 5/6 and
/// both Quick Modes are decrypted along the IV chain computed from the
/// capture (nothing of IKEv1 stays `[ E ]`), and ESP agrees with tshark.
#[test]
fn pcap_keys_decrypt_an_ikev1_lab() {
    let test = "pcap_keys_decrypt_an_ikev1_lab";
    if !require_root(test) {
        return;
    }
    need_tshark();
    let (_tmp, pcap, keys) = keyed_capture(test, &["--ike", "1"]);
    let (v, out) = pcap_with_keys(&pcap, &keys);
    for want in [
        "ID_PROT request 0 [ ID HASH",
        "ID_PROT response 0 [ ID HASH",
        "QUICK_MODE request ",
        "QUICK_MODE response ",
    ] {
        let l = out
            .lines()
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no `{want}`:\n{out}"));
        assert!(l.contains("decrypted from"), "{l}");
    }
    assert!(
        // Two Quick Modes (IPv4 and IPv6 LANs): each opened with its
        // HASH(1) SA No ID ID, closed with the initiator's HASH(3).
        out.matches("QUICK_MODE request ").count() == 4
            && out.matches(" [ HASH SA No ID ID ]").count() == 4
            && out.matches(" [ HASH ] ").count() == 2,
        "{out}"
    );
    assert!(!out.contains("[ E ]"), "an IKEv1 message stays encrypted:\n{out}");
    let ours = esp_agrees_with_tshark(&pcap, &keys, &v, &out);
    println!("{test}: Main Mode 5/6 and Quick Mode decrypted; ESP per SPI {ours:?} as tshark decrypts it");
}

/// ESP in UDP with the WAN veths' offloads kept on (`--wan-offload`): UDP
/// GSO trains cross the veth whole, so gw1's WAN capture holds frames of
/// several ESP packets, as a capture on a real gateway before its NIC does.
/// Pings preloaded 16 at a time leave each gateway as trains. tshark reads
/// such a frame as one ESP packet whose ICV fails; `ikeda pcap --keys`
/// reads it as its packets, decrypts every one (as many per SPI as were
/// pinged, no ICV failure), counts the trains and says how to capture.
#[test]
fn pcap_reads_udp_gso_trains_that_tshark_cannot() {
    let test = "pcap_reads_udp_gso_trains_that_tshark_cannot";
    if !require_root(test) {
        return;
    }
    need_tshark();
    const N: u64 = 64;
    let (_tmp, pcap, keys) = keyed_capture_pinging(
        test,
        &["--ike", "2", "--encap", "udp", "--wan-offload"],
        N as usize,
        &["-q", "-l", "16"],
    );

    let (v, out) = pcap_with_keys(&pcap, &keys);
    let s = &v["stats"];
    let (trains, in_trains) = (s["esp_trains"].as_u64().unwrap(), s["esp_in_trains"].as_u64().unwrap());
    assert!(trains > 0 && in_trains > trains, "no trains in the capture: {s}\n{out}");
    assert!(out.contains("Captures on a gateway with UDP GSO/GRO"), "{out}");
    let ours = decrypted_per_spi(&v, &out);
    assert_eq!(ours.len(), 2, "{out}");
    assert!(ours.values().all(|n| *n >= N), "{ours:?}\n{out}");
    let esp: Vec<&str> = out.lines().filter(|l| l.contains(" SPI 0x")).collect();
    assert!(
        esp.iter().all(|l| l.contains(" 0 gaps") && l.contains("(ICMP ")),
        "{out}"
    );

    // tshark, with the same keys, decrypts fewer: every train is one bad packet to it.
    let mut good = 0u64;
    let mut bad = 0u64;
    for r in tshark_fields(
        &pcap,
        &keys,
        &["-Y", "esp", "-o", "esp.enable_authentication_check:TRUE"],
        &["esp.icv_good"],
    ) {
        if matches!(r[0].as_str(), "1" | "True") {
            good += 1;
        } else {
            bad += 1;
        }
    }
    let total: u64 = ours.values().sum();
    assert_eq!(
        (good, bad),
        (total - in_trains, trains),
        "tshark: every frame but the trains decrypts; ours {ours:?}"
    );
    println!("{trains} trains holding {in_trains} ESP packets; ikeda pcap decrypted {total}, tshark {good} (and {bad} ICV failures)");
}
