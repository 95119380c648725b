//! Several CHILD SAs per IKE SA, and several connections between the same
//! two gateways (RFC 7296 §1.3.1, §2.9).
//!
//! ```text
//! HDR, SK {SA, Ni, [KEi,] TSi, TSr}  -->
//!                           <--  HDR, SK {SA, Nr, [KEr,] TSi, TSr}
//! ```
//!
//! A connection's first CHILD SA comes with IKE_AUTH; its others
//! ([`ConnSpec::children`]) follow as CREATE_CHILD_SA exchanges that the
//! initiator queues behind each other. Each is numbered (`pair`, as
//! IKEv1's selector pairs are), gets its own data plane slot, and rekeys
//! and is deleted on its own.
//!
//! As responder, the connection is chosen in IKE_AUTH, once the peer's
//! identity is known: among the connections with the SA's addresses, the
//! one whose remote ID is the peer's IDi (and whose local ID is the IDr
//! the peer asks for, if any) and one of whose CHILD SAs' selectors meet
//! the proposed TSi/TSr (IKE_SA_INIT only had addresses and proposals to go
//! by). A CREATE_CHILD_SA for a new CHILD SA must meet one of the IKE SA's
//! own connection's CHILD SAs: one that would need another connection (as
//! strongSwan allows when the peer ID and addresses are the same) is
//! refused with TS_UNACCEPTABLE; configure that CHILD SA as a
//! `[[conn.child]]` of the same connection instead.

use super::*;
use ikeda_crypto::ike::DhGroup;

/// How well proposed selectors meet configured ones: all of them inside
/// (2), narrowed (1), not at all (0).
fn fit(proposed: &[TsRange], narrowed: &[TsRange]) -> u8 {
    if narrowed.is_empty() {
        0
    } else if proposed.iter().all(|p| narrowed.contains(p)) {
        2
    } else {
        1
    }
}

/// The CHILD SA of `c` that the initiator's TSi/TSr select (§2.9): the one
/// that holds them whole, else the first that narrows them; with the
/// narrowed (local, remote) selectors. TSi is the peer's side.
pub(crate) fn pick_child(
    c: &ConnSpec,
    tsi: &[TsRange],
    tsr: &[TsRange],
) -> Option<(usize, Vec<TsRange>, Vec<TsRange>)> {
    let mut best: Option<(u8, usize, Vec<TsRange>, Vec<TsRange>)> = None;
    for pair in 0..c.child_count() {
        let Some((local, remote)) = c.child_ts(pair) else {
            continue;
        };
        let remote_ts = narrow(tsi, remote);
        let local_ts = narrow(tsr, local);
        let score = fit(tsi, &remote_ts).min(fit(tsr, &local_ts));
        if score > best.as_ref().map_or(0, |b| b.0) {
            best = Some((score, pair, local_ts, remote_ts));
        }
    }
    best.map(|(_, pair, l, r)| (pair, l, r))
}

/// The ESP proposals to offer with a KEi of `group`: §1.3 wants the KEi of
/// the group the responder is expected to pick, so that group goes first in
/// every proposal that has it, and the proposals without it go last.
pub(super) fn child_offer(esp: &[ChildProposal], group: Option<DhGroup>) -> Vec<Vec<CTransform>> {
    match group {
        Some(g) => {
            let (with, without): (Vec<&ChildProposal>, Vec<&ChildProposal>) =
                esp.iter().partition(|p| p.dh.contains(&g));
            with.iter()
                .filter_map(|p| p.with_group_first(g))
                .chain(without.into_iter().cloned())
                .map(|p| p.transforms())
                .collect()
        }
        None => esp.iter().map(|p| p.transforms()).collect(),
    }
}

/// What [`Engine::child_request`] prepared: our new inbound SPI, Ni, KEi
/// (for PFS) and the request's payloads.
pub(super) type ChildRequest = (u32, Vec<u8>, Option<KeyExchange>, Vec<Payload>);

