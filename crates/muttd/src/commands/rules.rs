//! `muttd rules list`: every rule (active or not) as a table, with its flap limit.

use anyhow::Result;
use mutt_core::Rule;
use mutt_store::Store;

/// Prints the rules as a table, in the store's order (by priority).
pub async fn list(store: &dyn Store) -> Result<()> {
    let rules = store.list_rules().await?;
    println!(
        "{:>5} {:>8} {:<10} {:<30} {:<16} {:<16} {:<10} {:<10} active",
        "id", "priority", "type", "match", "prod", "dev", "team", "flap"
    );
    for r in rules {
        let flap = flap(&r);
        let m = r.match_string.or(r.trap_oid).unwrap_or_default();
        println!(
            "{:>5} {:>8} {:<10} {:<30} {:<16} {:<16} {:<10} {:<10} {}",
            r.id, r.priority, r.match_type, m, r.prod_handling, r.dev_handling, r.team_assignment, flap, r.is_active
        );
    }
    Ok(())
}

/// The flap column: `N/Ts` (at most N alerts per host within T seconds), `-` without a limit.
fn flap(r: &Rule) -> String {
    match (r.flap_threshold, r.flap_window_secs) {
        (Some(n), Some(secs)) => format!("{n}/{secs}s"),
        _ => "-".into(),
    }
}
