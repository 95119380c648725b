//! Key sources besides ikeda's own key log (issue 12 point 2), as text:
//! Wireshark's three decryption tables and strongSwan's charon log at
//! level 4 for `ike` and `chd`. Each parser turns lines into [`Record`]s;
//! `super::keyfiles` reads the files (bounded, zeroized) and feeds the
//! records into the `KeyStore`. Nothing here does I/O or knows the store,
//! so the fuzz targets compile this file alone.
//!
//! Errors name the line and the field, never a value: a key, a half of
//! one, or a line that holds one never reaches a message. Algorithm names,
//! SPIs, cookies, addresses and lengths are public and may be named.
//!
//! # Wireshark's tables (UAT files)
//!
//! One entry a line, fields separated by commas; text fields in double
//! quotes (Wireshark escapes `"`, `\` and unprintable bytes as `\xNN`),
//! byte fields as bare hex (`esp_sa` writes its keys and SPI as `0x...`
//! text). What ikeda's daemon writes (`crate::keys`) is the reference:
//!
//! - `ikev2_decryption_table`: `SPIi,SPIr,SK_ei,SK_er,"encryption",SK_ai,SK_ar,"integrity"`,
//!   names as Wireshark's IKEv2 UAT lists them (`AES-CBC-128 [RFC3602]`,
//!   `AES-GCM-128 with 16 octet ICV [RFC5282]`, `HMAC_SHA2_256_128 [RFC4868]`,
//!   `NONE [RFC4306]`).
//! - `ikev1_decryption_table`: `InitiatorCookie,EncryptionKey`. It has no
//!   cipher, hash or IV: Wireshark (and ikeda) take them from Main Mode
//!   messages 1-4 in the capture (RFC 2409 App. B).
//! - `esp_sa`: `"IPv4","src","dst","0xSPI","encryption","0xkey","authentication","0xkey"`
//!   (`AES-GCM with 16 octet ICV [RFC4106]`, `AES-CBC [RFC3602]`,
//!   `TripleDES-CBC [RFC2451]`; `HMAC-SHA-1-96 [RFC2404]`, `NULL`, ...).
//!
//! # charon's log at level 4
//!
//! Lines look like `02:59:56 07[IKE] <s2s|1> Sk_ei secret => 20 bytes @ 0x7f...`
//! (time format, syslog prefix and the `<name|unique id>` tag of
//! `ike_name = yes` vary), with the bytes in the lines after it as a hex
//! dump (`   0: 95 74 3F B6 ...  .t?."=..`). What is taken, and where its
//! SA's identity comes from:
//!
//! - IKEv2 (keymat_v2): `Sk_ai/Sk_ar/Sk_ei/Sk_er secret`; the algorithms
//!   from the `selected proposal: IKE:...` line before them (cfg level 1);
//!   the SPIs from the NAT-D input charon dumps in IKE_SA_INIT
//!   (`natd_chunk`: SPIi | SPIr | address | port, RFC 7296 §2.23). An IKE
//!   SA keyed by a CREATE_CHILD_SA rekey has no such line: its keys are
//!   left without SPIs, and the reader of the capture binds them to the
//!   SA whose messages they authenticate (the ICV decides).
//! - IKEv1 (keymat_v1): `encryption key Ka` and `initial IV`
//!   (`hash(g^xi | g^xr)`, RFC 2409 App. B), the proposal line, and the
//!   cookies from the NAT-D input (CKY-I | CKY-R | address | port, RFC 3947
//!   §3.2). The last `next IV for MID 0` is kept too: the last CBC block
//!   of phase 1, from which every later exchange's IV is derived.
//! - CHILD SAs (both versions): `encryption/integrity initiator/responder
//!   key`, the `selected proposal: ESP:...` line, and the SPI and addresses
//!   of each direction from `adding inbound ESP SA` / `  SPI 0x..., src A
//!   dst B`. The initiator's keys protect what the initiator of the
//!   exchange sends (RFC 7296 §2.17, RFC 2409 §5.5): charon derives them
//!   while it handles the exchange's last message, so the last `parsed X
//!   request|response` of the same job (a job starts at `received packet`
//!   on a thread) says which side this charon was.
//!
//! State is kept per IKE SA (the unique id of the tag; without tags, one
//! for the whole log) and per thread (a job runs on one thread). Without
//! tags, an SPI or cookie is only taken from the same job as the keys.

use ikeda_crypto::ike::{DhGroup, Encr, IkeSuite, Integ, Prf};
use ikeda_crypto::{EspAlgorithm, EspInteg, SecretBytes};
use std::collections::HashMap;
use std::net::IpAddr;
use zeroize::Zeroizing;

/// What a key file is, judged from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ikeda's JSON key log (`ikeda-keys.jsonl`).
    KeyLog,
    Ikev2Table,
    Ikev1Table,
    EspTable,
    CharonLog,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::KeyLog => "ikeda's key log",
            Format::Ikev2Table => "Wireshark's ikev2_decryption_table",
            Format::Ikev1Table => "Wireshark's ikev1_decryption_table",
            Format::EspTable => "Wireshark's esp_sa",
            Format::CharonLog => "a charon log",
        }
    }
}

/// Lines of the head looked at to recognise a format.
const DETECT_LINES: usize = 4096;

/// The format of a key file from its first bytes (`None`: none we know).
/// A charon line anywhere in the head makes it a charon log (a syslog
/// file holds other programs' lines too); otherwise the first line that
/// is neither blank nor a `#` comment decides.
pub fn detect(head: &str) -> Option<Format> {
    let mut first = None;
    for line in head.lines().take(DETECT_LINES) {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if charon_line(line).is_some() {
            return Some(Format::CharonLog);
        }
        first.get_or_insert(t);
    }
    let t = first?;
    if t.starts_with('{') {
        return Some(Format::KeyLog);
    }
    let f = uat_fields(t).ok()?;
    let word = f.first().map(|s| s.to_ascii_lowercase()).unwrap_or_default();
    match f.len() {
        2 if hex_u64(&f[0]).is_some() => Some(Format::Ikev1Table),
        8 if hex_u64(&f[0]).is_some() && hex_u64(&f[1]).is_some() => Some(Format::Ikev2Table),
        n if n >= 8 && matches!(word.as_str(), "ipv4" | "ipv6" | "any" | "*") => Some(Format::EspTable),
        _ => None,
    }
}

