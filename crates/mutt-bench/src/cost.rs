//! What a phase of the benchmark cost: CPU seconds per process (from /proc) and Redis
//! commands (from `INFO commandstats`), sampled before and after, divided by the events the
//! phase accepted. Far less sensitive to a loaded machine than events per second.

use serde::Serialize;
use std::collections::BTreeMap;

/// Round 1 (docs/benchmarks.md, 2026-11-26, `fsync=off`), the basis of the ratios printed.
pub mod round1 {
    /// End-to-end events/s, single events (60 s phase).
    pub const SINGLE_E2E: f64 = 16_476.0;
    /// End-to-end events/s while loaded, batches of 100 (60 s phase).
    pub const BATCH_E2E: f64 = 24_773.0;
    /// CPU µs per event of every process but the load generator and the sink, averaged over
    /// the phases (issue #21).
    pub const TOTAL_CPU_US: f64 = 57.0;
    /// Of that, redis-server (issue #21).
    pub const REDIS_CPU_US: f64 = 16.0;
    /// p99 ms at 2,000 single events/s.
    pub const P99_AT_2000_MS: f64 = 4.0;
    /// Peak RSS MiB per role.
    pub const RSS_MIB: [(&str, f64); 3] = [("ingestor", 21.1), ("alerter", 20.9), ("forwarder", 16.4)];
}

/// A reading of the counters of a running pipeline.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// CPU seconds per process name (roles, `redis-server`, `postgres`).
    pub cpu: Vec<(String, f64)>,
    /// Redis `INFO commandstats`: command -> (calls, µs inside Redis).
    pub redis: BTreeMap<String, (u64, u64)>,
    /// The alerters' batch clock, summed over the alerter processes (empty when not read).
    pub alerter: AlerterClock,
    /// Of redis-server's CPU seconds in `cpu`, those of the forks it reaped (AOF rewrites):
    /// a rewrite writes the whole dataset again, so its cost grows with what Redis holds.
    pub redis_forks: f64,
}

/// Counters of the alerters' `/metrics`: seconds their batch loops spent per phase
/// (`mutt_alerter_batch_phase_seconds_total`) and the batches that leased something (the
/// count of `mutt_alerter_processing_latency_seconds`, observed once per such batch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlerterClock {
    pub seconds_by_phase: BTreeMap<String, f64>,
    pub batches: f64,
}

impl AlerterClock {
    /// Reads the counters from a Prometheus text exposition (other series are skipped).
    pub fn parse(text: &str) -> Self {
        let mut clock = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.trim().parse::<f64>() else { continue };
            if series == "mutt_alerter_processing_latency_seconds_count" {
                clock.batches += value;
            } else if let Some(phase) = series
                .strip_prefix("mutt_alerter_batch_phase_seconds_total{phase=\"")
                .and_then(|rest| rest.strip_suffix("\"}"))
            {
                *clock.seconds_by_phase.entry(phase.to_owned()).or_default() += value;
            }
        }
        clock
    }

    /// Adds another alerter's counters.
    pub fn add(&mut self, other: &AlerterClock) {
        self.batches += other.batches;
        for (phase, s) in &other.seconds_by_phase {
            *self.seconds_by_phase.entry(phase.clone()).or_default() += s;
        }
    }
}

/// The `/metrics` text of the process listening on loopback `port`; empty on any failure. A plain HTTP/1.0 GET on a std socket: the meter is synchronous (as the
/// `redis-cli` call beside it) and runs inside the bench's runtime, where reqwest's blocking
/// client may not be used.
pub fn scrape_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let get = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&std::net::SocketAddr::from(([127, 0, 0, 1], port)), timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
    };
    get().unwrap_or_default()
}

/// Something whose counters can be read between phases.
pub trait Meter {
    fn sample(&self) -> Sample;
}

/// A meter that reads nothing (the phases still run).
pub struct NoMeter;

impl Meter for NoMeter {
    fn sample(&self) -> Sample {
        Sample::default()
    }
}

