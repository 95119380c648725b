//! `lab up --firewall PROFILE[,PROFILE2]`: a stateful filter on each
//! gateway's WAN that behaves like a cloud security group (issue 13).
//!
//! A security group admits inbound what a rule names, and besides it every
//! packet that looks like a reply to a flow the instance sent out: the
//! platform tracks flows as Linux conntrack does. nftables with conntrack in
//! the gateway's namespace reproduces that: inbound on `wan0` the profile's
//! rules, then `ct state established,related` (a reply to our own outbound
//! flow), then drop; outbound is open, so every packet the gateway sends
//! creates or refreshes a flow. UDP flows time out as the group's do: 30 s
//! while unreplied, 180 s once both sides have spoken (AWS's documented
//! figures; the namespace's own conntrack sysctls, settable to shorten the
//! tests).
//!
//! Each inbound packet of the IPsec flows (IKE on UDP 500, NAT-T on UDP
//! 4500, ESP) is counted by why it passed or not: admitted by a rule,
//! admitted only as a reply, dropped. `lab status` prints the counters;
//! these are what tell an engineer that a tunnel works by accident.
//!
//! ICMP and ICMPv6 are admitted (neighbour discovery, PMTU); everything
//! else inbound on the WAN is dropped and counted as "other".

use super::{in_ns, sh};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

/// What a gateway's security group admits inbound by rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Profile {
    /// No filter on this gateway.
    None,
    /// ESP (IP protocol 50) only: the founding case.
    EspOnly,
    /// IKE on UDP 500 only (not NAT-T's 4500, not ESP).
    Ike500Only,
    /// IKE on UDP 500 and 4500, not raw ESP.
    Ike,
    /// All of IPsec: UDP 500, UDP 4500 and ESP.
    All,
}

impl Profile {
    pub const NAMES: &'static str = "none, esp-only, ike500-only, ike (500+4500), all (500, 4500, ESP)";

    pub fn parse(s: &str) -> Result<Profile, String> {
        Ok(match s.trim() {
            "none" => Profile::None,
            "esp-only" => Profile::EspOnly,
            "ike500-only" => Profile::Ike500Only,
            "ike" => Profile::Ike,
            "all" => Profile::All,
            other => return Err(format!("--firewall: unknown profile '{other}' (profiles: {})", Self::NAMES)),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::None => "none",
            Profile::EspOnly => "esp-only",
            Profile::Ike500Only => "ike500-only",
            Profile::Ike => "ike",
            Profile::All => "all",
        }
    }

    /// Whether a rule of this profile admits `flow` inbound.
    pub fn admits(self, flow: Flow) -> bool {
        matches!(
            (self, flow),
            (Profile::EspOnly, Flow::Esp)
                | (Profile::Ike500Only, Flow::Ike500)
                | (Profile::Ike, Flow::Ike500 | Flow::Ike4500)
                | (Profile::All, _)
        )
    }
}

/// `--firewall A[,B]`: A for gw1, B for gw2 (A for both when B is absent).
pub fn parse_profiles(s: &str) -> Result<[Profile; 2], String> {
    let parts: Vec<&str> = s.split(',').collect();
    match parts[..] {
        [a] => {
            let p = Profile::parse(a)?;
            Ok([p, p])
        }
        [a, b] => Ok([Profile::parse(a)?, Profile::parse(b)?]),
        _ => Err(format!("--firewall {s}: give one profile for both gateways, or two (gw1,gw2)")),
    }
}

/// The IPsec flows a security group has to admit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flow {
    Ike500,
    Ike4500,
    Esp,
}

impl Flow {
    pub const ALL: [Flow; 3] = [Flow::Ike500, Flow::Ike4500, Flow::Esp];

    /// The counter name's stem.
    fn key(self) -> &'static str {
        match self {
            Flow::Ike500 => "ike500",
            Flow::Ike4500 => "ike4500",
            Flow::Esp => "esp",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Flow::Ike500 => "IKE (UDP 500)",
            Flow::Ike4500 => "NAT-T (UDP 4500)",
            Flow::Esp => "ESP (IP proto 50)",
        }
    }

    /// The nftables match.
    fn matcher(self) -> &'static str {
        match self {
            Flow::Ike500 => "udp dport 500",
            Flow::Ike4500 => "udp dport 4500",
            Flow::Esp => "meta l4proto esp",
        }
    }
}

