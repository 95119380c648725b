//! `iptables-save` text (filter table) for `ikeda audit` (issue 13).
//!
//! Pure logic, no I/O: the caller reads the file (bounded) and hands the
//! text here. Only the `*filter` table matters for admission; INPUT is
//! evaluated for flows from the peer, OUTPUT for flows to it. A match the
//! parser does not understand is kept with its rule and, when evaluation
//! reaches that rule, makes the verdict `Unknown` naming the rule: never a
//! silent accept or drop.

use super::flow::{Cidr, Dir, Flow, Verdict, MAX_BYTES, MAX_RULES, PROTO_ESP, PROTO_UDP};

/// Jumps deeper than this (or a loop) give `Unknown`, never a stack overflow.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Accept,
    Drop,
    Return,
    Jump(String),
    /// A target that does not decide (LOG, counters...): evaluation goes on.
    NonTerminal,
}

#[derive(Debug, Clone)]
struct Rule {
    line: usize,
    chain: String,
    proto: Option<u8>,
    src: Option<Cidr>,
    dst: Option<Cidr>,
    sport: Option<(u16, u16)>,
    dport: Option<(u16, u16)>,
    /// Some(true): matches only ESTABLISHED/RELATED packets; Some(false):
    /// matches only NEW ones.
    ct_established: Option<bool>,
    /// An interface match (`-i`/`-o`) that the peer's packets fail.
    other_iface: bool,
    target: Option<Target>,
    /// Matches we cannot evaluate (with the reason).
    unknown: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Ruleset {
    /// (chain, policy accepts?)
    policies: Vec<(String, Option<bool>)>,
    rules: Vec<Rule>,
}

fn parse_ports(s: &str) -> Option<(u16, u16)> {
    match s.split_once(':') {
        Some((a, b)) => {
            let a = if a.is_empty() { 0 } else { a.parse().ok()? };
            let b = if b.is_empty() { u16::MAX } else { b.parse().ok()? };
            (a <= b).then_some((a, b))
        }
        None => s.parse().ok().map(|p| (p, p)),
    }
}

fn parse_proto(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "udp" => Some(PROTO_UDP),
        "esp" => Some(PROTO_ESP),
        "tcp" => Some(6),
        "icmp" => Some(1),
        n => n.parse().ok(),
    }
}

