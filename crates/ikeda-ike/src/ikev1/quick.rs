//! Quick Mode (RFC 2409 §5.5): the IPsec SAs, one selector pair at a time,
//! with PFS when the ESP proposal names a group, and IPComp (RFC 3173)
//! proposed with ESP under the same proposal number when asked for.
//!
//! ```text
//! I  HDR*, HASH(1), SA, Ni [, KE ] [, IDci, IDcr ]  -->
//!    HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ])
//! R            <--  HDR*, HASH(2), SA, Nr [, KE ] [, IDci, IDcr ]
//!    HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ])
//! I  HDR*, HASH(3)                                  -->
//!    HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
//! KEYMAT = prf(SKEYID_d, [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b), extended as K1 | K2 | ...
//! ```
//!
//! Make before break: the initiator installs both halves on HASH(2) and
//! sends HASH(3) after (the daemon installs before it flushes), the
//! responder installs on HASH(3). A rekey's initiator keeps sending on the
//! old SA for a moment ([`super::REKEY_ACTIVATE`]), since the responder's
//! inbound half only exists once HASH(3) arrived, and deletes the old SA
//! after [`super::REKEY_DELETE`].

use super::*;
use crate::task::GaveUp;
use ikeda_crypto::EspAlgorithm;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QmState {
    /// Initiator: HASH(1) message out, waiting for HASH(2).
    ISent,
    /// Responder: HASH(2) message out, waiting for HASH(3).
    RSent,
    /// Initiator: the responder set the commit bit; the SA is installed
    /// inbound only until its CONNECTED notification.
    IWaitConnected,
    Done,
}

/// What a Quick Mode agreed on, keys included.
pub(super) struct Negotiated {
    suite: ChildSuite,
    esp: EspAlgorithm,
    spi_out: u32,
    cpi_out: Option<u16>,
    udp: bool,
    life: Duration,
    enc_in: SecretBytes,
    auth_in: Option<SecretBytes>,
    enc_out: SecretBytes,
    auth_out: Option<SecretBytes>,
}

/// A decrypted Quick Mode message: its payloads, the plaintext, the part
/// the HASH covers (after the HASH payload), and the last ciphertext block.
type Opened = (Vec<ParsedPayload>, Vec<u8>, std::ops::Range<usize>, Vec<u8>);

/// The offer of a Quick Mode request we accept (see `qm_r1_choose`).
struct QmChoice {
    /// The proposal number (ESP and its IPComp share it, RFC 2408 §4.2).
    number: u8,
    transform: Transform,
    offer: EspOffer,
    spi_out: u32,
    /// The IPCOMP_DEFLATE transform, when the offer has one.
    ipcomp: Option<Transform>,
    cpi_out: Option<u16>,
}

/// What the answer to a Quick Mode request is made of (see `qm_r1_answer`).
struct QmAnswer {
    number: u8,
    transform: Transform,
    /// The IPComp transform and our CPI.
    ipcomp: Option<(Transform, u16)>,
    kex: Option<KeyExchange>,
    ids: Vec<IdPayload>,
    pair: usize,
    local_ts: TsRange,
    remote_ts: TsRange,
    ni: Vec<u8>,
    nr: Vec<u8>,
    spi_in: u32,
    neg: Negotiated,
    /// The IV after the request's last block.
    iv: Vec<u8>,
}

pub(super) struct Qm {
    pub mid: u32,
    pub initiator: bool,
    pub pair: usize,
    /// The CBC chain of this exchange (starts at hash(last phase-1 block | M-ID)).
    pub iv: Vec<u8>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub kex: Option<KeyExchange>,
    pub spi_in: u32,
    pub cpi_in: Option<u16>,
    pub local_ts: TsRange,
    pub remote_ts: TsRange,
    pub state: QmState,
    pub rekey_of: Option<u32>,
    /// The peer's Quick Mode for the same pair (and the same SA to
    /// replace, if any) that crossed ours: its inbound SPI here. Once both
    /// are done, one of the two SA pairs goes ([`Engine::settle_twins`]).
    pub twin: Option<u32>,
    pub neg: Option<Negotiated>,
    pub created: Millis,
}

/// How long a finished Quick Mode is kept to answer retransmissions.
const QM_KEEP: Duration = Duration::from_secs(30);

impl Qm {
    pub fn done(&self) -> bool {
        self.state == QmState::Done
    }

    /// When a finished Quick Mode is forgotten (its retransmissions are
    /// the task manager's).
    pub fn next_timer(&self) -> Option<Millis> {
        match self.state {
            QmState::Done | QmState::IWaitConnected => Some(self.created + QM_KEEP),
            _ => None,
        }
    }
}

fn integ_from_attr(v: u16) -> Option<Integ> {
    Some(match v {
        ipsec_attr::AUTH_HMAC_MD5 => Integ::HmacMd5_96,
        ipsec_attr::AUTH_HMAC_SHA1 => Integ::HmacSha1_96,
        ipsec_attr::AUTH_HMAC_SHA2_256 => Integ::HmacSha256_128,
        ipsec_attr::AUTH_HMAC_SHA2_384 => Integ::HmacSha384_192,
        ipsec_attr::AUTH_HMAC_SHA2_512 => Integ::HmacSha512_256,
        _ => return None,
    })
}

fn integ_attr(i: Integ) -> u16 {
    match i {
        Integ::HmacMd5_96 => ipsec_attr::AUTH_HMAC_MD5,
        Integ::HmacSha1_96 => ipsec_attr::AUTH_HMAC_SHA1,
        Integ::HmacSha256_128 => ipsec_attr::AUTH_HMAC_SHA2_256,
        Integ::HmacSha384_192 => ipsec_attr::AUTH_HMAC_SHA2_384,
        Integ::HmacSha512_256 => ipsec_attr::AUTH_HMAC_SHA2_512,
    }
}

/// An ESP transform (RFC 2407 §4.4.4, §4.5) for one cipher/integrity pair.
fn esp_transform(
    number: u8,
    e: Encr,
    i: Option<Integ>,
    dh: Option<DhGroup>,
    udp: bool,
    life: Duration,
) -> Option<Transform> {
    let (id, key_len) = match e {
        Encr::AesCbc { key_bits } => (transform_id::ESP_AES_CBC, Some(key_bits)),
        Encr::AesGcm16 { key_bits } => (transform_id::ESP_AES_GCM_16, Some(key_bits)),
        Encr::TripleDesCbc => (transform_id::ESP_3DES, None),
        _ => return None,
    };
    let mut a = vec![
        Attribute::basic(ipsec_attr::SA_LIFE_TYPE, ipsec_attr::LIFE_SECONDS),
        Attribute::number(ipsec_attr::SA_LIFE_DURATION, life.as_secs()),
        Attribute::basic(
            ipsec_attr::ENCAPSULATION_MODE,
            if udp {
                ipsec_attr::ENCAP_UDP_TUNNEL
            } else {
                ipsec_attr::ENCAP_TUNNEL
            },
        ),
    ];
    if let Some(i) = i {
        a.push(Attribute::basic(ipsec_attr::AUTH_ALGORITHM, integ_attr(i)));
    }
    if let Some(k) = key_len {
        a.push(Attribute::basic(ipsec_attr::KEY_LENGTH, k));
    }
    if let Some(g) = dh {
        a.push(Attribute::basic(ipsec_attr::GROUP_DESCRIPTION, g.transform_id()));
    }
    Some(Transform {
        number,
        id,
        attributes: a,
    })
}

/// An offered ESP transform, read back.
#[derive(Debug, Clone, Copy)]
struct EspOffer {
    encr: Encr,
    integ: Option<Integ>,
    dh: Option<DhGroup>,
    udp: bool,
    life: Option<u64>,
}

