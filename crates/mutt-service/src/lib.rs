//! The parts every MUTT role's process shares.
//!
//! - [`auth`]: the constant-time API-key check of every role's HTTP gate.
//! - [`metrics`]: a role's Prometheus registry and its `/metrics` text.
//! - [`process`]: the conventional `process_*` metrics (CPU, memory, fds), once per process.
//! - [`health`]: the `/health` body of every role, built from named dependency checks.
//! - [`ops`]: the `/health`, `/live` and `/metrics` routes every role serves (and the probe-only ones).
//! - [`serve`]: running an axum router until shutdown, draining in-flight requests.
//! - [`backoff`]: capped exponential backoff with full jitter, for reconnect loops.

pub mod auth;
pub mod backoff;
pub mod health;
pub mod metrics;
pub mod ops;
pub mod process;

use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;
pub use health::{Health, HealthStyle};
pub use metrics::Metrics;
pub use ops::{HealthCheck, HealthReport};

/// How long in-flight HTTP requests may take to finish after shutdown was asked for.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish (bounded by [`DRAIN_TIMEOUT`]).
pub async fn serve(listener: TcpListener, router: axum::Router, shutdown: CancellationToken) -> std::io::Result<()> {
    let graceful = shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move { graceful.cancelled().await });
    tokio::select! {
        r = server => r,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
            tracing::warn!("in-flight requests did not finish within the drain timeout");
            Ok(())
        }
    }
}

/// Sleeps for `d` unless shutdown comes first; returns false when shutdown came.
pub async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.cancelled() => false,
    }
}
