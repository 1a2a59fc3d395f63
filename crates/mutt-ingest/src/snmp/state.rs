//! What the acceptance hook and the receive loop share: the community allowlist, the
//! listener's message rate, the inform push, the per-listener metrics and the log gates.

use super::event;
use crate::{Ingest, Submission};
use async_snmp::notification::{NotificationAcceptance, NotificationEnvelope, NotificationPduClass};
use mutt_core::Secret;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an inform waits for its push before it goes unanswered (the agent resends).
const INFORM_PUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: String,
}

/// `mutt_ingest_snmp_notifications_total{listener,kind}` (kind `trap`/`inform`, queued),
/// `mutt_ingest_snmp_bytes_total{listener}` (the variable bindings, BER-encoded, of every
/// notification that passed the community/USM checks; the SNMP header is not counted: the
/// decoder does not return the datagram) and `mutt_ingest_snmp_errors_total{listener,kind}`
/// (kind `community`, `auth`, `time_window`, `malformed`); drops are in `mutt_ingest_dropped_total`.
/// Register once per process; listeners share it by label.
#[derive(Clone)]
pub struct SnmpMetrics {
    pub notifications: Family<ListenerLabels, Counter>,
    pub bytes: Family<ListenerLabel, Counter>,
    pub errors: Family<ListenerLabels, Counter>,
}

impl SnmpMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let m = Self { notifications: Family::default(), bytes: Family::default(), errors: Family::default() };
        metrics.register(|r| {
            r.register("mutt_ingest_snmp_notifications", "SNMP traps and informs queued", m.notifications.clone());
            r.register("mutt_ingest_snmp_bytes", "SNMP notification variable-binding bytes received", m.bytes.clone());
            r.register(
                "mutt_ingest_snmp_errors",
                "SNMP datagrams refused: bad community, failed USM, outside the time window, malformed",
                m.errors.clone(),
            );
        });
        m
    }

    pub(super) fn received(&self, listener: &str, kind: &str, n: u64) {
        self.notifications.get_or_create(&ListenerLabels { listener: listener.into(), kind: kind.into() }).inc_by(n);
    }

    pub(super) fn bytes(&self, listener: &str, n: u64) {
        self.bytes.get_or_create(&ListenerLabel { listener: listener.into() }).inc_by(n);
    }

    pub(super) fn error(&self, listener: &str, kind: &str, n: u64) {
        self.errors.get_or_create(&ListenerLabels { listener: listener.into(), kind: kind.into() }).inc_by(n);
    }
}

/// A line the log spy leaves for the watcher to write.
enum Pending {
    Usm { source: IpAddr, failure: String },
    Malformed { source: IpAddr, error: String },
}

pub(super) struct ListenerState {
    pub name: String,
    communities: Vec<Secret>,
    pub metrics: SnmpMetrics,
    pub ingest: Ingest,
    rate: Option<crate::rate::MessageRate>,
    logged: crate::log_limit::PerSource,
    logged_usm: crate::log_limit::PerSource,
    logged_malformed: crate::log_limit::PerSource,
    pending: Mutex<Vec<Pending>>,
    /// The receiver's cumulative USM failure counts last seen: (time window, other).
    usm_seen: Mutex<(u64, u64)>,
    usm_logged: Mutex<Option<Instant>>,
    /// Set by the USM log spy (per-source lines); the once-a-minute summary is then skipped.
    pub usm_logged_per_source: AtomicU64,
}

impl ListenerState {
    pub fn new(
        name: &str,
        communities: Vec<Secret>,
        metrics: SnmpMetrics,
        ingest: Ingest,
        max_messages_per_second: u32,
    ) -> Self {
        Self {
            name: name.into(),
            communities,
            metrics,
            ingest,
            rate: crate::rate::MessageRate::new(max_messages_per_second),
            logged: Default::default(),
            logged_usm: Default::default(),
            logged_malformed: Default::default(),
            pending: Mutex::new(Vec::new()),
            usm_seen: Mutex::new((0, 0)),
            usm_logged: Mutex::new(None),
            usm_logged_per_source: AtomicU64::new(0),
        }
    }

