//! Message-level tests: captured strongSwan vectors, a hand-built
//! IKE_SA_INIT from the RFC layout, malformed input of every kind, and
//! round-trip property tests over random payloads of every type.

use super::*;
use crate::iana::IpProtocol;
use std::net::IpAddr;

/// IKE_SA_INIT request 0 as strongSwan 5.9 sent it in the lab (232 bytes).
/// charon logged: `generating IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(REDIR_SUP) ]`
const SA_INIT_REQUEST: &[&str] = &[
    "f56764c321d0656b00000000000000002120220800000000000000e82200002800000024010100030300000c01000014",
    "800e00800300000802000005000000080400001f28000028001f00008e52fcf2959f52d272af4370ce79efc2b19a2772",
    "b105674601205e634c1bd952290000248e0bd2c361aa60338cee0393edc51514bec4e3d4d20beba311a9a9631bb521e8",
    "2900001c00004004f4e717d18c72b2efa739e900d0e1a3a9e366e0542900001c000040059e862baf171a07173a1ad352",
    "3301ea8bfc416eed290000080000402e290000100000402f00020003000400050000000800004016",
];

/// Its IKE_SA_INIT response 0 (240 bytes). charon logged: `parsed IKE_SA_INIT response 0
/// [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(CHDLESS_SUP) N(MULT_AUTH) ]`
const SA_INIT_RESPONSE: &[&str] = &[
    "f56764c321d0656b315d5647f9ea52d82120222000000000000000f02200002800000024010100030300000c01000014",
    "800e00800300000802000005000000080400001f28000028001f0000291ce19c0b86aeaa56c25b4fd6b865aa4512117f",
    "758d52b214a83b02fce3dc4e290000249353a87c87213883639b6ada4b138e43ed675c0c62a56b5d9364fe034dd7d4d5",
    "2900001c000040048605d38c5ed8636ec9ee622de0aec163ddb849732900001c00004005d9d1664ecb4325b07ddf4e31",
    "ae7b3788daf6d307290000080000402e290000100000402f000200030004000529000008000040220000000800004014",
];

/// The IKE_AUTH request 1 that followed, on UDP 4500 without its non-ESP marker
/// (385 bytes): one SK payload whose first inner payload is IDi.
const AUTH_REQUEST: &[&str] = &[
    "f56764c321d0656b315d5647f9ea52d82e2023080000000100000181230001659518f94d52b029e069efffc70884d0d1",
    "94539f4e90b25ef52c4d0ac000ed404b8004b3d72b8055281940dad4d6e01be957e07fe501332f524786a348cc8697bd",
    "40abf5836fec87167e633f322a45cad6ab1c5930b84a19f26bf6f0ad0439147a4abb26b0032350f0fa28117fe19f3fb3",
    "2165e4cdc6f5897515840f444534491b89897dc41b8c3775a9542d9c86d58f7e6002889eb2a162a4367311b11563a0ef",
    "d5e74363beb04b5cc64737bd9aa287fedad77d7c30291f98bbccc9120b6ac8a916d86f599d79f747e7226b00ee136eb6",
    "e51b2b9d2127c14af9eb6a9ae290f6b956510c8f0a7817df459a7a801b2f0228171fb60249cc63c9e9bd274f8f76ea05",
    "eb7878f8439de332827ccdc5fa5ddd67c5c587ff027f3650a73792e9011a15a1b2876175732c169e3fa8f0f9eb45e4b7",
    "3c483209e78cddc03b1192e9ed1dc9f0febe4244c4452729e4c838b7d1f937b3ae9a38a53961259069b76afcfe63c89a",
    "22",
];

fn unhex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn u8(&mut self) -> u8 {
        self.next() as u8
    }
    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.u8()).collect()
    }
    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// Parse, check that emitting gives the same bytes back, and return it.
fn parse_exact(bytes: &[u8]) -> Message {
    let m = Message::parse(bytes).unwrap();
    assert_eq!(m.emit().unwrap(), bytes, "emit(parse(x)) != x");
    m
}

