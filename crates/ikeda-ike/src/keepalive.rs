//! What both IKE versions count as sent on a flow, for the keepalives that
//! keep a stateful firewall's (or a NAT's) state for the IKE flow alive.

use crate::Millis;
use crate::Transmit;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Something of ours went out on the flow of every SA that uses it (the
/// transmits queued since `from`): a firewall's state is per flow, not per
/// SA, so an old SA, its replacement and a duplicate all count. `sas`
/// gives each SA's (local, remote) and its last-sent time.
pub(crate) fn note_sent<'a>(
    transmits: &VecDeque<Transmit>,
    from: usize,
    now: Millis,
    sas: impl Iterator<Item = (SocketAddr, SocketAddr, &'a mut Millis)>,
) {
    if transmits.len() <= from {
        return;
    }
    let flows: Vec<(SocketAddr, SocketAddr)> = transmits.iter().skip(from).map(|t| (t.local, t.remote)).collect();
    for (local, remote, last_sent) in sas {
        if flows.contains(&(local, remote)) {
            *last_sent = (*last_sent).max(now);
        }
    }
}
