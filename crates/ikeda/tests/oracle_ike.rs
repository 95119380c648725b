//! Key export oracle: the files ikeda writes with `--export-keys` must let
//! Wireshark decrypt a capture of the tunnel, IKEv2 and ESP alike, with
//! nothing else given (`WIRESHARK_CONFIG_DIR=<keys> tshark -r cap.pcap`).
//!
//! For GCM and CBC suites, with ikeda (gw1) as initiator and as responder
//! against strongSwan (gw2, kernel-libipsec, so ESP is UDP-encapsulated):
//! `lab up --export-keys --capture` records gw1's WAN from before
//! IKE_SA_INIT, h1 pings h2, `lab down` completes the capture, and tshark
//! reads it with a copy of gw1's key directory:
//!
//! * IKE_AUTH request and response are decrypted and show their payloads
//!   (`IDi AUTH SA TSi TSr` / `IDr AUTH SA TSi TSr`), the identities (each
//!   gateway's address), PSK authentication and the LANs as selectors;
//! * every ESP frame is decrypted (ICV good) to the inner echo requests
//!   192.168.11.11 -> 192.168.12.12 and the replies.
//!
//! Negative controls: with an empty config directory, and with the key
//! files' encryption keys changed in one bit, none of that appears.
//!
//! Needs root, strongSwan and tshark; fails without them (unless
//! IKEDA_ALLOW_NO_ROOT=1 and not root, then it says it skipped).

mod common;
use common::*;
use std::fs;
use std::path::Path;
use std::time::Instant;

const PINGS: usize = 3;
const GW_WAN: [&str; 2] = ["192.168.50.11", "192.168.50.12"];
const HOST: [&str; 2] = ["192.168.11.11", "192.168.12.12"];
const LAN_START: [&str; 2] = ["192.168.11.0", "192.168.12.0"];
const LAN_END: [&str; 2] = ["192.168.11.255", "192.168.12.255"];

// IKEv2 payload types (RFC 7296 §3.2).
const SA: u8 = 33;
const IDI: u8 = 35;
const IDR: u8 = 36;
const AUTH: u8 = 39;
const TSI: u8 = 44;
const TSR: u8 = 45;
const SK: u8 = 46;
const IKE_AUTH: u8 = 35;
/// Authentication method: Shared Key Message Integrity Code.
const AUTH_PSK: &str = "2";

const FIELDS: [&str; 14] = [
    "frame.number",
    "isakmp.exchangetype",
    "isakmp.flag_r",
    "isakmp.typepayload",
    "isakmp.id.data.ipv4_addr",
    "isakmp.auth.method",
    "isakmp.ts.start_ipv4",
    "isakmp.ts.end_ipv4",
    "ip.src",
    "ip.dst",
    "esp.spi",
    "icmp.type",
    "esp.icv_good",
    "esp.icv_bad",
];

/// One frame as tshark dissected it (every occurrence of each field).
#[derive(Debug, Default)]
struct Frame {
    no: u32,
    exchange: Option<u8>,
    response: bool,
    payloads: Vec<u8>,
    ids: Vec<String>,
    auth: Vec<String>,
    ts_start: Vec<String>,
    ts_end: Vec<String>,
    src: Vec<String>,
    dst: Vec<String>,
    esp_spi: Option<String>,
    icmp: Vec<u8>,
    icv_good: bool,
    icv_bad: bool,
}

impl Frame {
    fn is_esp(&self) -> bool {
        self.esp_spi.is_some()
    }
    /// The inner (decrypted) IPv4 source, destination and ICMP type.
    fn inner(&self) -> Option<(&str, &str, Option<u8>)> {
        if self.src.len() < 2 || self.dst.len() < 2 {
            return None;
        }
        Some((&self.src[1], &self.dst[1], self.icmp.first().copied()))
    }
}

fn truthy(s: &str) -> bool {
    matches!(s, "1" | "True" | "TRUE" | "true")
}

/// `WIRESHARK_CONFIG_DIR=confdir tshark -r pcap` (plus `extra` options),
/// parsed; fails if tshark complains about anything (a bad key file).
fn tshark(pcap: &Path, confdir: &Path, extra: &[&str]) -> Vec<Frame> {
    tshark_fields(pcap, confdir, extra, &FIELDS)
        .into_iter()
        .map(|f| {
            let list =
                |i: usize| -> Vec<String> { f[i].split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect() };
            let nums = |i: usize| -> Vec<u8> { list(i).iter().filter_map(|x| x.parse().ok()).collect() };
            let first = |i: usize| f[i].split(',').next().unwrap_or("").to_string();
            Frame {
                no: f[0].parse().unwrap(),
                exchange: first(1).parse().ok(),
                response: truthy(&first(2)),
                payloads: nums(3),
                ids: list(4),
                auth: list(5),
                ts_start: list(6),
                ts_end: list(7),
                src: list(8),
                dst: list(9),
                esp_spi: Some(first(10)).filter(|s| !s.is_empty()),
                icmp: nums(11),
                icv_good: truthy(&first(12)),
                icv_bad: truthy(&first(13)),
            }
        })
        .collect()
}

