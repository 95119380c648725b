//! What `ikeda status` and `ikeda show ike|child|policy` report: the JSON
//! shapes the control socket returns (`--json` prints them as they come),
//! the names algorithms get (strongSwan's, as in `swanctl --list-sas`), and
//! the human tables.

use ikeda_crypto::ike::{ChildSuite, DhGroup, Encr, IkeSuite, Integ};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Where a connection stands, as `status` says it (lowercase on the wire).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConnState {
    /// A CHILD SA carried traffic both ways (or is less than a minute old).
    Up,
    /// An exchange is under way (which one, which try: the detail).
    Connecting,
    /// It sends but receives nothing, or the reverse.
    Stalled,
    /// Installed, but no traffic either way since.
    Idle,
    /// For traffic (trap) or for the peer to initiate.
    Waiting,
    /// Not connected, or an IKE SA without a CHILD SA.
    #[default]
    Down,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Up => "up",
            ConnState::Connecting => "connecting",
            ConnState::Stalled => "stalled",
            ConnState::Idle => "idle",
            ConnState::Waiting => "waiting",
            ConnState::Down => "down",
        }
    }
}

/// One line of `ikeda status`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ConnStatus {
    pub name: String,
    /// "IKEv2" or "manual".
    pub version: String,
    pub state: ConnState,
    /// What the state means here, in plain words.
    pub detail: String,
    /// The last negotiation failure, in plain words, if any.
    pub last_failure: Option<String>,
    pub last_failure_s_ago: Option<u64>,
    /// Where to look first for its cause: "configuration" (the two
    /// gateways' configurations disagree), "peer", "path" (nothing came
    /// back), "local".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_fault: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Dpd {
    /// 0: off.
    /// The peer does liveness checks (IKEv1: it announced RFC 3706 DPD).
    #[serde(default = "yes")]
    pub supported: bool,
    pub delay_s: u64,
    pub last_heard_s_ago: u64,
    /// A liveness check is out and unanswered.
    pub checking: bool,
}

/// One IKE SA, as `show ike` prints it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct IkeSaOut {
    pub conn: String,
    pub version: u8,
    /// IKEv1: where phase 1 and phase 2 stand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub local: String,
    pub remote: String,
    /// 16 hex digits each.
    pub spi_i: String,
    pub spi_r: String,
    /// initiator or responder.
    pub role: String,
    /// CONNECTING, ESTABLISHED, REKEYED, DELETING.
    pub state: String,
    /// strongSwan notation, e.g. AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519.
    pub algorithms: Option<String>,
    pub established_s_ago: Option<u64>,
    pub rekey_in_s: Option<u64>,
    pub expires_in_s: Option<u64>,
    pub nat_detected: bool,
    pub behind_nat: bool,
    /// The exchange waiting for an answer, and "send n of tries".
    pub pending: Option<String>,
    pub dpd: Dpd,
    /// Inbound SPIs of its CHILD SAs.
    pub children: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Direction {
    pub spi: String,
    pub bytes: u64,
    pub packets: u64,
    /// None: no packet yet.
    pub last_packet_s_ago: Option<u64>,
    /// Highest sequence number sent (out) or accepted (in).
    pub seq: u64,
    pub drops: BTreeMap<String, u64>,
    /// Only on SAs with IPComp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipcomp: Option<IpcompOut>,
    /// Only outbound in UDP: most datagrams per `UDP_SEGMENT` train (64 to
    /// a peer that said it takes them, else 16, or the `udp_train` set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_train: Option<u8>,
}

/// IPComp (RFC 3173, DEFLATE) on one direction of an SA.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct IpcompOut {
    /// The CPI in the IPComp headers (out: ours to the peer, in: the
    /// peer's to us), hex.
    pub cpi: String,
    /// Outbound: packets sent compressed. Inbound: packets decompressed
    /// (and accepted).
    pub compressed: u64,
    /// Outbound: sent uncompressed, shorter than the threshold (90 bytes).
    pub too_small: u64,
    /// Outbound: sent uncompressed, DEFLATE did not make them smaller.
    pub not_smaller: u64,
    /// Inbound: arrived (and accepted) without IPComp header.
    pub uncompressed: u64,
    /// The compressed packets' size as IP packets...
    pub bytes_uncompressed: u64,
    /// ... and as IPComp payloads in ESP (IPComp header included).
    pub bytes_compressed: u64,
}

