//! Helpers shared by the namespace tests: unique lab names, a guard that
//! takes a lab down even when a test panics, and the root policy.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const IKEDA: &str = env!("CARGO_BIN_EXE_ikeda");

/// These tests need root (namespaces, TUN). Without root they fail, unless
/// IKEDA_ALLOW_NO_ROOT=1 says skipping is intended; CI runs as root.
pub fn require_root(test: &str) -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("IKEDA_ALLOW_NO_ROOT").as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: not root (IKEDA_ALLOW_NO_ROOT=1)");
        return false;
    }
    panic!("{test} needs root (network namespaces, TUN); run as root or set IKEDA_ALLOW_NO_ROOT=1 to skip");
}

/// A lab name unique to this process and call (1-8 lower-case alnum).
pub fn unique_name(tag: char) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{:03x}{n}", std::process::id() % 0xfff)
}

pub fn ikeda(args: &[&str]) -> Output {
    Command::new(IKEDA).args(args).output().expect("run ikeda")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let o = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Takes the lab down on drop, so a failing test leaves nothing behind.
pub struct Lab {
    pub name: String,
    /// Set by `down()`: the lab is gone, drop has nothing to take down.
    downed: bool,
    /// Held until the lab is down; see [`LabLock`].
    _lock: LabLock,
}

/// Labs of one test binary run side by side (`--test-threads`), and so do
/// their iperf3 runs. A test that asserts that no packet is lost under load
/// must not share the CPU with them: strongSwan's userspace ESP reads UDP
/// 4500 with the kernel's default receive buffer and, starved of CPU by a
/// neighbour's iperf3, overflows it (UdpRcvbufErrors in charon's
/// namespace), dropping packets that no rekey and no ikeda code is to blame
/// for. So every lab holds a shared lock on one file while it is up, and
/// such a test takes it exclusively ([`Lab::up_alone`]): it waits for the
/// labs that run, and the others wait for it.
pub struct LabLock(std::fs::File);

impl LabLock {
    fn take(exclusive: bool) -> LabLock {
        use std::os::unix::io::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("ikeda-lab-tests.lock"))
            .expect("open the lab lock file");
        let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        loop {
            if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
                return LabLock(f);
            }
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "flock: {e}");
        }
    }
}

impl Lab {
    /// `ikeda lab up --name <unique> ARGS`; panics (after cleanup) on failure.
    pub fn up(tag: char, args: &[&str]) -> (Lab, String) {
        Lab::up_locked(tag, args, false)
    }

    /// Like [`Lab::up`], with no other lab of this test binary up while it
    /// is (see [`LabLock`]): for tests that assert on loss or timing.
    pub fn up_alone(tag: char, args: &[&str]) -> (Lab, String) {
        Lab::up_locked(tag, args, true)
    }

    fn up_locked(tag: char, args: &[&str], exclusive: bool) -> (Lab, String) {
        let lock = LabLock::take(exclusive);
        let lab = Lab {
            name: unique_name(tag),
            downed: false,
            _lock: lock,
        };
        let mut a = vec!["lab", "up", "--name", &lab.name];
        a.extend_from_slice(args);
        let o = ikeda(&a);
        let t = text(&o);
        assert!(o.status.success(), "lab up {args:?} failed:\n{t}");
        (lab, t)
    }

    pub fn ns(&self, node: &str) -> String {
        format!("ikl-{}-{node}", self.name)
    }

