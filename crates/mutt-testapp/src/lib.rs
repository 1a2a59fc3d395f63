//! The test harness the web tests and muttd's end-to-end tests share.
//!
//! - [`site`]: where one test's data lives ([`Site`]: a fresh Redis key prefix and a fresh
//!   migrated PostgreSQL database, or an embedded SQLite file in a temporary directory), and
//!   its opened handles ([`TestBackend`]: queue, coordination, store).
//! - [`app`]: [`spawn_app`], the web role served on `127.0.0.1:0` over a fresh site.
//! - [`client`]: [`ApiClient`], an HTTP client that sends the API key and reads JSON replies.
//! - [`fixtures`]: data several crates' tests build alike ([`fixtures::rule`]).
//! - [`both_backends!`]: runs a test function once per backend.
//!
//! A test of the Redis + PostgreSQL backend needs the test services
//! (`source .test-services/env`); the embedded backend needs nothing.

pub mod app;
pub mod client;
pub mod fixtures;
pub mod site;
pub mod sql;

pub use app::{Served, TestApp, serve_web, spawn_app};
pub use client::{ApiClient, Reply};
pub use site::{BackendKind, Site, TestBackend};

/// The HTTP client library of [`ApiClient`], for requests the helpers do not cover.
pub use reqwest;

/// Turns each `async fn name(kind: BackendKind)` into two tests, `name::redis_postgres` and
/// `name::embedded`. The calling crate needs `tokio` (with its test macro) as a
/// dev-dependency.
#[macro_export]
macro_rules! both_backends {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test]
                async fn redis_postgres() {
                    super::$test($crate::BackendKind::RedisPostgres).await
                }

                #[tokio::test]
                async fn embedded() {
                    super::$test($crate::BackendKind::Embedded).await
                }
            }
        )+
    };
}
