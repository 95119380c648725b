//! Vectors captured from a real strongSwan IKEv1 negotiation: the oracle.
//!
//! How they were obtained (a throwaway script, not in the repository): two
//! strongSwan 5.9.8 charons (Debian 12 `/usr/lib/ipsec/charon`, plugins
//! `random nonce openssl aes sha1 sha2 md5 hmac gcm gmp kdf kernel-libipsec
//! kernel-netlink socket-default vici`) in two network namespaces joined by
//! a veth pair, 192.168.77.11 (initiator) and 192.168.77.12 (responder);
//! swanctl.conf `version = 1`, `aggressive = no` (Main Mode), `auth = psk`
//! with the secret `v1c-test-psk-0123456789`, IDs the addresses, one
//! tunnel-mode CHILD SA 192.168.78.0/24 === 192.168.79.0/24 started with
//! `swanctl --initiate`. kernel-libipsec forces UDP encapsulation, so
//! charon fakes its own NAT-D and floats to port 4500 from Main Mode
//! message 5 on (the non-ESP marker is stripped from the messages here).
//!
//! - `messages`: the UDP payloads as `tshark -T fields -e udp.payload` read
//!   them from a capture on the responder's veth (MM1-MM6, QM1-QM3).
//! - everything else: hex dumps from the initiator's charon log, `filelog`
//!   with `default = 4` (`ike = 4`, `enc = 4`, `chd = 4`, `net = 4`, `cfg =
//!   2`, `knl = 1`): "shared Diffie Hellman secret", "SKEYID", "SKEYID_d",
//!   "SKEYID_a", "SKEYID_e", "encryption key Ka", "initial IV", "HASH_I",
//!   "HASH_R", "next IV for MID <M-ID>", "Hash(1)"/"Hash(2)"/"Hash(3)",
//!   "encryption initiator key"/"encryption responder key", "integrity
//!   initiator key"/"integrity responder key", and the "natd_chunk" /
//!   "natd_hash" pairs. With PFS the Quick Mode g^xy is not logged on its
//!   own; it is the first bytes of the logged "initiator SA seed" (g^xy |
//!   protocol | SPI | Ni_b | Nr_b), the only value here taken from charon's
//!   KEYMAT input rather than from the wire or an output.
//!
//! The tests recompute everything from the wire values, the PSK and g^xy
//! (which needs the private exponents charon does not log), decrypt each
//! encrypted message with our own [`Cipher`] and the IV chain of App. B,
//! walk the decrypted payload chain, and compare our HASH_I/HASH_R and
//! Quick Mode hashes with the HASH payloads on the wire.

use super::*;
use crate::ike::testutil::h;

struct Capture {
    hash: Hash,
    cipher: Cipher,
    /// ESP encryption and integrity key lengths of the CHILD SA.
    esp_key_lens: (usize, usize),
    messages: [&'static str; 9],
    gxy: &'static str,
    skeyid: &'static str,
    skeyid_d: &'static str,
    skeyid_a: &'static str,
    skeyid_e: &'static str,
    ka: &'static str,
    iv: &'static str,
    hash_i: &'static str,
    hash_r: &'static str,
    qm_iv: &'static str,
    qm_hash1: &'static str,
    qm_hash2: &'static str,
    qm_hash3: &'static str,
    esp_enc_i: &'static str,
    esp_enc_r: &'static str,
    esp_integ_i: &'static str,
    esp_integ_r: &'static str,
    gxy_qm: Option<&'static str>,
    /// CKY-I | CKY-R | IPv4 | Port, and charon's NAT-D hash of it.
    natd: &'static [(&'static str, &'static str)],
}

const PSK: &[u8] = b"v1c-test-psk-0123456789";

// ISAKMP payload types (RFC 2408 §3.1, RFC 3947).
const SA: u8 = 1;
const KE: u8 = 4;
const ID: u8 = 5;
const HASH: u8 = 8;
const NONCE: u8 = 10;
const NAT_D: u8 = 20;

/// An ISAKMP message: header fields and the payloads (type, body).
struct Msg {
    cky_i: u64,
    cky_r: u64,
    first: u8,
    flags: u8,
    mid: u32,
    body: Vec<u8>,
}

fn parse(hex: &str) -> Msg {
    let m = h(hex);
    let len = u32::from_be_bytes(m[24..28].try_into().unwrap()) as usize;
    assert_eq!(len, m.len(), "ISAKMP length");
    Msg {
        cky_i: u64::from_be_bytes(m[0..8].try_into().unwrap()),
        cky_r: u64::from_be_bytes(m[8..16].try_into().unwrap()),
        first: m[16],
        flags: m[19],
        mid: u32::from_be_bytes(m[20..24].try_into().unwrap()),
        body: m[28..].to_vec(),
    }
}

/// One payload: type, body, and the whole payload with its generic header.
type Payload = (u8, Vec<u8>, Vec<u8>);

/// Walk a payload chain: the payloads in order, and where the chain ends
/// (padding follows in encrypted messages).
fn payloads(first: u8, data: &[u8]) -> (Vec<Payload>, usize) {
    let (mut out, mut ty, mut off) = (vec![], first, 0);
    while ty != 0 {
        let next = data[off];
        assert_eq!(data[off + 1], 0, "RESERVED");
        let len = u16::from_be_bytes([data[off + 2], data[off + 3]]) as usize;
        assert!(len >= 4 && off + len <= data.len(), "payload {ty} length {len}");
        out.push((ty, data[off + 4..off + len].to_vec(), data[off..off + len].to_vec()));
        off += len;
        ty = next;
    }
    (out, off)
}

fn find(p: &[Payload], ty: u8) -> Vec<u8> {
    p.iter()
        .find(|x| x.0 == ty)
        .unwrap_or_else(|| panic!("no payload {ty}"))
        .1
        .clone()
}

fn last_block(ct: &[u8], bl: usize) -> Vec<u8> {
    ct[ct.len() - bl..].to_vec()
}

/// Decrypt an encrypted message's body with `iv`; the next IV is its last
/// ciphertext block.
fn decrypt(c: &Capture, key: &[u8], iv: &[u8], m: &Msg) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(m.flags & 1, 1, "Encryption flag");
    let mut plain = m.body.clone();
    c.cipher.decrypt(key, iv, &mut plain).unwrap();
    (plain, last_block(&m.body, c.cipher.block_len()))
}