#[test]
fn strongswan_ike_sa_init_request() {
    let b = unhex(SA_INIT_REQUEST);
    assert_eq!(b.len(), 232);
    let m = parse_exact(&b);
    assert_eq!(
        m.summary(),
        "IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(REDIR_SUP) ]"
    );
    let h = &m.header;
    assert_eq!(h.initiator_spi, 0xf567_64c3_21d0_656b);
    assert_eq!(h.responder_spi, 0);
    assert_eq!(h.exchange_type, ExchangeType::IKE_SA_INIT);
    assert!(h.flags.initiator() && !h.flags.response());
    assert_eq!(h.message_id, 0);
    let Payload::Sa(sa) = &m.payloads[0] else {
        panic!("first payload is not SA")
    };
    assert_eq!(sa.proposals.len(), 1);
    let p = &sa.proposals[0];
    assert_eq!((p.proposal_num, p.protocol_id, p.spi.len()), (1, ProtocolId::IKE, 0));
    assert_eq!(p.to_string(), "IKE:ENCR_AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519");
    let Payload::Ke(ke) = &m.payloads[1] else {
        panic!("second payload is not KE")
    };
    assert_eq!((ke.dh_group, ke.data.len()), (DhGroup::CURVE_25519, 32));
    let Payload::Nonce(n) = &m.payloads[2] else {
        panic!("third payload is not a nonce")
    };
    assert_eq!(n.nonce.len(), 32);
    let natd = find_notify(&m.payloads, NotifyType::NAT_DETECTION_SOURCE_IP).unwrap();
    assert_eq!(natd.data.len(), 20); // SHA-1 (§2.23)
    let hash_alg = find_notify(&m.payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS).unwrap();
    assert_eq!(hash_alg.data, [0, 2, 0, 3, 0, 4, 0, 5]); // RFC 7427 §4: SHA2-256..512, Identity
}

#[test]
fn strongswan_ike_sa_init_response() {
    let b = unhex(SA_INIT_RESPONSE);
    assert_eq!(b.len(), 240);
    let m = parse_exact(&b);
    assert_eq!(
        m.summary(),
        "IKE_SA_INIT response 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(CHDLESS_SUP) N(MULT_AUTH) ]"
    );
    assert!(m.header.flags.response() && !m.header.flags.initiator());
    assert_eq!(m.header.responder_spi, 0x315d_5647_f9ea_52d8);
    assert!(find_notify(&m.payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some());
}

#[test]
fn strongswan_ike_auth_request_is_one_opaque_sk_payload() {
    let b = unhex(AUTH_REQUEST);
    let m = parse_exact(&b);
    assert_eq!(m.summary(), "IKE_AUTH request 1 [ E ]");
    assert_eq!(m.payloads.len(), 1);
    let sk = m.sk().unwrap();
    assert_eq!(sk.first_payload, PayloadType::IDI);
    assert_eq!(sk.body.len(), 385 - HEADER_LEN - 4);
    // Re-laying it out with emit_sk_message gives the same header and SK
    // header, i.e. the same AEAD associated data.
    let (mut out, body) = emit_sk_message(&m.header, &[], PayloadType::IDI, sk.body.len()).unwrap();
    assert_eq!(body, HEADER_LEN + 4..385);
    out[body].copy_from_slice(&sk.body);
    assert_eq!(out, b);
}

/// An IKE_SA_INIT request built by hand from the RFC 7296 layout (§3.1 -
/// §3.10), byte by byte, independently of the emitter.
#[test]
fn hand_built_ike_sa_init_from_the_rfc_layout() {
    let mut b = Vec::new();
    // IKE header: SPIi, SPIr, Next Payload SA, version 2.0, IKE_SA_INIT, I
    b.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
    // SA: Next KE; one proposal #1 IKE, no SPI, 4 transforms
    b.extend_from_slice(&[34, 0, 0, 48]);
    b.extend_from_slice(&[0, 0, 0, 44, 1, 1, 0, 4]);
    b.extend_from_slice(&[3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 1, 0]); // ENCR_AES_CBC, Key Length 256
    b.extend_from_slice(&[3, 0, 0, 8, 2, 0, 0, 5]); // PRF_HMAC_SHA2_256
    b.extend_from_slice(&[3, 0, 0, 8, 3, 0, 0, 12]); // AUTH_HMAC_SHA2_256_128
    b.extend_from_slice(&[0, 0, 0, 8, 4, 0, 0, 19]); // ECP_256
                                                     // KE: Next Nonce; group 19, 64 octets
    b.extend_from_slice(&[40, 0, 0, 72, 0, 19, 0, 0]);
    b.extend_from_slice(&[0x5a; 64]);
    // Nonce: Next N; 16 octets
    b.extend_from_slice(&[41, 0, 0, 20]);
    b.extend_from_slice(&[0xa5; 16]);
    // N(NAT_DETECTION_SOURCE_IP), Next N
    b.extend_from_slice(&[41, 0, 0, 28, 0, 0, 0x40, 0x04]);
    b.extend_from_slice(&[0x11; 20]);
    // N(NAT_DETECTION_DESTINATION_IP), last
    b.extend_from_slice(&[0, 0, 0, 28, 0, 0, 0x40, 0x05]);
    b.extend_from_slice(&[0x22; 20]);
    let len = b.len() as u32;
    b[24..28].copy_from_slice(&len.to_be_bytes());

    let m = parse_exact(&b);
    assert_eq!(
        m.summary(),
        "IKE_SA_INIT request 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) ]"
    );

    // The same message from typed values.
    let built = Message {
        header: HeaderRepr {
            initiator_spi: 0x0102_0304_0506_0708,
            responder_spi: 0,
            minor_version: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags::new(true, false),
            message_id: 0,
        },
        payloads: vec![
            Payload::Sa(SaPayload {
                proposals: vec![Proposal {
                    proposal_num: 1,
                    protocol_id: ProtocolId::IKE,
                    spi: vec![],
                    transforms: vec![
                        Transform::encr(EncrTransformId::ENCR_AES_CBC, Some(256)),
                        Transform::prf(PrfTransformId::PRF_HMAC_SHA2_256),
                        Transform::integ(IntegTransformId::AUTH_HMAC_SHA2_256_128),
                        Transform::dh(DhGroup::ECP_256),
                    ],
                }],
            }),
            Payload::Ke(KePayload {
                dh_group: DhGroup::ECP_256,
                data: vec![0x5a; 64],
            }),
            Payload::Nonce(NoncePayload { nonce: vec![0xa5; 16] }),
            Payload::Notify(NotifyPayload::new(NotifyType::NAT_DETECTION_SOURCE_IP, vec![0x11; 20])),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                vec![0x22; 20],
            )),
        ],
    };
    assert_eq!(m, built);
    assert_eq!(built.emit().unwrap(), b);
}

