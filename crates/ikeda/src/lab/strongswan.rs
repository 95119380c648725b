//! strongSwan charon (kernel-libipsec, userspace ESP) on the lab gateways:
//! the reference peer and the performance baseline.
//!
//! Things charon needs to run twice on one machine, in namespaces:
//! - its PID file path is compiled in (/var/run/charon.pid), so each charon
//!   runs in its own mount namespace with a private directory over /run;
//! - the vici socket and the log go to the lab's directory;
//! - `kernel-libipsec` must be loaded before `kernel-netlink` (the first
//!   registered IPsec backend wins; this kernel has no ESP for XFRM);
//! - kernel-libipsec asks for UDP encapsulation, so ESP flows on 4500.
//!
//! With `--nat` (gw1 behind the NAT) each side's IKE identity is its own
//! address: gw1 is 10.50.1.11 while gw2 reaches it as 192.168.50.11.

use super::{
    gw_wan4, ns_name, sh, spawn_in_ns, wait_until, write_secret, LabState, UpArgs, GW_WAN, LAN_NET, LAN_NET6, NODES,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const CHARON: &str = "/usr/lib/ipsec/charon";
/// charon's `load` list. Every one must be present: charon skips a missing
/// plugin silently and then fails the negotiation that needed it (the lab's
/// preflight checks them). No `des`: Debian builds none; openssl has 3DES.
pub const CHARON_PLUGINS: &str =
    "random nonce openssl aes md5 sha1 sha2 hmac gcm chapoly curve25519 gmp kdf kernel-libipsec kernel-netlink socket-default vici";
/// swanctl's `load` list.
pub const SWANCTL_PLUGINS: &str = "pem pkcs1 pkcs8 x509 pubkey openssl random nonce";

fn gw_dir(dir: &Path, gw: &str) -> PathBuf {
    dir.join(format!("charon-{gw}"))
}

pub fn vici_uri(dir: &Path, gw: &str) -> String {
    format!("unix://{}/charon.vici", gw_dir(dir, gw).display())
}

/// `swanctl` against one gateway's charon.
pub fn swanctl(dir: &Path, gw: &str) -> Command {
    let d = gw_dir(dir, gw);
    let mut c = Command::new("swanctl");
    c.env("STRONGSWAN_CONF", d.join("strongswan.conf"))
        .env("SWANCTL_DIR", d.join("swanctl"));
    c
}

fn write_conf(dir: &Path, i: usize, a: &UpArgs, psk: &str) -> Result<(), String> {
    let gw = NODES[i];
    let j = 1 - i;
    let d = gw_dir(dir, gw);
    for sub in [
        "run",
        "swanctl/x509",
        "swanctl/x509ca",
        "swanctl/private",
        "swanctl/rsa",
        "swanctl/ecdsa",
        "swanctl/pkcs8",
        "swanctl/pubkey",
        "swanctl/conf.d",
    ] {
        fs::create_dir_all(d.join(sub)).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    // With key export, a second log at level 4 for `ike` and `chd`: the
    // one that prints the IKE and CHILD SA keys. It is a key file, not a
    // log: it goes into the key directory (0700, itself 0600), and its
    // name does not end in `.log`, so the leak check never takes it for a
    // gateway log.
    let keylog = match charon_key_log(dir, gw, a)? {
        Some(k) => format!(
            "    keys {{\n      path = {}\n      time_format = %H:%M:%S\n      ike_name = yes\n      append = yes\n      flush_line = yes\n      default = 1\n      ike = 4\n      chd = 4\n    }}\n",
            k.display()
        ),
        None => String::new(),
    };
    fs::write(
        d.join("strongswan.conf"),
        format!(
            "# written by `ikeda lab up --gateways strongswan`; does not include /etc/strongswan.d\n\
             charon {{\n  load_modular = no\n  load = {CHARON_PLUGINS}\n  install_routes = yes\n\
             \x20 plugins {{\n    vici {{\n      socket = {vici}\n    }}\n  }}\n\
             \x20 filelog {{\n    main {{\n      path = {log}\n      time_format = %H:%M:%S\n      ike_name = yes\n      append = yes\n      flush_line = yes\n      default = 1\n    }}\n{keylog}  }}\n}}\n\
             swanctl {{\n  load = {SWANCTL_PLUGINS}\n}}\n",
            vici = vici_uri(dir, gw),
            log = dir.join(format!("charon-{gw}.log")).display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let esp = if a.esn {
        format!("{}-esn", a.gw_esp(i))
    } else {
        a.gw_esp(i).to_string()
    };
    let v1 = a.ike == Some(1);
    // IKEv1 negotiates one selector pair per Quick Mode: a child per family.
    let child = |name: &str, l: &str, r: &str| {
        format!(
            "      {name} {{\n        mode = tunnel\n        local_ts = {l}\n        remote_ts = {r}\n        esp_proposals = {esp}\n        start_action = none\n{ipcomp}      }}\n",
            ipcomp = if v1 && a.compress { "        ipcomp = yes\n" } else { "" },
        )
    };
    let children = if v1 {
        let mut c = child("net", LAN_NET[i], LAN_NET[j]) + &child("net6", LAN_NET6[i], LAN_NET6[j]);
        if a.gateway_policies {
            // The racoon site's other two pairs, as the ikeda side names them.
            c += &child("netgw", LAN_NET[i], GW_WAN[j]);
            c += &child("gwnet", GW_WAN[i], LAN_NET[j]);
        }
        c
    } else {
        child(
            "net",
            &format!("{},{}", LAN_NET[i], LAN_NET6[i]),
            &format!("{},{}", LAN_NET[j], LAN_NET6[j]),
        )
    };
    write_secret(
        &d.join("swanctl/swanctl.conf"),
        &format!(
            "connections {{\n  s2s {{\n    version = {v}\n    local_addrs = {l}\n    remote_addrs = {r}\n    proposals = {ikep}\n{dpd}\
             \x20   local {{\n      auth = psk\n      id = {lid}\n    }}\n    remote {{\n      auth = psk\n      id = {rid}\n    }}\n\
             \x20   children {{\n{children}    }}\n  }}\n}}\n\
             secrets {{\n  ike-s2s {{\n    id-1 = {lid}\n    id-2 = {rid}\n    secret = \"{psk}\"\n  }}\n}}\n",
            ikep = a.ike_proposal(),
            v = if v1 { 1 } else { 2 },
            // IKEv1 peers do DPD only when told to (RFC 3706 is optional).
            dpd = if v1 { "    dpd_delay = 10s\n" } else { "" },
            // The addresses this gateway uses (its own, the one it reaches
            // the peer at) and the identities (each side's own address).
            l = gw_wan4(a, i),
            r = GW_WAN[j],
            lid = gw_wan4(a, i),
            rid = gw_wan4(a, j),
        ),
    )?;
    Ok(())
}

/// The name of the level-4 charon log in a gateway's key directory.
pub const CHARON_KEY_LOG: &str = "charon-keys.txt";

/// `lab up --gateways strongswan --export-keys`: where charon on `gw`
/// logs its keys (`<state>/keys-<gw>/charon-keys.txt`), created 0600 in a
/// 0700 directory before charon opens it for appending (charon would
/// create it world-readable). `None` without key export, or for the
/// strongSwan peer of an ikeda lab (its keys are ikeda's too, and its one
/// log is archived for the leak check).
pub fn charon_key_log(dir: &Path, gw: &str, a: &UpArgs) -> Result<Option<PathBuf>, String> {
    if !a.export_keys() || a.gateways != super::Gateways::Strongswan {
        return Ok(None);
    }
    let kd = dir.join(format!("keys-{gw}"));
    crate::private::ensure_dir(&kd, "charon key directory")?;
    let f = kd.join(CHARON_KEY_LOG);
    crate::private::open_append(&f).map_err(|e| format!("{}: {e}", f.display()))?;
    Ok(Some(f))
}

/// A fresh random PSK, hex.
pub fn random_psk() -> Result<String, String> {
    let mut psk = vec![0u8; 24];
    ikeda_crypto::random_fill(&mut psk)?;
    Ok(psk.iter().map(|b| format!("{b:02x}")).collect())
}

/// Start charon on gateway `i` with the lab's config and load it.
pub fn start_one(name: &str, dir: &Path, i: usize, a: &UpArgs, psk: &str, st: &mut LabState) -> Result<(), String> {
    if !Path::new(CHARON).exists() {
        return Err(format!(
            "{CHARON} not found: install strongswan-charon, strongswan-swanctl and libcharon-extra-plugins"
        ));
    }
    let gw = NODES[i];
    write_conf(dir, i, a, psk)?;
    let d = gw_dir(dir, gw);
    // Own mount namespace with a private /run: charon's PID file path is fixed.
    let pid = spawn_in_ns(
        &ns_name(name, gw),
        Path::new("/usr/bin/unshare"),
        &[
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount --bind \"$1\" /run && exec env STRONGSWAN_CONF=\"$2\" \"$3\"",
            "sh",
            &d.join("run").to_string_lossy(),
            &d.join("strongswan.conf").to_string_lossy(),
            CHARON,
        ],
        &dir.join(format!("charon-{gw}.stdout.log")),
        &[],
    )?;
    st.pids.push((format!("charon {gw}"), pid));
    if a.export_keys() && a.gateways == super::Gateways::Strongswan {
        st.key_dirs.push((gw.to_string(), dir.join(format!("keys-{gw}"))));
    }
    let sock = d.join("charon.vici");
    if !wait_until(Duration::from_secs(10), || sock.exists()) {
        return Err(format!(
            "charon on {gw}: no vici socket after 10 s (see {})",
            dir.display()
        ));
    }
    sh(swanctl(dir, gw)
        .args(["--load-all", "--noprompt", "--file"])
        .arg(d.join("swanctl/swanctl.conf"))
        .args(["--uri", &vici_uri(dir, gw)]))?;
    Ok(())
}

/// `swanctl --initiate` on a gateway's charon (IKEv1: both children, a
/// Quick Mode each).
pub fn initiate(dir: &Path, gw: &str, a: &UpArgs) -> Result<(), String> {
    let children: &[&str] = if a.ike == Some(1) { &["net", "net6"] } else { &["net"] };
    for child in children {
        sh(swanctl(dir, gw).args([
            "--initiate",
            "--ike",
            "s2s",
            "--child",
            child,
            "--timeout",
            "15",
            "--uri",
            &vici_uri(dir, gw),
        ]))?;
    }
    Ok(())
}

/// Wait until a gateway's charon lists an installed CHILD_SA.
pub fn wait_installed(dir: &Path, gw: &str) -> Result<(), String> {
    let ok = wait_until(Duration::from_secs(15), || {
        sh(swanctl(dir, gw).args(["--list-sas", "--uri", &vici_uri(dir, gw)])).is_ok_and(|s| s.contains("INSTALLED"))
    });
    ok.then_some(())
        .ok_or_else(|| format!("strongSwan CHILD_SA not installed on {gw}"))
}

/// Start charon on gw1 and gw2, load the config, initiate from gw1 and
/// wait for the CHILD_SA on both sides.
pub fn start_pair(name: &str, dir: &Path, a: &UpArgs, st: &mut LabState) -> Result<(), String> {
    let psk = random_psk()?;
    for i in 0..2 {
        start_one(name, dir, i, a, &psk, st)?;
    }
    initiate(dir, "gw1", a)?;
    for gw in ["gw1", "gw2"] {
        wait_installed(dir, gw)?;
    }
    Ok(())
}
