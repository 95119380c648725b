//! Issue 13 point 3: `Timers::keepalive` keeps a stateful firewall's state
//! for the IKE flow alive: at least one datagram of ours on the flow per
//! interval, with or without a NAT, whatever else happens; an empty
//! INFORMATIONAL on UDP 500 (RFC 7296 §1.4), a NAT-keepalive octet on UDP
//! 4500 (RFC 3948 §2.3); nothing extra when something of ours went out
//! within the interval; off at 0; unanswered, the end of a dead peer.

use super::*;
use crate::sim::Peer;
use ikeda_wire::ikev2::{ExchangeType, Message};

/// An engine as the simulator sees it, which records what it sends (time,
/// from, to, bytes) and, with `nat`, sits behind a NAT that maps its
/// address to `NAT_ADDR` and ports 500/4500 to 1500/1501 (the peer then
/// sees a NAT, both float to 4500, and this side keeps the mapping alive).
struct Wire {
    e: Engine,
    nat: bool,
    now: Millis,
    sent: Vec<(Millis, SocketAddr, SocketAddr, Vec<u8>)>,
}

const NAT_ADDR: &str = "198.51.100.7";

impl Wire {
    fn outside(&self, a: SocketAddr) -> SocketAddr {
        if !self.nat {
            return a;
        }
        let port = if a.port() == 4500 { 1501 } else { 1500 };
        SocketAddr::new(NAT_ADDR.parse().unwrap(), port)
    }

    fn inside(&self, a: SocketAddr) -> SocketAddr {
        if !self.nat {
            return a;
        }
        let port = if a.port() == 1501 { 4500 } else { 500 };
        SocketAddr::new(self.e.conn("s2s").unwrap().local, port)
    }

    /// What it sent after `from`: (NAT-keepalives, INFORMATIONAL requests,
    /// other datagrams), and the longest time it sent nothing.
    fn tally(&self, from: Millis, until: Millis) -> (usize, usize, usize, Duration) {
        let (mut ka, mut info, mut other) = (0, 0, 0);
        let mut last = from;
        let mut gap = Duration::ZERO;
        for (at, _, _, d) in self.sent.iter().filter(|s| s.0 > from && s.0 <= until) {
            gap = gap.max(at.saturating_since(last));
            last = *at;
            match Message::parse(d) {
                _ if d[..] == crate::conn::KEEPALIVE => ka += 1,
                Ok(m) if m.header.exchange_type == ExchangeType::INFORMATIONAL && !m.header.flags.response() => {
                    info += 1
                }
                _ => other += 1,
            }
        }
        (ka, info, other, gap.max(until.saturating_since(last)))
    }
}

impl Peer for Wire {
    fn handle_datagram(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        self.now = now;
        let local = self.inside(local);
        self.e.handle_datagram(now, local, remote, data);
    }
    fn handle_timeout(&mut self, now: Millis) {
        self.now = now;
        self.e.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        let mut t = self.e.poll_transmit()?;
        self.sent.push((self.now, t.local, t.remote, t.data.clone()));
        t.local = self.outside(t.local);
        Some(t)
    }
    fn poll_timeout(&self) -> Option<Millis> {
        self.e.poll_timeout()
    }
}

use crate::Transmit;

fn wire_pair(ta: Timers, tb: Timers, nat: bool, seed: u64) -> Pair<Wire, Wire> {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut a = spec(A, B, ike, "aes128gcm16", "k", net1(), net2());
    // b talks to a's public address, and knows a by its own (its ID).
    let mut b = spec(
        B,
        if nat { NAT_ADDR } else { A },
        ike,
        "aes128gcm16",
        "k",
        net2(),
        net1(),
    );
    b.remote_id = a.local_id.clone();
    a.timers = ta;
    b.timers = tb;
    // Behind a NAT, a's identity stays its own address (B's remote_id).
    let w = |c: ConnSpec, nat: bool, s: u64| Wire {
        e: Engine::new(vec![c], Box::new(SeededRng::from_u64(s))),
        nat,
        now: Millis::ZERO,
        sent: Vec::new(),
    };
    let sa: SocketAddr = format!("{A}:500").parse().unwrap();
    let sb: SocketAddr = format!("{B}:500").parse().unwrap();
    let mut p = Pair::new(w(a, nat, seed), sa, w(b, false, seed ^ 0xffff), sb, seed);
    p.a.e.initiate("s2s", Millis::ZERO).unwrap();
    p
}