// ---- records ------------------------------------------------------------------

/// One key (set) a source gave.
pub enum Record {
    Ikev2(V2Record),
    Ikev1(V1Record),
    /// Wireshark's IKEv1 table: a cookie and a key, nothing else.
    Ikev1Cookie(CookieKey),
    Esp(EspRecord),
}

/// An IKEv2 SA's SK_e/SK_a (RFC 7296 §2.14).
pub struct V2Record {
    /// Where it was read (1-based line of the key).
    pub line: usize,
    /// (SPIi, SPIr); `None` when the source does not say (an IKE SA rekey
    /// in charon's log).
    pub spis: Option<(u64, u64)>,
    pub encr: Encr,
    pub integ: Option<Integ>,
    /// Only charon's log names them; decryption needs neither.
    pub prf: Option<Prf>,
    pub dh: Option<DhGroup>,
    pub sk_ei: SecretBytes,
    pub sk_er: SecretBytes,
    pub sk_ai: Option<SecretBytes>,
    pub sk_ar: Option<SecretBytes>,
}

/// An IKEv1 phase-1 SA with all it takes to decrypt Main Mode 5/6 on.
pub struct V1Record {
    pub line: usize,
    pub icookie: u64,
    pub rcookie: u64,
    pub suite: IkeSuite,
    /// Ka: SKEYID_e extended and cut to the cipher's key (RFC 2409 App. B).
    pub enc_key: SecretBytes,
    /// The IV of Main Mode message 5: hash(g^xi | g^xr), cut.
    pub iv: Vec<u8>,
    /// The last CBC block of phase 1 (charon's last `next IV for MID 0`).
    pub phase1_last_iv: Option<Vec<u8>>,
}

pub struct CookieKey {
    pub line: usize,
    pub icookie: u64,
    pub enc_key: SecretBytes,
}

/// One direction of a CHILD SA.
pub struct EspRecord {
    pub line: usize,
    pub spi: u32,
    /// Outer addresses; `None` for Wireshark's `*`.
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub algorithm: EspAlgorithm,
    pub esn: bool,
    pub enc: SecretBytes,
    pub auth: Option<SecretBytes>,
    /// The log did not say which side derived it: this is one of the two
    /// candidate keys for the SPI (the ICV picks).
    pub guessed: bool,
}

// ---- Wireshark's tables ---------------------------------------------------------

/// Fields of one UAT line at most (esp_sa has 8, later Wireshark a few more).
const MAX_UAT_FIELDS: usize = 16;

/// Split one UAT line into its fields, unquoting text fields. Every field
/// is held zeroized: key fields are among them.
pub fn uat_fields(line: &str) -> Result<Vec<Zeroizing<String>>, String> {
    let mut out: Vec<Zeroizing<String>> = Vec::new();
    let mut it = line.trim_end_matches(['\r', '\n']).chars().peekable();
    loop {
        if out.len() >= MAX_UAT_FIELDS {
            return Err(format!("more than {MAX_UAT_FIELDS} fields"));
        }
        while it.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            it.next();
        }
        let mut f = Zeroizing::new(String::new());
        if it.peek() == Some(&'"') {
            it.next();
            loop {
                match it.next() {
                    None => return Err(format!("field {}: a quoted text that does not end", out.len() + 1)),
                    Some('"') => break,
                    Some('\\') => match it.next() {
                        Some('x') => {
                            let hi = it.next().and_then(|c| c.to_digit(16));
                            let lo = it.next().and_then(|c| c.to_digit(16));
                            match (hi, lo) {
                                (Some(h), Some(l)) => {
                                    let b = (h * 16 + l) as u8;
                                    f.push(if b.is_ascii() { b as char } else { char::REPLACEMENT_CHARACTER });
                                }
                                _ => return Err(format!("field {}: a bad \\x escape", out.len() + 1)),
                            }
                        }
                        Some(c) => f.push(c),
                        None => return Err(format!("field {}: a quoted text that does not end", out.len() + 1)),
                    },
                    Some(c) => f.push(c),
                }
            }
            while it.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                it.next();
            }
            match it.next() {
                None => {
                    out.push(f);
                    return Ok(out);
                }
                Some(',') => out.push(f),
                Some(_) => return Err(format!("field {}: text after its closing quote", out.len() + 1)),
            }
        } else {
            let mut end = true;
            for c in it.by_ref() {
                if c == ',' {
                    end = false;
                    break;
                }
                f.push(c);
            }
            let t = Zeroizing::new(f.trim().to_string());
            out.push(t);
            if end {
                return Ok(out);
            }
        }
    }
}

/// 16 hex digits (an SPI or cookie), with or without `0x`.
fn hex_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// A key field: hex, with or without `0x`; empty is `None`.
fn key_field(f: &str, what: &str) -> Result<Option<SecretBytes>, String> {
    if f.trim().is_empty() {
        return Ok(None);
    }
    let k = SecretBytes::from_hex(f).map_err(|e| format!("{what}: not hex ({e})"))?;
    if k.len() > 256 {
        return Err(format!("{what}: {} bytes, longer than any key", k.len()));
    }
    Ok(Some(k))
}

