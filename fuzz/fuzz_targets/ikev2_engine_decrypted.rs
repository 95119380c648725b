//! The IKEv2 engine past decryption: fuzz-chosen payload chains inside an
//! SK payload with a valid ICV, as requests and as responses.
//!
//! Two engines with seeded RNGs complete IKE_SA_INIT and IKE_AUTH in the
//! simulator. The harness takes the keys from the initiator's `IkeSaKeys`
//! event (the event key export uses; no hook in the engine), so it can
//! seal any plaintext as either peer would. Input layout:
//!
//! - byte 0: bits 0-1 the exchange (IKE_AUTH, CREATE_CHILD_SA,
//!   INFORMATIONAL, or IKE_SA_INIT under SK), bit 2 request or response,
//!   bit 3 which engine receives it, bits 4-5 the outstanding request the
//!   receiver has when it is a response (a CHILD rekey, an IKE rekey, a
//!   DELETE of the IKE SA, or none), bit 6: the message ID is off by one;
//! - byte 1: the first payload type inside SK;
//! - the rest: the plaintext payload chain.
//!
//! Whatever the bytes: no panic, and the engines keep answering timers.

#![no_main]

use ikeda_crypto::ike::{Role, SeededRng};
use ikeda_ike::ikev2::{Event, IkeKeyInfo};
use ikeda_ike::Millis;
use ikeda_wire::ikev2::{emit_sk_message, ExchangeType, Flags, HeaderRepr, PayloadType};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

#[path = "common/ikev2_pair.rs"]
mod ikev2_pair;

/// `inner` (a payload chain starting with `first`) sealed under SK as the
/// sender (`from_initiator`) would send it.
fn seal(
    k: &IkeKeyInfo,
    from_initiator: bool,
    header: &HeaderRepr,
    first: PayloadType,
    inner: &[u8],
) -> Option<Vec<u8>> {
    let role = if from_initiator {
        Role::Initiator
    } else {
        Role::Responder
    };
    let (out, _) = k.keys.sk_ciphers(&k.suite, role).ok()?;
    let (mut msg, range) = emit_sk_message(header, &[], first, out.sk_body_len(inner.len())).ok()?;
    let body = out
        .encrypt(&msg[..range.start], inner, &mut SeededRng::from_u64(9))
        .ok()?;
    msg[range].copy_from_slice(&body);
    Some(msg)
}

fuzz_target!(|data: &[u8]| {
    let [sel, first, inner @ ..] = data else { return };
    let a: SocketAddr = ikev2_pair::A.parse().unwrap();
    let b: SocketAddr = ikev2_pair::B.parse().unwrap();
    let mut p = ikev2_pair::pair("aes128gcm16-x25519,aes128gcm16,aes128-sha1");
    p.a.initiate("f", Millis::ZERO).unwrap();
    let mut keys = None;
    for _ in 0..50 {
        if !p.step() {
            break;
        }
        while let Some(e) = p.a.poll_event() {
            if let Event::IkeSaKeys(k) = e {
                keys = Some(k);
            }
        }
        while p.b.poll_event().is_some() {}
    }
    let Some(k) = keys else {
        panic!("the engines did not establish")
    };
    let exchange = [
        ExchangeType::IKE_AUTH,
        ExchangeType::CREATE_CHILD_SA,
        ExchangeType::INFORMATIONAL,
        ExchangeType::IKE_SA_INIT,
    ][(sel & 3) as usize];
    let response = sel & 4 != 0;
    let to_initiator = sel & 8 != 0;
    let now = p.now;
    // The receiver of a response first sends the request it answers.
    let receiver = if to_initiator { &mut p.a } else { &mut p.b };
    if response {
        let _ = match (sel >> 4) & 3 {
            0 => receiver.rekey_child("f", now),
            1 => receiver.rekey_ike("f", now),
            2 => receiver.terminate("f", now),
            _ => Ok(()),
        };
    }
    while receiver.poll_transmit().is_some() {}
    // Each side counts its own requests (§2.2): the initiator's next is 3
    // (after IKE_SA_INIT, IKE_AUTH and the second CHILD SA), the
    // responder's first is 0.
    let from_initiators_counter = to_initiator == response;
    let mid = if from_initiators_counter {
        ikev2_pair::INITIATOR_NEXT_MID
    } else {
        0
    }
    .wrapping_sub(u32::from(sel & 0x40 != 0));
    let header = HeaderRepr {
        initiator_spi: k.spi_i,
        responder_spi: k.spi_r,
        minor_version: 0,
        exchange_type: exchange,
        flags: Flags::new(!to_initiator, response),
        message_id: mid,
    };
    let Some(msg) = seal(&k, !to_initiator, &header, PayloadType(*first), inner) else {
        return;
    };
    let (local, remote) = if to_initiator { (a, b) } else { (b, a) };
    receiver.handle_datagram(now, local, remote, &msg);
    // And once more: a retransmission of the same request, or a duplicate response.
    receiver.handle_datagram(now, local, remote, &msg);
    while receiver.poll_transmit().is_some() {}
    while receiver.poll_event().is_some() {}
    for t in [now.0 + 1_000, now.0 + 100_000, now.0 + 10_000_000] {
        receiver.handle_timeout(Millis(t));
        while receiver.poll_transmit().is_some() {}
        while receiver.poll_event().is_some() {}
    }
    let _ = receiver.ike_sas();
});
