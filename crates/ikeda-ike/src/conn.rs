//! What the engines of both versions are told about a connection, and the
//! ports and keepalives of IKE over UDP (RFC 7296 §2.23, RFC 3948), shared
//! by IKEv1 and IKEv2.

use ikeda_crypto::ike::{ChildProposal, IkeProposal};
use ikeda_crypto::SecretBytes;
use ikeda_wire::ikev2::{IdPayload, TsRange};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// IKE's own port and the NAT traversal port (RFC 7296 §2.23).
pub const IKE_PORT: u16 = 500;
pub const NAT_T_PORT: u16 = 4500;
/// NAT keepalive interval (RFC 3948 §4; strongSwan's keep_alive = 20s).
pub const NAT_KEEPALIVE: Duration = Duration::from_secs(20);
/// The NAT-keepalive packet: one octet 0xFF on UDP 4500 (RFC 3948 §2.3).
pub const KEEPALIVE: [u8; 1] = [0xff];

/// A connection of an engine: its place in the engine's table of
/// connections, typed so that it is never taken for an SA's place or a
/// selector pair's number. Tables of one entry per connection are indexed
/// by it directly (`conns[conn]`, `retired[conn]`). Outside the engine a
/// connection is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(usize);

impl ConnId {
    /// Every connection of a table of `n`.
    pub(crate) fn all(n: usize) -> impl Iterator<Item = ConnId> {
        (0..n).map(ConnId)
    }
}

impl<T> std::ops::Index<ConnId> for Vec<T> {
    type Output = T;
    fn index(&self, c: ConnId) -> &T {
        &self[c.0]
    }
}

impl<T> std::ops::IndexMut<ConnId> for Vec<T> {
    fn index_mut(&mut self, c: ConnId) -> &mut T {
        &mut self[c.0]
    }
}

/// An engine's connections. Each keeps its [`ConnId`] for good: a reload
/// retires a connection (its SAs still name it while they are deleted, but
/// it is never matched or initiated again) instead of removing it, and
/// adds new ones at the end. Shared by both versions' SA tables.
pub(crate) struct ConnTable<T> {
    conns: Vec<T>,
    retired: Vec<bool>,
}

impl<T: AsRef<ConnSpec>> ConnTable<T> {
    pub(crate) fn new(conns: Vec<T>) -> Self {
        let retired = vec![false; conns.len()];
        ConnTable { conns, retired }
    }

    /// How many connections, retired ones too: the length of the tables
    /// kept beside this one, one entry per connection.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Every connection, retired ones too. Borrows nothing, so the caller
    /// may change the engine while it goes through them.
    pub(crate) fn ids(&self) -> impl Iterator<Item = ConnId> {
        ConnId::all(self.conns.len())
    }

    /// The connections in service.
    pub(crate) fn live(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.ids().filter(|&c| !self.retired[c])
    }

    pub(crate) fn is_retired(&self, c: ConnId) -> bool {
        self.retired[c]
    }

    /// The connection in service of this name.
    pub(crate) fn find(&self, name: &str) -> Option<ConnId> {
        self.live().find(|&c| self.conns[c].as_ref().name == name)
    }

    /// The names of the connections in service.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.live().map(|c| self.conns[c].as_ref().name.as_str())
    }

    /// Replace the connection in service of its name, or add it: then its
    /// new id, for the caller's tables beside this one.
    pub(crate) fn set(&mut self, conn: T) -> Option<ConnId> {
        match self.find(&conn.as_ref().name) {
            Some(c) => {
                self.conns[c] = conn;
                None
            }
            None => {
                self.conns.push(conn);
                self.retired.push(false);
                Some(ConnId(self.conns.len() - 1))
            }
        }
    }

    /// Take the connection of this name out of service.
    pub(crate) fn retire(&mut self, name: &str) {
        if let Some(c) = self.find(name) {
            self.retired[c] = true;
        }
    }
}

impl<T> std::ops::Index<ConnId> for ConnTable<T> {
    type Output = T;
    fn index(&self, c: ConnId) -> &T {
        &self.conns[c]
    }
}

impl<T> std::ops::IndexMut<ConnId> for ConnTable<T> {
    fn index_mut(&mut self, c: ConnId) -> &mut T {
        &mut self.conns[c]
    }
}

impl AsRef<ConnSpec> for ConnSpec {
    fn as_ref(&self) -> &ConnSpec {
        self
    }
}

/// One connection as the engine needs it.
#[derive(Clone)]
pub struct ConnSpec {
    pub name: String,
    /// Our address; the port is 500 (the engine floats to 4500 itself).
    pub local: IpAddr,
    pub remote: IpAddr,
    pub local_id: IdPayload,
    pub remote_id: IdPayload,
    pub psk: SecretBytes,
    pub ike_proposals: Vec<IkeProposal>,
    pub esp_proposals: Vec<ChildProposal>,
    /// Traffic selectors from our side: what we protect, and what is behind the peer.
    pub local_ts: Vec<TsRange>,
    pub remote_ts: Vec<TsRange>,
    /// The selector pairs the configuration names, in order (`local_ts` x
    /// `remote_ts`, then each `[[conn.policy]]`). IKEv1 negotiates exactly
    /// these, one Quick Mode each: the cross product of `local_ts` and
    /// `remote_ts` would add pairs nobody configured (gateway <-> gateway
    /// from a gateway <-> net and a net <-> gateway policy). Empty: every
    /// local x remote range of one family. IKEv2 sends the sets whole.
    pub ts_pairs: Vec<(TsRange, TsRange)>,
    pub timers: Timers,
    /// Encapsulate ESP in UDP 4500 (RFC 3948) even without a NAT, as
    /// strongSwan's `encap = yes`: IKEv2 sends a NAT_DETECTION_SOURCE_IP
    /// that matches no address (RFC 7296 §2.23 lets a host do this to
    /// force encapsulation), so the peer believes we are behind a NAT and
    /// both sides float to 4500. IKEv1 ignores it.
    pub force_encap: bool,
    /// IKEv2: more CHILD SAs under the same IKE SA (swanctl's
    /// connection -> children), each with its own selectors. The
    /// connection's own `local_ts`/`remote_ts` are the first CHILD SA
    /// (created in IKE_AUTH); these follow with CREATE_CHILD_SA (RFC 7296
    /// §1.3.1), one after another, and are numbered from 1 in
    /// [`crate::ChildSaInfo::pair`]. IKEv1 ignores them.
    pub children: Vec<ChildTs>,
}

