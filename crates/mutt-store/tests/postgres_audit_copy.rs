//! The PostgreSQL audit write by binary COPY (issue 21) against the UNNEST insert it replaced:
//! idempotent on the event id, a refused batch reported as before (same error class and
//! message) and leaving nothing behind on its connection, the same rows written either way.

use chrono::{DateTime, Utc};
use mutt_core::EventId;
use mutt_store::postgres::{AuditPath, PgStore, PostgresConfig};
use mutt_store::{AuditRecord, NewRule, Store, StoreError};

const PATHS: [AuditPath; 2] = [AuditPath::Copy, AuditPath::Unnest];

/// A migrated database and a store on it with one connection (so that every batch reuses the
/// connection, its temporary table and its statements), writing audit rows the `path` way.
async fn store(path: AuditPath) -> (PgStore, tokio_postgres::Client, i32) {
    let url = mutt_testkit::fresh_database().await;
    let store =
        PgStore::new(&PostgresConfig { url: url.clone(), password: None, pool_size: 1 }).unwrap().with_audit_path(path);
    store.migrate().await.unwrap();
    let rule = NewRule {
        match_string: Some("CRITICAL".into()),
        trap_oid: None,
        syslog_severity: None,
        match_type: mutt_core::MatchType::Contains,
        priority: 10,
        prod_handling: "Page_and_ticket".into(),
        dev_handling: "Ignore".into(),
        team_assignment: "NETO".into(),
        is_active: true,
        flap_threshold: None,
        flap_window_secs: None,
    };
    let id = store.create_rule(&rule).await.unwrap();
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    (store, c, id)
}

