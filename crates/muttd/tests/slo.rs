//! `muttd slo`: against a real Prometheus (the Debian package) scraping an exporter with known,
//! growing counters, each SLO's value, status and burn rate are the ones the series imply, and
//! a dynamic threshold changes the verdict; without a Prometheus, from the counters of a
//! running `muttd run` (embedded), after known traffic.

mod common;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The exposition after `n` scrapes: every counter grows by a fixed step per scrape, so every
/// rate ratio is exact.
fn exposition(n: u64) -> String {
    let mut text = String::new();
    let mut line = |name: &str, labels: &str, per_scrape: u64| {
        text.push_str(&format!("{name}{{{labels}}} {}\n", per_scrape * n));
    };
    // Ingestor availability 0.99 against 0.999: burn 10, critical.
    line("mutt_ingest_requests_total", "status=\"success\",reason=\"\"", 990);
    line("mutt_ingest_requests_total", "status=\"fail\",reason=\"auth\"", 10);
    // Ingestor p99: 0.95 s (between the 0.75 s warning and 1 s critical bounds).
    line("mutt_ingest_latency_seconds_bucket", "le=\"0.1\"", 50);
    line("mutt_ingest_latency_seconds_bucket", "le=\"0.5\"", 90);
    line("mutt_ingest_latency_seconds_bucket", "le=\"1.0\"", 100);
    line("mutt_ingest_latency_seconds_bucket", "le=\"+Inf\"", 100);
    // Forwarder 0.97 against 0.995: burn 6, warning.
    line("mutt_moog_requests_total", "status=\"success\",reason=\"\"", 97);
    line("mutt_moog_requests_total", "status=\"fail\",reason=\"http\"", 3);
    // Alerter: unhandled events count as processed (spec §10.5 [FIX]): 1.0, ok.
    line("mutt_alerter_events_processed_total", "status=\"handled\"", 60);
    line("mutt_alerter_events_processed_total", "status=\"unhandled\"", 40);
    line("mutt_alerter_events_processed_total", "status=\"error\"", 0);
    line("mutt_alerter_cache_reload_total", "", 10);
    line("mutt_alerter_cache_reload_failures_total", "", 0);
    // No webhook latency histogram at all: no data.
    text
}

/// A one-thread HTTP exporter on loopback answering every request with [`exposition`]; its
/// address. Ends with the test process.
fn start_exporter() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let scrapes = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = exposition(scrapes.fetch_add(1, Ordering::SeqCst) + 1);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr.to_string()
}

fn slo_json(dir: &Path, envs: &[(&str, &str)]) -> Value {
    let mut cmd = common::muttd(dir);
    cmd.envs(envs.iter().copied());
    let out = cmd.args(["slo", "--json"]).output().expect("run muttd slo");
    assert!(out.status.success(), "muttd slo: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

fn slo<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["slos"].as_array().unwrap().iter().find(|s| s["slo_name"] == name).unwrap_or_else(|| panic!("{name}"))
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|v| (v - want).abs() < 1e-6)
}

