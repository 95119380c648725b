//! Routing, policy rules, addresses and sysctls.
//!
//! Routes/rules/addresses are configured by running iproute2's `ip` with
//! [`std::process::Command`]. Why not netlink directly: these are rare,
//! control-plane operations; `ip` is always present where TUN is, its
//! syntax is what operators already know, and its error messages are
//! better than raw errnos. Every failure returns an `io::Error` whose
//! message contains the full command line and `ip`'s stderr; its kind is
//! [`AlreadyExists`](io::ErrorKind::AlreadyExists) or
//! [`NotFound`](io::ErrorKind::NotFound) when `ip` says so, so callers can
//! make operations idempotent.
//!
//! [`IpRoute2`] optionally targets a named network namespace (`ip -n NS`);
//! the free functions operate on the caller's namespace.
//!
//! Sysctls are written directly to `/proc/sys` ([`sysctl_set`]). Note that
//! `/proc/sys/net` reflects the network namespace of the *calling thread*.

use std::ffi::OsStr;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

/// Where to look for `ip` if it is not on `PATH` (e.g. a test harness with
/// a minimal environment).
const IP_FALLBACKS: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

/// A handle for running `ip` commands, optionally inside a named netns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpRoute2 {
    netns: Option<String>,
}

impl IpRoute2 {
    /// Commands act on the caller's network namespace.
    pub fn new() -> Self {
        IpRoute2 { netns: None }
    }

    /// Commands act inside network namespace `name` (`ip -n name …`).
    pub fn in_netns(name: impl Into<String>) -> Self {
        IpRoute2 {
            netns: Some(name.into()),
        }
    }

