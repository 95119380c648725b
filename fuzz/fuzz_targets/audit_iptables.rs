//! `ikeda audit --firewall` on iptables-save text (with and without --wan):
//! arbitrary bytes to the parser, then every IPsec flow (IKE 500, NAT-T
//! 4500, ESP; in and out; an IPv4 and an IPv6 peer) evaluated. Besides not
//! panicking (also on jump loops, deep JSON): the parser refuses input over
//! its size bound, and every unknown verdict names the line or the chain.
//!
//! The parser lives in the binary crate `ikeda`, so the module (and the
//! shared flow types beside it) is compiled in here from its source file.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/ikeda/src/audit"]
mod audit {
    pub mod flow;
    pub mod iptables;
}

use audit::flow::{Dir, Flow, Verdict, MAX_BYTES, PROTO_ESP, PROTO_UDP};
use audit::iptables;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let wan = (data.first().copied().unwrap_or(0) & 1 == 1).then_some("wan0");
    let Ok(rs) = iptables::Ruleset::parse(&text, wan) else {
        return;
    };
    assert!(text.len() <= MAX_BYTES);
    for (peer, local) in [("198.51.100.2", "192.0.2.1"), ("2001:db8::2", "2001:db8::1")] {
        for dir in [Dir::In, Dir::Out] {
            for (proto, port) in [(PROTO_UDP, 500), (PROTO_UDP, 4500), (PROTO_ESP, 0)] {
                let v = rs.verdict(&Flow {
                    dir,
                    proto,
                    port,
                    peer: peer.parse().unwrap(),
                    local: local.parse().unwrap(),
                });
                if let Verdict::Unknown(w) = &v {
                    assert!(w.contains("line") || w.contains("chain"), "{w}");
                }
            }
        }
    }
});
