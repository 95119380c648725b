//! Issue 13 point 4: both sides initiate the same connection at once, as
//! the two cloud routers of the founding case do (behind security groups
//! that admit only ESP: the first IKE_SA_INIT of one side is dropped, the
//! other side's passes as a reply, and the first side's retransmission
//! then passes too, so two IKE SAs come up a few seconds apart). Exactly
//! one IKE SA and one CHILD SA pair must survive on both sides, the other
//! deleted with a DELETE; checked with `show ike` and `swanctl --list-sas`
//! on both sides, ten runs between two ikeda gateways and ten against
//! strongSwan (which keeps both IKE SAs when left alone: ikeda deletes the
//! duplicate charon created after a grace of 5 s).
//!
//!
//! IKEv1 too (`--ike 1`): there the one that comes up first carries
//! INITIAL_CONTACT (its sender knew no SA with us), so the other side drops
//! its own phase 1, still half-open, and no duplicate arises between two
//! ikeda gateways; strongSwan's does arise and is settled. The lab has two
//! selector pairs (IPv4, IPv6): one IPsec SA pair each.
//!
//! Needs root and strongSwan; fails without them (unless
//! IKEDA_ALLOW_NO_ROOT=1 and not root, then it says it skipped).

mod common;
use common::*;
use std::time::{Duration, Instant};

/// One side's IKE SAs and CHILD SAs: (SPIi, SPIr) of each IKE SA in any
/// state, and the inbound SPI of each CHILD SA.
#[derive(Debug, Default, PartialEq)]
struct Sas {
    ike: Vec<(String, String)>,
    /// Established ones among `ike`.
    established: usize,
    child_in: Vec<String>,
    child_out: Vec<String>,
}

fn ikeda_sas(lab: &Lab, gw: &str) -> Sas {
    let sock = lab.dir().join(format!("{gw}.sock"));
    let show = |what: &str| -> serde_json::Value {
        let o = ikeda(&["--socket", sock.to_str().unwrap(), "show", what, "--json"]);
        assert!(o.status.success(), "show {what}: {}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
    };
    let mut s = Sas::default();
    for i in show("ike").as_array().unwrap() {
        s.ike
            .push((i["spi_i"].as_str().unwrap().into(), i["spi_r"].as_str().unwrap().into()));
        s.established += usize::from(i["state"] == "ESTABLISHED");
    }
    for c in show("child").as_array().unwrap() {
        if let (Some(i), Some(o)) = (c["inbound"]["spi"].as_str(), c["outbound"]["spi"].as_str()) {
            s.child_in.push(i.into());
            s.child_out.push(o.into());
        }
    }
    s
}

/// What `swanctl --list-sas` lists: every IKE SA line
/// ("s2s: #1, ESTABLISHED, IKEv2, 72771cfff3023d7e_i 84a424dc54e0cefd_r*")
/// and every CHILD SA's "in"/"out" SPI line.
fn charon_sas(lab: &Lab, gw: &str) -> (Sas, String) {
    let t = swanctl(lab, gw, &["--list-sas"]);
    let mut s = Sas::default();
    for l in t.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if (l.contains(", IKEv2, ") || l.contains(", IKEv1, ")) && w.len() >= 6 {
            let spi = |x: &str| {
                x.trim_end_matches('*')
                    .trim_end_matches("_i")
                    .trim_end_matches("_r")
                    .to_string()
            };
            s.ike.push((spi(w[4]), spi(w[5])));
            s.established += usize::from(l.contains("ESTABLISHED"));
        }
        if w.first() == Some(&"in") && w.get(3) == Some(&"bytes,") {
            s.child_in.push(w[1].trim_end_matches(',').into());
        }
        if w.first() == Some(&"out") && w.get(3) == Some(&"bytes,") {
            s.child_out.push(w[1].trim_end_matches(',').into());
        }
    }
    (s, t)
}

fn sas(lab: &Lab, gw: &str, charon: bool) -> (Sas, String) {
    if charon {
        charon_sas(lab, gw)
    } else {
        let s = ikeda_sas(lab, gw);
        let t = format!("{s:?}");
        (s, t)
    }
}

/// Both sides hold exactly one IKE SA, the same one, and `pairs` CHILD
/// SA pairs, each side's outbound SAs the other's inbound.
fn one_of_each(a: &Sas, b: &Sas, pairs: usize) -> bool {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    a.ike.len() == 1
        && a.established == 1
        && b.ike.len() == 1
        && b.established == 1
        && a.ike == b.ike
        && a.child_in.len() == pairs
        && b.child_in.len() == pairs
        && sorted(&a.child_out) == sorted(&b.child_in)
        && sorted(&b.child_out) == sorted(&a.child_in)
}