/// One CHILD SA (both directions), as `show child` prints it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ChildSaOut {
    pub conn: String,
    /// IKEv2: the `[[conn.child]]` this SA serves; absent for the
    /// connection's own (first) CHILD SA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
    /// INSTALLED, REKEYED (waiting for its DELETE), INSTALLED-INBOUND
    /// (a rekey's responder, not sending on it yet); manual SAs: MANUAL.
    pub state: String,
    pub mode: String,
    /// esp (IP protocol 50) or udp (RFC 3948, port 4500).
    pub encap: String,
    /// strongSwan notation, e.g. AES_GCM_16-128 or AES_CBC-128/HMAC_SHA2_256_128;
    /// with the PFS group when the SA was keyed with one
    /// (AES_GCM_16-128/CURVE_25519), as `swanctl --list-sas` prints it.
    pub algorithms: String,
    /// The key exchange group of the exchange that created this SA (PFS:
    /// a CREATE_CHILD_SA with KE, RFC 7296 §1.3; IKEv1 Quick Mode with KE);
    /// null for the CHILD SA of IKE_AUTH, which has none (§1.2).
    #[serde(default)]
    pub pfs_group: Option<String>,
    pub esn: bool,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    pub inbound: Direction,
    pub outbound: Direction,
    pub replay_window: u32,
    pub installed_s_ago: Option<u64>,
    pub rekey_in_s: Option<u64>,
    pub expires_in_s: Option<u64>,
}

/// One engine counter, as `show counters` prints it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct CounterOut {
    /// IKE version of the engine that counts it.
    pub version: u8,
    pub name: String,
    pub value: u64,
    pub meaning: String,
}

/// The engine's counters, as `show counters`, the stats file and `--json`
/// give them.
pub fn counters(engine: &ikeda_ike::Engine) -> Vec<CounterOut> {
    engine
        .counters()
        .into_iter()
        .map(|c| CounterOut {
            version: c.version,
            name: c.name.into(),
            value: c.value,
            meaning: c.meaning.into(),
        })
        .collect()
}

/// One SPD entry, as `show policy` prints it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct PolicyOut {
    pub index: usize,
    pub conn: String,
    pub local: String,
    pub remote: String,
    pub protocol: Option<String>,
    /// protect or discard.
    pub action: String,
    /// The outbound SPI serving it, if an SA is installed.
    pub sa: Option<String>,
    /// installed, trap (held until negotiated), no-sa.
    pub state: String,
    pub hits: u64,
}

// ---- algorithm names (strongSwan's, as `swanctl --list-sas` prints) --------

pub fn encr_name(e: Encr) -> String {
    match e {
        Encr::AesCbc { key_bits } => format!("AES_CBC-{key_bits}"),
        Encr::AesGcm16 { key_bits } => format!("AES_GCM_16-{key_bits}"),
        Encr::ChaCha20Poly1305 => "CHACHA20_POLY1305".into(),
        Encr::TripleDesCbc => "3DES_CBC".into(),
        Encr::DesCbc => "DES_CBC".into(),
    }
}

pub fn integ_name(i: Integ) -> &'static str {
    match i {
        Integ::HmacMd5_96 => "HMAC_MD5_96",
        Integ::HmacSha1_96 => "HMAC_SHA1_96",
        Integ::HmacSha256_128 => "HMAC_SHA2_256_128",
        Integ::HmacSha384_192 => "HMAC_SHA2_384_192",
        Integ::HmacSha512_256 => "HMAC_SHA2_512_256",
    }
}

pub fn dh_name(d: DhGroup) -> &'static str {
    d.name()
}

pub fn ike_suite_name(s: &IkeSuite) -> String {
    let mut v = vec![encr_name(s.encr)];
    if let Some(i) = s.integ {
        v.push(integ_name(i).into());
    }
    v.push(s.prf.name().into());
    v.push(dh_name(s.dh).into());
    v.join("/")
}

/// A CHILD SA's algorithms as `swanctl --list-sas` prints them after
/// `ESP:`, e.g. `AES_CBC-128/HMAC_SHA1_96/ECP_256/ESN`, `3DES_CBC/HMAC_MD5_96`.
pub fn child_suite_name(s: &ChildSuite) -> String {
    let mut v = match s.esp_algorithm() {
        Some(a) => vec![a.strongswan_name()],
        None => {
            let mut v = vec![encr_name(s.encr)];
            v.extend(s.integ.map(|i| integ_name(i).to_string()));
            v
        }
    };
    if let Some(d) = s.dh {
        v.push(dh_name(d).into());
    }
    if s.esn {
        v.push("ESN".into());
    }
    v.join("/")
}

// ---- human tables -----------------------------------------------------------

fn ago(s: Option<u64>) -> String {
    s.map_or("never".into(), |s| format!("{s}s ago"))
}

fn opt_in(s: Option<u64>) -> Option<String> {
    s.map(|s| format!("{s}s"))
}

