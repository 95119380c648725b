//! The running data plane: threads that move packets between the TUN
//! device and the network, feeding the sans-IO ESP core.
//!
//! ```text
//! TX threads: TUN read_batch (one queue each) -> SPD -> SA -> [IPComp: deflate] -> encapsulate in place
//!             -> send_batch per socket
//! RX thread (one per socket): recv_batch -> [UDP: RFC 3948 classify] -> SAD by SPI
//!             -> replay check -> ICV + decrypt -> replay commit -> [IPComp: CPI, inflate]
//!             -> selectors -> TUN write
//! ```
//!
//! IPComp (RFC 3173): each thread keeps its one (de)compressor in its half
//! (`Outbound::ipcomp`, `Inbound::ipcomp`); a compressed packet is written
//! back into its batch slot, so the receive slots have room for an inner
//! packet of the TUN MTU whatever the size on the wire.
//!
//! Each RX thread owns the inbound SAs that arrive on its socket; the TX
//! threads, one per TUN queue (`[daemon] tun_queues`), share the SPD and
//! the outbound SAs behind one lock taken once per batch ([`TxState`] says
//! why), never contended with one queue. Nothing is allocated per packet.
//! Counters are atomics the control side reads at any time. The control
//! plane changes SAs and policies through [`Control`]: each change is a
//! message to the owning thread (for the TX side, to whichever TX thread
//! takes the lock next), applied between two batches, so an SA is swapped
//! whole and the data plane never waits on the control plane.
//!
//! IKE messages that arrive on the UDP/4500 socket behind the non-ESP
//! marker (RFC 3948 §2.2) are handed to the control plane as [`IkeDatagram`]s.

use crate::show::IpcompOut;
use ikeda_esp::{DropCounters, Encap, Inbound, InboundSa, Outbound, OutboundSa, Room, SaStats, Spd};
use ikeda_sys::{DatagramIo, PacketBatch, TunDevice, TunQueues, MAX_BATCH};
use ikeda_wire::udp_encap::{self, Udp4500Payload};
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a blocked read waits before looking at the stop flag and the
/// control plane's updates (the most an idle thread delays an SA install).
const POLL: Duration = Duration::from_millis(20);

/// An IKE message received on the ESP socket (UDP/4500, non-ESP marker
/// removed), for the control plane.
#[derive(Debug, Clone)]
pub struct IkeDatagram {
    pub data: Vec<u8>,
    pub from: SocketAddr,
    pub local: IpAddr,
}

/// A change to the TX threads' shared state ([`TxState`]).
pub enum TxUpdate {
    /// Put an SA into an outbound slot, replacing what was there (the
    /// make-before-break switch of a rekey), or empty the slot.
    SetSa { slot: usize, sa: Option<OutboundSa> },
    /// Send on the slot's previous SA again (the one `SetSa` replaced),
    /// if its SPI is `spi`: its sequence counter goes on where it stopped.
    Restore { slot: usize, spi: u32 },
    /// The slot's previous SA is gone: forget it (and its keys).
    DropPrevious { slot: usize },
    /// Replace the whole SPD.
    SetSpd(Spd),
    /// Hold packets for a slot without SA and ask for it (start_action = trap).
    SetTrap { slot: usize },
    /// No longer a trap (a reload changed or removed the connection).
    ClearTrap { slot: usize },
}

/// Packets held per trap slot until its SA is up; more are dropped.
pub const TRAP_QUEUE: usize = 64;

/// IKE datagrams from UDP 4500 waiting for the IKE thread; more are dropped
/// and counted (`ike_queue_full`).
pub const IKE_QUEUE: usize = 1024;

/// A change to an RX thread's SAD.
pub enum RxUpdate {
    Install(InboundSa),
    Remove(u32),
}

/// The control plane's handle on a running data plane.
#[derive(Clone)]
pub struct Control {
    tx: Sender<TxUpdate>,
    rx: Vec<(Encap, IpAddr, Sender<RxUpdate>)>,
    views: Arc<Mutex<Vec<SaView>>>,
    /// The outbound view each slot had before its SA was replaced, for
    /// [`Control::restore_outbound`].
    previous_views: Arc<Mutex<HashMap<usize, SaView>>>,
}

impl Control {
    /// Install (or with `None`, remove) the outbound SA of a slot.
    pub fn set_outbound(&self, conn: &str, slot: usize, sa: Option<OutboundSa>) -> Result<(), String> {
        let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        let old = views
            .iter()
            .position(|v| v.direction == "out" && v.slot == Some(slot))
            .map(|k| views.remove(k));
        let mut previous = self.previous_views.lock().unwrap_or_else(|p| p.into_inner());
        match old.filter(|_| sa.is_some()) {
            Some(v) => previous.insert(slot, v),
            None => previous.remove(&slot),
        };
        if let Some(sa) = &sa {
            views.push(SaView::outbound(conn, slot, sa));
        }
        self.tx
            .send(TxUpdate::SetSa { slot, sa })
            .map_err(|_| "data plane stopped".to_string())
    }

    /// Send on the SA a slot held before its current one again (the
    /// current one is gone): the data plane kept it, sequence counter and
    /// all. Nothing happens if the slot's previous SA is not `spi`.
    pub fn restore_outbound(&self, slot: usize, spi: u32) -> Result<(), String> {
        let mut previous = self.previous_views.lock().unwrap_or_else(|p| p.into_inner());
        if previous.get(&slot).is_some_and(|v| v.spi == spi) {
            let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
            views.retain(|v| !(v.direction == "out" && v.slot == Some(slot)));
            views.extend(previous.remove(&slot));
        }
        self.tx
            .send(TxUpdate::Restore { slot, spi })
            .map_err(|_| "data plane stopped".to_string())
    }

