//! Generic Payload Header, RFC 7296 §3.2, and the walk along a payload chain.
//!
//! ```text
//!                      1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Payload Length counts the generic header too, so it is at least 4.
//! The type of a payload is the Next Payload field of whatever precedes it
//! (the IKE header, or the previous payload). The SK and SKF payloads are
//! the exception (§3.14): they are last, and their Next Payload names the
//! first payload inside the ciphertext.

use super::iana::PayloadType;
use crate::error::Error;

mod field {
    pub const NEXT_PAYLOAD: usize = 0;
    pub const FLAGS: usize = 1;
    pub const LENGTH: core::ops::Range<usize> = 2..4;
}

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

/// The `what` of the error for an unrecognized payload with the Critical
/// bit set: `Error::Unsupported { what: CRITICAL_PAYLOAD, value: type }`.
pub const CRITICAL_PAYLOAD: &str = "IKEv2 critical payload of unrecognized type";

/// If `e` is the refusal of an unrecognized critical payload, its type: the
/// one octet of notification data of UNSUPPORTED_CRITICAL_PAYLOAD (§3.10.1).
pub fn unsupported_critical_payload(e: &Error) -> Option<PayloadType> {
    match e {
        Error::Unsupported { what, value } if *what == CRITICAL_PAYLOAD => Some(PayloadType(*value as u8)),
        _ => None,
    }
}

/// A checked view of a generic payload header (at least 4 bytes). The
/// Payload Length is not checked against the buffer: see [`PayloadIter`].
#[derive(Debug, Clone, Copy)]
pub struct GenericPayloadHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GenericPayloadHeader<T> {
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        Error::check_len(
            "IKEv2 generic payload header",
            GENERIC_HEADER_LEN,
            buffer.as_ref().len(),
        )?;
        Ok(GenericPayloadHeader { buffer })
    }

    /// Type of the payload after this one (for SK/SKF: the first payload
    /// inside the encrypted data).
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.buffer.as_ref()[field::NEXT_PAYLOAD])
    }

    /// C: the sender wants the whole message refused if this payload's type
    /// is not understood.
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & 0x80 != 0
    }

    /// Length in octets of this payload, generic header included.
    pub fn payload_length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenericPayloadHeader<T> {
    pub fn set_next_payload(&mut self, t: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = t.0;
    }

    pub fn set_payload_length(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }
}

/// One payload found by [`PayloadIter`]: its type (from the preceding Next
/// Payload field) and its body (after the generic header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    pub payload_type: PayloadType,
    pub critical: bool,
    /// This payload's own Next Payload field. For SK and SKF it is the type
    /// of the first inner payload; for the others the iterator follows it.
    pub next_payload: PayloadType,
    pub body: &'a [u8],
}

/// Walks a payload chain. Yields the payloads of supported types in order,
/// skips unrecognized ones whose Critical bit is clear and stops with an
/// error at an unrecognized critical one (§2.5). Stops after an SK or SKF
/// payload, which must end the chain (§3.14). Every error ends the walk.
///
/// Errors: a Payload Length below 4 or past the end of the data; data left
/// after the last payload (Next Payload NONE) or after SK.
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    next: PayloadType,
    rest: &'a [u8],
    done: bool,
}

impl<'a> PayloadIter<'a> {
    /// Walk `data`, whose first payload has type `first` (the Next Payload
    /// field of the IKE header, or of the SK payload for decrypted data).
    pub fn new(first: PayloadType, data: &'a [u8]) -> Self {
        PayloadIter {
            next: first,
            rest: data,
            done: false,
        }
    }

