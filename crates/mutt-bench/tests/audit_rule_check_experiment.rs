//! The experiment `sql/audit_rule_check_per_statement.sql` (issue 21): the audit table's
//! reference to `alert_rules` checked per statement by triggers instead of per row by the
//! foreign key. The product keeps the foreign key; these tests keep the experiment honest, so
//! that the figures `mutt-audit-bench --rule-check statement` prints are for something that
//! refuses what the foreign key refuses, including under the two races the foreign key covers
//! (a delete while a batch naming the rule is uncommitted, and a batch while a delete of its
//! rule is uncommitted). Real PostgreSQL, a fresh database per test, muttd's migrations and then
//! the experiment.

use chrono::{DateTime, Utc};
use mutt_store::manage::{Manage, RuleDeletion};
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_store::{Store, StoreError};
use mutt_testapp::fixtures::{audit_row, rule};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

const EXPERIMENT: &str = include_str!("../sql/audit_rule_check_per_statement.sql");

async fn store() -> (PgStore, String) {
    let url = mutt_testkit::fresh_database().await;
    let store = PgStore::new(&PostgresConfig { url: url.clone(), password: None, pool_size: 4 }).expect("store");
    store.migrate().await.expect("migrations apply");
    client(&url).await.batch_execute(EXPERIMENT).await.expect("the experiment applies");
    (store, url)
}

