//! In-memory fakes of the OS devices, for tests without root.
//!
//! * [`FakeTun::pair`] returns the two ends of a virtual TUN device: the
//!   *device* end given to the data plane and the *host* end a test uses to
//!   play the kernel's network stack. A packet written on one end is read
//!   from the other.
//! * [`FakeNet`] is a tiny datagram "internet": [`FakeNet::bind`] creates a
//!   [`FakeSocket`] at a [`SocketAddr`], and sending to an address delivers
//!   to the socket bound there (or to one bound to the unspecified address
//!   with the same port and family, like `0.0.0.0:4500`). Unknown
//!   destinations are silently dropped, as UDP would. A filter hook lets
//!   tests drop (or observe) packets to simulate loss, reordering tests etc.
//!
//! Both implement the same traits ([`TunDevice`], [`DatagramIo`]) with the
//! same signatures and timeout semantics as the real devices, so two
//! complete gateways can run inside one test process.
//!
//! Queues are bounded (tail drop when full, counted in the stats) so a
//! runaway sender cannot exhaust memory. The fakes allocate per packet;
//! they are for correctness tests, not benchmarks.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::batch::PacketBatch;
use crate::io::{DatagramIo, TunDevice};

/// Default per-queue capacity, in packets.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

type Item = (Vec<u8>, Option<SocketAddr>);

/// A bounded blocking FIFO of packets.
#[derive(Debug)]
struct Queue {
    items: Mutex<VecDeque<Item>>,
    cond: Condvar,
    cap: usize,
}

impl Queue {
    fn new(cap: usize) -> Self {
        Queue {
            items: Mutex::new(VecDeque::new()),
            cond: Condvar::new(),
            cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Item>> {
        // Why ignore poisoning: a panicking test thread must not cascade
        // into every other thread using the fake.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues; `false` (packet dropped) if full.
    fn push(&self, pkt: Vec<u8>, addr: Option<SocketAddr>) -> bool {
        let mut q = self.lock();
        if q.len() >= self.cap {
            return false;
        }
        q.push_back((pkt, addr));
        drop(q);
        self.cond.notify_one();
        true
    }

    /// Waits (per the crate's timeout convention) until non-empty.
    fn wait_nonempty(&self, timeout: Option<Duration>) -> Option<MutexGuard<'_, VecDeque<Item>>> {
        let mut q = self.lock();
        let deadline = timeout.map(|t| Instant::now() + t);
        while q.is_empty() {
            match deadline {
                None => q = self.cond.wait(q).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    q = self.cond.wait_timeout(q, left).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
        Some(q)
    }

    /// Moves up to `batch.capacity()` packets into `batch`.
    fn pop_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> usize {
        batch.clear();
        let Some(mut q) = self.wait_nonempty(timeout) else {
            return 0;
        };
        let headroom = batch.headroom();
        let n = q.len().min(batch.capacity());
        for i in 0..n {
            let Some((pkt, addr)) = q.pop_front() else {
                break;
            };
            let area = batch.recv_area_mut(i);
            // Same policy as the real sockets: an oversized packet is
            // reported empty rather than cut.
            let len = if pkt.len() <= area.len() {
                area[..pkt.len()].copy_from_slice(&pkt);
                pkt.len()
            } else {
                0
            };
            batch.set_received(i, headroom, len, addr);
        }
        batch.set_len(n);
        n
    }

    fn pop_one(&self, timeout: Option<Duration>) -> Option<Item> {
        self.wait_nonempty(timeout)?.pop_front()
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

// ---------------------------------------------------------------------------
// FakeTun
// ---------------------------------------------------------------------------

/// One end of an in-memory TUN device. See the [module docs](self).
#[derive(Debug)]
pub struct FakeTun {
    name: String,
    /// Packets for this end to read.
    rx: Arc<Queue>,
    /// Packets this end writes (the peer's `rx`).
    tx: Arc<Queue>,
    dropped: AtomicU64,
}

impl FakeTun {
    /// Creates a connected `(device, host)` pair with
    /// [`DEFAULT_QUEUE_CAPACITY`] packets per direction.
    pub fn pair(name: &str) -> (FakeTun, FakeTun) {
        FakeTun::pair_with_capacity(name, DEFAULT_QUEUE_CAPACITY)
    }

    /// Like [`pair`](Self::pair) with an explicit per-direction capacity.
    pub fn pair_with_capacity(name: &str, capacity: usize) -> (FakeTun, FakeTun) {
        let a = Arc::new(Queue::new(capacity));
        let b = Arc::new(Queue::new(capacity));
        let end = |rx: &Arc<Queue>, tx: &Arc<Queue>| FakeTun {
            name: name.to_string(),
            rx: Arc::clone(rx),
            tx: Arc::clone(tx),
            dropped: AtomicU64::new(0),
        };
        (end(&a, &b), end(&b, &a))
    }

    /// The device name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one packet (convenience for tests on the host end).
    /// `None` on timeout.
    pub fn recv_timeout(&self, timeout: Option<Duration>) -> Option<Vec<u8>> {
        self.rx.pop_one(timeout).map(|(p, _)| p)
    }

    /// Packets waiting to be read on this end.
    pub fn pending(&self) -> usize {
        self.rx.len()
    }

    /// Packets written on this end but dropped because the peer's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl TunDevice for FakeTun {
    fn read_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        Ok(self.rx.pop_batch(batch, timeout))
    }

    /// Like a real TUN, rejects anything that is not an IPv4/IPv6 packet
    /// (`InvalidInput`, the real device's `EINVAL`) — that catches data
    /// plane bugs early. A full queue drops the packet (counted) but
    /// reports success, as a congested kernel would.
    fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        match pkt.first().map(|b| b >> 4) {
            Some(4) | Some(6) => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "FakeTun: not an IPv4/IPv6 packet",
                ))
            }
        }
        if !self.tx.push(pkt.to_vec(), None) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(pkt.len())
    }
}

// ---------------------------------------------------------------------------
// FakeNet / FakeSocket
// ---------------------------------------------------------------------------

/// Packet filter: `(src, dst, datagram) -> deliver?`.
pub type FakeNetFilter = dyn Fn(SocketAddr, SocketAddr, &[u8]) -> bool + Send + Sync;

/// Delivery counters of a [`FakeNet`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeNetStats {
    /// Datagrams queued at their destination socket.
    pub delivered: u64,
    /// Dropped: no socket bound at the destination.
    pub no_route: u64,
    /// Dropped by the filter.
    pub filtered: u64,
    /// Dropped: destination queue full.
    pub queue_full: u64,
}