pub fn status_table(v: &[ConnStatus]) -> String {
    let w = v.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    let mut o = format!("{:w$}  {:7}  {:10}  DETAIL\n", "NAME", "VERSION", "STATE");
    for c in v {
        let _ = writeln!(
            o,
            "{:w$}  {:7}  {:10}  {}",
            c.name,
            c.version,
            c.state.as_str(),
            c.detail
        );
        if let (Some(f), true) = (&c.last_failure, c.state != ConnState::Up) {
            let when = match (c.last_failure_s_ago, &c.last_failure_fault) {
                (Some(s), Some(f)) => format!(" ({s}s ago, {f})"),
                (Some(s), None) => format!(" ({s}s ago)"),
                (None, Some(f)) => format!(" ({f})"),
                (None, None) => String::new(),
            };
            if !c.detail.contains(f.as_str()) {
                let _ = writeln!(o, "{:w$}  last failure{when}: {f}", "");
            }
        }
    }
    o
}

fn yes() -> bool {
    true
}

pub fn ike_table(v: &[IkeSaOut]) -> String {
    if v.is_empty() {
        return "no IKE SAs\n".into();
    }
    let mut o = String::new();
    for s in v {
        let _ = writeln!(
            o,
            "{}: IKEv{}, {}, {}{}_i {}_r, {}",
            s.conn,
            s.version,
            s.state,
            if s.version == 1 { "cookies " } else { "" },
            s.spi_i,
            s.spi_r,
            s.role
        );
        if let Some(p) = &s.phase {
            let _ = writeln!(o, "  {p}");
        }
        let _ = writeln!(o, "  local  {}\n  remote {}", s.local, s.remote);
        if let Some(a) = &s.algorithms {
            let _ = writeln!(o, "  {a}");
        }
        let mut times = Vec::new();
        if let Some(e) = s.established_s_ago {
            times.push(format!("established {e}s ago"));
        }
        if let Some(r) = opt_in(s.rekey_in_s) {
            times.push(format!("rekeying in {r}"));
        }
        if let Some(x) = opt_in(s.expires_in_s) {
            times.push(format!("expires in {x}"));
        }
        if !times.is_empty() {
            let _ = writeln!(o, "  {}", times.join(", "));
        }
        let nat = match (s.nat_detected, s.behind_nat) {
            (false, _) => "no NAT".to_string(),
            (true, true) => "NAT detected: we are behind it (UDP 4500, keepalives)".into(),
            (true, false) => "NAT detected: the peer is behind it (UDP 4500)".into(),
        };
        let dpd = if s.dpd.delay_s == 0 {
            format!("DPD off, last heard {}s ago", s.dpd.last_heard_s_ago)
        } else {
            format!(
                "DPD every {}s, last heard {}s ago{}",
                s.dpd.delay_s,
                s.dpd.last_heard_s_ago,
                if s.dpd.checking { ", liveness check out" } else { "" }
            )
        };
        let _ = writeln!(o, "  {nat}; {dpd}");
        if let Some(p) = &s.pending {
            let _ = writeln!(o, "  waiting for: {p}");
        }
        if !s.children.is_empty() {
            let _ = writeln!(o, "  CHILD SAs (in): {}", s.children.join(" "));
        }
    }
    o
}

fn direction(o: &mut String, name: &str, d: &Direction) {
    let _ = write!(
        o,
        "    {name:3} {}, {:>10} bytes, {:>8} packets, last {}, seq {}",
        d.spi,
        d.bytes,
        d.packets,
        ago(d.last_packet_s_ago),
        d.seq
    );
    if !d.drops.is_empty() {
        let v: Vec<String> = d.drops.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let _ = write!(o, ", drops {}", v.join(" "));
    }
    if let Some(n) = d.udp_train {
        // Said because a capture on the sender shows bursts this long.
        let _ = write!(o, ", UDP trains of up to {n}");
    }
    o.push('\n');
    if let Some(c) = &d.ipcomp {
        let ratio = if c.bytes_uncompressed > 0 {
            format!(
                ", {:.0} %",
                c.bytes_compressed as f64 * 100.0 / c.bytes_uncompressed as f64
            )
        } else {
            String::new()
        };
        let _ = if name == "out" {
            writeln!(
                o,
                "        IPComp cpi {}: {} compressed ({} -> {} bytes{ratio}), uncompressed: {} too small, {} not smaller",
                c.cpi, c.compressed, c.bytes_uncompressed, c.bytes_compressed, c.too_small, c.not_smaller
            )
        } else {
            writeln!(
                o,
                "        IPComp cpi {}: {} decompressed ({} -> {} bytes{ratio}), {} uncompressed",
                c.cpi, c.compressed, c.bytes_compressed, c.bytes_uncompressed, c.uncompressed
            )
        };
    }
}

