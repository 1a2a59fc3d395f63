//! The shipped Prometheus rules (deploy/prometheus) and Grafana dashboard (deploy/grafana)
//! against a real Prometheus (the Debian package):
//! - `promtool` accepts the rule files, the example configuration and the rules' unit tests;
//! - every alert has a severity, a summary, a description and a runbook; the dashboard takes
//!   its data source as the `DS_PROMETHEUS` input;
//! - a Prometheus started from the shipped `prometheus.yml` (its targets replaced by the
//!   addresses `muttd run` prints, 1 s scrape and evaluation) scrapes every role up, evaluates
//!   every rule without error, finds every metric name the rules and the dashboard's queries
//!   use (or a name the shipped rules record), answers every dashboard query, and fires
//!   `MuttCircuitBreakerOpen` when the webhook receiver fails and the breaker opens.
//!
//! The shipped breaker alert waits `for: 1m`; the test's copy of mutt-alerts.yml says
//! `for: 0s` for that alert only, so that the test stays short.

mod common;

use common::{KillOnDrop, prometheus_api as api};
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INGEST_KEY: &str = "prometheus-rules-ingest-key";
const WEB_KEY: &str = "prometheus-rules-web-key";
const RULE_FILES: [&str; 2] = ["mutt-recording.yml", "mutt-alerts.yml"];
const BREAKER_ALERT: &str = "MuttCircuitBreakerOpen";

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `promtool ARGS` in `dir`; fails the test unless it exits 0.
fn promtool(dir: &Path, args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool (Debian package `prometheus`, installed by scripts/lib/services.sh)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}: {:?}\n{said}", out.status);
}

#[test]
fn promtool_accepts_the_rules_the_example_config_and_the_rule_unit_tests() {
    let dir = deploy().join("prometheus");
    promtool(&dir, &["check", "rules", RULE_FILES[0], RULE_FILES[1]]);
    // The example configuration, and through it the rule files it names.
    promtool(&dir, &["check", "config", "prometheus.yml"]);
    promtool(&dir, &["test", "rules", "tests/mutt-rules.test.yml"]);
}

/// The shipped rule files' rules (YAML mappings), in file order.
fn shipped_rules() -> Vec<serde_norway::Value> {
    let mut rules = Vec::new();
    for file in RULE_FILES {
        let doc: serde_norway::Value = serde_norway::from_str(&read(&deploy().join("prometheus").join(file))).unwrap();
        for group in doc["groups"].as_sequence().expect("groups") {
            rules.extend(group["rules"].as_sequence().expect("rules").iter().cloned());
        }
    }
    rules
}

#[test]
fn every_alert_has_a_severity_summary_description_and_runbook() {
    let rules = shipped_rules();
    let alerts: Vec<&serde_norway::Value> = rules.iter().filter(|r| r.get("alert").is_some()).collect();
    assert!(alerts.len() >= 20, "{} alerts", alerts.len());
    for a in alerts {
        let name = a["alert"].as_str().unwrap_or_default();
        let severity = a["labels"]["severity"].as_str();
        assert!(matches!(severity, Some("critical" | "warning" | "info")), "{name}: severity {severity:?}");
        for key in ["summary", "description", "runbook"] {
            let text = a["annotations"][key].as_str().unwrap_or_default();
            assert!(!text.trim().is_empty(), "{name}: no {key}");
        }
    }
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for wanted in [
        BREAKER_ALERT,
        "MuttIngestQueueGrowing",
        "MuttAlertQueueGrowing",
        "MuttAlerterDLQNotEmpty",
        "MuttMoogDLQNotEmpty",
        "MuttWorkerHeartbeatMissing",
        "MuttAuditWriteErrors",
        "MuttIngestRefusingEvents",
        "MuttIngestAvailabilityBudgetBurn",
        "MuttForwarderAvailabilityBudgetBurn",
        "MuttMoogCredentialsRefused",
        "MuttPoisonMessagesParked",
        "MuttDeadLetterQueueGrowing",
    ] {
        assert!(names.contains(wanted), "no alert {wanted}");
    }
}

/// Every panel of the dashboard, rows' nested panels included.
fn dashboard_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut todo: Vec<&Value> = dashboard["panels"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
    while let Some(p) = todo.pop() {
        todo.extend(p["panels"].as_array().into_iter().flatten());
        out.push(p);
    }
    out
}

fn dashboard() -> Value {
    serde_json::from_str(&read(&deploy().join("grafana/mutt.json"))).expect("mutt.json is JSON")
}

