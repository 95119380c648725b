//! Security associations (RFC 4301 §4.4.2) as the data plane holds them:
//! keys, SPI, sequence numbers, replay window, selectors, counters.
//!
//! An outbound SA is owned by the sending thread and an inbound SA by the
//! receiving thread, so neither needs a lock; their counters are atomics in
//! an `Arc<SaStats>` that `show` reads while traffic flows.

use crate::drop::{DropCounters, DropReason};
use crate::ipcomp::{Compressed, IpcompParams, IpcompScratch, IpcompStats, COMPRESS_THRESHOLD};
use crate::replay::ReplayWindow;
use crate::selector::Selector;
use core::ops::Range;
use ikeda_crypto::{EspAlgorithm, EspCipher, EspCryptoError, SecretBytes};
use ikeda_wire::esp::{self, EspPacket, Trailer, TrailerError, HEADER_LEN};
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip;
use ikeda_wire::ipcomp::{IpcompPacket, IpcompRepr};
use ikeda_wire::udp_gso::TRAIN_SEGMENTS;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How ESP travels between the gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    /// Raw IP protocol 50.
    Esp,
    /// UDP-encapsulated ESP, RFC 3948 (port 4500 on both ends by default).
    Udp,
}

/// Everything needed to install one SA (one direction).
#[derive(Debug, Clone)]
pub struct SaParams {
    pub spi: u32,
    pub algorithm: EspAlgorithm,
    pub enc_key: SecretBytes,
    pub auth_key: Option<SecretBytes>,
    /// Extended (64-bit) sequence numbers, RFC 4303 §2.2.1.
    pub esn: bool,
    /// Inbound only: replay window size in packets (0 = replay check off is
    /// not offered; the minimum is 64).
    pub replay_window: u32,
    /// Outer addresses and ports: for outbound, where to send; for inbound,
    /// where packets are expected from (informational; SPI selects the SA).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub encap: Encap,
    /// Traffic selectors the SA carries (tunnel mode).
    pub selectors: Vec<Selector>,
    /// IPComp (DEFLATE) on this SA pair: the same CPI pair for both
    /// directions; `None`: no compression (packets with IPComp headers are
    /// then dropped as `ipcomp_not_enabled`).
    pub ipcomp: Option<IpcompParams>,
}

/// Counters of one SA, shared with the control plane.
#[derive(Debug, Default)]
pub struct SaStats {
    pub packets: AtomicU64,
    /// Bytes of inner packets.
    pub bytes: AtomicU64,
    /// Highest sequence number sent (outbound) or accepted (inbound).
    pub seq: AtomicU64,
    /// Unix time in milliseconds of the last packet, 0 = never.
    pub last_packet_ms: AtomicU64,
    pub drops: DropCounters,
    /// All zero on an SA without IPComp.
    pub ipcomp: IpcompStats,
}

impl SaStats {
    fn count(&self, len: usize, seq: u64, now_ms: u64) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.seq.store(seq, Ordering::Relaxed);
        self.last_packet_ms.store(now_ms, Ordering::Relaxed);
    }
}

/// The highest sequence number an outbound SA may use, shared between the
/// sending thread (one atomic load per packet) and the owner that reserves
/// numbers ahead: a manually keyed SA's key outlives the process, so its
/// numbers are written to disk before use and the owner raises the ceiling
/// only once that write is durable (AES-GCM and ChaCha20-Poly1305 take
/// their nonce from the sequence number, RFC 4106 §3.1, RFC 7634 §2; a
/// repeat under the same key breaks them).
pub type SeqCeiling = Arc<AtomicU64>;

/// Room an outbound SA needs in front of and behind an inner packet.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    pub head: usize,
    pub tail: usize,
}

