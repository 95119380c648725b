//! Issue 11 point 4: several CHILD SAs per IKE SA (RFC 7296 §1.3.1), and
//! the responder's choice among several connections between the same two
//! gateways by identity and traffic selectors (§2.9).

use super::*;
use crate::ChildTs;

fn net(third: u8) -> TsRange {
    ts(&format!("10.{third}.0.0"), &format!("10.{third}.0.255"))
}

/// A connection whose CHILD SAs are `net1 <-> net2` (the first) and then
/// `10.(k).0.0/24 <-> 10.(k+100).0.0/24` for each k of `more` (mirrored
/// on the responder with `mirror`).
fn with_children(mut c: ConnSpec, more: &[u8], mirror: bool) -> ConnSpec {
    for &k in more {
        let (l, r) = if mirror {
            (net(k + 100), net(k))
        } else {
            (net(k), net(k + 100))
        };
        c.children.push(ChildTs {
            name: format!("child{k}"),
            local_ts: vec![l],
            remote_ts: vec![r],
        });
    }
    c
}

fn ups(ev: &[Event]) -> Vec<&crate::ikev2::ChildSaInfo> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaUp(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn downs(ev: &[Event]) -> Vec<u32> {
    ev.iter()
        .filter_map(|e| match e {
            Event::ChildSaDown { spi_in, .. } => Some(*spi_in),
            _ => None,
        })
        .collect()
}

const IKE: &str = "aes128gcm16-prfsha256-x25519";

#[test]
fn three_child_sas_come_up_one_after_another_and_rekey_on_their_own() {
    for esp in ["aes128gcm16", "aes128gcm16-x25519"] {
        let a = with_children(spec(A, B, IKE, esp, "k", net1(), net2()), &[1, 2], false);
        let b = with_children(spec(B, A, IKE, esp, "k", net2(), net1()), &[1, 2], true);
        let mut p = pair(a, b, 41);
        p.a.initiate("s2s", Millis::ZERO).unwrap();
        let (ea, eb) = run_for(&mut p, Duration::from_secs(5));
        assert!(failure(&ea).is_none() && failure(&eb).is_none(), "{ea:?}");
        let (ua, ub) = (ups(&ea), ups(&eb));
        assert_eq!(ua.len(), 3, "three CHILD SAs on the initiator");
        assert_eq!(ub.len(), 3, "three CHILD SAs on the responder");
        for k in 0..3 {
            let x = ua.iter().find(|c| c.pair == k).expect("initiator pair");
            let y = ub.iter().find(|c| c.pair == k).expect("responder pair");
            assert_eq!((x.spi_in, x.spi_out), (y.spi_out, y.spi_in), "pair {k}");
            assert_eq!(x.enc_out, y.enc_in);
            assert_eq!(x.local_ts, y.remote_ts);
            assert_eq!(x.remote_ts, y.local_ts);
            let want = if k == 0 { net1() } else { net(k as u8) };
            assert_eq!(x.local_ts, vec![want], "pair {k} has its own selectors");
        }
        // Two CREATE_CHILD_SA exchanges, the second after the first.
        let creates: Vec<usize> = ea
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Event::Log { line, .. } if line.starts_with("creating CHILD_SA")))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(creates.len(), 2, "{ea:?}");
        let views = p.a.ike_sas();
        assert_eq!(views[0].children.len(), 3);
        // Rekey the second one: only it is replaced, on both sides.
        let spi = ua.iter().find(|c| c.pair == 1).unwrap().spi_in;
        let now = p.now;
        assert!(p.a.rekey_child_spi("s2s", spi, now));
        let (ea, eb) = run_for(&mut p, Duration::from_secs(5));
        assert!(failure(&ea).is_none() && failure(&eb).is_none(), "{ea:?}");
        let (ra, rb) = (ups(&ea), ups(&eb));
        assert_eq!(ra.len(), 1, "{ea:?}");
        assert_eq!((ra[0].pair, ra[0].replaces), (1, Some(spi)));
        assert_eq!(rb.len(), 1);
        assert_eq!(rb[0].pair, 1);
        assert_eq!(downs(&ea), vec![spi], "only the rekeyed SA goes");
        let left: Vec<(usize, u32)> = p.a.ike_sas()[0].children.iter().map(|c| (c.pair, c.spi_in)).collect();
        assert_eq!(left.len(), 3, "{left:?}");
        for c in &ua {
            if c.pair != 1 {
                assert!(left.contains(&(c.pair, c.spi_in)), "pair {} untouched", c.pair);
            }
        }
        // `rekey_child` without a CHILD SA named takes the connection's own.
        let now = p.now;
        p.b.rekey_child("s2s", now).unwrap();
        let (ea, eb) = run_for(&mut p, Duration::from_secs(5));
        assert!(failure(&ea).is_none() && failure(&eb).is_none(), "{eb:?}");
        let pairs: Vec<usize> = ups(&eb).iter().map(|c| c.pair).collect();
        assert_eq!(pairs, [0], "{eb:?}");
        assert_eq!(p.b.ike_sas()[0].children.len(), 3);
    }
}

