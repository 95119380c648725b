//! From packets to what an IPsec engineer reads: IKE messages in the
//! notation of our logs (`ikeda_wire::ikev2::summary`,
//! `ikeda_wire::ikev1::summary`), ESP as one flow per SA, NAT-T
//! keepalives counted. Every table that the capture can grow is bounded
//! ([`Limits`]) and what did not fit is counted.
//!
//! IKE is recognised on UDP port 500 and on 4500 after the non-ESP marker
//! (RFC 3948 §2.2), by either port, so a NAT's rewritten source port does
//! not hide it; ESP as IP protocol 50 and in UDP 4500 (RFC 3948 §2.1).

use super::explain::{self, Explainer, Facts};
use super::keys::KeyStore;
use super::skf::{self, SkfReassembler};
use super::v1chain::{self, Cookies, V1Chain};
use super::write::{EspDecrypted, IkeCleartext, Rewrite};
use ikeda_crypto::ike::IkeCryptoError;
use ikeda_esp::{DropReason, InboundSa, IpcompScratch};
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip::{self, Datagram};
use ikeda_wire::pcap::{link_type, network_layer, rewrite, Packet, Timestamp};
use ikeda_wire::reassembly::{Reassembler, Stats as FragmentStats};
use ikeda_wire::udp_encap::{self, Udp4500Payload, NAT_T_PORT};
use ikeda_wire::udp_gso;
use ikeda_wire::{esp::EspPacket, ikev1, ikev2};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::ops::Range;

const IKE_PORT: u16 = 500;
/// Problems printed one by one; the rest only counted.
const MAX_WARNINGS: usize = 20;

/// Bounds on what a capture can make us hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// ESP flows (SPI and addresses) tracked.
    pub max_flows: usize,
    /// IKEv1 exchanges (cookie, Message ID) whose requester is remembered.
    pub max_v1_exchanges: usize,
    /// IKEv1 multi-message exchanges (Quick Modes) whose CBC chain is held,
    /// over all phase-1 SAs (each a few IVs: about 150 bytes).
    pub max_v1_chain_exchanges: usize,
    /// ESP flows decrypted with `--keys` (each holds its SAs: keys and a
    /// 4096-packet replay window, a few KB); packets of keyed flows
    /// beyond it are counted as `beyond_decryption_table`.
    pub max_decrypting_flows: usize,
    pub fragments: ikeda_wire::reassembly::Limits,
    /// IKEv2 SKF reassembly (RFC 7383).
    pub skf: skf::Limits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: 65536,
            max_v1_exchanges: 65536,
            max_v1_chain_exchanges: 65536,
            max_decrypting_flows: 4096,
            fragments: Default::default(),
            skf: Default::default(),
        }
    }
}

/// One IKE message, as printed and as `--json` gives it.
#[derive(Debug, Clone, Serialize)]
pub struct IkeMessage {
    pub frame: u64,
    /// Seconds since the epoch, with nanoseconds.
    pub time: String,
    /// Seconds since the first packet of the capture.
    pub rel_time: f64,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    /// Sent on 4500 after the non-ESP marker.
    pub non_esp_marker: bool,
    pub version: u8,
    pub exchange: String,
    pub request: bool,
    pub message_id: u32,
    /// IKEv2 SPIi / IKEv1 initiator cookie, 16 hex digits.
    pub spi_i: String,
    /// IKEv2 SPIr / IKEv1 responder cookie.
    pub spi_r: String,
    /// `IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ]`, as our logs write it.
    pub summary: String,
    /// Length of the encrypted part (IKEv2 SK/SKF payload body, IKEv1
    /// everything after the header of a message with flag E), when any.
    pub encrypted_len: Option<usize>,
    /// Why the message did not parse, when it did not.
    pub error: Option<String>,
    /// With `--keys`: the SK payload was decrypted and `summary` lists
    /// the payloads inside it.
    pub decrypted: bool,
    /// With `--keys`: why an encrypted message was not decrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `--verbose`: every payload as the wire crate parses it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub payloads: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encapsulation {
    /// IP protocol 50.
    Esp,
    /// UDP (RFC 3948).
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct FlowKey {
    spi: u32,
    src: IpAddr,
    dst: IpAddr,
    encap: Encapsulation,
    src_port: u16,
    dst_port: u16,
}

/// Sequence numbers seen within this distance below the highest are told
/// apart as late (filling a gap) or repeated; older ones are counted as
/// too old. The same size as the data plane's largest replay window.
const SEQ_WINDOW: u32 = 4096;

/// One direction of one ESP SA.
#[derive(Debug, Clone, Serialize)]
pub struct EspFlow {
    /// `0x` and 8 hex digits.
    pub spi: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub encap: Encapsulation,
    /// UDP ports for `udp`, 0 for `esp`.
    pub src_port: u16,
    pub dst_port: u16,
    pub packets: u64,
    /// ESP bytes: SPI to ICV.
    pub bytes: u64,
    pub first_frame: u64,
    pub last_frame: u64,
    pub first_time: f64,
    pub last_time: f64,
    pub seq_first: u32,
    pub seq_min: u32,
    pub seq_max: u32,
    /// Sequence numbers below the highest never seen (packets lost before
    /// the capture point, or still to come when it ended).
    pub gaps: u64,
    /// Sequence numbers seen more than once (replays, duplicates).
    pub replays: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// Packets more than 4096 below the highest: neither told apart.
    pub too_old: u64,
    /// With `--keys`: what decryption made of the flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decryption: Option<FlowDecryption>,
    #[serde(skip)]
    window: SeqWindow,
}

/// What `--keys` made of one ESP flow: counts, never a line per packet.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlowDecryption {
    /// The key log has a key for the SPI.
    pub key: bool,
    /// Packets that verified and decrypted to an inner IP packet.
    pub decrypted: u64,
    /// Packets whose ICV did not verify with any key for the SPI.
    pub icv_failures: u64,
    /// Other packets not decrypted, by the data plane's drop reason
    /// (`replayed`: a copy of one already decrypted; `ipcomp_decompress`:
    /// an IPComp payload that does not inflate).
    pub not_decrypted: BTreeMap<&'static str, u64>,
    /// Inner packets by their protocol (`ICMP`, `TCP`, ...).
    pub inner: BTreeMap<String, u64>,
    /// IPComp (RFC 3173) in the flow, once a packet was compressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipcomp: Option<IpcompCounts>,
}

