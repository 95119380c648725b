//! Tests against the real kernel: TUN, raw ESP sockets, routes.
//!
//! Each test builds a private network namespace (`ikst-<pid>-<n>`), runs
//! its body on a thread that has `setns`-ed into it, and deletes the
//! namespace on drop — also when an assertion fails. They need root; when
//! not root they FAIL unless `IKEDA_ALLOW_NO_ROOT=1` is set, in which case
//! they print "SKIPPED" and return.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use ikeda_sys::{
    ipv4_payload_offset, require_root, route, sysctl_get, sysctl_set, NetNs, PacketBatch, RawEspSocket, Tun, TunDevice,
    UdpSocket, DEFAULT_SOCKET_BUFFER,
};

/// Creates a namespace with `lo` up, or returns `None` to skip (non-root
/// with `IKEDA_ALLOW_NO_ROOT=1`).
fn netns(test: &str) -> Option<NetNs> {
    if !require_root(test) {
        return None;
    }
    let ns = NetNs::create_unique("ikst-").expect("create network namespace");
    ns.ip().link_set_up("lo").expect("lo up");
    Some(ns)
}

/// Internet checksum (RFC 1071).
fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP packet (UDP checksum 0 = none, legal for IPv4).
fn ipv4_udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64; // TTL
    p[9] = 17; // UDP
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = csum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// `(dst ip, dst port, payload)` if `p` is IPv4/UDP.
fn parse_ipv4_udp(p: &[u8]) -> Option<(Ipv4Addr, u16, &[u8])> {
    let ihl = ipv4_payload_offset(p)?;
    if p[9] != 17 || p.len() < ihl + 8 {
        return None;
    }
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let dport = u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]);
    Some((dst, dport, &p[ihl + 8..]))
}

