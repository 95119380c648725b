//! `ikeda audit` as a user runs it: the binary on the sample files of
//! tests/audit_samples/, its text, its --json and its exit codes (0 no
//! dependence on an accident, 1 an accident / failure / undecided verdict,
//! 2 unreadable input). No root needed: files only.

mod common;

use common::{ikeda, text};
use std::process::Output;

const S: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/audit_samples/");

fn audit(args: &[&str]) -> Output {
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains('.') && !a.starts_with('-') && !a.starts_with('/') {
                format!("{S}{a}")
            } else {
                a.to_string()
            }
        })
        .collect();
    let mut v = vec!["audit"];
    v.extend(args.iter().map(String::as_str));
    ikeda(&v)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

#[test]
fn founding_case_esp_only_both_sides() {
    let o = audit(&[
        "-c",
        "gw1.toml",
        "--firewall",
        "sg_esp_only.json",
        "--peer-firewall",
        "sg_esp_only.json",
        "--peer-config",
        "gw2.toml",
        "--wan",
        "wan0",
        "--peer-wan",
        "wan0",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("IKE UDP 500     in: reply-only    out: admitted"), "{t}");
    assert!(
        t.contains("[ACCIDENT] comes up only when both sides initiate within 30 s of each other"),
        "{t}"
    );
    assert!(t.contains("[ACCIDENT] after more than 180 s without IKE packets on IKE UDP 500, an exchange the peer (198.51.100.2) starts"), "{t}");
    assert!(t.contains(
        "aws ec2 authorize-security-group-ingress --group-id sg-0a1b2c3d4e5f60718 --ip-permissions 'IpProtocol=udp,FromPort=500,ToPort=500,IpRanges=[{CidrIp=198.51.100.2/32}]'"
    ), "{t}");
    assert!(t.contains("result: the tunnel depends on an accident"), "{t}");
    // The timeouts are the firewall's: scaled down as a lab would.
    let o = audit(&[
        "-c",
        "gw1.toml",
        "--firewall",
        "sg_esp_only.json",
        "--peer-firewall",
        "sg_esp_only.json",
        "--peer-config",
        "gw2.toml",
        "--udp-timeout",
        "5",
        "--udp-stream-timeout",
        "20",
    ]);
    let t = text(&o);
    assert!(
        t.contains("within 5 s of each other") && t.contains("after more than 20 s"),
        "{t}"
    );
}

#[test]
fn json_for_scripts() {
    let o = audit(&[
        "-c",
        "gw1.toml",
        "--firewall",
        "sg_esp_only.json",
        "--peer-firewall",
        "sg_ike_500.json",
        "--peer-config",
        "gw2_responder.toml",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["exit"], 1);
    let c = &v["conns"][0];
    assert_eq!(c["conn"], "site2");
    assert_eq!(c["nat"], false);
    assert_eq!(c["sides"][0]["start_action"], "start");
    assert_eq!(c["sides"][1]["start_action"], "none");
    let flows = c["sides"][0]["flows"].as_array().unwrap();
    assert!(flows
        .iter()
        .any(|f| f["flow"] == "IKE UDP 500" && f["dir"] == "in" && f["verdict"] == "reply-only"));
    let cases: Vec<(&str, &str)> = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["case"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cases,
        [("initiator-only", "note"), ("idle-half-dead", "accident"), ("ok", "ok")]
    );
    let fix = &c["findings"][1]["fixes"][0];
    assert_eq!(fix["side"], "this gateway");
    assert!(fix["rule"]
        .as_str()
        .unwrap()
        .starts_with("IpPermissions rule of sg-0a1b2c3d4e5f60718: {\"IpProtocol\": \"udp\", \"FromPort\": 500"));
}

#[test]
fn open_path_exits_zero() {
    let o = audit(&[
        "-c",
        "gw1.toml",
        "--firewall",
        "sg_ipsec_all.json",
        "--firewall",
        "nacl_ipsec.json",
        "--peer-firewall",
        "sg_ipsec_all.json",
        "--peer-config",
        "gw2.toml",
        "--wan",
        "wan0",
        "--peer-wan",
        "wan0",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("nacl_ipsec.json (AWS network ACL acl-0fedcba9876543210)"),
        "{t}"
    );
    assert!(
        t.contains("[ok] IKE UDP 500 is admitted both ways") && t.contains("[ok] ESP is admitted both ways"),
        "{t}"
    );
    assert!(t.contains("result: no dependence on an accident found (exit 0)"), "{t}");
    assert!(!t.contains("ACCIDENT") && !t.contains("FAILS"), "{t}");
}

#[test]
fn nat_500_only_fails_after_float_and_esp_is_irrelevant() {
    let o = audit(&[
        "-c",
        "gw1.toml",
        "--firewall",
        "ipt_500_only.txt",
        "--peer-firewall",
        "sg_ipsec_all.json",
        "--peer-config",
        "gw2_nat.toml",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("NAT on the path: yes; UDP encapsulation: yes"), "{t}");
    assert!(
        t.contains("[FAILS] IKE_SA_INIT passes on UDP 500, but with a NAT on the path IKE moves to UDP 4500"),
        "{t}"
    );
    assert!(
        t.contains("iptables -I INPUT -s 198.51.100.2/32 -p udp --dport 4500 -j ACCEPT"),
        "{t}"
    );
    assert!(
        t.contains("[note] UDP encapsulation (RFC 3948): ESP travels in UDP 4500"),
        "{t}"
    );
}

#[test]
fn unknown_peer_start_and_nft_interfaces() {
    // Peer's firewall given but not its config: its start action is unknown,
    // and said.
    let o = audit(&[
        "-c",
        "gw1.toml",
        "--firewall",
        "nft_real.json",
        "--peer-firewall",
        "ipt_reply_only.txt",
        "--nat",
        "no",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("the peer 198.51.100.2 (start_action not known)"), "{t}");
    assert!(
        t.contains("(and never if the peer only responds: its start action is not known, give --peer-config)"),
        "{t}"
    );
    assert!(
        t.contains("nft insert rule inet ikeda_sg input ip saddr 198.51.100.2 udp dport 500 accept"),
        "{t}"
    );
    // An interface match without --wan: unknown, exit 1, and how to settle it.
    let o = audit(&["-c", "gw1.toml", "--firewall", "nft_wan.json", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    let f = &v["conns"][0]["findings"][0];
    assert_eq!(f["severity"], "unknown");
    assert!(f["text"].as_str().unwrap().contains("--wan"), "{f}");
    let o = audit(&[
        "-c",
        "gw1.toml",
        "--firewall",
        "nft_wan.json",
        "--wan",
        "wan0",
        "--json",
    ]);
    let v = json(&o);
    assert!(
        v["conns"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "unknown"),
        "{v}"
    );
}

#[test]
fn unreadable_input_exits_two() {
    for (args, want) in [
        (
            vec!["-c", "gw1.toml", "--firewall", "garbage.txt"],
            "not a firewall description this audit reads",
        ),
        (vec!["-c", "gw1.toml", "--firewall", "nope.json"], "nope.json"),
        (
            vec!["-c", "garbage.txt", "--firewall", "sg_esp_only.json"],
            "configuration refused",
        ),
        (
            vec![
                "-c",
                "gw1.toml",
                "--firewall",
                "sg_esp_only.json",
                "--peer-config",
                "garbage.txt",
            ],
            "peer configuration refused",
        ),
        (
            vec!["-c", "gw1.toml", "--firewall", "sg_esp_only.json", "--conn", "other"],
            "no connection other",
        ),
    ] {
        let o = audit(&args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains(want), "{args:?}: {t}");
        assert!(o.stdout.is_empty(), "{args:?}: {t}");
    }
}

/// A network namespace of this test's own, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("ikaudit-{}", common::unique_name('n'));
        let o = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip netns add");
        assert!(o.status.success(), "ip netns add {name}: {}", text(&o));
        Netns(name)
    }

    /// Loads `rules` with nft in the namespace and returns `nft -j list ruleset`.
    fn nft_json(&self, rules: &str) -> Vec<u8> {
        use std::io::Write;
        let mut c = std::process::Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft (nftables) is needed");
        c.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
        assert!(c.wait().unwrap().success(), "nft -f refused:\n{rules}");
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "-j", "list", "ruleset"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// The installed nft's own JSON for a stateful filter shaped as the lab's
/// (`ikeda lab up --firewall`, lab/firewall.rs: `inet ikeda_sg`, input hook,
/// `iifname != "wan0" accept`, the profile's accepts, then established /
/// related accepted per flow, ICMP, drops, all with named counters; policy
/// drop): read right, given `--wan wan0`.
#[test]
fn live_nft_ruleset_from_a_namespace() {
    if !common::require_root("live_nft_ruleset_from_a_namespace") {
        return;
    }
    let ns = Netns::new();
    let dir = common::TempDir::new("audit-nft");
    let profile = |admitted: &[&str]| {
        let flows = [
            ("ike500", "udp dport 500"),
            ("ike4500", "udp dport 4500"),
            ("esp", "meta l4proto esp"),
        ];
        let mut counters = String::new();
        let mut rules = String::new();
        let mut counter = |n: String| {
            counters.push_str(&format!("  counter {n} {{ }}\n"));
            n
        };
        for (k, m) in flows.iter().filter(|(k, _)| admitted.contains(k)) {
            let c = counter(format!("in_{k}_rule"));
            rules.push_str(&format!("    {m} counter name \"{c}\" accept\n"));
        }
        for (k, m) in flows {
            let c = counter(format!("in_{k}_reply"));
            rules.push_str(&format!(
                "    ct state established,related {m} counter name \"{c}\" accept\n"
            ));
        }
        let c = counter("in_other_reply".into());
        rules.push_str(&format!(
            "    ct state established,related counter name \"{c}\" accept\n"
        ));
        rules.push_str("    meta l4proto { icmp, ipv6-icmp } accept\n");
        for (k, m) in flows {
            let c = counter(format!("in_{k}_drop"));
            rules.push_str(&format!("    {m} counter name \"{c}\" drop\n"));
        }
        let c = counter("in_other_drop".into());
        rules.push_str(&format!("    counter name \"{c}\" drop\n"));
        format!(
            "flush ruleset\ntable inet ikeda_sg {{\n{counters}  chain input {{\n    type filter hook input priority filter; \
policy drop;\n    iifname != \"wan0\" accept\n{rules}  }}\n}}\n"
        )
    };
    // ESP only: the founding case.
    let esp_only = dir.path().join("esp_only.json");
    std::fs::write(&esp_only, ns.nft_json(&profile(&["esp"]))).unwrap();
    let f = esp_only.to_str().unwrap();
    let o = audit(&[
        "-c",
        "gw1.toml",
        "--firewall",
        f,
        "--peer-firewall",
        f,
        "--peer-config",
        "gw2.toml",
        "--wan",
        "wan0",
        "--peer-wan",
        "wan0",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json(&o);
    let c = &v["conns"][0];
    for side in 0..2 {
        let flows = c["sides"][side]["flows"].as_array().unwrap();
        let get = |flow: &str, dir: &str| {
            flows.iter().find(|x| x["flow"] == flow && x["dir"] == dir).unwrap()["verdict"].clone()
        };
        assert_eq!(get("IKE UDP 500", "in"), "reply-only", "{c}");
        assert_eq!(get("NAT-T UDP 4500", "in"), "reply-only", "{c}");
        assert_eq!(get("ESP", "in"), "admitted", "{c}");
        assert_eq!(get("IKE UDP 500", "out"), "admitted", "{c}");
    }
    let cases: Vec<&str> = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["case"].as_str().unwrap())
        .collect();
    assert_eq!(cases, ["both-must-initiate", "idle-half-dead", "idle-half-dead", "ok"]);
    assert!(text(&o).contains("nft insert rule inet ikeda_sg input ip saddr 198.51.100.2 udp dport 500 accept"));
    // 500 and 4500 from anywhere, ESP not: reply-only ESP, the rest admitted.
    let ike = dir.path().join("ike.json");
    std::fs::write(&ike, ns.nft_json(&profile(&["ike500", "ike4500"]))).unwrap();
    let f = ike.to_str().unwrap();
    let o = audit(&[
        "-c",
        "gw1.toml",
        "--firewall",
        f,
        "--peer-firewall",
        f,
        "--peer-config",
        "gw2.toml",
        "--wan",
        "wan0",
        "--peer-wan",
        "wan0",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("[ok] IKE UDP 500 is admitted both ways"), "{t}");
    assert!(
        t.contains("[ACCIDENT] ESP from this gateway (192.0.2.1) reaches the peer (198.51.100.2) only within 180 s"),
        "{t}"
    );
    assert!(
        t.contains("nft insert rule inet ikeda_sg input ip saddr 192.0.2.1 meta l4proto esp accept"),
        "{t}"
    );
    // Without --wan the interface match is unknown, and says so.
    let o = audit(&["-c", "gw1.toml", "--firewall", f]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("interface match [\"wan0\"] (say which one is the WAN: --wan)"),
        "{t}"
    );
}