/// The Quick Mode SA payload's single proposal: (Protocol ID, SPI).
fn proposal_spi(sa_body: &[u8]) -> (u8, Vec<u8>) {
    // DOI (4) | Situation (4) | Proposal: generic header (4) | Proposal #
    // | Protocol-Id | SPI Size | # of Transforms | SPI
    let p = &sa_body[8..];
    let spi_size = p[6] as usize;
    (p[5], p[8..8 + spi_size].to_vec())
}

fn check(c: &Capture) {
    let m: Vec<Msg> = c.messages.iter().map(|x| parse(x)).collect();
    let (cky_i, cky_r) = (m[0].cky_i, m[2].cky_r);
    let bl = c.cipher.block_len();

    // Main Mode 1-4 in the clear: SAi_b, KE and Nonce bodies.
    let (mm1, _) = payloads(m[0].first, &m[0].body);
    let sai_b = find(&mm1, SA);
    let (mm3, _) = payloads(m[2].first, &m[2].body);
    let (mm4, _) = payloads(m[3].first, &m[3].body);
    let (gxi, ni) = (find(&mm3, KE), find(&mm3, NONCE));
    let (gxr, nr) = (find(&mm4, KE), find(&mm4, NONCE));
    assert_eq!(gxi.len(), h(c.gxy).len(), "KE is the group's length");

    // RFC 2409 §5 and App. B.
    let k = phase1_keys_psk(&Phase1Input {
        hash: c.hash,
        cipher: c.cipher,
        psk: PSK,
        ni: &ni,
        nr: &nr,
        gxy: &h(c.gxy),
        cky_i,
        cky_r,
        gxi: &gxi,
        gxr: &gxr,
    });
    assert_eq!(k.skeyid.expose(), &h(c.skeyid)[..], "SKEYID");
    assert_eq!(k.skeyid_d.expose(), &h(c.skeyid_d)[..], "SKEYID_d");
    assert_eq!(k.skeyid_a.expose(), &h(c.skeyid_a)[..], "SKEYID_a");
    assert_eq!(k.skeyid_e.expose(), &h(c.skeyid_e)[..], "SKEYID_e");
    assert_eq!(k.enc_key.expose(), &h(c.ka)[..], "encryption key Ka");
    assert_eq!(k.iv, h(c.iv), "initial IV");

    // RFC 3947 §3.2: the first NAT-D of MM3 (MM4) is the hash of the
    // responder's (initiator's) address; the other one charon fakes.
    let natd3: Vec<_> = mm3.iter().filter(|p| p.0 == NAT_D).collect();
    let natd4: Vec<_> = mm4.iter().filter(|p| p.0 == NAT_D).collect();
    let (gw1, gw2) = (
        "192.168.77.11:500".parse().unwrap(),
        "192.168.77.12:500".parse().unwrap(),
    );
    assert_eq!(
        nat_d(c.hash, cky_i, cky_r, gw2),
        natd3[0].1,
        "NAT-D of the responder in MM3"
    );
    assert_eq!(
        nat_d(c.hash, cky_i, cky_r, gw1),
        natd4[0].1,
        "NAT-D of the initiator in MM4"
    );
    for (chunk, want) in c.natd {
        let chunk = h(chunk);
        let ip: [u8; 4] = chunk[16..20].try_into().unwrap();
        let port = u16::from_be_bytes([chunk[20], chunk[21]]);
        let addr = std::net::SocketAddr::from((ip, port));
        assert_eq!(nat_d(c.hash, cky_i, cky_r, addr), h(want), "natd_hash {addr}");
    }

    // MM5: [ IDii HASH_I ] under Ka and the initial IV.
    let (p5, iv) = decrypt(c, k.enc_key.expose(), &k.iv, &m[4]);
    let (mm5, end5) = payloads(m[4].first, &p5);
    // charon adds N(INITIAL_CONTACT) after the HASH.
    assert_eq!(mm5.iter().map(|p| p.0).take(2).collect::<Vec<_>>(), [ID, HASH]);
    assert!(p5.len() - end5 <= bl, "at most one block of padding");
    let hi = hash_i(
        c.hash,
        k.skeyid.expose(),
        &gxi,
        &gxr,
        cky_i,
        cky_r,
        &sai_b,
        &find(&mm5, ID),
    );
    assert_eq!(hi, find(&mm5, HASH), "HASH_I on the wire");
    assert_eq!(hi, h(c.hash_i), "HASH_I logged");

    // MM6: [ IDir HASH_R ], IV = last block of MM5.
    let (p6, last_p1) = decrypt(c, k.enc_key.expose(), &iv, &m[5]);
    let (mm6, _) = payloads(m[5].first, &p6);
    let hr = hash_r(
        c.hash,
        k.skeyid.expose(),
        &gxr,
        &gxi,
        cky_r,
        cky_i,
        &sai_b,
        &find(&mm6, ID),
    );
    assert_eq!(hr, find(&mm6, HASH), "HASH_R on the wire");
    assert_eq!(hr, h(c.hash_r), "HASH_R logged");

    // Quick Mode 1: IV = hash(last MM6 block | M-ID).
    let mid = m[6].mid;
    assert!(m[7].mid == mid && m[8].mid == mid);
    let qiv = phase2_iv(c.hash, bl, &last_p1, mid);
    assert_eq!(qiv, h(c.qm_iv), "next IV for MID {mid}");
    let (q1, iv) = decrypt(c, k.enc_key.expose(), &qiv, &m[6]);
    let (qm1, end1) = payloads(m[6].first, &q1);
    let types: Vec<u8> = qm1.iter().map(|p| p.0).collect();
    assert_eq!(&types[..3], [HASH, SA, NONCE], "HASH(1) SA Ni [KE] IDci IDcr");
    let rest = &q1[qm1[0].2.len()..end1];
    let h1 = qm_hash1(c.hash, k.skeyid_a.expose(), mid, rest);
    assert_eq!(h1, qm1[0].1, "HASH(1) on the wire");
    assert_eq!(h1, h(c.qm_hash1), "Hash(1) logged");
    let ni_b = find(&qm1, NONCE);
    let (proto, spi_i) = proposal_spi(&find(&qm1, SA));
    assert_eq!(proto, 3, "ESP");

    // Quick Mode 2: IV = last block of QM1.
    let (q2, iv) = decrypt(c, k.enc_key.expose(), &iv, &m[7]);
    let (qm2, end2) = payloads(m[7].first, &q2);
    assert_eq!(qm2[0].0, HASH);
    let rest = &q2[qm2[0].2.len()..end2];
    let h2 = qm_hash2(c.hash, k.skeyid_a.expose(), mid, &ni_b, rest);
    assert_eq!(h2, qm2[0].1, "HASH(2) on the wire");
    assert_eq!(h2, h(c.qm_hash2), "Hash(2) logged");
    let nr_b = find(&qm2, NONCE);
    let (_, spi_r) = proposal_spi(&find(&qm2, SA));
    assert_eq!(qm1.iter().any(|p| p.0 == KE), c.gxy_qm.is_some(), "KE with PFS");

    // Quick Mode 3: [ HASH(3) ], IV = last block of QM2.
    let (q3, _) = decrypt(c, k.enc_key.expose(), &iv, &m[8]);
    let (qm3, _) = payloads(m[8].first, &q3);
    let h3 = qm_hash3(c.hash, k.skeyid_a.expose(), mid, &ni_b, &nr_b);
    assert_eq!(h3, qm3[0].1, "HASH(3) on the wire");
    assert_eq!(h3, h(c.qm_hash3), "Hash(3) logged");

    // KEYMAT (§5.5): the SA whose SPI the responder chose (in QM2) carries
    // initiator -> responder traffic: charon's "initiator" keys; the one
    // with the initiator's SPI (QM1) its "responder" keys. Encryption key
    // first, then integrity key.
    let gxy_qm = c.gxy_qm.map(h);
    let (el, il) = c.esp_key_lens;
    let km = |spi: &[u8]| {
        keymat(
            c.hash,
            k.skeyid_d.expose(),
            gxy_qm.as_deref(),
            3,
            spi,
            &ni_b,
            &nr_b,
            el + il,
        )
    };
    let to_r = km(&spi_r);
    assert_eq!(&to_r.expose()[..el], &h(c.esp_enc_i)[..], "encryption initiator key");
    assert_eq!(&to_r.expose()[el..], &h(c.esp_integ_i)[..], "integrity initiator key");
    let to_i = km(&spi_i);
    assert_eq!(&to_i.expose()[..el], &h(c.esp_enc_r)[..], "encryption responder key");
    assert_eq!(&to_i.expose()[el..], &h(c.esp_integ_r)[..], "integrity responder key");
}

