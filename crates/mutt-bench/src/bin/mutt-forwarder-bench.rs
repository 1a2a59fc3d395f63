//! Forwarder throughput and cost: alerts/s delivered to a local receiver, and CPU µs per alert
//! of the forwarder alone, with Moogsoft REST LAM batches of 100, one alert per request
//! (`legacy`) and the `generic` format. A private redis-server; one in-process forwarder; the
//! counting receiver runs on a thread of its own, whose CPU time is taken out of the process's
//! (what remains is the forwarder: decode, payload, HTTP client, Redis client). Rate limit and
//! breaker on as in production, with the limit raised out of the way. The alerts look like the
//! pipeline bench's (messages of 100–1,000 bytes, the whole event in `raw_json`).
//!
//!   cargo build --release -p mutt-bench && target/release/mutt-forwarder-bench

use clap::Parser;
use mutt_core::{Alert, PodName};
use mutt_forwarder::{
    Destination, ForwardOutcome, Forwarder, ForwarderConfig, ForwarderMetrics, LamAuth, OutputFormat,
};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Coordination, Queue, QueueId, WorkerRole};
use mutt_testkit::ReceiverOptions;
use mutt_testkit::WebhookReceiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 50_000)]
    alerts: usize,
    /// Alerts leased per batch (and sent concurrently, one request each, in legacy mode).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Alerts per queued list element: the alerter emits one envelope per batch (about 40
    /// alerts per 100 events in the alerter bench's mix); 1 queues one alert per element.
    #[arg(long, default_value_t = 40)]
    envelope: usize,
    /// Delivered ids Redis remembers before the run: a site holds its alert rate times
    /// `forwarder.dedup_ttl_secs` (1,000 alerts/s for the default hour is 3.6 million).
    #[arg(long, default_value_t = 1_000_000)]
    remembered: usize,
    /// Formats to run (moog-rest-lam, legacy, generic); all by default.
    #[arg(long)]
    format: Vec<String>,
}

/// The receiver on a thread (and a one-thread runtime) of its own, so that its CPU time can
/// be told apart from the forwarder's.
struct Receiver {
    receiver: WebhookReceiver,
    tid: String,
}

impl Receiver {
    fn start() -> anyhow::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("receiver".into()).spawn(move || {
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(tx.send(Err(anyhow::Error::from(e)))),
            };
            rt.block_on(async move {
                let started = WebhookReceiver::try_start_with(ReceiverOptions::counting()).await;
                let _ = tx.send(started.map(|r| (r, tid)).map_err(anyhow::Error::from));
                std::future::pending::<()>().await
            })
        })?;
        let (receiver, tid) = rx.recv()??;
        Ok(Self { receiver, tid })
    }

    fn cpu_seconds(&self) -> f64 {
        thread_cpu_seconds(&format!("/proc/self/task/{}/schedstat", self.tid))
    }
}

/// A thread's CPU time from its `schedstat` (nanoseconds, the first field).
fn thread_cpu_seconds(path: &str) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).unwrap_or(0.0) / 1e9
}

/// CPU seconds of this process: the sum over its live threads' `schedstat` (nanoseconds;
/// the forwarder's threads live as long as the process).
fn process_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    dir.flatten().map(|t| thread_cpu_seconds(&format!("{}/schedstat", t.path().display()))).sum()
}

/// One run's figures.
struct Run {
    alerts_per_sec: f64,
    secs: f64,
    requests: String,
    forwarder_us: f64,
    receiver_us: f64,
    redis_us: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let redis = mutt_testkit::RedisServer::start(false)?;
    // Counting only: the receiver keeps no request.
    let receiver = Receiver::start()?;
    println!(
        "mutt-forwarder-bench: {} alerts per run, lease batch {}, envelope {}, {} delivered ids remembered, private redis-server, receiver on its own thread",
        args.alerts, args.batch, args.envelope, args.remembered
    );
    println!(
        "{:<34} {:>10} {:>8} {:>9} {:>14} {:>13} {:>11}",
        "format", "alerts/s", "seconds", "requests", "forwarder µs/a", "receiver µs/a", "redis µs/a"
    );
    for (name, format) in [
        ("moog-rest-lam, 100 per request", OutputFormat::MoogRestLam),
        ("legacy, one per request", OutputFormat::Legacy),
        ("generic, one per request", OutputFormat::Generic),
    ] {
        let wanted = serde_json::to_value(format)?;
        if !args.format.is_empty() && !args.format.iter().any(|f| wanted == f.as_str()) {
            continue;
        }
        let r = run(&args, &redis, &receiver, format).await?;
        println!(
            "{name:<34} {:>10.0} {:>8.2} {:>9} {:>14.2} {:>13.2} {:>11.2}",
            r.alerts_per_sec, r.secs, r.requests, r.forwarder_us, r.receiver_us, r.redis_us
        );
    }
    Ok(())
}

