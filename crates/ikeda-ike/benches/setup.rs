//! IKEv2 SA setup rate: sequential (initiate -> CHILD SA up on both sides ->
//! terminate -> IKE SA down on both sides), PSK + X25519
//! (`aes128gcm16-prfsha256-x25519`, ESP `aes128gcm16`).
//!
//! Two measurements:
//! - `inproc`: initiator and responder engines in one thread, datagrams moved
//!   from one to the other directly (no simulator, no delay, no copies beyond
//!   what the engine makes). Both sides' CPU is on one core, so the rate is
//!   what one core does for a whole IKE SA (both roles).
//! - `loopback`: two threads, each owning an engine and a real UDP socket
//!   (127.0.0.1:500 and 127.0.0.2:500; binding 500 needs root). A setup is
//!   6 sequential datagrams, so this rate also measures thread wake-ups: it
//!   varies with whether the scheduler puts both threads on one CPU (try
//!   `taskset -c 0`). bench/ike_setup.sh runs it in a private netns.
//!
//! Afterwards a few cleanup checks (nothing left active, no timers, no
//! dropped datagrams, resident memory over a long loop) and probes of
//! half-open SAs, printed as `CHECK` lines.
//!
//! Randomness: `SystemRng` (aws-lc `RAND_bytes`, what the daemon uses) by
//! default; `--seeded` uses `SeededRng` with a distinct seed per engine.
//!
//! ```text
//! cargo bench -p ikeda-ike --bench setup -- [--quick] [-n N] [-r RUNS]
//!     [--seeded] [--timers] [--ike PROP] [--esp PROP] [--only inproc|loopback|checks]
//! ```
//! `IKEDA_BENCH_QUICK=1` is the same as `--quick`. Machine-readable lines
//! start with `RESULT`.

use ikeda_crypto::ike::{parse_esp_proposals, parse_ike_proposals, Rng, SeededRng, SystemRng};
use ikeda_crypto::SecretBytes;
use ikeda_ike::ikev2::{ConnSpec, Engine, Event, Timers};
use ikeda_ike::{Millis, Transmit};
use ikeda_wire::ikev2::{IdPayload, TsRange};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Proposals (strongSwan syntax); `--ike P` / `--esp P` override them.
static IKE: OnceLock<String> = OnceLock::new();
static ESP: OnceLock<String> = OnceLock::new();

fn ike() -> &'static str {
    IKE.get().map_or("aes128gcm16-prfsha256-x25519", String::as_str)
}

fn esp() -> &'static str {
    ESP.get().map_or("aes128gcm16", String::as_str)
}
const CONN: &str = "s2s";

struct Opts {
    quick: bool,
    n: Option<usize>,
    runs: Option<usize>,
    seeded: bool,
    timers: bool,
    only: Option<String>,
}

fn opts() -> Opts {
    let mut o = Opts {
        quick: std::env::var("IKEDA_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"),
        n: None,
        runs: None,
        seeded: false,
        timers: false,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--seeded" => o.seeded = true,
            "--timers" => o.timers = true,
            "-n" => o.n = args.next().and_then(|v| v.parse().ok()),
            "-r" => o.runs = args.next().and_then(|v| v.parse().ok()),
            "--only" => o.only = args.next(),
            "--ike" => {
                let _ = args.next().map(|v| IKE.set(v));
            }
            "--esp" => {
                let _ = args.next().map(|v| ESP.set(v));
            }
            // `cargo bench` passes --bench; ignore it and filters.
            _ => {}
        }
    }
    o
}

fn rng(seeded: bool, seed: u64) -> Box<dyn Rng + Send> {
    if seeded {
        Box::new(SeededRng::from_u64(seed))
    } else {
        Box::new(SystemRng)
    }
}

fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => unreachable!("IPv4 only"),
    }
}

/// `--timers`: strongSwan-like lifetimes and DPD on, so that every SA also
/// carries rekey/expiry/liveness timers (none fires during a setup).
static TIMERS: AtomicBool = AtomicBool::new(false);

fn timers() -> Timers {
    if !TIMERS.load(Ordering::Relaxed) {
        // Lifetimes, rekeying and DPD off: a sequential setup/teardown loop.
        return Timers::default();
    }
    Timers {
        rekey_time: Duration::from_secs(3600),
        life_time: Duration::from_secs(3960),
        ike_rekey_time: Duration::from_secs(14400),
        ike_lifetime: Duration::from_secs(15840),
        dpd_delay: Duration::from_secs(30),
        dpd_restart: false,
        keepalive: Duration::ZERO,
    }
}

