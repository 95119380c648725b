//! `ikeda pcap-gen` (hidden): a large ESP capture for the `ikeda pcap`
//! benchmark (`bench/pcap.sh`, issue 12 point 7), and the keys to read it.
//!
//! Two directions of one CHILD SA between 192.0.2.1 and 192.0.2.2
//! (TEST-NET-1, RFC 5737: the file is only written, nothing is sent),
//! sealed by the data plane's own outbound SAs with fresh random keys;
//! each frame an Ethernet frame of at most `--frame` bytes carrying a UDP
//! datagram between 10.1.0.1 and 10.2.0.1. The keys go through ikeda's key
//! export, so the directory holds what a gateway writes: ikeda's key log
//! for `ikeda pcap --keys`, and Wireshark's `esp_sa` for tshark.

use crate::keys::KeyExport;
use ikeda_crypto::{EspAlgorithm, SecretBytes};
use ikeda_esp::{Encap, OutboundSa, SaParams};
use ikeda_ike::ikev2::ChildSaInfo;
use ikeda_wire::iana::IpProtocol;
use ikeda_wire::ip::build_ipv4;
use ikeda_wire::pcap::{link_type, pcap_file_header, Timestamp};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const ETH_HEADER_LEN: usize = 14;

#[derive(clap::Args, Debug, Clone)]
pub struct GenArgs {
    /// The pcap file to write (replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// The key directory to write (ikeda-keys.jsonl, esp_sa, preferences).
    #[arg(long)]
    pub keys: PathBuf,
    /// Size of the capture in MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// Ethernet frame length, at most (ESP alignment may take a few bytes).
    #[arg(long, default_value_t = 1400)]
    pub frame: usize,
    /// ESP algorithm (strongSwan syntax).
    #[arg(long, default_value = "aes128gcm16")]
    pub esp: String,
}

fn random_key(len: usize) -> Result<SecretBytes, String> {
    let mut k = vec![0u8; len];
    ikeda_crypto::random_fill(&mut k)?;
    Ok(SecretBytes::new(k))
}

fn outbound(alg: EspAlgorithm, spi: u32, enc: &SecretBytes, auth: Option<&SecretBytes>) -> Result<OutboundSa, String> {
    OutboundSa::new(&SaParams {
        spi,
        algorithm: alg,
        enc_key: enc.clone(),
        auth_key: auth.cloned(),
        esn: false,
        replay_window: 64,
        local: SocketAddr::new(A.into(), 500),
        remote: SocketAddr::new(B.into(), 500),
        encap: Encap::Esp,
        selectors: vec![],
        ipcomp: None,
    })
    .map_err(|e| format!("SA: {e}"))
}

/// `ikeda pcap-gen`: 0 when written, 2 when not.
pub fn main(args: GenArgs) -> i32 {
    match generate(&args) {
        Ok((frames, bytes, frame_len)) => {
            println!(
                "{}: {frames} ESP frames of {frame_len} bytes ({} on Ethernet), {bytes} bytes; keys in {}",
                args.out.display(),
                args.esp,
                args.keys.display()
            );
            0
        }
        Err(e) => {
            eprintln!("ikeda pcap-gen: {e}");
            2
        }
    }
}

