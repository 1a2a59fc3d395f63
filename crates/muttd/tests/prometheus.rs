//! A real Prometheus (the Debian package) scraping every address `muttd run` prints: after N
//! events the sum of `mutt_ingest_requests_total` over all targets is N (each role's port
//! exports that role's metrics only), no metric appears on two ports, and `promtool check
//! metrics` finds no error on any endpoint (only the original's naming warnings).

mod common;

use common::KillOnDrop;
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const EVENTS: usize = 37;
const INGEST_KEY: &str = "prometheus-test-key";

/// The warnings `promtool check metrics` gives for names kept from the original (spec §10.1),
/// listed in the README.
const INHERITED_WARNINGS: &[&str] = &[
    "mutt_alerter_cache_dev_hosts_count non-histogram and non-summary metrics should not have \"_count\" suffix",
    "mutt_alerter_cache_rules_count non-histogram and non-summary metrics should not have \"_count\" suffix",
    "mutt_alerter_cache_teams_count non-histogram and non-summary metrics should not have \"_count\" suffix",
    "mutt_db_write_latency_ms metric names should not contain abbreviated units",
    "mutt_retention_policy_days use base unit \"seconds\" instead of \"days\"",
    "mutt_webui_db_query_latency_ms metric names should not contain abbreviated units",
];

/// What `muttd run` printed: each role's address, and which role has the queue metrics.
struct Printed {
    roles: Vec<(String, SocketAddr)>,
    process_metrics: String,
}

/// `muttd run` on the embedded backend in `dir`, every port chosen by the OS.
fn start_muttd(dir: &Path) -> (KillOnDrop, Printed) {
    let mut cmd = common::muttd(dir);
    cmd.env("INGEST_API_KEY", INGEST_KEY)
        .env("WEBUI_API_KEY", "prometheus-test-web-key")
        .env("MUTT_LOG__LEVEL", "warn")
        .stderr(Stdio::inherit());
    let (proc, stdout) = common::spawn_run(&mut cmd);
    let mut printed = Printed { roles: Vec::new(), process_metrics: String::new() };
    stdout.read_until("every role's address", |line| {
        if let Some((role, addr)) = common::listening(line) {
            printed.roles.push((role.to_owned(), addr));
        } else if let Some(rest) = line.split_once("the process-wide queue metrics").map(|(_, r)| r) {
            let role = rest.rsplit_once(" are on the ").map(|(_, r)| r.trim_end_matches("'s")).unwrap_or_default();
            printed.process_metrics = role.to_owned();
        }
        printed.roles.len() >= 4 && !printed.process_metrics.is_empty()
    });
    (proc, printed)
}

/// A private Prometheus on loopback scraping `targets` every second.
fn start_prometheus(dir: &Path, targets: &[SocketAddr]) -> (KillOnDrop, String) {
    let list: Vec<String> = targets.iter().map(|a| format!("'{a}'")).collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: muttd\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
    common::start_prometheus(dir, &config)
}

/// An instant query's result vector.
async fn query(http: &reqwest::Client, base: &str, promql: &str) -> Vec<Value> {
    let data = common::prometheus_api(http, base, "/api/v1/query", &[("query", promql)]).await;
    data["result"].as_array().cloned().unwrap_or_default()
}

fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Waits until Prometheus has scraped every target (successfully) at least once after `t`.
async fn wait_for_scrapes_after(http: &reqwest::Client, base: &str, targets: usize, t: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = query(http, base, "up{job=\"muttd\"}").await;
        let scraped = query(http, base, "timestamp(up{job=\"muttd\"})").await;
        let all_up = up.len() == targets && up.iter().all(|s| value(s) == 1.0);
        if all_up && scraped.len() == targets && scraped.iter().all(|s| value(s) > t) {
            return;
        }
        assert!(Instant::now() < deadline, "targets not all scraped and up after the events: {up:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn send_events(http: &reqwest::Client, ingestor: SocketAddr) {
    for n in 0..EVENTS {
        let event = serde_json::json!({
            "hostname": format!("router{n}"),
            "message": format!("LINK-DOWN on Gi0/{n}"),
            "timestamp": "2025-11-26T10:00:00Z",
        });
        let r = http
            .post(format!("http://{ingestor}/ingest"))
            .header("X-API-KEY", INGEST_KEY)
            .json(&event)
            .send()
            .await
            .expect("post an event");
        assert!(r.status().is_success(), "event {n}: {}", r.status());
    }
}

/// `promtool check metrics` on `text`: its complaints; fails on an error (exit status 1).
fn promtool(endpoint: &str, text: &str) -> Vec<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool (Debian package `prometheus`)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // 0: clean, 3: lint problems only; anything else (1: unparsable) is an error.
    assert!(matches!(out.status.code(), Some(0 | 3)), "promtool on {endpoint}: {:?}\n{said}", out.status);
    said.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_counts_each_event_once_over_every_address_muttd_run_prints() {
    let dir = tempfile::tempdir().unwrap();
    let (_muttd, printed) = start_muttd(dir.path());
    let addr = |role: &str| printed.roles.iter().find(|(r, _)| r == role).map(|(_, a)| *a).expect(role);
    assert_eq!(printed.process_metrics, "alerter", "muttd run says where the queue metrics are");
    let targets: Vec<SocketAddr> = printed.roles.iter().map(|(_, a)| *a).collect();
    let (_prometheus, base) = start_prometheus(dir.path(), &targets);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    common::wait_ready(&http, &base).await;

    send_events(&http, addr("ingestor")).await;
    wait_for_scrapes_after(&http, &base, targets.len(), now_secs()).await;

    let sum = query(&http, &base, "sum(mutt_ingest_requests_total)").await;
    assert_eq!(sum.len(), 1, "{sum:?}");
    assert_eq!(value(&sum[0]), EVENTS as f64, "every event counted once over all targets");
    // No metric of any role on two ports.
    let per_name = "count by (__name__) (count by (__name__, instance) ({job=\"muttd\", __name__=~\"mutt_.+\"}))";
    let names = query(&http, &base, per_name).await;
    let twice: Vec<&Value> = names.iter().filter(|s| value(s) != 1.0).collect();
    assert!(twice.is_empty(), "metrics exported on several ports: {twice:?}");
    let instance_of = |series: &[Value]| series.first().map(|s| s["metric"]["instance"].clone()).unwrap_or_default();
    let ingest = query(&http, &base, "mutt_ingest_requests_total").await;
    assert_eq!(instance_of(&ingest), addr("ingestor").to_string());
    let depth = query(&http, &base, "mutt_queue_depth").await;
    assert!(!depth.is_empty(), "the queue metrics are exported");
    assert_eq!(instance_of(&depth), addr("alerter").to_string(), "on the port muttd run named");
    let rules = query(&http, &base, "mutt_alerter_cache_rules_count").await;
    assert_eq!(instance_of(&rules), addr("alerter").to_string());

    // promtool reads what a plain `curl /metrics` gets.
    for (role, a) in &printed.roles {
        let text = http.get(format!("http://{a}/metrics")).send().await.unwrap().text().await.unwrap();
        let problems = promtool(role, &text);
        let unexpected: Vec<&String> = problems.iter().filter(|p| !INHERITED_WARNINGS.contains(&p.as_str())).collect();
        assert!(unexpected.is_empty(), "promtool on the {role}'s /metrics: {unexpected:?}");
    }
}
