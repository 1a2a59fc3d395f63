//! JSON logs (`LOG_JSON_ENABLED=true`) of a `muttd run` on the embedded backend: every line
//! on stderr is one JSON object, and every line about one event names its `correlation_id`
//! (the client's `X-Correlation-ID`) and its `event_id` (the `_event_id` its dead letter
//! carries), from the ingest refusal to the forwarder's dead letter; no secret appears.

mod common;

use common::KillOnDrop;
use mutt_sqlite::rusqlite::{Connection, OpenFlags};
use mutt_testkit::{ReceiverMode, WebhookReceiver};
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INGEST_KEY: &str = "json-logs-ingest-key-7f3a";
const MOOG_KEY: &str = "json-logs-moog-token-91c2";
/// Debug for the pipeline's crates, so that their per-event debug lines are checked too.
const LEVEL: &str = "info,mutt_ingest=debug,mutt_alerter=debug,mutt_forwarder=debug,mutt_queue=debug";

fn muttd(dir: &Path, receiver: &str) -> Command {
    let mut cmd = common::muttd(dir);
    cmd.env("LOG_JSON_ENABLED", "true")
        .env("LOG_LEVEL", LEVEL)
        .env("INGEST_API_KEY", INGEST_KEY)
        .env("MOOG_WEBHOOK_URL", receiver)
        .env("MOOG_API_KEY", MOOG_KEY)
        .env("UNHANDLED_THRESHOLD", "2");
    cmd
}

/// A running `muttd run` whose stderr is collected line by line; killed when dropped.
struct Run {
    child: KillOnDrop,
    ingest_url: String,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Run {
    fn start(dir: &Path, receiver: &str) -> Self {
        let (mut child, stdout) = common::spawn_run(muttd(dir, receiver).stderr(Stdio::piped()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr");
        let lines = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Self { child, ingest_url: stdout.ingest_url(), stderr, reader: Some(reader) }
    }

    /// Whether a line written so far contains all of `parts`.
    fn logged(&self, parts: &[&str]) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| parts.iter().all(|p| l.contains(p)))
    }

    /// SIGTERM, wait for the exit, and every line it wrote to stderr.
    fn stop(mut self) -> Vec<String> {
        let stopped = self.child.terminate(Duration::from_secs(20));
        assert!(stopped.is_some(), "muttd run did not stop within 20 s of SIGTERM");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        std::mem::take(&mut *self.stderr.lock().unwrap())
    }
}

async fn post(url: &str, key: &str, cid: &str, body: Value) -> u16 {
    let resp = reqwest::Client::new()
        .post(url)
        .header("X-API-Key", key)
        .header("X-Correlation-ID", cid)
        .json(&body)
        .send()
        .await
        .expect("POST /ingest");
    resp.status().as_u16()
}

/// The messages of one queue in the data file (dead letters included), read as another
/// process would.
fn queue_messages(db: &Path, queue: &str) -> Vec<Map<String, Value>> {
    let Ok(c) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Vec::new();
    };
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = c.prepare("SELECT body FROM queue_message WHERE queue = ?1 ORDER BY seq").unwrap();
    let rows = stmt.query_map([queue], |r| r.get::<_, Vec<u8>>(0)).unwrap();
    rows.map(|r| serde_json::from_slice(&r.unwrap()).expect("a dead letter is a JSON object")).collect()
}

/// The dead letter with this correlation id (and, for the forwarder's, this hostname).
fn dead_letter<'a>(dlq: &'a [Map<String, Value>], cid: &str, hostname: &str) -> Option<&'a Map<String, Value>> {
    dlq.iter().find(|m| m["_correlation_id"] == cid && m.get("hostname").is_none_or(|h| h == hostname))
}

fn text<'a>(line: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    line.get(field).and_then(Value::as_str)
}

