//! The predictions of `ikeda audit`: from the verdicts on both sides, the
//! start actions and the timers, which of issue 13's cases apply, in plain
//! words, each with the rules that remove the dependence on an accident.

use super::{Dir, Firewall, Kind, Side, Verdict};
use crate::config::{ConnConfig, StartAction};
use ikeda_esp::Encap;
use serde::Serialize;
use std::net::IpAddr;

/// NAT keepalive interval (RFC 3948 §4), as ikeda and strongSwan send them.
const NAT_KEEPALIVE_SECS: u64 = ikeda_ike::ikev2::NAT_KEEPALIVE.as_secs();

#[derive(Clone, Copy)]
pub struct Timeouts {
    /// UDP flow not yet answered.
    pub unreplied: u64,
    /// UDP flow answered (a "stream").
    pub stream: u64,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Note,
    /// A problem that applies only if a condition the audit cannot see
    /// holds (a NAT on the path or not).
    Warning,
    Accident,
    Fails,
    Unknown,
}

#[derive(Serialize, Debug)]
pub struct Fix {
    pub side: String,
    pub firewall: String,
    pub rule: String,
}

#[derive(Serialize, Debug)]
pub struct Finding {
    pub case: &'static str,
    pub severity: Severity,
    pub text: String,
    pub fixes: Vec<Fix>,
}

#[derive(Serialize, Debug)]
pub struct FlowReport {
    pub flow: &'static str,
    pub dir: &'static str,
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct SideReport {
    pub side: String,
    pub address: IpAddr,
    pub sees_peer_at: IpAddr,
    pub start_action: Option<&'static str>,
    pub firewalls: Vec<(String, String)>,
    /// No firewall given for this side: taken as admitting everything.
    pub assumed_open: bool,
    pub flows: Vec<FlowReport>,
}

#[derive(Serialize, Debug)]
pub struct ConnReport {
    pub conn: String,
    pub nat: Option<bool>,
    pub udp_encapsulation: Option<bool>,
    pub sides: Vec<SideReport>,
    pub findings: Vec<Finding>,
    pub exit: i32,
}

fn start_word(s: Option<StartAction>) -> Option<&'static str> {
    s.map(|s| match s {
        StartAction::Start => "start",
        StartAction::Trap => "trap",
        StartAction::None => "none",
    })
}

fn who(s: &Side) -> String {
    format!("{} ({})", s.name, s.addr)
}

