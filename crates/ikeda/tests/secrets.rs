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
