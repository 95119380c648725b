//! What the IKEv1 engine can tell about its SAs, in the IKEv2 engine's
//! view types so `ikeda show` and `status` treat both alike. A phase-1
//! SA's "SPIs" are its cookies; the IPsec SAs belong to the connection
//! and are listed under its newest phase-1 SA.

use super::{Engine, P1State, SaId};
use crate::view::{ChildSaView, IkeSaView, IkeState};
use crate::ConnId;

impl Engine {
    /// Every phase-1 SA, half-open ones included, with the connection's
    /// IPsec SAs under the newest one.
    pub fn ike_sas(&self) -> Vec<IkeSaView> {
        let mut out: Vec<IkeSaView> = Vec::new();
        let mut listed = vec![false; self.conns.len()];
        let mut order: Vec<SaId> = self.sas.ids().filter(|&i| self.sas.contains(i)).collect();
        // Newest first, so the IPsec SAs go under the current phase-1 SA.
        order.sort_by_key(|&i| std::cmp::Reverse(self.sas.get(i).map(|s| s.created)));
        for i in order {
            let Some(s) = self.sas.get(i) else { continue };
            let c = &self.conns[s.conn];
            let state = match s.state {
                P1State::Established if s.superseded => IkeState::Rekeyed,
                P1State::Established => IkeState::Established,
                _ => IkeState::Connecting,
            };
            let children = if !listed[s.conn] && s.state == P1State::Established {
                listed[s.conn] = true;
                self.child_views(s.conn)
            } else {
                Vec::new()
            };
            out.push(IkeSaView {
                conn: c.spec.name.clone(),
                version: 1,
                spi_i: s.icookie,
                spi_r: s.rcookie,
                initiator: s.initiator,
                state,
                local: s.local,
                remote: s.remote,
                suite: s.choice.map(|x| x.suite()),
                established_at: s.established_at,
                rekey_at: s.rekey_at,
                // A half-open SA's end is its half-open deadline.
                expire_at: s.expire_at.or(s.tm.half_open_until()),
                nat: s.nat_local || s.nat_remote,
                behind_nat: s.nat_local,
                pending: s.tm.current().map(|(_, what, _)| what),
                sends: s.tm.current().map_or(0, |(_, _, sends)| sends),
                tries: self.policy.tries,
                dpd_delay_ms: if s.peer_dpd || s.state != P1State::Established {
                    c.spec.timers.dpd_delay.as_millis() as u64
                } else {
                    0
                },
                last_heard: s.last_heard,
                dpd_checking: s.dpd.check.is_some(),
                children,
                dpd_supported: s.peer_dpd,
            });
        }
        // IPsec SAs whose phase-1 SA is gone (IKEv1 allows that) are still shown.
        for (ci, done) in self.conns.ids().zip(&listed) {
            if !done && !self.children[ci].is_empty() {
                if let Some(v) = out.iter_mut().find(|v| v.conn == self.conns[ci].spec.name) {
                    v.children = self.child_views(ci);
                }
            }
        }
        out
    }

    fn child_views(&self, ci: ConnId) -> Vec<ChildSaView> {
        self.children[ci]
            .iter()
            .map(|ch| ChildSaView {
                spi_in: ch.spi_in,
                spi_out: ch.spi_out,
                suite: ch.suite,
                local_ts: vec![ch.local_ts],
                remote_ts: vec![ch.remote_ts],
                installed_at: ch.installed_at,
                rekey_at: ch.rekey_at,
                expire_at: ch.expire_at,
                udp_encap: ch.udp_encap,
                active: ch.active,
                rekeyed: ch.rekeyed,
                ipcomp: ch.ipcomp,
                pair: ch.pair,
            })
            .collect()
    }

    /// IPsec SAs without any phase-1 SA to list them under.
    pub fn orphan_children(&self) -> Vec<(String, Vec<ChildSaView>)> {
        self.conns
            .ids()
            .filter(|&ci| !self.children[ci].is_empty())
            .filter(|&ci| !self.sas.iter().any(|s| s.conn == ci))
            .map(|ci| (self.conns[ci].spec.name.clone(), self.child_views(ci)))
            .collect()
    }
}