/// An algorithm name as a message may quote it (bounded, printable).
fn quoted(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A Wireshark algorithm name without its `[RFC...]` tag.
fn bare(name: &str) -> &str {
    name.split(" [").next().unwrap_or(name).trim()
}

fn comment_or_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

fn need_len(what: &str, k: &SecretBytes, n: usize, alg: &str) -> Result<(), String> {
    if k.len() == n {
        Ok(())
    } else {
        Err(format!("{what}: {} bytes, {alg} needs {n}", k.len()))
    }
}

/// One `ikev2_decryption_table` line (`Ok(None)`: blank or a comment).
pub fn ikev2_table_line(line_no: usize, line: &str) -> Result<Option<Record>, String> {
    if comment_or_blank(line) {
        return Ok(None);
    }
    let f = uat_fields(line)?;
    if f.len() != 8 {
        return Err(format!(
            "{} fields, not the 8 of SPIi,SPIr,SK_ei,SK_er,encryption,SK_ai,SK_ar,integrity",
            f.len()
        ));
    }
    let spi_i = hex_u64(&f[0]).ok_or("SPIi: not 16 hex digits")?;
    let spi_r = hex_u64(&f[1]).ok_or("SPIr: not 16 hex digits")?;
    let encr = match bare(&f[4]) {
        "AES-CBC-128" => Encr::AesCbc { key_bits: 128 },
        "AES-CBC-256" => Encr::AesCbc { key_bits: 256 },
        "AES-GCM-128 with 16 octet ICV" => Encr::AesGcm16 { key_bits: 128 },
        "AES-GCM-256 with 16 octet ICV" => Encr::AesGcm16 { key_bits: 256 },
        "3DES" => Encr::TripleDesCbc,
        "DES" => Encr::DesCbc,
        other => return Err(format!("encryption: \"{}\" is not a cipher ikeda decrypts", quoted(other))),
    };
    let integ = match bare(&f[7]) {
        "NONE" => None,
        other => Some(
            Integ::from_name(&format!("AUTH_{other}"))
                .ok_or_else(|| format!("integrity: \"{}\" is not one ikeda knows", quoted(other)))?,
        ),
    };
    if encr.is_aead() != integ.is_none() {
        return Err(format!(
            "integrity: {} takes {}",
            encr.strongswan_name(),
            if encr.is_aead() { "\"NONE\"" } else { "an HMAC" }
        ));
    }
    let sk_ei = key_field(&f[2], "SK_ei")?.ok_or("SK_ei: empty")?;
    let sk_er = key_field(&f[3], "SK_er")?.ok_or("SK_er: empty")?;
    let sk_ai = key_field(&f[5], "SK_ai")?;
    let sk_ar = key_field(&f[6], "SK_ar")?;
    let alg = encr.strongswan_name();
    need_len("SK_ei", &sk_ei, encr.key_len(), &alg)?;
    need_len("SK_er", &sk_er, encr.key_len(), &alg)?;
    if let Some(i) = integ {
        for (what, k) in [("SK_ai", &sk_ai), ("SK_ar", &sk_ar)] {
            let k = k.as_ref().ok_or_else(|| format!("{what}: empty, {} needs a key", i.strongswan_name()))?;
            need_len(what, k, i.key_len(), i.strongswan_name())?;
        }
    }
    Ok(Some(Record::Ikev2(V2Record {
        line: line_no,
        spis: Some((spi_i, spi_r)),
        encr,
        integ,
        prf: None,
        dh: None,
        sk_ei,
        sk_er,
        sk_ai: integ.and(sk_ai),
        sk_ar: integ.and(sk_ar),
    })))
}

/// One `ikev1_decryption_table` line.
pub fn ikev1_table_line(line_no: usize, line: &str) -> Result<Option<Record>, String> {
    if comment_or_blank(line) {
        return Ok(None);
    }
    let f = uat_fields(line)?;
    if f.len() != 2 {
        return Err(format!(
            "{} fields, not the 2 of InitiatorCookie,EncryptionKey",
            f.len()
        ));
    }
    let icookie = hex_u64(&f[0]).ok_or("initiator cookie: not 16 hex digits")?;
    let enc_key = key_field(&f[1], "encryption key")?.ok_or("encryption key: empty")?;
    if enc_key.len() < 8 {
        return Err(format!("encryption key: {} bytes, shorter than any cipher's", enc_key.len()));
    }
    Ok(Some(Record::Ikev1Cookie(CookieKey {
        line: line_no,
        icookie,
        enc_key,
    })))
}

/// One `esp_sa` line.
pub fn esp_table_line(line_no: usize, line: &str) -> Result<Option<Record>, String> {
    if comment_or_blank(line) {
        return Ok(None);
    }
    let f = uat_fields(line)?;
    if f.len() < 8 {
        return Err(format!(
            "{} fields, not the 8 of protocol,source,destination,SPI,encryption,key,authentication,key",
            f.len()
        ));
    }
    let addr = |s: &str, what: &str| -> Result<Option<IpAddr>, String> {
        match s.trim() {
            "" | "*" => Ok(None),
            a => a
                .parse()
                .map(Some)
                .map_err(|_| format!("{what}: \"{}\" is not an address (ikeda takes one address or *)", quoted(a))),
        }
    };
    let src = addr(&f[1], "source")?;
    let dst = addr(&f[2], "destination")?;
    let spi_text = f[3].trim();
    let spi = if spi_text == "*" || spi_text.is_empty() {
        return Err("SPI: a wildcard; ikeda finds an ESP SA's key by its SPI".into());
    } else if let Some(h) = spi_text.strip_prefix("0x").or_else(|| spi_text.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).map_err(|_| "SPI: not 8 hex digits after 0x")?
    } else {
        spi_text.parse::<u32>().map_err(|_| "SPI: not a number")?
    };
    let enc = key_field(&f[5], "encryption key")?.ok_or("encryption key: empty")?;
    let auth_key = key_field(&f[7], "authentication key")?;
    let integ = match bare(&f[6]) {
        "NULL" => None,
        "HMAC-SHA-1-96" => Some(EspInteg::HmacSha1_96),
        "HMAC-SHA-256-128" => Some(EspInteg::HmacSha256_128),
        "HMAC-SHA-384-192" => Some(EspInteg::HmacSha384_192),
        "HMAC-SHA-512-256" => Some(EspInteg::HmacSha512_256),
        "HMAC-MD5-96" => Some(EspInteg::HmacMd5_96),
        other => {
            return Err(format!(
                "authentication: \"{}\" is not one ikeda checks",
                quoted(other)
            ))
        }
    };
    let cbc_bits = |what: &str| match enc.len() {
        16 => Ok(128),
        32 => Ok(256),
        n => Err(format!("encryption key: {n} bytes, {what} takes 16 or 32")),
    };
    let algorithm = match (bare(&f[4]), integ) {
        ("AES-GCM with 16 octet ICV", None) => match enc.len() {
            20 => EspAlgorithm::AesGcm16 { key_bits: 128 },
            36 => EspAlgorithm::AesGcm16 { key_bits: 256 },
            n => {
                return Err(format!(
                    "encryption key: {n} bytes, AES-GCM takes 20 or 36 (with the 4-byte salt)"
                ))
            }
        },
        ("AES-GCM with 16 octet ICV", Some(_)) => return Err("authentication: AES-GCM takes \"NULL\"".into()),
        ("AES-CBC", Some(integ)) => EspAlgorithm::AesCbc {
            key_bits: cbc_bits("AES-CBC")?,
            integ,
        },
        ("TripleDES-CBC", Some(integ)) => EspAlgorithm::TripleDesCbc { integ },
        ("AES-CBC" | "TripleDES-CBC", None) => {
            return Err("authentication: \"NULL\" with a CBC cipher (ikeda decrypts ESP with integrity only)".into())
        }
        (other, _) => return Err(format!("encryption: \"{}\" is not a cipher ikeda decrypts", quoted(other))),
    };
    need_len("encryption key", &enc, algorithm.enc_key_len(), &algorithm.strongswan_name())?;
    let auth = match integ {
        Some(i) => {
            let k = auth_key.ok_or("authentication key: empty")?;
            need_len("authentication key", &k, i.key_len(), i.strongswan_name())?;
            Some(k)
        }
        None => None,
    };
    Ok(Some(Record::Esp(EspRecord {
        line: line_no,
        spi,
        src,
        dst,
        algorithm,
        esn: false,
        enc,
        auth,
        guessed: false,
    })))
}

