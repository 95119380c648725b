//! The `virtio_net_hdr` that a TUN device opened with `IFF_VNET_HDR` puts in
//! front of every packet, and the userspace segmentation of the TCP/UDP
//! "super-packets" it describes (what the kernel's GSO would have done).
//!
//! Why: with `TUNSETOFFLOAD` (`TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`, and
//! `TUN_F_USO4/6` where the kernel has them) one TUN read returns up to 64 KB
//! of one TCP flow instead of one MTU-sized packet, so the per-packet kernel
//! cost (syscall, routing, qdisc) is paid once per 40-odd segments. The data
//! plane then cuts the super-packet into segments that fit the TUN MTU here,
//! finishes the checksums the kernel left partial, and seals each one as it
//! would have sealed a packet read one by one (wireguard-go does the same).
//!
//! The header layout is `struct virtio_net_hdr` (virtio 1.0 §5.1.6, Linux
//! `include/uapi/linux/virtio_net.h`), 10 bytes, fields little-endian (the
//! TUN is switched to little-endian with `TUNSETVNETLE`, a no-op on
//! little-endian hosts).
//!
//! Nothing here allocates: [`Segments::write`] writes segment `i` into a
//! buffer the caller owns, so a reader can resume a super-packet in the
//! next batch.

use crate::error::Error;

/// Length of `struct virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// `flags`: the checksum at `csum_start + csum_offset` is partial (holds the
/// pseudo-header sum only) and must be completed over `csum_start..`.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the receiver of a written packet may trust its checksums.
pub const F_DATA_VALID: u8 = 2;

/// `gso_type` values (the ECN bit aside).
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
/// UFO (IPv4 fragmentation of a big UDP datagram): never enabled by us.
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
/// UDP segmentation (`UDP_SEGMENT`-style), `TUN_F_USO4/6`.
pub const GSO_UDP_L4: u8 = 5;
/// The sender negotiated ECN: CWR may be set on the first segment only.
pub const GSO_ECN: u8 = 0x80;

const TCP: u8 = 6;
const UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// A decoded `virtio_net_hdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (IP + L4) of a GSO packet; advisory (the
    /// kernel's value is not relied upon: we take it from the headers).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Splits `buf` into its header and the packet behind it.
    pub fn parse(buf: &[u8]) -> Result<(VnetHdr, &[u8]), Error> {
        Error::check_len("virtio_net_hdr", VNET_HDR_LEN, buf.len())?;
        let u16le = |i: usize| u16::from_le_bytes([buf[i], buf[i + 1]]);
        let h = VnetHdr {
            flags: buf[0],
            gso_type: buf[1],
            hdr_len: u16le(2),
            gso_size: u16le(4),
            csum_start: u16le(6),
            csum_offset: u16le(8),
        };
        Ok((h, &buf[VNET_HDR_LEN..]))
    }

    /// The 10 header bytes.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }
}

/// Which transport a GSO packet carries, and over which IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not segmented: copied whole, checksum completed if asked.
    Whole,
    Tcp {
        v6: bool,
    },
    Udp {
        v6: bool,
    },
}

/// A validated packet read from an `IFF_VNET_HDR` TUN, and how it is cut
/// into segments of at most `max_len` bytes each.
#[derive(Debug, Clone, Copy)]
pub struct Segments<'a> {
    pkt: &'a [u8],
    hdr: VnetHdr,
    kind: Kind,
    /// IP header length (IPv4 with options, IPv6 fixed header).
    l3_len: usize,
    /// IP + L4 header length: copied in front of every segment.
    hdr_len: usize,
    /// Payload bytes per segment (the last one may be shorter).
    mss: usize,
    count: usize,
}

