//! The IKEv1 engine (RFC 2409): Main Mode and (opt-in) Aggressive Mode with
//! pre-shared keys, Quick Mode with and without PFS, Informational
//! exchanges (DELETE, INITIAL-CONTACT, notifications), dead peer detection
//! (RFC 3706) and NAT traversal (RFC 3947).
//!
//! ```text
//! Main Mode (RFC 2409 §5.4)              Aggressive Mode (§5.4)
//! I  HDR, SA                      -->    I  HDR, SA, KE, Ni, IDii         -->
//! R                          <--  HDR, SA   R   <-- HDR, SA, KE, Nr, IDir, HASH_R
//! I  HDR, KE, Ni [, NAT-D, NAT-D] -->    I  HDR*, HASH_I                  -->
//! R          <--  HDR, KE, Nr [, NAT-D, NAT-D]
//! I  HDR*, IDii, HASH_I           -->
//! R                  <--  HDR*, IDir, HASH_R
//!
//! Quick Mode (§5.5)
//! I  HDR*, HASH(1), SA, Ni [, KE ] [, IDci, IDcr ]  -->
//! R            <--  HDR*, HASH(2), SA, Nr [, KE ] [, IDci, IDcr ]
//! I  HDR*, HASH(3)                                  -->
//! ```
//!
//! The engine has the IKEv2 engine's shape (sans-IO: datagrams and time in;
//! datagrams, timers and [`Event`]s out) and emits the same events, so the
//! daemon installs, shows and exports IKEv1 SAs the way it does IKEv2 ones.
//!
//! IKEv1 differs in ways that shape this module:
//! - IPsec SAs are not children of one ISAKMP SA: any phase-1 SA of the
//!   connection may delete or rekey them, and a new phase-1 SA (our "rekey"
//!   of phase 1 is a fresh Main Mode) leaves them in place. They live per
//!   connection here ([`Child`]), not per phase-1 SA.
//! - A Quick Mode negotiates one pair of selectors (IDci, IDcr), so a
//!   connection with several selector pairs runs several Quick Modes under
//!   one phase-1 SA, and each pair has its own SAs (`pair` in
//!   [`ChildSaInfo`]).
//! - There is no request/response flag or message counter: retransmissions
//!   are recognised by their bytes, and each side resends its last message
//!   of an exchange when the peer's previous one comes again. The task
//!   manager ([`crate::task`], IKEv1's [`Version`]) keeps both per M-ID,
//!   and resends our messages on the same schedule as IKEv2's.
//! - CBC IVs chain across messages (RFC 2409 App. B): phase 1 from
//!   hash(g^xi | g^xr), then the last ciphertext block of each message;
//!   every Quick Mode and Informational exchange starts from
//!   hash(last phase-1 block | M-ID).
//!
//! Each exchange is in its own file, in a further `impl Engine` block:
//! `main_mode`, `aggressive`, `quick`, `informational` (with DPD). This file
//! keeps the engine's state, the dispatch, the first phase-1 message both
//! modes share, and the phase-1 helpers.

use crate::retransmit::{RequestTimer, Retransmission, RetransmitPolicy};
use crate::task::{Incoming, TaskManager, Version};
use crate::{ChildSaInfo, ConnId, ConnSpec, Event, Failure};
use crate::{Exchange, Millis, SaId, SaTable, Transmit};
use ikeda_crypto::ike::{ChildSuite, DhGroup, Encr, IkeSuite, Integ, KeyExchange, Prf, Rng};
use ikeda_crypto::ikev1::{self as c1, Cipher, Hash, Phase1Keys};
use ikeda_crypto::SecretBytes;
use ikeda_wire::ikev1::{
    doi, id_type, ipsec_attr, notify, p1_attr, parse_payloads, payload_type as pt, protocol, summary, transform_id,
    vendor_id, write_payload, write_payloads, Attribute, DeletePayload, ExchangeType, Header, IdPayload, Message,
    NotifyPayload, ParsedPayload, Payload, Proposal, SaPayload, Transform, FLAG_COMMIT, FLAG_ENCRYPTION, HEADER_LEN,
    ISAKMP_VERSION,
};
use ikeda_wire::ikev2::TsRange;
use ikeda_wire::udp_gso::TRAINS_VENDOR_ID;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

mod aggressive;
mod informational;
mod main_mode;
mod quick;
#[cfg(test)]
mod tests;
mod view;

use crate::conn::{ConnTable, IKE_PORT, KEEPALIVE, NAT_KEEPALIVE, NAT_T_PORT};

/// Half-open phase-1 SAs (either role, before HASH_I/HASH_R verified) per
/// peer address. MM1/AM1 are unauthenticated and their source address is
/// trivially spoofed, so they are bounded: when the bound is reached a new
/// first message replaces the oldest half-open SA that never heard from
/// the peer again (MmR1/AmR1). An SA whose peer echoed our responder
/// cookie (MM3) has shown it receives at that address (the return
/// routability argument of RFC 7296 §2.6 / RFC 2522) and is never
/// replaced. The real peer thus gets through as long as fewer than this
/// many spoofed MM1 arrive within one of its round trips, and its own
/// MM1 retransmissions retry otherwise.
pub(crate) const MAX_HALF_OPEN_PER_PEER: usize = 64;
/// Half-open phase-1 SAs over all peers: a peer is one configured address,
/// so this bounds what many connections can hold together.
pub(crate) const MAX_HALF_OPEN: usize = 1024;
/// The largest first message (MM1/AM1) we keep state for. A real one is a
/// few hundred octets (strongSwan with every proposal: ~1.5 KB); kept
/// per half-open SA to recognise its retransmission, it must not let a
/// spoofer park 64 KB per entry.
const MAX_FIRST_MESSAGE: usize = 8192;
/// What one half-open SA holds in messages at most: the first message and
/// our answer (an MM2 is < 1 KB, an AM2 < 2 KB). All of them together
/// hold at most [`MAX_HALF_OPEN`] times this (12 MB).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const MAX_HALF_OPEN_HELD: usize = MAX_FIRST_MESSAGE + 4096;
/// Aggressive Mode makes the responder compute g^xy for AM1 before the
/// initiator proved anything (AM2 carries HASH_R, RFC 2409 §5.4), and there
/// is no cookie round trip to make a spoofer show its address first (the
/// defence RFC 7296 §2.6 gives IKEv2). So the DH work is rate limited: a
/// token bucket per connection (peer) and one for all, refusals counted.
/// Ten per second is far above what a real peer needs (one per phase 1).
pub(crate) const AM_DH_PER_PEER: TokenRate = TokenRate { per_sec: 10, burst: 10 };
pub(crate) const AM_DH_GLOBAL: TokenRate = TokenRate {
    per_sec: 100,
    burst: 100,
};

/// A token bucket's rate: `per_sec` tokens a second, at most `burst` saved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRate {
    pub per_sec: u64,
    pub burst: u64,
}

/// A token bucket in integer millitokens, refilled from the caller's time.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    at: Millis,
}

impl Bucket {
    fn full(rate: TokenRate, now: Millis) -> Bucket {
        Bucket {
            milli: rate.burst * 1000,
            at: now,
        }
    }

    fn refill(&mut self, rate: TokenRate, now: Millis) {
        let ms = now.0.saturating_sub(self.at.0);
        self.milli = self
            .milli
            .saturating_add(ms.saturating_mul(rate.per_sec))
            .min(rate.burst * 1000);
        self.at = Millis(self.at.0.max(now.0));
    }

    fn has_token(&mut self, rate: TokenRate, now: Millis) -> bool {
        self.refill(rate, now);
        self.milli >= 1000
    }

    fn take(&mut self) {
        self.milli = self.milli.saturating_sub(1000);
    }
}
/// The initiator of a Quick Mode rekey sends on the new SA this long after
/// its HASH(3), so the responder has installed its inbound half (it does
/// so on HASH(3)); the old SA keeps working meanwhile.
const REKEY_ACTIVATE: Duration = Duration::from_millis(500);
/// ... and deletes the old SA this long after, once packets sent on it
/// have drained.
const REKEY_DELETE: Duration = Duration::from_secs(3);
/// Both sides set up the same connection at once (each initiated before it
/// heard of the other's): two phase-1 SAs, or two IPsec SAs of one selector
/// pair, come up. IKEv1 has no rule for it; we keep RFC 7296 §2.8.1's (the
/// exchange with the lowest nonce loses), which both sides can compute.
/// The side that created the loser deletes it after this long (packets
/// sent on it meanwhile drain)...
const DUPLICATE_DELETE: Duration = Duration::from_secs(1);
/// ... and the other side waits this long for that DELETE before it deletes
/// the loser itself: a peer without the rule (strongSwan, racoon) keeps both.
const DUPLICATE_GRACE: Duration = Duration::from_secs(5);
/// A phase-1 SA that lost is kept this long after a Quick Mode we ran on
/// it finished: if our HASH(3) was lost the peer sends HASH(2) again (after
/// 4 s, then 11.2 s with the default schedule) and must get it again, or it
/// drops the SA pair we send on.
const DUPLICATE_QM_SETTLE: Duration = Duration::from_secs(12);
/// Quick Modes we run at once, as initiator, under one phase-1 SA; the
/// others wait their turn. strongSwan keeps the CBC IV and state of at most
/// three phase-2 exchanges per IKE_SA (`charon.max_ikev1_exchanges`,
/// default 3) and forgets the oldest beyond that: four at once (the racoon
/// site's three IPv4 pairs and an IPv6 one) made it fail to decrypt the
/// HASH(3) of the others ("invalid HASH_V1 payload length, decryption
/// failed?"). And when it cannot install one SA of several in progress it
/// drops the other Quick Modes it was answering ("sa payload missing" for
/// their HASH(3)). One at a time costs a round trip per selector pair at
/// setup and leaves room for DPD and DELETE exchanges beside it.
const QM_IN_FLIGHT: usize = 1;
/// Recently seen Informational M-IDs kept per phase-1 SA for replay
/// detection. RFC 2409 §5.5/§5.7 M-IDs are random and the exchanges carry
/// no counter, so a repeat within this window is a replay; 64 covers far
/// more than the DPD and DELETE exchanges a peer makes in one SA's life
/// between rekeys while costing 256 octets.
const INFO_MIDS_KEPT: usize = 64;
/// How many removed phase-1 SAs' cookies are remembered, so that what
/// still arrives for them (the peer's DELETE that crossed ours: IKEv1's
/// DELETE has no answer, RFC 2408 §4.8, so each side drops the SA as it
/// sends one) is told apart from messages for SAs we never had.
const RECENTLY_REMOVED: usize = 16;
/// Phase-1 lifetime when none is configured (strongSwan's and racoon's default).
const DEFAULT_P1_LIFE: Duration = Duration::from_secs(28800);
const DEFAULT_P2_LIFE: Duration = Duration::from_secs(3600);

/// One IKEv1 connection: the IKEv2 engine's connection plus the choices
/// only IKEv1 has.
#[derive(Clone, Debug)]
pub struct V1ConnSpec {
    pub spec: ConnSpec,
    /// Aggressive Mode instead of Main Mode: it sends the identity in the
    /// clear and lets an observer test PSK guesses offline against HASH_R.
    pub aggressive: bool,
    /// Ask for IPComp (DEFLATE) with ESP in Quick Mode (RFC 3173).
    pub compress: bool,
}

