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

use crate::config::{Config, RunOptions};
use crate::dataplane::{DynIo, NetSocket, StatsView};
use crate::ike::IkeSocket;
use crate::plan::{RouteSync, Wanted, FALLBACK_METRIC, RULE_PREF};
use ikeda_esp::Encap;
use ikeda_sys::route::Rule;
use ikeda_sys::{IpRoute2, RawEspSocket, Tun, UdpSocket};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

impl RouteSync for OsState {
    /// Make the routes and rules in place what `want` says: the fallback
    /// first (a rule must never point at a table without it: the lookup
    /// would fall through to `main`), then rules, then the TUN routes; then
    /// remove what is no longer wanted (a reload, a teardown).
    fn sync(&mut self, want: &Wanted) -> Result<(), String> {
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

/// Opens the data plane's sockets; with `daemon.offload`, UDP ones send
/// trains with `UDP_SEGMENT` and receive them with `UDP_GRO` where the
/// kernel has them.
fn open_sockets(cfg: &Config) -> Result<Vec<Arc<NetSocket<DynIo>>>, String> {
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
                Arc::new(s) as DynIo
            }
            Encap::Esp => {
                let s = RawEspSocket::bind(local).map_err(|e| format!("raw ESP socket on {local}: {e}"))?;
                let _ = s.set_buffer_sizes(ikeda_sys::DEFAULT_SOCKET_BUFFER, ikeda_sys::DEFAULT_SOCKET_BUFFER);
                Arc::new(s) as DynIo
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

/// Run the daemon until a termination signal. Returns the exit code.
pub fn run(opts: RunOptions) -> i32 {
    let cfg = match crate::config::load(&opts) {
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
                gw,
                os,
                tun,
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
            let ike_counters = gw.ike.counters.clone();
            if let Some(p) = &opts.stats_file {
                write_stats(p, &gw.plane.stats, &ike_counters);
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
                    write_stats(p, &gw.plane.stats, &ike_counters);
                }
                if !gw.plane.is_running() {
                    tracing::error!(target: "esp", "a data plane thread stopped; shutting down");
                    break 1;
                }
                if !gw.ike.is_running() {
                    tracing::error!(target: "ike", "the control plane thread stopped; shutting down");
                    break 1;
                }
            };
            // No more requests; then IKE: its DELETEs still go out through
            // the data plane's socket.
            drop(server);
            let stats = gw.plane.stats.clone();
            gw.stop();
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
    gw: crate::gateway::Gateway,
    os: Arc<Mutex<OsState>>,
    tun: Arc<Tun>,
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
    let hub = Arc::new(crate::control::EventHub::default());
    let (req_tx, req_rx) = std::sync::mpsc::sync_channel(crate::control::CONTROL_QUEUE);
    let server = crate::control::Server::start(&cfg.daemon.control_socket, req_tx.clone(), hub.clone())?;
    // IKE on UDP 500, one socket per local address of an IKE connection.
    let mut sock500: Vec<IkeSocket> = Vec::new();
    for c in cfg.conns.iter().filter(|c| c.ike.is_some()) {
        let a = SocketAddr::new(c.local_addr, ikeda_ike::ikev2::IKE_PORT);
        if !sock500.iter().any(|s| s.local == a) {
            let s = UdpSocket::bind(a).map_err(|e| format!("IKE socket on {a}: {e}"))?;
            sock500.push(IkeSocket {
                local: a,
                io: Arc::new(s),
            });
        }
    }
    let queues = open_tun(&cfg.daemon.tun, cfg.daemon.offload, cfg.daemon.tun_queues)?;
    let tun = &queues[0];
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
    // The rules and fallback before anything else can fail (a socket that
    // does not bind): a daemon that cannot start fails closed too.
    // `gateway::start` syncs again, which then changes nothing.
    os.sync(&Wanted::of(cfg))?;
    let os = Arc::new(Mutex::new(os));
    let queues: Vec<Arc<Tun>> = queues.into_iter().map(Arc::new).collect();
    let tun = queues[0].clone();
    let io = crate::gateway::GatewayIo {
        tun: queues,
        sockets: open_sockets(cfg)?,
        sock500,
        routes: os.clone(),
    };
    let gw = crate::gateway::start(cfg, opts, io, req_rx, hub)?;
    Ok(Started {
        gw,
        os,
        tun,
        server,
        requests: req_tx,
    })
}

/// The TUN device's queues, one TX thread each: `queues` of them, with
/// segmentation offload when asked for and the kernel agrees
/// (`IFF_VNET_HDR`, `TUNSETOFFLOAD`). Where the kernel refuses, one queue
/// (a device that exists without `IFF_MULTI_QUEUE`), then one packet per
/// read, with a warning saying why.
fn open_tun(name: &str, offload: bool, queues: usize) -> Result<Vec<Tun>, String> {
    let mut attempts = vec![(queues, offload)];
    if queues > 1 {
        attempts.push((1, offload));
    }
    if offload {
        attempts.push((1, false));
    }
    let mut refused = Vec::new();
    for (q, off) in attempts {
        let how = format!("{q} queue(s){}", if off { " with segmentation offload" } else { "" });
        match Tun::open_queues(name, q, off) {
            Ok(t) => {
                if !refused.is_empty() {
                    tracing::warn!(target: "esp", "TUN {name}: {}; opened with {how}", refused.join("; "));
                }
                let offload = if off {
                    "on (IFF_VNET_HDR)"
                } else {
                    "off: one packet per read"
                };
                tracing::info!(target: "esp", "TUN {}: {q} queue(s), one TX thread each; segmentation offload {offload}", t[0].name());
                return Ok(t);
            }
            Err(e) => refused.push(format!("{how} refused ({e})")),
        }
    }
    Err(format!("TUN device {name}: {}", refused.join("; ")))
}
