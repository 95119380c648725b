//! Two IKEv2 engines in the deterministic simulator.
//!
//! ```text
//! IKE_SA_INIT { SA, KE, Ni, N(NATD_S_IP), N(NATD_D_IP) } -->
//!             <-- { SA, KE, Nr, N(NATD_S_IP), N(NATD_D_IP) }
//! IKE_AUTH { IDi, AUTH, N(INIT_CONTACT), SA, TSi, TSr } -->
//!             <-- { IDr, AUTH, SA, TSi, TSr }
//! ```

use crate::ikev2::{ConnSpec, Engine, Event, Failure, Timers};
use crate::sim::{Faults, Pair};
use crate::{Millis, RetransmitPolicy};
use ikeda_crypto::ike::{parse_esp_proposals, parse_ike_proposals, SeededRng};
use ikeda_crypto::SecretBytes;
use ikeda_wire::ikev2::{IdPayload, TsRange};
use std::net::{IpAddr, SocketAddr};

const A: &str = "192.168.50.11";
const B: &str = "192.168.50.12";

pub(crate) fn ts(cidr_start: &str, cidr_end: &str) -> TsRange {
    TsRange::addresses(cidr_start.parse().unwrap(), cidr_end.parse().unwrap())
}

pub(crate) fn spec(
    local: &str,
    remote: &str,
    ike: &str,
    esp: &str,
    psk: &str,
    lnet: TsRange,
    rnet: TsRange,
) -> ConnSpec {
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let id = |s: &str| match ip(s) {
        IpAddr::V4(a) => IdPayload::ipv4(a),
        IpAddr::V6(_) => unreachable!(),
    };
    ConnSpec {
        name: "s2s".into(),
        local: ip(local),
        remote: ip(remote),
        local_id: id(local),
        remote_id: id(remote),
        psk: SecretBytes::new(psk.as_bytes().to_vec()),
        ike_proposals: parse_ike_proposals(ike).unwrap(),
        esp_proposals: parse_esp_proposals(esp).unwrap(),
        local_ts: vec![lnet],
        remote_ts: vec![rnet],
        ts_pairs: Vec::new(),
        timers: Timers::default(),
        force_encap: false,
        children: Vec::new(),
    }
}

fn net1() -> TsRange {
    ts("192.168.11.0", "192.168.11.255")
}
fn net2() -> TsRange {
    ts("192.168.12.0", "192.168.12.255")
}

fn pair(a: ConnSpec, b: ConnSpec, seed: u64) -> Pair<Engine, Engine> {
    let ea = Engine::new(vec![a], Box::new(SeededRng::from_u64(seed)));
    let eb = Engine::new(vec![b], Box::new(SeededRng::from_u64(seed ^ 0xffff)));
    let sa: SocketAddr = format!("{A}:500").parse().unwrap();
    let sb: SocketAddr = format!("{B}:500").parse().unwrap();
    Pair::new(ea, sa, eb, sb, seed)
}

/// An engine the tests take events from: either version's, or the one
/// [`crate::Engine`] that holds both.
pub(crate) trait Events {
    fn poll_event(&mut self) -> Option<Event>;
}

macro_rules! impl_events {
    ($($engine:ty),*) => {$(
        impl Events for $engine {
            fn poll_event(&mut self) -> Option<Event> {
                <$engine>::poll_event(self)
            }
        }
    )*};
}
impl_events!(Engine, crate::ikev1::Engine, crate::Engine);

pub(crate) fn drain(e: &mut impl Events, into: &mut Vec<Event>) {
    while let Some(ev) = e.poll_event() {
        into.push(ev);
    }
}

fn run(p: &mut Pair<Engine, Engine>, limit_s: u64) -> (Vec<Event>, Vec<Event>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    let limit = Millis(limit_s * 1000);
    while p.now <= limit && p.step() {
        drain(&mut p.a, &mut ea);
        drain(&mut p.b, &mut eb);
    }
    drain(&mut p.a, &mut ea);
    drain(&mut p.b, &mut eb);
    (ea, eb)
}

fn child(ev: &[Event]) -> Option<&crate::ikev2::ChildSaInfo> {
    ev.iter().find_map(|e| match e {
        Event::ChildSaUp(c) => Some(c),
        _ => None,
    })
}

fn failure(ev: &[Event]) -> Option<&Failure> {
    ev.iter().find_map(|e| match e {
        Event::Failed { why, .. } => Some(why),
        _ => None,
    })
}

fn check_established(ea: &[Event], eb: &[Event]) {
    let (ca, cb) = (
        child(ea).expect("initiator CHILD SA"),
        child(eb).expect("responder CHILD SA"),
    );
    assert_eq!((ca.spi_in, ca.spi_out), (cb.spi_out, cb.spi_in));
    assert_eq!(ca.enc_out, cb.enc_in);
    assert_eq!(ca.enc_in, cb.enc_out);
    assert_eq!(ca.auth_out, cb.auth_in);
    assert_eq!(ca.algorithm, cb.algorithm);
    assert_eq!(ca.local_ts, cb.remote_ts);
    assert_eq!(ca.remote_ts, cb.local_ts);
    assert!(!ca.udp_encap, "no NAT between the peers");
    assert!(
        failure(ea).is_none() && failure(eb).is_none(),
        "{:?} {:?}",
        failure(ea),
        failure(eb)
    );
}

#[test]
fn establishes_for_every_acceptance_proposal() {
    for (ike, esp) in [
        ("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        ("aes256gcm16-prfsha384-ecp384", "aes256gcm16"),
        ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305"),
        ("aes128-sha256-modp2048", "aes128-sha256"),
        ("aes256-sha1-modp2048", "aes256-sha1"),
    ] {
        let mut p = pair(
            spec(A, B, ike, esp, "secret", net1(), net2()),
            spec(B, A, ike, esp, "secret", net2(), net1()),
            1,
        );
        p.a.initiate("s2s", Millis::ZERO).unwrap();
        let (ea, eb) = run(&mut p, 30);
        check_established(&ea, &eb);
        let c = child(&ea).unwrap();
        assert_eq!(c.algorithm.name(), esp, "{ike}");
        // The log speaks strongSwan's notation.
        let logs: Vec<&str> = ea
            .iter()
            .filter_map(|e| {
                if let Event::Log { line, .. } = e {
                    Some(line.as_str())
                } else {
                    None
                }
            })
            .collect();
        assert!(
            logs.iter()
                .any(|l| l.starts_with("sending IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]")),
            "{logs:?}"
        );
        assert!(
            logs.iter()
                .any(|l| l.starts_with("sending IKE_AUTH request 1 [ IDi AUTH N(INIT_CONTACT) SA TSi TSr V ]")),
            "{logs:?}"
        );
        assert!(
            logs.iter()
                .any(|l| l.starts_with("received IKE_AUTH response 1 [ IDr AUTH SA TSi TSr V ]")),
            "{logs:?}"
        );
    }
}

#[test]
fn establishes_through_loss_duplication_and_reordering() {
    let mut ok = 0;
    for seed in 1..=20 {
        let ike = "aes128gcm16-prfsha256-x25519";
        let mut p = pair(
            spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
            spec(B, A, ike, "aes128gcm16", "k", net2(), net1()),
            seed,
        );
        p.faults = Faults {
            loss: 0.3,
            duplicate: 0.2,
            reorder: 0.2,
            ..Faults::default()
        };
        p.a.initiate("s2s", Millis::ZERO).unwrap();
        let (ea, eb) = run(&mut p, 200);
        if child(&ea).is_some() {
            check_established(&ea, &eb);
            assert_eq!(
                ea.iter().filter(|e| matches!(e, Event::ChildSaUp(_))).count(),
                1,
                "installed once"
            );
            assert_eq!(
                eb.iter().filter(|e| matches!(e, Event::ChildSaUp(_))).count(),
                1,
                "installed once"
            );
            ok += 1;
        } else {
            // With 5 retransmissions the exchange may fail at 30 % loss; it
            // must then say so, not hang.
            assert!(
                matches!(failure(&ea), Some(Failure::PeerNotAnswering { .. })),
                "seed {seed}: {:?}",
                failure(&ea)
            );
        }
    }
    assert!(ok >= 18, "only {ok}/20 established at 30 % loss");
}

#[test]
fn clock_jump_retransmits_at_once_and_still_establishes() {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "k", net2(), net1()),
        3,
    );
    p.faults.loss = 1.0;
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    p.step(); // the request is lost
    p.faults.loss = 0.0;
    p.jump(std::time::Duration::from_secs(60));
    let (ea, eb) = run(&mut p, 120);
    check_established(&ea, &eb);
}

