//! Stage three of a batch: how many of the alerts may go now. The shared circuit breaker is
//! asked first (closed: all; half-open: one probe request; open: none), then the shared Moog
//! rate limit grants what is free. Alerts held back wait at the front of the queue; they never
//! burn a retry.

use crate::ForwarderMetrics;
use crate::delivery::Delivery;
use crate::sink::Sent;
use mutt_core::config_catalogue::{MOOG_RATE_LIMIT, MOOG_RATE_PERIOD};
use mutt_queue::log_ids::join_ids;
use mutt_queue::settings::{self, Settings};
use mutt_queue::{AdmitRequest, BreakerOutcomes, BreakerPermit, BreakerState, Coordination, QueueError, SettingsCache};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The circuit breaker's name in its Redis keys (`mutt:circuit_breaker:moogsoft:*`).
pub const BREAKER: &str = "moogsoft";
/// The shared rate limiter's name (`mutt:rate_limit:moog`).
pub const LIMITER: &str = "moog";
/// How often an idle forwarder reads the shared breaker for its gauges (the original's 10 s).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// The rate limit in force: `mutt:config:moog_rate_limit` / `moog_rate_period` (seconds) over
/// the configured one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoogRate {
    pub limit: u64,
    pub period: Duration,
}

impl Settings for MoogRate {
    const KEYS: &'static [&'static str] = &[MOOG_RATE_LIMIT.key, MOOG_RATE_PERIOD.key];

    fn from_values(defaults: &Self, values: &[Option<String>]) -> Self {
        Self {
            limit: settings::int(values, 0, &MOOG_RATE_LIMIT).unwrap_or(defaults.limit),
            period: settings::int(values, 1, &MOOG_RATE_PERIOD).map(Duration::from_secs).unwrap_or(defaults.period),
        }
    }
}

/// What the gate decided for a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// How many of the alerts, from the front, go now.
    pub allowed: usize,
    /// When some must wait: how long until asking again makes sense.
    pub pause: Duration,
}

/// The breaker and the rate limit of one forwarder.
pub struct Gate {
    breaker: Option<Breaker>,
    rate: Option<SettingsCache<MoogRate>>,
    metrics: ForwarderMetrics,
}

impl Gate {
    /// `breaker`: (failures that open it, how long it stays open); `rate`: (alerts, per period),
    /// `None` for no limit; a rate changed in `coordination`'s dynamic configuration applies
    /// from the next batch.
    pub fn new(
        breaker: Option<(u64, Duration)>,
        rate: Option<(u64, Duration)>,
        coordination: &Arc<dyn Coordination>,
        metrics: &ForwarderMetrics,
    ) -> Self {
        Self {
            breaker: breaker.map(|(threshold, open_for)| Breaker::new(threshold, open_for, metrics.clone())),
            rate: rate
                .map(|(limit, period)| SettingsCache::new(MoogRate { limit, period }).watching(coordination.clone())),
            metrics: metrics.clone(),
        }
    }

    /// How many of `wanted` alerts may go now; `request_size` alerts make one request. The
    /// breaker and the rate limit are asked in one call.
    pub async fn admit(
        &mut self,
        coordination: &dyn Coordination,
        wanted: usize,
        request_size: usize,
    ) -> Result<Admitted, QueueError> {
        if wanted == 0 {
            return Ok(Admitted { allowed: 0, pause: Duration::ZERO });
        }
        let rate = match &mut self.rate {
            Some(rate) => Some(rate.get(coordination).await),
            None => None,
        };
        let req = AdmitRequest {
            breaker: self.breaker.as_ref().map(|b| (BREAKER, b.open_for)),
            rate: rate.map(|r| (LIMITER, r.limit, r.period)),
            want: wanted as u64,
            probe_size: request_size as u64,
        };
        let (permit, grant) = coordination.admit(req).await?;
        let mut admitted = Admitted { allowed: wanted, pause: Duration::ZERO };
        if let Some(breaker) = &mut self.breaker {
            breaker.permitted(coordination, permit).await?;
        }
        match permit {
            BreakerPermit::Go => {}
            BreakerPermit::Probe => admitted.allowed = wanted.min(request_size),
            BreakerPermit::Wait { retry_after } => {
                return Ok(Admitted { allowed: 0, pause: retry_after.min(Duration::from_secs(1)) });
            }
        }
        if let Some(MoogRate { period, .. }) = rate
            && (grant.granted as usize) < admitted.allowed
        {
            // One per alert held back, as the original counted each refused alert.
            self.metrics.rate_limit_hits.inc_by(admitted.allowed as u64 - grant.granted);
            admitted.pause = grant.retry_after.min(period);
            if permit == BreakerPermit::Probe && grant.granted == 0 {
                // The probe slot is ours but the rate limit is not: let the probe lock expire.
                tracing::debug!("half-open probe deferred by the rate limit");
            }
        }
        admitted.allowed = admitted.allowed.min(grant.granted as usize);
        Ok(admitted)
    }

