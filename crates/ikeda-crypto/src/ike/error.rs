//! Why an IKE crypto operation failed, typed by who is at fault.

use core::fmt;

use super::DhGroup;

/// Errors of the IKEv2 crypto layer.
///
/// [`is_peer_fault`](IkeCryptoError::is_peer_fault) tells the engine whether
/// the peer sent something bad (answer with a notify or drop the message) or
/// we misused the API (a bug or a configuration error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeCryptoError {
    /// A transform we do not implement: the proposal is incompatible
    /// (NO_PROPOSAL_CHOSEN / INVALID_KE_PAYLOAD territory, RFC 7296 §3.10.1).
    Unsupported { transform: &'static str, id: u16 },
    /// Key material of the wrong length (local misuse).
    BadKeyLength {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// prf+ asked for more than 255 blocks (RFC 7296 §2.13).
    PrfPlusTooLong { requested: usize, max: usize },
    /// The peer's KE data is malformed or not a valid group element
    /// (RFC 7296 §3.4, RFC 6989).
    InvalidPublicValue { group: DhGroup, reason: &'static str },
    /// An SK payload body that cannot be a ciphertext of this cipher (too
    /// short, not block aligned, pad length beyond the plaintext).
    Malformed(&'static str),
    /// The ICV or AEAD tag did not verify: tampered, corrupted or wrong keys.
    IntegrityCheckFailed,
    /// The AUTH payload did not match (RFC 7296 §2.15: AUTHENTICATION_FAILED).
    AuthenticationFailed,
    /// The underlying library refused an operation it should not refuse.
    Internal(&'static str),
}

impl IkeCryptoError {
    /// True when the peer is at fault (its message was bad), false when the
    /// fault is local.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            IkeCryptoError::InvalidPublicValue { .. }
                | IkeCryptoError::Malformed(_)
                | IkeCryptoError::IntegrityCheckFailed
                | IkeCryptoError::AuthenticationFailed
        )
    }
}

impl fmt::Display for IkeCryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IkeCryptoError::Unsupported { transform, id } => write!(f, "unsupported {transform} transform {id}"),
            IkeCryptoError::BadKeyLength { what, need, have } => {
                write!(f, "{what} key must be {need} bytes, got {have}")
            }
            IkeCryptoError::PrfPlusTooLong { requested, max } => {
                write!(f, "prf+ asked for {requested} bytes, at most {max} (255 blocks)")
            }
            IkeCryptoError::InvalidPublicValue { group, reason } => {
                write!(f, "invalid {} public value: {reason}", group.name())
            }
            IkeCryptoError::Malformed(why) => write!(f, "malformed encrypted payload: {why}"),
            IkeCryptoError::IntegrityCheckFailed => f.write_str("integrity check failed"),
            IkeCryptoError::AuthenticationFailed => f.write_str("AUTH payload does not verify"),
            IkeCryptoError::Internal(what) => write!(f, "crypto library failure: {what}"),
        }
    }
}

impl std::error::Error for IkeCryptoError {}
