//! The whole pipeline as separate processes, for the end-to-end benchmark and the chaos run:
//! a private redis-server and PostgreSQL, a counting webhook sink (the testkit receiver), `muttd ingestor`, N
//! `muttd alerter` and M `muttd forwarder` processes, a realistic rule set and event mix.

use crate::process::{Service, cpu_seconds_with_children_of, free_port, reaped_children_cpu_seconds_of, wait_healthy};
use mutt_core::MatchType;
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Coordination, Queue};
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_store::{NewRule, Store};
use mutt_testkit::ReceiverOptions;
use mutt_testkit::receiver::alerts_in;
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const INGEST_KEY: &str = "pipeline-ingest-key";

/// What an event of the mix is expected to become.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// Matches a forwarding rule: one audit row and one alert.
    Forward,
    /// Matches an audit-only rule: one audit row, no alert.
    AuditOnly,
    /// Matches nothing: no audit row, no alert.
    Unhandled,
}

/// Padding for the messages, longer than the longest (built once: the generator runs on the
/// cores it measures).
static FILLER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| " lorem ipsum dolor sit amet".repeat(40));

/// One event of the mix as the ingestor receives it. Written straight to the request body: a
/// `serde_json::Value` per event (a map, a string per key) made the generator's allocations a
/// third of the bench process's CPU in the batched phase. The fields are in the order a `Value`
/// map writes them (sorted), so the bodies are the bytes they were.
#[derive(serde::Serialize)]
pub struct MixEvent<'a> {
    pub hostname: String,
    pub message: String,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog_severity: Option<u8>,
    pub timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trap_oid: Option<String>,
}

/// Event `seq` of the mix: 50 % forwarding (text, severity-filtered and trap-shaped), 20 %
/// audit-only, 30 % unhandled; message sizes 100–1,000 bytes.
pub fn event(seq: u64, timestamp: &str) -> (MixEvent<'_>, Category) {
    use std::fmt::Write;
    let k = seq % 40;
    let hostname =
        if seq.is_multiple_of(17) { format!("dev-sw{}", seq % 5) } else { format!("sw{}.example.net", seq % 300) };
    let pad = 100 + (seq * 37 % 900) as usize;
    let mut message = String::with_capacity(pad.max(96));
    let (mut source, mut syslog_severity, mut trap_oid) = (None, None, None);
    // Writing to a String cannot fail.
    let (_, category) = match seq % 10 {
        0..=2 => (
            write!(message, "%LINK-3-UPDOWN: FWD-{k:02} Interface Gi0/{} changed state to down", seq % 48),
            Category::Forward,
        ),
        3 => {
            syslog_severity = Some(3);
            (write!(message, "SEV-{:02} environmental alarm on PSU {}", k % 20, seq % 2), Category::Forward)
        }
        4 => {
            source = Some("snmp");
            trap_oid = Some(format!(".1.3.6.1.4.1.9.{}.1", k % 10));
            let text = write!(message, "192.168.1.{} .1.3.6.1.4.1.9.{}.1 ifIndex=2 ifOperStatus=2", seq % 250, k % 10);
            (text, Category::Forward)
        }
        5 | 6 => (write!(message, "audit-{:02}-{} config change by operator", k % 20, seq), Category::AuditOnly),
        _ => (write!(message, "%SYS-6-LOGGINGHOST_STARTSTOP: nothing to see {seq}"), Category::Unhandled),
    };
    let filler = FILLER.as_str();
    message.push_str(&filler[..pad.saturating_sub(message.len()).min(filler.len())]);
    (MixEvent { hostname, message, seq, source, syslog_severity, timestamp, trap_oid }, category)
}

/// The request body for these events (one object, or an array) and their categories.
pub fn request_body(seqs: &[u64]) -> (Vec<u8>, Vec<Category>) {
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (events, categories): (Vec<MixEvent>, Vec<Category>) = seqs.iter().map(|s| event(*s, &timestamp)).unzip();
    let body = match events.as_slice() {
        [one] => serde_json::to_vec(one),
        all => serde_json::to_vec(all),
    };
    (body.unwrap_or_default(), categories)
}

