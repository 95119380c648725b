//! The IKE engine as its callers see it: one endpoint for both versions.
//!
//! A connection names its version (`version = 1` in the config gives a
//! [`Connection::V1`]); the engine keeps it in that version's SA table and
//! runs its exchanges under that version's rules (RFC 2409 and RFC 7296),
//! through the shared [`crate::TaskManager`] with its [`crate::Version`]
//! policy. A datagram goes by the version its header carries: RFC 2408 §3.1
//! and RFC 7296 §3.1 put the version octet at the same offset. Both versions
//! emit the same [`Event`]s and views, so the daemon, the simulator and the
//! fuzz targets drive one engine and never ask which version a connection
//! runs.

use crate::conn::ConnSpec;
use crate::event::Event;
use crate::ikev1::{self, V1ConnSpec};
use crate::ikev2;
use crate::view::IkeSaView;
use crate::{Millis, RetransmitPolicy, Transmit};
use ikeda_crypto::ike::Rng;
use std::net::SocketAddr;
use std::time::Duration;

/// A connection and the IKE version it runs.
#[derive(Clone)]
pub enum Connection {
    V2(ConnSpec),
    /// IKEv1, with its own choices (Aggressive Mode, IPComp).
    V1(V1ConnSpec),
}

impl Connection {
    pub fn spec(&self) -> &ConnSpec {
        match self {
            Connection::V2(s) => s,
            Connection::V1(v1) => &v1.spec,
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Connection::V2(_) => 2,
            Connection::V1(_) => 1,
        }
    }
}

/// One of the engine's counters: what it refused, dropped or answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The IKE version whose messages it counts.
    pub version: u8,
    pub name: &'static str,
    pub value: u64,
    /// What it counts, in an operator's words.
    pub meaning: &'static str,
}

/// The IKE engine, sans I/O: see the crate documentation.
pub struct Engine {
    v2: ikev2::Engine,
    v1: ikev1::Engine,
}

impl Engine {
    /// An engine with these connections; `rng` gives each version's SA
    /// table its randomness (SPIs, cookies, nonces, message IDs).
    pub fn new(conns: Vec<Connection>, mut rng: impl FnMut() -> Box<dyn Rng + Send>) -> Engine {
        let mut e = Engine {
            v2: ikev2::Engine::new(Vec::new(), rng()),
            v1: ikev1::Engine::new(Vec::new(), rng()),
        };
        for c in conns {
            e.set_conn(c);
        }
        e
    }

    pub fn set_retransmit_policy(&mut self, p: RetransmitPolicy) {
        self.v2.set_retransmit_policy(p);
        self.v1.set_retransmit_policy(p);
    }

    fn is_v1(&self, conn: &str) -> bool {
        self.v1.conn(conn).is_some()
    }

