//! The control socket end to end: two `ikeda run` daemons in two
//! namespaces joined by a veth pair (gateways 192.168.50.11 and .12, with
//! 192.168.11.1 and 192.168.12.1 on their loopbacks as the "LANs"), driven
//! only through `ikeda status|show|up|down|reload|log`.
//!
//! - `status` names the cause, on both sides, for a wrong PSK, no common
//!   proposal, mismatched traffic selectors and a peer that is not running;
//! - `show ike|child|policy --json` agree between the two peers (SPIs,
//!   roles, algorithms, packet counts) and with the traffic sent;
//! - `up`, `down`, `reload` (changed connections re-established, untouched
//!   ones keep their SPIs, added ones come up), `log` and `log --follow`;
//! - exit codes: 0, 1 (refused), 3 (no daemon), 4 (not all up).

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const A: &str = "192.168.50.11";
const B: &str = "192.168.50.12";

/// Two gateways' namespaces, their daemons (killed by PID on drop) and files.
struct Pair {
    ns: [String; 2],
    dir: PathBuf,
    daemons: [Option<Child>; 2],
}

impl Pair {
    fn new() -> Pair {
        let tag = unique_name('c');
        let ns = [format!("ikl-{tag}-a"), format!("ikl-{tag}-b")];
        let dir = std::env::temp_dir().join(format!("ikeda-control-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = Pair {
            ns,
            dir,
            daemons: [None, None],
        };
        for n in &p.ns {
            run(Command::new("ip").args(["netns", "add", n]));
        }
        run(Command::new("ip").args([
            "link", "add", "wan", "netns", &p.ns[0], "type", "veth", "peer", "name", "wan", "netns", &p.ns[1],
        ]));
        for (i, (wan, lan)) in [(A, "192.168.11.1/32"), (B, "192.168.12.1/32")].into_iter().enumerate() {
            p.ip(i, &["link", "set", "lo", "up"]);
            p.ip(i, &["addr", "add", &format!("{wan}/24"), "dev", "wan"]);
            p.ip(i, &["link", "set", "wan", "up"]);
            p.ip(i, &["addr", "add", lan, "dev", "lo"]);
        }
        p
    }

    fn ip(&self, i: usize, args: &[&str]) {
        run(Command::new("ip").args(["-n", &self.ns[i]]).args(args));
    }

    fn sock(&self, i: usize) -> PathBuf {
        self.dir.join(format!("gw{}.sock", i + 1))
    }

    fn cfg_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("gw{}.toml", i + 1))
    }

    fn write_cfg(&self, i: usize, text: &str) {
        let p = self.cfg_path(i);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Start gateway `i` with its config; wait for its control socket.
    fn start(&mut self, i: usize) {
        let log = std::fs::File::create(self.dir.join(format!("gw{}.log", i + 1))).unwrap();
        let c = Command::new("ip")
            .args(["netns", "exec", &self.ns[i], IKEDA, "--log", "debug", "run", "-c"])
            .arg(self.cfg_path(i))
            .arg("--control")
            .arg(self.sock(i))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemons[i] = Some(c);
        let sock = self.sock(i);
        wait_for("the control socket", 10, || {
            sock.exists() && ctl(&sock, &["status", "--json"]).status.code() != Some(3)
        });
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.daemons[i].take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("gw{}.log", i + 1))).unwrap_or_default()
    }

    fn status(&self, i: usize) -> Value {
        json(&ctl(&self.sock(i), &["status", "--json"]))[0].clone()
    }

    fn ping(&self, count: u32) -> (u32, u32) {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns[0],
                "ping",
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "2",
            ])
            .args(["-I", "192.168.11.1", "192.168.12.1"])
            .output()
            .unwrap();
        ping_counts(&text(&o))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.stop(0);
        self.stop(1);
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(c: &mut Command) {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{c:?}: {}", text(&o));
}

