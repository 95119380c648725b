//! Informational exchanges (RFC 2409 §5.7, RFC 2408 §4.8): DELETE of IPsec
//! and ISAKMP SAs, notifications (INITIAL-CONTACT, RFC 2407 §4.6.3.3, and
//! the peer's errors), and dead peer detection (RFC 3706: R-U-THERE and
//! R-U-THERE-ACK).
//!
//! ```text
//! HDR*, HASH(1), N/D  -->
//! ```

use super::*;

impl Engine {
    pub(super) fn initial_contact_seen(&mut self, idx: SaId, p: &[ParsedPayload]) {
        let ic = p
            .iter()
            .any(|x| matches!(&x.payload, Payload::Notify(n) if n.notify_type == notify::INITIAL_CONTACT));
        if ic {
            self.initial_contact(idx);
        }
    }

    /// The peer starts afresh (RFC 2407 §4.6.3.3): whatever SAs we hold with
    /// it are stale.
    fn initial_contact(&mut self, idx: SaId) {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        self.log(conn, "INITIAL_CONTACT: dropping the older SAs with this peer".into());
        // With a DELETE each: a peer that sent INITIAL_CONTACT while it
        // still held one of them (both sides initiated) drops it too, and
        // one that did not ignores it.
        for i in self.sas.ids() {
            let Some(s) = self.sas.get(i).filter(|s| i != idx && s.conn == conn) else {
                continue;
            };
            // Our MM5 is out: the peer may have answered it and hold the SA
            // (it began it before it said INITIAL_CONTACT on another); it
            // comes up, and the two are settled as duplicates.
            if s.state == P1State::MmI3 {
                continue;
            }
            // Up after this one was: the peer took part in it after it
            // began this one (a late INITIAL_CONTACT, both initiated); it
            // stays, and the two are settled as duplicates.
            let ours_up = self.sas.get(idx).and_then(|x| x.established_at);
            if s.established_at.is_some_and(|t| ours_up.is_some_and(|u| t > u)) {
                continue;
            }
            if s.half_open() {
                let line = format!(
                    "INITIAL_CONTACT: dropping our half-open phase-1 SA {:016x}_i ({})",
                    s.icookie,
                    if s.initiator { "we initiated it" } else { "the peer did" }
                );
                self.log(conn, line);
            }
            self.send_delete_isakmp(i);
            self.remove(i, "INITIAL_CONTACT from the peer");
        }
        // This one stays, even if it lost a duplicate's settling to one of
        // those (the peer did not count it a duplicate).
        self.undo_settling(conn, "INITIAL_CONTACT");
        // IPsec SAs made under this very phase 1 stay.
        let keep_after = self.sas.get(idx).and_then(|s| s.established_at).unwrap_or(Millis(0));
        let name = self.conns[conn].spec.name.clone();
        let (old, keep): (Vec<Child>, Vec<Child>) = std::mem::take(&mut self.children[conn])
            .into_iter()
            .partition(|c| c.installed_at < keep_after);
        self.children[conn] = keep;
        for c in old {
            self.send_delete_esp(idx, c.spi_in);
            self.events.push_back(Event::ChildSaDown {
                conn: name.clone(),
                spi_in: c.spi_in,
                spi_out: c.spi_out,
            });
        }
    }

    pub(super) fn peer_error(&mut self, idx: SaId, t: u16) {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        let why = if t == notify::NO_PROPOSAL_CHOSEN {
            let offered: Vec<String> = p1_offers(&self.conns[conn].spec).iter().map(choice_name).collect();
            Failure::PeerRejectedProposals {
                exchange: "ID_PROT",
                offered: offered.join(", "),
            }
        } else if t == notify::AUTHENTICATION_FAILED || t == notify::INVALID_HASH_INFORMATION {
            Failure::AuthenticationFailed {
                detail: format!("peer said {}", notify::name(t)),
            }
        } else {
            Failure::PeerRefused {
                exchange: None,
                notify: notify::name(t).to_string(),
            }
        };
        self.fail(conn, why);
        self.remove(idx, "peer refused");
    }

