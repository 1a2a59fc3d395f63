//! Every metric of spec §10.1 is on the `/metrics` of its role, with the spec's labels, after
//! traffic that exercises it: rules created and listed through the web API (one refused),
//! events ingested (one request without a key), handled and unhandled by the alerter, and
//! alerts delivered by the forwarder through a receiver that fails first (the breaker opens,
//! then closes on a probe) under a shared rate limit that holds some back.
//!
//! Redis + PostgreSQL: one `muttd` start per role (as separate processes would be), so each
//! role's port is checked alone. Embedded: `muttd run` (all roles in one process, one data
//! file); the queue-sampled gauges are on the role that carries the process metrics.

mod common;

use mutt_testapp::{ApiClient, BackendKind, Site};
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use muttd::app::{self, App, Role, StartOptions};
use muttd::config::Config;
use muttd::secrets::EnvSecrets;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const INGEST_KEY: &str = "metrics-ingest-key";
const WEB_KEY: &str = "metrics-web-key";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}
use Kind::{Counter, Gauge, Histogram};

/// A spec §10.1 row: the name as scraped, its type, its labels.
type Spec = (&'static str, Kind, &'static [&'static str]);

const INGESTOR: &[Spec] = &[
    ("mutt_ingest_requests_total", Counter, &["status", "reason"]),
    ("mutt_ingest_queue_depth", Gauge, &[]),
    ("mutt_ingest_latency_seconds", Histogram, &[]),
    ("mutt_ingest_rate_limit_hits_total", Counter, &[]),
];

const ALERTER: &[Spec] = &[
    ("mutt_alerter_events_processed_total", Counter, &["status"]),
    ("mutt_alerter_alerts_forwarded_total", Counter, &[]),
    ("mutt_alerter_unhandled_meta_alerts_total", Counter, &[]),
    ("mutt_alerter_processing_latency_seconds", Histogram, &[]),
    ("mutt_alerter_cache_reload_latency_seconds", Histogram, &[]),
    ("mutt_alerter_cache_rules_count", Gauge, &[]),
    ("mutt_alerter_cache_dev_hosts_count", Gauge, &[]),
    ("mutt_alerter_cache_teams_count", Gauge, &[]),
    ("mutt_db_write_latency_ms", Histogram, &[]),
    ("mutt_alerter_cache_reload_failures_total", Counter, &[]),
    ("mutt_alerter_processing_list_depth", Gauge, &[]),
    ("mutt_alerter_shed_events_total", Counter, &["mode"]),
    // [ADD] of the spec, so that the original's recording rule works.
    ("mutt_alerter_cache_reload_total", Counter, &[]),
];

const FORWARDER: &[Spec] = &[
    ("mutt_moog_requests_total", Counter, &["status", "reason"]),
    ("mutt_moog_request_latency_seconds", Histogram, &[]),
    ("mutt_moog_processing_list_depth", Gauge, &[]),
    ("mutt_moog_rate_limit_hits_total", Counter, &[]),
    ("mutt_moog_alerts_processed_total", Counter, &["status"]),
    ("mutt_circuit_breaker_state", Gauge, &["name"]),
    ("mutt_circuit_breaker_failures", Gauge, &["name"]),
    ("mutt_circuit_breaker_state_changes_total", Counter, &["name", "from_state", "to_state"]),
    // [MAY] of the spec: the name the original's alert rules use.
    ("mutt_moog_circuit_open", Gauge, &[]),
];

const WEB: &[Spec] = &[
    ("mutt_webui_api_requests_total", Counter, &["endpoint", "status"]),
    ("mutt_webui_api_latency_seconds", Histogram, &["endpoint"]),
    ("mutt_webui_redis_scan_latency_seconds", Histogram, &[]),
    ("mutt_webui_db_query_latency_ms", Histogram, &["operation"]),
];

/// `muttd remediation`'s (inside `muttd run`: on the process-metrics role's port).
const REMEDIATION: &[Spec] = &[
    ("mutt_remediation_loops_total", Counter, &[]),
    ("mutt_remediation_dlq_depth", Gauge, &["dlq_name"]),
    ("mutt_remediation_replay_success_total", Counter, &[]),
    ("mutt_remediation_replay_fail_total", Counter, &["reason"]),
    ("mutt_remediation_poison_messages_total", Counter, &[]),
    ("mutt_remediation_moog_health", Gauge, &[]),
    ("mutt_remediation_loop_duration_seconds", Histogram, &[]),
];

/// The queue depths sampled for the whole process (the alerter's and forwarder's rows of the
/// spec), exported by one role per process ([`App::process_metrics`]).
const QUEUE_SAMPLED: &[(Role, Spec)] = &[
    (Role::Alerter, ("mutt_alerter_dlq_depth", Gauge, &[])),
    (Role::Alerter, ("mutt_alerter_queue_depth", Gauge, &[])),
    (Role::Forwarder, ("mutt_moog_dlq_depth", Gauge, &[])),
];

fn spec_of(role: Role) -> &'static [Spec] {
    match role {
        Role::Ingestor => INGESTOR,
        Role::Alerter => ALERTER,
        Role::Forwarder => FORWARDER,
        Role::Web => WEB,
        Role::Remediation => REMEDIATION,
    }
}

/// One scraped `/metrics` text: the families' types and every sample.
struct Scrape {
    role: Role,
    text: String,
    types: HashMap<String, String>,
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    fn parse(role: Role, text: String) -> Self {
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, kind) = t.split_once(' ').unwrap_or((t, ""));
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                samples.push(sample(line));
            }
        }
        Self { role, text, types, samples }
    }

    /// Whether `spec` is there: its family with the right type, and a sample with exactly the
    /// spec's label names (histograms: besides `le`).
    fn has(&self, (name, kind, labels): Spec) -> Result<(), String> {
        let (sample_name, type_name) = match kind {
            Counter => (name.to_owned(), "counter"),
            Gauge => (name.to_owned(), "gauge"),
            Histogram => (format!("{name}_count"), "histogram"),
        };
        // Text format 0.0.4 names a counter family with its `_total`, OpenMetrics without.
        let family = name.strip_suffix("_total").filter(|f| kind == Counter && self.types.contains_key(*f));
        match self.types.get(family.unwrap_or(name)) {
            Some(t) if t == type_name => {}
            Some(t) => return Err(format!("{name} is a {t}, not a {type_name}")),
            None => return Err(format!("{name} is missing")),
        }
        let want: BTreeSet<&str> = labels.iter().copied().collect();
        let seen: Vec<BTreeSet<&str>> = self
            .samples
            .iter()
            .filter(|(n, _, _)| *n == sample_name)
            .map(|(_, l, _)| l.keys().map(String::as_str).filter(|k| *k != "le").collect())
            .collect();
        if seen.contains(&want) {
            Ok(())
        } else {
            Err(format!("{name}: no sample labelled {want:?} (samples: {seen:?})"))
        }
    }

    /// The sum of `name`'s samples whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| v)
            .sum()
    }
}

