//! Key export: the files Wireshark reads to decrypt IKEv2 and ESP, and
//! ikeda's own key log. Off unless the daemon is given a directory.
//!
//! - `ikev2_decryption_table`: Wireshark's IKEv2 UAT, one SA per line:
//!   `SPIi,SPIr,SK_ei,SK_er,"encryption",SK_ai,SK_ar,"integrity"` (SPIs
//!   and keys as bare hex; AES-GCM keys include their 4-octet salt and the
//!   integrity column is `"NONE [RFC4306]"`).
//! - `ikev1_decryption_table`: Wireshark's IKEv1 UAT, one phase-1 SA per
//!   line: `InitiatorCookie,EncryptionKey` (bare hex; the key after the
//!   RFC 2409 App. B extension, cut to the cipher's key length). Wireshark
//!   derives the IVs itself.
//! - `esp_sa`: Wireshark's ESP UAT, one line per direction:
//!   `"IPv4","src","dst","0xSPI","encryption","0xkey","authentication","0xkey"`.
//! - `preferences`: `esp.enable_encryption_decode: TRUE`, written only if
//!   the directory has none, so that `WIRESHARK_CONFIG_DIR=<dir>` is all a
//!   reader needs.
//! - `ikeda-keys.jsonl`: one JSON object per SA, every key, SPI, address,
//!   algorithm and a timestamp (a superset of the above, for algorithms
//!   Wireshark lacks, such as ChaCha20-Poly1305, and for ikeda's decoder).
//!   An IKEv1 phase-1 SA has two lines: one when its keys are derived,
//!   one when it is established, which adds `phase1_last_block` (RFC 2409
//!   App. B: the seed of the IV of every Quick Mode and Informational
//!   exchange, which Wireshark can only take from Main Mode in the capture).
//!
//! The directory is created 0700 and every file 0600. The two UAT files
//! keep the lines that were there (an older capture may still need them)
//! and are rewritten whole (write, then rename) so Wireshark never reads a
//! half-written line. Keys hang off engine events, never off logging.

use ikeda_crypto::ike::{Encr, IkeSuite, Integ};
use ikeda_crypto::{EspAlgorithm, EspInteg, SecretBytes};
use ikeda_ike::ikev2::{ChildSaInfo, IkeKeyInfo, V1KeyInfo};
use serde_json::json;
use std::fs::{self, File};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

pub const IKEV2_TABLE: &str = "ikev2_decryption_table";
pub const IKEV1_TABLE: &str = "ikev1_decryption_table";
pub const ESP_TABLE: &str = "esp_sa";
pub const KEY_LOG: &str = "ikeda-keys.jsonl";

/// Lines kept per UAT file; the oldest go first.
const MAX_LINES: usize = 4096;

pub struct KeyExport {
    dir: PathBuf,
    ikev2: Vec<String>,
    ikev1: Vec<String>,
    esp: Vec<String>,
    log: File,
}