impl AsRef<ConnSpec> for V1ConnSpec {
    fn as_ref(&self) -> &ConnSpec {
        &self.spec
    }
}

/// The algorithms of a phase-1 SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct P1Choice {
    cipher: Cipher,
    hash: Hash,
    group: DhGroup,
    encr: Encr,
    prf: Prf,
}

impl P1Choice {
    fn suite(&self) -> IkeSuite {
        IkeSuite {
            encr: self.encr,
            integ: Some(integ_for(self.hash)),
            prf: self.prf,
            dh: self.group,
        }
    }
}

fn integ_for(h: Hash) -> Integ {
    match h {
        Hash::Md5 => Integ::HmacMd5_96,
        Hash::Sha1 => Integ::HmacSha1_96,
        Hash::Sha256 => Integ::HmacSha256_128,
        Hash::Sha384 => Integ::HmacSha384_192,
        Hash::Sha512 => Integ::HmacSha512_256,
    }
}

fn prf_for(h: Hash) -> Prf {
    match h {
        Hash::Md5 => Prf::HmacMd5,
        Hash::Sha1 => Prf::HmacSha1,
        Hash::Sha256 => Prf::HmacSha256,
        Hash::Sha384 => Prf::HmacSha384,
        Hash::Sha512 => Prf::HmacSha512,
    }
}

fn encr_for(c: Cipher) -> Encr {
    match c {
        Cipher::AesCbc { key_bits } => Encr::AesCbc { key_bits },
        Cipher::TripleDesCbc => Encr::TripleDesCbc,
        Cipher::DesCbc => Encr::DesCbc,
    }
}

/// Where a phase-1 exchange stands; `I`/`R`: our role, the number: how many
/// of our messages went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P1State {
    MmI1,
    MmR1,
    MmI2,
    MmR2,
    MmI3,
    AmI1,
    AmR1,
    Established,
}

/// Dead peer detection state (RFC 3706).
#[derive(Debug, Clone, Default)]
struct Dpd {
    /// The sequence number of the last R-U-THERE we sent.
    seq: u32,
    /// A liveness check is out, on the one retransmission schedule (IKEv2's
    /// liveness check's): each resend is a new R-U-THERE with the next
    /// sequence number (RFC 3706 §5.5), so the schedule carries no bytes.
    check: Option<Retransmission>,
    /// Traffic went out and none came back ([`Engine::one_way_traffic`]):
    /// ask now, whatever `dpd_delay` says.
    suspect: bool,
}

impl crate::keepalive::OnFlow for P1 {
    fn flow(&self) -> (SocketAddr, SocketAddr) {
        (self.local, self.remote)
    }
    fn last_sent_mut(&mut self) -> &mut Millis {
        &mut self.last_sent
    }
}

/// A phase-1 (ISAKMP) SA.
struct P1 {
    conn: ConnId,
    icookie: u64,
    rcookie: u64,
    initiator: bool,
    state: P1State,
    local: SocketAddr,
    remote: SocketAddr,
    choice: Option<P1Choice>,
    /// The initiator's SA payload body (SAi_b), as both HASHes take it.
    sai_b: Vec<u8>,
    kex: Option<KeyExchange>,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    /// Aggressive Mode: the initiator's ID body (IDii_b), sent before keys.
    idii_b: Vec<u8>,
    keys: Option<Phase1Keys>,
    /// The phase-1 CBC chain: the IV for the next phase-1 message; once
    /// established, the last phase-1 block, the seed of every phase-2 IV.
    iv: Vec<u8>,
    peer_nat_t: bool,
    peer_dpd: bool,
    /// The peer announced [`TRAINS_VENDOR_ID`]: its IPsec SAs get full
    /// `UDP_SEGMENT` trains ([`ChildSaInfo::peer_takes_trains`]).
    peer_trains: bool,
    /// NAT between us: we are behind one / the peer is.
    nat_local: bool,
    nat_remote: bool,
    /// Our messages in flight (phase 1's under M-ID 0, each Quick Mode's
    /// under its own), their retransmission, the last message accepted in
    /// each exchange with our answer to it (a retransmission of it gets the
    /// same answer again), and the half-open deadline.
    tm: TaskManager<(), ()>,
    established_at: Option<Millis>,
    rekey_at: Option<Millis>,
    expire_at: Option<Millis>,
    last_heard: Millis,
    dpd: Dpd,
    keepalive_at: Option<Millis>,
    /// When anything of ours last went out on this SA's UDP flow (for the
    /// keepalives of stateful firewalls, `Timers::keepalive`).
    last_sent: Millis,
    /// Replaced by a newer phase-1 SA of the same connection.
    superseded: bool,
    /// The loser of a duplicate ([`DUPLICATE_DELETE`]): when to delete it,
    /// once no Quick Mode is in flight on it.
    duplicate_delete_at: Option<Millis>,
    /// We began it while the connection had an established phase-1 SA (a
    /// rekey, or `initiate` again): it replaces that one. Only its
    /// initiator knows; the responder cannot tell it from a duplicate.
    replaces: bool,
    qms: Vec<quick::Qm>,
    created: Millis,
    /// Encrypted phase-1 messages that did not decrypt or verify: dropped
    /// without effect (anyone who saw the cookies can send them), but when
    /// the exchange then gives up, the likely cause is a different PSK.
    unreadable: u32,
    /// Informational M-IDs whose HASH(1) verified, newest last ([`INFO_MIDS_KEPT`]).
    info_mids: VecDeque<u32>,
    /// Creation order (times tie within a burst): the oldest half-open SA
    /// is the one [`Engine::make_room`] replaces.
    serial: u64,
}

impl P1 {
    /// A phase-1 SA of connection `conn` beginning at `now`, nothing
    /// negotiated yet.
    fn new(
        conn: ConnId,
        (icookie, rcookie): (u64, u64),
        state: P1State,
        (local, remote): (SocketAddr, SocketAddr),
        now: Millis,
    ) -> P1 {
        P1 {
            conn,
            icookie,
            rcookie,
            initiator: matches!(state, P1State::MmI1 | P1State::AmI1),
            state,
            local,
            remote,
            choice: None,
            sai_b: Vec::new(),
            kex: None,
            gxi: Vec::new(),
            gxr: Vec::new(),
            ni: Vec::new(),
            nr: Vec::new(),
            idii_b: Vec::new(),
            keys: None,
            iv: Vec::new(),
            peer_nat_t: false,
            peer_dpd: false,
            peer_trains: false,
            nat_local: false,
            nat_remote: false,
            tm: TaskManager::new(Version::ikev1(QM_IN_FLIGHT)),
            established_at: None,
            rekey_at: None,
            expire_at: None,
            last_heard: now,
            dpd: Dpd::default(),
            keepalive_at: None,
            last_sent: now,
            superseded: false,
            duplicate_delete_at: None,
            replaces: false,
            qms: Vec::new(),
            created: now,
            unreadable: 0,
            info_mids: VecDeque::new(),
            serial: 0,
        }
    }

    /// Before authentication, in either role.
    fn half_open(&self) -> bool {
        self.state != P1State::Established
    }

    /// Half-open and never heard from the peer after its first message: a
    /// spoofed MM1/AM1 looks like this forever.
    fn unproven(&self) -> bool {
        !self.initiator && matches!(self.state, P1State::MmR1 | P1State::AmR1)
    }

    /// The octets of messages this SA keeps.
    fn held_bytes(&self) -> usize {
        self.tm.held_bytes() + self.sai_b.len()
    }
}

impl P1 {
    fn hash(&self) -> Option<Hash> {
        self.choice.map(|c| c.hash)
    }

    /// HASH_I over this SA's exchange (RFC 2409 §5), for the initiator's ID body.
    fn hash_i(&self, h: Hash, keys: &Phase1Keys, idii_b: &[u8]) -> Vec<u8> {
        c1::hash_i(
            h,
            keys.skeyid.expose(),
            &self.gxi,
            &self.gxr,
            self.icookie,
            self.rcookie,
            &self.sai_b,
            idii_b,
        )
    }

    /// HASH_R, for the responder's ID body.
    fn hash_r(&self, h: Hash, keys: &Phase1Keys, idir_b: &[u8]) -> Vec<u8> {
        c1::hash_r(
            h,
            keys.skeyid.expose(),
            &self.gxr,
            &self.gxi,
            self.rcookie,
            self.icookie,
            &self.sai_b,
            idir_b,
        )
    }
}

/// An IPsec SA pair of a connection (one selector pair).
#[derive(Debug, Clone)]
struct Child {
    pair: usize,
    spi_in: u32,
    spi_out: u32,
    /// IPComp CPIs (ours, the peer's), when negotiated.
    ipcomp: Option<(u16, u16)>,
    suite: ChildSuite,
    local_ts: TsRange,
    remote_ts: TsRange,
    installed_at: Millis,
    rekey_at: Option<Millis>,
    expire_at: Option<Millis>,
    udp_encap: bool,
    active: bool,
    /// A newer SA for the pair exists.
    rekeyed: bool,
    /// We initiated the rekey that made this SA: when to start sending on
    /// it, and when to delete the SA it replaces (its inbound SPI).
    activate_at: Option<Millis>,
    delete_old: Option<(Millis, u32)>,
    /// We initiated its Quick Mode.
    ours: bool,
    /// Its Quick Mode is done here (ours: HASH(2) in; the peer's: HASH(3) in).
    complete: bool,
    /// The SA of the peer's Quick Mode that crossed ours ([`quick::Qm::twin`]).
    twin: Option<u32>,
    /// The lower of its Quick Mode's nonces: the lower of two twins loses.
    nonce_low: Vec<u8>,
    /// It lost to its twin: when it is deleted ([`DUPLICATE_DELETE`]).
    duplicate_delete_at: Option<Millis>,
    /// Its DELETE went out; it goes itself at `duplicate_delete_at`.
    delete_sent: bool,
}

/// Counters of what the engine refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct V1Stats {
    pub malformed: u64,
    pub unknown_cookie: u64,
    pub decrypt_failed: u64,
    pub hash_failed: u64,
    pub retransmits_answered: u64,
    /// Copies of a message we answered that came from another address or
    /// port than it did: not answered (a spoofed source would get our
    /// answer reflected at it).
    pub retransmits_refused: u64,
    /// First messages (MM1/AM1) that replaced the oldest unanswered
    /// half-open SA of their peer ([`MAX_HALF_OPEN_PER_PEER`], [`MAX_HALF_OPEN`]).
    pub half_open_replaced: u64,
    /// First messages refused: every half-open place held an SA whose peer
    /// had answered, or the message was larger than [`MAX_FIRST_MESSAGE`].
    pub half_open_refused: u64,
    /// AM1 refused by the Aggressive Mode DH rate limit ([`AM_DH_PER_PEER`]).
    pub am_dh_limited: u64,
    /// Authenticated Informational messages seen before under the same
    /// phase-1 SA (their M-ID), dropped.
    pub replayed: u64,
    /// Messages for one of the last [`RECENTLY_REMOVED`] phase-1 SAs we
    /// removed: a DELETE that crossed ours, a late retransmission.
    pub after_removal: u64,
    /// Both sides initiated at once: duplicate phase-1 or IPsec SAs of
    /// which one was kept ([`DUPLICATE_DELETE`]).
    pub duplicates_settled: u64,
}

