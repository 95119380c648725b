//! The daemon's control plane: a thread that owns the IKE sockets, the
//! clock and the RNG, feeds the sans-IO engine, turns its events into data
//! plane changes, log lines, the event stream and (when switched on) key
//! export, and answers the control socket's requests from the same state,
//! with the data plane's own counters.
//!
//! IKE on UDP 500 has a socket of its own here; IKE on 4500 shares the
//! socket with UDP-encapsulated ESP (RFC 3948): the data plane's receive
//! thread hands those messages over, and we send through the same socket
//! with the non-ESP marker in front.

use crate::config::{Config, ConnConfig, StartAction};
use crate::control::{Command, ControlMsg, EventHub, Response};
use crate::dataplane::{Control, DynIo, IkeDatagram, NetSocket};
use crate::install::{Installs, PlaneCmd};
use crate::keys::KeyExport;
use crate::plan::{conn_slots, connection, packet_rekey_limit, ConfigDiff, ConnSlot, ManualSlot, RouteSync, Wanted};
use crate::show::{self, ChildSaOut, ConnState, ConnStatus, Direction, Dpd, IkeSaOut, PolicyOut};
use ikeda_crypto::ike::SystemRng;
use ikeda_esp::{Encap, Policy, PolicyAction, Spd};
use ikeda_ike::ikev2::{ChildSaInfo, Event, NAT_T_PORT};
use ikeda_ike::{Engine, Millis};
use ikeda_sys::DatagramIo;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct IkeThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    /// The engines' counters, refreshed every second, for the stats file.
    pub counters: Arc<Mutex<Vec<crate::show::CounterOut>>>,
}

impl IkeThread {
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }

    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }
}

/// The IKE socket on UDP 500 of one local address (the real one, or a
/// test's fake).
pub struct IkeSocket {
    pub local: SocketAddr,
    pub io: DynIo,
}

/// IKE datagrams taken from a UDP 500 socket per turn of the loop.
const IKE_BATCH: usize = 16;

/// The longest the IKE thread waits on UDP 500 before it looks at its
/// other inputs (the data plane's hand-off, acquires, control requests).
const IDLE_WAIT: Duration = Duration::from_millis(10);

pub struct IkeSetup {
    /// Where manual SAs reserve their sequence numbers.
    pub seq_store: crate::seqstate::SeqStore,
    pub sock500: Vec<IkeSocket>,
    pub sock4500: Vec<Arc<NetSocket<DynIo>>>,
    /// The data plane's sockets (encapsulation, local address): what a
    /// connection needs to be served.
    pub plane_sockets: Vec<(Encap, IpAddr)>,
    pub from_plane: Receiver<IkeDatagram>,
    /// Slots whose trap policy saw a packet (start_action = trap).
    pub acquires: Receiver<usize>,
    pub control: Control,
    /// Requests from the control socket, and where events go.
    pub requests: Receiver<ControlMsg>,
    pub hub: Arc<EventHub>,
    pub keys: Option<KeyExport>,
    /// The configuration to run; applied as a reload is, from nothing.
    pub config: Config,
    /// The command line, whose overrides a reload keeps.
    pub opts: crate::config::RunOptions,
    /// What makes the routes and rules in the system those of the config.
    pub os: Arc<Mutex<dyn RouteSync>>,
}

/// How long a CHILD SA counts as up without traffic both ways.
const FRESH_MS: u64 = 60_000;

struct Runtime {
    engine: Engine,
    started: Instant,
    /// The IKE connections' data plane slots and the CHILD SAs in them.
    children: Installs,
    manual: Vec<ManualSlot>,
    seq_store: crate::seqstate::SeqStore,
    sock500: Vec<IkeSocket>,
    sock4500: Vec<Arc<NetSocket<DynIo>>>,
    plane_sockets: Vec<(Encap, IpAddr)>,
    control: Control,
    hub: Arc<EventHub>,
    keys: Option<KeyExport>,
    config: Config,
    opts: crate::config::RunOptions,
    os: Arc<Mutex<dyn RouteSync>>,
    start_actions: HashMap<String, StartAction>,
    /// The last failure per connection: (Unix ms, in plain words).
    last_failure: HashMap<String, (u64, String, ikeda_ike::Fault)>,
    /// The SPD last handed to the data plane (its hit counters live on).
    policies: Vec<Policy>,
    next_slot: usize,
    /// When we heard each peer relative to when we sent to it: the
    /// stateful-firewall hint of `status`.
    path: crate::pathwatch::PathWatch,
}

/// A CHILD SA sends but hears nothing: how long its inbound SA has been
/// silent (`Duration::MAX`: it never carried a packet) when the outbound
/// one carried a packet within the last two seconds and the inbound one
/// none in that time; `None` otherwise. Times are the data plane's
/// (`dataplane::now_ms`), 0 for never; the engine decides whether the
/// silence is long enough to ask the peer.
fn one_way_silence(last_in: u64, last_out: u64, now_ms: u64) -> Option<Duration> {
    const RECENT_MS: u64 = 2000;
    if last_out == 0 || now_ms.saturating_sub(last_out) > RECENT_MS {
        return None;
    }
    if last_in == 0 {
        return Some(Duration::MAX);
    }
    let silent = now_ms.saturating_sub(last_in);
    (silent > RECENT_MS).then(|| Duration::from_millis(silent))
}

fn secs(ms: u64) -> u64 {
    ms / 1000
}

impl Runtime {
    fn now(&self) -> Millis {
        Millis(self.started.elapsed().as_millis() as u64)
    }

    /// Seconds from now until an engine time (0 when past).
    fn until(&self, t: Option<Millis>) -> Option<u64> {
        let now = self.now();
        t.map(|t| secs(t.0.saturating_sub(now.0)))
    }

    fn since(&self, t: Millis) -> u64 {
        secs(self.now().0.saturating_sub(t.0))
    }

