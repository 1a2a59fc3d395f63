//! An HTTP load generator for the ingest API: closed loop (N connections as fast as they go)
//! or open loop at a fixed rate, where each request's latency is measured from the moment it
//! was due, so a stalled server cannot hide its queueing (no coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub events_ok: u64,
    pub elapsed: Duration,
    /// Sorted latencies in microseconds.
    pub latencies_us: Vec<u64>,
}

impl LoadResult {
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    pub fn events_per_sec(&self) -> f64 {
        self.events_ok as f64 / self.elapsed.as_secs_f64()
    }

    fn merge(parts: Vec<LoadResult>, elapsed: Duration) -> LoadResult {
        let mut r = LoadResult { elapsed, ..LoadResult::default() };
        for p in parts {
            r.requests_ok += p.requests_ok;
            r.requests_failed += p.requests_failed;
            r.events_ok += p.events_ok;
            r.latencies_us.extend(p.latencies_us);
        }
        r.latencies_us.sort_unstable();
        r
    }
}

#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub api_key: String,
    /// The request body and how many events it carries.
    pub body: Arc<Vec<u8>>,
    pub events_per_request: u64,
}

fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .http1_only()
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}

async fn one(client: &reqwest::Client, t: &Target) -> bool {
    let r = client
        .post(&t.url)
        .header("content-type", "application/json")
        .header("x-api-key", &t.api_key)
        .body(t.body.as_ref().clone())
        .send()
        .await;
    match r {
        Ok(resp) => {
            let ok = resp.status().is_success();
            let _ = resp.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

/// `connections` loops each sending the next request as soon as the previous answered.
pub async fn closed_loop(t: &Target, connections: usize, duration: Duration) -> LoadResult {
    let client = client(connections);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, t) = (client.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = LoadResult::default();
            while Instant::now() < deadline {
                let s = Instant::now();
                if one(&client, &t).await {
                    r.requests_ok += 1;
                    r.events_ok += t.events_per_request;
                    r.latencies_us.push(s.elapsed().as_micros() as u64);
                } else {
                    r.requests_failed += 1;
                }
            }
            r
        }));
    }
    let mut parts = Vec::new();
    for task in tasks {
        if let Ok(r) = task.await {
            parts.push(r);
        }
    }
    LoadResult::merge(parts, started.elapsed())
}

/// Sends `rate` requests per second for `duration`, each at its due time (up to
/// `max_in_flight` outstanding); latency counts from the due time.
pub async fn fixed_rate(t: &Target, rate: u64, duration: Duration, max_in_flight: usize) -> LoadResult {
    let client = client(max_in_flight);
    let started = Instant::now();
    let total = rate * duration.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let sem = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let permit = sem.clone().acquire_owned().await;
        let (client, t) = (client.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let ok = one(&client, &t).await;
            (ok, due.elapsed().as_micros() as u64)
        }));
    }
    let mut r = LoadResult::default();
    for task in tasks {
        if let Ok((ok, us)) = task.await {
            if ok {
                r.requests_ok += 1;
                r.events_ok += t.events_per_request;
                r.latencies_us.push(us);
            } else {
                r.requests_failed += 1;
            }
        }
    }
    LoadResult::merge(vec![r], started.elapsed())
}
