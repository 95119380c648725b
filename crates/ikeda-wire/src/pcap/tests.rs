use super::*;

/// What a packet record said, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    number: u64,
    interface: u32,
    link_type: u32,
    ts: Timestamp,
    data: Vec<u8>,
    original_len: u32,
}

/// Drive the decoder as a streaming reader does: the bytes arrive `chunk`
/// at a time, and the buffer never holds more than the decoder asked for
/// plus one chunk.
fn read_all(file: &[u8], chunk: usize) -> Result<Vec<Rec>, CaptureError> {
    let mut d = CaptureDecoder::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut out = Vec::new();
    loop {
        match d.next(&buf)? {
            Next::Record { len, packet } => {
                if let Some(p) = packet {
                    out.push(Rec {
                        number: p.number,
                        interface: p.interface,
                        link_type: p.link_type,
                        ts: p.timestamp,
                        data: p.data.to_vec(),
                        original_len: p.original_len,
                    });
                }
                buf.drain(..len);
            }
            Next::Need(n) => {
                assert!(n > buf.len(), "Need({n}) with {} bytes in hand", buf.len());
                assert!(n <= MAX_RECORD_LEN);
                if fed == file.len() {
                    d.finish(buf.len())?;
                    return Ok(out);
                }
                let take = chunk.min(file.len() - fed);
                buf.extend_from_slice(&file[fed..fed + take]);
                fed += take;
            }
        }
        if buf.is_empty() && fed == file.len() {
            d.finish(0)?;
            return Ok(out);
        }
    }
}

fn ts(secs: u64, nanos: u32) -> Timestamp {
    Timestamp { secs, nanos }
}

fn ipv4_udp() -> Vec<u8> {
    let udp = [0x01, 0xf4, 0x01, 0xf4, 0, 12, 0, 0, 1, 2, 3, 4];
    crate::ip::build_ipv4(
        "192.168.50.11".parse().unwrap(),
        "192.168.50.12".parse().unwrap(),
        crate::iana::IpProtocol::UDP,
        &udp,
    )
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn swap_pcap_to_big_endian(le: &[u8]) -> Vec<u8> {
    // Rewrite every 32/16-bit field of a little-endian pcap as big-endian.
    let mut out = Vec::new();
    let h = &le[..24];
    out.extend_from_slice(&u32::from_le_bytes(h[0..4].try_into().unwrap()).to_be_bytes());
    out.extend_from_slice(&u16::from_le_bytes([h[4], h[5]]).to_be_bytes());
    out.extend_from_slice(&u16::from_le_bytes([h[6], h[7]]).to_be_bytes());
    for at in [8usize, 12, 16, 20] {
        out.extend_from_slice(&u32::from_le_bytes(h[at..at + 4].try_into().unwrap()).to_be_bytes());
    }
    let mut r = &le[24..];
    while !r.is_empty() {
        for at in [0usize, 4, 8, 12] {
            out.extend_from_slice(&u32::from_le_bytes(r[at..at + 4].try_into().unwrap()).to_be_bytes());
        }
        let caplen = u32::from_le_bytes(r[8..12].try_into().unwrap()) as usize;
        out.extend_from_slice(&r[16..16 + caplen]);
        r = &r[16 + caplen..];
    }
    out
}

#[test]
fn pcap_microseconds_little_endian_ethernet() {
    let ip = ipv4_udp();
    let frame = ethernet(0x0800, &ip);
    let mut file = pcap_file_header(link_type::ETHERNET, 262144, false);
    file.extend(pcap_record(
        ts(1_700_000_000, 123_456_000),
        &frame,
        frame.len() as u32,
        false,
    ));
    file.extend(pcap_record(
        ts(1_700_000_001, 0),
        &frame[..20],
        frame.len() as u32,
        false,
    ));
    for chunk in [1, 7, 4096] {
        let recs = read_all(&file, chunk).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].number, 1);
        assert_eq!(recs[0].ts, ts(1_700_000_000, 123_456_000));
        assert_eq!(recs[0].data, frame);
        assert_eq!(network_layer(recs[0].link_type, &recs[0].data).unwrap(), Some(&ip[..]));
        assert_eq!(recs[1].number, 2);
        assert_eq!((recs[1].data.len(), recs[1].original_len), (20, frame.len() as u32));
    }
    let mut d = CaptureDecoder::new();
    d.next(&file).unwrap();
    assert_eq!(d.format(), "pcap (microseconds, little-endian)");
}

