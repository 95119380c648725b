//! What a configuration means for the data plane and the engines, as pure
//! functions (no I/O): the engines' view of each connection, the data
//! plane's slots, SAs and policies, and the routes and rules wanted in the
//! system, which an [`RouteSync`] (the OS, or a test's record) makes so.
//! Start and reload both plan from here.

use crate::config::{Config, ConnConfig, Identity};
use crate::seqstate::{Reservation, SeqStore};
use ikeda_esp::{AddrRange, Encap, InboundSa, OutboundSa, SaParams, Selector};
use ikeda_ike::ikev1::V1ConnSpec;
use ikeda_ike::ikev2::{ChildSaInfo, ConnSpec, Timers};
use ikeda_ike::{ChildTs, Connection};
use ikeda_sys::route::Rule;
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ikev2::{IdPayload, IdType, TsRange};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What makes the routes and rules in the system what [`Wanted`] says: the
/// OS (`daemon::OsState`, with `ip`), or in tests a record of the last wish.
pub trait RouteSync: Send {
    fn sync(&mut self, want: &Wanted) -> Result<(), String>;
}

/// Preference of our policy rules (before `main` at 32766).
pub const RULE_PREF: u32 = 2200;

/// SA parameters for both directions of a manually keyed connection.
pub fn sa_params(c: &ConnConfig) -> Option<(SaParams, SaParams)> {
    let m = c.manual.as_ref()?;
    let port = if c.encap == Encap::Udp { c.port } else { 0 };
    let local = SocketAddr::new(c.local_addr, port);
    let remote = SocketAddr::new(c.remote_addr, port);
    let mk = |k: &crate::config::SaKeys| SaParams {
        spi: k.spi,
        algorithm: c.esp,
        enc_key: k.enc_key.clone(),
        auth_key: k.auth_key.clone(),
        esn: c.esn,
        replay_window: c.replay_window,
        local,
        remote,
        encap: c.encap,
        selectors: c.selectors.clone(),
        ipcomp: m.ipcomp,
    };
    Some((mk(&m.out), mk(&m.inbound)))
}

/// A manually keyed connection's two SAs; the outbound one resumes above
/// the sequence numbers reserved for its key and sends only up to the
/// reservation's ceiling (`seqstate`: no number twice under one key, even
/// across restarts and crashes).
pub struct ManualSas {
    pub out: OutboundSa,
    pub inbound: InboundSa,
    pub seq: Reservation,
}

/// The SAs of `c` if it is manually keyed; its sequence state is read from
/// and reserved ahead in `store`.
pub fn manual_sas(c: &ConnConfig, store: &SeqStore) -> Result<Option<ManualSas>, String> {
    let Some((o, i)) = sa_params(c) else { return Ok(None) };
    let slot = store.slot(o.spi, &o.enc_key, o.auth_key.as_ref())?;
    let (seq, last) = Reservation::resume(slot, o.esn, crate::seqstate::STEP)
        .map_err(|e| format!("{}: outbound SA {:#010x}: {e}", c.name, o.spi))?;
    tracing::info!(
        target: "config",
        "{}: outbound SA {:#010x} resumes after sequence number {last} (reserved up to {})",
        c.name,
        o.spi,
        seq.ceiling().load(std::sync::atomic::Ordering::Relaxed)
    );
    let mut out = OutboundSa::new(&o)
        .map_err(|e| format!("{}: outbound SA: {e}", c.name))?
        .with_last_seq(last)
        .with_seq_ceiling(seq.ceiling());
    // No IKE, so nothing announced: the short trains unless configured.
    out.train = crate::install::train_for(c.udp_train, false);
    let inbound = InboundSa::new(&i).map_err(|e| format!("{}: inbound SA: {e}", c.name))?;
    Ok(Some(ManualSas { out, inbound, seq }))
}

/// The data plane state a config describes: SPD, outbound and inbound SAs.
/// The outbound half, the connection name of each outbound SA, and the
/// inbound SAs with their connection names. (The daemon installs manual
/// SAs one connection at a time, as reload does; the data plane's tests
/// build theirs whole.)
#[cfg(test)]
pub type BuiltSas = (ikeda_esp::Outbound, Vec<String>, Vec<(String, InboundSa)>);

