//! Preallocated packet batches.
//!
//! A [`PacketBatch`] is the unit of work that crosses the OS boundary: every
//! batched receive ([`Tun::read_batch`](crate::Tun::read_batch),
//! [`UdpSocket::recv_batch`](crate::UdpSocket::recv_batch),
//! [`RawEspSocket::recv_batch`](crate::RawEspSocket::recv_batch) and the fakes)
//! fills one, and [`DatagramIo::send_packet_batch`](crate::DatagramIo::send_packet_batch)
//! sends one.
//!
//! # Layout
//!
//! One contiguous allocation is split into `capacity` fixed-size *slots*.
//! Each slot holds one packet somewhere inside it, described by a
//! [`SlotMeta`] (`start`, `len`, `addr`):
//!
//! ```text
//!  slot i: |<- headroom ->|<------------- receive area ------------->|
//!          |              | packet (start..start+len) |   tailroom   |
//! ```
//!
//! Receives always place the packet at `headroom` (for raw IPv4 ESP the
//! payload start is moved past the IP header). The headroom and tailroom
//! let a data plane transform packets *in place*: ESP encapsulation writes
//! its header into the headroom and its trailer/ICV into the tailroom, then
//! calls [`PacketBatch::set_packet`] with the new bounds and the peer
//! address, and the very same batch is handed to `send_packet_batch`.
//!
//! Nothing here allocates after [`PacketBatch::new`]; the `mmsghdr`/`iovec`/
//! `sockaddr` arrays used by `recvmmsg(2)`/`sendmmsg(2)` live inside the
//! batch too, so a batch owned by a thread makes its syscalls lock-free.

use std::net::SocketAddr;

/// Default maximum number of packets per batched syscall.
///
/// Why 64: large enough to amortise the syscall cost (gains flatten out
/// beyond ~32 on recvmmsg/sendmmsg), small enough that a batch of
/// 2 KiB slots (128 KiB) stays within L2 cache.
pub const MAX_BATCH: usize = 64;

/// Where a packet lives inside its slot, and who it came from / goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotMeta {
    /// Offset of the packet's first byte from the start of the slot.
    pub start: usize,
    /// Packet length in bytes. `0` means "empty": a truncated or malformed
    /// datagram was received into this slot, or the caller discarded it.
    pub len: usize,
    /// Source address after a socket receive, destination address for a
    /// send. `None` for TUN packets and discarded slots.
    pub addr: Option<SocketAddr>,
}

/// Scratch arrays for `recvmmsg(2)` / `sendmmsg(2)`.
///
/// The raw pointers inside are (re)written immediately before every syscall
/// and never dereferenced outside one, so the struct can move freely
/// between threads.
pub(crate) struct MmsgState {
    pub(crate) hdrs: Vec<libc::mmsghdr>,
    pub(crate) iovs: Vec<libc::iovec>,
    pub(crate) names: Vec<libc::sockaddr_storage>,
}

// SAFETY: the pointers are only meaningful during a syscall made while the
// owner holds `&mut MmsgState`; between calls they are stale and unused.
unsafe impl Send for MmsgState {}
// SAFETY: `&MmsgState` exposes nothing (all fields are crate-private and
// only touched through `&mut`).
unsafe impl Sync for MmsgState {}

impl std::fmt::Debug for MmsgState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmsgState").field("capacity", &self.capacity()).finish()
    }
}

impl MmsgState {
    pub(crate) fn new(n: usize) -> Self {
        // SAFETY: all three are plain C structs for which all-zeroes is a
        // valid (empty) value.
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let zero_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let zero_name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        MmsgState {
            hdrs: vec![zero_hdr; n],
            iovs: vec![zero_iov; n],
            names: vec![zero_name; n],
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.hdrs.len()
    }
}

/// A fixed number of fixed-size packet slots in one allocation.
///
/// See the [module documentation](self) for the layout.
pub struct PacketBatch {
    storage: Vec<u8>,
    slot_size: usize,
    headroom: usize,
    meta: Vec<SlotMeta>,
    /// Number of filled slots (`0..len` are valid packets).
    len: usize,
    pub(crate) mmsg: MmsgState,
}

impl std::fmt::Debug for PacketBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBatch")
            .field("capacity", &self.capacity())
            .field("slot_size", &self.slot_size)
            .field("headroom", &self.headroom)
            .field("len", &self.len)
            .field("meta", &&self.meta[..self.len])
            .finish()
    }
}

