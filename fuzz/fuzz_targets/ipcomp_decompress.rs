//! IPComp on untrusted input: the IPComp header parser and the bounded
//! DEFLATE decompressor (RFC 3173, RFC 2394). Whatever the bytes, no panic,
//! no output over 65535 bytes; what decompresses recompresses (if it is
//! worth it) to something that decompresses to the same bytes.

#![no_main]

use ikeda_esp::ipcomp::{IpcompScratch, HEADER_LEN, MAX_DECOMPRESSED};
use ikeda_wire::ipcomp::{IpcompPacket, IpcompRepr};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    // One scratch for the whole run, as a data plane thread keeps it: a
    // state leaking from one input into the next would show up here.
    static SCRATCH: RefCell<(IpcompScratch, IpcompScratch)> = RefCell::new(Default::default());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = IpcompPacket::new_checked(data) {
        let r = IpcompRepr::parse(&p);
        let mut b = [0u8; HEADER_LEN];
        r.emit(&mut b).unwrap();
        assert_eq!((b[0], &b[2..]), (data[0], &data[2..4]));
    }
    SCRATCH.with(|s| {
        let (rx, tx) = &mut *s.borrow_mut();
        let Ok(out) = rx.inflate(data) else { return };
        assert!(out.len() <= MAX_DECOMPRESSED);
        let plain = out.to_vec();
        if let Some(c) = tx.deflate(&plain) {
            assert!(c.len() + HEADER_LEN < plain.len());
            let c = c.to_vec();
            assert_eq!(rx.inflate(&c).unwrap(), &plain[..]);
        }
    });
});
