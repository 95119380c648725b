//! `ikeda pcap --keys SOURCE --write OUT`: a new capture in which every
//! ESP packet that decrypted is replaced by the packet it carried, and
//! every IKE message that decrypted by its cleartext twin (IKEv2: the SK
//! payload replaced by the payloads inside it; IKEv1: the Encryption flag
//! cleared, the payloads in clear), so that Wireshark or tshark reads it
//! with no keys at all.
//!
//! The output is pcapng (draft-ietf-opsawg-pcapng), one frame for each
//! frame of the input, in the same order, so frame numbers agree:
//! - frames left as they were keep their bytes and link type, on an
//!   interface per link type named `original`;
//! - rewritten frames are raw IP (LINKTYPE_RAW) on the interface
//!   `ikeda-decrypted`: a decrypted ESP packet is the inner packet alone
//!   (the outer header is gone: the frame comment names it); a decrypted
//!   IKE message is re-framed in a UDP datagram between the same addresses
//!   and ports (the non-ESP marker kept on 4500), its IP and UDP lengths
//!   and checksums fixed (`ikeda_wire::pcap::rewrite`);
//! - every rewritten frame has a comment (`frame.comment`) saying what was
//!   done, and so does a frame that was not decrypted for a reason worth
//!   knowing (an ICV that did not verify, an SKF fragment held for
//!   reassembly).
//!
//! An IP datagram reassembled from fragments is written whole in place of
//! its last fragment; the earlier fragments stay as captured. An SKF
//! message is written whole (decrypted) in place of the fragment that
//! completed it; the other fragments stay as captured, with a comment.
//!
//! The file is written as the input is read (one frame's buffers, reused:
//! memory stays flat), into a new file beside OUT (mode 0600: it holds
//! decrypted traffic; created exclusively, never through a link), renamed
//! over OUT at the end.