#[test]
fn wrong_psk_is_named_on_both_sides() {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "one", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "two", net2(), net1()),
        4,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 30);
    assert!(child(&ea).is_none() && child(&eb).is_none());
    let (fa, fb) = (failure(&ea).unwrap(), failure(&eb).unwrap());
    assert!(matches!(fa, Failure::AuthenticationFailed { .. }), "{fa}");
    assert!(matches!(fb, Failure::AuthenticationFailed { .. }), "{fb}");
    assert!(fb.to_string().contains("pre-shared keys most likely differ"), "{fb}");
}

#[test]
fn no_common_proposal_names_both_lists() {
    let mut p = pair(
        spec(A, B, "aes128gcm16-prfsha256-x25519", "aes128gcm16", "k", net1(), net2()),
        spec(B, A, "aes256-sha256-modp2048", "aes128gcm16", "k", net2(), net1()),
        5,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 30);
    let fb = failure(&eb).unwrap().to_string();
    assert!(
        fb.contains("peer offered aes128gcm16-prfsha256-curve25519; we accept aes256-sha256-prfsha256-modp2048"),
        "{fb}"
    );
    let fa = failure(&ea).unwrap().to_string();
    assert!(fa.contains("NO_PROPOSAL_CHOSEN in IKE_SA_INIT"), "{fa}");
}

#[test]
fn esp_proposal_mismatch_keeps_the_ike_sa_and_names_the_child_proposals() {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
        spec(B, A, ike, "aes256-sha1", "k", net2(), net1()),
        6,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 30);
    assert!(ea.iter().any(|e| matches!(e, Event::IkeSaUp { .. })));
    assert!(child(&ea).is_none());
    assert!(failure(&eb)
        .unwrap()
        .to_string()
        .contains("IKE_AUTH (CHILD SA): peer offered aes128gcm16"));
    assert!(failure(&ea)
        .unwrap()
        .to_string()
        .contains("NO_PROPOSAL_CHOSEN in IKE_AUTH (CHILD SA)"));
}

#[test]
fn disjoint_selectors_are_ts_unacceptable() {
    let ike = "aes128gcm16-prfsha256-x25519";
    let other = ts("10.9.0.0", "10.9.0.255");
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "k", other, net1()),
        7,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 30);
    assert!(child(&ea).is_none());
    let fb = failure(&eb).unwrap().to_string();
    assert!(
        fb.contains("TS_UNACCEPTABLE") && fb.contains("10.9.0.0") && fb.contains("192.168.12.0"),
        "{fb}"
    );
}

#[test]
fn invalid_ke_payload_retries_with_the_group_the_responder_wants() {
    let mut p = pair(
        spec(
            A,
            B,
            "aes128gcm16-prfsha256-x25519-ecp256",
            "aes128gcm16",
            "k",
            net1(),
            net2(),
        ),
        spec(B, A, "aes128gcm16-prfsha256-ecp256", "aes128gcm16", "k", net2(), net1()),
        8,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 30);
    check_established(&ea, &eb);
    assert!(ea.iter().any(
        |e| matches!(e, Event::Log { line, .. } if line.contains("received IKE_SA_INIT response 0 [ N(INVAL_KE) ]"))
    ));
}

#[test]
fn silent_peer_is_reported_after_the_retransmissions() {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "k", net2(), net1()),
        9,
    );
    p.faults.loss = 1.0;
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, _) = run(&mut p, 400);
    let f = failure(&ea).unwrap();
    assert_eq!(
        f.to_string(),
        "peer not answering: IKE_SA_INIT sent 6 times to 192.168.50.12:500 without a response"
    );
    assert!(p.now.0 >= 165_000);
}

#[test]
fn delete_from_either_side_tears_down_both() {
    for initiator_deletes in [true, false] {
        let ike = "aes128gcm16-prfsha256-x25519";
        let mut p = pair(
            spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
            spec(B, A, ike, "aes128gcm16", "k", net2(), net1()),
            10,
        );
        p.a.initiate("s2s", Millis::ZERO).unwrap();
        let (ea, eb) = run(&mut p, 30);
        check_established(&ea, &eb);
        let now = p.now;
        if initiator_deletes {
            p.a.terminate("s2s", now).unwrap();
        } else {
            p.b.terminate("s2s", now).unwrap();
        }
        let (ea, eb) = run(&mut p, 60);
        for ev in [&ea, &eb] {
            assert!(ev.iter().any(|e| matches!(e, Event::ChildSaDown { .. })), "{ev:?}");
            assert!(ev.iter().any(|e| matches!(e, Event::IkeSaDown { .. })), "{ev:?}");
        }
        assert!(!p.a.is_active("s2s") && !p.b.is_active("s2s"));
    }
}

#[test]
fn garbage_and_replayed_requests_never_panic_and_are_counted() {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "k", net2(), net1()),
        11,
    );
    p.a.set_retransmit_policy(RetransmitPolicy::default());
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 30);
    check_established(&ea, &eb);
    let from: SocketAddr = format!("{A}:500").parse().unwrap();
    let to: SocketAddr = format!("{B}:500").parse().unwrap();
    let mut x: u64 = 99;
    for len in [0usize, 1, 27, 28, 29, 40, 100, 300] {
        let g: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        p.b.handle_datagram(p.now, to, from, &g);
    }
    assert!(p.b.stats.malformed + p.b.stats.unknown_spi >= 7, "{:?}", p.b.stats);
}

// ---- lifetimes: rekeying, collisions, dead peers ---------------------------

use std::collections::HashMap;
use std::time::Duration;

/// What a data plane would hold after applying the events in order:
/// inbound SPIs installed, and the SPI being sent on.
#[derive(Default, Debug)]
pub(crate) struct Plane {
    pub(crate) inbound: HashMap<u32, (Vec<u8>, u32)>,
    pub(crate) outbound: Option<(u32, Vec<u8>)>,
    pub(crate) pending: HashMap<u32, (u32, Vec<u8>)>,
    pub(crate) up: u32,
    /// The inbound SPI of the SA sent on, and the SA sent on before it
    /// (inbound SPI, outbound SPI and key): the daemon goes back to that
    /// one when the newer goes first (`Installs::child_down`).
    pub(crate) outbound_in: Option<u32>,
    pub(crate) previous: Option<(u32, (u32, Vec<u8>))>,
}

