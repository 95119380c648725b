//! What an engine of either version can tell about its SAs, for `ikeda
//! show` and `status`: copies taken at one moment; nothing in them is
//! secret.

use crate::Millis;
use ikeda_crypto::ike::{ChildSuite, IkeSuite};
use ikeda_wire::ikev2::TsRange;
use std::net::SocketAddr;

/// Where an IKE SA stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeState {
    /// IKE_SA_INIT or IKE_AUTH in progress (either role).
    Connecting,
    Established,
    /// Replaced by a rekeyed IKE SA, waiting for its DELETE.
    Rekeyed,
    /// Our DELETE is out, waiting for the answer.
    Deleting,
}

impl IkeState {
    pub fn as_str(self) -> &'static str {
        match self {
            IkeState::Connecting => "CONNECTING",
            IkeState::Established => "ESTABLISHED",
            IkeState::Rekeyed => "REKEYED",
            IkeState::Deleting => "DELETING",
        }
    }
}

/// One IKE SA.
#[derive(Debug, Clone)]
pub struct IkeSaView {
    pub conn: String,
    /// 2, or 1 for an IKEv1 phase-1 SA (whose SPIs are the cookies).
    pub version: u8,
    pub spi_i: u64,
    pub spi_r: u64,
    pub initiator: bool,
    pub state: IkeState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `None` until IKE_SA_INIT has chosen a proposal.
    pub suite: Option<IkeSuite>,
    pub established_at: Option<Millis>,
    pub rekey_at: Option<Millis>,
    pub expire_at: Option<Millis>,
    /// A NAT between the peers (either side), and whether we are behind it.
    pub nat: bool,
    pub behind_nat: bool,
    /// The exchange we are waiting on an answer for, and how many times
    /// its request went out.
    pub pending: Option<crate::Exchange>,
    pub sends: u32,
    pub tries: u32,
    /// Dead peer detection: configured delay (zero: off), when we last
    /// heard from the peer, and whether a liveness check is out.
    pub dpd_delay_ms: u64,
    pub last_heard: Millis,
    pub dpd_checking: bool,
    pub children: Vec<ChildSaView>,
    /// IKEv1: the peer announced DPD (RFC 3706); IKEv2 always has liveness checks.
    pub dpd_supported: bool,
}

/// One CHILD SA of an IKE SA (both directions).
#[derive(Debug, Clone)]
pub struct ChildSaView {
    pub spi_in: u32,
    pub spi_out: u32,
    pub suite: ChildSuite,
    pub local_ts: Vec<TsRange>,
    pub remote_ts: Vec<TsRange>,
    pub installed_at: Millis,
    pub rekey_at: Option<Millis>,
    pub expire_at: Option<Millis>,
    pub udp_encap: bool,
    /// Sending on this SA (a rekey's responder waits for the old SA's DELETE).
    pub active: bool,
    /// Rekeyed: the new SA carries the traffic, this one waits for DELETE.
    pub rekeyed: bool,
    /// IPComp CPIs (ours, the peer's), IKEv1 only.
    pub ipcomp: Option<(u16, u16)>,
    /// Which of the connection's CHILD SAs (IKEv2, [`crate::ConnSpec::child_ts`])
    /// or selector pairs (IKEv1) this is.
    pub pair: usize,
}
