//! What the IKE traffic with each peer says about the firewalls on the path
//! (issue 13 point 3).
//!
//! A stateful firewall that admits IKE only as a reply (a cloud security
//! group whose inbound rules allow ESP and nothing else) lets the peer's
//! packets in only while a flow we opened is alive: for 30 s after we last
//! sent on it while it is unreplied. The pattern shows from our side: every
//! packet we ever heard from the peer on a port came within that window
//! after we had sent to it on that port, and none came out of the blue.
//! Once the peer has been heard unsolicited, the path admits it by rule and
//! no such firewall is to blame.
//!
//! Only the configured peers' addresses are tracked (a bounded table: one
//! entry per address and IKE port); what anyone else sends is not recorded.
//! The record is only ever a hint in `status`, never acted on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// How long a stateful firewall keeps an unreplied UDP flow (AWS security
/// groups and Linux conntrack: 30 s).
pub const UNREPLIED_WINDOW_MS: u64 = 30_000;

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub last_sent_ms: Option<u64>,
    /// Heard within the window after we sent on this flow.
    pub heard_after_send: u64,
    /// Heard when we had not sent on this flow for longer than the window
    /// (or never): the path admits the peer without our help.
    pub heard_unsolicited: u64,
}

/// The table: (peer address, our local port) -> flow. Bounded by the
/// configured peers ([`PathWatch::set_peers`]).
#[derive(Default)]
pub struct PathWatch {
    peers: Vec<IpAddr>,
    flows: HashMap<(IpAddr, u16), Flow>,
}

/// What the record says about a peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Nothing ever heard from it.
    NeverHeard,
    /// Heard, but only ever right after we sent to it: what a stateful
    /// firewall admitting the peer only as replies would let through.
    OnlyAfterOurSends,
    /// Heard unsolicited: no such firewall in the way.
    Unsolicited,
}

impl PathWatch {
    /// The peers to track (the configured remote addresses); entries of
    /// others are dropped.
    pub fn set_peers(&mut self, peers: impl IntoIterator<Item = IpAddr>) {
        self.peers = peers.into_iter().collect();
        self.peers.sort();
        self.peers.dedup();
        let keep = self.peers.clone();
        self.flows.retain(|(a, _), _| keep.contains(a));
    }

    fn flow(&mut self, peer: IpAddr, local_port: u16) -> Option<&mut Flow> {
        if !self.peers.contains(&peer) {
            return None;
        }
        Some(self.flows.entry((peer, local_port)).or_default())
    }

    pub fn sent(&mut self, to: SocketAddr, local_port: u16, now_ms: u64) {
        if let Some(f) = self.flow(to.ip(), local_port) {
            f.last_sent_ms = Some(now_ms);
        }
    }

    pub fn heard(&mut self, from: SocketAddr, local_port: u16, now_ms: u64) {
        if let Some(f) = self.flow(from.ip(), local_port) {
            match f.last_sent_ms {
                Some(t) if now_ms.saturating_sub(t) <= UNREPLIED_WINDOW_MS => f.heard_after_send += 1,
                _ => f.heard_unsolicited += 1,
            }
        }
    }

    pub fn pattern(&self, peer: IpAddr) -> Pattern {
        let mine = self.flows.iter().filter(|((a, _), _)| *a == peer).map(|(_, f)| f);
        let (after, unsolicited) = mine.fold((0, 0), |(a, u), f| (a + f.heard_after_send, u + f.heard_unsolicited));
        match (after, unsolicited) {
            (0, 0) => Pattern::NeverHeard,
            (_, 0) => Pattern::OnlyAfterOurSends,
            _ => Pattern::Unsolicited,
        }
    }

    /// The hint `status` adds to a connection whose request goes
    /// unanswered, in plain words; None when the record rules a stateful
    /// firewall out.
    pub fn hint(&self, peer: IpAddr, config: &str) -> Option<String> {
        let audit = format!("`ikeda audit --config {config} --firewall FILE` checks a firewall's rules");
        match self.pattern(peer) {
            Pattern::NeverHeard => Some(format!(
                "never heard from {peer}: it is down, or a firewall on the path drops what we send; a stateful one \
                 (a cloud security group) also drops {peer}'s own requests unless a rule admits them; {audit}"
            )),
            Pattern::OnlyAfterOurSends => Some(format!(
                "{peer} was only ever heard right after we sent to it: a stateful firewall that admits it only as a \
                 reply (a cloud security group without an inbound rule for IKE) fits; {audit}"
            )),
            Pattern::Unsolicited => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_replies_within_the_window_fit_the_pattern() {
        let mut w = PathWatch::default();
        w.set_peers(["192.0.2.2".parse().unwrap()]);
        let p: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(w.pattern(p), Pattern::NeverHeard);
        assert!(w.hint(p, "gw.toml").unwrap().starts_with("never heard from 192.0.2.2"));
        w.sent(a("192.0.2.2:500"), 500, 1_000);
        w.heard(a("192.0.2.2:500"), 500, 1_050);
        w.heard(a("192.0.2.2:500"), 500, 1_000 + UNREPLIED_WINDOW_MS);
        assert_eq!(w.pattern(p), Pattern::OnlyAfterOurSends);
        let h = w.hint(p, "gw.toml").unwrap();
        assert!(h.contains("only ever heard right after we sent") && h.contains("ikeda audit --config gw.toml"), "{h}");
        // On 4500 we never sent: the peer's packet there is unsolicited.
        w.heard(a("192.0.2.2:4500"), 4500, 2_000);
        assert_eq!(w.pattern(p), Pattern::Unsolicited);
        assert_eq!(w.hint(p, "gw.toml"), None);
    }

    #[test]
    fn late_packets_and_strangers() {
        let mut w = PathWatch::default();
        w.set_peers(["192.0.2.2".parse().unwrap()]);
        let p: IpAddr = "192.0.2.2".parse().unwrap();
        w.sent(a("192.0.2.2:500"), 500, 0);
        w.heard(a("192.0.2.2:500"), 500, UNREPLIED_WINDOW_MS + 1);
        assert_eq!(w.pattern(p), Pattern::Unsolicited);
        // Nobody else gets an entry: the table stays bounded.
        for i in 0..1000u32 {
            let s = SocketAddr::new(IpAddr::from(i.to_be_bytes()), 500);
            w.heard(s, 500, 5);
            w.sent(s, 500, 5);
        }
        assert_eq!(w.flows.len(), 1);
        w.set_peers([]);
        assert!(w.flows.is_empty());
    }
}
