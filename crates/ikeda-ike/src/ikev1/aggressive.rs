//! Aggressive Mode (RFC 2409 §5.4) with pre-shared keys, opt-in, both
//! roles, and the rate limit on the DH computations a responder spends on
//! it (the identity travels in the clear and the responder answers with
//! HASH_R before the initiator proved anything).
//!
//! ```text
//! I  HDR, SA, KE, Ni, IDii         -->
//! R   <-- HDR, SA, KE, Nr, IDir, HASH_R
//! I  HDR*, HASH_I                  -->
//! ```

use super::*;

impl Engine {
    /// One Aggressive Mode DH computation allowed now, for this connection
    /// and overall ([`AM_DH_PER_PEER`], [`AM_DH_GLOBAL`]); takes the tokens.
    pub(super) fn am_dh_allowed(&mut self, ci: ConnId, now: Millis) -> bool {
        let peer = self.am_dh[ci].get_or_insert_with(|| Bucket::full(AM_DH_PER_PEER, now));
        let all = self.am_dh_all.get_or_insert_with(|| Bucket::full(AM_DH_GLOBAL, now));
        if !(peer.has_token(AM_DH_PER_PEER, now) && all.has_token(AM_DH_GLOBAL, now)) {
            return false;
        }
        peer.take();
        all.take();
        true
    }

