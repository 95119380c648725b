//! `ikeda lab`: the classic two-site topology in network namespaces.
//!
//! ```text
//!   h1 (192.168.11.11)                                   h2 (192.168.12.12)
//!    | eth0                                                   | eth0
//!    | lan0 192.168.11.1                    192.168.12.1 lan0 |
//!   gw1 ---- wan0 192.168.50.11 ====== 192.168.50.12 wan0 ---- gw2
//!            (IPv6: 2001:db8:50::11/12, LANs 2001:db8:11::/64 and 2001:db8:12::/64)
//! ```
//!
//! With `--nat`, gw1 sits behind a masquerading NAT (nftables) in a fifth
//! namespace, so gw2 sees it as the NAT's public address 192.168.50.11
//! (IKEv2 NAT traversal, RFC 7296 §2.23, RFC 3948). The NAT is IPv4 only.
//!
//! ```text
//!   gw1 wan0 10.50.1.11 ---- in0 10.50.1.1 [nat] out0 192.168.50.11 ---- 192.168.50.12 wan0 gw2
//!       (default via 10.50.1.1)   masquerade 10.50.1.0/24 out of out0
//! ```
//!
//! Namespaces are named `ikl-<lab>-<node>`, so two labs never collide.
//! The lab's state (configs with keys, logs, PIDs) lives in
//! `/var/lib/ikeda/lab-<lab>/`. `down` removes namespaces by prefix, so it
//! also cleans up after a crash, and kills only PIDs the lab recorded.

use clap::{Args, Subcommand, ValueEnum};
use ikeda_crypto::{EspAlgorithm, SecretBytes};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub mod strongswan;

pub const GW_WAN: [&str; 2] = ["192.168.50.11", "192.168.50.12"];
pub const GW_WAN6: [&str; 2] = ["2001:db8:50::11", "2001:db8:50::12"];
pub const GW_LAN: [&str; 2] = ["192.168.11.1", "192.168.12.1"];
pub const GW_LAN6: [&str; 2] = ["2001:db8:11::1", "2001:db8:12::1"];
pub const HOST: [&str; 2] = ["192.168.11.11", "192.168.12.12"];
pub const HOST6: [&str; 2] = ["2001:db8:11::11", "2001:db8:12::12"];
pub const LAN_NET: [&str; 2] = ["192.168.11.0/24", "192.168.12.0/24"];
pub const LAN_NET6: [&str; 2] = ["2001:db8:11::/64", "2001:db8:12::/64"];
const NODES: [&str; 4] = ["gw1", "gw2", "h1", "h2"];
/// With `--nat`: gw1's private WAN address, the NAT's inside address and net.
pub const NAT_GW1_WAN: &str = "10.50.1.11";
pub const NAT_INSIDE: &str = "10.50.1.1";
pub const NAT_INSIDE_NET: &str = "10.50.1.0/24";
/// The NAT's namespace node name (`ikl-<lab>-nat`).
pub const NAT_NODE: &str = "nat";

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build the topology, start a gateway in gw1 and gw2, ping across.
    Up(UpArgs),
    /// Show the lab's nodes, gateway processes and data plane counters.
    Status(NameArg),
    /// Run a command in a node: `ikeda lab exec gw1 -- ip addr`.
    Exec {
        #[command(flatten)]
        name: NameArg,
        /// gw1, gw2, h1 or h2 (nat, when up with --nat).
        node: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Stop the gateways and remove the namespaces (also after a crash).
    Down(NameArg),
}

#[derive(Args, Clone)]
pub struct NameArg {
    /// Lab name (lower-case letters and digits, up to 8), so several labs can coexist.
    #[arg(long, default_value = "lab")]
    pub name: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Debug)]
pub enum Gateways {
    /// ikeda on both gateways (manual keys).
    Ikeda,
    /// strongSwan charon with kernel-libipsec on both (IKEv2), the baseline.
    Strongswan,
    /// No tunnel: the gateways only route (plain veth baseline).
    None,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Debug)]
pub enum EncapArg {
    Esp,
    Udp,
}

