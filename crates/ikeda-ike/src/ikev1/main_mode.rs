//! Main Mode (RFC 2409 §5, "Identity Protection" of RFC 2408 §4.5) with
//! pre-shared keys, both roles, from the second message on (the first,
//! which it shares with Aggressive Mode, is in `mod.rs`): KE and nonces with
//! NAT-D (RFC 3947 §3), then the identities and HASH_I/HASH_R, encrypted.
//!
//! ```text
//! I  HDR, SA                      -->
//! R                          <--  HDR, SA
//! I  HDR, KE, Ni [, NAT-D, NAT-D] -->
//! R          <--  HDR, KE, Nr [, NAT-D, NAT-D]
//! I  HDR*, IDii, HASH_I           -->
//! R                  <--  HDR*, IDir, HASH_R
//! ```

use super::*;

impl Engine {
    /// Initiator, MM2 in: the chosen transform; send KE, Ni, NAT-D.
    pub(super) fn mm_i2(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        let Some(m) = self.clear_msg(idx, data, h, false) else {
            return;
        };
        if let Some(Payload::Notify(n)) = first(&m.payloads, pt::NOTIFY) {
            self.peer_error(idx, n.notify_type);
            return;
        }
        let Some(Payload::Sa(sa_p)) = first(&m.payloads, pt::SA) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        let ours = p1_offers(&self.conns[conn].spec);
        let chosen = sa_p
            .proposals
            .first()
            .and_then(|p| p.transforms.first())
            .and_then(|t| parse_p1_transform(t).ok())
            .filter(|(c, _)| ours.contains(c));
        let Some((c, _)) = chosen else {
            self.fail(
                conn,
                Failure::PeerMisbehaved("peer chose a phase-1 transform we did not offer".into()),
            );
            self.remove(idx, "bad response");
            return;
        };
        let kex = match KeyExchange::generate(c.group, &mut *self.rng) {
            Ok(k) => k,
            Err(e) => {
                self.fail(conn, Failure::Local(format!("key exchange: {e}")));
                self.remove(idx, "key exchange");
                return;
            }
        };
        let ni = self.nonce();
        {
            let Some(sa) = self.sas.get_mut(idx) else { return };
            sa.rcookie = h.rcookie;
            sa.choice = Some(c);
            sa.gxi = kex.public_value().to_vec();
            sa.ni = ni.clone();
            sa.kex = Some(kex);
            sa.peer_vendor_ids(&m.payloads);
            sa.state = P1State::MmI2;
            sa.tm.complete(0);
        }
        let gxi = self.sas.get(idx).map(|s| s.gxi.clone()).unwrap_or_default();
        let mut payloads = vec![Payload::Ke(gxi), Payload::Nonce(ni)];
        if self.sas.get(idx).is_some_and(|s| s.peer_nat_t) {
            payloads.extend(self.nat_d(idx));
        }
        let hh = self.header(idx, ExchangeType::IDENTITY_PROTECTION, 0);
        let d = Message::build(&hh, &payloads);
        self.log_msg(idx, true, hh.exchange, 0, true, &payloads);
        self.accepted(idx, 0, data, None);
        self.send_outstanding(idx, now, d, Exchange::IdProt);
    }

