//! `/`: the pipeline at a glance: ingest rates (the counters `/api/v2/metrics` reads) with a
//! 24-hour chart, queue, DLQ and delayed-retry depths, the workers, the forwarder's circuit
//! breaker and the newest dead letters. `/overview/live` is the same body as a fragment that
//! htmx polls every few seconds; without JavaScript the page reloads itself.

use super::{Page, Session, render};
use crate::WebState;
use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use chrono::{Duration, Utc};
use mutt_queue::dlq::{Dlq, DlqEntry, End, EntryInfo};
use mutt_queue::{ProcessingList, QueueStatus};
use serde_json::Value;
use std::sync::Arc;

/// How many of the newest entries of each DLQ the page lists.
const NEWEST_DEAD_LETTERS: u64 = 3;

pub(crate) fn routes() -> Router<Arc<WebState>> {
    Router::new().route("/", get(page)).route("/overview/live", get(fragment))
}

/// Events per minute, as the rates endpoint reports them.
struct Rates {
    current: f64,
    avg_15m: f64,
    avg_1h: f64,
    /// The 24-hour chart (oldest first).
    chart: Chart,
}

/// A bar chart drawn as inline SVG on the server.
struct Chart {
    bars: Vec<Bar>,
    max: f64,
}

struct Bar {
    x: f64,
    y: f64,
    height: f64,
    label: String,
    value: f64,
}

/// SVG geometry of the chart (viewBox units).
const CHART_W: f64 = 960.0;
const CHART_H: f64 = 160.0;
const CHART_TOP: f64 = 10.0;

impl Chart {
    fn new(labels: &[Value], data: &[Value]) -> Self {
        let values: Vec<f64> = data.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect();
        let max = values.iter().copied().fold(0.0, f64::max);
        let slot = CHART_W / values.len().max(1) as f64;
        let bars = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let height = if max > 0.0 { v / max * (CHART_H - CHART_TOP) } else { 0.0 };
                Bar {
                    x: i as f64 * slot + 1.0,
                    y: CHART_H - height,
                    height,
                    label: labels.get(i).and_then(Value::as_str).unwrap_or_default().to_string(),
                    value: *v,
                }
            })
            .collect();
        Self { bars, max }
    }

    /// Each bar's width (a one-unit gap between bars).
    fn bar_width(&self) -> f64 {
        (CHART_W / self.bars.len().max(1) as f64 - 2.0).max(1.0)
    }

    /// Every sixth label (04:00, 10:00, ...), with its x position.
    fn ticks(&self) -> Vec<(f64, &str)> {
        self.bars.iter().step_by(6).map(|b| (b.x, b.label.as_str())).collect()
    }
}

/// Alerts forwarded (audit rows with `forwarded`), per minute, by the events' time.
struct Out {
    last_1m: f64,
    avg_15m: f64,
    avg_1h: f64,
}

/// Everything the live part shows; a part that could not be read shows its error instead.
struct Live {
    rates: Result<Rates, String>,
    out: Result<Out, String>,
    status: Result<QueueStatus, String>,
    breaker: Result<(String, u64), String>,
    dead_letters: Vec<EntryInfo>,
    updated: String,
    /// The workers' heartbeat lifetime: a heartbeat's age is this minus what is left of it.
    heartbeat_ttl: std::time::Duration,
}

impl Live {
    /// How long ago the worker's heartbeat was written (`—` without one).
    fn heartbeat_age(&self, w: &ProcessingList) -> String {
        match w.heartbeat_expires_in_ms {
            Some(left) => {
                let age = self.heartbeat_ttl.saturating_sub(std::time::Duration::from_millis(left));
                format!("{:.1} s ago", age.as_secs_f64())
            }
            None => "—".to_string(),
        }
    }