/// 100 rules: 40 forwarding `contains`, 20 severity-filtered forwarding `contains`, 10
/// forwarding `oid_prefix`, 20 audit-only `regex`, 10 `regex` that never match.
pub fn rules() -> Vec<NewRule> {
    let mut out = Vec::new();
    let rule = |mt, s: Option<String>, oid: Option<String>, sev, prio, prod: &str, dev: &str, team: &str| NewRule {
        match_string: s,
        trap_oid: oid,
        syslog_severity: sev,
        match_type: mt,
        priority: prio,
        prod_handling: prod.into(),
        dev_handling: dev.into(),
        team_assignment: team.into(),
        is_active: true,
        flap_threshold: None,
        flap_window_secs: None,
    };
    for k in 0..40 {
        out.push(rule(
            MatchType::Contains,
            Some(format!("FWD-{k:02}")),
            None,
            None,
            10 + k,
            "Page_and_ticket",
            "Ticket_only",
            "NetOps",
        ));
    }
    for k in 0..20 {
        out.push(rule(
            MatchType::Contains,
            Some(format!("SEV-{k:02}")),
            None,
            Some(3),
            60 + k,
            "Ticket_only",
            "Ticket_only",
            "Facilities",
        ));
    }
    for k in 0..10 {
        out.push(rule(
            MatchType::OidPrefix,
            None,
            Some(format!("1.3.6.1.4.1.9.{k}")),
            None,
            90 + k,
            "Page_and_ticket",
            "Page_only",
            "NetOps",
        ));
    }
    for k in 0..20 {
        out.push(rule(
            MatchType::Regex,
            Some(format!(r"audit-{k:02}-\d+")),
            None,
            None,
            120 + k,
            "Log_only",
            "Ignore",
            "Security",
        ));
    }
    for k in 0..10 {
        out.push(rule(
            MatchType::Regex,
            Some(format!(r"never-{k}-(x|y)\d{{9}}")),
            None,
            None,
            200 + k,
            "Page_and_ticket",
            "Ignore",
            "NETO",
        ));
    }
    out
}

/// Seeds a site the way an operator would before a run: the rules, development hosts, device
/// teams, and dynamic settings that keep backpressure shedding and meta-alerts out of the
/// counted result.
pub async fn seed(store: &dyn Store, coordination: &dyn Coordination) -> anyhow::Result<()> {
    for r in rules() {
        store.create_rule(&r).await?;
    }
    for h in 0..5 {
        store.add_development_host(&format!("dev-sw{h}")).await?;
    }
    for h in 0..50 {
        store.set_device_team(&format!("sw{h}.example.net"), "NetOps").await?;
    }
    for (k, v) in [("alerter_queue_shed_threshold", "1000000000"), ("unhandled_threshold", "1000000000")] {
        coordination.set_config_value(k, v).await?;
    }
    Ok(())
}

/// What the sink saw of the delivered alerts.
#[derive(Default)]
struct Tally {
    /// Deliveries per external id (event id); more than one is a duplicate.
    deliveries: HashMap<String, Delivered>,
    /// Each delivery after an id's first: the id and when it arrived.
    repeats: Vec<(String, Instant)>,
    /// The `seq` of each delivered event (from custom_info).
    seqs: Vec<u64>,
    /// Ingest-to-delivery latency in ms (from the UUIDv7 event id), with the arrival time.
    latencies: Vec<(Instant, f64)>,
}

/// The fields of a delivered REST LAM alert the tally reads, borrowed from the body: the sink
/// parses every alert of a run on the machine being measured, and a `Value` per alert (a map
/// per object, a string per field of its `custom_info`) cost it about a quarter of a core.
#[derive(serde::Deserialize)]
struct DeliveredAlert<'a> {
    #[serde(borrow, default)]
    external_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source_id: Option<Cow<'a, str>>,
    #[serde(default)]
    custom_info: Option<CustomInfo>,
}

#[derive(serde::Deserialize)]
struct CustomInfo {
    #[serde(default)]
    seq: Option<u64>,
}

#[derive(serde::Deserialize)]
struct LamBody<'a> {
    #[serde(borrow)]
    events: Vec<DeliveredAlert<'a>>,
}

impl Tally {
    /// The deliveries (arrival, latency ms) that arrived between `from` and `to`.
    fn arrived_between(&self, from: Instant, to: Instant) -> impl Iterator<Item = &(Instant, f64)> {
        self.latencies.iter().filter(move |(t, _)| *t >= from && *t <= to)
    }

