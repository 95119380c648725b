//! Anti-replay window, RFC 4303 §3.4.3, kept as an RFC 6479 bitmap: a ring
//! of 64-bit blocks with one spare block, so sliding the window clears
//! whole blocks instead of shifting bits.
//!
//! Two steps, as RFC 4303 §3.4.3 orders them: [`ReplayWindow::check`]
//! before the ICV is verified (cheap rejection of duplicates), and
//! [`ReplayWindow::commit`] only after it verified, so a forged packet can
//! never move the window.
//!
//! Extended sequence numbers: the receiver infers the high 32 bits from the
//! low 32 bits it sees, as RFC 4303 Appendix A2.2 describes
//! ([`ReplayWindow::infer_seq`]).

use core::fmt;

const BLOCK_BITS: u64 = 64;
/// Default window, in packets.
pub const DEFAULT_WINDOW: u32 = 1024;
/// Largest window we accept.
pub const MAX_WINDOW: u32 = 4096;

/// Why `check` refused a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Left of the window: too old to tell, so refused.
    TooOld,
    /// Seen already.
    Replayed,
    /// Zero is never sent (the first packet is 1, RFC 4303 §3.3.3).
    Zero,
}

/// Replay state of one inbound SA.
pub struct ReplayWindow {
    window: u64,
    /// Highest sequence number committed so far (0 = none yet).
    top: u64,
    bitmap: Box<[u64]>,
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayWindow(size={}, top={})", self.window, self.top)
    }
}

impl ReplayWindow {
    /// A window of `size` packets (rounded up to a multiple of 64, at
    /// least 64, at most [`MAX_WINDOW`]).
    pub fn new(size: u32) -> Self {
        let size = (size.clamp(1, MAX_WINDOW) as u64).div_ceil(BLOCK_BITS) * BLOCK_BITS;
        let blocks = (size / BLOCK_BITS + 1) as usize;
        ReplayWindow {
            window: size,
            top: 0,
            bitmap: vec![0; blocks].into_boxed_slice(),
        }
    }

    pub fn size(&self) -> u32 {
        self.window as u32
    }

    /// Highest sequence number accepted so far.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Number of sequence numbers inside the window that have been seen
    /// (for `show child`).
    pub fn seen_in_window(&self) -> u32 {
        let lo = self.top.saturating_sub(self.window - 1).max(1);
        (lo..=self.top).filter(|s| self.bit(*s)).count() as u32
    }

    /// RFC 4303 Appendix A2.2: infer the full 64-bit sequence number from
    /// the 32 low-order bits received, given the window position.
    pub fn infer_seq(&self, seq_lo: u32) -> u64 {
        let w = self.window;
        let th = (self.top >> 32) as u32;
        let tl = self.top as u32;
        let bottom = tl.wrapping_sub(w as u32).wrapping_add(1);
        let seqh = if tl as u64 >= w - 1 {
            // Case A: the window lies within one sequence number subspace.
            if seq_lo >= bottom {
                th
            } else {
                th.wrapping_add(1)
            }
        } else {
            // Case B: the window spans two subspaces.
            if seq_lo >= bottom {
                // Belongs to the previous subspace; there is none before 0.
                match th.checked_sub(1) {
                    Some(h) => h,
                    None => return seq_lo as u64 | 1 << 63, // impossible: fails check as too old
                }
            } else {
                th
            }
        };
        (seqh as u64) << 32 | seq_lo as u64
    }

    /// Would `seq` be accepted? Does not change the window.
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if seq & 1 << 63 != 0 && self.top < 1 << 63 {
            return Err(ReplayError::TooOld);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.window {
            return Err(ReplayError::TooOld);
        }
        if self.bit(seq) {
            return Err(ReplayError::Replayed);
        }
        Ok(())
    }

    /// Record `seq` as received (after its ICV verified). `check` must have
    /// accepted it.
    pub fn commit(&mut self, seq: u64) {
        let n = self.bitmap.len() as u64;
        if seq > self.top {
            let old_block = self.top / BLOCK_BITS;
            let new_block = seq / BLOCK_BITS;
            // Clear the blocks the window slides over (at most all of them).
            let steps = (new_block - old_block).min(n);
            for i in 1..=steps {
                self.bitmap[((old_block + i) % n) as usize] = 0;
            }
            self.top = seq;
        }
        let idx = ((seq / BLOCK_BITS) % n) as usize;
        self.bitmap[idx] |= 1 << (seq % BLOCK_BITS);
    }

