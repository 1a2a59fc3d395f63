//! Alerter throughput alone: queue → rules → audit (PostgreSQL) + alert queue, with 10 and with
//! 500 active rules. Starts a private redis-server and PostgreSQL (fsync off, or production
//! durability with `--durable`), pre-fills the ingest queue, then times one in-process alerter
//! draining it. Prints events/s, CPU µs per event of the alerter (this process), of
//! redis-server and of the run's PostgreSQL backends, and where a batch's time went by phase.
//!
//!   cargo build --release -p mutt-bench && target/release/mutt-alerter-bench [--durable]

use clap::Parser;
use mutt_alerter::metrics::StatusLabel;
use mutt_alerter::{Alerter, AlerterConfig, AlerterMetrics, BatchOutcome, BatchTimings, Phase};
use mutt_bench::process::cpu_seconds_of;
use mutt_core::{MatchType, PodName};
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{ConsumerConfig, Queue, WorkerRole};
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
    /// PostgreSQL with fsync, synchronous_commit and full_page_writes on; Redis with the
    /// append-only file (everysec).
    #[arg(long)]
    durable: bool,
    /// Batch loops in the alerter (`alerter.concurrency`); above 1 the alerter runs as in
    /// production (`Alerter::run`) until every event is processed.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Events per Redis list element (`redis.batch_envelope`; muttd's default is 100, 1 packs
    /// nothing).
    #[arg(long, default_value_t = 100)]
    envelope: usize,
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

/// CPU seconds of this run's PostgreSQL backends (their command line names the database).
fn pg_backend_cpu(db: &str) -> f64 {
    let mut total = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"postgres: ") && String::from_utf8_lossy(&cmdline).contains(db) {
            total += cpu_seconds_of(pid);
        }
    }
    total
}

/// CPU seconds of the alerter (this process), redis-server and the run's PostgreSQL backends.
fn cpu_now(redis_pid: u32, db: &str) -> [f64; 3] {
    [cpu_seconds_of(std::process::id()), cpu_seconds_of(redis_pid), pg_backend_cpu(db)]
}

