//! Issue 10's flood acceptance test: a spoofing sender in its own namespace
//! floods the responder (gw2) with IKEv1 Main Mode first messages, IKEv2
//! IKE_SA_INIT requests and non-ESP-marker datagrams on UDP 4500, all with
//! gw1's address as their source, while the tunnel carries a ping every
//! 100 ms. No ping may be lost, gw2's resident memory stays under a stated
//! bound, and `ikeda show ike` keeps answering within a second.
//!
//! The sender is a thread of this test that enters the namespace with
//! setns(2) and writes IPv4 datagrams with a raw socket (IP_HDRINCL), so it
//! can forge the source address: what any host on the path can do. It is
//! bounded in count (100,000 of each kind) and paced (about 20,000
//! datagrams a second, more than the daemon's sockets take: the kernel
//! drops part of them, counted and reported), so it ends on its own.

mod common;
use common::*;

use std::net::Ipv4Addr;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Datagrams of each kind.
const PER_KIND: usize = 100_000;
/// Datagrams sent per pacing step, and the step.
const BURST: usize = 60;
const STEP: Duration = Duration::from_millis(3);
/// gw2's resident memory may grow by at most this much during the flood.
/// Every table the flood can fill is bounded; what it may hold at its
/// bounds is far below this, so growth beyond it means one is not.
const RSS_GROWTH_BOUND_KB: u64 = 32 * 1024;
/// `show ike` must answer within this during the flood.
const SHOW_DEADLINE: Duration = Duration::from_secs(1);

/// The flooding namespace's link into gw2 (not the WAN: the WAN's veth
/// joins gw1 and gw2 only).
const FLOOD_GW2: &str = "10.99.0.1";
const FLOOD_NODE: &str = "10.99.0.2";

fn sh_ok(cmd: &[&str]) {
    let o = std::process::Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", text(&o));
}

