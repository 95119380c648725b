//! Lifetimes: CREATE_CHILD_SA for rekeying CHILD SAs (RFC 7296 §1.3.3)
//! and the IKE SA (§1.3.2; that exchange is in `ike_rekey.rs`),
//! simultaneous rekeys (§2.8.1), hard expiry, and liveness checks for dead
//! peer detection (§2.4). Both kinds of CREATE_CHILD_SA arrive here first.
//!
//! ```text
//! CHILD SA rekey:
//! HDR, SK {N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr}  -->
//!                           <--  HDR, SK {SA, Nr, [KEr,] TSi, TSr}
//! HDR, SK {D(old)}  -->     <--  HDR, SK {D(old)}
//!
//! IKE SA rekey:
//! HDR, SK {SA, Ni, KEi}  -->
//!                           <--  HDR, SK {SA, Nr, KEr}
//! HDR(old), SK {D}  -->     <--  HDR(old), SK {}
//! ```
//!
//! Make-before-break: the initiator of a CHILD rekey sends on the new SA at
//! once and deletes the old one; the responder installs the new inbound SA
//! at once but keeps sending on the old one until that DELETE arrives, by
//! which time the initiator surely has its inbound SA.
//!
//! Collisions (§2.8.1): when both ends rekey the same CHILD SA at once, the
//! new SA whose exchange holds the lowest of the four nonces is redundant
//! and deleted by the end that created it; the end that created the
//! survivor deletes the old SA.

use super::*;
use ikeda_crypto::ike::DhGroup;

