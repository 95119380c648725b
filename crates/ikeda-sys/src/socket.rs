//! Batched datagram sockets: UDP and raw IP protocol 50 (ESP).
//!
//! Both socket types move packets with `recvmmsg(2)` / `sendmmsg(2)`, one
//! syscall per batch instead of per packet, and implement
//! [`DatagramIo`].
//!
//! * [`UdpSocket`] — IKE (500), NAT-T / UDP-encapsulated ESP (4500), or any
//!   UDP port. A socket bound to `[::]` is dual-stack; IPv4 peers are then
//!   reported as plain IPv4 addresses (not `::ffff:a.b.c.d`), and IPv4
//!   destinations are mapped automatically when sending.
//! * [`RawEspSocket`] — native ESP (IP protocol 50) without any kernel
//!   IPsec: the kernel builds the outer IP header on send, and on receive
//!   delivers every ESP packet addressed to this host. Raw **IPv4** sockets
//!   hand over the IP header as well; [`RawEspSocket::recv_batch`] parses
//!   it and points each slot's `start` at the ESP header. Raw IPv6 sockets
//!   deliver the payload only. Ports in [`SocketAddr`]s are ignored.
//!
//! # Allocation
//!
//! Receives use the `mmsghdr`/`iovec`/`sockaddr` arrays owned by the
//! [`PacketBatch`]. [`send_batch`](UdpSocket::send_batch) (parallel slices)
//! uses scratch arrays owned by the socket behind a mutex (uncontended
//! unless two threads send on the same socket at the same time);
//! [`send_packet_batch`](UdpSocket::send_packet_batch) uses the batch's own
//! arrays and takes no lock. No call allocates.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::batch::{MmsgState, PacketBatch, MAX_BATCH};
use crate::gso::{self, GroRx, GsoTx, UdpOffloadCounters, UdpStats};
use crate::io::DatagramIo;
use crate::util::{cvt, is_would_block, wait_readable, Deadline};

/// `SO_SNDBUFFORCE` / `SO_RCVBUFFORCE` from `<asm-generic/socket.h>`.
///
/// Why defined here: the `libc` crate does not export them for Linux. The
/// values are the same on every architecture except MIPS/SPARC/Alpha/PA-RISC.
const SO_SNDBUFFORCE: libc::c_int = 32;
const SO_RCVBUFFORCE: libc::c_int = 33;

// ---------------------------------------------------------------------------
// sockaddr conversion
// ---------------------------------------------------------------------------

/// Encodes `addr` for a socket of address family `family`, into `out`.
/// Returns the sockaddr length.
///
/// * IPv4 destination on an `AF_INET6` socket → `::ffff:a.b.c.d`
///   (dual-stack sockets require the mapped form);
/// * mapped IPv6 destination on an `AF_INET` socket → plain IPv4;
/// * `zero_port` for raw sockets (Linux rejects IPv6 raw sends whose port
///   is neither 0 nor the protocol number).
pub(crate) fn encode_sockaddr(
    addr: &SocketAddr,
    family: libc::c_int,
    zero_port: bool,
    out: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    let port = if zero_port { 0 } else { addr.port() };
    let as_v4 = match (addr, family) {
        (SocketAddr::V4(a), libc::AF_INET) => Some(*a.ip()),
        (SocketAddr::V6(a), libc::AF_INET) => a.ip().to_ipv4_mapped(),
        _ => None,
    };
    if let Some(ip) = as_v4 {
        // SAFETY: sockaddr_storage is large enough and suitably aligned
        // for every sockaddr_* type.
        let sin = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in) };
        *sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.octets()),
            },
            sin_zero: [0; 8],
        };
        return mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    }
    let (ip, flowinfo, scope_id) = match addr {
        SocketAddr::V4(a) => (a.ip().to_ipv6_mapped(), 0, 0),
        SocketAddr::V6(a) => (*a.ip(), a.flowinfo(), a.scope_id()),
    };
    // SAFETY: as above.
    let sin6 = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in6) };
    *sin6 = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: port.to_be(),
        sin6_flowinfo: flowinfo,
        sin6_addr: libc::in6_addr { s6_addr: ip.octets() },
        sin6_scope_id: scope_id,
    };
    mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
}

/// Decodes a kernel-filled sockaddr. IPv4-mapped IPv6 addresses are
/// returned as IPv4 so callers see one canonical form per peer.
pub(crate) fn decode_sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: family and length checked.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: family and length checked.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id)),
            })
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// recvmmsg / sendmmsg cores
// ---------------------------------------------------------------------------

/// How received datagrams are post-processed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RecvKind {
    /// Payload starts at the beginning of the datagram.
    Plain,
    /// Raw IPv4: datagram starts with the IP header, strip it.
    StripIpv4Header,
}

/// Returns the offset of the IPv4 payload (the ESP header, for a raw ESP
/// socket) in `pkt`, i.e. `IHL * 4`, after checking that `pkt` is a
/// plausible IPv4 packet. `None` if it is not.
pub fn ipv4_payload_offset(pkt: &[u8]) -> Option<usize> {
    let first = *pkt.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    (ihl >= 20 && ihl <= pkt.len()).then_some(ihl)
}

/// `recvmmsg(2)` into prepared headers, waiting up to `timeout` for the
/// first datagram. Returns how many headers were filled (0 on timeout).
///
/// # Safety
///
/// Every header must point at buffers (name, iovecs, control) that stay
/// live and unaliased for the call.
pub(crate) unsafe fn recvmmsg_wait(
    fd: RawFd,
    hdrs: &mut [libc::mmsghdr],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let mut deadline = Deadline::new(timeout);
    loop {
        // SAFETY: the caller's contract.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if !is_would_block(&e) {
            return Err(e);
        }
        if !wait_readable(fd, &mut deadline)? {
            return Ok(0);
        }
    }
}

