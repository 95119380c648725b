//! IKE_AUTH (RFC 7296 §1.2), both roles: identities and AUTH with a
//! pre-shared key (§2.15), INITIAL_CONTACT (§2.4), and the first CHILD SA,
//! which comes without a key exchange (§1.2).
//!
//! ```text
//! HDR, SK {IDi, AUTH, N(INITIAL_CONTACT), SAi2, TSi, TSr, V}  -->
//!                              <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr, V}
//! ```
//!
//! Each side's Vendor ID (V, RFC 7296 §3.12) says it takes full trains of
//! ESP in UDP ([`TRAINS_VENDOR_ID`]). It goes in IKE_AUTH rather than
//! IKE_SA_INIT: encrypted, so a passive observer does not learn what runs
//! the gateway, and read only once AUTH has verified.

use super::*;

impl Engine {
    pub(super) fn send_auth_request(&mut self, idx: SaId, now: Millis) {
        let spi = self.random_spi32();
        // §2.4: INITIAL_CONTACT only when no other IKE SA with this peer is
        // up (as strongSwan does), or a peer that gets it would delete an SA
        // we still use; nor while the peer is setting one up with us (both
        // sides initiating): a peer that acts on it at once would drop its
        // own SA without a DELETE and leave ours stale.
        let first_contact = self.with_same_peer(idx, true).is_empty();
        self.order += 1;
        let order = self.order;
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let conn = sa.conn;
        let c = &self.conns[conn];
        let (Some(suite), Some(keys)) = (sa.suite, sa.keys.as_ref()) else {
            return;
        };
        let auth = psk_auth(
            suite.prf,
            &c.psk,
            &sa.init_req,
            &sa.nr,
            keys.sk_p(Role::Initiator),
            &c.local_id.rest_of_id_payload(),
        );
        // SAi2 without KE transforms (RFC 7296 §1.2): IKE_AUTH carries no
        // KEi, so this CHILD SA has no PFS; the group is for rekeys.
        #[allow(unused_mut)]
        let mut offer = ike_auth_proposals(&c.esp_proposals);
        #[cfg(test)]
        if self.ke_in_ike_auth {
            offer = c.esp_proposals.clone();
        }
        let props: Vec<Vec<CTransform>> = offer.iter().map(|p| p.transforms()).collect();
        let mut payloads = vec![
            Payload::IdI(c.local_id.clone()),
            Payload::Auth(AuthPayload {
                auth_method: AuthMethod::SHARED_KEY_MIC,
                data: auth,
            }),
            Payload::Sa(proposals_payload(ProtocolId::ESP, &spi.to_be_bytes(), &props)),
            Payload::TsI(ts_payload(&c.local_ts)),
            Payload::TsR(ts_payload(&c.remote_ts)),
            trains_vendor_id(),
        ];
        if first_contact {
            payloads.insert(
                2,
                Payload::Notify(NotifyPayload::new(NotifyType::INITIAL_CONTACT, vec![])),
            );
            sa.contact_sent = Some(order);
        }
        sa.state = State::AuthSent;
        if let Err(e) = self.send_encrypted_request(
            idx,
            ExchangeType::IKE_AUTH,
            payloads,
            Pending::Auth { spi_in: spi },
            now,
        ) {
            self.fail(conn, Failure::Local(format!("building IKE_AUTH: {e}")));
            self.remove(idx, "failed");
        }
    }

    /// The IKE_AUTH response; `spi_in`: the SPI we offered for the CHILD SA.
    pub(super) fn auth_response(
        &mut self,
        idx: SaId,
        now: Millis,
        header: &HeaderRepr,
        inner: Vec<Payload>,
        spi_in: u32,
    ) {
        let Some(sa) = self.sas.get(idx) else { return };
        let conn = sa.conn;
        let remote = sa.remote;
        self.log(conn, format!("received {} from {remote}", summary(header, &inner)));
        let c = self.conns[conn].clone();
        let has_auth = inner.iter().any(|p| matches!(p, Payload::Auth(_)));
        // An error without AUTH means the IKE SA failed; with AUTH, the IKE
        // SA stands and only the CHILD SA failed (RFC 7296 §1.2, §2.21.2).
        let child_error = auth_response_error(&c, &inner);
        if let (Some(why), false) = (&child_error, has_auth) {
            self.fail(conn, why.clone());
            self.remove(idx, "failed");
            return;
        }
        if !self.auth_response_verify(idx, conn, &c, &inner) {
            return;
        }
        self.initial_contact(idx, &inner);
        self.peer_vendor_ids(idx, &inner);
        self.establish(idx, now);
        let duplicate = self.settle_duplicate(idx, now);
        if !duplicate {
            // The connection's other CHILD SAs, one CREATE_CHILD_SA each
            // (§1.3.1), queued behind each other, whatever became of the
            // first one; not on an IKE SA that is to go.
            self.create_other_children(idx, now);
        }
        if let Some(why) = child_error {
            self.fail(conn, why);
            return;
        }
        self.auth_response_child(idx, now, conn, &inner, spi_in, duplicate);
    }