// ---- charon's log ---------------------------------------------------------------

/// One charon log line, split: thread, group (`IKE`), the IKE SA tag of
/// `ike_name = yes` (without `<>`), and the message.
pub struct CharonLine<'a> {
    pub thread: u32,
    pub group: &'a str,
    pub tag: Option<&'a str>,
    pub msg: &'a str,
}

/// Find charon's `NN[GRP] ` in a line, whatever comes before it.
pub fn charon_line(line: &str) -> Option<CharonLine<'_>> {
    let b = line.as_bytes();
    let mut from = 0;
    while let Some(off) = line.get(from..)?.find('[') {
        let p = from + off;
        from = p + 1;
        let grp = b.get(p + 1..p + 4)?;
        if !grp.iter().all(u8::is_ascii_uppercase) || b.get(p + 4) != Some(&b']') {
            continue;
        }
        if !matches!(b.get(p + 5), None | Some(b' ')) {
            continue;
        }
        let digits = b[..p].iter().rev().take_while(|c| c.is_ascii_digit()).count();
        let start = p - digits;
        if !(2..=6).contains(&digits) || (start > 0 && b[start - 1] != b' ') {
            continue;
        }
        let thread = line[start..p].parse().ok()?;
        let group = &line[p + 1..p + 4];
        let mut msg = line.get(p + 6..).unwrap_or("");
        let mut tag = None;
        if let Some(rest) = msg.strip_prefix('<') {
            if let Some(end) = rest.get(..rest.len().min(256)).and_then(|h| h.find("> ")) {
                tag = Some(&rest[..end]);
                msg = &rest[end + 2..];
            } else if let Some(t) = rest.strip_suffix('>') {
                tag = Some(t);
                msg = "";
            }
        }
        return Some(CharonLine {
            thread,
            group,
            tag,
            msg,
        });
    }
    None
}

/// The hex dumps taken from charon's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dump {
    SkD,
    SkAi,
    SkAr,
    SkEi,
    SkEr,
    Skeyid,
    Ka,
    InitialIv,
    NextIvMid0,
    Natd,
    EncI,
    EncR,
    IntegI,
    IntegR,
}

