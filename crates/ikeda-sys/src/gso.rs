//! UDP segmentation offloads on a [`UdpSocket`](crate::UdpSocket):
//! `UDP_SEGMENT` on send, `UDP_GRO` on receive (`udp(7)`, Linux ≥ 4.18
//! and 5.0).
//!
//! * Send: consecutive datagrams of a batch to the same destination, all
//!   of one length but the last (which may be shorter), go out as one
//!   `sendmmsg` entry whose iovecs are those datagrams and whose
//!   `UDP_SEGMENT` cmsg is their length: the kernel (or the NIC) cuts the
//!   train on the wire, so the stack is walked once per train instead of
//!   once per datagram. Order is kept: runs are cut from the batch in
//!   order and `sendmmsg` sends its entries in order. When the kernel
//!   refuses a train (`EIO`: the route's device has no checksum offload;
//!   `EINVAL`: the segment does not fit the path MTU; `ENOPROTOOPT`), that
//!   train and everything after it on this socket go one datagram per entry.
//! * Receive: with `UDP_GRO` on, the kernel hands several datagrams of one
//!   4-tuple back as one train with its segment size in a cmsg. Trains are
//!   received into 64 KiB buffers owned by the socket and cut, with
//!   [`ikeda_wire::udp_gso::GroTrain`], into the caller's batch slots, one
//!   datagram a slot, so the caller sees what it would without GRO (and
//!   classifies every datagram: ESP, IKE and keepalives share the 4-tuple).
//!   What does not fit the batch waits for the next call. A malformed train
//!   is dropped whole and counted.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use ikeda_wire::udp_gso::{gso_run, GroTrain, MAX_SEGMENTS, MAX_TRAIN_BYTES, TRAIN_SEGMENTS};

use crate::batch::{MmsgState, PacketBatch};
use crate::socket::{decode_sockaddr, encode_sockaddr, is_per_datagram_error, recvmmsg_wait};

/// `SOL_UDP` and its options from `<linux/udp.h>`.
///
/// Why defined here: the `libc` crate exports them for some Linux targets
/// only (not glibc). Same values on every architecture.
pub(crate) const SOL_UDP: libc::c_int = 17;
pub(crate) const UDP_SEGMENT: libc::c_int = 103;
pub(crate) const UDP_GRO: libc::c_int = 104;

/// Bytes of one receive buffer: a whole GRO train (at most 64 KiB).
pub const GRO_BUFFER: usize = 1 << 16;

/// Room for one cmsg with up to 8 bytes of data (`CMSG_SPACE(8)` is 24 on
/// LP64), aligned as a `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct CmsgBuf([u8; 32]);

/// The counters of one UDP socket's batched I/O and offloads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UdpOffloadCounters {
    /// `sendmmsg` calls that sent something.
    pub send_syscalls: u64,
    /// Datagrams they put on the wire (a train counts its datagrams).
    pub send_datagrams: u64,
    /// Trains sent with `UDP_SEGMENT` (two datagrams or more).
    pub gso_sends: u64,
    /// Datagrams in those trains.
    pub gso_datagrams: u64,
    /// 1 once the kernel refused a train and the socket went back to one
    /// datagram per entry.
    pub gso_fallbacks: u64,
    /// The errno of that refusal (0 if none).
    pub gso_refused_errno: i32,
    /// `recvmmsg` calls that returned something.
    pub recv_syscalls: u64,
    /// Datagrams they brought (after cutting trains).
    pub recv_datagrams: u64,
    /// Received trains (two datagrams or more).
    pub gro_trains: u64,
    /// Datagrams in those trains.
    pub gro_datagrams: u64,
    /// Trains dropped whole as malformed (segment size 0 or larger than
    /// the train, control data cut short, truncated).
    pub gro_malformed: u64,
    /// `UDP_SEGMENT` is on (and not refused yet).
    pub gso_on: bool,
    /// `UDP_GRO` is on.
    pub gro_on: bool,
}

