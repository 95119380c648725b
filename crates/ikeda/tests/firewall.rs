//! Issue 13 point 1: `lab up --firewall` reproduces the founding case of
//! the cloud security groups, one command per case, and `lab status` shows
//! why each packet passed or not.
//!
//! Each gateway's WAN gets a stateful filter (nftables with conntrack:
//! inbound what the profile's rules admit, else only replies to the
//! gateway's own outbound flows; outbound open). Checked, with strongSwan on
//! both sides (the reference for what "works by accident" means), with two
//! ikeda gateways, and with one of each:
//! - ESP only, both sides start: up, by accident: the IKE that passed did
//!   so only as a reply (no rule admits it), and the first IKE_SA_INIT of
//!   one side was dropped;
//! - ESP only, one side starts, the other only responds: never up; the
//!   responder's filter drops every retransmission;
//! - ESP only, both start, gw2 4 s late: up when the unreplied UDP timeout
//!   (scaled down) covers the gap between the two sides' sends (6 s), never
//!   when it does not (1 s: the two schedules stay about 4 s apart);
//! - ESP only, both start, then idle past the stream timeout and a rekey
//!   from gw1: dropped, gw1 gives up, gw2 keeps its SAs (half-dead);
//! - ikeda's `status` of an unanswered connection names a stateful
//!   firewall when the traffic fits (never heard from the peer; heard only
//!   right after sending to it);
//! - all of IPsec admitted: up with one initiator, every IKE packet
//!   admitted by a rule, none only as a reply.
//!
//! `ikeda lab audit` (the audit of the same rulesets and configs; a
//! charon's setup as the lab writes it for the audit) predicts what the
//! lab shows.
//!
//! Needs root and strongSwan; fails without them (unless
//! IKEDA_ALLOW_NO_ROOT=1 and not root, then it says it skipped).

mod common;
use common::*;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// (by rule, as reply only, dropped) per flow label, from `lab status`.
type Counts = HashMap<String, (u64, u64, u64)>;

fn status(lab: &Lab) -> String {
    let o = ikeda(&["lab", "status", "--name", &lab.name]);
    assert!(o.status.success(), "lab status: {}", text(&o));
    text(&o)
}

/// One gateway's security group counters as `lab status` prints them.
fn counters(status: &str, gw: &str) -> Counts {
    let head = format!("{gw} security group (");
    let block = status
        .split("\n\n")
        .find(|b| b.trim_start().starts_with(&head))
        .unwrap_or_else(|| panic!("no {head} in lab status:\n{status}"));
    let mut out = HashMap::new();
    for l in block.lines().skip(2) {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() < 4 {
            continue;
        }
        let n: Vec<u64> = w[w.len() - 3..].iter().filter_map(|x| x.parse().ok()).collect();
        if n.len() == 3 {
            out.insert(w[..w.len() - 3].join(" "), (n[0], n[1], n[2]));
        }
    }
    assert_eq!(out.len(), 4, "{gw}: {block}");
    out
}

