//! Conformance cases of the forwarder's per-batch coordination: redelivery flags on leases,
//! and admission and delivery recorded in one step each.

use super::{WAIT, config, msg, push_n};
use mutt_queue::{AdmitRequest, Backend, BreakerOutcomes, BreakerPermit, BreakerState, QueueId, WorkerRole};
use std::sync::Arc;
use std::time::Duration;

/// A forwarder that dies holding alerts: the next lease of them says they may have been
/// delivered (so the forwarder checks the delivered ids before sending them again).
pub async fn a_recovered_message_is_leased_as_a_possible_redelivery(q: Arc<dyn Backend>) {
    push_n(&q, QueueId::Alert, 2).await;
    let c = config(WorkerRole::Forwarder, "redeliver");
    let mut first = q.consumer(c.clone()).await.unwrap();
    let lease = first.lease(10, WAIT).await.unwrap().unwrap();
    assert_eq!(lease.messages, vec![msg(0), msg(1)]);
    drop(first); // dies holding them; the next start under this pod name hands them back
    let mut again = q.consumer(c).await.unwrap();
    let lease = again.lease(10, WAIT).await.unwrap().unwrap();
    assert_eq!(lease.messages, vec![msg(0), msg(1)]);
    assert!((0..2).all(|i| lease.possibly_redelivered(i)), "both were leased before");
    again.shutdown().await.unwrap();
}

pub async fn admission_and_delivery_are_recorded_in_one_step_each(q: Arc<dyn Backend>) {
    let open_for = Duration::from_secs(60);
    let req = |want| AdmitRequest {
        breaker: Some(("batch-moog", open_for)),
        rate: Some(("batch-moog", 10, Duration::from_secs(5))),
        want,
        probe_size: 1,
    };
    let (permit, grant) = q.admit(req(7)).await.unwrap();
    assert_eq!((permit, grant.granted), (BreakerPermit::Go, 7));
    let (permit, grant) = q.admit(req(7)).await.unwrap();
    assert_eq!((permit, grant.granted), (BreakerPermit::Go, 3), "only what the rate limit has left");
    assert!(grant.retry_after > Duration::ZERO);
    // No breaker, no rate limit: everything goes.
    let free = AdmitRequest { breaker: None, rate: None, want: 5, probe_size: 1 };
    assert_eq!(
        q.admit(free).await.unwrap(),
        (BreakerPermit::Go, mutt_queue::RateGrant { granted: 5, retry_after: Duration::ZERO })
    );

    let ids: Vec<String> = vec!["d1".into(), "d2".into()];
    let outcomes =
        BreakerOutcomes { name: "batch-moog", successes: &[false, false, true, false], trip: false, threshold: 2 };
    let (states, failures) = q.record_delivery(Some(outcomes), &ids, Duration::from_secs(60)).await.unwrap();
    use BreakerState::{Closed, Open};
    assert_eq!((states, failures), (vec![Closed, Open, Closed, Closed], 1), "each outcome in order");
    assert_eq!(q.already_delivered(&[ids[0].clone(), "d3".into()]).await.unwrap(), vec![true, false]);
    // A hold opens it whatever the count; the next admission waits and grants nothing.
    let trip = BreakerOutcomes { name: "batch-moog", successes: &[], trip: true, threshold: 2 };
    let (states, _) = q.record_delivery(Some(trip), &[], Duration::from_secs(60)).await.unwrap();
    assert_eq!(states, vec![Open]);
    let (permit, grant) = q.admit(req(1)).await.unwrap();
    assert!(matches!(permit, BreakerPermit::Wait { .. }), "{permit:?}");
    assert_eq!(grant.granted, 0);
    assert_eq!(q.breaker_state("batch-moog").await.unwrap().0, Open);
}