/// Everything a correctly decrypted capture shows. `init`: 0 when gw1
/// initiated, 1 when gw2 did.
fn check(frames: &[Frame], init: usize) -> Result<String, String> {
    let mut errs = Vec::new();
    let resp = 1 - init;
    let auth: Vec<&Frame> = frames.iter().filter(|f| f.exchange == Some(IKE_AUTH)).collect();
    for (response, id_type, id) in [(false, IDI, GW_WAN[init]), (true, IDR, GW_WAN[resp])] {
        let what = if response {
            "IKE_AUTH response"
        } else {
            "IKE_AUTH request"
        };
        let msgs: Vec<&&Frame> = auth.iter().filter(|f| f.response == response).collect();
        if msgs.is_empty() {
            errs.push(format!("no {what} in the capture"));
        }
        for f in msgs {
            let want = [SK, id_type, AUTH, SA, TSI, TSR];
            let missing: Vec<u8> = want.iter().copied().filter(|p| !f.payloads.contains(p)).collect();
            if !missing.is_empty() {
                errs.push(format!(
                    "frame {} {what}: payloads {:?}, missing {missing:?} (not decrypted?)",
                    f.no, f.payloads
                ));
            }
            if !f.ids.iter().any(|x| x == id) {
                errs.push(format!("frame {} {what}: identities {:?}, expected {id}", f.no, f.ids));
            }
            if f.auth.first().map(String::as_str) != Some(AUTH_PSK) {
                errs.push(format!(
                    "frame {} {what}: AUTH method {:?}, expected PSK (2)",
                    f.no, f.auth
                ));
            }
            for (a, b) in LAN_START.iter().zip(LAN_END) {
                if !f.ts_start.iter().any(|x| x == a) || !f.ts_end.iter().any(|x| x == b) {
                    errs.push(format!(
                        "frame {} {what}: selectors {:?}..{:?}, expected {a}..{b}",
                        f.no, f.ts_start, f.ts_end
                    ));
                }
            }
        }
    }
    let esp: Vec<&Frame> = frames.iter().filter(|f| f.is_esp()).collect();
    if esp.is_empty() {
        errs.push("no ESP frames in the capture".into());
    }
    for f in &esp {
        match f.inner() {
            None => errs.push(format!("ESP frame {} (spi {:?}) not decrypted", f.no, f.esp_spi)),
            Some((s, d, _)) if !(s == HOST[0] && d == HOST[1] || s == HOST[1] && d == HOST[0]) => {
                errs.push(format!("ESP frame {} decrypted to {s} -> {d}, not h1 <-> h2", f.no))
            }
            _ => {}
        }
    }
    let count = |src: &str, dst: &str, ty: u8| esp.iter().filter(|f| f.inner() == Some((src, dst, Some(ty)))).count();
    let (req, rep) = (count(HOST[0], HOST[1], 8), count(HOST[1], HOST[0], 0));
    if req != PINGS || rep != PINGS {
        errs.push(format!(
            "inner ICMP: {req} echo requests {} -> {} and {rep} replies, expected {PINGS} each",
            HOST[0], HOST[1]
        ));
    }
    if errs.is_empty() {
        Ok(format!(
            "{} IKE_AUTH messages decrypted ({}), {} ESP frames decrypted ({req} echo requests, {rep} replies)",
            auth.len(),
            auth.iter()
                .map(|f| format!("#{} {:?}", f.no, f.payloads))
                .collect::<Vec<_>>()
                .join(", "),
            esp.len()
        ))
    } else {
        Err(errs.join("\n"))
    }
}

