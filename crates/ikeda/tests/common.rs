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
}

impl Lab {
    /// `ikeda lab up --name <unique> ARGS`; panics (after cleanup) on failure.
    pub fn up(tag: char, args: &[&str]) -> (Lab, String) {
        let lab = Lab { name: unique_name(tag) };
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

    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(cmd)
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = ikeda(&["lab", "down", "--name", &self.name]);
        if !o.status.success() {
            eprintln!("lab down {}: {}", self.name, text(&o));
        }
    }
}
