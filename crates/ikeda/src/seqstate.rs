//! Outbound sequence numbers of manually keyed SAs, kept across restarts.
//!
//! AES-GCM and ChaCha20-Poly1305 take their nonce from the ESP sequence
//! number (RFC 4106 §3.1, RFC 7634 §2), and our CBC suites derive their IV
//! from it (IV = E_K(seq)). An SA negotiated by IKE gets fresh keys every
//! time, but a manual key outlives the process: if every start (or reload)
//! began again at 1, the same (key, nonce) pairs would go out again, which
//! breaks GCM's and Poly1305's authenticity and leaks plaintext XORs.
//!
//! So the numbers are reserved ahead, on disk: before the SA may use a
//! number, a state file says that every number up to a ceiling may have
//! been used (written to a new file, fsynced, renamed over the old one,
//! directory fsynced). The data plane sends only up to the ceiling it was
//! given (one atomic load per packet, [`ikeda_esp::SeqCeiling`]); the
//! control thread reserves the next [`STEP`] numbers when less than half a
//! step is left, off the per-packet path. After a restart, even one after
//! SIGKILL or a power cut, the SA resumes above the ceiling on file, so no
//! number is ever used twice; a crash wastes at most one step (a clean
//! restart too: the numbers reserved but unused are skipped).
//!
//! One file per (SPI, key), named after both: `seq-<SPI>-<fingerprint>`,
//! where the fingerprint is a SHA-256 of the SPI and keys (never the keys
//! themselves). A new key therefore starts at 1 in a new file, and going
//! back to an old key resumes where it stopped. A missing file is the
//! first use of that key; a file that does not read back exactly as we
//! write it is refused (never taken as 0), and the operator is told why.
//! When the space is used up (2^32 - 1 without ESN, RFC 4303 §3.3.3), the
//! SA is refused at start, and a running one stops sending (counted as
//! `seq_exhausted`, logged): the key must change.

use crate::private;
use ikeda_crypto::SecretBytes;
use ikeda_esp::SeqCeiling;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Numbers reserved at a time: 2^20. At most this many are skipped per
/// restart, so a 32-bit SA survives 4095 restarts under one key (ESN:
/// practically unlimited); the control thread tops up every ~10 ms, so
/// half a step (524,288 packets) is ample headroom even for a sender far
/// faster than this data plane.
pub const STEP: u64 = 1 << 20;

/// Where the ceiling of one SA is kept (a file; a fake in tests).
pub trait Persist {
    /// The ceiling last stored; `None` when there is none yet.
    fn load(&self) -> Result<Option<u64>, String>;
    /// Store `ceiling` durably; returns only when it would survive a crash.
    fn store(&mut self, ceiling: u64) -> Result<(), String>;
}

/// The state directory (`[daemon] state_dir`): ours, 0700, created (or
/// checked) when a manual SA first needs it, so a daemon without manual
/// keys never touches it.
#[derive(Debug, Clone)]
pub struct SeqStore {
    dir: PathBuf,
}

impl SeqStore {
    pub fn new(dir: &Path) -> SeqStore {
        SeqStore { dir: dir.to_path_buf() }
    }

    /// The file of the outbound SA with this SPI and these keys.
    pub fn slot(&self, spi: u32, enc_key: &SecretBytes, auth_key: Option<&SecretBytes>) -> Result<FileSlot, String> {
        private::ensure_dir(&self.dir, "state directory (daemon.state_dir)")?;
        let empty = SecretBytes::new(Vec::new());
        let auth = auth_key.unwrap_or(&empty);
        let fp = ikeda_crypto::sha256(&[
            b"ikeda manual SA sequence state v1\0",
            &spi.to_be_bytes(),
            &(enc_key.len() as u32).to_be_bytes(),
            enc_key.expose(),
            &(auth.len() as u32).to_be_bytes(),
            auth.expose(),
        ]);
        let fingerprint: String = fp.iter().map(|b| format!("{b:02x}")).collect();
        Ok(FileSlot {
            dir: self.dir.clone(),
            name: format!("seq-{spi:08x}-{}", &fingerprint[..16]),
            spi,
            fingerprint,
        })
    }
}

/// One SA's state file.
#[derive(Debug)]
pub struct FileSlot {
    dir: PathBuf,
    name: String,
    spi: u32,
    fingerprint: String,
}

impl FileSlot {
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    fn text(&self, ceiling: u64) -> String {
        format!(
            "# ikeda: outbound ESP sequence numbers reserved for a manually keyed SA.\n\
             # Every number up to `reserved` may have been sent; a restart resumes above it.\n\
             # Do not edit; delete it only together with a key change.\n\
             spi = {:#010x}\nkey_sha256 = {}\nreserved = {ceiling}\n",
            self.spi, self.fingerprint
        )
    }

