//! Ingest API benchmark: a private redis-server, a `muttd ingestor` process, and this load
//! generator (reqwest over HTTP/1.1 keep-alive, in-process tokio tasks). Prints accepted
//! events/s and latency percentiles for single events and batches of 100 (closed loop), the
//! latency at a fixed 2,000 requests/s (open loop), and the ingestor's idle and peak RSS.
//!
//!   cargo build --release -p muttd -p mutt-bench && target/release/mutt-ingest-bench

use clap::Parser;
use mutt_bench::cost::{PhaseCost, Sample, redis_commandstats};
use mutt_bench::load::{self, Target};
use mutt_bench::process::{Service, cpu_seconds_of, free_port, wait_healthy};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// The muttd binary to benchmark.
    #[arg(long, default_value = "target/release/muttd")]
    muttd: String,
    /// Seconds per closed-loop phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connections for the closed-loop phases.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Requests per second for the fixed-rate phase.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// The shared ingest rate limit in requests per minute (0: off, the default); a limit far
    /// above the load shows what checking it costs.
    #[arg(long, default_value_t = 0)]
    rate_limit: u64,
}

const KEY: &str = "bench-key";

enum Phase {
    /// N connections as fast as answers come.
    Closed(Target, usize),
    /// A fixed number of requests per second.
    Fixed(Target, u64),
}

fn event(i: usize) -> serde_json::Value {
    serde_json::json!({
        "hostname": format!("router{}.example.net", i % 50),
        "message": format!("%LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet0/{}, changed state to down", i % 48),
        "timestamp": "2025-11-08T12:00:00Z",
        "syslog_severity": 5,
        "program": "cisco-ios",
    })
}

/// `muttd ingestor` on `redis` and a port of its own, once healthy; returns it and its base URL.
async fn spawn_ingestor(args: &Args, redis: &mutt_testkit::RedisServer) -> anyhow::Result<(Service, String)> {
    let port = free_port();
    let mut cmd = Command::new(&args.muttd);
    cmd.arg("ingestor")
        .env("MUTT_REDIS__URL", redis.url())
        .env("MUTT_INGESTOR__PORT", port.to_string())
        .env("MUTT_INGESTOR__RATE_LIMIT_ENABLED", (args.rate_limit > 0).to_string())
        .env("MUTT_INGESTOR__MAX_RATE", args.rate_limit.max(1).to_string())
        .env("MUTT_INGESTOR__MAX_QUEUE_SIZE", "1000000000")
        .env("INGEST_API_KEY", KEY)
        .env("MUTT_LOG__LEVEL", "warn");
    let ingestor = Service::spawn("ingestor", cmd)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&format!("{base}/health"), Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((ingestor, base))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let redis = mutt_testkit::RedisServer::start(false)?;
    let (ingestor, base) = spawn_ingestor(&args, &redis).await?;
    let (idle_rss, _) = ingestor.rss_kib();

    let single = Target {
        url: format!("{base}/ingest"),
        api_key: KEY.into(),
        body: Arc::new(serde_json::to_vec(&event(1))?),
        events_per_request: 1,
    };
    let batch: Vec<_> = (0..100).map(event).collect();
    let batched = Target { body: Arc::new(serde_json::to_vec(&batch)?), events_per_request: 100, ..single.clone() };
    let secs = Duration::from_secs(args.seconds);

    println!(
        "mutt-ingest-bench: muttd ingestor (pid {}) + private redis-server; load generator: mutt-ingest-bench (reqwest, HTTP/1.1 keep-alive)",
        ingestor.pid()
    );
    println!(
        "{:<44} {:>10} {:>9} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>9}",
        "phase", "events/s", "requests", "failed", "p50 ms", "p99 ms", "cpu s", "ing µs/ev", "rds µs/ev", "cmds/req"
    );
    let connections_batched = (args.connections / 4).max(1);
    let phases = [
        (format!("single events, {} connections", args.connections), Phase::Closed(single.clone(), args.connections)),
        (format!("batches of 100, {connections_batched} connections"), Phase::Closed(batched, connections_batched)),
        (format!("single events at a fixed {} requests/s", args.rate), Phase::Fixed(single, args.rate)),
    ];
    let redis_pid = redis.pid().unwrap_or(0);
    let sample = || Sample {
        cpu: vec![("ingestor".into(), ingestor.cpu_seconds()), ("redis".into(), cpu_seconds_of(redis_pid))],
        redis: redis_commandstats(redis.port()),
        ..Sample::default()
    };
    for (name, run) in phases {
        let before = sample();
        let (r, per_request) = match run {
            Phase::Closed(t, c) => (load::closed_loop(&t, c, secs).await, t.events_per_request),
            Phase::Fixed(t, rate) => (load::fixed_rate(&t, rate, secs, 256).await, t.events_per_request),
        };
        let events = r.events_ok;
        let cost = PhaseCost::between(&before, &sample(), events);
        // The commandstats readings themselves (INFO) are not the ingestor's.
        let ingestor_commands = cost.redis_commands_per_event.iter().filter(|(c, _)| c != "info");
        let commands = ingestor_commands.clone().map(|(_, v)| v).sum::<f64>() * per_request as f64;
        println!(
            "{:<44} {:>10.0} {:>9} {:>7} {:>7.2} {:>7.2} {:>7.1} {:>8.1} {:>8.1} {:>9.2}",
            name,
            r.events_per_sec(),
            r.requests_ok,
            r.requests_failed,
            r.percentile_ms(0.5),
            r.percentile_ms(0.99),
            cost.cpu_us_per_event_total * events as f64 / 1e6,
            cost.cpu_of("ingestor"),
            cost.cpu_of("redis"),
            commands
        );
        let per_command: Vec<String> = ingestor_commands
            .map(|(c, v)| (c, v * per_request as f64))
            .filter(|(_, v)| *v >= 0.005)
            .map(|(c, v)| format!("{c} {v:.2}"))
            .collect();
        println!("    redis commands per request: {}", per_command.join(", "));
        let mut c = redis::Client::open(redis.url())?.get_multiplexed_async_connection().await?;
        let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await?;
    }
    let (_, peak) = ingestor.rss_kib();
    println!("ingestor RSS: idle {:.1} MiB, peak {:.1} MiB", idle_rss as f64 / 1024.0, peak as f64 / 1024.0);
    ingestor.terminate();
    Ok(())
}