/// Run for `d` of simulated time; the events of both.
fn run_wire(p: &mut Pair<Wire, Wire>, d: Duration) -> (Vec<Event>, Vec<Event>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    let end = p.now + d;
    while p.next_event().is_some_and(|t| t <= end) && p.step() {
        drain(&mut p.a.e, &mut ea);
        drain(&mut p.b.e, &mut eb);
    }
    drain(&mut p.a.e, &mut ea);
    drain(&mut p.b.e, &mut eb);
    p.now = p.now.max(end);
    (ea, eb)
}

fn up(p: &mut Pair<Wire, Wire>) -> Millis {
    // The simulator picks up the IKE_SA_INIT `initiate` queued when it steps.
    p.step();
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    drain(&mut p.a.e, &mut ea);
    drain(&mut p.b.e, &mut eb);
    let (a2, b2) = run_wire(p, Duration::from_secs(2));
    ea.extend(a2);
    eb.extend(b2);
    assert!(child(&ea).is_some() && child(&eb).is_some(), "not up: {ea:?} {eb:?}");
    assert!(failure(&ea).is_none() && failure(&eb).is_none());
    p.now
}

fn ka(secs: u64) -> Timers {
    Timers {
        keepalive: Duration::from_secs(secs),
        ..Timers::default()
    }
}

fn still_one_sa_each(p: &Pair<Wire, Wire>) {
    for e in [&p.a.e, &p.b.e] {
        let v = e.ike_sas();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].children.len(), 1, "{v:?}");
    }
}

/// No NAT: a sends an empty INFORMATIONAL every 20 s (b answers, so b's
/// answers are b's packets on the flow and b sends nothing of its own);
/// never more than 20 s without a datagram of a's on the flow.
#[test]
fn without_nat_a_liveness_check_goes_out_every_interval() {
    for (tb, what) in [(ka(20), "both sides configured"), (Timers::default(), "only a")] {
        let mut p = wire_pair(ka(20), tb, false, 131);
        let t0 = up(&mut p);
        let (ea, eb) = run_wire(&mut p, Duration::from_secs(200));
        assert!(failure(&ea).is_none() && failure(&eb).is_none(), "{what}");
        let (kas, infos, other, gap) = p.a.tally(t0, p.now);
        assert_eq!((kas, other), (0, 0), "{what}: a sent only liveness checks");
        assert_eq!(infos, 10, "{what}: one per 20 s in 200 s");
        assert!(gap <= Duration::from_secs(20), "{what}: a silent for {gap:?}");
        // b's answers keep its side of the flow; nothing extra from b.
        let (bka, binfo, bother, bgap) = p.b.tally(t0, p.now);
        assert_eq!((bka, binfo), (0, 0), "{what}: b sent requests of its own");
        assert_eq!(bother, 10, "{what}: b answered each");
        assert!(bgap <= Duration::from_secs(21), "{what}: b silent for {bgap:?}");
        still_one_sa_each(&p);
        let logged = ea
            .iter()
            .any(|e| matches!(e, Event::Log { line, .. } if line.starts_with("keepalive: nothing sent")));
        assert!(logged, "{what}");
    }
}

/// The keepalive does not wait for silence from the peer, as DPD does:
/// with the peer's own liveness checks every 5 s arriving (so a's
/// `last_heard` is always fresh, and DPD on a, 10 s, never fires), a's
/// answers are its packets on the flow and nothing extra goes out; with
/// b's checks every 30 s (a hears from b, but sends less often than its
/// keepalive), a sends its own check whenever 20 s pass without one.
#[test]
fn keepalive_counts_what_we_send_not_what_we_hear() {
    let a = Timers {
        keepalive: Duration::from_secs(20),
        dpd_delay: Duration::from_secs(10),
        ..Timers::default()
    };
    // b checks every 5 s of silence: a answers every 5 s.
    let mut p = wire_pair(a, ka(5), false, 132);
    let t0 = up(&mut p);
    run_wire(&mut p, Duration::from_secs(100));
    let (_, a_req, a_resp, gap) = p.a.tally(t0, p.now);
    assert_eq!(a_req, 0, "a's answers to b's checks are enough");
    assert!(a_resp >= 19 && gap <= Duration::from_secs(5), "{a_resp} {gap:?}");
    // b's DPD after 30 s of silence: a hears b every 30 s, which resets a's
    // DPD (10 s, never due: a's own keepalive checks are answered first)
    // but not a's keepalive.
    let b = Timers {
        dpd_delay: Duration::from_secs(30),
        ..Timers::default()
    };
    let a = Timers {
        keepalive: Duration::from_secs(20),
        ..Timers::default()
    };
    let mut p = wire_pair(a, b, false, 133);
    let t0 = up(&mut p);
    run_wire(&mut p, Duration::from_secs(200));
    let (_, a_req, _, gap) = p.a.tally(t0, p.now);
    assert_eq!(a_req, 10, "a's own check every 20 s");
    assert!(gap <= Duration::from_secs(20), "{gap:?}");
    // b hears from a every 20 s: its DPD (30 s) never fires.
    assert_eq!(p.b.tally(t0, p.now).1, 0);
    still_one_sa_each(&p);
}

