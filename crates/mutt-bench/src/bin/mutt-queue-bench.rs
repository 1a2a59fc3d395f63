//! Throughput of the Redis queue protocol: push (LPUSH of a batch) + lease (BLMOVE/Lua) +
//! ack (settle) at several batch sizes, printed next to `redis-benchmark -P 16 -t lpush` on the
//! same server, so the ratio to what Redis itself allows is visible.
//!
//!   cargo run --release -p mutt-bench --bin mutt-queue-bench            # private redis-server
//!   cargo run --release -p mutt-bench --bin mutt-queue-bench -- --redis redis://127.0.0.1:6379/

use clap::Parser;
use mutt_core::PodName;
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Queue, QueueId, Settlement, WorkerRole};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Redis to use; default: start a private redis-server (no persistence) on a free port.
    #[arg(long)]
    redis: Option<String>,
    /// Messages per run.
    #[arg(long, default_value_t = 200_000)]
    messages: usize,
    /// Batch sizes to measure (push batch = lease batch).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    batches: Vec<usize>,
    /// Message size in bytes (a JSON event of about this size).
    #[arg(long, default_value_t = 300)]
    payload_bytes: usize,
    /// Consumers leasing in parallel.
    #[arg(long, default_value_t = 2)]
    consumers: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut _server = None;
    let url = match &args.redis {
        Some(u) => u.clone(),
        None => {
            let s = mutt_testkit::RedisServer::start(false)?;
            let u = s.url();
            _server = Some(s);
            u
        }
    };
    let payload =
        format!("{{\"hostname\":\"bench\",\"message\":\"{}\"}}", "x".repeat(args.payload_bytes.saturating_sub(32)));
    println!(
        "mutt-queue-bench: {} messages of {} bytes, {} consumers, redis {url}",
        args.messages,
        payload.len(),
        args.consumers
    );
    println!("{:>7} {:>14} {:>10}", "batch", "messages/s", "seconds");
    for &batch in &args.batches {
        let (rate, secs) = run(&url, &payload, args.messages, batch.clamp(1, 1000), args.consumers).await?;
        println!("{batch:>7} {rate:>14.0} {secs:>10.2}");
    }
    if let Some(port) = url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
    {
        let out = std::process::Command::new("redis-benchmark")
            .args(["-p", &port.to_string(), "-P", "16", "-t", "lpush", "-n", "1000000", "-q"])
            .output();
        match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let line = text.rsplit('\r').next().unwrap_or("").trim();
                println!("redis-benchmark -P 16 -t lpush (same server): {line}");
            }
            Err(e) => println!("redis-benchmark not available: {e}"),
        }
    }
    Ok(())
}

async fn run(url: &str, payload: &str, n: usize, batch: usize, consumers: usize) -> anyhow::Result<(f64, f64)> {
    let prefix = mutt_testkit::unique_prefix();
    let config = RedisConfig::single(url, KeySpace::with_prefix(&prefix));
    let queue = RedisQueue::connect(&config).await?;
    let started = Instant::now();
    let producer = {
        let q = queue.clone();
        let msg = payload.as_bytes().to_vec();
        tokio::spawn(async move {
            let chunk: Vec<Vec<u8>> = vec![msg; batch];
            let mut sent = 0;
            while sent < n {
                let k = batch.min(n - sent);
                q.push(QueueId::Ingest, &chunk[..k]).await?;
                sent += k;
            }
            anyhow::Ok(())
        })
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..consumers {
        let q = queue.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::parse(format!("bench-{i}"))?);
            let mut c = q.consumer(cc).await?;
            let empty = Settlement::new();
            while done.load(std::sync::atomic::Ordering::Relaxed) < n {
                if let Some(lease) = c.lease(batch, Duration::from_millis(50)).await? {
                    c.settle(&lease, &empty).await?;
                    done.fetch_add(lease.len(), std::sync::atomic::Ordering::Relaxed);
                }
            }
            c.shutdown().await?;
            anyhow::Ok(())
        }));
    }
    producer.await??;
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((n as f64 / secs, secs))
}
