//! Linux TUN devices (`/dev/net/tun`, layer 3, no packet-info header).
//!
//! A [`Tun`] is just a file descriptor: reads return one IPv4/IPv6 packet
//! that the kernel routed into the interface, writes inject one packet as
//! if it had been received on it. All I/O methods take `&self`, so an RX
//! thread and a TX thread can share one `Tun` (or use
//! [`try_clone`](Tun::try_clone)).
//!
//! The device is created *non-persistent*: it disappears when the last
//! file descriptor referring to it is closed (i.e. when every `Tun` clone
//! is dropped), so a crashed daemon leaves no stale interface behind.
//!
//! [`Tun::open_offload`] opens the device with `IFF_VNET_HDR` and the
//! kernel's TCP (and, where it has them, UDP) segmentation offloads
//! switched on (`TUNSETOFFLOAD`): one read then returns a TCP super-packet
//! of up to 64 KB behind a `virtio_net_hdr`, which
//! [`read_batch`](Tun::read_batch) cuts into segments of at most the TUN
//! MTU (ikeda_wire::vnet), checksums completed, one per batch slot, so the
//! caller sees the same MTU-sized packets as without offload, for a
//! fraction of the syscalls. [`write`](Tun::write) then prefixes every
//! packet with an empty `virtio_net_hdr` (no GSO, checksums complete).
//!
//! The fd is opened in **non-blocking** mode, which is what
//! [`read_batch`](Tun::read_batch) needs to drain the queue without
//! blocking; its `timeout` argument provides the waiting. Plain
//! [`read`](Tun::read) then returns `WouldBlock` when the queue is empty
//! unless [`set_nonblocking(false)`](Tun::set_nonblocking) was called.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ikeda_wire::vnet::{Segments, VnetHdr, VNET_HDR_LEN};
use std::time::Duration;

use crate::batch::PacketBatch;
use crate::io::TunDevice;
use crate::util::{cvt, cvt_size, is_would_block, wait_readable, Deadline};

/// Longest interface name Linux accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// An open TUN interface.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
    /// Mirrors `O_NONBLOCK`, which lives on the open file description and
    /// is therefore shared by `try_clone` duplicates — hence the `Arc`.
    nonblocking: Arc<AtomicBool>,
    /// Set when the device was opened with `IFF_VNET_HDR` (shared by clones).
    vnet: Option<Arc<Vnet>>,
}

/// Largest packet a TUN read returns with TSO on (the device's default
/// `gso_max_size`, 64 KiB), plus its `virtio_net_hdr`. A read that fills
/// the whole buffer may have been truncated and is dropped.
const VNET_READ_BUF: usize = VNET_HDR_LEN + 65536 + 1;

/// The read side of an `IFF_VNET_HDR` TUN: the super-packet being cut into
/// segments, kept across [`Tun::read_batch`] calls when a batch fills up
/// before its last segment.
#[derive(Debug)]
struct VnetRx {
    buf: Box<[u8]>,
    /// Bytes in `buf` (header included); 0 when nothing is pending.
    len: usize,
    /// Index of the next segment to hand out.
    next: usize,
}

#[derive(Debug)]
struct Vnet {
    /// The device's, shared by its queues ([`Tun::open_queues`]).
    dev: Arc<VnetDevice>,
    /// This queue's. Why a mutex: `read_batch` takes `&self`; only the one
    /// TX thread of the queue reads, so it is never contended (one
    /// uncontended lock per batch).
    rx: Mutex<VnetRx>,
}

/// What the queues of one offloaded device share: one MTU, one set of
/// counters.
#[derive(Debug)]
struct VnetDevice {
    /// Longest segment handed out: the interface MTU (see [`Tun::set_mtu`]).
    seg_limit: AtomicUsize,
    gso_packets: AtomicU64,
    segments: AtomicU64,
    dropped: AtomicU64,
}

impl VnetRx {
    fn new() -> Self {
        VnetRx {
            buf: vec![0u8; VNET_READ_BUF].into_boxed_slice(),
            len: 0,
            next: 0,
        }
    }
}

/// Counters of an offloaded TUN's read path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffloadCounters {
    /// Super-packets (GSO, more than one segment) read.
    pub gso_packets: u64,
    /// Packets handed to the caller (segments and unsegmented packets).
    pub segments: u64,
    /// Reads dropped: a `virtio_net_hdr` or packet we cannot segment
    /// correctly, or a truncated read.
    pub dropped: u64,
}