    /// The badge colour of a breaker state (`CLOSED`, `HALF_OPEN`, `OPEN`).
    fn breaker_badge(state: &str) -> &'static str {
        match state {
            "CLOSED" => "ok",
            "HALF_OPEN" => "warn",
            _ => "bad",
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    page: Page,
    live: Live,
}

#[derive(Template)]
#[template(path = "overview_live.html")]
struct OverviewLive {
    live: Live,
}

/// The rates endpoint's answer read from the counters themselves (not its cached answer,
/// which is counted as an API request).
async fn read_counters(state: &WebState) -> Result<Value, mutt_queue::QueueError> {
    let now = Utc::now();
    let minutes: Vec<String> =
        (0..120).map(|i| format!("1m:{}", (now - Duration::minutes(i)).format("%Y-%m-%dT%H:%M"))).collect();
    let hours: Vec<String> =
        (0..24).map(|i| format!("1h:{}", (now - Duration::hours(i)).format("%Y-%m-%dT%H"))).collect();
    let counters = state.queue.ingest_counters();
    let m = counters.ingest_counts(&minutes).await?;
    let h = counters.ingest_counts(&hours).await?;
    Ok(crate::api::rates::summary(now, &m, &h))
}

/// The audited events forwarded within the last `minutes` (their count, not a page of them).
async fn forwarded_since(state: &WebState, minutes: i64) -> Result<u64, mutt_store::StoreError> {
    let now = Utc::now();
    let filter = mutt_store::manage::EventAuditFilter {
        forwarded: Some(true),
        start: Some(now - Duration::minutes(minutes)),
        end: Some(now),
        limit: 1,
        ..Default::default()
    };
    Ok(state.store.search_event_audit(&filter).await?.total)
}

async fn out(state: &WebState) -> Result<Out, String> {
    let (m1, m15, h1) = tokio::join!(forwarded_since(state, 1), forwarded_since(state, 15), forwarded_since(state, 60));
    let per_minute = |count: Result<u64, mutt_store::StoreError>, minutes: f64| {
        count.map(|c| (c as f64 / minutes * 100.0).round() / 100.0).map_err(|e| e.to_string())
    };
    Ok(Out { last_1m: per_minute(m1, 1.0)?, avg_15m: per_minute(m15, 15.0)?, avg_1h: per_minute(h1, 60.0)? })
}

async fn rates(state: &Arc<WebState>) -> Result<Rates, String> {
    let v = read_counters(state).await.map_err(|e| e.to_string())?;
    let num = |k: &str| v["summary"][k].as_f64().unwrap_or(0.0);
    let empty = Vec::new();
    let labels = v["chart_24h"]["labels"].as_array().unwrap_or(&empty);
    let data = v["chart_24h"]["data"].as_array().unwrap_or(&empty);
    Ok(Rates {
        current: num("current_rate_1m"),
        avg_15m: num("avg_rate_15m"),
        avg_1h: num("avg_rate_1h"),
        chart: Chart::new(labels, data),
    })
}

/// The newest entries of every DLQ, newest first (unreadable DLQs are skipped: the depths
/// above already show whether they can be read).
async fn dead_letters(state: &WebState) -> Vec<EntryInfo> {
    let store = state.queue.dead_letters();
    let now = Utc::now();
    let mut out = Vec::new();
    for dlq in Dlq::ALL {
        if let Ok(raw) = store.dlq_range(dlq, End::Newest, 0, NEWEST_DEAD_LETTERS).await {
            out.extend(raw.iter().map(|r| DlqEntry::read(dlq, &r.body, now).info));
        }
    }
    out.sort_by_key(|e| e.age_secs.unwrap_or(u64::MAX));
    out
}

async fn live(state: &Arc<WebState>) -> Live {
    let (rates, out, status, breaker, dead_letters) = tokio::join!(
        rates(state),
        out(state),
        state.queue.status(),
        state.coordination.breaker_state(crate::api::status::BREAKER),
        dead_letters(state),
    );
    Live {
        rates,
        out,
        status: status.map_err(|e| e.to_string()),
        breaker: breaker.map(|(s, n)| (s.as_str().to_string(), n)).map_err(|e| e.to_string()),
        dead_letters,
        updated: Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        heartbeat_ttl: state.config.heartbeat_ttl,
    }
}

async fn page(State(state): State<Arc<WebState>>, session: Session) -> Response {
    render(&OverviewPage { page: session.page("Overview", "/"), live: live(&state).await })
}

async fn fragment(State(state): State<Arc<WebState>>, _: Session) -> Response {
    render(&OverviewLive { live: live(&state).await })
}