    fn spd(&mut self) -> Spd {
        let mut p: Vec<Policy> = Vec::new();
        for m in &self.manual {
            for sel in &m.selectors {
                p.push(Policy::new(
                    m.name.clone(),
                    sel.clone(),
                    PolicyAction::Protect { sa: m.slot },
                ));
            }
        }
        for s in &self.children.slots {
            let sels = s.negotiated.as_ref().unwrap_or(&s.configured);
            for sel in sels {
                p.push(Policy::new(
                    s.name.clone(),
                    sel.clone(),
                    PolicyAction::Protect { sa: s.slot },
                ));
            }
        }
        // Keep the hit counter of an entry that stays.
        for n in &mut p {
            if let Some(o) = self
                .policies
                .iter()
                .find(|o| o.name == n.name && o.selector == n.selector && o.action == n.action)
            {
                n.hits = o.hits.clone();
            }
        }
        self.policies = p.clone();
        Spd::new(p)
    }

    fn push_spd(&mut self) {
        let spd = self.spd();
        let _ = self.control.set_spd(spd);
    }

    /// Act on the engine's events, then send its datagrams: in that order,
    /// so a CHILD SA's inbound half is in the data plane before the
    /// CREATE_CHILD_SA response that lets the peer send on it leaves
    /// (RFC 7296 §2.8 make-before-break; strongSwan sends on a rekeyed SA
    /// the moment it has our response).
    fn pump(&mut self) {
        self.events();
        self.flush();
    }

    fn flush(&mut self) {
        while let Some(t) = self.engine.poll_transmit() {
            tracing::trace!(target: "ike", "{} bytes {} -> {}", t.data.len(), t.local, t.remote);
            let now = self.now().0;
            self.path.sent(t.remote, t.local.port(), now);
            let r = if t.local.port() == NAT_T_PORT {
                // RFC 3948 §2.2: IKE on 4500 carries the non-ESP marker; a
                // NAT-keepalive (§2.3) is the single octet 0xFF, unmarked.
                let mut d = Vec::with_capacity(t.data.len() + 4);
                if t.data != ikeda_ike::ikev2::KEEPALIVE {
                    d.extend_from_slice(&[0, 0, 0, 0]);
                }
                d.extend_from_slice(&t.data);
                match self.sock4500.iter().find(|s| s.local == t.local.ip()) {
                    Some(s) => s.io.send_batch(&[&d], &[t.remote]).map(|_| ()),
                    None => Err(std::io::Error::other("no UDP 4500 socket")),
                }
            } else {
                match self.sock500.iter().find(|s| s.local.ip() == t.local.ip()) {
                    Some(s) => s.io.send_batch(&[&t.data], &[t.remote]).map(|_| ()),
                    None => Err(std::io::Error::other("no UDP 500 socket")),
                }
            };
            if let Err(e) = r {
                tracing::warn!(target: "ike", "sending to {}: {e}", t.remote);
            }
        }
    }

