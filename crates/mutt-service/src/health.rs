//! One builder for every role's `/health`: the service's name, its dependency checks, and how
//! the body reports them (each role keeps the body shape it had, which monitoring may read).
//!
//! ```text
//! let health = Health::new("mutt-alerter")
//!     .pod(pod)
//!     .check("Redis", queue, |q| async move { q.ping().await })
//!     .check("PostgreSQL", store, |s| async move { s.ping().await });
//! let router = mutt_service::ops::routes(metrics, Arc::new(health));
//! ```
//!
//! Every body has `"status": "healthy" | "unhealthy"`, `"service"` and `"version"`, plus
//! `"pod"` when one was given; the checks run one after the other, in the order added, each
//! within a deadline (a dependency that never answers fails its check instead of hanging the
//! probe).
//!
//! A worker role adds its loop's [`Watchdog`]: a loop that has finished no batch (nor an empty
//! lease) for the stall timeout makes the role unhealthy, so an orchestrator restarts it even
//! when every dependency answers a ping.

use crate::ops::{HealthCheck, HealthReport};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a failed check says in the body shown without a key ([`HealthReport::public`]).
pub const REDACTED: &str = "unavailable";

/// How long one dependency check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a worker's loop still makes progress: the loop calls [`Watchdog::progress`] after
/// every batch (settled, empty, paused); [`Watchdog::check`] fails once the last one is older
/// than the stall timeout. Cheap to clone; clones share the clock.
#[derive(Clone, Debug)]
pub struct Watchdog {
    inner: Arc<WatchdogInner>,
}

#[derive(Debug)]
struct WatchdogInner {
    started: Instant,
    /// Milliseconds from `started` to the last progress.
    last_ms: AtomicU64,
    stall_timeout: Duration,
}

impl Watchdog {
    /// The default stall timeout (`worker.stall_timeout_secs`): well above a batch's longest
    /// normal duration (a lease wait, a 10 s webhook timeout, a breaker pause).
    pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);

    /// A watchdog whose loop counts as making progress from now.
    pub fn new(stall_timeout: Duration) -> Self {
        let inner = WatchdogInner { started: Instant::now(), last_ms: AtomicU64::new(0), stall_timeout };
        Self { inner: Arc::new(inner) }
    }

    /// The loop finished a step.
    pub fn progress(&self) {
        let ms = self.inner.started.elapsed().as_millis() as u64;
        self.inner.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since the last progress.
    pub fn since_progress(&self) -> Duration {
        let last = Duration::from_millis(self.inner.last_ms.load(Ordering::Relaxed));
        self.inner.started.elapsed().saturating_sub(last)
    }

    pub fn stall_timeout(&self) -> Duration {
        self.inner.stall_timeout
    }

    /// `Err` naming how long the loop has been stuck, once that exceeds the stall timeout.
    pub fn check(&self) -> Result<(), String> {
        let idle = self.since_progress();
        if idle > self.inner.stall_timeout {
            return Err(format!(
                "worker loop made no progress for {} s (stall timeout {} s)",
                idle.as_secs(),
                self.inner.stall_timeout.as_secs()
            ));
        }
        Ok(())
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Self::new(Self::DEFAULT_STALL_TIMEOUT)
    }
}

/// How the body reports the checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HealthStyle {
    /// When something fails: `"errors": ["<name>: <error>", …]`; nothing when all pass
    /// (alerter, forwarder).
    #[default]
    ErrorList,
    /// One field per check: `"<name>": "connected"`, or the error text (web).
    Fields,
    /// One field per check: `"<name>": "connected"` or `"disconnected"`, plus `"error": "<error>"`
    /// for the failed check (ingestor).
    FieldsAndError,
}

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

struct Check {
    name: String,
    run: Box<dyn Fn() -> CheckFuture + Send + Sync>,
}

