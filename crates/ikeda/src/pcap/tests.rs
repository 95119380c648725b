//! `ikeda pcap` on captures built here: every format variant reaches the
//! analyzer, IKE lines are in our log notation, ESP flows count gaps and
//! replays, fragments are put together, bad files say where.

use super::*;
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip::{build_ipv4, build_ipv6};
use ikeda_wire::pcap::{link_type, pcap_file_header, pcap_record, Timestamp};
use std::net::Ipv4Addr;

const GW1: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 11);
const GW2: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 12);

pub(super) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// IKEv2 header (RFC 7296 §3.1) followed by `body`, whose first payload is `first`.
fn ikev2(exchange: u8, flags: u8, mid: u32, spi_r: u64, first: u8, body: &[u8]) -> Vec<u8> {
    let mut m = 0x1122_3344_5566_7788u64.to_be_bytes().to_vec();
    m.extend_from_slice(&spi_r.to_be_bytes());
    m.extend_from_slice(&[first, 0x20, exchange, flags]);
    m.extend_from_slice(&mid.to_be_bytes());
    m.extend_from_slice(&((28 + body.len()) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// IKE_SA_INIT request with N(NATD_S_IP) N(NATD_D_IP).
fn sa_init() -> Vec<u8> {
    let body = [41, 0, 0, 8, 0, 0, 0x40, 0x04, 0, 0, 0, 8, 0, 0, 0x40, 0x05];
    ikev2(34, 0x08, 0, 0, 41, &body)
}

/// IKE_AUTH response 1 with an SK payload of 64 bytes (first inner payload IDr).
fn auth_response() -> Vec<u8> {
    let mut body = vec![36, 0, 0, 68];
    body.extend_from_slice(&[0xab; 64]);
    ikev2(35, 0x20, 1, 0x99, 46, &body)
}

/// strongSwan 5.9's Main Mode 1 (crates/ikeda-wire/src/ikev1/tests.rs).
const MM1: &str = "8d2272e1e6cda98900000000000000000110020000000000000000b00d00003400000001000000010000002801010001000000200101000080010005800200028004000280030001800b0001800c3de00d00000c09002689dfd6b7120d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d3800000000d0000144a131c81070358455c5728f20e95452f0000001490cb80913ebb696e086381b5ec427b1f";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn esp(spi: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut e = spi.to_be_bytes().to_vec();
    e.extend_from_slice(&seq.to_be_bytes());
    e.resize(len, 0x5a);
    e
}

fn ts(ms: u64) -> Timestamp {
    Timestamp {
        secs: 1_700_000_000 + ms / 1000,
        nanos: (ms % 1000) as u32 * 1_000_000,
    }
}

/// A raw-IP pcap of `packets`.
fn raw_pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut f = pcap_file_header(link_type::RAW, 65535, false);
    for (i, p) in packets.iter().enumerate() {
        f.extend(pcap_record(ts(i as u64 * 10), p, p.len() as u32, false));
    }
    f
}

/// Run the analyzer over a file: (stdout, warnings, read result).
fn run(file: &[u8], verbose: bool, json: bool) -> (String, Vec<String>, Result<(), String>) {
    let mut out = Vec::new();
    let mut a = Analyzer::new(Limits::default(), verbose, json);
    let mut format = String::new();
    if json {
        out.extend_from_slice(b"{\"file\":\"t\",\"messages\":[");
    }
    let r = read_capture(file, |p| a.packet(p, &mut out), &mut format).map_err(|e| e.to_string());
    a.finish(&format, &mut out);
    (String::from_utf8(out).unwrap(), a.warnings(), r)
}

fn conversation() -> Vec<Vec<u8>> {
    let mut p = vec![
        build_ipv4(GW1, GW2, IpProtocol::UDP, &udp(500, 500, &sa_init())),
        build_ipv4(GW1, GW2, IpProtocol::UDP, &udp(500, 500, &unhex(MM1))),
    ];
    let mut marked = vec![0, 0, 0, 0];
    marked.extend(auth_response());
    p.push(build_ipv4(GW2, GW1, IpProtocol::UDP, &udp(4500, 4500, &marked)));
    // ESP: 1, 2, 5, 3, 3 (a replay), then 6; and in UDP: 1, 2; a keepalive.
    for seq in [1, 2, 5, 3, 3, 6] {
        p.push(build_ipv4(GW1, GW2, IpProtocol::ESP, &esp(0xc0de_0001, seq, 100)));
    }
    for seq in [1, 2] {
        p.push(build_ipv4(
            GW2,
            GW1,
            IpProtocol::UDP,
            &udp(4500, 4500, &esp(0xc0de_0002, seq, 120)),
        ));
    }
    p.push(build_ipv4(GW2, GW1, IpProtocol::UDP, &udp(4500, 4500, &[0xff])));
    p
}

#[test]
fn ike_lines_in_log_notation_and_esp_flows() {
    let (out, warnings, r) = run(&raw_pcap(&conversation()), false, false);
    r.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "  0.000000 #1 192.168.50.11:500 -> 192.168.50.12:500 IKE_SA_INIT request 0 [ N(NATD_S_IP) N(NATD_D_IP) ] \
         1122334455667788_i 0000000000000000_r"
    );
    assert_eq!(
        lines[1],
        "  0.010000 #2 192.168.50.11:500 -> 192.168.50.12:500 ID_PROT request 0 [ SA V V V V V ] \
         8d2272e1e6cda989_i 0000000000000000_r"
    );
    assert_eq!(
        lines[2],
        "  0.020000 #3 192.168.50.12:4500 -> 192.168.50.11:4500 IKE_AUTH response 1 [ E ] \
         1122334455667788_i 0000000000000099_r encrypted 64 bytes"
    );
    assert_eq!(lines[3], "");
    assert_eq!(lines[4], "ESP flows:");
    assert_eq!(
        lines[5],
        "  192.168.50.11 -> 192.168.50.12 ESP SPI 0xc0de0001: 6 packets, 600 bytes, seq 1-6, 1 gaps, 1 replays, \
         1 reordered, 0.030-0.080 s (frames 4-9)"
    );
    assert_eq!(
        lines[6],
        "  192.168.50.12 -> 192.168.50.11 ESP in UDP 4500->4500 SPI 0xc0de0002: 2 packets, 240 bytes, seq 1-2, \
         0 gaps, 0 replays, 0.090-0.100 s (frames 10-11)"
    );
    assert_eq!(
        lines[8],
        "12 frames (pcap (microseconds, little-endian)): 3 IKE messages, 8 ESP packets in 2 flows, \
         1 NAT-T keepalives, 0 other"
    );
}

#[test]
fn json_is_one_object_with_messages_flows_and_stats() {
    let (out, _, r) = run(&raw_pcap(&conversation()), false, true);
    r.unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 3);
    assert_eq!(v["messages"][0]["exchange"], "IKE_SA_INIT");
    assert_eq!(v["messages"][1]["version"], 1);
    assert_eq!(v["messages"][2]["request"], false);
    assert_eq!(v["messages"][2]["encrypted_len"], 64);
    assert_eq!(v["messages"][2]["non_esp_marker"], true);
    assert_eq!(v["flows"][0]["spi"], "0xc0de0001");
    assert_eq!(v["flows"][0]["gaps"], 1);
    assert_eq!(v["flows"][0]["replays"], 1);
    assert_eq!(v["flows"][1]["encap"], "udp");
    assert_eq!(v["stats"]["nat_keepalives"], 1);
    assert_eq!(v["format"], "pcap (microseconds, little-endian)");
}

