//! The predictions of `ikeda audit` on the sample files of
//! tests/audit_samples/ (the CLI test, tests/audit.rs, runs the same files
//! through the binary): every verdict and every case of issue 13.

use super::report::{ConnReport, Severity};
use super::*;

const S: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/audit_samples/");

fn p(name: &str) -> PathBuf {
    PathBuf::from(format!("{S}{name}"))
}

struct A {
    args: AuditArgs,
}

fn audit(config: &str, fw: &[&str]) -> A {
    A {
        args: AuditArgs {
            config: p(config),
            firewall: fw.iter().map(|f| p(f)).collect(),
            peer_firewall: Vec::new(),
            peer_config: None,
            conn: None,
            nat: None,
            wan: None,
            peer_wan: None,
            udp_timeout: 30,
            udp_stream_timeout: 180,
            json: false,
        },
    }
}

impl A {
    fn peer(mut self, config: &str, fw: &[&str]) -> A {
        self.args.peer_config = Some(p(config));
        self.args.peer_firewall = fw.iter().map(|f| p(f)).collect();
        self
    }
    fn run(&self) -> (ConnReport, i32) {
        let (mut r, code) = run(&self.args).unwrap();
        assert_eq!(r.len(), 1);
        (r.remove(0), code)
    }
}

fn cases(r: &ConnReport) -> Vec<(&'static str, Severity)> {
    r.findings.iter().map(|f| (f.case, f.severity)).collect()
}

fn finding<'a>(r: &'a ConnReport, case: &str) -> &'a report::Finding {
    r.findings
        .iter()
        .find(|f| f.case == case)
        .unwrap_or_else(|| panic!("no {case} in {:#?}", r.findings))
}

fn verdict(r: &ConnReport, side: usize, flow: &str, dir: &str) -> &'static str {
    r.sides[side]
        .flows
        .iter()
        .find(|f| f.flow == flow && f.dir == dir)
        .unwrap()
        .verdict
}