impl Plane {
    pub(crate) fn apply(&mut self, ev: &[Event]) {
        for e in ev {
            match e {
                Event::ChildSaUp(c) => {
                    self.up += 1;
                    self.inbound.insert(c.spi_in, (c.enc_in.expose().to_vec(), c.spi_out));
                    if c.activate_outbound {
                        self.send_on(c.spi_in, (c.spi_out, c.enc_out.expose().to_vec()));
                    } else {
                        self.pending.insert(c.spi_in, (c.spi_out, c.enc_out.expose().to_vec()));
                    }
                }
                Event::ChildSaActivate { spi_in, .. } => {
                    if let Some(o) = self.pending.remove(spi_in) {
                        self.send_on(*spi_in, o);
                    }
                }
                Event::ChildSaDown { spi_in, .. } => {
                    self.inbound.remove(spi_in);
                    self.pending.remove(spi_in);
                    if self.previous.as_ref().is_some_and(|p| p.0 == *spi_in) {
                        self.previous = None;
                    }
                    if self.outbound_in == Some(*spi_in) {
                        if let Some((p_in, p_out)) = self.previous.take() {
                            self.outbound = Some(p_out);
                            self.outbound_in = Some(p_in);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

impl Plane {
    fn send_on(&mut self, spi_in: u32, out: (u32, Vec<u8>)) {
        if let (Some(i), Some(o)) = (self.outbound_in, self.outbound.take()) {
            self.previous = Some((i, o));
        }
        self.outbound = Some(out);
        self.outbound_in = Some(spi_in);
    }
}

/// Both planes agree: each sends on an SA the other has inbound, same key.
pub(crate) fn consistent(a: &Plane, b: &Plane) {
    let (ao, ak) = a.outbound.clone().expect("a sends");
    let (bo, bk) = b.outbound.clone().expect("b sends");
    assert_eq!(b.inbound.get(&ao).map(|x| &x.0), Some(&ak), "b can read what a sends");
    assert_eq!(a.inbound.get(&bo).map(|x| &x.0), Some(&bk), "a can read what b sends");
}

fn established_pair(seed: u64, timers: Timers) -> (Pair<Engine, Engine>, Plane, Plane) {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut a = spec(A, B, ike, "aes128gcm16", "k", net1(), net2());
    let mut b = spec(B, A, ike, "aes128gcm16", "k", net2(), net1());
    a.timers = timers;
    b.timers = timers;
    let mut p = pair(a, b, seed);
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (mut pa, mut pb) = (Plane::default(), Plane::default());
    let (ea, eb) = run_for(&mut p, Duration::from_secs(5));
    pa.apply(&ea);
    pb.apply(&eb);
    consistent(&pa, &pb);
    (p, pa, pb)
}

/// Run the simulator for `d` of simulated time, exactly: no step beyond
/// it (a long SA's rekey timer must not fire because the network fell
/// quiet).
pub(crate) fn run_for<A, B>(p: &mut Pair<A, B>, d: Duration) -> (Vec<Event>, Vec<Event>)
where
    A: crate::sim::Peer + Events,
    B: crate::sim::Peer + Events,
{
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    let end = p.now + d;
    while p.next_event().is_some_and(|t| t <= end) && p.step() {
        drain(&mut p.a, &mut ea);
        drain(&mut p.b, &mut eb);
    }
    drain(&mut p.a, &mut ea);
    drain(&mut p.b, &mut eb);
    p.now = p.now.max(end);
    (ea, eb)
}

fn step_both(p: &mut Pair<Engine, Engine>, pa: &mut Plane, pb: &mut Plane, d: Duration) -> (Vec<Event>, Vec<Event>) {
    let (ea, eb) = run_for(p, d);
    pa.apply(&ea);
    pb.apply(&eb);
    (ea, eb)
}

#[test]
fn child_rekey_from_either_side_is_make_before_break() {
    for a_rekeys in [true, false] {
        let (mut p, mut pa, mut pb) = established_pair(21, Timers::default());
        let old_a = pa.outbound.clone().unwrap().0;
        let now = p.now;
        if a_rekeys {
            p.a.rekey_child("s2s", now).unwrap();
        } else {
            p.b.rekey_child("s2s", now).unwrap();
        }
        // Step one datagram at a time: at every instant, whatever either
        // side sends on, the other can already decrypt.
        for _ in 0..40 {
            let (ea, eb) = run_for(&mut p, Duration::from_millis(1));
            pa.apply(&ea);
            pb.apply(&eb);
            consistent(&pa, &pb);
        }
        let (ea, _) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
        assert!(ea.iter().all(|e| !matches!(e, Event::Failed { .. })), "{ea:?}");
        consistent(&pa, &pb);
        assert_ne!(pa.outbound.clone().unwrap().0, old_a, "a moved to the new SA");
        assert_eq!(
            (pa.inbound.len(), pb.inbound.len()),
            (1, 1),
            "old SAs deleted on both sides"
        );
        assert_eq!((pa.up, pb.up), (2, 2));
    }
}

#[test]
fn ike_rekey_from_either_side_keeps_the_child_sas() {
    for a_rekeys in [true, false] {
        let (mut p, mut pa, mut pb) = established_pair(22, Timers::default());
        let now = p.now;
        if a_rekeys {
            p.a.rekey_ike("s2s", now).unwrap();
        } else {
            p.b.rekey_ike("s2s", now).unwrap();
        }
        let (ea, eb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
        for ev in [&ea, &eb] {
            assert_eq!(
                ev.iter().filter(|e| matches!(e, Event::IkeSaUp { .. })).count(),
                1,
                "{ev:?}"
            );
            assert!(
                !ev.iter().any(|e| matches!(e, Event::ChildSaDown { .. })),
                "CHILD SAs survive: {ev:?}"
            );
            assert!(!ev.iter().any(|e| matches!(e, Event::Failed { .. })), "{ev:?}");
        }
        consistent(&pa, &pb);
        // The new IKE SA works: rekey the CHILD SA over it, then delete it all.
        let now = p.now;
        p.b.rekey_child("s2s", now).unwrap();
        step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
        consistent(&pa, &pb);
        assert_eq!(pa.up, 2);
        let now = p.now;
        p.a.terminate("s2s", now).unwrap();
        step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
        assert!(pa.inbound.is_empty() && pb.inbound.is_empty());
        assert!(
            !p.a.is_active("s2s") && !p.b.is_active("s2s"),
            "old and new IKE SAs gone"
        );
    }
}

#[test]
fn simultaneous_child_rekeys_leave_one_new_sa_whichever_nonce_is_lowest() {
    let mut outcomes = std::collections::HashSet::new();
    for seed in 30..50 {
        let (mut p, mut pa, mut pb) = established_pair(seed, Timers::default());
        let now = p.now;
        p.a.rekey_child("s2s", now).unwrap();
        p.b.rekey_child("s2s", now).unwrap();
        let (ea, eb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(10));
        assert!(
            !ea.iter().chain(eb.iter()).any(|e| matches!(e, Event::Failed { .. })),
            "seed {seed}"
        );
        consistent(&pa, &pb);
        assert_eq!(
            (pa.inbound.len(), pb.inbound.len()),
            (1, 1),
            "seed {seed}: one SA left: {pa:?} {pb:?}"
        );
        let a_logged = |ev: &[Event], s: &str| {
            ev.iter()
                .any(|e| matches!(e, Event::Log { line, .. } if line.contains(s)))
        };
        outcomes.insert(a_logged(&ea, "ours") && a_logged(&ea, "has the lowest nonce, deleting it"));
        assert!(
            a_logged(&ea, "rekey collision") && a_logged(&eb, "rekey collision"),
            "seed {seed}"
        );
    }
    assert_eq!(outcomes.len(), 2, "both sides must have lost a collision at least once");
}

#[test]
fn rekeys_by_time_keep_the_tunnel_consistent() {
    let timers = Timers {
        rekey_time: Duration::from_secs(60),
        life_time: Duration::from_secs(90),
        ike_rekey_time: Duration::from_secs(150),
        ike_lifetime: Duration::from_secs(200),
        ..Timers::default()
    };
    let (mut p, mut pa, mut pb) = established_pair(23, timers);
    let mut ups = 0;
    for _ in 0..60 {
        let (ea, _) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(10));
        ups += ea.iter().filter(|e| matches!(e, Event::IkeSaUp { .. })).count();
        consistent(&pa, &pb);
        assert!(pa.inbound.len() <= 2 && pb.inbound.len() <= 2);
    }
    // 600 s at a 54-60 s rekey time: about 10 CHILD rekeys, 4 IKE rekeys,
    // and never a hard expiry.
    assert!(pa.up + pb.up >= 16, "{} {}", pa.up, pb.up);
    assert!(ups >= 3, "IKE rekeys: {ups}");
    assert!(p.a.is_active("s2s"));
}

#[test]
fn dead_peer_is_detected_and_cleared_or_restarted() {
    for restart in [false, true] {
        let timers = Timers {
            dpd_delay: Duration::from_secs(10),
            dpd_restart: restart,
            ..Timers::default()
        };
        let (mut p, mut pa, mut pb) = established_pair(24, timers);
        p.faults.loss = 1.0; // the peer vanishes
                             // 10 s idle, then the liveness check and its retransmissions (165 s).
        let (ea, _) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(190));
        let f = failure(&ea).expect("a failure");
        assert!(
            f.to_string()
                .starts_with("peer not answering: INFORMATIONAL sent 6 times"),
            "{f}"
        );
        assert!(ea.iter().any(|e| matches!(e, Event::ChildSaDown { .. })));
        assert!(pa.inbound.is_empty());
        let restarted = ea
            .iter()
            .any(|e| matches!(e, Event::Log { line, .. } if line.contains("dpd_action = restart")));
        assert_eq!(restarted, restart);
        if restart {
            // The peer comes back: the tunnel is rebuilt.
            p.faults.loss = 0.0;
            let (ea, _) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(200));
            assert!(child(&ea).is_some(), "re-established: {ea:?}");
        }
    }
}

/// RFC 7296 §2.4 without dead peer detection configured (`dpd_delay` 0,
/// the default): a CHILD SA that only sends (the data plane saw nothing
/// come back) makes the engine check that the peer is alive, once per
/// silence. A peer that answers keeps the tunnel. One that lost its SAs
/// without a word (its DELETE dropped by a firewall, a restart) is found
/// dead after the check's retransmissions and the SAs go here too: torn
/// down on both sides, not left sending into a black hole until a rekey.
#[test]
fn one_way_traffic_checks_that_the_peer_is_alive() {
    let (mut p, mut pa, _pb) = established_pair(25, Timers::default());
    let spi_in = p.a.ike_sas()[0].children[0].spi_in;
    let now = p.now;
    // Too short a silence, an SA installed a moment ago, an SPI of no SA.
    assert!(!p.a.one_way_traffic(spi_in, Duration::from_secs(5), now));
    assert!(!p.a.one_way_traffic(spi_in, Duration::MAX, now));
    assert!(!p
        .a
        .one_way_traffic(0xdead_beef, Duration::MAX, now + Duration::from_secs(60)));
    // 20 s on, 15 s of sending without hearing back: a check, answered.
    p.now = p.now + Duration::from_secs(20);
    let now = p.now;
    assert!(p.a.one_way_traffic(spi_in, Duration::from_secs(15), now));
    assert!(
        !p.a.one_way_traffic(spi_in, Duration::from_secs(15), now),
        "one check at a time"
    );
    p.flush();
    let (ea, eb) = run_for(&mut p, Duration::from_secs(2));
    assert!(
        logged(
            &ea,
            "packets went out and none came back for 15s: checking that the peer is alive"
        ),
        "{ea:?}"
    );
    assert!(logged(&eb, "received INFORMATIONAL request 2 [ ]"), "{eb:?}");
    assert!(failure(&ea).is_none(), "{ea:?}");
    // The same silence goes on: we heard the peer since it began.
    let now = p.now + Duration::from_secs(1);
    assert!(!p.a.one_way_traffic(spi_in, Duration::from_secs(18), now));
    assert!(p.a.is_active("s2s"));

    // b loses its SAs without a word; a keeps sending, hears nothing.
    let ike = "aes128gcm16-prfsha256-x25519";
    p.b = Engine::new(
        vec![spec(B, A, ike, "aes128gcm16", "k", net2(), net1())],
        Box::new(SeededRng::from_u64(26)),
    );
    p.now = p.now + Duration::from_secs(30);
    let now = p.now;
    assert!(p.a.one_way_traffic(spi_in, Duration::from_secs(12), now));
    p.flush();
    let (ea, _) = run_for(&mut p, Duration::from_secs(200));
    pa.apply(&ea);
    let f = failure(&ea).expect("the peer is found dead");
    assert!(
        f.to_string()
            .starts_with("peer not answering: INFORMATIONAL sent 6 times"),
        "{f}"
    );
    assert!(ea.iter().any(|e| matches!(e, Event::ChildSaDown { .. })), "{ea:?}");
    assert!(pa.inbound.is_empty() && !p.a.is_active("s2s"));
    assert!(!logged(&ea, "initiating again"), "dpd_action clear: no restart");
}

#[test]
fn half_open_sas_expire_and_terminate_picks_the_established_sa() {
    let ike = "aes128gcm16-prfsha256-x25519";
    // An IKE_SA_INIT whose IKE_AUTH never comes (abandoned, or spoofed).
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "k", net2(), net1()),
        40,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    p.step(); // b received the request and answered
    let now = p.now;
    p.a.terminate("s2s", now).unwrap(); // a walks away without a word
    assert!(p.b.is_active("s2s"));
    let (_, eb) = run(&mut p, 60);
    assert!(!p.b.is_active("s2s"), "half-open SA still there");
    assert!(eb
        .iter()
        .any(|e| matches!(e, Event::Log { line, .. } if line.contains("half-open IKE_SA timed out"))));
    // A stale half-open SA next to an established one: terminate deletes
    // the established one, with a DELETE the peer sees.
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "k", net2(), net1()),
        41,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 5);
    check_established(&ea, &eb);
    let a_addr: SocketAddr = format!("{A}:500").parse().unwrap();
    let b_addr: SocketAddr = format!("{B}:500").parse().unwrap();
    let mut other = Engine::new(
        vec![spec(A, B, ike, "aes128gcm16", "k", net1(), net2())],
        Box::new(SeededRng::from_u64(9)),
    );
    other.initiate("s2s", p.now).unwrap();
    let init = other.poll_transmit().unwrap();
    let now = p.now;
    p.b.handle_datagram(now, b_addr, a_addr, &init.data);
    p.b.terminate("s2s", now).unwrap();
    let (ea, _) = run(&mut p, 10);
    assert!(
        ea.iter().any(|e| matches!(e, Event::IkeSaDown { .. })),
        "a saw the DELETE: {ea:?}"
    );
}

#[test]
fn cookies_are_demanded_past_the_threshold_and_the_initiator_complies() {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "k", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "k", net2(), net1()),
        50,
    );
    p.b.set_cookie_threshold(0);
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 30);
    check_established(&ea, &eb);
    assert_eq!(p.b.stats.cookies_sent, 1);
    let logs: Vec<&str> = ea
        .iter()
        .filter_map(|e| {
            if let Event::Log { line, .. } = e {
                Some(line.as_str())
            } else {
                None
            }
        })
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("received IKE_SA_INIT response 0 [ N(COOKIE) ]")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with("sending IKE_SA_INIT request 0 [ N(COOKIE) SA KE No")),
        "{logs:?}"
    );
    // A flood of spoofed requests with a forged cookie creates no state.
    let mut other = Engine::new(
        vec![spec(A, B, ike, "aes128gcm16", "k", net1(), net2())],
        Box::new(SeededRng::from_u64(51)),
    );
    let spoof: SocketAddr = "10.66.0.1:500".parse().unwrap();
    let b_addr: SocketAddr = format!("{B}:500").parse().unwrap();
    for _ in 0..100 {
        other.initiate("s2s", Millis::ZERO).unwrap();
        let t = other.poll_transmit().unwrap();
        p.b.handle_datagram(p.now, b_addr, spoof, &t.data);
    }
    assert_eq!(p.b.stats.cookies_sent, 1, "unknown peers get nothing at all");
}

