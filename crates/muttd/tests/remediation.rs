//! `muttd remediation` as a process against Redis and a PostgreSQL of the test's own: dead
//! letters wait while PostgreSQL is down and are replayed once it is back; the metrics carry
//! the original's names. And `muttd dlq` against the same Redis.

mod common;

use common::{KillOnDrop, listening, muttd};
use mutt_queue::dlq::Dlq;
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::{Queue, QueueId};
use mutt_testkit::PostgresServer;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const N: usize = 40;

fn dead_letter(n: usize) -> Vec<u8> {
    json!({"n": n, "hostname": format!("router-{}", n % 4), "message": "CRITICAL link down",
           "timestamp": chrono::Utc::now().to_rfc3339(), "_retry_count": 3,
           "_dlq_reason": "retries_exhausted", "_dlq_error": "audit write failed: connection refused",
           "failed_at": chrono::Utc::now().to_rfc3339()})
    .to_string()
    .into_bytes()
}

/// `muttd remediation` and the address it prints.
fn spawn_remediation(cmd: &mut Command) -> (KillOnDrop, SocketAddr) {
    let mut child = KillOnDrop(cmd.arg("remediation").stdout(Stdio::piped()).spawn().expect("spawn muttd"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, addr)) = listening(&line) {
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("muttd remediation prints its address");
    (child, addr)
}

async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{addr}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn wait_until(what: &str, within: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn muttd_remediation_replays_the_alerter_dlq_after_postgresql_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut pg = PostgresServer::start().expect("a PostgreSQL of this test's own");
    let prefix = mutt_testkit::unique_prefix();
    let redis = RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&prefix)))
        .await
        .unwrap();
    let dlqs = redis.dead_letters();
    let (mut child, addr) = spawn_remediation(
        muttd(dir.path())
            .env("MUTT_REDIS__URL", mutt_testkit::redis_url())
            .env("MUTT_REDIS__KEY_PREFIX", &prefix)
            .env("MUTT_DATABASE__URL", pg.url())
            .env("MUTT_REMEDIATION__PORT", "0")
            .env("REMEDIATION_INTERVAL", "1")
            .env("REMEDIATION_BATCH_SIZE", "100")
            .env("POD_NAME", "remediation-test"),
    );
    wait_until("the first cycle ran", Duration::from_secs(10), async || {
        metric(addr, "mutt_remediation_loops_total").await.is_some_and(|n| n >= 1.0)
    })
    .await;
    assert_eq!(metric(addr, "mutt_remediation_store_health").await, Some(1.0));

    pg.stop().unwrap();
    let entries: Vec<Vec<u8>> = (0..N).map(dead_letter).collect();
    dlqs.dlq_push(Dlq::Alerter, &entries).await.unwrap();
    wait_until("a cycle saw PostgreSQL down", Duration::from_secs(10), async || {
        metric(addr, "mutt_remediation_store_health").await == Some(0.0)
    })
    .await;
    let loops = metric(addr, "mutt_remediation_loops_total").await.unwrap();
    wait_until("two more cycles ran", Duration::from_secs(10), async || {
        metric(addr, "mutt_remediation_loops_total").await.is_some_and(|n| n >= loops + 2.0)
    })
    .await;
    assert_eq!(dlqs.dlq_depth(Dlq::Alerter).await.unwrap(), N as u64, "nothing replayed while PostgreSQL is down");
    assert_eq!(redis.depth(QueueId::Ingest).await.unwrap(), 0);

    pg.start_again().unwrap();
    wait_until("the DLQ was replayed", Duration::from_secs(30), async || {
        dlqs.dlq_depth(Dlq::Alerter).await.unwrap() == 0
    })
    .await;
    let mut c = redis.connection();
    let queued: Vec<Vec<u8>> =
        redis::cmd("LRANGE").arg(&redis.keys().ingest_queue).arg(0).arg(-1).query_async(&mut c).await.unwrap();
    let mut ns: Vec<u64> = Vec::new();
    for raw in &queued {
        let m: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(m["_replay_count"], 1, "{m}");
        assert!(m.get("_dlq_reason").is_none() && m.get("_retry_count").is_none() && m.get("failed_at").is_none());
        ns.push(m["n"].as_u64().unwrap());
    }
    ns.sort();
    assert_eq!(ns, (0..N as u64).collect::<Vec<_>>(), "every dead letter exactly once");
    assert_eq!(metric(addr, "mutt_remediation_replay_success_total").await, Some(N as f64));
    for name in [
        "mutt_remediation_dlq_depth{",
        "mutt_remediation_replay_fail_total{",
        "mutt_remediation_poison_messages_total",
        "mutt_remediation_moog_health",
        "mutt_remediation_loop_duration_seconds_count",
    ] {
        assert!(metric(addr, name).await.is_some(), "{name} on /metrics");
    }
    assert!(child.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()), "SIGTERM stops it cleanly");
}

