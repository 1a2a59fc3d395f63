//! The store interface on the embedded SQLite backend (a fresh file per test): the
//! conformance suite, plus what only the embedded store has (the rules version that other
//! processes bump, the file itself).

#[macro_use]
mod suite;

use async_trait::async_trait;
use mutt_sqlite::{Database, DbOptions};
use mutt_store::sqlite::SqliteStore;
use mutt_store::{Store, StoreError};
use std::path::Path;
use std::sync::Arc;
use suite::{Inspect, audit, rule};
use tempfile::TempDir;

async fn open(path: &Path) -> SqliteStore {
    let store = SqliteStore::open(path, DbOptions::default()).await.expect("open the database file");
    store.migrate().await.expect("migrations apply");
    store
}

async fn store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("mutt.db")).await;
    (store, dir)
}

struct SqliteInspect {
    db: Database,
    // Keeps the file's directory until the test is over.
    _dir: TempDir,
}

#[async_trait]
impl Inspect for SqliteInspect {
    async fn audit_rows(&self) -> u64 {
        let n: i64 =
            self.db.read(|c| c.query_row("SELECT count(*) FROM event_audit_log", [], |r| r.get(0))).await.unwrap();
        n.try_into().unwrap()
    }

    async fn execute(&self, sql: &str) -> Result<u64, String> {
        let path = self.db.path().to_owned();
        let sql = sql.to_owned();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            conn.execute(&sql, []).map(|n| n as u64).map_err(|e| e.to_string())
        })
        .await
        .unwrap()
    }

    async fn texts(&self, sql: &str) -> Vec<String> {
        let sql = sql.to_owned();
        self.db.read(move |c| c.prepare(&sql)?.query_map([], |r| r.get(0))?.collect()).await.unwrap()
    }
}

async fn backend() -> (Arc<dyn Store>, Arc<dyn Inspect>) {
    let (store, dir) = store().await;
    let db = store.database().clone();
    (Arc::new(store), Arc::new(SqliteInspect { db, _dir: dir }))
}

conformance!();

#[tokio::test]
async fn migrate_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("mutt.db"), DbOptions::default()).await.unwrap();
    let applied = store.migrate().await.unwrap();
    assert_eq!(
        applied,
        [
            "V1__initial_schema",
            "V2__audit_event_id_default",
            "V3__event_audit_log_archive",
            "V4__silences",
            "V5__flap_suppression"
        ]
    );
    assert!(store.migrate().await.unwrap().is_empty(), "second run applies nothing");
    assert!(store.migrate().await.unwrap().is_empty(), "third run applies nothing");
}

/// A file written before the event id had a default keeps every audit row (ids, event ids)
/// through the table rebuild, and the rebuilt table behaves as before.
#[tokio::test]
async fn the_event_id_default_migration_keeps_existing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("mutt.db"), DbOptions::default()).await.unwrap();
    assert_eq!(store.migrate_up_to(1).await.unwrap(), ["V1__initial_schema"]);
    // Written as V1's columns: the store's own statements name columns of later migrations.
    let rows: Vec<_> = (0..20).map(|_| audit(1, "2026-01-01T00:00:00Z")).collect();
    let v1_rows = rows.clone();
    let id: i64 = store
        .database()
        .write(move |c| {
            c.execute(
                "INSERT INTO alert_rules (match_string, prod_handling, dev_handling, team_assignment)
                 VALUES ('CRITICAL', 'Page_and_ticket', 'Ignore', 'NETO')",
                [],
            )?;
            let id = c.last_insert_rowid();
            for r in &v1_rows {
                c.execute(
                    "INSERT INTO event_audit_log (event_id, event_timestamp, hostname, matched_rule_id,
                                                  handling_decision, forwarded_to_moog, raw_message)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params![
                        r.event_id.to_string(),
                        r.event_timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        r.hostname,
                        id,
                        r.handling_decision,
                        r.forwarded_to_moog,
                        r.raw_message
                    ],
                )?;
            }
            Ok(id)
        })
        .await
        .unwrap();
    let dump = "SELECT id || ' ' || event_id || ' ' || event_timestamp || ' ' || hostname || ' ' || matched_rule_id \
                || ' ' || handling_decision || ' ' || forwarded_to_moog || ' ' || raw_message \
                FROM event_audit_log ORDER BY id";
    let read = |sql: &'static str| {
        let db = store.database().clone();
        async move {
            db.read(move |c| c.prepare(sql)?.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>())
                .await
                .unwrap()
        }
    };
    let before = read(dump).await;

    assert_eq!(store.migrate_up_to(2).await.unwrap(), ["V2__audit_event_id_default"]);
    assert_eq!(read(dump).await, before, "every row as it was");
    let mut indexes =
        read("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'event_audit_log'").await;
    indexes.sort();
    assert_eq!(
        indexes,
        [
            "idx_audit_log_hostname",
            "idx_audit_log_rule_id",
            "idx_audit_log_timestamp",
            "sqlite_autoindex_event_audit_log_1"
        ]
    );
    store.migrate().await.unwrap();
    assert_eq!(store.write_audit(&rows).await.unwrap(), 0, "still idempotent on event_id");
    // The rule the rows name is still protected.
    let cli = rusqlite::Connection::open(dir.path().join("mutt.db")).unwrap();
    cli.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    assert!(cli.execute("DELETE FROM alert_rules WHERE id = ?1", [id]).is_err(), "ON DELETE RESTRICT");
}

