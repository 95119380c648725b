//! IKEv2 registries (RFC 7296 §3 and the IANA "Internet Key Exchange Version
//! 2 (IKEv2) Parameters" registry) as open newtypes: every value is
//! representable, known values have names, unknown ones print in hex.
//! Encryption and integrity transform IDs are shared with ESP and live in
//! [`crate::iana`].

use core::fmt;

macro_rules! registry {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty), $width:literal {
            $( $(#[$cmeta:meta])* $konst:ident = $val:literal, $text:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $repr);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($val); )*

            /// The registry's name for this value, if known.
            pub fn name(self) -> Option<&'static str> {
                #[allow(unreachable_patterns)]
                match self.0 {
                    $( $val => Some($text), )*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, concat!(stringify!($name), "({:#0", $width, "x})"), self.0),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

registry! {
    /// Exchange Type of the IKE header (RFC 7296 §3.1).
    ExchangeType(u8), "4" {
        IKE_SA_INIT = 34, "IKE_SA_INIT";
        IKE_AUTH = 35, "IKE_AUTH";
        CREATE_CHILD_SA = 36, "CREATE_CHILD_SA";
        INFORMATIONAL = 37, "INFORMATIONAL";
        /// RFC 5723.
        IKE_SESSION_RESUME = 38, "IKE_SESSION_RESUME";
        /// RFC 9242.
        IKE_INTERMEDIATE = 43, "IKE_INTERMEDIATE";
        /// RFC 9370.
        IKE_FOLLOWUP_KE = 44, "IKE_FOLLOWUP_KE";
    }
}

registry! {
    /// Payload Type, the value of a Next Payload field (RFC 7296 §3.2).
    /// Names are the RFC's notation (`IDi`, `TSr`, ...).
    PayloadType(u8), "4" {
        /// No Next Payload: the chain ends here.
        NONE = 0, "NONE";
        /// Security Association (§3.3).
        SA = 33, "SA";
        /// Key Exchange (§3.4).
        KE = 34, "KE";
        /// Identification - Initiator (§3.5).
        IDI = 35, "IDi";
        /// Identification - Responder (§3.5).
        IDR = 36, "IDr";
        /// Certificate (§3.6).
        CERT = 37, "CERT";
        /// Certificate Request (§3.7).
        CERTREQ = 38, "CERTREQ";
        /// Authentication (§3.8).
        AUTH = 39, "AUTH";
        /// Nonce, Ni and Nr (§3.9).
        NONCE = 40, "Ni/Nr";
        /// Notify (§3.10).
        NOTIFY = 41, "N";
        /// Delete (§3.11).
        DELETE = 42, "D";
        /// Vendor ID (§3.12).
        VENDOR_ID = 43, "V";
        /// Traffic Selector - Initiator (§3.13).
        TSI = 44, "TSi";
        /// Traffic Selector - Responder (§3.13).
        TSR = 45, "TSr";
        /// Encrypted and Authenticated (§3.14).
        SK = 46, "SK";
        /// Configuration (§3.15).
        CP = 47, "CP";
        /// Extensible Authentication (§3.16).
        EAP = 48, "EAP";
        /// Generic Secure Password Methods (RFC 6467); not implemented.
        GSPM = 49, "GSPM";
        /// Encrypted and Authenticated Fragment (RFC 7383 §2.5).
        SKF = 53, "SKF";
        /// Puzzle Solution (RFC 8019); not implemented.
        PS = 54, "PS";
    }
}

impl PayloadType {
    /// Payload types this module parses. Any other type is "unrecognized"
    /// in the sense of RFC 7296 §2.5 (skipped, or refused if critical).
    pub fn is_supported(self) -> bool {
        matches!(self.0, 33..=48 | 53)
    }
}

registry! {
    /// Transform Type (RFC 7296 §3.3.2, RFC 9370).
    TransformType(u8), "4" {
        /// Encryption Algorithm (ENCR).
        ENCR = 1, "ENCR";
        /// Pseudorandom Function (PRF).
        PRF = 2, "PRF";
        /// Integrity Algorithm (INTEG).
        INTEG = 3, "INTEG";
        /// Diffie-Hellman group (D-H), renamed Key Exchange Method (KE) by RFC 9370.
        DH = 4, "DH";
        /// Extended Sequence Numbers (ESN).
        ESN = 5, "ESN";
        /// Additional Key Exchange 1 (RFC 9370).
        ADDKE1 = 6, "ADDKE1";
        ADDKE2 = 7, "ADDKE2";
        ADDKE3 = 8, "ADDKE3";
        ADDKE4 = 9, "ADDKE4";
        ADDKE5 = 10, "ADDKE5";
        ADDKE6 = 11, "ADDKE6";
        ADDKE7 = 12, "ADDKE7";
    }
}

impl TransformType {
    /// RFC 9370's name for Transform Type 4.
    pub const KE: Self = Self::DH;
}

registry! {
    /// Transform Type 2, Pseudorandom Function Transform IDs (RFC 7296
    /// §3.3.2, RFC 4868).
    PrfTransformId(u16), "6" {
        PRF_HMAC_MD5 = 1, "PRF_HMAC_MD5";
        PRF_HMAC_SHA1 = 2, "PRF_HMAC_SHA1";
        PRF_HMAC_TIGER = 3, "PRF_HMAC_TIGER";
        PRF_AES128_XCBC = 4, "PRF_AES128_XCBC";
        PRF_HMAC_SHA2_256 = 5, "PRF_HMAC_SHA2_256";
        PRF_HMAC_SHA2_384 = 6, "PRF_HMAC_SHA2_384";
        PRF_HMAC_SHA2_512 = 7, "PRF_HMAC_SHA2_512";
        PRF_AES128_CMAC = 8, "PRF_AES128_CMAC";
    }
}

registry! {
    /// Transform Type 4, Diffie-Hellman Group / Key Exchange Method
    /// Transform IDs (RFC 7296 §3.3.2, RFC 3526, RFC 5903, RFC 8031), also
    /// the DH Group Num of the KE payload (§3.4).
    DhGroup(u16), "6" {
        /// No key exchange (a CHILD_SA proposal without PFS).
        NONE = 0, "NONE";
        MODP_768 = 1, "MODP_768";
        MODP_1024 = 2, "MODP_1024";
        MODP_1536 = 5, "MODP_1536";
        MODP_2048 = 14, "MODP_2048";
        MODP_3072 = 15, "MODP_3072";
        MODP_4096 = 16, "MODP_4096";
        MODP_6144 = 17, "MODP_6144";
        MODP_8192 = 18, "MODP_8192";
        ECP_256 = 19, "ECP_256";
        ECP_384 = 20, "ECP_384";
        ECP_521 = 21, "ECP_521";
        MODP_1024_160 = 22, "MODP_1024_160";
        MODP_2048_224 = 23, "MODP_2048_224";
        MODP_2048_256 = 24, "MODP_2048_256";
        ECP_192 = 25, "ECP_192";
        ECP_224 = 26, "ECP_224";
        ECP_224_BP = 27, "ECP_224_BP";
        ECP_256_BP = 28, "ECP_256_BP";
        ECP_384_BP = 29, "ECP_384_BP";
        ECP_512_BP = 30, "ECP_512_BP";
        CURVE_25519 = 31, "CURVE_25519";
        CURVE_448 = 32, "CURVE_448";
        ML_KEM_512 = 35, "ML_KEM_512";
        ML_KEM_768 = 36, "ML_KEM_768";
        ML_KEM_1024 = 37, "ML_KEM_1024";
    }
}

registry! {
    /// Transform Type 5, Extended Sequence Numbers Transform IDs (§3.3.2).
    EsnTransformId(u16), "6" {
        NO_ESN = 0, "NO_ESN";
        ESN = 1, "ESN";
    }
}

registry! {
    /// Transform Attribute Types (RFC 7296 §3.3.5).
    TransformAttributeType(u16), "6" {
        /// Key Length in bits, always TV format.
        KEY_LENGTH = 14, "KEY_LENGTH";
    }
}

registry! {
    /// Security Protocol Identifier (RFC 7296 §3.3.1), the Protocol ID of
    /// proposals, Notify and Delete payloads.
    ProtocolId(u8), "4" {
        /// Not a protocol: the Notify Protocol ID when no SPI is carried.
        NONE = 0, "NONE";
        IKE = 1, "IKE";
        AH = 2, "AH";
        ESP = 3, "ESP";
        FC_ESP_HEADER = 4, "FC_ESP_HEADER";
        FC_CT_AUTHENTICATION = 5, "FC_CT_AUTHENTICATION";
    }
}

registry! {
    /// Notify Message Types (RFC 7296 §3.10.1 and the IANA registry):
    /// error types below 16384, status types from 16384.
    NotifyType(u16), "6" {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1, "UNSUPPORTED_CRITICAL_PAYLOAD";
        INVALID_IKE_SPI = 4, "INVALID_IKE_SPI";
        INVALID_MAJOR_VERSION = 5, "INVALID_MAJOR_VERSION";
        INVALID_SYNTAX = 7, "INVALID_SYNTAX";
        INVALID_MESSAGE_ID = 9, "INVALID_MESSAGE_ID";
        INVALID_SPI = 11, "INVALID_SPI";
        NO_PROPOSAL_CHOSEN = 14, "NO_PROPOSAL_CHOSEN";
        INVALID_KE_PAYLOAD = 17, "INVALID_KE_PAYLOAD";
        AUTHENTICATION_FAILED = 24, "AUTHENTICATION_FAILED";
        SINGLE_PAIR_REQUIRED = 34, "SINGLE_PAIR_REQUIRED";
        NO_ADDITIONAL_SAS = 35, "NO_ADDITIONAL_SAS";
        INTERNAL_ADDRESS_FAILURE = 36, "INTERNAL_ADDRESS_FAILURE";
        FAILED_CP_REQUIRED = 37, "FAILED_CP_REQUIRED";
        TS_UNACCEPTABLE = 38, "TS_UNACCEPTABLE";
        INVALID_SELECTORS = 39, "INVALID_SELECTORS";
        /// RFC 4555.
        UNACCEPTABLE_ADDRESSES = 40, "UNACCEPTABLE_ADDRESSES";
        /// RFC 4555.
        UNEXPECTED_NAT_DETECTED = 41, "UNEXPECTED_NAT_DETECTED";
        /// RFC 5026.
        USE_ASSIGNED_HOA = 42, "USE_ASSIGNED_HoA";
        TEMPORARY_FAILURE = 43, "TEMPORARY_FAILURE";
        CHILD_SA_NOT_FOUND = 44, "CHILD_SA_NOT_FOUND";
        /// RFC 8019.
        STATE_NOT_FOUND = 47, "STATE_NOT_FOUND";
        INITIAL_CONTACT = 16384, "INITIAL_CONTACT";
        SET_WINDOW_SIZE = 16385, "SET_WINDOW_SIZE";
        ADDITIONAL_TS_POSSIBLE = 16386, "ADDITIONAL_TS_POSSIBLE";
        IPCOMP_SUPPORTED = 16387, "IPCOMP_SUPPORTED";
        NAT_DETECTION_SOURCE_IP = 16388, "NAT_DETECTION_SOURCE_IP";
        NAT_DETECTION_DESTINATION_IP = 16389, "NAT_DETECTION_DESTINATION_IP";
        COOKIE = 16390, "COOKIE";
        USE_TRANSPORT_MODE = 16391, "USE_TRANSPORT_MODE";
        HTTP_CERT_LOOKUP_SUPPORTED = 16392, "HTTP_CERT_LOOKUP_SUPPORTED";
        REKEY_SA = 16393, "REKEY_SA";
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394, "ESP_TFC_PADDING_NOT_SUPPORTED";
        NON_FIRST_FRAGMENTS_ALSO = 16395, "NON_FIRST_FRAGMENTS_ALSO";
        /// RFC 4555 (MOBIKE) from here to NO_NATS_ALLOWED.
        MOBIKE_SUPPORTED = 16396, "MOBIKE_SUPPORTED";
        ADDITIONAL_IP4_ADDRESS = 16397, "ADDITIONAL_IP4_ADDRESS";
        ADDITIONAL_IP6_ADDRESS = 16398, "ADDITIONAL_IP6_ADDRESS";
        NO_ADDITIONAL_ADDRESSES = 16399, "NO_ADDITIONAL_ADDRESSES";
        UPDATE_SA_ADDRESSES = 16400, "UPDATE_SA_ADDRESSES";
        COOKIE2 = 16401, "COOKIE2";
        NO_NATS_ALLOWED = 16402, "NO_NATS_ALLOWED";
        /// RFC 4478.
        AUTH_LIFETIME = 16403, "AUTH_LIFETIME";
        /// RFC 4739.
        MULTIPLE_AUTH_SUPPORTED = 16404, "MULTIPLE_AUTH_SUPPORTED";
        ANOTHER_AUTH_FOLLOWS = 16405, "ANOTHER_AUTH_FOLLOWS";
        /// RFC 5685.
        REDIRECT_SUPPORTED = 16406, "REDIRECT_SUPPORTED";
        REDIRECT = 16407, "REDIRECT";
        REDIRECTED_FROM = 16408, "REDIRECTED_FROM";
        /// RFC 5723.
        TICKET_LT_OPAQUE = 16409, "TICKET_LT_OPAQUE";
        TICKET_REQUEST = 16410, "TICKET_REQUEST";
        TICKET_ACK = 16411, "TICKET_ACK";
        TICKET_NACK = 16412, "TICKET_NACK";
        TICKET_OPAQUE = 16413, "TICKET_OPAQUE";
        LINK_ID = 16414, "LINK_ID";
        USE_WESP_MODE = 16415, "USE_WESP_MODE";
        ROHC_SUPPORTED = 16416, "ROHC_SUPPORTED";
        EAP_ONLY_AUTHENTICATION = 16417, "EAP_ONLY_AUTHENTICATION";
        CHILDLESS_IKEV2_SUPPORTED = 16418, "CHILDLESS_IKEV2_SUPPORTED";
        QUICK_CRASH_DETECTION = 16419, "QUICK_CRASH_DETECTION";
        IKEV2_MESSAGE_ID_SYNC_SUPPORTED = 16420, "IKEV2_MESSAGE_ID_SYNC_SUPPORTED";
        IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED = 16421, "IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED";
        IKEV2_MESSAGE_ID_SYNC = 16422, "IKEV2_MESSAGE_ID_SYNC";
        IPSEC_REPLAY_COUNTER_SYNC = 16423, "IPSEC_REPLAY_COUNTER_SYNC";
        SECURE_PASSWORD_METHODS = 16424, "SECURE_PASSWORD_METHODS";
        PSK_PERSIST = 16425, "PSK_PERSIST";
        PSK_CONFIRM = 16426, "PSK_CONFIRM";
        ERX_SUPPORTED = 16427, "ERX_SUPPORTED";
        IFOM_CAPABILITY = 16428, "IFOM_CAPABILITY";
        SENDER_REQUEST_ID = 16429, "SENDER_REQUEST_ID";
        /// RFC 7383 §2.3.
        IKEV2_FRAGMENTATION_SUPPORTED = 16430, "IKEV2_FRAGMENTATION_SUPPORTED";
        /// RFC 7427.
        SIGNATURE_HASH_ALGORITHMS = 16431, "SIGNATURE_HASH_ALGORITHMS";
        CLONE_IKE_SA_SUPPORTED = 16432, "CLONE_IKE_SA_SUPPORTED";
        CLONE_IKE_SA = 16433, "CLONE_IKE_SA";
        PUZZLE = 16434, "PUZZLE";
        USE_PPK = 16435, "USE_PPK";
        PPK_IDENTITY = 16436, "PPK_IDENTITY";
        NO_PPK_AUTH = 16437, "NO_PPK_AUTH";
        /// RFC 9242.
        INTERMEDIATE_EXCHANGE_SUPPORTED = 16438, "INTERMEDIATE_EXCHANGE_SUPPORTED";
        IP4_ALLOWED = 16439, "IP4_ALLOWED";
        IP6_ALLOWED = 16440, "IP6_ALLOWED";
        /// RFC 9370.
        ADDITIONAL_KEY_EXCHANGE = 16441, "ADDITIONAL_KEY_EXCHANGE";
        /// RFC 9347.
        USE_AGGFRAG = 16442, "USE_AGGFRAG";
        SUPPORTED_AUTH_METHODS = 16443, "SUPPORTED_AUTH_METHODS";
        SA_RESOURCE_INFO = 16444, "SA_RESOURCE_INFO";
    }
}

impl NotifyType {
    /// Error types are 0-16383, status types 16384-65535 (§3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

registry! {
    /// ID Type of the IDi/IDr payloads (RFC 7296 §3.5).
    IdType(u8), "4" {
        ID_IPV4_ADDR = 1, "ID_IPV4_ADDR";
        ID_FQDN = 2, "ID_FQDN";
        ID_RFC822_ADDR = 3, "ID_RFC822_ADDR";
        ID_IPV6_ADDR = 5, "ID_IPV6_ADDR";
        ID_DER_ASN1_DN = 9, "ID_DER_ASN1_DN";
        ID_DER_ASN1_GN = 10, "ID_DER_ASN1_GN";
        ID_KEY_ID = 11, "ID_KEY_ID";
        /// RFC 4595.
        ID_FC_NAME = 12, "ID_FC_NAME";
        /// RFC 7619.
        ID_NULL = 13, "ID_NULL";
    }
}

registry! {
    /// Auth Method of the AUTH payload (RFC 7296 §3.8, RFC 4754, RFC 7427).
    AuthMethod(u8), "4" {
        /// RSA Digital Signature.
        RSA_DIGITAL_SIGNATURE = 1, "RSA_DIGITAL_SIGNATURE";
        /// Shared Key Message Integrity Code (PSK).
        SHARED_KEY_MIC = 2, "SHARED_KEY_MESSAGE_INTEGRITY_CODE";
        /// DSS Digital Signature.
        DSS_DIGITAL_SIGNATURE = 3, "DSS_DIGITAL_SIGNATURE";
        ECDSA_SHA256_P256 = 9, "ECDSA_SHA256_P256";
        ECDSA_SHA384_P384 = 10, "ECDSA_SHA384_P384";
        ECDSA_SHA512_P521 = 11, "ECDSA_SHA512_P521";
        /// RFC 6467.
        GENERIC_SECURE_PASSWORD = 12, "GENERIC_SECURE_PASSWORD";
        /// RFC 7619.
        NULL_AUTHENTICATION = 13, "NULL_AUTHENTICATION";
        /// RFC 7427.
        DIGITAL_SIGNATURE = 14, "DIGITAL_SIGNATURE";
    }
}

registry! {
    /// TS Type of a traffic selector (RFC 7296 §3.13.1).
    TsType(u8), "4" {
        TS_IPV4_ADDR_RANGE = 7, "TS_IPV4_ADDR_RANGE";
        TS_IPV6_ADDR_RANGE = 8, "TS_IPV6_ADDR_RANGE";
        /// RFC 4595.
        TS_FC_ADDR_RANGE = 9, "TS_FC_ADDR_RANGE";
        /// RFC 9478.
        TS_SECLABEL = 10, "TS_SECLABEL";
    }
}

registry! {
    /// CFG Type of the Configuration payload (RFC 7296 §3.15).
    CfgType(u8), "4" {
        CFG_REQUEST = 1, "CFG_REQUEST";
        CFG_REPLY = 2, "CFG_REPLY";
        CFG_SET = 3, "CFG_SET";
        CFG_ACK = 4, "CFG_ACK";
    }
}

registry! {
    /// Configuration Attribute Types (RFC 7296 §3.15.1 and the IANA
    /// registry); 15 bits on the wire.
    CfgAttributeType(u16), "6" {
        INTERNAL_IP4_ADDRESS = 1, "INTERNAL_IP4_ADDRESS";
        INTERNAL_IP4_NETMASK = 2, "INTERNAL_IP4_NETMASK";
        INTERNAL_IP4_DNS = 3, "INTERNAL_IP4_DNS";
        INTERNAL_IP4_NBNS = 4, "INTERNAL_IP4_NBNS";
        INTERNAL_IP4_DHCP = 6, "INTERNAL_IP4_DHCP";
        APPLICATION_VERSION = 7, "APPLICATION_VERSION";
        INTERNAL_IP6_ADDRESS = 8, "INTERNAL_IP6_ADDRESS";
        INTERNAL_IP6_DNS = 10, "INTERNAL_IP6_DNS";
        INTERNAL_IP6_DHCP = 12, "INTERNAL_IP6_DHCP";
        INTERNAL_IP4_SUBNET = 13, "INTERNAL_IP4_SUBNET";
        SUPPORTED_ATTRIBUTES = 14, "SUPPORTED_ATTRIBUTES";
        INTERNAL_IP6_SUBNET = 15, "INTERNAL_IP6_SUBNET";
        MIP6_HOME_PREFIX = 16, "MIP6_HOME_PREFIX";
        INTERNAL_IP6_LINK = 17, "INTERNAL_IP6_LINK";
        INTERNAL_IP6_PREFIX = 18, "INTERNAL_IP6_PREFIX";
        HOME_AGENT_ADDRESS = 19, "HOME_AGENT_ADDRESS";
        P_CSCF_IP4_ADDRESS = 20, "P_CSCF_IP4_ADDRESS";
        P_CSCF_IP6_ADDRESS = 21, "P_CSCF_IP6_ADDRESS";
        FTT_KAT = 22, "FTT_KAT";
        EXTERNAL_SOURCE_IP4_NAT_INFO = 23, "EXTERNAL_SOURCE_IP4_NAT_INFO";
        TIMEOUT_PERIOD_FOR_LIVENESS_CHECK = 24, "TIMEOUT_PERIOD_FOR_LIVENESS_CHECK";
        /// RFC 8598.
        INTERNAL_DNS_DOMAIN = 25, "INTERNAL_DNS_DOMAIN";
        INTERNAL_DNSSEC_TA = 26, "INTERNAL_DNSSEC_TA";
    }
}

registry! {
    /// Certificate Encoding of CERT and CERTREQ (RFC 7296 §3.6, RFC 7670).
    CertEncoding(u8), "4" {
        PKCS7_WRAPPED_X509 = 1, "PKCS7_WRAPPED_X509";
        PGP = 2, "PGP";
        DNS_SIGNED_KEY = 3, "DNS_SIGNED_KEY";
        X509_CERTIFICATE_SIGNATURE = 4, "X509_CERTIFICATE_SIGNATURE";
        KERBEROS_TOKEN = 6, "KERBEROS_TOKEN";
        CERTIFICATE_REVOCATION_LIST = 7, "CERTIFICATE_REVOCATION_LIST";
        AUTHORITY_REVOCATION_LIST = 8, "AUTHORITY_REVOCATION_LIST";
        SPKI = 9, "SPKI";
        X509_CERTIFICATE_ATTRIBUTE = 10, "X509_CERTIFICATE_ATTRIBUTE";
        RAW_RSA_KEY = 11, "RAW_RSA_KEY";
        HASH_AND_URL_X509_CERTIFICATE = 12, "HASH_AND_URL_X509_CERTIFICATE";
        HASH_AND_URL_X509_BUNDLE = 13, "HASH_AND_URL_X509_BUNDLE";
        OCSP_CONTENT = 14, "OCSP_CONTENT";
        RAW_PUBLIC_KEY = 15, "RAW_PUBLIC_KEY";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hex_for_unknowns() {
        assert_eq!(ExchangeType::IKE_SA_INIT.to_string(), "IKE_SA_INIT");
        assert_eq!(ExchangeType(99).to_string(), "ExchangeType(0x63)");
        assert_eq!(PayloadType::IDI.to_string(), "IDi");
        assert_eq!(PayloadType(200).to_string(), "PayloadType(0xc8)");
        assert_eq!(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED.0, 16430);
        assert_eq!(NotifyType(0x4e20).to_string(), "NotifyType(0x4e20)");
        assert_eq!(format!("{:?}", DhGroup::CURVE_25519), "CURVE_25519");
        assert_eq!(DhGroup(31), DhGroup::CURVE_25519);
        assert_eq!(TransformType::KE, TransformType::DH);
        assert!(NotifyType::NO_PROPOSAL_CHOSEN.is_error());
        assert!(!NotifyType::COOKIE.is_error());
        assert!(PayloadType::SKF.is_supported());
        assert!(!PayloadType::GSPM.is_supported());
        assert!(!PayloadType::NONE.is_supported());
    }
}