pub(super) fn generate(args: &GenArgs) -> Result<(u64, u64, usize), String> {
    let alg = EspAlgorithm::parse(&args.esp)?;
    let (spi_ab, spi_ba) = (0xc0de_0001u32, 0xc0de_0002u32);
    let (enc_ab, enc_ba) = (random_key(alg.enc_key_len())?, random_key(alg.enc_key_len())?);
    let auth = |n: usize| -> Result<Option<SecretBytes>, String> {
        if n == 0 {
            Ok(None)
        } else {
            random_key(n).map(Some)
        }
    };
    let (auth_ab, auth_ba) = (auth(alg.auth_key_len())?, auth(alg.auth_key_len())?);
    // A's view: it sends with spi_ab, receives with spi_ba.
    let mut x = KeyExport::open(&args.keys)?;
    x.child_sa(
        &ChildSaInfo {
            conn: "bench".into(),
            algorithm: alg,
            esn: false,
            spi_in: spi_ba,
            spi_out: spi_ab,
            enc_in: enc_ba.clone(),
            auth_in: auth_ba.clone(),
            enc_out: enc_ab.clone(),
            auth_out: auth_ab.clone(),
            local_ts: vec![],
            remote_ts: vec![],
            local: SocketAddr::new(A.into(), 500),
            remote: SocketAddr::new(B.into(), 500),
            udp_encap: false,
            peer_takes_trains: false,
            replaces: None,
            activate_outbound: true,
            pair: 0,
            ipcomp: None,
        },
        SocketAddr::new(A.into(), 500),
        SocketAddr::new(B.into(), 500),
    );
    let mut sas = [
        outbound(alg, spi_ab, &enc_ab, auth_ab.as_ref())?,
        outbound(alg, spi_ba, &enc_ba, auth_ba.as_ref())?,
    ];

    // The longest inner datagram whose frame fits: ESP pads to its
    // alignment, so try downwards from the plain overhead.
    let room = sas[0].room();
    let mut udp_len = args
        .frame
        .checked_sub(ETH_HEADER_LEN + 20 + room.head + 2 + alg.icv_len() + 20)
        .filter(|n| *n >= 8)
        .ok_or("--frame is too short for ESP")?;
    let mut buf = vec![0u8; room.head + 2048 + room.tail];
    let seal = |sa: &mut OutboundSa, buf: &mut Vec<u8>, inner: &[u8]| -> Result<usize, String> {
        buf[room.head..room.head + inner.len()].copy_from_slice(inner);
        let r = sa
            .encapsulate(buf, room.head, inner.len(), 0)
            .map_err(|e| format!("encapsulate: {}", e.name()))?;
        buf.copy_within(r.clone(), 0);
        Ok(r.len())
    };
    let datagram = |from: (Ipv4Addr, u16), to: (Ipv4Addr, u16), len: usize| -> Vec<u8> {
        let mut u = from.1.to_be_bytes().to_vec();
        u.extend_from_slice(&to.1.to_be_bytes());
        u.extend_from_slice(&(len as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.resize(len, 0x42);
        build_ipv4(from.0, to.0, IpProtocol::UDP, &u)
    };
    let inner = loop {
        let d = datagram(
            (Ipv4Addr::new(10, 1, 0, 1), 5001),
            (Ipv4Addr::new(10, 2, 0, 1), 5001),
            udp_len,
        );
        let mut probe = outbound(alg, 1, &enc_ab, auth_ab.as_ref())?;
        let esp_len = seal(&mut probe, &mut buf, &d)?;
        if ETH_HEADER_LEN + 20 + esp_len <= args.frame || udp_len <= 8 {
            break d;
        }
        udp_len -= 1;
    };
    let back = datagram(
        (Ipv4Addr::new(10, 2, 0, 1), 5001),
        (Ipv4Addr::new(10, 1, 0, 1), 5001),
        udp_len,
    );

    let file = std::fs::File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| format!("{}: {e}", args.out.display());
    w.write_all(&pcap_file_header(link_type::ETHERNET, 65535, false))
        .map_err(io)?;
    let target = args.size_mib << 20;
    let (mut frames, mut bytes, mut frame_len) = (0u64, 24u64, 0usize);
    let mut frame = Vec::with_capacity(2048);
    while bytes < target {
        let dir = (frames % 2) as usize;
        let esp_len = seal(&mut sas[dir], &mut buf, if dir == 0 { &inner } else { &back })?;
        let (src, dst) = if dir == 0 { (A, B) } else { (B, A) };
        let ip = build_ipv4(src, dst, IpProtocol::ESP, &buf[..esp_len]);
        frame.clear();
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, if dir == 0 { 2 } else { 1 }]);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, if dir == 0 { 1 } else { 2 }]);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(&ip);
        // 10 µs apart: 100,000 frames a second.
        let t = Timestamp {
            secs: 1_700_000_000 + frames / 100_000,
            nanos: (frames % 100_000) as u32 * 10_000,
        };
        let mut rec = [0u8; 16];
        rec[..4].copy_from_slice(&(t.secs as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&(t.nanos / 1000).to_le_bytes());
        rec[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        w.write_all(&rec).map_err(io)?;
        w.write_all(&frame).map_err(io)?;
        frames += 1;
        bytes += 16 + frame.len() as u64;
        frame_len = frame.len();
    }
    w.flush().map_err(io)?;
    Ok((frames, bytes, frame_len))
}
