//! Alerter throughput alone: queue → rules → audit (PostgreSQL) + alert queue, with 10 and with
//! 500 active rules. Starts a private redis-server and PostgreSQL (fsync off), pre-fills the
//! ingest queue, then times one in-process alerter draining it.
//!
//!   cargo build --release -p mutt-bench && target/release/mutt-alerter-bench

use clap::Parser;
use mutt_alerter::{Alerter, AlerterConfig, AlerterMetrics, BatchOutcome};
use mutt_core::{MatchType, PodName};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Queue, QueueId, WorkerRole};
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_store::{NewRule, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Events per run.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Rule counts to compare.
    #[arg(long, value_delimiter = ',', default_value = "10,500")]
    rules: Vec<usize>,
    #[arg(long, default_value_t = 100)]
    batch: usize,
}

/// Rule i: mostly `contains`, some `regex`, a few `oid_prefix`; priorities spread out.
fn make_rule(i: usize) -> NewRule {
    let (match_type, match_string, trap_oid) = match i % 20 {
        0..=15 => (MatchType::Contains, Some(format!("EVT-{i:04}-DOWN")), None),
        16..=18 => (MatchType::Regex, Some(format!(r"link-{i:04}-(up|down) on gi\d+/\d+")), None),
        _ => (MatchType::OidPrefix, None, Some(format!("1.3.6.1.4.1.9.{i}"))),
    };
    NewRule {
        match_string,
        trap_oid,
        syslog_severity: None,
        match_type,
        priority: ((i * 37) % 1000) as i32,
        prod_handling: if i.is_multiple_of(3) { "Ignore".into() } else { "Page_and_ticket".into() },
        dev_handling: "Ignore".into(),
        team_assignment: format!("team-{}", i % 7),
        is_active: true,
        flap_threshold: None,
        flap_window_secs: None,
    }
}

/// Event j against `rules` rules: 70 % mention some rule's text, 30 % match nothing.
fn make_event(j: usize, rules: usize) -> Vec<u8> {
    let r = (j * 7919) % rules;
    let message = if j % 10 < 7 {
        match r % 20 {
            16..=18 => format!("%LINK-3-UPDOWN: link-{r:04}-down on Gi1/0/{} port flap detected", j % 48),
            _ => format!(
                "%LINEPROTO-5-UPDOWN: EVT-{:04}-DOWN Line protocol on Interface Gi0/{} changed state",
                r - r % 20 + (r % 16),
                j % 48
            ),
        }
    } else {
        format!("%SYS-6-LOGGINGHOST_STARTSTOP: Logging to host 10.0.{}.{} started - CLI initiated", j % 200, j % 250)
    };
    serde_json::to_vec(&serde_json::json!({
        "hostname": format!("sw{}.example.net", j % 300),
        "message": message,
        "timestamp": "2025-11-08T12:00:00Z",
        "syslog_severity": 5,
        "_event_id": uuid::Uuid::now_v7().to_string(),
        "_correlation_id": "bench",
    }))
    .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let redis = mutt_testkit::RedisServer::start(false)?;
    let pg = mutt_testkit::PostgresServer::start()?;
    println!(
        "mutt-alerter-bench: {} events per run, batch {}, private redis-server and PostgreSQL (fsync off)",
        args.events, args.batch
    );
    println!(
        "{:>6} {:>9} {:>10} {:>12} {:>11} {:>9}",
        "rules", "events", "seconds", "events/s", "audit rows", "alerts"
    );
    let mut first = None;
    let mut last = None;
    for &n in &args.rules {
        let db = format!("bench_{n}_{}", std::process::id());
        let (admin, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await?;
        let url = pg.url().replace("/postgres", &format!("/{db}"));
        let store = Arc::new(PgStore::new(&PostgresConfig { url: url.clone(), password: None, pool_size: 4 })?);
        store.migrate().await?;
        for i in 0..n {
            store.create_rule(&make_rule(i)).await?;
        }
        let queue =
            RedisQueue::connect(&RedisConfig::single(redis.url(), KeySpace::with_prefix(&format!("bench{n}:"))))
                .await?;
        // Keep backpressure from shedding: no forwarder drains the alert queue here.
        let mut c = queue.connection();
        let _: () = redis::cmd("SET")
            .arg(format!("bench{n}:config:alerter_queue_shed_threshold"))
            .arg("100000000")
            .query_async(&mut c)
            .await?;
        let events: Vec<Vec<u8>> = (0..args.events).map(|j| make_event(j, n)).collect();
        for chunk in events.chunks(1000) {
            queue.push(QueueId::Ingest, chunk).await?;
        }
        let cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::parse(format!("bench-{n}"))?);
        let config = AlerterConfig {
            batch_size: args.batch,
            block_timeout: Duration::from_millis(100),
            ..AlerterConfig::default()
        };
        let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
        let mut alerter =
            Alerter::start(Arc::new(queue.clone()), Arc::new(queue.clone()), store.clone(), cc, config, metrics)
                .await?;
        let sd = tokio_util::sync::CancellationToken::new();
        let started = Instant::now();
        let (mut audited, mut alerts) = (0u64, 0usize);
        loop {
            match alerter.process_one_batch(&sd).await? {
                BatchOutcome::Empty => break,
                BatchOutcome::Processed { audited: a, alerts: x, .. } => {
                    audited += a;
                    alerts += x;
                }
                other => anyhow::bail!("unexpected outcome {other:?}"),
            }
        }
        // The last lease waited for the block timeout before returning Empty.
        let secs = (started.elapsed() - Duration::from_millis(100)).as_secs_f64();
        let rate = args.events as f64 / secs;
        first.get_or_insert(rate);
        last = Some(rate);
        println!("{n:>6} {:>9} {secs:>10.2} {rate:>12.0} {audited:>11} {alerts:>9}", args.events);
    }
    if let (Some(f), Some(l)) = (first, last) {
        println!(
            "events/s with {} rules = {:.0} % of the figure with {} rules",
            args.rules[args.rules.len() - 1],
            100.0 * l / f,
            args.rules[0]
        );
    }
    Ok(())
}