impl PacketBatch {
    /// Allocates `capacity` slots of `slot_size` bytes, each reserving
    /// `headroom` bytes in front of received data.
    ///
    /// The receive area of a slot is `slot_size - headroom` bytes; it must
    /// hold the largest packet you expect (MTU for TUN, the largest outer
    /// datagram for sockets), plus any tailroom your in-place transforms
    /// need.
    ///
    /// # Panics
    ///
    /// If `capacity == 0` or `headroom >= slot_size` (configuration bugs,
    /// not runtime conditions).
    pub fn new(capacity: usize, slot_size: usize, headroom: usize) -> Self {
        assert!(capacity > 0, "PacketBatch capacity must be > 0");
        assert!(
            headroom < slot_size,
            "PacketBatch headroom ({headroom}) must be smaller than slot_size ({slot_size})"
        );
        let total = capacity
            .checked_mul(slot_size)
            .expect("PacketBatch size overflows usize");
        PacketBatch {
            storage: vec![0u8; total],
            slot_size,
            headroom,
            meta: vec![SlotMeta::default(); capacity],
            len: 0,
            mmsg: MmsgState::new(capacity),
        }
    }

    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// Size of each slot in bytes (headroom included).
    #[inline]
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Bytes reserved in front of received data in each slot.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.headroom
    }

    /// Number of filled slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when no slot is filled.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `true` when every slot is filled.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// Marks every slot empty. Slot bytes are left as they are.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps only the first `n` filled slots (no-op if `n >= len`).
    #[inline]
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// Metadata of slot `i` (any `i < capacity`, filled or not).
    ///
    /// # Panics
    ///
    /// If `i >= capacity`.
    #[inline]
    pub fn meta(&self, i: usize) -> SlotMeta {
        self.meta[i]
    }

    /// Peer address of slot `i` (source after receive, destination for send).
    ///
    /// # Panics
    ///
    /// If `i >= capacity`.
    #[inline]
    pub fn addr(&self, i: usize) -> Option<SocketAddr> {
        self.meta[i].addr
    }

    /// The packet bytes of slot `i`.
    ///
    /// # Panics
    ///
    /// If `i >= capacity`.
    #[inline]
    pub fn packet(&self, i: usize) -> &[u8] {
        let m = self.meta[i];
        let base = i * self.slot_size + m.start;
        // `set_packet`/`set_received` guarantee start+len <= slot_size.
        &self.storage[base..base + m.len]
    }

    /// The packet bytes of slot `i`, mutably (for in-place decryption etc.).
    ///
    /// # Panics
    ///
    /// If `i >= capacity`.
    #[inline]
    pub fn packet_mut(&mut self, i: usize) -> &mut [u8] {
        let m = self.meta[i];
        let base = i * self.slot_size + m.start;
        &mut self.storage[base..base + m.len]
    }

    /// The whole slot `i` (headroom, packet and tailroom).
    ///
    /// # Panics
    ///
    /// If `i >= capacity`.
    #[inline]
    pub fn slot(&self, i: usize) -> &[u8] {
        let base = i * self.slot_size;
        &self.storage[base..base + self.slot_size]
    }

    /// The whole slot `i`, mutably: write a packet anywhere inside it, then
    /// describe it with [`set_packet`](Self::set_packet) or
    /// [`push`](Self::push).
    ///
    /// # Panics
    ///
    /// If `i >= capacity`.
    #[inline]
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let base = i * self.slot_size;
        &mut self.storage[base..base + self.slot_size]
    }

    /// Describes the packet in slot `i` as `slot[start..start + len]`,
    /// going to / coming from `addr`. Does not change [`len`](Self::len).
    ///
    /// # Panics
    ///
    /// If `i >= capacity` or `start + len > slot_size`.
    #[inline]
    pub fn set_packet(&mut self, i: usize, start: usize, len: usize, addr: Option<SocketAddr>) {
        assert!(
            start.checked_add(len).is_some_and(|end| end <= self.slot_size),
            "packet {start}+{len} exceeds slot size {}",
            self.slot_size
        );
        self.meta[i] = SlotMeta { start, len, addr };
    }

    /// Fills the next free slot (index [`len`](Self::len), whose bytes the
    /// caller already wrote via [`slot_mut`](Self::slot_mut)) and returns
    /// its index.
    ///
    /// # Panics
    ///
    /// If the batch is full or `start + len > slot_size`.
    #[inline]
    pub fn push(&mut self, start: usize, len: usize, addr: Option<SocketAddr>) -> usize {
        let i = self.len;
        assert!(i < self.capacity(), "PacketBatch is full");
        self.set_packet(i, start, len, addr);
        self.len += 1;
        i
    }

    /// Copies `pkt` into the next free slot at `headroom` and fills it.
    /// Returns the slot index, or `None` if the batch is full or the packet
    /// does not fit (a convenience for tests and slow paths).
    pub fn push_copy(&mut self, pkt: &[u8], addr: Option<SocketAddr>) -> Option<usize> {
        if self.is_full() || pkt.len() > self.slot_size - self.headroom {
            return None;
        }
        let i = self.len;
        let h = self.headroom;
        self.slot_mut(i)[h..h + pkt.len()].copy_from_slice(pkt);
        Some(self.push(h, pkt.len(), addr))
    }

    /// Empties slot `i` so senders skip it (e.g. after failed
    /// authentication), without reshuffling the other slots.
    ///
    /// # Panics
    ///
    /// If `i >= capacity`.
    #[inline]
    pub fn discard(&mut self, i: usize) {
        self.meta[i].len = 0;
        self.meta[i].addr = None;
    }

    /// Iterates over the filled slots as `(packet, addr)`, including empty
    /// (discarded/truncated) ones so indices stay aligned.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> + '_ {
        (0..self.len).map(move |i| (self.packet(i), self.meta[i].addr))
    }

    // ----- crate-internal helpers for the receive paths -----

    /// The receive area of slot `i`: everything after the headroom.
    #[inline]
    pub(crate) fn recv_area_mut(&mut self, i: usize) -> &mut [u8] {
        let base = i * self.slot_size;
        &mut self.storage[base + self.headroom..base + self.slot_size]
    }

    /// Raw pointer/length of the receive area of slot `i`, for iovecs.
    #[inline]
    pub(crate) fn recv_area_raw(&mut self, i: usize) -> (*mut u8, usize) {
        let area = self.recv_area_mut(i);
        (area.as_mut_ptr(), area.len())
    }

    /// Records a received packet of `len` bytes at `start` in slot `i`.
    #[inline]
    pub(crate) fn set_received(&mut self, i: usize, start: usize, len: usize, addr: Option<SocketAddr>) {
        debug_assert!(start + len <= self.slot_size);
        self.meta[i] = SlotMeta { start, len, addr };
    }

    #[inline]
    pub(crate) fn set_len(&mut self, n: usize) {
        debug_assert!(n <= self.capacity());
        self.len = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_in_place_edit() {
        let mut b = PacketBatch::new(4, 128, 32);
        assert_eq!(b.capacity(), 4);
        assert!(b.is_empty());
        let i = b.push_copy(b"hello", None).unwrap();
        assert_eq!(i, 0);
        assert_eq!(b.meta(0).start, 32);
        assert_eq!(b.packet(0), b"hello");

        // Prepend a 4-byte header into the headroom, append a trailer.
        let addr: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let m = b.meta(0);
        let slot = b.slot_mut(0);
        slot[m.start - 4..m.start].copy_from_slice(b"HDR:");
        slot[m.start + m.len..m.start + m.len + 2].copy_from_slice(b"!!");
        b.set_packet(0, m.start - 4, m.len + 6, Some(addr));
        assert_eq!(b.packet(0), b"HDR:hello!!");
        assert_eq!(b.addr(0), Some(addr));

        b.discard(0);
        assert_eq!(b.packet(0), b"");
        assert_eq!(b.len(), 1);
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn push_copy_limits() {
        let mut b = PacketBatch::new(1, 16, 8);
        assert!(b.push_copy(&[0u8; 9], None).is_none(), "too big for receive area");
        assert!(b.push_copy(&[0u8; 8], None).is_some());
        assert!(b.push_copy(&[0u8; 1], None).is_none(), "full");
    }

    #[test]
    #[should_panic]
    fn set_packet_out_of_slot_panics() {
        let mut b = PacketBatch::new(1, 16, 0);
        b.set_packet(0, 10, 7, None);
    }
}
