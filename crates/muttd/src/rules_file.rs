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

use mutt_core::normalize::MAX_HOSTNAME_LEN;
use mutt_core::rule::draft::MAX_NAME_LEN;
use mutt_core::rule::{RuleDraft, ValidRule};
use mutt_store::Store;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    #[serde(default)]
    rules: Vec<RuleDraft>,
    #[serde(default)]
    development_hosts: Vec<String>,
    #[serde(default)]
    device_teams: BTreeMap<String, String>,
}

/// A rules file whose every entry the store accepts.
#[derive(Debug, Default)]
pub struct RulesFile {
    pub rules: Vec<ValidRule>,
    pub development_hosts: Vec<String>,
    pub device_teams: BTreeMap<String, String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rules_created: usize,
    pub rules_skipped: usize,
    pub development_hosts: usize,
    pub device_teams: usize,
}

/// Reads and checks the whole file before anything is written: an error names the file, the
/// rule (counted from 1) and the field, e.g. `rules.yaml: rule 3: match_string: …`.
pub fn parse(path: &Path, text: &str) -> anyhow::Result<RulesFile> {
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let written: Written = if json {
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    } else {
        serde_norway::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    };
    check(written).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn check(written: Written) -> Result<RulesFile, String> {
    let rules = written
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| r.parse().map_err(|e| format!("rule {}: {e}", i + 1)))
        .collect::<Result<_, _>>()?;
    let name_ok = |s: &str, max: usize| !s.is_empty() && s.chars().count() <= max && !s.contains('\0');
    for h in written.development_hosts.iter().chain(written.device_teams.keys()) {
        if !name_ok(h, MAX_HOSTNAME_LEN) {
            return Err(format!("hostname {h:?}: must be 1 to {MAX_HOSTNAME_LEN} characters, without NUL"));
        }
    }
    for (h, team) in &written.device_teams {
        if !name_ok(team, MAX_NAME_LEN) {
            return Err(format!("device_teams.{h}: must be 1 to {MAX_NAME_LEN} characters, without NUL"));
        }
    }
    Ok(RulesFile { rules, development_hosts: written.development_hosts, device_teams: written.device_teams })
}

pub async fn import(store: &dyn Store, file: &RulesFile) -> anyhow::Result<ImportReport> {
    let existing = store.list_rules().await?;
    let mut report = ImportReport::default();
    for r in &file.rules {
        if existing.iter().any(|e| r.to_rule(e.id) == *e) {
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
        let e = parse(Path::new("r.yaml"), &bad_regex).unwrap_err().to_string();
        assert!(e.starts_with("r.yaml: rule 1: match_string: not a valid regex"), "{e}");
        let bad_type = ok.replace("contains", "startswith");
        assert!(parse(Path::new("r.yaml"), &bad_type).is_err());
        let e = parse(
            Path::new("r.json"),
            r#"{"rules":[{"match_type":"contains","prod_handling":"a","dev_handling":"b","team_assignment":"c"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "r.json: rule 1: match_string: required when match_type is contains");
    }

    #[test]
    fn the_error_names_the_rule_and_the_field() {
        let rule = |extra: &str| {
            format!(
                "  - match_string: X\n    match_type: contains\n    prod_handling: P\n    dev_handling: D\n    team_assignment: T\n{extra}"
            )
        };
        let file = format!("rules:\n{}{}{}", rule(""), rule(""), rule("    syslog_severity: 9\n"));
        let e = parse(Path::new("rules.yaml"), &file).unwrap_err().to_string();
        assert_eq!(e, "rules.yaml: rule 3: syslog_severity: 9 is out of range (must be 0 to 7)");
        let file = format!("rules:\n{}device_teams: {{r1: \"\"}}\n", rule(""));
        let e = parse(Path::new("rules.yaml"), &file).unwrap_err().to_string();
        assert!(e.starts_with("rules.yaml: device_teams.r1: must be 1 to 100 characters"), "{e}");
        let long = "h".repeat(256);
        let e = parse(Path::new("rules.yaml"), &format!("development_hosts: [{long}]\n")).unwrap_err().to_string();
        assert!(e.contains("must be 1 to 255 characters"), "{e}");
    }

    /// What the README imports.
    #[test]
    fn the_example_file_parses() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rules.yaml"));
        let f = parse(path, &std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!((f.rules.len(), f.development_hosts.len(), f.device_teams.len()), (5, 3, 4));
    }
}