#[test]
fn pcap_nanoseconds_big_endian_raw() {
    let ip = ipv4_udp();
    let mut le = pcap_file_header(link_type::RAW, 65535, true);
    le.extend(pcap_record(ts(5, 999_999_999), &ip, ip.len() as u32, true));
    let be = swap_pcap_to_big_endian(&le);
    assert_eq!(&be[..4], &[0xa1, 0xb2, 0x3c, 0x4d]);
    let recs = read_all(&be, 3).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].ts, ts(5, 999_999_999));
    assert_eq!(recs[0].link_type, link_type::RAW);
    assert_eq!(network_layer(link_type::RAW, &recs[0].data).unwrap(), Some(&ip[..]));
    let mut d = CaptureDecoder::new();
    d.next(&be).unwrap();
    assert_eq!(d.format(), "pcap (nanoseconds, big-endian)");
}

/// pcapng writer for the tests, in either byte order.
struct Ng {
    big: bool,
    out: Vec<u8>,
}

impl Ng {
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn block(&mut self, t: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = body.len() as u32 + 12;
        let (t, l) = (self.u32(t), self.u32(len));
        self.out.extend_from_slice(&t);
        self.out.extend_from_slice(&l);
        self.out.extend_from_slice(&body);
        self.out.extend_from_slice(&l);
    }
    fn shb(&mut self) {
        let mut b = self.u32(PCAPNG_BYTE_ORDER_MAGIC).to_vec();
        b.extend_from_slice(&self.u16(1));
        b.extend_from_slice(&self.u16(0));
        b.extend_from_slice(&[0xff; 8]); // section length unknown
        self.block(PCAPNG_SHB, &b);
    }
    fn idb(&mut self, link: u16, snaplen: u32, tsresol: Option<u8>, tsoffset: Option<u64>) {
        let mut b = self.u16(link).to_vec();
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&self.u32(snaplen));
        // An option we skip (if_name), padded.
        b.extend_from_slice(&self.u16(2));
        b.extend_from_slice(&self.u16(4));
        b.extend_from_slice(b"wan0");
        if let Some(r) = tsresol {
            b.extend_from_slice(&self.u16(9));
            b.extend_from_slice(&self.u16(1));
            b.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            b.extend_from_slice(&self.u16(14));
            b.extend_from_slice(&self.u16(8));
            let (hi, lo) = ((o >> 32) as u32, o as u32);
            if self.big {
                b.extend_from_slice(&hi.to_be_bytes());
                b.extend_from_slice(&lo.to_be_bytes());
            } else {
                b.extend_from_slice(&lo.to_le_bytes());
                b.extend_from_slice(&hi.to_le_bytes());
            }
        }
        b.extend_from_slice(&[0; 4]); // opt_endofopt
        self.block(PCAPNG_IDB, &b);
    }
    fn epb(&mut self, iface: u32, units: u64, data: &[u8], original_len: u32) {
        let mut b = self.u32(iface).to_vec();
        b.extend_from_slice(&self.u32((units >> 32) as u32));
        b.extend_from_slice(&self.u32(units as u32));
        b.extend_from_slice(&self.u32(data.len() as u32));
        b.extend_from_slice(&self.u32(original_len));
        b.extend_from_slice(data);
        self.block(PCAPNG_EPB, &b);
    }
    fn spb(&mut self, data: &[u8]) {
        let mut b = self.u32(data.len() as u32).to_vec();
        b.extend_from_slice(data);
        self.block(PCAPNG_SPB, &b);
    }
}

fn pcapng_two_interfaces(big: bool) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let ip = ipv4_udp();
    let frame = ethernet(0x0800, &ip);
    let mut ng = Ng { big, out: Vec::new() };
    ng.shb();
    ng.idb(link_type::ETHERNET as u16, 0, None, None); // microseconds by default
    ng.idb(link_type::RAW as u16, 0, Some(9), Some(100)); // nanoseconds, +100 s
    ng.block(0x0000_0bad, b"a block type nobody knows"); // skipped
    ng.epb(0, 1_700_000_000_250_000, &frame, frame.len() as u32);
    ng.epb(1, 1_000_000_007, &ip, ip.len() as u32);
    ng.spb(&frame);
    // A new section forgets the interfaces: one with 2^-10 s units.
    ng.shb();
    ng.idb(link_type::IPV4 as u16, 0, Some(0x80 | 10), None);
    ng.epb(0, 3 * 1024 + 512, &ip, ip.len() as u32);
    (ng.out, frame, ip)
}

