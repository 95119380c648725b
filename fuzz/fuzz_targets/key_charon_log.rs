//! `ikeda pcap --keys` on a charon log: arbitrary text fed line by line to
//! the level-4 log parser (hex dumps, proposals, NAT-D inputs, ESP SA
//! lines in any order, on any thread, with or without IKE SA tags).
//! Besides not panicking: what it gives is consistent, every key as long
//! as its algorithm needs, and the state it keeps stays bounded.
//!
//! The parser lives in the binary crate `ikeda`, so the module is
//! compiled in here from its source file.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/ikeda/src/pcap/keysrc.rs"]
mod keysrc;

use keysrc::{CharonLog, Record};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut log = CharonLog::new();
    let mut lines = 0;
    for (i, l) in text.lines().enumerate() {
        log.line(i + 1, l);
        lines += 1;
    }
    log.finish();
    // A key takes a header line and a row at least; an ESP record a
    // header, a row and the SPI line (two when the side is unknown).
    assert!(log.records.len() <= lines);
    assert!(log.problems.len() <= 201);
    for r in &log.records {
        match r {
            Record::Ikev2(k) => {
                assert_eq!(k.sk_ei.len(), k.encr.key_len());
                assert_eq!(k.sk_er.len(), k.encr.key_len());
                assert_eq!(k.sk_ai.as_ref().map(|a| a.len()), k.integ.map(|i| i.key_len()));
            }
            Record::Ikev1(k) => {
                assert!(k.suite.validate().is_ok());
                assert!(k.enc_key.len() > 0 && !k.iv.is_empty());
            }
            Record::Ikev1Cookie(_) => panic!("a charon log gives no bare cookie"),
            Record::Esp(e) => {
                assert_eq!(e.enc.len(), e.algorithm.enc_key_len());
                assert_eq!(e.auth.as_ref().map_or(0, |a| a.len()), e.algorithm.auth_key_len());
                assert!(e.src.is_some() && e.dst.is_some());
            }
        }
    }
});
