//! Puts the git commit into `muttd --version` (compiled in as `MUTTD_BUILD_COMMIT`). A build
//! without git (a source tarball, a container build without `.git`) says "unknown" instead of
//! failing; a packager can set `MUTT_GIT_COMMIT` to name the commit it built.
//!
//! The compiled-in name must not start with `MUTT_`: `cargo run` also puts it into the running
//! program's environment, where muttd refuses unknown `MUTT_…` variables.
//!
//! It also links the binary with packed relative relocations (DT_RELR) when the build host's
//! glibc can load them (2.36 and later: Debian 12, Ubuntu 24.04, RHEL 10). A position-
//! independent executable of this size carries ~1.9 MB of relocation records that the loader
//! reads at every start and that then stay in each process's RSS; packed, they take ~30 KB
//! (each role's peak RSS was 2.5-4 MiB lower in alternated runs: docs/benchmarks.md). The binary then
//! needs glibc 2.36 wherever it runs, so a host with an older glibc (RHEL 9, Ubuntu 22.04)
//! builds without it, as does a cross build; `MUTTD_PACK_RELOCS=0` turns it off, `=1` on.

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
    println!("cargo:rerun-if-env-changed=MUTTD_PACK_RELOCS");
    if pack_relocs() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether to link with DT_RELR: asked for, or a native glibc build on a glibc >= 2.36 host.
fn pack_relocs() -> bool {
    match std::env::var("MUTTD_PACK_RELOCS").as_deref() {
        Ok("0") => return false,
        Ok("1") => return true,
        _ => {}
    }
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let native = var("TARGET") == var("HOST");
    native && var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" && host_glibc() >= (2, 36)
}

/// The host's glibc version from `getconf GNU_LIBC_VERSION` ("glibc 2.36"); (0, 0) if unknown.
fn host_glibc() -> (u32, u32) {
    let out = Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok();
    let text = out.filter(|o| o.status.success()).and_then(|o| String::from_utf8(o.stdout).ok()).unwrap_or_default();
    let version = text.trim().strip_prefix("glibc ").unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
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