#[test]
fn strongswan_aes128_sha256_modp2048() {
    check(&AES128_SHA256_MODP2048);
}

/// 3DES needs 24 key bytes, SHA-1's SKEYID_e has 20: App. B's extension.
#[test]
fn strongswan_3des_sha1_modp1024_with_esp_3des_md5() {
    assert!(TDES_SHA1_MODP1024.cipher.key_len() > TDES_SHA1_MODP1024.hash.output_len());
    check(&TDES_SHA1_MODP1024);
}

/// AES-256 (32 bytes) from SHA-1 (20): App. B again; Quick Mode with PFS.
#[test]
fn strongswan_aes256_sha1_modp1024_with_pfs() {
    assert!(AES256_SHA1_MODP1024_PFS.gxy_qm.is_some());
    check(&AES256_SHA1_MODP1024_PFS);
}

/// MD5 as the phase-1 hash: a 16-byte SKEYID_e extended (App. B) to
/// AES-256's 32 bytes; MODP_1536; ESP with HMAC-MD5-96 (16-byte key).
#[test]
fn strongswan_aes256_md5_modp1536_with_esp_aes128_md5() {
    assert_eq!(h(AES256_MD5_MODP1536.skeyid_e).len(), 16);
    check(&AES256_MD5_MODP1536);
}

/// Encrypting MM5's plaintext again with our cipher reproduces charon's
/// ciphertext byte for byte (charon pads with zeros, not RFC 2409 §5.3's
/// count byte, so the padding is taken from the decryption).
#[test]
fn strongswan_mm5_reencrypts_identically() {
    for c in [&AES128_SHA256_MODP2048, &TDES_SHA1_MODP1024] {
        let m = parse(c.messages[4]);
        let ka = h(c.ka);
        let mut p = m.body.clone();
        c.cipher.decrypt(&ka, &h(c.iv), &mut p).unwrap();
        c.cipher.encrypt(&ka, &h(c.iv), &mut p).unwrap();
        assert_eq!(p, m.body);
    }
}