/// The offloads asked for, first with UDP segmentation (Linux 6.2+), then
/// without it. `TSO_ECN`: our segmentation clears CWR after the first
/// segment, so ECN flows need not be segmented by the kernel.
const OFFLOADS: [libc::c_uint; 2] = [
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN | libc::TUN_F_USO4 | libc::TUN_F_USO6,
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN,
];

/// Builds an `ifreq` carrying `name`. Fails if the name is too long or
/// contains a NUL byte.
fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    if name.len() > MAX_IFNAME_LEN || name.as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?} (at most {MAX_IFNAME_LEN} bytes, no NUL)"),
        ));
    }
    // SAFETY: ifreq is a plain C struct/union; all-zeroes is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(ifr)
}

/// Runs an interface ioctl through a throwaway `AF_INET` datagram socket.
///
/// Why a socket: `SIOC[GS]IF*` are socket ioctls; any socket in the
/// caller's network namespace works, and config calls are rare enough that
/// opening one per call is simpler than caching it.
fn if_ioctl(req: libc::Ioctl, ifr: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: plain socket(2) call.
    let s = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fresh fd owned here, closed on drop.
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: `ifr` is a valid ifreq for all SIOC[GS]IF* requests we issue.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), req, ifr as *mut libc::ifreq) }).map(drop)
}

impl Tun {
    /// Creates (or attaches to) TUN interface `name` with
    /// `IFF_TUN | IFF_NO_PI`. An empty name lets the kernel pick one
    /// (`tun0`, `tun1`, …); a `%d` in the name is replaced by a number.
    /// Needs `CAP_NET_ADMIN`. The interface starts down with no address.
    pub fn open(name: &str) -> io::Result<Tun> {
        Self::open_flags(name, 0)
    }

    /// Like [`open`](Self::open), with `IFF_VNET_HDR` and the TCP/UDP
    /// segmentation and checksum offloads (see the [module docs](self)).
    /// Fails if the kernel refuses any of it (then nothing is left behind:
    /// the device goes with the fd) and the caller may fall back to
    /// [`open`](Self::open).
    pub fn open_offload(name: &str) -> io::Result<Tun> {
        Self::open_offload_flags(name, 0)
    }

    /// `queues` queues of one TUN device, each its own fd: the kernel
    /// spreads the packets routed into the device over them by flow
    /// (`IFF_MULTI_QUEUE`; a flow stays on the queue through which its
    /// replies were last written, `tun_flow_update`), so each queue can
    /// have its own reading thread. One queue is [`open`](Self::open) or
    /// [`open_offload`](Self::open_offload) exactly. With `offload` the
    /// queues share the MTU and the offload counters; each cuts its own
    /// super-packets. Fails (leaving nothing behind) where the device
    /// exists without `IFF_MULTI_QUEUE`, or the kernel refuses.
    pub fn open_queues(name: &str, queues: usize, offload: bool) -> io::Result<Vec<Tun>> {
        let multi = if queues > 1 { libc::IFF_MULTI_QUEUE } else { 0 };
        let first = if offload {
            Self::open_offload_flags(name, multi)?
        } else {
            Self::open_flags(name, multi)?
        };
        let extra = multi | if offload { libc::IFF_VNET_HDR } else { 0 };
        let mut all = vec![first];
        for _ in 1..queues {
            // The device-wide settings (header size, byte order, offloads)
            // were made through the first queue.
            let mut q = Self::open_flags(&all[0].name, extra)?;
            q.vnet = all[0].vnet.as_ref().map(|v| {
                Arc::new(Vnet {
                    dev: v.dev.clone(),
                    rx: Mutex::new(VnetRx::new()),
                })
            });
            all.push(q);
        }
        Ok(all)
    }

