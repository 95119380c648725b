//! `ikeda pcap FILE`: read a capture and print the IPsec conversation in
//! it, one line per IKE message in the notation of our logs and ESP as
//! per-SA flows.
//!
//! This module is the I/O half: it streams the file through
//! `ikeda_wire::pcap::CaptureDecoder` with one buffer (memory stays flat
//! whatever the file's size) and prints. The decoding of capture formats,
//! link layers, IP and IKE is the wire crate's; `analyze` turns packets
//! into messages and flows.

#[cfg(test)]
mod alloc_tests;
mod analyze;
#[cfg(test)]
mod decrypt_tests;
mod keyfiles;
mod explain;
#[cfg(test)]
mod explain_tests;
pub mod gen;
mod keys;
mod keysrc;
#[cfg(test)]
mod keysrc_tests;
mod skf;
#[cfg(test)]
mod midsession_tests;
#[cfg(test)]
mod tests;
pub(crate) mod write;
#[cfg(test)]
mod write_tests;
mod v1chain;

use analyze::Analyzer;
pub use analyze::Limits;
use ikeda_wire::pcap::{CaptureDecoder, CaptureError, Next, Packet, MAX_RECORD_LEN};
use keys::KeyStore;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// The bytes asked of the file at a time.
const READ_CHUNK: usize = 256 * 1024;

#[derive(clap::Args, Debug, Clone)]
pub struct PcapArgs {
    /// A pcap or pcapng file ("-" for standard input).
    pub file: PathBuf,
    /// Print every payload of every IKE message, as the wire crate parses it.
    #[arg(short, long)]
    pub verbose: bool,
    /// One JSON object: {"file", "format", "messages": [...], "flows": [...],
    /// "stats": {...}}; see README ("Reading captures") for the fields.
    #[arg(long)]
    pub json: bool,
    /// Decrypt IKE (IKEv2 SK payloads, IKEv1 encrypted messages) and ESP
    /// with these keys: ikeda's key log (`ikeda-keys.jsonl`, written with
    /// key export on), Wireshark's `ikev2_decryption_table`,
    /// `ikev1_decryption_table` or `esp_sa`, strongSwan's charon log with
    /// `ike` and `chd` at level 4, or a directory holding any of these.
    /// Each is recognised by its text. Repeatable.
    #[arg(long = "keys", value_name = "SOURCE")]
    pub keys: Vec<PathBuf>,
    /// Write the keys read from Wireshark's tables and charon logs (with
    /// the SPIs the capture bound them to) as Wireshark's tables into this
    /// new directory, so that `WIRESHARK_CONFIG_DIR=DIR tshark -r FILE`
    /// decrypts what Wireshark can of the same capture.
    #[arg(long, value_name = "DIR", requires = "keys")]
    pub wireshark_keys: Option<PathBuf>,
    /// Write a new capture (pcapng, mode 0600) in which the ESP that
    /// decrypted is replaced by the inner packets and the IKE messages by
    /// their cleartext, for Wireshark to open with no keys; every other
    /// frame as it was, frame for frame.
    #[arg(long, value_name = "OUT")]
    pub write: Option<PathBuf>,
}

/// Why a capture could not be read to its end.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Capture(CaptureError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Capture(e) => write!(f, "{e}"),
        }
    }
}

