//! The daemon's IKE side: a thread that owns the IKE sockets, the clock and
//! the RNG, feeds the sans-IO engine, and turns its events into data plane
//! changes and log lines.
//!
//! IKE on UDP 500 has a socket of its own here; IKE on 4500 shares the
//! socket with UDP-encapsulated ESP (RFC 3948): the data plane's receive
//! thread hands those messages over, and we send through the same socket
//! with the non-ESP marker in front.

use crate::config::{ConnConfig, Identity, StartAction};
use crate::daemon::AnySocket;
use crate::dataplane::{Control, IkeDatagram, NetSocket};
use ikeda_crypto::ike::SystemRng;
use ikeda_esp::{AddrRange, Encap, InboundSa, OutboundSa, Policy, PolicyAction, SaParams, Selector, Spd};
use ikeda_ike::ikev2::{ChildSaInfo, ConnSpec, Engine, Event, Timers, IKE_PORT, NAT_T_PORT};
use ikeda_ike::Millis;
use ikeda_sys::DatagramIo;
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ikev2::{IdPayload, IdType, TsRange};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// The engine's view of a connection.
pub fn conn_spec(c: &ConnConfig) -> Option<ConnSpec> {
    let ike = c.ike.as_ref()?;
    // Say plainly what this build does not do yet, rather than pretend.

    let mut local_ts: Vec<TsRange> = Vec::new();
    let mut remote_ts: Vec<TsRange> = Vec::new();
    for s in &c.selectors {
        let (l, r) = (to_ts(&s.local, s, true), to_ts(&s.remote, s, false));
        if !local_ts.contains(&l) {
            local_ts.push(l);
        }
        if !remote_ts.contains(&r) {
            remote_ts.push(r);
        }
    }
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
        timers: Timers {
            rekey_time: Duration::from_secs(ike.rekey_time),
            life_time: Duration::from_secs(ike.life_time),
            ike_rekey_time: Duration::from_secs(ike.ike_rekey_time),
            ike_lifetime: Duration::from_secs(ike.ike_lifetime),
            dpd_delay: Duration::from_secs(ike.dpd_delay),
            dpd_restart: ike.dpd_action == crate::config::DpdAction::Restart,
        },
    })
}

/// Selectors of a negotiated CHILD SA: every local x remote pair of one family.
fn selectors(info: &ChildSaInfo) -> Vec<Selector> {
    let mut out = Vec::new();
    for l in &info.local_ts {
        for r in &info.remote_ts {
            if l.start_address.is_ipv4() != r.start_address.is_ipv4() {
                continue;
            }
            let proto = match (l.ip_protocol.0, r.ip_protocol.0) {
                (0, p) | (p, 0) => p,
                (p, _) => p,
            };
            out.push(Selector {
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
            });
        }
    }
    out
}

/// One IKE connection's place in the data plane.
#[derive(Clone)]
pub struct ConnSlot {
    pub name: String,
    pub slot: usize,
    pub replay_window: u32,
    /// Policies while no CHILD SA is up (from the config) ...
    pub configured: Vec<Selector>,
    /// ... and those negotiated.
    pub negotiated: Option<Vec<Selector>>,
    pub spi_in: Option<u32>,
    /// Byte lifetimes (0 = none), checked against the data plane's counters.
    pub rekey_bytes: u64,
    pub life_bytes: u64,
    /// The SA (inbound SPI) whose byte rekey or deletion was started.
    pub bytes_acted: Option<u32>,
}

pub struct IkeThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
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

pub struct IkeSetup {
    pub conns: Vec<(ConnSpec, StartAction)>,
    pub slots: Vec<ConnSlot>,
    /// Policies of manually keyed connections, kept in front.
    pub manual_policies: Vec<Policy>,
    pub sock500: Vec<std::net::UdpSocket>,
    pub sock4500: Vec<Arc<NetSocket<AnySocket>>>,
    pub from_plane: Receiver<IkeDatagram>,
    /// Slots whose trap policy saw a packet (start_action = trap).
    pub acquires: Receiver<usize>,
    pub retransmit: ikeda_ike::RetransmitPolicy,
    pub control: Control,
}

