//! Wire parsers on untrusted input: IP flow keys and lengths, RFC 3948
//! classification, the ESP header and the decrypted ESP trailer.

#![no_main]

use ikeda_wire::esp::{EspPacket, Trailer};
use ikeda_wire::ip;
use ikeda_wire::udp_encap::{self, Udp4500Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = ip::flow_key(data);
    let claimed = ip::claimed_len(data);
    if let Ok(k) = &key {
        let _ = k.to_string();
        // A packet whose flow key parses has a consistent claimed length.
        let n = claimed.as_ref().expect("flow_key ok but claimed_len failed");
        assert!(*n <= data.len());
        assert_eq!(ip::flow_key(&data[..*n]).as_ref().ok(), Some(k));
    }
    if let Ok(n) = claimed {
        assert!(n <= data.len());
    }
    let _ = ip::version(data);

    match udp_encap::classify(data) {
        Ok(Udp4500Payload::Esp(p)) => assert_eq!(p, data),
        Ok(Udp4500Payload::Ike(p)) => assert_eq!(p, &data[udp_encap::NON_ESP_MARKER_LEN..]),
        Ok(Udp4500Payload::NatKeepalive) => assert_eq!(data, [0xff]),
        Err(_) => {}
    }

    if let Ok(p) = EspPacket::new_checked(data) {
        let _ = (p.spi(), p.sequence_number(), p.payload().len(), p.len(), p.to_string());
        assert_eq!(p.payload().len() + 8, data.len());
    }

    if let Ok((t, inner_len)) = Trailer::parse_and_check(data) {
        assert_eq!(inner_len + t.pad_length as usize + 2, data.len());
    }
});