    /// The responder's IDr must be the one we expect and its AUTH must
    /// verify (§2.15); false if not (the SA then failed).
    fn auth_response_verify(&mut self, idx: SaId, conn: ConnId, c: &ConnSpec, inner: &[Payload]) -> bool {
        let idr = first!(inner, Payload::IdR(i) => i.clone());
        let auth = first!(inner, Payload::Auth(a) => a.clone());
        let (Some(idr), Some(auth)) = (idr, auth) else {
            self.fail(
                conn,
                Failure::PeerMisbehaved("IKE_AUTH response without IDr or AUTH".into()),
            );
            self.remove(idx, "failed");
            return false;
        };
        if idr != c.remote_id {
            self.fail(
                conn,
                Failure::IdMismatch {
                    expected: id_string(&c.remote_id),
                    received: id_string(&idr),
                },
            );
            self.remove(idx, "failed");
            return false;
        }
        let sa = self.sas.get(idx).expect("checked above");
        let (Some(suite), Some(keys)) = (sa.suite, sa.keys.as_ref()) else {
            return false;
        };
        if auth.auth_method != AuthMethod::SHARED_KEY_MIC
            || verify_psk_auth(
                suite.prf,
                &c.psk,
                &sa.init_resp,
                &sa.ni,
                keys.sk_p(Role::Responder),
                &idr.rest_of_id_payload(),
                &auth.data,
            )
            .is_err()
        {
            self.fail(
                conn,
                Failure::AuthenticationFailed {
                    detail: "the peer's AUTH payload did not verify".into(),
                },
            );
            self.remove(idx, "failed");
            return false;
        }
        true
    }

    /// The CHILD SA of an authenticated IKE_AUTH response: the proposal the
    /// responder chose and the selectors it narrowed to (§2.9).
    fn auth_response_child(
        &mut self,
        idx: SaId,
        now: Millis,
        conn: ConnId,
        inner: &[Payload],
        spi_in: u32,
        duplicate: bool,
    ) {
        let c = self.conns[conn].clone();
        let chosen = first!(inner, Payload::Sa(s) if s.proposals.len() == 1 => s.proposals[0].clone());
        let tsi = first!(inner, Payload::TsI(t) => ranges(t));
        let tsr = first!(inner, Payload::TsR(t) => ranges(t));
        let (Some(chosen), Some(tsi), Some(tsr)) = (chosen, tsi, tsr) else {
            self.fail(
                conn,
                Failure::PeerMisbehaved("IKE_AUTH response without SA, TSi or TSr: no CHILD SA".into()),
            );
            return;
        };
        // We offered no KE transforms (§1.2); a KE transform in the answer
        // is ignored (there is no KEr to go with it).
        let suite_child = ChildProposal::from_transforms(&from_wire(&chosen)).without_ke();
        let Some(cs) = ike_auth_proposals(&c.esp_proposals)
            .iter()
            .find_map(|p| p.select(&suite_child))
        else {
            self.fail(
                conn,
                Failure::PeerMisbehaved("peer chose an ESP proposal we did not offer".into()),
            );
            return;
        };
        let Some(spi_out) = chosen.spi_u32() else {
            self.fail(conn, Failure::PeerMisbehaved("peer's ESP SPI is not 4 bytes".into()));
            return;
        };
        // TSi is ours, TSr the peer's: they must lie within what we asked for.
        let local_ts = narrow(&tsi, &c.local_ts);
        let remote_ts = narrow(&tsr, &c.remote_ts);
        if local_ts.is_empty() || remote_ts.is_empty() {
            self.fail(
                conn,
                Failure::TsUnacceptable {
                    ours_local: ts_list(&c.local_ts),
                    ours_remote: ts_list(&c.remote_ts),
                    theirs_i: ts_list(&tsi),
                    theirs_r: ts_list(&tsr),
                },
            );
            return;
        }
        let (ni, nr) = self
            .sas
            .get(idx)
            .map(|s| (s.ni.clone(), s.nr.clone()))
            .unwrap_or_default();
        self.install_child(
            idx,
            now,
            NewChild {
                suite: cs,
                spi_in,
                spi_out,
                local_ts,
                remote_ts,
                ni,
                nr,
                pfs: None,
                role: Role::Initiator,
                replaces: None,
                activate: !duplicate,
                rekey_of: None,
                pair: 0,
            },
        );
    }

