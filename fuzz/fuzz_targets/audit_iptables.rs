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

use audit::flow::{Flow, Verdict, MAX_BYTES};
use audit::iptables;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let wan = (data.first().copied().unwrap_or(0) & 1 == 1).then_some("wan0");
    let Ok(rs) = iptables::Ruleset::parse(&text, wan) else {
        return;
    };
    assert!(text.len() <= MAX_BYTES);
    for f in Flow::every_ipsec() {
        let v = rs.verdict(&f);
        if let Verdict::Unknown(w) = &v {
            assert!(w.contains("line") || w.contains("chain"), "{w}");
        }
    }
});