#[test]
fn tun_read_write_in_netns() {
    let Some(ns) = netns("tun_read_write_in_netns") else {
        return;
    };
    let ns_name = ns.name().to_string();

    ns.run(|| -> io::Result<()> {
        let tun = Tun::open("ikst0")?;
        assert_eq!(tun.name(), "ikst0");
        assert!(tun.ifindex()? > 0);
        // Why: keep IPv6 autoconf/MLD chatter out of the device so the
        // timeout check below sees a quiet queue.
        sysctl_set("net.ipv6.conf.ikst0.disable_ipv6", "1")?;
        assert_eq!(sysctl_get("net.ipv6.conf.ikst0.disable_ipv6")?, "1");
        tun.set_mtu(1400)?;
        assert_eq!(tun.mtu()?, 1400);
        assert!(!tun.is_up()?);
        tun.set_up()?;
        assert!(tun.is_up()?);
        // `ip -n` works from any thread; exercise the namespaced runner.
        ns.ip().add_addr("10.99.0.1/24", "ikst0")?;

        // Kernel -> TUN: datagrams to a peer on the TUN's subnet.
        let sock = std::net::UdpSocket::bind("10.99.0.1:0")?;
        let local = sock.local_addr()?;
        for i in 0..10u8 {
            sock.send_to(&[b'p', i], "10.99.0.2:9999")?;
        }
        let mut batch = PacketBatch::new(8, 2048, 64);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.len() < 10 && Instant::now() < deadline {
            let n = tun.read_batch(&mut batch, Some(Duration::from_millis(500)))?;
            assert!(n <= 8);
            for (pkt, addr) in batch.iter() {
                assert_eq!(addr, None);
                if let Some((dst, dport, payload)) = parse_ipv4_udp(pkt) {
                    if dst == Ipv4Addr::new(10, 99, 0, 2) && dport == 9999 {
                        seen.push(payload.to_vec());
                    }
                }
            }
            if n > 0 {
                assert_eq!(batch.meta(0).start, 64, "packets land after the headroom");
            }
        }
        let want: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'p', i]).collect();
        assert_eq!(seen, want);

        // Quiet device: the timeout path returns 0.
        let t0 = Instant::now();
        assert_eq!(tun.read_batch(&mut batch, Some(Duration::from_millis(50)))?, 0);
        assert!(t0.elapsed() >= Duration::from_millis(45));
        assert_eq!(tun.read_batch(&mut batch, Some(Duration::ZERO))?, 0);

        // TUN -> kernel: inject a reply, from a cloned handle (the API
        // promises concurrent reader/writer on separate handles).
        let writer = tun.try_clone()?;
        let SocketAddr::V4(l4) = local else { unreachable!() };
        let reply = ipv4_udp(Ipv4Addr::new(10, 99, 0, 2), 7777, *l4.ip(), l4.port(), b"pong");
        std::thread::scope(|s| s.spawn(|| writer.write(&reply)).join().unwrap())?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = [0u8; 64];
        let (n, from) = sock.recv_from(&mut buf)?;
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(from, "10.99.0.2:7777".parse::<SocketAddr>().unwrap());

        // Through the trait, too.
        let mut b = PacketBatch::new(2, 256, 0);
        b.push_copy(
            &ipv4_udp(Ipv4Addr::new(10, 99, 0, 3), 1, *l4.ip(), l4.port(), b"t1"),
            None,
        )
        .unwrap();
        b.push_copy(&[0xff, 0, 0], None).unwrap(); // not IP: EINVAL, skipped
        assert_eq!(TunDevice::write_batch(&tun, &b)?, 1);
        let (n, _) = sock.recv_from(&mut buf)?;
        assert_eq!(&buf[..n], b"t1");

        // Blocking mode: read_batch returns a single packet.
        tun.set_nonblocking(false)?;
        sock.send_to(b"a", "10.99.0.2:9999")?;
        sock.send_to(b"b", "10.99.0.2:9999")?;
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(tun.read_batch(&mut batch, Some(Duration::from_secs(2)))?, 1);
        tun.set_nonblocking(true)?;
        assert_eq!(tun.read_batch(&mut batch, Some(Duration::from_secs(2)))?, 1);

        drop(writer);
        Ok(())
    })
    .expect("enter netns")
    .expect("TUN test body");

    // Every handle is closed: the non-persistent device must be gone.
    let err = ikeda_sys::IpRoute2::in_netns(&ns_name)
        .run(["link", "show", "ikst0"])
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
}

