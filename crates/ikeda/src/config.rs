//! The gateway configuration file (TOML).
//!
//! ```toml
//! [daemon]
//! tun = "ikeda0"         # TUN device the data plane reads and writes
//! mtu = 1400             # inner MTU of the TUN device
//! offload = true         # TUN with TCP segmentation offload (IFF_VNET_HDR); false: one packet per read
//! udp_offload = true     # with offload: UDP_SEGMENT/UDP_GRO trains on UDP 4500 (captures before the NIC show trains)
//! tun_queues = 1         # TUN queues (1-8), one sending thread each; more spread flows over spare cores
//! route_table = 220      # routing table for the remote selectors
//! control_socket = "/run/ikeda/ikeda.sock"   # `ikeda status|show|up|down|reload|log` talk here (0600)
//! key_export = "/var/lib/ikeda/keys"         # off unless set: Wireshark key files, 0600
//! state_dir = "/var/lib/ikeda/state"         # manual SAs' reserved sequence numbers (0700, files 0600)
//! log = "info,ike=debug"  # levels per subsystem (ike, esp, config, control); --log / IKEDA_LOG win
//!
//! [[conn]]
//! name = "site2"
//! local_addr = "192.168.50.11"
//! remote_addr = "192.168.50.12"
//! encap = "esp"          # "esp" = IP protocol 50, "udp" = RFC 3948 on port 4500 (IKE: force it without a NAT)
//! esp = "aes128gcm16"    # one ESP proposal, written as strongSwan writes it
//! esn = false
//! replay_window = 1024
//! udp_train = 64         # optional: ESP-in-UDP datagrams per UDP_SEGMENT train to this peer (1-64), see below
//! local_ts = ["192.168.11.0/24"]     # every local_ts x remote_ts pair is a policy
//! remote_ts = ["192.168.12.0/24"]
//!
//! [[conn.policy]]        # extra selector pairs (gateway <-> net and so on)
//! local = "192.168.50.11"
//! remote = "192.168.12.0/24"
//! proto = "icmp"         # optional; ports likewise: local_port / remote_port = "80" or "1024-65535"
//!
//! [[conn.child]]         # IKEv2: one more CHILD SA under the same IKE SA (swanctl's children)
//! name = "dmz"
//! local_ts = ["10.11.0.0/24"]
//! remote_ts = ["10.12.0.0/24"]
//!
//! [conn.manual]          # manual keying, as `setkey add` did
//! out = { spi = "0x1001", enc_key = "0x...", auth_key = "0x..." }
//! in  = { spi = "0x2001", enc_key = "0x..." }
//! ipcomp = { out = 0x1234, in = 0x4321 }   # optional: IPComp (DEFLATE), see below
//! ```
//!
//! `ipcomp` turns on IP payload compression (RFC 3173, DEFLATE per RFC
//! 2394) inside the ESP tunnel, as racoon's `compression_algorithm
//! deflate` or strongSwan's `ipcomp = yes` do: packets of 90 bytes or more
//! are deflated and sent behind an IPComp header when that makes them
//! smaller, the rest go as they are. `out` is the CPI (Compression
//! Parameter Index) our IPComp headers carry, `in` the one the peer's must
//! carry; the peer's config has them the other way round (as `setkey add
//! A B ipcomp CPI -C deflate` takes one CPI per direction). Both are
//! numbers (`0x1234`, `4660` or `"0x1234"`) in 256..61439, the range RFC
//! 3173 §3.3 leaves for negotiated CPIs (0-63 name transforms, 64-255 are
//! reserved, 61440-65535 are for private use).
//!
//! `udp_train` caps the datagrams one `UDP_SEGMENT` send carries to the
//! peer (with `encap = "udp"` and `daemon.udp_offload`); they reach it in
//! one burst. Unset, a peer that announced in IKE that it takes full
//! trains (ikeda does) gets 64, any other peer, and every manually keyed
//! SA, 16: a peer that reads one datagram per syscall from a default
//! socket buffer (strongSwan with kernel-libipsec) drops some of a burst
//! of 64. Set it for a peer known either way, such as a kernel ESP peer
//! (64) or a manually keyed ikeda (64).
//!
//! A bad file is refused with the file, the key and the reason, before
//! anything is started.

use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_esp::{AddrRange, Encap, Selector};
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::udp_gso::MAX_SEGMENTS;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A configuration error: which file, which key, why.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

// ---- the file as written -------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    conn: Vec<RawConn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    #[serde(default = "default_tun")]
    tun: String,
    #[serde(default = "default_mtu")]
    mtu: u32,
    #[serde(default = "default_offload")]
    offload: bool,
    #[serde(default = "default_offload")]
    udp_offload: bool,
    #[serde(default)]
    tun_queues: Option<usize>,
    #[serde(default = "default_table")]
    route_table: u32,
    /// IKE retransmission: first timeout, back-off base, tries (strongSwan's
    /// charon.retransmit_timeout / _base / _tries).
    #[serde(default)]
    retransmit_timeout: Option<String>,
    #[serde(default)]
    retransmit_base: Option<f64>,
    #[serde(default)]
    retransmit_tries: Option<u32>,
    #[serde(default)]
    control_socket: Option<PathBuf>,
    #[serde(default)]
    key_export: Option<PathBuf>,
    #[serde(default)]
    state_dir: Option<PathBuf>,
    #[serde(default)]
    log: Option<String>,
}

impl Default for RawDaemon {
    fn default() -> Self {
        RawDaemon {
            tun: default_tun(),
            mtu: default_mtu(),
            offload: default_offload(),
            udp_offload: true,
            tun_queues: None,
            route_table: default_table(),
            retransmit_timeout: None,
            retransmit_base: None,
            retransmit_tries: None,
            control_socket: None,
            key_export: None,
            state_dir: None,
            log: None,
        }
    }
}

fn default_tun() -> String {
    "ikeda0".into()
}
fn default_mtu() -> u32 {
    1400
}
fn default_offload() -> bool {
    true
}
fn default_table() -> u32 {
    220
}
fn default_port() -> u16 {
    4500
}
fn default_window() -> u32 {
    ikeda_esp::replay::DEFAULT_WINDOW
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConn {
    name: String,
    local_addr: String,
    remote_addr: String,
    #[serde(default)]
    encap: Option<String>,
    #[serde(default = "default_port")]
    port: u16,
    esp: String,
    #[serde(default)]
    esn: bool,
    #[serde(default = "default_window")]
    replay_window: u32,
    #[serde(default)]
    udp_train: Option<u8>,
    #[serde(default)]
    local_ts: Vec<String>,
    #[serde(default)]
    remote_ts: Vec<String>,
    #[serde(default)]
    policy: Vec<RawPolicy>,
    /// IKEv2: more CHILD SAs under the connection's IKE SA.
    #[serde(default)]
    child: Vec<RawChild>,
    manual: Option<RawManual>,
    // ---- IKE (instead of [conn.manual]) ----
    #[serde(default)]
    version: Option<u8>,
    #[serde(default)]
    ike: Option<String>,
    #[serde(default)]
    local_id: Option<String>,
    #[serde(default)]
    remote_id: Option<String>,
    #[serde(default)]
    psk: Option<String>,
    #[serde(default)]
    psk_file: Option<String>,
    #[serde(default)]
    start_action: Option<String>,
    #[serde(default)]
    ike_rekey_time: Option<String>,
    #[serde(default)]
    ike_lifetime: Option<String>,
    #[serde(default)]
    rekey_time: Option<String>,
    #[serde(default)]
    life_time: Option<String>,
    #[serde(default)]
    rekey_bytes: Option<u64>,
    #[serde(default)]
    life_bytes: Option<u64>,
    #[serde(default)]
    rekey_packets: Option<u64>,
    #[serde(default)]
    life_packets: Option<u64>,
    #[serde(default)]
    dpd_delay: Option<String>,
    #[serde(default)]
    dpd_action: Option<String>,
    #[serde(default)]
    keepalive: Option<String>,
    // ---- IKEv1 only ----
    #[serde(default)]
    aggressive: Option<bool>,
    #[serde(default)]
    compress: Option<bool>,
    #[serde(default)]
    allow_insecure: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    local: String,
    remote: String,
    #[serde(default)]
    proto: Option<String>,
    #[serde(default)]
    local_port: Option<String>,
    #[serde(default)]
    remote_port: Option<String>,
}

/// A `[[conn.child]]`: one more CHILD SA of an IKEv2 connection.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChild {
    name: String,
    local_ts: Vec<String>,
    remote_ts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManual {
    out: RawSaKeys,
    #[serde(rename = "in")]
    inbound: RawSaKeys,
    #[serde(default)]
    ipcomp: Option<RawIpcomp>,
}

/// The CPI pair of `[conn.manual] ipcomp`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIpcomp {
    out: SpiValue,
    #[serde(rename = "in")]
    inbound: SpiValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSaKeys {
    spi: SpiValue,
    enc_key: String,
    #[serde(default)]
    auth_key: Option<String>,
}

/// An SPI written as a number or as a (hex) string.
#[derive(Deserialize)]
#[serde(untagged)]
enum SpiValue {
    Num(u32),
    Str(String),
}

// ---- the validated configuration -----------------------------------------

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub daemon: DaemonConfig,
    pub conns: Vec<ConnConfig>,
    /// Said at load, not refused: `ikeda check` prints them, `run` logs them.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub tun: String,
    pub mtu: u32,
    /// Open the TUN with `IFF_VNET_HDR` and TCP/UDP segmentation offload
    /// (reads return super-packets we segment); falls back without it if
    /// the kernel refuses.
    pub offload: bool,
    /// With `offload`: UDP_SEGMENT sends (each SA's train as long as its
    /// peer takes, `ikeda_esp::OutboundSa::train`) and UDP_GRO receives on
    /// the UDP 4500 socket. On
    /// by default. A train stays one frame up to the first device that
    /// segments it: a capture on a device with `tx-udp-segmentation` on
    /// (a veth, the gateway's own interface before the NIC) shows several
    /// ESP packets in one frame, which Wireshark cannot decrypt; the README
    /// says how to capture, and the lab turns it off on its WAN links.
    pub udp_offload: bool,
    /// Queues of the TUN device (`IFF_MULTI_QUEUE`), each read by its own
    /// TX thread; 1 unless set. Why not one per CPU by default: the threads
    /// read and cut super-packets in parallel but seal and send one at a
    /// time (`dataplane::TxState`), and the kernel hashes every packet of a
    /// multi-queue TUN, so more queues help only where cores are idle; on
    /// two cores that also carry the lab's hosts, two queues measured raw
    /// ESP 4 % (one stream) to 15 % (four) slower than one, UDP no
    /// different.
    pub tun_queues: usize,
    pub route_table: u32,
    /// IKE retransmission: first timeout (ms), back-off base, tries.
    pub retransmit: (u64, f64, u32),
    /// The control socket (Unix, 0600).
    pub control_socket: PathBuf,
    /// Key export directory; `None`: off.
    pub key_export: Option<PathBuf>,
    /// Where manually keyed SAs keep their reserved sequence numbers
    /// (`seqstate`): a directory of ours, 0700.
    pub state_dir: PathBuf,
    /// Log filter (tracing syntax), unless the command line gives one.
    pub log: Option<String>,
}