/// An outbound SA.
#[derive(Debug)]
pub struct OutboundSa {
    pub spi: u32,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub encap: Encap,
    /// With [`Encap::Udp`]: most datagrams of this SA in one `UDP_SEGMENT`
    /// train to the peer: [`TRAIN_SEGMENTS`] unless the peer said it takes
    /// more (the installer sets `ikeda_wire::udp_gso::FULL_TRAIN` then; see
    /// `ikeda_wire::udp_gso::TRAINS_VENDOR_ID`).
    pub train: u8,
    cipher: EspCipher,
    esn: bool,
    /// Last sequence number used; the next packet gets `seq + 1`.
    seq: u64,
    exhausted: bool,
    /// The highest sequence number this SA may use, if its owner reserves
    /// numbers ahead: see [`SeqCeiling`].
    ceiling: Option<SeqCeiling>,
    /// IPComp: the CPI our IPComp headers carry.
    ipcomp_cpi: Option<u16>,
    /// The algorithm's sizes (head room, tail room, block, ICV), looked up
    /// once rather than per packet; each fits a byte.
    sizes: [u8; 4],
    pub stats: Arc<SaStats>,
    /// Counted since the last [`flush_stats`](Self::flush_stats): the
    /// sender adds them to `stats` once per batch, not per packet (two
    /// atomic read-modify-writes a packet are ~5 % of a 1400-byte seal).
    unflushed: Unflushed,
}

/// See [`OutboundSa::flush_stats`].
#[derive(Debug, Default, Clone, Copy)]
struct Unflushed {
    packets: u64,
    bytes: u64,
    last_packet_ms: u64,
}

impl Drop for OutboundSa {
    /// Nothing counted is lost when the SA is replaced or removed.
    fn drop(&mut self) {
        self.flush_stats();
    }
}

impl OutboundSa {
    /// Publish what was sent since the last call (packets, bytes, the
    /// highest sequence number, the last packet's time) to `stats`, where
    /// the control plane reads it. The data plane calls it after each
    /// batch; the counters lag by at most one batch.
    pub fn flush_stats(&mut self) {
        let u = std::mem::take(&mut self.unflushed);
        if u.packets == 0 {
            return;
        }
        self.stats.packets.fetch_add(u.packets, Ordering::Relaxed);
        self.stats.bytes.fetch_add(u.bytes, Ordering::Relaxed);
        self.stats.seq.store(self.seq, Ordering::Relaxed);
        self.stats.last_packet_ms.store(u.last_packet_ms, Ordering::Relaxed);
    }

    pub fn new(p: &SaParams) -> Result<Self, EspCryptoError> {
        let a = p.algorithm;
        let byte = |n: usize| u8::try_from(n).map_err(|_| EspCryptoError::BadLength);
        Ok(OutboundSa {
            sizes: [
                byte(HEADER_LEN + a.iv_len())?,
                byte(a.block_align() - 1 + esp::TRAILER_LEN + a.icv_len())?,
                byte(a.block_align())?,
                byte(a.icv_len())?,
            ],
            spi: p.spi,
            remote: p.remote,
            local: p.local,
            encap: p.encap,
            train: TRAIN_SEGMENTS as u8,
            cipher: EspCipher::new(p.algorithm, &p.enc_key, p.auth_key.as_ref())?,
            esn: p.esn,
            seq: 0,
            exhausted: false,
            ceiling: None,
            ipcomp_cpi: p.ipcomp.map(|c| c.cpi_out),
            stats: Arc::new(SaStats::default()),
            unflushed: Unflushed::default(),
        })
    }

