//! Flap suppression (issue 22): a rule with `flap_threshold` N and `flap_window_secs` T
//! forwards, per host, the first N events it would forward within a window of T seconds
//! opened by the first of them; the events after are audited as usual, marked
//! `flap_suppressed` and not forwarded. When such a window closes, one summary alert goes out
//! through the alert queue ("LINK-DOWN on router1: 40 times in 60 s"), only if the window
//! suppressed anything; a window that stayed within its threshold sends nothing more.
//!
//! The windows live in the coordination backend ([`mutt_queue::Coordination::flap_count`]),
//! so every alerter counts into the same window and a redelivered event keeps its verdict. A
//! closed window is claimed by one alerter at a time ([`mutt_queue::Coordination::flap_claim_due`])
//! in a periodic task, so it closes on time even when no further event arrives. The summary
//! follows the rule as it is when the window closes: a rule deleted, deactivated or no longer
//! forwarding for the host sends none.
//!
//! No summary is lost, none is queued twice: a claim is a lease of [`CLAIM_LEASE`], and its
//! acknowledgement ([`mutt_queue::Coordination::flap_ack`]) queues the summary on the alert
//! queue and forgets the window in one step, only while the claim is the window's latest. An
//! alerter that stops between its claim and its acknowledgement (killed, or shut down while
//! the backend is unreachable) leaves the window to be claimed again when the lease expires;
//! if it was merely slow, its late acknowledgement does nothing. (The summary's id is
//! derived from (rule, host, window end) besides, and the forwarder drops an id it has
//! delivered.)

use crate::{Alerter, AlerterMetrics, RuleCache};
use mutt_core::{Alert, Event, Rule, RuleSet, decision_forwards};
use mutt_queue::{Coordination, FlapAck, FlapEvent, FlapSummary, FlapVerdict};
use mutt_service::Backoff;
use mutt_store::AuditRecord;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often each alerter looks for closed windows: a summary follows its window by at most
/// this much (plus the queue's way to the forwarder).
pub const CLAIM_EVERY: Duration = Duration::from_millis(250);
/// Closed windows claimed per look.
const CLAIM_BATCH: usize = 100;
/// How long a claimed window is ours: unacknowledged after this, another alerter takes it.
/// Far above the time from a claim to its acknowledgement (one round trip) unless the backend
/// is unreachable, in which case the next claimer takes over.
pub const CLAIM_LEASE: Duration = Duration::from_secs(30);

/// Namespace of summary alert ids: derived from (rule, host, window end), so that the same
/// window's summary always has the same id.
const SUMMARY_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d75_7474_2d66_6c61_702d_7375_6d6d_0001);

/// One audited event of a batch that its rule forwards: what flap suppression may change.
pub(crate) struct FlapCandidate<'a> {
    pub raw: &'a [u8],
    pub audit: &'a mut AuditRecord,
    pub alert: &'a mut Option<Vec<u8>>,
}

impl Alerter {
    /// Counts the batch's forwarded events of rules with a flap limit; those past it lose their
    /// alert and are audited as suppressed. Waits while the backend is unreachable; `false`
    /// if shutdown came first.
    pub(crate) async fn suppress_flaps(
        &self,
        mut candidates: Vec<FlapCandidate<'_>>,
        rules: &RuleSet,
        shutdown: &CancellationToken,
    ) -> bool {
        let limits: HashMap<i32, (u64, Duration)> =
            rules.rules().filter_map(|r| Some((r.id, r.flap_limit()?))).collect();
        if limits.is_empty() {
            return true;
        }
        let mut picked = Vec::new();
        let mut events = Vec::new();
        for (n, c) in candidates.iter().enumerate() {
            let Some(&(threshold, window)) = limits.get(&c.audit.matched_rule_id) else { continue };
            if c.alert.is_none() {
                continue;
            }
            events.push(FlapEvent {
                rule_id: c.audit.matched_rule_id,
                hostname: c.audit.hostname.clone(),
                event_id: c.audit.event_id.to_string(),
                threshold,
                window,
                raw: c.raw.to_vec(),
            });
            picked.push(n);
        }
        if events.is_empty() {
            return true;
        }
        let Some(verdicts) = self.count_flaps(&events, shutdown).await else {
            return false;
        };
        for (n, verdict) in picked.into_iter().zip(verdicts) {
            if verdict != FlapVerdict::Suppress {
                continue;
            }
            let c = &mut candidates[n];
            *c.alert = None;
            c.audit.forwarded_to_moog = false;
            c.audit.flap_suppressed = true;
            self.metrics.suppressed(c.audit.matched_rule_id);
            tracing::debug!(event_id = %c.audit.event_id, rule_id = c.audit.matched_rule_id, hostname = %c.audit.hostname, "event flap-suppressed");
        }
        true
    }