/// The manual connections' SAs and policies, and the sequence number
/// reservation of each manual connection (in config order).
#[cfg(test)]
pub fn build_sas(cfg: &Config, store: &SeqStore) -> Result<(BuiltSas, Vec<Reservation>), String> {
    use ikeda_esp::{Outbound, Policy, PolicyAction, Spd};
    let mut policies = Vec::new();
    let mut out = Vec::new();
    let mut names = Vec::new();
    let mut inb = Vec::new();
    let mut seqs = Vec::new();
    for c in &cfg.conns {
        let Some(m) = manual_sas(c, store)? else { continue };
        let idx = out.len();
        out.push(Some(m.out));
        names.push(c.name.clone());
        inb.push((c.name.clone(), m.inbound));
        seqs.push(m.seq);
        for s in &c.selectors {
            policies.push(Policy::new(
                c.name.clone(),
                s.clone(),
                PolicyAction::Protect { sa: idx },
            ));
        }
    }
    Ok(((Outbound::new(Spd::new(policies), out), names, inb), seqs))
}

/// Metric of the fallback routes: above the TUN routes (0 for IPv4, 1024
/// for IPv6 by default), so a TUN route wins while it exists.
pub const FALLBACK_METRIC: u32 = 4096;

/// The routes and rules a config needs.
///
/// Fail closed: every remote CIDR gets two routes in our table, one
/// through the TUN device and an `unreachable` one with a higher metric
/// below it. When the daemon stops, crashes or cannot start, the TUN and
/// its routes go, but the rules and the `unreachable` routes stay: traffic
/// for the remote selectors then meets "No route to host" (ICMP host
/// unreachable for forwarded packets) instead of falling through to the
/// main table and leaving in clear. Why `unreachable`: the sender learns
/// at once why (a blackhole leaves it timing out; `prohibit` reads as a
/// firewall's doing). Only [`teardown`] (`ikeda down -c`) and a reload
/// that drops the connection remove them.
#[derive(Default)]
pub struct Wanted {
    /// Remote CIDRs, with the source hint of their TUN route.
    pub(crate) routes: Vec<(String, Option<IpAddr>)>,
    /// At [`RULE_PREF`], pointing at our table.
    pub(crate) rules: Vec<Rule>,
}

impl Wanted {
    pub fn of(cfg: &Config) -> Wanted {
        let mut w = Wanted::default();
        for c in &cfg.conns {
            for s in c.all_selectors() {
                // Source hint: a local selector that is one address (gateway <-> net).
                let src = s
                    .local
                    .prefix_len()
                    .filter(|l| *l == 32 || *l == 128)
                    .map(|_| s.local.start);
                // A selector that holds the peer's outer address: only its
                // local side's traffic goes to our table (`from LOCAL`), so
                // the gateways' own IKE and ESP keep their normal route and
                // never meet the fallback either (a restarted daemon must
                // reach its peer). The config refuses a selector whose local
                // side holds our own outer address as well.
                let to_peer = s.remote.contains(c.remote_addr);
                for cidr in s.remote.to_cidrs() {
                    if !w.routes.iter().any(|r| r.0 == cidr) {
                        w.routes.push((cidr.clone(), src));
                    }
                    let froms = if to_peer {
                        s.local.to_cidrs().into_iter().map(Some).collect()
                    } else {
                        vec![None]
                    };
                    for from in froms {
                        let r = Rule::simple(from.as_deref(), &cidr, cfg.daemon.route_table, Some(RULE_PREF));
                        if !w.rules.contains(&r) {
                            w.rules.push(r);
                        }
                    }
                }
            }
        }
        w
    }
}

fn id_payload(id: &Identity) -> IdPayload {
    match id {
        Identity::Ipv4(a) => IdPayload::ipv4(*a),
        Identity::Ipv6(a) => IdPayload {
            id_type: IdType::ID_IPV6_ADDR,
            data: a.octets().to_vec(),
        },
        Identity::Fqdn(n) => IdPayload::fqdn(n),
        Identity::UserFqdn(n) => IdPayload {
            id_type: IdType::ID_RFC822_ADDR,
            data: n.as_bytes().to_vec(),
        },
        Identity::KeyId(k) => IdPayload {
            id_type: IdType::ID_KEY_ID,
            data: k.clone(),
        },
    }
}

