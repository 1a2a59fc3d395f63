//! Per-key request limits (`IngestConfig::key_rate_limits`): each named key has its own
//! budget of requests per window, shared by all ingestors through the coordination backend
//! (as the shared `ingest_max_rate` limit), checked after the key gate and before the shared
//! limit. Over it the request gets the original's 429 with `Retry-After`.

use crate::Ingest;
use crate::accept::Rejection;
use mutt_queue::RateDecision;

/// Takes one request from `name`'s budget; fails open when the backend cannot be asked (the
/// push would fail with 503 anyway), as the shared limit does.
pub async fn admit(ingest: &Ingest, name: &str, correlation_id: &str) -> Result<(), Rejection> {
    let Some(limit) = ingest.config().key_rate_limits.get(name) else {
        return Ok(());
    };
    let bucket = format!("ingestor_key_{name}");
    match ingest.rate_limit(&bucket, limit.limit, limit.window).await {
        Ok(RateDecision::Allowed) => Ok(()),
        Ok(RateDecision::Limited { retry_after }) => {
            ingest.metrics().rate_limit_hits.inc();
            ingest.metrics().request("fail", "rate_limit");
            // Expected while a sender is over its budget: counted, logged at debug (as the shared limit).
            tracing::debug!(correlation_id, key = name, "request over the key's rate limit");
            Err(Rejection::RateLimited { retry_after })
        }
        Err(e) => {
            tracing::warn!(correlation_id, key = name, error = %e, "rate limiter unavailable; allowing the request");
            Ok(())
        }
    }
}