/// `name{a="x",b="y"} value` (label values here have no escapes).
fn sample(line: &str) -> (String, HashMap<String, String>, f64) {
    let (head, value) = line.rsplit_once(' ').unwrap_or((line, "NaN"));
    let value = value.parse().unwrap_or(f64::NAN);
    let Some((name, rest)) = head.split_once('{') else {
        return (head.to_owned(), HashMap::new(), value);
    };
    let mut labels = HashMap::new();
    let mut rest = rest.trim_end_matches('}');
    while let Some((key, after)) = rest.split_once("=\"") {
        let (val, after) = after.split_once('"').unwrap_or((after, ""));
        labels.insert(key.trim_start_matches(',').to_owned(), val.to_owned());
        rest = after;
    }
    (name.to_owned(), labels, value)
}

struct Running {
    apps: Vec<App>,
    receiver: WebhookReceiver,
    _site: Site,
}

impl Running {
    fn address(&self, role: Role) -> String {
        let addr = self.apps.iter().find_map(|a| a.address(role)).expect("role started");
        format!("http://{addr}")
    }

    /// The role whose port has the queue-sampled gauges of `role`'s process.
    fn process_metrics_of(&self, role: Role) -> Role {
        self.apps.iter().find(|a| a.address(role).is_some()).map(|a| a.process_metrics).expect("role started")
    }

    async fn scrape(&self, role: Role) -> Scrape {
        let reply = ApiClient::new(self.address(role), None).get("/metrics").await;
        assert_eq!(reply.status, 200, "{role:?} /metrics");
        Scrape::parse(role, reply.text)
    }

    /// Events in every request the receiver accepted (REST LAM bodies).
    fn delivered(&self) -> usize {
        self.receiver.accepted().iter().map(|r| r.body["events"].as_array().map_or(0, Vec::len)).sum()
    }

    async fn stop(self) {
        for app in self.apps {
            app.stop().await.expect("clean stop");
        }
    }
}