#[derive(Args, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// ESP proposal (strongSwan syntax): aes128gcm16, aes256gcm16, chacha20poly1305, aes128-sha1, aes256-sha256, ...
    #[arg(long, default_value = "aes128gcm16")]
    pub esp: String,
    /// Raw ESP (IP protocol 50) or UDP-encapsulated ESP (RFC 3948, port 4500);
    /// esp by default, udp with --nat.
    #[arg(long, value_enum)]
    pub encap: Option<EncapArg>,
    /// Extended sequence numbers.
    #[arg(long)]
    pub esn: bool,
    /// Carry the tunnel over IPv6 between the gateways (the LANs keep both families).
    #[arg(long)]
    pub outer6: bool,
    /// What runs on the gateways.
    #[arg(long, value_enum, default_value = "ikeda")]
    pub gateways: Gateways,
    /// Do not ping across after bringing the lab up.
    #[arg(long)]
    pub no_ping: bool,
    /// Negotiate the SAs with IKE (version 2) instead of manual keys.
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=2))]
    pub ike: Option<u8>,
    /// With --ike: what runs on gw2 (gw1 always runs ikeda).
    #[arg(long, value_enum, default_value = "ikeda")]
    pub peer: Peer,
    /// IKE proposal (strongSwan syntax), with --ike or --gateways strongswan.
    #[arg(long, default_value = "aes128gcm16-prfsha256-x25519")]
    pub ike_proposal: String,
    /// With --ike: which gateway initiates.
    #[arg(long, value_enum, default_value = "gw1")]
    pub initiator: Initiator,
    /// Put gw1 behind a masquerading IPv4 NAT (namespace ikl-<name>-nat), to
    /// test NAT traversal: gw1's WAN becomes 10.50.1.11, gw2 sees 192.168.50.11.
    #[arg(long)]
    pub nat: bool,
    /// With --nat: the NAT does not keep source ports but maps them into
    /// 40000-40999 (as a carrier-grade NAT may), so IKE and ESP arrive at gw2
    /// from ports other than 500 and 4500.
    #[arg(long, requires = "nat")]
    pub nat_remap: bool,
    /// With --ike: CHILD SA rekey time on the ikeda gateways (e.g. 10s);
    /// the hard lifetime is 10 % longer.
    #[arg(long)]
    pub rekey_time: Option<String>,
    /// With --ike: CHILD SA rekey after this many bytes on the ikeda gateways.
    #[arg(long)]
    pub rekey_bytes: Option<u64>,
    /// With --ike: IKE SA rekey time on the ikeda gateways.
    #[arg(long)]
    pub ike_rekey_time: Option<String>,
    /// With --ike: dead peer detection delay on the ikeda gateways (e.g. 3s).
    #[arg(long)]
    pub dpd_delay: Option<String>,
    /// With --ike: what a dead peer leads to.
    #[arg(long, default_value = "clear")]
    pub dpd_action: String,
    /// With --ike: IKE retransmission tries and first timeout on the ikeda
    /// gateways (defaults 5 and 4s, as strongSwan).
    #[arg(long)]
    pub retransmit_tries: Option<u32>,
    #[arg(long)]
    pub retransmit_timeout: Option<String>,
    /// With --ike: the initiator waits for traffic (start_action = trap):
    /// `lab up` does not wait for the tunnel, the first packet brings it up.
    #[arg(long)]
    pub trap: bool,
}

impl UpArgs {
    /// The encapsulation in effect: as given, else UDP behind a NAT, else ESP.
    pub fn encap(&self) -> EncapArg {
        self.encap
            .unwrap_or(if self.nat { EncapArg::Udp } else { EncapArg::Esp })
    }

