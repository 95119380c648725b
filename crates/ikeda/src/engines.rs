//! Both IKE engines behind one face for the control plane: IKEv2
//! connections live in the IKEv2 engine, IKEv1 ones (`version = 1`) in the
//! IKEv1 engine. They emit the same events and views, so the rest of the
//! daemon does not care which one a connection uses; a datagram goes to
//! the engine whose version its header carries (RFC 2408 §3.1 and RFC 7296
//! §3.1 put the version octet at the same place).

use crate::config::ConnConfig;
use ikeda_ike::ikev1::{self, V1ConnSpec};
use ikeda_ike::ikev2::{ConnSpec, Engine, Event, IkeSaView};
use ikeda_ike::{Millis, RetransmitPolicy, Transmit};
use std::net::SocketAddr;

/// Offset of the version octet in both headers (after two 8-octet SPIs or
/// cookies and the next-payload octet).
const VERSION_OCTET: usize = 17;

pub struct Engines {
    pub v2: Engine,
    pub v1: ikev1::Engine,
}

/// The IKEv1 choices of a connection, when it is one.
pub fn v1_spec(c: &ConnConfig, spec: ConnSpec) -> Result<V1ConnSpec, ConnSpec> {
    match c.ike.as_ref() {
        Some(i) if i.version == 1 => Ok(V1ConnSpec {
            spec,
            aggressive: i.aggressive,
            compress: i.compress,
        }),
        _ => Err(spec),
    }
}

impl Engines {
    /// What the engines counted and refused, for `show counters`: what an
    /// operator needs to see that a flood or a forger is at work.
    pub fn counters(&self) -> Vec<crate::show::CounterOut> {
        let (s2, s1) = (&self.v2.stats, &self.v1.stats);
        let c = |version: u8, name: &str, value: u64, meaning: &str| crate::show::CounterOut {
            version,
            name: name.into(),
            value,
            meaning: meaning.into(),
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
                "duplicates_settled",
                s1.duplicates_settled,
                "both sides initiated at once: a duplicate phase-1 or IPsec SA deleted (the lowest nonce goes)",
            ),
            c(1, "half_open", self.v1.half_open() as u64, "half-open phase-1 SAs now"),
        ]
    }

    pub fn new(v2: Engine, v1: ikev1::Engine) -> Engines {
        Engines { v2, v1 }
    }

    pub fn set_retransmit_policy(&mut self, p: RetransmitPolicy) {
        self.v2.set_retransmit_policy(p);
        self.v1.set_retransmit_policy(p);
    }

    fn is_v1(&self, conn: &str) -> bool {
        self.v1.conn(conn).is_some()
    }

    pub fn handle_datagram(&mut self, now: Millis, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        match data.get(VERSION_OCTET).map(|v| v >> 4) {
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

    /// Rekey the connection's CHILD SA (or its IKE SA) now, as asked on
    /// the control socket.
    pub fn rekey(&mut self, conn: &str, ike: bool, now: Millis) -> Result<(), String> {
        match (self.is_v1(conn), ike) {
            (true, true) => self.v1.rekey_ike(conn, now),
            (true, false) => self.v1.rekey_child(conn, now),
            (false, true) => self.v2.rekey_ike(conn, now),
            (false, false) => self.v2.rekey_child(conn, now),
        }
    }

    pub fn is_active(&self, conn: &str) -> bool {
        self.v2.is_active(conn) || self.v1.is_active(conn)
    }

    pub fn rekey_child_spi(&mut self, conn: &str, spi_in: u32, now: Millis) -> bool {
        if self.is_v1(conn) {
            self.v1.rekey_child_spi(conn, spi_in, now)
        } else {
            self.v2.rekey_child_spi(conn, spi_in, now)
        }
    }

    /// The CHILD SA with this inbound SPI only sends (RFC 7296 §2.4): see
    /// `ikeda_ike::ikev2::Engine::one_way_traffic`.
    pub fn one_way_traffic(&mut self, conn: &str, spi_in: u32, silent_for: std::time::Duration, now: Millis) -> bool {
        if self.is_v1(conn) {
            self.v1.one_way_traffic(conn, spi_in, silent_for, now)
        } else {
            self.v2.one_way_traffic(spi_in, silent_for, now)
        }
    }

    pub fn delete_child_spi(&mut self, conn: &str, spi_in: u32, now: Millis) -> bool {
        if self.is_v1(conn) {
            self.v1.delete_child_spi(conn, spi_in, now)
        } else {
            self.v2.delete_child_spi(conn, spi_in, now)
        }
    }

    /// The connection as the engines know it (either version).
    pub fn conn(&self, name: &str) -> Option<&ConnSpec> {
        self.v2.conn(name).or_else(|| self.v1.conn(name).map(|c| &c.spec))
    }

    pub fn conn_names(&self) -> Vec<String> {
        self.v2
            .conn_names()
            .chain(self.v1.conn_names())
            .map(str::to_string)
            .collect()
    }

    /// Every IKE SA of both engines (IKEv1 phase-1 SAs have `version` 1).
    pub fn ike_sas(&self) -> Vec<IkeSaView> {
        let mut v = self.v2.ike_sas();
        v.extend(self.v1.ike_sas());
        v
    }

    /// Add or replace a connection in the engine of its version.
    pub fn set_conn(&mut self, c: &ConnConfig, spec: ConnSpec) {
        match v1_spec(c, spec) {
            Ok(v1) => self.v1.set_conn(v1),
            Err(v2) => self.v2.set_conn(v2),
        }
    }

    pub fn retire_conn(&mut self, name: &str) {
        self.v2.retire_conn(name);
        self.v1.retire_conn(name);
    }
}