    /// Responder, MM3 in: KE, Ni, NAT-D; send ours and derive the keys.
    pub(super) fn mm_r2(&mut self, idx: SaId, _now: Millis, data: &[u8], h: &Header) {
        let Some(m) = self.clear_msg(idx, data, h, true) else {
            return;
        };
        let (Some(Payload::Ke(gxi)), Some(Payload::Nonce(ni))) = (
            first(&m.payloads, pt::KE).cloned(),
            first(&m.payloads, pt::NONCE).cloned(),
        ) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(c) = self.sas.get(idx).and_then(|s| s.choice) else {
            return;
        };
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        let kex = match KeyExchange::generate(c.group, &mut *self.rng) {
            Ok(k) => k,
            Err(e) => {
                self.fail(conn, Failure::Local(format!("key exchange: {e}")));
                return;
            }
        };
        let nr = self.nonce();
        {
            let Some(sa) = self.sas.get_mut(idx) else { return };
            sa.gxi = gxi;
            sa.ni = ni;
            sa.gxr = kex.public_value().to_vec();
            sa.nr = nr.clone();
            sa.kex = Some(kex);
        }
        if !self.derive(idx) {
            return;
        }
        self.check_nat_d(idx, &m.payloads);
        let gxr = self.sas.get(idx).map(|s| s.gxr.clone()).unwrap_or_default();
        let mut payloads = vec![Payload::Ke(gxr), Payload::Nonce(nr)];
        if self.sas.get(idx).is_some_and(|s| s.peer_nat_t) {
            payloads.extend(self.nat_d(idx));
        }
        let hh = self.header(idx, ExchangeType::IDENTITY_PROTECTION, 0);
        let d = Message::build(&hh, &payloads);
        self.log_msg(idx, true, hh.exchange, 0, false, &payloads);
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.state = P1State::MmR2;
        }
        self.accepted(idx, 0, data, Some(&d));
        self.send(idx, d);
        // The initiator sends MM5 to 4500 when it saw a NAT.
        self.float(idx);
    }

    /// Initiator, MM4 in: derive the keys; send IDii, HASH_I encrypted.
    pub(super) fn mm_i3(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        let Some(m) = self.clear_msg(idx, data, h, false) else {
            return;
        };
        let (Some(Payload::Ke(gxr)), Some(Payload::Nonce(nr))) = (
            first(&m.payloads, pt::KE).cloned(),
            first(&m.payloads, pt::NONCE).cloned(),
        ) else {
            self.stats.malformed += 1;
            return;
        };
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.gxr = gxr;
            sa.nr = nr;
            sa.tm.complete(0);
        }
        self.accepted(idx, 0, data, None);
        if !self.derive(idx) {
            return;
        }
        self.check_nat_d(idx, &m.payloads);
        self.float(idx);
        let Some(sa) = self.sas.get(idx) else { return };
        let conn = sa.conn;
        let (Some(c), Some(keys)) = (sa.choice, sa.keys.as_ref()) else {
            return;
        };
        let id = id_payload(&self.conns[conn].spec.local_id);
        let idii_b = Payload::Id(id.clone()).encode_body();
        let hash_i = sa.hash_i(c.hash, keys, &idii_b);
        let payloads = vec![Payload::Id(id), Payload::Hash(hash_i)];
        let Some(d) = self.seal_p1(idx, ExchangeType::IDENTITY_PROTECTION, true, &payloads) else {
            return;
        };
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.state = P1State::MmI3;
        }
        self.send_outstanding(idx, now, d, Exchange::IdProt);
    }

    /// MM5 (from the initiator) or MM6 (from the responder) in: decrypt,
    /// check the peer's ID and its HASH_I or HASH_R over it (RFC 2409
    /// §5), and only then move the IV chain on; the message's payloads.
    /// Anything that does not verify is dropped without effect: a forger
    /// must not be able to end an exchange in progress.
    fn open_id_hash(&mut self, idx: SaId, data: &[u8], h: &Header, from_initiator: bool) -> Option<Vec<ParsedPayload>> {
        let (p, plain_b, last_in) = self.open_p1(idx, data, h)?;
        self.log_msg(idx, false, h.exchange, 0, from_initiator, &plain(&p));
        let (Some(Payload::Id(id)), Some(Payload::Hash(got))) =
            (first(&p, pt::ID).cloned(), first(&p, pt::HASH).cloned())
        else {
            self.stats.malformed += 1;
            return None;
        };
        let id_b = p
            .iter()
            .find(|x| x.payload.kind() == pt::ID)
            .map(|x| plain_b[x.body.clone()].to_vec())
            .unwrap_or_default();
        let sa = self.sas.get(idx)?;
        let (c, keys) = (sa.choice?, sa.keys.as_ref()?);
        let want = if from_initiator {
            sa.hash_i(c.hash, keys, &id_b)
        } else {
            sa.hash_r(c.hash, keys, &id_b)
        };
        if !c1::hash_matches(&want, &got) {
            self.stats.hash_failed += 1;
            self.unreadable(idx);
            return None;
        }
        self.commit_p1_iv(idx, last_in);
        self.check_peer_id(idx, &id).then_some(p)
    }

    /// Responder, MM5 in: check IDii and HASH_I; send IDir, HASH_R.
    pub(super) fn mm_r3(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        let Some(p) = self.open_id_hash(idx, data, h, true) else {
            return;
        };
        let Some(sa) = self.sas.get(idx) else { return };
        let (Some(c), Some(keys)) = (sa.choice, sa.keys.as_ref()) else {
            return;
        };
        let conn = sa.conn;
        let our_id = id_payload(&self.conns[conn].spec.local_id);
        let idir_b = Payload::Id(our_id.clone()).encode_body();
        let hash_r = sa.hash_r(c.hash, keys, &idir_b);
        let payloads = vec![Payload::Id(our_id), Payload::Hash(hash_r)];
        let Some(d) = self.seal_p1(idx, ExchangeType::IDENTITY_PROTECTION, false, &payloads) else {
            return;
        };
        self.accepted(idx, 0, data, Some(&d));
        self.send(idx, d);
        self.established(idx, now);
        self.initial_contact_seen(idx, &p);
    }

    /// Initiator, MM6 in: check IDir and HASH_R; phase 1 is up.
    pub(super) fn mm_i_done(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        if self.open_id_hash(idx, data, h, false).is_none() {
            return;
        }
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.tm.complete(0);
        }
        self.accepted(idx, 0, data, None);
        self.established(idx, now);
        self.after_initiator_phase1(idx, now);
    }
}