#[test]
fn esp_only_both_start_is_an_accident() {
    let (r, code) = audit("gw1.toml", &["sg_esp_only.json"])
        .peer("gw2.toml", &["sg_esp_only.json"])
        .run();
    assert_eq!(code, 1);
    assert_eq!(r.nat, Some(false));
    assert_eq!(verdict(&r, 0, "IKE UDP 500", "in"), "reply-only");
    assert_eq!(verdict(&r, 0, "ESP", "in"), "admitted");
    assert_eq!(verdict(&r, 1, "IKE UDP 500", "out"), "admitted");
    assert_eq!(
        cases(&r),
        [
            ("both-must-initiate", Severity::Accident),
            ("idle-half-dead", Severity::Accident),
            ("idle-half-dead", Severity::Accident),
            ("ok", Severity::Ok),
        ]
    );
    let both = finding(&r, "both-must-initiate");
    assert!(both.text.contains("within 30 s of each other"), "{}", both.text);
    assert!(
        both.text
            .contains("sends at 0, 4.0, 11.2, 24.2, 47.5, 89.5 s and gives up at 165.1 s"),
        "{}",
        both.text
    );
    // The fix: UDP 500 from the other side's address, on both groups.
    let rules: Vec<&str> = both.fixes.iter().map(|f| f.rule.as_str()).collect();
    assert!(rules.contains(
        &"aws ec2 authorize-security-group-ingress --group-id sg-0a1b2c3d4e5f60718 --ip-permissions 'IpProtocol=udp,FromPort=500,ToPort=500,IpRanges=[{CidrIp=198.51.100.2/32}]'"
    ));
    assert!(rules.iter().any(|r| r
        .contains(r#"{"IpProtocol": "udp", "FromPort": 500, "ToPort": 500, "IpRanges": [{"CidrIp": "192.0.2.1/32""#)));
    let idle = &r.findings[1];
    assert!(
        idle.text.contains("after more than 180 s") && idle.text.contains("half-dead"),
        "{}",
        idle.text
    );
}

#[test]
fn responder_behind_reply_only_never_comes_up() {
    // The peer only responds; this gateway's inbound IKE is reply-only, the
    // peer's open: this gateway initiates, so it comes up, but the peer's
    // rekeys after idle are dropped.
    let (r, code) = audit("gw1.toml", &["sg_esp_only.json"])
        .peer("gw2_responder.toml", &["sg_ike_500.json"])
        .run();
    assert_eq!(code, 1);
    assert_eq!(
        cases(&r),
        [
            ("initiator-only", Severity::Note),
            ("idle-half-dead", Severity::Accident),
            ("ok", Severity::Ok)
        ]
    );
    // This gateway only responds behind reply-only inbound IKE: never.
    let (r, code) = audit("gw1_responder.toml", &["ipt_reply_only.txt"])
        .peer("gw2.toml", &["sg_ike_500.json"])
        .run();
    assert_eq!(code, 1);
    let never = finding(&r, "never-up");
    assert_eq!(never.severity, Severity::Fails);
    assert!(
        never.text.contains("this gateway (192.0.2.1) only responds"),
        "{}",
        never.text
    );
    assert!(never
        .fixes
        .iter()
        .any(|f| f.rule == "iptables -I INPUT -s 198.51.100.2/32 -p udp --dport 500 -j ACCEPT"));
    // Its own DPD (30 s, below the stream timeout) is named as no cure under traffic.
    assert!(finding(&r, "idle-half-dead")
        .text
        .contains("DPD every 30 s keeps it open only while no traffic flows"));
    // Both reply-only and one responder: never, too.
    let (r, _) = audit("gw1.toml", &["sg_esp_only.json"])
        .peer("gw2_responder.toml", &["sg_esp_only.json"])
        .run();
    assert_eq!(finding(&r, "never-up").severity, Severity::Fails);
}

#[test]
fn all_open_is_no_accident() {
    let (r, code) = audit("gw1.toml", &["sg_ipsec_all.json", "nacl_ipsec.json"])
        .peer("gw2.toml", &["sg_ipsec_all.json"])
        .run();
    assert_eq!(cases(&r), [("ok", Severity::Ok), ("ok", Severity::Ok)]);
    assert_eq!(code, 0);
    assert_eq!(r.sides[0].firewalls.len(), 2);
}

#[test]
fn only_500_with_nat_fails_after_the_float() {
    let (r, code) = audit("gw1.toml", &["sg_ike_500.json"])
        .peer("gw2_nat.toml", &["sg_ike_500.json"])
        .run();
    assert_eq!(code, 1);
    assert_eq!((r.nat, r.udp_encapsulation), (Some(true), Some(true)));
    assert_eq!(verdict(&r, 0, "NAT-T UDP 4500", "in"), "reply-only");
    assert_eq!(
        cases(&r),
        [
            ("ok", Severity::Ok),
            ("both-must-initiate", Severity::Accident),
            ("kept-open-by-keepalives", Severity::Note),
            ("kept-open-by-keepalives", Severity::Note),
            ("esp-irrelevant", Severity::Note),
        ]
    );
    // The peer behind the NAT sends the keepalives.
    assert!(
        r.findings[2].text.contains("from the peer (10.0.2.2) every 20 s"),
        "{}",
        r.findings[2].text
    );
    // Where 4500 is not admitted at all (iptables: 500 and ESP, no
    // conntrack accept): IKE_AUTH fails after the float.
    let (r, code) = audit("gw1.toml", &["ipt_500_only.txt"])
        .peer("gw2_nat.toml", &["sg_ipsec_all.json"])
        .run();
    assert_eq!(code, 1);
    assert_eq!(verdict(&r, 0, "NAT-T UDP 4500", "in"), "not admitted");
    assert_eq!(
        cases(&r),
        [
            ("ok", Severity::Ok),
            ("fails-after-float", Severity::Fails),
            ("esp-irrelevant", Severity::Note)
        ]
    );
    let f = &r.findings[1];
    assert!(f.text.contains("fails at IKE_AUTH after the float"), "{}", f.text);
    assert!(f
        .fixes
        .iter()
        .any(|x| x.rule == "iptables -I INPUT -s 198.51.100.2/32 -p udp --dport 4500 -j ACCEPT"));
}

#[test]
fn esp_rules_irrelevant_with_udp_encapsulation_and_esp_reply_only() {
    // No NAT: ESP matters. ipt_udp_only admits ESP only as established.
    let (r, code) = audit("gw1.toml", &["ipt_udp_only.txt"])
        .peer("gw2.toml", &["sg_ipsec_all.json"])
        .run();
    assert_eq!(code, 1);
    assert_eq!(verdict(&r, 0, "ESP", "in"), "reply-only");
    let esp = finding(&r, "data-reply-only");
    assert_eq!(esp.severity, Severity::Accident);
    assert!(
        esp.text
            .starts_with("ESP from the peer (198.51.100.2) reaches this gateway (192.0.2.1) only within 180 s"),
        "{}",
        esp.text
    );
    assert!(esp
        .fixes
        .iter()
        .any(|f| f.rule == "iptables -I INPUT -s 198.51.100.2/32 -p esp -j ACCEPT"));
    // No conntrack accept at all: ESP is not admitted, traffic fails.
    let (r, _) = audit("gw1.toml", &["ipt_no_esp.txt"])
        .peer("gw2.toml", &["sg_ipsec_all.json"])
        .run();
    assert_eq!(verdict(&r, 0, "ESP", "in"), "not admitted");
    assert_eq!(finding(&r, "data-blocked").severity, Severity::Fails);
    // With the NAT, the same ESP rules do not matter.
    let (r, code) = audit("gw1.toml", &["ipt_no_esp.txt"])
        .peer("gw2_nat.toml", &["sg_ipsec_all.json"])
        .run();
    assert_eq!(
        cases(&r),
        [
            ("ok", Severity::Ok),
            ("ok", Severity::Ok),
            ("esp-irrelevant", Severity::Note)
        ]
    );
    assert_eq!(code, 0);
}

#[test]
fn nft_sample_and_unknown_interface() {
    // The real nft sample: ESP from 198.51.100.0/24 explicit, IKE reply-only.
    let (r, _) = audit("gw1.toml", &["nft_real.json"])
        .peer("gw2.toml", &["sg_ipsec_all.json"])
        .run();
    assert_eq!(verdict(&r, 0, "IKE UDP 500", "in"), "reply-only");
    assert_eq!(verdict(&r, 0, "ESP", "in"), "admitted");
    assert!(finding(&r, "initiator-only").fixes.is_empty());
    assert!(finding(&r, "idle-half-dead")
        .fixes
        .iter()
        .any(|f| f.rule == "nft insert rule inet ikeda_sg input ip saddr 198.51.100.2 udp dport 500 accept"));
    // Interface matches without --wan: unknown, said, exit 1.
    let (r, code) = audit("gw1.toml", &["nft_wan.json"])
        .peer("gw2.toml", &["sg_ipsec_all.json"])
        .run();
    assert_eq!(code, 1);
    let u = finding(&r, "unknown");
    assert_eq!(u.severity, Severity::Unknown);
    assert!(
        u.text.contains("nft_wan.json") && u.text.contains("--wan"),
        "{}",
        u.text
    );
    // With it: decided.
    let mut a = audit("gw1.toml", &["nft_wan.json"]).peer("gw2.toml", &["sg_ipsec_all.json"]);
    a.args.wan = Some("wan0".into());
    let (r, _) = a.run();
    assert_eq!(verdict(&r, 0, "IKE UDP 500", "in"), "reply-only");
    assert_eq!(verdict(&r, 0, "ESP", "in"), "admitted");
    a.args.wan = Some("eth1".into());
    let (r, _) = a.run();
    assert_eq!(verdict(&r, 0, "IKE UDP 500", "in"), "admitted");
}

#[test]
fn without_the_peer_nat_is_unknown_and_said() {
    let (r, code) = audit("gw1.toml", &["sg_ike_500.json"]).run();
    assert_eq!(r.nat, None);
    assert!(r.sides[1].assumed_open);
    assert_eq!(
        cases(&r),
        [
            ("ok", Severity::Ok),
            ("initiator-only", Severity::Note),
            ("ok", Severity::Ok),
            ("peer-not-given", Severity::Note),
        ]
    );
    // 4500 is reply-only here: fine if this gateway initiates (a note), and
    // nothing proven wrong: exit 0.
    assert!(
        r.findings[1].text.starts_with("if a NAT is on the path"),
        "{}",
        r.findings[1].text
    );
    assert_eq!(code, 0);
    // A conditional failure is a warning, not an exit 1.
    let (r, code) = audit("gw1.toml", &["ipt_no_esp.txt"]).run();
    assert_eq!(finding(&r, "data-blocked").severity, Severity::Warning);
    assert!(finding(&r, "data-blocked")
        .text
        .starts_with("unless a NAT is on the path"));
    assert_eq!(code, 0);
    // --nat no settles it.
    let mut a = audit("gw1.toml", &["ipt_no_esp.txt"]);
    a.args.nat = Some("no".into());
    let (r, code) = a.run();
    assert_eq!(finding(&r, "data-blocked").severity, Severity::Fails);
    assert_eq!(code, 1);
}

#[test]
fn manual_sas_need_their_data_flow_both_ways() {
    // UDP-encapsulated manual SAs: no IKE; 4500 from the peer is reply-only.
    let (r, code) = audit("gw1_manual_udp.toml", &["sg_esp_only.json"]).run();
    assert_eq!(code, 1);
    assert_eq!(r.sides[0].start_action, Some("none (manual keys)"));
    assert_eq!(
        cases(&r),
        [
            ("data-reply-only", Severity::Accident),
            ("peer-not-given", Severity::Note)
        ]
    );
    let f = &r.findings[0];
    assert!(
        f.text
            .starts_with("NAT-T UDP 4500 from the peer (198.51.100.2) reaches this gateway"),
        "{}",
        f.text
    );
    assert!(f
        .fixes
        .iter()
        .any(|x| x.rule.contains("IpProtocol=udp,FromPort=4500,ToPort=4500")));
    // Open: nothing to say but ok.
    let (r, code) = audit("gw1_manual_udp.toml", &["sg_ipsec_all.json"]).run();
    assert_eq!(cases(&r), [("ok", Severity::Ok), ("peer-not-given", Severity::Note)]);
    assert_eq!(code, 0);
}

#[test]
fn detection_by_content_and_unreadable_files() {
    let read = |n: &str| std::fs::read_to_string(p(n)).unwrap();
    assert!(matches!(
        Firewall::detect(&read("sg_esp_only.json"), None),
        Ok(Firewall::Sg(_))
    ));
    assert!(matches!(
        Firewall::detect(&read("nacl_ipsec.json"), None),
        Ok(Firewall::Nacl(_))
    ));
    assert!(matches!(
        Firewall::detect(&read("nft_real.json"), None),
        Ok(Firewall::Nft(_))
    ));
    assert!(matches!(
        Firewall::detect(&read("ipt_reply_only.txt"), None),
        Ok(Firewall::Iptables(_))
    ));
    for bad in ["garbage.txt", "gw1.toml"] {
        let e = load_firewall(&p(bad), None).err().unwrap();
        assert!(e.contains(bad) && e.contains("not a firewall description"), "{e}");
    }
    assert!(Firewall::detect("{\"Reservations\": []}", None)
        .err()
        .unwrap()
        .contains("neither"));
    assert!(Firewall::detect("{\"SecurityGroups\": [", None)
        .err()
        .unwrap()
        .contains("not JSON"));
    assert!(load_firewall(Path::new("/nonexistent/x"), None).is_err());
    let a = audit("gw1.toml", &["garbage.txt"]);
    assert!(run(&a.args).err().unwrap().contains("garbage.txt"));
    let mut a = audit("gw1.toml", &["sg_esp_only.json"]);
    a.args.conn = Some("nope".into());
    assert!(run(&a.args).is_err());
}

/// Issue 13 point 3: ikeda's `keepalive` below the stream timeout keeps the
/// IKE flow's state on both firewalls, so the idle case no longer applies;
/// where it does, the option is suggested next to the firewall rule.
#[test]
fn keepalive_below_the_stream_timeout_removes_the_idle_case() {
    let (r, _) = audit("gw1.toml", &["sg_esp_only.json"])
        .peer("gw2.toml", &["sg_esp_only.json"])
        .run();
    let idle: Vec<_> = r.findings.iter().filter(|f| f.case == "idle-half-dead").collect();
    assert_eq!(idle.len(), 2);
    for f in idle {
        assert!(
            f.fixes
                .iter()
                .any(|x| x.rule == "keepalive = \"20s\"" && x.firewall == "ikeda config, [[conn]] site2"),
            "{:?}",
            f.fixes
        );
        // The firewall rule is still offered.
        assert!(f
            .fixes
            .iter()
            .any(|x| x.rule.contains("authorize-security-group-ingress")));
    }
    // keepalive = 20s on this gateway: both directions stay open (one side
    // suffices); coming up still needs both to initiate.
    let (r, code) = audit("gw1_keepalive.toml", &["sg_esp_only.json"])
        .peer("gw2.toml", &["sg_esp_only.json"])
        .run();
    assert_eq!(
        cases(&r),
        [
            ("both-must-initiate", Severity::Accident),
            ("kept-open-by-keepalives", Severity::Note),
            ("kept-open-by-keepalives", Severity::Note),
            ("ok", Severity::Ok),
        ]
    );
    assert_eq!(code, 1);
    let kept = finding(&r, "kept-open-by-keepalives");
    assert!(
        kept.text.contains("this gateway (192.0.2.1) sends keepalive = 20 s")
            && kept.text.contains("below the 180 s stream timeout"),
        "{}",
        kept.text
    );
    // The same keepalive on the peer's side only: the same.
    let (r, _) = audit("gw2.toml", &["sg_esp_only.json"])
        .peer("gw1_keepalive.toml", &["sg_esp_only.json"])
        .run();
    assert_eq!(
        r.findings
            .iter()
            .filter(|f| f.case == "kept-open-by-keepalives")
            .count(),
        2
    );
    // Not below the stream timeout: no cure, and said so; 10 s suggested.
    let mut a = audit("gw1_keepalive.toml", &["sg_esp_only.json"]).peer("gw2.toml", &["sg_esp_only.json"]);
    a.args.udp_stream_timeout = 20;
    let (r, _) = a.run();
    let idle = finding(&r, "idle-half-dead");
    assert!(
        idle.text
            .contains("this gateway's keepalive = 20 s is not below the 20 s stream timeout"),
        "{}",
        idle.text
    );
    assert!(
        idle.fixes.iter().any(|x| x.rule == "keepalive = \"10s\""),
        "{:?}",
        idle.fixes
    );
}
