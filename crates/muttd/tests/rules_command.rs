//! `muttd rules import|list|test` as processes on both backends: a rule with a flap limit
//! imported from YAML, listed with its limit (`N/Ts`, `-` without one), and the tester's
//! JSON naming the winning rule's limit.

mod common;

use mutt_testapp::{BackendKind, Site, both_backends};
use std::path::Path;

fn ok(site: &Site, dir: &Path, args: &[&str]) -> String {
    let mut cmd = common::on_site(site, dir);
    let out = cmd.args(args).output().expect("run muttd");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "muttd {args:?} failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

const RULES: &str = "rules:
  - match_string: LINK-DOWN
    priority: 5
    prod_handling: Page_and_ticket
    dev_handling: Ignore
    team_assignment: NETO
    flap_threshold: 5
    flap_window_secs: 60
  - match_string: FAN-FAIL
    priority: 10
    prod_handling: Ticket_only
    dev_handling: Ignore
    team_assignment: CORE
";

async fn list_shows_the_flap_limit(kind: BackendKind) {
    let site = Site::fresh(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = (&site, dir.path());
    ok(s, d, &["migrate"]);
    let file = d.join("rules.yaml");
    std::fs::write(&file, RULES).unwrap();
    let out = ok(s, d, &["rules", "import", file.to_str().unwrap()]);
    assert!(out.starts_with("rules: 2 created"), "{out}");

    let table = ok(s, d, &["rules", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["id", "priority", "type", "match", "prod", "dev", "team", "flap", "active"], "{table}");
    let row = |needle: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {table}"))
            .split_whitespace()
            .collect()
    };
    assert_eq!(row("LINK-DOWN")[7..], ["5/60s", "true"], "{table}");
    assert_eq!(row("FAN-FAIL")[7..], ["-", "true"], "{table}");

    let report = ok(s, d, &["rules", "test", "--event", r#"{"hostname":"router1","message":"LINK-DOWN on Gi0/1"}"#]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("JSON");
    assert_eq!(report["flap_limit"], serde_json::json!({"threshold": 5, "window_secs": 60}), "{report}");
    let report = ok(s, d, &["rules", "test", "--event", r#"{"hostname":"router1","message":"FAN-FAIL"}"#]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("JSON");
    assert!(
        report.get("matched_rule_id").is_some_and(|v| !v.is_null()) && report.get("flap_limit").is_none(),
        "{report}"
    );
}

both_backends!(list_shows_the_flap_limit);
