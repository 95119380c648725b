//! What the engines' CHILD SA events mean for the data plane, as a state
//! machine without I/O: which SA goes into or out of which slot, and when.
//! The IKE thread applies the [`PlaneCmd`]s it returns through
//! `dataplane::Control`; the tests below drive it alone.
//!
//! Make before break (RFC 7296 §2.8; RFC 2409 §5.5 for Quick Mode): a new
//! CHILD SA's inbound half goes in first; its outbound half replaces the
//! slot's at once, or, when the engine says the peer cannot receive on it
//! yet (the responder of a rekey, until the old SA's DELETE), when the
//! engine activates it. A replaced inbound SA keeps decrypting for
//! [`RETIRE_GRACE_MS`] after its DELETE.

use crate::plan::{selectors, ConnSlot};
use ikeda_esp::{Encap, InboundSa, OutboundSa, SaParams};
use ikeda_ike::ikev2::NAT_T_PORT;
use ikeda_ike::{ChildSaInfo, Millis};
use ikeda_wire::udp_gso::{FULL_TRAIN, TRAIN_SEGMENTS};
use std::collections::HashMap;
use std::net::SocketAddr;

/// How long an inbound SA replaced by a rekey keeps decrypting after its
/// DELETE. A peer may still have old-SA packets in flight after its DELETE
/// or DELETE response: strongSwan's userspace ESP queues them in a thread
/// of its own, and without NAT-T its IKE (UDP 500) and ESP (protocol 50)
/// reach us through different sockets and threads, so no order holds
/// between them. Removing the SA at once would drop those packets as
/// unknown SPIs; RFC 7296 §2.8 only asks that the SA be closed, and
/// draining it for a moment is ours to choose.
pub const RETIRE_GRACE_MS: u64 = 2_000;

/// A change to the data plane, in the order given.
pub enum PlaneCmd {
    InstallInbound {
        conn: String,
        sa: InboundSa,
    },
    /// Put an SA into a slot (replacing what it held), or empty it.
    SetOutbound {
        conn: String,
        slot: usize,
        sa: Option<OutboundSa>,
    },
    RemoveInbound(u32),
    /// The slot's SA is gone and the one it replaced still lives: send on
    /// that one again (outbound SPI `spi`), where its counter stopped.
    RestoreOutbound {
        slot: usize,
        spi: u32,
    },
    /// The SA a slot's current one replaced is gone.
    DropPrevious {
        slot: usize,
    },
    /// The slots' negotiated selectors changed: rebuild the SPD.
    Spd,
}

impl std::fmt::Debug for PlaneCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlaneCmd::InstallInbound { sa, .. } => write!(f, "in+{:08x}", sa.spi),
            PlaneCmd::SetOutbound { slot, sa: Some(sa), .. } => write!(f, "out[{slot}]={:08x}", sa.spi),
            PlaneCmd::SetOutbound { slot, sa: None, .. } => write!(f, "out[{slot}]=none"),
            PlaneCmd::RemoveInbound(spi) => write!(f, "in-{spi:08x}"),
            PlaneCmd::RestoreOutbound { slot, spi } => write!(f, "out[{slot}]<-{spi:08x}"),
            PlaneCmd::DropPrevious { slot } => write!(f, "out[{slot}]-prev"),
            PlaneCmd::Spd => write!(f, "spd"),
        }
    }
}

