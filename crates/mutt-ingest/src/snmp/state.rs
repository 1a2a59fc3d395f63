//! What the acceptance hook and the receive loop share: the community allowlist, whether the
//! queue accepts, the per-listener metrics and the once-a-minute log gate.

use async_snmp::notification::{NotificationAcceptance, NotificationEnvelope, NotificationPduClass};
use mutt_core::Secret;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// USM failures are logged at most this often (the USM does not say which source failed).
const LOG_EVERY: std::time::Duration = crate::log_limit::EVERY;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
    pub kind: String,
}

/// `mutt_ingest_snmp_notifications_total{listener,kind}` (kind `trap`/`inform`, queued) and
/// `mutt_ingest_snmp_errors_total{listener,kind}` (kind `community`, `auth`); drops are in
/// `mutt_ingest_dropped_total`. Register once per process; listeners share it by label.
#[derive(Clone)]
pub struct SnmpMetrics {
    pub notifications: Family<ListenerLabels, Counter>,
    pub errors: Family<ListenerLabels, Counter>,
}

impl SnmpMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let m = Self { notifications: Family::default(), errors: Family::default() };
        metrics.register(|r| {
            r.register("mutt_ingest_snmp_notifications", "SNMP traps and informs queued", m.notifications.clone());
            r.register(
                "mutt_ingest_snmp_errors",
                "SNMP notifications refused: bad community, failed USM",
                m.errors.clone(),
            );
        });
        m
    }

    pub(super) fn received(&self, listener: &str, kind: &str) {
        self.notifications.get_or_create(&ListenerLabels { listener: listener.into(), kind: kind.into() }).inc();
    }

    fn error(&self, listener: &str, kind: &str, n: u64) {
        self.errors.get_or_create(&ListenerLabels { listener: listener.into(), kind: kind.into() }).inc_by(n);
    }
}

pub(super) struct ListenerState {
    pub name: String,
    communities: Vec<Secret>,
    /// Whether the ingest queue accepts (decides inform acknowledgements).
    pub open: AtomicBool,
    pub metrics: SnmpMetrics,
    drops: Option<crate::IngestMetrics>,
    logged: crate::log_limit::PerSource,
    usm_seen: AtomicU64,
    usm_logged: Mutex<Option<Instant>>,
}

impl ListenerState {
    pub fn new(name: &str, communities: Vec<Secret>, metrics: SnmpMetrics, drops: crate::IngestMetrics) -> Self {
        Self {
            name: name.into(),
            communities,
            open: AtomicBool::new(true),
            metrics,
            drops: Some(drops),
            logged: Default::default(),
            usm_seen: AtomicU64::new(0),
            usm_logged: Mutex::new(None),
        }
    }

    /// async-snmp's acceptance hook: runs before an inform is answered. Synchronous and
    /// bounded (it must not block the receive loop).
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
        if self.open.load(Ordering::Relaxed) {
            return NotificationAcceptance::Accept;
        }
        // The queue refuses: an unanswered inform is resent by the agent; a trap is lost.
        let reason = match envelope.pdu_class {
            NotificationPduClass::Inform => "queue_full_unacknowledged",
            NotificationPduClass::Trap => "queue_full",
        };
        if let Some(d) = &self.drops {
            d.drop_events(&self.name, reason, 1);
        }
        NotificationAcceptance::Reject
    }

    /// Takes the receiver's cumulative USM failure count; counts and logs (once a minute) the
    /// increase. The USM does not say which source failed.
    pub fn usm_failures(&self, total: u64) {
        let before = self.usm_seen.swap(total, Ordering::Relaxed);
        let new = total.saturating_sub(before);
        if new == 0 {
            return;
        }
        self.metrics.error(&self.name, "auth", new);
        let mut last = self.usm_logged.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(listener = %self.name, failures = new, "SNMPv3 notifications failed USM checks (unknown user or engine, wrong digest, outside the time window, decryption; logged once a minute)");
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
