//! IKE_SA_INIT (RFC 7296 §1.2), both roles: the proposal and the key
//! exchange group (INVALID_KE_PAYLOAD, §1.2), COOKIEs under load (§2.6),
//! NAT detection (§2.23) and the keys (§2.14).
//!
//! ```text
//! HDR, SAi1, KEi, Ni, N(NATD_S_IP), N(NATD_D_IP)  -->
//!                              <--  HDR, SAr1, KEr, Nr, N(NATD_S_IP), N(NATD_D_IP)
//! HDR, N(COOKIE), SAi1, KEi, Ni, ...  -->  (when asked for a COOKIE)
//! ```

use super::*;

impl Engine {
    /// Half-open SAs allowed before COOKIEs are required (0: always).
    pub fn set_cookie_threshold(&mut self, n: usize) {
        self.cookie_threshold = n;
    }

    /// The COOKIE for an initiator (§2.6): `<VersionIDofSecret> |
    /// SHA-1(Ni | IPi | SPIi | <secret>)`; stateless, so a flood of spoofed
    /// IKE_SA_INIT requests creates no state here.
    fn cookie(&mut self, now: Millis, ni: &[u8], from: SocketAddr, spi_i: u64) -> Vec<u8> {
        let (version, secret) = self.cookie_secrets.current(now, self.rng.as_mut());
        cookie_with(*version, secret, ni, from, spi_i)
    }

    /// Is `cookie` one we made, with the current secret or the previous
    /// one? Compared in constant time: a timing oracle would let a spoofer
    /// build a valid COOKIE byte by byte.
    fn cookie_valid(&mut self, now: Millis, cookie: &[u8], ni: &[u8], from: SocketAddr, spi_i: u64) -> bool {
        let Some(&version) = cookie.first() else { return false };
        self.cookie_secrets
            .version(now, self.rng.as_mut(), version)
            .is_some_and(|s| ikeda_crypto::ct_eq(&cookie_with(version, s, ni, from, spi_i), cookie))
    }