    /// Refuse combinations the lab cannot build.
    fn check(&self) -> Result<(), String> {
        if !self.nat {
            return Ok(());
        }
        if self.outer6 {
            return Err("--nat puts gw1 behind an IPv4-only NAT; it cannot be combined with --outer6".into());
        }
        if self.encap == Some(EncapArg::Esp) {
            return Err(
                "--encap esp with --nat: raw ESP (IP protocol 50) does not pass a masquerading NAT; \
                 use --encap udp (the default with --nat)"
                    .into(),
            );
        }
        if self.gateways == Gateways::None {
            return Err("--nat tests NAT traversal of a tunnel; it needs --gateways ikeda or strongswan".into());
        }
        if self.nat_remap && self.gateways == Gateways::Ikeda && self.ike.is_none() {
            return Err(
                "--nat-remap with manual keys: gw2's SA sends to the fixed port 4500, which the remapping NAT \
                 does not forward; use --ike 2 (IKE learns the mapped port)"
                    .into(),
            );
        }
        if self.ike.is_some() && self.initiator == Initiator::Gw2 {
            return Err(
                "--nat with --initiator gw2: gw2 cannot reach gw1 behind the NAT before gw1 has opened a mapping; \
                 gw1 has to initiate"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Gateway `i`'s own outer IPv4 address (gw1's is private behind the NAT);
/// it is also the gateway's IKE identity.
pub fn gw_wan4(a: &UpArgs, i: usize) -> &'static str {
    if a.nat && i == 0 {
        NAT_GW1_WAN
    } else {
        GW_WAN[i]
    }
}

/// Gateway `i`'s own outer address in the tunnel's family.
fn gw_local(a: &UpArgs, i: usize) -> &'static str {
    if a.outer6 {
        GW_WAN6[i]
    } else {
        gw_wan4(a, i)
    }
}

/// The address gateway `i` sends to reach the other gateway (for gw2 behind
/// `--nat`, the NAT's public address 192.168.50.11).
fn gw_peer(a: &UpArgs, i: usize) -> &'static str {
    if a.outer6 {
        GW_WAN6[1 - i]
    } else {
        GW_WAN[1 - i]
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Debug)]
pub enum Peer {
    Ikeda,
    Strongswan,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Debug)]
pub enum Initiator {
    Gw1,
    Gw2,
}

#[derive(Serialize, Deserialize, Default)]
pub struct LabState {
    pub name: String,
    pub prefix: String,
    pub gateways: Option<Gateways>,
    pub esp: String,
    /// PIDs this lab started, with what they are (for `down`).
    pub pids: Vec<(String, u32)>,
    /// gw1 is behind the NAT namespace.
    #[serde(default)]
    pub nat: bool,
}

pub fn state_dir(name: &str) -> PathBuf {
    match std::env::var_os("IKEDA_LAB_DIR") {
        Some(d) => PathBuf::from(d).join(format!("lab-{name}")),
        None => PathBuf::from(format!("/var/lib/ikeda/lab-{name}")),
    }
}

pub fn ns_name(name: &str, node: &str) -> String {
    format!("ikl-{name}-{node}")
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 8 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(format!("lab name '{name}': use 1-8 lower-case letters or digits"));
    }
    Ok(())
}

/// Run a command, failing with its stderr.
pub fn sh(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String, String> {
    sh(Command::new("ip").args(args))
}

/// `ip netns exec NS ...` as a Command.
pub fn in_ns(ns: &str, prog: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, prog]);
    c
}

fn netns_list() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

pub fn main(cmd: LabCmd) -> i32 {
    let r = match cmd {
        LabCmd::Up(a) => up(&a),
        LabCmd::Status(n) => status(&n.name),
        LabCmd::Exec { name, node, cmd } => exec(&name.name, &node, &cmd),
        LabCmd::Down(n) => down(&n.name).map(|_| println!("lab '{}' is down", n.name)),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ikeda lab: {e}");
            1
        }
    }
}

fn save_state(dir: &Path, st: &LabState) -> Result<(), String> {
    let j = serde_json::to_string_pretty(st).map_err(|e| e.to_string())?;
    fs::write(dir.join("lab.json"), j).map_err(|e| format!("{}: {e}", dir.display()))
}

fn load_state(name: &str) -> Option<LabState> {
    let t = fs::read_to_string(state_dir(name).join("lab.json")).ok()?;
    serde_json::from_str(&t).ok()
}

