//! The IKEv2 engine (RFC 7296): IKE_SA_INIT, IKE_AUTH with pre-shared keys,
//! INFORMATIONAL (DELETE, liveness), for initiator and responder alike.
//!
//! ```text
//! Initiator                         Responder
//! -------------------------------------------------------------------
//! HDR, SAi1, KEi, Ni, N(NATD_S_IP), N(NATD_D_IP)  -->
//!                              <--  HDR, SAr1, KEr, Nr, N(NATD_S_IP), N(NATD_D_IP)
//! HDR, SK {IDi, AUTH, N(INITIAL_CONTACT), SAi2, TSi, TSr}  -->
//!                              <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
//! ```
//!
//! The engine is sans-IO (see the crate docs): datagrams and time in,
//! datagrams, timers and [`Event`]s out. It never installs an SA: it tells
//! the caller to ([`Event::ChildSaUp`]).
//!
//! Each exchange is in its own file, in a further `impl Engine` block:
//! `ike_sa_init`, `ike_auth`, `rekey` (CREATE_CHILD_SA as it arrives, CHILD
//! rekey), `children` (new CHILD SAs), `ike_rekey`, `informational`. This
//! file keeps the engine's state, the dispatch and the shared helpers.

use crate::conn::ConnTable;
use crate::retransmit::RetransmitPolicy;
use crate::task::{Incoming, TaskManager, Version};
use crate::{ConnId, Exchange, Millis, SaId, SaTable, Transmit};
use ikeda_crypto::ike::{
    ike_auth_proposals, psk_auth, verify_psk_auth, ChildKeys, ChildProposal, ChildSuite, IkeKeys, IkeProposal,
    IkeSuite, KeyExchange, Rng, Role, SkCipher, Transform as CTransform, TransformType as CTransformType,
};
use ikeda_crypto::SecretBytes;
use ikeda_wire::ikev2::{
    emit_payload_chain, emit_sk_message, first_payload_type, summary, AuthMethod, AuthPayload, DeletePayload,
    ExchangeType, Flags, HeaderRepr, IdPayload, IdType, KePayload, Message, NoncePayload, NotifyPayload, NotifyType,
    Payload, PayloadType, Proposal, ProtocolId, SaPayload, TrafficSelector, Transform, TransformAttribute,
    TransformType, TsPayload, TsRange, VendorIdPayload,
};
use ikeda_wire::udp_gso::TRAINS_VENDOR_ID;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The first payload of a kind, mapped:
/// `first!(inner, Payload::Nonce(n) => n.nonce.clone())`.
macro_rules! first {
    ($payloads:expr, $pat:pat $(if $guard:expr)? => $e:expr) => {
        $payloads.iter().find_map(|p| match p {
            $pat $(if $guard)? => Some($e),
            _ => None,
        })
    };
}

mod children;
mod ike_auth;
mod ike_rekey;
mod ike_sa_init;
mod informational;
mod keepalive;
mod rekey;
mod tasks;
mod view;

use ike_sa_init::CookieSecrets;
use tasks::Work;
// The shared vocabulary lives at the crate root; these names keep working.
pub use crate::conn::{ConnSpec, Timers, IKE_PORT, KEEPALIVE, NAT_KEEPALIVE, NAT_T_PORT};
pub use crate::event::{suite_name, ChildSaInfo, Event, Failure, IkeKeyInfo, V1KeyInfo};
pub use crate::view::{ChildSaView, IkeSaView, IkeState};

/// How long a responder keeps an IKE SA that got no IKE_AUTH: the task
/// manager's one rule for both versions.
pub use crate::task::HALF_OPEN_TIMEOUT;
pub use informational::ONE_WAY_SUSPECT;
#[cfg(test)]
pub(crate) use children::pick_child as pick_child_for_tests;

/// Counters of what the engine refused, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    pub malformed: u64,
    pub unknown_spi: u64,
    pub integrity_failed: u64,
    pub retransmits_answered: u64,
    /// Retransmissions not answered: the message ID of the request
    /// answered last, but not that request bit for bit (RFC 7296 §2.1), or
    /// not from the address and port it came from.
    pub retransmits_refused: u64,
    pub dropped_out_of_window: u64,
    /// IKE_SA_INIT requests answered with a COOKIE challenge (§2.6).
    pub cookies_sent: u64,
    /// Both sides initiated a connection at once: the second IKE SA of the
    /// pair was settled (one deleted, by us or the peer).
    pub duplicates_settled: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Initiator: IKE_SA_INIT request sent.
    InitSent,
    /// Initiator: IKE_AUTH request sent.
    AuthSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    InitAnswered,
    Established,
    /// A rekey replaced it (RFC 7296 §1.3.2): its CHILD SAs and queued work
    /// moved to the new IKE SA; it expects nothing but its DELETE, ours or
    /// the peer's (and answers what the peer sent before it knew).
    Replaced,
    /// Initiator of a DELETE for the IKE SA, waiting for the response.
    Deleting,
}

struct Child {
    /// Which of the connection's CHILD SAs this is ([`ConnSpec::child_ts`]);
    /// a rekey's replacement keeps it.
    pair: usize,
    spi_in: u32,
    spi_out: u32,
    local_ts: Vec<TsRange>,
    remote_ts: Vec<TsRange>,
    rekey_at: Option<Millis>,
    expire_at: Option<Millis>,
    /// This SA was rekeyed; it lives until its DELETE.
    rekeyed: bool,
    /// Created as the responder of a rekey of `rekey_of`, with these
    /// nonces (for collisions, §2.8.1), and not yet sending.
    rekey_of: Option<u32>,
    nonces: Option<(Vec<u8>, Vec<u8>)>,
    we_initiated: bool,
    active: bool,
    /// For `show`: the algorithms, when it was installed, and whether ESP
    /// goes in UDP.
    suite: ChildSuite,
    installed_at: Millis,
    udp_encap: bool,
}

/// A CHILD SA an exchange just negotiated.
struct NewChild {
    suite: ChildSuite,
    spi_in: u32,
    spi_out: u32,
    local_ts: Vec<TsRange>,
    remote_ts: Vec<TsRange>,
    /// Nonces and PFS secret of the exchange, and our role in it.
    ni: Vec<u8>,
    nr: Vec<u8>,
    pfs: Option<SecretBytes>,
    role: Role,
    replaces: Option<u32>,
    activate: bool,
    rekey_of: Option<u32>,
    /// Which of the connection's CHILD SAs ([`ConnSpec::child_ts`]).
    pair: usize,
}

