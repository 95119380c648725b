//! Independent-oracle test: what ikeda puts on the wire must be ESP that
//! somebody else's implementation decrypts.
//!
//! For each case this brings up a lab (`ikeda lab up --no-ping`), captures
//! gw2's WAN link with tshark while h1 pings h2 over IPv4 and IPv6, and then
//! decrypts the capture with keys taken from gw1's config:
//!
//! * with tshark's own ESP dissector (`esp_sa` UAT file, ICV checking on),
//!   for every suite tshark 4.0 knows (AES-GCM; AES-CBC or 3DES-CBC with
//!   HMAC-SHA1/SHA256/SHA384/SHA512/MD5)
//!   and without ESN (tshark 4.0 handles neither ChaCha20-Poly1305 nor ESN);
//! * with `oracle_chacha.py` (Python `cryptography`, nothing from ikeda),
//!   for every case; where tshark also ran both must agree frame by frame.
//!
//! Each must show the inner echo requests 192.168.11.11 -> 192.168.12.12
//! (and 2001:db8:11::11 -> 2001:db8:12::12) on the `out` SA and the replies
//! on the `in` SA, every ESP frame decrypted and its ICV good. Negative
//! controls show the test can fail: a wrong encryption key (and, for HMAC
//! suites, a wrong authentication key; for ESN cases, ESN switched off in
//! the oracle) must make the inner packets disappear / the ICV go bad.
//!
//! Needs root (network namespaces) and tshark. Without root the test fails
//! unless IKEDA_ALLOW_NO_ROOT=1; without tshark it fails. If Python's
//! `cryptography` package is missing it is installed (pip, then apt).

mod common;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

const IKEDA: &str = env!("CARGO_BIN_EXE_ikeda");
const ORACLE_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle_chacha.py");

const GW_WAN: [&str; 2] = ["192.168.50.11", "192.168.50.12"];
const GW_WAN6: [&str; 2] = ["2001:db8:50::11", "2001:db8:50::12"];
const HOST: [&str; 2] = ["192.168.11.11", "192.168.12.12"];
const HOST6: [&str; 2] = ["2001:db8:11::11", "2001:db8:12::12"];
const PINGS: usize = 3;

#[derive(Clone, Copy, Debug)]
struct Case {
    esp: &'static str,
    udp: bool,
    esn: bool,
    outer6: bool,
}

const fn case(esp: &'static str, udp: bool, esn: bool, outer6: bool) -> Case {
    Case { esp, udp, esn, outer6 }
}

impl Case {
    fn label(&self) -> String {
        format!(
            "{} encap={}{}{}",
            self.esp,
            if self.udp { "udp" } else { "esp" },
            if self.esn { " esn" } else { "" },
            if self.outer6 { " outer6" } else { "" }
        )
    }
    fn aead(&self) -> bool {
        self.esp.contains("gcm") || self.esp.contains("chacha")
    }
    /// The esp_sa UAT's encryption and authentication columns, if tshark
    /// 4.0 can decrypt and verify this case.
    fn tshark_suite(&self) -> Option<(&'static str, &'static str)> {
        if self.esn {
            return None; // tshark 4.0 computes the ICV without the ESN high bits
        }
        let gcm = "AES-GCM with 16 octet ICV [RFC4106]";
        let cbc = "AES-CBC [RFC3602]";
        let des3 = "TripleDES-CBC [RFC2451]";
        let (sha1, sha256, md5) = (
            "HMAC-SHA-1-96 [RFC2404]",
            "HMAC-SHA-256-128 [RFC4868]",
            "HMAC-MD5-96 [RFC2403]",
        );
        let (sha384, sha512) = ("HMAC-SHA-384-192 [RFC4868]", "HMAC-SHA-512-256 [RFC4868]");
        match self.esp {
            "aes128gcm16" | "aes256gcm16" => Some((gcm, "NULL")),
            "aes128-sha1" | "aes256-sha1" => Some((cbc, sha1)),
            "aes128-sha256" | "aes256-sha256" => Some((cbc, sha256)),
            "aes128-md5" | "aes256-md5" => Some((cbc, md5)),
            "aes128-sha384" | "aes256-sha384" => Some((cbc, sha384)),
            "aes128-sha512" | "aes256-sha512" => Some((cbc, sha512)),
            "3des-md5" => Some((des3, md5)),
            "3des-sha1" => Some((des3, sha1)),
            "3des-sha256" => Some((des3, sha256)),
            _ => None, // chacha20poly1305: not in tshark 4.0's ESP dissector
        }
    }
    fn wan(&self) -> [&'static str; 2] {
        if self.outer6 {
            GW_WAN6
        } else {
            GW_WAN
        }
    }
}