    fn step(&mut self) -> Result<Option<RawPayload<'a>>, Error> {
        loop {
            if self.next == PayloadType::NONE {
                if !self.rest.is_empty() {
                    return Err(Error::Malformed {
                        what: "IKEv2 payload chain: data after the last payload",
                    });
                }
                return Ok(None);
            }
            let h = GenericPayloadHeader::new_checked(self.rest)?;
            let len = h.payload_length() as usize;
            if len < GENERIC_HEADER_LEN {
                return Err(Error::Malformed {
                    what: "IKEv2 Payload Length below 4",
                });
            }
            Error::check_len("IKEv2 payload", len, self.rest.len())?;
            let payload_type = self.next;
            let raw = RawPayload {
                payload_type,
                critical: h.critical(),
                next_payload: h.next_payload(),
                body: &self.rest[GENERIC_HEADER_LEN..len],
            };
            self.rest = &self.rest[len..];
            if matches!(payload_type, PayloadType::SK | PayloadType::SKF) {
                if !self.rest.is_empty() {
                    return Err(Error::Malformed {
                        what: "IKEv2 SK payload is not the last payload",
                    });
                }
                self.next = PayloadType::NONE;
                self.done = true;
                return Ok(Some(raw));
            }
            self.next = raw.next_payload;
            if payload_type.is_supported() {
                return Ok(Some(raw));
            }
            if raw.critical {
                return Err(Error::Unsupported {
                    what: CRITICAL_PAYLOAD,
                    value: payload_type.0 as u32,
                });
            }
            // Unrecognized and not critical: skip it (§2.5).
        }
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(first: PayloadType, data: &[u8]) -> Result<Vec<(PayloadType, Vec<u8>)>, Error> {
        PayloadIter::new(first, data)
            .map(|r| r.map(|p| (p.payload_type, p.body.to_vec())))
            .collect()
    }

    #[test]
    fn walks_and_skips_unknown_non_critical() {
        // V(ab) -> unknown 200 (non-critical, body 1 2) -> N(...) end
        let data = [
            200, 0, 0, 5, 0xab, //
            41, 0, 0, 6, 1, 2, //
            0, 0, 0, 8, 0, 0, 0x40, 0x00,
        ];
        let got = walk(PayloadType::VENDOR_ID, &data).unwrap();
        assert_eq!(
            got,
            vec![
                (PayloadType::VENDOR_ID, vec![0xab]),
                (PayloadType::NOTIFY, vec![0, 0, 0x40, 0])
            ]
        );
    }

    #[test]
    fn critical_unknown_is_refused_with_its_type() {
        let data = [200, 0, 0, 5, 0xab, 0, 0x80, 0, 4];
        let e = walk(PayloadType::VENDOR_ID, &data).unwrap_err();
        assert_eq!(unsupported_critical_payload(&e), Some(PayloadType(200)));
        assert_eq!(e.fault(), crate::Fault::Incompatible);
        // The Critical bit of a known payload is ignored.
        let data = [0, 0x80, 0, 5, 0xab];
        assert_eq!(walk(PayloadType::VENDOR_ID, &data).unwrap().len(), 1);
    }

    #[test]
    fn bad_lengths() {
        // zero Payload Length
        assert!(matches!(
            walk(PayloadType::VENDOR_ID, &[0, 0, 0, 0]),
            Err(Error::Malformed { .. })
        ));
        // Payload Length past the end
        assert!(matches!(
            walk(PayloadType::VENDOR_ID, &[0, 0, 0, 9, 1]),
            Err(Error::Truncated { need: 9, have: 5, .. })
        ));
        // chain claims another payload but data ends
        assert!(matches!(
            walk(PayloadType::VENDOR_ID, &[43, 0, 0, 4]),
            Err(Error::Truncated { .. })
        ));
        // data after the last payload
        assert!(matches!(
            walk(PayloadType::VENDOR_ID, &[0, 0, 0, 4, 0]),
            Err(Error::Malformed { .. })
        ));
        // SK not last
        assert!(matches!(
            walk(PayloadType::SK, &[35, 0, 0, 4, 0, 0, 0, 4]),
            Err(Error::Malformed { .. })
        ));
        // empty chain
        assert_eq!(walk(PayloadType::NONE, &[]).unwrap(), vec![]);
    }

    #[test]
    fn sk_ends_the_walk_and_keeps_its_next_payload() {
        let data = [35, 0, 0, 6, 9, 9];
        let v: Vec<_> = PayloadIter::new(PayloadType::SK, &data).collect();
        assert_eq!(v.len(), 1);
        let p = v[0].as_ref().unwrap();
        assert_eq!(p.next_payload, PayloadType::IDI);
        assert_eq!(p.body, &[9, 9]);
    }
}