    fn events(&mut self) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::Log { conn, line } => {
                    tracing::info!(target: "ike", "{conn}: {line}");
                    self.hub.publish(&conn, "exchange", line);
                }
                Event::IkeSaUp {
                    conn,
                    spi_i,
                    spi_r,
                    initiator,
                    suite,
                    local,
                    remote,
                    nat,
                } => {
                    let line = format!(
                        "IKE_SA established {spi_i:016x}_i {spi_r:016x}_r ({}) {local} <-> {remote} {suite}{}",
                        if initiator { "initiator" } else { "responder" },
                        if nat { ", NAT detected: UDP encapsulation" } else { "" }
                    );
                    tracing::info!(target: "ike", "{conn}: {line}");
                    self.hub.publish(&conn, "ike-up", line);
                }
                Event::IkeSaDown {
                    conn,
                    spi_i,
                    spi_r,
                    reason,
                } => {
                    tracing::info!(target: "ike", "{conn}: IKE_SA down ({reason})");
                    self.hub.publish(
                        &conn,
                        "ike-down",
                        format!("IKE_SA {spi_i:016x}_i {spi_r:016x}_r down ({reason})"),
                    );
                }
                Event::Failed { conn, why } => {
                    tracing::error!(target: "ike", "{conn}: {why}");
                    self.last_failure
                        .insert(conn.clone(), (crate::dataplane::now_ms(), why.to_string(), why.fault()));
                    self.hub.publish(&conn, "failed", why.to_string());
                }
                Event::IkeSaKeys(k) => {
                    // Keys go to the export files only, never to a log line.
                    tracing::debug!(target: "ike", "{}: IKE_SA {:016x}_i {:016x}_r keyed", k.conn, k.spi_i, k.spi_r);
                    if let Some(x) = self.keys.as_mut() {
                        x.ike_sa(&k);
                    }
                }
                Event::Ikev1Keys(k) => {
                    // Keys go to the export files only, never to a log line.
                    // Emitted twice per SA: keyed (Main Mode 5's IV), then
                    // established (with phase 1's last CBC block).
                    let what = if k.phase1_last_block.is_some() {
                        "established"
                    } else {
                        "keyed"
                    };
                    tracing::debug!(target: "ike", "{}: ISAKMP SA {:016x}_i {:016x}_r {what}", k.conn, k.icookie, k.rcookie);
                    if let Some(x) = self.keys.as_mut() {
                        x.ikev1_sa(&k);
                    }
                }
                Event::ChildSaUp(info) => self.install(info),
                Event::ChildSaActivate { conn, spi_in } => self.activate(&conn, spi_in),
                Event::ChildSaDown { conn, spi_in, spi_out } => {
                    tracing::info!(target: "ike", "{conn}: CHILD_SA {spi_in:08x}_i {spi_out:08x}_o removed");
                    self.hub.publish(
                        &conn,
                        "child-down",
                        format!("CHILD_SA {spi_in:08x}_i {spi_out:08x}_o removed"),
                    );
                    let now = self.now();
                    let cmds = self.children.child_down(&conn, spi_in, now);
                    self.apply_cmds(cmds);
                }
            }
        }
    }

    /// Carry out what `install` decided, in order; a failure is logged
    /// (a socket the SA needs is missing) and the rest still done.
    fn apply_cmds(&mut self, cmds: Vec<PlaneCmd>) {
        for c in cmds {
            let r = match c {
                PlaneCmd::InstallInbound { conn, sa } => self.control.install_inbound(&conn, sa),
                PlaneCmd::SetOutbound { conn, slot, sa } => self.control.set_outbound(&conn, slot, sa),
                PlaneCmd::RemoveInbound(spi) => {
                    self.control.remove_inbound(spi);
                    Ok(())
                }
                PlaneCmd::RestoreOutbound { slot, spi } => {
                    tracing::info!(target: "esp", "the SA sent on is gone: sending on {spi:08x}_o again");
                    self.control.restore_outbound(slot, spi)
                }
                PlaneCmd::DropPrevious { slot } => self.control.drop_previous(slot),
                PlaneCmd::Spd => {
                    self.push_spd();
                    Ok(())
                }
            };
            if let Err(e) = r {
                tracing::error!(target: "esp", "{e}");
            }
        }
    }

    /// Remove the replaced inbound SAs whose grace period is over.
    fn retire_inbound(&mut self) {
        let now = self.now();
        let cmds = self.children.retire_due(now);
        self.apply_cmds(cmds);
    }

    /// Byte lifetimes (RFC 4301 §4.4.2.1): the data plane counts bytes per
    /// SA; past the soft limit rekey, past the hard limit delete.
    fn byte_lifetimes(&mut self) {
        for k in 0..self.children.slots.len() {
            let s = &self.children.slots[k];
            let Some(spi_in) = s.spi_in else { continue };
            if s.bytes_acted == Some(spi_in) {
                continue;
            }
            let Some(&(_, spi_out)) = self.children.installed.get(&spi_in) else {
                continue;
            };
            let rekey_packets = packet_rekey_limit(s.rekey_packets, s.esn);
            if s.rekey_bytes == 0 && s.life_bytes == 0 && rekey_packets == 0 && s.life_packets == 0 {
                continue;
            }
            let count = |dir: &str, spi: u32| self.control.sa_counts(spi, dir).unwrap_or((0, 0));
            let ((bi, pi), (bo, po)) = (count("in", spi_in), count("out", spi_out));
            let (bytes, packets) = (bi.max(bo), pi.max(po));
            let name = s.name.clone();
            let now = self.now();
            let acted = if s.life_bytes != 0 && bytes >= s.life_bytes {
                tracing::info!(target: "ike", "{name}: CHILD_SA {spi_in:08x}_i carried {bytes} bytes: hard limit, deleting");
                self.engine.delete_child_spi(&name, spi_in, now)
            } else if s.life_packets != 0 && packets >= s.life_packets {
                tracing::info!(target: "ike", "{name}: CHILD_SA {spi_in:08x}_i carried {packets} packets: hard limit, deleting");
                self.engine.delete_child_spi(&name, spi_in, now)
            } else if s.rekey_bytes != 0 && bytes >= s.rekey_bytes {
                tracing::info!(target: "ike", "{name}: CHILD_SA {spi_in:08x}_i carried {bytes} bytes: rekeying");
                self.engine.rekey_child_spi(&name, spi_in, now)
            } else if rekey_packets != 0 && packets >= rekey_packets {
                tracing::info!(target: "ike", "{name}: CHILD_SA {spi_in:08x}_i carried {packets} packets: rekeying");
                self.engine.rekey_child_spi(&name, spi_in, now)
            } else {
                false
            };
            if acted {
                self.children.slots[k].bytes_acted = Some(spi_in);
            }
        }
    }

    /// RFC 7296 §2.4: a CHILD SA that sent within the last two seconds while
    /// nothing came in on its inbound pair is reported to its engine, which
    /// checks the peer's liveness once the silence is long enough (a peer
    /// that deleted its SAs without our hearing leaves a black hole
    /// otherwise, even without dead peer detection configured).
    fn one_way_traffic(&mut self) {
        let now_ms = crate::dataplane::now_ms();
        let now = self.now();
        for k in 0..self.children.slots.len() {
            let s = &self.children.slots[k];
            let Some(spi_in) = s.spi_in else { continue };
            let Some(&(_, spi_out)) = self.children.installed.get(&spi_in) else {
                continue;
            };
            // When the SA last carried a packet (data plane clock), 0: never.
            let last = |dir: &str, spi: u32| {
                self.control
                    .sa_stats(spi, dir)
                    .map_or(0, |s| s.last_packet_ms.load(Ordering::Relaxed))
            };
            if let Some(silent) = one_way_silence(last("in", spi_in), last("out", spi_out), now_ms) {
                let name = s.name.clone();
                self.engine.one_way_traffic(&name, spi_in, silent, now);
            }
        }
    }

    /// Start sending on the SA with this inbound SPI.
    fn activate(&mut self, conn: &str, spi_in: u32) {
        let cmds = self.children.activate(conn, spi_in);
        if let Some(PlaneCmd::SetOutbound { sa: Some(o), .. }) = cmds.first() {
            tracing::info!(target: "esp", "{conn}: sending on the rekeyed CHILD SA {:08x}_o now", o.spi);
        }
        self.apply_cmds(cmds);
    }

    fn install(&mut self, info: ChildSaInfo) {
        let done = match self.children.child_up(&info) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(target: "esp", "{}: {e}", info.conn);
                return;
            }
        };
        let (local, remote) = (done.local, done.remote);
        self.apply_cmds(done.cmds);
        // Key export rewrites files: after the SA is in the data plane, since
        // the peer may already be sending on it.
        if let Some(x) = self.keys.as_mut() {
            x.child_sa(&info, local, remote);
        }
        let line = format!(
            "CHILD SA installed: {} in {:08x} out {:08x}, {}{}{}",
            info.algorithm,
            info.spi_in,
            info.spi_out,
            if info.udp_encap {
                "UDP-encapsulated to "
            } else {
                "ESP to "
            },
            remote,
            if info.udp_encap && info.peer_takes_trains {
                // Said because a capture then shows longer bursts.
                " (the peer takes full UDP_SEGMENT trains)"
            } else {
                ""
            }
        );
        tracing::info!(target: "esp", "{}: {line}", info.conn);
        self.hub.publish(&info.conn, "child-up", line);
        self.last_failure.remove(&info.conn);
    }

    // ---- the control socket ------------------------------------------------

    fn answer(&mut self, cmd: Command) -> Response {
        let r = match cmd {
            Command::Status => serde_json::to_value(self.status()).map_err(|e| e.to_string()),
            Command::ShowIke => serde_json::to_value(self.show_ike()).map_err(|e| e.to_string()),
            Command::ShowChild => serde_json::to_value(self.show_child()).map_err(|e| e.to_string()),
            Command::ShowPolicy => serde_json::to_value(self.show_policy()).map_err(|e| e.to_string()),
            Command::ShowCounters => serde_json::to_value(show::counters(&self.engine)).map_err(|e| e.to_string()),
            Command::Up { conn } => self.up(&conn),
            Command::Down { conn } => self.down(&conn),
            Command::Rekey { conn, ike, child } => self.rekey(&conn, ike, child.as_deref()),
            Command::Reload => self.reload(),
            Command::Log { .. } => Err("log is answered by the socket thread".into()),
        };
        match r {
            Ok(v) => Response::ok(v),
            Err(e) => Response::err(e),
        }
    }

    fn up(&mut self, conn: &str) -> Result<serde_json::Value, String> {
        if self.manual.iter().any(|m| m.name == conn) {
            return Err(format!("'{conn}' is manually keyed: its SAs are always installed"));
        }
        if self.engine.conn(conn).is_none() {
            return Err(format!("no connection '{conn}'"));
        }
        if self.engine.is_active(conn) {
            return Err(format!("'{conn}' is already up or connecting (see `ikeda status`)"));
        }
        let now = self.now();
        self.engine.initiate(conn, now)?;
        self.hub.publish(conn, "control", "up: initiating".into());
        Ok(serde_json::json!({"conn": conn, "initiated": true}))
    }

    fn down(&mut self, conn: &str) -> Result<serde_json::Value, String> {
        if self.manual.iter().any(|m| m.name == conn) {
            return Err(format!(
                "'{conn}' is manually keyed: remove it from the config and reload"
            ));
        }
        if self.engine.conn(conn).is_none() {
            return Err(format!("no connection '{conn}'"));
        }
        let now = self.now();
        self.engine.terminate(conn, now)?;
        self.hub.publish(conn, "control", "down: deleting the IKE SA".into());
        Ok(serde_json::json!({"conn": conn, "terminated": true}))
    }

    fn rekey(&mut self, conn: &str, ike: bool, child: Option<&str>) -> Result<serde_json::Value, String> {
        if self.engine.conn(conn).is_none() {
            return Err(format!("no connection '{conn}'"));
        }
        let now = self.now();
        if let Some(name) = child {
            // A `[[conn.child]]`: the SA its slot sends on now.
            let pair = self
                .config
                .conns
                .iter()
                .find(|c| c.name == conn)
                .and_then(|c| c.children.iter().position(|x| x.name == name))
                .ok_or_else(|| format!("'{conn}' has no [[conn.child]] '{name}'"))?
                + 1;
            let spi_in = self
                .children
                .slots
                .iter()
                .find(|s| s.name == conn && s.pair == pair)
                .and_then(|s| s.spi_in)
                .ok_or_else(|| format!("'{conn}/{name}' has no CHILD SA up"))?;
            if !self.engine.rekey_child_spi(conn, spi_in, now) {
                return Err(format!("'{conn}/{name}': CHILD SA {spi_in:08x} cannot be rekeyed now"));
            }
            self.hub
                .publish(conn, "control", format!("rekey: rekeying CHILD SA '{name}'"));
            return Ok(serde_json::json!({"conn": conn, "child": name, "rekey": "CHILD"}));
        }
        self.engine.rekey(conn, ike, now)?;
        let what = if ike { "IKE" } else { "CHILD" };
        self.hub
            .publish(conn, "control", format!("rekey: rekeying the {what} SA"));
        Ok(serde_json::json!({"conn": conn, "rekey": what}))
    }

    fn child_of_slot(&self, s: &ConnSlot) -> Option<(u32, u32)> {
        let spi_in = s.spi_in?;
        self.children.installed.get(&spi_in).map(|(_, o)| (spi_in, *o))
    }

    fn status(&self) -> Vec<ConnStatus> {
        let views = self.control.views();
        let stat = |spi: u32, dir: &str| {
            views
                .iter()
                .find(|v| v.spi == spi && v.direction == dir)
                .map(|v| v.stats.clone())
        };
        let now_ms = crate::dataplane::now_ms();
        let sas = self.engine.ike_sas();
        let mut out = Vec::new();
        for c in &self.config.conns {
            let failure = self.last_failure.get(&c.name);
            let mut st = ConnStatus {
                name: c.name.clone(),
                version: if let Some(i) = &c.ike {
                    format!("IKEv{}", i.version)
                } else {
                    "manual".into()
                },
                state: ConnState::Down,
                detail: String::new(),
                last_failure: failure.map(|f| f.1.clone()),
                last_failure_s_ago: failure.map(|f| secs(now_ms.saturating_sub(f.0))),
                last_failure_fault: failure.map(|f| f.2.as_str().to_owned()),
            };
            // The CHILD SA carrying traffic now, if any: (in, out, installed ms ago).
            let current = if let Some(m) = self.manual.iter().find(|m| m.name == c.name) {
                Some((m.spi_in, m.spi_out, None))
            } else {
                self.children.slots.iter().find(|s| s.name == c.name).and_then(|s| {
                    let (i, o) = self.child_of_slot(s)?;
                    let age = sas
                        .iter()
                        .flat_map(|x| x.children.iter())
                        .find(|ch| ch.spi_in == i)
                        .map(|ch| self.now().0.saturating_sub(ch.installed_at.0));
                    Some((i, o, age))
                })
            };
            if let Some((i, o, age)) = current {
                let (si, so) = (stat(i, "in"), stat(o, "out"));
                let last = |s: &Option<Arc<ikeda_esp::SaStats>>| {
                    s.as_ref()
                        .map(|s| s.last_packet_ms.load(Ordering::Relaxed))
                        .filter(|t| *t != 0)
                };
                let pk =
                    |s: &Option<Arc<ikeda_esp::SaStats>>| s.as_ref().map_or(0, |s| s.packets.load(Ordering::Relaxed));
                let (li, lo) = (last(&si), last(&so));
                let fresh = age.is_some_and(|a| a < FRESH_MS);
                let spis = format!("CHILD SA {i:08x}_i {o:08x}_o");
                if li.is_some() && lo.is_some() {
                    st.state = ConnState::Up;
                    st.detail = format!(
                        "{spis}, {} packets in, {} out, last in {}s ago",
                        pk(&si),
                        pk(&so),
                        secs(now_ms.saturating_sub(li.unwrap_or(0)))
                    );
                } else if fresh || (c.ike.is_none() && li.is_none() && lo.is_none()) {
                    st.state = ConnState::Up;
                    st.detail = format!("{spis}, installed {}s ago, no traffic yet", age.map_or(0, secs));
                } else if li.is_none() && lo.is_none() {
                    // Installed, but nothing to carry: not "up" (no traffic
                    // seen), not broken either.
                    st.state = ConnState::Idle;
                    st.detail = format!(
                        "{spis}: no traffic either way since it was installed {}s ago",
                        age.map_or(0, secs)
                    );
                } else {
                    st.state = ConnState::Stalled;
                    st.detail = match (li, lo) {
                        (None, Some(_)) => format!(
                            "{spis}: sent {} packets but received none: the peer does not send back (its SA, routes or firewall)",
                            pk(&so)
                        ),
                        (Some(_), None) => format!(
                            "{spis}: received {} packets but sent none: no local traffic matches the policies",
                            pk(&si)
                        ),
                        _ => format!("{spis}: no traffic"),
                    };
                }
                out.push(st);
                continue;
            }
            let mine: Vec<_> = sas.iter().filter(|s| s.conn == c.name).collect();
            let connecting = mine.iter().find(|s| s.state == ikeda_ike::ikev2::IkeState::Connecting);
            let established = mine.iter().find(|s| s.state == ikeda_ike::ikev2::IkeState::Established);
            if let Some(s) = connecting {
                st.state = ConnState::Connecting;
                st.detail = match s.pending {
                    Some(x) => format!("{x}, try {} of {}, to {}", s.sends.max(1), s.tries, s.remote),
                    None => format!("answered IKE_SA_INIT from {}, waiting for IKE_AUTH", s.remote),
                };
                // Unanswered so far (a resend went out): what the traffic
                // with the peer says about the firewalls on the path.
                if s.pending.is_some() && s.sends >= 2 {
                    if let Some(h) = self.path.hint(s.remote.ip(), &self.config.file.display().to_string()) {
                        st.detail = format!("{}; {h}", st.detail);
                    }
                }
            } else if let Some(s) = established {
                st.state = ConnState::Down;
                st.detail = format!(
                    "IKE SA {:016x}_i {:016x}_r is up but there is no CHILD SA",
                    s.spi_i, s.spi_r
                );
            } else {
                let action = self.start_actions.get(&c.name).copied().unwrap_or(StartAction::None);
                match (failure, action) {
                    (Some(f), _) => {
                        st.state = ConnState::Down;
                        st.detail = f.1.clone();
                    }
                    (None, StartAction::Trap) => {
                        st.state = ConnState::Waiting;
                        st.detail = "for traffic: the first packet matching its policies brings it up".into();
                    }
                    (None, StartAction::None) => {
                        st.state = ConnState::Waiting;
                        st.detail = "for the peer to initiate (start_action = none); `ikeda up` starts it".into();
                    }
                    (None, StartAction::Start) => {
                        st.state = ConnState::Down;
                        st.detail = "not connected".into();
                    }
                }
            }
            out.push(st);
        }
        out
    }

    fn show_ike(&self) -> Vec<IkeSaOut> {
        self.engine
            .ike_sas()
            .into_iter()
            .map(|s| IkeSaOut {
                conn: s.conn.clone(),
                version: s.version,
                phase: (s.version == 1).then(|| match (s.state, s.pending) {
                    (ikeda_ike::ikev2::IkeState::Connecting, p) => {
                        format!(
                            "phase 1 ({}) in progress",
                            if p == Some(ikeda_ike::Exchange::Aggressive) {
                                "Aggressive Mode"
                            } else {
                                "Main Mode"
                            }
                        )
                    }
                    (_, Some(ikeda_ike::Exchange::QuickMode)) => format!(
                        "phase 1 done; phase 2 (Quick Mode) in progress, {} IPsec SA(s)",
                        s.children.len()
                    ),
                    _ => format!("phase 1 done; phase 2: {} IPsec SA(s)", s.children.len()),
                }),
                local: s.local.to_string(),
                remote: s.remote.to_string(),
                spi_i: format!("{:016x}", s.spi_i),
                spi_r: format!("{:016x}", s.spi_r),
                role: if s.initiator { "initiator" } else { "responder" }.into(),
                state: s.state.as_str().into(),
                algorithms: s.suite.as_ref().map(show::ike_suite_name),
                established_s_ago: s.established_at.map(|t| self.since(t)),
                rekey_in_s: self.until(s.rekey_at),
                expires_in_s: self.until(s.expire_at),
                nat_detected: s.nat,
                behind_nat: s.behind_nat,
                pending: s
                    .pending
                    .map(|p| format!("{p} response (sent {} of {} times)", s.sends, s.tries)),
                dpd: Dpd {
                    supported: s.dpd_supported,
                    delay_s: secs(s.dpd_delay_ms),
                    last_heard_s_ago: self.since(s.last_heard),
                    checking: s.dpd_checking,
                },
                children: s.children.iter().map(|c| format!("{:08x}", c.spi_in)).collect(),
            })
            .collect()
    }

    fn direction(&self, views: &[crate::dataplane::SaView], spi: u32, dir: &str) -> (Direction, u32) {
        let now_ms = crate::dataplane::now_ms();
        let Some(v) = views.iter().find(|v| v.spi == spi && v.direction == dir) else {
            return (
                Direction {
                    spi: format!("{spi:08x}"),
                    ..Default::default()
                },
                0,
            );
        };
        let st = &v.stats;
        let last = st.last_packet_ms.load(Ordering::Relaxed);
        (
            Direction {
                spi: format!("{spi:08x}"),
                bytes: st.bytes.load(Ordering::Relaxed),
                packets: st.packets.load(Ordering::Relaxed),
                last_packet_s_ago: (last != 0).then(|| secs(now_ms.saturating_sub(last))),
                seq: st.seq.load(Ordering::Relaxed),
                drops: st
                    .drops
                    .nonzero()
                    .into_iter()
                    .map(|(k, n)| (k.to_string(), n))
                    .collect(),
                ipcomp: crate::dataplane::ipcomp_snapshot(v.ipcomp_cpi, &st.ipcomp),
                udp_train: v.udp_train,
            },
            v.replay_window,
        )
    }

    fn show_child(&self) -> Vec<ChildSaOut> {
        let views = self.control.views();
        let mut out = Vec::new();
        for m in &self.manual {
            let (inbound, window) = self.direction(&views, m.spi_in, "in");
            let (outbound, _) = self.direction(&views, m.spi_out, "out");
            let c = self.config.conns.iter().find(|c| c.name == m.name);
            out.push(ChildSaOut {
                conn: m.name.clone(),
                child: None,
                state: "MANUAL".into(),
                mode: "tunnel".into(),
                encap: match c.map(|c| c.encap) {
                    Some(Encap::Udp) => "udp".into(),
                    _ => "esp".into(),
                },
                algorithms: c.map(|c| c.esp.strongswan_name()).unwrap_or_default(),
                pfs_group: None,
                esn: c.is_some_and(|c| c.esn),
                local_ts: m.selectors.iter().map(|s| s.local.to_string()).collect(),
                remote_ts: m.selectors.iter().map(|s| s.remote.to_string()).collect(),
                inbound,
                outbound,
                replay_window: window,
                installed_s_ago: None,
                rekey_in_s: None,
                expires_in_s: None,
            });
        }
        for s in self.engine.ike_sas() {
            for ch in &s.children {
                let (inbound, window) = self.direction(&views, ch.spi_in, "in");
                let (outbound, _) = self.direction(&views, ch.spi_out, "out");
                let sending = self
                    .children
                    .slots
                    .iter()
                    .any(|x| x.name == s.conn && x.spi_in == Some(ch.spi_in));
                out.push(ChildSaOut {
                    conn: s.conn.clone(),
                    child: (ch.pair > 0 && s.version == 2)
                        .then(|| {
                            let c = self.config.conns.iter().find(|c| c.name == s.conn)?;
                            c.children.get(ch.pair - 1).map(|x| x.name.clone())
                        })
                        .flatten(),
                    state: if ch.rekeyed {
                        "REKEYED"
                    } else if sending {
                        "INSTALLED"
                    } else {
                        "INSTALLED-INBOUND"
                    }
                    .into(),
                    mode: "tunnel".into(),
                    encap: if ch.udp_encap { "udp" } else { "esp" }.into(),
                    algorithms: show::child_suite_name(&ch.suite),
                    pfs_group: ch.suite.dh.map(|g| show::dh_name(g).to_string()),
                    esn: ch.suite.esn,
                    local_ts: ch.local_ts.iter().map(|t| t.to_string()).collect(),
                    remote_ts: ch.remote_ts.iter().map(|t| t.to_string()).collect(),
                    inbound,
                    outbound,
                    replay_window: window,
                    installed_s_ago: Some(self.since(ch.installed_at)),
                    rekey_in_s: self.until(ch.rekey_at.filter(|_| !ch.rekeyed)),
                    expires_in_s: self.until(ch.expire_at),
                });
            }
        }
        out
    }

    fn show_policy(&self) -> Vec<PolicyOut> {
        let views = self.control.views();
        self.policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (action, slot) = match p.action {
                    PolicyAction::Protect { sa } => ("protect", Some(sa)),
                    PolicyAction::Discard => ("discard", None),
                };
                let out_spi = slot.and_then(|k| {
                    views
                        .iter()
                        .find(|v| v.direction == "out" && v.slot == Some(k))
                        .map(|v| v.spi)
                });
                let trap = slot.is_some_and(|k| {
                    self.children
                        .slots
                        .iter()
                        .any(|s| s.slot == k && self.start_actions.get(&s.name) == Some(&StartAction::Trap))
                });
                PolicyOut {
                    index: i + 1,
                    conn: p.name.clone(),
                    local: p.selector.local.to_string(),
                    remote: p.selector.remote.to_string(),
                    protocol: p.selector.protocol.map(|x| x.to_string()),
                    action: action.into(),
                    sa: out_spi.map(|s| format!("{s:08x}")),
                    state: match (out_spi, trap) {
                        (Some(_), _) => "installed",
                        (None, true) => "trap",
                        (None, false) if action == "discard" => "discard",
                        (None, false) => "no-sa",
                    }
                    .into(),
                    hits: p.hits.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Re-read the config file and apply it (`reload`, SIGHUP): see
    /// [`apply`](Self::apply).
    fn reload(&mut self) -> Result<serde_json::Value, String> {
        let new =
            crate::config::load(&self.opts).map_err(|e| format!("configuration refused, nothing changed: {e}"))?;
        let d = self.apply(new)?;
        let line = format!(
            "reload: added [{}], changed [{}], removed [{}], untouched [{}]",
            d.added.join(" "),
            d.changed.join(" "),
            d.removed.join(" "),
            d.untouched.join(" ")
        );
        tracing::info!(target: "config", "{line}");
        self.hub.publish("", "control", line);
        Ok(serde_json::json!({
            "added": d.added, "changed": d.changed, "removed": d.removed, "untouched": d.untouched,
        }))
    }

    /// Make the running connections those of `new`, the one path of start
    /// (from no connection at all) and reload. Connections whose settings
    /// changed are torn down and brought up with the new ones; new ones are
    /// added, removed ones deleted; the rest are not touched (their SAs
    /// stay). Refused, with nothing changed, when `new` needs a restart.
    fn apply(&mut self, new: Config) -> Result<ConfigDiff, String> {
        if let Some(why) = crate::plan::restart_needed(&self.config.daemon, &new.daemon) {
            return Err(format!("{why}: that needs a restart; nothing changed"));
        }
        // Sockets are opened at start: a connection on a local address
        // without them cannot be served by a reload.
        let ike_ips: Vec<IpAddr> = self.sock500.iter().map(|s| s.local.ip()).collect();
        if let Some(why) = crate::plan::missing_socket(&new, &ike_ips, &self.plane_sockets) {
            return Err(format!("{why}: restart needed; nothing changed"));
        }
        let d = crate::plan::diff(&self.config, &new);
        {
            let mut os = self.os.lock().unwrap_or_else(|p| p.into_inner());
            os.sync(&Wanted::of(&new))?;
        }
        let now = self.now();
        for name in d.removed.iter().chain(d.changed.iter()) {
            self.drop_conn(name, now);
        }
        let mut starts = Vec::new();
        for name in d.added.iter().chain(d.changed.iter()) {
            let Some(c) = new.conns.iter().find(|c| &c.name == name) else {
                continue;
            };
            if self.add_conn(c)? == StartAction::Start {
                starts.push(name.clone());
            }
        }
        self.engine.set_retransmit_policy(ikeda_ike::RetransmitPolicy {
            timeout: Duration::from_millis(new.daemon.retransmit.0),
            base: new.daemon.retransmit.1,
            tries: new.daemon.retransmit.2,
        });
        self.config = new;
        self.path.set_peers(self.config.conns.iter().map(|c| c.remote_addr));
        self.push_spd();
        for name in &starts {
            if let Err(e) = self.engine.initiate(name, now) {
                tracing::error!(target: "ike", "{name}: cannot initiate: {e}");
            }
        }
        Ok(d)
    }

    /// Tear down a connection that goes or changes: its SAs (a DELETE to
    /// the peer), its slots, traps and state.
    fn drop_conn(&mut self, name: &str, now: Millis) {
        if let Some(k) = self.manual.iter().position(|m| m.name == name) {
            let m = self.manual.remove(k);
            self.control.remove_inbound(m.spi_in);
            let _ = self.control.set_outbound(name, m.slot, None);
        }
        if self.engine.conn(name).is_some() {
            if self.engine.is_active(name) {
                let _ = self.engine.terminate(name, now);
            }
            self.engine.retire_conn(name);
        }
        for slot in self.children.drop_conn(name) {
            let _ = self.control.clear_trap(slot);
            let _ = self.control.set_outbound(name, slot, None);
        }
        self.start_actions.remove(name);
        self.last_failure.remove(name);
    }

    /// Bring up a connection that is new or changed: a manual one's SAs at
    /// once, an IKE one's slots (with their traps) and engine entry.
    /// Returns its start action, which the caller carries out once all are
    /// in place.
    fn add_conn(&mut self, c: &ConnConfig) -> Result<StartAction, String> {
        let name = &c.name;
        let slot = self.next_slot;
        self.next_slot += 1;
        // A changed manual connection resumes above the numbers its old SA
        // reserved (same key), or starts anew (new key).
        if let Some(m) = crate::plan::manual_sas(c, &self.seq_store)? {
            self.manual.push(ManualSlot {
                name: name.clone(),
                slot,
                spi_in: m.inbound.spi,
                spi_out: m.out.spi,
                selectors: c.selectors.clone(),
                out_stats: m.out.stats.clone(),
                seq: m.seq,
                seq_failing: false,
            });
            self.control.install_inbound(name, m.inbound)?;
            self.control.set_outbound(name, slot, Some(m.out))?;
            return Ok(StartAction::None);
        }
        let Some(conn) = connection(c) else {
            return Ok(StartAction::None);
        };
        let action = c.ike.as_ref().map_or(StartAction::None, |i| i.start_action);
        let new_slots = conn_slots(c, conn.spec(), slot);
        self.next_slot = new_slots
            .iter()
            .map(|s| s.slot + 1)
            .max()
            .unwrap_or(self.next_slot)
            .max(self.next_slot);
        self.engine.set_conn(conn);
        self.start_actions.insert(name.clone(), action);
        for s in new_slots {
            if action == StartAction::Trap {
                let _ = self.control.set_trap(s.slot);
            }
            self.children.slots.push(s);
        }
        Ok(action)
    }
}

impl Runtime {
    /// Manual SAs: reserve the next sequence numbers on disk before the
    /// data plane reaches the ceiling (a check per SA every loop turn, a
    /// file write and fsync once per `seqstate::STEP` packets); say so
    /// once when an SA has used its last number.
    fn reserve_seq(&mut self) {
        for m in &mut self.manual {
            let used = m.out_stats.seq.load(Ordering::Relaxed);
            match m.seq.top_up(used) {
                Err(e) if !m.seq_failing => {
                    m.seq_failing = true;
                    tracing::error!(target: "esp", "{}: cannot reserve more sequence numbers, outbound SA {:#010x} stops at its ceiling: {e}", m.name, m.spi_out);
                }
                Err(_) => {}
                Ok(_) => m.seq_failing = false,
            }
            if m.seq.newly_exhausted(used) {
                tracing::error!(target: "esp", "{}: outbound SA {:#010x} has used every sequence number of its key: it sends nothing more; set a new key (and SPI) on both gateways", m.name, m.spi_out);
            }
        }
    }
}

/// What the IKE thread reads besides UDP 500.
struct Inputs {
    /// IKE on UDP 4500, handed over by the data plane.
    from_plane: Receiver<IkeDatagram>,
    /// Slots whose trap policy saw a packet.
    acquires: Receiver<usize>,
    /// The control socket's requests.
    requests: Receiver<ControlMsg>,
}

/// Each turn of the IKE thread's loop takes at most this many items from
/// each input, so that every input (UDP 500, UDP 4500, acquires, timers,
/// the control socket) is served in every turn whatever floods another.
const INPUT_BATCH: usize = 64;

impl Runtime {
    /// The IKE thread: serve every input in turn until `stop`, then tell
    /// the peers we are going.
    fn run(mut self, inputs: Inputs, stop: &AtomicBool, counters: &Mutex<Vec<crate::show::CounterOut>>) {
        self.pump();
        // IKE messages up to the largest UDP payload, a few at a time.
        let mut batch = ikeda_sys::PacketBatch::new(IKE_BATCH, 65536, 0);
        let mut idle = true;
        let mut counted = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if counted.elapsed() >= Duration::from_secs(1) {
                counted = Instant::now();
                if let Ok(mut c) = counters.lock() {
                    *c = show::counters(&self.engine);
                }
                self.one_way_traffic();
            }
            let wait = if idle { self.idle_wait() } else { Duration::ZERO };
            let mut worked = self.serve_udp500(&mut batch, wait);
            worked |= self.serve_acquires(&inputs.acquires);
            self.byte_lifetimes();
            self.reserve_seq();
            self.retire_inbound();
            worked |= self.serve_plane(&inputs.from_plane);
            let now = self.now();
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
            }
            self.pump();
            worked |= self.serve_requests(&inputs.requests);
            idle = !worked;
        }
        // Tell the peers we are going (best effort, not waiting for answers).
        for n in self.engine.conn_names() {
            if self.engine.is_active(&n) {
                let now = self.now();
                let _ = self.engine.terminate(&n, now);
            }
        }
        self.flush();
    }

    /// How long an idle turn waits on UDP 500: until the engines' next
    /// deadline, and at most 10 ms so that the other inputs, which have no
    /// descriptor to wait on, are looked at. A busy turn does not wait, so
    /// that busy inputs are not paced by an idle socket.
    fn idle_wait(&self) -> Duration {
        let now = self.now();
        let until = self
            .engine
            .poll_timeout()
            .map_or(IDLE_WAIT, |t| Duration::from_millis(t.0.saturating_sub(now.0)));
        until.min(IDLE_WAIT)
    }

    /// UDP 500: up to a batch from each socket, waiting `wait` once at most.
    fn serve_udp500(&mut self, batch: &mut ikeda_sys::PacketBatch, mut wait: Duration) -> bool {
        // Without any UDP 500 socket, a short sleep paces an idle loop.
        if self.sock500.is_empty() && !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let mut worked = false;
        for k in 0..self.sock500.len() {
            let n = match self.sock500[k].io.recv_batch(batch, Some(wait)) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(target: "ike", "UDP {}: {e}", self.sock500[k].local);
                    0
                }
            };
            wait = Duration::ZERO;
            let local = self.sock500[k].local;
            for i in 0..n {
                let (Some(from), data) = (batch.addr(i), batch.packet(i)) else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                worked = true;
                tracing::trace!(target: "ike", "{} bytes {from} -> {local}", data.len());
                let now = self.now();
                self.path.heard(from, local.port(), now.0);
                self.engine.handle_datagram(now, local, from, data);
            }
        }
        worked
    }

    /// A trap policy met its first packet: negotiate the SA (the data plane
    /// holds the packets until it is installed).
    fn serve_acquires(&mut self, acquires: &Receiver<usize>) -> bool {
        let mut worked = false;
        for slot in acquires.try_iter().take(INPUT_BATCH) {
            worked = true;
            let Some(name) = self
                .children
                .slots
                .iter()
                .find(|s| s.slot == slot)
                .map(|s| s.name.clone())
            else {
                continue;
            };
            if self.engine.is_active(&name) {
                continue;
            }
            tracing::info!(target: "ike", "{name}: acquire: a packet matched the trap policy, initiating");
            self.hub.publish(
                &name,
                "control",
                "acquire: a packet matched the trap policy, initiating".into(),
            );
            let now = self.now();
            if let Err(e) = self.engine.initiate(&name, now) {
                tracing::error!(target: "ike", "{name}: cannot initiate: {e}");
            }
        }
        worked
    }

    /// IKE on UDP 4500, handed over by the data plane: at most a batch per
    /// turn, so a flood on 4500 does not starve port 500, the timers or the
    /// control socket.
    fn serve_plane(&mut self, from_plane: &Receiver<IkeDatagram>) -> bool {
        let mut worked = false;
        for d in from_plane.try_iter().take(INPUT_BATCH) {
            worked = true;
            tracing::trace!(target: "ike", "{} bytes {} -> {}:{NAT_T_PORT}", d.data.len(), d.from, d.local);
            let now = self.now();
            self.path.heard(d.from, NAT_T_PORT, now.0);
            self.engine
                .handle_datagram(now, SocketAddr::new(d.local, NAT_T_PORT), d.from, &d.data);
        }
        worked
    }

    /// The control socket's requests, answered from this thread's state.
    fn serve_requests(&mut self, requests: &Receiver<ControlMsg>) -> bool {
        let mut worked = false;
        for m in requests.try_iter().take(INPUT_BATCH) {
            worked = true;
            let r = self.answer(m.command);
            let _ = m.reply.send(r);
            self.pump();
        }
        worked
    }
}

