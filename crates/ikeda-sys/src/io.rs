//! The two I/O traits the data plane is generic over.
//!
//! Real devices ([`Tun`](crate::Tun), [`UdpSocket`](crate::UdpSocket),
//! [`RawEspSocket`](crate::RawEspSocket)) and the in-memory fakes
//! ([`FakeTun`](crate::fake::FakeTun), [`FakeSocket`](crate::fake::FakeSocket))
//! implement them with identical signatures, so the same data-plane code
//! runs against the kernel in production and in-process in unit tests.
//!
//! # Timeouts
//!
//! Every `timeout: Option<Duration>` in this crate means:
//! * `None` — wait until at least one packet is available;
//! * `Some(Duration::ZERO)` — never wait (pure poll);
//! * `Some(d)` — wait at most `d`; `Ok(0)` is returned when it expires.
//!
//! Receives may also return `Ok(0)` spuriously (e.g. a wakeup for a packet
//! another thread already took); callers simply loop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::batch::PacketBatch;

/// A layer-3 packet device (TUN or a fake of it).
///
/// Packets are bare IPv4/IPv6 packets (no packet-info header).
pub trait TunDevice: Send + Sync {
    /// Clears `batch` and reads up to `batch.capacity()` packets into it,
    /// each at `headroom` in its slot. Returns the number read (`0` on
    /// timeout). See the [module docs](self) for `timeout`.
    fn read_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize>;

    /// Writes one packet; returns the number of bytes written.
    fn write(&self, pkt: &[u8]) -> io::Result<usize>;

    /// The segmentation offload's counters, for a device that reads
    /// super-packets and segments them ([`Tun::open_offload`](crate::Tun::open_offload)).
    fn offload_counters(&self) -> Option<crate::tun::OffloadCounters> {
        None
    }

    /// True if [`write_vnet`](Self::write_vnet) takes packets behind a
    /// `virtio_net_hdr`, GSO super-packets included (an offloaded TUN).
    fn accepts_vnet(&self) -> bool {
        false
    }

