//! Issue 11: one engine for both IKE versions. Two gateways, each one
//! [`crate::Engine`] with an IKEv2 and an IKEv1 connection to the other
//! over the same UDP 500: each datagram reaches the right version by its
//! header, each call by its connection's name, and the two tunnels come
//! up, rekey and go down side by side without touching each other.

use super::*;
use crate::ikev1::V1ConnSpec;
use crate::{Connection, Counter, IkeState};

type OneEngine = crate::Engine;

fn net(third: u8) -> TsRange {
    ts(&format!("10.{third}.0.0"), &format!("10.{third}.0.255"))
}

/// Gateway `local`'s two connections to `remote`: "v2" (IKEv2) between
/// net1 and net2, "v1" (IKEv1 Main Mode) between 10.1.0.0/24 and
/// 10.2.0.0/24, mirrored on the other side.
fn conns(local: &str, remote: &str, first: bool) -> Vec<Connection> {
    let (n1, n2, l1, l2) = if first {
        (net1(), net2(), net(1), net(2))
    } else {
        (net2(), net1(), net(2), net(1))
    };
    let mut v2 = spec(
        local,
        remote,
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
        "k2",
        n1,
        n2,
    );
    v2.name = "v2".into();
    let mut v1 = spec(local, remote, "aes128-sha256-modp2048", "aes128-sha1", "k1", l1, l2);
    v1.name = "v1".into();
    vec![
        Connection::V2(v2),
        Connection::V1(V1ConnSpec {
            spec: v1,
            aggressive: false,
            compress: false,
        }),
    ]
}

fn gateways(seed: u64) -> Pair<OneEngine, OneEngine> {
    // Each side's versions draw from streams of their own.
    let rngs = |side: u64| {
        let mut k = 0;
        move || -> Box<dyn ikeda_crypto::ike::Rng + Send> {
            k += 1;
            Box::new(SeededRng::from_u64(seed << 8 | side << 4 | k))
        }
    };
    let ea = OneEngine::new(conns(A, B, true), rngs(1));
    let eb = OneEngine::new(conns(B, A, false), rngs(2));
    let sa: SocketAddr = format!("{A}:500").parse().unwrap();
    let sb: SocketAddr = format!("{B}:500").parse().unwrap();
    Pair::new(ea, sa, eb, sb, seed)
}

/// The events of one connection.
fn of(ev: &[Event], conn: &str) -> Vec<Event> {
    ev.iter()
        .filter(|e| match e {
            Event::ChildSaUp(c) => c.conn == conn,
            Event::ChildSaActivate { conn: c, .. }
            | Event::ChildSaDown { conn: c, .. }
            | Event::IkeSaUp { conn: c, .. }
            | Event::IkeSaDown { conn: c, .. }
            | Event::Failed { conn: c, .. }
            | Event::Log { conn: c, .. } => c == conn,
            _ => false,
        })
        .cloned()
        .collect()
}

/// (connection, version, state) of each IKE SA, sorted.
fn ike_sas(e: &OneEngine) -> Vec<(String, u8, IkeState)> {
    let mut v: Vec<_> = e.ike_sas().into_iter().map(|s| (s.conn, s.version, s.state)).collect();
    v.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
    v
}

fn refused(c: &[Counter]) -> Vec<&Counter> {
    c.iter().filter(|c| c.value != 0).collect()
}