fn parse_esp_transform(t: &Transform) -> Result<EspOffer, String> {
    let get = |k: u16| t.attributes.iter().find(|a| a.kind == k).and_then(Attribute::as_u64);
    let get16 = |k: u16, what: &'static str| attr_u16(t, k, what);
    let key_len = get16(ipsec_attr::KEY_LENGTH, "key length")?;
    let encr = match (t.id, key_len) {
        (transform_id::ESP_AES_CBC, Some(b @ (128 | 192 | 256))) => Encr::AesCbc { key_bits: b },
        (transform_id::ESP_AES_CBC, None) => Encr::AesCbc { key_bits: 128 },
        (transform_id::ESP_AES_GCM_16, Some(b @ (128 | 256))) => Encr::AesGcm16 { key_bits: b },
        (transform_id::ESP_3DES, None) => Encr::TripleDesCbc,
        (id, k) => {
            return Err(format!(
                "ESP transform {id}{}",
                k.map(|k| format!(" ({k} bits)")).unwrap_or_default()
            ))
        }
    };
    let integ = match get16(ipsec_attr::AUTH_ALGORITHM, "ESP authentication algorithm")? {
        Some(v) => Some(integ_from_attr(v).ok_or_else(|| format!("ESP authentication algorithm {v}"))?),
        None => None,
    };
    if encr.is_aead() != integ.is_none() {
        return Err("ESP transform with integrity and AEAD mixed up".into());
    }
    let dh = match get16(ipsec_attr::GROUP_DESCRIPTION, "PFS group")? {
        Some(g) => Some(DhGroup::from_transform_id(g).ok_or_else(|| format!("PFS group {g}"))?),
        None => None,
    };
    let mode = get16(ipsec_attr::ENCAPSULATION_MODE, "encapsulation mode")?.unwrap_or(ipsec_attr::ENCAP_TUNNEL);
    let udp = match mode {
        ipsec_attr::ENCAP_TUNNEL => false,
        ipsec_attr::ENCAP_UDP_TUNNEL | ipsec_attr::ENCAP_UDP_TUNNEL_DRAFT => true,
        m => return Err(format!("encapsulation mode {m} (only tunnel mode)")),
    };
    let life = match get(ipsec_attr::SA_LIFE_TYPE) {
        Some(t) if t == ipsec_attr::LIFE_SECONDS as u64 => get(ipsec_attr::SA_LIFE_DURATION),
        _ => None,
    };
    Ok(EspOffer {
        encr,
        integ,
        dh,
        udp,
        life,
    })
}

fn offer_name(o: &EspOffer) -> String {
    let mut s = o.encr.name().to_string();
    if let Some(i) = o.integ {
        s = format!("{s}/{}", i.name());
    }
    if let Some(g) = o.dh {
        s = format!("{s}/{}", g.name());
    }
    s
}

impl Engine {
    fn p2_life(&self, conn: ConnId) -> Duration {
        let t = self.conns[conn].spec.timers;
        if t.life_time.is_zero() {
            DEFAULT_P2_LIFE
        } else {
            t.life_time
        }
    }

    fn p1_nat(&self, idx: SaId) -> bool {
        self.sas.get(idx).is_some_and(|s| s.nat_local || s.nat_remote)
    }

    /// Does one of our ESP proposals accept this transform?
    fn accepts(&self, conn: ConnId, o: &EspOffer) -> bool {
        self.conns[conn].spec.esp_proposals.iter().any(|p| {
            p.encr.contains(&o.encr)
                && match o.integ {
                    None => p.integ.is_empty(),
                    Some(i) => p.integ.contains(&i),
                }
                && match o.dh {
                    None => p.dh.is_empty(),
                    Some(g) => p.dh.contains(&g),
                }
        })
    }

