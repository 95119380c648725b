//! libreswan's pluto on gw2: the lab's second real peer (`lab up --ike 1|2
//! --peer libreswan`), for interop beyond strongSwan.
//!
//! How it runs:
//! - pluto runs from a root directory (`--peer-root`, default `/`). Debian's
//!   libreswan and strongSwan packages conflict (both ship `ipsec`), so the
//!   suite runs libreswan 5.2 from a Debian 13 root that
//!   `scripts/peer-root.sh` builds;
//! - in gw2's namespace a shell, in the mount namespace `ip netns exec` made
//!   for it (a slave of the host's: nothing mounted there reaches the host,
//!   and it all goes when pluto exits), mounts /proc, /dev, a private /run
//!   and NSS database, binds the lab's state directory at /run/ikeda-lab,
//!   creates the NSS database and execs pluto chrooted with the lab's
//!   ipsec.conf. The PID recorded is pluto's;
//! - pluto loads the connection itself: `auto=start` where gw2 initiates,
//!   `auto=add` where it responds. It logs to `<state>/pluto-gw2.log`.
//!
//! libreswan installs ESP in the kernel (XFRM). On a kernel without ESP it
//! negotiates IKE and the CHILD SA, fails to install it ("Requested type not
//! found") and tells ikeda (a Delete, TEMPORARY_FAILURE in IKE_AUTH, or
//! nothing for a Quick Mode). `lab up` says so in those words rather than
//! waiting for a tunnel that cannot carry traffic.

use super::{gw_local, sh, spawn_in_ns, wait_until, write_secret, LabState, UpArgs, LAN_NET, NODES};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// pluto, relative to the root it runs from.
pub const PLUTO: &str = "usr/libexec/ipsec/pluto";
/// The lab's log of pluto on gw2 (archived with the gateway logs).
pub const PLUTO_LOG: &str = "pluto-gw2.log";
/// Where the lab's state directory appears inside pluto's root.
const LAB_MOUNT: &str = "/run/ikeda-lab";

/// The root pluto runs from, absolute (`lab status` may run elsewhere).
pub fn root(a: &UpArgs) -> PathBuf {
    let r = a.peer_root.clone().unwrap_or_else(|| PathBuf::from("/"));
    std::path::absolute(&r).unwrap_or(r)
}

/// The root holds a libreswan to run, or the error says how to get one.
pub fn check_root(root: &Path) -> Result<(), String> {
    if root.join(PLUTO).is_file() {
        return Ok(());
    }
    Err(format!(
        "--peer libreswan: no libreswan in {} ({} is missing). Install Debian's libreswan (it conflicts with \
         strongSwan's packages), or build a root that holds it, `scripts/peer-root.sh DIR` (Debian 13, \
         libreswan 5.2), and give `--peer-root DIR`",
        root.display(),
        root.join(PLUTO).display()
    ))
}

/// One algorithm of a strongSwan-syntax proposal in libreswan's words.
#[derive(Debug, PartialEq)]
enum Alg {
    Enc(String),
    /// AEAD: no integrity algorithm.
    Aead(String),
    Integ(String),
    Prf(String),
    Dh(String),
    Esn(bool),
}