#[test]
fn one_engine_runs_an_ikev2_and_an_ikev1_tunnel_to_the_same_peer_side_by_side() {
    for seed in 0..4 {
        let mut p = gateways(seed);
        let mut planes: HashMap<(bool, &str), Plane> = HashMap::new();
        let apply = |planes: &mut HashMap<(bool, &str), Plane>, ea: &[Event], eb: &[Event]| {
            // Each side announced full UDP trains (in IKE_AUTH, in phase 1):
            // every CHILD SA of both versions says the peer takes them, the
            // rekeyed ones (on a new IKE SA, a new phase 1) too.
            for e in ea.iter().chain(eb) {
                if let Event::ChildSaUp(c) = e {
                    assert!(c.peer_takes_trains, "seed {seed}: {} {:08x}", c.conn, c.spi_in);
                }
            }
            for conn in ["v2", "v1"] {
                planes.entry((true, conn)).or_default().apply(&of(ea, conn));
                planes.entry((false, conn)).or_default().apply(&of(eb, conn));
            }
            assert!(
                failure(ea).is_none() && failure(eb).is_none(),
                "seed {seed}: {ea:?} {eb:?}"
            );
        };
        let check = |planes: &HashMap<(bool, &str), Plane>| {
            for conn in ["v2", "v1"] {
                consistent(&planes[&(true, conn)], &planes[&(false, conn)]);
            }
        };

        // Up: A initiates both; B answers each in its version.
        p.a.initiate("v2", p.now).unwrap();
        p.a.initiate("v1", p.now).unwrap();
        p.flush();
        let (ea, eb) = run_for(&mut p, Duration::from_secs(10));
        apply(&mut planes, &ea, &eb);
        check(&planes);
        let up = |sas: &[(String, u8, IkeState)]| {
            sas == [
                ("v1".to_string(), 1, IkeState::Established),
                ("v2".to_string(), 2, IkeState::Established),
            ]
        };
        assert!(
            up(&ike_sas(&p.a)) && up(&ike_sas(&p.b)),
            "{:?} {:?}",
            ike_sas(&p.a),
            ike_sas(&p.b)
        );
        for side in [true, false] {
            for conn in ["v2", "v1"] {
                assert_eq!(planes[&(side, conn)].up, 1, "seed {seed} {conn}");
            }
        }
        // The IKEv1 selectors went to the IKEv1 SA, the IKEv2 ones to IKEv2's.
        let ts_of = |ev: &[Event], conn: &str| child(&of(ev, conn)).map(|c| c.local_ts.clone());
        assert_eq!(ts_of(&ea, "v2"), Some(vec![net1()]));
        assert_eq!(ts_of(&ea, "v1"), Some(vec![net(1)]));

        // Rekey every SA of both from the responder, all asked at once: the
        // CHILD SAs are replaced make-before-break, the IKE SAs too.
        let sends_before: Vec<_> = ["v2", "v1"].map(|c| planes[&(false, c)].outbound.clone()).into();
        for conn in ["v2", "v1"] {
            p.b.rekey(conn, false, p.now).unwrap();
            p.b.rekey(conn, true, p.now).unwrap();
        }
        p.flush();
        let (ea, eb) = run_for(&mut p, Duration::from_secs(20));
        apply(&mut planes, &ea, &eb);
        check(&planes);
        // IKEv1 has no rekey exchange: B's new phase 1 replaces the old
        // one, which A must not take for both sides initiating at once.
        assert_eq!(
            log_count(&ea, "the peer began a new phase-1 SA while"),
            1,
            "seed {seed}: {ea:?}"
        );
        for (k, conn) in ["v2", "v1"].into_iter().enumerate() {
            assert_ne!(
                planes[&(false, conn)].outbound,
                sends_before[k],
                "seed {seed}: {conn} rekeyed"
            );
            assert!(
                of(&eb, conn).iter().any(|e| matches!(e, Event::IkeSaUp { .. })),
                "seed {seed}: {conn}'s IKE SA rekeyed: {eb:?}"
            );
        }
        assert!(
            up(&ike_sas(&p.a)) && up(&ike_sas(&p.b)),
            "{:?} {:?}",
            ike_sas(&p.a),
            ike_sas(&p.b)
        );

        // Down: B terminates the IKEv1 tunnel; the IKEv2 one stays.
        p.b.terminate("v1", p.now).unwrap();
        p.flush();
        let (ea, eb) = run_for(&mut p, Duration::from_secs(5));
        apply(&mut planes, &ea, &eb);
        let v2_only = vec![("v2".to_string(), 2, IkeState::Established)];
        assert_eq!((ike_sas(&p.a), ike_sas(&p.b)), (v2_only.clone(), v2_only));
        for side in [true, false] {
            assert!(planes[&(side, "v1")].inbound.is_empty(), "seed {seed}");
        }
        consistent(&planes[&(true, "v2")], &planes[&(false, "v2")]);
        let (ca, cb) = (p.a.counters(), p.b.counters());
        assert!(
            refused(&ca).is_empty() && refused(&cb).is_empty(),
            "seed {seed}: {:?} {:?}",
            refused(&ca),
            refused(&cb)
        );
    }
}