    /// Start a Quick Mode for a selector pair (a rekey when `rekey_of`).
    pub(super) fn start_quick_mode(&mut self, idx: SaId, pair: usize, rekey_of: Option<u32>, now: Millis) {
        let Some(sa) = self.sas.get(idx) else { return };
        let conn = sa.conn;
        // The window (QM_IN_FLIGHT, the IKEv1 version of the task manager)
        // is full: the others wait their turn.
        if !sa.tm.can_initiate() {
            self.queue_quick_mode(conn, pair, rekey_of);
            return;
        }
        let Some(&(l, r)) = pairs(&self.conns[conn].spec).get(pair) else {
            return;
        };
        let mid = self.random_u32();
        let spi_in = self.random_u32();
        let cpi_in = self.conns[conn].compress.then(|| self.random_cpi());
        let ni = self.nonce();
        let pfs = self.conns[conn]
            .spec
            .esp_proposals
            .first()
            .and_then(|p| p.dh.first().copied());
        let kex = match pfs.map(|g| KeyExchange::generate(g, &mut *self.rng)) {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                self.fail(conn, Failure::Local(format!("PFS key exchange: {e}")));
                return;
            }
            None => None,
        };
        let udp = self.p1_nat(idx);
        let life = self.p2_life(conn);
        let mut props = Vec::new();
        for (k, p) in self.conns[conn].spec.esp_proposals.iter().enumerate() {
            let number = k as u8 + 1;
            let mut ts = Vec::new();
            for &e in &p.encr {
                let integs: Vec<Option<Integ>> = if e.is_aead() {
                    vec![None]
                } else {
                    p.integ.iter().map(|&i| Some(i)).collect()
                };
                for i in integs {
                    if let Some(t) = esp_transform(ts.len() as u8 + 1, e, i, p.dh.first().copied(), udp, life) {
                        ts.push(t);
                    }
                }
            }
            if ts.is_empty() {
                continue;
            }
            props.push(Proposal {
                number,
                protocol: protocol::ESP,
                spi: spi_in.to_be_bytes().to_vec(),
                transforms: ts,
            });
            if let Some(cpi) = cpi_in {
                props.push(ipcomp_proposal(number, cpi, udp, life));
            }
        }
        let mut payloads = vec![
            Payload::Sa(SaPayload {
                doi: doi::IPSEC,
                situation: doi::SIT_IDENTITY_ONLY,
                proposals: props,
            }),
            Payload::Nonce(ni.clone()),
        ];
        if let Some(k) = &kex {
            payloads.push(Payload::Ke(k.public_value().to_vec()));
        }
        payloads.push(Payload::Id(ts_to_id(&l)));
        payloads.push(Payload::Id(ts_to_id(&r)));
        let Some(sa) = self.sas.get(idx) else { return };
        let (Some(c), Some(keys)) = (sa.choice, sa.keys.as_ref()) else {
            return;
        };
        let rest = write_payloads(&payloads);
        let hash = c1::qm_hash1(c.hash, keys.skeyid_a.expose(), mid, &rest);
        let mut chain = Vec::new();
        write_payload(&Payload::Hash(hash.clone()), pt::SA, &mut chain);
        chain.extend_from_slice(&rest);
        let iv = c1::phase2_iv(c.hash, c.cipher.block_len(), &sa.iv, mid);
        let mut hh = self.header(idx, ExchangeType::QUICK_MODE, mid);
        hh.next_payload = pt::HASH;
        let Some((d, last)) = seal(c.cipher, keys.enc_key.expose(), &iv, hh, &chain) else {
            return;
        };
        let mut logged = vec![Payload::Hash(hash)];
        logged.extend(payloads);
        self.log_msg(idx, true, ExchangeType::QUICK_MODE, mid, true, &logged);
        if let Some(old) = rekey_of {
            self.log(conn, format!("rekeying CHILD_SA {old:08x}_i (Quick Mode)"));
        }
        let qm = Qm {
            mid,
            initiator: true,
            pair,
            iv: last,
            ni,
            nr: Vec::new(),
            kex,
            spi_in,
            cpi_in,
            local_ts: l,
            remote_ts: r,
            state: QmState::ISent,
            rekey_of,
            twin: None,
            neg: None,
            created: now,
        };
        let policy = self.policy;
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.qms.push(qm);
            sa.tm.request(mid, Exchange::QuickMode, (), d.clone(), now, &policy);
        }
        self.send(idx, d);
    }

    /// Decrypt a Quick Mode message on its exchange's IV chain and check its
    /// HASH. Returns the payloads, the plaintext, and where the HASH-covered
    /// part (after the HASH payload) lies.
    fn open_qm(&mut self, idx: SaId, iv: &[u8], data: &[u8], h: &Header) -> Option<Opened> {
        let sa = self.sas.get(idx)?;
        let (c, keys) = (sa.choice?, sa.keys.as_ref()?);
        if h.flags & FLAG_ENCRYPTION == 0 {
            self.stats.malformed += 1;
            return None;
        }
        let Some((plain_b, last)) = open(c.cipher, keys.enc_key.expose(), iv, data, h) else {
            self.stats.decrypt_failed += 1;
            return None;
        };
        let Ok((p, end)) = parse_payloads(h.next_payload, &plain_b) else {
            self.stats.decrypt_failed += 1;
            return None;
        };
        if p.first().map(|x| x.payload.kind()) != Some(pt::HASH) {
            self.stats.malformed += 1;
            return None;
        }
        let rest = p[0].whole.end..end;
        Some((p, plain_b, rest, last))
    }

    pub(super) fn quick_mode(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        let Some(sa) = self.sas.get(idx) else { return };
        if sa.state != P1State::Established {
            self.stats.malformed += 1;
            return;
        }
        let mid = h.message_id;
        // (A retransmission of what we answered was answered already.)
        if let Some(k) = sa.qms.iter().position(|q| q.mid == mid) {
            let q = &sa.qms[k];
            match (q.initiator, q.state) {
                (true, QmState::ISent) => self.qm_i2(idx, k, now, data, h),
                (false, QmState::RSent) => self.qm_r_done(idx, k, now, data, h),
                (true, QmState::IWaitConnected) => {
                    // HASH(4), N(CONNECTED) in the Quick Mode itself (RFC 2409 §5.5 commit bit).
                    let iv = q.iv.clone();
                    let Some((p, plain_b, rest, last)) = self.open_qm(idx, &iv, data, h) else {
                        return;
                    };
                    // HASH(4) = prf(SKEYID_a, M-ID | N), as an Informational's
                    // HASH(1): nothing is activated, and the IV stays, unless
                    // it verifies.
                    let verified = self.sas.get(idx).is_some_and(|sa| {
                        let (Some(c), Some(keys)) = (sa.choice, sa.keys.as_ref()) else {
                            return false;
                        };
                        let want = c1::qm_hash1(c.hash, keys.skeyid_a.expose(), mid, &plain_b[rest]);
                        matches!(&p[0].payload, Payload::Hash(got) if c1::hash_matches(&want, got))
                    });
                    if !verified {
                        self.stats.hash_failed += 1;
                        return;
                    }
                    if let Some(q) = self.sas.get_mut(idx).and_then(|s| s.qms.get_mut(k)) {
                        q.iv = last;
                    }
                    self.log_msg(idx, false, ExchangeType::QUICK_MODE, mid, false, &plain(&p));
                    for x in &p {
                        if let Payload::Notify(n) = &x.payload {
                            if n.notify_type == notify::CONNECTED {
                                self.connected(idx, n);
                            }
                        }
                    }
                }
                _ => {}
            }
            return;
        }
        self.qm_r1(idx, now, data, h);
    }

    /// Responder: HASH(1), SA, Ni [, KE] [, IDci, IDcr] in; answer HASH(2).
    fn qm_r1(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        let mid = h.message_id;
        let Some((c, p, last)) = self.qm_r1_open(idx, now, data, h) else {
            return;
        };
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        let (Some(Payload::Sa(offer)), Some(Payload::Nonce(ni))) =
            (first(&p, pt::SA).cloned(), first(&p, pt::NONCE).cloned())
        else {
            self.stats.malformed += 1;
            return;
        };
        let ke = match first(&p, pt::KE) {
            Some(Payload::Ke(k)) => Some(k.clone()),
            _ => None,
        };
        let ids: Vec<IdPayload> = p
            .iter()
            .filter_map(|x| match &x.payload {
                Payload::Id(i) => Some(i.clone()),
                _ => None,
            })
            .collect();
        let Some((pair, local_ts, remote_ts)) = self.qm_r1_selectors(idx, conn, &ids) else {
            return;
        };
        let Some(QmChoice {
            number,
            transform: t,
            offer: o,
            spi_out,
            ipcomp: ipcomp_t,
            cpi_out,
        }) = self.qm_r1_choose(idx, conn, &offer, ke.is_some())
        else {
            return;
        };
        if self.conns[conn].compress && cpi_out.is_none() {
            self.log(conn, "the peer did not ask for IPComp: ESP without compression".into());
        }
        let Some(esp) = (ChildSuite {
            encr: o.encr,
            integ: o.integ,
            dh: o.dh,
            esn: false,
        })
        .esp_algorithm() else {
            return;
        };
        let spi_in = self.random_u32();
        let cpi_in = cpi_out.map(|_| self.random_cpi());
        let nr = self.nonce();
        let Some((kex, gxy)) = self.qm_r1_pfs(conn, o.dh, ke.as_deref()) else {
            return;
        };
        let life = match o.life {
            Some(s) => Duration::from_secs(s).min(self.p2_life(conn)),
            None => self.p2_life(conn),
        };
        let udp = self.p1_nat(idx) || o.udp;
        let Some(neg) = self.child_keys(idx, esp, o, spi_in, spi_out, cpi_out, udp, life, &ni, &nr, gxy.as_ref())
        else {
            return;
        };
        let answer = QmAnswer {
            number,
            transform: t,
            ipcomp: ipcomp_t.zip(cpi_in),
            kex,
            ids,
            pair,
            local_ts,
            remote_ts,
            ni,
            nr,
            spi_in,
            neg,
            iv: last,
        };
        self.qm_r1_answer(idx, now, mid, data, c, answer);
    }

    /// HASH(1) of a Quick Mode request opened and verified, with the
    /// choice of phase 1, the payloads and the IV its last block leaves.
    fn qm_r1_open(
        &mut self,
        idx: SaId,
        now: Millis,
        data: &[u8],
        h: &Header,
    ) -> Option<(P1Choice, Vec<ParsedPayload>, Vec<u8>)> {
        let sa = self.sas.get(idx)?;
        let (Some(c), Some(_)) = (sa.choice, sa.keys.as_ref()) else {
            return None;
        };
        let conn = sa.conn;
        let mid = h.message_id;
        if mid == 0 {
            self.stats.malformed += 1;
            return None;
        }
        let iv0 = c1::phase2_iv(c.hash, c.cipher.block_len(), &sa.iv, mid);
        let (p, plain_b, rest, last) = self.open_qm(idx, &iv0, data, h)?;
        let sa = self.sas.get(idx)?;
        let keys = sa.keys.as_ref()?;
        let Payload::Hash(got) = &p[0].payload else { return None };
        if !c1::hash_matches(
            &c1::qm_hash1(c.hash, keys.skeyid_a.expose(), mid, &plain_b[rest.clone()]),
            got,
        ) {
            self.stats.hash_failed += 1;
            self.log(
                conn,
                format!("QUICK_MODE request {mid}: HASH(1) does not verify, dropped"),
            );
            return None;
        }
        self.authenticated(idx);
        self.log_msg(idx, false, ExchangeType::QUICK_MODE, mid, true, &plain(&p));
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.last_heard = now;
        }
        Some((c, p, last))
    }

    /// The selector pair a Quick Mode request's IDci/IDcr fall within
    /// (ours: pair index, local, remote), or INVALID_ID_INFORMATION.
    fn qm_r1_selectors(&mut self, idx: SaId, conn: ConnId, ids: &[IdPayload]) -> Option<(usize, TsRange, TsRange)> {
        // The selectors: IDci is the initiator's side (our remote), IDcr ours.
        let sa = self.sas.get(idx)?;
        let (ts_i, ts_r) = match ids {
            [i, r] => (id_to_ts(i), id_to_ts(r)),
            [] => {
                let host = |a: IpAddr| TsRange::addresses(a, a);
                (Some(host(sa.remote.ip())), Some(host(sa.local.ip())))
            }
            _ => (None, None),
        };
        let all = pairs(&self.conns[conn].spec);
        let pair = match (ts_i, ts_r) {
            (Some(ti), Some(tr)) => all
                .iter()
                .position(|(l, r)| within(&tr, l) && within(&ti, r))
                .map(|k| (k, tr, ti)),
            _ => None,
        };
        let Some((pair, local_ts, remote_ts)) = pair else {
            let show = |t: Option<TsRange>| t.map(|t| ts_text(&t)).unwrap_or_else(|| "?".into());
            self.fail(
                conn,
                Failure::TsUnacceptable {
                    ours_local: all.iter().map(|p| ts_text(&p.0)).collect::<Vec<_>>().join(" "),
                    ours_remote: all.iter().map(|p| ts_text(&p.1)).collect::<Vec<_>>().join(" "),
                    theirs_i: show(ts_i),
                    theirs_r: show(ts_r),
                },
            );
            self.send_notify(idx, notify::INVALID_ID_INFORMATION, Vec::new());
            return None;
        };
        Some((pair, local_ts, remote_ts))
    }

    /// The ESP (with IPComp) offer of a Quick Mode request we accept, with
    /// a KE exactly when `pfs`, or NO_PROPOSAL_CHOSEN.
    fn qm_r1_choose(&mut self, idx: SaId, conn: ConnId, offer: &SaPayload, pfs: bool) -> Option<QmChoice> {
        // Choose a proposal (RFC 2408 §4.2: proposals sharing a number are
        // one offer: ESP with IPCOMP).
        let compress = self.conns[conn].compress;
        let mut numbers: Vec<u8> = offer.proposals.iter().map(|p| p.number).collect();
        numbers.dedup();
        let mut offered = Vec::new();
        let mut chosen = None;
        let mut wanted_ipcomp = false;
        for n in numbers {
            let group: Vec<&Proposal> = offer.proposals.iter().filter(|p| p.number == n).collect();
            let Some(esp) = group.iter().find(|p| p.protocol == protocol::ESP) else {
                continue;
            };
            let ipcomp = group.iter().find(|p| p.protocol == protocol::IPCOMP);
            if group
                .iter()
                .any(|p| p.protocol != protocol::ESP && p.protocol != protocol::IPCOMP)
            {
                continue;
            }
            if ipcomp.is_some() && !compress {
                wanted_ipcomp = true;
                continue;
            }
            let ipcomp_ok = ipcomp.and_then(|p| {
                p.transforms
                    .iter()
                    .find(|t| t.id == transform_id::IPCOMP_DEFLATE)
                    .map(|t| (p, t.clone()))
            });
            if ipcomp.is_some() && ipcomp_ok.is_none() {
                continue;
            }
            let Some(spi_out) = be_u32(&esp.spi) else { continue };
            for t in &esp.transforms {
                match parse_esp_transform(t) {
                    Ok(o) => {
                        offered.push(offer_name(&o));
                        if chosen.is_none() && self.accepts(conn, &o) && o.dh.is_some() == pfs {
                            let cpi_out = ipcomp_ok.as_ref().and_then(|(p, _)| cpi_of(&p.spi));
                            chosen = Some(QmChoice {
                                number: n,
                                transform: t.clone(),
                                offer: o,
                                spi_out,
                                ipcomp: ipcomp_ok.clone().map(|x| x.1),
                                cpi_out,
                            });
                        }
                    }
                    Err(e) => offered.push(format!("({e})")),
                }
            }
        }
        let Some(chosen) = chosen else {
            let accepted: Vec<String> = self.conns[conn].spec.esp_proposals.iter().map(|p| p.name()).collect();
            let mut offered_s = offered.join(", ");
            if wanted_ipcomp {
                offered_s.push_str(" (with IPComp, which this connection does not ask for: compress = true)");
            }
            self.fail(
                conn,
                Failure::NoProposalChosen {
                    exchange: "QUICK_MODE",
                    offered: offered_s,
                    accepted: accepted.join(", "),
                },
            );
            self.send_notify(idx, notify::NO_PROPOSAL_CHOSEN, Vec::new());
            return None;
        };
        Some(chosen)
    }

    /// Our PFS key exchange and the shared secret with the peer's KE, when
    /// the chosen offer has a group; `None` when it fails (said why).
    #[allow(clippy::type_complexity)]
    fn qm_r1_pfs(
        &mut self,
        conn: ConnId,
        group: Option<DhGroup>,
        ke: Option<&[u8]>,
    ) -> Option<(Option<KeyExchange>, Option<SecretBytes>)> {
        let (Some(g), Some(peer)) = (group, ke) else {
            return Some((None, None));
        };
        let k = match KeyExchange::generate(g, &mut *self.rng) {
            Ok(k) => k,
            Err(e) => {
                self.fail(conn, Failure::Local(format!("PFS key exchange: {e}")));
                return None;
            }
        };
        match k.shared_secret(peer) {
            Ok(s) => Some((Some(k), Some(s))),
            Err(e) => {
                self.fail(conn, Failure::PeerMisbehaved(format!("peer's PFS KE refused: {e}")));
                None
            }
        }
    }

    /// HASH(2), SA (the chosen offer with our SPI), Nr [, KE] [, IDci,
    /// IDcr] out; the new SA's inbound half installed first.
    fn qm_r1_answer(&mut self, idx: SaId, now: Millis, mid: u32, data: &[u8], c: P1Choice, a: QmAnswer) {
        let QmAnswer {
            number,
            transform: t,
            ipcomp,
            kex,
            ids,
            pair,
            local_ts,
            remote_ts,
            ni,
            nr,
            spi_in,
            neg,
            iv: last,
        } = a;
        // Our CPI, when the chosen offer has IPComp.
        let cpi_in = ipcomp.as_ref().map(|(_, cpi)| *cpi);
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        let mut props = vec![Proposal {
            number,
            protocol: protocol::ESP,
            spi: spi_in.to_be_bytes().to_vec(),
            transforms: vec![t],
        }];
        if let Some((it, cpi)) = ipcomp {
            props.push(Proposal {
                number,
                protocol: protocol::IPCOMP,
                spi: cpi.to_be_bytes().to_vec(),
                transforms: vec![it],
            });
        }
        let mut payloads = vec![
            Payload::Sa(SaPayload {
                doi: doi::IPSEC,
                situation: doi::SIT_IDENTITY_ONLY,
                proposals: props,
            }),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(k) = &kex {
            payloads.push(Payload::Ke(k.public_value().to_vec()));
        }
        payloads.extend(ids.into_iter().map(Payload::Id));
        let Some(sa) = self.sas.get(idx) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let rest_b = write_payloads(&payloads);
        let hash = c1::qm_hash2(c.hash, keys.skeyid_a.expose(), mid, &ni, &rest_b);
        let mut chain = Vec::new();
        write_payload(&Payload::Hash(hash.clone()), pt::SA, &mut chain);
        chain.extend_from_slice(&rest_b);
        let mut hh = self.header(idx, ExchangeType::QUICK_MODE, mid);
        hh.next_payload = pt::HASH;
        let Some((d, last2)) = seal(c.cipher, keys.enc_key.expose(), &last, hh, &chain) else {
            return;
        };
        let mut logged = vec![Payload::Hash(hash)];
        logged.extend(payloads);
        self.log_msg(idx, true, ExchangeType::QUICK_MODE, mid, false, &logged);
        // A rekey: the peer replaces the SA of the same pair.
        let rekey_of = self.children[conn]
            .iter()
            .find(|c| c.pair == pair && !c.rekeyed)
            .map(|c| c.spi_in);
        // Our own Quick Mode for the pair is out and unanswered: the peer
        // began its own before it saw ours (both sides initiated, or both
        // rekey the same SA). Both go on; the two are twins.
        let twin = self
            .sas
            .iter_mut()
            .filter(|s| s.conn == conn)
            .flat_map(|s| s.qms.iter_mut())
            .find(|q| q.initiator && q.pair == pair && q.state == QmState::ISent && q.rekey_of == rekey_of)
            .map(|q| {
                q.twin = Some(spi_in);
                q.spi_in
            });
        let qm = Qm {
            mid,
            initiator: false,
            pair,
            iv: last2,
            ni,
            nr,
            kex: None,
            spi_in,
            cpi_in,
            local_ts,
            remote_ts,
            state: QmState::RSent,
            rekey_of,
            twin,
            neg: Some(neg),
            created: now,
        };
        self.accepted(idx, mid, data, Some(&d));
        let policy = self.policy;
        let k = {
            let Some(sa) = self.sas.get_mut(idx) else { return };
            sa.qms.push(qm);
            // HASH(2) goes again until HASH(3) acknowledges it (§5.5).
            sa.tm.await_ack(mid, Exchange::QuickMode, (), d.clone(), now, &policy);
            sa.qms.len() - 1
        };
        // The inbound half goes in now, before HASH(2) leaves: the initiator
        // sends on the new SA as soon as it has HASH(2), and its first
        // packets can overtake HASH(3) here (ESP and IKE share UDP 4500 and
        // part ways in the data plane). We send on it once HASH(3) is in.
        self.install(idx, k, now, false);
        self.send(idx, d);
    }

    /// KEYMAT for both directions (RFC 2409 §5.5): the encryption key first,
    /// then the integrity key; an AEAD key includes its salt (RFC 4106 §8.1).
    #[allow(clippy::too_many_arguments)]
    fn child_keys(
        &mut self,
        idx: SaId,
        esp: EspAlgorithm,
        o: EspOffer,
        spi_in: u32,
        spi_out: u32,
        cpi_out: Option<u16>,
        udp: bool,
        life: Duration,
        ni: &[u8],
        nr: &[u8],
        gxy: Option<&SecretBytes>,
    ) -> Option<Negotiated> {
        let sa = self.sas.get(idx)?;
        let (c, keys) = (sa.choice?, sa.keys.as_ref()?);
        let (el, al) = (esp.enc_key_len(), esp.auth_key_len());
        let km = |spi: u32| {
            c1::keymat(
                c.hash,
                keys.skeyid_d.expose(),
                gxy.map(|g| g.expose()),
                protocol::ESP,
                &spi.to_be_bytes(),
                ni,
                nr,
                el + al,
            )
        };
        let (kin, kout) = (km(spi_in), km(spi_out));
        let split = |k: &SecretBytes| {
            let b = k.expose();
            (
                SecretBytes::new(b[..el].to_vec()),
                (al > 0).then(|| SecretBytes::new(b[el..el + al].to_vec())),
            )
        };
        let (enc_in, auth_in) = split(&kin);
        let (enc_out, auth_out) = split(&kout);
        Some(Negotiated {
            suite: ChildSuite {
                encr: o.encr,
                integ: o.integ,
                dh: o.dh,
                esn: false,
            },
            esp,
            spi_out,
            cpi_out,
            udp,
            life,
            enc_in,
            auth_in,
            enc_out,
            auth_out,
        })
    }

    /// Initiator: HASH(2) message in; send HASH(3), install.
    fn qm_i2(&mut self, idx: SaId, k: usize, now: Millis, data: &[u8], h: &Header) {
        let Some(sa) = self.sas.get(idx) else { return };
        let conn = sa.conn;
        let Some(c) = sa.choice else { return };
        let mid = h.message_id;
        let iv = sa.qms[k].iv.clone();
        let Some((p, plain_b, rest, last)) = self.open_qm(idx, &iv, data, h) else {
            return;
        };
        let Some(sa) = self.sas.get(idx) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let q = &sa.qms[k];
        let Payload::Hash(got) = &p[0].payload else { return };
        if !c1::hash_matches(
            &c1::qm_hash2(c.hash, keys.skeyid_a.expose(), mid, &q.ni, &plain_b[rest]),
            got,
        ) {
            self.stats.hash_failed += 1;
            self.log(
                conn,
                format!("QUICK_MODE response {mid}: HASH(2) does not verify, dropped"),
            );
            return;
        }
        self.authenticated(idx);
        self.log_msg(idx, false, ExchangeType::QUICK_MODE, mid, false, &plain(&p));
        let commit = h.flags & FLAG_COMMIT != 0;
        let (Some(Payload::Sa(resp)), Some(Payload::Nonce(nr))) =
            (first(&p, pt::SA).cloned(), first(&p, pt::NONCE).cloned())
        else {
            self.stats.malformed += 1;
            return;
        };
        let esp_p = resp.proposals.iter().find(|p| p.protocol == protocol::ESP);
        let ipcomp_p = resp.proposals.iter().find(|p| p.protocol == protocol::IPCOMP);
        let parsed = esp_p.and_then(|p| Some((be_u32(&p.spi)?, parse_esp_transform(p.transforms.first()?).ok()?)));
        let Some((spi_out, o)) = parsed.filter(|(_, o)| self.accepts(conn, o)) else {
            self.fail(
                conn,
                Failure::PeerMisbehaved("peer chose an ESP transform we did not offer".into()),
            );
            self.finish_qm(idx, k);
            return;
        };
        let Some(esp) = (ChildSuite {
            encr: o.encr,
            integ: o.integ,
            dh: o.dh,
            esn: false,
        })
        .esp_algorithm() else {
            return;
        };
        let Some(sa) = self.sas.get(idx) else { return };
        let q = &sa.qms[k];
        let cpi_out = ipcomp_p.and_then(|p| cpi_of(&p.spi)).filter(|_| q.cpi_in.is_some());
        let declined = q.cpi_in.is_some() && cpi_out.is_none();
        let gxy = match (&q.kex, first(&p, pt::KE)) {
            (Some(kx), Some(Payload::Ke(peer))) => match kx.shared_secret(peer) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.fail(conn, Failure::PeerMisbehaved(format!("peer's PFS KE refused: {e}")));
                    self.finish_qm(idx, k);
                    return;
                }
            },
            (None, None) => None,
            _ => {
                self.fail(
                    conn,
                    Failure::PeerMisbehaved("PFS: the peer's KE payload does not match our proposal".into()),
                );
                self.finish_qm(idx, k);
                return;
            }
        };
        let (ni, spi_in) = (q.ni.clone(), q.spi_in);
        if declined {
            self.log(conn, "the peer declined IPComp: ESP without compression".into());
        }
        let life = match o.life {
            Some(s) => Duration::from_secs(s).min(self.p2_life(conn)),
            None => self.p2_life(conn),
        };
        let udp = self.p1_nat(idx) || o.udp;
        let Some(neg) = self.child_keys(idx, esp, o, spi_in, spi_out, cpi_out, udp, life, &ni, &nr, gxy.as_ref())
        else {
            return;
        };
        // HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
        let Some(sa) = self.sas.get(idx) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let hash = c1::qm_hash3(c.hash, keys.skeyid_a.expose(), mid, &ni, &nr);
        let mut chain = Vec::new();
        write_payload(&Payload::Hash(hash.clone()), 0, &mut chain);
        let mut hh = self.header(idx, ExchangeType::QUICK_MODE, mid);
        hh.next_payload = pt::HASH;
        let Some((d, last3)) = seal(c.cipher, keys.enc_key.expose(), &last, hh, &chain) else {
            return;
        };
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.tm.complete(mid);
        }
        self.accepted(idx, mid, data, Some(&d));
        if let Some(q) = self.sas.get_mut(idx).and_then(|s| s.qms.get_mut(k)) {
            q.nr = nr;
            q.iv = last3;
            q.state = if commit { QmState::IWaitConnected } else { QmState::Done };
            q.created = now;
            q.neg = Some(neg);
        }
        if commit {
            self.log(
                conn,
                "the responder set the commit bit: waiting for CONNECTED before sending".into(),
            );
        }
        // Installed before HASH(3) leaves (the daemon acts on events before
        // it sends): the responder may send on the SA as soon as it has HASH(3).
        self.install(idx, k, now, !commit);
        self.log_msg(idx, true, ExchangeType::QUICK_MODE, mid, true, &[Payload::Hash(hash)]);
        self.send(idx, d);
    }

    /// Responder: HASH(3) in; install.
    fn qm_r_done(&mut self, idx: SaId, k: usize, now: Millis, data: &[u8], h: &Header) {
        let Some(sa) = self.sas.get(idx) else { return };
        let Some(c) = sa.choice else { return };
        let conn = sa.conn;
        let mid = h.message_id;
        let iv = sa.qms[k].iv.clone();
        let Some((p, _, _, last)) = self.open_qm(idx, &iv, data, h) else {
            return;
        };
        let Some(sa) = self.sas.get(idx) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let q = &sa.qms[k];
        let Payload::Hash(got) = &p[0].payload else { return };
        if !c1::hash_matches(&c1::qm_hash3(c.hash, keys.skeyid_a.expose(), mid, &q.ni, &q.nr), got) {
            self.stats.hash_failed += 1;
            self.log(
                conn,
                format!("QUICK_MODE request {mid}: HASH(3) does not verify, dropped"),
            );
            return;
        }
        self.authenticated(idx);
        self.log_msg(idx, false, ExchangeType::QUICK_MODE, mid, true, &plain(&p));
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.tm.complete(mid);
        }
        self.accepted(idx, mid, data, None);
        if let Some(q) = self.sas.get_mut(idx).and_then(|s| s.qms.get_mut(k)) {
            q.iv = last;
            q.state = QmState::Done;
            q.created = now;
        }
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.last_heard = now;
        }
        // Installed inbound with HASH(2); now we send on it too, unless it
        // is the twin that lost.
        let spi_in = self.sas.get(idx).and_then(|s| s.qms.get(k)).map(|q| q.spi_in);
        let name = self.conns[conn].spec.name.clone();
        let Some(spi_in) = spi_in else { return };
        if let Some(c) = self.children[conn].iter_mut().find(|c| c.spi_in == spi_in) {
            c.complete = true;
        }
        if self.settle_twins(conn, spi_in, now) {
            return;
        }
        if let Some(c) = self.children[conn].iter_mut().find(|c| c.spi_in == spi_in && !c.active) {
            c.active = true;
            c.installed_at = now;
            self.events.push_back(Event::ChildSaActivate {
                conn: name,
                spi_in: c.spi_in,
            });
        }
    }

    /// Hand a negotiated SA pair to the data plane and keep it.
    fn install(&mut self, idx: SaId, k: usize, now: Millis, activate: bool) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let conn = sa.conn;
        let (local, remote, peer_trains) = (sa.local, sa.remote, sa.peer_trains);
        let Some(q) = sa.qms.get_mut(k) else { return };
        let Some(neg) = q.neg.take() else { return };
        let initiator = q.initiator;
        let rekey_of = q.rekey_of;
        let twin = q.twin;
        let nonce_low = std::cmp::min(&q.ni, &q.nr).clone();
        let t = self.conns[conn].spec.timers;
        let rekey_in = if t.rekey_time.is_zero() || t.rekey_time >= neg.life {
            // Soft at 90 % of the hard lifetime, as racoon and strongSwan do.
            neg.life.mul_f64(0.9)
        } else {
            t.rekey_time
        };
        let ipcomp = match (q.cpi_in, neg.cpi_out) {
            (Some(i), Some(o)) => Some((i, o)),
            _ => None,
        };
        let child = Child {
            pair: q.pair,
            spi_in: q.spi_in,
            spi_out: neg.spi_out,
            ipcomp,
            suite: neg.suite,
            local_ts: q.local_ts,
            remote_ts: q.remote_ts,
            installed_at: now,
            rekey_at: Some(now + rekey_in),
            expire_at: Some(now + neg.life),
            udp_encap: neg.udp,
            // A rekey we started sends on the new SA after a moment; the
            // responder's HASH(3) was our signal, so its side sends now.
            active: activate && !(initiator && rekey_of.is_some()),
            rekeyed: false,
            activate_at: (activate && initiator && rekey_of.is_some()).then(|| now + REKEY_ACTIVATE),
            delete_old: if initiator {
                rekey_of.map(|o| (now + REKEY_DELETE, o))
            } else {
                None
            },
            ours: initiator,
            // Our Quick Mode is done with HASH(2); the peer's with HASH(3).
            complete: initiator,
            twin,
            nonce_low,
            duplicate_delete_at: None,
            delete_sent: false,
        };
        let name = self.conns[conn].spec.name.clone();
        if let Some(old) = rekey_of {
            if let Some(o) = self.children[conn].iter_mut().find(|c| c.spi_in == old) {
                o.rekeyed = true;
            }
            self.log(
                conn,
                format!(
                    "CHILD_SA rekeyed with SPIs {:08x}_i {:08x}_o and TS {} === {}",
                    child.spi_in,
                    child.spi_out,
                    ts_text(&child.local_ts),
                    ts_text(&child.remote_ts)
                ),
            );
        } else {
            self.log(
                conn,
                format!(
                    "CHILD_SA established with SPIs {:08x}_i {:08x}_o and TS {} === {}{}",
                    child.spi_in,
                    child.spi_out,
                    ts_text(&child.local_ts),
                    ts_text(&child.remote_ts),
                    ipcomp
                        .map(|(i, o)| format!(", IPComp CPIs {i:04x}_i {o:04x}_o"))
                        .unwrap_or_default()
                ),
            );
        }
        let info = ChildSaInfo {
            conn: name,
            algorithm: neg.esp,
            esn: false,
            spi_in: child.spi_in,
            spi_out: child.spi_out,
            enc_in: neg.enc_in,
            auth_in: neg.auth_in,
            enc_out: neg.enc_out,
            auth_out: neg.auth_out,
            local_ts: vec![child.local_ts],
            remote_ts: vec![child.remote_ts],
            local,
            remote,
            udp_encap: neg.udp,
            peer_takes_trains: peer_trains,
            replaces: rekey_of,
            activate_outbound: child.active,
            pair: child.pair,
            ipcomp,
        };
        let (spi_in, complete) = (child.spi_in, child.complete);
        self.children[conn].push(child);
        // The twin of ours done first: if this one loses, it never carries
        // our traffic.
        let mut info = info;
        if complete && self.settle_twins(conn, spi_in, now) {
            info.activate_outbound = false;
        }
        self.events.push_back(Event::ChildSaUp(info));
    }

    /// The IPsec SA with inbound SPI `spi` is done; if its twin is done
    /// too, one of the two SA pairs goes: the one whose Quick Mode has the
    /// lowest nonce (RFC 7296 §2.8.1's rule, which both sides compute
    /// alike). The loser is never activated (or no longer sent on, if it
    /// was first) and is deleted by whoever initiated it. True if `spi`
    /// lost.
    fn settle_twins(&mut self, conn: ConnId, spi: u32, now: Millis) -> bool {
        let cs = &self.children[conn];
        let Some(a) = cs.iter().position(|c| c.spi_in == spi) else {
            return false;
        };
        let Some(b) = cs[a]
            .twin
            .and_then(|t| cs.iter().position(|c| c.spi_in == t && c.complete))
        else {
            return false;
        };
        if cs[a].duplicate_delete_at.is_some() || cs[b].duplicate_delete_at.is_some() {
            return cs[a].duplicate_delete_at.is_some();
        }
        let loser = if cs[a].nonce_low < cs[b].nonce_low { a } else { b };
        let c = &mut self.children[conn][loser];
        c.rekeyed = true;
        c.activate_at = None;
        c.delete_old = None;
        c.duplicate_delete_at = Some(now + if c.ours { DUPLICATE_DELETE } else { DUPLICATE_GRACE });
        if loser == a {
            // Done just now, never sent on (the caller holds it back).
            c.active = false;
        }
        let line = format!(
            "both sides set up the pair at once: two IPsec SAs; {:08x}_i {:08x}_o, {} by us, has the lowest nonce and goes{}",
            c.spi_in,
            c.spi_out,
            if c.ours { "initiated" } else { "answered" },
            if c.ours { "" } else { " (the peer deletes it, or we do in 5 s)" },
        );
        self.stats.duplicates_settled += 1;
        self.log(conn, line);
        loser == a
    }

    /// N(CONNECTED): the responder that set the commit bit is ready.
    pub(super) fn connected(&mut self, idx: SaId, _n: &NotifyPayload) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let conn = sa.conn;
        let mut act = Vec::new();
        for q in sa.qms.iter_mut().filter(|q| q.state == QmState::IWaitConnected) {
            q.state = QmState::Done;
            act.push(q.spi_in);
        }
        let name = self.conns[conn].spec.name.clone();
        for spi in act {
            let live = |c: &Child| c.spi_in == spi && c.duplicate_delete_at.is_none();
            if let Some(c) = self.children[conn].iter_mut().find(|c| live(c)) {
                c.active = true;
                self.events.push_back(Event::ChildSaActivate {
                    conn: name.clone(),
                    spi_in: spi,
                });
            }
        }
    }

    /// Start the waiting Quick Modes that have a place now, on each
    /// connection's current phase-1 SA.
    pub(super) fn start_waiting_quick_modes(&mut self, now: Millis) {
        for ci in self.conns.ids() {
            if self.conns.is_retired(ci) {
                self.qm_waiting[ci].clear();
            }
            while !self.qm_waiting[ci].is_empty() {
                let Some(idx) = self.current(ci) else { break };
                if self.sas.get(idx).is_none_or(|sa| !sa.tm.can_initiate()) {
                    break;
                }
                let Some((pair, rekey_of)) = self.qm_waiting[ci].pop_front() else {
                    break;
                };
                // The SA to rekey may have reached its hard lifetime while
                // it waited: then the pair needs a new SA, not a rekey.
                let rekey_of = rekey_of.filter(|spi| self.children[ci].iter().any(|c| c.spi_in == *spi));
                // A new SA for a pair that got one meanwhile (the peer's
                // Quick Mode, while ours waited) would be a second.
                if rekey_of.is_none() && self.pair_covered(ci, pair) {
                    continue;
                }
                self.start_quick_mode(idx, pair, rekey_of, now);
            }
        }
    }

    fn finish_qm(&mut self, idx: SaId, k: usize) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        if let Some(q) = sa.qms.get_mut(k) {
            q.state = QmState::Done;
            sa.tm.complete(q.mid);
        }
    }

    /// Finished Quick Modes are forgotten after [`QM_KEEP`], with the
    /// answers the task manager kept for their retransmissions.
    pub(super) fn qm_timers(&mut self, idx: SaId, now: Millis) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let (old, kept): (Vec<Qm>, Vec<Qm>) = std::mem::take(&mut sa.qms)
            .into_iter()
            .partition(|q| matches!(q.state, QmState::Done | QmState::IWaitConnected) && now >= q.created + QM_KEEP);
        sa.qms = kept;
        for q in old {
            sa.tm.forget(q.mid);
        }
    }

    /// Every send of Quick Mode `mid` went unanswered: as its initiator
    /// (`ours`) the exchange failed; as its responder, the SA whose HASH(3)
    /// never came is dropped before it ever carried our traffic.
    pub(super) fn quick_mode_gave_up(&mut self, idx: SaId, g: &GaveUp<()>, now: Millis) {
        let mid = g.mid;
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let (conn, remote) = (sa.conn, sa.remote);
        let Some(q) = sa.qms.iter_mut().find(|q| q.mid == mid) else {
            return;
        };
        q.state = QmState::Done;
        q.created = now;
        let (spi, rekey_of, pair) = (q.spi_in, q.rekey_of, q.pair);
        // It ran on a phase-1 SA that lost to a duplicate, which the peer
        // may have deleted already: not a dead peer; again on the winner.
        let loser = sa.duplicate_delete_at.is_some();
        if g.ours && loser && self.current(conn).is_some_and(|c| c != idx) {
            self.log(
                conn,
                format!("QUICK_MODE {mid} got no answer on the phase-1 SA that lost: again on the other"),
            );
            self.queue_quick_mode(conn, pair, rekey_of);
            return;
        }
        if g.ours {
            self.fail(conn, g.failure(remote));
            // Issue 13 point 3: a peer that answers nothing on the IKE flow
            // (every retransmission of our Quick Mode, a rekey or not, went
            // unanswered) is treated as dead, as DPD would: keeping the
            // phase-1 SA and the CHILD SAs would leave us half of a tunnel
            // the peer may have deleted (or whose IKE a stateful firewall
            // now drops). dpd_action = restart initiates again, and the new
            // phase 1 carries INITIAL_CONTACT, so a reachable peer drops
            // whatever it kept.
            let established = self.sas.get(idx).is_some_and(|s| s.state == P1State::Established);
            if established {
                self.log(
                    conn,
                    "peer not answering our Quick Mode: deleting its SAs as a dead peer's".into(),
                );
                self.remove(idx, "peer not answering");
                self.drop_children(conn);
                if self.conns[conn].spec.timers.dpd_restart {
                    self.log(conn, "dead peer: initiating again (dpd_action = restart)".into());
                    self.start_phase1(conn, now);
                }
            }
            return;
        }
        self.log(conn, format!("QUICK_MODE {mid}: no HASH(3) from the peer, given up"));
        if let Some(k) = self.children[conn].iter().position(|c| c.spi_in == spi && !c.active) {
            let c = self.children[conn].remove(k);
            // What it was to replace was not replaced: it rekeys as before.
            if let Some(o) = self.children[conn]
                .iter_mut()
                .find(|o| Some(o.spi_in) == rekey_of && o.duplicate_delete_at.is_none())
            {
                o.rekeyed = false;
            }
            self.events.push_back(Event::ChildSaDown {
                conn: self.conns[conn].spec.name.clone(),
                spi_in: c.spi_in,
                spi_out: c.spi_out,
            });
        }
    }

    pub(super) fn child_timers(&mut self, ci: ConnId, now: Millis) {
        if self.conns.is_retired(ci) {
            return;
        }
        let name = self.conns[ci].spec.name.clone();
        let current = self.current(ci);
        let mut k = 0;
        while k < self.children[ci].len() {
            let c = self.children[ci][k].clone();
            if c.duplicate_delete_at.is_some_and(|d| now >= d) {
                // Not before the winner carries the traffic.
                let winner = self.children[ci]
                    .iter()
                    .any(|w| w.pair == c.pair && w.active && w.duplicate_delete_at.is_none());
                if c.active && !winner {
                    self.children[ci][k].duplicate_delete_at = Some(now + DUPLICATE_DELETE);
                } else if !c.delete_sent {
                    // The DELETE first; the SA itself a moment later, so
                    // what the peer sent on it before the DELETE reached it
                    // (it may have taken our Quick Mode for a rekey and sent
                    // on this SA) still arrives.
                    self.log(
                        ci,
                        format!("deleting the duplicate IPsec SA {:08x}_i {:08x}_o", c.spi_in, c.spi_out),
                    );
                    if let Some(idx) = current {
                        self.send_delete_esp(idx, c.spi_in);
                    }
                    let x = &mut self.children[ci][k];
                    x.delete_sent = true;
                    x.duplicate_delete_at = Some(now + DUPLICATE_DELETE);
                } else {
                    // Said again: IKEv1's DELETE is never acknowledged, and
                    // a peer that missed it would go on sending on the SA.
                    if let Some(idx) = current {
                        self.send_delete_esp(idx, c.spi_in);
                    }
                    self.children[ci].remove(k);
                    self.events.push_back(Event::ChildSaDown {
                        conn: name.clone(),
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                    });
                    continue;
                }
            }
            if c.activate_at.is_some_and(|a| now >= a) {
                let x = &mut self.children[ci][k];
                x.activate_at = None;
                x.active = true;
                self.log(ci, format!("sending on the rekeyed CHILD_SA {:08x}_o now", c.spi_out));
                self.events.push_back(Event::ChildSaActivate {
                    conn: name.clone(),
                    spi_in: c.spi_in,
                });
            }
            if let Some((at, old)) = c.delete_old.filter(|(at, _)| now >= *at) {
                let _ = at;
                self.children[ci][k].delete_old = None;
                if let Some(j) = self.children[ci].iter().position(|o| o.spi_in == old) {
                    let o = self.children[ci].remove(j);
                    if let Some(idx) = current {
                        self.send_delete_esp(idx, o.spi_in);
                    }
                    self.events.push_back(Event::ChildSaDown {
                        conn: name.clone(),
                        spi_in: o.spi_in,
                        spi_out: o.spi_out,
                    });
                    if j < k {
                        k -= 1;
                    }
                }
            }
            let c = self.children[ci][k].clone();
            if c.expire_at.is_some_and(|e| now >= e) {
                self.children[ci].remove(k);
                self.log(ci, format!("CHILD_SA {:08x}_i lifetime over: deleting it", c.spi_in));
                if let Some(idx) = current {
                    self.send_delete_esp(idx, c.spi_in);
                }
                // The replacement, if one waits, sends now.
                if let Some(n) = self.children[ci]
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
                self.events.push_back(Event::ChildSaDown {
                    conn: name.clone(),
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                });
                continue;
            }
            if !c.rekeyed && c.rekey_at.is_some_and(|r| now >= r) {
                self.children[ci][k].rekey_at = None;
                match current {
                    Some(idx) => self.start_quick_mode(idx, c.pair, Some(c.spi_in), now),
                    None => {
                        if !self.is_active(&name) {
                            self.log(ci, "CHILD_SA rekey needs a phase-1 SA: starting one".into());
                            self.start_phase1(ci, now);
                        }
                    }
                }
            }
            k += 1;
        }
    }

    /// Rekey the SA with this inbound SPI now (byte lifetime reached).
    pub fn rekey_child_spi(&mut self, conn: &str, spi_in: u32, now: Millis) -> bool {
        let Some(ci) = self.conn_index(conn) else { return false };
        let Some(k) = self.children[ci].iter().position(|c| c.spi_in == spi_in && !c.rekeyed) else {
            return false;
        };
        self.children[ci][k].rekey_at = Some(now);
        self.child_timers(ci, now);
        true
    }

    /// Delete the SA with this inbound SPI now (hard byte lifetime).
    pub fn delete_child_spi(&mut self, conn: &str, spi_in: u32, now: Millis) -> bool {
        let Some(ci) = self.conn_index(conn) else { return false };
        let Some(k) = self.children[ci].iter().position(|c| c.spi_in == spi_in) else {
            return false;
        };
        self.children[ci][k].expire_at = Some(now);
        self.child_timers(ci, now);
        true
    }

    /// Rekey every SA of a connection now (`ikeda rekey`, tests).
    pub fn rekey_child(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        let ci = self.conn_index(conn).ok_or_else(|| format!("no connection '{conn}'"))?;
        for c in self.children[ci].iter_mut().filter(|c| !c.rekeyed) {
            c.rekey_at = Some(now);
        }
        self.child_timers(ci, now);
        Ok(())
    }
}

