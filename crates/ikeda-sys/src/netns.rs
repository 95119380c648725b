//! Named network namespaces, mainly for root integration tests.
//!
//! [`NetNs`] creates a namespace with `ip netns add` and deletes it on
//! drop (even when a test panics), so tests can build throw-away
//! topologies — TUN devices, veth pairs, routes — without touching the
//! host. Code runs inside it via [`NetNs::run`], which uses a dedicated
//! thread because `setns(2)` only switches the *calling thread*.
//!
//! [`require_root`] implements the test policy: tests needing root fail
//! loudly unless `IKEDA_ALLOW_NO_ROOT=1` explicitly allows skipping them.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::route::IpRoute2;
use crate::util::cvt;

/// A named network namespace (`/var/run/netns/NAME`), deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    /// `false` after an explicit [`NetNs::delete`].
    owned: bool,
}

impl NetNs {
    /// Creates namespace `name` (`ip netns add`). Needs `CAP_SYS_ADMIN`.
    pub fn create(name: &str) -> io::Result<NetNs> {
        IpRoute2::new().run(["netns", "add", name])?;
        Ok(NetNs {
            name: name.to_string(),
            owned: true,
        })
    }

    /// Creates a namespace named `PREFIX<pid>-<n>`, unique within this
    /// process (and across processes thanks to the pid), e.g. with prefix
    /// `"ikst-"`: `ikst-4242-0`.
    pub fn create_unique(prefix: &str) -> io::Result<NetNs> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        NetNs::create(&format!("{prefix}{}-{n}", std::process::id()))
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An `ip -n NAME` runner for configuring this namespace from outside.
    pub fn ip(&self) -> IpRoute2 {
        IpRoute2::in_netns(self.name.clone())
    }

    /// Moves the **calling thread** into this namespace (`setns(2)`).
    ///
    /// Other threads, and sockets/devices opened before the call, stay
    /// where they were. Prefer [`run`](Self::run), which confines the
    /// switch to a dedicated thread.
    pub fn enter_current_thread(&self) -> io::Result<()> {
        let path = format!("/var/run/netns/{}", self.name);
        let f = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("open {path}: {e}")))?;
        // SAFETY: valid fd; CLONE_NEWNET restricts it to network namespaces.
        cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) })
            .map(drop)
            .map_err(|e| io::Error::new(e.kind(), format!("setns({path}): {e}")))
    }

    /// Runs `f` on a new thread that has entered this namespace, and
    /// returns its result. A panic inside `f` is propagated to the caller
    /// (after the thread has been joined), so test assertions work as usual.
    pub fn run<F, R>(&self, f: F) -> io::Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        std::thread::scope(|s| {
            let h = s.spawn(|| -> io::Result<R> {
                self.enter_current_thread()?;
                Ok(f())
            });
            match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Deletes the namespace now, reporting errors (drop ignores them).
    pub fn delete(mut self) -> io::Result<()> {
        self.owned = false;
        IpRoute2::new().run(["netns", "del", &self.name]).map(drop)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if self.owned {
            // Why ignore the result: nothing useful can be done in drop,
            // and panicking here during unwinding would abort the process.
            let _ = IpRoute2::new().run(["netns", "del", &self.name]);
        }
    }
}

/// Environment variable that allows root-only tests to be skipped.
pub const ALLOW_NO_ROOT_ENV: &str = "IKEDA_ALLOW_NO_ROOT";

/// Gate for tests that need root (TUN, raw sockets, namespaces).
///
/// Returns `true` when running as root. Otherwise returns `false` (the
/// test should return early, a visible "SKIPPED" line is printed) only if
/// `IKEDA_ALLOW_NO_ROOT=1`; without it, **panics** so a missing privilege
/// can never turn into a silent pass.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var(ALLOW_NO_ROOT_ENV).as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: needs root ({ALLOW_NO_ROOT_ENV}=1 is set)");
        return false;
    }
    panic!(
        "{test} needs root (TUN devices, raw sockets, network namespaces). \
         Run as root, or set {ALLOW_NO_ROOT_ENV}=1 to skip root-only tests explicitly."
    );
}
