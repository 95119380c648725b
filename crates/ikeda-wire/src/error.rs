//! Typed parse errors, sorted by who is at fault.

use core::fmt;

/// Who is at fault for an error, so callers can decide whether to count,
/// log loudly, or answer the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The bytes do not form a valid message: truncated, bad lengths.
    Malformed,
    /// The bytes parse, but the peer broke a protocol rule.
    PeerMisbehaved,
    /// Well-formed and legal, but something we do not implement.
    Incompatible,
    /// The caller (our own code or config) asked for something impossible.
    LocalMisuse,
}

/// A wire-format error. `what` names the structure or RFC field concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the structure needs.
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A field holds a value the RFC forbids.
    Malformed { what: &'static str },
    /// A field holds a legal value we do not support.
    Unsupported { what: &'static str, value: u32 },
    /// An output buffer handed in by the caller is too small.
    BufferTooSmall {
        what: &'static str,
        need: usize,
        have: usize,
    },
}

impl Error {
    pub fn fault(&self) -> Fault {
        match self {
            Error::Truncated { .. } | Error::Malformed { .. } => Fault::Malformed,
            Error::Unsupported { .. } => Fault::Incompatible,
            Error::BufferTooSmall { .. } => Fault::LocalMisuse,
        }
    }

    pub(crate) fn check_len(what: &'static str, need: usize, have: usize) -> Result<(), Error> {
        if have < need {
            Err(Error::Truncated { what, need, have })
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { what, need, have } => {
                write!(f, "{what}: truncated ({have} bytes, need {need})")
            }
            Error::Malformed { what } => write!(f, "{what}: malformed"),
            Error::Unsupported { what, value } => write!(f, "{what}: unsupported value {value:#x}"),
            Error::BufferTooSmall { what, need, have } => {
                write!(f, "{what}: buffer too small ({have} bytes, need {need})")
            }
        }
    }
}

impl std::error::Error for Error {}
