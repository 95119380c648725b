//! Sans-IO IKE engine for ikeda.
//!
//! The engine owns no socket, reads no clock and draws no randomness of its
//! own: the caller feeds it datagrams and timer expiries with the current
//! time ([`Millis`]), and polls it for datagrams to send, the next timer,
//! and events (install a CHILD SA, the IKE SA is up, a negotiation failed
//! and why). It never installs an SA itself. That is what lets the
//! deterministic simulator in [`sim`] replay a run exactly, with loss,
//! duplication, reordering and clock jumps.
//!
//! Each IKE SA, of either version, runs its exchanges through a
//! [`task::TaskManager`]: work queues until the window has room, message
//! IDs, retransmission on one schedule, the cache of answers for
//! retransmitted requests, the half-open deadline.

#![forbid(unsafe_code)]

pub mod conn;
mod engine;
pub mod event;
pub mod ikev1;
pub mod ikev2;
mod keepalive;
pub mod retransmit;
pub mod sa_table;
pub mod sim;
pub mod task;
pub mod time;
pub mod view;

#[cfg(test)]
mod tests;

pub use conn::{ChildTs, ConnId, ConnSpec, Timers};
pub use engine::{Connection, Counter, Engine};
pub use event::{ChildSaInfo, Event, Failure, Fault, IkeKeyInfo, V1KeyInfo};
pub use retransmit::RetransmitPolicy;
pub use sa_table::{SaId, SaTable};
pub use task::{Exchange, TaskManager, Version};
pub use time::Millis;
pub use view::{ChildSaView, IkeSaView, IkeState};

use std::net::SocketAddr;

/// A datagram the engine wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The IKE message (without a non-ESP marker; the I/O layer adds it on
    /// port 4500, RFC 3948 §2.2).
    pub data: Vec<u8>,
}

/// A random 32-bit SPI (or IKEv1 message ID) from `rng`: 0-255 are
/// reserved (RFC 4303 §2.1), and IKEv1's M-ID 0 is phase 1's.
pub(crate) fn random_spi32(rng: &mut dyn ikeda_crypto::ike::Rng) -> u32 {
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b);
        let v = u32::from_be_bytes(b);
        if v > 255 {
            return v;
        }
    }
}
