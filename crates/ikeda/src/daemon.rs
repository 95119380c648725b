//! `ikeda run`: the gateway daemon. Reads the config, creates the TUN
//! device, installs routes for the remote selectors, runs the data plane,
//! reloads on SIGHUP, and on SIGTERM/SIGINT removes its TUN and its routes
//! but leaves the fallback that fails closed (see [`Wanted`]).
//!
//! Routing: every remote selector gets a route through the TUN device in
//! the daemon's own table, and a policy rule sends traffic there: `to
//! REMOTE` in general, or `from LOCAL to REMOTE` when REMOTE contains the
//! peer gateway's outer address (the "net <-> gateway" case), so that the
//! gateways' own ESP keeps its normal route.

use crate::config::{Config, ConnConfig};
use crate::dataplane::{DataPlane, NetSocket, StatsView};
use crate::seqstate::{Reservation, SeqStore};
use ikeda_esp::{Encap, InboundSa, Outbound, OutboundSa, Policy, PolicyAction, SaParams, Spd};
use ikeda_sys::route::Rule;
use ikeda_sys::{DatagramIo, IpRoute2, PacketBatch, RawEspSocket, Tun, UdpSocket};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    let out = OutboundSa::new(&o)
        .map_err(|e| format!("{}: outbound SA: {e}", c.name))?
        .with_last_seq(last)
        .with_seq_ceiling(seq.ceiling());
    let inbound = InboundSa::new(&i).map_err(|e| format!("{}: inbound SA: {e}", c.name))?;
    Ok(Some(ManualSas { out, inbound, seq }))
}

/// The data plane state a config describes: SPD, outbound and inbound SAs.
/// The outbound half, the connection name of each outbound SA, and the
/// inbound SAs with their connection names.
pub type BuiltSas = (Outbound, Vec<String>, Vec<(String, InboundSa)>);