#[test]
fn every_truncation_and_header_length_is_refused() {
    for v in [SA_INIT_REQUEST, SA_INIT_RESPONSE, AUTH_REQUEST] {
        let b = unhex(v);
        for n in 0..b.len() {
            // Truncated datagram, header Length unchanged.
            assert!(Message::parse(&b[..n]).is_err(), "{n}");
            // Truncated datagram with a consistent header Length.
            if n >= HEADER_LEN {
                let mut c = b[..n].to_vec();
                c[24..28].copy_from_slice(&(n as u32).to_be_bytes());
                assert!(Message::parse(&c).is_err(), "consistent {n}");
            }
        }
        let set_len = |len: u32| {
            let mut c = b.clone();
            c[24..28].copy_from_slice(&len.to_be_bytes());
            Message::parse(&c)
        };
        let n = b.len() as u32;
        assert!(matches!(set_len(n + 1), Err(Error::Truncated { .. })));
        assert!(matches!(set_len(u32::MAX), Err(Error::Truncated { .. })));
        assert!(matches!(set_len(n - 1), Err(Error::Malformed { .. })));
        assert!(matches!(set_len(0), Err(Error::Malformed { .. })));
        assert!(matches!(set_len(27), Err(Error::Malformed { .. })));
    }
}

/// Offsets of the generic payload headers of a message.
fn payload_offsets(b: &[u8]) -> Vec<usize> {
    let mut offs = Vec::new();
    let mut at = HEADER_LEN;
    while at < b.len() {
        offs.push(at);
        at += u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
    }
    offs
}