use super::analyze::{Analyzer, Encapsulation};
use super::{read_capture, ReadError};
use ikeda_wire::ip;
use ikeda_wire::pcap::{link_type, network_layer, rewrite, writer, Packet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The output interface of rewritten frames, and its description.
pub const DECRYPTED_INTERFACE: &str = "ikeda-decrypted";
/// Input link types given an interface each; frames of further ones
/// (only a crafted file has them) are left out and counted.
const MAX_LINK_TYPES: usize = 64;

/// What the analyzer made of one frame, for the writer.
#[derive(Debug, Default)]
pub enum Rewrite {
    /// Write the frame as it was.
    #[default]
    Unchanged,
    /// An ESP packet that decrypted: its inner packet replaces the frame.
    Esp(EspDecrypted),
    /// An ESP packet that did not decrypt, and why (`ikeda_esp::DropReason`
    /// names, or "no key for this SPI").
    EspNot(&'static str),
    /// An IKE message decrypted: its cleartext replaces the UDP payload.
    Ike(IkeCleartext),
    /// The frame as it was, with this note.
    Note(String),
}

#[derive(Debug)]
pub struct EspDecrypted {
    pub spi: u32,
    pub seq: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub encap: Encapsulation,
    pub ports: (u16, u16),
    /// IPComp (RFC 3173): (compressed, inflated) sizes.
    pub inflated: Option<(u64, u64)>,
    /// Where the inner packet is in the analyzer's buffer.
    pub inner: Range<usize>,
}

#[derive(Debug)]
pub struct IkeCleartext {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ports: (u16, u16),
    pub non_esp_marker: bool,
    /// The whole IKE message in cleartext.
    pub message: Vec<u8>,
    /// What was done, for the frame comment.
    pub what: String,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub frames: u64,
    pub esp_decrypted: u64,
    pub ike_cleartext: u64,
    /// Frames written as they were (with or without a note).
    pub unchanged: u64,
    /// Frames of link types beyond [`MAX_LINK_TYPES`], not written.
    pub left_out: u64,
}

/// Writes the new capture frame by frame into `W`.
pub struct CaptureWriter<W: Write> {
    out: W,
    /// One block, reused.
    block: Vec<u8>,
    /// One re-framed IP packet, reused.
    packet: Vec<u8>,
    comment: String,
    /// (input link type, output interface) of frames kept as they were.
    interfaces: Vec<(u32, u32)>,
    decrypted_if: Option<u32>,
    next_if: u32,
    stats: WriteStats,
    error: Option<io::Error>,
}

impl<W: Write> CaptureWriter<W> {
    /// Start the capture: its section header.
    pub fn new(mut out: W) -> io::Result<CaptureWriter<W>> {
        let mut block = Vec::with_capacity(64 * 1024);
        writer::section_header(&mut block, "ikeda pcap --write (ESP and IKE decrypted)");
        out.write_all(&block)?;
        Ok(CaptureWriter {
            out,
            block,
            packet: Vec::with_capacity(2048),
            comment: String::new(),
            interfaces: Vec::new(),
            decrypted_if: None,
            next_if: 0,
            stats: WriteStats::default(),
            error: None,
        })
    }

    fn put(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(&self.block) {
                self.error = Some(e);
            }
        }
        self.block.clear();
    }

    fn new_interface(&mut self, link: u16, name: &str, description: &str) -> u32 {
        self.block.clear();
        writer::interface_description(&mut self.block, link, name, description);
        self.put();
        self.next_if += 1;
        self.next_if - 1
    }

    fn original_interface(&mut self, link: u32) -> Option<u32> {
        if let Some((_, i)) = self.interfaces.iter().find(|(l, _)| *l == link) {
            return Some(*i);
        }
        let link16 = u16::try_from(link).ok()?;
        if self.interfaces.len() >= MAX_LINK_TYPES {
            return None;
        }
        let what = link_type::name(link).map_or_else(|| format!("link type {link}"), str::to_string);
        let i = self.new_interface(link16, "original", &format!("frames as captured ({what})"));
        self.interfaces.push((link, i));
        Some(i)
    }

    fn decrypted_interface(&mut self) -> u32 {
        match self.decrypted_if {
            Some(i) => i,
            None => {
                let i = self.new_interface(
                    link_type::RAW as u16,
                    DECRYPTED_INTERFACE,
                    "ESP replaced by the inner packets, IKE by its cleartext (ikeda pcap --write)",
                );
                self.decrypted_if = Some(i);
                i
            }
        }
    }

    /// Write the frame `p` as `r` says; `buf` is the analyzer's buffer
    /// that [`EspDecrypted::inner`] points into.
    pub fn frame(&mut self, p: &Packet<'_>, r: Rewrite, buf: &[u8]) {
        self.stats.frames += 1;
        self.comment.clear();
        match r {
            Rewrite::Unchanged => self.original(p, false),
            Rewrite::EspNot(why) => {
                let _ = write!(self.comment, "ikeda pcap: ESP not decrypted: {}", why.replace('_', " "));
                self.original(p, true);
            }
            Rewrite::Note(note) => {
                let _ = write!(self.comment, "ikeda pcap: {note}");
                self.original(p, true);
            }
            Rewrite::Esp(e) => {
                let Some(inner) = buf.get(e.inner.clone()) else {
                    return self.original(p, false);
                };
                let _ = write!(
                    self.comment,
                    "ikeda pcap: decrypted ESP SPI {:#010x} seq {} from {} to {}",
                    e.spi, e.seq, e.src, e.dst
                );
                if e.encap == Encapsulation::Udp {
                    let _ = write!(self.comment, " (in UDP {}->{})", e.ports.0, e.ports.1);
                }
                if let Some((c, i)) = e.inflated {
                    let _ = write!(self.comment, ", IPComp inflated {c} -> {i} bytes");
                }
                self.comment.push_str(": the inner packet, without the outer header");
                self.fragment_note(p);
                let iface = self.decrypted_interface();
                self.block.clear();
                writer::enhanced_packet(
                    &mut self.block,
                    iface,
                    p.timestamp,
                    inner,
                    inner.len() as u32,
                    Some(&self.comment),
                );
                self.put();
                self.stats.esp_decrypted += 1;
            }
            Rewrite::Ike(c) => self.ike(p, c),
        }
    }

    fn ike(&mut self, p: &Packet<'_>, c: IkeCleartext) {
        let template = network_layer(p.link_type, p.data).ok().flatten();
        let marker: &[u8] = if c.non_esp_marker { &[0; 4] } else { &[] };
        let mut packet = std::mem::take(&mut self.packet);
        match rewrite::udp_packet(&mut packet, template, c.src, c.dst, c.ports, &[marker, &c.message]) {
            Ok(()) => {
                let _ = write!(self.comment, "ikeda pcap: {}", c.what);
                self.fragment_note(p);
                let iface = self.decrypted_interface();
                self.block.clear();
                writer::enhanced_packet(
                    &mut self.block,
                    iface,
                    p.timestamp,
                    &packet,
                    packet.len() as u32,
                    Some(&self.comment),
                );
                self.put();
                self.stats.ike_cleartext += 1;
            }
            Err(e) => {
                let _ = write!(
                    self.comment,
                    "ikeda pcap: {}, but not written in cleartext: {e}",
                    c.what
                );
                self.original(p, true);
            }
        }
        self.packet = packet;
    }

    /// A frame that completed an IP datagram holds it whole now.
    fn fragment_note(&mut self, p: &Packet<'_>) {
        let fragment = network_layer(p.link_type, p.data)
            .ok()
            .flatten()
            .and_then(|l3| ip::datagram(l3).ok())
            .is_some_and(|d| d.fragment.is_some());
        if fragment {
            self.comment
                .push_str(" (an IP datagram reassembled from fragments; the earlier fragments are as captured)");
        }
    }

    fn original(&mut self, p: &Packet<'_>, with_comment: bool) {
        let Some(iface) = self.original_interface(p.link_type) else {
            self.stats.left_out += 1;
            return;
        };
        self.block.clear();
        let comment = with_comment.then_some(self.comment.as_str());
        writer::enhanced_packet(&mut self.block, iface, p.timestamp, p.data, p.original_len, comment);
        self.put();
        self.stats.unchanged += 1;
    }

    /// Flush; the first write error, if any.
    pub fn finish(mut self) -> io::Result<(W, WriteStats)> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok((self.out, self.stats))
    }
}

