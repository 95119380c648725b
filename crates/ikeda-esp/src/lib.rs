//! Sans-IO ESP (RFC 4303) for ikeda: SAs, replay window, in-place
//! encapsulation and decapsulation into caller buffers, the SPD, and
//! inbound selector checks (RFC 4301 §5.2).
//!
//! No sockets, no clock (callers pass `now_ms`), no RNG. The data plane is
//! split into an [`Outbound`] half (owned by the side that reads the TUN
//! device) and an [`Inbound`] half (owned by the thread that reads the
//! network), so neither waits on the other.

#![forbid(unsafe_code)]

pub mod drop;
pub mod ipcomp;
pub mod replay;
pub mod sa;
pub mod selector;
pub mod spd;

pub use drop::{DropCounters, DropReason};
pub use ipcomp::{IpcompParams, IpcompScratch, IpcompStats};
pub use sa::{Encap, InboundSa, OutboundSa, Room, SaParams, SaStats, SeqCeiling};
pub use selector::{AddrRange, Selector};
pub use spd::{Policy, PolicyAction, Spd};

use core::ops::Range;
use ikeda_wire::esp::EspPacket;
use ikeda_wire::ip;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where an encapsulated packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub encap: Encap,
    /// The SA's [`OutboundSa::train`].
    pub train: u8,
}

/// The outbound half: SPD and outbound SAs.
#[derive(Debug, Default)]
pub struct Outbound {
    pub spd: Spd,
    /// Indexed by `PolicyAction::Protect { sa }`; `None` = not installed.
    pub sas: Vec<Option<OutboundSa>>,
    /// Slots whose policies are traps: a packet without SA is
    /// [`DropReason::HeldForSa`] rather than [`DropReason::NoSa`].
    pub traps: Vec<bool>,
    pub drops: Arc<DropCounters>,
    /// The compressor of the side that owns this half, used by one thread
    /// at a time (IPComp SAs only; allocated on first use).
    pub ipcomp: IpcompScratch,
}

impl Outbound {
    pub fn new(spd: Spd, sas: Vec<Option<OutboundSa>>) -> Self {
        Outbound {
            spd,
            sas,
            traps: Vec::new(),
            drops: Arc::default(),
            ipcomp: IpcompScratch::default(),
        }
    }

    /// Publish every SA's counters (see [`OutboundSa::flush_stats`]):
    /// after each batch.
    pub fn flush_stats(&mut self) {
        for sa in self.sas.iter_mut().flatten() {
            sa.flush_stats();
        }
    }

    /// Largest head and tail room any SA needs, for sizing buffers.
    pub fn max_room(&self) -> Room {
        self.sas
            .iter()
            .flatten()
            .map(|s| s.room())
            .fold(Room { head: 0, tail: 0 }, |a, r| Room {
                head: a.head.max(r.head),
                tail: a.tail.max(r.tail),
            })
    }

    /// The slot of the policy that protects `inner`, if any: for a packet
    /// that `process` returned as [`DropReason::HeldForSa`], the slot whose
    /// SA the trap should ask IKE for.
    pub fn slot_for(&self, inner: &[u8]) -> Option<usize> {
        let key = ip::flow_key(inner).ok()?;
        match self
            .spd
            .policies
            .iter()
            .find(|p| p.selector.matches_outbound(&key))?
            .action
        {
            PolicyAction::Protect { sa } => Some(sa),
            PolicyAction::Discard => None,
        }
    }

    /// Choose the SA for the inner packet at `buf[off..off + len]` and
    /// encapsulate it in place. Returns the ESP packet's range and where it
    /// goes.
    pub fn process(
        &mut self,
        buf: &mut [u8],
        off: usize,
        len: usize,
        now_ms: u64,
    ) -> Result<(Range<usize>, Destination), DropReason> {
        let r = self.process_inner(buf, off, len, now_ms);
        self.drops.count(r)
    }

    fn process_inner(
        &mut self,
        buf: &mut [u8],
        off: usize,
        len: usize,
        now_ms: u64,
    ) -> Result<(Range<usize>, Destination), DropReason> {
        let inner = buf.get(off..off + len).ok_or(DropReason::TooBig)?;
        let key = ip::flow_key(inner).map_err(|_| DropReason::NotIp)?;
        let policy = self.spd.lookup(&key).ok_or(DropReason::NoPolicy)?;
        let idx = match policy.action {
            PolicyAction::Discard => return Err(DropReason::PolicyDiscard),
            PolicyAction::Protect { sa } => sa,
        };
        let trapped = self.traps.get(idx).copied().unwrap_or(false);
        let sa = self.sas.get_mut(idx).and_then(|s| s.as_mut()).ok_or(if trapped {
            DropReason::HeldForSa
        } else {
            DropReason::NoSa
        })?;
        let range = sa.encapsulate_with(buf, off, len, &mut self.ipcomp, now_ms)?;
        Ok((
            range,
            Destination {
                remote: sa.remote,
                local: sa.local,
                encap: sa.encap,
                train: sa.train,
            },
        ))
    }
}

/// The inbound half: the SAD, keyed by SPI.
#[derive(Debug, Default)]
pub struct Inbound {
    pub sad: HashMap<u32, InboundSa>,
    pub drops: Arc<DropCounters>,
    /// The decompressor of the thread that owns this half.
    pub ipcomp: IpcompScratch,
}

impl Inbound {
    pub fn new(sas: impl IntoIterator<Item = InboundSa>) -> Self {
        Inbound {
            sad: sas.into_iter().map(|s| (s.spi, s)).collect(),
            drops: Arc::default(),
            ipcomp: IpcompScratch::default(),
        }
    }

    /// Look up the SA by SPI and decapsulate `pkt` (from the SPI on) in
    /// place. Returns the inner packet's range in `pkt`. A compressed
    /// packet must decompress into `pkt`'s length: the data plane uses
    /// [`process_in`](Self::process_in) with its receive slot.
    pub fn process(&mut self, pkt: &mut [u8], now_ms: u64) -> Result<Range<usize>, DropReason> {
        let len = pkt.len();
        self.process_in(pkt, 0, len, now_ms)
    }

    /// Decapsulate the ESP packet at `buf[start..start + len]`; the rest
    /// of `buf` is room a compressed packet may decompress into. Returns
    /// the inner packet's range in `buf`.
    pub fn process_in(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        now_ms: u64,
    ) -> Result<Range<usize>, DropReason> {
        let r = self.process_inner(buf, start, len, now_ms);
        self.drops.count(r)
    }

    fn process_inner(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        now_ms: u64,
    ) -> Result<Range<usize>, DropReason> {
        let pkt = start
            .checked_add(len)
            .and_then(|end| buf.get(start..end))
            .ok_or(DropReason::Truncated)?;
        let spi = EspPacket::new_checked(pkt).map_err(|_| DropReason::Truncated)?.spi();
        let sa = self.sad.get_mut(&spi).ok_or(DropReason::UnknownSpi)?;
        sa.decapsulate_in(buf, start, len, &mut self.ipcomp, now_ms)
    }
}

#[cfg(test)]
mod tests;