/// Where `ikeda run` listens and the other commands connect by default.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ikeda/ikeda.sock";

/// A warning when the file `cfg` was read from holds a key (a `psk` or
/// manual keys; `psk_file` is checked on its own) and group or others may
/// read it.
fn open_key_file_warning(path: &Path, cfg: &Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let inline_psk = cfg.conns.iter().any(|c| c.ike.as_ref().is_some_and(|i| i.psk_inline));
    let keys = inline_psk || cfg.conns.iter().any(|c| c.manual.is_some());
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (keys && mode & 0o077 != 0).then(|| {
        format!(
            "{} holds keys but its mode is {mode:04o}: group or others can read them; chmod 600 it",
            path.display()
        )
    })
}

/// A TOML error in words that cannot leak a secret: toml's own text quotes
/// the offending source line and serde's quotes the value (`invalid type:
/// string "..."`), which on a `psk` or `enc_key` line is the key. So: line
/// and column, the key name written on that line (names only), and the
/// message with every quoted part left out.
fn syntax_error(text: &str, e: &toml::de::Error) -> (String, String) {
    let Some(span) = e.span() else {
        return (String::new(), format!("not valid TOML: {}", unquoted(e.message())));
    };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
        .unwrap_or_default();
    (
        key.to_string(),
        format!("line {line}, column {col}: not valid TOML: {}", unquoted(e.message())),
    )
}

/// `s` with what it quotes left out: values ("..." and '...', and numbers
/// in `...`) become "...", field names in `...` stay (serde's `unknown
/// field `bogus``), since a name is not a secret.
fn unquoted(s: &str) -> String {
    let mut out = String::new();
    let mut quoted: Option<(char, String)> = None;
    for c in s.chars() {
        match &mut quoted {
            None if "\"'`".contains(c) => quoted = Some((c, String::new())),
            None => out.push(c),
            Some((q, inner)) if *q == c => {
                let name = c == '`'
                    && inner.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && inner.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
                out.push_str(&if name { format!("`{inner}`") } else { "...".into() });
                quoted = None;
            }
            Some((_, inner)) => inner.push(c),
        }
    }
    if quoted.is_some() {
        out.push_str("...");
    }
    out.trim_end().replace('\n', " ")
}

/// The longest lifetime or rekey time accepted: ten years.
pub const MAX_LIFETIME_SECS: u64 = 10 * 365 * 86_400;

/// The longest first retransmission timeout accepted (the back-off then
/// multiplies it, up to 4.0^20).
pub const MAX_RETRANSMIT_TIMEOUT_MS: u64 = 3_600_000;

/// Most TUN queues (and TX threads) `[daemon] tun_queues` takes.
pub const MAX_TUN_QUEUES: usize = 8;

/// Where manual SAs' sequence state lives unless `[daemon] state_dir` says.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ikeda/state";

#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub name: String,
    pub local_addr: IpAddr,
    pub remote_addr: IpAddr,
    pub encap: Encap,
    pub port: u16,
    pub esp: EspAlgorithm,
    pub esn: bool,
    pub replay_window: u32,
    /// Most ESP-in-UDP datagrams per `UDP_SEGMENT` train to the peer;
    /// `None`: as the peer announced (see the module's header).
    pub udp_train: Option<u8>,
    /// Selector pairs from this gateway's point of view, in order.
    pub selectors: Vec<Selector>,
    pub manual: Option<ManualKeys>,
    /// Set when the connection's SAs are negotiated with IKE.
    pub ike: Option<IkeConfig>,
    /// IKEv2: the CHILD SAs beyond the first (`[[conn.child]]`); the
    /// connection's own `selectors` are the first.
    pub children: Vec<ChildConfig>,
}

/// One more CHILD SA of an IKEv2 connection (`[[conn.child]]`), as
/// swanctl's `children` sections: its own selectors, data plane slot and
/// SAs; proposals, lifetimes and start action are the connection's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildConfig {
    pub name: String,
    /// Every `local_ts` x `remote_ts` pair of one family.
    pub selectors: Vec<Selector>,
}

/// What to do at start-up (RFC-neutral names, as swanctl's `start_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAction {
    /// Initiate when the daemon starts.
    Start,
    /// Initiate on the first packet a policy matches; hold that packet.
    Trap,
    /// Only respond.
    None,
}

/// What to do when dead peer detection declares the peer dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpdAction {
    Clear,
    Restart,
    None,
}

/// An IKE identity (RFC 7296 §3.5), as the config writes it: an address,
/// `@fqdn` or a bare host name (FQDN), `user@fqdn` (USER_FQDN), `keyid:...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Ipv4(std::net::Ipv4Addr),
    Ipv6(std::net::Ipv6Addr),
    Fqdn(String),
    UserFqdn(String),
    KeyId(Vec<u8>),
}

impl Identity {
    pub fn parse(s: &str) -> Result<Identity, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty identity".into());
        }
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(match a {
                IpAddr::V4(v) => Identity::Ipv4(v),
                IpAddr::V6(v) => Identity::Ipv6(v),
            });
        }
        if let Some(k) = s.strip_prefix("keyid:") {
            let bytes = match k.strip_prefix("0x") {
                Some(h) => SecretBytes::from_hex(h)
                    .map_err(|e| format!("keyid: {e}"))?
                    .expose()
                    .to_vec(),
                None => k.as_bytes().to_vec(),
            };
            return Ok(Identity::KeyId(bytes));
        }
        if let Some(f) = s.strip_prefix('@') {
            return Ok(Identity::Fqdn(f.to_string()));
        }
        if s.contains('@') {
            return Ok(Identity::UserFqdn(s.to_string()));
        }
        Ok(Identity::Fqdn(s.to_string()))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(n) => write!(f, "@{n}"),
            Identity::UserFqdn(n) => write!(f, "{n}"),
            Identity::KeyId(k) => write!(
                f,
                "keyid:0x{}",
                k.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        }
    }
}

/// The IKE side of a connection.
// Lifetimes, DPD and the proposal text are parsed and validated now; the
// engine acts on them in the rekey/DPD work that follows (see ike.rs).
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct IkeConfig {
    pub version: u8,
    /// IKE proposals as written (strongSwan syntax, comma-separated).
    pub proposals: String,
    pub ike_proposals: Vec<ikeda_crypto::ike::IkeProposal>,
    pub esp_proposals: Vec<ikeda_crypto::ike::ChildProposal>,
    pub local_id: Identity,
    pub remote_id: Identity,
    pub psk: SecretBytes,
    /// The PSK is written in the config file itself (not `psk_file`).
    pub psk_inline: bool,
    pub start_action: StartAction,
    /// IKE SA rekey and hard lifetime, seconds.
    pub ike_rekey_time: u64,
    pub ike_lifetime: u64,
    /// CHILD SA soft (rekey) and hard lifetimes, seconds and bytes (0 = none).
    pub rekey_time: u64,
    pub life_time: u64,
    pub rekey_bytes: u64,
    pub life_bytes: u64,
    /// CHILD SA soft and hard lifetimes in packets (0 = none; without ESN a
    /// soft limit of `ike::SEQ_SOFT_LIMIT` applies anyway).
    pub rekey_packets: u64,
    pub life_packets: u64,
    /// Liveness check interval, seconds (0 = off), and the action.
    pub dpd_delay: u64,
    pub dpd_action: DpdAction,
    /// Keep stateful firewalls' (and NATs') state for the IKE flow: at
    /// least one packet of ours on it per this many seconds (0 = off; see
    /// `ikeda_ike::Timers::keepalive`).
    pub keepalive: u64,
    /// IKEv1: Aggressive Mode instead of Main Mode (opt-in: it exposes a
    /// hash of the PSK to offline guessing).
    pub aggressive: bool,
    /// IKEv1: ask for IPComp (DEFLATE, RFC 3173) with ESP in Quick Mode.
    pub compress: bool,
    /// Broken algorithms (DES, MD5 as phase-1 hash, MODP 768) allowed.
    pub allow_insecure: bool,
    /// What the daemon warns about when it loads this connection.
    pub warnings: Vec<String>,
}

/// Parse a duration that may be in milliseconds (`500ms`) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    match s.trim().strip_suffix("ms") {
        Some(n) => n.trim().parse().ok(),
        None => parse_duration(s)?.checked_mul(1000),
    }
}

/// Parse `90`, `90s`, `30m`, `4h`, `1d` into seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86400),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

#[derive(Debug, Clone)]
pub struct ManualKeys {
    pub out: SaKeys,
    pub inbound: SaKeys,
    /// IPComp (DEFLATE) with this CPI pair; `None`: no compression.
    pub ipcomp: Option<ikeda_esp::IpcompParams>,
}