struct Runtime {
    engine: Engine,
    started: Instant,
    slots: Vec<ConnSlot>,
    manual_policies: Vec<Policy>,
    sock500: Vec<std::net::UdpSocket>,
    sock4500: Vec<Arc<NetSocket<AnySocket>>>,
    control: Control,
    /// CHILD SAs installed, by inbound SPI: (connection, outbound SPI).
    installed: HashMap<u32, (String, u32)>,
    /// Outbound SAs of rekeys we answered, waiting for the old SA's DELETE.
    pending_out: HashMap<u32, OutboundSa>,
}

impl Runtime {
    fn now(&self) -> Millis {
        Millis(self.started.elapsed().as_millis() as u64)
    }

    fn spd(&self) -> Spd {
        let mut p = self.manual_policies.clone();
        for s in &self.slots {
            let sels = s.negotiated.as_ref().unwrap_or(&s.configured);
            for sel in sels {
                p.push(Policy::new(
                    s.name.clone(),
                    sel.clone(),
                    PolicyAction::Protect { sa: s.slot },
                ));
            }
        }
        Spd::new(p)
    }

    fn flush(&mut self) {
        while let Some(t) = self.engine.poll_transmit() {
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
                match self
                    .sock500
                    .iter()
                    .find(|s| s.local_addr().is_ok_and(|a| a.ip() == t.local.ip()))
                {
                    Some(s) => s.send_to(&t.data, t.remote).map(|_| ()),
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
                Event::Log { conn, line } => tracing::info!(target: "ike", "{conn}: {line}"),
                Event::IkeSaUp {
                    conn,
                    spi_i,
                    spi_r,
                    initiator,
                    suite,
                    local,
                    remote,
                    nat,
                } => tracing::info!(
                    target: "ike",
                    "{conn}: IKE_SA established {spi_i:016x}_i {spi_r:016x}_r ({}) {local} <-> {remote} {suite}{}",
                    if initiator { "initiator" } else { "responder" },
                    if nat { ", NAT detected: UDP encapsulation" } else { "" }
                ),
                Event::IkeSaDown { conn, reason, .. } => {
                    tracing::info!(target: "ike", "{conn}: IKE_SA down ({reason})")
                }
                Event::Failed { conn, why } => tracing::error!(target: "ike", "{conn}: {why}"),
                Event::ChildSaUp(info) => self.install(info),
                Event::ChildSaActivate { conn, spi_in } => self.activate(&conn, spi_in),
                Event::ChildSaDown { conn, spi_in, spi_out } => {
                    tracing::info!(target: "ike", "{conn}: CHILD_SA {spi_in:08x}_i {spi_out:08x}_o removed");
                    self.control.remove_inbound(spi_in);
                    self.pending_out.remove(&spi_in);
                    if let Some(s) = self
                        .slots
                        .iter_mut()
                        .find(|s| s.name == conn && s.spi_in == Some(spi_in))
                    {
                        // The slot's active SA is gone with no replacement.
                        s.spi_in = None;
                        s.negotiated = None;
                        let slot = s.slot;
                        let _ = self.control.set_outbound(&conn, slot, None);
                        let _ = self.control.set_spd(self.spd());
                    }
                    self.installed.remove(&spi_in);
                }
            }
        }
    }