/// One more CHILD SA of a connection: its name (for `show` and logs) and
/// the selectors it asks for and accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildTs {
    pub name: String,
    pub local_ts: Vec<TsRange>,
    pub remote_ts: Vec<TsRange>,
}

/// Lifetimes and liveness (RFC 7296 §2.8, §2.4); zero turns one off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timers {
    /// CHILD SA rekey (soft) and hard lifetime.
    pub rekey_time: Duration,
    pub life_time: Duration,
    /// IKE SA rekey and hard lifetime.
    pub ike_rekey_time: Duration,
    pub ike_lifetime: Duration,
    /// Send a liveness check after this long without hearing from the peer.
    pub dpd_delay: Duration,
    /// When the peer is dead: initiate again (true) or just clear (false).
    pub dpd_restart: bool,
    /// Keep the IKE flow's state alive in stateful firewalls (and NATs) on
    /// the path: at least one packet of ours on the IKE SA's UDP flow per
    /// interval, whether or not a NAT was detected and whatever ESP does
    /// (raw ESP is another flow; a firewall that admits IKE only as a
    /// reply forgets the flow after its UDP stream timeout, and then drops
    /// the peer's next rekey or DPD: a half-dead tunnel). On UDP 4500 a
    /// NAT-keepalive (RFC 3948 §2.3); on UDP 500 an authenticated liveness
    /// check (IKEv2 empty INFORMATIONAL, RFC 7296 §1.4; IKEv1 RFC 3706
    /// R-U-THERE when the peer announced DPD), which, unanswered, ends the
    /// SA as DPD does. Nothing extra when we sent within the interval.
    pub keepalive: Duration,
}

impl ConnSpec {
    /// How many CHILD SAs the connection asks for: its own selectors and
    /// each of [`ConnSpec::children`].
    pub fn child_count(&self) -> usize {
        1 + self.children.len()
    }

    /// The selectors (local, remote) of CHILD SA `pair`: 0 is the
    /// connection's own, then [`ConnSpec::children`] in order.
    pub fn child_ts(&self, pair: usize) -> Option<(&[TsRange], &[TsRange])> {
        match pair {
            0 => Some((&self.local_ts, &self.remote_ts)),
            k => self
                .children
                .get(k - 1)
                .map(|c| (c.local_ts.as_slice(), c.remote_ts.as_slice())),
        }
    }

    /// The name of CHILD SA `pair`, for `show` and logs: the connection's
    /// own name for the first.
    pub fn child_name(&self, pair: usize) -> &str {
        match pair {
            0 => &self.name,
            k => self.children.get(k - 1).map_or(self.name.as_str(), |c| c.name.as_str()),
        }
    }
}

impl fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnSpec({} {} <-> {})", self.name, self.local, self.remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(ConnSpec);
    impl AsRef<ConnSpec> for Named {
        fn as_ref(&self) -> &ConnSpec {
            &self.0
        }
    }

    fn conn(name: &str, remote: [u8; 4]) -> Named {
        let any = crate::tests::ts("0.0.0.0", "255.255.255.255");
        let remote = IpAddr::from(remote).to_string();
        let mut c = crate::tests::spec(
            "10.0.0.1",
            &remote,
            "aes128gcm16-prfsha256-x25519",
            "aes128gcm16",
            "k",
            any,
            any,
        );
        c.name = name.into();
        Named(c)
    }

    #[test]
    fn a_connection_keeps_its_id_and_a_retired_one_is_never_found_again() {
        let mut t = ConnTable::new(vec![conn("a", [10, 0, 0, 2]), conn("b", [10, 0, 0, 3])]);
        let (a, b) = (t.find("a").unwrap(), t.find("b").unwrap());
        assert_ne!(a, b);
        // Replacing keeps the place; nothing is added.
        assert_eq!(t.set(conn("a", [10, 0, 0, 9])), None);
        assert_eq!(t.find("a"), Some(a));
        assert_eq!(t[a].0.remote, IpAddr::from([10, 0, 0, 9]));
        // Retired: still indexed (its SAs name it), never found or named.
        t.retire("a");
        assert!(t.is_retired(a) && t.find("a").is_none());
        assert_eq!(t[a].0.name, "a");
        assert_eq!(t.names().collect::<Vec<_>>(), ["b"]);
        assert_eq!(t.live().collect::<Vec<_>>(), [b]);
        // The same name again is a new connection at the end.
        let a2 = t.set(conn("a", [10, 0, 0, 2])).unwrap();
        assert!(a2 != a && a2 != b);
        assert_eq!(t.find("a"), Some(a2));
        assert_eq!(t.ids().count(), 3);
        assert_eq!(t.len(), 3);
    }
}