/// A CHILD SA made into data plane SAs.
pub struct Installed {
    pub cmds: Vec<PlaneCmd>,
    /// Where its ESP goes: for key export and the log line.
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// The IKE connections' slots and the CHILD SAs in them.
#[derive(Default)]
pub struct Installs {
    pub slots: Vec<ConnSlot>,
    /// CHILD SAs installed, by inbound SPI: (connection, outbound SPI).
    pub installed: HashMap<u32, (String, u32)>,
    /// The pair (slot of its connection) of each installed SA, by inbound SPI.
    pair_of: HashMap<u32, (String, usize)>,
    /// Outbound SAs of rekeys we answered, waiting for activation.
    pending_out: HashMap<u32, OutboundSa>,
    /// Replaced inbound SAs already deleted in IKE, kept until the deadline.
    retiring: Vec<(u32, Millis)>,
    /// Per slot number, the inbound SPI of the SA its current outbound SA
    /// replaced, while that SA lives: if the current one goes first (the
    /// peer deleted the newer of two), the data plane sends on it again.
    previous_in: HashMap<usize, u32>,
}

impl Installs {
    /// `ChildSaUp`: the new SA's inbound half, and its outbound half now
    /// or once activated.
    pub fn child_up(&mut self, info: &ChildSaInfo) -> Result<Installed, String> {
        let pos = self
            .slots
            .iter()
            .position(|s| s.name == info.conn && s.pair == info.pair)
            .ok_or_else(|| format!("no data plane slot for selector pair {}", info.pair))?;
        let sels = selectors(info);
        let (encap, local, remote) = if info.udp_encap {
            (Encap::Udp, SocketAddr::new(info.local.ip(), NAT_T_PORT), info.remote)
        } else {
            (
                Encap::Esp,
                SocketAddr::new(info.local.ip(), 0),
                SocketAddr::new(info.remote.ip(), 0),
            )
        };
        let window = self.slots[pos].replay_window;
        let mk = |spi, enc: &ikeda_crypto::SecretBytes, auth: &Option<ikeda_crypto::SecretBytes>| SaParams {
            spi,
            algorithm: info.algorithm,
            enc_key: enc.clone(),
            auth_key: auth.clone(),
            esn: info.esn,
            replay_window: window,
            local,
            remote,
            encap,
            selectors: sels.clone(),
            // IPComp as IKEv1 Quick Mode negotiated it (ours, the peer's
            // CPI); IKEv2 does not negotiate it here.
            ipcomp: info
                .ipcomp
                .map(|(cpi_in, cpi_out)| ikeda_esp::ipcomp::IpcompParams { cpi_out, cpi_in }),
        };
        let mut o = OutboundSa::new(&mk(info.spi_out, &info.enc_out, &info.auth_out))
            .map_err(|e| format!("CHILD SA keys refused by the data plane: {e}"))?;
        o.train = train_for(self.slots[pos].udp_train, info.peer_takes_trains);
        let i = InboundSa::new(&mk(info.spi_in, &info.enc_in, &info.auth_in))
            .map_err(|e| format!("CHILD SA keys refused by the data plane: {e}"))?;
        self.pair_of.insert(info.spi_in, (info.conn.clone(), info.pair));
        let s = &mut self.slots[pos];
        s.esn = info.esn;
        s.negotiated = Some(sels);
        // The old inbound SA stays until its own ChildSaDown.
        let mut cmds = vec![PlaneCmd::InstallInbound {
            conn: info.conn.clone(),
            sa: i,
        }];
        if info.activate_outbound {
            if let Some(old) = s.spi_in.replace(info.spi_in) {
                self.previous_in.insert(s.slot, old);
            }
            cmds.push(PlaneCmd::SetOutbound {
                conn: info.conn.clone(),
                slot: s.slot,
                sa: Some(o),
            });
        } else {
            self.pending_out.insert(info.spi_in, o);
        }
        cmds.push(PlaneCmd::Spd);
        self.installed.insert(info.spi_in, (info.conn.clone(), info.spi_out));
        Ok(Installed { cmds, local, remote })
    }

    /// `ChildSaActivate`: start sending on the SA with this inbound SPI.
    pub fn activate(&mut self, conn: &str, spi_in: u32) -> Vec<PlaneCmd> {
        let Some(o) = self.pending_out.remove(&spi_in) else {
            return Vec::new();
        };
        let pair = self.pair_of.get(&spi_in).map_or(0, |p| p.1);
        let Some(s) = self.slots.iter_mut().find(|s| s.name == conn && s.pair == pair) else {
            return Vec::new();
        };
        if let Some(old) = s.spi_in.replace(spi_in) {
            self.previous_in.insert(s.slot, old);
        }
        vec![PlaneCmd::SetOutbound {
            conn: conn.to_owned(),
            slot: s.slot,
            sa: Some(o),
        }]
    }

    /// `ChildSaDown`: a replaced inbound SA drains until `now` +
    /// [`RETIRE_GRACE_MS`]; the slot's own SA, gone with no replacement,
    /// leaves its slot empty (its traffic then meets the configured policy).
    pub fn child_down(&mut self, conn: &str, spi_in: u32, now: Millis) -> Vec<PlaneCmd> {
        let mut cmds = Vec::new();
        self.pending_out.remove(&spi_in);
        // The slot's SA goes while the one it replaced lives: back to that.
        let restore = self
            .slots
            .iter()
            .find(|s| s.name == conn && s.spi_in == Some(spi_in))
            .and_then(|s| Some((s.slot, *self.previous_in.get(&s.slot)?)))
            .and_then(|(slot, p)| Some((slot, p, self.installed.get(&p)?.1)));
        if let Some((slot, p, spi_out)) = restore {
            self.previous_in.remove(&slot);
            if let Some(s) = self.slots.iter_mut().find(|s| s.slot == slot) {
                s.spi_in = Some(p);
            }
            cmds.push(PlaneCmd::RestoreOutbound { slot, spi: spi_out });
        }
        // The SA the slot's current one replaced goes: forget it.
        let prev = self
            .previous_in
            .iter()
            .find(|(_, &p)| p == spi_in)
            .map(|(&slot, _)| slot);
        if let Some(slot) = prev {
            self.previous_in.remove(&slot);
            cmds.push(PlaneCmd::DropPrevious { slot });
        }
        let pair = self.pair_of.remove(&spi_in).map_or(0, |p| p.1);
        let replaced = self
            .slots
            .iter()
            .any(|s| s.name == conn && s.pair == pair && s.spi_in.is_some_and(|i| i != spi_in));
        if replaced {
            self.retiring.push((spi_in, Millis(now.0 + RETIRE_GRACE_MS)));
        } else {
            cmds.push(PlaneCmd::RemoveInbound(spi_in));
        }
        if let Some(s) = self
            .slots
            .iter_mut()
            .find(|s| s.name == conn && s.spi_in == Some(spi_in))
        {
            s.spi_in = None;
            s.negotiated = None;
            cmds.push(PlaneCmd::SetOutbound {
                conn: conn.to_owned(),
                slot: s.slot,
                sa: None,
            });
            cmds.push(PlaneCmd::Spd);
        }
        self.installed.remove(&spi_in);
        cmds
    }