/// Read a capture and write its decrypted twin: the analyzer prints to
/// `out` as without `--write`, and each frame goes to `w` as it is read.
pub fn write_capture<W: Write>(
    input: impl Read,
    analyzer: &mut Analyzer,
    w: &mut CaptureWriter<W>,
    out: &mut impl Write,
    format: &mut String,
) -> Result<(), ReadError> {
    read_capture(
        input,
        |p| {
            analyzer.packet(p, out);
            let (r, buf) = analyzer.take_rewrite();
            w.frame(p, r, buf);
        },
        format,
    )
}

/// What [`write_in_memory`] gives: the printed text, the read result,
/// the written capture and its counts.
pub type InMemory = (Vec<u8>, Result<(), String>, io::Result<(Vec<u8>, WriteStats)>);

/// The whole `--write` path on a capture in memory, as `ikeda pcap --keys
/// LOG --write OUT` runs it but for the files: the keys from the text of
/// a key log, the new capture into memory. Returns what was printed and
/// the read result, and the written capture with its counts. For the
/// fuzz target (`fuzz/fuzz_targets/pcap_write.rs`) and the tests.
#[cfg_attr(not(test), allow(dead_code))]
pub fn write_in_memory(
    capture: &[u8],
    key_log: Option<&str>,
    verbose: bool,
    json: bool,
) -> InMemory {
    let mut analyzer = Analyzer::new(super::Limits::default(), verbose, json).with_rewrites();
    if let Some(log) = key_log {
        let mut keys = super::keys::KeyStore::default();
        if keys.load_key_log("key log", log).is_ok() {
            analyzer = analyzer.with_keys(keys);
        }
    }
    let mut out = Vec::new();
    let mut format = String::new();
    let w = CaptureWriter::new(Vec::new());
    let (read, written) = match w {
        Ok(mut w) => {
            let r = write_capture(capture, &mut analyzer, &mut w, &mut out, &mut format);
            (r.map_err(|e| e.to_string()), w.finish())
        }
        Err(e) => (Ok(()), Err(e)),
    };
    analyzer.finish(&format, &mut out);
    (out, read, written)
}

/// The file `--write` writes: a new file beside the target, renamed over
/// it by [`OutputFile::commit`], removed if dropped uncommitted.
pub struct OutputFile {
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl OutputFile {
    /// Create the temporary file (0600, exclusively, not through a link).
    pub fn create(path: &Path) -> Result<(OutputFile, BufWriter<File>), String> {
        let name = path
            .file_name()
            .ok_or_else(|| format!("{}: not a file name", path.display()))?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{}.ikeda-{}.tmp", name.to_string_lossy(), std::process::id()));
        let f = crate::private::create_new(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        Ok((
            OutputFile {
                tmp,
                path: path.to_path_buf(),
                committed: false,
            },
            BufWriter::with_capacity(256 * 1024, f),
        ))
    }

    /// Put the file in place of the target (a link there is replaced, not
    /// followed).
    pub fn commit(mut self, f: BufWriter<File>) -> Result<(), String> {
        let f = f
            .into_inner()
            .map_err(|e| format!("{}: {}", self.tmp.display(), e.error()))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