    /// Tallies one accepted body (a REST LAM body's `events`, or one alert); returns its alerts.
    /// Any other body (one alert alone, fields not of the expected types) is read as
    /// [`Value`]s, as the receiver did before.
    fn add_body(tally: &Mutex<Tally>, raw: &[u8], at: Instant) -> u64 {
        let typed = serde_json::from_slice::<LamBody>(raw);
        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
        match typed {
            Ok(LamBody { events: alerts }) => {
                for a in &alerts {
                    let seq = a.custom_info.as_ref().and_then(|c| c.seq);
                    t.record(a.external_id.as_deref(), a.source_id.as_deref(), seq, at);
                }
                alerts.len() as u64
            }
            Err(_) => {
                let body = serde_json::from_slice::<Value>(raw).unwrap_or(Value::Null);
                let events = alerts_in(&body);
                t.add(events, at);
                events.len() as u64
            }
        }
    }

    fn add(&mut self, events: &[Value], at: Instant) {
        for e in events {
            self.record(e["external_id"].as_str(), e["source_id"].as_str(), e["custom_info"]["seq"].as_u64(), at);
        }
    }

    fn record(&mut self, external_id: Option<&str>, source_id: Option<&str>, seq: Option<u64>, at: Instant) {
        let Some(id) = external_id else { return };
        if source_id == Some("MUTT_Alerter") {
            return; // meta-alerts are not part of the expected set
        }
        match self.deliveries.entry(id.to_owned()) {
            Entry::Occupied(mut seen) => {
                seen.get_mut().count += 1;
                self.repeats.push((id.to_owned(), at));
            }
            Entry::Vacant(first) => {
                first.insert(Delivered { count: 1, first: at });
            }
        }
        if let Some(seq) = seq {
            self.seqs.push(seq);
        }
        if let Some(ms) = uuid7_age_ms(id) {
            self.latencies.push((at, ms));
        }
    }

    /// The ids delivered more than once, oldest first delivery first.
    fn duplicates(&self) -> Vec<Duplicate> {
        let mut out: HashMap<&str, Duplicate> = HashMap::new();
        for (id, at) in &self.repeats {
            let first = self.deliveries.get(id).map_or(*at, |d| d.first);
            out.entry(id)
                .or_insert_with(|| Duplicate { external_id: id.clone(), first, again: Vec::new() })
                .again
                .push(*at);
        }
        let mut v: Vec<Duplicate> = out.into_values().collect();
        v.sort_by_key(|d| d.first);
        v
    }
}

#[derive(Clone, Copy, Debug)]
struct Delivered {
    count: u32,
    /// When the first delivery arrived.
    first: Instant,
}

/// An alert id the receiver got more than once.
#[derive(Clone, Debug)]
pub struct Duplicate {
    pub external_id: String,
    pub first: Instant,
    /// The later deliveries, in order.
    pub again: Vec<Instant>,
}

/// The webhook receiver of the pipeline: the testkit's, counting only (no request kept),
/// tallying the delivered REST LAM events by external id. `set_mode` makes it fail or hang.
#[derive(Clone)]
pub struct Sink {
    receiver: WebhookReceiver,
    tally: Arc<Mutex<Tally>>,
    pub url: String,
}

fn uuid7_age_ms(id: &str) -> Option<f64> {
    let (secs, nanos) = uuid::Uuid::parse_str(id).ok()?.get_timestamp()?.to_unix();
    Some((chrono::Utc::now().timestamp_millis() as f64 - (secs as f64 * 1000.0 + f64::from(nanos) / 1e6)).max(0.0))
}

impl Sink {
    pub async fn start() -> anyhow::Result<Self> {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let t = tally.clone();
        let options = ReceiverOptions::counting().on_body(move |raw, at| Tally::add_body(&t, raw, at));
        let receiver = WebhookReceiver::try_start_with(options).await?;
        Ok(Self { url: receiver.url(), receiver, tally })
    }

    /// Makes room for `deliveries` before the load starts. Grown on demand, the map of ids
    /// rehashes under the lock the receiver's handler takes, and at ~460,000 or ~920,000 ids
    /// that pause showed as the pipeline's p99 (docs/benchmarks.md, "the p99 phase after the
    /// batched one").
    pub fn reserve(&self, deliveries: usize) {
        let mut t = self.tally();
        t.deliveries.reserve(deliveries);
        t.seqs.reserve(deliveries);
        t.latencies.reserve(deliveries);
    }