/// aes128-sha256-modp2048, ESP aes128-sha1.
const AES128_SHA256_MODP2048: Capture = Capture {
    hash: Hash::Sha256,
    cipher: Cipher::AesCbc { key_bits: 128 },
    esp_key_lens: (16, 20),
    messages: [
        // MM1
        concat!(
            "9655d1f95259294100000000000000000110020000000000000000b40d00003800000001000000010000002c01010001",
            "000000240101000080010007800e0080800200048004000e80030001800b0001800c3de00d00000c09002689dfd6b712",
            "0d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d3800000000d000014",
            "4a131c81070358455c5728f20e95452f0000001490cb80913ebb696e086381b5ec427b1f",
        ),
        // MM2
        concat!(
            "9655d1f9525929418352d78f7e5c99000110020000000000000000a00d00003800000001000000010000002c01010001",
            "000000240101000080010007800e0080800200048004000e80030001800b0001800c3de00d00000c09002689dfd6b712",
            "0d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d38000000000000014",
            "4a131c81070358455c5728f20e95452f",
        ),
        // MM3
        concat!(
            "9655d1f9525929418352d78f7e5c990004100200000000000000018c0a000104110ce9463b69425619bdb19c458c8141",
            "e98629dc52c3d54167cbc8611a88b593b9dc5a4f7fda493d05694c5a747241845ddade91871079c16e75eaa610691be7",
            "4edcb57513e75e5ee68867bf99c93b4a9a53147dd5be423789658b9f45a6317ca03b55eeee3c4437227928e8d63038e9",
            "d1da9413eb7774d78a1bdfe27ffbff0bfdd9ef5405338f28647380dd8bcc507e61691ca4b5f269f0aac5b76ae9246308",
            "df37aa4a31ff5a920295fb124c6a22e447a206232753e1045bc54a3fa0eb03a088a3275c04fcad80d548336f2ec631b4",
            "8f6be249610bb6af93eb06fac7ee47dea7171437213d0caa1e7ae9e701d8882ba5c9c56b45c13e077953fa28f306e625",
            "140000248a5debefdb3f9f079af66268ccc68310dada6499f4774632cdc9fc2ecf42a6ee140000241e080629a551f6f0",
            "900f053fb2e0042fff77befdfe5dba72946f85e291636451000000242c615ac6e4f53bf76d4aa49857e066077219d2f8",
            "706441a19a8cc0d466ccc8e4",
        ),
        // MM4
        concat!(
            "9655d1f9525929418352d78f7e5c990004100200000000000000018c0a0001046555a12a303bba415315527aa9ae7825",
            "03bfc20ef7c627a50f7044e6c14e34278d11bf10662292b1fe6dbf486e2c4a7d153d928922fcac832ab05f4e34b09d2e",
            "9814cb8c7511d99c274adb95e06dfdefc80d28892ab313c7a7bc4e0dfe07b1984499941a6571106086cdd09dc9f4ce6c",
            "2c11553ef9a09e8be30ec6b6452927b004d6228a2cbfa818e04e5fb8f7e0e42077d093e59e4961f6c7b6ba0994745b8a",
            "2f98866239434ee9c00932862669ba5f00b9bf90c2e66b4759c7443e5be601b5668b5c60c0f529f3dd217d1c68b555ab",
            "630752f3860e31e779a47d4856f848dc42c62d0ef3425ca48258163db6f078594cef303a17d61094b9037af248972bf2",
            "14000024fa9e86ed4c35436981204109b31c13417f250d7a3099894ecd97653943e5721b1400002406003cbcf2e7ed50",
            "a34d311dbc5dbd5353be3ec643a4953d1098b089ed9f117000000024b14688c93ef2772abbe70bc67b8baa07875e10fe",
            "fbe63753be3a7e8b54a88262",
        ),
        // MM5
        concat!(
            "9655d1f9525929418352d78f7e5c990005100201000000000000006c5fdc70fa3c1c544253920a5224347e88d07149e5",
            "3424bf5377358b163378a5f22f83038acf8dfa4beab9f3f783d11ccd5e52f83eb472694f63ff97e6ebad6ec6acca41fc",
            "77373d20a8806ef72169952c",
        ),
        // MM6
        concat!(
            "9655d1f9525929418352d78f7e5c990005100201000000000000005caeb91f957e6c764705e099d49381c470d09afb63",
            "6c5aa5ba1ed4f58fc823114be94aa7290fedd196c427220941f6a4651bd61de4245891377b466b93a0a7f34c",
        ),
        // QM1
        concat!(
            "9655d1f9525929418352d78f7e5c990008102001e027ca1e000000bc7116e761f9c75264cc467f582f745fdad41c153f",
            "e14a28d079eee5d70aafa406f463fbc63fe6276981682a6c4de679e70c729a146026ff9bd885e314abe964621ece14ad",
            "b0600121513dc23813b254a700b91abb502da79c82e2806440d743a277f989f931525a729a91bc34770b4bb02072c95d",
            "d1281969b29dcc325c2175fd44375cc7cc7c310839d17d9f274ac368fa98adb46f4c926b78b1cc232f2fca04",
        ),
        // QM2
        concat!(
            "9655d1f9525929418352d78f7e5c990008102001e027ca1e000000bc13096160513cb88fbfd4bba80b5846dda529da77",
            "8f7c5335f047d4b46fc13bf3cd4ce9011f849eefe08caec914cb9a8c4c9bb77c4d1d60a46711efbc27ad9821109da054",
            "49eeeac7c49f983b5bf2644653377eb99414dfd15b23aec45406a83eb2df8e7832fd363f7dc80a2328051742ee024e40",
            "80c754bda57c8d2af54768379a7d68fabbeb3fb0140cdd03957324c734c0ea9b87f55b0db9648f58625a9d80",
        ),
        // QM3
        concat!(
            "9655d1f9525929418352d78f7e5c990008102001e027ca1e0000004c478a96609947aabf985755cb3a70f15847d231f6",
            "fe6203555ea6f12b94d9f67901b06a5bad74bc51bb4d14fe02b823bc",
        ),
    ],
    gxy: concat!(
        "3c338e89339be0ee9d3ec83c6af15a5af74adcb8406a819241310876412a95673b5d8650f26e6f45f3839cca9c0a218f",
        "810ece05b01deb5cf0bce75a1f800a7883f8f4673b1843909515d53e73344416099a5a995e14ff0e3776a77c6f9ac0a3",
        "5e1094b430481509c21ba4497a2b8cfd223845979c5cf2fd38bb57da35f1a5dece45318b22063aa54d09bcd478ae4e16",
        "da3ffbd78c72a160c6d679d329dbbdad1f8e8588d539eddb78d178af07bc4d35423ead66a513a404b3db158ee901afa0",
        "4d4ec4ffa3b513f1da9c915f5af2e67f54ccfc6386beb6e0e55564d27c8a5a8f236fbef12c31ff1048a4f238820aea91",
        "650b45bef76886ace2606ac17d794987",
    ),
    skeyid: "e6254ea7893918ba71a76b46d91070d4a4b486244a011766d0f1cdd455ab6839",
    skeyid_d: "37c14288cb5b2df328acffdd01d3572a8bb36f8953de7e7e230f63d8d9ecb6cb",
    skeyid_a: "a26e3d2f34f11f4e2dd00a2966b23336b6303c3cbe2345c47af60a03aaed5c50",
    skeyid_e: "4e7d0c77109107e686a4262a1204471dfc3fed80ca887101c3153ee7d57f3141",
    ka: "4e7d0c77109107e686a4262a1204471d",
    iv: "b9ed57304f8800ebdb5af6c7bca81705",
    hash_i: "bbef6c9efa78ab6cf88468cf5e7b071a2dd93dc3333ffb7e11427f3b03008d3d",
    hash_r: "bf23668c7c51020ffb5a487e8a463364bf35d2db725d5f3d13f1aa4b2cf53f9a",
    qm_iv: "5823b6882605f319dcd8373cdc21480c",
    qm_hash1: "9ca45bbfe41424b338472f912bfbcea480f7186597ec375573ec94531788e35d",
    qm_hash2: "fa1036653684d3646b72390d33db20e20db4d5599bcc974f77e3afe08e1a445d",
    qm_hash3: "8ad0417c844df57c5623decc8bb7041bda283cbd6068b6658055f7ce2da78c4c",
    esp_enc_i: "b134cae8dfd2ee9a9fb4ccc359e377ce",
    esp_enc_r: "6fa56815ba4c6ba17745b427d317cdff",
    esp_integ_i: "afe0569eca554190b14e3acdcd0d092ce98ca528",
    esp_integ_r: "b60112af04765f5cdf4a5feae499851ad9ed0bd2",
    gxy_qm: None,
    natd: &[
        (
            "9655d1f9525929418352d78f7e5c9900c0a84d0b01f4",
            "06003cbcf2e7ed50a34d311dbc5dbd5353be3ec643a4953d1098b089ed9f1170",
        ),
        (
            "9655d1f9525929418352d78f7e5c9900c0a84d0c01f4",
            "1e080629a551f6f0900f053fb2e0042fff77befdfe5dba72946f85e291636451",
        ),
    ],
};