#[test]
fn responder_refuses_a_child_none_of_its_own_match_and_keeps_the_others() {
    let a = with_children(spec(A, B, IKE, "aes128gcm16", "k", net1(), net2()), &[1, 2], false);
    // The responder knows child 1 only.
    let b = with_children(spec(B, A, IKE, "aes128gcm16", "k", net2(), net1()), &[1], true);
    let mut p = pair(a, b, 42);
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let (ea, eb) = run_for(&mut p, Duration::from_secs(5));
    assert_eq!(ups(&ea).len(), 2, "{ea:?}");
    assert_eq!(ups(&eb).len(), 2);
    assert!(
        matches!(failure(&ea), Some(Failure::TsUnacceptable { .. })),
        "{:?}",
        failure(&ea)
    );
    assert!(logged(&eb, "refusing CREATE_CHILD_SA: selectors"), "{eb:?}");
    assert!(
        logged(&eb, "sending CREATE_CHILD_SA response 3 [ N(TS_UNACCEPT) ]"),
        "{eb:?}"
    );
}

/// A narrower proposal than configured is narrowed into the child that
/// holds it (§2.9), and the one that holds it whole wins over a wider one.
#[test]
fn pick_child_prefers_the_child_that_holds_the_selectors() {
    let mut c = spec(B, A, IKE, "aes128gcm16", "k", ts("10.0.0.0", "10.255.255.255"), net1());
    c.children.push(ChildTs {
        name: "narrow".into(),
        local_ts: vec![net(5)],
        remote_ts: vec![net1()],
    });
    let (pair, l, r) = crate::ikev2::pick_child_for_tests(&c, &[net1()], &[net(5)]).unwrap();
    assert_eq!(
        (pair, l, r),
        (0, vec![net(5)], vec![net1()]),
        "the first holds it whole too"
    );
    let (pair, ..) = crate::ikev2::pick_child_for_tests(&c, &[net1()], &[ts("10.5.0.0", "10.5.1.255")]).unwrap();
    assert_eq!(pair, 0, "only the first holds 10.5.0.0-10.5.1.255 whole");
    let (pair, l, _) =
        crate::ikev2::pick_child_for_tests(&c, &[ts("192.168.11.0", "192.168.12.255")], &[net(5)]).unwrap();
    assert_eq!((pair, l), (0, vec![net(5)]), "narrowed");
    assert!(crate::ikev2::pick_child_for_tests(&c, &[net(9)], &[net(5)]).is_none());
}

/// Side `a` (initiator's addresses and nets) or `b` of two connections
/// `conn1`, `conn2` between the same gateways: `ikes[k]` their IKE
/// proposals, `psks[k]` their PSKs, net k <-> net k + 100; with `fqdn`
/// each its own identities (a1.example / b1.example, ...), else the
/// gateways' addresses for both.
fn two_conns(a_side: bool, ikes: [&str; 2], psks: [&str; 2], fqdn: bool) -> Vec<ConnSpec> {
    let (local, remote, us, them) = if a_side { (A, B, 'a', 'b') } else { (B, A, 'b', 'a') };
    (1..=2u8)
        .map(|k| {
            let (l, r) = if a_side {
                (net(k), net(k + 100))
            } else {
                (net(k + 100), net(k))
            };
            let i = usize::from(k - 1);
            let mut c = spec(local, remote, ikes[i], "aes128gcm16", psks[i], l, r);
            c.name = format!("conn{k}");
            if fqdn {
                c.local_id = IdPayload::fqdn(&format!("{us}{k}.example"));
                c.remote_id = IdPayload::fqdn(&format!("{them}{k}.example"));
            }
            c
        })
        .collect()
}