    /// Byte lifetimes (RFC 4301 §4.4.2.1): the data plane counts bytes per
    /// SA; past the soft limit rekey, past the hard limit delete.
    fn byte_lifetimes(&mut self) {
        for k in 0..self.slots.len() {
            let s = &self.slots[k];
            let Some(spi_in) = s.spi_in else { continue };
            if (s.rekey_bytes == 0 && s.life_bytes == 0) || s.bytes_acted == Some(spi_in) {
                continue;
            }
            let Some(&(_, spi_out)) = self.installed.get(&spi_in) else {
                continue;
            };
            let bytes = self
                .control
                .sa_bytes(spi_in, "in")
                .unwrap_or(0)
                .max(self.control.sa_bytes(spi_out, "out").unwrap_or(0));
            let name = s.name.clone();
            let now = self.now();
            let acted = if s.life_bytes != 0 && bytes >= s.life_bytes {
                tracing::info!(target: "ike", "{name}: CHILD_SA {spi_in:08x}_i carried {bytes} bytes: hard limit, deleting");
                self.engine.delete_child_spi(&name, spi_in, now)
            } else if s.rekey_bytes != 0 && bytes >= s.rekey_bytes {
                tracing::info!(target: "ike", "{name}: CHILD_SA {spi_in:08x}_i carried {bytes} bytes: rekeying");
                self.engine.rekey_child_spi(&name, spi_in, now)
            } else {
                false
            };
            if acted {
                self.slots[k].bytes_acted = Some(spi_in);
            }
        }
    }

    /// Start sending on the SA with this inbound SPI.
    fn activate(&mut self, conn: &str, spi_in: u32) {
        let Some(o) = self.pending_out.remove(&spi_in) else {
            return;
        };
        let Some(s) = self.slots.iter_mut().find(|s| s.name == conn) else {
            return;
        };
        s.spi_in = Some(spi_in);
        let slot = s.slot;
        tracing::info!(target: "esp", "{conn}: sending on the rekeyed CHILD SA {:08x}_o now", o.spi);
        let _ = self.control.set_outbound(conn, slot, Some(o));
    }

    fn install(&mut self, info: ChildSaInfo) {
        let Some(pos) = self.slots.iter().position(|s| s.name == info.conn) else {
            return;
        };
        let sels = selectors(&info);
        let (encap, local, remote) = if info.udp_encap {
            (Encap::Udp, SocketAddr::new(info.local.ip(), NAT_T_PORT), info.remote)
        } else {
            (
                Encap::Esp,
                SocketAddr::new(info.local.ip(), 0),
                SocketAddr::new(info.remote.ip(), 0),
            )
        };
        let window = self.slots[pos].replay_window;
        let mk = |spi, enc: &ikeda_crypto::SecretBytes, auth: &Option<ikeda_crypto::SecretBytes>| SaParams {
            spi,
            algorithm: info.algorithm,
            enc_key: enc.clone(),
            auth_key: auth.clone(),
            esn: info.esn,
            replay_window: window,
            local,
            remote,
            encap,
            selectors: sels.clone(),
        };
        let (o, i) = match (
            OutboundSa::new(&mk(info.spi_out, &info.enc_out, &info.auth_out)),
            InboundSa::new(&mk(info.spi_in, &info.enc_in, &info.auth_in)),
        ) {
            (Ok(o), Ok(i)) => (o, i),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(target: "esp", "{}: CHILD SA keys refused by the data plane: {e}", info.conn);
                return;
            }
        };
        // Make before break: the inbound SA first; the outbound switch now,
        // or (responder of a rekey) when the old SA's DELETE arrives. The
        // old inbound SA stays until its own ChildSaDown.
        if let Err(e) = self.control.install_inbound(&info.conn, i) {
            tracing::error!(target: "esp", "{}: {e}", info.conn);
            return;
        }
        if info.activate_outbound {
            let slot = self.slots[pos].slot;
            let _ = self.control.set_outbound(&info.conn, slot, Some(o));
            self.slots[pos].spi_in = Some(info.spi_in);
        } else {
            self.pending_out.insert(info.spi_in, o);
        }
        self.slots[pos].negotiated = Some(sels);
        self.installed.insert(info.spi_in, (info.conn.clone(), info.spi_out));
        let _ = self.control.set_spd(self.spd());
        tracing::info!(
            target: "esp",
            "{}: CHILD SA installed: {} in {:08x} out {:08x}, {}{}",
            info.conn,
            info.algorithm,
            info.spi_in,
            info.spi_out,
            if info.udp_encap { "UDP-encapsulated to " } else { "ESP to " },
            remote
        );
    }
}

