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
    let o = lab.exec(
        "h1",
        &[
            "ping",
            "-n",
            "-c",
            &PINGS.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
            "192.168.12.12",
        ],
    );
    assert!(o.status.success(), "ping h1 -> h2: {}\n{}", text(&o), gw1_log(&lab));
    let down = lab.down();
    assert!(
        down.contains("packets in"),
        "lab down does not report the capture:\n{down}"
    );

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