fn ike_keys(ev: &[Event]) -> Vec<&crate::ikev2::IkeKeyInfo> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeSaKeys(k) => Some(k),
            _ => None,
        })
        .collect()
}

/// Key export: both ends report the same IKE SA keys (SPIs, suite, all
/// seven secrets) once IKE_SA_INIT is done, before IKE_AUTH, so that a
/// capture of a failed IKE_AUTH can still be decrypted.
#[test]
fn both_ends_report_the_same_ike_keys_before_ike_auth() {
    let ike = "aes128-sha256-modp2048";
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "one", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "two", net2(), net1()),
        11,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 30);
    // Wrong PSK: IKE_AUTH fails, the keys were reported all the same.
    assert!(child(&ea).is_none());
    let (ka, kb) = (ike_keys(&ea), ike_keys(&eb));
    assert_eq!((ka.len(), kb.len()), (1, 1));
    let (ka, kb) = (ka[0], kb[0]);
    assert_eq!((ka.spi_i, ka.spi_r), (kb.spi_i, kb.spi_r));
    assert_ne!(ka.spi_r, 0);
    assert!(ka.initiator && !kb.initiator);
    assert_eq!(ka.suite, kb.suite);
    assert_eq!(ka.keys, kb.keys);
    assert!(ka.keys.sk_ai.is_some(), "CBC has integrity keys");
}