fn read_lines(path: &Path) -> Vec<String> {
    crate::private::read(path)
        .ok()
        .flatten()
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn hex(k: &SecretBytes) -> String {
    k.to_hex()
}

/// Wireshark's name for an IKEv2 cipher (packet-isakmp.c, vs_ikev2_encr_algs).
pub fn wireshark_ikev2_encr(e: Encr) -> Option<String> {
    match e {
        Encr::AesCbc { key_bits } => Some(format!("AES-CBC-{key_bits} [RFC3602]")),
        Encr::AesGcm16 { key_bits } => Some(format!("AES-GCM-{key_bits} with 16 octet ICV [RFC5282]")),
        Encr::TripleDesCbc => Some("3DES [RFC2451]".into()),
        Encr::DesCbc => Some("DES [RFC2405]".into()),
        Encr::ChaCha20Poly1305 => None,
    }
}

/// Wireshark's name for an IKEv2 integrity algorithm; AEAD has "NONE".
pub fn wireshark_ikev2_integ(i: Option<Integ>) -> &'static str {
    match i {
        None => "NONE [RFC4306]",
        Some(Integ::HmacMd5_96) => "HMAC_MD5_96 [RFC2403]",
        Some(Integ::HmacSha1_96) => "HMAC_SHA1_96 [RFC2404]",
        Some(Integ::HmacSha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
        Some(Integ::HmacSha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
        Some(Integ::HmacSha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
    }
}

/// Wireshark's ESP encryption and authentication names: the choices of the
/// `esp_sa` UAT (packet-ipsec.c in 4.0, esp_encryption_type_vals and
/// esp_authentication_type_vals), which tshark matches character for
/// character.
pub fn wireshark_esp(a: EspAlgorithm) -> Option<(&'static str, &'static str)> {
    let auth = |i: EspInteg| match i {
        EspInteg::HmacSha1_96 => "HMAC-SHA-1-96 [RFC2404]",
        EspInteg::HmacSha256_128 => "HMAC-SHA-256-128 [RFC4868]",
        EspInteg::HmacSha384_192 => "HMAC-SHA-384-192 [RFC4868]",
        EspInteg::HmacSha512_256 => "HMAC-SHA-512-256 [RFC4868]",
        EspInteg::HmacMd5_96 => "HMAC-MD5-96 [RFC2403]",
    };
    match a {
        EspAlgorithm::AesGcm16 { .. } => Some(("AES-GCM with 16 octet ICV [RFC4106]", "NULL")),
        EspAlgorithm::AesCbc { integ, .. } => Some(("AES-CBC [RFC3602]", auth(integ))),
        EspAlgorithm::TripleDesCbc { integ } => Some(("TripleDES-CBC [RFC2451]", auth(integ))),
        EspAlgorithm::ChaCha20Poly1305 => None,
    }
}

/// One `ikev2_decryption_table` line (or a comment when Wireshark has no
/// such cipher).
pub fn ikev2_line(k: &IkeKeyInfo) -> String {
    let s = &k.suite;
    let keys = &k.keys;
    match wireshark_ikev2_encr(s.encr) {
        Some(enc) => format!(
            "{:016x},{:016x},{},{},\"{enc}\",{},{},\"{}\"",
            k.spi_i,
            k.spi_r,
            hex(&keys.sk_ei),
            hex(&keys.sk_er),
            keys.sk_ai.as_ref().map(hex).unwrap_or_default(),
            keys.sk_ar.as_ref().map(hex).unwrap_or_default(),
            wireshark_ikev2_integ(s.integ),
        ),
        None => format!(
            "# {:016x}_i {:016x}_r: {} is not in Wireshark's IKEv2 table; keys in {KEY_LOG}",
            k.spi_i, k.spi_r, s.encr
        ),
    }
}

/// One `ikev1_decryption_table` line: initiator cookie, encryption key.
pub fn ikev1_line(k: &V1KeyInfo) -> String {
    format!("{:016x},{}", k.icookie, hex(&k.enc_key))
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// One `esp_sa` line for one direction (or a comment for ChaCha20).
pub fn esp_line(
    alg: EspAlgorithm,
    spi: u32,
    src: IpAddr,
    dst: IpAddr,
    enc: &SecretBytes,
    auth: Option<&SecretBytes>,
) -> String {
    match wireshark_esp(alg) {
        Some((e, a)) => format!(
            "\"{}\",\"{src}\",\"{dst}\",\"{spi:#010x}\",\"{e}\",\"0x{}\",\"{a}\",\"{}\"",
            family(src),
            hex(enc),
            auth.map(|k| format!("0x{}", hex(k))).unwrap_or_default(),
        ),
        None => format!("# SPI {spi:#010x} {src} -> {dst}: {alg} is not in Wireshark's ESP table; keys in {KEY_LOG}"),
    }
}

fn suite_json(s: &IkeSuite) -> serde_json::Value {
    json!({
        "encr": s.encr.name(),
        "integ": s.integ.map(|i| i.name()),
        "prf": s.prf.name(),
        "dh": s.dh.name(),
    })
}

impl KeyExport {
    /// Create the directory (0700) and files (0600); keep existing lines.
    pub fn open(dir: &Path) -> Result<KeyExport, String> {
        // Ours and 0700, or refused: whoever can write here could plant a
        // link where a key is about to be written.
        crate::private::ensure_dir(dir, "key export directory")?;
        let pref = dir.join("preferences");
        if fs::symlink_metadata(&pref).is_err() {
            let mut f = crate::private::create_new(&pref).map_err(|e| format!("{}: {e}", pref.display()))?;
            let _ = f.write_all(
                b"# Written by ikeda (key export): let Wireshark decrypt ESP with esp_sa.\n\
                  esp.enable_encryption_decode: TRUE\n",
            );
        }
        let log_path = dir.join(KEY_LOG);
        let log = crate::private::open_append(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut x = KeyExport {
            dir: dir.to_path_buf(),
            ikev2: read_lines(&dir.join(IKEV2_TABLE)),
            ikev1: read_lines(&dir.join(IKEV1_TABLE)),
            esp: read_lines(&dir.join(ESP_TABLE)),
            log,
        };
        // Create both tables now (with their old lines), so the files exist
        // and have the right mode before the first SA.
        x.write_table(IKEV2_TABLE)?;
        x.write_table(IKEV1_TABLE)?;
        x.write_table(ESP_TABLE)?;
        Ok(x)
    }

    fn write_table(&mut self, name: &str) -> Result<(), String> {
        let lines = match name {
            IKEV2_TABLE => &mut self.ikev2,
            IKEV1_TABLE => &mut self.ikev1,
            _ => &mut self.esp,
        };
        if lines.len() > MAX_LINES {
            let extra = lines.len() - MAX_LINES;
            lines.drain(..extra);
        }
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        crate::private::replace(&self.dir, name, text.as_bytes(), false)
            .map_err(|e| format!("{}: {e}", self.dir.join(name).display()))
    }

    fn log_json(&mut self, v: serde_json::Value) {
        let mut line = v.to_string();
        line.push('\n');
        if let Err(e) = self.log.write_all(line.as_bytes()) {
            tracing::warn!(target: "config", "key log {}: {e}", self.dir.join(KEY_LOG).display());
        }
    }

    /// An IKE SA was keyed.
    pub fn ike_sa(&mut self, k: &IkeKeyInfo) {
        self.ikev2.push(ikev2_line(k));
        if let Err(e) = self.write_table(IKEV2_TABLE) {
            tracing::warn!(target: "config", "key export: {e}");
        }
        let keys = &k.keys;
        self.log_json(json!({
            "time_ms": crate::dataplane::now_ms(),
            "type": "ikev2",
            "conn": k.conn,
            "spi_i": format!("{:016x}", k.spi_i),
            "spi_r": format!("{:016x}", k.spi_r),
            "role": if k.initiator { "initiator" } else { "responder" },
            "local": k.local.to_string(),
            "remote": k.remote.to_string(),
            "suite": suite_json(&k.suite),
            "sk_d": hex(&keys.sk_d),
            "sk_ai": keys.sk_ai.as_ref().map(hex),
            "sk_ar": keys.sk_ar.as_ref().map(hex),
            "sk_ei": hex(&keys.sk_ei),
            "sk_er": hex(&keys.sk_er),
            "sk_pi": hex(&keys.sk_pi),
            "sk_pr": hex(&keys.sk_pr),
        }));
    }

    /// An IKEv1 phase-1 SA was keyed or established (RFC 2409 §5):
    /// Wireshark's line (once), and every secret with the first phase-1 IV
    /// and, once established, the last phase-1 CBC block in the key log.
    pub fn ikev1_sa(&mut self, k: &V1KeyInfo) {
        let line = ikev1_line(k);
        if !self.ikev1.contains(&line) {
            self.ikev1.push(line);
            if let Err(e) = self.write_table(IKEV1_TABLE) {
                tracing::warn!(target: "config", "key export: {e}");
            }
        }
        let hex_bytes = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        self.log_json(json!({
            "time_ms": crate::dataplane::now_ms(),
            "type": "ikev1",
            "conn": k.conn,
            "icookie": format!("{:016x}", k.icookie),
            "rcookie": format!("{:016x}", k.rcookie),
            "role": if k.initiator { "initiator" } else { "responder" },
            "local": k.local.to_string(),
            "remote": k.remote.to_string(),
            "suite": suite_json(&k.suite),
            "skeyid": hex(&k.skeyid),
            "skeyid_d": hex(&k.skeyid_d),
            "skeyid_a": hex(&k.skeyid_a),
            "skeyid_e": hex(&k.skeyid_e),
            "enc_key": hex(&k.enc_key),
            "iv": hex_bytes(&k.iv),
            "phase1_last_block": k.phase1_last_block.as_deref().map(hex_bytes),
        }));
    }

    /// A CHILD SA was installed: both directions, with the outer addresses
    /// (and with UDP encapsulation the ports) as this gateway sees them.
    pub fn child_sa(&mut self, c: &ChildSaInfo, local: SocketAddr, remote: SocketAddr) {
        let dirs = [
            ("in", c.spi_in, remote, local, &c.enc_in, c.auth_in.as_ref()),
            ("out", c.spi_out, local, remote, &c.enc_out, c.auth_out.as_ref()),
        ];
        for (direction, spi, src, dst, enc, auth) in dirs {
            self.esp.push(esp_line(c.algorithm, spi, src.ip(), dst.ip(), enc, auth));
            self.log_json(json!({
                "time_ms": crate::dataplane::now_ms(),
                "type": "esp",
                "conn": c.conn,
                "direction": direction,
                "spi": format!("{spi:08x}"),
                "src": src.to_string(),
                "dst": dst.to_string(),
                "encap": if c.udp_encap { "udp" } else { "esp" },
                "algorithm": c.algorithm.name(),
                "esn": c.esn,
                "enc_key": hex(enc),
                "auth_key": auth.map(hex),
            }));
        }
        if let Err(e) = self.write_table(ESP_TABLE) {
            tracing::warn!(target: "config", "key export: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikeda_crypto::ike::{DhGroup, IkeKeys, Prf};

    fn sb(n: u8, len: usize) -> SecretBytes {
        SecretBytes::new(vec![n; len])
    }

    fn info(encr: Encr, integ: Option<Integ>) -> IkeKeyInfo {
        IkeKeyInfo {
            conn: "s2s".into(),
            spi_i: 0x0123456789abcdef,
            spi_r: 0xfedcba9876543210,
            initiator: true,
            suite: IkeSuite {
                encr,
                integ,
                prf: Prf::HmacSha256,
                dh: DhGroup::Curve25519,
            },
            keys: IkeKeys {
                sk_d: sb(1, 32),
                sk_ai: integ.map(|_| sb(2, 32)),
                sk_ar: integ.map(|_| sb(3, 32)),
                sk_ei: sb(4, 20),
                sk_er: sb(5, 20),
                sk_pi: sb(6, 32),
                sk_pr: sb(7, 32),
            },
            local: "192.168.50.11:500".parse().unwrap(),
            remote: "192.168.50.12:500".parse().unwrap(),
        }
    }

    /// The exact strings of Wireshark 4.0's UATs (checked by tests/oracle*.rs
    /// with tshark itself).
    #[test]
    fn lines_use_wiresharks_strings() {
        let gcm = ikev2_line(&info(Encr::AesGcm16 { key_bits: 128 }, None));
        assert_eq!(
            gcm,
            format!(
                "0123456789abcdef,fedcba9876543210,{},{},\"AES-GCM-128 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\"",
                "04".repeat(20),
                "05".repeat(20)
            )
        );
        let cbc = ikev2_line(&info(Encr::AesCbc { key_bits: 256 }, Some(Integ::HmacSha256_128)));
        assert!(cbc.contains("\"AES-CBC-256 [RFC3602]\""), "{cbc}");
        assert!(cbc.ends_with(&format!(
            "{},{},\"HMAC_SHA2_256_128 [RFC4868]\"",
            "02".repeat(32),
            "03".repeat(32)
        )));
        assert!(ikev2_line(&info(Encr::ChaCha20Poly1305, None)).starts_with('#'));

        let l = esp_line(
            EspAlgorithm::AesGcm16 { key_bits: 128 },
            0xc1234567,
            "192.168.50.12".parse().unwrap(),
            "192.168.50.11".parse().unwrap(),
            &sb(0xab, 20),
            None,
        );
        assert_eq!(
            l,
            format!(
                "\"IPv4\",\"192.168.50.12\",\"192.168.50.11\",\"0xc1234567\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{}\",\"NULL\",\"\"",
                "ab".repeat(20)
            )
        );
        let l = esp_line(
            EspAlgorithm::parse("aes128-sha1").unwrap(),
            0x100,
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            &sb(1, 16),
            Some(&sb(2, 20)),
        );
        assert!(
            l.starts_with("\"IPv6\",")
                && l.ends_with(&format!("\"HMAC-SHA-1-96 [RFC2404]\",\"0x{}\"", "02".repeat(20)))
        );
        // 3DES-CBC with HMAC-MD5-96: Wireshark 4.0's UAT spellings.
        let l = esp_line(
            EspAlgorithm::parse("3des-md5").unwrap(),
            0xc0000001,
            "192.168.50.11".parse().unwrap(),
            "192.168.50.12".parse().unwrap(),
            &sb(3, 24),
            Some(&sb(4, 16)),
        );
        assert_eq!(
            l,
            format!(
                "\"IPv4\",\"192.168.50.11\",\"192.168.50.12\",\"0xc0000001\",\"TripleDES-CBC [RFC2451]\",\"0x{}\",\"HMAC-MD5-96 [RFC2403]\",\"0x{}\"",
                "03".repeat(24),
                "04".repeat(16)
            )
        );
        assert_eq!(
            wireshark_esp(EspAlgorithm::parse("aes256-md5").unwrap()),
            Some(("AES-CBC [RFC3602]", "HMAC-MD5-96 [RFC2403]"))
        );
        assert_eq!(
            wireshark_esp(EspAlgorithm::parse("3des-sha256").unwrap()),
            Some(("TripleDES-CBC [RFC2451]", "HMAC-SHA-256-128 [RFC4868]"))
        );
        // RFC 4868's longer pair: the whole 48- and 64-byte keys go in.
        for (esp, auth, n) in [
            ("aes256-sha384", "HMAC-SHA-384-192 [RFC4868]", 48),
            ("aes256-sha512", "HMAC-SHA-512-256 [RFC4868]", 64),
        ] {
            let a = EspAlgorithm::parse(esp).unwrap();
            assert_eq!(wireshark_esp(a), Some(("AES-CBC [RFC3602]", auth)));
            let l = esp_line(
                a,
                0xc0000002,
                "192.168.50.11".parse().unwrap(),
                "192.168.50.12".parse().unwrap(),
                &sb(5, 32),
                Some(&sb(6, n)),
            );
            assert!(
                l.ends_with(&format!(
                    "\"AES-CBC [RFC3602]\",\"0x{}\",\"{auth}\",\"0x{}\"",
                    "05".repeat(32),
                    "06".repeat(n)
                )),
                "{l}"
            );
        }
    }

    #[test]
    fn files_are_0600_and_old_lines_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ikeda-keys-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        {
            let mut x = KeyExport::open(&dir).unwrap();
            x.ike_sa(&info(Encr::AesGcm16 { key_bits: 128 }, None));
        }
        let mut x = KeyExport::open(&dir).unwrap();
        x.ike_sa(&info(Encr::AesCbc { key_bits: 128 }, Some(Integ::HmacSha1_96)));
        let table = fs::read_to_string(dir.join(IKEV2_TABLE)).unwrap();
        assert_eq!(table.lines().count(), 2, "{table}");
        assert_eq!(fs::read_to_string(dir.join(KEY_LOG)).unwrap().lines().count(), 2);
        for f in [IKEV2_TABLE, ESP_TABLE, KEY_LOG, "preferences"] {
            let m = fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{f}");
        }
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Issue 10 point 7: a link planted at a key file's path is not
    /// followed (its target stays untouched), and a directory open to
    /// others is refused with a clear message.
    #[test]
    fn planted_links_are_not_followed_and_an_open_dir_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("ikeda-keys-links-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let dir = base.join("keys");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let victim = base.join("victim");
        fs::write(&victim, "untouched\n").unwrap();
        for f in [KEY_LOG, IKEV2_TABLE, "preferences"] {
            let _ = fs::remove_file(dir.join(f));
            std::os::unix::fs::symlink(&victim, dir.join(f)).unwrap();
            if let Ok(mut x) = KeyExport::open(&dir) {
                x.ike_sa(&info(Encr::AesGcm16 { key_bits: 128 }, None));
            }
            assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched\n", "{f}");
            let _ = fs::remove_file(dir.join(f));
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let e = KeyExport::open(&dir).err().unwrap();
        assert!(
            e.contains("key export directory") && e.contains("0777") && e.contains("0700"),
            "{e}"
        );
        let _ = fs::remove_dir_all(&base);
    }
}