    pub(super) fn send_init_request(
        &mut self,
        idx: SaId,
        group: ikeda_crypto::ike::DhGroup,
        now: Millis,
    ) -> Result<(), String> {
        // A COOKIE retry repeats the request unchanged but for the cookie
        // (§2.6: the cookie covers Ni), so keep the nonce and key exchange.
        let reuse = self
            .sas
            .get_mut(idx)
            .filter(|s| s.cookie.is_some() && s.ke.as_ref().map(|k| k.group()) == Some(group))
            .and_then(|s| s.ke.take().map(|k| (k, s.ni.clone())));
        let (ke, ni) = match reuse {
            Some(x) => x,
            None => (
                KeyExchange::generate(group, &mut *self.rng).map_err(|e| e.to_string())?,
                self.nonce(),
            ),
        };
        let fake = self.fake_natd();
        let sa = self.sas.get_mut(idx).ok_or("gone")?;
        let c = &self.conns[sa.conn];
        let src_natd = if c.force_encap {
            fake
        } else {
            natd(sa.spi_i, 0, sa.local)
        };
        let mut payloads = Vec::new();
        if let Some(cookie) = &sa.cookie {
            payloads.push(Payload::Notify(NotifyPayload::new(NotifyType::COOKIE, cookie.clone())));
        }
        let props: Vec<Vec<CTransform>> = c.ike_proposals.iter().map(|p| p.transforms()).collect();
        payloads.push(Payload::Sa(proposals_payload(ProtocolId::IKE, &[], &props)));
        payloads.push(Payload::Ke(KePayload {
            dh_group: ikeda_wire::ikev2::DhGroup(group.transform_id()),
            data: ke.public_value().to_vec(),
        }));
        payloads.push(Payload::Nonce(NoncePayload { nonce: ni.clone() }));
        payloads.push(Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            src_natd,
        )));
        payloads.push(Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            natd(sa.spi_i, 0, sa.remote),
        )));
        sa.ke = Some(ke);
        sa.ni = ni;
        let header = HeaderRepr {
            initiator_spi: sa.spi_i,
            responder_spi: 0,
            minor_version: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags::new(true, false),
            message_id: 0,
        };
        let msg = Message { header, payloads }.emit().map_err(|e| e.to_string())?;
        sa.init_req = msg.clone();
        // Sent again with a COOKIE or another group, it replaces the first
        // (message ID 0 either way, §2.6, §1.2).
        sa.tm
            .request(0, Exchange::IkeSaInit, Pending::Init, msg.clone(), now, &self.policy);
        let (local, remote, conn) = (sa.local, sa.remote, sa.conn);
        let line = format!(
            "sending {} to {remote}",
            summary(&header, &Message::parse(&msg).map(|m| m.payloads).unwrap_or_default())
        );
        self.log(conn, line);
        self.transmits.push_back(Transmit {
            local,
            remote,
            data: msg,
        });
        Ok(())
    }

    pub(super) fn init_response(
        &mut self,
        idx: SaId,
        now: Millis,
        _local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: Message,
    ) {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        self.log(conn, format!("received {} from {remote}", msg.summary()));
        if !self.sas.contains(idx)
            || self.init_response_cookie(idx, now, &msg)
            || self.init_response_invalid_ke(idx, conn, now, &msg)
            || self.init_response_refused(idx, conn, &msg)
        {
            return;
        }
        let Some((suite, ke_data)) = self.init_response_choose(idx, conn, data, &msg) else {
            return;
        };
        self.init_response_nat(idx, conn, remote, &msg);
        if !self.init_response_keys(idx, conn, suite, &ke_data) {
            return;
        }
        let Some(sa) = self.sas.get_mut(idx) else { return };
        if sa.nat {
            // §2.23: after a NAT is detected, continue on port 4500.
            sa.local.set_port(NAT_T_PORT);
            sa.remote.set_port(NAT_T_PORT);
        }
        let key = (sa.spi_i, sa.spi_r);
        self.by_spi.retain(|_, v| *v != idx);
        self.by_spi.insert(key, idx);
        self.keys_derived(idx);
        if self.sas.get(idx).is_some_and(|s| s.nat) {
            self.log(conn, "NAT detected (or forced by the peer): moving to UDP 4500".into());
        }
        self.send_auth_request(idx, now);
    }

    /// COOKIE (§2.6): start over with the cookie in front. True if the
    /// response was one.
    fn init_response_cookie(&mut self, idx: SaId, now: Millis, msg: &Message) -> bool {
        let Some(c) = notify(&msg.payloads, NotifyType::COOKIE) else {
            return false;
        };
        let cookie = c.data.clone();
        let group = self.sas.get(idx).and_then(|sa| sa.ke.as_ref().map(|k| k.group()));
        if let (Some(sa), Some(group)) = (self.sas.get_mut(idx), group) {
            sa.cookie = Some(cookie);
            let _ = self.send_init_request(idx, group, now);
        }
        true
    }

    /// INVALID_KE_PAYLOAD (§1.2): retry with the group the peer wants, if we
    /// accept it. True if the response was one.
    fn init_response_invalid_ke(&mut self, idx: SaId, conn: ConnId, now: Millis, msg: &Message) -> bool {
        let Some(n) = notify(&msg.payloads, NotifyType::INVALID_KE_PAYLOAD) else {
            return false;
        };
        let wanted = n
            .invalid_ke_group()
            .and_then(|g| ikeda_crypto::ike::DhGroup::from_transform_id(g.0));
        let ok = wanted.filter(|g| self.conns[conn].ike_proposals.iter().any(|p| p.dh.contains(g)));
        let ours = self.sas.get(idx).and_then(|sa| sa.ke.as_ref().map(|k| k.group()));
        match ok {
            Some(g) if ours != Some(g) => {
                self.log(conn, format!("peer wants key exchange group {}, retrying", g.keyword()));
                let _ = self.send_init_request(idx, g, now);
            }
            _ => {
                self.fail(
                    conn,
                    Failure::Incompatible(format!(
                        "peer asked for key exchange group {:?}, which we do not offer",
                        n.invalid_ke_group()
                    )),
                );
                self.remove(idx, "failed");
            }
        }
        true
    }

    /// Any other error notify ends the attempt. True if there was one.
    fn init_response_refused(&mut self, idx: SaId, conn: ConnId, msg: &Message) -> bool {
        let Some(n) = first_error_notify(&msg.payloads) else {
            return false;
        };
        let why = if n.notify_type == NotifyType::NO_PROPOSAL_CHOSEN {
            Failure::PeerRejectedProposals {
                exchange: "IKE_SA_INIT",
                offered: self.conns[conn]
                    .ike_proposals
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        } else {
            Failure::PeerRefused {
                exchange: Some("IKE_SA_INIT"),
                notify: n.notify_type.to_string(),
            }
        };
        self.fail(conn, why);
        self.remove(idx, "failed");
        true
    }

    /// The proposal the responder chose, its KEr and Nr: recorded on the SA
    /// with its SPI and the response (for AUTH, §2.15); None if the SA
    /// failed.
    fn init_response_choose(
        &mut self,
        idx: SaId,
        conn: ConnId,
        data: &[u8],
        msg: &Message,
    ) -> Option<(IkeSuite, KePayload)> {
        // SA: exactly one proposal, which must be one we offered.
        let chosen = first!(msg.payloads, Payload::Sa(s) if s.proposals.len() == 1 => IkeProposal::from_transforms(&from_wire(&s.proposals[0])));
        let suite = chosen.and_then(|ch| self.conns[conn].ike_proposals.iter().find_map(|ours| ours.select(&ch)));
        let ke_data = first!(msg.payloads, Payload::Ke(k) => k.clone());
        let nr = first!(msg.payloads, Payload::Nonce(n) => n.nonce.clone());
        let (Some(suite), Some(ke_data), Some(nr)) = (suite, ke_data, nr) else {
            self.fail(
                conn,
                Failure::PeerMisbehaved(
                    "malformed IKE_SA_INIT response: SA, KE or Nr missing or not one of ours".into(),
                ),
            );
            self.remove(idx, "failed");
            return None;
        };
        let sa = self.sas.get_mut(idx)?;
        if ke_data.dh_group.0 != suite.dh.transform_id() || sa.ke.as_ref().map(|k| k.group()) != Some(suite.dh) {
            self.fail(
                conn,
                Failure::PeerMisbehaved("peer's KE group differs from the chosen proposal".into()),
            );
            self.remove(idx, "failed");
            return None;
        }
        sa.spi_r = msg.header.responder_spi;
        sa.nr = nr;
        sa.init_resp = data.to_vec();
        sa.tm.complete(0);
        Some((suite, ke_data))
    }

    /// NAT detection (§2.23): does the peer see our address and port?
    fn init_response_nat(&mut self, idx: SaId, conn: ConnId, remote: SocketAddr, msg: &Message) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let src_hashes: Vec<&Vec<u8>> = msg
            .payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP => Some(&n.data),
                _ => None,
            })
            .collect();
        let dst_hash = notify(&msg.payloads, NotifyType::NAT_DETECTION_DESTINATION_IP).map(|n| n.data.clone());
        let peer_behind_nat =
            !src_hashes.is_empty() && !src_hashes.iter().any(|h| **h == natd(sa.spi_i, sa.spi_r, remote));
        let us_behind_nat = dst_hash.is_some_and(|h| h != natd(sa.spi_i, sa.spi_r, sa.local));
        // A forced encapsulation counts as a NAT here; the peer sees one
        // from our faked source hash.
        sa.nat = peer_behind_nat || us_behind_nat || self.conns[conn].force_encap;
        sa.us_nat = us_behind_nat;
    }

    /// The key exchange and SKEYSEED (§2.14): the SA's keys and SK ciphers.
    /// False if the SA failed (or is gone).
    fn init_response_keys(&mut self, idx: SaId, conn: ConnId, suite: IkeSuite, ke_data: &KePayload) -> bool {
        let Some(sa) = self.sas.get_mut(idx) else { return false };
        let shared = match sa.ke.as_ref().map(|k| k.shared_secret(&ke_data.data)) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                self.fail(
                    conn,
                    Failure::PeerMisbehaved(format!("peer's key exchange value refused: {e}")),
                );
                self.remove(idx, "failed");
                return false;
            }
            None => return false,
        };
        let keys = match IkeKeys::derive(
            &suite,
            &shared,
            &sa.ni,
            &sa.nr,
            &sa.spi_i.to_be_bytes(),
            &sa.spi_r.to_be_bytes(),
        ) {
            Ok(k) => k,
            Err(e) => {
                self.fail(conn, Failure::Local(format!("key derivation: {e}")));
                self.remove(idx, "failed");
                return false;
            }
        };
        let (out, inn) = match keys.sk_ciphers(&suite, Role::Initiator) {
            Ok(x) => x,
            Err(e) => {
                self.fail(conn, Failure::Local(format!("key setup: {e}")));
                self.remove(idx, "failed");
                return false;
            }
        };
        sa.sk_out = Some(out);
        sa.sk_in = Some(inn);
        sa.keys = Some(keys);
        sa.suite = Some(suite);
        sa.ke = None;
        true
    }

    pub(super) fn handle_init_request(
        &mut self,
        now: Millis,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: Message,
    ) {
        let Some((ci, offered)) = self.init_request_conn(local, remote, &msg) else {
            self.stats.unknown_spi += 1;
            return;
        };
        self.log(ci, format!("received {} from {remote}", msg.summary()));
        let h = msg.header;
        let at = (local, remote);
        if !self.init_request_cookie(ci, now, &msg, at) {
            return;
        }
        let ke = first!(msg.payloads, Payload::Ke(k) => k.clone());
        let ni = first!(msg.payloads, Payload::Nonce(n) => n.nonce.clone());
        let (Some(ke), Some(ni)) = (ke, ni) else {
            self.stats.malformed += 1;
            self.init_reply_without_sa(
                ci,
                h.initiator_spi,
                at,
                vec![Payload::Notify(NotifyPayload::new(NotifyType::INVALID_SYNTAX, vec![]))],
            );
            return;
        };
        let Some(suite) = self.init_request_choose(ci, &offered, &ke, h.initiator_spi, at) else {
            return;
        };
        let Some(k) = self.init_request_keys(ci, &suite, &ke, &ni, h.initiator_spi, at) else {
            return;
        };
        let (peer_nat, us_nat) = init_request_nat(&msg, h.initiator_spi, at);
        let force_encap = self.conns[ci].force_encap;
        let Some((resp, line)) = self.init_request_answer(force_encap, &suite, &ke, &k, h.initiator_spi, at) else {
            return;
        };
        let mut tm = TaskManager::new(Version::IKEV2);
        tm.accepted(0, data, local, remote);
        tm.answered(0, resp.clone());
        tm.half_open(now);
        let sa = IkeSa {
            nat: peer_nat || us_nat || force_encap,
            ni,
            nr: k.nr,
            init_req: data.to_vec(),
            init_resp: resp.clone(),
            suite: Some(suite),
            keys: Some(k.keys),
            sk_out: Some(k.sk_out),
            sk_in: Some(k.sk_in),
            tm,
            us_nat,
            ..IkeSa::new(
                ci,
                false,
                (h.initiator_spi, k.spi_r),
                State::InitAnswered,
                (local, remote),
                now,
            )
        };
        // Our own requests on this SA start at message ID 0 too (§2.2).
        let idx = self.insert(sa);
        self.keys_derived(idx);
        self.log(ci, format!("sending {line} to {remote}"));
        self.transmits.push_back(Transmit {
            local,
            remote,
            data: resp,
        });
    }

    /// The connection an IKE_SA_INIT request is for, and the proposals it
    /// offers. Of the connections with these addresses, the first whose IKE
    /// proposals meet the offer (else the first, to say why not): which
    /// one the SA is for is settled in IKE_AUTH, by the peer's identity
    /// and selectors (see `children::select_conn`).
    fn init_request_conn(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message,
    ) -> Option<(ConnId, Vec<IkeProposal>)> {
        let offered = offered_ike(msg);
        let by_address: Vec<ConnId> = self
            .conns
            .live()
            .filter(|&i| {
                let c = &self.conns[i];
                c.remote == remote.ip() && (c.local == local.ip() || local.ip().is_unspecified())
            })
            .collect();
        let fits = |i: &ConnId| {
            self.conns[*i]
                .ike_proposals
                .iter()
                .any(|o| offered.iter().any(|t| o.select(t).is_some()))
        };
        let ci = by_address.iter().copied().find(fits).or(by_address.first().copied())?;
        Some((ci, offered))
    }

    /// An IKE_SA_INIT response that sets up no SA (a COOKIE, INVALID_KE_PAYLOAD
    /// or an error): its responder SPI is zero.
    fn init_reply_without_sa(
        &mut self,
        ci: ConnId,
        spi_i: u64,
        (local, remote): (SocketAddr, SocketAddr),
        payloads: Vec<Payload>,
    ) {
        let header = HeaderRepr {
            initiator_spi: spi_i,
            responder_spi: 0,
            minor_version: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags::new(false, true),
            message_id: 0,
        };
        let line = summary(&header, &payloads);
        if let Ok(m) = (Message { header, payloads }).emit() {
            self.log(ci, format!("sending {line} to {remote}"));
            self.transmits.push_back(Transmit { local, remote, data: m });
        }
    }

    /// Under load (many half-open SAs), make the initiator prove it can
    /// receive at its address before we spend a key exchange on it (§2.6):
    /// false if it has not (it is then sent a COOKIE).
    fn init_request_cookie(&mut self, ci: ConnId, now: Millis, msg: &Message, at: (SocketAddr, SocketAddr)) -> bool {
        let (_, remote) = at;
        let spi_i = msg.header.initiator_spi;
        let half_open = self.sas.iter().filter(|s| s.state == State::InitAnswered).count();
        if half_open < self.cookie_threshold {
            return true;
        }
        let ni = first!(msg.payloads, Payload::Nonce(n) => n.nonce.clone()).unwrap_or_default();
        // §2.6: the COOKIE, if any, is the first payload.
        let ok = match msg.payloads.first() {
            Some(Payload::Notify(n)) if n.notify_type == NotifyType::COOKIE => {
                self.cookie_valid(now, &n.data, &ni, remote, spi_i)
            }
            _ => false,
        };
        if !ok {
            self.stats.cookies_sent += 1;
            let want = self.cookie(now, &ni, remote, spi_i);
            self.init_reply_without_sa(
                ci,
                spi_i,
                at,
                vec![Payload::Notify(NotifyPayload::new(NotifyType::COOKIE, want))],
            );
        }
        ok
    }

    /// The IKE proposal we choose, with the KEi's group (§1.2); None if the
    /// request was answered NO_PROPOSAL_CHOSEN or INVALID_KE_PAYLOAD.
    fn init_request_choose(
        &mut self,
        ci: ConnId,
        offered: &[IkeProposal],
        ke: &KePayload,
        spi_i: u64,
        at: (SocketAddr, SocketAddr),
    ) -> Option<IkeSuite> {
        let c = &self.conns[ci];
        // Our preference first; prefer the group the initiator already sent.
        let ke_group = ikeda_crypto::ike::DhGroup::from_transform_id(ke.dh_group.0);
        let mut suite = None;
        'outer: for ours in &c.ike_proposals {
            for theirs in offered {
                if let Some(mut s) = ours.select(theirs) {
                    if let Some(g) = ke_group.filter(|g| ours.dh.contains(g) && theirs.dh.contains(g)) {
                        s.dh = g;
                    }
                    suite = Some(s);
                    break 'outer;
                }
            }
        }
        let Some(suite) = suite else {
            let accepted = c.ike_proposals.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ");
            self.fail(
                ci,
                Failure::NoProposalChosen {
                    exchange: "IKE_SA_INIT",
                    offered: offered.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
                    accepted,
                },
            );
            self.init_reply_without_sa(
                ci,
                spi_i,
                at,
                vec![Payload::Notify(NotifyPayload::new(
                    NotifyType::NO_PROPOSAL_CHOSEN,
                    vec![],
                ))],
            );
            return None;
        };
        if Some(suite.dh) != ke_group {
            self.log(
                ci,
                format!("asking the peer for key exchange group {}", suite.dh.keyword()),
            );
            self.init_reply_without_sa(
                ci,
                spi_i,
                at,
                vec![Payload::Notify(NotifyPayload::invalid_ke(ikeda_wire::ikev2::DhGroup(
                    suite.dh.transform_id(),
                )))],
            );
            return None;
        }
        Some(suite)
    }

    /// Our KEr, SPIr and Nr, and the keys (§2.14); None if there are none
    /// (the initiator's KEi refused is answered INVALID_SYNTAX).
    fn init_request_keys(
        &mut self,
        ci: ConnId,
        suite: &IkeSuite,
        ke: &KePayload,
        ni: &[u8],
        spi_i: u64,
        at: (SocketAddr, SocketAddr),
    ) -> Option<InitKeys> {
        let our_ke = match KeyExchange::generate(suite.dh, &mut *self.rng) {
            Ok(k) => k,
            Err(_) => return None,
        };
        let shared = match our_ke.shared_secret(&ke.data) {
            Ok(s) => s,
            Err(e) => {
                self.fail(
                    ci,
                    Failure::PeerMisbehaved(format!("peer's key exchange value refused: {e}")),
                );
                self.init_reply_without_sa(
                    ci,
                    spi_i,
                    at,
                    vec![Payload::Notify(NotifyPayload::new(NotifyType::INVALID_SYNTAX, vec![]))],
                );
                return None;
            }
        };
        let spi_r = self.random_u64();
        let nr = self.nonce();
        let keys = match IkeKeys::derive(suite, &shared, ni, &nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()) {
            Ok(k) => k,
            Err(_) => return None,
        };
        let Ok((sk_out, sk_in)) = keys.sk_ciphers(suite, Role::Responder) else {
            return None;
        };
        Some(InitKeys {
            our_ke,
            spi_r,
            nr,
            keys,
            sk_out,
            sk_in,
        })
    }

    /// The IKE_SA_INIT response: SAr1, KEr, Nr and our NAT detection hashes
    /// (§2.23); the message and its summary for the log.
    fn init_request_answer(
        &mut self,
        force_encap: bool,
        suite: &IkeSuite,
        ke: &KePayload,
        k: &InitKeys,
        spi_i: u64,
        (local, remote): (SocketAddr, SocketAddr),
    ) -> Option<(Vec<u8>, String)> {
        let payloads = vec![
            Payload::Sa(proposals_payload(ProtocolId::IKE, &[], &[ike_suite_transforms(suite)])),
            Payload::Ke(KePayload {
                dh_group: ke.dh_group,
                data: k.our_ke.public_value().to_vec(),
            }),
            Payload::Nonce(NoncePayload { nonce: k.nr.clone() }),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                if force_encap {
                    self.fake_natd()
                } else {
                    natd(spi_i, k.spi_r, local)
                },
            )),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                natd(spi_i, k.spi_r, remote),
            )),
        ];
        let header = HeaderRepr {
            initiator_spi: spi_i,
            responder_spi: k.spi_r,
            minor_version: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags::new(false, true),
            message_id: 0,
        };
        let line = summary(&header, &payloads);
        let resp = (Message { header, payloads }).emit().ok()?;
        Some((resp, line))
    }
}