/// What must not show without the right keys: decrypted IKE_AUTH payloads,
/// the identities, the selectors, inner ICMP.
fn check_nothing_decrypted(frames: &[Frame], what: &str) {
    for f in frames {
        if f.exchange == Some(IKE_AUTH) {
            let inner = [IDI, IDR, AUTH, SA, TSI, TSR];
            assert!(
                !inner.iter().all(|p| f.payloads.contains(p))
                    && !f.ids.iter().any(|x| GW_WAN.contains(&x.as_str()))
                    && !f.ts_start.iter().any(|x| LAN_START.contains(&x.as_str())),
                "{what}: IKE_AUTH frame {} still shows its payloads: {f:?}",
                f.no
            );
        }
        if f.is_esp() {
            assert!(
                !f.src.iter().chain(&f.dst).any(|a| HOST.contains(&a.as_str())),
                "{what}: ESP frame {} still shows the inner packet: {f:?}",
                f.no
            );
        }
    }
}

/// Flip one bit of the first hex digit of `hex` (which may start with 0x).
fn flip(hex: &str) -> String {
    let (pre, digits) = hex.split_at(if hex.starts_with("0x") { 2 } else { 0 });
    let mut c = digits.chars();
    let d = c.next().and_then(|d| d.to_digit(16)).expect("a hex key");
    format!("{pre}{:x}{}", d ^ 1, c.as_str())
}

