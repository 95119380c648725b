//! Issue 12 point 7: `ikeda pcap` streams (what it holds does not grow
//! with the file) and decrypts ESP without allocating per packet. A
//! counting allocator (this test binary's global allocator; it only adds
//! to thread-local counters) measures the Rust side of one run over
//! captures of 1 and 8 MiB written by `ikeda pcap-gen`, for each ESP
//! cipher family: the allocations and the peak of live bytes must be the
//! same for both sizes. (aws-lc's C code allocates through libc, out of
//! this counter's sight; `bench/pcap.sh` measures the whole process.)

use super::analyze::{Analyzer, Limits};
use super::gen::{generate, GenArgs};
use super::keys::KeyStore;
use super::read_capture;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(grow: i64, alloc: bool) {
    let _ = COUNTING.try_with(|on| {
        if !on.get() {
            return;
        }
        if alloc {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
        let _ = LIVE.try_with(|l| {
            l.set(l.get() + grow);
            let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
        });
    });
}

// SAFETY: every call is passed to the system allocator unchanged; the
// counters are const-initialised thread-locals (no allocation, no
// destructor) reached with try_with.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size() as i64, true);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size() as i64, true);
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-(l.size() as i64), false);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new as i64 - l.size() as i64, true);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, peak live bytes above the start) of reading `file` with
/// `keys`, packets only (the closing summary is not counted).
fn measure(file: &std::path::Path, keys: &std::path::Path) -> (u64, i64, u64) {
    let mut store = KeyStore::default();
    store.load(keys).unwrap();
    let mut a = Analyzer::new(Limits::default(), false, false).with_keys(store);
    let mut out = Vec::new();
    let mut format = String::new();
    let f = std::fs::File::open(file).unwrap();
    ALLOCS.with(|x| x.set(0));
    LIVE.with(|x| x.set(0));
    PEAK.with(|x| x.set(0));
    COUNTING.with(|c| c.set(true));
    let mut packets = 0;
    read_capture(
        f,
        |p| {
            packets += 1;
            a.packet(p, &mut out)
        },
        &mut format,
    )
    .unwrap();
    COUNTING.with(|c| c.set(false));
    a.finish(&format, &mut out);
    let text = String::from_utf8(out).unwrap();
    // Every packet decrypted, so the hot path was the whole run.
    let decrypted: u64 = text
        .lines()
        .filter_map(|l| l.split("; decrypted ").nth(1))
        .map(|r| r.split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(decrypted, packets, "{text}");
    assert!(!text.contains("ICV"), "{text}");
    (ALLOCS.with(Cell::get), PEAK.with(Cell::get), packets)
}

#[test]
fn decryption_allocates_nothing_per_packet_and_memory_is_flat() {
    for esp in ["aes128gcm16", "aes256-sha256", "chacha20poly1305"] {
        let dir = std::env::temp_dir().join(format!("ikeda-pcap-alloc-{esp}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keys = dir.join("keys");
        let mut runs = Vec::new();
        for mib in [1, 8] {
            let out = dir.join(format!("{mib}.pcap"));
            std::fs::create_dir_all(&dir).unwrap();
            let args = GenArgs {
                out: out.clone(),
                keys: keys.clone(),
                size_mib: mib,
                frame: 1400,
                esp: esp.into(),
            };
            if mib == 8 {
                // The same keys for both files: a fresh log each time.
                let _ = std::fs::remove_dir_all(&keys);
            }
            generate(&args).unwrap();
            runs.push(measure(&out, &keys));
        }
        let ((a1, p1, n1), (a8, p8, n8)) = (runs[0], runs[1]);
        println!("{esp}: {n1} packets: {a1} allocations, peak {p1} B; {n8} packets: {a8} allocations, peak {p8} B");
        assert!(n8 > 7 * n1, "{n1} {n8}");
        assert_eq!(
            a1, a8,
            "{esp}: allocations grow with the packets ({n1}: {a1}, {n8}: {a8})"
        );
        assert_eq!(
            p1, p8,
            "{esp}: peak live bytes grow with the file ({n1}: {p1}, {n8}: {p8})"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
