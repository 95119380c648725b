//! What `lab up` needs from the machine, checked before anything is built,
//! and installed from Debian's packages when the user agrees.
//!
//! A lab that starts with a piece missing fails late and obscurely: charon
//! skips a plugin of its `load` list that is not there without a word, and
//! then answers Main Mode 3 with INVALID_KEY_INFORMATION because nothing
//! implements the negotiated cipher. So every tool and every strongSwan
//! plugin the lab will use is looked for first, and a missing one is named
//! with the Debian package that brings it.

use super::{strongswan, Gateways, Peer, UpArgs};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// One thing the lab uses, and the Debian package that ships it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// What it is, as the user reads it: `'ping'` or `strongSwan plugin 'gcm'`.
    pub what: String,
    pub package: &'static str,
    present: bool,
}

/// A program on PATH.
fn tool(name: &str, package: &'static str) -> Need {
    let present = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(name);
            f.is_file()
                && std::fs::metadata(&f)
                    .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
        })
    });
    Need {
        what: format!("'{name}'"),
        package,
        present,
    }
}

/// A file at a fixed path (charon is not on PATH).
fn file(what: &str, path: &str, package: &'static str) -> Need {
    Need {
        what: what.into(),
        package,
        present: Path::new(path).is_file(),
    }
}

/// Where Debian's strongSwan keeps its plugins.
pub const PLUGIN_DIR: &str = "/usr/lib/ipsec/plugins";

/// The Debian 12/13 package that ships strongSwan plugin `name`.
pub fn plugin_package(name: &str) -> &'static str {
    match name {
        "openssl" | "gcm" | "aesni" | "agent" | "connmark" => "libstrongswan-standard-plugins",
        "chapoly" | "curve25519" | "ccm" | "ctr" | "cmac" | "af-alg" | "gcrypt" | "pkcs11" | "rdrand" => {
            "libstrongswan-extra-plugins"
        }
        "kernel-libipsec" | "farp" | "dhcp" | "eap-radius" | "error-notify" | "forecast" => "libcharon-extra-plugins",
        "socket-default" | "updown" | "counters" | "bypass-lan" => "strongswan-libcharon",
        "vici" => "strongswan-swanctl",
        _ => "libstrongswan",
    }
}

/// A plugin of charon's or swanctl's `load` list, looked for in `dir`.
fn plugin(dir: &Path, name: &str) -> Need {
    Need {
        what: format!("strongSwan plugin '{name}'"),
        package: plugin_package(name),
        present: dir.join(format!("libstrongswan-{name}.so")).is_file(),
    }
}

/// Everything `lab up` with these arguments will use.
pub fn needs(a: &UpArgs) -> Vec<Need> {
    needs_in(a, Path::new(PLUGIN_DIR))
}

fn needs_in(a: &UpArgs, plugin_dir: &Path) -> Vec<Need> {
    let mut n = vec![tool("ip", "iproute2"), tool("ping", "iputils-ping")];
    if a.nat || a.cloud || a.firewall.is_some() {
        n.push(tool("nft", "nftables"));
    }
    if a.capture.is_some() {
        n.push(tool("dumpcap", "tshark"));
    }
    if a.wan_offload_off() {
        n.push(tool("ethtool", "ethtool"));
    }
    if a.gateways == Gateways::Ikeda && a.ike.is_some() && a.peer == Peer::Libreswan && a.peer_root.is_none() {
        n.push(file("libreswan's pluto", "/usr/libexec/ipsec/pluto", "libreswan"));
    }
    let charon = a.gateways == Gateways::Strongswan
        || (a.gateways == Gateways::Ikeda && a.ike.is_some() && a.peer == Peer::Strongswan);
    if charon {
        n.push(file("strongSwan's charon", strongswan::CHARON, "strongswan-charon"));
        n.push(tool("swanctl", "strongswan-swanctl"));
        for p in strongswan::CHARON_PLUGINS
            .split_whitespace()
            .chain(strongswan::SWANCTL_PLUGINS.split_whitespace())
        {
            if !n.iter().any(|x| x.what == format!("strongSwan plugin '{p}'")) {
                n.push(plugin(plugin_dir, p));
            }
        }
    }
    n
}

/// The packages that bring what is missing, each once, in order.
pub fn missing_packages(needs: &[Need]) -> Vec<&'static str> {
    let mut p: Vec<&'static str> = Vec::new();
    for n in needs.iter().filter(|n| !n.present) {
        if !p.contains(&n.package) {
            p.push(n.package);
        }
    }
    p
}