fn ipcomp_proposal(number: u8, cpi: u16, udp: bool, life: Duration) -> Proposal {
    Proposal {
        number,
        protocol: protocol::IPCOMP,
        spi: cpi.to_be_bytes().to_vec(),
        transforms: vec![Transform {
            number: 1,
            id: transform_id::IPCOMP_DEFLATE,
            attributes: vec![
                Attribute::basic(ipsec_attr::SA_LIFE_TYPE, ipsec_attr::LIFE_SECONDS),
                Attribute::number(ipsec_attr::SA_LIFE_DURATION, life.as_secs()),
                Attribute::basic(
                    ipsec_attr::ENCAPSULATION_MODE,
                    if udp {
                        ipsec_attr::ENCAP_UDP_TUNNEL
                    } else {
                        ipsec_attr::ENCAP_TUNNEL
                    },
                ),
            ],
        }],
    }
}

/// A CPI from a proposal's SPI field: 2 octets, or 4 with the CPI in the
/// low half (RFC 2407 §4.4.5 allows both).
fn cpi_of(spi: &[u8]) -> Option<u16> {
    match spi.len() {
        2 => Some(u16::from_be_bytes([spi[0], spi[1]])),
        4 => Some(u16::from_be_bytes([spi[2], spi[3]])),
        _ => None,
    }
}

pub(super) fn ts_text(t: &TsRange) -> String {
    match prefix_mask(t.start_address, t.end_address) {
        Some(m) => {
            let bits: u32 = m.iter().map(|b| b.count_ones()).sum();
            format!("{}/{bits}", t.start_address)
        }
        None if t.start_address == t.end_address => {
            format!(
                "{}/{}",
                t.start_address,
                if t.start_address.is_ipv4() { 32 } else { 128 }
            )
        }
        None => format!("{}-{}", t.start_address, t.end_address),
    }
}
