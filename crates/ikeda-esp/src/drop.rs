//! Every packet the data plane refuses has a named reason and a counter.

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! reasons {
    ($( $(#[$doc:meta])* $v:ident => $name:literal ),* $(,)?) => {
        /// Why a packet was dropped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DropReason { $( $(#[$doc])* $v, )* }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$v),*];
            /// Stable snake_case name, used in counters and JSON output.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$v => $name,)* }
            }
        }
    };
}

reasons! {
    /// Shorter than the ESP header, or than header + IV + ICV.
    Truncated => "truncated",
    /// No inbound SA has this SPI.
    UnknownSpi => "unknown_spi",
    /// Sequence number left of the replay window.
    ReplayTooOld => "replay_too_old",
    /// Sequence number seen before.
    Replayed => "replayed",
    /// The ICV did not verify (tampered, corrupted, or wrong key).
    IcvMismatch => "icv_mismatch",
    /// Ciphertext not a whole number of cipher blocks.
    BadCiphertextLength => "bad_ciphertext_length",
    /// Padding bytes not 1, 2, 3, ... (RFC 4303 §2.4).
    BadPadding => "bad_padding",
    /// Pad Length larger than the decrypted payload.
    BadTrailer => "bad_trailer",
    /// Next Header is not IPv4/IPv6, or disagrees with the inner packet.
    BadNextHeader => "bad_next_header",
    /// A dummy packet (Next Header 59, RFC 4303 §2.6): discarded by design.
    DummyPacket => "dummy_packet",
    /// The decrypted inner packet is not a valid IP packet.
    InnerMalformed => "inner_malformed",
    /// Next Header 108 (IPComp) on an SA that has no IPComp.
    IpcompNotEnabled => "ipcomp_not_enabled",
    /// The IPComp header's CPI is not the SA's inbound CPI (RFC 3173 §2.2).
    IpcompBadCpi => "ipcomp_bad_cpi",
    /// The IPComp header is cut short, its payload is not a valid DEFLATE
    /// stream, or it would decompress to more than 65535 bytes.
    IpcompDecompress => "ipcomp_decompress",
    /// The inner packet is outside the SA's traffic selectors (RFC 4301 §5.2).
    SelectorMismatch => "selector_mismatch",
    /// Outbound packet matches no policy.
    NoPolicy => "no_policy",
    /// Outbound packet matches a DISCARD policy.
    PolicyDiscard => "policy_discard",
    /// The policy's SA is not installed (yet).
    NoSa => "no_sa",
    /// Not a drop: no SA yet, but the policy is a trap, so the caller holds
    /// the packet until IKE installs one. Never counted as a drop.
    HeldForSa => "held_for_sa",
    /// The outbound SA has used its last sequence number (RFC 4303 §3.3.3).
    SeqExhausted => "seq_exhausted",
    /// The outbound SA's next sequence number is above the ceiling its
    /// owner has made durable (manual keys: reserved ahead in a state file,
    /// so that no restart reuses a number); sent again once it moves up.
    SeqNotReserved => "seq_not_reserved",
    /// Outbound packet is not IPv4/IPv6 or is malformed.
    NotIp => "not_ip",
    /// The packet does not fit the buffer after encapsulation (or, inbound,
    /// after decompression).
    TooBig => "too_big",
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per drop reason, readable while the data plane runs.
pub struct DropCounters([AtomicU64; DropReason::ALL.len()]);

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl DropCounters {
    pub fn bump(&self, r: DropReason) {
        self.0[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Pass a result through, counting its drop reason if it is one.
    #[inline]
    pub fn count<T>(&self, r: Result<T, DropReason>) -> Result<T, DropReason> {
        match &r {
            Err(DropReason::HeldForSa) | Ok(_) => {}
            Err(e) => self.bump(*e),
        }
        r
    }

    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize].load(Ordering::Relaxed)
    }

    /// Non-zero counters, by name.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (r.name(), self.get(*r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

impl fmt::Debug for DropCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.nonzero()).finish()
    }
}