/// The COOKIE secrets (RFC 7296 §2.6): the current one with its version
/// octet, and the one before it, still honoured until the next change.
/// Drawn from the engine's RNG on first use and changed every
/// [`COOKIE_SECRET_LIFETIME`] of the caller's time.
#[derive(Default)]
pub(super) struct CookieSecrets {
    /// `None` until the first COOKIE is needed.
    current: Option<(u8, SecretBytes)>,
    previous: Option<(u8, SecretBytes)>,
    /// When `current` stops being used for new COOKIEs.
    change_at: Millis,
}

impl CookieSecrets {
    /// The current secret, changed first if its time has come.
    fn current(&mut self, now: Millis, rng: &mut dyn Rng) -> &(u8, SecretBytes) {
        if self.current.is_none() || now >= self.change_at {
            let mut s = vec![0u8; 32];
            rng.fill(&mut s);
            let version = self.current.as_ref().map_or(1, |(v, _)| v.wrapping_add(1));
            let old = self.current.replace((version, SecretBytes::new(s)));
            // Two periods or more since the last change: the old secret is
            // as stale as the one before it, honour neither.
            let stale = now >= self.change_at + COOKIE_SECRET_LIFETIME;
            self.previous = old.filter(|_| !stale);
            self.change_at = now + COOKIE_SECRET_LIFETIME;
        }
        self.current.as_ref().expect("set above")
    }

