//! One gateway, started from its configuration over any TUN device and
//! sockets (the `ikeda-sys` traits): the data plane threads and the IKE
//! thread, with the routes handed to a [`RouteSync`]. `daemon` gives it the
//! kernel's devices; the tests below give it in-memory fakes, so two whole
//! gateways run in one process without root.

use crate::config::{Config, RunOptions};
use crate::control::{ControlMsg, EventHub};
use crate::dataplane::{DataPlane, DynIo, NetSocket};
use crate::ike::{IkeSocket, IkeThread};
use crate::plan::{RouteSync, Wanted};
use crate::seqstate::SeqStore;
use ikeda_esp::{Encap, Outbound, Spd};
use ikeda_sys::TunDevice;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

/// What a gateway runs on.
pub struct GatewayIo<T> {
    /// The TUN device's queues, one TX thread each (at least one).
    pub tun: Vec<Arc<T>>,
    /// The data plane's sockets: raw ESP and UDP 4500 of each local
    /// address that IKE connections use, and each manual connection's.
    pub sockets: Vec<Arc<NetSocket<DynIo>>>,
    /// IKE on UDP 500, one per local address of an IKE connection.
    pub sock500: Vec<IkeSocket>,
    pub routes: Arc<Mutex<dyn RouteSync>>,
}

/// A running gateway.
pub struct Gateway {
    pub plane: crate::dataplane::DataPlane,
    pub ike: IkeThread,
}

impl Gateway {
    /// IKE first (its DELETEs still go out through the data plane's
    /// sockets), then the data plane.
    pub fn stop(self) {
        self.ike.stop();
        self.plane.stop();
    }
}

/// Start a gateway: the routes, the data plane (with no SA yet), and the
/// IKE thread, which brings the configuration up as a reload would from no
/// connection at all (manual SAs, a data plane slot per IKE CHILD SA, the
/// policies, traps, initiations), then answers `requests` (the control
/// socket's, or a test's) and publishes to `hub`.
pub fn start<T: TunDevice + 'static>(
    cfg: &Config,
    opts: &RunOptions,
    io: GatewayIo<T>,
    requests: Receiver<ControlMsg>,
    hub: Arc<EventHub>,
) -> Result<Gateway, String> {
    for w in &cfg.warnings {
        tracing::warn!(target: "config", "{w}");
    }
    for c in &cfg.conns {
        for w in c.ike.iter().flat_map(|i| i.warnings.iter()) {
            tracing::warn!(target: "config", "{}: {w}", c.name);
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
    io.routes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .sync(&Wanted::of(cfg))?;
    let sock4500: Vec<_> = io.sockets.iter().filter(|s| s.encap == Encap::Udp).cloned().collect();
    let plane_sockets = io.sockets.iter().map(|s| (s.encap, s.local)).collect();
    // IKE hand-offs only where IKE runs: without, IKE on 4500 and trap
    // acquires are dropped and counted by the data plane.
    let ike = cfg.conns.iter().any(|c| c.ike.is_some());
    let (ike_tx, ike_rx) = crate::dataplane::ike_handoff();
    let (acq_tx, acq_rx) = crate::dataplane::acquire_channel();
    let plane = DataPlane::start(
        io.tun,
        io.sockets,
        Outbound::new(Spd::new(Vec::new()), Vec::new()),
        Vec::new(),
        Vec::new(),
        cfg.daemon.mtu as usize,
        ike.then_some(ike_tx),
        ike.then_some(acq_tx),
    )
    .map_err(|e| format!("starting the data plane: {e}"))?;
    let setup = crate::ike::IkeSetup {
        seq_store: SeqStore::new(&cfg.daemon.state_dir),
        sock500: io.sock500,
        sock4500,
        plane_sockets,
        from_plane: ike_rx,
        acquires: acq_rx,
        control: plane.control.clone(),
        requests,
        hub,
        keys,
        config: cfg.clone(),
        opts: opts.clone(),
        os: io.routes,
    };
    match crate::ike::start(setup, Arc::new(AtomicBool::new(false))) {
        Ok(ike) => Ok(Gateway { plane, ike }),
        Err(e) => {
            plane.stop();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
