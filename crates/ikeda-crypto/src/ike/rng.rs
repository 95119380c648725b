//! Randomness, passed in by the caller.
//!
//! The IKE engine must be replayable in a simulator, so nothing in this
//! layer draws randomness on its own: nonces, SPIs, IVs and private keys all
//! come from a [`Rng`] the caller owns.

use aws_lc_rs::digest;
use zeroize::Zeroizing;

/// A source of random bytes.
pub trait Rng {
    /// Fill `out` entirely.
    fn fill(&mut self, out: &mut [u8]);
}

/// Any `FnMut(&mut [u8])` is a [`Rng`].
impl<F: FnMut(&mut [u8])> Rng for F {
    fn fill(&mut self, out: &mut [u8]) {
        self(out)
    }
}

/// The system CSPRNG (aws-lc's `RAND_bytes`), for the daemon.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRng;

impl Rng for SystemRng {
    fn fill(&mut self, out: &mut [u8]) {
        // AWS-LC aborts the process itself if its DRBG cannot be seeded; an
        // error here would mean the same, and carrying on with predictable
        // keys is never acceptable.
        if aws_lc_rs::rand::fill(out).is_err() {
            panic!("system random number generator failed");
        }
    }
}

/// A deterministic generator for tests and simulations: block `n` is
/// `SHA-256(seed || n)` with `n` a 64-bit big-endian counter.
///
/// The same seed always yields the same stream, so a simulated run can be
/// replayed exactly. Not for production keys: it is only as secret as its
/// seed and has no reseeding or backtracking resistance.
pub struct SeededRng {
    seed: Zeroizing<Vec<u8>>,
    counter: u64,
    block: Zeroizing<[u8; 32]>,
    used: usize,
}

impl SeededRng {
    pub fn new(seed: &[u8]) -> Self {
        SeededRng {
            seed: Zeroizing::new(seed.to_vec()),
            counter: 0,
            block: Zeroizing::new([0u8; 32]),
            used: 32,
        }
    }

    /// Convenience: seed from an integer (a simulator's run number).
    pub fn from_u64(seed: u64) -> Self {
        SeededRng::new(&seed.to_be_bytes())
    }

    fn refill(&mut self) {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&self.seed);
        ctx.update(&self.counter.to_be_bytes());
        self.block.copy_from_slice(ctx.finish().as_ref());
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl core::fmt::Debug for SeededRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SeededRng(counter {})", self.counter)
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            if self.used == self.block.len() {
                self.refill();
            }
            let n = (self.block.len() - self.used).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.block[self.used..self.used + n]);
            self.used += n;
            done += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::testutil::h;

    #[test]
    fn seeded_rng_is_deterministic_and_split_invariant() {
        let mut a = SeededRng::from_u64(7);
        let mut b = SeededRng::from_u64(7);
        let mut whole = [0u8; 100];
        a.fill(&mut whole);
        let mut parts = [0u8; 100];
        let (x, rest) = parts.split_at_mut(3);
        let (y, z) = rest.split_at_mut(40);
        b.fill(x);
        b.fill(y);
        b.fill(z);
        assert_eq!(whole, parts);
        let mut c = SeededRng::from_u64(8);
        let mut other = [0u8; 100];
        c.fill(&mut other);
        assert_ne!(whole, other);
        // Block 0 = SHA-256(00..07 || 00..00); python3 -c "import hashlib;
        // print(hashlib.sha256(bytes(7)+b'\x07'+bytes(8)).hexdigest())"
        assert_eq!(
            &whole[..32],
            &h("e8dd943d366caae7beb706c6ae668eff0a257fc56edc27d7b2fa1c31bdf2eec1")[..]
        );
    }

    #[test]
    fn closures_and_system_rng_are_rngs() {
        let mut n = 0u8;
        let mut counting = |out: &mut [u8]| {
            for b in out {
                *b = n;
                n = n.wrapping_add(1);
            }
        };
        let mut buf = [0u8; 4];
        Rng::fill(&mut counting, &mut buf);
        assert_eq!(buf, [0, 1, 2, 3]);
        let mut s = [0u8; 32];
        SystemRng.fill(&mut s);
        assert_ne!(s, [0u8; 32]);
    }
}