    /// Writes `virtio_net_hdr` + packet as one packet (see
    /// ikeda_wire::vnet::Gro); `Unsupported` where not
    /// [`accepts_vnet`](Self::accepts_vnet).
    fn write_vnet(&self, _hdr_and_pkt: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// [`write_vnet`](Self::write_vnet) of `parts` one after another, as
    /// one packet: a coalesced super-packet gathered from where its
    /// segments were decrypted (`writev` on a real TUN; this default, for
    /// the fakes, joins them into one buffer first).
    fn write_vnet_gather(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.write_vnet(&parts.iter().flat_map(|p| p.iter().copied()).collect::<Vec<u8>>())
    }

    /// Writes every non-empty filled slot of `batch` (addresses are
    /// ignored). Returns how many packets were written.
    ///
    /// Why per-packet errors are skipped: one malformed packet (e.g. a
    /// decrypted payload that is not IP, which TUN rejects with `EINVAL`)
    /// must not stop the rest of the batch. The first error is returned
    /// only if nothing at all was written.
    fn write_batch(&self, batch: &PacketBatch) -> io::Result<usize> {
        let mut written = 0;
        let mut first_err = None;
        for i in 0..batch.len() {
            let pkt = batch.packet(i);
            if pkt.is_empty() {
                continue;
            }
            match self.write(pkt) {
                Ok(_) => written += 1,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if written == 0 => Err(e),
            _ => Ok(written),
        }
    }
}

/// A datagram transport: UDP, raw ESP, or a fake network.
pub trait DatagramIo: Send + Sync {
    /// Clears `batch` and receives up to `batch.capacity()` datagrams into
    /// it, with their source addresses. Returns the number received (`0`
    /// on timeout). Datagrams that did not fit their slot are reported with
    /// `len == 0`.
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize>;

    /// Sends `pkts[i]` to `dsts[i]` for every `i`. Returns how many were
    /// accepted by the transport.
    ///
    /// Per-destination failures (unreachable network, packet too big, …)
    /// drop that datagram and continue with the next, as UDP would; the
    /// first error is returned only if nothing was sent. Fails with
    /// `InvalidInput` if the slices differ in length.
    fn send_batch(&self, pkts: &[&[u8]], dsts: &[SocketAddr]) -> io::Result<usize>;

    /// [`send_batch`](Self::send_batch), where a transport that sends
    /// trains (UDP with `UDP_SEGMENT`) puts at most `trains[i]` datagrams
    /// in the train that starts at `pkts[i]`: the data plane gives each
    /// packet its SA's train, which depends on what the peer takes
    /// (`ikeda_wire::udp_gso::TRAINS_VENDOR_ID`). Other transports send
    /// one datagram at a time and need no limit.
    fn send_batch_trains(&self, pkts: &[&[u8]], dsts: &[SocketAddr], trains: &[u8]) -> io::Result<usize> {
        let _ = trains;
        self.send_batch(pkts, dsts)
    }

    /// Sends every filled slot of `batch` to its `addr`; slots that are
    /// empty or have no address are skipped. Same error policy as
    /// [`send_batch`](Self::send_batch). Takes `&mut` only to use the
    /// batch's own syscall scratch space (no locking, no allocation).
    fn send_packet_batch(&self, batch: &mut PacketBatch) -> io::Result<usize>;

    /// A UDP socket's counters of syscalls, datagrams and `UDP_SEGMENT`/
    /// `UDP_GRO` trains; `None` for other transports.
    fn udp_counters(&self) -> Option<crate::gso::UdpOffloadCounters> {
        None
    }
}

/// The queues of one multi-queue TUN device ([`Tun::open_queues`](crate::Tun::open_queues))
/// as one device for the thread that writes decrypted packets into it.
///
/// Why writes pick a queue by flow: the kernel sends a flow's outgoing
/// packets to the queue its incoming ones were last written through
/// (`tun_flow_update`). Written all through one queue, every flow would
/// be read by that queue's thread alone; written through the queue of
/// their flow's hash, flows spread over the reading threads, and each
/// flow stays on one of them (its packets are never reordered between
/// two readers). A packet that is not IP goes through the first queue.
///
/// Reads (which the data plane does per queue, not through this) read
/// the first queue; the offload counters are the device's.
pub struct TunQueues<T> {
    queues: Vec<Arc<T>>,
}

impl<T: TunDevice> TunQueues<T> {
    /// `None` without any queue.
    pub fn new(queues: Vec<Arc<T>>) -> Option<Self> {
        (!queues.is_empty()).then_some(TunQueues { queues })
    }

    /// The queues, the first first.
    pub fn queues(&self) -> &[Arc<T>] {
        &self.queues
    }

    /// The queue that carries `ip`'s flow.
    pub fn queue_for(&self, ip: &[u8]) -> &T {
        let n = self.queues.len();
        let k = if n == 1 {
            0
        } else {
            flow_hash(ip).map_or(0, |h| ((u64::from(h) * n as u64) >> 32) as usize)
        };
        &self.queues[k]
    }

    fn queue_for_vnet(&self, hdr_and_pkt: &[u8]) -> &T {
        self.queue_for(hdr_and_pkt.get(ikeda_wire::vnet::VNET_HDR_LEN..).unwrap_or(&[]))
    }
}

/// A hash of the flow (addresses, protocol, and for TCP and UDP the
/// ports) of an IP packet, or `None` if it is not one. It reads the headers
/// only, so it takes the head of a coalesced packet (whose Total Length
/// covers more than the head) as the packet. IPv6 extension headers and
/// IPv4 fragments after the first leave the ports out (the flow is then
/// the address pair). Not keyed: it spreads our own flows over our own
/// queues.
fn flow_hash(ip: &[u8]) -> Option<u32> {
    let (proto, addrs, l4) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let first_fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff == 0;
            (
                *ip.get(9)?,
                ip.get(12..20)?,
                if first_fragment { ihl } else { usize::MAX },
            )
        }
        6 => (*ip.get(6)?, ip.get(8..40)?, 40),
        _ => return None,
    };
    let ports = match proto {
        6 | 17 => ip.get(l4..l4.saturating_add(4)).unwrap_or(&[]),
        _ => &[],
    };
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(proto, addrs, ports), &mut h);
    let h = std::hash::Hasher::finish(&h);
    Some((h ^ (h >> 32)) as u32)
}

impl<T: TunDevice> TunDevice for TunQueues<T> {
    fn read_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        self.queues[0].read_batch(batch, timeout)
    }
    fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        self.queue_for(pkt).write(pkt)
    }
    fn offload_counters(&self) -> Option<crate::tun::OffloadCounters> {
        self.queues[0].offload_counters()
    }
    fn accepts_vnet(&self) -> bool {
        self.queues[0].accepts_vnet()
    }
    fn write_vnet(&self, hdr_and_pkt: &[u8]) -> io::Result<usize> {
        self.queue_for_vnet(hdr_and_pkt).write_vnet(hdr_and_pkt)
    }
    fn write_vnet_gather(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // The first part holds the header and the packet's IP and
        // transport headers (the data plane's GRO builds it so).
        let first = parts.first().map_or(&[][..], |p| &p[..]);
        self.queue_for_vnet(first).write_vnet_gather(parts)
    }
}

// Why these forwarding impls: the data plane typically shares one device
// between an RX and a TX thread through an `Arc`.
impl<T: TunDevice + ?Sized> TunDevice for Arc<T> {
    fn accepts_vnet(&self) -> bool {
        (**self).accepts_vnet()
    }
    fn write_vnet(&self, hdr_and_pkt: &[u8]) -> io::Result<usize> {
        (**self).write_vnet(hdr_and_pkt)
    }
    fn write_vnet_gather(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (**self).write_vnet_gather(parts)
    }
    fn offload_counters(&self) -> Option<crate::tun::OffloadCounters> {
        (**self).offload_counters()
    }
    fn read_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        (**self).read_batch(batch, timeout)
    }
    fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        (**self).write(pkt)
    }
    fn write_batch(&self, batch: &PacketBatch) -> io::Result<usize> {
        (**self).write_batch(batch)
    }
}

