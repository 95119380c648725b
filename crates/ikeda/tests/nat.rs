//! NAT traversal in the lab (`ikeda lab up --nat`): gw1 sits behind a
//! masquerading nftables NAT in the namespace `ikl-<lab>-nat` (gw1's WAN is
//! 10.50.1.11, gw2 sees it as the NAT's 192.168.50.11). IKEv2 detects the
//! NAT (RFC 7296 §2.23) and ESP moves into UDP 4500 (RFC 3948): ikeda <->
//! ikeda, ikeda <-> strongSwan, with the NAT keeping ports and with the NAT
//! remapping them (`--nat-remap`), and manual keys over UDP. `lab up` checks
//! that h1 pings h2 over IPv4 and IPv6 before any of these assertions.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn pings_crossed(out: &str) {
    assert!(
        out.contains("192.168.11.11 -> 192.168.12.12 through the tunnel: 3 packets transmitted, 3 received"),
        "{out}"
    );
    assert!(
        out.contains("2001:db8:11::11 -> 2001:db8:12::12 through the tunnel: 3 packets transmitted, 3 received"),
        "{out}"
    );
}

/// One captured frame: IP protocol, UDP ports (if UDP), ESP SPI (if ESP).
#[derive(Debug)]
struct Frame {
    proto: u8,
    sport: Option<u16>,
    dport: Option<u16>,
    spi: Option<String>,
}

/// Capture ESP and UDP on `node`'s wan0 while h1 pings h2 ten times.
fn capture_while_pinging(lab: &Lab, node: &str) -> Vec<Frame> {
    // `ip netns exec` execs tshark, so the child is tshark itself.
    let mut child: Child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns(node),
            "tshark",
            "-i",
            "wan0",
            "-n",
            "-l",
            "-f",
            "esp or udp",
        ])
        .args(["-T", "fields", "-E", "separator=,"])
        .args([
            "-e",
            "ip.proto",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "esp.spi",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tshark (scripts/test.sh installs it)");
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("Capturing on") {
                let _ = tx.send(());
            }
        }
    });
    let started = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    if !started {
        let _ = child.kill();
        let _ = child.wait();
        panic!("tshark on {node} did not start capturing within 20 s");
    }
    // "Capturing on" comes a little before the socket sees packets; ten
    // pings over 3 s leave plenty inside the capture.
    std::thread::sleep(Duration::from_millis(500));
    let o = lab.exec("h1", &["ping", "-c", "10", "-i", "0.3", "-W", "2", "192.168.12.12"]);
    assert!(o.status.success(), "ping during the capture: {}", text(&o));
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the PID of the child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().expect("tshark output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let get = |i: usize| f.get(i).copied().filter(|s| !s.is_empty());
            Frame {
                proto: get(0).and_then(|s| s.parse().ok()).unwrap_or(0),
                sport: get(1).and_then(|s| s.parse().ok()),
                dport: get(2).and_then(|s| s.parse().ok()),
                spi: get(3).map(str::to_owned),
            }
        })
        .collect()
}

/// ESP seen on gw2's WAN is all inside UDP with gw2's side on 4500, the NAT's
/// side on `nat_port` (4500 when the NAT keeps ports, else its mapping); no
/// raw ESP (IP protocol 50).
fn assert_udp_encapsulated(frames: &[Frame], nat_port: impl Fn(u16) -> bool) {
    let raw: Vec<_> = frames.iter().filter(|f| f.proto == 50).collect();
    assert!(raw.is_empty(), "raw ESP through the NAT: {raw:?}");
    let esp: Vec<_> = frames.iter().filter(|f| f.proto == 17 && f.spi.is_some()).collect();
    assert!(
        esp.len() >= 10,
        "expected ESP-in-UDP for 10 pings each way, got {frames:?}"
    );
    for f in &esp {
        let (s, d) = (f.sport.unwrap(), f.dport.unwrap());
        assert!(
            (s == 4500 && nat_port(d)) || (d == 4500 && nat_port(s)),
            "ESP in UDP {s} -> {d}: {frames:?}"
        );
    }
}

