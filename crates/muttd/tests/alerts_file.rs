//! The alerts file acknowledges only what is written: `muttd run` (embedded backend, alerts
//! file) is killed with -9 while alerts are being written, and right after each kill, before
//! any restart, every audited event is either still held in the data file (a queue, a delayed
//! retry, a DLQ) or its alert is in the alerts file. An alert acknowledged without its line
//! would be in neither.

mod common;

use mutt_sqlite::rusqlite::Connection;
use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Events offered per round (each round is cut short by its kill).
const EVENTS: usize = 3_000;
const BATCH: usize = 50;

fn batch(first: usize) -> serde_json::Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    (first..first + BATCH)
        .map(|i| serde_json::json!({"hostname": format!("host-{i}"), "message": format!("FILETEST {i}"), "timestamp": now}))
        .collect()
}

/// The `host-<n>` names in `text`.
fn hosts_in(text: &str, into: &mut HashSet<String>) {
    for (at, _) in text.match_indices("host-") {
        let digits: String = text[at + 5..].chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            into.insert(format!("host-{digits}"));
        }
    }
}

/// The audited hosts, and the hosts of every message still held (queued, leased, delayed or
/// dead-lettered), read from the data file of a killed `muttd`.
fn audited_and_held(db: &Path) -> (HashSet<String>, HashSet<String>) {
    let c = Connection::open(db).expect("open the data file");
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut audited = HashSet::new();
    let mut s = c.prepare("SELECT hostname FROM event_audit_log").unwrap();
    for h in s.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        audited.insert(h.unwrap());
    }
    let mut held = HashSet::new();
    for table in ["queue_message", "queue_delayed"] {
        let mut s = c.prepare(&format!("SELECT body FROM {table}")).unwrap();
        for body in s.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
            hosts_in(&String::from_utf8_lossy(&body.unwrap()), &mut held);
        }
    }
    (audited, held)
}

fn start(dir: &Path) -> (common::KillOnDrop, String) {
    let mut cmd = common::muttd(dir);
    cmd.env("MUTT_LOG__LEVEL", "warn").stderr(Stdio::inherit());
    let (child, stdout) = common::spawn_run(&mut cmd);
    (child, stdout.ingest_url())
}

fn migrate_and_import_rules(dir: &Path) {
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - match_string: FILETEST\n    match_type: contains\n    priority: 10\n    \
         prod_handling: Page_and_ticket\n    dev_handling: Ticket_only\n    team_assignment: NetOps\n",
    )
    .unwrap();
    for args in [&["migrate"][..], &["rules", "import", rules.to_str().unwrap()]] {
        let out = common::muttd(dir).args(args).output().expect("run muttd");
        assert!(out.status.success(), "muttd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn written(file: &Path) -> HashSet<String> {
    let mut hosts = HashSet::new();
    hosts_in(&std::fs::read_to_string(file).unwrap_or_default(), &mut hosts);
    hosts
}

#[tokio::test]
async fn after_kill_9_every_acknowledged_alert_is_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    migrate_and_import_rules(dir.path());
    let (db, file) = (dir.path().join("mutt-data/mutt.db"), dir.path().join("mutt-data/alerts.jsonl"));
    let next = Arc::new(AtomicUsize::new(0));
    for round in 0..4 {
        let (mut run, url) = start(dir.path());
        let key = std::fs::read_to_string(dir.path().join("mutt-data/ingest-api-key")).unwrap().trim().to_owned();
        // The load, until the kill cuts it (a batch cut off may or may not be stored).
        let loader = tokio::spawn({
            let next = next.clone();
            async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                loop {
                    let first = next.fetch_add(BATCH, Ordering::Relaxed);
                    if first >= EVENTS * (round + 1) {
                        return;
                    }
                    match http.post(&url).header("X-API-KEY", &key).json(&batch(first)).send().await {
                        Ok(r) if r.status() == 200 => tokio::time::sleep(Duration::from_millis(2)).await,
                        _ => return,
                    }
                }
            }
        });
        // Kill once this round's alerts are being written.
        let before = written(&file).len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while written(&file).len() < before + 300 {
            assert!(Instant::now() < deadline, "round {round}: alerts are not written");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        run.kill9();
        loader.await.unwrap();
        let (audited, held) = audited_and_held(&db);
        let written = written(&file);
        let lost: Vec<&String> = audited.iter().filter(|h| !held.contains(*h) && !written.contains(*h)).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} alerts acknowledged but not in the file (of {} audited, {} held, {} written): {:?}",
            lost.len(),
            audited.len(),
            held.len(),
            written.len(),
            &lost[..lost.len().min(10)]
        );
        eprintln!(
            "kill -9 round {round}: {} audited, {} still held in the data file, {} in the alerts file, 0 lost",
            audited.len(),
            held.len(),
            written.len()
        );
    }
}
