//! `muttd config set|list|delete` as processes on both backends: values checked against the
//! catalogue (refusals change nothing and record nothing), `--force` for unknown keys, the
//! listing's value/default/source, a delete restoring the default, and one config_audit_log
//! row per change with the old and new value and the OS user.

mod common;

use mutt_testapp::{BackendKind, Site, both_backends};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn muttd(site: &Site, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = common::on_site(site, dir);
    cmd.env("USER", "tester");
    // Static configuration differing from the default: the listing says so.
    cmd.env("MUTT_FORWARDER__CIRCUIT_BREAKER_THRESHOLD", "7");
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

fn listed(site: &Site, dir: &Path) -> Vec<Value> {
    let out = muttd(site, dir, &["config", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).expect("JSON").as_array().unwrap().clone()
}

fn entry<'a>(list: &'a [Value], key: &str) -> &'a Value {
    list.iter().find(|e| e["key"] == key).unwrap_or_else(|| panic!("{key} not listed"))
}

async fn set_list_delete_are_checked_and_audited(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let (site_ref, d) = (&site, dir.path());
    ok(site_ref, d, &["migrate"]);

    let out = ok(site_ref, d, &["config", "set", "moog_rate_limit", " 75 ", "--reason", "night shift"]);
    assert!(out.contains("moog_rate_limit: (unset) -> 75"), "{out}");
    // Refused: a zero, warn above shed, a bad word, an unknown key; none of them is stored.
    let e = refused(site_ref, d, &["config", "set", "moog_rate_limit", "0"]);
    assert!(e.contains("invalid value for moog_rate_limit"), "{e}");
    let e = refused(site_ref, d, &["config", "set", "alerter_queue_warn_threshold", "5000"]);
    assert!(e.contains("must be below alerter_queue_shed_threshold (now 2000)"), "{e}");
    let e = refused(site_ref, d, &["config", "set", "alerter_shed_mode", "drop"]);
    assert!(e.contains("is not one of dlq, defer"), "{e}");
    let e = refused(site_ref, d, &["config", "set", "my_tool_flag", "on"]);
    assert!(e.contains("my_tool_flag is not a known configuration key") && e.contains("--force"), "{e}");
    ok(site_ref, d, &["config", "set", "my_tool_flag", "on", "--force"]);
    ok(site_ref, d, &["config", "set", "alerter_shed_mode", "defer"]);

    let list = listed(site_ref, d);
    let e = entry(&list, "moog_rate_limit");
    assert_eq!((&e["value"], &e["default"], &e["source"]), (&"75".into(), &"50".into(), &"dynamic".into()), "{e}");
    assert_eq!(entry(&list, "alerter_shed_mode")["value"], "defer");
    let e = entry(&list, "circuit_breaker_threshold");
    assert_eq!((&e["value"], &e["source"]), (&"7".into(), &"config".into()), "{e}");
    let e = entry(&list, "unhandled_threshold");
    assert_eq!((&e["value"], &e["source"], &e["reader"]), (&"100".into(), &"default".into(), &"alerter".into()));
    let e = entry(&list, "my_tool_flag");
    assert_eq!((&e["value"], &e["source"], &e["default"]), (&"on".into(), &"unknown".into(), &Value::Null));
    assert!(list.iter().any(|e| e["key"] == "slo_forwarder_latency_p99_upper_bound_critical"));
    let table = ok(site_ref, d, &["config", "list"]);
    assert!(table.lines().any(|l| l.starts_with("moog_rate_limit") && l.contains("dynamic")), "{table}");

    let out = ok(site_ref, d, &["config", "delete", "moog_rate_limit", "--reason", "back to normal"]);
    assert!(out.contains("moog_rate_limit: 75 -> (default) 50"), "{out}");
    let e = refused(site_ref, d, &["config", "get", "moog_rate_limit"]);
    assert!(e.contains("moog_rate_limit is not set"), "{e}");
    assert_eq!(entry(&listed(site_ref, d), "moog_rate_limit")["source"], "default");
    let out = ok(site_ref, d, &["config", "delete", "moog_rate_limit"]);
    assert!(out.contains("was not set"), "{out}");

    // What the backend holds and what the audit trail says: four changes, newest first.
    let backend = site.open().await;
    let values = backend.coordination.config_values(&["moog_rate_limit", "alerter_shed_mode", "my_tool_flag"]).await;
    assert_eq!(values.unwrap(), [None, Some("defer".into()), Some("on".into())]);
    let rows = backend.store.config_changes("dynamic_config", 50).await.unwrap();
    let summary: Vec<(String, Value, Value)> = rows
        .iter()
        .map(|r| {
            let value = |v: &Option<Value>| v.as_ref().map(|v| v["value"].clone()).unwrap_or(Value::Null);
            (r.change.operation.clone(), value(&r.change.old_values), value(&r.change.new_values))
        })
        .collect();
    let v = |s: &str| Value::from(s);
    assert_eq!(
        summary,
        [
            ("DELETE".into(), v("75"), Value::Null),
            ("CREATE".into(), Value::Null, v("defer")),
            ("CREATE".into(), Value::Null, v("on")),
            ("CREATE".into(), Value::Null, v("75")),
        ]
    );
    assert!(rows.iter().all(|r| r.change.changed_by == "muttd-cli:tester"), "{rows:?}");
    assert_eq!(rows[0].change.reason.as_deref(), Some("back to normal"));
    assert_eq!(rows[3].change.reason.as_deref(), Some("night shift"));
    assert_eq!(rows[0].change.old_values.as_ref().unwrap()["key"], "moog_rate_limit");

    // Under sudo the audit names who ran it.
    let mut cmd = common::on_site(site_ref, d);
    let out = cmd.env("USER", "root").env("SUDO_USER", "alice").args(["config", "delete", "my_tool_flag"]).output();
    assert!(out.unwrap().status.success());
    let rows = backend.store.config_changes("dynamic_config", 1).await.unwrap();
    assert_eq!(
        (rows[0].change.operation.as_str(), rows[0].change.changed_by.as_str()),
        ("DELETE", "muttd-cli:alice via sudo")
    );
}

both_backends!(set_list_delete_are_checked_and_audited);
