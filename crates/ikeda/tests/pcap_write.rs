//! `ikeda pcap --keys DIR --write OUT` on lab captures (issue 12 point 5):
//! tshark with no keys at all reads OUT and sees the inner ICMP of every
//! ping and the IKE payloads, and what it sees agrees, frame for frame,
//! with what tshark itself decrypts from the original capture given the
//! keys the lab exported (Wireshark's tables). IKEv2 behind the lab's NAT
//! (IKE on 4500 after the non-ESP marker, ESP in UDP) and IKEv1 with
//! IPComp (raw ESP, some packets compressed).
//!
//! Needs root and tshark; fails without them (unless IKEDA_ALLOW_NO_ROOT=1
//! and not root, then it says it skipped).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `frame.number` -> the other fields of the row, for rows whose first
/// field after the frame number is not empty.
fn by_frame(rows: Vec<Vec<String>>) -> BTreeMap<u64, Vec<String>> {
    rows.into_iter()
        .filter(|r| !r[1].is_empty())
        .map(|r| (r[0].parse().unwrap(), r[1..].to_vec()))
        .collect()
}

/// IKE payload types of each IKE frame, without the SK envelope (46)
/// and the SA payload's Proposal (2) and Transform (3) substructures.
fn ike_payloads(pcap: &Path, confdir: &Path) -> BTreeMap<u64, Vec<String>> {
    by_frame(tshark_fields(
        pcap,
        confdir,
        &["-Y", "isakmp"],
        &["frame.number", "isakmp.typepayload"],
    ))
    .into_iter()
    .map(|(f, r)| {
        let types = r[0]
            .split(',')
            .filter(|t| !matches!(*t, "2" | "3" | "46"))
            .map(str::to_string)
            .collect();
        (f, types)
    })
    .collect()
}

struct Written {
    _tmp: TempDir,
    pcap: PathBuf,
    keys: PathBuf,
    out: PathBuf,
    empty: PathBuf,
    /// `ikeda pcap --keys --write` text output (stdout and stderr).
    text: String,
}

/// A lab with key export and a capture of gw1's WAN; h1 pings h2 once per
/// `(count, size)`; gw1's keys copied before `lab down`; then `ikeda pcap
/// --keys --write`.
fn lab_then_write(test: &str, args: &[&str], pings: &[(u32, u32)]) -> Written {
    let tmp = TempDir::new(test);
    let pcap = tmp.path().join("cap.pcap");
    let p = pcap.to_str().unwrap().to_string();
    let mut a = vec!["--export-keys", "--capture", &p, "--no-ping"];
    a.extend_from_slice(args);
    let (lab, _) = Lab::up('w', &a);
    for (count, size) in pings {
        let o = lab.exec(
            "h1",
            &[
                "ping",
                "-n",
                "-c",
                &count.to_string(),
                "-s",
                &size.to_string(),
                "-i",
                "0.2",
                "-W",
                "2",
                "192.168.12.12",
            ],
        );
        assert!(o.status.success(), "ping h1 -> h2: {}\n{}", text(&o), gw1_log(&lab));
    }
    let keys = tmp.path().join("keys");
    lab.copy_keys("gw1", &keys);
    lab.down_with_capture();
    let out = tmp.path().join("out.pcap");
    let o = ikeda(&[
        "pcap",
        "--keys",
        keys.to_str().unwrap(),
        "--write",
        out.to_str().unwrap(),
        &p,
    ]);
    let t = text(&o);
    assert!(o.status.success(), "ikeda pcap --write:\n{t}");
    assert!(t.contains("wrote ") && t.contains(" ESP packets decrypted"), "{t}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    Written {
        _tmp: tmp,
        pcap,
        keys,
        out,
        empty,
        text: t,
    }
}