    pub(super) fn auth_request(&mut self, idx: SaId, now: Millis, header: &HeaderRepr, inner: Vec<Payload>) {
        let (tsi, tsr) = self.choose_conn(idx, &inner);
        let Some(conn) = self.sas.get(idx).map(|sa| sa.conn) else {
            return;
        };
        let c = self.conns[conn].clone();
        let mid = header.message_id;
        if !self.auth_request_verify(idx, conn, mid, &c, &inner) {
            return;
        }
        // AUTH verified: only now may INITIAL_CONTACT delete anything.
        self.initial_contact(idx, &inner);
        self.peer_vendor_ids(idx, &inner);
        let Some(sa) = self.sas.get(idx) else { return };
        let (Some(suite), Some(keys)) = (sa.suite, sa.keys.as_ref()) else {
            return;
        };
        let our_auth = psk_auth(
            suite.prf,
            &c.psk,
            &sa.init_resp,
            &sa.ni,
            keys.sk_p(Role::Responder),
            &c.local_id.rest_of_id_payload(),
        );
        let mut payloads = vec![
            Payload::IdR(c.local_id.clone()),
            Payload::Auth(AuthPayload {
                auth_method: AuthMethod::SHARED_KEY_MIC,
                data: our_auth,
            }),
        ];
        // The CHILD SA: proposal, selectors.
        let offered = first!(inner, Payload::Sa(s) => s.proposals.clone());
        let (child, child_error) = match (offered, tsi, tsr) {
            (Some(offered), Some(tsi), Some(tsr)) => auth_request_child(&c, &offered, &tsi, &tsr),
            _ => (None, None),
        };
        let spi_in = self.random_spi32();
        match &child {
            Some(ch) => {
                let mut sa_p = proposals_payload(
                    ProtocolId::ESP,
                    &spi_in.to_be_bytes(),
                    &[child_suite_transforms(&ch.suite)],
                );
                sa_p.proposals[0].proposal_num = ch.num;
                payloads.push(Payload::Sa(sa_p));
                payloads.push(Payload::TsI(ts_payload(&ch.remote_ts)));
                payloads.push(Payload::TsR(ts_payload(&ch.local_ts)));
            }
            None => {
                if let Some((n, _)) = &child_error {
                    payloads.push(Payload::Notify(NotifyPayload::new(*n, vec![])));
                }
            }
        }
        payloads.push(trains_vendor_id());
        if self
            .send_encrypted_response(idx, ExchangeType::IKE_AUTH, mid, payloads)
            .is_err()
        {
            return;
        }
        self.establish(idx, now);
        let duplicate = self.settle_duplicate(idx, now);
        if let Some((_, why)) = child_error {
            self.fail(conn, why);
        }
        if let Some(ch) = child {
            let (ni, nr) = self
                .sas
                .get(idx)
                .map(|s| (s.ni.clone(), s.nr.clone()))
                .unwrap_or_default();
            self.install_child(
                idx,
                now,
                NewChild {
                    suite: ch.suite,
                    spi_in,
                    spi_out: ch.spi_out,
                    local_ts: ch.local_ts,
                    remote_ts: ch.remote_ts,
                    ni,
                    nr,
                    pfs: None,
                    role: Role::Responder,
                    replaces: None,
                    activate: !duplicate,
                    rekey_of: None,
                    pair: ch.pair,
                },
            );
        }
    }