/// Write a file only its owner can read (it holds keys).
pub fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The NAT's nft masquerade rules for `--nat` (`remap`: `--nat-remap`
/// maps UDP source ports into 40000-40999 first).
fn nat_rules(remap: bool) -> Vec<Vec<&'static str>> {
    let head = [
        "add",
        "rule",
        "ip",
        "ikeda_nat",
        "postrouting",
        "oifname",
        "out0",
        "ip",
        "saddr",
        NAT_INSIDE_NET,
    ];
    let mut rules = Vec::new();
    if remap {
        let mut r = head.to_vec();
        r.extend(["meta", "l4proto", "udp", "masquerade", "to", ":40000-40999"]);
        rules.push(r);
    }
    let mut r = head.to_vec();
    r.push("masquerade");
    rules.push(r);
    rules
}

fn topology(name: &str, nat: bool, remap: bool) -> Result<(), String> {
    let ns = |n: &str| ns_name(name, n);
    let nodes: &[&str] = if nat {
        &["gw1", "gw2", "h1", "h2", NAT_NODE]
    } else {
        &NODES
    };
    for n in nodes {
        ip(&["netns", "add", &ns(n)])?;
        ip(&["-n", &ns(n), "link", "set", "lo", "up"])?;
    }
    // Create each pair inside the first namespace with its peer moved in the
    // same request, so no interface ever appears in the caller's namespace.
    let veth = |a: &str, a_dev: &str, b: &str, b_dev: &str| {
        ip(&[
            "-n",
            &ns(a),
            "link",
            "add",
            a_dev,
            "type",
            "veth",
            "peer",
            "name",
            b_dev,
            "netns",
            &ns(b),
        ])
    };
    let addr = |dev: &str, addr: &str, nsn: &str| ip(&["-n", nsn, "addr", "add", addr, "dev", dev, "nodad"]);
    let sysctl = |nsn: &str, kv: &[(&str, &str)]| -> Result<(), String> {
        for (k, v) in kv {
            sh(in_ns(nsn, "sysctl").args(["-qw", &format!("{k}={v}")]))?;
        }
        Ok(())
    };
    if nat {
        // gw1 wan0 <-> nat in0, nat out0 <-> gw2 wan0; IPv4 only.
        veth("gw1", "wan0", NAT_NODE, "in0")?;
        veth(NAT_NODE, "out0", "gw2", "wan0")?;
        let n = ns(NAT_NODE);
        sysctl(
            &n,
            &[
                ("net.ipv4.ip_forward", "1"),
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
            ],
        )?;
        addr("in0", &format!("{NAT_INSIDE}/24"), &n)?;
        addr("out0", &format!("{}/24", GW_WAN[0]), &n)?;
        for d in ["in0", "out0"] {
            ip(&["-n", &n, "link", "set", d, "up"])?;
        }
        // Source NAT for the inside net going out: masquerade keeps the
        // source port when it is free (so IKE stays on 500 and 4500), unless
        // --nat-remap maps ports into a range.
        for args in [
            &["add", "table", "ip", "ikeda_nat"][..],
            &[
                "add",
                "chain",
                "ip",
                "ikeda_nat",
                "postrouting",
                "{ type nat hook postrouting priority srcnat; policy accept; }",
            ],
        ] {
            sh(in_ns(&n, "nft").args(args))?;
        }
        for rule in nat_rules(remap) {
            sh(in_ns(&n, "nft").args(rule))?;
        }
    } else {
        veth("gw1", "wan0", "gw2", "wan0")?;
    }
    for i in 0..2 {
        let (gw, h) = (ns(NODES[i]), ns(NODES[i + 2]));
        veth(NODES[i], "lan0", NODES[i + 2], "eth0")?;
        sysctl(
            &gw,
            &[
                ("net.ipv4.ip_forward", "1"),
                ("net.ipv6.conf.all.forwarding", "1"),
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
            ],
        )?;
        if nat && i == 0 {
            addr("wan0", &format!("{NAT_GW1_WAN}/24"), &gw)?;
        } else {
            addr("wan0", &format!("{}/24", GW_WAN[i]), &gw)?;
        }
        if !nat {
            addr("wan0", &format!("{}/64", GW_WAN6[i]), &gw)?;
        }
        addr("lan0", &format!("{}/24", GW_LAN[i]), &gw)?;
        addr("lan0", &format!("{}/64", GW_LAN6[i]), &gw)?;
        addr("eth0", &format!("{}/24", HOST[i]), &h)?;
        addr("eth0", &format!("{}/64", HOST6[i]), &h)?;
        for (n, d) in [(&gw, "wan0"), (&gw, "lan0"), (&h, "eth0")] {
            ip(&["-n", n, "link", "set", d, "up"])?;
        }
        ip(&["-n", &h, "route", "add", "default", "via", GW_LAN[i]])?;
        ip(&["-n", &h, "-6", "route", "add", "default", "via", GW_LAN6[i]])?;
    }
    if nat {
        ip(&["-n", &ns("gw1"), "route", "add", "default", "via", NAT_INSIDE])?;
    }
    Ok(())
}

