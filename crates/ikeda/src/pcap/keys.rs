//! `ikeda pcap --keys SOURCE`: the keys a capture is decrypted with.
//!
//! A source is ikeda's own key log (`ikeda-keys.jsonl`, written by
//! `crate::keys` when key export is on), Wireshark's tables or a charon
//! log (`super::keysrc`, `super::keyfiles`), or a directory holding any of
//! them. The key log names algorithms as
//! `ikeda_crypto` does (`IkeSuite::from_names`, `EspAlgorithm::parse` read
//! them back), so nothing here knows a cipher: it only keys
//! `ikeda_crypto::ike::SkCipher` and `ikeda_esp::InboundSa`.
//!
//! Secrets are held as `SecretBytes` (zeroized on drop); an error about a
//! line names the file, the line number and the field, never its value.

use ikeda_crypto::ike::{IkeSuite, SkCipher};
use ikeda_crypto::ikev1::{Cipher, Hash};
use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_esp::{AddrRange, Encap, InboundSa, SaParams, Selector};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

/// Key log lines read at most per source: a key log grows by a few lines
/// per rekey, so this is far beyond any real one, and bounds what a
/// garbage file makes us hold.
pub const MAX_KEY_LINES: usize = 1 << 20;

/// Key files larger than this are refused before they are read (a key log
/// line is about 600 bytes: this is 100,000 SAs and more).
pub const MAX_KEY_FILE_BYTES: u64 = 64 << 20;

/// The two directions of one IKEv2 SA (RFC 7296 §2.14): SK_ei/SK_ai
/// protect what the original initiator sends, SK_er/SK_ar the rest.
pub struct Ikev2Keys {
    pub suite: IkeSuite,
    pub from_initiator: SkCipher,
    pub from_responder: SkCipher,
}

/// One IKEv1 phase-1 SA (RFC 2409 §5): its cipher and key, the hash of
/// the IV chain (App. B), the IV of Main Mode message 5 and, when the key
/// log has it, the last CBC block of phase 1 (the seed of every later
/// exchange's IV, so that a capture without phase 1 can be read).
pub struct Ikev1Keys {
    pub rcookie: u64,
    pub cipher: Cipher,
    pub hash: Hash,
    pub enc_key: SecretBytes,
    pub first_iv: Vec<u8>,
    pub phase1_last_block: Option<Vec<u8>>,
}

/// One direction of one CHILD SA, as the key log has it.
pub struct EspKey {
    pub spi: u32,
    pub algorithm: EspAlgorithm,
    pub esn: bool,
    pub(super) enc: SecretBytes,
    pub(super) auth: Option<SecretBytes>,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl EspKey {
    /// An inbound SA that decapsulates this direction as the data plane
    /// does (replay window of the largest size, ESN inferred from it),
    /// accepting any inner addresses: the capture is read, not policed.
    pub fn inbound_sa(&self) -> Result<InboundSa, String> {
        let any = |s: &str| AddrRange::parse(s).map_err(|e| format!("selector {s}: {e}"));
        let selectors = vec![
            Selector::new(any("0.0.0.0/0")?, any("0.0.0.0/0")?),
            Selector::new(any("::/0")?, any("::/0")?),
        ];
        InboundSa::new(&SaParams {
            spi: self.spi,
            algorithm: self.algorithm,
            enc_key: self.enc.clone(),
            auth_key: self.auth.clone(),
            esn: self.esn,
            replay_window: 4096,
            local: self.dst,
            remote: self.src,
            encap: Encap::Esp,
            selectors,
            ipcomp: None,
        })
        .map_err(|e| format!("SPI {:#010x} ({}): {e}", self.spi, self.algorithm))
    }
}

/// Every key read from the sources.
#[derive(Default)]
pub struct KeyStore {
    /// By (SPIi, SPIr).
    pub ikev2: HashMap<(u64, u64), Ikev2Keys>,
    /// By initiator cookie (the IKEv1 engine's index too).
    pub ikev1: HashMap<u64, Ikev1Keys>,
    /// By SPI; an SPI is chosen by its receiver, so two gateways may pick
    /// the same one: every direction with it is kept.
    pub esp: HashMap<u32, Vec<EspKey>>,
    /// Lines of a key file that were skipped, and why.
    pub problems: Vec<String>,
    /// Keys from Wireshark's tables and charon's log that the capture
    /// completes (`super::keyfiles`).
    pub more: super::keyfiles::More,
}

impl KeyStore {
    /// Read one `--keys` source into the store: a key file of any kind
    /// `super::keyfiles` recognises, or a directory holding some. `Err`
    /// when the source is not there or holds no key we can use.
    pub fn load(&mut self, source: &Path) -> Result<(), String> {
        super::keyfiles::load(self, source)
    }

    /// Parse ikeda's key log: one JSON object per line, `type` `ikev2`,
    /// `ikev1` or `esp` (see `crate::keys`).
    pub fn load_key_log(&mut self, name: &str, text: &str) -> Result<(), String> {
        let mut recognised = 0;
        for (i, line) in text.lines().enumerate().take(MAX_KEY_LINES) {
            if line.trim().is_empty() {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                self.problems.push(format!("{name} line {}: not JSON", i + 1));
                continue;
            };
            let r = match v["type"].as_str() {
                Some("ikev2") => self.ikev2_line(&v),
                Some("esp") => self.esp_line(&v),
                Some("ikev1") => self.ikev1_line(&v),
                _ => Err("no \"type\" of ikev2, ikev1 or esp".to_string()),
            };
            match r {
                Ok(()) => recognised += 1,
                Err(e) => self.problems.push(format!("{name} line {}: {e}", i + 1)),
            }
        }
        if recognised == 0 {
            return Err(format!(
                "{name}: not an ikeda key log (no line with a key it could use)"
            ));
        }
        Ok(())
    }

