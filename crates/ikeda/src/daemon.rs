//! `ikeda run`: the gateway daemon. Reads the config, creates the TUN
//! device, installs routes for the remote selectors, runs the data plane,
//! and on SIGTERM/SIGINT removes everything it added.
//!
//! Routing: every remote selector gets a route through the TUN device in
//! the daemon's own table, and a policy rule sends traffic there: `to
//! REMOTE` in general, or `from LOCAL to REMOTE` when REMOTE contains the
//! peer gateway's outer address (the "net <-> gateway" case), so that the
//! gateways' own ESP keeps its normal route.

use crate::config::{Config, ConnConfig};
use crate::dataplane::{DataPlane, NetSocket, StatsView};
use ikeda_esp::{Encap, InboundSa, Outbound, OutboundSa, Policy, PolicyAction, SaParams, Spd};
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

/// The data plane state a config describes: SPD, outbound and inbound SAs.
/// The outbound half, the connection name of each outbound SA, and the
/// inbound SAs with their connection names.
pub type BuiltSas = (Outbound, Vec<String>, Vec<(String, InboundSa)>);

pub fn build_sas(cfg: &Config) -> Result<BuiltSas, String> {
    let mut policies = Vec::new();
    let mut out = Vec::new();
    let mut names = Vec::new();
    let mut inb = Vec::new();
    for c in &cfg.conns {
        let Some((o, i)) = sa_params(c) else { continue };
        let idx = out.len();
        out.push(Some(
            OutboundSa::new(&o).map_err(|e| format!("{}: outbound SA: {e}", c.name))?,
        ));
        names.push(c.name.clone());
        inb.push((
            c.name.clone(),
            InboundSa::new(&i).map_err(|e| format!("{}: inbound SA: {e}", c.name))?,
        ));
        for s in &c.selectors {
            policies.push(Policy::new(
                c.name.clone(),
                s.clone(),
                PolicyAction::Protect { sa: idx },
            ));
        }
    }
    Ok((Outbound::new(Spd::new(policies), out), names, inb))
}

/// A route or rule we added, to be removed on the way out.
enum Added {
    Rule { from: Option<String>, to: String },
}

/// OS state the daemon created; undone on drop, in reverse order, so that
/// a failed start leaves nothing behind.
pub struct OsState {
    ip: IpRoute2,
    table: u32,
    added: Vec<Added>,
    /// Routes in our table (on the TUN device).
    routes: Vec<String>,
    dev: String,
}

impl Drop for OsState {
    fn drop(&mut self) {
        for a in self.added.drain(..).rev() {
            match a {
                Added::Rule { from, to } => {
                    if let Err(e) = self.ip.del_rule(from.as_deref(), &to, self.table, Some(RULE_PREF)) {
                        tracing::warn!(target: "config", "removing rule to {to}: {e}");
                    }
                }
            }
        }
        // Routes live on the TUN device and vanish with it; flush the table
        // anyway in case the device outlives us.
        let _ = self.ip.run(["route", "flush", "table", &self.table.to_string()]);
    }
}

/// Remove rules a crashed earlier run left pointing at our table.
fn remove_stale_rules(ip: &IpRoute2, table: u32) {
    for _ in 0..1024 {
        if ip
            .run([
                "rule",
                "del",
                "pref",
                &RULE_PREF.to_string(),
                "table",
                &table.to_string(),
            ])
            .is_err()
        {
            break;
        }
    }
}

/// The routes and policy rules a config needs: routes (CIDR, source hint)
/// and rules (from, to).
type Wanted = (Vec<(String, Option<IpAddr>)>, Vec<(Option<String>, String)>);

fn wanted_routes(cfg: &Config) -> Wanted {
    let mut routes: Vec<(String, Option<IpAddr>)> = Vec::new();
    let mut rules: Vec<(Option<String>, String)> = Vec::new();
    for c in &cfg.conns {
        for s in &c.selectors {
            // Source hint: a local selector that is one address (gateway <-> net).
            let src = s
                .local
                .prefix_len()
                .filter(|l| *l == 32 || *l == 128)
                .map(|_| s.local.start);
            for cidr in s.remote.to_cidrs() {
                if !routes.iter().any(|r| r.0 == cidr) {
                    routes.push((cidr.clone(), src));
                }
                let froms: Vec<Option<String>> = if s.remote.contains(c.remote_addr) {
                    s.local.to_cidrs().into_iter().map(Some).collect()
                } else {
                    vec![None]
                };
                for from in froms {
                    if !rules.iter().any(|r| r.0 == from && r.1 == cidr) {
                        rules.push((from, cidr.clone()));
                    }
                }
            }
        }
    }
    (routes, rules)
}

