//! `muttd run` on the embedded backend, as a user runs it: no Redis, no PostgreSQL, no
//! configuration. The README's first-run example, and a kill -9 in the middle of a load:
//! every accepted event is audited exactly once and raises its alert.

mod common;

use common::KillOnDrop;
use mutt_sqlite::rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Both tests start `muttd run` processes and load them: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn muttd(dir: &Path) -> Command {
    in_dir(Command::new(env!("CARGO_BIN_EXE_muttd")), dir, 0)
}

/// `cmd` in `dir` with nothing configured but the ingestor's port (0: the OS picks) and ports
/// the OS picks for the rest.
fn in_dir(mut cmd: Command, dir: &Path, ingest_port: u16) -> Command {
    common::in_dir(&mut cmd, dir).env("MUTT_INGESTOR__PORT", ingest_port.to_string()).env("MUTT_LOG__LEVEL", "warn");
    cmd
}

/// A running `muttd run`; killed when dropped.
struct Run {
    child: KillOnDrop,
    ingest_url: String,
}

impl Run {
    fn start(dir: &Path) -> Self {
        Self::start_on(dir, 0)
    }

    fn start_on(dir: &Path, ingest_port: u16) -> Self {
        let mut cmd = in_dir(Command::new(env!("CARGO_BIN_EXE_muttd")), dir, ingest_port);
        let (child, stdout) = common::spawn_run(cmd.stderr(Stdio::inherit()));
        Self { child, ingest_url: stdout.ingest_url() }
    }

    fn kill9(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.child.terminate(Duration::from_secs(20))
    }
}

fn run_command(dir: &Path, args: &[&str]) -> String {
    let out = muttd(dir).args(args).output().expect("run muttd");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "muttd {args:?} failed: {text}");
    text
}

fn alerts_file(dir: &Path) -> PathBuf {
    dir.join("mutt-data/alerts.jsonl")
}

fn read_alerts(dir: &Path) -> String {
    std::fs::read_to_string(alerts_file(dir)).unwrap_or_default()
}

/// The README's second-terminal lines (`muttd rules import …`, `muttd send …`, `tail -n1 …`),
/// with `target/release/muttd` standing for the binary under test.
fn readme_lines() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let lines: Vec<&str> = readme.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("target/release/muttd rules import"))
        .expect("the README shows `muttd rules import`");
    let block: Vec<String> = lines[first..first + 3]
        .iter()
        .map(|l| l.replace("target/release/muttd", env!("CARGO_BIN_EXE_muttd")))
        .collect();
    assert!(block[1].contains(" send ") && block[2].starts_with("tail -n1 "), "README lines changed: {block:?}");
    block
}

/// Runs one README line with `sh` in `dir`, as a user pastes it.
fn shell(dir: &Path, port: u16, line: &str) -> String {
    let out = in_dir(Command::new("sh"), dir, port).arg("-c").arg(line).output().expect("run sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{line}: {text}");
    text
}