#[test]
fn pcapng_interfaces_resolutions_and_unknown_blocks() {
    for big in [false, true] {
        let (file, frame, ip) = pcapng_two_interfaces(big);
        for chunk in [1, 5, 1 << 16] {
            let recs = read_all(&file, chunk).unwrap();
            let summary: Vec<_> = recs
                .iter()
                .map(|r| (r.number, r.interface, r.link_type, r.ts))
                .collect();
            assert_eq!(
                summary,
                [
                    (1, 0, link_type::ETHERNET, ts(1_700_000_000, 250_000_000)),
                    (2, 1, link_type::RAW, ts(101, 7)),
                    (3, 0, link_type::ETHERNET, ts(0, 0)),
                    (4, 0, link_type::IPV4, ts(3, 500_000_000)),
                ],
                "big-endian {big}, chunk {chunk}"
            );
            assert_eq!(recs[0].data, frame);
            assert_eq!(recs[1].data, ip);
            assert_eq!(recs[2].data, frame);
            assert_eq!(network_layer(recs[3].link_type, &recs[3].data).unwrap(), Some(&ip[..]));
        }
        let mut d = CaptureDecoder::new();
        d.next(&file).unwrap();
        let want = if big {
            "pcapng (big-endian)"
        } else {
            "pcapng (little-endian)"
        };
        assert_eq!(d.format(), want);
    }
}