/// The state of our exchange in flight, the task manager's active task
/// (what waits its turn is a [`Work`]).
enum Pending {
    Init,
    Auth {
        spi_in: u32,
    },
    Liveness,
    DeleteIke,
    DeleteChild {
        spi_in: u32,
    },
    RekeyChild {
        old_spi_in: u32,
        new_spi_in: u32,
        ni: Vec<u8>,
        ke: Option<KeyExchange>,
        /// Sent again with the group the peer asked for (INVALID_KE_PAYLOAD).
        retry: bool,
    },
    RekeyIke {
        new_spi_i: u64,
        ni: Vec<u8>,
        ke: KeyExchange,
    },
    /// CREATE_CHILD_SA { SA, Ni, [KEi,] TSi, TSr } for the connection's
    /// CHILD SA `pair` (§1.3.1).
    CreateChild {
        pair: usize,
        new_spi_in: u32,
        ni: Vec<u8>,
        ke: Option<KeyExchange>,
        /// Sent again with the group the peer asked for (INVALID_KE_PAYLOAD).
        retry: bool,
    },
}

impl Pending {
    /// What an exchange of ours in flight is doing, for logs.
    fn exchange_what(&self) -> &'static str {
        match self {
            Pending::Init | Pending::Auth { .. } => "it is being set up",
            Pending::Liveness => "we check the peer is alive",
            Pending::DeleteIke => "we are deleting it",
            Pending::DeleteChild { .. } => "we delete one of its CHILD SAs",
            Pending::RekeyChild { .. } => "we rekey one of its CHILD SAs",
            Pending::RekeyIke { .. } => "we rekey it",
            Pending::CreateChild { .. } => "we create one of its CHILD SAs",
        }
    }

    fn exchange(&self) -> Exchange {
        match self {
            Pending::Init => Exchange::IkeSaInit,
            Pending::Auth { .. } => Exchange::IkeAuth,
            Pending::Liveness | Pending::DeleteIke | Pending::DeleteChild { .. } => Exchange::Informational,
            Pending::RekeyChild { .. } | Pending::RekeyIke { .. } | Pending::CreateChild { .. } => {
                Exchange::CreateChildSa
            }
        }
    }
}

impl crate::keepalive::OnFlow for IkeSa {
    fn flow(&self) -> (SocketAddr, SocketAddr) {
        (self.local, self.remote)
    }
    fn last_sent_mut(&mut self) -> &mut Millis {
        &mut self.last_sent
    }
}

struct IkeSa {
    conn: ConnId,
    initiator: bool,
    spi_i: u64,
    spi_r: u64,
    state: State,
    local: SocketAddr,
    remote: SocketAddr,
    nat: bool,
    ni: Vec<u8>,
    nr: Vec<u8>,
    ke: Option<KeyExchange>,
    cookie: Option<Vec<u8>>,
    /// The IKE_SA_INIT messages as sent, for AUTH (§2.15).
    init_req: Vec<u8>,
    init_resp: Vec<u8>,
    suite: Option<IkeSuite>,
    keys: Option<IkeKeys>,
    sk_out: Option<SkCipher>,
    sk_in: Option<SkCipher>,
    /// Our exchanges queued and in flight, message IDs, retransmission,
    /// the answers we keep, the half-open deadline.
    tm: TaskManager<Work, Pending>,
    children: Vec<Child>,
    /// When we last heard anything authentic from the peer (for DPD).
    last_heard: Millis,
    rekey_at: Option<Millis>,
    expire_at: Option<Millis>,
    /// We are behind a NAT: keep its mapping open with keepalives.
    us_nat: bool,
    /// The peer's IKE_AUTH carried [`TRAINS_VENDOR_ID`]: its CHILD SAs get
    /// full `UDP_SEGMENT` trains ([`ChildSaInfo::peer_takes_trains`]).
    peer_trains: bool,
    keepalive_at: Option<Millis>,
    /// When anything of ours last went out on this SA's UDP flow (for the
    /// keepalives of stateful firewalls, see [`keepalive`]).
    last_sent: Millis,
    /// When IKE_AUTH (or the rekey that made this SA) completed.
    established_at: Option<Millis>,
    /// When this SA's IKE_SA_INIT was sent or received: an SA of the same
    /// peer established after it was set up at the same time, not before.
    created_at: Millis,
    /// Where in the engine's order of events ([`Engine::order`]) this SA
    /// was established.
    established_order: u64,
    /// Our IKE_AUTH request carried INITIAL_CONTACT: where in the engine's
    /// order we last sent it (first time or retransmission).
    contact_sent: Option<u64>,
    /// Both sides initiated the connection at once and this SA is the one
    /// to go (see [`Engine::settle_duplicate`]).
    duplicate: Option<Duplicate>,
    /// The peer's rekey of this IKE SA that we answered while ours was in
    /// flight (RFC 7296 §2.8.2): which new SA stays is decided when ours
    /// is answered.
    peer_rekey: Option<Box<ike_rekey::RekeyedIke>>,
}

impl IkeSa {
    /// An IKE SA as its first exchange leaves it: nothing negotiated,
    /// heard and sent `now`, no timers; the caller fills in the rest.
    fn new(
        conn: ConnId,
        initiator: bool,
        (spi_i, spi_r): (u64, u64),
        state: State,
        (local, remote): (SocketAddr, SocketAddr),
        now: Millis,
    ) -> IkeSa {
        IkeSa {
            conn,
            initiator,
            spi_i,
            spi_r,
            state,
            local,
            remote,
            nat: false,
            ni: Vec::new(),
            nr: Vec::new(),
            ke: None,
            cookie: None,
            init_req: Vec::new(),
            init_resp: Vec::new(),
            suite: None,
            keys: None,
            sk_out: None,
            sk_in: None,
            tm: TaskManager::new(Version::IKEV2),
            children: Vec::new(),
            last_heard: now,
            rekey_at: None,
            expire_at: None,
            us_nat: false,
            peer_trains: false,
            keepalive_at: None,
            last_sent: now,
            established_at: None,
            created_at: now,
            established_order: 0,
            contact_sent: None,
            duplicate: None,
            peer_rekey: None,
        }
    }
}

/// An IKE SA the peer deleted: its SPIs, until when we keep its answers,
/// and the answers.
struct Grave {
    spis: (u64, u64),
    until: Millis,
    tm: TaskManager<Work, Pending>,
}

/// At most this many deleted IKE SAs are kept to answer retransmissions.
const GRAVEYARD_MAX: usize = 16;
/// For this long: the first three retransmissions of the peer's schedule.
const GRAVEYARD_TIME: Duration = Duration::from_secs(30);

/// An IKE SA that lost to a simultaneous one of the same connection: both
/// sides initiated it, or both rekeyed the same IKE SA (§2.8.2).
#[derive(Debug, Clone, Copy)]
struct Duplicate {
    /// How it came about, for the logs: "both sides initiated" or "both
    /// sides rekeyed".
    cause: &'static str,
    /// The SPIs of the IKE SA that stays.
    survivor: (u64, u64),
    /// When we send the DELETE ourselves if the peer has not; `None` once
    /// it is queued.
    delete_at: Option<Millis>,
    /// A liveness check went out on the survivor, to learn that the peer
    /// holds it before we delete the loser.
    asked: bool,
    /// The peer may have dropped this SA without a word on our
    /// INITIAL_CONTACT: our DELETE is given up on at this time if it is
    /// still unanswered (set when the DELETE is queued).
    doubt_until: Option<Millis>,
    /// Whether the peer may have dropped this SA (see `doubt_until`).
    doubted: bool,
}

