//! One gateway, started from its configuration over any TUN device and
//! sockets (the `ikeda-sys` traits): the data plane threads and the IKE
//! thread, with the routes handed to a [`RouteSync`]. `daemon` gives it the
//! kernel's devices; the tests below give it in-memory fakes, so two whole
//! gateways run in one process without root.

use crate::config::{Config, RunOptions, StartAction};
use crate::control::{ControlMsg, EventHub};
use crate::dataplane::{DataPlane, DynIo, NetSocket};
use crate::ike::{IkeSocket, IkeThread};
use crate::plan::{RouteSync, Wanted};
use crate::seqstate::SeqStore;
use ikeda_esp::{Encap, Policy, PolicyAction};
use ikeda_sys::TunDevice;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a gateway runs on.
pub struct GatewayIo<T> {
    pub tun: Arc<T>,
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

/// Start a gateway: the manual SAs, a data plane slot per IKE CHILD SA,
/// the policies, the routes, the data plane, and the IKE thread, which
/// answers `requests` (the control socket's, or a test's) and publishes to
/// `hub`.
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
    let seq_store = SeqStore::new(&cfg.daemon.state_dir);
    let ((mut outbound, mut names, inbound), mut seqs) = crate::plan::build_sas(cfg, &seq_store)?;
    // Manual connections hold the first slots, in config order.
    let mut manual = Vec::new();
    for (slot, seq) in seqs.drain(..).enumerate() {
        let (Some(Some(o)), Some((name, i))) = (outbound.sas.get(slot), inbound.get(slot)) else {
            continue;
        };
        let c = cfg.conns.iter().find(|c| c.name == *name);
        manual.push(crate::plan::ManualSlot {
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
        let Some(spec) = crate::plan::conn_spec(c) else {
            continue;
        };
        // IKEv1: a slot per selector pair (a Quick Mode each).
        for s in crate::plan::conn_slots(c, &spec, outbound.sas.len()) {
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
        ike_conns.push((spec, c.ike.as_ref().map_or(StartAction::None, |i| i.start_action)));
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
    let (ike_tx, ike_rx) = crate::dataplane::ike_handoff();
    let ike_tx = (!ike_conns.is_empty()).then_some(ike_tx);
    let (acq_tx, acq_rx) = crate::dataplane::acquire_channel();
    let acq_tx = (!ike_conns.is_empty()).then_some(acq_tx);
    let plane = DataPlane::start(
        io.tun,
        io.sockets,
        outbound,
        inbound,
        names,
        cfg.daemon.mtu as usize,
        ike_tx,
        acq_tx,
    )
    .map_err(|e| format!("starting the data plane: {e}"))?;
    let setup = crate::ike::IkeSetup {
        conns: ike_conns,
        slots,
        manual,
        seq_store,
        sock500: io.sock500,
        sock4500,
        from_plane: ike_rx,
        acquires: acq_rx,
        retransmit: ikeda_ike::RetransmitPolicy {
            timeout: Duration::from_millis(cfg.daemon.retransmit.0),
            base: cfg.daemon.retransmit.1,
            tries: cfg.daemon.retransmit.2,
        },
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
            Err(format!("starting IKE: {e}"))
        }
    }
}

#[cfg(test)]
mod tests;