pub fn child_table(v: &[ChildSaOut]) -> String {
    if v.is_empty() {
        return "no CHILD SAs\n".into();
    }
    let mut o = String::new();
    for c in v {
        let _ = writeln!(
            o,
            "{}{}: {}, {}{}, ESP:{}{}{}",
            c.conn,
            c.child.as_ref().map_or(String::new(), |n| format!("/{n}")),
            c.state,
            c.mode.to_uppercase(),
            if c.encap == "udp" { "-in-UDP" } else { "" },
            c.algorithms,
            if c.esn && !c.algorithms.ends_with("ESN") {
                "/ESN"
            } else {
                ""
            },
            if c.inbound.ipcomp.is_some() || c.outbound.ipcomp.is_some() {
                ", IPCOMP"
            } else {
                ""
            }
        );
        let mut times = Vec::new();
        if let Some(i) = c.installed_s_ago {
            times.push(format!("installed {i}s ago"));
        }
        if let Some(r) = opt_in(c.rekey_in_s) {
            times.push(format!("rekeying in {r}"));
        }
        if let Some(x) = opt_in(c.expires_in_s) {
            times.push(format!("expires in {x}"));
        }
        if !times.is_empty() {
            let _ = writeln!(o, "    {}", times.join(", "));
        }
        direction(&mut o, "in", &c.inbound);
        direction(&mut o, "out", &c.outbound);
        let _ = writeln!(o, "    replay window {}", c.replay_window);
        let _ = writeln!(o, "    local  {}", c.local_ts.join(" "));
        let _ = writeln!(o, "    remote {}", c.remote_ts.join(" "));
    }
    o
}

pub fn policy_table(v: &[PolicyOut]) -> String {
    if v.is_empty() {
        return "no policies\n".into();
    }
    let mut o =
        String::from("  #  CONN  SELECTOR                                   ACTION   SA          STATE      HITS\n");
    for p in v {
        let sel = format!(
            "{} === {}{}",
            p.local,
            p.remote,
            p.protocol.as_ref().map(|x| format!(" {x}")).unwrap_or_default()
        );
        let _ = writeln!(
            o,
            "{:3}  {}  {:42} {:8} {:11} {:10} {}",
            p.index,
            p.conn,
            sel,
            p.action,
            p.sa.clone().unwrap_or_else(|| "-".into()),
            p.state,
            p.hits
        );
    }
    o
}

pub fn counters_table(v: &[CounterOut]) -> String {
    let mut o = String::from("IKE   COUNTER                    VALUE  MEANING\n");
    for c in v {
        let _ = writeln!(o, "v{}    {:26} {:>6}  {}", c.version, c.name, c.value, c.meaning);
    }
    o
}