/// `recvmmsg(2)` into `batch`, waiting up to `timeout` for the first datagram.
fn recv_mmsg(fd: RawFd, batch: &mut PacketBatch, timeout: Option<Duration>, kind: RecvKind) -> io::Result<usize> {
    batch.clear();
    let n = batch.capacity().min(libc::c_uint::MAX as usize);
    let headroom = batch.headroom();

    // Why rebuild every header each call: the kernel overwrites
    // msg_namelen/msg_flags, and the storage pointer is re-derived from
    // `&mut batch` so no stale pointer can outlive a move of the batch.
    for i in 0..n {
        let (base, len) = batch.recv_area_raw(i);
        let st = &mut batch.mmsg;
        st.iovs[i] = libc::iovec {
            iov_base: base.cast(),
            iov_len: len,
        };
        let h = &mut st.hdrs[i];
        h.msg_hdr.msg_name = (&mut st.names[i] as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_hdr.msg_iov = &mut st.iovs[i];
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = std::ptr::null_mut();
        h.msg_hdr.msg_controllen = 0;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
    }

    // SAFETY: hdrs[0..n] point into live buffers owned by `batch`, which
    // we borrow mutably for the whole call.
    let got = unsafe { recvmmsg_wait(fd, &mut batch.mmsg.hdrs[..n], timeout)? };

    for i in 0..got {
        let h = &batch.mmsg.hdrs[i];
        let addr = decode_sockaddr(&batch.mmsg.names[i], h.msg_hdr.msg_namelen);
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let len = h.msg_len as usize;
        let (start, len) = if truncated {
            // Why empty rather than partial: a cut datagram can never
            // authenticate, so hand the caller something it naturally drops.
            (headroom, 0)
        } else {
            match kind {
                RecvKind::Plain => (headroom, len),
                RecvKind::StripIpv4Header => {
                    let area = &batch.slot(i)[headroom..headroom + len];
                    match ipv4_payload_offset(area) {
                        Some(off) => (headroom + off, len - off),
                        None => (headroom, 0),
                    }
                }
            }
        };
        batch.set_received(i, start, len, addr);
    }
    batch.set_len(got);
    Ok(got)
}

/// Errors that concern one datagram only; the rest of the batch proceeds.
pub(crate) fn is_per_datagram_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EACCES
                | libc::EPERM
                | libc::EAFNOSUPPORT
                | libc::EINVAL
                | libc::EMSGSIZE
                | libc::ECONNREFUSED
                | libc::EDESTADDRREQ
                | libc::EADDRNOTAVAIL
        )
    )
}

/// Runs `sendmmsg(2)` over `hdrs[..k]` (already prepared) until all are
/// sent, skipping datagrams that fail individually.
///
/// Returns `(sent, first_error)`.
fn sendmmsg_all(fd: RawFd, hdrs: &mut [libc::mmsghdr], calls: &mut u64) -> (usize, Option<io::Error>) {
    let mut idx = 0;
    let mut sent = 0;
    let mut first_err: Option<io::Error> = None;
    while idx < hdrs.len() {
        let rest = &mut hdrs[idx..];
        // SAFETY: the caller prepared every header to point at live
        // buffers that outlive this call.
        let r = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
        if r > 0 {
            idx += r as usize;
            sent += r as usize;
            *calls += 1;
            continue;
        }
        let e = if r == 0 {
            // Not expected for a non-empty vector; treat as "cannot progress".
            io::Error::from(io::ErrorKind::WriteZero)
        } else {
            io::Error::last_os_error()
        };
        if e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // Why only the failing datagram is skipped: Linux's sendmmsg stops
        // at the first failure and returns the count before it; that first
        // unsent message is the one that failed.
        let per_datagram = is_per_datagram_error(&e);
        first_err.get_or_insert(e);
        if per_datagram {
            idx += 1;
        } else {
            // EAGAIN (non-blocking socket full), ENOBUFS, EBADF, …: stop.
            break;
        }
    }
    (sent, first_err)
}

fn finish_send(sent: usize, err: Option<io::Error>) -> io::Result<usize> {
    match err {
        Some(e) if sent == 0 => Err(e),
        _ => Ok(sent),
    }
}

/// Sends parallel slices with a socket-owned scratch state, chunked by its
/// capacity.
fn send_slices(
    fd: RawFd,
    family: libc::c_int,
    zero_port: bool,
    st: &mut MmsgState,
    pkts: &[&[u8]],
    dsts: &[SocketAddr],
    calls: &mut u64,
) -> io::Result<usize> {
    if pkts.len() != dsts.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("send_batch: {} packets but {} destinations", pkts.len(), dsts.len()),
        ));
    }
    let mut total = 0;
    let mut first_err = None;
    for (pchunk, dchunk) in pkts.chunks(st.capacity()).zip(dsts.chunks(st.capacity())) {
        let k = pchunk.len();
        for i in 0..k {
            st.iovs[i] = libc::iovec {
                // sendmsg never writes through iov_base; the cast only
                // satisfies the C signature.
                iov_base: pchunk[i].as_ptr() as *mut libc::c_void,
                iov_len: pchunk[i].len(),
            };
            let namelen = encode_sockaddr(&dchunk[i], family, zero_port, &mut st.names[i]);
            fill_send_hdr(st, i, i, namelen);
        }
        let (sent, err) = sendmmsg_all(fd, &mut st.hdrs[..k], calls);
        total += sent;
        if let Some(e) = err {
            let fatal = !is_per_datagram_error(&e);
            first_err.get_or_insert(e);
            if fatal {
                break;
            }
        }
    }
    finish_send(total, first_err)
}

