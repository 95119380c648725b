//! `nft -j list ruleset` (libnftables JSON, `man libnftables-json`) for
//! `ikeda audit` (issue 13).
//!
//! Base chains on the `input` and `prerouting` hooks decide for packets
//! from the peer, `output` and `postrouting` for packets to it, in priority
//! order: an accept ends one base chain and the packet goes on to the next,
//! a drop or reject ends it all, a chain run to its end applies its policy.
//! Tables of family `ip` see only IPv4, `ip6` only IPv6, `inet` both;
//! `netdev` ingress chains see inbound packets before conntrack.
//!
//! Pure logic, no I/O. A match this parser does not understand is kept with
//! its rule and, when evaluation reaches that rule, makes the verdict
//! `Unknown` naming table, chain and rule handle.

use super::flow::{Cidr, Dir, Flow, Verdict, MAX_BYTES, MAX_RULES, PROTO_ESP, PROTO_UDP};
use serde_json::Value;

/// Jumps deeper than this (or a loop) give `Unknown`, never a stack overflow.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone)]
struct Chain {
    family: String,
    table: String,
    name: String,
    /// (hook, priority, policy accepts) for a base chain.
    base: Option<(String, i64, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
}

#[derive(Debug, Clone)]
enum Cond {
    /// The packet's IP family (a match on `ip ...` or `ip6 ...`).
    V6(bool),
    Proto(bool, Vec<u8>),
    /// A match on the source (`src`) or destination address.
    Addr {
        src: bool,
        eq: bool,
        set: Vec<Cidr>,
    },
    Port {
        eq: bool,
        set: Vec<(u16, u16)>,
    },
    /// ct state: which of established/related, new the set holds.
    State {
        eq: bool,
        established: bool,
        new: bool,
    },
    /// An interface match the peer's packets fail (`lo`, another than --wan).
    OtherIface,
}

#[derive(Debug, Clone)]
struct Rule {
    family: String,
    table: String,
    chain: String,
    handle: i64,
    conds: Vec<Cond>,
    target: Option<Target>,
    unknown: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Ruleset {
    chains: Vec<Chain>,
    rules: Vec<Rule>,
    /// "table inet ikeda_sg chain input" for the fix lines: the first base
    /// chain on the input hook.
    pub input_chain: Option<(String, String, String)>,
    pub output_chain: Option<(String, String, String)>,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn proto_num(v: &Value) -> Option<u8> {
    match v {
        Value::String(p) => match p.as_str() {
            "udp" => Some(PROTO_UDP),
            "esp" => Some(PROTO_ESP),
            "tcp" => Some(6),
            "icmp" => Some(1),
            "ipv6-icmp" | "icmpv6" => Some(58),
            "ah" => Some(51),
            "gre" => Some(47),
            "sctp" => Some(132),
            _ => None,
        },
        Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        _ => None,
    }
}

/// The elements of a match's right side: one value, an anonymous set, or
/// (for flags) a list.
fn elements(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) if o.contains_key("set") => match &o["set"] {
            Value::Array(a) => a.iter().collect(),
            x => vec![x],
        },
        x => vec![x],
    }
}

fn port_range(v: &Value) -> Option<(u16, u16)> {
    let p = |x: &Value| x.as_u64().and_then(|n| u16::try_from(n).ok());
    match v.get("range").and_then(Value::as_array) {
        Some(r) if r.len() == 2 => Some((p(&r[0])?, p(&r[1])?)).filter(|(a, b)| a <= b),
        Some(_) => None,
        None => p(v).map(|n| (n, n)),
    }
}

fn cidr(v: &Value) -> Option<Cidr> {
    if let Some(p) = v.get("prefix") {
        let len = p.get("len")?.as_u64()?;
        return Cidr::parse(&format!("{}/{len}", p.get("addr")?.as_str()?));
    }
    Cidr::parse(v.as_str()?)
}

/// One `match` expression as a condition, or why it is not understood.
fn cond(m: &Value, wan: Option<&str>, conds: &mut Vec<Cond>) -> Result<(), String> {
    let op = s(m, "op");
    let eq = match op {
        "==" | "in" => true,
        "!=" => false,
        o => return Err(format!("operator `{o}`")),
    };
    let left = m.get("left").ok_or("a match without a left side")?;
    let right = m.get("right").ok_or("a match without a right side")?;
    if right.as_str().is_some_and(|r| r.starts_with('@')) {
        return Err(format!("named set {}", right.as_str().unwrap_or("")));
    }
    let els = elements(right);
    if let Some(meta) = left.get("meta") {
        return match s(meta, "key") {
            "l4proto" => {
                let set = els
                    .iter()
                    .map(|e| proto_num(e))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or("a protocol not understood")?;
                conds.push(Cond::Proto(eq, set));
                Ok(())
            }
            "nfproto" => {
                let fams: Vec<&str> = els.iter().filter_map(|e| e.as_str()).collect();
                match (fams.as_slice(), eq) {
                    (["ipv4"], e) => conds.push(Cond::V6(!e)),
                    (["ipv6"], e) => conds.push(Cond::V6(e)),
                    _ => return Err("meta nfproto".into()),
                }
                Ok(())
            }
            "iifname" | "oifname" => {
                let names: Vec<&str> = els.iter().filter_map(|e| e.as_str()).collect();
                let hit = |w: &str| {
                    names
                        .iter()
                        .any(|n| n.strip_suffix('*').map_or(*n == w, |p| w.starts_with(p)))
                };
                let ours = match wan {
                    _ if names.iter().all(|n| *n == "lo") => false,
                    Some(w) => hit(w),
                    None => return Err(format!("interface match {names:?} (say which one is the WAN: --wan)")),
                };
                if ours != eq {
                    conds.push(Cond::OtherIface);
                }
                Ok(())
            }
            k => Err(format!("meta {k}")),
        };
    }
    if let Some(ct) = left.get("ct") {
        if s(ct, "key") != "state" || ct.get("dir").is_some() {
            return Err(format!("ct {}", s(ct, "key")));
        }
        let mut st = Cond::State {
            eq,
            established: false,
            new: false,
        };
        if let Cond::State { established, new, .. } = &mut st {
            for e in &els {
                match e.as_str() {
                    Some("established" | "related") => *established = true,
                    Some("new") => *new = true,
                    Some("invalid" | "untracked") => {}
                    _ => return Err("a ct state not understood".into()),
                }
            }
        }
        conds.push(st);
        return Ok(());
    }
    if let Some(p) = left.get("payload") {
        let (proto, field) = (s(p, "protocol"), s(p, "field"));
        return match (proto, field) {
            ("ip" | "ip6", "saddr" | "daddr") => {
                conds.push(Cond::V6(proto == "ip6"));
                let set = els
                    .iter()
                    .map(|e| cidr(e))
                    .collect::<Option<Vec<Cidr>>>()
                    .ok_or("an address not understood")?;
                conds.push(Cond::Addr {
                    src: field == "saddr",
                    eq,
                    set,
                });
                Ok(())
            }
            ("ip", "protocol") | ("ip6", "nexthdr") => {
                conds.push(Cond::V6(proto == "ip6"));
                let set = els
                    .iter()
                    .map(|e| proto_num(e))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or("a protocol not understood")?;
                conds.push(Cond::Proto(eq, set));
                Ok(())
            }
            ("udp" | "tcp" | "th", "sport" | "dport") => {
                if proto != "th" {
                    // `udp dport 500` implies the protocol.
                    conds.push(Cond::Proto(true, vec![if proto == "udp" { PROTO_UDP } else { 6 }]));
                }
                let set = els
                    .iter()
                    .map(|e| port_range(e))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("a port not understood")?;
                conds.push(Cond::Port { eq, set });
                Ok(())
            }
            (p, f) => Err(format!("{p} {f}")),
        };
    }
    Err("a match not understood".into())
}

fn rule(r: &Value, wan: Option<&str>) -> Rule {
    let mut rule = Rule {
        family: s(r, "family").into(),
        table: s(r, "table").into(),
        chain: s(r, "chain").into(),
        handle: r.get("handle").and_then(Value::as_i64).unwrap_or(-1),
        conds: Vec::new(),
        target: None,
        unknown: None,
    };
    let empty = Vec::new();
    for e in r.get("expr").and_then(Value::as_array).unwrap_or(&empty) {
        let Some((k, v)) = e.as_object().and_then(|o| o.iter().next()) else {
            rule.unknown.get_or_insert("an expression that is not an object".into());
            continue;
        };
        let t = match k.as_str() {
            "match" => {
                if let Err(why) = cond(v, wan, &mut rule.conds) {
                    rule.unknown.get_or_insert(why);
                }
                None
            }
            "counter" | "log" | "comment" => None,
            "accept" => Some(Target::Accept),
            "drop" | "reject" => Some(Target::Drop),
            "return" => Some(Target::Return),
            "jump" => Some(Target::Jump(s(v, "target").into())),
            "goto" => Some(Target::Goto(s(v, "target").into())),
            other => {
                rule.unknown.get_or_insert(format!("statement `{other}`"));
                None
            }
        };
        if t.is_some() && rule.target.is_none() {
            rule.target = t;
        }
    }
    rule
}

impl Cond {
    /// Whether a packet of `f` (new or part of an established connection)
    /// matches.
    fn holds(&self, f: &Flow, established: bool) -> bool {
        match self {
            Cond::V6(v6) => f.peer.is_ipv6() == *v6,
            Cond::Proto(eq, set) => set.contains(&f.proto) == *eq,
            Cond::Addr { src, eq, set } => {
                // The peer is the source inbound, the destination outbound;
                // the other end is this gateway's own address.
                let a = if *src == (f.dir == Dir::In) { f.peer } else { f.local };
                set.iter().any(|c| c.contains(a)) == *eq
            }
            Cond::Port { eq, set } => {
                f.proto == PROTO_UDP && set.iter().any(|(a, b)| (*a..=*b).contains(&f.port)) == *eq
            }
            Cond::State {
                eq,
                established: e,
                new,
            } => (if established { *e } else { *new }) == *eq,
            Cond::OtherIface => false,
        }
    }
}

impl Ruleset {
    /// `wan`: the interface the peer's packets use, for iifname/oifname
    /// matches (without it such a match is unknown, except `lo`).
    pub fn parse(text: &str, wan: Option<&str>) -> Result<Ruleset, String> {
        if text.len() > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let items = v
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or("no nftables array (not `nft -j list ruleset` output)")?;
        if items.len() > MAX_RULES {
            return Err(format!("more than {MAX_RULES} objects"));
        }
        let mut rs = Ruleset {
            chains: Vec::new(),
            rules: Vec::new(),
            input_chain: None,
            output_chain: None,
        };
        for it in items {
            if let Some(c) = it.get("chain") {
                let base = c.get("hook").and_then(Value::as_str).map(|h| {
                    let prio = c.get("prio").and_then(Value::as_i64).unwrap_or(0);
                    (h.to_string(), prio, s(c, "policy") != "drop")
                });
                let ch = Chain {
                    family: s(c, "family").into(),
                    table: s(c, "table").into(),
                    name: s(c, "name").into(),
                    base,
                };
                let id = (ch.family.clone(), ch.table.clone(), ch.name.clone());
                match ch.base.as_ref().map(|b| b.0.as_str()) {
                    Some("input") if rs.input_chain.is_none() => rs.input_chain = Some(id),
                    Some("output") if rs.output_chain.is_none() => rs.output_chain = Some(id),
                    _ => {}
                }
                rs.chains.push(ch);
            } else if let Some(r) = it.get("rule") {
                rs.rules.push(rule(r, wan));
            }
        }
        Ok(rs)
    }