fn config(site: &Site, receiver: &WebhookReceiver) -> Config {
    let mut c = common::site_config(site, receiver.url());
    // A failure opens the breaker, a probe after 1 s closes it; 2 alerts a second.
    c.forwarder.circuit_breaker_threshold = 1;
    c.forwarder.circuit_breaker_timeout_secs = 1;
    c.forwarder.rate_limit = 2;
    c.forwarder.rate_period_secs = 1;
    (c.forwarder.retry_base_secs, c.forwarder.retry_max_secs) = (0.1, 0.3);
    c
}

async fn start(kind: BackendKind) -> Running {
    let receiver = WebhookReceiver::start().await;
    let site = Site::fresh(kind).await;
    let config = config(&site, &receiver);
    let secrets = EnvSecrets::new(HashMap::from([
        ("INGEST_API_KEY".to_string(), INGEST_KEY.to_string()),
        ("WEBUI_API_KEY".to_string(), WEB_KEY.to_string()),
        ("MOOG_API_KEY".to_string(), "metrics-moog-key".to_string()),
    ]));
    let mut apps = Vec::new();
    if kind == BackendKind::Embedded {
        // One process owns the data file: `muttd run`.
        apps.push(app::start(&config, &secrets, &Role::ALL, StartOptions { migrate: true }).await.expect("run"));
    } else {
        for role in [Role::Alerter, Role::Web, Role::Ingestor, Role::Forwarder] {
            let opts = StartOptions { migrate: role == Role::Alerter };
            apps.push(app::start(&config, &secrets, &[role], opts).await.expect("role starts"));
        }
    }
    Running { apps, receiver, _site: site }
}

