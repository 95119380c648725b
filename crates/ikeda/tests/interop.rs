//! IKEv2 interop with strongSwan 5.9 (charon, kernel-libipsec) in the lab:
//! ikeda on gw1, charon on gw2, each acceptance proposal with ikeda as
//! initiator and as responder; ping crosses (checked by `lab up`) and
//! iperf3 runs 5 s. Also the legacy ESP suites (3DES, HMAC-MD5) under a
//! modern IKE SA, HMAC-SHA2-384/512 ESP in both roles, ikeda <-> ikeda,
//! and DELETE from either side.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROPOSALS: [(&str, &str); 5] = [
    ("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
    ("aes256gcm16-prfsha384-ecp384", "aes256gcm16"),
    ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305"),
    ("aes128-sha256-modp2048", "aes128-sha256"),
    ("aes256-sha1-modp2048", "aes256-sha1"),
];

/// iperf3 h1 -> h2 for `secs`; returns Gbit/s received.
fn iperf(lab: &Lab, secs: u32) -> f64 {
    iperf_dir(lab, secs, false)
}

/// iperf3 between h1 (client) and h2 for `secs`, h2 sending if `reverse`
/// (-R); returns Gbit/s received.
fn iperf_dir(lab: &Lab, secs: u32, reverse: bool) -> f64 {
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("h2"),
            "iperf3",
            "-s",
            "-1",
            "-B",
            "192.168.12.12",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let secs = secs.to_string();
    let mut args = vec!["iperf3", "-c", "192.168.12.12", "-t", &secs, "-J"];
    if reverse {
        args.push("-R");
    }
    let o = lab.exec("h1", &args);
    let _ = server.kill();
    let _ = server.wait();
    assert!(o.status.success(), "iperf3 {args:?}: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap() / 1e9
}

#[test]
fn strongswan_interop_every_proposal_both_roles() {
    if !require_root("strongswan_interop_every_proposal_both_roles") {
        return;
    }
    need_strongswan();
    for (ike, esp) in PROPOSALS {
        for initiator in ["gw1", "gw2"] {
            let (lab, out) = Lab::up(
                'i',
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
            assert!(
                out.contains("192.168.11.11 -> 192.168.12.12 through the tunnel: 3 packets transmitted, 3 received"),
                "{out}"
            );
            let sas = swanctl(&lab, "gw2", &["--list-sas"]);
            assert!(sas.contains("INSTALLED") && sas.contains("ESTABLISHED"), "{sas}");
            let log = gw1_log(&lab);
            let role = if initiator == "gw1" {
                "(initiator)"
            } else {
                "(responder)"
            };
            assert!(
                log.contains("IKE_SA established") && log.contains(role),
                "{ike} {initiator}:\n{log}"
            );
            let gbps = iperf(&lab, 5);
            eprintln!("interop {ike} / {esp}, ikeda {role}: iperf3 {gbps:.3} Gbit/s");
            assert!(gbps > 0.01, "{ike} {initiator}: {gbps} Gbit/s");
        }
    }
}

/// `ikeda show child --json` on gw1.
fn show_child(lab: &Lab) -> serde_json::Value {
    let o = Command::new(IKEDA)
        .arg("--socket")
        .arg(lab.dir().join("gw1.sock"))
        .args(["show", "child", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "show child: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// One ESP suite against strongSwan, negotiated with IKEv2: ping crosses,
/// strongSwan and `ikeda show child` (JSON and text) name the same suite,
/// the log shows our role, and iperf3 moves data both ways through ikeda's
/// and charon's ESP.
fn esp_suite_interop(tag: char, ike: &str, esp: &str, name: &str, initiator: &str) {
    let (lab, out) = Lab::up(
        tag,
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
    assert!(
        out.contains("192.168.11.11 -> 192.168.12.12 through the tunnel: 3 packets transmitted, 3 received"),
        "{esp} {initiator}: {out}"
    );
    let sas = swanctl(&lab, "gw2", &["--list-sas"]);
    assert!(
        sas.contains("INSTALLED") && sas.contains(&format!("ESP:{name}")),
        "{esp} {initiator}: strongSwan's SA\n{sas}"
    );
    let child = show_child(&lab);
    assert_eq!(child[0]["algorithms"], name, "{esp} {initiator}: show child\n{child}");
    let t = Command::new(IKEDA)
        .arg("--socket")
        .arg(lab.dir().join("gw1.sock"))
        .args(["show", "child"])
        .output()
        .unwrap();
    assert!(text(&t).contains(&format!("ESP:{name}")), "{esp}: {}", text(&t));
    let log = gw1_log(&lab);
    let role = if initiator == "gw1" {
        "(initiator)"
    } else {
        "(responder)"
    };
    assert!(
        log.contains("IKE_SA established") && log.contains(role),
        "{esp} {initiator}:\n{log}"
    );
    let gbps = iperf(&lab, 3);
    let back = iperf_dir(&lab, 2, true);
    eprintln!("interop ESP {esp}, ikeda {role}: iperf3 h1->h2 {gbps:.3} Gbit/s, h2->h1 {back:.3} Gbit/s");
    assert!(
        gbps > 0.005 && back > 0.005,
        "{esp} {initiator}: {gbps} / {back} Gbit/s"
    );
}

/// The legacy ESP suites IKEv1 peers need (3DES-CBC, RFC 2451; HMAC-MD5-96,
/// RFC 2403), negotiated here over IKEv2 (ENCR_3DES = 3, AUTH_HMAC_MD5_96 =
/// 1).
#[test]
fn strongswan_interop_legacy_esp() {
    if !require_root("strongswan_interop_legacy_esp") {
        return;
    }
    need_strongswan();
    for (esp, name, initiator) in [
        ("3des-md5", "3DES_CBC/HMAC_MD5_96", "gw1"),
        ("3des-sha1", "3DES_CBC/HMAC_SHA1_96", "gw2"),
        ("aes128-md5", "AES_CBC-128/HMAC_MD5_96", "gw1"),
    ] {
        esp_suite_interop('l', "aes128-sha256-modp2048", esp, name, initiator);
    }
}

/// RFC 4868's HMAC-SHA2-384-192 and HMAC-SHA2-512-256 (AUTH 13 and 14),
/// both in strongSwan's default ESP proposal, with ikeda initiating and
/// responding.
#[test]
fn strongswan_interop_sha2_384_512_esp() {
    if !require_root("strongswan_interop_sha2_384_512_esp") {
        return;
    }
    need_strongswan();
    for (esp, name) in [
        ("aes256-sha384", "AES_CBC-256/HMAC_SHA2_384_192"),
        ("aes256-sha512", "AES_CBC-256/HMAC_SHA2_512_256"),
    ] {
        for initiator in ["gw1", "gw2"] {
            esp_suite_interop('h', "aes256-sha384-ecp384", esp, name, initiator);
        }
    }
}

/// ikeda with four TUN queues (`tun_queues = 4`), one TX thread each, to
/// strongSwan: eight TCP streams spread over the queues, and strongSwan
/// (kernel-libipsec, replay window 32) accepted every ESP packet ikeda sent
/// but those its UDP socket had no room for: its inbound SA's packets plus
/// gw2's `UdpRcvbufErrors` are ikeda's outbound SA's packets, exactly. A
/// packet sent behind the window would be missing from that sum.
#[test]
fn strongswan_takes_every_packet_from_four_tun_queues() {
    if !require_root("strongswan_takes_every_packet_from_four_tun_queues") {
        return;
    }
    let (lab, out) = Lab::up(
        'q',
        &["--ike", "2", "--peer", "strongswan", "--esp", "aes128gcm16", "--tun-queues", "4"],
    );
    assert!(out.contains("3 received"), "{out}");
    let server = IperfServer::start(&lab);
    let o = lab.exec("h1", &["iperf3", "-c", "192.168.12.12", "-t", "3", "-P", "8"]);
    drop(server);
    assert!(o.status.success(), "iperf3: {}", text(&o));
    // Quiet now; ikeda's stats file is rewritten every second.
    std::thread::sleep(Duration::from_millis(2000));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.dir().join("gw1.stats.json")).unwrap()).unwrap();
    let queues: Vec<u64> = s["tx_queues"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    assert!(queues.len() == 4 && queues.iter().filter(|&&n| n > 0).count() >= 2, "{queues:?}");
    let sent = s["sas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sa| sa["direction"] == "out")
        .and_then(|sa| sa["packets"].as_u64())
        .unwrap();
    let sas = swanctl(&lab, "gw2", &["--list-sas"]);
    let inbound = sas
        .lines()
        .find(|l| l.trim_start().starts_with("in "))
        .and_then(|l| l.split(',').find(|f| f.trim().ends_with("packets")))
        .and_then(|f| f.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("strongSwan's inbound packets:\n{sas}"));
    let snmp = text(&lab.exec("gw2", &["cat", "/proc/net/snmp"]));
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp: ")).collect();
    let col = udp[0].split_whitespace().position(|k| k == "RcvbufErrors").unwrap();
    let rcvbuf: u64 = udp[1].split_whitespace().nth(col).unwrap().parse().unwrap();
    eprintln!("tun queues {queues:?}; ikeda sent {sent}, strongSwan took {inbound}, its socket had no room for {rcvbuf}");
    assert_eq!(inbound + rcvbuf, sent, "packets strongSwan dropped otherwise (replay?):\n{sas}");
}

#[test]
fn ikeda_to_ikeda_ikev2() {
    if !require_root("ikeda_to_ikeda_ikev2") {
        return;
    }
    let (lab, out) = Lab::up(
        'k',
        &[
            "--ike",
            "2",
            "--ike-proposal",
            "aes128-sha256-modp2048",
            "--esp",
            "aes128-sha1",
        ],
    );
    assert!(out.contains("3 received"), "{out}");
    let log = gw1_log(&lab);
    assert!(
        log.contains("sending IKE_AUTH request 1 [ IDi AUTH N(INIT_CONTACT) SA TSi TSr V ]"),
        "{log}"
    );
    // No NAT, no forced encapsulation: raw ESP.
    assert!(log.contains("ESP to 192.168.50.12"), "{log}");
}

#[test]
fn delete_from_either_side_tears_down_both_ends() {
    if !require_root("delete_from_either_side_tears_down_both_ends") {
        return;
    }
    need_strongswan();
    // strongSwan deletes: ikeda removes its CHILD SA and IKE SA.
    let (lab, _) = Lab::up('x', &["--ike", "2", "--peer", "strongswan"]);
    let out = swanctl(&lab, "gw2", &["--terminate", "--ike", "s2s", "--timeout", "10"]);
    assert!(out.contains("terminate completed successfully"), "{out}");
    wait_for("ikeda to remove the CHILD SA", 15, || {
        gw1_log(&lab).contains("IKE_SA down (deleted by the peer)")
    });
    assert!(gw1_log(&lab).contains("CHILD_SA") && gw1_log(&lab).contains("removed"));
    let o = lab.exec("h1", &["ping", "-c", "1", "-W", "1", "192.168.12.12"]);
    assert!(!o.status.success(), "traffic still crosses after DELETE");
    drop(lab);
    // ikeda deletes (on shutdown): strongSwan's SAs go away.
    let (lab, _) = Lab::up('y', &["--ike", "2", "--peer", "strongswan"]);
    assert!(swanctl(&lab, "gw2", &["--list-sas"]).contains("ESTABLISHED"));
    unsafe { libc::kill(lab.pid("ikeda gw1"), libc::SIGTERM) };
    wait_for("strongSwan to drop the IKE SA", 15, || {
        !swanctl(&lab, "gw2", &["--list-sas"]).contains("ESTABLISHED")
    });
    let charon_log = std::fs::read_to_string(lab.dir().join("charon-gw2.log")).unwrap_or_default();
    assert!(charon_log.contains("received DELETE for IKE_SA"), "{charon_log}");
}