/// 3des-sha1-modp1024, ESP 3des-md5.
const TDES_SHA1_MODP1024: Capture = Capture {
    hash: Hash::Sha1,
    cipher: Cipher::TripleDesCbc,
    esp_key_lens: (24, 16),
    messages: [
        // MM1
        concat!(
            "d15a5cdb65428cd500000000000000000110020000000000000000b00d00003400000001000000010000002801010001",
            "000000200101000080010005800200028004000280030001800b0001800c3de00d00000c09002689dfd6b7120d000014",
            "afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d3800000000d0000144a131c81",
            "070358455c5728f20e95452f0000001490cb80913ebb696e086381b5ec427b1f",
        ),
        // MM2
        concat!(
            "d15a5cdb65428cd5d4ab200ee530419701100200000000000000009c0d00003400000001000000010000002801010001",
            "000000200101000080010005800200028004000280030001800b0001800c3de00d00000c09002689dfd6b7120d000014",
            "afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d380000000000000144a131c81",
            "070358455c5728f20e95452f",
        ),
        // MM3
        concat!(
            "d15a5cdb65428cd5d4ab200ee53041970410020000000000000000f40a000084bf4598610cd12ea7369fa903ea511e54",
            "a96cba69a2026673a54a6867e28be222ecd2c22fcc20a5122bb0e8f840412919bc03931d68a63a4baed2873c814f86c4",
            "284e0206de52af655bed1721022927a36d287ef923301c3cbe91a4e4637769943990b48fabe770e1a42506d6d2f89add",
            "ba09c079418a9d832b4236fa21ffc89514000024682fcbdc00e5533d68b841898a330cb873d25773d5d7165a37ee7018",
            "1f7c79361400001809d9c8fcbf532d0ad3e175d0d545fbefd2b96a0b00000018ff43de23dccb167630dc707457e3590b",
            "2f2229d3",
        ),
        // MM4
        concat!(
            "d15a5cdb65428cd5d4ab200ee53041970410020000000000000000f40a00008425aedb7ac79e7740bb1f9084b95e0497",
            "26f21a7bcc612972ce9c7cc793092af91b1b5e534c927f6d36b7b2b907eef0d8a1e586c8bb946b7e44616e6fc20ab1e2",
            "d54e95fc2beeadd3b51928a0740e7a6a8c1f847d8d23cd1e67f09d2d77b25bf02e89d84042aa7c8f628319f38238acfd",
            "b7a3e8a5294ec3130afa0e80ff50337814000024f65efcf0331c63b23299ebe68b30e4d3dbbd21371c348de2f87a509a",
            "da4da57714000018586bb6102c6f1c2ede3ddce5e6a21ed80f00dfef000000189b332f357eca0aa05cffaee1e99174b6",
            "eb01983c",
        ),
        // MM5
        concat!(
            "d15a5cdb65428cd5d4ab200ee53041970510020100000000000000642b8cac1aa81619843e021668490aea04a3ffabc2",
            "755060c22899adab9808b77fe73f7c1f061a45ec4d11168fb039fe15f465d50492a41cf1873abb355c5a6ad197bc1886",
            "fb90e0e3",
        ),
        // MM6
        concat!(
            "d15a5cdb65428cd5d4ab200ee53041970510020100000000000000448ad8f559aa4c0c8ccaf79e382c8e0cd8b1cd5c15",
            "7839344900c1a98f287667de23e286d12f762413",
        ),
        // QM1
        concat!(
            "d15a5cdb65428cd5d4ab200ee530419708102001ad289065000000ac593d7a93479fc694a57005af3124ce70bcbf9fe1",
            "206cb28542044646804a182da20e20b393a76e9d2b597e4338b580377ee15d471da0d7c74d9b9f5e26c6063725a04136",
            "89062903e47530828da8700529759cd36ffede086cf16df93d4649b86808f32ca3db9d3066c79145ecf60d554df8e12c",
            "502c98961f1d50072a3d6b1a2dfbdd95d11aab8cca1f6e924d772ff5",
        ),
        // QM2
        concat!(
            "d15a5cdb65428cd5d4ab200ee530419708102001ad289065000000ac8db2ce385c89c187da6d2f708c549c841aaea513",
            "59a28c253c74e7e90c7bec078a46f5918ebb1b3e6a4d335151d266f6111b79fbaabc3a5e3460de90b159f28059875f1a",
            "05ceca9ea83c326d499e067ceb249ccee3cb942ca18834ccf4d184346b1fda248fbaa2487afd859af6b33f16419d0c9a",
            "d14109023fef0c51c79d3cf05433fe12b92be49d3663ebf374d218e1",
        ),
        // QM3
        concat!(
            "d15a5cdb65428cd5d4ab200ee530419708102001ad2890650000003cc8eaa754e4e7d4d27b8117cf9efcc5a4eb33d90c",
            "7c67a2c243fe7091278a2580",
        ),
    ],
    gxy: concat!(
        "ecfe26a395b1eefc39df8e7a46b7beeb40cbd55c3936c5757967b35125439d1903041a455e6dff807706fa1489c5e531",
        "2b32cea08f2ccf2aa030783c674c8b4a31d5a4c903faf9ee9657c6a146084d50bfe91599df98863e18ff4d9dd0b10e11",
        "33976e56e785d05aa3d5d5e79d95f8768fc408b45018609111d2ae68570eaead",
    ),
    skeyid: "e3ba4d2d8d1c564bdeaf61da40ff5647a598cad7",
    skeyid_d: "a38456621c1d527c7bd127af8bc581c128886290",
    skeyid_a: "df368bd5e036210798f613baa224f380880c518d",
    skeyid_e: "820bbcc700f467736146bbbfd57c175696fe24ed",
    ka: "cfb49f27b6eacd8ef0bfdfbf5e53b817a28197767d2096ea",
    iv: "6a7206ec93b15f55",
    hash_i: "a974176dcd90d560a7b7b6e7281791f644578c48",
    hash_r: "60d67534cf721233c1df968b58b6839d0af9fc34",
    qm_iv: "b3ab20b0cb0ad56d",
    qm_hash1: "330f23d147b724f5a6c2f0967e8e17a0bd72b794",
    qm_hash2: "7c2bc3efef731f2fb1412f3e684c571090755693",
    qm_hash3: "e73b56c48c37c82a976386eecac0bd30c2abd27e",
    esp_enc_i: "5d9fe9a60a9667f270b0951b0ac626ca6cc31315cd167a6c",
    esp_enc_r: "73c13800ecbed92ae7c0b3b9029fff7ec31799e506f7a93a",
    esp_integ_i: "e9728ad7e3f7bd4b2882e0d2900c93cf",
    esp_integ_r: "cd4bdf9c3df4649b4795d3f49938c6d8",
    gxy_qm: None,
    natd: &[
        (
            "d15a5cdb65428cd5d4ab200ee5304197c0a84d0b01f4",
            "586bb6102c6f1c2ede3ddce5e6a21ed80f00dfef",
        ),
        (
            "d15a5cdb65428cd5d4ab200ee5304197c0a84d0c01f4",
            "09d9c8fcbf532d0ad3e175d0d545fbefd2b96a0b",
        ),
    ],
};