    /// Start from a given last-used sequence number (tests, and resuming).
    pub fn with_last_seq(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// Send no sequence number above `ceiling` (until its owner raises it).
    pub fn with_seq_ceiling(mut self, ceiling: SeqCeiling) -> Self {
        self.ceiling = Some(ceiling);
        self
    }

    pub fn algorithm(&self) -> EspAlgorithm {
        self.cipher.algorithm()
    }

    /// The CPI of our IPComp headers, if the SA compresses.
    pub fn ipcomp_cpi(&self) -> Option<u16> {
        self.ipcomp_cpi
    }

    /// Room for ESP; IPComp needs none (it only sends what got smaller).
    pub fn room(&self) -> Room {
        Room {
            head: self.sizes[0].into(),
            tail: self.sizes[1].into(),
        }
    }

    /// True once the sequence number space is used up; the SA then sends
    /// nothing more (RFC 4303 §3.3.3: the sender must not cycle).
    pub fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    /// Encapsulate the inner packet at `buf[off..off + len]` in place.
    /// `off` must leave `room().head` bytes in front, and `buf` must have
    /// `room().tail` bytes after the packet. Returns the range of the ESP
    /// packet in `buf`. `now_ms` stamps the last-packet time.
    ///
    /// An SA with IPComp needs a compressor: this allocates one per call;
    /// the data plane calls [`encapsulate_with`](Self::encapsulate_with)
    /// with the one its thread keeps.
    pub fn encapsulate(
        &mut self,
        buf: &mut [u8],
        off: usize,
        len: usize,
        now_ms: u64,
    ) -> Result<Range<usize>, DropReason> {
        self.encapsulate_with(buf, off, len, &mut IpcompScratch::default(), now_ms)
    }

    /// [`encapsulate`](Self::encapsulate), compressing (on an SA with
    /// IPComp) with `scratch`: the inner packet is replaced in place by an
    /// IPComp header and its DEFLATE form when that is shorter (RFC 3173
    /// §2.2), and ESP's Next Header becomes 108.
    pub fn encapsulate_with(
        &mut self,
        buf: &mut [u8],
        off: usize,
        len: usize,
        scratch: &mut IpcompScratch,
        now_ms: u64,
    ) -> Result<Range<usize>, DropReason> {
        let r = self.encapsulate_inner(buf, off, len, scratch, now_ms);
        self.stats.drops.count(r)
    }

    /// Compress the inner packet `buf[off..off + len]` in place if it is
    /// worth it: returns the ESP payload's length and Next Header.
    fn compress(
        &self,
        cpi: u16,
        buf: &mut [u8],
        off: usize,
        len: usize,
        inner: IpProtocol,
        scratch: &mut IpcompScratch,
    ) -> (usize, IpProtocol) {
        let outcome = if len < COMPRESS_THRESHOLD {
            Compressed::TooSmall
        } else {
            match scratch.deflate(&buf[off..off + len]) {
                None => Compressed::NotSmaller,
                Some(c) => {
                    let h = IpcompRepr {
                        next_header: inner,
                        cpi,
                    };
                    let n = h.buffer_len() + c.len();
                    buf[off + h.buffer_len()..off + n].copy_from_slice(c);
                    // n < len <= buf.len() - off: emit cannot fail.
                    let _ = h.emit(&mut buf[off..off + n]);
                    Compressed::Yes(n)
                }
            }
        };
        self.stats.ipcomp.count(outcome, len);
        match outcome {
            Compressed::Yes(n) => (n, IpProtocol::IPCOMP),
            _ => (len, inner),
        }
    }

    #[inline(always)]
    fn encapsulate_inner(
        &mut self,
        buf: &mut [u8],
        off: usize,
        inner_len: usize,
        scratch: &mut IpcompScratch,
        now_ms: u64,
    ) -> Result<Range<usize>, DropReason> {
        let len = inner_len;
        let (align, icv_len) = (usize::from(self.sizes[2]), usize::from(self.sizes[3]));
        if off.checked_add(len).is_none_or(|e| e > buf.len()) {
            return Err(DropReason::TooBig);
        }
        let next_header = match ip::version(&buf[off..off + len]) {
            Some(4) => IpProtocol::IPV4,
            Some(6) => IpProtocol::IPV6,
            _ => return Err(DropReason::NotIp),
        };
        let limit = if self.esn { u64::MAX } else { u32::MAX as u64 };
        if self.exhausted || self.seq >= limit {
            self.exhausted = true;
            return Err(DropReason::SeqExhausted);
        }
        if let Some(c) = &self.ceiling {
            if self.seq >= c.load(Ordering::Acquire) {
                return Err(DropReason::SeqNotReserved);
            }
        }
        let room = self.room();
        let start = off.checked_sub(room.head).ok_or(DropReason::TooBig)?;
        // One branch per packet when the SA has no IPComp.
        let (len, next_header) = match self.ipcomp_cpi {
            None => (len, next_header),
            Some(cpi) => {
                // Room as for the uncompressed packet, so whether a packet
                // fits does not depend on its contents.
                let tail = Trailer::pad_for(len, align) + esp::TRAILER_LEN + icv_len;
                if off + len + tail > buf.len() {
                    return Err(DropReason::TooBig);
                }
                self.compress(cpi, buf, off, len, next_header, scratch)
            }
        };
        let pad = Trailer::pad_for(len, align);
        let trailer_end = off + len + pad + esp::TRAILER_LEN;
        let end = trailer_end + icv_len;
        if end > buf.len() {
            return Err(DropReason::TooBig);
        }
        let seq = self.seq + 1;
        Trailer::emit(&mut buf[off + len..trailer_end], next_header);
        // The header is 8 bytes; emit_header cannot fail on this slice.
        let _ = esp::emit_header(&mut buf[start..start + HEADER_LEN], self.spi, seq as u32);
        self.cipher
            .seal(seq, self.esn, &mut buf[start..end])
            .map_err(|_| DropReason::TooBig)?;
        self.seq = seq;
        self.unflushed.packets += 1;
        self.unflushed.bytes += inner_len as u64;
        self.unflushed.last_packet_ms = now_ms;
        Ok(start..end)
    }
}

/// An inbound SA.
#[derive(Debug)]
pub struct InboundSa {
    pub spi: u32,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub encap: Encap,
    cipher: EspCipher,
    esn: bool,
    replay: ReplayWindow,
    pub selectors: Vec<Selector>,
    /// IPComp: the CPI compressed packets must carry.
    ipcomp_cpi: Option<u16>,
    /// IPComp with whatever CPI the packets carry ([`InboundSa::with_any_ipcomp_cpi`]).
    ipcomp_any_cpi: bool,
    pub stats: Arc<SaStats>,
}

impl InboundSa {
    pub fn new(p: &SaParams) -> Result<Self, EspCryptoError> {
        Ok(InboundSa {
            spi: p.spi,
            remote: p.remote,
            local: p.local,
            encap: p.encap,
            cipher: EspCipher::new(p.algorithm, &p.enc_key, p.auth_key.as_ref())?,
            esn: p.esn,
            replay: ReplayWindow::new(p.replay_window),
            selectors: p.selectors.clone(),
            ipcomp_cpi: p.ipcomp.map(|c| c.cpi_in),
            ipcomp_any_cpi: false,
            stats: Arc::new(SaStats::default()),
        })
    }