fn alg(t: &str) -> Result<Alg, String> {
    let hash = |h: &str| match h {
        "md5" => Some("md5"),
        "sha1" => Some("sha1"),
        "sha256" => Some("sha2_256"),
        "sha384" => Some("sha2_384"),
        "sha512" => Some("sha2_512"),
        _ => None,
    };
    Ok(match t {
        "aes128" | "aes192" | "aes256" | "3des" => Alg::Enc(t.into()),
        "chacha20poly1305" => Alg::Aead("chacha20_poly1305".into()),
        "esn" => Alg::Esn(true),
        "noesn" => Alg::Esn(false),
        "x25519" | "curve25519" => Alg::Dh("dh31".into()),
        "x448" | "curve448" => Alg::Dh("dh32".into()),
        "ecp256" => Alg::Dh("dh19".into()),
        "ecp384" => Alg::Dh("dh20".into()),
        "ecp521" => Alg::Dh("dh21".into()),
        _ if t.starts_with("modp") && t[4..].parse::<u32>().is_ok() => Alg::Dh(t.into()),
        _ if t.starts_with("prf") && hash(&t[3..]).is_some() => Alg::Prf(hash(&t[3..]).unwrap_or_default().into()),
        _ if hash(t).is_some() => Alg::Integ(hash(t).unwrap_or_default().into()),
        // aes128gcm16: AES-GCM with a 16-byte ICV (libreswan: aes_gcm,
        // aes_gcm_b for 12 bytes, aes_gcm_a for 8).
        _ => {
            let gcm = ["aes128", "aes192", "aes256"].iter().find_map(|k| {
                let icv = t.strip_prefix(k)?.strip_prefix("gcm")?;
                let v = match icv {
                    "16" | "128" => "aes_gcm",
                    "12" | "96" => "aes_gcm_b",
                    "8" | "64" => "aes_gcm_a",
                    _ => return None,
                };
                Some(format!("{v}{}", &k[3..]))
            });
            Alg::Aead(gcm.ok_or_else(|| format!("'{t}' has no libreswan name the lab knows"))?)
        }
    })
}

/// A proposal split into libreswan's parts.
struct Parts {
    enc: String,
    /// The integrity algorithm, else the PRF (AEAD).
    hash: Option<String>,
    dh: Vec<String>,
    /// ESN asked for (`esn`), refused (`noesn`), or not said.
    esn: Option<bool>,
}

fn parts(p: &str) -> Result<Parts, String> {
    let (mut enc, mut integ, mut prf, mut dh, mut esn) = (None, None, None, Vec::new(), None);
    for t in p.split('-') {
        match alg(t).map_err(|e| format!("proposal '{p}': {e}"))? {
            Alg::Enc(e) | Alg::Aead(e) if enc.is_none() => enc = Some(e),
            Alg::Integ(i) if integ.is_none() => integ = Some(i),
            Alg::Prf(f) if prf.is_none() => prf = Some(f),
            Alg::Dh(g) => dh.push(g),
            Alg::Esn(e) => esn = Some(esn.unwrap_or(false) || e),
            _ => {
                return Err(format!(
                    "proposal '{p}': one algorithm of each kind, please (the lab writes one libreswan proposal)"
                ))
            }
        }
    }
    let enc = enc.ok_or_else(|| format!("proposal '{p}': no encryption algorithm"))?;
    if let (Some(i), Some(f)) = (&integ, &prf) {
        if i != f {
            return Err(format!(
                "proposal '{p}': libreswan's IKE proposal has one hash for integrity and PRF"
            ));
        }
    }
    Ok(Parts {
        enc,
        hash: integ.or(prf),
        dh,
        esn,
    })
}

/// `ike=` for libreswan from the lab's IKE proposal (strongSwan syntax):
/// ENC-HASH-GROUP, where HASH is the integrity and PRF algorithm (the PRF
/// alone with AEAD).
pub fn ike_proposal(p: &str) -> Result<String, String> {
    let Parts { enc, hash, dh, .. } = parts(p)?;
    let hash = hash.ok_or_else(|| format!("IKE proposal '{p}': no integrity or PRF algorithm"))?;
    let [g] = dh.as_slice() else {
        return Err(format!("IKE proposal '{p}': one DH group, please"));
    };
    Ok(format!("{enc}-{hash}-{g}"))
}

/// `esp=`, `pfs=` and `esn=` for libreswan from an ESP proposal
/// (strongSwan syntax): ENC[-INTEG][;GROUP]; without a group no PFS
/// (libreswan would otherwise use the IKE SA's group for it).
pub fn esp_proposal(p: &str) -> Result<(String, bool, bool), String> {
    let Parts { enc, hash, dh, esn } = parts(p)?;
    let mut s = match hash {
        Some(i) => format!("{enc}-{i}"),
        None => enc,
    };
    if dh.len() > 1 {
        return Err(format!("ESP proposal '{p}': one PFS group, please"));
    }
    if let Some(g) = dh.first() {
        s = format!("{s};{g}");
    }
    Ok((s, !dh.is_empty(), esn.unwrap_or(false)))
}

