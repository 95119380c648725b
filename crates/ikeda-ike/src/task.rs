//! The task manager of one IKE SA, the same for IKEv1 and IKEv2: the work
//! that waits its turn, the exchanges in flight with their message IDs,
//! their retransmission on one schedule ([`RetransmitPolicy`]), the
//! responder's cache of answers, and how long a half-open SA is kept.
//!
//! ```text
//!   queue(work)        +--------+  can_initiate()  +---------------+  complete(mid)
//!  ----------------->  | queued | ---------------> | in flight     | ------------->  done
//!                      +--------+    dequeue()     | (retransmitted|
//!                                                  |  on schedule) | ---> GiveUp
//!                                                  +---------------+
//!   check_request(mid, bytes, from): New -> accepted() -> answered(),
//!                                    or Again(cached answer), or dropped
//! ```
//!
//! Work never fails because an exchange is in flight: it queues, and the
//! engine starts it when the window frees (`dequeue` while
//! `can_initiate`). What a task is, and how its messages are built and
//! read, belongs to the engine of each version; the manager keeps what the
//! versions share. They differ in ways [`Version`] names, not in a second
//! copy of this code:
//! - Message IDs. IKEv2 numbers requests from 0 in each direction (RFC 7296
//!   §2.2) and, with no SET_WINDOW_SIZE, keeps one request in flight
//!   (§2.3). IKEv1 gives each exchange a random M-ID (RFC 2409 §5.5, §5.7;
//!   phase 1 has 0), so exchanges of several M-IDs run side by side.
//! - What a retransmission is. An IKEv2 retransmission is bitwise identical
//!   to the request (§2.1) and carries its ID: the request answered last is
//!   answered again, any other ID outside the window is dropped (§2.3).
//!   IKEv1 has no counter: a message is a retransmission when its bytes are
//!   those of the one accepted last in its exchange (its M-ID), and anything
//!   else of that M-ID is the exchange's next message.
//! - Who waits for an answer. In IKEv1 the responder of a Quick Mode waits
//!   too: its HASH(2) goes out again until HASH(3) acknowledges it (§5.5).
//!
//! The CBC IV chain of an IKEv1 exchange is part of that exchange's state
//! (the engine's), as IKEv2's keys are.
//!
//! Either way a retransmission is answered only when it is the very
//! request answered, from the address and port it came from: a spoofed
//! header with the right SPIs and message ID, or a replay from elsewhere,
//! reflects nothing (RFC 7296 §2.11).

use crate::retransmit::{RequestTimer, Retransmission, RetransmitPolicy};
use crate::{Millis, Transmit};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a responder keeps an SA whose initiator has not authenticated
/// yet, in either version. The initiator's next message may be lost and
/// resent: under the default policy its resends come 4, 11.2, 24.2, 47.5
/// and 89.5 s after the first, so 90 s sees them all (a shorter wait made
/// an IKEv1 phase 1 whose MM5 was lost three times fail). Fixed, not
/// derived from the retransmission settings: a spoofed first message must
/// not hold its place longer than a real exchange needs.
pub const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(90);

/// Work queued per IKE SA at most. Each kind of work is queued once per SA
/// it names (see [`TaskManager::queue`]), so this bounds what a peer or a
/// timer storm can pile up.
pub const MAX_QUEUED: usize = 64;

/// How a version numbers its exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageIds {
    /// IKEv2 (RFC 7296 §2.2): 0, 1, 2, ... per direction.
    Sequential,
    /// IKEv1 (RFC 2409 §5.5): the initiator of each exchange picks a random M-ID.
    Random,
}

/// What makes IKEv1 and IKEv2 differ for the task manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub message_ids: MessageIds,
    /// Exchanges of ours in flight at once.
    pub window: usize,
    /// Answered exchanges whose answer is kept for a retransmission.
    pub cached: usize,
}