fn row(rule: i32, host: &str, n: usize) -> AuditRecord {
    AuditRecord {
        event_id: EventId::new(),
        event_timestamp: "2026-12-02T08:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(n as i64),
        hostname: host.into(),
        matched_rule_id: rule,
        handling_decision: if n.is_multiple_of(2) { "Page_and_ticket" } else { "Ignore" }.into(),
        forwarded_to_moog: n.is_multiple_of(2),
        raw_message: format!(r#"{{"hostname":"{host}","message":"link {n} down","quote":"it's \"here\""}}"#),
        silenced_by: n.is_multiple_of(3).then_some(n as i64),
        flap_suppressed: n.is_multiple_of(5),
    }
}

async fn count(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM event_audit_log", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn the_same_batch_twice_writes_one_row_per_event() {
    for path in PATHS {
        let (store, c, rule) = store(path).await;
        let mut rows: Vec<AuditRecord> = (0..50).map(|n| row(rule, "router1", n)).collect();
        assert_eq!(store.write_audit(&rows).await.unwrap(), 50, "{path:?}");
        assert_eq!(store.write_audit(&rows).await.unwrap(), 0, "{path:?}: a redelivered batch writes nothing");
        // A batch carrying one event twice, plus new ones: each new event once.
        let again = rows[7].clone();
        rows.extend((50..60).map(|n| row(rule, "router1", n)));
        rows.push(again);
        assert_eq!(store.write_audit(&rows).await.unwrap(), 10, "{path:?}");
        assert_eq!(count(&c).await, 60, "{path:?}");
        let distinct: i64 =
            c.query_one("SELECT count(DISTINCT event_id) FROM event_audit_log", &[]).await.unwrap().get(0);
        assert_eq!(distinct, 60, "{path:?}");
    }
}

/// Both paths write the same columns: what COPY wrote reads back as UNNEST's rows do.
#[tokio::test]
async fn copy_writes_every_column_as_unnest_does() {
    let mut written = Vec::new();
    for path in PATHS {
        let (store, c, rule) = store(path).await;
        let rows: Vec<AuditRecord> = (0..20).map(|n| row(rule, &format!("host-{n}"), n)).collect();
        assert_eq!(store.write_audit(&rows).await.unwrap(), 20);
        let read = c
            .query(
                "SELECT event_id, event_timestamp, hostname, matched_rule_id, handling_decision, forwarded_to_moog,
                        raw_message, flap_suppressed, silenced_by FROM event_audit_log ORDER BY id",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(read.len(), 20);
        for (r, w) in read.iter().zip(&rows) {
            assert_eq!(r.get::<_, uuid::Uuid>(0), w.event_id.as_uuid(), "{path:?}: rows in batch order");
            assert_eq!(r.get::<_, DateTime<Utc>>(1), w.event_timestamp);
            assert_eq!(r.get::<_, String>(2), w.hostname);
            assert_eq!(r.get::<_, i32>(3), w.matched_rule_id);
            assert_eq!(r.get::<_, String>(4), w.handling_decision);
            assert_eq!(r.get::<_, bool>(5), w.forwarded_to_moog);
            assert_eq!(r.get::<_, Option<String>>(6).as_deref(), Some(w.raw_message.as_str()));
            assert_eq!(r.get::<_, bool>(7), w.flap_suppressed);
            assert_eq!(r.get::<_, Option<i64>>(8), w.silenced_by);
        }
        written.push(rows.len());
    }
    assert_eq!(written, [20, 20]);
}

/// A refused row refuses its batch with the same class and message on both paths (the
/// alerter then splits the batch to find it), and the failed batch leaves nothing on the
/// connection: the next batch writes exactly its own rows.
#[tokio::test]
async fn a_refused_row_is_reported_as_before_and_leaves_nothing_behind() {
    let mut messages = Vec::new();
    for path in PATHS {
        let (store, c, rule) = store(path).await;
        c.batch_execute(
            "CREATE FUNCTION refuse_quarantined() RETURNS trigger AS $$
             BEGIN
                 IF NEW.hostname = 'quarantined' THEN RAISE EXCEPTION 'quarantined by a DBA trigger'; END IF;
                 RETURN NEW;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse_quarantined BEFORE INSERT ON event_audit_log
                 FOR EACH ROW EXECUTE FUNCTION refuse_quarantined();",
        )
        .await
        .unwrap();
        let mut rows: Vec<AuditRecord> = (0..10).map(|n| row(rule, "router1", n)).collect();
        rows[4].hostname = "quarantined".into();
        let e = store.write_audit(&rows).await.unwrap_err();
        assert!(matches!(e, StoreError::Rejected(_)), "{path:?}: {e}");
        assert!(e.to_string().contains("quarantined by a DBA trigger"), "{path:?}: {e}");
        messages.push(e.to_string());
        // Too long for VARCHAR(255): refused by the INSERT (22001), not by the COPY.
        let long = vec![AuditRecord { hostname: "h".repeat(300), ..row(rule, "x", 1) }];
        let e = store.write_audit(&long).await.unwrap_err();
        assert!(matches!(e, StoreError::Rejected(_)) && e.to_string().contains("too long"), "{path:?}: {e}");
        // A NUL byte is no PostgreSQL text: refused while the rows are decoded.
        let nul = vec![AuditRecord { raw_message: "a\0b".into(), ..row(rule, "x", 2) }];
        let e = store.write_audit(&nul).await.unwrap_err();
        assert!(matches!(e, StoreError::Rejected(_)), "{path:?}: {e}");
        assert_eq!(count(&c).await, 0, "{path:?}: nothing of the refused batches");
        // The halves as the alerter splits them: the good rows go in, the refused one stays out.
        assert_eq!(store.write_audit(&rows[..4]).await.unwrap(), 4, "{path:?}");
        assert_eq!(store.write_audit(&rows[5..]).await.unwrap(), 5, "{path:?}");
        assert!(store.write_audit(&rows[4..5]).await.is_err());
        assert_eq!(count(&c).await, 9, "{path:?}");
    }
    assert_eq!(messages[0], messages[1], "the same report on both paths");
}

/// Without the migrations the COPY path says so as the UNNEST path did (not an outage).
#[tokio::test]
async fn an_unmigrated_database_is_a_failure_naming_the_migration() {
    for path in PATHS {
        let url = mutt_testkit::fresh_database().await;
        let store = PgStore::new(&PostgresConfig { url, password: None, pool_size: 1 }).unwrap().with_audit_path(path);
        let e = store.write_audit(&[row(1, "router1", 1)]).await.unwrap_err();
        assert!(matches!(e, StoreError::Failed(_)) && e.to_string().contains("migrate"), "{path:?}: {e}");
    }
}