impl Dump {
    fn from_name(n: &str) -> Option<Dump> {
        Some(match n {
            "Sk_d secret" => Dump::SkD,
            "Sk_ai secret" => Dump::SkAi,
            "Sk_ar secret" => Dump::SkAr,
            "Sk_ei secret" => Dump::SkEi,
            "Sk_er secret" => Dump::SkEr,
            "SKEYID" => Dump::Skeyid,
            "encryption key Ka" => Dump::Ka,
            "initial IV" => Dump::InitialIv,
            "next IV for MID 0" => Dump::NextIvMid0,
            "natd_chunk" => Dump::Natd,
            "encryption initiator key" => Dump::EncI,
            "encryption responder key" => Dump::EncR,
            "integrity initiator key" => Dump::IntegI,
            "integrity responder key" => Dump::IntegR,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Dump::SkD => "Sk_d secret",
            Dump::SkAi => "Sk_ai secret",
            Dump::SkAr => "Sk_ar secret",
            Dump::SkEi => "Sk_ei secret",
            Dump::SkEr => "Sk_er secret",
            Dump::Skeyid => "SKEYID",
            Dump::Ka => "encryption key Ka",
            Dump::InitialIv => "initial IV",
            Dump::NextIvMid0 => "next IV for MID 0",
            Dump::Natd => "natd_chunk",
            Dump::EncI => "encryption initiator key",
            Dump::EncR => "encryption responder key",
            Dump::IntegI => "integrity initiator key",
            Dump::IntegR => "integrity responder key",
        }
    }
}

/// Longest dump collected (keys are at most 64 bytes, a NAT-D input 34).
const MAX_DUMP: usize = 256;
/// IKE SAs and threads tracked at once; beyond, the oldest state is
/// dropped (a real charon has some dozen threads).
const MAX_CTX: usize = 65536;
const MAX_THREADS: usize = 4096;
/// Records one log may give, and problems it may report.
pub const MAX_RECORDS: usize = 1 << 20;
const MAX_PROBLEMS: usize = 200;

struct Collecting {
    what: Dump,
    want: usize,
    bytes: Zeroizing<Vec<u8>>,
    ctx: String,
    line: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Job {
    thread: u32,
    serial: u64,
}

/// What one job of one thread has seen.
#[derive(Default)]
struct ThreadState {
    serial: u64,
    /// The last `parsed X request|response` of this job: (exchange, response).
    parsed: Option<(String, bool)>,
    dump: Option<Collecting>,
    child: Option<ChildKeys>,
    /// `adding inbound ESP SA` (true) or outbound, awaiting its SPI line.
    sa_dir: Option<bool>,
    /// The last `selected proposal: IKE:` on this thread (a rekey's
    /// responder logs it under the old IKE SA's tag, the keys under the new).
    ike_prop: Option<(usize, String)>,
}

#[derive(Default)]
struct ChildKeys {
    line: usize,
    esp_prop: Option<(usize, String)>,
    /// This charon initiated the exchange that made the SA.
    initiator: Option<bool>,
    enc_i: Option<SecretBytes>,
    enc_r: Option<SecretBytes>,
    integ_i: Option<SecretBytes>,
    integ_r: Option<SecretBytes>,
}

#[derive(Default)]
struct V2Partial {
    line: usize,
    sk_ai: Option<SecretBytes>,
    sk_ar: Option<SecretBytes>,
    sk_ei: Option<SecretBytes>,
}

struct V1Partial {
    line: usize,
    job: Job,
    suite: Result<IkeSuite, String>,
    ka: Option<SecretBytes>,
    iv: Option<Vec<u8>>,
}

/// What is known of one IKE SA (or, without tags, of the whole log).
#[derive(Default)]
struct Ctx {
    ike_prop: Option<(usize, String)>,
    esp_prop: Option<(usize, String)>,
    last_exchange: Option<String>,
    /// (first 8 bytes, next 8 bytes) of the last NAT-D input, and its job.
    natd: Option<(u64, u64, Job)>,
    v2: Option<V2Partial>,
    v1: Option<V1Partial>,
    /// Complete IKEv1 keys still waiting for their cookies.
    v1_waiting: Option<V1Partial>,
    /// The record of this SA's IKEv1 keys (for `next IV for MID 0`).
    v1_record: Option<usize>,
}

/// charon's log, fed line by line.
#[derive(Default)]
pub struct CharonLog {
    ctxs: HashMap<String, Ctx>,
    threads: HashMap<u32, ThreadState>,
    pub records: Vec<Record>,
    pub problems: Vec<String>,
    /// Key dumps seen (whether or not they made a record).
    pub keys_seen: usize,
    /// Lines that were charon's.
    pub charon_lines: usize,
    problems_dropped: usize,
}

impl CharonLog {
    pub fn new() -> CharonLog {
        CharonLog::default()
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        } else {
            self.problems_dropped += 1;
        }
    }

    fn push(&mut self, r: Record) -> Option<usize> {
        if self.records.len() >= MAX_RECORDS {
            self.problem(format!("more than {MAX_RECORDS} keys: the rest is skipped"));
            return None;
        }
        self.records.push(r);
        Some(self.records.len() - 1)
    }

    /// One line (1-based `n`), without its end of line.
    pub fn line(&mut self, n: usize, text: &str) {
        let Some(l) = charon_line(text) else { return };
        self.charon_lines += 1;
        let ctx_key = match l.tag {
            Some(t) => t.rsplit('|').next().unwrap_or(t).to_string(),
            None => String::new(),
        };
        if !self.threads.contains_key(&l.thread) && self.threads.len() >= MAX_THREADS {
            self.threads.clear();
        }
        if !self.ctxs.contains_key(&ctx_key) && self.ctxs.len() >= MAX_CTX {
            self.ctxs.clear();
        }
        // A hex dump row of the dump this thread is collecting.
        if let Some(row) = dump_row(l.msg) {
            self.dump_row(n, l.thread, row);
            return;
        }
        let th = self.threads.entry(l.thread).or_default();
        if let Some(c) = th.dump.take() {
            let what = c.what.name();
            self.problem(format!(
                "line {}: the hex dump of `{what}` ends after {} of {} bytes",
                c.line,
                c.bytes.len(),
                c.want
            ));
        }
        let th = self.threads.entry(l.thread).or_default();
        if let Some((name, len)) = dump_header(l.msg) {
            if let Some(what) = Dump::from_name(name) {
                if len > MAX_DUMP || len == 0 {
                    return;
                }
                th.dump = Some(Collecting {
                    what,
                    want: len,
                    bytes: Zeroizing::new(Vec::with_capacity(len)),
                    ctx: ctx_key,
                    line: n,
                });
            }
            return;
        }
        let msg = l.msg.trim();
        match l.group {
            "NET" if msg.starts_with("received packet") => {
                th.serial += 1;
                th.parsed = None;
                th.child = None;
                th.sa_dir = None;
            }
            "ENC" => {
                let (parsed, rest) = if let Some(r) = msg.strip_prefix("parsed ") {
                    (true, r)
                } else if let Some(r) = msg.strip_prefix("generating ") {
                    (false, r)
                } else {
                    return;
                };
                let mut w = rest.split_whitespace();
                let (Some(exchange), Some(kind)) = (w.next(), w.next()) else { return };
                if kind != "request" && kind != "response" {
                    return;
                }
                let exchange = exchange.chars().take(64).collect::<String>();
                if parsed {
                    th.parsed = Some((exchange.clone(), kind == "response"));
                }
                self.ctxs.entry(ctx_key).or_default().last_exchange = Some(exchange);
            }
            "CFG" => {
                let Some(p) = msg.strip_prefix("selected proposal: ") else { return };
                let p: String = p.chars().take(256).collect();
                if p.starts_with("IKE:") {
                    th.ike_prop = Some((n, p.clone()));
                    self.ctxs.entry(ctx_key).or_default().ike_prop = Some((n, p));
                } else if p.starts_with("ESP:") {
                    self.ctxs.entry(ctx_key).or_default().esp_prop = Some((n, p));
                }
            }
            "CHD" => {
                if let Some(d) = msg.strip_prefix("adding ").or_else(|| msg.strip_prefix("registering ")) {
                    th.sa_dir = match d {
                        "inbound ESP SA" => Some(true),
                        "outbound ESP SA" => Some(false),
                        _ => None,
                    };
                } else if let Some(s) = msg.strip_prefix("SPI 0x") {
                    if let Some(inbound) = th.sa_dir.take() {
                        self.esp_sa(n, l.thread, inbound, s);
                    }
                }
            }
            _ => {}
        }
    }