#[test]
fn ikeda_to_ikeda_ikev2_behind_nat() {
    if !require_root("ikeda_to_ikeda_ikev2_behind_nat") {
        return;
    }
    let (lab, out) = Lab::up('n', &["--ike", "2", "--nat"]);
    pings_crossed(&out);
    let nft = text(&lab.exec("nat", &["nft", "list", "ruleset"]));
    assert!(
        nft.contains("oifname \"out0\" ip saddr 10.50.1.0/24 masquerade"),
        "{nft}"
    );
    let gw1 = lab_log(&lab, "gw1.log");
    assert!(
        gw1.contains("NAT detected (or forced by the peer): moving to UDP 4500"),
        "{gw1}"
    );
    assert!(
        gw1.contains("(initiator) 10.50.1.11:4500 <-> 192.168.50.12:4500")
            && gw1.contains("NAT detected: UDP encapsulation"),
        "{gw1}"
    );
    assert!(gw1.contains("UDP-encapsulated to 192.168.50.12:4500"), "{gw1}");
    // gw2 sees gw1 as the NAT's public address (masquerade kept the ports).
    let gw2 = lab_log(&lab, "gw2.log");
    assert!(gw2.contains("received IKE_SA_INIT request 0"), "{gw2}");
    assert!(gw2.contains("from 192.168.50.11:500"), "{gw2}");
    assert!(gw2.contains("received IKE_AUTH request 1"), "{gw2}");
    assert!(gw2.contains("from 192.168.50.11:4500"), "{gw2}");
    assert!(gw2.contains("UDP-encapsulated to 192.168.50.11:4500"), "{gw2}");
    assert_udp_encapsulated(&capture_while_pinging(&lab, "gw2"), |p| p == 4500);
    let prefix = lab.ns("");
    drop(lab);
    assert!(
        namespaces_with_prefix(&prefix).is_empty(),
        "lab down left {:?}",
        namespaces_with_prefix(&prefix)
    );
}

