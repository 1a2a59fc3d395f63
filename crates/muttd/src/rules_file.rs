//! The rules file read by `muttd rules import`: YAML or JSON with the rules, development hosts
//! and device teams. A rule equal to an existing one (same match and handling) is skipped, so
//! importing the same file twice changes nothing.
//!
//! ```yaml
//! rules:
//!   - match_string: LINK-DOWN
//!     match_type: contains        # contains | regex | oid_prefix
//!     priority: 5                 # lower wins
//!     prod_handling: Page_and_ticket
//!     dev_handling: Ticket_only
//!     team_assignment: NetOps
//! development_hosts: [dev-router1]
//! device_teams:
//!   router1.prod.example.com: NetOps
//! ```

use mutt_core::{Rule, RuleSet, RuleSnapshot};
use mutt_store::{NewRule, Store};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    #[serde(default)]
    pub rules: Vec<NewRule>,
    #[serde(default)]
    pub development_hosts: Vec<String>,
    #[serde(default)]
    pub device_teams: BTreeMap<String, String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rules_created: usize,
    pub rules_skipped: usize,
    pub development_hosts: usize,
    pub device_teams: usize,
}

pub fn parse(path: &Path, text: &str) -> anyhow::Result<RulesFile> {
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let file: RulesFile = if json {
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    } else {
        serde_norway::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    };
    validate(&file).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(file)
}

/// Rejects what the database would refuse, and invalid regexes, before anything is written.
fn validate(file: &RulesFile) -> Result<(), String> {
    for (i, r) in file.rules.iter().enumerate() {
        let n = i + 1;
        if r.match_string.as_deref().is_none_or(str::is_empty) && r.trap_oid.as_deref().is_none_or(str::is_empty) {
            return Err(format!("rule {n}: needs match_string or trap_oid"));
        }
        if r.syslog_severity.is_some_and(|s| !(0..=7).contains(&s)) {
            return Err(format!("rule {n}: syslog_severity must be 0..7"));
        }
        for (field, v, max) in [
            ("prod_handling", &r.prod_handling, 100),
            ("dev_handling", &r.dev_handling, 100),
            ("team_assignment", &r.team_assignment, 100),
        ] {
            if v.is_empty() || v.len() > max {
                return Err(format!("rule {n}: {field} must be 1..{max} characters"));
            }
        }
        let probe = RuleSet::compile(RuleSnapshot { rules: vec![as_rule(r, 0)], ..Default::default() });
        if let Some(e) = probe.excluded().first() {
            return Err(format!("rule {n}: {e}"));
        }
    }
    Ok(())
}

fn as_rule(r: &NewRule, id: i32) -> Rule {
    Rule {
        id,
        match_string: r.match_string.clone(),
        trap_oid: r.trap_oid.clone(),
        syslog_severity: r.syslog_severity,
        match_type: r.match_type,
        priority: r.priority,
        prod_handling: r.prod_handling.clone(),
        dev_handling: r.dev_handling.clone(),
        team_assignment: r.team_assignment.clone(),
        is_active: r.is_active,
    }
}

pub async fn import(store: &dyn Store, file: &RulesFile) -> anyhow::Result<ImportReport> {
    let existing = store.list_rules().await?;
    let mut report = ImportReport::default();
    for r in &file.rules {
        if existing.iter().any(|e| as_rule(r, e.id) == *e) {
            report.rules_skipped += 1;
            continue;
        }
        store.create_rule(r).await?;
        report.rules_created += 1;
    }
    for h in &file.development_hosts {
        store.add_development_host(h).await?;
        report.development_hosts += 1;
    }
    for (host, team) in &file.device_teams {
        store.set_device_team(host, team).await?;
        report.device_teams += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_and_rejects_bad_rules() {
        let ok = "rules:\n  - match_string: CRITICAL\n    match_type: contains\n    priority: 10\n    prod_handling: Page_and_ticket\n    dev_handling: Ignore\n    team_assignment: NETO\ndevelopment_hosts: [dev1]\ndevice_teams: {r1: NetOps}\n";
        let f = parse(Path::new("r.yaml"), ok).unwrap();
        assert_eq!(f.rules.len(), 1);
        assert_eq!(f.device_teams["r1"], "NetOps");
        let bad_regex = ok.replace("CRITICAL", "\"(oops\"").replace("contains", "regex");
        assert!(parse(Path::new("r.yaml"), &bad_regex).unwrap_err().to_string().contains("regex"));
        let bad_type = ok.replace("contains", "startswith");
        assert!(parse(Path::new("r.yaml"), &bad_type).is_err());
        assert!(
            parse(
                Path::new("r.json"),
                r#"{"rules":[{"match_type":"contains","prod_handling":"a","dev_handling":"b","team_assignment":"c"}]}"#
            )
            .is_err()
        );
    }
}
