//! Capture files: the classic pcap format and pcapng, and the link layers
//! the lab and tcpdump/dumpcap write (Ethernet with 802.1Q tags, Linux
//! cooked v1 and v2, raw IP, BSD loopback).
//!
//! ```text
//! pcap (draft-ietf-opsawg-pcap §4, §5)        pcapng (draft-ietf-opsawg-pcapng §3.1)
//! +---------------------------------+         +---------------------------------+
//! | Magic 0xA1B2C3D4 (us) or        |         | Block Type                      |
//! |       0xA1B23C4D (ns), either   |         +---------------------------------+
//! |       byte order                |         | Block Total Length              |
//! | Major 2 | Minor 4               |         +---------------------------------+
//! | Reserved1, Reserved2            |         / Block Body (padded to 32 bits)  /
//! | SnapLen                         |         +---------------------------------+
//! | LinkType (low 16 bits)          |         | Block Total Length              |
//! +---------------------------------+         +---------------------------------+
//! then per packet: Timestamp (s),              SHB 0x0A0D0D0A (byte-order magic
//! Timestamp (us|ns), Captured Length,          0x1A2B3C4D), IDB 1, EPB 6, SPB 3,
//! Original Length, Packet Data                 obsolete Packet Block 2; others skipped
//! ```
//!
//! [`CaptureDecoder`] does no I/O: the caller hands it the bytes it has
//! from the decoder's current offset on, and it either yields one record
//! and says how many bytes it used, or says how many it needs. So a file
//! of any size is read with one buffer of at most [`MAX_RECORD_LEN`]
//! bytes. Every error names the record and its byte offset.

use crate::error::Error;
use core::fmt;

pub mod rewrite;
pub mod writer;

/// The largest record (pcap packet record or pcapng block) accepted. Far
/// above any snaplen in use (262144), and the bound on a reader's buffer.
pub const MAX_RECORD_LEN: usize = 16 << 20;

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_OBSOLETE_PB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
/// Interfaces per section: each costs a few bytes, but a file names them.
const MAX_INTERFACES: usize = 4096;

/// LINKTYPE_* values (tcpdump.org link-layer header types).
pub mod link_type {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;

    /// A short name for messages.
    pub fn name(t: u32) -> Option<&'static str> {
        Some(match t {
            NULL => "NULL",
            ETHERNET => "ETHERNET",
            RAW => "RAW",
            LOOP => "LOOP",
            LINUX_SLL => "LINUX_SLL",
            IPV4 => "IPV4",
            IPV6 => "IPV6",
            LINUX_SLL2 => "LINUX_SLL2",
            _ => return None,
        })
    }
}

/// Time of a packet since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub secs: u64,
    pub nanos: u32,
}

impl Timestamp {
    /// Nanoseconds since the epoch (saturating: good until 2554).
    pub fn as_nanos(self) -> u64 {
        self.secs
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(self.nanos))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.secs, self.nanos)
    }
}

/// One packet record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// 1-based, as tshark numbers frames.
    pub number: u64,
    /// Byte offset of its record in the file.
    pub offset: u64,
    pub interface: u32,
    pub link_type: u32,
    pub timestamp: Timestamp,
    /// The bytes captured (at most the snaplen).
    pub data: &'a [u8],
    /// The packet's length on the wire; more than `data.len()` when the
    /// snaplen cut it.
    pub original_len: u32,
}

impl Packet<'_> {
    /// Did the snaplen cut this packet short?
    pub fn is_cut(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.original_len)
    }
}

/// What [`CaptureDecoder::next`] made of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next<'a> {
    /// The next record needs this many bytes from the current offset.
    Need(usize),
    /// A record of `len` bytes was used: a packet, or `None` for a header,
    /// an interface description or a block type we skip.
    Record { len: usize, packet: Option<Packet<'a>> },
}

/// A capture that cannot be read, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError {
    /// 1-based number of the record (pcap: file header = 0, packets from 1;
    /// pcapng: blocks from 1).
    pub record: u64,
    pub offset: u64,
    pub what: String,
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {} at byte offset {}: {}",
            self.record, self.offset, self.what
        )
    }
}

impl std::error::Error for CaptureError {}

#[derive(Debug, Clone, Copy)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let a = [b[at], b[at + 1]];
        match self {
            Order::Little => u16::from_le_bytes(a),
            Order::Big => u16::from_be_bytes(a),
        }
    }
    fn u32(self, b: &[u8], at: usize) -> u32 {
        let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match self {
            Order::Little => u32::from_le_bytes(a),
            Order::Big => u32::from_be_bytes(a),
        }
    }
    fn u64(self, b: &[u8], at: usize) -> u64 {
        let (hi, lo) = match self {
            Order::Little => (self.u32(b, at + 4), self.u32(b, at)),
            Order::Big => (self.u32(b, at), self.u32(b, at + 4)),
        };
        u64::from(hi) << 32 | u64::from(lo)
    }
}

