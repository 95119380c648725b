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
        self.rule_cmd("add", from, to, table, pref)
    }

    /// `ip rule del [from FROM] to TO table T [pref P]`.
    pub fn del_rule(&self, from: Option<&str>, to: &str, table: u32, pref: Option<u32>) -> io::Result<()> {
        self.rule_cmd("del", from, to, table, pref)
    }

    fn rule_cmd(&self, verb: &str, from: Option<&str>, to: &str, table: u32, pref: Option<u32>) -> io::Result<()> {
        let mut a: Vec<String> = Vec::with_capacity(10);
        if to.contains(':') || from.is_some_and(|f| f.contains(':')) {
            a.push("-6".into());
        }
        a.extend(["rule".into(), verb.into()]);
        if let Some(f) = from {
            a.extend(["from".into(), f.into()]);
        }
        a.extend(["to".into(), to.into(), "table".into(), table.to_string()]);
        if let Some(p) = pref {
            a.extend(["pref".into(), p.to_string()]);
        }
        self.run(&a).map(drop)
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
    fn error_classification() {
        assert_eq!(
            classify_ip_error("RTNETLINK answers: File exists"),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            classify_ip_error("RTNETLINK answers: No such process"),
            io::ErrorKind::NotFound
        );
        assert_eq!(classify_ip_error("weird"), io::ErrorKind::Other);
    }
}
