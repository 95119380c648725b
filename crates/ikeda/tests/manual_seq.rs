//! Manual keys and restarts: a static AES-GCM key must never see the same
//! sequence number (its nonce, RFC 4106 §3.1) twice, however often the
//! daemon starts, crashes or stops.

mod common;
use common::*;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A gateway daemon this test started; killed by its PID on drop.
struct Daemon(Child);

impl Daemon {
    fn start(lab: &Lab, gw: &str) -> Daemon {
        let dir = lab.dir();
        let arg = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{gw}.log")))
            .expect("gateway log");
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns(gw), IKEDA, "--log", "info", "run", "-c"])
            .args([
                arg(&format!("{gw}.toml")),
                "--stats-file".into(),
                arg(&format!("{gw}.stats.json")),
                "--control".into(),
                arg(&format!("{gw}.sock")),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start ikeda");
        Daemon(child)
    }

    fn stop(mut self, signal: i32) {
        // SAFETY: kill(2) on the PID of our own child, not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, signal) };
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Pings from h1 to h2: how many of `n` were answered.
fn pings(lab: &Lab, n: u32) -> u32 {
    let out = text(&lab.exec(
        "h1",
        &[
            "ping",
            "-c",
            &n.to_string(),
            "-i",
            "0.05",
            "-W",
            "1",
            "-q",
            "192.168.12.12",
        ],
    ));
    ping_counts(&out).1
}

#[test]
fn manual_aead_sequence_numbers_never_repeat_across_restarts() {
    if !require_root("manual_aead_sequence_numbers_never_repeat_across_restarts") {
        return;
    }
    need_tshark();
    let tmp = TempDir::new("manualseq");
    let pcap = tmp.path().join("wan.pcap");
    let pcap_s = pcap.to_string_lossy().into_owned();
    let (lab, _) = Lab::up('q', &["--esp", "aes128gcm16", "--capture", &pcap_s, "--no-ping"]);
    let mut answered = vec![pings(&lab, 20)];
    // gw1 as `lab up` started it: crash it (SIGKILL: no word to anyone).
    let first = lab.pid("ikeda gw1");
    unsafe { libc::kill(first, libc::SIGKILL) };
    wait_for("the lab's gw1 daemon to die", 10, || !alive(first));
    // Three restarts under traffic: a crash, a clean stop, a crash.
    let mut daemon = Daemon::start(&lab, "gw1");
    for signal in [libc::SIGTERM, libc::SIGKILL, libc::SIGTERM] {
        // The tunnel is back when a ping gets through (or 20 s passed:
        // the capture decides either way).
        let t0 = std::time::Instant::now();
        while pings(&lab, 1) == 0 && t0.elapsed() < Duration::from_secs(20) {}
        answered.push(pings(&lab, 20));
        daemon.stop(signal);
        daemon = Daemon::start(&lab, "gw1");
    }
    let t0 = std::time::Instant::now();
    while pings(&lab, 1) == 0 && t0.elapsed() < Duration::from_secs(20) {}
    answered.push(pings(&lab, 20));
    daemon.stop(libc::SIGTERM);
    let log = lab_log(&lab, "gw1.log");
    lab.down();
    // Every ESP packet gw1 sent, from the capture of its WAN.
    let rows = tshark_fields(
        &pcap,
        tmp.path(),
        &["-Y", "esp && ip.src == 192.168.50.11"],
        &["esp.spi", "esp.sequence"],
    );
    let mut seen: HashMap<(String, u64), usize> = HashMap::new();
    for r in &rows {
        let seq: u64 = r[1].parse().unwrap_or_else(|_| panic!("esp.sequence {:?}", r[1]));
        *seen.entry((r[0].clone(), seq)).or_default() += 1;
    }
    let mut repeats: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    repeats.sort();
    assert!(
        rows.len() >= 5 * 20,
        "only {} ESP packets from gw1 captured; pings answered per run: {answered:?}",
        rows.len()
    );
    assert!(
        repeats.is_empty(),
        "{} (SPI, sequence number) pairs sent more than once under the same key, e.g. {:?}; pings answered per run: {answered:?}",
        repeats.len(),
        &repeats[..repeats.len().min(5)]
    );
    // The peer accepted the numbers after each restart (its replay window
    // would drop repeats): the tunnel carried traffic in every run.
    assert!(
        answered.iter().all(|n| *n >= 18),
        "pings answered per run: {answered:?}\n{log}"
    );
    assert!(log.contains("resumes after sequence number"), "{log}");
}
