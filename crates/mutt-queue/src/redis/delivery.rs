//! The forwarder's per-batch coordination on Redis in two scripts instead of one call per
//! step: admission (breaker, then rate limit) before a delivery, and the breaker outcomes with
//! the delivered ids after it.

use super::{RedisQueue, redis_err, scripts};
use crate::{AdmitRequest, BreakerOutcomes, BreakerPermit, BreakerState, QueueError, RateGrant};
use std::time::Duration;

impl RedisQueue {
    pub(super) async fn admit_batch(&self, req: AdmitRequest<'_>) -> Result<(BreakerPermit, RateGrant), QueueError> {
        let breaker = self.keys.breaker(req.breaker.map_or("", |b| b.0));
        let rate_key = format!("{}rate_limit:{}", self.keys.prefix, req.rate.map_or("", |r| r.0));
        let seq = self.member_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (limit, window) = req.rate.map_or((1, 1), |(_, limit, window)| (limit.max(1), window.as_millis().max(1)));
        let mut inv = scripts::ADMIT.prepare_invoke();
        for k in &breaker {
            inv.key(k);
        }
        inv.key(&rate_key)
            .arg(if req.breaker.is_some() { "1" } else { "0" })
            .arg(req.breaker.map_or(0, |b| b.1.as_millis() as u64))
            // A probe that never reports back (its forwarder died) frees the slot after this.
            .arg(30_000)
            .arg(format!("{}:{seq}", self.instance))
            .arg(if req.rate.is_some() { "1" } else { "0" })
            .arg(limit)
            .arg(window as u64)
            .arg(req.want)
            .arg(req.probe_size.max(1));
        let mut c = self.connection();
        let (verdict, breaker_wait, granted, rate_wait): (i64, u64, u64, u64) =
            inv.invoke_async(&mut c).await.map_err(redis_err("admitting a batch (breaker, rate limit)"))?;
        let permit = match verdict {
            1 => BreakerPermit::Go,
            2 => BreakerPermit::Probe,
            _ => BreakerPermit::Wait { retry_after: Duration::from_millis(breaker_wait.max(1)) },
        };
        Ok((permit, RateGrant { granted, retry_after: Duration::from_millis(rate_wait) }))
    }

    pub(super) async fn record_batch(
        &self,
        breaker: Option<BreakerOutcomes<'_>>,
        delivered: &[String],
        ttl: Duration,
    ) -> Result<(Vec<BreakerState>, u64), QueueError> {
        if breaker.is_none() && delivered.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let keys = self.keys.breaker(breaker.map_or("", |b| b.name));
        let outcomes: String =
            breaker.map_or(String::new(), |b| b.successes.iter().map(|s| if *s { '1' } else { '0' }).collect());
        // The delivered-id check compares with this process's clock, so the expiry uses it too.
        let now = chrono::Utc::now().timestamp_millis();
        let mut inv = scripts::RECORD_DELIVERY.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        inv.key(self.keys.delivered_set())
            .arg(outcomes)
            .arg(if breaker.is_some_and(|b| b.trip) { "1" } else { "0" })
            .arg(breaker.map_or(1, |b| b.threshold.max(1)))
            .arg(now + ttl.as_millis() as i64)
            .arg(now)
            .arg(ttl.as_millis() as u64 + 60_000);
        for id in delivered {
            inv.arg(id);
        }
        let mut c = self.connection();
        let (states, failures): (Vec<String>, u64) =
            inv.invoke_async(&mut c).await.map_err(redis_err("recording a delivery (breaker, delivered ids)"))?;
        Ok((states.iter().map(|s| BreakerState::parse(s)).collect(), failures))
    }
}
