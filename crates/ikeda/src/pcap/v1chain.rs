//! IKEv1's CBC IVs as a reader of a capture follows them (RFC 2409 App.
//! B), and the phase-1 key a message's cookies select.
//!
//! IKEv1 carries no IV: each side derives it. Main Mode message 5 is
//! encrypted with `hash(g^xi | g^xr)` (the key log's `iv`), each phase-1
//! message after it with the last ciphertext block of the one before. An
//! exchange with a new Message ID (Quick Mode, Informational) starts from
//! `hash(last phase-1 block | M-ID)` and, when it has more than one
//! message (Quick Mode's three), chains the same way within its M-ID.
//!
//! Wireshark takes the last phase-1 block from Main Mode in the capture,
//! so a capture that begins after it (DPD seen on a tunnel that has been
//! up for days: the founding case of issue 12) cannot be decrypted there.
//! ikeda's key log records the block when phase 1 is established
//! (`phase1_last_block`), and this chain starts every new M-ID from it.
//!
//! A key source may name the cookies the other way round (a cookie copied
//! from a log that printed the responder's first): the key is found by
//! either, and the reader is told which one is the initiator's.

use super::keys::Ikev1Keys;
use ikeda_crypto::ikev1::{phase2_iv, Hash};
use std::collections::{HashMap, VecDeque};

/// Multi-message exchanges (M-IDs) per phase-1 SA whose IV chain is kept;
/// beyond it the oldest is forgotten (its exchange long over: a capture
/// with this many Quick Modes spans hours). One-message exchanges
/// (Informational) need no state: their IV is always `hash(seed | M-ID)`.
pub const MAX_CHAIN_EXCHANGES: usize = 1024;

/// The IVs of one IKEv1 exchange: the next message is encrypted with the
/// last ciphertext block of the one before (RFC 2409 App. B). A
/// retransmission repeats a ciphertext, so it is decrypted with the IV
/// its first copy had.
#[derive(Debug, Clone)]
struct IvState {
    next: Vec<u8>,
    last_iv: Vec<u8>,
    last_block: Vec<u8>,
}

impl IvState {
    fn new(iv: Vec<u8>) -> IvState {
        IvState {
            next: iv,
            last_iv: Vec::new(),
            last_block: Vec::new(),
        }
    }

    fn iv_for(&self, last_block: &[u8]) -> Vec<u8> {
        if self.last_block == last_block {
            self.last_iv.clone()
        } else {
            self.next.clone()
        }
    }

    fn advance(&mut self, iv: Vec<u8>, last_block: &[u8]) {
        self.last_iv = iv;
        self.last_block = last_block.to_vec();
        self.next = last_block.to_vec();
    }
}

/// Where the IV of a message came from, for the note when it does not
/// decrypt to payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IvSource {
    /// Phase 1 (M-ID 0), along the chain seen in the capture.
    Phase1,
    /// A later message of an exchange seen in the capture.
    Exchange,
    /// The first message of an M-ID, from the key log's last phase-1 block.
    KeyLog,
    /// The first message of an M-ID, from the last phase-1 block of the
    /// Main Mode in the capture (the key log has none).
    CapturedPhase1,
    /// The first message of an M-ID with neither: the key log predates
    /// `phase1_last_block` and the capture holds no phase 1.
    Nothing,
}

/// The CBC chain of one phase-1 SA.
pub struct V1Chain {
    phase1: IvState,
    exchanges: HashMap<u32, IvState>,
    /// The M-IDs of `exchanges`, oldest first.
    order: VecDeque<u32>,
}

