//! AWS security groups (`aws ec2 describe-security-groups` JSON) for
//! `ikeda audit` (issue 13).
//!
//! A security group is stateful: a packet is admitted when an inbound
//! (`IpPermissions`) or outbound (`IpPermissionsEgress`) rule allows it, and
//! replies to an admitted flow pass whatever the rules of the other
//! direction say (AWS VPC user guide, "Security group rules": "responses to
//! allowed inbound traffic are allowed to flow out, regardless of outbound
//! rules", and the other way round). Every group in the file is taken as
//! attached to the gateway's interface: AWS then admits what any of them
//! allows (the rules are aggregated).
//!
//! Pure logic, no I/O. A rule that would decide but that the file cannot
//! settle (a referenced group, a prefix list) makes the verdict `Unknown`
//! naming the group and rule: never a guessed accept or drop.

use super::flow::{Cidr, Dir, Flow, Verdict, MAX_BYTES, MAX_RULES, PROTO_UDP};
use serde_json::Value;

#[derive(Debug, Clone)]
struct Perm {
    /// "sg-0abc ingress rule 2", for reports.
    at: String,
    /// None: every protocol ("-1").
    proto: Option<u8>,
    /// Destination ports (UDP); None: all.
    ports: Option<(u16, u16)>,
    cidrs: Vec<Cidr>,
    /// Sources/destinations the file cannot resolve to addresses (group
    /// pairs, prefix lists).
    unresolved: Vec<String>,
    /// Why this rule could not be read at all.
    problem: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SecurityGroups {
    /// The groups' ids, in file order (for the fix lines).
    pub group_ids: Vec<String>,
    ingress: Vec<Perm>,
    egress: Vec<Perm>,
}

fn proto_of(s: &str) -> Option<Option<u8>> {
    match s.to_ascii_lowercase().as_str() {
        "-1" | "all" => Some(None),
        "udp" => Some(Some(PROTO_UDP)),
        "tcp" => Some(Some(6)),
        "icmp" => Some(Some(1)),
        "icmpv6" => Some(Some(58)),
        "esp" => Some(Some(50)),
        n => n.parse::<u8>().ok().map(Some),
    }
}

fn perm(at: String, p: &Value) -> Perm {
    let mut r = Perm {
        at,
        proto: None,
        ports: None,
        cidrs: Vec::new(),
        unresolved: Vec::new(),
        problem: None,
    };
    let Some(proto) = p.get("IpProtocol").and_then(Value::as_str).and_then(proto_of) else {
        r.problem = Some("no IpProtocol this audit understands".into());
        return r;
    };
    r.proto = proto;
    if proto == Some(PROTO_UDP) || proto == Some(6) {
        let port = |k: &str| p.get(k).and_then(Value::as_i64);
        r.ports = match (port("FromPort"), port("ToPort")) {
            (None, None) | (Some(-1), Some(-1)) => None,
            (Some(a), Some(b)) if (0..=65535).contains(&a) && (a..=65535).contains(&b) => Some((a as u16, b as u16)),
            _ => {
                r.problem = Some("FromPort/ToPort not a port range".into());
                return r;
            }
        };
    }
    let list = |k: &str| p.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for (key, field) in [("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6")] {
        for c in list(key) {
            match c.get(field).and_then(Value::as_str).and_then(Cidr::parse) {
                Some(c) => r.cidrs.push(c),
                None => r.unresolved.push(format!("{key} entry without a valid {field}")),
            }
        }
    }
    for g in list("UserIdGroupPairs") {
        let id = g.get("GroupId").and_then(Value::as_str).unwrap_or("?");
        r.unresolved
            .push(format!("group {id} (whether the peer is in it is not in this file)"));
    }
    for g in list("PrefixListIds") {
        let id = g.get("PrefixListId").and_then(Value::as_str).unwrap_or("?");
        r.unresolved
            .push(format!("prefix list {id} (its addresses are not in this file)"));
    }
    r
}

enum Admit {
    Yes,
    No,
    Unknown(String),
}

/// Whether any rule of `perms` allows `f`'s first packet.
fn admits(perms: &[Perm], f: &Flow) -> Admit {
    let mut unknown = None;
    for p in perms {
        if let Some(why) = &p.problem {
            unknown.get_or_insert_with(|| format!("{}: {why}", p.at));
            continue;
        }
        if p.proto.is_some_and(|x| x != f.proto) {
            continue;
        }
        if let Some((a, b)) = p.ports {
            if f.proto != PROTO_UDP || f.port < a || f.port > b {
                continue;
            }
        }
        if p.cidrs.iter().any(|c| c.contains(f.peer)) {
            return Admit::Yes;
        }
        if let Some(u) = p.unresolved.first() {
            unknown.get_or_insert_with(|| format!("{}: {u}", p.at));
        }
    }
    match unknown {
        Some(u) => Admit::Unknown(u),
        None => Admit::No,
    }
}

impl SecurityGroups {
    pub fn parse(text: &str) -> Result<SecurityGroups, String> {
        if text.len() > MAX_BYTES {
            return Err(format!("larger than {MAX_BYTES} bytes"));
        }
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let groups = v
            .get("SecurityGroups")
            .and_then(Value::as_array)
            .ok_or("no SecurityGroups array (not describe-security-groups output)")?;
        let mut sg = SecurityGroups {
            group_ids: Vec::new(),
            ingress: Vec::new(),
            egress: Vec::new(),
        };
        for (gi, g) in groups.iter().enumerate() {
            let id = g
                .get("GroupId")
                .and_then(Value::as_str)
                .map_or_else(|| format!("group #{}", gi + 1), str::to_string);
            for (key, dir, out) in [
                ("IpPermissions", "ingress", &mut sg.ingress),
                ("IpPermissionsEgress", "egress", &mut sg.egress),
            ] {
                let Some(perms) = g.get(key) else { continue };
                let perms = perms.as_array().ok_or(format!("{id}: {key} is not a list"))?;
                for (i, p) in perms.iter().enumerate() {
                    if out.len() >= MAX_RULES {
                        return Err(format!("more than {MAX_RULES} {dir} rules"));
                    }
                    out.push(perm(format!("{id} {dir} rule {}", i + 1), p));
                }
            }
            if sg.group_ids.len() < MAX_RULES {
                sg.group_ids.push(id);
            }
        }
        if sg.group_ids.is_empty() {
            return Err("SecurityGroups is empty".into());
        }
        Ok(sg)
    }