impl<T: TunDevice + ?Sized> TunDevice for &T {
    fn accepts_vnet(&self) -> bool {
        (**self).accepts_vnet()
    }
    fn write_vnet(&self, hdr_and_pkt: &[u8]) -> io::Result<usize> {
        (**self).write_vnet(hdr_and_pkt)
    }
    fn write_vnet_gather(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (**self).write_vnet_gather(parts)
    }
    fn offload_counters(&self) -> Option<crate::tun::OffloadCounters> {
        (**self).offload_counters()
    }
    fn read_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        (**self).read_batch(batch, timeout)
    }
    fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        (**self).write(pkt)
    }
    fn write_batch(&self, batch: &PacketBatch) -> io::Result<usize> {
        (**self).write_batch(batch)
    }
}

impl<T: DatagramIo + ?Sized> DatagramIo for Arc<T> {
    fn udp_counters(&self) -> Option<crate::gso::UdpOffloadCounters> {
        (**self).udp_counters()
    }
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        (**self).recv_batch(batch, timeout)
    }
    fn send_batch(&self, pkts: &[&[u8]], dsts: &[SocketAddr]) -> io::Result<usize> {
        (**self).send_batch(pkts, dsts)
    }
    fn send_batch_trains(&self, pkts: &[&[u8]], dsts: &[SocketAddr], trains: &[u8]) -> io::Result<usize> {
        (**self).send_batch_trains(pkts, dsts, trains)
    }
    fn send_packet_batch(&self, batch: &mut PacketBatch) -> io::Result<usize> {
        (**self).send_packet_batch(batch)
    }
}

impl<T: DatagramIo + ?Sized> DatagramIo for &T {
    fn udp_counters(&self) -> Option<crate::gso::UdpOffloadCounters> {
        (**self).udp_counters()
    }
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        (**self).recv_batch(batch, timeout)
    }
    fn send_batch(&self, pkts: &[&[u8]], dsts: &[SocketAddr]) -> io::Result<usize> {
        (**self).send_batch(pkts, dsts)
    }
    fn send_batch_trains(&self, pkts: &[&[u8]], dsts: &[SocketAddr], trains: &[u8]) -> io::Result<usize> {
        (**self).send_batch_trains(pkts, dsts, trains)
    }
    fn send_packet_batch(&self, batch: &mut PacketBatch) -> io::Result<usize> {
        (**self).send_packet_batch(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTun;

    /// An IPv4 TCP header (no payload) from port `sport` to 80, and its
    /// Total Length as `total` (a GRO head is the headers of a longer packet).
    fn tcp4(sport: u16, total: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 168, 12, 12]);
        p[16..20].copy_from_slice(&[192, 168, 11, 11]);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[32] = 5 << 4;
        p
    }

    /// Which of `hosts` got the packet written last (each is read dry).
    fn got(hosts: &[FakeTun]) -> Vec<usize> {
        let mut k = Vec::new();
        for (i, h) in hosts.iter().enumerate() {
            while h.recv_timeout(Some(Duration::ZERO)).is_some() {
                k.push(i);
            }
        }
        k
    }

    #[test]
    fn each_flow_is_written_through_one_queue_and_flows_spread_over_all() {
        let (devs, hosts): (Vec<_>, Vec<_>) = (0..4).map(|_| FakeTun::pair("q")).unzip();
        let q = TunQueues::new(devs.into_iter().map(Arc::new).collect()).unwrap();
        let mut used = [0usize; 4];
        for sport in 1000..1064u16 {
            let pkt = tcp4(sport, 40);
            q.write(&pkt).unwrap();
            let first = got(&hosts);
            assert_eq!(first.len(), 1);
            // Again, as the header of a coalesced write (virtio_net_hdr in
            // front, the Total Length of the whole): the same queue.
            let mut vnet = vec![0u8; ikeda_wire::vnet::VNET_HDR_LEN];
            vnet.extend_from_slice(&tcp4(sport, 9000));
            assert!(
                std::ptr::eq(q.queue_for_vnet(&vnet), &*q.queues()[first[0]]),
                "port {sport}"
            );
            q.write(&pkt).unwrap();
            assert_eq!(got(&hosts), first, "port {sport}");
            used[first[0]] += 1;
        }
        assert!(used.iter().all(|&n| n >= 6), "64 flows over 4 queues: {used:?}");
        // Not IP: the first queue, where the device refuses it.
        assert!(std::ptr::eq(q.queue_for(b"junk"), &*q.queues()[0]));
        // One queue: everything through it.
        let (d, _h) = FakeTun::pair("one");
        let one = TunQueues::new(vec![Arc::new(d)]).unwrap();
        assert!(std::ptr::eq(one.queue_for(&tcp4(1, 40)), &*one.queues()[0]));
        assert!(TunQueues::<FakeTun>::new(Vec::new()).is_none());
    }
}