fn hex_key(n: usize) -> Result<String, String> {
    let mut k = vec![0u8; n];
    ikeda_crypto::random_fill(&mut k)?;
    Ok(format!("0x{}", SecretBytes::new(k).to_hex()))
}

/// The two gateway configs, mirrored: gw1's out is gw2's in.
pub fn gateway_configs(a: &UpArgs) -> Result<[String; 2], String> {
    let alg = EspAlgorithm::parse(&a.esp)?;
    let keys: Vec<(String, Option<String>)> = (0..2)
        .map(|_| -> Result<_, String> {
            let auth = if alg.auth_key_len() > 0 {
                Some(hex_key(alg.auth_key_len())?)
            } else {
                None
            };
            Ok((hex_key(alg.enc_key_len())?, auth))
        })
        .collect::<Result<_, _>>()?;
    let spis = [0x1000_0101u32, 0x1000_0102u32];
    let fam = if a.outer6 { "6" } else { "4" };
    let nat = if a.nat { ", gw1 behind a NAT" } else { "" };
    let mut out: [String; 2] = Default::default();
    for i in 0..2 {
        let j = 1 - i;
        let sa = |dir: &str, k: usize| {
            let (enc, auth) = &keys[k];
            let auth = auth
                .as_ref()
                .map(|x| format!(", auth_key = \"{x}\""))
                .unwrap_or_default();
            format!("{dir} = {{ spi = \"{:#010x}\", enc_key = \"{enc}\"{auth} }}\n", spis[k])
        };
        out[i] = format!(
            "# gw{n} of lab '{name}' (written by `ikeda lab up`; outer IPv{fam}{nat})\n\
             [daemon]\ntun = \"ikeda0\"\nmtu = 1400\n\n\
             [[conn]]\nname = \"site{m}\"\nlocal_addr = \"{l}\"\nremote_addr = \"{r}\"\n\
             encap = \"{encap}\"\nesp = \"{esp}\"\nesn = {esn}\n\
             local_ts = [\"{ln}\", \"{ln6}\"]\nremote_ts = [\"{rn}\", \"{rn6}\"]\n\n\
             # gateway <-> remote net and local net <-> remote gateway, as in the seed setup\n\
             [[conn.policy]]\nlocal = \"{lw}\"\nremote = \"{rn}\"\n\n\
             [[conn.policy]]\nlocal = \"{ln}\"\nremote = \"{rw}\"\n\n\
             [conn.manual]\n{out}{inn}",
            n = i + 1,
            m = j + 1,
            name = a.name.name,
            l = gw_local(a, i),
            r = gw_peer(a, i),
            encap = if a.encap() == EncapArg::Udp { "udp" } else { "esp" },
            esp = alg.name(),
            esn = a.esn,
            ln = LAN_NET[i],
            ln6 = LAN_NET6[i],
            rn = LAN_NET[j],
            rn6 = LAN_NET6[j],
            lw = gw_wan4(a, i),
            rw = gw_wan4(a, j),
            out = sa("out", i),
            inn = sa("in", j),
        );
    }
    Ok(out)
}

