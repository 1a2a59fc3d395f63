//! Silences in the store, on both backends: create (validated), read back, list by state at a
//! given time, expire early (kept afterwards), and `silenced_by` on audit rows.

use chrono::{DateTime, Duration, Utc, Weekday};
use mutt_core::silence::{Matcher, NewSilence, WeeklyWindow};
use mutt_store::silences::{Expiry, SilenceFilter};
use mutt_store::{AuditRecord, Store, StoreError};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn one_off(host: &str, start: &str, end: &str) -> NewSilence {
    NewSilence {
        matcher: Matcher { host: Some(host.into()), ..Default::default() },
        starts_at: t(start),
        ends_at: Some(t(end)),
        window: None,
        created_by: "ops".into(),
        comment: "router upgrade".into(),
    }
}

fn rule() -> mutt_store::NewRule {
    serde_json::from_value(serde_json::json!({
        "match_string": "x", "trap_oid": null, "prod_handling": "Page_only", "dev_handling": "Ignore",
        "team_assignment": "NETO"
    }))
    .unwrap()
}

async fn exercise(store: &dyn Store) {
    let a = store.create_silence(&one_off("router1", "2027-01-01T10:00:00Z", "2027-01-01T12:00:00Z")).await.unwrap();
    let window = NewSilence {
        matcher: Matcher { host: Some("core-*".into()), rule_id: Some(7), ..Default::default() },
        starts_at: t("2027-01-01T00:00:00Z"),
        ends_at: None,
        window: Some(WeeklyWindow {
            days: vec![Weekday::Sun, Weekday::Sat],
            start: "02:00".into(),
            duration_minutes: 120,
            time_zone: "Europe/Berlin".into(),
        }),
        created_by: "ops".into(),
        comment: "weekly maintenance".into(),
    };
    let b = store.create_silence(&window).await.unwrap();
    assert!(b > a);

    let got = store.get_silence(b).await.unwrap().unwrap();
    assert_eq!(got.spec, window);
    assert_eq!(got.expired_at, None);
    assert!(store.get_silence(b + 100).await.unwrap().is_none());

    let bad = NewSilence { matcher: Matcher::default(), ..window.clone() };
    let err = store.create_silence(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)) && err.to_string().contains("matcher"), "{err}");

    let ids = |v: Vec<mutt_core::silence::Silence>| v.iter().map(|s| s.id).collect::<Vec<_>>();
    let at = t("2027-01-01T11:00:00Z");
    assert_eq!(ids(store.list_silences(SilenceFilter::Active, at).await.unwrap()), vec![b, a]);
    // After the one-off's end it is expired; the open-ended window stays active.
    let later = t("2027-01-01T12:00:00Z");
    assert_eq!(ids(store.list_silences(SilenceFilter::Active, later).await.unwrap()), vec![b]);
    assert_eq!(ids(store.list_silences(SilenceFilter::Expired, later).await.unwrap()), vec![a]);

    // Expired early: kept, with who and when.
    let when = at + Duration::minutes(1);
    let Expiry::Expired(s) = store.expire_silence(b, "alice", when).await.unwrap() else { panic!("not expired") };
    assert_eq!((s.expired_at, s.expired_by.as_deref()), (Some(when), Some("alice")));
    assert!(matches!(store.expire_silence(b, "bob", when).await.unwrap(), Expiry::AlreadyExpired(_)));
    assert!(matches!(store.expire_silence(a, "bob", later).await.unwrap(), Expiry::AlreadyExpired(_)));
    assert_eq!(store.expire_silence(9999, "bob", later).await.unwrap(), Expiry::NotFound);
    assert_eq!(ids(store.list_silences(SilenceFilter::Active, when).await.unwrap()), vec![a]);
    assert_eq!(ids(store.list_silences(SilenceFilter::All, when).await.unwrap()), vec![b, a]);

    // The audit column takes the silence id.
    let rule = store.create_rule(&rule()).await.unwrap();
    let row = |n: u8, silenced_by: Option<i64>| AuditRecord {
        event_id: mutt_core::EventId::new(),
        event_timestamp: Utc::now(),
        hostname: format!("h{n}"),
        matched_rule_id: rule,
        handling_decision: "Page_only".into(),
        forwarded_to_moog: silenced_by.is_none(),
        raw_message: "{}".into(),
        flap_suppressed: false,
        silenced_by,
    };
    assert_eq!(store.write_audit(&[row(1, Some(a)), row(2, None)]).await.unwrap(), 2);
    // The audit search shows it.
    let filter = mutt_store::manage::EventAuditFilter { limit: 10, ..Default::default() };
    let mut found: Vec<(String, Option<i64>)> = store
        .search_event_audit(&filter)
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| (r.hostname, r.silenced_by))
        .collect();
    found.sort();
    assert_eq!(found, [("h1".to_owned(), Some(a)), ("h2".to_owned(), None)]);
}

#[tokio::test]
async fn silences_on_postgres() {
    use mutt_store::postgres::{PgStore, PostgresConfig};
    let url = mutt_testkit::fresh_database().await;
    let store = PgStore::new(&PostgresConfig { url, password: None, pool_size: 2 }).unwrap();
    store.migrate().await.expect("migrations apply");
    exercise(&store).await;
}

#[tokio::test]
async fn silences_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutt.db");
    let store = mutt_store::sqlite::SqliteStore::open(&path, mutt_sqlite::DbOptions::default()).await.unwrap();
    store.migrate().await.expect("migrations apply");
    exercise(&store).await;
}