/// The missing pieces grouped by the package that brings them:
/// "iputils-ping (for 'ping'), libstrongswan-standard-plugins (for
/// strongSwan plugins openssl, gcm)".
pub fn describe_missing(needs: &[Need]) -> String {
    missing_packages(needs)
        .into_iter()
        .map(|pkg| {
            let mut plugins = Vec::new();
            let mut other = Vec::new();
            for n in needs.iter().filter(|n| !n.present && n.package == pkg) {
                match n.what.strip_prefix("strongSwan plugin ") {
                    Some(p) => plugins.push(p.trim_matches('\'')),
                    None => other.push(n.what.clone()),
                }
            }
            if !plugins.is_empty() {
                let s = if plugins.len() == 1 { "" } else { "s" };
                other.push(format!("strongSwan plugin{s} {}", plugins.join(", ")));
            }
            format!("{pkg} (for {})", other.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Check what the lab needs; with `install`, or when the user says yes at
/// a terminal, install the missing packages with apt-get and check again.
pub fn ensure(a: &UpArgs, install: bool) -> Result<(), String> {
    let n = needs(a);
    let pkgs = missing_packages(&n);
    if pkgs.is_empty() {
        return Ok(());
    }
    let what = format!(
        "the Debian package{} {}",
        if pkgs.len() == 1 { "" } else { "s" },
        describe_missing(&n)
    );
    let cmd = format!("apt-get install --no-install-recommends {}", pkgs.join(" "));
    let go = install || (std::io::stdin().is_terminal() && ask(&format!("the lab needs {what}.\nRun `{cmd}` now?")));
    if !go {
        return Err(format!(
            "the lab needs {what}; install with `{cmd}`, or run `ikeda lab up --install-deps` to have the lab do it"
        ));
    }
    apt_install(&pkgs)?;
    let n = needs(a);
    if missing_packages(&n).is_empty() {
        Ok(())
    } else {
        Err(format!("still missing after apt-get install: {}", describe_missing(&n)))
    }
}

fn ask(q: &str) -> bool {
    eprint!("{q} [Y/n] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    // End of input (Ctrl-D) is no answer, and no answer is no.
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => false,
        Ok(_) => matches!(line.trim(), "" | "y" | "Y" | "yes" | "Yes"),
    }
}

/// `apt-get update` and `apt-get install`, non-interactively, in the
/// foreground so the user sees what apt does.
fn apt_install(pkgs: &[&str]) -> Result<(), String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!("installing {} needs root", pkgs.join(" ")));
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err(format!(
            "no apt-get on this machine; install the equivalents of the Debian packages {} by hand",
            pkgs.join(" ")
        ));
    }
    eprintln!("installing {} with apt-get", pkgs.join(" "));
    if pkgs.contains(&"tshark") {
        // tshark's package asks whether non-root users may capture: no.
        let mut c = Command::new("debconf-set-selections")
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("debconf-set-selections: {e}"))?;
        if let Some(mut i) = c.stdin.take() {
            let _ = i.write_all(b"wireshark-common wireshark-common/install-setuid boolean false\n");
        }
        let _ = c.wait();
    }
    let run = |args: &[&str]| -> Result<(), String> {
        let st = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| format!("apt-get: {e}"))?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("apt-get {} failed ({st})", args.join(" ")))
        }
    };
    run(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(pkgs);
    run(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plugin_the_lab_loads_has_its_debian_package() {
        // Debian 12's packages, as `dpkg -c` lists their plugin files.
        for (p, pkg) in [
            ("openssl", "libstrongswan-standard-plugins"),
            ("gcm", "libstrongswan-standard-plugins"),
            ("curve25519", "libstrongswan-extra-plugins"),
            ("chapoly", "libstrongswan-extra-plugins"),
            ("kernel-libipsec", "libcharon-extra-plugins"),
            ("socket-default", "strongswan-libcharon"),
            ("vici", "strongswan-swanctl"),
            ("aes", "libstrongswan"),
            ("md5", "libstrongswan"),
            ("kernel-netlink", "libstrongswan"),
        ] {
            assert_eq!(plugin_package(p), pkg, "{p}");
        }
    }

    #[test]
    fn missing_things_are_named_with_their_packages_once_each() {
        let n = vec![
            Need {
                what: "'ping'".into(),
                package: "iputils-ping",
                present: false,
            },
            plugin_named("gcm", false),
            plugin_named("openssl", false),
            plugin_named("aes", true),
        ];
        assert_eq!(missing_packages(&n), ["iputils-ping", "libstrongswan-standard-plugins"]);
        assert_eq!(
            describe_missing(&n),
            "iputils-ping (for 'ping'), libstrongswan-standard-plugins (for strongSwan plugins gcm, openssl)"
        );
    }

    #[test]
    fn a_lab_with_charon_checks_each_plugin_it_loads() {
        // A plugin directory as Debian's strongSwan leaves it without
        // libstrongswan-standard-plugins: everything but openssl and gcm.
        let dir = std::env::temp_dir().join(format!("ikeda-preflight-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for p in strongswan::CHARON_PLUGINS
            .split_whitespace()
            .chain(strongswan::SWANCTL_PLUGINS.split_whitespace())
            .filter(|p| !["openssl", "gcm"].contains(p))
        {
            std::fs::write(dir.join(format!("libstrongswan-{p}.so")), b"").unwrap();
        }
        let plugins = |args: &[&str]| -> Vec<Need> {
            needs_in(&super::super::tests::up_args(args), &dir)
                .into_iter()
                .filter(|n| n.what.starts_with("strongSwan plugin"))
                .collect()
        };
        let n = plugins(&["--ike", "1", "--peer", "strongswan"]);
        assert_eq!(
            describe_missing(&n),
            "libstrongswan-standard-plugins (for strongSwan plugins openssl, gcm)"
        );
        assert_eq!(
            missing_packages(&plugins(&["--gateways", "strongswan"])),
            ["libstrongswan-standard-plugins"]
        );
        // Two ikeda gateways load no plugin at all.
        assert!(plugins(&[]).is_empty());
        assert!(plugins(&["--ike", "2"]).is_empty());
        std::fs::write(dir.join("libstrongswan-openssl.so"), b"").unwrap();
        std::fs::write(dir.join("libstrongswan-gcm.so"), b"").unwrap();
        assert!(missing_packages(&plugins(&["--ike", "2", "--peer", "strongswan"])).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn plugin_named(name: &str, present: bool) -> Need {
        Need {
            what: format!("strongSwan plugin '{name}'"),
            package: plugin_package(name),
            present,
        }
    }
}
