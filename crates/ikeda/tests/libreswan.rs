//! Interop with libreswan 5.2 (pluto, from the Debian 13 root that
//! `scripts/peer-root.sh` builds and scripts/test.sh names in
//! IKEDA_LIBRESWAN_ROOT): IKEv2 and IKEv1, each gateway initiating, several
//! suites, PFS, a proposal mismatch, and `lab up`'s account of a peer whose
//! kernel cannot install ESP.
//!
//! libreswan installs ESP in the kernel (XFRM). Where the kernel has ESP,
//! each test requires the tunnel to carry a ping; where it has none (this
//! project's machines), it requires the negotiation to complete on the wire
//! and pluto's kernel to be what refused the SA (pluto's log says so), not
//! anything ikeda said.

mod common;
use common::*;
use std::process::Command;

/// The root libreswan runs from; the tests fail (never skip) without it.
fn libreswan_root() -> String {
    let root = std::env::var("IKEDA_LIBRESWAN_ROOT").unwrap_or_else(|_| "/var/lib/ikeda/peers/trixie".into());
    assert!(
        std::path::Path::new(&root).join("usr/libexec/ipsec/pluto").is_file(),
        "no libreswan in {root}: run the README's test command (scripts/test.sh), which builds it \
         (scripts/peer-root.sh {root})"
    );
    root
}

/// Whether this kernel can hold an ESP SA at all (in a scratch namespace).
fn kernel_has_esp() -> bool {
    let ns = format!("ikl-{}-x", unique_name('x'));
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap()
        .success());
    let o = Command::new("ip")
        .args([
            "-n", &ns, "xfrm", "state", "add", "src", "10.0.0.1", "dst", "10.0.0.2", "proto", "esp",
        ])
        .args(["spi", "0x100", "enc", "cbc(aes)", "0x00112233445566778899aabbccddeeff"])
        .args(["auth", "hmac(sha256)", &format!("0x{}", "ab".repeat(32))])
        .output()
        .unwrap();
    assert!(Command::new("ip")
        .args(["netns", "del", &ns])
        .status()
        .unwrap()
        .success());
    o.status.success()
}

fn pluto_log(lab: &Lab) -> String {
    lab_log(lab, "pluto-gw2.log")
}