// ---- preconditions ----------------------------------------------------------

/// true: go on; false: not root and IKEDA_ALLOW_NO_ROOT=1 (skip, said
/// loudly). Panics without root otherwise, or without tshark.
fn preconditions() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var("IKEDA_ALLOW_NO_ROOT").as_deref() == Ok("1") {
            eprintln!("oracle test: not root and IKEDA_ALLOW_NO_ROOT=1: NOT RUN");
            return false;
        }
        panic!("the oracle test needs root (network namespaces, packet capture); run it as root, or set IKEDA_ALLOW_NO_ROOT=1 to skip it explicitly");
    }
    match Command::new("tshark").arg("--version").stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("`tshark --version` failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("tshark is not installed ({e}); run the README's test command, scripts/test.sh, which installs it (or apt-get install tshark)"),
    }
    true
}

fn py_has_cryptography(py: &str) -> bool {
    Command::new(py)
        .args(["-c", "import cryptography.hazmat.primitives.ciphers.aead"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_quiet(prog: &str, args: &[&str]) -> bool {
    eprintln!("oracle test: running {prog} {}", args.join(" "));
    Command::new(prog)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python interpreter with the `cryptography` package, installing the
/// package if no interpreter has it (once per test binary).
fn python() -> String {
    static PY: OnceLock<Result<String, String>> = OnceLock::new();
    PY.get_or_init(|| {
        let cands = ["python3", "/usr/bin/python3"];
        let find = || cands.iter().find(|p| py_has_cryptography(p)).map(|p| p.to_string());
        if let Some(p) = find() {
            return Ok(p);
        }
        for py in cands {
            if Command::new(py).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success()) {
                run_quiet(py, &["-m", "pip", "install", "--quiet", "cryptography"]);
                if py_has_cryptography(py) {
                    return Ok(py.to_string());
                }
            }
        }
        if !run_quiet("apt-get", &["install", "-y", "-q", "python3-cryptography"]) {
            run_quiet("apt-get", &["update", "-q"]);
            run_quiet("apt-get", &["install", "-y", "-q", "python3-cryptography"]);
        }
        find().ok_or_else(|| {
            "no python3 with the `cryptography` package, and installing it (pip install cryptography / apt-get install python3-cryptography) failed".to_string()
        })
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"))
}

// ---- at most a few labs at once -----------------------------------------------

struct Permit;

static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());
const MAX_LABS: usize = 3;

impl Permit {
    fn take() -> Permit {
        let (m, cv) = &SLOTS;
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_LABS {
            n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Permit
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (m, cv) = &SLOTS;
        *m.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        cv.notify_one();
    }
}

// ---- the lab --------------------------------------------------------------------

/// Takes the lab down when dropped, also when the test panics.
struct Lab {
    name: String,
    dir: PathBuf,
}

impl Lab {
    fn up(idx: usize, c: &Case) -> Lab {
        let name = format!("o{:04x}{idx:02}", std::process::id() & 0xffff);
        let mut args = vec![
            "lab",
            "up",
            "--name",
            &name,
            "--esp",
            c.esp,
            "--encap",
            if c.udp { "udp" } else { "esp" },
            "--no-ping",
        ];
        if c.esn {
            args.push("--esn");
        }
        if c.outer6 {
            args.push("--outer6");
        }
        let out = Command::new(IKEDA)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("running ikeda lab up");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("already up") {
            // Someone else's lab by that name: do not take it down.
            panic!("ikeda {}: {stderr}", args.join(" "));
        }
        // `lab up` ends with "...; state in DIR"; else where `lab` keeps it.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = match stdout.lines().find_map(|l| l.split_once("state in ")) {
            Some((_, d)) => PathBuf::from(d.trim()),
            None => match std::env::var_os("IKEDA_LAB_DIR") {
                Some(d) => PathBuf::from(d).join(format!("lab-{name}")),
                None => PathBuf::from(format!("/var/lib/ikeda/lab-{name}")),
            },
        };
        let lab = Lab {
            name: name.clone(),
            dir,
        };
        assert!(
            out.status.success(),
            "ikeda {} failed:\n{}{stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        lab
    }

    fn ns(&self, node: &str) -> String {
        format!("ikl-{}-{node}", self.name)
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["gw1.log", "gw2.log", "gw1.stats.json", "gw2.stats.json"] {
            let t = fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            s += &format!("--- {f}:\n{}\n", lines[lines.len().saturating_sub(15)..].join("\n"));
        }
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        match Command::new(IKEDA)
            .args(["lab", "down", "--name", &self.name])
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "ikeda lab down --name {}: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("ikeda lab down --name {}: {e}", self.name),
        }
    }
}

/// A temporary directory for the capture and the key files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("ikeda-oracle-{name}"));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("creating the temporary directory");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("IKEDA_ORACLE_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        } else {
            eprintln!("kept {}", self.0.display());
        }
    }
}

// ---- capture --------------------------------------------------------------------

/// tshark capturing in a namespace. Drop stops it (by its PID) if the test
/// did not.
struct Capture {
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    /// Packets tshark has printed (-P): each one is in its file.
    printed: Arc<std::sync::atomic::AtomicUsize>,
    /// `printed` once the probes were seen, before the test's traffic.
    before_traffic: usize,
}

fn signal_and_wait(child: &mut Child, sig: i32, timeout: Duration) -> bool {
    if child.try_wait().ok().flatten().is_some() {
        return true;
    }
    // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, sig) };
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Capture {
    /// Start tshark on `ns`'s wan0 and return once it demonstrably captures:
    /// "Capturing on" comes before the capture socket sees packets, so
    /// RFC 3948 NAT-keepalives (one 0xFF byte to UDP 4500, which every
    /// peer ignores) are sent from `probe_ns` to `probe_dst` until tshark
    /// reports a captured packet (-P prints one line per packet).
    fn start(ns: &str, file: &Path, probe_ns: &str, probe_dst: SocketAddr) -> Capture {
        // `ip netns exec` execs tshark, so the child's PID is tshark's.
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tshark", "-i", "wan0", "-n", "-l", "-P", "-F", "pcap", "-w",
            ])
            .arg(file)
            .args(["-f", "esp or udp port 4500"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tshark");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let acc = stderr.clone();
        let (pipe, tx2) = (child.stderr.take().unwrap(), tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if line.contains("Capturing on") {
                    let _ = tx2.send("capturing");
                }
                let mut s = acc.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
            let _ = tx2.send("exited");
        });
        let out = child.stdout.take().unwrap();
        let printed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = printed.clone();
        std::thread::spawn(move || {
            // Keep draining, so tshark never blocks on a full pipe.
            for line in BufReader::new(out).lines() {
                if line.is_err() {
                    break;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send("packet");
            }
        });
        let mut cap = Capture {
            child: Some(child),
            stderr,
            printed,
            before_traffic: 0,
        };
        let fail = |cap: &mut Capture, why: &str| -> ! {
            cap.stop_now();
            panic!(
                "tshark in {ns} {why}:\n{}",
                cap.stderr.lock().unwrap_or_else(|e| e.into_inner())
            );
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok("capturing") => {}
            Ok("packet") => fail(&mut cap, "printed a packet before 'Capturing on'"),
            Ok(_) => fail(&mut cap, "exited"),
            Err(_) => fail(&mut cap, "did not start capturing within 20 s"),
        }
        let stop = Arc::new(AtomicBool::new(false));
        let prober = {
            let (stop, probe_ns) = (stop.clone(), probe_ns.to_string());
            std::thread::spawn(move || -> Result<u32, String> {
                let f = fs::File::open(format!("/var/run/netns/{probe_ns}")).map_err(|e| format!("{probe_ns}: {e}"))?;
                // SAFETY: setns(2) moves only this thread, which exits after.
                if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(format!("setns {probe_ns}: {}", std::io::Error::last_os_error()));
                }
                let any: SocketAddr = if probe_dst.is_ipv6() {
                    "[::]:0".parse().unwrap()
                } else {
                    "0.0.0.0:0".parse().unwrap()
                };
                let sock = UdpSocket::bind(any).map_err(|e| e.to_string())?;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n < 200 {
                    sock.send_to(&[0xff], probe_dst)
                        .map_err(|e| format!("sending a keepalive to {probe_dst}: {e}"))?;
                    n += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(n)
            })
        };
        let seen = loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok("packet") => break Ok(()),
                Ok("capturing") => continue,
                Ok(_) => break Err("exited"),
                Err(_) => break Err("captured none of the keepalive probes within 20 s"),
            }
        };
        stop.store(true, Ordering::Relaxed);
        let probes = prober.join().unwrap_or_else(|_| Err("probe thread panicked".into()));
        if let Err(e) = &probes {
            fail(&mut cap, &format!("could not be probed: {e}"));
        }
        if let Err(why) = seen {
            fail(&mut cap, why);
        }
        // Probes sent before the first was seen may still be counted
        // after this: `stop` waits for at least `expected` more.
        cap.before_traffic = cap.printed.load(Ordering::SeqCst);
        cap
    }

    fn stop_now(&mut self) {
        if let Some(mut c) = self.child.take() {
            if !signal_and_wait(&mut c, libc::SIGINT, Duration::from_secs(10))
                && !signal_and_wait(&mut c, libc::SIGTERM, Duration::from_secs(5))
            {
                signal_and_wait(&mut c, libc::SIGKILL, Duration::from_secs(5));
            }
        }
    }

    /// Stop once tshark has printed `expected` packets of the test's
    /// traffic (or 10 s went by), SIGINT so the file is complete, and
    /// return tshark's stderr with the count. A fixed wait is not enough:
    /// the kernel hands packets to the capture in blocks (TPACKET_V3) that
    /// it retires every 250 ms or when full, and a tshark told to stop does
    /// not wait for the block still open.
    fn stop(mut self, expected: usize) -> String {
        let t0 = Instant::now();
        let traffic = |c: &Capture| c.printed.load(Ordering::SeqCst).saturating_sub(c.before_traffic);
        while traffic(&self) < expected && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let waited = t0.elapsed();
        let printed = traffic(&self);
        self.stop_now();
        // The reader thread ends at EOF, right after tshark exits.
        std::thread::sleep(Duration::from_millis(50));
        let s = self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
        format!("{s}tshark printed {printed} packets after the probes ({expected} expected) within {waited:?}\n")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn ping(lab: &Lab, fam: &str, dst: &str) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("h1"),
            "ping",
            fam,
            "-n",
            "-c",
            &PINGS.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
            dst,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("running ping");
    assert!(
        out.status.success(),
        "ping {fam} {dst} from h1 through the tunnel failed:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        lab.logs()
    );
}

// ---- keys from gw1's config -------------------------------------------------------

#[derive(Clone, Debug)]
struct Sa {
    spi: u32,
    src: &'static str,
    dst: &'static str,
    /// hex without 0x
    enc_key: String,
    auth_key: String,
}

fn strip0x(s: &str) -> String {
    s.trim_start_matches("0x").trim_start_matches("0X").to_ascii_lowercase()
}

/// gw1's `out` SA (gw1 -> gw2) and `in` SA (gw2 -> gw1).
fn read_sas(lab: &Lab, c: &Case) -> [Sa; 2] {
    let path = lab.dir.join("gw1.toml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let conn = &v["conn"][0];
    assert_eq!(conn["esp"].as_str(), Some(c.esp), "{}: esp", path.display());
    assert_eq!(conn["esn"].as_bool(), Some(c.esn), "{}: esn", path.display());
    let wan = c.wan();
    let sa = |dir: &str, src, dst| {
        let t = &conn["manual"][dir];
        let s = |k: &str| t.get(k).and_then(|x| x.as_str()).map(strip0x);
        let spi = u32::from_str_radix(&s("spi").expect("spi"), 16).expect("spi is hex");
        Sa {
            spi,
            src,
            dst,
            enc_key: s("enc_key").expect("enc_key"),
            auth_key: s("auth_key").unwrap_or_default(),
        }
    };
    let sas = [sa("out", wan[0], wan[1]), sa("in", wan[1], wan[0])];
    let want_auth = !c.aead();
    for s in &sas {
        assert_eq!(
            !s.auth_key.is_empty(),
            want_auth,
            "{}: auth_key presence for {}",
            path.display(),
            c.esp
        );
    }
    sas
}

/// Flip one bit of the first byte of a hex key.
/// The key with one bit of its first byte flipped: the high bit, since DES
/// ignores the low one (parity), so flipping that leaves a 3DES key as good.
fn corrupt(hex: &str) -> String {
    let b = u8::from_str_radix(&hex[..2], 16).unwrap() ^ 0x80;
    format!("{b:02x}{}", &hex[2..])
}

// ---- what a decryptor saw ---------------------------------------------------------

/// One ESP frame of the capture as an oracle decoded it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    frame: u32,
    spi: u32,
    seq: u32,
    outer: (String, String),
    udp: bool,
    /// Decrypted and authenticated (ICV good).
    ok: bool,
    /// Inner src, dst and ICMP / ICMPv6 type, if decrypted.
    inner: Option<(String, String, Option<u8>)>,
    note: String,
}

/// Everything that must hold for a correctly decrypted capture.
fn check_flows(who: &str, c: &Case, sas: &[Sa; 2], seen: &[Seen]) -> Result<(), String> {
    let mut errs = Vec::new();
    if seen.is_empty() {
        return Err(format!("{who}: no ESP frames in the capture"));
    }
    for s in seen {
        if !s.ok {
            errs.push(format!(
                "{who}: frame {} (spi {:#x} seq {}) not decrypted/authenticated: {}",
                s.frame, s.spi, s.seq, s.note
            ));
        }
        if s.udp != c.udp {
            errs.push(format!(
                "{who}: frame {} is {} but the lab uses encap {}",
                s.frame,
                if s.udp { "UDP-encapsulated" } else { "raw ESP" },
                if c.udp { "udp" } else { "esp" }
            ));
        }
        match sas.iter().find(|sa| sa.spi == s.spi) {
            Some(sa) if (sa.src, sa.dst) != (s.outer.0.as_str(), s.outer.1.as_str()) => errs.push(format!(
                "{who}: frame {} spi {:#x} goes {} -> {}, expected {} -> {}",
                s.frame, s.spi, s.outer.0, s.outer.1, sa.src, sa.dst
            )),
            None => errs.push(format!("{who}: frame {} has unknown spi {:#x}", s.frame, s.spi)),
            _ => {}
        }
    }
    // Sequence numbers strictly increase per SA, starting at 1 (fresh SA, no
    // traffic before the capture since the lab came up with --no-ping).
    for sa in sas {
        let seqs: Vec<u32> = seen.iter().filter(|s| s.spi == sa.spi).map(|s| s.seq).collect();
        if seqs.first() != Some(&1) || seqs.windows(2).any(|w| w[1] != w[0] + 1) {
            errs.push(format!(
                "{who}: spi {:#x} sequence numbers {seqs:?}, expected 1, 2, 3, ...",
                sa.spi
            ));
        }
    }
    for (fam, h, req, rep) in [("IPv4", HOST, 8u8, 0u8), ("IPv6", HOST6, 128, 129)] {
        for (dir, sa, src, dst, ty) in [
            ("echo request", &sas[0], h[0], h[1], req),
            ("echo reply", &sas[1], h[1], h[0], rep),
        ] {
            let m: Vec<&Seen> = seen
                .iter()
                .filter(|s| {
                    s.ok && s
                        .inner
                        .as_ref()
                        .is_some_and(|(a, b, t)| a == src && b == dst && *t == Some(ty))
                })
                .collect();
            if m.len() != PINGS {
                errs.push(format!(
                    "{who}: {} inner {fam} {dir}s {src} -> {dst}, expected {PINGS}",
                    m.len()
                ));
            }
            for s in m {
                if s.spi != sa.spi {
                    errs.push(format!(
                        "{who}: {fam} {dir} in frame {} on spi {:#x}, expected {:#x}",
                        s.frame, s.spi, sa.spi
                    ));
                }
            }
        }
    }
    let stray: Vec<&Seen> = seen
        .iter()
        .filter(|s| {
            s.ok && !s.inner.as_ref().is_some_and(|(a, b, _)| {
                [HOST, HOST6]
                    .iter()
                    .any(|h| (a == h[0] && b == h[1]) || (a == h[1] && b == h[0]))
            })
        })
        .collect();
    if !stray.is_empty() {
        errs.push(format!("{who}: decrypted frames that are not h1 <-> h2: {stray:?}"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

/// Inner ICMP between the hosts that a (negative-control) decryption shows.
fn inner_host_icmp(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| {
            s.inner.as_ref().is_some_and(|(a, b, t)| {
                t.is_some()
                    && [HOST, HOST6]
                        .iter()
                        .any(|h| (a == h[0] && b == h[1]) || (a == h[1] && b == h[0]))
            })
        })
        .collect()
}

// ---- tshark as oracle ----------------------------------------------------------------

fn write_esp_sa(dir: &Path, c: &Case, sas: &[Sa; 2]) {
    let (enc, auth) = c.tshark_suite().unwrap();
    let proto = if c.outer6 { "IPv6" } else { "IPv4" };
    let mut text = String::new();
    for sa in sas {
        let ak = if sa.auth_key.is_empty() {
            String::new()
        } else {
            format!("0x{}", sa.auth_key)
        };
        text += &format!(
            "\"{proto}\",\"{}\",\"{}\",\"{:#010x}\",\"{enc}\",\"0x{}\",\"{auth}\",\"{ak}\"\n",
            sa.src, sa.dst, sa.spi, sa.enc_key
        );
    }
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("esp_sa"), text).unwrap();
}

const TSHARK_FIELDS: [&str; 12] = [
    "frame.number",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "esp.spi",
    "esp.sequence",
    "icmp.type",
    "icmpv6.type",
    "esp.icv_good",
    "esp.icv_bad",
];

/// Decrypt the capture with tshark, keys in `confdir/esp_sa`.
fn tshark_decode(pcap: &Path, confdir: &Path) -> Vec<Seen> {
    let rows = common::tshark_fields(
        pcap,
        confdir,
        &[
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-o",
            "esp.enable_authentication_check:TRUE",
        ],
        &TSHARK_FIELDS,
    );
    let truthy = |s: &str| matches!(s, "1" | "True" | "TRUE" | "true");
    let mut seen = Vec::new();
    for row in &rows {
        let f: Vec<&str> = row.iter().map(String::as_str).collect();
        let list = |i: usize| -> Vec<String> { f[i].split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect() };
        let protos: Vec<&str> = f[1].split(':').collect();
        let Some(esp_at) = protos.iter().position(|p| *p == "esp") else {
            continue;
        };
        let (ip4s, ip4d, ip6s, ip6d) = (list(2), list(3), list(4), list(5));
        let outer_fam = protos
            .iter()
            .find(|p| **p == "ip" || **p == "ipv6")
            .copied()
            .unwrap_or("");
        let outer = if outer_fam == "ip" {
            (ip4s[0].clone(), ip4d[0].clone())
        } else {
            (ip6s[0].clone(), ip6d[0].clone())
        };
        let inner_fam = protos.get(esp_at + 1).copied();
        let icmp = |i: usize| list(i).last().and_then(|t| t.parse::<u8>().ok());
        let inner = match inner_fam {
            Some("ip") if ip4s.len() == if outer_fam == "ip" { 2 } else { 1 } => {
                Some((ip4s.last().unwrap().clone(), ip4d.last().unwrap().clone(), icmp(8)))
            }
            Some("ipv6") if ip6s.len() == if outer_fam == "ipv6" { 2 } else { 1 } => {
                Some((ip6s.last().unwrap().clone(), ip6d.last().unwrap().clone(), icmp(9)))
            }
            _ => None,
        };
        // The outer ESP header's fields come first; garbage from a wrong
        // key can dissect as a further (nested) ESP header.
        let first = |i: usize| f[i].split(',').next().unwrap_or("");
        let (good, bad) = (truthy(first(10)), truthy(first(11)));
        let spi = u32::from_str_radix(&strip0x(first(6)), 16).unwrap_or_else(|_| panic!("esp.spi {:?}", f[6]));
        seen.push(Seen {
            frame: f[0].parse().unwrap(),
            spi,
            seq: first(7).parse().unwrap_or_else(|_| panic!("esp.sequence {:?}", f[7])),
            outer,
            udp: protos.contains(&"udpencap"),
            ok: good && !bad && inner.is_some(),
            inner,
            note: format!("icv_good={:?} icv_bad={:?} protocols={}", first(10), first(11), f[1]),
        });
    }
    seen
}

// ---- the Python oracle -------------------------------------------------------------------

fn python_decode(pcap: &Path, sa_file: &Path, c: &Case, sas: &[Sa; 2], esn: bool) -> Vec<Seen> {
    let list: Vec<Value> = sas
        .iter()
        .map(|sa| json!({"spi": sa.spi, "src": sa.src, "dst": sa.dst, "alg": c.esp, "enc_key": sa.enc_key, "auth_key": sa.auth_key, "esn": esn}))
        .collect();
    fs::write(sa_file, serde_json::to_string_pretty(&list).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(ORACLE_PY)
        .arg(pcap)
        .arg(sa_file)
        .stdin(Stdio::null())
        .output()
        .expect("running the Python oracle");
    assert!(
        out.status.success(),
        "{ORACLE_PY} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("oracle output {l:?}: {e}"));
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            let ok = v["ok"].as_bool() == Some(true);
            Seen {
                frame: v["frame"].as_u64().unwrap() as u32,
                spi: v["spi"].as_u64().unwrap_or(0) as u32,
                seq: v["seq"].as_u64().unwrap_or(0) as u32,
                outer: (s("outer_src"), s("outer_dst")),
                udp: s("encap") == "udp",
                ok,
                inner: ok.then(|| (s("inner_src"), s("inner_dst"), v["icmp_type"].as_u64().map(|t| t as u8))),
                note: if ok {
                    format!("next_header={} pad_len={}", v["next_header"], v["pad_len"])
                } else {
                    s("error")
                },
            }
        })
        .collect()
}

// ---- one case ------------------------------------------------------------------------------

fn run_case(idx: usize, c: Case) {
    if !preconditions() {
        return;
    }
    let py = python();
    let _permit = Permit::take();
    let t0 = Instant::now();
    let lab = Lab::up(idx, &c);
    let tmp = TempDir::new(&lab.name);
    let pcap = tmp.0.join("wan.pcap");

    let probe_dst = SocketAddr::new(c.wan()[1].parse().unwrap(), 4500);
    let cap = Capture::start(&lab.ns("gw2"), &pcap, &lab.ns("gw1"), probe_dst);
    ping(&lab, "-4", HOST[1]);
    ping(&lab, "-6", HOST6[1]);
    // Two families, a request and a reply per ping.
    let cap_log = cap.stop(4 * PINGS);
    assert!(pcap.exists(), "tshark wrote no capture file:\n{cap_log}");
    let sas = read_sas(&lab, &c);
    let mut summary = BTreeMap::new();

    // tshark, where it can.
    let mut tshark_seen = None;
    if c.tshark_suite().is_some() {
        let good = tmp.0.join("tshark-good");
        write_esp_sa(&good, &c, &sas);
        let seen = tshark_decode(&pcap, &good);
        if let Err(e) = check_flows("tshark", &c, &sas, &seen) {
            panic!("{}: {e}\nall frames:\n{seen:#?}\n{cap_log}{}", c.label(), lab.logs());
        }
        // Negative control: wrong encryption key.
        let bad = tmp.0.join("tshark-badenc");
        let wrong: [Sa; 2] = sas.clone().map(|mut s| {
            s.enc_key = corrupt(&s.enc_key);
            s
        });
        write_esp_sa(&bad, &c, &wrong);
        let seen_bad = tshark_decode(&pcap, &bad);
        let leaked = inner_host_icmp(&seen_bad);
        assert!(
            leaked.is_empty(),
            "{}: tshark with a WRONG enc key still shows inner ICMP: {leaked:#?}",
            c.label()
        );
        assert!(check_flows("tshark(wrong enc key)", &c, &wrong, &seen_bad).is_err());
        if c.aead() {
            assert!(
                seen_bad.iter().all(|s| !s.ok),
                "{}: tshark calls the ICV good with a wrong AEAD key",
                c.label()
            );
        } else {
            // Negative control for the ICV check: wrong authentication key.
            let bad = tmp.0.join("tshark-badauth");
            let wrong: [Sa; 2] = sas.clone().map(|mut s| {
                s.auth_key = corrupt(&s.auth_key);
                s
            });
            write_esp_sa(&bad, &c, &wrong);
            let seen_bad = tshark_decode(&pcap, &bad);
            assert!(
                seen_bad
                    .iter()
                    .all(|s| !s.ok && (s.note.contains("icv_bad=\"1\"") || s.note.contains("icv_bad=\"True\""))),
                "{}: tshark with a WRONG auth key: {seen_bad:#?}",
                c.label()
            );
        }
        summary.insert(
            "tshark",
            format!("{} ESP frames decrypted, ICV good; wrong keys rejected", seen.len()),
        );
        tshark_seen = Some(seen);
    } else {
        summary.insert("tshark", "n/a (tshark 4.0 lacks this suite/ESN)".to_string());
    }

    // The Python oracle, always.
    let seen = python_decode(&pcap, &tmp.0.join("sas.json"), &c, &sas, c.esn);
    if let Err(e) = check_flows("python oracle", &c, &sas, &seen) {
        panic!("{}: {e}\nall frames:\n{seen:#?}\n{cap_log}{}", c.label(), lab.logs());
    }
    if let Some(ts) = &tshark_seen {
        let key = |s: &Seen| (s.frame, s.spi, s.seq, s.outer.clone(), s.udp, s.inner.clone());
        let a: Vec<_> = ts.iter().map(key).collect();
        let b: Vec<_> = seen.iter().map(key).collect();
        assert_eq!(a, b, "{}: tshark and the Python oracle disagree", c.label());
    }
    let wrong: [Sa; 2] = sas.clone().map(|mut s| {
        s.enc_key = corrupt(&s.enc_key);
        s
    });
    let seen_bad = python_decode(&pcap, &tmp.0.join("sas-bad.json"), &c, &wrong, c.esn);
    assert!(
        seen_bad.iter().all(|s| !s.ok),
        "{}: Python oracle accepts a WRONG enc key: {seen_bad:#?}",
        c.label()
    );
    if !c.aead() {
        let wrong: [Sa; 2] = sas.clone().map(|mut s| {
            s.auth_key = corrupt(&s.auth_key);
            s
        });
        let seen_bad = python_decode(&pcap, &tmp.0.join("sas-badauth.json"), &c, &wrong, c.esn);
        assert!(
            seen_bad.iter().all(|s| !s.ok && s.note.contains("ICV")),
            "{}: Python oracle accepts a WRONG auth key: {seen_bad:#?}",
            c.label()
        );
    }
    // The ESN flag must matter (the high bits are in the AAD / ICV input).
    let seen_flip = python_decode(&pcap, &tmp.0.join("sas-flipesn.json"), &c, &sas, !c.esn);
    assert!(
        seen_flip.iter().all(|s| !s.ok),
        "{}: Python oracle also accepts the capture with esn={}: {seen_flip:#?}",
        c.label(),
        !c.esn
    );
    summary.insert(
        "python",
        format!(
            "{} ESP frames decrypted ({py}), ICV good; wrong keys and wrong ESN rejected",
            seen.len()
        ),
    );

    drop(tmp);
    drop(lab);
    println!(
        "oracle {} [{:.1} s]: tshark: {}; python: {}",
        c.label(),
        t0.elapsed().as_secs_f64(),
        summary["tshark"],
        summary["python"]
    );
}

macro_rules! cases {
    ($($name:ident: $idx:expr, $esp:expr, udp=$udp:expr, esn=$esn:expr, outer6=$o6:expr;)*) => {$(
        #[test]
        fn $name() {
            run_case($idx, case($esp, $udp, $esn, $o6));
        }
    )*};
}

cases! {
    esp_aes128gcm16: 1, "aes128gcm16", udp=false, esn=false, outer6=false;
    esp_aes256gcm16: 2, "aes256gcm16", udp=false, esn=false, outer6=false;
    esp_chacha20poly1305: 3, "chacha20poly1305", udp=false, esn=false, outer6=false;
    esp_aes128_sha1: 4, "aes128-sha1", udp=false, esn=false, outer6=false;
    esp_aes256_sha1: 5, "aes256-sha1", udp=false, esn=false, outer6=false;
    esp_aes128_sha256: 6, "aes128-sha256", udp=false, esn=false, outer6=false;
    esp_aes256_sha256: 7, "aes256-sha256", udp=false, esn=false, outer6=false;
    udp_aes128gcm16: 8, "aes128gcm16", udp=true, esn=false, outer6=false;
    udp_aes128_sha256: 9, "aes128-sha256", udp=true, esn=false, outer6=false;
    udp_chacha20poly1305: 10, "chacha20poly1305", udp=true, esn=false, outer6=false;
    outer6_aes128gcm16: 11, "aes128gcm16", udp=false, esn=false, outer6=true;
    esn_aes128gcm16: 12, "aes128gcm16", udp=false, esn=true, outer6=false;
    esn_chacha20poly1305: 13, "chacha20poly1305", udp=false, esn=true, outer6=false;
    esn_aes256_sha256: 14, "aes256-sha256", udp=false, esn=true, outer6=false;
    esp_3des_md5: 15, "3des-md5", udp=false, esn=false, outer6=false;
    esp_3des_sha1: 16, "3des-sha1", udp=false, esn=false, outer6=false;
    esp_aes128_md5: 17, "aes128-md5", udp=false, esn=false, outer6=false;
    udp_3des_md5: 18, "3des-md5", udp=true, esn=false, outer6=false;
    esn_3des_sha1: 19, "3des-sha1", udp=false, esn=true, outer6=false;
    esp_aes256_sha384: 20, "aes256-sha384", udp=false, esn=false, outer6=false;
    esp_aes256_sha512: 21, "aes256-sha512", udp=false, esn=false, outer6=false;
    udp_aes256_sha512: 22, "aes256-sha512", udp=true, esn=false, outer6=false;
    esn_aes256_sha384: 23, "aes256-sha384", udp=false, esn=true, outer6=false;
}