/// `ike_sas()` shows what `show ike|child` print: states, suites, SPIs,
/// the CHILD SA's selectors; and a connecting SA names its exchange and try.
#[test]
fn views_show_established_and_connecting_sas() {
    use crate::ikev2::IkeState;
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "secret", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "secret", net2(), net1()),
        12,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, _) = run(&mut p, 5);
    let c = child(&ea).unwrap().clone();
    let (va, vb) = (p.a.ike_sas(), p.b.ike_sas());
    assert_eq!((va.len(), vb.len()), (1, 1));
    let (a, b) = (&va[0], &vb[0]);
    assert_eq!(a.state, IkeState::Established);
    assert_eq!((a.spi_i, a.spi_r), (b.spi_i, b.spi_r));
    assert!(a.initiator && !b.initiator);
    assert_eq!(a.suite, b.suite);
    assert!(a.established_at.is_some() && a.pending.is_none());
    assert_eq!(a.children.len(), 1);
    let ch = &a.children[0];
    assert_eq!((ch.spi_in, ch.spi_out), (c.spi_in, c.spi_out));
    assert_eq!((b.children[0].spi_in, b.children[0].spi_out), (c.spi_out, c.spi_in));
    assert_eq!(ch.local_ts, vec![net1()]);
    assert!(ch.active && !ch.rekeyed && !ch.udp_encap);

    // A peer that does not answer: CONNECTING, IKE_SA_INIT, counting tries.
    let mut e = Engine::new(
        vec![spec(A, B, ike, "aes128gcm16", "secret", net1(), net2())],
        Box::new(SeededRng::from_u64(3)),
    );
    e.initiate("s2s", Millis::ZERO).unwrap();
    e.handle_timeout(Millis(4_100));
    let v = e.ike_sas();
    assert_eq!(v[0].state, IkeState::Connecting);
    assert_eq!(v[0].pending, Some(crate::Exchange::IkeSaInit));
    assert_eq!((v[0].sends, v[0].tries), (2, 5));
}

/// A reload retires a connection: its name can no longer be initiated and
/// a peer's IKE_SA_INIT for it finds nothing.
#[test]
fn retired_connections_are_neither_initiated_nor_answered() {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut p = pair(
        spec(A, B, ike, "aes128gcm16", "secret", net1(), net2()),
        spec(B, A, ike, "aes128gcm16", "secret", net2(), net1()),
        13,
    );
    p.b.retire_conn("s2s");
    assert!(p.b.initiate("s2s", Millis::ZERO).is_err());
    assert_eq!(p.b.conn_names().count(), 0);
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run(&mut p, 3);
    assert!(child(&ea).is_none() && child(&eb).is_none());
    // Put back (as a reload that adds it again would): it answers.
    p.b.set_conn(spec(B, A, ike, "aes128gcm16", "secret", net2(), net1()));
    assert_eq!(p.b.conn_names().count(), 1);
}

// ---- PFS for CHILD SAs (RFC 7296 §1.2, §1.3, §2.17) ------------------------
//
// IKE_AUTH { IDi, AUTH, N(INIT_CONTACT), SA (no KE transform), TSi, TSr } -->
//          <-- { IDr, AUTH, SA, TSi, TSr }                  (no PFS: no KE)
// CREATE_CHILD_SA { N(REKEY_SA), SA (with KE), Ni, KEi, TSi, TSr } -->
//          <-- { SA, Nr, KEr, TSi, TSr }   KEYMAT = prf+(SK_d, g^ir | Ni | Nr)

use ikeda_crypto::ike::DhGroup;

fn logged(ev: &[Event], s: &str) -> bool {
    log_count(ev, s) > 0
}

/// How many log lines among `ev` contain `s`.
pub(crate) fn log_count(ev: &[Event], s: &str) -> usize {
    ev.iter()
        .filter(|e| matches!(e, Event::Log { line, .. } if line.contains(s)))
        .count()
}

/// The PFS group of the CHILD SAs an engine holds (old ones included).
fn child_groups(e: &Engine) -> Vec<Option<DhGroup>> {
    e.ike_sas()
        .iter()
        .flat_map(|s| s.children.iter().map(|c| c.suite.dh))
        .collect()
}

