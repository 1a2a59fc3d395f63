//! The benchmark's suite (the load generator's own ceiling, then one table per durability
//! setting) and its printed form, with the ratio of each figure to round 1.

use crate::cost::{PhaseCost, round1};
use crate::null_server::NullServer;
use crate::pipeline::PipelineOptions;
use crate::raw_load::offer_fast as offer;
use crate::scenario::{BenchPlan, BenchReport, BenchRow, bench, print_rows};
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the load generator reaches against a server that does nothing, in the same run.
#[derive(Debug, Default, Serialize)]
pub struct GeneratorCeiling {
    pub single_offered_per_sec: u64,
    pub single_per_sec: f64,
    pub batch: usize,
    pub batch_offered_per_sec: u64,
    pub batch_events_per_sec: f64,
}

#[derive(Debug, Serialize)]
pub struct BenchSuite {
    pub generator_ceiling: GeneratorCeiling,
    pub tables: Vec<BenchReport>,
}

/// Which tables to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Production,
    FsyncOff,
    Both,
}

impl Durability {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "production" => Some(Self::Production),
            "fsync-off" => Some(Self::FsyncOff),
            "both" => Some(Self::Both),
            _ => None,
        }
    }
}

/// The generator against the null server (a few seconds per mode), then the tables.
pub async fn suite(opts: PipelineOptions, plan: &BenchPlan, which: Durability) -> anyhow::Result<BenchSuite> {
    let generator_ceiling = generator_ceiling(plan).await?;
    eprintln!("bench: load generator ceiling: {generator_ceiling:?}");
    let mut tables = Vec::new();
    if which != Durability::FsyncOff {
        tables.push(bench(opts.clone(), plan, true).await?);
    }
    if which != Durability::Production {
        tables.push(bench(opts, plan, false).await?);
    }
    Ok(BenchSuite { generator_ceiling, tables })
}

async fn generator_ceiling(plan: &BenchPlan) -> anyhow::Result<GeneratorCeiling> {
    let server = NullServer::start().await?;
    let secs = Duration::from_secs(5);
    let reached = |n: usize, t0: Instant| n as f64 / t0.elapsed().as_secs_f64();
    let single_offered = (plan.single_rate * 4).max(60_000);
    let t0 = Instant::now();
    let single = reached(offer(&server.url(), 0, single_offered, 1, secs).await.0.len(), t0);
    let batch_offered = (plan.batch_rate * 4).max(200_000);
    let t0 = Instant::now();
    let batched = reached(offer(&server.url(), 0, batch_offered, plan.batch, secs).await.0.len(), t0);
    Ok(GeneratorCeiling {
        single_offered_per_sec: single_offered,
        single_per_sec: single,
        batch: plan.batch,
        batch_offered_per_sec: batch_offered,
        batch_events_per_sec: batched,
    })
}

pub fn print_suite(s: &BenchSuite) {
    let g = &s.generator_ceiling;
    println!(
        "load generator alone (against a server that does nothing): single events {:.0}/s (offered {}), batches of {} {:.0} events/s (offered {})",
        g.single_per_sec, g.single_offered_per_sec, g.batch, g.batch_events_per_sec, g.batch_offered_per_sec
    );
    for t in &s.tables {
        println!();
        print_table(t);
    }
}

fn title(t: &BenchReport) -> String {
    let settings: Vec<String> = t.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("== {} durability: {} ==", t.durability, settings.join(", "))
}

/// Ratio of `now` to round 1's `then`, as text.
fn ratio(now: f64, then: f64) -> String {
    if now.is_finite() && then > 0.0 { format!("{:.2}x", now / then) } else { "-".into() }
}

/// The round-1 figure a row compares with (e2e events/s, or p99 ms for the latency phase).
fn round1_of(row: &BenchRow) -> Option<(&'static str, f64, f64)> {
    if row.phase.starts_with("single events, offered") {
        Some(("e2e", row.end_to_end_per_sec, round1::SINGLE_E2E))
    } else if row.phase.starts_with("batches of") {
        Some(("e2e", row.end_to_end_per_sec, round1::BATCH_E2E))
    } else if row.phase.contains("2000/s (latency)") {
        Some(("p99", row.latency_p99_ms, round1::P99_AT_2000_MS))
    } else {
        None
    }
}