    /// Inflate IPComp payloads (RFC 3173) whatever their CPI, as if the
    /// SA had IPComp with that CPI. For an observer that decrypts a
    /// capture (`ikeda pcap`) with keys that do not say which CPI the
    /// receiver chose; the data plane never sets it.
    pub fn with_any_ipcomp_cpi(mut self) -> Self {
        self.ipcomp_any_cpi = true;
        self
    }

    pub fn algorithm(&self) -> EspAlgorithm {
        self.cipher.algorithm()
    }

    /// The CPI compressed packets to us carry, if the SA has IPComp.
    pub fn ipcomp_cpi(&self) -> Option<u16> {
        self.ipcomp_cpi
    }

    pub fn replay_window(&self) -> &ReplayWindow {
        &self.replay
    }

    /// For tests and state transfer: move the window (e.g. to just below
    /// 2^32 to exercise extended sequence numbers).
    pub fn replay_window_mut(&mut self) -> &mut ReplayWindow {
        &mut self.replay
    }

    /// Verify, decrypt and check the ESP packet `pkt` (starting at the SPI)
    /// in place. Returns the range of the inner IP packet within `pkt`.
    /// Order as RFC 4303 §3.4: replay check, ICV, decrypt, replay commit;
    /// then padding, next header and selectors (RFC 4301 §5.2).
    ///
    /// A compressed packet needs room to decompress into and a
    /// decompressor: use [`decapsulate_in`](Self::decapsulate_in).
    pub fn decapsulate(&mut self, pkt: &mut [u8], now_ms: u64) -> Result<Range<usize>, DropReason> {
        let len = pkt.len();
        self.decapsulate_in(pkt, 0, len, &mut IpcompScratch::default(), now_ms)
    }

    /// Decapsulate the ESP packet at `buf[start..start + len]` in place.
    /// Returns the inner packet's range in `buf`. A compressed packet
    /// (Next Header 108, RFC 3173) is decompressed with `scratch` and
    /// written over the ESP packet, from `start` on, so `buf` should
    /// extend past the packet by the most the inner packet may grow (the
    /// receive slot); one that does not fit is `too_big`.
    pub fn decapsulate_in(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        scratch: &mut IpcompScratch,
        now_ms: u64,
    ) -> Result<Range<usize>, DropReason> {
        let r = self.decapsulate_inner(buf, start, len, scratch, now_ms);
        self.stats.drops.count(r)
    }