    /// Send one protected Informational message: HASH(1), payload (§5.7).
    pub(super) fn send_info(&mut self, idx: SaId, p: Payload) {
        let Some(sa) = self.sas.get(idx) else { return };
        let (Some(c), Some(keys)) = (sa.choice, sa.keys.as_ref()) else {
            return;
        };
        if sa.state != P1State::Established {
            return;
        }
        let mid = {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            u32::from_be_bytes(b) | 1
        };
        let Some(sa) = self.sas.get(idx) else { return };
        let Some(keys2) = sa.keys.as_ref() else { return };
        let _ = keys;
        let mut rest = Vec::new();
        write_payload(&p, 0, &mut rest);
        let hash = c1::qm_hash1(c.hash, keys2.skeyid_a.expose(), mid, &rest);
        let mut chain = Vec::new();
        write_payload(&Payload::Hash(hash.clone()), p.kind(), &mut chain);
        chain.extend_from_slice(&rest);
        let iv = c1::phase2_iv(c.hash, c.cipher.block_len(), &sa.iv, mid);
        let mut hh = self.header(idx, ExchangeType::INFORMATIONAL, mid);
        hh.next_payload = pt::HASH;
        let Some((d, _)) = seal(c.cipher, keys2.enc_key.expose(), &iv, hh, &chain) else {
            return;
        };
        self.log_msg(
            idx,
            true,
            ExchangeType::INFORMATIONAL,
            mid,
            true,
            &[Payload::Hash(hash), p],
        );
        self.send(idx, d);
    }

    /// A notification: protected once phase 1 is up, else in the clear.
    pub(super) fn send_notify(&mut self, idx: SaId, t: u16, data: Vec<u8>) {
        let Some(sa) = self.sas.get(idx) else { return };
        let spi = [sa.icookie.to_be_bytes(), sa.rcookie.to_be_bytes()].concat();
        let n = Payload::Notify(NotifyPayload {
            doi: doi::IPSEC,
            protocol: protocol::ISAKMP,
            spi,
            notify_type: t,
            data,
        });
        if sa.state == P1State::Established {
            self.send_info(idx, n);
        } else {
            let h = self.header(idx, ExchangeType::INFORMATIONAL, 0);
            let d = Message::build(&h, std::slice::from_ref(&n));
            self.log_msg(idx, true, ExchangeType::INFORMATIONAL, 0, true, &[n]);
            self.send(idx, d);
        }
    }

    pub(super) fn send_delete_esp(&mut self, idx: SaId, spi_in: u32) {
        self.send_info(
            idx,
            Payload::Delete(DeletePayload {
                doi: doi::IPSEC,
                protocol: protocol::ESP,
                spi_size: 4,
                spis: vec![spi_in.to_be_bytes().to_vec()],
            }),
        );
    }

    pub(super) fn send_delete_isakmp(&mut self, idx: SaId) {
        let Some(sa) = self.sas.get(idx) else { return };
        let spi = [sa.icookie.to_be_bytes(), sa.rcookie.to_be_bytes()].concat();
        self.send_info(
            idx,
            Payload::Delete(DeletePayload {
                doi: doi::IPSEC,
                protocol: protocol::ISAKMP,
                spi_size: 16,
                spis: vec![spi],
            }),
        );
    }