#[test]
fn simple_packet_block_is_cut_to_the_snaplen() {
    let ip = ipv4_udp();
    let mut ng = Ng {
        big: false,
        out: Vec::new(),
    };
    ng.shb();
    ng.idb(link_type::RAW as u16, 20, None, None);
    // The block holds 20 bytes (the snaplen); the packet was 32.
    let mut b = (ip.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(&ip[..20]);
    ng.block(PCAPNG_SPB, &b);
    let recs = read_all(&ng.out, 64).unwrap();
    assert_eq!((recs[0].data.len(), recs[0].original_len), (20, 32));
}

fn err(file: &[u8]) -> String {
    read_all(file, 4096).unwrap_err().to_string()
}

#[test]
fn bad_captures_say_where_and_why() {
    assert_eq!(
        err(b""),
        "record 1 at byte offset 0: empty file: no pcap or pcapng header"
    );
    assert_eq!(
        err(b"GET / HTTP/1.1\r\n"),
        "record 1 at byte offset 0: not a pcap or pcapng file (magic 0x47455420)"
    );
    let ip = ipv4_udp();
    let mut file = pcap_file_header(link_type::RAW, 65535, false);
    file.extend(pcap_record(ts(1, 0), &ip, 32, false));
    file.extend(pcap_record(ts(2, 0), &ip, 32, false));
    // The second record (at 24 + 48) loses its last 5 bytes.
    assert_eq!(
        err(&file[..file.len() - 5]),
        "record 2 at byte offset 72: file truncated: the last record has only 43 bytes"
    );
    assert_eq!(
        err(&file[..10]),
        "record 1 at byte offset 0: file truncated: the last record has only 10 bytes"
    );
    let mut bad_len = file.clone();
    bad_len[24 + 8..24 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    assert!(err(&bad_len).starts_with("record 1 at byte offset 24: captured length 2147483647 is over"));
    let mut bad_frac = file.clone();
    bad_frac[24 + 4..24 + 8].copy_from_slice(&1_000_000u32.to_le_bytes());
    assert!(err(&bad_frac).contains("timestamp fraction 1000000"));

    let (ng, _, _) = pcapng_two_interfaces(false);
    // The first EPB (after SHB 28, IDB 32, IDB 52, unknown 40) refers to interface 7.
    let epb = 28 + 32 + 52 + 40;
    let mut bad_iface = ng.clone();
    bad_iface[epb + 8..epb + 12].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(
        err(&bad_iface),
        format!("record 5 at byte offset {epb}: packet on interface 7, which no interface description block defines")
    );
    let mut bad_trailer = ng.clone();
    bad_trailer[27] ^= 1;
    assert!(err(&bad_trailer).contains("trailing length"), "{}", err(&bad_trailer));
    let mut odd_len = ng.clone();
    odd_len[epb + 4] = 13;
    assert!(err(&odd_len).contains("total length 13"));
    assert!(err(&ng[28..]).contains("not a pcap or pcapng file"));
    assert!(err(&ng[..ng.len() - 1]).contains("file truncated"));
}

#[test]
fn link_layers() {
    let ip = ipv4_udp();
    let ip6 = crate::ip::build_ipv6(
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
        crate::iana::IpProtocol::UDP,
        &[0, 1, 0, 2, 0, 8, 0, 0],
    );
    let eth = ethernet(0x0800, &ip);
    assert_eq!(network_layer(link_type::ETHERNET, &eth).unwrap(), Some(&ip[..]));
    // 802.1Q, then QinQ (802.1ad outer tag).
    let mut vlan = ethernet(0x8100, &[0x00, 0x64, 0x86, 0xdd]);
    vlan.extend_from_slice(&ip6);
    assert_eq!(network_layer(link_type::ETHERNET, &vlan).unwrap(), Some(&ip6[..]));
    let mut qinq = ethernet(0x88a8, &[0x00, 0x0a, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
    qinq.extend_from_slice(&ip);
    assert_eq!(network_layer(link_type::ETHERNET, &qinq).unwrap(), Some(&ip[..]));
    assert_eq!(
        network_layer(link_type::ETHERNET, &ethernet(0x0806, &[0; 28])).unwrap(),
        None
    );
    // Linux cooked v1: packet type, ARPHRD, address length, 8 bytes of address, protocol.
    let mut sll = vec![0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x86, 0xdd];
    sll.extend_from_slice(&ip6);
    assert_eq!(network_layer(link_type::LINUX_SLL, &sll).unwrap(), Some(&ip6[..]));
    // Linux cooked v2: protocol first, then reserved, ifindex, ARPHRD, type, length, address.
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll2.extend_from_slice(&ip);
    assert_eq!(network_layer(link_type::LINUX_SLL2, &sll2).unwrap(), Some(&ip[..]));
    assert_eq!(network_layer(link_type::RAW, &ip6).unwrap(), Some(&ip6[..]));
    assert_eq!(network_layer(link_type::RAW, &[0x10]).unwrap(), None);
    assert_eq!(network_layer(link_type::IPV4, &ip).unwrap(), Some(&ip[..]));
    assert_eq!(network_layer(link_type::IPV6, &ip6).unwrap(), Some(&ip6[..]));
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend_from_slice(&ip);
    assert_eq!(network_layer(link_type::NULL, &null).unwrap(), Some(&ip[..]));
    let mut lo = 30u32.to_be_bytes().to_vec();
    lo.extend_from_slice(&ip6);
    assert_eq!(network_layer(link_type::LOOP, &lo).unwrap(), Some(&ip6[..]));
    assert_eq!(
        network_layer(105, &ip).unwrap_err().to_string(),
        "link type: unsupported value 0x69"
    );
    assert!(network_layer(link_type::ETHERNET, &eth[..13]).is_err());
    assert!(network_layer(link_type::ETHERNET, &vlan[..16]).is_err());
    assert!(network_layer(link_type::LINUX_SLL2, &sll2[..19]).is_err());
}

#[test]
fn garbage_and_mutations_never_panic() {
    let mut x: u32 = 0x1234_5678;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let (ng, _, _) = pcapng_two_interfaces(false);
    let (ng_be, _, _) = pcapng_two_interfaces(true);
    let mut pcap = pcap_file_header(link_type::ETHERNET, 65535, false);
    pcap.extend(pcap_record(ts(1, 0), &ethernet(0x0800, &ipv4_udp()), 46, false));
    for base in [ng, ng_be, pcap] {
        for _ in 0..3000 {
            let mut f = base.clone();
            for _ in 0..1 + rnd() % 4 {
                let at = rnd() as usize % f.len();
                f[at] = rnd() as u8;
            }
            f.truncate(rnd() as usize % (f.len() + 1));
            for chunk in [1 + rnd() as usize % 64] {
                if let Ok(recs) = read_all(&f, chunk) {
                    for r in recs {
                        let _ = network_layer(r.link_type, &r.data);
                    }
                }
            }
        }
    }
    for len in 0..64 {
        let f: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        let _ = read_all(&f, 1 + len);
    }
}

/// Found by the pcap_reader fuzz target: a pcap record whose captured
/// length is MAX_RECORD_LEN made the decoder ask for 16 bytes more than
/// the bound it promises a reader's buffer.
#[test]
fn no_record_is_longer_than_max_record_len() {
    let mut f = pcap_file_header(link_type::RAW, 65535, false);
    let mut d = CaptureDecoder::new();
    let Next::Record { len, .. } = d.next(&f).unwrap() else {
        panic!()
    };
    f.drain(..len);
    for caplen in [MAX_RECORD_LEN - PCAP_RECORD_HEADER_LEN + 1, MAX_RECORD_LEN] {
        let mut r = f.clone();
        r.extend_from_slice(&[0; 8]);
        r.extend_from_slice(&(caplen as u32).to_le_bytes());
        r.extend_from_slice(&(caplen as u32).to_le_bytes());
        let e = d.clone().next(&r).unwrap_err();
        assert!(e.what.starts_with(&format!("captured length {caplen} is over")), "{e}");
    }
    let mut r = f.clone();
    let caplen = (MAX_RECORD_LEN - PCAP_RECORD_HEADER_LEN) as u32;
    r.extend_from_slice(&[0; 8]);
    r.extend_from_slice(&caplen.to_le_bytes());
    r.extend_from_slice(&caplen.to_le_bytes());
    assert_eq!(d.next(&r).unwrap(), Next::Need(MAX_RECORD_LEN));
}