pub struct Engine {
    conns: ConnTable<V1ConnSpec>,
    sas: SaTable<P1>,
    /// IPsec SAs per connection.
    children: Vec<Vec<Child>>,
    /// Quick Modes (pair, SA they rekey) waiting for one of the
    /// [`QM_IN_FLIGHT`] places, per connection.
    qm_waiting: Vec<VecDeque<(usize, Option<u32>)>>,
    rng: Box<dyn Rng + Send>,
    policy: RetransmitPolicy,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pub stats: V1Stats,
    /// The addresses the datagram being handled came on, when they differ
    /// from its SA's (a NAT-T float or a new NAT mapping, RFC 3947 §4):
    /// applied by [`Engine::authenticated`] once its HASH verified, never before.
    pending_addrs: Option<(SocketAddr, SocketAddr)>,
    /// The addresses the datagram being handled came on (local, remote):
    /// where the answer to it goes again if it is retransmitted.
    rx: (SocketAddr, SocketAddr),
    /// Aggressive Mode DH token buckets, per connection and for all.
    am_dh: Vec<Option<Bucket>>,
    am_dh_all: Option<Bucket>,
    /// The last [`P1::serial`] given.
    serial: u64,
    /// `sas` by initiator cookie (it never changes over an SA's life; the
    /// responder cookie is learned later), so a datagram's SA is found
    /// without scanning all of them. Kept by [`Engine::insert`] and
    /// [`Engine::clear`], the only places that fill or empty a slot.
    by_icookie: HashMap<u64, Vec<SaId>>,
    /// The cookies of the last [`RECENTLY_REMOVED`] phase-1 SAs removed.
    removed: VecDeque<(u64, u64)>,
}

/// The selector pairs of a connection, one Quick Mode each: exactly the
/// configured ones ([`ConnSpec::ts_pairs`]), or, when the spec names none,
/// every local × remote range of the same address family, in order.
pub fn pairs(spec: &ConnSpec) -> Vec<(TsRange, TsRange)> {
    let mut out = Vec::new();
    if !spec.ts_pairs.is_empty() {
        for p in &spec.ts_pairs {
            if !out.contains(p) {
                out.push(*p);
            }
        }
        return out;
    }
    for l in &spec.local_ts {
        for r in &spec.remote_ts {
            if l.start_address.is_ipv4() == r.start_address.is_ipv4() {
                out.push((*l, *r));
            }
        }
    }
    out
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

fn first(p: &[ParsedPayload], kind: u8) -> Option<&Payload> {
    p.iter().map(|x| &x.payload).find(|x| x.kind() == kind)
}

fn vids(p: &[ParsedPayload]) -> impl Iterator<Item = &[u8]> {
    p.iter().filter_map(|x| match &x.payload {
        Payload::VendorId(v) => Some(v.as_slice()),
        _ => None,
    })
}

fn plain(p: &[ParsedPayload]) -> Vec<Payload> {
    p.iter().map(|x| x.payload.clone()).collect()
}

/// Encrypt a payload chain into a message (RFC 2409 §5.3 padding); returns
/// the datagram and the last ciphertext block (the next IV).
fn seal(cipher: Cipher, key: &[u8], iv: &[u8], mut h: Header, chain: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let bl = cipher.block_len();
    let mut body = chain.to_vec();
    c1::pad(bl, &mut body);
    cipher.encrypt(key, iv, &mut body).ok()?;
    let last = body[body.len() - bl..].to_vec();
    h.flags |= FLAG_ENCRYPTION;
    h.length = (HEADER_LEN + body.len()) as u32;
    let mut out = Vec::with_capacity(h.length as usize);
    h.write(&mut out);
    out.extend_from_slice(&body);
    Some((out, last))
}

/// Decrypt a message body: the plaintext (padding included) and the last
/// ciphertext block.
fn open(cipher: Cipher, key: &[u8], iv: &[u8], data: &[u8], h: &Header) -> Option<(Vec<u8>, Vec<u8>)> {
    let bl = cipher.block_len();
    let end = (h.length as usize).min(data.len());
    let ct = data.get(HEADER_LEN..end)?;
    if ct.is_empty() || ct.len() % bl != 0 {
        return None;
    }
    let mut p = ct.to_vec();
    cipher.decrypt(key, iv, &mut p).ok()?;
    Some((p, ct[ct.len() - bl..].to_vec()))
}

/// A selector as an ID payload (RFC 2407 §4.6.2): one address, a subnet
/// when the range is a prefix, else a range.
pub fn ts_to_id(t: &TsRange) -> IdPayload {
    let port = if t.start_port == t.end_port { t.start_port } else { 0 };
    let (s, e) = (t.start_address, t.end_address);
    let v4 = s.is_ipv4();
    let bytes = |a: IpAddr| match a {
        IpAddr::V4(x) => x.octets().to_vec(),
        IpAddr::V6(x) => x.octets().to_vec(),
    };
    let (id_type, data) = if s == e {
        (if v4 { id_type::IPV4_ADDR } else { id_type::IPV6_ADDR }, bytes(s))
    } else if let Some(mask) = prefix_mask(s, e) {
        let mut d = bytes(s);
        d.extend_from_slice(&mask);
        (
            if v4 {
                id_type::IPV4_ADDR_SUBNET
            } else {
                id_type::IPV6_ADDR_SUBNET
            },
            d,
        )
    } else {
        let mut d = bytes(s);
        d.extend_from_slice(&bytes(e));
        (
            if v4 {
                id_type::IPV4_ADDR_RANGE
            } else {
                id_type::IPV6_ADDR_RANGE
            },
            d,
        )
    };
    IdPayload {
        id_type,
        protocol: t.ip_protocol.0,
        port,
        data,
    }
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(x) => u32::from(x) as u128,
        IpAddr::V6(x) => u128::from(x),
    }
}

/// The netmask when `s..=e` is exactly one prefix.
fn prefix_mask(s: IpAddr, e: IpAddr) -> Option<Vec<u8>> {
    let bits = if s.is_ipv4() { 32 } else { 128 };
    let (a, b) = (to_u128(s), to_u128(e));
    let host = a ^ b;
    // host bits must be a run of ones at the bottom, start all zeros there, end all ones.
    if host.wrapping_add(1) & host != 0 || a & host != 0 || b & host != host {
        return None;
    }
    let full: u128 = if bits == 32 { 0xffff_ffff } else { u128::MAX };
    let mask = full & !host;
    Some(if bits == 32 {
        (mask as u32).to_be_bytes().to_vec()
    } else {
        mask.to_be_bytes().to_vec()
    })
}

/// An ID payload as a selector; `None` for identities that are not addresses.
pub fn id_to_ts(id: &IdPayload) -> Option<TsRange> {
    let v4 = |b: &[u8]| -> Option<IpAddr> { Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)) };
    let v6 = |b: &[u8]| -> Option<IpAddr> { Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)) };
    let d = &id.data;
    let (s, e) = match id.id_type {
        id_type::IPV4_ADDR => (v4(d)?, v4(d)?),
        id_type::IPV6_ADDR => (v6(d)?, v6(d)?),
        id_type::IPV4_ADDR_SUBNET | id_type::IPV6_ADDR_SUBNET => {
            let n = d.len() / 2;
            if n != 4 && n != 16 || d.len() != 2 * n {
                return None;
            }
            let (a, m) = d.split_at(n);
            let start: Vec<u8> = a.iter().zip(m).map(|(x, y)| x & y).collect();
            let end: Vec<u8> = a.iter().zip(m).map(|(x, y)| x | !y).collect();
            if n == 4 {
                (v4(&start)?, v4(&end)?)
            } else {
                (v6(&start)?, v6(&end)?)
            }
        }
        id_type::IPV4_ADDR_RANGE => (v4(d.get(..4)?)?, v4(d.get(4..)?)?),
        id_type::IPV6_ADDR_RANGE => (v6(d.get(..16)?)?, v6(d.get(16..)?)?),
        _ => return None,
    };
    if (id.id_type == id_type::IPV4_ADDR_RANGE || id.id_type == id_type::IPV6_ADDR_RANGE) && s > e {
        return None;
    }
    let (sp, ep) = if id.port == 0 { (0, 65535) } else { (id.port, id.port) };
    Some(TsRange {
        ip_protocol: ikeda_wire::iana::IpProtocol(id.protocol),
        start_port: sp,
        end_port: ep,
        start_address: s,
        end_address: e,
    })
}

/// `inner` lies within `outer`.
fn within(inner: &TsRange, outer: &TsRange) -> bool {
    inner.start_address.is_ipv4() == outer.start_address.is_ipv4()
        && (outer.ip_protocol.0 == 0 || outer.ip_protocol == inner.ip_protocol)
        && outer.start_port <= inner.start_port
        && inner.end_port <= outer.end_port
        && outer.start_address <= inner.start_address
        && inner.end_address <= outer.end_address
}

/// The phase-1 transforms to offer: every combination of a proposal's
/// ciphers, PRFs (IKEv1's hash) and groups, in order.
fn p1_offers(spec: &ConnSpec) -> Vec<P1Choice> {
    let mut v = Vec::new();
    for p in &spec.ike_proposals {
        for &encr in &p.encr {
            let Ok(cipher) = Cipher::from_encr(encr) else { continue };
            for &prf in &p.prf {
                let hash = Hash::from_prf(prf);
                for &group in &p.dh {
                    let c = P1Choice {
                        cipher,
                        hash,
                        group,
                        encr,
                        prf,
                    };
                    if !v.contains(&c) {
                        v.push(c);
                    }
                }
            }
        }
    }
    v
}

fn p1_transform(number: u8, c: &P1Choice, life: Duration) -> Transform {
    let mut a = vec![Attribute::basic(p1_attr::ENCRYPTION_ALGORITHM, c.cipher.attr_value())];
    if let Some(bits) = c.cipher.key_length_attr() {
        a.push(Attribute::basic(p1_attr::KEY_LENGTH, bits));
    }
    a.push(Attribute::basic(p1_attr::HASH_ALGORITHM, c.hash.attr_value()));
    a.push(Attribute::basic(p1_attr::AUTHENTICATION_METHOD, p1_attr::AUTH_PSK));
    a.push(Attribute::basic(p1_attr::GROUP_DESCRIPTION, c.group.transform_id()));
    a.push(Attribute::basic(p1_attr::LIFE_TYPE, p1_attr::LIFE_SECONDS));
    a.push(Attribute::number(p1_attr::LIFE_DURATION, life.as_secs()));
    Transform {
        number,
        id: transform_id::KEY_IKE,
        attributes: a,
    }
}

/// An attribute of a class whose values are 16-bit numbers; a value that
/// does not fit refuses the whole transform instead of being truncated.
fn attr_u16(t: &Transform, kind: u16, what: &str) -> Result<Option<u16>, String> {
    match t.attributes.iter().find(|a| a.kind == kind) {
        None => Ok(None),
        Some(a) => a.as_u16().map(Some).ok_or_else(|| format!("{what} value out of range")),
    }
}