impl Engine {
    pub(super) fn heard(&mut self, idx: SaId, now: Millis) {
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.last_heard = sa.last_heard.max(now);
        }
    }

    /// The old SA `old_spi_in` is gone: start sending on its replacement.
    pub(super) fn activate_replacement(&mut self, idx: SaId, old_spi_in: u32) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let conn = self.conns[sa.conn].name.clone();
        for c in sa
            .children
            .iter_mut()
            .filter(|c| c.rekey_of == Some(old_spi_in) && !c.active)
        {
            c.active = true;
            self.events.push_back(Event::ChildSaActivate {
                conn: conn.clone(),
                spi_in: c.spi_in,
            });
        }
    }

    /// Rekey the connection's (first) CHILD SA now (tests; the control
    /// socket): started at once, or when the exchange in flight is done.
    /// With several CHILD SAs, the connection's own (`pair` 0) if it is up:
    /// a rekey appends the new SA behind the others.
    pub fn rekey_child(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        let idx = self.established(conn)?;
        let spi_in = self
            .sas
            .get(idx)
            .and_then(|s| {
                let live = || s.children.iter().filter(|c| !c.rekeyed);
                live().find(|c| c.pair == 0).or_else(|| live().next()).map(|c| c.spi_in)
            })
            .ok_or_else(|| format!("'{conn}' has no CHILD SA"))?;
        self.queue_asked(idx, Work::RekeyChild { spi_in }, now)
    }

    /// Rekey the CHILD SA with this inbound SPI (byte lifetimes: the data
    /// plane counts, the caller asks): true if it is started or queued,
    /// false if there is no such CHILD SA not rekeyed already.
    pub fn rekey_child_spi(&mut self, conn: &str, spi_in: u32, now: Millis) -> bool {
        let Ok(idx) = self.established(conn) else { return false };
        if !self
            .sas
            .get(idx)
            .is_some_and(|s| s.children.iter().any(|c| c.spi_in == spi_in && !c.rekeyed))
        {
            return false;
        }
        self.queue_asked(idx, Work::RekeyChild { spi_in }, now).is_ok()
    }

    /// Delete the CHILD SA with this inbound SPI (hard byte lifetime): true
    /// if it is started or queued.
    pub fn delete_child_spi(&mut self, conn: &str, spi_in: u32, now: Millis) -> bool {
        let Ok(idx) = self.established(conn) else { return false };
        if !self
            .sas
            .get(idx)
            .is_some_and(|s| s.children.iter().any(|c| c.spi_in == spi_in))
        {
            return false;
        }
        self.queue_asked(idx, Work::DeleteChild { spi_in }, now).is_ok()
    }

    /// Rekey the connection's IKE SA now, or when the exchange in flight is done.
    pub fn rekey_ike(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        let idx = self.established(conn)?;
        // Disarm the lifetime timer before queuing: the rekey may start at
        // once, and if it fails to start it arms the 10 s retry itself.
        let armed = self.sas.get_mut(idx).and_then(|sa| sa.rekey_at.take());
        if let Err(e) = self.queue_asked(idx, Work::RekeyIke, now) {
            // Not queued: the lifetime timer still stands.
            if let Some(sa) = self.sas.get_mut(idx) {
                sa.rekey_at = armed;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Queue work the caller asked for (it starts at once if the window is free).
    fn queue_asked(&mut self, idx: SaId, work: Work, now: Millis) -> Result<(), String> {
        if self.queue(idx, work, now) {
            Ok(())
        } else {
            Err(format!(
                "{} tasks are queued on this IKE SA already",
                crate::task::MAX_QUEUED
            ))
        }
    }

    fn established(&self, conn: &str) -> Result<SaId, String> {
        self.sas
            .find(|s| self.conns[s.conn].name == conn && s.state == State::Established)
            .ok_or_else(|| format!("no established IKE SA for '{conn}'"))
    }

    /// Timers of an established IKE SA: each lifetime that ran out queues
    /// its work and is disarmed (a failed rekey arms it again); a liveness
    /// check is due after `dpd_delay` of silence with nothing in flight.
    pub(super) fn lifetimes(&mut self, idx: SaId, now: Millis) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        if sa.state != State::Established {
            return;
        }
        let conn = sa.conn;
        let t = self.conns[conn].timers;
        let due = |at: &mut Option<Millis>| at.take_if(|e| now >= *e).is_some();
        let mut lines = Vec::new();
        let mut work = Vec::new();
        if due(&mut sa.expire_at) {
            lines.push("IKE_SA hard lifetime reached: deleting it".to_string());
            sa.tm.queue_first(Work::DeleteIke);
        }
        for c in sa.children.iter_mut() {
            if due(&mut c.expire_at) {
                lines.push(format!(
                    "CHILD_SA {:08x}_i hard lifetime reached: deleting it",
                    c.spi_in
                ));
                work.push(Work::DeleteChild { spi_in: c.spi_in });
            }
        }
        if due(&mut sa.rekey_at) {
            work.push(Work::RekeyIke);
        }
        for c in sa.children.iter_mut().filter(|c| !c.rekeyed) {
            if due(&mut c.rekey_at) {
                work.push(Work::RekeyChild { spi_in: c.spi_in });
            }
        }
        if !t.dpd_delay.is_zero() && now >= sa.last_heard + t.dpd_delay && !sa.tm.busy() {
            work.push(Work::Liveness);
        }
        for w in work {
            if !sa.tm.queue(w) {
                lines.push(format!(
                    "{w:?} dropped: {} tasks queued already",
                    crate::task::MAX_QUEUED
                ));
            }
        }
        for line in lines {
            self.log(conn, line);
        }
        self.activate_next(idx, now);
    }

    pub(super) fn start_child_rekey(&mut self, idx: SaId, pos: usize, now: Millis) -> Result<(), String> {
        let sa = self.sas.get(idx).ok_or("gone")?;
        let child = sa.children.get(pos).ok_or("no such CHILD SA")?;
        // PFS (RFC 7296 §1.3.3, §2.17): the group the old SA used if it is
        // still configured, else the first configured one (strongSwan
        // does the same); the CHILD SA from IKE_AUTH has none (§1.2).
        let esp = &self.conns[sa.conn].esp_proposals;
        let group = child
            .suite
            .dh
            .filter(|g| esp.iter().any(|p| p.dh.contains(g)))
            .or_else(|| esp.iter().find_map(|p| p.dh.first().copied()));
        self.send_child_rekey(idx, pos, group, false, now)
    }

    /// CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr } for the CHILD
    /// SA at `pos`, with a KEi of `group`; `retry`: this answers the peer's
    /// INVALID_KE_PAYLOAD (one retry per rekey).
    fn send_child_rekey(
        &mut self,
        idx: SaId,
        pos: usize,
        group: Option<DhGroup>,
        retry: bool,
        now: Millis,
    ) -> Result<(), String> {
        let sa = self.sas.get(idx).ok_or("gone")?;
        let conn = sa.conn;
        let child = sa.children.get(pos).ok_or("no such CHILD SA")?;
        let old = child.spi_in;
        let (local_ts, remote_ts) = (child.local_ts.clone(), child.remote_ts.clone());
        let (new_spi, ni, ke, mut payloads) = self.child_request(conn, group, &local_ts, &remote_ts)?;
        payloads.insert(
            0,
            Payload::Notify(NotifyPayload::for_child_sa(
                NotifyType::REKEY_SA,
                ProtocolId::ESP,
                old,
                vec![],
            )),
        );
        let task = Pending::RekeyChild {
            old_spi_in: old,
            new_spi_in: new_spi,
            ni,
            ke,
            retry,
        };
        self.send_encrypted_request(idx, ExchangeType::CREATE_CHILD_SA, payloads, task, now)?;
        let sa = self.sas.get_mut(idx).ok_or("gone")?;
        sa.children[pos].rekeyed = true;
        let pfs = group.map_or(String::new(), |g| format!(" (PFS with {})", g.name()));
        self.log(conn, format!("rekeying CHILD_SA {old:08x}_i{pfs}"));
        Ok(())
    }

    /// A CREATE_CHILD_SA response to our request, the exchange `pending`.
    pub(super) fn create_child_response(
        &mut self,
        idx: SaId,
        now: Millis,
        header: &HeaderRepr,
        inner: Vec<Payload>,
        pending: Pending,
    ) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let conn = sa.conn;
        let remote = sa.remote;
        self.log(conn, format!("received {} from {remote}", summary(header, &inner)));
        let reply = CreateChildReply {
            sa: first!(inner, Payload::Sa(s) if s.proposals.len() == 1 => s.proposals[0].clone()),
            nr: first!(inner, Payload::Nonce(n) => n.nonce.clone()),
            ke: first!(inner, Payload::Ke(k) => k.data.clone()),
            ke_group: first!(inner, Payload::Ke(k) => k.dh_group.0),
            error: first_error_notify(&inner).map(|n| n.notify_type),
            wanted_group: first!(inner, Payload::Notify(n) => n.invalid_ke_group()).flatten(),
        };
        match pending {
            Pending::RekeyChild {
                old_spi_in,
                new_spi_in,
                ni,
                ke: our_ke,
                retry: retried,
            } => {
                let asked = ChildRekeyAsked {
                    old_spi_in,
                    new_spi_in,
                    ni,
                    our_ke,
                    retried,
                };
                self.child_rekey_response(idx, now, conn, reply, asked);
            }
            Pending::RekeyIke {
                new_spi_i,
                ni,
                ke: our_ke,
            } => {
                let ours = self.ike_rekey_reply(idx, conn, reply, new_spi_i, ni, our_ke);
                self.ike_rekey_done(idx, now, ours);
            }
            Pending::CreateChild {
                pair,
                new_spi_in,
                ni,
                ke,
                retry,
            } => self.child_created(idx, now, &inner, (pair, new_spi_in, retry), ni, ke),
            _ => {}
        }
    }

    /// Our CHILD rekey failed: try again in 10 s.
    fn child_rekey_retry(&mut self, idx: SaId, conn: ConnId, old_spi_in: u32, now: Millis, why: String) {
        self.log(conn, format!("CHILD_SA rekey failed ({why}); retrying in 10 s"));
        if let Some(ch) = self
            .sas
            .get_mut(idx)
            .and_then(|s| s.children.iter_mut().find(|c| c.spi_in == old_spi_in))
        {
            ch.rekeyed = false;
            ch.rekey_at = Some(now + Duration::from_secs(10));
        }
    }

    /// The answer to our CHILD rekey (§1.3.3): the new SA replaces the old.
    fn child_rekey_response(
        &mut self,
        idx: SaId,
        now: Millis,
        conn: ConnId,
        reply: CreateChildReply,
        asked: ChildRekeyAsked,
    ) {
        let c = self.conns[conn].clone();
        let error = reply.error;
        if error == Some(NotifyType::INVALID_KE_PAYLOAD) {
            return self.child_rekey_invalid_ke(idx, now, conn, &asked, reply.wanted_group);
        }
        let ChildRekeyAsked {
            old_spi_in,
            new_spi_in,
            ni,
            our_ke,
            ..
        } = asked;
        if error == Some(NotifyType::NO_PROPOSAL_CHOSEN) {
            // Named in `status`: a PFS group on one side only ends
            // here, and the old SA only lives until its hard lifetime.
            self.fail(
                conn,
                Failure::PeerRejectedProposals {
                    exchange: "CREATE_CHILD_SA (CHILD rekey)",
                    offered: c.esp_proposals.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
                },
            );
        }
        if let Some(n) = error {
            return self.child_rekey_retry(idx, conn, old_spi_in, now, format!("peer answered {n}"));
        }
        let (suite, spi_out, nr, pfs) =
            match self.child_reply(conn, reply.sa, reply.nr, reply.ke, reply.ke_group, our_ke.as_ref()) {
                Ok(x) => x,
                Err(why) => return self.child_rekey_retry(idx, conn, old_spi_in, now, why),
            };
        let old_ts = self
            .sas
            .get(idx)
            .and_then(|s| s.children.iter().find(|c| c.spi_in == old_spi_in))
            .map(|o| (o.local_ts.clone(), o.remote_ts.clone(), o.pair));
        // The peer deleted the SA we rekeyed while our rekey was in
        // flight and still answered it (§2.25.1 says it should
        // not): the new SA replaces nothing; it is set up only to be
        // deleted, so neither side keeps it.
        let orphan = old_ts.is_none();
        let (local_ts, remote_ts, pair) = old_ts.unwrap_or_else(|| (c.local_ts.clone(), c.remote_ts.clone(), 0));
        if orphan {
            self.log(
                conn,
                format!(
                    "CHILD_SA {old_spi_in:08x}_i was deleted while we rekeyed it: deleting its replacement {new_spi_in:08x}_i"
                ),
            );
        }
        self.install_child(
            idx,
            now,
            NewChild {
                suite,
                spi_in: new_spi_in,
                spi_out,
                local_ts,
                remote_ts,
                ni: ni.clone(),
                nr: nr.clone(),
                pfs,
                role: Role::Initiator,
                replaces: (!orphan).then_some(old_spi_in),
                activate: !orphan,
                rekey_of: None,
                pair,
            },
        );
        if orphan {
            self.queue(idx, Work::DeleteChild { spi_in: new_spi_in }, now);
            return;
        }
        // Remember our nonces on the new SA for collision checks.
        if let Some(ch) = self
            .sas
            .get_mut(idx)
            .and_then(|s| s.children.iter_mut().find(|c| c.spi_in == new_spi_in))
        {
            ch.nonces = Some((ni, nr));
            ch.rekey_of = Some(old_spi_in);
            ch.active = true;
        }
        self.after_child_rekey(idx, old_spi_in, now);
    }

    /// INVALID_KE_PAYLOAD to our CHILD rekey.
    fn child_rekey_invalid_ke(
        &mut self,
        idx: SaId,
        now: Millis,
        conn: ConnId,
        asked: &ChildRekeyAsked,
        wanted_group: Option<ikeda_wire::ikev2::DhGroup>,
    ) {
        let (old_spi_in, retried) = (asked.old_spi_in, asked.retried);
        let our_group = asked.our_ke.as_ref().map(|k| k.group());
        // RFC 7296 §1.3: the responder picked another group and
        // names it; send the request again with a KEi of that
        // group, if we offered it (once: a peer that keeps asking
        // for something else is refused by the 10 s retry).
        let wanted = wanted_group.and_then(|g| DhGroup::from_transform_id(g.0));
        let pos = self
            .sas
            .get(idx)
            .and_then(|s| s.children.iter().position(|c| c.spi_in == old_spi_in));
        match (wanted, pos) {
            (Some(g), Some(pos))
                if !retried
                    && our_group != Some(g)
                    && self.conns[conn].esp_proposals.iter().any(|p| p.dh.contains(&g)) =>
            {
                self.log(
                    conn,
                    format!("peer wants key exchange group {} for the CHILD_SA, retrying", g.name()),
                );
                if let Some(ch) = self.sas.get_mut(idx).and_then(|s| s.children.get_mut(pos)) {
                    ch.rekeyed = false;
                }
                if let Err(e) = self.send_child_rekey(idx, pos, Some(g), true, now) {
                    self.child_rekey_retry(idx, conn, old_spi_in, now, e);
                }
            }
            _ => self.child_rekey_retry(
                idx,
                conn,
                old_spi_in,
                now,
                format!(
                    "peer answered INVALID_KE_PAYLOAD asking for group {}{}",
                    wanted.map_or_else(|| format!("{wanted_group:?}"), |g| g.name().to_string()),
                    if retried { " again" } else { ", which we do not offer" }
                ),
            ),
        }
    }

    /// What a CREATE_CHILD_SA response without an error notify gives for a
    /// CHILD SA (rekeyed or new): the suite, the peer's SPI, Nr and the PFS
    /// secret; or why it is no good.
    pub(super) fn child_reply(
        &mut self,
        conn: ConnId,
        sa_payload: Option<Proposal>,
        nr: Option<Vec<u8>>,
        ke: Option<Vec<u8>>,
        ke_group: Option<u16>,
        our_ke: Option<&KeyExchange>,
    ) -> Result<(ChildSuite, u32, Vec<u8>, Option<SecretBytes>), String> {
        let (Some(p), Some(nr)) = (sa_payload, nr) else {
            return Err("no SA or Nr in the response".into());
        };
        let Some(suite) = self.conns[conn]
            .esp_proposals
            .iter()
            .find_map(|o| o.select(&ChildProposal::from_transforms(&from_wire(&p))))
        else {
            return Err("peer chose a proposal we did not offer".into());
        };
        // §1.3, §2.17: the chosen proposal names the group; KEr must be
        // of it, and so must our KEi. A proposal without a group (we
        // offered one) means no PFS: KEr, if any, is ignored.
        let pfs = match (suite.dh, our_ke, ke) {
            (None, _, _) => None,
            (Some(g), Some(k), Some(theirs)) if k.group() == g && ke_group == Some(g.transform_id()) => Some(
                k.shared_secret(&theirs)
                    .map_err(|e| format!("peer's KE refused: {e}"))?,
            ),
            (Some(g), _, None) => return Err(format!("no KEr for PFS with {}", g.name())),
            (Some(g), _, Some(_)) => {
                return Err(format!(
                    "peer chose {} but our KEi was of {} (or its KEr of another group)",
                    g.name(),
                    our_ke.map_or("no group", |x| x.group().name())
                ))
            }
        };
        let spi_out = p.spi_u32().ok_or("bad SPI")?;
        Ok((suite, spi_out, nr, pfs))
    }

    /// After a CHILD rekey we initiated: delete the old SA, unless a
    /// collision says the peer's new SA survives (§2.8.1).
    fn after_child_rekey(&mut self, idx: SaId, old_spi_in: u32, now: Millis) {
        let Some(sa) = self.sas.get(idx) else { return };
        let ours = sa
            .children
            .iter()
            .find(|c| c.rekey_of == Some(old_spi_in) && c.we_initiated);
        let theirs = sa
            .children
            .iter()
            .find(|c| c.rekey_of == Some(old_spi_in) && !c.we_initiated);
        match (ours, theirs) {
            (Some(o), Some(t)) => {
                let (o_spi, t_spi) = (o.spi_in, t.spi_in);
                let ours_lowest = lowest(o.nonces.as_ref()) < lowest(t.nonces.as_ref());
                let conn = sa.conn;
                if ours_lowest {
                    // Ours is redundant: delete it, switch to the peer's new
                    // SA; the peer deletes the old one.
                    self.log(
                        conn,
                        format!("CHILD_SA rekey collision: ours ({o_spi:08x}_i) has the lowest nonce, deleting it"),
                    );
                    self.activate_collision_winner(idx, t_spi);
                    self.queue(idx, Work::DeleteChild { spi_in: o_spi }, now);
                } else {
                    self.log(
                        conn,
                        format!(
                            "CHILD_SA rekey collision: the peer's ({t_spi:08x}_i) has the lowest nonce; it deletes it"
                        ),
                    );
                    self.queue(idx, Work::DeleteChild { spi_in: old_spi_in }, now);
                }
            }
            _ => {
                self.queue(idx, Work::DeleteChild { spi_in: old_spi_in }, now);
            }
        }
    }

    fn activate_collision_winner(&mut self, idx: SaId, spi_in: u32) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let conn = self.conns[sa.conn].name.clone();
        if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == spi_in && !c.active) {
            c.active = true;
            self.events.push_back(Event::ChildSaActivate { conn, spi_in });
        }
    }

    /// A CREATE_CHILD_SA request from the peer: rekey (or create) a CHILD
    /// SA, or rekey the IKE SA.
    pub(super) fn create_child_request(&mut self, idx: SaId, now: Millis, header: &HeaderRepr, inner: Vec<Payload>) {
        let mid = header.message_id;
        let Some(conn) = self.sas.get(idx).map(|sa| sa.conn) else {
            return;
        };
        let Some(proposals) = first!(inner, Payload::Sa(s) => s.proposals.clone()) else {
            return self.refuse_create_child(idx, conn, mid, NotifyType::INVALID_SYNTAX, "no SA payload".into());
        };
        let Some(ni) = first!(inner, Payload::Nonce(n) => n.nonce.clone()) else {
            return self.refuse_create_child(idx, conn, mid, NotifyType::INVALID_SYNTAX, "no nonce".into());
        };
        let ke = first!(inner, Payload::Ke(k) => k.clone());
        let nr = self.nonce();
        let asked = CreateChildAsked { mid, ni, nr, ke };
        if proposals.first().is_some_and(|p| p.protocol_id == ProtocolId::IKE) {
            self.ike_rekey_request(idx, now, conn, &proposals, asked);
        } else {
            self.child_sa_request(idx, now, conn, &inner, &proposals, asked);
        }
    }

    /// CREATE_CHILD_SA refused with the notify `n`, and why in the log.
    pub(super) fn refuse_create_child(&mut self, idx: SaId, conn: ConnId, mid: u32, n: NotifyType, why: String) {
        self.log(conn, format!("refusing CREATE_CHILD_SA: {why}"));
        let _ = self.send_encrypted_response(
            idx,
            ExchangeType::CREATE_CHILD_SA,
            mid,
            vec![Payload::Notify(NotifyPayload::new(n, vec![]))],
        );
    }

    /// CHILD SA rekey (or a new CHILD SA), responder (§1.3.1, §1.3.3).
    fn child_sa_request(
        &mut self,
        idx: SaId,
        now: Millis,
        conn: ConnId,
        inner: &[Payload],
        proposals: &[Proposal],
        asked: CreateChildAsked,
    ) {
        let mid = asked.mid;
        let Some(old) = self.child_rekey_target(idx, conn, mid, inner) else {
            return;
        };
        let ke_group = asked
            .ke
            .as_ref()
            .and_then(|k| ikeda_crypto::ike::DhGroup::from_transform_id(k.dh_group.0));
        let Some((suite, spi_out, num)) = self.child_request_choose(idx, conn, mid, proposals, ke_group) else {
            return;
        };
        let Some((pfs, ker)) = self.child_request_pfs(idx, conn, mid, suite.dh, &asked.ke, ke_group) else {
            return;
        };
        let tsi = first!(inner, Payload::TsI(t) => ranges(t));
        let tsr = first!(inner, Payload::TsR(t) => ranges(t));
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            return self.refuse_create_child(idx, conn, mid, NotifyType::INVALID_SYNTAX, "no TSi/TSr".into());
        };
        let (pair, local_ts, remote_ts) = self.requested_child(idx, old, &tsi, &tsr);
        if local_ts.is_empty() || remote_ts.is_empty() {
            return self.refuse_create_child(
                idx,
                conn,
                mid,
                NotifyType::TS_UNACCEPTABLE,
                format!(
                    "selectors {} === {} meet none of the connection's CHILD SAs",
                    ts_list(&tsr),
                    ts_list(&tsi)
                ),
            );
        }
        let spi_in = self.random_spi32();
        let mut sa_p = proposals_payload(
            ProtocolId::ESP,
            &spi_in.to_be_bytes(),
            &[child_suite_transforms(&suite)],
        );
        sa_p.proposals[0].proposal_num = num;
        let mut payloads = vec![
            Payload::Sa(sa_p),
            Payload::Nonce(NoncePayload {
                nonce: asked.nr.clone(),
            }),
        ];
        if let Some(k) = ker {
            payloads.push(Payload::Ke(k));
        }
        payloads.push(Payload::TsI(ts_payload(&remote_ts)));
        payloads.push(Payload::TsR(ts_payload(&local_ts)));
        if self
            .send_encrypted_response(idx, ExchangeType::CREATE_CHILD_SA, mid, payloads)
            .is_err()
        {
            return;
        }
        if let Some(old) = old {
            if let Some(ch) = self
                .sas
                .get_mut(idx)
                .and_then(|s| s.children.iter_mut().find(|c| c.spi_in == old))
            {
                // Our own rekey of it may be in flight (a collision); either
                // way the old SA is on its way out.
                ch.rekey_at = None;
            }
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
                ni: asked.ni,
                nr: asked.nr,
                pfs,
                role: Role::Responder,
                replaces: old,
                // A new CHILD SA sends at once; a replacement waits for the
                // old SA's DELETE.
                activate: old.is_none(),
                rekey_of: old,
                pair,
            },
        );
        if let Some(old) = old {
            self.after_peer_child_rekey(idx, old, now);
        }
    }

    /// After we answered the peer's rekey of `old`: our own rekey of the
    /// same SA already completed is a collision seen from this side
    /// (§2.8.1).
    fn after_peer_child_rekey(&mut self, idx: SaId, old: u32, now: Millis) {
        let done = self.sas.get(idx).is_some_and(|s| {
            s.children.iter().any(|c| c.rekey_of == Some(old) && c.we_initiated)
                && !matches!(s.tm.current(), Some((Pending::RekeyChild { old_spi_in, .. }, _, _)) if *old_spi_in == old)
        });
        if done {
            self.resolve_late_collision(idx, old, now);
        }
    }

    /// The CHILD SA a request rekeys (N(REKEY_SA) names it by the peer's
    /// SPI), as our inbound SPI: Some(None) for a new CHILD SA, None if the
    /// request was refused.
    fn child_rekey_target(&mut self, idx: SaId, conn: ConnId, mid: u32, inner: &[Payload]) -> Option<Option<u32>> {
        // (the peer's SPI, ours) of every CHILD SA, to find the one to rekey.
        let child_spis: Vec<(u32, u32)> = self
            .sas
            .get(idx)
            .map(|sa| sa.children.iter().map(|c| (c.spi_out, c.spi_in)).collect())
            .unwrap_or_default();
        let rekey_spi = inner.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == NotifyType::REKEY_SA => n.spi_u32(),
            _ => None,
        });
        let old = rekey_spi
            .and_then(|s| child_spis.iter().find(|(out, _)| *out == s))
            .map(|(_, inn)| *inn);
        if rekey_spi.is_some() && old.is_none() {
            self.refuse_create_child(
                idx,
                conn,
                mid,
                NotifyType::CHILD_SA_NOT_FOUND,
                format!("no CHILD SA with SPI {:08x}", rekey_spi.unwrap_or(0)),
            );
            return None;
        }
        // §2.25.1: a CHILD SA we are deleting is not rekeyed: the peer gets
        // TEMPORARY_FAILURE and our DELETE ends it on both sides.
        if let Some(old) = old {
            let deleting = |w: &Work| *w == Work::DeleteChild { spi_in: old };
            let closing = self.sas.get(idx).is_some_and(|s| {
                matches!(s.tm.current(), Some((Pending::DeleteChild { spi_in }, _, _)) if *spi_in == old)
                    || s.tm.is_queued(deleting)
            });
            #[cfg(test)]
            let closing = closing && !self.rekeys_what_it_deletes;
            if closing {
                self.refuse_create_child(
                    idx,
                    conn,
                    mid,
                    NotifyType::TEMPORARY_FAILURE,
                    format!("the peer rekeys CHILD_SA {old:08x}_i, which we are deleting"),
                );
                return None;
            }
        }
        Some(old)
    }

    /// The ESP proposal we choose: (suite, the peer's SPI, the number of its
    /// proposal); None if refused NO_PROPOSAL_CHOSEN.
    fn child_request_choose(
        &mut self,
        idx: SaId,
        conn: ConnId,
        mid: u32,
        proposals: &[Proposal],
        ke_group: Option<DhGroup>,
    ) -> Option<(ChildSuite, u32, u8)> {
        // The proposal: ours in order of preference. Its group is the first
        // one both proposals have, unless the initiator's KEi is of another
        // group both have: then that one, which saves a round trip (as the
        // IKE_SA_INIT responder does).
        let c = &self.conns[conn];
        let offered: Vec<ChildProposal> = proposals
            .iter()
            .filter(|p| p.protocol_id == ProtocolId::ESP)
            .map(|p| ChildProposal::from_transforms(&from_wire(p)))
            .collect();
        let mut pick = None;
        'o: for o in &c.esp_proposals {
            for (p, theirs) in proposals
                .iter()
                .filter(|p| p.protocol_id == ProtocolId::ESP)
                .zip(&offered)
            {
                if let (Some(mut s), Some(spi)) = (o.select(theirs), p.spi_u32()) {
                    if let Some(g) = ke_group.filter(|g| s.dh.is_some() && o.dh.contains(g) && theirs.dh.contains(g)) {
                        s.dh = Some(g);
                    }
                    pick = Some((s, spi, p.proposal_num));
                    break 'o;
                }
            }
        }
        if pick.is_none() {
            // Also when our proposals require a group and the initiator
            // offered none: no CHILD SA keyed without the PFS we ask for.
            let offered = offered.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ");
            let accepted = c.esp_proposals.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ");
            self.fail(
                conn,
                Failure::NoProposalChosen {
                    exchange: "CREATE_CHILD_SA",
                    offered: offered.clone(),
                    accepted: accepted.clone(),
                },
            );
            self.refuse_create_child(
                idx,
                conn,
                mid,
                NotifyType::NO_PROPOSAL_CHOSEN,
                format!("no acceptable ESP proposal: peer offered {offered}; we accept {accepted}"),
            );
        }
        pick
    }

    /// PFS (§1.3, §2.17): KEi must be of the chosen proposal's group.
    /// Of another group, or missing although the proposal has a group:
    /// INVALID_KE_PAYLOAD naming the group we want, and the initiator
    /// tries again with it (strongSwan answers the same). The shared
    /// secret and our KEr, if any; None if the request was refused.
    fn child_request_pfs(
        &mut self,
        idx: SaId,
        conn: ConnId,
        mid: u32,
        group: Option<DhGroup>,
        ke: &Option<KePayload>,
        ke_group: Option<DhGroup>,
    ) -> Option<(Option<SecretBytes>, Option<KePayload>)> {
        let mut pfs = None;
        let mut ker = None;
        match (group, ke) {
            (Some(g), Some(k)) if ke_group == Some(g) => {
                let Ok(ours) = KeyExchange::generate(g, &mut *self.rng) else {
                    return None;
                };
                let Ok(shared) = ours.shared_secret(&k.data) else {
                    self.refuse_create_child(idx, conn, mid, NotifyType::INVALID_SYNTAX, "bad KE".into());
                    return None;
                };
                pfs = Some(shared);
                ker = Some(KePayload {
                    dh_group: k.dh_group,
                    data: ours.public_value().to_vec(),
                });
            }
            (Some(g), _) => {
                self.log(
                    conn,
                    format!(
                        "refusing CREATE_CHILD_SA: KEi {}, the chosen proposal has {}: asking for it (INVALID_KE_PAYLOAD)",
                        match (ke, ke_group) {
                            (None, _) => "missing".to_string(),
                            (Some(_), Some(kg)) => format!("of group {}", kg.name()),
                            (Some(k), None) => format!("of group {}", k.dh_group.0),
                        },
                        g.name()
                    ),
                );
                let n = NotifyPayload::invalid_ke(ikeda_wire::ikev2::DhGroup(g.transform_id()));
                let _ = self.send_encrypted_response(idx, ExchangeType::CREATE_CHILD_SA, mid, vec![Payload::Notify(n)]);
                return None;
            }
            (None, Some(_)) => {
                self.log(conn, "ignoring KEi: the chosen ESP proposal has no PFS group".into());
            }
            (None, None) => {}
        }
        Some((pfs, ker))
    }

    /// The peer's rekey of `old` arrived after ours completed: decide which
    /// new SA survives, as in [`Engine::after_child_rekey`].
    fn resolve_late_collision(&mut self, idx: SaId, old: u32, now: Millis) {
        let Some(sa) = self.sas.get(idx) else { return };
        let ours = sa.children.iter().find(|c| c.rekey_of == Some(old) && c.we_initiated);
        let theirs = sa.children.iter().find(|c| c.rekey_of == Some(old) && !c.we_initiated);
        let (Some(o), Some(t)) = (ours, theirs) else { return };
        let (o_spi, t_spi) = (o.spi_in, t.spi_in);
        let conn = sa.conn;
        if lowest(o.nonces.as_ref()) < lowest(t.nonces.as_ref()) {
            self.log(
                conn,
                format!("CHILD_SA rekey collision: ours ({o_spi:08x}_i) has the lowest nonce, deleting it"),
            );
            self.activate_collision_winner(idx, t_spi);
            self.queue(idx, Work::DeleteChild { spi_in: o_spi }, now);
        } else {
            self.log(
                conn,
                format!("CHILD_SA rekey collision: the peer's ({t_spi:08x}_i) has the lowest nonce; it deletes it"),
            );
        }
    }
}

