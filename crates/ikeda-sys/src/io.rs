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