    /// The initiator's IDi must be the connection's and its AUTH must
    /// verify (§2.15); if not, the request is answered with the error and
    /// the SA goes (false).
    fn auth_request_verify(&mut self, idx: SaId, conn: ConnId, mid: u32, c: &ConnSpec, inner: &[Payload]) -> bool {
        let fail_with = |e: &mut Engine, n: NotifyType, why: Failure| {
            e.fail(conn, why);
            let _ = e.send_encrypted_response(
                idx,
                ExchangeType::IKE_AUTH,
                mid,
                vec![Payload::Notify(NotifyPayload::new(n, vec![]))],
            );
            e.remove(idx, "failed");
        };
        let idi = first!(inner, Payload::IdI(i) => i.clone());
        let auth = first!(inner, Payload::Auth(a) => a.clone());
        let (Some(idi), Some(auth)) = (idi, auth) else {
            fail_with(
                self,
                NotifyType::INVALID_SYNTAX,
                Failure::PeerMisbehaved("IKE_AUTH request without IDi or AUTH (EAP is not supported)".into()),
            );
            return false;
        };
        if idi != c.remote_id {
            // RFC 7296 §2.21.2: an identity we do not accept is an AUTHENTICATION_FAILED.
            fail_with(
                self,
                NotifyType::AUTHENTICATION_FAILED,
                Failure::IdMismatch {
                    expected: id_string(&c.remote_id),
                    received: id_string(&idi),
                },
            );
            return false;
        }
        let Some(sa) = self.sas.get(idx) else { return false };
        let (Some(suite), Some(keys)) = (sa.suite, sa.keys.as_ref()) else {
            return false;
        };
        if auth.auth_method != AuthMethod::SHARED_KEY_MIC
            || verify_psk_auth(
                suite.prf,
                &c.psk,
                &sa.init_req,
                &sa.nr,
                keys.sk_p(Role::Initiator),
                &idi.rest_of_id_payload(),
                &auth.data,
            )
            .is_err()
        {
            fail_with(
                self,
                NotifyType::AUTHENTICATION_FAILED,
                Failure::AuthenticationFailed {
                    detail: "the initiator's AUTH payload did not verify".into(),
                },
            );
            return false;
        }
        true
    }

    /// The Vendor IDs of an authenticated IKE_AUTH: whether the peer takes
    /// full trains. Unknown ones are ignored (§3.12).
    fn peer_vendor_ids(&mut self, idx: SaId, inner: &[Payload]) {
        let trains = inner
            .iter()
            .any(|p| matches!(p, Payload::VendorId(v) if v.vendor_id == TRAINS_VENDOR_ID));
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.peer_trains = trains;
        }
    }

    /// RFC 7296 §2.4: INITIAL_CONTACT in an authenticated IKE_AUTH says
    /// this is the only IKE SA between the two identities, so the peer has
    /// restarted and forgotten the others: delete ours with the same
    /// authenticated peer identity (and their CHILD SAs) without a DELETE,
    /// which the peer could not read anyway. Called only after AUTH
    /// verified, so a forged IKE_AUTH deletes nothing.
    fn initial_contact(&mut self, idx: SaId, inner: &[Payload]) {
        if notify(inner, NotifyType::INITIAL_CONTACT).is_none() {
            return;
        }
        // Only the SAs that were up before this one began: one established
        // since was set up at the same time (both sides initiating, the
        // peer's INITIAL_CONTACT sent before it knew of ours), and the peer
        // still holds it; [`Engine::settle_duplicate`] deals with those.
        #[allow(unused_mut)]
        let mut began = self.sas.get(idx).map_or(Millis(0), |s| s.created_at);
        #[cfg(test)]
        if self.contact_drops_all {
            began = Millis(u64::MAX);
        }
        let before: Vec<SaId> = self
            .with_same_peer(idx, false)
            .into_iter()
            .filter(|&i| {
                self.sas
                    .get(i)
                    .is_some_and(|s| s.established_at.is_some_and(|t| t < began))
            })
            .collect();
        for i in before {
            if let Some(conn) = self.sas.get(i).map(|s| s.conn) {
                self.log(conn, "deleting IKE_SA of the same peer: it sent INITIAL_CONTACT".into());
            }
            self.remove(i, "peer sent INITIAL_CONTACT");
        }
    }
}