/// The CPU seconds of one process, and the batch clock of the alerter whose `/metrics` is on
/// `alerter_port` (`muttd run`'s alerter role) when there is one.
pub struct ProcessMeter {
    pub name: String,
    pub pid: u32,
    pub alerter_port: Option<u16>,
}

impl Meter for ProcessMeter {
    fn sample(&self) -> Sample {
        Sample {
            cpu: vec![(self.name.clone(), crate::process::cpu_seconds_of(self.pid))],
            alerter: self.alerter_port.map(|p| AlerterClock::parse(&scrape_metrics(p))).unwrap_or_default(),
            ..Sample::default()
        }
    }
}

/// What one phase cost per accepted event.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseCost {
    pub events: u64,
    /// CPU µs per event per process, in the meter's order.
    pub cpu_us_per_event: Vec<(String, f64)>,
    /// Sum of the above: every process but the load generator and the sink.
    pub cpu_us_per_event_total: f64,
    /// Redis commands per event (scripts' inner commands included, each counted once more
    /// for the EVALSHA that ran them).
    pub redis_calls_per_event: f64,
    /// Per command, calls per event, most frequent first.
    pub redis_commands_per_event: Vec<(String, f64)>,
    /// Of redis-server's CPU µs per event, its reaped forks' (AOF rewrites).
    pub redis_forks_us_per_event: f64,
    /// The alerters' batches that leased something during the phase and its drain.
    pub alerter_batches: f64,
    /// Events per such batch.
    pub alerter_events_per_batch: f64,
    /// Milliseconds of batch-loop time per batch, by phase of the batch, in the alerter's
    /// order (`lease` includes waiting for work; `unhandled` overlaps `audit`).
    pub alerter_ms_per_batch: Vec<(String, f64)>,
}

impl PhaseCost {
    pub fn between(before: &Sample, after: &Sample, events: u64) -> Self {
        let n = events.max(1) as f64;
        let cpu_us_per_event: Vec<(String, f64)> = after
            .cpu
            .iter()
            .map(|(name, s)| {
                let was = before.cpu.iter().find(|(b, _)| b == name).map_or(0.0, |(_, v)| *v);
                (name.clone(), (s - was).max(0.0) * 1e6 / n)
            })
            .collect();
        let mut commands: Vec<(String, f64)> = after
            .redis
            .iter()
            .map(|(cmd, (calls, _))| {
                let was = before.redis.get(cmd).map_or(0, |c| c.0);
                (cmd.clone(), calls.saturating_sub(was) as f64 / n)
            })
            .filter(|(_, per)| *per > 0.0)
            .collect();
        commands.sort_by(|a, b| b.1.total_cmp(&a.1));
        let batches = (after.alerter.batches - before.alerter.batches).max(0.0);
        let alerter_ms_per_batch = if batches > 0.0 {
            mutt_alerter::timings::Phase::ALL
                .iter()
                .filter_map(|phase| {
                    let s = after.alerter.seconds_by_phase.get(phase.name())?;
                    let was = before.alerter.seconds_by_phase.get(phase.name()).copied().unwrap_or(0.0);
                    Some((phase.name().to_owned(), (s - was).max(0.0) * 1e3 / batches))
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            alerter_batches: batches,
            alerter_events_per_batch: if batches > 0.0 { events as f64 / batches } else { 0.0 },
            alerter_ms_per_batch,
            events,
            cpu_us_per_event_total: cpu_us_per_event.iter().map(|(_, v)| v).sum(),
            cpu_us_per_event,
            redis_forks_us_per_event: (after.redis_forks - before.redis_forks).max(0.0) * 1e6 / n,
            redis_calls_per_event: commands.iter().map(|(_, v)| v).sum(),
            redis_commands_per_event: commands,
        }
    }

    /// CPU µs per event of the processes whose name starts with `prefix`.
    pub fn cpu_of(&self, prefix: &str) -> f64 {
        self.cpu_us_per_event.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, v)| v).sum()
    }
}

