//! Conformance tests of the queue interface against a real redis-server.
//! (The embedded backend will run the same `suite` functions.)

mod suite;

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use std::sync::Arc;

async fn queue() -> Arc<dyn mutt_queue::Queue> {
    let config = RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()));
    Arc::new(RedisQueue::connect(&config).await.expect("connect to test redis"))
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                suite::$name(queue().await).await;
            }
        )*
    };
}

conformance!(
    fifo_order,
    batch_lease_and_ack,
    settle_emits_to_output_and_is_idempotent,
    retry_counts_and_dead_letters,
    delayed_retry_waits_until_due,
    dead_letter_records_reason,
    put_back_keeps_message_unchanged_at_front,
    janitor_recovers_dead_worker,
    janitor_leaves_live_worker_alone,
    shutdown_hands_back_lease,
    restart_with_same_pod_takes_back_own_lease,
    lease_waits_for_first_message,
    status_reports_depths_and_workers,
    rate_limit_is_a_sliding_window,
    message_that_keeps_killing_workers_is_dead_lettered,
    unhandled_counter_fires_once_at_the_threshold,
    rate_limit_grants_part_of_a_batch,
    circuit_breaker_opens_half_opens_with_one_probe_and_closes,
    delivered_ids_are_remembered,
    dynamic_configuration_is_set_and_read_live,
);

#[tokio::test]
async fn pod_names_with_colons_are_rejected() {
    assert!(mutt_core::PodName::parse("alerter:1").is_err());
}