/// The rules that make `k` in `dir` admitted explicitly on `side`'s
/// firewalls (all formats when none is given).
fn fixes(side: &Side, dir: Dir, k: Kind) -> Vec<Fix> {
    let p = side.sees_peer_at;
    let v6 = p.is_ipv6();
    let host = format!("{p}/{}", if v6 { 128 } else { 32 });
    let (ingress, word) = if dir == Dir::In { (true, "from") } else { (false, "to") };
    let what = match k {
        Kind::Ike => "IKE",
        Kind::NatT => "NAT-T",
        Kind::Esp => "ESP",
    };
    let sg = |gid: &str| {
        let (ranges, cli_ranges) = if v6 {
            (
                format!(r#""Ipv6Ranges": [{{"CidrIpv6": "{host}", "Description": "{what} {word} the IPsec peer"}}]"#),
                format!("Ipv6Ranges=[{{CidrIpv6={host}}}]"),
            )
        } else {
            (
                format!(r#""IpRanges": [{{"CidrIp": "{host}", "Description": "{what} {word} the IPsec peer"}}]"#),
                format!("IpRanges=[{{CidrIp={host}}}]"),
            )
        };
        let (json_proto, cli_proto) = match k {
            Kind::Esp => (r#""IpProtocol": "50""#.to_string(), "IpProtocol=50".to_string()),
            _ => {
                let port = k.flow(dir, p, side.addr).port;
                (
                    format!(r#""IpProtocol": "udp", "FromPort": {port}, "ToPort": {port}"#),
                    format!("IpProtocol=udp,FromPort={port},ToPort={port}"),
                )
            }
        };
        let dirw = if ingress { "ingress" } else { "egress" };
        vec![
            format!(
                "{} rule of {gid}: {{{json_proto}, {ranges}}}",
                if ingress {
                    "IpPermissions"
                } else {
                    "IpPermissionsEgress"
                }
            ),
            format!(
                "aws ec2 authorize-security-group-{dirw} --group-id {gid} --ip-permissions '{cli_proto},{cli_ranges}'"
            ),
        ]
    };
    let proto_match = |nft: bool| match (k, nft) {
        (Kind::Esp, true) => "meta l4proto esp".to_string(),
        (Kind::Esp, false) => "-p esp".to_string(),
        (_, true) => format!("udp dport {}", k.flow(dir, p, side.addr).port),
        (_, false) => format!("-p udp --dport {}", k.flow(dir, p, side.addr).port),
    };
    let nft = |chain: Option<&(String, String, String)>| {
        let (fam, table, ch) = chain.cloned().unwrap_or_else(|| {
            (
                "inet".into(),
                "filter".into(),
                if ingress { "input" } else { "output" }.into(),
            )
        });
        let ip = if v6 { "ip6" } else { "ip" };
        let addr = if ingress { "saddr" } else { "daddr" };
        format!(
            "nft insert rule {fam} {table} {ch} {ip} {addr} {p} {} accept",
            proto_match(true)
        )
    };
    let ipt = || {
        format!(
            "{} -I {} {} {host} {} -j ACCEPT",
            if v6 { "ip6tables" } else { "iptables" },
            if ingress { "INPUT" } else { "OUTPUT" },
            if ingress { "-s" } else { "-d" },
            proto_match(false)
        )
    };
    let mut out = Vec::new();
    let mut push = |fw: &str, rule: String| {
        out.push(Fix {
            side: side.name.clone(),
            firewall: fw.into(),
            rule,
        })
    };
    if side.firewalls.is_empty() {
        for r in sg("sg-GROUP") {
            push("AWS security group", r);
        }
        push("nftables", nft(None));
        push("iptables", ipt());
    }
    for (path, fw) in &side.firewalls {
        let at = path.display().to_string();
        match fw {
            Firewall::Sg(s) => {
                for r in sg(s.group_ids.first().map_or("sg-GROUP", String::as_str)) {
                    push(&at, r);
                }
            }
            Firewall::Nacl(n) => {
                let (proto, ports) = match k {
                    Kind::Esp => ("50".to_string(), String::new()),
                    _ => {
                        let port = k.flow(dir, p, side.addr).port;
                        ("17".into(), format!(" --port-range From={port},To={port}"))
                    }
                };
                let id = n.ids().into_iter().next().unwrap_or_default();
                push(
                    &at,
                    format!(
                        "aws ec2 create-network-acl-entry --network-acl-id {id} --{} --rule-number NUMBER-BELOW-YOUR-DENIES --protocol {proto}{ports} --{} {host} --rule-action allow",
                        if ingress { "ingress" } else { "egress" },
                        if v6 { "ipv6-cidr-block" } else { "cidr-block" }
                    ),
                )
            }
            Firewall::Nft(n) => push(
                &at,
                nft(if ingress {
                    n.input_chain.as_ref()
                } else {
                    n.output_chain.as_ref()
                }),
            ),
            Firewall::Iptables(_) => push(&at, ipt()),
        }
    }
    out
}

/// The path of `k` from `from` to `to`: out of `from`'s firewalls, then
/// into `to`'s. The verdict, and the hops that are not explicit.
fn path<'a>(from: &'a Side, to: &'a Side, k: Kind) -> (Verdict, Vec<(&'a Side, Dir)>) {
    let (o, i) = (from.verdict(k, Dir::Out), to.verdict(k, Dir::In));
    let mut hops = Vec::new();
    if o != Verdict::Explicit {
        hops.push((from, Dir::Out));
    }
    if i != Verdict::Explicit {
        hops.push((to, Dir::In));
    }
    (o.and(i), hops)
}

struct Ctx<'a> {
    /// The connection's name (for the fix in its config).
    conn: String,
    l: &'a Side,
    p: &'a Side,
    t: Timeouts,
    udp: Option<bool>,
    retransmit: (u64, f64, u32),
    findings: Vec<Finding>,
}

impl Ctx<'_> {
    fn push(&mut self, case: &'static str, severity: Severity, text: String, hops: &[(&Side, Dir)], k: Kind) {
        let fixes = hops.iter().flat_map(|(s, d)| fixes(s, *d, k)).collect();
        self.findings.push(Finding {
            case,
            severity,
            text,
            fixes,
        });
    }

    /// When IKE's first packet is retransmitted (RFC 7296 §2.1), for the
    /// both-initiate window.
    fn schedule(&self) -> String {
        let (t0, base, tries) = self.retransmit;
        let mut at = 0.0;
        let mut step = t0 as f64 / 1000.0;
        let mut v = vec!["0".to_string()];
        for _ in 0..tries.min(12) {
            at += step;
            v.push(format!("{at:.1}"));
            step *= base;
        }
        format!(
            "this gateway sends at {} s and gives up at {:.1} s",
            v.join(", "),
            at + step
        )
    }

    /// IKE on UDP 500 or 4500: both directions, the start actions, the
    /// idle timeout. `cond`: the words that make it conditional (a NAT
    /// not known to be there).
    fn ike(&mut self, k: Kind, cond: Option<&str>) {
        let (l, p) = (self.l, self.p);
        let (a, ha) = path(l, p, k);
        let (b, hb) = path(p, l, k);
        let cap = |s: Severity| match cond {
            Some(_) if s > Severity::Warning && s != Severity::Unknown => Severity::Warning,
            _ => s,
        };
        let pre = cond.map_or(String::new(), |c| format!("{c}: "));
        let label = k.label();
        if let Verdict::Unknown(w) = &a {
            return self.push(
                "unknown",
                Severity::Unknown,
                format!(
                    "{pre}cannot tell whether {label} passes from {} to {}: {w}",
                    who(l),
                    who(p)
                ),
                &[],
                k,
            );
        }
        if let Verdict::Unknown(w) = &b {
            return self.push(
                "unknown",
                Severity::Unknown,
                format!(
                    "{pre}cannot tell whether {label} passes from {} to {}: {w}",
                    who(p),
                    who(l)
                ),
                &[],
                k,
            );
        }
        if a == Verdict::Denied || b == Verdict::Denied {
            let (from, to, hops) = if a == Verdict::Denied { (l, p, ha) } else { (p, l, hb) };
            let (case, text) = match k {
                Kind::NatT => (
                    "fails-after-float",
                    format!(
                        "{pre}IKE_SA_INIT passes on UDP 500, but with a NAT on the path IKE moves to UDP 4500 (RFC 7296 §2.23) and {label} from {} never reaches {}: the tunnel fails at IKE_AUTH after the float",
                        who(from),
                        who(to)
                    ),
                ),
                _ => ("ike-blocked", format!("{pre}{label} from {} never reaches {}: the tunnel never comes up", who(from), who(to))),
            };
            return self.push(case, cap(Severity::Fails), text, &hops, k);
        }
        match (a == Verdict::ReplyOnly, b == Verdict::ReplyOnly) {
            (false, false) => self.push(
                "ok",
                Severity::Ok,
                format!("{pre}{label} is admitted both ways"),
                &[],
                k,
            ),
            (false, true) => self.one_way(k, l, p, &hb, &pre, cap),
            (true, false) => self.one_way(k, p, l, &ha, &pre, cap),
            (true, true) => {
                let mut hops = ha.clone();
                hops.extend(hb.iter().cloned());
                let responder = [l, p].into_iter().find(|s| s.start == Some(StartAction::None));
                if let Some(r) = responder {
                    self.push(
                        "never-up",
                        cap(Severity::Fails),
                        format!(
                            "{pre}never comes up: {label} passes either way only as a reply to a packet the other side sent first, and {} only responds (start_action none){}",
                            who(r),
                            after_float(k)
                        ),
                        &hops,
                        k,
                    );
                } else {
                    let unknown = if p.start.is_none() {
                        " (and never if the peer only responds: its start action is not known, give --peer-config)"
                    } else {
                        ""
                    };
                    self.push(
                        "both-must-initiate",
                        cap(Severity::Accident),
                        format!(
                            "{pre}comes up only when both sides initiate within {} s of each other: each side's outbound {label} lets the other's pass as a reply, the first IKE_SA_INIT is dropped and a retransmission passes ({}){unknown}",
                            self.t.unreplied,
                            self.schedule()
                        ),
                        &hops,
                        k,
                    );
                }
                self.idle(k, l, p, &hb, &pre, cap);
                self.idle(k, p, l, &ha, &pre, cap);
            }
        }
    }

    /// `k` from `q` to `r` passes only as a reply: `r` has to send first.
    fn one_way(
        &mut self,
        k: Kind,
        r: &Side,
        q: &Side,
        hops: &[(&Side, Dir)],
        pre: &str,
        cap: impl Fn(Severity) -> Severity,
    ) {
        let label = k.label();
        match r.start {
            Some(StartAction::None) => self.push(
                "never-up",
                cap(Severity::Fails),
                format!(
                    "{pre}never comes up: {} only responds (start_action none), and {label} from {} reaches it only as a reply to a packet it sent first{}",
                    who(r),
                    who(q),
                    after_float(k)
                ),
                hops,
                k,
            ),
            _ => self.push(
                "initiator-only",
                Severity::Note,
                format!(
                    "{pre}comes up when {} initiates; {label} from {} passes only within {} s after {} sent to it{}",
                    who(r),
                    who(q),
                    self.t.unreplied,
                    r.name,
                    if r.start.is_none() { " (the peer's start action is not known: give --peer-config)" } else { "" }
                ),
                &[],
                k,
            ),
        }
        self.idle(k, r, q, hops, pre, cap);
    }

    /// The idle case: the flow from `q` into `r` passes only while the
    /// firewall remembers `r`'s flow (stream timeout). Only for the flow
    /// IKE uses once established (4500 after a NAT float, else 500).
    fn idle(
        &mut self,
        k: Kind,
        r: &Side,
        q: &Side,
        hops: &[(&Side, Dir)],
        pre: &str,
        cap: impl Fn(Severity) -> Severity,
    ) {
        let established_on = if self.udp == Some(true) { Kind::NatT } else { Kind::Ike };
        if k != established_on {
            return;
        }
        let ts = self.t.stream;
        let label = k.label();
        // Our keepalive option (issue 13 point 3): a packet of one side's
        // own on the flow at least every `keepalive` seconds keeps both
        // firewalls' state (outbound it refreshes its own; inbound, still
        // remembered, the other's; on UDP 500 it is a liveness check the
        // other side answers).
        let kept = [r, q]
            .into_iter()
            .filter_map(|s| s.keepalive.filter(|&k| k > 0 && k < ts).map(|k| (k, s)))
            .min_by_key(|(k, _)| *k);
        if let Some((secs, s)) = kept {
            return self.push(
                "kept-open-by-keepalives",
                Severity::Note,
                format!(
                    "{pre}{label} stays admitted while idle: {} sends keepalive = {secs} s ({}) below the {ts} s stream timeout",
                    who(s),
                    if k == Kind::NatT {
                        "a NAT-keepalive when nothing else of its own went out"
                    } else {
                        "an authenticated liveness check the other side answers, when nothing else of its own went out"
                    }
                ),
                &[],
                k,
            );
        }
        if self.udp == Some(true) && NAT_KEEPALIVE_SECS < ts {
            let from = match (r.behind_nat, q.behind_nat) {
                (Some(true), _) => who(r),
                (_, Some(true)) => who(q),
                _ => "the side behind the NAT".into(),
            };
            return self.push(
                "kept-open-by-keepalives",
                Severity::Note,
                format!("{pre}{label} stays admitted while idle: NAT keepalives from {from} every {NAT_KEEPALIVE_SECS} s (RFC 3948 §4) are below the {ts} s stream timeout"),
                &[],
                k,
            );
        }
        let mut what = Vec::new();
        if let Some((child, ike)) = q.rekey {
            if child > 0 {
                what.push(format!("a CHILD SA rekey (every {child} s)"));
            }
            if ike > 0 {
                what.push(format!("an IKE SA rekey (every {ike} s)"));
            }
        } else {
            what.push("a rekey".into());
        }
        match q.dpd_delay {
            Some(0) => {}
            Some(d) => what.push(format!("DPD (after {d} s without a packet from {})", r.name)),
            None => what.push("DPD".into()),
        }
        what.push("a restart".into());
        let mut dpd_r = match r.dpd_delay {
            Some(d) if d > 0 && d < ts => format!(
                "; {}'s DPD every {d} s keeps it open only while no traffic flows (DPD is sent only after {d} s of silence)",
                r.name
            ),
            _ => String::new(),
        };
        for s in [r, q] {
            if let Some(ka) = s.keepalive.filter(|&ka| ka >= ts) {
                dpd_r.push_str(&format!(
                    "; {}'s keepalive = {ka} s is not below the {ts} s stream timeout",
                    s.name
                ));
            }
        }
        self.push(
            "idle-half-dead",
            cap(Severity::Accident),
            format!(
                "{pre}after more than {ts} s without IKE packets on {label}, an exchange {} starts ({}) is dropped on its way into {}: a half-dead tunnel ({} gives up and deletes its SAs, {} keeps them). ESP traffic does not keep the IKE flow open{dpd_r}",
                who(q),
                what.join(", "),
                who(r),
                q.name,
                r.name
            ),
            hops,
            k,
        );
        // The other cure, where no firewall can be changed: ikeda's
        // keepalive on this gateway (ours is always ikeda; one side
        // suffices, see above), below the stream timeout.
        let secs = (ts / 2).clamp(1, 20);
        let conn = self.conn.clone();
        if let Some(f) = self.findings.last_mut() {
            f.fixes.push(Fix {
                side: who(self.l),
                firewall: format!("ikeda config, [[conn]] {conn}"),
                rule: format!("keepalive = \"{secs}s\""),
            });
        }
    }

    /// The data flow (ESP, or UDP-encapsulated ESP of manual SAs): both
    /// sides send on their own, so a reply-only direction drops traffic
    /// that starts on that side after an idle time.
    fn data(&mut self, k: Kind, cond: Option<&str>) {
        let (l, p) = (self.l, self.p);
        let pre = cond.map_or(String::new(), |c| format!("{c}: "));
        let cap = |s: Severity| {
            if cond.is_some() && s > Severity::Warning && s != Severity::Unknown {
                Severity::Warning
            } else {
                s
            }
        };
        let label = k.label();
        let mut all_ok = true;
        for (from, to) in [(l, p), (p, l)] {
            let (v, hops) = path(from, to, k);
            let (case, sev, text) = match v {
                Verdict::Explicit => continue,
                Verdict::Unknown(w) => ("unknown", Severity::Unknown, format!("{pre}cannot tell whether {label} passes from {} to {}: {w}", who(from), who(to))),
                Verdict::Denied => (
                    "data-blocked",
                    cap(Severity::Fails),
                    format!("{pre}{label} from {} never reaches {}: the SAs may come up, but no traffic passes that way", who(from), who(to)),
                ),
                Verdict::ReplyOnly => (
                    "data-reply-only",
                    cap(Severity::Accident),
                    format!(
                        "{pre}{label} from {} reaches {} only within {} s after {} sent {label} to it: traffic that starts on {}'s side after an idle time is dropped until {}'s side sends",
                        who(from),
                        who(to),
                        self.t.stream,
                        to.name,
                        from.name,
                        to.name
                    ),
                ),
            };
            all_ok = false;
            self.push(case, sev, text, &hops, k);
        }
        if all_ok {
            self.push(
                "ok",
                Severity::Ok,
                format!("{pre}{label} is admitted both ways"),
                &[],
                k,
            );
        }
    }
}

