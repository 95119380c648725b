//! Issue 13 point 4 / issue 11 point 3: both sides initiate the same
//! connection at once. Each IKE_SA_INIT is answered, so two IKE SAs and
//! two CHILD SA pairs come up; exactly one of each must survive on both
//! sides, the other deleted with a DELETE, and traffic must never be sent
//! on an SA the other side cannot read or has deleted.

use super::*;

/// The established IKE SAs of an engine, by SPIs.
fn ike_spis(e: &Engine) -> Vec<(u64, u64)> {
    let mut v: Vec<_> = e
        .ike_sas()
        .iter()
        .filter(|s| s.state == crate::ikev2::IkeState::Established)
        .map(|s| (s.spi_i, s.spi_r))
        .collect();
    v.sort();
    v
}

/// Neither side sends on an SA that it or the other side has taken down.
/// (While IKE_AUTH is in flight the responder sends on a CHILD SA the
/// initiator has not installed yet, as IKEv2 always does; not a fault.)
fn sends_on_live_sas(a: &Plane, b: &Plane, gone_a: &[u32], gone_b: &[u32]) {
    if let Some((ao, _)) = a.outbound.clone() {
        assert!(!gone_b.contains(&ao), "a sends on {ao:08x}, which b deleted");
        assert!(
            a.inbound.values().any(|(_, out)| *out == ao),
            "a sends on an SA it deleted"
        );
    }
    if let Some((bo, _)) = b.outbound.clone() {
        assert!(!gone_a.contains(&bo), "b sends on {bo:08x}, which a deleted");
        assert!(
            b.inbound.values().any(|(_, out)| *out == bo),
            "b sends on an SA it deleted"
        );
    }
}

fn downs(ev: &[Event]) -> impl Iterator<Item = u32> + '_ {
    ev.iter().filter_map(|e| match e {
        Event::ChildSaDown { spi_in, .. } => Some(*spi_in),
        _ => None,
    })
}

/// Both initiate, `offset_ms` apart (b after a), with `faults`; step one
/// millisecond at a time for 30 s and check the planes at every step.
/// Returns the events of both sides.
fn both_initiate(
    seed: u64,
    offset_ms: u64,
    faults: Faults,
    b_keeps: bool,
) -> (Pair<Engine, Engine>, Vec<Event>, Vec<Event>) {
    let ike = "aes128gcm16-prfsha256-x25519";
    let a = spec(A, B, ike, "aes128gcm16", "k", net1(), net2());
    let b = spec(B, A, ike, "aes128gcm16", "k", net2(), net1());
    let mut p = pair(a, b, seed);
    p.b.keeps_duplicates = b_keeps;
    p.faults = faults;
    let (mut pa, mut pb) = (Plane::default(), Plane::default());
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    p.a.initiate("s2s", Millis::ZERO).unwrap();
    let mut b_started = false;
    let (mut gone_a, mut gone_b) = (Vec::new(), Vec::new());
    for _ in 0..30_000 {
        if !b_started && p.now >= Millis(offset_ms) {
            p.b.initiate("s2s", p.now).unwrap();
            b_started = true;
        }
        let (xa, xb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_millis(1));
        gone_a.extend(downs(&xa));
        gone_b.extend(downs(&xb));
        if b_keeps {
            // b stands for a peer that keeps both and sends on either: only
            // our side is checked step by step.
            sends_on_live_sas(&pa, &Plane::default(), &gone_a, &gone_b);
        } else {
            sends_on_live_sas(&pa, &pb, &gone_a, &gone_b);
        }
        ea.extend(xa);
        eb.extend(xb);
    }
    // Whatever is still in flight (a retransmitted IKE_SA_INIT, a lost
    // DELETE's retransmission, a half-open SA's timeout) runs its course.
    let (xa, xb) = step_both(&mut p, &mut pa, &mut pb, Duration::from_secs(200));
    ea.extend(xa);
    eb.extend(xb);
    // The end: one IKE SA, the same on both sides, one CHILD SA pair.
    assert_eq!(
        ike_spis(&p.a).len(),
        1,
        "seed {seed} +{offset_ms} ms: a keeps {:?}",
        ike_spis(&p.a)
    );
    assert_eq!(
        ike_spis(&p.a),
        ike_spis(&p.b),
        "seed {seed} +{offset_ms} ms: not the same IKE SA"
    );
    assert_eq!(
        (pa.inbound.len(), pb.inbound.len()),
        (1, 1),
        "seed {seed} +{offset_ms} ms: CHILD SAs {pa:?} {pb:?}"
    );
    assert_eq!(
        p.a.ike_sas().len() + p.b.ike_sas().len(),
        2,
        "seed {seed}: nothing half-open or deleting is left: {:?} {:?}",
        p.a.ike_sas()
            .iter()
            .map(|s| (s.spi_i, s.state, s.pending))
            .collect::<Vec<_>>(),
        p.b.ike_sas()
            .iter()
            .map(|s| (s.spi_i, s.state, s.pending))
            .collect::<Vec<_>>()
    );
    if b_keeps {
        let (ao, ak) = pa.outbound.clone().expect("a sends");
        assert_eq!(pb.inbound.get(&ao).map(|x| &x.0), Some(&ak), "b can read what a sends");
    } else {
        consistent(&pa, &pb);
    }
    assert!(
        ea.iter().chain(&eb).all(|e| !matches!(e, Event::Failed { .. })),
        "seed {seed}: a failure"
    );
    (p, ea, eb)
}