/// Decrypted packets of a flow with IPComp: inflated, and sent as they
/// were (RFC 3173 §2.2: too small, or not smaller compressed).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct IpcompCounts {
    pub compressed: u64,
    pub uncompressed: u64,
    /// The compressed packets' IPComp payloads (header included) ...
    pub bytes_compressed: u64,
    /// ... and the packets they inflated to.
    pub bytes_inflated: u64,
}

/// The SAs that may decrypt a flow: every direction the key log has for
/// its SPI (two gateways may have chosen the same one); the first that
/// verifies a packet is kept alone.
struct FlowSas {
    candidates: Vec<InboundSa>,
    verified: bool,
    /// The replay windows were placed at the flow's first packet.
    seeded: bool,
}

/// A bitmap of the last [`SEQ_WINDOW`] sequence numbers below `max`.
#[derive(Debug, Clone, Default)]
struct SeqWindow {
    bits: Vec<u64>,
}

impl SeqWindow {
    fn index(seq: u32) -> (usize, u64) {
        let i = (seq % SEQ_WINDOW) as usize;
        (i / 64, 1u64 << (i % 64))
    }
    fn get(&self, seq: u32) -> bool {
        let (w, b) = Self::index(seq);
        self.bits.get(w).is_some_and(|x| x & b != 0)
    }
    fn set(&mut self, seq: u32, on: bool) {
        if self.bits.is_empty() {
            self.bits = vec![0; (SEQ_WINDOW / 64) as usize];
        }
        let (w, b) = Self::index(seq);
        if on {
            self.bits[w] |= b;
        } else {
            self.bits[w] &= !b;
        }
    }
}

impl EspFlow {
    fn new(k: &FlowKey, frame: u64, t: f64, seq: u32) -> EspFlow {
        EspFlow {
            spi: format!("{:#010x}", k.spi),
            src: k.src,
            dst: k.dst,
            encap: k.encap,
            src_port: k.src_port,
            dst_port: k.dst_port,
            packets: 0,
            bytes: 0,
            first_frame: frame,
            last_frame: frame,
            first_time: t,
            last_time: t,
            seq_first: seq,
            seq_min: seq,
            seq_max: seq,
            gaps: 0,
            replays: 0,
            reordered: 0,
            too_old: 0,
            decryption: None,
            window: SeqWindow::default(),
        }
    }

    /// Count one packet (RFC 4303 §3.4.3's window, as an observer: nothing
    /// is dropped, only told apart).
    fn add(&mut self, frame: u64, t: f64, seq: u32, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
        self.last_frame = frame;
        self.last_time = t;
        if self.packets == 1 {
            self.window.set(seq, true);
            return;
        }
        if seq > self.seq_max {
            self.gaps += u64::from(seq - self.seq_max - 1);
            // The bits of the numbers skipped now stand for them: clear them.
            for s in (self.seq_max + 1..seq).rev().take(SEQ_WINDOW as usize) {
                self.window.set(s, false);
            }
            self.window.set(seq, true);
            self.seq_max = seq;
        } else if self.seq_max - seq >= SEQ_WINDOW {
            self.too_old += 1;
        } else if self.window.get(seq) {
            self.replays += 1;
        } else {
            self.window.set(seq, true);
            self.reordered += 1;
            if seq < self.seq_min {
                // Below everything seen: the range, and its gaps, grow downwards.
                self.gaps += u64::from(self.seq_min - seq - 1);
                self.seq_min = seq;
            } else {
                self.gaps = self.gaps.saturating_sub(1);
            }
        }
    }
}

/// Counters over the whole capture, for `stats` and the closing lines.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub frames: u64,
    /// Frames that carry neither IPv4 nor IPv6 (ARP, ...).
    pub not_ip: u64,
    /// Frames of a link type we do not read.
    pub unsupported_link_type: u64,
    /// Frames the snaplen cut short.
    pub cut_by_snaplen: u64,
    /// IP packets (or frames) that do not parse.
    pub malformed: u64,
    pub ike_messages: u64,
    pub esp_packets: u64,
    /// Frames that held a UDP GSO/GRO train of ESP packets (captured
    /// before segmentation or after GRO), each read as its packets.
    pub esp_trains: u64,
    /// ESP packets read from such trains (also in `esp_packets`).
    pub esp_in_trains: u64,
    pub nat_keepalives: u64,
    /// IP packets that are none of the above.
    pub other: u64,
    /// ESP packets of flows beyond `max_flows`.
    pub esp_untracked: u64,
    pub fragments: FragmentCounters,
    /// IKEv2 messages in SKF fragments (RFC 7383), with `--keys`.
    pub ikev2_fragments: skf::Stats,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FragmentCounters {
    pub fragments: u64,
    pub reassembled: u64,
    pub timed_out: u64,
    pub over_limit: u64,
    pub overlapping: u64,
    pub duplicates: u64,
    pub malformed: u64,
}

impl From<FragmentStats> for FragmentCounters {
    fn from(s: FragmentStats) -> Self {
        FragmentCounters {
            fragments: s.fragments,
            reassembled: s.reassembled,
            timed_out: s.timed_out,
            over_limit: s.over_limit,
            overlapping: s.overlapping,
            duplicates: s.duplicates,
            malformed: s.malformed,
        }
    }
}

/// Turns packets into printed messages (as they come: nothing per message
/// is kept) and flows (printed at the end).
pub struct Analyzer {
    limits: Limits,
    verbose: bool,
    json: bool,
    first: Option<Timestamp>,
    reassembler: Reassembler,
    flows: HashMap<FlowKey, EspFlow>,
    /// IKEv1: who sent the first message of (initiator cookie, Message ID),
    /// the requester of that exchange.
    v1_requesters: HashMap<(u64, u32), IpAddr>,
    /// Link types already warned about.
    unsupported: HashSet<u32>,
    counters: Counters,
    warnings: Vec<String>,
    warnings_dropped: u64,
    printed: u64,
    /// `--keys`: what to decrypt with.
    keys: Option<KeyStore>,
    /// Per flow, the inbound SAs that decrypt it (only with `--keys`).
    flow_sas: HashMap<FlowKey, FlowSas>,
    /// IKEv1: the CBC IV chain of each phase-1 SA, by initiator cookie.
    v1_chains: HashMap<u64, V1Chain>,
    /// Exchanges held in all of `v1_chains` (bounded by
    /// `Limits::max_v1_chain_exchanges`).
    v1_chain_exchanges: usize,
    /// IKE SAs already said to have no key (bounded like `v1_requesters`).
    ike_without_key: HashSet<(u64, u64)>,
    /// IKEv1 SAs already said to have their cookies swapped in the key
    /// source (bounded likewise).
    v1_swapped_told: HashSet<(u64, u64)>,
    /// The ESP packet being decrypted in place (one buffer, reused).
    esp_buf: Vec<u8>,
    /// IPComp's inflater for it.
    ipcomp: IpcompScratch,
    /// IKEv2 SKF fragments being put together.
    skf: SkfReassembler,
    /// `--write`: what to make of the frame at hand ([`Analyzer::take_rewrite`]).
    rewrites: bool,
    rewrite: Rewrite,
    /// `--write`: the cleartext of the IKE message at hand, and what was done.
    cleartext: Option<(Vec<u8>, String)>,
    /// What the capture shows, said at the end (`explain`).
    explain: Explainer,
    /// The payload facts of the IKE message being read, for `explain`.
    facts: Facts,
}

