//! INFORMATIONAL exchanges (RFC 7296 §1.4): DELETE of CHILD SAs and of
//! the IKE SA, both roles, with the answers kept for a DELETE
//! retransmitted after its SA is gone (the graveyard); an empty request,
//! the liveness check (§2.4), is answered the same way.
//!
//! ```text
//! HDR, SK {[N,] [D,] [CP,] ...}  -->
//!                           <--  HDR, SK {[N,] [D,] [CP], ...}
//! ```

use super::*;

/// How long a CHILD SA may send with nothing coming back before the peer
/// is asked whether it is alive ([`Engine::one_way_traffic`]).
pub const ONE_WAY_SUSPECT: Duration = Duration::from_secs(10);

impl Engine {
    /// RFC 7296 §2.4: "If there has only been outgoing traffic on all of
    /// the SAs associated with an IKE SA, it is essential to confirm
    /// liveness of the other endpoint to avoid black holes." The data plane
    /// saw packets go out on the CHILD SA whose inbound SPI is `spi_in`
    /// and none come in on it for `silent_for` (`Duration::MAX`: never):
    /// if that silence, counted from the SA's installation at the latest,
    /// is [`ONE_WAY_SUSPECT`] or more and we have not heard from the peer
    /// since it began, a liveness check is queued; no check while an
    /// exchange is in flight (it checks liveness itself). Unanswered, the
    /// check ends the IKE SA as dead peer detection does (`dpd_action`),
    /// so a peer that deleted its SAs without our hearing it (a DELETE
    /// lost to a firewall) does not leave us sending into a black hole
    /// until the next rekey. Answered, it is not asked again until the
    /// silence starts anew: one-way traffic costs one exchange.
    /// True if a check was queued.
    pub fn one_way_traffic(&mut self, spi_in: u32, silent_for: Duration, now: Millis) -> bool {
        // The established IKE SA holding the CHILD SA, and when it was installed.
        let found = self.sas.entries().find_map(|(i, s)| {
            let s = Some(s).filter(|s| s.state == State::Established)?;
            let c = s.children.iter().find(|c| c.spi_in == spi_in)?;
            Some((i, s, c.installed_at))
        });
        let Some((idx, sa, installed_at)) = found else {
            return false;
        };
        let began = (now - silent_for).max(installed_at);
        if now.saturating_since(began) < ONE_WAY_SUSPECT || sa.last_heard > began || sa.tm.busy() {
            return false;
        }
        let line = format!(
            "CHILD_SA {spi_in:08x}_i: packets went out and none came back for {}s: checking that the peer is alive (RFC 7296 §2.4)",
            now.saturating_since(began).as_secs()
        );
        let conn = sa.conn;
        self.log(conn, line);
        self.queue(idx, Work::Liveness, now)
    }