/// Timestamp resolution of a pcapng interface (`if_tsresol`, §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    /// Units of 10^-n seconds.
    Decimal(u32),
    /// Units of 2^-n seconds.
    Binary(u32),
}

impl Resolution {
    fn from_option(v: u8) -> Option<Resolution> {
        let n = u32::from(v & 0x7f);
        if v & 0x80 == 0 {
            (n <= 19).then_some(Resolution::Decimal(n))
        } else {
            (n <= 63).then_some(Resolution::Binary(n))
        }
    }

    fn timestamp(self, units: u64, offset_secs: i64) -> Timestamp {
        let (secs, nanos) = match self {
            Resolution::Decimal(n) => {
                let per_sec = 10u64.pow(n);
                let frac = u128::from(units % per_sec) * 1_000_000_000 / u128::from(per_sec);
                (units / per_sec, frac as u32)
            }
            Resolution::Binary(n) => {
                let frac = ((u128::from(units) & ((1u128 << n) - 1)) * 1_000_000_000) >> n;
                ((u128::from(units) >> n) as u64, frac as u32)
            }
        };
        Timestamp {
            secs: secs.saturating_add_signed(offset_secs),
            nanos,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    resolution: Resolution,
    offset_secs: i64,
}

#[derive(Debug, Clone)]
enum State {
    /// Nothing read yet: the magic decides the format.
    Start,
    Pcap {
        order: Order,
        nanos: bool,
        link_type: u32,
    },
    Pcapng {
        order: Order,
        interfaces: Vec<Interface>,
    },
}

/// A sans-IO reader of pcap and pcapng: see the module documentation.
#[derive(Debug, Clone)]
pub struct CaptureDecoder {
    state: State,
    offset: u64,
    records: u64,
    packets: u64,
}

impl Default for CaptureDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl CaptureDecoder {
    pub fn new() -> Self {
        CaptureDecoder {
            state: State::Start,
            offset: 0,
            records: 0,
            packets: 0,
        }
    }

    /// Byte offset in the file of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Packets yielded so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// "pcap (microseconds, little-endian)" and the like, once known.
    pub fn format(&self) -> String {
        match &self.state {
            State::Start => "unknown".into(),
            State::Pcap { order, nanos, .. } => format!(
                "pcap ({}, {})",
                if *nanos { "nanoseconds" } else { "microseconds" },
                order_name(*order)
            ),
            State::Pcapng { order, .. } => format!("pcapng ({})", order_name(*order)),
        }
    }

    fn error(&self, what: impl Into<String>) -> CaptureError {
        CaptureError {
            record: self.record_number(),
            offset: self.offset,
            what: what.into(),
        }
    }

    fn record_number(&self) -> u64 {
        match self.state {
            // A pcap file header is record 0, so packet records match tshark's frame numbers.
            State::Pcap { .. } => self.records,
            _ => self.records + 1,
        }
    }

    /// The input ended with `left` bytes not forming a whole record: an
    /// error unless `left` is 0 and the file header was read.
    pub fn finish(&self, left: usize) -> Result<(), CaptureError> {
        match (&self.state, left) {
            (State::Start, 0) => Err(self.error("empty file: no pcap or pcapng header")),
            (_, 0) => Ok(()),
            (_, n) => Err(self.error(format!("file truncated: the last record has only {n} bytes"))),
        }
    }

    /// Decode the record at the start of `buf` (which begins at
    /// [`offset`](Self::offset)). On `Record`, the caller drops `len`
    /// bytes before calling again.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Result<Next<'a>, CaptureError> {
        let next = match self.state.clone() {
            State::Start => self.file_header(buf)?,
            State::Pcap {
                order,
                nanos,
                link_type,
            } => self.pcap_record(buf, order, nanos, link_type)?,
            State::Pcapng { order, .. } => self.pcapng_block(buf, order)?,
        };
        if let Next::Record { len, packet } = next {
            self.offset += len as u64;
            self.records += 1;
            if packet.is_some() {
                self.packets += 1;
            }
        }
        Ok(next)
    }

    fn file_header<'a>(&mut self, buf: &'a [u8]) -> Result<Next<'a>, CaptureError> {
        if buf.len() < 4 {
            return Ok(Next::Need(4));
        }
        let magic_be = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let magic_le = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if magic_be == PCAPNG_SHB {
            return self.pcapng_block(buf, Order::Little);
        }
        let (order, nanos) = match (magic_be, magic_le) {
            (PCAP_MAGIC_US, _) => (Order::Big, false),
            (PCAP_MAGIC_NS, _) => (Order::Big, true),
            (_, PCAP_MAGIC_US) => (Order::Little, false),
            (_, PCAP_MAGIC_NS) => (Order::Little, true),
            _ => return Err(self.error(format!("not a pcap or pcapng file (magic {magic_be:#010x})"))),
        };
        if buf.len() < PCAP_HEADER_LEN {
            return Ok(Next::Need(PCAP_HEADER_LEN));
        }
        let major = order.u16(buf, 4);
        if major != 2 {
            return Err(self.error(format!("pcap major version {major}, not 2")));
        }
        // LinkType's upper bits carry FCS information (§4: FCS len, f bit).
        let link_type = order.u32(buf, 20) & 0xffff;
        self.state = State::Pcap {
            order,
            nanos,
            link_type,
        };
        Ok(Next::Record {
            len: PCAP_HEADER_LEN,
            packet: None,
        })
    }

    fn pcap_record<'a>(
        &mut self,
        buf: &'a [u8],
        order: Order,
        nanos: bool,
        link_type: u32,
    ) -> Result<Next<'a>, CaptureError> {
        if buf.len() < PCAP_RECORD_HEADER_LEN {
            return Ok(Next::Need(PCAP_RECORD_HEADER_LEN));
        }
        let caplen = order.u32(buf, 8) as usize;
        // The whole record, header included, stays within the bound.
        if caplen > MAX_RECORD_LEN - PCAP_RECORD_HEADER_LEN {
            return Err(self.error(format!(
                "captured length {caplen} is over {}: not a pcap record",
                MAX_RECORD_LEN - PCAP_RECORD_HEADER_LEN
            )));
        }
        let len = PCAP_RECORD_HEADER_LEN + caplen;
        if buf.len() < len {
            return Ok(Next::Need(len));
        }
        let frac = order.u32(buf, 4);
        let per_sec = if nanos { 1_000_000_000 } else { 1_000_000 };
        if frac >= per_sec {
            return Err(self.error(format!(
                "timestamp fraction {frac} is not below {per_sec}: not a pcap record"
            )));
        }
        let timestamp = Timestamp {
            secs: u64::from(order.u32(buf, 0)),
            nanos: if nanos { frac } else { frac * 1000 },
        };
        Ok(Next::Record {
            len,
            packet: Some(Packet {
                number: self.packets + 1,
                offset: self.offset,
                interface: 0,
                link_type,
                timestamp,
                data: &buf[PCAP_RECORD_HEADER_LEN..len],
                original_len: order.u32(buf, 12),
            }),
        })
    }

    fn pcapng_block<'a>(&mut self, buf: &'a [u8], order: Order) -> Result<Next<'a>, CaptureError> {
        if buf.len() < 12 {
            return Ok(Next::Need(12));
        }
        let raw_type = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        // A Section Header Block sets the byte order of everything up to the next one.
        let order = if raw_type == PCAPNG_SHB {
            match u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) {
                PCAPNG_BYTE_ORDER_MAGIC => Order::Little,
                m if m.swap_bytes() == PCAPNG_BYTE_ORDER_MAGIC => Order::Big,
                m => return Err(self.error(format!("pcapng section header: bad byte-order magic {m:#010x}"))),
            }
        } else {
            order
        };
        let block_type = order.u32(buf, 0);
        let len = order.u32(buf, 4) as usize;
        if len < 12 || !len.is_multiple_of(4) || len > MAX_RECORD_LEN {
            return Err(self.error(format!(
                "pcapng block type {block_type:#x}: total length {len} (not a multiple of 4 in 12..={MAX_RECORD_LEN})"
            )));
        }
        if buf.len() < len {
            return Ok(Next::Need(len));
        }
        if order.u32(buf, len - 4) as usize != len {
            return Err(self.error(format!(
                "pcapng block type {block_type:#x}: trailing length {} differs from {len}",
                order.u32(buf, len - 4)
            )));
        }
        let body = &buf[8..len - 4];
        let packet = match block_type {
            PCAPNG_SHB => {
                if body.len() < 16 {
                    return Err(self.error(format!("pcapng section header block of {len} bytes (need 28)")));
                }
                let major = order.u16(body, 4);
                if major != 1 {
                    return Err(self.error(format!("pcapng major version {major}, not 1")));
                }
                self.state = State::Pcapng {
                    order,
                    interfaces: Vec::new(),
                };
                None
            }
            _ if matches!(self.state, State::Start) => {
                return Err(self.error("pcapng file does not start with a section header block"));
            }
            PCAPNG_IDB => {
                let iface = self.interface_description(body, order)?;
                if let State::Pcapng { interfaces, .. } = &mut self.state {
                    if interfaces.len() >= MAX_INTERFACES {
                        return Err(self.error(format!("more than {MAX_INTERFACES} interfaces in one section")));
                    }
                    interfaces.push(iface);
                }
                None
            }
            PCAPNG_EPB => Some(self.enhanced_packet(body, order, len)?),
            PCAPNG_OBSOLETE_PB => Some(self.obsolete_packet(body, order, len)?),
            PCAPNG_SPB => Some(self.simple_packet(body, order, len)?),
            _ => None,
        };
        Ok(Next::Record { len, packet })
    }

    fn interface(&self, id: u32) -> Result<Interface, CaptureError> {
        match &self.state {
            State::Pcapng { interfaces, .. } => interfaces.get(id as usize).copied(),
            _ => None,
        }
        .ok_or_else(|| {
            self.error(format!(
                "packet on interface {id}, which no interface description block defines"
            ))
        })
    }

    fn interface_description(&self, body: &[u8], order: Order) -> Result<Interface, CaptureError> {
        if body.len() < 8 {
            return Err(self.error("pcapng interface description block shorter than 8 bytes"));
        }
        let mut iface = Interface {
            link_type: u32::from(order.u16(body, 0)),
            snaplen: order.u32(body, 4),
            resolution: Resolution::Decimal(6),
            offset_secs: 0,
        };
        for (code, value) in options(&body[8..], order) {
            match (code, value) {
                (9, [v]) => {
                    iface.resolution = Resolution::from_option(*v)
                        .ok_or_else(|| self.error(format!("if_tsresol {v:#04x} out of range")))?;
                }
                (14, v) if v.len() == 8 => iface.offset_secs = order.u64(v, 0) as i64,
                _ => {}
            }
        }
        Ok(iface)
    }

    fn packet<'a>(
        &self,
        iface_id: u32,
        units: u64,
        data: &'a [u8],
        original_len: u32,
    ) -> Result<Packet<'a>, CaptureError> {
        let iface = self.interface(iface_id)?;
        Ok(Packet {
            number: self.packets + 1,
            offset: self.offset,
            interface: iface_id,
            link_type: iface.link_type,
            timestamp: iface.resolution.timestamp(units, iface.offset_secs),
            data,
            original_len,
        })
    }

    /// Captured data of `caplen` bytes at `at` in `body`, checked.
    fn data<'a>(&self, body: &'a [u8], at: usize, caplen: usize, kind: &str) -> Result<&'a [u8], CaptureError> {
        body.get(at..at.saturating_add(caplen)).ok_or_else(|| {
            self.error(format!(
                "{kind}: captured length {caplen} overruns the block ({} bytes of data)",
                body.len().saturating_sub(at)
            ))
        })
    }

    fn enhanced_packet<'a>(&self, body: &'a [u8], order: Order, len: usize) -> Result<Packet<'a>, CaptureError> {
        if body.len() < 20 {
            return Err(self.error(format!("enhanced packet block of {len} bytes (need 32)")));
        }
        let units = u64::from(order.u32(body, 4)) << 32 | u64::from(order.u32(body, 8));
        let data = self.data(body, 20, order.u32(body, 12) as usize, "enhanced packet block")?;
        self.packet(order.u32(body, 0), units, data, order.u32(body, 16))
    }

    fn obsolete_packet<'a>(&self, body: &'a [u8], order: Order, len: usize) -> Result<Packet<'a>, CaptureError> {
        if body.len() < 20 {
            return Err(self.error(format!("packet block of {len} bytes (need 32)")));
        }
        let units = u64::from(order.u32(body, 4)) << 32 | u64::from(order.u32(body, 8));
        let data = self.data(body, 20, order.u32(body, 12) as usize, "packet block")?;
        self.packet(u32::from(order.u16(body, 0)), units, data, order.u32(body, 16))
    }

    /// A Simple Packet Block (§4.4): interface 0, no timestamp; its
    /// captured length is the smaller of the original length and the
    /// interface's snaplen (0: none).
    fn simple_packet<'a>(&self, body: &'a [u8], order: Order, len: usize) -> Result<Packet<'a>, CaptureError> {
        if body.len() < 4 {
            return Err(self.error(format!("simple packet block of {len} bytes (need 16)")));
        }
        let iface = self.interface(0)?;
        let original_len = order.u32(body, 0);
        let mut caplen = original_len as usize;
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen as usize);
        }
        let data = self.data(body, 4, caplen, "simple packet block")?;
        self.packet(0, 0, data, original_len)
    }
}