pub fn build(
    c: &ConnConfig,
    l: &Side,
    p: &Side,
    nat: Option<bool>,
    t: Timeouts,
    retransmit: (u64, f64, u32),
) -> ConnReport {
    let ike = c.ike.is_some();
    // IKE SAs encapsulate when NAT is detected (RFC 7296 §2.23); manual
    // SAs as the config says.
    let udp = if ike { nat } else { Some(c.encap == Encap::Udp) };
    let mut cx = Ctx {
        conn: c.name.clone(),
        l,
        p,
        t,
        udp,
        retransmit,
        findings: Vec::new(),
    };
    if ike {
        cx.ike(Kind::Ike, None);
        match nat {
            Some(true) => cx.ike(Kind::NatT, None),
            Some(false) => {}
            None => cx.ike(
                Kind::NatT,
                Some("if a NAT is on the path (not known: give --peer-config or --nat)"),
            ),
        }
    }
    match udp {
        Some(true) => {
            if ike {
                cx.push(
                    "esp-irrelevant",
                    Severity::Note,
                    "UDP encapsulation (RFC 3948): ESP travels in UDP 4500, the rules for ESP (protocol 50) are not used".into(),
                    &[],
                    Kind::Esp,
                );
            } else {
                cx.data(Kind::NatT, None);
            }
        }
        Some(false) => cx.data(Kind::Esp, None),
        None => cx.data(
            Kind::Esp,
            Some("unless a NAT is on the path (not known: give --peer-config or --nat)"),
        ),
    }
    if !ike && c.encap == Encap::Udp && c.port != 4500 {
        cx.push(
            "note",
            Severity::Note,
            format!("the manual SAs use UDP port {}: the checks above are for 4500", c.port),
            &[],
            Kind::NatT,
        );
    }
    if p.firewalls.is_empty() {
        cx.push(
            "peer-not-given",
            Severity::Note,
            "the peer's firewalls were not given (--peer-firewall): taken as admitting everything".into(),
            &[],
            Kind::Ike,
        );
    }
    let exit = i32::from(
        cx.findings
            .iter()
            .any(|f| matches!(f.severity, Severity::Accident | Severity::Fails | Severity::Unknown)),
    );
    let side = |s: &Side| SideReport {
        side: s.name.clone(),
        address: s.addr,
        sees_peer_at: s.sees_peer_at,
        start_action: if ike {
            start_word(s.start)
        } else {
            Some("none (manual keys)")
        },
        firewalls: s
            .firewalls
            .iter()
            .map(|(p, f)| (p.display().to_string(), f.kind()))
            .collect(),
        assumed_open: s.firewalls.is_empty(),
        flows: Kind::ALL
            .iter()
            .flat_map(|k| [Dir::In, Dir::Out].map(|d| (*k, d)))
            .map(|(k, d)| {
                let v = s.verdict(k, d);
                FlowReport {
                    flow: k.label(),
                    dir: if d == Dir::In { "in" } else { "out" },
                    verdict: v.word(),
                    why: match v {
                        Verdict::Unknown(w) => Some(w),
                        _ => None,
                    },
                }
            })
            .collect(),
    };
    ConnReport {
        conn: c.name.clone(),
        nat,
        udp_encapsulation: udp,
        sides: vec![side(l), side(p)],
        findings: cx.findings,
        exit,
    }
}