/// A phase-1 transform as offered: the algorithms and lifetime, or why not.
fn parse_p1_transform(t: &Transform) -> Result<(P1Choice, Option<u64>), String> {
    let get = |k: u16| t.attributes.iter().find(|a| a.kind == k).and_then(Attribute::as_u64);
    let get16 = |k: u16, what: &'static str| attr_u16(t, k, what);
    let enc = get16(p1_attr::ENCRYPTION_ALGORITHM, "encryption algorithm")?.ok_or("no encryption algorithm")?;
    let key_len = get16(p1_attr::KEY_LENGTH, "key length")?;
    let cipher = Cipher::from_attrs(enc, key_len).map_err(|e| e.to_string())?;
    let hash = Hash::from_attr_value(get16(p1_attr::HASH_ALGORITHM, "hash algorithm")?.ok_or("no hash algorithm")?)
        .ok_or("unknown hash algorithm")?;
    let auth = get16(p1_attr::AUTHENTICATION_METHOD, "authentication method")?.ok_or("no authentication method")?;
    if auth != p1_attr::AUTH_PSK {
        return Err(format!("authentication method {auth} (only pre-shared keys)"));
    }
    let group = DhGroup::from_transform_id(get16(p1_attr::GROUP_DESCRIPTION, "group")?.ok_or("no group")?)
        .ok_or("unknown group")?;
    let life = match get(p1_attr::LIFE_TYPE) {
        Some(t) if t == p1_attr::LIFE_SECONDS as u64 => get(p1_attr::LIFE_DURATION),
        _ => None,
    };
    Ok((
        P1Choice {
            cipher,
            hash,
            group,
            encr: encr_for(cipher),
            prf: prf_for(hash),
        },
        life,
    ))
}

fn choice_name(c: &P1Choice) -> String {
    format!("{}/{}/{}", c.encr.name(), integ_for(c.hash).name(), c.group.name())
}

impl Engine {
    pub fn new(conns: Vec<V1ConnSpec>, rng: Box<dyn Rng + Send>) -> Engine {
        let n = conns.len();
        Engine {
            conns: ConnTable::new(conns),
            sas: SaTable::new(),
            children: vec![Vec::new(); n],
            qm_waiting: vec![VecDeque::new(); n],
            rng,
            policy: RetransmitPolicy::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: V1Stats::default(),
            pending_addrs: None,
            rx: (
                SocketAddr::new(IpAddr::from([0u8; 4]), 0),
                SocketAddr::new(IpAddr::from([0u8; 4]), 0),
            ),
            am_dh: vec![None; n],
            am_dh_all: None,
            serial: 0,
            by_icookie: HashMap::new(),
            removed: VecDeque::with_capacity(RECENTLY_REMOVED),
        }
    }

    pub fn set_retransmit_policy(&mut self, p: RetransmitPolicy) {
        self.policy = p;
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn conn_names(&self) -> impl Iterator<Item = &str> {
        self.conns.names()
    }

    fn conn_index(&self, name: &str) -> Option<ConnId> {
        self.conns.find(name)
    }

    pub fn conn(&self, name: &str) -> Option<&V1ConnSpec> {
        self.conn_index(name).map(|i| &self.conns[i])
    }

    /// Add or replace a connection (reload); a replaced one is torn down by
    /// the caller first.
    pub fn set_conn(&mut self, spec: V1ConnSpec) {
        if self.conns.set(spec).is_some() {
            self.children.push(Vec::new());
            self.qm_waiting.push(VecDeque::new());
            self.am_dh.push(None);
        }
    }

    pub fn retire_conn(&mut self, name: &str) {
        self.conns.retire(name);
    }

    /// A phase-1 SA of this connection is up or being set up.
    pub fn is_active(&self, conn: &str) -> bool {
        self.sas.iter().any(|s| self.conns[s.conn].spec.name == conn)
    }

    /// Renew the connection's phase-1 SA now (`ikeda rekey --ike`): as at
    /// its rekey time, a fresh Main or Aggressive Mode replaces it and the
    /// old one is deleted once the new one is up; its Quick Mode SAs stay.
    pub fn rekey_ike(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        let ci = self.conn_index(conn).ok_or_else(|| format!("no connection '{conn}'"))?;
        let idx = self
            .current(ci)
            .ok_or_else(|| format!("'{conn}' has no phase-1 SA up to rekey"))?;
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.rekey_at = Some(now);
        }
        Ok(())
    }

