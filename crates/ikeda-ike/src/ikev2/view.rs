//! What the engine can tell about its SAs, for `ikeda show` and `status`,
//! and the changes a configuration reload makes to its connections.
//!
//! The views are copies taken at one moment; nothing in them is secret.

use super::{Engine, Event, IkeKeyInfo, Pending, State};
use crate::Millis;
use ikeda_crypto::ike::{ChildSuite, IkeSuite};
use ikeda_wire::ikev2::TsRange;
use std::net::SocketAddr;

use super::ConnSpec;

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
    pub pending: Option<&'static str>,
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
}

impl Engine {
    /// Every IKE SA with its CHILD SAs, half-open ones included.
    pub fn ike_sas(&self) -> Vec<IkeSaView> {
        self.sas
            .iter()
            .flatten()
            .map(|s| {
                let state = match s.state {
                    State::InitSent | State::AuthSent | State::InitAnswered => IkeState::Connecting,
                    State::Established if s.superseded => IkeState::Rekeyed,
                    State::Established => IkeState::Established,
                    State::Deleting => IkeState::Deleting,
                };
                let c = &self.conns[s.conn];
                IkeSaView {
                    conn: c.name.clone(),
                    version: 2,
                    spi_i: s.spi_i,
                    spi_r: s.spi_r,
                    initiator: s.initiator,
                    state,
                    local: s.local,
                    remote: s.remote,
                    suite: s.suite,
                    established_at: s.established_at,
                    rekey_at: s.rekey_at,
                    // A half-open SA's end is its half-open deadline.
                    expire_at: s.expire_at.or(s.tm.half_open_until()),
                    nat: s.nat,
                    behind_nat: s.us_nat,
                    pending: s.tm.current().map(|(_, what, _)| what),
                    sends: s.tm.current().map_or(0, |(_, _, sends)| sends),
                    tries: self.policy.tries,
                    dpd_delay_ms: c.timers.dpd_delay.as_millis() as u64,
                    last_heard: s.last_heard,
                    dpd_checking: matches!(s.tm.current(), Some((Pending::Liveness, _, _))),
                    children: s
                        .children
                        .iter()
                        .map(|ch| ChildSaView {
                            spi_in: ch.spi_in,
                            spi_out: ch.spi_out,
                            suite: ch.suite,
                            local_ts: ch.local_ts.clone(),
                            remote_ts: ch.remote_ts.clone(),
                            installed_at: ch.installed_at,
                            rekey_at: ch.rekey_at,
                            expire_at: ch.expire_at,
                            udp_encap: ch.udp_encap,
                            active: ch.active,
                            rekeyed: ch.rekeyed,
                            ipcomp: None,
                        })
                        .collect(),
                    dpd_supported: true,
                }
            })
            .collect()
    }

    /// The configuration of a live connection.
    pub fn conn(&self, name: &str) -> Option<&ConnSpec> {
        self.conn_index(name).map(|i| &self.conns[i])
    }

    /// Add a connection, or replace the one of the same name. Its SAs are
    /// not touched: a reload terminates them first when the connection
    /// changed.
    pub fn set_conn(&mut self, spec: ConnSpec) {
        match self.conn_index(&spec.name) {
            Some(i) => self.conns[i] = spec,
            None => {
                self.conns.push(spec);
                self.retired.resize(self.conns.len(), false);
            }
        }
    }

    /// Take a connection out of service (after terminating its SAs): it is
    /// never initiated or matched again.
    pub fn retire_conn(&mut self, name: &str) {
        if let Some(i) = self.conn_index(name) {
            self.retired.resize(self.conns.len(), false);
            self.retired[i] = true;
        }
    }

    /// Tell the caller the keys of a freshly keyed IKE SA (key export).
    pub(super) fn keys_derived(&mut self, idx: usize) {
        let Some(sa) = self.sas[idx].as_ref() else { return };
        let (Some(suite), Some(keys)) = (sa.suite, sa.keys.as_ref()) else {
            return;
        };
        self.events.push_back(Event::IkeSaKeys(IkeKeyInfo {
            conn: self.conns[sa.conn].name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            initiator: sa.initiator,
            suite,
            keys: keys.clone(),
            local: sa.local,
            remote: sa.remote,
        }));
    }
}

#[cfg(test)]
impl Engine {
    /// Tests only: (Ni, Nr) of the CREATE_CHILD_SA exchange that made the
    /// CHILD SA with this inbound SPI, to recompute its KEYMAT (§2.17).
    pub(crate) fn child_nonces(&self, spi_in: u32) -> Option<(Vec<u8>, Vec<u8>)> {
        self.sas
            .iter()
            .flatten()
            .flat_map(|s| s.children.iter())
            .find(|c| c.spi_in == spi_in)
            .and_then(|c| c.nonces.clone())
    }
}
