//! `ikeda audit --firewall` on iptables-save text: arbitrary bytes to the
//! parser, then every IPsec flow evaluated. Besides not panicking (also on
//! jump loops): the rule count stays within its bound.
//!
//! The parser lives in the binary crate `ikeda`, so the module is
//! compiled in here from its source file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

#[allow(dead_code)]
#[path = "../../crates/ikeda/src/audit/iptables.rs"]
mod iptables;

use iptables::{Dir, Flow, Ruleset, PROTO_ESP, PROTO_UDP};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(rs) = Ruleset::parse(&text) else { return };
    for dir in [Dir::In, Dir::Out] {
        for (proto, port) in [(PROTO_UDP, 500), (PROTO_UDP, 4500), (PROTO_ESP, 0)] {
            let _ = rs.verdict(&Flow { dir, proto, port, peer: Ipv4Addr::new(198, 51, 100, 2) });
        }
    }
});
