//! The IKEv1 engine past decryption: Main Mode and Quick Mode complete
//! between two engines, then the harness, which knows the phase-1 keys
//! (from the responder's Ikev1Keys event) and the last phase-1 CBC block
//! (from the MM6 it carried), encrypts fuzz-chosen payloads as an
//! Informational or Quick Mode message (RFC 2409 §5.5, §5.7, App. B IVs)
//! with a correct HASH(1) or a fuzz-chosen one, and feeds it to B. No hook
//! in the engine is needed.
//!
//! Input: byte 0: exchange (bit 0: Quick Mode, else Informational), HASH
//! (bit 1: take the HASH from the input instead of computing it); bytes
//! 1-4: the M-ID; byte 5: the first payload's type; the rest: the payload
//! chain after the HASH payload.
#![no_main]

#[path = "common/ikev1.rs"]
mod common;

use ikeda_crypto::ikev1::{self as c1, Cipher, Hash};
use libfuzzer_sys::fuzz_target;

const HEADER_LEN: usize = 28;
const ENCRYPTED: u8 = 0x01;

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (sel, mid, first, rest) = (data[0], u32::from_be_bytes(data[1..5].try_into().unwrap()), data[5], &data[6..]);
    let mut two = common::Two::new(false);
    two.run(12);
    let Some(k) = two.keys_b.take() else { return };
    let (Ok(cipher), hash) = (Cipher::from_encr(k.suite.encr), Hash::from_prf(k.suite.prf)) else { return };
    let bl = cipher.block_len();
    // The last encrypted phase-1 message is MM6, B to A.
    let Some((_, mm6)) = two.seen.iter().rev().find(|(from_a, d)| {
        !*from_a && d.len() > HEADER_LEN && d[18] == 2 && d[19] & ENCRYPTED != 0
    }) else {
        return;
    };
    let last_block = mm6[mm6.len() - bl..].to_vec();
    // HASH payload (RFC 2408 §3.11), then the fuzz chain.
    let hash_value = if sel & 0x02 != 0 {
        rest.get(..hash.output_len()).unwrap_or(rest).to_vec()
    } else {
        c1::qm_hash1(hash, k.skeyid_a.expose(), mid, rest)
    };
    let mut chain = vec![first, 0];
    chain.extend_from_slice(&((4 + hash_value.len()) as u16).to_be_bytes());
    chain.extend_from_slice(&hash_value);
    chain.extend_from_slice(rest);
    c1::pad(bl, &mut chain);
    let iv = c1::phase2_iv(hash, bl, &last_block, mid);
    if cipher.encrypt(k.enc_key.expose(), &iv, &mut chain).is_err() {
        return;
    }
    let exchange = if sel & 0x01 != 0 { 32 } else { 5 };
    let mut msg = Vec::with_capacity(HEADER_LEN + chain.len());
    msg.extend_from_slice(&k.icookie.to_be_bytes());
    msg.extend_from_slice(&k.rcookie.to_be_bytes());
    msg.extend_from_slice(&[8, 0x10, exchange, ENCRYPTED]);
    msg.extend_from_slice(&mid.to_be_bytes());
    msg.extend_from_slice(&((HEADER_LEN + chain.len()) as u32).to_be_bytes());
    msg.extend_from_slice(&chain);
    two.feed(false, &msg);
});