    /// The slot's previous SA was deleted: the data plane forgets it.
    pub fn drop_previous(&self, slot: usize) -> Result<(), String> {
        self.previous_views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&slot);
        self.tx
            .send(TxUpdate::DropPrevious { slot })
            .map_err(|_| "data plane stopped".to_string())
    }

    /// Install an inbound SA on the RX thread of its socket.
    pub fn install_inbound(&self, conn: &str, sa: InboundSa) -> Result<(), String> {
        let (_, _, ch) = self
            .rx
            .iter()
            .find(|(e, l, _)| *e == sa.encap && *l == sa.local.ip())
            .ok_or_else(|| {
                format!(
                    "no socket for inbound SA {:#x} ({:?} on {})",
                    sa.spi,
                    sa.encap,
                    sa.local.ip()
                )
            })?;
        let v = SaView::inbound(conn, &sa);
        self.views.lock().unwrap_or_else(|p| p.into_inner()).push(v);
        ch.send(RxUpdate::Install(sa))
            .map_err(|_| "data plane stopped".to_string())
    }

    /// Remove an inbound SA by SPI.
    pub fn remove_inbound(&self, spi: u32) {
        self.views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|v| !(v.direction == "in" && v.spi == spi));
        for (_, _, ch) in &self.rx {
            let _ = ch.send(RxUpdate::Remove(spi));
        }
    }

    pub fn set_spd(&self, spd: Spd) -> Result<(), String> {
        self.tx
            .send(TxUpdate::SetSpd(spd))
            .map_err(|_| "data plane stopped".to_string())
    }

    /// The live counters of the SA with this SPI in `direction`, if installed.
    pub fn sa_stats(&self, spi: u32, direction: &str) -> Option<Arc<SaStats>> {
        let views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        let v = views.iter().find(|v| v.spi == spi && v.direction == direction)?;
        Some(v.stats.clone())
    }

    /// Bytes and packets an SA carried in `direction`.
    pub fn sa_counts(&self, spi: u32, direction: &str) -> Option<(u64, u64)> {
        self.sa_stats(spi, direction)
            .map(|s| (s.bytes.load(Ordering::Relaxed), s.packets.load(Ordering::Relaxed)))
    }

    /// Make a slot a trap: packets for it are held and an acquire is raised.
    pub fn set_trap(&self, slot: usize) -> Result<(), String> {
        self.tx
            .send(TxUpdate::SetTrap { slot })
            .map_err(|_| "data plane stopped".to_string())
    }

    pub fn clear_trap(&self, slot: usize) -> Result<(), String> {
        self.tx
            .send(TxUpdate::ClearTrap { slot })
            .map_err(|_| "data plane stopped".to_string())
    }

    /// The SAs installed right now, with their live counters.
    pub fn views(&self) -> Vec<SaView> {
        self.views.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A socket of any kind (UDP, raw ESP, a test's fake) behind the
/// [`DatagramIo`] trait: what the daemon hands the data plane and the IKE
/// thread. One indirect call per batch, not per packet.
pub type DynIo = Arc<dyn DatagramIo>;

/// A socket the data plane sends and receives ESP on.
pub struct NetSocket<D> {
    pub encap: Encap,
    pub local: IpAddr,
    pub io: D,
}

/// The hand-off of IKE datagrams from UDP 4500 to the IKE thread, bounded
/// by [`IKE_QUEUE`]: anyone can send non-ESP-marker datagrams to 4500, so
/// when the IKE thread falls behind the receive thread drops them (counted)
/// rather than queue without limit.
pub fn ike_handoff() -> (SyncSender<IkeDatagram>, Receiver<IkeDatagram>) {
    sync_channel(IKE_QUEUE)
}

/// Trap acquires waiting for the IKE thread. Each slot asks at most once a
/// second, so this is plenty; one dropped is asked again a second later.
pub const ACQUIRE_QUEUE: usize = 64;

/// The acquire channel from the TX threads to the IKE thread.
pub fn acquire_channel() -> (SyncSender<usize>, Receiver<usize>) {
    sync_channel(ACQUIRE_QUEUE)
}

/// Counters that are not tied to an SA.
#[derive(Default, Debug)]
pub struct PlaneCounters {
    /// Datagrams on the UDP socket that carried IKE (non-ESP marker) or a
    /// NAT keepalive: not ESP, passed over (no IKE in this build).
    pub udp_non_esp: AtomicU64,
    /// I/O errors from sockets or the TUN device.
    pub io_errors: AtomicU64,
    /// Packets held for a trap policy, and those sent once the SA was up.
    pub trap_held: AtomicU64,
    pub trap_released: AtomicU64,
    /// IKE datagrams from UDP 4500 dropped because the hand-off to the IKE
    /// thread was full ([`IKE_QUEUE`]): a flood, or an IKE thread behind.
    pub ike_queue_full: AtomicU64,
    /// Packets sent / written to TUN.
    pub tx_packets: AtomicU64,
    pub rx_packets: AtomicU64,
    /// TCP receive coalescing: super-packets written to the TUN, and the
    /// segments they held.
    pub gro_packets: AtomicU64,
    pub gro_segments: AtomicU64,
}

/// One SA's identity and counters, for `status`.
#[derive(Clone)]
pub struct SaView {
    pub conn: String,
    /// Outbound slot, for SAs installed through [`Control`].
    pub slot: Option<usize>,
    pub direction: &'static str,
    pub spi: u32,
    pub algorithm: String,
    pub encap: Encap,
    pub stats: Arc<SaStats>,
    /// Inbound: the replay window size (0 outbound).
    pub replay_window: u32,
    /// The SA's IPComp CPI (outbound: the one we send, inbound: the one
    /// we accept), if it compresses.
    pub ipcomp_cpi: Option<u16>,
    /// Outbound in UDP: its most datagrams per `UDP_SEGMENT` train
    /// ([`OutboundSa::train`]).
    pub udp_train: Option<u8>,
}

impl SaView {
    /// The view of an outbound SA sending from `slot`.
    fn outbound(conn: &str, slot: usize, sa: &OutboundSa) -> Self {
        SaView {
            conn: conn.into(),
            slot: Some(slot),
            direction: "out",
            spi: sa.spi,
            algorithm: sa.algorithm().name(),
            encap: sa.encap,
            stats: sa.stats.clone(),
            replay_window: 0,
            ipcomp_cpi: sa.ipcomp_cpi(),
            udp_train: (sa.encap == Encap::Udp).then_some(sa.train),
        }
    }

    /// The view of an inbound SA.
    fn inbound(conn: &str, sa: &InboundSa) -> Self {
        SaView {
            conn: conn.into(),
            slot: None,
            direction: "in",
            spi: sa.spi,
            algorithm: sa.algorithm().name(),
            encap: sa.encap,
            stats: sa.stats.clone(),
            replay_window: sa.replay_window().size(),
            ipcomp_cpi: sa.ipcomp_cpi(),
            udp_train: None,
        }
    }
}

/// What the control side can see of a running data plane.
#[derive(Clone)]
pub struct StatsView {
    pub outbound_drops: Arc<DropCounters>,
    pub inbound_drops: Vec<Arc<DropCounters>>,
    pub counters: Arc<PlaneCounters>,
    pub sas: Arc<Mutex<Vec<SaView>>>,
    /// For the TUN's segmentation offload counters.
    pub tun: Arc<dyn TunDevice>,
    /// Per TUN queue, the packets its TX thread read.
    pub tx_queues: Arc<[AtomicU64]>,
    /// Each UDP socket's counters of syscalls, datagrams and trains.
    pub udp: Vec<UdpCountersFn>,
}

/// Reads one UDP socket's counters ([`DatagramIo::udp_counters`]).
pub type UdpCountersFn = Arc<dyn Fn() -> Option<ikeda_sys::UdpOffloadCounters> + Send + Sync>;

/// The UDP sockets' batching and segmentation offload (`UDP_SEGMENT`,
/// `UDP_GRO`), summed over the data plane's UDP sockets: datagrams per
/// syscall are `send_datagrams / send_syscalls` and
/// `recv_datagrams / recv_syscalls`.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpOffloadSnapshot {
    /// `UDP_SEGMENT` sends on (on every UDP socket, none refused yet).
    pub gso: bool,
    /// `UDP_GRO` receives on (every UDP socket).
    pub gro: bool,
    pub send_syscalls: u64,
    pub send_datagrams: u64,
    /// Trains of two datagrams or more sent with `UDP_SEGMENT`, and their datagrams.
    pub gso_sends: u64,
    pub gso_datagrams: u64,
    /// Sockets on which the kernel refused a train (they now send one by one).
    pub gso_fallbacks: u64,
    pub recv_syscalls: u64,
    pub recv_datagrams: u64,
    /// Trains of two datagrams or more received with `UDP_GRO`, and their datagrams.
    pub gro_trains: u64,
    pub gro_datagrams: u64,
    /// Received trains dropped whole as malformed.
    pub gro_malformed: u64,
}

impl UdpOffloadSnapshot {
    /// The sum over sockets; `None` when there is no UDP socket.
    fn sum(all: impl IntoIterator<Item = ikeda_sys::UdpOffloadCounters>) -> Option<Self> {
        let mut out: Option<Self> = None;
        for c in all {
            let o = out.get_or_insert(UdpOffloadSnapshot {
                gso: true,
                gro: true,
                ..Default::default()
            });
            o.gso &= c.gso_on;
            o.gro &= c.gro_on;
            o.send_syscalls += c.send_syscalls;
            o.send_datagrams += c.send_datagrams;
            o.gso_sends += c.gso_sends;
            o.gso_datagrams += c.gso_datagrams;
            o.gso_fallbacks += c.gso_fallbacks;
            o.recv_syscalls += c.recv_syscalls;
            o.recv_datagrams += c.recv_datagrams;
            o.gro_trains += c.gro_trains;
            o.gro_datagrams += c.gro_datagrams;
            o.gro_malformed += c.gro_malformed;
        }
        out
    }
}

/// The TUN's segmentation offload counters (see `ikeda_sys::OffloadCounters`).
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadSnapshot {
    /// Super-packets (more than one segment) read from the TUN.
    pub gso_packets: u64,
    /// Packets handed to the data plane (segments and single packets).
    pub segments: u64,
    /// Reads dropped as unsegmentable or truncated.
    pub dropped: u64,
    /// Coalesced TCP super-packets written to the TUN, and their segments.
    pub gro_packets: u64,
    pub gro_segments: u64,
}

#[derive(Serialize)]
pub struct SaSnapshot {
    pub conn: String,
    pub direction: &'static str,
    pub spi: String,
    pub algorithm: String,
    pub encap: String,
    pub packets: u64,
    pub bytes: u64,
    pub seq: u64,
    pub last_packet_ms: u64,
    pub drops: std::collections::BTreeMap<&'static str, u64>,
    /// Only for SAs with IPComp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipcomp: Option<IpcompOut>,
    /// Only outbound in UDP: most datagrams per `UDP_SEGMENT` train (64
    /// when the peer said it takes full trains, else 16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_train: Option<u8>,
}

/// An SA's IPComp CPI and counters, for the stats file and `show child`.
pub fn ipcomp_snapshot(cpi: Option<u16>, s: &ikeda_esp::IpcompStats) -> Option<IpcompOut> {
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Some(IpcompOut {
        cpi: format!("{:#06x}", cpi?),
        compressed: l(&s.compressed),
        too_small: l(&s.too_small),
        not_smaller: l(&s.not_smaller),
        uncompressed: l(&s.uncompressed),
        bytes_uncompressed: l(&s.bytes_uncompressed),
        bytes_compressed: l(&s.bytes_compressed),
    })
}

#[derive(Serialize)]
pub struct Snapshot {
    pub time_ms: u64,
    pub tx_packets: u64,
    /// Per TUN queue, the packets its TX thread read (`[daemon] tun_queues`).
    pub tx_queues: Vec<u64>,
    pub rx_packets: u64,
    pub udp_non_esp: u64,
    pub io_errors: u64,
    /// Absent when the TUN has no segmentation offload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tun_offload: Option<OffloadSnapshot>,
    /// Absent when the data plane has no UDP socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_offload: Option<UdpOffloadSnapshot>,
    pub drops: std::collections::BTreeMap<&'static str, u64>,
    pub sas: Vec<SaSnapshot>,
}

impl StatsView {
    pub fn snapshot(&self) -> Snapshot {
        let mut drops = std::collections::BTreeMap::new();
        for d in std::iter::once(&self.outbound_drops).chain(self.inbound_drops.iter()) {
            for (k, v) in d.nonzero() {
                *drops.entry(k).or_insert(0) += v;
            }
        }
        let c = &self.counters;
        let ike_queue_full = c.ike_queue_full.load(Ordering::Relaxed);
        if ike_queue_full > 0 {
            drops.insert("ike_queue_full", ike_queue_full);
        }
        let udp_offload = UdpOffloadSnapshot::sum(self.udp.iter().filter_map(|f| f()));
        if let Some(n) = udp_offload.map(|u| u.gro_malformed).filter(|n| *n > 0) {
            drops.insert("udp_gro_malformed", n);
        }
        Snapshot {
            time_ms: now_ms(),
            tx_packets: c.tx_packets.load(Ordering::Relaxed),
            tx_queues: self.tx_queues.iter().map(|q| q.load(Ordering::Relaxed)).collect(),
            rx_packets: c.rx_packets.load(Ordering::Relaxed),
            udp_non_esp: c.udp_non_esp.load(Ordering::Relaxed),
            io_errors: c.io_errors.load(Ordering::Relaxed),
            tun_offload: self.tun.offload_counters().map(|o| OffloadSnapshot {
                gso_packets: o.gso_packets,
                segments: o.segments,
                dropped: o.dropped,
                gro_packets: c.gro_packets.load(Ordering::Relaxed),
                gro_segments: c.gro_segments.load(Ordering::Relaxed),
            }),
            udp_offload,
            drops,
            sas: self
                .sas
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|s| SaSnapshot {
                    conn: s.conn.clone(),
                    direction: s.direction,
                    spi: format!("{:#010x}", s.spi),
                    algorithm: s.algorithm.clone(),
                    encap: match s.encap {
                        Encap::Esp => "esp".into(),
                        Encap::Udp => "udp".into(),
                    },
                    packets: s.stats.packets.load(Ordering::Relaxed),
                    bytes: s.stats.bytes.load(Ordering::Relaxed),
                    seq: s.stats.seq.load(Ordering::Relaxed),
                    last_packet_ms: s.stats.last_packet_ms.load(Ordering::Relaxed),
                    drops: s.stats.drops.nonzero().into_iter().collect(),
                    ipcomp: ipcomp_snapshot(s.ipcomp_cpi, &s.stats.ipcomp),
                    udp_train: s.udp_train,
                })
                .collect(),
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A started data plane; dropping it does not stop it: call [`stop`].
///
/// [`stop`]: DataPlane::stop
pub struct DataPlane {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub stats: StatsView,
    pub control: Control,
}

impl DataPlane {
    /// Start the threads: one TX thread per queue of `tun` (at least one;
    /// `ikeda_sys::Tun::open_queues`), one RX thread per socket, which
    /// writes through the queues by flow (`TunQueues`). `sas_in` are
    /// distributed to the RX thread of the socket whose encapsulation and
    /// local address they use. IKE messages on UDP sockets go to `ike`
    /// (dropped and counted when `None`).
    pub fn start<T, D>(
        tun: Vec<Arc<T>>,
        sockets: Vec<Arc<NetSocket<D>>>,
        outbound: Outbound,
        sas_in: Vec<(String, InboundSa)>,
        out_names: Vec<String>,
        mtu: usize,
        ike: Option<SyncSender<IkeDatagram>>,
        acquire: Option<SyncSender<usize>>,
    ) -> std::io::Result<DataPlane>
    where
        T: TunDevice + 'static,
        D: DatagramIo + 'static,
    {
        let tun = Arc::new(TunQueues::new(tun).ok_or_else(|| std::io::Error::other("no TUN queue"))?);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(PlaneCounters::default());
        let mut sas = Vec::new();
        for (slot, (sa, name)) in outbound.sas.iter().zip(&out_names).enumerate() {
            if let Some(sa) = sa {
                sas.push(SaView::outbound(name, slot, sa));
            }
        }
        // Sort the inbound SAs onto their sockets.
        let mut per_socket: Vec<Vec<InboundSa>> = sockets.iter().map(|_| Vec::new()).collect();
        for (name, sa) in sas_in {
            sas.push(SaView::inbound(&name, &sa));
            let k = socket_for(&sockets, sa.encap, sa.local.ip())
                .ok_or_else(|| std::io::Error::other(format!("no socket for inbound SA {:#x}", sa.spi)))?;
            per_socket[k].push(sa);
        }
        let mut inbound_drops = Vec::new();
        let mut threads = Vec::new();
        let mut rx_controls = Vec::new();
        for (k, sas) in per_socket.into_iter().enumerate() {
            let inbound = Inbound::new(sas);
            inbound_drops.push(inbound.drops.clone());
            let (up_tx, up_rx) = channel();
            rx_controls.push((sockets[k].encap, sockets[k].local, up_tx));
            let (tun, sock, stop, counters) = (tun.clone(), sockets[k].clone(), stop.clone(), counters.clone());
            let ike = ike.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("esp-rx{k}"))
                    .spawn(move || rx_loop(&*tun, &sock, inbound, up_rx, ike, mtu, &stop, &counters))?,
            );
        }
        let sas = Arc::new(Mutex::new(sas));
        let tx_queues: Arc<[AtomicU64]> = tun.queues().iter().map(|_| AtomicU64::new(0)).collect();
        let stats = StatsView {
            tx_queues: tx_queues.clone(),
            outbound_drops: outbound.drops.clone(),
            inbound_drops,
            counters: counters.clone(),
            sas: sas.clone(),
            tun: tun.clone(),
            udp: sockets
                .iter()
                .filter(|s| s.encap == Encap::Udp)
                .map(|s| {
                    let s = s.clone();
                    Arc::new(move || s.io.udp_counters()) as UdpCountersFn
                })
                .collect(),
        };
        let (tx_up, tx_up_rx) = channel();
        let room = tx_room(&outbound);
        let state = TxState::new(outbound, tx_up_rx, acquire, tx_slot(room, mtu), sockets.len());
        let state = Arc::new(Mutex::new(state));
        // One TX thread per TUN queue (see TxState for what they share).
        for (q, queue) in tun.queues().iter().enumerate() {
            let (queue, sockets, state) = (queue.clone(), sockets.clone(), state.clone());
            let (stop, counters, read) = (stop.clone(), counters.clone(), tx_queues.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("esp-tx{q}"))
                    .spawn(move || tx_loop(&*queue, &sockets, &state, room, mtu, &stop, (&counters, &read[q])))?,
            );
        }
        let control = Control {
            tx: tx_up,
            rx: rx_controls,
            views: sas,
            previous_views: Arc::new(Mutex::new(HashMap::new())),
        };
        Ok(DataPlane {
            stop,
            threads,
            stats,
            control,
        })
    }

    /// True while every thread runs.
    pub fn is_running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Ask the threads to stop and wait for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn io_error(counters: &PlaneCounters, what: &str, e: &std::io::Error) {
    let n = counters.io_errors.fetch_add(1, Ordering::Relaxed);
    // Rate-limit: the first few, then every 1000th.
    if n < 5 || n.is_multiple_of(1000) {
        tracing::warn!(target: "esp", "{what}: {e} ({} I/O errors so far)", n + 1);
    }
}

/// The number of packets a batched receive returned; an I/O error is
/// counted, logged (rate-limited) and backed off from, never fatal.
fn counted(r: std::io::Result<usize>, counters: &PlaneCounters, what: &str) -> usize {
    r.unwrap_or_else(|e| {
        io_error(counters, what, &e);
        std::thread::sleep(Duration::from_millis(10));
        0
    })
}

/// Index of the socket that carries SAs with this encapsulation and local address.
fn socket_for<D>(sockets: &[Arc<NetSocket<D>>], encap: Encap, local: IpAddr) -> Option<usize> {
    sockets.iter().position(|s| s.encap == encap && s.local == local)
}

type TrapSlot = Option<(std::collections::VecDeque<Vec<u8>>, Option<std::time::Instant>)>;

/// A packet met a policy without SA: if its slot is a trap, keep it (up to
/// [`TRAP_QUEUE`]) and ask the control plane for the SA, at most once a
/// second. Returns false when the packet is not for a trap.
fn hold(
    outbound: &Outbound,
    traps: &mut [TrapSlot],
    pkt: &[u8],
    acquire: Option<&SyncSender<usize>>,
    counters: &PlaneCounters,
) -> bool {
    let Some(slot) = outbound.slot_for(pkt) else {
        return false;
    };
    let Some(Some((held, asked))) = traps.get_mut(slot) else {
        return false;
    };
    if held.len() < TRAP_QUEUE {
        held.push_back(pkt.to_vec());
        counters.trap_held.fetch_add(1, Ordering::Relaxed);
    }
    if asked.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
        *asked = Some(std::time::Instant::now());
        if let Some(a) = acquire {
            // Full: the next packet asks again in a second.
            let _ = a.try_send(slot);
        }
    }
    true
}