#[derive(Debug, Clone)]
pub struct SaKeys {
    pub spi: u32,
    pub enc_key: SecretBytes,
    pub auth_key: Option<SecretBytes>,
}

impl ConnConfig {
    /// The selectors of all its CHILD SAs: the connection's own, then each
    /// `[[conn.child]]`'s (routes and policies cover them all).
    pub fn all_selectors(&self) -> impl Iterator<Item = &Selector> {
        self.selectors
            .iter()
            .chain(self.children.iter().flat_map(|c| c.selectors.iter()))
    }

    /// Same settings, secrets included (their Debug output is redacted, so
    /// they are compared apart): a reload leaves such a connection alone.
    pub fn same_as(&self, o: &ConnConfig) -> bool {
        let keys = |m: &Option<ManualKeys>| {
            m.as_ref().map(|m| {
                [&m.out, &m.inbound]
                    .map(|k| (k.spi, k.enc_key.clone(), k.auth_key.clone()))
                    .to_vec()
            })
        };
        format!("{self:?}") == format!("{o:?}")
            && self.ike.as_ref().map(|i| i.psk.clone()) == o.ike.as_ref().map(|i| i.psk.clone())
            && keys(&self.manual) == keys(&o.manual)
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.into(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        let mut cfg = Config::parse(path, &text)?;
        if let Some(w) = open_key_file_warning(path, &cfg) {
            cfg.warnings.push(w);
        }
        Ok(cfg)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err = |key: String, reason: String| ConfigError {
            file: path.into(),
            key,
            reason,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (key, reason) = syntax_error(text, &e);
            err(key, reason)
        })?;
        let d = &raw.daemon;
        if d.tun.is_empty() || d.tun.len() > 15 || d.tun.contains(['/', ' ']) {
            return Err(err(
                "daemon.tun".into(),
                format!("'{}' is not a valid interface name (1-15 characters)", d.tun),
            ));
        }
        if !(576..=65535 - 100).contains(&d.mtu) {
            return Err(err("daemon.mtu".into(), format!("{} is outside 576..65435", d.mtu)));
        }
        if d.route_table == 0 || d.route_table >= 253 && d.route_table <= 255 {
            return Err(err(
                "daemon.route_table".into(),
                format!("{} is a reserved table", d.route_table),
            ));
        }
        let retransmit_ms = match &d.retransmit_timeout {
            None => 4000,
            Some(v) => parse_duration_ms(v)
                .filter(|ms| (100..=MAX_RETRANSMIT_TIMEOUT_MS).contains(ms))
                .ok_or_else(|| {
                    err(
                        "daemon.retransmit_timeout".into(),
                        format!("'{v}' is not a duration from 100ms to 1h"),
                    )
                })?,
        };
        let retransmit_base = d.retransmit_base.unwrap_or(1.8);
        if !(1.0..=4.0).contains(&retransmit_base) {
            return Err(err(
                "daemon.retransmit_base".into(),
                format!("{retransmit_base} is outside 1.0..4.0"),
            ));
        }
        let retransmit_tries = d.retransmit_tries.unwrap_or(5);
        if retransmit_tries > 20 {
            return Err(err(
                "daemon.retransmit_tries".into(),
                format!("{retransmit_tries} is more than 20"),
            ));
        }
        let tun_queues = d.tun_queues.unwrap_or(1);
        if !(1..=MAX_TUN_QUEUES).contains(&tun_queues) {
            return Err(err(
                "daemon.tun_queues".into(),
                format!("{tun_queues} is not a count of queues from 1 to {MAX_TUN_QUEUES}"),
            ));
        }
        let mut conns: Vec<ConnConfig> = Vec::new();
        for (i, c) in raw.conn.iter().enumerate() {
            let at = |k: &str| format!("conn[{i}] ({}).{k}", c.name);
            if conns.iter().any(|o| o.name == c.name) {
                return Err(err(at("name"), "duplicate connection name".into()));
            }
            let addr = |k: &str, v: &str| -> Result<IpAddr, ConfigError> {
                v.parse().map_err(|_| err(at(k), format!("'{v}' is not an IP address")))
            };
            let local_addr = addr("local_addr", &c.local_addr)?;
            let remote_addr = addr("remote_addr", &c.remote_addr)?;
            if local_addr.is_ipv4() != remote_addr.is_ipv4() {
                return Err(err(
                    at("remote_addr"),
                    "local_addr and remote_addr are of different address families".into(),
                ));
            }
            let encap = match c.encap.as_deref().unwrap_or("esp") {
                "esp" => Encap::Esp,
                "udp" => Encap::Udp,
                o => return Err(err(at("encap"), format!("'{o}' is neither \"esp\" nor \"udp\""))),
            };
            // Manual keying takes exactly one algorithm; IKE takes proposal
            // lists, checked against what the data plane implements.
            let esp = if c.manual.is_some() {
                EspAlgorithm::parse(&c.esp).map_err(|e| err(at("esp"), e))?
            } else {
                first_esp_algorithm(&c.esp).map_err(|e| err(at("esp"), e))?
            };
            if !(64..=ikeda_esp::replay::MAX_WINDOW).contains(&c.replay_window) {
                return Err(err(
                    at("replay_window"),
                    format!("{} is outside 64..{}", c.replay_window, ikeda_esp::replay::MAX_WINDOW),
                ));
            }
            if let Some(n) = c.udp_train.filter(|n| !(1..=MAX_SEGMENTS).contains(&usize::from(*n))) {
                return Err(err(at("udp_train"), format!("{n} is outside 1..{MAX_SEGMENTS}")));
            }
            let mut selectors = Vec::new();
            let range = |k: String, v: &str| AddrRange::parse(v).map_err(|e| err(k, e));
            for (li, l) in c.local_ts.iter().enumerate() {
                for (ri, r) in c.remote_ts.iter().enumerate() {
                    let l = range(at(&format!("local_ts[{li}]")), l)?;
                    let r = range(at(&format!("remote_ts[{ri}]")), r)?;
                    // Pairs are formed within an address family only.
                    if l.is_ipv4() != r.is_ipv4() {
                        continue;
                    }
                    selectors.push((format!("local_ts[{li}] x remote_ts[{ri}]"), Selector::new(l, r)));
                }
            }
            for (pi, p) in c.policy.iter().enumerate() {
                let k = |f: &str| at(&format!("policy[{pi}].{f}"));
                let mut s = Selector::new(range(k("local"), &p.local)?, range(k("remote"), &p.remote)?);
                if let Some(proto) = &p.proto {
                    if proto != "any" {
                        s.protocol = Some(
                            IpProtocol::from_name(proto)
                                .ok_or_else(|| err(k("proto"), format!("unknown protocol '{proto}'")))?,
                        );
                    }
                }
                let ports = |f: &str, v: &Option<String>| -> Result<(u16, u16), ConfigError> {
                    match v {
                        None => Ok((0, 65535)),
                        Some(v) => {
                            parse_ports(v).ok_or_else(|| err(k(f), format!("'{v}' is not a port or port range")))
                        }
                    }
                };
                s.local_ports = ports("local_port", &p.local_port)?;
                s.remote_ports = ports("remote_port", &p.remote_port)?;
                if (s.local_ports != (0, 65535) || s.remote_ports != (0, 65535))
                    && !s.protocol.is_some_and(|p| p.has_ports())
                {
                    return Err(err(
                        k("proto"),
                        "ports need proto = \"tcp\", \"udp\" or \"sctp\"".into(),
                    ));
                }
                selectors.push((format!("policy[{pi}]"), s));
            }
            if selectors.is_empty() {
                return Err(err(
                    at("local_ts"),
                    "no traffic selectors: give local_ts and remote_ts, or [[conn.policy]] entries".into(),
                ));
            }
            for (k, s) in &selectors {
                if s.local.is_ipv4() != s.remote.is_ipv4() {
                    return Err(err(at(k), format!("{s} mixes IPv4 and IPv6")));
                }
                // A selector that covers the gateways' own outer traffic
                // would route the ESP packets into the tunnel itself.
                if s.local.contains(local_addr) && s.remote.contains(remote_addr) {
                    return Err(err(
                        at(k),
                        format!("{s} covers the tunnel's own endpoints {local_addr} <-> {remote_addr}; ESP would loop into the tunnel"),
                    ));
                }
            }
            let manual = match &c.manual {
                None => None,
                Some(m) => {
                    let keys = |dir: &str, k: &RawSaKeys| -> Result<SaKeys, ConfigError> {
                        let kk = |f: &str| at(&format!("manual.{dir}.{f}"));
                        let spi = match &k.spi {
                            SpiValue::Num(n) => *n,
                            SpiValue::Str(s) => {
                                parse_u32(s).ok_or_else(|| err(kk("spi"), format!("'{s}' is not a number")))?
                            }
                        };
                        if !ikeda_wire::esp::spi_is_valid(spi) {
                            return Err(err(
                                kk("spi"),
                                format!("{spi:#x} is reserved (SPIs 0-255 are not used on the wire, RFC 4303 §2.1)"),
                            ));
                        }
                        let enc_key = SecretBytes::from_hex(&k.enc_key).map_err(|e| err(kk("enc_key"), e.into()))?;
                        if enc_key.len() != esp.enc_key_len() {
                            let salt = if esp.is_aead() {
                                format!(" ({}-byte key + 4-byte salt)", esp.enc_key_len() - 4)
                            } else {
                                String::new()
                            };
                            return Err(err(
                                kk("enc_key"),
                                format!("{esp} needs {} bytes{salt}, got {}", esp.enc_key_len(), enc_key.len()),
                            ));
                        }
                        let auth_key = match (&k.auth_key, esp.auth_key_len()) {
                            (None, 0) => None,
                            (Some(_), 0) => {
                                return Err(err(
                                    kk("auth_key"),
                                    format!("{esp} is an AEAD cipher and takes no auth_key"),
                                ))
                            }
                            (None, n) => return Err(err(kk("auth_key"), format!("{esp} needs a {n}-byte auth_key"))),
                            (Some(a), n) => {
                                let a = SecretBytes::from_hex(a).map_err(|e| err(kk("auth_key"), e.into()))?;
                                if a.len() != n {
                                    return Err(err(kk("auth_key"), format!("{esp} needs {n} bytes, got {}", a.len())));
                                }
                                Some(a)
                            }
                        };
                        Ok(SaKeys { spi, enc_key, auth_key })
                    };
                    let out = keys("out", &m.out)?;
                    let inbound = keys("in", &m.inbound)?;
                    let cpi = |dir: &str, v: &SpiValue| -> Result<u16, ConfigError> {
                        let k = at(&format!("manual.ipcomp.{dir}"));
                        let n = match v {
                            SpiValue::Num(n) => *n,
                            SpiValue::Str(s) => {
                                parse_u32(s).ok_or_else(|| err(k.clone(), format!("'{s}' is not a number")))?
                            }
                        };
                        u16::try_from(n)
                            .ok()
                            .filter(|c| ikeda_wire::ipcomp::cpi_is_negotiable(*c))
                            .ok_or_else(|| {
                                err(
                                    k,
                                    format!("CPI {n:#x} is outside 0x100..0xefff (256..61439), the CPIs RFC 3173 §3.3 leaves for negotiation"),
                                )
                            })
                    };
                    let ipcomp = match &m.ipcomp {
                        None => None,
                        Some(i) => Some(ikeda_esp::IpcompParams {
                            cpi_out: cpi("out", &i.out)?,
                            cpi_in: cpi("in", &i.inbound)?,
                        }),
                    };
                    Some(ManualKeys { out, inbound, ipcomp })
                }
            };
            let ike = parse_ike(c, local_addr, remote_addr, &at, path)?;
            let children = parse_children(c, ike.as_ref(), (local_addr, remote_addr), &at, path)?;
            match (&manual, &ike) {
                (None, None) => {
                    return Err(err(
                        at("psk"),
                        "no keys: give psk or psk_file (IKE), or [conn.manual] (manual keying)".into(),
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(err(
                        at("manual"),
                        "[conn.manual] and psk/psk_file exclude each other".into(),
                    ))
                }
                _ => {}
            }
            conns.push(ConnConfig {
                name: c.name.clone(),
                local_addr,
                remote_addr,
                encap,
                port: c.port,
                esp,
                esn: c.esn,
                replay_window: c.replay_window,
                udp_train: c.udp_train,
                selectors: selectors.into_iter().map(|(_, s)| s).collect(),
                manual,
                ike,
                children,
            });
        }
        // Inbound SPIs select the SA: they must be unique on this gateway.
        let mut spis: Vec<(u32, &str)> = Vec::new();
        for c in &conns {
            if let Some(m) = &c.manual {
                if let Some((_, other)) = spis.iter().find(|(s, _)| *s == m.inbound.spi) {
                    return Err(err(
                        format!("conn ({}).manual.in.spi", c.name),
                        format!("{:#x} is already used by connection '{other}'", m.inbound.spi),
                    ));
                }
                spis.push((m.inbound.spi, &c.name));
            }
        }
        if conns.is_empty() {
            return Err(err("conn".into(), "no connections defined".into()));
        }
        Ok(Config {
            file: path.into(),
            daemon: DaemonConfig {
                tun: d.tun.clone(),
                mtu: d.mtu,
                offload: d.offload,
                udp_offload: d.udp_offload,
                tun_queues,
                route_table: d.route_table,
                retransmit: (retransmit_ms, retransmit_base, retransmit_tries),
                control_socket: d
                    .control_socket
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET)),
                key_export: d.key_export.clone(),
                state_dir: d.state_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
                log: d.log.clone(),
            },
            warnings: ikev1_shared_pair_warnings(&conns),
            conns,
        })
    }
}