fn deleted(ev: &[Event], how: &str) -> usize {
    ev.iter()
        .filter(|e| matches!(e, Event::IkeSaDown { reason, .. } if reason.contains(how)))
        .count()
}

#[test]
fn simultaneous_initiations_leave_one_ike_sa_and_one_child_pair_on_both_sides() {
    // Offsets within one round trip (10 ms): both IKE_SA_INITs cross.
    let (mut by_a, mut by_b) = (0, 0);
    for seed in 0..40u64 {
        let (p, ea, eb) = both_initiate(100 + seed, seed % 8, Faults::default(), false);
        // Two IKE SAs came up (the duplicate was settled, not avoided)
        // and the side that created the loser deleted it, with a DELETE.
        assert_eq!(p.a.stats.duplicates_settled, 1, "seed {seed}");
        assert_eq!(p.b.stats.duplicates_settled, 1, "seed {seed}");
        let (a_del, b_del) = (
            deleted(&ea, "duplicate deleted by us"),
            deleted(&eb, "duplicate deleted by us"),
        );
        assert_eq!(a_del + b_del, 1, "seed {seed}: one side deletes");
        assert_eq!(
            deleted(&ea, "duplicate deleted by the peer") + deleted(&eb, "duplicate deleted by the peer"),
            1
        );
        by_a += a_del;
        by_b += b_del;
        assert!(logged(
            if a_del == 1 { &ea } else { &eb },
            "sending INFORMATIONAL request"
        ));
    }
    // The nonces decide, so either side's SA may go.
    assert!(by_a > 5 && by_b > 5, "a deleted {by_a}, b deleted {by_b}");
}

#[test]
fn simultaneous_initiations_settle_through_loss_duplication_and_reordering() {
    let faults = Faults {
        loss: 0.1,
        duplicate: 0.1,
        reorder: 0.2,
        ..Faults::default()
    };
    for seed in 0..30u64 {
        // Up to 30 ms apart, so with retransmissions some runs never make
        // two SAs at all: whatever happens, one is left.
        both_initiate(300 + seed, seed, faults, false);
    }
}

#[test]
fn a_peer_that_keeps_duplicates_gets_the_loser_deleted_by_us_after_the_grace() {
    let (mut ours, mut theirs) = (0, 0);
    for seed in 0..20u64 {
        let (p, ea, _) = both_initiate(500 + seed, seed % 5, Faults::default(), true);
        assert_eq!(p.a.stats.duplicates_settled, 1, "seed {seed}");
        assert_eq!(
            deleted(&ea, "duplicate deleted by us"),
            1,
            "seed {seed}: a deletes the loser itself"
        );
        // When b created the loser, a waited for b before deleting it.
        let waited = ea
            .iter()
            .any(|e| matches!(e, Event::Log { line, .. } if line.contains("waiting up to 5 s for the peer")));
        if waited {
            theirs += 1;
        } else {
            ours += 1;
        }
    }
    assert!(ours > 2 && theirs > 2, "ours {ours}, theirs {theirs}");
}

#[test]
fn initial_contact_is_not_sent_while_the_peer_sets_up_an_sa_with_us() {
    // Both IKE_SA_INITs cross: each side's IKE_AUTH goes out while it
    // answers the other's, so neither carries INITIAL_CONTACT (a peer
    // acting on it at once would drop its own SA without a DELETE).
    let (_, ea, eb) = both_initiate(700, 0, Faults::default(), false);
    for ev in [&ea, &eb] {
        assert!(logged(ev, "sending IKE_AUTH request"), "{ev:?}");
        assert!(!logged(ev, "N(INIT_CONTACT)"), "INITIAL_CONTACT sent: {ev:?}");
    }
}