    fn dump_row(&mut self, n: usize, thread: u32, row: (usize, &str)) {
        let Some(th) = self.threads.get_mut(&thread) else { return };
        let Some(c) = th.dump.as_mut() else { return };
        let (offset, hex) = row;
        let take = (c.want - c.bytes.len()).min(16);
        if offset != c.bytes.len() || !push_hex(&mut c.bytes, hex, take) {
            let (what, line) = (c.what.name(), c.line);
            th.dump = None;
            self.problem(format!("line {n}: a row of the hex dump of `{what}` (line {line}) does not read"));
            return;
        }
        if c.bytes.len() == c.want {
            let c = th.dump.take().expect("collecting");
            let job = Job {
                thread,
                serial: th.serial,
            };
            self.dumped(c, job);
        }
    }

    /// A whole dump: file it with its SA.
    fn dumped(&mut self, c: Collecting, job: Job) {
        let Collecting {
            what,
            mut bytes,
            ctx: ctx_key,
            line,
            ..
        } = c;
        let tagged = !ctx_key.is_empty();
        let secret = |b: &mut Zeroizing<Vec<u8>>| SecretBytes::new(std::mem::take(&mut **b));
        match what {
            Dump::SkD | Dump::SkAi | Dump::SkAr | Dump::SkEi | Dump::SkEr => {
                self.keys_seen += 1;
                let ctx = self.ctxs.entry(ctx_key.clone()).or_default();
                if what == Dump::SkD || ctx.v2.is_none() {
                    ctx.v2 = Some(V2Partial {
                        line,
                        ..Default::default()
                    });
                }
                if what == Dump::SkEr {
                    let v2 = ctx.v2.take().expect("set above");
                    let sk_er = secret(&mut bytes);
                    self.finish_v2(&ctx_key, tagged, job, v2, sk_er, line);
                    return;
                }
                let v2 = ctx.v2.as_mut().expect("set above");
                match what {
                    Dump::SkAi => v2.sk_ai = Some(secret(&mut bytes)),
                    Dump::SkAr => v2.sk_ar = Some(secret(&mut bytes)),
                    Dump::SkEi => v2.sk_ei = Some(secret(&mut bytes)),
                    _ => {}
                }
            }
            Dump::Skeyid => {
                self.keys_seen += 1;
                let suite = self.ike_suite(&ctx_key, job.thread);
                self.ctxs.entry(ctx_key).or_default().v1 = Some(V1Partial {
                    line,
                    job,
                    suite,
                    ka: None,
                    iv: None,
                });
            }
            Dump::Ka | Dump::InitialIv => {
                self.keys_seen += 1;
                let ctx = self.ctxs.entry(ctx_key.clone()).or_default();
                let Some(v1) = ctx.v1.as_mut() else {
                    let p = format!("line {line}: `{}` without the SKEYID before it", what.name());
                    self.problem(p);
                    return;
                };
                if what == Dump::Ka {
                    v1.ka = Some(secret(&mut bytes));
                    return;
                }
                v1.iv = Some(bytes.to_vec());
                let v1 = ctx.v1.take().expect("checked");
                ctx.v1_waiting = Some(v1);
                self.try_finish_v1(&ctx_key, tagged, job);
            }
            Dump::NextIvMid0 => {
                let idx = self.ctxs.get(&ctx_key).and_then(|c| c.v1_record);
                if let Some(Record::Ikev1(r)) = idx.and_then(|i| self.records.get_mut(i)) {
                    r.phase1_last_iv = Some(bytes.to_vec());
                }
            }
            Dump::Natd => {
                if bytes.len() < 16 {
                    return;
                }
                let a = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
                let b = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
                if b == 0 {
                    // IKE_SA_INIT request: the responder's SPI is not chosen yet.
                    return;
                }
                self.ctxs.entry(ctx_key.clone()).or_default().natd = Some((a, b, job));
                self.try_finish_v1(&ctx_key, tagged, job);
            }
            Dump::EncI | Dump::EncR | Dump::IntegI | Dump::IntegR => {
                self.keys_seen += 1;
                let esp_prop = self.ctxs.get(&ctx_key).and_then(|c| c.esp_prop.clone());
                let th = self.threads.entry(job.thread).or_default();
                if what == Dump::EncI || th.child.is_none() {
                    th.child = Some(ChildKeys {
                        line,
                        esp_prop,
                        initiator: th.parsed.as_ref().map(|(_, response)| *response),
                        ..Default::default()
                    });
                }
                let c = th.child.as_mut().expect("set above");
                let k = Some(secret(&mut bytes));
                match what {
                    Dump::EncI => c.enc_i = k,
                    Dump::EncR => c.enc_r = k,
                    Dump::IntegI => c.integ_i = k,
                    _ => c.integ_r = k,
                }
            }
        }
    }

    /// The IKE proposal in effect for keys of `ctx` derived on `thread`.
    fn ike_suite(&self, ctx: &str, thread: u32) -> Result<IkeSuite, String> {
        let p = self
            .ctxs
            .get(ctx)
            .and_then(|c| c.ike_prop.clone())
            .or_else(|| self.threads.get(&thread).and_then(|t| t.ike_prop.clone()));
        let Some((line, p)) = p else {
            return Err("no `selected proposal: IKE:...` line before them (charon logs it with cfg at level 1)".into());
        };
        ike_proposal(&p).map_err(|e| format!("the proposal on line {line}: {e}"))
    }

