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
//! `"pod"` when one was given; the checks run one after the other, in the order added.

use crate::ops::{HealthCheck, HealthReport};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;

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

    /// Runs the checks and builds the body.
    pub async fn report(&self) -> HealthReport {
        let mut results = Vec::with_capacity(self.checks.len());
        for c in &self.checks {
            results.push((c.name.as_str(), (c.run)().await));
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
        self.describe(&mut body, &results);
        HealthReport { healthy, body }
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

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
