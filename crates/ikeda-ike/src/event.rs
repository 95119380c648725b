//! What the engines of both versions tell their caller: [`Event`]s (an SA
//! is up, install this CHILD SA, a negotiation failed and why), the keys of
//! SAs for the data plane and for key export, and [`Failure`], the reason
//! of a failure in the words a network engineer needs.

use ikeda_crypto::ike::{IkeKeys, IkeProposal, IkeSuite};
use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_wire::ikev2::TsRange;
use std::fmt;
use std::net::SocketAddr;

/// Why a negotiation failed, in the words a network engineer needs, typed
/// by who is at fault ([`Failure::fault`]): the two configurations (no
/// proposal, identities, selectors, [`Failure::Incompatible`], a refusal
/// that says so), the peer ([`Failure::PeerRefused`],
/// [`Failure::PeerMisbehaved`]), the path ([`Failure::PeerNotAnswering`]),
/// or this end ([`Failure::Local`]). A caller can act on the kind (retrying helps only
/// for some) and show the words as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No proposal in common: what the peer offered, what we accept.
    NoProposalChosen {
        exchange: &'static str,
        offered: String,
        accepted: String,
    },
    /// The peer said NO_PROPOSAL_CHOSEN to what we offered.
    PeerRejectedProposals { exchange: &'static str, offered: String },
    /// AUTH did not verify: most likely the pre-shared keys differ.
    AuthenticationFailed { detail: String },
    /// The peer's identity is not the one configured.
    IdMismatch { expected: String, received: String },
    /// The traffic selectors do not overlap.
    TsUnacceptable {
        ours_local: String,
        ours_remote: String,
        theirs_i: String,
        theirs_r: String,
    },
    /// Nothing came back after all retransmissions.
    PeerNotAnswering {
        exchange: &'static str,
        tries: u32,
        to: SocketAddr,
    },
    /// The peer refused with an error notification (RFC 7296 §3.10.1, RFC
    /// 2408 §3.14.1): in answer to our `exchange`, or (IKEv1, `None`) in an
    /// Informational exchange of its own. `notify` is its name.
    PeerRefused {
        exchange: Option<&'static str>,
        notify: String,
    },
    /// The peer sent what the protocol does not allow: a transform we did
    /// not offer, a payload missing, a key exchange value that is not one.
    PeerMisbehaved(String),
    /// The two configurations do not fit in a way no proposal list says: a
    /// key exchange group the peer insists on that we do not offer, Main
    /// Mode against Aggressive Mode.
    Incompatible(String),
    /// This end could not go on (a key could not be made, a message not
    /// built, the data plane lacks the negotiated algorithm): not the
    /// peer's doing.
    Local(String),
}

/// Where to look first for the cause of a [`Failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The two gateways' configurations disagree (proposals, identities,
    /// pre-shared key, traffic selectors, modes): fix one of them.
    Configuration,
    /// The peer refused for reasons of its own, or broke the protocol:
    /// its log says why.
    Peer,
    /// Nothing came back: the peer is down, or something on the path (a
    /// stateful firewall, a NAT, routing) drops our messages or its answers.
    Path,
    /// This gateway could not go on.
    Local,
}

impl Fault {
    /// The word `status` prints and `--json` carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Configuration => "configuration",
            Fault::Peer => "peer",
            Fault::Path => "path",
            Fault::Local => "local",
        }
    }
}

/// Error notifications (RFC 7296 §3.10.1, RFC 2408 §3.14.1) by which a peer
/// says that our offer does not fit its configuration.
const CONFIGURATION_NOTIFIES: [&str; 11] = [
    "NO_PROPOSAL_CHOSEN",
    "TS_UNACCEPTABLE",
    "AUTHENTICATION_FAILED",
    "INVALID_ID_INFORMATION",
    "INVALID_KE_PAYLOAD",
    "INVALID_HASH_INFORMATION",
    "INVALID_SIGNATURE",
    "SINGLE_PAIR_REQUIRED",
    "ATTRIBUTES_NOT_SUPPORTED",
    "INVALID_TRANSFORM_ID",
    "INVALID_PROTOCOL_ID",
];

