//! A deterministic two-peer network for testing IKE endpoints, after
//! quinn-proto's `Pair`: controlled time, seeded loss, duplication,
//! reordering and delay, and clock jumps. Same seed, same run.

use crate::{Millis, Transmit};
use std::net::SocketAddr;
use std::time::Duration;

/// What the simulator needs from an endpoint (the IKE engine implements it).
pub trait Peer {
    fn handle_datagram(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8]);
    fn handle_timeout(&mut self, now: Millis);
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_timeout(&self) -> Option<Millis>;
}

/// `impl Peer for $engine` with the engine's own methods of those names
/// (each IKE version's engine has them).
macro_rules! impl_peer {
    ($engine:ty) => {
        impl $crate::sim::Peer for $engine {
            fn handle_datagram(
                &mut self,
                now: $crate::Millis,
                local: std::net::SocketAddr,
                remote: std::net::SocketAddr,
                data: &[u8],
            ) {
                <$engine>::handle_datagram(self, now, local, remote, data)
            }
            fn handle_timeout(&mut self, now: $crate::Millis) {
                <$engine>::handle_timeout(self, now)
            }
            fn poll_transmit(&mut self) -> Option<$crate::Transmit> {
                <$engine>::poll_transmit(self)
            }
            fn poll_timeout(&self) -> Option<$crate::Millis> {
                <$engine>::poll_timeout(self)
            }
        }
    };
}
pub(crate) use impl_peer;

/// Network faults, each a probability per datagram.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_delay` extra.
    pub reorder: f64,
    pub delay: Duration,
    pub reorder_delay: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            delay: Duration::from_millis(5),
            reorder_delay: Duration::from_millis(50),
        }
    }
}

struct InFlight {
    at: Millis,
    seq: u64,
    to_b: bool,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// Counters of what the network did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub delivered: u64,
}

pub struct Pair<A: Peer, B: Peer> {
    pub a: A,
    pub b: B,
    pub addr_a: SocketAddr,
    pub addr_b: SocketAddr,
    pub now: Millis,
    pub faults: Faults,
    pub stats: NetStats,
    /// Drops the datagrams for which it says true (at `now`, toward b or
    /// not, the bytes): a firewall, a path that loses one message.
    pub filter: Option<Filter>,
    rng: u64,
    seq: u64,
    flight: Vec<InFlight>,
}

/// See [`Pair::filter`].
pub type Filter = Box<dyn FnMut(Millis, bool, &[u8]) -> bool>;

impl<A: Peer, B: Peer> Pair<A, B> {
    pub fn new(a: A, addr_a: SocketAddr, b: B, addr_b: SocketAddr, seed: u64) -> Self {
        Pair {
            a,
            b,
            addr_a,
            addr_b,
            now: Millis::ZERO,
            faults: Faults::default(),
            stats: NetStats::default(),
            filter: None,
            rng: seed.max(1),
            seq: 0,
            flight: Vec::new(),
        }
    }

    /// xorshift64*: small, seeded, good enough for fault injection.
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn queue(&mut self, t: Transmit, to_b: bool) {
        self.stats.sent += 1;
        let now = self.now;
        if self.filter.as_mut().is_some_and(|f| f(now, to_b, &t.data)) || self.chance(self.faults.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.chance(self.faults.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = self.now + self.faults.delay;
            if self.chance(self.faults.reorder) {
                self.stats.reordered += 1;
                at = at + self.faults.reorder_delay;
            }
            self.seq += 1;
            self.flight.push(InFlight {
                at,
                seq: self.seq,
                to_b,
                from: t.local,
                to: t.remote,
                data: t.data.clone(),
            });
        }
    }

    fn collect(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            self.queue(t, true);
        }
        while let Some(t) = self.b.poll_transmit() {
            self.queue(t, false);
        }
    }

    /// Put on the wire what the peers queued outside a step (an initiate
    /// or rekey call of the test): [`Pair::next_event`] cannot see it.
    pub fn flush(&mut self) {
        self.collect();
    }

