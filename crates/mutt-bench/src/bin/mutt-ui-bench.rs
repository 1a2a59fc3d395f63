//! How long the console's pages take to render on a big site: 10,000 rules and 1,000,000
//! event-audit rows (plus config history, dead letters and unhandled counters), on the embedded
//! backend, and on Redis + PostgreSQL when the test services are set
//! (`source .test-services/env`). Each page is fetched with a logged-in session; the table
//! gives the median and the slowest of `--runs` fetches after one warm-up, and flags a page
//! over the budget (200 ms).
//!
//!   scripts/ui-bench.sh                       # nice -n 19, release build, both backends
//!   cargo run --release -p mutt-bench --bin mutt-ui-bench -- --audit-rows 100000

use anyhow::{Context, bail};
use chrono::{Datelike, Duration as ChronoDuration, Utc};
use clap::Parser;
use futures_util::{StreamExt, TryStreamExt, stream};
use mutt_core::{EventId, MatchType};
use mutt_queue::UnhandledKey;
use mutt_queue::dlq::Dlq;
use mutt_store::{AuditRecord, ConfigChange, NewRule};
use mutt_testapp::{BackendKind, TestApp, spawn_app};
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    rules: usize,
    #[arg(long, default_value_t = 1_000_000)]
    audit_rows: usize,
    /// Dead letters in the alerter DLQ.
    #[arg(long, default_value_t = 2_000)]
    dead_letters: usize,
    /// Fetches per page (after one warm-up).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The budget per page.
    #[arg(long, default_value_t = 200)]
    budget_ms: u64,
    /// Only the embedded backend, even when the test services are set.
    #[arg(long)]
    embedded_only: bool,
}

const HOSTS: usize = 500;
const AUDIT_BATCH: usize = 10_000;

fn rule(i: usize) -> NewRule {
    NewRule {
        match_string: Some(format!("PATTERN-{i:05} link state")),
        trap_oid: None,
        syslog_severity: None,
        match_type: MatchType::Contains,
        priority: (i % 1000) as i32,
        prod_handling: "Page_and_ticket".into(),
        dev_handling: "Ticket_only".into(),
        team_assignment: format!("TEAM{}", i % 40),
        is_active: !i.is_multiple_of(10),
        flap_threshold: None,
        flap_window_secs: None,
    }
}

async fn fill_rules(app: &TestApp, n: usize) -> anyhow::Result<Vec<i32>> {
    let store = app.backend.store.clone();
    stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            async move { store.create_rule(&rule(i)).await }
        })
        .buffered(16)
        .try_collect()
        .await
        .context("creating rules")
}

/// `n` audit rows spread evenly from the start of this month to now (PostgreSQL keeps this
/// month's partition), in batches through `Store::write_audit`, as the alerter writes them;
/// the newest row's event.
async fn fill_audit(app: &TestApp, rules: &[i32], n: usize) -> anyhow::Result<EventId> {
    let now = Utc::now();
    let month_start = now.date_naive().with_day(1).and_then(|d| d.and_hms_opt(0, 0, 0)).context("the month's start")?;
    let span_ms = (now.naive_utc() - month_start).num_milliseconds().max(1);
    let step_ms = (span_ms / n.max(1) as i64).max(1);
    let mut newest = None;
    for start in (0..n).step_by(AUDIT_BATCH) {
        let rows: Vec<AuditRecord> = (start..(start + AUDIT_BATCH).min(n))
            .map(|i| {
                let host = format!("host-{:03}", i % HOSTS);
                AuditRecord {
                    event_id: EventId::new(),
                    event_timestamp: now - ChronoDuration::milliseconds(step_ms * i as i64),
                    matched_rule_id: rules[i % rules.len()],
                    handling_decision: ["Page_and_ticket", "Ticket_only", "Ignore"][i % 3].into(),
                    forwarded_to_moog: i % 3 != 2,
                    raw_message: json!({"hostname": host, "message": format!("PATTERN-{:05} link state down", i % 10_000), "timestamp": now.to_rfc3339()}).to_string(),
                    hostname: host,
                    silenced_by: None,
                    flap_suppressed: false,
                }
            })
            .collect();
        newest = newest.or(rows.first().map(|r| r.event_id));
        app.backend.store.write_audit(&rows).await.context("writing audit rows")?;
    }
    newest.context("no audit row written")
}

