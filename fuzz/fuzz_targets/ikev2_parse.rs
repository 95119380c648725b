//! IKEv2 message and payload parsers on untrusted input: a whole datagram
//! (`Message::parse`), and the decrypted content of an SK payload
//! (`Message::parse_inner`) starting with every payload type. Whatever
//! parses must emit, and the emitted bytes must parse to the same value.

#![no_main]

use ikeda_wire::ikev2::{self, Message, PayloadType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(m) => {
            let bytes = m.emit().expect("a parsed message emits");
            assert!(bytes.len() <= data.len(), "emit grew the message");
            assert_eq!(
                Message::parse(&bytes).as_ref(),
                Ok(&m),
                "emit(parse(x)) parses differently"
            );
            let _ = m.summary();
            if let Some(sk) = m.sk() {
                let _ = Message::parse_inner(sk.first_payload, &sk.body);
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.fault(), ikev2::unsupported_critical_payload(&e));
        }
    }

    // The first byte picks the first payload type, the rest is the chain.
    if let Some((&first, rest)) = data.split_first() {
        for t in [first, 33 + first % 22] {
            if let Ok(payloads) = Message::parse_inner(PayloadType(t), rest) {
                let bytes = ikev2::emit_payload_chain(&payloads).expect("parsed payloads emit");
                let again = Message::parse_inner(ikev2::first_payload_type(&payloads), &bytes);
                assert_eq!(again.as_ref(), Ok(&payloads), "inner chain round trip");
                let _ = ikev2::payload_names(&payloads);
            }
        }
    }
});