/// Start the IKE thread; connections with `start_action = start` are
/// initiated right away.
pub fn start(setup: IkeSetup, stop_flag: Arc<AtomicBool>) -> std::io::Result<IkeThread> {
    let IkeSetup {
        conns,
        slots,
        manual_policies,
        sock500,
        sock4500,
        from_plane,
        acquires,
        retransmit,
        control,
    } = setup;
    let traps: Vec<String> = conns
        .iter()
        .filter(|(_, a)| *a == StartAction::Trap)
        .map(|(c, _)| c.name.clone())
        .collect();
    let starts: Vec<String> = conns
        .iter()
        .filter(|(_, a)| *a == StartAction::Start)
        .map(|(c, _)| c.name.clone())
        .collect();
    let mut engine = Engine::new(conns.into_iter().map(|(c, _)| c).collect(), Box::new(SystemRng));
    engine.set_retransmit_policy(retransmit);
    for s in &sock500 {
        s.set_read_timeout(Some(Duration::from_millis(10)))?;
    }
    let mut rt = Runtime {
        engine,
        started: Instant::now(),
        slots,
        manual_policies,
        sock500,
        sock4500,
        control,
        installed: HashMap::new(),
        pending_out: HashMap::new(),
    };
    let _ = rt.control.set_spd(rt.spd());
    for s in rt.slots.iter().filter(|s| traps.contains(&s.name)) {
        let _ = rt.control.set_trap(s.slot);
    }
    let stop = stop_flag.clone();
    let handle = std::thread::Builder::new().name("ike".into()).spawn(move || {
        for name in &starts {
            let now = rt.now();
            if let Err(e) = rt.engine.initiate(name, now) {
                tracing::error!(target: "ike", "{name}: cannot initiate: {e}");
            }
        }
        rt.flush();
        rt.events();
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            // UDP 500: a short blocking read on each socket.
            for k in 0..rt.sock500.len() {
                if let Ok((n, from)) = rt.sock500[k].recv_from(&mut buf) {
                    let local = rt.sock500[k]
                        .local_addr()
                        .unwrap_or_else(|_| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), IKE_PORT));
                    let now = rt.now();
                    rt.engine.handle_datagram(now, local, from, &buf[..n]);
                }
            }
            // A trap policy met its first packet: negotiate the SA (the
            // data plane holds the packets until it is installed).
            while let Ok(slot) = acquires.try_recv() {
                if let Some(name) = rt.slots.iter().find(|s| s.slot == slot).map(|s| s.name.clone()) {
                    if !rt.engine.is_active(&name) {
                        tracing::info!(target: "ike", "{name}: acquire: a packet matched the trap policy, initiating");
                        let now = rt.now();
                        if let Err(e) = rt.engine.initiate(&name, now) {
                            tracing::error!(target: "ike", "{name}: cannot initiate: {e}");
                        }
                    }
                }
            }
            rt.byte_lifetimes();
            // UDP 4500, handed over by the data plane.
            while let Ok(d) = from_plane.try_recv() {
                let now = rt.now();
                rt.engine
                    .handle_datagram(now, SocketAddr::new(d.local, NAT_T_PORT), d.from, &d.data);
            }
            let now = rt.now();
            if rt.engine.poll_timeout().is_some_and(|t| t <= now) {
                rt.engine.handle_timeout(now);
            }
            rt.flush();
            rt.events();
        }
        // Tell the peers we are going (best effort, not waiting for answers).
        let names: Vec<String> = rt.engine.conn_names().map(str::to_owned).collect();
        for n in names {
            if rt.engine.is_active(&n) {
                let now = rt.now();
                let _ = rt.engine.terminate(&n, now);
            }
        }
        rt.flush();
    })?;
    Ok(IkeThread {
        stop: stop_flag,
        handle,
    })
}