async fn fill_the_rest(app: &TestApp, dead_letters: usize) -> anyhow::Result<()> {
    for i in 0..200 {
        let (old, new) = (i.to_string(), (i + 1).to_string());
        let change =
            ConfigChange::dynamic_config("unhandled_threshold", Some(&old), Some(&new), "webui_api:bench", None);
        app.backend.store.record_config_change(&change).await?;
    }
    let entries: Vec<Vec<u8>> = (0..dead_letters)
        .map(|i| {
            let reason = ["retries_exhausted", "shed"][i % 2];
            json!({"hostname": format!("host-{:03}", i % HOSTS), "message": "m", "_event_id": EventId::new().to_string(),
                   "_dlq_reason": reason, "failed_at": Utc::now().to_rfc3339()})
            .to_string()
            .into_bytes()
        })
        .collect();
    app.backend.queue.dead_letters().dlq_push(Dlq::Alerter, &entries).await?;
    let keys: Vec<UnhandledKey> = (0..2_000)
        .map(|i| {
            UnhandledKey::new(
                format!("host-{:03}", i % HOSTS),
                format!("{:016x}", i % 700),
                EventId::new().to_string(),
                "",
            )
        })
        .collect();
    app.backend.coordination.count_unhandled(&keys, 1_000_000, Duration::from_secs(3600)).await?;
    Ok(())
}

/// A client with a console session (the `?api_key=` bookmark login).
async fn session(app: &TestApp) -> anyhow::Result<(reqwest::Client, String)> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let r = http.get(format!("{}/config?api_key={}", app.base_url, app.api_key)).send().await?;
    let cookie = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("mutt_session="))
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_owned();
    Ok((http, cookie))
}

/// Median and slowest of `runs` fetches of `path` (after a warm-up), in ms.
async fn time_page(http: &reqwest::Client, cookie: &str, url: &str, runs: usize) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(runs);
    for i in 0..=runs {
        let started = Instant::now();
        let r = http.get(url).header(reqwest::header::COOKIE, cookie).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!("{url}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        if i > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

async fn bench(kind: BackendKind, args: &Args) -> anyhow::Result<bool> {
    let app = spawn_app(kind).await;
    let t = Instant::now();
    let rules = fill_rules(&app, args.rules).await?;
    println!("{}: {} rules in {:.1} s", kind.name(), rules.len(), t.elapsed().as_secs_f64());
    let t = Instant::now();
    let newest = fill_audit(&app, &rules, args.audit_rows).await?;
    println!("{}: {} audit rows in {:.1} s", kind.name(), args.audit_rows, t.elapsed().as_secs_f64());
    fill_the_rest(&app, args.dead_letters).await?;
    let (http, cookie) = session(&app).await?;
    let pages = [
        "/".to_owned(),
        "/rules".into(),
        "/rules?q=PATTERN-0999".into(),
        format!("/rules/{}", rules[rules.len() / 2]),
        "/hosts".into(),
        "/teams".into(),
        "/audit".into(),
        "/audit?hostname=host-042".into(),
        format!("/audit?rule_id={}", rules[7]),
        "/audit?decision=Ignore&forwarded=false".into(),
        "/audit?page=50".into(),
        format!("/audit/{newest}"),
        "/config".into(),
        "/config/history".into(),
        "/dlq".into(),
        "/dlq/alerter?reason=shed".into(),
        "/unhandled".into(),
    ];
    println!("\n{:<42} {:>10} {:>10}", format!("page ({})", kind.name()), "median ms", "max ms");
    let mut ok = true;
    for page in &pages {
        let (median, max) = time_page(&http, &cookie, &format!("{}{page}", app.base_url), args.runs).await?;
        let flag = if max > args.budget_ms as f64 { "  OVER BUDGET" } else { "" };
        ok &= flag.is_empty();
        println!("{page:<42} {median:>10.1} {max:>10.1}{flag}");
    }
    println!();
    Ok(ok)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut kinds = vec![BackendKind::Embedded];
    let services =
        std::env::var_os("MUTT_TEST_DATABASE_URL").is_some() && std::env::var_os("MUTT_TEST_REDIS_URL").is_some();
    if services && !args.embedded_only {
        kinds.push(BackendKind::RedisPostgres);
    }
    let mut ok = true;
    for kind in kinds {
        ok &= bench(kind, &args).await?;
    }
    if !ok {
        bail!("a page took longer than {} ms", args.budget_ms);
    }
    println!("every page within {} ms", args.budget_ms);
    Ok(())
}