/// Points header `h` at iovec `iov` and sockaddr `h`.
#[inline]
fn fill_send_hdr(st: &mut MmsgState, h: usize, iov: usize, namelen: libc::socklen_t) {
    let hdr = &mut st.hdrs[h];
    hdr.msg_hdr.msg_name = (&mut st.names[h] as *mut libc::sockaddr_storage).cast();
    hdr.msg_hdr.msg_namelen = namelen;
    hdr.msg_hdr.msg_iov = &mut st.iovs[iov];
    hdr.msg_hdr.msg_iovlen = 1;
    hdr.msg_hdr.msg_control = std::ptr::null_mut();
    hdr.msg_hdr.msg_controllen = 0;
    hdr.msg_hdr.msg_flags = 0;
    hdr.msg_len = 0;
}

/// Sends every addressed, non-empty slot of `batch` using its own scratch.
fn send_batch_slots(
    fd: RawFd,
    family: libc::c_int,
    zero_port: bool,
    batch: &mut PacketBatch,
    calls: &mut u64,
) -> io::Result<usize> {
    let mut k = 0;
    for i in 0..batch.len() {
        let meta = batch.meta(i);
        let Some(dst) = meta.addr else { continue };
        if meta.len == 0 {
            continue;
        }
        let pkt = batch.packet(i);
        let iov = libc::iovec {
            iov_base: pkt.as_ptr() as *mut libc::c_void,
            iov_len: pkt.len(),
        };
        let st = &mut batch.mmsg;
        st.iovs[k] = iov;
        let namelen = encode_sockaddr(&dst, family, zero_port, &mut st.names[k]);
        fill_send_hdr(st, k, k, namelen);
        k += 1;
    }
    if k == 0 {
        return Ok(0);
    }
    let (sent, err) = sendmmsg_all(fd, &mut batch.mmsg.hdrs[..k], calls);
    finish_send(sent, err)
}

// ---------------------------------------------------------------------------
// socket options
// ---------------------------------------------------------------------------

fn setsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: passing a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&val as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: pointer to a live c_int and its size.
    cvt(unsafe { libc::getsockopt(fd, level, opt, (&mut val as *mut libc::c_int).cast(), &mut len) })?;
    Ok(val)
}

/// Sets one buffer size, preferring the `*FORCE` variant.
///
/// Why FORCE first: plain `SO_RCVBUF`/`SO_SNDBUF` are silently capped at
/// `net.core.rmem_max`/`wmem_max` (often ~200 KiB), far too small for a
/// multi-Gbit/s tunnel; with `CAP_NET_ADMIN` the FORCE variants bypass the
/// cap. Without the capability they fail with `EPERM` and we fall back.
fn set_buf(fd: RawFd, force_opt: libc::c_int, opt: libc::c_int, bytes: usize) -> io::Result<()> {
    // The kernel doubles the value and works in `int`; clamp to avoid overflow.
    let val = bytes.min((libc::c_int::MAX / 2) as usize) as libc::c_int;
    match setsockopt_int(fd, libc::SOL_SOCKET, force_opt, val) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => setsockopt_int(fd, libc::SOL_SOCKET, opt, val),
        Err(e) => Err(e),
    }
}

/// Socket-buffer tuning shared by both socket types.
fn set_buffer_sizes(fd: RawFd, recv: usize, send: usize) -> io::Result<()> {
    set_buf(fd, SO_RCVBUFFORCE, libc::SO_RCVBUF, recv)?;
    set_buf(fd, SO_SNDBUFFORCE, libc::SO_SNDBUF, send)
}

/// Default socket buffer size suggested for data-plane sockets (4 MiB).
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Why ignore poisoning: the state is pure scratch, rewritten before use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// UdpSocket
// ---------------------------------------------------------------------------

/// A UDP socket with batched receive/send.
///
/// All methods take `&self`, so one thread can receive while another sends
/// (share it with an `Arc`).
///
/// [`enable_offloads`](Self::enable_offloads) turns on `UDP_SEGMENT` sends
/// and `UDP_GRO` receives (see the `gso` module); the batch interfaces stay
/// as they are, one datagram per slot.
#[derive(Debug)]
pub struct UdpSocket {
    sock: std::net::UdpSocket,
    family: libc::c_int,
    tx: Mutex<GsoTx>,
    /// `UDP_SEGMENT` sends: on until the kernel refuses one.
    gso: AtomicBool,
    /// `UDP_GRO` receives: the 64 KiB buffers and what is left of the last
    /// receive (only the receiving thread takes the lock).
    gro: Option<Box<Mutex<GroRx>>>,
    /// Boxed, as `gro`, to keep the socket small where it is held by value.
    stats: Box<UdpStats>,
}

