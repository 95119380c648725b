//! IKEv2 fragmentation (RFC 7383) as strongSwan sends it, read by
//! `ikeda pcap` (issue 12 point 3): a strongSwan-only lab (`lab up
//! --gateways strongswan --export-keys`: charon logs its keys into
//! keys-<gw>/charon-keys.txt), whose charons are then told to fragment
//! anything over 300 bytes (`charon.fragment_size`, `swanctl
//! --reload-settings`) and make a new IKE SA: its IKE_AUTH request and
//! response travel as two SKF fragments each. With charon's log alone,
//! `ikeda pcap` puts each message together and decrypts it, listing the
//! same payloads as tshark (which reassembles and decrypts SKF too) given
//! the same keys as Wireshark's tables; `--write` then gives tshark, with
//! no keys, the whole IKE_AUTH in clear in place of the second fragment.
//!
//! Needs root, strongSwan and tshark; fails without them (unless
//! IKEDA_ALLOW_NO_ROOT=1 and not root, then it says it skipped).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// IKE_AUTH frames (exchange 35) and their payload types, without the SK
/// (46) and SKF (53) envelopes and SA's substructures (2, 3).
fn ike_auth(pcap: &Path, conf: &Path) -> BTreeMap<u64, Vec<String>> {
    tshark_fields(
        pcap,
        conf,
        &["-Y", "isakmp.exchangetype == 35"],
        &["frame.number", "isakmp.typepayload"],
    )
    .into_iter()
    .map(|r| {
        let types = r[1]
            .split(',')
            .filter(|t| !matches!(*t, "2" | "3" | "46" | "53"))
            .map(str::to_string)
            .collect();
        (r[0].parse().unwrap(), types)
    })
    .collect()
}

#[test]
fn strongswan_skf_fragments_are_reassembled_decrypted_and_written_in_clear() {
    let test = "strongswan_skf_fragments_are_reassembled_decrypted_and_written_in_clear";
    if !require_root(test) {
        return;
    }
    need_strongswan();
    need_tshark();
    let tmp = TempDir::new(test);
    let pcap = tmp.path().join("cap.pcap");
    let p = pcap.to_str().unwrap().to_string();
    let (lab, up) = Lab::up(
        'f',
        &[
            "--gateways",
            "strongswan",
            "--export-keys",
            "--capture",
            &p,
            "--no-ping",
        ],
    );
    assert!(up.contains("charon-keys.txt"), "{up}");
    // Fragment above 300 bytes from now on, on both sides.
    for gw in ["gw1", "gw2"] {
        let conf = lab.dir().join(format!("charon-{gw}/strongswan.conf"));
        let text = std::fs::read_to_string(&conf).unwrap();
        let with = text.replacen("charon {\n", "charon {\n  fragment_size = 300\n", 1);
        assert_ne!(with, text, "{}", conf.display());
        std::fs::write(&conf, with).unwrap();
        let o = swanctl(&lab, gw, &["--reload-settings"]);
        assert!(!o.contains("failed"), "{gw}: {o}");
    }
    let o = swanctl(&lab, "gw1", &["--terminate", "--ike", "s2s"]);
    assert!(o.contains("terminate completed successfully"), "{o}");
    let o = swanctl(
        &lab,
        "gw1",
        &["--initiate", "--ike", "s2s", "--child", "net", "--timeout", "15"],
    );
    assert!(
        o.contains("into 2 fragments") && o.contains("initiate completed successfully"),
        "charon did not fragment IKE_AUTH:\n{o}"
    );
    let ping = lab.exec(
        "h1",
        &["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "192.168.12.12"],
    );
    assert!(ping.status.success(), "ping: {}", text(&ping));
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::copy(lab.dir().join("keys-gw1/charon-keys.txt"), keys.join("charon-keys.txt")).unwrap();
    lab.down_with_capture();

    let out = tmp.path().join("out.pcap");
    let ws = tmp.path().join("wireshark");
    let o = ikeda(&[
        "pcap",
        "--keys",
        keys.to_str().unwrap(),
        "--write",
        out.to_str().unwrap(),
        "--wireshark-keys",
        ws.to_str().unwrap(),
        &p,
    ]);
    let t = text(&o);
    assert!(o.status.success(), "ikeda pcap:\n{t}");
    // Two IKE SAs: the first IKE_AUTH in SK, the second in SKF fragments.
    // The conversation's lines, not the explanation's after them.
    let conversation = t.split("\nWhat the capture shows:").next().unwrap();
    let lines: Vec<&str> = conversation.lines().filter(|l| l.contains(" IKE_AUTH ")).collect();
    assert_eq!(lines.len(), 6, "{t}");
    let held: Vec<&&str> = lines.iter().filter(|l| l.contains("[ EF(1/2) ]")).collect();
    assert_eq!(held.len(), 2, "{t}");
    assert!(
        held.iter()
            .all(|l| l.contains("ICV verified; 1 of 2 held for reassembly")),
        "{t}"
    );
    let whole: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("reassembled from 2 SKF fragments"))
        .collect();
    assert_eq!(whole.len(), 2, "{t}");
    assert!(
        whole[0].contains("IKE_AUTH request 1 [ IDi ") && whole[0].contains(" AUTH SA TSi TSr"),
        "{t}"
    );
    assert!(whole[1].contains("IKE_AUTH response 1 [ IDr AUTH SA TSi TSr"), "{t}");
    assert!(t.contains("2 IKEv2 messages reassembled from SKF fragments"), "{t}");

    // tshark reassembles and decrypts SKF with the same keys: the same
    // payloads on the same frames (fragment 1 carries none).
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let theirs = ike_auth(&pcap, &ws);
    let ours = ike_auth(&out, &empty);
    assert_eq!(
        ours, theirs,
        "IKE_AUTH payloads per frame: OUT without keys vs the capture with keys\n{t}"
    );
    assert_eq!(theirs.values().filter(|v| v.is_empty()).count(), 2, "{theirs:?}");
    // In OUT the completing fragments are whole messages in clear.
    let clear = tshark_fields(
        &out,
        &empty,
        &[
            "-o",
            "udp.check_checksum:TRUE",
            "-Y",
            "isakmp.exchangetype == 35 and frame.comment contains \"reassembled from 2 SKF\"",
        ],
        &["frame.number", "udp.checksum.status"],
    );
    assert_eq!(clear.len(), 2, "{t}");
    assert!(clear.iter().all(|r| r[1] == "1"), "{clear:?}");
    println!("{test}: IKE_AUTH from SKF fragments {ours:?}, as tshark reads them");
}