fn to_ts(r: &AddrRange, s: &Selector, local: bool) -> TsRange {
    let (start_port, end_port) = if local { s.local_ports } else { s.remote_ports };
    TsRange {
        ip_protocol: s.protocol.unwrap_or(IpProtocol(0)),
        start_port,
        end_port,
        start_address: r.start,
        end_address: r.end,
    }
}

/// What a reload (or the start, from nothing) changes: connections by
/// name, in config order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub added: Vec<String>,
    /// Settings changed: torn down and brought up anew.
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// The same settings, secrets included: their SAs stay.
    pub untouched: Vec<String>,
}

/// The connections of `new` against those of `old`.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff::default();
    for c in &new.conns {
        match old.conns.iter().find(|o| o.name == c.name) {
            None => d.added.push(c.name.clone()),
            Some(o) if o.same_as(c) => d.untouched.push(c.name.clone()),
            Some(_) => d.changed.push(c.name.clone()),
        }
    }
    for o in &old.conns {
        if !new.conns.iter().any(|c| c.name == o.name) {
            d.removed.push(o.name.clone());
        }
    }
    d
}

/// Why `new` cannot be applied to a running daemon that started with
/// `old`: the settings of its devices, sockets and files, in plain words.
pub fn restart_needed(old: &crate::config::DaemonConfig, new: &crate::config::DaemonConfig) -> Option<String> {
    let changed: Vec<&str> = [
        ("tun", old.tun != new.tun),
        ("mtu", old.mtu != new.mtu),
        ("route_table", old.route_table != new.route_table),
        ("control_socket", old.control_socket != new.control_socket),
        ("key_export", old.key_export != new.key_export),
        ("state_dir", old.state_dir != new.state_dir),
    ]
    .into_iter()
    .filter_map(|(k, c)| c.then_some(k))
    .collect();
    (!changed.is_empty()).then(|| format!("{} changed in [daemon]", changed.join(", ")))
}

/// The first connection of `cfg` that the sockets a daemon opened at start
/// cannot serve: an IKE connection needs UDP 500 (`ike`) and both data
/// plane sockets (raw ESP and UDP 4500: IKE decides per SA) on its local
/// address, a manual one the socket of its encapsulation.
pub fn missing_socket(cfg: &Config, ike: &[IpAddr], plane: &[(Encap, IpAddr)]) -> Option<String> {
    cfg.conns.iter().find_map(|c| {
        let has = |e: Encap| plane.contains(&(e, c.local_addr));
        let ok = match c.ike {
            Some(_) => ike.contains(&c.local_addr) && has(Encap::Esp) && has(Encap::Udp),
            None => has(c.encap),
        };
        (!ok).then(|| {
            format!(
                "connection '{}' uses local address {} ({}), which this daemon has no socket for",
                c.name,
                c.local_addr,
                if c.ike.is_some() { "IKE" } else { "manual" }
            )
        })
    })
}

/// The connection as the engine runs it: its spec and its IKE version,
/// with the choices only IKEv1 has.
pub fn connection(c: &ConnConfig) -> Option<Connection> {
    let spec = conn_spec(c)?;
    Some(match c.ike.as_ref() {
        Some(i) if i.version == 1 => Connection::V1(V1ConnSpec {
            spec,
            aggressive: i.aggressive,
            compress: i.compress,
        }),
        _ => Connection::V2(spec),
    })
}

/// The engine's view of a connection.
pub fn conn_spec(c: &ConnConfig) -> Option<ConnSpec> {
    let ike = c.ike.as_ref()?;
    // Say plainly what this build does not do yet, rather than pretend.

    let (local_ts, remote_ts, ts_pairs) = ts_sets(&c.selectors);
    let children = c
        .children
        .iter()
        .map(|ch| {
            let (local_ts, remote_ts, _) = ts_sets(&ch.selectors);
            ChildTs {
                name: ch.name.clone(),
                local_ts,
                remote_ts,
            }
        })
        .collect();
    Some(ConnSpec {
        name: c.name.clone(),
        local: c.local_addr,
        remote: c.remote_addr,
        local_id: id_payload(&ike.local_id),
        remote_id: id_payload(&ike.remote_id),
        psk: ike.psk.clone(),
        ike_proposals: ike.ike_proposals.clone(),
        esp_proposals: ike.esp_proposals.clone(),
        local_ts,
        remote_ts,
        ts_pairs,
        timers: Timers {
            rekey_time: Duration::from_secs(ike.rekey_time),
            life_time: Duration::from_secs(ike.life_time),
            ike_rekey_time: Duration::from_secs(ike.ike_rekey_time),
            ike_lifetime: Duration::from_secs(ike.ike_lifetime),
            dpd_delay: Duration::from_secs(ike.dpd_delay),
            dpd_restart: ike.dpd_action == crate::config::DpdAction::Restart,
            keepalive: Duration::from_secs(ike.keepalive),
        },
        // `encap = "udp"` on an IKE connection: always RFC 3948 on 4500.
        force_encap: c.encap == Encap::Udp,
        children,
    })
}