impl Engine {
    /// Queue a CREATE_CHILD_SA for each CHILD SA of the connection beyond
    /// the first (IKE_AUTH's): they run one after another.
    pub(super) fn create_other_children(&mut self, idx: SaId, now: Millis) {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        for pair in 1..self.conns[conn].child_count() {
            if !self.queue(idx, Work::CreateChild { pair }, now) {
                let name = self.conns[conn].child_name(pair).to_string();
                self.fail(
                    conn,
                    Failure::Local(format!(
                        "CHILD_SA '{name}' not created: {} tasks queued already",
                        crate::task::MAX_QUEUED
                    )),
                );
            }
        }
    }

    /// Start the CREATE_CHILD_SA of CHILD SA `pair`, with PFS when the ESP
    /// proposals name a group (the first one, as for a rekey).
    pub(super) fn start_create_child(&mut self, idx: SaId, pair: usize, now: Millis) -> Result<(), String> {
        let conn = self.sas.get(idx).ok_or("gone")?.conn;
        let group = self.conns[conn]
            .esp_proposals
            .iter()
            .find_map(|p| p.dh.first().copied());
        self.send_create_child(idx, pair, group, false, now)
    }

    /// CREATE_CHILD_SA { SA, Ni, [KEi,] TSi, TSr } for CHILD SA `pair`;
    /// `retry`: this answers the peer's INVALID_KE_PAYLOAD.
    pub(super) fn send_create_child(
        &mut self,
        idx: SaId,
        pair: usize,
        group: Option<DhGroup>,
        retry: bool,
        now: Millis,
    ) -> Result<(), String> {
        let sa = self.sas.get(idx).ok_or("gone")?;
        let conn = sa.conn;
        let c = &self.conns[conn];
        let (local_ts, remote_ts) = c.child_ts(pair).ok_or("no such CHILD SA in the connection")?;
        let (local_ts, remote_ts) = (local_ts.to_vec(), remote_ts.to_vec());
        let name = c.child_name(pair).to_string();
        let (new_spi, ni, ke, payloads) = self.child_request(conn, group, &local_ts, &remote_ts)?;
        let task = Pending::CreateChild {
            pair,
            new_spi_in: new_spi,
            ni,
            ke,
            retry,
        };
        self.send_encrypted_request(idx, ExchangeType::CREATE_CHILD_SA, payloads, task, now)?;
        self.log(conn, format!("creating CHILD_SA '{name}'"));
        Ok(())
    }

    /// A fresh inbound SPI, Ni and (with `group`) KEi, and the payloads of
    /// a CREATE_CHILD_SA request for a CHILD SA with these selectors,
    /// `{SA, Ni, [KEi,] TSi, TSr}` (§1.3.1; a rekey puts N(REKEY_SA) first).
    pub(super) fn child_request(
        &mut self,
        conn: ConnId,
        group: Option<DhGroup>,
        local_ts: &[TsRange],
        remote_ts: &[TsRange],
    ) -> Result<ChildRequest, String> {
        let new_spi = self.random_spi32();
        let ni = self.nonce();
        let ke = match group {
            Some(g) => Some(KeyExchange::generate(g, &mut *self.rng).map_err(|e| e.to_string())?),
            None => None,
        };
        let offer = child_offer(&self.conns[conn].esp_proposals, group);
        let mut payloads = vec![
            Payload::Sa(proposals_payload(ProtocolId::ESP, &new_spi.to_be_bytes(), &offer)),
            Payload::Nonce(NoncePayload { nonce: ni.clone() }),
        ];
        #[cfg(test)]
        let ke_sent = ke.as_ref().filter(|_| !self.omits_ke);
        #[cfg(not(test))]
        let ke_sent = ke.as_ref();
        if let Some(k) = ke_sent {
            payloads.push(Payload::Ke(KePayload {
                dh_group: ikeda_wire::ikev2::DhGroup(k.group().transform_id()),
                data: k.public_value().to_vec(),
            }));
        }
        payloads.push(Payload::TsI(ts_payload(local_ts)));
        payloads.push(Payload::TsR(ts_payload(remote_ts)));
        Ok((new_spi, ni, ke, payloads))
    }

