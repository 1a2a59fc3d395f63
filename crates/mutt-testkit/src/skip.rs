//! Tests that need a real client (rsyslogd, snmptrapd, …) or root.

/// A test whose real client or privilege is missing here. On a developer's machine it is
/// skipped with a line saying so; under CI (`CI` set, as `.ci/run` runs), where
/// `scripts/test.sh` installs every client and runs as root, it fails instead, so no test can
/// pass there by skipping itself.
pub fn skip_or_fail(test: &str, why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{test}: {why}; CI must run it (scripts/test.sh installs what it needs)");
    eprintln!("SKIPPED {test}: {why}");
}
