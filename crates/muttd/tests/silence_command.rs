//! `muttd silence add|list|expire` as processes on both backends: a one-off silence and a
//! weekly maintenance window created (a bad one refused, naming the field), listed as a table
//! and as JSON, expired early (kept; a second expiry refused), each change one
//! config_audit_log row by the OS user.

mod common;

use mutt_testapp::{BackendKind, Site, both_backends};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn muttd(site: &Site, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = common::on_site(site, dir);
    cmd.env("USER", "tester").args(args).output().expect("run muttd")
}

fn ok(site: &Site, dir: &Path, args: &[&str]) -> String {
    let out = muttd(site, dir, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "muttd {args:?} failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn json(site: &Site, dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(site, dir, args)).expect("JSON")
}

async fn add_list_expire(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = (&site, dir.path());
    ok(s, d, &["migrate"]);

    let out = ok(s, d, &["silence", "add", "--host", "router1", "--duration", "2h", "--comment", "IOS upgrade"]);
    assert!(out.starts_with("silence 1 created: host=router1 | "), "{out}");
    assert!(out.contains("active, in effect now"), "{out}");
    let window = json(
        s,
        d,
        &[
            "silence",
            "add",
            "--host",
            "core-*",
            "--days",
            "sun",
            "--at",
            "02:00",
            "--for",
            "2h",
            "--tz",
            "Europe/Berlin",
            "--comment",
            "weekly maintenance",
            "--json",
        ],
    );
    assert_eq!(window["id"], 2);
    assert_eq!(window["created_by"], "muttd-cli:tester");
    assert_eq!(window["window"]["time_zone"], "Europe/Berlin");
    assert_eq!(window["window"]["duration_minutes"], 120);
    assert!(window["next_start"].is_string(), "{window}");

    // Refused, naming the field; nothing stored.
    let out = muttd(
        s,
        d,
        &[
            "silence",
            "add",
            "--host",
            "x",
            "--days",
            "sun",
            "--at",
            "02:00",
            "--for",
            "1h",
            "--tz",
            "Mars/Base",
            "--comment",
            "c",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("window.time_zone"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = muttd(s, d, &["silence", "add", "--comment", "c", "--duration", "1h"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("matcher"), "{}", String::from_utf8_lossy(&out.stderr));

    let table = ok(s, d, &["silence", "list"]);
    assert!(table.contains("host=core-*") && table.contains("Sun 02:00–04:00 Europe/Berlin"), "{table}");
    assert!(table.contains("IOS upgrade"), "{table}");

    let out = ok(s, d, &["silence", "expire", "1"]);
    assert!(out.starts_with("silence 1 expired:") && out.contains("| expired"), "{out}");
    let out = muttd(s, d, &["silence", "expire", "1"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already ended"));
    let active = json(s, d, &["silence", "list", "--json"]);
    assert_eq!(active.as_array().unwrap().iter().map(|v| v["id"].as_i64().unwrap()).collect::<Vec<_>>(), [2]);
    let expired = json(s, d, &["silence", "list", "--state", "expired", "--json"]);
    assert_eq!(expired[0]["expired_by"], "muttd-cli:tester");
    assert_eq!(expired[0]["state"], "expired");

    let backend = site.open().await;
    let rows = backend.store.config_changes("silences", 10).await.unwrap();
    let mut ops: Vec<(String, i32, String)> =
        rows.into_iter().map(|r| (r.change.operation, r.change.record_id, r.change.changed_by)).collect();
    ops.sort();
    let who = "muttd-cli:tester".to_owned();
    assert_eq!(ops, [("CREATE".into(), 1, who.clone()), ("CREATE".into(), 2, who.clone()), ("UPDATE".into(), 1, who)]);
}

both_backends!(add_list_expire);
