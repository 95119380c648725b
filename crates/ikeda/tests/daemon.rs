//! `ikeda run` in a namespace of its own: it installs its device, routes
//! and rules, removes them on SIGTERM, and a refused or failed start leaves
//! nothing behind.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Ns(String);

impl Ns {
    fn new() -> Ns {
        let n = format!("ikl-{}-d", unique_name('d'));
        let o = Command::new("ip").args(["netns", "add", &n]).output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let ns = Ns(n);
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "add", "wan0", "type", "veth", "peer", "name", "wan1"]);
        ns.ip(&["addr", "add", "192.168.50.11/24", "dev", "wan0"]);
        ns.ip(&["link", "set", "wan0", "up"]);
        ns.ip(&["link", "set", "wan1", "up"]);
        ns
    }
    fn ip(&self, args: &[&str]) -> String {
        let o = Command::new("ip").args(["-n", &self.0]).args(args).output().unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn rules(&self) -> String {
        self.ip(&["rule", "show", "pref", "2200"])
    }
    fn has_tun(&self) -> bool {
        self.ip(&["-o", "link"]).contains("ikeda0")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn config(local: &str) -> String {
    format!(
        "[[conn]]\nname = \"site2\"\nlocal_addr = \"{local}\"\nremote_addr = \"192.168.50.12\"\nesp = \"aes128gcm16\"\n\
         local_ts = [\"192.168.11.0/24\"]\nremote_ts = [\"192.168.12.0/24\"]\n\
         [[conn.policy]]\nlocal = \"192.168.11.0/24\"\nremote = \"192.168.50.12\"\n\
         [conn.manual]\nout = {{ spi = \"0x1001\", enc_key = \"0x{k}\" }}\nin = {{ spi = \"0x2001\", enc_key = \"0x{k}\" }}\n",
        k = "ab".repeat(20)
    )
}

fn write_cfg(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("{name}-{}.toml", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn run_installs_routes_and_removes_them_on_sigterm() {
    if !require_root("run_installs_routes_and_removes_them_on_sigterm") {
        return;
    }
    let ns = Ns::new();
    let cfg = write_cfg("good", &config("192.168.50.11"));
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0, IKEDA, "run", "-c"])
        .arg(&cfg)
        .arg("--control")
        .arg(std::env::temp_dir().join(format!("{}.sock", ns.0)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !ns.rules().contains("192.168.12.0/24") && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rules = ns.rules();
    assert!(rules.contains("from all to 192.168.12.0/24 lookup 220"), "{rules}");
    // net <-> remote gateway: only the LAN's traffic to the peer goes in the tunnel.
    assert!(
        rules.contains("from 192.168.11.0/24 to 192.168.50.12 lookup 220"),
        "{rules}"
    );
    assert!(ns
        .ip(&["route", "show", "table", "220"])
        .contains("192.168.12.0/24 dev ikeda0"));
    assert!(ns.has_tun());
    assert!(ns.ip(&["link", "show", "ikeda0"]).contains("mtu 1400"));
    // ip netns exec execs, so the child's PID is ikeda's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}");
    assert_eq!(ns.rules().trim(), "", "rules left behind");
    assert!(!ns.has_tun(), "TUN device left behind");
    assert_eq!(ns.ip(&["route", "show", "table", "220"]).trim(), "");
}

#[test]
fn a_bad_config_is_refused_with_file_key_and_reason() {
    let cfg = write_cfg("bad", &config("192.168.50.11").replace("aes128gcm16", "aes128gcm8"));
    let o = ikeda(&["check", "-c", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "{}: conn[0] (site2).esp: unknown ESP algorithm 'aes128gcm8'",
            cfg.display()
        )),
        "{t}"
    );
    let o = ikeda(&["check", "-c", "/nonexistent/x.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/nonexistent/x.toml: cannot read"), "{}", text(&o));
}

#[test]
fn a_failed_start_leaves_nothing_behind() {
    if !require_root("a_failed_start_leaves_nothing_behind") {
        return;
    }
    let ns = Ns::new();
    // 192.168.50.99 is not an address of this host: the raw ESP socket
    // cannot bind, after the TUN device and routes were set up.
    let cfg = write_cfg("nobind", &config("192.168.50.99"));
    let o = Command::new("ip")
        .args(["netns", "exec", &ns.0, IKEDA, "run", "-c"])
        .arg(&cfg)
        .arg("--control")
        .arg(std::env::temp_dir().join(format!("{}.sock", ns.0)))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("raw ESP socket on 192.168.50.99"), "{}", text(&o));
    assert_eq!(ns.rules().trim(), "");
    assert!(!ns.has_tun());
    // Refused configs never touch the system.
    let bad = write_cfg("refused", &config("192.168.50.11").replace("0x1001", "0x10"));
    let o = Command::new("ip")
        .args(["netns", "exec", &ns.0, IKEDA, "run", "-c"])
        .arg(&bad)
        .arg("--control")
        .arg(std::env::temp_dir().join(format!("{}.sock", ns.0)))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("manual.out.spi: 0x10 is reserved"), "{}", text(&o));
    assert!(!ns.has_tun());
}
