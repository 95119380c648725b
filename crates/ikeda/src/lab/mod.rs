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
//!
//! Debugging aids: each ikeda gateway runs with `--log $IKEDA_LAB_LOG`
//! (default `info`) and a control socket `<state>/<gw>.sock`; with
//! `--export-keys` (or IKEDA_LAB_EXPORT_KEYS=1) it writes Wireshark's key
//! files to `<state>/keys-<gw>/` (strongSwan-only labs: charon's level-4
//! log of its keys, `charon-keys.txt`, which `ikeda pcap --keys` reads). `lab capture` and `lab up --capture`
//! record a node's outer link with dumpcap, so
//! `WIRESHARK_CONFIG_DIR=<state>/keys-gw1 tshark -r FILE` shows IKE and
//! ESP in clear. With IKEDA_LAB_ARCHIVE set, `down` first copies the
//! gateway logs, configs and exported keys there (the full test run checks
//! that no key ever reaches a log).

use clap::{Args, Subcommand, ValueEnum};
use ikeda_crypto::{EspAlgorithm, SecretBytes};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod firewall;
pub mod libreswan;
pub mod preflight;
pub mod strongswan;

pub const GW_WAN: [&str; 2] = ["192.168.50.11", "192.168.50.12"];
pub const GW_WAN6: [&str; 2] = ["2001:db8:50::11", "2001:db8:50::12"];
pub const GW_LAN: [&str; 2] = ["192.168.11.1", "192.168.12.1"];
pub const GW_LAN6: [&str; 2] = ["2001:db8:11::1", "2001:db8:12::1"];
pub const HOST: [&str; 2] = ["192.168.11.11", "192.168.12.12"];
pub const HOST6: [&str; 2] = ["2001:db8:11::11", "2001:db8:12::12"];
pub const LAN_NET: [&str; 2] = ["192.168.11.0/24", "192.168.12.0/24"];
pub const LAN_NET6: [&str; 2] = ["2001:db8:11::/64", "2001:db8:12::/64"];
/// With `--children` or `--conns`: more nets behind each gateway, k = 1, 2:
/// site `i`'s net k is 172.16.(10 (i + 1) + k).0/24, the gateway .1 and the
/// host .11 (site 1) or .12 (site 2) on it, beside their LAN addresses.
pub const EXTRA_NETS: usize = 2;
pub fn extra_net(i: usize, k: usize) -> String {
    format!("172.16.{}.0/24", 10 * (i + 1) + k)
}
pub fn extra_host(i: usize, k: usize) -> String {
    format!("172.16.{}.{}", 10 * (i + 1) + k, 11 + i)
}
fn extra_gw(i: usize, k: usize) -> String {
    format!("172.16.{}.1", 10 * (i + 1) + k)
}
const NODES: [&str; 4] = ["gw1", "gw2", "h1", "h2"];
/// With `--nat`: gw1's private WAN address, the NAT's inside address and net.
pub const NAT_GW1_WAN: &str = "10.50.1.11";
pub const NAT_INSIDE: &str = "10.50.1.1";
pub const NAT_INSIDE_NET: &str = "10.50.1.0/24";
/// The NAT's namespace node name (`ikl-<lab>-nat`).
pub const NAT_NODE: &str = "nat";
/// With `--cloud`: each gateway's private address in its VPC, the VPC
/// router's address (the 1:1 NAT, node igw1/igw2), and its subnet. The
/// public ("Elastic") addresses are GW_WAN, on the NATs' outside links.
pub const CLOUD_WAN: [&str; 2] = ["10.0.1.11", "10.0.2.12"];
pub const CLOUD_ROUTER: [&str; 2] = ["10.0.1.1", "10.0.2.1"];
pub const CLOUD_NODES: [&str; 2] = ["igw1", "igw2"];

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build the topology, start a gateway in gw1 and gw2, ping across.
    Up(Box<UpArgs>),
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
    /// Record a node's outer link (gw1/gw2: wan0; nat: out0) into a pcap
    /// file until Ctrl-C, SIGTERM or --duration, then say how many packets.
    Capture {
        #[command(flatten)]
        name: NameArg,
        /// gw1 or gw2 (their WAN link), or nat (its outside link, with --nat).
        node: String,
        /// The pcap file to write (replaced if it exists).
        file: PathBuf,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<u64>,
    },
    /// `ikeda audit` on the lab as it runs: each gateway's security group
    /// (`--firewall`; its `nft -j list ruleset`, saved next to the lab's
    /// state), gw1's config as this gateway, gw2's as the peer's (a charon's
    /// setup written as an ikeda config in a strongSwan-only lab). Exits as
    /// `ikeda audit` does.
    Audit {
        #[command(flatten)]
        name: NameArg,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the gateways and remove the namespaces (also after a crash).
    /// With IKEDA_LAB_ARCHIVE=DIR, first copy the ikeda logs, configs and
    /// exported keys into DIR/<lab>-<unique>/.
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
pub enum CloudId {
    Private,
    Public,
    Fqdn,
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
    /// ESP proposal (strongSwan syntax): aes128gcm16, aes256gcm16, chacha20poly1305, aes128-sha1, aes256-sha256, aes256-sha384, aes256-sha512, ...
    #[arg(long, default_value = "aes128gcm16")]
    pub esp: String,
    /// With --ike: other ESP proposals for gw2 (strongSwan's esp_proposals,
    /// or the second ikeda's esp), e.g. another PFS group; default --esp.
    #[arg(long, requires = "ike")]
    pub peer_esp: Option<String>,
    /// Raw ESP (IP protocol 50) or UDP-encapsulated ESP (RFC 3948, port 4500);
    /// esp by default, udp with --nat. With --ike 2, udp makes gw1 force UDP
    /// encapsulation without a NAT (`encap = "udp"`).
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
    /// Negotiate the SAs with IKE instead of manual keys: version 2, or 1
    /// (Main Mode and Quick Mode, a Quick Mode per selector pair).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub ike: Option<u8>,
    /// With --ike: what runs on gw2 (gw1 always runs ikeda).
    #[arg(long, value_enum, default_value = "ikeda")]
    pub peer: Peer,
    /// With --peer libreswan: the root directory libreswan runs from
    /// (chrooted), e.g. a Debian 13 root from `scripts/peer-root.sh DIR`;
    /// default `/`, the host's libreswan.
    #[arg(long, value_name = "DIR")]
    pub peer_root: Option<PathBuf>,
    /// IKE proposal (strongSwan syntax), with --ike or --gateways strongswan.
    /// Default aes128gcm16-prfsha256-x25519, with --ike 1
    /// aes128-sha256-modp2048 (IKEv1 phase 1 has no AEAD).
    #[arg(long)]
    pub ike_proposal: Option<String>,
    /// With --ike 1: ask for IPComp (DEFLATE) on both gateways.
    #[arg(long)]
    pub compress: bool,
    /// Which gateway initiates (with --ike or --gateways strongswan); both:
    /// each starts the connection at once (or after its --start-delay), the
    /// other side acting as responder too.
    #[arg(long, value_enum, default_value = "gw1")]
    pub initiator: Initiator,
    /// Start a gateway late, as a router that boots after the other:
    /// `--start-delay gw2=40s` (repeatable, or gw1=5,gw2=40). `lab up`
    /// returns before it starts (implies --no-wait).
    #[arg(long, value_name = "GW=SECS", value_delimiter = ',')]
    pub start_delay: Vec<String>,
    /// Do not wait for the tunnel (nor ping): start the gateways and return,
    /// for cases that come up late or never (`lab status` shows them).
    #[arg(long)]
    pub no_wait: bool,
    /// A stateful filter on each gateway's WAN that behaves like a cloud
    /// security group: inbound admitted by the profile's rules or as a reply
    /// to the gateway's own outbound flow (conntrack), the rest dropped;
    /// outbound open. Profiles (what rules admit inbound): none, esp-only,
    /// ike500-only, ike (UDP 500+4500), all (500, 4500, ESP). One for both
    /// gateways, or gw1's,gw2's. `lab status` shows what each admitted by
    /// rule, as a reply only, or dropped.
    #[arg(long, value_name = "PROFILE[,PROFILE2]")]
    pub firewall: Option<String>,
    /// With --firewall: conntrack's timeout of an unreplied UDP flow,
    /// seconds (AWS security groups: 30).
    #[arg(long, value_name = "SECS", default_value_t = 30, requires = "firewall")]
    pub ct_udp_timeout: u32,
    /// With --firewall: conntrack's timeout of a UDP flow both sides have
    /// spoken on, seconds (AWS security groups: 180).
    #[arg(long, value_name = "SECS", default_value_t = 180, requires = "firewall")]
    pub ct_udp_stream_timeout: u32,
    /// Put gw1 behind a masquerading IPv4 NAT (namespace ikl-<name>-nat), to
    /// test NAT traversal: gw1's WAN becomes 10.50.1.11, gw2 sees 192.168.50.11.
    #[arg(long)]
    pub nat: bool,
    /// The cloud topology: each gateway has a private address in its VPC
    /// (gw1 10.0.1.11, gw2 10.0.2.12) and is reached at its public
    /// ("Elastic") address, 192.168.50.11 or .12, through a 1:1 NAT (nodes
    /// igw1, igw2): both sides are behind a NAT at once, IKE floats to 4500
    /// from both ends.
    #[arg(long, conflicts_with_all = ["nat", "outer6"])]
    pub cloud: bool,
    /// With --cloud: the IKE identities: each gateway's private address,
    /// its public address, or a name (gw1.site1.example, gw2.site2.example).
    #[arg(long, value_enum, default_value = "public", requires = "cloud")]
    pub cloud_id: CloudId,
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
    /// With --ike: CHILD SA rekey after this many packets (either way) on
    /// the ikeda gateways; the hard limit is twice that.
    #[arg(long)]
    pub rekey_packets: Option<u64>,
    /// With --ike: IKE SA rekey time on the ikeda gateways.
    #[arg(long)]
    pub ike_rekey_time: Option<String>,
    /// With --ike: dead peer detection delay on the ikeda gateways (e.g. 3s).
    #[arg(long)]
    pub dpd_delay: Option<String>,
    /// With --ike: what a dead peer leads to.
    #[arg(long, default_value = "clear")]
    pub dpd_action: String,
    /// With --ike: `keepalive` on the ikeda gateways, seconds: at least one
    /// packet of theirs on the IKE flow per interval (a liveness check on
    /// UDP 500, a NAT-keepalive on 4500), so that a stateful firewall does
    /// not forget the flow (keep it below --ct-udp-stream-timeout).
    #[arg(long, value_name = "SECS")]
    pub keepalive: Option<u64>,
    /// `udp_offload = false` on the ikeda gateways: no UDP_SEGMENT or
    /// UDP_GRO trains on UDP 4500, one datagram per send and receive.
    #[arg(long)]
    pub no_udp_offload: bool,
    /// `tun_queues = N` on the ikeda gateways: TUN queues, one TX thread
    /// each (default 1).
    #[arg(long, value_name = "N")]
    pub tun_queues: Option<usize>,
    /// Keep UDP segmentation offload and GRO on the gateways' WAN veths.
    /// Where ikeda sends ESP in UDP trains, the lab turns them off
    /// (`ethtool -K wan0 tx-udp-segmentation off gro off`): a veth would
    /// carry a train to the peer as one frame, so captures would hold
    /// several ESP packets per frame; off, the kernel cuts the train as it
    /// leaves the gateway, as a NIC does on a real wire. Faster with it on.
    #[arg(long)]
    pub wan_offload: bool,
    /// Receive on the gateways' WAN veths as a NIC does: GRO on (with
    /// `rx-udp-gro-forwarding`, without which a veth hands no UDP to GRO),
    /// so the peer's trains, cut on the wire, reach UDP_GRO coalesced again,
    /// as a real NIC's NAPI coalesces them. Sending still cuts trains. A
    /// capture on a gateway's WAN then holds the trains it received, as one
    /// on a real gateway does: `ikeda pcap` reads them, Wireshark does not.
    /// Where the lab cuts trains: ikeda gateways with `--encap udp`.
    #[arg(long, conflicts_with = "wan_offload")]
    pub wan_gro: bool,
    /// IKE retransmission tries and first timeout on the ikeda gateways
    /// (with --ike), or on both charons (--gateways strongswan); defaults 5
    /// and 4s, as strongSwan.
    #[arg(long)]
    pub retransmit_tries: Option<u32>,
    #[arg(long)]
    pub retransmit_timeout: Option<String>,
    /// With --ike: the initiator waits for traffic (start_action = trap):
    /// `lab up` does not wait for the tunnel, the first packet brings it up.
    #[arg(long)]
    pub trap: bool,
    /// Have the ikeda gateways export their keys (Wireshark's
    /// ikev2_decryption_table and esp_sa, ikeda-keys.jsonl) into
    /// <state dir>/keys-<gw>/; with --gateways strongswan, charon logs
    /// `ike` and `chd` at level 4 (its keys) into keys-<gw>/charon-keys.txt.
    /// Also on with IKEDA_LAB_EXPORT_KEYS=1.
    #[arg(long)]
    pub export_keys: bool,
    /// Capture gw1's WAN link into this pcap file, from before the first
    /// gateway starts (so it holds IKE_SA_INIT) until `lab down`.
    #[arg(long, value_name = "FILE")]
    pub capture: Option<PathBuf>,
    /// IP payload compression (IPComp with DEFLATE, RFC 3173) inside the
    /// tunnel, on both ikeda gateways with manual keys: gw1 sends CPI
    /// 0x1101, gw2 sends 0x1102 (`[conn.manual] ipcomp` in their configs).
    #[arg(long)]
    pub ipcomp: bool,
    /// Install the Debian packages the lab needs and lacks (iputils-ping,
    /// strongSwan and its plugins, ...) with apt-get, without asking. At a
    /// terminal `lab up` asks; otherwise it refuses and names them.
    #[arg(long)]
    pub install_deps: bool,
    /// With --ike 1: the racoon site's selector pairs on both gateways:
    /// LAN <-> LAN, and besides it LAN <-> remote gateway and gateway <->
    /// remote LAN (`[[conn.policy]]`; strongSwan: a child each), a Quick
    /// Mode each and none for gateway <-> gateway.
    #[arg(long)]
    pub gateway_policies: bool,
    /// With --ike 2: the connection has this many CHILD SAs (1-3): LAN <->
    /// LAN, then net k <-> net k (172.16.1k.0/24 <-> 172.16.2k.0/24, on
    /// the hosts as 172.16.1k.11 and 172.16.2k.12), `[[conn.child]]` on
    /// ikeda, a child each on strongSwan.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub children: u8,
    /// With --ike 1 or 2: this many connections between the gateways (1-2);
    /// the second ("s2s2") protects net 1 <-> net 1 (172.16.11.0/24 <->
    /// 172.16.21.0/24). Each has its own FQDN identities
    /// (gw1.s2s.example, gw1.s2s2.example, ...), and with IKEv2 its own PSK.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub conns: u8,
}

/// `lab up --ipcomp`: the CPI each gateway's IPComp headers carry (gw1's
/// out = gw2's in).
pub const LAB_CPIS: [u16; 2] = [0x1101, 0x1102];

impl UpArgs {
    /// The ESP proposals of gateway `i` (0: gw1, 1: gw2).
    pub fn gw_esp(&self, i: usize) -> &str {
        match (&self.peer_esp, i) {
            (Some(p), 1) => p,
            _ => &self.esp,
        }
    }

    /// The IKE proposal in effect.
    pub fn ike_proposal(&self) -> String {
        self.ike_proposal.clone().unwrap_or_else(|| {
            if self.ike == Some(1) {
                "aes128-sha256-modp2048".into()
            } else {
                "aes128gcm16-prfsha256-x25519".into()
            }
        })
    }

    /// Key export is on: `--export-keys`, or IKEDA_LAB_EXPORT_KEYS=1.
    pub fn export_keys(&self) -> bool {
        self.export_keys || std::env::var("IKEDA_LAB_EXPORT_KEYS").as_deref() == Ok("1")
    }

    /// The encapsulation in effect: as given, else UDP behind a NAT, else ESP.
    pub fn encap(&self) -> EncapArg {
        self.encap
            .unwrap_or(if self.nat || self.cloud { EncapArg::Udp } else { EncapArg::Esp })
    }

    /// Each gateway's start delay in seconds (`--start-delay`).
    pub fn start_delays(&self) -> Result<[u64; 2], String> {
        let mut d = [0u64; 2];
        for item in &self.start_delay {
            let (gw, secs) = item
                .split_once('=')
                .ok_or_else(|| format!("--start-delay {item}: write GW=SECS, e.g. gw2=40s"))?;
            let i = match gw.trim() {
                "gw1" => 0,
                "gw2" => 1,
                other => return Err(format!("--start-delay {item}: no gateway '{other}' (gw1 or gw2)")),
            };
            d[i] = crate::config::parse_duration(secs)
                .filter(|s| *s <= 3600)
                .ok_or_else(|| format!("--start-delay {item}: '{secs}' is not a duration up to 1h (40, 40s, 2m)"))?;
        }
        Ok(d)
    }

    /// The lab turns UDP segmentation offload and GRO off on the gateways'
    /// WAN links: ikeda gateways send ESP in UDP trains and `--wan-offload`
    /// did not ask to keep them.
    pub fn wan_offload_off(&self) -> bool {
        self.gateways == Gateways::Ikeda
            && !self.no_udp_offload
            && !self.wan_offload
            && self.encap() == EncapArg::Udp
    }

    /// The extra nets are built (`--children`, `--conns`).
    pub fn extra_nets(&self) -> bool {
        self.children > 1 || self.conns > 1
    }

    /// Whether gateway `i` starts the connection itself.
    pub fn initiates(&self, i: usize) -> bool {
        matches!((self.initiator, i), (Initiator::Both, _) | (Initiator::Gw1, 0) | (Initiator::Gw2, 1))
    }

    /// `lab up` returns without waiting for the tunnel.
    pub fn no_wait(&self) -> bool {
        self.no_wait || self.start_delay.iter().any(|d| !d.ends_with("=0"))
    }

    /// The firewall asked for, if any.
    pub fn firewall(&self) -> Result<Option<firewall::FirewallState>, String> {
        let Some(p) = &self.firewall else { return Ok(None) };
        let profiles = firewall::parse_profiles(p)?;
        for (name, v) in [("--ct-udp-timeout", self.ct_udp_timeout), ("--ct-udp-stream-timeout", self.ct_udp_stream_timeout)] {
            if !(1..=86_400).contains(&v) {
                return Err(format!("{name} {v}: between 1 and 86400 seconds"));
            }
        }
        Ok(Some(firewall::FirewallState {
            profiles,
            udp_timeout: self.ct_udp_timeout,
            udp_stream_timeout: self.ct_udp_stream_timeout,
        }))
    }

    /// Refuse combinations the lab cannot build.
    fn check(&self) -> Result<(), String> {
        self.start_delays()?;
        self.firewall()?;
        if let Some(t) = &self.retransmit_timeout {
            crate::config::parse_duration_ms(t)
                .filter(|ms| *ms > 0)
                .ok_or_else(|| format!("--retransmit-timeout {t}: not a duration (500ms, 4s)"))?;
        }
        let negotiated = self.ike.is_some() || self.gateways == Gateways::Strongswan;
        if (self.initiator != Initiator::Gw1 || !self.start_delay.is_empty()) && !negotiated {
            return Err(
                "--initiator and --start-delay say who starts an IKE negotiation: they need --ike or --gateways strongswan"
                    .into(),
            );
        }
        if self.trap && (self.initiator == Initiator::Both || !self.start_delay.is_empty()) {
            return Err("--trap with --initiator both or --start-delay: not supported (trap waits for traffic)".into());
        }
        if self.gateway_policies && (self.ike != Some(1) || self.nat || self.outer6) {
            return Err(
                "--gateway-policies is the racoon site's IKEv1 set of selector pairs: it needs --ike 1, \
                 without --nat or --outer6 (the pairs name the gateways' own IPv4 addresses)"
                    .into(),
            );
        }
        if (self.children > 1 && self.ike != Some(2))
            || (self.conns > 1 && self.ike.is_none())
            || ((self.children > 1 || self.conns > 1)
                && (self.nat || self.cloud || self.outer6 || self.children > 1 && self.conns > 1))
        {
            return Err(
                "--children is IKEv2 (--ike 2) and --conns needs --ike 1 or 2; both on the plain topology (no \
                 --nat, --cloud or --outer6), one of them at a time"
                    .into(),
            );
        }
        if self.ipcomp && (self.ike.is_some() || self.gateways != Gateways::Ikeda) {
            return Err(
                "--ipcomp sets IPComp up with manual keys on two ikeda gateways; it cannot be combined with --ike \
                 or --gateways strongswan|none (IKE does not negotiate IPComp yet)"
                    .into(),
            );
        }
        if self.peer_root.is_some() && self.peer != Peer::Libreswan {
            return Err("--peer-root is where libreswan runs from: it needs --peer libreswan".into());
        }
        // The host's libreswan (no --peer-root) is the preflight's: it
        // offers the package.
        if let Some(root) = &self.peer_root {
            libreswan::check_root(root)?;
        }
        if self.peer == Peer::Libreswan
            && (self.ike.is_none()
                || self.gateways != Gateways::Ikeda
                || self.nat
                || self.cloud
                || self.conns > 1
                || self.children > 1
                || self.gateway_policies
                || self.compress
                || self.trap
                || !self.start_delay.is_empty())
        {
            return Err(
                "--peer libreswan runs pluto on gw2 against ikeda on gw1: it needs --ike 1 or 2, and takes the plain \
                 topology (no --nat, --cloud, --conns, --children, --gateway-policies, --compress, --trap or \
                 --start-delay yet)"
                    .into(),
            );
        }
        if self.cloud && self.gateways == Gateways::None {
            return Err("--cloud tests a tunnel between two NATed gateways; it needs --gateways ikeda or strongswan".into());
        }
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
        if negotiated && self.initiator != Initiator::Gw1 {
            return Err(
                "--nat with --initiator gw2 or both: gw2 cannot reach gw1 behind the NAT before gw1 has opened a mapping; \
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
    if a.cloud {
        CLOUD_WAN[i]
    } else if a.nat && i == 0 {
        NAT_GW1_WAN
    } else {
        GW_WAN[i]
    }
}

/// Gateway `i`'s own outer address in the tunnel's family.
pub fn gw_local(a: &UpArgs, i: usize) -> &'static str {
    if a.outer6 {
        GW_WAN6[i]
    } else {
        gw_wan4(a, i)
    }
}

/// The IKE identities of gateway `i`, (local, remote), where the lab names
/// them: behind a NAT the addresses a gateway sees are not the peer's own.
/// `None`: the gateways' own addresses, as seen.
pub fn ike_ids(a: &UpArgs, i: usize) -> Option<(String, String)> {
    let j = 1 - i;
    if a.cloud {
        let id = |k: usize| match a.cloud_id {
            CloudId::Private => CLOUD_WAN[k].to_string(),
            CloudId::Public => GW_WAN[k].to_string(),
            CloudId::Fqdn => format!("gw{}.site{}.example", k + 1, k + 1),
        };
        Some((id(i), id(j)))
    } else if a.nat {
        Some((gw_wan4(a, i).to_string(), gw_wan4(a, j).to_string()))
    } else {
        None
    }
}

/// With `--conns 2`: the FQDN identities (local, remote) of gateway `i` in
/// connection `conn` (each connection its own, so that the responder must
/// choose by identity); `None` otherwise.
pub fn conn_ids(a: &UpArgs, i: usize, conn: &str) -> Option<(String, String)> {
    (a.conns > 1).then(|| (format!("gw{}.{conn}.example", i + 1), format!("gw{}.{conn}.example", 2 - i)))
}

/// With `--conns 2`: the second connection's PSK, other than the first's
/// with IKEv2. With IKEv1 the same: Main Mode keys the exchange that
/// carries the identities with the PSK, so a responder (strongSwan or
/// ikeda) must know it before it knows which connection the peer means.
pub fn second_psk(a: &UpArgs, psk: &str) -> String {
    if a.ike == Some(1) {
        psk.to_string()
    } else {
        format!("{psk}-s2s2")
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
    /// libreswan's pluto (from `--peer-root`): IKEv1 and IKEv2 interop. It
    /// carries ESP only on a kernel with ESP (XFRM).
    Libreswan,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Debug)]
pub enum Initiator {
    Gw1,
    Gw2,
    Both,
}

#[derive(Serialize, Deserialize, Default)]
pub struct LabState {
    pub name: String,
    pub prefix: String,
    pub gateways: Option<Gateways>,
    pub esp: String,
    /// PIDs this lab started, with what they are (for `down`).
    pub pids: Vec<(String, u32)>,
    /// The root libreswan runs from (`--peer libreswan`), for `lab status`.
    #[serde(default)]
    pub peer_root: Option<PathBuf>,
    /// gw1 is behind the NAT namespace.
    #[serde(default)]
    pub nat: bool,
    /// The `--capture` dumpcap, stopped first by `down`.
    #[serde(default)]
    pub capture: Option<CaptureState>,
    /// Control sockets of the ikeda gateways: (gw, path).
    #[serde(default)]
    pub controls: Vec<(String, PathBuf)>,
    /// Key export directories of the ikeda gateways: (gw, path).
    #[serde(default)]
    pub key_dirs: Vec<(String, PathBuf)>,
    /// `--firewall`: the security groups on the gateways' WANs.
    #[serde(default)]
    pub firewall: Option<firewall::FirewallState>,
}

/// A capture `lab up --capture` started.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct CaptureState {
    pub pid: u32,
    pub node: String,
    pub iface: String,
    pub file: PathBuf,
}

/// The gateways' log filter: IKEDA_LAB_LOG, else `info`.
fn gateway_log_filter() -> String {
    std::env::var("IKEDA_LAB_LOG")
        .ok()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| "info".into())
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

/// Where `ip netns add` binds named namespaces (iproute2's NETNS_RUN_DIR).
const NETNS_RUN_DIR: &str = "/run/netns";

/// The named network namespaces. Read from the directory itself rather than
/// from `ip netns list`, which also asks the kernel for each namespace's id
/// and, while another lab's namespace is being added or deleted, prints
/// errors for it; and an error here must not read as "no namespaces" (a
/// `lab down` that saw none would delete none and still say it is down).
fn netns_list() -> Result<Vec<String>, String> {
    match fs::read_dir(NETNS_RUN_DIR) {
        Ok(d) => d
            .map(|e| {
                e.map(|e| e.file_name().to_string_lossy().into_owned())
                    .map_err(|e| format!("{NETNS_RUN_DIR}: {e}"))
            })
            .collect(),
        // No namespace was ever named on this machine.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{NETNS_RUN_DIR}: {e}")),
    }
}

pub fn main(cmd: LabCmd) -> i32 {
    let r = match cmd {
        LabCmd::Audit { name, json } => {
            return match audit(&name.name, json) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("ikeda lab: {e}");
                    2
                }
            }
        }
        LabCmd::Up(a) => up(&a),
        LabCmd::Status(n) => status(&n.name),
        LabCmd::Exec { name, node, cmd } => exec(&name.name, &node, &cmd),
        LabCmd::Capture {
            name,
            node,
            file,
            duration,
        } => capture(&name.name, &node, &file, duration),
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

/// `lab audit`: the gateways' rulesets saved, `ikeda audit` run on them.
fn audit(name: &str, json: bool) -> Result<i32, String> {
    check_name(name)?;
    let st = load_state(name).ok_or_else(|| format!("lab '{name}' is not up"))?;
    let fw = st
        .firewall
        .as_ref()
        .ok_or_else(|| format!("lab '{name}' has no firewall: `lab up --firewall PROFILE` puts one on each gateway"))?;
    let dir = state_dir(name);
    // An ikeda gateway's config, or a charon's setup written as one.
    let cfg = ["gw1", "gw2"].map(|gw| {
        let own = dir.join(format!("{gw}.toml"));
        if own.exists() {
            own
        } else {
            dir.join(format!("{gw}.audit.toml"))
        }
    });
    if !cfg[0].exists() {
        return Err(format!("lab audit: no config of gw1 in {}", dir.display()));
    }
    let mut rulesets = Vec::new();
    for gw in &NODES[..2] {
        let out = sh(in_ns(&ns_name(name, gw), "nft").args(["-j", "list", "ruleset"]))?;
        let f = dir.join(format!("firewall-{gw}.json"));
        fs::write(&f, out).map_err(|e| format!("{}: {e}", f.display()))?;
        rulesets.push(f);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Command::new(exe);
    c.arg("audit")
        .arg("--config")
        .arg(&cfg[0])
        .arg("--firewall")
        .arg(&rulesets[0])
        .arg("--peer-firewall")
        .arg(&rulesets[1])
        .args(["--wan", "wan0", "--peer-wan", "wan0"])
        .args(["--udp-timeout", &fw.udp_timeout.to_string()])
        .args(["--udp-stream-timeout", &fw.udp_stream_timeout.to_string()]);
    if cfg[1].exists() {
        c.arg("--peer-config").arg(&cfg[1]);
    }
    if json {
        c.arg("--json");
    }
    let status = c.status().map_err(|e| format!("ikeda audit: {e}"))?;
    Ok(status.code().unwrap_or(2))
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

/// The configs' first line says which topology they were written for.
fn topology_note(a: &UpArgs) -> &'static str {
    if a.cloud {
        ", both gateways behind 1:1 NATs (--cloud)"
    } else if a.nat {
        ", gw1 behind a NAT"
    } else {
        ""
    }
}

fn topology(name: &str, a: &UpArgs) -> Result<(), String> {
    let (nat, remap, cloud) = (a.nat, a.nat_remap, a.cloud);
    let ns = |n: &str| ns_name(name, n);
    let nodes: &[&str] = if nat {
        &["gw1", "gw2", "h1", "h2", NAT_NODE]
    } else if cloud {
        &["gw1", "gw2", "h1", "h2", CLOUD_NODES[0], CLOUD_NODES[1]]
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
    } else if cloud {
        // gw1 wan0 <-> igw1 in0, igw1 out0 <-> igw2 out0 (the internet),
        // igw2 in0 <-> gw2 wan0. Each igw maps its gateway's private address
        // to the public one and back, every protocol and port (1:1, as a
        // cloud's Elastic IP): DNAT inbound, SNAT outbound.
        veth(CLOUD_NODES[0], "out0", CLOUD_NODES[1], "out0")?;
        for i in 0..2 {
            veth(NODES[i], "wan0", CLOUD_NODES[i], "in0")?;
            let n = ns(CLOUD_NODES[i]);
            sysctl(
                &n,
                &[
                    ("net.ipv4.ip_forward", "1"),
                    ("net.ipv4.conf.all.rp_filter", "0"),
                    ("net.ipv4.conf.default.rp_filter", "0"),
                ],
            )?;
            addr("in0", &format!("{}/24", CLOUD_ROUTER[i]), &n)?;
            addr("out0", &format!("{}/24", GW_WAN[i]), &n)?;
            for d in ["in0", "out0"] {
                ip(&["-n", &n, "link", "set", d, "up"])?;
            }
            let script = format!(
                "table ip ikeda_nat {{\n\
                 \x20 chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;\n\
                 \x20   iifname \"out0\" ip daddr {public} dnat to {private}\n  }}\n\
                 \x20 chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n\
                 \x20   oifname \"out0\" ip saddr {private} snat to {public}\n  }}\n}}\n",
                public = GW_WAN[i],
                private = CLOUD_WAN[i],
            );
            let mut c = in_ns(&n, "nft");
            c.args(["-f", "-"]).stdin(Stdio::piped());
            let mut child = c.spawn().map_err(|e| format!("nft in {n}: {e}"))?;
            child
                .stdin
                .take()
                .ok_or("nft: no stdin")?
                .write_all(script.as_bytes())
                .map_err(|e| format!("nft in {n}: {e}"))?;
            let o = child.wait_with_output().map_err(|e| format!("nft in {n}: {e}"))?;
            if !o.status.success() {
                return Err(format!("nft in {n}: {}", String::from_utf8_lossy(&o.stderr)));
            }
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
        } else if cloud {
            addr("wan0", &format!("{}/24", CLOUD_WAN[i]), &gw)?;
        } else {
            addr("wan0", &format!("{}/24", GW_WAN[i]), &gw)?;
        }
        if !nat && !cloud {
            addr("wan0", &format!("{}/64", GW_WAN6[i]), &gw)?;
        }
        addr("lan0", &format!("{}/24", GW_LAN[i]), &gw)?;
        addr("lan0", &format!("{}/64", GW_LAN6[i]), &gw)?;
        addr("eth0", &format!("{}/24", HOST[i]), &h)?;
        addr("eth0", &format!("{}/64", HOST6[i]), &h)?;
        for (n, d) in [(&gw, "wan0"), (&gw, "lan0"), (&h, "eth0")] {
            ip(&["-n", n, "link", "set", d, "up"])?;
        }
        if a.wan_offload_off() {
            let gro: &[&str] = if a.wan_gro {
                &["gro", "on", "rx-udp-gro-forwarding", "on"]
            } else {
                &["gro", "off"]
            };
            sh(in_ns(&gw, "ethtool")
                .args(["-K", "wan0", "tx-udp-segmentation", "off"])
                .args(gro))?;
        }
        if a.extra_nets() {
            for k in 1..=EXTRA_NETS {
                addr("lan0", &format!("{}/24", extra_gw(i, k)), &gw)?;
                addr("eth0", &format!("{}/24", extra_host(i, k)), &h)?;
            }
        }
        ip(&["-n", &h, "route", "add", "default", "via", GW_LAN[i]])?;
        ip(&["-n", &h, "-6", "route", "add", "default", "via", GW_LAN6[i]])?;
    }
    if nat {
        ip(&["-n", &ns("gw1"), "route", "add", "default", "via", NAT_INSIDE])?;
    }
    if cloud {
        for i in 0..2 {
            ip(&["-n", &ns(NODES[i]), "route", "add", "default", "via", CLOUD_ROUTER[i]])?;
        }
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
    let nat = topology_note(a);
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
        let ipcomp = if a.ipcomp {
            format!(
                "# IPComp (DEFLATE): the CPIs our / the peer's IPComp headers carry\nipcomp = {{ out = {:#06x}, in = {:#06x} }}\n",
                LAB_CPIS[i], LAB_CPIS[j]
            )
        } else {
            String::new()
        };
        out[i] = format!(
            "# gw{n} of lab '{name}' (written by `ikeda lab up`; outer IPv{fam}{nat})\n\
             [daemon]\ntun = \"ikeda0\"\nmtu = 1400\n{daemon}\
             # the manual SA's reserved sequence numbers (never reused across restarts)\n\
             state_dir = \"{seq_dir}\"\n\n\
             [[conn]]\nname = \"site{m}\"\nlocal_addr = \"{l}\"\nremote_addr = \"{r}\"\n\
             encap = \"{encap}\"\nesp = \"{esp}\"\nesn = {esn}\n{train}\
             local_ts = [\"{ln}\", \"{ln6}\"]\nremote_ts = [\"{rn}\", \"{rn6}\"]\n\n\
             # gateway <-> remote net and local net <-> remote gateway, as in the seed setup\n\
             [[conn.policy]]\nlocal = \"{lw}\"\nremote = \"{rn}\"\n\n\
             [[conn.policy]]\nlocal = \"{ln}\"\nremote = \"{rw}\"\n\n\
             [conn.manual]\n{out}{inn}{ipcomp}",
            n = i + 1,
            m = j + 1,
            name = a.name.name,
            seq_dir = state_dir(&a.name.name).join(format!("state-gw{}", i + 1)).display(),
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
            daemon = daemon_lines(a),
            // Without IKE the peer cannot announce it: the lab knows both
            // gateways are ikeda.
            train = if a.encap() == EncapArg::Udp {
                "# the peer is ikeda, which takes full UDP_SEGMENT trains (manual SAs cannot say so)\nudp_train = 64\n"
            } else {
                ""
            },
        );
    }
    Ok(out)
}

/// The gateway config of gw `i` for an IKE-negotiated tunnel.
pub fn ike_gateway_config(a: &UpArgs, i: usize, psk: &str) -> String {
    let j = 1 - i;
    let fam = if a.outer6 { "6" } else { "4" };
    let ids = match conn_ids(a, i, "s2s").or_else(|| ike_ids(a, i)) {
        Some((l, r)) => format!("local_id = \"{l}\"\nremote_id = \"{r}\"\n"),
        None => String::new(),
    };
    let start = match a.initiates(i) {
        true if a.trap => "trap",
        true => "start",
        false => "none",
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
    if let Some(k) = a.keepalive {
        extra.push_str(&format!("keepalive = \"{k}s\"\n"));
    }
    if let Some(b) = a.rekey_bytes {
        extra.push_str(&format!("rekey_bytes = {b}\nlife_bytes = {}\n", b * 2));
    }
    if let Some(n) = a.rekey_packets {
        extra.push_str(&format!("rekey_packets = {n}\nlife_packets = {}\n", n * 2));
    }
    // Short test lifetimes: give the hard lifetime room for a rekey that
    // has to wait for another exchange (110 % of a few seconds is not).
    for (k, v) in [("life_time", &a.rekey_time), ("ike_lifetime", &a.ike_rekey_time)] {
        if let Some(secs) = v.as_deref().and_then(crate::config::parse_duration) {
            extra.push_str(&format!("{k} = \"{}s\"\n", secs * 2));
        }
    }
    // An explicit --encap udp on an IKE tunnel: gw1 forces UDP
    // encapsulation without a NAT (faked NAT detection); gw2 follows as any
    // peer would, which is what shows the forcing works with strongSwan.
    if i == 0 && a.encap == Some(EncapArg::Udp) {
        extra.push_str("encap = \"udp\"\n");
    }
    if a.ike == Some(1) && a.compress {
        extra.push_str("compress = true\n");
    }
    // After the conn's own keys: [[conn.policy]] tables end the conn. LAN
    // <-> remote gateway first: strongSwan's userspace ESP cannot install
    // the other one (its remote is our IKE address: "conflicts with IKE
    // traffic") and refuses it, which makes it drop Quick Modes in progress.
    let policies = if a.gateway_policies {
        format!(
            "\n[[conn.policy]]\nlocal = \"{ln}\"\nremote = \"{rgw}\"\n\n[[conn.policy]]\nlocal = \"{gw}\"\nremote = \"{rn}\"\n",
            gw = GW_WAN[i],
            rn = LAN_NET[j],
            ln = LAN_NET[i],
            rgw = GW_WAN[j],
        )
    } else {
        String::new()
    };
    // More CHILD SAs: after the conn's keys, as the policies.
    let mut policies = policies;
    for k in 1..usize::from(a.children) {
        policies.push_str(&format!(
            "\n[[conn.child]]\nname = \"net{k}\"\nlocal_ts = [\"{}\"]\nremote_ts = [\"{}\"]\n",
            extra_net(i, k),
            extra_net(j, k)
        ));
    }
    // A second connection between the same gateways: other identities,
    // another PSK, net 1 <-> net 1; the same settings otherwise.
    if a.conns > 1 {
        let (l, r) = conn_ids(a, i, "s2s2").unwrap_or_default();
        policies.push_str(&format!(
            "\n[[conn]]\nname = \"s2s2\"\nversion = {v}\nlocal_addr = \"{la}\"\nremote_addr = \"{ra}\"\n\
             local_id = \"{l}\"\nremote_id = \"{r}\"\nike = \"{ike}\"\nesp = \"{esp}\"\npsk = \"{psk2}\"\n\
             start_action = \"{start}\"\n{extra}local_ts = [\"{ln}\"]\nremote_ts = [\"{rn}\"]\n",
            la = gw_local(a, i),
            ra = gw_peer(a, i),
            ike = a.ike_proposal(),
            esp = a.gw_esp(i),
            psk2 = second_psk(a, psk),
            v = a.ike.unwrap_or(2),
            ln = extra_net(i, 1),
            rn = extra_net(j, 1),
        ));
    }
    let mut daemon = daemon_lines(a);
    if let Some(t) = a.retransmit_tries {
        daemon.push_str(&format!("retransmit_tries = {t}\n"));
    }
    if let Some(t) = &a.retransmit_timeout {
        daemon.push_str(&format!("retransmit_timeout = \"{t}\"\n"));
    }
    format!(
        "# gw{n} of lab '{name}' (written by `ikeda lab up --ike {v}`; outer IPv{fam}{nat})\n\
         [daemon]\ntun = \"ikeda0\"\nmtu = 1400\n{daemon}\n\
         [[conn]]\nname = \"s2s\"\nversion = {v}\nlocal_addr = \"{l}\"\nremote_addr = \"{r}\"\n{ids}\
         ike = \"{ike}\"\nesp = \"{esp}\"\npsk = \"{psk}\"\nstart_action = \"{start}\"\n{extra}\
         local_ts = [\"{ln}\", \"{ln6}\"]\nremote_ts = [\"{rn}\", \"{rn6}\"]\n{policies}",
        n = i + 1,
        name = a.name.name,
        nat = topology_note(a),
        l = gw_local(a, i),
        r = gw_peer(a, i),
        ike = a.ike_proposal(),
        v = a.ike.unwrap_or(2),
        esp = a.gw_esp(i),
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

pub fn alive(pid: u32) -> bool {
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

pub fn tail(path: &Path, n: usize) -> String {
    let t = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn up(a: &UpArgs) -> Result<(), String> {
    let name = &a.name.name;
    check_name(name)?;
    // IKE takes proposal lists (a PFS group, several algorithms); manual keys one algorithm.
    if a.ike.is_some() {
        ikeda_crypto::ike::parse_esp_proposals(&a.esp).map_err(|e| e.to_string())?;
        if let Some(p) = &a.peer_esp {
            ikeda_crypto::ike::parse_esp_proposals(p).map_err(|e| format!("--peer-esp: {e}"))?;
        }
    } else {
        EspAlgorithm::parse(&a.esp)?;
    }
    a.check()?;
    preflight::ensure(a, a.install_deps)?;
    let prefix = ns_name(name, "");
    if netns_list()?.iter().any(|n| n.starts_with(&prefix)) {
        return Err(format!(
            "lab '{name}' is already up (namespaces {prefix}*); run `ikeda lab down --name {name}` first"
        ));
    }
    let capture = match &a.capture {
        Some(f) => Some(capture_target(f)?),
        None => None,
    };
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
        firewall: a.firewall()?,
        ..Default::default()
    };
    save_state(&dir, &st)?;
    let r = bring_up(a, &dir, &mut st, capture.as_deref());
    if let Err(e) = r {
        // Nothing half-started: take down whatever came up.
        let _ = down(name);
        return Err(e);
    }
    if a.no_wait() {
        let d = a.start_delays()?;
        for (i, gw) in NODES[..2].iter().enumerate() {
            if d[i] > 0 {
                println!("{gw} starts in {} s", d[i]);
            }
        }
        println!("not waiting for the tunnel (--no-wait): `ikeda lab status --name {name}` shows it");
    } else if !a.no_ping {
        ping_across(name)?;
    }
    if let Some(c) = &st.capture {
        println!(
            "capturing {} {} into {} (dumpcap pid {}); `ikeda lab down --name {name}` stops it",
            c.node,
            c.iface,
            c.file.display(),
            c.pid
        );
    }
    if a.export_keys() {
        if st.key_dirs.is_empty() {
            println!("key export: no ikeda gateway in this lab, nothing to export");
        }
        let charon = a.gateways == Gateways::Strongswan;
        for (gw, kd) in &st.key_dirs {
            if charon {
                println!(
                    "{gw}'s charon logs its keys (ike and chd at level 4) to {}/{} (removed by `lab down`)",
                    kd.display(),
                    strongswan::CHARON_KEY_LOG
                );
            } else {
                println!(
                    "{gw} exports its keys to {} (ikev2_decryption_table, esp_sa, preferences, ikeda-keys.jsonl; \
                     removed by `lab down`)",
                    kd.display()
                );
            }
        }
        let file = st
            .capture
            .as_ref()
            .map_or("FILE".to_string(), |c| c.file.display().to_string());
        if let (true, Some((_, kd))) = (charon, st.key_dirs.first()) {
            println!("decrypt a capture: ikeda pcap {file} --keys {}", kd.display());
        } else if let Some((gw, kd)) = st.key_dirs.first() {
            println!(
                "decrypt a capture of {gw}'s WAN: WIRESHARK_CONFIG_DIR={} tshark -r {file}",
                kd.display()
            );
        }
    }
    println!(
        "lab '{name}' is up: `ikeda lab exec --name {name} h1 -- ping {}`; state in {}",
        HOST[1],
        dir.display()
    );
    Ok(())
}

fn bring_up(a: &UpArgs, dir: &Path, st: &mut LabState, capture: Option<&Path>) -> Result<(), String> {
    let name = &a.name.name;
    topology(name, a)?;
    if let Some(fw) = &st.firewall {
        for (i, gw) in NODES[..2].iter().enumerate() {
            firewall::install(&ns_name(name, gw), gw, fw.profiles[i], fw, dir)?;
        }
    }
    let delays = a.start_delays()?;
    if let Some(file) = capture {
        // Before any gateway starts, so the capture holds IKE_SA_INIT.
        start_lab_capture(name, dir, file, st)?;
    }
    match a.gateways {
        Gateways::None => {
            // Plain routing between the LANs, for the baseline.
            for (i, gw) in NODES[..2].iter().enumerate() {
                let j = 1 - i;
                ip(&["-n", &ns_name(name, gw), "route", "add", LAN_NET[j], "via", GW_WAN[j]])?;
            }
        }
        Gateways::Ikeda => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let psk = strongswan::random_psk()?;
            let cfgs = match a.ike {
                None => gateway_configs(a)?,
                Some(_) => [ike_gateway_config(a, 0, &psk), ike_gateway_config(a, 1, &psk)],
            };
            let ikeda_gws = if a.ike.is_some() && a.peer != Peer::Ikeda {
                1
            } else {
                2
            };
            // charon on gw2 runs first, its config loaded: a responder's
            // config must be there before ikeda's first message (charon
            // answers NO_PROPOSAL_CHOSEN without one). When loading it
            // starts charon's own connection, it waits until ikeda runs.
            let charon_load = if ikeda_gws == 1 && a.peer == Peer::Libreswan {
                // pluto loads its connection itself, and starts it where gw2
                // initiates; it listens with the connection added when
                // spawn returns.
                libreswan::spawn(name, dir, a, &psk, st)?;
                save_state(dir, st)?;
                false
            } else if ikeda_gws == 1 {
                let now = strongswan::spawn(name, dir, 1, a, &psk, st)?;
                save_state(dir, st)?;
                let starts_on_load = strongswan::async_start(a) && a.initiates(1);
                if now && !starts_on_load {
                    strongswan::load(dir, "gw2")?;
                }
                now && starts_on_load
            } else {
                false
            };
            let log_filter = gateway_log_filter();
            // Responders first, each running before the next starts: an
            // initiator's first message must find its peer listening.
            let mut order: Vec<usize> = (0..ikeda_gws).collect();
            order.sort_by_key(|i| a.ike.is_some() && a.initiates(*i));
            for i in order {
                let gw = NODES[i];
                let cfg = dir.join(format!("{gw}.toml"));
                write_secret(&cfg, &cfgs[i])?;
                let log = dir.join(format!("{gw}.log"));
                let stats = dir.join(format!("{gw}.stats.json"));
                let sock = dir.join(format!("{gw}.sock"));
                let (cfg, stats, sock_s) = (cfg.to_string_lossy(), stats.to_string_lossy(), sock.to_string_lossy());
                let mut args = vec![
                    "--log",
                    &log_filter,
                    "run",
                    "-c",
                    &cfg,
                    "--stats-file",
                    &stats,
                    "--control",
                    &sock_s,
                ];
                let keys = dir.join(format!("keys-{gw}"));
                let keys_s = keys.to_string_lossy();
                if a.export_keys() {
                    args.extend(["--export-keys", &keys_s]);
                    st.key_dirs.push((gw.to_string(), keys.clone()));
                }
                let pid = if delays[i] > 0 {
                    // The same PID sleeps, then becomes ikeda (exec).
                    let script = format!("sleep {}; exec \"$0\" \"$@\"", delays[i]);
                    let exe_s = exe.to_string_lossy();
                    let mut sh_args = vec!["-c", &script, &exe_s];
                    sh_args.extend(args.iter().copied());
                    spawn_in_ns(&ns_name(name, gw), Path::new("/bin/sh"), &sh_args, &log, &[])?
                } else {
                    spawn_in_ns(&ns_name(name, gw), &exe, &args, &log, &[])?
                };
                st.pids.push((format!("ikeda {gw}"), pid));
                st.controls.push((gw.to_string(), sock.clone()));
                save_state(dir, st)?;
                if delays[i] > 0 {
                    continue;
                }
                // Started: its policy rules are in, and then its data plane
                // runs (it writes the stats file only then; traffic routed to
                // the TUN before that waits in its queue, but ESP that
                // arrives before the socket is open is lost).
                let ns = ns_name(name, gw);
                let stats = dir.join(format!("{gw}.stats.json"));
                let ok = wait_until(Duration::from_secs(10), || {
                    !alive(pid)
                        || (stats.exists()
                            && ip(&["-n", &ns, "rule", "show", "pref", &crate::plan::RULE_PREF.to_string()])
                                .is_ok_and(|s| !s.trim().is_empty()))
                });
                if !ok || !alive(pid) {
                    return Err(format!(
                        "ikeda on {gw} did not start:\n{}",
                        tail(&dir.join(format!("{gw}.log")), 20)
                    ));
                }
            }
            if charon_load {
                strongswan::load(dir, "gw2")?;
            }
            if a.ike.is_some() && !a.trap && !a.no_wait() {
                if a.peer == Peer::Strongswan && a.initiator == Initiator::Gw2 {
                    strongswan::initiate(dir, "gw2", a)?;
                }
                // Before gw1's CHILD SA: where libreswan's kernel refuses
                // the SA, ikeda may have one that nothing can answer, or
                // none (TEMPORARY_FAILURE); pluto's log says which.
                if a.peer == Peer::Libreswan {
                    libreswan::wait_installed(dir)?;
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
            // What `lab audit` reads of each charon: the same addresses,
            // start action, version and timers, as an ikeda config (never
            // run; its PSK is a placeholder, not the charons').
            for (i, gw) in NODES[..2].iter().enumerate() {
                let f = dir.join(format!("{gw}.audit.toml"));
                let text = ike_gateway_config(a, i, "placeholder-not-the-lab-psk-0000")
                    .replacen("# gw", "# for `lab audit` only: charon's setup, as ikeda would have it; gw", 1);
                write_secret(&f, &text)?;
            }
            strongswan::start_pair(name, dir, a, st)?;
            save_state(dir, st)?;
        }
    }
    Ok(())
}

/// The ikeda gateways' `[daemon]` lines of `--no-udp-offload` and
/// `--tun-queues`, where given.
fn daemon_lines(a: &UpArgs) -> String {
    let mut lines = String::new();
    if a.no_udp_offload {
        lines.push_str("udp_offload = false\n");
    }
    if let Some(q) = a.tun_queues {
        lines.push_str(&format!("tun_queues = {q}\n"));
    }
    lines
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
    let nss: Vec<String> = netns_list()?.into_iter().filter(|n| n.starts_with(&prefix)).collect();
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
        for (gw, sock) in &st.controls {
            println!("  {gw} control socket: {}", sock.display());
        }
        for (gw, kd) in &st.key_dirs {
            println!("  {gw} key export: {}", kd.display());
        }
        if let Some(c) = &st.capture {
            println!(
                "  capture of {} {} into {}: dumpcap pid {} {}",
                c.node,
                c.iface,
                c.file.display(),
                c.pid,
                if alive(c.pid) { "running" } else { "NOT RUNNING" }
            );
        }
    }
    // The security groups: what each admitted by rule, only as a reply,
    // or dropped.
    if let Some(fw) = load_state(name).and_then(|st| st.firewall) {
        for (i, gw) in NODES[..2].iter().enumerate() {
            if fw.profiles[i] == firewall::Profile::None {
                println!("\n{gw}: no security group (--firewall none)");
                continue;
            }
            match firewall::counters(&ns_name(name, gw)) {
                Ok(c) => print!("\n{}", firewall::counters_table(gw, fw.profiles[i], &fw, &c)),
                Err(e) => println!("\n{gw} security group: {e}"),
            }
        }
    }
    // pluto on gw2: its states as `ipsec showstates` lists them.
    if let Some(st) = load_state(name) {
        if let Some((_, pid)) = st.pids.iter().find(|(w, _)| w == "pluto gw2") {
            let root = st.peer_root.clone().unwrap_or_else(|| PathBuf::from("/"));
            match libreswan::status(*pid, &root) {
                Ok(s) => print!("\ngw2 (libreswan, ipsec showstates):\n{s}"),
                Err(e) => println!("\ngw2 (libreswan): {e}"),
            }
        }
    }
    // A charon gateway: its SAs as swanctl lists them.
    for gw in ["gw1", "gw2"] {
        if dir.join(format!("charon-{gw}/charon.vici")).exists() {
            match sh(strongswan::swanctl(&dir, gw).args(["--list-sas", "--uri", &strongswan::vici_uri(&dir, gw)])) {
                Ok(t) => print!("\n{gw} (strongSwan, swanctl --list-sas):\n{}", if t.trim().is_empty() { "  no SAs\n".into() } else { t }),
                Err(e) => println!("\n{gw} (strongSwan): {e}"),
            }
        }
    }
    // Each ikeda gateway answers on its control socket: its connections,
    // then its CHILD SAs with their counters.
    for gw in ["gw1", "gw2"] {
        let sock = dir.join(format!("{gw}.sock"));
        if !sock.exists() {
            continue;
        }
        let status = crate::control::request(&sock, crate::control::Command::Status)
            .map(|v| serde_json::from_value::<Vec<crate::show::ConnStatus>>(v).unwrap_or_default());
        let child = crate::control::request(&sock, crate::control::Command::ShowChild)
            .map(|v| serde_json::from_value::<Vec<crate::show::ChildSaOut>>(v).unwrap_or_default());
        match (status, child) {
            (Ok(st), Ok(ch)) => {
                println!("\n{gw} (ikeda --socket {}):", sock.display());
                print!("{}{}", crate::show::status_table(&st), crate::show::child_table(&ch));
            }
            (Err(e), _) | (_, Err(e)) => println!("\n{gw}: {e}"),
        }
    }
    Ok(())
}

fn exec(name: &str, node: &str, cmd: &[String]) -> Result<(), String> {
    if !NODES.contains(&node) && node != NAT_NODE && !CLOUD_NODES.contains(&node) {
        return Err(format!("unknown node '{node}' (gw1, gw2, h1, h2; nat with --nat; igw1, igw2 with --cloud)"));
    }
    let ns = ns_name(name, node);
    if !netns_list()?.contains(&ns) {
        return Err(format!("lab '{name}' is not up (no namespace {ns})"));
    }
    let err = Command::new("ip").args(["netns", "exec", &ns]).args(cmd).exec();
    Err(format!("exec: {err}"))
}

/// Stop what the lab started (by recorded PID): the capture first, so its
/// file is complete, then the gateways; archive the logs, configs and keys
/// if IKEDA_LAB_ARCHIVE says where; delete the namespaces and the state.
pub fn down(name: &str) -> Result<(), String> {
    check_name(name)?;
    let mut errs = Vec::new();
    if let Some(st) = load_state(name) {
        if let Some(c) = &st.capture {
            match stop_capture(c.pid) {
                Ok(()) => match pcap_packets(&c.file) {
                    Ok(n) => println!("capture of {} {}: {n} packets in {}", c.node, c.iface, c.file.display()),
                    Err(e) => errs.push(format!("capture {}: {e}", c.file.display())),
                },
                Err(e) => errs.push(e),
            }
        }
        for (what, pid) in &st.pids {
            stop_pid(what, *pid);
        }
    }
    let dir = state_dir(name);
    let mut keep_state = false;
    if let Some(root) = std::env::var_os("IKEDA_LAB_ARCHIVE").filter(|r| !r.is_empty()) {
        if dir.is_dir() {
            match archive(name, &dir, Path::new(&root)) {
                Ok(dest) => println!(
                    "archived the logs, configs and keys of lab '{name}' in {}",
                    dest.display()
                ),
                Err(e) => {
                    errs.push(format!(
                        "archiving to {}: {e} (state kept in {})",
                        Path::new(&root).display(),
                        dir.display()
                    ));
                    keep_state = true;
                }
            }
        }
    }
    let prefix = ns_name(name, "");
    match netns_list() {
        Ok(nss) => {
            for ns in nss.into_iter().filter(|n| n.starts_with(&prefix)) {
                if let Err(e) = ip(&["netns", "del", &ns]) {
                    errs.push(e);
                }
            }
        }
        Err(e) => errs.push(e),
    }
    // Down means no namespace of the lab is left, whatever was said above.
    match netns_list() {
        Ok(nss) => {
            let left: Vec<String> = nss.into_iter().filter(|n| n.starts_with(&prefix)).collect();
            if !left.is_empty() {
                errs.push(format!("namespaces still there: {}", left.join(" ")));
            }
        }
        Err(e) => errs.push(e),
    }
    if !keep_state {
        let _ = fs::remove_dir_all(&dir);
    }
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

// ---- packet capture -------------------------------------------------------------

/// The link `lab capture` records on a node: a gateway's WAN link, or the
/// NAT's outside link.
fn outer_iface(node: &str) -> Result<&'static str, String> {
    match node {
        "gw1" | "gw2" => Ok("wan0"),
        NAT_NODE => Ok("out0"),
        "h1" | "h2" => Err(format!(
            "node '{node}' is a host, with no outer link; capture on gw1 or gw2 (WAN link wan0) or nat (outside link out0)"
        )),
        _ => Err(format!("unknown node '{node}': capture on gw1, gw2, or nat (with --nat)")),
    }
}

fn need_dumpcap() -> Result<(), String> {
    if sh(Command::new("sh").args(["-c", "command -v dumpcap"])).is_err() {
        return Err("'dumpcap' is not installed (Debian package tshark brings it); \
                    scripts/test.sh installs everything the lab uses"
            .into());
    }
    Ok(())
}

/// The capture file as an absolute path whose directory exists; an old
/// file of that name is removed (dumpcap would replace it; removing it
/// first makes "the file exists" mean "this dumpcap opened it").
fn capture_target(file: &Path) -> Result<PathBuf, String> {
    need_dumpcap()?;
    let file = std::path::absolute(file).map_err(|e| format!("{}: {e}", file.display()))?;
    if file.is_dir() {
        return Err(format!("{} is a directory; give a pcap file name", file.display()));
    }
    match file.parent() {
        Some(d) if d.is_dir() => {}
        _ => return Err(format!("{}: its directory does not exist", file.display())),
    }
    match fs::remove_file(&file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", file.display())),
    }
    Ok(file)
}

/// dumpcap's arguments: pcap (not pcapng), no packet counts on stderr.
fn dumpcap_args<'a>(iface: &'a str, file: &'a str) -> [&'a str; 6] {
    ["-q", "-P", "-i", iface, "-w", file]
}

fn ifindex(ns: &str, iface: &str) -> Result<u32, String> {
    let out = ip(&["-n", ns, "-o", "link", "show", "dev", iface])?;
    out.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no ifindex for {iface} in {ns}: {out}"))
}

/// dumpcap `pid` captures: its output file exists (dumpcap opens it only
/// after its capture handle is active) and one of its own sockets is a
/// running packet socket bound to the link (`/proc/PID/net/packet` lists
/// the packet sockets of the process's namespace). From then on every
/// packet on the link ends up in the file.
fn capture_ready(pid: u32, ifindex: u32, file: &Path) -> bool {
    if !file.exists() {
        return false;
    }
    let socks: HashSet<u64> = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let table = fs::read_to_string(format!("/proc/{pid}/net/packet")).unwrap_or_default();
    // sk RefCnt Type Proto Iface R Rmem User Inode
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 9
            && f[4].parse() == Ok(ifindex)
            && f[5] == "1"
            && f[8].parse().is_ok_and(|i: u64| socks.contains(&i))
    })
}

/// Wait until the dumpcap just started as `pid` captures on `iface` in `ns`.
fn wait_capturing(pid: u32, ns: &str, iface: &str, file: &Path, log: impl Fn() -> String) -> Result<(), String> {
    let idx = ifindex(ns, iface)?;
    let ok = wait_until(Duration::from_secs(20), || !alive(pid) || capture_ready(pid, idx, file));
    if ok && alive(pid) {
        return Ok(());
    }
    Err(format!(
        "dumpcap on {iface} in {ns} did not start capturing{}:\n{}",
        if alive(pid) { " within 20 s" } else { " (it exited)" },
        log()
    ))
}

/// The kernel hands captured packets to dumpcap in blocks (TPACKET_V3)
/// that it retires every 250 ms or when full, and a dumpcap told to stop
/// does not wait for the block still open: let the last packets reach it.
const CAPTURE_DRAIN: Duration = Duration::from_millis(600);

/// Stop a dumpcap we started so that its file is complete: wait for the
/// last packets, then SIGINT (dumpcap finishes the file), SIGTERM, and
/// SIGKILL as a last resort (an error: the file may be cut short).
fn stop_capture(pid: u32) -> Result<(), String> {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !alive(pid) || !String::from_utf8_lossy(&cmdline).contains("dumpcap") {
        return Ok(());
    }
    std::thread::sleep(CAPTURE_DRAIN);
    for (sig, secs) in [(libc::SIGINT, 10), (libc::SIGTERM, 5)] {
        // SAFETY: kill(2) on the PID of a dumpcap this lab started, checked above.
        unsafe { libc::kill(pid as i32, sig) };
        if wait_until(Duration::from_secs(secs), || !alive(pid)) {
            return Ok(());
        }
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(2), || !alive(pid));
    Err(format!(
        "dumpcap (pid {pid}) ignored SIGINT and SIGTERM and was killed; its file may be incomplete"
    ))
}

/// The number of packets in a pcap file (either byte order, µs or ns).
pub fn pcap_packets(file: &Path) -> Result<u64, String> {
    let err = |e: std::io::Error| format!("{}: {e}", file.display());
    let f = fs::File::open(file).map_err(err)?;
    let len = f.metadata().map_err(err)?.len();
    let mut r = BufReader::new(f);
    let mut hdr = [0u8; 24];
    r.read_exact(&mut hdr)
        .map_err(|_| format!("{}: not a pcap file ({len} bytes)", file.display()))?;
    let le = match hdr[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => {
            return Err(format!(
                "{}: not a pcap file (magic {:02x?})",
                file.display(),
                &hdr[..4]
            ))
        }
    };
    let (mut pos, mut n) = (24u64, 0u64);
    let mut rec = [0u8; 16];
    while pos + 16 <= len {
        r.read_exact(&mut rec).map_err(err)?;
        let b = [rec[8], rec[9], rec[10], rec[11]];
        let incl = if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as u64;
        pos += 16 + incl;
        if pos > len {
            break; // a record cut short
        }
        r.seek(SeekFrom::Start(pos)).map_err(err)?;
        n += 1;
    }
    Ok(n)
}

/// `lab up --capture FILE`: dumpcap on gw1's WAN link, detached (it
/// outlives `lab up`), recorded in the lab state for `down`.
fn start_lab_capture(name: &str, dir: &Path, file: &Path, st: &mut LabState) -> Result<(), String> {
    let (node, iface) = ("gw1", "wan0");
    let ns = ns_name(name, node);
    let log = dir.join("capture.log");
    let file_s = file.to_string_lossy();
    let pid = spawn_in_ns(&ns, Path::new("dumpcap"), &dumpcap_args(iface, &file_s), &log, &[])?;
    st.capture = Some(CaptureState {
        pid,
        node: node.into(),
        iface: iface.into(),
        file: file.to_path_buf(),
    });
    save_state(dir, st)?;
    wait_capturing(pid, &ns, iface, file, || tail(&log, 10))
}

/// The signal that asked `lab capture` to stop (0: none yet).
static CAPTURE_STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn capture_stop_handler(sig: libc::c_int) {
    CAPTURE_STOP.store(sig, Ordering::Relaxed);
}

/// dumpcap's stderr without the lines every run prints.
fn dumpcap_messages(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let l = l.trim();
            !l.is_empty()
                && !l.starts_with("Running as user")
                && !l.starts_with("Capturing on")
                && !l.starts_with("File:")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ikeda lab capture NODE FILE`: dumpcap in the node's namespace, in the
/// foreground. dumpcap gets a process group of its own, so a terminal's
/// Ctrl-C reaches only us; we stop it as `down` does (file complete).
fn capture(name: &str, node: &str, file: &Path, duration: Option<u64>) -> Result<(), String> {
    check_name(name)?;
    let iface = outer_iface(node)?;
    let ns = ns_name(name, node);
    let nss = netns_list()?;
    if !nss.contains(&ns) {
        return Err(if node == NAT_NODE && nss.contains(&ns_name(name, "gw1")) {
            format!("lab '{name}' has no NAT node (it was brought up without --nat)")
        } else {
            format!("lab '{name}' is not up (no namespace {ns}); bring it up with `ikeda lab up --name {name}`")
        });
    }
    let file = capture_target(file)?;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(sig, capture_stop_handler as *const () as libc::sighandler_t) };
    }
    let file_s = file.to_string_lossy();
    let mut child = in_ns(&ns, "dumpcap")
        .args(dumpcap_args(iface, &file_s))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting dumpcap: {e}"))?;
    let pid = child.id();
    let stderr = Arc::new(Mutex::new(String::new()));
    let reader = child.stderr.take().map(|pipe| {
        let acc = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = acc.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        })
    });
    let messages = || dumpcap_messages(&stderr.lock().unwrap_or_else(|e| e.into_inner()));
    if let Err(e) = wait_capturing(pid, &ns, iface, &file, messages) {
        let _ = stop_capture(pid);
        let _ = child.wait();
        return Err(e);
    }
    eprintln!(
        "capturing {node} {iface} into {}{}",
        file.display(),
        match duration {
            Some(d) => format!(" for {d} s (Ctrl-C stops earlier)"),
            None => " until Ctrl-C or SIGTERM".into(),
        }
    );
    let t0 = Instant::now();
    let until = duration.map(Duration::from_secs);
    let exited = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if CAPTURE_STOP.load(Ordering::Relaxed) != 0 || until.is_some_and(|d| t0.elapsed() >= d) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stopped = match exited {
        Some(st) => Err(format!("dumpcap exited by itself ({st})")),
        None => stop_capture(pid),
    };
    let _ = child.wait();
    if let Some(r) = reader {
        let _ = r.join();
    }
    let msgs = messages();
    if !msgs.is_empty() {
        eprintln!("{msgs}");
    }
    let n = pcap_packets(&file)?;
    println!("{n} packets written to {}", file.display());
    stopped
}

/// Copy what a full test run checks for key leaks (the ikeda gateways'
/// logs, their configs with the PSK, the exported keys) into
/// `root/<lab>-<unique>/` (0700, files 0600) before `down` removes the
/// state directory.
fn archive(name: &str, dir: &Path, root: &Path) -> Result<PathBuf, String> {
    let mkdir = |d: &Path, recursive: bool| -> Result<(), String> {
        fs::DirBuilder::new()
            .recursive(recursive)
            .mode(0o700)
            .create(d)
            .map_err(|e| format!("{}: {e}", d.display()))?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o700)).map_err(|e| format!("{}: {e}", d.display()))
    };
    if !root.is_dir() {
        mkdir(root, true)?;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dest = root.join(format!("{name}-{}-{nanos:x}", std::process::id()));
    mkdir(&dest, false)?;
    let copy = |from: &Path, to: &Path| -> Result<(), String> {
        let mut src = fs::File::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
        let mut dst = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(|e| format!("{}: {e}", to.display()))?;
        std::io::copy(&mut src, &mut dst).map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
        Ok(())
    };
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        // strongSwan's logs too (`charon-gw2.log`): a failure against it
        // is read from both sides.
        let gateway_log = NODES[..2]
            .iter()
            .any(|gw| fname == format!("{gw}.log") || fname == format!("charon-{gw}.log"))
            || fname == libreswan::PLUTO_LOG;
        if path.is_file() && (gateway_log || fname.ends_with(".toml")) {
            copy(&path, &dest.join(&fname))?;
        } else if path.is_dir() && fname.starts_with("keys-") {
            // The whole key directory: ikeda-keys.jsonl, and Wireshark's
            // files, so WIRESHARK_CONFIG_DIR=<archive>/keys-gw1 works too.
            mkdir(&dest.join(&fname), false)?;
            for k in fs::read_dir(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .flatten()
            {
                if k.path().is_file() {
                    copy(&k.path(), &dest.join(&fname).join(k.file_name()))?;
                }
            }
        }
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Up {
        #[command(flatten)]
        up: UpArgs,
    }

    fn args(a: &[&str]) -> UpArgs {
        up_args(a)
    }

    /// `lab up` arguments as clap parses them.
    pub(super) fn up_args(a: &[&str]) -> UpArgs {
        Up::try_parse_from(std::iter::once("up").chain(a.iter().copied()))
            .unwrap()
            .up
    }

    #[test]
    fn ipcomp_gives_both_gateways_mirrored_cpis() {
        let cfgs = gateway_configs(&args(&["--ipcomp"])).unwrap();
        let ipcomp = |i: usize| {
            let c = crate::config::Config::parse(Path::new("gw.toml"), &cfgs[i]).unwrap();
            c.conns[0].manual.as_ref().unwrap().ipcomp.unwrap()
        };
        let (g1, g2) = (ipcomp(0), ipcomp(1));
        assert_eq!((g1.cpi_out, g1.cpi_in), (LAB_CPIS[0], LAB_CPIS[1]));
        assert_eq!((g2.cpi_out, g2.cpi_in), (g1.cpi_in, g1.cpi_out));
        // Off by default.
        let plain = gateway_configs(&args(&[])).unwrap();
        assert!(!plain[0].contains("ipcomp"), "{}", plain[0]);
        // Only with manual keys on two ikeda gateways.
        for bad in [
            &["--ipcomp", "--ike", "2"][..],
            &["--ipcomp", "--gateways", "strongswan"],
        ] {
            let e = args(bad).check().unwrap_err();
            assert!(e.contains("--ipcomp"), "{e}");
        }
    }
}