/// Two IKEv1 connections between the same two addresses. The first
/// message of a phase 1 carries no identity, so the responder takes a
/// connection by address (and mode); the initiator's identity (MM5, or AM1
/// in Aggressive Mode) then chooses among them. Said at load when that
/// cannot work: the same peer identity (nothing tells them apart; each
/// phase-1 SA serves its own connection's Quick Modes only), or Main Mode
/// with different PSKs (the PSK keys the exchange that carries the
/// identity, RFC 2409 §5.4: the responder has only the first one's).
fn ikev1_shared_pair_warnings(conns: &[ConnConfig]) -> Vec<String> {
    let v1 = |c: &&ConnConfig| c.ike.as_ref().is_some_and(|i| i.version == 1);
    let mut out = Vec::new();
    for (k, c) in conns.iter().enumerate().filter(|(_, c)| v1(c)) {
        let Some(ike) = &c.ike else { continue };
        for first in conns[..k]
            .iter()
            .filter(v1)
            .filter(|o| o.local_addr == c.local_addr && o.remote_addr == c.remote_addr)
        {
            let Some(first_ike) = &first.ike else { continue };
            let between = format!(
                "connections '{}' and '{}' both use IKEv1 between {} and {}",
                first.name, c.name, c.local_addr, c.remote_addr
            );
            if first_ike.remote_id == ike.remote_id {
                out.push(format!(
                    "{between} with the same remote_id: as responder only '{}' is used and the Quick Modes of \
                     '{}' are refused; give them different identities, or give '{}' all the selectors \
                     (local_ts/remote_ts)",
                    first.name, c.name, first.name
                ));
            } else if !first_ike.aggressive
                && !ike.aggressive
                && !ikeda_crypto::ct_eq(first_ike.psk.expose(), ike.psk.expose())
            {
                out.push(format!(
                    "{between} in Main Mode with different PSKs: Main Mode keys the exchange that carries the \
                     peer's identity with the PSK before it knows which connection the peer means, so as \
                     responder ikeda can only use '{}''s; give both the same PSK (strongSwan needs that too)",
                    first.name
                ));
            }
        }
    }
    out
}

/// The `[[conn.child]]` entries of a connection: IKEv2 only, each named
/// (uniquely, and not as a connection: `show` and logs tell them apart by
/// name), each with selectors of one family that do not cover the
/// tunnel's own endpoints.
fn parse_children(
    c: &RawConn,
    ike: Option<&IkeConfig>,
    (local_addr, remote_addr): (IpAddr, IpAddr),
    at: &dyn Fn(&str) -> String,
    path: &Path,
) -> Result<Vec<ChildConfig>, ConfigError> {
    let err = |key: String, reason: String| ConfigError {
        file: path.into(),
        key,
        reason,
    };
    if c.child.is_empty() {
        return Ok(Vec::new());
    }
    if ike.is_none_or(|i| i.version != 2) {
        return Err(err(
            at("child"),
            "[[conn.child]] is for IKEv2 connections; IKEv1 negotiates each [[conn.policy]] in its own Quick Mode"
                .into(),
        ));
    }
    let mut out: Vec<ChildConfig> = Vec::new();
    for (k, ch) in c.child.iter().enumerate() {
        let kk = |f: &str| at(&format!("child[{k}].{f}"));
        if ch.name.is_empty() || ch.name == c.name || out.iter().any(|o| o.name == ch.name) {
            return Err(err(
                kk("name"),
                format!("'{}' is empty, the connection's name or another child's", ch.name),
            ));
        }
        let mut selectors = Vec::new();
        for (li, l) in ch.local_ts.iter().enumerate() {
            for (ri, r) in ch.remote_ts.iter().enumerate() {
                let l = AddrRange::parse(l).map_err(|e| err(kk(&format!("local_ts[{li}]")), e))?;
                let r = AddrRange::parse(r).map_err(|e| err(kk(&format!("remote_ts[{ri}]")), e))?;
                if l.is_ipv4() != r.is_ipv4() {
                    continue;
                }
                let s = Selector::new(l, r);
                if s.local.contains(local_addr) && s.remote.contains(remote_addr) {
                    return Err(err(
                        kk("local_ts"),
                        format!("{s} covers the tunnel's own endpoints {local_addr} <-> {remote_addr}; ESP would loop into the tunnel"),
                    ));
                }
                selectors.push(s);
            }
        }
        if selectors.is_empty() {
            return Err(err(
                kk("local_ts"),
                "no traffic selectors: give local_ts and remote_ts of one address family".into(),
            ));
        }
        out.push(ChildConfig {
            name: ch.name.clone(),
            selectors,
        });
    }
    Ok(out)
}

