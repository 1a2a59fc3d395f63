//! The end-to-end benchmark and the chaos run over a [`Pipeline`].

use crate::cost::{Meter, PhaseCost};
use crate::pipeline::{Category, Duplicate, FORWARDER_TIMEOUT, Pipeline, PipelineOptions, offer, percentile};
use mutt_testkit::ReceiverMode;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// One fault injected at a moment of the chaos timeline.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    KillAlerter,
    KillForwarder,
    /// Stop redis-server (SIGTERM, AOF flushed) for this long, then start it again.
    RestartRedis(Duration),
    /// Stop PostgreSQL for this long.
    StopPostgres(Duration),
    /// The receiver answers 500 for this long.
    ReceiverFails(Duration),
    /// The receiver hangs every request for this long.
    ReceiverHangs(Duration),
}

#[derive(Clone, Debug)]
pub struct ChaosProfile {
    pub name: &'static str,
    pub load: Duration,
    pub rate: u64,
    pub batch: usize,
    pub faults: Vec<(Duration, Fault)>,
    pub drain_timeout: Duration,
}

impl ChaosProfile {
    /// Under 3 minutes: every fault once while 40 s of load run.
    pub fn short() -> Self {
        let s = Duration::from_secs;
        Self {
            name: "short",
            load: s(40),
            rate: 200,
            batch: 10,
            faults: vec![
                (s(4), Fault::KillAlerter),
                (s(7), Fault::KillForwarder),
                (s(10), Fault::RestartRedis(s(1))),
                (s(13), Fault::StopPostgres(s(15))),
                (s(18), Fault::ReceiverFails(s(20))),
                (s(38), Fault::ReceiverHangs(s(10))),
                (s(50), Fault::KillForwarder),
            ],
            drain_timeout: s(100),
        }
    }

    /// Ten minutes of load at 1,000 events/s with every fault three times.
    pub fn long() -> Self {
        let s = Duration::from_secs;
        let mut faults = Vec::new();
        for round in 0..3u64 {
            let t = 20 + round * 190;
            faults.extend([
                (s(t), Fault::KillAlerter),
                (s(t + 15), Fault::KillForwarder),
                (s(t + 30), Fault::RestartRedis(s(2))),
                (s(t + 50), Fault::StopPostgres(s(15))),
                (s(t + 80), Fault::ReceiverFails(s(20))),
                (s(t + 100), Fault::ReceiverHangs(s(10))),
                (s(t + 120), Fault::KillAlerter),
                (s(t + 125), Fault::KillForwarder),
            ]);
        }
        Self { name: "long", load: s(600), rate: 1000, batch: 100, faults, drain_timeout: s(300) }
    }
}

/// What the chaos run counted; `problems` is empty when nothing was lost or duplicated.
#[derive(Debug, serde::Serialize)]
pub struct ChaosReport {
    pub sent: u64,
    pub accepted: u64,
    pub refused: u64,
    pub expected_audit: u64,
    pub audit_rows: i64,
    pub audit_distinct_ids: i64,
    pub expected_alerts: u64,
    pub alerts_received: usize,
    pub alerts_duplicated: usize,
    /// Of those, the ids at-least-once delivery allows at a forwarder's kill -9 (see
    /// [`duplicated_at_kill`]); only the others are problems.
    pub alerts_duplicated_at_kill: usize,
    pub left_queued: u64,
    pub left_leased: u64,
    pub left_dead_lettered: u64,
    /// Audited or delivered events the ingestor had answered with an error (an enqueue whose
    /// reply was lost to the Redis restart): present once, not counted as accepted.
    pub ambiguous: usize,
    /// Accepted handled events without an audit row, forwarded ones never delivered.
    pub missing_audit: usize,
    pub missing_alerts: usize,
    pub problems: Vec<String>,
}

pub async fn chaos(opts: PipelineOptions, profile: &ChaosProfile) -> anyhow::Result<ChaosReport> {
    let mut p = Pipeline::start(PipelineOptions { aof: true, ..opts }).await?;
    let started = Instant::now();
    let url = p.ingest_url.clone();
    let (rate, batch, load) = (profile.rate, profile.batch, profile.load);
    let load_task = tokio::spawn(async move { offer(&url, 0, rate, batch, load).await });
    let log = inject_faults(&mut p, profile, started).await?;
    let (accepted, refused) = load_task.await?;
    eprintln!("chaos {:>5.1}s: load finished; draining", started.elapsed().as_secs_f64());
    let expected = Expected::new(&accepted);
    drain_until_delivered(&p, &expected, profile.drain_timeout).await;
    judge(&p, &expected, refused, &log).await
}