    /// The answer to our CREATE_CHILD_SA for CHILD SA `pair`.
    pub(super) fn child_created(
        &mut self,
        idx: SaId,
        now: Millis,
        inner: &[Payload],
        (pair, spi_in, retried): (usize, u32, bool),
        ni: Vec<u8>,
        our_ke: Option<KeyExchange>,
    ) {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        let c = self.conns[conn].clone();
        let name = c.child_name(pair).to_string();
        let (local, remote) = c.child_ts(pair).unwrap_or((&[], &[]));
        if let Some(n) = first_error_notify(inner) {
            let wanted = n.invalid_ke_group().and_then(|g| DhGroup::from_transform_id(g.0));
            let why = match n.notify_type {
                NotifyType::INVALID_KE_PAYLOAD => match wanted {
                    // §1.3: again with a KEi of the group the peer names,
                    // once, if we offered it.
                    Some(g)
                        if !retried
                            && our_ke.as_ref().map(|k| k.group()) != Some(g)
                            && c.esp_proposals.iter().any(|p| p.dh.contains(&g)) =>
                    {
                        self.log(
                            conn,
                            format!(
                                "peer wants key exchange group {} for CHILD_SA '{name}', retrying",
                                g.name()
                            ),
                        );
                        if let Err(e) = self.send_create_child(idx, pair, Some(g), true, now) {
                            self.fail(conn, Failure::Local(format!("creating CHILD_SA '{name}': {e}")));
                        }
                        return;
                    }
                    _ => Failure::PeerRefused {
                        exchange: Some("CREATE_CHILD_SA"),
                        notify: n.notify_type.to_string(),
                    },
                },
                NotifyType::NO_PROPOSAL_CHOSEN => Failure::PeerRejectedProposals {
                    exchange: "CREATE_CHILD_SA (new CHILD SA)",
                    offered: c.esp_proposals.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
                },
                NotifyType::TS_UNACCEPTABLE => Failure::TsUnacceptable {
                    ours_local: ts_list(local),
                    ours_remote: ts_list(remote),
                    theirs_i: "(refused by the peer)".into(),
                    theirs_r: String::new(),
                },
                t => Failure::PeerRefused {
                    exchange: Some("CREATE_CHILD_SA"),
                    notify: t.to_string(),
                },
            };
            self.log(conn, format!("CHILD_SA '{name}' not created: {why}"));
            self.fail(conn, why);
            return;
        }
        let sa_payload = first!(inner, Payload::Sa(s) if s.proposals.len() == 1 => s.proposals[0].clone());
        let nr = first!(inner, Payload::Nonce(n) => n.nonce.clone());
        let ke = first!(inner, Payload::Ke(k) => k.data.clone());
        let ke_group = first!(inner, Payload::Ke(k) => k.dh_group.0);
        let (suite, spi_out, nr, pfs) = match self.child_reply(conn, sa_payload, nr, ke, ke_group, our_ke.as_ref()) {
            Ok(x) => x,
            Err(why) => {
                let why = Failure::PeerMisbehaved(format!("CHILD_SA '{name}': {why}"));
                self.fail(conn, why);
                return;
            }
        };
        // TSi is ours, TSr the peer's: within what we asked for (§2.9).
        let tsi = first!(inner, Payload::TsI(t) => ranges(t)).unwrap_or_default();
        let tsr = first!(inner, Payload::TsR(t) => ranges(t)).unwrap_or_default();
        let (local_ts, remote_ts) = (narrow(&tsi, local), narrow(&tsr, remote));
        if local_ts.is_empty() || remote_ts.is_empty() {
            self.fail(
                conn,
                Failure::TsUnacceptable {
                    ours_local: ts_list(local),
                    ours_remote: ts_list(remote),
                    theirs_i: ts_list(&tsi),
                    theirs_r: ts_list(&tsr),
                },
            );
            // The peer installed it: it goes, so that no side keeps it.
            self.queue(idx, Work::DeleteChild { spi_in }, now);
            return;
        }
        self.install_child(
            idx,
            now,
            NewChild {
                suite,
                spi_in,
                spi_out,
                local_ts,
                remote_ts,
                ni,
                nr,
                pfs,
                role: Role::Initiator,
                replaces: None,
                activate: true,
                rekey_of: None,
                pair,
            },
        );
    }

