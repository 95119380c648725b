//! Data Attributes, RFC 2408 §3.3.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! !A!       Attribute Type        !    AF=0  Attribute Length     !
//! !F!                             !    AF=1  Attribute Value      !
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! .                   AF=0  Attribute Value                       .
//! .                   AF=1  Not Transmitted                       .
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! AF=1 is the Type/Value (TV, "basic") form, AF=0 the Type/Length/Value
//! (TLV, "variable") form. RFC 2409 Appendix A marks some classes basic,
//! some variable, and lets Life Duration be either: a value that fits in
//! 16 bits is sent basic, a larger one variable. The form received is kept
//! (`AttrValue`), so re-encoding reproduces the bytes, and
//! [`Attribute::as_u64`] reads a number from either form.

use crate::error::Error;
use crate::ikev2::{len_u16, Reader};

/// Attribute Format bit: set for TV.
const AF: u16 = 0x8000;

/// An attribute's value, in the form its AF bit chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// AF=1: the value is the 16 bits in place of the length.
    Basic(u16),
    /// AF=0: a length, then that many octets.
    Variable(Vec<u8>),
}

/// One SA attribute (a Phase 1 class from RFC 2409 Appendix A, or a Phase 2
/// class from RFC 2407 §4.5: which table applies depends on the proposal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute Type, without the AF bit (15 bits; a larger value is
    /// truncated to 15 bits on emit).
    pub kind: u16,
    pub value: AttrValue,
}

impl Attribute {
    pub fn basic(kind: u16, v: u16) -> Self {
        Attribute {
            kind,
            value: AttrValue::Basic(v),
        }
    }

    pub fn variable(kind: u16, v: Vec<u8>) -> Self {
        Attribute {
            kind,
            value: AttrValue::Variable(v),
        }
    }

    /// A number as RFC 2408 §3.3 wants it: basic when it fits in 16 bits,
    /// otherwise variable, 4 octets for a value that fits in 32 bits (what
    /// strongSwan, racoon and pluto send for large lifetimes) and 8 above.
    pub fn number(kind: u16, v: u64) -> Self {
        if let Ok(small) = u16::try_from(v) {
            Attribute::basic(kind, small)
        } else if let Ok(word) = u32::try_from(v) {
            Attribute::variable(kind, word.to_be_bytes().to_vec())
        } else {
            Attribute::variable(kind, v.to_be_bytes().to_vec())
        }
    }

    /// The value as a number: a basic value, or a variable one of 1 to 8
    /// octets read big-endian. `None` for an empty or longer variable value
    /// (an empty Life Duration must not read as "0 seconds").
    pub fn as_u64(&self) -> Option<u64> {
        match &self.value {
            AttrValue::Basic(v) => Some(u64::from(*v)),
            AttrValue::Variable(b) if !b.is_empty() && b.len() <= 8 => {
                Some(b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
            }
            AttrValue::Variable(_) => None,
        }
    }

    /// The value of an attribute class whose values are 16-bit numbers
    /// (algorithms, groups, key lengths, modes: RFC 2409 App. A, RFC 2407
    /// §4.5). `None` when the value does not fit, so `0x10007` never reads
    /// as AES-CBC (7): such a transform is unacceptable, not truncated.
    pub fn as_u16(&self) -> Option<u16> {
        self.as_u64().and_then(|v| u16::try_from(v).ok())
    }

    /// Read one attribute; a TLV length that overruns the input is
    /// `Truncated`.
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let t = r.u16()?;
        let kind = t & !AF;
        let value = if t & AF != 0 {
            AttrValue::Basic(r.u16()?)
        } else {
            let n = usize::from(r.u16()?);
            AttrValue::Variable(r.take(n)?.to_vec())
        };
        Ok(Attribute { kind, value })
    }

    /// Parse attributes until `b` is used up.
    pub(crate) fn parse_all(what: &'static str, b: &[u8]) -> Result<Vec<Self>, Error> {
        let mut r = Reader::new(what, b);
        let mut v = Vec::new();
        while !r.is_empty() {
            v.push(Attribute::parse(&mut r)?);
        }
        Ok(v)
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let kind = self.kind & !AF;
        match &self.value {
            AttrValue::Basic(v) => {
                out.extend_from_slice(&(kind | AF).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            AttrValue::Variable(v) => {
                out.extend_from_slice(&kind.to_be_bytes());
                out.extend_from_slice(&len_u16("ISAKMP attribute Length", v.len())?.to_be_bytes());
                out.extend_from_slice(v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::p1_attr;
    use super::*;

    fn encode(a: &Attribute) -> Vec<u8> {
        let mut b = Vec::new();
        a.emit(&mut b).unwrap();
        b
    }

    #[test]
    fn tv_and_tlv_layout() {
        // Encryption Algorithm = AES-CBC, as strongSwan sends it: 80 01 00 07.
        let a = Attribute::basic(p1_attr::ENCRYPTION_ALGORITHM, p1_attr::ENC_AES_CBC);
        assert_eq!(encode(&a), [0x80, 0x01, 0x00, 0x07]);
        // Life Duration 86400 s: does not fit 16 bits, so TLV of 4 octets.
        let a = Attribute::number(p1_attr::LIFE_DURATION, 86400);
        assert_eq!(encode(&a), [0x00, 0x0c, 0x00, 0x04, 0x00, 0x01, 0x51, 0x80]);
        assert_eq!(a.as_u64(), Some(86400));
        assert_eq!(Attribute::number(12, 28800), Attribute::basic(12, 28800));
        assert_eq!(Attribute::number(12, 1 << 40).as_u64(), Some(1 << 40));
        assert_eq!(
            Attribute::number(12, 1 << 40).value,
            AttrValue::Variable((1u64 << 40).to_be_bytes().to_vec())
        );
    }

    #[test]
    fn as_u64_edges() {
        assert_eq!(Attribute::variable(12, vec![]).as_u64(), None);
        assert_eq!(Attribute::variable(12, vec![1, 0, 0]).as_u64(), Some(0x10000));
        assert_eq!(Attribute::variable(12, vec![0xff; 8]).as_u64(), Some(u64::MAX));
        assert_eq!(Attribute::variable(12, vec![0; 9]).as_u64(), None);
        assert_eq!(Attribute::variable(1, vec![0, 1, 0, 7]).as_u16(), None);
        assert_eq!(Attribute::variable(1, vec![0, 0, 0, 7]).as_u16(), Some(7));
        assert_eq!(Attribute::basic(1, 0xffff).as_u16(), Some(0xffff));
    }

    #[test]
    fn roundtrip_and_truncation() {
        let attrs = [
            Attribute::basic(1, 5),
            Attribute::variable(0x7fff, vec![1, 2, 3]),
            Attribute::variable(6, vec![]),
        ];
        let mut b = Vec::new();
        for a in &attrs {
            a.emit(&mut b).unwrap();
        }
        assert_eq!(Attribute::parse_all("t", &b).unwrap(), attrs);
        for n in 1..b.len() {
            if n == 4 || n == 11 {
                continue; // attribute boundaries: a shorter list, not an error
            }
            assert!(Attribute::parse_all("t", &b[..n]).is_err(), "cut at {n}");
        }
        let mut big = Attribute::variable(1, vec![0; 70000]);
        assert!(big.emit(&mut Vec::new()).is_err());
        big.kind = 0xffff;
        big.value = AttrValue::Basic(1);
        assert_eq!(encode(&big), [0xff, 0xff, 0, 1]);
    }
}