/// The lab's ipsec.conf and ipsec.secrets for pluto on gw2.
fn write_conf(dir: &Path, a: &UpArgs, psk: &str, debug: bool) -> Result<(), String> {
    let d = dir.join("libreswan-gw2");
    fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let v1 = a.ike == Some(1);
    let ike = ike_proposal(&a.ike_proposal())?;
    let esp = if a.esn {
        format!("{}-esn", a.gw_esp(1))
    } else {
        a.gw_esp(1).to_string()
    };
    let (esp, pfs, esn) = esp_proposal(&esp)?;
    let yes = |b: bool| if b { "yes" } else { "no" };
    // gw2 is i = 1; the identities are the gateways' own addresses.
    let (l, r) = (gw_local(a, 1), gw_local(a, 0));
    let conf = format!(
        "# written by `ikeda lab up --peer libreswan`\n\
         config setup\n\
         \x20   logfile={LAB_MOUNT}/{PLUTO_LOG}\n\
         \x20   logtime=yes\n\
         \x20   logappend=yes\n\
         \x20   plutodebug={debug}\n\
         \x20   secretsfile={LAB_MOUNT}/libreswan-gw2/ipsec.secrets\n\
         {v1policy}\
         conn s2s\n\
         \x20   keyexchange={kx}\n\
         \x20   left={l}\n\
         \x20   leftid={l}\n\
         \x20   leftsubnet={ln}\n\
         \x20   right={r}\n\
         \x20   rightid={r}\n\
         \x20   rightsubnet={rn}\n\
         \x20   authby=secret\n\
         \x20   ike={ike}\n\
         \x20   esp={esp}\n\
         \x20   pfs={pfs}\n\
         {esn}\
         \x20   auto={auto}\n",
        debug = if debug { "base" } else { "none" },
        // libreswan 5 drops IKEv1 unless told.
        v1policy = if v1 { "    ikev1-policy=accept\n" } else { "" },
        kx = if v1 { "ikev1" } else { "ikev2" },
        ln = LAN_NET[1],
        rn = LAN_NET[0],
        pfs = yes(pfs),
        esn = if v1 {
            String::new()
        } else {
            format!("    esn={}\n", yes(esn))
        },
        auto = if a.initiates(1) { "start" } else { "add" },
    );
    fs::write(d.join("ipsec.conf"), conf).map_err(|e| format!("{}: {e}", d.display()))?;
    write_secret(&d.join("ipsec.secrets"), &format!("{l} {r} : PSK \"{psk}\"\n"))?;
    Ok(())
}

/// The shell that prepares pluto's root in gw2's mount namespace and
/// becomes pluto ($1 the root, $2 the lab's state directory).
const LAUNCH: &str = r#"set -e
R=$1; L=$2
mount -t proc proc "$R/proc"
mount --bind /dev "$R/dev"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mkdir -p "$R/run/pluto" "$R/run/ikeda-lab" "$R/var/lib/ipsec"
mount -t tmpfs -o mode=0700 tmpfs "$R/var/lib/ipsec"
mkdir -p "$R/var/lib/ipsec/nss"
mount --bind "$L" "$R/run/ikeda-lab"
chroot "$R" ipsec initnss >/dev/null
exec chroot "$R" /usr/libexec/ipsec/pluto --nofork --config /run/ikeda-lab/libreswan-gw2/ipsec.conf
"#;

