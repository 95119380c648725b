//! `ikeda pcap --keys SOURCE`: which key file a source is, reading it, and
//! what the capture completes (issue 12 point 2).
//!
//! A source is a file of one of the kinds `keysrc` knows (recognised by
//! its text, whatever its name) or a directory: there the known names are
//! read (`ikeda-keys.jsonl`, `ikev2_decryption_table`,
//! `ikev1_decryption_table`, `esp_sa`), and any other file that reads as a
//! charon log (a Wireshark profile or an ikeda key directory holds other
//! files, which are passed over).
//!
//! Files are read with their size bounded (64 MiB for tables and key
//! logs, 1 GiB for a charon log, streamed a line at a time with lines
//! over 64 KiB skipped) into zeroized buffers.
//!
//! Two kinds of keys are only half there until the capture is read:
//! - Wireshark's IKEv1 table has a cookie and a key: the cipher, the hash
//!   and the first IV (`hash(g^xi | g^xr)`, RFC 2409 App. B) come from
//!   Main Mode messages 1-4 (`observe_ikev1`);
//! - charon's log gives an IKE SA made by a CREATE_CHILD_SA rekey without
//!   its SPIs: the first message of an SA no key names is tried with each
//!   such key set, and the one whose ICV verifies is that SA's
//!   (`ikev2_for`).
//!
//! `--wireshark-keys DIR` writes what was read (with the SPIs the capture
//! bound) as Wireshark's tables, so Wireshark decrypts the same capture.