fn spec(local: IpAddr, remote: IpAddr, lnet: &str, rnet: &str) -> ConnSpec {
    let range = |cidr: &str| {
        let (s, e) = cidr.split_once('-').unwrap();
        TsRange::addresses(s.parse().unwrap(), e.parse().unwrap())
    };
    ConnSpec {
        name: CONN.into(),
        local,
        remote,
        local_id: IdPayload::ipv4(v4(local)),
        remote_id: IdPayload::ipv4(v4(remote)),
        psk: SecretBytes::new(b"ikeda-bench-pre-shared-key-0123456789".to_vec()),
        ike_proposals: parse_ike_proposals(ike()).expect("--ike"),
        esp_proposals: parse_esp_proposals(esp()).expect("--esp"),
        local_ts: vec![range(lnet)],
        remote_ts: vec![range(rnet)],
        ts_pairs: Vec::new(),
        timers: timers(),
        force_encap: false,
        children: Vec::new(),
    }
}

const NET1: &str = "192.168.11.0-192.168.11.255";
const NET2: &str = "192.168.12.0-192.168.12.255";

fn engines(ia: IpAddr, ra: IpAddr, seeded: bool) -> (Engine, Engine) {
    (
        Engine::new(vec![spec(ia, ra, NET1, NET2)], rng(seeded, 0x1111_2222)),
        Engine::new(vec![spec(ra, ia, NET2, NET1)], rng(seeded, 0x3333_4444)),
    )
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    child_up: u64,
    child_down: u64,
    ike_up: u64,
    ike_down: u64,
    failed: u64,
    logs: u64,
}