/// A copy of a key directory with every encryption key changed in one bit:
/// SK_ei and SK_er in `ikev2_decryption_table`
/// (`SPIi,SPIr,SK_ei,SK_er,"encr",SK_ai,SK_ar,"integ"`) and the key in
/// `esp_sa` (`"IPv4","src","dst","0xSPI","encr","0xkey","auth","0xkey"`).
fn corrupt_keys(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let ike = fs::read_to_string(from.join("ikev2_decryption_table")).unwrap();
    let mut out = String::new();
    let mut n = 0;
    for l in ike.lines() {
        let mut c: Vec<String> = l.split(',').map(str::to_owned).collect();
        if !l.starts_with('#') && c.len() == 8 {
            c[2] = flip(&c[2]);
            c[3] = flip(&c[3]);
            n += 1;
        }
        out += &(c.join(",") + "\n");
    }
    assert!(n > 0, "no IKE SA in {}/ikev2_decryption_table:\n{ike}", from.display());
    fs::write(to.join("ikev2_decryption_table"), out).unwrap();
    let esp = fs::read_to_string(from.join("esp_sa")).unwrap();
    let mut out = String::new();
    let mut n = 0;
    for l in esp.lines() {
        let mut c: Vec<String> = l.split(',').map(str::to_owned).collect();
        if !l.starts_with('#') && c.len() == 8 {
            c[5] = format!("\"{}\"", flip(c[5].trim_matches('"')));
            n += 1;
        }
        out += &(c.join(",") + "\n");
    }
    assert!(n >= 2, "fewer than two ESP SAs in {}/esp_sa:\n{esp}", from.display());
    fs::write(to.join("esp_sa"), out).unwrap();
    fs::copy(from.join("preferences"), to.join("preferences")).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn run_case(test: &str, ike: &str, esp: &str, initiator: &str) {
    if !require_root(test) {
        return;
    }
    need_strongswan();
    need_tshark();
    let t0 = Instant::now();
    let tmp = TempDir::new(test);
    let pcap = tmp.path().join("cap.pcap");
    let (lab, out) = Lab::up(
        'k',
        &[
            "--ike",
            "2",
            "--peer",
            "strongswan",
            "--ike-proposal",
            ike,
            "--esp",
            esp,
            "--initiator",
            initiator,
            "--export-keys",
            "--capture",
            pcap.to_str().unwrap(),
            "--no-ping",
        ],
    );
    let keys = lab.dir().join("keys-gw1");
    let cmd = format!("WIRESHARK_CONFIG_DIR={} tshark -r {}", keys.display(), pcap.display());
    assert!(out.contains(&cmd), "lab up does not say `{cmd}`:\n{out}");
    let o = lab.exec(
        "h1",
        &["ping", "-n", "-c", &PINGS.to_string(), "-i", "0.2", "-W", "2", HOST[1]],
    );
    assert!(o.status.success(), "ping h1 -> h2: {}\n{}", text(&o), gw1_log(&lab));
    // `lab down` removes the state directory with the keys: copy them first.
    let good = tmp.path().join("keys");
    copy_dir(&keys, &good);
    let log = gw1_log(&lab);
    let down = lab.down();
    assert!(
        down.contains("packets in"),
        "lab down does not report the capture:\n{down}"
    );

    let init = if initiator == "gw1" { 0 } else { 1 };
    let frames = tshark(&pcap, &good, &[]);
    let summary = check(&frames, init).unwrap_or_else(|e| {
        panic!(
            "{test}: WIRESHARK_CONFIG_DIR=<keys-gw1> tshark does not decrypt the capture:\n{e}\n\
             key files:\n{}\nframes:\n{frames:#?}\ngw1.log:\n{log}",
            ["ikev2_decryption_table", "esp_sa", "preferences"]
                .iter()
                .map(|f| format!("--- {f}:\n{}", fs::read_to_string(good.join(f)).unwrap_or_default()))
                .collect::<String>()
        )
    });
    // The ICVs, with tshark's ESP authentication check on.
    let checked = tshark(&pcap, &good, &["-o", "esp.enable_authentication_check:TRUE"]);
    let esp_frames: Vec<&Frame> = checked.iter().filter(|f| f.is_esp()).collect();
    assert!(
        esp_frames.iter().all(|f| f.icv_good && !f.icv_bad),
        "{test}: ESP frames whose ICV tshark does not call good: {esp_frames:#?}"
    );

    // Negative controls: no keys at all; keys off by one bit.
    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    check_nothing_decrypted(&tshark(&pcap, &empty, &[]), "an empty WIRESHARK_CONFIG_DIR");
    let bad = tmp.path().join("bad-keys");
    corrupt_keys(&good, &bad);
    let wrong = tshark(&pcap, &bad, &[]);
    check_nothing_decrypted(&wrong, "encryption keys off by one bit");
    assert!(check(&wrong, init).is_err());
    println!(
        "{test} ({ike} / {esp}, {initiator} initiates) [{:.1} s]: {summary}; ICVs good; nothing decrypted \
         without keys or with one bit off",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn key_export_gcm_gw1_initiates() {
    run_case(
        "key_export_gcm_gw1_initiates",
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
        "gw1",
    );
}

#[test]
fn key_export_gcm_gw2_initiates() {
    run_case(
        "key_export_gcm_gw2_initiates",
        "aes128gcm16-prfsha256-x25519",
        "aes128gcm16",
        "gw2",
    );
}

#[test]
fn key_export_cbc_gw1_initiates() {
    run_case(
        "key_export_cbc_gw1_initiates",
        "aes128-sha256-modp2048",
        "aes128-sha256",
        "gw1",
    );
}

#[test]
fn key_export_cbc_gw2_initiates() {
    run_case(
        "key_export_cbc_gw2_initiates",
        "aes128-sha256-modp2048",
        "aes128-sha256",
        "gw2",
    );
}

/// `ikeda lab capture`: refuses what it cannot capture; records a node's
/// WAN in the foreground until Ctrl-C (SIGINT to its process group, as a
/// terminal sends it) or --duration, with every packet in the file.
#[test]
fn lab_capture_foreground() {
    if !require_root("lab_capture_foreground") {
        return;
    }
    need_tshark();
    let tmp = TempDir::new("lab_capture_foreground");
    let pcap = tmp.path().join("gw2.pcap");
    let p = pcap.to_str().unwrap();
    let down = unique_name('c');
    let o = ikeda(&["lab", "capture", "--name", &down, "gw1", p]);
    assert!(!o.status.success() && text(&o).contains("is not up"), "{}", text(&o));

    let (lab, _) = Lab::up('c', &["--no-ping"]);
    for (node, why) in [("h1", "is a host"), ("gw3", "unknown node"), ("nat", "no NAT node")] {
        let o = ikeda(&["lab", "capture", "--name", &lab.name, node, p]);
        assert!(
            !o.status.success() && text(&o).contains(why),
            "capture on {node}: {}",
            text(&o)
        );
    }

    // Until Ctrl-C.
    let cap = LabCapture::start(&lab, "gw2", &pcap);
    let o = lab.exec(
        "h1",
        &["ping", "-n", "-c", &PINGS.to_string(), "-i", "0.2", "-W", "2", HOST[1]],
    );
    assert!(o.status.success(), "ping: {}", text(&o));
    let stdout = cap.stop();
    let n: usize = stdout
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no packet count: {stdout}"));
    let frames = tshark(&pcap, tmp.path(), &[]);
    assert_eq!(n, frames.len(), "lab capture's count vs tshark: {stdout}");
    let esp = frames.iter().filter(|f| f.is_esp()).count();
    assert_eq!(esp, 2 * PINGS, "ESP frames on gw2's WAN: {frames:#?}");

    // Until --duration.
    let t0 = Instant::now();
    let o = ikeda(&["lab", "capture", "--name", &lab.name, "gw1", p, "--duration", "1"]);
    assert!(
        o.status.success() && text(&o).contains("packets written to"),
        "{}",
        text(&o)
    );
    assert!(
        t0.elapsed().as_secs_f64() < 10.0,
        "--duration 1 took {:?}",
        t0.elapsed()
    );
    lab.down();
}