/// The manual connections' SAs and policies, and the sequence number
/// reservation of each manual connection (in config order).
pub fn build_sas(cfg: &Config, store: &SeqStore) -> Result<(BuiltSas, Vec<Reservation>), String> {
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
    routes: Vec<(String, Option<IpAddr>)>,
    /// At [`RULE_PREF`], pointing at our table.
    rules: Vec<Rule>,
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

/// Our routes and rules in the system (ours: rules at [`RULE_PREF`] that
/// point at our table, `unreachable` routes of our metric in our table).
/// Dropping it removes the TUN routes only: the rules and the fallback
/// stay (see [`Wanted`]).
pub struct OsState {
    ip: IpRoute2,
    table: u32,
    rules: Vec<Rule>,
    /// `unreachable` routes in our table.
    fallbacks: Vec<String>,
    /// Routes in our table on the TUN device.
    routes: Vec<String>,
    dev: String,
}

impl OsState {
    /// Take over what an earlier run (or a crash) left in place, so that
    /// [`sync`](Self::sync) keeps what is still wanted untouched (no moment
    /// without a rule) and removes the rest.
    pub fn adopt(ip: IpRoute2, table: u32, dev: &str) -> Result<OsState, String> {
        let mut rules = ip.rules_at(RULE_PREF).map_err(|e| e.to_string())?;
        rules.retain(|r| r.table == table);
        let fallbacks = ip
            .unreachable_routes(table, FALLBACK_METRIC)
            .map_err(|e| e.to_string())?;
        Ok(OsState {
            ip,
            table,
            rules,
            fallbacks,
            routes: Vec::new(),
            dev: dev.to_owned(),
        })
    }

    /// Make the routes and rules in place what `want` says: the fallback
    /// first (a rule must never point at a table without it: the lookup
    /// would fall through to `main`), then rules, then the TUN routes; then
    /// remove what is no longer wanted (a reload, a teardown).
    pub fn sync(&mut self, want: &Wanted) -> Result<(), String> {
        let (ip, table) = (&self.ip, self.table);
        for (cidr, _) in &want.routes {
            if !self.fallbacks.contains(cidr) {
                ip.replace_unreachable(cidr, table, FALLBACK_METRIC)
                    .map_err(|e| format!("fallback route {cidr}: {e}"))?;
                self.fallbacks.push(cidr.clone());
            }
        }
        for r in &want.rules {
            if !self.rules.contains(r) {
                ip.ensure_rule(r).map_err(|e| format!("rule to {}: {e}", r.to))?;
                self.rules.push(r.clone());
            }
        }
        for (cidr, src) in &want.routes {
            if !self.routes.contains(cidr) {
                ip.replace_route(cidr, &self.dev, Some(table), *src)
                    .map_err(|e| format!("route {cidr} via {}: {e}", self.dev))?;
                self.routes.push(cidr.clone());
            }
        }
        let wanted_route = |cidr: &String| want.routes.iter().any(|r| &r.0 == cidr);
        self.rules.retain(|r| {
            want.rules.contains(r) || {
                if let Err(e) = ip.remove_rule(r) {
                    tracing::warn!(target: "config", "removing rule to {}: {e}", r.to);
                }
                false
            }
        });
        let dev = &self.dev;
        self.routes.retain(|cidr| {
            wanted_route(cidr) || {
                let _ = ip.del_route(cidr, Some(dev), Some(table));
                false
            }
        });
        self.fallbacks.retain(|cidr| {
            wanted_route(cidr) || {
                if let Err(e) = ip.del_unreachable(cidr, table, FALLBACK_METRIC) {
                    tracing::warn!(target: "config", "removing fallback route {cidr}: {e}");
                }
                false
            }
        });
        Ok(())
    }
}

impl Drop for OsState {
    fn drop(&mut self) {
        // The TUN routes vanish with the device; remove them anyway in case
        // the device outlives us. Rules and fallback stay: fail closed.
        for cidr in self.routes.drain(..) {
            let _ = self.ip.del_route(&cidr, Some(&self.dev), Some(self.table));
        }
    }
}

/// Make the routes and rules in place what `cfg` needs (start, reload).
pub fn sync_routes(cfg: &Config, os: &mut OsState) -> Result<(), String> {
    os.sync(&Wanted::of(cfg))
}

/// `ikeda down -c FILE`: the explicit teardown of what fails closed. It
/// removes our rules and every fallback route in the
/// config's table, also those of connections the file no longer names;
/// refused while a daemon runs (its TUN device exists, or its control
/// socket answers), since that would send the tunnel's traffic in clear.
/// Returns the exit code.
pub fn teardown(config: &Path, socket: &Path) -> i32 {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ikeda: configuration refused: {e}");
            return 2;
        }
    };
    let ip = IpRoute2::new();
    let tun = &cfg.daemon.tun;
    let answers = [socket, cfg.daemon.control_socket.as_path()].into_iter().find(|s| {
        !matches!(
            crate::control::request(s, crate::control::Command::Status),
            Err(crate::control::ClientError::Unreachable(_))
        )
    });
    if ip.run(["link", "show", "dev", tun.as_str()]).is_ok() || answers.is_some() {
        let why = answers.map_or(format!("its TUN device {tun} exists"), |s| {
            format!("it answers on {}", s.display())
        });
        eprintln!(
            "ikeda: the daemon is running ({why}): stop it first, or remove the connections from the config and \
             `ikeda reload`; nothing changed"
        );
        return 1;
    }
    let table = cfg.daemon.route_table;
    let r = OsState::adopt(ip, table, tun).and_then(|mut os| {
        let found = (os.rules.len(), os.fallbacks.len());
        os.sync(&Wanted::default()).map(|()| found)
    });
    match r {
        Ok((rules, routes)) => {
            println!("removed {rules} policy rule(s) and {routes} unreachable route(s) of table {table}: traffic for the remote selectors now follows the other routes, in clear");
            0
        }
        Err(e) => {
            eprintln!("ikeda: {e}");
            1
        }
    }
}