    /// Explicit when a rule of the flow's direction allows it; else
    /// reply-only when a rule of the other direction allows the flow the
    /// other way (its replies pass); else denied.
    pub fn verdict(&self, f: &Flow) -> Verdict {
        let (this, other) = match f.dir {
            Dir::In => (&self.ingress, &self.egress),
            Dir::Out => (&self.egress, &self.ingress),
        };
        match admits(this, f) {
            Admit::Yes => Verdict::Explicit,
            Admit::Unknown(u) => Verdict::Unknown(u),
            Admit::No => {
                let back = Flow {
                    dir: if f.dir == Dir::In { Dir::Out } else { Dir::In },
                    ..*f
                };
                match admits(other, &back) {
                    Admit::Yes => Verdict::ReplyOnly,
                    Admit::No => Verdict::Denied,
                    Admit::Unknown(u) => Verdict::Unknown(u),
                }
            }
        }
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

    fn sg(ingress: &str, egress: &str) -> String {
        format!(
            r#"{{"SecurityGroups": [{{"Description": "gw", "GroupName": "gw", "IpPermissions": [{ingress}],
"OwnerId": "123456789012", "GroupId": "sg-0123456789abcdef0", "IpPermissionsEgress": [{egress}], "VpcId": "vpc-1"}}]}}"#
        )
    }
    const ALL_OUT: &str = r#"{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}"#;
    const ESP_IN: &str = r#"{"IpProtocol": "50", "IpRanges": [{"CidrIp": "198.51.100.2/32", "Description": "peer"}], "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}"#;
    const IKE_IN: &str = r#"{"FromPort": 500, "IpProtocol": "udp", "IpRanges": [{"CidrIp": "198.51.100.0/24"}], "Ipv6Ranges": [], "PrefixListIds": [], "ToPort": 500, "UserIdGroupPairs": []}"#;
    const NATT_IN: &str = r#"{"FromPort": 4500, "IpProtocol": "udp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [], "PrefixListIds": [], "ToPort": 4500, "UserIdGroupPairs": []}"#;

    #[test]
    fn esp_only_inbound_makes_ike_reply_only() {
        let s = SecurityGroups::parse(&sg(ESP_IN, ALL_OUT)).unwrap();
        assert_eq!(s.group_ids, ["sg-0123456789abcdef0"]);
        assert_eq!(s.verdict(&flow(Dir::In, PROTO_ESP, 0)), Verdict::Explicit);
        assert_eq!(s.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::ReplyOnly);
        assert_eq!(s.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::ReplyOnly);
        assert_eq!(s.verdict(&flow(Dir::Out, PROTO_UDP, 500)), Verdict::Explicit);
    }

    #[test]
    fn ike_500_and_4500_explicit_and_no_egress() {
        let s = SecurityGroups::parse(&sg(&format!("{IKE_IN}, {NATT_IN}"), "")).unwrap();
        assert_eq!(s.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::Explicit);
        assert_eq!(s.verdict(&flow(Dir::In, PROTO_UDP, 4500)), Verdict::Explicit);
        assert_eq!(s.verdict(&flow(Dir::In, PROTO_ESP, 0)), Verdict::Denied);
        // No egress rule: our IKE goes out only as replies to the peer's.
        assert_eq!(s.verdict(&flow(Dir::Out, PROTO_UDP, 500)), Verdict::ReplyOnly);
        assert_eq!(s.verdict(&flow(Dir::Out, PROTO_ESP, 0)), Verdict::Denied);
        let other = Flow {
            peer: "203.0.113.9".parse().unwrap(),
            ..flow(Dir::In, PROTO_UDP, 500)
        };
        assert_eq!(s.verdict(&other), Verdict::Denied);
    }

    #[test]
    fn group_pairs_and_bad_rules_are_unknown() {
        let pair =
            r#"{"IpProtocol": "-1", "IpRanges": [], "UserIdGroupPairs": [{"GroupId": "sg-0peer", "UserId": "1"}]}"#;
        let s = SecurityGroups::parse(&sg(pair, ALL_OUT)).unwrap();
        match s.verdict(&flow(Dir::In, PROTO_UDP, 500)) {
            Verdict::Unknown(why) => assert!(why.contains("sg-0peer") && why.contains("ingress rule 1"), "{why}"),
            v => panic!("{v:?}"),
        }
        let bad = r#"{"IpProtocol": "udp", "FromPort": 9, "ToPort": 2, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}"#;
        let s = SecurityGroups::parse(&sg(bad, ALL_OUT)).unwrap();
        assert!(matches!(s.verdict(&flow(Dir::In, PROTO_UDP, 500)), Verdict::Unknown(w) if w.contains("FromPort")));
        assert!(SecurityGroups::parse("{\"NetworkAcls\": []}").is_err());
        assert!(SecurityGroups::parse("{\"SecurityGroups\": []}").is_err());
        assert!(SecurityGroups::parse("{\"SecurityGroups\": [{\"IpPermissions\": 5}]}").is_err());
        assert!(SecurityGroups::parse("[[[[").is_err());
        assert!(SecurityGroups::parse(&" ".repeat(MAX_BYTES + 1)).is_err());
    }
}