    /// IKE_AUTH (responder): set the SA's connection, now that the peer's
    /// identity and selectors are known (IKE_SA_INIT went by addresses and
    /// proposals only); that connection's PSK verifies AUTH next, so the
    /// choice is authenticated with it. Returns the request's TSi and TSr.
    pub(super) fn choose_conn(&mut self, idx: SaId, inner: &[Payload]) -> (Option<Vec<TsRange>>, Option<Vec<TsRange>>) {
        let tsi = first!(inner, Payload::TsI(t) => ranges(t));
        let tsr = first!(inner, Payload::TsR(t) => ranges(t));
        let chosen = first!(inner, Payload::IdI(i) => i.clone()).and_then(|idi| {
            let idr = first!(inner, Payload::IdR(i) => i.clone());
            let ts = tsi.as_deref().zip(tsr.as_deref());
            self.select_conn(idx, &idi, idr.as_ref(), ts)
        });
        if let (Some(sa), Some(i)) = (self.sas.get_mut(idx), chosen) {
            sa.conn = i;
        }
        (tsi, tsr)
    }

    /// The CHILD SA a CREATE_CHILD_SA request is for, with the narrowed
    /// (local, remote) selectors: a rekey keeps to the selectors of the
    /// CHILD SA `old` it replaces; a new CHILD SA is whichever of the
    /// connection's the selectors pick (§2.9), never another connection's.
    pub(super) fn requested_child(
        &self,
        idx: SaId,
        old: Option<u32>,
        tsi: &[TsRange],
        tsr: &[TsRange],
    ) -> (usize, Vec<TsRange>, Vec<TsRange>) {
        let Some(sa) = self.sas.get(idx) else {
            return Default::default();
        };
        let c = &self.conns[sa.conn];
        let old_pair = old.and_then(|o| sa.children.iter().find(|ch| ch.spi_in == o).map(|ch| ch.pair));
        match old_pair.map(|p| (p, c.child_ts(p))) {
            Some((p, Some((l, r)))) => (p, narrow(tsr, l), narrow(tsi, r)),
            _ => pick_child(c, tsi, tsr).unwrap_or_default(),
        }
    }

    /// The connection an IKE_AUTH request is for (responder): of those
    /// with the SA's addresses that accept its IKE suite, the one whose
    /// remote ID is the peer's IDi and whose local ID is the IDr asked for
    /// (if any), preferring one
    /// whose CHILD SAs meet the proposed selectors. `None`: no connection
    /// accepts this identity.
    pub(super) fn select_conn(
        &self,
        idx: SaId,
        idi: &IdPayload,
        idr: Option<&IdPayload>,
        ts: Option<(&[TsRange], &[TsRange])>,
    ) -> Option<ConnId> {
        let sa = self.sas.get(idx)?;
        // The suite IKE_SA_INIT chose (by another connection's proposals,
        // perhaps) must be one this connection accepts too: choosing a
        // connection in IKE_AUTH must not get round its IKE proposals.
        let suite = sa.suite.map(|s| IkeProposal {
            encr: vec![s.encr],
            integ: s.integ.into_iter().collect(),
            prf: vec![s.prf],
            dh: vec![s.dh],
        })?;
        let candidates: Vec<ConnId> = self
            .conns
            .live()
            .filter(|&i| {
                let c = &self.conns[i];
                c.remote == sa.remote.ip()
                    && (c.local == sa.local.ip() || sa.local.ip().is_unspecified())
                    && c.remote_id == *idi
                    && idr.is_none_or(|r| *r == c.local_id)
                    && c.ike_proposals.iter().any(|o| o.select(&suite).is_some())
            })
            .collect();
        // The connection IKE_SA_INIT chose first, when it fits as well.
        let order = || {
            candidates
                .iter()
                .copied()
                .filter(|&i| i == sa.conn)
                .chain(candidates.iter().copied().filter(|&i| i != sa.conn))
        };
        ts.and_then(|(tsi, tsr)| order().find(|&i| pick_child(&self.conns[i], tsi, tsr).is_some()))
            .or_else(|| order().next())
    }
}