#[test]
fn bad_payload_lengths_are_refused() {
    let b = unhex(SA_INIT_REQUEST);
    let offs = payload_offsets(&b);
    assert_eq!(offs.len(), 8);
    for &at in &offs {
        for bad in [0u16, 1, 3, 0xffff] {
            let mut c = b.clone();
            c[at + 2..at + 4].copy_from_slice(&bad.to_be_bytes());
            let e = Message::parse(&c).unwrap_err();
            assert!(
                matches!(e, Error::Malformed { .. } | Error::Truncated { .. }),
                "{at} {bad}: {e}"
            );
        }
        // One octet past the end of the message.
        let mut c = b.clone();
        let past = (b.len() - at + 1) as u16;
        c[at + 2..at + 4].copy_from_slice(&past.to_be_bytes());
        assert!(matches!(Message::parse(&c), Err(Error::Truncated { .. })));
    }
}

#[test]
fn unknown_payloads_critical_and_not() {
    let b = unhex(SA_INIT_REQUEST);
    let orig = Message::parse(&b).unwrap();
    // Insert an unknown payload (type 200) after the SA payload.
    let sa_len = u16::from_be_bytes([b[HEADER_LEN + 2], b[HEADER_LEN + 3]]) as usize;
    let insert = |critical: bool| {
        let mut c = b[..HEADER_LEN + sa_len].to_vec();
        c[HEADER_LEN] = 200; // SA's Next Payload -> unknown
        c.extend_from_slice(&[34, if critical { 0x80 } else { 0 }, 0, 7, 9, 9, 9]); // unknown -> KE
        c.extend_from_slice(&b[HEADER_LEN + sa_len..]);
        let len = c.len() as u32;
        c[24..28].copy_from_slice(&len.to_be_bytes());
        c
    };
    // Not critical: skipped (§2.5), the rest parses as before.
    let m = Message::parse(&insert(false)).unwrap();
    assert_eq!(m, orig);
    assert_eq!(m.emit().unwrap(), b);
    // Critical: refused, and the type is there for UNSUPPORTED_CRITICAL_PAYLOAD.
    let e = Message::parse(&insert(true)).unwrap_err();
    assert_eq!(unsupported_critical_payload(&e), Some(PayloadType(200)));
    assert_eq!(e.fault(), crate::Fault::Incompatible);
    // A known but unsupported type (GSPM) is unrecognized too.
    let mut c = insert(true);
    c[HEADER_LEN] = PayloadType::GSPM.0;
    assert_eq!(
        unsupported_critical_payload(&Message::parse(&c).unwrap_err()),
        Some(PayloadType::GSPM)
    );
    // Other errors are not mistaken for it.
    assert_eq!(
        unsupported_critical_payload(&Message::parse(&b[..40]).unwrap_err()),
        None
    );
}

#[test]
fn zero_length_and_empty_payloads() {
    // A message whose only payload claims length 0.
    let header = sample_header(ExchangeType::INFORMATIONAL);
    let mut b = Vec::new();
    header.emit(&mut b, PayloadType::NOTIFY, 32);
    b.extend_from_slice(&[0, 0, 0, 0]);
    assert!(matches!(Message::parse(&b), Err(Error::Malformed { .. })));
    // Length 4 (an empty body) is fine for V but not for N, KE, Nonce, SA.
    for (t, ok) in [
        (PayloadType::VENDOR_ID, true),
        (PayloadType::SK, true),
        (PayloadType::NOTIFY, false),
        (PayloadType::KE, false),
        (PayloadType::NONCE, false),
        (PayloadType::SA, false),
        (PayloadType::TSI, false),
        (PayloadType::EAP, false),
        (PayloadType::SKF, false),
    ] {
        b[16] = t.0;
        b[HEADER_LEN + 3] = 4;
        assert_eq!(Message::parse(&b).is_ok(), ok, "{t}");
    }
    // An empty INFORMATIONAL (liveness check, inner content empty).
    let m = Message {
        header,
        payloads: vec![],
    };
    let e = m.emit().unwrap();
    assert_eq!(e.len(), HEADER_LEN);
    assert_eq!(Message::parse(&e).unwrap(), m);
    assert_eq!(m.summary(), "INFORMATIONAL request 7 [ ]");
}

fn sample_header(exchange_type: ExchangeType) -> HeaderRepr {
    HeaderRepr {
        initiator_spi: 0x1111_2222_3333_4444,
        responder_spi: 0x5555_6666_7777_8888,
        minor_version: 0,
        exchange_type,
        flags: Flags::new(true, false),
        message_id: 7,
    }
}

