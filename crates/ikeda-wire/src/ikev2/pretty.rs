//! Messages in the notation IPsec users read in strongSwan's logs
//! (`charon`'s `message.c`, `get_string`):
//!
//! ```text
//! IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) ]
//! IKE_AUTH request 1 [ IDi AUTH SA TSi TSr N(INIT_CONTACT) ]
//! IKE_AUTH response 1 [ EF(1/2) ]
//! INFORMATIONAL request 2 [ D ]
//! ```
//!
//! Payload names are strongSwan's short names (`No` for a nonce, `E` for the
//! still-encrypted SK payload, `EF(n/total)` for SKF); notify types use its
//! short names (`NATD_S_IP`, `INIT_CONTACT`, `NO_PROP`, ...), types it has
//! none for print their registry name, unknown ones `N(0xNNNN)`. A CP
//! payload prints as `CPRQ(ADDR DNS)`; EAP as `EAP/REQ/ID`.

use super::header::HeaderRepr;
use super::iana::{CfgAttributeType, CfgType, NotifyType};
use super::message::Payload;
use core::fmt::Write;

/// `IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ]`. For a message whose SK
/// payload has been decrypted, pass the header and the inner payloads.
pub fn summary(header: &HeaderRepr, payloads: &[Payload]) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", header.exchange_type);
    let _ = write!(
        s,
        " {} {} [ ",
        if header.is_request() { "request" } else { "response" },
        header.message_id
    );
    s.push_str(&payload_names(payloads));
    if !payloads.is_empty() {
        s.push(' ');
    }
    s.push(']');
    s
}

/// The payload list alone: `SA KE No N(NATD_S_IP) N(NATD_D_IP)`.
pub fn payload_names(payloads: &[Payload]) -> String {
    let mut s = String::new();
    for (i, p) in payloads.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = match p {
            Payload::Sa(_) => write!(s, "SA"),
            Payload::Ke(_) => write!(s, "KE"),
            Payload::IdI(_) => write!(s, "IDi"),
            Payload::IdR(_) => write!(s, "IDr"),
            Payload::Cert(_) => write!(s, "CERT"),
            Payload::CertReq(_) => write!(s, "CERTREQ"),
            Payload::Auth(_) => write!(s, "AUTH"),
            Payload::Nonce(_) => write!(s, "No"),
            Payload::Notify(n) => match notify_short_name(n.notify_type) {
                Some(name) => write!(s, "N({name})"),
                None => write!(s, "N({:#06x})", n.notify_type.0),
            },
            Payload::Delete(_) => write!(s, "D"),
            Payload::VendorId(_) => write!(s, "V"),
            Payload::TsI(_) => write!(s, "TSi"),
            Payload::TsR(_) => write!(s, "TSr"),
            Payload::Sk(_) => write!(s, "E"),
            Payload::Cp(cp) => {
                s.push_str(match cp.cfg_type {
                    CfgType::CFG_REQUEST => "CPRQ",
                    CfgType::CFG_REPLY => "CPRP",
                    CfgType::CFG_SET => "CPS",
                    CfgType::CFG_ACK => "CPA",
                    _ => "CP",
                });
                for (j, a) in cp.attributes.iter().enumerate() {
                    s.push(if j == 0 { '(' } else { ' ' });
                    match cfg_attribute_short_name(a.attr_type) {
                        Some(n) => s.push_str(n),
                        None => {
                            let _ = write!(s, "{}", a.attr_type.0);
                        }
                    }
                }
                if !cp.attributes.is_empty() {
                    s.push(')');
                }
                Ok(())
            }
            Payload::Eap(e) => {
                let code = match e.code() {
                    1 => "REQ".to_string(),
                    2 => "RES".to_string(),
                    3 => "SUCC".to_string(),
                    4 => "FAIL".to_string(),
                    c => c.to_string(),
                };
                let _ = write!(s, "EAP/{code}");
                match e.eap_type() {
                    Some(t) => write!(s, "/{}", eap_type_short_name(t).map_or(t.to_string(), str::to_string)),
                    None => Ok(()),
                }
            }
            Payload::Skf(f) => write!(s, "EF({}/{})", f.fragment_number, f.total_fragments),
        };
    }
    s
}