async fn client(url: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

fn insert_sql(table: &str, at: DateTime<Utc>, rule: i32) -> String {
    format!(
        "INSERT INTO {table} (event_timestamp, hostname, matched_rule_id, handling_decision) \
         VALUES ('{}', 'router1', {rule}, 'Ticket_only')",
        at.to_rfc3339()
    )
}

fn assert_fk_refusal(e: &tokio_postgres::Error, what: &str) {
    let db = e.as_db_error().unwrap_or_else(|| panic!("{what}: not a server error: {e:?}"));
    assert_eq!(db.code(), &SqlState::FOREIGN_KEY_VIOLATION, "{what}: {db:?}");
    assert_eq!(db.constraint(), Some("fk_event_audit_matched_rule"), "{what}: the foreign key's name");
}

/// Waits (bounded) until a backend of this database waits for a lock: the statement under
/// test is blocked behind the other transaction.
async fn until_a_statement_waits_for_a_lock(observer: &Client) {
    for _ in 0..400 {
        let waiting = count(
            observer,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await;
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no statement waited for a lock");
}

#[tokio::test]
async fn a_rule_that_is_not_there_is_refused_through_every_table_and_statement() {
    let (store, url) = store().await;
    let db = client(&url).await;
    let rule_id = store.create_rule(&rule("LINK-DOWN")).await.expect("rule");
    store.ensure_partitions(1).await.expect("partitions");
    let month = format!("event_audit_log_{}", Utc::now().format("%Y_%m"));
    assert_eq!(
        count(&db, "SELECT count(*) FROM pg_constraint WHERE conname = 'fk_event_audit_matched_rule'").await,
        0,
        "the experiment checks without the foreign key"
    );
    let long_ago: DateTime<Utc> = "1999-01-01T00:00:00Z".parse().expect("time");

    // The store's own writes (COPY, and the UNNEST path a redelivered batch takes).
    let err = store
        .write_audit(&[audit_row(rule_id), audit_row(424242), audit_row(rule_id)])
        .await
        .expect_err("unknown rule");
    assert!(matches!(&err, StoreError::Rejected(m) if m.contains("fk_event_audit_matched_rule")), "{err:?}");
    let landed = audit_row(rule_id);
    assert_eq!(store.write_audit(std::slice::from_ref(&landed)).await.expect("known rule"), 1);
    let err = store.write_audit(&[landed, audit_row(424242)]).await.expect_err("unknown rule in a redelivery");
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");

    // Plain SQL naming the partitioned table, the DEFAULT partition or a monthly one directly.
    for (table, at) in
        [("event_audit_log", Utc::now()), ("event_audit_log_default", long_ago), (month.as_str(), Utc::now())]
    {
        let e = db.execute(&insert_sql(table, at, 424242), &[]).await.expect_err("unknown rule");
        assert_fk_refusal(&e, table);
        db.execute(&insert_sql(table, at, rule_id), &[]).await.unwrap_or_else(|e| panic!("{table}: {e:?}"));
    }
    // An UPDATE that points rows at a rule that is not there.
    let e = db
        .execute("UPDATE event_audit_log SET matched_rule_id = 424242 WHERE hostname = 'router1'", &[])
        .await
        .expect_err("update to an unknown rule");
    assert_fk_refusal(&e, "update");
    assert_eq!(count(&db, "SELECT count(*) FROM event_audit_log WHERE matched_rule_id = 424242").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM event_audit_log").await, 4);
}

#[tokio::test]
async fn a_rule_in_use_is_not_deleted_renumbered_or_truncated_and_an_unused_one_is() {
    let (store, url) = store().await;
    let db = client(&url).await;
    let used = store.create_rule(&rule("LINK-DOWN")).await.expect("rule");
    let unused = store.create_rule(&rule("FAN-FAIL")).await.expect("rule");
    store.write_audit(&[audit_row(used)]).await.expect("audit");

    let e = db.execute("DELETE FROM alert_rules WHERE id = $1", &[&used]).await.expect_err("delete");
    assert_fk_refusal(&e, "delete");
    let e = db.execute("UPDATE alert_rules SET id = 9999 WHERE id = $1", &[&used]).await.expect_err("renumber");
    assert_fk_refusal(&e, "renumber");
    let e = db.batch_execute("TRUNCATE alert_rules").await.expect_err("truncate");
    assert_eq!(e.code(), Some(&SqlState::FOREIGN_KEY_VIOLATION), "{e:?}");
    // Other changes to the rule are not references' business.
    db.execute("UPDATE alert_rules SET priority = 5, id = id WHERE id = $1", &[&used]).await.expect("update");
    assert!(matches!(store.delete_rule(used).await.expect("delete_rule"), RuleDeletion::Referenced(1)));

    assert!(matches!(store.delete_rule(unused).await.expect("delete_rule"), RuleDeletion::Deleted(_)));
    assert_eq!(count(&db, "SELECT count(*) FROM alert_rules").await, 1);

    // Once the audit rows are gone (retention), the rule can go too.
    db.batch_execute("DELETE FROM event_audit_log").await.expect("retention");
    db.execute("DELETE FROM alert_rules WHERE id = $1", &[&used]).await.expect("delete unreferenced");
    db.batch_execute("TRUNCATE alert_rules").await.expect("truncate with no audit rows");
}

/// The foreign key's first race: a delete while a batch naming the rule is not yet committed.
/// The batch holds the rule row's key-share lock, so the delete waits for its commit, then sees
/// its rows and refuses.
#[tokio::test]
async fn a_delete_waits_for_an_uncommitted_batch_naming_its_rule_then_is_refused() {
    let (store, url) = store().await;
    let rule_id = store.create_rule(&rule("LINK-DOWN")).await.expect("rule");
    let writer = client(&url).await;
    let deleter = client(&url).await;
    let observer = client(&url).await;

    writer.batch_execute("BEGIN").await.expect("begin");
    writer.execute(&insert_sql("event_audit_log", Utc::now(), rule_id), &[]).await.expect("uncommitted row");
    let delete = tokio::spawn(async move {
        let r = deleter.execute("DELETE FROM alert_rules WHERE id = $1", &[&rule_id]).await;
        (deleter, r)
    });
    until_a_statement_waits_for_a_lock(&observer).await;
    writer.batch_execute("COMMIT").await.expect("commit");

    let (_deleter, r) = delete.await.expect("delete task");
    assert_fk_refusal(&r.expect_err("the delete must see the committed row"), "delete after commit");
    assert_eq!(count(&observer, "SELECT count(*) FROM alert_rules").await, 1);
    assert_eq!(
        count(&observer, "SELECT count(*) FROM event_audit_log a JOIN alert_rules r ON r.id = a.matched_rule_id").await,
        1,
        "the row names a rule that is there"
    );
}

/// The second race: a batch while a delete of its rule is not yet committed. The batch's lock
/// waits for the delete; once it commits, the rule is gone and the whole batch is refused.
#[tokio::test]
async fn a_batch_waits_for_an_uncommitted_delete_of_its_rule_then_is_refused() {
    let (store, url) = store().await;
    let doomed = store.create_rule(&rule("LINK-DOWN")).await.expect("rule");
    let kept = store.create_rule(&rule("FAN-FAIL")).await.expect("rule");
    let deleter = client(&url).await;
    let observer = client(&url).await;
    let writer = client(&url).await;

    deleter.batch_execute("BEGIN").await.expect("begin");
    deleter.execute("DELETE FROM alert_rules WHERE id = $1", &[&doomed]).await.expect("uncommitted delete");
    let sql = format!(
        "INSERT INTO event_audit_log (event_timestamp, hostname, matched_rule_id, handling_decision) \
         SELECT now(), 'router1', r, 'Ticket_only' FROM unnest(ARRAY[{kept}, {doomed}, {kept}]) AS r"
    );
    let write = tokio::spawn(async move { writer.execute(&sql, &[]).await });
    until_a_statement_waits_for_a_lock(&observer).await;
    deleter.batch_execute("COMMIT").await.expect("commit");

    assert_fk_refusal(&write.await.expect("write task").expect_err("the batch names a deleted rule"), "batch");
    assert_eq!(count(&observer, "SELECT count(*) FROM event_audit_log").await, 0, "nothing of the batch landed");

    // The same through the store while another delete is uncommitted, and a rollback instead:
    // the batch waits and then lands.
    deleter.batch_execute("BEGIN").await.expect("begin");
    deleter.execute("DELETE FROM alert_rules WHERE id = $1", &[&kept]).await.expect("uncommitted delete");
    let rows = [audit_row(kept), audit_row(kept)];
    let write = tokio::spawn(async move { store.write_audit(&rows).await });
    until_a_statement_waits_for_a_lock(&observer).await;
    assert!(!write.is_finished(), "the batch waits for the delete");
    deleter.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(write.await.expect("write task").expect("the rule stayed"), 2);
}

/// Under REPEATABLE READ a delete's snapshot would miss rows committed while it waited (the
/// foreign key has a private cross-check for that): the delete side refuses such isolation
/// levels with a serialization failure. (Adopting the experiment would mean muttd's own rule
/// delete asks for READ COMMITTED explicitly, for sites whose default is stricter.)
#[tokio::test]
async fn deletes_need_read_committed() {
    let (store, url) = store().await;
    let db = client(&url).await;
    let rule_id = store.create_rule(&rule("LINK-DOWN")).await.expect("rule");
    for level in ["REPEATABLE READ", "SERIALIZABLE"] {
        db.batch_execute(&format!("BEGIN ISOLATION LEVEL {level}")).await.expect("begin");
        let e = db.execute("DELETE FROM alert_rules WHERE id = $1", &[&rule_id]).await.expect_err(level);
        assert_eq!(e.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE), "{level}: {e:?}");
        db.batch_execute("ROLLBACK").await.expect("rollback");
    }
    db.execute("DELETE FROM alert_rules WHERE id = $1", &[&rule_id]).await.expect("read committed");
    assert_eq!(count(&db, "SELECT count(*) FROM alert_rules").await, 0);
}
