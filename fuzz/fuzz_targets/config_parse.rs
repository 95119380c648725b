//! The configuration file parser on arbitrary text.
//!
//! The parser lives in the binary crate `ikeda` (no library target), so the
//! module is compiled in here from its source file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

#[allow(dead_code)]
#[path = "../../crates/ikeda/src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::Config::parse(Path::new("fuzz.toml"), text) {
        Ok(c) => {
            assert!(!c.conns.is_empty());
            for conn in &c.conns {
                assert!(!conn.selectors.is_empty());
                for s in &conn.selectors {
                    let _ = s.to_string();
                    let _ = s.local.to_cidrs();
                    let _ = s.remote.to_cidrs();
                }
            }
            let _ = format!("{c:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
