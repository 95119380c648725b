//! Reliability of IKE exchanges (RFC 7296 §2.1, §2.3): the requester
//! retransmits until a response arrives or it gives up; the responder
//! answers a retransmitted request with the response it cached, without
//! processing it again.
//!
//! Window size 1 (no SET_WINDOW_SIZE): one outstanding request per
//! direction per IKE SA, message IDs in order.

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

/// What a requester should do at a timer expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTimer {
    /// Nothing due yet (or nothing outstanding).
    Idle,
    /// Send these bytes again (retransmission number `try_no`).
    Resend { try_no: u32 },
    /// Every retransmission went unanswered.
    GiveUp { sent: u32 },
}

/// The outstanding request of one IKE SA's requester side.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    /// Next message ID to use.
    next_id: u32,
    outstanding: Option<Outstanding>,
}

#[derive(Debug, Clone)]
struct Outstanding {
    id: u32,
    data: Vec<u8>,
    sends: u32,
    due: Millis,
}

impl Requester {
    pub fn new() -> Self {
        Self::default()
    }

    /// The message ID the next request will carry.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    pub fn busy(&self) -> bool {
        self.outstanding.is_some()
    }

    /// How many times the outstanding request has been sent (0: none).
    pub fn sends(&self) -> u32 {
        self.outstanding.as_ref().map_or(0, |o| o.sends)
    }

    /// Record a request as sent at `now`; returns its message ID.
    /// Fails if one is already outstanding (window size 1).
    pub fn send(&mut self, data: Vec<u8>, now: Millis, p: &RetransmitPolicy) -> Result<u32, &'static str> {
        if self.outstanding.is_some() {
            return Err("a request is already outstanding (window size 1)");
        }
        let id = self.next_id;
        self.outstanding = Some(Outstanding {
            id,
            data,
            sends: 1,
            due: now + p.wait_after(0),
        });
        Ok(id)
    }

    /// A response with message ID `id` arrived: true if it answers the
    /// outstanding request (which is then done), false if it is stray or
    /// a duplicate (to be dropped).
    pub fn response(&mut self, id: u32) -> bool {
        match &self.outstanding {
            Some(o) if o.id == id => {
                self.outstanding = None;
                self.next_id = id.wrapping_add(1);
                true
            }
            _ => false,
        }
    }

    /// The bytes of the outstanding request (for a resend).
    pub fn outstanding_data(&self) -> Option<&[u8]> {
        self.outstanding.as_ref().map(|o| o.data.as_slice())
    }

    pub fn poll_timeout(&self) -> Option<Millis> {
        self.outstanding.as_ref().map(|o| o.due)
    }

    pub fn handle_timeout(&mut self, now: Millis, p: &RetransmitPolicy) -> RequestTimer {
        let Some(o) = self.outstanding.as_mut() else {
            return RequestTimer::Idle;
        };
        if now < o.due {
            return RequestTimer::Idle;
        }
        if o.sends > p.tries {
            let sent = o.sends;
            self.outstanding = None;
            return RequestTimer::GiveUp { sent };
        }
        let try_no = o.sends;
        o.due = now + p.wait_after(o.sends);
        o.sends += 1;
        RequestTimer::Resend { try_no }
    }
}

/// What a responder should do with a request's message ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestCheck {
    /// The next request in order: process it.
    New,
    /// The request we answered last: send the cached response again.
    Retransmit(Vec<u8>),
    /// Older, or out of the window: drop it (RFC 7296 §2.3).
    Drop,
}

/// The responder side of one IKE SA.
#[derive(Debug, Clone, Default)]
pub struct Responder {
    /// Message ID expected next.
    expected: u32,
    last: Option<(u32, Vec<u8>)>,
}

impl Responder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn expected(&self) -> u32 {
        self.expected
    }

    pub fn check(&self, id: u32) -> RequestCheck {
        if id == self.expected {
            return RequestCheck::New;
        }
        match &self.last {
            Some((last, data)) if *last == id => RequestCheck::Retransmit(data.clone()),
            _ => RequestCheck::Drop,
        }
    }

    /// Record the response to request `id` (which `check` said was new).
    pub fn answered(&mut self, id: u32, response: Vec<u8>) {
        self.last = Some((id, response));
        self.expected = id.wrapping_add(1);
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
        let mut r = Requester::new();
        assert_eq!(r.send(b"req".to_vec(), Millis(0), &p), Ok(0));
        assert_eq!(r.poll_timeout(), Some(Millis(u64::MAX)));
    }

    #[test]
    fn strongswan_schedule_and_give_up() {
        let p = RetransmitPolicy::default();
        let mut r = Requester::new();
        assert_eq!(r.send(b"req".to_vec(), Millis(0), &p), Ok(0));
        assert!(r.send(b"again".to_vec(), Millis(0), &p).is_err());
        let mut now;
        let mut resends = vec![];
        loop {
            now = r.poll_timeout().unwrap();
            match r.handle_timeout(now, &p) {
                RequestTimer::Resend { try_no } => resends.push((try_no, now.0)),
                RequestTimer::GiveUp { sent } => {
                    assert_eq!(sent, 6);
                    break;
                }
                RequestTimer::Idle => panic!("timer fired early"),
            }
        }
        assert_eq!(resends, vec![(1, 4000), (2, 11200), (3, 24160), (4, 47488), (5, 89478)]);
        assert_eq!(now.0, 165_060); // 165 s, as strongSwan
        assert!(!r.busy());
    }

    #[test]
    fn responses_match_ids_and_duplicates_are_dropped() {
        let p = RetransmitPolicy::default();
        let mut r = Requester::new();
        let id = r.send(vec![1], Millis(0), &p).unwrap();
        assert!(!r.response(id + 1));
        assert!(r.response(id));
        assert!(!r.response(id), "a duplicate response is not a second answer");
        assert_eq!(r.next_id(), 1);
        assert_eq!(r.handle_timeout(Millis(10_000), &p), RequestTimer::Idle);
    }

    #[test]
    fn responder_caches_its_last_response() {
        let mut s = Responder::new();
        assert_eq!(s.check(0), RequestCheck::New);
        assert_eq!(s.check(1), RequestCheck::Drop);
        s.answered(0, b"resp0".to_vec());
        assert_eq!(s.check(0), RequestCheck::Retransmit(b"resp0".to_vec()));
        assert_eq!(s.check(1), RequestCheck::New);
        s.answered(1, b"resp1".to_vec());
        assert_eq!(s.check(0), RequestCheck::Drop);
    }
}