impl<'a> Segments<'a> {
    /// Validates `pkt` (the bytes after the virtio header) against `hdr` and
    /// plans segments of at most `max_len` bytes (the TUN MTU): the kernel's
    /// `gso_size` is used unless its segments would not fit, then a smaller
    /// one. Refuses what it cannot segment correctly: UFO, IPv4 fragments,
    /// IPv6 extension headers before the L4 header, a checksum position
    /// that is not the L4 checksum of a GSO packet, a packet that does not
    /// fit `max_len` unsegmented.
    pub fn new(hdr: VnetHdr, pkt: &'a [u8], max_len: usize) -> Result<Segments<'a>, Error> {
        // Every IP length field is 16 bits.
        let max_len = max_len.min(usize::from(u16::MAX));
        let gso = hdr.gso_type & !GSO_ECN;
        if gso == GSO_NONE {
            if pkt.len() > max_len {
                return Err(Error::BufferTooSmall {
                    what: "TUN packet larger than the segment size",
                    need: pkt.len(),
                    have: max_len,
                });
            }
            if hdr.flags & F_NEEDS_CSUM != 0 {
                let at = usize::from(hdr.csum_start) + usize::from(hdr.csum_offset);
                Error::check_len("virtio_net_hdr csum_start+csum_offset", at + 2, pkt.len())?;
            }
            return Ok(Segments {
                pkt,
                hdr,
                kind: Kind::Whole,
                l3_len: 0,
                hdr_len: 0,
                mss: pkt.len(),
                count: 1,
            });
        }
        if hdr.flags & F_NEEDS_CSUM == 0 {
            return Err(Error::Malformed {
                what: "virtio_net_hdr GSO without NEEDS_CSUM",
            });
        }
        let v6 = match (gso, crate::ip::version(pkt)) {
            (GSO_TCPV4, Some(4)) | (GSO_UDP_L4, Some(4)) => false,
            (GSO_TCPV6, Some(6)) | (GSO_UDP_L4, Some(6)) => true,
            (GSO_TCPV4 | GSO_TCPV6 | GSO_UDP_L4, _) => {
                return Err(Error::Malformed {
                    what: "virtio_net_hdr gso_type does not match the IP version",
                })
            }
            _ => {
                return Err(Error::Unsupported {
                    what: "virtio_net_hdr gso_type",
                    value: u32::from(hdr.gso_type),
                })
            }
        };
        let (l3_len, proto) = if v6 {
            Error::check_len("IPv6 header", 40, pkt.len())?;
            (40, pkt[6])
        } else {
            Error::check_len("IPv4 header", 20, pkt.len())?;
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            if ihl < 20 {
                return Err(Error::Malformed { what: "IPv4 IHL" });
            }
            Error::check_len("IPv4 header", ihl, pkt.len())?;
            // MF set or a fragment offset: not a whole datagram to segment.
            if u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0 {
                return Err(Error::Malformed {
                    what: "GSO packet is an IPv4 fragment",
                });
            }
            (ihl, pkt[9])
        };
        if usize::from(hdr.csum_start) != l3_len {
            // Also what an IPv6 extension header looks like: refused rather
            // than guessed at.
            return Err(Error::Malformed {
                what: "virtio_net_hdr csum_start is not the L4 header",
            });
        }
        let (kind, l4_len, csum_off) = match (gso, proto) {
            (GSO_TCPV4 | GSO_TCPV6, TCP) => {
                Error::check_len("TCP header", l3_len + 20, pkt.len())?;
                let doff = usize::from(pkt[l3_len + 12] >> 4) * 4;
                if doff < 20 {
                    return Err(Error::Malformed {
                        what: "TCP data offset",
                    });
                }
                (Kind::Tcp { v6 }, doff, 16)
            }
            (GSO_UDP_L4, UDP) => (Kind::Udp { v6 }, 8, 6),
            _ => {
                return Err(Error::Malformed {
                    what: "GSO packet's L4 protocol does not match gso_type",
                })
            }
        };
        if usize::from(hdr.csum_offset) != csum_off {
            return Err(Error::Malformed {
                what: "virtio_net_hdr csum_offset is not the L4 checksum",
            });
        }
        let hdr_len = l3_len + l4_len;
        Error::check_len("GSO packet headers", hdr_len, pkt.len())?;
        if hdr.gso_size == 0 {
            return Err(Error::Malformed {
                what: "virtio_net_hdr gso_size 0",
            });
        }
        if hdr_len >= max_len {
            return Err(Error::BufferTooSmall {
                what: "segment size below the GSO packet's headers",
                need: hdr_len + 1,
                have: max_len,
            });
        }
        let mss = usize::from(hdr.gso_size).min(max_len - hdr_len);
        let payload = pkt.len() - hdr_len;
        let count = payload.div_ceil(mss).max(1);
        Ok(Segments {
            pkt,
            hdr,
            kind,
            l3_len,
            hdr_len,
            mss,
            count,
        })
    }

    /// How many segments [`write`](Self::write) produces.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Bytes of headers (IP + L4) copied in front of every segment's
    /// payload; 0 for a packet that is not segmented.
    pub fn header_len(&self) -> usize {
        self.hdr_len
    }

    /// The largest segment's length.
    pub fn max_segment_len(&self) -> usize {
        match self.kind {
            Kind::Whole => self.pkt.len(),
            _ => self.hdr_len + self.mss.min(self.pkt.len() - self.hdr_len),
        }
    }

    /// Writes segment `i` (`< count()`) into the front of `out`, headers
    /// fixed up and checksums complete; returns its length.
    pub fn write(&self, i: usize, out: &mut [u8]) -> Result<usize, Error> {
        if i >= self.count {
            return Err(Error::BufferTooSmall {
                what: "segment index",
                need: i + 1,
                have: self.count,
            });
        }
        let (v6, tcp) = match self.kind {
            Kind::Whole => return self.write_whole(out),
            Kind::Tcp { v6 } => (v6, true),
            Kind::Udp { v6 } => (v6, false),
        };
        let from = self.hdr_len + i * self.mss;
        let to = (from + self.mss).min(self.pkt.len());
        let plen = to - from;
        let len = self.hdr_len + plen;
        let out = segment_room(out, len)?;
        out[..self.hdr_len].copy_from_slice(&self.pkt[..self.hdr_len]);
        out[self.hdr_len..].copy_from_slice(&self.pkt[from..to]);
        let l3 = self.l3_len;
        let l4_len = len - l3;
        // IP header: lengths, IPv4 ID (+i, as the kernel's TSO does) and checksum.
        if v6 {
            // The payload length covers everything after the fixed header.
            out[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            let id = u16::from_be_bytes([out[4], out[5]]).wrapping_add(i as u16);
            out[4..6].copy_from_slice(&id.to_be_bytes());
            out[10..12].fill(0);
            let c = !fold(sum(&out[..l3], 0));
            out[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let csum_at = if tcp {
            let seq = u32::from_be_bytes([out[l3 + 4], out[l3 + 5], out[l3 + 6], out[l3 + 7]])
                .wrapping_add((i * self.mss) as u32);
            out[l3 + 4..l3 + 8].copy_from_slice(&seq.to_be_bytes());
            let mut flags = out[l3 + 13];
            if i + 1 != self.count {
                flags &= !(TCP_FIN | TCP_PSH);
            }
            if i != 0 {
                flags &= !TCP_CWR;
            }
            out[l3 + 13] = flags;
            l3 + 16
        } else {
            out[l3 + 4..l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l3 + 6
        };
        out[csum_at..csum_at + 2].fill(0);
        let proto = if tcp { TCP } else { UDP };
        let c = !fold(sum(&out[l3..], pseudo_header(out, v6, proto, l4_len)));
        // 0 means "no checksum" in UDP/IPv4 and is forbidden in UDP/IPv6;
        // 0xffff is the same value in ones' complement (RFC 768).
        let c = if c == 0 { 0xffff } else { c };
        out[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        Ok(len)
    }

    /// A packet without GSO: copied, its partial checksum completed (the
    /// field holds the pseudo-header sum; the sum runs from `csum_start`).
    fn write_whole(&self, out: &mut [u8]) -> Result<usize, Error> {
        let len = self.pkt.len();
        let out = segment_room(out, len)?;
        out.copy_from_slice(self.pkt);
        if self.hdr.flags & F_NEEDS_CSUM != 0 {
            let start = usize::from(self.hdr.csum_start);
            let at = start + usize::from(self.hdr.csum_offset);
            let c = !fold(sum(&out[start..], 0));
            let c = if c == 0 { 0xffff } else { c };
            out[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        Ok(len)
    }
}

/// The ones' complement pseudo-header sum (RFC 793 / RFC 8200 §8.1) of the
/// IP header at the front of `pkt`.
fn pseudo_header(pkt: &[u8], v6: bool, proto: u8, l4_len: usize) -> u64 {
    let addrs = if v6 { &pkt[8..40] } else { &pkt[12..20] };
    sum(addrs, u64::from(proto) + l4_len as u64)
}

/// Adds `data` as big-endian 16-bit words (odd tail padded with zero) to
/// `acc`, unfolded (the result is congruent to the sum modulo 0xffff, and
/// zero only if it is).
///
/// Byte order does not matter to a ones' complement sum (RFC 1071 §2 (B)):
/// the whole 32-bit words are added as they lie in memory (plain loads that
/// the compiler turns into vector adds; the carries collect in the upper
/// half of each u64), folded to 16 bits, and swapped to network order once
/// at the end. This sum runs over every segment the data plane builds or
/// coalesces, and one word at a time with a byte swap each it cost about
/// half of an AES-GCM seal of the same bytes.
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let (whole, rest) = data.split_at(data.len() & !3);
    // Four lanes, so that the adds do not wait on each other.
    let mut lanes = [0u64; 4];
    let mut quads = whole.chunks_exact(16);
    for q in &mut quads {
        for (lane, w) in lanes.iter_mut().zip(q.chunks_exact(4)) {
            *lane += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    let mut native = lanes.iter().sum::<u64>();
    for w in quads.remainder().chunks_exact(4) {
        native += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    // A native 16-bit word is the big-endian one with its bytes swapped,
    // that is times 256 modulo 0xffff; the swap of the folded sum undoes it.
    let folded = fold(native);
    acc += u64::from(if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    });
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [b] = pairs.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds an unfolded sum to 16 bits (end-around carry).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// True if the TCP or UDP checksum of an IPv4/IPv6 packet (no IPv6
/// extension headers) verifies, and for IPv4 the header checksum too.
/// `None` when the packet is not TCP/UDP or is truncated.
pub fn l4_checksum_ok(pkt: &[u8]) -> Option<bool> {
    let (v6, l3, proto, total) = match crate::ip::version(pkt)? {
        4 if pkt.len() >= 20 => {
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            if ihl < 20 || pkt.len() < ihl || fold(sum(&pkt[..ihl], 0)) != 0xffff {
                return Some(false);
            }
            (false, ihl, pkt[9], usize::from(u16::from_be_bytes([pkt[2], pkt[3]])))
        }
        6 if pkt.len() >= 40 => (true, 40, pkt[6], 40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]]))),
        _ => return None,
    };
    if (proto != TCP && proto != UDP) || total > pkt.len() || total < l3 {
        return None;
    }
    let l4 = &pkt[l3..total];
    if proto == UDP && !v6 && l4.len() >= 8 && l4[6..8] == [0, 0] {
        return Some(true);
    }
    Some(fold(sum(l4, pseudo_header(pkt, v6, proto, l4.len()))) == 0xffff)
}

/// The first `len` bytes of the caller's segment buffer, if it has them.
fn segment_room(out: &mut [u8], len: usize) -> Result<&mut [u8], Error> {
    let have = out.len();
    out.get_mut(..len).ok_or(Error::BufferTooSmall {
        what: "segment buffer",
        need: len,
        have,
    })
}
#[cfg(test)]
mod tests;

/// Largest IP packet a coalesced TCP super-packet may grow to.
pub const GRO_MAX: usize = 65535;

/// TCP receive coalescing for writes to an `IFF_VNET_HDR` TUN (what the
/// kernel's GRO does on a NIC): consecutive in-order segments of one TCP
/// flow that arrived on one SA are joined into one super-packet behind a
/// `virtio_net_hdr` (`GSO_TCPV4/6`, `NEEDS_CSUM`), so the kernel runs its
/// forwarding path and the receiver's TCP once per super-packet instead of
/// once per segment.
///
/// Only segments whose checksums verify are joined (the kernel would
/// drop a bad one; joined, its error would be hidden by the recomputed
/// checksum). Joined segments must be exactly what the kernel's own
/// segmentation gives back: same addresses, ports, ACK, window, options
/// and IP fields, IPv4 IDs incrementing, sequence numbers contiguous,
/// every segment but the last of the same size, only ACK (and PSH on the
/// last) set, no IPv4 options or IPv6 extension headers.
///
/// Nothing is copied but the first segment's headers: the payloads stay
/// where they were decrypted, and the writer gathers them behind
/// [`Joined::head`] (one `writev`). So the caller keeps every packet it
/// pushed since the last [`finish`](Gro::finish) until it has written them.
/// No allocation after [`Gro::new`].
#[derive(Debug)]
pub struct Gro {
    /// `virtio_net_hdr` then the first segment's IP and TCP headers.
    head: [u8; VNET_HDR_LEN + MAX_HDR],
    /// Packet bytes of the whole; 0 when nothing is pending.
    len: usize,
    tag: u32,
    v6: bool,
    /// IP + TCP header length.
    hdr_len: usize,
    /// Payload bytes of the first segment: the gso_size.
    mss: usize,
    segs: usize,
    next_seq: u32,
    /// The last segment was short or carried PSH: nothing may follow.
    closed: bool,
}

/// The largest IP and TCP headers a joined segment has: IPv6 without
/// extension headers, TCP with 40 bytes of options.
const MAX_HDR: usize = 40 + 60;

/// A super-packet [`Gro::finish`] closed: `head`, then each pushed
/// segment's payload (the packet from `payload_at` on), in push order.
#[derive(Debug, Clone, Copy)]
pub struct Joined<'a> {
    /// `virtio_net_hdr` and the IP and TCP headers, fixed up for the whole.
    pub head: &'a [u8],
    /// Where each segment's payload starts in its packet.
    pub payload_at: usize,
    pub segments: usize,
}

impl Joined<'_> {
    /// The super-packet in one buffer, from the segments that were pushed
    /// (for tests and fuzzing; the data plane gathers them instead).
    pub fn to_vec(&self, segments: &[&[u8]]) -> Vec<u8> {
        let mut v = self.head.to_vec();
        for s in segments {
            v.extend_from_slice(&s[self.payload_at..]);
        }
        v
    }
}

impl Default for Gro {
    fn default() -> Self {
        Self::new()
    }
}

impl Gro {
    pub fn new() -> Gro {
        Gro {
            head: [0u8; VNET_HDR_LEN + MAX_HDR],
            len: 0,
            tag: 0,
            v6: false,
            hdr_len: 0,
            mss: 0,
            segs: 0,
            next_seq: 0,
            closed: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Segments in the pending packet.
    pub fn segments(&self) -> usize {
        if self.len == 0 {
            0
        } else {
            self.segs
        }
    }

    /// Adds `pkt` (from the SA `tag`) to the pending super-packet, or, when
    /// nothing is pending, starts one with it. False when it cannot be
    /// joined (or is no candidate at all): the caller then
    /// [`finish`](Self::finish)es what is pending, writes that, and tries
    /// `push` once more (a non-candidate is then written as it is).
    pub fn push(&mut self, pkt: &[u8], tag: u32) -> bool {
        let Some(c) = candidate(pkt) else {
            return false;
        };
        if self.len == 0 {
            self.head[VNET_HDR_LEN..VNET_HDR_LEN + c.hdr_len].copy_from_slice(&pkt[..c.hdr_len]);
            self.len = pkt.len();
            self.tag = tag;
            self.v6 = c.v6;
            self.hdr_len = c.hdr_len;
            self.mss = pkt.len() - c.hdr_len;
            self.segs = 1;
            self.next_seq = c.seq.wrapping_add(self.mss as u32);
            self.closed = c.psh;
            return true;
        }
        let plen = pkt.len() - c.hdr_len;
        if self.closed
            || tag != self.tag
            || c.v6 != self.v6
            || c.hdr_len != self.hdr_len
            || c.seq != self.next_seq
            || plen > self.mss
            || self.len + plen > GRO_MAX
        {
            return false;
        }
        let first = &self.head[VNET_HDR_LEN..VNET_HDR_LEN + self.hdr_len];
        let h = &pkt[..c.hdr_len];
        let same_ip = if c.v6 {
            // Version, class, flow label; next header, hop limit; addresses.
            first[..4] == h[..4] && first[6..40] == h[6..40]
        } else {
            let id0 = u16::from_be_bytes([first[4], first[5]]);
            // TOS; DF; TTL, protocol; addresses (checksum aside).
            first[1] == h[1]
                && u16::from_be_bytes([h[4], h[5]]) == id0.wrapping_add(self.segs as u16)
                && first[6..10] == h[6..10]
                && first[12..20] == h[12..20]
        };
        let l3 = if c.v6 { 40 } else { 20 };
        let (t0, t) = (&first[l3..], &h[l3..]);
        // Ports; ACK, offset, window, urgent pointer, options. Flags may
        // differ only by PSH.
        let same_tcp = t0[..4] == t[..4]
            && t0[8..13] == t[8..13]
            && (t0[13] & !TCP_PSH) == (t[13] & !TCP_PSH)
            && t0[14..16] == t[14..16]
            && t0[18..] == t[18..];
        if !(same_ip && same_tcp) {
            return false;
        }
        self.len += plen;
        self.segs += 1;
        self.next_seq = self.next_seq.wrapping_add(plen as u32);
        if c.psh {
            self.head[VNET_HDR_LEN + l3 + 13] |= TCP_PSH;
        }
        self.closed = c.psh || plen < self.mss;
        true
    }

    /// The pending packet, ready for the TUN: its `virtio_net_hdr` and
    /// headers, behind which the pushed segments' payloads follow. A single
    /// segment goes out unchanged with an empty header; several as a GSO
    /// packet whose TCP checksum holds the pseudo-header sum
    /// (`NEEDS_CSUM`: the kernel completes it when it segments). Empties
    /// the coalescer; `None` when nothing is pending.
    pub fn finish(&mut self) -> Option<Joined<'_>> {
        if self.len == 0 {
            return None;
        }
        let len = std::mem::take(&mut self.len);
        let hdr_len = self.hdr_len;
        let (hb, p) = self.head.split_at_mut(VNET_HDR_LEN);
        let p = &mut p[..hdr_len];
        if self.segs == 1 {
            hb.copy_from_slice(&VnetHdr::default().to_bytes());
            return Some(self.joined());
        }
        let l3 = if self.v6 { 40 } else { 20 };
        if self.v6 {
            p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        } else {
            p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            p[10..12].fill(0);
            let c = !fold(sum(&p[..20], 0));
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        // The whole's length: the headers are all this reads besides.
        let partial = fold(pseudo_header(p, self.v6, TCP, len - l3));
        p[l3 + 16..l3 + 18].copy_from_slice(&partial.to_be_bytes());
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if self.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: hdr_len as u16,
            gso_size: self.mss as u16,
            csum_start: l3 as u16,
            csum_offset: 16,
        };
        hb.copy_from_slice(&hdr.to_bytes());
        Some(self.joined())
    }

    fn joined(&self) -> Joined<'_> {
        Joined {
            head: &self.head[..VNET_HDR_LEN + self.hdr_len],
            payload_at: self.hdr_len,
            segments: self.segs,
        }
    }
}

/// What [`Gro::push`] needs of a joinable TCP segment.
struct Candidate {
    v6: bool,
    hdr_len: usize,
    seq: u32,
    psh: bool,
}

/// A TCP segment that may be joined: IPv4 without options and not a
/// fragment, or IPv6 without extension headers; exact length; only ACK
/// (and PSH) set; some payload; checksums verified.
fn candidate(pkt: &[u8]) -> Option<Candidate> {
    let (v6, l3) = match crate::ip::version(pkt)? {
        4 if pkt.len() >= 40
            && pkt[0] == 0x45
            && pkt[9] == TCP
            && u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff == 0
            && usize::from(u16::from_be_bytes([pkt[2], pkt[3]])) == pkt.len() =>
        {
            (false, 20)
        }
        6 if pkt.len() >= 60
            && pkt[6] == TCP
            && usize::from(u16::from_be_bytes([pkt[4], pkt[5]])) + 40 == pkt.len() =>
        {
            (true, 40)
        }
        _ => return None,
    };
    let t = &pkt[l3..];
    let doff = usize::from(t[12] >> 4) * 4;
    let flags = t[13];
    if doff < 20 || l3 + doff >= pkt.len() || flags & !TCP_PSH != 0x10 || t[12] & 0x0f != 0 {
        return None;
    }
    if l4_checksum_ok(pkt) != Some(true) {
        return None;
    }
    Some(Candidate {
        v6,
        hdr_len: l3 + doff,
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        psh: flags & TCP_PSH != 0,
    })
}
