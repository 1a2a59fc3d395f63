//! A queue consumer for crash tests: leases batches of `{"id": N}` messages, records the ids
//! in the set `<prefix>test:processed` (and the count of deliveries in
//! `<prefix>test:deliveries`), then settles. It never gives up on Redis: errors are retried with
//! backoff. SIGTERM stops it gracefully (lease handed back, exit 0).

use clap::Parser;
use mutt_core::PodName;
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Queue, Settlement, WorkerRole};
use mutt_service::Backoff;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    redis: String,
    #[arg(long)]
    prefix: String,
    #[arg(long)]
    pod: String,
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Simulated work per batch, so that kills land mid-batch.
    #[arg(long, default_value_t = 0)]
    work_ms: u64,
    #[arg(long, default_value_t = 2)]
    heartbeat_ttl: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).init();
    let args = Args::parse();
    let mut term = signal(SignalKind::terminate())?;
    let config = RedisConfig::single(args.redis.clone(), KeySpace::with_prefix(&args.prefix));
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    let queue = loop {
        match RedisQueue::connect(&config).await {
            Ok(q) => break q,
            Err(_) => tokio::time::sleep(backoff.next_delay()).await,
        }
    };
    let mut cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::parse(args.pod.clone())?);
    cc.heartbeat_interval = Duration::from_millis(500);
    cc.heartbeat_ttl = Duration::from_secs(args.heartbeat_ttl);
    cc.janitor_interval = Duration::from_secs(1);
    // The crash tests kill workers on purpose; none of their messages is poison.
    cc.max_crashes = 1000;
    let mut consumer = loop {
        match queue.consumer(cc.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(backoff.next_delay()).await,
        }
    };
    let processed = format!("{}test:processed", args.prefix);
    let deliveries = format!("{}test:deliveries", args.prefix);
    let mut conn = queue.connection();
    println!("ready");
    loop {
        let lease = tokio::select! {
            _ = term.recv() => break,
            l = consumer.lease(args.batch, Duration::from_millis(300)) => l,
        };
        let lease = match lease {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(_) => {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let ids: Vec<u64> = lease
            .messages
            .iter()
            .filter_map(|m| serde_json::from_slice::<serde_json::Value>(m).ok())
            .filter_map(|v| v["id"].as_u64())
            .collect();
        if args.work_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.work_ms)).await;
        }
        loop {
            let mut pipe = redis::pipe();
            pipe.cmd("SADD").arg(&processed).arg(&ids).ignore();
            pipe.cmd("INCRBY").arg(&deliveries).arg(ids.len()).ignore();
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => break,
                Err(_) => tokio::time::sleep(backoff.next_delay()).await,
            }
        }
        while consumer.settle(&lease, &Settlement::new()).await.is_err() {
            tokio::time::sleep(backoff.next_delay()).await;
        }
        backoff.reset();
    }
    consumer.shutdown().await?;
    Ok(())
}