    fn finish_v2(&mut self, ctx_key: &str, tagged: bool, job: Job, v2: V2Partial, sk_er: SecretBytes, line: usize) {
        let first = v2.line;
        let suite = match self.ike_suite(ctx_key, job.thread) {
            Ok(s) => s,
            Err(e) => return self.problem(format!("line {first}: IKEv2 keys, but {e}")),
        };
        let Some(sk_ei) = v2.sk_ei else {
            return self.problem(format!("line {line}: `Sk_er secret` without `Sk_ei secret` before it"));
        };
        let alg = suite.encr.strongswan_name();
        let mut checks = vec![
            need_len("Sk_ei secret", &sk_ei, suite.encr.key_len(), &alg),
            need_len("Sk_er secret", &sk_er, suite.encr.key_len(), &alg),
        ];
        let (sk_ai, sk_ar) = match suite.integ {
            Some(i) => match (v2.sk_ai, v2.sk_ar) {
                (Some(a), Some(r)) => {
                    checks.push(need_len("Sk_ai secret", &a, i.key_len(), i.strongswan_name()));
                    checks.push(need_len("Sk_ar secret", &r, i.key_len(), i.strongswan_name()));
                    (Some(a), Some(r))
                }
                _ => {
                    return self.problem(format!(
                        "line {first}: IKEv2 keys without `Sk_ai secret`/`Sk_ar secret`, which {} needs",
                        i.strongswan_name()
                    ))
                }
            },
            None => (None, None),
        };
        if let Some(Err(e)) = checks.into_iter().find(Result::is_err) {
            return self.problem(format!("line {first}: {e} (by the selected proposal)"));
        }
        // SPIs: from the NAT-D input of IKE_SA_INIT, when the keys follow
        // that exchange (not a CREATE_CHILD_SA rekey) and, without tags,
        // in the same job.
        let ctx = self.ctxs.get(ctx_key);
        let after_init = ctx.and_then(|c| c.last_exchange.as_deref()) == Some("IKE_SA_INIT");
        let spis = ctx
            .and_then(|c| c.natd)
            .filter(|(_, _, j)| after_init && (tagged || *j == job))
            .map(|(i, r, _)| (i, r));
        self.push(Record::Ikev2(V2Record {
            line: first,
            spis,
            encr: suite.encr,
            integ: suite.integ,
            prf: Some(suite.prf),
            dh: Some(suite.dh),
            sk_ei,
            sk_er,
            sk_ai,
            sk_ar,
        }));
    }

    /// IKEv1 keys are complete when their cookies are known: the NAT-D
    /// input of this SA (without tags: of the same job), before or after.
    fn try_finish_v1(&mut self, ctx_key: &str, tagged: bool, job: Job) {
        let Some(ctx) = self.ctxs.get_mut(ctx_key) else { return };
        let Some(w) = ctx.v1_waiting.as_ref() else { return };
        let Some((icookie, rcookie, nj)) = ctx.natd else { return };
        if !tagged && (nj != w.job || nj != job) {
            return;
        }
        let w = ctx.v1_waiting.take().expect("checked");
        let line = w.line;
        let suite = match w.suite {
            Ok(s) => s,
            Err(e) => return self.problem(format!("line {line}: IKEv1 keys, but {e}")),
        };
        let (Some(enc_key), Some(iv)) = (w.ka, w.iv) else {
            return self.problem(format!("line {line}: IKEv1 keys without `encryption key Ka`"));
        };
        let idx = self.push(Record::Ikev1(V1Record {
            line,
            icookie,
            rcookie,
            suite,
            enc_key,
            iv,
            phase1_last_iv: None,
        }));
        if let Some(c) = self.ctxs.get_mut(ctx_key) {
            c.v1_record = idx;
        }
    }

    /// `SPI 0x..., src A dst B` after `adding inbound|outbound ESP SA`.
    fn esp_sa(&mut self, n: usize, thread: u32, inbound: bool, rest: &str) {
        let Some(c) = self.threads.get(&thread).and_then(|t| t.child.as_ref()) else { return };
        let (line, esp_prop, we_initiated) = (c.line, c.esp_prop.clone(), c.initiator);
        let initiators = (c.enc_i.clone(), c.integ_i.clone());
        let responders = (c.enc_r.clone(), c.integ_r.clone());
        let mut w = rest.split(|ch: char| ch == ',' || ch.is_whitespace()).filter(|s| !s.is_empty());
        let spi = w.next().and_then(|s| u32::from_str_radix(s, 16).ok());
        let (src, dst) = match (w.next(), w.next(), w.next(), w.next()) {
            (Some("src"), Some(s), Some("dst"), Some(d)) => (s.parse::<IpAddr>().ok(), d.parse::<IpAddr>().ok()),
            _ => (None, None),
        };
        let (Some(spi), Some(src), Some(dst)) = (spi, src, dst) else {
            return self.problem(format!("line {n}: an ESP SA line that does not read as `SPI 0x..., src A dst B`"));
        };
        let Some((pline, prop)) = esp_prop else {
            return self.problem(format!(
                "line {line}: CHILD SA keys without a `selected proposal: ESP:...` line before them"
            ));
        };
        let (algorithm, esn) = match esp_proposal(&prop) {
            Ok(a) => a,
            Err(e) => return self.problem(format!("line {line}: CHILD SA keys, but the proposal on line {pline}: {e}")),
        };
        // The initiator's keys protect what the initiator sends: our
        // inbound SA when we responded, our outbound when we initiated.
        let sets = match we_initiated {
            Some(we) => vec![(if we == inbound { responders } else { initiators }, false)],
            None => vec![(initiators, true), (responders, true)],
        };
        for ((enc, integ), guessed) in sets {
            let Some(enc) = enc else {
                return self.problem(format!("line {line}: CHILD SA keys without an encryption key"));
            };
            let need_enc = algorithm.enc_key_len();
            if enc.len() != need_enc {
                return self.problem(format!(
                    "line {line}: the CHILD SA's encryption key is {} bytes, {} needs {need_enc}",
                    enc.len(),
                    algorithm.strongswan_name()
                ));
            }
            let auth = match algorithm.integ() {
                Some(i) => match integ {
                    Some(k) if k.len() == i.key_len() => Some(k),
                    _ => {
                        return self.problem(format!(
                            "line {line}: the CHILD SA's integrity key is missing or not the {} bytes of {}",
                            i.key_len(),
                            i.strongswan_name()
                        ))
                    }
                },
                None => None,
            };
            self.push(Record::Esp(EspRecord {
                line,
                spi,
                src: Some(src),
                dst: Some(dst),
                algorithm,
                esn,
                enc,
                auth,
                guessed,
            }));
        }
    }