async fn run(
    args: &Args,
    redis: &mutt_testkit::RedisServer,
    receiver: &Receiver,
    format: OutputFormat,
) -> anyhow::Result<Run> {
    let queue =
        RedisQueue::connect(&RedisConfig::single(redis.url(), KeySpace::with_prefix(&mutt_testkit::unique_prefix())))
            .await?;
    let alerts: Vec<Vec<u8>> = (0..args.alerts).map(alert).collect();
    for chunk in alerts.chunks(1000) {
        queue.push(QueueId::Alert, &mutt_queue::envelope::pack(chunk, args.envelope)).await?;
    }
    for start in (0..args.remembered).step_by(1000) {
        let ids: Vec<String> =
            (start..(start + 1000).min(args.remembered)).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        queue.mark_delivered(&ids, Duration::from_secs(3600)).await?;
    }
    let config = ForwarderConfig {
        destination: Destination::Webhook(receiver.receiver.url()),
        format,
        lam_auth: LamAuth::Token(mutt_core::Secret::new("bench")),
        lam_batch_size: 100,
        batch_size: args.batch,
        block_timeout: Duration::from_millis(100),
        rate_limit: Some((10_000_000, Duration::from_secs(1))),
        ..ForwarderConfig::default()
    };
    let cc = ConsumerConfig::new(WorkerRole::Forwarder, PodName::parse(format!("bench-{}", format as u8))?);
    let metrics = mutt_service::Metrics::new();
    let fm = ForwarderMetrics::register(&metrics);
    let mut f = Forwarder::start(Arc::new(queue.clone()), Arc::new(queue.clone()), cc, config, fm).await?;
    let before = receiver.receiver.counts().events;
    let received = || (receiver.receiver.counts().events - before) as usize;
    let redis_pid = redis.pid().unwrap_or(0);
    let (cpu0, recv0, redis0) =
        (process_cpu_seconds(), receiver.cpu_seconds(), mutt_bench::process::cpu_seconds_of(redis_pid));
    let started = Instant::now();
    while received() < args.alerts {
        match f.process_one_batch().await? {
            ForwardOutcome::Empty => break,
            ForwardOutcome::Paused(d) => tokio::time::sleep(d).await,
            ForwardOutcome::Processed { .. } => {}
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let n = received().max(1) as f64;
    let receiver_s = receiver.cpu_seconds() - recv0;
    let per_alert = |s: f64| s * 1e6 / n;
    let text = metrics.encode();
    let requests = text
        .lines()
        .find(|l| l.starts_with("mutt_moog_requests_total{status=\"success\""))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("?")
        .to_owned();
    Ok(Run {
        alerts_per_sec: n / secs,
        secs,
        requests,
        forwarder_us: per_alert(process_cpu_seconds() - cpu0 - receiver_s),
        receiver_us: per_alert(receiver_s),
        redis_us: per_alert(mutt_bench::process::cpu_seconds_of(redis_pid) - redis0),
    })
}

/// An alert as the alerter makes it for a pipeline-bench event: message of 100–1,000 bytes,
/// the event's fields in `raw_json`, a UUIDv7 event id.
fn alert(n: usize) -> Vec<u8> {
    let host = format!("sw{}.example.net", n % 300);
    let text = format!("%LINK-3-UPDOWN: FWD-{:02} Interface Gi0/{} changed state to down", n % 40, n % 48);
    let pad = 100 + (n * 37 % 900);
    let filler = " lorem ipsum dolor sit amet".repeat(pad / 27 + 1);
    let message = format!("{text}{}", &filler[..pad.saturating_sub(text.len()).min(filler.len())]);
    let event_id = uuid::Uuid::now_v7().to_string();
    let mut raw = serde_json::json!({
        "hostname": host,
        "message": message,
        "timestamp": "2026-12-02T08:00:00.000Z",
        "_correlation_id": "bench",
        "_event_id": event_id,
    });
    if n % 4 == 3 {
        raw["syslog_severity"] = serde_json::json!(3);
    }
    Alert {
        hostname: host,
        team_assignment: "NetOps".into(),
        severity: "Warning".into(),
        message_body: message,
        raw_json: raw,
        correlation_id: "bench".into(),
        event_id,
        rule_id: Some(7),
        handling: Some("Page_and_ticket".into()),
    }
    .to_json()
    .into_bytes()
}