    /// `Succeed`, `Status(code)` to fail, `Hang`.
    pub fn set_mode(&self, mode: ReceiverMode) {
        self.receiver.set_mode(mode);
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (distinct ids delivered, ids delivered more than once, total deliveries).
    pub fn counts(&self) -> (usize, usize, u64) {
        let s = self.tally();
        let dup = s.deliveries.values().filter(|d| d.count > 1).count();
        (s.deliveries.len(), dup, s.deliveries.values().map(|d| u64::from(d.count)).sum())
    }

    /// The ids delivered more than once, with when each delivery arrived.
    pub fn duplicates(&self) -> Vec<Duplicate> {
        self.tally().duplicates()
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.tally().seqs.clone()
    }

    /// Latencies (ms) of deliveries that arrived between `from` and `to`, sorted.
    pub fn latencies(&self, from: Instant, to: Instant) -> Vec<f64> {
        let mut v: Vec<f64> = self.tally().arrived_between(from, to).map(|(_, ms)| *ms).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Writes the deliveries between `from` and `to` to `path`, one line each: milliseconds
    /// since `from` at arrival, then the latency in ms. When the slow ones arrived shows what
    /// the p99 is made of (e.g. a stall once a second).
    pub fn write_trace(&self, from: Instant, to: Instant, path: &std::path::Path) -> std::io::Result<()> {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (at, ms) in self.tally().arrived_between(from, to) {
            let _ = writeln!(out, "{:.1} {ms}", (*at - from).as_secs_f64() * 1e3);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, out)
    }

    /// Counts the alerts of one phase: `expected` are the sequence numbers of its accepted
    /// events that a rule forwards, `range` every sequence number the phase could have used.
    /// Meta-alerts are not counted (the receiver leaves them out of the tally).
    pub fn count_alerts(&self, range: std::ops::Range<u64>, expected: &[u64]) -> crate::scenario::AlertCount {
        crate::scenario::AlertCount::count(self.tally().seqs.iter().copied(), range, expected)
    }

    pub fn delivered_between(&self, from: Instant, to: Instant) -> usize {
        self.tally().arrived_between(from, to).count()
    }

    /// (requests received, requests refused with an error status).
    pub fn requests(&self) -> (u64, u64) {
        let c = self.receiver.counts();
        (c.requests, c.refused)
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub muttd: PathBuf,
    pub alerters: usize,
    /// Batch loops per alerter process (`alerter.concurrency`).
    pub alerter_concurrency: usize,
    pub forwarders: usize,
    /// Redis with AOF (everysec), for restarts that keep the data.
    pub aof: bool,
    /// More PostgreSQL server settings, `name=value` (`--pg-setting`).
    pub pg_settings: Vec<String>,
    /// More redis-server settings, `name=value` (`--redis-setting`).
    pub redis_settings: Vec<String>,
}

/// Redis settings of the production-durability runs beyond `appendonly yes` and `appendfsync
/// everysec`, as docs/operations.md recommends (and deploy/compose.yaml sets): AOF rewrites
/// from 1 GB instead of 64 MB.
pub const PRODUCTION_REDIS_SETTINGS: &[&str] = &["auto-aof-rewrite-min-size=1gb"];

/// The forwarders' request timeout in the pipeline (short, so a hanging receiver costs little).
pub const FORWARDER_TIMEOUT: Duration = Duration::from_secs(2);

/// The running pipeline.
pub struct Pipeline {
    pub redis: mutt_testkit::RedisServer,
    pub pg: mutt_testkit::PostgresServer,
    pub sink: Sink,
    pub ingestor: Service,
    pub alerters: Vec<Service>,
    /// The `/metrics` port of each alerter, in the order of `alerters` (0: not known).
    alerter_ports: Vec<u16>,
    pub forwarders: Vec<Service>,
    pub queue: RedisQueue,
    pub db_url: String,
    pub ingest_url: String,
    opts: PipelineOptions,
    ingest_port: u16,
    generation: usize,
}

impl Pipeline {
    pub async fn start(opts: PipelineOptions) -> anyhow::Result<Self> {
        Self::start_with(opts, false).await
    }

    /// `durable`: production durability (PostgreSQL fsync, synchronous_commit and
    /// full_page_writes on; Redis AOF with appendfsync everysec).
    pub async fn start_with(opts: PipelineOptions, durable: bool) -> anyhow::Result<Self> {
        let mut redis_args = Vec::new();
        // Production durability runs Redis as docs/operations.md recommends; --redis-setting
        // comes after, and the last value given wins.
        let recommended = if durable { PRODUCTION_REDIS_SETTINGS } else { &[] };
        for setting in recommended.iter().map(|s| s.to_string()).chain(opts.redis_settings.iter().cloned()) {
            let Some((name, value)) = setting.split_once('=') else {
                anyhow::bail!("a Redis setting is name=value: {setting:?}");
            };
            redis_args.extend([format!("--{name}"), value.to_owned()]);
        }
        let redis_args: Vec<&str> = redis_args.iter().map(String::as_str).collect();
        let redis = mutt_testkit::RedisServer::start_with(opts.aof || durable, &redis_args)?;
        let pg = mutt_testkit::PostgresServer::start_configured(durable, &opts.pg_settings)?;
        let (admin, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        admin.batch_execute("CREATE DATABASE mutt").await?;
        let db_url = pg.url().replace("/postgres", "/mutt");
        let store = PgStore::new(&PostgresConfig { url: db_url.clone(), password: None, pool_size: 2 })?;
        store.migrate().await?;
        let queue = RedisQueue::connect(&RedisConfig::single(redis.url(), KeySpace::default())).await?;
        seed(&store, &queue).await?;
        let sink = Sink::start().await?;
        let ingest_port = free_port();
        let ingest_url = format!("http://127.0.0.1:{ingest_port}/ingest");
        let ingestor = Self::spawn(&opts, &redis.url(), &db_url, &sink.url, "ingestor", "ingestor-0", ingest_port)?;
        let mut p = Self {
            alerters: Vec::new(),
            alerter_ports: Vec::new(),
            forwarders: Vec::new(),
            redis,
            pg,
            sink,
            ingestor,
            queue,
            db_url,
            ingest_url,
            opts: opts.clone(),
            ingest_port,
            generation: 0,
        };
        for i in 0..opts.alerters {
            let (s, port) = p.spawn_alerter(i)?;
            p.alerters.push(s);
            p.alerter_ports.push(port);
        }
        for i in 0..opts.forwarders {
            let s = p.spawn_role("forwarder", i)?;
            p.forwarders.push(s);
        }
        wait_healthy(&format!("http://127.0.0.1:{}/health", p.ingest_port), Duration::from_secs(30)).await?;
        Ok(p)
    }

    fn spawn(
        opts: &PipelineOptions,
        redis: &str,
        db: &str,
        sink: &str,
        role: &str,
        pod: &str,
        port: u16,
    ) -> anyhow::Result<Service> {
        let mut cmd = Command::new(&opts.muttd);
        cmd.arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MUTT_REDIS__URL", redis)
            .env("MUTT_DATABASE__URL", db)
            .env("MUTT_FORWARDER__WEBHOOK_URL", sink)
            .env("INGEST_API_KEY", INGEST_KEY)
            .env("MOOG_API_KEY", "pipeline-moog-key")
            .env("POD_NAME", pod)
            .env("MUTT_INGESTOR__PORT", if role == "ingestor" { port } else { 0 }.to_string())
            .env("MUTT_ALERTER__CONCURRENCY", opts.alerter_concurrency.max(1).to_string())
            .env("MUTT_ALERTER__PORT", if role == "alerter" { port } else { 0 }.to_string())
            .env("MUTT_FORWARDER__PORT", "0")
            .env("MUTT_INGESTOR__RATE_LIMIT_ENABLED", "false")
            .env("MUTT_INGESTOR__MAX_QUEUE_SIZE", "100000000")
            .env("MUTT_FORWARDER__RATE_LIMIT", "10000000")
            .env("MUTT_FORWARDER__TIMEOUT_SECS", FORWARDER_TIMEOUT.as_secs().to_string())
            .env("MUTT_FORWARDER__RETRY_BASE_SECS", "0.5")
            .env("MUTT_FORWARDER__RETRY_MAX_SECS", "4")
            .env("MUTT_FORWARDER__MAX_RETRIES", "50")
            .env("MUTT_FORWARDER__CIRCUIT_BREAKER_THRESHOLD", "5")
            .env("MUTT_FORWARDER__CIRCUIT_BREAKER_TIMEOUT_SECS", "2")
            .env("MUTT_WORKER__HEARTBEAT_INTERVAL_SECS", "1")
            .env("MUTT_WORKER__HEARTBEAT_TTL_SECS", "3")
            .env("MUTT_WORKER__JANITOR_INTERVAL_SECS", "1")
            .env("MUTT_WORKER__BLOCK_TIMEOUT_SECS", "0.5")
            .env("MUTT_LOG__LEVEL", "error");
        Service::spawn(&format!("{role} {pod}"), cmd)
    }

    /// `port`: the ingestor's listening port, or the alerter's metrics port (0 for any).
    fn spawn_role_on(&mut self, role: &str, i: usize, port: u16) -> anyhow::Result<Service> {
        self.generation += 1;
        let pod = format!("{role}-{i}-g{}", self.generation);
        Self::spawn(&self.opts, &self.redis.url(), &self.db_url, &self.sink.url, role, &pod, port)
    }

    fn spawn_role(&mut self, role: &str, i: usize) -> anyhow::Result<Service> {
        self.spawn_role_on(role, i, 0)
    }

    /// An alerter with its `/metrics` on a port of its own, so that the bench can read its
    /// batch clock per phase.
    fn spawn_alerter(&mut self, i: usize) -> anyhow::Result<(Service, u16)> {
        let port = free_port();
        Ok((self.spawn_role_on("alerter", i, port)?, port))
    }

    /// `kill -9` alerter `i` and start a replacement (a new pod name, as a rescheduled pod).
    pub fn kill9_alerter(&mut self, i: usize) -> anyhow::Result<()> {
        let _ = Command::new("kill").args(["-9", &self.alerters[i].pid().to_string()]).status();
        // On any free port (0): a port picked in advance could be taken by then in a busy test
        // run, and the chaos runs that kill do not read the batch clock.
        self.alerters[i] = self.spawn_role("alerter", i)?;
        self.alerter_ports[i] = 0;
        Ok(())
    }

    pub fn kill9_forwarder(&mut self, i: usize) -> anyhow::Result<()> {
        let _ = Command::new("kill").args(["-9", &self.forwarders[i].pid().to_string()]).status();
        self.forwarders[i] = self.spawn_role("forwarder", i)?;
        Ok(())
    }

    /// What is still somewhere in Redis: queued + delayed, leased, dead-lettered.
    pub async fn leftovers(&self) -> Option<(u64, u64, u64)> {
        let st = self.queue.status().await.ok()?;
        Some((
            st.queues.iter().chain(&st.delayed_retries).map(|d| d.depth).sum(),
            st.processing_lists.iter().map(|p| p.depth).sum(),
            st.dead_letter_queues.iter().map(|d| d.depth).sum(),
        ))
    }

    /// Audit rows: (total, distinct event ids, distinct seqs).
    pub async fn audit_counts(&self) -> anyhow::Result<(i64, i64, Vec<i64>)> {
        let (c, conn) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let row = c.query_one("SELECT count(*), count(DISTINCT event_id) FROM event_audit_log", &[]).await?;
        let seqs: Vec<i64> = c
            .query("SELECT (raw_message::jsonb->>'seq')::bigint FROM event_audit_log", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok((row.get(0), row.get(1), seqs))
    }

    /// What each MUTT process cost so far; Redis and PostgreSQL CPU seconds.
    pub fn resources(&self) -> (Vec<crate::scenario::ProcessCost>, f64, f64) {
        let mut roles = Vec::new();
        for s in std::iter::once(&self.ingestor).chain(&self.alerters).chain(&self.forwarders) {
            roles.push(crate::scenario::ProcessCost {
                process: s.name.clone(),
                cpu_seconds: s.cpu_seconds(),
                peak_rss_mib: s.rss_kib().1 as f64 / 1024.0,
                file_backed_mib: s.file_backed_kib() as f64 / 1024.0,
            });
        }
        // With the children it reaped: AOF rewrites run in forks.
        let redis = self.redis.pid().map(cpu_seconds_with_children_of).unwrap_or(0.0);
        (roles, redis, postgres_cpu_seconds())
    }
}

impl Pipeline {
    /// The servers' durability settings as they report them.
    pub async fn durability_settings(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Ok((c, conn)) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            for name in ["fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_wal_size"] {
                if let Ok(row) = c.query_one(&format!("SHOW {name}"), &[]).await {
                    out.push((format!("postgres {name}"), row.get::<_, String>(0)));
                }
            }
        }
        for name in ["appendonly", "appendfsync", "auto-aof-rewrite-min-size"] {
            let o =
                Command::new("redis-cli").args(["-p", &self.redis_port().to_string(), "CONFIG", "GET", name]).output();
            if let Some(v) = o.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).lines().nth(1).map(str::to_owned)) {
                out.push((format!("redis {name}"), v));
            }
        }
        out
    }

    fn redis_port(&self) -> u16 {
        self.redis.url().trim_end_matches('/').rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(6379)
    }
}

impl crate::cost::Meter for Pipeline {
    fn sample(&self) -> crate::cost::Sample {
        let (roles, redis, pg) = self.resources();
        let mut cpu: Vec<(String, f64)> = roles.into_iter().map(|p| (p.process, p.cpu_seconds)).collect();
        cpu.push(("redis-server".into(), redis));
        cpu.push(("postgres".into(), pg));
        let mut alerter = crate::cost::AlerterClock::default();
        for port in self.alerter_ports.iter().filter(|p| **p != 0) {
            alerter.add(&crate::cost::AlerterClock::parse(&crate::cost::scrape_metrics(*port)));
        }
        let redis_forks = self.redis.pid().map(reaped_children_cpu_seconds_of).unwrap_or(0.0);
        crate::cost::Sample { cpu, redis: crate::cost::redis_commandstats(self.redis_port()), alerter, redis_forks }
    }
}

/// CPU seconds of every process named `postgres` (the private server's backends included).
fn postgres_cpu_seconds() -> f64 {
    let mut total = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres") {
                // Exited backends and autovacuum workers count in the postmaster's children.
                total += cpu_seconds_with_children_of(pid);
            }
        }
    }
    total
}