    /// The next moment something happens, if anything will.
    pub fn next_event(&self) -> Option<Millis> {
        let f = self.flight.iter().map(|f| f.at).min();
        [f, self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Advance to the next event and process it. False when nothing is left.
    pub fn step(&mut self) -> bool {
        self.collect();
        let Some(t) = self.next_event() else { return false };
        self.now = self.now.max(t);
        // Deliver every datagram due now, in arrival order.
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.flight.len() {
            if self.flight[i].at <= self.now {
                due.push(self.flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|f| (f.at, f.seq));
        for f in due {
            self.stats.delivered += 1;
            if f.to_b {
                self.b.handle_datagram(self.now, f.to, f.from, &f.data);
            } else {
                self.a.handle_datagram(self.now, f.to, f.from, &f.data);
            }
        }
        if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
            self.a.handle_timeout(self.now);
        }
        if self.b.poll_timeout().is_some_and(|t| t <= self.now) {
            self.b.handle_timeout(self.now);
        }
        self.collect();
        true
    }

    /// Step until `done` holds or simulated time passes `limit`.
    pub fn run_until(&mut self, limit: Millis, mut done: impl FnMut(&Self) -> bool) -> bool {
        while !done(self) {
            if self.now > limit || !self.step() {
                return done(self);
            }
        }
        true
    }

    /// Jump the clock forward (a suspended laptop, an NTP step): every
    /// timer that is due fires at once on the next step.
    pub fn jump(&mut self, d: Duration) {
        self.now = self.now + d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retransmit::RetransmitPolicy;
    use crate::task::{Due, Incoming, TaskManager, Version};

    /// A toy protocol on the crate's own task manager: the client sends N
    /// numbered requests in turn, the server echoes them.
    struct Client {
        tm: TaskManager<(), ()>,
        out: Vec<Transmit>,
        done: u32,
        want: u32,
        gave_up: bool,
        me: SocketAddr,
        peer: SocketAddr,
    }
    struct Server {
        tm: TaskManager<(), ()>,
        out: Vec<Transmit>,
        processed: u32,
    }
    // More tries than IKE's 5: 50 exchanges in a row at 30 % loss each way
    // must all finish (9 lost tries in a row happen about once in 400).
    const P: RetransmitPolicy = RetransmitPolicy {
        timeout: Duration::from_secs(1),
        base: 1.2,
        tries: 14,
    };

    impl Client {
        fn kick(&mut self, now: Millis) {
            if self.tm.can_initiate() && self.done < self.want {
                let id = self.tm.next_id();
                let data = id.to_be_bytes().to_vec();
                self.tm
                    .request(id, crate::Exchange::Informational, (), data.clone(), now, &P);
                self.out.push(Transmit {
                    local: self.me,
                    remote: self.peer,
                    data,
                });
            }
        }
    }
    impl Peer for Client {
        fn handle_datagram(&mut self, now: Millis, _: SocketAddr, _: SocketAddr, d: &[u8]) {
            let id = u32::from_be_bytes(d[..4].try_into().unwrap());
            if self.tm.complete(id).is_some() {
                self.done += 1;
                self.kick(now);
            }
        }
        fn handle_timeout(&mut self, now: Millis) {
            while let Some(due) = self.tm.poll_due(now, &P, (self.me, self.peer)) {
                match due {
                    Due::Resend { transmit, .. } => self.out.push(transmit),
                    Due::GiveUp(_) => self.gave_up = true,
                }
            }
        }
        fn poll_transmit(&mut self) -> Option<Transmit> {
            self.out.pop()
        }
        fn poll_timeout(&self) -> Option<Millis> {
            self.tm.poll_timeout()
        }
    }
    impl Peer for Server {
        fn handle_datagram(&mut self, _: Millis, local: SocketAddr, remote: SocketAddr, d: &[u8]) {
            let id = u32::from_be_bytes(d[..4].try_into().unwrap());
            let data = match self.tm.check_request(id, d, local, remote) {
                Incoming::New => {
                    self.processed += 1;
                    self.tm.accepted(id, d, local, remote);
                    self.tm.answered(id, d.to_vec());
                    d.to_vec()
                }
                Incoming::Again(t) => {
                    self.out.push(t);
                    return;
                }
                _ => return,
            };
            self.out.push(Transmit { local, remote, data });
        }
        fn handle_timeout(&mut self, _: Millis) {}
        fn poll_transmit(&mut self) -> Option<Transmit> {
            self.out.pop()
        }
        fn poll_timeout(&self) -> Option<Millis> {
            None
        }
    }

    fn run(seed: u64, faults: Faults) -> (u32, u32, NetStats, bool) {
        let a: SocketAddr = "10.0.0.1:500".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:500".parse().unwrap();
        let c = Client {
            tm: TaskManager::new(Version::IKEV2),
            out: vec![],
            done: 0,
            want: 50,
            gave_up: false,
            me: a,
            peer: b,
        };
        let s = Server {
            tm: TaskManager::new(Version::IKEV2),
            out: vec![],
            processed: 0,
        };
        let mut p = Pair::new(c, a, s, b, seed);
        p.faults = faults;
        p.a.kick(Millis::ZERO);
        p.run_until(Millis(3_600_000), |p| p.a.done == 50 || p.a.gave_up);
        (p.a.done, p.b.processed, p.stats, p.a.gave_up)
    }

    #[test]
    fn loss_duplication_reordering_still_complete_exactly_once() {
        let f = Faults {
            loss: 0.3,
            duplicate: 0.2,
            reorder: 0.2,
            ..Faults::default()
        };
        for seed in 1..20 {
            let (done, processed, stats, gave_up) = run(seed, f);
            assert!(!gave_up, "seed {seed}: {stats:?} done {done} processed {processed}");
            assert_eq!(
                (done, processed),
                (50, 50),
                "seed {seed}: each request processed once ({stats:?})"
            );
            assert!(stats.lost > 0 && stats.duplicated > 0 && stats.reordered > 0);
        }
    }

    #[test]
    fn same_seed_same_run() {
        let f = Faults {
            loss: 0.3,
            duplicate: 0.1,
            reorder: 0.1,
            ..Faults::default()
        };
        assert_eq!(run(7, f), run(7, f));
    }

    #[test]
    fn total_loss_gives_up() {
        let (done, _, _, gave_up) = run(
            3,
            Faults {
                loss: 1.0,
                ..Faults::default()
            },
        );
        assert_eq!(done, 0);
        assert!(gave_up);
    }
}
