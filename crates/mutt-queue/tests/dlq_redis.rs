//! The dead-letter toolbox on a real redis-server (`dlq_suite`), plus the original's keys.

#[macro_use]
mod dlq_suite;

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use std::sync::Arc;

async fn backend() -> (Arc<dyn mutt_queue::Backend>, ()) {
    let config = RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()));
    (Arc::new(RedisQueue::connect(&config).await.expect("connect to test redis")), ())
}

dlq_tests!();

#[test]
fn the_dlq_keys_are_the_originals() {
    let k = KeySpace::default();
    assert_eq!(
        (k.alerter_dlq.as_str(), k.moog_dlq.as_str(), k.dead_dlq.as_str()),
        ("mutt:dlq:alerter", "mutt:dlq:moog", "mutt:dlq:dead")
    );
}
