//! Rekeying the IKE SA with CREATE_CHILD_SA (RFC 7296 §1.3.2), both
//! roles, and simultaneous IKE SA rekeys (§2.8.2): of the two new SAs,
//! the one whose exchange holds the lowest of the four nonces is
//! redundant and deleted by its creator.
//!
//! ```text
//! HDR, SK {SA, Ni, KEi}  -->
//!                           <--  HDR, SK {SA, Nr, KEr}
//! HDR(old), SK {D}  -->     <--  HDR(old), SK {}
//! ```

use super::rekey::{lowest_of, CreateChildAsked, CreateChildReply};
use super::*;

impl Engine {
    pub(super) fn start_ike_rekey(&mut self, idx: SaId, now: Millis) -> Result<(), String> {
        let new_spi_i = self.random_u64();
        let ni = self.nonce();
        let sa = self.sas.get(idx).ok_or("gone")?;
        let group = sa.suite.ok_or("no suite")?.dh;
        let ke = KeyExchange::generate(group, &mut *self.rng).map_err(|e| e.to_string())?;
        let c = &self.conns[sa.conn];
        let conn = sa.conn;
        // Offer the current suite first, then the configured proposals.
        let mut props: Vec<Vec<CTransform>> = sa.suite.iter().map(super::ike_suite_transforms).collect();
        props.extend(c.ike_proposals.iter().map(|p| p.transforms()));
        let payloads = vec![
            Payload::Sa(proposals_payload(ProtocolId::IKE, &new_spi_i.to_be_bytes(), &props)),
            Payload::Nonce(NoncePayload { nonce: ni.clone() }),
            Payload::Ke(KePayload {
                dh_group: ikeda_wire::ikev2::DhGroup(group.transform_id()),
                data: ke.public_value().to_vec(),
            }),
        ];
        let task = Pending::RekeyIke { new_spi_i, ni, ke };
        self.send_encrypted_request(idx, ExchangeType::CREATE_CHILD_SA, payloads, task, now)?;
        self.log(conn, "rekeying IKE_SA".into());
        Ok(())
    }

    /// What the answer to our IKE SA rekey (§1.3.2) negotiated, or why it
    /// is no good.
    pub(super) fn ike_rekey_reply(
        &self,
        idx: SaId,
        conn: ConnId,
        reply: CreateChildReply,
        new_spi_i: u64,
        ni: Vec<u8>,
        our_ke: KeyExchange,
    ) -> Result<RekeyedIke, String> {
        if let Some(n) = reply.error {
            return Err(format!("peer answered {n}"));
        }
        let (Some(p), Some(nr), Some(theirs)) = (reply.sa, reply.nr, reply.ke) else {
            return Err("SA, Nr or KEr missing".into());
        };
        let offered = IkeProposal::from_transforms(&from_wire(&p));
        let current = self.sas.get(idx).and_then(|s| s.suite).map(|s| IkeProposal {
            encr: vec![s.encr],
            integ: s.integ.into_iter().collect(),
            prf: vec![s.prf],
            dh: vec![s.dh],
        });
        let suite = self.conns[conn]
            .ike_proposals
            .iter()
            .chain(current.as_ref())
            .find_map(|o| o.select(&offered))
            .ok_or("peer chose a proposal we did not offer")?;
        if p.spi.len() != 8 || suite.dh != our_ke.group() {
            return Err("bad SPI or key exchange group".into());
        }
        let spi_r = u64::from_be_bytes(p.spi[..8].try_into().unwrap_or([0; 8]));
        let shared = our_ke
            .shared_secret(&theirs)
            .map_err(|e| format!("peer's KE refused: {e}"))?;
        Ok(RekeyedIke {
            suite,
            shared,
            spi_i: new_spi_i,
            spi_r,
            ni,
            nr,
            we_initiated: true,
        })
    }

