//! IKEv2 message fragmentation (RFC 7383) as a capture reader undoes it.
//!
//! A fragmented message travels as messages of one Encrypted Fragment
//! (SKF) payload each, numbered 1..=Total Fragments; each is encrypted and
//! integrity protected on its own (§2.5), and the receiver checks every
//! fragment's ICV before it keeps it (§2.6). So the caller decrypts each
//! fragment first and hands [`SkfReassembler::push`] only authentic
//! content; the reassembler joins the content of a message's fragments in
//! fragment-number order, and the first fragment's Next Payload names the
//! first payload of the joined chain (§2.5: the others carry 0).
//!
//! A message is told apart by its IKE SA (both SPIs), Message ID and
//! direction (the Initiator and Response flags), so a request and its
//! response in progress at once do not mix. A sender that fragments a
//! retransmission anew (smaller fragments after a PMTU problem) sends a
//! larger Total Fragments: the fragments held are dropped and reassembly
//! starts again; a fragment with a smaller Total Fragments than the one
//! in progress belongs to the older fragmentation and is ignored (§2.6.1).
//!
//! Everything a capture can grow is bounded ([`Limits`]): messages in
//! progress, fragments per message, bytes per message and in all, and
//! the capture time a message may take; whatever did not fit is counted
//! in [`Stats`]. The content held is decrypted IKE (identities, AUTH, EAP
//! and configuration payloads): it is zeroized when dropped.

use ikeda_wire::ikev2::{HeaderRepr, SkfPayload};
use std::collections::HashMap;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages being reassembled at once.
    pub max_messages: usize,
    /// Total Fragments accepted (RFC 7383 allows 65535; real senders use
    /// a handful: strongSwan's 10000-byte messages at its smallest
    /// fragment size are under 30).
    pub max_fragments: u16,
    /// Decrypted bytes of one message (the largest UDP payload).
    pub max_message_bytes: usize,
    /// Decrypted bytes held by all messages together.
    pub max_bytes: usize,
    /// Capture time from a message's first fragment seen to its last.
    pub timeout_nanos: u64,
}

impl Default for Limits {
    /// 64 messages, 128 fragments of a message, 64 KiB a message, 2 MiB in
    /// all, 60 s (the order of IKE's retransmission timeouts).
    fn default() -> Self {
        Limits {
            max_messages: 64,
            max_fragments: 128,
            max_message_bytes: 65535,
            max_bytes: 2 << 20,
            timeout_nanos: 60_000_000_000,
        }
    }
}

/// What happened to fragments, for the reader's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Authentic fragments pushed.
    pub fragments: u64,
    pub reassembled: u64,
    /// Fragments whose number was already held (retransmissions).
    pub duplicates: u64,
    /// Fragments of an older fragmentation of the message (smaller Total
    /// Fragments), ignored.
    pub stale: u64,
    /// Messages started again on a larger Total Fragments.
    pub restarted: u64,
    /// Messages dropped incomplete after the timeout, or at the end.
    pub timed_out: u64,
    /// Fragments not held because a limit was reached.
    pub over_limit: u64,
}

/// One message's fragments share these (RFC 7383 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageKey {
    pub spi_i: u64,
    pub spi_r: u64,
    pub message_id: u32,
    /// The Initiator flag: sent by the original initiator of the IKE SA.
    pub from_initiator: bool,
    pub response: bool,
}

/// One authentic fragment: its SKF numbers and decrypted content.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub number: u16,
    pub total: u16,
    /// The SKF payload's Next Payload (the message's first inner payload
    /// in fragment 1, 0 in the others).
    pub next_payload: u8,
    /// Capture frame, to name the fragments of a reassembled message.
    pub frame: u64,
    /// The decrypted content (padding removed).
    pub data: &'a [u8],
}

/// A message put together from all its fragments.
#[derive(Debug)]
pub struct Message {
    /// The first payload of `chain`: fragment 1's Next Payload.
    pub first_payload: u8,
    /// The decrypted payload chain.
    pub chain: Zeroizing<Vec<u8>>,
    /// Frames of the fragments, in fragment-number order.
    pub frames: Vec<u64>,
}