/// `ikeda lab audit --json`: the exit code and the findings (case, text).
fn lab_audit(lab: &Lab) -> (i32, Vec<(String, String)>) {
    let o = ikeda(&["lab", "audit", "--name", &lab.name, "--json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("lab audit --json: {e}: {}", text(&o)));
    let code = o.status.code().unwrap_or(-1);
    assert_eq!(v["exit"].as_i64(), Some(i64::from(code)), "{v}");
    let findings = v["conns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap().iter())
        .map(|f| (f["case"].as_str().unwrap().to_string(), f["text"].as_str().unwrap().to_string()))
        .collect();
    (code, findings)
}

/// The audit of the lab predicts `case` (and says it depends on an
/// accident or fails: exit 1).
fn audit_predicts(test: &str, lab: &Lab, case: &str, words: &str) {
    let (code, f) = lab_audit(lab);
    assert!(
        code == 1 && f.iter().any(|(c, t)| c == case && t.contains(words)),
        "{test}: lab audit does not predict {case} ({words}): exit {code}, {f:?}"
    );
}

const IKE: &str = "IKE (UDP 500)";
const NATT: &str = "NAT-T (UDP 4500)";

/// Whether both gateways hold an installed CHILD SA (charon: swanctl's
/// INSTALLED; ikeda: its status line says up).
fn both_up(status: &str) -> bool {
    ["gw1", "gw2"].iter().all(|gw| {
        status.split("\n\n").any(|b| {
            let b = b.trim_start();
            (b.starts_with(&format!("{gw} (strongSwan")) && b.contains("INSTALLED"))
                || (b.starts_with(&format!("{gw} (ikeda")) && b.lines().any(|l| l.starts_with("s2s") && l.contains(" up ")))
        })
    })
}

/// Poll `lab status` until both sides are up, or `secs` have passed;
/// the seconds it took, or None.
fn up_within(lab: &Lab, secs: u64) -> (Option<f64>, String) {
    let t0 = Instant::now();
    loop {
        let s = status(lab);
        if both_up(&s) {
            return (Some(t0.elapsed().as_secs_f64()), s);
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            return (None, s);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Both start behind ESP-only groups: up, and only by accident.
fn esp_only_both_start(test: &str, args: &[&str]) {
    if !require_root(test) {
        return;
    }
    need_strongswan();
    let mut a = vec!["--firewall", "esp-only", "--initiator", "both", "--no-wait"];
    a.extend_from_slice(args);
    let (lab, _) = Lab::up('f', &a);
    let (took, s) = up_within(&lab, 20);
    let took = took.unwrap_or_else(|| panic!("{test}: not up after 20 s:\n{s}"));
    // `lab status` reads the counters before the SAs: read them again now
    // that both sides are up, so they hold every packet that made it.
    let s = status(&lab);
    let (c1, c2) = (counters(&s, "gw1"), counters(&s, "gw2"));
    for c in [&c1, &c2] {
        // No rule admits IKE: what passed, passed as a reply.
        assert_eq!((c[IKE].0, c[NATT].0), (0, 0), "{test}:\n{s}");
    }
    let replies = c1[IKE].1 + c2[IKE].1 + c1[NATT].1 + c2[NATT].1;
    assert!(replies >= 4, "{test}: IKE admitted as replies:\n{s}");
    assert!(
        s.contains("no rule admits IKE (UDP 500)") && s.contains("passed only as a reply"),
        "{test}: lab status does not say it:\n{s}"
    );
    // The first IKE_SA_INIT of (at least) one side met no flow yet.
    assert!(c1[IKE].2 + c2[IKE].2 >= 1, "{test}: nothing dropped:\n{s}");
    // The audit of the same firewalls and configs (charon's written as
    // ikeda's for it where a gateway runs strongSwan) says so.
    audit_predicts(test, &lab, "both-must-initiate", "comes up only when both sides initiate within 30 s");
    println!("{test}: up after {took:.1} s by accident; gw1 {c1:?}, gw2 {c2:?}");
    lab.down();
}

#[test]
fn esp_only_both_start_comes_up_by_accident_strongswan() {
    esp_only_both_start("esp_only_both_start_comes_up_by_accident_strongswan", &["--gateways", "strongswan"]);
}

#[test]
fn esp_only_both_start_comes_up_by_accident_ikeda() {
    esp_only_both_start("esp_only_both_start_comes_up_by_accident_ikeda", &["--ike", "2"]);
}

#[test]
fn esp_only_both_start_comes_up_by_accident_ikeda_and_strongswan() {
    esp_only_both_start(
        "esp_only_both_start_comes_up_by_accident_ikeda_and_strongswan",
        &["--ike", "2", "--peer", "strongswan"],
    );
}

/// One side starts, the other only responds: the responder's group drops
/// every IKE_SA_INIT (0, 4, 11.2 s: three in 13 s), nothing comes back.
#[test]
fn esp_only_one_side_starts_never_comes_up() {
    let test = "esp_only_one_side_starts_never_comes_up";
    if !require_root(test) {
        return;
    }
    need_strongswan();
    for args in [&["--gateways", "strongswan"][..], &["--ike", "2"][..]] {
        let mut a = vec!["--firewall", "esp-only", "--no-wait"];
        a.extend_from_slice(args);
        let (lab, _) = Lab::up('f', &a);
        let (took, s) = up_within(&lab, 13);
        assert!(took.is_none(), "{test} {args:?}: up after {took:?} s:\n{s}");
        let (c1, c2) = (counters(&s, "gw1"), counters(&s, "gw2"));
        assert!(c2[IKE].2 >= 3 && c2[IKE].1 == 0, "{test} {args:?}: gw2 {c2:?}:\n{s}");
        assert_eq!(c1[IKE], (0, 0, 0), "{test} {args:?}: gw1 heard something:\n{s}");
        audit_predicts(test, &lab, "never-up", "only responds (start_action none)");
        if args[0] == "--ike" {
            // ikeda's status names the firewall as a possible cause.
            assert!(
                s.contains("never heard from 192.168.50.12") && s.contains("ikeda audit --config"),
                "{test}: gw1 status:\n{s}"
            );
        }
        println!("{test} {args:?}: not up after 13 s; gw2 dropped {} IKE_SA_INIT", c2[IKE].2);
        lab.down();
    }
}

/// Both start (strongSwan on both sides), gw2 4 s late; each sends its
/// IKE_SA_INIT at 0, 8, 22.4 s from its start (`--retransmit-timeout 8s`).
/// With an unreplied timeout of 6 s, gw2's first message finds gw1's flow
/// alive; with 1 s, no send of one side falls within 1 s after one of the
/// other's (they stay about 4 s apart), so it never comes up. The wide
/// spacing leaves seconds of margin for how long charon takes to start.
#[test]
fn late_start_comes_up_only_inside_the_unreplied_timeout() {
    let test = "late_start_comes_up_only_inside_the_unreplied_timeout";
    if !require_root(test) {
        return;
    }
    need_strongswan();
    for (gws, timeout, comes_up) in [
        (&["--gateways", "strongswan"][..], "6", true),
        (&["--gateways", "strongswan"][..], "1", false),
        (&["--ike", "2"][..], "6", true),
        (&["--ike", "2"][..], "1", false),
    ] {
        let mut a = gws.to_vec();
        a.extend_from_slice(&[
                "--firewall",
                "esp-only",
                "--ct-udp-timeout",
                timeout,
                "--retransmit-timeout",
                "8s",
                "--initiator",
                "both",
                "--start-delay",
                "gw2=4",
        ]);
        let (lab, _) = Lab::up_alone('f', &a);
        let (took, s) = up_within(&lab, 18);
        let (c1, c2) = (counters(&s, "gw1"), counters(&s, "gw2"));
        assert_eq!(took.is_some(), comes_up, "{test}: timeout {timeout} s: up after {took:?}:\n{s}");
        if !comes_up {
            // Both sides' IKE_SA_INITs dropped (two each by 18 s), none
            // admitted.
            assert!(c1[IKE].2 >= 2 && c2[IKE].2 >= 2, "{test}:\n{s}");
            assert_eq!(c1[IKE].1 + c2[IKE].1, 0, "{test}:\n{s}");
        }
        // The audit's prediction, from the same firewalls, configs and
        // timeout: up only when both initiate within it.
        audit_predicts(test, &lab, "both-must-initiate", &format!("within {timeout} s of each other"));
        println!("{test} {gws:?}: unreplied timeout {timeout} s, gw2 4 s late: up after {took:?} s; gw1 {c1:?}, gw2 {c2:?}");
        lab.down();
    }
}

/// All of IPsec admitted: up with one initiator; every IKE packet passed
/// by a rule, none only as a reply, nothing dropped; the audit finds no
/// accident (exit 0).
#[test]
fn all_admitted_by_rule_nothing_by_accident() {
    let test = "all_admitted_by_rule_nothing_by_accident";
    if !require_root(test) {
        return;
    }
    need_strongswan();
    for gws in [&["--gateways", "strongswan"][..], &["--ike", "2"][..]] {
        let mut a = gws.to_vec();
        a.extend_from_slice(&["--firewall", "all"]);
        let (lab, _) = Lab::up('f', &a);
        let s = status(&lab);
        assert!(both_up(&s), "{test} {gws:?}:\n{s}");
        for gw in ["gw1", "gw2"] {
            let c = counters(&s, gw);
            assert!(c[IKE].0 + c[NATT].0 >= 2, "{test} {gws:?}: {gw} {c:?}");
            assert_eq!((c[IKE].1, c[NATT].1, c[IKE].2, c[NATT].2), (0, 0, 0, 0), "{test} {gws:?}: {gw} {c:?}");
        }
        assert!(!s.contains("passed only as a reply"), "{test} {gws:?}:\n{s}");
        // Nothing depends on an accident, says the audit too.
        let (code, f) = lab_audit(&lab);
        assert_eq!(code, 0, "{test} {gws:?}: {f:?}");
        lab.down();
    }
}

/// The profile names and the per-gateway form are checked before anything
/// is built.
#[test]
fn unknown_profiles_and_delays_are_refused() {
    let o = ikeda(&["lab", "up", "--name", "fwbad", "--firewall", "esp"]);
    assert!(!o.status.success() && text(&o).contains("unknown profile 'esp'"), "{}", text(&o));
    let o = ikeda(&["lab", "up", "--name", "fwbad", "--ike", "2", "--start-delay", "gw3=2"]);
    assert!(!o.status.success() && text(&o).contains("no gateway 'gw3'"), "{}", text(&o));
    let o = ikeda(&["lab", "up", "--name", "fwbad", "--initiator", "both"]);
    assert!(!o.status.success() && text(&o).contains("need --ike or --gateways strongswan"), "{}", text(&o));
}

/// The cloud topology of the founding case (`--cloud`): both gateways on
/// private addresses behind 1:1 NATs, reached at their public ones. IKE
/// floats to 4500 from both ends; the identities may be the private
/// addresses, the public ones, or names. With all of IPsec admitted the
/// tunnel comes up for each kind of identity, with ikeda, strongSwan and
/// one of each, and the NAT-T flow passes by rule.
#[test]
fn cloud_topology_comes_up_with_each_kind_of_identity() {
    let test = "cloud_topology_comes_up_with_each_kind_of_identity";
    if !require_root(test) {
        return;
    }
    need_strongswan();
    for (id, gws) in [
        ("public", &["--ike", "2"][..]),
        ("fqdn", &["--ike", "2", "--peer", "strongswan"][..]),
        ("private", &["--gateways", "strongswan"][..]),
        ("public", &["--ike", "1", "--peer", "strongswan"][..]),
    ] {
        let mut a = vec!["--cloud", "--cloud-id", id, "--firewall", "all"];
        a.extend_from_slice(gws);
        let (lab, up) = Lab::up('c', &a);
        assert!(up.contains("3 packets transmitted, 3 received"), "{test} {a:?}: {up}");
        let s = status(&lab);
        assert!(both_up(&s), "{test} {a:?}:\n{s}");
        for gw in ["gw1", "gw2"] {
            let c = counters(&s, gw);
            assert!(c[NATT].0 >= 1, "{test} {a:?}: {gw} saw no NAT-T: {c:?}\n{s}");
            assert_eq!(c[IKE].2 + c[NATT].2, 0, "{test} {a:?}: {gw} {c:?}");
        }
        // The ikeda gateway knows both sides are behind a NAT, and runs
        // IKE on 4500.
        let log = gw1_log(&lab);
        if gws[0] == "--ike" {
            let sock = lab.dir().join("gw1.sock");
            let o = ikeda(&["--socket", sock.to_str().unwrap(), "show", "ike", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
            assert!(v[0]["local"].as_str().unwrap_or("").ends_with(":4500"), "{test} {a:?}: {v}\n{log}");
            assert_eq!(v[0]["behind_nat"], true, "{test} {a:?}: {v}");
        }
        println!("{test}: --cloud-id {id} {gws:?}: up");
        lab.down();
    }
}

/// IKE on 500 admitted, NAT-T on 4500 not: in the cloud topology IKE
/// floats to 4500 after IKE_SA_INIT, and IKE_AUTH never passes (the
/// issue's "fails at IKE_AUTH after the float"), for ikeda and strongSwan.
#[test]
fn ike500_only_in_the_cloud_fails_at_ike_auth_after_the_float() {
    let test = "ike500_only_in_the_cloud_fails_at_ike_auth_after_the_float";
    if !require_root(test) {
        return;
    }
    need_strongswan();
    for gws in [&["--ike", "2"][..], &["--gateways", "strongswan"][..]] {
        let mut a = vec!["--cloud", "--firewall", "ike500-only", "--no-wait"];
        a.extend_from_slice(gws);
        let (lab, _) = Lab::up('c', &a);
        let (took, s) = up_within(&lab, 12);
        assert!(took.is_none(), "{test} {gws:?}: up after {took:?}:\n{s}");
        let (c1, c2) = (counters(&s, "gw1"), counters(&s, "gw2"));
        // IKE_SA_INIT both ways by rule; IKE_AUTH (0, 4, 11.2 s) dropped.
        assert!(c2[IKE].0 >= 1 && c1[IKE].0 >= 1, "{test} {gws:?}:\n{s}");
        assert!(c2[NATT].2 >= 3 && c2[NATT].0 + c2[NATT].1 == 0, "{test} {gws:?}:\n{s}");
        if gws[0] == "--ike" {
            assert!(s.contains("IKE_AUTH, try") && s.contains(":4500"), "{test}: gw1 status:\n{s}");
            // gw2 answered IKE_SA_INIT, right after gw1 sent it, and never
            // spoke unasked: the stateful-firewall pattern.
            assert!(s.contains("192.168.50.12 was only ever heard right after we sent to it"), "{test}:\n{s}");
        }
        audit_predicts(test, &lab, "never-up", "fails at IKE_AUTH");
        println!("{test} {gws:?}: not up; gw2 dropped {} IKE_AUTH on 4500", c2[NATT].2);
        lab.down();
    }
}

/// Idle longer than the stream timeout, then a rekey from one side: the
/// other side's group has forgotten the flow and drops the request; the
/// rekeying side gives up and deletes its SAs, the other keeps them: a
/// half-dead tunnel (strongSwan on both sides, timeouts scaled down: 4 s
/// stream, retransmissions 1 s apart, 2 tries). The audit predicts it.
#[test]
fn idle_then_one_sided_rekey_leaves_a_half_dead_tunnel() {
    let test = "idle_then_one_sided_rekey_leaves_a_half_dead_tunnel";
    if !require_root(test) {
        return;
    }
    need_strongswan();
    let (lab, _) = Lab::up_alone(
        'f',
        &[
            "--gateways",
            "strongswan",
            "--firewall",
            "esp-only",
            "--initiator",
            "both",
            "--ct-udp-timeout",
            "2",
            "--ct-udp-stream-timeout",
            "4",
            "--retransmit-timeout",
            "1s",
            "--retransmit-tries",
            "2",
        ],
    );
    audit_predicts(test, &lab, "idle-half-dead", "after more than 4 s without IKE packets");
    // Idle past the stream timeout (no traffic, no DPD in this setup).
    std::thread::sleep(Duration::from_secs(7));
    let before = status(&lab);
    let dropped_before = counters(&before, "gw2")[NATT].2 + counters(&before, "gw2")[IKE].2;
    let o = swanctl(&lab, "gw1", &["--rekey", "--child", "net"]);
    assert!(o.contains("completed successfully"), "{test}: {o}");
    // gw1 sends at 0, 1 and 2.8 s and gives up at 6 s: then it has deleted
    // its SAs, and gw2, which never heard a thing, keeps them.
    wait_for(&format!("{test}: gw1 to give up"), 20, || {
        !swanctl(&lab, "gw1", &["--list-sas"]).contains("ESTABLISHED")
    });
    let s = status(&lab);
    let gw2 = swanctl(&lab, "gw2", &["--list-sas"]);
    assert!(gw2.contains("ESTABLISHED") && gw2.contains("INSTALLED"), "{test}: gw2 dropped its SAs:\n{gw2}");
    let dropped = counters(&s, "gw2")[NATT].2 + counters(&s, "gw2")[IKE].2;
    assert!(dropped >= dropped_before + 2, "{test}: gw2's group dropped {dropped_before} then {dropped}:\n{s}");
    println!("{test}: gw1 gave up after its rekey was dropped {} times; gw2 keeps its SAs", dropped - dropped_before);
    lab.down();
}

// ---- issue 13 point 3: ikeda does not depend on the accident ---------------

/// `ikeda --socket <lab>/<gw>.sock ARGS` against a lab gateway's daemon.
fn ctl(lab: &Lab, gw: &str, args: &[&str]) -> std::process::Output {
    let sock = lab.dir().join(format!("{gw}.sock"));
    let mut a = vec!["--socket", sock.to_str().unwrap()];
    a.extend_from_slice(args);
    ikeda(&a)
}

fn show_json(lab: &Lab, gw: &str, what: &str) -> Vec<serde_json::Value> {
    let o = ctl(lab, gw, &["show", what, "--json"]);
    assert!(o.status.success(), "{gw} show {what}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{gw} show {what} --json: {e}: {}", text(&o)))
}

/// A gateway's SAs as `show ike` / `show child` say: the IKE SAs (SPIi,
/// SPIr, state) and the CHILD SAs (inbound SPI, outbound SPI, state).
type Sas = (Vec<(String, String, String)>, Vec<(String, String, String)>);

fn sas(lab: &Lab, gw: &str) -> Sas {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let ike = show_json(lab, gw, "ike")
        .iter()
        .map(|x| (s(&x["spi_i"]), s(&x["spi_r"]), s(&x["state"])))
        .collect();
    let child = show_json(lab, gw, "child")
        .iter()
        .map(|x| (s(&x["inbound"]["spi"]), s(&x["outbound"]["spi"]), s(&x["state"])))
        .collect();
    (ike, child)
}

/// Neither side holds an SA the other does not: the same IKE SAs, and each
/// CHILD SA's inbound SPI is the other side's outbound one. The words why
/// not, if not.
fn mirrored(a: &Sas, b: &Sas) -> Result<(), String> {
    let ike = |s: &Sas| {
        let mut v: Vec<(String, String)> = s.0.iter().map(|x| (x.0.clone(), x.1.clone())).collect();
        v.sort();
        v
    };
    if ike(a) != ike(b) {
        return Err(format!("IKE SAs differ: gw1 {:?}, gw2 {:?}", a.0, b.0));
    }
    let mut ca: Vec<(String, String)> = a.1.iter().map(|x| (x.0.clone(), x.1.clone())).collect();
    let mut cb: Vec<(String, String)> = b.1.iter().map(|x| (x.1.clone(), x.0.clone())).collect();
    ca.sort();
    cb.sort();
    if ca != cb {
        return Err(format!("CHILD SAs differ: gw1 {:?}, gw2 {:?}", a.1, b.1));
    }
    Ok(())
}

fn ping_passes(lab: &Lab) -> bool {
    let o = lab.exec("h1", &["ping", "-c", "2", "-i", "0.3", "-W", "2", "192.168.12.12"]);
    o.status.success()
}

/// Both ikeda gateways up behind ESP-only groups (both initiate), with
/// `extra`; waits until the tunnel is up and settled (both sides hold the
/// same SAs, all established, one IKE SA and one CHILD SA installed: when
/// both initiated, the duplicate is settled first).
fn ikeda_behind_esp_only(test: &str, fw: &str, initiator: &str, unreplied: &str, extra: &[&str]) -> (Lab, Sas, Sas) {
    let mut a = vec![
        "--ike",
        "2",
        "--firewall",
        fw,
        "--initiator",
        initiator,
        "--no-wait",
        "--ct-udp-timeout",
        unreplied,
        "--ct-udp-stream-timeout",
        "4",
        "--retransmit-timeout",
        "1s",
        "--retransmit-tries",
        "2",
    ];
    a.extend_from_slice(extra);
    let (lab, _) = Lab::up_alone('k', &a);
    let (took, s) = up_within(&lab, 20);
    assert!(took.is_some(), "{test}: not up after 20 s:\n{s}");
    let t0 = Instant::now();
    loop {
        let (s1, s2) = (sas(&lab, "gw1"), sas(&lab, "gw2"));
        let settled = mirrored(&s1, &s2).is_ok()
            && s1.0.len() == 1
            && s1.0.iter().chain(&s2.0).all(|x| x.2 == "ESTABLISHED")
            && s1.1.iter().any(|x| x.2 == "INSTALLED");
        if settled {
            return (lab, s1, s2);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{test}: not settled: {s1:?} / {s2:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Acceptance (issue 13): with the keepalive option on, the idle-then-rekey
/// case keeps the tunnel whole. The unreplied UDP timeout is 3 s here, not
/// 2: Linux conntrack keeps a UDP flow on its unreplied timeout for its
/// first 2 s after the reply, so a keepalive of exactly that timeout races
/// the flow's expiry once, just after the start (measured: one IKE packet
/// dropped on each side at 2 s / 2 s; a keepalive is to stay below both
/// timeouts). Two ikeda gateways behind ESP-only groups
/// (both initiate), stream timeout 4 s, keepalive 2 s: 7 s idle, then a
/// CHILD rekey from gw1 completes, both sides keep one IKE SA and the new
/// CHILD SA, a ping passes, and after the start no IKE packet was dropped
/// (all of it admitted as replies, none by a rule). The audit agrees: no
/// idle-half-dead prediction, the flow is kept open by the keepalives.
#[test]
fn keepalive_keeps_the_tunnel_whole_through_idle_then_rekey() {
    let test = "keepalive_keeps_the_tunnel_whole_through_idle_then_rekey";
    if !require_root(test) {
        return;
    }
    let (lab, s1, _) = ikeda_behind_esp_only(test, "esp-only", "both", "3", &["--keepalive", "2"]);
    let old_children: Vec<String> = s1.1.iter().map(|c| c.0.clone()).collect();
    let mut ike_sas = s1.0.clone();
    ike_sas.sort();
    let (code, findings) = lab_audit(&lab);
    assert!(
        !findings.iter().any(|(c, _)| c == "idle-half-dead")
            && findings
                .iter()
                .any(|(c, t)| c == "kept-open-by-keepalives" && t.contains("keepalive = 2 s")),
        "{test}: audit exit {code}: {findings:?}"
    );
    let before = status(&lab);
    let (b1, b2) = (counters(&before, "gw1"), counters(&before, "gw2"));
    let t_idle = Instant::now();
    std::thread::sleep(Duration::from_secs(7));
    let o = ctl(&lab, "gw1", &["rekey", "s2s"]);
    assert!(o.status.success(), "{test}: rekey: {}", text(&o));
    let t_rekey = Instant::now();
    let whole = loop {
        let (s1, s2) = (sas(&lab, "gw1"), sas(&lab, "gw2"));
        // The rekeyed CHILD SA is gone (its DELETE answered) and a new one
        // is installed.
        let new_child = s1.1.iter().any(|c| !old_children.contains(&c.0) && c.2 == "INSTALLED")
            && s1.1.len() == old_children.len()
            && !s1.1.iter().any(|c| c.2 == "REKEYED");
        if mirrored(&s1, &s2).is_ok() && new_child {
            break (s1, s2);
        }
        assert!(
            t_rekey.elapsed() < Duration::from_secs(10),
            "{test}: rekey not through: {s1:?} / {s2:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = t_rekey.elapsed().as_secs_f64();
    // The same one IKE SA throughout, on both sides.
    let sorted = |mut v: Vec<(String, String, String)>| {
        v.sort();
        v
    };
    assert_eq!(ike_sas.len(), 1, "{test}: {ike_sas:?}");
    assert_eq!(sorted(whole.0 .0.clone()), ike_sas, "{test}");
    assert_eq!(sorted(whole.1 .0.clone()), ike_sas, "{test}");
    assert!(ping_passes(&lab), "{test}: ping after the rekey");
    let after = status(&lab);
    let (a1, a2) = (counters(&after, "gw1"), counters(&after, "gw2"));
    for (gw, b, a) in [("gw1", &b1, &a1), ("gw2", &b2, &a2)] {
        if a[IKE].2 != b[IKE].2 {
            println!(
                "{test}: {gw} IKE drops {b:?} -> {a:?}\n{}",
                lab_log(&lab, &format!("{gw}.log"))
            );
        }
    }
    for (gw, b, a) in [("gw1", &b1, &a1), ("gw2", &b2, &a2)] {
        assert_eq!(
            a[IKE].2,
            b[IKE].2,
            "{test}: {gw} dropped IKE after the start ({b:?} -> {a:?}):\n{after}\n{}",
            lab_log(&lab, &format!("{gw}.log"))
        );
        assert_eq!(a[NATT].2, b[NATT].2, "{test}: {gw}:\n{after}");
        assert_eq!(a[IKE].0, 0, "{test}: {gw}: no rule admits IKE");
        assert!(
            a[IKE].1 > b[IKE].1,
            "{test}: {gw}: keepalives admitted as replies:\n{after}"
        );
    }
    let gw1_log = lab_log(&lab, "gw1.log");
    let checks = gw1_log.matches("keepalive: nothing sent").count();
    println!(
        "{test}: idle {:.1} s, rekey through in {took:.2} s; IKE admitted as replies during the run gw1 {} gw2 {}, dropped 0 (before the start: gw1 {} gw2 {}); gw1 sent {checks} keepalive liveness checks",
        t_rekey.duration_since(t_idle).as_secs_f64(),
        a1[IKE].1 - b1[IKE].1,
        a2[IKE].1 - b2[IKE].1,
        b1[IKE].2,
        b2[IKE].2
    );
    lab.down();
}

/// The same without keepalive, ikeda on both sides, each with DPD (20 s,
/// restart); gw1 behind an ESP-only group, gw2 without one, gw1 initiates
/// (one IKE SA from the start): gw2's rekey
/// after 7 s idle is dropped by gw1's group; gw2 gives up, deletes its SAs
/// and initiates again (INITIAL_CONTACT), which gw1's group drops too;
/// gw1's DPD then finds gw2's SA gone, deletes its own and initiates again:
/// re-established. (With
/// DPD at 10 s, measured: gw2's liveness check, sent while gw1
/// retransmitted, passed gw1's group as a reply and reopened the flow, and
/// the rekey went through on its third send.) Whatever the
/// timing, it ends with the tunnel re-established or torn down on both
/// sides, never one side holding SAs the other dropped (checked until 40 s
/// after the rekey, every 0.5 s once gw1 has given up). The audit predicts
/// the idle case and offers the keepalive as a fix.
#[test]
fn without_keepalive_ikeda_never_stays_half_dead_after_idle_then_rekey() {
    never_half_dead(
        "without_keepalive_ikeda_never_stays_half_dead_after_idle_then_rekey",
        &["--dpd-delay", "20s", "--dpd-action", "restart"],
        false,
    );
}

/// The same with ikeda's defaults (no DPD, `dpd_action` clear) while h1
/// pings h2 every 0.5 s: gw2 gives up on its rekey and deletes its SAs
/// (its DELETE and INITIAL_CONTACT are dropped by gw1's group); gw1 goes
/// on sending ESP and hears nothing back, so after 10 s it checks the
/// peer's liveness (RFC 7296 §2.4, no configuration needed), gets no
/// answer, and deletes its SAs too: torn down on both sides, not left
/// sending into a black hole until its next rekey.
#[test]
fn with_defaults_one_way_traffic_ends_a_half_dead_tunnel() {
    never_half_dead("with_defaults_one_way_traffic_ends_a_half_dead_tunnel", &[], true);
}

/// A child process of the test, killed (by its PID) and reaped on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn never_half_dead(test: &str, extra: &[&str], ping: bool) {
    if !require_root(test) {
        return;
    }
    let (lab, s1, _) = ikeda_behind_esp_only(test, "esp-only,none", "gw1", "2", extra);
    let old_ike = s1.0.clone();
    let o = ikeda(&["lab", "audit", "--name", &lab.name]);
    assert!(
        text(&o).contains("half-dead") && text(&o).contains("keepalive = \"2s\""),
        "{test}: lab audit:\n{}",
        text(&o)
    );
    std::thread::sleep(Duration::from_secs(7));
    let before = status(&lab);
    let dropped_before = counters(&before, "gw1")[IKE].2;
    // h1's traffic for the whole run (what makes gw1 send on its CHILD SA);
    // killed by its PID when dropped, a failed assertion included.
    let mut pinger = ping.then(|| {
        KillOnDrop(
            Command::new("ip")
                .args(["netns", "exec", &lab.ns("h1"), "ping", "-n", "-q", "-i", "0.5", "-w", "50", "192.168.12.12"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("ping"),
        )
    });
    let o = ctl(&lab, "gw2", &["rekey", "s2s"]);
    assert!(o.status.success(), "{test}: rekey: {}", text(&o));
    let t_rekey = Instant::now();
    // gw2: sent at 0, 1, 2.8 s, gives up at 6 s.
    while !lab_log(&lab, "gw2.log").contains("peer not answering: CREATE_CHILD_SA sent 3 times") {
        assert!(
            t_rekey.elapsed() < Duration::from_secs(15),
            "{test}: gw2 did not give up:\n{}\n{}",
            status(&lab),
            lab_log(&lab, "gw2.log")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let gave_up = t_rekey.elapsed().as_secs_f64();
    let mut half_dead_s = 0.0f64;
    let mut outcome = None;
    let mut last = String::new();
    while t_rekey.elapsed() < Duration::from_secs(40) {
        let (a, b) = (sas(&lab, "gw1"), sas(&lab, "gw2"));
        let up = |s: &Sas| s.0.iter().any(|x| x.2 == "ESTABLISHED") && s.1.iter().any(|x| x.2 == "INSTALLED");
        match mirrored(&a, &b) {
            Ok(()) if a.0.is_empty() && b.0.is_empty() => {
                outcome = Some(("torn down on both sides", t_rekey.elapsed()))
            }
            // gw2 gave up and deleted the old SAs: SAs on both sides now
            // are new ones.
            Ok(()) if up(&a) && a.0.iter().all(|x| !old_ike.contains(x)) && a.0.len() == b.0.len() => {
                outcome = Some(("re-established", t_rekey.elapsed()))
            }
            Ok(()) => {}
            Err(e) => {
                half_dead_s += 0.5;
                last = e;
            }
        }
        if outcome.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let s = status(&lab);
    pinger.take();
    let (what, at) = outcome.unwrap_or_else(|| {
        panic!(
            "{test}: still half-dead 40 s after the rekey: {last}\n{s}\n{}",
            lab_log(&lab, "gw1.log")
        )
    });
    if ping {
        // Without DPD, it was gw1's check of one-way traffic that ended it.
        let log = lab_log(&lab, "gw1.log");
        assert!(
            log.contains("packets went out and none came back") && log.contains("checking that the peer is alive"),
            "{test}: gw1 did not check:\n{log}"
        );
        assert_eq!(what, "torn down on both sides", "{test}: dpd_action clear: no restart");
    }
    // It ended whole: re-established with a ping through, or nothing on
    // either side. And it stays so.
    if what == "re-established" {
        assert!(ping_passes(&lab), "{test}: ping after re-establishment");
    }
    std::thread::sleep(Duration::from_secs(2));
    let (a, b) = (sas(&lab, "gw1"), sas(&lab, "gw2"));
    mirrored(&a, &b).unwrap_or_else(|e| panic!("{test}: after {what}: {e}"));
    let dropped = counters(&s, "gw1")[IKE].2 - dropped_before;
    println!(
        "{test}: gw2 gave up {gave_up:.1} s after its rekey; {what} {:.1} s after it (the two sides disagreed for about {half_dead_s:.1} s, until gw1's liveness check); gw1's group dropped {dropped} IKE packets of gw2's",
        at.as_secs_f64()
    );
    lab.down();
}
