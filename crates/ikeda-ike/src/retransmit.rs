//! When a message of ours that waits for an answer goes out again (RFC 7296
//! §2.1, §2.4; RFC 2409 has none and implementations follow IKEv2's): one
//! schedule for both versions, kept by the task manager ([`crate::task`])
//! for every exchange in flight.

use crate::Millis;
use std::time::Duration;

/// When to retransmit and when to give up. The defaults are strongSwan's
/// (`retransmit_timeout = 4.0`, `retransmit_base = 1.8`, `retransmit_tries
/// = 5`): resends after 4, 7.2, 13, 23.3 and 42 s, then 75.6 s more before
/// the exchange is declared dead, 165 s in all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetransmitPolicy {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Default for RetransmitPolicy {
    fn default() -> Self {
        RetransmitPolicy {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
        }
    }
}

impl RetransmitPolicy {
    /// How long to wait after send number `n` (0 = the original send).
    /// Saturates at `Duration::MAX` (never answered in practice) rather
    /// than panic as `Duration::mul_f64` does on overflow or NaN: the values
    /// come from the config.
    pub fn wait_after(&self, n: u32) -> Duration {
        let factor = self.base.powi(n.min(i32::MAX as u32) as i32);
        Duration::try_from_secs_f64(self.timeout.as_secs_f64() * factor).unwrap_or(Duration::MAX)
    }
}

/// What a message waiting for an answer needs at a timer expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTimer {
    /// Nothing due yet.
    Idle,
    /// Send the bytes again (retransmission number `try_no`).
    Resend { try_no: u32 },
    /// The original and `tries` retransmissions went unanswered.
    GiveUp { sent: u32 },
}

/// One message of ours that waits for the peer's next: its bytes, how
/// many times it went out, and when it goes again.
#[derive(Debug, Clone)]
pub struct Retransmission {
    data: Vec<u8>,
    sends: u32,
    due: Millis,
}

impl Retransmission {
    /// Sent once, at `now`.
    pub fn new(data: Vec<u8>, now: Millis, p: &RetransmitPolicy) -> Retransmission {
        Retransmission {
            data,
            sends: 1,
            due: now + p.wait_after(0),
        }
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// How many times it went out so far.
    pub fn sends(&self) -> u32 {
        self.sends
    }

    pub fn due(&self) -> Millis {
        self.due
    }

    /// The timer fired: resend (and when next), or give up once the
    /// original and `p.tries` resends have each had their wait.
    pub fn poll(&mut self, now: Millis, p: &RetransmitPolicy) -> RequestTimer {
        if now < self.due {
            return RequestTimer::Idle;
        }
        if self.sends > p.tries {
            return RequestTimer::GiveUp { sent: self.sends };
        }
        let try_no = self.sends;
        self.due = now + p.wait_after(self.sends);
        self.sends += 1;
        RequestTimer::Resend { try_no }
    }

    /// The octets it keeps.
    pub fn held_bytes(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 point 8: `Duration::mul_f64` panics when the product
    /// overflows; a huge timeout, base or try number must saturate instead.
    #[test]
    fn huge_values_saturate_instead_of_panicking() {
        let p = RetransmitPolicy {
            timeout: Duration::from_secs(1 << 62),
            base: 4.0,
            tries: u32::MAX,
        };
        assert_eq!(p.wait_after(0), Duration::from_secs(1 << 62));
        assert_eq!(p.wait_after(40), Duration::MAX);
        assert_eq!(p.wait_after(u32::MAX), Duration::MAX);
        let odd = RetransmitPolicy { base: f64::NAN, ..p };
        assert_eq!(odd.wait_after(3), Duration::MAX);
        let r = Retransmission::new(b"req".to_vec(), Millis(0), &p);
        assert_eq!(r.due(), Millis(u64::MAX));
    }

    #[test]
    fn strongswan_schedule_and_give_up() {
        let p = RetransmitPolicy::default();
        let mut r = Retransmission::new(b"req".to_vec(), Millis(0), &p);
        let mut resends = vec![];
        let now = loop {
            let now = r.due();
            assert_eq!(
                r.poll(Millis(now.0 - 1), &p),
                RequestTimer::Idle,
                "not before it is due"
            );
            match r.poll(now, &p) {
                RequestTimer::Resend { try_no } => resends.push((try_no, now.0)),
                RequestTimer::GiveUp { sent } => {
                    assert_eq!(sent, 6);
                    break now;
                }
                RequestTimer::Idle => panic!("timer fired early"),
            }
        };
        assert_eq!(resends, vec![(1, 4000), (2, 11200), (3, 24160), (4, 47488), (5, 89478)]);
        assert_eq!(now.0, 165_060); // 165 s, as strongSwan
    }
}