/// aes256-sha1-modp1024, ESP aes128-sha1-modp1024 (PFS).
const AES256_SHA1_MODP1024_PFS: Capture = Capture {
    hash: Hash::Sha1,
    cipher: Cipher::AesCbc { key_bits: 256 },
    esp_key_lens: (16, 20),
    messages: [
        // MM1
        concat!(
            "d9f01bbe95d6c1ad00000000000000000110020000000000000000b40d00003800000001000000010000002c01010001",
            "000000240101000080010007800e0100800200028004000280030001800b0001800c3de00d00000c09002689dfd6b712",
            "0d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d3800000000d000014",
            "4a131c81070358455c5728f20e95452f0000001490cb80913ebb696e086381b5ec427b1f",
        ),
        // MM2
        concat!(
            "d9f01bbe95d6c1ad92ce7fedc1c1d0650110020000000000000000a00d00003800000001000000010000002c01010001",
            "000000240101000080010007800e0100800200028004000280030001800b0001800c3de00d00000c09002689dfd6b712",
            "0d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d38000000000000014",
            "4a131c81070358455c5728f20e95452f",
        ),
        // MM3
        concat!(
            "d9f01bbe95d6c1ad92ce7fedc1c1d0650410020000000000000000f40a0000841fb1b5f321d7041541ca2331e71c2253",
            "5538c651ed4766515529948f1a8cd24f0c71fbbba592131f44a9afd4588a3175633d7560c2098c99dbed610b087ed3f6",
            "47dacf4832b7f0345c3445f9a759f66b705f92fecaf02a1b9a4d1a51c884d1108391b75f8bda43ecb6809d326d8165ba",
            "8db02c9dbc934f5a4a356437977a28621400002441e5f0aac83b8b38cd2141021b5edfef09c2f8137b50511df7515a28",
            "7b7821a11400001801b67d53f712bcb9a177f92d0c3ff6a5d7f3305400000018c810a45875bea6c9d692e3a43c935580",
            "5c5517d6",
        ),
        // MM4
        concat!(
            "d9f01bbe95d6c1ad92ce7fedc1c1d0650410020000000000000000f40a0000847221c0b8a77ea1e868c8acda136c797d",
            "2c4cb88688514eb50dee64fa42458b8d32df8c3ec36890d502eecdb51c146fa0af84ff1e84221ce55ca1221db4fa4b15",
            "1a678a12210da63766b27922044c2bf31d1d3c20e3b46443c48094fcd385532cd6a69f630c04ef650a879bc7959af9cf",
            "2761ef0c11402fcefa468ac350000c1814000024196bb1f45611515e6b10a80b79b3e6ff90fc3eef15a6e86ff774dfc8",
            "27eb3ff3140000182a7f682787c254c483a57761d70245a83269182f00000018cc795ce0a63ac5a2faedc502302232fd",
            "fe45573c",
        ),
        // MM5
        concat!(
            "d9f01bbe95d6c1ad92ce7fedc1c1d06505100201000000000000006c7a34c0dfce702be89ebbf42002d7f1718b33bdaf",
            "900beebdff572cdad51e677138ab013e067b912c7da86572beb17816afcdc107d967c4b49975255828993a09f48510b4",
            "b785c419664025acd6f21766",
        ),
        // MM6
        concat!(
            "d9f01bbe95d6c1ad92ce7fedc1c1d06505100201000000000000004c9e287f94075d4bf48fa04e9a4f6a9b41f39a7da0",
            "10cfe08dabc6f4f877e13e1a94c560c9e16ccbb61cdd515f1c659c3c",
        ),
        // QM1
        concat!(
            "d9f01bbe95d6c1ad92ce7fedc1c1d065081020019c67032f0000013cead01a1f8442e143532c966e570e861febadf602",
            "a442a8881f43cc54dfcc80dd31b546eccc40d0d96e18748efe807b63cf2d3e475b83ae05e700ed3ebfff1e130c83f9d5",
            "4815c4e26e4f6369124cfd57060dee21ca4c742fb03a4f15c9bad64d03dd8d3bbb76aabeb5a98c8929b7e7d46732ccab",
            "c4286e2e214d821ed9e606b548317ff2c23f8af5c08c1a7b13bd722ce46cf7c8f0bbc6bced83276303d46b5712dec2f1",
            "d01b5e10c040502d5f3927a443bfeafcee7dff905197cdf0e49d8d297c1a22baf9128e741925804829d227aa6028416c",
            "0ed8d6b52d10539e73608b03b35af7bae8a77571d1f6b4f29e693ed7a9c239c51692c40d3642e0e3980f9248c1709636",
            "157d037b02e287fac5b3b3325a3487ebd88971e87d6773d91175f12f",
        ),
        // QM2
        concat!(
            "d9f01bbe95d6c1ad92ce7fedc1c1d065081020019c67032f0000013c5de7927609b4dd9e87b870f87b25817c5a4c8a87",
            "37101fd2eefe7abbe7bf80e3ac84b1442fea33c85def177d0150d88524d171214aa01a5f24393957bb4e4dd3df626ec5",
            "1e3d84fc3d994ec4bbca3de3c3ba0d1a9bd93e0b4923e35ef6d44ffa80f75376f476eaa2afcabc04c3f6110ff447940a",
            "bda24571e6b8ff452dff8b7979110f34973c803c88fcfb2bdbe2841c0e177c3f89acf3c7e42cb3dd2af3b041ece7d1ba",
            "f135eae7aff288822abd46fa0b4b555aa0d6bb829669b0b9fc276a939103a6cd325b9dc102a9642d98f58131045e43e4",
            "fec0887494f018081ce3f55fd67f4e7d5b65ab15d467728e867122e5c61b733ea1d53dff6efb3029fe432cbd45efaccf",
            "4bda0bc5252b54f732de57b0c1e8577db0aa2e0c82ac0753bde894b2",
        ),
        // QM3
        concat!(
            "d9f01bbe95d6c1ad92ce7fedc1c1d065081020019c67032f0000003ce03bfdddbf9076de5f8073830f119c7497f5bc8e",
            "48c1561f47a387b9258cc6d4",
        ),
    ],
    gxy: concat!(
        "1dc75eb60026dae68ae1d3a20ab3d86e66386e798b388ae0e491ac8220e672672c57da1bfad14093b5a67cc005f8dcad",
        "4fdd0c07366017bca4703122c5ac9d207196d28d735f68a9bec9c215ad2292ba7b24f13defba851f133702a5585ea78f",
        "42d640f0ffd800980f459f24f8e28fd45e927bb88822be4262f47580b725cbd7",
    ),
    skeyid: "b8b12aa342567b3d168d73fdfa4247a26c7a05ec",
    skeyid_d: "c219eb7e5787d58f218b81547856b101e45b57e4",
    skeyid_a: "b6d48eca8559a6866ee54a49d039defe6d7a48cc",
    skeyid_e: "c72d854925c74ad1c969d6d788904c9c4c1669f6",
    ka: "7cf26a514d36f25d8a221d5ee7127d28d9e7f4840f98b33f0a8a94c90e7bdfb0",
    iv: "f5f71526287102cc0dce6890792f1725",
    hash_i: "cbcfe1c37f919a5ad1459717fcf7ee59014dd4b4",
    hash_r: "1bf97ac5d2cd5f437c73d37576f1aa8538fe6836",
    qm_iv: "172b01a049829fc2a3520a28b711f054",
    qm_hash1: "cff7048e97c84b1ec9ef9c070855e99d74cbad94",
    qm_hash2: "c3cdc3e624b7340458661d2414ff456dd795a707",
    qm_hash3: "6d7aee6606e6e0f60559b9f4ac5283a3056d6c58",
    esp_enc_i: "361660013c158dbc15e6c819457e274c",
    esp_enc_r: "06827624666fb1199bb91c5a71d3599b",
    esp_integ_i: "4b641c1a419714acdbac7afebccbfc1f77bcb8cc",
    esp_integ_r: "607e77ec42dba9341a71e6d862e691bfc442c34b",
    gxy_qm: Some(concat!(
        "81b533673909d3ae40e0547b11e77267476a7a54a46f2730643bbc61af6e9357f35629c6959e5372cd987fafb77dfa87",
        "34b4bf7bb018a29818762aba77c3142e3a09039b3c90241df05a4638db5d651fd08cafbd4f02ac365b1b7f856fb2f166",
        "9292081cc0dd930cbcde88405a79f5b03939d177d3a3c6b9dc47c762d02bf7a5",
    )),
    natd: &[
        (
            "d9f01bbe95d6c1ad92ce7fedc1c1d065c0a84d0b01f4",
            "2a7f682787c254c483a57761d70245a83269182f",
        ),
        (
            "d9f01bbe95d6c1ad92ce7fedc1c1d065c0a84d0c01f4",
            "01b67d53f712bcb9a177f92d0c3ff6a5d7f33054",
        ),
    ],
};