/// What the TX threads share: the outbound half and what goes with its
/// SAs.
///
/// Why one lock over it, held from numbering a batch to sending it: an
/// SA's sequence numbers must reach the peer in order, or nearly (its
/// replay window may be 32 packets, strongSwan's default; RFC 4303 §3.4.3
/// drops what falls behind it), so one writer at a time numbers, seals and
/// sends. What each thread does without the lock, on its own TUN queue, is
/// the read and the cutting of super-packets. SAs that seal in parallel
/// would need one such lock each, or one SA per queue (RFC 9611).
struct TxState {
    outbound: Outbound,
    updates: Receiver<TxUpdate>,
    acquire: Option<SyncSender<usize>>,
    exhausted_logged: Vec<bool>,
    /// Per slot, the SA the last SetSa replaced (TxUpdate::Restore).
    previous: Vec<Option<OutboundSa>>,
    /// Trap slots: packets held until the SA is up, and when we last asked.
    traps: Vec<TrapSlot>,
    /// Where held packets are sealed when their SA comes up.
    scratch: Vec<u8>,
    /// Per socket: UDP_SEGMENT was refused and that was logged.
    gso_refusal_logged: Vec<bool>,
}

/// Head and tail room the TX threads leave around each inner packet.
fn tx_room(outbound: &Outbound) -> Room {
    let room = outbound.max_room();
    // Headroom for the ESP header and IV; tailroom for padding, trailer, ICV.
    Room {
        head: room.head.max(32),
        tail: room.tail.max(64),
    }
}

/// The buffer a TX thread seals one packet in: `room` around an inner
/// packet of the TUN MTU (1500 at least).
fn tx_slot(room: Room, mtu: usize) -> usize {
    room.head + mtu.max(1500) + room.tail
}

impl TxState {
    fn new(
        outbound: Outbound,
        updates: Receiver<TxUpdate>,
        acquire: Option<SyncSender<usize>>,
        scratch: usize,
        sockets: usize,
    ) -> Self {
        TxState {
            exhausted_logged: vec![false; outbound.sas.len()],
            outbound,
            updates,
            acquire,
            previous: Vec::new(),
            traps: Vec::new(),
            scratch: vec![0u8; scratch],
            gso_refusal_logged: vec![false; sockets],
        }
    }

    /// The control plane's changes since the last batch.
    fn apply_updates<D: DatagramIo>(&mut self, sockets: &[Arc<NetSocket<D>>], room: Room, counters: &PlaneCounters) {
        while let Ok(u) = self.updates.try_recv() {
            match u {
                TxUpdate::SetSa { slot, sa } => self.set_sa(slot, sa, sockets, room, counters),
                TxUpdate::Restore { slot, spi } => {
                    if let Some(p) = self
                        .previous
                        .get_mut(slot)
                        .filter(|p| p.as_ref().is_some_and(|o| o.spi == spi))
                    {
                        self.outbound.sas[slot] = p.take();
                        self.exhausted_logged[slot] = false;
                    }
                }
                TxUpdate::DropPrevious { slot } => {
                    if let Some(p) = self.previous.get_mut(slot) {
                        *p = None;
                    }
                }
                TxUpdate::SetSpd(spd) => self.outbound.spd = spd,
                TxUpdate::SetTrap { slot } => {
                    if slot >= self.traps.len() {
                        self.traps.resize_with(slot + 1, || None);
                    }
                    if slot >= self.outbound.traps.len() {
                        self.outbound.traps.resize(slot + 1, false);
                    }
                    self.outbound.traps[slot] = true;
                    self.traps[slot] = Some((std::collections::VecDeque::new(), None));
                }
                TxUpdate::ClearTrap { slot } => {
                    if let Some(t) = self.outbound.traps.get_mut(slot) {
                        *t = false;
                    }
                    if let Some(t) = self.traps.get_mut(slot) {
                        *t = None;
                    }
                }
            }
        }
    }