use super::keys::{EspKey, Ikev1Keys, Ikev2Keys, KeyStore, MAX_KEY_FILE_BYTES};
use super::keysrc::{self, CharonLog, Format, Record};
use crate::keys::{esp_line, wireshark_ikev2_encr, wireshark_ikev2_integ, ESP_TABLE, IKEV1_TABLE, IKEV2_TABLE, KEY_LOG};
use ikeda_crypto::ike::{DhGroup, IkeSuite, Prf, SkCipher};
use ikeda_crypto::ikev1::{Cipher, Hash};
use ikeda_crypto::SecretBytes;
use ikeda_wire::ikev1;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A charon log larger than this is refused (level 4 is verbose: a day
/// of a busy gateway).
pub const MAX_CHARON_LOG_BYTES: u64 = 1 << 30;
/// Longer lines are skipped (charon's longest are hex dumps of 80 bytes).
const MAX_LINE: usize = 64 * 1024;
/// Bytes read to recognise a file.
const HEAD: usize = 64 * 1024;
/// Directory entries looked at.
const MAX_DIR_ENTRIES: usize = 4096;
/// IKEv2 key sets without SPIs held, and messages of one unknown SA
/// tried against them.
const MAX_UNBOUND: usize = 4096;
const MAX_TRIES_PER_SA: u8 = 4;
/// Main Modes followed for Wireshark's IKEv1 keys.
const MAX_MAIN_MODES: usize = 4096;

/// What the capture completes, and what was read (for `--wireshark-keys`).
#[derive(Default)]
pub struct More {
    /// Wireshark's IKEv1 table: initiator cookie -> key, until Main Mode
    /// gives the rest.
    pending_v1: HashMap<u64, SecretBytes>,
    main_modes: HashMap<u64, MainMode>,
    /// Why a pending IKEv1 key could not be completed.
    v1_notes: HashMap<u64, String>,
    /// charon's IKEv2 keys without SPIs, with their place in `export`.
    unbound_v2: Vec<(Ikev2Keys, usize)>,
    tries: HashMap<(u64, u64), u8>,
    /// Every record read from a source other than ikeda's key log.
    export: Vec<Record>,
}

/// The part of a Main (or Aggressive) Mode seen in clear.
#[derive(Default)]
struct MainMode {
    initiator: Option<IpAddr>,
    chosen: Option<(Cipher, Hash)>,
    ke_i: Option<Vec<u8>>,
    ke_r: Option<Vec<u8>>,
}

/// The known names in a directory, in the order they are read (ikeda's
/// own log first: a directory ikeda exported to has both).
const KNOWN: [&str; 4] = [KEY_LOG, IKEV2_TABLE, IKEV1_TABLE, ESP_TABLE];

const KINDS: &str = "ikeda's key log, Wireshark's ikev2_decryption_table, ikev1_decryption_table or esp_sa, \
                     or a charon log with ike and chd at level 4";

/// Read one `--keys` source into `store`.
pub fn load(store: &mut KeyStore, source: &Path) -> Result<(), String> {
    let meta = fs::metadata(source).map_err(|e| format!("{}: {e}", source.display()))?;
    if !meta.is_dir() {
        return load_file(store, source).map(|_| ());
    }
    let mut known = Vec::new();
    let mut others = Vec::new();
    let entries = fs::read_dir(source).map_err(|e| format!("{}: {e}", source.display()))?;
    for e in entries.flatten().take(MAX_DIR_ENTRIES) {
        // Regular files only; a link is not followed.
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        match KNOWN.iter().position(|k| *k == name) {
            Some(i) => known.push((i, e.path())),
            None => others.push(e.path()),
        }
    }
    known.sort();
    others.sort();
    let mut used = 0;
    let mut why = Vec::new();
    let try_file = |store: &mut KeyStore, p: &PathBuf, why: &mut Vec<String>| match load_file(store, p) {
        Ok(n) => n,
        Err(e) => {
            why.push(e);
            0
        }
    };
    for (_, p) in &known {
        used += try_file(store, p, &mut why);
    }
    for p in &others {
        if sniff(p) == Some(Format::CharonLog) {
            used += try_file(store, p, &mut why);
        }
    }
    if used == 0 {
        let mut e = format!(
            "{}: no key file ikeda can use here (looked for {}, and charon logs with keys)",
            source.display(),
            KNOWN.join(", ")
        );
        for w in why {
            e.push_str("; ");
            e.push_str(&w);
        }
        return Err(e);
    }
    Ok(())
}

/// The format of a file from its head (`None` when unreadable or unknown).
fn sniff(path: &Path) -> Option<Format> {
    let mut f = File::open(path).ok()?;
    let head = read_head(&mut f).ok()?;
    keysrc::detect(utf8_prefix(&head))
}

fn read_head(f: &mut File) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut head = Zeroizing::new(vec![0u8; HEAD]);
    let mut have = 0;
    while have < HEAD {
        match f.read(&mut head[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(have);
    Ok(head)
}

/// The longest prefix that is UTF-8 (a head may cut a character).
fn utf8_prefix(b: &[u8]) -> &str {
    match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// Read one key file; the number of keys it gave (an error when none).
fn load_file(store: &mut KeyStore, path: &Path) -> Result<usize, String> {
    let name = path.display().to_string();
    let mut f = File::open(path).map_err(|e| format!("{name}: {e}"))?;
    let len = f.metadata().map_err(|e| format!("{name}: {e}"))?.len();
    if len > MAX_CHARON_LOG_BYTES {
        return Err(format!(
            "{name}: {len} bytes, larger than any key file ikeda reads ({MAX_CHARON_LOG_BYTES})"
        ));
    }
    let head = read_head(&mut f).map_err(|e| format!("{name}: {e}"))?;
    let Some(format) = keysrc::detect(utf8_prefix(&head)) else {
        return Err(format!("{name}: not a key file ikeda knows ({KINDS})"));
    };
    drop(head);
    let limit = if format == Format::CharonLog {
        MAX_CHARON_LOG_BYTES
    } else {
        MAX_KEY_FILE_BYTES
    };
    if len > limit {
        return Err(format!(
            "{name}: {len} bytes, larger than any {} ikeda reads ({limit})",
            format.name()
        ));
    }
    let f = File::open(path).map_err(|e| format!("{name}: {e}"))?;
    match format {
        Format::KeyLog => {
            let mut text = Zeroizing::new(Vec::with_capacity(len as usize));
            f.take(limit)
                .read_to_end(&mut text)
                .map_err(|e| format!("{name}: {e}"))?;
            let text = std::str::from_utf8(&text)
                .map_err(|_| format!("{name}: not an ikeda key log (not UTF-8 text)"))?;
            let before = store.ikev2.len() + store.ikev1.len() + store.esp.len();
            store.load_key_log(&name, text)?;
            Ok((store.ikev2.len() + store.ikev1.len() + store.esp.len()).saturating_sub(before).max(1))
        }
        Format::CharonLog => {
            let mut log = CharonLog::new();
            each_line(&name, f, limit, |n, line| {
                if let Ok(l) = line {
                    log.line(n, l);
                }
            })?;
            log.finish();
            let (seen, problems, records) = (log.keys_seen, std::mem::take(&mut log.problems), log.records);
            let used = add_all(store, &name, records);
            if used == 0 {
                let mut e = if seen == 0 {
                    format!(
                        "{name}: a charon log, but without keys: charon prints them with `ike` and `chd` at level 4 \
                         (strongswan.conf: charon {{ filelog {{ <name> {{ ike = 4  chd = 4 }} }} }})"
                    )
                } else {
                    format!("{name}: a charon log with keys, but none ikeda could use")
                };
                for p in problems.iter().take(3) {
                    e.push_str(&format!("; {p}"));
                }
                return Err(e);
            }
            store
                .problems
                .extend(problems.into_iter().map(|p| format!("{name} {p}")));
            Ok(used)
        }
        table => {
            let parse = match table {
                Format::Ikev2Table => keysrc::ikev2_table_line,
                Format::Ikev1Table => keysrc::ikev1_table_line,
                _ => keysrc::esp_table_line,
            };
            let mut records = Vec::new();
            let mut problems = Vec::new();
            each_line(&name, f, limit, |n, line| {
                match line.map_err(str::to_string).and_then(|l| parse(n, l)) {
                    Ok(Some(r)) if records.len() < keysrc::MAX_RECORDS => records.push(r),
                    Ok(_) => {}
                    Err(e) => problems.push(format!("{name} line {n}: {e}")),
                }
            })?;
            let used = add_all(store, &name, records);
            if used == 0 {
                let mut e = format!("{name}: {}, but no line with a key ikeda can use", table.name());
                for p in problems.iter().take(3) {
                    e.push_str(&format!("; {p}"));
                }
                return Err(e);
            }
            store.problems.extend(problems);
            Ok(used)
        }
    }
}

/// Every line of a file to `each` (1-based number, the text or why it is
/// skipped), through one zeroized buffer: memory stays flat.
fn each_line(
    name: &str,
    mut f: File,
    limit: u64,
    mut each: impl FnMut(usize, Result<&str, &'static str>),
) -> Result<(), String> {
    const CHUNK: usize = 256 * 1024;
    let mut buf = Zeroizing::new(vec![0u8; CHUNK + MAX_LINE]);
    let (mut have, mut n, mut total, mut skipping) = (0usize, 0usize, 0u64, false);
    let line = |n: usize, b: &[u8], skipping: bool, each: &mut dyn FnMut(usize, Result<&str, &'static str>)| {
        if skipping {
            each(n, Err("longer than 64 KiB"));
        } else {
            let b = b.strip_suffix(b"\r").unwrap_or(b);
            each(n, std::str::from_utf8(b).map_err(|_| "not UTF-8 text"));
        }
    };
    loop {
        let got = loop {
            match f.read(&mut buf[have..]) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| format!("{name}: {e}"))?,
            }
        };
        total += got as u64;
        if total > limit {
            return Err(format!("{name}: grew past the {limit} bytes ikeda reads of it"));
        }
        have += got;
        let mut start = 0;
        while let Some(i) = buf[start..have].iter().position(|b| *b == b'\n') {
            n += 1;
            line(n, &buf[start..start + i], skipping, &mut each);
            skipping = false;
            start += i + 1;
        }
        if got == 0 {
            if start < have {
                n += 1;
                line(n, &buf[start..have], skipping, &mut each);
            }
            return Ok(());
        }
        let rest = have - start;
        if skipping || rest > MAX_LINE {
            skipping = true;
            have = 0;
        } else {
            buf.copy_within(start..have, 0);
            have = rest;
        }
    }
}

/// Feed records into the store; how many were taken.
fn add_all(store: &mut KeyStore, name: &str, records: Vec<Record>) -> usize {
    let mut used = 0;
    for r in records {
        let line = match &r {
            Record::Ikev2(k) => k.line,
            Record::Ikev1(k) => k.line,
            Record::Ikev1Cookie(k) => k.line,
            Record::Esp(k) => k.line,
        };
        match add(store, r) {
            Ok(()) => used += 1,
            Err(e) => store.problems.push(format!("{name} line {line}: {e}")),
        }
    }
    used
}

fn add(store: &mut KeyStore, r: Record) -> Result<(), String> {
    let idx = store.more.export.len();
    match &r {
        Record::Ikev2(v) => {
            // Wireshark's table names no PRF or DH group, and decryption
            // needs neither: any valid pair fills the suite.
            let suite = IkeSuite {
                encr: v.encr,
                integ: v.integ,
                prf: v.prf.unwrap_or(Prf::HmacSha256),
                dh: v.dh.unwrap_or(DhGroup::Curve25519),
            };
            let cipher = |e: &SecretBytes, a: Option<&SecretBytes>, what: &str| {
                SkCipher::new(v.encr, v.integ, e, a).map_err(|err| format!("{what}: {err}"))
            };
            let keys = Ikev2Keys {
                suite,
                from_initiator: cipher(&v.sk_ei, v.sk_ai.as_ref(), "SK_ei/SK_ai")?,
                from_responder: cipher(&v.sk_er, v.sk_ar.as_ref(), "SK_er/SK_ar")?,
            };
            match v.spis {
                Some(spis) => {
                    store.ikev2.entry(spis).or_insert(keys);
                }
                None if store.more.unbound_v2.len() < MAX_UNBOUND => store.more.unbound_v2.push((keys, idx)),
                None => return Err(format!("more than {MAX_UNBOUND} IKEv2 key sets without SPIs")),
            }
        }
        Record::Ikev1(v) => {
            let cipher = Cipher::from_encr(v.suite.encr).map_err(|e| e.to_string())?;
            if v.enc_key.len() != cipher.key_len() || v.iv.len() != cipher.block_len() {
                return Err(format!(
                    "the IKEv1 key or initial IV is not as long as {} needs",
                    cipher.name()
                ));
            }
            let keys = Ikev1Keys {
                rcookie: v.rcookie,
                cipher,
                hash: v.suite.integ.map_or(Hash::from_prf(v.suite.prf), Hash::from_integ),
                enc_key: v.enc_key.clone(),
                first_iv: v.iv.clone(),
                // charon's last `next IV for MID 0`: the last CBC block of
                // phase 1, from which a later exchange's IV is derived (RFC
                // 2409 App. B), so a capture without Main Mode reads too.
                phase1_last_block: v.phase1_last_iv.clone().filter(|b| b.len() == cipher.block_len()),
            };
            store.ikev1.entry(v.icookie).or_insert(keys);
        }
        Record::Ikev1Cookie(c) => {
            if !store.ikev1.contains_key(&c.icookie) {
                store.more.pending_v1.entry(c.icookie).or_insert_with(|| c.enc_key.clone());
            }
        }
        Record::Esp(e) => {
            let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            let key = EspKey {
                spi: e.spi,
                algorithm: e.algorithm,
                esn: e.esn,
                enc: e.enc.clone(),
                auth: e.auth.clone(),
                src: SocketAddr::new(e.src.unwrap_or(any), 0),
                dst: SocketAddr::new(e.dst.unwrap_or(any), 0),
            };
            key.inbound_sa()?;
            let same = store.esp.entry(e.spi).or_default();
            // Both gateways' logs name the same SA: one copy. Two candidate
            // keys for one direction (a log that did not say which side it
            // was) are both kept; the ICV picks.
            if !same.iter().any(|k| {
                k.src.ip() == key.src.ip() && k.dst.ip() == key.dst.ip() && k.enc.expose() == key.enc.expose()
            }) {
                same.push(key);
            }
        }
    }
    store.more.export.push(r);
    Ok(())
}

impl KeyStore {
    /// The keys of IKEv2 SA `spis`. An SA no key names is tried (a few of
    /// its messages) against the key sets that came without SPIs; the one
    /// `verifies` accepts (its ICV checks) becomes that SA's.
    pub fn ikev2_for(&mut self, spis: (u64, u64), verifies: impl Fn(&Ikev2Keys) -> bool) -> Option<&Ikev2Keys> {
        let more = &mut self.more;
        if !self.ikev2.contains_key(&spis) && !more.unbound_v2.is_empty() {
            let tries = more.tries.entry(spis).or_default();
            if *tries < MAX_TRIES_PER_SA {
                *tries += 1;
                if let Some(i) = more.unbound_v2.iter().position(|(k, _)| verifies(k)) {
                    let (k, idx) = more.unbound_v2.swap_remove(i);
                    if let Some(Record::Ikev2(r)) = more.export.get_mut(idx) {
                        r.spis = Some(spis);
                    }
                    self.ikev2.insert(spis, k);
                }
            }
            if more.tries.len() > MAX_UNBOUND {
                more.tries.clear();
            }
        }
        self.ikev2.get(&spis)
    }

    /// A Main or Aggressive Mode message in clear: with a key from
    /// Wireshark's IKEv1 table for its cookie, learn the chosen cipher and
    /// hash (the responder's SA) and both KE values; when all are there,
    /// the first IV is hash(g^xi | g^xr) cut to the block (RFC 2409 App. B)
    /// and the key joins the others.
    pub fn observe_ikev1(&mut self, h: &ikev1::Header, src: IpAddr, payloads: &[ikev1::Payload]) {
        let more = &mut self.more;
        if h.message_id != 0 || !more.pending_v1.contains_key(&h.icookie) {
            return;
        }
        if !more.main_modes.contains_key(&h.icookie) && more.main_modes.len() >= MAX_MAIN_MODES {
            return;
        }
        let mm = more.main_modes.entry(h.icookie).or_default();
        if h.rcookie == 0 {
            mm.initiator.get_or_insert(src);
        }
        for p in payloads {
            match p {
                ikev1::Payload::Sa(sa) => {
                    let mut all = sa.proposals.iter().flat_map(|p| p.transforms.iter());
                    let (Some(t), None) = (all.next(), all.next()) else { continue };
                    let attr = |k| t.attribute(k).and_then(|a| a.as_u16());
                    let enc = attr(ikev1::p1_attr::ENCRYPTION_ALGORITHM);
                    let hash = attr(ikev1::p1_attr::HASH_ALGORITHM).and_then(Hash::from_attr_value);
                    let cipher = enc.and_then(|e| Cipher::from_attrs(e, attr(ikev1::p1_attr::KEY_LENGTH)).ok());
                    // The responder's answer decides; a lone offer will do
                    // when the capture lacks it.
                    if let (Some(c), Some(hh)) = (cipher, hash) {
                        if h.rcookie != 0 || mm.chosen.is_none() {
                            mm.chosen = Some((c, hh));
                        }
                    }
                }
                ikev1::Payload::Ke(k) => {
                    let from_initiator = match mm.initiator {
                        Some(a) => a == src,
                        None => mm.ke_i.as_ref().is_none_or(|i| i == k),
                    };
                    if from_initiator {
                        mm.ke_i = Some(k.clone());
                    } else {
                        mm.ke_r = Some(k.clone());
                    }
                }
                _ => {}
            }
        }
        let (Some((cipher, hash)), Some(ke_i), Some(ke_r)) = (mm.chosen, mm.ke_i.as_ref(), mm.ke_r.as_ref()) else {
            return;
        };
        let mut iv = hash.hash(&[ke_i, ke_r]);
        iv.truncate(cipher.block_len());
        more.main_modes.remove(&h.icookie);
        let Some(key) = more.pending_v1.remove(&h.icookie) else { return };
        if key.len() < cipher.key_len() {
            more.v1_notes.insert(
                h.icookie,
                format!(
                    "the ikev1_decryption_table key for this cookie is {} bytes, {} needs {}",
                    key.len(),
                    cipher.name(),
                    cipher.key_len()
                ),
            );
            return;
        }
        let enc_key = SecretBytes::new(key.expose()[..cipher.key_len()].to_vec());
        self.ikev1.insert(
            h.icookie,
            Ikev1Keys {
                rcookie: h.rcookie,
                cipher,
                hash,
                enc_key,
                first_iv: iv,
                // Main Mode is in the capture: the chain takes its last block.
                phase1_last_block: None,
            },
        );
    }

    /// Why an IKEv1 SA with a key from Wireshark's table is not decrypted.
    pub fn ikev1_pending_note(&self, icookie: u64) -> Option<String> {
        if let Some(n) = self.more.v1_notes.get(&icookie) {
            return Some(n.clone());
        }
        self.more.pending_v1.contains_key(&icookie).then(|| {
            "its key is from an ikev1_decryption_table, which names no cipher, hash or IV: they come from \
             Main Mode messages 1-4, which the capture lacks"
                .to_string()
        })
    }
}

/// `--wireshark-keys DIR`: the keys read (from sources other than ikeda's
/// key log, whose directory holds these tables already) as Wireshark's
/// `ikev2_decryption_table`, `ikev1_decryption_table` and `esp_sa`, plus
/// `preferences` turning ESP decryption on, in a new private directory.
/// Returns what was written.
pub fn write_wireshark(store: &KeyStore, dir: &Path) -> Result<String, String> {
    crate::private::ensure_dir(dir, "--wireshark-keys directory")?;
    for t in [IKEV2_TABLE, IKEV1_TABLE, ESP_TABLE] {
        if fs::symlink_metadata(dir.join(t)).is_ok() {
            return Err(format!(
                "{}: there already; --wireshark-keys writes into a directory without Wireshark's tables",
                dir.join(t).display()
            ));
        }
    }
    let mut tables: [(Vec<Zeroizing<String>>, HashSet<u64>); 3] = Default::default();
    let (mut unbound, mut guessed, mut wildcard) = (0, 0, 0);
    let hash_of = |s: &str| {
        use std::hash::{Hash as _, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        s.hash(&mut h);
        h.finish()
    };
    let mut put = |t: usize, line: String| {
        let h = hash_of(&line);
        let line = Zeroizing::new(line);
        if tables[t].1.insert(h) {
            tables[t].0.push(line);
        }
    };
    for r in &store.more.export {
        match r {
            Record::Ikev2(k) => {
                let Some((i, rr)) = k.spis else {
                    unbound += 1;
                    continue;
                };
                let hex = |s: &Option<SecretBytes>| s.as_ref().map(SecretBytes::to_hex).unwrap_or_default();
                put(
                    0,
                    match wireshark_ikev2_encr(k.encr) {
                        Some(e) => format!(
                            "{i:016x},{rr:016x},{},{},\"{e}\",{},{},\"{}\"",
                            k.sk_ei.to_hex(),
                            k.sk_er.to_hex(),
                            hex(&k.sk_ai),
                            hex(&k.sk_ar),
                            wireshark_ikev2_integ(k.integ)
                        ),
                        None => format!("# {i:016x}_i {rr:016x}_r: {} is not in Wireshark's IKEv2 table", k.encr),
                    },
                );
            }
            Record::Ikev1(k) => put(1, format!("{:016x},{}", k.icookie, k.enc_key.to_hex())),
            Record::Ikev1Cookie(k) => put(1, format!("{:016x},{}", k.icookie, k.enc_key.to_hex())),
            Record::Esp(e) => match (e.src, e.dst, e.guessed) {
                (_, _, true) => guessed += 1,
                (Some(s), Some(d), false) => put(2, esp_line(e.algorithm, e.spi, s, d, &e.enc, e.auth.as_ref())),
                _ => wildcard += 1,
            },
        }
    }
    let counts: Vec<usize> = tables.iter().map(|t| t.0.len()).collect();
    for (t, name) in tables.iter().zip([IKEV2_TABLE, IKEV1_TABLE, ESP_TABLE]) {
        let mut text = Zeroizing::new(String::new());
        for l in &t.0 {
            text.push_str(l);
            text.push('\n');
        }
        crate::private::replace(dir, name, text.as_bytes(), false)
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))?;
    }
    let pref = dir.join("preferences");
    if fs::symlink_metadata(&pref).is_err() {
        use std::io::Write;
        let mut f = crate::private::create_new(&pref).map_err(|e| format!("{}: {e}", pref.display()))?;
        f.write_all(b"# Written by ikeda pcap --wireshark-keys: let Wireshark decrypt ESP with esp_sa.\nesp.enable_encryption_decode: TRUE\n")
            .map_err(|e| format!("{}: {e}", pref.display()))?;
    }
    let mut said = format!(
        "wrote {} IKEv2, {} IKEv1 and {} ESP keys as Wireshark's tables into {d} (WIRESHARK_CONFIG_DIR={d} tshark -r FILE)",
        counts[0],
        counts[1],
        counts[2],
        d = dir.display()
    );
    if unbound > 0 {
        said.push_str(&format!(
            "; {unbound} IKEv2 key sets left out: their SPIs are not in the log and no SA of the capture verified with them"
        ));
    }
    if guessed > 0 {
        said.push_str(&format!(
            "; {guessed} ESP keys left out: the log did not say which side derived them"
        ));
    }
    if wildcard > 0 {
        said.push_str(&format!("; {wildcard} ESP keys left out: their addresses are wildcards"));
    }
    Ok(said)
}