    /// The target namespace, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Runs `ip [-n NS] ARGS…`; returns its stdout on success.
    pub fn run<I, S>(&self, args: I) -> io::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut full: Vec<std::ffi::OsString> = Vec::new();
        if let Some(ns) = &self.netns {
            full.push("-n".into());
            full.push(ns.into());
        }
        full.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        run_ip(&full)
    }

    /// `ip route add DST dev DEV [table T] [src SRC]`.
    pub fn add_route(&self, dst: &str, dev: &str, table: Option<u32>, src: Option<IpAddr>) -> io::Result<()> {
        self.route_cmd("add", dst, Some(dev), table, src)
    }

    /// `ip route replace …`: like [`add_route`](Self::add_route) but
    /// idempotent (overwrites an existing route to the same prefix).
    pub fn replace_route(&self, dst: &str, dev: &str, table: Option<u32>, src: Option<IpAddr>) -> io::Result<()> {
        self.route_cmd("replace", dst, Some(dev), table, src)
    }

    /// `ip route del DST [dev DEV] [table T]`.
    pub fn del_route(&self, dst: &str, dev: Option<&str>, table: Option<u32>) -> io::Result<()> {
        self.route_cmd("del", dst, dev, table, None)
    }

    fn route_cmd(
        &self,
        verb: &str,
        dst: &str,
        dev: Option<&str>,
        table: Option<u32>,
        src: Option<IpAddr>,
    ) -> io::Result<()> {
        let mut a: Vec<String> = Vec::with_capacity(10);
        // Why an explicit family: `default` alone means IPv4 to `ip`.
        if dst.contains(':') || matches!(src, Some(IpAddr::V6(_))) {
            a.push("-6".into());
        }
        a.extend(["route".into(), verb.into(), dst.into()]);
        if let Some(dev) = dev {
            a.extend(["dev".into(), dev.into()]);
        }
        if let Some(t) = table {
            a.extend(["table".into(), t.to_string()]);
        }
        if let Some(s) = src {
            a.extend(["src".into(), s.to_string()]);
        }
        self.run(&a).map(drop)
    }

    /// `ip rule add [from FROM] to TO table T [pref P]`.
    pub fn add_rule(&self, from: Option<&str>, to: &str, table: u32, pref: Option<u32>) -> io::Result<()> {
        self.run(Rule::simple(from, to, table, pref).args("add")).map(drop)
    }

    /// `ip rule del [from FROM] to TO table T [pref P]`.
    pub fn del_rule(&self, from: Option<&str>, to: &str, table: u32, pref: Option<u32>) -> io::Result<()> {
        self.run(Rule::simple(from, to, table, pref).args("del")).map(drop)
    }

    /// Adds `rule` unless the kernel already has it: `Ok(false)` then
    /// ("File exists": the kernel refuses a duplicate rule, so a restart
    /// adopts what an earlier run left instead of stacking copies).
    pub fn ensure_rule(&self, rule: &Rule) -> io::Result<bool> {
        match self.run(rule.args("add")) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes `rule`; `Ok(false)` when there was none.
    pub fn remove_rule(&self, rule: &Rule) -> io::Result<bool> {
        gone_is_fine(self.run(rule.args("del")))
    }

    /// The rules at preference `pref` of both families, as
    /// [`Rule`]s (lines `ip` prints that we cannot read are skipped).
    pub fn rules_at(&self, pref: u32) -> io::Result<Vec<Rule>> {
        let mut out = Vec::new();
        for fam in ["-4", "-6"] {
            let text = match self.run([fam, "rule", "show", "pref", &pref.to_string()]) {
                Ok(t) => t,
                // A kernel without IPv6 has no IPv6 rules either.
                Err(e) if e.kind() == io::ErrorKind::Unsupported => continue,
                Err(e) => return Err(e),
            };
            out.extend(text.lines().filter_map(Rule::parse));
        }
        Ok(out)
    }

    /// `ip route replace unreachable DST table T metric M`: a route that
    /// answers "unreachable" (ICMP to a forwarding sender, EHOSTUNREACH to a
    /// local one) instead of letting the lookup fall through to the next
    /// rule. Idempotent: it replaces the one with the same metric.
    pub fn replace_unreachable(&self, dst: &str, table: u32, metric: u32) -> io::Result<()> {
        self.run(unreachable_args("replace", dst, table, metric)).map(drop)
    }

    /// Deletes what [`replace_unreachable`](Self::replace_unreachable)
    /// added; `Ok(false)` when there was none.
    pub fn del_unreachable(&self, dst: &str, table: u32, metric: u32) -> io::Result<bool> {
        gone_is_fine(self.run(unreachable_args("del", dst, table, metric)))
    }

    /// The destinations (CIDR, always with a prefix length) of the
    /// `unreachable` routes of `metric` in `table`, both families.
    pub fn unreachable_routes(&self, table: u32, metric: u32) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for fam in ["-4", "-6"] {
            let t = table.to_string();
            let text = match self.run([fam, "route", "show", "table", &t, "type", "unreachable"]) {
                Ok(t) => t,
                // A table without any route does not exist yet; a kernel
                // without IPv6 has no IPv6 routes.
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::Unsupported) => continue,
                Err(e) => return Err(e),
            };
            out.extend(text.lines().filter_map(|l| parse_unreachable(l, metric, fam == "-6")));
        }
        Ok(out)
    }

    /// `ip addr add CIDR dev DEV` (e.g. `"10.0.0.1/24"`).
    pub fn add_addr(&self, cidr: &str, dev: &str) -> io::Result<()> {
        self.run(["addr", "add", cidr, "dev", dev]).map(drop)
    }

    /// `ip addr del CIDR dev DEV`.
    pub fn del_addr(&self, cidr: &str, dev: &str) -> io::Result<()> {
        self.run(["addr", "del", cidr, "dev", dev]).map(drop)
    }

    /// `ip link set DEV up`.
    pub fn link_set_up(&self, dev: &str) -> io::Result<()> {
        self.run(["link", "set", dev, "up"]).map(drop)
    }

    /// `ip link set DEV down`.
    pub fn link_set_down(&self, dev: &str) -> io::Result<()> {
        self.run(["link", "set", dev, "down"]).map(drop)
    }

    /// `ip link set DEV mtu MTU`.
    pub fn link_set_mtu(&self, dev: &str, mtu: u32) -> io::Result<()> {
        self.run(["link", "set", dev, "mtu", &mtu.to_string()]).map(drop)
    }

    /// `ip link add A type veth peer name B` (both ends in the target
    /// namespace; move one with [`link_set_netns`](Self::link_set_netns)).
    pub fn add_veth_pair(&self, a: &str, b: &str) -> io::Result<()> {
        self.run(["link", "add", a, "type", "veth", "peer", "name", b])
            .map(drop)
    }

    /// `ip link set DEV netns NS`.
    pub fn link_set_netns(&self, dev: &str, netns: &str) -> io::Result<()> {
        self.run(["link", "set", dev, "netns", netns]).map(drop)
    }

    /// `ip link del DEV`.
    pub fn link_del(&self, dev: &str) -> io::Result<()> {
        self.run(["link", "del", dev]).map(drop)
    }
}