/// Validate the IKE settings of a connection; `None` when it has no PSK
/// (manual keying).
fn parse_ike(
    c: &RawConn,
    local_addr: IpAddr,
    remote_addr: IpAddr,
    at: &dyn Fn(&str) -> String,
    path: &Path,
) -> Result<Option<IkeConfig>, ConfigError> {
    let err = |key: String, reason: String| ConfigError {
        file: path.into(),
        key,
        reason,
    };
    let ike_only = [
        ("version", c.version.is_some()),
        ("ike", c.ike.is_some()),
        ("local_id", c.local_id.is_some()),
        ("remote_id", c.remote_id.is_some()),
        ("start_action", c.start_action.is_some()),
        ("dpd_delay", c.dpd_delay.is_some()),
        ("keepalive", c.keepalive.is_some()),
    ];
    let psk = match (&c.psk, &c.psk_file) {
        (Some(_), Some(_)) => return Err(err(at("psk_file"), "give psk or psk_file, not both".into())),
        (Some(p), None) => SecretBytes::new(p.as_bytes().to_vec()),
        (None, Some(f)) => {
            let fp = Path::new(f);
            let meta = std::fs::metadata(fp).map_err(|e| err(at("psk_file"), format!("{f}: {e}")))?;
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(err(
                    at("psk_file"),
                    format!(
                        "{f} is readable by others (mode {:o}); chmod 600 it",
                        meta.permissions().mode() & 0o777
                    ),
                ));
            }
            let text = std::fs::read(fp).map_err(|e| err(at("psk_file"), format!("{f}: {e}")))?;
            let mut v = text;
            while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                v.pop();
            }
            SecretBytes::new(v)
        }
        (None, None) => {
            if let Some((k, _)) = ike_only.iter().find(|(_, set)| *set) {
                return Err(err(at(k), "IKE settings without psk or psk_file".into()));
            }
            return Ok(None);
        }
    };
    if psk.is_empty() {
        return Err(err(at("psk"), "the pre-shared key is empty".into()));
    }
    let version = c.version.unwrap_or(2);
    if version != 1 && version != 2 {
        return Err(err(
            at("version"),
            format!("IKE version {version} is not supported (1 or 2)"),
        ));
    }
    // `encap = "udp"` on an IKE connection forces UDP encapsulation
    // without a NAT (faked NAT detection, RFC 7296 §2.23); IKEv1's NAT-D
    // (RFC 3947) would need the same trick in Main Mode and a UDP-Encap
    // mode in Quick Mode that this build does not force, so say so.
    if version == 1 && c.encap.as_deref() == Some("udp") {
        return Err(err(
            at("encap"),
            "forcing UDP encapsulation is IKEv2 only; IKEv1 moves to UDP 4500 when it detects a NAT".into(),
        ));
    }
    if version == 2 {
        for (k, set) in [
            ("aggressive", c.aggressive.is_some()),
            ("compress", c.compress.is_some()),
        ] {
            if set {
                return Err(err(at(k), "only for IKEv1 connections (version = 1)".into()));
            }
        }
    }
    let id = |k: &str, v: &Option<String>, dflt: IpAddr| -> Result<Identity, ConfigError> {
        match v {
            Some(v) => Identity::parse(v).map_err(|e| err(at(k), e)),
            None => Identity::parse(&dflt.to_string()).map_err(|e| err(at(k), e)),
        }
    };
    let dur = |k: &str, v: &Option<String>, dflt: u64| -> Result<u64, ConfigError> {
        match v {
            None => Ok(dflt),
            Some(v) => {
                let secs = parse_duration(v)
                    .ok_or_else(|| err(at(k), format!("'{v}' is not a duration (90s, 30m, 4h, 1d)")))?;
                // Bounded so that the margins below and the engines'
                // milliseconds cannot overflow.
                if secs > MAX_LIFETIME_SECS {
                    return Err(err(
                        at(k),
                        format!("'{v}' is more than {} days", MAX_LIFETIME_SECS / 86_400),
                    ));
                }
                Ok(secs)
            }
        }
    };
    let start_action = match c.start_action.as_deref().unwrap_or("none") {
        "start" => StartAction::Start,
        "trap" => StartAction::Trap,
        "none" => StartAction::None,
        o => return Err(err(at("start_action"), format!("'{o}' is not start, trap or none"))),
    };
    let dpd_action = match c.dpd_action.as_deref().unwrap_or("clear") {
        "clear" => DpdAction::Clear,
        "restart" => DpdAction::Restart,
        "none" => DpdAction::None,
        o => return Err(err(at("dpd_action"), format!("'{o}' is not clear, restart or none"))),
    };
    // strongSwan's defaults: IKE rekey 4 h, CHILD rekey 1 h, hard lifetime
    // 110 %. A hard lifetime alone (racoon's `lifetime time 200 sec`) puts
    // the rekey at 90 % of it.
    let ike_rekey_time = match (&c.ike_rekey_time, &c.ike_lifetime) {
        (None, Some(l)) => dur("ike_lifetime", &Some(l.clone()), 0)? * 9 / 10,
        _ => dur("ike_rekey_time", &c.ike_rekey_time, 4 * 3600)?,
    };
    let rekey_time = match (&c.rekey_time, &c.life_time) {
        (None, Some(l)) => dur("life_time", &Some(l.clone()), 0)? * 9 / 10,
        _ => dur("rekey_time", &c.rekey_time, 3600)?,
    };
    let proposals = c.ike.clone().unwrap_or_else(|| {
        if version == 1 {
            "aes128-sha256-modp2048".into()
        } else {
            "aes128gcm16-prfsha256-x25519,aes128-sha256-modp2048".into()
        }
    });
    let ike_proposals =
        ikeda_crypto::ike::parse_ike_proposals(&proposals).map_err(|e| err(at("ike"), e.to_string()))?;
    let esp_proposals = ikeda_crypto::ike::parse_esp_proposals(&c.esp).map_err(|e| err(at("esp"), e.to_string()))?;
    let allow_insecure = c.allow_insecure.unwrap_or(false);
    let mut warnings = Vec::new();
    if version == 1 {
        // RFC 2409 phase 1 has block ciphers with a separate hash only.
        if let Some(p) = ike_proposals.iter().find(|p| p.encr.iter().any(|e| e.is_aead())) {
            return Err(err(
                at("ike"),
                format!(
                    "'{}': IKEv1 phase 1 has no AEAD ciphers (RFC 2409); write e.g. aes128-sha256-modp2048",
                    p.name()
                ),
            ));
        }
        if let Some(p) = esp_proposals
            .iter()
            .find(|p| p.encr.contains(&ikeda_crypto::ike::Encr::ChaCha20Poly1305))
        {
            return Err(err(
                at("esp"),
                format!("'{}': IKEv1 has no ChaCha20-Poly1305 transform for ESP", p.name()),
            ));
        }
        if c.aggressive == Some(true) {
            warnings.push(
                "Aggressive Mode: the identity goes out in the clear and anyone who sees the exchange can test                  PSK guesses offline against HASH_R"
                    .to_string(),
            );
        }
    }
    if let Some(p) = ike_proposals.iter().find(|p| p.is_insecure()) {
        if !allow_insecure {
            return Err(err(
                at("ike"),
                format!(
                    "'{}' uses a broken algorithm (DES, MD5 or MODP 768); set allow_insecure = true to use it                      anyway, while you migrate",
                    p.name()
                ),
            ));
        }
        warnings.push(format!(
            "'{}' uses a broken algorithm (DES, MD5 or MODP 768): allowed by allow_insecure = true",
            p.name()
        ));
    }
    let cfg = IkeConfig {
        version,
        proposals,
        ike_proposals,
        esp_proposals,
        local_id: id("local_id", &c.local_id, local_addr)?,
        remote_id: id("remote_id", &c.remote_id, remote_addr)?,
        psk,
        psk_inline: c.psk.is_some(),
        start_action,
        ike_rekey_time,
        ike_lifetime: dur("ike_lifetime", &c.ike_lifetime, ike_rekey_time + ike_rekey_time / 10)?,
        rekey_time,
        life_time: dur("life_time", &c.life_time, rekey_time + rekey_time / 10)?,
        rekey_bytes: c.rekey_bytes.unwrap_or(0),
        life_bytes: c.life_bytes.unwrap_or(0),
        rekey_packets: c.rekey_packets.unwrap_or(0),
        life_packets: c.life_packets.unwrap_or(0),
        dpd_delay: dur("dpd_delay", &c.dpd_delay, 0)?,
        dpd_action,
        keepalive: dur("keepalive", &c.keepalive, 0)?,
        aggressive: c.aggressive.unwrap_or(false),
        compress: c.compress.unwrap_or(false),
        allow_insecure,
        warnings,
    };
    if cfg.ike_lifetime < cfg.ike_rekey_time || cfg.life_time < cfg.rekey_time {
        return Err(err(
            at("life_time"),
            "a hard lifetime is shorter than its rekey time".into(),
        ));
    }
    if cfg.life_bytes != 0 && cfg.life_bytes < cfg.rekey_bytes {
        return Err(err(at("life_bytes"), "life_bytes is smaller than rekey_bytes".into()));
    }
    if cfg.life_packets != 0 && cfg.life_packets < cfg.rekey_packets {
        return Err(err(
            at("life_packets"),
            "life_packets is smaller than rekey_packets".into(),
        ));
    }
    Ok(Some(cfg))
}

/// Check an ESP proposal list for IKE: every algorithm it names must be one
/// the data plane implements. Returns the first proposal's first cipher.
fn first_esp_algorithm(list: &str) -> Result<EspAlgorithm, String> {
    use ikeda_crypto::ike::{parse_esp_proposals, ChildSuite};
    let props = parse_esp_proposals(list).map_err(|e| e.to_string())?;
    let mut first = None;
    for p in &props {
        let integs: Vec<Option<ikeda_crypto::ike::Integ>> = if p.integ.is_empty() {
            vec![None]
        } else {
            p.integ.iter().copied().map(Some).collect()
        };
        for encr in &p.encr {
            for integ in &integs {
                let suite = ChildSuite {
                    encr: *encr,
                    integ: *integ,
                    dh: None,
                    esn: false,
                };
                let alg = suite
                    .esp_algorithm_or_missing()
                    .map_err(|what| format!("proposal '{}': the ESP data plane has no {what}", p.name()))?;
                first.get_or_insert(alg);
            }
        }
    }
    first.ok_or_else(|| format!("no ESP algorithm in '{list}'"))
}

fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_ports(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// `ikeda run`'s command line: the config file and what overrides it.
#[derive(Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    pub stats_file: Option<PathBuf>,
    /// Control socket path (else the config's, else the default).
    pub control: Option<PathBuf>,
    /// Key export directory (else the config's `key_export`, else off).
    pub export_keys: Option<PathBuf>,
}