fn pfs_pair(esp_a: &str, esp_b: &str, seed: u64) -> (Pair<Engine, Engine>, Plane, Plane, Vec<Event>, Vec<Event>) {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut p = pair(
        spec(A, B, ike, esp_a, "k", net1(), net2()),
        spec(B, A, ike, esp_b, "k", net2(), net1()),
        seed,
    );
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (mut pa, mut pb) = (Plane::default(), Plane::default());
    let (ea, eb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
    (p, pa, pb, ea, eb)
}

#[test]
fn pfs_child_from_ike_auth_has_no_ke_and_rekeys_with_one_from_either_side() {
    for (esp, group) in [
        ("aes128gcm16-modp2048", DhGroup::Modp2048),
        ("aes128-sha256-ecp256", DhGroup::Ecp256),
        ("aes128gcm16-x25519", DhGroup::Curve25519),
    ] {
        let (mut p, mut pa, mut pb, ea, eb) = pfs_pair(esp, esp, 31);
        check_established(&ea, &eb);
        consistent(&pa, &pb);
        // §1.2: no KE transform in IKE_AUTH, so strongSwan's stripped
        // proposal matches ours; the CHILD SA it creates has no group.
        assert!(
            logged(
                &ea,
                "sending IKE_AUTH request 1 [ IDi AUTH N(INIT_CONTACT) SA TSi TSr V ]"
            ),
            "{esp}: {ea:?}"
        );
        assert_eq!(child_groups(&p.a), [None], "{esp}");
        assert_eq!(child_groups(&p.b), [None], "{esp}");
        for a_rekeys in [true, false] {
            let now = p.now;
            if a_rekeys {
                p.a.rekey_child("s2s", now).unwrap();
            } else {
                p.b.rekey_child("s2s", now).unwrap();
            }
            let (ea, eb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
            let (ei, er) = if a_rekeys { (&ea, &eb) } else { (&eb, &ea) };
            assert!(failure(&ea).is_none() && failure(&eb).is_none(), "{esp}: {ea:?} {eb:?}");
            assert!(
                logged(ei, "[ N(REKEY_SA) SA No KE TSi TSr ]") && logged(er, "[ SA No KE TSi TSr ]"),
                "{esp} a_rekeys={a_rekeys}: KEi and KEr\n{ei:?}\n{er:?}"
            );
            // Both ends derived the same keys (with g^ir), and send on them.
            consistent(&pa, &pb);
            assert_eq!((pa.inbound.len(), pb.inbound.len()), (1, 1), "{esp}: old SA deleted");
            assert_eq!(
                child_groups(&p.a),
                [Some(group)],
                "{esp}: the rekeyed CHILD SA records its group"
            );
            assert_eq!(child_groups(&p.b), [Some(group)], "{esp}");
            let (ci, cr) = (child(ei).unwrap(), child(er).unwrap());
            assert_eq!(
                (ci.enc_out.expose(), ci.enc_in.expose()),
                (cr.enc_in.expose(), cr.enc_out.expose())
            );
            assert_eq!(ci.auth_out, cr.auth_in);
        }
    }
}

/// The DH secret goes into KEYMAT (§2.17): recomputed from SK_d and the
/// rekey's nonces, prf+(SK_d, Ni | Nr) gives the keys of a rekey without a
/// group, and not those of a rekey with one (g^ir comes first there).
#[test]
fn pfs_shared_secret_goes_into_keymat() {
    use ikeda_crypto::ike::{ChildKeys, Role};
    for (esp, pfs) in [
        ("aes128gcm16", false),
        ("aes128gcm16-x25519", true),
        ("aes128-sha256-ecp256", true),
    ] {
        let (mut p, mut pa, mut pb, ea, _) = pfs_pair(esp, esp, 32);
        let k = ike_keys(&ea)[0].clone();
        let now = p.now;
        p.a.rekey_child("s2s", now).unwrap();
        let (ea, _) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
        let c = child(&ea).unwrap();
        let (ni, nr) = p.a.child_nonces(c.spi_in).expect("the rekey's nonces");
        let s = p.a.ike_sas()[0].children[0].suite;
        let without = ChildKeys::derive(k.suite.prf, &k.keys.sk_d, s.encr, s.integ, None, &ni, &nr).unwrap();
        let same = without.outbound(Role::Initiator).enc.expose() == c.enc_out.expose()
            && without.inbound(Role::Initiator).enc.expose() == c.enc_in.expose();
        assert_eq!(
            same,
            !pfs,
            "{esp}: KEYMAT {} g^ir",
            if pfs { "with" } else { "without" }
        );
        assert_eq!(s.dh.is_some(), pfs, "{esp}");
    }
}

#[test]
fn pfs_rekey_answered_invalid_ke_payload_is_retried_with_the_responders_group() {
    for a_rekeys in [true, false] {
        // The rekey's initiator prefers ECP-256; the responder takes only
        // Curve25519: INVALID_KE_PAYLOAD(CURVE_25519), then a second
        // request with a KEi of that group.
        let (i, r) = ("aes128gcm16-ecp256-x25519", "aes128gcm16-x25519");
        let (esp_a, esp_b) = if a_rekeys { (i, r) } else { (r, i) };
        let (mut p, mut pa, mut pb, ea, eb) = pfs_pair(esp_a, esp_b, 33);
        check_established(&ea, &eb);
        let now = p.now;
        if a_rekeys {
            p.a.rekey_child("s2s", now).unwrap();
        } else {
            p.b.rekey_child("s2s", now).unwrap();
        }
        let (ea, eb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
        let (ei, er) = if a_rekeys { (&ea, &eb) } else { (&eb, &ea) };
        assert!(failure(&ea).is_none() && failure(&eb).is_none());
        assert!(logged(er, "[ N(INVAL_KE) ]"), "{er:?}");
        assert!(
            logged(
                ei,
                "peer wants key exchange group CURVE_25519 for the CHILD_SA, retrying"
            ),
            "{ei:?}"
        );
        let kei = |ev: &[Event]| {
            ev.iter()
                .filter(|e| matches!(e, Event::Log { line, .. } if line.starts_with("sending CREATE_CHILD_SA request") && line.contains("[ N(REKEY_SA) SA No KE TSi TSr ]")))
                .count()
        };
        assert_eq!(kei(ei), 2, "the first request and the retry: {ei:?}");
        consistent(&pa, &pb);
        assert_eq!((pa.inbound.len(), pb.inbound.len()), (1, 1));
        assert_eq!(child_groups(&p.a), [Some(DhGroup::Curve25519)]);
        assert_eq!(child_groups(&p.b), [Some(DhGroup::Curve25519)]);
    }
}

/// A KEi of a group both proposals have is taken even if the responder
/// prefers another: no round trip.
#[test]
fn pfs_responder_takes_an_acceptable_kei_group_without_a_round_trip() {
    let (mut p, mut pa, mut pb, _, _) = pfs_pair("aes128gcm16-ecp256-x25519", "aes128gcm16-x25519-ecp256", 34);
    let now = p.now;
    p.a.rekey_child("s2s", now).unwrap();
    let (ea, eb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
    assert!(!logged(&eb, "INVAL_KE") && failure(&ea).is_none(), "{eb:?}");
    consistent(&pa, &pb);
    assert_eq!(child_groups(&p.b), [Some(DhGroup::Ecp256)]);
}

/// PFS required on one end only: IKE_AUTH still creates the CHILD SA (no KE
/// there), but a rekey without a KE is refused with NO_PROPOSAL_CHOSEN (no
/// CHILD SA keyed without the PFS asked for), and one with a KE is refused
/// by the end that has no group; the old SA keeps carrying traffic.
#[test]
fn pfs_rekey_without_ke_is_refused_and_the_old_sa_stays() {
    let (mut p, mut pa, mut pb, ea, eb) = pfs_pair("aes128gcm16", "aes128gcm16-modp2048", 35);
    check_established(&ea, &eb);
    for a_rekeys in [true, false] {
        let now = p.now;
        let old = pa.outbound.clone().unwrap().0;
        if a_rekeys {
            p.a.rekey_child("s2s", now).unwrap();
        } else {
            p.b.rekey_child("s2s", now).unwrap();
        }
        let (ea, eb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
        let (ei, er) = if a_rekeys { (&ea, &eb) } else { (&eb, &ea) };
        assert!(logged(er, "[ N(NO_PROP) ]"), "{ei:?} {er:?}");
        assert!(
            logged(ei, "CHILD_SA rekey failed (peer answered NO_PROPOSAL_CHOSEN)"),
            "{ei:?}"
        );
        if a_rekeys {
            assert!(
                logged(er, "peer offered aes128gcm16; we accept aes128gcm16-modp2048"),
                "{er:?}"
            );
        }
        // Both ends name it for `status`.
        assert!(
            matches!(failure(ei), Some(Failure::PeerRejectedProposals { exchange, .. }) if exchange.starts_with("CREATE_CHILD_SA")),
            "{ei:?}"
        );
        assert!(
            matches!(
                failure(er),
                Some(Failure::NoProposalChosen {
                    exchange: "CREATE_CHILD_SA",
                    ..
                })
            ),
            "{er:?}"
        );
        consistent(&pa, &pb);
        assert_eq!(pa.outbound.clone().unwrap().0, old, "still on the old SA");
        assert_eq!(child_groups(&p.a), [None]);
    }
}

/// RFC 7296 §1.3.1, §1.3.3: a CREATE_CHILD_SA whose proposal names a DH
/// group must carry a KEi of it. An initiator that leaves KEi out is asked
/// for it with INVALID_KE_PAYLOAD naming the group the responder chose
/// (from one group or two); no CHILD SA is keyed without PFS, and the old
/// SA keeps carrying traffic on both sides.
#[test]
fn pfs_rekey_whose_proposal_has_a_group_but_no_ke_is_asked_for_it() {
    for esp_b in ["aes128gcm16-modp2048", "aes128gcm16-x25519-modp2048"] {
        let (mut p, mut pa, mut pb, ea, eb) = pfs_pair("aes128gcm16-modp2048", esp_b, 37);
        check_established(&ea, &eb);
        let old = pa.outbound.clone().unwrap().0;
        p.a.omits_ke = true;
        let now = p.now;
        p.a.rekey_child("s2s", now).unwrap();
        let (ea, eb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(5));
        assert!(
            logged(&ea, "sending CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No TSi TSr ]"),
            "{esp_b}: {ea:?}"
        );
        assert!(
            logged(
                &eb,
                "refusing CREATE_CHILD_SA: KEi missing, the chosen proposal has MODP_2048: asking for it (INVALID_KE_PAYLOAD)"
            ),
            "{esp_b}: {eb:?}"
        );
        assert!(logged(&eb, "[ N(INVAL_KE) ]"), "{esp_b}: {eb:?}");
        // Neither side keyed a CHILD SA from it: one CHILD SA each, the
        // one from IKE_AUTH (no group), and traffic still on it.
        assert_eq!(child_groups(&p.a), [None], "{esp_b}: {ea:?}");
        assert_eq!(child_groups(&p.b), [None], "{esp_b}: {eb:?}");
        consistent(&pa, &pb);
        assert_eq!(pa.outbound.clone().unwrap().0, old, "{esp_b}: still on the old SA");
    }
}

/// A peer that puts KE transforms in IKE_AUTH anyway (RFC 7296 §1.2 says it
/// cannot) still gets its CHILD SA, without PFS: the responder ignores
/// them, as strongSwan does, whether or not its own proposal has a group.
#[test]
fn pfs_ke_transforms_in_ike_auth_are_ignored() {
    for esp_b in ["aes128gcm16-x25519", "aes128gcm16", "aes128gcm16-modp2048"] {
        let ike = "aes128gcm16-prfsha256-x25519";
        let mut p = pair(
            spec(A, B, ike, "aes128gcm16-x25519", "k", net1(), net2()),
            spec(B, A, ike, esp_b, "k", net2(), net1()),
            36,
        );
        p.a.ke_in_ike_auth = true;
        p.a.initiate("s2s", Millis::ZERO).unwrap();
        let (ea, eb) = run(&mut p, 5);
        check_established(&ea, &eb);
        assert_eq!(child_groups(&p.a), [None], "{esp_b}");
        assert_eq!(child_groups(&p.b), [None], "{esp_b}");
    }
}

// ---- reflection: retransmissions are answered only to the peer (point 5) ----

/// Two engines wired by hand, so a test sees every datagram: returns the
/// requests A sent, in order (IKE_SA_INIT first, then IKE_AUTH).
fn handshake_by_hand(a: &mut Engine, b: &mut Engine, now: Millis) -> Vec<Vec<u8>> {
    let mut requests = Vec::new();
    a.initiate("s2s", now).unwrap();
    for _ in 0..10 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            requests.push(t.data.clone());
            b.handle_datagram(now, t.remote, t.local, &t.data);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, t.remote, t.local, &t.data);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    requests
}

fn gcm_engines(seed: u64) -> (Engine, Engine) {
    let ike = "aes128gcm16-prfsha256-x25519";
    let a = Engine::new(
        vec![spec(A, B, ike, "aes128gcm16", "k", net1(), net2())],
        Box::new(SeededRng::from_u64(seed)),
    );
    let b = Engine::new(
        vec![spec(B, A, ike, "aes128gcm16", "k", net2(), net1())],
        Box::new(SeededRng::from_u64(seed ^ 0xffff)),
    );
    (a, b)
}

fn established(e: &Engine) -> usize {
    e.ike_sas()
        .iter()
        .filter(|s| s.state == crate::ikev2::IkeState::Established)
        .count()
}

/// The 28-byte IKE header of `request` alone, length fixed: all a spoofer
/// who saw (or guessed) the SPIs and message ID needs to send.
fn bare_header(request: &[u8]) -> Vec<u8> {
    let mut h = request[..28].to_vec();
    h[16] = 0; // next payload: none
    h[24..28].copy_from_slice(&28u32.to_be_bytes());
    h
}

#[test]
fn retransmitted_ike_auth_is_answered_only_when_authentic_and_from_the_peer() {
    let (mut a, mut b) = gcm_engines(60);
    let reqs = handshake_by_hand(&mut a, &mut b, Millis::ZERO);
    assert_eq!(reqs.len(), 2, "IKE_SA_INIT and IKE_AUTH");
    assert_eq!(established(&b), 1);
    let b_addr: SocketAddr = format!("{B}:500").parse().unwrap();
    let a_addr: SocketAddr = format!("{A}:500").parse().unwrap();
    let victim: SocketAddr = "10.66.0.9:500".parse().unwrap();
    let auth = &reqs[1];
    // A spoofed bare header, from a victim's address or from the peer's own.
    for from in [victim, a_addr] {
        b.handle_datagram(Millis(10), b_addr, from, &bare_header(auth));
        assert!(
            b.poll_transmit().is_none(),
            "a 28-byte header from {from} reflects nothing"
        );
    }
    // The real request replayed from another address: authentic, but not
    // from the peer, so nothing goes to that address either.
    b.handle_datagram(Millis(10), b_addr, victim, auth);
    assert!(b.poll_transmit().is_none(), "a replay from elsewhere reflects nothing");
    // The peer's real retransmission still gets the cached answer.
    let before = b.stats.retransmits_answered;
    b.handle_datagram(Millis(20), b_addr, a_addr, auth);
    let t = b.poll_transmit().expect("the cached IKE_AUTH response");
    assert_eq!(t.remote, a_addr);
    assert!(t.data.len() > 100);
    assert_eq!(b.stats.retransmits_answered, before + 1);
}

#[test]
fn retransmitted_ike_sa_init_is_answered_only_when_identical_and_from_the_same_source() {
    let (mut a, mut b) = gcm_engines(61);
    let b_addr: SocketAddr = format!("{B}:500").parse().unwrap();
    let a_addr: SocketAddr = format!("{A}:500").parse().unwrap();
    a.initiate("s2s", Millis::ZERO).unwrap();
    let init = a.poll_transmit().unwrap().data;
    b.handle_datagram(Millis::ZERO, b_addr, a_addr, &init);
    let first = b.poll_transmit().expect("IKE_SA_INIT response").data;
    // Same SPIi and message ID, but only a header (or the request with a
    // byte changed): not the request we answered, so no answer.
    let mut changed = init.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    for bogus in [bare_header(&init), changed] {
        b.handle_datagram(Millis(1), b_addr, a_addr, &bogus);
        assert!(
            b.poll_transmit().is_none(),
            "a different IKE_SA_INIT is not a retransmission"
        );
    }
    // The identical request from another port of the same host is not ours
    // to answer either (RFC 7296 §2.11: responses go where the request came from,
    // and this SA's request came from port 500).
    let other_port: SocketAddr = format!("{A}:501").parse().unwrap();
    b.handle_datagram(Millis(1), b_addr, other_port, &init);
    assert!(b.poll_transmit().is_none(), "the same bytes from another port");
    // The real retransmission gets the same answer.
    b.handle_datagram(Millis(2), b_addr, a_addr, &init);
    let again = b.poll_transmit().expect("cached IKE_SA_INIT response");
    assert_eq!(again.remote, a_addr);
    assert_eq!(again.data, first);
}

// ---- COOKIE secrets rotate (RFC 7296 §2.6) ---------------------------------

/// An initiator's IKE_SA_INIT retried with the COOKIE `b` minted at `now`.
fn request_with_cookie(b: &mut Engine, seed: u64, now: Millis) -> Vec<u8> {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut a = Engine::new(
        vec![spec(A, B, ike, "aes128gcm16", "k", net1(), net2())],
        Box::new(SeededRng::from_u64(seed)),
    );
    a.initiate("s2s", now).unwrap();
    let t = a.poll_transmit().unwrap();
    b.handle_datagram(now, t.remote, t.local, &t.data);
    let challenge = b.poll_transmit().expect("a COOKIE challenge");
    a.handle_datagram(now, challenge.remote, challenge.local, &challenge.data);
    a.poll_transmit().expect("the request again, with the COOKIE").data
}

/// Feed a request to `b`: did it get past the COOKIE check?
fn cookie_accepted(b: &mut Engine, now: Millis, request: &[u8]) -> bool {
    let before = b.stats.cookies_sent;
    let a_addr: SocketAddr = format!("{A}:500").parse().unwrap();
    let b_addr: SocketAddr = format!("{B}:500").parse().unwrap();
    b.handle_datagram(now, b_addr, a_addr, request);
    while b.poll_transmit().is_some() {}
    b.stats.cookies_sent == before
}

#[test]
fn cookie_secrets_rotate_and_the_previous_one_is_honoured_for_one_period() {
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut b = Engine::new(
        vec![spec(B, A, ike, "aes128gcm16", "k", net2(), net1())],
        Box::new(SeededRng::from_u64(70)),
    );
    b.set_cookie_threshold(0);
    let t0 = Millis::ZERO;
    let after_one = t0 + crate::ikev2::COOKIE_SECRET_LIFETIME + Duration::from_secs(1);
    let after_two = after_one + crate::ikev2::COOKIE_SECRET_LIFETIME;
    let fresh = request_with_cookie(&mut b, 71, t0);
    let once = request_with_cookie(&mut b, 72, t0);
    let twice = request_with_cookie(&mut b, 73, t0);
    let mut forged = request_with_cookie(&mut b, 74, t0);
    // The COOKIE is the first payload (§2.6): flip a bit of its hash.
    forged[28 + 8 + 3] ^= 0x80;
    assert!(!cookie_accepted(&mut b, t0, &forged), "a forged COOKIE");
    assert!(cookie_accepted(&mut b, t0, &fresh), "a COOKIE of the current secret");
    assert!(
        cookie_accepted(&mut b, after_one, &once),
        "a COOKIE of the previous secret"
    );
    // Minted before the secret changed twice: refused.
    assert!(!cookie_accepted(&mut b, after_two, &twice), "a COOKIE two secrets old");
}

// ---- INITIAL_CONTACT (RFC 7296 §2.4) ----------------------------------------

#[test]
fn a_restarted_peer_with_initial_contact_leaves_one_ike_sa() {
    let (mut a, mut b) = gcm_engines(80);
    handshake_by_hand(&mut a, &mut b, Millis::ZERO);
    assert_eq!(established(&b), 1);
    let mut ev = Vec::new();
    drain(&mut b, &mut ev);
    let old = child(&ev).expect("first CHILD SA").spi_in;
    // A restarts: same identity and PSK, no memory of its SAs; its
    // IKE_AUTH carries INITIAL_CONTACT.
    let (mut a2, _) = gcm_engines(81);
    handshake_by_hand(&mut a2, &mut b, Millis(1000));
    assert_eq!(established(&a2), 1);
    let mut ev = Vec::new();
    drain(&mut b, &mut ev);
    assert_eq!(established(&b), 1, "the stale IKE SA is gone: {:?}", b.ike_sas());
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::ChildSaDown { spi_in, .. } if *spi_in == old)),
        "the stale CHILD SA is taken down: {ev:?}"
    );
    assert!(ev.iter().any(|e| matches!(e, Event::IkeSaDown { .. })), "{ev:?}");
    assert_eq!(b.ike_sas()[0].children.len(), 1);
    assert_ne!(b.ike_sas()[0].children[0].spi_in, old);
}

#[test]
fn initial_contact_in_an_ike_auth_that_fails_deletes_nothing() {
    let (mut a, mut b) = gcm_engines(82);
    handshake_by_hand(&mut a, &mut b, Millis::ZERO);
    let ike = "aes128gcm16-prfsha256-x25519";
    let mut forger = Engine::new(
        vec![spec(A, B, ike, "aes128gcm16", "not the psk", net1(), net2())],
        Box::new(SeededRng::from_u64(83)),
    );
    handshake_by_hand(&mut forger, &mut b, Millis(1000));
    assert_eq!(established(&forger), 0);
    assert_eq!(established(&b), 1, "the authentic SA stays");
    assert_eq!(b.ike_sas()[0].spi_i, a.ike_sas()[0].spi_i);
}

mod both_initiate;
mod children;
mod collisions;
mod keepalive;
mod queue;
mod schedule;
mod versions;

/// `force_encap` on either side (RFC 7296 §2.23 faked NAT detection, as
/// strongSwan's `encap = yes`): both sides float to 4500 and the CHILD SA is
/// UDP-encapsulated without any NAT; neither side sends NAT keepalives as if
/// it were behind one. Without it on either side: raw ESP (the other tests).
#[test]
fn force_encap_floats_both_sides_to_4500_without_a_nat() {
    for (fa, fb) in [(true, false), (false, true), (true, true)] {
        let mut a = spec(A, B, "aes128gcm16-prfsha256-x25519", "aes128gcm16", "s", net1(), net2());
        let mut b = spec(B, A, "aes128gcm16-prfsha256-x25519", "aes128gcm16", "s", net2(), net1());
        a.force_encap = fa;
        b.force_encap = fb;
        let mut p = pair(a, b, 7);
        p.a.initiate("s2s", Millis::ZERO).unwrap();
        let (ea, eb) = run(&mut p, 30);
        let (ca, cb) = (
            child(&ea).expect("initiator CHILD SA"),
            child(&eb).expect("responder CHILD SA"),
        );
        for c in [ca, cb] {
            assert!(c.udp_encap, "force a={fa} b={fb}: {c:?}");
            assert_eq!((c.local.port(), c.remote.port()), (4500, 4500), "a={fa} b={fb}");
        }
        assert!(failure(&ea).is_none() && failure(&eb).is_none());
        let view = p.a.ike_sas();
        assert!(view.iter().all(|s| !s.behind_nat), "no real NAT: {view:?}");
    }
}