#[tokio::test]
async fn rules_version_goes_up_with_every_rule_host_or_team_change() {
    let (store, _dir) = store().await;
    let v0 = store.rules_version().await.unwrap();
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let v1 = store.rules_version().await.unwrap();
    assert!(v1 > v0);
    store.add_development_host("dev-1").await.unwrap();
    let v2 = store.rules_version().await.unwrap();
    assert!(v2 > v1);
    store.set_device_team("router1", "NetOps").await.unwrap();
    let v3 = store.rules_version().await.unwrap();
    assert!(v3 > v2);
    // No-ops change nothing, so they do not make alerters reload.
    store.add_development_host("dev-1").await.unwrap();
    store.set_device_team("router1", "NetOps").await.unwrap();
    assert_eq!(store.rules_version().await.unwrap(), v3);
    store.set_device_team("router1", "Security").await.unwrap();
    let v4 = store.rules_version().await.unwrap();
    assert!(v4 > v3);
    // Audit rows are not rules.
    store.write_audit(&[audit(id, "2026-01-01T00:00:00Z")]).await.unwrap();
    assert_eq!(store.rules_version().await.unwrap(), v4);
}

#[tokio::test]
async fn changes_by_another_process_bump_the_rules_version() {
    let (store, dir) = store().await;
    let path = dir.path().join("mutt.db");
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    store.set_device_team("router1", "NetOps").await.unwrap();
    let before = store.rules_version().await.unwrap();

    // A second handle on the file, as `muttd rules import` in another process would open.
    let other = Database::open(&path, DbOptions::default()).unwrap();
    other.write(move |c| c.execute("UPDATE alert_rules SET is_active = 0 WHERE id = ?1", [id])).await.unwrap();
    let after_rule = store.rules_version().await.unwrap();
    assert!(after_rule > before);
    other.write(|c| c.execute("INSERT INTO development_hosts (hostname) VALUES ('dev-9')", [])).await.unwrap();
    let after_host = store.rules_version().await.unwrap();
    assert!(after_host > after_rule);

    // And a plain connection, as the sqlite3 CLI would use.
    let cli = rusqlite::Connection::open(&path).unwrap();
    cli.execute("DELETE FROM device_teams", []).unwrap();
    drop(cli);
    assert!(store.rules_version().await.unwrap() > after_host);

    let snap = store.load_rules().await.unwrap();
    assert!(snap.rules.is_empty());
    assert!(snap.development_hosts.contains("dev-9"));
    assert!(snap.device_teams.is_empty());
}

#[tokio::test]
async fn unwritable_path_is_a_clear_config_error() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the directory should be (permissions would not stop root).
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("mutt.db");
    let err = SqliteStore::open(&bad, DbOptions::default()).await.err().expect("opening must fail");
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    assert!(err.to_string().contains(&*bad.to_string_lossy()), "names the path: {err}");

    // A directory where the file should be.
    let err = SqliteStore::open(dir.path(), DbOptions::default()).await.err().expect("opening must fail");
    assert!(matches!(err, StoreError::Config(_)), "{err}");
    assert!(err.to_string().contains(&*dir.path().to_string_lossy()), "names the path: {err}");
}

