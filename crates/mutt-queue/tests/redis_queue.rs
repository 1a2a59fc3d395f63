//! Conformance tests of the queue interface against a real redis-server.
//! (The embedded backend will run the same `suite` functions.)

#[macro_use]
mod suite;

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use std::sync::Arc;

async fn backend() -> (Arc<dyn mutt_queue::Backend>, ()) {
    let config = RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()));
    (Arc::new(RedisQueue::connect(&config).await.expect("connect to test redis")), ())
}

conformance!(tests);

#[tokio::test]
async fn pod_names_with_colons_are_rejected() {
    assert!(mutt_core::PodName::parse("alerter:1").is_err());
}