/// What both cases check: frame for frame; tshark without keys sees every
/// echo request and reply in OUT and none in the capture; per frame, the
/// same ICMP (type, sequence number) and the same IKE payloads as tshark
/// decrypting the capture with the exported keys; no IKE left encrypted;
/// the re-framed IKE datagrams' checksums verify. Returns OUT's IKE
/// payloads by frame.
fn check(w: &Written, pings: u32) -> BTreeMap<u64, Vec<String>> {
    let frames = |p: &Path| tshark_fields(p, &w.empty, &[], &["frame.number"]).len();
    assert_eq!(frames(&w.out), frames(&w.pcap), "frame for frame\n{}", w.text);

    let icmp = |p: &Path, conf: &Path| {
        by_frame(tshark_fields(
            p,
            conf,
            &["-Y", "icmp"],
            &["frame.number", "icmp.type", "icmp.seq"],
        ))
    };
    assert!(
        icmp(&w.pcap, &w.empty).is_empty(),
        "ICMP visible in the capture without keys"
    );
    let ours = icmp(&w.out, &w.empty);
    let count = |t: &str| ours.values().filter(|r| r[0] == t).count() as u32;
    assert_eq!(
        (count("8"), count("0")),
        (pings, pings),
        "echo requests and replies in OUT: {ours:?}"
    );
    let theirs = icmp(&w.pcap, &w.keys);
    assert_eq!(
        ours, theirs,
        "inner ICMP per frame: OUT without keys vs the capture with keys"
    );

    let ike = ike_payloads(&w.out, &w.empty);
    assert_eq!(
        ike,
        ike_payloads(&w.pcap, &w.keys),
        "IKE payloads per frame: OUT without keys vs the capture with keys"
    );
    let still = tshark_fields(
        &w.out,
        &w.empty,
        &["-Y", "isakmp.typepayload == 46 or isakmp.flag_e == 1"],
        &["frame.number"],
    );
    assert!(still.is_empty(), "IKE frames still encrypted in OUT: {still:?}");

    // The rewritten IKE datagrams: checksums good, a comment on each.
    let rewritten = tshark_fields(
        &w.out,
        &w.empty,
        &[
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-Y",
            "isakmp and frame.interface_name == \"ikeda-decrypted\"",
        ],
        &[
            "frame.number",
            "udp.checksum.status",
            "ip.checksum.status",
            "frame.comment",
        ],
    );
    assert!(!rewritten.is_empty(), "no IKE frame rewritten\n{}", w.text);
    for r in &rewritten {
        assert_eq!((r[1].as_str(), r[2].as_str()), ("1", "1"), "checksums of frame {r:?}");
        assert!(r[3].starts_with("ikeda pcap: decrypted IKEv"), "{r:?}");
    }
    let commented = tshark_fields(
        &w.out,
        &w.empty,
        &["-Y", "frame.comment contains \"ikeda pcap: decrypted ESP\""],
        &["frame.number"],
    );
    assert_eq!(commented.len(), ours.len(), "decrypted ESP frames with a comment");
    ike
}

/// The names in a list of IKE payload types (RFC 7296 §3.2, RFC 2408 §3.1).
fn has(list: &[String], want: &[u8]) -> bool {
    want.iter().all(|t| list.contains(&t.to_string()))
}

#[test]
fn pcap_write_of_an_ikev2_lab_behind_nat_opens_in_tshark_without_keys() {
    let test = "pcap_write_of_an_ikev2_lab_behind_nat_opens_in_tshark_without_keys";
    if !require_root(test) {
        return;
    }
    need_tshark();
    let w = lab_then_write(test, &["--ike", "2", "--nat"], &[(5, 56)]);
    let ike = check(&w, 5);
    // IKE_AUTH request [ IDi AUTH ... SA TSi TSr ] and response [ IDr AUTH SA TSi TSr ].
    let auth: Vec<&Vec<String>> = ike.values().filter(|l| l.contains(&"39".to_string())).collect();
    assert_eq!(auth.len(), 2, "{ike:?}");
    assert!(auth.iter().any(|l| has(l, &[35, 39, 33, 44, 45])), "{auth:?}");
    assert!(auth.iter().any(|l| has(l, &[36, 39, 33, 44, 45])), "{auth:?}");
    // Behind the NAT: IKE_AUTH on 4500 with the marker, ESP in UDP.
    let on_4500 = tshark_fields(
        &w.out,
        &w.empty,
        &[
            "-Y",
            "isakmp and udp.port == 4500 and frame.interface_name == \"ikeda-decrypted\"",
        ],
        &["frame.number"],
    );
    assert_eq!(on_4500.len(), 2, "{}", w.text);
    assert!(w.text.contains("ESP in UDP"), "{}", w.text);
    println!("{test}: IKE_AUTH {auth:?} and 5 pings read without keys");
}

/// IKEv1 with IPComp: Main Mode 5/6, both Quick Modes and the
/// INITIAL-CONTACT Informational in clear; `ping -s 500` travels
/// compressed (inflated in OUT), the 56-byte pings do not.
#[test]
fn pcap_write_of_an_ikev1_lab_with_ipcomp_opens_in_tshark_without_keys() {
    let test = "pcap_write_of_an_ikev1_lab_with_ipcomp_opens_in_tshark_without_keys";
    if !require_root(test) {
        return;
    }
    need_tshark();
    let w = lab_then_write(test, &["--ike", "1", "--compress"], &[(3, 500), (2, 56)]);
    let ike = check(&w, 5);
    // Quick Mode [ HASH SA No ID ID ]: Hash 8, SA 1, Nonce 10, ID 5.
    let qm = ike.values().filter(|l| has(l, &[8, 1, 10, 5])).count();
    assert_eq!(qm, 4, "{ike:?}");
    // Main Mode 5/6 [ ID HASH ].
    assert_eq!(ike.values().filter(|l| *l == &["5", "8"]).count(), 2, "{ike:?}");
    let flows: Vec<&str> = w.text.lines().filter(|l| l.contains(" SPI 0x")).collect();
    assert_eq!(flows.len(), 2, "{}", w.text);
    for f in &flows {
        assert!(
            f.contains("decrypted 5 (ICMP 5), IPComp: 3 inflated") && f.contains("2 not compressed"),
            "{f}"
        );
    }
    // The compressed ones are whole again: 500 bytes of data, 528 of IP.
    let big = tshark_fields(&w.out, &w.empty, &["-Y", "icmp and ip.len == 528"], &["frame.number"]);
    assert_eq!(big.len(), 6, "{}", w.text);
    println!(
        "{test}: {} IKE messages and 5 pings (3 inflated) read without keys",
        ike.len()
    );
}