fn ctl(sock: &std::path::Path, args: &[&str]) -> Output {
    Command::new(IKEDA)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// A gateway config with one IKE connection `s2s` (and overrides).
fn config(i: usize, psk: &str, ike: &str, esp: &str, remote_ts: Option<&str>, start: &str, extra: &str) -> String {
    let (l, r) = if i == 0 { (A, B) } else { (B, A) };
    let (ln, rn) = if i == 0 {
        ("192.168.11.0/24", "192.168.12.0/24")
    } else {
        ("192.168.12.0/24", "192.168.11.0/24")
    };
    format!(
        "[daemon]\ntun = \"ikeda0\"\nretransmit_timeout = \"500ms\"\nretransmit_tries = 2\n\n\
         [[conn]]\nname = \"s2s\"\nlocal_addr = \"{l}\"\nremote_addr = \"{r}\"\nike = \"{ike}\"\nesp = \"{esp}\"\n\
         psk = \"{psk}\"\nstart_action = \"{start}\"\nlocal_ts = [\"{ln}\"]\nremote_ts = [\"{}\"]\n{extra}",
        remote_ts.unwrap_or(rn)
    )
}

const IKE: &str = "aes128gcm16-prfsha256-x25519";

fn failure_of(v: &Value) -> String {
    format!(
        "{} | {}",
        v["detail"].as_str().unwrap_or(""),
        v["last_failure"].as_str().unwrap_or("")
    )
}

/// Wait until gateway `i`'s status has a last failure containing `want`.
fn wait_failure(p: &Pair, i: usize, want: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let s = p.status(i);
        if s["last_failure"].as_str().is_some_and(|f| f.contains(want)) {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "gw{}: no failure containing '{want}': {s}\n{}",
            i + 1,
            p.log(i)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn status_names_the_cause_of_each_failure() {
    if !require_root("status_names_the_cause_of_each_failure") {
        return;
    }
    // Wrong PSK on one side: the responder cannot verify AUTH; the
    // initiator is told AUTHENTICATION_FAILED.
    let mut p = Pair::new();
    p.write_cfg(0, &config(0, "right", IKE, "aes128gcm16", None, "start", ""));
    p.write_cfg(1, &config(1, "wrong", IKE, "aes128gcm16", None, "none", ""));
    p.start(1);
    p.start(0);
    let a = wait_failure(&p, 0, "authentication failed");
    let b = wait_failure(&p, 1, "authentication failed");
    for s in [&a, &b] {
        assert_eq!(s["state"], "down", "{s}");
        assert!(failure_of(s).contains("pre-shared keys most likely differ"), "{s}");
        assert_eq!(s["last_failure_fault"], "configuration", "{s}");
    }
    let o = ctl(&p.sock(0), &["status"]);
    assert_eq!(o.status.code(), Some(4), "status exits 4 when a connection is down");
    assert!(text(&o).contains("pre-shared keys most likely differ"), "{}", text(&o));
    drop(p);

    // No common proposal: the responder names both lists.
    let mut p = Pair::new();
    p.write_cfg(0, &config(0, "k", IKE, "aes128gcm16", None, "start", ""));
    p.write_cfg(
        1,
        &config(1, "k", "aes256-sha1-modp2048", "aes128gcm16", None, "none", ""),
    );
    p.start(1);
    p.start(0);
    let a = wait_failure(&p, 0, "NO_PROPOSAL_CHOSEN");
    let b = wait_failure(&p, 1, "no proposal chosen");
    for s in [&a, &b] {
        assert_eq!(s["last_failure_fault"], "configuration", "{s}");
    }
    assert!(failure_of(&a).contains("IKE_SA_INIT"), "{a}");
    let fb = failure_of(&b);
    assert!(
        fb.contains("AES_GCM_16_128") || fb.contains("aes128gcm16"),
        "offered list named: {b}"
    );
    assert!(
        fb.contains("aes256") || fb.contains("AES_CBC_256"),
        "accepted list named: {b}"
    );
    drop(p);

    // Traffic selectors that do not match.
    let mut p = Pair::new();
    p.write_cfg(0, &config(0, "k", IKE, "aes128gcm16", None, "start", ""));
    p.write_cfg(1, &config(1, "k", IKE, "aes128gcm16", Some("10.99.0.0/24"), "none", ""));
    p.start(1);
    p.start(0);
    let a = wait_failure(&p, 0, "traffic selectors unacceptable");
    let b = wait_failure(&p, 1, "traffic selectors unacceptable");
    assert!(failure_of(&b).contains("10.99.0.0/24"), "{b}");
    for s in [&a, &b] {
        assert_ne!(s["state"], "up", "an IKE SA without a CHILD SA is not up: {s}");
    }
    drop(p);

    // Peer not running: connecting (which exchange, which try), then down.
    let mut p = Pair::new();
    p.write_cfg(0, &config(0, "k", IKE, "aes128gcm16", None, "start", ""));
    p.start(0);
    let s = p.status(0);
    assert_eq!(s["state"], "connecting", "{s}");
    assert!(
        s["detail"].as_str().unwrap().contains("IKE_SA_INIT, try 1 of 2")
            || s["detail"].as_str().unwrap().contains("try 2 of 2"),
        "{s}"
    );
    let a = wait_failure(&p, 0, "peer not answering");
    assert!(failure_of(&a).contains(&format!("{B}:500")), "{a}");
    assert_eq!(a["state"], "down");
    assert_eq!(a["last_failure_fault"], "path", "{a}");
}

fn child_of<'a>(v: &'a Value, conn: &str) -> &'a Value {
    v.as_array()
        .unwrap()
        .iter()
        .find(|c| c["conn"] == conn && c["state"] == "INSTALLED")
        .unwrap_or_else(|| panic!("no installed CHILD SA of {conn}: {v}"))
}

fn wait_up(p: &Pair, i: usize, conn: &str) {
    let t0 = Instant::now();
    loop {
        let v = json(&ctl(&p.sock(i), &["status", "--json"]));
        if v.as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == conn && c["state"] == "up")
        {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "gw{} {conn} not up: {v}\n{}",
            i + 1,
            p.log(i)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn show_up_down_reload_and_log_through_the_socket() {
    if !require_root("show_up_down_reload_and_log_through_the_socket") {
        return;
    }
    let mut p = Pair::new();
    p.write_cfg(0, &config(0, "k", IKE, "aes128gcm16", None, "none", ""));
    p.write_cfg(1, &config(1, "k", IKE, "aes128gcm16", None, "none", ""));
    p.start(1);
    p.start(0);
    let mode = std::fs::metadata(p.sock(0)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode");

    // Nothing initiated: waiting, exit code 4.
    let o = ctl(&p.sock(0), &["status"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("waiting"), "{}", text(&o));
    // Refused requests exit 1, a missing daemon 3.
    assert_eq!(ctl(&p.sock(0), &["up", "nosuch"]).status.code(), Some(1));
    assert_eq!(ctl(&p.dir.join("none.sock"), &["status"]).status.code(), Some(3));

    // Follow the event stream while `up` brings the tunnel up.
    let mut follower = Command::new(IKEDA)
        .arg("--socket")
        .arg(p.sock(0))
        .args(["log", "--follow", "--json", "-n", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let o = ctl(&p.sock(0), &["up", "s2s"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_up(&p, 0, "s2s");
    wait_up(&p, 1, "s2s");
    let mut kinds = Vec::new();
    let t0 = Instant::now();
    while !kinds.contains(&"child-up".to_string()) && t0.elapsed() < Duration::from_secs(5) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let v: Value = serde_json::from_str(&l).unwrap();
            kinds.push(v["kind"].as_str().unwrap().to_string());
            if v["kind"] == "exchange" && kinds.iter().filter(|k| *k == "exchange").count() == 1 {
                assert!(
                    v["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("sending IKE_SA_INIT request 0 [ SA KE No"),
                    "{v}"
                );
            }
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(
        kinds.contains(&"exchange".into()) && kinds.contains(&"ike-up".into()) && kinds.contains(&"child-up".into()),
        "followed events: {kinds:?}"
    );

    assert_eq!(p.ping(5), (5, 5));
    // Both directions carried traffic: up, exit 0.
    let o = ctl(&p.sock(0), &["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // show ike: the same SA seen from both ends.
    let (ia, ib) = (
        json(&ctl(&p.sock(0), &["show", "ike", "--json"])),
        json(&ctl(&p.sock(1), &["show", "ike", "--json"])),
    );
    let (ia, ib) = (&ia[0], &ib[0]);
    assert_eq!((&ia["spi_i"], &ia["spi_r"]), (&ib["spi_i"], &ib["spi_r"]));
    assert_eq!(
        (ia["role"].as_str(), ib["role"].as_str()),
        (Some("initiator"), Some("responder"))
    );
    assert_eq!(ia["state"], "ESTABLISHED");
    assert_eq!(ia["algorithms"], "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519");
    assert_eq!(ia["algorithms"], ib["algorithms"]);
    assert_eq!(ia["local"], format!("{A}:500"));
    assert_eq!(ia["nat_detected"], false);
    // show child: SPIs cross over, counters match the 5 pings each way.
    let (ca, cb) = (
        json(&ctl(&p.sock(0), &["show", "child", "--json"])),
        json(&ctl(&p.sock(1), &["show", "child", "--json"])),
    );
    let (ca, cb) = (child_of(&ca, "s2s"), child_of(&cb, "s2s"));
    assert_eq!(ca["outbound"]["spi"], cb["inbound"]["spi"]);
    assert_eq!(ca["inbound"]["spi"], cb["outbound"]["spi"]);
    assert_eq!(ca["algorithms"], "AES_GCM_16-128");
    assert_eq!(ca["encap"], "esp");
    assert_eq!(ca["local_ts"][0], "192.168.11.0/24");
    assert_eq!(ca["remote_ts"][0], "192.168.12.0/24");
    assert_eq!(ca["outbound"]["packets"], 5);
    assert_eq!(ca["inbound"]["packets"], 5);
    assert_eq!(ca["outbound"]["bytes"], 5 * 84, "inner bytes of 5 default pings");
    assert_eq!(ca["outbound"]["seq"], 5);
    assert_eq!(cb["inbound"]["packets"], ca["outbound"]["packets"]);
    assert_eq!(ca["replay_window"], 1024);
    assert!(ca["rekey_in_s"].as_u64().unwrap() > 3000, "{ca}");
    // show policy: the entry served by that SA, with the hits.
    let pol = json(&ctl(&p.sock(0), &["show", "policy", "--json"]));
    let e = &pol[0];
    assert_eq!(e["conn"], "s2s");
    assert_eq!(e["sa"], ca["outbound"]["spi"]);
    assert_eq!(e["state"], "installed");
    assert!(e["hits"].as_u64().unwrap() >= 5, "{e}");
    let t = text(&ctl(&p.sock(0), &["show", "child"]));
    assert!(
        t.contains("ESP:AES_GCM_16-128") && t.contains(ca["outbound"]["spi"].as_str().unwrap()),
        "{t}"
    );

    // Reload with nothing changed: untouched, same SPIs.
    let r = json(&ctl(&p.sock(0), &["reload", "--json"]));
    assert_eq!(r["untouched"][0], "s2s", "{r}");
    let again = json(&ctl(&p.sock(0), &["show", "child", "--json"]));
    assert_eq!(child_of(&again, "s2s")["inbound"]["spi"], ca["inbound"]["spi"]);

    // Reload adding a connection (manually keyed, to 10.12.0.0/24 behind
    // gw2): s2s keeps its SA, the new one carries traffic at once.
    // (Two IKE connections between the same two addresses would need the
    // responder to pick a connection by traffic selectors; it picks by
    // address, so the added one here is manual.)
    p.ip(1, &["addr", "add", "10.12.0.1/32", "dev", "lo"]);
    let extra = |i: usize| {
        let (l, r, ln, rn) = if i == 0 {
            (A, B, "192.168.11.0/24", "10.12.0.0/24")
        } else {
            (B, A, "10.12.0.0/24", "192.168.11.0/24")
        };
        let (o, n) = if i == 0 {
            ("0x3001", "0x3002")
        } else {
            ("0x3002", "0x3001")
        };
        format!(
            "\n[[conn]]\nname = \"extra\"\nlocal_addr = \"{l}\"\nremote_addr = \"{r}\"\nesp = \"aes256gcm16\"\n\
             local_ts = [\"{ln}\"]\nremote_ts = [\"{rn}\"]\n[conn.manual]\n\
             out = {{ spi = \"{o}\", enc_key = \"0x{k}\" }}\nin = {{ spi = \"{n}\", enc_key = \"0x{k}\" }}\n",
            k = "5a".repeat(36)
        )
    };
    p.write_cfg(1, &config(1, "k", IKE, "aes128gcm16", None, "none", &extra(1)));
    assert_eq!(json(&ctl(&p.sock(1), &["reload", "--json"]))["added"][0], "extra");
    p.write_cfg(0, &config(0, "k", IKE, "aes128gcm16", None, "none", &extra(0)));
    let r = json(&ctl(&p.sock(0), &["reload", "--json"]));
    assert_eq!(
        (&r["added"][0], &r["untouched"][0]),
        (&Value::from("extra"), &Value::from("s2s")),
        "{r}"
    );
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &p.ns[0],
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            "-I",
            "192.168.11.1",
            "10.12.0.1",
        ])
        .output()
        .unwrap();
    assert_eq!(ping_counts(&text(&o)), (2, 2), "the added connection carries traffic");
    let after = json(&ctl(&p.sock(0), &["show", "child", "--json"]));
    assert_eq!(
        child_of(&after, "s2s")["inbound"]["spi"],
        ca["inbound"]["spi"],
        "s2s untouched"
    );
    let ex = after.as_array().unwrap().iter().find(|c| c["conn"] == "extra").unwrap();
    assert_eq!(
        (ex["state"].as_str(), ex["outbound"]["packets"].as_u64()),
        (Some("MANUAL"), Some(2))
    );
    assert_eq!(p.ping(2), (2, 2), "s2s still carries traffic");

    // Reload changing s2s (new ESP proposal on both, gw1 starts it): it is
    // re-established with the new algorithm and new SPIs; extra is untouched.
    p.write_cfg(1, &config(1, "k", IKE, "aes256gcm16", None, "none", &extra(1)));
    let r = json(&ctl(&p.sock(1), &["reload", "--json"]));
    assert_eq!(r["changed"][0], "s2s", "{r}");
    p.write_cfg(0, &config(0, "k", IKE, "aes256gcm16", None, "start", &extra(0)));
    let r = json(&ctl(&p.sock(0), &["reload", "--json"]));
    assert_eq!(r["changed"][0], "s2s", "{r}");
    assert_eq!(r["untouched"][0], "extra", "{r}");
    let t0 = Instant::now();
    loop {
        let v = json(&ctl(&p.sock(0), &["show", "child", "--json"]));
        let ok = v
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["conn"] == "s2s" && c["state"] == "INSTALLED" && c["algorithms"] == "AES_GCM_16-256");
        if ok {
            assert_ne!(child_of(&v, "s2s")["inbound"]["spi"], ca["inbound"]["spi"]);
            let ex = v.as_array().unwrap().iter().find(|c| c["conn"] == "extra").unwrap();
            assert!(ex["outbound"]["packets"].as_u64() >= Some(2), "extra untouched: {ex}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "s2s not re-established: {v}\n{}",
            p.log(0)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(p.ping(3), (3, 3));

    // A config error is refused and changes nothing.
    std::fs::write(p.cfg_path(0), "[[conn]]\nname = 1\n").unwrap();
    let o = ctl(&p.sock(0), &["reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));

    // down: the IKE SA and its CHILD SA go on both sides.
    let o = ctl(&p.sock(0), &["down", "s2s"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for("s2s down on gw2", 10, || {
        json(&ctl(&p.sock(1), &["show", "child", "--json"]))
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["conn"] != "s2s")
    });
    let s = json(&ctl(&p.sock(0), &["status", "--json"]));
    let s2s = s.as_array().unwrap().iter().find(|c| c["name"] == "s2s").unwrap();
    assert_ne!(s2s["state"], "up", "{s2s}");

    // The event log, without --follow, has the story in order.
    let o = ctl(&p.sock(0), &["log", "-n", "1000"]);
    let t = text(&o);
    for want in [
        "sending IKE_SA_INIT request 0",
        "IKE_SA established",
        "CHILD SA installed",
        "reload: added [extra]",
        "IKE_SA",
    ] {
        assert!(t.contains(want), "{want} not in the log:\n{t}");
    }
}