/// [`Duplicate::cause`] of the redundant IKE SA of two rekeys at once.
const REKEY_COLLISION: &str = "both sides rekeyed";
/// [`Duplicate::cause`] of the second IKE SA of both sides initiating.
const BOTH_INITIATED: &str = "both sides initiated";

/// While we wait for the peer to show that it holds the survivor, how
/// often we look again.
const DUPLICATE_RECHECK: Duration = Duration::from_millis(500);

/// How long we wait for the peer to delete the duplicate IKE SA it created
/// before we delete it ourselves: a peer that settles the duplicate as we
/// do sends its DELETE at once; one that does not (strongSwan keeps both)
/// is not waited for longer than this.
pub const DUPLICATE_GRACE: Duration = Duration::from_secs(5);

/// How long the DELETE of a duplicate the peer may have dropped on our
/// INITIAL_CONTACT waits for its answer: long enough for one
/// retransmission (a peer that still holds the SA answers within a round
/// trip), short of the whole schedule (minutes of a stale SA in `show`).
pub const DUPLICATE_DOUBT: Duration = Duration::from_secs(6);

pub struct Engine {
    conns: ConnTable<ConnSpec>,
    sas: SaTable<IkeSa>,
    /// (initiator SPI, responder SPI) -> the SA's place; half-open responder SAs are
    /// found by (initiator SPI, remote) while their SPIr is still fresh.
    by_spi: HashMap<(u64, u64), SaId>,
    rng: Box<dyn Rng + Send>,
    policy: RetransmitPolicy,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pub stats: EngineStats,
    /// Secrets for stateless COOKIEs, and how many half-open SAs we keep
    /// before asking initiators to prove their address (RFC 7296 §2.6).
    cookie_secrets: CookieSecrets,
    cookie_threshold: usize,
    /// IKE SAs the peer deleted, each with its answers, kept a short while:
    /// if our response to its DELETE is lost, its retransmission (bit for
    /// bit the same request, from the same address, RFC 7296 §2.1) is
    /// answered again instead of retransmitted into silence until the peer
    /// gives up. Bounded by [`GRAVEYARD_MAX`] and [`GRAVEYARD_TIME`].
    graveyard: VecDeque<Grave>,
    /// A counter of the moments that matter to settling duplicates (an SA
    /// established, an INITIAL_CONTACT sent): their order, which the
    /// millisecond clock cannot tell within one step.
    order: u64,
    /// Tests only: act on INITIAL_CONTACT as strongSwan does: drop every
    /// other established IKE SA of the peer, without a DELETE.
    #[cfg(test)]
    pub(crate) contact_drops_all: bool,
    /// Tests only: offer the configured KE transforms in IKE_AUTH, as
    /// peers that do not follow RFC 7296 §1.2 do.
    #[cfg(test)]
    pub(crate) ke_in_ike_auth: bool,
    /// Tests only: keep both IKE SAs when both sides initiated, as
    /// strongSwan does, to show that we settle it alone.
    #[cfg(test)]
    pub(crate) keeps_duplicates: bool,
    /// Tests only: answer a CHILD rekey of an SA we are deleting instead of
    /// TEMPORARY_FAILURE (as a peer may that ignores §2.25.1's SHOULD).
    #[cfg(test)]
    pub(crate) rekeys_what_it_deletes: bool,
    /// Tests only: leave KEi out of CREATE_CHILD_SA although the proposal
    /// it sends has a DH group (RFC 7296 §1.3.1 wants it there).
    #[cfg(test)]
    pub(crate) omits_ke: bool,
}

/// How long a COOKIE secret is used for new COOKIEs; the one before it is
/// still accepted for as long again (RFC 7296 §2.6: change it often, and
/// honour COOKIEs of the previous version for a short while).
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// strongSwan's default `cookie_threshold`.
pub const COOKIE_THRESHOLD: usize = 30;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn id_string(id: &IdPayload) -> String {
    match id.id_type {
        IdType::ID_IPV4_ADDR if id.data.len() == 4 => {
            IpAddr::from(<[u8; 4]>::try_from(&id.data[..]).unwrap_or([0; 4])).to_string()
        }
        IdType::ID_IPV6_ADDR if id.data.len() == 16 => {
            IpAddr::from(<[u8; 16]>::try_from(&id.data[..]).unwrap_or([0; 16])).to_string()
        }
        IdType::ID_FQDN | IdType::ID_RFC822_ADDR => String::from_utf8_lossy(&id.data).into_owned(),
        t => format!("{t}:{}", hex(&id.data)),
    }
}

fn ts_list(ts: &[TsRange]) -> String {
    let v: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
    v.join(" ")
}

/// Crypto-layer transforms to wire transforms and back.
fn to_wire(t: &CTransform) -> Transform {
    Transform {
        transform_type: TransformType(t.ty.value()),
        transform_id: t.id,
        attributes: t.key_length.map(TransformAttribute::key_length).into_iter().collect(),
    }
}

fn from_wire(p: &Proposal) -> Vec<CTransform> {
    p.transforms
        .iter()
        .filter_map(|t| {
            Some(CTransform {
                ty: CTransformType::from_value(t.transform_type.0)?,
                id: t.transform_id,
                key_length: t.key_length(),
            })
        })
        .collect()
}

fn proposals_payload(protocol: ProtocolId, spi: &[u8], transforms: &[Vec<CTransform>]) -> SaPayload {
    SaPayload {
        proposals: transforms
            .iter()
            .enumerate()
            .map(|(i, ts)| Proposal {
                proposal_num: (i + 1) as u8,
                protocol_id: protocol,
                spi: spi.to_vec(),
                transforms: ts.iter().map(to_wire).collect(),
            })
            .collect(),
    }
}

fn ike_suite_transforms(s: &IkeSuite) -> Vec<CTransform> {
    IkeProposal::of_suite(s).transforms()
}

fn child_suite_transforms(s: &ChildSuite) -> Vec<CTransform> {
    ChildProposal {
        encr: vec![s.encr],
        integ: s.integ.into_iter().collect(),
        dh: s.dh.into_iter().collect(),
        esn: vec![if s.esn {
            ikeda_crypto::ike::Esn::Yes
        } else {
            ikeda_crypto::ike::Esn::No
        }],
    }
    .transforms()
}

/// NAT detection data (RFC 7296 §2.23): SHA-1(SPIi | SPIr | IP | Port).
fn natd(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    ikeda_crypto::sha1(&[
        &spi_i.to_be_bytes(),
        &spi_r.to_be_bytes(),
        &ip,
        &addr.port().to_be_bytes(),
    ])
    .to_vec()
}

fn notify(payloads: &[Payload], t: NotifyType) -> Option<&NotifyPayload> {
    first!(payloads, Payload::Notify(n) if n.notify_type == t => n)
}