    /// The end of the log: what was left half-read is named.
    pub fn finish(&mut self) {
        let mut left = Vec::new();
        for c in self.ctxs.values() {
            if let Some(w) = &c.v1_waiting {
                left.push(format!(
                    "line {}: IKEv1 keys whose cookies are nowhere near them (charon dumps them as `natd_chunk` \
                     while it computes NAT-D)",
                    w.line
                ));
            }
            if let Some(v) = &c.v2 {
                left.push(format!("line {}: IKEv2 keys that end before `Sk_er secret`", v.line));
            }
        }
        left.sort();
        for p in left {
            self.problem(p);
        }
        if self.problems_dropped > 0 {
            let n = self.problems_dropped;
            self.problems.push(format!("and {n} more problems"));
        }
    }
}

/// `name => N bytes @ 0x...`
fn dump_header(msg: &str) -> Option<(&str, usize)> {
    let (name, rest) = msg.split_once(" => ")?;
    let (n, rest) = rest.split_once(" bytes @ ")?;
    rest.starts_with("0x").then_some(())?;
    Some((name.trim(), n.parse().ok()?))
}

/// `  16: 22 9D 3C 97 00 00   ".<...`: the offset and what follows it.
fn dump_row(msg: &str) -> Option<(usize, &str)> {
    let t = msg.trim_start();
    let (off, rest) = t.split_once(": ")?;
    if off.is_empty() || off.len() > 6 || !off.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((off.parse().ok()?, rest))
}

/// Append `n` hex pairs (`XX ` each) from the start of `hex`.
fn push_hex(out: &mut Vec<u8>, hex: &str, n: usize) -> bool {
    let b = hex.as_bytes();
    for i in 0..n {
        let Some(pair) = b.get(3 * i..3 * i + 2) else { return false };
        let (Some(h), Some(l)) = ((pair[0] as char).to_digit(16), (pair[1] as char).to_digit(16)) else {
            return false;
        };
        if !matches!(b.get(3 * i + 2), None | Some(b' ')) {
            return false;
        }
        out.push((h * 16 + l) as u8);
    }
    true
}

/// An IKE proposal as charon logs it:
/// `IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048`.
pub fn ike_proposal(p: &str) -> Result<IkeSuite, String> {
    let body = p.strip_prefix("IKE:").ok_or("not an IKE proposal")?;
    let (mut encr, mut integ, mut prf, mut dh) = (None, None, None, None);
    for t in body.split('/') {
        if let Some(e) = encr_token(t) {
            encr.get_or_insert(e);
        } else if let Some(i) = Integ::from_name(&format!("AUTH_{t}")) {
            integ.get_or_insert(i);
        } else if let Some(f) = Prf::from_name(t) {
            prf.get_or_insert(f);
        } else if let Some(g) = DhGroup::from_name(t) {
            dh.get_or_insert(g);
        } else {
            return Err(format!("{} is not an algorithm ikeda has", quoted(t)));
        }
    }
    let s = IkeSuite {
        encr: encr.ok_or("no cipher")?,
        integ,
        prf: prf.ok_or("no PRF")?,
        dh: dh.ok_or("no DH group")?,
    };
    s.validate().map_err(|e| e.to_string())?;
    Ok(s)
}

fn encr_token(t: &str) -> Option<Encr> {
    match t {
        "3DES_CBC" => Some(Encr::TripleDesCbc),
        "DES_CBC" => Some(Encr::DesCbc),
        "CHACHA20_POLY1305" | "CHACHA20_POLY1305_256" => Some(Encr::ChaCha20Poly1305),
        _ => Encr::from_name(&format!("ENCR_{t}")),
    }
}

/// An ESP proposal as charon logs it (`ESP:AES_GCM_16_128/NO_EXT_SEQ`,
/// `ESP:AES_CBC_256/HMAC_SHA2_256_128/MODP_2048/EXT_SEQ`): the data
/// plane's algorithm and ESN.
pub fn esp_proposal(p: &str) -> Result<(EspAlgorithm, bool), String> {
    let body = p.strip_prefix("ESP:").ok_or("not an ESP proposal")?;
    let (mut encr, mut integ, mut esn) = (None, None, false);
    for t in body.split('/') {
        if let Some(e) = encr_token(t) {
            encr.get_or_insert(e);
        } else if let Some(i) = EspInteg::ALL.into_iter().find(|i| i.strongswan_name() == t) {
            integ.get_or_insert(i);
        } else if t == "EXT_SEQ" {
            esn = true;
        } else if t == "NO_EXT_SEQ" || DhGroup::from_name(t).is_some() {
            // The PFS group: not needed to decrypt.
        } else {
            return Err(format!("{} is not an algorithm ikeda has", quoted(t)));
        }
    }
    let a = match (encr.ok_or("no cipher")?, integ) {
        (Encr::AesGcm16 { key_bits }, None) => EspAlgorithm::AesGcm16 { key_bits },
        (Encr::ChaCha20Poly1305, None) => EspAlgorithm::ChaCha20Poly1305,
        (Encr::AesCbc { key_bits }, Some(integ)) => EspAlgorithm::AesCbc { key_bits, integ },
        (Encr::TripleDesCbc, Some(integ)) => EspAlgorithm::TripleDesCbc { integ },
        (e, i) => {
            return Err(format!(
                "{}{} is not an ESP suite the data plane has",
                e.strongswan_name(),
                i.map(|i| format!("/{}", i.strongswan_name())).unwrap_or_default()
            ))
        }
    };
    Ok((a, esn))
}
