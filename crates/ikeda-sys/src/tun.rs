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
//! The fd is opened in **non-blocking** mode, which is what
//! [`read_batch`](Tun::read_batch) needs to drain the queue without
//! blocking; its `timeout` argument provides the waiting. Plain
//! [`read`](Tun::read) then returns `WouldBlock` when the queue is empty
//! unless [`set_nonblocking(false)`](Tun::set_nonblocking) was called.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
}

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
        let mut ifr = ifreq_for(name)?;
        // Why IFF_NO_PI: without it every packet carries a 4-byte
        // flags/protocol prefix we would have to strip and build.
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;

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

    /// Sets the interface MTU (`SIOCSIFMTU`).
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        let mut ifr = ifreq_for(&self.name)?;
        ifr.ifr_ifru.ifru_mtu =
            libc::c_int::try_from(mtu).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU too large"))?;
        if_ioctl(libc::SIOCSIFMTU, &mut ifr)
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
    /// kernel silently truncates longer packets.
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
        loop {
            // SAFETY: pkt is valid for reads of pkt.len() bytes.
            match cvt_size(unsafe { libc::write(self.fd(), pkt.as_ptr().cast(), pkt.len()) }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    /// Clears `batch` and reads up to `batch.capacity()` packets, each at
    /// `headroom` in its slot (addresses are `None`).
    ///
    /// Drains the queue until `EAGAIN`; if it was empty, waits for up to
    /// `timeout` (see [`crate::io`] for the `Option<Duration>` convention)
    /// and drains again. Returns `Ok(0)` on timeout.
    pub fn read_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
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

    /// Another handle to the same device (`dup(2)`); the device lives
    /// until every handle is dropped.
    pub fn try_clone(&self) -> io::Result<Tun> {
        Ok(Tun {
            fd: self.fd.try_clone()?,
            name: self.name.clone(),
            nonblocking: Arc::clone(&self.nonblocking),
        })
    }
}

impl TunDevice for Tun {
    fn read_batch(&self, batch: &mut PacketBatch, timeout: Option<Duration>) -> io::Result<usize> {
        Tun::read_batch(self, batch, timeout)
    }
    fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        Tun::write(self, pkt)
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
