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

/// The CPU seconds of one process.
pub struct ProcessMeter {
    pub name: String,
    pub pid: u32,
}

impl Meter for ProcessMeter {
    fn sample(&self) -> Sample {
        Sample { cpu: vec![(self.name.clone(), crate::process::cpu_seconds_of(self.pid))], ..Sample::default() }
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
        Self {
            events,
            cpu_us_per_event_total: cpu_us_per_event.iter().map(|(_, v)| v).sum(),
            cpu_us_per_event,
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
            redis: parse_commandstats(
                "# Commandstats\r\ncmdstat_lpush:calls=10,usec=50,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n",
            ),
        };
        let after = Sample {
            cpu: vec![("redis-server".into(), 1.5)],
            redis: parse_commandstats(
                "cmdstat_lpush:calls=110,usec=550,usec_per_call=5.00\r\ncmdstat_evalsha:calls=50,usec=1,usec_per_call=0.02\r\n",
            ),
        };
        let c = PhaseCost::between(&before, &after, 100);
        assert_eq!(c.cpu_us_per_event, vec![("redis-server".to_owned(), 5000.0)]);
        assert_eq!(c.redis_calls_per_event, 1.5);
        assert_eq!(c.redis_commands_per_event[0], ("lpush".to_owned(), 1.0));
        assert_eq!(c.cpu_of("redis"), 5000.0);
    }
}