/// The live counters (atomics: the send and receive threads both bump them).
#[derive(Debug, Default)]
pub(crate) struct UdpStats {
    pub(crate) send_syscalls: AtomicU64,
    pub(crate) send_datagrams: AtomicU64,
    pub(crate) gso_sends: AtomicU64,
    pub(crate) gso_datagrams: AtomicU64,
    pub(crate) gso_fallbacks: AtomicU64,
    pub(crate) gso_refused_errno: AtomicI32,
    pub(crate) recv_syscalls: AtomicU64,
    pub(crate) recv_datagrams: AtomicU64,
    pub(crate) gro_trains: AtomicU64,
    pub(crate) gro_datagrams: AtomicU64,
    pub(crate) gro_malformed: AtomicU64,
}

impl UdpStats {
    pub(crate) fn snapshot(&self, gso_on: bool, gro_on: bool) -> UdpOffloadCounters {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        UdpOffloadCounters {
            send_syscalls: l(&self.send_syscalls),
            send_datagrams: l(&self.send_datagrams),
            gso_sends: l(&self.gso_sends),
            gso_datagrams: l(&self.gso_datagrams),
            gso_fallbacks: l(&self.gso_fallbacks),
            gso_refused_errno: self.gso_refused_errno.load(Ordering::Relaxed),
            recv_syscalls: l(&self.recv_syscalls),
            recv_datagrams: l(&self.recv_datagrams),
            gro_trains: l(&self.gro_trains),
            gro_datagrams: l(&self.gro_datagrams),
            gro_malformed: l(&self.gro_malformed),
            gso_on,
            gro_on,
        }
    }

    pub(crate) fn add(a: &AtomicU64, n: u64) {
        if n > 0 {
            a.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Errors with which the kernel refuses a `UDP_SEGMENT` send as such (not
/// the destination): the socket stops using it.
fn is_gso_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT))
}

/// The send scratch of a GSO-capable socket: the mmsg arrays, one cmsg
/// buffer per entry, and which datagrams each entry carries.
pub(crate) struct GsoTx {
    pub(crate) mmsg: MmsgState,
    ctrls: Vec<CmsgBuf>,
    /// Entry `h` carries datagrams `runs[h].0 .. runs[h].0 + runs[h].1`.
    runs: Vec<(usize, usize)>,
}

impl std::fmt::Debug for GsoTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GsoTx")
            .field("capacity", &self.mmsg.capacity())
            .finish()
    }
}

impl GsoTx {
    pub(crate) fn new(n: usize) -> Self {
        GsoTx {
            mmsg: MmsgState::new(n),
            ctrls: vec![CmsgBuf([0; 32]); n],
            runs: vec![(0, 0); n],
        }
    }
}

/// What [`send_trains`] did: datagrams sent, the first error, and the
/// error with which the kernel refused `UDP_SEGMENT` (the caller turns GSO
/// off for good and sends `pkts[resume..]` one datagram per entry).
pub(crate) struct TrainSend {
    pub(crate) sent: usize,
    pub(crate) err: Option<io::Error>,
    pub(crate) refused: Option<(io::Error, usize)>,
}

