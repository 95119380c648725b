//! Key material that never prints and is wiped when dropped.

use core::fmt;
use zeroize::Zeroizing;

/// Secret bytes: zeroized on drop, `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// Parse hex (optionally `0x`-prefixed, `:` or `_` separators allowed),
    /// as `setkey` and swanctl write keys.
    pub fn from_hex(s: &str) -> Result<Self, &'static str> {
        let s = s.trim();
        let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
        let digits: Zeroizing<Vec<u8>> = Zeroizing::new(s.bytes().filter(|b| *b != b':' && *b != b'_').collect());
        if !digits.len().is_multiple_of(2) {
            return Err("odd number of hex digits");
        }
        let mut out = Vec::with_capacity(digits.len() / 2);
        for pair in digits.chunks_exact(2) {
            let hi = hex_val(pair[0]).ok_or("not a hex digit")?;
            let lo = hex_val(pair[1]).ok_or("not a hex digit")?;
            out.push(hi << 4 | lo);
        }
        Ok(SecretBytes::new(out))
    }

    /// Lower-case hex, for key export files only (never for logs).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parse_and_redaction() {
        let k = SecretBytes::from_hex("0xDEad:be_ef").unwrap();
        assert_eq!(k.expose(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(k.to_hex(), "deadbeef");
        assert_eq!(format!("{k:?}"), "SecretBytes(<4 bytes redacted>)");
        assert!(SecretBytes::from_hex("abc").is_err());
        assert!(SecretBytes::from_hex("zz").is_err());
    }
}
