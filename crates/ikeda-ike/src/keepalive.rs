//! What both IKE versions count as sent on a flow, for the keepalives that
//! keep a stateful firewall's (or a NAT's) state for the IKE flow alive.

use crate::Millis;
use crate::Transmit;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// An SA as its flow sees it: the addresses of its IKE messages and when
/// we last sent one. Both versions' SAs are such.
pub(crate) trait OnFlow {
    fn flow(&self) -> (SocketAddr, SocketAddr);
    fn last_sent_mut(&mut self) -> &mut Millis;
}

/// Something of ours went out on the flow of every SA that uses it (the
/// transmits queued since `from`): a firewall's state is per flow, not per
/// SA, so an old SA, its replacement and a duplicate all count.
pub(crate) fn note_sent<'a, S: OnFlow + 'a>(
    transmits: &VecDeque<Transmit>,
    from: usize,
    now: Millis,
    sas: impl Iterator<Item = &'a mut S>,
) {
    if transmits.len() <= from {
        return;
    }
    let flows: Vec<(SocketAddr, SocketAddr)> = transmits.iter().skip(from).map(|t| (t.local, t.remote)).collect();
    for sa in sas {
        if flows.contains(&sa.flow()) {
            let last = sa.last_sent_mut();
            *last = (*last).max(now);
        }
    }
}