    fn random_u64(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let v = u64::from_be_bytes(b);
            if v != 0 {
                return v;
            }
        }
    }

    fn random_u32(&mut self) -> u32 {
        crate::random_spi32(&mut *self.rng)
    }

    /// A CPI from the range RFC 3173 §3.3 leaves for negotiation.
    fn random_cpi(&mut self) -> u16 {
        let mut b = [0u8; 2];
        self.rng.fill(&mut b);
        256 + (u16::from_be_bytes(b) % (61440 - 256))
    }

    fn nonce(&mut self) -> Vec<u8> {
        let mut n = vec![0u8; 32];
        self.rng.fill(&mut n);
        n
    }

    fn log(&mut self, conn: ConnId, line: String) {
        self.events.push_back(Event::Log {
            conn: self.conns[conn].spec.name.clone(),
            line,
        });
    }

    fn fail(&mut self, conn: ConnId, why: Failure) {
        self.events.push_back(Event::Failed {
            conn: self.conns[conn].spec.name.clone(),
            why,
        });
    }

    fn insert(&mut self, mut sa: P1) -> SaId {
        self.serial += 1;
        sa.serial = self.serial;
        let icookie = sa.icookie;
        let idx = self.sas.insert(sa);
        self.by_icookie.entry(icookie).or_default().push(idx);
        idx
    }

    /// Empty a slot, keeping [`Engine::by_icookie`] in step.
    fn clear(&mut self, idx: SaId) -> Option<P1> {
        let sa = self.sas.take(idx)?;
        if self.removed.len() == RECENTLY_REMOVED {
            self.removed.pop_front();
        }
        self.removed.push_back((sa.icookie, sa.rcookie));
        if let Some(v) = self.by_icookie.get_mut(&sa.icookie) {
            v.retain(|&i| i != idx);
            if v.is_empty() {
                self.by_icookie.remove(&sa.icookie);
            }
        }
        Some(sa)
    }

    /// The first SA with this initiator cookie that `pred` accepts.
    fn find_by_icookie(&self, icookie: u64, pred: impl Fn(&P1) -> bool) -> Option<SaId> {
        self.by_icookie
            .get(&icookie)?
            .iter()
            .copied()
            .find(|&i| self.sas.get(i).is_some_and(&pred))
    }

    /// Drop a phase-1 SA (its IPsec SAs stay: they belong to the connection,
    /// but for those of Quick Modes we answered and that cannot finish now:
    /// installed inbound, never sent on).
    fn remove(&mut self, idx: SaId, reason: &str) {
        if let Some(sa) = self.clear(idx) {
            let name = self.conns[sa.conn].spec.name.clone();
            // Our unanswered Quick Modes on it go again on the next one.
            if !self.conns.is_retired(sa.conn) {
                for q in sa
                    .qms
                    .iter()
                    .filter(|q| q.initiator && q.state == quick::QmState::ISent)
                {
                    self.queue_quick_mode(sa.conn, q.pair, q.rekey_of);
                }
            }
            for q in sa.qms.iter().filter(|q| !q.initiator && !q.done()) {
                if let Some(k) = self.children[sa.conn]
                    .iter()
                    .position(|c| c.spi_in == q.spi_in && !c.active)
                {
                    let c = self.children[sa.conn].remove(k);
                    self.events.push_back(Event::ChildSaDown {
                        conn: name.clone(),
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                    });
                }
            }
            if sa.state == P1State::Established {
                self.events.push_back(Event::IkeSaDown {
                    conn: self.conns[sa.conn].spec.name.clone(),
                    spi_i: sa.icookie,
                    spi_r: sa.rcookie,
                    reason: reason.into(),
                });
            }
        }
    }

    /// Drop every IPsec SA of a connection (dead peer, INITIAL-CONTACT, terminate).
    fn drop_children(&mut self, conn: ConnId) {
        let name = self.conns[conn].spec.name.clone();
        for c in std::mem::take(&mut self.children[conn]) {
            self.events.push_back(Event::ChildSaDown {
                conn: name.clone(),
                spi_in: c.spi_in,
                spi_out: c.spi_out,
            });
        }
    }

    fn send(&mut self, idx: SaId, data: Vec<u8>) {
        let Some(sa) = self.sas.get(idx) else { return };
        self.transmits.push_back(Transmit {
            local: sa.local,
            remote: sa.remote,
            data,
        });
    }

    /// Send our phase-1 message that waits for the peer's next (it replaces
    /// the one before), kept for resending.
    fn send_outstanding(&mut self, idx: SaId, now: Millis, data: Vec<u8>, what: Exchange) {
        let policy = self.policy;
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.tm.request(0, what, (), data.clone(), now, &policy);
        }
        self.send(idx, data);
    }

    /// The peer's message `data` of exchange `mid` (the one being handled)
    /// is accepted, answered with `reply` if any: a retransmission of it is
    /// answered with the same reply, or dropped when there is none.
    fn accepted(&mut self, idx: SaId, mid: u32, data: &[u8], reply: Option<&[u8]>) {
        let (local, remote) = self.rx;
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.tm.accepted(mid, data, local, remote);
            if let Some(r) = reply {
                sa.tm.answered(mid, r.to_vec());
            }
        }
    }

    /// A message of exchange `mid` seen before (RFC 2409 has no counter: by
    /// its bytes): answered again, to where it came from, if we answered
    /// it; dropped otherwise, or when it comes from elsewhere. False: a new
    /// message, to be processed.
    fn seen_before(&mut self, idx: SaId, mid: u32, data: &[u8]) -> bool {
        let (local, remote) = self.rx;
        let Some(sa) = self.sas.get(idx) else { return true };
        match sa.tm.check_request(mid, data, local, remote) {
            Incoming::New | Incoming::OutOfWindow => return false,
            Incoming::Again(t) => {
                self.stats.retransmits_answered += 1;
                self.transmits.push_back(t);
            }
            Incoming::Refused => self.stats.retransmits_refused += 1,
            Incoming::Seen => {}
        }
        true
    }

    /// An encrypted phase-1 message of ours (MM5, MM6, AM3): `payloads`
    /// sealed on the phase-1 IV chain (RFC 2409 App. B), logged, and the
    /// chain moved on to the message's last block.
    fn seal_p1(&mut self, idx: SaId, exchange: ExchangeType, request: bool, payloads: &[Payload]) -> Option<Vec<u8>> {
        let mut hh = self.header(idx, exchange, 0);
        hh.next_payload = payloads.first()?.kind();
        let sa = self.sas.get(idx)?;
        let (c, keys) = (sa.choice?, sa.keys.as_ref()?);
        let (d, last) = seal(c.cipher, keys.enc_key.expose(), &sa.iv, hh, &write_payloads(payloads))?;
        self.log_msg(idx, true, exchange, 0, request, payloads);
        self.sas.get_mut(idx)?.iv = last;
        Some(d)
    }

    fn header(&self, idx: SaId, exchange: ExchangeType, message_id: u32) -> Header {
        let sa = self.sas.get(idx).expect("live SA");
        Header {
            icookie: sa.icookie,
            rcookie: sa.rcookie,
            next_payload: 0,
            version: ISAKMP_VERSION,
            exchange,
            flags: 0,
            message_id,
            length: 0,
        }
    }

    fn log_msg(&mut self, idx: SaId, sending: bool, exchange: ExchangeType, mid: u32, request: bool, p: &[Payload]) {
        let Some(sa) = self.sas.get(idx) else { return };
        let (conn, remote) = (sa.conn, sa.remote);
        let line = format!(
            "{} {} {} {} {} {}",
            if sending { "sending" } else { "received" },
            exchange.name(),
            if request { "request" } else { "response" },
            mid,
            summary(p),
            if sending {
                format!("to {remote}")
            } else {
                format!("from {remote}")
            }
        );
        self.log(conn, line);
    }

    // ---- initiating -------------------------------------------------------

    /// Bring the connection up: phase 1 (Main Mode, or Aggressive Mode when
    /// configured) with the Quick Modes once it is established; or, when a
    /// phase-1 SA is up already (the peer's, say, that came first: a second
    /// would be a duplicate), a Quick Mode on it for each selector pair
    /// without an SA.
    pub fn initiate(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        let ci = self.conn_index(conn).ok_or_else(|| format!("no connection '{conn}'"))?;
        match self.current(ci) {
            Some(idx) => self.start_missing_quick_modes(idx, now),
            None => {
                self.start_phase1(ci, now);
            }
        }
        Ok(())
    }

    fn start_phase1(&mut self, ci: ConnId, now: Millis) {
        let c = self.conns[ci].clone();
        let offers = p1_offers(&c.spec);
        let life = if c.spec.timers.ike_lifetime.is_zero() {
            DEFAULT_P1_LIFE
        } else {
            c.spec.timers.ike_lifetime
        };
        let sa_payload = SaPayload {
            doi: doi::IPSEC,
            situation: doi::SIT_IDENTITY_ONLY,
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ISAKMP,
                spi: Vec::new(),
                transforms: offers
                    .iter()
                    .enumerate()
                    .map(|(k, o)| p1_transform(k as u8 + 1, o, life))
                    .collect(),
            }],
        };
        let sai = Payload::Sa(sa_payload);
        let icookie = self.random_u64();
        let mut sa = P1::new(
            ci,
            (icookie, 0),
            if c.aggressive { P1State::AmI1 } else { P1State::MmI1 },
            (
                SocketAddr::new(c.spec.local, IKE_PORT),
                SocketAddr::new(c.spec.remote, IKE_PORT),
            ),
            now,
        );
        sa.sai_b = sai.encode_body();
        let mut payloads = vec![sai];
        if c.aggressive {
            // The group is the first offered one: Aggressive Mode sends KE
            // before the responder has chosen (RFC 2409 §5.4).
            let group = offers.first().map(|o| o.group).unwrap_or(DhGroup::Modp2048);
            let kex = match KeyExchange::generate(group, &mut *self.rng) {
                Ok(k) => k,
                Err(e) => {
                    self.fail(ci, Failure::Local(format!("key exchange: {e}")));
                    return;
                }
            };
            let ni = self.nonce();
            let id = id_payload(&c.spec.local_id);
            sa.gxi = kex.public_value().to_vec();
            sa.ni = ni.clone();
            sa.idii_b = Payload::Id(id.clone()).encode_body();
            payloads.push(Payload::Ke(sa.gxi.clone()));
            payloads.push(Payload::Nonce(ni));
            payloads.push(Payload::Id(id));
            sa.kex = Some(kex);
            self.log(
                ci,
                "Aggressive Mode: our identity goes out in the clear and HASH_R lets an observer test \
                 PSK guesses offline"
                    .into(),
            );
        }
        payloads.extend(our_vids());
        sa.replaces = self.sas.iter().any(|s| s.conn == ci && s.state == P1State::Established);
        let idx = self.insert(sa);
        let h = self.header(
            idx,
            if c.aggressive {
                ExchangeType::AGGRESSIVE
            } else {
                ExchangeType::IDENTITY_PROTECTION
            },
            0,
        );
        let data = Message::build(&h, &payloads);
        self.log_msg(idx, true, h.exchange, 0, true, &payloads);
        self.send_outstanding(
            idx,
            now,
            data,
            if c.aggressive {
                Exchange::Aggressive
            } else {
                Exchange::IdProt
            },
        );
    }

    /// Delete every SA of a connection, telling the peer.
    pub fn terminate(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        let ci = self.conn_index(conn).ok_or_else(|| format!("no connection '{conn}'"))?;
        let _ = now;
        if let Some(idx) = self.current(ci) {
            let spis: Vec<u32> = self.children[ci].iter().map(|c| c.spi_in).collect();
            for s in spis {
                self.send_delete_esp(idx, s);
            }
            self.send_delete_isakmp(idx);
        }
        self.drop_children(ci);
        for idx in self.sas.ids() {
            if self.sas.get(idx).is_some_and(|s| s.conn == ci) {
                self.remove(idx, "deleted by us");
            }
        }
        self.qm_waiting[ci].clear();
        Ok(())
    }

    /// The newest established phase-1 SA of a connection.
    fn current(&self, ci: ConnId) -> Option<SaId> {
        self.sas
            .ids()
            .filter(|&i| {
                self.sas
                    .get(i)
                    .is_some_and(|s| s.conn == ci && s.state == P1State::Established && !s.superseded)
            })
            .max_by_key(|&i| self.sas.get(i).and_then(|s| s.established_at))
    }

    // ---- receiving --------------------------------------------------------

    /// Feed a received ISAKMP datagram (without the non-ESP marker).
    pub fn handle_datagram(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let queued = self.transmits.len();
        self.receive(now, local, remote, data);
        // A Quick Mode that finished makes room for a waiting one.
        self.start_waiting_quick_modes(now);
        self.note_sent(queued, now);
    }

    /// See [`crate::keepalive::note_sent`].
    fn note_sent(&mut self, from: usize, now: Millis) {
        crate::keepalive::note_sent(&self.transmits, from, now, self.sas.iter_mut());
    }

    fn receive(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.pending_addrs = None;
        self.rx = (local, remote);
        let h = match Header::parse(data) {
            Ok(h) => h,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        let data = &data[..(h.length as usize).min(data.len())];
        let found = self.find_by_icookie(h.icookie, |s| s.rcookie == h.rcookie || (s.initiator && s.rcookie == 0));
        let Some(idx) = found else {
            if h.rcookie == 0
                && (h.exchange == ExchangeType::IDENTITY_PROTECTION || h.exchange == ExchangeType::AGGRESSIVE)
            {
                self.responder_start(now, local, remote, data, &h);
            } else if self.removed.contains(&(h.icookie, h.rcookie)) {
                self.stats.after_removal += 1;
            } else {
                self.stats.unknown_cookie += 1;
            }
            return;
        };
        // A retransmission of what we already answered: answer again.
        if self.seen_before(idx, h.message_id, data) {
            return;
        }
        if let Some(sa) = self.sas.get_mut(idx) {
            // The peer floated to 4500 (RFC 3947 §4), or its NAT mapping moved.
            if sa.remote != remote || sa.local != local {
                if local.port() == NAT_T_PORT && (sa.nat_local || sa.nat_remote) {
                    self.pending_addrs = Some((local, remote));
                } else if sa.state != P1State::Established || local.port() != NAT_T_PORT {
                    // Only phase-1 messages on the addresses we know.
                    if sa.remote.ip() != remote.ip() {
                        self.stats.unknown_cookie += 1;
                        return;
                    }
                }
            }
        }
        match h.exchange {
            ExchangeType::IDENTITY_PROTECTION | ExchangeType::AGGRESSIVE => self.phase1(idx, now, data, &h),
            ExchangeType::QUICK_MODE => self.quick_mode(idx, now, data, &h),
            ExchangeType::INFORMATIONAL => self.informational(idx, now, data, &h),
            _ => self.stats.malformed += 1,
        }
    }

    /// Half-open phase-1 SAs, either role.
    pub fn half_open(&self) -> usize {
        self.sas.iter().filter(|s| s.half_open()).count()
    }

    /// The octets of messages the half-open phase-1 SAs keep.
    pub fn half_open_bytes(&self) -> usize {
        self.sas.iter().filter(|s| s.half_open()).map(P1::held_bytes).sum()
    }

    /// Make a place for a new responder phase-1 SA with `peer`: within
    /// [`MAX_HALF_OPEN_PER_PEER`] and [`MAX_HALF_OPEN`], replacing the
    /// oldest unproven half-open SA (of this peer when its bound is the
    /// one reached). `false` when every place is held by SAs whose peer
    /// answered: the new first message is refused.
    fn make_room(&mut self, peer: IpAddr) -> bool {
        let (mut all, mut mine) = (0, 0);
        // (serial, index) of the oldest unproven SA overall and of this peer.
        let mut oldest_all: Option<(u64, SaId)> = None;
        let mut oldest_mine: Option<(u64, SaId)> = None;
        for (i, sa) in self.sas.entries().filter(|(_, s)| s.half_open()) {
            let same = sa.remote.ip() == peer;
            all += 1;
            mine += usize::from(same);
            if sa.unproven() {
                let older = |o: Option<(u64, SaId)>| o.is_none_or(|(n, _)| sa.serial < n);
                if older(oldest_all) {
                    oldest_all = Some((sa.serial, i));
                }
                if same && older(oldest_mine) {
                    oldest_mine = Some((sa.serial, i));
                }
            }
        }
        let victim = if mine >= MAX_HALF_OPEN_PER_PEER {
            oldest_mine
        } else if all >= MAX_HALF_OPEN {
            oldest_all
        } else {
            return true;
        };
        let Some((_, i)) = victim else { return false };
        self.clear(i);
        self.stats.half_open_replaced += 1;
        true
    }

    /// The message being handled has verified (its HASH): only now may it
    /// move the SA to the addresses it came on.
    fn authenticated(&mut self, idx: SaId) {
        if let (Some((local, remote)), Some(sa)) = (self.pending_addrs.take(), self.sas.get_mut(idx)) {
            sa.local = local;
            sa.remote = remote;
        }
    }

    /// The transform of the peer's phase-1 offer we accept (RFC 2409 §5:
    /// one proposal, its transforms are alternatives), or an unprotected
    /// NO_PROPOSAL_CHOSEN (RFC 2408 §5.5) so the peer learns why.
    fn p1_choose(
        &mut self,
        idx: SaId,
        msg: &Message,
        aggressive: bool,
        icookie: u64,
    ) -> Option<(u8, Transform, P1Choice)> {
        let ci = self.sas.get(idx)?.conn;
        let Some(Payload::Sa(offer)) = first(&msg.payloads, pt::SA).cloned() else {
            self.stats.malformed += 1;
            return None;
        };
        let ours = p1_offers(&self.conns[ci].spec);
        let mut chosen = None;
        let mut offered_names = Vec::new();
        for prop in offer.proposals.iter().filter(|p| p.protocol == protocol::ISAKMP) {
            for t in &prop.transforms {
                match parse_p1_transform(t) {
                    Ok((c, life)) => {
                        offered_names.push(choice_name(&c));
                        if chosen.is_none() && ours.contains(&c) {
                            chosen = Some((prop.number, t.clone(), c, life));
                        }
                    }
                    Err(e) => offered_names.push(format!("({e})")),
                }
            }
        }
        let Some((pnum, t, c, _life)) = chosen else {
            let accepted: Vec<String> = ours.iter().map(choice_name).collect();
            self.fail(
                ci,
                Failure::NoProposalChosen {
                    exchange: if aggressive { "AGGRESSIVE" } else { "ID_PROT" },
                    offered: offered_names.join(", "),
                    accepted: accepted.join(", "),
                },
            );
            // An unprotected notification (RFC 2408 §5.5): the peer learns why.
            let n = Payload::Notify(NotifyPayload {
                doi: doi::IPSEC,
                protocol: protocol::ISAKMP,
                spi: [icookie.to_be_bytes(), 0u64.to_be_bytes()].concat(),
                notify_type: notify::NO_PROPOSAL_CHOSEN,
                data: Vec::new(),
            });
            let mut nh = self.header(idx, ExchangeType::INFORMATIONAL, 0);
            nh.rcookie = 0;
            let d = Message::build(&nh, std::slice::from_ref(&n));
            self.log_msg(idx, true, ExchangeType::INFORMATIONAL, 0, true, &[n]);
            self.send(idx, d);
            return None;
        };
        Some((pnum, t, c))
    }

    fn responder_start(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8], h: &Header) {
        // A retransmitted first message of a phase 1 we answered.
        if let Some(idx) = self.find_by_icookie(h.icookie, |s| !s.initiator && s.remote.ip() == remote.ip()) {
            // Our answer was lost: the same answer again (a new one would
            // carry another responder cookie). Anything else is dropped.
            self.seen_before(idx, 0, data);
            return;
        }
        // By address, and of the mode the peer started, if there is one (the
        // peer's identity, in MM5 or AM1, may still choose a sibling:
        // `sibling_for_id`).
        let aggressive = h.exchange == ExchangeType::AGGRESSIVE;
        let by_addr = |i: &ConnId| self.conns[*i].spec.remote == remote.ip() && self.conns[*i].spec.local == local.ip();
        let Some(ci) = self
            .conns
            .live()
            .filter(by_addr)
            .find(|&i| self.conns[i].aggressive == aggressive)
            .or_else(|| self.conns.live().find(by_addr))
        else {
            self.stats.unknown_cookie += 1;
            return;
        };
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if aggressive != self.conns[ci].aggressive {
            self.fail(
                ci,
                Failure::Incompatible(format!(
                    "peer started {} but this connection is configured for {}",
                    if aggressive { "Aggressive Mode" } else { "Main Mode" },
                    if self.conns[ci].aggressive {
                        "Aggressive Mode"
                    } else {
                        "Main Mode"
                    }
                )),
            );
            return;
        }
        if data.len() > MAX_FIRST_MESSAGE {
            self.stats.half_open_refused += 1;
            return;
        }
        if aggressive && !self.am_dh_allowed(ci, now) {
            self.stats.am_dh_limited += 1;
            return;
        }
        if !self.make_room(remote.ip()) {
            self.stats.half_open_refused += 1;
            return;
        }
        let rcookie = self.random_u64();
        let state = if aggressive { P1State::AmR1 } else { P1State::MmR1 };
        let mut sa = P1::new(ci, (h.icookie, rcookie), state, (local, remote), now);
        // Until HASH_I verifies: the task manager's half-open rule, fixed
        // whatever the retransmission settings, so a spoofed MM1 holds its
        // place no longer than a real exchange needs.
        sa.tm.half_open(now);
        let idx = self.insert(sa);
        let payloads = plain(&msg.payloads);
        self.log_msg(idx, false, h.exchange, 0, true, &payloads);
        let Some((pnum, t, c)) = self.p1_choose(idx, &msg, aggressive, h.icookie) else {
            self.clear(idx);
            return;
        };
        let sai_b = msg
            .payloads
            .iter()
            .find(|p| p.payload.kind() == pt::SA)
            .map(|p| data[HEADER_LEN + p.body.start..HEADER_LEN + p.body.end].to_vec())
            .unwrap_or_default();
        {
            let Some(sa) = self.sas.get_mut(idx) else { return };
            sa.choice = Some(c);
            sa.sai_b = sai_b;
            sa.peer_vendor_ids(&msg.payloads);
        }
        let reply_sa = Payload::Sa(SaPayload {
            doi: doi::IPSEC,
            situation: doi::SIT_IDENTITY_ONLY,
            proposals: vec![Proposal {
                number: pnum,
                protocol: protocol::ISAKMP,
                spi: Vec::new(),
                transforms: vec![t],
            }],
        });
        if aggressive {
            self.aggressive_responder(idx, now, data, &msg, reply_sa);
            return;
        }
        let mut payloads = vec![reply_sa];
        payloads.extend(our_vids());
        let rh = self.header(idx, ExchangeType::IDENTITY_PROTECTION, 0);
        let d = Message::build(&rh, &payloads);
        self.log_msg(idx, true, rh.exchange, 0, false, &payloads);
        self.accepted(idx, 0, data, Some(&d));
        self.send(idx, d);
    }

    /// NAT-D payloads for a phase-1 SA: the peer's address first, then ours
    /// (RFC 3947 §3.2).
    fn nat_d(&self, idx: SaId) -> Vec<Payload> {
        let Some(sa) = self.sas.get(idx) else {
            return Vec::new();
        };
        let Some(h) = sa.hash() else { return Vec::new() };
        vec![
            Payload::NatD(c1::nat_d(h, sa.icookie, sa.rcookie, sa.remote)),
            Payload::NatD(c1::nat_d(h, sa.icookie, sa.rcookie, sa.local)),
        ]
    }

    /// Compare the peer's NAT-D payloads with what we see (RFC 3947 §3.2):
    /// the first hashes our address as the peer saw it, the others its own.
    fn check_nat_d(&mut self, idx: SaId, p: &[ParsedPayload]) {
        let Some(sa) = self.sas.get(idx) else { return };
        let Some(h) = sa.hash() else { return };
        let nds: Vec<&Vec<u8>> = p
            .iter()
            .filter_map(|x| match &x.payload {
                Payload::NatD(d) => Some(d),
                _ => None,
            })
            .collect();
        if nds.is_empty() || !sa.peer_nat_t {
            return;
        }
        let ours = c1::nat_d(h, sa.icookie, sa.rcookie, sa.local);
        let theirs = c1::nat_d(h, sa.icookie, sa.rcookie, sa.remote);
        let nat_local = *nds[0] != ours;
        let nat_remote = !nds[1..].iter().any(|d| **d == theirs);
        let conn = sa.conn;
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.nat_local = nat_local;
            sa.nat_remote = nat_remote;
        }
        if nat_local || nat_remote {
            self.log(
                conn,
                format!(
                    "NAT detected ({}): floating to UDP {NAT_T_PORT}",
                    match (nat_local, nat_remote) {
                        (true, true) => "both behind NAT",
                        (true, false) => "we are behind a NAT",
                        _ => "the peer is behind a NAT",
                    }
                ),
            );
        }
    }

    /// Move to port 4500 after NAT-D showed a NAT (RFC 3947 §4).
    fn float(&mut self, idx: SaId) {
        if let Some(sa) = self.sas.get_mut(idx) {
            if (sa.nat_local || sa.nat_remote) && sa.local.port() != NAT_T_PORT {
                sa.local.set_port(NAT_T_PORT);
                if sa.remote.port() == IKE_PORT {
                    sa.remote.set_port(NAT_T_PORT);
                }
            }
        }
    }

    fn phase1(&mut self, idx: SaId, now: Millis, data: &[u8], h: &Header) {
        let Some(state) = self.sas.get(idx).map(|s| s.state) else {
            return;
        };
        match state {
            P1State::MmI1 => self.mm_i2(idx, now, data, h),
            P1State::MmR1 => self.mm_r2(idx, now, data, h),
            P1State::MmI2 => self.mm_i3(idx, now, data, h),
            P1State::MmR2 => self.mm_r3(idx, now, data, h),
            P1State::MmI3 => self.mm_i_done(idx, now, data, h),
            P1State::AmI1 => self.am_i2(idx, now, data, h),
            P1State::AmR1 => self.am_r_done(idx, now, data, h),
            P1State::Established => {
                // A late retransmission of the peer's last phase-1 message
                // when ours was lost: answered from the task manager's
                // cache before this; anything else is stale.
            }
        }
    }

    /// Parse an unencrypted phase-1 message from the peer, logged.
    fn clear_msg(&mut self, idx: SaId, data: &[u8], h: &Header, request: bool) -> Option<Message> {
        if h.flags & FLAG_ENCRYPTION != 0 {
            self.stats.malformed += 1;
            return None;
        }
        let m = match Message::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return None;
            }
        };
        let p = plain(&m.payloads);
        self.log_msg(idx, false, h.exchange, h.message_id, request, &p);
        Some(m)
    }

    /// SKEYID and friends, once both KEs and nonces are in (RFC 2409 §5).
    fn derive(&mut self, idx: SaId) -> bool {
        match self.phase1_keys(idx) {
            Ok(keys) => {
                self.install_keys(idx, keys);
                true
            }
            Err(e) => {
                if let Some(conn) = self.sas.get(idx).map(|s| s.conn) {
                    self.fail(conn, Failure::PeerMisbehaved(format!("peer's KE refused: {e}")));
                }
                self.remove(idx, "bad KE");
                false
            }
        }
    }

    /// The phase-1 keys from what the SA holds, with no effect on it: an
    /// Aggressive Mode initiator tries them on AM2's HASH_R before it acts.
    fn phase1_keys(&self, idx: SaId) -> Result<Phase1Keys, String> {
        let Some(sa) = self.sas.get(idx) else {
            return Err("no SA".into());
        };
        let (Some(c), Some(kex)) = (sa.choice, sa.kex.as_ref()) else {
            return Err("no transform or key exchange yet".into());
        };
        let peer = if sa.initiator { &sa.gxr } else { &sa.gxi };
        let gxy = kex.shared_secret(peer).map_err(|e| e.to_string())?;
        let psk = &self.conns[sa.conn].spec.psk;
        Ok(c1::phase1_keys_psk(&c1::Phase1Input {
            hash: c.hash,
            cipher: c.cipher,
            psk: psk.expose(),
            ni: &sa.ni,
            nr: &sa.nr,
            gxy: gxy.expose(),
            cky_i: sa.icookie,
            cky_r: sa.rcookie,
            gxi: &sa.gxi,
            gxr: &sa.gxr,
        }))
    }

    /// The key-export event of a phase-1 SA with these keys.
    fn key_info(&self, idx: SaId, keys: &Phase1Keys, phase1_last_block: Option<Vec<u8>>) -> Option<Event> {
        let sa = self.sas.get(idx)?;
        let c = sa.choice?;
        Some(Event::Ikev1Keys(crate::V1KeyInfo {
            conn: self.conns[sa.conn].spec.name.clone(),
            icookie: sa.icookie,
            rcookie: sa.rcookie,
            initiator: sa.initiator,
            suite: c.suite(),
            skeyid: keys.skeyid.clone(),
            skeyid_d: keys.skeyid_d.clone(),
            skeyid_a: keys.skeyid_a.clone(),
            skeyid_e: keys.skeyid_e.clone(),
            enc_key: keys.enc_key.clone(),
            iv: keys.iv.clone(),
            phase1_last_block,
            local: sa.local,
            remote: sa.remote,
        }))
    }

    /// Keys in use: exported (key log) and the CBC chain starts.
    fn install_keys(&mut self, idx: SaId, keys: Phase1Keys) {
        let Some(info) = self.key_info(idx, &keys, None) else {
            return;
        };
        self.events.push_back(info);
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.iv = keys.iv.clone();
            sa.keys = Some(keys);
            sa.kex = None;
        }
    }

    /// Decrypt a phase-1 message on the phase-1 IV chain: the payloads, the
    /// plaintext and the last ciphertext block, which the caller makes the
    /// next IV only once the message's HASH verified. A message that does
    /// not decrypt to payloads changes nothing (anyone who saw the cookies
    /// can send one); it is counted and remembered for the failure report.
    fn open_p1(&mut self, idx: SaId, data: &[u8], h: &Header) -> Option<(Vec<ParsedPayload>, Vec<u8>, Vec<u8>)> {
        let sa = self.sas.get(idx)?;
        let (c, keys) = (sa.choice?, sa.keys.as_ref()?);
        if h.flags & FLAG_ENCRYPTION == 0 {
            self.stats.malformed += 1;
            return None;
        }
        let opened = open(c.cipher, keys.enc_key.expose(), &sa.iv, data, h)
            .and_then(|(b, last)| parse_payloads(h.next_payload, &b).ok().map(|(p, _)| (p, b, last)));
        if opened.is_none() {
            self.stats.decrypt_failed += 1;
            self.unreadable(idx);
        }
        opened
    }

    /// An encrypted phase-1 message that did not decrypt or verify.
    fn unreadable(&mut self, idx: SaId) {
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.unreadable = sa.unreadable.saturating_add(1);
        }
    }

    /// A phase-1 exchange gives up: when the peer's encrypted messages
    /// never verified, say so (most likely a different pre-shared key).
    fn report_unreadable(&mut self, idx: SaId) -> bool {
        let Some(sa) = self.sas.get(idx) else { return false };
        if sa.unreadable == 0 || sa.state == P1State::Established {
            return false;
        }
        let (conn, n) = (sa.conn, sa.unreadable);
        self.fail(
            conn,
            Failure::AuthenticationFailed {
                detail: format!(
                    "the peer's encrypted phase-1 messages did not decrypt or verify ({n} received): \
                     most likely a different pre-shared key"
                ),
            },
        );
        true
    }

    /// A phase-1 message verified: its last ciphertext block is the next IV.
    fn commit_p1_iv(&mut self, idx: SaId, last: Vec<u8>) {
        if let Some(sa) = self.sas.get_mut(idx) {
            sa.iv = last;
        }
        self.authenticated(idx);
    }

    fn check_peer_id(&mut self, idx: SaId, id: &IdPayload) -> bool {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return false;
        };
        if is_peer_id(&self.conns[conn], id) {
            return true;
        }
        if let Some(other) = self.sibling_for_id(idx, id) {
            if let Some(sa) = self.sas.get_mut(idx) {
                sa.conn = other;
            }
            let (first, chosen) = (self.conns[conn].spec.name.clone(), self.conns[other].spec.name.clone());
            self.log(
                other,
                format!(
                    "peer's identity {} chooses connection '{chosen}' (the first message, which carries no \
                     identity, went by address to '{first}')",
                    id_text(id)
                ),
            );
            return true;
        }
        let want = id_payload(&self.conns[conn].spec.remote_id);
        self.fail(
            conn,
            Failure::IdMismatch {
                expected: id_text(&want),
                received: id_text(id),
            },
        );
        // RFC 2408 §5.4 has INVALID-ID-INFORMATION for this.
        self.send_notify(idx, notify::INVALID_ID_INFORMATION, Vec::new());
        self.remove(idx, "peer identity mismatch");
        false
    }

    /// As responder, another connection between the same two addresses
    /// whose peer identity is `id`: the first message of a phase 1 carries
    /// no identity, so `responder_start` went by address (and mode), and
    /// the peer's identity may name a sibling. Only one that would have
    /// accepted the phase 1 as negotiated so far: the same mode, the chosen
    /// proposal among its own, and for Main Mode the same PSK, since the
    /// PSK keyed the exchange that carried the identity (RFC 2409 §5.4):
    /// HASH_I proves knowledge of the sibling's PSK only if it is that one.
    /// (Aggressive Mode derives its keys after this check.)
    fn sibling_for_id(&self, idx: SaId, id: &IdPayload) -> Option<ConnId> {
        let sa = self.sas.get(idx).filter(|s| !s.initiator)?;
        let (conn, choice) = (sa.conn, sa.choice?);
        let first = &self.conns[conn];
        self.conns.live().find(|&j| {
            let c = &self.conns[j];
            j != conn
                && c.spec.local == first.spec.local
                && c.spec.remote == first.spec.remote
                && c.aggressive == first.aggressive
                && is_peer_id(c, id)
                && p1_offers(&c.spec).contains(&choice)
                && (first.aggressive || ikeda_crypto::ct_eq(c.spec.psk.expose(), first.spec.psk.expose()))
        })
    }

    fn established(&mut self, idx: SaId, now: Millis) {
        // Phase 1 is over: the IV chain holds its last CBC block, the seed
        // of every later exchange's IV (RFC 2409 App. B). Exported again
        // with it, so a capture that begins after phase 1 can be read.
        let info = self
            .sas
            .get(idx)
            .and_then(|sa| Some((sa.keys.as_ref()?, sa.iv.clone())))
            .and_then(|(keys, last)| self.key_info(idx, keys, Some(last)));
        if let Some(info) = info {
            self.events.push_back(info);
        }
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let t = self.conns[sa.conn].spec.timers;
        sa.state = P1State::Established;
        sa.established_at = Some(now);
        sa.last_heard = now;
        sa.tm.complete(0);
        sa.tm.established();
        sa.rekey_at = (!t.ike_rekey_time.is_zero()).then(|| now + t.ike_rekey_time);
        let life = if t.ike_lifetime.is_zero() {
            DEFAULT_P1_LIFE
        } else {
            t.ike_lifetime
        };
        sa.expire_at = Some(now + life);
        if sa.nat_local {
            sa.keepalive_at = Some(now + NAT_KEEPALIVE);
        }
        let (conn, icookie, rcookie, initiator, local, remote, nat) = (
            sa.conn,
            sa.icookie,
            sa.rcookie,
            sa.initiator,
            sa.local,
            sa.remote,
            sa.nat_local || sa.nat_remote,
        );
        let suite = sa
            .choice
            .map(|c| crate::event::suite_name(&c.suite()))
            .unwrap_or_default();
        let dpd = sa.peer_dpd;
        self.events.push_back(Event::IkeSaUp {
            conn: self.conns[conn].spec.name.clone(),
            spi_i: icookie,
            spi_r: rcookie,
            initiator,
            suite,
            local,
            remote,
            nat,
        });
        if !dpd && !t.dpd_delay.is_zero() {
            self.log(
                conn,
                "the peer did not announce DPD (RFC 3706 vendor ID): no liveness checks on this SA".into(),
            );
        }
        if !dpd && !t.keepalive.is_zero() && local.port() != NAT_T_PORT {
            self.log(
                conn,
                format!(
                    "keepalive = {:?} does nothing on this SA: the peer did not announce DPD (RFC 3706), so no R-U-THERE, and UDP 500 has no NAT-keepalive; a stateful firewall on the path may forget the IKE flow while it is idle",
                    t.keepalive
                ),
            );
        }
        // The other established phase-1 SAs of the connection: if we began
        // this one to replace them (a rekey, a restart), they go now. If the
        // peer began it after one of them was up here, the peer replaces
        // that one (IKEv1 has no rekey exchange: a new phase 1 is the
        // rekey, RFC 2409 §5): it is superseded and stays until the peer
        // deletes it or it expires. Else they are duplicates (both sides
        // initiated within a round trip). Should a reordering hold the
        // peer's first message of such a pair back until ours was up, we
        // take it for a replacement while the peer settles a duplicate:
        // the peer then deletes one of the two (at once if it made the
        // loser, after `DUPLICATE_GRACE` if we did), and `peer_delete`
        // makes the one left current.
        let replaces = self.sas.get(idx).is_some_and(|s| s.initiator && s.replaces);
        let peer_began_at = self.sas.get(idx).filter(|s| !s.initiator).map(|s| s.created);
        let peer_began_after = |other: &P1| peer_began_at.is_some_and(|c| other.established_at.is_some_and(|e| e <= c));
        let others: Vec<SaId> = self
            .sas
            .ids()
            .filter(|&i| i != idx)
            .filter(|&i| {
                self.sas.get(i).is_some_and(|s| {
                    s.conn == conn && s.state == P1State::Established && s.duplicate_delete_at.is_none()
                })
            })
            .collect();
        for i in others {
            if replaces {
                if let Some(s) = self.sas.get_mut(i) {
                    s.superseded = true;
                }
                self.send_delete_isakmp(i);
                self.remove(i, "replaced by a new phase-1 SA");
            } else if self.sas.get(i).is_some_and(peer_began_after) {
                let Some(s) = self.sas.get_mut(i) else { continue };
                s.superseded = true;
                let (oi, or) = (s.icookie, s.rcookie);
                self.log(
                    conn,
                    format!(
                        "the peer began a new phase-1 SA while {oi:016x}_i {or:016x}_r was up: it replaces that one (Quick Modes go on the new one; the old one stays until the peer deletes it or it expires)"
                    ),
                );
            } else {
                self.settle_duplicate_p1(idx, i, now);
            }
        }
    }

    /// Two phase-1 SAs of one connection came up side by side: keep the one
    /// whose exchange has the higher of the lowest nonces (RFC 7296 §2.8.1's
    /// rule, the same on both sides). The loser takes no new Quick Mode and
    /// goes after [`DUPLICATE_DELETE`] if we created it, else after
    /// [`DUPLICATE_GRACE`] unless the peer deleted it first.
    fn settle_duplicate_p1(&mut self, a: SaId, b: SaId, now: Millis) {
        let low = |i: SaId| {
            self.sas
                .get(i)
                .map(|s| std::cmp::min(s.ni.clone(), s.nr.clone()))
                .unwrap_or_default()
        };
        let loser = if low(a) < low(b) { a } else { b };
        let Some(sa) = self.sas.get_mut(loser) else { return };
        let ours = sa.initiator;
        sa.superseded = true;
        sa.duplicate_delete_at = Some(now + if ours { DUPLICATE_DELETE } else { DUPLICATE_GRACE });
        let (conn, i, r) = (sa.conn, sa.icookie, sa.rcookie);
        self.stats.duplicates_settled += 1;
        self.log(
            conn,
            format!(
                "both sides initiated: two phase-1 SAs; {i:016x}_i {r:016x}_r, {} by us, has the lowest nonce and goes{}",
                if ours { "initiated" } else { "answered" },
                if ours { "" } else { " (the peer deletes it, or we do in 5 s)" },
            ),
        );
    }

    /// The loser of a duplicate goes once its time came and no Quick Mode
    /// is in flight on it (they finish; new ones go to the winner). False
    /// if it went.
    fn duplicate_timer(&mut self, idx: SaId, now: Millis) -> bool {
        let Some(sa) = self.sas.get_mut(idx) else { return false };
        if sa.duplicate_delete_at.is_none_or(|at| now < at) {
            return true;
        }
        let busy = |q: &quick::Qm| {
            (!q.done() && q.state != quick::QmState::IWaitConnected)
                || (q.initiator && now < q.created + DUPLICATE_QM_SETTLE)
        };
        if sa.qms.iter().any(busy) {
            sa.duplicate_delete_at = Some(now + DUPLICATE_DELETE);
            return true;
        }
        let reason = if sa.initiator {
            "duplicate deleted by us"
        } else {
            "duplicate deleted by us after waiting for the peer"
        };
        self.send_delete_isakmp(idx);
        self.remove(idx, reason);
        false
    }

    /// After our phase 1: INITIAL-CONTACT on a first contact, then a Quick
    /// Mode for every selector pair without an SA.
    fn after_initiator_phase1(&mut self, idx: SaId, now: Millis) {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        // INITIAL-CONTACT tells the peer to drop every other SA with us:
        // not while it sets one up with us (both initiated), which it would
        // drop without a DELETE.
        let other = self
            .sas
            .entries()
            .any(|(i, s)| i != idx && s.conn == conn && !s.unproven());
        if self.children[conn].is_empty() && !other {
            let Some(sa) = self.sas.get(idx) else { return };
            let spi = [sa.icookie.to_be_bytes(), sa.rcookie.to_be_bytes()].concat();
            self.send_info(
                idx,
                Payload::Notify(NotifyPayload {
                    doi: doi::IPSEC,
                    protocol: protocol::ISAKMP,
                    spi,
                    notify_type: notify::INITIAL_CONTACT,
                    data: Vec::new(),
                }),
            );
        }
        // On the connection's current phase-1 SA: a duplicate that lost
        // takes none.
        if let Some(cur) = self.current(conn) {
            self.start_missing_quick_modes(cur, now);
        }
    }

    /// A Quick Mode on phase-1 SA `idx` for each selector pair of its
    /// connection that has no SA, none under way and none waiting.
    fn start_missing_quick_modes(&mut self, idx: SaId, now: Millis) {
        let Some(conn) = self.sas.get(idx).map(|s| s.conn) else {
            return;
        };
        for pair in 0..pairs(&self.conns[conn].spec).len() {
            let waiting = self.qm_waiting[conn].iter().any(|&(p, _)| p == pair);
            if !self.pair_covered(conn, pair) && !waiting {
                self.start_quick_mode(idx, pair, None, now);
            }
        }
    }

    /// Queue a Quick Mode for `pair` (replacing the SA `rekey_of`) until a
    /// place is free: once per pair.
    fn queue_quick_mode(&mut self, conn: ConnId, pair: usize, rekey_of: Option<u32>) {
        let w = &mut self.qm_waiting[conn];
        if !w.iter().any(|&(p, _)| p == pair) {
            w.push_back((pair, rekey_of));
        }
    }

    /// The pair has a live IPsec SA, or a Quick Mode for it is out. A
    /// Quick Mode of the peer's counts too: one of ours beside it would
    /// make a second SA pair.
    fn pair_covered(&self, conn: ConnId, pair: usize) -> bool {
        self.children[conn].iter().any(|c| c.pair == pair && !c.rekeyed)
            || self
                .sas
                .iter()
                .any(|s| s.conn == conn && s.qms.iter().any(|q| q.pair == pair && !q.done()))
    }

    // ---- timers -----------------------------------------------------------

    pub fn handle_timeout(&mut self, now: Millis) {
        let queued = self.transmits.len();
        for idx in self.sas.ids() {
            self.p1_timers(idx, now);
            if self.sas.contains(idx) {
                self.qm_timers(idx, now);
            }
        }
        for ci in self.conns.ids() {
            self.child_timers(ci, now);
        }
        self.start_waiting_quick_modes(now);
        self.note_sent(queued, now);
    }

    /// Retransmissions and give-ups due on SA `idx`, of phase 1 (M-ID 0)
    /// and of its Quick Modes; false if the SA is gone.
    fn retransmissions(&mut self, idx: SaId, now: Millis) -> bool {
        let Some(sa) = self.sas.get_mut(idx) else { return false };
        let r = sa
            .tm
            .retransmit(now, &self.policy, (sa.local, sa.remote), &mut self.transmits);
        let (conn, remote) = (sa.conn, sa.remote);
        for line in r.lines {
            self.log(conn, line);
        }
        for g in r.gave_up {
            if g.mid != 0 {
                self.quick_mode_gave_up(idx, &g, now);
                continue;
            }
            if self.report_unreadable(idx) {
                self.remove(idx, "peer's messages unreadable");
                return false;
            }
            // Another phase-1 SA of the connection is up (the peer's, when
            // both initiated and the peer settled on it; it deleted ours
            // with a DELETE we did not get): nothing failed.
            let other = self.current(conn).is_some_and(|i| i != idx);
            if other {
                self.log(
                    conn,
                    "our phase 1 got no answer while the connection's other phase-1 SA is up: dropped".into(),
                );
                self.remove(idx, "peer not answering");
                return false;
            }
            self.fail(conn, g.failure(remote));
            self.remove(idx, "peer not answering");
            return false;
        }
        true
    }

    fn p1_timers(&mut self, idx: SaId, now: Millis) {
        let queued = self.transmits.len();
        if !self.retransmissions(idx, now) {
            return;
        }
        // Retransmissions refresh the flow (the keepalive below counts them).
        self.note_sent(queued, now);
        if !self.duplicate_timer(idx, now) {
            return;
        }
        let Some(sa) = self.sas.get(idx) else { return };
        if sa.tm.half_open_expired(now) {
            let conn = sa.conn;
            self.report_unreadable(idx);
            self.log(conn, "half-open phase 1 timed out".into());
            self.remove(idx, "half-open timeout");
            return;
        }
        if sa.state != P1State::Established {
            return;
        }
        let conn = sa.conn;
        let t = self.conns[conn].spec.timers;
        // Lifetimes: a fresh phase 1 replaces this one; the hard limit deletes it.
        if sa.expire_at.is_some_and(|e| now >= e) {
            self.log(conn, "phase-1 SA lifetime over: deleting it".into());
            self.send_delete_isakmp(idx);
            self.remove(idx, "lifetime expired");
            return;
        }
        if sa.rekey_at.is_some_and(|r| now >= r) && !sa.superseded {
            if let Some(sa) = self.sas.get_mut(idx) {
                sa.rekey_at = None;
            }
            self.log(conn, "phase-1 SA rekey time: starting a new one".into());
            self.start_phase1(conn, now);
            return;
        }
        let dpd_queued = self.transmits.len();
        if !self.dpd_check(idx, conn, now) {
            return;
        }
        // The R-U-THERE just sent, if any, counts.
        self.note_sent(dpd_queued, now);
        let Some(sa) = self.sas.get_mut(idx) else { return };
        let mut octet = false;
        if sa.keepalive_at.is_some_and(|k| now >= k) {
            // RFC 3948 §4: only when nothing else of ours went out.
            octet = now >= sa.last_sent + NAT_KEEPALIVE;
            sa.keepalive_at = Some(if octet { now } else { sa.last_sent } + NAT_KEEPALIVE);
        }
        // The configured keepalive on UDP 4500: the NAT-keepalive octet
        // (RFC 3948 §2.3) keeps the flow's state whether or not a NAT is
        // there. (On UDP 500 it is the R-U-THERE above.)
        if sa.local.port() == NAT_T_PORT && !t.keepalive.is_zero() && now >= sa.last_sent + t.keepalive {
            octet = true;
        }
        if octet {
            sa.last_sent = now;
            let (local, remote) = (sa.local, sa.remote);
            self.transmits.push_back(Transmit {
                local,
                remote,
                data: KEEPALIVE.to_vec(),
            });
        }
    }

    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut t: Vec<Millis> = Vec::new();
        for sa in self.sas.iter() {
            let timers = self.conns[sa.conn].spec.timers;
            t.extend(sa.tm.poll_timeout());
            t.extend(sa.duplicate_delete_at);
            if sa.state == P1State::Established {
                t.extend(sa.expire_at);
                if !sa.superseded {
                    t.extend(sa.rekey_at);
                    let ka_check = keepalive_by_dpd(sa, &timers);
                    match &sa.dpd.check {
                        Some(rt) if sa.peer_dpd => t.push(rt.due()),
                        Some(_) => {}
                        None => {
                            if sa.peer_dpd && !timers.dpd_delay.is_zero() {
                                t.push(sa.last_heard + timers.dpd_delay);
                            }
                            if ka_check {
                                t.push(sa.last_sent + timers.keepalive);
                            }
                        }
                    }
                    t.extend(sa.keepalive_at);
                    if !timers.keepalive.is_zero() && sa.local.port() == NAT_T_PORT {
                        t.push(sa.last_sent + timers.keepalive);
                    }
                }
            }
            for q in &sa.qms {
                t.extend(q.next_timer());
            }
        }
        for cs in &self.children {
            for c in cs {
                if !c.rekeyed {
                    t.extend(c.rekey_at);
                }
                t.extend(c.expire_at);
                t.extend(c.activate_at);
                t.extend(c.delete_old.map(|d| d.0));
                t.extend(c.duplicate_delete_at);
            }
        }
        t.into_iter().min()
    }
}