    fn set_sa<D: DatagramIo>(
        &mut self,
        slot: usize,
        sa: Option<OutboundSa>,
        sockets: &[Arc<NetSocket<D>>],
        room: Room,
        counters: &PlaneCounters,
    ) {
        if slot >= self.outbound.sas.len() {
            self.outbound.sas.resize_with(slot + 1, || None);
            self.exhausted_logged.resize(slot + 1, false);
        }
        self.exhausted_logged[slot] = false;
        if slot >= self.previous.len() {
            self.previous.resize_with(slot + 1, || None);
        }
        let kept = sa.is_some();
        let old = std::mem::replace(&mut self.outbound.sas[slot], sa);
        self.previous[slot] = old.filter(|_| kept);
        // The SA a trap asked for is up: send what was held, in order.
        let Some(Some((held, asked))) = self.traps.get_mut(slot) else {
            return;
        };
        if self.outbound.sas[slot].is_none() {
            return;
        }
        *asked = None;
        let now = now_ms();
        while let Some(p) = held.pop_front() {
            let off = room.head;
            if off + p.len() + room.tail > self.scratch.len() {
                continue;
            }
            self.scratch[off..off + p.len()].copy_from_slice(&p);
            if let Ok((range, dst)) = self.outbound.process(&mut self.scratch, off, p.len(), now) {
                if let Some(k) = socket_for(sockets, dst.encap, dst.local.ip()) {
                    if sockets[k].io.send_batch(&[&self.scratch[range]], &[dst.remote]).is_ok() {
                        counters.trap_released.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// A packet `process` could not send for `reason`.
    fn dropped(&mut self, reason: ikeda_esp::DropReason) {
        if reason != ikeda_esp::DropReason::SeqExhausted {
            return;
        }
        for (k, sa) in self.outbound.sas.iter().enumerate() {
            if sa.as_ref().is_some_and(|s| s.is_exhausted()) && !self.exhausted_logged[k] {
                self.exhausted_logged[k] = true;
                tracing::error!(target: "esp", "outbound SA {:#010x} has used its last sequence number: it stops sending (RFC 4303 §3.3.3); a new SA is needed", sa.as_ref().map_or(0, |s| s.spi));
            }
        }
    }
}

/// One TX thread's own buffers: its batch and, per packet, where it goes.
struct TxBatch {
    batch: PacketBatch,
    dest_socket: [usize; MAX_BATCH],
    /// Per packet, its SA's train (OutboundSa::train).
    train_of: [u8; MAX_BATCH],
}

/// One TX thread: reads its TUN queue, then under the shared state's lock
/// applies the control plane's changes, seals the batch and sends it.
fn tx_loop<T: TunDevice, D: DatagramIo>(
    tun: &T,
    sockets: &[Arc<NetSocket<D>>],
    state: &Mutex<TxState>,
    room: Room,
    mtu: usize,
    stop: &AtomicBool,
    (counters, read): (&PlaneCounters, &AtomicU64),
) {
    let mut own = TxBatch {
        batch: PacketBatch::new(MAX_BATCH, tx_slot(room, mtu), room.head),
        dest_socket: [usize::MAX; MAX_BATCH],
        train_of: [0u8; MAX_BATCH],
    };
    while !stop.load(Ordering::Relaxed) {
        let n = counted(tun.read_batch(&mut own.batch, Some(POLL)), counters, "TUN read");
        if n > 0 {
            read.fetch_add(n as u64, Ordering::Relaxed);
        }
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        // Updates are applied after the read, so a packet that arrived while
        // we waited already sees an SA the control plane installed meanwhile.
        st.apply_updates(sockets, room, counters);
        if n > 0 {
            seal_batch(&mut st, &mut own, n, sockets, counters);
            send_batch(&mut st, &own, n, sockets, counters);
        }
        // The SAs' counters, once per batch (see OutboundSa::flush_stats);
        // released trap packets are counted by now.
        st.outbound.flush_stats();
    }
}

/// Seal the `n` packets of `own.batch` in place, each for its SA.
fn seal_batch<D: DatagramIo>(
    st: &mut TxState,
    own: &mut TxBatch,
    n: usize,
    sockets: &[Arc<NetSocket<D>>],
    counters: &PlaneCounters,
) {
    let now = now_ms();
    let batch = &mut own.batch;
    for i in 0..n {
        let m = batch.meta(i);
        own.dest_socket[i] = usize::MAX;
        match st.outbound.process(batch.slot_mut(i), m.start, m.len, now) {
            Ok((range, dst)) => {
                batch.set_packet(i, range.start, range.len(), Some(dst.remote));
                own.dest_socket[i] = socket_for(sockets, dst.encap, dst.local.ip()).unwrap_or(usize::MAX);
                own.train_of[i] = dst.train;
            }
            Err(ikeda_esp::DropReason::HeldForSa)
                if hold(
                    &st.outbound,
                    &mut st.traps,
                    batch.packet(i),
                    st.acquire.as_ref(),
                    counters,
                ) =>
            {
                batch.discard(i);
            }
            Err(reason) => {
                st.dropped(reason);
                batch.discard(i);
            }
        }
    }
}

/// Send the sealed packets of `own`, one batch per socket.
fn send_batch<D: DatagramIo>(
    st: &mut TxState,
    own: &TxBatch,
    n: usize,
    sockets: &[Arc<NetSocket<D>>],
    counters: &PlaneCounters,
) {
    let unspec = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    for (k, sock) in sockets.iter().enumerate() {
        // Borrowed views of this batch's packets, for sendmmsg.
        let mut pkts: [&[u8]; MAX_BATCH] = [&[]; MAX_BATCH];
        let mut dsts = [unspec; MAX_BATCH];
        let mut trains = [0u8; MAX_BATCH];
        let mut c = 0;
        for i in 0..n {
            if own.dest_socket[i] == k {
                let m = own.batch.meta(i);
                if let Some(a) = m.addr {
                    pkts[c] = own.batch.packet(i);
                    dsts[c] = a;
                    trains[c] = own.train_of[i];
                    c += 1;
                }
            }
        }
        if c == 0 {
            continue;
        }
        match sock.io.send_batch_trains(&pkts[..c], &dsts[..c], &trains[..c]) {
            Ok(sent) => {
                counters.tx_packets.fetch_add(sent as u64, Ordering::Relaxed);
            }
            Err(e) => io_error(counters, "ESP send", &e),
        }
        if sock.encap == Encap::Udp && !st.gso_refusal_logged[k] {
            if let Some(u) = sock.io.udp_counters().filter(|u| u.gso_fallbacks > 0) {
                st.gso_refusal_logged[k] = true;
                let why = std::io::Error::from_raw_os_error(u.gso_refused_errno);
                tracing::warn!(target: "esp", "UDP {}: the kernel refused a UDP_SEGMENT train ({why}); sending one datagram per entry on this socket from now on", sock.local);
            }
        }
    }
}

fn rx_loop<T: TunDevice, D: DatagramIo>(
    tun: &T,
    sock: &NetSocket<D>,
    mut inbound: Inbound,
    updates: Receiver<RxUpdate>,
    ike: Option<SyncSender<IkeDatagram>>,
    mtu: usize,
    stop: &AtomicBool,
    counters: &PlaneCounters,
) {
    // Room for the largest outer datagram: inner MTU plus ESP and IP overhead.
    let mut batch = PacketBatch::new(MAX_BATCH, mtu.max(1500) + 256, 0);
    // TCP receive coalescing, where the TUN takes GSO writes; each packet's
    // SPI, so that segments of different SAs are never joined.
    let mut gro = tun.accepts_vnet().then(ikeda_wire::vnet::Gro::new);
    let mut spis = [0u32; MAX_BATCH];
    // UDP_GRO that never sees a train: told once (see gro_hint).
    let mut gro_check = sock.io.udp_counters().map(|c| (std::time::Instant::now(), c));
    while !stop.load(Ordering::Relaxed) {
        let n = counted(sock.io.recv_batch(&mut batch, Some(POLL)), counters, "ESP receive");
        if let Some((at, before)) = gro_check.as_mut().filter(|(at, _)| at.elapsed() >= GRO_CHECK) {
            let now = sock.io.udp_counters().unwrap_or_default();
            if let Some(h) = gro_hint(before, &now, sock.local) {
                tracing::warn!(target: "esp", "{h}");
                gro_check = None;
            } else {
                (*at, *before) = (std::time::Instant::now(), now);
            }
        }
        while let Ok(u) = updates.try_recv() {
            match u {
                RxUpdate::Install(sa) => {
                    inbound.sad.insert(sa.spi, sa);
                }
                RxUpdate::Remove(spi) => {
                    inbound.sad.remove(&spi);
                }
            }
        }
        if n == 0 {
            continue;
        }
        let now = now_ms();
        for i in 0..n {
            let m = batch.meta(i);
            if m.len == 0 {
                continue;
            }
            if sock.encap == Encap::Udp {
                let pkt = batch.packet(i);
                match udp_encap::classify(pkt) {
                    Ok(Udp4500Payload::Esp(_)) => {}
                    Ok(Udp4500Payload::Ike(msg)) => {
                        counters.udp_non_esp.fetch_add(1, Ordering::Relaxed);
                        if let (Some(ike), Some(from)) = (&ike, m.addr) {
                            let d = IkeDatagram {
                                data: msg.to_vec(),
                                from,
                                local: sock.local,
                            };
                            if let Err(TrySendError::Full(_)) = ike.try_send(d) {
                                counters.ike_queue_full.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        batch.discard(i);
                        continue;
                    }
                    Ok(Udp4500Payload::NatKeepalive) => {
                        counters.udp_non_esp.fetch_add(1, Ordering::Relaxed);
                        batch.discard(i);
                        continue;
                    }
                    Err(_) => {
                        inbound.drops.bump(ikeda_esp::DropReason::Truncated);
                        batch.discard(i);
                        continue;
                    }
                }
            }
            let esp = batch.packet(i);
            spis[i] = esp.get(..4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            // The whole slot: a compressed packet grows as it is inflated.
            match inbound.process_in(batch.slot_mut(i), m.start, m.len, now) {
                Ok(r) => batch.set_packet(i, r.start, r.len(), None),
                Err(_) => batch.discard(i),
            }
        }
        if let Some(g) = gro.as_mut() {
            if !write_coalesced(tun, g, &batch, &spis[..n], counters) {
                gro = None;
            }
            continue;
        }
        match tun.write_batch(&batch) {
            Ok(w) => {
                counters.rx_packets.fetch_add(w as u64, Ordering::Relaxed);
            }
            Err(e) => io_error(counters, "TUN write", &e),
        }
    }
}

/// How often the receive thread looks at its socket's UDP_GRO counters.
const GRO_CHECK: Duration = Duration::from_secs(2);

/// The hint for an operator whose UDP 4500 receives in bulk but never a
/// `UDP_GRO` train: over one [`GRO_CHECK`], at least 50,000 datagrams,
/// queued back to back (8 or more per `recvmmsg` on average, so they
/// arrived faster than we read them), and not one train. The socket asks
/// for trains; the link they arrive on joins none. That is a veth's
/// default (GRO off, and even with it on a veth hands UDP to GRO only with
/// `rx-udp-gro-forwarding`, because its sender does TSO), which containers
/// and namespaces use; a NIC's driver joins them unless `gro` is off. In
/// the lab, joining them took one TCP stream from 3.9 to 5.0 Gbit/s.
fn gro_hint(
    before: &ikeda_sys::gso::UdpOffloadCounters,
    now: &ikeda_sys::gso::UdpOffloadCounters,
    local: IpAddr,
) -> Option<String> {
    let datagrams = now.recv_datagrams.saturating_sub(before.recv_datagrams);
    let calls = now.recv_syscalls.saturating_sub(before.recv_syscalls);
    let trains = now.gro_trains.saturating_sub(before.gro_trains);
    if !now.gro_on || trains > 0 || datagrams < 50_000 || calls == 0 || datagrams / calls < 8 {
        return None;
    }
    Some(format!(
        "UDP {}: {datagrams} datagrams in {}s arrived back to back ({} per receive call) but none \
         joined into a UDP_GRO train: the link they arrive on joins none (GRO is off there, or it is a veth \
         without rx-udp-gro-forwarding), so each crosses the kernel's IP and UDP input alone. \
         `ethtool -K <link> gro on rx-udp-gro-forwarding on` lets the kernel join them",
        SocketAddr::new(local, ikeda_ike::conn::NAT_T_PORT),
        GRO_CHECK.as_secs(),
        datagrams / calls
    ))
}

/// Writes a batch of decrypted packets to an offloaded TUN, joining runs of
/// TCP segments of one flow and one SA into super-packets (in order: what
/// cannot be joined is written after what is pending). A super-packet is
/// gathered from where its segments were decrypted, its payloads never
/// copied in user space (one `writev`). A write error drops that packet
/// only, as `write_batch` does. Returns false when the kernel refused a
/// coalesced write (`EINVAL`): its segments were written one by one, and
/// the caller stops coalescing.
fn write_coalesced<T: TunDevice>(
    tun: &T,
    gro: &mut ikeda_wire::vnet::Gro,
    batch: &PacketBatch,
    spis: &[u32],
    counters: &PlaneCounters,
) -> bool {
    let mut written = 0u64;
    let mut accepted = true;
    // The packets of the pending super-packet, by place in the batch.
    let mut members = [0usize; MAX_BATCH];
    let mut joined = 0usize;
    let mut flush = |gro: &mut ikeda_wire::vnet::Gro, members: &[usize], written: &mut u64| {
        let Some(j) = gro.finish() else {
            return;
        };
        let mut iov = [std::io::IoSlice::new(&[]); MAX_BATCH + 1];
        iov[0] = std::io::IoSlice::new(j.head);
        for (k, &i) in members.iter().enumerate() {
            iov[k + 1] = std::io::IoSlice::new(&batch.packet(i)[j.payload_at..]);
        }
        let segs = members.len() as u64;
        match tun.write_vnet_gather(&iov[..=members.len()]) {
            Ok(_) => {
                *written += segs;
                if segs > 1 {
                    counters.gro_packets.fetch_add(1, Ordering::Relaxed);
                    counters.gro_segments.fetch_add(segs, Ordering::Relaxed);
                }
            }
            Err(e) if segs > 1 && e.kind() == std::io::ErrorKind::InvalidInput => {
                accepted = false;
                tracing::warn!(target: "esp", "TUN refused a coalesced TCP write ({e}); writing segments one by one from now on");
                // The segments are still as they were decrypted.
                for &i in members {
                    match tun.write(batch.packet(i)) {
                        Ok(_) => *written += 1,
                        Err(e) => io_error(counters, "TUN write", &e),
                    }
                }
            }
            Err(e) => io_error(counters, "TUN write", &e),
        }
    };
    for (i, &spi) in spis.iter().enumerate() {
        let pkt = batch.packet(i);
        if pkt.is_empty() {
            continue;
        }
        if gro.push(pkt, spi) {
            members[joined] = i;
            joined += 1;
            continue;
        }
        flush(gro, &members[..joined], &mut written);
        joined = 0;
        if gro.push(pkt, spi) {
            members[0] = i;
            joined = 1;
        } else {
            match tun.write(pkt) {
                Ok(_) => written += 1,
                Err(e) => io_error(counters, "TUN write", &e),
            }
        }
    }
    flush(gro, &members[..joined], &mut written);
    counters.rx_packets.fetch_add(written, Ordering::Relaxed);
    accepted
}

#[cfg(test)]
mod tests {
    //! Two gateways' data planes in one process over the in-memory fakes:
    //! the whole TX/RX path, no root needed.
    use super::*;
    use crate::config::Config;
    use crate::config::Config as Cfg;
    use crate::plan::BuiltSas;
    use ikeda_sys::fake::{FakeNet, FakeTun};
    use ikeda_wire::iana::IpProtocol;
    use ikeda_wire::ip::build_ipv4;
    use std::path::Path;
    use std::sync::Mutex;

    #[test]
    fn gro_hint_only_for_bulk_back_to_back_datagrams_never_joined() {
        use ikeda_sys::gso::UdpOffloadCounters as C;
        let local: IpAddr = "192.168.50.12".parse().unwrap();
        let before = C {
            gro_on: true,
            recv_syscalls: 1_000,
            recv_datagrams: 10_000,
            gro_trains: 7,
            ..C::default()
        };
        // 60,000 datagrams in 2,000 calls (30 each), no new train: the hint.
        let bulk = C {
            recv_syscalls: 3_000,
            recv_datagrams: 70_000,
            ..before
        };
        let h = gro_hint(&before, &bulk, local).expect("hint");
        assert!(h.starts_with("UDP 192.168.50.12:4500: 60000 datagrams in 2s"), "{h}");
        assert!(h.contains("(30 per receive call)"), "{h}");
        assert!(h.contains("rx-udp-gro-forwarding on"), "{h}");
        // One new train: the link joins them.
        assert_eq!(gro_hint(&before, &C { gro_trains: 8, ..bulk }, local), None);
        // UDP_GRO off on our socket: nothing to join for.
        assert_eq!(gro_hint(&before, &C { gro_on: false, ..bulk }, local), None);
        // Not bulk: too few, or read as they came (fewer than 8 per call).
        assert_eq!(
            gro_hint(
                &before,
                &C {
                    recv_datagrams: 59_999,
                    ..bulk
                },
                local
            ),
            None
        );
        assert_eq!(
            gro_hint(
                &before,
                &C {
                    recv_syscalls: 10_000,
                    ..bulk
                },
                local
            ),
            None
        );
        // Counters that went back (a new socket): no hint, no overflow.
        assert_eq!(gro_hint(&bulk, &before, local), None);
    }

    fn cfg(
        local: &str,
        remote: &str,
        lnet: &str,
        rnet: &str,
        out_spi: u32,
        in_spi: u32,
        k_out: &str,
        k_in: &str,
    ) -> Config {
        let text = format!(
            "[[conn]]\nname = \"t\"\nlocal_addr = \"{local}\"\nremote_addr = \"{remote}\"\nencap = \"udp\"\nesp = \"aes256gcm16\"\n\
             local_ts = [\"{lnet}\"]\nremote_ts = [\"{rnet}\"]\n\
             [conn.manual]\nout = {{ spi = {out_spi}, enc_key = \"{k_out}\" }}\nin = {{ spi = {in_spi}, enc_key = \"{k_in}\" }}\n"
        );
        Config::parse(Path::new("test.toml"), &text).unwrap()
    }

    /// gw1's config, sending with SPI `out_spi` and key `k_out`.
    fn gw1_cfg(out_spi: u32, in_spi: u32, k_out: &str, k_in: &str) -> Config {
        cfg(
            "192.168.50.11",
            "192.168.50.12",
            "192.168.11.0/24",
            "192.168.12.0/24",
            out_spi,
            in_spi,
            k_out,
            k_in,
        )
    }

    /// gw1's and gw2's configs for one tunnel: gw1 sends with SPI 0x1001
    /// and key `k1`, gw2 with 0x2001 and `k2`.
    fn mirrored(k1: &str, k2: &str) -> (Config, Config) {
        (
            gw1_cfg(0x1001, 0x2001, k1, k2),
            cfg(
                "192.168.50.12",
                "192.168.50.11",
                "192.168.12.0/24",
                "192.168.11.0/24",
                0x2001,
                0x1001,
                k2,
                k1,
            ),
        )
    }

    /// The config's manual SAs, their sequence state in a fresh directory.
    fn build_sas(c: &Cfg) -> Result<BuiltSas, String> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ikeda-dataplane-seq-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = crate::seqstate::SeqStore::new(&dir);
        let r = crate::plan::build_sas(c, &store).map(|(sas, _)| sas);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    struct Gw {
        host: FakeTun,
        plane: DataPlane,
    }

    fn gateway(net: &FakeNet, c: &Config) -> Gw {
        let (mut hosts, plane) = gateway_queues(net, c, 1);
        Gw {
            host: hosts.remove(0),
            plane,
        }
    }

    /// A gateway whose TUN has `queues` queues; the hosts' end of each.
    fn gateway_queues(net: &FakeNet, c: &Config, queues: usize) -> (Vec<FakeTun>, DataPlane) {
        let (devs, hosts): (Vec<_>, Vec<_>) = (0..queues).map(|_| FakeTun::pair("ikeda0")).unzip();
        let (out, names, inb) = build_sas(c).unwrap();
        let local = c.conns[0].local_addr;
        let sock = net.bind(SocketAddr::new(local, 4500)).unwrap();
        let plane = DataPlane::start(
            devs.into_iter().map(Arc::new).collect(),
            vec![Arc::new(NetSocket {
                encap: Encap::Udp,
                local,
                io: sock,
            })],
            out,
            inb,
            names,
            1400,
            None,
            None,
        )
        .unwrap();
        (hosts, plane)
    }

    /// What `what` makes of each datagram gw1 (192.168.50.11) sends on
    /// `net`, in the order sent; every datagram is still delivered.
    fn record_from_gw1<T: Send + 'static>(
        net: &FakeNet,
        what: impl Fn(&[u8]) -> Option<T> + Send + Sync + 'static,
    ) -> Arc<Mutex<Vec<T>>> {
        let seen: Arc<Mutex<Vec<T>>> = Arc::default();
        let w = seen.clone();
        let gw1: IpAddr = "192.168.50.11".parse().unwrap();
        net.set_filter(move |src, _dst, p| {
            if src.ip() == gw1 {
                w.lock().unwrap().extend(what(p));
            }
            true
        });
        seen
    }

    fn ping(src: [u8; 4], dst: [u8; 4], id: u8) -> Vec<u8> {
        build_ipv4(
            src.into(),
            dst.into(),
            IpProtocol::ICMP,
            &[8, 0, 0, 0, 0, id, 0, 1, 0xab, 0xcd],
        )
    }

    #[test]
    fn two_gateways_carry_packets_and_count_every_bad_one() {
        let k1 = "0x".to_string() + &"11".repeat(36);
        let k2 = "0x".to_string() + &"22".repeat(36);
        let net = FakeNet::new();
        // Record every datagram gw1 sends, to replay and tamper with later.
        let wire = record_from_gw1(&net, |p| Some(p.to_vec()));
        let (c1, c2) = mirrored(&k1, &k2);
        let g1 = gateway(&net, &c1);
        let g2 = gateway(&net, &c2);
        let t = Some(Duration::from_secs(2));
        for id in 0..20u8 {
            let p = ping([192, 168, 11, 11], [192, 168, 12, 12], id);
            g1.host.write(&p).unwrap();
            assert_eq!(
                g2.host.recv_timeout(t).as_deref(),
                Some(&p[..]),
                "packet {id} gw1 -> gw2"
            );
            let r = ping([192, 168, 12, 12], [192, 168, 11, 11], id);
            g2.host.write(&r).unwrap();
            assert_eq!(
                g1.host.recv_timeout(t).as_deref(),
                Some(&r[..]),
                "packet {id} gw2 -> gw1"
            );
        }
        // A packet no policy covers is dropped on gw1 and never sent.
        g1.host.write(&ping([192, 168, 11, 11], [10, 9, 9, 9], 99)).unwrap();

        let good = wire.lock().unwrap()[0].clone();
        let rogue = net.bind("192.168.50.66:4500".parse().unwrap()).unwrap();
        let to = "192.168.50.12:4500".parse().unwrap();
        // A sequence number never seen passes the replay check and so
        // reaches the ICV, which the changed number breaks.
        let mut tampered = good.clone();
        tampered[4..8].copy_from_slice(&1000u32.to_be_bytes());
        let mut wrong_spi = good.clone();
        wrong_spi[3] ^= 0x55;
        for bad in [
            good.clone(),                             // replayed
            tampered,                                 // ICV mismatch
            wrong_spi,                                // unknown SPI
            good[..20].to_vec(),                      // truncated
            vec![0xde, 0xad],                         // garbage too short for anything
            vec![0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8], // IKE behind the non-ESP marker
            vec![0xff],                               // NAT keepalive
        ] {
            rogue.send_to(&bad, to).unwrap();
        }
        let want = [
            ("replayed", 1),
            ("icv_mismatch", 1),
            ("unknown_spi", 1),
            ("truncated", 2),
        ];
        let ok = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            let s = g2.plane.stats.snapshot();
            want.iter().all(|(k, n)| s.drops.get(k) == Some(n)) && s.udp_non_esp == 2
        });
        let s2 = g2.plane.stats.snapshot();
        assert!(ok, "gw2 drops: {:?}, non-ESP {}", s2.drops, s2.udp_non_esp);
        let s1 = g1.plane.stats.snapshot();
        assert_eq!(s1.drops.get("no_policy"), Some(&1));
        let out = s1.sas.iter().find(|s| s.direction == "out").unwrap();
        assert_eq!((out.packets, out.seq), (20, 20));
        let inb = s2.sas.iter().find(|s| s.direction == "in").unwrap();
        assert_eq!(inb.packets, 20);
        assert_eq!(inb.drops.get("replayed"), Some(&1));
        assert!(
            g2.host.recv_timeout(Some(Duration::from_millis(100))).is_none(),
            "a bad packet got through"
        );
        g1.plane.stop();
        g2.plane.stop();
    }

    /// Two TUN queues, each with its TX thread, filled at once with packets
    /// of one SA: its sequence numbers leave in order, one after another
    /// (a peer's replay window of 32 would drop what fell behind), both
    /// queues carried packets, and every packet arrives once, each queue's
    /// in the order written. Fails if the threads number or send without
    /// the shared lock.
    #[test]
    fn two_tun_queues_send_one_sas_sequence_numbers_in_order() {
        let k1 = "0x".to_string() + &"31".repeat(36);
        let k2 = "0x".to_string() + &"32".repeat(36);
        let net = FakeNet::new();
        let seqs = record_from_gw1(&net, |p| Some(u32::from_be_bytes(p.get(4..8)?.try_into().ok()?)));
        let (c1, c2) = mirrored(&k1, &k2);
        let (hosts, p1) = gateway_queues(&net, &c1, 2);
        let g2 = gateway(&net, &c2);
        let packet = |q: u8, n: u32| {
            let mut icmp = vec![8, 0, 0, 0, 0, q, 0, 1];
            icmp.extend_from_slice(&n.to_be_bytes());
            icmp.resize(200, 0x5a);
            build_ipv4(
                [192, 168, 11, 10 + q].into(),
                [192, 168, 12, 12].into(),
                IpProtocol::ICMP,
                &icmp,
            )
        };
        let (rounds, burst) = (20u32, 100u32);
        let mut got: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        for r in 0..rounds {
            std::thread::scope(|sc| {
                for (q, h) in hosts.iter().enumerate() {
                    sc.spawn(move || {
                        for i in 0..burst {
                            h.write(&packet(q as u8, r * burst + i)).unwrap();
                        }
                    });
                }
            });
            for _ in 0..2 * burst {
                let p = g2
                    .host
                    .recv_timeout(Some(Duration::from_secs(5)))
                    .expect("a packet lost");
                let q = usize::from(p[20 + 5]);
                got[q].push(u32::from_be_bytes([p[28], p[29], p[30], p[31]]));
            }
        }
        let want: Vec<u32> = (0..rounds * burst).collect();
        assert_eq!(got[0], want, "queue 0's packets, in order");
        assert_eq!(got[1], want, "queue 1's packets, in order");
        let seqs = seqs.lock().unwrap().clone();
        let in_order: Vec<u32> = (1..=2 * rounds * burst).collect();
        assert!(
            seqs == in_order,
            "sequence numbers on the wire out of order: {:?}",
            &seqs[..seqs.len().min(300)]
        );
        let s = p1.stats.snapshot();
        assert_eq!(s.tx_queues.len(), 2);
        assert_eq!(s.tx_queues.iter().sum::<u64>(), u64::from(2 * rounds * burst));
        assert!(s.tx_queues.iter().all(|&n| n > 0), "{:?}", s.tx_queues);
        p1.stop();
        g2.plane.stop();
    }

    #[test]
    fn ipcomp_compresses_what_pays_and_the_peer_inflates_it() {
        let k1 = "0x".to_string() + &"77".repeat(36);
        let k2 = "0x".to_string() + &"88".repeat(36);
        let net = FakeNet::new();
        let sizes = record_from_gw1(&net, |p| Some(p.len()));
        let (c1, c2) = mirrored(&k1, &k2);
        // As `[conn.manual] ipcomp = { out = .., in = .. }` sets it.
        let with = |mut c: Config, cpi_out, cpi_in| {
            c.conns[0].manual.as_mut().unwrap().ipcomp = Some(ikeda_esp::IpcompParams { cpi_out, cpi_in });
            c
        };
        let g1 = gateway(&net, &with(c1, 0x1234, 0x4321));
        let g2 = gateway(&net, &with(c2, 0x4321, 0x1234));
        let t = Some(Duration::from_secs(2));
        let zeros = build_ipv4(
            [192, 168, 11, 11].into(),
            [192, 168, 12, 12].into(),
            IpProtocol::ICMP,
            &[[8u8, 0, 0, 0].as_slice(), &[0u8; 1000]].concat(),
        );
        let small = ping([192, 168, 11, 11], [192, 168, 12, 12], 1);
        for p in [&zeros, &small, &zeros] {
            g1.host.write(p).unwrap();
            assert_eq!(g2.host.recv_timeout(t).as_deref(), Some(&p[..]));
        }
        let back = build_ipv4(
            [192, 168, 12, 12].into(),
            [192, 168, 11, 11].into(),
            IpProtocol::ICMP,
            &[[0u8, 0, 0, 0].as_slice(), &[0u8; 1000]].concat(),
        );
        g2.host.write(&back).unwrap();
        assert_eq!(g1.host.recv_timeout(t).as_deref(), Some(&back[..]));
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.len(), 3);
        assert!(sizes[0] < 200 && sizes[2] < 200, "on the wire: {sizes:?}");
        let s1 = g1.plane.stats.snapshot();
        let out = s1.sas.iter().find(|s| s.direction == "out").unwrap();
        let ic = out.ipcomp.as_ref().unwrap();
        assert_eq!((ic.cpi.as_str(), ic.compressed, ic.too_small), ("0x1234", 2, 1));
        assert_eq!(ic.bytes_uncompressed, 2 * zeros.len() as u64);
        let inb = s1.sas.iter().find(|s| s.direction == "in").unwrap();
        assert_eq!(
            inb.ipcomp.as_ref().map(|i| (i.cpi.as_str(), i.compressed)),
            Some(("0x4321", 1))
        );
        let s2 = g2.plane.stats.snapshot();
        let inb = s2.sas.iter().find(|s| s.direction == "in").unwrap();
        let ic = inb.ipcomp.as_ref().unwrap();
        assert_eq!((ic.compressed, ic.uncompressed), (2, 1));
        assert!(s2.drops.is_empty(), "{:?}", s2.drops);
        // The stats file carries them (and SAs without IPComp do not).
        let json = serde_json::to_value(&s2).unwrap();
        assert_eq!(json["sas"][0]["ipcomp"]["cpi"], "0x4321", "{json}");
        g1.plane.stop();
        g2.plane.stop();
    }

    /// A data plane with one UDP 4500 socket at `local` on `net`, no SAs
    /// installed yet, IKE datagrams and acquires to the given channels.
    fn udp_plane(
        net: &FakeNet,
        dev: FakeTun,
        local: IpAddr,
        outbound: Outbound,
        ike: Option<SyncSender<IkeDatagram>>,
        acquire: Option<SyncSender<usize>>,
    ) -> DataPlane {
        let sock = NetSocket {
            encap: Encap::Udp,
            local,
            io: net.bind(SocketAddr::new(local, 4500)).unwrap(),
        };
        DataPlane::start(
            vec![Arc::new(dev)],
            vec![Arc::new(sock)],
            outbound,
            vec![],
            vec![],
            1400,
            ike,
            acquire,
        )
        .unwrap()
    }

    #[test]
    fn sas_installed_and_removed_at_run_time_and_ike_handed_over() {
        let k1 = "0x".to_string() + &"33".repeat(36);
        let k2 = "0x".to_string() + &"44".repeat(36);
        let net = FakeNet::new();
        let (c1, c2) = mirrored(&k1, &k2);
        // gw1 starts with its policies but no SAs: as before IKE finished.
        let (out1, _, in1) = build_sas(&c1).unwrap();
        let (dev1, host1) = FakeTun::pair("ikeda0");
        let local1: IpAddr = "192.168.50.11".parse().unwrap();
        let (ike_tx, ike_rx) = ike_handoff();
        let empty = Outbound::new(out1.spd.clone(), vec![None]);
        let p1 = udp_plane(&net, dev1, local1, empty, Some(ike_tx), None);
        let g2 = gateway(&net, &c2);
        let t = Some(Duration::from_secs(2));
        let p = ping([192, 168, 11, 11], [192, 168, 12, 12], 1);
        host1.write(&p).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(p1.stats.snapshot().drops.get("no_sa"), Some(&1));
        // Install both directions, as the IKE engine will.
        let mut out1 = out1;
        p1.control.set_outbound("t", 0, out1.sas[0].take()).unwrap();
        for (name, sa) in in1 {
            p1.control.install_inbound(&name, sa).unwrap();
        }
        host1.write(&p).unwrap();
        assert_eq!(g2.host.recv_timeout(t).as_deref(), Some(&p[..]));
        let r = ping([192, 168, 12, 12], [192, 168, 11, 11], 1);
        g2.host.write(&r).unwrap();
        assert_eq!(host1.recv_timeout(t).as_deref(), Some(&r[..]));
        assert_eq!(p1.stats.snapshot().sas.len(), 2);
        // An IKE message on 4500 goes to the control plane, marker removed.
        let peer = net.bind("192.168.50.12:500".parse().unwrap()).unwrap();
        peer.send_to(&[0, 0, 0, 0, 9, 9, 9, 9, 9], SocketAddr::new(local1, 4500))
            .unwrap();
        let d = ike_rx.recv_timeout(Duration::from_secs(2)).unwrap();
        assert_eq!(
            (d.data.as_slice(), d.from.port(), d.local),
            (&[9u8, 9, 9, 9, 9][..], 500, local1)
        );
        // Remove the inbound SA: gw2's packets are now unknown SPIs.
        p1.control.remove_inbound(0x2001);
        std::thread::sleep(Duration::from_millis(100));
        g2.host.write(&r).unwrap();
        assert!(host1.recv_timeout(Some(Duration::from_millis(300))).is_none());
        assert_eq!(p1.stats.snapshot().drops.get("unknown_spi"), Some(&1));
        assert_eq!(p1.stats.snapshot().sas.len(), 1);
        p1.stop();
        g2.plane.stop();
    }

    /// A slot's SA replaced and then restored (the newer one was deleted
    /// first): the older one sends again with its sequence numbers going
    /// on where they stopped, never from 1 (with AES-GCM a repeated
    /// sequence number under one key would repeat the nonce).
    #[test]
    fn a_restored_outbound_sa_goes_on_with_its_own_sequence_numbers() {
        let k = |b: &str| "0x".to_string() + &b.repeat(36);
        let net = FakeNet::new();
        let older = gw1_cfg(0x1001, 0x2001, &k("61"), &k("62"));
        let newer = gw1_cfg(0x1002, 0x2002, &k("63"), &k("64"));
        let (mut a, _, _) = build_sas(&older).unwrap();
        let (mut b, _, _) = build_sas(&newer).unwrap();
        let (dev, host) = FakeTun::pair("ikeda0");
        let local: IpAddr = "192.168.50.11".parse().unwrap();
        let p1 = udp_plane(&net, dev, local, Outbound::new(a.spd.clone(), vec![None]), None, None);
        let wire = net.bind("192.168.50.12:4500".parse().unwrap()).unwrap();
        let t = Some(Duration::from_secs(2));
        let send = |n: u8| -> (u32, u32) {
            host.write(&ping([192, 168, 11, 11], [192, 168, 12, 12], n)).unwrap();
            let (d, _) = wire.recv_from(t).expect("an ESP packet");
            let word = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
            (word(0), word(4))
        };
        p1.control.set_outbound("t", 0, a.sas[0].take()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!([send(1), send(2)], [(0x1001, 1), (0x1001, 2)]);
        p1.control.set_outbound("t", 0, b.sas[0].take()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(send(3), (0x1002, 1));
        // The newer one is gone: back to the older one, its counter intact.
        p1.control.restore_outbound(0, 0x1001).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(send(4), (0x1001, 3));
        let out: Vec<u32> = p1
            .control
            .views
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v.direction == "out")
            .map(|v| v.spi)
            .collect();
        assert_eq!(out, [0x1001], "show lists the SA sent on");
        // Once: the newer one is not kept to go back to.
        p1.control.restore_outbound(0, 0x1002).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(send(5), (0x1001, 4));
        p1.stop();
    }

    #[test]
    fn trap_holds_the_first_packets_and_releases_them_in_order() {
        let k1 = "0x".to_string() + &"55".repeat(36);
        let k2 = "0x".to_string() + &"66".repeat(36);
        let net = FakeNet::new();
        let (c1, c2) = mirrored(&k1, &k2);
        let (mut out1, _, in1) = build_sas(&c1).unwrap();
        let (dev1, host1) = FakeTun::pair("ikeda0");
        let local1: IpAddr = "192.168.50.11".parse().unwrap();
        let (acq_tx, acq_rx) = acquire_channel();
        let p1 = udp_plane(
            &net,
            dev1,
            local1,
            Outbound::new(out1.spd.clone(), vec![None]),
            None,
            Some(acq_tx),
        );
        p1.control.set_trap(0).unwrap();
        let g2 = gateway(&net, &c2);
        std::thread::sleep(Duration::from_millis(50));
        let pings: Vec<Vec<u8>> = (1..=5)
            .map(|i| ping([192, 168, 11, 11], [192, 168, 12, 12], i))
            .collect();
        for p in &pings {
            host1.write(p).unwrap();
        }
        // One acquire for the slot, however many packets.
        assert_eq!(acq_rx.recv_timeout(Duration::from_secs(2)).unwrap(), 0);
        std::thread::sleep(Duration::from_millis(100));
        assert!(acq_rx.try_recv().is_err(), "a second acquire within a second");
        assert!(
            g2.host.recv_timeout(Some(Duration::from_millis(100))).is_none(),
            "nothing sent before the SA"
        );
        // "IKE" finishes: the SA is installed and the held packets go out in order.
        p1.control.set_outbound("t", 0, out1.sas[0].take()).unwrap();
        for (name, sa) in in1 {
            p1.control.install_inbound(&name, sa).unwrap();
        }
        for p in &pings {
            assert_eq!(
                g2.host.recv_timeout(Some(Duration::from_secs(2))).as_deref(),
                Some(&p[..])
            );
        }
        let s = p1.stats.snapshot();
        assert_eq!(s.drops.get("no_sa"), None, "held, not dropped: {:?}", s.drops);
        assert_eq!(p1.stats.counters.trap_released.load(Ordering::Relaxed), 5);
        p1.stop();
        g2.plane.stop();
    }

    /// A flood of non-ESP-marker datagrams on 4500 while the IKE thread
    /// reads nothing: the hand-off holds at most IKE_QUEUE of them, the rest
    /// are dropped and counted, and nothing is lost uncounted.
    #[test]
    fn ike_handoff_is_bounded_under_a_flood_and_counts_its_drops() {
        const FLOOD: usize = 100_000;
        let net = FakeNet::with_queue_capacity(FLOOD + 1);
        let (dev, _host) = FakeTun::pair("ikeda0");
        let local: IpAddr = "192.168.50.11".parse().unwrap();
        let (ike_tx, ike_rx) = ike_handoff();
        let plane = udp_plane(
            &net,
            dev,
            local,
            Outbound::new(Default::default(), vec![]),
            Some(ike_tx),
            None,
        );
        let spoofer = net.bind("10.66.0.1:4500".parse().unwrap()).unwrap();
        // Non-ESP marker, then a 28-byte IKE header's worth of bytes.
        let mut d = vec![0u8; 4 + 28];
        d[4] = 0x11;
        for _ in 0..FLOOD {
            spoofer.send_to(&d, SocketAddr::new(local, 4500)).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while plane.stats.snapshot().udp_non_esp < FLOOD as u64 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Stopped, so the receive thread has finished with the last one.
        let stats = plane.stats.clone();
        plane.stop();
        let snap = stats.snapshot();
        assert_eq!(snap.udp_non_esp, FLOOD as u64, "the plane read the whole flood");
        let queued = ike_rx.try_iter().count();
        let dropped = snap.drops.get("ike_queue_full").copied().unwrap_or(0);
        assert!(queued <= IKE_QUEUE, "{queued} datagrams queued for IKE");
        assert_eq!(
            queued as u64 + dropped,
            FLOOD as u64,
            "every datagram queued or counted"
        );
    }

    /// Two data planes over real UDP sockets on loopback (no root needed),
    /// with UDP_SEGMENT and UDP_GRO on: 40 packets of one size read in one
    /// TUN batch leave gw1 as one train and reach gw2's TUN whole and in
    /// order; a train of two IKE messages and a NAT keepalive from the
    /// same 4-tuple is cut and each datagram classified on its own (two
    /// IKE hand-overs, marker stripped, and a keepalive), not taken for one.
    #[test]
    fn udp_trains_on_loopback_are_cut_and_every_datagram_classified() {
        let k1 = "0x".to_string() + &"99".repeat(36);
        let k2 = "0x".to_string() + &"aa".repeat(36);
        let (mut c1, mut c2) = mirrored(&k1, &k2);
        let (a1, a2): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        // A port free on both addresses (ours for the test's lifetime).
        let (s1, s2, port) = (0..50)
            .find_map(|_| {
                let s1 = ikeda_sys::UdpSocket::bind(SocketAddr::new(a1, 0)).ok()?;
                let port = s1.local_addr().ok()?.port();
                let s2 = ikeda_sys::UdpSocket::bind(SocketAddr::new(a2, port)).ok()?;
                Some((s1, s2, port))
            })
            .expect("a free UDP port on 127.0.0.1 and 127.0.0.2");
        for (c, l, r) in [(&mut c1, a1, a2), (&mut c2, a2, a1)] {
            c.conns[0].local_addr = l;
            c.conns[0].remote_addr = r;
            c.conns[0].port = port;
        }
        let start = |c: &Config, mut s: ikeda_sys::UdpSocket, ike| {
            assert_eq!(
                s.enable_offloads(),
                (true, true),
                "this kernel has UDP_SEGMENT and UDP_GRO"
            );
            let (dev, host) = FakeTun::pair("ikeda0");
            let (out, names, inb) = build_sas(c).unwrap();
            let sock = Arc::new(NetSocket {
                encap: Encap::Udp,
                local: c.conns[0].local_addr,
                io: Arc::new(s),
            });
            let plane = DataPlane::start(
                vec![Arc::new(dev)],
                vec![sock.clone()],
                out,
                inb,
                names,
                1400,
                ike,
                None,
            );
            (host, plane.unwrap(), sock)
        };
        let (ike_tx, ike_rx) = ike_handoff();
        let (host2, p2, _) = start(&c2, s2, Some(ike_tx));
        // Queued on the TUN before gw1's TX thread starts: one read takes them all.
        let (dev1, host1) = FakeTun::pair("ikeda0");
        let pkts: Vec<Vec<u8>> = (0..40u32)
            .map(|i| {
                let body: Vec<u8> = [8, 0, 0, 0]
                    .into_iter()
                    .chain((0..1200u32).map(|j| (i * 7 + j) as u8))
                    .collect();
                build_ipv4(
                    [192, 168, 11, 11].into(),
                    [192, 168, 12, 12].into(),
                    IpProtocol::ICMP,
                    &body,
                )
            })
            .collect();
        for p in &pkts {
            host1.write(p).unwrap();
        }
        let mut s1 = s1;
        assert_eq!(s1.enable_offloads(), (true, true));
        let (out, names, inb) = build_sas(&c1).unwrap();
        let sock1 = Arc::new(NetSocket {
            encap: Encap::Udp,
            local: a1,
            io: Arc::new(s1),
        });
        let p1 = DataPlane::start(
            vec![Arc::new(dev1)],
            vec![sock1.clone()],
            out,
            inb,
            names,
            1400,
            None,
            None,
        )
        .unwrap();
        for (i, p) in pkts.iter().enumerate() {
            let got = host2.recv_timeout(Some(Duration::from_secs(2)));
            assert_eq!(got.as_deref(), Some(&p[..]), "packet {i}");
        }
        // Two IKE messages and a keepalive, one train from gw1's socket.
        let ike = |b: u8| [[0u8, 0, 0, 0].as_slice(), &[b; 36]].concat();
        let to = SocketAddr::new(a2, port);
        let (m1, m2) = (ike(1), ike(2));
        assert_eq!(sock1.io.send_batch(&[&m1, &m2, &[0xff]], &[to; 3]).unwrap(), 3);
        for want in [&m1, &m2] {
            let d = ike_rx.recv_timeout(Duration::from_secs(2)).expect("IKE handed over");
            assert_eq!(
                (&d.data[..], d.from, d.local),
                (&want[4..], SocketAddr::new(a1, port), a2)
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while p2.stats.snapshot().udp_non_esp < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (s1, s2) = (p1.stats.snapshot(), p2.stats.snapshot());
        assert_eq!(s2.udp_non_esp, 3, "two IKE messages and a keepalive");
        assert!(ike_rx.try_recv().is_err(), "the keepalive is not IKE");
        let (u1, u2) = (s1.udp_offload.unwrap(), s2.udp_offload.unwrap());
        assert!(u1.gso && u1.gro && u2.gso && u2.gro);
        assert!(u1.gso_sends >= 2 && u1.gso_datagrams == 43, "gw1: {u1:?}");
        assert_eq!(u1.send_datagrams, 43, "gw1: {u1:?}");
        assert!(u2.gro_trains >= 2 && u2.gro_datagrams == 43, "gw2: {u2:?}");
        assert_eq!((u2.recv_datagrams, u2.gro_malformed, u1.gso_fallbacks), (43, 0, 0));
        assert!(s2.drops.is_empty(), "{:?}", s2.drops);
        assert!(host2.recv_timeout(Some(Duration::from_millis(50))).is_none());
        let json = serde_json::to_value(&s2).unwrap();
        assert_eq!(json["udp_offload"]["gro_datagrams"], 43, "{json}");
        p1.stop();
        p2.stop();
    }

    /// A TUN that takes vnet writes; with `refuse_gso`, it answers a GSO
    /// write with EINVAL as an old or strict kernel would.
    struct VnetTun {
        refuse_gso: bool,
        written: Mutex<Vec<(u8, Vec<u8>)>>,
    }

    impl TunDevice for VnetTun {
        fn read_batch(&self, _: &mut PacketBatch, _: Option<Duration>) -> std::io::Result<usize> {
            Ok(0)
        }
        fn write(&self, pkt: &[u8]) -> std::io::Result<usize> {
            self.written.lock().unwrap().push((0, pkt.to_vec()));
            Ok(pkt.len())
        }
        fn accepts_vnet(&self) -> bool {
            true
        }
        fn write_vnet(&self, b: &[u8]) -> std::io::Result<usize> {
            let (h, p) = ikeda_wire::vnet::VnetHdr::parse(b).unwrap();
            if self.refuse_gso && h.gso_type != 0 {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            self.written.lock().unwrap().push((h.gso_type, p.to_vec()));
            Ok(b.len())
        }
    }

    /// Five segments of one TCP flow (valid checksums), in a batch.
    fn tcp_segments() -> (PacketBatch, Vec<Vec<u8>>) {
        use ikeda_wire::vnet::{Segments, VnetHdr, F_NEEDS_CSUM, GSO_TCPV4};
        let mut l4 = vec![0u8; 20];
        l4[12] = 0x50;
        l4[13] = 0x10;
        l4.extend((0..4500u32).map(|i| i as u8));
        let big = build_ipv4(
            Ipv4Addr::new(192, 168, 11, 11),
            Ipv4Addr::new(192, 168, 12, 12),
            IpProtocol::TCP,
            &l4,
        );
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            gso_size: 1000,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHdr::default()
        };
        let s = Segments::new(h, &big, 1400).unwrap();
        let mut batch = PacketBatch::new(8, 2048, 0);
        let mut segs = Vec::new();
        let mut buf = [0u8; 1400];
        for i in 0..s.count() {
            let n = s.write(i, &mut buf).unwrap();
            batch.push_copy(&buf[..n], None).unwrap();
            segs.push(buf[..n].to_vec());
        }
        (batch, segs)
    }

    #[test]
    fn rx_coalesces_one_flow_of_one_sa_into_one_write() {
        let (batch, segs) = tcp_segments();
        assert_eq!(segs.len(), 5);
        let tun = VnetTun {
            refuse_gso: false,
            written: Mutex::new(Vec::new()),
        };
        let c = PlaneCounters::default();
        let mut gro = ikeda_wire::vnet::Gro::new();
        assert!(write_coalesced(&tun, &mut gro, &batch, &[1; 5], &c));
        let w = tun.written.lock().unwrap().clone();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].0, ikeda_wire::vnet::GSO_TCPV4);
        assert_eq!(c.rx_packets.load(Ordering::Relaxed), 5);
        assert_eq!(c.gro_segments.load(Ordering::Relaxed), 5);
        // The same segments from two SAs: two writes, never one.
        tun.written.lock().unwrap().clear();
        assert!(write_coalesced(&tun, &mut gro, &batch, &[1, 1, 2, 2, 2], &c));
        let w = tun.written.lock().unwrap().clone();
        assert_eq!(w.len(), 2, "segments of different SAs were joined");
    }

    #[test]
    fn rx_falls_back_to_segments_when_the_kernel_refuses_a_coalesced_write() {
        let (batch, segs) = tcp_segments();
        let tun = VnetTun {
            refuse_gso: true,
            written: Mutex::new(Vec::new()),
        };
        let c = PlaneCounters::default();
        let mut gro = ikeda_wire::vnet::Gro::new();
        assert!(!write_coalesced(&tun, &mut gro, &batch, &[1; 5], &c));
        let w: Vec<Vec<u8>> = tun.written.lock().unwrap().iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(w, segs, "every segment written, unchanged and in order");
        assert_eq!(c.rx_packets.load(Ordering::Relaxed), 5);
        assert_eq!(c.gro_packets.load(Ordering::Relaxed), 0);
    }
}