/// A policy rule (`ip rule`): `pref P [from FROM] to TO [ipproto N]
/// [sport S] lookup TABLE`. Addresses are CIDRs with a prefix length
/// (`ip` prints a host without one; [`Rule::parse`] adds it back), so
/// rules we want and rules we read compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Preference: rules are tried in increasing order.
    pub pref: Option<u32>,
    /// Source CIDR; `None`: from all.
    pub from: Option<String>,
    /// Destination CIDR.
    pub to: String,
    /// IP protocol number (17 UDP, 50 ESP).
    pub ipproto: Option<u8>,
    /// Source port (TCP/UDP).
    pub sport: Option<u16>,
    /// The table to look the destination up in.
    pub table: u32,
}

/// The `main` routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;

impl Rule {
    /// `pref P [from FROM] to TO lookup TABLE`.
    pub fn simple(from: Option<&str>, to: &str, table: u32, pref: Option<u32>) -> Rule {
        Rule {
            pref,
            from: from.map(str::to_owned),
            to: to.to_owned(),
            ipproto: None,
            sport: None,
            table,
        }
    }

    /// The `ip` arguments that add (`verb` = "add") or delete ("del") it.
    pub fn args(&self, verb: &str) -> Vec<String> {
        let mut a: Vec<String> = Vec::with_capacity(16);
        if self.to.contains(':') || self.from.as_ref().is_some_and(|f| f.contains(':')) {
            a.push("-6".into());
        }
        a.extend(["rule".into(), verb.into()]);
        if let Some(p) = self.pref {
            a.extend(["pref".into(), p.to_string()]);
        }
        if let Some(f) = &self.from {
            a.extend(["from".into(), f.clone()]);
        }
        a.extend(["to".into(), self.to.clone()]);
        if let Some(p) = self.ipproto {
            a.extend(["ipproto".into(), p.to_string()]);
        }
        if let Some(p) = self.sport {
            a.extend(["sport".into(), p.to_string()]);
        }
        a.extend(["table".into(), self.table.to_string()]);
        a
    }

    /// One line of `ip rule show`: `2200:\tfrom all to 10.1.0.0/16 lookup
    /// 220`. `None` for rules of other shapes (no `to`, `not`, marks, ...).
    pub fn parse(line: &str) -> Option<Rule> {
        let (pref, rest) = line.split_once(':')?;
        let mut r = Rule {
            pref: Some(pref.trim().parse().ok()?),
            from: None,
            to: String::new(),
            ipproto: None,
            sport: None,
            table: 0,
        };
        let mut words = rest.split_whitespace();
        while let Some(w) = words.next() {
            let v = words.next()?;
            match w {
                "from" if v != "all" => r.from = Some(with_prefix_len(v)),
                "from" => {}
                "to" => r.to = with_prefix_len(v),
                "ipproto" => r.ipproto = Some(proto_number(v)?),
                "sport" => r.sport = Some(v.parse().ok()?),
                "lookup" => {
                    r.table = match v {
                        "main" => TABLE_MAIN,
                        "local" => 255,
                        "default" => 253,
                        n => n.parse().ok()?,
                    }
                }
                _ => return None,
            }
        }
        (!r.to.is_empty() && r.table != 0).then_some(r)
    }
}

