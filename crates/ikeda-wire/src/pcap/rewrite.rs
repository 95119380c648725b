//! Packet surgery for `ikeda pcap --write`: an encrypted IKE message made
//! into its cleartext twin, and a UDP datagram re-framed in IP around a
//! new payload, every length and checksum fixed, so that a dissector with
//! no keys (Wireshark) reads what was inside. No crypto here: the caller
//! hands in what it decrypted.
//!
//! ```text
//! IKEv2 (RFC 7296 §3.14):
//!   header(Next=X) | P1 | ... | Pk(Next=SK) | SK(Next=F | IV | ct | ICV)
//!   header(Next=X) | P1 | ... | Pk(Next=F)  | F | ... (the decrypted chain)
//!   (no payload before SK: the header's Next Payload becomes F)
//! IKEv1 (RFC 2408 §3.1):
//!   header(flags E) | CBC(chain | padding)  ->  header(flags without E) | chain
//! ```

use crate::error::Error;
use crate::iana::IpProtocol;
use crate::ip::{IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN};
use std::net::IpAddr;

/// IKE header: Next Payload at 16, Flags at 19, Length at 24..28; the
/// same offsets in IKEv1 (RFC 2408 §3.1) and IKEv2 (RFC 7296 §3.1).
const IKE_HEADER_LEN: usize = 28;
const NEXT_PAYLOAD: usize = 16;
const FLAGS: usize = 19;
const LENGTH: usize = 24;
/// RFC 7296 §3.2: Encrypted and Authenticated (46), RFC 7383 §2.5: its
/// fragment (53).
const SK: u8 = 46;
const SKF: u8 = 53;
/// RFC 2408 §3.1: the Encryption bit of the ISAKMP header flags.
const IKEV1_FLAG_E: u8 = 0x01;

/// The largest IP packet: IPv4 Total Length and IPv6 Payload Length are
/// 16 bits.
const MAX_IP_PAYLOAD: usize = 65535;

fn malformed(what: &'static str) -> Error {
    Error::Malformed { what }
}

/// An IKEv2 message with its SK (or SKF) payload replaced by the payload
/// chain decrypted from it: `message` as captured, `first` the SK
/// payload's Next Payload (the first inner payload), `chain` the
/// decrypted payloads (padding and Pad Length removed). The payloads
/// before SK are kept byte for byte; the Next Payload that named SK (the
/// header's or the previous payload's) names `first`, and the header
/// Length is the new length.
pub fn ikev2_cleartext(message: &[u8], first: u8, chain: &[u8]) -> Result<Vec<u8>, Error> {
    Error::check_len("IKE header", IKE_HEADER_LEN, message.len())?;
    let (mut next_at, mut at) = (NEXT_PAYLOAD, IKE_HEADER_LEN);
    // Every payload is at least its 4-byte generic header, so this ends.
    loop {
        let kind = message[next_at];
        if kind == SK || kind == SKF {
            break;
        }
        if kind == 0 {
            return Err(malformed("IKEv2 message without an SK or SKF payload"));
        }
        Error::check_len("IKEv2 generic payload header", at + 4, message.len())?;
        let len = usize::from(u16::from_be_bytes([message[at + 2], message[at + 3]]));
        if len < 4 {
            return Err(malformed("IKEv2 Payload Length below 4"));
        }
        Error::check_len("IKEv2 payload (Payload Length)", at + len, message.len())?;
        next_at = at;
        at += len;
    }
    let total = at + chain.len();
    let total32 = u32::try_from(total).map_err(|_| malformed("IKE message over 2^32 bytes"))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&message[..at]);
    out.extend_from_slice(chain);
    out[next_at] = first;
    out[LENGTH..LENGTH + 4].copy_from_slice(&total32.to_be_bytes());
    Ok(out)
}

