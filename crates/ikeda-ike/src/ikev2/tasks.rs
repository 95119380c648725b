//! The IKEv2 side of the task manager ([`crate::task`]): the work an IKE
//! SA queues, how it starts when the window frees, and what a timer expiry
//! asks of the exchange in flight.
//!
//! RFC 7296 §2.3: without SET_WINDOW_SIZE one request is in flight per
//! direction. Work that arrives meanwhile (a rekey, a DELETE, a liveness
//! check, from a timer, the data plane's byte count or the operator)
//! waits in the SA's queue and starts as soon as the response to the
//! request in flight is in: it never fails, nor retries on a timer,
//! because something else is in flight.

use super::*;

/// Work that waits its turn on an IKE SA; it becomes a [`Pending`]
/// exchange when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Work {
    /// An empty INFORMATIONAL request (§2.4): any authentic answer proves life.
    Liveness,
    /// INFORMATIONAL { D(IKE) } (§1.4.1).
    DeleteIke,
    /// INFORMATIONAL { D(ESP, spi_in) } (§1.4.1).
    DeleteChild { spi_in: u32 },
    /// CREATE_CHILD_SA { N(REKEY_SA), ... } (§1.3.3).
    RekeyChild { spi_in: u32 },
    /// CREATE_CHILD_SA { SA, Ni, KEi } (§1.3.2).
    RekeyIke,
    /// CREATE_CHILD_SA { SA, Ni, [KEi,] TSi, TSr } (§1.3.1): the
    /// connection's CHILD SA `pair` beyond the one of IKE_AUTH.
    CreateChild { pair: usize },
}

impl Work {
    /// Work that stays with the IKE SA it names when a rekey replaces that
    /// SA; the rest (its CHILD SAs') moves to the new one.
    fn of_the_ike_sa(&self) -> bool {
        matches!(self, Work::Liveness | Work::DeleteIke | Work::RekeyIke)
    }
}

impl Engine {
    /// Queue `work` on SA `idx` and start it if the window is free.
    pub(super) fn queue(&mut self, idx: SaId, work: Work, now: Millis) -> bool {
        let queued = self.sas.get_mut(idx).is_some_and(|sa| sa.tm.queue(work));
        self.activate_next(idx, now);
        queued
    }