    /// Reads the shared breaker's state into the gauges if the last read is older than
    /// [`SAMPLE_EVERY`]: another forwarder may have opened or closed it while this one idles.
    pub async fn sample(&mut self, coordination: &dyn Coordination) {
        let Some(breaker) = &mut self.breaker else { return };
        if breaker.sampled.is_some_and(|t| t.elapsed() < SAMPLE_EVERY) {
            return;
        }
        breaker.sampled = Some(Instant::now());
        match coordination.breaker_state(BREAKER).await {
            Ok((state, failures)) => breaker.note(state, Some(failures)),
            Err(e) => tracing::debug!(error = %e, "could not read the circuit breaker"),
        }
    }

    /// What a delivery tells the breaker: each request's outcome (a rejection says nothing
    /// about the receiver's health and is not counted); a hold (credentials refused, a
    /// redirect not followed) opens it at once, after the others, so that a success in the
    /// same batch does not close it again: nothing more is sent until a probe shows the
    /// configuration fixed. `None` without a breaker.
    pub fn outcomes(&self, sent: &[Sent]) -> Option<(Vec<bool>, bool)> {
        self.breaker.as_ref()?;
        let successes = sent
            .iter()
            .filter(|s| matches!(s.delivery, Delivery::Delivered | Delivery::Retry { .. }))
            .map(|s| matches!(s.delivery, Delivery::Delivered))
            .collect();
        Some((successes, sent.iter().any(|s| matches!(s.delivery, Delivery::Hold { .. }))))
    }

    /// Records a batch's breaker outcomes (from [`Gate::outcomes`]) and its delivered ids in
    /// one call. A failure is logged: a redelivery may then send those alerts again.
    pub async fn record(
        &mut self,
        coordination: &dyn Coordination,
        outcomes: Option<&(Vec<bool>, bool)>,
        delivered: &[String],
        ttl: Duration,
    ) {
        let breaker = outcomes.zip(self.breaker.as_ref()).map(|((successes, trip), b)| BreakerOutcomes {
            name: BREAKER,
            successes,
            trip: *trip,
            threshold: b.threshold,
        });
        if breaker.is_none() && delivered.is_empty() {
            return;
        }
        match coordination.record_delivery(breaker, delivered, ttl).await {
            Ok((states, failures)) => {
                if let Some(b) = &mut self.breaker {
                    for state in states {
                        b.note(state, Some(failures));
                    }
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                events = delivered.len(),
                event_ids = join_ids(delivered),
                "could not record the delivery on the circuit breaker and the delivered ids (a redelivery may send them again)"
            ),
        }
    }
}

/// The shared circuit breaker as this forwarder sees it: its metrics and the log of its
/// state changes.
struct Breaker {
    threshold: u64,
    open_for: Duration,
    last: BreakerState,
    /// When [`Gate::sample`] last read the shared state.
    sampled: Option<Instant>,
    metrics: ForwarderMetrics,
}

impl Breaker {
    fn new(threshold: u64, open_for: Duration, metrics: ForwarderMetrics) -> Self {
        Self { threshold, open_for, last: BreakerState::Closed, sampled: None, metrics }
    }

    /// Notes the permit the shared breaker gave (reading its state when it said wait).
    async fn permitted(&mut self, coordination: &dyn Coordination, permit: BreakerPermit) -> Result<(), QueueError> {
        match permit {
            BreakerPermit::Go => self.note(BreakerState::Closed, None),
            BreakerPermit::Probe => self.note(BreakerState::HalfOpen, None),
            BreakerPermit::Wait { .. } => {
                let (state, failures) = coordination.breaker_state(BREAKER).await?;
                self.note(state, Some(failures));
                self.metrics.request("fail", "circuit_open");
            }
        }
        Ok(())
    }

    fn note(&mut self, state: BreakerState, failures: Option<u64>) {
        self.metrics.breaker_state_moog.set(state as i64);
        self.metrics.circuit_open.set(i64::from(state == BreakerState::Open));
        if let Some(f) = failures {
            self.metrics.breaker_failures.set(f as i64);
        }
        if state != self.last {
            self.metrics.breaker_transition(self.last.as_str(), state.as_str());
            tracing::warn!(from = self.last.as_str(), to = state.as_str(), "circuit breaker changed state");
            self.last = state;
        }
    }
}