    pub fn dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/var/lib/ikeda/lab-{}", self.name))
    }

    /// The PID the lab recorded for `what` ("ikeda gw1", "charon gw2").
    pub fn pid(&self, what: &str) -> i32 {
        let f = self.dir().join("lab.json");
        let st: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        st["pids"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p[0] == what))
            .and_then(|p| p[1].as_i64())
            .unwrap_or_else(|| panic!("no PID of {what} in {}: {st}", f.display())) as i32
    }

    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(cmd)
            .output()
            .expect("ip netns exec")
    }

    /// `ikeda lab down` now (asserting it worked) instead of on drop;
    /// returns its output.
    pub fn down(mut self) -> String {
        let o = ikeda(&["lab", "down", "--name", &self.name]);
        let t = text(&o);
        self.downed = true;
        assert!(o.status.success(), "lab down {}: {t}", self.name);
        t
    }

    /// Copy a gateway's exported keys (`keys-<gw>`, which `lab down`
    /// removes) into `to`.
    pub fn copy_keys(&self, gw: &str, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(self.dir().join(format!("keys-{gw}"))).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    /// `lab down` of a lab started with `--capture`: asserts it reports the
    /// capture (it is complete on disk then).
    pub fn down_with_capture(self) -> String {
        let down = self.down();
        assert!(
            down.contains("packets in"),
            "lab down does not report the capture:\n{down}"
        );
        down
    }

    /// The kernel's UDP receive-buffer overflows (`UdpRcvbufErrors` of
    /// /proc/net/snmp) in a node's namespace: datagrams that reached a
    /// socket whose reader did not keep up.
    pub fn udp_rcvbuf_errors(&self, node: &str) -> u64 {
        let o = self.exec(node, &["cat", "/proc/net/snmp"]);
        let t = String::from_utf8_lossy(&o.stdout);
        let mut udp = t.lines().filter(|l| l.starts_with("Udp: "));
        let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
            panic!("no Udp lines in {node}'s /proc/net/snmp: {t}");
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "RcvbufErrors")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no RcvbufErrors in {node}'s /proc/net/snmp: {t}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.downed {
            return;
        }
        let o = ikeda(&["lab", "down", "--name", &self.name]);
        if !o.status.success() {
            // A passing test's output is never shown: fail it, so that a lab
            // left behind is seen with its cause (unless the test is failing
            // already, where a second panic would abort the binary).
            let msg = format!("lab down {}: {}", self.name, text(&o));
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// Tests that talk to strongSwan fail (never skip) when it is missing.
pub fn need_strongswan() {
    assert!(
        std::path::Path::new("/usr/lib/ipsec/charon").exists() && std::path::Path::new("/usr/bin/iperf3").exists(),
        "strongSwan or iperf3 missing: run the README's test command (scripts/test.sh), which installs them"
    );
}

/// `swanctl ARGS` against the charon of a lab gateway.
pub fn swanctl(lab: &Lab, gw: &str, args: &[&str]) -> String {
    let d = lab.dir().join(format!("charon-{gw}"));
    let o = Command::new("swanctl")
        .env("STRONGSWAN_CONF", d.join("strongswan.conf"))
        .env("SWANCTL_DIR", d.join("swanctl"))
        .args(args)
        .args(["--uri", &format!("unix://{}/charon.vici", d.display())])
        .output()
        .unwrap();
    text(&o)
}

/// The drops of gw1's whole data plane by reason (`drops` of its stats
/// file: unknown SPIs, no policy, ...), as JSON text.
pub fn gw1_plane_drops(lab: &Lab) -> String {
    let f = lab.dir().join("gw1.stats.json");
    let t = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    v["drops"].to_string()
}

/// A lab log file, without the ANSI colours tracing puts in.
pub fn lab_log(lab: &Lab, file: &str) -> String {
    let t = std::fs::read_to_string(lab.dir().join(file)).unwrap_or_default();
    let mut out = String::with_capacity(t.len());
    let mut it = t.chars();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            // ESC [ ... m
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn gw1_log(lab: &Lab) -> String {
    lab_log(lab, "gw1.log")
}

pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// (transmitted, received) from ping's summary line.
/// Three pings from h1 to h2 through the tunnel, all answered.
pub fn ping_ok(lab: &Lab, what: &str) {
    let o = lab.exec("h1", &["ping", "-c", "3", "-i", "0.2", "-W", "2", "192.168.12.12"]);
    let (sent, got) = ping_counts(&String::from_utf8_lossy(&o.stdout));
    assert!(sent == 3 && got == 3, "{what}: {}", text(&o));
}

pub fn ping_counts(out: &str) -> (u32, u32) {
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no summary: {out}"));
    let n: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .take(2)
        .collect();
    (n[0], n[1])
}

/// A one-shot iperf3 server on h2 (192.168.12.12), killed on drop.
pub struct IperfServer(std::process::Child);

impl IperfServer {
    pub fn start(lab: &Lab) -> IperfServer {
        let c = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns("h2"),
                "iperf3",
                "-s",
                "-1",
                "-B",
                "192.168.12.12",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        IperfServer(c)
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// iperf3 UDP from h1 to h2 at a steady 100 Mbit/s (1300-byte datagrams,
/// inside the tunnel's MTU): load for the tests that count losses. TCP at
/// the same rate sends in bursts of a congestion window that overflow
/// charon's UDP 4500 socket (strongSwan's userspace ESP reads it one
/// datagram at a time, with the kernel's default buffer): about 2,000
/// drops in each 18 s run (UdpRcvbufErrors in gw2), each a TCP
/// retransmission, and a ping that falls into one is lost though no rekey
/// is to blame. Paced UDP at the same rate: none outside strongSwan's own
/// rekey work, 0 to 200 a run in all (40 runs measured).
pub struct UdpLoad {
    client: std::process::Child,
    _server: IperfServer,
}

impl UdpLoad {
    pub fn start(lab: &Lab, secs: u32) -> UdpLoad {
        let server = IperfServer::start(lab);
        let client = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns("h1"),
                "iperf3",
                "-c",
                "192.168.12.12",
                "-u",
                "-l",
                "1300",
            ])
            .args(["-b", "100M", "-t", &secs.to_string(), "-J"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        UdpLoad {
            client,
            _server: server,
        }
    }

    /// Wait for the run to end: (datagrams sent, datagrams lost) as the
    /// receiver counted them.
    pub fn finish(self) -> (u64, u64) {
        let o = self.client.wait_with_output().unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("iperf3 -J: {e}: {}", text(&o)));
        let sum = &v["end"]["sum"];
        match (sum["packets"].as_u64(), sum["lost_packets"].as_u64()) {
            (Some(n), Some(lost)) if n > 0 => (n, lost),
            _ => panic!("iperf3 UDP gave no counts: {}", text(&o)),
        }
    }
}

/// The load of the zero-loss rekey tests and the accounting of every loss:
/// pings from h1 to h2 every 10 ms (1700, 17 s) beside 18 s of [`UdpLoad`],
/// and the UDP receive-buffer overflows of gw1 (ikeda), gw2 (charon) and h2
/// (iperf3's own socket) counted from before the run.
pub struct LossRun {
    load: UdpLoad,
    ping: std::process::Child,
    before: [u64; 3],
}

impl LossRun {
    fn overflows(lab: &Lab) -> [u64; 3] {
        ["gw1", "gw2", "h2"].map(|n| lab.udp_rcvbuf_errors(n))
    }

    pub fn start(lab: &Lab) -> LossRun {
        let before = LossRun::overflows(lab);
        let load = UdpLoad::start(lab, 18);
        let ping = Command::new("ip")
            .args(["netns", "exec", &lab.ns("h1"), "ping", "-i", "0.01", "-c", "1700"])
            .args(["-W", "2", "192.168.12.12"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        LossRun { load, ping, before }
    }

    /// Wait for the pings and the load to end; assert that no ping was lost
    /// and that every datagram lost is one that charon's or iperf3's socket
    /// dropped (strongSwan's userspace ESP stalls while it rekeys), none in
    /// ikeda. Returns (pings sent, pings received).
    pub fn finish(self, lab: &Lab) -> (u32, u32) {
        let out = self.ping.wait_with_output().unwrap();
        let (datagrams, lost) = self.load.finish();
        let (sent, got) = ping_counts(&String::from_utf8_lossy(&out.stdout));
        let after = LossRun::overflows(lab);
        let d: Vec<u64> = after.iter().zip(self.before).map(|(a, b)| a - b).collect();
        // Where a lost ping or datagram went: a UDP socket that overflowed,
        // else ikeda's drop counters.
        let what = format!(
            "UDP receive-buffer overflows during the run: gw1 (ikeda) {}, gw2 (charon) {}, h2 (iperf3) {}; \
             gw1's data plane drops: {}; iperf3 UDP lost {lost} of {datagrams}",
            d[0],
            d[1],
            d[2],
            gw1_plane_drops(lab)
        );
        eprintln!("{what}");
        assert_eq!((sent, got), (1700, 1700), "pings lost across the rekeys; {what}");
        let elsewhere = d[1] + d[2];
        assert!(
            lost <= elsewhere,
            "{} datagrams lost more than other sockets dropped; {what}",
            lost - elsewhere
        );
        (sent, got)
    }
}

/// Tests that read captures fail (never skip) without tshark.
pub fn need_tshark() {
    match Command::new("tshark").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("tshark is missing: run the README's test command (scripts/test.sh), which installs it"),
    }
}

/// A fresh temporary directory, removed on drop (kept with IKEDA_TEST_KEEP=1).
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("ikeda-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("creating a temporary directory");
        TempDir(d)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("IKEDA_TEST_KEEP").as_deref() == Ok("1") {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `WIRESHARK_CONFIG_DIR=confdir tshark -r pcap -n OPTS -T fields -e F...`:
/// one row per frame, one column per field (several occurrences joined
/// with ','). Fails if tshark fails or says anything on stderr (a key file
/// it could not read) beyond the usual "Running as user" line.
pub fn tshark_fields(
    pcap: &std::path::Path,
    confdir: &std::path::Path,
    opts: &[&str],
    fields: &[&str],
) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.env("WIRESHARK_CONFIG_DIR", confdir)
        .arg("-r")
        .arg(pcap)
        .arg("-n")
        .args(opts)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.stdin(std::process::Stdio::null()).output().expect("running tshark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark -r {} failed: {stderr}", pcap.display());
    let complaints: Vec<&str> = stderr.lines().filter(|l| !l.contains("Running as user")).collect();
    assert!(
        complaints.is_empty(),
        "tshark complained reading {} with WIRESHARK_CONFIG_DIR={} (key files?):\n{}",
        pcap.display(),
        confdir.display(),
        complaints.join("\n")
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let f: Vec<String> = line.split('\t').map(str::to_owned).collect();
            assert_eq!(f.len(), fields.len(), "tshark line {line:?}");
            f
        })
        .collect()
}

/// A process a test started, killed by its PID on drop if still running
/// (`lab down` only stops the PIDs the lab started itself).
pub struct Owned(Option<std::process::Child>);

impl Owned {
    pub fn new(c: std::process::Child) -> Owned {
        Owned(Some(c))
    }

    /// Signal it (`group`: its process group) and wait for its exit and output.
    pub fn stop(mut self, sig: i32, group: bool) -> Output {
        let c = self.0.take().expect("running");
        let pid = c.id() as i32;
        // SAFETY: kill(2) on a child (or its group) we have not reaped yet.
        unsafe { libc::kill(if group { -pid } else { pid }, sig) };
        c.wait_with_output().unwrap()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `ikeda lab capture NAME NODE FILE` in the foreground, returned once it
/// says "capturing"; stopped with SIGINT to its process group, as a
/// terminal's Ctrl-C. Its stderr stays open (on a closed pipe its last
/// messages would fail).
pub struct LabCapture(Owned, std::io::BufReader<std::process::ChildStderr>);

impl LabCapture {
    pub fn start(lab: &Lab, node: &str, pcap: &std::path::Path) -> LabCapture {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(IKEDA)
            .args(["lab", "capture", "--name", &lab.name, node])
            .arg(pcap)
            .process_group(0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = std::io::BufReader::new(c.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        assert!(line.starts_with(&format!("capturing {node} wan0 into")), "{line}");
        LabCapture(Owned::new(c), err)
    }

    /// Ctrl-C: `lab capture` stops its dumpcap, writes the file out and
    /// prints the packet count, which this returns (its stdout).
    pub fn stop(self) -> String {
        let LabCapture(owned, mut err) = self;
        let o = owned.stop(libc::SIGINT, true);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "lab capture: {stdout}{rest}");
        stdout
    }
}