    fn walk(&self, ch: &Chain, f: &Flow, est: bool, depth: usize) -> Result<Option<bool>, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "chain {}: jumps nest deeper than {MAX_DEPTH} (a loop?)",
                ch.name
            ));
        }
        let rules = self
            .rules
            .iter()
            .filter(|r| r.family == ch.family && r.table == ch.table && r.chain == ch.name);
        for r in rules {
            // An unknown match decides nothing: report it if the rule's
            // known conditions do not already rule the packet out.
            if !r.conds.iter().all(|c| c.holds(f, est)) {
                continue;
            }
            let at = || {
                format!(
                    "table {} {} chain {} rule handle {}",
                    r.family, r.table, r.chain, r.handle
                )
            };
            if let Some(why) = &r.unknown {
                return Err(format!("{}: {why}", at()));
            }
            match &r.target {
                Some(Target::Accept) => return Ok(Some(true)),
                Some(Target::Drop) => return Ok(Some(false)),
                Some(Target::Return) => return Ok(None),
                Some(Target::Jump(c) | Target::Goto(c)) => {
                    let sub = self
                        .chains
                        .iter()
                        .find(|x| x.family == ch.family && x.table == ch.table && &x.name == c)
                        .ok_or_else(|| format!("{}: jump to a chain not in the file: {c}", at()))?;
                    let v = self.walk(sub, f, est, depth + 1)?;
                    if v.is_some() || matches!(r.target, Some(Target::Goto(_))) {
                        return Ok(v);
                    }
                }
                None => {}
            }
        }
        Ok(None)
    }

    fn decide(&self, f: &Flow, est: bool) -> Result<bool, String> {
        let hooks: &[&str] = match f.dir {
            Dir::In => &["ingress", "prerouting", "input"],
            Dir::Out => &["output", "postrouting"],
        };
        let mut base: Vec<&Chain> = self
            .chains
            .iter()
            .filter(|c| c.base.as_ref().is_some_and(|b| hooks.contains(&b.0.as_str())))
            .filter(|c| match c.family.as_str() {
                "inet" => true,
                "ip" => f.peer.is_ipv4(),
                "ip6" => f.peer.is_ipv6(),
                "netdev" => f.dir == Dir::In,
                _ => false,
            })
            .collect();
        base.sort_by_key(|c| {
            let b = c.base.as_ref().map(|b| (hooks.iter().position(|h| *h == b.0), b.1));
            b.unwrap_or((None, 0))
        });
        for c in base {
            let pre_conntrack = c.family == "netdev";
            let v = self.walk(c, f, est, 0).map_err(|e| {
                if pre_conntrack {
                    format!("{e} (a netdev chain sees packets before conntrack)")
                } else {
                    e
                }
            })?;
            let accept = v.unwrap_or(c.base.as_ref().is_none_or(|b| b.2));
            if !accept {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The verdict for one flow: first as a new connection, then as a
    /// reply within an established one.
    pub fn verdict(&self, f: &Flow) -> Verdict {
        match self.decide(f, false) {
            Err(e) => Verdict::Unknown(e),
            Ok(true) => Verdict::Explicit,
            Ok(false) => match self.decide(f, true) {
                Err(e) => Verdict::Unknown(e),
                Ok(true) => Verdict::ReplyOnly,
                Ok(false) => Verdict::Denied,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(dir: Dir, proto: u8, port: u16) -> Flow {
        Flow {
            dir,
            proto,
            port,
            peer: "198.51.100.2".parse().unwrap(),
            local: "192.0.2.1".parse().unwrap(),
        }
    }

    /// Printed by nft 1.0.6 (`nft -j list ruleset`) in a namespace, for a
    /// table as the lab's `inet ikeda_sg`: reply-only inbound, ESP from the
    /// peer's /24, UDP 500 and 4500 only from 10.0.0.0/8 (not the peer).
    pub const REAL: &str = include_str!("../../tests/audit_samples/nft_real.json");

    #[test]
    fn real_sample() {
        let rs = Ruleset::parse(REAL, None).unwrap();
        assert_eq!(rs.input_chain, Some(("inet".into(), "ikeda_sg".into(), "input".into())));
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_ESP, 0)), Verdict::Explicit);
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::ReplyOnly);
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::ReplyOnly);
        assert_eq!(rs.verdict(&flow(Dir::Out, PROTO_UDP, 500)), Verdict::Explicit);
        // A rule naming another local address does not admit ours.
        let t = REAL.replace(
            r#"{"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}"#,
            r#"{"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.0.2.1""#,
        );
        assert_ne!(t, REAL);
        assert_eq!(
            Ruleset::parse(&t, None)
                .unwrap()
                .verdict(&flow(Dir::In, PROTO_UDP, 500)),
            Verdict::Explicit
        );
        let t = t.replace(r#""right": "192.0.2.1""#, r#""right": "192.0.2.99""#);
        assert_eq!(
            Ruleset::parse(&t, None)
                .unwrap()
                .verdict(&flow(Dir::In, PROTO_UDP, 500)),
            Verdict::ReplyOnly
        );
        let inside = Flow {
            peer: "10.1.2.3".parse().unwrap(),
            ..flow(Dir::In, PROTO_UDP, 4500)
        };
        assert_eq!(rs.verdict(&inside), Verdict::Explicit);
    }

    #[test]
    fn explicit_denied_and_unknown() {
        let t = r#"{"nftables": [{"table": {"family": "ip", "name": "f", "handle": 1}},
{"chain": {"family": "ip", "table": "f", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
{"chain": {"family": "ip", "table": "f", "name": "out", "handle": 2, "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}},
{"chain": {"family": "ip", "table": "f", "name": "ike", "handle": 3}},
{"rule": {"family": "ip", "table": "f", "chain": "in", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"set": [500, {"range": [4000, 4600]}]}}}, {"goto": {"target": "ike"}}]}},
{"rule": {"family": "ip", "table": "f", "chain": "ike", "handle": 5, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "203.0.113.1"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"rule": {"family": "ip", "table": "f", "chain": "in", "handle": 6, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}, {"accept": null}]}},
{"rule": {"family": "ip", "table": "f", "chain": "out", "handle": 7, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "wan0"}}, {"accept": null}]}}]}"#;
        let rs = Ruleset::parse(t, Some("wan0")).unwrap();
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::Explicit);
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::Explicit);
        // ESP reaches the rule with `meta mark`: unknown, naming it.
        match rs.verdict(&flow(Dir::In, PROTO_ESP, 0)) {
            Verdict::Unknown(w) => assert!(w.contains("handle 6") && w.contains("meta mark"), "{w}"),
            v => panic!("{v:?}"),
        }
        assert_eq!(rs.verdict(&flow(Dir::Out, PROTO_ESP, 0)), Verdict::Explicit);
        // Another WAN: the oifname rule does not match, the policy drops.
        let rs = Ruleset::parse(t, Some("eth9")).unwrap();
        assert_eq!(rs.verdict(&flow(Dir::Out, PROTO_ESP, 0)), Verdict::Denied);
        // No --wan: the interface match is unknown, and says how to settle it.
        let rs = Ruleset::parse(t, None).unwrap();
        assert!(matches!(rs.verdict(&flow(Dir::Out, PROTO_UDP, 500)), Verdict::Unknown(w) if w.contains("--wan")));
    }

    #[test]
    fn malformed_and_loops() {
        assert!(Ruleset::parse("{\"SecurityGroups\": []}", None).is_err());
        assert!(Ruleset::parse("{\"nftables\": 3}", None).is_err());
        assert!(Ruleset::parse("*filter", None).is_err());
        let t = r#"{"nftables": [{"chain": {"family": "inet", "table": "t", "name": "in", "hook": "input", "prio": 0, "policy": "drop"}},
{"chain": {"family": "inet", "table": "t", "name": "a"}},
{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 1, "expr": [{"jump": {"target": "a"}}]}},
{"rule": {"family": "inet", "table": "t", "chain": "a", "handle": 2, "expr": [{"jump": {"target": "a"}}]}}]}"#;
        let rs = Ruleset::parse(t, None).unwrap();
        assert!(matches!(rs.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::Unknown(w) if w.contains("deeper")));
        // No filter at all: everything passes (the kernel's default).
        let rs = Ruleset::parse(r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}]}"#, None).unwrap();
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_ESP, 0)), Verdict::Explicit);
    }
}