/// Make the routes and rules in place what `cfg` needs: add what is
/// missing, remove what no connection needs any more (a reload).
pub fn sync_routes(cfg: &Config, os: &mut OsState) -> Result<(), String> {
    let (routes, rules) = wanted_routes(cfg);
    let dev = os.dev.clone();
    for (cidr, src) in &routes {
        if !os.routes.contains(cidr) {
            os.ip
                .replace_route(cidr, &dev, Some(os.table), *src)
                .map_err(|e| format!("route {cidr} via {dev}: {e}"))?;
            os.routes.push(cidr.clone());
        }
    }
    for (from, to) in &rules {
        let exists = os
            .added
            .iter()
            .any(|Added::Rule { from: f, to: t }| f == from && t == to);
        if !exists {
            os.ip
                .add_rule(from.as_deref(), to, os.table, Some(RULE_PREF))
                .map_err(|e| format!("rule to {to}: {e}"))?;
            os.added.push(Added::Rule {
                from: from.clone(),
                to: to.clone(),
            });
        }
    }
    let (ip, table) = (&os.ip, os.table);
    os.added.retain(|Added::Rule { from, to }| {
        if rules.iter().any(|r| &r.0 == from && &r.1 == to) {
            return true;
        }
        if let Err(e) = ip.del_rule(from.as_deref(), to, table, Some(RULE_PREF)) {
            tracing::warn!(target: "config", "removing rule to {to}: {e}");
        }
        false
    });
    os.routes.retain(|cidr| {
        if routes.iter().any(|r| &r.0 == cidr) {
            return true;
        }
        let _ = ip.run(["route", "del", cidr.as_str(), "table", &table.to_string()]);
        false
    });
    Ok(())
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
}

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
                let s = UdpSocket::bind(SocketAddr::new(local, port))
                    .map_err(|e| format!("UDP socket on {local}:{port}: {e}"))?;
                let _ = s.set_buffer_sizes(ikeda_sys::DEFAULT_SOCKET_BUFFER, ikeda_sys::DEFAULT_SOCKET_BUFFER);
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

/// Block the termination signals in this thread and every thread it
/// starts afterwards, so that only `wait_for_signal` sees them.
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

fn write_stats(path: &Path, stats: &StatsView) {
    let tmp = path.with_extension("tmp");
    if let Ok(j) = serde_json::to_vec_pretty(&stats.snapshot()) {
        if std::fs::write(&tmp, j).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
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
            } = st;
            tracing::info!(target: "config", "{}: {} connection(s) up on {}, policies in table {}", cfg.file.display(), cfg.conns.len(), cfg.daemon.tun, cfg.daemon.route_table);
            for c in &cfg.conns {
                for s in &c.selectors {
                    tracing::info!(target: "config", "policy {}: {s} via {} <-> {} ({}, {})", c.name, c.local_addr, c.remote_addr, c.esp, if c.encap == Encap::Udp { "udp/4500" } else { "esp" });
                }
            }
            let code = loop {
                if let Some(sig) = wait_for_signal(&sigs, Duration::from_secs(1)) {
                    tracing::info!(target: "config", "signal {sig}: shutting down");
                    break 0;
                }
                if let Some(p) = &opts.stats_file {
                    write_stats(p, &plane.stats);
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
                write_stats(p, &stats);
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
}

fn start(cfg: &Config, opts: &RunOptions) -> Result<Started, String> {
    for c in &cfg.conns {
        for w in c.ike.iter().flat_map(|i| i.warnings.iter()) {
            tracing::warn!(target: "config", "{}: {w}", c.name);
        }
    }
    let (mut outbound, mut names, inbound) = build_sas(cfg)?;
    // Manual connections hold the first slots, in config order.
    let mut manual = Vec::new();
    for c in &cfg.conns {
        if let Some((o, i)) = sa_params(c) {
            let slot = names.iter().position(|n| *n == c.name).unwrap_or(0);
            manual.push(crate::ike::ManualSlot {
                name: c.name.clone(),
                slot,
                spi_in: i.spi,
                spi_out: o.spi,
                selectors: c.selectors.clone(),
            });
        }
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
    let server = crate::control::Server::start(&cfg.daemon.control_socket, req_tx, hub.clone())?;
    let tun = Tun::open(&cfg.daemon.tun).map_err(|e| format!("TUN device {}: {e}", cfg.daemon.tun))?;
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
    remove_stale_rules(&ip, cfg.daemon.route_table);
    let mut os = OsState {
        ip,
        table: cfg.daemon.route_table,
        added: Vec::new(),
        routes: Vec::new(),
        dev: cfg.daemon.tun.clone(),
    };
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
    })
}