/// Every PromQL expression of the dashboard (panel targets), and the metric names its
/// template variables read (`label_values(metric, label)`).
fn dashboard_queries(dashboard: &Value) -> (Vec<String>, BTreeSet<String>) {
    let exprs = dashboard_panels(dashboard)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    let mut names = BTreeSet::new();
    for var in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        let q = var["query"].as_str().or_else(|| var["query"]["query"].as_str()).unwrap_or_default();
        let inner = q.strip_prefix("label_values(").and_then(|r| r.split_once(','));
        let metric = inner.map(|(m, _)| m.trim()).expect("a label_values(metric, label) variable");
        names.extend(metric_names(metric));
    }
    (exprs, names)
}

#[test]
fn the_dashboard_takes_its_data_source_as_an_input() {
    let d = dashboard();
    assert_eq!(d["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert_eq!(d["__inputs"][0]["pluginId"], "prometheus");
    let panels = dashboard_panels(&d);
    let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "every panel has its own id");
    let source = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"], source, "panel {}", p["title"]);
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(t["datasource"], source, "panel {}", p["title"]);
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "panel {}", p["title"]);
        }
    }
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Queue depths",
        "Dead-letter queues",
        "DLQ depths (mutt:dlq:dead included)",
        "Remediation: replays and poison parked",
        "Circuit breaker",
        "Rate-limit hits",
        "Ingest request time",
    ] {
        assert!(titles.contains(&wanted), "no panel {wanted}: {titles:?}");
    }
}

/// Words of PromQL that are not metric names.
const PROMQL_WORDS: &str = "and or unless by without on ignoring group_left group_right offset bool inf nan \
                            sum min max avg group stddev stdvar count count_values bottomk topk quantile atan2";

