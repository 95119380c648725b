//! Payload lists in the notation of strongSwan's logs (`charon`'s
//! `message.c`), so that an IKEv1 exchange reads the same in both:
//!
//! ```text
//! parsed ID_PROT request 0 [ SA V V V V V ]
//! parsed ID_PROT response 0 [ KE No NAT-D NAT-D ]
//! generating ID_PROT request 0 [ ID HASH N(INITIAL_CONTACT) ]
//! generating QUICK_MODE request 3569767597 [ HASH SA No ID ID ]
//! generating INFORMATIONAL_V1 request 953359360 [ HASH N(DPD) ]
//! ```
//!
//! Notify types print strongSwan's short name where it has one that means
//! the same in IKEv1 (`notify::short_name`), else their number. Proposal and
//! Transform payloads never appear at the top level; an unknown type prints
//! as `U(<n>)`.

use super::notify;
use super::payload::Payload;
use core::fmt::Write;

/// `[ SA V V ]`; `[ ]` for no payloads.
pub fn summary(payloads: &[Payload]) -> String {
    let mut s = String::from("[ ");
    for p in payloads {
        let _ = match p {
            Payload::Sa(_) => write!(s, "SA"),
            Payload::Ke(_) => write!(s, "KE"),
            Payload::Id(_) => write!(s, "ID"),
            Payload::Cert { .. } => write!(s, "CERT"),
            Payload::CertReq { .. } => write!(s, "CERTREQ"),
            Payload::Hash(_) => write!(s, "HASH"),
            Payload::Sig(_) => write!(s, "SIG"),
            Payload::Nonce(_) => write!(s, "No"),
            Payload::Notify(n) => match notify::short_name(n.notify_type) {
                Some(name) => write!(s, "N({name})"),
                None => write!(s, "N({})", n.notify_type),
            },
            Payload::Delete(_) => write!(s, "D"),
            Payload::VendorId(_) => write!(s, "V"),
            Payload::NatD(_) => write!(s, "NAT-D"),
            Payload::NatOa(_) => write!(s, "NAT-OA"),
            Payload::Unknown { kind, .. } => write!(s, "U({kind})"),
        };
        s.push(' ');
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::super::{notify, DeletePayload, IdPayload, NotifyPayload};
    use super::*;

    fn n(t: u16) -> Payload {
        Payload::Notify(NotifyPayload {
            doi: 1,
            protocol: 1,
            spi: vec![],
            notify_type: t,
            data: vec![],
        })
    }

    #[test]
    fn strongswan_notation() {
        assert_eq!(summary(&[]), "[ ]");
        let id = IdPayload {
            id_type: 1,
            protocol: 0,
            port: 0,
            data: vec![],
        };
        let d = DeletePayload {
            doi: 1,
            protocol: 3,
            spi_size: 0,
            spis: vec![],
        };
        let ps = [
            Payload::Id(id.clone()),
            Payload::Hash(vec![]),
            n(notify::INITIAL_CONTACT),
            n(notify::R_U_THERE),
            n(notify::R_U_THERE_ACK),
            n(notify::NO_PROPOSAL_CHOSEN),
            n(notify::AUTHENTICATION_FAILED),
            n(notify::INVALID_ID_INFORMATION),
            n(notify::RESPONDER_LIFETIME),
            n(notify::INVALID_COOKIE),
            Payload::Delete(d),
            Payload::Ke(vec![]),
            Payload::Nonce(vec![]),
            Payload::NatD(vec![]),
            Payload::NatOa(id),
            Payload::VendorId(vec![]),
            Payload::Sig(vec![]),
            Payload::Cert {
                encoding: 4,
                data: vec![],
            },
            Payload::CertReq {
                encoding: 4,
                data: vec![],
            },
            Payload::Unknown { kind: 14, data: vec![] },
        ];
        assert_eq!(
            summary(&ps),
            "[ ID HASH N(INITIAL_CONTACT) N(DPD) N(DPD_ACK) N(NO_PROP) N(AUTH_FAILED) N(INVAL_ID) \
             N(RESP_LIFETIME) N(4) D KE No NAT-D NAT-OA V SIG CERT CERTREQ U(14) ]"
        );
    }
}