fn order_name(o: Order) -> &'static str {
    match o {
        Order::Little => "little-endian",
        Order::Big => "big-endian",
    }
}

/// The options of a pcapng block (§3.5): (code, value) up to opt_endofopt
/// or the first one that overruns the block.
fn options(mut b: &[u8], order: Order) -> impl Iterator<Item = (u16, &[u8])> {
    core::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let code = order.u16(b, 0);
        let len = order.u16(b, 2) as usize;
        if code == 0 || b.len() < 4 + len {
            return None;
        }
        let value = &b[4..4 + len];
        b = b.get(4 + len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((code, value))
    })
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// The network-layer packet in a frame of `link_type`: `Ok(None)` for a
/// frame that carries no IPv4 or IPv6 (ARP, LLDP, ...), `Unsupported` for a
/// link type this reader does not know.
pub fn network_layer(link_type: u32, frame: &[u8]) -> Result<Option<&[u8]>, Error> {
    let (ethertype, rest) = match link_type {
        link_type::ETHERNET => {
            Error::check_len("Ethernet header", 14, frame.len())?;
            let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
            let mut at = 14;
            // 802.1Q / 802.1ad tags, stacked (QinQ): TCI, then the next EtherType.
            while ETHERTYPE_VLAN.contains(&ethertype) {
                Error::check_len("802.1Q tag", at + 4, frame.len())?;
                ethertype = u16::from_be_bytes([frame[at + 2], frame[at + 3]]);
                at += 4;
            }
            (ethertype, &frame[at..])
        }
        link_type::LINUX_SLL => {
            Error::check_len("Linux cooked (SLL) header", 16, frame.len())?;
            (u16::from_be_bytes([frame[14], frame[15]]), &frame[16..])
        }
        link_type::LINUX_SLL2 => {
            Error::check_len("Linux cooked v2 (SLL2) header", 20, frame.len())?;
            (u16::from_be_bytes([frame[0], frame[1]]), &frame[20..])
        }
        link_type::RAW => match crate::ip::version(frame) {
            Some(4) => (ETHERTYPE_IPV4, frame),
            Some(_) => (ETHERTYPE_IPV6, frame),
            None => return Ok(None),
        },
        link_type::IPV4 => (ETHERTYPE_IPV4, frame),
        link_type::IPV6 => (ETHERTYPE_IPV6, frame),
        link_type::NULL | link_type::LOOP => {
            Error::check_len("loopback header", 4, frame.len())?;
            // The address family in the capturing host's byte order (NULL)
            // or big-endian (LOOP); AF_INET is 2 everywhere, AF_INET6 24, 28
            // or 30 on the BSDs, 10 on Linux.
            let a = [frame[0], frame[1], frame[2], frame[3]];
            let family = u32::from_be_bytes(a).min(u32::from_le_bytes(a));
            match family {
                2 => (ETHERTYPE_IPV4, &frame[4..]),
                10 | 24 | 28 | 30 => (ETHERTYPE_IPV6, &frame[4..]),
                _ => return Ok(None),
            }
        }
        other => {
            return Err(Error::Unsupported {
                what: "link type",
                value: other,
            })
        }
    };
    Ok(matches!(ethertype, ETHERTYPE_IPV4 | ETHERTYPE_IPV6).then_some(rest))
}

/// A pcap file header (little-endian, as libpcap writes on x86), for tools
/// and tests that write captures.
pub fn pcap_file_header(link_type: u32, snaplen: u32, nanos: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(PCAP_HEADER_LEN);
    h.extend_from_slice(&(if nanos { PCAP_MAGIC_NS } else { PCAP_MAGIC_US }).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&link_type.to_le_bytes());
    h
}

/// A pcap packet record to go after [`pcap_file_header`]: `data` is what
/// was captured, `original_len` the length on the wire.
pub fn pcap_record(ts: Timestamp, data: &[u8], original_len: u32, nanos: bool) -> Vec<u8> {
    let frac = if nanos { ts.nanos } else { ts.nanos / 1000 };
    let mut r = Vec::with_capacity(PCAP_RECORD_HEADER_LEN + data.len());
    r.extend_from_slice(&(ts.secs as u32).to_le_bytes());
    r.extend_from_slice(&frac.to_le_bytes());
    r.extend_from_slice(&(data.len() as u32).to_le_bytes());
    r.extend_from_slice(&original_len.to_le_bytes());
    r.extend_from_slice(data);
    r
}

#[cfg(test)]
mod tests;