/// The local and remote traffic selector sets of some selector pairs (each
/// range once), and the pairs.
type TsSets = (Vec<TsRange>, Vec<TsRange>, Vec<(TsRange, TsRange)>);
fn ts_sets(selectors: &[Selector]) -> TsSets {
    let (mut local_ts, mut remote_ts, mut ts_pairs): TsSets = Default::default();
    for s in selectors {
        let (l, r) = (to_ts(&s.local, s, true), to_ts(&s.remote, s, false));
        ts_pairs.push((l, r));
        if !local_ts.contains(&l) {
            local_ts.push(l);
        }
        if !remote_ts.contains(&r) {
            remote_ts.push(r);
        }
    }
    (local_ts, remote_ts, ts_pairs)
}

/// Selectors of a negotiated CHILD SA: every local x remote pair of one family.
pub fn selectors(info: &ChildSaInfo) -> Vec<Selector> {
    let mut out = Vec::new();
    for l in &info.local_ts {
        for r in &info.remote_ts {
            if l.start_address.is_ipv4() == r.start_address.is_ipv4() {
                out.push(pair_selector(l, r));
            }
        }
    }
    out
}

/// The policy selector of one local/remote range pair.
pub fn pair_selector(l: &TsRange, r: &TsRange) -> Selector {
    let proto = match (l.ip_protocol.0, r.ip_protocol.0) {
        (0, p) | (p, 0) => p,
        (p, _) => p,
    };
    Selector {
        local: AddrRange {
            start: l.start_address,
            end: l.end_address,
        },
        remote: AddrRange {
            start: r.start_address,
            end: r.end_address,
        },
        protocol: (proto != 0).then_some(IpProtocol(proto)),
        local_ports: (l.start_port, l.end_port),
        remote_ports: (r.start_port, r.end_port),
    }
}

/// One IKE connection's place in the data plane.
#[derive(Clone)]
pub struct ConnSlot {
    pub name: String,
    /// IKEv1: the selector pair this slot serves (one Quick Mode each);
    /// IKEv2: the CHILD SA (0 the connection's own, k the k-th `[[conn.child]]`).
    pub pair: usize,
    pub slot: usize,
    pub replay_window: u32,
    /// The connection's `udp_train`, if configured.
    pub udp_train: Option<u8>,
    /// Policies while no CHILD SA is up (from the config) ...
    pub configured: Vec<Selector>,
    /// ... and those negotiated.
    pub negotiated: Option<Vec<Selector>>,
    pub spi_in: Option<u32>,
    /// Byte and packet lifetimes (0 = none), checked against the data
    /// plane's counters.
    pub rekey_bytes: u64,
    pub life_bytes: u64,
    pub rekey_packets: u64,
    pub life_packets: u64,
    /// The SA (inbound SPI) whose rekey or deletion by volume was started.
    pub bytes_acted: Option<u32>,
    /// The CHILD SA installed last has extended sequence numbers.
    pub esn: bool,
}

/// After how many packets a CHILD SA is rekeyed (0 = never): as configured,
/// and without ESN at [`SEQ_SOFT_LIMIT`] at the latest.
pub fn packet_rekey_limit(configured: u64, esn: bool) -> u64 {
    match (configured, esn) {
        (n, true) => n,
        (0, false) => SEQ_SOFT_LIMIT,
        (n, false) => n.min(SEQ_SOFT_LIMIT),
    }
}