    /// Queue `work` ahead of the rest (deleting the IKE SA).
    pub(super) fn queue_first(&mut self, idx: SaId, work: Work, now: Millis) {
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.tm.queue_first(work);
        }
        self.activate_next(idx, now);
    }

    /// Start queued work while the window has room: only on an established
    /// SA, and on one a rekey replaced, only its DELETE (the rest moved to
    /// the new SA with its CHILD SAs). Work that no longer applies (its
    /// CHILD SA went, or the peer rekeyed it first) is dropped.
    pub(super) fn activate_next(&mut self, idx: SaId, now: Millis) {
        loop {
            let Some(sa) = self.sas.get_mut(idx) else { return };
            if !matches!(sa.state, State::Established | State::Replaced) {
                return;
            }
            let replaced = sa.state == State::Replaced;
            let Some(work) = sa.tm.dequeue() else { return };
            if replaced && work != Work::DeleteIke {
                continue;
            }
            self.start_work(idx, work, now);
        }
    }

    /// Send the request that starts `work`.
    fn start_work(&mut self, idx: SaId, work: Work, now: Millis) {
        // Whatever starts here goes out now: it keeps the flow alive (the
        // operator's rekey or delete arrives outside handle_timeout and
        // handle_datagram, which note what they send).
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.last_sent = sa.last_sent.max(now);
        }
        let Some(sa) = self.sas.get(idx) else { return };
        let conn = sa.conn;
        match work {
            Work::Liveness => {
                let _ = self.send_encrypted_request(idx, ExchangeType::INFORMATIONAL, vec![], Pending::Liveness, now);
            }
            Work::DeleteIke => {
                let _ = self.delete_ike(idx, now);
            }
            Work::DeleteChild { spi_in } => {
                if sa.children.iter().any(|c| c.spi_in == spi_in) {
                    let _ = self.delete_child(idx, spi_in, now);
                }
            }
            Work::RekeyChild { spi_in } => {
                // Not when it is gone, rekeyed already, or the peer's
                // rekey of it completed while ours waited (§2.8: the peer
                // deletes it; ours would only make a collision).
                let replaced = sa.children.iter().any(|c| c.rekey_of == Some(spi_in));
                let pos = sa.children.iter().position(|c| c.spi_in == spi_in && !c.rekeyed);
                if let Some(pos) = pos.filter(|_| !replaced) {
                    if let Err(e) = self.start_child_rekey(idx, pos, now) {
                        self.log(conn, format!("CHILD_SA rekey failed ({e}); retrying in 10 s"));
                        if let Some(c) = self.sas.get_mut(idx).and_then(|s| s.children.get_mut(pos)) {
                            c.rekey_at = Some(now + Duration::from_secs(10));
                        }
                    }
                }
            }
            Work::CreateChild { pair } => {
                // Not when it exists already (the peer created it, or an
                // IKE rekey moved it here with its queued work twice).
                if !sa.children.iter().any(|c| c.pair == pair) {
                    if let Err(e) = self.start_create_child(idx, pair, now) {
                        let name = self.conns[conn].child_name(pair).to_string();
                        self.fail(conn, Failure::Local(format!("creating CHILD_SA '{name}': {e}")));
                    }
                }
            }
            Work::RekeyIke => {
                if let Err(e) = self.start_ike_rekey(idx, now) {
                    self.log(conn, format!("IKE_SA rekey failed ({e}); retrying in 10 s"));
                    if let Some(sa) = self.sas.get_mut(idx) {
                        sa.rekey_at = Some(now + Duration::from_secs(10));
                    }
                }
            }
        }
    }

    /// The queued work of SA `old` that concerns its CHILD SAs, for the SA
    /// `new` that took them over in an IKE SA rekey (§1.3.2).
    pub(super) fn hand_over_work(&mut self, old: SaId, new: SaId, now: Millis) {
        let moved = self
            .sas
            .get_mut(old)
            .map(|sa| sa.tm.take_queued(Work::of_the_ike_sa))
            .unwrap_or_default();
        if let Some(sa) = self.sas.get_mut(new) {
            for w in moved {
                sa.tm.queue(w);
            }
        }
        self.activate_next(new, now);
    }

    /// Retransmissions and give-ups due on SA `idx` (RFC 7296 §2.1, §2.4);
    /// false if the SA is gone.
    pub(super) fn retransmissions(&mut self, idx: SaId, now: Millis) -> bool {
        let Some(sa) = self.sas.get_mut(idx) else { return false };
        let r = sa
            .tm
            .retransmit(now, &self.policy, (sa.local, sa.remote), &mut self.transmits);
        if !r.lines.is_empty() && sa.state == State::AuthSent && sa.contact_sent.is_some() {
            // Our INITIAL_CONTACT goes out again: the moment the peer acts
            // on it may be now (see `Engine::settle_duplicate`).
            self.order += 1;
            sa.contact_sent = Some(self.order);
        }
        let (remote, conn, established) = (
            sa.remote,
            sa.conn,
            matches!(sa.state, State::Established | State::Replaced),
        );
        for line in r.lines {
            self.log(conn, line);
        }
        let Some(g) = r.gave_up.into_iter().next() else {
            return true;
        };
        if self
            .sas
            .get(idx)
            .is_some_and(|s| s.duplicate.is_some() && s.state == State::Deleting)
        {
            // The DELETE of a duplicate IKE SA went unanswered: the peer
            // never learnt of it (after two rekeys at once, the answer that
            // made it was lost and the peer took its rekey for failed), or
            // the peer is gone, which the survivor's own exchanges tell.
            // Not a failure, and no restart: the survivor carries on.
            self.remove(idx, "duplicate deleted by us (the peer did not know it)");
            return false;
        }
        self.fail(conn, g.failure(remote));
        self.remove(idx, "peer not answering");
        // Dead peer detection's action (RFC 7296 §2.4).
        if established && self.conns[conn].timers.dpd_restart {
            let name = self.conns[conn].name.clone();
            self.log(conn, "dead peer: initiating again (dpd_action = restart)".into());
            let _ = self.initiate(&name, now);
        }
        false
    }
}