/// The lines with this message and correlation id.
fn lines_about<'a>(lines: &'a [Map<String, Value>], message: &str, cid: &str) -> Vec<&'a Map<String, Value>> {
    lines.iter().filter(|l| text(l, "message") == Some(message) && text(l, "correlation_id") == Some(cid)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_about_an_event_names_its_correlation_and_event_ids() {
    let dir = tempfile::tempdir().unwrap();
    // Moogsoft refuses everything with 400: not retryable, so each alert is dead-lettered.
    let receiver = WebhookReceiver::start().await;
    receiver.set_mode(ReceiverMode::Status(400));
    let run = Run::start(dir.path(), &receiver.url());
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rules.yaml");
    let out = muttd(dir.path(), &receiver.url()).args(["rules", "import", rules]).output().unwrap();
    assert!(out.status.success(), "rules import: {}", String::from_utf8_lossy(&out.stderr));

    let tag = uuid::Uuid::now_v7().simple().to_string();
    let cid = |what: &str| format!("json-logs-{what}-{tag}");
    let now = chrono::Utc::now().to_rfc3339();
    let url = run.ingest_url.clone();
    // A handled event (its alert goes to the receiver, which refuses it).
    let handled = json!({"hostname": "jl-router", "message": "LINK-DOWN on Gi0/1", "timestamp": now});
    assert_eq!(post(&url, INGEST_KEY, &cid("handled"), handled).await, 200);
    // Two unhandled events of one host and text in one request: the second raises a meta-alert.
    let unhandled = json!({"hostname": "jl-switch", "message": "no rule matches this", "timestamp": now});
    assert_eq!(post(&url, INGEST_KEY, &cid("unhandled"), json!([unhandled, unhandled])).await, 200);
    // An event whose retries are spent: the alerter dead-letters it unprocessed.
    let spent = json!({"hostname": "jl-host", "message": "LINK-DOWN again", "timestamp": now, "_retry_count": 99});
    assert_eq!(post(&url, INGEST_KEY, &cid("spent"), spent).await, 200);
    // Refused at the door: a required field missing, a field of the wrong type, a wrong key.
    assert_eq!(post(&url, INGEST_KEY, &cid("missing"), json!({"message": "no host", "timestamp": now})).await, 400);
    let wrong = json!({"hostname": 42, "message": "m", "timestamp": now});
    assert_eq!(post(&url, INGEST_KEY, &cid("wrongtype"), wrong).await, 400);
    assert_eq!(post(&url, "not-the-key", &cid("badkey"), json!({"hostname": "h"})).await, 401);

    // Until the alerts of the handled event and the meta-alert are dead-lettered by the
    // forwarder, and the spent event by the alerter.
    let db = dir.path().join("mutt-data/mutt.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (moog_dlq, alerter_dlq) = loop {
        let (moog, alerter) = (queue_messages(&db, "mutt:dlq:moog"), queue_messages(&db, "mutt:dlq:alerter"));
        if moog.len() >= 2 && !alerter.is_empty() {
            break (moog, alerter);
        }
        assert!(Instant::now() < deadline, "dead letters after 30 s: moog {moog:?}, alerter {alerter:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Moogsoft fails (503, worth retrying): the alert of one more event is retried.
    receiver.set_mode(ReceiverMode::Status(503));
    let failing = json!({"hostname": "jl-router", "message": "LINK-DOWN on Gi0/2", "timestamp": now});
    assert_eq!(post(&url, INGEST_KEY, &cid("retried"), failing).await, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run.logged(&["delivery failed; alert retried", &cid("retried")]) {
        assert!(Instant::now() < deadline, "no retry line after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stderr = run.stop();

    // Every line is one JSON object; no secret anywhere.
    let lines: Vec<Map<String, Value>> = stderr
        .iter()
        .map(|l| serde_json::from_str::<Map<String, Value>>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    for l in &stderr {
        assert!(!l.contains(INGEST_KEY) && !l.contains(MOOG_KEY), "a secret in the logs: {l}");
    }

    let id = |m: &Map<String, Value>| m["_event_id"].as_str().expect("_event_id").to_owned();
    let handled_alert = dead_letter(&moog_dlq, &cid("handled"), "jl-router").expect("the handled event's alert");
    let handled_id = id(handled_alert);
    let meta = dead_letter(&moog_dlq, &cid("unhandled"), "MUTT_Alerter").expect("the meta-alert");
    let meta_id = id(meta);
    let spent_id = id(dead_letter(&alerter_dlq, &cid("spent"), "jl-host").expect("the spent event"));
    assert_eq!(handled_alert["_dlq_reason"], "rejected_by_receiver");

    // The handled event: queued, handled, refused by Moogsoft, each line with both ids.
    let expect_line = |message: &str, cid: &str, event_id: &str| {
        let found = lines_about(&lines, message, cid);
        assert!(
            found.iter().any(|l| text(l, "event_id") == Some(event_id)),
            "no {message:?} line with correlation_id {cid} and event_id {event_id}: {found:?}"
        );
    };
    expect_line("events queued", &cid("handled"), &handled_id);
    expect_line("event handled", &cid("handled"), &handled_id);
    expect_line("alert rejected by the receiver; dead-lettered", &cid("handled"), &handled_id);
    // The meta-alert: raised by the alerter (naming the event that reached the threshold) and
    // dead-lettered by the forwarder, under the meta-alert's own id.
    expect_line("unhandled meta-alert", &cid("unhandled"), &meta_id);
    expect_line("alert rejected by the receiver; dead-lettered", &cid("unhandled"), &meta_id);
    let queued = lines_about(&lines, "events queued", &cid("unhandled"));
    let batch_ids = queued.first().and_then(|l| text(l, "event_ids")).expect("the batch's queued line lists its ids");
    assert_eq!(queued[0]["events"], 2, "{queued:?}");
    let raised = lines_about(&lines, "unhandled meta-alert", &cid("unhandled"));
    let trigger = text(raised[0], "trigger_event_id").expect("trigger_event_id");
    assert!(batch_ids.split(',').any(|i| i == trigger), "trigger {trigger} not among {batch_ids}");
    for n in 0..2 {
        let unhandled_id = batch_ids.split(',').nth(n).unwrap();
        expect_line("event unhandled", &cid("unhandled"), unhandled_id);
    }
    // The failing delivery: retried, under the id the receiver saw (REST LAM `external_id`).
    let sent: Vec<String> = receiver
        .requests()
        .iter()
        .flat_map(|r| r.body["events"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["description"].as_str().is_some_and(|d| d.contains("Gi0/2")))
        .filter_map(|e| e["external_id"].as_str().map(str::to_owned))
        .collect();
    let retried_id = sent.first().expect("the receiver saw the failing alert");
    expect_line("delivery failed; alert retried", &cid("retried"), retried_id);
    // The spent event: dead-lettered by the alerter.
    expect_line("event dead-lettered", &cid("spent"), &spent_id);
    let dead = lines_about(&lines, "event dead-lettered", &cid("spent"));
    assert_eq!(text(dead[0], "reason"), Some("retries_exhausted"));

    // Every line naming one of these correlation ids names the event too (the batch request's
    // lines list the ids), and an id that belongs to it.
    let known = [
        (cid("handled"), vec![handled_id.clone()]),
        (cid("spent"), vec![spent_id.clone()]),
        (cid("retried"), vec![retried_id.clone()]),
    ];
    for (c, ids) in &known {
        for l in lines.iter().filter(|l| text(l, "correlation_id") == Some(c.as_str())) {
            let event_id = text(l, "event_id").unwrap_or_else(|| panic!("a line about {c} without event_id: {l:?}"));
            assert!(ids.iter().any(|i| i == event_id), "{l:?}");
        }
    }
    for l in lines.iter().filter(|l| text(l, "correlation_id") == Some(cid("unhandled").as_str())) {
        assert!(l.contains_key("event_id") || l.contains_key("event_ids"), "a line without ids: {l:?}");
    }

    // Refusals at the door name the correlation id (refused events get no event id) and why.
    let missing = lines_about(&lines, "events refused", &cid("missing"));
    let detail = missing.first().and_then(|l| text(l, "detail")).expect("the missing-field refusal is logged");
    assert!(detail.contains("hostname"), "{detail}");
    assert_eq!(text(missing[0], "reason"), Some("validation"));
    let wrong = lines_about(&lines, "events refused", &cid("wrongtype"));
    let detail = wrong.first().and_then(|l| text(l, "detail")).expect("the wrong-typed refusal is logged");
    assert!(detail.contains("\"hostname\" must be a string"), "{detail}");
    assert!(!lines_about(&lines, "rejected request without a valid API key", &cid("badkey")).is_empty());
    // The level and the event's time are on each line, for a log shipper.
    assert!(lines.iter().all(|l| l.contains_key("level") && l.contains_key("timestamp")), "{:?}", lines[0]);
}
