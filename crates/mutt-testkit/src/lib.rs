//! Test harness shared by the crates' black-box tests.
//!
//! - [`services`]: the private Redis and PostgreSQL that `scripts/test-services.sh` started
//!   (found through `MUTT_TEST_REDIS_URL` / `MUTT_TEST_DATABASE_URL`), with a fresh database and
//!   a fresh key prefix per test so tests never see each other's data.
//! - [`redis_server`]: a `redis-server` process of a test's own, for restart tests.
//! - [`receiver`]: a webhook receiver standing in for Moogsoft; it records requests and can be
//!   told to succeed, fail with a status, rate-limit, or hang.
//! - [`fault_proxy`]: a TCP proxy injecting network faults (delay, blackhole, reset, lost
//!   replies) between a worker and Redis, PostgreSQL or the webhook.
//! - [`skip`]: skipping a test whose real client is missing, never under CI.
//! - [`vault_stub`]: a stub of Vault's documented API (AppRole login, KV v2 read, token
//!   lookup and renewal) with expiring tokens and rotatable secrets.
//! - `browser` (feature `browser`): headless Chromium driven over WebDriver for the console's
//!   browser tests, with screenshots into `docs/ui/`.

#[cfg(feature = "browser")]
pub mod browser;
pub mod fault_proxy;
pub mod postgres_server;
pub mod receiver;
pub mod redis_server;
pub mod services;
pub mod skip;
pub mod vault_stub;

pub use fault_proxy::{FaultMode, FaultProxy, ProxyCounts};
pub use postgres_server::PostgresServer;
pub use receiver::{ReceiverCounts, ReceiverMode, ReceiverOptions, Recorded, WebhookReceiver};
pub use redis_server::{RedisServer, TestCertificates};
pub use services::{fresh_database, redis_url, unique_prefix};
pub use skip::skip_or_fail;
pub use vault_stub::{VaultCounts, VaultStub};