/// The firewall of a lab, as `lab up` set it and `lab status` reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FirewallState {
    pub profiles: [Profile; 2],
    /// conntrack's UDP timeout while a flow is unreplied, seconds.
    pub udp_timeout: u32,
    /// ... and once both sides have spoken.
    pub udp_stream_timeout: u32,
}

/// The table's name in each gateway namespace.
pub const TABLE: &str = "ikeda_sg";

/// The nftables script of one gateway's security group.
pub fn ruleset(profile: Profile) -> String {
    let mut counters = String::new();
    let mut rules = String::new();
    let mut counter = |name: String| {
        counters.push_str(&format!("  counter {name} {{ }}\n"));
        name
    };
    // Admitted by a rule first, so "as a reply" counts only what no rule
    // admits: the packets that pass by accident.
    for f in Flow::ALL.into_iter().filter(|f| profile.admits(*f)) {
        let c = counter(format!("in_{}_rule", f.key()));
        rules.push_str(&format!("    {} counter name \"{c}\" accept\n", f.matcher()));
    }
    for f in Flow::ALL {
        let c = counter(format!("in_{}_reply", f.key()));
        rules.push_str(&format!("    ct state established,related {} counter name \"{c}\" accept\n", f.matcher()));
    }
    let c = counter("in_other_reply".into());
    rules.push_str(&format!("    ct state established,related counter name \"{c}\" accept\n"));
    rules.push_str("    meta l4proto { icmp, ipv6-icmp } accept\n");
    for f in Flow::ALL {
        let c = counter(format!("in_{}_drop", f.key()));
        rules.push_str(&format!("    {} counter name \"{c}\" drop\n", f.matcher()));
    }
    let c = counter("in_other_drop".into());
    rules.push_str(&format!("    counter name \"{c}\" drop\n"));
    format!(
        "# a stateful security group ({profile}) on wan0, written by `ikeda lab up --firewall`\n\
         table inet {TABLE} {{\n{counters}  chain input {{\n    type filter hook input priority filter; policy drop;\n\
         \x20   iifname != \"wan0\" accept\n{rules}  }}\n}}\n",
        profile = profile.name()
    )
}

/// Put the security group on a gateway (`ns`): the table, then the UDP
/// timeouts of the namespace's conntrack (which the table's `ct` rules
/// have brought up). `script_dir` keeps the script for `lab status` readers.
pub fn install(ns: &str, gw: &str, profile: Profile, st: &FirewallState, script_dir: &Path) -> Result<(), String> {
    if profile == Profile::None {
        return Ok(());
    }
    let f = script_dir.join(format!("firewall-{gw}.nft"));
    fs::write(&f, ruleset(profile)).map_err(|e| format!("{}: {e}", f.display()))?;
    sh(in_ns(ns, "nft").arg("-f").arg(&f)).map_err(|e| format!("{gw} firewall: {e}"))?;
    for (k, v) in [
        ("net.netfilter.nf_conntrack_udp_timeout", st.udp_timeout),
        ("net.netfilter.nf_conntrack_udp_timeout_stream", st.udp_stream_timeout),
    ] {
        sh(in_ns(ns, "sysctl").args(["-qw", &format!("{k}={v}")])).map_err(|e| format!("{gw} firewall: {e}"))?;
    }
    Ok(())
}

/// Packets per flow: (by rule, as reply only, dropped); the last row is
/// everything else (rule: 0).
pub type Counts = Vec<(&'static str, u64, u64, u64)>;

/// Read a gateway's counters (`nft -j list counters table inet ikeda_sg`).
pub fn counters(ns: &str) -> Result<Counts, String> {
    let out = sh(in_ns(ns, "nft").args(["-j", "list", "counters", "table", "inet", TABLE]))?;
    parse_counters(&out)
}

fn parse_counters(json: &str) -> Result<Counts, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("nft -j: {e}"))?;
    let mut by_name = std::collections::HashMap::new();
    for o in v["nftables"].as_array().into_iter().flatten() {
        let c = &o["counter"];
        if let (Some(n), Some(p)) = (c["name"].as_str(), c["packets"].as_u64()) {
            by_name.insert(n.to_string(), p);
        }
    }
    let get = |k: &str, class: &str| by_name.get(&format!("in_{k}_{class}")).copied().unwrap_or(0);
    let mut out: Counts = Flow::ALL
        .into_iter()
        .map(|f| (f.label(), get(f.key(), "rule"), get(f.key(), "reply"), get(f.key(), "drop")))
        .collect();
    out.push(("other", 0, get("other", "reply"), get("other", "drop")));
    Ok(out)
}