fn ike_auth_inner() -> Vec<Payload> {
    vec![
        Payload::IdI(IdPayload::fqdn("gw1.example.net")),
        Payload::Auth(AuthPayload {
            auth_method: AuthMethod::SHARED_KEY_MIC,
            data: vec![0x42; 32],
        }),
        Payload::Sa(sa::tests::esp_proposals()),
        Payload::TsI(TsPayload {
            traffic_selectors: vec![TrafficSelector::Range(TsRange::addresses(
                "10.1.0.0".parse().unwrap(),
                "10.1.255.255".parse().unwrap(),
            ))],
        }),
        Payload::TsR(TsPayload {
            traffic_selectors: vec![TrafficSelector::Range(TsRange::addresses(
                "10.2.0.0".parse().unwrap(),
                "10.2.255.255".parse().unwrap(),
            ))],
        }),
        Payload::Notify(NotifyPayload::new(NotifyType::INITIAL_CONTACT, vec![])),
    ]
}

#[test]
fn sk_message_layout_and_inner_chain() {
    let inner = ike_auth_inner();
    let plain = emit_payload_chain(&inner).unwrap();
    let first = first_payload_type(&inner);
    assert_eq!(first, PayloadType::IDI);
    assert_eq!(Message::parse_inner(first, &plain).unwrap(), inner);
    let header = sample_header(ExchangeType::IKE_AUTH);
    assert_eq!(
        summary(&header, &inner),
        "IKE_AUTH request 7 [ IDi AUTH SA TSi TSr N(INIT_CONTACT) ]"
    );

    // Pretend the crypto layer adds an 8-octet IV, 1 octet of padding
    // length and a 16-octet ICV around the plaintext.
    let body_len = 8 + plain.len() + 1 + 16;
    let (mut msg, body) = emit_sk_message(&header, &[], first, body_len).unwrap();
    assert_eq!(body, HEADER_LEN + 4..msg.len());
    let h = Header::new_checked(&msg[..]).unwrap();
    assert_eq!(h.length() as usize, msg.len());
    assert_eq!(h.next_payload(), PayloadType::SK);
    let g = GenericPayloadHeader::new_checked(&msg[HEADER_LEN..]).unwrap();
    assert_eq!(g.next_payload(), PayloadType::IDI);
    assert_eq!(g.payload_length() as usize, 4 + body_len);
    msg[body.start + 8..body.start + 8 + plain.len()].copy_from_slice(&plain);
    let m = Message::parse(&msg).unwrap();
    assert_eq!(m.summary(), "IKE_AUTH request 7 [ E ]");
    let sk = m.sk().unwrap();
    assert_eq!(
        Message::parse_inner(sk.first_payload, &sk.body[8..8 + plain.len()]).unwrap(),
        inner
    );

    // SK must be last, and never inside.
    let mut bad = inner.clone();
    bad.insert(0, Payload::Sk(SkPayload::parse(PayloadType::NONE, &[]).unwrap()));
    assert!(emit_payload_chain(&bad).is_err());
    assert!(Message { header, payloads: bad }.emit().is_err());
    let nested = [PayloadType::SK.0, 0, 0, 4];
    assert!(Message::parse_inner(PayloadType::SK, &nested).is_err());
    assert!(Message::parse_inner(PayloadType::SKF, &[0, 0, 0, 8, 0, 1, 0, 1]).is_err());
    // emit_for_encryption wants SK or SKF last.
    assert!(Message {
        header,
        payloads: inner
    }
    .emit_for_encryption()
    .is_err());
}

#[test]
fn skf_fragment_layout() {
    let m = Message {
        header: sample_header(ExchangeType::IKE_AUTH),
        payloads: vec![Payload::Skf(SkfPayload {
            first_payload: PayloadType::IDI,
            fragment_number: 1,
            total_fragments: 2,
            body: vec![0; 100],
        })],
    };
    let (b, range) = m.emit_for_encryption().unwrap();
    assert_eq!(range, HEADER_LEN + 8..b.len());
    assert_eq!(&b[HEADER_LEN..HEADER_LEN + 8], &[35, 0, 0, 108, 0, 1, 0, 2]);
    assert_eq!(Message::parse(&b).unwrap(), m);
    assert_eq!(m.summary(), "IKE_AUTH request 7 [ EF(1/2) ]");
}

