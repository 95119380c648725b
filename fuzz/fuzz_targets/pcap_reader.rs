//! The capture reader on untrusted files: pcap/pcapng records, link
//! layers, IP datagrams and UDP, fragment reassembly. The file is fed as a
//! streaming reader does (in chunks whose size the first input byte picks),
//! so the decoder's Need/Record protocol is checked too: a record is never
//! longer than the bytes given, Need always asks for more than in hand and
//! never more than MAX_RECORD_LEN.

#![no_main]

use ikeda_wire::ip;
use ikeda_wire::pcap::{network_layer, CaptureDecoder, Next, MAX_RECORD_LEN};
use ikeda_wire::reassembly::{Limits, Reassembler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&chunk, file)) = input.split_first() else { return };
    let chunk = 1 + chunk as usize;
    let mut d = CaptureDecoder::new();
    let mut r = Reassembler::new(Limits {
        max_datagrams: 4,
        max_bytes: 4096,
        max_fragments: 8,
        timeout_nanos: 1_000_000_000,
    });
    let (mut buf, mut fed) = (Vec::new(), 0);
    loop {
        match d.next(&buf) {
            Err(e) => {
                let _ = e.to_string();
                return;
            }
            Ok(Next::Record { len, packet }) => {
                assert!(len > 0 && len <= buf.len());
                if let Some(p) = packet {
                    assert!(p.data.len() <= len);
                    if let Ok(Some(l3)) = network_layer(p.link_type, p.data) {
                        if let Ok(dg) = ip::datagram(l3) {
                            let _ = ip::udp(dg.payload);
                            if let Some(whole) = r.push(p.timestamp.as_nanos(), &dg) {
                                assert!(whole.payload.len() <= 65535 || dg.fragment.is_none());
                            }
                            let (n, bytes) = r.pending();
                            assert!(n <= 4 && bytes <= 4096);
                        }
                    }
                }
                buf.drain(..len);
            }
            Ok(Next::Need(n)) => {
                assert!(n > buf.len() && n <= MAX_RECORD_LEN);
                if fed == file.len() {
                    let _ = d.finish(buf.len());
                    return;
                }
                let take = chunk.min(file.len() - fed);
                buf.extend_from_slice(&file[fed..fed + take]);
                fed += take;
            }
        }
    }
});