/// The counters that are not zero, on one line under `show ike`.
pub fn counters_footer(v: &[CounterOut]) -> String {
    let nonzero: Vec<String> = v
        .iter()
        .filter(|c| c.value > 0)
        .map(|c| format!("v{} {} {}", c.version, c.name, c.value))
        .collect();
    if nonzero.is_empty() {
        "IKE counters: nothing refused or dropped\n".into()
    } else {
        format!(
            "IKE counters: {} (`ikeda show counters` says what each means)\n",
            nonzero.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikeda_crypto::ike::Prf;

    #[test]
    fn the_counters_footer_names_what_is_not_zero() {
        let c = |version, name: &str, value| CounterOut {
            version,
            name: name.into(),
            value,
            meaning: String::new(),
        };
        assert_eq!(
            counters_footer(&[c(2, "malformed", 0), c(1, "half_open_refused", 0)]),
            "IKE counters: nothing refused or dropped\n"
        );
        assert_eq!(
            counters_footer(&[
                c(2, "malformed", 3),
                c(2, "unknown_spi", 0),
                c(1, "half_open_refused", 7)
            ]),
            "IKE counters: v2 malformed 3, v1 half_open_refused 7 (`ikeda show counters` says what each means)\n"
        );
    }

    /// The names must be strongSwan's, character for character: the interop
    /// test compares them with `swanctl --list-sas`.
    #[test]
    fn algorithm_names_are_strongswans() {
        let s = IkeSuite {
            encr: Encr::AesCbc { key_bits: 128 },
            integ: Some(Integ::HmacSha256_128),
            prf: Prf::HmacSha256,
            dh: DhGroup::Modp2048,
        };
        assert_eq!(
            ike_suite_name(&s),
            "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
        );
        let s = IkeSuite {
            encr: Encr::AesGcm16 { key_bits: 128 },
            integ: None,
            prf: Prf::HmacSha256,
            dh: DhGroup::Curve25519,
        };
        assert_eq!(ike_suite_name(&s), "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519");
        let c = ChildSuite {
            encr: Encr::AesGcm16 { key_bits: 256 },
            integ: None,
            dh: None,
            esn: false,
        };
        assert_eq!(child_suite_name(&c), "AES_GCM_16-256");
        let c = ChildSuite {
            encr: Encr::AesCbc { key_bits: 128 },
            integ: Some(Integ::HmacSha1_96),
            dh: Some(DhGroup::Ecp256),
            esn: true,
        };
        assert_eq!(child_suite_name(&c), "AES_CBC-128/HMAC_SHA1_96/ECP_256/ESN");
        // Now in the data plane: named through the ESP algorithm, the same.
        for (integ, name) in [
            (Integ::HmacSha384_192, "AES_CBC-256/HMAC_SHA2_384_192"),
            (Integ::HmacSha512_256, "AES_CBC-256/HMAC_SHA2_512_256/ESN"),
        ] {
            let c = ChildSuite {
                encr: Encr::AesCbc { key_bits: 256 },
                integ: Some(integ),
                dh: None,
                esn: name.ends_with("ESN"),
            };
            assert!(c.esp_algorithm().is_some());
            assert_eq!(child_suite_name(&c), name);
        }
    }

    #[test]
    fn tables_show_every_field_that_matters() {
        let st = vec![ConnStatus {
            name: "s2s".into(),
            version: "IKEv2".into(),
            state: ConnState::Down,
            detail: "not connected".into(),
            last_failure: Some("authentication failed".into()),
            last_failure_s_ago: Some(3),
            last_failure_fault: Some("configuration".into()),
        }];
        let t = status_table(&st);
        assert!(
            t.contains("s2s")
                && t.contains("down")
                && t.contains("last failure (3s ago, configuration): authentication failed"),
            "{t}"
        );
        let c = ChildSaOut {
            conn: "s2s".into(),
            child: None,
            state: "INSTALLED".into(),
            mode: "tunnel".into(),
            encap: "udp".into(),
            algorithms: "AES_GCM_16-128".into(),
            pfs_group: None,
            esn: false,
            local_ts: vec!["192.168.11.0/24".into()],
            remote_ts: vec!["192.168.12.0/24".into()],
            inbound: Direction {
                spi: "c0000001".into(),
                bytes: 840,
                packets: 10,
                last_packet_s_ago: Some(1),
                seq: 10,
                drops: [("replayed".to_string(), 2)].into_iter().collect(),
                ipcomp: None,
                udp_train: None,
            },
            outbound: Direction {
                spi: "c0000002".into(),
                udp_train: Some(64),
                ..Default::default()
            },
            replay_window: 1024,
            installed_s_ago: Some(5),
            rekey_in_s: Some(3000),
            expires_in_s: Some(3600),
        };
        let c2 = c.clone();
        let t = child_table(&[c]);
        for want in [
            "TUNNEL-in-UDP, ESP:AES_GCM_16-128",
            "in  c0000001",
            "840 bytes",
            "replayed=2",
            "rekeying in 3000s",
            "192.168.12.0/24",
            "seq 0, UDP trains of up to 64\n",
        ] {
            assert!(t.contains(want), "{want} not in\n{t}");
        }
        assert!(!t.contains("IPComp") && !t.contains("IPCOMP"), "{t}");
        // With IPComp: the flag on the first line, a counter line per direction.
        let mut c = c2;
        c.outbound.ipcomp = Some(IpcompOut {
            cpi: "0x1234".into(),
            compressed: 5,
            too_small: 3,
            not_smaller: 1,
            uncompressed: 0,
            bytes_uncompressed: 5140,
            bytes_compressed: 200,
        });
        c.inbound.ipcomp = Some(IpcompOut {
            cpi: "0x4321".into(),
            compressed: 4,
            uncompressed: 2,
            bytes_uncompressed: 4112,
            bytes_compressed: 160,
            ..Default::default()
        });
        let t = child_table(&[c]);
        for want in [
            "ESP:AES_GCM_16-128, IPCOMP",
            "IPComp cpi 0x4321: 4 decompressed (160 -> 4112 bytes, 4 %), 2 uncompressed",
            "IPComp cpi 0x1234: 5 compressed (5140 -> 200 bytes, 4 %), uncompressed: 3 too small, 1 not smaller",
        ] {
            assert!(t.contains(want), "{want} not in\n{t}");
        }
    }
}
