//! Losslessness of the Redis queue under `kill -9` and under a Redis restart, counted.
//! Worker processes are the `mutt-queue-worker` binary; they record processed ids in Redis.

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Queue, QueueId};
use mutt_testkit::RedisServer;
use rand::Rng;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MESSAGES: u64 = 20_000;

struct Worker {
    child: Child,
}

impl Worker {
    fn spawn(redis: &str, prefix: &str, pod: &str, work_ms: u64) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_mutt-queue-worker"))
            .args(["--redis", redis, "--prefix", prefix, "--pod", pod, "--batch", "100"])
            .args(["--work-ms", &work_ms.to_string(), "--heartbeat-ttl", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mutt-queue-worker");
        Self { child }
    }

    fn kill9(mut self) {
        let _ = Command::new("kill").args(["-9", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status within `bound`.
    fn terminate(mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Counts {
    processed_unique: u64,
    deliveries: u64,
    queued: u64,
    leased: u64,
    dead_lettered: u64,
}

/// Counts, retrying while the test's own connection reconnects (after a Redis restart).
async fn counts(queue: &RedisQueue, prefix: &str) -> Counts {
    for _ in 0..100 {
        if let Some(c) = try_counts(queue, prefix).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("redis unreachable for 10 s while counting");
}

async fn try_counts(queue: &RedisQueue, prefix: &str) -> Option<Counts> {
    let mut c = queue.connection();
    let processed_unique: u64 =
        redis::cmd("SCARD").arg(format!("{prefix}test:processed")).query_async(&mut c).await.ok()?;
    let deliveries: Option<u64> =
        redis::cmd("GET").arg(format!("{prefix}test:deliveries")).query_async(&mut c).await.ok()?;
    let status = queue.status().await.ok()?;
    Some(Counts {
        processed_unique,
        deliveries: deliveries.unwrap_or(0),
        queued: status.queues.iter().map(|d| d.depth).sum::<u64>()
            + status.delayed_retries.iter().map(|d| d.depth).sum::<u64>(),
        leased: status.processing_lists.iter().map(|p| p.depth).sum(),
        dead_lettered: status.dead_letter_queues.iter().map(|d| d.depth).sum(),
    })
}

async fn push_all(queue: &RedisQueue) {
    let msgs: Vec<Vec<u8>> = (0..MESSAGES).map(|i| format!("{{\"id\":{i}}}").into_bytes()).collect();
    for chunk in msgs.chunks(1000) {
        queue.push(QueueId::Ingest, chunk).await.unwrap();
    }
}

/// Waits until every id was processed and nothing is queued or leased (dead workers' lists
/// are recovered by the survivors' janitors once the heartbeats expire).
async fn wait_done(queue: &RedisQueue, prefix: &str, timeout: Duration) -> Counts {
    let deadline = Instant::now() + timeout;
    loop {
        let c = counts(queue, prefix).await;
        if (c.processed_unique == MESSAGES && c.queued == 0 && c.leased == 0) || Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(url: &str, prefix: &str) -> RedisQueue {
    RedisQueue::connect(&RedisConfig::single(url, KeySpace::with_prefix(prefix))).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_workers_mid_batch_loses_nothing() {
    let url = mutt_testkit::redis_url();
    let prefix = mutt_testkit::unique_prefix();
    let queue = connect(&url, &prefix).await;
    push_all(&queue).await;

    let mut a = Worker::spawn(&url, &prefix, "crash-a0", 20);
    let b = Worker::spawn(&url, &prefix, "crash-b", 20);
    let mut kills = 0;
    for round in 1..=5 {
        let wait = rand::rng().random_range(150..500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let before = counts(&queue, &prefix).await;
        a.kill9();
        kills += 1;
        // A replacement starts at once, under a new pod name (as a restarted pod would).
        a = Worker::spawn(&url, &prefix, &format!("crash-a{round}"), 20);
        eprintln!("kill -9 #{round} after {wait} ms: {before:?}");
    }
    let end = wait_done(&queue, &prefix, Duration::from_secs(90)).await;
    let exit_a = a.terminate(Duration::from_secs(10));
    let exit_b = b.terminate(Duration::from_secs(10));
    let after = counts(&queue, &prefix).await;
    println!(
        "pushed {MESSAGES}, kill -9 x{kills}: processed {} unique ids, {} deliveries ({} redelivered), \
         {} queued, {} leased, {} dead-lettered",
        end.processed_unique,
        end.deliveries,
        end.deliveries - end.processed_unique,
        end.queued,
        end.leased,
        end.dead_lettered
    );
    assert_eq!(end.processed_unique, MESSAGES, "every message processed at least once");
    assert_eq!((end.queued, end.leased, end.dead_lettered), (0, 0, 0));
    assert!(exit_a.is_some_and(|s| s.success()), "graceful exit 0: {exit_a:?}");
    assert!(exit_b.is_some_and(|s| s.success()), "graceful exit 0: {exit_b:?}");
    assert_eq!((after.queued, after.leased), (0, 0), "nothing left after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_run_loses_nothing() {
    let mut server = RedisServer::start(true).expect("start a private redis-server with AOF");
    let url = server.url();
    let prefix = mutt_testkit::unique_prefix();
    let queue = connect(&url, &prefix).await;
    push_all(&queue).await;

    let a = Worker::spawn(&url, &prefix, "restart-a", 10);
    let b = Worker::spawn(&url, &prefix, "restart-b", 10);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = counts(&queue, &prefix).await;
    server.stop().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().unwrap();
    eprintln!("redis restarted; before the stop: {before:?}");
    assert!(before.processed_unique < MESSAGES, "the restart happened mid-run");

    let end = wait_done(&queue, &prefix, Duration::from_secs(90)).await;
    println!(
        "pushed {MESSAGES}, redis restarted once: processed {} unique ids, {} deliveries, {} queued, {} leased, {} dead-lettered",
        end.processed_unique, end.deliveries, end.queued, end.leased, end.dead_lettered
    );
    assert_eq!(end.processed_unique, MESSAGES);
    assert_eq!((end.queued, end.leased, end.dead_lettered), (0, 0, 0));
    assert!(a.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()));
    assert!(b.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()));
}
