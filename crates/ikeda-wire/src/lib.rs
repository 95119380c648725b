//! Wire codecs for ikeda: bytes <-> typed views and values.
//!
//! This crate does no I/O, no cryptography and reads no clock. Every parser
//! checks lengths up front and returns a typed [`Error`]; once a view type
//! (`EspPacket`, `Ipv4Header`, ...) has been built with `new_checked`, none of
//! its accessors panics, whatever the bytes are.
//!
//! Layout follows smoltcp's habit: a checked zero-copy view named after the
//! RFC structure, field offsets in a private `field` module, getters named
//! after the RFC fields.

#![forbid(unsafe_code)]

pub mod error;
pub mod esp;
pub mod iana;
pub mod ikev1;
pub mod ikev2;
pub mod ip;
pub mod ipcomp;
pub mod pcap;
pub mod reassembly;
pub mod udp_encap;
pub mod udp_gso;
pub mod vnet;

pub use error::{Error, Fault};

/// Offset of the version octet in both IKE headers (RFC 2408 §3.1, RFC
/// 7296 §3.1): after the two 8-octet SPIs (IKEv1: cookies) and Next Payload.
const IKE_VERSION_OCTET: usize = 17;

/// The major version an IKE datagram's header carries (1 for ISAKMP/IKEv1,
/// 2 for IKEv2, or whatever a peer put there), before either version's
/// parser sees it; `None` if it is too short to hold the version octet.
pub fn ike_major_version(datagram: &[u8]) -> Option<u8> {
    datagram.get(IKE_VERSION_OCTET).map(|v| v >> 4)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_major_version_is_the_high_nibble_of_the_same_octet_in_both_headers() {
        let mut h = [0u8; 28];
        for (octet, major) in [(0x10, 1), (0x20, 2), (0x21, 2), (0xf0, 15)] {
            h[17] = octet;
            assert_eq!(super::ike_major_version(&h), Some(major));
        }
        assert_eq!(super::ike_major_version(&h[..18]), Some(15));
        assert_eq!(super::ike_major_version(&h[..17]), None);
    }
}