#[test]
fn a_datagram_goes_by_its_header_version_and_the_counters_say_who_counted() {
    let mut p = gateways(9);
    let now = p.now;
    let (a, b): (SocketAddr, SocketAddr) = (format!("{A}:500").parse().unwrap(), format!("{B}:500").parse().unwrap());
    // Headers of 28 octets for no SA of ours: IKEv1 (0x10) counts an unknown
    // cookie, IKEv2 (0x20) an unknown SPI, anything else is IKEv2's to refuse.
    let header = |version: u8, exchange: u8| {
        let mut h = vec![0u8; 28];
        h[..8].copy_from_slice(&7u64.to_be_bytes());
        h[8..16].copy_from_slice(&9u64.to_be_bytes());
        h[17] = version;
        h[18] = exchange;
        h[27] = 28;
        h
    };
    p.a.handle_datagram(now, a, b, &header(0x10, 5));
    p.a.handle_datagram(now, a, b, &header(0x20, 37));
    p.a.handle_datagram(now, a, b, &header(0x30, 37));
    let seen: Vec<_> = refused(&p.a.counters())
        .into_iter()
        .map(|c| (c.version, c.name, c.value))
        .collect();
    assert_eq!(
        seen,
        [(2, "malformed", 1), (2, "unknown_spi", 1), (1, "unknown_cookie", 1)],
        "{seen:?}"
    );
    assert!(p.a.poll_transmit().is_none(), "nothing answered to a forged header");
    // Every counter has its words; both versions are there.
    let all = p.a.counters();
    assert!(all.iter().all(|c| !c.meaning.is_empty()));
    assert!(all.iter().any(|c| c.version == 1) && all.iter().any(|c| c.version == 2));
}

#[test]
fn a_connection_moved_to_the_other_version_runs_only_there() {
    let mut p = gateways(3);
    let [v2, v1] = <[Connection; 2]>::try_from(conns(A, B, true)).ok().unwrap();
    // "v2" becomes IKEv1 (the reload terminated its SAs first), "v1" IKEv2.
    let (mut v2_now_v1, mut v1_now_v2) = (v1.spec().clone(), v2.spec().clone());
    v2_now_v1.name = "v2".into();
    v1_now_v2.name = "v1".into();
    p.a.set_conn(Connection::V1(V1ConnSpec {
        spec: v2_now_v1,
        aggressive: false,
        compress: false,
    }));
    p.a.set_conn(Connection::V2(v1_now_v2));
    let mut names = p.a.conn_names();
    names.sort();
    assert_eq!(names, ["v1", "v2"], "each name once");
    assert_eq!(p.a.connection("v2").map(|c| c.version()), Some(1));
    assert_eq!(p.a.connection("v1").map(|c| c.version()), Some(2));
    p.a.initiate("v2", p.now).unwrap();
    let sas = p.a.ike_sas();
    assert_eq!(sas.len(), 1);
    assert_eq!((sas[0].conn.as_str(), sas[0].version), ("v2", 1));
    p.a.retire_conn("v2");
    assert!(p.a.connection("v2").is_none() && p.a.initiate("v2", p.now).is_err());
}
