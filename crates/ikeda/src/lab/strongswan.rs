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
    extra_net, gw_wan4, ns_name, sh, spawn_in_ns, wait_until, write_secret, Initiator, LabState, UpArgs, GW_WAN,
    LAN_NET, LAN_NET6, NODES,
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
             charon {{\n  load_modular = no\n  load = {CHARON_PLUGINS}\n  install_routes = yes\n{retransmit}\
             \x20 plugins {{\n    vici {{\n      socket = {vici}\n    }}\n  }}\n\
             \x20 filelog {{\n    main {{\n      path = {log}\n      time_format = %H:%M:%S\n      ike_name = yes\n      append = yes\n      flush_line = yes\n      default = 1\n    }}\n{keylog}  }}\n}}\n\
             swanctl {{\n  load = {SWANCTL_PLUGINS}\n}}\n",
            vici = vici_uri(dir, gw),
            retransmit = retransmit_settings(a),
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
    let ids = super::conn_ids(a, i, "s2s")
        .or_else(|| super::ike_ids(a, i))
        .unwrap_or_else(|| (gw_wan4(a, i).to_string(), gw_wan4(a, j).to_string()));
    // Started by charon itself when the config loads, or by `swanctl
    // --initiate` from `lab up` (which then reports a failure in its words).
    let start = if async_start(a) && a.initiates(i) { "start" } else { "none" };
    // IKEv1 negotiates one selector pair per Quick Mode: a child per family.
    let child = |name: &str, l: &str, r: &str| {
        format!(
            "      {name} {{\n        mode = tunnel\n        local_ts = {l}\n        remote_ts = {r}\n        esp_proposals = {esp}\n        start_action = {start}\n{ipcomp}      }}\n",
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
        let mut c = child(
            "net",
            &format!("{},{}", LAN_NET[i], LAN_NET6[i]),
            &format!("{},{}", LAN_NET[j], LAN_NET6[j]),
        );
        // `--children N`: swanctl's children of one connection, each its
        // own CHILD SA under the one IKE SA.
        for k in 1..usize::from(a.children) {
            c += &child(&format!("net{k}"), &extra_net(i, k), &extra_net(j, k));
        }
        c
    };
    // `--conns 2`: a second connection, its own identities and (IKEv2) PSK.
    let second = match super::conn_ids(a, i, "s2s2") {
        Some((lid, rid)) => format!(
            "  s2s2 {{\n    version = {v}\n    local_addrs = {l}\n    remote_addrs = {r}\n    proposals = {ikep}\n\
             \x20   local {{\n      auth = psk\n      id = {lid}\n    }}\n    remote {{\n      auth = psk\n      id = {rid}\n    }}\n\
             \x20   children {{\n{children}    }}\n  }}\n",
            l = gw_wan4(a, i),
            r = GW_WAN[j],
            ikep = a.ike_proposal(),
            children = child(SECOND_CHILD, &extra_net(i, 1), &extra_net(j, 1)),
            v = if v1 { 1 } else { 2 },
        ),
        None => String::new(),
    };
    let second_secret = match super::conn_ids(a, i, "s2s2") {
        Some((lid, rid)) => format!(
            "  ike-s2s2 {{\n    id-1 = {lid}\n    id-2 = {rid}\n    secret = \"{}\"\n  }}\n",
            super::second_psk(a, psk)
        ),
        None => String::new(),
    };
    write_secret(
        &d.join("swanctl/swanctl.conf"),
        &format!(
            "connections {{\n  s2s {{\n    version = {v}\n    local_addrs = {l}\n    remote_addrs = {r}\n    proposals = {ikep}\n{dpd}\
             \x20   local {{\n      auth = psk\n      id = {lid}\n    }}\n    remote {{\n      auth = psk\n      id = {rid}\n    }}\n\
             \x20   children {{\n{children}    }}\n  }}\n{second}}}\n\
             secrets {{\n  ike-s2s {{\n    id-1 = {lid}\n    id-2 = {rid}\n    secret = \"{psk}\"\n  }}\n{second_secret}}}\n",
            ikep = a.ike_proposal(),
            v = if v1 { 1 } else { 2 },
            // IKEv1 peers do DPD only when told to (RFC 3706 is optional).
            dpd = if v1 { "    dpd_delay = 10s\n" } else { "" },
            // The addresses this gateway uses (its own, the one it reaches
            // the peer at) and the identities (each side's own address).
            l = gw_wan4(a, i),
            r = GW_WAN[j],
            lid = ids.0,
            rid = ids.1,
        ),
    )?;
    Ok(())
}

