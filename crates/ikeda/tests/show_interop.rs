//! `ikeda show ike|child --json` against strongSwan's own account of the
//! same SAs (`swanctl --list-sas` on gw2): SPIs, algorithms and byte
//! counts must agree. gw1 runs ikeda, gw2 charon (kernel-libipsec).

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

/// What swanctl says about the one IKE SA and its CHILD SA.
#[derive(Debug, Default)]
struct Swan {
    spi_i: String,
    spi_r: String,
    ike_alg: String,
    child_alg: String,
    spi_in: String,
    spi_out: String,
    bytes_in: u64,
    bytes_out: u64,
}

fn parse_swanctl(t: &str) -> Swan {
    let mut s = Swan::default();
    let lines: Vec<&str> = t.lines().collect();
    for (k, l) in lines.iter().enumerate() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if l.contains("ESTABLISHED, IKEv2") {
            // s2s: #1, ESTABLISHED, IKEv2, 72771cfff3023d7e_i 84a424dc54e0cefd_r*
            s.spi_i = w[4]
                .trim_end_matches("_i")
                .trim_end_matches('*')
                .trim_end_matches("_i")
                .into();
            s.spi_r = w[5].trim_end_matches('*').trim_end_matches("_r").into();
            s.ike_alg = lines[k + 3].trim().into();
        }
        if let Some(p) = l.find("ESP:") {
            s.child_alg = l[p + 4..].trim().into();
        }
        // "in  24370011,   1704 bytes,    11 packets,     0s ago"
        let bytes = |w: &[&str]| w[2].parse::<u64>().unwrap();
        if w.first() == Some(&"in") && w.get(3) == Some(&"bytes,") {
            s.spi_in = w[1].trim_end_matches(',').into();
            s.bytes_in = bytes(&w);
        }
        if w.first() == Some(&"out") && w.get(3) == Some(&"bytes,") {
            s.spi_out = w[1].trim_end_matches(',').into();
            s.bytes_out = bytes(&w);
        }
    }
    s
}

fn show(lab: &Lab, what: &str) -> Value {
    let o = Command::new(IKEDA)
        .arg("--socket")
        .arg(lab.dir().join("gw1.sock"))
        .args(["show", what, "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "show {what}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn check(ike: &str, esp: &str, initiator: &str) {
    need_strongswan();
    let (lab, _) = Lab::up(
        's',
        &[
            "--ike",
            "2",
            "--peer",
            "strongswan",
            "--ike-proposal",
            ike,
            "--esp",
            esp,
            "--initiator",
            initiator,
        ],
    );
    let o = lab.exec("h1", &["ping", "-c", "5", "-i", "0.2", "-s", "200", "192.168.12.12"]);
    assert_eq!(ping_counts(&text(&o)), (5, 5));
    // Counters before and after swanctl's: strongSwan's must lie between
    // (lab up's own pings and these; nothing else runs).
    let before = show(&lab, "child");
    let sw = swanctl(&lab, "gw2", &["--list-sas"]);
    let after = show(&lab, "child");
    let s = parse_swanctl(&sw);
    let ike = show(&lab, "ike");
    let i = &ike[0];
    assert_eq!(i["spi_i"], s.spi_i, "IKE SPIi\n{sw}\n{i}");
    assert_eq!(i["spi_r"], s.spi_r, "IKE SPIr\n{sw}\n{i}");
    assert_eq!(i["algorithms"], s.ike_alg, "IKE algorithms\n{sw}");
    assert_eq!(i["role"], if initiator == "gw1" { "initiator" } else { "responder" });
    let (b, a) = (&before[0], &after[0]);
    assert_eq!(a["algorithms"], s.child_alg, "ESP algorithms\n{sw}");
    // Our inbound SA is strongSwan's outbound and the other way round.
    assert_eq!(a["inbound"]["spi"], s.spi_out, "\n{sw}\n{a}");
    assert_eq!(a["outbound"]["spi"], s.spi_in, "\n{sw}\n{a}");
    for (ours, theirs) in [("outbound", s.bytes_in), ("inbound", s.bytes_out)] {
        let (lo, hi) = (b[ours]["bytes"].as_u64().unwrap(), a[ours]["bytes"].as_u64().unwrap());
        assert!(
            lo <= theirs && theirs <= hi,
            "{ours} bytes: ikeda {lo}..{hi}, strongSwan {theirs}\n{sw}"
        );
        assert!(theirs >= 5 * 228, "the pings were counted: {theirs}");
    }
}

#[test]
fn show_agrees_with_swanctl_gcm_ikeda_initiator() {
    if require_root("show_agrees_with_swanctl_gcm_ikeda_initiator") {
        check("aes128gcm16-prfsha256-x25519", "aes128gcm16", "gw1");
    }
}

#[test]
fn show_agrees_with_swanctl_cbc_strongswan_initiator() {
    if require_root("show_agrees_with_swanctl_cbc_strongswan_initiator") {
        check("aes128-sha256-modp2048", "aes128-sha256", "gw2");
    }
}