/// Clause keywords whose parenthesised list holds label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names a PromQL expression selects: identifiers outside strings, label
/// matchers, ranges and label lists that are neither functions nor keywords.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let chars: Vec<char> = promql.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let closing = |open: char| match open {
        '{' => '}',
        '[' => ']',
        _ => ')',
    };
    // Skips from an opening bracket to its match (strings inside included).
    let skip = |mut i: usize| {
        let close = closing(chars[i]);
        let mut quote = None;
        i += 1;
        while i < chars.len() {
            match (quote, chars[i]) {
                (Some(_), '\\') => i += 1,
                (Some(q), c) if c == q => quote = None,
                (None, c @ ('"' | '\'' | '`')) => quote = Some(c),
                (None, c) if c == close => return i + 1,
                _ => {}
            }
            i += 1;
        }
        i
    };
    let mut previous_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '{' || c == '[' {
            i = skip(i);
        } else if c == '(' && LABEL_LISTS.contains(&previous_word.as_str()) {
            i = skip(i);
            previous_word.clear();
        } else if c == '"' || c == '\'' || c == '`' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            i = j + 1;
        } else if c.is_ascii_digit() || c == '.' || c == '$' {
            // A number or duration (1e-3, 0x1f, 5m), or a dashboard variable.
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.')) {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':')) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if next != Some(&'(') && !PROMQL_WORDS.split_whitespace().any(|w| w == word) {
                names.insert(word.clone());
            }
            previous_word = word;
        } else {
            if !c.is_whitespace() {
                previous_word.clear();
            }
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = |q: &str| metric_names(q).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(r#"sum by (job, le) (rate(mutt_x_bucket{job=~"$job", le!="a b"}[$__rate_interval])) > 0.5e-3"#),
        ["mutt_x_bucket"]
    );
    assert_eq!(
        names(
            "(a:b:c or 0 * sum without (instance) (x_total offset 5m)) / on (job) group_left (q) y unless z == bool 1"
        ),
        ["a:b:c", "x_total", "y", "z"]
    );
    assert_eq!(names(r#"count(up{job="it's {odd}"} == 0) or vector(0)"#), ["up"]);
    assert_eq!(names("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))"), ["h_bucket"]);
}

/// `muttd run` on the embedded backend in `dir`, and each role's address it printed.
fn start_muttd(dir: &Path, webhook: &str) -> (KillOnDrop, BTreeMap<String, SocketAddr>) {
    let mut cmd = common::muttd(dir);
    cmd.env("INGEST_API_KEY", INGEST_KEY)
        .env("WEBUI_API_KEY", WEB_KEY)
        .env("MOOG_API_KEY", "prometheus-rules-moog-key")
        .env("MOOG_WEBHOOK_URL", webhook)
        // Two failures in a row open the breaker; it stays open for the rest of the test.
        .env("CIRCUIT_BREAKER_THRESHOLD", "2")
        .env("CIRCUIT_BREAKER_TIMEOUT", "300")
        .env("MOOG_RETRY_BASE_DELAY", "0.1")
        .env("MOOG_RETRY_MAX_DELAY", "0.3")
        .env("MUTT_LOG__LEVEL", "warn")
        .stderr(Stdio::inherit());
    let (proc, stdout) = common::spawn_run(&mut cmd);
    let mut roles = BTreeMap::new();
    stdout.read_until("every role's address", |line| {
        if let Some((role, addr)) = common::listening(line) {
            roles.insert(role.to_owned(), addr);
        }
        roles.len() >= 4
    });
    (proc, roles)
}

/// The shipped alert rules with the breaker alert's `for:` set to 0s.
fn alerts_for_the_test() -> String {
    let text = read(&deploy().join("prometheus/mutt-alerts.yml"));
    let marker = format!("- alert: {BREAKER_ALERT}\n");
    let (head, tail) = text.split_once(&marker).expect("the breaker alert");
    let block_end = tail.find("- alert:").unwrap_or(tail.len());
    let (block, rest) = tail.split_at(block_end);
    let for_line = block.lines().find(|l| l.trim_start().starts_with("for:")).expect("the breaker alert's for:");
    let indent = &for_line[..for_line.len() - for_line.trim_start().len()];
    let block = block.replacen(for_line, &format!("{indent}for: 0s"), 1);
    format!("{head}{marker}{block}{rest}")
}

/// The shipped prometheus.yml with a 1 s scrape and evaluation interval and each role's
/// target replaced by the address `muttd run` printed; the rule files copied beside it.
fn prometheus_config(dir: &Path, roles: &BTreeMap<String, SocketAddr>) -> PathBuf {
    std::fs::write(dir.join(RULE_FILES[0]), read(&deploy().join("prometheus").join(RULE_FILES[0]))).unwrap();
    std::fs::write(dir.join(RULE_FILES[1]), alerts_for_the_test()).unwrap();
    let mut config: serde_norway::Value =
        serde_norway::from_str(&read(&deploy().join("prometheus/prometheus.yml"))).expect("prometheus.yml");
    for key in ["scrape_interval", "evaluation_interval", "scrape_timeout"] {
        config["global"][key] = "1s".into();
    }
    let rule_files: Vec<&str> = config["rule_files"].as_sequence().unwrap().iter().filter_map(|f| f.as_str()).collect();
    assert_eq!(rule_files, RULE_FILES, "the example loads both rule files");
    let job = &mut config["scrape_configs"][0];
    assert_eq!(job["job_name"].as_str(), Some("mutt"));
    let mut replaced = BTreeSet::new();
    for group in job["static_configs"].as_sequence_mut().expect("static_configs") {
        let role = group["labels"]["role"].as_str().expect("a role label").to_owned();
        let addr = roles.get(&role).unwrap_or_else(|| panic!("muttd run printed no {role}"));
        group["targets"] = vec![serde_norway::Value::from(addr.to_string())].into();
        replaced.insert(role);
    }
    assert_eq!(replaced, roles.keys().cloned().collect(), "the example scrapes every role");
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    path
}

/// A rule through the web API, then events through the ingestor: five that raise alerts,
/// one unhandled, one request without a key.
async fn traffic(http: &reqwest::Client, roles: &BTreeMap<String, SocketAddr>) {
    let rule = json!({"match_string": "CRITICAL", "match_type": "contains", "prod_handling": "Page_and_ticket",
                      "dev_handling": "Ticket_only", "team_assignment": "NETO", "priority": 10});
    let r = http
        .post(format!("http://{}/api/v1/rules", roles["web"]))
        .header("X-API-KEY", WEB_KEY)
        .json(&rule)
        .send()
        .await
        .expect("create a rule");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let event = |m: String| json!({"hostname": "router1", "message": m, "timestamp": "2026-12-01T10:00:00Z"});
    let mut batch: Vec<Value> = (0..5).map(|n| event(format!("CRITICAL link {n} down"))).collect();
    batch.push(event("nothing matches this".into()));
    let ingest = format!("http://{}/ingest", roles["ingestor"]);
    let r = http.post(&ingest).header("X-API-KEY", INGEST_KEY).json(&batch).send().await.expect("ingest");
    assert!(r.status().is_success(), "{}", r.status());
    let r = http.post(&ingest).json(&event("no key".into())).send().await.expect("ingest without a key");
    assert_eq!(r.status(), 401);
}

/// Waits until every target is up, every rule was evaluated without error and the breaker
/// alert fires; returns the loaded rules (`/api/v1/rules`' groups).
async fn wait_for_rules_and_breaker_alert(http: &reqwest::Client, base: &str, targets: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let active = api(http, base, "/api/v1/targets", &[]).await["activeTargets"].clone();
        let up = active.as_array().map_or(0, |t| t.iter().filter(|t| t["health"] == "up").count());
        let groups = api(http, base, "/api/v1/rules", &[]).await["groups"].as_array().cloned().unwrap_or_default();
        let rules: Vec<&Value> = groups.iter().flat_map(|g| g["rules"].as_array().into_iter().flatten()).collect();
        let failing: Vec<String> = rules.iter().filter(|r| r["health"] == "err").map(|r| format!("{r}")).collect();
        assert!(failing.is_empty(), "rules failing to evaluate: {failing:?}");
        let evaluated = rules.iter().all(|r| r["health"] == "ok");
        let alerts = api(http, base, "/api/v1/alerts", &[]).await["alerts"].as_array().cloned().unwrap_or_default();
        let breaker = alerts.iter().find(|a| a["labels"]["alertname"] == BREAKER_ALERT && a["state"] == "firing");
        if up == targets
            && evaluated
            && let Some(alert) = breaker
        {
            assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
            assert_eq!(alert["labels"]["job"], "mutt", "{alert}");
            assert_eq!(alert["labels"]["name"], "moogsoft", "{alert}");
            assert!(alert["annotations"]["runbook"].as_str().is_some_and(|r| r.contains("muttd status")), "{alert}");
            return groups;
        }
        assert!(
            Instant::now() < deadline,
            "after 40 s: {up} of {targets} targets up, all rules evaluated: {evaluated}, alerts: {alerts:?}, targets: {active}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The rules' expressions, and the names the recording rules produce.
fn loaded_rules(groups: &[Value]) -> (Vec<String>, BTreeSet<String>) {
    let rules: Vec<&Value> = groups.iter().flat_map(|g| g["rules"].as_array().into_iter().flatten()).collect();
    assert_eq!(rules.len(), shipped_rules().len(), "prometheus loaded every shipped rule");
    let exprs = rules.iter().filter_map(|r| r["query"].as_str().map(str::to_owned)).collect();
    let recorded =
        rules.iter().filter(|r| r["type"] == "recording").filter_map(|r| r["name"].as_str()).map(str::to_owned);
    (exprs, recorded.collect())
}

/// A dashboard query as Grafana sends it, with its variables filled in.
fn grafana_expr(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m").replace("$job", ".+")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_evaluates_the_shipped_rules_on_muttd_run_and_fires_on_an_open_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = WebhookReceiver::start().await;
    receiver.set_mode(ReceiverMode::Status(500));
    let (_muttd, roles) = start_muttd(dir.path(), &receiver.url());
    let config = prometheus_config(dir.path(), &roles);
    let (_prometheus, base) = common::start_prometheus(dir.path(), &config);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    common::wait_ready(&http, &base).await;

    traffic(&http, &roles).await;
    let groups = wait_for_rules_and_breaker_alert(&http, &base, roles.len()).await;
    assert!(receiver.accepted().is_empty() && !receiver.requests().is_empty(), "the receiver failed every request");

    let scraped: BTreeSet<String> = api(&http, &base, "/api/v1/label/__name__/values", &[])
        .await
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    let (rule_exprs, recorded) = loaded_rules(&groups);
    let (dash_exprs, variable_names) = dashboard_queries(&dashboard());
    let mut missing = BTreeSet::new();
    for expr in &rule_exprs {
        // A rule reads scraped metrics, or names recorded by the shipped rules.
        missing.extend(metric_names(expr).into_iter().filter(|n| !scraped.contains(n) && !recorded.contains(n)));
    }
    let dash_names: BTreeSet<String> = dash_exprs.iter().flat_map(|e| metric_names(e)).chain(variable_names).collect();
    missing.extend(dash_names.iter().filter(|n| !scraped.contains(*n) && !recorded.contains(*n)).cloned());
    assert!(missing.is_empty(), "names neither scraped nor recorded: {missing:?}\nscraped: {scraped:?}");
    assert!(dash_names.contains("mutt_alerter_processing_list_depth") && dash_names.contains("up"), "{dash_names:?}");
    let used: BTreeSet<String> = rule_exprs.iter().flat_map(|e| metric_names(e)).collect();
    for raw in ["mutt_circuit_breaker_state", "mutt_moog_dlq_depth", "mutt_processing_lists_dead", "mutt_queue_depth"] {
        assert!(used.contains(raw), "the rules read {raw}: {used:?}");
    }
    // Every recorded name the dashboard uses is recorded by the shipped rules.
    for name in dash_names.iter().filter(|n| n.contains(':')) {
        assert!(recorded.contains(name), "the dashboard reads {name}, which no shipped rule records");
    }

    // Every dashboard query is valid PromQL and has data (a series seen once, as a breaker
    // state change, needs a second scrape for increase()).
    let mut empty = dash_exprs.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !empty.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for expr in empty {
            let data = api(&http, &base, "/api/v1/query", &[("query", &grafana_expr(&expr))]).await;
            if data["result"].as_array().is_none_or(Vec::is_empty) {
                still.push(expr);
            }
        }
        empty = still;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(empty.is_empty(), "dashboard queries without data: {empty:#?}");
}