impl Version {
    /// Window size 1 and the last answer (RFC 7296 §2.3).
    pub const IKEV2: Version = Version {
        message_ids: MessageIds::Sequential,
        window: 1,
        cached: 1,
    };
    /// `window` Quick Modes of ours at once; the answers of phase 1 and of
    /// the Quick Modes that are still remembered (a Quick Mode is kept for
    /// a while after it finished, to answer a lost HASH(3)'s cause again).
    pub const fn ikev1(window: usize) -> Version {
        Version {
            message_ids: MessageIds::Random,
            window,
            cached: 32,
        }
    }
}

/// An exchange a task runs, by its name in the RFCs: IKEv2's (RFC 7296
/// §3.1) and IKEv1's (RFC 2408 §4, RFC 2409 §5-§5.5). It names the
/// exchange in flight in logs, in `show` and in a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    IkeSaInit,
    IkeAuth,
    CreateChildSa,
    Informational,
    /// IKEv1 Main Mode (Identity Protection, RFC 2408 §4.5).
    IdProt,
    /// IKEv1 Aggressive Mode (RFC 2408 §4.8).
    Aggressive,
    /// IKEv1 phase 2 (RFC 2409 §5.5).
    QuickMode,
}

impl Exchange {
    pub fn as_str(self) -> &'static str {
        match self {
            Exchange::IkeSaInit => "IKE_SA_INIT",
            Exchange::IkeAuth => "IKE_AUTH",
            Exchange::CreateChildSa => "CREATE_CHILD_SA",
            Exchange::Informational => "INFORMATIONAL",
            Exchange::IdProt => "ID_PROT",
            Exchange::Aggressive => "AGGRESSIVE",
            Exchange::QuickMode => "QUICK_MODE",
        }
    }
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exchange with a message of ours in flight.
#[derive(Debug)]
struct InFlight<A> {
    mid: u32,
    what: Exchange,
    /// We initiated it (it counts against the window).
    ours: bool,
    task: A,
    rt: Retransmission,
}

/// An exchange the peer started, as we accepted it.
#[derive(Debug)]
struct Answered {
    mid: u32,
    request: Vec<u8>,
    local: SocketAddr,
    remote: SocketAddr,
    /// What we answered it with (IKEv1: nothing, when our next message is
    /// a request of our own that is retransmitted by itself).
    response: Option<Vec<u8>>,
}

/// What to do with a message the peer sent on its own initiative (a
/// request, or in IKEv1 any message that is not the answer we wait for).
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Not seen before: process it (and call [`TaskManager::accepted`] once
    /// it proved authentic).
    New,
    /// A retransmission of what we answered: send the answer again, to
    /// where the request came from, without processing it again.
    Again(Transmit),
    /// A copy of a message processed already with nothing to answer (our
    /// next message is in flight by itself): drop it.
    Seen,
    /// The ID of the request answered last, but not its bytes, or not from
    /// where it came: a spoof or a replay, refused (counted by the caller).
    Refused,
    /// An ID outside the window (RFC 7296 §2.3): dropped.
    OutOfWindow,
}

/// What a timer expiry asks of the engine.
#[derive(Debug)]
pub enum Due<A> {
    /// Send this again, and log the line.
    Resend {
        transmit: Transmit,
        line: String,
    },
    GiveUp(GaveUp<A>),
}

/// An exchange given up: every send went unanswered.
#[derive(Debug)]
pub struct GaveUp<A> {
    pub mid: u32,
    pub what: Exchange,
    pub sent: u32,
    /// We initiated it (else: our answer went unacknowledged, IKEv1).
    pub ours: bool,
    pub task: A,
}

impl<A> GaveUp<A> {
    /// Why the exchange failed, in the words `status` shows.
    pub fn failure(&self, to: SocketAddr) -> crate::Failure {
        crate::Failure::PeerNotAnswering {
            exchange: self.what.as_str(),
            tries: self.sent,
            to,
        }
    }
}

