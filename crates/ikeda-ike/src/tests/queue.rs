//! Issue 11 point 2: work that arrives while an exchange is in flight
//! queues on the IKE SA and starts as soon as the response is in (RFC 7296
//! §2.3, window size 1), instead of being refused and retried 10 s later.
//! Each case runs to completion within one second of simulated time.

use super::*;

/// The position of the first log line of `ev` that starts with `head` and
/// contains `part`.
fn line_at(ev: &[Event], head: &str, part: &str) -> Option<usize> {
    ev.iter()
        .position(|e| matches!(e, Event::Log { line, .. } if line.starts_with(head) && line.contains(part)))
}

/// One second of simulated time after an engine call: the datagrams the
/// call queued are picked up first (the simulator collects them when it
/// steps, and nothing else may be due within the second).
fn one_second(p: &mut Pair<Engine, Engine>, pa: &mut Plane, pb: &mut Plane) -> (Vec<Event>, Vec<Event>) {
    let start = p.now;
    p.step();
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    drain(&mut p.a, &mut ea);
    drain(&mut p.b, &mut eb);
    pa.apply(&ea);
    pb.apply(&eb);
    let left = Duration::from_secs(1).saturating_sub(p.now.saturating_since(start));
    let (a2, b2) = step_both(p, pa, pb, left);
    ea.extend(a2);
    eb.extend(b2);
    (ea, eb)
}

fn no_failure(ea: &[Event], eb: &[Event]) {
    assert!(
        failure(ea).is_none() && failure(eb).is_none(),
        "{:?} {:?}",
        failure(ea),
        failure(eb)
    );
}

fn a_view(p: &Pair<Engine, Engine>) -> crate::ikev2::IkeSaView {
    let v = p.a.ike_sas();
    assert_eq!(v.len(), 1, "{v:?}");
    v.into_iter().next().unwrap()
}

#[test]
fn a_rekey_asked_for_during_a_liveness_check_runs_when_it_is_answered() {
    let timers = Timers {
        dpd_delay: Duration::from_secs(10),
        ..Timers::default()
    };
    let (mut p, mut pa, mut pb) = established_pair(70, timers);
    // Until a's liveness check (10 s of silence) is out, one step at a time.
    let mut seen = Vec::new();
    while !a_view(&p).dpd_checking {
        assert!(p.now < Millis(30_000), "no liveness check went out");
        let (ea, _) = step_both(&mut p, &mut pa, &mut pb, Duration::from_millis(1));
        seen.extend(ea);
    }
    let asked = p.now;
    p.a.rekey_child("s2s", asked).expect("queued behind the liveness check");
    assert_eq!(
        a_view(&p).pending,
        Some(crate::Exchange::Informational),
        "the liveness check is still in flight"
    );
    let (ea, eb) = one_second(&mut p, &mut pa, &mut pb);
    no_failure(&ea, &eb);
    let answered = line_at(&ea, "received", "INFORMATIONAL response").expect("the liveness check answered");
    let rekey = line_at(&ea, "sending", "CREATE_CHILD_SA request").expect("the rekey went out");
    assert!(answered < rekey, "the rekey waited for the answer");
    assert!(child(&ea).is_some_and(|c| c.replaces.is_some()), "rekeyed: {ea:?}");
    consistent(&pa, &pb);
    assert_eq!((pa.up, pb.up), (2, 2));
    assert_eq!(
        (pa.inbound.len(), pb.inbound.len()),
        (1, 1),
        "the old SA deleted on both sides"
    );
    assert!(a_view(&p).pending.is_none(), "nothing left in flight");
}

#[test]
fn a_delete_asked_for_during_a_rekey_runs_after_it() {
    // The IKE SA: the DELETE goes out once the CHILD rekey is answered, and
    // the peer sees it (it used to be dropped locally, leaving the peer's SA).
    let (mut p, mut pa, mut pb) = established_pair(71, Timers::default());
    let now = p.now;
    p.a.rekey_child("s2s", now).unwrap();
    assert_eq!(a_view(&p).pending, Some(crate::Exchange::CreateChildSa));
    p.a.terminate("s2s", now).unwrap();
    assert!(p.a.is_active("s2s"), "the DELETE waits for the rekey in flight");
    let (ea, eb) = one_second(&mut p, &mut pa, &mut pb);
    no_failure(&ea, &eb);
    assert!(
        child(&ea).is_some_and(|c| c.replaces.is_some()),
        "the rekey completed first"
    );
    assert!(
        eb.iter()
            .any(|e| matches!(e, Event::IkeSaDown { reason, .. } if reason == "deleted by the peer")),
        "the peer got the DELETE: {eb:?}"
    );
    assert!(!p.a.is_active("s2s") && !p.b.is_active("s2s"));
    assert!(pa.inbound.is_empty() && pb.inbound.is_empty());

    // A CHILD SA at its hard byte limit while its own rekey is in flight:
    // accepted, and deleted once (the rekey deletes it too).
    let (mut p, mut pa, mut pb) = established_pair(72, Timers::default());
    let old = a_view(&p).children[0].spi_in;
    let now = p.now;
    p.a.rekey_child("s2s", now).unwrap();
    assert!(p.a.delete_child_spi("s2s", old, now), "queued, not refused");
    let (ea, eb) = one_second(&mut p, &mut pa, &mut pb);
    no_failure(&ea, &eb);
    let deletes = ea
        .iter()
        .filter(|e| matches!(e, Event::Log { line, .. } if line.starts_with("sending INFORMATIONAL request") && line.contains("[ D ]")))
        .count();
    assert_eq!(deletes, 1, "one DELETE for the old SA: {ea:?}");
    consistent(&pa, &pb);
    assert_eq!((pa.inbound.len(), pb.inbound.len()), (1, 1));
    assert!(!pa.inbound.contains_key(&old));
}

#[test]
fn a_byte_lifetime_rekey_during_an_ike_rekey_runs_on_the_new_ike_sa() {
    let (mut p, mut pa, mut pb) = established_pair(73, Timers::default());
    let spi = a_view(&p).children[0].spi_in;
    let now = p.now;
    p.a.rekey_ike("s2s", now).unwrap();
    assert_eq!(a_view(&p).pending, Some(crate::Exchange::CreateChildSa));
    assert!(
        p.a.rekey_child_spi("s2s", spi, now),
        "the data plane's rekey is accepted while the IKE rekey is in flight"
    );
    assert!(
        p.a.rekey_child_spi("s2s", spi, now),
        "asked again: still accepted, queued once"
    );
    let (ea, eb) = one_second(&mut p, &mut pa, &mut pb);
    no_failure(&ea, &eb);
    assert_eq!(
        ea.iter().filter(|e| matches!(e, Event::IkeSaUp { .. })).count(),
        1,
        "the IKE SA rekeyed"
    );
    let rekeys: Vec<_> = ea
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaUp(c) => Some(c.replaces),
            _ => None,
        })
        .collect();
    assert_eq!(rekeys, vec![Some(spi)], "the CHILD SA rekeyed once: {ea:?}");
    // Over the new IKE SA, whose message IDs start at 0 (§2.18): the work
    // moved with the CHILD SA.
    assert!(
        line_at(&ea, "sending", "CREATE_CHILD_SA request 0 [ N(REKEY_SA)").is_some(),
        "{ea:?}"
    );
    consistent(&pa, &pb);
    assert_eq!((pa.inbound.len(), pb.inbound.len()), (1, 1));
    assert!(p.a.is_active("s2s") && p.b.is_active("s2s"));
}
