//! Flap suppression's shared state (issue 22): per (rule, host) a window anchored at its first
//! event counts the events a rule would forward; past the rule's threshold they are held back,
//! and the window, once closed, is claimed by one alerter at a time, which sends its summary.
//!
//! A claim is a lease: the window stays recorded until its claimer acknowledges it
//! ([`crate::Coordination::flap_ack`]), which queues the summary and forgets the window in one
//! step, and only while the claim is still the window's latest; a claim not acknowledged
//! within its lease (the claimer died, or could not reach the backend) is handed out again,
//! and the earlier claimer's late acknowledgement then does nothing. So a summary is queued
//! exactly once, never lost. (Its id is derived from rule, host and window end besides, and
//! the forwarder drops an id it delivered before.)
//!
//! Both backends keep the same semantics ([`crate::Coordination::flap_count`],
//! [`crate::Coordination::flap_claim_due`], [`crate::Coordination::flap_ack`]): Redis in Lua
//! scripts (`redis/flap.rs`), the embedded backend in tables of the data file
//! (`sqlite/flap.rs`).

use std::time::Duration;

/// One event a rule with a flap limit would forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlapEvent {
    pub rule_id: i32,
    pub hostname: String,
    /// The event's id: a redelivered event gets the verdict it had, and is not counted twice.
    pub event_id: String,
    /// Events forwarded per window; the ones after are suppressed.
    pub threshold: u64,
    pub window: Duration,
    /// The event as queued: the window keeps its latest suppressed event for the summary.
    pub raw: Vec<u8>,
}

/// What to do with a [`FlapEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlapVerdict {
    /// Within the threshold: forward as usual.
    Forward,
    /// Past the threshold: audit, do not forward; the window's summary will count it.
    Suppress,
}

impl FlapVerdict {
    pub(crate) fn code(self) -> &'static str {
        match self {
            FlapVerdict::Forward => "f",
            FlapVerdict::Suppress => "s",
        }
    }

    pub(crate) fn from_code(code: &str) -> Self {
        if code == "s" { FlapVerdict::Suppress } else { FlapVerdict::Forward }
    }
}

/// A closed window that suppressed something, claimed by one caller of
/// [`crate::Coordination::flap_claim_due`] for the claim's lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlapSummary {
    /// Names this claim of the window for [`crate::Coordination::flap_ack`] (opaque; each
    /// claim of a window has its own).
    pub claim: String,
    pub rule_id: i32,
    pub hostname: String,
    /// Events in the window: forwarded and suppressed.
    pub count: u64,
    pub suppressed: u64,
    pub window: Duration,
    /// When the window closed (ms since the epoch): with the rule and host, names the window.
    pub closed_at_ms: i64,
    /// The window's latest suppressed event, as queued.
    pub last_event: Vec<u8>,
}

/// What a claimer hands back for a claimed window ([`crate::Coordination::flap_ack`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlapAck {
    /// [`FlapSummary::claim`].
    pub claim: String,
    /// The summary alert to queue on the alert queue; `None` when there is none to send (the
    /// rule no longer forwards for the host).
    pub summary: Option<Vec<u8>>,
}