    fn drop(&self, reason: &str) {
        self.ingest.metrics().drop_events(&self.name, reason, 1);
    }

    /// async-snmp's acceptance hook, run before an inform is answered: the community, the
    /// listener's rate, and for an inform the push itself, so that an inform is acknowledged
    /// only once its event is queued.
    pub fn decide(&self, envelope: &NotificationEnvelope<'_>) -> NotificationAcceptance {
        if let Some(community) = envelope.community {
            let known = mutt_service::auth::key_matches(community.as_bytes(), &self.communities);
            if !known {
                self.metrics.error(&self.name, "community", 1);
                if self.logged.first_this_minute(envelope.source.ip()) {
                    // The community itself is never logged.
                    tracing::warn!(listener = %self.name, source = %envelope.source.ip(), "SNMP notification with an unknown community refused (logged once a minute per source)");
                }
                return NotificationAcceptance::Reject;
            }
        }
        let inform = envelope.pdu_class == NotificationPduClass::Inform;
        if self.rate.as_ref().is_some_and(|r| r.take(1) == 0) {
            self.drop(if inform { "rate_limit_unacknowledged" } else { "rate_limit" });
            return NotificationAcceptance::Reject;
        }
        if !inform {
            // Traps are queued in bursts by the receive loop (and dropped there if refused).
            return NotificationAcceptance::Accept;
        }
        self.queue_inform(envelope)
    }

