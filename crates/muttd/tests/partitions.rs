//! `muttd partitions list|ensure|drop-older-than` and `muttd retention` as processes on both
//! backends: PostgreSQL lists real partitions with rows and size and drops an expired one
//! whole; the embedded file reports its rows by month and deletes expired ones in chunks. Dry
//! runs change nothing; a removal without --yes is refused. `muttd retention` follows the
//! dynamic retention keys and trims the DLQs by age.

mod common;

use chrono::{Datelike, Utc};
use mutt_core::EventId;
use mutt_queue::dlq::Dlq;
use mutt_store::AuditRecord;
use mutt_store::partitions::{AuditLifecycle, Month};
use mutt_testapp::{BackendKind, Site, both_backends};
use std::path::Path;
use std::process::Output;

fn muttd(site: &Site, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = common::on_site(site, dir);
    cmd.env("MUTT_RETENTION__BATCH_SIZE", "2");
    cmd.args(args).output().expect("run muttd")
}

fn ok(site: &Site, dir: &Path, args: &[&str]) -> String {
    let out = muttd(site, dir, args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "muttd {args:?} failed: {text}");
    text
}

fn refused(site: &Site, dir: &Path, args: &[&str]) -> String {
    let out = muttd(site, dir, args);
    assert!(!out.status.success(), "muttd {args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes 3 audit rows in March 2020 (in a partition of their own on PostgreSQL), 1 two months
/// ago (in DEFAULT: no partition) and 2 now.
async fn seed(site: &Site) {
    let backend = site.open().await;
    let store = backend.store.clone();
    let rule = store.create_rule(&mutt_testapp::fixtures::rule("CRITICAL")).await.unwrap();
    let lc: &dyn AuditLifecycle = store.as_ref();
    lc.ensure_partitions_at("2020-03-10T00:00:00Z".parse().unwrap(), 0).await.unwrap();
    let row = |at: chrono::DateTime<Utc>| AuditRecord {
        event_id: EventId::new(),
        event_timestamp: at,
        hostname: "router1".into(),
        matched_rule_id: rule,
        handling_decision: "Page_and_ticket".into(),
        forwarded_to_moog: true,
        raw_message: "{}".into(),
        silenced_by: None,
        flap_suppressed: false,
    };
    let old = "2020-03-15T12:00:00Z".parse().unwrap();
    let earlier = Month::of(Utc::now()).plus(-2).start() + chrono::Duration::days(20);
    let rows: Vec<_> = (0..3).map(|_| row(old)).chain([row(earlier)]).chain((0..2).map(|_| row(Utc::now()))).collect();
    assert_eq!(store.write_audit(&rows).await.unwrap(), 6);
}

/// Two entries in the alerter DLQ: one failed 40 days ago, one now.
async fn seed_dlq(site: &Site) {
    let backend = site.open().await;
    let entry = |ago: i64| {
        let failed_at = (Utc::now() - chrono::Duration::days(ago)).to_rfc3339();
        serde_json::json!({"hostname": "h", "message": "m", "_dlq_reason": "shed", "failed_at": failed_at})
            .to_string()
            .into_bytes()
    };
    backend.queue.dead_letters().dlq_push(Dlq::Alerter, &[entry(40), entry(0)]).await.unwrap();
}

async fn dlq_depth(site: &Site) -> u64 {
    site.open().await.queue.dead_letters().dlq_depth(Dlq::Alerter).await.unwrap()
}

async fn audit_rows(site: &Site) -> u64 {
    let backend = site.open().await;
    let lc: &dyn AuditLifecycle = backend.store.as_ref();
    lc.list_partitions(true).await.unwrap().iter().filter_map(|p| p.rows).sum()
}

async fn partitions_commands_on_both_backends(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = (&site, dir.path());
    ok(s, d, &["migrate"]);
    seed(s).await;
    let now = Month::of(Utc::now());
    let pg = kind == BackendKind::RedisPostgres;

    let list = ok(s, d, &["partitions", "list"]);
    if pg {
        for want in [now.partition_name(), now.plus(3).partition_name(), "event_audit_log_2020_03".into()] {
            assert!(list.contains(&want), "{want} in:\n{list}");
        }
        assert!(list.lines().any(|l| l.starts_with("event_audit_log_2020_03") && l.contains(" 3 ")), "{list}");
        assert!(list.lines().any(|l| l.starts_with("event_audit_log_default") && l.contains(" 1 ")), "{list}");
        assert!(list.contains("ensure --from YYYY-MM"), "the note on rows in DEFAULT: {list}");
    } else {
        assert!(list.contains("SQLite has no partitions"), "{list}");
        assert!(list.lines().any(|l| l.starts_with("2020-03") && l.trim_end().ends_with(" 3")), "{list}");
        assert!(list.contains(&format!("{now}")), "{list}");
    }
    let from = now.plus(-2).to_string();
    let ensure = ok(s, d, &["partitions", "ensure", "--months", "5", "--from", &from]);
    if pg {
        for m in [now.plus(-2), now.plus(-1), now.plus(5)] {
            assert!(ensure.contains(&format!("created {}", m.partition_name())), "{m}: {ensure}");
        }
        assert!(ensure.contains(&format!("partitions present from {from} to {}", now.plus(5))), "{ensure}");
        let list = ok(s, d, &["partitions", "list"]);
        let earlier = now.plus(-2).partition_name();
        assert!(list.lines().any(|l| l.starts_with(&earlier) && l.contains(" 1 ")), "moved out of DEFAULT: {list}");
        assert!(list.lines().any(|l| l.starts_with("event_audit_log_default") && l.contains(" 0 ")), "{list}");
    } else {
        assert!(ensure.contains("nothing to create"), "{ensure}");
    }

    // Removing needs --yes; a dry run and a refusal change nothing.
    let e = refused(s, d, &["partitions", "drop-older-than", "2021-01"]);
    assert!(e.contains("--yes"), "{e}");
    let future = now.plus(1).to_string();
    let e = refused(s, d, &["partitions", "drop-older-than", &future, "--yes"]);
    assert!(e.contains("after the current month"), "{e}");
    let dry = ok(s, d, &["partitions", "drop-older-than", "2021-01", "--dry-run"]);
    assert!(dry.contains("dry run: nothing was changed") && dry.contains("would remove 3 rows"), "{dry}");
    assert_eq!(pg, dry.contains("would drop partition event_audit_log_2020_03 (3 rows"), "{dry}");
    assert_eq!(audit_rows(s).await, 6);
    let prom = d.join("retention.prom");
    let retention_dry = ok(s, d, &["retention", "--dry-run", "--metrics-file", prom.to_str().unwrap()]);
    assert!(retention_dry.contains("would remove 3 rows"), "{retention_dry}");
    assert_eq!(audit_rows(s).await, 6);
    // The original's textfile: a dry run deleted nothing.
    let text = std::fs::read_to_string(&prom).unwrap();
    for line in [
        "# TYPE mutt_retention_cleanup_records_deleted_total counter",
        r#"mutt_retention_cleanup_records_deleted_total{type="event_audit"} 0"#,
        r#"mutt_retention_policy_days{type="event_audit"} 90"#,
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with("mutt_retention_cleanup_last_run_timestamp_seconds ")), "{text}");

    // A dynamic event_retention_days (spec §7.3) wins over the static 90 days: the row of two
    // months ago expires too. The DLQs are trimmed by age as well (30 days by default).
    seed_dlq(s).await;
    ok(s, d, &["config", "set", "event_retention_days", "30", "--reason", "test"]);
    let dry = ok(s, d, &["retention", "--dry-run", "--metrics-file", prom.to_str().unwrap()]);
    assert!(dry.contains("would remove 4 rows"), "{dry}");
    assert!(dry.contains("DLQ alerter: would remove 1 of 2 entries failed more than 30 days ago"), "{dry}");
    assert!(dry.contains("DLQ moog: would remove 0 of 0 entries"), "{dry}");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains(r#"mutt_retention_policy_days{type="event_audit"} 30"#), "{text}");
    assert_eq!((audit_rows(s).await, dlq_depth(s).await), (6, 2), "a dry run changes nothing");
    ok(s, d, &["config", "set", "retention_enforcement_enabled", "false"]);
    let off = ok(s, d, &["retention"]);
    assert!(off.contains("nothing removed"), "{off}");
    assert_eq!((audit_rows(s).await, dlq_depth(s).await), (6, 2));
    ok(s, d, &["config", "delete", "retention_enforcement_enabled"]);
    ok(s, d, &["config", "delete", "event_retention_days"]);

    let done = ok(s, d, &["partitions", "drop-older-than", "2021-01", "--yes"]);
    assert!(done.contains("removed 3 rows"), "{done}");
    assert_eq!(pg, done.contains("dropped partition event_audit_log_2020_03 (3 rows"), "{done}");
    assert_eq!(audit_rows(s).await, 3, "the newer rows stay");
    let list = ok(s, d, &["partitions", "list"]);
    assert!(!list.contains("2020"), "{list}");

    // For real, with the dynamic days again: the row of two months ago and the old dead letter go.
    ok(s, d, &["config", "set", "event_retention_days", "30"]);
    let out = muttd(s, d, &["retention", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((json["event_rows"].as_u64(), json["dlq_retention_days"].as_u64()), (Some(1), Some(30)), "{json}");
    assert_eq!((audit_rows(s).await, dlq_depth(s).await), (2, 1));
    assert!(Utc::now().year() > 2020);
}

both_backends!(partitions_commands_on_both_backends);