fn drain(e: &mut Engine, c: &mut Counts) {
    while let Some(ev) = e.poll_event() {
        match ev {
            Event::ChildSaUp(_) => c.child_up += 1,
            Event::ChildSaDown { .. } => c.child_down += 1,
            Event::IkeSaUp { .. } => c.ike_up += 1,
            Event::IkeSaDown { .. } => c.ike_down += 1,
            Event::Failed { conn, why } => {
                c.failed += 1;
                eprintln!("  failure on {conn}: {why}");
            }
            Event::Log { .. } => c.logs += 1,
            _ => {}
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

// ---- in-process ---------------------------------------------------------

struct InProc {
    i: Engine,
    r: Engine,
    ia: SocketAddr,
    ra: SocketAddr,
    ic: Counts,
    rc: Counts,
    t0: Instant,
    misrouted: u64,
    datagrams: u64,
}

impl InProc {
    fn new(seeded: bool) -> Self {
        let ia: SocketAddr = "192.168.50.11:500".parse().unwrap();
        let ra: SocketAddr = "192.168.50.12:500".parse().unwrap();
        let (i, r) = engines(ia.ip(), ra.ip(), seeded);
        InProc {
            i,
            r,
            ia,
            ra,
            ic: Counts::default(),
            rc: Counts::default(),
            t0: Instant::now(),
            misrouted: 0,
            datagrams: 0,
        }
    }

    fn now(&self) -> Millis {
        Millis(self.t0.elapsed().as_millis() as u64)
    }

    /// Move datagrams both ways until neither side has anything to send.
    fn pump(&mut self) {
        let now = self.now();
        loop {
            let mut moved = false;
            while let Some(t) = self.i.poll_transmit() {
                moved = true;
                self.datagrams += 1;
                if t.remote != self.ra {
                    self.misrouted += 1;
                }
                self.r.handle_datagram(now, t.remote, t.local, &t.data);
            }
            while let Some(t) = self.r.poll_transmit() {
                moved = true;
                self.datagrams += 1;
                if t.remote != self.ia {
                    self.misrouted += 1;
                }
                self.i.handle_datagram(now, t.remote, t.local, &t.data);
            }
            if !moved {
                break;
            }
        }
        drain(&mut self.i, &mut self.ic);
        drain(&mut self.r, &mut self.rc);
    }

    /// One setup + teardown; returns (setup, teardown) durations.
    fn once(&mut self) -> (Duration, Duration) {
        let (ci, cr) = (self.ic.child_up, self.rc.child_up);
        let (di, dr) = (self.ic.ike_down, self.rc.ike_down);
        let a = Instant::now();
        self.i.initiate(CONN, self.now()).expect("initiate");
        self.pump();
        assert!(
            self.ic.child_up == ci + 1 && self.rc.child_up == cr + 1,
            "CHILD SA not up on both sides: {:?} {:?}",
            self.ic,
            self.rc
        );
        let b = Instant::now();
        self.i.terminate(CONN, self.now()).expect("terminate");
        self.pump();
        assert!(
            self.ic.ike_down == di + 1 && self.rc.ike_down == dr + 1,
            "IKE SA not down on both sides: {:?} {:?}",
            self.ic,
            self.rc
        );
        let c = Instant::now();
        (b - a, c - b)
    }
}

fn bench_inproc(o: &Opts) -> f64 {
    let n = o.n.unwrap_or(if o.quick { 500 } else { 2000 });
    let runs = o.runs.unwrap_or(if o.quick { 3 } else { 5 });
    println!(
        "== in-process: {runs} runs x {n} sequential setups ({}, esp {}, {} rng)",
        ike(),
        esp(),
        if o.seeded { "SeededRng" } else { "SystemRng" }
    );
    let mut p = InProc::new(o.seeded);
    for _ in 0..50 {
        p.once(); // warm-up
    }
    let mut rates = Vec::new();
    let (mut up_us, mut down_us) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let t = Instant::now();
        for _ in 0..n {
            let (u, d) = p.once();
            up_us.push(u.as_secs_f64() * 1e6);
            down_us.push(d.as_secs_f64() * 1e6);
        }
        let el = t.elapsed().as_secs_f64();
        let rate = n as f64 / el;
        println!("  run {run}: {rate:.0} setups/s ({:.1} µs/setup)", 1e6 * el / n as f64);
        rates.push(rate);
    }
    let med = median(&mut rates.clone());
    let (mn, mx) = (
        rates.iter().cloned().fold(f64::MAX, f64::min),
        rates.iter().cloned().fold(0.0, f64::max),
    );
    println!(
        "  median {med:.0} setups/s = {:.1} µs/setup (min {mn:.0}, max {mx:.0}); \
         initiate->both CHILD SA up p50 {:.1} µs p99 {:.1} µs; terminate->both down p50 {:.1} µs p99 {:.1} µs",
        1e6 / med,
        pct(&mut up_us, 0.5),
        pct(&mut up_us, 0.99),
        pct(&mut down_us, 0.5),
        pct(&mut down_us, 0.99)
    );
    println!(
        "  {} datagrams per setup; {} Log events per setup (both sides)",
        p.datagrams / p.ic.child_up.max(1),
        (p.ic.logs + p.rc.logs) / p.ic.child_up.max(1)
    );
    println!(
        "RESULT inproc setups_per_s={med:.1} us_per_setup={:.2} min={mn:.1} max={mx:.1} n={n} runs={runs} rng={} ike={} esp={}",
        1e6 / med,
        if o.seeded { "seeded" } else { "system" },
        ike(),
        esp()
    );
    med
}

// ---- loopback -----------------------------------------------------------

fn now_ms(t0: Instant) -> Millis {
    Millis(t0.elapsed().as_millis() as u64)
}

fn flush(e: &mut Engine, s: &UdpSocket, sent: &mut u64) {
    while let Some(Transmit { remote, data, .. }) = e.poll_transmit() {
        match s.send_to(&data, remote) {
            Ok(_) => *sent += 1,
            Err(err) => eprintln!("  send_to {remote}: {err}"),
        }
    }
}

/// How long to wait in recv: until the engine's next timer, at most `cap`.
fn wait_for(e: &Engine, t0: Instant, cap: Duration) -> Duration {
    let now = now_ms(t0);
    let d = e
        .poll_timeout()
        .map(|t| t.saturating_since(now))
        .unwrap_or(cap)
        .min(cap);
    d.max(Duration::from_millis(1))
}

fn recv_one(e: &mut Engine, s: &UdpSocket, local: SocketAddr, t0: Instant, buf: &mut [u8], cap: Duration) -> bool {
    let _ = s.set_read_timeout(Some(wait_for(e, t0, cap)));
    let got = match s.recv_from(buf) {
        Ok((len, from)) => {
            e.handle_datagram(now_ms(t0), local, from, &buf[..len]);
            true
        }
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            false
        }
        Err(err) => {
            eprintln!("  recv_from: {err}");
            false
        }
    };
    if e.poll_timeout().is_some_and(|t| t <= now_ms(t0)) {
        e.handle_timeout(now_ms(t0));
    }
    got
}

fn bind(a: SocketAddr) -> Result<UdpSocket, String> {
    UdpSocket::bind(a).map_err(|e| format!("bind {a}: {e}"))
}

fn bench_loopback(o: &Opts) -> Result<f64, String> {
    let n = o.n.unwrap_or(if o.quick { 500 } else { 2000 });
    let runs = o.runs.unwrap_or(if o.quick { 3 } else { 5 });
    let ia: SocketAddr = "127.0.0.1:500".parse().unwrap();
    let ra: SocketAddr = "127.0.0.2:500".parse().unwrap();
    println!("== loopback: {runs} runs x {n} sequential setups, initiator {ia} and responder {ra} in two threads");
    let si = bind(ia)?;
    let sr = bind(ra)?;
    let (mut ei, mut er) = engines(ia.ip(), ra.ip(), o.seeded);
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();

    let stop_r = stop.clone();
    let responder = std::thread::spawn(move || {
        let mut c = Counts::default();
        let mut buf = vec![0u8; 65536];
        let mut sent = 0u64;
        let mut received = 0u64;
        while !stop_r.load(Ordering::Relaxed) {
            if recv_one(&mut er, &sr, ra, t0, &mut buf, Duration::from_millis(50)) {
                received += 1;
            }
            flush(&mut er, &sr, &mut sent);
            drain(&mut er, &mut c);
        }
        let active = er.is_active(CONN);
        (c, sent, received, active, er.poll_timeout(), er.stats)
    });

    let initiator = std::thread::spawn(move || -> Result<(Vec<f64>, Counts, bool, u64, u64), String> {
        let mut c = Counts::default();
        let mut buf = vec![0u8; 65536];
        let mut sent = 0u64;
        let mut received = 0u64;
        let mut rates = Vec::new();
        let mut one = |ei: &mut Engine, c: &mut Counts| -> Result<(), String> {
            let down = c.ike_down;
            let started = Instant::now();
            ei.initiate(CONN, now_ms(t0))?;
            let mut terminated = false;
            loop {
                flush(ei, &si, &mut sent);
                let before = c.child_up;
                drain(ei, c);
                if c.failed > 0 {
                    return Err("negotiation failed".into());
                }
                if c.child_up > before && !terminated {
                    ei.terminate(CONN, now_ms(t0))?;
                    terminated = true;
                    continue;
                }
                if c.ike_down > down {
                    return Ok(());
                }
                if started.elapsed() > Duration::from_secs(20) {
                    return Err("setup+teardown took more than 20 s".into());
                }
                if recv_one(ei, &si, ia, t0, &mut buf, Duration::from_millis(200)) {
                    received += 1;
                }
            }
        };
        for _ in 0..20 {
            one(&mut ei, &mut c)?; // warm-up
        }
        for run in 1..=runs {
            let t = Instant::now();
            for _ in 0..n {
                one(&mut ei, &mut c)?;
            }
            let el = t.elapsed().as_secs_f64();
            let rate = n as f64 / el;
            println!("  run {run}: {rate:.0} setups/s ({:.1} µs/setup)", 1e6 * el / n as f64);
            rates.push(rate);
        }
        Ok((rates, c, ei.is_active(CONN), sent, received))
    });

    let ires = initiator.join().map_err(|_| "initiator thread panicked".to_string());
    stop.store(true, Ordering::Relaxed);
    let (rc, rsent, rrecv, ractive, rtimer, rstats) =
        responder.join().map_err(|_| "responder thread panicked".to_string())?;
    let (mut rates, ic, iactive, isent, irecv) = ires??;
    let med = median(&mut rates);
    let (mn, mx) = (
        rates.iter().cloned().fold(f64::MAX, f64::min),
        rates.iter().cloned().fold(0.0, f64::max),
    );
    println!(
        "  median {med:.0} setups/s = {:.1} µs/setup (min {mn:.0}, max {mx:.0})",
        1e6 / med
    );
    let total = (n * runs + 20) as u64;
    println!(
        "  initiator: {} CHILD up, {} IKE down, sent {isent}, received {irecv}; responder: {} CHILD up, {} IKE down, sent {rsent}, received {rrecv}",
        ic.child_up, ic.ike_down, rc.child_up, rc.ike_down
    );
    check(
        "loopback: every setup completed on both sides",
        ic.child_up == total && rc.child_up == total && ic.ike_down == total && rc.ike_down == total,
        format!("expected {total}; initiator {ic:?}; responder {rc:?}"),
    );
    check(
        "loopback: nothing left active after the last terminate",
        !iactive && !ractive && rtimer.is_none(),
        format!("initiator active {iactive}, responder active {ractive}, responder timer {rtimer:?}"),
    );
    check(
        "loopback: no datagram lost or retransmitted (sent == received both ways)",
        isent == rrecv && rsent == irecv,
        format!("initiator sent {isent} / responder received {rrecv}; responder sent {rsent} / initiator received {irecv}; responder stats {rstats:?}"),
    );
    println!(
        "RESULT loopback setups_per_s={med:.1} us_per_setup={:.2} min={mn:.1} max={mx:.1} n={n} runs={runs}",
        1e6 / med
    );
    Ok(med)
}

// ---- checks -------------------------------------------------------------

static FAILED_CHECKS: AtomicU32 = AtomicU32::new(0);

fn check(what: &str, ok: bool, detail: String) {
    if ok {
        println!("CHECK ok   {what}");
    } else {
        FAILED_CHECKS.fetch_add(1, Ordering::Relaxed);
        println!("CHECK FAIL {what}: {detail}");
    }
}

fn checks(o: &Opts) {
    println!("== cleanup and robustness checks (in-process)");
    // 1. A long sequential loop: everything gone afterwards, memory flat, rate flat.
    let n = if o.quick { 4000 } else { 20000 };
    let mut p = InProc::new(o.seeded);
    for _ in 0..200 {
        p.once();
    }
    let chunk = n / 4;
    let rss0 = rss_kib();
    let mut chunk_rates = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..4 {
        let t = Instant::now();
        for _ in 0..chunk {
            p.once();
        }
        chunk_rates.push(chunk as f64 / t.elapsed().as_secs_f64());
        rss.push(rss_kib());
    }
    println!(
        "  {n} setups in 4 chunks: rate {:?} setups/s; VmRSS {rss0} KiB -> {:?} KiB",
        chunk_rates.iter().map(|r| r.round() as u64).collect::<Vec<_>>(),
        rss
    );
    check(
        "after terminate nothing is active and no timer is pending, on either side",
        !p.i.is_active(CONN) && !p.r.is_active(CONN) && p.i.poll_timeout().is_none() && p.r.poll_timeout().is_none(),
        format!(
            "initiator active {} timer {:?}; responder active {} timer {:?}",
            p.i.is_active(CONN),
            p.i.poll_timeout(),
            p.r.is_active(CONN),
            p.r.poll_timeout()
        ),
    );
    check(
        "ChildSaDown for every ChildSaUp, IkeSaDown for every IkeSaUp, no failures",
        p.ic.child_up == p.ic.child_down
            && p.rc.child_up == p.rc.child_down
            && p.ic.ike_up == p.ic.ike_down
            && p.rc.ike_up == p.rc.ike_down
            && p.ic.failed + p.rc.failed == 0,
        format!("initiator {:?}; responder {:?}", p.ic, p.rc),
    );
    check(
        "no datagram refused (engine stats all zero) and every transmit addressed to the peer",
        p.i.stats == Default::default() && p.r.stats == Default::default() && p.misrouted == 0,
        format!(
            "initiator {:?}; responder {:?}; misrouted {}",
            p.i.stats, p.r.stats, p.misrouted
        ),
    );
    let growth = rss.last().copied().unwrap_or(0).saturating_sub(rss[0]);
    check(
        "resident memory flat over the last 3/4 of the loop (< 1 MiB growth)",
        growth < 1024,
        format!("VmRSS grew {growth} KiB over {} setups", 3 * chunk),
    );
    let (first, last) = (chunk_rates[0], *chunk_rates.last().unwrap());
    check(
        "rate flat over the loop (last chunk >= 80% of the first)",
        last >= 0.8 * first,
        format!("first chunk {first:.0}/s, last {last:.0}/s"),
    );

    // 2. Half-open responder SA: the initiator's IKE_AUTH never arrives.
    let mut p = InProc::new(o.seeded);
    let mut t = Millis(0);
    p.i.initiate(CONN, t).unwrap();
    let init = p.i.poll_transmit().unwrap();
    p.r.handle_datagram(t, init.remote, init.local, &init.data);
    let resp = p.r.poll_transmit().unwrap();
    p.i.handle_datagram(t, resp.remote, resp.local, &resp.data);
    // IKE_AUTH (and its retransmissions) are lost; let the initiator give up.
    let day = Millis(24 * 3600 * 1000);
    while t < day {
        while p.i.poll_transmit().is_some() {}
        while p.r.poll_transmit().is_some() {}
        let next = [p.i.poll_timeout(), p.r.poll_timeout()].into_iter().flatten().min();
        match next {
            Some(n) if n < day => t = n,
            _ => t = day,
        }
        p.i.handle_timeout(t);
        p.r.handle_timeout(t);
    }
    drain(&mut p.i, &mut p.ic);
    drain(&mut p.r, &mut p.rc);
    println!(
        "  half-open probe: initiator gave up: {} (failures {}); after 24 h of simulated time the responder still holds the SA: {}, responder timer {:?}",
        !p.i.is_active(CONN),
        p.ic.failed,
        p.r.is_active(CONN),
        p.r.poll_timeout()
    );
    check(
        "a half-open responder IKE SA (IKE_AUTH never arrives) expires",
        !p.r.is_active(CONN),
        "the responder keeps it forever: no timer covers State::InitAnswered (poll_timeout() is None), \
         so each lost/abandoned IKE_SA_INIT leaks an IkeSa with its keys"
            .into(),
    );

    // 3. With that stale half-open SA in place, a new SA is set up and the
    //    responder terminates "s2s": which SA does it delete?
    p.ic = Counts::default();
    p.rc = Counts::default();
    p.t0 = Instant::now() - Duration::from_millis(day.0 + 1000);
    p.i.initiate(CONN, p.now()).unwrap();
    p.pump();
    let up = p.ic.child_up == 1 && p.rc.child_up == 1;
    let r = p.r.terminate(CONN, p.now());
    p.pump();
    println!(
        "  stale half-open + new SA: set up {up}; responder terminate({CONN}) -> {r:?}; initiator IKE down {}, responder IKE down {}, initiator still active {}, responder still active {}",
        p.ic.ike_down,
        p.rc.ike_down,
        p.i.is_active(CONN),
        p.r.is_active(CONN)
    );
    check(
        "terminate() deletes the established IKE SA even when a stale half-open one exists",
        up && p.ic.ike_down == 1 && p.rc.ike_down == 1 && !p.i.is_active(CONN),
        "terminate() takes the first SA of the connection by slot (the stale half-open one), \
         removes it silently, and leaves the established SA up on both sides"
            .into(),
    );

    // 4. terminate() right after initiate() (IKE_SA_INIT already on the wire):
    //    the responder's half-open SA is never told and also stays.
    let mut p = InProc::new(o.seeded);
    p.i.initiate(CONN, Millis(0)).unwrap();
    let init = p.i.poll_transmit().unwrap();
    p.i.terminate(CONN, Millis(1)).unwrap();
    p.r.handle_datagram(Millis(1), init.remote, init.local, &init.data);
    let resp = p.r.poll_transmit().unwrap();
    p.i.handle_datagram(Millis(2), resp.remote, resp.local, &resp.data);
    let mut t = Millis(2);
    for _ in 0..100 {
        t = Millis(t.0 + 3600 * 1000);
        p.r.handle_timeout(t);
    }
    check(
        "initiate then terminate before the IKE_SA_INIT response: responder does not keep the SA forever",
        !p.r.is_active(CONN),
        format!(
            "responder still active after 100 h simulated (initiator active {}, unknown_spi on initiator {})",
            p.i.is_active(CONN),
            p.i.stats.unknown_spi
        ),
    );
}

fn main() {
    let o = opts();
    TIMERS.store(o.timers, Ordering::Relaxed);
    println!(
        "ikeda IKEv2 setup bench: {}, esp {}, PSK; rng {}; lifetimes/DPD {}",
        ike(),
        esp(),
        if o.seeded {
            "SeededRng (distinct seed per engine)"
        } else {
            "SystemRng"
        },
        if o.timers { "on (--timers)" } else { "off" }
    );
    let only = o.only.clone().unwrap_or_default();
    let t = Instant::now();
    if only.is_empty() || only == "inproc" {
        bench_inproc(&o);
    }
    if only.is_empty() || only == "loopback" {
        if let Err(e) = bench_loopback(&o) {
            println!("  loopback benchmark not run: {e}");
            println!("RESULT loopback error={}", e.replace(' ', "_"));
        }
    }
    if only.is_empty() || only == "checks" {
        checks(&o);
    }
    let failed = FAILED_CHECKS.load(Ordering::Relaxed);
    println!("RESULT checks_failed={failed} total_s={:.1}", t.elapsed().as_secs_f64());
}