/// A fresh database with `n` rules, and a queue key space with `events` events queued.
async fn prepare(
    pg: &mutt_testkit::PostgresServer,
    redis: &mutt_testkit::RedisServer,
    db: &str,
    n: usize,
    events: usize,
    envelope: usize,
) -> anyhow::Result<(Arc<PgStore>, RedisQueue)> {
    let (admin, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await?;
    let url = pg.url().replace("/postgres", &format!("/{db}"));
    let store = Arc::new(PgStore::new(&PostgresConfig { url: url.clone(), password: None, pool_size: 4 })?);
    store.migrate().await?;
    for i in 0..n {
        store.create_rule(&make_rule(i)).await?;
    }
    let queue = RedisQueue::connect(&RedisConfig::single(redis.url(), KeySpace::with_prefix(&format!("bench{n}:"))))
        .await?
        .with_batch_envelope(envelope);
    // Keep backpressure from shedding: no forwarder drains the alert queue here.
    let mut c = queue.connection();
    let _: () = redis::cmd("SET")
        .arg(format!("bench{n}:config:alerter_queue_shed_threshold"))
        .arg("100000000")
        .query_async(&mut c)
        .await?;
    let events: Vec<Vec<u8>> = (0..events).map(|j| make_event(j, n)).collect();
    // As the ingestor queues them: one push per request of 100 (one envelope each).
    for chunk in events.chunks(100) {
        queue.push_ingest(chunk, chrono::Utc::now()).await?;
    }
    Ok((store, queue))
}

/// Processes batches until the queue is empty: (audit rows, alerts).
async fn drain(alerter: &mut Alerter) -> anyhow::Result<(u64, usize)> {
    let sd = tokio_util::sync::CancellationToken::new();
    let (mut audited, mut alerts) = (0u64, 0usize);
    loop {
        match alerter.process_one_batch(&sd).await? {
            BatchOutcome::Empty => return Ok((audited, alerts)),
            BatchOutcome::Processed { audited: a, alerts: x, .. } => {
                audited += a;
                alerts += x;
            }
            other => anyhow::bail!("unexpected outcome {other:?}"),
        }
    }
}

/// Runs the alerter's loops until `events` are processed: (handled events, alerts).
async fn drain_running(alerter: Alerter, metrics: &AlerterMetrics, events: usize) -> anyhow::Result<(u64, usize)> {
    let count = |status| metrics.events_processed.get_or_create(&StatusLabel { status }).get();
    let sd = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(alerter.run(sd.clone()));
    while ["handled", "unhandled", "poison", "error"].map(count).iter().sum::<u64>() < events as u64 {
        if task.is_finished() {
            anyhow::bail!("the alerter stopped early");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    sd.cancel();
    task.await??;
    Ok((count("handled"), metrics.alerts_forwarded.get() as usize))
}

/// Milliseconds per batch in each phase.
fn split(t: &BatchTimings) -> String {
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / t.batches.max(1) as f64;
    let phases: Vec<String> = Phase::ALL.iter().map(|p| format!("{} {:.2}", p.name(), per(t.spent(*p)))).collect();
    format!(
        "ms per batch ({} batches): {}; total {:.2} (unhandled runs inside audit)",
        t.batches,
        phases.join(", "),
        per(t.total())
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let redis = mutt_testkit::RedisServer::start(args.durable)?;
    let pg = if args.durable {
        mutt_testkit::PostgresServer::start_durable()?
    } else {
        mutt_testkit::PostgresServer::start()?
    };
    let durability = if args.durable { "durable: fsync on, Redis AOF everysec" } else { "fsync off" };
    println!(
        "mutt-alerter-bench: {} events per run, batch {}, envelope {}, {} loop(s), private redis-server and PostgreSQL ({durability})",
        args.events, args.batch, args.envelope, args.concurrency
    );
    println!(
        "{:>6} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "rules", "events", "seconds", "events/s", "alerter", "redis", "pg", "audited", "alerts"
    );
    let mut rates = Vec::new();
    for &n in &args.rules {
        let db = format!("bench_{n}_{}", std::process::id());
        let (store, queue) = prepare(&pg, &redis, &db, n, args.events, args.envelope).await?;
        let cc = ConsumerConfig::new(WorkerRole::Alerter, PodName::parse(format!("bench-{n}"))?);
        let config = AlerterConfig {
            batch_size: args.batch,
            block_timeout: Duration::from_millis(100),
            concurrency: args.concurrency,
            ..AlerterConfig::default()
        };
        let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
        let mut alerter = Alerter::start(
            Arc::new(queue.clone()),
            Arc::new(queue.clone()),
            store.clone(),
            cc,
            config,
            metrics.clone(),
        )
        .await?;
        let timings = alerter.shared_timings();
        let redis_pid = redis.pid().unwrap_or(0);
        let before = cpu_now(redis_pid, &db);
        let started = Instant::now();
        let (audited, alerts, secs) = if args.concurrency > 1 {
            let (audited, alerts) = drain_running(alerter, &metrics, args.events).await?;
            (audited, alerts, started.elapsed().as_secs_f64())
        } else {
            let (audited, alerts) = drain(&mut alerter).await?;
            // The last lease waited for the block timeout before returning Empty.
            (audited, alerts, (started.elapsed() - Duration::from_millis(100)).as_secs_f64())
        };
        let after = cpu_now(redis_pid, &db);
        let us = |k: usize| (after[k] - before[k]) * 1e6 / args.events as f64;
        let rate = args.events as f64 / secs;
        rates.push(rate);
        println!(
            "{n:>6} {:>9} {secs:>8.2} {rate:>9.0} {:>8.1} {:>8.1} {:>8.1} {audited:>8} {alerts:>7}",
            args.events,
            us(0),
            us(1),
            us(2)
        );
        println!("       {}", split(&timings.snapshot()));
    }
    println!("(alerter, redis, pg: CPU µs per event; pg: this run's backends only)");
    if let (Some(f), Some(l)) = (rates.first(), rates.last()) {
        println!(
            "events/s with {} rules = {:.0} % of the figure with {} rules",
            args.rules[args.rules.len() - 1],
            100.0 * l / f,
            args.rules[0]
        );
    }
    Ok(())
}