/// Start the control plane thread (IKE and the control socket's requests);
/// connections with `start_action = start` are initiated right away.
pub fn start(setup: IkeSetup, stop_flag: Arc<AtomicBool>) -> Result<IkeThread, String> {
    let IkeSetup {
        seq_store,
        sock500,
        sock4500,
        plane_sockets,
        from_plane,
        acquires,
        control,
        requests,
        hub,
        keys,
        config,
        opts,
        os,
    } = setup;
    let engine = Engine::new(Vec::new(), || Box::new(SystemRng));
    // Start from no connection, with the daemon settings to run.
    let nothing = Config {
        file: config.file.clone(),
        daemon: config.daemon.clone(),
        conns: Vec::new(),
        warnings: Vec::new(),
    };
    let mut rt = Runtime {
        engine,
        started: Instant::now(),
        children: Installs::default(),
        manual: Vec::new(),
        seq_store,
        sock500,
        sock4500,
        plane_sockets,
        control,
        hub,
        keys,
        config: nothing,
        opts,
        os,
        start_actions: HashMap::new(),
        last_failure: HashMap::new(),
        policies: Vec::new(),
        next_slot: 0,
        path: Default::default(),
    };
    rt.apply(config)?;
    let counters = Arc::new(Mutex::new(show::counters(&rt.engine)));
    let inputs = Inputs {
        from_plane,
        acquires,
        requests,
    };
    let (stop, counters_out) = (stop_flag.clone(), counters.clone());
    let spawned = std::thread::Builder::new()
        .name("ike".into())
        .spawn(move || rt.run(inputs, &stop, &counters_out));
    let handle = spawned.map_err(|e| format!("the IKE thread: {e}"))?;
    Ok(IkeThread {
        stop: stop_flag,
        handle,
        counters,
    })
}

#[cfg(test)]
mod tests {
    use super::one_way_silence;
    use std::time::Duration;

    #[test]
    fn one_way_silence_needs_recent_sends_and_a_silent_inbound() {
        let now = 100_000;
        // Sending now, nothing ever came in / nothing for 30 s.
        assert_eq!(one_way_silence(0, now - 100, now), Some(Duration::MAX));
        assert_eq!(
            one_way_silence(now - 30_000, now - 100, now),
            Some(Duration::from_secs(30))
        );
        // Both ways recently: not one-way.
        assert_eq!(one_way_silence(now - 500, now - 100, now), None);
        // Nothing sent lately, or ever: nothing to suspect.
        assert_eq!(one_way_silence(now - 30_000, now - 5_000, now), None);
        assert_eq!(one_way_silence(0, 0, now), None);
        // A clock that went back (counters from a later batch): no panic.
        assert_eq!(one_way_silence(now + 50, now + 10, now), None);
    }
}