#[derive(Default)]
struct NetInner {
    sockets: Mutex<HashMap<SocketAddr, Arc<Queue>>>,
    filter: RwLock<Option<Arc<FakeNetFilter>>>,
    next_port: AtomicU16,
    queue_cap: usize,
    delivered: AtomicU64,
    no_route: AtomicU64,
    filtered: AtomicU64,
    queue_full: AtomicU64,
}

impl NetInner {
    fn sockets(&self) -> MutexGuard<'_, HashMap<SocketAddr, Arc<Queue>>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An in-memory datagram network. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct FakeNet {
    inner: Arc<NetInner>,
}

impl std::fmt::Debug for FakeNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNet")
            .field("sockets", &self.inner.sockets().keys().collect::<Vec<_>>())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for FakeNet {
    fn default() -> Self {
        FakeNet::new()
    }
}

impl FakeNet {
    /// A new, empty network with [`DEFAULT_QUEUE_CAPACITY`] per socket.
    pub fn new() -> Self {
        FakeNet::with_queue_capacity(DEFAULT_QUEUE_CAPACITY)
    }

    /// A new network whose sockets queue at most `capacity` datagrams.
    pub fn with_queue_capacity(capacity: usize) -> Self {
        FakeNet {
            inner: Arc::new(NetInner {
                next_port: AtomicU16::new(49152),
                queue_cap: capacity,
                ..NetInner::default()
            }),
        }
    }