/// Behind a NAT (both float to 4500): NAT-keepalive octets, every 10 s as
/// configured (not RFC 3948's 20 s), from both sides (the side not behind
/// the NAT has a firewall too), no INFORMATIONAL at all.
#[test]
fn on_udp_4500_the_keepalive_is_the_nat_keepalive_octet() {
    let mut p = wire_pair(ka(10), ka(10), true, 134);
    let t0 = up(&mut p);
    let va = p.a.e.ike_sas();
    assert_eq!(va[0].local.port(), 4500, "floated: {va:?}");
    run_wire(&mut p, Duration::from_secs(100));
    for (w, who) in [(&p.a, "a (behind the NAT)"), (&p.b, "b")] {
        let (kas, infos, other, gap) = w.tally(t0, p.now);
        assert_eq!((infos, other), (0, 0), "{who}");
        assert_eq!(kas, 10, "{who}: one octet per 10 s");
        assert!(gap <= Duration::from_secs(10), "{who}: {gap:?}");
        assert!(w.sent.iter().filter(|s| s.0 > t0).all(|s| s.1.port() == 4500), "{who}");
    }
    // Without the option the side behind the NAT still keeps its mapping
    // (RFC 3948 §4, every 20 s), and the other side sends nothing.
    let mut p = wire_pair(Timers::default(), Timers::default(), true, 135);
    let t0 = up(&mut p);
    run_wire(&mut p, Duration::from_secs(100));
    assert_eq!(p.a.tally(t0, p.now).0, 5);
    assert_eq!(p.b.tally(t0, p.now), (0, 0, 0, Duration::from_secs(100)));
}

/// Interval 0 (the default) is off: nothing at all once up, no NAT.
#[test]
fn keepalive_zero_is_off() {
    let mut p = wire_pair(ka(0), ka(0), false, 136);
    let t0 = up(&mut p);
    run_wire(&mut p, Duration::from_secs(300));
    assert!(p.a.sent.iter().all(|s| s.0 <= t0) && p.b.sent.iter().all(|s| s.0 <= t0));
    assert_eq!(p.a.e.poll_timeout(), None);
}

/// The peer vanishes: the keepalive's liveness check goes unanswered and
/// the SA ends as an unanswered DPD ends it (RFC 7296 §2.4): removed after
/// the retransmissions, then cleared or restarted per `dpd_action`; a
/// restart finds the peer again once it is back.
#[test]
fn an_unanswered_keepalive_ends_the_sa_as_dpd_does() {
    for restart in [false, true] {
        let t = Timers {
            keepalive: Duration::from_secs(20),
            dpd_restart: restart,
            ..Timers::default()
        };
        let mut p = wire_pair(t, Timers::default(), false, 137);
        up(&mut p);
        p.faults.loss = 1.0;
        // 20 s, then 165 s of retransmissions.
        let (ea, _) = run_wire(&mut p, Duration::from_secs(190));
        let f = failure(&ea).expect("a failure");
        assert!(
            f.to_string()
                .starts_with("peer not answering: INFORMATIONAL sent 6 times"),
            "{f}"
        );
        assert!(ea.iter().any(|e| matches!(e, Event::ChildSaDown { .. })));
        assert!(ea.iter().any(|e| matches!(e, Event::IkeSaDown { .. })));
        let restarted = ea
            .iter()
            .any(|e| matches!(e, Event::Log { line, .. } if line.contains("dpd_action = restart")));
        assert_eq!(restarted, restart);
        if restart {
            p.faults.loss = 0.0;
            let (ea, eb) = run_wire(&mut p, Duration::from_secs(200));
            assert!(child(&ea).is_some(), "re-established: {ea:?}");
            // The new IKE_AUTH carried INITIAL_CONTACT: b, which had kept
            // the old SA all along, dropped it.
            assert!(
                eb.iter()
                    .any(|e| matches!(e, Event::IkeSaDown { reason, .. } if reason.contains("INITIAL_CONTACT"))),
                "{eb:?}"
            );
            still_one_sa_each(&p);
        } else {
            assert!(p.a.e.ike_sas().is_empty());
        }
    }
}