/// A `/health` made of named checks; implements [`HealthCheck`].
pub struct Health {
    service: String,
    version: String,
    pod: Option<String>,
    style: HealthStyle,
    checks: Vec<Check>,
    /// How long one check may take ([`CHECK_TIMEOUT`]).
    check_timeout: Duration,
}

impl Health {
    /// A report for `service` (its `"service"` field), version this workspace's.
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pod: None,
            style: HealthStyle::default(),
            checks: Vec::new(),
            check_timeout: CHECK_TIMEOUT,
        }
    }

    /// Adds `"pod": <pod>` to the body.
    pub fn pod(mut self, pod: impl Into<String>) -> Self {
        self.pod = Some(pod.into());
        self
    }

    pub fn style(mut self, style: HealthStyle) -> Self {
        self.style = style;
        self
    }

    /// Adds a dependency check: `probe(state.clone())` on every `/health`; an `Err` makes the
    /// role unhealthy and is reported under `name`.
    pub fn check<S, F, Fut, E>(mut self, name: impl Into<String>, state: S, probe: F) -> Self
    where
        S: Clone + Send + Sync + 'static,
        F: Fn(S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let run = move || -> CheckFuture {
            let fut = probe(state.clone());
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        };
        self.checks.push(Check { name: name.into(), run: Box::new(run) });
        self
    }

    /// How long one check may take before it fails (default [`CHECK_TIMEOUT`]).
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// Adds the worker loop's watchdog as the check `worker`.
    pub fn watchdog(self, watchdog: Watchdog) -> Self {
        self.check("worker", watchdog, |w| async move { w.check() })
    }

    /// Runs the checks and builds the body.
    pub async fn report(&self) -> HealthReport {
        let mut results = Vec::with_capacity(self.checks.len());
        for c in &self.checks {
            let result = match tokio::time::timeout(self.check_timeout, (c.run)()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} ms", self.check_timeout.as_millis())),
            };
            results.push((c.name.as_str(), result));
        }
        let healthy = results.iter().all(|(_, r)| r.is_ok());
        let mut body = json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "service": self.service,
            "version": self.version,
        });
        if let Some(pod) = &self.pod {
            body["pod"] = json!(pod);
        }
        let mut public = body.clone();
        // Without a key /health shows which check failed, not why (the text may name hosts,
        // users or paths); the reason goes to the log and to an authenticated /health.
        let redacted: Vec<(&str, Result<(), String>)> =
            results.iter().map(|(n, r)| (*n, r.clone().map_err(|_| REDACTED.to_owned()))).collect();
        self.describe(&mut public, &redacted);
        self.describe(&mut body, &results);
        HealthReport { healthy, body, public }
    }

    fn describe(&self, body: &mut Value, results: &[(&str, Result<(), String>)]) {
        match self.style {
            HealthStyle::ErrorList => {
                let errors: Vec<String> =
                    results.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}"))).collect();
                if !errors.is_empty() {
                    body["errors"] = json!(errors);
                }
            }
            HealthStyle::Fields => {
                for (name, r) in results {
                    body[*name] = json!(r.as_ref().err().map_or("connected", String::as_str));
                }
            }
            HealthStyle::FieldsAndError => {
                for (name, r) in results {
                    body[*name] = json!(if r.is_ok() { "connected" } else { "disconnected" });
                    if let Err(e) = r {
                        body["error"] = json!(e);
                    }
                }
            }
        }
    }
}

