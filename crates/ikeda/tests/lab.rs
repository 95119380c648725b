//! The two-site lab end to end: namespaces, two ikeda gateways, pings
//! through the tunnel, and cleanup (also after failures and crashes).

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn stats(lab: &Lab, gw: &str) -> serde_json::Value {
    let t = std::fs::read_to_string(lab.dir().join(format!("{gw}.stats.json"))).expect("stats file");
    serde_json::from_str(&t).expect("stats json")
}

/// Wait until gw's stats file shows an SA with at least `n` packets in `dir`.
fn wait_sa_packets(lab: &Lab, gw: &str, dir: &str, n: u64) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let s = stats(lab, gw);
        let p = s["sas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["direction"] == dir)
            .map(|x| x["packets"].as_u64().unwrap());
        if p.is_some_and(|p| p >= n) || t0.elapsed() > Duration::from_secs(4) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn check_lab(args: &[&str]) {
    let (lab, out) = Lab::up('l', args);
    // `lab up` itself pings h1 -> h2 over IPv4 and IPv6 and fails otherwise.
    assert!(
        out.contains("192.168.11.11 -> 192.168.12.12 through the tunnel: 3 packets transmitted, 3 received"),
        "{out}"
    );
    assert!(
        out.contains("2001:db8:11::11 -> 2001:db8:12::12 through the tunnel: 3 packets transmitted, 3 received"),
        "{out}"
    );
    // The seed policy set: gateway <-> remote net, and net <-> remote gateway.
    let o = lab.exec(
        "gw1",
        &[
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            "-I",
            "192.168.50.11",
            "192.168.12.12",
        ],
    );
    assert!(o.status.success(), "gw1 -> h2: {}", text(&o));
    let o = lab.exec("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", "192.168.50.12"]);
    assert!(o.status.success(), "h1 -> gw2: {}", text(&o));
    // 10 packets each way crossed the SAs (6 from lab up, 4 here), seen by the data plane.
    let s = wait_sa_packets(&lab, "gw2", "in", 10);
    let inb = s["sas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["direction"] == "in")
        .unwrap()
        .clone();
    assert!(inb["packets"].as_u64().unwrap() >= 10, "{s}");
    assert_eq!(s["drops"].get("icv_mismatch"), None, "{s}");
    // The ESP really is on the wire between the gateways.
    let o = lab.exec("gw1", &["ip", "-s", "link", "show", "wan0"]);
    assert!(o.status.success());
    drop(lab);
}

#[test]
fn lab_raw_esp_gcm() {
    if !require_root("lab_raw_esp_gcm") {
        return;
    }
    check_lab(&[]);
}

#[test]
fn lab_udp_encap_cbc_sha256_esn() {
    if !require_root("lab_udp_encap_cbc_sha256_esn") {
        return;
    }
    check_lab(&["--encap", "udp", "--esp", "aes256-sha256", "--esn"]);
}

#[test]
fn lab_outer_ipv6_chacha() {
    if !require_root("lab_outer_ipv6_chacha") {
        return;
    }
    check_lab(&["--outer6", "--esp", "chacha20poly1305"]);
}

#[test]
fn lab_down_cleans_up_after_a_crash() {
    if !require_root("lab_down_cleans_up_after_a_crash") {
        return;
    }
    let (lab, _) = Lab::up('c', &["--no-ping"]);
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.dir().join("lab.json")).unwrap()).unwrap();
    // Crash the gateways (SIGKILL: no cleanup of their own) and lose the
    // lab's state directory, as if `lab up` itself had died.
    for p in st["pids"].as_array().unwrap() {
        let pid = p[1].as_u64().unwrap() as i32;
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    std::fs::remove_dir_all(lab.dir()).unwrap();
    let o = ikeda(&["lab", "down", "--name", &lab.name]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        namespaces_with_prefix(&format!("ikl-{}-", lab.name)),
        Vec::<String>::new()
    );
    // A second lab can be built under the same name right away.
    let o = ikeda(&["lab", "up", "--name", &lab.name, "--no-ping"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn lab_refuses_a_second_up_and_a_bad_proposal() {
    if !require_root("lab_refuses_a_second_up_and_a_bad_proposal") {
        return;
    }
    let (lab, _) = Lab::up('r', &["--no-ping"]);
    let o = ikeda(&["lab", "up", "--name", &lab.name]);
    assert!(!o.status.success());
    assert!(text(&o).contains("is already up"), "{}", text(&o));
    let other = unique_name('r');
    let o = ikeda(&["lab", "up", "--name", &other, "--esp", "des-md5"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown ESP cipher 'des'"), "{}", text(&o));
    assert!(namespaces_with_prefix(&format!("ikl-{other}-")).is_empty());
}

#[test]
fn lab_exec_runs_in_the_node() {
    if !require_root("lab_exec_runs_in_the_node") {
        return;
    }
    let (lab, _) = Lab::up('e', &["--no-ping"]);
    let o = ikeda(&[
        "lab", "exec", "--name", &lab.name, "h2", "--", "ip", "-4", "-o", "addr", "show", "eth0",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("192.168.12.12/24"), "{}", text(&o));
    let o = ikeda(&["lab", "status", "--name", &lab.name]);
    assert!(
        text(&o).contains("ikeda gw1: pid") && text(&o).contains("running"),
        "{}",
        text(&o)
    );
}

#[test]
fn strongswan_gateways_ping_across() {
    if !require_root("strongswan_gateways_ping_across") {
        return;
    }
    assert!(
        std::path::Path::new("/usr/lib/ipsec/charon").exists(),
        "strongSwan is not installed: run the README's test command, which installs it"
    );
    let (lab, out) = Lab::up('s', &["--gateways", "strongswan"]);
    assert!(out.contains("3 received"), "{out}");
    let o = Command::new("swanctl")
        .env("STRONGSWAN_CONF", lab.dir().join("charon-gw2/strongswan.conf"))
        .args([
            "--list-sas",
            "--uri",
            &format!("unix://{}/charon-gw2/charon.vici", lab.dir().display()),
        ])
        .output()
        .unwrap();
    assert!(text(&o).contains("INSTALLED"), "{}", text(&o));
}

/// Receiver (argv: bind address): a TCP stream on port 7000, then UDP
/// datagrams on 7001 until 1 s of silence; prints
/// "tcp <len> <sha256>" and "udp <len> <sha256>" per datagram in order.
const OFFLOAD_SINK: &str = r#"
import hashlib, socket, sys
a = sys.argv[1]
fam = socket.AF_INET6 if ":" in a else socket.AF_INET
u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((a, 7001))
l = socket.socket(fam, socket.SOCK_STREAM); l.bind((a, 7000)); l.listen(1)
print("ready", flush=True)
c, _ = l.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b)
print("tcp", n, h.hexdigest(), flush=True)
u.settimeout(3)
try:
    while True:
        d = u.recv(1 << 16); u.settimeout(1)
        print("udp", len(d), hashlib.sha256(d).hexdigest(), flush=True)
except socket.timeout:
    pass
"#;

/// Sender (argv: destination address): 6 MB of TCP, then UDP datagrams
/// of sizes around the tunnel MTU (IPv4 with DF clear: the gateway
/// fragments those that do not fit the TUN), gently paced; prints what it sent as the
/// sink prints what it got.
const OFFLOAD_SOURCE: &str = r#"
import hashlib, socket, sys, time
a = sys.argv[1]
fam = socket.AF_INET6 if ":" in a else socket.AF_INET
data = bytes((i * 7 + i // 251) % 256 for i in range(6_000_011))
t = socket.create_connection((a, 7000), timeout=20); t.sendall(data); t.close()
print("tcp", len(data), hashlib.sha256(data).hexdigest(), flush=True)
u = socket.socket(fam, socket.SOCK_DGRAM)
if fam == socket.AF_INET:
    u.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT
time.sleep(0.5)
sizes = list(range(1300, 1420, 7)) + [1, 1351, 1352, 1353, 1372, 1373, 1400, 1472]
if fam == socket.AF_INET6:
    # IPv6 routers do not fragment: what exceeds the tunnel MTU (1352
    # bytes of UDP payload) would be refused with Packet Too Big.
    sizes = [n for n in sizes if n <= 1352]
for n in sizes:
    d = bytes((n + i) % 256 for i in range(n))
    u.sendto(d, (a, 7001)); time.sleep(0.005)
    print("udp", n, hashlib.sha256(d).hexdigest(), flush=True)
"#;

/// Segmentation offload on the TUN (the lab's default): TCP and UDP of
/// sizes around the MTU, both ways and over IPv4 and IPv6, arrive byte
/// for byte; the gateways really read super-packets, dropped none, and
/// wrote coalesced (GRO) super-packets to their TUNs.
#[test]
fn lab_offload_carries_tcp_and_udp_intact() {
    let (lab, _) = Lab::up('o', &["--esp", "aes128gcm16"]);
    offload_round_trip(&lab);
    for gw in ["gw1", "gw2"] {
        let s = stats(&lab, gw);
        let o = &s["tun_offload"];
        assert!(
            o["gso_packets"].as_u64().unwrap() > 0,
            "{gw}: no super-packets read: {s}"
        );
        assert_eq!(o["dropped"].as_u64(), Some(0), "{gw}: {s}");
        // TCP came in both ways: each gateway wrote coalesced super-packets.
        assert!(o["gro_packets"].as_u64().unwrap() > 0, "{gw}: no coalesced writes: {s}");
        assert!(
            o["gro_segments"].as_u64().unwrap() > o["gro_packets"].as_u64().unwrap(),
            "{gw}: {s}"
        );
        assert_eq!(s["drops"].get("icv_mismatch"), None, "{gw}: {s}");
    }
    let log = lab_log(&lab, "gw1.log");
    assert!(log.contains("segmentation offload on"), "{log}");
    drop(lab);
}

/// Four TUN queues on each gateway (`tun_queues = 4`), one TX thread each,
/// sharing one SA per direction: 16 TCP streams at once spread over the
/// queues (at least two carried packets on each gateway, so the threads
/// really took turns with the SA), no packet was dropped as replayed or
/// failed its ICV, and the TCP and UDP traffic around the MTU, both ways
/// and over both families, still arrives byte for byte.
#[test]
fn lab_tun_queues_share_one_sa_in_order_and_carry_everything_intact() {
    let (lab, out) = Lab::up('m', &["--esp", "aes128gcm16", "--tun-queues", "4"]);
    assert!(out.contains("through the tunnel"), "{out}");
    let srv = IperfServer::start(&lab);
    let o = lab.exec("h1", &["iperf3", "-c", "192.168.12.12", "-t", "3", "-P", "16"]);
    assert!(o.status.success(), "iperf3: {}", text(&o));
    drop(srv);
    offload_round_trip(&lab);
    for gw in ["gw1", "gw2"] {
        let s = stats(&lab, gw);
        let q: Vec<u64> = s["tx_queues"]
            .as_array()
            .unwrap_or_else(|| panic!("{gw}: no tx_queues: {s}"))
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert_eq!(q.len(), 4, "{gw}: {s}");
        assert!(q.iter().filter(|&&n| n > 0).count() >= 2, "{gw}: one queue carried all: {q:?}");
        for bad in ["replayed", "icv_mismatch"] {
            assert_eq!(s["drops"].get(bad), None, "{gw}: {s}");
        }
    }
    let log = lab_log(&lab, "gw1.log");
    assert!(log.contains("TUN ikeda0: 4 queue(s), one TX thread each"), "{log}");
    drop(lab);
}

/// UDP GSO/GRO on the 4500 socket (`udp_offload`, on by default; IKEv2 with
/// forced UDP encapsulation, RFC 3948), with the WAN veths' offloads kept on
/// (`--wan-offload`) so that trains cross whole and reach the peer's UDP_GRO
/// as trains: the same TCP and UDP traffic around the MTU arrives byte for
/// byte, and both gateways really sent UDP_SEGMENT trains and received
/// UDP_GRO trains (more datagrams than syscalls each way), none refused,
/// none malformed, no ICV failure. (The lab's default, trains cut as they
/// leave the gateway, is what the oracle and interop tests run on.)
#[test]
fn lab_udp_gso_gro_carry_tcp_and_udp_intact() {
    udp_trains_carry_tcp_and_udp_intact('g', "--wan-offload");
}

/// The same with trains cut as they leave each gateway and joined again by
/// the receiving link's GRO (`--wan-gro`, as a NIC's NAPI does): each
/// gateway receives UDP_GRO trains although none crossed the wire whole,
/// and every datagram of them, split again by us, arrives intact. With the
/// lab's default (GRO off) this fails: no trains are received.
#[test]
fn lab_udp_trains_cut_on_the_wire_are_joined_by_gro_intact() {
    udp_trains_carry_tcp_and_udp_intact('h', "--wan-gro");
}

/// UDP_GRO asked for on UDP 4500, but the link the datagrams arrive on
/// joins none (the lab's default WAN veth: GRO off): under one TCP stream
/// gw2 says so, once, with the `ethtool` line that fixes it. With
/// `--wan-gro` the link joins them and nothing is said. Alone: the hint
/// needs datagrams in bulk, which a neighbour's iperf3 could starve.
#[test]
fn lab_udp_says_when_the_link_joins_no_trains() {
    const HINT: &str = "none joined into a UDP_GRO train";
    for (tag, wan, told) in [('i', None, 1), ('j', Some("--wan-gro"), 0)] {
        let mut args = vec!["--ike", "2", "--encap", "udp", "--esp", "aes128gcm16"];
        args.extend(wan);
        let (lab, _) = Lab::up_alone(tag, &args);
        let srv = IperfServer::start(&lab);
        let o = lab.exec("h1", &["iperf3", "-c", "192.168.12.12", "-t", "5"]);
        assert!(o.status.success(), "{wan:?}: iperf3: {}", text(&o));
        drop(srv);
        // The receive thread looks every 2 s.
        std::thread::sleep(Duration::from_millis(2500));
        let log = lab_log(&lab, "gw2.log");
        assert_eq!(log.matches(HINT).count(), told, "{wan:?}:\n{log}");
        if told > 0 {
            assert!(log.contains("gro on rx-udp-gro-forwarding on"), "{log}");
        }
        drop(lab);
    }
}

fn udp_trains_carry_tcp_and_udp_intact(tag: char, wan: &str) {
    let (lab, _) = Lab::up(tag, &["--ike", "2", "--encap", "udp", "--esp", "aes128gcm16", wan]);
    if wan == "--wan-gro" {
        // The wire carries single datagrams; only the receiver joins them.
        for gw in ["gw1", "gw2"] {
            let k = String::from_utf8_lossy(&lab.exec(gw, &["ethtool", "-k", "wan0"]).stdout).into_owned();
            for f in [
                "tx-udp-segmentation: off",
                "generic-receive-offload: on",
                "rx-udp-gro-forwarding: on",
            ] {
                assert!(k.lines().any(|l| l.trim() == f), "{gw}: no '{f}' in\n{k}");
            }
        }
    }
    offload_round_trip(&lab);
    for gw in ["gw1", "gw2"] {
        let s = stats(&lab, gw);
        let u = &s["udp_offload"];
        let n = |k: &str| u[k].as_u64().unwrap_or_else(|| panic!("{gw}: no {k}: {s}"));
        assert_eq!(
            (u["gso"].as_bool(), u["gro"].as_bool()),
            (Some(true), Some(true)),
            "{gw}: {s}"
        );
        assert!(
            n("gso_sends") > 0 && n("gso_datagrams") > n("gso_sends"),
            "{gw}: no trains sent: {s}"
        );
        assert!(
            n("gro_trains") > 0 && n("gro_datagrams") > n("gro_trains"),
            "{gw}: no trains received: {s}"
        );
        assert!(n("send_datagrams") > n("send_syscalls"), "{gw}: {s}");
        assert!(n("recv_datagrams") > n("recv_syscalls"), "{gw}: {s}");
        assert_eq!((n("gso_fallbacks"), n("gro_malformed")), (0, 0), "{gw}: {s}");
        assert_eq!(s["drops"].get("icv_mismatch"), None, "{gw}: {s}");
        let sas = s["sas"].as_array().unwrap();
        assert!(
            !sas.is_empty() && sas.iter().all(|sa| sa["encap"] == "udp"),
            "{gw}: {s}"
        );
        // The peer is ikeda, which said it takes full trains.
        let out: Vec<_> = sas.iter().filter(|sa| sa["direction"] == "out").collect();
        assert!(
            !out.is_empty() && out.iter().all(|sa| sa["udp_train"] == 64),
            "{gw}: {s}"
        );
    }
    let log = lab_log(&lab, "gw1.log");
    assert!(log.contains("UDP_SEGMENT on, UDP_GRO on"), "{log}");
    drop(lab);
}

/// TCP and UDP of sizes around the MTU through the lab's tunnel, both ways
/// and over IPv4 and IPv6: what arrives is byte for byte what was sent.
fn offload_round_trip(lab: &Lab) {
    for (from, to, addr) in [
        ("h1", "h2", "192.168.12.12"),
        ("h2", "h1", "192.168.11.11"),
        ("h1", "h2", "2001:db8:12::12"),
    ] {
        let mut sink = Command::new("ip")
            .args(["netns", "exec", &lab.ns(to), "python3", "-c", OFFLOAD_SINK, addr])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sink");
        let mut out = sink.stdout.take().unwrap();
        let mut ready = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut ready).expect("sink ready");
        let src = lab.exec(from, &["python3", "-c", OFFLOAD_SOURCE, addr]);
        assert!(src.status.success(), "{from} -> {addr}: {}", text(&src));
        let mut got = String::new();
        std::io::Read::read_to_string(&mut out, &mut got).unwrap();
        sink.wait().unwrap();
        let sent = String::from_utf8_lossy(&src.stdout).to_string();
        assert_eq!(got, sent, "{from} -> {addr}: what arrived differs from what was sent");
    }
    // The stats file is rewritten every second.
    std::thread::sleep(Duration::from_millis(1500));
}
