//! Two IKEv2 engines with seeded RNGs, 10.0.0.1 (initiator, `a`) and
//! 10.0.0.2 (`b`), in the simulator: the start of the IKEv2 engine targets.
//! The connection has two CHILD SAs (10.1/24 <-> 10.2/24 from IKE_AUTH,
//! 10.3/24 <-> 10.4/24 from the CREATE_CHILD_SA that follows), so a fuzzed
//! CREATE_CHILD_SA meets the responder's choice among several.

#[path = "spec.rs"]
mod spec;

use ikeda_crypto::ike::SeededRng;
use ikeda_ike::ikev2::{ConnSpec, Engine};
use ikeda_ike::ChildTs;
use ikeda_ike::sim::Pair;
use std::net::SocketAddr;

pub const A: &str = "10.0.0.1:500";
pub const B: &str = "10.0.0.2:500";

fn spec(local: [u8; 4], remote: [u8; 4], l: [u8; 4], r: [u8; 4], esp: &str) -> ConnSpec {
    let ike = "aes128gcm16-prfsha256-x25519,aes128-sha256-modp2048";
    let mut c = spec::spec("f", (local, remote), (l, r), ike, esp);
    c.children = vec![ChildTs {
        name: "f2".into(),
        local_ts: vec![spec::net([l[0], l[1] + 2, 0, 0])],
        remote_ts: vec![spec::net([r[0], r[1] + 2, 0, 0])],
    }];
    c
}

/// The initiator's next request message ID once the pair is up: after
/// IKE_SA_INIT (0), IKE_AUTH (1) and the second CHILD SA's CREATE_CHILD_SA (2).
pub const INITIATOR_NEXT_MID: u32 = 3;

/// The pair, connection "f" on both sides with these ESP proposals.
pub fn pair(esp: &str) -> Pair<Engine, Engine> {
    let (a, b): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
    let ea = Engine::new(
        vec![spec([10, 0, 0, 1], [10, 0, 0, 2], [10, 1, 0, 0], [10, 2, 0, 0], esp)],
        Box::new(SeededRng::from_u64(1)),
    );
    let eb = Engine::new(
        vec![spec([10, 0, 0, 2], [10, 0, 0, 1], [10, 2, 0, 0], [10, 1, 0, 0], esp)],
        Box::new(SeededRng::from_u64(2)),
    );
    Pair::new(ea, a, eb, b, 3)
}