/// The counters as `lab status` prints them.
pub fn counters_table(gw: &str, profile: Profile, st: &FirewallState, c: &Counts) -> String {
    let mut s = format!(
        "{gw} security group ({}; conntrack UDP {} s unreplied, {} s stream), inbound on wan0, packets:\n\
         \x20 {:<18} {:>10} {:>15} {:>10}\n",
        profile.name(),
        st.udp_timeout,
        st.udp_stream_timeout,
        "flow",
        "by rule",
        "as reply only",
        "dropped"
    );
    for (label, rule, reply, drop) in c {
        s.push_str(&format!("  {label:<18} {rule:>10} {reply:>15} {drop:>10}\n"));
    }
    let accidental: Vec<&str> = c.iter().filter(|r| r.2 > 0 && r.0 != "other").map(|r| r.0).collect();
    if !accidental.is_empty() {
        s.push_str(&format!(
            "  no rule admits {}: it passed only as a reply to {gw}'s own outbound flow\n",
            accidental.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_per_gateway() {
        assert_eq!(parse_profiles("esp-only").unwrap(), [Profile::EspOnly; 2]);
        assert_eq!(parse_profiles("esp-only,all").unwrap(), [Profile::EspOnly, Profile::All]);
        assert!(parse_profiles("esp").unwrap_err().contains("profiles: none"));
        assert!(parse_profiles("all,all,all").is_err());
    }

    /// A rule accepts only what the profile names; every flow has a reply
    /// and a drop counter, in that order after the rules.
    #[test]
    fn the_ruleset_admits_by_rule_only_what_the_profile_names() {
        let r = ruleset(Profile::EspOnly);
        assert!(r.contains("meta l4proto esp counter name \"in_esp_rule\" accept"), "{r}");
        assert!(!r.contains("in_ike500_rule") && !r.contains("in_ike4500_rule"), "{r}");
        let rule = r.find("in_esp_rule\" accept").unwrap();
        let reply = r.find("udp dport 500 counter name \"in_ike500_reply\"").unwrap();
        let drop = r.find("udp dport 500 counter name \"in_ike500_drop\" drop").unwrap();
        assert!(rule < reply && reply < drop, "{r}");
        assert!(r.contains("policy drop;") && r.contains("iifname != \"wan0\" accept"), "{r}");
        let all = ruleset(Profile::All);
        for k in ["ike500", "ike4500", "esp"] {
            assert!(all.contains(&format!("in_{k}_rule\" accept")), "{all}");
        }
        let ike = ruleset(Profile::Ike);
        assert!(ike.contains("in_ike4500_rule") && !ike.contains("in_esp_rule"), "{ike}");
    }

    #[test]
    fn counters_are_read_from_nft_json() {
        let j = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"counter": {"family": "inet", "name": "in_ike500_reply", "table": "ikeda_sg", "handle": 3, "packets": 4, "bytes": 900}},
            {"counter": {"family": "inet", "name": "in_ike500_drop", "table": "ikeda_sg", "handle": 4, "packets": 1, "bytes": 300}},
            {"counter": {"family": "inet", "name": "in_esp_rule", "table": "ikeda_sg", "handle": 2, "packets": 7, "bytes": 700}}]}"#;
        let c = parse_counters(j).unwrap();
        assert_eq!(c[0], ("IKE (UDP 500)", 0, 4, 1));
        assert_eq!(c[2], ("ESP (IP proto 50)", 7, 0, 0));
        let st = FirewallState { profiles: [Profile::EspOnly; 2], udp_timeout: 30, udp_stream_timeout: 180 };
        let t = counters_table("gw2", Profile::EspOnly, &st, &c);
        assert!(t.contains("no rule admits IKE (UDP 500): it passed only as a reply to gw2's own outbound flow"), "{t}");
        assert!(parse_counters("not json").is_err());
    }
}