/// Ours: we take full trains of ESP in UDP (see the module's header).
fn trains_vendor_id() -> Payload {
    Payload::VendorId(VendorIdPayload {
        vendor_id: TRAINS_VENDOR_ID.to_vec(),
    })
}

/// What an error notify in the IKE_AUTH response means, in words for
/// the operator (RFC 7296 §2.21.2).
fn auth_response_error(c: &ConnSpec, inner: &[Payload]) -> Option<Failure> {
    first_error_notify(inner).map(|n| match n.notify_type {
        NotifyType::AUTHENTICATION_FAILED => Failure::AuthenticationFailed {
            detail: "the peer could not verify our AUTH payload".into(),
        },
        NotifyType::NO_PROPOSAL_CHOSEN => Failure::PeerRejectedProposals {
            exchange: "IKE_AUTH (CHILD SA)",
            offered: ike_auth_proposals(&c.esp_proposals)
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", "),
        },
        NotifyType::TS_UNACCEPTABLE => Failure::TsUnacceptable {
            ours_local: ts_list(&c.local_ts),
            ours_remote: ts_list(&c.remote_ts),
            theirs_i: "(refused by the peer)".into(),
            theirs_r: String::new(),
        },
        t => Failure::PeerRefused {
            exchange: Some("IKE_AUTH"),
            notify: t.to_string(),
        },
    })
}

/// The CHILD SA an IKE_AUTH responder accepts: our suite, the peer's SPI,
/// the number of its proposal, our selectors and the connection's CHILD SA.
struct AuthChild {
    suite: ChildSuite,
    spi_out: u32,
    num: u8,
    local_ts: Vec<TsRange>,
    remote_ts: Vec<TsRange>,
    pair: usize,
}

/// The CHILD SA of an IKE_AUTH request (RFC 7296 §1.2, §2.9), or the
/// notify that refuses it and why.
fn auth_request_child(
    c: &ConnSpec,
    offered: &[Proposal],
    tsi: &[TsRange],
    tsr: &[TsRange],
) -> (Option<AuthChild>, Option<(NotifyType, Failure)>) {
    // KE transforms play no part here (RFC 7296 §1.2: no KEi in
    // IKE_AUTH); a peer that offers them anyway (RFC 7296 says it
    // must not) still gets its CHILD SA, without PFS, as strongSwan
    // does when it selects in IKE_AUTH.
    let accepted = ike_auth_proposals(&c.esp_proposals);
    let mut pick = None;
    'o: for ours in &accepted {
        for p in offered.iter().filter(|p| p.protocol_id == ProtocolId::ESP) {
            if let (Some(s), Some(spi)) = (
                ours.select(&ChildProposal::from_transforms(&from_wire(p)).without_ke()),
                p.spi_u32(),
            ) {
                pick = Some((s, spi, p.proposal_num));
                break 'o;
            }
        }
    }
    // Initiator's TSi is the peer's side (our remote), TSr ours;
    // whichever of the connection's CHILD SAs they select (§2.9).
    let (pair, local_ts, remote_ts) = children::pick_child(c, tsi, tsr).unwrap_or_default();
    match pick {
        None => (
            None,
            Some((
                NotifyType::NO_PROPOSAL_CHOSEN,
                Failure::NoProposalChosen {
                    exchange: "IKE_AUTH (CHILD SA)",
                    offered: offered
                        .iter()
                        .map(|p| ChildProposal::from_transforms(&from_wire(p)).name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    accepted: accepted.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
                },
            )),
        ),
        Some(_) if local_ts.is_empty() || remote_ts.is_empty() => (
            None,
            Some((
                NotifyType::TS_UNACCEPTABLE,
                Failure::TsUnacceptable {
                    ours_local: ts_list(&c.local_ts),
                    ours_remote: ts_list(&c.remote_ts),
                    theirs_i: ts_list(tsi),
                    theirs_r: ts_list(tsr),
                },
            )),
        ),
        Some((suite, spi_out, num)) => (
            Some(AuthChild {
                suite,
                spi_out,
                num,
                local_ts,
                remote_ts,
                pair,
            }),
            None,
        ),
    }
}
