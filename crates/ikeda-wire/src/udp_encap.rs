//! UDP encapsulation of ESP, RFC 3948 §2.
//!
//! ```text
//! UDP-Encapsulated ESP Header Format (§2.1)
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        Source Port            |      Destination Port         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Length              |           Checksum            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      ESP header [RFC4303]                     |
//! ~                                                               ~
//!
//! IKE Header Format for Port 4500 (§2.2)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Non-ESP Marker (0)                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      IKE header [RFC4306]                     |
//!
//! NAT-Keepalive Packet Format (§2.3)
//! +-+-+-+-+-+-+-+-+
//! |     0xFF      |
//! +-+-+-+-+-+-+-+-+
//! ```
//!
//! The UDP header itself is the kernel's business (we use UDP sockets);
//! this module classifies the UDP payload.

use crate::error::Error;

/// The IANA port for IKE and UDP-encapsulated ESP after a NAT is detected.
pub const NAT_T_PORT: u16 = 4500;
/// Length of the Non-ESP Marker.
pub const NON_ESP_MARKER_LEN: usize = 4;

/// What a datagram received on UDP port 4500 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500Payload<'a> {
    /// An ESP packet (first four bytes, the SPI, are non-zero).
    Esp(&'a [u8]),
    /// An IKE message after the Non-ESP Marker (marker stripped).
    Ike(&'a [u8]),
    /// A NAT-keepalive: the single byte 0xFF.
    NatKeepalive,
}

/// Classify a UDP/4500 payload (RFC 3948 §2.2: the receiver looks at the
/// first four bytes; a zero SPI is never valid for ESP).
pub fn classify(payload: &[u8]) -> Result<Udp4500Payload<'_>, Error> {
    if payload == [0xff] {
        return Ok(Udp4500Payload::NatKeepalive);
    }
    Error::check_len("UDP-encapsulated ESP or IKE", NON_ESP_MARKER_LEN + 4, payload.len())?;
    if payload[..NON_ESP_MARKER_LEN] == [0, 0, 0, 0] {
        Ok(Udp4500Payload::Ike(&payload[NON_ESP_MARKER_LEN..]))
    } else {
        Ok(Udp4500Payload::Esp(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_all_three() {
        assert_eq!(classify(&[0xff]).unwrap(), Udp4500Payload::NatKeepalive);
        let ike = [0, 0, 0, 0, 1, 2, 3, 4, 5];
        assert_eq!(classify(&ike).unwrap(), Udp4500Payload::Ike(&ike[4..]));
        let esp = [0, 0, 1, 0, 0, 0, 0, 1, 9];
        assert_eq!(classify(&esp).unwrap(), Udp4500Payload::Esp(&esp));
        assert!(classify(&[1, 2, 3]).is_err());
        assert!(classify(&[]).is_err());
    }
}