impl Failure {
    /// Who is at fault, as far as this end can tell.
    pub fn fault(&self) -> Fault {
        match self {
            Failure::NoProposalChosen { .. }
            | Failure::PeerRejectedProposals { .. }
            | Failure::AuthenticationFailed { .. }
            | Failure::IdMismatch { .. }
            | Failure::TsUnacceptable { .. }
            | Failure::Incompatible(_) => Fault::Configuration,
            Failure::PeerRefused { notify, .. } if CONFIGURATION_NOTIFIES.iter().any(|n| notify.starts_with(n)) => {
                Fault::Configuration
            }
            Failure::PeerRefused { .. } | Failure::PeerMisbehaved(_) => Fault::Peer,
            Failure::PeerNotAnswering { .. } => Fault::Path,
            Failure::Local(_) => Fault::Local,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoProposalChosen {
                exchange,
                offered,
                accepted,
            } => write!(
                f,
                "no proposal chosen in {exchange}: peer offered {offered}; we accept {accepted}"
            ),
            Failure::PeerRejectedProposals { exchange, offered } => {
                write!(
                    f,
                    "peer answered NO_PROPOSAL_CHOSEN in {exchange}: we offered {offered}"
                )
            }
            Failure::AuthenticationFailed { detail } => {
                write!(
                    f,
                    "authentication failed ({detail}): the pre-shared keys most likely differ"
                )
            }
            Failure::IdMismatch { expected, received } => {
                write!(f, "peer identity mismatch: expected {expected}, peer sent {received}")
            }
            Failure::TsUnacceptable {
                ours_local,
                ours_remote,
                theirs_i,
                theirs_r,
            } => write!(
                f,
                "traffic selectors unacceptable (TS_UNACCEPTABLE): ours {ours_local} === {ours_remote}, \
                 proposed TSi {theirs_i} TSr {theirs_r}"
            ),
            Failure::PeerNotAnswering { exchange, tries, to } => {
                write!(
                    f,
                    "peer not answering: {exchange} sent {tries} times to {to} without a response"
                )
            }
            Failure::PeerRefused {
                exchange: Some(x),
                notify,
            } => write!(f, "peer answered {x} with {notify}"),
            Failure::PeerRefused { exchange: None, notify } => write!(f, "peer said {notify}"),
            Failure::PeerMisbehaved(s) | Failure::Incompatible(s) | Failure::Local(s) => f.write_str(s),
        }
    }
}

/// Keys and parameters of a negotiated CHILD SA, for the data plane.
#[derive(Debug, Clone)]
pub struct ChildSaInfo {
    pub conn: String,
    pub algorithm: EspAlgorithm,
    pub esn: bool,
    /// Our inbound SPI (the peer sends with it) and the peer's.
    pub spi_in: u32,
    pub spi_out: u32,
    pub enc_in: SecretBytes,
    pub auth_in: Option<SecretBytes>,
    pub enc_out: SecretBytes,
    pub auth_out: Option<SecretBytes>,
    /// Negotiated selectors from our side.
    pub local_ts: Vec<TsRange>,
    pub remote_ts: Vec<TsRange>,
    /// Outer addresses; with `udp_encap` the ports are those of IKE on 4500.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub udp_encap: bool,
    /// The peer said it takes full trains of ESP in UDP
    /// (`ikeda_wire::udp_gso::TRAINS_VENDOR_ID`, in an authenticated
    /// IKE_AUTH or in IKEv1's phase 1): the data plane may send it
    /// `FULL_TRAIN`s instead of `TRAIN_SEGMENTS`.
    pub peer_takes_trains: bool,
    /// A rekey: the inbound SPI of the CHILD SA this one replaces.
    pub replaces: Option<u32>,
    /// Send on the new SA right away. The responder of a rekey waits for
    /// [`Event::ChildSaActivate`] (the old SA's DELETE), so the initiator
    /// has its inbound SA before the first packet arrives on it.
    pub activate_outbound: bool,
    /// IKEv1: which of the connection's selector pairs this SA serves (one
    /// Quick Mode per pair); 0 for IKEv2, whose CHILD SA carries them all.
    pub pair: usize,
    /// IPComp negotiated with it (RFC 3173): our CPI and the peer's.
    pub ipcomp: Option<(u16, u16)>,
}