#[test]
fn raw_esp_loopback_in_netns() {
    let Some(ns) = netns("raw_esp_loopback_in_netns") else {
        return;
    };

    ns.run(|| -> io::Result<()> {
        // ESP: SPI, sequence number, then opaque data.
        let esp1: Vec<u8> = [&0x1122_3344u32.to_be_bytes()[..], &1u32.to_be_bytes(), b"ciphertext-1"].concat();
        let esp2: Vec<u8> = [
            &0x1122_3344u32.to_be_bytes()[..],
            &2u32.to_be_bytes(),
            b"ciphertext-two",
        ]
        .concat();

        // ---- IPv4: the kernel delivers the IP header; start skips it.
        let rx = RawEspSocket::bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED))?;
        let tx = RawEspSocket::bind(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        assert!(!rx.is_ipv6());
        rx.set_buffer_sizes(DEFAULT_SOCKET_BUFFER, DEFAULT_SOCKET_BUFFER)?;
        assert!(rx.recv_buffer_size()? >= DEFAULT_SOCKET_BUFFER);
        // Port is ignored for raw sockets.
        let lo4: SocketAddr = "127.0.0.1:4500".parse().unwrap();
        assert_eq!(tx.send_batch(&[&esp1, &esp2], &[lo4, lo4])?, 2);

        let headroom = 32;
        let mut batch = PacketBatch::new(8, 2048, headroom);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 2 && Instant::now() < deadline {
            rx.recv_batch(&mut batch, Some(Duration::from_millis(500)))?;
            for i in 0..batch.len() {
                let m = batch.meta(i);
                assert_eq!(m.start - headroom, 20, "IPv4 header (IHL 5) skipped");
                assert_eq!(ipv4_payload_offset(&batch.slot(i)[headroom..]), Some(20));
                assert_eq!(batch.slot(i)[headroom + 9], 50, "IP protocol field is ESP");
                assert_eq!(m.addr, Some("127.0.0.1:0".parse().unwrap()));
                got.push(batch.packet(i).to_vec());
            }
        }
        assert_eq!(got, vec![esp1.clone(), esp2.clone()]);

        // Single-packet API.
        assert_eq!(tx.send_to(&esp1, IpAddr::V4(Ipv4Addr::LOCALHOST))?, esp1.len());
        let mut buf = [0u8; 256];
        let (off, len, src) = rx
            .recv_one(&mut buf, Some(Duration::from_secs(2)))?
            .expect("ESP packet");
        assert_eq!(off, 20);
        assert_eq!(&buf[off..len], &esp1[..]);
        assert_eq!(src, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(rx.recv_one(&mut buf, Some(Duration::from_millis(20)))?.is_none());

        // In-place send from a batch (the data plane's TX path).
        let mut txb = PacketBatch::new(4, 256, 16);
        txb.push_copy(&esp2, Some(lo4)).unwrap();
        txb.push_copy(&esp1, None).unwrap(); // no destination: skipped
        assert_eq!(tx.send_packet_batch(&mut txb)?, 1);
        assert_eq!(rx.recv_batch(&mut batch, Some(Duration::from_secs(2)))?, 1);
        assert_eq!(batch.packet(0), &esp2[..]);

        // ---- IPv6: payload only, start == headroom.
        let rx6 = RawEspSocket::bind(IpAddr::V6(Ipv6Addr::UNSPECIFIED))?;
        let tx6 = RawEspSocket::bind(IpAddr::V6(Ipv6Addr::LOCALHOST))?;
        assert!(rx6.is_ipv6());
        let lo6: SocketAddr = "[::1]:0".parse().unwrap();
        assert_eq!(tx6.send_batch(&[&esp1, &esp2], &[lo6, lo6])?, 2);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 2 && Instant::now() < deadline {
            rx6.recv_batch(&mut batch, Some(Duration::from_millis(500)))?;
            for i in 0..batch.len() {
                assert_eq!(batch.meta(i).start, headroom);
                assert_eq!(batch.addr(i).map(|a| a.ip()), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
                got.push(batch.packet(i).to_vec());
            }
        }
        assert_eq!(got, vec![esp1, esp2]);
        Ok(())
    })
    .expect("enter netns")
    .expect("raw ESP test body");
}

#[test]
fn udp_batch_and_routes_in_netns() {
    let Some(ns) = netns("udp_batch_and_routes_in_netns") else {
        return;
    };

    ns.run(|| -> io::Result<()> {
        // Batched UDP over the namespace's loopback, dual-stack receiver.
        let server = UdpSocket::bind("[::]:4500".parse().unwrap())?;
        server.set_buffer_sizes(DEFAULT_SOCKET_BUFFER, DEFAULT_SOCKET_BUFFER)?;
        let c4 = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
        let c6 = UdpSocket::bind("[::1]:0".parse().unwrap())?;
        c4.send_batch(&[b"v4"], &["127.0.0.1:4500".parse().unwrap()])?;
        c6.send_batch(&[b"v6"], &["[::1]:4500".parse().unwrap()])?;
        let mut b = PacketBatch::new(4, 256, 0);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 2 && Instant::now() < deadline {
            server.recv_batch(&mut b, Some(Duration::from_millis(500)))?;
            got.extend(b.iter().map(|(p, a)| (p.to_vec(), a.unwrap())));
        }
        got.sort();
        assert_eq!(
            got,
            vec![(b"v4".to_vec(), c4.local_addr()?), (b"v6".to_vec(), c6.local_addr()?)]
        );

        // Routes and rules via the free functions, which act on the
        // calling thread's namespace (the `ip` child inherits it).
        let tun = Tun::open("ikst1")?;
        tun.set_up()?;
        route::add_addr("10.77.0.1/32", "ikst1")?;
        route::add_route("10.50.0.0/16", "ikst1", Some(100), Some("10.77.0.1".parse().unwrap()))?;
        let dup = route::add_route("10.50.0.0/16", "ikst1", Some(100), None).unwrap_err();
        assert_eq!(dup.kind(), io::ErrorKind::AlreadyExists, "{dup}");
        assert!(
            dup.to_string()
                .contains("ip route add 10.50.0.0/16 dev ikst1 table 100"),
            "{dup}"
        );
        route::replace_route("10.50.0.0/16", "ikst1", Some(100), None)?;
        route::add_rule(None, "10.50.0.0/16", 100, Some(1000))?;
        let rules = ns.ip().run(["rule", "show"])?;
        assert!(rules.contains("1000:") && rules.contains("lookup 100"), "{rules}");
        let get = ns.ip().run(["route", "get", "10.50.1.1"])?;
        assert!(get.contains("dev ikst1"), "{get}");

        // IPv6 flavour picks `-6` automatically.
        sysctl_set("net.ipv6.conf.ikst1.disable_ipv6", "0")?;
        route::add_route("2001:db8:50::/48", "ikst1", Some(100), None)?;
        route::add_rule(Some("2001:db8:1::/48"), "2001:db8:50::/48", 100, Some(1001))?;
        route::del_rule(Some("2001:db8:1::/48"), "2001:db8:50::/48", 100, Some(1001))?;
        route::del_route("2001:db8:50::/48", Some("ikst1"), Some(100))?;

        route::del_rule(None, "10.50.0.0/16", 100, Some(1000))?;
        route::del_route("10.50.0.0/16", Some("ikst1"), Some(100))?;
        let gone = route::del_route("10.50.0.0/16", None, Some(100)).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound, "{gone}");
        route::del_addr("10.77.0.1/32", "ikst1")?;
        Ok(())
    })
    .expect("enter netns")
    .expect("UDP/route test body");
}

