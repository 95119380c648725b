//! Keepalives for the stateful firewalls and NATs on the path (issue 13
//! point 3; RFC 3948 §2.3 and §4, RFC 7296 §1.4 and §2.4).
//!
//! A stateful firewall that admits IKE only as a reply to our own outbound
//! UDP flow (a cloud security group admitting ESP only) forgets that flow
//! after its UDP stream timeout (180 s on AWS). From then on the peer's next
//! request (a rekey, a DPD) is dropped on its way in, the peer gives up and
//! deletes its SAs, and we keep ours: a half-dead tunnel. ESP does not help
//! (raw ESP is another flow), and DPD does not either while traffic flows
//! (it waits for silence from the peer's IKE, and answers refresh nothing
//! on a path where the request never arrives).
//!
//! So, with `Timers::keepalive` set, at least one packet of ours goes out
//! on the IKE SA's UDP flow per interval: nothing extra when anything of
//! ours (a request, a retransmission, a response) went out within it; else
//! on UDP 4500 (UDP-encapsulated, the NAT-T port) a NAT-keepalive octet,
//! on UDP 500 an empty INFORMATIONAL request, which the peer must answer
//! (so its firewall's state for the flow is refreshed too), and which,
//! unanswered, ends the IKE SA exactly as an unanswered DPD does (the
//! retransmission policy, then `dpd_action`).
//!
//! The NAT-keepalive behind a NAT (every [`NAT_KEEPALIVE`]) stays as it
//! was, but is skipped when something of ours went out within its interval
//! (RFC 3948 §4: only when no other packet was sent).

use super::*;

impl Engine {
    /// See [`crate::keepalive::note_sent`].
    pub(super) fn note_sent(&mut self, from: usize, now: Millis) {
        crate::keepalive::note_sent(&self.transmits, from, now, self.sas.iter_mut());
    }

    /// When the configured keepalive of SA `s` is due, if it is on and one
    /// can go: on UDP 500 only with nothing in flight (an exchange in
    /// flight is retransmitted on its own schedule, and a liveness check
    /// would only wait behind it; asking again then would spin).
    pub(super) fn keepalive_due(&self, s: &IkeSa) -> Option<Millis> {
        let k = self.conns[s.conn].timers.keepalive;
        if k.is_zero() || s.state != State::Established {
            return None;
        }
        let encapsulated = s.local.port() == NAT_T_PORT;
        (encapsulated || !s.tm.busy()).then(|| s.last_sent + k)
    }

    /// The keepalives due on SA `idx`: the NAT-keepalive behind a NAT, and
    /// the configured one (see the module's note).
    pub(super) fn keepalives(&mut self, idx: SaId, now: Millis) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        if sa.state != State::Established {
            return;
        }
        let mut octet = false;
        if sa.keepalive_at.is_some_and(|k| now >= k) {
            // RFC 3948 §4: only when nothing else of ours went out.
            octet = now >= sa.last_sent + NAT_KEEPALIVE;
            sa.keepalive_at = Some(if octet { now } else { sa.last_sent } + NAT_KEEPALIVE);
        }
        let due = self.keepalive_due(self.sas.get(idx).expect("checked above"));
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let mut liveness = false;
        if due.is_some_and(|d| now >= d) {
            if sa.local.port() == NAT_T_PORT {
                octet = true;
            } else {
                liveness = true;
            }
            // Counted as sent now even if the request cannot be built, so
            // a failure does not make the timer spin.
            sa.last_sent = now;
        }
        if octet {
            let (local, remote) = (sa.local, sa.remote);
            sa.last_sent = now;
            self.transmits.push_back(Transmit {
                local,
                remote,
                data: KEEPALIVE.to_vec(),
            });
        }
        if liveness {
            let conn = sa.conn;
            let line = format!(
                "keepalive: nothing sent to the peer for {:?}, checking liveness (keeps stateful firewalls' state for the flow)",
                self.conns[conn].timers.keepalive
            );
            self.log(conn, line);
            self.queue(idx, Work::Liveness, now);
        }
    }
}