impl Analyzer {
    pub fn new(limits: Limits, verbose: bool, json: bool) -> Analyzer {
        Analyzer {
            limits,
            verbose,
            json,
            first: None,
            reassembler: Reassembler::new(limits.fragments),
            flows: HashMap::new(),
            v1_requesters: HashMap::new(),
            unsupported: HashSet::new(),
            counters: Counters::default(),
            warnings: Vec::new(),
            warnings_dropped: 0,
            printed: 0,
            keys: None,
            flow_sas: HashMap::new(),
            ike_without_key: HashSet::new(),
            v1_swapped_told: HashSet::new(),
            v1_chains: HashMap::new(),
            v1_chain_exchanges: 0,
            esp_buf: Vec::new(),
            ipcomp: IpcompScratch::default(),
            skf: SkfReassembler::new(limits.skf),
            rewrites: false,
            rewrite: Rewrite::Unchanged,
            cleartext: None,
            explain: Explainer::new(false),
            facts: Facts::default(),
        }
    }

    /// For `--write`: say, after each packet, what to write for it.
    pub fn with_rewrites(mut self) -> Analyzer {
        self.rewrites = true;
        self
    }

    /// What to write for the packet just analysed (`Unchanged` unless
    /// [`with_rewrites`](Self::with_rewrites)), and the buffer a decrypted
    /// ESP packet's inner packet lies in.
    pub fn take_rewrite(&mut self) -> (Rewrite, &[u8]) {
        (std::mem::take(&mut self.rewrite), &self.esp_buf)
    }

    /// Decrypt IKEv2 SK payloads and ESP with these keys.
    pub fn with_keys(mut self, keys: KeyStore) -> Analyzer {
        self.keys = Some(keys);
        self.explain.set_keys(true);
        self
    }

    /// The keys, as the capture left them (bound SPIs, completed IKEv1 keys).
    pub fn keys(&self) -> Option<&KeyStore> {
        self.keys.as_ref()
    }