/// What [`TaskManager::retransmit`] did: the lines to log, and the
/// exchanges given up, for the engine to act on.
#[derive(Debug)]
pub struct Retransmitted<A> {
    pub lines: Vec<String>,
    pub gave_up: Vec<GaveUp<A>>,
}

/// The tasks of one IKE SA: `Q` is work that waits its turn, `A` the state
/// of an exchange in flight.
#[derive(Debug)]
pub struct TaskManager<Q, A> {
    version: Version,
    queued: VecDeque<Q>,
    in_flight: Vec<InFlight<A>>,
    /// Sequential IDs: the ID of our next request, and of the peer's.
    next_id: u32,
    expected: u32,
    /// Oldest first, at most `version.cached`.
    answered: VecDeque<Answered>,
    half_open_until: Option<Millis>,
}

impl<Q: PartialEq, A> TaskManager<Q, A> {
    pub fn new(version: Version) -> Self {
        TaskManager {
            version,
            queued: VecDeque::new(),
            in_flight: Vec::new(),
            next_id: 0,
            expected: 0,
            answered: VecDeque::new(),
            half_open_until: None,
        }
    }

    // ---- work that waits its turn ------------------------------------------

    /// Queue work behind what is queued. Work already queued is not queued
    /// twice (a timer that fires again, a second request for the same
    /// rekey); past [`MAX_QUEUED`] it is refused. True if it is queued now.
    pub fn queue(&mut self, work: Q) -> bool {
        if self.queued.contains(&work) {
            return true;
        }
        if self.queued.len() >= MAX_QUEUED {
            return false;
        }
        self.queued.push_back(work);
        true
    }

    /// Queue work ahead of the rest (deleting the IKE SA: nothing queued
    /// behind it matters any more).
    pub fn queue_first(&mut self, work: Q) -> bool {
        self.queued.retain(|w| *w != work);
        if self.queued.len() >= MAX_QUEUED {
            self.queued.pop_back();
        }
        self.queued.push_front(work);
        true
    }

    /// The next work to start, if the window has room for it.
    pub fn dequeue(&mut self) -> Option<Q> {
        if !self.can_initiate() {
            return None;
        }
        self.queued.pop_front()
    }

    pub fn is_queued(&self, pred: impl Fn(&Q) -> bool) -> bool {
        self.queued.iter().any(pred)
    }

    /// Hand the queued work over (to the IKE SA that replaces this one).
    pub fn take_queued(&mut self, keep: impl Fn(&Q) -> bool) -> Vec<Q> {
        let (moved, kept): (VecDeque<Q>, VecDeque<Q>) = self.queued.drain(..).partition(|w| !keep(w));
        self.queued = kept;
        moved.into()
    }

    // ---- exchanges of ours ----------------------------------------------------

