//! The check shared by the Wireshark table targets (key_ikev2_table,
//! key_ikev1_table, key_esp_sa): arbitrary text, a line at a time, through
//! one table's line parser. Besides not panicking: a line it accepts holds
//! keys as long as their algorithms need, an error says something, and
//! detection never panics either.
//!
//! Compiled into each target next to `keysrc` (`super::keysrc`).

use super::keysrc::{self, Record};

pub type LineParser = fn(usize, &str) -> Result<Option<Record>, String>;

pub fn check_table(data: &[u8], parse: LineParser) {
    let text = String::from_utf8_lossy(data);
    let _ = keysrc::detect(&text);
    for (i, l) in text.lines().enumerate() {
        let r = match parse(i + 1, l) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                assert!(!e.is_empty());
                continue;
            }
        };
        match r {
            Record::Ikev2(k) => {
                assert!(k.spis.is_some());
                assert_eq!(k.sk_ei.len(), k.encr.key_len());
                assert_eq!(k.sk_er.len(), k.encr.key_len());
                assert_eq!(k.sk_ai.as_ref().map(|a| a.len()), k.integ.map(|i| i.key_len()));
                assert_eq!(k.sk_ar.as_ref().map(|a| a.len()), k.integ.map(|i| i.key_len()));
            }
            Record::Ikev1Cookie(c) => assert!(c.enc_key.len() >= 8),
            Record::Esp(e) => {
                assert_eq!(e.enc.len(), e.algorithm.enc_key_len());
                assert_eq!(e.auth.as_ref().map_or(0, |a| a.len()), e.algorithm.auth_key_len());
                assert!(!e.guessed);
            }
            Record::Ikev1(_) => panic!("a Wireshark table gives no full IKEv1 record"),
        }
    }
}
