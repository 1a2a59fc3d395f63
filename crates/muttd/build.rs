//! Puts the git commit into `muttd --version` (compiled in as `MUTTD_BUILD_COMMIT`). A build
//! without git (a source tarball, a container build without `.git`) says "unknown" instead of
//! failing; a packager can set `MUTT_GIT_COMMIT` to name the commit it built.
//!
//! The compiled-in name must not start with `MUTT_`: `cargo run` also puts it into the running
//! program's environment, where muttd refuses unknown `MUTT_…` variables.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MUTT_GIT_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let commit = match std::env::var("MUTT_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => {
            watch_git_head();
            git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=MUTTD_BUILD_COMMIT={commit}");
}

/// Output of a git command run in this crate's directory, if git and a repository are there.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git").args(args).current_dir(dir).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Reruns this script when HEAD moves: HEAD itself (a checkout), the branch it points to (a
/// commit) and packed-refs (where the branch lives after `git gc`). Only existing files are
/// named: cargo reruns the script on every build for a missing one.
fn watch_git_head() {
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else { return };
    let mut paths = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(branch);
    }
    for p in paths {
        let file = git(&["rev-parse", "--git-path", &p]).map(|f| manifest.join(f));
        if let Some(file) = file.filter(|f| f.exists()) {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
}