/// An IKEv1 message decrypted: the header with the Encryption flag
/// cleared and its Length fitted to `chain` (the payloads, CBC padding
/// removed). The header's Next Payload already names the first of them.
pub fn ikev1_cleartext(message: &[u8], chain: &[u8]) -> Result<Vec<u8>, Error> {
    Error::check_len("ISAKMP header", IKE_HEADER_LEN, message.len())?;
    let total = u32::try_from(IKE_HEADER_LEN + chain.len()).map_err(|_| malformed("ISAKMP message over 2^32 bytes"))?;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&message[..IKE_HEADER_LEN]);
    out.extend_from_slice(chain);
    out[FLAGS] &= !IKEV1_FLAG_E;
    out[LENGTH..LENGTH + 4].copy_from_slice(&total.to_be_bytes());
    Ok(out)
}

/// The RFC 1071 sum of several slices as if they were one.
struct Sum {
    sum: u64,
    odd: Option<u8>,
}

impl Sum {
    fn new() -> Sum {
        Sum { sum: 0, odd: None }
    }

    fn add(&mut self, mut data: &[u8]) {
        if let (Some(hi), Some((&lo, rest))) = (self.odd, data.split_first()) {
            self.sum += u64::from(u16::from_be_bytes([hi, lo]));
            self.odd = None;
            data = rest;
        }
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            self.sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [b] = chunks.remainder() {
            self.odd = Some(*b);
        }
    }

    fn finish(mut self) -> u16 {
        if let Some(hi) = self.odd {
            self.sum += u64::from(hi) << 8;
        }
        while self.sum > 0xffff {
            self.sum = (self.sum & 0xffff) + (self.sum >> 16);
        }
        !(self.sum as u16)
    }
}

/// Fields of the original IP header worth keeping: IPv4 TOS, ID, DF and
/// TTL; IPv6 traffic class, flow label and hop limit.
fn template_fields(template: Option<&[u8]>, v4: bool) -> Option<&[u8]> {
    let t = template?;
    match (v4, t.first().map(|b| b >> 4)) {
        (true, Some(4)) if t.len() >= IPV4_MIN_HEADER_LEN => Some(&t[..IPV4_MIN_HEADER_LEN]),
        (false, Some(6)) if t.len() >= IPV6_HEADER_LEN => Some(&t[..8]),
        _ => None,
    }
}

