//! `ikeda pcap --keys` on Wireshark's `ikev1_decryption_table`: arbitrary text, a line at a
//! time, through its parser (UAT quoting and escapes, hex fields,
//! algorithm names); the checks are common/key_table.rs's.
//!
//! The parser lives in the binary crate `ikeda`, so the module is
//! compiled in here from its source file.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/ikeda/src/pcap/keysrc.rs"]
mod keysrc;

#[path = "common/key_table.rs"]
mod key_table;

fuzz_target!(|data: &[u8]| key_table::check_table(data, keysrc::ikev1_table_line));
