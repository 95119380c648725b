//! The control socket's request parser on arbitrary bytes: a request line
//! as a local client may send it. Whatever the bytes: no panic; an error is
//! an error response that serializes; a request that parses has our
//! protocol version and survives a serialize/parse roundtrip unchanged
//! (what `ikeda` sends is what the daemon reads).
//!
//! The protocol lives in the binary crate `ikeda` (no library target), so
//! its I/O-free module is compiled in here from its source file.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/ikeda/src/control/protocol.rs"]
mod protocol;

fuzz_target!(|data: &[u8]| {
    // The daemon reads one line of at most 64 KiB, as UTF-8.
    let Ok(line) = std::str::from_utf8(data) else { return };
    match protocol::parse_request(line) {
        Ok(r) => {
            assert_eq!(r.version, protocol::PROTOCOL_VERSION);
            let again = serde_json::to_string(&r).expect("a parsed request serializes");
            let back = protocol::parse_request(&again).expect("a serialized request parses");
            assert_eq!(back.command, r.command, "{again}");
        }
        Err(resp) => {
            assert!(!resp.ok && resp.error.is_some());
            let s = serde_json::to_string(&resp).expect("an error response serializes");
            assert!(!s.contains('\n'), "one response, one line");
        }
    }
});