    /// Aggressive Mode responder: AM1 in (SA chosen already); send SA, KE,
    /// Nr, IDir, HASH_R, NAT-D.
    pub(super) fn aggressive_responder(
        &mut self,
        idx: SaId,
        _now: Millis,
        data: &[u8],
        m: &Message,
        reply_sa: Payload,
    ) {
        let (Some(Payload::Ke(gxi)), Some(Payload::Nonce(ni)), Some(Payload::Id(id))) = (
            first(&m.payloads, pt::KE).cloned(),
            first(&m.payloads, pt::NONCE).cloned(),
            first(&m.payloads, pt::ID).cloned(),
        ) else {
            self.stats.malformed += 1;
            self.clear(idx);
            return;
        };
        if !self.check_peer_id(idx, &id) {
            return;
        }
        let idii_b = Payload::Id(id).encode_body();
        let Some(c) = self.sas.get(idx).and_then(|s| s.choice) else {
            return;
        };
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        if gxi.len() != c.group.public_value_len() {
            self.fail(
                conn,
                Failure::PeerMisbehaved("Aggressive Mode KE does not match the chosen group".into()),
            );
            self.clear(idx);
            return;
        }
        let kex = match KeyExchange::generate(c.group, &mut *self.rng) {
            Ok(k) => k,
            Err(e) => {
                self.fail(conn, Failure::Local(format!("key exchange: {e}")));
                return;
            }
        };
        let nr = self.nonce();
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.gxi = gxi;
            sa.ni = ni;
            sa.gxr = kex.public_value().to_vec();
            sa.nr = nr.clone();
            sa.kex = Some(kex);
            sa.idii_b = idii_b;
        }
        if !self.derive(idx) {
            return;
        }
        self.check_nat_d(idx, &m.payloads);
        let Some(sa) = self.sas.get(idx) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let our_id = id_payload(&self.conns[conn].spec.local_id);
        let idir_b = Payload::Id(our_id.clone()).encode_body();
        let hash_r = sa.hash_r(c.hash, keys, &idir_b);
        let mut payloads = vec![
            reply_sa,
            Payload::Ke(sa.gxr.clone()),
            Payload::Nonce(nr),
            Payload::Id(our_id),
            Payload::Hash(hash_r),
        ];
        if sa.peer_nat_t {
            payloads.extend(self.nat_d(idx));
        }
        payloads.extend(our_vids());
        let hh = self.header(idx, ExchangeType::AGGRESSIVE, 0);
        let d = Message::build(&hh, &payloads);
        self.log_msg(idx, true, hh.exchange, 0, false, &payloads);
        self.accepted(idx, 0, data, Some(&d));
        self.send(idx, d);
        self.float(idx);
    }

    /// Aggressive Mode initiator: AM2 in; check HASH_R; send HASH_I.
    pub(super) fn am_i2(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        let Some(m) = self.clear_msg(idx, data, h, false) else {
            return;
        };
        if let Some(Payload::Notify(n)) = first(&m.payloads, pt::NOTIFY) {
            self.peer_error(idx, n.notify_type);
            return;
        }
        let (
            Some(Payload::Sa(sa_p)),
            Some(Payload::Ke(gxr)),
            Some(Payload::Nonce(nr)),
            Some(Payload::Id(id)),
            Some(Payload::Hash(got)),
        ) = (
            first(&m.payloads, pt::SA).cloned(),
            first(&m.payloads, pt::KE).cloned(),
            first(&m.payloads, pt::NONCE).cloned(),
            first(&m.payloads, pt::ID).cloned(),
            first(&m.payloads, pt::HASH).cloned(),
        )
        else {
            self.stats.malformed += 1;
            return;
        };
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        let ours = p1_offers(&self.conns[conn].spec);
        let group = self.sas.get(idx).and_then(|s| s.kex.as_ref().map(|k| k.group()));
        let chosen = sa_p
            .proposals
            .first()
            .and_then(|p| p.transforms.first())
            .and_then(|t| parse_p1_transform(t).ok())
            .filter(|(c, _)| ours.contains(c) && Some(c.group) == group);
        // AM2 is in clear and carries its own proof, HASH_R (RFC 2409
        // §5.4): nothing in it is acted on until that verifies. A spoofed
        // AM2 (a transform we did not offer, a bad KE, a HASH_R that does
        // not verify) is dropped and counted, and the SA keeps waiting for
        // the real one (a real peer's refusal shows at the timeout).
        let Some((c, _)) = chosen else {
            self.stats.malformed += 1;
            return;
        };
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let before = (
            sa.rcookie,
            sa.choice,
            std::mem::take(&mut sa.gxr),
            std::mem::take(&mut sa.nr),
        );
        (sa.rcookie, sa.choice, sa.gxr, sa.nr) = (h.rcookie, Some(c), gxr, nr);
        let idir_b = Payload::Id(id.clone()).encode_body();
        let keys = self.phase1_keys(idx).ok().filter(|keys| {
            self.sas
                .get(idx)
                .is_some_and(|sa| c1::hash_matches(&sa.hash_r(c.hash, keys, &idir_b), &got))
        });
        let Some(keys) = keys else {
            if let Some(sa) = self.sas.get_mut(idx) {
                (sa.rcookie, sa.choice, sa.gxr, sa.nr) = before;
            }
            self.stats.hash_failed += 1;
            self.unreadable(idx);
            return;
        };
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.peer_vendor_ids(&m.payloads);
            sa.tm.complete(0);
        }
        self.accepted(idx, 0, data, None);
        self.install_keys(idx, keys);
        self.authenticated(idx);
        if !self.check_peer_id(idx, &id) {
            return;
        }
        self.check_nat_d(idx, &m.payloads);
        self.float(idx);
        let Some(sa) = self.sas.get(idx) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let hash_i = sa.hash_i(c.hash, keys, &sa.idii_b);
        let mut payloads = vec![Payload::Hash(hash_i)];
        if sa.peer_nat_t {
            payloads.extend(self.nat_d(idx));
        }
        let Some(d) = self.seal_p1(idx, ExchangeType::AGGRESSIVE, true, &payloads) else {
            return;
        };
        if let Some(sa) = self.sas.get_mut(idx) {
            // AM3 answers AM2: a retransmitted AM2 gets it again.
            sa.tm.answered(0, d.clone());
        }
        self.send(idx, d);
        self.established(idx, now);
        self.after_initiator_phase1(idx, now);
    }

    /// Aggressive Mode responder: AM3 in (HASH_I, encrypted or not).
    pub(super) fn am_r_done(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        let (p, last_in) = if h.flags & FLAG_ENCRYPTION != 0 {
            let Some((p, _, last)) = self.open_p1(idx, data, h) else {
                return;
            };
            (p, Some(last))
        } else {
            let Some(m) = self.clear_msg(idx, data, h, true) else {
                return;
            };
            (m.payloads, None)
        };
        if h.flags & FLAG_ENCRYPTION != 0 {
            self.log_msg(idx, false, h.exchange, 0, true, &plain(&p));
        }
        let Some(Payload::Hash(got)) = first(&p, pt::HASH).cloned() else {
            self.stats.malformed += 1;
            return;
        };
        let Some(sa) = self.sas.get(idx) else { return };
        let (Some(c), Some(keys)) = (sa.choice, sa.keys.as_ref()) else {
            return;
        };
        let want = sa.hash_i(c.hash, keys, &sa.idii_b);
        if !c1::hash_matches(&want, &got) {
            self.stats.hash_failed += 1;
            self.unreadable(idx);
            return;
        }
        match last_in {
            Some(last) => self.commit_p1_iv(idx, last),
            None => self.authenticated(idx),
        }
        self.accepted(idx, 0, data, None);
        self.established(idx, now);
    }
}