    fn decapsulate_inner(
        &mut self,
        buf: &mut [u8],
        start: usize,
        len: usize,
        scratch: &mut IpcompScratch,
        now_ms: u64,
    ) -> Result<Range<usize>, DropReason> {
        let end = start
            .checked_add(len)
            .filter(|e| *e <= buf.len())
            .ok_or(DropReason::Truncated)?;
        let pkt = &mut buf[start..end];
        let view = EspPacket::new_checked(&*pkt).map_err(|_| DropReason::Truncated)?;
        let seq_lo = view.sequence_number();
        let alg = self.cipher.algorithm();
        if pkt.len() < HEADER_LEN + alg.iv_len() + alg.icv_len() + esp::TRAILER_LEN {
            return Err(DropReason::Truncated);
        }
        let seq = if self.esn {
            self.replay.infer_seq(seq_lo)
        } else {
            seq_lo as u64
        };
        self.replay.check(seq).map_err(|e| match e {
            crate::replay::ReplayError::Replayed => DropReason::Replayed,
            _ => DropReason::ReplayTooOld,
        })?;
        let plain = self.cipher.open(seq, self.esn, pkt).map_err(|e| match e {
            EspCryptoError::IcvMismatch => DropReason::IcvMismatch,
            _ => DropReason::BadCiphertextLength,
        })?;
        // Authentic from here on: the window may move even if the content
        // turns out to be unusable (the sender did send this number).
        self.replay.commit(seq);
        let (trailer, inner_len) = Trailer::parse_and_check(&pkt[plain.clone()]).map_err(|e| match e {
            TrailerError::Truncated => DropReason::BadTrailer,
            TrailerError::BadPadding => DropReason::BadPadding,
        })?;
        let inner = start + plain.start..start + plain.start + inner_len;
        // IPComp sizes (payload, decompressed), counted once the packet is accepted.
        let mut ipcomp = None;
        let (next_header, inner) = match (trailer.next_header, self.ipcomp_cpi) {
            (IpProtocol::IPCOMP, None) if !self.ipcomp_any_cpi => return Err(DropReason::IpcompNotEnabled),
            (IpProtocol::IPCOMP, cpi) => {
                let h = IpcompPacket::new_checked(&buf[inner.clone()]).map_err(|_| DropReason::IpcompDecompress)?;
                if cpi.is_some_and(|cpi| h.cpi() != cpi) {
                    return Err(DropReason::IpcompBadCpi);
                }
                let next_header = h.next_header();
                let out = scratch.inflate(h.payload()).map_err(|_| DropReason::IpcompDecompress)?;
                let n = out.len();
                // Over the ESP header and the compressed data, now read.
                buf.get_mut(start..start + n)
                    .ok_or(DropReason::TooBig)?
                    .copy_from_slice(out);
                ipcomp = Some((inner.len(), n));
                (next_header, start..start + n)
            }
            (nh, _) => (nh, inner),
        };
        let version = ip::version(&buf[inner.clone()]);
        match (next_header, version) {
            (IpProtocol::NO_NEXT_HEADER, _) => return Err(DropReason::DummyPacket),
            (IpProtocol::IPV4, Some(4)) | (IpProtocol::IPV6, Some(6)) => {}
            _ => return Err(DropReason::BadNextHeader),
        }
        // Tunnel mode may carry TFC padding after the inner packet
        // (RFC 4303 §2.7); the inner header says where the packet ends.
        let claimed = ip::claimed_len(&buf[inner.clone()]).map_err(|_| DropReason::InnerMalformed)?;
        let inner = inner.start..inner.start + claimed;
        let key = ip::flow_key(&buf[inner.clone()]).map_err(|_| DropReason::InnerMalformed)?;
        if !self.selectors.iter().any(|s| s.matches_inbound(&key)) {
            return Err(DropReason::SelectorMismatch);
        }
        match (ipcomp, self.ipcomp_cpi) {
            (Some((compressed, plain)), _) => self.stats.ipcomp.count_decompressed(compressed, plain),
            (None, Some(_)) => self.stats.ipcomp.count_uncompressed(),
            (None, None) if self.ipcomp_any_cpi => self.stats.ipcomp.count_uncompressed(),
            (None, None) => {}
        }
        self.stats.count(claimed, seq, now_ms);
        Ok(inner)
    }
}
