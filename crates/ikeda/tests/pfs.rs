//! PFS for IKEv2 CHILD SAs against strongSwan 5.9 in the lab (RFC 7296
//! §1.2, §1.3.3, §2.17), with ESP proposals that name a group (MODP, ECP,
//! Curve25519), ikeda as initiator and as responder:
//!
//! ```text
//! IKE_AUTH { IDi, AUTH, SA (no KE transform), TSi, TSr }      no PFS
//! CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, KEi, TSi, TSr } -->  by charon (swanctl --rekey)
//!                                 <-- { SA, Nr, KEr, TSi, TSr }
//! CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, KEi, TSi, TSr } -->  by ikeda (rekey_time)
//! ```
//!
//! Each time: ping crosses, the rekey carried KE both ways, and `ikeda show
//! child` names the same ESP suite as `swanctl --list-sas`: without a group
//! for the CHILD SA of IKE_AUTH, with it after each rekey. The same ESP
//! string with IKEv1 (Quick Mode does PFS at once) shows its group too.

mod common;
use common::*;
use std::process::Command;

/// `ikeda show child --json` on gw1.
fn show_child(lab: &Lab) -> serde_json::Value {
    let o = Command::new(IKEDA)
        .arg("--socket")
        .arg(lab.dir().join("gw1.sock"))
        .args(["show", "child", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "show child: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The ESP suites of the CHILD SAs strongSwan has INSTALLED, as printed
/// (`net: #2, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128/CURVE_25519`).
fn swanctl_installed(lab: &Lab) -> Vec<String> {
    swanctl(lab, "gw2", &["--list-sas"])
        .lines()
        .filter(|l| l.contains(", INSTALLED, "))
        .filter_map(|l| l.split("ESP:").nth(1))
        .map(|s| s.split(',').next().unwrap_or_default().trim().to_string())
        .collect()
}

/// ikeda's INSTALLED CHILD SAs: (algorithms, pfs_group).
fn ikeda_installed(lab: &Lab) -> Vec<(String, Option<String>)> {
    show_child(lab)
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == "INSTALLED")
        .map(|c| {
            (
                c["algorithms"].as_str().unwrap().to_string(),
                c["pfs_group"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// A log line with both parts.
fn has_line(log: &str, a: &str, b: &str) -> bool {
    log.lines().any(|l| l.contains(a) && l.contains(b))
}

/// Both ends show exactly one installed CHILD SA, with this suite.
fn both_show(lab: &Lab, suite: &str, group: Option<&str>, what: &str) {
    wait_for(&format!("{what}: one INSTALLED CHILD SA on each end"), 10, || {
        swanctl_installed(lab).len() == 1 && ikeda_installed(lab).len() == 1
    });
    assert_eq!(swanctl_installed(lab), [suite], "{what}: swanctl --list-sas");
    assert_eq!(
        ikeda_installed(lab),
        [(suite.to_string(), group.map(str::to_string))],
        "{what}: ikeda show child"
    );
}

#[test]
fn strongswan_ikev2_child_pfs_each_group_both_roles_rekeys_carry_ke() {
    if !require_root("strongswan_ikev2_child_pfs_each_group_both_roles_rekeys_carry_ke") {
        return;
    }
    need_strongswan();
    for (esp, suite, group) in [
        ("aes128-sha256-modp2048", "AES_CBC-128/HMAC_SHA2_256_128", "MODP_2048"),
        ("aes128gcm16-ecp256", "AES_GCM_16-128", "ECP_256"),
        ("aes128gcm16-x25519", "AES_GCM_16-128", "CURVE_25519"),
    ] {
        for initiator in ["gw1", "gw2"] {
            let what = format!("{esp}, {initiator} initiates");
            // ikeda rekeys its CHILD SA after 10.8-12 s; charon only when told.
            let (lab, out) = Lab::up(
                'p',
                &[
                    "--ike",
                    "2",
                    "--peer",
                    "strongswan",
                    "--esp",
                    esp,
                    "--initiator",
                    initiator,
                    "--rekey-time",
                    "12s",
                ],
            );
            assert!(
                out.contains("192.168.11.11 -> 192.168.12.12 through the tunnel: 3 packets transmitted, 3 received"),
                "{what}: {out}"
            );
            // IKE_AUTH: no KE transform offered (§1.2), and no group on the SA.
            let log = gw1_log(&lab);
            let auth = if initiator == "gw1" {
                "sending IKE_AUTH request 1 [ IDi AUTH N(INIT_CONTACT) SA TSi TSr V ]"
            } else {
                "sending IKE_AUTH response 1 [ IDr AUTH SA TSi TSr V ]"
            };
            assert!(log.contains(auth), "{what}:\n{log}");
            both_show(&lab, suite, None, &format!("{what}, CHILD SA of IKE_AUTH"));

            // charon rekeys: CREATE_CHILD_SA with KEi, answered with KEr.
            let r = swanctl(&lab, "gw2", &["--rekey", "--child", "net"]);
            assert!(r.contains("rekey completed successfully"), "{what}: {r}");
            wait_for(&format!("{what}: ikeda to answer charon's rekey"), 10, || {
                let log = gw1_log(&lab);
                has_line(
                    &log,
                    "received CREATE_CHILD_SA request",
                    "[ N(REKEY_SA) SA No KE TSi TSr ]",
                ) && has_line(&log, "sending CREATE_CHILD_SA response", "[ SA No KE TSi TSr ]")
            });
            let with_group = format!("{suite}/{group}");
            both_show(&lab, &with_group, Some(group), &format!("{what}, rekeyed by charon"));
            ping_ok(&lab, &format!("{what}, after charon's rekey"));

            // ikeda rekeys (rekey_time): its request carries KEi of the group.
            wait_for(&format!("{what}: ikeda's own rekey"), 20, || {
                let log = gw1_log(&lab);
                log.contains(&format!("(PFS with {group})"))
                    && has_line(
                        &log,
                        "sending CREATE_CHILD_SA request",
                        "[ N(REKEY_SA) SA No KE TSi TSr ]",
                    )
                    && has_line(&log, "received CREATE_CHILD_SA response", "[ SA No KE TSi TSr ]")
                    && log.matches("CHILD_SA rekeyed with SPIs").count() >= 2
            });
            both_show(&lab, &with_group, Some(group), &format!("{what}, rekeyed by ikeda"));
            ping_ok(&lab, &format!("{what}, after ikeda's rekey"));
            let charon = std::fs::read_to_string(lab.dir().join("charon-gw2.log")).unwrap_or_default();
            assert!(
                !charon.contains("NO_PROPOSAL_CHOSEN") && !charon.contains("INVALID_KE_PAYLOAD"),
                "{what}: charon refused something\n{charon}"
            );
        }
    }
}

/// The same ESP string with a group under IKEv1: Quick Mode carries KE at
/// once, and `show child` names the group as swanctl does.
#[test]
fn strongswan_ikev1_same_pfs_esp_string_shows_its_group() {
    if !require_root("strongswan_ikev1_same_pfs_esp_string_shows_its_group") {
        return;
    }
    need_strongswan();
    let (lab, out) = Lab::up(
        'q',
        &[
            "--ike",
            "1",
            "--peer",
            "strongswan",
            "--ike-proposal",
            "aes128-sha256-modp2048",
            "--esp",
            "aes128gcm16-x25519",
        ],
    );
    assert!(out.contains("3 packets transmitted, 3 received"), "{out}");
    assert!(gw1_log(&lab).contains("[ HASH SA No KE ID ID ]"), "Quick Mode with KE");
    // One Quick Mode per selector pair (IPv4, IPv6), each with the group.
    let theirs = swanctl_installed(&lab);
    assert_eq!(theirs, ["AES_GCM_16-128/CURVE_25519", "AES_GCM_16-128/CURVE_25519"]);
    let ours = ikeda_installed(&lab);
    let want = (
        "AES_GCM_16-128/CURVE_25519".to_string(),
        Some("CURVE_25519".to_string()),
    );
    assert_eq!(ours, [want.clone(), want]);
}

/// The groups differ in preference: the rekey's responder answers
/// INVALID_KE_PAYLOAD naming the group it wants and the initiator tries
/// again with it (RFC 7296 §1.3), ikeda in either role against charon.
#[test]
fn strongswan_ikev2_child_pfs_invalid_ke_payload_both_ways() {
    if !require_root("strongswan_ikev2_child_pfs_invalid_ke_payload_both_ways") {
        return;
    }
    need_strongswan();
    // ikeda rekeys with a KEi of ECP_256; charon takes only Curve25519.
    let (lab, out) = Lab::up(
        'v',
        &[
            "--ike",
            "2",
            "--peer",
            "strongswan",
            "--esp",
            "aes128gcm16-ecp256-x25519",
            "--peer-esp",
            "aes128gcm16-x25519",
            "--rekey-time",
            "8s",
        ],
    );
    assert!(out.contains("3 packets transmitted, 3 received"), "{out}");
    wait_for("ikeda's rekey, retried with CURVE_25519", 15, || {
        gw1_log(&lab).matches("CHILD_SA rekeyed with SPIs").count() >= 1
    });
    let log = gw1_log(&lab);
    assert!(
        has_line(&log, "received CREATE_CHILD_SA response", "[ N(INVAL_KE) ]")
            && log.contains("peer wants key exchange group CURVE_25519 for the CHILD_SA, retrying")
            && log.contains("(PFS with CURVE_25519)"),
        "{log}"
    );
    let charon = std::fs::read_to_string(lab.dir().join("charon-gw2.log")).unwrap_or_default();
    assert!(
        charon.contains("DH group ECP_256 unacceptable, requesting CURVE_25519"),
        "{charon}"
    );
    both_show(
        &lab,
        "AES_GCM_16-128/CURVE_25519",
        Some("CURVE_25519"),
        "after the retry",
    );
    ping_ok(&lab, "after ikeda's retried rekey");
    drop(lab);

    // charon rekeys with a KEi of ECP_256; ikeda takes only Curve25519.
    let (lab, out) = Lab::up(
        'v',
        &[
            "--ike",
            "2",
            "--peer",
            "strongswan",
            "--esp",
            "aes128gcm16-x25519",
            "--peer-esp",
            "aes128gcm16-ecp256-x25519",
            "--initiator",
            "gw2",
        ],
    );
    assert!(out.contains("3 packets transmitted, 3 received"), "{out}");
    let r = swanctl(&lab, "gw2", &["--rekey", "--child", "net"]);
    assert!(r.contains("rekey completed successfully"), "{r}");
    wait_for("ikeda to install charon's retried rekey", 10, || {
        gw1_log(&lab).contains("CHILD_SA rekeyed with SPIs")
    });
    let log = gw1_log(&lab);
    assert!(
        log.contains("KEi of group ECP_256, the chosen proposal has CURVE_25519: asking for it (INVALID_KE_PAYLOAD)")
            && has_line(&log, "sending CREATE_CHILD_SA response", "[ N(INVAL_KE) ]"),
        "{log}"
    );
    let charon = std::fs::read_to_string(lab.dir().join("charon-gw2.log")).unwrap_or_default();
    assert!(
        charon.contains("peer didn't accept DH group ECP_256, it requested CURVE_25519"),
        "{charon}"
    );
    both_show(
        &lab,
        "AES_GCM_16-128/CURVE_25519",
        Some("CURVE_25519"),
        "after charon's retry",
    );
    ping_ok(&lab, "after charon's retried rekey");
}

/// ikeda requires PFS, charon's rekey has none: NO_PROPOSAL_CHOSEN, no CHILD
/// SA keyed without the group, and the old one keeps carrying traffic.
#[test]
fn strongswan_ikev2_rekey_without_the_required_group_is_refused() {
    if !require_root("strongswan_ikev2_rekey_without_the_required_group_is_refused") {
        return;
    }
    need_strongswan();
    let (lab, out) = Lab::up(
        'w',
        &[
            "--ike",
            "2",
            "--peer",
            "strongswan",
            "--esp",
            "aes128gcm16-modp2048",
            "--peer-esp",
            "aes128gcm16",
            "--initiator",
            "gw2",
        ],
    );
    // IKE_AUTH has no KE either way: the CHILD SA comes up.
    assert!(out.contains("3 packets transmitted, 3 received"), "{out}");
    both_show(&lab, "AES_GCM_16-128", None, "CHILD SA of IKE_AUTH");
    let _ = swanctl(&lab, "gw2", &["--rekey", "--child", "net"]);
    wait_for("ikeda to refuse charon's rekey", 10, || {
        has_line(&gw1_log(&lab), "sending CREATE_CHILD_SA response", "[ N(NO_PROP) ]")
    });
    let log = gw1_log(&lab);
    assert!(
        log.contains("no acceptable ESP proposal: peer offered aes128gcm16; we accept aes128gcm16-modp2048"),
        "{log}"
    );
    assert!(!log.contains("CHILD_SA rekeyed"), "{log}");
    let status = Command::new(IKEDA)
        .arg("--socket")
        .arg(lab.dir().join("gw1.sock"))
        .args(["status", "--json"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        st[0]["last_failure"]
            .as_str()
            .is_some_and(|f| f.contains("no proposal chosen in CREATE_CHILD_SA")),
        "status names it: {st}"
    );
    both_show(&lab, "AES_GCM_16-128", None, "still the CHILD SA of IKE_AUTH");
    ping_ok(&lab, "on the old CHILD SA");
}