#[test]
fn verbose_prints_every_payload() {
    let p = vec![build_ipv4(GW1, GW2, IpProtocol::UDP, &udp(500, 500, &sa_init()))];
    let (out, _, _) = run(&raw_pcap(&p), true, false);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].trim_start().starts_with("Notify(NotifyPayload"), "{out}");
    assert!(
        lines[2].contains("NAT_DETECTION_DESTINATION_IP") || lines[2].contains("16389"),
        "{out}"
    );
}

#[test]
fn ikev1_responses_by_who_sent_the_first_message() {
    let mm1 = unhex(MM1);
    let mut mm2 = mm1.clone();
    mm2[8..16].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let p = vec![
        build_ipv4(GW1, GW2, IpProtocol::UDP, &udp(500, 500, &mm1)),
        build_ipv4(GW2, GW1, IpProtocol::UDP, &udp(500, 500, &mm2)),
    ];
    let (out, _, _) = run(&raw_pcap(&p), false, false);
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .contains("ID_PROT response 0 [ SA V V V V V ]"),
        "{out}"
    );
}

/// The same ESP packet through every link type and capture format: one flow of 1 packet.
#[test]
fn every_format_and_link_type() {
    let ip4 = build_ipv4(GW1, GW2, IpProtocol::ESP, &esp(7, 1, 60));
    let ip6 = build_ipv6(
        "2001:db8:50::11".parse().unwrap(),
        "2001:db8:50::12".parse().unwrap(),
        IpProtocol::ESP,
        &esp(7, 1, 60),
    );
    let mut eth = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0, 0, 5, 0x08, 0];
    eth.extend_from_slice(&ip4);
    let mut sll = vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x86, 0xdd];
    sll.extend_from_slice(&ip6);
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll2.extend_from_slice(&ip4);
    for (lt, frame, from) in [
        (link_type::ETHERNET, &eth, "192.168.50.11"),
        (link_type::LINUX_SLL, &sll, "2001:db8:50::11"),
        (link_type::LINUX_SLL2, &sll2, "192.168.50.11"),
        (link_type::RAW, &ip6, "2001:db8:50::11"),
        (link_type::IPV4, &ip4, "192.168.50.11"),
        (link_type::IPV6, &ip6, "2001:db8:50::11"),
    ] {
        let mut f = pcap_file_header(lt, 65535, true);
        f.extend(pcap_record(ts(0), frame, frame.len() as u32, true));
        let (out, w, r) = run(&f, false, false);
        r.unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert!(
            out.contains(&format!("  {from} -> ")) && out.contains("SPI 0x00000007: 1 packets"),
            "{lt}: {out}"
        );
    }
}

