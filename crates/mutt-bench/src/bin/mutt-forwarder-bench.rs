//! Forwarder throughput: alerts/s delivered to a local receiver, with Moogsoft REST LAM batches
//! of 100 and one alert per request (`legacy`). A private redis-server; the receiver and one
//! in-process forwarder share this process; rate limit and breaker on as in production, with
//! the limit raised out of the way.
//!
//!   cargo build --release -p mutt-bench && target/release/mutt-forwarder-bench

use clap::Parser;
use mutt_core::{Alert, PodName};
use mutt_forwarder::{
    Destination, ForwardOutcome, Forwarder, ForwarderConfig, ForwarderMetrics, LamAuth, OutputFormat,
};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Queue, QueueId, WorkerRole};
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let redis = mutt_testkit::RedisServer::start(false)?;
    // Counting only: the receiver keeps no request, so it costs the forwarder nothing.
    let receiver = WebhookReceiver::try_start_with(ReceiverOptions::counting()).await?;
    let url = receiver.url();

    println!(
        "mutt-forwarder-bench: {} alerts per run, lease batch {}, private redis-server, in-process receiver",
        args.alerts, args.batch
    );
    println!("{:<34} {:>12} {:>9} {:>9}", "format", "alerts/s", "seconds", "requests");
    for (name, format) in [
        ("moog-rest-lam, 100 per request", OutputFormat::MoogRestLam),
        ("legacy, one per request", OutputFormat::Legacy),
    ] {
        let queue = RedisQueue::connect(&RedisConfig::single(
            redis.url(),
            KeySpace::with_prefix(&mutt_testkit::unique_prefix()),
        ))
        .await?;
        let alerts: Vec<Vec<u8>> = (0..args.alerts).map(alert).collect();
        for chunk in alerts.chunks(1000) {
            queue.push(QueueId::Alert, chunk).await?;
        }
        let config = ForwarderConfig {
            destination: Destination::Webhook(url.clone()),
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
        let before = receiver.counts().events;
        let received = || (receiver.counts().events - before) as usize;
        let started = Instant::now();
        while received() < args.alerts {
            match f.process_one_batch().await? {
                ForwardOutcome::Empty => break,
                ForwardOutcome::Paused(d) => tokio::time::sleep(d).await,
                ForwardOutcome::Processed { .. } => {}
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let text = metrics.encode();
        let requests = text
            .lines()
            .find(|l| l.starts_with("mutt_moog_requests_total{status=\"success\""))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or("?")
            .to_owned();
        println!("{name:<34} {:>12.0} {secs:>9.2} {requests:>9}", received() as f64 / secs);
    }
    Ok(())
}

fn alert(n: usize) -> Vec<u8> {
    Alert {
        hostname: format!("sw{}.example.net", n % 300),
        team_assignment: "NetOps".into(),
        severity: "Warning".into(),
        message_body: format!("%LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/{} changed state to down", n % 48),
        raw_json: serde_json::json!({"hostname": format!("sw{}.example.net", n % 300), "syslog_severity": 3, "message": "…"}),
        correlation_id: "bench".into(),
        event_id: uuid::Uuid::now_v7().to_string(),
        rule_id: Some(7),
        handling: Some("Page_and_ticket".into()),
    }
    .to_json()
    .into_bytes()
}