impl UdpSocket {
    /// Binds a new UDP socket to `addr` (use port 0 for an ephemeral port,
    /// `[::]` for dual-stack).
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        UdpSocket::from_std(std::net::UdpSocket::bind(addr)?)
    }

    /// Wraps an existing std socket (its blocking mode is left unchanged:
    /// receives never block regardless, sends block while the socket
    /// buffer is full if it is in blocking mode — the default, and the
    /// back-pressure a data plane wants).
    pub fn from_std(sock: std::net::UdpSocket) -> io::Result<UdpSocket> {
        let family = if sock.local_addr()?.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        Ok(UdpSocket {
            sock,
            family,
            tx: Mutex::new(GsoTx::new(MAX_BATCH)),
            gso: AtomicBool::new(false),
            gro: None,
            stats: Box::default(),
        })
    }

    /// The underlying std socket (for single-datagram `send_to`/`recv_from`
    /// or other options).
    pub fn as_std(&self) -> &std::net::UdpSocket {
        &self.sock
    }

    /// Local bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The raw file descriptor (still owned by `self`).
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// A new handle to the same socket (`dup(2)`), with its own send
    /// scratch and counters, and without offloads (call
    /// [`enable_offloads`](Self::enable_offloads) on it as well if the
    /// original has them: `UDP_GRO` is the socket's, not the handle's).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        UdpSocket::from_std(self.sock.try_clone()?)
    }

    /// Turns on `UDP_SEGMENT` sends and `UDP_GRO` receives where the kernel
    /// has them; returns `(gso, gro)`, what is on. GRO takes
    /// [`MAX_BATCH`] receive buffers of 64 KiB (4 MiB) for this socket.
    ///
    /// Why opt-in: a socket shared with code that reads it without this
    /// wrapper would get trains it cannot cut.
    pub fn enable_offloads(&mut self) -> (bool, bool) {
        // The kernel knows the option (Linux >= 4.18) if it can report it.
        let gso = getsockopt_int(self.fd(), gso::SOL_UDP, gso::UDP_SEGMENT).is_ok();
        self.gso.store(gso, Ordering::Relaxed);
        if self.gro.is_none() && setsockopt_int(self.fd(), gso::SOL_UDP, gso::UDP_GRO, 1).is_ok() {
            self.gro = Some(Box::new(Mutex::new(GroRx::new(MAX_BATCH))));
        }
        (gso, self.gro.is_some())
    }

    /// This socket's counters: syscalls, datagrams, trains.
    pub fn offload_counters(&self) -> UdpOffloadCounters {
        self.stats
            .snapshot(self.gso.load(Ordering::Relaxed), self.gro.is_some())
    }

    /// Sets `SO_RCVBUF`/`SO_SNDBUF` (via the `*FORCE` variants when
    /// permitted), e.g. to [`DEFAULT_SOCKET_BUFFER`].
    pub fn set_buffer_sizes(&self, recv: usize, send: usize) -> io::Result<()> {
        set_buffer_sizes(self.fd(), recv, send)
    }

    /// Effective receive buffer size as reported by the kernel (which
    /// doubles the requested value for bookkeeping overhead).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        getsockopt_int(self.fd(), libc::SOL_SOCKET, libc::SO_RCVBUF).map(|v| v as usize)
    }

    /// Effective send buffer size as reported by the kernel.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        getsockopt_int(self.fd(), libc::SOL_SOCKET, libc::SO_SNDBUF).map(|v| v as usize)
    }

    /// See [`DatagramIo::recv_batch`].
    ///
    /// With `UDP_GRO` on, a received train is cut into its datagrams, one
    /// slot each; what does not fit `batch` comes with the next call
    /// (which then makes no syscall).
    pub fn recv_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        if let Some(rx) = &self.gro {
            return gso::recv_gro(self.fd(), &mut lock(rx), batch, timeout, &self.stats);
        }
        let n = recv_mmsg(self.fd(), batch, timeout, RecvKind::Plain)?;
        UdpStats::add(&self.stats.recv_syscalls, u64::from(n > 0));
        UdpStats::add(&self.stats.recv_datagrams, n as u64);
        Ok(n)
    }

    /// See [`DatagramIo::send_batch`].
    ///
    /// With `UDP_SEGMENT` on, runs of datagrams to one destination (equal
    /// lengths, the last may be shorter) go out as one train each, in
    /// order. The first train the kernel refuses turns it off for good on
    /// this socket: that train and the rest are sent one by one, and
    /// `gso_fallbacks` says so.
    pub fn send_batch(&self, pkts: &[&[u8]], dsts: &[SocketAddr]) -> io::Result<usize> {
        self.send_batch_trains(pkts, dsts, None)
    }

    /// See [`DatagramIo::send_batch_trains`]: [`send_batch`](Self::send_batch)
    /// with at most `trains[i]` datagrams in the train that starts at
    /// `pkts[i]`.
    pub fn send_batch_trains(&self, pkts: &[&[u8]], dsts: &[SocketAddr], trains: Option<&[u8]>) -> io::Result<usize> {
        let mut st = lock(&self.tx);
        let mut calls = 0;
        if pkts.len() == dsts.len() && self.gso.load(Ordering::Relaxed) {
            let r = gso::send_trains(self.fd(), self.family, &mut st, pkts, dsts, trains, &self.stats);
            let (mut sent, mut err) = (r.sent, r.err);
            if let Some((e, resume)) = r.refused {
                self.gso.store(false, Ordering::Relaxed);
                UdpStats::add(&self.stats.gso_fallbacks, 1);
                self.stats
                    .gso_refused_errno
                    .store(e.raw_os_error().unwrap_or(0), Ordering::Relaxed);
                let rest = send_slices(
                    self.fd(),
                    self.family,
                    false,
                    &mut st.mmsg,
                    &pkts[resume..],
                    &dsts[resume..],
                    &mut calls,
                );
                match rest {
                    Ok(n) => {
                        sent += n;
                        UdpStats::add(&self.stats.send_datagrams, n as u64);
                    }
                    Err(e) => {
                        err.get_or_insert(e);
                    }
                }
                UdpStats::add(&self.stats.send_syscalls, calls);
            }
            return finish_send(sent, err);
        }
        let r = send_slices(self.fd(), self.family, false, &mut st.mmsg, pkts, dsts, &mut calls);
        UdpStats::add(&self.stats.send_syscalls, calls);
        if let Ok(n) = r {
            UdpStats::add(&self.stats.send_datagrams, n as u64);
        }
        r
    }

    /// See [`DatagramIo::send_packet_batch`]. One datagram per entry
    /// (the data plane sends through [`send_batch`](Self::send_batch)).
    pub fn send_packet_batch(&self, batch: &mut PacketBatch) -> io::Result<usize> {
        let mut calls = 0;
        let r = send_batch_slots(self.fd(), self.family, false, batch, &mut calls);
        UdpStats::add(&self.stats.send_syscalls, calls);
        if let Ok(n) = r {
            UdpStats::add(&self.stats.send_datagrams, n as u64);
        }
        r
    }
}

