//! Security Policy Database, RFC 4301 §4.4.1: an ordered list of
//! selectors; the first entry that matches an outbound packet decides
//! whether it is protected (and by which SA) or discarded.

use crate::selector::Selector;
use core::fmt;
use ikeda_wire::ip::FlowKey;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What to do with a packet that matches a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    /// Send through the outbound SA with this index (`Outbound::sas`).
    Protect { sa: usize },
    /// Drop it (and count it).
    Discard,
}

/// One SPD entry.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The connection the policy belongs to (for `show policy`).
    pub name: String,
    pub selector: Selector,
    pub action: PolicyAction,
    /// Packets that matched this entry.
    pub hits: Arc<AtomicU64>,
}

impl Policy {
    pub fn new(name: impl Into<String>, selector: Selector, action: PolicyAction) -> Self {
        Policy {
            name: name.into(),
            selector,
            action,
            hits: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            PolicyAction::Protect { .. } => "protect",
            PolicyAction::Discard => "discard",
        };
        write!(f, "{}: {} {}", self.name, self.selector, action)
    }
}

/// The ordered policy list.
#[derive(Debug, Clone, Default)]
pub struct Spd {
    pub policies: Vec<Policy>,
}

impl Spd {
    pub fn new(policies: Vec<Policy>) -> Self {
        Spd { policies }
    }

    /// First policy matching an outbound packet.
    pub fn lookup(&self, k: &FlowKey) -> Option<&Policy> {
        let p = self.policies.iter().find(|p| p.selector.matches_outbound(k))?;
        p.hits.fetch_add(1, Ordering::Relaxed);
        Some(p)
    }
}
