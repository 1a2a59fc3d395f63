//! The parts every MUTT role's process shares.
//!
//! - [`auth`]: the constant-time API-key check of every role's HTTP gate.
//! - [`metrics`]: a role's Prometheus registry and its `/metrics` text.
//! - [`process`]: the conventional `process_*` metrics (CPU, memory, fds), once per process.
//! - [`health`]: the `/health` body of every role, built from named dependency checks.
//! - [`ops`]: the `/health`, `/live` and `/metrics` routes every role serves (and the probe-only ones).
//! - [`http`]: running an axum router within [`HttpLimits`] (timeouts, connection cap) until
//!   shutdown, draining in-flight requests.
//! - [`tls`]: TLS on a role's own listener (certificate, optional client certificates),
//!   reloaded on SIGHUP ([`tls::reload_all`]).
//! - [`backoff`]: capped exponential backoff with full jitter, for reconnect loops.

pub mod auth;
pub mod backoff;
pub mod health;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod process;
pub mod tls;

use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;
pub use health::{Health, HealthStyle, Watchdog};
pub use http::{HttpLimits, serve, serve_with, serve_with_tls};
pub use metrics::Metrics;
pub use ops::{HealthCheck, HealthReport};

/// How long in-flight HTTP requests may take to finish after shutdown was asked for.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Sleeps for `d` unless shutdown comes first; returns false when shutdown came.
pub async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.cancelled() => false,
    }
}
