//! The soak run: the chaos pipeline (separate `muttd` processes on a private Redis and
//! PostgreSQL, a counting webhook sink) under steady load for many minutes, with one fault a
//! minute in rotation, and the figures that show growth: each role's RSS, Redis's key count
//! and memory, before and after. Nothing may be lost.

use crate::pipeline::{Pipeline, PipelineOptions, offer};
use crate::scenario::{ChaosProfile, ChaosReport, Expected, Fault, drain_until_delivered, inject_faults, judge};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct SoakPlan {
    pub minutes: u64,
    /// Offered events/s.
    pub rate: u64,
    /// Events per request.
    pub batch: usize,
}

/// The faults in the order they come, one a minute (the first 30 s into the load).
fn rotation() -> [Fault; 5] {
    let s = Duration::from_secs;
    [
        Fault::KillAlerter,
        Fault::RestartRedis(s(2)),
        Fault::StopPostgres(s(15)),
        Fault::ReceiverFails(s(20)),
        Fault::KillForwarder,
    ]
}

pub fn profile(plan: &SoakPlan) -> ChaosProfile {
    let faults = (0..plan.minutes)
        .zip(rotation().into_iter().cycle())
        .map(|(minute, fault)| (Duration::from_secs(30 + 60 * minute), fault))
        .collect();
    ChaosProfile {
        name: "soak",
        load: Duration::from_secs(60 * plan.minutes),
        rate: plan.rate,
        batch: plan.batch,
        faults,
        drain_timeout: Duration::from_secs(300),
    }
}

/// The resource figures at one moment.
#[derive(Debug, serde::Serialize)]
pub struct Snapshot {
    pub at: String,
    /// (process, RSS KiB, peak RSS KiB)
    pub roles: Vec<(String, u64, u64)>,
    pub redis_rss_kib: u64,
    pub redis_keys: u64,
    pub redis_used_memory: u64,
    /// Keys by their first two `:`-separated parts (`mutt:processing`, …).
    pub redis_keys_by_prefix: BTreeMap<String, u64>,
}

#[derive(Debug, serde::Serialize)]
pub struct SoakReport {
    pub minutes: u64,
    pub rate: u64,
    pub faults: Vec<String>,
    pub snapshots: Vec<Snapshot>,
    pub counts: ChaosReport,
    /// Accepted events that are neither audited (handled ones) nor delivered (forwarded ones).
    pub lost: usize,
}

async fn snapshot(p: &Pipeline, at: &str) -> Snapshot {
    let roles = std::iter::once(&p.ingestor)
        .chain(&p.alerters)
        .chain(&p.forwarders)
        .map(|s| {
            let (rss, peak) = s.rss_kib();
            (s.name.clone(), rss, peak)
        })
        .collect();
    let redis_rss_kib = p.redis.pid().map(|pid| crate::process::status_kib(pid, "VmRSS:")).unwrap_or(0);
    let mut c = p.queue.connection();
    let redis_keys: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap_or(0);
    let info: String = redis::cmd("INFO").arg("memory").query_async(&mut c).await.unwrap_or_default();
    let redis_used_memory =
        info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let mut redis_keys_by_prefix = BTreeMap::new();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut c).await.unwrap_or_default();
    for k in keys {
        let prefix: Vec<&str> = k.splitn(3, ':').take(2).collect();
        *redis_keys_by_prefix.entry(prefix.join(":")).or_default() += 1;
    }
    Snapshot { at: at.to_owned(), roles, redis_rss_kib, redis_keys, redis_used_memory, redis_keys_by_prefix }
}

pub async fn soak(opts: PipelineOptions, plan: &SoakPlan) -> anyhow::Result<SoakReport> {
    let profile = profile(plan);
    let mut p = Pipeline::start(PipelineOptions { aof: true, ..opts }).await?;
    let mut snapshots = vec![snapshot(&p, "idle, before the load").await];
    let started = Instant::now();
    let url = p.ingest_url.clone();
    let (rate, batch, load) = (profile.rate, profile.batch, profile.load);
    let load_task = tokio::spawn(async move { offer(&url, 0, rate, batch, load).await });
    // Warm figures before the first fault (at 30 s).
    tokio::time::sleep_until((started + Duration::from_secs(25)).into()).await;
    snapshots.push(snapshot(&p, "start: 25 s into the load").await);
    let log = inject_faults(&mut p, &profile, started).await?;
    let (accepted, refused) = load_task.await?;
    eprintln!("soak {:>6.1}s: load finished; draining", started.elapsed().as_secs_f64());
    let expected = Expected::new(&accepted);
    drain_until_delivered(&p, &expected, profile.drain_timeout).await;
    let counts = judge(&p, &expected, refused, &log).await?;
    snapshots.push(snapshot(&p, "end: drained").await);
    let lost = counts.missing_audit + counts.missing_alerts;
    let faults = profile.faults.iter().map(|(at, f)| format!("{:>5} s {f:?}", at.as_secs())).collect();
    Ok(SoakReport { minutes: plan.minutes, rate: plan.rate, faults, snapshots, counts, lost })
}

pub fn print(r: &SoakReport) {
    println!("soak: {} min at {} events/s, {} faults", r.minutes, r.rate, r.faults.len());
    for s in &r.snapshots {
        println!("-- {}", s.at);
        for (name, rss, peak) in &s.roles {
            println!("   {name:<28} RSS {:>8.1} MiB (peak {:>8.1} MiB)", *rss as f64 / 1024.0, *peak as f64 / 1024.0);
        }
        println!(
            "   {:<28} RSS {:>8.1} MiB; {} keys, used_memory {:.1} MiB",
            "redis-server",
            s.redis_rss_kib as f64 / 1024.0,
            s.redis_keys,
            s.redis_used_memory as f64 / 1048576.0
        );
        let prefixes: Vec<String> = s.redis_keys_by_prefix.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("   keys by prefix: {}", prefixes.join(", "));
    }
    let c = &r.counts;
    println!(
        "counts: sent {}, accepted {}, refused {}, audited {} rows ({} distinct, {} expected), delivered {} alerts ({} expected, {} duplicated, {} of them at a forwarder kill -9), DLQ {}, left queued {}, left leased {}, lost {}",
        c.sent,
        c.accepted,
        c.refused,
        c.audit_rows,
        c.audit_distinct_ids,
        c.expected_audit,
        c.alerts_received,
        c.expected_alerts,
        c.alerts_duplicated,
        c.alerts_duplicated_at_kill,
        c.left_dead_lettered,
        c.left_queued,
        c.left_leased,
        r.lost
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fault_a_minute_in_rotation() {
        let p = profile(&SoakPlan { minutes: 7, rate: 2000, batch: 10 });
        assert_eq!(p.faults.len(), 7);
        assert_eq!(p.faults[0].0, Duration::from_secs(30));
        assert_eq!(p.faults[6].0, Duration::from_secs(390));
        assert!(matches!(p.faults[5].1, Fault::KillAlerter), "the rotation starts again");
        assert_eq!(p.load, Duration::from_secs(420));
    }
}