    /// Pushes an inform's event and answers Accept (async-snmp then sends the Response) only if
    /// it was queued.
    ///
    /// async-snmp 0.18 sends the Response inside `recv()`, right after this synchronous hook,
    /// and has no asynchronous hook nor a way to send the Response ourselves later (its USM,
    /// which v3 informs need, is not public). So the hook waits for the push: `block_in_place`
    /// hands this worker's other tasks to another thread while it blocks on the push. That
    /// needs the multi-threaded runtime ([`super::TrapListener::bind`] checks it). Meanwhile
    /// the listener receives nothing else; an inform costs one queue push, which is what
    /// acknowledging after queuing means.
    fn queue_inform(&self, envelope: &NotificationEnvelope<'_>) -> NotificationAcceptance {
        let event = event::to_event(envelope.notification(), envelope.source, chrono::Utc::now());
        let submission =
            Submission { events: vec![event.into()], batch: false, correlation_id: uuid::Uuid::new_v4().to_string() };
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => h,
            _ => {
                self.drop("runtime_unacknowledged");
                return NotificationAcceptance::Reject;
            }
        };
        let push = tokio::time::timeout(INFORM_PUSH_TIMEOUT, self.ingest.accept_admitted(submission));
        match tokio::task::block_in_place(|| handle.block_on(push)) {
            Ok(Ok(_)) => {
                self.metrics.received(&self.name, "inform", 1);
                NotificationAcceptance::Accept
            }
            Ok(Err(rejection)) => {
                // Unanswered: the agent resends, so nothing is lost while the queue refuses.
                self.drop(&format!("{}_unacknowledged", rejection.metric_reason()));
                NotificationAcceptance::Reject
            }
            Err(_) => {
                self.drop("timeout_unacknowledged");
                NotificationAcceptance::Reject
            }
        }
    }

    /// A USM failure the log spy attributed to `source`: logged once a minute per source.
    pub fn usm_failure_from(&self, source: IpAddr, failure: &str) {
        self.usm_logged_per_source.store(1, Ordering::Relaxed);
        if self.logged_usm.first_this_minute(source) {
            self.later(Pending::Usm { source, failure: failure.to_owned() });
        }
    }

    /// A datagram async-snmp could not decode (truncated, garbage, not SNMP): counted, logged
    /// once a minute per source.
    pub fn malformed_from(&self, source: IpAddr, error: &str) {
        self.metrics.error(&self.name, "malformed", 1);
        if self.logged_malformed.first_this_minute(source) {
            let error = mutt_core::text::truncate_utf8(error, 200).to_owned();
            self.later(Pending::Malformed { source, error });
        }
    }

    /// The spy runs inside a subscriber call, where tracing drops any event it would emit; its
    /// lines wait here for [`Self::write_pending`] (bounded: one per source a minute anyway).
    fn later(&self, line: Pending) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() < 1024 {
            pending.push(line);
        }
    }

    /// Writes the lines the spy left (called by the listener's watcher).
    pub fn write_pending(&self) {
        let lines = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for line in lines {
            match line {
                Pending::Usm { source, failure } => {
                    tracing::warn!(listener = %self.name, %source, failure, "SNMPv3 notification failed USM checks (unknown user, wrong digest, outside the time window, decryption; logged once a minute per source)")
                }
                Pending::Malformed { source, error } => {
                    tracing::warn!(listener = %self.name, %source, error, "malformed SNMP datagram refused (logged once a minute per source)")
                }
            }
        }
    }

    /// Takes the receiver's cumulative USM failure counts (not in the time window, the rest);
    /// counts the increase. Logged here (once a minute, no source) only when the per-source
    /// spy is not in place.
    pub fn usm_failures(&self, time_window: u64, other: u64) {
        let mut seen = self.usm_seen.lock().unwrap_or_else(|p| p.into_inner());
        let (new_tw, new_other) = (time_window.saturating_sub(seen.0), other.saturating_sub(seen.1));
        *seen = (time_window, other);
        drop(seen);
        if new_tw > 0 {
            self.metrics.error(&self.name, "time_window", new_tw);
        }
        if new_other > 0 {
            self.metrics.error(&self.name, "auth", new_other);
        }
        if new_tw + new_other == 0 || self.usm_logged_per_source.load(Ordering::Relaxed) != 0 {
            return;
        }
        let mut last = self.usm_logged.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= crate::log_limit::EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(listener = %self.name, failures = new_tw + new_other, "SNMPv3 notifications failed USM checks (logged once a minute)");
        }
    }
}

/// The v3 engine id and boots counter on disk: one line, `<hex id> <boots>`.
#[derive(Clone, Debug)]
pub(super) struct EngineFile(pub PathBuf);

impl EngineFile {
    pub fn load(&self) -> std::io::Result<Option<(Vec<u8>, u32)>> {
        let text = match std::fs::read_to_string(&self.0) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not `<hex engine id> <boots>`", self.0.display()),
            )
        };
        let mut parts = text.split_whitespace();
        let id = parts.next().and_then(parse_hex).ok_or_else(bad)?;
        let boots = parts.next().and_then(|b| b.parse().ok()).ok_or_else(bad)?;
        Ok(Some((id, boots)))
    }

    /// Written to a temporary file and renamed, so a crash leaves the old or the new state.
    pub fn store(&self, id: &[u8], boots: u32) -> std::io::Result<()> {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = self.0.with_extension("tmp");
        if let Some(dir) = self.0.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&tmp, format!("{hex} {boots}\n"))?;
        std::fs::rename(&tmp, &self.0)
    }
}

/// Hex digits (an optional `0x`) to bytes.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim().trim_start_matches("0x");
    if t.is_empty() || !t.len().is_multiple_of(2) {
        return None;
    }
    (0..t.len()).step_by(2).map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok()).collect()
}

/// An RFC 3411 engine id: the enterprise (net-snmp's 8072) in the text format, then random
/// octets.
pub fn generated_engine_id() -> Vec<u8> {
    let mut id = vec![0x80, 0x00, 0x1f, 0x88, 0x05];
    id.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    id
}