/// Start pluto on gw2 with the lab's config; returns when it listens with
/// the connection loaded (a responder must be ready before ikeda's first
/// message).
pub fn spawn(name: &str, dir: &Path, a: &UpArgs, psk: &str, st: &mut LabState) -> Result<(), String> {
    let root = root(a);
    check_root(&root)?;
    let debug = std::env::var("IKEDA_LAB_LOG").is_ok_and(|l| l.contains("debug") || l.contains("trace"));
    write_conf(dir, a, psk, debug)?;
    let (root_s, dir_s) = (root.to_string_lossy(), dir.to_string_lossy());
    let pid = spawn_in_ns(
        &super::ns_name(name, NODES[1]),
        Path::new("/bin/sh"),
        &["-c", LAUNCH, "sh", &root_s, &dir_s],
        &dir.join("pluto-gw2.stdout.log"),
        &[],
    )?;
    st.pids.push(("pluto gw2".into(), pid));
    st.peer_root = Some(root.clone());
    let log = dir.join(PLUTO_LOG);
    let ready = wait_until(Duration::from_secs(15), || {
        !super::alive(pid)
            || fs::read_to_string(&log)
                .is_ok_and(|t| t.contains("\"s2s\": added IKEv") && t.contains("adding interface wan0"))
    });
    if !ready || !super::alive(pid) {
        return Err(format!(
            "pluto on gw2 did not start:\n{}\n{}",
            super::tail(&dir.join("pluto-gw2.stdout.log"), 10),
            log_tail(&log, 20)
        ));
    }
    Ok(())
}

/// pluto's log without its debug lines (`TIME: | ...`, plutodebug).
fn said_lines(log: &str) -> impl Iterator<Item = &str> {
    log.lines().filter(|l| !l.contains(": | "))
}

