//! AWS network ACLs (`aws ec2 describe-network-acls` JSON) for `ikeda
//! audit` (issue 13).
//!
//! A network ACL is stateless: every packet, reply or not, is checked
//! against the entries of its direction (`Egress` false: inbound) in
//! ascending `RuleNumber`; the first match decides, and a packet no entry
//! matches is denied (the `*` entry, number 32767). So its verdicts are
//! only admitted, not admitted or unknown, never reply-only. Every ACL in
//! the file is taken as on the path (the gateway's subnet, and any other
//! the packets cross): a flow must pass each.

use super::flow::{Cidr, Dir, Flow, Verdict, MAX_BYTES, MAX_RULES, PROTO_UDP};
use serde_json::Value;

#[derive(Debug, Clone)]
struct Entry {
    number: i64,
    egress: bool,
    /// None: every protocol ("-1").
    proto: Option<u8>,
    ports: Option<(u16, u16)>,
    cidr: Option<Cidr>,
    allow: bool,
    /// Why this entry could not be read (then reaching it is unknown).
    problem: Option<String>,
}

#[derive(Debug, Clone)]
struct Acl {
    id: String,
    /// Sorted by rule number.
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub struct NetworkAcls {
    acls: Vec<Acl>,
}

fn entry(e: &Value) -> Entry {
    let number = e.get("RuleNumber").and_then(Value::as_i64).unwrap_or(-1);
    let egress = e.get("Egress").and_then(Value::as_bool).unwrap_or(false);
    let mut r = Entry {
        number,
        egress,
        proto: None,
        ports: None,
        cidr: None,
        allow: false,
        problem: None,
    };
    let mut problems = Vec::new();
    if !(1..=32767).contains(&number) {
        problems.push("no RuleNumber in 1..32767".to_string());
    }
    if e.get("Egress").and_then(Value::as_bool).is_none() {
        problems.push("no Egress true/false".into());
    }
    match e.get("Protocol").and_then(Value::as_str) {
        Some("-1") => {}
        Some(p) => match p.parse::<u8>() {
            Ok(n) => r.proto = Some(n),
            Err(_) => problems.push(format!("protocol `{p}`")),
        },
        None => problems.push("no Protocol".into()),
    }
    match e.get("RuleAction").and_then(Value::as_str) {
        Some("allow") => r.allow = true,
        Some("deny") => {}
        _ => problems.push("RuleAction is not allow or deny".into()),
    }
    let c = e
        .get("CidrBlock")
        .or_else(|| e.get("Ipv6CidrBlock"))
        .and_then(Value::as_str);
    match c.and_then(Cidr::parse) {
        Some(c) => r.cidr = Some(c),
        None => problems.push("no valid CidrBlock/Ipv6CidrBlock".into()),
    }
    if r.proto == Some(PROTO_UDP) || r.proto == Some(6) {
        if let Some(pr) = e.get("PortRange") {
            let port = |k: &str| pr.get(k).and_then(Value::as_i64).filter(|p| (0..=65535).contains(p));
            match (port("From"), port("To")) {
                (Some(a), Some(b)) if a <= b => r.ports = Some((a as u16, b as u16)),
                _ => problems.push("PortRange is not a port range".into()),
            }
        }
    }
    r.problem = (!problems.is_empty()).then(|| problems.join(", "));
    r
}

impl NetworkAcls {
    pub fn parse(text: &str) -> Result<NetworkAcls, String> {
        if text.len() > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let list = v
            .get("NetworkAcls")
            .and_then(Value::as_array)
            .ok_or("no NetworkAcls array (not describe-network-acls output)")?;
        let mut acls = Vec::new();
        let mut total = 0;
        for (i, a) in list.iter().enumerate() {
            let id = a
                .get("NetworkAclId")
                .and_then(Value::as_str)
                .map_or_else(|| format!("ACL #{}", i + 1), str::to_string);
            let entries = a
                .get("Entries")
                .and_then(Value::as_array)
                .ok_or(format!("{id}: no Entries list"))?;
            total += entries.len();
            if total > MAX_RULES {
                return Err(format!("more than {MAX_RULES} entries"));
            }
            let mut entries: Vec<Entry> = entries.iter().map(entry).collect();
            entries.sort_by_key(|e| (e.egress, e.number));
            acls.push(Acl { id, entries });
        }
        if acls.is_empty() {
            return Err("NetworkAcls is empty".into());
        }
        Ok(NetworkAcls { acls })
    }

