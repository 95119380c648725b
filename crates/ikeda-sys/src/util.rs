//! Small syscall helpers shared by the device modules.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Converts a `-1`-on-error libc return value into `io::Result`.
#[inline]
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Same as [`cvt`] for `ssize_t` returns.
#[inline]
pub(crate) fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// An optional point in time; `None` = wait forever.
///
/// Why lazily computed: the hot path (data already queued) never needs the
/// clock, so `Instant::now()` is only read once we actually have to wait.
pub(crate) struct Deadline {
    timeout: Option<Duration>,
    at: Option<Instant>,
}

impl Deadline {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        Deadline { timeout, at: None }
    }

    /// Time left, `None` = unbounded. Starts the clock on first call.
    pub(crate) fn remaining(&mut self) -> Option<Duration> {
        let t = self.timeout?;
        let at = *self.at.get_or_insert_with(|| Instant::now() + t);
        Some(at.saturating_duration_since(Instant::now()))
    }
}

/// Waits until `fd` is readable or the deadline passes.
/// Returns `Ok(true)` when readable (or in an error/hangup state, so the
/// following read reports it), `Ok(false)` on timeout.
pub(crate) fn wait_readable(fd: RawFd, deadline: &mut Deadline) -> io::Result<bool> {
    loop {
        let ms: libc::c_int = match deadline.remaining() {
            None => -1,
            Some(d) if d.is_zero() => return Ok(false),
            // Why round up: rounding a sub-millisecond remainder down to 0
            // would turn the wait into a busy loop.
            Some(d) => {
                let ms = d.as_micros().div_ceil(1000);
                ms.min(libc::c_int::MAX as u128) as libc::c_int
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        match r {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => {
                if ms == -1 {
                    continue;
                }
                // Re-check: poll may wake slightly early relative to our clock.
                if deadline.remaining().is_some_and(|d| d.is_zero()) {
                    return Ok(false);
                }
            }
            _ => {
                if pfd.revents & libc::POLLNVAL != 0 {
                    return Err(io::Error::from_raw_os_error(libc::EBADF));
                }
                return Ok(true);
            }
        }
    }
}

/// `true` for EAGAIN/EWOULDBLOCK.
#[inline]
pub(crate) fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub(crate) fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    // SAFETY: fcntl on a caller-owned fd with integer arguments.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}