/// aes256-md5-modp1536, ESP aes128-md5.
const AES256_MD5_MODP1536: Capture = Capture {
    hash: Hash::Md5,
    cipher: Cipher::AesCbc { key_bits: 256 },
    esp_key_lens: (16, 16),
    messages: [
        // MM1
        concat!(
            "6d8ae96e37d096d400000000000000000110020000000000000000b40d00003800000001000000010000002c01010001",
            "000000240101000080010007800e0100800200018004000580030001800b0001800c3de00d00000c09002689dfd6b712",
            "0d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d3800000000d000014",
            "4a131c81070358455c5728f20e95452f0000001490cb80913ebb696e086381b5ec427b1f",
        ),
        // MM2
        concat!(
            "6d8ae96e37d096d419d65f4c23f33f7b0110020000000000000000a00d00003800000001000000010000002c01010001",
            "000000240101000080010007800e0100800200018004000580030001800b0001800c3de00d00000c09002689dfd6b712",
            "0d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d56ebce88525e7de7f00d6c2d38000000000000014",
            "4a131c81070358455c5728f20e95452f",
        ),
        // MM3
        concat!(
            "6d8ae96e37d096d419d65f4c23f33f7b04100200000000000000012c0a0000c4cd01deb5bae3a85abc240b0855201f7a",
            "78b0b8358511444ff4e7f478ada609ca67a2a2d570b8ccfa2af7266e871e844ee994020870327a751da1933030bbc54d",
            "698483cea2119310f6458c1b0a9fa23171372217bb3b900e61ad9bd2d05ea18ae10db7fabc5279d308ed2e22004410d7",
            "10573a07aad49aff8ae28eb30152a05233cfb925b8973f5ba15f48e45ba2ab27991b28c5557f7bed92cde6a6dff65f87",
            "49d68ddaccd86c3cb40135926feb735f04741c7b718b75a1bb9dd0625ba8cc8e140000242c987a0227d09521d68dd7f4",
            "a55c0158524b59e161a5db5a00e6202c1664686a1400001488922d8a0ade1373cae202ef4c9aa3d40000001404a92578",
            "557fea0b2021ab1fd94e11b8",
        ),
        // MM4
        concat!(
            "6d8ae96e37d096d419d65f4c23f33f7b04100200000000000000012c0a0000c4773acb7e0bdcb88ef6b3fff1da5c7350",
            "17017b9eedb5e45da6f6b0dbfd2b24f45babfe9a38f62c4f01c2c699c387182b42476068823fb680ed19a139fc20ca76",
            "2bdac59ec839ca5e6dda8689d4eb65c5686d5813c71928f18a90a96d6f610838c2d37984d0a26f3bb6097f089f501acb",
            "9ed89b33cde11cc54c559d99804d8e1394b78a244d5340008c7ec3394c4e2a172c2ec176fb456e00d8b7b9e870c8ab9d",
            "7590741a9593754e0a013763dab086312200e7e6354259019b4389795002b7a8140000247dd58a35cd96f0f84d001795",
            "bff9a9399b8c582bbb6e34beee8b392e4fb3e57d140000143eedce9ab4d3d18aa52eebd0d80d0f38000000141e85a7a6",
            "f5bf8a86143971e19436df95",
        ),
        // MM5
        concat!(
            "6d8ae96e37d096d419d65f4c23f33f7b05100201000000000000005ca7051528b3df5d863f7e6368ce87cb973dd3cb7c",
            "9b1377fa0db8d75b6d5ea8fc581e7b3f55d3c71c08b89ac7b67d683efce00c324c7caa7c1d6d8cc842266a50",
        ),
        // MM6
        concat!(
            "6d8ae96e37d096d419d65f4c23f33f7b05100201000000000000004c0add140cd08d7592a4feb747b9f7185e8b252ec1",
            "b128df928e2a8e539199b97222c6bc9319a2b0b7d757da1b9d51d7ed",
        ),
        // QM1
        concat!(
            "6d8ae96e37d096d419d65f4c23f33f7b08102001deb2de45000000aca3c51f484228a0549f449d4bf2e685a43a04725c",
            "24d46d30fb4adfe536f2bc0e7bf254578c612b3e17a9160d80ddbd172cca9461915f35614cbac75d15da0a4cd8e889f3",
            "837043625abfdf85a0fcf7c5095610f31b88b9928207b40ed8481bd05e8a44d5af59d89a47f5309823461609a576fd76",
            "c5a57215a0c3406ab0ae2c0eadbcfb1b2bbba53e3b50c5b62513c2c1",
        ),
        // QM2
        concat!(
            "6d8ae96e37d096d419d65f4c23f33f7b08102001deb2de45000000acf84823b8c9641cd815af49dec8d495122e75145b",
            "a7a92ce8c22a44bb54473f62c1d8084b133d0b9635db58e1151c23320f3cbb6b91eb9ec7379e33f8b98b5e6d404c31a7",
            "1aa5fee1271365e5e19835bf3bbe02d71eeea59a1afe344f422ddf82fad1cd67eaa734484fb70b9c857db93543fb6b54",
            "c7770c3fde4d61440835f6aa3df6831122ea226ffb9bd610e9710e4a",
        ),
        // QM3
        concat!(
            "6d8ae96e37d096d419d65f4c23f33f7b08102001deb2de450000003c1cdf29b5b91d8b2064c7caa6e2afd38e301634fd",
            "f829ebfa51a508db17f448a4",
        ),
    ],
    gxy: concat!(
        "c912f2178cd74c3717d964f1a8ca56143c2046e1630bdad8272c02e6af6883593f259ed6ab88edb69bbf8fd647fa7475",
        "83121719f93c89ef790c91f9ad65556d524a76bf44551ae1a623a6f848f6cd83e6d2735ec2aee76693663e0fa5674d56",
        "b14f84dccfaac96aa02342036f1aeb4d987b13a83c03537a122204b65ac75f05b54a44af5567461b88af43fcfdbfbcb4",
        "5ac0f992a282c40b70ab9846fca4d3bb730328b9f96ec7c7da096e36b4bcb7e47715720eff09ea7a7e53b0a9e28b3fb6",
    ),
    skeyid: "09d3a2df7d5de81f4398173317960409",
    skeyid_d: "10736411eecc45da248e3ad5d104a8a7",
    skeyid_a: "4fa2510a56bdbaa5d9594235bba71aa1",
    skeyid_e: "79db8d69696031f63132b5cf7cdf1967",
    ka: "b3d8b801213a639ac4c5eef32d29e7850647b83591fccac205a9dd5e2bebbb0e",
    iv: "4ceba2b838f0ed986702383610834bce",
    hash_i: "8074722fa5b9f8c43a848c08170bf16f",
    hash_r: "e5f0a3c19c388d4913fbeb0ba834f835",
    qm_iv: "795592b66af7022ce8f692e40d142efe",
    qm_hash1: "6edd96e2f7b2f8eb884028099f16934e",
    qm_hash2: "58494dc54bbd148120d867a3a7d48cdd",
    qm_hash3: "dbb4f5b50d412a55738ec4acedfbd886",
    esp_enc_i: "6365bd7caf70b3d7f08db5463a8bf6c8",
    esp_enc_r: "ed649fa4ccc366201f3b06ba7718d5a6",
    esp_integ_i: "6593764f0db886e4ea5854d01c90df60",
    esp_integ_r: "9a86aab956d761552d5a2094872b3ef0",
    gxy_qm: None,
    natd: &[
        (
            "6d8ae96e37d096d419d65f4c23f33f7bc0a84d0b01f4",
            "3eedce9ab4d3d18aa52eebd0d80d0f38",
        ),
        (
            "6d8ae96e37d096d419d65f4c23f33f7bc0a84d0c01f4",
            "88922d8a0ade1373cae202ef4c9aa3d4",
        ),
    ],
};

