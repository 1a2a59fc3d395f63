//! Rule changes reach running alerters on both backends through `Coordination`: a change
//! written to the store, announced with `publish_rules_changed` (Redis pub/sub) or seen in the
//! data file's rules version (embedded), calls every watcher, and a stopped watcher returns.

use mutt_core::rule::RuleDraft;
use mutt_testapp::{BackendKind, Site};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

mutt_testapp::both_backends!(a_rule_change_reaches_the_watcher);

async fn a_rule_change_reaches_the_watcher(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    let calls = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let (watcher, seen, s) = (b.coordination.clone(), calls.clone(), stop.clone());
    let task = tokio::spawn(async move {
        watcher
            .watch_rules_changed(
                Box::new(move || {
                    seen.fetch_add(1, Ordering::SeqCst);
                }),
                s,
            )
            .await;
    });
    // Let the watcher subscribe (or read the first version) before the change.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no change yet, no call");

    let draft: RuleDraft = serde_json::from_value(serde_json::json!({
        "match_string": "LINK-DOWN", "match_type": "contains", "priority": 5,
        "prod_handling": "Page_and_ticket", "dev_handling": "Ticket_only", "team_assignment": "NetOps"
    }))
    .expect("draft");
    b.store.create_rule(&draft).await.expect("create rule");
    let listeners = b.coordination.publish_rules_changed().await.expect("publish");
    match kind {
        BackendKind::RedisPostgres => assert_eq!(listeners, Some(1), "the watcher is subscribed"),
        BackendKind::Embedded => assert_eq!(listeners, None, "the data file's version is the message"),
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one change, one call");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the watcher stops").expect("no panic");
}