/// The configured keepalive of `sa` goes as a DPD R-U-THERE: on UDP 500
/// (NAT-keepalives are for UDP 4500 only, RFC 3948 §2.3) to a peer that
/// announced DPD (RFC 3706 §4; one that did not would not answer it).
fn keepalive_by_dpd(sa: &P1, t: &crate::Timers) -> bool {
    !t.keepalive.is_zero() && sa.local.port() != NAT_T_PORT && sa.peer_dpd
}

fn is_nat_t_vid(v: &[u8]) -> bool {
    v == vendor_id::RFC3947_NAT_T
}

/// What we announce: RFC 3947 NAT-T, RFC 3706 DPD, and that we take full
/// trains of ESP in UDP. Phase 1's first two messages are where IKEv1
/// peers look for Vendor IDs; what the peer announces is used only once
/// phase 1 has authenticated it (for its IPsec SAs).
fn our_vids() -> Vec<Payload> {
    vec![
        Payload::VendorId(vendor_id::RFC3947_NAT_T.to_vec()),
        Payload::VendorId(vendor_id::DPD.to_vec()),
        Payload::VendorId(TRAINS_VENDOR_ID.to_vec()),
    ]
}

impl P1 {
    /// What the peer announced in its first phase-1 message; Vendor IDs
    /// we do not know are ignored.
    fn peer_vendor_ids(&mut self, payloads: &[ParsedPayload]) {
        self.peer_nat_t = vids(payloads).any(is_nat_t_vid);
        self.peer_dpd = vids(payloads).any(|v| v == vendor_id::DPD);
        self.peer_trains = vids(payloads).any(|v| v == TRAINS_VENDOR_ID);
    }
}