/// An IKE message of 3000 bytes in three IPv4 fragments, out of order;
/// and an IPv6 ESP packet in two.
#[test]
fn fragments_are_reassembled() {
    let mut body = vec![0, 0, 0x0b, 0xa0]; // one Vendor ID payload of 2976 bytes
    body.resize(2976, 0x11);
    let msg = ikev2(34, 0x08, 0, 0, 43, &body);
    let whole = udp(500, 500, &msg);
    let frag = |off: usize, end: usize, more: bool| {
        let mut p = build_ipv4(GW1, GW2, IpProtocol::UDP, &whole[off..end]);
        p[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
        p[6..8].copy_from_slice(&((off / 8) as u16 | if more { 0x2000 } else { 0 }).to_be_bytes());
        p
    };
    let e = esp(9, 4, 200);
    let frag6 = |off: usize, end: usize, more: bool| {
        let mut pl = vec![IpProtocol::ESP.0, 0];
        pl.extend_from_slice(&(((off / 8) as u16) << 3 | more as u16).to_be_bytes());
        pl.extend_from_slice(&5u32.to_be_bytes());
        pl.extend_from_slice(&e[off..end]);
        build_ipv6(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            IpProtocol::IPV6_FRAG,
            &pl,
        )
    };
    let p = vec![
        frag(1480, 2960, true),
        frag6(104, 200, false),
        frag(2960, whole.len(), false),
        frag6(0, 104, true),
        frag(0, 1480, true),
    ];
    let (out, w, r) = run(&raw_pcap(&p), false, false);
    r.unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert!(
        out.contains("#5 192.168.50.11:500 -> 192.168.50.12:500 IKE_SA_INIT request 0 [ V ]"),
        "{out}"
    );
    assert!(
        out.contains("2001:db8::1 -> 2001:db8::2 ESP SPI 0x00000009: 1 packets, 200 bytes, seq 4-4"),
        "{out}"
    );
    assert!(out.contains("2 datagrams reassembled"), "{out}");
}

#[test]
fn bad_input_is_counted_and_named_never_fatal_per_packet() {
    let good = build_ipv4(GW1, GW2, IpProtocol::ESP, &esp(7, 1, 60));
    let mut f = pcap_file_header(link_type::RAW, 40, false);
    // Frame 1 cut by the snaplen, frame 2 garbage, frame 3 a short IKE message, frame 4 fine.
    f.extend(pcap_record(ts(0), &good[..40], good.len() as u32, false));
    f.extend(pcap_record(ts(1), &[0x45, 1, 2], 3, false));
    let short_ike = build_ipv4(GW1, GW2, IpProtocol::UDP, &udp(500, 500, &[1, 2, 3]));
    f.extend(pcap_record(ts(2), &short_ike, short_ike.len() as u32, false));
    f.extend(pcap_record(ts(3), &good, good.len() as u32, false));
    let (out, w, r) = run(&f, false, false);
    r.unwrap();
    assert!(
        w[0].starts_with("frame 1: cut by the snaplen (40 of 80 bytes captured)"),
        "{w:?}"
    );
    assert!(w[1].starts_with("frame 2: IPv4 header: truncated"), "{w:?}");
    assert_eq!(
        w[2],
        "frame 3: IKE message does not parse: 3 bytes, shorter than an IKE header"
    );
    assert!(out.contains("SPI 0x00000007: 1 packets"), "{out}");
    assert!(out.contains("(1 cut by the snaplen, 1 malformed)"), "{out}");

    // An unknown link type: said once, every frame counted.
    let mut f = pcap_file_header(147, 65535, false);
    for i in 0..3 {
        f.extend(pcap_record(ts(i), &good, good.len() as u32, false));
    }
    let (out, w, r) = run(&f, false, false);
    r.unwrap();
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("frame 1: link type 147 is not supported"), "{w:?}");
    assert!(out.contains("(3 of an unsupported link type)"), "{out}");

    // A truncated file: what came before is printed, then the error with where.
    let f = raw_pcap(&conversation());
    let (out, _, r) = run(&f[..f.len() - 3], false, false);
    assert!(out.contains("IKE_AUTH response 1"), "{out}");
    assert!(out.contains("11 frames"), "{out}");
    assert_eq!(
        r.unwrap_err(),
        format!(
            "record 12 at byte offset {}: file truncated: the last record has only 42 bytes",
            f.len() - 45
        )
    );
}

/// Memory stays flat: 200,000 packets through a reader whose buffer never
/// holds more than one read chunk plus one record.
#[test]
fn streams_with_a_bounded_buffer() {
    struct Counting<'a> {
        data: &'a [u8],
        at: usize,
        max_read: usize,
    }
    impl Read for Counting<'_> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.max_read = self.max_read.max(b.len());
            let n = b.len().min(self.data.len() - self.at);
            b[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }
    let pkt = build_ipv4(GW1, GW2, IpProtocol::ESP, &esp(7, 1, 100));
    let mut f = pcap_file_header(link_type::RAW, 65535, false);
    for i in 0..200_000u64 {
        f.extend(pcap_record(ts(i), &pkt, pkt.len() as u32, false));
    }
    let mut input = Counting {
        data: &f,
        at: 0,
        max_read: 0,
    };
    let mut n = 0;
    let mut format = String::new();
    read_capture(&mut input, |_| n += 1, &mut format).unwrap();
    assert_eq!(n, 200_000);
    assert!(input.max_read <= READ_CHUNK + 16 + pkt.len(), "{}", input.max_read);
}