    pub fn handle_datagram(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        // Anything that is not IKEv1 goes to IKEv2's parser, which counts
        // it as malformed (RFC 7296 §2.5 lets a responder ignore a major
        // version it does not speak).
        match ikeda_wire::ike_major_version(data) {
            Some(1) => self.v1.handle_datagram(now, local, remote, data),
            _ => self.v2.handle_datagram(now, local, remote, data),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.v2.poll_transmit().or_else(|| self.v1.poll_transmit())
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.v2.poll_event().or_else(|| self.v1.poll_event())
    }

    pub fn poll_timeout(&self) -> Option<Millis> {
        [self.v2.poll_timeout(), self.v1.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        if self.v2.poll_timeout().is_some_and(|t| t <= now) {
            self.v2.handle_timeout(now);
        }
        if self.v1.poll_timeout().is_some_and(|t| t <= now) {
            self.v1.handle_timeout(now);
        }
    }

    pub fn initiate(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        if self.is_v1(conn) {
            self.v1.initiate(conn, now)
        } else {
            self.v2.initiate(conn, now)
        }
    }

    pub fn terminate(&mut self, conn: &str, now: Millis) -> Result<(), String> {
        if self.is_v1(conn) {
            self.v1.terminate(conn, now)
        } else {
            self.v2.terminate(conn, now)
        }
    }

    /// Rekey the connection's CHILD SA (IKEv1: IPsec SA), or its IKE SA
    /// (phase-1 SA), now.
    pub fn rekey(&mut self, conn: &str, ike: bool, now: Millis) -> Result<(), String> {
        match (self.is_v1(conn), ike) {
            (true, true) => self.v1.rekey_ike(conn, now),
            (true, false) => self.v1.rekey_child(conn, now),
            (false, true) => self.v2.rekey_ike(conn, now),
            (false, false) => self.v2.rekey_child(conn, now),
        }
    }

    /// An IKE SA of the connection is up or being set up.
    pub fn is_active(&self, conn: &str) -> bool {
        self.v2.is_active(conn) || self.v1.is_active(conn)
    }

    /// Rekey the CHILD SA with this inbound SPI (its soft lifetime in
    /// bytes or packets ran out in the data plane).
    pub fn rekey_child_spi(&mut self, conn: &str, spi_in: u32, now: Millis) -> bool {
        if self.is_v1(conn) {
            self.v1.rekey_child_spi(conn, spi_in, now)
        } else {
            self.v2.rekey_child_spi(conn, spi_in, now)
        }
    }

    /// The CHILD SA with this inbound SPI only sends: ask whether the peer
    /// is alive (RFC 7296 §2.4; RFC 3706 for IKEv1).
    pub fn one_way_traffic(&mut self, conn: &str, spi_in: u32, silent_for: Duration, now: Millis) -> bool {
        if self.is_v1(conn) {
            self.v1.one_way_traffic(conn, spi_in, silent_for, now)
        } else {
            self.v2.one_way_traffic(spi_in, silent_for, now)
        }
    }

    /// Delete the CHILD SA with this inbound SPI (its hard lifetime ran out).
    pub fn delete_child_spi(&mut self, conn: &str, spi_in: u32, now: Millis) -> bool {
        if self.is_v1(conn) {
            self.v1.delete_child_spi(conn, spi_in, now)
        } else {
            self.v2.delete_child_spi(conn, spi_in, now)
        }
    }

    /// The live connection of this name, whichever its version.
    pub fn conn(&self, name: &str) -> Option<&ConnSpec> {
        self.v2.conn(name).or_else(|| self.v1.conn(name).map(|c| &c.spec))
    }

    /// The live connection of this name and its version.
    pub fn connection(&self, name: &str) -> Option<Connection> {
        match self.v1.conn(name) {
            Some(v1) => Some(Connection::V1(v1.clone())),
            None => self.v2.conn(name).cloned().map(Connection::V2),
        }
    }

    pub fn conn_names(&self) -> Vec<String> {
        self.v2
            .conn_names()
            .chain(self.v1.conn_names())
            .map(str::to_string)
            .collect()
    }

    /// Every IKE SA (IKEv1 phase-1 SAs have `version` 1).
    pub fn ike_sas(&self) -> Vec<IkeSaView> {
        let mut v = self.v2.ike_sas();
        v.extend(self.v1.ike_sas());
        v
    }

    /// Add a connection, or replace the live one of its name. A name runs
    /// one version at a time: one that moves to the other version leaves
    /// its old one retired (the caller terminated its SAs first, as for
    /// any changed connection).
    pub fn set_conn(&mut self, c: Connection) {
        match c {
            Connection::V1(v1) => {
                self.v2.retire_conn(&v1.spec.name);
                self.v1.set_conn(v1);
            }
            Connection::V2(v2) => {
                self.v1.retire_conn(&v2.name);
                self.v2.set_conn(v2);
            }
        }
    }

    /// Take the connection out of service: never initiated or matched again.
    pub fn retire_conn(&mut self, name: &str) {
        self.v2.retire_conn(name);
        self.v1.retire_conn(name);
    }

    /// What the engine counted and refused, for `show counters`, the stats
    /// file and `--json`: what an operator needs to see that a flood or a
    /// forger is at work.
    pub fn counters(&self) -> Vec<Counter> {
        let (s2, s1) = (&self.v2.stats, &self.v1.stats);
        let c = |version, name, value, meaning| Counter {
            version,
            name,
            value,
            meaning,
        };
        vec![
            c(2, "malformed", s2.malformed, "messages that did not parse"),
            c(2, "unknown_spi", s2.unknown_spi, "messages for no IKE SA of ours"),
            c(
                2,
                "integrity_failed",
                s2.integrity_failed,
                "ICV did not verify (forged, or another key)",
            ),
            c(
                2,
                "retransmits_answered",
                s2.retransmits_answered,
                "retransmitted requests answered from the cache",
            ),
            c(
                2,
                "retransmits_refused",
                s2.retransmits_refused,
                "retransmissions not answered: not from the SA's peer, ICV not verified, or not the request answered",
            ),
            c(
                2,
                "dropped_out_of_window",
                s2.dropped_out_of_window,
                "message IDs outside the window",
            ),
            c(
                2,
                "cookies_sent",
                s2.cookies_sent,
                "IKE_SA_INIT answered with a COOKIE (many half-open SAs)",
            ),
            c(
                2,
                "duplicates_settled",
                s2.duplicates_settled,
                "both sides initiated at once: the second IKE SA deleted (the lowest nonce goes)",
            ),
            c(
                1,
                "malformed",
                s1.malformed,
                "messages that did not parse or came out of turn",
            ),
            c(
                1,
                "unknown_cookie",
                s1.unknown_cookie,
                "messages for no phase-1 SA of ours",
            ),
            c(
                1,
                "decrypt_failed",
                s1.decrypt_failed,
                "encrypted messages that did not decrypt (forged, or another PSK)",
            ),
            c(
                1,
                "hash_failed",
                s1.hash_failed,
                "HASH did not verify: dropped without effect",
            ),
            c(
                1,
                "retransmits_answered",
                s1.retransmits_answered,
                "retransmitted messages answered again",
            ),
            c(
                1,
                "retransmits_refused",
                s1.retransmits_refused,
                "copies of a message answered, from another address: not answered",
            ),
            c(
                1,
                "half_open_replaced",
                s1.half_open_replaced,
                "first messages that replaced a half-open SA whose peer never answered (the bound was full)",
            ),
            c(
                1,
                "half_open_refused",
                s1.half_open_refused,
                "first messages refused (bound full of answered SAs, or too large)",
            ),
            c(
                1,
                "am_dh_limited",
                s1.am_dh_limited,
                "Aggressive Mode first messages refused by the DH rate limit",
            ),
            c(
                1,
                "replayed",
                s1.replayed,
                "Informational messages seen before (replays), dropped",
            ),
            c(
                1,
                "after_removal",
                s1.after_removal,
                "messages for a phase-1 SA just removed: the peer's DELETE crossed ours, or a late retransmission (harmless)",
            ),
            c(
                1,
                "duplicates_settled",
                s1.duplicates_settled,
                "both sides initiated at once: a duplicate phase-1 or IPsec SA deleted (the lowest nonce goes)",
            ),
            c(1, "half_open", self.v1.half_open() as u64, "half-open phase-1 SAs now"),
        ]
    }
}

crate::sim::impl_peer!(Engine);
