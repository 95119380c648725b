//! Shared by the IKEv1 engine targets: two engines with a deterministic RNG
//! and clock, driven by hand so the harness sees every datagram. B has two
//! connections with A's addresses.

#[path = "spec.rs"]
mod spec;

use ikeda_crypto::ike::SeededRng;
use ikeda_ike::ikev1::{Engine, V1ConnSpec};
use ikeda_ike::ikev2::{Event, V1KeyInfo};
use ikeda_ike::Millis;
use ikeda_wire::ikev2::IdPayload;
use std::net::SocketAddr;

pub const A: &str = "10.0.0.1:500";
pub const B: &str = "10.0.0.2:500";

fn spec(local: [u8; 4], remote: [u8; 4], l: [u8; 4], r: [u8; 4], aggressive: bool) -> V1ConnSpec {
    V1ConnSpec {
        spec: spec::spec("f", (local, remote), (l, r), "aes128-sha256-modp2048", "aes128-sha1"),
        aggressive,
        compress: false,
    }
}

pub struct Two {
    pub a: Engine,
    pub b: Engine,
    pub sa: SocketAddr,
    pub sb: SocketAddr,
    pub now: Millis,
    /// Every datagram, in order: (from A, bytes).
    pub seen: Vec<(bool, Vec<u8>)>,
    /// B's phase-1 keys, once derived.
    pub keys_b: Option<V1KeyInfo>,
}

impl Two {
    pub fn new(aggressive: bool) -> Two {
        let a = Engine::new(
            vec![spec([10, 0, 0, 1], [10, 0, 0, 2], [10, 1, 0, 0], [10, 2, 0, 0], aggressive)],
            Box::new(SeededRng::from_u64(1)),
        );
        // B also has a second connection with A's addresses, told apart by
        // the peer's identity (`f2.example`), so an identity the fuzzer
        // puts into MM5 or AM1 can choose it.
        let mut sibling = spec([10, 0, 0, 2], [10, 0, 0, 1], [10, 4, 0, 0], [10, 3, 0, 0], aggressive);
        sibling.spec.name = "f2".into();
        sibling.spec.remote_id = IdPayload::fqdn("f2.example");
        let b = Engine::new(
            vec![spec([10, 0, 0, 2], [10, 0, 0, 1], [10, 2, 0, 0], [10, 1, 0, 0], aggressive), sibling],
            Box::new(SeededRng::from_u64(2)),
        );
        Two {
            a,
            b,
            sa: A.parse().unwrap(),
            sb: B.parse().unwrap(),
            now: Millis(0),
            seen: Vec::new(),
            keys_b: None,
        }
    }

    /// Start A and hand `rounds` batches of datagrams back and forth.
    pub fn run(&mut self, rounds: usize) {
        self.a.initiate("f", self.now).unwrap();
        for _ in 0..rounds {
            self.now = Millis(self.now.0 + 1);
            while let Some(t) = self.a.poll_transmit() {
                self.b.handle_datagram(self.now, self.sb, self.sa, &t.data);
                self.seen.push((true, t.data));
            }
            while let Some(t) = self.b.poll_transmit() {
                self.a.handle_datagram(self.now, self.sa, self.sb, &t.data);
                self.seen.push((false, t.data));
            }
            self.drain();
        }
    }

    pub fn drain(&mut self) {
        while self.a.poll_event().is_some() {}
        while let Some(e) = self.b.poll_event() {
            if let Event::Ikev1Keys(k) = e {
                self.keys_b = Some(k);
            }
        }
    }

    /// Feed `msg` to A or B, then let time pass far enough for every timer.
    pub fn feed(&mut self, to_a: bool, msg: &[u8]) {
        if to_a {
            self.a.handle_datagram(self.now, self.sa, self.sb, msg);
        } else {
            self.b.handle_datagram(self.now, self.sb, self.sa, msg);
        }
        while self.a.poll_transmit().is_some() {}
        while self.b.poll_transmit().is_some() {}
        for later in [1_000, 100_000, 10_000_000] {
            let t = Millis(self.now.0 + later);
            self.a.handle_timeout(t);
            self.b.handle_timeout(t);
            self.a.poll_timeout();
            self.b.poll_timeout();
            let _ = self.a.ike_sas();
            let _ = self.b.ike_sas();
        }
        self.drain();
    }
}