/// Parses the states of `--ctstate`/`--state`: Some(true) when only
/// ESTABLISHED/RELATED, Some(false) when only NEW, None when mixed (then
/// the caller records it as unknown).
fn parse_states(s: &str) -> Option<bool> {
    let mut est = false;
    let mut new = false;
    for st in s.split(',') {
        match st {
            "ESTABLISHED" | "RELATED" => est = true,
            "NEW" => new = true,
            _ => return None,
        }
    }
    match (est, new) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

impl Ruleset {
    /// Parses `iptables-save` output. Errors only on size limits or when
    /// there is no filter table at all; unknown matches are kept per rule.
    /// `wan` names the interface the peer's packets use, for
    /// `-i`/`-o` matches (without it such a match is unknown, except `lo`,
    /// which the peer's packets never use).
    pub fn parse(text: &str, wan: Option<&str>) -> Result<Ruleset, String> {
        if text.len() > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        let mut in_filter = false;
        let mut seen_filter = false;
        let mut rs = Ruleset {
            policies: Vec::new(),
            rules: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            let n = i + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(t) = line.strip_prefix('*') {
                in_filter = t == "filter";
                seen_filter |= in_filter;
                continue;
            }
            if line == "COMMIT" {
                in_filter = false;
                continue;
            }
            if !in_filter {
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                let mut w = c.split_whitespace();
                let name = w.next().unwrap_or("").to_string();
                let pol = match w.next() {
                    Some("ACCEPT") => Some(true),
                    Some("DROP") => Some(false),
                    _ => None,
                };
                if rs.policies.len() >= MAX_RULES {
                    return Err(format!("more than {MAX_RULES} chains"));
                }
                rs.policies.push((name, pol));
                continue;
            }
            if let Some(r) = line.strip_prefix("-A ") {
                if rs.rules.len() >= MAX_RULES {
                    return Err(format!("more than {MAX_RULES} rules"));
                }
                rs.rules.push(parse_rule(n, r, wan));
                continue;
            }
            return Err(format!("line {n}: not iptables-save syntax"));
        }
        if !seen_filter {
            return Err("no *filter table".into());
        }
        Ok(rs)
    }

    fn policy(&self, chain: &str) -> Option<Option<bool>> {
        self.policies.iter().find(|(c, _)| c == chain).map(|(_, p)| *p)
    }

    /// Walks `chain` for one packet; Ok(Some(accept)) when decided,
    /// Ok(None) when the chain ran out (caller applies policy / returns).
    fn walk(&self, chain: &str, f: &Flow, established: bool, depth: usize) -> Result<Option<bool>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("chain {chain}: jumps nest deeper than {MAX_DEPTH} (a loop?)"));
        }
        for r in self.rules.iter().filter(|r| r.chain == chain) {
            if !matches(r, f, established) {
                continue;
            }
            if let Some(why) = r.unknown.first() {
                return Err(format!("line {} (-A {}): {why}", r.line, r.chain));
            }
            match &r.target {
                Some(Target::Accept) => return Ok(Some(true)),
                Some(Target::Drop) => return Ok(Some(false)),
                Some(Target::Return) => return Ok(None),
                Some(Target::Jump(c)) => {
                    if self.policy(c).is_none() {
                        return Err(format!("line {}: jump to undeclared chain {c}", r.line));
                    }
                    if let Some(v) = self.walk(c, f, established, depth + 1)? {
                        return Ok(Some(v));
                    }
                }
                Some(Target::NonTerminal) | None => {}
            }
        }
        Ok(None)
    }

    fn decide(&self, f: &Flow, established: bool) -> Result<bool, String> {
        let chain = match f.dir {
            Dir::In => "INPUT",
            Dir::Out => "OUTPUT",
        };
        if let Some(v) = self.walk(chain, f, established, 0)? {
            return Ok(v);
        }
        match self.policy(chain) {
            // A built-in chain not listed keeps the kernel default, ACCEPT.
            None => Ok(true),
            Some(Some(p)) => Ok(p),
            Some(None) => Err(format!("chain {chain}: unknown policy")),
        }
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

fn matches(r: &Rule, f: &Flow, established: bool) -> bool {
    if r.other_iface {
        return false;
    }
    if let Some(p) = r.proto {
        if p != f.proto {
            return false;
        }
    }
    let (src, dst) = match f.dir {
        Dir::In => (f.peer, f.local),
        Dir::Out => (f.local, f.peer),
    };
    if !r.src.is_none_or(|c| c.contains(src)) || !r.dst.is_none_or(|c| c.contains(dst)) {
        return false;
    }
    if f.proto == PROTO_UDP {
        for p in [r.sport, r.dport].into_iter().flatten() {
            if f.port < p.0 || f.port > p.1 {
                return false;
            }
        }
    } else if r.sport.is_some() || r.dport.is_some() {
        return false;
    }
    match r.ct_established {
        Some(e) => e == established,
        None => true,
    }
}

fn parse_rule(line: usize, r: &str, wan: Option<&str>) -> Rule {
    let mut w = r.split_whitespace();
    let chain = w.next().unwrap_or("").to_string();
    let mut rule = Rule {
        line,
        chain,
        proto: None,
        src: None,
        dst: None,
        sport: None,
        dport: None,
        ct_established: None,
        other_iface: false,
        target: None,
        unknown: Vec::new(),
    };
    let args: Vec<&str> = w.collect();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        let v = args.get(i + 1).copied();
        let mut take = 2;
        match (a, v) {
            ("!", _) => {
                rule.unknown.push(format!("negated match `! {}`", v.unwrap_or("")));
                take = 1;
            }
            ("-p" | "--protocol", Some(v)) => match parse_proto(v) {
                Some(p) => rule.proto = Some(p),
                None => rule.unknown.push(format!("protocol `{v}`")),
            },
            ("-s" | "--source", Some(v)) => match Cidr::parse(v) {
                Some(c) => rule.src = Some(c),
                None => rule.unknown.push(format!("source `{v}`")),
            },
            ("-d" | "--destination", Some(v)) => match Cidr::parse(v) {
                Some(c) => rule.dst = Some(c),
                None => rule.unknown.push(format!("destination `{v}`")),
            },
            ("--dport" | "--destination-port", Some(v)) => match parse_ports(v) {
                Some(p) => rule.dport = Some(p),
                None => rule.unknown.push(format!("port `{v}`")),
            },
            ("--sport" | "--source-port", Some(v)) => match parse_ports(v) {
                Some(p) => rule.sport = Some(p),
                None => rule.unknown.push(format!("port `{v}`")),
            },
            ("-i" | "--in-interface" | "-o" | "--out-interface", Some(v)) => match wan {
                _ if v == "lo" => rule.other_iface = true,
                Some(w) => rule.other_iface |= v.strip_suffix('+').map_or(v != w, |p| !w.starts_with(p)),
                None => rule
                    .unknown
                    .push(format!("interface `{v}` (say which one is the WAN: --wan)")),
            },
            ("-m", Some("udp" | "esp" | "conntrack" | "state" | "comment")) => {}
            ("--comment", Some(_)) => {}
            ("--ctstate" | "--state", Some(v)) => match parse_states(v) {
                Some(e) => rule.ct_established = Some(e),
                None => rule.unknown.push(format!("connection state `{v}`")),
            },
            ("-j" | "-g", Some(v)) => {
                rule.target = Some(match v {
                    "ACCEPT" => Target::Accept,
                    "DROP" | "REJECT" => Target::Drop,
                    "RETURN" => Target::Return,
                    "LOG" | "NFLOG" => Target::NonTerminal,
                    c => Target::Jump(c.to_string()),
                });
                // Target options (--reject-with, --log-prefix ...) follow.
                i += 2;
                while i < args.len() && args[i].starts_with("--") {
                    i += 2;
                }
                continue;
            }
            _ => {
                rule.unknown.push(format!("match `{a}` not understood"));
                take = 1;
            }
        }
        i += take;
    }
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{IpAddr, Ipv4Addr};
    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));

    fn flow(dir: Dir, proto: u8, port: u16) -> Flow {
        Flow {
            dir,
            proto,
            port,
            peer: PEER,
            local: "192.0.2.1".parse().unwrap(),
        }
    }

    const REPLY_ONLY: &str = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A INPUT -p esp -j ACCEPT\nCOMMIT\n";

    #[test]
    fn reply_only_and_esp_only() {
        let rs = Ruleset::parse(REPLY_ONLY, None).unwrap();
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::ReplyOnly);
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::ReplyOnly);
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_ESP, 0)), Verdict::Explicit);
        assert_eq!(rs.verdict(&flow(Dir::Out, PROTO_UDP, 500)), Verdict::Explicit);
    }

    #[test]
    fn only_500_and_user_chain() {
        let t = "*filter\n:INPUT DROP [0:0]\n:OUTPUT DROP [0:0]\n:IPSEC - [0:0]\n\
-A INPUT -j IPSEC\n-A IPSEC -s 198.51.100.0/24 -p udp -m udp --dport 500 -j ACCEPT\n-A IPSEC -j RETURN\n\
-A OUTPUT -d 198.51.100.2/32 -p udp -m udp --sport 500 --dport 500 -j ACCEPT\nCOMMIT\n";
        let rs = Ruleset::parse(t, None).unwrap();
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::Explicit);
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::Denied);
        assert_eq!(rs.verdict(&flow(Dir::Out, PROTO_UDP, 500)), Verdict::Explicit);
        assert_eq!(rs.verdict(&flow(Dir::Out, PROTO_ESP, 0)), Verdict::Denied);
        // Another peer does not match the source restriction.
        let other = Flow {
            peer: "203.0.113.9".parse().unwrap(),
            ..flow(Dir::In, PROTO_UDP, 500)
        };
        assert_eq!(rs.verdict(&other), Verdict::Denied);
    }

    #[test]
    fn rules_naming_our_address() {
        // Accepting 500 to another local address does not admit ours.
        let t = "*filter\n:INPUT DROP [0:0]\n-A INPUT -d 10.9.9.9/32 -p udp --dport 500 -j ACCEPT\n\
-A INPUT -d 192.0.2.1 -p esp -j ACCEPT\n-A INPUT -i lo -j ACCEPT\n-A INPUT -i wan0 -p udp --dport 4500 -j ACCEPT\nCOMMIT\n";
        let rs = Ruleset::parse(t, Some("wan0")).unwrap();
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::Denied);
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_ESP, 0)), Verdict::Explicit);
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::Explicit);
        let rs = Ruleset::parse(t, Some("eth1")).unwrap();
        assert_eq!(rs.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::Denied);
        let rs = Ruleset::parse(t, None).unwrap();
        assert!(matches!(rs.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::Unknown(w) if w.contains("--wan")));
    }

    #[test]
    fn unknown_match_is_reported_not_guessed() {
        let t = "*filter\n:INPUT DROP [0:0]\n-A INPUT -m set --match-set peers src -j ACCEPT\nCOMMIT\n";
        let rs = Ruleset::parse(t, None).unwrap();
        match rs.verdict(&flow(Dir::In, PROTO_UDP, 500)) {
            Verdict::Unknown(why) => assert!(why.contains("line 3") && why.contains("-m"), "{why}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn malformed_and_bounded() {
        assert!(Ruleset::parse("{\"SecurityGroups\": []}", None).is_err());
        assert!(Ruleset::parse("*filter\nbogus\n", None).is_err());
        assert!(Ruleset::parse(&"x".repeat(MAX_BYTES + 1), None).is_err());
        let mut t = String::from("*filter\n:INPUT ACCEPT [0:0]\n");
        for _ in 0..=MAX_RULES {
            t.push_str("-A INPUT -j ACCEPT\n");
        }
        assert!(Ruleset::parse(&t, None).is_err());
        // A jump loop ends as unknown.
        let t = "*filter\n:INPUT DROP [0:0]\n:A - [0:0]\n-A INPUT -j A\n-A A -j A\nCOMMIT\n";
        let rs = Ruleset::parse(t, None).unwrap();
        assert!(matches!(
            rs.verdict(&flow(Dir::In, PROTO_UDP, 500)),
            Verdict::Unknown(_)
        ));
    }
}