/// strongSwan's short notify names (`notify_type_short_names`); for types
/// it has none for, the registry name.
pub(crate) fn notify_short_name(t: NotifyType) -> Option<&'static str> {
    Some(match t {
        NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD => "CRIT",
        NotifyType::INVALID_IKE_SPI => "INVAL_IKE_SPI",
        NotifyType::INVALID_MAJOR_VERSION => "INVAL_MAJOR",
        NotifyType::INVALID_SYNTAX => "INVAL_SYN",
        NotifyType::INVALID_MESSAGE_ID => "INVAL_MID",
        NotifyType::INVALID_SPI => "INVAL_SPI",
        NotifyType::NO_PROPOSAL_CHOSEN => "NO_PROP",
        NotifyType::INVALID_KE_PAYLOAD => "INVAL_KE",
        NotifyType::AUTHENTICATION_FAILED => "AUTH_FAILED",
        NotifyType::SINGLE_PAIR_REQUIRED => "SINGLE_PAIR",
        NotifyType::NO_ADDITIONAL_SAS => "NO_ADD_SAS",
        NotifyType::INTERNAL_ADDRESS_FAILURE => "INT_ADDR_FAIL",
        NotifyType::FAILED_CP_REQUIRED => "FAIL_CP_REQ",
        NotifyType::TS_UNACCEPTABLE => "TS_UNACCEPT",
        NotifyType::INVALID_SELECTORS => "INVAL_SEL",
        NotifyType::UNACCEPTABLE_ADDRESSES => "UNACCEPT_ADDR",
        NotifyType::UNEXPECTED_NAT_DETECTED => "UNEXPECT_NAT",
        NotifyType::USE_ASSIGNED_HOA => "ASSIGNED_HoA",
        NotifyType::TEMPORARY_FAILURE => "TEMP_FAIL",
        NotifyType::CHILD_SA_NOT_FOUND => "NO_CHILD_SA",
        NotifyType::STATE_NOT_FOUND => "NO_STATE",
        NotifyType::INITIAL_CONTACT => "INIT_CONTACT",
        NotifyType::SET_WINDOW_SIZE => "SET_WINSIZE",
        NotifyType::ADDITIONAL_TS_POSSIBLE => "ADD_TS_POSS",
        NotifyType::IPCOMP_SUPPORTED => "IPCOMP_SUP",
        NotifyType::NAT_DETECTION_SOURCE_IP => "NATD_S_IP",
        NotifyType::NAT_DETECTION_DESTINATION_IP => "NATD_D_IP",
        NotifyType::COOKIE => "COOKIE",
        NotifyType::USE_TRANSPORT_MODE => "USE_TRANSP",
        NotifyType::HTTP_CERT_LOOKUP_SUPPORTED => "HTTP_CERT_LOOK",
        NotifyType::REKEY_SA => "REKEY_SA",
        NotifyType::ESP_TFC_PADDING_NOT_SUPPORTED => "ESP_TFC_PAD_N",
        NotifyType::NON_FIRST_FRAGMENTS_ALSO => "NON_FIRST_FRAG",
        NotifyType::MOBIKE_SUPPORTED => "MOBIKE_SUP",
        NotifyType::ADDITIONAL_IP4_ADDRESS => "ADD_4_ADDR",
        NotifyType::ADDITIONAL_IP6_ADDRESS => "ADD_6_ADDR",
        NotifyType::NO_ADDITIONAL_ADDRESSES => "NO_ADD_ADDR",
        NotifyType::UPDATE_SA_ADDRESSES => "UPD_SA_ADDR",
        NotifyType::COOKIE2 => "COOKIE2",
        NotifyType::NO_NATS_ALLOWED => "NO_NATS",
        NotifyType::AUTH_LIFETIME => "AUTH_LFT",
        NotifyType::MULTIPLE_AUTH_SUPPORTED => "MULT_AUTH",
        NotifyType::ANOTHER_AUTH_FOLLOWS => "AUTH_FOLLOWS",
        NotifyType::REDIRECT_SUPPORTED => "REDIR_SUP",
        NotifyType::REDIRECT => "REDIR",
        NotifyType::REDIRECTED_FROM => "REDIR_FROM",
        NotifyType::TICKET_LT_OPAQUE => "TKT_LT_OPAK",
        NotifyType::TICKET_REQUEST => "TKT_REQ",
        NotifyType::TICKET_ACK => "TKT_ACK",
        NotifyType::TICKET_NACK => "TKT_NACK",
        NotifyType::TICKET_OPAQUE => "TKT_OPAK",
        NotifyType::LINK_ID => "LINK_ID",
        NotifyType::USE_WESP_MODE => "WESP_MODE",
        NotifyType::ROHC_SUPPORTED => "ROHC_SUP",
        NotifyType::EAP_ONLY_AUTHENTICATION => "EAP_ONLY",
        NotifyType::CHILDLESS_IKEV2_SUPPORTED => "CHDLESS_SUP",
        NotifyType::QUICK_CRASH_DETECTION => "CRASH_DET",
        NotifyType::IKEV2_MESSAGE_ID_SYNC_SUPPORTED => "MSG_ID_SYN_SUP",
        NotifyType::IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED => "RPL_CTR_SYN_SUP",
        NotifyType::IKEV2_MESSAGE_ID_SYNC => "MSG_ID_SYN",
        NotifyType::IPSEC_REPLAY_COUNTER_SYNC => "RPL_CTR_SYN",
        NotifyType::SECURE_PASSWORD_METHODS => "SEC_PASSWD",
        NotifyType::PSK_PERSIST => "PSK_PST",
        NotifyType::PSK_CONFIRM => "PSK_CFM",
        NotifyType::ERX_SUPPORTED => "ERX_SUP",
        NotifyType::IFOM_CAPABILITY => "IFOM_CAP",
        NotifyType::SENDER_REQUEST_ID => "SENDER_REQ_ID",
        NotifyType::IKEV2_FRAGMENTATION_SUPPORTED => "FRAG_SUP",
        NotifyType::SIGNATURE_HASH_ALGORITHMS => "HASH_ALG",
        NotifyType::USE_PPK => "USE_PPK",
        NotifyType::PPK_IDENTITY => "PPK_ID",
        NotifyType::NO_PPK_AUTH => "NO_PPK",
        NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED => "IKE_INT_SUP",
        NotifyType::ADDITIONAL_KEY_EXCHANGE => "ADD_KE",
        NotifyType::USE_AGGFRAG => "AGGFRAG",
        NotifyType::SA_RESOURCE_INFO => "RES_INFO",
        t => return t.name(),
    })
}

/// strongSwan's `configuration_attribute_type_short_names`.
fn cfg_attribute_short_name(t: CfgAttributeType) -> Option<&'static str> {
    const NAMES: [&str; 26] = [
        "ADDR", "MASK", "DNS", "NBNS", "EXP", "DHCP", "VER", "ADDR6", "MASK6", "DNS6", "NBNS6", "DHCP6", "SUBNET",
        "SUP", "SUBNET6", "MIP6HPFX", "LINK6", "PFX6", "HOA", "PCSCF4", "PCSCF6", "FTTKAT", "EXTSRC4", "DPD", "DOMAIN",
        "TA",
    ];
    (t.0 as usize).checked_sub(1).and_then(|i| NAMES.get(i)).copied()
}

/// strongSwan's `eap_type_short_names` for the common methods.
fn eap_type_short_name(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "ID",
        2 => "NTF",
        3 => "NAK",
        4 => "MD5",
        5 => "OTP",
        6 => "GTC",
        13 => "TLS",
        18 => "SIM",
        21 => "TTLS",
        23 => "AKA",
        25 => "PEAP",
        26 => "MSCHAPV2",
        33 => "MSTLV",
        38 => "TNC",
        54 => "PT",
        254 => "EXP",
        _ => return None,
    })
}