#[test]
fn netns_is_deleted_even_when_the_body_panics() {
    let Some(ns) = netns("netns_is_deleted_even_when_the_body_panics") else {
        return;
    };
    let path = format!("/var/run/netns/{}", ns.name());
    assert!(Path::new(&path).exists());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = ns.run(|| panic!("deliberate failure inside the namespace"));
    }));
    assert!(r.is_err(), "panic propagates out of NetNs::run");
    drop(ns);
    assert!(!Path::new(&path).exists(), "{path} left behind");
}

/// An IPv4/TCP packet from the TUN's far side (10.97.0.2:80), checksums set.
fn ipv4_tcp(dst: Ipv4Addr, dport: u16, seq: u32, ack: u32, flags: u8, opts: &[u8]) -> Vec<u8> {
    let tl = 20 + opts.len();
    let total = 20 + tl;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 97, 0, 2]);
    p[16..20].copy_from_slice(&dst.octets());
    let c = csum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let t = &mut p[20..];
    t[0..2].copy_from_slice(&80u16.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((tl / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    t[20..].copy_from_slice(opts);
    let mut ph = Vec::new();
    ph.extend_from_slice(&p[12..20]);
    ph.extend_from_slice(&[0, 6]);
    ph.extend_from_slice(&(tl as u16).to_be_bytes());
    ph.extend_from_slice(&p[20..]);
    let c = csum(&ph);
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

/// The offloaded TUN against the real kernel: we play the TCP peer on the
/// far side of the TUN; the kernel's TSO super-packets come out of
/// read_batch as MTU-sized segments with valid checksums, contiguous
/// sequence numbers and FIN only at the end, that reassemble to exactly
/// the bytes the application sent. Our SYN-ACK and ACKs go in through the
/// vnet write path. Then UDP_SEGMENT datagrams (USO, or the kernel's own
/// segmentation where the TUN lacks it) arrive one per segment, intact.
#[test]
fn tun_offload_segments_tcp_and_udp_in_netns() {
    use ikeda_wire::vnet::l4_checksum_ok;
    use std::io::Write;
    let Some(ns) = netns("tun_offload_segments_tcp_and_udp_in_netns") else {
        return;
    };
    ns.run(|| -> io::Result<()> {
        let tun = Tun::open_offload("ikst3")?;
        assert!(tun.is_offloaded());
        sysctl_set("net.ipv6.conf.ikst3.disable_ipv6", "1")?;
        tun.set_mtu(1400)?;
        tun.set_up()?;
        ns.ip().add_addr("10.97.0.1/24", "ikst3")?;
        let me = Ipv4Addr::new(10, 97, 0, 1);
        // Headroom and tailroom as the data plane's TX batch has them.
        let mut batch = PacketBatch::new(16, 64 + 1400 + 64, 64);

        // 300 KB, not a multiple of the MSS.
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let sender = {
            let data = data.clone();
            std::thread::spawn(move || -> io::Result<()> {
                let mut s =
                    std::net::TcpStream::connect_timeout(&"10.97.0.2:80".parse().unwrap(), Duration::from_secs(5))?;
                s.write_all(&data)?;
                s.shutdown(std::net::Shutdown::Write)?;
                // Keep the socket until the peer has everything.
                std::thread::sleep(Duration::from_secs(2));
                Ok(())
            })
        };
        let (mut sport, mut rcv_nxt, mut got, mut fin) = (0u16, 0u32, Vec::new(), false);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fin && Instant::now() < deadline {
            let n = tun.read_batch(&mut batch, Some(Duration::from_millis(200)))?;
            for (pkt, _) in batch.iter().take(n) {
                assert!(pkt.len() <= 1400, "segment of {} bytes", pkt.len());
                if pkt[9] != 6 {
                    continue;
                }
                assert_eq!(l4_checksum_ok(pkt), Some(true), "checksums of {pkt:02x?}");
                let t = &pkt[20..];
                let seq = u32::from_be_bytes(t[4..8].try_into().unwrap());
                let flags = t[13];
                let payload = &t[usize::from(t[12] >> 4) * 4..];
                if flags & 0x02 != 0 {
                    // SYN: answer with MSS 1360 and window scaling (x128).
                    sport = u16::from_be_bytes([t[0], t[1]]);
                    rcv_nxt = seq.wrapping_add(1);
                    let opts = [2, 4, 0x05, 0x50, 1, 3, 3, 7];
                    tun.write(&ipv4_tcp(me, sport, 1000, rcv_nxt, 0x12, &opts))?;
                    continue;
                }
                assert_eq!(seq, rcv_nxt, "segments arrive in order, contiguous");
                assert!(!fin, "nothing after FIN");
                got.extend_from_slice(payload);
                rcv_nxt = rcv_nxt.wrapping_add(payload.len() as u32);
                if flags & 0x01 != 0 {
                    fin = true;
                    rcv_nxt = rcv_nxt.wrapping_add(1);
                }
            }
            if sport != 0 && n > 0 {
                tun.write(&ipv4_tcp(me, sport, 1001, rcv_nxt, 0x10, &[]))?;
            }
        }
        assert!(fin, "FIN seen after {} of {} bytes", got.len(), data.len());
        assert_eq!(got.len(), data.len());
        assert!(got == data, "the stream arrived intact");
        sender.join().unwrap()?;
        let c = tun.offload_counters().unwrap();
        assert!(c.gso_packets > 0, "the kernel sent super-packets: {c:?}");
        assert!(c.segments > c.gso_packets, "{c:?}");
        assert_eq!(c.dropped, 0, "{c:?}");

        // UDP_SEGMENT: one send of 5 x 1000 + 7 bytes.
        let sock = std::net::UdpSocket::bind("10.97.0.1:0")?;
        let seg: libc::c_int = 1000;
        // SAFETY: UDP_SEGMENT takes an int.
        let r = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
                (&seg as *const libc::c_int).cast(),
                4,
            )
        };
        assert_eq!(r, 0, "UDP_SEGMENT: {}", io::Error::last_os_error());
        let msg: Vec<u8> = (0..5007u32).map(|i| (i % 253) as u8).collect();
        sock.send_to(&msg, "10.97.0.2:9999")?;
        let mut parts = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while parts.len() < 6 && Instant::now() < deadline {
            tun.read_batch(&mut batch, Some(Duration::from_millis(200)))?;
            for (pkt, _) in batch.iter() {
                if let Some((_, 9999, payload)) = parse_ipv4_udp(pkt) {
                    assert_eq!(l4_checksum_ok(pkt), Some(true));
                    parts.push(payload.to_vec());
                }
            }
        }
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 1000, 1000, 1000, 7]
        );
        assert!(parts.concat() == msg);
        Ok(())
    })
    .expect("enter netns")
    .expect("offload test body");
}