#[async_trait]
impl HealthCheck for Health {
    async fn check(&self) -> HealthReport {
        self.report().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn switch(on: bool) -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(on))
    }

    async fn probe(up: Arc<AtomicBool>) -> Result<(), String> {
        if up.load(Ordering::SeqCst) { Ok(()) } else { Err("connection refused".into()) }
    }

    #[tokio::test]
    async fn error_list_appears_only_when_unhealthy() {
        let (redis, db) = (switch(true), switch(true));
        let h =
            Health::new("mutt-alerter").pod("a-0").check("Redis", redis.clone(), probe).check("PostgreSQL", db, probe);
        let r = h.report().await;
        assert!(r.healthy);
        assert_eq!(
            r.body,
            json!({"status": "healthy", "service": "mutt-alerter", "version": env!("CARGO_PKG_VERSION"), "pod": "a-0"})
        );
        redis.store(false, Ordering::SeqCst);
        let r = h.report().await;
        assert!(!r.healthy);
        assert_eq!(r.body["status"], "unhealthy");
        assert_eq!(r.body["errors"], json!(["Redis: connection refused"]));
    }

    #[tokio::test]
    async fn the_public_body_names_failed_checks_without_their_errors() {
        for (style, field, want) in [
            (HealthStyle::ErrorList, "errors", json!(["Redis: unavailable"])),
            (HealthStyle::Fields, "Redis", json!("unavailable")),
            (HealthStyle::FieldsAndError, "error", json!("unavailable")),
        ] {
            let h = Health::new("s").style(style).check("Redis", switch(false), probe);
            let r = h.report().await;
            assert!(!r.healthy);
            assert_eq!(r.public[field], want, "{style:?}");
            assert_eq!(r.public["status"], "unhealthy");
            assert!(!r.public.to_string().contains("refused"), "{style:?}: {}", r.public);
            assert!(r.body.to_string().contains("connection refused"), "{style:?}: {}", r.body);
        }
        let up = Health::new("s").style(HealthStyle::FieldsAndError).check("redis", switch(true), probe).report().await;
        assert_eq!(up.public, up.body, "nothing to hide when healthy");
    }

    #[tokio::test]
    async fn a_stalled_worker_loop_makes_the_role_unhealthy() {
        let dog = Watchdog::new(Duration::from_millis(300));
        let h = Health::new("mutt-forwarder").watchdog(dog.clone());
        assert!(h.report().await.healthy);
        tokio::time::sleep(Duration::from_millis(200)).await;
        dog.progress();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(h.report().await.healthy, "progress 200 ms ago");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = h.report().await;
        assert!(!r.healthy);
        let error = r.body["errors"][0].as_str().unwrap().to_owned();
        assert!(error.starts_with("worker: worker loop made no progress for"), "{error}");
        dog.progress();
        assert!(h.report().await.healthy, "back once the loop moves again");
    }

    #[tokio::test]
    async fn a_check_that_never_answers_fails_after_the_deadline() {
        let h = Health::new("mutt-alerter").check_timeout(Duration::from_millis(100)).check("Redis", (), |_| async {
            std::future::pending::<()>().await;
            Ok::<(), String>(())
        });
        let r = h.report().await;
        assert!(!r.healthy);
        assert_eq!(r.body["errors"], json!(["Redis: no answer within 100 ms"]));
    }

    #[tokio::test]
    async fn fields_say_connected_or_the_error() {
        let (redis, db) = (switch(true), switch(false));
        let h = Health::new("mutt-web")
            .style(HealthStyle::Fields)
            .check("redis", redis, probe)
            .check("database", db, probe);
        let r = h.report().await;
        assert!(!r.healthy);
        assert_eq!(r.body["redis"], "connected");
        assert_eq!(r.body["database"], "connection refused");
        assert!(r.body.get("pod").is_none() && r.body.get("errors").is_none());
    }

    #[tokio::test]
    async fn fields_and_error_say_disconnected() {
        let redis = switch(true);
        let h = Health::new("mutt-ingestor").style(HealthStyle::FieldsAndError).check("redis", redis.clone(), probe);
        let r = h.report().await;
        assert_eq!(
            r.body,
            json!({"status": "healthy", "service": "mutt-ingestor", "version": env!("CARGO_PKG_VERSION"), "redis": "connected"})
        );
        redis.store(false, Ordering::SeqCst);
        let r = h.report().await;
        assert_eq!(r.body["redis"], "disconnected");
        assert_eq!(r.body["error"], "connection refused");
        assert!(!r.healthy);
    }
}