/// The connection's identity as a phase-1 ID payload (RFC 2407 §4.6.2:
/// protocol and port zero). The type numbers are IKEv2's, which keeps
/// IKEv1's for the common types (IPV4_ADDR 1, FQDN 2, USER_FQDN 3, IPV6_ADDR
/// 5, KEY_ID 11).
/// `id` (from an ID payload the peer sent) is the connection's peer
/// identity.
fn is_peer_id(c: &V1ConnSpec, id: &IdPayload) -> bool {
    let want = id_payload(&c.spec.remote_id);
    want.id_type == id.id_type && want.data == id.data
}

fn id_payload(id: &ikeda_wire::ikev2::IdPayload) -> IdPayload {
    IdPayload {
        id_type: id.id_type.0,
        protocol: 0,
        port: 0,
        data: id.data.clone(),
    }
}

fn id_text(id: &IdPayload) -> String {
    match id.id_type {
        id_type::IPV4_ADDR | id_type::IPV6_ADDR => id_to_ts(id)
            .map(|t| t.start_address.to_string())
            .unwrap_or_else(|| "?".into()),
        id_type::FQDN | id_type::USER_FQDN => String::from_utf8_lossy(&id.data).into_owned(),
        _ => format!(
            "type {} {}",
            id.id_type,
            id.data.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

crate::sim::impl_peer!(Engine);
