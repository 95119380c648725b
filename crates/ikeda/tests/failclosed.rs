//! Fail closed (issue 10, point 2): when gw1's daemon dies (SIGKILL) or
//! stops (SIGTERM) while h1 keeps sending to h2, not one packet with a LAN
//! address leaves gw1's WAN in clear, although gw1 has a default route out
//! of it; a restarted daemon brings the tunnel back.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Pings from h1 to h2 every 20 ms (IPv4 and IPv6) until stopped.
struct Pings([Owned; 2]);

impl Pings {
    fn start(lab: &Lab) -> Pings {
        let ping = |fam: &str, dst: &str| {
            Owned::new(
                Command::new("ip")
                    .args(["netns", "exec", &lab.ns("h1"), "ping", fam, "-n", "-i", "0.02", dst])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        };
        Pings([ping("-4", "192.168.12.12"), ping("-6", "2001:db8:12::12")])
    }

    /// Stop them (SIGINT: ping prints its summary); their output.
    fn stop(self) -> String {
        self.0.into_iter().map(|p| text(&p.stop(libc::SIGINT, false))).collect()
    }
}

/// gw1's `ikeda run`: its PID (from the lab's state) and command line.
fn gw1_daemon(lab: &Lab) -> (i32, Vec<String>) {
    let pid = lab.pid("ikeda gw1");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (pid, args)
}

/// gw1's policy rules, both families.
fn rules(lab: &Lab) -> String {
    ["-4", "-6"]
        .map(|f| text(&lab.exec("gw1", &["ip", f, "rule", "show"])))
        .concat()
}

fn wait_exit(pid: i32) {
    wait_for("gw1's daemon to exit", 20, || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    });
}

/// Frames on gw1's WAN that carry a LAN address in clear (in any IP
/// header, ICMP errors' quoted headers included): ESP hides the inner
/// ones, so every match is a leak.
fn cleartext_lan_frames(pcap: &std::path::Path, confdir: &std::path::Path) -> Vec<Vec<String>> {
    let lan = "ip.addr == 192.168.11.0/24 || ip.addr == 192.168.12.0/24 \
               || ipv6.addr == 2001:db8:11::/64 || ipv6.addr == 2001:db8:12::/64";
    tshark_fields(
        pcap,
        confdir,
        &["-Y", lan],
        &[
            "frame.number",
            "frame.time_relative",
            "_ws.col.Protocol",
            "ip.src",
            "ip.dst",
            "ipv6.src",
            "ipv6.dst",
        ],
    )
}

fn esp_frames(pcap: &std::path::Path, confdir: &std::path::Path) -> usize {
    tshark_fields(pcap, confdir, &["-Y", "esp"], &["frame.number"]).len()
}

fn fail_closed_across(sig: i32, tag: char) {
    need_tshark();
    let (lab, _) = Lab::up(tag, &["--ike", "2"]);
    // The internet: without the fallback, h1's traffic for h2 would take
    // this route in clear once the tunnel's routes are gone.
    for args in [
        &["ip", "route", "add", "default", "via", "192.168.50.12"][..],
        &["ip", "-6", "route", "add", "default", "via", "2001:db8:50::12"],
    ] {
        let o = lab.exec("gw1", args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let tmp = TempDir::new(&format!("failclosed-{}", lab.name));
    let pcap = tmp.path().join("gw1-wan.pcap");
    let (pid, args) = gw1_daemon(&lab);
    let rules_before = rules(&lab);
    let cap = LabCapture::start(&lab, "gw1", &pcap);
    let pings = Pings::start(&lab);
    std::thread::sleep(Duration::from_secs(1));
    unsafe { libc::kill(pid, sig) };
    wait_exit(pid);
    // Keep sending to the dead gateway for a while.
    std::thread::sleep(Duration::from_secs(4));
    let table = ["-4", "-6"]
        .map(|f| text(&lab.exec("gw1", &["ip", f, "route", "show", "table", "220"])))
        .concat();
    let dead = pings.stop();
    cap.stop();
    let leaks = cleartext_lan_frames(&pcap, tmp.path());
    let esp = esp_frames(&pcap, tmp.path());
    eprintln!(
        "after signal {sig}: {} cleartext LAN frames on gw1's WAN, {esp} ESP frames; table 220:\n{table}",
        leaks.len()
    );
    assert!(esp > 0, "the capture saw no ESP before the kill: is it capturing?");
    assert!(
        leaks.is_empty(),
        "{} frames of LAN traffic left gw1's WAN in clear after signal {sig}, the first: {:?}\ntable 220:\n{table}",
        leaks.len(),
        &leaks[..leaks.len().min(6)]
    );
    // h1 hears why: the gateway answers unreachable.
    // One line per gateway and message: "From 192.168.11.1 Destination Host Unreachable".
    let why: std::collections::BTreeSet<String> = dead
        .lines()
        .filter(|l| l.to_lowercase().contains("unreachable"))
        .filter_map(|l| l.split_once("icmp_seq="))
        .map(|(from, rest)| format!("{from}{}", rest.trim_start_matches(|c: char| c.is_ascii_digit()).trim()))
        .collect();
    eprintln!("h1's pings were answered: {why:?}");
    assert!(
        why.iter().any(|l| l.starts_with("From 192.168.11.1 "))
            && why.iter().any(|l| l.starts_with("From 2001:db8:11::1 ")),
        "pings to the dead gateway, IPv4 and IPv6:\n{dead}"
    );

    // Restart: it adopts the rules and fallback, and the tunnel comes back.
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(lab.dir().join("gw1.log"))
        .unwrap();
    let restarted = Owned::new(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns("gw1")])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let t0 = std::time::Instant::now();
    for (fam, dst) in [("-4", "192.168.12.12"), ("-6", "2001:db8:12::12")] {
        wait_for(&format!("ping {dst} through the restarted gw1"), 30, || {
            lab.exec("h1", &["ping", fam, "-c", "1", "-W", "1", dst])
                .status
                .success()
        });
    }
    eprintln!("the tunnel was back {:?} after the restart", t0.elapsed());
    let o = lab.exec("h1", &["ping", "-c", "5", "-i", "0.2", "-W", "2", "192.168.12.12"]);
    assert_eq!(ping_counts(&text(&o)), (5, 5), "{}", text(&o));
    assert_eq!(rules(&lab), rules_before, "the restart duplicated or lost rules");
    // ip netns exec execs: the child's PID is the daemon's.
    let o = restarted.stop(libc::SIGTERM, false);
    assert!(o.status.success(), "the restarted daemon: {o:?}");
    lab.down();
}

#[test]
fn sigkill_leaks_no_cleartext_and_a_restart_restores_the_tunnel() {
    if !require_root("sigkill_leaks_no_cleartext_and_a_restart_restores_the_tunnel") {
        return;
    }
    fail_closed_across(libc::SIGKILL, 'k');
}

#[test]
fn sigterm_leaks_no_cleartext_and_a_restart_restores_the_tunnel() {
    if !require_root("sigterm_leaks_no_cleartext_and_a_restart_restores_the_tunnel") {
        return;
    }
    fail_closed_across(libc::SIGTERM, 't');
}