fn first_error_notify(payloads: &[Payload]) -> Option<&NotifyPayload> {
    first!(payloads, Payload::Notify(n) if n.notify_type.is_error() => n)
}

/// Intersect two address/port/protocol ranges (RFC 7296 §2.9 narrowing).
fn intersect(a: &TsRange, b: &TsRange) -> Option<TsRange> {
    if a.start_address.is_ipv4() != b.start_address.is_ipv4() {
        return None;
    }
    let proto = match (a.ip_protocol.0, b.ip_protocol.0) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    let start_address = a.start_address.max(b.start_address);
    let end_address = a.end_address.min(b.end_address);
    if start_port > end_port || start_address > end_address {
        return None;
    }
    Some(TsRange {
        ip_protocol: ikeda_wire::iana::IpProtocol(proto),
        start_port,
        end_port,
        start_address,
        end_address,
    })
}

fn narrow(proposed: &[TsRange], configured: &[TsRange]) -> Vec<TsRange> {
    let mut out = Vec::new();
    for p in proposed {
        for c in configured {
            if let Some(x) = intersect(p, c) {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
        }
    }
    out
}

/// The IKE proposals of an IKE_SA_INIT request.
fn offered_ike(msg: &Message) -> Vec<IkeProposal> {
    msg.payloads
        .iter()
        .find_map(|p| match p {
            Payload::Sa(s) => Some(
                s.proposals
                    .iter()
                    .filter(|p| p.protocol_id == ProtocolId::IKE)
                    .map(|p| IkeProposal::from_transforms(&from_wire(p)))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

fn ranges(ts: &TsPayload) -> Vec<TsRange> {
    ts.traffic_selectors
        .iter()
        .filter_map(|t| match t {
            TrafficSelector::Range(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn ts_payload(ts: &[TsRange]) -> TsPayload {
    TsPayload {
        traffic_selectors: ts.iter().map(|t| TrafficSelector::Range(*t)).collect(),
    }
}

impl Engine {
    pub fn new(conns: Vec<ConnSpec>, rng: Box<dyn Rng + Send>) -> Engine {
        Engine {
            conns: ConnTable::new(conns),
            sas: SaTable::new(),
            by_spi: HashMap::new(),
            rng,
            policy: RetransmitPolicy::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EngineStats::default(),
            cookie_secrets: CookieSecrets::default(),
            cookie_threshold: COOKIE_THRESHOLD,
            graveyard: VecDeque::new(),
            order: 0,
            #[cfg(test)]
            contact_drops_all: false,
            #[cfg(test)]
            ke_in_ike_auth: false,
            #[cfg(test)]
            keeps_duplicates: false,
            #[cfg(test)]
            rekeys_what_it_deletes: false,
            #[cfg(test)]
            omits_ke: false,
        }
    }

    pub fn set_retransmit_policy(&mut self, p: RetransmitPolicy) {
        self.policy = p;
    }

    pub fn conn_names(&self) -> impl Iterator<Item = &str> {
        self.conns.names()
    }

    /// The live connection of this name.
    fn conn_index(&self, name: &str) -> Option<ConnId> {
        self.conns.find(name)
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Is an IKE SA of this connection established or being set up?
    pub fn is_active(&self, conn: &str) -> bool {
        self.sas.iter().any(|s| self.conns[s.conn].name == conn)
    }

    fn random_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.rng.fill(&mut b);
        u64::from_be_bytes(b)
    }

    fn random_spi32(&mut self) -> u32 {
        crate::random_spi32(&mut *self.rng)
    }

    /// A NAT detection hash that matches no address (SHA-1 sized, random),
    /// for `force_encap`: RFC 7296 §2.23 lets a host that wants UDP
    /// encapsulation without a NAT send one, and strongSwan does the same.
    fn fake_natd(&mut self) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        self.rng.fill(&mut h);
        h
    }

    fn nonce(&mut self) -> Vec<u8> {
        let mut n = vec![0u8; 32];
        self.rng.fill(&mut n);
        n
    }

    fn log(&mut self, conn: ConnId, line: String) {
        self.events.push_back(Event::Log {
            conn: self.conns[conn].name.clone(),
            line,
        });
    }

    fn fail(&mut self, conn: ConnId, why: Failure) {
        self.events.push_back(Event::Failed {
            conn: self.conns[conn].name.clone(),
            why,
        });
    }

    fn insert(&mut self, sa: IkeSa) -> SaId {
        let key = (sa.spi_i, sa.spi_r);
        let idx = self.sas.insert(sa);
        self.by_spi.insert(key, idx);
        idx
    }

    fn remove(&mut self, idx: SaId, reason: &str) {
        if let Some(sa) = self.sas.take(idx) {
            self.by_spi.retain(|_, v| *v != idx);
            // Make before break: the IKE SA kept over this duplicate sends
            // on its CHILD SAs from now on, before these go.
            if let Some(d) = sa.duplicate.filter(|d| d.cause == BOTH_INITIATED) {
                if let Some(&s) = self.by_spi.get(&d.survivor) {
                    self.activate_children(s);
                }
            }
            let conn = self.conns[sa.conn].name.clone();
            for c in &sa.children {
                self.events.push_back(Event::ChildSaDown {
                    conn: conn.clone(),
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                });
            }
            if matches!(sa.state, State::Established | State::Replaced | State::Deleting) {
                self.events.push_back(Event::IkeSaDown {
                    conn,
                    spi_i: sa.spi_i,
                    spi_r: sa.spi_r,
                    reason: reason.into(),
                });
            }
            // A duplicate that was to go for this one is all there is now.
            let gone = (sa.spi_i, sa.spi_r);
            for i in self.sas.ids() {
                let revive = self.sas.get(i).is_some_and(|s| {
                    s.state == State::Established
                        && s.duplicate.is_some_and(|d| d.survivor == gone && d.delete_at.is_some())
                });
                if revive {
                    self.keep_duplicate(i);
                }
            }
        }
    }

    /// The SA kept over duplicate `idx` is gone: `idx` stays, and its CHILD
    /// SAs, installed without sending on them, are sent on now.
    fn keep_duplicate(&mut self, idx: SaId) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        sa.duplicate = None;
        let conn = sa.conn;
        self.activate_children(idx);
        self.log(
            conn,
            "the IKE_SA kept over a duplicate is gone: keeping this one".into(),
        );
    }

    /// Send on the CHILD SAs of IKE SA `idx` that were installed without
    /// sending on them (a duplicate's, or the survivor's while the
    /// duplicate it replaces still carried the traffic).
    fn activate_children(&mut self, idx: SaId) {
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let name = self.conns[sa.conn].name.clone();
        for c in sa.children.iter_mut().filter(|c| !c.active) {
            c.active = true;
            self.events.push_back(Event::ChildSaActivate {
                conn: name.clone(),
                spi_in: c.spi_in,
            });
        }
    }

    // ---- initiating -------------------------------------------------------

    /// Start IKE_SA_INIT for a connection.
    pub fn initiate(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        let ci = self.conn_index(conn).ok_or_else(|| format!("no connection '{conn}'"))?;
        let group = self.conns[ci]
            .ike_proposals
            .first()
            .and_then(|p| p.dh.first().copied())
            .ok_or("no key exchange group in the IKE proposals")?;
        let spi_i = self.random_u64();
        let c = &self.conns[ci];
        let addrs = (SocketAddr::new(c.local, IKE_PORT), SocketAddr::new(c.remote, IKE_PORT));
        let sa = IkeSa::new(ci, true, (spi_i, 0), State::InitSent, addrs, now);
        let idx = self.insert(sa);
        self.send_init_request(idx, group, now)
    }

    /// Delete the connection's IKE SA (and with it its CHILD SAs).
    pub fn terminate(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        // The established SA if there is one, not a half-open or old one.
        let mine = |s: &IkeSa| self.conns[s.conn].name == conn;
        let idx = self
            .sas
            .find(|s| mine(s) && s.state == State::Established)
            .or_else(|| self.sas.find(mine))
            .ok_or_else(|| format!("no IKE SA for '{conn}'"))?;
        let established = self
            .sas
            .get(idx)
            .is_some_and(|s| matches!(s.state, State::Established | State::Replaced));
        if !established {
            self.remove(idx, "terminated locally");
            return Ok(());
        }
        // Next in line, after the exchange in flight if there is one.
        self.queue_first(idx, Work::DeleteIke, now);
        Ok(())
    }

    // ---- encryption helpers ----------------------------------------------

    fn build_encrypted(
        &mut self,
        idx: SaId,
        exchange: ExchangeType,
        response: bool,
        message_id: u32,
        payloads: &[Payload],
    ) -> Result<(Vec<u8>, String), String> {
        let sa = self.sas.get(idx).ok_or("gone")?;
        let sk = sa.sk_out.as_ref().ok_or("no keys")?;
        let header = HeaderRepr {
            initiator_spi: sa.spi_i,
            responder_spi: sa.spi_r,
            minor_version: 0,
            exchange_type: exchange,
            flags: Flags::new(sa.initiator, response),
            message_id,
        };
        let inner = emit_payload_chain(payloads).map_err(|e| e.to_string())?;
        let body_len = sk.sk_body_len(inner.len());
        let first = if payloads.is_empty() {
            PayloadType::NONE
        } else {
            first_payload_type(payloads)
        };
        let (mut msg, range) = emit_sk_message(&header, &[], first, body_len).map_err(|e| e.to_string())?;
        let body = sk
            .encrypt(&msg[..range.start], &inner, &mut *self.rng)
            .map_err(|e| e.to_string())?;
        msg[range].copy_from_slice(&body);
        Ok((msg, summary(&header, payloads)))
    }

    /// Send a request that starts `task`, the exchange in flight until its
    /// response (window size 1: callers start work through the queue).
    fn send_encrypted_request(
        &mut self,
        idx: SaId,
        exchange: ExchangeType,
        payloads: Vec<Payload>,
        task: Pending,
        now: Millis,
    ) -> Result<(), String> {
        let sa = self.sas.get(idx).ok_or("gone")?;
        if !sa.tm.can_initiate() {
            return Err("an exchange is in flight".into());
        }
        let id = sa.tm.next_id();
        let (msg, line) = self.build_encrypted(idx, exchange, false, id, &payloads)?;
        let policy = self.policy;
        let sa = self.sas.get_mut(idx).ok_or("gone")?;
        let what = task.exchange();
        sa.tm.request(id, what, task, msg.clone(), now, &policy);
        let (local, remote, conn) = (sa.local, sa.remote, sa.conn);
        self.log(conn, format!("sending {line} to {remote}"));
        self.transmits.push_back(Transmit {
            local,
            remote,
            data: msg,
        });
        Ok(())
    }

    fn send_encrypted_response(
        &mut self,
        idx: SaId,
        exchange: ExchangeType,
        message_id: u32,
        payloads: Vec<Payload>,
    ) -> Result<(), String> {
        let (msg, line) = self.build_encrypted(idx, exchange, true, message_id, &payloads)?;
        let sa = self.sas.get_mut(idx).ok_or("gone")?;
        sa.tm.answered(message_id, msg.clone());
        let (local, remote, conn) = (sa.local, sa.remote, sa.conn);
        self.log(conn, format!("sending {line} to {remote}"));
        self.transmits.push_back(Transmit {
            local,
            remote,
            data: msg,
        });
        Ok(())
    }

    /// Decrypt the SK payload of a received message; counts failures.
    fn open(&mut self, idx: SaId, bytes: &[u8], msg: &Message) -> Option<Vec<Payload>> {
        let sa = self.sas.get(idx)?;
        let Some(sk) = msg.sk() else {
            self.stats.malformed += 1;
            return None;
        };
        let iv_off = bytes.len().checked_sub(sk.body.len())?;
        let sk_in = sa.sk_in.as_ref()?;
        match sk_in.decrypt(&bytes[..iv_off], &bytes[iv_off..]) {
            Ok(plain) => match Message::parse_inner(sk.first_payload, &plain) {
                Ok(p) => Some(p),
                Err(_) => {
                    self.stats.malformed += 1;
                    None
                }
            },
            Err(_) => {
                self.stats.integrity_failed += 1;
                None
            }
        }
    }

    // ---- receiving --------------------------------------------------------

    /// Feed a received IKE datagram (without the non-ESP marker).
    pub fn handle_datagram(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let queued = self.transmits.len();
        self.receive(now, local, remote, data);
        self.note_sent(queued, now);
    }

    fn receive(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        let h = msg.header;
        if h.flags.response() {
            let Some(&idx) = self.by_spi.get(&(h.initiator_spi, h.responder_spi)).or_else(|| {
                // The response to IKE_SA_INIT carries the SPIr we do not know yet.
                self.by_spi.get(&(h.initiator_spi, 0))
            }) else {
                self.stats.unknown_spi += 1;
                return;
            };
            self.handle_response(idx, now, local, remote, data, msg);
        } else if h.exchange_type == ExchangeType::IKE_SA_INIT && h.responder_spi == 0 {
            // Our half-open SA for this SPIi from this host, if any: then
            // this is a retransmission, or a spoof of one.
            let existing = self
                .sas
                .find(|s| !s.initiator && s.spi_i == h.initiator_spi && s.remote.ip() == remote.ip());
            match existing {
                Some(idx) => {
                    self.answer_retransmission(idx, 0, data, (local, remote), true);
                }
                None => self.handle_init_request(now, local, remote, data, msg),
            }
        } else {
            let Some(&idx) = self.by_spi.get(&(h.initiator_spi, h.responder_spi)) else {
                self.stats.unknown_spi += 1;
                self.answer_from_the_grave(
                    (h.initiator_spi, h.responder_spi),
                    h.message_id,
                    data,
                    (local, remote),
                    now,
                );
                return;
            };
            self.handle_request(idx, now, local, remote, data, msg);
        }
    }

    fn handle_response(
        &mut self,
        idx: SaId,
        now: Millis,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: Message,
    ) {
        let Some(sa) = self.sas.get(idx) else { return };
        let mid = msg.header.message_id;
        if !sa.tm.awaits(mid) {
            self.stats.dropped_out_of_window += 1;
            return;
        }
        match (sa.state, msg.header.exchange_type) {
            (State::InitSent, ExchangeType::IKE_SA_INIT) => self.init_response(idx, now, local, remote, data, msg),
            (State::AuthSent, ExchangeType::IKE_AUTH) => {
                let Some(inner) = self.open(idx, data, &msg) else {
                    return;
                };
                let spi_in = match self.sas.get_mut(idx).and_then(|sa| sa.tm.complete(mid)) {
                    Some(Pending::Auth { spi_in }) => spi_in,
                    _ => 0,
                };
                self.heard(idx, now);
                self.auth_response(idx, now, &msg.header, inner, spi_in);
            }
            (_, ExchangeType::INFORMATIONAL) => {
                if !self.informational_response(idx, now, remote, data, &msg) {
                    return;
                }
            }
            (State::Established | State::Replaced, ExchangeType::CREATE_CHILD_SA) => {
                let Some(inner) = self.open(idx, data, &msg) else {
                    return;
                };
                self.heard(idx, now);
                let Some(task) = self.sas.get_mut(idx).and_then(|sa| sa.tm.complete(mid)) else {
                    return;
                };
                self.create_child_response(idx, now, &msg.header, inner, task);
            }
            _ => self.stats.dropped_out_of_window += 1,
        }
        // The window is free again (or the SA is gone): the next work starts.
        self.activate_next(idx, now);
    }

    fn establish(&mut self, idx: SaId, now: Millis) {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        let t = self.conns[conn].timers;
        let mut b = [0u8; 2];
        self.rng.fill(&mut b);
        let jitter = t.ike_rekey_time.mul_f64(u16::from_be_bytes(b) as f64 / 65535.0 / 10.0);
        self.order += 1;
        let order = self.order;
        let Some(sa) = self.sas.get_mut(idx) else { return };
        sa.state = State::Established;
        sa.tm.established();
        sa.established_at = Some(now);
        sa.established_order = order;
        sa.last_heard = now;
        sa.rekey_at = (!t.ike_rekey_time.is_zero()).then(|| now + t.ike_rekey_time - jitter);
        sa.keepalive_at = sa.us_nat.then(|| now + NAT_KEEPALIVE);
        sa.expire_at = (!t.ike_lifetime.is_zero()).then(|| now + t.ike_lifetime);
        let ev = Event::IkeSaUp {
            conn: self.conns[sa.conn].name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            initiator: sa.initiator,
            suite: sa.suite.as_ref().map(crate::event::suite_name).unwrap_or_default(),
            local: sa.local,
            remote: sa.remote,
            nat: sa.nat,
        };
        self.events.push_back(ev);
    }

    /// Derive the keys of a new CHILD SA and tell the caller to install it.
    fn install_child(&mut self, idx: SaId, now: Millis, c: NewChild) {
        let jitter = |e: &mut Engine, d: Duration| -> Duration {
            // Up to 10 % earlier, so two peers with the same lifetime do not
            // rekey at the same moment (fewer collisions, §2.8.1).
            let mut b = [0u8; 2];
            e.rng.fill(&mut b);
            d.mul_f64(u16::from_be_bytes(b) as f64 / 65535.0 / 10.0)
        };
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        let t = self.conns[conn].timers;
        let j = jitter(self, t.rekey_time);
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let (Some(suite), Some(keys)) = (sa.suite, sa.keys.as_ref()) else {
            return;
        };
        let alg = match c.suite.esp_algorithm_or_missing() {
            Ok(alg) => alg,
            Err(what) => {
                self.fail(
                    conn,
                    Failure::Local(format!("negotiated ESP algorithm is not in the data plane: no {what}")),
                );
                return;
            }
        };
        let km = match ChildKeys::derive(
            suite.prf,
            &keys.sk_d,
            c.suite.encr,
            c.suite.integ,
            c.pfs.as_ref(),
            &c.ni,
            &c.nr,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.fail(conn, Failure::Local(format!("CHILD SA keys: {e}")));
                return;
            }
        };
        // §2.17: the key order follows who initiated the exchange that
        // created the SA, not who initiated the IKE SA.
        let role = c.role;
        let nonces = c.rekey_of.map(|_| (c.ni.clone(), c.nr.clone()));
        sa.children.push(Child {
            pair: c.pair,
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            local_ts: c.local_ts.clone(),
            remote_ts: c.remote_ts.clone(),
            rekey_at: (!t.rekey_time.is_zero()).then(|| now + t.rekey_time - j),
            expire_at: (!t.life_time.is_zero()).then(|| now + t.life_time),
            rekeyed: false,
            rekey_of: c.rekey_of,
            nonces,
            we_initiated: role == Role::Initiator,
            active: c.activate,
            suite: c.suite,
            installed_at: now,
            udp_encap: sa.nat,
        });
        let info = ChildSaInfo {
            conn: self.conns[conn].name.clone(),
            algorithm: alg,
            esn: c.suite.esn,
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            enc_in: km.inbound(role).enc.clone(),
            auth_in: km.inbound(role).auth.clone(),
            enc_out: km.outbound(role).enc.clone(),
            auth_out: km.outbound(role).auth.clone(),
            local_ts: c.local_ts,
            remote_ts: c.remote_ts,
            local: sa.local,
            remote: sa.remote,
            udp_encap: sa.nat,
            peer_takes_trains: sa.peer_trains,
            replaces: c.replaces,
            activate_outbound: c.activate,
            pair: c.pair,
            ipcomp: None,
        };
        let what = if c.replaces.is_some() {
            "CHILD_SA rekeyed"
        } else {
            "CHILD_SA established"
        };
        self.log(
            conn,
            format!(
                "{what} with SPIs {:08x}_i {:08x}_o and TS {} === {}",
                c.spi_in,
                c.spi_out,
                ts_list(&info.local_ts),
                ts_list(&info.remote_ts)
            ),
        );
        self.events.push_back(Event::ChildSaUp(info));
    }

    // ---- responder --------------------------------------------------------

    fn handle_request(
        &mut self,
        idx: SaId,
        now: Millis,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: Message,
    ) {
        let mid = msg.header.message_id;
        if !self.answer_retransmission(idx, mid, data, (local, remote), false) {
            return;
        }
        let Some(inner) = self.open(idx, data, &msg) else {
            return;
        };
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.tm.accepted(mid, data, local, remote);
        }
        // An authentic request proves the peer alive as much as a response
        // (RFC 7296 §2.4: "any cryptographically protected IKE message"),
        // so DPD waits for silence in both directions.
        self.heard(idx, now);
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        self.log(conn, format!("received {} from {remote}", summary(&msg.header, &inner)));
        // The peer may have floated to 4500 (§2.23): answer where it asked from.
        if let Some(sa) = self.sas.get_mut(idx) {
            if local.port() == NAT_T_PORT || remote.port() == NAT_T_PORT {
                sa.local = local;
                sa.remote = remote;
            }
        }
        match (self.sas.get(idx).map(|s| s.state), msg.header.exchange_type) {
            (Some(State::InitAnswered), ExchangeType::IKE_AUTH) => self.auth_request(idx, now, &msg.header, inner),
            (Some(State::Established | State::Replaced | State::Deleting), ExchangeType::INFORMATIONAL) => {
                self.informational_request(idx, msg.header.message_id, inner, now)
            }
            (Some(State::Established | State::Replaced), ExchangeType::CREATE_CHILD_SA) => {
                self.create_child_request(idx, now, &msg.header, inner)
            }
            _ => {
                self.stats.dropped_out_of_window += 1;
            }
        }
    }

    /// What the task manager makes of a request (RFC 7296 §2.1, §2.3): true
    /// if it is new and to be processed. A retransmission of the request
    /// answered last gets the cached response again, to where it came
    /// from; a message with that ID that is not that request bit for bit,
    /// or that comes from elsewhere, is refused (a spoofed 28-byte header
    /// with the SPIs and message ID would otherwise reflect a response many
    /// times its size at any address, and the peer moves only with an
    /// authenticated new request, §2.23); other IDs are outside the window.
    ///
    /// IKE_SA_INIT (`init`) has no ICV, and once the SA moved on there is
    /// no IKE_SA_INIT to be a retransmission of: with its SPIi from that
    /// host, it is refused (§2.11).
    fn answer_retransmission(
        &mut self,
        idx: SaId,
        mid: u32,
        data: &[u8],
        (local, remote): (SocketAddr, SocketAddr),
        init: bool,
    ) -> bool {
        let Some(sa) = self.sas.get(idx) else { return false };
        let again = match sa.tm.check_request(mid, data, local, remote) {
            Incoming::New if !init => return true,
            Incoming::Again(t) => t,
            Incoming::OutOfWindow if !init => {
                self.stats.dropped_out_of_window += 1;
                return false;
            }
            _ => {
                self.stats.retransmits_refused += 1;
                return false;
            }
        };
        self.stats.retransmits_answered += 1;
        self.transmits.push_back(again);
        false
    }

    /// The other IKE SAs whose peer has the identity of SA `idx`'s peer:
    /// the established ones, and with `any_state` also those being set up.
    /// Half-open ones are never deleted for INITIAL_CONTACT: with
    /// simultaneous initiations each side would delete a different one.
    fn with_same_peer(&self, idx: SaId, any_state: bool) -> Vec<SaId> {
        let Some(sa) = self.sas.get(idx) else {
            return Vec::new();
        };
        let peer = &self.conns[sa.conn].remote_id;
        self.sas
            .ids()
            .filter(|&i| i != idx)
            .filter(|&i| {
                self.sas.get(i).is_some_and(|s| {
                    (any_state || matches!(s.state, State::Established | State::Replaced))
                        && self.conns[s.conn].remote_id == *peer
                })
            })
            .collect()
    }

    /// Both sides initiated the connection at once, so IKE_AUTH has just
    /// made a second IKE SA (and CHILD SA pair) next to one set up at the
    /// same time. RFC 7296 has no rule for this; we settle it as §2.8.1
    /// settles a rekey collision, which both sides can compute alike: the
    /// IKE SA whose exchanges hold the lowest of the four nonces goes, and
    /// the side that created it deletes it (at once). If the peer created
    /// it and has not deleted it after [`DUPLICATE_GRACE`] (a peer that
    /// does not settle duplicates, such as strongSwan), we delete it.
    /// Returns whether the CHILD SA of SA `idx` is to be installed without
    /// sending on it: when `idx` is the one to go, and when it stays but
    /// the one to go carries the traffic now; then the survivor's CHILD
    /// SAs take over when the duplicate is deleted (make before break: if
    /// the survivor goes first, nothing was lost). Unless the peer may
    /// have dropped the one to go: then the survivor takes over at once.
    fn settle_duplicate(&mut self, idx: SaId, now: Millis) -> bool {
        #[cfg(test)]
        if self.keeps_duplicates {
            return false;
        }
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return false;
        };
        // Any other established SA of the connection: both sides must come
        // to the same pair, and when each side saw which SA begin differs
        // (a retransmitted IKE_SA_INIT is new to us, old to the peer). An
        // SA of a peer that restarted is gone before this: the peer's
        // INITIAL_CONTACT deleted it.
        let Some(other) = self.sas.ids().find(|&i| {
            i != idx
                && self
                    .sas
                    .get(i)
                    .is_some_and(|s| s.conn == conn && s.state == State::Established && s.duplicate.is_none())
        }) else {
            return false;
        };
        let key = |i: SaId| {
            self.sas
                .get(i)
                .map(|s| (rekey::lowest_of(&s.ni, &s.nr), (s.spi_i, s.spi_r)))
        };
        let (Some(mine), Some(theirs)) = (key(idx), key(other)) else {
            return false;
        };
        // The SPIs only break a tie of equal nonces, alike on both sides.
        let (mut loser, mut survivor) = if mine < theirs { (idx, other) } else { (other, idx) };
        // Unless our INITIAL_CONTACT may have killed the nonce's survivor.
        let doubted = self.dropped_on_our_contact(idx, other);
        if let Some(dropped) = doubted {
            (loser, survivor) = (dropped, if dropped == idx { other } else { idx });
        }
        let Some(keep) = self.sas.get(survivor).map(|s| (s.spi_i, s.spi_r)) else {
            return false;
        };
        let Some(l) = self.sas.get_mut(loser) else {
            return false;
        };
        let ours = l.initiator;
        // A duplicate the peer may have dropped is deleted at once: waiting
        // for the peer to do it would leave it stale here.
        let at_once = ours || doubted.is_some();
        l.duplicate = Some(Duplicate {
            cause: BOTH_INITIATED,
            survivor: keep,
            delete_at: Some(if at_once { now } else { now + DUPLICATE_GRACE }),
            asked: false,
            doubt_until: None,
            doubted: doubted.is_some(),
        });
        let gone = (l.spi_i, l.spi_r);
        self.stats.duplicates_settled += 1;
        let why = if doubted.is_some() {
            "the peer may have deleted it without a DELETE when our INITIAL_CONTACT arrived after it was up, RFC 7296 §2.4"
        } else {
            "it holds the lowest nonce, RFC 7296 §2.8.1"
        };
        let carries_traffic = |e: &Engine, i: SaId| e.sas.get(i).is_some_and(|s| s.children.iter().any(|c| c.active));
        let hold_back = loser == idx || (doubted.is_none() && carries_traffic(self, loser));
        self.log(
            conn,
            format!(
                "both sides initiated: keeping IKE_SA {:016x}_i {:016x}_r, {} IKE_SA {:016x}_i {:016x}_r ({why})",
                keep.0,
                keep.1,
                if at_once {
                    format!("deleting {}", if ours { "our" } else { "the peer's" })
                } else {
                    format!(
                        "waiting up to {} s for the peer to delete its",
                        DUPLICATE_GRACE.as_secs()
                    )
                },
                gone.0,
                gone.1
            ),
        );
        hold_back
    }

    /// Of two duplicate IKE SAs `a` and `b`, the one the peer may have
    /// deleted on our INITIAL_CONTACT. RFC 7296 §2.4 lets a peer that gets
    /// INITIAL_CONTACT delete every other IKE SA it has with us, without a
    /// DELETE, and strongSwan deletes those that are up at that moment. So
    /// when we sent our IKE_AUTH with INITIAL_CONTACT (or its
    /// retransmission) after the peer's SA was up here (both sides
    /// initiating, our first IKE_AUTH lost or held up), the peer may have
    /// dropped its SA, and ours, which it answered, is the one both sides
    /// still hold. Only we know this: the peer settles by the nonce, and if
    /// it picked the other one our DELETE of it tells it before its grace
    /// ends ([`DUPLICATE_GRACE`]).
    fn dropped_on_our_contact(&self, a: SaId, b: SaId) -> Option<SaId> {
        let (sa, sb) = (self.sas.get(a)?, self.sas.get(b)?);
        let contact_after = |ours: &IkeSa, theirs: &IkeSa| {
            ours.initiator && !theirs.initiator && ours.contact_sent.is_some_and(|c| c > theirs.established_order)
        };
        match (contact_after(sa, sb), contact_after(sb, sa)) {
            (true, false) => Some(b),
            (false, true) => Some(a),
            _ => None,
        }
    }

    /// The duplicate IKE SAs whose time to be deleted by us has come: a
    /// DELETE is queued, unless the survivor is gone meanwhile (then this
    /// one is all there is, and stays).
    pub(super) fn delete_duplicates(&mut self, idx: SaId, now: Millis) {
        let Some(d) = self.sas.get(idx).and_then(|s| s.duplicate) else {
            return;
        };
        if d.delete_at.is_none_or(|t| now < t) {
            return;
        }
        let survivor = self
            .by_spi
            .get(&d.survivor)
            .copied()
            .filter(|&i| self.sas.get(i).is_some_and(|s| s.state == State::Established));
        let Some(keep) = survivor else {
            self.keep_duplicate(idx);
            return;
        };
        // Does the peer hold the survivor? Yes if it answered our IKE_AUTH;
        // if we answered its IKE_AUTH, only once it sent us something on
        // it since (our answer may be lost and retransmitted): until then,
        // deleting the loser would take away the only SA it can send on.
        // After two rekeys at once the peer holds both new SAs as soon as
        // it has our answer, which it gets again from our cache if it was
        // lost: no need to ask.
        let held = d.cause == REKEY_COLLISION
            || self
                .sas
                .get(keep)
                .is_some_and(|s| s.initiator || s.established_at.is_some_and(|t| s.last_heard > t));
        if !held {
            if !d.asked {
                self.queue(keep, Work::Liveness, now);
            }
            if let Some(sa) = self.sas.get_mut(idx) {
                sa.duplicate = Some(Duplicate {
                    delete_at: Some(now + DUPLICATE_RECHECK),
                    asked: true,
                    ..d
                });
            }
            return;
        }
        let Some(sa) = self.sas.get_mut(idx) else { return };
        sa.duplicate = Some(Duplicate {
            delete_at: None,
            doubt_until: d.doubted.then(|| now + DUPLICATE_DOUBT),
            ..d
        });
        if sa.state != State::Established {
            return;
        }
        // Make before break: the survivor, which the peer holds, carries
        // the traffic before our DELETE goes out.
        if d.cause == BOTH_INITIATED {
            self.activate_children(keep);
        }
        self.queue_first(idx, Work::DeleteIke, now);
    }

    /// The DELETE of a duplicate the peer may have dropped on our
    /// INITIAL_CONTACT, unanswered after [`DUPLICATE_DOUBT`]: it did.
    fn give_up_doubted_duplicate(&mut self, idx: SaId, now: Millis) -> bool {
        let due = self
            .sas
            .get(idx)
            .and_then(|s| s.duplicate)
            .and_then(|d| d.doubt_until)
            .is_some_and(|t| now >= t);
        if due {
            self.remove(
                idx,
                "duplicate deleted by us (the peer had dropped it on our INITIAL_CONTACT)",
            );
        }
        due
    }

    // ---- timers -----------------------------------------------------------

    pub fn handle_timeout(&mut self, now: Millis) {
        let queued = self.transmits.len();
        for idx in self.sas.ids() {
            if !self.retransmissions(idx, now) {
                continue;
            }
            // Retransmissions count as sent (they refresh the flow).
            self.note_sent(queued, now);
            self.keepalives(idx, now);
            if let Some(sa) = self.sas.get(idx) {
                if sa.tm.half_open_expired(now) {
                    let conn = sa.conn;
                    self.log(conn, "half-open IKE_SA timed out waiting for IKE_AUTH".into());
                    self.remove(idx, "half-open timeout");
                    continue;
                }
            }
            if self.give_up_doubted_duplicate(idx, now) {
                continue;
            }
            self.delete_duplicates(idx, now);
            self.lifetimes(idx, now);
        }
        self.note_sent(queued, now);
    }

    /// The next moment a timer of this engine is due.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.sas
            .iter()
            .flat_map(|s| {
                let t = self.conns[s.conn].timers;
                // Lifetime timers are disarmed once their work is queued;
                // a liveness check is only due with nothing in flight (an
                // exchange in flight is a liveness check of its own).
                let live = s.state == State::Established;
                let idle = live && !s.tm.busy();
                let dpd = (idle && !t.dpd_delay.is_zero()).then(|| s.last_heard + t.dpd_delay);
                let sa_timers = [s.rekey_at, s.expire_at].into_iter().flatten().filter(|_| live);
                let child_timers = s
                    .children
                    .iter()
                    .flat_map(|c| [c.rekey_at.filter(|_| !c.rekeyed), c.expire_at])
                    .flatten()
                    .filter(move |_| live);
                s.tm.poll_timeout()
                    .into_iter()
                    .chain(dpd)
                    .chain(sa_timers)
                    .chain(child_timers)
                    .chain(s.keepalive_at.filter(|_| s.state == State::Established))
                    .chain(s.duplicate.and_then(|d| d.delete_at))
                    .chain(s.duplicate.and_then(|d| d.doubt_until))
                    .chain(self.keepalive_due(s))
                    .collect::<Vec<_>>()
            })
            .min()
    }
}

crate::sim::impl_peer!(Engine);