/// Sends `pkts[i]` to `dsts[i]` (equal lengths, checked by the caller),
/// joining runs into `UDP_SEGMENT` trains. A train that starts at `pkts[i]`
/// carries at most `trains[i]` datagrams (1 to [`MAX_SEGMENTS`]), or
/// [`TRAIN_SEGMENTS`] where `trains` is `None` or shorter.
pub(crate) fn send_trains(
    fd: RawFd,
    family: libc::c_int,
    st: &mut GsoTx,
    pkts: &[&[u8]],
    dsts: &[SocketAddr],
    trains: Option<&[u8]>,
    stats: &UdpStats,
) -> TrainSend {
    let cap = st.mmsg.capacity();
    let mut out = TrainSend {
        sent: 0,
        err: None,
        refused: None,
    };
    let mut i = 0;
    while i < pkts.len() {
        // Fill at most `cap` entries using at most `cap` iovecs.
        let (mut h, mut iov) = (0, 0);
        while i < pkts.len() && h < cap && iov < cap {
            let dst = dsts[i];
            let lens = pkts[i..]
                .iter()
                .zip(&dsts[i..])
                .take(cap - iov)
                .take_while(|(_, d)| **d == dst)
                .map(|(p, _)| p.len());
            let most = trains
                .and_then(|t| t.get(i))
                .map_or(TRAIN_SEGMENTS, |&t| usize::from(t).clamp(1, MAX_SEGMENTS));
            let run = gso_run(lens, most, MAX_TRAIN_BYTES).max(1);
            for j in 0..run {
                st.mmsg.iovs[iov + j] = libc::iovec {
                    // sendmsg never writes through iov_base.
                    iov_base: pkts[i + j].as_ptr() as *mut libc::c_void,
                    iov_len: pkts[i + j].len(),
                };
            }
            let namelen = encode_sockaddr(&dst, family, false, &mut st.mmsg.names[h]);
            let hdr = &mut st.mmsg.hdrs[h];
            hdr.msg_hdr.msg_name = (&mut st.mmsg.names[h] as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = namelen;
            hdr.msg_hdr.msg_iov = &mut st.mmsg.iovs[iov];
            hdr.msg_hdr.msg_iovlen = run as _;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
            if run > 1 {
                let buf = &mut st.ctrls[h];
                // SAFETY: `buf` is 32 bytes aligned for cmsghdr, and
                // CMSG_SPACE(2) (24 on LP64, 16 on ILP32) fits in it; the
                // data is written unaligned-safe.
                unsafe {
                    let c = buf.0.as_mut_ptr() as *mut libc::cmsghdr;
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, pkts[i].len() as u16);
                    hdr.msg_hdr.msg_control = c.cast();
                    hdr.msg_hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                }
            } else {
                hdr.msg_hdr.msg_control = std::ptr::null_mut();
                hdr.msg_hdr.msg_controllen = 0;
            }
            st.runs[h] = (i, run);
            h += 1;
            iov += run;
            i += run;
        }
        let mut idx = 0;
        while idx < h {
            let rest = &mut st.mmsg.hdrs[idx..h];
            // SAFETY: every entry points at our scratch arrays and at the
            // caller's packets, all live for this call.
            let r = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
            if r > 0 {
                let r = r as usize;
                let (mut trains, mut in_trains, mut dgrams) = (0, 0, 0);
                for &(_, run) in &st.runs[idx..idx + r] {
                    dgrams += run;
                    if run > 1 {
                        trains += 1;
                        in_trains += run;
                    }
                }
                out.sent += dgrams;
                UdpStats::add(&stats.send_syscalls, 1);
                UdpStats::add(&stats.send_datagrams, dgrams as u64);
                UdpStats::add(&stats.gso_sends, trains);
                UdpStats::add(&stats.gso_datagrams, in_trains as u64);
                idx += r;
                continue;
            }
            let e = if r == 0 {
                io::Error::from(io::ErrorKind::WriteZero)
            } else {
                io::Error::last_os_error()
            };
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let (start, run) = st.runs[idx];
            if run > 1 && is_gso_refusal(&e) {
                // Linux's sendmmsg stops at the first failing entry: this
                // train and all after it are unsent, in order.
                out.refused = Some((e, start));
                return out;
            }
            let per_datagram = is_per_datagram_error(&e);
            out.err.get_or_insert(e);
            if !per_datagram {
                return out;
            }
            idx += 1;
        }
    }
    out
}

/// One received entry of a GRO receive.
#[derive(Clone, Copy, Default)]
struct Entry {
    len: usize,
    /// The `UDP_GRO` segment size, if the kernel sent one.
    gso: Option<usize>,
    addr: Option<SocketAddr>,
    /// Cut short (`MSG_TRUNC` or `MSG_CTRUNC`).
    cut: bool,
}

/// The receive side of `UDP_GRO`: 64 KiB buffers, and the datagrams of
/// the last `recvmmsg` not yet handed out.
pub(crate) struct GroRx {
    bufs: Vec<u8>,
    mmsg: MmsgState,
    ctrls: Vec<CmsgBuf>,
    entries: Vec<Entry>,
    /// Entries filled by the last `recvmmsg`, the next to hand out, and
    /// the next segment of that one.
    filled: usize,
    next: usize,
    seg: usize,
}

impl std::fmt::Debug for GroRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroRx")
            .field("entries", &self.entries.len())
            .field("pending", &(self.filled - self.next))
            .finish()
    }
}