#[tokio::test]
async fn reopening_the_file_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/mutt.db");
    let (rules, version) = {
        let store = open(&path).await;
        let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
        store.add_development_host("dev-1").await.unwrap();
        store.set_device_team("router1", "NetOps").await.unwrap();
        let rows: Vec<_> = (0..10).map(|_| audit(id, "2026-01-01T00:00:00Z")).collect();
        assert_eq!(store.write_audit(&rows).await.unwrap(), 10);
        (store.list_rules().await.unwrap(), store.rules_version().await.unwrap())
    };
    let store = open(&path).await;
    assert_eq!(store.list_rules().await.unwrap(), rules);
    assert_eq!(store.rules_version().await.unwrap(), version);
    let snap = store.load_rules().await.unwrap();
    assert!(snap.development_hosts.contains("dev-1"));
    assert_eq!(snap.device_teams.get("router1").map(String::as_str), Some("NetOps"));
    assert_eq!(store.audit_count().await.unwrap(), (10, 10));
}

#[tokio::test]
async fn audit_timestamps_are_utc_text_that_sorts() {
    let (store, _dir) = store().await;
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    let rows = vec![
        audit(id, "2031-01-01T00:00:00Z"),
        audit(id, "2019-03-04T05:06:07.123456Z"),
        audit(id, "2026-06-01T12:00:00+02:00"),
    ];
    assert_eq!(store.write_audit(&rows).await.unwrap(), 3);
    assert_eq!(store.audit_count().await.unwrap(), (3, 3));
    let stored: Vec<String> = store
        .database()
        .read(|c| {
            let mut s = c.prepare("SELECT event_timestamp FROM event_audit_log ORDER BY event_timestamp")?;
            s.query_map([], |r| r.get(0))?.collect()
        })
        .await
        .unwrap();
    assert_eq!(stored, ["2019-03-04T05:06:07.123Z", "2026-06-01T10:00:00.000Z", "2031-01-01T00:00:00.000Z"]);
}

#[tokio::test]
async fn bad_rows_from_outside_are_rejected_not_a_panic() {
    let (store, dir) = store().await;
    store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    // Someone bypasses the CHECK constraints with the sqlite3 CLI.
    let cli = rusqlite::Connection::open(dir.path().join("mutt.db")).unwrap();
    cli.execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE alert_rules SET match_type = 'glob';").unwrap();
    drop(cli);
    let err = store.load_rules().await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
    assert!(err.to_string().contains("glob"), "{err}");
}

#[tokio::test]
async fn unmigrated_database_says_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("mutt.db"), DbOptions::default()).await.unwrap();
    store.ping().await.unwrap();
    let err = store.load_rules().await.unwrap_err();
    assert!(err.to_string().contains("muttd migrate"), "{err}");
    assert!(matches!(err, StoreError::Failed(_)), "not an outage to wait for: {err}");
}

/// What the alerter waits for (the file busy) and what it counts against a message (a
/// trigger's refusal, a missing table).
#[tokio::test]
async fn only_the_files_state_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutt.db");
    let options = DbOptions { busy_timeout: std::time::Duration::from_millis(50), ..DbOptions::default() };
    let store = SqliteStore::open(&path, options).await.unwrap();
    store.migrate().await.unwrap();
    let id = store.create_rule(&rule("CRITICAL", 10)).await.unwrap();
    // A DBA's trigger, added with the sqlite3 CLI.
    let cli = rusqlite::Connection::open(&path).unwrap();
    cli.execute_batch(
        "CREATE TRIGGER refuse_quarantined BEFORE INSERT ON event_audit_log WHEN NEW.hostname = 'quarantined'
         BEGIN SELECT RAISE(ABORT, 'quarantined by a DBA trigger'); END;",
    )
    .unwrap();
    let quarantined = mutt_store::AuditRecord { hostname: "quarantined".into(), ..audit(id, "2026-01-01T00:00:00Z") };
    let err = store.write_audit(&[quarantined]).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
    assert!(err.to_string().contains("quarantined by a DBA trigger"), "the database's message: {err}");

    // Another process holds the write lock past the busy timeout: wait and retry.
    cli.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store.write_audit(&[audit(id, "2026-01-01T00:00:00Z")]).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    cli.execute_batch("COMMIT").unwrap();
    assert_eq!(store.write_audit(&[audit(id, "2026-01-01T00:00:00Z")]).await.unwrap(), 1);

    // A table dropped by hand is no outage, nor these rows' fault.
    cli.execute_batch("DROP TABLE event_audit_log").unwrap();
    let err = store.write_audit(&[audit(id, "2026-01-01T00:00:00Z")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Failed(_)), "{err}");
    assert!(err.to_string().contains("muttd migrate"), "{err}");
}