/// An informational exchange (RFC 2409 §5.7): the DELETE for the ESP SA
/// that charon (initiator, run `a`) sent when it was stopped, after the
/// capture had ended, so from its log alone: the IV it logged ("next IV for
/// MID 1436602140"), the "plain" payloads, its "Hash" and the "encrypted"
/// body (charon padded the 52 bytes with 12 zeros).
#[test]
fn strongswan_informational_delete() {
    let c = &AES128_SHA256_MODP2048;
    let mid = 1436602140;
    let mm6 = parse(c.messages[5]);
    let last_p1 = last_block(&mm6.body, c.cipher.block_len());
    let iv = phase2_iv(c.hash, c.cipher.block_len(), &last_p1, mid);
    assert_eq!(iv, h("cd46a7dff3c28f45eb686b28f429b3e6"));
    // [ HASH D ]: D = DOI 1, Protocol ESP, SPI size 4, one SPI.
    let d = h("000000100000000103040001b0036ae6");
    let hash = qm_hash1(c.hash, &h(c.skeyid_a), mid, &d);
    assert_eq!(
        hash,
        h("42bea351683535444f779833c409a6504be2fef391fcd9db31b63e6217e331d2")
    );
    let mut plain = [&h("0c000024")[..], &hash, &d, &[0u8; 12]].concat();
    c.cipher.encrypt(&h(c.ka), &iv, &mut plain).unwrap();
    assert_eq!(
        plain,
        h(concat!(
            "09f124e8336e296f9dae32ecc7a20e3a959fe703618f61a942501ad8e1b10b58",
            "03e1e3a44f3c9245bdcd4d0cf39d98b9637dc0c2a4f4bde4916f411135f0e047"
        ))
    );
}
