//! IKEv1 / ISAKMP parsers on untrusted input: a whole datagram
//! (`Header::parse`, `Message::parse`), and a payload chain as the engine
//! sees it after decrypting a message, starting with any payload type.
//! Whatever parses must emit, and the emitted bytes must parse to the same
//! payloads, and `encode_body` may differ from the received body only by
//! zeroing RESERVED octets (what the engine relies on when it hashes
//! `encode_body()` of a payload it parsed).

#![no_main]

use ikeda_wire::ikev1::{self, Header, Message, Payload};
use libfuzzer_sys::fuzz_target;

fn check_chain(first: u8, body: &[u8]) {
    let Ok((parsed, end)) = ikev1::parse_payloads(first, body) else {
        return;
    };
    assert!(end <= body.len(), "chain ends past its input");
    for p in &parsed {
        assert_eq!(p.whole.start + ikev1::GENERIC_HEADER_LEN, p.body.start);
        assert_eq!(p.whole.end, p.body.end);
        assert!(p.whole.end <= end);
        // encode_body reproduces the received body except for RESERVED
        // fields, which it zeroes: same length, and every octet that
        // differs is 0 in the encoding.
        let got = &body[p.body.clone()];
        let enc = p.payload.encode_body();
        assert_eq!(got.len(), enc.len(), "encode_body changed the length");
        assert!(
            got.iter().zip(&enc).all(|(g, e)| g == e || *e == 0),
            "encode_body changed a non-reserved octet: {got:02x?} -> {enc:02x?}"
        );
    }
    let list: Vec<Payload> = parsed.into_iter().map(|p| p.payload).collect();
    let bytes = ikev1::write_payloads(&list);
    assert_eq!(bytes.len(), end, "re-encoded chain has another length");
    let first_again = list.first().map_or(ikev1::payload_type::NONE, Payload::kind);
    let (again, end_again) = ikev1::parse_payloads(first_again, &bytes).expect("emitted chain parses");
    assert_eq!(end_again, bytes.len());
    let again: Vec<Payload> = again.into_iter().map(|p| p.payload).collect();
    assert_eq!(again, list, "write_payloads(parse_payloads(x)) parses differently");
    let _ = ikev1::summary(&list);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::parse(data) {
        assert!(h.length as usize <= data.len());
        let _ = h.exchange.name();
    }
    match Message::parse(data) {
        Ok(m) => {
            let list = m.payload_list();
            let bytes = Message::build(&m.header, &list);
            assert!(bytes.len() <= data.len(), "build grew the message");
            let again = Message::parse(&bytes).expect("a built message parses");
            assert_eq!(again.payload_list(), list, "build(parse(x)) parses differently");
            let want = Header {
                next_payload: list.first().map_or(0, Payload::kind),
                length: bytes.len() as u32,
                ..m.header.clone()
            };
            assert_eq!(again.header, want);
        }
        Err(e) => {
            let _ = (e.to_string(), e.fault());
        }
    }

    // The first byte picks the first payload type, the rest is the chain
    // (with trailing bytes standing in for CBC padding); the second try
    // steers towards the payload types we know.
    if let Some((&first, rest)) = data.split_first() {
        check_chain(first, rest);
        check_chain(1 + first % 13, rest);
    }
});
