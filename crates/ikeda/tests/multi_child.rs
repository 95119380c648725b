//! Issue 11 point 4 against strongSwan 5.9 (IKEv2) in the lab, with ikeda
//! as initiator and as responder:
//! - one connection with three CHILD SAs (`--children 3`: `[[conn.child]]`
//!   on ikeda, three swanctl children): one IKE SA, three CHILD SA pairs,
//!   each net pair's traffic on its own CHILD SA; a rekey of one (by ikeda,
//!   then by strongSwan) leaves the others as they were and traffic flows;
//! - two connections between the same gateways with different selectors,
//!   identities and PSKs (`--conns 2`): both come up, each net pair's
//!   traffic on its own connection's CHILD SA; and the same with IKEv1
//!   (`--ike 1 --conns 2`, one PSK).
//!
//! And both between two ikeda gateways, the two connections initiated by
//! both sides at once (with IKEv2, and with IKEv1).

mod common;
use common::*;
use std::collections::HashMap;
use std::process::Command;

/// `ikeda ARGS --json` against gw1's control socket.
fn gw1_json(lab: &Lab, args: &[&str]) -> serde_json::Value {
    let o = Command::new(IKEDA)
        .arg("--socket")
        .arg(lab.dir().join("gw1.sock"))
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// gw1's installed CHILD SAs: "conn" or "conn/child" -> (inbound SPI,
/// packets in, packets out).
fn children(lab: &Lab) -> HashMap<String, (String, u64, u64)> {
    let v = gw1_json(lab, &["show", "child"]);
    let mut out = HashMap::new();
    for c in v.as_array().unwrap() {
        if c["state"] != "INSTALLED" {
            continue;
        }
        let mut name = match c["child"].as_str() {
            Some(ch) => format!("{}/{ch}", c["conn"].as_str().unwrap()),
            None => c["conn"].as_str().unwrap().to_string(),
        };
        // IKEv1 negotiates each selector pair on its own: the lab's LAN
        // pair of IPv6 is a CHILD SA of the connection beside the IPv4 one.
        let local = c["local_ts"].as_array().unwrap();
        if local.iter().all(|t| t.as_str().is_some_and(|t| t.contains(':'))) {
            name.push('6');
        }
        let n = |d: &str| c[d]["packets"].as_u64().unwrap_or(0);
        let spi = c["inbound"]["spi"].as_str().unwrap_or_default().to_string();
        assert!(
            out.insert(name.clone(), (spi, n("inbound"), n("outbound"))).is_none(),
            "two installed CHILD SAs for {name}: {v}"
        );
    }
    out
}

/// Wait until gw1 has exactly these CHILD SAs installed.
fn wait_children(lab: &Lab, want: &[&str]) -> HashMap<String, (String, u64, u64)> {
    let mut sorted: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    wait_for(&format!("CHILD SAs {want:?} on gw1"), 30, || {
        let mut got: Vec<String> = children(lab).into_keys().collect();
        got.sort();
        got == sorted
    });
    children(lab)
}

/// Ping from h1's `src` to h2's `dst`: all three answered.
fn ping(lab: &Lab, src: &str, dst: &str) {
    let o = lab.exec("h1", &["ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", src, dst]);
    assert_eq!(ping_counts(&text(&o)), (3, 3), "ping {src} -> {dst}: {}", text(&o));
}

/// Ping each (CHILD SA, source, destination) in turn; each ping moves the
/// counters of its own CHILD SA only (3 requests out, 3 replies in).
fn traffic_on_own_child(lab: &Lab, pairs: &[(&str, &str, &str)]) {
    for (child, src, dst) in pairs {
        let before = children(lab);
        ping(lab, src, dst);
        let after = children(lab);
        for (name, (spi, pin, pout)) in &after {
            let (bspi, bin, bout) = before.get(name).cloned().unwrap_or_default();
            assert_eq!(*spi, bspi, "{name} changed SA while {child} carried traffic");
            let moved = (pin - bin, pout - bout);
            if name == child {
                assert!(moved.0 >= 3 && moved.1 >= 3, "{src} -> {dst}: {name} moved {moved:?}");
            } else {
                assert_eq!(moved, (0, 0), "{src} -> {dst} went through {name}");
            }
        }
    }
}

const THREE: [(&str, &str, &str); 3] = [
    ("s2s", "192.168.11.11", "192.168.12.12"),
    ("s2s/net1", "172.16.11.11", "172.16.21.12"),
    ("s2s/net2", "172.16.12.11", "172.16.22.12"),
];

#[test]
fn strongswan_one_connection_three_child_sas_both_roles() {
    if !require_root("strongswan_one_connection_three_child_sas_both_roles") {
        return;
    }
    need_strongswan();
    for initiator in ["gw1", "gw2"] {
        let (lab, out) = Lab::up(
            'c',
            &[
                "--ike",
                "2",
                "--peer",
                "strongswan",
                "--children",
                "3",
                "--initiator",
                initiator,
            ],
        );
        assert!(out.contains("3 received"), "{out}");
        let first = wait_children(&lab, &["s2s", "s2s/net1", "s2s/net2"]);
        // One IKE SA on both sides, three CHILD SA pairs in it.
        let ike = gw1_json(&lab, &["show", "ike"]);
        assert_eq!(ike.as_array().map(|a| a.len()), Some(1), "{ike}");
        let sas = swanctl(&lab, "gw2", &["--list-sas"]);
        assert_eq!(sas.matches("ESTABLISHED").count(), 1, "{sas}");
        for ch in ["net:", "net1:", "net2:"] {
            assert!(sas.contains(&format!("  {ch} #")), "{initiator}: no {ch}\n{sas}");
        }
        assert_eq!(sas.matches("INSTALLED").count(), 3, "{sas}");
        // The SPIs strongSwan sends to are ikeda's inbound ones, one each.
        for (spi, ..) in first.values() {
            assert!(sas.contains(&format!("out {spi}")), "{spi} not in\n{sas}");
        }
        let log = gw1_log(&lab);
        if initiator == "gw1" {
            assert!(
                log.contains("creating CHILD_SA 'net1'") && log.contains("creating CHILD_SA 'net2'"),
                "{log}"
            );
        }
        assert_eq!(log.matches("sending CREATE_CHILD_SA").count(), 2, "{log}");
        traffic_on_own_child(&lab, &THREE);

        // ikeda rekeys net1: only it gets a new SA.
        let o = ikeda(&[
            "--socket",
            &lab.dir().join("gw1.sock").to_string_lossy(),
            "rekey",
            "s2s",
            "--child",
            "net1",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        wait_for("net1 rekeyed by ikeda", 20, || {
            let c = children(&lab);
            c.len() == 3 && c.get("s2s/net1").is_some_and(|x| x.0 != first["s2s/net1"].0)
        });
        let second = children(&lab);
        for k in ["s2s", "s2s/net2"] {
            assert_eq!(second[k].0, first[k].0, "{k} was touched by the rekey of net1");
        }
        traffic_on_own_child(&lab, &THREE);

        // strongSwan rekeys net2: only it gets a new SA.
        let r = swanctl(&lab, "gw2", &["--rekey", "--child", "net2"]);
        assert!(r.contains("rekey completed successfully"), "{r}");
        wait_for("net2 rekeyed by strongSwan", 20, || {
            let c = children(&lab);
            c.len() == 3 && c.get("s2s/net2").is_some_and(|x| x.0 != second["s2s/net2"].0)
        });
        let third = children(&lab);
        for k in ["s2s", "s2s/net1"] {
            assert_eq!(third[k].0, second[k].0, "{k} was touched by the rekey of net2");
        }
        traffic_on_own_child(&lab, &THREE);
        let sas = swanctl(&lab, "gw2", &["--list-sas"]);
        assert_eq!(sas.matches("INSTALLED").count(), 3, "old SAs left behind:\n{sas}");
        drop(lab);
    }
}

#[test]
fn strongswan_two_connections_same_gateways_chosen_by_id_both_roles() {
    if !require_root("strongswan_two_connections_same_gateways_chosen_by_id_both_roles") {
        return;
    }
    two_connections_against_strongswan("2");
}

/// The same with IKEv1 (and the same PSK, which Main Mode needs): the first
/// message of a phase 1 carries no identity, so as responder ikeda takes
/// the first connection by address, and MM5's identity chooses the second.
#[test]
fn strongswan_two_ikev1_connections_same_gateways_chosen_by_id_both_roles() {
    if !require_root("strongswan_two_ikev1_connections_same_gateways_chosen_by_id_both_roles") {
        return;
    }
    two_connections_against_strongswan("1");
}

/// `--conns 2` against strongSwan with IKE version `ike`, ikeda initiating
/// and then responding: one IKE SA per connection with that connection's
/// identities on both sides, and each net pair's traffic on its own
/// connection's CHILD SA.
fn two_connections_against_strongswan(ike: &str) {
    need_strongswan();
    let v1 = ike == "1";
    for initiator in ["gw1", "gw2"] {
        let (lab, out) = Lab::up(
            if v1 { 'o' } else { 'n' },
            &[
                "--ike",
                ike,
                "--peer",
                "strongswan",
                "--conns",
                "2",
                "--initiator",
                initiator,
            ],
        );
        assert!(out.contains("3 received"), "{out}");
        let mut pairs = vec![
            ("s2s", "192.168.11.11", "192.168.12.12"),
            ("s2s2", "172.16.11.11", "172.16.21.12"),
        ];
        if v1 {
            pairs.push(("s2s6", "2001:db8:11::11", "2001:db8:12::12"));
        }
        wait_children(&lab, &pairs.iter().map(|p| p.0).collect::<Vec<_>>());
        // Two IKE SAs, one per connection, each with its own identities.
        let ike_sas = gw1_json(&lab, &["show", "ike"]);
        let mut conns: Vec<&str> = ike_sas
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["conn"].as_str())
            .collect();
        conns.sort();
        assert_eq!(conns, ["s2s", "s2s2"], "{ike_sas}");
        let sas = swanctl(&lab, "gw2", &["--list-sas"]);
        assert_eq!(sas.matches("ESTABLISHED").count(), 2, "{sas}");
        for id in ["gw1.s2s.example", "gw1.s2s2.example"] {
            assert!(
                sas.contains(id),
                "{initiator}: strongSwan has no IKE SA with {id}\n{sas}"
            );
        }
        if initiator == "gw2" {
            // As responder, IKE_SA_INIT (or Main Mode's first message)
            // could only go by address: the identity chose the connection.
            let log = gw1_log(&lab);
            assert!(
                log.lines()
                    .any(|l| l.contains("s2s2") && l.contains("IKE_SA established") && l.contains("(responder)")),
                "{log}"
            );
            if v1 {
                assert!(
                    log.contains(
                        "s2s2: peer's identity gw2.s2s2.example chooses connection 's2s2' (the first message, which \
                         carries no identity, went by address to 's2s')"
                    ),
                    "{log}"
                );
            }
        }
        traffic_on_own_child(&lab, &pairs);
        drop(lab);
    }
}

/// The same between two ikeda gateways: three CHILD SAs from gw1, and two
/// connections that both gateways initiate at once (one IKE SA per
/// connection survives; each connection's traffic on its own CHILD SA).
#[test]
fn ikeda_to_ikeda_three_child_sas_and_two_connections() {
    if !require_root("ikeda_to_ikeda_three_child_sas_and_two_connections") {
        return;
    }
    let (lab, out) = Lab::up('d', &["--ike", "2", "--children", "3"]);
    assert!(out.contains("3 received"), "{out}");
    wait_children(&lab, &["s2s", "s2s/net1", "s2s/net2"]);
    traffic_on_own_child(&lab, &THREE);
    drop(lab);
    // Two connections, both gateways initiating both at once, with each
    // IKE version (IKEv1: the same PSK; its LAN pair of IPv6 is a CHILD SA
    // of its own).
    for ike in ["2", "1"] {
        let (lab, out) = Lab::up('e', &["--ike", ike, "--conns", "2", "--initiator", "both"]);
        assert!(out.contains("3 received"), "{out}");
        wait_for(&format!("IKEv{ike}: one IKE SA per connection on gw1"), 30, || {
            let sas = gw1_json(&lab, &["show", "ike"]);
            let mut conns: Vec<String> = sas
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["state"] == "ESTABLISHED")
                .filter_map(|s| s["conn"].as_str().map(str::to_string))
                .collect();
            conns.sort();
            conns == ["s2s", "s2s2"] && sas.as_array().unwrap().len() == 2
        });
        let mut pairs = vec![
            ("s2s", "192.168.11.11", "192.168.12.12"),
            ("s2s2", "172.16.11.11", "172.16.21.12"),
        ];
        if ike == "1" {
            pairs.push(("s2s6", "2001:db8:11::11", "2001:db8:12::12"));
        }
        wait_children(&lab, &pairs.iter().map(|p| p.0).collect::<Vec<_>>());
        traffic_on_own_child(&lab, &pairs);
        drop(lab);
    }
}
