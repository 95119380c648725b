//! # ikeda-sys — the only place that touches the OS
//!
//! Everything the ikeda IPsec gateway needs from Linux lives here, behind
//! small safe APIs; the rest of the workspace contains no `unsafe` syscalls
//! and no `Command`s. Kernel ESP (XFRM) is **not** used: ESP is processed
//! in userspace, and this crate only moves packets:
//!
//! | module       | what                                                        |
//! |--------------|-------------------------------------------------------------|
//! | [`batch`]    | [`PacketBatch`]: preallocated slots with headroom, reused by every batched call |
//! | [`io`]       | [`TunDevice`] / [`DatagramIo`]: the traits the data plane is generic over |
//! | [`tun`]      | [`Tun`]: `/dev/net/tun` (`IFF_TUN | IFF_NO_PI`), MTU, up, batched reads |
//! | [`socket`]   | [`UdpSocket`] and [`RawEspSocket`] (IP proto 50), `recvmmsg`/`sendmmsg` |
//! | [`gso`]      | `UDP_SEGMENT` trains on send, `UDP_GRO` trains cut on receive, for [`UdpSocket`] |
//! | [`route`]    | routes, policy rules, addresses via iproute2; `sysctl` via `/proc/sys` |
//! | [`netns`]    | throw-away network namespaces and the root-test policy      |
//! | [`fake`]     | in-memory [`FakeTun`](fake::FakeTun) / [`FakeNet`](fake::FakeNet) for root-less tests |
//!
//! ## Conventions
//!
//! * Runtime failures are `io::Result`s, never panics. (Constructors panic
//!   only on programming errors such as a zero-capacity batch.)
//! * Devices are plain file descriptors; all I/O takes `&self`, so an RX
//!   and a TX thread can share one device through an `Arc`.
//! * `timeout: Option<Duration>`: `None` waits indefinitely,
//!   `Some(Duration::ZERO)` never waits, `Some(d)` waits at most `d` and
//!   then returns `Ok(0)`.
//! * Hot paths do not allocate: the syscall scratch arrays live in the
//!   [`PacketBatch`] (or, for slice-based sends, in the socket).
//!
//! ## Minimal data-plane loop
//!
//! ```no_run
//! use std::time::Duration;
//! use ikeda_sys::{DatagramIo, PacketBatch, TunDevice};
//!
//! fn outbound<T: TunDevice, D: DatagramIo>(tun: &T, sock: &D, peer: std::net::SocketAddr) -> std::io::Result<()> {
//!     // 64 slots of 2 KiB, 64 bytes headroom for the ESP/UDP header.
//!     let mut batch = PacketBatch::new(64, 2048, 64);
//!     loop {
//!         if tun.read_batch(&mut batch, Some(Duration::from_millis(100)))? == 0 {
//!             continue; // timeout: check for shutdown etc.
//!         }
//!         for i in 0..batch.len() {
//!             let m = batch.meta(i);
//!             // ... encrypt in place using slot_mut(i), headroom and tailroom ...
//!             batch.set_packet(i, m.start, m.len, Some(peer));
//!         }
//!         sock.send_packet_batch(&mut batch)?;
//!     }
//! }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod batch;
pub mod fake;
pub mod gso;
pub mod io;
pub mod netns;
pub mod route;
pub mod socket;
pub mod tun;
mod util;

pub use batch::{PacketBatch, SlotMeta, MAX_BATCH};
pub use gso::UdpOffloadCounters;
pub use io::{DatagramIo, TunDevice, TunQueues};
pub use netns::{require_root, NetNs};
pub use route::{sysctl_get, sysctl_set, IpRoute2};
pub use socket::{ipv4_payload_offset, RawEspSocket, UdpSocket, DEFAULT_SOCKET_BUFFER};
pub use tun::{OffloadCounters, Tun};

/// Compile-time check of the threading guarantees documented above.
#[allow(dead_code)]
fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tun>();
    check::<UdpSocket>();
    check::<RawEspSocket>();
    check::<PacketBatch>();
    check::<fake::FakeTun>();
    check::<fake::FakeSocket>();
    check::<fake::FakeNet>();
}