/// `ip` prints a host route or rule address without `/32` or `/128`.
fn with_prefix_len(a: &str) -> String {
    if a.contains('/') {
        a.to_owned()
    } else if a.contains(':') {
        format!("{a}/128")
    } else {
        format!("{a}/32")
    }
}

/// `ipproto` as `ip` prints it: a name from /etc/protocols or a number.
fn proto_number(p: &str) -> Option<u8> {
    match p {
        "tcp" => Some(6),
        "udp" => Some(17),
        "esp" => Some(50),
        n => n.parse().ok(),
    }
}

fn unreachable_args(verb: &str, dst: &str, table: u32, metric: u32) -> Vec<String> {
    let mut a: Vec<String> = Vec::with_capacity(10);
    if dst.contains(':') {
        a.push("-6".into());
    }
    a.extend(["route", verb, "unreachable", dst, "table"].map(String::from));
    a.extend([table.to_string(), "metric".into(), metric.to_string()]);
    a
}

/// The destination of an `ip route show type unreachable` line
/// (`unreachable 10.1.0.0/16 metric 4096`, `unreachable 2001:db8::/64 dev
/// lo metric 4096 pref medium`) when its metric is `metric`.
fn parse_unreachable(line: &str, metric: u32, v6: bool) -> Option<String> {
    let w: Vec<&str> = line.split_whitespace().collect();
    if w.first() != Some(&"unreachable") || w.len() < 2 {
        return None;
    }
    let m = w.iter().position(|x| *x == "metric").and_then(|i| w.get(i + 1));
    if m.and_then(|m| m.parse::<u32>().ok()) != Some(metric) {
        return None;
    }
    Some(match w[1] {
        "default" if v6 => "::/0".into(),
        "default" => "0.0.0.0/0".into(),
        d => with_prefix_len(d),
    })
}