/// Two engines with these connections in the simulator.
fn engines(a: Vec<ConnSpec>, b: Vec<ConnSpec>, seed: u64) -> Pair<Engine, Engine> {
    let ea = Engine::new(a, Box::new(SeededRng::from_u64(seed)));
    let eb = Engine::new(b, Box::new(SeededRng::from_u64(seed ^ 0xffff)));
    let sa: SocketAddr = format!("{A}:500").parse().unwrap();
    let sb: SocketAddr = format!("{B}:500").parse().unwrap();
    Pair::new(ea, sa, eb, sb, seed)
}

/// Two connections between the same gateways, different IDs, PSKs and
/// selectors: the responder takes the one the initiator's IDi and TS name,
/// not the first by address, from either side and both at once.
#[test]
fn responder_chooses_the_connection_by_id_and_selectors() {
    let conns = |a_side| two_conns(a_side, [IKE, IKE], ["psk1", "psk2"], true);
    for (seed, who) in [(43, "a"), (44, "b"), (45, "both")] {
        let mut p = engines(conns(true), conns(false), seed);
        // The second connection first: the first by address is the wrong one.
        for name in ["conn2", "conn1"] {
            if who != "b" {
                p.a.initiate(name, p.now).unwrap();
            }
            if who != "a" {
                p.b.initiate(name, p.now).unwrap();
            }
            let (ea, eb) = run_for(&mut p, Duration::from_secs(10));
            assert!(failure(&ea).is_none() && failure(&eb).is_none(), "{name} {ea:?} {eb:?}");
            for (side, ev) in [("a", &ea), ("b", &eb)] {
                let u = ups(ev);
                assert!(!u.is_empty(), "{who}: {name} up on {side}");
                assert!(u.iter().all(|c| c.conn == name), "{who}: {side} named {:?}", u[0].conn);
            }
        }
        for e in [&p.a, &p.b] {
            let mut names: Vec<String> = e.ike_sas().iter().map(|s| s.conn.clone()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names, ["conn1", "conn2"], "{who}");
        }
    }
}

/// The same identity on two connections: the selectors decide.
#[test]
fn responder_chooses_by_selectors_when_the_ids_are_the_same() {
    let conns = |a_side| two_conns(a_side, [IKE, IKE], ["same", "same"], false);
    let mut p = engines(conns(true), conns(false), 46);
    p.a.initiate("conn2", Millis::ZERO).unwrap();
    let (ea, eb) = run_for(&mut p, Duration::from_secs(5));
    assert!(failure(&ea).is_none() && failure(&eb).is_none(), "{ea:?} {eb:?}");
    let u = ups(&eb);
    assert_eq!(u.len(), 1);
    assert_eq!((u[0].conn.as_str(), u[0].local_ts.clone()), ("conn2", vec![net(102)]));
}

/// IKE_SA_INIT takes the first connection by address whose IKE proposals
/// meet the offer, not the first by address alone.
#[test]
fn ike_sa_init_takes_a_connection_whose_proposals_fit() {
    let ikes = ["aes256gcm16-prfsha384-ecp384", IKE];
    // The initiator knows only the second connection.
    let a = two_conns(true, ikes, ["same", "same"], false).split_off(1);
    let mut p = engines(a, two_conns(false, ikes, ["same", "same"], false), 48);
    p.a.initiate("conn2", Millis::ZERO).unwrap();
    let (ea, eb) = run_for(&mut p, Duration::from_secs(5));
    assert!(failure(&ea).is_none() && failure(&eb).is_none(), "{ea:?} {eb:?}");
    assert_eq!(ups(&eb).first().map(|c| c.conn.as_str()), Some("conn2"));
}

/// The connection IKE_AUTH chooses must accept the suite IKE_SA_INIT
/// negotiated with another connection's proposals: the identity of a
/// connection with stricter IKE proposals does not get round them.
#[test]
fn ike_auth_does_not_choose_a_connection_that_refuses_the_ike_suite() {
    let strict = "aes256gcm16-prfsha384-ecp384";
    // The initiator's conn2 offers IKE's suite; the responder's conn2 takes
    // only the strict one, its conn1 IKE's suite.
    let a = two_conns(true, [IKE, IKE], ["same", "same"], true);
    let b = two_conns(false, [IKE, strict], ["same", "same"], true);
    let mut p = engines(a, b, 50);
    p.a.initiate("conn2", Millis::ZERO).unwrap();
    let (ea, eb) = run_for(&mut p, Duration::from_secs(5));
    assert!(ups(&ea).is_empty() && ups(&eb).is_empty(), "{eb:?}");
    assert!(
        matches!(failure(&eb), Some(Failure::IdMismatch { .. })),
        "{:?}",
        failure(&eb)
    );
    assert!(failure(&ea).is_some());
}