    /// Problems met (frame number and why), the first [`MAX_WARNINGS`],
    /// then how many more.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = self.warnings.clone();
        if self.warnings_dropped > 0 {
            w.push(format!("... and {} more problems like these", self.warnings_dropped));
        }
        w
    }

    fn warn(&mut self, w: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(w);
        } else {
            self.warnings_dropped += 1;
        }
    }

    /// Take one packet record; print the IKE message it carries, if any.
    pub fn packet(&mut self, p: &Packet<'_>, out: &mut impl Write) {
        self.counters.frames += 1;
        let first = *self.first.get_or_insert(p.timestamp);
        let rel = rel_seconds(first, p.timestamp);
        self.explain.seen(rel);
        let ip = match network_layer(p.link_type, p.data) {
            Ok(Some(ip)) => ip,
            Ok(None) => {
                self.counters.not_ip += 1;
                return;
            }
            Err(ikeda_wire::Error::Unsupported { what: "link type", .. }) => {
                self.counters.unsupported_link_type += 1;
                if self.unsupported.insert(p.link_type) {
                    self.warn(format!(
                        "frame {}: link type {} is not supported (ikeda pcap reads Ethernet, Linux cooked v1 \
                         and v2, raw IP, NULL/LOOP); its frames are skipped",
                        p.number, p.link_type
                    ));
                }
                return;
            }
            Err(e) => {
                self.malformed(
                    p,
                    &format!("{} frame: {e}", link_type::name(p.link_type).unwrap_or("link")),
                );
                return;
            }
        };
        let d = match ip::datagram(ip) {
            Ok(d) => d,
            Err(e) if p.is_cut() => {
                self.counters.cut_by_snaplen += 1;
                self.warn(format!(
                    "frame {}: cut by the snaplen ({} of {} bytes captured): {e}",
                    p.number,
                    p.data.len(),
                    p.original_len
                ));
                return;
            }
            Err(e) => {
                self.malformed(p, &e.to_string());
                return;
            }
        };
        if d.fragment.is_some() {
            if let Some(whole) = self.reassembler.push(p.timestamp.as_nanos(), &d) {
                let d = Datagram {
                    src: whole.src,
                    dst: whole.dst,
                    protocol: whole.protocol,
                    payload: &whole.payload,
                    fragment: None,
                };
                self.datagram(p, rel, &d, out);
            }
            return;
        }
        self.datagram(p, rel, &d, out);
    }

    fn malformed(&mut self, p: &Packet<'_>, why: &str) {
        self.counters.malformed += 1;
        self.warn(format!("frame {}: {why}", p.number));
    }

    fn datagram(&mut self, p: &Packet<'_>, rel: f64, d: &Datagram<'_>, out: &mut impl Write) {
        match d.protocol {
            IpProtocol::ESP => self.esp(p, rel, d, d.payload, Encapsulation::Esp, (0, 0)),
            IpProtocol::UDP => {
                let u = match ip::udp(d.payload) {
                    Ok(u) => u,
                    Err(e) => return self.malformed(p, &e.to_string()),
                };
                let ports = (u.src_port, u.dst_port);
                if u.src_port == NAT_T_PORT || u.dst_port == NAT_T_PORT {
                    match udp_encap::classify(u.payload) {
                        Ok(Udp4500Payload::Ike(ike)) => self.ike(p, rel, d, ports, true, ike, out),
                        Ok(Udp4500Payload::Esp(esp)) => match udp_gso::captured_esp_train(esp) {
                            Some(gso_size) => self.esp_train(p, rel, d, esp, gso_size, ports),
                            None => self.esp(p, rel, d, esp, Encapsulation::Udp, ports),
                        },
                        Ok(Udp4500Payload::NatKeepalive) => self.counters.nat_keepalives += 1,
                        Err(e) => self.malformed(p, &format!("UDP 4500: {e}")),
                    }
                } else if u.src_port == IKE_PORT || u.dst_port == IKE_PORT {
                    self.ike(p, rel, d, ports, false, u.payload, out);
                } else {
                    self.counters.other += 1;
                }
            }
            _ => self.counters.other += 1,
        }
    }

    /// A frame holding several ESP packets of one SA back to back (a UDP
    /// GSO train captured before the cut, or a GRO train after the join):
    /// each is read as the packet it is on the wire. Wireshark reads such a
    /// frame as one packet whose ICV fails, so the first one is pointed out.
    fn esp_train(
        &mut self,
        p: &Packet<'_>,
        rel: f64,
        d: &Datagram<'_>,
        train: &[u8],
        gso_size: usize,
        ports: (u16, u16),
    ) {
        let n = train.len().div_ceil(gso_size);
        if self.counters.esp_trains == 0 {
            self.warn(format!(
                "frame {}: one UDP frame of {} bytes holds {n} ESP packets of {gso_size} bytes or less (a UDP GSO \
                 train captured before the kernel or NIC cut it, or one that GRO joined after it arrived); read as \
                 {n} packets here, but Wireshark cannot decrypt such frames: capture with the offloads off (README, \
                 \"Captures on a gateway with UDP GSO/GRO\")",
                p.number,
                train.len()
            ));
        }
        self.counters.esp_trains += 1;
        self.counters.esp_in_trains += n as u64;
        for seg in train.chunks(gso_size) {
            self.esp(p, rel, d, seg, Encapsulation::Udp, ports);
        }
        if self.rewrites {
            // One frame out per frame in: the train stays as it was.
            let first_seq = EspPacket::new_checked(train).map(|e| e.sequence_number()).unwrap_or(0);
            self.rewrite = Rewrite::Note(format!(
                "UDP GSO/GRO train of {n} ESP packets (sequence numbers from {first_seq}), not rewritten"
            ));
        }
    }

    fn esp(&mut self, p: &Packet<'_>, rel: f64, d: &Datagram<'_>, esp: &[u8], encap: Encapsulation, ports: (u16, u16)) {
        let pkt = match EspPacket::new_checked(esp) {
            Ok(e) => e,
            Err(e) => return self.malformed(p, &format!("ESP: {e}")),
        };
        self.counters.esp_packets += 1;
        let key = FlowKey {
            spi: pkt.spi(),
            src: d.src,
            dst: d.dst,
            encap,
            src_port: ports.0,
            dst_port: ports.1,
        };
        let seq = pkt.sequence_number();
        if !self.flows.contains_key(&key) && self.flows.len() >= self.limits.max_flows {
            self.counters.esp_untracked += 1;
            return;
        }
        let flow = self
            .flows
            .entry(key)
            .or_insert_with(|| EspFlow::new(&key, p.number, rel, seq));
        flow.add(p.number, rel, seq, esp.len());
        self.explain.esp_packet(key.spi, p.number, rel);
        if let Some(keys) = &self.keys {
            let d = flow.decryption.get_or_insert_with(FlowDecryption::default);
            d.key = keys.esp.contains_key(&key.spi);
            let r = if !d.key {
                Err("no key for this SPI")
            } else if !self.flow_sas.contains_key(&key) && self.flow_sas.len() >= self.limits.max_decrypting_flows {
                *d.not_decrypted.entry("beyond_decryption_table").or_default() += 1;
                Err("beyond_decryption_table")
            } else {
                let sas = self.flow_sas.entry(key).or_insert_with(|| FlowSas::new(keys, &key));
                sas.decrypt(esp, &mut self.esp_buf, &mut self.ipcomp, d)
            };
            if self.rewrites {
                self.rewrite = match r {
                    Ok((inner, inflated)) => Rewrite::Esp(EspDecrypted {
                        spi: key.spi,
                        seq,
                        src: key.src,
                        dst: key.dst,
                        encap,
                        ports,
                        inflated,
                        inner,
                    }),
                    Err(why) => Rewrite::EspNot(why),
                };
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ike(
        &mut self,
        p: &Packet<'_>,
        rel: f64,
        d: &Datagram<'_>,
        ports: (u16, u16),
        non_esp_marker: bool,
        data: &[u8],
        out: &mut impl Write,
    ) {
        self.counters.ike_messages += 1;
        let mut m = IkeMessage {
            frame: p.number,
            time: p.timestamp.to_string(),
            rel_time: rel,
            src: d.src,
            src_port: ports.0,
            dst: d.dst,
            dst_port: ports.1,
            non_esp_marker,
            version: 0,
            exchange: String::new(),
            request: true,
            message_id: 0,
            spi_i: String::new(),
            spi_r: String::new(),
            summary: String::new(),
            encrypted_len: None,
            error: None,
            decrypted: false,
            note: None,
            payloads: Vec::new(),
        };
        self.cleartext = None;
        let parsed = match ikeda_wire::ike_major_version(data) {
            Some(2) => self.ikev2(data, &mut m),
            Some(1) => self.ikev1(data, d.src, &mut m),
            Some(v) => Err(format!("IKE major version {v}")),
            None => Err(format!("{} bytes, shorter than an IKE header", data.len())),
        };
        match parsed {
            Ok(()) => self.explain.ike(&m, data, std::mem::take(&mut self.facts)),
            Err(e) => {
                self.warn(format!("frame {}: IKE message does not parse: {e}", p.number));
                m.error = Some(e);
            }
        }
        if self.rewrites {
            self.rewrite = match self.cleartext.take() {
                Some((message, what)) => Rewrite::Ike(IkeCleartext {
                    src: d.src,
                    dst: d.dst,
                    ports,
                    non_esp_marker,
                    message,
                    what,
                }),
                None => m.note.clone().map_or(Rewrite::Unchanged, Rewrite::Note),
            };
        }
        self.print_message(&m, out);
    }

    fn ikev2(&mut self, data: &[u8], m: &mut IkeMessage) -> Result<(), String> {
        m.version = 2;
        let h = ikev2::Header::new_checked(data).map_err(|e| e.to_string())?;
        let repr = ikev2::HeaderRepr::parse(&h).map_err(|e| e.to_string())?;
        m.exchange = repr.exchange_type.to_string();
        m.request = repr.is_request();
        m.message_id = repr.message_id;
        m.spi_i = format!("{:016x}", repr.initiator_spi);
        m.spi_r = format!("{:016x}", repr.responder_spi);
        let msg = ikev2::Message::parse(data).map_err(|e| e.to_string())?;
        m.summary = msg.summary();
        m.encrypted_len = msg.payloads.iter().find_map(|p| match p {
            ikev2::Payload::Sk(sk) => Some(sk.body.len()),
            ikev2::Payload::Skf(f) => Some(f.body.len()),
            _ => None,
        });
        let mut shown = &msg.payloads;
        let inner = self.decrypt_ikev2(data, &repr, &msg, m);
        if let Some(inner) = &inner {
            m.summary = ikev2::summary(&repr, inner);
            m.decrypted = true;
            shown = inner;
        }
        self.facts = Facts::v2(&repr, shown);
        if self.verbose {
            m.payloads = shown.iter().map(|p| format!("{p:?}")).collect();
        }
        Ok(())
    }

    /// With `--keys`: the payloads inside the SK payload (RFC 7296 §3.14),
    /// decrypted with the SK_e/SK_a of the sender's side (the Initiator
    /// flag says which, §3.1); `None` (and `m.note` says why) otherwise.
    fn decrypt_ikev2(
        &mut self,
        data: &[u8],
        repr: &ikev2::HeaderRepr,
        msg: &ikev2::Message,
        m: &mut IkeMessage,
    ) -> Option<Vec<ikev2::Payload>> {
        let keys = self.keys.as_mut()?;
        let sa = format!("IKE SA {}_i {}_r", m.spi_i, m.spi_r);
        let skf = msg.payloads.iter().find_map(|p| match p {
            ikev2::Payload::Skf(f) => Some(f),
            _ => None,
        });
        let (first, body) = match (msg.sk(), skf) {
            (Some(sk), _) => (sk.first_payload, &sk.body),
            (None, Some(f)) => (f.first_payload, &f.body),
            (None, None) => return None,
        };
        let iv_off = data.len().checked_sub(body.len())?;
        // Keys that came without SPIs (an IKE SA rekeyed in charon's log)
        // are tried on an SA no key names: the ICV says which is its.
        let from_initiator = repr.flags.initiator();
        let verifies = |k: &super::keys::Ikev2Keys| {
            let c = if from_initiator {
                &k.from_initiator
            } else {
                &k.from_responder
            };
            c.decrypt(&data[..iv_off], &data[iv_off..]).is_ok()
        };
        let Some(k) = keys.ikev2_for((repr.initiator_spi, repr.responder_spi), verifies) else {
            // Said once per SA; the SA's other messages stay `[ E ]`.
            if !self.ike_without_key.contains(&(repr.initiator_spi, repr.responder_spi))
                && self.ike_without_key.len() < self.limits.max_v1_exchanges
            {
                self.ike_without_key.insert((repr.initiator_spi, repr.responder_spi));
                m.note = Some(format!("no key for {sa}"));
            }
            return None;
        };
        let (cipher, enc, auth) = if repr.flags.initiator() {
            (&k.from_initiator, "SK_ei", "SK_ai")
        } else {
            (&k.from_responder, "SK_er", "SK_ar")
        };
        // With HMAC integrity the ICV is checked first (RFC 7296 §3.14):
        // what fails after it, on a body of sane shape, is the cipher's key.
        let (iv, icv, bl) = (cipher.iv_len(), cipher.icv_len(), cipher.encr().block_len());
        let verified_shape =
            k.suite.integ.is_some() && body.len() >= iv + bl + icv && (body.len() - iv - icv).is_multiple_of(bl);
        let wrong_enc = |why: String| format!("{sa}: the ICV verifies with {auth}: a wrong {enc} ({why})");
        let plain = match cipher.decrypt(&data[..iv_off], &data[iv_off..]) {
            Ok(p) => p,
            Err(IkeCryptoError::IntegrityCheckFailed) => {
                m.note = Some(format!(
                    "ICV mismatch: wrong key for {sa} ({enc}/{auth}, {})",
                    k.suite.encr
                ));
                return None;
            }
            Err(e) if verified_shape => {
                m.note = Some(wrong_enc(e.to_string()));
                return None;
            }
            Err(e) => {
                m.note = Some(format!("{sa}: not decrypted: {e}"));
                return None;
            }
        };
        let mut what = format!("decrypted IKEv2 SK payload ({enc}/{auth}): the payloads inside it in its place");
        let (first, plain) = match skf {
            None => (first, plain),
            // RFC 7383 §2.6: each fragment verified, then held until the
            // message is whole.
            Some(f) => match skf::take(&mut self.skf, repr, f, m.frame, m.rel_time, &plain) {
                Ok(whole) => {
                    m.note = Some(format!("reassembled from {}", whole.from()));
                    what = format!(
                        "decrypted IKEv2 message ({enc}/{auth}) reassembled from {}",
                        whole.from()
                    );
                    (ikev2::PayloadType(whole.first_payload), whole.chain.to_vec())
                }
                Err(note) => {
                    m.note = Some(note);
                    return None;
                }
            },
        };
        match ikev2::Message::parse_inner(first, &plain) {
            Ok(inner) => {
                if self.rewrites {
                    self.cleartext = rewrite::ikev2_cleartext(data, first.0, &plain).ok().map(|c| (c, what));
                }
                Some(inner)
            }
            Err(e) if verified_shape => {
                m.note = Some(wrong_enc(format!("the payloads inside do not parse: {e}")));
                None
            }
            Err(e) => {
                m.note = Some(format!("{sa}: decrypted, but the payloads inside do not parse: {e}"));
                None
            }
        }
    }

    fn ikev1(&mut self, data: &[u8], src: IpAddr, m: &mut IkeMessage) -> Result<(), String> {
        m.version = 1;
        let h = ikev1::Header::parse(data).map_err(|e| e.to_string())?;
        m.exchange = h.exchange.name();
        m.message_id = h.message_id;
        m.spi_i = format!("{:016x}", h.icookie);
        m.spi_r = format!("{:016x}", h.rcookie);
        m.request = self.v1_is_request(&h, src);
        let payloads = if h.encrypted() {
            m.encrypted_len = Some(h.length as usize - ikev1::HEADER_LEN);
            let inner = self.decrypt_ikev1(data, &h, m);
            m.decrypted = inner.is_some();
            inner
        } else {
            let list = ikev1::Message::parse(data).map_err(|e| e.to_string())?.payload_list();
            // Wireshark's IKEv1 table needs Main Mode's cipher, hash and KEs.
            if let Some(k) = self.keys.as_mut() {
                k.observe_ikev1(&h, src, &list);
            }
            Some(list)
        };
        self.facts = Facts::v1(&h, payloads.as_deref());
        let list = match &payloads {
            Some(p) => ikev1::summary(p),
            None => "[ E ]".to_string(),
        };
        // As the IKEv1 engine's log_msg writes it.
        m.summary = format!(
            "{} {} {} {list}",
            m.exchange,
            if m.request { "request" } else { "response" },
            m.message_id
        );
        if self.verbose {
            m.payloads = payloads.unwrap_or_default().iter().map(|p| format!("{p:?}")).collect();
        }
        Ok(())
    }

    /// With `--keys`: the payloads of an encrypted IKEv1 message, CBC
    /// decrypted with the phase-1 key and the IV chain of RFC 2409 App. B
    /// (see [`V1Chain`]); `None` (and `m.note` says why) otherwise. IKEv1
    /// has no ICV: a wrong key, or a capture that misses a message of the
    /// chain, shows as a payload chain that does not parse.
    fn decrypt_ikev1(&mut self, data: &[u8], h: &ikev1::Header, m: &mut IkeMessage) -> Option<Vec<ikev1::Payload>> {
        let keys = self.keys.as_ref()?;
        let sa = format!("phase-1 SA {}_i {}_r", m.spi_i, m.spi_r);
        // Either cookie order (v1chain::find_key): said once per SA when
        // the key source has them swapped.
        let k = match v1chain::find_key(&keys.ikev1, h.icookie, h.rcookie) {
            Cookies::InOrder(k) => k,
            Cookies::Swapped(k) => {
                let sa_key = (h.icookie, h.rcookie);
                if !self.v1_swapped_told.contains(&sa_key) && self.v1_swapped_told.len() < self.limits.max_v1_exchanges
                {
                    self.v1_swapped_told.insert(sa_key);
                    m.note = Some(v1chain::swapped_note(h.icookie, h.rcookie));
                }
                k
            }
            Cookies::OtherResponder(r) => {
                m.note = Some(format!(
                    "the key log has this initiator cookie with responder cookie {r:016x}, not {}",
                    m.spi_r
                ));
                return None;
            }
            Cookies::Missing => {
                if !self.ike_without_key.contains(&(h.icookie, h.rcookie))
                    && self.ike_without_key.len() < self.limits.max_v1_exchanges
                {
                    self.ike_without_key.insert((h.icookie, h.rcookie));
                    m.note = Some(match keys.ikev1_pending_note(h.icookie) {
                        Some(why) => format!("no key for {sa}: {why}"),
                        None => format!("no key for {sa}"),
                    });
                }
                return None;
            }
        };
        let bl = k.cipher.block_len();
        let body = data.get(ikev1::HEADER_LEN..h.length as usize).unwrap_or(&[]);
        if body.is_empty() || !body.len().is_multiple_of(bl) {
            m.note = Some(format!("{sa}: {} bytes are not whole {bl}-byte blocks", body.len()));
            return None;
        }
        if !self.v1_chains.contains_key(&h.icookie) && self.v1_chains.len() >= self.limits.max_v1_exchanges {
            m.note = Some(format!("{sa}: beyond the table of IV chains"));
            return None;
        }
        let chain = self
            .v1_chains
            .entry(h.icookie)
            .or_insert_with(|| V1Chain::new(k.first_iv.clone()));
        let last = &body[body.len() - bl..];
        // A new M-ID starts from the key log's last phase-1 block when it
        // has one: a capture that begins after Main Mode still reads.
        let (iv, source) = chain.iv_for(h.message_id, last, k.hash, bl, k.phase1_last_block.as_deref());
        let mut plain = zeroize::Zeroizing::new(body.to_vec());
        if let Err(e) = k.cipher.decrypt(k.enc_key.expose(), &iv, &mut plain) {
            m.note = Some(format!("{sa}: not decrypted: {e}"));
            return None;
        }
        let one_message = h.exchange == ikev1::ExchangeType::INFORMATIONAL;
        let may_grow = self.v1_chain_exchanges < self.limits.max_v1_chain_exchanges;
        if chain.advance(h.message_id, one_message, iv, last, may_grow) {
            self.v1_chain_exchanges += 1;
        }
        match ikev1::parse_payloads(h.next_payload, &plain) {
            Ok((p, chain_len)) => {
                if self.rewrites {
                    let what = "decrypted IKEv1 message: flag E cleared, the payloads in clear, CBC padding removed";
                    self.cleartext = plain
                        .get(..chain_len)
                        .and_then(|chain| rewrite::ikev1_cleartext(data, chain).ok())
                        .map(|c| (c, what.to_string()));
                }
                Some(p.into_iter().map(|p| p.payload).collect())
            }
            Err(e) => {
                m.note = Some(v1chain::unparsed_note(&sa, source, h.message_id, &e.to_string()));
                None
            }
        }
    }

    /// IKEv1 headers carry no request/response flag. An exchange's
    /// requester is whoever sent its first message in the capture (for
    /// Main and Aggressive Mode, the initiator, when the capture holds its
    /// first message); informational exchanges are one-way, requests all
    /// (as our engine and strongSwan log them).
    fn v1_is_request(&mut self, h: &ikev1::Header, src: IpAddr) -> bool {
        if h.exchange == ikev1::ExchangeType::INFORMATIONAL {
            return true;
        }
        let key = (h.icookie, h.message_id);
        match self.v1_requesters.get(&key) {
            Some(a) => *a == src,
            None => {
                if self.v1_requesters.len() < self.limits.max_v1_exchanges {
                    self.v1_requesters.insert(key, src);
                }
                true
            }
        }
    }

    fn print_message(&mut self, m: &IkeMessage, out: &mut impl Write) {
        if self.json {
            let sep = if self.printed == 0 { "" } else { "," };
            let _ = write!(out, "{sep}{}", serde_json::to_string(m).unwrap_or_default());
        } else {
            let _ = writeln!(out, "{}", message_line(m));
            for p in &m.payloads {
                let _ = writeln!(out, "        {p}");
            }
        }
        self.printed += 1;
    }

    /// The end of the capture: print the ESP flows and the counters.
    pub fn finish(&mut self, format: &str, out: &mut impl Write) {
        self.reassembler.finish();
        self.counters.fragments = self.reassembler.stats().into();
        self.skf.finish();
        self.counters.ikev2_fragments = self.skf.stats();
        let flows: BTreeMap<_, _> = self.flows.iter().collect();
        let findings = self.explain.finish(&flows.values().copied().collect::<Vec<_>>());
        if self.json {
            let flows: Vec<&EspFlow> = flows.values().copied().collect();
            let _ = writeln!(
                out,
                "],\"format\":{},\"flows\":{},\"stats\":{},\"explanation\":{}}}",
                serde_json::to_string(format).unwrap_or_default(),
                serde_json::to_string(&flows).unwrap_or_default(),
                serde_json::to_string(&self.counters).unwrap_or_default(),
                serde_json::to_string(&findings).unwrap_or_default()
            );
            return;
        }
        if !flows.is_empty() {
            let _ = writeln!(out, "\nESP flows:");
            for f in flows.values() {
                let _ = writeln!(out, "{}", flow_line(f));
            }
        }
        let c = &self.counters;
        let _ = writeln!(
            out,
            "\n{} frames ({format}): {} IKE messages, {} ESP packets in {} flows, {} NAT-T keepalives, {} other",
            c.frames,
            c.ike_messages,
            c.esp_packets,
            self.flows.len(),
            c.nat_keepalives,
            c.other
        );
        let mut notes = Vec::new();
        for (n, what) in [
            (c.not_ip, "not IP"),
            (c.unsupported_link_type, "of an unsupported link type"),
            (c.cut_by_snaplen, "cut by the snaplen"),
            (c.malformed, "malformed"),
            (c.esp_untracked, "ESP beyond the flow table"),
            (c.esp_trains, "frames were UDP GSO/GRO trains"),
            (c.esp_in_trains, "ESP packets read from those trains"),
            (c.fragments.reassembled, "datagrams reassembled"),
            (c.fragments.timed_out, "incomplete datagrams dropped"),
            (
                c.fragments.over_limit + c.fragments.overlapping + c.fragments.malformed,
                "fragments dropped",
            ),
            (
                c.ikev2_fragments.reassembled,
                "IKEv2 messages reassembled from SKF fragments",
            ),
            (
                c.ikev2_fragments.timed_out,
                "IKEv2 messages whose SKF fragments did not all arrive",
            ),
            (
                c.ikev2_fragments.over_limit,
                "SKF fragments beyond the reassembly limits",
            ),
        ] {
            if n > 0 {
                notes.push(format!("{n} {what}"));
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "({})", notes.join(", "));
        }
        if !findings.is_empty() {
            let _ = write!(out, "{}", explain::text(&findings));
        }
    }
}

fn rel_seconds(first: Timestamp, t: Timestamp) -> f64 {
    (t.as_nanos() as f64 - first.as_nanos() as f64) / 1e9
}

fn endpoint(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(_) => format!("{a}:{port}"),
        IpAddr::V6(_) => format!("[{a}]:{port}"),
    }
}

/// `  0.001234 #3 192.168.50.11:500 -> 192.168.50.12:500 IKE_AUTH request 1 [ E ] 8f2c..._i 1a3b..._r encrypted 240 bytes`
pub fn message_line(m: &IkeMessage) -> String {
    let mut s = format!(
        "{:>10.6} #{} {} -> {} ",
        m.rel_time,
        m.frame,
        endpoint(m.src, m.src_port),
        endpoint(m.dst, m.dst_port)
    );
    if let Some(e) = &m.error {
        // Version 0: no header to read it from.
        match m.version {
            0 => s.push_str(&format!("IKE message that does not parse: {e}")),
            v => s.push_str(&format!("IKEv{v} message that does not parse: {e}")),
        }
        return s;
    }
    s.push_str(&format!("{} {}_i {}_r", m.summary, m.spi_i, m.spi_r));
    match m.encrypted_len {
        Some(n) if m.decrypted => s.push_str(&format!(" decrypted from {n} bytes")),
        Some(n) => s.push_str(&format!(" encrypted {n} bytes")),
        None => {}
    }
    if let Some(note) = &m.note {
        s.push_str(&format!(" ({note})"));
    }
    s
}

/// `  192.168.50.11 -> 192.168.50.12 ESP SPI 0xc0a80001: 20 packets, 2400 bytes, seq 1-20, 0 gaps, 0 replays, 0.012-9.876 s`
pub fn flow_line(f: &EspFlow) -> String {
    let encap = match f.encap {
        Encapsulation::Esp => "ESP".to_string(),
        Encapsulation::Udp => format!("ESP in UDP {}->{}", f.src_port, f.dst_port),
    };
    let mut s = format!(
        "  {} -> {} {encap} SPI {}: {} packets, {} bytes, seq {}-{}, {} gaps, {} replays",
        f.src, f.dst, f.spi, f.packets, f.bytes, f.seq_min, f.seq_max, f.gaps, f.replays
    );
    if f.reordered > 0 {
        s.push_str(&format!(", {} reordered", f.reordered));
    }
    if f.too_old > 0 {
        s.push_str(&format!(", {} too old to tell", f.too_old));
    }
    s.push_str(&format!(
        ", {:.3}-{:.3} s (frames {}-{})",
        f.first_time, f.last_time, f.first_frame, f.last_frame
    ));
    if let Some(d) = &f.decryption {
        s.push_str(&decryption_text(&f.spi, d));
    }
    s
}

/// `; decrypted 10 (ICMP 10)`, `; no key for SPI 0x...`,
/// `; 5 ICV mismatch: wrong key for SPI 0x...`.
fn decryption_text(spi: &str, d: &FlowDecryption) -> String {
    if !d.key {
        return format!("; no key for SPI {spi}");
    }
    let mut s = format!("; decrypted {}", d.decrypted);
    if !d.inner.is_empty() {
        let inner: Vec<String> = d.inner.iter().map(|(p, n)| format!("{p} {n}")).collect();
        s.push_str(&format!(" ({})", inner.join(", ")));
    }
    if let Some(c) = &d.ipcomp {
        s.push_str(&format!(
            ", IPComp: {} inflated ({} -> {} bytes), {} not compressed",
            c.compressed, c.bytes_compressed, c.bytes_inflated, c.uncompressed
        ));
    }
    if d.icv_failures > 0 {
        s.push_str(&format!(", {} ICV mismatch: wrong key for SPI {spi}", d.icv_failures));
    }
    for (why, n) in &d.not_decrypted {
        s.push_str(&format!(", {n} {}", why.replace('_', " ")));
    }
    // The ICV is checked before decryption (RFC 4303 §3.4.4): packets that
    // pass it and then make no sense had the right integrity key and the
    // wrong encryption key.
    let garbled: u64 = GARBLED_AFTER_ICV
        .iter()
        .filter_map(|r| d.not_decrypted.get(r.name()))
        .sum();
    if d.decrypted == 0 && garbled > 0 {
        s.push_str(&format!(" (the ICV verifies: a wrong encryption key for SPI {spi})"));
    }
    s
}

/// Drop reasons that mean "authentic, but decrypted to nonsense".
const GARBLED_AFTER_ICV: [DropReason; 4] = [
    DropReason::BadPadding,
    DropReason::BadTrailer,
    DropReason::BadNextHeader,
    DropReason::InnerMalformed,
];

/// An inner protocol as an engineer names it: `ICMP`, `TCP`, `ICMPv6`.
fn protocol_name(p: IpProtocol) -> String {
    match p {
        IpProtocol::ICMPV6 => "ICMPv6".into(),
        p => p
            .name()
            .map_or_else(|| format!("protocol {}", p.0), str::to_ascii_uppercase),
    }
}

impl FlowSas {
    fn new(keys: &KeyStore, k: &FlowKey) -> FlowSas {
        let mut all: Vec<_> = keys.esp.get(&k.spi).map(|v| v.iter().collect()).unwrap_or_default();
        // The direction with this flow's destination first: the usual case
        // needs one try per packet.
        all.sort_by_key(|e| e.dst.ip() != k.dst);
        FlowSas {
            // The key log does not say which CPI a receiver chose: any
            // IPComp payload is inflated.
            candidates: all
                .into_iter()
                .filter_map(|e| e.inbound_sa().ok())
                .map(InboundSa::with_any_ipcomp_cpi)
                .collect(),
            verified: false,
            seeded: false,
        }
    }

    /// A capture may begin in the middle of an SA. The data plane's
    /// window was then just below the flow's first packet, and with ESN
    /// the high half of every sequence number is inferred from it (RFC
    /// 4303 App. A2.2): a window left at 0 would infer the wrong half for
    /// a first packet near 2^32, and the ICV would fail. So the window
    /// starts just below the first packet, in the first 2^32 cycle (an SA
    /// that had already sent 2^32 packets when the capture began is not
    /// told apart).
    fn seed_windows(&mut self, esp: &[u8]) {
        let Ok(pkt) = EspPacket::new_checked(esp) else { return };
        let below = u64::from(pkt.sequence_number()).saturating_sub(1);
        if below > 0 {
            for sa in &mut self.candidates {
                sa.replay_window_mut().commit(below);
            }
        }
    }

    /// Decapsulate one ESP packet (from the SPI on) as the data plane
    /// does, in `buf`, and count what came of it. Returns where the inner
    /// packet is in `buf` and, when it was compressed (RFC 3173), the
    /// IPComp payload's and the inflated packet's sizes; or why not.
    fn decrypt(
        &mut self,
        esp: &[u8],
        buf: &mut Vec<u8>,
        ipcomp: &mut IpcompScratch,
        d: &mut FlowDecryption,
    ) -> Result<Decrypted, &'static str> {
        if !self.seeded {
            self.seeded = true;
            self.seed_windows(esp);
        }
        // Room behind the packet for IPComp to inflate into: one buffer,
        // grown once to the largest IP packet and reused.
        let room = esp.len().max(ikeda_esp::ipcomp::MAX_DECOMPRESSED);
        if buf.len() < room {
            buf.resize(room, 0);
        }
        let mut result = Err(DropReason::IcvMismatch);
        for (i, sa) in self.candidates.iter_mut().enumerate() {
            buf[..esp.len()].copy_from_slice(esp);
            let before = ipcomp_totals(sa);
            result = sa.decapsulate_in(buf, 0, esp.len(), ipcomp, 0).map(|r| {
                let after = ipcomp_totals(sa);
                (
                    r,
                    (after.0 > before.0).then(|| (after.1 - before.1, after.2 - before.2)),
                )
            });
            // A wrong key fails at the ICV; anything else is this SA's word.
            if result.as_ref().err() != Some(&DropReason::IcvMismatch) {
                if result.is_ok() && !self.verified {
                    self.verified = true;
                    self.candidates.swap(0, i);
                    self.candidates.truncate(1);
                }
                break;
            }
        }
        match result {
            Ok((inner, inflated)) => {
                d.decrypted += 1;
                let proto = ikeda_wire::ip::datagram(&buf[inner.clone()]).ok().map(|dg| dg.protocol);
                // Counted under a name allocated once per flow, not per packet.
                let common = match proto {
                    None => Some("not IP"),
                    Some(IpProtocol::ICMP) => Some("ICMP"),
                    Some(IpProtocol::TCP) => Some("TCP"),
                    Some(IpProtocol::UDP) => Some("UDP"),
                    Some(IpProtocol::ICMPV6) => Some("ICMPv6"),
                    Some(_) => None,
                };
                match common.and_then(|n| d.inner.get_mut(n)) {
                    Some(n) => *n += 1,
                    None => {
                        let name = common.map_or_else(|| proto.map_or_else(String::new, protocol_name), str::to_string);
                        *d.inner.entry(name).or_default() += 1;
                    }
                }
                if let Some((c, i)) = inflated {
                    let counts = d.ipcomp.get_or_insert_with(IpcompCounts::default);
                    counts.compressed += 1;
                    counts.bytes_compressed += c;
                    counts.bytes_inflated += i;
                }
                if let Some(counts) = &mut d.ipcomp {
                    counts.uncompressed = d.decrypted - counts.compressed;
                }
                Ok((inner, inflated))
            }
            Err(DropReason::IcvMismatch) => {
                d.icv_failures += 1;
                Err(DropReason::IcvMismatch.name())
            }
            Err(r) => {
                *d.not_decrypted.entry(r.name()).or_default() += 1;
                Err(r.name())
            }
        }
    }
}

/// Where a decrypted ESP packet's inner packet lies in the buffer, and
/// (compressed, inflated) sizes when it was IPComp.
type Decrypted = (Range<usize>, Option<(u64, u64)>);

/// An SA's IPComp counters: packets inflated, their compressed and
/// inflated bytes.
fn ipcomp_totals(sa: &InboundSa) -> (u64, u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &sa.stats.ipcomp;
    (
        s.compressed.load(Relaxed),
        s.bytes_compressed.load(Relaxed),
        s.bytes_uncompressed.load(Relaxed),
    )
}