#[test]
fn pretty_printing_in_strongswan_notation() {
    let mut header = sample_header(ExchangeType::INFORMATIONAL);
    header.flags = Flags::new(false, true);
    let payloads = vec![
        Payload::Delete(DeletePayload::child(ProtocolId::ESP, &[1])),
        Payload::Notify(NotifyPayload::new(NotifyType::NO_PROPOSAL_CHOSEN, vec![])),
        Payload::Notify(NotifyPayload::invalid_ke(DhGroup::MODP_2048)),
        Payload::Notify(NotifyPayload::new(NotifyType::AUTHENTICATION_FAILED, vec![])),
        Payload::Notify(NotifyPayload::new(NotifyType::TS_UNACCEPTABLE, vec![])),
        Payload::Notify(NotifyPayload::new(NotifyType::COOKIE, vec![1; 8])),
        Payload::Notify(NotifyPayload::for_child_sa(
            NotifyType::REKEY_SA,
            ProtocolId::ESP,
            9,
            vec![],
        )),
        Payload::Notify(NotifyPayload::new(NotifyType::ESP_TFC_PADDING_NOT_SUPPORTED, vec![])),
        Payload::Notify(NotifyPayload::new(NotifyType::NON_FIRST_FRAGMENTS_ALSO, vec![])),
        Payload::Notify(NotifyPayload::new(NotifyType::USE_TRANSPORT_MODE, vec![])),
        Payload::Notify(NotifyPayload::new(NotifyType::CLONE_IKE_SA, vec![])),
        Payload::Notify(NotifyPayload::new(NotifyType(0x4e20), vec![])),
        Payload::VendorId(VendorIdPayload { vendor_id: vec![1] }),
        Payload::Cp(CpPayload {
            cfg_type: CfgType::CFG_REQUEST,
            attributes: vec![
                CfgAttribute {
                    attr_type: CfgAttributeType::INTERNAL_IP4_ADDRESS,
                    value: vec![],
                },
                CfgAttribute {
                    attr_type: CfgAttributeType::INTERNAL_IP4_DNS,
                    value: vec![],
                },
                CfgAttribute {
                    attr_type: CfgAttributeType(0x7000),
                    value: vec![],
                },
            ],
        }),
        Payload::Cp(CpPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![],
        }),
        Payload::Eap(EapPayload::new(vec![1, 1, 0, 5, 1]).unwrap()),
        Payload::Eap(EapPayload::new(vec![3, 1, 0, 4]).unwrap()),
        Payload::Cert(CertPayload {
            cert_encoding: CertEncoding::X509_CERTIFICATE_SIGNATURE,
            data: vec![],
        }),
        Payload::CertReq(CertPayload {
            cert_encoding: CertEncoding::X509_CERTIFICATE_SIGNATURE,
            data: vec![],
        }),
    ];
    assert_eq!(
        summary(&header, &payloads),
        "INFORMATIONAL response 7 [ D N(NO_PROP) N(INVAL_KE) N(AUTH_FAILED) N(TS_UNACCEPT) N(COOKIE) \
         N(REKEY_SA) N(ESP_TFC_PAD_N) N(NON_FIRST_FRAG) N(USE_TRANSP) N(CLONE_IKE_SA) N(0x4e20) V \
         CPRQ(ADDR DNS 28672) CPRP EAP/REQ/ID EAP/SUCC CERT CERTREQ ]"
    );
    header.exchange_type = ExchangeType(99);
    assert_eq!(summary(&header, &[]), "ExchangeType(0x63) response 7 [ ]");
}

// ---------------------------------------------------------------------
// Round-trip properties over random payloads.