/// Stream every packet record of a capture to `each`; returns the format
/// ("pcapng (little-endian)", ...). The buffer holds at most one record
/// plus one read chunk.
pub fn read_capture(
    mut input: impl Read,
    mut each: impl FnMut(&Packet<'_>),
    format: &mut String,
) -> Result<(), ReadError> {
    let mut decoder = CaptureDecoder::new();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK * 2);
    let mut start = 0;
    let mut eof = false;
    loop {
        let need = match decoder.next(&buf[start..]).map_err(ReadError::Capture)? {
            Next::Record { len, packet } => {
                if let Some(p) = packet {
                    each(&p);
                }
                if format.is_empty() {
                    *format = decoder.format();
                }
                start += len;
                continue;
            }
            Next::Need(n) => n,
        };
        if eof {
            return decoder.finish(buf.len() - start).map_err(ReadError::Capture);
        }
        // Keep only the unread tail, then read until the record is whole.
        buf.drain(..start);
        start = 0;
        debug_assert!(need <= MAX_RECORD_LEN);
        while buf.len() < need && !eof {
            let have = buf.len();
            buf.resize(have + READ_CHUNK.max(need - have), 0);
            let n = loop {
                match input.read(&mut buf[have..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            let n = n.map_err(ReadError::Io)?;
            buf.truncate(have + n);
            eof = n == 0;
        }
    }
}

/// `ikeda pcap`: exit 0 when the whole file was read, 1 when it could
/// not be (the part before the problem is still printed), 2 when it
/// cannot be opened.
pub fn main(args: PcapArgs) -> i32 {
    let keys = match load_keys(&args.keys) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("ikeda pcap: {e}");
            return 2;
        }
    };
    let input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        match File::open(&args.file) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("ikeda pcap: {}: {e}", args.file.display());
                return 2;
            }
        }
    };
    let mut written = match &args.write {
        None => None,
        Some(path) => match write::OutputFile::create(path).and_then(|(o, f)| {
            Ok((
                o,
                write::CaptureWriter::new(f).map_err(|e| format!("{}: {e}", path.display()))?,
            ))
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("ikeda pcap: --write {e}");
                return 2;
            }
        },
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut analyzer = Analyzer::new(Limits::default(), args.verbose, args.json);
    if let Some(keys) = keys {
        analyzer = analyzer.with_keys(keys);
    }
    if written.is_some() {
        analyzer = analyzer.with_rewrites();
    }
    let mut format = String::new();
    if args.json {
        let _ = write!(
            out,
            "{{\"file\":{},\"messages\":[",
            json_string(&args.file.display().to_string())
        );
    }
    let result = match &mut written {
        Some((_, w)) => write::write_capture(input, &mut analyzer, w, &mut out, &mut format),
        None => read_capture(input, |p| analyzer.packet(p, &mut out), &mut format),
    };
    let mut code = match &result {
        Ok(()) => 0,
        Err(e) => {
            let _ = out.flush();
            eprintln!("ikeda pcap: {}: {e}", args.file.display());
            1
        }
    };
    analyzer.finish(&format, &mut out);
    let _ = out.flush();
    for w in analyzer.warnings() {
        eprintln!("ikeda pcap: {}: {w}", args.file.display());
    }
    if let (Some(dir), Some(keys)) = (&args.wireshark_keys, analyzer.keys()) {
        match keyfiles::write_wireshark(keys, dir) {
            Ok(said) => eprintln!("ikeda pcap: {said}"),
            Err(e) => {
                eprintln!("ikeda pcap: --wireshark-keys: {e}");
                code = 1;
            }
        }
    }
    if let (Some((file, w)), Some(path)) = (written, &args.write) {
        // What was read before a problem is written, as it is printed.
        match w
            .finish()
            .map_err(|e| e.to_string())
            .and_then(|(f, st)| file.commit(f).map(|()| st))
        {
            Ok(st) => eprintln!(
                "ikeda pcap: wrote {} frames to {}: {} ESP packets decrypted, {} IKE messages in cleartext, {} as \
                 captured{}",
                st.frames,
                path.display(),
                st.esp_decrypted,
                st.ike_cleartext,
                st.unchanged,
                if st.left_out > 0 {
                    format!(", {} of unusual link types left out", st.left_out)
                } else {
                    String::new()
                }
            ),
            Err(e) => {
                eprintln!("ikeda pcap: --write {}: {e}", path.display());
                code = 1;
            }
        }
    }
    code
}

/// Every `--keys` source into one store (`None` without any); a source
/// that cannot be read, or holds no key we can use, is an error; lines
/// skipped in one that can are named on standard error.
fn load_keys(sources: &[PathBuf]) -> Result<Option<KeyStore>, String> {
    if sources.is_empty() {
        return Ok(None);
    }
    let mut store = KeyStore::default();
    for s in sources {
        store.load(s)?;
    }
    for p in &store.problems {
        eprintln!("ikeda pcap: --keys {p} (skipped)");
    }
    Ok(Some(store))
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}