pub fn print_table(t: &BenchReport) {
    println!("{}", title(t));
    print_rows(&t.rows);
    println!("ratio to round 1 (fsync=off, 2026-11-26):");
    for row in &t.rows {
        if let Some((what, now, then)) = round1_of(row) {
            println!("  {:<40} {what} {now:.1} vs {then:.1}: {}", row.phase, ratio(now, then));
        }
    }
    print_costs(&t.rows);
    println!(
        "{:<28} {:>10} {:>14} {:>10} {:>18}",
        "process", "CPU s", "peak RSS MiB", "vs round 1", "file-backed at end"
    );
    for p in &t.processes {
        let (n, rss) = (&p.process, p.peak_rss_mib);
        let then = round1::RSS_MIB.iter().find(|(role, _)| n.starts_with(role)).map_or(0.0, |r| r.1);
        println!("{n:<28} {:>10.1} {rss:>14.1} {:>10} {:>18.1}", p.cpu_seconds, ratio(rss, then), p.file_backed_mib);
    }
    println!("{:<28} {:>10.1}", "redis-server", t.redis_cpu_seconds);
    println!("{:<28} {:>10.1}", "postgres (all backends)", t.postgres_cpu_seconds);
    println!("{:<28} {:>10.1}", "load generator and sink", t.bench_cpu_seconds);
    let best = t.rows.iter().map(|x| x.end_to_end_per_sec).fold(0.0, f64::max);
    println!(
        "ceilings: redis-benchmark -P 16 lpush {:.0}/s (best e2e = {:.1} %); PostgreSQL COPY {:.0} rows/s (best e2e = {:.1} %)",
        t.redis_lpush_per_sec,
        100.0 * best / t.redis_lpush_per_sec,
        t.postgres_copy_rows_per_sec,
        100.0 * best / t.postgres_copy_rows_per_sec
    );
}

/// CPU µs per accepted event per process (over each phase and its drain) and Redis commands
/// per event; the ratios compare the total and Redis with round 1's 57 and 16 µs.
fn print_costs(rows: &[BenchRow]) {
    println!(
        "{:<40} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>9}",
        "CPU µs per event",
        "ingestor",
        "alerter",
        "forwarder",
        "redis",
        "postgres",
        "total",
        "vs 57",
        "vs 16",
        "redis cmd"
    );
    for r in rows {
        let c: &PhaseCost = &r.cost;
        let redis = c.cpu_of("redis");
        println!(
            "{:<40} {:>9.1} {:>8.1} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>7} {:>7} {:>9.2}",
            r.phase,
            c.cpu_of("ingestor"),
            c.cpu_of("alerter"),
            c.cpu_of("forwarder"),
            redis,
            c.cpu_of("postgres"),
            c.cpu_us_per_event_total,
            ratio(c.cpu_us_per_event_total, round1::TOTAL_CPU_US),
            ratio(redis, round1::REDIS_CPU_US),
            c.redis_calls_per_event
        );
    }
    if rows.iter().any(|r| r.cost.redis_forks_us_per_event > 0.0) {
        println!("Of Redis's CPU µs per event, its AOF rewrites (forks it reaped; they write the whole dataset):");
        for r in rows {
            let (forks, redis) = (r.cost.redis_forks_us_per_event, r.cost.cpu_of("redis"));
            println!("  {:<40} {forks:.2} of {redis:.1}", r.phase);
        }
    }
    println!("Redis commands per event (largest first):");
    for r in rows {
        let top: Vec<String> =
            r.cost.redis_commands_per_event.iter().take(8).map(|(n, v)| format!("{n} {v:.3}")).collect();
        println!("  {:<40} {}", r.phase, top.join(", "));
    }
    print_alerter_clock(rows);
}

/// The alerters' batch clock per phase (what the bench read from their `/metrics`), if any.
pub fn print_alerter_clock(rows: &[BenchRow]) {
    if rows.iter().any(|r| r.cost.alerter_batches > 0.0) {
        println!("Alerter batch loops, ms per batch by phase (lease includes waiting; unhandled overlaps audit):");
        for r in rows.iter().filter(|r| r.cost.alerter_batches > 0.0) {
            let c = &r.cost;
            let phases: Vec<String> = c.alerter_ms_per_batch.iter().map(|(n, v)| format!("{n} {v:.2}")).collect();
            println!(
                "  {:<40} {:.0} batches of {:.1} events: {}",
                r.phase,
                c.alerter_batches,
                c.alerter_events_per_batch,
                phases.join(", ")
            );
        }
    }
}