/// `--retransmit-tries` and `--retransmit-timeout` for the charons of a
/// strongSwan-only lab (an ikeda lab's strongSwan peer keeps charon's
/// defaults: the options are the ikeda gateway's there).
fn retransmit_settings(a: &UpArgs) -> String {
    if a.gateways != super::Gateways::Strongswan {
        return String::new();
    }
    let mut s = String::new();
    if let Some(t) = a.retransmit_tries {
        s.push_str(&format!("  retransmit_tries = {t}\n"));
    }
    if let Some(ms) = a.retransmit_timeout.as_deref().and_then(crate::config::parse_duration_ms) {
        s.push_str(&format!("  retransmit_timeout = {}\n", ms as f64 / 1000.0));
    }
    s
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

/// Whether the initiating charons start their connection themselves, as
/// soon as it is loaded (`start_action = start`): when both initiate at
/// once, when one starts late, or when `lab up` does not wait.
pub fn async_start(a: &UpArgs) -> bool {
    a.initiator == Initiator::Both || a.no_wait()
}

/// Start charon on gateway `i` with the lab's config written; true when it
/// runs now and its config is still to be loaded ([`load`]): loading is
/// what starts an initiator's connection, so the lab loads the responders
/// first. With a start delay, charon starts that much later, and a loader
/// waits for its vici socket and loads the config then (false).
pub fn spawn(name: &str, dir: &Path, i: usize, a: &UpArgs, psk: &str, st: &mut LabState) -> Result<bool, String> {
    if !Path::new(CHARON).exists() {
        return Err(format!(
            "{CHARON} not found: install strongswan-charon, strongswan-swanctl and libcharon-extra-plugins"
        ));
    }
    let gw = NODES[i];
    write_conf(dir, i, a, psk)?;
    let d = gw_dir(dir, gw);
    let delay = a.start_delays()?[i];
    let script = format!(
        "{}mount --bind \"$1\" /run && exec env STRONGSWAN_CONF=\"$2\" \"$3\"",
        if delay > 0 { format!("sleep {delay}; ") } else { String::new() }
    );
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
            &script,
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
    if delay > 0 {
        // The same PID waits for charon's socket, then becomes swanctl.
        let c = swanctl(dir, gw);
        let env: Vec<(String, String)> = c
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut load = Command::new("swanctl");
        load_args(dir, gw, &mut load);
        let rest: Vec<String> = load.get_args().map(|x| x.to_string_lossy().into_owned()).collect();
        let wait = format!("until [ -S \"{}\" ]; do sleep 0.1; done; exec swanctl \"$@\"", sock.display());
        let mut args = vec!["-c", wait.as_str(), "swanctl"];
        args.extend(rest.iter().map(String::as_str));
        let pid = spawn_in_ns(
            &ns_name(name, gw),
            Path::new("/bin/sh"),
            &args,
            &dir.join(format!("charon-{gw}.stdout.log")),
            &env,
        )?;
        st.pids.push((format!("swanctl {gw} (load after the start delay)"), pid));
        return Ok(false);
    }
    Ok(true)
}

/// Load a running charon's config once its vici socket is there.
pub fn load(dir: &Path, gw: &str) -> Result<(), String> {
    let sock = gw_dir(dir, gw).join("charon.vici");
    if !wait_until(Duration::from_secs(10), || sock.exists()) {
        return Err(format!(
            "charon on {gw}: no vici socket after 10 s (see {})",
            dir.display()
        ));
    }
    let mut c = swanctl(dir, gw);
    load_args(dir, gw, &mut c);
    sh(&mut c)?;
    Ok(())
}

/// swanctl's arguments that load a gateway's config.
fn load_args(dir: &Path, gw: &str, c: &mut Command) {
    c.args(["--load-all", "--noprompt", "--file"])
        .arg(gw_dir(dir, gw).join("swanctl/swanctl.conf"))
        .args(["--uri", &vici_uri(dir, gw)]);
}

/// The child of the second connection (`--conns 2`).
pub const SECOND_CHILD: &str = "second";

/// `swanctl --initiate` on a gateway's charon (IKEv1: both children, a
/// Quick Mode each; IKEv2: each child, the first in IKE_AUTH, the others by
/// CREATE_CHILD_SA, and the second connection's).
pub fn initiate(dir: &Path, gw: &str, a: &UpArgs) -> Result<(), String> {
    let mut children: Vec<(&str, String)> = if a.ike == Some(1) {
        vec![("s2s", "net".into()), ("s2s", "net6".into())]
    } else {
        (0..usize::from(a.children))
            .map(|k| ("s2s", if k == 0 { "net".to_string() } else { format!("net{k}") }))
            .collect()
    };
    if a.conns > 1 {
        children.push(("s2s2", SECOND_CHILD.into()));
    }
    for (ike, child) in &children {
        sh(swanctl(dir, gw).args([
            "--initiate",
            "--ike",
            ike,
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

/// Start charon on gw1 and gw2, load the config, initiate from the
/// initiator(s) and wait for the CHILD_SA on both sides (not with
/// `--no-wait`).
pub fn start_pair(name: &str, dir: &Path, a: &UpArgs, st: &mut LabState) -> Result<(), String> {
    let psk = random_psk()?;
    let mut now = [false; 2];
    for (i, n) in now.iter_mut().enumerate() {
        *n = spawn(name, dir, i, a, &psk, st)?;
    }
    // Responders first: an initiator's first message must find its peer.
    for i in [0, 1].into_iter().filter(|i| now[*i] && !a.initiates(*i)) {
        load(dir, NODES[i])?;
    }
    for i in [0, 1].into_iter().filter(|i| now[*i] && a.initiates(*i)) {
        load(dir, NODES[i])?;
    }
    if a.no_wait() {
        return Ok(());
    }
    if !async_start(a) {
        initiate(dir, super::NODES[usize::from(a.initiator == Initiator::Gw2)], a)?;
    }
    for gw in ["gw1", "gw2"] {
        wait_installed(dir, gw)?;
    }
    Ok(())
}