/// `INFO commandstats` of the Redis on `port`, through redis-cli (counted as one more call).
pub fn redis_commandstats(port: u16) -> BTreeMap<String, (u64, u64)> {
    let out = std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "INFO", "commandstats"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    parse_commandstats(&text)
}

/// `cmdstat_lpush:calls=3,usec=12,usec_per_call=4.00,…` lines into command -> (calls, usec).
pub fn parse_commandstats(text: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, fields)) = line.trim().strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
            continue;
        };
        let field = |key: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.insert(name.to_owned(), (field("calls"), field("usec")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_and_costs_per_event() {
        let before = Sample {
            cpu: vec![("redis-server".into(), 1.0)],
            redis_forks: 0.25,
            redis: parse_commandstats(
                "# Commandstats\r\ncmdstat_lpush:calls=10,usec=50,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n",
            ),
            ..Sample::default()
        };
        let after = Sample {
            cpu: vec![("redis-server".into(), 1.5)],
            redis_forks: 0.35,
            redis: parse_commandstats(
                "cmdstat_lpush:calls=110,usec=550,usec_per_call=5.00\r\ncmdstat_evalsha:calls=50,usec=1,usec_per_call=0.02\r\n",
            ),
            ..Sample::default()
        };
        let c = PhaseCost::between(&before, &after, 100);
        assert_eq!(c.alerter_batches, 0.0, "no alerter read, no batch clock");
        assert!(c.alerter_ms_per_batch.is_empty());
        assert_eq!(c.cpu_us_per_event, vec![("redis-server".to_owned(), 5000.0)]);
        assert_eq!(c.redis_calls_per_event, 1.5);
        assert_eq!(c.redis_commands_per_event[0], ("lpush".to_owned(), 1.0));
        assert_eq!(c.cpu_of("redis"), 5000.0);
        assert!((c.redis_forks_us_per_event - 1000.0).abs() < 1e-6, "{}", c.redis_forks_us_per_event);
    }

    /// Two alerters' expositions summed, then per batch over a phase, in the alerter's order.
    #[test]
    fn alerter_clock_per_batch() {
        let exposition = |audit: f64, lease: f64, batches: u64| {
            format!(
                "# HELP mutt_alerter_batch_phase_seconds_total Time.\n\
                 # TYPE mutt_alerter_batch_phase_seconds_total counter\n\
                 mutt_alerter_batch_phase_seconds_total{{phase=\"audit\"}} {audit}\n\
                 mutt_alerter_batch_phase_seconds_total{{phase=\"lease\"}} {lease}\n\
                 mutt_alerter_processing_latency_seconds_sum 9.5\n\
                 mutt_alerter_processing_latency_seconds_count {batches}\n\
                 mutt_alerter_processing_latency_seconds_bucket{{le=\"0.001\"}} 7\n\
                 mutt_alerter_events_processed_total{{status=\"handled\"}} 1000\n"
            )
        };
        let sum = |a: &str, b: &str| {
            let mut clock = AlerterClock::parse(a);
            clock.add(&AlerterClock::parse(b));
            clock
        };
        let before = Sample { alerter: sum(&exposition(1.0, 2.0, 10), &exposition(0.5, 0.0, 0)), ..Sample::default() };
        let after = Sample { alerter: sum(&exposition(2.0, 2.5, 60), &exposition(1.5, 1.0, 50)), ..Sample::default() };
        assert_eq!(before.alerter.batches, 10.0);
        assert_eq!(before.alerter.seconds_by_phase.get("audit"), Some(&1.5));
        let c = PhaseCost::between(&before, &after, 1_000);
        assert_eq!(c.alerter_batches, 100.0);
        assert_eq!(c.alerter_events_per_batch, 10.0);
        // 2 s of audit and 1.5 s of lease over 100 batches, leases first as a batch goes.
        assert_eq!(c.alerter_ms_per_batch, vec![("lease".to_owned(), 15.0), ("audit".to_owned(), 20.0)]);
    }
}