/// Load the config and apply the command line's overrides.
pub fn load(opts: &RunOptions) -> Result<Config, String> {
    let mut cfg = Config::load(&opts.config).map_err(|e| e.to_string())?;
    if let Some(c) = &opts.control {
        cfg.daemon.control_socket = c.clone();
    }
    if let Some(k) = &opts.export_keys {
        cfg.daemon.key_export = Some(k.clone());
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[daemon]
tun = "ikeda0"

[[conn]]
name = "site2"
local_addr = "192.168.50.11"
remote_addr = "192.168.50.12"
esp = "aes128gcm16"
local_ts = ["192.168.11.0/24"]
remote_ts = ["192.168.12.0/24"]

[[conn.policy]]
local = "192.168.50.11"
remote = "192.168.12.0/24"

[[conn.policy]]
local = "192.168.11.0/24"
remote = "192.168.50.12"

[[conn.policy]]
local = "192.168.11.0/24"
remote = "192.168.12.80"
proto = "tcp"
remote_port = "80"

[conn.manual]
out = { spi = "0x1001", enc_key = "0x000102030405060708090a0b0c0d0e0f10111213" }
in = { spi = 8193, enc_key = "0x101112131415161718191a1b1c1d1e1f20212223" }
"#;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("gw1.toml"), s)
    }

    #[test]
    fn seed_policy_set_parses() {
        let c = parse(GOOD).unwrap();
        let conn = &c.conns[0];
        assert_eq!(conn.selectors.len(), 4);
        assert_eq!(conn.selectors[1].to_string(), "192.168.50.11 === 192.168.12.0/24");
        assert_eq!(conn.selectors[2].to_string(), "192.168.11.0/24 === 192.168.50.12");
        assert_eq!(
            conn.selectors[3].to_string(),
            "192.168.11.0/24 === 192.168.12.80[80] tcp"
        );
        let m = conn.manual.as_ref().unwrap();
        assert_eq!((m.out.spi, m.inbound.spi), (0x1001, 0x2001));
        assert_eq!(c.daemon.mtu, 1400);
        assert_eq!(conn.replay_window, 1024);
        assert_eq!(conn.encap, Encap::Esp);
    }

    #[test]
    fn tun_offload_is_on_unless_switched_off() {
        assert!(parse(GOOD).unwrap().daemon.offload);
        let off = GOOD.replace("tun = \"ikeda0\"", "tun = \"ikeda0\"\noffload = false");
        assert!(!parse(&off).unwrap().daemon.offload);
        let bad = GOOD.replace("tun = \"ikeda0\"", "tun = \"ikeda0\"\noffload = \"yes\"");
        assert!(parse(&bad).is_err());
    }

    /// `udp_train`: unset by default (the peer's announcement decides),
    /// else 1..=64.
    #[test]
    fn udp_train_is_a_count_of_datagrams_from_1_to_64() {
        assert_eq!(parse(GOOD).unwrap().conns[0].udp_train, None);
        let with = |v: &str| {
            GOOD.replace(
                "esp = \"aes128gcm16\"\n",
                &format!("esp = \"aes128gcm16\"\nudp_train = {v}\n"),
            )
        };
        assert_eq!(parse(&with("64")).unwrap().conns[0].udp_train, Some(64));
        assert_eq!(parse(&with("1")).unwrap().conns[0].udp_train, Some(1));
        for (v, want) in [
            ("0", "udp_train: 0 is outside 1..64"),
            ("65", "udp_train: 65 is outside 1..64"),
            ("300", "udp_train"),
        ] {
            let e = parse(&with(v)).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: got {e}");
        }
    }

    #[test]
    fn tun_queues_are_a_count_from_1_to_8() {
        assert_eq!(parse(GOOD).unwrap().daemon.tun_queues, 1);
        let with = |q: &str| GOOD.replace("tun = \"ikeda0\"", &format!("tun = \"ikeda0\"\ntun_queues = {q}"));
        assert_eq!(parse(&with("3")).unwrap().daemon.tun_queues, 3);
        for bad in ["0", "9", "1000"] {
            let e = parse(&with(bad)).unwrap_err().to_string();
            assert!(
                e.contains("daemon.tun_queues") && e.contains("from 1 to 8"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn udp_offload_is_on_unless_turned_off() {
        assert!(parse(GOOD).unwrap().daemon.udp_offload);
        let off = GOOD.replace("tun = \"ikeda0\"", "tun = \"ikeda0\"\nudp_offload = false");
        assert!(!parse(&off).unwrap().daemon.udp_offload);
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "esp = \"aes128gcm16\"",
                "esp = \"des-md5\"",
                "gw1.toml: conn[0] (site2).esp: unknown ESP cipher 'des'",
            ),
            ("spi = \"0x1001\"", "spi = \"0x10\"", "manual.out.spi: 0x10 is reserved"),
            (
                "0x000102030405060708090a0b0c0d0e0f10111213",
                "0x0001",
                "manual.out.enc_key: aes128gcm16 needs 20 bytes (16-byte key + 4-byte salt), got 2",
            ),
            (
                "remote_ts = [\"192.168.12.0/24\"]",
                "remote_ts = [\"192.168.12.1/24\"]",
                "remote_ts[0]: '192.168.12.1/24' has host bits set",
            ),
            (
                "local = \"192.168.50.11\"",
                "local = \"192.168.50.11\"\nbogus = 1",
                "unknown field `bogus`",
            ),
            (
                "local = \"192.168.50.11\"\nremote = \"192.168.12.0/24\"",
                "local = \"192.168.50.11\"\nremote = \"192.168.50.0/24\"",
                "covers the tunnel's own endpoints",
            ),
            ("tun = \"ikeda0\"", "tun = \"this-name-is-far-too-long\"", "daemon.tun:"),
            ("proto = \"tcp\"", "proto = \"icmp\"", "ports need proto"),
        ];
        for (from, to, want) in cases {
            assert!(GOOD.contains(from), "{from}");
            let bad = GOOD.replacen(from, to, 1);
            let e = match parse(&bad) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("accepted: {to}"),
            };
            assert!(e.contains(want), "got: {e}\nwant: {want}");
        }
    }

    #[test]
    fn manual_ipcomp_takes_a_cpi_pair_in_the_negotiable_range() {
        assert!(parse(GOOD).unwrap().conns[0].manual.as_ref().unwrap().ipcomp.is_none());
        let with = |line: &str| format!("{GOOD}{line}\n");
        let c = parse(&with("ipcomp = { out = 0x1234, in = \"0x4321\" }")).unwrap();
        assert_eq!(
            c.conns[0].manual.as_ref().unwrap().ipcomp,
            Some(ikeda_esp::IpcompParams {
                cpi_out: 0x1234,
                cpi_in: 0x4321
            })
        );
        for (line, want) in [
            (
                "ipcomp = { out = 2, in = 0x4321 }",
                "conn[0] (site2).manual.ipcomp.out: CPI 0x2 is outside 0x100..0xefff",
            ),
            (
                "ipcomp = { out = 0x1234, in = 0xf000 }",
                "manual.ipcomp.in: CPI 0xf000 is outside",
            ),
            (
                "ipcomp = { out = 0x1234, in = 0x10000 }",
                "manual.ipcomp.in: CPI 0x10000 is outside",
            ),
            (
                "ipcomp = { out = \"x\", in = 300 }",
                "manual.ipcomp.out: 'x' is not a number",
            ),
            ("ipcomp = { out = 300 }", "missing field `in`"),
            ("ipcomp = { out = 300, in = 301, alg = \"lzs\" }", "unknown field `alg`"),
        ] {
            let e = parse(&with(line)).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: got {e}");
        }
        // A changed CPI is a changed connection (reload re-installs it).
        let a = parse(&with("ipcomp = { out = 0x1234, in = 0x4321 }")).unwrap();
        let b = parse(&with("ipcomp = { out = 0x1234, in = 0x4322 }")).unwrap();
        assert!(a.conns[0].same_as(&a.conns[0]) && !a.conns[0].same_as(&b.conns[0]));
    }

    #[test]
    fn cbc_needs_an_auth_key_and_aead_refuses_one() {
        let cbc = GOOD.replace("esp = \"aes128gcm16\"", "esp = \"aes128-sha1\"");
        let e = parse(&cbc).unwrap_err().to_string();
        assert!(e.contains("needs 16 bytes, got 20"), "{e}");
        let cbc = cbc
            .replace(
                "0x000102030405060708090a0b0c0d0e0f10111213\"",
                "0x000102030405060708090a0b0c0d0e0f\", auth_key = \"0x0001020304050607080910111213141516171819\"",
            )
            .replace(
                "0x101112131415161718191a1b1c1d1e1f20212223\"",
                "0x101112131415161718191a1b1c1d1e1f\"",
            );
        let e = parse(&cbc).unwrap_err().to_string();
        assert!(
            e.contains("manual.in.auth_key: aes128-sha1 needs a 20-byte auth_key"),
            "{e}"
        );
        let aead = GOOD.replace(
            "0x101112131415161718191a1b1c1d1e1f20212223\"",
            "0x101112131415161718191a1b1c1d1e1f20212223\", auth_key = \"0x00\"",
        );
        assert!(parse(&aead).unwrap_err().to_string().contains("takes no auth_key"));
    }

    #[test]
    fn duplicate_inbound_spi_across_connections() {
        let conn = GOOD.split_once("[[conn]]").unwrap().1;
        let two = format!(
            "[[conn]]{conn}\n[[conn]]{}",
            conn.replace("site2", "site3").replace("0x1001", "0x1002")
        );
        let e = parse(&two).unwrap_err().to_string();
        assert!(e.contains("0x2001 is already used by connection 'site2'"), "{e}");
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let c = parse(GOOD).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("0a0b0c"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    const IKE: &str = r#"
[[conn]]
name = "site2"
local_addr = "192.168.50.11"
remote_addr = "192.168.50.12"
ike = "aes128gcm16-prfsha256-x25519,aes128-sha256-modp2048"
esp = "aes128gcm16-x25519,aes128-sha1"
psk = "not very secret"
remote_id = "@gw2.example"
start_action = "trap"
rekey_time = "30m"
dpd_delay = "10s"
dpd_action = "restart"
local_ts = ["192.168.11.0/24"]
remote_ts = ["192.168.12.0/24"]
"#;

    /// Two IKEv1 connections between the same addresses: fine with their
    /// own identities and the same PSK (the peer's identity chooses, as in
    /// IKEv2); said at load with the same remote identity, or in Main Mode
    /// with different PSKs.
    #[test]
    fn a_second_ikev1_connection_between_the_same_gateways_needs_its_own_identity_and_the_same_psk() {
        let second = IKE.replace("site2", "site2b").replace("192.168.11.0/24", "192.168.21.0/24");
        let v2 = parse(&format!("{IKE}{second}")).unwrap();
        assert!(v2.warnings.is_empty(), "{:?}", v2.warnings);
        let v1 = |t: &str| {
            t.replacen("psk =", "version = 1\npsk =", 1)
                .replace("aes128gcm16-prfsha256-x25519,", "")
                .replace("aes128gcm16-x25519,", "")
        };
        let same_id = parse(&format!("{}{}", v1(IKE), v1(&second))).unwrap();
        assert_eq!(same_id.warnings.len(), 1, "{:?}", same_id.warnings);
        let w = &same_id.warnings[0];
        assert!(
            w.contains("'site2' and 'site2b'") && w.contains("same remote_id") && w.contains("only 'site2' is used"),
            "{w}"
        );
        let own_id = second.replace("@gw2.example", "@gw2b.example");
        let fine = parse(&format!("{}{}", v1(IKE), v1(&own_id))).unwrap();
        assert!(fine.warnings.is_empty(), "{:?}", fine.warnings);
        let other_psk = own_id.replace("not very secret", "another secret");
        let c = parse(&format!("{}{}", v1(IKE), v1(&other_psk))).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("different PSKs"), "{}", c.warnings[0]);
        // Aggressive Mode reads the identity before it needs the PSK.
        let aggressive = |t: &str| v1(t).replacen("version = 1", "version = 1\naggressive = true", 1);
        let am = parse(&format!("{}{}", aggressive(IKE), aggressive(&other_psk))).unwrap();
        assert!(am.warnings.is_empty(), "{:?}", am.warnings);
    }

    #[test]
    fn ike_connection_parses_with_defaults() {
        let c = parse(IKE).unwrap();
        let conn = &c.conns[0];
        let ike = conn.ike.as_ref().unwrap();
        assert_eq!(conn.esp, EspAlgorithm::AesGcm16 { key_bits: 128 });
        assert_eq!(ike.local_id, Identity::Ipv4("192.168.50.11".parse().unwrap()));
        assert_eq!(ike.remote_id, Identity::Fqdn("gw2.example".into()));
        assert_eq!(ike.start_action, StartAction::Trap);
        assert_eq!((ike.rekey_time, ike.life_time), (1800, 1980));
        assert_eq!((ike.ike_rekey_time, ike.ike_lifetime), (14400, 15840));
        assert_eq!((ike.dpd_delay, ike.dpd_action), (10, DpdAction::Restart));
        assert_eq!(ike.psk.expose(), b"not very secret");
        assert!(conn.manual.is_none());
        assert!(!format!("{c:?}").contains("very secret"));
    }

    #[test]
    fn esp_proposals_with_sha2_384_and_512_are_accepted_and_refusals_name_what_is_missing() {
        use ikeda_crypto::EspInteg;
        // strongSwan's default ESP proposal carries both RFC 4868 pairs.
        for (esp, integ) in [
            ("aes256-sha384", EspInteg::HmacSha384_192),
            ("aes256-sha512", EspInteg::HmacSha512_256),
            ("aes256-sha2_512,aes128-sha1", EspInteg::HmacSha512_256),
        ] {
            let c =
                parse(&IKE.replace("esp = \"aes128gcm16-x25519,aes128-sha1\"", &format!("esp = \"{esp}\""))).unwrap();
            assert_eq!(c.conns[0].esp, EspAlgorithm::AesCbc { key_bits: 256, integ }, "{esp}");
        }
        // Manual keys take them too, with 48- and 64-byte integrity keys.
        let hex = |n: usize, b: u8| format!("0x{}", format!("{b:02x}").repeat(n));
        for (esp, n) in [("aes256-sha384", 48), ("aes256-sha512", 64)] {
            let manual = |auth: usize| {
                GOOD.replace("esp = \"aes128gcm16\"", &format!("esp = \"{esp}\""))
                    .replace(
                        "enc_key = \"0x000102030405060708090a0b0c0d0e0f10111213\"",
                        &format!("enc_key = \"{}\", auth_key = \"{}\"", hex(32, 1), hex(auth, 2)),
                    )
                    .replace(
                        "enc_key = \"0x101112131415161718191a1b1c1d1e1f20212223\"",
                        &format!("enc_key = \"{}\", auth_key = \"{}\"", hex(32, 3), hex(auth, 4)),
                    )
            };
            let c = parse(&manual(n)).unwrap();
            let m = c.conns[0].manual.as_ref().unwrap();
            assert_eq!(m.out.auth_key.as_ref().map(|k| k.len()), Some(n), "{esp}");
            let e = parse(&manual(32)).unwrap_err().to_string();
            assert!(e.contains(&format!("auth_key: {esp} needs {n} bytes, got 32")), "{e}");
        }
        // DES is the one cipher IKE knows (IKEv1 phase 1) and ESP does not:
        // the refusal names it, not the integrity algorithm next to it.
        let e = parse(&IKE.replace(
            "esp = \"aes128gcm16-x25519,aes128-sha1\"",
            "esp = \"aes256-sha384,des-sha512\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.ends_with("esp: proposal 'des-sha512': the ESP data plane has no cipher des"),
            "{e}"
        );
        assert!(!e.contains("aes256"), "{e}");
    }

    #[test]
    fn identities() {
        assert_eq!(
            Identity::parse("user@example.org").unwrap(),
            Identity::UserFqdn("user@example.org".into())
        );
        assert_eq!(
            Identity::parse("gw.example").unwrap(),
            Identity::Fqdn("gw.example".into())
        );
        assert_eq!(Identity::parse("keyid:0x0102").unwrap(), Identity::KeyId(vec![1, 2]));
        assert_eq!(Identity::parse("2001:db8::1").unwrap().to_string(), "2001:db8::1");
        assert_eq!(parse_duration("4h"), Some(14400));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("x"), None);
    }

    /// Issue 10 point 8: absurd lifetimes and retransmit timeouts are
    /// refused by name; before, `life_time` alone overflowed in `* 9 / 10`
    /// and `rekey_time` in `+ rekey_time / 10` (a panic in debug builds, a
    /// wrapped lifetime in release ones).
    #[test]
    fn absurd_lifetimes_and_timeouts_are_refused_by_name() {
        let max = u64::MAX.to_string();
        let cases = [
            ("rekey_time = \"30m\"", format!("life_time = \"{max}\""), "life_time: "),
            (
                "rekey_time = \"30m\"",
                format!("rekey_time = \"{max}\""),
                "rekey_time: ",
            ),
            (
                "rekey_time = \"30m\"",
                format!("rekey_time = \"30m\"\nike_lifetime = \"{max}\""),
                "ike_lifetime: ",
            ),
            (
                "rekey_time = \"30m\"",
                format!("rekey_time = \"30m\"\nike_rekey_time = \"{max}\""),
                "ike_rekey_time: ",
            ),
        ];
        for (from, to, want) in cases {
            let bad = IKE.replacen(from, &to, 1);
            let e = parse(&bad).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("more than"), "got: {e}\nwant: {want}");
        }
        let bad = format!("[daemon]\nretransmit_timeout = \"{}\"\n{}", u64::MAX / 1000, IKE);
        let e = parse(&bad).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("daemon.retransmit_timeout"), "{e}");
    }

    /// `[[conn.child]]`: more CHILD SAs of an IKEv2 connection, each with
    /// its own slot and selectors in the engine's order; refused for
    /// IKEv1, without a name of its own, or over the tunnel's endpoints.
    #[test]
    fn conn_children_parse_into_specs_and_slots() {
        let children = "\n[[conn.child]]\nname = \"b\"\nlocal_ts = [\"10.1.0.0/24\"]\nremote_ts = [\"10.2.0.0/24\", \"10.3.0.0/24\"]\n\n[[conn.child]]\nname = \"c\"\nlocal_ts = [\"10.4.0.0/24\"]\nremote_ts = [\"10.5.0.0/24\"]\n";
        let cfg = parse(&format!("{IKE}{children}")).unwrap();
        let c = &cfg.conns[0];
        assert_eq!(c.children.len(), 2);
        assert_eq!(c.children[0].selectors.len(), 2);
        assert_eq!(c.all_selectors().count(), 4);
        let spec = crate::plan::conn_spec(c).unwrap();
        assert_eq!(spec.child_count(), 3);
        assert_eq!(spec.child_name(2), "c");
        assert_eq!(spec.children[0].remote_ts.len(), 2);
        let slots = crate::plan::conn_slots(c, &spec, 7);
        let got: Vec<(usize, usize, usize)> = slots.iter().map(|s| (s.pair, s.slot, s.configured.len())).collect();
        assert_eq!(got, [(0, 7, 1), (1, 8, 2), (2, 9, 1)]);
        let v1 = IKE
            .replacen("psk =", "version = 1\npsk =", 1)
            .replacen("aes128gcm16-prfsha256-x25519,", "", 1)
            .replacen("aes128gcm16-x25519,", "", 1);
        assert!(parse(&v1).is_ok(), "the IKEv1 connection alone parses");
        let v1 = format!("{v1}{children}");
        let e = parse(&v1).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("child") && e.contains("IKEv2"), "{e}");
        let dup = format!("{IKE}{}", children.replace("name = \"c\"", "name = \"b\""));
        let e = parse(&dup).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("child[1].name"), "{e}");
        let own = format!(
            "{IKE}{}",
            children
                .replace("10.4.0.0/24", "192.168.50.11")
                .replace("10.5.0.0/24", "192.168.50.12")
        );
        let e = parse(&own).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("child[1].local_ts") && e.contains("loop"), "{e}");
    }

    /// Packet lifetimes read as strongSwan's; a hard one below the soft
    /// one is refused by name.
    #[test]
    fn packet_lifetimes_are_read_and_checked() {
        let ok = IKE.replacen(
            "rekey_time = \"30m\"",
            "rekey_time = \"30m\"\nrekey_packets = 1000\nlife_packets = 2000",
            1,
        );
        let cfg = parse(&ok).unwrap();
        let ike = cfg.conns[0].ike.as_ref().unwrap();
        assert_eq!((ike.rekey_packets, ike.life_packets), (1000, 2000));
        let bad = IKE.replacen(
            "rekey_time = \"30m\"",
            "rekey_time = \"30m\"\nrekey_packets = 1000\nlife_packets = 999",
            1,
        );
        let e = parse(&bad).map(|_| ()).unwrap_err().to_string();
        assert!(
            e.contains("life_packets") && e.contains("smaller than rekey_packets"),
            "{e}"
        );
    }

    /// Issue 10 point 7: a broken line holding a key is reported by line,
    /// column and key name, never with the key's bytes.
    #[test]
    fn syntax_errors_never_echo_a_secret() {
        let secret = "Sup3rSecretPsk";
        for (from, to) in [
            ("psk = \"not very secret\"", format!("psk = \"{secret}")),
            ("psk = \"not very secret\"", format!("psk = {secret}")),
            ("psk = \"not very secret\"", format!("psk = \"{secret}\" x")),
            ("psk = \"not very secret\"", format!("psk = [\"{secret}\"]")),
            ("psk = \"not very secret\"", format!("psk = \"\"\"{secret}")),
            ("psk = \"not very secret\"", format!("psk = {{ x = \"{secret}\" }}")),
        ] {
            let bad = IKE.replacen(from, &to, 1);
            let e = parse(&bad).map(|_| ()).unwrap_err().to_string();
            assert!(!e.contains("Sup3r"), "the secret in: {e}");
            assert!(e.contains("line ") && e.contains("column "), "{e}");
        }
        let bad = GOOD.replacen("enc_key = \"0x", "enc_key = 0x\"", 1);
        let e = parse(&bad).map(|_| ()).unwrap_err().to_string();
        assert!(!e.contains("000102030405"), "the key in: {e}");
        // A key written as a number: serde quotes the value in backticks.
        let bad = GOOD.replacen(
            "enc_key = \"0x000102030405060708090a0b0c0d0e0f10111213\"",
            "enc_key = 987654321987",
            1,
        );
        let e = parse(&bad).map(|_| ()).unwrap_err().to_string();
        assert!(
            !e.contains("987654321987") && e.contains("out: line"),
            "the key in: {e}"
        );
    }

    #[test]
    fn ike_encap_udp_forces_udp_encapsulation_ikev2_only() {
        // Default: IKE decides (raw ESP unless a NAT is detected).
        let c = parse(IKE).unwrap();
        assert_eq!(c.conns[0].encap, Encap::Esp);
        assert!(!crate::plan::conn_spec(&c.conns[0]).unwrap().force_encap);
        // encap = "udp": the engine fakes NAT detection (RFC 7296 §2.23).
        let c = parse(&IKE.replacen("psk =", "encap = \"udp\"\npsk =", 1)).unwrap();
        assert_eq!(c.conns[0].encap, Encap::Udp);
        assert!(crate::plan::conn_spec(&c.conns[0]).unwrap().force_encap);
        let c = parse(&IKE.replacen("psk =", "encap = \"esp\"\npsk =", 1)).unwrap();
        assert!(!crate::plan::conn_spec(&c.conns[0]).unwrap().force_encap);
        // IKEv1 does not force it: refused, not ignored.
        let e = parse(&IKE.replacen("psk =", "version = 1\nencap = \"udp\"\npsk =", 1))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("encap: forcing UDP encapsulation is IKEv2 only"), "{e}");
    }

    #[test]
    fn ike_errors_name_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "start_action = \"trap\"",
                "start_action = \"later\"",
                "start_action: 'later' is not start, trap or none",
            ),
            (
                "rekey_time = \"30m\"",
                "rekey_time = \"soon\"",
                "rekey_time: 'soon' is not a duration",
            ),
            (
                "psk = \"not very secret\"",
                "psk = \"\"",
                "psk: the pre-shared key is empty",
            ),
            (
                "psk = \"not very secret\"",
                "version = 3\npsk = \"x\"",
                "version: IKE version 3 is not supported",
            ),
            (
                "psk = \"not very secret\"",
                "",
                "ike: IKE settings without psk or psk_file",
            ),
            (
                "psk = \"not very secret\"",
                "psk_file = \"/nonexistent/psk\"",
                "psk_file: /nonexistent/psk:",
            ),
        ];
        for (from, to, want) in cases {
            let bad = IKE.replacen(from, to, 1);
            let e = parse(&bad).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(want), "got: {e}\nwant: {want}");
        }
        let nokeys = GOOD.split("[conn.manual]").next().unwrap();
        assert!(parse(nokeys)
            .unwrap_err()
            .to_string()
            .contains("psk: no keys: give psk or psk_file"));
        // IKE settings on a manually keyed connection are refused too.
        let m = GOOD.replace(
            "esp = \"aes128gcm16\"",
            "esp = \"aes128gcm16\"\nstart_action = \"start\"",
        );
        assert!(parse(&m)
            .unwrap_err()
            .to_string()
            .contains("start_action: IKE settings without psk"));
    }

    #[test]
    fn psk_file_must_not_be_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let f = std::env::temp_dir().join(format!("ikeda-psk-{}", std::process::id()));
        std::fs::write(&f, "from a file\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = IKE.replace("psk = \"not very secret\"", &format!("psk_file = \"{}\"", f.display()));
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("is readable by others (mode 644); chmod 600 it"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = parse(&text).unwrap();
        assert_eq!(c.conns[0].ike.as_ref().unwrap().psk.expose(), b"from a file");
        std::fs::remove_file(&f).unwrap();
    }

    /// The racoon site of the README, as ikeda writes it: Main Mode,
    /// phase 1 3des/sha1/modp1024 with a PSK, DPD every 5 s; phase 2 3des +
    /// hmac_md5 with deflate, lifetime 200 s, for 192.168.11.0/24 <->
    /// 192.168.12.0/24 and 192.168.50.11 <-> 192.168.12.0/24.
    pub const RACOON_SITE: &str = r#"