/// The gateway config of gw `i` for an IKE-negotiated tunnel.
pub fn ike_gateway_config(a: &UpArgs, i: usize, psk: &str) -> String {
    let j = 1 - i;
    let fam = if a.outer6 { "6" } else { "4" };
    // Behind the NAT the addresses a gateway sees are not the peer's own:
    // name the identities (each gateway's own address) explicitly.
    let ids = if a.nat {
        format!("local_id = \"{}\"\nremote_id = \"{}\"\n", gw_wan4(a, i), gw_wan4(a, j))
    } else {
        String::new()
    };
    let start = match (a.initiator, i) {
        (Initiator::Gw1, 0) | (Initiator::Gw2, 1) if a.trap => "trap",
        (Initiator::Gw1, 0) | (Initiator::Gw2, 1) => "start",
        _ => "none",
    };
    let mut extra = String::new();
    for (k, v) in [
        ("rekey_time", &a.rekey_time),
        ("ike_rekey_time", &a.ike_rekey_time),
        ("dpd_delay", &a.dpd_delay),
    ] {
        if let Some(v) = v {
            extra.push_str(&format!("{k} = \"{v}\"\n"));
        }
    }
    if a.dpd_delay.is_some() {
        extra.push_str(&format!("dpd_action = \"{}\"\n", a.dpd_action));
    }
    if let Some(b) = a.rekey_bytes {
        extra.push_str(&format!("rekey_bytes = {b}\nlife_bytes = {}\n", b * 2));
    }
    // Short test lifetimes: give the hard lifetime room for a rekey that
    // has to wait for another exchange (110 % of a few seconds is not).
    for (k, v) in [("life_time", &a.rekey_time), ("ike_lifetime", &a.ike_rekey_time)] {
        if let Some(secs) = v.as_deref().and_then(crate::config::parse_duration) {
            extra.push_str(&format!("{k} = \"{}s\"\n", secs * 2));
        }
    }
    let mut daemon = String::new();
    if let Some(t) = a.retransmit_tries {
        daemon.push_str(&format!("retransmit_tries = {t}\n"));
    }
    if let Some(t) = &a.retransmit_timeout {
        daemon.push_str(&format!("retransmit_timeout = \"{t}\"\n"));
    }
    format!(
        "# gw{n} of lab '{name}' (written by `ikeda lab up --ike 2`; outer IPv{fam}{nat})\n\
         [daemon]\ntun = \"ikeda0\"\nmtu = 1400\n{daemon}\n\
         [[conn]]\nname = \"s2s\"\nlocal_addr = \"{l}\"\nremote_addr = \"{r}\"\n{ids}\
         ike = \"{ike}\"\nesp = \"{esp}\"\npsk = \"{psk}\"\nstart_action = \"{start}\"\n{extra}\
         local_ts = [\"{ln}\", \"{ln6}\"]\nremote_ts = [\"{rn}\", \"{rn6}\"]\n",
        n = i + 1,
        name = a.name.name,
        nat = if a.nat { ", gw1 behind a NAT" } else { "" },
        l = gw_local(a, i),
        r = gw_peer(a, i),
        ike = a.ike_proposal,
        esp = a.esp,
        ln = LAN_NET[i],
        ln6 = LAN_NET6[i],
        rn = LAN_NET[j],
        rn6 = LAN_NET6[j],
    )
}