pub fn text(r: &ConnReport) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let yn = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not known",
    };
    let _ = writeln!(
        o,
        "conn {}: NAT on the path: {}; UDP encapsulation: {}",
        r.conn,
        yn(r.nat),
        yn(r.udp_encapsulation)
    );
    for s in &r.sides {
        let fws = if s.assumed_open {
            "no firewall given (taken as open)".to_string()
        } else {
            s.firewalls
                .iter()
                .map(|(p, k)| format!("{p} ({k})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            o,
            "  {} {} (start_action {}): {fws}",
            s.side,
            s.address,
            s.start_action.unwrap_or("not known")
        );
        for pair in s.flows.chunks(2) {
            let (i, out) = (&pair[0], &pair[1]);
            let _ = writeln!(o, "    {:<15} in: {:<13} out: {}", i.flow, i.verdict, out.verdict);
            for w in [&i.why, &out.why].into_iter().flatten() {
                let _ = writeln!(o, "      unknown: {w}");
            }
        }
    }
    for f in &r.findings {
        let tag = match f.severity {
            Severity::Ok => "ok",
            Severity::Note => "note",
            Severity::Warning => "WARNING",
            Severity::Accident => "ACCIDENT",
            Severity::Fails => "FAILS",
            Severity::Unknown => "UNKNOWN",
        };
        let _ = writeln!(o, "  [{tag}] {}", f.text);
        for x in &f.fixes {
            let _ = writeln!(o, "      fix ({}, {}): {}", x.side, x.firewall, x.rule);
        }
    }
    o
}

/// How a NAT-T flow that never passes shows: IKE_SA_INIT goes through on
/// UDP 500, IKE_AUTH, after the float, does not.
fn after_float(k: Kind) -> &'static str {
    if k == Kind::NatT {
        ": IKE_SA_INIT may pass on UDP 500, but IKE moves to UDP 4500 after it (RFC 7296 §2.23) and the tunnel fails at IKE_AUTH"
    } else {
        ""
    }
}