/// Either kind of ESP socket, so one data plane can use both.
pub enum AnySocket {
    Udp(UdpSocket),
    Raw(RawEspSocket),
}

impl DatagramIo for AnySocket {
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> std::io::Result<usize> {
        match self {
            AnySocket::Udp(s) => s.recv_batch(batch, timeout),
            AnySocket::Raw(s) => s.recv_batch(batch, timeout),
        }
    }
    fn send_batch(&self, pkts: &[&[u8]], dsts: &[SocketAddr]) -> std::io::Result<usize> {
        match self {
            AnySocket::Udp(s) => s.send_batch(pkts, dsts),
            AnySocket::Raw(s) => s.send_batch(pkts, dsts),
        }
    }
    fn send_packet_batch(&self, batch: &mut PacketBatch) -> std::io::Result<usize> {
        match self {
            AnySocket::Udp(s) => s.send_packet_batch(batch),
            AnySocket::Raw(s) => s.send_packet_batch(batch),
        }
    }
    fn udp_counters(&self) -> Option<ikeda_sys::UdpOffloadCounters> {
        match self {
            AnySocket::Udp(s) => Some(s.offload_counters()),
            AnySocket::Raw(_) => None,
        }
    }
}

/// Opens the data plane's sockets; with `daemon.offload`, UDP ones send
/// trains with `UDP_SEGMENT` and receive them with `UDP_GRO` where the
/// kernel has them.
fn open_sockets(cfg: &Config) -> Result<Vec<Arc<NetSocket<AnySocket>>>, String> {
    let mut want: Vec<(Encap, IpAddr, u16)> = Vec::new();
    for c in &cfg.conns {
        // IKE decides the encapsulation per SA (raw ESP, or UDP 4500 when a
        // NAT is detected), so IKE connections need both sockets.
        let kinds = if c.ike.is_some() {
            vec![
                (Encap::Esp, c.local_addr, 0),
                (Encap::Udp, c.local_addr, ikeda_ike::ikev2::NAT_T_PORT),
            ]
        } else {
            vec![(c.encap, c.local_addr, c.port)]
        };
        for k in kinds {
            if !want.iter().any(|w| w.0 == k.0 && w.1 == k.1) {
                want.push(k);
            }
        }
    }
    let mut out = Vec::new();
    for (encap, local, port) in want {
        let io = match encap {
            Encap::Udp => {
                let mut s = UdpSocket::bind(SocketAddr::new(local, port))
                    .map_err(|e| format!("UDP socket on {local}:{port}: {e}"))?;
                let _ = s.set_buffer_sizes(ikeda_sys::DEFAULT_SOCKET_BUFFER, ikeda_sys::DEFAULT_SOCKET_BUFFER);
                if cfg.daemon.offload && cfg.daemon.udp_offload {
                    let on = |b: bool| if b { "on" } else { "off (the kernel has no such option)" };
                    let (gso, gro) = s.enable_offloads();
                    tracing::info!(target: "esp", "UDP {local}:{port}: UDP_SEGMENT {}, UDP_GRO {}", on(gso), on(gro));
                }
                AnySocket::Udp(s)
            }
            Encap::Esp => {
                let s = RawEspSocket::bind(local).map_err(|e| format!("raw ESP socket on {local}: {e}"))?;
                let _ = s.set_buffer_sizes(ikeda_sys::DEFAULT_SOCKET_BUFFER, ikeda_sys::DEFAULT_SOCKET_BUFFER);
                AnySocket::Raw(s)
            }
        };
        out.push(Arc::new(NetSocket { encap, local, io }));
    }
    Ok(out)
}

/// Block the termination signals (and SIGHUP, which reloads) in this
/// thread and every thread it starts afterwards, so that only
/// `wait_for_signal` sees them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Wait up to `timeout` for one of the blocked signals.
fn wait_for_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: valid set and timespec; a null siginfo pointer is allowed.
    let r = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (r > 0).then_some(r)
}