    pub(super) fn informational(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        let Some(sa) = self.sas.get(idx) else { return };
        let conn = sa.conn;
        if h.flags & FLAG_ENCRYPTION == 0 {
            // Unprotected: only believable before phase 1 is up (a refusal
            // of our proposal, say); afterwards anyone could forge it.
            if sa.state == P1State::Established {
                self.stats.malformed += 1;
                return;
            }
            let Some(m) = self.clear_msg(idx, data, h, true) else {
                return;
            };
            if let Some(Payload::Notify(n)) = first(&m.payloads, pt::NOTIFY) {
                if n.notify_type < 16384 {
                    self.peer_error(idx, n.notify_type);
                }
            }
            return;
        }
        let (Some(c), Some(keys)) = (sa.choice, sa.keys.as_ref()) else {
            self.stats.malformed += 1;
            return;
        };
        if sa.state != P1State::Established && sa.state != P1State::MmI3 {
            self.stats.malformed += 1;
            return;
        }
        // During MM5/6 the phase-1 chain is still moving: the peer derives
        // informational IVs from the last block it saw, which is ours.
        let iv = c1::phase2_iv(c.hash, c.cipher.block_len(), &sa.iv, h.message_id);
        let Some((plain_b, _)) = open(c.cipher, keys.enc_key.expose(), &iv, data, h) else {
            self.stats.decrypt_failed += 1;
            return;
        };
        let Ok((p, end)) = parse_payloads(h.next_payload, &plain_b) else {
            self.stats.decrypt_failed += 1;
            return;
        };
        let Some(Payload::Hash(got)) = p.first().map(|x| &x.payload) else {
            self.stats.malformed += 1;
            return;
        };
        let rest = &plain_b[p[0].whole.end..end];
        if !c1::hash_matches(&c1::qm_hash1(c.hash, keys.skeyid_a.expose(), h.message_id, rest), got) {
            self.stats.hash_failed += 1;
            return;
        }
        // Replay protection (the exchange has none of its own): an M-ID
        // seen under this SA is a captured message sent again. Recorded
        // only once HASH(1) verified, so forgeries cannot fill the window.
        let Some(sa) = self.sas.get_mut(idx) else { return };
        if sa.info_mids.contains(&h.message_id) {
            self.stats.replayed += 1;
            return;
        }
        if sa.info_mids.len() >= INFO_MIDS_KEPT {
            sa.info_mids.pop_front();
        }
        sa.info_mids.push_back(h.message_id);
        self.authenticated(idx);
        self.log_msg(idx, false, ExchangeType::INFORMATIONAL, h.message_id, true, &plain(&p));
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.last_heard = now;
        }
        for x in &p[1..] {
            match &x.payload {
                Payload::Notify(n) => match n.notify_type {
                    notify::R_U_THERE => {
                        let Some(sa) = self.sas.get(idx) else { return };
                        let spi = [sa.icookie.to_be_bytes(), sa.rcookie.to_be_bytes()].concat();
                        self.send_info(
                            idx,
                            Payload::Notify(NotifyPayload {
                                doi: doi::IPSEC,
                                protocol: protocol::ISAKMP,
                                spi,
                                notify_type: notify::R_U_THERE_ACK,
                                data: n.data.clone(),
                            }),
                        );
                    }
                    notify::R_U_THERE_ACK => {
                        let seq = be_u32(&n.data);
                        if let Some(sa) = self.sas.get_mut(idx) {
                            // RFC 3706 §5.3: an ACK must echo a sequence number we sent.
                            if seq.is_some_and(|s| s <= sa.dpd.seq && sa.dpd.seq - s < 16) {
                                sa.dpd.check = None;
                            }
                        }
                    }
                    notify::INITIAL_CONTACT => self.initial_contact(idx),
                    notify::CONNECTED => self.connected(idx, n),
                    t if t < 16384 => {
                        let what = notify::name(t);
                        self.fail(
                            conn,
                            Failure::PeerRefused {
                                exchange: None,
                                notify: what.to_string(),
                            },
                        );
                    }
                    _ => {}
                },
                Payload::Delete(d) => self.peer_delete(idx, d),
                _ => {}
            }
        }
    }

    /// The peer deleted a phase-1 SA of `conn` (`why`), and none of those
    /// left is current: the newest one left is again. It was a duplicate
    /// we settled as the loser (the peer saw no duplicate: it replaced its
    /// SA by this one), or one the peer's new phase-1 SA superseded (the
    /// peer deleted that one instead).
    fn undo_settling(&mut self, conn: ConnId, why: &str) {
        if self.current(conn).is_some() {
            return;
        }
        let newest = self
            .sas
            .iter_mut()
            .filter(|s| s.conn == conn && s.state == P1State::Established)
            .max_by_key(|s| s.established_at);
        if let Some(s) = newest {
            let what = if s.duplicate_delete_at.is_some() {
                "keeping the phase-1 SA we meant to delete as a duplicate"
            } else {
                "the phase-1 SA it superseded is current again"
            };
            s.duplicate_delete_at = None;
            s.superseded = false;
            self.log(conn, format!("{why}: {what}"));
        }
    }

    fn peer_delete(&mut self, idx: SaId, d: &DeletePayload) {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        match d.protocol {
            protocol::ISAKMP => {
                let Some(sa) = self.sas.get(idx) else { return };
                let me = [sa.icookie.to_be_bytes(), sa.rcookie.to_be_bytes()].concat();
                for spi in &d.spis {
                    if *spi == me {
                        self.remove(idx, "deleted by the peer");
                        self.undo_settling(conn, "the peer deleted the other phase-1 SA");
                        return;
                    }
                    if spi.len() == 16 {
                        let (i, r) = (
                            u64::from_be_bytes(spi[..8].try_into().unwrap_or([0; 8])),
                            u64::from_be_bytes(spi[8..].try_into().unwrap_or([0; 8])),
                        );
                        if let Some(j) = self.find_by_icookie(i, |s| s.conn == conn && s.rcookie == r) {
                            self.remove(j, "deleted by the peer");
                            self.undo_settling(conn, "the peer deleted the other phase-1 SA");
                        }
                    }
                }
            }
            protocol::ESP => {
                for spi in d.spis.iter().filter_map(|s| be_u32(s)) {
                    // The peer names its inbound SPI, our outbound, as RFC
                    // 2408 §3.15 has the sender name the SA it stops
                    // receiving on. strongSwan names ours instead when it
                    // refuses an SA it could not install (its Quick Mode
                    // responder deletes by the initiator's SPI): the same
                    // pair, and our inbound SPIs are ours alone.
                    let k = (self.children[conn].iter().position(|c| c.spi_out == spi))
                        .or_else(|| self.children[conn].iter().position(|c| c.spi_in == spi));
                    if let Some(k) = k {
                        let c = self.children[conn].remove(k);
                        // The SA that replaced it (if any) carries the traffic now.
                        let name = self.conns[conn].spec.name.clone();
                        if let Some(n) = self.children[conn]
                            .iter_mut()
                            .find(|n| n.pair == c.pair && !n.active && n.duplicate_delete_at.is_none())
                        {
                            n.active = true;
                            n.activate_at = None;
                            self.events.push_back(Event::ChildSaActivate {
                                conn: name.clone(),
                                spi_in: n.spi_in,
                            });
                        }
                        // It was the pair's newest: the one it replaced (or
                        // that we took it to replace: the peer's Quick Mode
                        // crossed ours and it settled the two otherwise) is
                        // the pair's live SA again, sent on again (the data
                        // plane goes back to it) and rekeyed in its time.
                        let cs = &mut self.children[conn];
                        if !cs.iter().any(|n| n.pair == c.pair && !n.rekeyed) {
                            if let Some(n) = cs
                                .iter_mut()
                                .rev()
                                .find(|n| n.pair == c.pair && n.duplicate_delete_at.is_none())
                            {
                                n.rekeyed = false;
                            }
                        }
                        self.events.push_back(Event::ChildSaDown {
                            conn: name,
                            spi_in: c.spi_in,
                            spi_out: c.spi_out,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    /// RFC 3706's traffic-based trigger (as RFC 7296 §2.4 puts it: "If
    /// there has only been outgoing traffic on all of the SAs associated
    /// with an IKE SA, it is essential to confirm liveness of the other
    /// endpoint to avoid black holes"): the data plane saw packets go out
    /// on the IPsec SA whose inbound SPI is `spi_in` and none come in for
    /// `silent_for`. If that silence, counted from the SA's installation at
    /// the latest, is `ikev2::ONE_WAY_SUSPECT` or more and the peer was not
    /// heard since it began, an R-U-THERE goes out now on the connection's
    /// phase-1 SA (when the peer announced DPD), even without `dpd_delay`;
    /// unanswered, it ends the SAs as DPD does. True if one went out.
    pub fn one_way_traffic(&mut self, conn: &str, spi_in: u32, silent_for: Duration, now: Millis) -> bool {
        let Some(ci) = self.conn_index(conn) else { return false };
        let Some(child) = self.children[ci].iter().find(|c| c.spi_in == spi_in) else {
            return false;
        };
        let began = (now - silent_for).max(child.installed_at);
        if now.saturating_since(began) < crate::ikev2::ONE_WAY_SUSPECT {
            return false;
        }
        let Some(idx) = self.current(ci) else { return false };
        let Some(sa) = self.sas.get_mut(idx) else { return false };
        if !sa.peer_dpd || sa.dpd.check.is_some() || sa.last_heard > began {
            return false;
        }
        sa.dpd.suspect = true;
        let line = format!(
            "IPsec SA {spi_in:08x}_i: packets went out and none came back for {}s: asking the peer whether it is alive (R-U-THERE)",
            now.saturating_since(began).as_secs()
        );
        self.log(ci, line);
        let queued = self.transmits.len();
        if self.dpd_check(idx, ci, now) {
            self.note_sent(queued, now);
        }
        true
    }

    /// Dead peer detection (RFC 3706 §5): R-U-THERE after a quiet spell,
    /// then again per the retransmission policy, until the peer is declared dead.
    /// The keepalive on UDP 500 (issue 13: keep a stateful firewall's
    /// state for the flow) is the same R-U-THERE, after `keepalive`
    /// without anything of ours on the flow: answered, it refreshes both
    /// sides' state; unanswered, it ends the SA as DPD does. And at once,
    /// whatever `dpd_delay` says, when traffic went one way only
    /// ([`Engine::one_way_traffic`] set `suspect`).
    /// False if the peer was declared dead (its SAs are gone).
    pub(super) fn dpd_check(&mut self, idx: SaId, conn: ConnId, now: Millis) -> bool {
        let policy = self.policy;
        let t = self.conns[conn].spec.timers;
        let Some(sa) = self.sas.get_mut(idx) else { return false };
        let ka_check = keepalive_by_dpd(sa, &t);
        let asked = sa.dpd.check.is_some() || sa.dpd.suspect;
        if sa.peer_dpd && (!t.dpd_delay.is_zero() || ka_check || asked) && !sa.superseded {
            let dpd_due = !t.dpd_delay.is_zero() && now >= sa.last_heard + t.dpd_delay;
            let ka_due = ka_check && now >= sa.last_sent + t.keepalive;
            let suspect = std::mem::take(&mut sa.dpd.suspect);
            let due = match sa.dpd.check.as_mut() {
                Some(rt) => rt.poll(now, &policy),
                None if dpd_due || ka_due || suspect => {
                    sa.dpd.check = Some(Retransmission::new(Vec::new(), now, &policy));
                    RequestTimer::Resend { try_no: 0 }
                }
                None => RequestTimer::Idle,
            };
            if due != RequestTimer::Idle {
                if let RequestTimer::GiveUp { sent: tries } = due {
                    let remote = sa.remote;
                    self.fail(
                        conn,
                        Failure::PeerNotAnswering {
                            exchange: "DPD R-U-THERE",
                            tries,
                            to: remote,
                        },
                    );
                    self.log(conn, "dead peer: deleting its SAs".into());
                    self.remove(idx, "dead peer");
                    self.drop_children(conn);
                    if t.dpd_restart {
                        self.log(conn, "dead peer: initiating again (dpd_action = restart)".into());
                        self.start_phase1(conn, now);
                    }
                    return false;
                }
                sa.dpd.seq = sa.dpd.seq.wrapping_add(1).max(1);
                let seq = sa.dpd.seq;
                let spi = [sa.icookie.to_be_bytes(), sa.rcookie.to_be_bytes()].concat();
                self.send_info(
                    idx,
                    Payload::Notify(NotifyPayload {
                        doi: doi::IPSEC,
                        protocol: protocol::ISAKMP,
                        spi,
                        notify_type: notify::R_U_THERE,
                        data: seq.to_be_bytes().to_vec(),
                    }),
                );
            }
        }
        true
    }
}