/// The lowest nonce of an exchange, for §2.8.1 (nonces compared as
/// unsigned big-endian numbers of possibly different lengths: compare by
/// value, so a leading zero does not matter).
pub(super) fn lowest(n: Option<&(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
    match n {
        Some((a, b)) => lowest_of(a, b),
        None => vec![0xff; 257],
    }
}

/// The lower of an exchange's two nonces, as [`lowest`] compares them.
pub(super) fn lowest_of(a: &[u8], b: &[u8]) -> Vec<u8> {
    // Nonces are at most 256 bytes (RFC 7296 §3.9, checked when parsed).
    let norm = |x: &[u8]| -> Vec<u8> {
        let s: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        let mut v = vec![0u8; 257 - s.len()];
        v.extend(s);
        v
    };
    norm(a).min(norm(b))
}

/// What a CREATE_CHILD_SA response carries (§1.3): the chosen proposal,
/// Nr, KEr and its group, the first error notify, and the group an
/// INVALID_KE_PAYLOAD asks for.
pub(super) struct CreateChildReply {
    pub(super) sa: Option<Proposal>,
    pub(super) nr: Option<Vec<u8>>,
    pub(super) ke: Option<Vec<u8>>,
    pub(super) ke_group: Option<u16>,
    pub(super) error: Option<NotifyType>,
    pub(super) wanted_group: Option<ikeda_wire::ikev2::DhGroup>,
}

/// Our CHILD rekey in flight ([`Pending::RekeyChild`]).
struct ChildRekeyAsked {
    old_spi_in: u32,
    new_spi_in: u32,
    ni: Vec<u8>,
    our_ke: Option<KeyExchange>,
    retried: bool,
}

/// What a CREATE_CHILD_SA request from the peer gives every kind of it:
/// its message ID, Ni, KEi, and the Nr we answer with.
pub(super) struct CreateChildAsked {
    pub(super) mid: u32,
    pub(super) ni: Vec<u8>,
    pub(super) nr: Vec<u8>,
    pub(super) ke: Option<KePayload>,
}