    fn parse(&self, text: &str) -> Option<u64> {
        let mut fields = text.lines().filter(|l| !l.starts_with('#'));
        let spi = fields.next()?.strip_prefix("spi = ")?;
        let key = fields.next()?.strip_prefix("key_sha256 = ")?;
        let reserved: u64 = fields.next()?.strip_prefix("reserved = ")?.parse().ok()?;
        let exact = fields.next().is_none() && self.text(reserved) == text;
        (exact && spi == format!("{:#010x}", self.spi) && key == self.fingerprint).then_some(reserved)
    }
}

impl Persist for FileSlot {
    fn load(&self) -> Result<Option<u64>, String> {
        let path = self.path();
        match private::read(&path) {
            Err(e) => Err(format!("sequence state {}: {e}", path.display())),
            Ok(None) => Ok(None),
            Ok(Some(t)) => self.parse(&t).map(Some).ok_or_else(|| {
                format!(
                    "sequence state {} is corrupt: refusing to start this SA, since its numbers could repeat \
                     under the same key; set a new key (and SPI) on both gateways, or restore the file",
                    path.display()
                )
            }),
        }
    }

    fn store(&mut self, ceiling: u64) -> Result<(), String> {
        private::replace(&self.dir, &self.name, self.text(ceiling).as_bytes(), true)
            .map_err(|e| format!("sequence state {}: {e}", self.path().display()))
    }
}

/// The numbers reserved for one outbound SA.
#[derive(Debug)]
pub struct Reservation<P: Persist = FileSlot> {
    persist: P,
    ceiling: SeqCeiling,
    /// The highest sequence number this SA may use (2^32 - 1 or 2^64 - 1).
    limit: u64,
    step: u64,
    exhausted_logged: bool,
}

/// The highest sequence number with or without ESN (RFC 4303 §2.2.1, §3.3.3).
pub fn seq_limit(esn: bool) -> u64 {
    if esn {
        u64::MAX
    } else {
        u32::MAX as u64
    }
}

impl<P: Persist> Reservation<P> {
    /// Reserve the first numbers of an SA. Returns the reservation and the
    /// last number that may have been used before (the SA starts above it).
    pub fn resume(mut persist: P, esn: bool, step: u64) -> Result<(Self, u64), String> {
        let limit = seq_limit(esn);
        let last = persist.load()?.unwrap_or(0);
        if last >= limit {
            return Err(format!(
                "all {limit} sequence numbers of this key are used (RFC 4303 §3.3.3: no wrap){}: \
                 set a new key (and SPI) on both gateways",
                if esn { "" } else { "; esn = true gives 2^64" }
            ));
        }
        let ceiling = last.saturating_add(step).min(limit);
        persist.store(ceiling)?;
        let r = Reservation {
            persist,
            ceiling: Arc::new(AtomicU64::new(ceiling)),
            limit,
            step,
            exhausted_logged: false,
        };
        Ok((r, last))
    }

    /// The ceiling to hand to the SA.
    pub fn ceiling(&self) -> SeqCeiling {
        self.ceiling.clone()
    }

    /// With `used` the highest number the SA has sent: reserve the next
    /// step once less than half of one is left. The new ceiling reaches
    /// the data plane only after it is durable; when storing fails the SA
    /// keeps its old ceiling (it stalls rather than risk a repeat).
    /// Returns whether it moved.
    pub fn top_up(&mut self, used: u64) -> Result<bool, String> {
        let ceiling = self.ceiling.load(Ordering::Relaxed);
        if ceiling >= self.limit || ceiling.saturating_sub(used) > self.step / 2 {
            return Ok(false);
        }
        let next = ceiling.saturating_add(self.step).min(self.limit);
        self.persist.store(next)?;
        self.ceiling.store(next, Ordering::Release);
        Ok(true)
    }