/// An IKEv1 phase-1 SA's secrets (RFC 2409 §5), for key export: Wireshark's
/// `ikev1_decryption_table` takes the initiator cookie and the encryption
/// key; the key log gets all of it, with the first phase-1 IV and, once
/// phase 1 is established, its last CBC block.
///
/// The engine sends this twice per phase-1 SA: when the keys are derived
/// (`phase1_last_block` `None`: a failing phase 1 can still be read) and
/// when the SA is established (`Some`).
#[derive(Debug, Clone)]
pub struct V1KeyInfo {
    pub conn: String,
    pub icookie: u64,
    pub rcookie: u64,
    pub initiator: bool,
    pub suite: IkeSuite,
    pub skeyid: SecretBytes,
    pub skeyid_d: SecretBytes,
    pub skeyid_a: SecretBytes,
    pub skeyid_e: SecretBytes,
    pub enc_key: SecretBytes,
    pub iv: Vec<u8>,
    /// The last CBC ciphertext block of phase 1 (Main Mode message 6, or
    /// Aggressive Mode's last encrypted message; the first IV when none
    /// was encrypted), from which the IV of every later exchange is
    /// `hash(block | M-ID)` (RFC 2409 App. B). Not secret (it is on the
    /// wire), but a reader of a capture that misses phase 1 has no other
    /// way to it.
    pub phase1_last_block: Option<Vec<u8>>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// A suite in strongSwan's notation (`AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048`).
pub fn suite_name(s: &IkeSuite) -> String {
    IkeProposal::of_suite(s).name()
}

/// An IKE SA's algorithms and secrets (RFC 7296 §2.14), for key export.
#[derive(Debug, Clone)]
pub struct IkeKeyInfo {
    pub conn: String,
    pub spi_i: u64,
    pub spi_r: u64,
    pub initiator: bool,
    pub suite: IkeSuite,
    pub keys: IkeKeys,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// Start sending on the CHILD SA with this inbound SPI (make-before-break).
    ChildSaActivate {
        conn: String,
        spi_in: u32,
    },
    /// A line of the exchange log, in strongSwan's notation.
    Log {
        conn: String,
        line: String,
    },
    IkeSaUp {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        initiator: bool,
        suite: String,
        local: SocketAddr,
        remote: SocketAddr,
        nat: bool,
    },
    /// The keys of an IKE SA were derived (after IKE_SA_INIT, or by an IKE
    /// SA rekey): for key export only, never for logging.
    IkeSaKeys(IkeKeyInfo),
    /// The keys of an IKEv1 phase-1 SA (key export only).
    Ikev1Keys(V1KeyInfo),
    ChildSaUp(ChildSaInfo),
    ChildSaDown {
        conn: String,
        spi_in: u32,
        spi_out: u32,
    },
    IkeSaDown {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        reason: String,
    },
    Failed {
        conn: String,
        why: Failure,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal that names a configuration mismatch is the configurations'
    /// fault; other refusals the peer's; silence the path's.
    #[test]
    fn failures_say_where_to_look() {
        let refused = |n: &str| Failure::PeerRefused {
            exchange: Some("IKE_AUTH"),
            notify: n.into(),
        };
        assert_eq!(refused("TS_UNACCEPTABLE").fault(), Fault::Configuration);
        assert_eq!(refused("AUTHENTICATION_FAILED").fault(), Fault::Configuration);
        assert_eq!(refused("TEMPORARY_FAILURE").fault(), Fault::Peer);
        assert_eq!(refused("NO_ADDITIONAL_SAS").fault(), Fault::Peer);
        let silent = Failure::PeerNotAnswering {
            exchange: "IKE_SA_INIT",
            tries: 6,
            to: "192.168.50.12:500".parse().unwrap(),
        };
        assert_eq!(silent.fault().as_str(), "path");
        assert_eq!(Failure::Local("no key".into()).fault(), Fault::Local);
        assert_eq!(
            Failure::IdMismatch {
                expected: "a".into(),
                received: "b".into()
            }
            .fault(),
            Fault::Configuration
        );
    }
}