fn dlq_cli(dir: &std::path::Path, prefix: &str, args: &[&str]) -> (bool, String, String) {
    let out = muttd(dir)
        .env("MUTT_REDIS__URL", mutt_testkit::redis_url())
        .env("MUTT_REDIS__KEY_PREFIX", prefix)
        .arg("dlq")
        .args(args)
        .output()
        .expect("run muttd dlq");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn muttd_dlq_lists_shows_replays_parks_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = mutt_testkit::unique_prefix();
    let redis = RedisQueue::connect(&RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&prefix)))
        .await
        .unwrap();
    let dlqs = redis.dead_letters();
    let entries: Vec<Vec<u8>> = (0..10).map(dead_letter).collect();
    dlqs.dlq_push(Dlq::Alerter, &entries).await.unwrap();
    let (ok, out, err) = dlq_cli(dir.path(), &prefix, &["list"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{prefix}dlq:alerter")) && out.contains("retries_exhausted=10"), "{out}");
    let (ok, out, _) = dlq_cli(dir.path(), &prefix, &["show", "alerter", "--host", "router-1", "--oldest"]);
    assert!(ok && out.contains("router-1") && !out.contains("router-2"), "{out}");
    let (ok, _, err) = dlq_cli(dir.path(), &prefix, &["replay", "alerter"]);
    assert!(!ok && err.contains("--all"), "a replay names its entries: {err}");
    let (ok, out, _) = dlq_cli(dir.path(), &prefix, &["replay", "alerter", "--host", "router-1", "--dry-run"]);
    assert!(ok && out.contains("dry run, nothing changed") && out.contains("would take 3 of 10"), "{out}");
    assert_eq!(redis.depth(QueueId::Ingest).await.unwrap(), 0);
    let (ok, out, _) = dlq_cli(dir.path(), &prefix, &["replay", "alerter", "--host", "router-1"]);
    assert!(ok && out.contains(&format!("3 to {prefix}ingest_queue")), "{out}");
    let (ok, out, _) = dlq_cli(dir.path(), &prefix, &["park", "alerter", "--host", "router-2", "--why", "bad data"]);
    assert!(ok && out.contains(&format!("2 to {prefix}dlq:dead")), "{out}");
    let (ok, _, err) = dlq_cli(dir.path(), &prefix, &["purge", "alerter", "--all"]);
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, out, _) = dlq_cli(dir.path(), &prefix, &["purge", "alerter", "--all", "--yes"]);
    assert!(ok && out.contains("5 of 5"), "{out}");
    let (ok, out, _) = dlq_cli(dir.path(), &prefix, &["export", "dead"]);
    assert!(ok && out.lines().count() == 2 && out.contains("bad data"), "{out}");
    let (ok, out, _) = dlq_cli(dir.path(), &prefix, &["trim", "--older-than-days", "1", "--dry-run"]);
    assert!(ok && out.matches("would take 0").count() == 3, "{out}");
    let depths = [
        dlqs.dlq_depth(Dlq::Alerter).await.unwrap(),
        dlqs.dlq_depth(Dlq::Dead).await.unwrap(),
        redis.depth(QueueId::Ingest).await.unwrap(),
    ];
    assert_eq!(depths, [0, 2, 3], "10 entries: 3 replayed, 2 parked, 5 purged");
}