#[test]
fn ikeda_to_ikeda_behind_port_remapping_nat() {
    if !require_root("ikeda_to_ikeda_behind_port_remapping_nat") {
        return;
    }
    // The NAT maps UDP source ports into 40000-40999: gw2 must answer IKE and
    // send ESP to the mapped port, not to 4500.
    let (lab, out) = Lab::up('r', &["--ike", "2", "--nat", "--nat-remap"]);
    pings_crossed(&out);
    let gw2 = lab_log(&lab, "gw2.log");
    let auth_from = gw2
        .lines()
        .find(|l| l.contains("received IKE_AUTH request 1"))
        .and_then(|l| l.rsplit_once("from 192.168.50.11:"))
        .and_then(|(_, p)| p.trim().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no IKE_AUTH from the NAT in gw2's log:\n{gw2}"));
    assert!((40000..=40999).contains(&auth_from), "{gw2}");
    assert!(
        gw2.contains(&format!("UDP-encapsulated to 192.168.50.11:{auth_from}")),
        "{gw2}"
    );
    assert!(lab_log(&lab, "gw1.log").contains("NAT detected"));
    assert_udp_encapsulated(&capture_while_pinging(&lab, "gw2"), |p| p == auth_from);
}

#[test]
fn strongswan_responder_with_ikeda_behind_nat() {
    if !require_root("strongswan_responder_with_ikeda_behind_nat") {
        return;
    }
    need_strongswan();
    for (remap, port) in [(false, "[4500]"), (true, "[40")] {
        let mut args = vec!["--ike", "2", "--nat", "--peer", "strongswan"];
        if remap {
            args.push("--nat-remap");
        }
        let (lab, out) = Lab::up('s', &args);
        pings_crossed(&out);
        let sas = swanctl(&lab, "gw2", &["--list-sas"]);
        assert!(sas.contains("ESTABLISHED") && sas.contains("INSTALLED"), "{sas}");
        // charon identifies gw1 by its own (private) address, reached at the NAT.
        assert!(
            sas.contains(&format!("remote '10.50.1.11' @ 192.168.50.11{port}")),
            "remap {remap}:\n{sas}"
        );
        assert!(sas.contains("TUNNEL-in-UDP"), "{sas}");
        let pretty = swanctl(&lab, "gw2", &["--list-sas", "--pretty"]);
        assert!(pretty.contains("nat-remote = yes"), "{pretty}");
        assert!(!pretty.contains("nat-local = yes"), "{pretty}");
        let charon = std::fs::read_to_string(lab.dir().join("charon-gw2.log")).unwrap_or_default();
        assert!(charon.contains("remote host is behind NAT"), "{charon}");
        let gw1 = lab_log(&lab, "gw1.log");
        assert!(
            gw1.contains("(initiator) 10.50.1.11:4500 <-> 192.168.50.12:4500") && gw1.contains("NAT detected"),
            "{gw1}"
        );
    }
}

#[test]
fn manual_keys_behind_nat_use_udp() {
    if !require_root("manual_keys_behind_nat_use_udp") {
        return;
    }
    // --encap udp given, and the default with --nat.
    for args in [&["--nat", "--encap", "udp"][..], &["--nat"][..]] {
        let (lab, out) = Lab::up('m', args);
        pings_crossed(&out);
        let cfg = std::fs::read_to_string(lab.dir().join("gw1.toml")).unwrap();
        assert!(
            cfg.contains("local_addr = \"10.50.1.11\"") && cfg.contains("encap = \"udp\""),
            "{cfg}"
        );
        assert!(lab_log(&lab, "gw2.log").contains("via 192.168.50.12 <-> 192.168.50.11 (aes128gcm16, udp/4500)"));
        assert_udp_encapsulated(&capture_while_pinging(&lab, "gw2"), |p| p == 4500);
        // The gateways' own policies cross too (gw1 by its private address).
        let o = lab.exec("gw1", &["ping", "-c", "1", "-W", "2", "192.168.12.12"]);
        assert!(o.status.success(), "gw1 -> h2: {}", text(&o));
    }
}

#[test]
fn nat_refuses_what_cannot_work() {
    // Refused before anything is built, so no root is needed.
    for (args, msg) in [
        (&["--nat", "--outer6"][..], "cannot be combined with --outer6"),
        (
            &["--nat", "--encap", "esp"][..],
            "raw ESP (IP protocol 50) does not pass a masquerading NAT",
        ),
        (
            &["--nat", "--gateways", "none"][..],
            "needs --gateways ikeda or strongswan",
        ),
        (
            &["--nat", "--ike", "2", "--initiator", "gw2"][..],
            "gw1 has to initiate",
        ),
        (&["--nat", "--nat-remap"][..], "--nat-remap with manual keys"),
        (&["--nat-remap", "--ike", "2"][..], "--nat"),
    ] {
        let name = unique_name('z');
        let mut a = vec!["lab", "up", "--name", &name];
        a.extend_from_slice(args);
        let o = ikeda(&a);
        let t = text(&o);
        assert!(!o.status.success() && t.contains(msg), "{args:?}:\n{t}");
        assert!(namespaces_with_prefix(&format!("ikl-{name}-")).is_empty());
    }
}

/// The NAT forgets idle UDP mappings (here after 30 s): gw1, behind it, has
/// to send NAT-keepalives (RFC 3948 §4, strongSwan: every 20 s) so that gw2
/// can still reach it after a quiet spell (strongSwan on gw1 passes this
/// too, `--gateways strongswan --nat`, checked by hand).
#[test]
fn nat_mapping_survives_an_idle_minute() {
    if !require_root("nat_mapping_survives_an_idle_minute") {
        return;
    }
    let (lab, out) = Lab::up('k', &["--ike", "2", "--nat"]);
    pings_crossed(&out);
    let o = lab.exec(
        "nat",
        &[
            "sysctl",
            "-qw",
            "net.netfilter.nf_conntrack_udp_timeout=30",
            "net.netfilter.nf_conntrack_udp_timeout_stream=30",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Traffic once, so the mapping is in the stream state, then quiet.
    assert!(lab
        .exec("h1", &["ping", "-c", "1", "-W", "2", "192.168.12.12"])
        .status
        .success());
    std::thread::sleep(Duration::from_secs(50));
    // gw2 speaks first: only a mapping kept alive gets it to gw1.
    let o = lab.exec("h2", &["ping", "-c", "3", "-W", "2", "192.168.11.11"]);
    assert!(
        o.status.success(),
        "h2 -> h1 after 50 s idle: {}\ngw1 log:\n{}",
        text(&o),
        lab_log(&lab, "gw1.log")
    );
}

/// `encap = "udp"` on an IKEv2 connection forces UDP encapsulation without
/// any NAT (`lab up --ike 2 --encap udp` sets it on gw1 only): gw1 sends a
/// NAT_DETECTION_SOURCE_IP that matches no address (RFC 7296 §2.23), gw2
/// (ikeda, then strongSwan without `encap = yes`) believes gw1 is behind a
/// NAT, and ESP flows in UDP 4500 <-> 4500, never as IP protocol 50.
#[test]
fn forced_udp_encapsulation_without_nat() {
    if !require_root("forced_udp_encapsulation_without_nat") {
        return;
    }
    need_strongswan();
    for peer in ["ikeda", "strongswan"] {
        let (lab, out) = Lab::up('f', &["--ike", "2", "--encap", "udp", "--peer", peer]);
        pings_crossed(&out);
        let gw1 = lab_log(&lab, "gw1.log");
        assert!(
            gw1.contains("NAT detected (or forced by the peer): moving to UDP 4500")
                && gw1.contains("UDP-encapsulated to 192.168.50.12:4500"),
            "{peer}: {gw1}"
        );
        // Each ikeda says in IKE_AUTH that it takes full UDP_SEGMENT
        // trains (a Vendor ID); strongSwan ignores ours and sends none, so
        // it gets the short trains its one-datagram reads survive.
        const TRAINS: &str = "(the peer takes full UDP_SEGMENT trains)";
        assert_eq!(gw1.contains(TRAINS), peer == "ikeda", "{peer}: {gw1}");
        if peer == "ikeda" {
            let gw2 = lab_log(&lab, "gw2.log");
            assert!(gw2.contains("UDP-encapsulated to 192.168.50.11:4500"), "{gw2}");
            assert!(gw2.contains(TRAINS), "{gw2}");
        } else {
            let sas = swanctl(&lab, "gw2", &["--list-sas"]);
            assert!(sas.contains("TUNNEL-in-UDP"), "{sas}");
            let pretty = swanctl(&lab, "gw2", &["--list-sas", "--pretty"]);
            assert!(pretty.contains("nat-remote = yes"), "{pretty}");
        }
        assert_udp_encapsulated(&capture_while_pinging(&lab, "gw2"), |p| p == 4500);
        let prefix = lab.ns("");
        drop(lab);
        assert!(namespaces_with_prefix(&prefix).is_empty(), "lab down left {prefix}");
    }
}
