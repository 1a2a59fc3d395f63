//! Flap windows on Redis, beyond the conformance suite: what the keys hold. A window's
//! per-event verdicts live only while it is open (a closed window keeps its summary's fields),
//! a claimed window is `<window key>:<until>` scored by its lease's end in `flap:due` (the
//! claim `<that key>#<lease end>`), and a
//! window left closed by the release before leases (renamed, verdicts and all, no `closed`
//! field) is claimed, compacted and acknowledged as any other.

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Coordination, FlapAck, FlapEvent, FlapSummary, FlapVerdict};
use redis::aio::MultiplexedConnection;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(30);

struct Setup {
    q: RedisQueue,
    prefix: String,
    c: MultiplexedConnection,
}

async fn setup() -> Setup {
    let prefix = mutt_testkit::unique_prefix();
    let q = RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&prefix)))
        .await
        .unwrap();
    let client = redis::Client::open(mutt_testkit::redis_url()).unwrap();
    let c = client.get_multiplexed_async_connection().await.unwrap();
    Setup { q, prefix, c }
}

fn events(host: &str, n: usize) -> Vec<FlapEvent> {
    (0..n)
        .map(|i| FlapEvent {
            rule_id: 9,
            hostname: host.into(),
            event_id: format!("{host}-{i}"),
            threshold: 1,
            window: Duration::from_secs(1),
            raw: format!(r#"{{"n":{i}}}"#).into_bytes(),
        })
        .collect()
}

impl Setup {
    async fn hlen(&mut self, key: &str) -> usize {
        redis::cmd("HLEN").arg(key).query_async(&mut self.c).await.unwrap()
    }

    async fn keys(&mut self) -> Vec<String> {
        let mut k: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}flap:*", self.prefix)).query_async(&mut self.c).await.unwrap();
        k.sort();
        k
    }

    async fn due(&mut self) -> Vec<(String, i64)> {
        let due = format!("{}flap:due", self.prefix);
        redis::cmd("ZRANGE").arg(due).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut self.c).await.unwrap()
    }

    async fn ack(&self, s: &FlapSummary) -> u64 {
        let ack = FlapAck { claim: s.claim.clone(), summary: Some(b"summary".to_vec()) };
        self.q.flap_ack(&[ack]).await.unwrap()
    }

    async fn claim(&self) -> Vec<FlapSummary> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.q.flap_claim_due(10, LEASE).await.unwrap();
            if !got.is_empty() || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn verdicts_live_only_while_a_window_is_open() {
    let mut s = setup().await;
    let window = format!("{}flap:9:r1", s.prefix);
    let verdicts = s.q.flap_count(&events("r1", 50)).await.unwrap();
    assert_eq!(verdicts.iter().filter(|v| **v == FlapVerdict::Suppress).count(), 49);
    assert_eq!(s.hlen(&window).await, 7 + 50, "the summary's fields and one verdict per event");

    // Claimed: moved to its closed key with the summary's fields only, scored by the lease.
    let claimed = s.claim().await;
    assert_eq!(claimed.len(), 1);
    let (claim, lease) = claimed[0].claim.rsplit_once('#').unwrap();
    let claim = claim.to_owned();
    assert_eq!(claim, format!("{window}:{}", claimed[0].closed_at_ms));
    assert_eq!(s.hlen(&claim).await, 9, "rule, host, window, until, count, suppressed, event, closed, lease");
    assert_eq!(s.keys().await, vec![claim.clone(), format!("{}flap:due", s.prefix)]);
    let now = chrono::Utc::now().timestamp_millis();
    let due = s.due().await;
    assert_eq!(due.len(), 1);
    assert!(due[0].1 > now + 25_000, "scored by the lease's end: {due:?}");
    assert_eq!(due[0].1.to_string(), lease);
    let ttl: i64 = redis::cmd("PTTL").arg(&claim).query_async(&mut s.c).await.unwrap();
    assert!(ttl > 80_000_000, "kept a day past the claim: {ttl}");

    // Closed by the next event before anyone claimed it: compacted the same way.
    assert_eq!(s.ack(&claimed[0]).await, 1);
    s.q.flap_count(&events("r2", 20)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut next = events("r2", 1);
    next[0].event_id = "r2-next".into();
    assert_eq!(s.q.flap_count(&next).await.unwrap(), vec![FlapVerdict::Forward]);
    let open = format!("{}flap:9:r2", s.prefix);
    assert_eq!(s.hlen(&open).await, 6 + 1, "the new window (nothing held back, no event): one verdict");
    let closed: Vec<String> = s.keys().await.into_iter().filter(|k| k.starts_with(&format!("{open}:"))).collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(s.hlen(&closed[0]).await, 8, "not claimed yet: no lease");
    let claimed = s.claim().await;
    assert!(claimed[0].claim.starts_with(&format!("{}#", closed[0])), "{claimed:?}");
    assert_eq!(claimed[0].count, 20);
    assert_eq!(s.ack(&claimed[0]).await, 1);
    assert_eq!(s.keys().await, vec![open], "the open window only (quiet: it holds nothing back)");
}

#[tokio::test]
async fn a_window_closed_before_leases_existed_is_claimed_and_acknowledged() {
    let mut s = setup().await;
    // As the release before leases left it: renamed to `<key>:<until>`, verdicts included.
    let until = chrono::Utc::now().timestamp_millis() - 5_000;
    let old = format!("{}flap:9:legacy:{until}", s.prefix);
    let _: () = redis::cmd("HSET")
        .arg(&old)
        .arg(&["rule", "9", "host", "legacy", "window", "1000", "count", "3", "suppressed", "2"])
        .arg(&["event", r#"{"n":2}"#, "e:x", "f", "e:y", "s", "e:z", "s"])
        .arg("until")
        .arg(until)
        .query_async(&mut s.c)
        .await
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(format!("{}flap:due", s.prefix))
        .arg(until)
        .arg(&old)
        .query_async(&mut s.c)
        .await
        .unwrap();
    let claimed = s.claim().await;
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].hostname.as_str(), claimed[0].count, claimed[0].suppressed), ("legacy", 3, 2));
    assert_eq!(claimed[0].closed_at_ms, until);
    assert_eq!(s.hlen(claimed[0].claim.rsplit_once('#').unwrap().0).await, 9, "compacted");
    assert_eq!(s.ack(&claimed[0]).await, 1);
    assert!(s.keys().await.is_empty(), "{:?}", s.keys().await);
}

#[tokio::test]
async fn an_acknowledgement_touches_nothing_but_claimed_windows() {
    let mut s = setup().await;
    s.q.flap_count(&events("r3", 3)).await.unwrap();
    let open = format!("{}flap:9:r3", s.prefix);
    let due = format!("{}flap:due", s.prefix);
    // The open window, the due set itself, and a key outside the flap names.
    let other = format!("{}config:x", s.prefix);
    let _: () = redis::cmd("SET").arg(&other).arg("1").query_async(&mut s.c).await.unwrap();
    let acks = [format!("{open}#1"), format!("{due}#1"), format!("{other}#1"), open.clone()]
        .map(|claim| FlapAck { claim, summary: Some(b"summary".to_vec()) });
    assert_eq!(s.q.flap_ack(&acks).await.unwrap(), 0);
    assert_eq!(s.hlen(&open).await, 7 + 3);
    assert_eq!(s.due().await.len(), 1);
    let kept: i64 = redis::cmd("EXISTS").arg(&other).query_async(&mut s.c).await.unwrap();
    assert_eq!(kept, 1);
    let _: () = redis::cmd("DEL").arg(&other).arg(&open).arg(&due).query_async(&mut s.c).await.unwrap();
}