    /// True the first time the SA is found to have used its last number.
    pub fn newly_exhausted(&mut self, used: u64) -> bool {
        let now = used >= self.limit && !self.exhausted_logged;
        self.exhausted_logged |= now;
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What a disk would hold: the last value whose store returned.
    #[derive(Clone, Default, Debug)]
    struct Disk {
        durable: Rc<RefCell<Option<u64>>>,
        fail: Rc<RefCell<bool>>,
    }

    impl Persist for Disk {
        fn load(&self) -> Result<Option<u64>, String> {
            Ok(*self.durable.borrow())
        }
        fn store(&mut self, ceiling: u64) -> Result<(), String> {
            if *self.fail.borrow() {
                return Err("disk full".into());
            }
            *self.durable.borrow_mut() = Some(ceiling);
            Ok(())
        }
    }

    /// A sender that obeys the ceiling, crashed at many points (between
    /// packets, between a top-up's store and its publication, with stores
    /// failing): the numbers sent across all runs never repeat.
    #[test]
    fn a_crash_anywhere_never_reuses_a_number() {
        let step = 16;
        let disk = Disk::default();
        let mut sent = std::collections::HashSet::new();
        // A deterministic mix of run lengths, some longer than a step.
        for (run, packets) in [0u64, 1, 7, 8, 9, 15, 16, 17, 40, 3, 100, 0, 33]
            .into_iter()
            .enumerate()
        {
            let (mut r, last) = Reservation::resume(disk.clone(), false, step).unwrap();
            let ceiling = r.ceiling();
            let mut seq = last;
            for p in 0..packets {
                // Every third run, storing fails for a while: the sender
                // must stall at the old ceiling, never pass it.
                *disk.fail.borrow_mut() = run % 3 == 2 && p > packets / 2;
                let _ = r.top_up(seq);
                if seq >= ceiling.load(Ordering::Acquire) {
                    continue;
                }
                seq += 1;
                assert!(sent.insert(seq), "run {run}: sequence number {seq} sent twice");
            }
            *disk.fail.borrow_mut() = false;
            // The crash: `r` is dropped without a word; only the disk stays.
            drop(r);
            assert!(
                disk.durable.borrow().unwrap() >= seq,
                "run {run}: the disk is behind the sender"
            );
        }
        assert!(sent.len() > 200, "{} numbers sent", sent.len());
    }

    #[test]
    fn the_ceiling_moves_only_after_the_store_and_stops_at_the_limit() {
        let disk = Disk::default();
        *disk.durable.borrow_mut() = Some(u32::MAX as u64 - 20);
        let (mut r, last) = Reservation::resume(disk.clone(), false, 16).unwrap();
        assert_eq!(last, u32::MAX as u64 - 20);
        assert_eq!(r.ceiling().load(Ordering::Relaxed), u32::MAX as u64 - 4);
        *disk.fail.borrow_mut() = true;
        assert!(r.top_up(u32::MAX as u64 - 10).is_err());
        assert_eq!(r.ceiling().load(Ordering::Relaxed), u32::MAX as u64 - 4);
        *disk.fail.borrow_mut() = false;
        assert!(r.top_up(u32::MAX as u64 - 10).unwrap());
        assert_eq!(r.ceiling().load(Ordering::Relaxed), u32::MAX as u64);
        assert!(!r.top_up(u32::MAX as u64).unwrap());
        assert!(r.newly_exhausted(u32::MAX as u64));
        assert!(!r.newly_exhausted(u32::MAX as u64));
        // A restart under the same key is refused, telling what to do.
        *disk.durable.borrow_mut() = Some(u32::MAX as u64);
        let e = Reservation::resume(disk.clone(), false, 16).unwrap_err();
        assert!(e.contains("set a new key"), "{e}");
        // With ESN the same key goes on.
        assert!(Reservation::resume(disk, true, 16).is_ok());
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ikeda-seq-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn files_resume_per_key_and_corruption_is_refused() {
        let d = tmp("files");
        let store = SeqStore::new(&d);
        let k1 = SecretBytes::new(vec![1; 20]);
        let k2 = SecretBytes::new(vec![2; 20]);
        let (r, last) = Reservation::resume(store.slot(0x1001, &k1, None).unwrap(), false, STEP).unwrap();
        assert_eq!((last, r.ceiling().load(Ordering::Relaxed)), (0, STEP));
        let (_, last) = Reservation::resume(store.slot(0x1001, &k1, None).unwrap(), false, STEP).unwrap();
        assert_eq!(last, STEP);
        // Another key: its own file, from 0; the first key's file stays.
        let (_, last) = Reservation::resume(store.slot(0x1001, &k2, None).unwrap(), false, STEP).unwrap();
        assert_eq!(last, 0);
        let path = store.slot(0x1001, &k1, None).unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("reserved = {}", 2 * STEP)), "{text}");
        assert!(!text.contains("0101010101"), "the key itself is in the file: {text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        for bad in [
            String::new(),
            text.replace("reserved = ", "reserved = x"),
            text.replace("spi = 0x00001001", "spi = 0x00001002"),
            text[..text.len() - 3].to_string(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let e = Reservation::resume(store.slot(0x1001, &k1, None).unwrap(), false, STEP).unwrap_err();
            assert!(e.contains("is corrupt") && e.contains("set a new key"), "{bad:?}: {e}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