fn muttd_ok(dir: &Path, args: &[&str]) -> String {
    let out = common::muttd(dir).args(args).output().expect("run muttd");
    assert!(out.status.success(), "muttd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slos_from_a_real_prometheus_with_known_series() {
    let dir = tempfile::tempdir().unwrap();
    let target = start_exporter();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let (_prometheus, base) = common::start_prometheus(dir.path(), &config);
    let http = reqwest::Client::new();
    common::wait_ready(&http, &base).await;
    // The embedded data file holds the dynamic thresholds.
    muttd_ok(dir.path(), &["migrate"]);
    let env = [("PROMETHEUS_URL", base.as_str())];

    // Until Prometheus has two scrapes, every rate is empty.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = slo_json(dir.path(), &env);
        if !slo(&report, "alerter_cache_reload_success")["actual_value"].is_null() {
            break report;
        }
        assert!(Instant::now() < deadline, "no rates after 30 s: {report}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(report["source"], "prometheus");
    let s = slo(&report, "ingestor_availability");
    assert!(close(&s["actual_value"], 0.99) && close(&s["burn_rate"], 10.0), "{s}");
    assert_eq!((&s["status"], &s["message"]), (&"critical".into(), &"Critical burn rate (10.00x target)".into()));
    assert!(close(&s["error_budget_remaining"], -9.0) && s["target"] == 0.999 && s["window_hours"] == 24, "{s}");
    let s = slo(&report, "ingestor_latency_p99");
    assert!(close(&s["actual_value"], 0.95) && s["status"] == "warning" && s["target_seconds"] == 0.5, "{s}");
    let s = slo(&report, "forwarder_availability");
    assert!(close(&s["actual_value"], 0.97) && close(&s["burn_rate"], 6.0) && s["status"] == "warning", "{s}");
    let s = slo(&report, "forwarder_latency_p99");
    assert_eq!(
        (&s["status"], &s["message"], &s["actual_value"]),
        (&"critical".into(), &"No data from Prometheus".into(), &Value::Null)
    );
    for name in ["alerter_processing_success", "alerter_cache_reload_success"] {
        let s = slo(&report, name);
        assert!(close(&s["actual_value"], 1.0) && s["status"] == "ok", "{s}");
    }
    // The documented shape in the same object.
    assert_eq!(report["window_hours"], 24);
    assert_eq!(report["components"]["ingestor"]["state"], "critical");
    assert_eq!(report["components"]["forwarder"]["state"], "warn");
    assert!(close(&report["components"]["forwarder"]["availability"], 0.97));

    // Dynamic thresholds and window: ingestor critical only at burn 20, over a 2 h window.
    muttd_ok(dir.path(), &["config", "set", "slo_ingestor_availability_burn_rate_critical", "20"]);
    muttd_ok(dir.path(), &["config", "set", "slo_ingestor_availability_window_hours", "2"]);
    let report = slo_json(dir.path(), &env);
    let s = slo(&report, "ingestor_availability");
    assert_eq!((&s["status"], &s["window_hours"]), (&"warning".into(), &2.into()), "{s}");
    assert_eq!(report["components"]["ingestor"]["state"], "warn");

    // The table and --check.
    let out = common::muttd(dir.path()).env("PROMETHEUS_URL", &base).args(["slo", "--check"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a critical SLO (no webhook latency data) fails --check: {table}");
    assert!(table.lines().any(|l| l.starts_with("forwarder_availability") && l.contains("warning")), "{table}");
    assert!(table.contains(&format!("source: Prometheus at {base}")), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_prometheus_the_roles_own_counters_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [common::free_port(), common::free_port(), common::free_port()];
    let port_env = [
        ("MUTT_INGESTOR__PORT", ports[0].to_string()),
        ("MUTT_ALERTER__PORT", ports[1].to_string()),
        ("MUTT_FORWARDER__PORT", ports[2].to_string()),
    ];
    // Nothing running yet: every SLO critical, saying why.
    muttd_ok(dir.path(), &["migrate"]);
    let report = slo_json(dir.path(), &port_env.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    let s = slo(&report, "ingestor_availability");
    assert!(
        s["status"] == "critical" && s["message"].as_str().unwrap().starts_with("No metrics: no role answered"),
        "{s}"
    );

    let mut cmd = common::muttd(dir.path());
    cmd.envs(port_env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("INGEST_API_KEY", "slo-test-key")
        .env("WEBUI_API_KEY", "slo-test-web-key")
        .env("MUTT_LOG__LEVEL", "warn")
        .stderr(Stdio::inherit());
    let (_run, stdout) = common::spawn_run(&mut cmd);
    let mut roles = 0;
    stdout.read_until("every role's address", |line| {
        roles += usize::from(common::listening(line).is_some());
        roles >= 4
    });
    let http = reqwest::Client::new();
    let ingest = format!("http://127.0.0.1:{}/ingest", ports[0]);
    for (n, key) in ["slo-test-key"; 8].iter().chain(&["wrong-key"; 2]).enumerate() {
        let event = serde_json::json!({"hostname": format!("r{n}"), "message": "LINK-DOWN", "timestamp": "2026-01-01T00:00:00Z"});
        let _ = http.post(&ingest).header("X-API-KEY", *key).json(&event).send().await.unwrap();
    }
    let envs: Vec<(&str, &str)> = port_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = slo_json(dir.path(), &envs);
        if close(&slo(&report, "alerter_processing_success")["actual_value"], 1.0) {
            break report;
        }
        assert!(Instant::now() < deadline, "the alerter's counters never showed the events: {report}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(report["source"], "muttd-metrics");
    assert!(report["measured_seconds"].as_f64().is_some_and(|s| s > 0.0 && s < 600.0), "{report}");
    // 8 accepted, 2 refused for the key: 0.8, a burn of 200.
    let s = slo(&report, "ingestor_availability");
    assert!(close(&s["actual_value"], 0.8) && close(&s["burn_rate"], 200.0) && s["status"] == "critical", "{s}");
    assert!(slo(&report, "ingestor_latency_p99")["actual_value"].as_f64().is_some_and(|v| v > 0.0));
    // The alerts go to a file, not a webhook: nothing counted, which is not a failure.
    let s = slo(&report, "forwarder_latency_p99");
    assert_eq!((&s["status"], &s["actual_value"]), (&"unknown".into(), &Value::Null), "{s}");
    let table = muttd_table(dir.path(), &envs);
    assert!(table.contains("source: muttd's own counters (since the roles started"), "{table}");
}

fn muttd_table(dir: &Path, envs: &[(&str, &str)]) -> String {
    let out = common::muttd(dir).envs(envs.iter().copied()).arg("slo").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