/// A delete that found nothing to delete is done, too.
fn gone_is_fine(r: io::Result<String>) -> io::Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs `ip` with `args`, falling back to well-known paths if it is not on
/// `PATH`.
fn run_ip(args: &[std::ffi::OsString]) -> io::Result<String> {
    let cmdline = || {
        std::iter::once("ip".to_string())
            .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut output = Command::new("ip").args(args).output();
    if matches!(&output, Err(e) if e.kind() == io::ErrorKind::NotFound) {
        for p in IP_FALLBACKS {
            if std::path::Path::new(p).exists() {
                output = Command::new(p).args(args).output();
                break;
            }
        }
    }
    let out = output.map_err(|e| io::Error::new(e.kind(), format!("`{}`: cannot run ip: {e}", cmdline())))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let kind = classify_ip_error(&stderr);
    Err(io::Error::new(
        kind,
        format!("`{}` failed ({}): {}", cmdline(), out.status, stderr),
    ))
}

/// Maps well-known iproute2 / netlink messages to an error kind.
fn classify_ip_error(stderr: &str) -> io::ErrorKind {
    if stderr.contains("File exists") {
        io::ErrorKind::AlreadyExists
    } else if stderr.contains("No such process")
        || stderr.contains("No such file or directory")
        || stderr.contains("Cannot find device")
        || stderr.contains("does not exist")
        || stderr.contains("Cannot assign requested address")
    {
        io::ErrorKind::NotFound
    } else if stderr.contains("Address family not supported") {
        io::ErrorKind::Unsupported
    } else if stderr.contains("Operation not permitted") {
        io::ErrorKind::PermissionDenied
    } else {
        io::ErrorKind::Other
    }
}

/// [`IpRoute2::add_route`] in the caller's namespace.
pub fn add_route(dst: &str, dev: &str, table: Option<u32>, src: Option<IpAddr>) -> io::Result<()> {
    IpRoute2::new().add_route(dst, dev, table, src)
}

/// [`IpRoute2::replace_route`] in the caller's namespace.
pub fn replace_route(dst: &str, dev: &str, table: Option<u32>, src: Option<IpAddr>) -> io::Result<()> {
    IpRoute2::new().replace_route(dst, dev, table, src)
}

/// [`IpRoute2::del_route`] in the caller's namespace.
pub fn del_route(dst: &str, dev: Option<&str>, table: Option<u32>) -> io::Result<()> {
    IpRoute2::new().del_route(dst, dev, table)
}

/// [`IpRoute2::add_rule`] in the caller's namespace.
pub fn add_rule(from: Option<&str>, to: &str, table: u32, pref: Option<u32>) -> io::Result<()> {
    IpRoute2::new().add_rule(from, to, table, pref)
}

/// [`IpRoute2::del_rule`] in the caller's namespace.
pub fn del_rule(from: Option<&str>, to: &str, table: u32, pref: Option<u32>) -> io::Result<()> {
    IpRoute2::new().del_rule(from, to, table, pref)
}

/// [`IpRoute2::add_addr`] in the caller's namespace.
pub fn add_addr(cidr: &str, dev: &str) -> io::Result<()> {
    IpRoute2::new().add_addr(cidr, dev)
}

/// [`IpRoute2::del_addr`] in the caller's namespace.
pub fn del_addr(cidr: &str, dev: &str) -> io::Result<()> {
    IpRoute2::new().del_addr(cidr, dev)
}

/// [`IpRoute2::link_set_up`] in the caller's namespace.
pub fn link_set_up(dev: &str) -> io::Result<()> {
    IpRoute2::new().link_set_up(dev)
}

/// Maps a sysctl key to its `/proc/sys` path.
///
/// `net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`. Keys that
/// contain a `/` are taken as paths relative to `/proc/sys` verbatim —
/// use that form when a component itself contains dots (e.g. a VLAN
/// interface `eth0.100`: `net/ipv4/conf/eth0.100/rp_filter`).
pub fn sysctl_path(key: &str) -> io::Result<PathBuf> {
    let rel = if key.contains('/') {
        key.trim_start_matches('/').to_string()
    } else {
        key.replace('.', "/")
    };
    // Why validate: never let a key escape /proc/sys.
    if rel.is_empty() || rel.split('/').any(|c| c.is_empty() || c == "..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid sysctl key {key:?}"),
        ));
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

/// Writes `value` to sysctl `key` (see [`sysctl_path`] for the key
/// syntax), e.g. `sysctl_set("net.ipv4.ip_forward", "1")`.
pub fn sysctl_set(key: &str, value: &str) -> io::Result<()> {
    let path = sysctl_path(key)?;
    std::fs::write(&path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("sysctl {} = {value:?}: {e}", path.display())))
}