/// What [`SkfReassembler::push`] did with a fragment.
#[derive(Debug)]
pub enum Outcome {
    /// Held: `have` of `total` fragments are in.
    Held { have: u16, total: u16 },
    /// Its number was already held: a retransmission, ignored.
    Duplicate,
    /// Total Fragments below the `total` of the message in progress: a
    /// fragment of an older fragmentation, ignored (RFC 7383 §2.6.1).
    Stale { total: u16 },
    /// Not held: this limit was reached.
    OverLimit(&'static str),
    /// The last missing fragment: the whole message.
    Complete(Message),
}

impl Message {
    /// `3 SKF fragments (RFC 7383), frames 5, 6, 8`.
    pub fn from(&self) -> String {
        let frames: Vec<String> = self.frames.iter().map(u64::to_string).collect();
        format!(
            "{} SKF fragments (RFC 7383), frames {}",
            frames.len(),
            frames.join(", ")
        )
    }
}

/// Take the decrypted content `plain` of the authentic SKF payload `f` in
/// the message with header `repr`, seen in `frame` at `rel_time` seconds
/// into the capture: the whole message when this fragment completes it,
/// otherwise what the line should say of the fragment.
pub fn take(
    r: &mut SkfReassembler,
    repr: &HeaderRepr,
    f: &SkfPayload,
    frame: u64,
    rel_time: f64,
    plain: &[u8],
) -> Result<Message, String> {
    let key = MessageKey {
        spi_i: repr.initiator_spi,
        spi_r: repr.responder_spi,
        message_id: repr.message_id,
        from_initiator: repr.flags.initiator(),
        response: !repr.is_request(),
    };
    let fragment = Fragment {
        number: f.fragment_number,
        total: f.total_fragments,
        next_payload: f.first_payload.0,
        frame,
        data: plain,
    };
    match r.push((rel_time.max(0.0) * 1e9) as u64, key, fragment) {
        Outcome::Complete(whole) => Ok(whole),
        not_yet => Err(note(&not_yet, f.fragment_number, f.total_fragments)),
    }
}

/// What a line says of fragment `n` of `t` that did not complete a message.
pub fn note(o: &Outcome, n: u16, t: u16) -> String {
    match o {
        Outcome::Held { have, total } => {
            format!("SKF fragment {n}/{t}, ICV verified; {have} of {total} held for reassembly (RFC 7383)")
        }
        Outcome::Duplicate => format!("SKF fragment {n}/{t} again: a retransmission, ignored"),
        Outcome::Stale { total } => format!(
            "SKF fragment {n}/{t} of an older fragmentation of the message ({total} fragments now), ignored \
             (RFC 7383 §2.6.1)"
        ),
        Outcome::OverLimit(why) => format!("SKF fragment {n}/{t} not reassembled: {why}"),
        Outcome::Complete(m) => format!(
            "SKF fragment {n}/{t} completed the message ({} fragments)",
            m.frames.len()
        ),
    }
}

#[derive(Debug)]
struct Pending {
    first_seen: u64,
    total: u16,
    bytes: usize,
    /// (number, frame, content), at most `total` of them.
    parts: Vec<(u16, u64, u8, Zeroizing<Vec<u8>>)>,
}

/// The messages in progress; see the module documentation.
#[derive(Debug, Default)]
pub struct SkfReassembler {
    limits: Limits,
    pending: HashMap<MessageKey, Pending>,
    bytes: usize,
    stats: Stats,
}

impl SkfReassembler {
    pub fn new(limits: Limits) -> SkfReassembler {
        SkfReassembler {
            limits,
            ..Default::default()
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Messages and bytes held now.
    #[cfg_attr(not(test), allow(dead_code))] // for tests and the fuzz target
    pub fn pending(&self) -> (usize, usize) {
        (self.pending.len(), self.bytes)
    }

    /// Drop messages whose first fragment is older than the timeout at
    /// capture time `now_nanos`.
    pub fn expire(&mut self, now_nanos: u64) {
        let timeout = self.limits.timeout_nanos;
        let before = self.pending.len();
        let mut freed = 0;
        self.pending.retain(|_, p| {
            let keep = now_nanos.saturating_sub(p.first_seen) <= timeout;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.bytes -= freed;
        self.stats.timed_out += (before - self.pending.len()) as u64;
    }

    /// The capture ended: what is still incomplete never will be.
    pub fn finish(&mut self) {
        self.stats.timed_out += self.pending.len() as u64;
        self.pending.clear();
        self.bytes = 0;
    }

    fn drop_message(&mut self, key: &MessageKey) {
        if let Some(p) = self.pending.remove(key) {
            self.bytes -= p.bytes;
        }
    }

    /// Take one authentic fragment (its ICV verified) seen at capture
    /// time `now_nanos`.
    pub fn push(&mut self, now_nanos: u64, key: MessageKey, f: Fragment<'_>) -> Outcome {
        self.stats.fragments += 1;
        self.expire(now_nanos);
        let l = self.limits;
        let over = |s: &mut Stats, why| {
            s.over_limit += 1;
            Outcome::OverLimit(why)
        };
        if f.number == 0 || f.number > f.total {
            // SkfPayload::parse refuses these; a caller that did not is told.
            return over(&mut self.stats, "Fragment Number not in 1..=Total Fragments");
        }
        if f.total > l.max_fragments {
            return over(&mut self.stats, "Total Fragments over the limit");
        }
        if let Some(p) = self.pending.get(&key) {
            if f.total < p.total {
                self.stats.stale += 1;
                return Outcome::Stale { total: p.total };
            }
            if f.total > p.total {
                self.stats.restarted += 1;
                self.drop_message(&key);
            } else if p.parts.iter().any(|(n, ..)| *n == f.number) {
                self.stats.duplicates += 1;
                return Outcome::Duplicate;
            }
        }
        let held = self.pending.get(&key).map_or(0, |p| p.bytes);
        if held + f.data.len() > l.max_message_bytes {
            // The message cannot be completed within the bound: drop it all.
            self.drop_message(&key);
            return over(&mut self.stats, "the message's bytes over the limit");
        }
        if self.bytes + f.data.len() > l.max_bytes {
            return over(&mut self.stats, "bytes held for reassembly over the limit");
        }
        if !self.pending.contains_key(&key) && self.pending.len() >= l.max_messages {
            return over(&mut self.stats, "messages in reassembly over the limit");
        }
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            first_seen: now_nanos,
            total: f.total,
            bytes: 0,
            parts: Vec::new(),
        });
        p.parts
            .push((f.number, f.frame, f.next_payload, Zeroizing::new(f.data.to_vec())));
        p.bytes += f.data.len();
        self.bytes += f.data.len();
        let (have, total) = (p.parts.len() as u16, p.total);
        if have < total {
            return Outcome::Held { have, total };
        }
        // Every number in 1..=total is held once: the message is whole.
        let Some(mut p) = self.pending.remove(&key) else {
            return Outcome::Held { have, total };
        };
        self.bytes -= p.bytes;
        self.stats.reassembled += 1;
        p.parts.sort_unstable_by_key(|(n, ..)| *n);
        let mut chain = Zeroizing::new(Vec::with_capacity(p.bytes));
        for (_, _, _, d) in &p.parts {
            chain.extend_from_slice(d);
        }
        Outcome::Complete(Message {
            first_payload: p.parts[0].2,
            chain,
            frames: p.parts.iter().map(|(_, frame, ..)| *frame).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: MessageKey = MessageKey {
        spi_i: 1,
        spi_r: 2,
        message_id: 1,
        from_initiator: true,
        response: false,
    };

    fn frag(number: u16, total: u16, data: &[u8]) -> Fragment<'_> {
        Fragment {
            number,
            total,
            next_payload: if number == 1 { 35 } else { 0 },
            frame: 100 + u64::from(number),
            data,
        }
    }

    fn complete(o: Outcome) -> Message {
        match o {
            Outcome::Complete(m) => m,
            o => panic!("not complete: {o:?}"),
        }
    }

    #[test]
    fn fragments_in_any_order_join_in_number_order() {
        let mut r = SkfReassembler::new(Limits::default());
        assert!(matches!(
            r.push(0, KEY, frag(3, 3, b"ccc")),
            Outcome::Held { have: 1, total: 3 }
        ));
        assert!(matches!(
            r.push(1, KEY, frag(1, 3, b"a")),
            Outcome::Held { have: 2, total: 3 }
        ));
        let m = complete(r.push(2, KEY, frag(2, 3, b"bb")));
        assert_eq!(&m.chain[..], b"abbccc");
        assert_eq!(m.first_payload, 35);
        assert_eq!(m.frames, [101, 102, 103]);
        assert_eq!(r.pending(), (0, 0));
        assert_eq!(r.stats().reassembled, 1);
        // One fragment of one is a whole message.
        assert_eq!(&complete(r.push(3, KEY, frag(1, 1, b"x"))).chain[..], b"x");
    }

    #[test]
    fn duplicates_are_ignored_and_directions_kept_apart() {
        let mut r = SkfReassembler::new(Limits::default());
        let resp = MessageKey { response: true, ..KEY };
        r.push(0, KEY, frag(1, 2, b"req1"));
        r.push(0, resp, frag(2, 2, b"resp2"));
        assert!(matches!(r.push(0, KEY, frag(1, 2, b"other")), Outcome::Duplicate));
        assert_eq!(&complete(r.push(0, KEY, frag(2, 2, b"req2"))).chain[..], b"req1req2");
        assert_eq!(
            &complete(r.push(0, resp, frag(1, 2, b"resp1"))).chain[..],
            b"resp1resp2"
        );
        assert_eq!(r.stats().duplicates, 1);
    }

    /// RFC 7383 §2.6.1: a larger Total Fragments restarts the message, a
    /// smaller one is an older fragmentation.
    #[test]
    fn refragmented_retransmissions_restart_and_older_ones_are_stale() {
        let mut r = SkfReassembler::new(Limits::default());
        r.push(0, KEY, frag(1, 2, b"big1"));
        assert!(matches!(
            r.push(0, KEY, frag(1, 3, b"s1")),
            Outcome::Held { have: 1, total: 3 }
        ));
        assert!(matches!(
            r.push(0, KEY, frag(2, 2, b"big2")),
            Outcome::Stale { total: 3 }
        ));
        r.push(0, KEY, frag(2, 3, b"s2"));
        assert_eq!(&complete(r.push(0, KEY, frag(3, 3, b"s3"))).chain[..], b"s1s2s3");
        let s = r.stats();
        assert_eq!((s.restarted, s.stale), (1, 1));
    }

    #[test]
    fn a_missing_fragment_times_out_or_ends_incomplete() {
        let mut r = SkfReassembler::new(Limits::default());
        r.push(0, KEY, frag(1, 2, b"a"));
        let other = MessageKey { message_id: 2, ..KEY };
        r.push(59_000_000_000, other, frag(1, 2, b"b"));
        assert_eq!(r.pending(), (2, 2));
        // Past 60 s the first goes; its fragment 2 then starts afresh.
        assert!(matches!(
            r.push(61_000_000_000, KEY, frag(2, 2, b"late")),
            Outcome::Held { have: 1, .. }
        ));
        assert_eq!(r.stats().timed_out, 1);
        r.finish();
        assert_eq!(r.stats().timed_out, 3);
        assert_eq!(r.pending(), (0, 0));
    }

    #[test]
    fn every_limit_holds() {
        let l = Limits {
            max_messages: 2,
            max_fragments: 4,
            max_message_bytes: 10,
            max_bytes: 16,
            timeout_nanos: 1_000,
        };
        let mut r = SkfReassembler::new(l);
        let k = |id| MessageKey { message_id: id, ..KEY };
        assert!(matches!(r.push(0, k(1), frag(1, 5, b"x")), Outcome::OverLimit(_)));
        assert!(matches!(r.push(0, k(1), frag(0, 2, b"x")), Outcome::OverLimit(_)));
        assert!(matches!(r.push(0, k(1), frag(1, 2, &[0; 11])), Outcome::OverLimit(_)));
        r.push(0, k(1), frag(1, 2, &[0; 8]));
        r.push(0, k(2), frag(1, 2, &[0; 8]));
        assert_eq!(r.pending(), (2, 16));
        // A third message, and more bytes, do not fit.
        assert!(matches!(r.push(0, k(3), frag(1, 2, b"")), Outcome::OverLimit(_)));
        assert!(matches!(r.push(0, k(2), frag(2, 2, b"y")), Outcome::OverLimit(_)));
        // Message 1 grown past its own bound is dropped whole.
        assert!(matches!(r.push(0, k(1), frag(2, 2, &[0; 3])), Outcome::OverLimit(_)));
        assert_eq!(r.pending(), (1, 8));
        assert_eq!(r.stats().over_limit, 6);
    }
}