/// Sends the event mix to the ingestor at `rate` events/s for `duration`, in requests of
/// `batch` events (1 = one object per request), starting at sequence `first`. Returns the
/// accepted sequence numbers with their category, and the number of events refused.
pub async fn offer(url: &str, first: u64, rate: u64, batch: usize, duration: Duration) -> (Vec<(u64, Category)>, u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let requests_per_sec = (rate as f64 / batch as f64).max(0.1);
    let total = (requests_per_sec * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / requests_per_sec);
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = Vec::new();
    for r in 0..total {
        tokio::time::sleep_until((started + interval.mul_f64(r as f64)).into()).await;
        let permit = sem.clone().acquire_owned().await;
        let client = client.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let seqs: Vec<u64> = (0..batch as u64).map(|i| first + r * batch as u64 + i).collect();
            let (body, categories) = request_body(&seqs);
            let ok = client
                .post(&url)
                .header("x-api-key", INGEST_KEY)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (ok, seqs.into_iter().zip(categories).collect::<Vec<(u64, Category)>>())
        }));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for t in tasks {
        if let Ok((ok, cats)) = t.await {
            if ok {
                accepted.extend(cats);
            } else {
                refused += cats.len() as u64;
            }
        }
    }
    (accepted, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The sink's typed reading counts what the `Value` reading counts, and hands any body it
    /// cannot type to it.
    #[test]
    fn a_body_is_tallied_alike_typed_or_as_values() {
        let at = Instant::now();
        let id = uuid::Uuid::now_v7().to_string();
        let bodies = [
            json!({"events": [
                {"external_id": id, "source_id": "sw1", "custom_info": {"seq": 7, "message": "x"}, "severity": 3},
                {"external_id": "meta", "source_id": "MUTT_Alerter", "custom_info": {"seq": 8}},
                {"external_id": "b", "custom_info": {"text": "no seq"}},
                {"source_id": "no id"},
            ]}),
            json!({"events": [{"external_id": 5, "custom_info": {"seq": 1}}, {"external_id": "c", "custom_info": {"seq": 9}}]}),
            json!({"events": [{"external_id": "d", "custom_info": {"seq": -1}}]}),
            json!({"external_id": "e", "custom_info": {"seq": 10}}),
            json!("not an alert"),
        ];
        let typed = Mutex::new(Tally::default());
        let mut values = Tally::default();
        let mut counted = Vec::new();
        for b in &bodies {
            counted.push(Tally::add_body(&typed, b.to_string().as_bytes(), at));
            values.add(alerts_in(b), at);
        }
        assert_eq!(counted, [4, 2, 1, 1, 1]);
        let typed = typed.into_inner().unwrap();
        let mut ids: Vec<_> = typed.deliveries.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, [id.as_str(), "b", "c", "d", "e"]);
        assert_eq!(typed.seqs, [7, 9, 10]);
        assert_eq!(typed.latencies.len(), 1, "the UUIDv7 id's age");
        assert_eq!(typed.seqs, values.seqs);
        assert_eq!(typed.deliveries.len(), values.deliveries.len());
        assert_eq!(typed.latencies.len(), values.latencies.len());
    }

    /// Event `seq` as the generator built it before [`MixEvent`]: a `Value` per event.
    fn reference_event(seq: u64, timestamp: &str) -> (Value, Category) {
        let k = seq % 40;
        let host =
            if seq.is_multiple_of(17) { format!("dev-sw{}", seq % 5) } else { format!("sw{}.example.net", seq % 300) };
        let pad = 100 + (seq * 37 % 900) as usize;
        let (mut v, cat) = match seq % 10 {
            0..=2 => (
                json!({"message": format!("%LINK-3-UPDOWN: FWD-{k:02} Interface Gi0/{} changed state to down", seq % 48)}),
                Category::Forward,
            ),
            3 => (
                json!({"message": format!("SEV-{:02} environmental alarm on PSU {}", k % 20, seq % 2), "syslog_severity": 3}),
                Category::Forward,
            ),
            4 => (
                json!({"message": format!("192.168.1.{} .1.3.6.1.4.1.9.{}.1 ifIndex=2 ifOperStatus=2", seq % 250, k % 10), "trap_oid": format!(".1.3.6.1.4.1.9.{}.1", k % 10), "source": "snmp"}),
                Category::Forward,
            ),
            5 | 6 => (
                json!({"message": format!("audit-{:02}-{} config change by operator", k % 20, seq)}),
                Category::AuditOnly,
            ),
            _ => {
                (json!({"message": format!("%SYS-6-LOGGINGHOST_STARTSTOP: nothing to see {seq}")}), Category::Unhandled)
            }
        };
        let msg = v["message"].as_str().unwrap_or_default().to_owned();
        let filler = " lorem ipsum dolor sit amet".repeat(pad / 27 + 1);
        v["message"] = json!(format!("{msg}{}", &filler[..pad.saturating_sub(msg.len()).min(filler.len())]));
        v["hostname"] = json!(host);
        v["timestamp"] = json!(timestamp);
        v["seq"] = json!(seq);
        (v, cat)
    }

    /// The generator sends the bytes and categories it sent when it built a `Value` per event,
    /// and every message is 100–1,000 bytes.
    #[test]
    fn the_mix_is_written_as_it_was_built() {
        let ts = "2026-12-06T14:00:00.123Z";
        for seq in 0..4_000u64 {
            let (mix, category) = event(seq, ts);
            let (reference, reference_category) = reference_event(seq, ts);
            assert_eq!(serde_json::to_string(&mix).unwrap(), reference.to_string(), "seq {seq}");
            assert_eq!(category, reference_category, "seq {seq}");
            assert!((100..=1_000).contains(&mix.message.len()), "seq {seq}");
        }
        let (body, categories) = request_body(&[7, 8, 9]);
        let sent: Vec<Value> = serde_json::from_slice(&body).unwrap();
        let seqs: Vec<u64> = sent.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!((seqs, categories), (vec![7, 8, 9], vec![Category::Unhandled; 3]));
        let (one, _) = request_body(&[3]);
        assert_eq!(serde_json::from_slice::<Value>(&one).unwrap()["syslog_severity"], 3, "one event: an object");
    }

    #[test]
    fn the_tally_keeps_when_each_repeated_delivery_arrived() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let alert = |id: &str, seq: u64| serde_json::json!({"external_id": id, "custom_info": {"seq": seq}});
        let mut t = Tally::default();
        t.add(&[alert("a", 1), alert("b", 2)], at(10));
        t.add(&[alert("a", 1)], at(20));
        t.add(&[alert("c", 3), alert("a", 1)], at(30));
        let dups = t.duplicates();
        assert_eq!(dups.len(), 1, "{dups:?}");
        assert_eq!((dups[0].external_id.as_str(), dups[0].first), ("a", at(10)));
        assert_eq!(dups[0].again, [at(20), at(30)]);
    }
}