    /// IKE SA rekey, responder (§1.3.2).
    pub(super) fn ike_rekey_request(
        &mut self,
        idx: SaId,
        now: Millis,
        conn: ConnId,
        proposals: &[Proposal],
        asked: CreateChildAsked,
    ) {
        let CreateChildAsked { mid, ni, nr, ke } = asked;
        // §2.25.2: not while we close this IKE SA (or our own rekey of
        // it completed and its DELETE is on its way), nor while we
        // create, rekey or delete one of its CHILD SAs: TEMPORARY_FAILURE,
        // and the peer tries again later. Our own rekey of it in flight
        // is a collision (§2.8.2), settled when ours is answered.
        let busy = match self.sas.get(idx).map(|s| (s.state, s.tm.current().map(|c| c.0))) {
            Some((State::Established, None | Some(Pending::Liveness | Pending::RekeyIke { .. }))) => None,
            Some((State::Established, Some(p))) => Some(p.exchange_what()),
            Some((State::Deleting, _)) => Some("we are deleting it"),
            Some((State::Replaced, _)) => Some("our own rekey of it completed"),
            _ => Some("it is not established"),
        };
        if let Some(why) = busy {
            return self.refuse_create_child(
                idx,
                conn,
                mid,
                NotifyType::TEMPORARY_FAILURE,
                format!("IKE_SA rekey while {why}"),
            );
        }
        let collision = self
            .sas
            .get(idx)
            .is_some_and(|s| matches!(s.tm.current(), Some((Pending::RekeyIke { .. }, _, _))));
        let current = self.sas.get(idx).and_then(|sa| sa.suite);
        let Some((suite, new_spi_i, num)) = ike_rekey_choose(current, &self.conns[conn], proposals, ke.as_ref()) else {
            return self.refuse_create_child(
                idx,
                conn,
                mid,
                NotifyType::NO_PROPOSAL_CHOSEN,
                "no acceptable IKE proposal".into(),
            );
        };
        let Some(ke) = ke.filter(|k| k.dh_group.0 == suite.dh.transform_id()) else {
            let n = NotifyPayload::invalid_ke(ikeda_wire::ikev2::DhGroup(suite.dh.transform_id()));
            let _ = self.send_encrypted_response(idx, ExchangeType::CREATE_CHILD_SA, mid, vec![Payload::Notify(n)]);
            return;
        };
        let Ok(our_ke) = KeyExchange::generate(suite.dh, &mut *self.rng) else {
            return;
        };
        let Ok(shared) = our_ke.shared_secret(&ke.data) else {
            return self.refuse_create_child(idx, conn, mid, NotifyType::INVALID_SYNTAX, "bad KE".into());
        };
        let new_spi_r = self.random_u64();
        let mut sa_p = proposals_payload(
            ProtocolId::IKE,
            &new_spi_r.to_be_bytes(),
            &[ike_suite_transforms(&suite)],
        );
        sa_p.proposals[0].proposal_num = num;
        let payloads = vec![
            Payload::Sa(sa_p),
            Payload::Nonce(NoncePayload { nonce: nr.clone() }),
            Payload::Ke(KePayload {
                dh_group: ke.dh_group,
                data: our_ke.public_value().to_vec(),
            }),
        ];
        if self
            .send_encrypted_response(idx, ExchangeType::CREATE_CHILD_SA, mid, payloads)
            .is_ok()
        {
            let theirs = RekeyedIke {
                suite,
                shared,
                spi_i: new_spi_i,
                spi_r: new_spi_r,
                ni,
                nr,
                we_initiated: false,
            };
            if collision {
                self.log(
                    conn,
                    "IKE_SA rekey collision: the peer rekeys it too; the lowest nonce decides when ours is answered"
                        .into(),
                );
                if let Some(sa) = self.sas.get_mut(idx) {
                    sa.peer_rekey = Some(Box::new(theirs));
                }
            } else {
                self.replace_ike_sa(idx, now, &theirs);
            }
        }
    }

    /// Set up the IKE SA that a rekey of `idx` created (keys from the old
    /// SA's SK_d, §2.18), without CHILD SAs yet; its index.
    fn rekeyed_sa(&mut self, idx: SaId, now: Millis, r: &RekeyedIke) -> Option<SaId> {
        let old = self.sas.get(idx)?;
        let old_keys = old.keys.as_ref()?;
        let old_prf = old.suite?.prf;
        let keys = IkeKeys::derive_rekeyed(
            old_prf,
            &old_keys.sk_d,
            &r.suite,
            &r.shared,
            &r.ni,
            &r.nr,
            &r.spi_i.to_be_bytes(),
            &r.spi_r.to_be_bytes(),
        )
        .ok()?;
        let role = if r.we_initiated {
            Role::Initiator
        } else {
            Role::Responder
        };
        let (out, inn) = keys.sk_ciphers(&r.suite, role).ok()?;
        let new = IkeSa {
            nat: old.nat,
            ni: r.ni.clone(),
            nr: r.nr.clone(),
            suite: Some(r.suite),
            keys: Some(keys),
            sk_out: Some(out),
            sk_in: Some(inn),
            us_nat: old.us_nat,
            peer_trains: old.peer_trains,
            ..IkeSa::new(
                old.conn,
                r.we_initiated,
                (r.spi_i, r.spi_r),
                State::Established,
                (old.local, old.remote),
                now,
            )
        };
        let conn = new.conn;
        let new_idx = self.insert(new);
        self.keys_derived(new_idx);
        self.establish(new_idx, now);
        self.log(
            conn,
            format!("IKE_SA rekeyed: now {:016x}_i {:016x}_r", r.spi_i, r.spi_r),
        );
        Some(new_idx)
    }

    /// Move everything to the IKE SA that a rekey created; the old one is
    /// deleted by the rekey's initiator (§1.3.2).
    pub(super) fn replace_ike_sa(&mut self, idx: SaId, now: Millis, r: &RekeyedIke) {
        let Some(new_idx) = self.rekeyed_sa(idx, now, r) else {
            return;
        };
        let Some(old) = self.sas.get_mut(idx) else { return };
        let children = std::mem::take(&mut old.children);
        old.state = State::Replaced;
        if let Some(new) = self.sas.get_mut(new_idx) {
            new.children = children;
        }
        // What waited on the old SA for its CHILD SAs goes on on the new one.
        self.hand_over_work(idx, new_idx, now);
        if r.we_initiated {
            self.queue_first(idx, Work::DeleteIke, now);
        }
    }