/// A multi-queue TUN against the real kernel (`Tun::open_queues`, with
/// offload): a UDP packet of each of 16 flows written in through
/// `TunQueues` (as the RX thread writes decrypted packets) makes the
/// kernel send that flow's reply out through the same queue
/// (`tun_flow_update`), so each flow is read by one TX thread and the
/// flows spread over the queues. The device refuses a second, single-queue
/// open while it exists with several queues (where the daemon falls back).
#[test]
fn tun_queues_keep_each_flow_on_the_queue_its_packets_came_in_by() {
    use ikeda_sys::TunQueues;
    use std::sync::Arc;
    let Some(ns) = netns("tun_queues_keep_each_flow_on_the_queue_its_packets_came_in_by") else {
        return;
    };
    ns.run(|| -> io::Result<()> {
        let queues = Tun::open_queues("ikst4", 4, true)?;
        assert_eq!(queues.len(), 4);
        assert!(queues.iter().all(|q| q.is_offloaded() && q.name() == "ikst4"));
        assert!(
            Tun::open("ikst4").is_err(),
            "a single-queue open of a multi-queue device"
        );
        sysctl_set("net.ipv6.conf.ikst4.disable_ipv6", "1")?;
        queues[0].set_mtu(1400)?;
        queues[0].set_up()?;
        ns.ip().add_addr("10.98.0.1/24", "ikst4")?;
        let q = TunQueues::new(queues.into_iter().map(Arc::new).collect()).unwrap();
        let (me, peer) = (Ipv4Addr::new(10, 98, 0, 1), Ipv4Addr::new(10, 98, 0, 2));
        let mut batch = PacketBatch::new(16, 64 + 1400 + 64, 64);
        let mut used = [0usize; 4];
        for port in 5000..5016u16 {
            let s = std::net::UdpSocket::bind((me, port))?;
            // In: the peer's packet of this flow, through its queue.
            let inbound = ipv4_udp(peer, 9000, me, port, b"in");
            let want = q
                .queues()
                .iter()
                .position(|d| std::ptr::eq(&**d, q.queue_for(&inbound)))
                .unwrap();
            q.write(&inbound)?;
            // Out: our reply, which the kernel puts on a queue of its choosing.
            s.send_to(b"out", (peer, 9000))?;
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut found = None;
            while found.is_none() && Instant::now() < deadline {
                for (k, d) in q.queues().iter().enumerate() {
                    let n = d.read_batch(&mut batch, Some(Duration::from_millis(5)))?;
                    for (pkt, _) in batch.iter().take(n) {
                        if parse_ipv4_udp(pkt)
                            .is_some_and(|(dst, dport, p)| dst == peer && dport == 9000 && p == b"out")
                            && u16::from_be_bytes([pkt[20], pkt[21]]) == port
                        {
                            found = Some(k);
                        }
                    }
                }
            }
            assert_eq!(
                found,
                Some(want),
                "flow from port {port}: reply on queue {found:?}, written by {want}"
            );
            used[want] += 1;
        }
        assert!(
            used.iter().filter(|&&n| n > 0).count() >= 2,
            "16 flows on one queue: {used:?}"
        );
        Ok(())
    })
    .expect("enter netns")
    .expect("TUN queues test body");
}