impl DatagramIo for UdpSocket {
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        UdpSocket::recv_batch(self, batch, timeout)
    }
    fn send_batch(&self, pkts: &[&[u8]], dsts: &[SocketAddr]) -> io::Result<usize> {
        UdpSocket::send_batch(self, pkts, dsts)
    }
    fn send_batch_trains(&self, pkts: &[&[u8]], dsts: &[SocketAddr], trains: &[u8]) -> io::Result<usize> {
        UdpSocket::send_batch_trains(self, pkts, dsts, Some(trains))
    }
    fn send_packet_batch(&self, batch: &mut PacketBatch) -> io::Result<usize> {
        UdpSocket::send_packet_batch(self, batch)
    }
    fn udp_counters(&self) -> Option<UdpOffloadCounters> {
        Some(self.offload_counters())
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

// ---------------------------------------------------------------------------
// RawEspSocket
// ---------------------------------------------------------------------------

/// A raw IP socket for protocol 50 (ESP), IPv4 or IPv6.
///
/// Requires `CAP_NET_RAW`. Every ESP packet reaching the host (in the
/// socket's network namespace and matching its bound address, if any) is
/// delivered to every raw ESP socket; the data plane demultiplexes by SPI.
#[derive(Debug)]
pub struct RawEspSocket {
    fd: OwnedFd,
    family: libc::c_int,
    tx: Mutex<MmsgState>,
}

impl RawEspSocket {
    /// Opens a raw ESP socket of `local`'s address family. If `local` is
    /// not the unspecified address, the socket is bound to it: only ESP
    /// packets to that address are received, and it is the source address
    /// of sent packets.
    pub fn bind(local: IpAddr) -> io::Result<RawEspSocket> {
        let family = match local {
            IpAddr::V4(_) => libc::AF_INET,
            IpAddr::V6(_) => libc::AF_INET6,
        };
        // SAFETY: plain socket(2) call.
        let raw = cvt(unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_ESP) })?;
        // SAFETY: `raw` is a fresh fd we exclusively own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if !local.is_unspecified() {
            let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let len = encode_sockaddr(&SocketAddr::new(local, 0), family, true, &mut ss);
            // SAFETY: `ss` holds a valid sockaddr of length `len`.
            cvt(unsafe { libc::bind(fd.as_raw_fd(), (&ss as *const libc::sockaddr_storage).cast(), len) })?;
        }
        Ok(RawEspSocket {
            fd,
            family,
            tx: Mutex::new(MmsgState::new(MAX_BATCH)),
        })
    }

    /// `true` for an `AF_INET6` socket.
    pub fn is_ipv6(&self) -> bool {
        self.family == libc::AF_INET6
    }

    /// The raw file descriptor (still owned by `self`).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A new handle to the same socket (`dup(2)`), with its own send scratch.
    pub fn try_clone(&self) -> io::Result<RawEspSocket> {
        Ok(RawEspSocket {
            fd: self.fd.try_clone()?,
            family: self.family,
            tx: Mutex::new(MmsgState::new(MAX_BATCH)),
        })
    }

    /// Sets `SO_RCVBUF`/`SO_SNDBUF` (via the `*FORCE` variants when
    /// permitted), e.g. to [`DEFAULT_SOCKET_BUFFER`].
    pub fn set_buffer_sizes(&self, recv: usize, send: usize) -> io::Result<()> {
        set_buffer_sizes(self.fd(), recv, send)
    }

    /// Effective receive buffer size as reported by the kernel.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        getsockopt_int(self.fd(), libc::SOL_SOCKET, libc::SO_RCVBUF).map(|v| v as usize)
    }

    /// Receives ESP packets. Each slot's `start` points at the ESP header
    /// (past the IPv4 header for IPv4 sockets — so `start - headroom` is
    /// the parsed IHL×4 — or at `headroom` for IPv6) and `addr` is the
    /// sender with port 0. Malformed IPv4 headers yield `len == 0`.
    pub fn recv_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        let kind = if self.family == libc::AF_INET {
            RecvKind::StripIpv4Header
        } else {
            RecvKind::Plain
        };
        recv_mmsg(self.fd(), batch, timeout, kind)
    }

    /// Receives one packet into `buf` (no waiting beyond `timeout`).
    /// Returns `(esp_offset, total_len, source)`: the ESP packet is
    /// `buf[esp_offset..total_len]`. `Ok(None)` on timeout.
    pub fn recv_one(&self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<Option<(usize, usize, IpAddr)>> {
        let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut deadline = Deadline::new(timeout);
        loop {
            let mut sl = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: buf and ss are live for the call, lengths are correct.
            let r = unsafe {
                libc::recvfrom(
                    self.fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut ss as *mut libc::sockaddr_storage).cast(),
                    &mut sl,
                )
            };
            if r >= 0 {
                let len = r as usize;
                let src = decode_sockaddr(&ss, sl).map(|a| a.ip()).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "raw socket: unknown source address family")
                })?;
                let off = if self.family == libc::AF_INET {
                    ipv4_payload_offset(&buf[..len]).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "raw socket: malformed IPv4 header")
                    })?
                } else {
                    0
                };
                return Ok(Some((off, len, src)));
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if !is_would_block(&e) {
                return Err(e);
            }
            if !wait_readable(self.fd(), &mut deadline)? {
                return Ok(None);
            }
        }
    }

    /// Sends one ESP packet to `dst`; the kernel prepends the IP header.
    pub fn send_to(&self, esp: &[u8], dst: IpAddr) -> io::Result<usize> {
        let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = encode_sockaddr(&SocketAddr::new(dst, 0), self.family, true, &mut ss);
        loop {
            // SAFETY: esp and ss are live for the call.
            let r = unsafe {
                libc::sendto(
                    self.fd(),
                    esp.as_ptr().cast(),
                    esp.len(),
                    0,
                    (&ss as *const libc::sockaddr_storage).cast(),
                    len,
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// See [`DatagramIo::send_batch`]. Destination ports are ignored.
    pub fn send_batch(&self, pkts: &[&[u8]], dsts: &[SocketAddr]) -> io::Result<usize> {
        send_slices(self.fd(), self.family, true, &mut lock(&self.tx), pkts, dsts, &mut 0)
    }

    /// See [`DatagramIo::send_packet_batch`]. Destination ports are ignored.
    pub fn send_packet_batch(&self, batch: &mut PacketBatch) -> io::Result<usize> {
        send_batch_slots(self.fd(), self.family, true, batch, &mut 0)
    }
}

impl DatagramIo for RawEspSocket {
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        RawEspSocket::recv_batch(self, batch, timeout)
    }
    fn send_batch(&self, pkts: &[&[u8]], dsts: &[SocketAddr]) -> io::Result<usize> {
        RawEspSocket::send_batch(self, pkts, dsts)
    }
    fn send_packet_batch(&self, batch: &mut PacketBatch) -> io::Result<usize> {
        RawEspSocket::send_packet_batch(self, batch)
    }
}

impl AsRawFd for RawEspSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl AsFd for RawEspSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(addr: SocketAddr, family: libc::c_int, zero_port: bool) -> Option<SocketAddr> {
        let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = encode_sockaddr(&addr, family, zero_port, &mut ss);
        decode_sockaddr(&ss, len)
    }

    #[test]
    fn sockaddr_conversions() {
        let v4: SocketAddr = "192.0.2.7:4500".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:500".parse().unwrap();
        assert_eq!(roundtrip(v4, libc::AF_INET, false), Some(v4));
        assert_eq!(roundtrip(v6, libc::AF_INET6, false), Some(v6));
        // v4 on a dual-stack socket is encoded mapped and decoded canonical.
        let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = encode_sockaddr(&v4, libc::AF_INET6, false, &mut ss);
        assert_eq!(ss.ss_family as libc::c_int, libc::AF_INET6);
        assert_eq!(decode_sockaddr(&ss, len), Some(v4));
        // mapped v6 on a v4 socket becomes v4.
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:4500".parse().unwrap();
        assert_eq!(roundtrip(mapped, libc::AF_INET, false), Some(v4));
        // raw sockets zero the port.
        assert_eq!(roundtrip(v6, libc::AF_INET6, true).unwrap().port(), 0);
    }

    #[test]
    fn ipv4_offset_parse() {
        let mut p = [0u8; 40];
        p[0] = 0x45;
        assert_eq!(ipv4_payload_offset(&p), Some(20));
        p[0] = 0x46;
        assert_eq!(ipv4_payload_offset(&p), Some(24));
        p[0] = 0x4f;
        assert_eq!(ipv4_payload_offset(&p), None, "60 > 40 bytes");
        p[0] = 0x44;
        assert_eq!(ipv4_payload_offset(&p), None, "IHL < 5");
        p[0] = 0x65;
        assert_eq!(ipv4_payload_offset(&p), None, "not v4");
        assert_eq!(ipv4_payload_offset(&[]), None);
    }

    #[test]
    fn udp_batch_loopback_v4() {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let baddr = b.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 10 + i as usize]).collect();
        let pkts: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let dsts = vec![baddr; pkts.len()];
        // 100 > MAX_BATCH exercises chunking.
        assert_eq!(a.send_batch(&pkts, &dsts).unwrap(), 100);

        let mut batch = PacketBatch::new(32, 2048, 64);
        let mut got = Vec::new();
        while got.len() < 100 {
            let n = b.recv_batch(&mut batch, Some(Duration::from_secs(2))).unwrap();
            assert!(n > 0, "timed out after {} datagrams", got.len());
            assert!(n <= 32);
            for (pkt, src) in batch.iter() {
                assert_eq!(src, Some(a.local_addr().unwrap()));
                got.push(pkt.to_vec());
            }
            assert_eq!(batch.meta(0).start, 64);
        }
        assert_eq!(got, payloads);
        // Nothing more: timeout path returns 0.
        assert_eq!(b.recv_batch(&mut batch, Some(Duration::from_millis(20))).unwrap(), 0);
        assert_eq!(b.recv_batch(&mut batch, Some(Duration::ZERO)).unwrap(), 0);
    }

    #[test]
    fn udp_send_packet_batch_in_place_and_truncation() {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let baddr = b.local_addr().unwrap();
        let mut tx = PacketBatch::new(4, 256, 16);
        tx.push_copy(b"one", Some(baddr)).unwrap();
        tx.push_copy(b"dropped", Some(baddr)).unwrap();
        tx.push_copy(b"three", Some(baddr)).unwrap();
        tx.push_copy(&[7u8; 200], Some(baddr)).unwrap();
        tx.discard(1);
        // In-place prepend of a 2-byte header into the headroom.
        let m = tx.meta(0);
        tx.slot_mut(0)[m.start - 2..m.start].copy_from_slice(b"H:");
        tx.set_packet(0, m.start - 2, m.len + 2, Some(baddr));
        assert_eq!(a.send_packet_batch(&mut tx).unwrap(), 3);

        // Receive area is 100 bytes: the 200-byte datagram is truncated.
        let mut rx = PacketBatch::new(8, 110, 10);
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let n = b.recv_batch(&mut rx, Some(Duration::from_secs(2))).unwrap();
            assert!(n > 0);
            seen.extend(rx.iter().map(|(p, _)| p.to_vec()));
        }
        assert_eq!(seen, vec![b"H:one".to_vec(), b"three".to_vec(), Vec::new()]);
    }

    #[test]
    fn udp_dual_stack_reports_plain_v4() {
        let Ok(server) = UdpSocket::bind("[::]:0".parse().unwrap()) else {
            eprintln!("IPv6 unavailable; skipping dual-stack check");
            return;
        };
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to: SocketAddr = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        assert_eq!(client.send_batch(&[b"hi"], &[to]).unwrap(), 1);
        let mut rx = PacketBatch::new(4, 64, 0);
        assert_eq!(server.recv_batch(&mut rx, Some(Duration::from_secs(2))).unwrap(), 1);
        assert_eq!(rx.addr(0), Some(client.local_addr().unwrap()));
        // Reply to the plain v4 address from the v6 socket (auto-mapped).
        assert_eq!(server.send_batch(&[b"yo"], &[client.local_addr().unwrap()]).unwrap(), 1);
        assert_eq!(client.recv_batch(&mut rx, Some(Duration::from_secs(2))).unwrap(), 1);
        assert_eq!(rx.packet(0), b"yo");
    }

    #[test]
    fn send_batch_rejects_mismatched_lengths_and_skips_bad_destinations() {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let err = a.send_batch(&[b"x"], &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // An IPv6 destination on an IPv4 socket fails for that datagram only.
        let bad: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
        let good = b.local_addr().unwrap();
        assert_eq!(a.send_batch(&[b"1", b"2", b"3"], &[good, bad, good]).unwrap(), 2);
        assert!(a.send_batch(&[b"x"], &[bad]).is_err());
    }

    /// `n` datagrams from `b`, waiting up to 2 s for each batch.
    fn recv_n(b: &UdpSocket, n: usize, cap: usize) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut batch = PacketBatch::new(cap, 2048, 32);
        let mut got = Vec::new();
        while got.len() < n {
            let k = b.recv_batch(&mut batch, Some(Duration::from_secs(2))).unwrap();
            assert!(k > 0, "timed out after {} of {n} datagrams", got.len());
            got.extend(batch.iter().map(|(p, a)| (p.to_vec(), a.unwrap())));
        }
        got
    }

    /// UDP_SEGMENT out, UDP_GRO in, over loopback (no root needed): runs to
    /// one destination go as trains, everything arrives whole and in
    /// order, and the counters show trains on both sides.
    #[test]
    fn gso_trains_out_and_gro_trains_in_keep_every_datagram_in_order() {
        let mut a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut c = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(
            a.enable_offloads(),
            (true, true),
            "this kernel has UDP_SEGMENT and UDP_GRO"
        );
        b.enable_offloads();
        c.enable_offloads();
        let (bb, cc) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        // 20 x 1333 then 77 to b (a train with a shorter last), 3 to c, a
        // keepalive and an IKE-like datagram to b, then 60 x 1400 to b
        // (trains of 16 and a last of 12).
        let mut pkts: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
        for i in 0..20u8 {
            pkts.push((vec![i; 1333], bb));
        }
        pkts.push((vec![0xee; 77], bb));
        for i in 0..3u8 {
            pkts.push((vec![0x80 | i; 500], cc));
        }
        pkts.push((vec![0xff], bb));
        pkts.push((vec![0, 0, 0, 0, 1, 2, 3, 4, 5], bb));
        for i in 0..60u8 {
            pkts.push((vec![i.wrapping_mul(3); 1400], bb));
        }
        let bufs: Vec<&[u8]> = pkts.iter().map(|(p, _)| p.as_slice()).collect();
        let dsts: Vec<SocketAddr> = pkts.iter().map(|(_, d)| *d).collect();
        assert_eq!(a.send_batch(&bufs, &dsts).unwrap(), pkts.len());
        let sa = a.offload_counters();
        assert_eq!(sa.send_datagrams, pkts.len() as u64);
        assert!(sa.gso_sends >= 3, "{sa:?}");
        assert!(sa.send_syscalls < 5, "{sa:?}");
        assert_eq!(sa.gso_fallbacks, 0);

        let want_b: Vec<Vec<u8>> = pkts.iter().filter(|(_, d)| *d == bb).map(|(p, _)| p.clone()).collect();
        // A small batch: trains are handed out over several calls.
        let got_b = recv_n(&b, want_b.len(), 7);
        assert_eq!(got_b.len(), want_b.len());
        assert!(got_b.iter().all(|(_, from)| *from == a.local_addr().unwrap()));
        let got_b: Vec<Vec<u8>> = got_b.into_iter().map(|(p, _)| p).collect();
        assert_eq!(got_b, want_b, "every datagram whole and in order");
        let got_c: Vec<Vec<u8>> = recv_n(&c, 3, 64).into_iter().map(|(p, _)| p).collect();
        assert_eq!(got_c, vec![vec![0x80; 500], vec![0x81; 500], vec![0x82; 500]]);
        let sb = b.offload_counters();
        assert!(sb.gro_trains >= 2 && sb.gro_datagrams >= 40, "{sb:?}");
        assert!(sb.recv_syscalls < sb.recv_datagrams, "{sb:?}");
        assert_eq!((sb.recv_datagrams, sb.gro_malformed), (want_b.len() as u64, 0));
    }

    /// Each packet's train limit (its SA's): to a peer that takes full
    /// trains, 50 datagrams of 1,200 bytes go as one train (the kernel's 64
    /// segments and 65,507 bytes both hold them); to another peer in the
    /// same batch, as trains of 16. Without limits, trains of 16. Nothing
    /// is lost or reordered.
    #[test]
    fn each_packet_brings_its_train_limit() {
        let mut a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut full = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut short = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(a.enable_offloads(), (true, true));
        full.enable_offloads();
        short.enable_offloads();
        let (fa, sa) = (full.local_addr().unwrap(), short.local_addr().unwrap());
        let pkts: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 1200]).collect();
        let bufs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
        let dsts: Vec<SocketAddr> = (0..100).map(|i| if i < 50 { fa } else { sa }).collect();
        let trains: Vec<u8> = (0..100).map(|i| if i < 50 { 64 } else { 16 }).collect();
        assert_eq!(a.send_batch_trains(&bufs, &dsts, Some(&trains)).unwrap(), 100);
        let got = |b: &UdpSocket, r: std::ops::Range<usize>| {
            let v: Vec<Vec<u8>> = recv_n(b, r.len(), 64).into_iter().map(|(p, _)| p).collect();
            assert_eq!(v, pkts[r].to_vec());
        };
        got(&full, 0..50);
        got(&short, 50..100);
        let c = a.offload_counters();
        // 1 train of 50, then 16 + 16 + 16 + 2.
        assert_eq!((c.gso_sends, c.gso_datagrams), (5, 100), "{c:?}");
        assert_eq!(full.offload_counters().gro_datagrams, 50);
        // No limits: the short trains for everyone.
        assert_eq!(a.send_batch(&bufs[..50], &dsts[..50]).unwrap(), 50);
        got(&full, 0..50);
        let d = a.offload_counters();
        assert_eq!(
            (d.gso_sends - c.gso_sends, d.gso_datagrams - c.gso_datagrams),
            (4, 50),
            "{d:?}"
        );
    }

    /// The same over IPv6 loopback, and from a dual-stack socket to an
    /// IPv4 peer (mapped addresses): trains both ways, nothing lost.
    #[test]
    fn gso_and_gro_over_ipv6_and_dual_stack() {
        for (from, to) in [("[::1]:0", "[::1]:0"), ("[::]:0", "127.0.0.1:0")] {
            let mut a = UdpSocket::bind(from.parse().unwrap()).unwrap();
            let mut b = UdpSocket::bind(to.parse().unwrap()).unwrap();
            assert_eq!(a.enable_offloads(), (true, true));
            b.enable_offloads();
            let mut dst = b.local_addr().unwrap();
            if dst.ip().is_unspecified() {
                dst.set_ip(Ipv6Addr::LOCALHOST.into());
            }
            let pkts: Vec<Vec<u8>> = (0..30u8).map(|i| vec![i; if i == 29 { 99 } else { 1200 }]).collect();
            let bufs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
            assert_eq!(a.send_batch(&bufs, &vec![dst; 30]).unwrap(), 30);
            let got: Vec<Vec<u8>> = recv_n(&b, 30, 64).into_iter().map(|(p, _)| p).collect();
            assert_eq!(got, pkts, "{from} -> {to}");
            let (sa, sb) = (a.offload_counters(), b.offload_counters());
            // Trains of TRAIN_SEGMENTS (16): 16 + 14.
            assert_eq!(
                (sa.gso_sends, sa.gso_datagrams, sa.gso_fallbacks),
                (2, 30, 0),
                "{from}: {sa:?}"
            );
            assert_eq!((sb.gro_trains, sb.gro_datagrams), (2, 30), "{to}: {sb:?}");
        }
    }

    /// With SO_NO_CHECK the kernel refuses UDP_SEGMENT (EINVAL): the train
    /// and the rest go one by one, nothing is lost, and GSO stays off.
    #[test]
    fn a_refused_train_falls_back_to_single_datagrams_for_good() {
        let mut a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(a.enable_offloads().0);
        setsockopt_int(a.fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
        let bb = b.local_addr().unwrap();
        let pkts: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 1000]).collect();
        let bufs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
        let dsts = vec![bb; pkts.len()];
        assert_eq!(a.send_batch(&bufs, &dsts).unwrap(), 10);
        let s = a.offload_counters();
        assert_eq!(
            (s.gso_fallbacks, s.gso_refused_errno, s.gso_on),
            (1, libc::EINVAL, false)
        );
        assert_eq!((s.gso_sends, s.send_datagrams), (0, 10));
        assert_eq!(a.send_batch(&bufs, &dsts).unwrap(), 10);
        assert_eq!(a.offload_counters().gso_fallbacks, 1, "counted once");
        let got: Vec<Vec<u8>> = recv_n(&b, 20, 64).into_iter().map(|(p, _)| p).collect();
        assert_eq!(got, [pkts.clone(), pkts].concat());
    }

    #[test]
    fn buffer_sizes() {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        a.set_buffer_sizes(DEFAULT_SOCKET_BUFFER, DEFAULT_SOCKET_BUFFER)
            .unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // The kernel reports double the requested size.
            assert!(a.recv_buffer_size().unwrap() >= DEFAULT_SOCKET_BUFFER);
            assert!(a.send_buffer_size().unwrap() >= DEFAULT_SOCKET_BUFFER);
        }
    }
}