/// `muttd run` (embedded) with events the alerter dead-letters every time (a timestamp it
/// cannot read, normalisation off); returns the process, the alerter's address and the
/// ingest URL.
async fn run_with_poison(dir: &std::path::Path, extra: &[(&str, &str)]) -> (KillOnDrop, SocketAddr) {
    // A rule that handles them: handled events get an audit row, which needs the timestamp.
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rules.yaml");
    let out = muttd(dir).args(["rules", "import", rules]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut cmd = muttd(dir);
    cmd.env("MUTT_INGESTOR__AUTH_DISABLED", "true").env("MUTT_INGESTOR__NORMALIZE", "false");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let (child, stdout) = common::spawn_run(&mut cmd);
    let (mut alerter, mut ingest) = (None, None);
    stdout.read_until("the alerter's and the ingestor's addresses", |line| {
        match listening(line) {
            Some(("alerter", a)) => alerter = Some(a),
            Some(("ingestor", a)) => ingest = Some(a),
            _ => {}
        }
        alerter.is_some() && ingest.is_some()
    });
    let events: Vec<Value> = (0..3)
        .map(|n| json!({"hostname": format!("h{n}"), "message": "CRITICAL x", "timestamp": "yesterday", "n": n}))
        .collect();
    let url = format!("http://{}/ingest", ingest.unwrap());
    let r = reqwest::Client::new().post(url).json(&events).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
    (child, alerter.unwrap())
}

/// `muttd dlq list --json` on the embedded data file: depths of alerter, moog, dead.
fn embedded_depths(dir: &std::path::Path) -> [u64; 3] {
    let out = muttd(dir).args(["dlq", "list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    [0, 1, 2].map(|i| list[i]["depth"].as_u64().unwrap())
}

async fn wait_for_depths(dir: &std::path::Path, want: [u64; 3]) {
    wait_until(&format!("the DLQs hold {want:?}"), Duration::from_secs(60), async || embedded_depths(dir) == want)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inside_muttd_run_remediation_parks_poison_after_the_configured_replays() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("REMEDIATION_INTERVAL", "1"), ("MAX_POISON_RETRIES", "2")];
    let (mut run, alerter) = run_with_poison(dir.path(), &env).await;
    wait_for_depths(dir.path(), [0, 0, 3]).await;
    let out = muttd(dir.path()).args(["dlq", "export", "dead"]).output().unwrap();
    let parked: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parked.len(), 3);
    for p in &parked {
        assert_eq!(p["replay_count"], 2, "replayed twice, then parked: {p}");
        assert_eq!(p["message"]["_dlq_reason"], "bad_timestamp");
        assert!(p["message"]["_parked_reason"].as_str().unwrap().contains("replayed 2 times"), "{p}");
    }
    let loops = metric(alerter, "mutt_remediation_loops_total").await.unwrap();
    wait_until("more cycles", Duration::from_secs(10), async || {
        metric(alerter, "mutt_remediation_loops_total").await.is_some_and(|n| n >= loops + 2.0)
    })
    .await;
    assert_eq!(embedded_depths(dir.path()), [0, 0, 3], "parked, not looping");
    assert_eq!(metric(alerter, "mutt_remediation_poison_messages_total").await, Some(3.0));
    assert_eq!(metric(alerter, "mutt_remediation_replay_success_total").await, Some(6.0));
    // Remediation and retention share the alerter's registry here: every family once.
    let text = reqwest::get(format!("http://{alerter}/metrics")).await.unwrap().text().await.unwrap();
    let mut types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let all = types.len();
    types.sort();
    types.dedup();
    assert_eq!(types.len(), all, "a metric family twice on the alerter's /metrics");
    assert!(text.contains("mutt_retention_cleanup_records_deleted_total{type=\"dlq\"}"), "{text}");
    assert!(run.terminate(Duration::from_secs(15)).is_some_and(|s| s.success()));
}

#[tokio::test(flavor = "multi_thread")]
async fn muttd_dlq_works_on_the_data_file_of_a_running_muttd_run() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, _) = run_with_poison(dir.path(), &[("REMEDIATION_ENABLED", "false")]).await;
    wait_for_depths(dir.path(), [3, 0, 0]).await;
    let out = muttd(dir.path()).args(["dlq", "replay", "alerter", "--all"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("3 to mutt:ingest_queue"), "{text}");
    // The running alerter takes them and dead-letters them again, each once.
    wait_until("the replayed events failed again", Duration::from_secs(30), async || {
        let out = muttd(dir.path()).args(["dlq", "show", "alerter", "--json"]).output().unwrap();
        let page: Value = serde_json::from_slice(&out.stdout).unwrap();
        let entries = page["entries"].as_array().unwrap();
        entries.len() == 3 && entries.iter().all(|e| e["replay_count"] == 1)
    })
    .await;
    let out = muttd(dir.path()).args(["dlq", "park", "alerter", "--reason", "bad_timestamp"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(embedded_depths(dir.path()), [0, 0, 3]);
    let out = muttd(dir.path()).args(["dlq", "purge", "dead", "--all", "--yes"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 deleted"));
    assert_eq!(embedded_depths(dir.path()), [0, 0, 0]);
    assert!(run.terminate(Duration::from_secs(15)).is_some_and(|s| s.success()));
}
