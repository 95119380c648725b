//! Issue 11 point 1: one retransmission schedule for both versions, from
//! the same [`RetransmitPolicy`]: strongSwan's `retransmit_tries = 5`, the
//! original and 5 resends after 4, 7.2, 13, 23.3 and 42 s, then 75.6 s
//! more before the exchange is given up (IKEv1 used to send 5 times,
//! starting after 7.2 s).

use super::*;
use crate::ikev1::{self, V1ConnSpec};
use crate::sim::Peer;

/// When each datagram of an unanswered IKE_SA_INIT / Main Mode went out,
/// the failure reported, and when.
fn schedule<E: Peer>(mut e: E, mut failure: impl FnMut(&mut E) -> Option<Failure>) -> (Vec<u64>, Failure, u64) {
    let mut sent = Vec::new();
    let mut now = Millis::ZERO;
    loop {
        while e.poll_transmit().is_some() {
            sent.push(now.0);
        }
        if let Some(f) = failure(&mut e) {
            return (sent, f, now.0);
        }
        now = e.poll_timeout().expect("a timer while the exchange is in flight");
        e.handle_timeout(now);
    }
}

#[test]
fn ikev1_and_ikev2_resend_on_the_same_schedule() {
    let want = vec![0, 4000, 11_200, 24_160, 47_488, 89_478];
    let ike = "aes128-sha256-modp2048";
    let rng = || Box::new(SeededRng::from_u64(80));

    let mut v2 = Engine::new(vec![spec(A, B, ike, "aes128-sha1", "k", net1(), net2())], rng());
    v2.initiate("s2s", Millis::ZERO).unwrap();
    let (sent, why, at) = schedule(v2, |e| {
        std::iter::from_fn(|| e.poll_event()).find_map(|ev| match ev {
            Event::Failed { why, .. } => Some(why),
            _ => None,
        })
    });
    assert_eq!(sent, want, "IKEv2");
    assert_eq!(
        why.to_string(),
        format!("peer not answering: IKE_SA_INIT sent 6 times to {B}:500 without a response")
    );
    assert_eq!(at, 165_060);

    let v1spec = V1ConnSpec {
        spec: spec(A, B, ike, "aes128-sha1", "k", net1(), net2()),
        aggressive: false,
        compress: false,
    };
    let mut v1 = ikev1::Engine::new(vec![v1spec], rng());
    v1.initiate("s2s", Millis::ZERO).unwrap();
    let (sent, why, at) = schedule(v1, |e| {
        std::iter::from_fn(|| e.poll_event()).find_map(|ev| match ev {
            Event::Failed { why, .. } => Some(why),
            _ => None,
        })
    });
    assert_eq!(sent, want, "IKEv1, as IKEv2");
    assert_eq!(
        why.to_string(),
        format!("peer not answering: ID_PROT sent 6 times to {B}:500 without a response")
    );
    assert_eq!(at, 165_060);
}

/// IKEv1's answer to a retransmitted message goes where the message came
/// from, and only there: the same bytes from another port get nothing (a
/// spoofer would have our answer reflected at the address it names).
#[test]
fn ikev1_answers_a_retransmission_only_where_it_came_from() {
    let ike = "aes128-sha256-modp2048";
    let v1 = |local: &str, remote: &str, seed| {
        let spec = V1ConnSpec {
            spec: spec(local, remote, ike, "aes128-sha1", "k", net1(), net2()),
            aggressive: false,
            compress: false,
        };
        ikev1::Engine::new(vec![spec], Box::new(SeededRng::from_u64(seed)))
    };
    let (mut a, mut b) = (v1(A, B, 81), v1(B, A, 82));
    let (sa, sb): (SocketAddr, SocketAddr) = (format!("{A}:500").parse().unwrap(), format!("{B}:500").parse().unwrap());
    a.initiate("s2s", Millis::ZERO).unwrap();
    let mm1 = a.poll_transmit().unwrap().data;
    b.handle_datagram(Millis(0), sb, sa, &mm1);
    let mm2 = b.poll_transmit().unwrap().data;
    let elsewhere: SocketAddr = format!("{A}:4501").parse().unwrap();
    b.handle_datagram(Millis(1000), sb, elsewhere, &mm1);
    assert!(b.poll_transmit().is_none(), "nothing goes to another port");
    assert_eq!((b.stats.retransmits_answered, b.stats.retransmits_refused), (0, 1));
    b.handle_datagram(Millis(4000), sb, sa, &mm1);
    let again = b.poll_transmit().expect("MM2 again");
    assert_eq!((again.remote, again.data), (sa, mm2));
    assert_eq!(b.stats.retransmits_answered, 1);
}