    /// Binds a socket at `addr`. Port 0 picks a free ephemeral port.
    /// Fails with `AddrInUse` if the address is taken.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<FakeSocket> {
        self.bind_at(addr, addr.port() == 0)
    }

    /// Binds the stand-in of a raw IP protocol socket (ESP, protocol 50) of
    /// `ip`: a socket at port 0 itself, as the data plane addresses raw ESP
    /// peers (`ip:0`) and sees their datagrams come from. Keep such sockets
    /// on a `FakeNet` of their own, apart from the UDP ones.
    pub fn bind_raw(&self, ip: IpAddr) -> io::Result<FakeSocket> {
        self.bind_at(SocketAddr::new(ip, 0), false)
    }

    fn bind_at(&self, addr: SocketAddr, ephemeral: bool) -> io::Result<FakeSocket> {
        let mut map = self.inner.sockets();
        let mut addr = addr;
        if ephemeral {
            // Why bounded: never spin forever if all 16k ports are used.
            let port = (0..16384)
                .map(|_| 49152 + self.inner.next_port.fetch_add(1, Ordering::Relaxed) % 16384)
                .find(|&p| !map.contains_key(&SocketAddr::new(addr.ip(), p)))
                .ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "FakeNet: no free ephemeral port"))?;
            addr.set_port(port);
        }
        if map.contains_key(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("FakeNet: {addr} already bound"),
            ));
        }
        let queue = Arc::new(Queue::new(self.inner.queue_cap));
        map.insert(addr, Arc::clone(&queue));
        Ok(FakeSocket {
            net: Arc::clone(&self.inner),
            addr,
            queue,
        })
    }

    /// Installs a filter called for every datagram; returning `false`
    /// drops it. Replaces any previous filter.
    pub fn set_filter<F>(&self, f: F)
    where
        F: Fn(SocketAddr, SocketAddr, &[u8]) -> bool + Send + Sync + 'static,
    {
        *self.inner.filter.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(f));
    }

    /// Removes the filter.
    pub fn clear_filter(&self) {
        *self.inner.filter.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Snapshot of the delivery counters.
    pub fn stats(&self) -> FakeNetStats {
        let i = &self.inner;
        FakeNetStats {
            delivered: i.delivered.load(Ordering::Relaxed),
            no_route: i.no_route.load(Ordering::Relaxed),
            filtered: i.filtered.load(Ordering::Relaxed),
            queue_full: i.queue_full.load(Ordering::Relaxed),
        }
    }
}

/// A socket on a [`FakeNet`]; unbound when dropped.
#[derive(Debug)]
pub struct FakeSocket {
    net: Arc<NetInner>,
    addr: SocketAddr,
    queue: Arc<Queue>,
}

impl std::fmt::Debug for NetInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeNet")
    }
}

impl FakeSocket {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams waiting to be received.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Sends one datagram (convenience).
    pub fn send_to(&self, pkt: &[u8], dst: SocketAddr) -> io::Result<usize> {
        self.send_batch(&[pkt], &[dst]).map(|_| pkt.len())
    }

    /// Receives one datagram (convenience); `None` on timeout.
    pub fn recv_from(&self, timeout: Option<Duration>) -> Option<(Vec<u8>, SocketAddr)> {
        let (p, a) = self.queue.pop_one(timeout)?;
        Some((p, a.unwrap_or(self.addr)))
    }