/// Reads sysctl `key`, trailing newline removed.
pub fn sysctl_get(key: &str) -> io::Result<String> {
    let path = sysctl_path(key)?;
    std::fs::read_to_string(&path)
        .map(|s| s.trim_end().to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("sysctl {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/rp_filter").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
        assert!(sysctl_path("net/../../etc/passwd").is_err());
        assert!(sysctl_path("").is_err());
        assert!(sysctl_path("net..ipv4").is_err());
    }

    #[test]
    fn sysctl_read() {
        // Readable without privileges on any Linux.
        let v = sysctl_get("kernel.ostype").unwrap();
        assert_eq!(v, "Linux");
    }

    #[test]
    fn ip_errors_carry_command_and_stderr() {
        let err = IpRoute2::new().link_set_up("ikst-nonexistent0").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ip link set ikst-nonexistent0 up"), "{msg}");
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{msg}");
    }

    #[test]
    fn rule_commands() {
        let r = Rule::simple(None, "192.168.12.0/24", 220, Some(2200));
        assert_eq!(
            r.args("add").join(" "),
            "rule add pref 2200 to 192.168.12.0/24 table 220"
        );
        let r = Rule::simple(Some("2001:db8:11::/64"), "2001:db8:50::12/128", 220, None);
        assert_eq!(
            r.args("del").join(" "),
            "-6 rule del from 2001:db8:11::/64 to 2001:db8:50::12/128 table 220"
        );
        let r = Rule {
            ipproto: Some(17),
            sport: Some(500),
            ..Rule::simple(Some("192.168.50.11/32"), "192.168.50.12/32", TABLE_MAIN, Some(2199))
        };
        assert_eq!(
            r.args("add").join(" "),
            "rule add pref 2199 from 192.168.50.11/32 to 192.168.50.12/32 ipproto 17 sport 500 table 254"
        );
    }

    #[test]
    fn rules_read_back_as_written() {
        // What `ip rule show` prints for the rules above.
        assert_eq!(
            Rule::parse("2200:\tfrom all to 192.168.12.0/24 lookup 220"),
            Some(Rule::simple(None, "192.168.12.0/24", 220, Some(2200)))
        );
        assert_eq!(
            Rule::parse("2200:\tfrom 2001:db8:11::/64 to 2001:db8:50::12 lookup 220"),
            Some(Rule::simple(
                Some("2001:db8:11::/64"),
                "2001:db8:50::12/128",
                220,
                Some(2200)
            ))
        );
        let esp = Rule::parse("2199:\tfrom 192.168.50.11 to 192.168.50.12 ipproto esp lookup main").unwrap();
        assert_eq!((esp.ipproto, esp.sport, esp.table), (Some(50), None, TABLE_MAIN));
        assert_eq!(esp.from.as_deref(), Some("192.168.50.11/32"));
        let ike = Rule::parse("2199:\tfrom 192.168.50.11 to 192.168.50.12 ipproto udp sport 500 lookup main").unwrap();
        assert_eq!((ike.ipproto, ike.sport), (Some(17), Some(500)));
        // Shapes we never write are not ours to touch.
        assert_eq!(Rule::parse("0:\tfrom all lookup local"), None);
        assert_eq!(Rule::parse("2200:\tnot from all to 10.0.0.0/8 lookup 220"), None);
        assert_eq!(Rule::parse("2200:\tfrom all fwmark 0x1 lookup 220"), None);
    }

    #[test]
    fn unreachable_commands() {
        assert_eq!(
            unreachable_args("replace", "192.168.12.0/24", 220, 4096).join(" "),
            "route replace unreachable 192.168.12.0/24 table 220 metric 4096"
        );
        assert_eq!(
            unreachable_args("del", "2001:db8:12::/64", 220, 4096).join(" "),
            "-6 route del unreachable 2001:db8:12::/64 table 220 metric 4096"
        );
        assert_eq!(
            parse_unreachable("unreachable 192.168.12.0/24 metric 4096 ", 4096, false).as_deref(),
            Some("192.168.12.0/24")
        );
        assert_eq!(
            parse_unreachable("unreachable 192.168.50.12 metric 4096", 4096, false).as_deref(),
            Some("192.168.50.12/32")
        );
        assert_eq!(
            parse_unreachable(
                "unreachable 2001:db8:12::/64 dev lo metric 4096 pref medium",
                4096,
                true
            )
            .as_deref(),
            Some("2001:db8:12::/64")
        );
        assert_eq!(
            parse_unreachable("unreachable default dev lo metric 4096 pref medium", 4096, true).as_deref(),
            Some("::/0")
        );
        // Another metric is someone else's route.
        assert_eq!(parse_unreachable("unreachable 10.0.0.0/8 metric 7", 4096, false), None);
        assert_eq!(parse_unreachable("10.0.0.0/8 dev tun0 scope link", 4096, false), None);
    }

    #[test]
    fn error_classification() {
        assert_eq!(
            classify_ip_error("RTNETLINK answers: File exists"),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            classify_ip_error("RTNETLINK answers: No such process"),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            classify_ip_error("RTNETLINK answers: Address family not supported by protocol"),
            io::ErrorKind::Unsupported
        );
        assert_eq!(classify_ip_error("weird"), io::ErrorKind::Other);
    }
}