/// pluto's log without its debug lines.
fn pluto_said(lab: &Lab) -> String {
    pluto_log(lab)
        .lines()
        .filter(|l| !l.contains(": | "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn up(tag: char, ike: &str, initiator: &str, extra: &[&str]) -> Lab {
    let root = libreswan_root();
    let mut a = vec![
        "--ike",
        ike,
        "--peer",
        "libreswan",
        "--peer-root",
        &root,
        "--initiator",
        initiator,
        "--no-wait",
    ];
    a.extend_from_slice(extra);
    Lab::up(tag, &a).0
}

/// ikeda's connection status as JSON (`status` exits 4 while a connection
/// is not up, as here it may well not be).
fn status(lab: &Lab) -> serde_json::Value {
    let o = ikeda(&[
        "--socket",
        lab.dir().join("gw1.sock").to_str().unwrap(),
        "status",
        "--json",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 4)), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// The CHILD SA on pluto's side: installed and carrying a ping (kernel with
/// ESP), or negotiated and refused by the kernel.
fn child_sa_ends_as_the_kernel_allows(lab: &Lab, esp: bool, what: &str) {
    wait_for(&format!("{what}: pluto's CHILD SA installed or refused"), 15, || {
        let l = pluto_said(lab);
        l.contains("netlink response for Add SA")
            || l.contains("established Child SA")
            || l.contains("IPsec SA established")
    });
    let said = pluto_said(lab);
    if esp {
        assert!(!said.contains("netlink response for Add SA"), "{what}:\n{said}");
        ping_ok(lab, what);
    } else {
        // Refused by the kernel, after the negotiation: the line says Add SA.
        assert!(
            said.lines()
                .any(|l| l.contains("netlink response for Add SA") && l.contains("\"s2s\"")),
            "{what}:\n{said}"
        );
    }
}

/// ikeda, responding, established a CHILD SA with libreswan's IPv4
/// selectors alone (ikeda's config has the IPv6 LANs too).
fn assert_child_narrowed_to_ipv4(gw1_log: &str, what: &str) {
    assert!(
        gw1_log
            .lines()
            .any(|l| l.contains("CHILD_SA established") && l.ends_with("TS 192.168.11.0/24 === 192.168.12.0/24")),
        "{what}:\n{gw1_log}"
    );
}

#[test]
fn libreswan_ikev2_each_suite_each_initiator() {
    if !require_root("libreswan_ikev2_each_suite_each_initiator") {
        return;
    }
    let esp_in_kernel = kernel_has_esp();
    for (ike, esp, ikeda_suite) in [
        (
            "aes128gcm16-prfsha256-x25519",
            "aes128gcm16",
            "aes128gcm16-prfsha256-curve25519",
        ),
        (
            "aes256-sha256-ecp256",
            "aes256-sha256",
            "aes256-sha256-prfsha256-ecp256",
        ),
        (
            "chacha20poly1305-prfsha256-modp2048",
            "chacha20poly1305",
            "chacha20poly1305-prfsha256-modp2048",
        ),
    ] {
        for initiator in ["gw1", "gw2"] {
            let what = format!("IKEv2 {ike} / {esp}, {initiator} initiates");
            let lab = up('l', "2", initiator, &["--ike-proposal", ike, "--esp", esp]);
            let role = if initiator == "gw1" {
                "(initiator)"
            } else {
                "(responder)"
            };
            wait_for(&format!("{what}: ikeda's IKE SA"), 10, || {
                gw1_log(&lab)
                    .lines()
                    .any(|l| l.contains("IKE_SA established") && l.contains(role))
            });
            let log = gw1_log(&lab);
            assert!(
                log.lines()
                    .any(|l| l.contains("IKE_SA established") && l.contains(role) && l.contains(ikeda_suite)),
                "{what}:\n{log}"
            );
            let said = pluto_said(&lab);
            assert!(said.contains("established IKE SA"), "{what}:\n{said}");
            child_sa_ends_as_the_kernel_allows(&lab, esp_in_kernel, &what);
            if esp_in_kernel {
                continue;
            }
            if initiator == "gw1" {
                // libreswan could not install the CHILD SA of IKE_AUTH and
                // answered TEMPORARY_FAILURE; ikeda says so, the IKE SA up.
                wait_for(&format!("{what}: ikeda's account"), 5, || {
                    status(&lab)
                        .to_string()
                        .contains("peer answered IKE_AUTH with TEMPORARY_FAILURE")
                });
            } else {
                // ikeda answered libreswan's IKE_AUTH with a CHILD SA,
                // narrowed to libreswan's IPv4 selectors (ikeda's has IPv6
                // too); libreswan then deleted it.
                let log = gw1_log(&lab);
                assert_child_narrowed_to_ipv4(&log, &what);
                wait_for(&format!("{what}: libreswan's Delete"), 5, || {
                    gw1_log(&lab).contains("received INFORMATIONAL request 2 [ D ]")
                });
            }
        }
    }
}

/// ESP with a PFS group: IKE_AUTH's CHILD SA has no KE (RFC 7296 §1.2);
/// libreswan's next CHILD SA (its retry after the kernel's refusal, or a
/// rekey) is a CREATE_CHILD_SA with KE, which ikeda answers with KE.
#[test]
fn libreswan_ikev2_pfs_create_child_sa_carries_ke_both_ways() {
    if !require_root("libreswan_ikev2_pfs_create_child_sa_carries_ke_both_ways") {
        return;
    }
    let esp_in_kernel = kernel_has_esp();
    let lab = up('l', "2", "gw2", &["--esp", "aes128gcm16-modp2048"]);
    child_sa_ends_as_the_kernel_allows(&lab, esp_in_kernel, "PFS");
    if !esp_in_kernel {
        wait_for("libreswan's CREATE_CHILD_SA with KE, answered with KE", 15, || {
            let log = gw1_log(&lab);
            log.lines()
                .any(|l| l.contains("received CREATE_CHILD_SA request") && l.contains("[ SA No KE TSi TSr ]"))
                && log
                    .lines()
                    .any(|l| l.contains("sending CREATE_CHILD_SA response") && l.contains("[ SA No KE TSi TSr ]"))
        });
    } else {
        let r = Command::new("nsenter")
            .args([
                "-t",
                &lab.pid("pluto gw2").to_string(),
                "-m",
                "-n",
                "chroot",
                &libreswan_root(),
            ])
            .args(["ipsec", "whack", "--rekey-child", "--name", "s2s"])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", text(&r));
        wait_for("the rekey with KE", 15, || {
            gw1_log(&lab)
                .lines()
                .any(|l| l.contains("sending CREATE_CHILD_SA response") && l.contains("KE"))
        });
    }
    let log = gw1_log(&lab);
    assert!(log.contains("IKE_AUTH response 1 [ IDr AUTH SA TSi TSr V ]"), "{log}");
    assert!(!log.contains("NO_PROP"), "{log}");
}

/// Each side offers an ESP proposal the other does not take: the refusal is
/// named on ikeda's side, whichever side initiates.
#[test]
fn libreswan_ikev2_esp_mismatch_is_named_both_ways() {
    if !require_root("libreswan_ikev2_esp_mismatch_is_named_both_ways") {
        return;
    }
    let lab = up(
        'l',
        "2",
        "gw2",
        &["--esp", "aes128gcm16", "--peer-esp", "aes256-sha256"],
    );
    wait_for("ikeda refusing libreswan's ESP proposal", 10, || {
        gw1_log(&lab).contains("no acceptable ESP proposal: peer offered aes256-sha256")
    });
    drop(lab);
    let lab = up(
        'l',
        "2",
        "gw1",
        &["--esp", "aes128gcm16", "--peer-esp", "aes256-sha256"],
    );
    wait_for("libreswan's NO_PROPOSAL_CHOSEN, named by ikeda", 10, || {
        status(&lab).to_string().contains("NO_PROPOSAL_CHOSEN")
    });
    let said = pluto_said(&lab);
    assert!(said.contains("established IKE SA"), "{said}");
}

#[test]
fn libreswan_ikev1_main_mode_and_quick_mode_each_initiator() {
    if !require_root("libreswan_ikev1_main_mode_and_quick_mode_each_initiator") {
        return;
    }
    let esp_in_kernel = kernel_has_esp();
    for initiator in ["gw1", "gw2"] {
        let what = format!("IKEv1, {initiator} initiates");
        let lab = up('l', "1", initiator, &["--esp", "aes128-sha256"]);
        let role = if initiator == "gw1" {
            "(initiator)"
        } else {
            "(responder)"
        };
        wait_for(&format!("{what}: Main Mode"), 10, || {
            gw1_log(&lab).lines().any(|l| {
                l.contains("IKE_SA established") && l.contains(role) && l.contains("aes128-sha256-prfsha256-modp2048")
            })
        });
        wait_for(&format!("{what}: pluto's ISAKMP SA"), 5, || {
            pluto_said(&lab).contains("ISAKMP SA established")
        });
        child_sa_ends_as_the_kernel_allows(&lab, esp_in_kernel, &what);
        if esp_in_kernel {
            continue;
        }
        let said = pluto_said(&lab);
        let log = gw1_log(&lab);
        if initiator == "gw1" {
            // pluto took ikeda's Quick Mode (the proposal and the identities)
            // and only its kernel said no.
            assert!(
                said.contains("the peer proposed: 192.168.12.0/24===192.168.11.0/24"),
                "{what}:\n{said}"
            );
        } else {
            // ikeda answered pluto's Quick Mode: its SA is in, inbound, until
            // the third message (which pluto, refused by its kernel, never sends).
            assert!(log.contains("sending QUICK_MODE response"), "{what}:\n{log}");
            assert_child_narrowed_to_ipv4(&log, &what);
        }
    }
}

/// `lab up` against libreswan waits for its CHILD SA; where the kernel
/// refuses it, lab up fails saying so and with pluto's words, and takes the
/// lab down.
#[test]
fn lab_up_against_libreswan_says_what_the_kernel_refused() {
    if !require_root("lab_up_against_libreswan_says_what_the_kernel_refused") {
        return;
    }
    let root = libreswan_root();
    let name = unique_name('l');
    let o = ikeda(&[
        "lab",
        "up",
        "--name",
        &name,
        "--ike",
        "2",
        "--peer",
        "libreswan",
        "--peer-root",
        &root,
    ]);
    let t = text(&o);
    let _down = ikeda(&["lab", "down", "--name", &name]);
    if kernel_has_esp() {
        assert!(o.status.success(), "{t}");
        assert!(t.contains("3 packets transmitted, 3 received"), "{t}");
    } else {
        assert!(!o.status.success(), "{t}");
        assert!(
            t.contains("libreswan on gw2 negotiated the CHILD SA with ikeda, then the kernel refused to install it"),
            "{t}"
        );
        assert!(
            t.contains("netlink response for Add SA") && t.contains("netlink ext_ack"),
            "{t}"
        );
        assert!(namespaces_with_prefix(&format!("ikl-{name}-")).is_empty());
    }
    // Without libreswan where it is looked for, lab up says how to get it.
    let o = ikeda(&[
        "lab",
        "up",
        "--name",
        &unique_name('l'),
        "--ike",
        "2",
        "--peer",
        "libreswan",
        "--peer-root",
        "/nonexistent",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("scripts/peer-root.sh DIR"), "{}", text(&o));
}