impl GroRx {
    /// `n` buffers of [`GRO_BUFFER`] bytes.
    pub(crate) fn new(n: usize) -> Self {
        GroRx {
            bufs: vec![0; n * GRO_BUFFER],
            mmsg: MmsgState::new(n),
            ctrls: vec![CmsgBuf([0; 32]); n],
            entries: vec![Entry::default(); n],
            filled: 0,
            next: 0,
            seg: 0,
        }
    }
}

/// The `UDP_GRO` segment size in a received message's control data.
///
/// # Safety
///
/// `hdr` must be a message header the kernel just filled, whose control
/// pointer and length describe a live buffer.
unsafe fn gro_size(hdr: &libc::msghdr) -> Option<usize> {
    // SAFETY: the caller's contract; CMSG_* walk within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let need = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
                if ((*c).cmsg_len as usize) < need {
                    return Some(0);
                }
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                return Some(usize::try_from(v).unwrap_or(0));
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

/// Copies datagram `d` into slot `*out` of `batch`, at its headroom.
fn put(batch: &mut PacketBatch, out: &mut usize, d: &[u8], addr: Option<SocketAddr>) {
    let headroom = batch.headroom();
    let area = batch.recv_area_mut(*out);
    // Same policy as without GRO: what does not fit is reported empty.
    let len = if d.len() <= area.len() {
        area[..d.len()].copy_from_slice(d);
        d.len()
    } else {
        0
    };
    batch.set_received(*out, headroom, len, addr);
    *out += 1;
}

/// Fills `batch` with datagrams: first those left over from the last
/// receive, else from one new `recvmmsg` (waiting up to `timeout`).
pub(crate) fn recv_gro(
    fd: RawFd,
    rx: &mut GroRx,
    batch: &mut PacketBatch,
    timeout: Option<Duration>,
    stats: &UdpStats,
) -> io::Result<usize> {
    batch.clear();
    if rx.next >= rx.filled {
        let n = rx.entries.len();
        for i in 0..n {
            let st = &mut rx.mmsg;
            st.iovs[i] = libc::iovec {
                iov_base: rx.bufs[i * GRO_BUFFER..].as_mut_ptr().cast(),
                iov_len: GRO_BUFFER,
            };
            let h = &mut st.hdrs[i];
            h.msg_hdr.msg_name = (&mut st.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut st.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = rx.ctrls[i].0.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = std::mem::size_of::<CmsgBuf>() as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: every header points into `rx`'s buffers, borrowed
        // mutably for the call.
        let got = unsafe { recvmmsg_wait(fd, &mut rx.mmsg.hdrs[..n], timeout)? };
        if got == 0 {
            return Ok(0);
        }
        UdpStats::add(&stats.recv_syscalls, 1);
        for i in 0..got {
            let h = &rx.mmsg.hdrs[i];
            let flags = h.msg_hdr.msg_flags;
            rx.entries[i] = Entry {
                len: (h.msg_len as usize).min(GRO_BUFFER),
                // SAFETY: the kernel filled this header just now.
                gso: unsafe { gro_size(&h.msg_hdr) },
                addr: decode_sockaddr(&rx.mmsg.names[i], h.msg_hdr.msg_namelen),
                cut: flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
            };
        }
        rx.filled = got;
        rx.next = 0;
        rx.seg = 0;
    }
    Ok(drain(rx, batch, stats))
}

/// Hands out what the last receive left in `rx`, one datagram a slot, until
/// `batch` is full; returns how many.
fn drain(rx: &mut GroRx, batch: &mut PacketBatch, stats: &UdpStats) -> usize {
    let mut out = 0;
    while rx.next < rx.filled && out < batch.capacity() {
        let e = rx.entries[rx.next];
        let data = &rx.bufs[rx.next * GRO_BUFFER..rx.next * GRO_BUFFER + e.len];
        let Some(gso) = e.gso else {
            // A datagram the kernel did not coalesce; a cut one is handed
            // over empty, as recv_batch without GRO does.
            put(batch, &mut out, if e.cut { &[] } else { data }, e.addr);
            rx.next += 1;
            continue;
        };
        let train = if e.cut {
            Err(())
        } else {
            GroTrain::new(data, gso).map_err(drop)
        };
        let Ok(train) = train else {
            UdpStats::add(&stats.gro_malformed, 1);
            rx.next += 1;
            rx.seg = 0;
            continue;
        };
        let count = train.count();
        if rx.seg == 0 && count > 1 {
            UdpStats::add(&stats.gro_trains, 1);
            UdpStats::add(&stats.gro_datagrams, count as u64);
        }
        while rx.seg < count && out < batch.capacity() {
            if let Some(d) = train.segment(rx.seg) {
                put(batch, &mut out, d, e.addr);
            }
            rx.seg += 1;
        }
        if rx.seg >= count {
            rx.next += 1;
            rx.seg = 0;
        }
    }
    batch.set_len(out);
    UdpStats::add(&stats.recv_datagrams, out as u64);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GroRx as a receive would leave it: `(bytes, gso, cut)` per entry.
    fn received(entries: &[(Vec<u8>, Option<usize>, bool)]) -> GroRx {
        let mut rx = GroRx::new(entries.len());
        let from: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        for (i, (b, gso, cut)) in entries.iter().enumerate() {
            rx.bufs[i * GRO_BUFFER..i * GRO_BUFFER + b.len()].copy_from_slice(b);
            rx.entries[i] = Entry {
                len: b.len(),
                gso: *gso,
                addr: Some(from),
                cut: *cut,
            };
        }
        rx.filled = entries.len();
        rx
    }

    fn take_all(rx: &mut GroRx, cap: usize, stats: &UdpStats) -> Vec<Vec<u8>> {
        let mut batch = PacketBatch::new(cap, 2048, 16);
        let mut got = Vec::new();
        loop {
            batch.clear();
            let n = drain(rx, &mut batch, stats);
            if n == 0 {
                return got;
            }
            assert!(n <= cap);
            got.extend(batch.iter().map(|(p, _)| p.to_vec()));
        }
    }

    #[test]
    fn trains_are_cut_in_order_across_small_batches() {
        let a: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let stats = UdpStats::default();
        let mut rx = received(&[
            // 3 x 333 + 1: a shorter last.
            (a.clone(), Some(333), false),
            // No cmsg: one datagram.
            (vec![0xff], None, false),
            // One segment exactly.
            (vec![7; 40], Some(40), false),
            (vec![1; 8], Some(8), false),
        ]);
        let got = take_all(&mut rx, 3, &stats);
        let want = vec![
            a[..333].to_vec(),
            a[333..666].to_vec(),
            a[666..999].to_vec(),
            a[999..].to_vec(),
            vec![0xff],
            vec![7; 40],
            vec![1; 8],
        ];
        assert_eq!(got, want);
        let c = stats.snapshot(true, true);
        assert_eq!((c.gro_trains, c.gro_datagrams, c.recv_datagrams), (1, 4, 7));
        assert_eq!(c.gro_malformed, 0);
    }

    #[test]
    fn malformed_trains_are_dropped_whole_and_counted() {
        let stats = UdpStats::default();
        let mut rx = received(&[
            (vec![1; 100], Some(0), false),   // segment size 0
            (vec![2; 100], Some(101), false), // larger than the train
            (vec![3; 100], Some(10), true),   // truncated
            (vec![], Some(10), false),        // empty
            (vec![4; 20], Some(10), false),   // fine
            (vec![5; 30], None, true),        // a cut plain datagram: empty slot
        ]);
        let got = take_all(&mut rx, 64, &stats);
        assert_eq!(got, vec![vec![4; 10], vec![4; 10], vec![]]);
        let c = stats.snapshot(true, true);
        assert_eq!((c.gro_malformed, c.gro_trains, c.recv_datagrams), (4, 1, 3));
    }

    #[test]
    fn a_segment_larger_than_the_slot_is_reported_empty() {
        let stats = UdpStats::default();
        let mut rx = received(&[(vec![9; 6000], Some(3000), false)]);
        let got = take_all(&mut rx, 8, &stats);
        assert_eq!(got, vec![Vec::<u8>::new(), Vec::new()]);
    }
}