/// Without extended sequence numbers a CHILD SA is rekeyed after this many
/// packets in either direction, whatever the configuration says: a 32-bit
/// counter must never cycle (RFC 4303 §3.3.3), and at this mark the rekey
/// has 268 million packets (7 minutes at 625,000 packets/s) to complete.
pub const SEQ_SOFT_LIMIT: u64 = 0xF000_0000;

/// A manually keyed connection's place in the data plane.
pub struct ManualSlot {
    pub name: String,
    pub slot: usize,
    pub spi_in: u32,
    pub spi_out: u32,
    pub selectors: Vec<Selector>,
    /// The outbound SA's counters: the highest sequence number sent.
    pub out_stats: Arc<ikeda_esp::SaStats>,
    /// The sequence numbers reserved on disk for the outbound SA.
    pub seq: crate::seqstate::Reservation,
    /// Reserving failed last time (logged once until it works again).
    pub seq_failing: bool,
}

/// The data plane slots of an IKE connection, before any SA: for IKEv1 one
/// per selector pair (each gets its own Quick Mode and SAs), for IKEv2 one
/// per CHILD SA; numbered from `first`.
pub fn conn_slots(c: &ConnConfig, spec: &ConnSpec, first: usize) -> Vec<ConnSlot> {
    if c.ike.as_ref().is_some_and(|i| i.version == 1) {
        ikeda_ike::ikev1::pairs(spec)
            .iter()
            .enumerate()
            .map(|(k, (l, r))| ConnSlot {
                pair: k,
                configured: vec![pair_selector(l, r)],
                ..conn_slot(c, first + k)
            })
            .collect()
    } else {
        // IKEv2: one per CHILD SA, the connection's own first, then each
        // `[[conn.child]]` (`pair` k + 1), as the engine numbers them.
        std::iter::once(conn_slot(c, first))
            .chain(c.children.iter().enumerate().map(|(k, ch)| ConnSlot {
                pair: k + 1,
                configured: ch.selectors.clone(),
                ..conn_slot(c, first + k + 1)
            }))
            .collect()
    }
}