    fn open_offload_flags(name: &str, extra: libc::c_int) -> io::Result<Tun> {
        let mut tun = Self::open_flags(name, libc::IFF_VNET_HDR | extra)?;
        let fd = tun.fd();
        let len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads an int through the pointer.
        cvt(unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ, &len as *const libc::c_int) })
            .map_err(|e| io::Error::new(e.kind(), format!("TUNSETVNETHDRSZ: {e}")))?;
        // The header's fields are little-endian (what ikeda_wire::vnet
        // reads); a no-op on little-endian hosts, needed on big-endian ones.
        let le: libc::c_int = 1;
        // SAFETY: TUNSETVNETLE reads an int through the pointer.
        let r = cvt(unsafe { libc::ioctl(fd, libc::TUNSETVNETLE, &le as *const libc::c_int) });
        if cfg!(target_endian = "big") {
            r.map_err(|e| io::Error::new(e.kind(), format!("TUNSETVNETLE: {e}")))?;
        }
        let mut last = Ok(0);
        for f in OFFLOADS {
            // SAFETY: TUNSETOFFLOAD takes the flags by value.
            last = cvt(unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, f as libc::c_ulong) });
            if last.is_ok() {
                break;
            }
        }
        last.map_err(|e| io::Error::new(e.kind(), format!("TUNSETOFFLOAD: {e}")))?;
        let mtu = tun.mtu().unwrap_or(1500);
        tun.vnet = Some(Arc::new(Vnet {
            dev: Arc::new(VnetDevice {
                seg_limit: AtomicUsize::new(mtu as usize),
                gso_packets: AtomicU64::new(0),
                segments: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
            rx: Mutex::new(VnetRx::new()),
        }));
        Ok(tun)
    }

    /// True if opened by [`open_offload`](Self::open_offload).
    pub fn is_offloaded(&self) -> bool {
        self.vnet.is_some()
    }

    /// The offloaded read path's counters (`None` without offload), of
    /// all the device's queues together.
    pub fn offload_counters(&self) -> Option<OffloadCounters> {
        self.vnet.as_ref().map(|v| OffloadCounters {
            gso_packets: v.dev.gso_packets.load(Ordering::Relaxed),
            segments: v.dev.segments.load(Ordering::Relaxed),
            dropped: v.dev.dropped.load(Ordering::Relaxed),
        })
    }

    fn open_flags(name: &str, extra: libc::c_int) -> io::Result<Tun> {
        let mut ifr = ifreq_for(name)?;
        // Why IFF_NO_PI: without it every packet carries a 4-byte
        // flags/protocol prefix we would have to strip and build.
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | extra) as libc::c_short;

        // SAFETY: static NUL-terminated path.
        let raw = cvt(unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        })
        .map_err(|e| io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")))?;
        // SAFETY: fresh fd owned from here on (closed on every error path).
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // SAFETY: TUNSETIFF takes a pointer to an ifreq.
        cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr as *mut libc::ifreq) })
            .map_err(|e| io::Error::new(e.kind(), format!("TUNSETIFF {name:?}: {e}")))?;

        // The kernel writes back the final name (relevant for "" / "%d").
        // SAFETY: the kernel NUL-terminates ifr_name (IFNAMSIZ bytes).
        let actual = unsafe { CStr::from_ptr(ifr.ifr_name.as_ptr()) }
            .to_string_lossy()
            .into_owned();

        Ok(Tun {
            fd,
            name: actual,
            nonblocking: Arc::new(AtomicBool::new(true)),
            vnet: None,
        })
    }

    /// Interface name as assigned by the kernel.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw file descriptor (still owned by `self`).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Interface index (for netlink, `IPV6_PKTINFO`, …).
    pub fn ifindex(&self) -> io::Result<u32> {
        let mut ifr = ifreq_for(&self.name)?;
        if_ioctl(libc::SIOCGIFINDEX, &mut ifr)?;
        // SAFETY: SIOCGIFINDEX filled the ifindex member.
        Ok(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32)
    }

    /// Sets the interface MTU (`SIOCSIFMTU`); with offload, also the
    /// longest segment [`read_batch`](Self::read_batch) hands out.
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        let mut ifr = ifreq_for(&self.name)?;
        ifr.ifr_ifru.ifru_mtu =
            libc::c_int::try_from(mtu).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU too large"))?;
        if_ioctl(libc::SIOCSIFMTU, &mut ifr)?;
        if let Some(v) = &self.vnet {
            v.dev.seg_limit.store(mtu as usize, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Current interface MTU (`SIOCGIFMTU`).
    pub fn mtu(&self) -> io::Result<u32> {
        let mut ifr = ifreq_for(&self.name)?;
        if_ioctl(libc::SIOCGIFMTU, &mut ifr)?;
        // SAFETY: SIOCGIFMTU filled the mtu member.
        Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
    }

    /// Brings the interface up (`IFF_UP`, keeping the other flags).
    pub fn set_up(&self) -> io::Result<()> {
        self.update_flags(|f| f | libc::IFF_UP as libc::c_short)
    }

    /// Takes the interface down.
    pub fn set_down(&self) -> io::Result<()> {
        self.update_flags(|f| f & !(libc::IFF_UP as libc::c_short))
    }

    /// `true` if `IFF_UP` is set.
    pub fn is_up(&self) -> io::Result<bool> {
        let mut ifr = ifreq_for(&self.name)?;
        if_ioctl(libc::SIOCGIFFLAGS, &mut ifr)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        Ok(unsafe { ifr.ifr_ifru.ifru_flags } & libc::IFF_UP as libc::c_short != 0)
    }

    fn update_flags(&self, f: impl FnOnce(libc::c_short) -> libc::c_short) -> io::Result<()> {
        let mut ifr = ifreq_for(&self.name)?;
        if_ioctl(libc::SIOCGIFFLAGS, &mut ifr)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        ifr.ifr_ifru.ifru_flags = f(flags);
        if_ioctl(libc::SIOCSIFFLAGS, &mut ifr)
    }

    /// Switches `O_NONBLOCK` (shared with all `try_clone` duplicates).
    ///
    /// In blocking mode [`read_batch`](Self::read_batch) returns at most
    /// one packet per call, since it cannot drain the queue without
    /// risking a block.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        crate::util::set_nonblocking(self.fd(), nonblocking)?;
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Reads one packet. The buffer should hold at least MTU bytes: the
    /// kernel silently truncates longer packets. With offload the packet
    /// comes behind its `virtio_net_hdr` and may be a 64 KB super-packet:
    /// [`read_batch`](Self::read_batch) is what segments it.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buf is valid for writes of buf.len() bytes.
            match cvt_size(unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    /// Writes one IPv4/IPv6 packet into the interface (i.e. it appears to
    /// the kernel as received on it).
    pub fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        if self.vnet.is_some() {
            return self.write_vnet(pkt);
        }
        loop {
            // SAFETY: pkt is valid for reads of pkt.len() bytes.
            match cvt_size(unsafe { libc::write(self.fd(), pkt.as_ptr().cast(), pkt.len()) }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    /// With offload: the packet behind an empty `virtio_net_hdr` (no GSO,
    /// checksums complete), in one `writev` without copying.
    fn write_vnet(&self, pkt: &[u8]) -> io::Result<usize> {
        let hdr = [0u8; VNET_HDR_LEN];
        let iov = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: hdr.len(),
            },
            libc::iovec {
                iov_base: pkt.as_ptr() as *mut libc::c_void,
                iov_len: pkt.len(),
            },
        ];
        loop {
            // SAFETY: both iovecs point at live buffers of their lengths,
            // which writev only reads.
            match cvt_size(unsafe { libc::writev(self.fd(), iov.as_ptr(), 2) }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.map(|n| n.saturating_sub(VNET_HDR_LEN)),
            }
        }
    }

    /// Clears `batch` and reads up to `batch.capacity()` packets, each at
    /// `headroom` in its slot (addresses are `None`).
    ///
    /// Drains the queue until `EAGAIN`; if it was empty, waits for up to
    /// `timeout` (see [`crate::io`] for the `Option<Duration>` convention)
    /// and drains again. Returns `Ok(0)` on timeout.
    ///
    /// With offload, a super-packet fills as many slots as it has
    /// segments; what does not fit is handed out by the next call.
    pub fn read_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        if let Some(v) = &self.vnet {
            return self.read_batch_vnet(v, batch, timeout);
        }
        batch.clear();
        let headroom = batch.headroom();
        let mut deadline = Deadline::new(timeout);

        if !self.nonblocking.load(Ordering::Relaxed) {
            // Blocking fd: only a single read is safe; `poll` first so the
            // timeout is honoured.
            if timeout.is_some() && !wait_readable(self.fd(), &mut deadline)? {
                return Ok(0);
            }
            let len = self.read(batch.recv_area_mut(0))?;
            batch.set_received(0, headroom, len, None);
            batch.set_len(1);
            return Ok(1);
        }

        let cap = batch.capacity();
        loop {
            let mut n = 0;
            while n < cap {
                match self.read(batch.recv_area_mut(n)) {
                    Ok(len) => {
                        batch.set_received(n, headroom, len, None);
                        n += 1;
                    }
                    Err(e) if is_would_block(&e) => break,
                    // Why keep what we have: report the packets already
                    // read; a persistent error resurfaces on the next call.
                    Err(_) if n > 0 => break,
                    Err(e) => return Err(e),
                }
            }
            if n > 0 {
                batch.set_len(n);
                return Ok(n);
            }
            if !wait_readable(self.fd(), &mut deadline)? {
                return Ok(0);
            }
        }
    }

    fn read_batch_vnet(&self, v: &Vnet, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        batch.clear();
        let cap = batch.capacity();
        let blocking = !self.nonblocking.load(Ordering::Relaxed);
        let mut deadline = Deadline::new(timeout);
        let mut rx = v.rx.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        let mut reads = 0;
        loop {
            n = v.emit(&mut rx, batch, n);
            // A blocking fd can be read only once per call without risking
            // a block with packets in hand.
            if n == cap || (blocking && (reads > 0 || n > 0)) {
                break;
            }
            if blocking && timeout.is_some() && !wait_readable(self.fd(), &mut deadline)? {
                break;
            }
            match self.read(&mut rx.buf) {
                Ok(len) => {
                    reads += 1;
                    rx.len = len;
                    rx.next = 0;
                }
                Err(e) if is_would_block(&e) => {
                    if n > 0 || !wait_readable(self.fd(), &mut deadline)? {
                        break;
                    }
                }
                // Why keep what we have: a persistent error resurfaces on
                // the next call.
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        batch.set_len(n);
        Ok(n)
    }

    /// Another handle to the same device (`dup(2)`); the device lives
    /// until every handle is dropped.
    pub fn try_clone(&self) -> io::Result<Tun> {
        Ok(Tun {
            fd: self.fd.try_clone()?,
            name: self.name.clone(),
            nonblocking: Arc::clone(&self.nonblocking),
            vnet: self.vnet.clone(),
        })
    }
}

impl Vnet {
    /// Hands out the pending super-packet's segments into slots `n..` of
    /// `batch` until it is done or the batch is full; returns the new `n`.
    /// A read we cannot segment is dropped whole and counted.
    fn emit(&self, rx: &mut VnetRx, batch: &mut PacketBatch, mut n: usize) -> usize {
        if rx.len == 0 {
            return n;
        }
        let headroom = batch.headroom();
        let limit = self.dev.seg_limit.load(Ordering::Relaxed);
        let VnetRx { buf, len, next } = rx;
        let plan = if *len >= buf.len() {
            None // filled the buffer: possibly truncated
        } else {
            VnetHdr::parse(&buf[..*len])
                .and_then(|(hdr, pkt)| Segments::new(hdr, pkt, limit.min(batch.slot_size() - headroom)))
                .ok()
        };
        let Some(segs) = plan else {
            self.dev.dropped.fetch_add(1, Ordering::Relaxed);
            *len = 0;
            return n;
        };
        if *next == 0 && segs.count() > 1 {
            self.dev.gso_packets.fetch_add(1, Ordering::Relaxed);
        }
        let first = n;
        while *next < segs.count() && n < batch.capacity() {
            match segs.write(*next, batch.recv_area_mut(n)) {
                Ok(l) => {
                    batch.set_received(n, headroom, l, None);
                    n += 1;
                }
                // Cannot happen (segments fit the limit, which fits the
                // slot); counted rather than assumed.
                Err(_) => {
                    self.dev.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            *next += 1;
        }
        self.dev.segments.fetch_add((n - first) as u64, Ordering::Relaxed);
        if *next >= segs.count() {
            *len = 0;
        }
        n
    }
}

impl TunDevice for Tun {
    fn read_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        Tun::read_batch(self, batch, timeout)
    }
    fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        Tun::write(self, pkt)
    }
    fn offload_counters(&self) -> Option<OffloadCounters> {
        Tun::offload_counters(self)
    }
    fn accepts_vnet(&self) -> bool {
        self.vnet.is_some()
    }
    fn write_vnet(&self, hdr_and_pkt: &[u8]) -> io::Result<usize> {
        if self.vnet.is_none() {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        }
        loop {
            // SAFETY: the slice is valid for reads of its length.
            match cvt_size(unsafe { libc::write(self.fd(), hdr_and_pkt.as_ptr().cast(), hdr_and_pkt.len()) }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
    fn write_vnet_gather(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if self.vnet.is_none() {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        }
        let n = libc::c_int::try_from(parts.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        loop {
            // SAFETY: IoSlice is ABI-compatible with iovec on Unix (std
            // guarantees it), and each points at a live buffer of its
            // length, which writev only reads. TUN takes the whole as one
            // packet (tun_get_user copies across the iovecs).
            match cvt_size(unsafe { libc::writev(self.fd(), parts.as_ptr().cast::<libc::iovec>(), n) }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_names_without_touching_the_os() {
        assert_eq!(
            Tun::open("this-name-is-too-long").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(Tun::open("nul\0x").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn tun_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Tun>();
    }
}