    /// Our rekey of IKE SA `idx` is answered (`ours`, or an error): if the
    /// peer rekeyed it at the same time (§2.8.2), two new IKE SAs exist; the
    /// one whose exchange holds the lowest of the four nonces is redundant
    /// and deleted by whoever created it, and whoever created the survivor
    /// deletes the old SA. A failed rekey of ours leaves the peer's.
    pub(super) fn ike_rekey_done(&mut self, idx: SaId, now: Millis, ours: Result<RekeyedIke, String>) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let conn = sa.conn;
        let theirs = sa.peer_rekey.take();
        match (ours, theirs) {
            (Ok(ours), None) => self.replace_ike_sa(idx, now, &ours),
            (Err(why), None) => {
                self.log(conn, format!("IKE_SA rekey failed ({why}); retrying in 10 s"));
                if let Some(sa) = self.sas.get_mut(idx) {
                    sa.rekey_at = Some(now + Duration::from_secs(10));
                }
            }
            (Err(why), Some(theirs)) => {
                self.log(
                    conn,
                    format!("IKE_SA rekey collision: ours failed ({why}); the peer's stays"),
                );
                self.replace_ike_sa(idx, now, &theirs);
            }
            (Ok(ours), Some(theirs)) => {
                // Ours redundant: we delete it at once. The peer's
                // redundant: the peer deletes it, and until then it must
                // decrypt; if the peer never does (it did not hear our
                // answer and took ours for failed), we do, after a grace.
                let ours_lowest = lowest_of(&ours.ni, &ours.nr) < lowest_of(&theirs.ni, &theirs.nr);
                let (keep, drop, delete_at) = if ours_lowest {
                    self.log(
                        conn,
                        format!(
                            "IKE_SA rekey collision: ours ({:016x}_i) has the lowest nonce, deleting it; the peer's stays",
                            ours.spi_i
                        ),
                    );
                    (&*theirs, &ours, now)
                } else {
                    self.log(
                        conn,
                        format!(
                            "IKE_SA rekey collision: the peer's ({:016x}_i) has the lowest nonce; it deletes it",
                            theirs.spi_i
                        ),
                    );
                    (&ours, &*theirs, now + DUPLICATE_GRACE)
                };
                self.replace_ike_sa(idx, now, keep);
                if let Some(redundant) = self.rekeyed_sa(idx, now, drop) {
                    self.redundant_rekey(redundant, (keep.spi_i, keep.spi_r), now, delete_at);
                }
            }
        }
    }

    /// The new IKE SA `idx` of a rekey collision is redundant: it is never
    /// rekeyed and is deleted at `delete_at` unless the peer deletes it
    /// first (the same path as a duplicate of both sides initiating).
    fn redundant_rekey(&mut self, idx: SaId, survivor: (u64, u64), now: Millis, delete_at: Millis) {
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.rekey_at = None;
            sa.duplicate = Some(Duplicate {
                cause: REKEY_COLLISION,
                survivor,
                delete_at: Some(delete_at),
                asked: false,
                doubt_until: None,
                doubted: false,
            });
        }
        self.delete_duplicates(idx, now);
    }
}

/// What an IKE SA rekey negotiated (§1.3.2): enough to set up the new SA.
pub(super) struct RekeyedIke {
    suite: IkeSuite,
    shared: SecretBytes,
    spi_i: u64,
    spi_r: u64,
    ni: Vec<u8>,
    nr: Vec<u8>,
    we_initiated: bool,
}

/// The IKE proposal we choose for the peer's IKE SA rekey: ours in order of
/// preference, the current suite first; the group of its KEi if both have
/// it. (suite, the peer's new SPI, the number of its proposal).
fn ike_rekey_choose(
    current: Option<IkeSuite>,
    c: &ConnSpec,
    proposals: &[Proposal],
    ke: Option<&KePayload>,
) -> Option<(IkeSuite, u64, u8)> {
    let mut ours: Vec<IkeProposal> = current
        .iter()
        .map(|s| IkeProposal {
            encr: vec![s.encr],
            integ: s.integ.into_iter().collect(),
            prf: vec![s.prf],
            dh: vec![s.dh],
        })
        .collect();
    ours.extend(c.ike_proposals.iter().cloned());
    for o in &ours {
        for p in proposals
            .iter()
            .filter(|p| p.protocol_id == ProtocolId::IKE && p.spi.len() == 8)
        {
            if let Some(mut s) = o.select(&IkeProposal::from_transforms(&from_wire(p))) {
                if let Some(g) = ke.and_then(|k| ikeda_crypto::ike::DhGroup::from_transform_id(k.dh_group.0)) {
                    if o.dh.contains(&g) {
                        s.dh = g;
                    }
                }
                return Some((
                    s,
                    u64::from_be_bytes(p.spi[..8].try_into().unwrap_or([0; 8])),
                    p.proposal_num,
                ));
            }
        }
    }
    None
}