[[conn]]
name = "site2"
version = 1
local_addr = "192.168.50.11"
remote_addr = "192.168.50.12"
ike = "3des-sha1-modp1024"        # racoon: encryption_algorithm 3des; hash_algorithm sha1; dh_group modp1024
psk = "secret-from-psk.txt"       # racoon: authentication_method pre_shared_key
dpd_delay = "5s"                  # racoon: dpd_delay 5
esp = "3des-md5"                  # racoon: encryption_algorithm 3des; authentication_algorithm hmac_md5
compress = true                   # racoon: compression_algorithm deflate
life_time = "200s"                # racoon: lifetime time 200 sec
start_action = "start"
local_ts = ["192.168.11.0/24"]
remote_ts = ["192.168.12.0/24"]

[[conn.policy]]
local = "192.168.50.11"
remote = "192.168.12.0/24"

[[conn.policy]]
local = "192.168.11.0/24"
remote = "192.168.50.12"
"#;

    #[test]
    fn the_racoon_site_is_expressible() {
        let c = parse(RACOON_SITE).unwrap();
        let conn = &c.conns[0];
        let ike = conn.ike.as_ref().unwrap();
        assert_eq!(ike.version, 1);
        assert!(!ike.aggressive && ike.compress && !ike.allow_insecure);
        assert_eq!(ike.dpd_delay, 5);
        assert_eq!(
            (ike.life_time, ike.rekey_time),
            (200, 180),
            "rekey at 90 % of a lone lifetime"
        );
        assert_eq!(ike.ike_proposals[0].name(), "3des-sha1-prfsha1-modp1024");
        assert_eq!(ike.esp_proposals[0].name(), "3des-md5");
        assert_eq!(conn.selectors.len(), 3);
        let spec = crate::plan::conn_spec(conn).unwrap();
        // One Quick Mode per configured pair and no more: the cross product
        // of the local and remote ranges would add 50.11 <-> 50.12.
        let pairs: Vec<String> = ikeda_ike::ikev1::pairs(&spec)
            .iter()
            .map(|(l, r)| {
                format!(
                    "{}-{} {}-{}",
                    l.start_address, l.end_address, r.start_address, r.end_address
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                "192.168.11.0-192.168.11.255 192.168.12.0-192.168.12.255",
                "192.168.50.11-192.168.50.11 192.168.12.0-192.168.12.255",
                "192.168.11.0-192.168.11.255 192.168.50.12-192.168.50.12",
            ],
            "three Quick Modes"
        );
        // MD5 as the phase-1 hash, DES or MODP 768 need allow_insecure.
        let weak = RACOON_SITE.replace("3des-sha1-modp1024", "des-md5-modp768");
        let e = parse(&weak).unwrap_err();
        assert!(e.to_string().contains("allow_insecure = true"), "{e}");
        let c = parse(&weak.replace("version = 1", "version = 1\nallow_insecure = true")).unwrap();
        assert!(c.conns[0].ike.as_ref().unwrap().warnings[0].contains("broken algorithm"));
        // IKEv1 phase 1 has no AEAD; compress and aggressive are IKEv1's.
        let e = parse(&RACOON_SITE.replace("3des-sha1-modp1024", "aes128gcm16-prfsha256-modp2048")).unwrap_err();
        assert!(e.to_string().contains("no AEAD"), "{e}");
        let e = parse(&RACOON_SITE.replace("version = 1", "version = 2")).unwrap_err();
        assert!(e.to_string().contains("only for IKEv1"), "{e}");
        let c = parse(&RACOON_SITE.replace("version = 1", "version = 1\naggressive = true")).unwrap();
        assert!(c.conns[0].ike.as_ref().unwrap().warnings[0].contains("offline"));
    }
}