/// The stats file: the data plane's snapshot and, under `ike_counters`,
/// the IKE engines' counters by `v{version}.{name}` (all of them, zero or
/// not, so that scripts find every key).
fn write_stats(path: &Path, stats: &StatsView, ike: &Mutex<Vec<crate::show::CounterOut>>) {
    let tmp = path.with_extension("tmp");
    let Ok(mut v) = serde_json::to_value(stats.snapshot()) else {
        return;
    };
    if let (Some(o), Ok(c)) = (v.as_object_mut(), ike.lock()) {
        o.insert("ike_counters".into(), ike_counters_json(&c));
    }
    if let Ok(j) = serde_json::to_vec_pretty(&v) {
        if std::fs::write(&tmp, j).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

fn ike_counters_json(c: &[crate::show::CounterOut]) -> serde_json::Value {
    c.iter()
        .map(|c| (format!("v{}.{}", c.version, c.name), serde_json::Value::from(c.value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

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

/// Run the daemon until a termination signal. Returns the exit code.
pub fn run(opts: RunOptions) -> i32 {
    let cfg = match load(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ikeda: configuration refused: {e}");
            return 2;
        }
    };
    let sigs = block_signals();
    match start(&cfg, &opts) {
        Err(e) => {
            eprintln!("ikeda: cannot start: {e}");
            1
        }
        Ok(st) => {
            let Started {
                plane,
                os,
                tun,
                ike,
                server,
                requests,
            } = st;
            tracing::info!(target: "config", "{}: {} connection(s) up on {}, policies in table {}", cfg.file.display(), cfg.conns.len(), cfg.daemon.tun, cfg.daemon.route_table);
            for c in &cfg.conns {
                for s in c.all_selectors() {
                    tracing::info!(target: "config", "policy {}: {s} via {} <-> {} ({}, {})", c.name, c.local_addr, c.remote_addr, c.esp, if c.encap == Encap::Udp { "udp/4500" } else { "esp" });
                }
            }
            // The stats file appears once the data plane runs (its sockets
            // open): what `lab up` waits for, as the policy rules come first.
            let ike_counters = ike.counters.clone();
            if let Some(p) = &opts.stats_file {
                write_stats(p, &plane.stats, &ike_counters);
            }
            let code = loop {
                match wait_for_signal(&sigs, Duration::from_secs(1)) {
                    Some(libc::SIGHUP) => reload_on_sighup(&requests),
                    Some(sig) => {
                        tracing::info!(target: "config", "signal {sig}: shutting down (routes to the remote selectors stay unreachable until `ikeda down -c`)");
                        break 0;
                    }
                    None => {}
                }
                if let Some(p) = &opts.stats_file {
                    write_stats(p, &plane.stats, &ike_counters);
                }
                if !plane.is_running() {
                    tracing::error!(target: "esp", "a data plane thread stopped; shutting down");
                    break 1;
                }
                if !ike.is_running() {
                    tracing::error!(target: "ike", "the control plane thread stopped; shutting down");
                    break 1;
                }
            };
            // No more requests; then IKE: its DELETEs still go out through
            // the data plane's socket.
            drop(server);
            ike.stop();
            let stats = plane.stats.clone();
            plane.stop();
            if let Some(p) = &opts.stats_file {
                write_stats(p, &stats, &ike_counters);
            }
            drop(os);
            drop(tun);
            code
        }
    }
}

struct Started {
    plane: DataPlane,
    os: Arc<Mutex<OsState>>,
    tun: Arc<Tun>,
    ike: crate::ike::IkeThread,
    server: crate::control::Server,
    /// To the control plane thread, as the control socket's requests go.
    requests: std::sync::mpsc::SyncSender<crate::control::ControlMsg>,
}

/// SIGHUP: the control socket's `reload`, answered by the control plane
/// thread (the daemon keeps running whatever the answer).
fn reload_on_sighup(requests: &std::sync::mpsc::SyncSender<crate::control::ControlMsg>) {
    tracing::info!(target: "config", "SIGHUP: reloading the configuration");
    let (tx, rx) = std::sync::mpsc::channel();
    let msg = crate::control::ControlMsg {
        command: crate::control::Command::Reload,
        reply: tx,
    };
    if requests.send(msg).is_err() {
        tracing::error!(target: "config", "SIGHUP: the control plane thread is gone, no reload");
        return;
    }
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(r) if r.ok => {}
        Ok(r) => tracing::error!(target: "config", "SIGHUP: reload refused: {}", r.error.unwrap_or_default()),
        Err(_) => tracing::error!(target: "config", "SIGHUP: no answer to the reload within 20 s"),
    }
}

fn start(cfg: &Config, opts: &RunOptions) -> Result<Started, String> {
    for w in &cfg.warnings {
        tracing::warn!(target: "config", "{w}");
    }
    for c in &cfg.conns {
        for w in c.ike.iter().flat_map(|i| i.warnings.iter()) {
            tracing::warn!(target: "config", "{}: {w}", c.name);
        }
    }
    let seq_store = SeqStore::new(&cfg.daemon.state_dir);
    let ((mut outbound, mut names, inbound), mut seqs) = build_sas(cfg, &seq_store)?;
    // Manual connections hold the first slots, in config order.
    let mut manual = Vec::new();
    for (slot, seq) in seqs.drain(..).enumerate() {
        let (Some(Some(o)), Some((name, i))) = (outbound.sas.get(slot), inbound.get(slot)) else {
            continue;
        };
        let c = cfg.conns.iter().find(|c| c.name == *name);
        manual.push(crate::ike::ManualSlot {
            name: name.clone(),
            slot,
            spi_in: i.spi,
            spi_out: o.spi,
            selectors: c.map(|c| c.selectors.clone()).unwrap_or_default(),
            out_stats: o.stats.clone(),
            seq,
            seq_failing: false,
        });
    }
    // IKE connections get an empty outbound slot each; their policies point
    // at it, so traffic is counted as `no_sa` until the CHILD SA is up.
    let mut ike_conns = Vec::new();
    let mut slots = Vec::new();
    for c in &cfg.conns {
        let Some(spec) = crate::ike::conn_spec(c) else { continue };
        // IKEv1: a slot per selector pair (a Quick Mode each).
        for s in crate::ike::conn_slots(c, &spec, outbound.sas.len()) {
            outbound.sas.push(None);
            names.push(c.name.clone());
            for sel in &s.configured {
                outbound.spd.policies.push(Policy::new(
                    c.name.clone(),
                    sel.clone(),
                    PolicyAction::Protect { sa: s.slot },
                ));
            }
            slots.push(s);
        }
        ike_conns.push((
            spec,
            c.ike
                .as_ref()
                .map_or(crate::config::StartAction::None, |i| i.start_action),
        ));
    }
    let mut sock500: Vec<std::net::UdpSocket> = Vec::new();
    for (spec, _) in &ike_conns {
        if !sock500
            .iter()
            .any(|s| s.local_addr().is_ok_and(|a| a.ip() == spec.local))
        {
            let a = SocketAddr::new(spec.local, ikeda_ike::ikev2::IKE_PORT);
            sock500.push(std::net::UdpSocket::bind(a).map_err(|e| format!("IKE socket on {a}: {e}"))?);
        }
    }
    let keys = match &cfg.daemon.key_export {
        Some(dir) => {
            let k = crate::keys::KeyExport::open(dir)?;
            tracing::warn!(target: "config", "key export is ON: the keys of every SA are written to {} (Wireshark: WIRESHARK_CONFIG_DIR={})", dir.display(), dir.display());
            Some(k)
        }
        None => None,
    };
    let hub = Arc::new(crate::control::EventHub::default());
    let (req_tx, req_rx) = std::sync::mpsc::sync_channel(crate::control::CONTROL_QUEUE);
    let server = crate::control::Server::start(&cfg.daemon.control_socket, req_tx.clone(), hub.clone())?;
    let tun = open_tun(&cfg.daemon.tun, cfg.daemon.offload)?;
    tun.set_mtu(cfg.daemon.mtu)
        .map_err(|e| format!("MTU {} on {}: {e}", cfg.daemon.mtu, cfg.daemon.tun))?;
    tun.set_up()
        .map_err(|e| format!("bringing {} up: {e}", cfg.daemon.tun))?;
    let ip = IpRoute2::new();
    // TUN drops (does not push back) when its queue is full; a TCP burst
    // larger than the default 500 packets would be lost before we read it.
    ip.run(["link", "set", cfg.daemon.tun.as_str(), "txqueuelen", "4096"])
        .map_err(|e| format!("txqueuelen on {}: {e}", cfg.daemon.tun))?;
    // Decrypted packets enter through the TUN device; their reverse path
    // is the tunnel too (our rules), but loose mode avoids surprises with
    // asymmetric selectors.
    let _ = ikeda_sys::sysctl_set(&format!("net.ipv4.conf.{}.rp_filter", cfg.daemon.tun), "2");
    let mut os = OsState::adopt(ip, cfg.daemon.route_table, &cfg.daemon.tun)?;
    sync_routes(cfg, &mut os)?;
    let sockets = open_sockets(cfg)?;
    let sock4500: Vec<_> = sockets.iter().filter(|s| s.encap == Encap::Udp).cloned().collect();
    let tun = Arc::new(tun);
    let (ike_tx, ike_rx) = crate::dataplane::ike_handoff();
    let ike_tx = (!ike_conns.is_empty()).then_some(ike_tx);
    let (acq_tx, acq_rx) = crate::dataplane::acquire_channel();
    let acq_tx = (!ike_conns.is_empty()).then_some(acq_tx);
    let plane = DataPlane::start(
        tun.clone(),
        sockets,
        outbound,
        inbound,
        names,
        cfg.daemon.mtu as usize,
        ike_tx,
        acq_tx,
    )
    .map_err(|e| format!("starting the data plane: {e}"))?;
    let os = Arc::new(Mutex::new(os));
    let setup = crate::ike::IkeSetup {
        conns: ike_conns,
        slots,
        manual,
        seq_store,
        sock500,
        sock4500,
        from_plane: ike_rx,
        acquires: acq_rx,
        retransmit: ikeda_ike::RetransmitPolicy {
            timeout: Duration::from_millis(cfg.daemon.retransmit.0),
            base: cfg.daemon.retransmit.1,
            tries: cfg.daemon.retransmit.2,
        },
        control: plane.control.clone(),
        requests: req_rx,
        hub,
        keys,
        config: cfg.clone(),
        opts: opts.clone(),
        os: os.clone(),
    };
    let ike = match crate::ike::start(setup, Arc::new(std::sync::atomic::AtomicBool::new(false))) {
        Ok(t) => t,
        Err(e) => {
            plane.stop();
            return Err(format!("starting IKE: {e}"));
        }
    };
    Ok(Started {
        plane,
        os,
        tun,
        ike,
        server,
        requests: req_tx,
    })
}

/// The TUN device, with segmentation offload when asked for and the kernel
/// agrees (`IFF_VNET_HDR`, `TUNSETOFFLOAD`); otherwise one packet per read,
/// as before, with a warning saying why.
fn open_tun(name: &str, offload: bool) -> Result<Tun, String> {
    if offload {
        match Tun::open_offload(name) {
            Ok(t) => {
                tracing::info!(target: "esp", "TUN {}: segmentation offload on (IFF_VNET_HDR)", t.name());
                return Ok(t);
            }
            Err(e) => {
                tracing::warn!(target: "esp", "TUN {name}: no segmentation offload ({e}); one packet per read")
            }
        }
    }
    Tun::open(name).map_err(|e| format!("TUN device {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