/// A namespace `ikl-<lab>-flood` (removed by `lab down` with the others)
/// with a veth into gw2 and a route to gw2's WAN address over it.
fn flood_namespace(lab: &Lab) -> String {
    let ns = lab.ns("flood");
    let gw2 = lab.ns("gw2");
    sh_ok(&["ip", "netns", "add", &ns]);
    sh_ok(&[
        "ip", "link", "add", "fl0", "netns", &gw2, "type", "veth", "peer", "name", "fl1", "netns", &ns,
    ]);
    let in_gw2 = |a: &[&str]| {
        let mut c = vec!["ip", "netns", "exec", &gw2];
        c.extend_from_slice(a);
        sh_ok(&c);
    };
    let in_fl = |a: &[&str]| {
        let mut c = vec!["ip", "netns", "exec", &ns];
        c.extend_from_slice(a);
        sh_ok(&c);
    };
    in_gw2(&["ip", "addr", "add", &format!("{FLOOD_GW2}/30"), "dev", "fl0"]);
    in_gw2(&["ip", "link", "set", "fl0", "up"]);
    // Datagrams from gw1's address arrive on fl0: strict reverse-path
    // filtering (if a distribution default set it) would drop them before
    // they reach the daemon, and the test would prove nothing.
    in_gw2(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    in_gw2(&["sysctl", "-qw", "net.ipv4.conf.fl0.rp_filter=0"]);
    in_fl(&["ip", "link", "set", "lo", "up"]);
    in_fl(&["ip", "addr", "add", &format!("{FLOOD_NODE}/30"), "dev", "fl1"]);
    in_fl(&["ip", "link", "set", "fl1", "up"]);
    in_fl(&["ip", "route", "add", "192.168.50.12/32", "via", FLOOD_GW2]);
    ns
}

/// The checksum of RFC 791 §3.1 over `b`.
fn ip_checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP datagram from `src:sport` to `dst:dport` (UDP checksum 0,
/// which IPv4 allows).
fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = ip_checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// A generic payload header (RFC 2408 §3.2, RFC 7296 §3.2) around `body`.
fn payload(next: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![next, 0];
    p.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
    p.extend_from_slice(body);
    p
}

/// An ISAKMP/IKE header (the same 28 bytes in both versions).
fn ike_header(spi_i: u64, spi_r: u64, next: u8, version: u8, exchange: u8, flags: u8, body_len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(28 + body_len);
    h.extend_from_slice(&spi_i.to_be_bytes());
    h.extend_from_slice(&spi_r.to_be_bytes());
    h.extend_from_slice(&[next, version, exchange, flags, 0, 0, 0, 0]);
    h.extend_from_slice(&((28 + body_len) as u32).to_be_bytes());
    h
}

/// A Main Mode first message the lab's IKEv1 responder accepts: one
/// proposal with the lab's default phase-1 suite (AES-128-CBC, SHA2-256,
/// PSK, MODP-2048; RFC 2409 App. A attribute numbers).
fn mm1(cookie: u64) -> Vec<u8> {
    let tv = |t: u16, v: u16| {
        let mut a = (0x8000 | t).to_be_bytes().to_vec();
        a.extend_from_slice(&v.to_be_bytes());
        a
    };
    let mut attrs = Vec::new();
    for (t, v) in [(1, 7), (14, 128), (2, 4), (3, 1), (4, 14), (11, 1), (12, 28800)] {
        attrs.extend(tv(t, v));
    }
    // Transform 1, KEY_IKE (RFC 2407 §4.4.5).
    let mut t = vec![1, 1, 0, 0];
    t.extend(attrs);
    let transform = payload(0, &t);
    // Proposal 1, PROTO_ISAKMP, no SPI, one transform.
    let mut p = vec![1, 1, 0, 1];
    p.extend(transform);
    let proposal = payload(0, &p);
    // DOI IPsec, situation SIT_IDENTITY_ONLY.
    let mut sa = vec![0, 0, 0, 1, 0, 0, 0, 1];
    sa.extend(proposal);
    let sa = payload(0, &sa);
    let mut m = ike_header(cookie, 0, 1, 0x10, 2, 0, sa.len());
    m.extend(sa);
    m
}

/// An IKE_SA_INIT request the lab's IKEv2 responder accepts: AES-GCM-16
/// 128, PRF-HMAC-SHA2-256, X25519 (RFC 7296 §3.3, RFC 8031), a KE and a
/// nonce. The public value is arbitrary bytes, as a flooder would send.
fn ike_sa_init(spi_i: u64, fill: u8) -> Vec<u8> {
    let transform = |last: bool, ty: u8, id: u16, keylen: Option<u16>| {
        let mut t = vec![if last { 0 } else { 3 }, 0, 0, 0, ty, 0];
        t.extend_from_slice(&id.to_be_bytes());
        if let Some(k) = keylen {
            t.extend_from_slice(&[0x80, 14]);
            t.extend_from_slice(&k.to_be_bytes());
        }
        let len = t.len() as u16;
        t[2..4].copy_from_slice(&len.to_be_bytes());
        t
    };
    let mut prop = vec![0, 0, 0, 0, 1, 1, 0, 3];
    prop.extend(transform(false, 1, 20, Some(128)));
    prop.extend(transform(false, 2, 5, None));
    prop.extend(transform(true, 4, 31, None));
    let len = prop.len() as u16;
    prop[2..4].copy_from_slice(&len.to_be_bytes());
    let sa = payload(34, &prop);
    let mut ke = vec![0, 31, 0, 0];
    ke.extend_from_slice(&[fill; 32]);
    let ke = payload(40, &ke);
    let nonce = payload(0, &[fill ^ 0x5a; 32]);
    let body = [sa, ke, nonce].concat();
    let mut m = ike_header(spi_i, 0, 33, 0x20, 34, 0x08, body.len());
    m.extend(body);
    m
}

/// A datagram for UDP 4500 behind the non-ESP marker (RFC 3948 §2.2): an
/// IKEv2 header naming `spis` (the live IKE SA's, as a spoofer who saw them
/// on the wire would) as an IKE_AUTH retransmission, or random ones.
fn on_4500(spis: (u64, u64), n: u64) -> Vec<u8> {
    let mut d = vec![0, 0, 0, 0];
    let (i, r) = if n.is_multiple_of(2) {
        spis
    } else {
        (n.wrapping_mul(0x9e37_79b9_7f4a_7c15), n)
    };
    let mut h = ike_header(i, r, 46, 0x20, 35, 0x08, 4);
    // Message ID 1: the IKE_AUTH request the responder answered and cached.
    h[20..24].copy_from_slice(&1u32.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 4]);
    d.extend(h);
    d
}

/// Send every datagram from within namespace `ns`, paced; returns how many
/// were sent and how many the kernel refused (ENOBUFS on the veth).
fn flood(ns: &str, spis: (u64, u64)) -> (usize, usize) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open the flood namespace");
    // SAFETY: setns on this thread only; the thread ends after the flood.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
    // SAFETY: a raw socket; IPPROTO_RAW implies IP_HDRINCL (raw(7)).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let src: Ipv4Addr = "192.168.50.11".parse().unwrap();
    let dst: Ipv4Addr = "192.168.50.12".parse().unwrap();
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    let (mut sent, mut refused) = (0, 0);
    let start = Instant::now();
    let mut step = 0u32;
    for n in 0..PER_KIND as u64 {
        let cookie = 0x1000_0000_0000_0000 | n;
        for d in [
            udp4(src, dst, 500, 500, &mm1(cookie)),
            udp4(src, dst, 500, 500, &ike_sa_init(cookie, n as u8)),
            udp4(src, dst, 4500, 4500, &on_4500(spis, n)),
        ] {
            // SAFETY: sendto with a valid buffer and address.
            let r = unsafe {
                libc::sendto(
                    fd,
                    d.as_ptr().cast(),
                    d.len(),
                    0,
                    (&to as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            if r < 0 {
                refused += 1;
            } else {
                sent += 1;
            }
            if (sent + refused) % BURST == 0 {
                step += 1;
                if let Some(wait) = (STEP * step).checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    // SAFETY: closing our own socket.
    unsafe { libc::close(fd) };
    (sent, refused)
}

/// VmRSS and VmHWM (peak) of `pid`, in KiB.
fn rss_kb(pid: i32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn show_ike(lab: &Lab) -> (Duration, serde_json::Value) {
    let sock = lab.dir().join("gw2.sock");
    let t = Instant::now();
    let o = ikeda(&["--socket", sock.to_str().unwrap(), "show", "ike", "--json"]);
    let took = t.elapsed();
    assert!(o.status.success(), "show ike: {}", text(&o));
    (took, serde_json::from_slice(&o.stdout).unwrap())
}

fn hex_spi(v: &serde_json::Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn flood_test(ike: &str) {
    if !require_root("flood") {
        return;
    }
    let (lab, _) = Lab::up_alone('f', &["--ike", ike]);
    let gw2 = lab.pid("ikeda gw2");
    let (_, ike_sas) = show_ike(&lab);
    let spis = (hex_spi(&ike_sas[0]["spi_i"]), hex_spi(&ike_sas[0]["spi_r"]));
    let ns = flood_namespace(&lab);
    let (rss_before, _) = rss_kb(gw2);
    let overflowed_before = lab.udp_rcvbuf_errors("gw2");

    // A ping every 100 ms for the flood and 3 s after it.
    let pings = 200;
    let ping = {
        let ns = lab.ns("h1");
        std::thread::spawn(move || {
            std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "ping",
                    "-n",
                    "-i",
                    "0.1",
                    "-c",
                    &pings.to_string(),
                    "-W",
                    "2",
                ])
                .arg("192.168.12.12")
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let flooding = Arc::new(AtomicBool::new(true));
    let sender = {
        let flooding = flooding.clone();
        std::thread::spawn(move || {
            let r = flood(&ns, spis);
            flooding.store(false, Ordering::SeqCst);
            r
        })
    };
    let t0 = Instant::now();
    let (mut slowest, mut shows, mut peak) = (Duration::ZERO, 0, 0);
    while flooding.load(Ordering::SeqCst) {
        let (took, _) = show_ike(&lab);
        slowest = slowest.max(took);
        shows += 1;
        peak = peak.max(rss_kb(gw2).0);
        std::thread::sleep(Duration::from_millis(200));
    }
    let flood_secs = t0.elapsed().as_secs_f64();
    let (sent, refused) = sender.join().unwrap();
    let out = ping.join().unwrap();
    let (tx, rx) = ping_counts(&text(&out));
    let (rss_after, hwm) = rss_kb(gw2);
    let (took, after) = show_ike(&lab);
    let overflowed = lab.udp_rcvbuf_errors("gw2") - overflowed_before;
    eprintln!(
        "flood (IKEv{ike} tunnel): {sent} datagrams sent in {flood_secs:.1} s ({refused} refused by the sender's \
         kernel); pings {rx}/{tx}; gw2 RSS {rss_before} KiB before, {peak} KiB peak sampled, {hwm} KiB high-water, \
         {rss_after} KiB after; {overflowed} overflowed gw2's socket buffers; show ike answered {shows} times, slowest {slowest:?}; IKE SAs after: {}",
        after.as_array().unwrap().len()
    );
    // What gw2 tells its operator about the flood (`show counters`).
    let counters = {
        let sock = lab.dir().join("gw2.sock");
        let o = ikeda(&["--socket", sock.to_str().unwrap(), "show", "counters", "--json"]);
        assert!(o.status.success(), "show counters: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    format!("v{}.{}", c["version"], c["name"].as_str().unwrap()),
                    c["value"].as_u64().unwrap(),
                )
            })
            .collect::<std::collections::HashMap<_, _>>()
    };
    eprintln!("gw2's counters: {counters:?}");
    // The same counters in the stats file (refreshed every second; they only
    // grow) and, those not zero, under `show ike`.
    std::thread::sleep(Duration::from_millis(2500));
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.dir().join("gw2.stats.json")).unwrap()).unwrap();
    for (k, v) in &counters {
        let in_file = stats["ike_counters"][k].as_u64();
        assert!(
            in_file.is_some_and(|f| f >= *v),
            "stats file {k}: {in_file:?}, show counters {v}"
        );
    }
    let shown = {
        let sock = lab.dir().join("gw2.sock");
        text(&ikeda(&["--socket", sock.to_str().unwrap(), "show", "ike"]))
    };
    let named = if ike == "1" {
        "v1 half_open_replaced"
    } else {
        "v2 cookies_sent"
    };
    assert!(
        shown.contains("IKE counters: ") && shown.contains(named),
        "show ike:\n{shown}"
    );
    if ike == "1" {
        // The IKEv1 engine held its half-open bound by replacing the
        // entries whose peer never answered.
        assert!(counters["v1.half_open_replaced"] > 0, "{counters:?}");
        assert!(counters["v1.half_open"] <= 64, "{counters:?}");
    } else {
        // The IKEv2 engine answered with COOKIEs past its threshold, and
        // refused to reflect its cached IKE_AUTH answer to forged copies.
        assert!(counters["v2.cookies_sent"] > 0, "{counters:?}");
        assert!(counters["v2.retransmits_refused"] > 0, "{counters:?}");
    }
    assert_eq!(sent, 3 * PER_KIND, "the sender could not send every datagram");
    assert_eq!((tx, rx), (pings, pings), "pings lost during the flood:\n{}", text(&out));
    assert!(
        hwm.saturating_sub(rss_before) <= RSS_GROWTH_BOUND_KB,
        "gw2 grew from {rss_before} KiB to a peak of {hwm} KiB (bound: +{RSS_GROWTH_BOUND_KB} KiB)"
    );
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .any(|sa| (hex_spi(&sa["spi_i"]), hex_spi(&sa["spi_r"])) == spis),
        "the tunnel's IKE SA did not survive the flood: {after}"
    );
    assert!(
        slowest < SHOW_DEADLINE && took < SHOW_DEADLINE,
        "show ike took {slowest:?} during the flood"
    );
    assert!(
        shows as f64 >= flood_secs,
        "show ike ran only {shows} times in the {flood_secs:.1} s of the flood"
    );
    lab.down();
}

#[test]
fn ikev2_tunnel_survives_a_spoofed_flood() {
    flood_test("2");
}

#[test]
fn ikev1_tunnel_survives_a_spoofed_flood() {
    flood_test("1");
}