/// The last `n` lines of pluto's log without its debug lines.
pub fn log_tail(log: &Path, n: usize) -> String {
    let t = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = said_lines(&t).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What became of the CHILD SA on pluto's side.
#[derive(Debug, PartialEq)]
pub enum ChildOutcome {
    /// Negotiated and installed.
    Installed,
    /// Negotiated, and the kernel refused it: the line that says so.
    KernelRefused(String),
}

/// How pluto's log says a CHILD SA (IKEv2) or IPsec SA (IKEv1) ended, if
/// it says yet.
pub fn child_outcome(log: &str) -> Option<ChildOutcome> {
    let mut lines = said_lines(log);
    while let Some(l) = lines.next() {
        if l.contains("established Child SA") || l.contains("IPsec SA established") {
            return Some(ChildOutcome::Installed);
        }
        if l.contains("netlink response for Add SA") {
            // The kernel's own reason follows (extended ack), when it gave one.
            let mut said = l.trim().to_string();
            if let Some(ack) = lines.next().filter(|n| n.contains("netlink ext_ack")) {
                said = format!("{said}\n  {}", ack.trim());
            }
            return Some(ChildOutcome::KernelRefused(said));
        }
    }
    None
}

/// `lab up` waits for pluto's CHILD SA: installed, or refused by a kernel
/// without ESP, which is said in plain words.
pub fn wait_installed(dir: &Path) -> Result<(), String> {
    let log = dir.join(PLUTO_LOG);
    let mut outcome = None;
    wait_until(Duration::from_secs(20), || {
        outcome = fs::read_to_string(&log).ok().as_deref().and_then(child_outcome);
        outcome.is_some()
    });
    match outcome {
        Some(ChildOutcome::Installed) => Ok(()),
        Some(ChildOutcome::KernelRefused(line)) => Err(format!(
            "libreswan on gw2 negotiated the CHILD SA with ikeda, then the kernel refused to install it. IKE \
             works; libreswan carries ESP only through the kernel (XFRM), and this kernel lacks ESP (the esp4/esp6 \
             modules) or the algorithm. pluto said:\n  {line}\n(`--no-wait` keeps the lab up to look at the \
             negotiation)"
        )),
        None => Err(format!(
            "libreswan on gw2 has no CHILD SA after 20 s:\n{}",
            log_tail(&log, 30)
        )),
    }
}

/// `ipsec ARGS` against the pluto of a lab (PID `pid`, root `root`), in its
/// mount and network namespaces (its control socket is in its private /run).
fn ipsec(pid: u32, root: &Path) -> Command {
    let mut c = Command::new("nsenter");
    c.args(["-t", &pid.to_string(), "-m", "-n", "chroot"])
        .arg(root)
        .arg("ipsec");
    c
}

/// `lab status`: pluto's view of its SAs.
pub fn status(pid: u32, root: &Path) -> Result<String, String> {
    sh(ipsec(pid, root).arg("showstates"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike_proposals_in_libreswan_words() {
        assert_eq!(
            ike_proposal("aes128gcm16-prfsha256-x25519").unwrap(),
            "aes_gcm128-sha2_256-dh31"
        );
        assert_eq!(
            ike_proposal("aes256gcm16-prfsha384-ecp384").unwrap(),
            "aes_gcm256-sha2_384-dh20"
        );
        assert_eq!(
            ike_proposal("aes128-sha256-modp2048").unwrap(),
            "aes128-sha2_256-modp2048"
        );
        assert_eq!(
            ike_proposal("aes256-sha256-prfsha256-ecp256").unwrap(),
            "aes256-sha2_256-dh19"
        );
        assert_eq!(
            ike_proposal("chacha20poly1305-prfsha256-x25519").unwrap(),
            "chacha20_poly1305-sha2_256-dh31"
        );
        assert_eq!(
            ike_proposal("aes128gcm12-prfsha256-ecp521").unwrap(),
            "aes_gcm_b128-sha2_256-dh21"
        );
        // What one libreswan IKE proposal cannot say is refused, named.
        assert!(ike_proposal("aes128-sha256-prfsha384-modp2048")
            .unwrap_err()
            .contains("one hash"));
        assert!(ike_proposal("aes128-sha256-modp2048-ecp256")
            .unwrap_err()
            .contains("one DH group"));
        assert!(ike_proposal("aes128gcm16-x25519")
            .unwrap_err()
            .contains("no integrity or PRF"));
        assert!(ike_proposal("serpent-sha256-modp2048")
            .unwrap_err()
            .contains("'serpent'"));
        assert!(ike_proposal("aes128gcm7-prfsha256-x25519")
            .unwrap_err()
            .contains("aes128gcm7"));
    }

    #[test]
    fn esp_proposals_with_and_without_pfs() {
        assert_eq!(
            esp_proposal("aes128gcm16").unwrap(),
            ("aes_gcm128".into(), false, false)
        );
        assert_eq!(
            esp_proposal("aes128gcm16-x25519").unwrap(),
            ("aes_gcm128;dh31".into(), true, false)
        );
        assert_eq!(
            esp_proposal("aes128-sha256-modp2048").unwrap(),
            ("aes128-sha2_256;modp2048".into(), true, false)
        );
        assert_eq!(
            esp_proposal("aes256-sha1-esn").unwrap(),
            ("aes256-sha1".into(), false, true)
        );
        assert_eq!(
            esp_proposal("chacha20poly1305").unwrap(),
            ("chacha20_poly1305".into(), false, false)
        );
        assert!(esp_proposal("aes128gcm16-ecp256-x25519")
            .unwrap_err()
            .contains("one PFS group"));
    }

    #[test]
    fn the_child_sa_outcome_is_read_off_plutos_log() {
        assert_eq!(
            child_outcome("Dec  7 21:55:42: \"s2s\" #1: sent IKE_AUTH request\n"),
            None
        );
        // Debug lines never decide.
        assert_eq!(
            child_outcome("Dec  7 21:55:42.1: | netlink response for Add SA (debug)\n"),
            None
        );
        let refused =
            "Dec  7 21:57:25.686850: ERROR: \"s2s\" #2: netlink response for Add SA esp.7b355c56@192.168.50.12: \
                       Protocol not supported (errno 93)\n";
        assert!(matches!(child_outcome(refused), Some(ChildOutcome::KernelRefused(l)) if l.contains("errno 93")));
        let with_ack =
            format!("{refused}Dec  7 21:57:25.686853: \"s2s\" #2: netlink ext_ack: Requested type not found\n");
        assert!(matches!(child_outcome(&with_ack),
            Some(ChildOutcome::KernelRefused(l)) if l.contains("errno 93") && l.ends_with("Requested type not found")));
        let v2 = "Dec  7 22:10:00: \"s2s\" #2: initiator established Child SA using #1; IPsec tunnel [...]\n";
        assert_eq!(child_outcome(v2), Some(ChildOutcome::Installed));
        let v1 = "Dec  7 22:10:00: \"s2s\" #2: IPsec SA established tunnel mode {ESP=>0x1}\n";
        assert_eq!(child_outcome(v1), Some(ChildOutcome::Installed));
    }
}
