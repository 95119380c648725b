//! `ikeda pcap`: what a capture shows, in plain words (issue 12 point 6).
//!
//! The analyzer hands every IKE message to an [`Explainer`] (its printed
//! record, [`IkeMessage`], its bytes, and the [`Facts`] read from its
//! payloads, in clear or decrypted with `--keys`), and every ESP packet's
//! SPI and time. At the end of the capture, given the ESP flows, the
//! explainer says what happened, as [`Finding`]s: a sentence each for the
//! text output, the same with fields for `--json`:
//!
//! - who initiated each IKE SA (IKE_SA_INIT request, Main/Aggressive Mode
//!   message 1, else IKEv2's Initiator flag), and when it was established;
//! - messages sent more than once (byte for byte the same: RFC 7296 §2.1
//!   and RFC 2408 §5 retransmit the same message), how many times and how
//!   far apart; how long each kind of exchange took, request to response;
//!   requests never answered and IKEv1 exchanges that stopped half-way;
//! - the NAT-T float from 500 to 4500 (RFC 7296 §2.23, RFC 3947 §4),
//!   addresses and ports that change, and a NAT told by the NAT detection
//!   hashes (a hash that does not match the addresses seen here means a
//!   NAT between its sender and this capture point, or beyond it);
//! - failure notifications, with what they mean and their likely cause;
//! - both sides initiating an IKE SA at once, and which SA survived;
//! - a CHILD SA rekey: whether the traffic moved to the new SA before the
//!   old one was deleted, and the packets seen on the old SPIs after their
//!   DELETE (lost: nobody has the SA any more);
//! - ESP seen one way only, and ESP on SPIs that no `--keys` source covers.
//!
//! Headers are enough for most of it (exchange type, flags, Message ID,
//! SPIs; IKE_SA_INIT and unencrypted IKEv1 notifications). DELETE, REKEY_SA
//! and the notifications inside SK need the keys; without them a rekey is
//! told from the ESP flows alone, and the sentence says what is unknown.
//!
//! Every table a capture can grow is bounded (the constants below); what
//! did not fit is counted. Per ESP packet the explainer does one lookup,
//! and only once a DELETE has named SPIs to watch.

use super::analyze::{EspFlow, IkeMessage};
use ikeda_wire::{ikev1, ikev2};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// IKE SAs (by version and initiator SPI/cookie) tracked.
pub const MAX_IKE_SAS: usize = 1024;
/// Exchanges per IKE SA held open for retransmissions to be matched; the
/// oldest is summed into the SA's statistics when another comes. IKEv2's
/// window is 1 unless SET_WINDOW_SIZE raised it, IKEv1 runs a few Quick
/// Modes at once at most.
const MAX_OPEN_EXCHANGES: usize = 16;
/// Distinct messages per exchange (Main Mode has 6).
const MAX_MESSAGES: usize = 8;
/// Copies of one message whose frames and times are kept (more are counted).
const MAX_COPIES: usize = 8;
/// DELETEs of CHILD SAs, CHILD SA rekeys, and SPIs watched after a DELETE.
const MAX_DELETES: usize = 1024;
const MAX_REKEYS: usize = 1024;
const MAX_WATCHED_SPIS: usize = 4096;
/// Findings kept per IKE SA and kind (retransmissions, failures, ...).
const MAX_PER_SA: usize = 8;
/// Findings printed per kind over the whole capture; the rest counted.
pub const MAX_PER_KIND: usize = 64;
/// IKEv1 DPD R-U-THERE awaiting their ACK, per SA.
const MAX_DPD_PENDING: usize = 16;
/// Two IKE SAs between the same peers, initiated by opposite sides within
/// this many seconds, were initiated "at once".
const SIMULTANEOUS_WINDOW: f64 = 5.0;
/// ESP the other way within this many seconds of a flow counts as its reverse.
const REVERSE_SLACK: f64 = 2.0;

/// What the explainer needs of one IKE message's payloads.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub version: u8,
    pub spi_i: u64,
    pub spi_r: u64,
    /// IKEv2's Initiator flag (RFC 7296 §3.1): sent by the original initiator.
    pub from_original_initiator: Option<bool>,
    /// The payloads were read (in clear, or decrypted).
    pub readable: bool,
    /// Error notifications, and COOKIE.
    pub notifies: Vec<Notify>,
    /// A Delete payload for the IKE (ISAKMP) SA itself.
    pub delete_ike: bool,
    /// ESP/AH SPIs in Delete payloads.
    pub deleted_spis: Vec<u32>,
    /// ESP/AH SPIs proposed or accepted in SA payloads (a new CHILD SA).
    pub child_spis: Vec<u32>,
    /// IKEv2 N(REKEY_SA): the CHILD SA (by its requester's inbound SPI)
    /// this CREATE_CHILD_SA replaces (RFC 7296 §1.3.3).
    pub rekey_of: Option<u32>,
    /// IKEv2: a CREATE_CHILD_SA's SA payload proposing an IKE SA with this
    /// SPI (the requester's, §1.3.2): an IKE SA rekey.
    pub new_ike_spi: Option<u64>,
    /// NAT detection hashes (RFC 7296 §2.23, RFC 3947 §3.2): of the
    /// sender's own address(es), and of the address it sends to.
    pub natd_src: Vec<Vec<u8>>,
    pub natd_dst: Option<Vec<u8>>,
    /// IKEv1 DPD (RFC 3706): (is an ACK, sequence number).
    pub dpd: Option<(bool, u32)>,
}

#[derive(Debug, Clone)]
pub struct Notify {
    pub code: u16,
    pub name: String,
    pub error: bool,
    /// The first bytes of its data (INVALID_KE_PAYLOAD's group).
    pub data: Vec<u8>,
}

fn spi32(b: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(b).ok().map(u32::from_be_bytes)
}

