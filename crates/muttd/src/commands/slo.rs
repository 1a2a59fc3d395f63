//! `muttd slo`: the SLO report (spec §6.7) as a table or JSON, measured by [`mutt_slo`] from
//! the configured Prometheus (`[slo] prometheus_url`, `PROMETHEUS_URL`) or, without one, from
//! the roles' own `/metrics`.

use crate::backend::connect_queue_view;
use crate::cli::SloArgs;
use crate::config::Config;
use crate::secrets::SecretSource;
use anyhow::{Result, bail};
use mutt_core::slo::{DEFINITIONS, SloReport, SloStatus};
use mutt_slo::SloSource;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Where this configuration says to measure.
pub fn source(config: &Config) -> SloSource {
    if let Some(url) = config.slo.prometheus_url.as_ref().filter(|u| !u.trim().is_empty()) {
        return SloSource::Prometheus(url.trim().to_owned());
    }
    if !config.slo.metrics_urls.is_empty() {
        return SloSource::Metrics(config.slo.metrics_urls.clone());
    }
    // The roles' ports on this machine (where `muttd run` serves each role's metrics).
    let host = match config.bind_address.as_str() {
        "0.0.0.0" | "::" | "[::]" | "" => "127.0.0.1",
        other => other,
    };
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
    let ports = [config.ingestor.port, config.alerter.port, config.forwarder.port];
    SloSource::Metrics(ports.iter().map(|p| format!("http://{host}:{p}/metrics")).collect())
}

/// The `slo_<name>_…` values set in dynamic configuration; none when it cannot be read (the
/// definitions' values apply then).
async fn dynamic_values(config: &Config, secrets: &dyn SecretSource) -> BTreeMap<String, String> {
    let keys: Vec<String> = DEFINITIONS.iter().flat_map(|d| d.keys()).collect();
    let read = async {
        let queue = connect_queue_view(config, secrets).await?;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok::<_, anyhow::Error>(queue.config_values(&refs).await?)
    };
    match read.await {
        Ok(values) => keys.iter().zip(values).filter_map(|(k, v)| Some((k.clone(), v?))).collect(),
        Err(e) => {
            eprintln!(
                "muttd: dynamic configuration unreadable, the SLO definitions' windows and thresholds apply: {e:#}"
            );
            BTreeMap::new()
        }
    }
}

pub async fn run(config: &Config, secrets: &dyn SecretSource, args: &SloArgs) -> Result<()> {
    let source = source(config);
    let dynamic = dynamic_values(config, secrets).await;
    let client = reqwest::Client::new();
    let report = mutt_slo::report(&client, &source, &dynamic).await;
    if args.json {
        super::config::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        super::config::emit(&table(&report, &source))?;
    }
    if args.check && report.slos.iter().any(|s| s.status == SloStatus::Critical) {
        bail!("an SLO is critical");
    }
    Ok(())
}

/// The report as a table, with where the values came from.
pub fn table(report: &SloReport, source: &SloSource) -> String {
    let mut out = String::new();
    // Counters read directly cover the time since start, whatever the window says.
    let window = |hours: u64| match source {
        SloSource::Prometheus(_) => format!("{hours}h"),
        SloSource::Metrics(_) => "start".to_owned(),
    };
    let num = |v: Option<f64>, digits: usize| v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "{:<30} {:>7} {:>10} {:>9} {:>8} {:>8}  {:<9} MESSAGE",
        "SLO", "WINDOW", "ACTUAL", "TARGET", "BURN", "BUDGET", "STATUS"
    );
    for s in &report.slos {
        let target = match (s.target, s.target_seconds) {
            (Some(t), _) => format!("{t}"),
            (None, Some(t)) => format!("{t}s"),
            _ => "-".into(),
        };
        let actual = match (s.actual_value, s.target_seconds) {
            (Some(v), Some(_)) => format!("{v:.3}s"),
            (v, _) => num(v, 5),
        };
        let status =
            serde_json::to_value(s.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<30} {:>7} {:>10} {:>9} {:>8} {:>8}  {:<9} {}",
            s.slo_name,
            window(s.window_hours),
            actual,
            target,
            num(s.burn_rate, 2),
            num(s.error_budget_remaining, 2),
            status,
            s.message
        );
    }
    match source {
        SloSource::Prometheus(url) => {
            let _ = writeln!(out, "source: Prometheus at {}", mutt_slo::shown(url));
        }
        SloSource::Metrics(urls) => {
            let shown: Vec<String> = urls.iter().map(|u| mutt_slo::shown(u)).collect();
            let covered = match report.measured_seconds {
                Some(s) if s < 5400.0 => format!("since the roles started {:.0} min ago", s / 60.0),
                Some(s) => format!("since the roles started {:.1} h ago", s / 3600.0),
                None => "since the roles started".into(),
            };
            let _ =
                writeln!(out, "source: muttd's own counters ({covered}, not a sliding window): {}", shown.join(" "));
            let _ = writeln!(out, "        set [slo] prometheus_url (PROMETHEUS_URL) to measure over each window");
        }
    }
    out
}