    /// The replaced inbound SAs whose grace is over at `now`.
    pub fn retire_due(&mut self, now: Millis) -> Vec<PlaneCmd> {
        let mut cmds = Vec::new();
        self.retiring.retain(|&(spi, until)| {
            let due = until <= now;
            if due {
                cmds.push(PlaneCmd::RemoveInbound(spi));
            }
            !due
        });
        cmds
    }

    /// A connection goes (reload, removal): its slots leave, each emptied
    /// and its trap cleared by the caller (returned: the slot numbers).
    pub fn drop_conn(&mut self, name: &str) -> Vec<usize> {
        let mut gone = Vec::new();
        while let Some(k) = self.slots.iter().position(|s| s.name == name) {
            let s = self.slots.remove(k);
            self.previous_in.remove(&s.slot);
            gone.push(s.slot);
            if let Some(i) = s.spi_in {
                self.installed.remove(&i);
            }
        }
        gone
    }
}

/// The `UDP_SEGMENT` train of an outbound SA: the connection's
/// `udp_train` if configured (checked to be 1..=64 at load), else full
/// trains for a peer that said it takes them, else the short trains a peer
/// reading one datagram per syscall survives (see
/// `ikeda_wire::udp_gso::TRAIN_SEGMENTS`).
pub fn train_for(configured: Option<u8>, peer_takes_trains: bool) -> u8 {
    let announced = if peer_takes_trains { FULL_TRAIN } else { TRAIN_SEGMENTS };
    configured.unwrap_or(announced as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikeda_crypto::{EspAlgorithm, SecretBytes};
    use ikeda_wire::ikev2::TsRange;

    fn slot(pair: usize, slot: usize) -> ConnSlot {
        ConnSlot {
            name: "s2s".into(),
            pair,
            slot,
            replay_window: 64,
            udp_train: None,
            configured: Vec::new(),
            negotiated: None,
            spi_in: None,
            rekey_bytes: 0,
            life_bytes: 0,
            rekey_packets: 0,
            life_packets: 0,
            bytes_acted: None,
            esn: false,
        }
    }

    fn info(spi_in: u32, spi_out: u32, activate: bool) -> ChildSaInfo {
        let key = SecretBytes::new(vec![7u8; 20]);
        let net = |c: u8| TsRange::addresses([192, 168, c, 0].into(), [192, 168, c, 255].into());
        ChildSaInfo {
            conn: "s2s".into(),
            algorithm: EspAlgorithm::AesGcm16 { key_bits: 128 },
            esn: false,
            spi_in,
            spi_out,
            enc_in: key.clone(),
            auth_in: None,
            enc_out: key,
            auth_out: None,
            local_ts: vec![net(11)],
            remote_ts: vec![net(12)],
            local: "192.168.50.11:500".parse().unwrap(),
            remote: "192.168.50.12:500".parse().unwrap(),
            udp_encap: false,
            peer_takes_trains: false,
            replaces: None,
            activate_outbound: activate,
            pair: 0,
            ipcomp: None,
        }
    }

    fn show(c: &[PlaneCmd]) -> String {
        format!("{c:?}")
    }

    /// The responder of a rekey: the new inbound SA at once, the new
    /// outbound one only when activated, the old inbound one drains for the
    /// grace after its DELETE, then goes.
    #[test]
    fn a_rekey_is_make_before_break_with_a_grace_for_the_old_inbound_sa() {
        let mut t = Installs {
            slots: vec![slot(0, 3)],
            ..Default::default()
        };
        let up = t.child_up(&info(0x1000, 0x2000, true)).unwrap();
        assert_eq!(show(&up.cmds), "[in+00001000, out[3]=00002000, spd]");
        assert_eq!(up.remote, "192.168.50.12:0".parse().unwrap(), "raw ESP: no port");
        let new = t.child_up(&info(0x1001, 0x2001, false)).unwrap();
        assert_eq!(show(&new.cmds), "[in+00001001, spd]", "outbound held back");
        assert_eq!(t.slots[0].spi_in, Some(0x1000), "the slot still sends on the old SA");
        assert_eq!(show(&t.activate("s2s", 0x1001)), "[out[3]=00002001]");
        assert_eq!(show(&t.activate("s2s", 0x1001)), "[]", "once");
        // The old SA's DELETE: replaced, so it drains (and the data plane
        // forgets it as the SA to go back to).
        assert_eq!(show(&t.child_down("s2s", 0x1000, Millis(10_000))), "[out[3]-prev]");
        assert_eq!(show(&t.retire_due(Millis(11_999))), "[]");
        assert_eq!(show(&t.retire_due(Millis(12_000))), "[in-00001000]");
        assert_eq!(show(&t.retire_due(Millis(20_000))), "[]");
        assert_eq!(t.installed.keys().copied().collect::<Vec<_>>(), [0x1001]);
    }

    /// The slot's only SA deleted: its inbound half goes at once and the
    /// slot is emptied (traffic meets the configured policy again).
    /// A peer that announced full trains gets them on every outbound SA,
    /// a rekeyed one too; any other peer gets the short ones.
    #[test]
    fn the_outbound_train_follows_what_the_peer_announced() {
        let mut t = Installs {
            slots: vec![slot(0, 0)],
            ..Default::default()
        };
        let train = |cmds: &[PlaneCmd]| {
            cmds.iter().find_map(|c| match c {
                PlaneCmd::SetOutbound { sa: Some(o), .. } => Some(o.train),
                _ => None,
            })
        };
        let first = t.child_up(&info(0x1000, 0x2000, true)).unwrap();
        assert_eq!(train(&first.cmds), Some(TRAIN_SEGMENTS as u8));
        let mut ikeda = info(0x1001, 0x2001, true);
        ikeda.peer_takes_trains = true;
        let rekeyed = t.child_up(&ikeda).unwrap();
        assert_eq!(train(&rekeyed.cmds), Some(FULL_TRAIN as u8));
        assert_eq!(FULL_TRAIN, 64);
        // A configured udp_train wins either way.
        t.slots[0].udp_train = Some(8);
        for (k, announced) in [false, true].into_iter().enumerate() {
            let mut i = info(0x1002 + k as u32, 0x2002 + k as u32, true);
            i.peer_takes_trains = announced;
            assert_eq!(train(&t.child_up(&i).unwrap().cmds), Some(8));
        }
    }

    #[test]
    fn the_last_sa_of_a_slot_leaves_it_empty_at_once() {
        let mut t = Installs {
            slots: vec![slot(0, 0), slot(1, 1)],
            ..Default::default()
        };
        t.child_up(&info(0x1000, 0x2000, true)).unwrap();
        let mut other = info(0x1100, 0x2100, true);
        other.pair = 1;
        t.child_up(&other).unwrap();
        assert_eq!(
            show(&t.child_down("s2s", 0x1000, Millis(0))),
            "[in-00001000, out[0]=none, spd]"
        );
        assert_eq!(t.slots[0].negotiated, None);
        assert_eq!(t.slots[1].spi_in, Some(0x1100), "the other pair's SA stays");
        assert_eq!(t.drop_conn("s2s"), [0, 1]);
        assert!(t.installed.is_empty() && t.slots.is_empty());
        // A pair without a slot is refused, in words.
        let refused = t.child_up(&info(0x1200, 0x2200, true)).map(|_| ()).unwrap_err();
        assert!(refused.contains("no data plane slot"), "{refused}");
    }

    /// Two SAs of one pair, the newer sent on: when the newer goes first
    /// (the peer deleted the duplicate of a collision it saw and we took
    /// for a rekey), the slot sends on the older one again, not on nothing.
    #[test]
    fn the_newer_sa_deleted_first_sends_on_the_older_again() {
        let mut t = Installs {
            slots: vec![slot(0, 2)],
            ..Default::default()
        };
        t.child_up(&info(0x1000, 0x2000, true)).unwrap();
        t.child_up(&info(0x1001, 0x2001, true)).unwrap();
        assert_eq!(t.slots[0].spi_in, Some(0x1001));
        assert_eq!(
            show(&t.child_down("s2s", 0x1001, Millis(0))),
            "[out[2]<-00002000]",
            "the older one is sent on again; the newer one's inbound half drains"
        );
        assert_eq!(t.slots[0].spi_in, Some(0x1000));
        // Once only: the older one gone too empties the slot.
        assert_eq!(
            show(&t.child_down("s2s", 0x1000, Millis(0))),
            "[in-00001000, out[2]=none, spd]"
        );
    }
}