    /// The secret of this version, if we still honour it.
    fn version(&mut self, now: Millis, rng: &mut dyn Rng, version: u8) -> Option<&SecretBytes> {
        self.current(now, rng);
        [self.current.as_ref(), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|(v, _)| *v == version)
            .map(|(_, s)| s)
    }
}

fn cookie_with(version: u8, secret: &SecretBytes, ni: &[u8], from: SocketAddr, spi_i: u64) -> Vec<u8> {
    let ip = match from.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut c = vec![version];
    c.extend_from_slice(&ikeda_crypto::sha1(&[ni, &ip, &spi_i.to_be_bytes(), secret.expose()]));
    c
}

/// The IKE_SA_INIT responder's key exchange (RFC 7296 §1.2, §2.14): our
/// KEr, SPIr and Nr, the keys and the SK ciphers.
struct InitKeys {
    our_ke: KeyExchange,
    spi_r: u64,
    nr: Vec<u8>,
    keys: IkeKeys,
    sk_out: SkCipher,
    sk_in: SkCipher,
}

/// NAT detection (RFC 7296 §2.23), from the initiator's hashes in its
/// IKE_SA_INIT request: (the peer is behind a NAT, we are).
fn init_request_nat(msg: &Message, spi_i: u64, (local, remote): (SocketAddr, SocketAddr)) -> (bool, bool) {
    let src_hashes: Vec<Vec<u8>> = msg
        .payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP => Some(n.data.clone()),
            _ => None,
        })
        .collect();
    let dst_hash = notify(&msg.payloads, NotifyType::NAT_DETECTION_DESTINATION_IP).map(|n| n.data.clone());
    let peer_nat = !src_hashes.is_empty() && !src_hashes.contains(&natd(spi_i, 0, remote));
    let us_nat = dst_hash.is_some_and(|d| d != natd(spi_i, 0, local));
    (peer_nat, us_nat)
}
