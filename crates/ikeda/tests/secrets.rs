//! Secrets stay secret (issue 10 point 7): what `check` and `run` print
//! about a config file never holds its keys, and an open file is flagged.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

const SECRET: &str = "Sup3rSecretPsk";

fn conf(psk_line: &str) -> String {
    format!(
        "[[conn]]\nname = \"site2\"\nlocal_addr = \"192.0.2.1\"\nremote_addr = \"192.0.2.2\"\n\
         ike = \"aes128gcm16-prfsha256-x25519\"\nesp = \"aes128gcm16\"\n{psk_line}\n\
         local_ts = [\"10.1.0.0/16\"]\nremote_ts = [\"10.2.0.0/16\"]\n"
    )
}

fn write(dir: &TempDir, text: &str, mode: u32) -> String {
    let p = dir.path().join("gw.toml");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn a_broken_psk_line_is_reported_without_the_psk() {
    let dir = TempDir::new("secrets-broken");
    for line in [
        format!("psk = \"{SECRET}"),
        format!("psk = {SECRET}"),
        format!("psk = [\"{SECRET}\"]"),
    ] {
        let p = write(&dir, &conf(&line), 0o600);
        for args in [vec!["check", "-c", &p], vec!["run", "-c", &p]] {
            let o = ikeda(&args);
            let t = text(&o);
            assert!(!o.status.success(), "{args:?} accepted {line:?}: {t}");
            assert!(t.contains("line 7"), "{args:?}: no line number: {t}");
            assert!(!t.contains("Sup3r"), "{args:?} printed the secret: {t}");
        }
    }
}

#[test]
fn a_config_with_keys_readable_by_others_is_flagged() {
    let dir = TempDir::new("secrets-mode");
    let p = write(&dir, &conf(&format!("psk = \"{SECRET}\"")), 0o644);
    let t = text(&ikeda(&["check", "-c", &p]));
    assert!(
        t.contains("warning") && t.contains("0644") && t.contains("chmod 600"),
        "{t}"
    );
    assert!(!t.contains("Sup3r"), "{t}");
    let p = write(&dir, &conf(&format!("psk = \"{SECRET}\"")), 0o600);
    let t = text(&ikeda(&["check", "-c", &p]));
    assert!(!t.contains("warning"), "{t}");
}

#[test]
fn a_reload_of_a_broken_psk_line_answers_without_the_psk() {
    if !require_root("secrets reload") {
        return;
    }
    let (lab, _) = Lab::up('s', &["--ike", "2"]);
    let cfg = lab.dir().join("gw1.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let psk_line = good
        .lines()
        .find(|l| l.trim_start().starts_with("psk"))
        .expect("a psk line")
        .to_owned();
    let broken = good.replace(&psk_line, &format!("psk = \"{SECRET}"));
    std::fs::write(&cfg, &broken).unwrap();
    let sock = lab.dir().join("gw1.sock");
    let sock = sock.to_str().unwrap();
    let o = ikeda(&["--socket", sock, "reload"]);
    let t = text(&o);
    assert!(!o.status.success(), "the reload took a broken file: {t}");
    assert!(t.contains("line"), "no line number: {t}");
    assert!(!t.contains("Sup3r"), "the reload's answer printed the secret: {t}");
    // The daemon keeps its running config: the tunnel still carries pings.
    let out = text(&lab.exec("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", "192.168.12.12"]));
    assert_eq!(ping_counts(&out), (2, 2), "{out}");
    let log = lab_log(&lab, "gw1.log");
    assert!(!log.contains("Sup3r"), "the daemon logged the secret");
    lab.down();
}