/// Start a program in a namespace, detached, output to `log`. Returns its
/// PID (`ip netns exec` execs, so it is the program's own).
pub fn spawn_in_ns(ns: &str, prog: &Path, args: &[&str], log: &Path, env: &[(&str, &str)]) -> Result<u32, String> {
    let logf = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(prog).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .stdout(logf.try_clone().map_err(|e| e.to_string())?)
        .stderr(logf);
    // SAFETY: setsid is async-signal-safe; it detaches the child from our
    // session so a terminal's Ctrl-C does not reach it.
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = c.spawn().map_err(|e| format!("starting {}: {e}", prog.display()))?;
    Ok(child.id())
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn tail(path: &Path, n: usize) -> String {
    let t = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn up(a: &UpArgs) -> Result<(), String> {
    let name = &a.name.name;
    check_name(name)?;
    EspAlgorithm::parse(&a.esp)?;
    a.check()?;
    let mut tools = vec![("ip", "iproute2"), ("ping", "iputils-ping")];
    if a.nat {
        tools.push(("nft", "nftables"));
    }
    for (tool, pkg) in tools {
        if sh(Command::new("sh").args(["-c", &format!("command -v {tool}")])).is_err() {
            return Err(format!(
                "'{tool}' is not installed (Debian package {pkg}); scripts/test.sh installs everything the lab uses"
            ));
        }
    }
    let prefix = ns_name(name, "");
    if netns_list().iter().any(|n| n.starts_with(&prefix)) {
        return Err(format!(
            "lab '{name}' is already up (namespaces {prefix}*); run `ikeda lab down --name {name}` first"
        ));
    }
    let dir = state_dir(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
    let mut st = LabState {
        name: name.clone(),
        prefix: prefix.clone(),
        gateways: Some(a.gateways),
        esp: a.esp.clone(),
        pids: vec![],
        nat: a.nat,
    };
    save_state(&dir, &st)?;
    let r = bring_up(a, &dir, &mut st);
    if let Err(e) = r {
        // Nothing half-started: take down whatever came up.
        let _ = down(name);
        return Err(e);
    }
    if !a.no_ping {
        ping_across(name)?;
    }
    println!(
        "lab '{name}' is up: `ikeda lab exec --name {name} h1 -- ping {}`; state in {}",
        HOST[1],
        dir.display()
    );
    Ok(())
}

fn bring_up(a: &UpArgs, dir: &Path, st: &mut LabState) -> Result<(), String> {
    let name = &a.name.name;
    topology(name, a.nat, a.nat_remap)?;
    match a.gateways {
        Gateways::None => {
            // Plain routing between the LANs, for the baseline.
            for i in 0..2 {
                let j = 1 - i;
                ip(&[
                    "-n",
                    &ns_name(name, NODES[i]),
                    "route",
                    "add",
                    LAN_NET[j],
                    "via",
                    GW_WAN[j],
                ])?;
            }
        }
        Gateways::Ikeda => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let psk = strongswan::random_psk()?;
            let cfgs = match a.ike {
                None => gateway_configs(a)?,
                Some(_) => [ike_gateway_config(a, 0, &psk), ike_gateway_config(a, 1, &psk)],
            };
            let ikeda_gws = if a.ike.is_some() && a.peer == Peer::Strongswan {
                1
            } else {
                2
            };
            if ikeda_gws == 1 {
                strongswan::start_one(name, dir, 1, a, &psk, st)?;
                save_state(dir, st)?;
            }
            for i in 0..ikeda_gws {
                let gw = NODES[i];
                let cfg = dir.join(format!("{gw}.toml"));
                write_secret(&cfg, &cfgs[i])?;
                let log = dir.join(format!("{gw}.log"));
                let stats = dir.join(format!("{gw}.stats.json"));
                let pid = spawn_in_ns(
                    &ns_name(name, gw),
                    &exe,
                    &[
                        "run",
                        "-c",
                        &cfg.to_string_lossy(),
                        "--stats-file",
                        &stats.to_string_lossy(),
                    ],
                    &log,
                    &[],
                )?;
                st.pids.push((format!("ikeda {gw}"), pid));
                save_state(dir, st)?;
            }
            for i in 0..ikeda_gws {
                let gw = NODES[i];
                let pid = st
                    .pids
                    .iter()
                    .find(|(w, _)| *w == format!("ikeda {gw}"))
                    .map_or(0, |p| p.1);
                let ns = ns_name(name, gw);
                let ok = wait_until(Duration::from_secs(10), || {
                    !alive(pid)
                        || ip(&["-n", &ns, "rule", "show", "pref", &crate::daemon::RULE_PREF.to_string()])
                            .is_ok_and(|s| !s.trim().is_empty())
                });
                if !ok || !alive(pid) {
                    return Err(format!(
                        "ikeda on {gw} did not start:\n{}",
                        tail(&dir.join(format!("{gw}.log")), 20)
                    ));
                }
            }
            if a.ike.is_some() && !a.trap {
                if a.peer == Peer::Strongswan && a.initiator == Initiator::Gw2 {
                    strongswan::initiate(dir, "gw2")?;
                }
                // The tunnel is up when gw1's data plane has its CHILD SA.
                let stats = dir.join("gw1.stats.json");
                let up = wait_until(Duration::from_secs(20), || {
                    fs::read_to_string(&stats).is_ok_and(|t| t.contains("\"direction\": \"in\""))
                });
                if !up {
                    return Err(format!(
                        "no CHILD SA on gw1 after 20 s:\n{}",
                        tail(&dir.join("gw1.log"), 30)
                    ));
                }
                if a.peer == Peer::Strongswan {
                    strongswan::wait_installed(dir, "gw2")?;
                }
            }
        }
        Gateways::Strongswan => {
            strongswan::start_pair(name, dir, a, st)?;
            save_state(dir, st)?;
        }
    }
    Ok(())
}

fn ping_across(name: &str) -> Result<(), String> {
    let h1 = ns_name(name, "h1");
    for (fam, dst) in [("-4", HOST[1]), ("-6", HOST6[1])] {
        let out = in_ns(&h1, "ping")
            .args([fam, "-c", "3", "-i", "0.2", "-W", "2", dst])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or("no reply")
            .to_string();
        println!(
            "ping {} -> {dst} through the tunnel: {summary}",
            if fam == "-4" { HOST[0] } else { HOST6[0] }
        );
        if !out.status.success() {
            return Err(format!(
                "ping {dst} from h1 failed; see `ikeda lab status --name {name}`"
            ));
        }
    }
    Ok(())
}

fn status(name: &str) -> Result<(), String> {
    let prefix = ns_name(name, "");
    let nss: Vec<String> = netns_list().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    if nss.is_empty() {
        println!("lab '{name}' is down");
        return Ok(());
    }
    println!("lab '{name}': namespaces {}", nss.join(" "));
    let dir = state_dir(name);
    if let Some(st) = load_state(name) {
        println!(
            "gateways: {:?}, esp {}{}",
            st.gateways.unwrap_or(Gateways::Ikeda),
            st.esp,
            if st.nat { ", gw1 behind a NAT (node nat)" } else { "" }
        );
        for (what, pid) in &st.pids {
            println!(
                "  {what}: pid {pid} {}",
                if alive(*pid) { "running" } else { "NOT RUNNING" }
            );
        }
    }
    for gw in ["gw1", "gw2"] {
        if let Ok(s) = fs::read_to_string(dir.join(format!("{gw}.stats.json"))) {
            println!("{gw} data plane: {s}");
        }
    }
    Ok(())
}

fn exec(name: &str, node: &str, cmd: &[String]) -> Result<(), String> {
    if !NODES.contains(&node) && node != NAT_NODE {
        return Err(format!("unknown node '{node}' (gw1, gw2, h1, h2; nat with --nat)"));
    }
    let ns = ns_name(name, node);
    if !netns_list().contains(&ns) {
        return Err(format!("lab '{name}' is not up (no namespace {ns})"));
    }
    let err = Command::new("ip").args(["netns", "exec", &ns]).args(cmd).exec();
    Err(format!("exec: {err}"))
}

/// Stop what the lab started (by recorded PID) and delete its namespaces.
pub fn down(name: &str) -> Result<(), String> {
    check_name(name)?;
    if let Some(st) = load_state(name) {
        for (what, pid) in &st.pids {
            stop_pid(what, *pid);
        }
    }
    let prefix = ns_name(name, "");
    let mut errs = Vec::new();
    for ns in netns_list().into_iter().filter(|n| n.starts_with(&prefix)) {
        if let Err(e) = ip(&["netns", "del", &ns]) {
            errs.push(e);
        }
    }
    let _ = fs::remove_dir_all(state_dir(name));
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// SIGTERM a PID we started (after checking it is still that program),
/// SIGKILL if it does not exit within 15 s.
fn stop_pid(what: &str, pid: u32) {
    let prog = what.split_whitespace().next().unwrap_or("");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !alive(pid) || !String::from_utf8_lossy(&cmdline).contains(prog) {
        return;
    }
    // SAFETY: kill(2) on a PID we recorded and just checked.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    if !wait_until(Duration::from_secs(15), || !alive(pid)) {
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        wait_until(Duration::from_secs(2), || !alive(pid));
    }
}