/// Waits until nothing is queued or leased and every expected alert arrived (or `timeout`),
/// then a moment for in-flight settles.
pub(crate) async fn drain_until_delivered(p: &Pipeline, expected: &Expected, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = p.leftovers().await;
        let delivered: HashSet<u64> = p.sink.seqs().into_iter().collect();
        let done = left.is_some_and(|(q, l, _)| q == 0 && l == 0) && expected.forward.is_subset(&delivered);
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// When a run started and when its forwarders were killed (what [`judge`] needs to tell a
/// duplicate at-least-once delivery allows from one that is a defect).
pub(crate) struct FaultLog {
    started: Instant,
    forwarder_kills: Vec<Instant>,
}

impl FaultLog {
    /// `t` as seconds into the run, for messages.
    fn secs(&self, t: &Instant) -> String {
        format!("{:.2}", t.saturating_duration_since(self.started).as_secs_f64())
    }
}

/// Runs the profile's faults at their times, undoing each after its duration.
pub(crate) async fn inject_faults(
    p: &mut Pipeline,
    profile: &ChaosProfile,
    started: Instant,
) -> anyhow::Result<FaultLog> {
    let mut log = FaultLog { started, forwarder_kills: Vec::new() };
    let mut faults = profile.faults.clone();
    faults.sort_by_key(|f| f.0);
    let mut restore: Vec<(Instant, Fault)> = Vec::new();
    for (at, fault) in faults {
        let when = started + at;
        // Restore anything due before this fault.
        restore.sort_by_key(|r| r.0);
        while let Some((t, f)) = restore.first().copied() {
            if t > when {
                break;
            }
            tokio::time::sleep_until(t.into()).await;
            undo(p, f)?;
            restore.remove(0);
        }
        tokio::time::sleep_until(when.into()).await;
        eprintln!("chaos {:>5.1}s: {fault:?}", started.elapsed().as_secs_f64());
        let lasts = match fault {
            Fault::KillAlerter => {
                p.kill9_alerter(0)?;
                None
            }
            Fault::KillForwarder => {
                log.forwarder_kills.push(Instant::now());
                p.kill9_forwarder(0)?;
                None
            }
            Fault::RestartRedis(d) => {
                p.redis.stop()?;
                Some(d)
            }
            Fault::StopPostgres(d) => {
                p.pg.stop()?;
                Some(d)
            }
            Fault::ReceiverFails(d) => {
                p.sink.set_mode(ReceiverMode::Status(500));
                Some(d)
            }
            Fault::ReceiverHangs(d) => {
                p.sink.set_mode(ReceiverMode::Hang);
                Some(d)
            }
        };
        if let Some(d) = lasts {
            restore.push((Instant::now() + d, fault));
        }
    }
    restore.sort_by_key(|r| r.0);
    for (t, f) in restore {
        tokio::time::sleep_until(t.into()).await;
        undo(p, f)?;
    }
    Ok(log)
}

/// What the accepted events should have become.
pub(crate) struct Expected {
    /// Events the ingestor accepted (as answered).
    accepted_count: u64,
    accepted: HashSet<u64>,
    /// Events matching a forwarding rule: one alert each.
    forward: HashSet<u64>,
    /// Handled events: one audit row each.
    audit: HashSet<u64>,
}

impl Expected {
    pub(crate) fn new(accepted: &[(u64, Category)]) -> Self {
        let with = |keep: fn(Category) -> bool| accepted.iter().filter(|(_, c)| keep(*c)).map(|(s, _)| *s).collect();
        Self {
            accepted_count: accepted.len() as u64,
            accepted: accepted.iter().map(|(s, _)| *s).collect(),
            forward: with(|c| c == Category::Forward),
            audit: with(|c| c != Category::Unhandled),
        }
    }
}

/// How long before a forwarder's kill -9 a delivery can have been made without its delivered
/// id written yet: the lease's requests (they go out together and each ends within the
/// forwarder's timeout) and the write that follows them, with room for a loaded machine.
const KILL_WINDOW: Duration = Duration::from_secs(FORWARDER_TIMEOUT.as_secs() + 3);

/// At most one lease of the killed forwarder goes out twice: its `batch_size` on Redis, which
/// the pipeline leaves at the forwarder's default.
fn forwarder_lease() -> usize {
    mutt_forwarder::ForwarderConfig::default().batch_size
}

/// The duplicates at-least-once delivery allows: a forwarder killed after the receiver took an
/// alert and before the forwarder wrote its delivered id leaves it leased, and the lease's
/// recovery sends it again. So the first delivery came at most [`KILL_WINDOW`] before a kill,
/// every later one after it, and no kill explains more than one lease. Returns, per
/// duplicate, whether it is explained so.
pub(crate) fn duplicated_at_kill(duplicates: &[Duplicate], kills: &[Instant]) -> Vec<bool> {
    let lease = forwarder_lease();
    let mut per_kill = vec![0usize; kills.len()];
    duplicates
        .iter()
        .map(|d| {
            let kill = kills.iter().position(|k| {
                d.first <= *k && k.duration_since(d.first) <= KILL_WINDOW && d.again.iter().all(|a| a > k)
            });
            match kill {
                Some(i) if per_kill[i] < lease => {
                    per_kill[i] += 1;
                    true
                }
                _ => false,
            }
        })
        .collect()
}

/// Counts what arrived and names every loss or duplicate.
pub(crate) async fn judge(
    p: &Pipeline,
    expected: &Expected,
    refused: u64,
    log: &FaultLog,
) -> anyhow::Result<ChaosReport> {
    let (queued, leased, dead) = p.leftovers().await.unwrap_or((u64::MAX, u64::MAX, u64::MAX));
    let (rows, distinct, audit_seqs) = p.audit_counts().await?;
    let (alert_ids, dup_ids, _) = p.sink.counts();
    let delivered_seqs = p.sink.seqs();
    let mut problems = Vec::new();
    let audit_set: HashSet<u64> = audit_seqs.iter().map(|s| *s as u64).collect();
    let missing_audit = expected.audit.difference(&audit_set).count();
    if missing_audit > 0 {
        problems.push(format!("{missing_audit} accepted handled events have no audit row"));
    }
    if rows != distinct || audit_set.len() != audit_seqs.len() {
        problems.push(format!(
            "duplicate audit rows: {rows} rows, {distinct} distinct ids, {} distinct events",
            audit_set.len()
        ));
    }
    let delivered_set: HashSet<u64> = delivered_seqs.iter().copied().collect();
    let missing_alerts = expected.forward.difference(&delivered_set).count();
    if missing_alerts > 0 {
        problems.push(format!("{missing_alerts} alerts never reached the receiver"));
    }
    let duplicates = p.sink.duplicates();
    let at_kill = duplicated_at_kill(&duplicates, &log.forwarder_kills);
    let unexplained: Vec<String> = duplicates
        .iter()
        .zip(&at_kill)
        .filter(|(_, k)| !**k)
        .map(|(d, _)| {
            let again: Vec<String> = d.again.iter().map(|t| log.secs(t)).collect();
            format!("{} at {} s, again at {} s", d.external_id, log.secs(&d.first), again.join(", "))
        })
        .collect();
    let kills: Vec<String> = log.forwarder_kills.iter().map(|k| log.secs(k)).collect();
    // Every delivery past the first of an event is one of the explained repeats, or a problem
    // (also one under another alert id).
    let explained_repeats: usize =
        duplicates.iter().zip(&at_kill).filter(|(_, k)| **k).map(|(d, _)| d.again.len()).sum();
    if !unexplained.is_empty() || delivered_seqs.len() != delivered_set.len() + explained_repeats {
        problems.push(format!(
            "{} alert ids delivered twice, not at a forwarder kill (kills at {} s; {} deliveries of {} events): {}",
            unexplained.len(),
            kills.join(", "),
            delivered_seqs.len(),
            delivered_set.len(),
            unexplained.iter().take(10).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    if (queued, leased, dead) != (0, 0, 0) {
        problems.push(format!("left in Redis: {queued} queued, {leased} leased, {dead} dead-lettered"));
    }
    let ambiguous = audit_set.union(&delivered_set).filter(|s| !expected.accepted.contains(s)).count();
    let unexpected_handled =
        audit_set.iter().filter(|s| expected.accepted.contains(s) && !expected.audit.contains(s)).count();
    if unexpected_handled > 0 {
        problems.push(format!("{unexpected_handled} unhandled events were audited"));
    }
    let accepted = expected.accepted_count;
    Ok(ChaosReport {
        sent: accepted + refused,
        accepted,
        refused,
        expected_audit: expected.audit.len() as u64,
        audit_rows: rows,
        audit_distinct_ids: distinct,
        expected_alerts: expected.forward.len() as u64,
        alerts_received: alert_ids,
        alerts_duplicated: dup_ids,
        alerts_duplicated_at_kill: at_kill.iter().filter(|k| **k).count(),
        left_queued: queued,
        left_leased: leased,
        left_dead_lettered: dead,
        ambiguous,
        missing_audit,
        missing_alerts,
        problems,
    })
}

fn undo(p: &mut Pipeline, f: Fault) -> anyhow::Result<()> {
    match f {
        Fault::RestartRedis(_) => p.redis.restart()?,
        Fault::StopPostgres(_) => p.pg.start_again()?,
        Fault::ReceiverFails(_) | Fault::ReceiverHangs(_) => p.sink.set_mode(ReceiverMode::Succeed),
        Fault::KillAlerter | Fault::KillForwarder => {}
    }
    eprintln!("chaos: {f:?} over");
    Ok(())
}

/// One row of the benchmark table.
#[derive(Debug, serde::Serialize)]
pub struct BenchRow {
    pub phase: String,
    pub offered_per_sec: u64,
    pub accepted_per_sec: f64,
    /// Alerts arriving at the receiver per second while the load ran.
    pub alerts_per_sec: f64,
    /// Events through the whole pipeline per second: alerts/s divided by the share of events
    /// that become alerts (the other events end at the alerter: audit only or unhandled).
    pub end_to_end_per_sec: f64,
    /// Seconds after the load stopped until nothing was left queued or leased.
    pub drain_seconds: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    /// CPU per process and Redis commands, per accepted event, over the phase and its drain.
    pub cost: PhaseCost,
    /// The phase's alerts as the receiver counted them after the drain.
    pub alerts: AlertCount,
}

/// What the receiver got of one phase's alerts, counted after the phase's drain: every
/// accepted event a rule forwards should arrive once, and nothing else.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct AlertCount {
    /// Accepted events a forwarding rule matches.
    pub expected: u64,
    /// Of those, the ones whose alert had not arrived when the drain ended (lost, or still
    /// on its way if the drain timed out).
    pub missing: u64,
    /// Deliveries beyond the first of an alert.
    pub delivered_again: u64,
    /// Alerts for events that should not have made one (audit-only or unhandled).
    pub unexpected: u64,
}

impl AlertCount {
    /// Counts `delivered` (the sequence number of each delivery, repeats included) against
    /// `expected`, looking only at deliveries whose number is in `range`.
    pub fn count(delivered: impl Iterator<Item = u64>, range: std::ops::Range<u64>, expected: &[u64]) -> Self {
        let mut seen: std::collections::HashMap<u64, u64> = std::collections::HashMap::with_capacity(expected.len());
        for s in delivered.filter(|s| range.contains(s)) {
            *seen.entry(s).or_default() += 1;
        }
        let wanted: std::collections::HashSet<u64> = expected.iter().copied().collect();
        Self {
            expected: wanted.len() as u64,
            missing: wanted.iter().filter(|s| !seen.contains_key(s)).count() as u64,
            delivered_again: seen.values().map(|n| n - 1).sum(),
            unexpected: seen.keys().filter(|s| !wanted.contains(s)).count() as u64,
        }
    }

    /// True when every expected alert arrived once and nothing else did.
    pub fn exact(&self) -> bool {
        self.missing == 0 && self.delivered_again == 0 && self.unexpected == 0
    }
}

#[derive(Debug, serde::Serialize)]
pub struct BenchReport {
    /// `production` (PostgreSQL fsync, synchronous_commit, full_page_writes on; Redis AOF
    /// everysec) or `fsync-off` (PostgreSQL fsync off, Redis without persistence).
    pub durability: String,
    /// The servers' durability settings as they reported them.
    pub settings: Vec<(String, String)>,
    pub rows: Vec<BenchRow>,
    pub processes: Vec<ProcessCost>,
    pub redis_cpu_seconds: f64,
    pub postgres_cpu_seconds: f64,
    /// This process over the phases: the load generator and the sink standing in for
    /// Moogsoft, which share the cores with what is measured (not in the per-event costs).
    pub bench_cpu_seconds: f64,
    pub redis_lpush_per_sec: f64,
    pub postgres_copy_rows_per_sec: f64,
}

/// What one MUTT process cost over the whole run.
#[derive(Debug, serde::Serialize)]
pub struct ProcessCost {
    pub process: String,
    pub cpu_seconds: f64,
    /// Peak resident set (VmHWM).
    pub peak_rss_mib: f64,
    /// The file-backed part of the resident set at the end (RssFile): the binary's code and
    /// read-only data, shared between processes running it and reclaimable, unlike the rest.
    pub file_backed_mib: f64,
}

#[derive(Clone, Debug)]
pub struct BenchPlan {
    pub seconds: u64,
    /// Offered events/s for the saturation phases (single events, then batches).
    pub single_rate: u64,
    pub batch_rate: u64,
    pub batch: usize,
    /// Offered events/s for the latency phase (0 leaves it out).
    pub latency_rate: u64,
    /// Offered events/s for the p99 phase (single events; 0 leaves it out).
    pub p99_rate: u64,
    /// How long to wait after a phase for the backlog to drain before the next one.
    pub drain_timeout: Duration,
    /// Where to write each phase's deliveries (arrival ms since the phase began, latency ms),
    /// one file per phase (`--latency-trace`).
    pub latency_trace: Option<std::path::PathBuf>,
}

impl BenchPlan {
    /// The same plan with its latency traces in `sub` of the directory given (one per run).
    pub fn traced_in(&self, sub: &str) -> Self {
        Self { latency_trace: self.latency_trace.as_ref().map(|d| d.join(sub)), ..self.clone() }
    }
}

/// A phase's name as a file name: `single events at 10000/s (p99)` -> `single-events-at-10000-s-p99`.
fn slug(phase: &str) -> String {
    let words: Vec<&str> = phase.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    words.join("-")
}

async fn drain(p: &Pipeline, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if p.leftovers().await.is_some_and(|(q, l, _)| q == 0 && l == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn bench(opts: PipelineOptions, plan: &BenchPlan, durable: bool) -> anyhow::Result<BenchReport> {
    let p = Pipeline::start_with(opts, durable).await?;
    let plan = &plan.traced_in(if durable { "production" } else { "fsync-off" });
    let settings = p.durability_settings().await;
    let bench_cpu = crate::process::cpu_seconds_of(std::process::id());
    let rows = run_phases(&p.ingest_url, &p.sink, plan, &p, || drain(&p, plan.drain_timeout)).await;
    let bench_cpu = crate::process::cpu_seconds_of(std::process::id()) - bench_cpu;
    let (processes, redis_cpu, pg_cpu) = p.resources();
    let redis_lpush_per_sec = redis_ceiling(&p.redis.url());
    let postgres_copy_rows_per_sec = copy_ceiling(&p.db_url).await.unwrap_or(f64::NAN);
    Ok(BenchReport {
        durability: if durable { "production" } else { "fsync-off" }.to_owned(),
        settings,
        rows,
        processes,
        redis_cpu_seconds: redis_cpu,
        postgres_cpu_seconds: pg_cpu,
        bench_cpu_seconds: bench_cpu,
        redis_lpush_per_sec,
        postgres_copy_rows_per_sec,
    })
}

/// The load phases (single events, batches, fixed-rate p99 and latency) against an ingest URL
/// whose alerts arrive at `sink`; `drain` waits until nothing is left queued or leased;
/// `meter` is read before each phase and after its drain.
pub async fn run_phases<F, Fut>(
    ingest_url: &str,
    sink: &crate::pipeline::Sink,
    plan: &BenchPlan,
    meter: &dyn Meter,
    drain: F,
) -> Vec<BenchRow>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut rows = Vec::new();
    let dur = Duration::from_secs(plan.seconds);
    let mut seq = 0u64;
    let mut phases = vec![
        (format!("single events, offered {}/s", plan.single_rate), plan.single_rate, 1usize),
        (format!("batches of {}, offered {}/s", plan.batch, plan.batch_rate), plan.batch_rate, plan.batch),
    ];
    if plan.p99_rate > 0 {
        phases.push((format!("single events at {}/s (p99)", plan.p99_rate), plan.p99_rate, 1));
    }
    if plan.latency_rate > 0 {
        phases.push((format!("single events at {}/s (latency)", plan.latency_rate), plan.latency_rate, 1));
    }
    // Every offered event delivered at most once, so the sink does not grow while it is being
    // measured (up to 10 million; longer runs grow past that).
    let offered = phases.iter().fold(0u64, |n, (_, rate, _)| n.saturating_add(rate.saturating_mul(plan.seconds)));
    sink.reserve(usize::try_from(offered.min(10_000_000)).unwrap_or(0));
    for (phase, rate, batch) in phases {
        let before = meter.sample();
        let first = seq;
        let t0 = Instant::now();
        let (accepted, _) = crate::raw_load::offer_fast(ingest_url, seq, rate, batch, dur).await;
        let t1 = Instant::now();
        seq += rate * plan.seconds + 1_000_000;
        eprintln!("bench: {phase}: {} accepted in {:.1} s; draining", accepted.len(), (t1 - t0).as_secs_f64());
        drain().await;
        let t2 = Instant::now();
        let cost = PhaseCost::between(&before, &meter.sample(), accepted.len() as u64);
        // End to end: deliveries per second while the load ran (the backlog, if any, counts
        // only once it arrives, so a saturated pipeline shows its capacity).
        let delivered = sink.delivered_between(t0, t1) as f64;
        let lat = sink.latencies(t0, t2);
        if let Some(dir) = &plan.latency_trace {
            let path = dir.join(format!("{}-{}.txt", rows.len() + 1, slug(&phase)));
            if let Err(e) = sink.write_trace(t0, t2, &path) {
                eprintln!("bench: cannot write the latency trace {}: {e}", path.display());
            }
        }
        let forwarded: Vec<u64> = accepted.iter().filter(|(_, c)| *c == Category::Forward).map(|(s, _)| *s).collect();
        let alerts = sink.count_alerts(first..seq, &forwarded);
        let forward_share = forwarded.len() as f64 / accepted.len().max(1) as f64;
        let secs = (t1 - t0).as_secs_f64();
        rows.push(BenchRow {
            phase,
            offered_per_sec: rate,
            accepted_per_sec: accepted.len() as f64 / secs,
            alerts_per_sec: delivered / secs,
            end_to_end_per_sec: delivered / secs / forward_share.max(0.01),
            drain_seconds: (t2 - t1).as_secs_f64(),
            latency_p50_ms: percentile(&lat, 0.5),
            latency_p95_ms: percentile(&lat, 0.95),
            latency_p99_ms: percentile(&lat, 0.99),
            cost,
            alerts,
        });
        if let Some(r) = rows.last() {
            eprintln!(
                "bench: {}: accepted {:.0}/s, end to end {:.0} events/s, p50/p95/p99 {:.1}/{:.1}/{:.1} ms (drained in {:.1} s)",
                r.phase,
                r.accepted_per_sec,
                r.end_to_end_per_sec,
                r.latency_p50_ms,
                r.latency_p95_ms,
                r.latency_p99_ms,
                (t2 - t1).as_secs_f64()
            );
        }
    }
    rows
}

fn redis_ceiling(url: &str) -> f64 {
    let port = url.trim_end_matches('/').rsplit(':').next().unwrap_or("6379").to_owned();
    let out = std::process::Command::new("redis-benchmark")
        .args(["-p", &port, "-P", "16", "-t", "lpush", "-n", "1000000", "-q"])
        .output();
    out.ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let line = text.rsplit('\r').next().unwrap_or("").to_owned();
            line.split_whitespace().nth(1).and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// Rows/s of `COPY` into a table shaped like the audit log (200,000 rows).
async fn copy_ceiling(db_url: &str) -> anyhow::Result<f64> {
    use futures_util::SinkExt;
    let (c, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    c.batch_execute("CREATE TEMP TABLE copy_ceiling (event_id uuid, event_timestamp timestamptz, hostname text, matched_rule_id int, handling_decision text, forwarded_to_moog bool, raw_message text)").await?;
    let mut data = String::new();
    for i in 0..200_000u32 {
        data.push_str(&format!(
            "{}\t2025-11-08 12:00:00+00\tsw{}.example.net\t{}\tPage_and_ticket\tt\t{{\"message\":\"LINK-DOWN {i}\"}}\n",
            uuid::Uuid::now_v7(),
            i % 300,
            i % 100
        ));
    }
    let started = Instant::now();
    let sink = c.copy_in("COPY copy_ceiling FROM STDIN").await?;
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from(data)).await?;
    let n = sink.finish().await?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The per-phase table of a benchmark.
pub fn print_rows(rows: &[BenchRow]) {
    println!(
        "{:<40} {:>9} {:>10} {:>9} {:>10} {:>7} {:>8} {:>8} {:>8}",
        "phase", "offered/s", "accepted/s", "alerts/s", "e2e ev/s", "drain s", "p50 ms", "p95 ms", "p99 ms"
    );
    for row in rows {
        println!(
            "{:<40} {:>9} {:>10.0} {:>9.0} {:>10.0} {:>7.1} {:>8.1} {:>8.1} {:>8.1}",
            row.phase,
            row.offered_per_sec,
            row.accepted_per_sec,
            row.alerts_per_sec,
            row.end_to_end_per_sec,
            row.drain_seconds,
            row.latency_p50_ms,
            row.latency_p95_ms,
            row.latency_p99_ms
        );
    }
    println!("alerts counted after each phase's drain (every accepted event a rule forwards, once):");
    for row in rows {
        let a = row.alerts;
        let verdict = if a.exact() { "exact" } else { "NOT EXACT" };
        println!(
            "  {:<40} {} expected, {} missing, {} delivered again, {} unexpected: {verdict}",
            row.phase, a.expected, a.missing, a.delivered_again, a.unexpected
        );
    }
}

pub fn report_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| json!({}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A phase's alerts: other phases' deliveries ignored, a missing one, a repeat and one
    /// that should not have come each counted.
    #[test]
    fn alerts_are_counted_per_phase() {
        let expected = [100, 101, 102, 103];
        let exact = AlertCount::count([5, 100, 101, 102, 103, 200].into_iter(), 100..200, &expected);
        assert_eq!(exact, AlertCount { expected: 4, missing: 0, delivered_again: 0, unexpected: 0 });
        assert!(exact.exact());
        let wrong = AlertCount::count([100, 101, 101, 101, 103, 150].into_iter(), 100..200, &expected);
        assert_eq!(wrong, AlertCount { expected: 4, missing: 1, delivered_again: 2, unexpected: 1 });
        assert!(!wrong.exact());
    }

    #[test]
    fn latency_traces_are_named_after_their_phase_and_run() {
        assert_eq!(slug("single events at 10000/s (p99)"), "single-events-at-10000-s-p99");
        assert_eq!(slug("batches of 100, offered 60000/s"), "batches-of-100-offered-60000-s");
        let plan = BenchPlan {
            seconds: 1,
            single_rate: 0,
            batch_rate: 0,
            batch: 100,
            latency_rate: 0,
            p99_rate: 0,
            drain_timeout: Duration::from_secs(1),
            latency_trace: Some("/tmp/traces".into()),
        };
        assert_eq!(plan.traced_in("production").latency_trace, Some("/tmp/traces/production".into()));
        assert_eq!(BenchPlan { latency_trace: None, ..plan }.traced_in("production").latency_trace, None);
    }

    fn dup(id: &str, first: Instant, again: &[Instant]) -> Duplicate {
        Duplicate { external_id: id.into(), first, again: again.to_vec() }
    }

    #[test]
    fn only_a_delivery_just_before_a_forwarder_kill_may_repeat_after_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let kills = [at(10_000), at(50_000)];
        let dups = [
            dup("just before the first kill", at(9_800), &[at(13_500)]),
            dup("before the second, again after", at(46_000), &[at(54_000)]),
            dup("long before a kill", at(20_000), &[at(52_000)]),
            dup("again before the kill too", at(9_500), &[at(9_900), at(14_000)]),
            dup("both after the kill", at(10_100), &[at(13_000)]),
            dup("no kill near", at(30_000), &[at(31_000)]),
        ];
        assert_eq!(duplicated_at_kill(&dups, &kills), [true, true, false, false, false, false]);
        assert_eq!(duplicated_at_kill(&dups, &[]), [false; 6], "without a kill nothing is explained");
    }

    #[test]
    fn a_kill_explains_at_most_one_lease() {
        let t0 = Instant::now();
        let kill = t0 + Duration::from_secs(5);
        let dups: Vec<Duplicate> = (0..forwarder_lease() + 3)
            .map(|i| dup(&i.to_string(), t0 + Duration::from_secs(4), &[kill + Duration::from_secs(4)]))
            .collect();
        let at_kill = duplicated_at_kill(&dups, &[kill]);
        assert_eq!(at_kill.iter().filter(|k| **k).count(), forwarder_lease());
    }
}