    /// [`Coordination::flap_count`], repeated while the backend is unreachable.
    async fn count_flaps(&self, events: &[FlapEvent], shutdown: &CancellationToken) -> Option<Vec<FlapVerdict>> {
        let mut backoff = Backoff::new(Duration::from_millis(100), self.config.max_backoff);
        loop {
            match self.coordination.flap_count(events).await {
                Ok(v) => return Some(v),
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::error!(error = %e, events = events.len(), retry_in_ms = wait.as_millis() as u64, "counting flapping events failed; retrying");
                    if !mutt_service::sleep_or_shutdown(wait, shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Starts the task that sends the summaries of closed windows (until `shutdown`).
    pub(crate) fn spawn_flap_summaries(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let sender = SummarySender {
            coordination: self.coordination.clone(),
            rules: self.rules.clone(),
            metrics: self.metrics.clone(),
            max_backoff: self.config.max_backoff,
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CLAIM_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                sender.send_due(&shutdown).await;
            }
        })
    }
}

struct SummarySender {
    coordination: Arc<dyn Coordination>,
    rules: RuleCache,
    metrics: AlerterMetrics,
    max_backoff: Duration,
}

impl SummarySender {
    /// Claims the closed windows and acknowledges the claims with their summaries, which
    /// queues them.
    async fn send_due(&self, shutdown: &CancellationToken) {
        let claimed = match self.coordination.flap_claim_due(CLAIM_BATCH, CLAIM_LEASE).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming closed flap windows failed; trying again shortly");
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        let acks = self.summaries(claimed);
        let mut backoff = Backoff::new(Duration::from_millis(100), self.max_backoff);
        loop {
            match self.coordination.flap_ack(&acks).await {
                Ok(queued) => {
                    self.metrics.flap_summaries.inc_by(queued);
                    return;
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::error!(error = %e, windows = acks.len(), retry_in_ms = wait.as_millis() as u64, "queuing flap summaries failed; retrying");
                    if !mutt_service::sleep_or_shutdown(wait, shutdown).await {
                        tracing::warn!(
                            windows = acks.len(),
                            lease_secs = CLAIM_LEASE.as_secs(),
                            "shutdown before the flap summaries could be queued: left to the next alerter that claims them when the claim expires"
                        );
                        return;
                    }
                }
            }
        }
    }

    /// Each claim with its summary alert, as queued; a window whose rule no longer forwards
    /// has none.
    fn summaries(&self, claimed: Vec<FlapSummary>) -> Vec<FlapAck> {
        let rules = self.rules.current();
        claimed
            .into_iter()
            .map(|s| {
                let summary = summary_alert(&s, &rules).map(|a| {
                    tracing::info!(event_id = %a.event_id, rule_id = ?a.rule_id, hostname = %a.hostname, message = %a.message_body, "flap summary");
                    a.to_json().into_bytes()
                });
                if summary.is_none() {
                    tracing::info!(rule_id = s.rule_id, hostname = %s.hostname, suppressed = s.suppressed, "flap window closed; no summary (the rule no longer forwards for this host)");
                }
                FlapAck { claim: s.claim, summary }
            })
            .collect()
    }
}

/// What a summary calls its rule: the match text or OID, else the rule's id.
fn rule_label(rule: &Rule) -> String {
    [&rule.match_string, &rule.trap_oid]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("rule {}", rule.id))
}

/// The summary of a closed window: the alert its latest suppressed event would have been,
/// with the count as its message, an id of its own and `flap_*` fields in `raw_json`; `None`
/// when the rule no longer forwards for the host.
pub fn summary_alert(s: &FlapSummary, rules: &RuleSet) -> Option<Alert> {
    let rule = rules.rules().find(|r| r.id == s.rule_id)?;
    let handling =
        if rules.is_development_host(&s.hostname) { rule.dev_handling.as_str() } else { rule.prod_handling.as_str() };
    if !decision_forwards(handling) {
        return None;
    }
    let event = Event::from_slice(&s.last_event).ok()?;
    let secs = s.window.as_secs();
    let mut alert = Alert::for_handled_event(&event, rule, handling);
    alert.hostname.clone_from(&s.hostname);
    alert.message_body = format!("{} on {}: {} times in {secs} s", rule_label(rule), s.hostname, s.count);
    let name = format!("{}:{}:{}", s.rule_id, s.hostname, s.closed_at_ms);
    alert.event_id = uuid::Uuid::new_v5(&SUMMARY_NAMESPACE, name.as_bytes()).hyphenated().to_string();
    if let Value::Object(fields) = &mut alert.raw_json {
        fields.insert("flap_summary".into(), Value::Bool(true));
        fields.insert("flap_count".into(), s.count.into());
        fields.insert("flap_suppressed".into(), s.suppressed.into());
        fields.insert("flap_window_secs".into(), secs.into());
    }
    Some(alert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutt_core::rule::{MatchType, RuleDraft, RuleSnapshot};

    fn rules(prod: &str) -> RuleSet {
        let rule = RuleDraft {
            match_string: Some("LINK-DOWN".into()),
            trap_oid: None,
            syslog_severity: None,
            match_type: MatchType::Contains,
            priority: 10,
            prod_handling: prod.into(),
            dev_handling: "Ignore".into(),
            team_assignment: "NetOps".into(),
            is_active: true,
            flap_threshold: Some(1),
            flap_window_secs: Some(60),
        }
        .to_rule(4);
        RuleSet::compile(RuleSnapshot { rules: vec![rule], ..Default::default() })
    }

    fn summary() -> FlapSummary {
        let event = serde_json::json!({"hostname": "router1", "message": "LINK-DOWN Gi0/1",
                                       "timestamp": "2026-01-01T00:00:00Z", "_correlation_id": "c1"});
        FlapSummary {
            claim: "w1".into(),
            rule_id: 4,
            hostname: "router1".into(),
            count: 40,
            suppressed: 39,
            window: Duration::from_secs(60),
            closed_at_ms: 1_767_225_660_000,
            last_event: event.to_string().into_bytes(),
        }
    }

    #[test]
    fn a_summary_names_rule_host_count_and_window() {
        let a = summary_alert(&summary(), &rules("Page_only")).unwrap();
        assert_eq!(a.message_body, "LINK-DOWN on router1: 40 times in 60 s");
        assert_eq!((a.hostname.as_str(), a.team_assignment.as_str()), ("router1", "NetOps"));
        assert_eq!((a.rule_id, a.handling.as_deref()), (Some(4), Some("Page_only")));
        assert_eq!(a.raw_json["flap_summary"], true);
        assert_eq!((a.raw_json["flap_count"].as_u64(), a.raw_json["flap_suppressed"].as_u64()), (Some(40), Some(39)));
        assert_eq!(a.correlation_id, "c1");
        let again = summary_alert(&summary(), &rules("Page_only")).unwrap();
        assert_eq!(a.event_id, again.event_id, "one window, one id");
        let later = FlapSummary { closed_at_ms: 1_767_225_720_000, ..summary() };
        assert_ne!(summary_alert(&later, &rules("Page_only")).unwrap().event_id, a.event_id);
    }

    #[test]
    fn no_summary_when_the_rule_no_longer_forwards() {
        assert!(summary_alert(&summary(), &rules("Ignore")).is_none());
        assert!(summary_alert(&FlapSummary { rule_id: 5, ..summary() }, &rules("Page_only")).is_none());
    }
}