#[tokio::test]
async fn first_run_needs_nothing_and_the_readme_example_gives_an_alert() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // `muttd send` without --url posts to the configured port: give run and send the same.
    let port = common::free_port();
    let run = Run::start_on(dir.path(), port);
    assert!(dir.path().join("mutt-data/mutt.db").exists(), "the data file is created in ./mutt-data");
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rules.yaml"),
        dir.path().join("examples/rules.yaml"),
    )
    .unwrap();
    // Pasted at once: no pause between the import and the event (the running alerter checks
    // the rules version before each batch).
    let [import, send, tail] = <[String; 3]>::try_from(readme_lines()).unwrap();
    let imported = shell(dir.path(), port, &import);
    assert!(imported.contains("5 created"), "{imported}");
    let sent = shell(dir.path(), port, &send);
    assert!(sent.starts_with("200"), "{sent}");
    // The forwarder writes the alert asynchronously: the `tail` line, until it shows it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let last = if alerts_file(dir.path()).exists() { shell(dir.path(), port, &tail) } else { String::new() };
        if last.contains("LINK-DOWN on Gi0/1") {
            assert!(last.contains("NetOps"), "the LINK-DOWN rule's team: {last}");
            break;
        }
        assert!(Instant::now() < deadline, "no alert line in {}: {last:?}", alerts_file(dir.path()).display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Dynamic configuration: set while running, read back, recorded in the config audit.
    let set = run_command(dir.path(), &["config", "set", "alerter_shed_mode", "defer", "--reason", "first run"]);
    assert!(set.contains("alerter_shed_mode: (unset) -> defer"), "{set}");
    let got = run_command(dir.path(), &["config", "get", "alerter_shed_mode"]);
    assert!(got.contains("alerter_shed_mode = defer"), "{got}");
    let history = run_command(dir.path(), &["config", "history"]);
    assert!(
        history.contains("CREATE") && history.contains("\"defer\"") && history.contains("(first run)"),
        "{history}"
    );
    let status = run_command(dir.path(), &["status"]);
    assert!(status.contains("mutt:ingest_queue") && status.contains("alive"), "{status}");
    // Without the generated key nothing is accepted.
    let resp = reqwest::Client::new()
        .post(&run.ingest_url)
        .json(&serde_json::json!({"hostname": "r", "message": "m", "timestamp": "2026-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

const EVENTS: usize = 6_000;
const BATCH: usize = 50;

fn batch(first: usize) -> serde_json::Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::Value::Array(
        (first..first + BATCH)
            .map(|i| serde_json::json!({"hostname": format!("host-{i}"), "message": format!("LOADTEST event {i}"), "timestamp": now}))
            .collect(),
    )
}

/// Audit rows per hostname, read from the data file as another process would.
fn audit_by_host(db: &Path) -> HashMap<String, i64> {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open the data file");
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut s = c.prepare("SELECT hostname, count(*) FROM event_audit_log GROUP BY hostname").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

fn leftover(db: &Path) -> (i64, i64) {
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open the data file");
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let queued = c.query_row("SELECT count(*) FROM queue_message", [], |r| r.get(0)).unwrap();
    let delayed = c.query_row("SELECT count(*) FROM queue_delayed", [], |r| r.get(0)).unwrap();
    (queued, delayed)
}

#[tokio::test]
async fn kill_9_mid_load_then_restart_audits_every_accepted_event_exactly_once() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - match_string: LOADTEST\n    match_type: contains\n    priority: 10\n    \
         prod_handling: Page_and_ticket\n    dev_handling: Ticket_only\n    team_assignment: NetOps\n",
    )
    .unwrap();
    // Prepared before the first run, as an operator would: migrate, then import rules.
    assert!(run_command(dir.path(), &["migrate"]).contains("applied V1__initial_schema"));
    assert!(run_command(dir.path(), &["migrate"]).contains("up to date"));
    run_command(dir.path(), &["rules", "import", rules.to_str().unwrap()]);
    let mut run = Run::start(dir.path());
    let key = std::fs::read_to_string(dir.path().join("mutt-data/ingest-api-key")).unwrap().trim().to_owned();
    let url = Arc::new(Mutex::new(run.ingest_url.clone()));

    // The load: batches in order; a batch counts as accepted only on 200. A batch whose
    // request failed (muttd killed under it) may or may not have been stored: it is
    // "uncertain" and is not sent again.
    let loader = {
        let url = url.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            let (mut accepted, mut uncertain) = (Vec::new(), Vec::new());
            let mut first = 0;
            while first < EVENTS {
                let target = url.lock().unwrap().clone();
                match http.post(&target).header("X-API-KEY", &key).json(&batch(first)).send().await {
                    Ok(r) if r.status() == 200 => accepted.push(first),
                    Ok(r) if r.status() == 503 || r.status() == 429 => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue; // refused: nothing stored, send again
                    }
                    Ok(r) => panic!("unexpected answer {}", r.status()),
                    Err(e) if e.is_connect() => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue; // nothing listening: nothing stored, send again
                    }
                    Err(_) => uncertain.push(first),
                }
                first += BATCH;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (accepted, uncertain)
        })
    };

    let db = dir.path().join("mutt-data/mutt.db");
    for round in 0..2 {
        // Kill while events are flowing through every stage.
        let deadline = Instant::now() + Duration::from_secs(60);
        let goal = (round + 1) * EVENTS / 3;
        while audit_by_host(&db).len() < goal {
            assert!(Instant::now() < deadline, "round {round}: the load does not progress");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        run.kill9();
        run = Run::start(dir.path());
        *url.lock().unwrap() = run.ingest_url.clone();
    }
    let (accepted, uncertain) = loader.await.unwrap();
    assert!(!accepted.is_empty());

    // Wait until everything accepted has gone through.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (queued, delayed) = leftover(&db);
        if queued == 0 && delayed == 0 && audit_by_host(&db).len() >= accepted.len() * BATCH {
            break;
        }
        assert!(Instant::now() < deadline, "still queued: {queued}, delayed: {delayed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(run.terminate().map(|s| s.success()), Some(true), "muttd run stops cleanly on SIGTERM");

    let audit = audit_by_host(&db);
    let alerts = read_alerts(dir.path());
    for first in &accepted {
        for i in *first..first + BATCH {
            let host = format!("host-{i}");
            assert_eq!(audit.get(&host), Some(&1), "{host}: accepted, must be audited exactly once");
            assert!(alerts.contains(&format!("\"LOADTEST event {i}\"")), "{host}: accepted, its alert is missing");
        }
    }
    let duplicated: Vec<_> = audit.iter().filter(|(_, n)| **n != 1).collect();
    assert!(duplicated.is_empty(), "audited more than once: {duplicated:?}");
    // Only events of accepted batches and of batches cut off by the kill are audited.
    let known = (accepted.len() + uncertain.len()) * BATCH;
    assert!(audit.len() <= known, "{} audited, {known} sent", audit.len());
    eprintln!(
        "kill -9 twice under load: {} events accepted, {} uncertain (request cut by the kill), {} audited, 0 duplicated",
        accepted.len() * BATCH,
        uncertain.len() * BATCH,
        audit.len()
    );
}