/// Web, ingest, alerter and forwarder traffic (see the module docs); returns once 5 alerts
/// were delivered.
async fn traffic(r: &Running) {
    let web = ApiClient::new(r.address(Role::Web), Some(WEB_KEY));
    let rule = json!({"match_string": "CRITICAL", "match_type": "contains", "prod_handling": "Page_and_ticket",
                      "dev_handling": "Ticket_only", "team_assignment": "NETO", "priority": 10});
    let created = web.post("/api/v1/rules", &rule).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let bad_regex = json!({"match_string": "(", "match_type": "regex", "prod_handling": "Page_and_ticket",
                           "dev_handling": "Ticket_only", "team_assignment": "NETO", "priority": 10});
    assert_eq!(web.post("/api/v1/rules", &bad_regex).await.status, 400);
    assert_eq!(web.get("/api/v1/rules").await.status, 200);

    r.receiver.set_mode(ReceiverMode::Status(500));
    let ingest = ApiClient::new(r.address(Role::Ingestor), Some(INGEST_KEY));
    let event = |m: &str| json!({"hostname": "r1", "message": m, "timestamp": "2026-12-01T10:00:00Z"});
    let mut batch: Vec<Value> = (0..5).map(|i| event(&format!("CRITICAL link {i} down"))).collect();
    batch.push(event("nothing matches this"));
    assert_eq!(ingest.post("/ingest", &Value::Array(batch)).await.status, 200);
    assert_eq!(ingest.with_key(None).post("/ingest", &event("no key")).await.status, 401);

    // The first delivery fails and opens the breaker; then the receiver recovers.
    let deadline = Instant::now() + Duration::from_secs(20);
    while r.receiver.requests().is_empty() {
        assert!(Instant::now() < deadline, "no delivery attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.receiver.set_mode(ReceiverMode::Succeed);
    while r.delivered() < 5 {
        assert!(Instant::now() < deadline, "{} of 5 alerts delivered", r.delivered());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every spec row of every role, on the port that should carry it.
async fn check_names(r: &Running) {
    let mut missing = Vec::new();
    for role in Role::ALL {
        let scrape = r.scrape(role).await;
        missing.extend(spec_of(role).iter().filter_map(|s| scrape.has(*s).err().map(|e| format!("{role:?}: {e}"))));
    }
    for (role, spec) in QUEUE_SAMPLED {
        let on = r.process_metrics_of(*role);
        if let Err(e) = r.scrape(on).await.has(*spec) {
            missing.push(format!("{on:?} (process metrics of the {role:?}'s process): {e}"));
        }
    }
    assert!(missing.is_empty(), "missing from /metrics:\n{}", missing.join("\n"));
}

/// The traffic was recorded, not only registered.
async fn check_recorded(r: &Running) {
    let ing = r.scrape(Role::Ingestor).await;
    assert!(ing.value("mutt_ingest_requests_total", &[("status", "success")]) >= 1.0, "{}", ing.text);
    assert_eq!(ing.value("mutt_ingest_requests_total", &[("status", "fail"), ("reason", "auth")]), 1.0);
    assert!(ing.value("mutt_ingest_latency_seconds_count", &[]) >= 1.0);

    let alerter = r.scrape(Role::Alerter).await;
    let processed = |s| alerter.value("mutt_alerter_events_processed_total", &[("status", s)]);
    assert_eq!((processed("handled"), processed("unhandled")), (5.0, 1.0), "{}", alerter.text);
    assert_eq!(alerter.value("mutt_alerter_alerts_forwarded_total", &[]), 5.0);
    assert!(alerter.value("mutt_db_write_latency_ms_count", &[]) >= 1.0);
    assert!(alerter.value("mutt_alerter_processing_latency_seconds_count", &[]) >= 1.0);
    assert!(alerter.value("mutt_alerter_cache_reload_total", &[]) >= 1.0);

    let deadline = Instant::now() + Duration::from_secs(5);
    let fwd = loop {
        // The success counter moves at the settle that follows the delivery.
        let s = r.scrape(Role::Forwarder).await;
        if s.value("mutt_moog_alerts_processed_total", &[("status", "success")]) >= 5.0 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let t = &fwd.text;
    assert!(fwd.value("mutt_moog_alerts_processed_total", &[("status", "success")]) >= 5.0, "{t}");
    assert!(fwd.value("mutt_moog_requests_total", &[("status", "fail"), ("reason", "http")]) >= 1.0, "{t}");
    assert!(fwd.value("mutt_moog_requests_total", &[("status", "success")]) >= 1.0, "{t}");
    assert!(fwd.value("mutt_moog_request_latency_seconds_count", &[]) >= 2.0, "{t}");
    assert!(fwd.value("mutt_moog_rate_limit_hits_total", &[]) >= 1.0, "{t}");
    assert!(fwd.value("mutt_moog_delivery_latency_seconds_count", &[]) >= 5.0, "{t}");
    let changes = |from, to| {
        fwd.value(
            "mutt_circuit_breaker_state_changes_total",
            &[("name", "moogsoft"), ("from_state", from), ("to_state", to)],
        )
    };
    assert!(changes("CLOSED", "OPEN") >= 1.0 && changes("HALF_OPEN", "CLOSED") >= 1.0, "{t}");
    assert_eq!(fwd.value("mutt_circuit_breaker_state", &[("name", "moogsoft")]), 0.0, "closed again: {t}");

    let web = r.scrape(Role::Web).await;
    let api = |s| web.value("mutt_webui_api_requests_total", &[("endpoint", "rules"), ("status", s)]);
    assert_eq!((api("success"), api("error_invalid")), (2.0, 1.0), "{}", web.text);
    assert!(web.value("mutt_webui_db_query_latency_ms_count", &[("operation", "get_rules")]) >= 1.0);
}

mutt_testapp::both_backends!(every_spec_metric_is_exported_by_its_role_after_traffic);

async fn every_spec_metric_is_exported_by_its_role_after_traffic(kind: BackendKind) {
    let r = start(kind).await;
    traffic(&r).await;
    check_names(&r).await;
    check_recorded(&r).await;
    println!("{}: {:?}", kind.name(), Role::ALL.map(|role| r.address(role)));
    r.stop().await;
}

#[test]
fn a_missing_name_or_label_is_reported() {
    let text = "# TYPE mutt_x counter\nmutt_x_total{status=\"ok\"} 1\n# TYPE mutt_h histogram\nmutt_h_count 0\n";
    let s = Scrape::parse(Role::Web, text.to_owned());
    assert!(s.has(("mutt_x_total", Counter, &["status"])).is_ok());
    let text_004 = Scrape::parse(Role::Web, text.replace("TYPE mutt_x counter", "TYPE mutt_x_total counter"));
    assert!(text_004.has(("mutt_x_total", Counter, &["status"])).is_ok());
    assert!(s.has(("mutt_x_total", Counter, &["status", "reason"])).is_err());
    assert!(s.has(("mutt_h", Histogram, &[])).is_ok());
    assert!(s.has(("mutt_h", Gauge, &[])).is_err());
    assert!(s.has(("mutt_y", Gauge, &[])).is_err());
    assert_eq!(s.role, Role::Web);
}