    /// The ids, in file order (for the fix lines).
    pub fn ids(&self) -> Vec<String> {
        self.acls.iter().map(|a| a.id.clone()).collect()
    }

    pub fn verdict(&self, f: &Flow) -> Verdict {
        let egress = f.dir == Dir::Out;
        let mut v = Verdict::Explicit;
        for acl in &self.acls {
            let mut this = Verdict::Denied;
            for e in acl.entries.iter().filter(|e| e.egress == egress) {
                if let Some(why) = &e.problem {
                    this = Verdict::Unknown(format!("{} rule {}: {why}", acl.id, e.number));
                    break;
                }
                let port_ok = match e.ports {
                    Some((a, b)) => f.proto == PROTO_UDP && (a..=b).contains(&f.port),
                    None => true,
                };
                if e.proto.is_none_or(|p| p == f.proto) && port_ok && e.cidr.is_some_and(|c| c.contains(f.peer)) {
                    this = if e.allow { Verdict::Explicit } else { Verdict::Denied };
                    break;
                }
            }
            v = v.and(this);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::flow::PROTO_ESP;

    fn flow(dir: Dir, proto: u8, port: u16) -> Flow {
        Flow {
            dir,
            proto,
            port,
            peer: "198.51.100.2".parse().unwrap(),
            local: "192.0.2.1".parse().unwrap(),
        }
    }

    fn acl(entries: &str) -> String {
        format!(
            r#"{{"NetworkAcls": [{{"Associations": [], "Entries": [{entries}], "IsDefault": false, "NetworkAclId": "acl-0abc", "Tags": [], "VpcId": "vpc-1", "OwnerId": "1"}}]}}"#
        )
    }
    const DENY_ALL: &str = r#"{"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 32767},
{"CidrBlock": "0.0.0.0/0", "Egress": true, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 32767}"#;

    #[test]
    fn rule_order_decides() {
        // Rule 90 denies 4500 from the peer before rule 100 allows all UDP.
        let t = acl(&format!(
            r#"{{"CidrBlock": "0.0.0.0/0", "Egress": false, "PortRange": {{"From": 0, "To": 65535}}, "Protocol": "17", "RuleAction": "allow", "RuleNumber": 100}},
{{"CidrBlock": "198.51.100.2/32", "Egress": false, "PortRange": {{"From": 4500, "To": 4500}}, "Protocol": "17", "RuleAction": "deny", "RuleNumber": 90}},
{{"CidrBlock": "0.0.0.0/0", "Egress": true, "Protocol": "-1", "RuleAction": "allow", "RuleNumber": 100}}, {DENY_ALL}"#
        ));
        let n = NetworkAcls::parse(&t).unwrap();
        assert_eq!(n.ids(), ["acl-0abc"]);
        assert_eq!(n.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::Explicit);
        assert_eq!(n.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::Denied);
        // Stateless: ESP has no inbound entry, whatever goes out.
        assert_eq!(n.verdict(&flow(Dir::In, PROTO_ESP, 0)), Verdict::Denied);
        assert_eq!(n.verdict(&flow(Dir::Out, PROTO_ESP, 0)), Verdict::Explicit);
    }

    #[test]
    fn esp_only_and_unreadable_entries() {
        let t = acl(&format!(
            r#"{{"CidrBlock": "198.51.100.0/24", "Egress": false, "Protocol": "50", "RuleAction": "allow", "RuleNumber": 10}},
{{"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "gre", "RuleAction": "allow", "RuleNumber": 20}}, {DENY_ALL}"#
        ));
        let n = NetworkAcls::parse(&t).unwrap();
        assert_eq!(n.verdict(&flow(Dir::In, PROTO_ESP, 0)), Verdict::Explicit);
        match n.verdict(&flow(Dir::In, PROTO_UDP, 500)) {
            Verdict::Unknown(w) => assert!(w.contains("acl-0abc rule 20") && w.contains("gre"), "{w}"),
            v => panic!("{v:?}"),
        }
        assert_eq!(n.verdict(&flow(Dir::Out, PROTO_UDP, 500)), Verdict::Denied);
        assert!(NetworkAcls::parse("{\"NetworkAcls\": [{}]}").is_err());
        assert!(NetworkAcls::parse("{\"SecurityGroups\": []}").is_err());
        assert!(NetworkAcls::parse("nope").is_err());
    }
}
