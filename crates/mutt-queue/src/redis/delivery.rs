//! The forwarder's per-batch coordination on Redis in one round trip each instead of one call
//! per step: admission (breaker, then rate limit) before a delivery, and the breaker outcomes
//! with the delivered ids after it.

use super::{RedisQueue, delivered, redis_err, scripts};
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
        // One round trip: the breaker's script by EVALSHA (loaded and sent again if Redis
        // lost it: an id recorded twice reads as once), the ids by native commands.
        let mut pipe = redis::pipe();
        if let Some(b) = breaker {
            let outcomes: String = b.successes.iter().map(|s| if *s { '1' } else { '0' }).collect();
            pipe.cmd("EVALSHA")
                .arg(scripts::RECORD_DELIVERY.get_hash())
                .arg(4)
                .arg(&self.keys.breaker(b.name)[..])
                .arg(outcomes)
                .arg(if b.trip { "1" } else { "0" })
                .arg(b.threshold.max(1));
        }
        self.delivered_commands(&mut pipe, delivered, ttl);
        let mut c = self.connection();
        let context = "recording a delivery (breaker, delivered ids)";
        let replies: Vec<redis::Value> = match pipe.query_async(&mut c).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                scripts::RECORD_DELIVERY.prepare_invoke().load_async(&mut c).await.map_err(redis_err(context))?;
                pipe.query_async(&mut c).await.map_err(redis_err(context))?
            }
            r => r.map_err(redis_err(context))?,
        };
        let Some(reply) = replies.into_iter().next() else {
            return Ok((Vec::new(), 0));
        };
        let (states, failures): (Vec<String>, u64) =
            redis::from_redis_value(reply).map_err(|e| redis_err(context)(e.into()))?;
        Ok((states.iter().map(|s| BreakerState::parse(s)).collect(), failures))
    }

    /// Adds to `pipe` (replies ignored) the record of `ids` as delivered for `ttl` (see
    /// [`delivered`]).
    pub(super) fn delivered_commands(&self, pipe: &mut redis::Pipeline, ids: &[String], ttl: Duration) {
        if ids.is_empty() {
            return;
        }
        // The delivered-id check compares with this process's clock, so the expiry uses it too.
        delivered::record(&self.keys, pipe, ids, chrono::Utc::now().timestamp_millis(), ttl);
    }
}