    fn ikev2_line(&mut self, v: &Value) -> Result<(), String> {
        let suite = suite(v)?;
        let key = (hex_u64(v, "spi_i")?, hex_u64(v, "spi_r")?);
        let cipher = |e: &str, a: &str| -> Result<SkCipher, String> {
            let auth = opt_secret(v, a)?;
            SkCipher::new(suite.encr, suite.integ, &secret(v, e)?, auth.as_ref()).map_err(|err| format!("{e}: {err}"))
        };
        let keys = Ikev2Keys {
            suite,
            from_initiator: cipher("sk_ei", "sk_ai")?,
            from_responder: cipher("sk_er", "sk_ar")?,
        };
        // Both gateways log the same SA: the first is as good as the second.
        self.ikev2.entry(key).or_insert(keys);
        Ok(())
    }

    fn ikev1_line(&mut self, v: &Value) -> Result<(), String> {
        let suite = suite(v)?;
        let cipher = Cipher::from_encr(suite.encr).map_err(|e| e.to_string())?;
        let enc_key = secret(v, "enc_key")?;
        let first_iv = secret(v, "iv")?.expose().to_vec();
        if enc_key.len() != cipher.key_len() || first_iv.len() != cipher.block_len() {
            return Err(format!(
                "\"enc_key\" or \"iv\" is not as long as {} needs",
                cipher.name()
            ));
        }
        // Written once phase 1 is established (absent from older key logs).
        let phase1_last_block = match &v["phase1_last_block"] {
            Value::Null => None,
            Value::String(_) => Some(secret(v, "phase1_last_block")?.expose().to_vec()),
            _ => return Err("\"phase1_last_block\" is not hex".into()),
        };
        if phase1_last_block
            .as_ref()
            .is_some_and(|b| b.len() != cipher.block_len())
        {
            return Err(format!("\"phase1_last_block\" is not one {} block", cipher.name()));
        }
        let keys = Ikev1Keys {
            rcookie: hex_u64(v, "rcookie")?,
            cipher,
            hash: suite.integ.map_or(Hash::from_prf(suite.prf), Hash::from_integ),
            enc_key,
            first_iv,
            phase1_last_block,
        };
        // The SA's line at establishment adds the last phase-1 block to
        // the one written when its keys were derived.
        match self.ikev1.entry(hex_u64(v, "icookie")?) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(keys);
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let old = e.get_mut();
                if old.phase1_last_block.is_none() && old.rcookie == keys.rcookie {
                    old.phase1_last_block = keys.phase1_last_block;
                }
            }
        }
        Ok(())
    }

    fn esp_line(&mut self, v: &Value) -> Result<(), String> {
        let spi = u32::from_str_radix(str_field(v, "spi")?, 16).map_err(|_| "\"spi\" is not 8 hex digits")?;
        let algorithm = EspAlgorithm::parse(str_field(v, "algorithm")?)?;
        let addr = |f: &str| -> Result<SocketAddr, String> {
            str_field(v, f)?
                .parse()
                .map_err(|_| format!("\"{f}\" is not an address:port"))
        };
        let key = EspKey {
            spi,
            algorithm,
            esn: v["esn"].as_bool().unwrap_or(false),
            enc: secret(v, "enc_key")?,
            auth: opt_secret(v, "auth_key")?,
            src: addr("src")?,
            dst: addr("dst")?,
        };
        // Check the key lengths now, so that a bad line is named here.
        key.inbound_sa()?;
        let same = self.esp.entry(spi).or_default();
        if !same
            .iter()
            .any(|k| k.src.ip() == key.src.ip() && k.dst.ip() == key.dst.ip())
        {
            same.push(key);
        }
        Ok(())
    }
}

/// The `suite` object both IKE versions' lines have (`crate::keys::suite_json`).
fn suite(v: &Value) -> Result<IkeSuite, String> {
    let s = &v["suite"];
    IkeSuite::from_names(
        str_field(s, "encr")?,
        s["integ"].as_str(),
        str_field(s, "prf")?,
        str_field(s, "dh")?,
    )
}

fn str_field<'a>(v: &'a Value, f: &str) -> Result<&'a str, String> {
    v[f].as_str().ok_or_else(|| format!("no \"{f}\""))
}

fn hex_u64(v: &Value, f: &str) -> Result<u64, String> {
    u64::from_str_radix(str_field(v, f)?, 16).map_err(|_| format!("\"{f}\" is not 16 hex digits"))
}

/// A key field; the error names the field only.
fn secret(v: &Value, f: &str) -> Result<SecretBytes, String> {
    SecretBytes::from_hex(str_field(v, f)?).map_err(|_| format!("\"{f}\" is not hex"))
}

fn opt_secret(v: &Value, f: &str) -> Result<Option<SecretBytes>, String> {
    match &v[f] {
        Value::Null => Ok(None),
        _ => secret(v, f).map(Some),
    }
}