    /// Routes one datagram; `map` is the locked socket table.
    fn deliver(
        &self,
        map: &HashMap<SocketAddr, Arc<Queue>>,
        filter: Option<&FakeNetFilter>,
        pkt: &[u8],
        dst: SocketAddr,
    ) {
        let n = &self.net;
        if let Some(f) = filter {
            if !f(self.addr, dst, pkt) {
                n.filtered.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let wildcard = SocketAddr::new(
            match dst.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            },
            dst.port(),
        );
        let Some(q) = map.get(&dst).or_else(|| map.get(&wildcard)) else {
            n.no_route.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if q.push(pkt.to_vec(), Some(self.addr)) {
            n.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            n.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn filter(&self) -> Option<Arc<FakeNetFilter>> {
        self.net.filter.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl DatagramIo for FakeSocket {
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        Ok(self.queue.pop_batch(batch, timeout))
    }

    /// Every datagram counts as sent, even if the network then drops it
    /// (unknown destination, filter, full queue) — exactly what a real
    /// UDP socket reports.
    fn send_batch(&self, pkts: &[&[u8]], dsts: &[SocketAddr]) -> io::Result<usize> {
        if pkts.len() != dsts.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("send_batch: {} packets but {} destinations", pkts.len(), dsts.len()),
            ));
        }
        let filter = self.filter();
        let map = self.net.sockets();
        for (pkt, dst) in pkts.iter().zip(dsts) {
            self.deliver(&map, filter.as_deref(), pkt, *dst);
        }
        Ok(pkts.len())
    }

    fn send_packet_batch(&self, batch: &mut PacketBatch) -> io::Result<usize> {
        let filter = self.filter();
        let map = self.net.sockets();
        let mut sent = 0;
        for i in 0..batch.len() {
            let m = batch.meta(i);
            let Some(dst) = m.addr else { continue };
            if m.len == 0 {
                continue;
            }
            self.deliver(&map, filter.as_deref(), batch.packet(i), dst);
            sent += 1;
        }
        Ok(sent)
    }
}

impl Drop for FakeSocket {
    fn drop(&mut self) {
        let mut map = self.net.sockets();
        // Only remove our own registration (the address may have been
        // re-bound by someone else after a previous drop).
        if map.get(&self.addr).is_some_and(|q| Arc::ptr_eq(q, &self.queue)) {
            map.remove(&self.addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn ipv4_pkt(tag: u8) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[27] = tag;
        p
    }

    #[test]
    fn tun_pair_both_directions() {
        let (dev, host) = FakeTun::pair("fake0");
        assert_eq!(dev.name(), "fake0");
        for t in 0..5 {
            host.write(&ipv4_pkt(t)).unwrap();
        }
        assert_eq!(dev.pending(), 5);
        let mut b = PacketBatch::new(3, 256, 40);
        assert_eq!(dev.read_batch(&mut b, Some(Duration::ZERO)).unwrap(), 3);
        assert_eq!(b.meta(0).start, 40);
        assert_eq!(b.packet(2)[27], 2);
        assert_eq!(dev.read_batch(&mut b, None).unwrap(), 2);
        assert_eq!(b.packet(1)[27], 4);
        assert_eq!(dev.read_batch(&mut b, Some(Duration::from_millis(10))).unwrap(), 0);

        // Device -> host, via write_batch.
        assert_eq!(
            dev.write_batch(&b).unwrap(),
            0,
            "batch was cleared by the timed-out read"
        );
        b.push_copy(&ipv4_pkt(9), None).unwrap();
        b.push_copy(&ipv4_pkt(10), None).unwrap();
        assert_eq!(dev.write_batch(&b).unwrap(), 2);
        assert_eq!(host.recv_timeout(Some(Duration::ZERO)).unwrap()[27], 9);
        assert_eq!(host.recv_timeout(Some(Duration::ZERO)).unwrap()[27], 10);
        assert!(host.recv_timeout(Some(Duration::ZERO)).is_none());
    }

    #[test]
    fn tun_rejects_non_ip_and_drops_when_full() {
        let (dev, host) = FakeTun::pair_with_capacity("fake1", 2);
        assert_eq!(dev.write(&[]).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(dev.write(&[0x10, 0]).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        for t in 0..3 {
            dev.write(&ipv4_pkt(t)).unwrap();
        }
        assert_eq!(dev.dropped(), 1);
        assert_eq!(host.pending(), 2);
    }

    #[test]
    fn tun_read_blocks_until_write_from_other_thread() {
        let (dev, host) = FakeTun::pair("fake2");
        let h = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            host.write(&ipv4_pkt(7)).unwrap();
            host
        });
        let mut b = PacketBatch::new(8, 128, 0);
        assert_eq!(dev.read_batch(&mut b, None).unwrap(), 1);
        assert_eq!(b.packet(0)[27], 7);
        h.join().unwrap();
    }

    #[test]
    fn oversized_packets_are_reported_empty() {
        let (dev, host) = FakeTun::pair("fake3");
        host.write(&[0x45; 100]).unwrap();
        let mut b = PacketBatch::new(1, 60, 10);
        assert_eq!(dev.read_batch(&mut b, None).unwrap(), 1);
        assert!(b.packet(0).is_empty());
    }

    #[test]
    fn net_delivery_addresses_and_wildcard() {
        let net = FakeNet::new();
        let a = net.bind("192.0.2.1:500".parse().unwrap()).unwrap();
        let b = net.bind("0.0.0.0:4500".parse().unwrap()).unwrap();
        let c = net.bind("[2001:db8::2]:0".parse().unwrap()).unwrap();
        assert_ne!(c.local_addr().port(), 0);
        assert_eq!(
            net.bind("192.0.2.1:500".parse().unwrap()).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );

        let to_b: SocketAddr = "198.51.100.7:4500".parse().unwrap(); // wildcard match
        let to_c = c.local_addr();
        let nowhere: SocketAddr = "203.0.113.1:9".parse().unwrap();
        assert_eq!(a.send_batch(&[b"x", b"y", b"z"], &[to_b, to_c, nowhere]).unwrap(), 3);
        assert_eq!(
            a.send_batch(&[b"x"], &[]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );

        let mut batch = PacketBatch::new(4, 64, 8);
        assert_eq!(b.recv_batch(&mut batch, Some(Duration::ZERO)).unwrap(), 1);
        assert_eq!(batch.packet(0), b"x");
        assert_eq!(batch.addr(0), Some(a.local_addr()));
        assert_eq!(
            c.recv_from(Some(Duration::ZERO)).unwrap(),
            (b"y".to_vec(), a.local_addr())
        );
        assert_eq!(
            net.stats(),
            FakeNetStats {
                delivered: 2,
                no_route: 1,
                filtered: 0,
                queue_full: 0
            }
        );

        // Dropping unbinds; the address can be reused.
        drop(b);
        a.send_to(b"lost", to_b).unwrap();
        assert_eq!(net.stats().no_route, 2);
        let b2 = net.bind("0.0.0.0:4500".parse().unwrap()).unwrap();
        a.send_to(b"found", to_b).unwrap();
        assert_eq!(b2.recv_from(Some(Duration::ZERO)).unwrap().0, b"found");
    }

    #[test]
    fn net_filter_and_send_packet_batch() {
        let net = FakeNet::new();
        let a = net.bind("10.0.0.1:4500".parse().unwrap()).unwrap();
        let b = net.bind("10.0.0.2:4500".parse().unwrap()).unwrap();
        // Drop every datagram starting with 'd'.
        net.set_filter(|_src, _dst, p| p.first() != Some(&b'd'));

        let mut tx = PacketBatch::new(4, 64, 16);
        tx.push_copy(b"keep1", Some(b.local_addr())).unwrap();
        tx.push_copy(b"drop", Some(b.local_addr())).unwrap();
        tx.push_copy(b"noaddr", None).unwrap();
        tx.push_copy(b"keep2", Some(b.local_addr())).unwrap();
        assert_eq!(a.send_packet_batch(&mut tx).unwrap(), 3);
        assert_eq!(net.stats().filtered, 1);

        let mut rx = PacketBatch::new(4, 64, 16);
        assert_eq!(b.recv_batch(&mut rx, Some(Duration::from_millis(100))).unwrap(), 2);
        let got: Vec<&[u8]> = rx.iter().map(|(p, _)| p).collect();
        assert_eq!(got, vec![&b"keep1"[..], &b"keep2"[..]]);

        net.clear_filter();
        a.send_to(b"drop", b.local_addr()).unwrap();
        assert_eq!(b.pending(), 1);
    }

    #[test]
    fn net_queue_bound() {
        let net = FakeNet::with_queue_capacity(2);
        let a = net.bind("10.0.0.1:1".parse().unwrap()).unwrap();
        let b = net.bind("10.0.0.2:1".parse().unwrap()).unwrap();
        let dsts = [b.local_addr(); 3];
        a.send_batch(&[b"1", b"2", b"3"], &dsts).unwrap();
        assert_eq!(net.stats().queue_full, 1);
        assert_eq!(b.pending(), 2);
    }

    #[test]
    fn generic_over_traits() {
        // The data plane's shape: generic over the traits, shared via Arc.
        fn pump<T: TunDevice, D: DatagramIo>(tun: &T, sock: &D, peer: SocketAddr) -> usize {
            let mut b = PacketBatch::new(16, 256, 32);
            let n = tun.read_batch(&mut b, Some(Duration::from_millis(100))).unwrap();
            for i in 0..n {
                let m = b.meta(i);
                b.set_packet(i, m.start, m.len, Some(peer));
            }
            sock.send_packet_batch(&mut b).unwrap()
        }
        let (dev, host) = FakeTun::pair("g0");
        let net = FakeNet::new();
        let a = Arc::new(net.bind("10.0.0.1:4500".parse().unwrap()).unwrap());
        let b = net.bind("10.0.0.2:4500".parse().unwrap()).unwrap();
        host.write(&ipv4_pkt(1)).unwrap();
        host.write(&ipv4_pkt(2)).unwrap();
        let dev = Arc::new(dev);
        assert_eq!(pump(&dev, &a, b.local_addr()), 2);
        assert_eq!(b.pending(), 2);
    }
}
