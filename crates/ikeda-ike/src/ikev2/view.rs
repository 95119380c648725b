//! What the engine can tell about its SAs, for `ikeda show` and `status`
//! (in the shared view types of [`crate::view`]), and the changes a
//! configuration reload makes to its connections.

use super::ConnSpec;
use super::{ChildSaView, Engine, Event, IkeKeyInfo, IkeSaView, IkeState, Pending, SaId, State};

impl Engine {
    /// Every IKE SA with its CHILD SAs, half-open ones included.
    pub fn ike_sas(&self) -> Vec<IkeSaView> {
        self.sas
            .iter()
            .map(|s| {
                let state = match s.state {
                    State::InitSent | State::AuthSent | State::InitAnswered => IkeState::Connecting,
                    State::Replaced => IkeState::Rekeyed,
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
                            pair: ch.pair,
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
        self.conns.set(spec);
    }

    /// Take a connection out of service (after terminating its SAs): it is
    /// never initiated or matched again.
    pub fn retire_conn(&mut self, name: &str) {
        self.conns.retire(name);
    }

    /// Tell the caller the keys of a freshly keyed IKE SA (key export).
    pub(super) fn keys_derived(&mut self, idx: SaId) {
        let Some(sa) = self.sas.get(idx) else { return };
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
            .flat_map(|s| s.children.iter())
            .find(|c| c.spi_in == spi_in)
            .and_then(|c| c.nonces.clone())
    }
}