pub fn conn_slot(c: &ConnConfig, slot: usize) -> ConnSlot {
    ConnSlot {
        name: c.name.clone(),
        pair: 0,
        slot,
        replay_window: c.replay_window,
        udp_train: c.udp_train,
        configured: c.selectors.clone(),
        negotiated: None,
        spi_in: None,
        rekey_bytes: c.ike.as_ref().map_or(0, |i| i.rekey_bytes),
        life_bytes: c.ike.as_ref().map_or(0, |i| i.life_bytes),
        rekey_packets: c.ike.as_ref().map_or(0, |i| i.rekey_packets),
        life_packets: c.ike.as_ref().map_or(0, |i| i.life_packets),
        bytes_acted: None,
        esn: c.esn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Connections of the IKE kind between 50.11 and 50.12, `name = psk` each.
    fn ike_conns(daemon: &str, conns: &[(&str, &str)]) -> Config {
        let mut t = format!("[daemon]\n{daemon}\n");
        for (name, psk) in conns {
            t.push_str(&format!(
                "[[conn]]\nname = \"{name}\"\nlocal_addr = \"192.168.50.11\"\nremote_addr = \"192.168.50.12\"\n\
                 ike = \"aes128gcm16-prfsha256-x25519\"\nesp = \"aes128gcm16\"\npsk = \"{psk}\"\n\
                 local_ts = [\"192.168.11.0/24\"]\nremote_ts = [\"192.168.12.0/24\"]\n"
            ));
        }
        Config::parse(Path::new("t.toml"), &t).unwrap()
    }

    /// Start is a reload from nothing: every connection added; a reload
    /// sorts them by name into added, changed (a secret counts), removed
    /// and untouched, in config order.
    #[test]
    fn a_reload_is_a_diff_by_name_and_settings() {
        let old = ike_conns("", &[("a", "one"), ("b", "two"), ("c", "three")]);
        let new = ike_conns("", &[("d", "four"), ("c", "three"), ("b", "TWO")]);
        let nothing = Config {
            conns: Vec::new(),
            ..ike_conns("", &[("x", "y")])
        };
        let from_nothing = diff(&nothing, &old);
        assert_eq!(from_nothing.added, ["a", "b", "c"]);
        assert!(
            from_nothing.changed.is_empty() && from_nothing.removed.is_empty() && from_nothing.untouched.is_empty()
        );
        let d = diff(&old, &new);
        assert_eq!(
            d,
            ConfigDiff {
                added: vec!["d".into()],
                changed: vec!["b".into()],
                removed: vec!["a".into()],
                untouched: vec!["c".into()],
            }
        );
    }

    #[test]
    fn device_socket_and_file_settings_need_a_restart() {
        let a = ike_conns("", &[("a", "one")]);
        assert_eq!(restart_needed(&a.daemon, &a.daemon), None);
        let b = ike_conns("mtu = 1300\nroute_table = 221", &[("a", "one")]);
        assert_eq!(
            restart_needed(&a.daemon, &b.daemon).unwrap(),
            "mtu, route_table changed in [daemon]"
        );
        // The retransmission settings are applied by a reload.
        let c = ike_conns("retransmit_tries = 3", &[("a", "one")]);
        assert_eq!(restart_needed(&a.daemon, &c.daemon), None);
    }

    /// An IKE connection needs UDP 500 and both data plane sockets on its
    /// local address.
    #[test]
    fn a_connection_without_its_sockets_is_named() {
        let cfg = ike_conns("", &[("a", "one")]);
        let ip: IpAddr = "192.168.50.11".parse().unwrap();
        let both = [(Encap::Esp, ip), (Encap::Udp, ip)];
        assert_eq!(missing_socket(&cfg, &[ip], &both), None);
        let e = missing_socket(&cfg, &[], &both).unwrap();
        assert!(e.contains("'a' uses local address 192.168.50.11 (IKE)"), "{e}");
        assert!(missing_socket(&cfg, &[ip], &both[..1]).is_some());
    }

    #[test]
    fn every_remote_cidr_gets_a_rule_and_a_fallback() {
        let text = format!(
            "[daemon]\nroute_table = 221\n[[conn]]\nname = \"site2\"\nlocal_addr = \"192.168.50.11\"\n\
             remote_addr = \"192.168.50.12\"\nesp = \"aes128gcm16\"\n\
             local_ts = [\"192.168.11.0/24\", \"2001:db8:11::/64\"]\nremote_ts = [\"192.168.12.0/24\", \"2001:db8:12::/64\"]\n\
             [[conn.policy]]\nlocal = \"192.168.11.0/24\"\nremote = \"192.168.50.12\"\n\
             [conn.manual]\nout = {{ spi = \"0x1001\", enc_key = \"0x{k}\" }}\nin = {{ spi = \"0x2001\", enc_key = \"0x{k}\" }}\n",
            k = "ab".repeat(20)
        );
        let cfg = Config::parse(Path::new("t.toml"), &text).unwrap();
        let w = Wanted::of(&cfg);
        let routes: Vec<&str> = w.routes.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(routes, ["192.168.12.0/24", "2001:db8:12::/64", "192.168.50.12/32"]);
        let rules: Vec<String> = w.rules.iter().map(|r| r.args("add").join(" ")).collect();
        assert_eq!(
            rules,
            [
                "rule add pref 2200 to 192.168.12.0/24 table 221",
                "-6 rule add pref 2200 to 2001:db8:12::/64 table 221",
                // The peer's own address: only the LAN's traffic, never the
                // gateway's IKE and ESP (a restart must reach the peer).
                "rule add pref 2200 from 192.168.11.0/24 to 192.168.50.12/32 table 221",
            ]
        );
    }

    /// Without ESN the 32-bit sequence counter is never left to run out:
    /// rekeyed at SEQ_SOFT_LIMIT at the latest, sooner if configured; with
    /// ESN only the configured limit applies.
    #[test]
    fn packet_rekey_limit_keeps_32_bit_sequence_numbers_from_cycling() {
        assert_eq!(packet_rekey_limit(0, false), SEQ_SOFT_LIMIT);
        assert_eq!(packet_rekey_limit(1000, false), 1000);
        assert_eq!(packet_rekey_limit(u64::MAX, false), SEQ_SOFT_LIMIT);
        assert_eq!(packet_rekey_limit(0, true), 0);
        assert_eq!(packet_rekey_limit(u64::MAX, true), u64::MAX);
        const { assert!(SEQ_SOFT_LIMIT < u32::MAX as u64) };
    }
}