    /// Sequential IDs: the ID our next request carries.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Exchanges of ours in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.iter().filter(|x| x.ours).count()
    }

    pub fn busy(&self) -> bool {
        self.in_flight() > 0
    }

    /// The window has room for another exchange of ours.
    pub fn can_initiate(&self) -> bool {
        self.in_flight() < self.version.window
    }

    /// A request of ours went out at `now`: keep it for resending until
    /// [`TaskManager::complete`]. A request with the `mid` of one in flight
    /// replaces it (an IKEv1 exchange's next message, an IKE_SA_INIT sent
    /// again with a COOKIE). With sequential IDs the next request gets the
    /// ID after this one.
    pub fn request(&mut self, mid: u32, what: Exchange, task: A, data: Vec<u8>, now: Millis, p: &RetransmitPolicy) {
        if self.version.message_ids == MessageIds::Sequential {
            self.next_id = mid.wrapping_add(1);
        }
        self.start(mid, what, true, task, data, now, p);
    }

    /// An answer of ours that the peer acknowledges with its next message
    /// (IKEv1 Quick Mode's HASH(2), acknowledged by HASH(3), RFC 2409 §5.5):
    /// resent on the same schedule, but not counted against the window.
    pub fn await_ack(&mut self, mid: u32, what: Exchange, task: A, data: Vec<u8>, now: Millis, p: &RetransmitPolicy) {
        self.start(mid, what, false, task, data, now, p);
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        mid: u32,
        what: Exchange,
        ours: bool,
        task: A,
        data: Vec<u8>,
        now: Millis,
        p: &RetransmitPolicy,
    ) {
        self.in_flight.retain(|x| x.mid != mid);
        self.in_flight.push(InFlight {
            mid,
            what,
            ours,
            task,
            rt: Retransmission::new(data, now, p),
        });
    }

    /// Is a message of exchange `mid` waiting for the peer's answer?
    pub fn awaits(&self, mid: u32) -> bool {
        self.in_flight.iter().any(|x| x.mid == mid)
    }

    /// The task of exchange `mid`, in flight.
    pub fn task(&self, mid: u32) -> Option<&A> {
        self.in_flight.iter().find(|x| x.mid == mid).map(|x| &x.task)
    }

    /// The first exchange of ours in flight: its task, what it is, and how
    /// many times its message went out (for `show`).
    pub fn current(&self) -> Option<(&A, Exchange, u32)> {
        self.in_flight
            .iter()
            .find(|x| x.ours)
            .or_else(|| self.in_flight.first())
            .map(|x| (&x.task, x.what, x.rt.sends()))
    }

    /// The peer answered exchange `mid`: it is no longer retransmitted.
    /// Its task, or `None` for a stray or duplicate answer (to be dropped).
    pub fn complete(&mut self, mid: u32) -> Option<A> {
        let k = self.in_flight.iter().position(|x| x.mid == mid)?;
        Some(self.in_flight.remove(k).task)
    }

    /// Drop every exchange in flight and everything queued (the SA goes).
    pub fn abandon(&mut self) {
        self.in_flight.clear();
        self.queued.clear();
    }

    /// The next retransmission or give-up due at `now`, if any, for an SA
    /// at these addresses now (`local`, `remote`); call until `None`.
    pub fn poll_due(
        &mut self,
        now: Millis,
        p: &RetransmitPolicy,
        (local, remote): (SocketAddr, SocketAddr),
    ) -> Option<Due<A>> {
        for k in 0..self.in_flight.len() {
            let x = &mut self.in_flight[k];
            match x.rt.poll(now, p) {
                RequestTimer::Idle => {}
                RequestTimer::Resend { try_no } => {
                    let (what, mid) = (x.what, x.mid);
                    return Some(Due::Resend {
                        transmit: Transmit {
                            local,
                            remote,
                            data: x.rt.data().to_vec(),
                        },
                        line: format!("retransmit {try_no} of {what} (message ID {mid}) to {remote}"),
                    });
                }
                RequestTimer::GiveUp { sent } => {
                    let x = self.in_flight.remove(k);
                    return Some(Due::GiveUp(GaveUp {
                        mid: x.mid,
                        what: x.what,
                        sent,
                        ours: x.ours,
                        task: x.task,
                    }));
                }
            }
        }
        None
    }

    /// Everything due at `now` for an SA at these addresses: the resends
    /// go out through `out`; what to log and what was given up come back.
    pub fn retransmit(
        &mut self,
        now: Millis,
        p: &RetransmitPolicy,
        addrs: (SocketAddr, SocketAddr),
        out: &mut VecDeque<Transmit>,
    ) -> Retransmitted<A> {
        let mut r = Retransmitted {
            lines: Vec::new(),
            gave_up: Vec::new(),
        };
        while let Some(due) = self.poll_due(now, p, addrs) {
            match due {
                Due::Resend { transmit, line } => {
                    out.push_back(transmit);
                    r.lines.push(line);
                }
                Due::GiveUp(g) => r.gave_up.push(g),
            }
        }
        r
    }

    // ---- exchanges of the peer -------------------------------------------------

    /// A message of exchange `mid` the peer sent on its own initiative, as
    /// it arrived (`local`, `remote`): new, a retransmission to answer
    /// again, or to drop.
    pub fn check_request(&self, mid: u32, data: &[u8], local: SocketAddr, remote: SocketAddr) -> Incoming {
        let sequential = self.version.message_ids == MessageIds::Sequential;
        if sequential && mid == self.expected {
            return Incoming::New;
        }
        match self.answered.iter().rev().find(|a| a.mid == mid) {
            // Compared in constant time: an IKE_SA_INIT holds the nonce Ni.
            Some(a) if ikeda_crypto::ct_eq(&a.request, data) => {
                if (a.local, a.remote) != (local, remote) {
                    Incoming::Refused
                } else {
                    a.response.as_ref().map_or(Incoming::Seen, |r| {
                        Incoming::Again(Transmit {
                            local,
                            remote,
                            data: r.clone(),
                        })
                    })
                }
            }
            Some(_) if sequential => Incoming::Refused,
            _ if sequential => Incoming::OutOfWindow,
            _ => Incoming::New,
        }
    }

    /// A new message of exchange `mid` proved authentic and is being acted
    /// on: remembered (it replaces what the exchange remembered), so that
    /// its retransmission is recognised.
    pub fn accepted(&mut self, mid: u32, data: &[u8], local: SocketAddr, remote: SocketAddr) {
        self.answered.retain(|a| a.mid != mid);
        if self.answered.len() >= self.version.cached.max(1) {
            self.answered.pop_front();
        }
        self.answered.push_back(Answered {
            mid,
            request: data.to_vec(),
            local,
            remote,
            response: None,
        });
    }

    /// Our answer to the message of exchange `mid` accepted last: sent
    /// again for its retransmissions. With sequential IDs the window moves
    /// on (RFC 7296 §2.3).
    pub fn answered(&mut self, mid: u32, response: Vec<u8>) {
        if self.version.message_ids == MessageIds::Sequential {
            self.expected = mid.wrapping_add(1);
        }
        if let Some(a) = self.answered.iter_mut().rev().find(|a| a.mid == mid) {
            a.response = Some(response);
        }
    }

    /// Forget exchange `mid` (an IKEv1 Quick Mode no longer kept).
    pub fn forget(&mut self, mid: u32) {
        self.answered.retain(|a| a.mid != mid);
        self.in_flight.retain(|x| x.mid != mid);
    }

    // ---- half-open -------------------------------------------------------------

    /// We answered a first message: unless the peer authenticates within
    /// [`HALF_OPEN_TIMEOUT`], the SA goes.
    pub fn half_open(&mut self, now: Millis) {
        self.half_open_until = Some(now + HALF_OPEN_TIMEOUT);
    }

    /// The SA is established: no longer half-open.
    pub fn established(&mut self) {
        self.half_open_until = None;
    }

    pub fn half_open_until(&self) -> Option<Millis> {
        self.half_open_until
    }

    pub fn half_open_expired(&self, now: Millis) -> bool {
        self.half_open_until.is_some_and(|t| now >= t)
    }

    // ---- timers and memory -------------------------------------------------

    /// The next retransmission, give-up or half-open expiry.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.in_flight
            .iter()
            .map(|x| x.rt.due())
            .chain(self.half_open_until)
            .min()
    }

    /// The octets of messages kept: in flight, and accepted with their answers.
    pub fn held_bytes(&self) -> usize {
        self.in_flight.iter().map(|x| x.rt.held_bytes()).sum::<usize>()
            + self
                .answered
                .iter()
                .map(|a| a.request.len() + a.response.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn l() -> SocketAddr {
        addr("10.0.0.2:500")
    }
    fn r() -> SocketAddr {
        addr("10.0.0.1:500")
    }

    fn again(data: &[u8], local: SocketAddr, remote: SocketAddr) -> Incoming {
        Incoming::Again(Transmit {
            local,
            remote,
            data: data.to_vec(),
        })
    }

    fn v2() -> TaskManager<u32, &'static str> {
        TaskManager::new(Version::IKEV2)
    }

    #[test]
    fn strongswan_schedule_and_give_up() {
        let p = RetransmitPolicy::default();
        let mut t = v2();
        assert_eq!(t.next_id(), 0);
        t.request(0, Exchange::Informational, "first", b"req".to_vec(), Millis(0), &p);
        assert!(!t.can_initiate(), "window size 1");
        assert!(t.queue(7), "more work queues instead of failing");
        assert_eq!(t.dequeue(), None, "... and waits for the window");
        let mut resends = vec![];
        let (now, sent) = loop {
            let now = t.poll_timeout().unwrap();
            match t.poll_due(now, &p, (l(), r())) {
                Some(Due::Resend { transmit, line }) => {
                    assert_eq!(
                        (transmit.local, transmit.remote, &transmit.data[..]),
                        (l(), r(), &b"req"[..])
                    );
                    resends.push((resends.len() as u32 + 1, now.0));
                    assert!(
                        line.starts_with(&format!("retransmit {} of INFORMATIONAL (message ID 0)", resends.len())),
                        "{line}"
                    );
                }
                Some(Due::GiveUp(GaveUp { sent, task, .. })) => {
                    assert_eq!(task, "first");
                    break (now, sent);
                }
                None => panic!("timer fired early"),
            }
        };
        assert_eq!(sent, 6);
        let g = GaveUp {
            mid: 0,
            what: Exchange::Informational,
            sent,
            ours: true,
            task: (),
        };
        assert_eq!(
            g.failure(r()).to_string(),
            "peer not answering: INFORMATIONAL sent 6 times to 10.0.0.1:500 without a response"
        );
        assert_eq!(resends, vec![(1, 4000), (2, 11200), (3, 24160), (4, 47488), (5, 89478)]);
        assert_eq!(now.0, 165_060); // 165 s, as strongSwan
        assert!(!t.busy());
        assert_eq!(t.dequeue(), Some(7), "the window is free: the queued work starts");
    }

    #[test]
    fn responses_match_ids_and_duplicates_are_dropped() {
        let p = RetransmitPolicy::default();
        let mut t = v2();
        let id = t.next_id();
        t.request(id, Exchange::Informational, "x", vec![1], Millis(0), &p);
        assert_eq!(t.complete(id + 1), None);
        assert_eq!(t.complete(id), Some("x"));
        assert_eq!(t.complete(id), None, "a duplicate response is not a second answer");
        assert_eq!(t.next_id(), 1);
        assert!(t.poll_due(Millis(10_000), &p, (l(), r())).is_none());
    }

    #[test]
    fn work_is_queued_once_and_a_delete_goes_first() {
        let mut t = v2();
        for w in [1, 2, 1, 3] {
            assert!(t.queue(w));
        }
        t.queue_first(3);
        assert_eq!(std::iter::from_fn(|| t.dequeue()).collect::<Vec<_>>(), vec![3, 1, 2]);
        for w in 0..MAX_QUEUED as u32 {
            assert!(t.queue(w));
        }
        assert!(!t.queue(1000), "bounded");
        let moved = t.take_queued(|w| *w % 2 == 0);
        assert_eq!(moved.len(), MAX_QUEUED / 2);
        assert!(moved.iter().all(|w| w % 2 == 1));
    }

    #[test]
    fn responder_caches_its_last_response() {
        let (l, r) = (addr("10.0.0.2:500"), addr("10.0.0.1:500"));
        let mut s = v2();
        assert_eq!(s.check_request(0, b"req0", l, r), Incoming::New);
        assert_eq!(s.check_request(1, b"req1", l, r), Incoming::OutOfWindow);
        s.accepted(0, b"req0", l, r);
        s.answered(0, b"resp0".to_vec());
        assert_eq!(s.check_request(0, b"req0", l, r), again(b"resp0", l, r));
        assert_eq!(s.check_request(1, b"req1", l, r), Incoming::New);
        // Not the request answered, or not from where it came: refused.
        assert_eq!(s.check_request(0, b"req0 forged", l, r), Incoming::Refused);
        assert_eq!(s.check_request(0, b"req0", l, addr("10.9.9.9:500")), Incoming::Refused);
        assert_eq!(s.check_request(0, b"req0", l, addr("10.0.0.1:4500")), Incoming::Refused);
        s.accepted(1, b"req1", l, r);
        s.answered(1, b"resp1".to_vec());
        assert_eq!(s.check_request(0, b"req0", l, r), Incoming::OutOfWindow);
    }

    /// An accepted request we did not answer (it failed before a response
    /// was built) is processed again when it comes again.
    #[test]
    fn an_unanswered_request_is_new_again() {
        let (l, r) = (addr("10.0.0.2:500"), addr("10.0.0.1:500"));
        let mut s = v2();
        s.accepted(0, b"req0", l, r);
        assert_eq!(s.check_request(0, b"req0", l, r), Incoming::New);
    }

    /// IKEv1: random M-IDs, several exchanges at once, each with its own
    /// last message; the next message of an exchange is new.
    #[test]
    fn ikev1_exchanges_are_told_apart_by_m_id_and_bytes() {
        let p = RetransmitPolicy::default();
        let (l, r) = (addr("10.0.0.2:500"), addr("10.0.0.1:500"));
        let mut t: TaskManager<(), ()> = TaskManager::new(Version::ikev1(1));
        // Phase 1 (M-ID 0): MM1 answered with MM2.
        assert_eq!(t.check_request(0, b"MM1", l, r), Incoming::New);
        t.accepted(0, b"MM1", l, r);
        t.answered(0, b"MM2".to_vec());
        assert_eq!(t.check_request(0, b"MM1", l, r), again(b"MM2", l, r));
        assert_eq!(t.check_request(0, b"MM3", l, r), Incoming::New);
        // A Quick Mode we answered and one we started, side by side.
        t.accepted(0x1234, b"HASH1", l, r);
        t.answered(0x1234, b"HASH2".to_vec());
        t.await_ack(0x1234, Exchange::QuickMode, (), b"HASH2".to_vec(), Millis(0), &p);
        t.request(0x9999, Exchange::QuickMode, (), b"ours".to_vec(), Millis(0), &p);
        assert_eq!(t.in_flight(), 1, "the HASH(2) awaiting HASH(3) is not ours");
        assert!(!t.can_initiate());
        assert_eq!(t.check_request(0x1234, b"HASH1", l, r), again(b"HASH2", l, r));
        assert_eq!(t.check_request(0x1234, b"HASH3", l, r), Incoming::New);
        // A message accepted with nothing to answer: its copy is dropped.
        t.accepted(0x9999, b"their HASH2", l, r);
        assert_eq!(t.check_request(0x9999, b"their HASH2", l, r), Incoming::Seen);
        assert_eq!(t.complete(0x9999), Some(()));
        assert!(t.can_initiate());
        t.forget(0x1234);
        assert!(!t.awaits(0x1234));
        assert_eq!(t.check_request(0x1234, b"HASH1", l, r), Incoming::New);
        assert_eq!(t.check_request(0, b"MM1", l, r), again(b"MM2", l, r));
        // Bounded: the oldest answers go first.
        for mid in 1..=40u32 {
            t.accepted(mid, b"x", l, r);
        }
        assert_eq!(t.check_request(0, b"MM1", l, r), Incoming::New);
        assert_eq!(t.held_bytes(), 32, "32 answers of one octet, nothing in flight");
    }

    #[test]
    fn half_open_ends_after_the_timeout_unless_established() {
        let mut t = v2();
        t.half_open(Millis(1000));
        assert_eq!(t.poll_timeout(), Some(Millis(91_000)));
        assert!(!t.half_open_expired(Millis(90_999)));
        assert!(t.half_open_expired(Millis(91_000)));
        t.established();
        assert!(!t.half_open_expired(Millis(200_000)));
        assert_eq!(t.poll_timeout(), None);
    }
}