fn random_payload(r: &mut Rng, kind: usize) -> Payload {
    let ip = |r: &mut Rng, v6: bool| -> IpAddr {
        if v6 {
            IpAddr::from(std::net::Ipv6Addr::from((r.next() as u128) << 64 | r.next() as u128))
        } else {
            IpAddr::from(std::net::Ipv4Addr::from(r.next() as u32))
        }
    };
    match kind {
        0 => {
            let proposals = (0..1 + r.below(3))
                .map(|i| Proposal {
                    proposal_num: i as u8 + 1,
                    protocol_id: ProtocolId(r.u8()),
                    spi: r.bytes(8),
                    transforms: (0..r.below(6))
                        .map(|_| Transform {
                            transform_type: TransformType(r.u8()),
                            transform_id: r.u16(),
                            attributes: (0..r.below(3))
                                .map(|_| TransformAttribute {
                                    attr_type: TransformAttributeType(r.u16() & 0x7fff),
                                    value: if r.bool() {
                                        AttributeValue::Tv(r.u16())
                                    } else {
                                        AttributeValue::Tlv(r.bytes(10))
                                    },
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect();
            Payload::Sa(SaPayload { proposals })
        }
        1 => Payload::Ke(KePayload {
            dh_group: DhGroup(r.u16()),
            data: r.bytes(300),
        }),
        2 | 3 => {
            let id = IdPayload {
                id_type: IdType(r.u8()),
                data: r.bytes(40),
            };
            if kind == 2 {
                Payload::IdI(id)
            } else {
                Payload::IdR(id)
            }
        }
        4 | 5 => {
            let c = CertPayload {
                cert_encoding: CertEncoding(r.u8()),
                data: r.bytes(100),
            };
            if kind == 4 {
                Payload::Cert(c)
            } else {
                Payload::CertReq(c)
            }
        }
        6 => Payload::Auth(AuthPayload {
            auth_method: AuthMethod(r.u8()),
            data: r.bytes(64),
        }),
        7 => {
            let n = NONCE_MIN_LEN + r.below(NONCE_MAX_LEN - NONCE_MIN_LEN + 1);
            Payload::Nonce(NoncePayload {
                nonce: (0..n).map(|_| r.u8()).collect(),
            })
        }
        8 => Payload::Notify(NotifyPayload {
            protocol_id: ProtocolId(r.u8()),
            spi: r.bytes(8),
            notify_type: NotifyType(r.u16()),
            data: r.bytes(40),
        }),
        9 => {
            let spi_size = r.below(9) as u8;
            let spis = if spi_size == 0 {
                vec![]
            } else {
                (0..r.below(5))
                    .map(|_| (0..spi_size).map(|_| r.u8()).collect())
                    .collect()
            };
            Payload::Delete(DeletePayload {
                protocol_id: ProtocolId(r.u8()),
                spi_size,
                spis,
            })
        }
        10 => Payload::VendorId(VendorIdPayload { vendor_id: r.bytes(20) }),
        11 | 12 => {
            let ts = TsPayload {
                traffic_selectors: (0..r.below(4))
                    .map(|_| {
                        if r.below(5) == 0 {
                            TrafficSelector::Other {
                                ts_type: TsType(9 + r.below(200) as u8),
                                octet1: r.u8(),
                                data: r.bytes(12),
                            }
                        } else {
                            let v6 = r.bool();
                            TrafficSelector::Range(TsRange {
                                ip_protocol: IpProtocol(r.u8()),
                                start_port: r.u16(),
                                end_port: r.u16(),
                                start_address: ip(r, v6),
                                end_address: ip(r, v6),
                            })
                        }
                    })
                    .collect(),
            };
            if kind == 11 {
                Payload::TsI(ts)
            } else {
                Payload::TsR(ts)
            }
        }
        13 => Payload::Cp(CpPayload {
            cfg_type: CfgType(r.u8()),
            attributes: (0..r.below(4))
                .map(|_| CfgAttribute {
                    attr_type: CfgAttributeType(r.u16() & 0x7fff),
                    value: r.bytes(16),
                })
                .collect(),
        }),
        14 => {
            let code = 1 + r.below(4) as u8;
            let mut m = vec![code, r.u8(), 0, 0];
            if code <= 2 {
                m.push(r.u8());
            }
            m.extend(r.bytes(20));
            let len = m.len() as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            Payload::Eap(EapPayload::new(m).unwrap())
        }
        15 => Payload::Sk(SkPayload {
            first_payload: PayloadType(r.u8()),
            body: r.bytes(64),
        }),
        _ => {
            let total = 1 + r.below(10) as u16;
            Payload::Skf(SkfPayload {
                first_payload: PayloadType(r.u8()),
                fragment_number: 1 + r.below(total as usize) as u16,
                total_fragments: total,
                body: r.bytes(64),
            })
        }
    }
}

const KINDS: usize = 17;

#[test]
fn roundtrip_property_every_payload_type() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for kind in 0..KINDS {
        for _ in 0..300 {
            let p = random_payload(&mut r, kind);
            // Body: emit then parse gives the value, and emit again the bytes.
            let mut body = Vec::new();
            p.emit_body(&mut body).unwrap();
            let next = match &p {
                Payload::Sk(s) => s.first_payload,
                Payload::Skf(s) => s.first_payload,
                _ => PayloadType::NONE,
            };
            let back = Payload::parse(p.payload_type(), next, &body).unwrap();
            assert_eq!(back, p);
            let mut again = Vec::new();
            back.emit_body(&mut again).unwrap();
            assert_eq!(again, body);
            // In a message.
            let m = Message {
                header: sample_header(ExchangeType(r.u8())),
                payloads: vec![p],
            };
            let bytes = m.emit().unwrap();
            assert_eq!(parse_exact(&bytes), m);
        }
    }
}

#[test]
fn roundtrip_property_random_chains() {
    let mut r = Rng(42);
    for _ in 0..500 {
        let n = r.below(8);
        let mut payloads: Vec<Payload> = (0..n)
            .map(|_| {
                let k = r.below(15);
                random_payload(&mut r, k)
            })
            .collect();
        let inner = emit_payload_chain(&payloads).unwrap();
        assert_eq!(
            Message::parse_inner(first_payload_type(&payloads), &inner).unwrap(),
            payloads
        );
        if r.bool() {
            let k = 15 + r.below(2);
            payloads.push(random_payload(&mut r, k));
        }
        let m = Message {
            header: sample_header(ExchangeType::CREATE_CHILD_SA),
            payloads,
        };
        let bytes = m.emit().unwrap();
        assert_eq!(parse_exact(&bytes), m);
        let _ = m.summary();
    }
}

/// Random corruption of real messages never panics, and whatever parses
/// re-emits to something that parses to the same value.
#[test]
fn mutated_captures_never_panic() {
    let seeds: Vec<Vec<u8>> = [SA_INIT_REQUEST, SA_INIT_RESPONSE, AUTH_REQUEST]
        .iter()
        .map(|v| unhex(v))
        .collect();
    let mut r = Rng(7);
    let mut parsed = 0;
    for i in 0..30_000 {
        let mut b = seeds[i % seeds.len()].clone();
        for _ in 0..1 + r.below(4) {
            let at = r.below(b.len());
            match r.below(3) {
                0 => b[at] = r.u8(),
                1 => b[at] ^= 1 << r.below(8),
                _ => b.truncate(at.max(1)),
            }
        }
        if r.bool() && b.len() >= HEADER_LEN {
            let len = b.len() as u32;
            b[24..28].copy_from_slice(&len.to_be_bytes());
        }
        if let Ok(m) = Message::parse(&b) {
            parsed += 1;
            let again = m.emit().unwrap();
            assert_eq!(Message::parse(&again).unwrap(), m);
            let _ = m.summary();
        }
        for t in 33..=54u8 {
            let _ = Message::parse_inner(PayloadType(t), &b[b.len().min(HEADER_LEN)..]);
        }
    }
    assert!(parsed > 100, "{parsed}");
}

#[test]
fn emit_refuses_what_does_not_fit() {
    let big = Payload::Cert(CertPayload {
        cert_encoding: CertEncoding::X509_CERTIFICATE_SIGNATURE,
        data: vec![0; 70_000],
    });
    let e = emit_payload_chain(&[big]).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { .. }));
    assert_eq!(e.fault(), crate::Fault::LocalMisuse);
    let many = Payload::TsI(TsPayload {
        traffic_selectors: vec![
            TrafficSelector::Range(TsRange::addresses(
                "10.0.0.0".parse().unwrap(),
                "10.0.0.1".parse().unwrap()
            ));
            256
        ],
    });
    assert!(emit_payload_chain(&[many]).is_err());
}