/// Ten runs of the founding case with IKE `version` and `args` (gw2 is
/// charon with `--peer strongswan`); returns in how many of them a
/// duplicate came up and was settled (IKEv1: or was avoided, a half-open
/// phase 1 dropped on INITIAL_CONTACT).
fn ten_runs(test: &str, version: &str, args: &[&str], charon_gw2: bool) -> usize {
    let v1 = version == "1";
    // IKEv1 negotiates one IPsec SA pair per selector pair.
    let pairs = if v1 { 2 } else { 1 };
    let mut settled = 0;
    for run in 0..10 {
        let mut a = vec!["--ike", version, "--firewall", "esp-only", "--initiator", "both"];
        a.extend_from_slice(args);
        let (lab, up) = Lab::up('b', &a);
        assert!(
            up.contains("3 packets transmitted, 3 received"),
            "{test} run {run}: {up}"
        );
        // Settled within the grace (5 s) and a round trip or two.
        let t0 = Instant::now();
        let (mut s1, mut s2);
        loop {
            s1 = sas(&lab, "gw1", false);
            s2 = sas(&lab, "gw2", charon_gw2);
            if one_of_each(&s1.0, &s2.0, pairs) || t0.elapsed() > Duration::from_secs(15) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let took = t0.elapsed().as_secs_f64();
        assert!(
            one_of_each(&s1.0, &s2.0, pairs),
            "{test} run {run}: not one IKE SA and one CHILD SA pair on both sides after 15 s:\ngw1 {}\ngw2 {}\n{}",
            s1.1,
            s2.1,
            gw1_log(&lab)
        );
        // And it stays so (nothing deleted late, nothing stale left).
        std::thread::sleep(Duration::from_secs(2));
        let (l1, l2) = (sas(&lab, "gw1", false), sas(&lab, "gw2", charon_gw2));
        assert!(
            l1.0 == s1.0 && l2.0 == s2.0,
            "{test} run {run}: changed after settling:\n{}\n{}",
            l1.1,
            l2.1
        );
        let o = lab.exec("h1", &["ping", "-c", "3", "-i", "0.2", "192.168.12.12"]);
        assert_eq!(ping_counts(&text(&o)), (3, 3), "{test} run {run}: {}", text(&o));
        let log = gw1_log(&lab) + &lab_log(&lab, "gw2.log");
        let dup = if v1 {
            log.contains("both sides initiated: two phase-1 SAs")
                || log.contains("INITIAL_CONTACT: dropping our half-open phase-1 SA")
        } else {
            log.contains("both sides initiated: keeping IKE_SA")
        };
        settled += usize::from(dup);
        if dup && log.contains("both sides initiated: two phase-1 SAs") {
            assert!(
                log.contains("duplicate deleted by us")
                    || log.contains("deleted by the peer")
                    || log.contains("(INITIAL_CONTACT from the peer)"),
                "{test} run {run}: the phase-1 duplicate was not deleted:\n{log}"
            );
        } else if dup && !v1 {
            // Deleted with a DELETE, by whichever side (ours or charon's
            // duplicate: we delete both kinds ourselves against charon).
            assert!(
                log.contains("duplicate deleted by us") || log.contains("duplicate deleted by the peer"),
                "{test} run {run}: the duplicate was not deleted with a DELETE:\n{log}"
            );
        }
        println!(
            "{test} run {run}: one IKE SA {:?} after {took:.1} s; duplicate settled: {dup}",
            s1.0.ike[0]
        );
        lab.down();
    }
    settled
}

/// One test: ten runs with IKE `version` and `args`; the race (a duplicate
/// settled, or for IKEv1 avoided) must have arisen in 8 or more of them,
/// else the test would prove nothing.
fn race(test: &str, version: &str, args: &[&str], charon_gw2: bool) {
    if !require_root(test) {
        return;
    }
    need_strongswan();
    let n = ten_runs(test, version, args, charon_gw2);
    assert!(n >= 8, "{test}: the race arose in only {n} of 10 runs");
    println!("{test}: the race arose in {n} of 10 runs, never a stale SA");
}

#[test]
fn both_initiating_leaves_one_ike_sa_and_one_child_pair_between_two_ikeda_gateways() {
    // The dropped first IKE_SA_INIT's retransmission makes a second IKE SA.
    race(
        "both_initiating_leaves_one_ike_sa_and_one_child_pair_between_two_ikeda_gateways",
        "2",
        &[],
        false,
    );
}

#[test]
fn both_initiating_leaves_one_ike_sa_and_one_child_pair_against_strongswan() {
    race(
        "both_initiating_leaves_one_ike_sa_and_one_child_pair_against_strongswan",
        "2",
        &["--peer", "strongswan"],
        true,
    );
}

#[test]
fn ikev1_both_initiating_leaves_one_phase_1_sa_and_one_ipsec_sa_per_pair_between_two_ikeda_gateways() {
    race(
        "ikev1_both_initiating_leaves_one_phase_1_sa_and_one_ipsec_sa_per_pair_between_two_ikeda_gateways",
        "1",
        &[],
        false,
    );
}

#[test]
fn ikev1_both_initiating_leaves_one_phase_1_sa_and_one_ipsec_sa_per_pair_against_strongswan() {
    race(
        "ikev1_both_initiating_leaves_one_phase_1_sa_and_one_ipsec_sa_per_pair_against_strongswan",
        "1",
        &["--peer", "strongswan"],
        true,
    );
}
