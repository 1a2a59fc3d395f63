//! `GET /metrics` under the API prefix (spec §6.4): the ingest-rate dashboard's numbers from
//! the ingestor's minute and hour counters, read by name (no `SCAN`): the current minute's
//! rate, the means of the newest 15 and 60 minutes that had traffic (minutes without traffic
//! have no counter and are skipped, as the original did), and 24 hourly averages per minute,
//! oldest first. Answered from a cache for `METRICS_CACHE_TTL` seconds (5), as the original
//! did per Web UI process; counted as `mutt_webui_api_requests_total{endpoint="metrics"}`.

use super::ApiRouter;
#[allow(unused_imports)]
use super::openapi::*;
use crate::WebState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Minute counters live two hours: the newest 60 that exist are within the last 120.
const MINUTES_LOOKED_AT: i64 = 120;

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().route("/metrics", get(rates))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn mean(values: &[u64]) -> f64 {
    if values.is_empty() { 0.0 } else { round2(values.iter().sum::<u64>() as f64 / values.len() as f64) }
}

/// The answer from the counters read at `now`: `minutes` newest first, `hours` newest first.
pub(crate) fn summary(now: DateTime<Utc>, minutes: &[Option<u64>], hours: &[Option<u64>]) -> Value {
    let existing: Vec<u64> = minutes.iter().flatten().copied().take(60).collect();
    let current = existing.first().map_or(0.0, |v| *v as f64);
    let mut labels = Vec::with_capacity(hours.len());
    let mut data = Vec::with_capacity(hours.len());
    for (i, count) in hours.iter().enumerate() {
        let hour = now - Duration::hours(i as i64);
        labels.push(hour.format("%H:00").to_string());
        data.push(round2(count.unwrap_or(0) as f64 / 60.0));
    }
    labels.reverse();
    data.reverse();
    json!({
        "summary": {
            "current_rate_1m": round2(current),
            "avg_rate_15m": mean(&existing[..existing.len().min(15)]),
            "avg_rate_1h": mean(&existing),
        },
        "chart_24h": {"labels": labels, "data": data},
    })
}

#[utoipa::path(get, path = "/api/v2/metrics", tag = "operations",
    responses((status = 200, description = "summary (current_rate_1m, avg_rate_15m, avg_rate_1h) and chart_24h (labels, data); answered from a cache for METRICS_CACHE_TTL seconds", body = AnyObject),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn rates(State(state): State<Arc<WebState>>) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    if let Some(cached) = state.rates_cache.fresh(state.config.metrics_cache_ttl) {
        let result = Ok(Json(cached));
        state.metrics.rates(started, true, &result);
        return result;
    }
    let result = read_counters(&state).await;
    if let Ok(v) = &result {
        state.rates_cache.store(v.clone());
    }
    let result = result.map(Json);
    state.metrics.rates(started, false, &result);
    result
}

/// The answer from the counters, as they are now.
async fn read_counters(state: &WebState) -> Result<Value, ApiError> {
    let now = Utc::now();
    let minutes: Vec<String> = (0..MINUTES_LOOKED_AT)
        .map(|i| format!("1m:{}", (now - Duration::minutes(i)).format("%Y-%m-%dT%H:%M")))
        .collect();
    let hours: Vec<String> =
        (0..24).map(|i| format!("1h:{}", (now - Duration::hours(i)).format("%Y-%m-%dT%H"))).collect();
    let counters = state.queue.ingest_counters();
    let read = Instant::now();
    let m = counters.ingest_counts(&minutes).await?;
    let h = counters.ingest_counts(&hours).await?;
    state.metrics.redis_scan_latency.observe(read.elapsed().as_secs_f64());
    Ok(summary(now, &m, &h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_skipped_and_the_chart_is_oldest_first() {
        let now = "2026-01-02T14:30:00Z".parse::<DateTime<Utc>>().unwrap();
        let mut minutes = vec![None; 120];
        minutes[1] = Some(12);
        minutes[5] = Some(6);
        minutes[100] = Some(3);
        let mut hours = vec![None; 24];
        hours[0] = Some(120);
        hours[23] = Some(30);
        let v = summary(now, &minutes, &hours);
        assert_eq!(v["summary"], json!({"current_rate_1m": 12.0, "avg_rate_15m": 7.0, "avg_rate_1h": 7.0}));
        assert_eq!(v["chart_24h"]["labels"][0], "15:00");
        assert_eq!(v["chart_24h"]["labels"][23], "14:00");
        assert_eq!(v["chart_24h"]["data"][0], 0.5);
        assert_eq!(v["chart_24h"]["data"][23], 2.0);
        let empty = summary(now, &[None; 120], &[None; 24]);
        assert_eq!(empty["summary"]["avg_rate_1h"], 0.0);
    }
}
