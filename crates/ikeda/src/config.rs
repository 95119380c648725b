//! The gateway configuration file (TOML).
//!
//! ```toml
//! [daemon]
//! tun = "ikeda0"         # TUN device the data plane reads and writes
//! mtu = 1400             # inner MTU of the TUN device
//! route_table = 220      # routing table for the remote selectors
//!
//! [[conn]]
//! name = "site2"
//! local_addr = "192.168.50.11"
//! remote_addr = "192.168.50.12"
//! encap = "esp"          # "esp" = IP protocol 50, "udp" = RFC 3948 on port 4500
//! esp = "aes128gcm16"    # one ESP proposal, written as strongSwan writes it
//! esn = false
//! replay_window = 1024
//! local_ts = ["192.168.11.0/24"]     # every local_ts x remote_ts pair is a policy
//! remote_ts = ["192.168.12.0/24"]
//!
//! [[conn.policy]]        # extra selector pairs (gateway <-> net and so on)
//! local = "192.168.50.11"
//! remote = "192.168.12.0/24"
//! proto = "icmp"         # optional; ports likewise: local_port / remote_port = "80" or "1024-65535"
//!
//! [conn.manual]          # manual keying, as `setkey add` did
//! out = { spi = "0x1001", enc_key = "0x...", auth_key = "0x..." }
//! in  = { spi = "0x2001", enc_key = "0x..." }
//! ```
//!
//! A bad file is refused with the file, the key and the reason, before
//! anything is started.

use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_esp::{AddrRange, Encap, Selector};
use ikeda_wire::iana::IpProtocol;
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
    #[serde(default = "default_table")]
    route_table: u32,
}

impl Default for RawDaemon {
    fn default() -> Self {
        RawDaemon {
            tun: default_tun(),
            mtu: default_mtu(),
            route_table: default_table(),
        }
    }
}

fn default_tun() -> String {
    "ikeda0".into()
}
fn default_mtu() -> u32 {
    1400
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
    local_ts: Vec<String>,
    #[serde(default)]
    remote_ts: Vec<String>,
    #[serde(default)]
    policy: Vec<RawPolicy>,
    manual: Option<RawManual>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManual {
    out: RawSaKeys,
    #[serde(rename = "in")]
    inbound: RawSaKeys,
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
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub tun: String,
    pub mtu: u32,
    pub route_table: u32,
}

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
    /// Selector pairs from this gateway's point of view, in order.
    pub selectors: Vec<Selector>,
    pub manual: Option<ManualKeys>,
}

#[derive(Debug, Clone)]
pub struct ManualKeys {
    pub out: SaKeys,
    pub inbound: SaKeys,
}

#[derive(Debug, Clone)]
pub struct SaKeys {
    pub spi: u32,
    pub enc_key: SecretBytes,
    pub auth_key: Option<SecretBytes>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.into(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err = |key: String, reason: String| ConfigError {
            file: path.into(),
            key,
            reason,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            // toml's message names the key and the line; keep it whole.
            err(String::new(), e.to_string().trim_end().replace('\n', " | "))
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
            let esp = EspAlgorithm::parse(&c.esp).map_err(|e| err(at("esp"), e))?;
            if !(64..=ikeda_esp::replay::MAX_WINDOW).contains(&c.replay_window) {
                return Err(err(
                    at("replay_window"),
                    format!("{} is outside 64..{}", c.replay_window, ikeda_esp::replay::MAX_WINDOW),
                ));
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
                None => {
                    return Err(err(
                        at("manual"),
                        "no keys: this version supports manual keying only ([conn.manual])".into(),
                    ))
                }
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
                    Some(ManualKeys { out, inbound })
                }
            };
            conns.push(ConnConfig {
                name: c.name.clone(),
                local_addr,
                remote_addr,
                encap,
                port: c.port,
                esp,
                esn: c.esn,
                replay_window: c.replay_window,
                selectors: selectors.into_iter().map(|(_, s)| s).collect(),
                manual,
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
                route_table: d.route_table,
            },
            conns,
        })
    }
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
}