    fn bit(&self, seq: u64) -> bool {
        let n = self.bitmap.len() as u64;
        self.bitmap[((seq / BLOCK_BITS) % n) as usize] & (1 << (seq % BLOCK_BITS)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table-driven, in the spirit of WireGuard's selftest/counter.c:
    /// (sequence number, expected result of check, commit if accepted).
    #[test]
    fn table() {
        use ReplayError::*;
        let w = 128u64;
        let mut r = ReplayWindow::new(w as u32);
        let t: &[(u64, Result<(), ReplayError>)] = &[
            (0, Err(Zero)),
            (1, Ok(())),
            (1, Err(Replayed)),
            (3, Ok(())),
            (2, Ok(())),
            (2, Err(Replayed)),
            (w, Ok(())),
            (w + 1, Ok(())),
            (2, Err(Replayed)),
            (4, Ok(())),
            (w + 2, Ok(())),
            (3, Err(Replayed)), // still inside the window, and seen
            (5, Ok(())),        // inside (top - 5 < w) and new
            (w + 2 + w, Ok(())),
            (w + 2, Err(TooOld)), // now exactly one window behind the top
            (10 * w, Ok(())),
            (10 * w - w + 1, Ok(())),
            (10 * w - w, Err(TooOld)),
            (10 * w - 1, Ok(())),
            (10 * w - 1, Err(Replayed)),
            (u32::MAX as u64 + 10, Ok(())),
            (10 * w + 1, Err(TooOld)),
        ];
        for (i, (seq, want)) in t.iter().enumerate() {
            let got = r.check(*seq);
            assert_eq!(got, *want, "row {i}: seq {seq}");
            if got.is_ok() {
                r.commit(*seq);
            }
        }
    }

    #[test]
    fn every_offset_inside_the_window_is_accepted_once() {
        for size in [64u32, 1024, 4096] {
            let mut r = ReplayWindow::new(size);
            let top = 100_000u64;
            r.commit(top);
            for back in 1..size as u64 {
                assert_eq!(r.check(top - back), Ok(()), "size {size} back {back}");
                r.commit(top - back);
                assert_eq!(r.check(top - back), Err(ReplayError::Replayed));
            }
            assert_eq!(r.check(top - size as u64), Err(ReplayError::TooOld));
            assert_eq!(r.seen_in_window(), size);
        }
    }

    #[test]
    fn sliding_far_clears_old_bits() {
        let mut r = ReplayWindow::new(64);
        for s in 1..=64 {
            r.commit(s);
        }
        r.commit(64 + 64 * 3 + 5);
        // Numbers that map to the same bits but are new must be accepted.
        assert_eq!(r.check(64 + 64 * 3 + 1), Ok(()));
        assert_eq!(r.check(64 + 64 * 3 + 5), Err(ReplayError::Replayed));
    }

    #[test]
    fn default_and_limits() {
        assert_eq!(ReplayWindow::new(DEFAULT_WINDOW).size(), 1024);
        assert_eq!(ReplayWindow::new(100_000).size(), MAX_WINDOW);
        assert_eq!(ReplayWindow::new(0).size(), 64);
        assert_eq!(ReplayWindow::new(100).size(), 128);
    }

    #[test]
    fn esn_inference_rfc4303_appendix_a() {
        let mut r = ReplayWindow::new(64);
        // Start: low numbers are in subspace 0.
        assert_eq!(r.infer_seq(5), 5);
        // Case A, window inside subspace 0 near its end: a small low half
        // means we wrapped into subspace 1.
        r.commit(0xffff_fff0);
        assert_eq!(r.infer_seq(0xffff_fff5), 0xffff_fff5);
        assert_eq!(r.infer_seq(3), 0x1_0000_0003);
        // Case B, window spans subspaces 0 and 1.
        r.commit(0x1_0000_0010);
        assert_eq!(r.infer_seq(0xffff_fff8), 0xffff_fff8);
        assert_eq!(r.infer_seq(0x20), 0x1_0000_0020);
        assert_eq!(r.check(r.infer_seq(0xffff_fff8)), Ok(()));
    }
}