impl Facts {
    /// From an IKEv2 message's payloads: the outer ones, or the ones inside
    /// SK when it was decrypted.
    pub fn v2(repr: &ikev2::HeaderRepr, payloads: &[ikev2::Payload]) -> Facts {
        use ikev2::{NotifyType, Payload, ProtocolId};
        let mut f = Facts {
            version: 2,
            spi_i: repr.initiator_spi,
            spi_r: repr.responder_spi,
            from_original_initiator: Some(repr.flags.initiator()),
            readable: !payloads.iter().any(|p| matches!(p, Payload::Sk(_) | Payload::Skf(_))),
            ..Facts::default()
        };
        for p in payloads {
            match p {
                Payload::Notify(n) => match n.notify_type {
                    NotifyType::REKEY_SA => f.rekey_of = spi32(&n.spi),
                    NotifyType::NAT_DETECTION_SOURCE_IP => f.natd_src.push(n.data.clone()),
                    NotifyType::NAT_DETECTION_DESTINATION_IP => f.natd_dst = Some(n.data.clone()),
                    t if t.is_error() || t == NotifyType::COOKIE => f.notifies.push(Notify {
                        code: t.0,
                        name: t.to_string(),
                        error: t.is_error(),
                        data: n.data.iter().take(8).copied().collect(),
                    }),
                    _ => {}
                },
                Payload::Delete(d) if d.protocol_id == ProtocolId::IKE => f.delete_ike = true,
                Payload::Delete(d) => f.deleted_spis.extend(d.spis.iter().filter_map(|s| spi32(s))),
                Payload::Sa(sa) => {
                    for prop in &sa.proposals {
                        if prop.protocol_id == ProtocolId::IKE {
                            if let Ok(b) = <[u8; 8]>::try_from(prop.spi.as_slice()) {
                                f.new_ike_spi.get_or_insert(u64::from_be_bytes(b));
                            }
                        } else if let Some(s) = prop.spi_u32() {
                            if !f.child_spis.contains(&s) {
                                f.child_spis.push(s);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        f
    }

    /// From an IKEv1 message's payloads (`None`: encrypted and not
    /// decrypted).
    pub fn v1(h: &ikev1::Header, payloads: Option<&[ikev1::Payload]>) -> Facts {
        use ikev1::{notify, protocol, Payload};
        let mut f = Facts {
            version: 1,
            spi_i: h.icookie,
            spi_r: h.rcookie,
            readable: payloads.is_some(),
            ..Facts::default()
        };
        let mut natd = 0;
        for p in payloads.unwrap_or_default() {
            match p {
                Payload::Notify(n) if n.notify_type == notify::R_U_THERE || n.notify_type == notify::R_U_THERE_ACK => {
                    if let Some(seq) = spi32(n.data.get(..4).unwrap_or_default()) {
                        f.dpd = Some((n.notify_type == notify::R_U_THERE_ACK, seq));
                    }
                }
                Payload::Notify(n) if n.notify_type < notify::FIRST_STATUS => f.notifies.push(Notify {
                    code: n.notify_type,
                    name: notify::name(n.notify_type).to_string(),
                    error: true,
                    data: n.data.iter().take(8).copied().collect(),
                }),
                Payload::Delete(d) if d.protocol == protocol::ISAKMP => f.delete_ike = true,
                Payload::Delete(d) if d.protocol == protocol::ESP || d.protocol == protocol::AH => {
                    f.deleted_spis.extend(d.spis.iter().filter_map(|s| spi32(s)))
                }
                Payload::Sa(sa) => {
                    for prop in &sa.proposals {
                        if prop.protocol == protocol::ESP || prop.protocol == protocol::AH {
                            if let Some(s) = spi32(&prop.spi) {
                                if !f.child_spis.contains(&s) {
                                    f.child_spis.push(s);
                                }
                            }
                        }
                    }
                }
                // RFC 3947 §3.2: the first NAT-D is the remote end's
                // address, the ones after it the sender's own.
                Payload::NatD(hash) => {
                    if natd == 0 {
                        f.natd_dst = Some(hash.clone());
                    } else {
                        f.natd_src.push(hash.clone());
                    }
                    natd += 1;
                }
                _ => {}
            }
        }
        f
    }
}

/// One thing the capture shows: `text` is the sentence printed, the other
/// fields the same for scripts (`--json`'s `explanation`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Finding {
    /// `initiator`, `retransmission`, `exchange_times`, `unanswered`,
    /// `nat_float`, `address_change`, `nat`, `failure`, `cookie`,
    /// `simultaneous_initiation`, `child_rekey`, `child_deleted`,
    /// `esp_spi_change`, `esp_one_way`, `no_key`, `wrong_key`, `more`.
    pub kind: &'static str,
    pub text: String,
    /// `<SPIi>_i <SPIr>_r` (IKEv1: the cookies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ike_sa: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spis: Vec<String>,
    /// Frames that show it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<u64>,
    /// When (seconds since the first packet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// The duration it speaks of (an exchange, an interval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// How many (copies of a message, packets, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Seconds between consecutive copies of a retransmitted message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// Packets on an SPI after its DELETE was answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// A rekey: the traffic was on the new SA before the old one's DELETE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_before_delete: Option<bool>,
}

impl Finding {
    fn new(kind: &'static str, text: String) -> Finding {
        Finding {
            kind,
            text,
            ..Finding::default()
        }
    }
}

/// `12.3 ms`, `1.004 s`.
fn dur(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.3} s")
    }
}

fn hex_spi(s: u32) -> String {
    format!("{s:#010x}")
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn frames_text(frames: &[u64], more: u64) -> String {
    let mut s: Vec<String> = frames.iter().map(u64::to_string).collect();
    if more > 0 {
        s.push(format!("and {more} more"));
    }
    s.join(", ")
}

/// One message of an exchange and its copies.
#[derive(Debug, Clone)]
struct Msg {
    hash: u64,
    from_requester: bool,
    src: SocketAddr,
    dst: SocketAddr,
    copies: u64,
    frames: Vec<u64>,
    times: Vec<f64>,
}

/// One exchange (IKEv2: Message ID and which side requests; IKEv1: M-ID).
#[derive(Debug, Clone)]
struct Exchange {
    mid: u32,
    /// IKEv2: requested by the original initiator.
    by_initiator: Option<bool>,
    name: String,
    requester: IpAddr,
    first_time: f64,
    /// The first response to the latest distinct request.
    answered: Option<f64>,
    awaiting: bool,
    /// The last new (not repeated) message.
    last_new: f64,
    msgs: Vec<Msg>,
    more_msgs: u64,
    /// Distinct requests after the first (IKE_SA_INIT again with a COOKIE
    /// or another KE): retries, not retransmissions.
    retries: u32,
    /// The error notification of a response, if any.
    error: Option<String>,
    delete_event: Option<usize>,
    rekey: Option<usize>,
    /// IKEv1: an Informational carrying DPD, whose timing is told as DPD
    /// (R-U-THERE to ACK), not again as a one-way INFORMATIONAL_V1.
    dpd: bool,
}

impl Exchange {
    fn messages(&self) -> u64 {
        self.msgs.len() as u64 + self.more_msgs
    }
}

/// Per kind of exchange: how many, answered, and how long they took.
#[derive(Debug, Clone, Default)]
struct ExStats {
    count: u64,
    answered: u64,
    min: f64,
    max: f64,
    /// IKEv1: messages of the longest (6 for a whole Main Mode).
    messages: u64,
}

impl ExStats {
    fn add(&mut self, took: Option<f64>) {
        self.count += 1;
        if let Some(t) = took {
            if self.answered == 0 || t < self.min {
                self.min = t;
            }
            if self.answered == 0 || t > self.max {
                self.max = t;
            }
            self.answered += 1;
        }
    }
}

/// Where one side of an IKE SA was seen (address and port), in order.
#[derive(Debug, Clone)]
struct Seen {
    at: SocketAddr,
    frame: u64,
    time: f64,
}

#[derive(Debug, Clone, Default)]
struct IkeSa {
    version: u8,
    spi_i: u64,
    spi_r: u64,
    /// IKEv1 phase 1 exchange type name (`ID_PROT`, `AGGRESSIVE`).
    phase1: Option<String>,
    initiator: Option<SocketAddr>,
    responder: Option<SocketAddr>,
    /// The initiation (IKE_SA_INIT request, Main/Aggressive Mode message
    /// 1): time and frame.
    created: Option<(f64, u64)>,
    /// Created by rekeying this IKE SA (its label), at (time, frame).
    rekey_of: Option<(String, f64, u64)>,
    established: Option<(f64, u64)>,
    /// IKE_AUTH's response could not be read: success is not known.
    established_unread: bool,
    first: (f64, u64),
    last: (f64, u64),
    deleted: Option<(f64, u64, IpAddr)>,
    /// Where the initiator's side, and the responder's, were seen.
    sides: [Vec<Seen>; 2],
    seen_500: bool,
    float: Option<(f64, u64, String)>,
    nat: Vec<Finding>,
    /// A NAT told by the sender's own hash, by the destination's.
    nat_src_told: bool,
    nat_dst_told: bool,
    exchanges: VecDeque<Exchange>,
    stats: BTreeMap<String, ExStats>,
    stories: Vec<Finding>,
    more_stories: u64,
    failures: Vec<Finding>,
    more_failures: u64,
    unanswered: Vec<Finding>,
    more_unanswered: u64,
    dpd_pending: VecDeque<(u32, f64, u64, SocketAddr, SocketAddr)>,
    dpd_unanswered: u64,
}

impl IkeSa {
    fn label(&self) -> String {
        format!("{:016x}_i {:016x}_r", self.spi_i, self.spi_r)
    }

    fn name(&self) -> String {
        if self.version == 1 {
            format!("ISAKMP SA {}", self.label())
        } else {
            format!("IKE SA {}", self.label())
        }
    }

    fn finding(&self, kind: &'static str, text: String) -> Finding {
        Finding {
            ike_sa: Some(self.label()),
            ..Finding::new(kind, text)
        }
    }

    /// Whether the capture's side `src` is the original initiator's.
    fn is_initiator(&self, src: IpAddr, f: &Facts) -> Option<bool> {
        match f.from_original_initiator {
            Some(b) => Some(b),
            None => self.initiator.map(|i| i.ip() == src),
        }
    }

    fn see(&mut self, side: usize, at: SocketAddr, frame: u64, time: f64) {
        let s = &mut self.sides[side];
        if s.last().map(|x| x.at) != Some(at) && s.len() < 4 {
            s.push(Seen { at, frame, time });
        }
    }
}

/// A DELETE of CHILD SAs and what came on their SPIs after it.
#[derive(Debug, Clone)]
struct DeleteEvent {
    sa: usize,
    by: IpAddr,
    exchange: String,
    time: f64,
    frame: u64,
    /// IKEv2: the response (with the other direction's SPIs); IKEv1's
    /// DELETE is one message: done when sent.
    done: Option<f64>,
    spis: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
struct Watch {
    event: usize,
    /// Packets between the DELETE request and its response.
    during: u64,
    /// Packets after the DELETE was answered.
    after: u64,
    first_after: Option<(u64, f64)>,
}

/// An IKEv2 CHILD SA rekey (CREATE_CHILD_SA with N(REKEY_SA)).
#[derive(Debug, Clone)]
struct Rekey {
    exchange: String,
    time: f64,
    frame: u64,
    old: u32,
    new: Vec<u32>,
}

/// Collects what the capture shows, message by message; says it at the end.
#[derive(Debug, Default)]
pub struct Explainer {
    /// `--keys` was given.
    keys: bool,
    sas: Vec<IkeSa>,
    index: HashMap<(u8, u64), usize>,
    untracked_sas: u64,
    deletes: Vec<DeleteEvent>,
    watch: HashMap<u32, Watch>,
    rekeys: Vec<Rekey>,
    /// IKE SA rekeys: (new SPIi, old SA index, time, frame).
    ike_rekeys: Vec<(u64, usize, f64, u64)>,
    /// The latest time of any packet (the end of the capture).
    end: f64,
}

impl Explainer {
    pub fn new(keys: bool) -> Explainer {
        Explainer {
            keys,
            ..Explainer::default()
        }
    }

    pub fn set_keys(&mut self, keys: bool) {
        self.keys = keys;
    }

    /// Any packet: the capture runs at least until `t`.
    #[inline]
    pub fn seen(&mut self, t: f64) {
        self.end = t;
    }

    /// One ESP packet: counted if its SPI was deleted before.
    #[inline]
    pub fn esp_packet(&mut self, spi: u32, frame: u64, t: f64) {
        if self.watch.is_empty() {
            return;
        }
        if let Some(w) = self.watch.get_mut(&spi) {
            let ev = &self.deletes[w.event];
            match ev.done {
                Some(d) if t >= d => {
                    w.after += 1;
                    w.first_after.get_or_insert((frame, t));
                }
                _ if t >= ev.time => w.during += 1,
                _ => {}
            }
        }
    }

    /// One IKE message that parsed.
    pub fn ike(&mut self, m: &IkeMessage, bytes: &[u8], f: Facts) {
        let t = m.rel_time;
        self.end = self.end.max(t);
        let key = (f.version, f.spi_i);
        let idx = match self.index.get(&key) {
            Some(i) => *i,
            None if self.sas.len() >= MAX_IKE_SAS => {
                self.untracked_sas += 1;
                return;
            }
            None => {
                self.sas.push(IkeSa {
                    version: f.version,
                    spi_i: f.spi_i,
                    first: (t, m.frame),
                    ..IkeSa::default()
                });
                self.index.insert(key, self.sas.len() - 1);
                self.sas.len() - 1
            }
        };
        let src = SocketAddr::new(m.src, m.src_port);
        let dst = SocketAddr::new(m.dst, m.dst_port);
        let what = format!(
            "{} {} {}",
            m.exchange,
            if m.request { "request" } else { "response" },
            m.message_id
        );
        let ike_rekey = self.ike_rekeys.iter().find(|r| r.0 == f.spi_i).map(|r| (r.1, r.2, r.3));
        let old_label = ike_rekey.map(|(i, t, fr)| (self.sas[i].label(), t, fr));
        let sa = &mut self.sas[idx];
        if f.spi_r != 0 {
            sa.spi_r = f.spi_r;
        }
        sa.last = (t, m.frame);

        // Who initiated: the first message of the SA's creation, else
        // IKEv2's Initiator flag.
        let initiation = match f.version {
            2 => m.exchange == "IKE_SA_INIT" && m.request,
            _ => (m.exchange == "ID_PROT" || m.exchange == "AGGRESSIVE") && f.spi_r == 0,
        };
        if initiation && sa.created.is_none() {
            sa.created = Some((t, m.frame));
            sa.initiator = Some(src);
            sa.responder = Some(dst);
            if f.version == 1 {
                sa.phase1 = Some(m.exchange.clone());
            }
        }
        if sa.initiator.is_none() {
            if let Some(by_i) = f.from_original_initiator {
                let (i, r) = if by_i { (src, dst) } else { (dst, src) };
                sa.initiator = Some(i);
                sa.responder = Some(r);
            }
            if sa.rekey_of.is_none() {
                sa.rekey_of = old_label;
            }
        }
        if f.version == 1 && sa.phase1.is_none() && (m.exchange == "ID_PROT" || m.exchange == "AGGRESSIVE") {
            sa.phase1 = Some(m.exchange.clone());
        }
        let from_i = sa.is_initiator(m.src, &f);
        if let Some(b) = from_i {
            let (si, sr) = if b { (src, dst) } else { (dst, src) };
            sa.see(0, si, m.frame, t);
            sa.see(1, sr, m.frame, t);
        }

        // NAT-T: the SA moves from 500 to 4500 (after the non-ESP marker).
        if !m.non_esp_marker {
            sa.seen_500 = true;
        } else if sa.seen_500 && sa.float.is_none() {
            sa.float = Some((t, m.frame, what.clone()));
        }
        if !(sa.nat_src_told && sa.nat_dst_told) {
            nat_check(sa, m, &f, src, dst, &what);
        }

        // The exchange, and whether this message repeats one of it.
        let by_initiator = match (f.version, from_i) {
            (2, Some(b)) => Some(if m.request { b } else { !b }),
            _ => None,
        };
        let pos = sa
            .exchanges
            .iter()
            .position(|e| e.mid == m.message_id && e.by_initiator == by_initiator && e.name == m.exchange);
        let pos = match pos {
            Some(p) => p,
            None => {
                if sa.exchanges.len() >= MAX_OPEN_EXCHANGES {
                    if let Some(old) = sa.exchanges.pop_front() {
                        close_exchange(sa, old, self.end);
                    }
                }
                sa.exchanges.push_back(Exchange {
                    mid: m.message_id,
                    by_initiator,
                    name: m.exchange.clone(),
                    requester: m.src,
                    first_time: t,
                    answered: None,
                    awaiting: false,
                    last_new: t,
                    msgs: Vec::new(),
                    more_msgs: 0,
                    retries: 0,
                    error: None,
                    delete_event: None,
                    rekey: None,
                    dpd: f.dpd.is_some(),
                });
                sa.exchanges.len() - 1
            }
        };
        let e = &mut sa.exchanges[pos];
        let from_requester = match f.version {
            2 => m.request,
            _ => m.src == e.requester,
        };
        let h = hash_of(bytes);
        let mut new_message = false;
        match e.msgs.iter_mut().find(|x| x.hash == h) {
            Some(x) => {
                x.copies += 1;
                if x.frames.len() < MAX_COPIES {
                    x.frames.push(m.frame);
                    x.times.push(t);
                }
            }
            None => {
                new_message = true;
                e.last_new = t;
                if from_requester && e.msgs.iter().any(|x| x.from_requester) {
                    // A new request in the same exchange (IKE_SA_INIT with a
                    // COOKIE or another KE): what counts is its answer.
                    e.retries += 1;
                    e.answered = None;
                }
                if e.msgs.len() < MAX_MESSAGES {
                    e.msgs.push(Msg {
                        hash: h,
                        from_requester,
                        src,
                        dst,
                        copies: 1,
                        frames: vec![m.frame],
                        times: vec![t],
                    });
                } else {
                    e.more_msgs += 1;
                }
            }
        }
        if new_message {
            if from_requester {
                e.awaiting = true;
            } else if e.awaiting || e.answered.is_none() {
                e.answered = Some(t);
                e.awaiting = false;
            }
        }
        if !from_requester {
            if let Some(n) = f.notifies.iter().find(|n| n.error) {
                e.error.get_or_insert_with(|| n.name.clone());
            }
        }
        let (e_delete, e_rekey) = (e.delete_event, e.rekey);

        // IKEv2 IKE_AUTH answered: established, unless it says it failed.
        if f.version == 2 && m.exchange == "IKE_AUTH" && !m.request && sa.established.is_none() {
            let failed = f.notifies.iter().any(|n| n.error);
            if !failed {
                sa.established = Some((t, m.frame));
                sa.established_unread = !f.readable;
            }
        }
        if f.version == 1 && new_message && sa.established.is_none() {
            let need = match m.exchange.as_str() {
                "ID_PROT" => 6,
                "AGGRESSIVE" => 3,
                _ => u64::MAX,
            };
            if sa.exchanges[pos].messages() >= need {
                sa.established = Some((t, m.frame));
            }
        }

        // Failures, in plain words.
        for n in &f.notifies {
            let finding = notify_finding(sa, m, n, &what);
            if sa.failures.len() < MAX_PER_SA {
                sa.failures.push(finding);
            } else {
                sa.more_failures += 1;
            }
        }

        // IKEv1 DPD: R-U-THERE answered by the ACK of the same sequence number.
        if let Some((ack, seq)) = f.dpd {
            if !ack {
                if !sa.dpd_pending.iter().any(|p| p.0 == seq) {
                    if sa.dpd_pending.len() >= MAX_DPD_PENDING {
                        sa.dpd_pending.pop_front();
                        sa.dpd_unanswered += 1;
                        sa.stats.entry("DPD".into()).or_default().add(None);
                    }
                    sa.dpd_pending.push_back((seq, t, m.frame, src, dst));
                }
            } else if let Some(p) = sa.dpd_pending.iter().position(|p| p.0 == seq) {
                if let Some((_, t0, ..)) = sa.dpd_pending.remove(p) {
                    sa.stats.entry("DPD".into()).or_default().add(Some(t - t0));
                }
            }
        }

        if f.delete_ike && sa.deleted.is_none() {
            sa.deleted = Some((t, m.frame, m.src));
        }
        let _ = sa;

        // CHILD SA deletions: watch their SPIs from now on. An IKEv2
        // DELETE is done when answered (the response names the other
        // direction's SPIs); IKEv1's is one message, done when sent.
        let v2_response = f.version == 2 && !m.request;
        match e_delete {
            Some(ev) if v2_response => {
                let d = &mut self.deletes[ev];
                d.done.get_or_insert(t);
                for s in &f.deleted_spis {
                    if !d.spis.contains(s) {
                        d.spis.push(*s);
                    }
                }
                for s in &f.deleted_spis {
                    self.watch_spi(*s, ev);
                }
            }
            None if !f.deleted_spis.is_empty() && self.deletes.len() < MAX_DELETES => {
                self.deletes.push(DeleteEvent {
                    sa: idx,
                    by: m.src,
                    exchange: format!("{what}, frame {}", m.frame),
                    time: t,
                    frame: m.frame,
                    done: (f.version == 1 || v2_response).then_some(t),
                    spis: f.deleted_spis.clone(),
                });
                let ev = self.deletes.len() - 1;
                self.sas[idx].exchanges[pos].delete_event = Some(ev);
                for s in &f.deleted_spis {
                    self.watch_spi(*s, ev);
                }
            }
            _ => {}
        }

        // CHILD SA rekeys (IKEv2, N(REKEY_SA) read with the keys).
        if f.version == 2 && m.exchange == "CREATE_CHILD_SA" {
            if let Some(r) = e_rekey {
                for s in &f.child_spis {
                    if !self.rekeys[r].new.contains(s) {
                        self.rekeys[r].new.push(*s);
                    }
                }
            } else if let (true, Some(old)) = (m.request, f.rekey_of) {
                if self.rekeys.len() < MAX_REKEYS {
                    self.rekeys.push(Rekey {
                        exchange: format!("{what} at {t:.3} s, frame {}", m.frame),
                        time: t,
                        frame: m.frame,
                        old,
                        new: f.child_spis.clone(),
                    });
                    self.sas[idx].exchanges[pos].rekey = Some(self.rekeys.len() - 1);
                }
            }
            if let (true, Some(spi)) = (m.request, f.new_ike_spi) {
                if self.ike_rekeys.len() < MAX_REKEYS {
                    self.ike_rekeys.push((spi, idx, t, m.frame));
                }
            }
        }
    }

    fn watch_spi(&mut self, spi: u32, event: usize) {
        if self.watch.len() < MAX_WATCHED_SPIS || self.watch.contains_key(&spi) {
            self.watch.insert(
                spi,
                Watch {
                    event,
                    ..Watch::default()
                },
            );
        }
    }

    /// The end of the capture: everything it shows, in order: each IKE
    /// SA, then what spans several (both sides initiating at once, CHILD
    /// SA rekeys and deletions), then the ESP flows.
    pub fn finish(&mut self, flows: &[&EspFlow]) -> Vec<Finding> {
        let end = flows.iter().map(|f| f.last_time).fold(self.end, f64::max);
        let mut out = Vec::new();
        for i in 0..self.sas.len() {
            let mut sa = std::mem::take(&mut self.sas[i]);
            while let Some(e) = sa.exchanges.pop_front() {
                close_exchange(&mut sa, e, end);
            }
            for (seq, t, frame, src, dst) in std::mem::take(&mut sa.dpd_pending) {
                sa.dpd_unanswered += 1;
                sa.stats.entry("DPD".into()).or_default().add(None);
                if sa.unanswered.len() < MAX_PER_SA {
                    let mut f = sa.finding(
                        "unanswered",
                        format!(
                            "{}: DPD R-U-THERE {seq} from {src} to {dst} (frame {frame}, {t:.3} s) was never \
                             acknowledged (the capture continues {} after it): {} did not answer — it is gone, \
                             or the path to it broke (RFC 3706)",
                            sa.name(),
                            dur(end - t),
                            dst.ip()
                        ),
                    );
                    f.frames = vec![frame];
                    f.time = Some(t);
                    sa.unanswered.push(f);
                } else {
                    sa.more_unanswered += 1;
                }
            }
            sa_findings(&sa, &mut out);
            self.sas[i] = sa;
        }
        if self.untracked_sas > 0 {
            out.push(Finding::new(
                "more",
                format!(
                    "{} IKE messages of IKE SAs beyond the {MAX_IKE_SAS} tracked are not explained",
                    self.untracked_sas
                ),
            ));
        }
        self.simultaneous(&mut out);
        let covered = self.child_deletes(flows, &mut out);
        spi_changes(flows, &covered, self.keys, &self.sas, &mut out);
        one_way(flows, &mut out);
        keys_findings(flows, &mut out);
        cap_per_kind(out)
    }

    /// Two IKE SAs between the same peers initiated by opposite sides
    /// within [`SIMULTANEOUS_WINDOW`]: which one survived.
    fn simultaneous(&self, out: &mut Vec<Finding>) {
        let made: Vec<&IkeSa> = self
            .sas
            .iter()
            .filter(|s| s.created.is_some() && s.initiator.is_some())
            .collect();
        for (n, a) in made.iter().enumerate() {
            for b in &made[n + 1..] {
                let (Some(ai), Some(ar), Some(bi), Some(br)) = (a.initiator, a.responder, b.initiator, b.responder)
                else {
                    continue;
                };
                let (ta, tb) = (a.created.unwrap_or_default().0, b.created.unwrap_or_default().0);
                if a.version != b.version
                    || ai.ip() != br.ip()
                    || ar.ip() != bi.ip()
                    || (tb - ta).abs() > SIMULTANEOUS_WINDOW
                {
                    continue;
                }
                // The survivor: the one not deleted; else the one used last.
                let (win, lose, why) = match (a.deleted, b.deleted) {
                    (Some(d), None) => (
                        b,
                        a,
                        format!("{} was deleted by {} at {:.3} s (frame {})", a.label(), d.2, d.0, d.1),
                    ),
                    (None, Some(d)) => (
                        a,
                        b,
                        format!("{} was deleted by {} at {:.3} s (frame {})", b.label(), d.2, d.0, d.1),
                    ),
                    (Some(_), Some(_)) => {
                        let mut f = Finding::new(
                            "simultaneous_initiation",
                            format!(
                                "Both sides initiated at once: {} initiated {} at {ta:.3} s and {} initiated {} at \
                                 {tb:.3} s ({} apart); both were deleted later",
                                ai.ip(),
                                a.name(),
                                bi.ip(),
                                b.name(),
                                dur((tb - ta).abs())
                            ),
                        );
                        f.time = Some(ta.min(tb));
                        out.push(f);
                        continue;
                    }
                    (None, None) => {
                        let (w, l) = if a.last.0 >= b.last.0 { (a, b) } else { (b, a) };
                        let why =
                            format!(
                            "it was used last: its last message at {:.3} s (frame {}), {}'s at {:.3} s (frame {}); no \
                             DELETE of either was read{}",
                            w.last.0,
                            w.last.1,
                            l.label(),
                            l.last.0,
                            l.last.1,
                            if self.keys { "" } else { " (encrypted: with --keys, ikeda pcap reads them)" }
                        );
                        (w, l, why)
                    }
                };
                let verb = if a.deleted.is_some() || b.deleted.is_some() {
                    "survived"
                } else {
                    "most likely survived"
                };
                let mut f = Finding::new(
                    "simultaneous_initiation",
                    format!(
                        "Both sides initiated at once: {} initiated {} at {ta:.3} s and {} initiated {} at {tb:.3} s \
                         ({} apart). {} {verb} ({why}); {} was the duplicate (RFC 7296 §2.8.1)",
                        ai.ip(),
                        a.name(),
                        bi.ip(),
                        b.name(),
                        dur((tb - ta).abs()),
                        win.label(),
                        lose.label()
                    ),
                );
                f.ike_sa = Some(win.label());
                f.time = Some(ta.min(tb));
                f.frames = vec![a.created.unwrap_or_default().1, b.created.unwrap_or_default().1];
                out.push(f);
            }
        }
    }

    /// Every DELETE of CHILD SAs: a rekey (the traffic moved to another
    /// SA) or the end of the tunnel, and the packets on the deleted SPIs
    /// after it. Returns the SPIs explained.
    fn child_deletes(&self, flows: &[&EspFlow], out: &mut Vec<Finding>) -> Vec<u32> {
        let mut covered = Vec::new();
        for ev in &self.deletes {
            let sa = &self.sas[ev.sa];
            let old: Vec<u32> = ev.spis.clone();
            covered.extend(old.iter().copied());
            let rekey = self.rekeys.iter().find(|r| old.contains(&r.old));
            // Per old flow, its successor: the new SA of the rekey in the
            // same direction, else the flow between the same ends that
            // began last before the DELETE was done, or first after it.
            let old_flows: Vec<&&EspFlow> = flows.iter().filter(|f| old.contains(&flow_spi(f))).collect();
            let mut successors: Vec<(&EspFlow, &EspFlow)> = Vec::new();
            for of in &old_flows {
                let cands = flows.iter().filter(|f| {
                    same_path(f, of)
                        && !old.contains(&flow_spi(f))
                        && f.first_time >= of.first_time
                        && f.last_time >= ev.time
                        && rekey.is_none_or(|r| r.new.is_empty() || r.new.contains(&flow_spi(f)))
                });
                if let Some(s) = cands.min_by(|a, b| a.first_time.total_cmp(&b.first_time)) {
                    successors.push((of, s));
                }
            }
            let watched: Vec<(u32, &Watch)> = old.iter().filter_map(|s| self.watch.get(s).map(|w| (*s, w))).collect();
            let lost: u64 = watched.iter().map(|(_, w)| w.after).sum();
            let during: u64 = watched.iter().map(|(_, w)| w.during).sum();
            let old_txt = old.iter().map(|s| hex_spi(*s)).collect::<Vec<_>>().join("/");
            let deleted = format!(
                "deleted by {} at {:.3} s ({}{})",
                ev.by,
                ev.time,
                ev.exchange,
                match ev.done {
                    Some(d) if d > ev.time => format!(", answered at {d:.3} s"),
                    Some(_) => String::new(),
                    None => ", never answered".into(),
                }
            );
            let loss = if lost > 0 {
                let first = watched
                    .iter()
                    .filter_map(|(_, w)| w.first_after)
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                let per: Vec<String> = watched
                    .iter()
                    .filter(|(_, w)| w.after > 0)
                    .map(|(s, w)| format!("{} {}", hex_spi(*s), w.after))
                    .collect();
                format!(
                    "{lost} packets on the old SPIs after the DELETE was answered ({}{}): lost — neither side has \
                     those SAs any more",
                    per.join(", "),
                    first.map_or(String::new(), |(fr, t)| format!(
                        "; the first in frame {fr} at {t:.3} s"
                    ))
                )
            } else if old_flows.is_empty() {
                "no packet on the old SPIs in the capture".to_string()
            } else {
                "no packet on the old SPIs after the DELETE: none lost".to_string()
            };
            let during = if during > 0 {
                let s = if during == 1 { "" } else { "s" };
                format!(" ({during} packet{s} on them while the DELETE was under way)")
            } else {
                String::new()
            };
            let mut f = if !successors.is_empty() || rekey.is_some() {
                let mut new: Vec<u32> = rekey.map(|r| r.new.clone()).unwrap_or_default();
                for (_, s) in &successors {
                    if !new.contains(&flow_spi(s)) {
                        new.push(flow_spi(s));
                    }
                }
                let new_txt = new.iter().map(|s| hex_spi(*s)).collect::<Vec<_>>().join("/");
                let how = rekey.map_or("; told from the ESP flows".to_string(), |r| {
                    format!(" ({})", r.exchange)
                });
                // Moved in time: every packet on the old SPIs came before
                // the DELETE was answered, and the new SA carries traffic.
                let moved = lost == 0 && !successors.is_empty();
                let firsts: Vec<String> = successors
                    .iter()
                    .map(|(_, s)| format!("{} at {:.3} s", s.spi, s.first_time))
                    .collect();
                let last_old = old_flows.iter().map(|f| f.last_time).fold(f64::NEG_INFINITY, f64::max);
                let movement = match (successors.is_empty(), old_flows.is_empty()) {
                    (true, _) => "no packet on the new SPIs in the capture".to_string(),
                    (false, true) => format!("the first packets on the new SPIs: {}", firsts.join(", ")),
                    (false, false) => format!(
                        "the last packet on the old SPIs at {last_old:.3} s, the first on the new ones: {}",
                        firsts.join(", ")
                    ),
                };
                let done = ev.done.unwrap_or(ev.time);
                let verdict = if moved && successors.iter().all(|(_, s)| s.first_time <= done) {
                    "the traffic moved to the new SA before the old one was deleted: none lost".to_string()
                } else if moved {
                    "no packet on the old SPIs after the DELETE, the new SA carries the traffic after it: none lost"
                        .to_string()
                } else {
                    loss
                };
                let mut f = sa.finding(
                    "child_rekey",
                    format!(
                        "{}: CHILD SA rekeyed: SPIs {old_txt} replaced by {new_txt}{how}; the old SAs {deleted}; \
                         {movement}; {verdict}{during}",
                        sa.name()
                    ),
                );
                f.moved_before_delete = Some(moved);
                f.spis.extend(new.iter().map(|s| hex_spi(*s)));
                if let Some(r) = rekey {
                    f.frames.push(r.frame);
                    f.time = Some(r.time);
                }
                f
            } else {
                sa.finding(
                    "child_deleted",
                    format!(
                        "{}: CHILD SA {old_txt} {deleted}, and no other SA carries its traffic after it; {loss}{during}",
                        sa.name()
                    ),
                )
            };
            f.spis.splice(0..0, old.iter().map(|s| hex_spi(*s)));
            f.frames.push(ev.frame);
            f.time.get_or_insert(ev.time);
            f.lost = Some(lost);
            out.push(f);
        }
        covered
    }
}

/// An exchange leaves the open table: into the SA's statistics, and its
/// retransmissions and silence into findings.
fn close_exchange(sa: &mut IkeSa, e: Exchange, end: f64) {
    let one_way = e.name == "INFORMATIONAL_V1";
    let v1 = sa.version == 1;
    // IKEv1 exchanges take the time to their last message when whole.
    let expected = match e.name.as_str() {
        "ID_PROT" => 6,
        "AGGRESSIVE" | "QUICK_MODE" => 3,
        _ => 2,
    };
    let took = if one_way {
        None
    } else if v1 {
        (e.messages() >= expected).then_some(e.last_new - e.first_time)
    } else {
        e.answered.map(|a| a - e.first_time)
    };
    if !(one_way && e.dpd) {
        let st = sa.stats.entry(e.name.clone()).or_default();
        st.add(took);
        st.messages = st.messages.max(e.messages());
    }

    for m in e.msgs.iter().filter(|m| m.copies > 1) {
        if sa.stories.len() >= MAX_PER_SA {
            sa.more_stories += 1;
            continue;
        }
        let intervals: Vec<f64> = m.times.windows(2).map(|w| w[1] - w[0]).collect();
        let role = if v1 {
            format!(
                "{} message {}",
                e.name,
                e.msgs.iter().position(|x| x.hash == m.hash).unwrap_or(0) + 1
            )
        } else {
            format!(
                "{} {} {}",
                e.name,
                if m.from_requester { "request" } else { "response" },
                e.mid
            )
        };
        let apart = intervals.iter().map(|i| dur(*i)).collect::<Vec<_>>().join(", ");
        let outcome = if !m.from_requester {
            ": the responder answered a retransmitted request again (its first answer was lost or late)".to_string()
        } else if one_way {
            String::new()
        } else {
            let first = m.times[0];
            // The first message of the other side after this one's first copy.
            let answer = e
                .msgs
                .iter()
                .filter(|x| x.from_requester != m.from_requester)
                .filter_map(|x| x.times.first().copied())
                .filter(|t| *t > first)
                .fold(f64::INFINITY, f64::min);
            if answer.is_finite() {
                let last_copy = m.times.iter().copied().filter(|t| *t <= answer).fold(first, f64::max);
                format!(
                    "; answered {} after the first copy ({} after the last one before the answer)",
                    dur(answer - first),
                    dur(answer - last_copy)
                )
            } else {
                "; never answered".to_string()
            }
        };
        let mut f = sa.finding(
            "retransmission",
            format!(
                "{}: {role} from {} sent {} times (frames {}), {} apart{outcome}",
                sa.name(),
                m.src,
                m.copies,
                frames_text(&m.frames, m.copies.saturating_sub(m.frames.len() as u64)),
                if apart.is_empty() { "-".into() } else { apart }
            ),
        );
        f.frames = m.frames.clone();
        f.count = Some(m.copies);
        f.intervals = intervals;
        f.time = m.times.first().copied();
        sa.stories.push(f);
    }

    // Silence: an IKEv2 request never answered; an IKEv1 exchange that
    // stopped before its last message.
    let silent = if one_way {
        None
    } else if v1 {
        (e.messages() < expected).then(|| v1_stopped(&e, expected))
    } else {
        e.answered.is_none().then(|| v2_unanswered(&e))
    };
    // A failure notification after it is why it stopped.
    let refused = sa
        .failures
        .iter()
        .find(|f| f.time.is_some_and(|t| t >= e.first_time))
        .map(|f| {
            format!(
                "it was refused: N({}) in frame {}",
                f.notify.as_deref().unwrap_or("?"),
                f.frames[0]
            )
        });
    let silent = silent.map(|why| refused.unwrap_or(why));
    if let (Some(why), Some(last)) = (silent, e.msgs.last()) {
        if sa.unanswered.len() >= MAX_PER_SA {
            sa.more_unanswered += 1;
            return;
        }
        let first = e.msgs.first().map_or(e.first_time, |m| m.times[0]);
        let last_t = last.times.last().copied().unwrap_or(first);
        let what = if v1 {
            format!(
                "{} stopped after message {} of {expected} ({} from {} to {}, sent {} times{})",
                v1_exchange_name(&e.name),
                e.messages(),
                if e.messages() == 1 { "sent" } else { "the last" },
                last.src,
                last.dst,
                last.copies,
                if last.copies > 1 {
                    format!(" over {}", dur(last_t - last.times[0]))
                } else {
                    String::new()
                }
            )
        } else {
            format!(
                "{} request {} from {} to {} was never answered (sent {} times{})",
                e.name,
                e.mid,
                last.src,
                last.dst,
                last.copies,
                if last.copies > 1 {
                    format!(" over {}", dur(last_t - first))
                } else {
                    String::new()
                }
            )
        };
        let mut f = sa.finding(
            "unanswered",
            format!(
                "{}: {what}; the capture continues {} after the last copy: {why}",
                sa.name(),
                dur((end - last_t).max(0.0))
            ),
        );
        f.frames = last.frames.clone();
        f.count = Some(last.copies);
        f.time = Some(first);
        sa.unanswered.push(f);
    }
}

fn v1_exchange_name(n: &str) -> &str {
    match n {
        "ID_PROT" => "Main Mode",
        "AGGRESSIVE" => "Aggressive Mode",
        "QUICK_MODE" => "Quick Mode",
        other => other,
    }
}

/// Why an IKEv2 request goes unanswered, by exchange.
fn v2_unanswered(e: &Exchange) -> String {
    let to = e
        .msgs
        .first()
        .map_or("the peer".to_string(), |m| m.dst.ip().to_string());
    match e.name.as_str() {
        "IKE_SA_INIT" => format!(
            "{to} does not answer IKE on UDP {}: it is down, not listening, or a firewall on the way drops \
             the request (or the answer, before this capture point)",
            e.msgs.first().map_or(500, |m| m.dst.port())
        ),
        "IKE_AUTH" => format!(
            "{to} answered IKE_SA_INIT but not IKE_AUTH: most often IKE_AUTH is larger (certificates) and its IP \
             fragments are dropped on the way (IKE fragmentation, RFC 7383, avoids them), or UDP 4500 is blocked \
             after the NAT-T float"
        ),
        _ => format!("{to} stopped answering: it is gone (restarted, or down) or the path to it broke"),
    }
}

/// Why an IKEv1 exchange stops after `n` of its messages.
fn v1_stopped(e: &Exchange, expected: u64) -> String {
    let n = e.messages();
    let (from, to) = e
        .msgs
        .last()
        .map_or(("the sender".to_string(), "the peer".to_string()), |m| {
            (m.src.ip().to_string(), m.dst.ip().to_string())
        });
    match (e.name.as_str(), n) {
        (_, 1) => format!(
            "{to} never answered: it is down, not listening on UDP 500, a firewall drops it, or it refused \
             without a word (look for an INFORMATIONAL_V1 from it)"
        ),
        ("ID_PROT", 5) => format!(
            "{to} did not answer the encrypted identity and HASH (message 5): it could not decrypt or verify \
             it; most often the pre-shared keys of the two sides differ"
        ),
        ("ID_PROT", 3) => format!("{to} did not answer the key exchange (message 3)"),
        ("ID_PROT", 2) | ("ID_PROT", 4) => {
            format!("{to} did not continue after message {n} from {from}: it refused what that message carried")
        }
        ("AGGRESSIVE", 2) => format!(
            "{to} did not send the third message: it could not verify the responder's HASH (a pre-shared key \
             that differs) or refused its proposal"
        ),
        ("QUICK_MODE", 2) => format!("{to} did not send the third Quick Mode message (HASH(3)) to confirm"),
        _ => format!("{n} of the {expected} messages of the exchange are in the capture"),
    }
}

/// The NAT detection hashes of a message against the addresses seen here.
fn nat_check(sa: &mut IkeSa, m: &IkeMessage, f: &Facts, src: SocketAddr, dst: SocketAddr, what: &str) {
    let hash = |at: SocketAddr, len: usize| -> Option<Vec<u8>> {
        match f.version {
            2 => {
                let ip = match at.ip() {
                    IpAddr::V4(a) => a.octets().to_vec(),
                    IpAddr::V6(a) => a.octets().to_vec(),
                };
                Some(
                    ikeda_crypto::sha1(&[
                        &f.spi_i.to_be_bytes(),
                        &f.spi_r.to_be_bytes(),
                        &ip,
                        &at.port().to_be_bytes(),
                    ])
                    .to_vec(),
                )
            }
            // IKEv1 hashes with the negotiated hash: its length tells which.
            _ => ikeda_crypto::ikev1::Hash::ALL
                .into_iter()
                .find(|h| h.output_len() == len)
                .map(|h| ikeda_crypto::ikev1::nat_d(h, f.spi_i, f.spi_r, at)),
        }
    };
    let (rfc, s_name, d_name) = if f.version == 2 {
        ("RFC 7296 §2.23", "NATD_S_IP", "NATD_D_IP")
    } else {
        ("RFC 3947 §3.2", "its own NAT-D", "the first NAT-D")
    };
    if !f.natd_src.is_empty() && !sa.nat_src_told {
        let matches = f
            .natd_src
            .iter()
            .any(|h| hash(src, h.len()).as_deref() == Some(h.as_slice()));
        if !matches {
            let mut x = sa.finding(
                "nat",
                format!(
                    "{}: NAT detected ({rfc}): {} sends from another address or port than {src} seen here ({s_name} \
                     of {what}, frame {}, does not hash to it): a NAT between {} and this capture point translates it",
                    sa.name(),
                    src.ip(),
                    m.frame,
                    src.ip()
                ),
            );
            x.frames = vec![m.frame];
            x.time = Some(m.rel_time);
            sa.nat.push(x);
            sa.nat_src_told = true;
        }
    }
    if let Some(d) = &f.natd_dst {
        if !sa.nat_dst_told && hash(dst, d.len()).as_deref() != Some(d.as_slice()) {
            let mut x = sa.finding(
                "nat",
                format!(
                    "{}: NAT detected ({rfc}): {} knows {dst} under another address or port ({d_name} of {what}, \
                     frame {}, does not hash to it): a NAT between this capture point and {} translates {dst}",
                    sa.name(),
                    src.ip(),
                    m.frame,
                    src.ip()
                ),
            );
            x.frames = vec![m.frame];
            x.time = Some(m.rel_time);
            sa.nat.push(x);
            sa.nat_dst_told = true;
        }
    }
}

/// A failure notification (or COOKIE) in plain words.
fn notify_finding(sa: &IkeSa, m: &IkeMessage, n: &Notify, what: &str) -> Finding {
    let who = m.src;
    let (meaning, cause) = if sa.version == 2 {
        v2_notify_meaning(n, &m.exchange, who)
    } else {
        v1_notify_meaning(n, &m.exchange, who, sa.phase1.is_some() && sa.established.is_none())
    };
    let kind = if n.error { "failure" } else { "cookie" };
    let mut f = sa.finding(
        kind,
        format!(
            "{}: {who} sent N({}) in {what} (frame {}, {:.3} s): {meaning}.{}",
            sa.name(),
            n.name,
            m.frame,
            m.rel_time,
            if cause.is_empty() {
                String::new()
            } else {
                format!(" Likely cause: {cause}.")
            }
        ),
    );
    f.notify = Some(n.name.clone());
    f.frames = vec![m.frame];
    f.time = Some(m.rel_time);
    f
}

/// IKEv2 error notifications (RFC 7296 §3.10.1): meaning and likely cause.
fn v2_notify_meaning(n: &Notify, exchange: &str, who: IpAddr) -> (String, String) {
    let s = |a: &str, b: &str| {
        (
            a.replace("{who}", &who.to_string()),
            b.replace("{who}", &who.to_string()),
        )
    };
    match n.code {
        14 if exchange == "IKE_SA_INIT" => s(
            "none of the IKE proposals is acceptable to {who}",
            "the IKE proposals of the two sides (encryption, integrity, PRF, DH group) share no set",
        ),
        14 => s(
            "none of the ESP proposals is acceptable to {who}",
            "the ESP proposals of the two sides (cipher, integrity, ESN, the PFS DH group of a rekey) share no set",
        ),
        17 => {
            let group = n.data.get(..2).map(|g| u16::from_be_bytes([g[0], g[1]]));
            let g = group.map_or("another".to_string(), |g| format!("group {g}"));
            (
                format!("{who} wants the key exchange in another Diffie-Hellman group, {g} (RFC 7296 §1.2)"),
                format!(
                    "the initiator's first proposal guessed a group {who} does not take first; a correct initiator \
                     retries with {g} (one round trip lost); if no retry follows, it has no such group"
                ),
            )
        }
        24 => s(
            "{who} refused the authentication",
            "a pre-shared key that differs, a certificate {who} does not trust, or an identity (IDi/IDr) it does not expect",
        ),
        38 => s(
            "the traffic selectors asked for (subnets, protocols, ports) are not within {who}'s policy",
            "the local and remote subnets of the two configurations do not mirror each other",
        ),
        7 => s(
            "{who} found the message malformed or unexpected",
            "an interoperability problem, or keys that do not match",
        ),
        4 => s(
            "{who} has no IKE SA with these SPIs",
            "it restarted or deleted the SA; the other side has to start over",
        ),
        11 => s(
            "{who} got ESP or a request on an SPI it does not have",
            "it restarted, or deleted the SA while the other side still used it",
        ),
        9 => s(
            "the Message ID is outside {who}'s window",
            "the two sides lost track of the message IDs (a restart, or a lost exchange)",
        ),
        5 => s(
            "{who} does not speak this IKE version",
            "it runs IKEv1 only: configure IKEv1 on this side, or IKEv2 on it",
        ),
        1 => s("a payload marked critical is unknown to {who}", "an extension {who} does not implement"),
        34 => s(
            "{who} accepts only one subnet pair per CHILD SA",
            "narrow the traffic selectors to one pair per CHILD SA",
        ),
        35 => s("{who} accepts no more CHILD SAs on this IKE SA", "its limit of SAs is reached"),
        36 => s("{who} could not assign a virtual IP address", "its address pool is exhausted or missing"),
        37 => s(
            "{who} requires a configuration payload (a virtual IP request) that was not sent",
            "the client is not configured to ask for a virtual IP",
        ),
        39 => s("an ESP packet did not match its SA's traffic selectors at {who}", ""),
        43 => s(
            "{who} cannot do it now (RFC 7296 §2.25)",
            "it is rekeying or deleting the same SA at the same time; the request is retried later",
        ),
        44 => s(
            "{who} has no CHILD SA with this SPI",
            "it deleted the SA already (a DELETE or another rekey crossed this request)",
        ),
        16390 => s(
            "{who} asked for a COOKIE (RFC 7296 §2.6): it is under load, or always asks; the initiator must \
             repeat IKE_SA_INIT with it",
            "",
        ),
        _ => (format!("{who} refused with error {}", n.name), String::new()),
    }
}

/// IKEv1 error notifications (RFC 2408 §3.14.1): meaning and likely cause.
fn v1_notify_meaning(n: &Notify, exchange: &str, who: IpAddr, in_phase1: bool) -> (String, String) {
    use ikev1::notify as nt;
    let w = who.to_string();
    let r = |a: &str, b: &str| (a.replace("{who}", &w), b.replace("{who}", &w));
    let phase1 = exchange == "ID_PROT" || exchange == "AGGRESSIVE" || (exchange == "INFORMATIONAL_V1" && in_phase1);
    match n.code {
        nt::NO_PROPOSAL_CHOSEN if phase1 => r(
            "none of the phase-1 proposals is acceptable to {who}",
            "the phase-1 proposals (cipher, hash, DH group, authentication method, lifetime) share no set",
        ),
        nt::NO_PROPOSAL_CHOSEN => r(
            "none of the proposals is acceptable to {who}",
            "the Quick Mode proposals (ESP cipher and integrity, the PFS group, lifetime) share no set",
        ),
        nt::INVALID_PAYLOAD_TYPE => r(
            "{who} got a payload type it does not know",
            "most often a message it decrypted with another key: the pre-shared keys differ (Main Mode message 5 \
             then decrypts to garbage)",
        ),
        nt::PAYLOAD_MALFORMED => r(
            "{who} could not parse a message",
            "most often a message decrypted with another key: the pre-shared keys differ",
        ),
        nt::INVALID_HASH_INFORMATION | nt::AUTHENTICATION_FAILED => r(
            "{who} could not verify the HASH or the authentication",
            "a pre-shared key that differs (or a certificate it does not accept)",
        ),
        nt::INVALID_ID_INFORMATION => r(
            "{who} does not accept the identities",
            "in Quick Mode, the subnets (IDci/IDcr) do not match its policy; in Main Mode, an ID it does not expect",
        ),
        nt::INVALID_COOKIE => r(
            "{who} does not know these cookies",
            "it restarted or deleted the phase-1 SA; the other side has to start over",
        ),
        nt::INVALID_SPI => r(
            "{who} got ESP or a delete on an SPI it does not have",
            "it restarted or deleted the SA while the other side still used it",
        ),
        nt::ATTRIBUTES_NOT_SUPPORTED => r(
            "an SA attribute is not supported by {who}",
            "a lifetime in kilobytes, or a group or mode it does not implement",
        ),
        nt::INVALID_KEY_INFORMATION => r("{who} refused the key exchange payload", "the DH groups differ"),
        nt::INVALID_CERTIFICATE | nt::INVALID_SIGNATURE | nt::CERT_TYPE_UNSUPPORTED | nt::INVALID_CERT_AUTHORITY => r(
            "{who} refused the certificate or signature",
            "a certificate it does not trust or cannot use",
        ),
        nt::INVALID_EXCHANGE_TYPE | nt::UNSUPPORTED_EXCHANGE_TYPE => r(
            "{who} does not do this exchange type",
            "Aggressive Mode, or Mode Config, on one side only",
        ),
        nt::INVALID_MESSAGE_ID => r(
            "{who} does not know this Message ID",
            "an exchange it already finished or dropped",
        ),
        _ => (format!("{who} refused with error {}", n.name), String::new()),
    }
}

/// The findings of one IKE SA.
fn sa_findings(sa: &IkeSa, out: &mut Vec<Finding>) {
    let v = if sa.version == 1 {
        format!("IKEv1 {}", sa.phase1.as_deref().map_or("", v1_exchange_name))
    } else {
        "IKEv2".to_string()
    };
    let v = v.trim_end();
    let mut text = match (sa.created, sa.initiator, sa.responder) {
        (Some((t, fr)), Some(i), Some(r)) => {
            let first = if sa.version == 2 {
                "IKE_SA_INIT request"
            } else {
                "message 1"
            };
            format!(
                "{} ({v}): initiated by {i} towards {r} at {t:.3} s ({first}, frame {fr})",
                sa.name()
            )
        }
        _ => match (&sa.rekey_of, sa.initiator) {
            (Some((old, t, fr)), Some(i)) => format!(
                "{} ({v}): created at {t:.3} s by rekeying IKE SA {old} (CREATE_CHILD_SA, frame {fr}); \
                 {} requested it",
                sa.name(),
                i.ip()
            ),
            (_, Some(i)) if sa.version == 2 => format!(
                "{} ({v}): its IKE_SA_INIT is not in the capture; {} is its original initiator (the Initiator \
                 flag of its messages); first seen at {:.3} s (frame {})",
                sa.name(),
                i.ip(),
                sa.first.0,
                sa.first.1
            ),
            _ => format!(
                "{} ({v}): its phase 1 is not in the capture, so the headers do not tell who initiated it (the \
                 initiator's cookie is the first, {:016x}); first seen at {:.3} s (frame {})",
                sa.name(),
                sa.spi_i,
                sa.first.0,
                sa.first.1
            ),
        },
    };
    if let Some((t, fr)) = sa.established {
        let what = if sa.version == 2 {
            "IKE_AUTH answered"
        } else {
            "phase 1 complete"
        };
        text.push_str(&format!("; established at {t:.3} s ({what}, frame {fr})"));
        if sa.established_unread {
            text.push_str(", encrypted: its success is not read without the keys");
        }
    } else if sa.created.is_some() {
        text.push_str("; not established in the capture");
    }
    if let Some((t, fr, by)) = sa.deleted {
        text.push_str(&format!("; deleted by {by} at {t:.3} s (frame {fr})"));
    }
    let mut f = sa.finding("initiator", text);
    f.time = Some(sa.created.map_or(sa.first.0, |c| c.0));
    f.frames = vec![sa.created.map_or(sa.first.1, |c| c.1)];
    out.push(f);

    out.extend(sa.stories.iter().cloned());
    if sa.more_stories > 0 {
        out.push(sa.finding(
            "retransmission",
            format!("{}: {} more messages sent more than once", sa.name(), sa.more_stories),
        ));
    }

    // How long each kind of exchange took, request to response.
    let parts: Vec<String> = sa
        .stats
        .iter()
        .map(|(name, s)| {
            let mut p = format!("{name} {}", s.count);
            if sa.version == 1 && s.messages > 2 && name != "DPD" {
                // The longest of them: Quick Mode has 3, Main Mode 6.
                if s.count == 1 {
                    p.push_str(&format!(" ({} messages)", s.messages));
                } else {
                    p.push_str(&format!(" (each up to {} messages)", s.messages));
                }
            }
            if name == "INFORMATIONAL_V1" {
                p.push_str(" (one-way)");
                return p;
            }
            if s.answered < s.count {
                p.push_str(&format!(" ({} unanswered)", s.count - s.answered));
            }
            if s.answered > 0 {
                if s.answered == 1 || (s.max - s.min) < 5e-5 {
                    p.push_str(&format!(" in {}", dur(s.min)));
                } else if s.max < 1.0 {
                    p.push_str(&format!(" in {:.1}-{}", s.min * 1000.0, dur(s.max)));
                } else {
                    p.push_str(&format!(" in {}-{}", dur(s.min), dur(s.max)));
                }
            }
            p
        })
        .collect();
    if !parts.is_empty() {
        out.push(sa.finding(
            "exchange_times",
            format!(
                "{}: exchanges (first request to response): {}",
                sa.name(),
                parts.join(", ")
            ),
        ));
    }

    // NAT-T float, and ends that changed address or port.
    if let Some((t, fr, what)) = &sa.float {
        let rfc = if sa.version == 2 {
            "RFC 7296 §2.23"
        } else {
            "RFC 3947 §4"
        };
        let moves: Vec<String> = sa
            .sides
            .iter()
            .filter_map(|s| {
                let before = s.iter().rev().find(|x| x.time < *t)?;
                let after = s.iter().find(|x| x.frame >= *fr)?;
                let mut m = format!("{} -> {}", before.at, after.at);
                if after.at.port() != 4500 && after.at.port() != 500 {
                    m.push_str(&format!(
                        " (its port is not 4500: a NAT maps {} between it and this capture point)",
                        before.at.ip()
                    ));
                }
                Some(m)
            })
            .collect();
        let mut f = sa.finding(
            "nat_float",
            format!(
                "{}: NAT-T float ({rfc}): from UDP 500 to 4500 at {what} (frame {fr}, {t:.3} s): {}",
                sa.name(),
                moves.join(", ")
            ),
        );
        f.frames = vec![*fr];
        f.time = Some(*t);
        out.push(f);
    }
    for (n, side) in sa.sides.iter().enumerate() {
        let who = if n == 0 { "initiator" } else { "responder" };
        for w in side.windows(2) {
            // The float itself is told above.
            if sa.float.as_ref().is_some_and(|f| f.1 == w[1].frame) {
                continue;
            }
            let mut f = sa.finding(
                "address_change",
                format!(
                    "{}: the {who}'s end moved from {} to {} at {:.3} s (frame {}): {}",
                    sa.name(),
                    w[0].at,
                    w[1].at,
                    w[1].time,
                    w[1].frame,
                    if w[0].at.ip() == w[1].at.ip() {
                        "a NAT mapping changed (a new port: the old mapping expired or the NAT restarted)"
                    } else {
                        "a NAT mapping changed, or the peer moved (MOBIKE, RFC 4555)"
                    }
                ),
            );
            f.frames = vec![w[1].frame];
            f.time = Some(w[1].time);
            out.push(f);
        }
    }
    out.extend(sa.nat.iter().map(|f| relabel(sa, f)));
    out.extend(sa.failures.iter().map(|f| relabel(sa, f)));
    if sa.more_failures > 0 {
        out.push(sa.finding(
            "failure",
            format!("{}: {} more failure notifications", sa.name(), sa.more_failures),
        ));
    }
    out.extend(sa.unanswered.iter().cloned());
    if sa.more_unanswered > 0 {
        out.push(sa.finding(
            "unanswered",
            format!("{}: {} more requests never answered", sa.name(), sa.more_unanswered),
        ));
    }
}

/// A finding made before the responder's SPI (cookie) was seen, named
/// after the SA as it is known at the end.
fn relabel(sa: &IkeSa, f: &Finding) -> Finding {
    let mut f = f.clone();
    if let Some(old) = f.ike_sa.as_deref().filter(|l| *l != sa.label()) {
        let kind = if sa.version == 1 { "ISAKMP SA" } else { "IKE SA" };
        f.text = f.text.replacen(&format!("{kind} {old}"), &sa.name(), 1);
        f.ike_sa = Some(sa.label());
    }
    f
}

/// The SPI of a flow, from its `0x%08x` text.
fn flow_spi(f: &EspFlow) -> u32 {
    u32::from_str_radix(f.spi.trim_start_matches("0x"), 16).unwrap_or(0)
}

fn same_path(a: &EspFlow, b: &EspFlow) -> bool {
    a.src == b.src && a.dst == b.dst && a.encap == b.encap && a.src_port == b.src_port && a.dst_port == b.dst_port
}

/// Without a readable DELETE: a flow followed by another between the same
/// ends, which took over its traffic (most likely a rekey).
fn spi_changes(flows: &[&EspFlow], covered: &[u32], keys: bool, sas: &[IkeSa], out: &mut Vec<Finding>) {
    let mut paths: BTreeMap<(IpAddr, IpAddr, u16, u16), Vec<&EspFlow>> = BTreeMap::new();
    for f in flows {
        paths.entry((f.src, f.dst, f.src_port, f.dst_port)).or_default().push(f);
    }
    for list in paths.values_mut() {
        list.sort_by(|a, b| a.first_time.total_cmp(&b.first_time));
        for w in list.windows(2) {
            let (old, new) = (w[0], w[1]);
            if covered.contains(&flow_spi(old)) || old.encap != new.encap {
                continue;
            }
            let overlap = if old.last_time > new.first_time {
                format!(
                    "; the old SPI carried packets until {:.3} s, {} after the new one's first",
                    old.last_time,
                    dur(old.last_time - new.first_time)
                )
            } else {
                format!("; the last packet on the old SPI at {:.3} s", old.last_time)
            };
            let unknown = if keys {
                format!("no DELETE of {} could be read in the capture", old.spi)
            } else {
                let encrypted = sas.iter().any(|s| s.version == 2) || sas.iter().any(|s| s.version == 1);
                if encrypted {
                    "its DELETE is encrypted: with --keys, ikeda pcap tells whether packets on the old SPI were lost"
                        .to_string()
                } else {
                    "no IKE in the capture tells whether the old SA was deleted".to_string()
                }
            };
            let mut f = Finding::new(
                "esp_spi_change",
                format!(
                    "ESP {} -> {} moved from {} to {} (a new SPI) at {:.3} s (frame {}), most likely a CHILD SA rekey{overlap}; \
                     {unknown}",
                    old.src, old.dst, old.spi, new.spi, new.first_time, new.first_frame
                ),
            );
            f.spis = vec![old.spi.clone(), new.spi.clone()];
            f.frames = vec![new.first_frame];
            f.time = Some(new.first_time);
            out.push(f);
        }
    }
}

/// ESP from A to B with nothing from B to A while it flowed.
fn one_way(flows: &[&EspFlow], out: &mut Vec<Finding>) {
    for f in flows {
        let back = flows.iter().any(|r| {
            r.src == f.dst
                && r.dst == f.src
                && r.first_time <= f.last_time + REVERSE_SLACK
                && r.last_time + REVERSE_SLACK >= f.first_time
        });
        if back {
            continue;
        }
        let mut x = Finding::new(
            "esp_one_way",
            format!(
                "ESP one way only: {} -> {} on {} ({} packets, {:.3}-{:.3} s) and no ESP from {} back to {} in that \
                 time: {} receives but sends nothing back through the tunnel (its inbound SA does not decrypt — \
                 other keys —, its policy drops the traffic, or the answers go another way)",
                f.src, f.dst, f.spi, f.packets, f.first_time, f.last_time, f.dst, f.src, f.dst
            ),
        );
        x.spis = vec![f.spi.clone()];
        x.frames = vec![f.first_frame];
        x.time = Some(f.first_time);
        x.count = Some(f.packets);
        out.push(x);
    }
}

/// With `--keys`: SPIs no key covers, and keys that do not verify.
fn keys_findings(flows: &[&EspFlow], out: &mut Vec<Finding>) {
    let nokey: Vec<&&EspFlow> = flows
        .iter()
        .filter(|f| f.decryption.as_ref().is_some_and(|d| !d.key))
        .collect();
    if !nokey.is_empty() {
        let packets: u64 = nokey.iter().map(|f| f.packets).sum();
        let spis: Vec<String> = nokey.iter().map(|f| f.spi.clone()).collect();
        let mut x = Finding::new(
            "no_key",
            format!(
                "No key for {} ({packets} packets in {} flow{}): the --keys sources have none for them (the SAs \
                 were negotiated before key export was on, by another gateway, or the key log is of another \
                 tunnel); they are not decrypted",
                spis.join(", "),
                nokey.len(),
                if nokey.len() == 1 { "" } else { "s" }
            ),
        );
        x.count = Some(packets);
        x.spis = spis;
        out.push(x);
    }
    for f in flows {
        let Some(d) = &f.decryption else { continue };
        if d.key && d.decrypted == 0 && d.icv_failures > 0 {
            let mut x = Finding::new(
                "wrong_key",
                format!(
                    "The key for {} ({} -> {}) does not verify: {} ICV mismatches, nothing decrypted — the key \
                     log's SA with this SPI is another one (an older SA that had the same SPI, or another peer's)",
                    f.spi, f.src, f.dst, d.icv_failures
                ),
            );
            x.spis = vec![f.spi.clone()];
            x.count = Some(d.icv_failures);
            out.push(x);
        }
    }
}

/// At most [`MAX_PER_KIND`] findings of each kind; then how many more.
fn cap_per_kind(all: Vec<Finding>) -> Vec<Finding> {
    let mut seen: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for f in all {
        let n = seen.entry(f.kind).or_default();
        *n += 1;
        if *n as usize <= MAX_PER_KIND {
            out.push(f);
        }
    }
    for (kind, n) in seen {
        if n as usize > MAX_PER_KIND {
            out.push(Finding::new(
                "more",
                format!("... and {} more findings of kind {kind}", n as usize - MAX_PER_KIND),
            ));
        }
    }
    out
}

/// The findings as printed at the end of the text output.
pub fn text(findings: &[Finding]) -> String {
    let mut s = String::from("\nWhat the capture shows:\n");
    for f in findings {
        s.push_str("  ");
        s.push_str(&f.text);
        s.push('\n');
    }
    s
}