/// Write into `out` (cleared first) an IP packet from `src` to `dst`
/// carrying one UDP datagram whose payload is `parts` joined (e.g. the
/// non-ESP marker and an IKE message). `template`, the original packet's
/// IP header when there is one of the same family, lends the fields a
/// reader may look at (TTL, DSCP, IPv4 ID and DF, IPv6 flow label); the
/// new packet has no IPv4 options, no IPv6 extension headers and is not a
/// fragment. The UDP checksum is computed for both families (RFC 768;
/// mandatory for IPv6, RFC 8200 §8.1), and the IPv4 header checksum.
pub fn udp_packet(
    out: &mut Vec<u8>,
    template: Option<&[u8]>,
    src: IpAddr,
    dst: IpAddr,
    ports: (u16, u16),
    parts: &[&[u8]],
) -> Result<(), Error> {
    out.clear();
    let payload: usize = parts.iter().map(|p| p.len()).sum();
    let udp_len = UDP_HEADER_LEN + payload;
    let mut sum = Sum::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = IPV4_MIN_HEADER_LEN + udp_len;
            if total > MAX_IP_PAYLOAD {
                return Err(malformed("IPv4 packet over 65535 bytes"));
            }
            match template_fields(template, true) {
                Some(t) => out.extend_from_slice(t),
                None => out.extend_from_slice(&[0; IPV4_MIN_HEADER_LEN]),
            }
            out[0] = 0x45;
            out[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            // Keep DF; not a fragment.
            out[6] &= 0x40;
            out[7] = 0;
            if out[8] == 0 {
                out[8] = 64;
            }
            out[9] = IpProtocol::UDP.0;
            out[10..12].fill(0);
            out[12..16].copy_from_slice(&s.octets());
            out[16..20].copy_from_slice(&d.octets());
            let c = crate::ip::internet_checksum(&out[..IPV4_MIN_HEADER_LEN]);
            out[10..12].copy_from_slice(&c.to_be_bytes());
            sum.add(&s.octets());
            sum.add(&d.octets());
            sum.add(&[0, IpProtocol::UDP.0]);
            sum.add(&(udp_len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            if udp_len > MAX_IP_PAYLOAD {
                return Err(malformed("IPv6 payload over 65535 bytes"));
            }
            match template_fields(template, false) {
                Some(t) => out.extend_from_slice(t),
                None => out.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, 0, 64]),
            }
            out[0] = 0x60 | (out[0] & 0x0f);
            out[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            out[6] = IpProtocol::UDP.0;
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            // RFC 8200 §8.1 pseudo-header.
            sum.add(&s.octets());
            sum.add(&d.octets());
            sum.add(&(udp_len as u32).to_be_bytes());
            sum.add(&[0, 0, 0, IpProtocol::UDP.0]);
        }
        _ => return Err(malformed("IP addresses of two families")),
    }
    let udp_at = out.len();
    out.extend_from_slice(&ports.0.to_be_bytes());
    out.extend_from_slice(&ports.1.to_be_bytes());
    out.extend_from_slice(&(udp_len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    for p in parts {
        out.extend_from_slice(p);
    }
    sum.add(&out[udp_at..]);
    // A computed 0 is sent as all ones (RFC 768; RFC 8200 §8.1).
    let c = match sum.finish() {
        0 => 0xffff,
        c => c,
    };
    out[udp_at + 6..udp_at + 8].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikev2::{self, Message};
    use crate::ip;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// IKE_AUTH request with a Notify before SK, and the same without.
    fn with_sk(before_notify: bool) -> Vec<u8> {
        let mut m = vec![1; 8];
        m.extend_from_slice(&[2; 8]);
        let first = if before_notify { 41 } else { SK };
        m.extend_from_slice(&[first, 0x20, 35, 0x08, 0, 0, 0, 1, 0, 0, 0, 0]);
        if before_notify {
            // N(INITIAL_CONTACT): protocol 1, SPI size 0, type 16384.
            m.extend_from_slice(&[SK, 0, 0, 8, 1, 0, 0x40, 0x00]);
        }
        // SK: Next Payload IDi, a 20-byte opaque body.
        m.extend_from_slice(&[35, 0, 0, 24]);
        m.extend_from_slice(&[0xee; 20]);
        let len = m.len() as u32;
        m[24..28].copy_from_slice(&len.to_be_bytes());
        m
    }

    /// IDi(ID_IPV4_ADDR 10.0.0.1) | AUTH(PSK, 4 bytes).
    fn inner_chain() -> Vec<u8> {
        let mut c = vec![39, 0, 0, 12, 1, 0, 0, 0, 10, 0, 0, 1];
        c.extend_from_slice(&[0, 0, 0, 12, 2, 0, 0, 0, 9, 9, 9, 9]);
        c
    }

    #[test]
    fn ikev2_sk_becomes_its_inner_chain() {
        for before in [false, true] {
            let clear = ikev2_cleartext(&with_sk(before), 35, &inner_chain()).unwrap();
            let m = Message::parse(&clear).unwrap();
            let kinds: Vec<_> = m.payloads.iter().map(|p| p.payload_type().0).collect();
            let want: &[u8] = if before { &[41, 35, 39] } else { &[35, 39] };
            assert_eq!(kinds, want, "{m:?}");
            assert!(matches!(m.payloads.last(), Some(ikev2::Payload::Auth(_))));
            assert_eq!(m.header.message_id, 1);
        }
    }

    #[test]
    fn ikev2_without_sk_or_with_a_broken_chain_is_refused() {
        let mut m = with_sk(true);
        m[16] = 0;
        assert!(ikev2_cleartext(&m, 35, &[]).is_err());
        let mut m = with_sk(true);
        m[28 + 3] = 2; // Payload Length 2
        assert!(ikev2_cleartext(&m, 35, &[]).is_err());
        let m = with_sk(true);
        assert!(ikev2_cleartext(&m[..30], 35, &[]).is_err());
        assert!(ikev2_cleartext(&m[..10], 35, &[]).is_err());
    }

    #[test]
    fn ikev1_flag_e_is_cleared_and_the_length_fitted() {
        let mut h = vec![7; 16];
        h.extend_from_slice(&[8, 0x10, 32, 0x01 | 0x02, 0, 0, 0, 9, 0, 0, 0, 60]);
        h.extend_from_slice(&[0xab; 32]);
        // HASH payload, 8 bytes.
        let chain = [0, 0, 0, 8, 1, 2, 3, 4];
        let c = ikev1_cleartext(&h, &chain).unwrap();
        assert_eq!(c.len(), 36);
        assert_eq!(c[19], 0x02, "only E cleared");
        assert_eq!(u32::from_be_bytes([c[24], c[25], c[26], c[27]]), 36);
        let m = crate::ikev1::Message::parse(&c).unwrap();
        assert_eq!(m.payload_list().len(), 1);
        assert!(ikev1_cleartext(&h[..20], &chain).is_err());
    }

    fn udp_checksum_ok(packet: &[u8]) -> bool {
        let d = ip::datagram(packet).unwrap();
        let mut s = Sum::new();
        match (d.src, d.dst) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                s.add(&a.octets());
                s.add(&b.octets());
                s.add(&[0, 17]);
                s.add(&(d.payload.len() as u16).to_be_bytes());
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                s.add(&a.octets());
                s.add(&b.octets());
                s.add(&(d.payload.len() as u32).to_be_bytes());
                s.add(&[0, 0, 0, 17]);
            }
            _ => unreachable!(),
        }
        s.add(d.payload);
        s.finish() == 0
    }

    #[test]
    fn udp_packets_have_right_lengths_and_checksums_in_both_families() {
        let v4 = (
            IpAddr::V4(Ipv4Addr::new(192, 168, 50, 11)),
            IpAddr::V4(Ipv4Addr::new(192, 168, 50, 12)),
        );
        let v6 = (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        );
        // A template IPv4 header: TTL 7, DF, a fragment offset and options to drop.
        let mut t4 = ip::build_ipv4(
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            IpProtocol::ESP,
            &[0; 8],
        );
        t4[6] = 0x60; // DF | MF
        t4[7] = 0x10;
        t4[8] = 7;
        let t6 = ip::build_ipv6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, IpProtocol::ESP, &[]);
        let mut out = Vec::new();
        for (src, dst) in [v4, v6] {
            for odd in [&[0u8, 0, 0, 0][..], &[1, 2, 3][..]] {
                for template in [None, Some(&t4[..]), Some(&t6[..])] {
                    udp_packet(&mut out, template, src, dst, (4500, 4501), &[odd, b"hello"]).unwrap();
                    let d = ip::datagram(&out).unwrap();
                    assert_eq!(
                        (d.src, d.dst, d.protocol, d.fragment),
                        (src, dst, IpProtocol::UDP, None)
                    );
                    let u = ip::udp(d.payload).unwrap();
                    assert_eq!((u.src_port, u.dst_port), (4500, 4501));
                    assert_eq!(u.payload, [odd, b"hello"].concat());
                    assert!(udp_checksum_ok(&out), "{out:02x?}");
                    if src.is_ipv4() {
                        assert_eq!(ip::internet_checksum(&out[..20]), 0);
                        let want = if template == Some(&t4[..]) { (7, 0x40) } else { (64, 0) };
                        assert_eq!((out[8], out[6]), want);
                    }
                }
            }
        }
        assert!(udp_packet(&mut out, None, v4.0, v6.1, (1, 2), &[]).is_err());
        assert!(udp_packet(&mut out, None, v4.0, v4.1, (1, 2), &[&vec![0; 65535]]).is_err());
    }
}