impl V1Chain {
    pub fn new(first_iv: Vec<u8>) -> V1Chain {
        V1Chain {
            phase1: IvState::new(first_iv),
            exchanges: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The IV of a message of `message_id` whose last ciphertext block is
    /// `last_block`. A new M-ID's IV is `hash(seed | M-ID)` cut to the
    /// block (RFC 2409 App. B), with the key log's last phase-1 block as
    /// the seed when it has one, else the chain's.
    pub fn iv_for(
        &self,
        message_id: u32,
        last_block: &[u8],
        hash: Hash,
        block_len: usize,
        logged_seed: Option<&[u8]>,
    ) -> (Vec<u8>, IvSource) {
        if message_id == 0 {
            return (self.phase1.iv_for(last_block), IvSource::Phase1);
        }
        if let Some(s) = self.exchanges.get(&message_id) {
            return (s.iv_for(last_block), IvSource::Exchange);
        }
        let (seed, source) = match logged_seed {
            Some(s) => (s, IvSource::KeyLog),
            // Main Mode 5 and 6 went by: the chain holds the last block.
            None if !self.phase1.last_block.is_empty() => (&self.phase1.next[..], IvSource::CapturedPhase1),
            None => (&self.phase1.next[..], IvSource::Nothing),
        };
        (phase2_iv(hash, block_len, seed, message_id), source)
    }

    /// A message of `message_id` was decrypted with `iv`: the next one of
    /// its exchange follows from its last block. `one_message`: an
    /// Informational exchange (RFC 2409 §5.7), which nothing follows.
    /// `may_grow`: the reader's table of chains, over all phase-1 SAs, has
    /// room for one more exchange (`Limits::max_v1_chain_exchanges`);
    /// without it a new exchange takes the place of this SA's oldest, or
    /// is not held when the SA holds none (its next message then does not
    /// decrypt, and says so). Returns whether one more exchange is held.
    pub fn advance(&mut self, message_id: u32, one_message: bool, iv: Vec<u8>, last_block: &[u8], may_grow: bool) -> bool {
        if message_id == 0 {
            self.phase1.advance(iv, last_block);
            return false;
        }
        if one_message {
            return false;
        }
        let mut grew = false;
        if !self.exchanges.contains_key(&message_id) {
            if self.order.len() >= MAX_CHAIN_EXCHANGES || !may_grow {
                match self.order.pop_front() {
                    Some(old) => {
                        self.exchanges.remove(&old);
                    }
                    None => return false,
                }
            } else {
                grew = true;
            }
            self.order.push_back(message_id);
        }
        self.exchanges
            .entry(message_id)
            .or_insert_with(|| IvState::new(Vec::new()))
            .advance(iv, last_block);
        grew
    }

    /// Exchanges whose chain is held (for the bound's test).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.exchanges.len()
    }
}

/// How a message's cookies found a key.
pub enum Cookies<'a> {
    /// Initiator cookie first, as in the ISAKMP header (RFC 2408 §3.1).
    InOrder(&'a Ikev1Keys),
    /// The key source gives the responder's cookie as the initiator's.
    Swapped(&'a Ikev1Keys),
    /// The key source has the initiator cookie with another responder
    /// cookie (another phase-1 SA that happened to reuse it, or a typo).
    OtherResponder(u64),
    Missing,
}

/// The key for a message with these header cookies: by the initiator
/// cookie, else by the responder's (a key source with them swapped). A
/// responder cookie of 0 in the store means the source did not give one
/// (Wireshark's `ikev1_decryption_table` has the initiator cookie only).
pub fn find_key(store: &HashMap<u64, Ikev1Keys>, icookie: u64, rcookie: u64) -> Cookies<'_> {
    let mut other = None;
    if let Some(k) = store.get(&icookie) {
        if k.rcookie == rcookie || k.rcookie == 0 {
            return Cookies::InOrder(k);
        }
        other = Some(k.rcookie);
    }
    if let Some(k) = store.get(&rcookie) {
        if k.rcookie == icookie || k.rcookie == 0 {
            return Cookies::Swapped(k);
        }
    }
    match other {
        Some(r) => Cookies::OtherResponder(r),
        None => Cookies::Missing,
    }
}

/// The note of the first message decrypted with a key found by swapped
/// cookies: which cookie is the initiator's.
pub fn swapped_note(icookie: u64, rcookie: u64) -> String {
    format!(
        "the key source names {rcookie:016x} as the initiator cookie, but it is the responder's: \
         the initiator cookie is {icookie:016x}, the first in the ISAKMP header (RFC 2408 §3.1), \
         and the one Wireshark's ikev1_decryption_table wants; decrypted with them swapped back"
    )
}

/// Why a message decrypted to payloads that do not parse, given where its
/// IV came from.
pub fn unparsed_note(sa: &str, source: IvSource, message_id: u32, error: &str) -> String {
    match source {
        IvSource::Nothing => format!(
            "{sa}: no IV for M-ID {message_id}: it is hash(last phase-1 block | M-ID) (RFC 2409 App. B), \
             and neither the capture (no Main Mode) nor the key log (no \"phase1_last_block\", an older \
             ikeda's) has that block"
        ),
        IvSource::KeyLog => format!(
            "{sa}: decrypted with the IV from the key log's last phase-1 block, but the payloads do not \
             parse ({error}): a wrong key or block for this SA"
        ),
        _ => format!(
            "{sa}: decrypted, but the payloads do not parse ({error}): a wrong key, or the capture \
             misses a message of the IV chain (RFC 2409 App. B)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikeda_crypto::ike::Encr;
    use ikeda_crypto::ikev1::Cipher;
    use ikeda_crypto::SecretBytes;

    fn keys(rcookie: u64, seed: Option<Vec<u8>>) -> Ikev1Keys {
        Ikev1Keys {
            rcookie,
            cipher: Cipher::from_encr(Encr::AesCbc { key_bits: 128 }).unwrap(),
            hash: Hash::Sha256,
            enc_key: SecretBytes::new(vec![7; 16]),
            first_iv: vec![1; 16],
            phase1_last_block: seed,
        }
    }

    const I: u64 = 0x1111_2222_3333_4444;
    const R: u64 = 0x5555_6666_7777_8888;

    /// Either order finds the key; the swapped one says so; another
    /// responder cookie is named; an unknown responder cookie (0) matches.
    #[test]
    fn cookies_match_in_either_order() {
        let mut store = HashMap::new();
        store.insert(I, keys(R, None));
        assert!(matches!(find_key(&store, I, R), Cookies::InOrder(_)));
        // A key source that has them the other way round.
        let mut swapped = HashMap::new();
        swapped.insert(R, keys(I, None));
        assert!(matches!(find_key(&swapped, I, R), Cookies::Swapped(_)));
        // Wireshark's table: one cookie, the responder's by mistake.
        let mut one = HashMap::new();
        one.insert(R, keys(0, None));
        assert!(matches!(find_key(&one, I, R), Cookies::Swapped(_)));
        one.insert(I, keys(0, None));
        assert!(matches!(find_key(&one, I, R), Cookies::InOrder(_)));
        // The initiator cookie with another SA's responder cookie.
        assert!(matches!(find_key(&store, I, 0x9999), Cookies::OtherResponder(r) if r == R));
        assert!(matches!(find_key(&store, 0x9999, 0x8888), Cookies::Missing));
        // Only a right pair matches swapped: R first with another cookie.
        assert!(matches!(find_key(&swapped, 0x9999, R), Cookies::Missing));
        let note = swapped_note(I, R);
        assert!(
            note.contains("names 5555666677778888 as the initiator cookie")
                && note.contains("the initiator cookie is 1111222233334444"),
            "{note}"
        );
    }

    /// RFC 2409 App. B by hand: a new M-ID's IV is the first block of
    /// SHA-256(seed | M-ID), the key log's seed wins over the chain's, and
    /// the second message of a Quick Mode chains on the first's last block.
    #[test]
    fn a_new_message_id_starts_from_the_logged_block() {
        let seed = [0xab_u8; 16];
        let mid = 0x0102_0304_u32;
        let want = Hash::Sha256.hash(&[&seed[..], &mid.to_be_bytes()])[..16].to_vec();
        let mut chain = V1Chain::new(vec![1; 16]);
        let (iv, src) = chain.iv_for(mid, &[9; 16], Hash::Sha256, 16, Some(&seed));
        assert_eq!((iv.clone(), src), (want.clone(), IvSource::KeyLog));
        // Without the key log's block and without phase 1: said so.
        let (_, src) = chain.iv_for(mid, &[9; 16], Hash::Sha256, 16, None);
        assert_eq!(src, IvSource::Nothing);
        chain.advance(mid, false, iv, &[9; 16], true);
        // QM2: the last block of QM1; a retransmitted QM1: its own IV again.
        assert_eq!(
            chain.iv_for(mid, &[8; 16], Hash::Sha256, 16, Some(&seed)).0,
            vec![9; 16]
        );
        assert_eq!(chain.iv_for(mid, &[9; 16], Hash::Sha256, 16, Some(&seed)).0, want);
        // A phase 1 seen in the capture seeds the M-IDs when the log cannot.
        let mut p1 = V1Chain::new(vec![1; 16]);
        p1.advance(0, false, vec![1; 16], &[5; 16], true);
        let (iv, src) = p1.iv_for(7, &[0; 16], Hash::Sha256, 16, None);
        assert_eq!(
            (iv, src),
            (phase2_iv(Hash::Sha256, 16, &[5; 16], 7), IvSource::CapturedPhase1)
        );
    }

    /// Informationals hold nothing; Quick Modes at most
    /// MAX_CHAIN_EXCHANGES, the oldest forgotten first.
    #[test]
    fn the_chain_table_is_bounded() {
        let mut chain = V1Chain::new(vec![1; 16]);
        for mid in 1..=5000u32 {
            assert!(!chain.advance(mid, true, vec![0; 16], &[1; 16], true));
        }
        assert_eq!(chain.held(), 0);
        for mid in 1..=5000u32 {
            chain.advance(mid, false, vec![0; 16], &mid.to_be_bytes().repeat(4), true);
        }
        assert_eq!(chain.held(), MAX_CHAIN_EXCHANGES);
        // The newest is held (its next IV is its last block), the oldest not.
        let last = 5000u32.to_be_bytes().repeat(4);
        assert_eq!(
            chain.iv_for(5000, &[0; 16], Hash::Sha256, 16, None).1,
            IvSource::Exchange
        );
        assert_eq!(chain.iv_for(5000, &[0; 16], Hash::Sha256, 16, None).0, last);
        assert_ne!(chain.iv_for(1, &[0; 16], Hash::Sha256, 16, None).1, IvSource::Exchange);
    }

    /// The bound over all SAs: an SA that may not grow recycles its own
    /// oldest exchange, and one that holds none holds nothing new.
    #[test]
    fn a_full_table_takes_no_more() {
        let mut chain = V1Chain::new(vec![1; 16]);
        assert!(!chain.advance(7, false, vec![0; 16], &[7; 16], false));
        assert_eq!(chain.held(), 0);
        assert!(chain.advance(8, false, vec![0; 16], &[8; 16], true));
        assert!(!chain.advance(9, false, vec![0; 16], &[9; 16], false));
        assert_eq!(chain.held(), 1);
        assert_eq!(chain.iv_for(9, &[0; 16], Hash::Sha256, 16, None), (vec![9; 16], IvSource::Exchange));
        assert_ne!(chain.iv_for(8, &[0; 16], Hash::Sha256, 16, None).1, IvSource::Exchange);
        // A message of an exchange already held moves it on, whatever the table.
        assert!(!chain.advance(9, false, vec![0; 16], &[3; 16], false));
        assert_eq!(chain.iv_for(9, &[0; 16], Hash::Sha256, 16, None).0, vec![3; 16]);
    }
}