    /// Our DELETE of a CHILD SA was answered.
    pub(super) fn child_gone(&mut self, idx: SaId, spi_in: u32) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        if let Some(pos) = sa.children.iter().position(|c| c.spi_in == spi_in) {
            let c = sa.children.remove(pos);
            let conn = self.conns[sa.conn].name.clone();
            self.events.push_back(Event::ChildSaDown {
                conn,
                spi_in: c.spi_in,
                spi_out: c.spi_out,
            });
        }
    }

    pub(super) fn delete_ike(&mut self, idx: SaId, now: Millis) -> Result<(), String> {
        self.send_encrypted_request(
            idx,
            ExchangeType::INFORMATIONAL,
            vec![Payload::Delete(DeletePayload::ike())],
            Pending::DeleteIke,
            now,
        )?;
        if let Some(sa) = self.sas.get_mut(idx) {
            if sa.state != State::Replaced {
                sa.state = State::Deleting;
            }
        }
        Ok(())
    }

    pub(super) fn delete_child(&mut self, idx: SaId, spi_in: u32, now: Millis) -> Result<(), String> {
        let d = DeletePayload::child(ProtocolId::ESP, &[spi_in]);
        self.send_encrypted_request(
            idx,
            ExchangeType::INFORMATIONAL,
            vec![Payload::Delete(d)],
            Pending::DeleteChild { spi_in },
            now,
        )
    }

    /// The answer to our INFORMATIONAL request (a DELETE or a liveness
    /// check); false if it did not open (or the SA is gone), and the next
    /// work waits.
    pub(super) fn informational_response(
        &mut self,
        idx: SaId,
        now: Millis,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) -> bool {
        let mid = msg.header.message_id;
        let Some(inner) = self.open(idx, data, msg) else {
            return false;
        };
        self.heard(idx, now);
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return false;
        };
        self.log(conn, format!("received {} from {remote}", summary(&msg.header, &inner)));
        let Some(sa) = self.sas.get_mut(idx) else { return false };
        match sa.tm.complete(mid) {
            Some(Pending::DeleteIke) => {
                let rekeyed = self.sas.get(idx).is_some_and(|s| s.state == State::Replaced);
                let duplicate = self.sas.get(idx).and_then(|s| s.duplicate);
                let reason = match duplicate {
                    _ if rekeyed => "replaced by the rekeyed IKE_SA".to_string(),
                    Some(d) => format!("duplicate deleted by us ({})", d.cause),
                    None => "deleted by us".to_string(),
                };
                self.remove(idx, &reason)
            }
            Some(Pending::DeleteChild { spi_in }) => self.child_gone(idx, spi_in),
            _ => {}
        }
        true
    }

    /// Keep the answers of SA `idx`, which the peer deletes, a short while.
    fn bury(&mut self, idx: SaId, now: Millis) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let tm = std::mem::replace(&mut sa.tm, TaskManager::new(Version::IKEV2));
        let spis = (sa.spi_i, sa.spi_r);
        self.graveyard.retain(|g| g.until > now);
        if self.graveyard.len() >= GRAVEYARD_MAX {
            self.graveyard.pop_front();
        }
        self.graveyard.push_back(Grave {
            spis,
            until: now + GRAVEYARD_TIME,
            tm,
        });
    }

    /// A request for an IKE SA we no longer have: if the peer deleted it
    /// and this is that DELETE again, bit for bit and from the same
    /// address, answer it again (no keys needed, nothing acted on).
    pub(super) fn answer_from_the_grave(
        &mut self,
        spis: (u64, u64),
        mid: u32,
        data: &[u8],
        at: (SocketAddr, SocketAddr),
        now: Millis,
    ) {
        self.graveyard.retain(|g| g.until > now);
        let Some(g) = self.graveyard.iter().find(|g| g.spis == spis) else {
            return;
        };
        if let Incoming::Again(t) = g.tm.check_request(mid, data, at.0, at.1) {
            self.stats.retransmits_answered += 1;
            self.transmits.push_back(t);
        }
    }

    pub(super) fn informational_request(&mut self, idx: SaId, mid: u32, inner: Vec<Payload>, now: Millis) {
        let mut response = Vec::new();
        let mut delete_ike = false;
        let mut gone: Vec<(u32, u32)> = Vec::new();
        for p in &inner {
            if let Payload::Delete(d) = p {
                if d.protocol_id == ProtocolId::IKE {
                    delete_ike = true;
                } else if d.protocol_id == ProtocolId::ESP {
                    let Some(sa) = self.sas.get_mut(idx) else { return };
                    for spi in d.spis_u32() {
                        if let Some(pos) = sa.children.iter().position(|c| c.spi_out == spi) {
                            let c = sa.children.remove(pos);
                            gone.push((c.spi_in, c.spi_out));
                        }
                    }
                }
            }
        }
        if !gone.is_empty() {
            let ours: Vec<u32> = gone.iter().map(|g| g.0).collect();
            response.push(Payload::Delete(DeletePayload::child(ProtocolId::ESP, &ours)));
        }
        let _ = self.send_encrypted_response(idx, ExchangeType::INFORMATIONAL, mid, response);
        let conn = self
            .sas
            .get(idx)
            .map(|s| self.conns[s.conn].name.clone())
            .unwrap_or_default();
        for (spi_in, spi_out) in gone {
            // The DELETE of a rekeyed SA is the signal for the responder of
            // the rekey to send on the new one (make-before-break).
            self.activate_replacement(idx, spi_in);
            self.events.push_back(Event::ChildSaDown {
                conn: conn.clone(),
                spi_in,
                spi_out,
            });
        }
        if delete_ike {
            // Both sides rekeyed this IKE SA and the peer deletes it before
            // we heard the answer to ours: only the creator of the new SA
            // that stays deletes the old one (§2.8.2), so the peer's stays.
            let theirs = self.sas.get_mut(idx).and_then(|s| Some((s.conn, s.peer_rekey.take()?)));
            if let Some((conn, theirs)) = theirs {
                self.log(
                    conn,
                    "IKE_SA rekey collision: the peer deletes the old IKE_SA before ours was answered; its new one stays"
                        .into(),
                );
                self.replace_ike_sa(idx, now, &theirs);
            }
            let rekeyed = self.sas.get(idx).is_some_and(|s| s.state == State::Replaced);
            let duplicate = self.sas.get(idx).and_then(|s| s.duplicate);
            let reason = match duplicate {
                _ if rekeyed => "replaced by the rekeyed IKE_SA".to_string(),
                Some(d) => format!("duplicate deleted by the peer ({})", d.cause),
                None => "deleted by the peer".to_string(),
            };
            self.bury(idx, now);
            self.remove(idx, &reason);
        }
    }
}
