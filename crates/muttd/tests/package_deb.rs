//! The Debian package (`scripts/package-deb.sh`, files in `deploy/debian/`).
//!
//! On this machine, as root: the package is built from this test's own `muttd`, installed with
//! `dpkg -i`, checked (files, modes, owners, the `mutt` user, `systemd-analyze verify` of
//! `muttd.service` and of each `muttd@ROLE` instance), then `muttd run` is started the way
//! `muttd.service` starts it (its user, working directory, environment and env file, read
//! from the installed unit) on loopback ports of its own, under strace; the example rules are
//! imported, an event sent, its alert read from the file the packaged configuration names. The
//! trace shows that muttd stays inside the unit's hardening (system-call filter, address
//! families, writable paths, no writable and executable memory). Last, `dpkg --purge`
//! removes the user, /etc/mutt, /var/lib/mutt and the units' enablement links.
//!
//! Without root it says SKIPPED. The shipped mutt.toml and env file are checked without root:
//! every setting of `Config` is listed with its true default, every secret in the env file.

use muttd::config::{self, Config};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const DEBIAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/debian");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/package-deb.sh");
const UNIT: &str = "/lib/systemd/system/muttd.service";
const TEMPLATE: &str = "/lib/systemd/system/muttd@.service";
const ROLES: [&str; 4] = ["ingestor", "alerter", "forwarder", "web"];

// ---------------------------------------------------------------------------------------------
// The shipped configuration files (no root needed).

/// A `key = value` line of mutt.toml: `#key = value` (commented: the default applies) or
/// `key = value` (set by the package). Prose comments start with `# `.
#[derive(Debug)]
struct SettingLine {
    line: usize,
    section: String,
    key: String,
    commented: bool,
}

fn setting_lines(text: &str) -> Vec<SettingLine> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (commented, rest) = match line.strip_prefix('#') {
            Some(r) => (true, r),
            None => (false, line),
        };
        let Some((key, _)) = rest.split_once(" = ") else { continue };
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            out.push(SettingLine { line: i, section: section.clone(), key: key.to_owned(), commented });
        }
    }
    out
}

/// Every setting of `Config::default()` as (section, key) → default ("" is the top level;
/// `null` for settings that are unset by default).
fn default_settings() -> BTreeMap<(String, String), serde_json::Value> {
    let serde_json::Value::Object(top) = serde_json::to_value(Config::default()).unwrap() else {
        panic!("Config serialises as a map")
    };
    let mut out = BTreeMap::new();
    for (key, value) in top {
        match value {
            serde_json::Value::Object(section) => {
                for (k, v) in section {
                    assert!(!v.is_object(), "[{key}] {k}: nested sections need this walk extended");
                    out.insert((key.clone(), k), v);
                }
            }
            v => {
                out.insert((String::new(), key), v);
            }
        }
    }
    out
}

fn packaged_defaults() -> Config {
    Config { data_dir: "/var/lib/mutt".into(), ..Config::default() }
}

fn load(text: &str) -> Result<Config, config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutt.toml");
    std::fs::write(&path, text).unwrap();
    config::load(Some(&path), &HashMap::new())
}

#[test]
fn the_shipped_mutt_toml_lists_every_setting_with_its_default() {
    let text = std::fs::read_to_string(format!("{DEBIAN}/mutt.toml")).unwrap();
    let lines = setting_lines(&text);
    let defaults = default_settings();
    let mut seen = BTreeMap::new();
    for l in &lines {
        let id = (l.section.clone(), l.key.clone());
        assert!(defaults.contains_key(&id), "line {}: [{}] {} is no setting of muttd", l.line + 1, l.section, l.key);
        assert!(seen.insert(id, l.line).is_none(), "line {}: [{}] {} listed twice", l.line + 1, l.section, l.key);
    }
    let missing: Vec<String> =
        defaults.keys().filter(|id| !seen.contains_key(*id)).map(|(s, k)| format!("[{s}] {k}")).collect();
    assert!(missing.is_empty(), "settings missing from deploy/debian/mutt.toml: {missing:?}");
    let active: Vec<&str> = lines.iter().filter(|l| !l.commented).map(|l| l.key.as_str()).collect();
    assert_eq!(active, ["data_dir"], "only data_dir is set by the package; the rest shows defaults");

    // As shipped: the built-in defaults, data in /var/lib/mutt.
    assert_same(&load(&text).unwrap(), "as shipped");
    // Each `#key = value` of a setting with a default, uncommented, changes nothing: the
    // values shown are the true defaults.
    let with_default: BTreeSet<usize> =
        lines.iter().filter(|l| !defaults[&(l.section.clone(), l.key.clone())].is_null()).map(|l| l.line).collect();
    let uncommented = uncomment(&text, &with_default);
    assert_same(&load(&uncommented).unwrap(), "a default shown differs from muttd's");
    // The examples of settings unset by default are values muttd takes (types and ranges;
    // which Redis topology is chosen is checked at connection, not here).
    let all: BTreeSet<usize> = lines.iter().map(|l| l.line).collect();
    load(&uncomment(&text, &all)).unwrap_or_else(|e| panic!("an example value in mutt.toml is refused: {e}"));
}

/// `config` is muttd's defaults with the package's data_dir; the settings that differ if not.
fn assert_same(config: &Config, what: &str) {
    let (got, want) = (serde_json::to_value(config).unwrap(), serde_json::to_value(packaged_defaults()).unwrap());
    let at = |v: &serde_json::Value, s: &str, k: &str| if s.is_empty() { v[k].clone() } else { v[s][k].clone() };
    let differ: Vec<String> = default_settings()
        .keys()
        .filter(|(s, k)| at(&got, s, k) != at(&want, s, k))
        .map(|(s, k)| format!("[{s}] {k}: {} instead of {}", at(&got, s, k), at(&want, s, k)))
        .collect();
    assert!(differ.is_empty(), "{what}: {differ:?}");
}

fn uncomment(text: &str, lines: &BTreeSet<usize>) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        out.push_str(if lines.contains(&i) { line.trim_start_matches('#') } else { line });
        out.push('\n');
    }
    out
}

#[test]
fn the_shipped_env_file_names_every_secret_and_sets_nothing() {
    let text = std::fs::read_to_string(format!("{DEBIAN}/env")).unwrap();
    for name in muttd::secrets::SECRET_NAMES {
        assert!(text.lines().any(|l| l == format!("#{name}=")), "deploy/debian/env does not list {name}");
    }
    let set: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).collect();
    assert!(set.is_empty(), "the shipped env file sets nothing: {set:?}");
}

// ---------------------------------------------------------------------------------------------
// Processes, bounded in time.

/// Runs `cmd` to completion within `limit` (killed and failed past it): status, stdout, stderr.
fn run(cmd: &mut Command, limit: Duration) -> (ExitStatus, String, String) {
    let what = format!("{cmd:?}");
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let readers = [child.stdout.take().map(box_read), child.stderr.take().map(box_read)]
        .map(|r| std::thread::spawn(move || r.map(std::io::read_to_string).and_then(Result::ok).unwrap_or_default()));
    let status = wait_within(&mut child, limit).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {limit:?}")
    });
    let [out, err] = readers.map(|r| r.join().unwrap());
    (status, out, err)
}

fn box_read(r: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    Box::new(r)
}

/// Like [`run`], and the command must succeed: its stdout and stderr together.
fn ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let (status, out, err) = run(cmd, Duration::from_secs(120));
    assert!(status.success(), "{what}: {status}\n{out}{err}");
    format!("{out}{err}")
}

fn wait_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------
// The machine: the package, the user, one test at a time.

fn package_present() -> bool {
    let (status, out, _) = run(&mut cmd("dpkg-query", &["-W", "-f", "${db:Status-Status}", "muttd"]), secs(30));
    status.success() && !out.trim().is_empty() && out.trim() != "not-installed"
}

/// The passwd or group entry of `name`, split at ':'.
fn getent(db: &str, name: &str) -> Option<Vec<String>> {
    let (status, out, _) = run(&mut cmd("getent", &[db, name]), secs(30));
    status.success().then(|| out.trim().split(':').map(str::to_owned).collect())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Held for the whole test: one package test on this machine at a time, whichever process.
fn machine_lock() -> std::fs::File {
    let file = std::fs::File::create(std::env::temp_dir().join("muttd-package-test.lock")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while file.try_lock().is_err() {
        assert!(Instant::now() < deadline, "another package test held the lock for 10 minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
    file
}

/// Purges the package when dropped, so that a failing test leaves the machine as it found it.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if package_present() {
            let _ = run(&mut cmd("dpkg", &["--purge", "muttd"]), secs(120));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The installed unit, as systemd would run it.

/// The `[Service]` settings of a unit file, in order (a key may repeat).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(unit).unwrap();
    let mut in_service = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if let Some((k, v)) = line.split_once('=').filter(|_| in_service && !line.starts_with('#')) {
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

fn one<'a>(settings: &'a [(String, String)], key: &str) -> &'a str {
    match setting(settings, key)[..] {
        [v] => v,
        ref other => panic!("{key}= set {} times in the unit: {other:?}", other.len()),
    }
}

/// How the unit runs muttd: user, working directory, environment (Environment= and the
/// EnvironmentFile= lines), command.
struct UnitExec {
    user: String,
    dir: PathBuf,
    env: Vec<(String, String)>,
    argv: Vec<String>,
}

fn unit_exec(settings: &[(String, String)]) -> UnitExec {
    let mut env = Vec::new();
    for assignment in setting(settings, "Environment") {
        let (k, v) = assignment.split_once('=').expect("Environment=NAME=value");
        env.push((k.to_owned(), v.to_owned()));
    }
    for file in setting(settings, "EnvironmentFile") {
        let path = file.strip_prefix('-').unwrap_or(file);
        for line in std::fs::read_to_string(path).unwrap_or_default().lines().map(str::trim) {
            if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with(['#', ';'])) {
                env.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    UnitExec {
        user: one(settings, "User").to_owned(),
        dir: one(settings, "WorkingDirectory").into(),
        env,
        argv: one(settings, "ExecStart").split_whitespace().map(str::to_owned).collect(),
    }
}

impl UnitExec {
    /// `program args` as the unit's user, in its directory, with its environment plus `extra`
    /// (and PATH).
    fn command(&self, program: &[&str], extra: &[(String, String)]) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", &self.user, "--"])
            .args(program)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(self.env.iter().cloned())
            .envs(extra.iter().cloned());
        c
    }
}

/// `muttd run` started as the unit starts it, under `strace -f`; killed when dropped.
struct Running {
    child: Child,
    muttd_pid: u32,
}

impl Running {
    fn start(unit: &UnitExec, extra: &[(String, String)], trace: &Path, log: &Path) -> Self {
        let trace_arg = trace.to_str().unwrap();
        let mut argv = vec!["strace", "-f", "-qq", "-o", trace_arg];
        argv.extend(unit.argv.iter().map(String::as_str));
        let mut child = unit
            .command(&argv, extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("muttd: ingestor listening on ") {
                    let _ = tx.send(());
                }
            }
        });
        let started = rx.recv_timeout(Duration::from_secs(90));
        let muttd_pid = descendant_named(child.id(), "muttd").unwrap_or(0);
        let running = Self { child, muttd_pid };
        assert!(started.is_ok(), "muttd run did not start: {}", std::fs::read_to_string(log).unwrap_or_default());
        assert_ne!(running.muttd_pid, 0, "no muttd process under runuser and strace");
        running
    }

    /// SIGTERM to muttd (as systemd stops it): its exit status through strace and runuser.
    fn stop(&mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill").args(["-TERM", &self.muttd_pid.to_string()]).status();
        wait_within(&mut self.child, secs(60))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-KILL", &self.muttd_pid.to_string()]).status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The processes running as `uid`.
fn processes_of(uid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let real = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next());
        if real == Some(uid.to_string().as_str()) {
            pids.push(pid);
        }
    }
    pids
}

/// The first process below `root` (children, grandchildren, …) whose command name is `name`.
fn descendant_named(root: u32, name: &str) -> Option<u32> {
    let deadline = Instant::now() + secs(10);
    while Instant::now() < deadline {
        let mut parent = HashMap::new();
        let mut comm = HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
            let ppid = stat[close + 2..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
            parent.insert(pid, ppid.unwrap_or(0));
            comm.insert(pid, stat[open + 1..close].to_owned());
        }
        let below = |mut p: u32| {
            while let Some(&pp) = parent.get(&p) {
                if pp == root {
                    return true;
                }
                p = pp;
            }
            false
        };
        if let Some(pid) = comm.iter().find(|(p, c)| c.as_str() == name && below(**p)).map(|(p, _)| *p) {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The trace against the unit's hardening.

/// Every system-call group of this systemd, expanded: `@system-service` → its calls.
fn syscall_groups() -> HashMap<String, Vec<String>> {
    let out = ok(&mut cmd("systemd-analyze", &["syscall-filter"]));
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    let mut current = None;
    for line in out.lines() {
        let item = line.trim();
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') && item.starts_with('@') {
            current = Some(item.to_owned());
            groups.entry(item.to_owned()).or_default();
        } else if let Some(g) = &current {
            groups.get_mut(g).unwrap().push(item.split_whitespace().next().unwrap().to_owned());
        }
    }
    groups
}

fn expand(item: &str, groups: &HashMap<String, Vec<String>>, into: &mut BTreeSet<String>) {
    match groups.get(item) {
        Some(members) => members.iter().for_each(|m| expand(m, groups, into)),
        None => {
            into.insert(item.to_owned());
        }
    }
}

/// The calls the unit's SystemCallFilter= lines let through (allow lists, minus `~` lists).
fn allowed_syscalls(settings: &[(String, String)]) -> BTreeSet<String> {
    let groups = syscall_groups();
    let (mut allow, mut deny) = (BTreeSet::new(), BTreeSet::new());
    for filter in setting(settings, "SystemCallFilter") {
        let (set, list) = match filter.strip_prefix('~') {
            Some(l) => (&mut deny, l),
            None => (&mut allow, filter),
        };
        list.split_whitespace().for_each(|i| expand(i, &groups, set));
    }
    assert!(!allow.is_empty(), "the unit has an allow list of system calls");
    // Always permitted by systemd, whatever the filter.
    allow.extend(["execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"].map(String::from));
    &allow - &deny
}

/// Each traced call: its name and its line (empty for the second half of a split call).
fn traced_calls(trace: &str) -> Vec<(String, String)> {
    let mut calls = Vec::new();
    for line in trace.lines() {
        let rest = line.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
        // A call interrupted by another thread's is split: its arguments are on the first line.
        let (name, args) = match rest.strip_prefix("<... ") {
            Some(r) => (r.split_whitespace().next().unwrap_or(""), ""),
            None => (rest.split('(').next().unwrap_or(""), rest),
        };
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            calls.push((name.to_owned(), args.to_owned()));
        }
    }
    calls
}

/// The first quoted argument of a traced call (a path).
fn first_path(call: &str) -> Option<&str> {
    let start = call.find('"')? + 1;
    let len = call[start..].find('"')?;
    Some(&call[start..start + len])
}

fn check_trace_against_unit(trace: &str, settings: &[(String, String)], dir: &Path) {
    let calls = traced_calls(trace);
    assert!(calls.len() > 200, "strace recorded muttd's calls ({} lines)", calls.len());
    let allowed = allowed_syscalls(settings);
    let refused: BTreeSet<&str> = calls.iter().map(|(n, _)| n.as_str()).filter(|n| !allowed.contains(*n)).collect();
    assert!(refused.is_empty(), "system calls muttd made that SystemCallFilter= refuses: {refused:?}");

    let families: Vec<&str> = one(settings, "RestrictAddressFamilies").split_whitespace().collect();
    for (_, call) in calls.iter().filter(|(n, c)| (n == "socket" || n == "socketpair") && !c.is_empty()) {
        let family = call.split(['(', ',']).nth(1).unwrap_or("").trim();
        assert!(families.contains(&family), "muttd opened a {family} socket; the unit allows {families:?}: {call}");
    }
    for (_, call) in calls.iter().filter(|(n, _)| n == "mmap" || n == "mprotect") {
        assert!(!(call.contains("PROT_WRITE") && call.contains("PROT_EXEC")), "writable code: {call}");
    }
    // ProtectSystem=strict: writes only in ReadWritePaths=, the private /tmp and /dev.
    let mut writable: Vec<PathBuf> = one(settings, "ReadWritePaths").split_whitespace().map(PathBuf::from).collect();
    writable.extend(["/tmp", "/var/tmp", "/dev"].map(PathBuf::from));
    let writes = |(n, c): &&(String, String)| match n.as_str() {
        "openat" | "open" | "creat" => ["O_WRONLY", "O_RDWR", "O_CREAT"].iter().any(|f| c.contains(f)),
        "mkdir" | "mkdirat" | "unlink" | "unlinkat" | "rename" | "renameat" | "renameat2" | "rmdir" => true,
        "truncate" | "symlink" | "link" | "chmod" | "fchmodat" => true,
        _ => false,
    };
    for (_, call) in calls.iter().filter(writes) {
        let Some(path) = first_path(call) else { continue };
        let absolute = dir.join(path); // a relative path is in the working directory
        assert!(writable.iter().any(|w| absolute.starts_with(w)), "muttd writes outside ReadWritePaths=: {call}");
    }
}

// ---------------------------------------------------------------------------------------------
// The package test.

fn build_package(out: &Path) -> PathBuf {
    let binary = env!("CARGO_BIN_EXE_muttd");
    let outdir = out.to_str().unwrap();
    let script = &[SCRIPT, "--binary", binary, "--out", outdir, "--compress", "none"];
    let (status, printed, err) = run(&mut cmd("bash", script), secs(300));
    assert!(status.success(), "package-deb.sh: {status}\n{printed}{err}");
    let deb = PathBuf::from(printed.lines().last().unwrap_or_default().trim());
    assert!(deb.starts_with(out) && deb.exists(), "package-deb.sh printed {deb:?}: {printed}");
    let fields = ok(&mut cmd("dpkg-deb", &["-f", deb.to_str().unwrap(), "Package", "Version", "Depends"]));
    assert!(fields.contains("Package: muttd"), "{fields}");
    assert!(fields.contains(&format!("Version: {}\n", env!("CARGO_PKG_VERSION"))), "{fields}");
    assert!(fields.contains("libc6"), "{fields}");
    // A binary with packed relocations (build.rs) does not start with a glibc before 2.36.
    let dynamic = ok(&mut cmd("readelf", &["-d", binary]));
    if dynamic.contains("(RELR)") {
        let depends = fields.lines().find_map(|l| l.strip_prefix("Depends:")).unwrap_or_default();
        let libc = depends.split(',').map(str::trim).find(|d| d.starts_with("libc6")).unwrap_or_default();
        let version = libc.strip_prefix("libc6 (>= ").and_then(|v| v.strip_suffix(')')).unwrap_or("0");
        let (status, _, _) = run(&mut cmd("dpkg", &["--compare-versions", version, "ge", "2.36"]), secs(10));
        assert!(status.success(), "a DT_RELR binary must depend on libc6 (>= 2.36): {depends}");
    }
    deb
}

/// Path, mode, owner, group of what the package installs (the user and group by name).
const INSTALLED: &[(&str, u32, &str, &str)] = &[
    ("/usr/bin/muttd", 0o755, "root", "root"),
    ("/etc/mutt", 0o755, "root", "root"),
    ("/etc/mutt/mutt.toml", 0o644, "root", "root"),
    ("/etc/mutt/env", 0o640, "root", "mutt"),
    ("/var/lib/mutt", 0o750, "mutt", "mutt"),
    (UNIT, 0o644, "root", "root"),
    (TEMPLATE, 0o644, "root", "root"),
    ("/usr/share/bash-completion/completions/muttd", 0o644, "root", "root"),
    ("/usr/share/zsh/vendor-completions/_muttd", 0o644, "root", "root"),
    ("/usr/share/fish/vendor_completions.d/muttd.fish", 0o644, "root", "root"),
    ("/usr/share/man/man1/muttd.1.gz", 0o644, "root", "root"),
    ("/usr/share/man/man1/muttd-run.1.gz", 0o644, "root", "root"),
    ("/usr/share/doc/muttd/copyright", 0o644, "root", "root"),
    ("/usr/share/doc/muttd/examples/rules.yaml", 0o644, "root", "root"),
];

fn check_user_and_files() {
    let user = getent("passwd", "mutt").expect("postinst created the mutt user");
    let group = getent("group", "mutt").expect("postinst created the mutt group");
    let (uid, gid): (u32, u32) = (user[2].parse().unwrap(), group[2].parse().unwrap());
    assert!(uid < 1000, "mutt is a system user: {user:?}");
    assert_eq!(user[3], group[2], "mutt's primary group is mutt");
    assert_eq!((user[5].as_str(), user[6].as_str()), ("/var/lib/mutt", "/usr/sbin/nologin"));
    let id = |name: &str, mutt: u32| if name == "root" { 0 } else { mutt };
    for (path, mode, owner, grp) in INSTALLED {
        let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(m.mode() & 0o7777, *mode, "{path}: mode {:o}", m.mode() & 0o7777);
        assert_eq!((m.uid(), m.gid()), (id(owner, uid), id(grp, gid)), "{path}: owner {owner}:{grp}");
    }
    let shipped = std::fs::read_to_string(format!("{DEBIAN}/mutt.toml")).unwrap();
    assert_eq!(std::fs::read_to_string("/etc/mutt/mutt.toml").unwrap(), shipped);
    let conffiles = std::fs::read_to_string("/var/lib/dpkg/info/muttd.conffiles").unwrap();
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), ["/etc/mutt/mutt.toml", "/etc/mutt/env"]);
}

/// `muttd --version` of the installed binary: this build's version and git commit.
fn check_version_completions_and_man() {
    let installed = ok(&mut cmd("/usr/bin/muttd", &["--version"]));
    assert_eq!(installed, ok(&mut cmd(env!("CARGO_BIN_EXE_muttd"), &["--version"])));
    let commit = installed
        .trim()
        .strip_prefix(&format!("muttd {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("muttd --version: {installed}"));
    assert!(commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{commit}");
    if commit != "unknown" {
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        ok(cmd("git", &["cat-file", "-e", &format!("{commit}^{{commit}}")]).current_dir(repo));
    }
    // bash completes `muttd ru` from the installed script.
    let bash = "source /usr/share/bash-completion/completions/muttd; COMP_WORDS=(muttd ru); COMP_CWORD=1; \
                _muttd muttd ru muttd; echo \"${COMPREPLY[@]}\"";
    let completed = ok(&mut cmd("bash", &["-c", bash]));
    assert!(completed.contains("run") && completed.contains("rules"), "{completed}");
    let zsh = std::fs::read_to_string("/usr/share/zsh/vendor-completions/_muttd").unwrap();
    assert!(zsh.starts_with("#compdef muttd"), "{}", &zsh[..40.min(zsh.len())]);
    let fish = std::fs::read_to_string("/usr/share/fish/vendor_completions.d/muttd.fish").unwrap();
    assert!(fish.contains("complete -c muttd"));
    let page = ok(cmd("man", &["-P", "cat", "muttd-run"]).env("MANWIDTH", "100"));
    assert!(page.contains("--migrate") && page.contains("--roles"), "{page}");
}

/// systemd-analyze verify, offline: both units (the template as each role's instance) load
/// without a warning, their commands exist, their man pages are installed.
fn verify_units(scratch: &Path) {
    let mut units = vec![PathBuf::from(UNIT)];
    for role in ROLES {
        let instance = scratch.join(format!("muttd@{role}.service"));
        std::fs::copy(TEMPLATE, &instance).unwrap();
        units.push(instance);
    }
    for unit in &units {
        let (status, out, err) = run(cmd("systemd-analyze", &["verify"]).arg(unit).current_dir(scratch), secs(60));
        assert!(status.success() && err.trim().is_empty(), "systemd-analyze verify {unit:?}: {status}\n{out}{err}");
        // The hardening stays at "OK" or better (exposure 0.0 safest … 10.0 unsafe).
        let (status, out, err) =
            run(cmd("systemd-analyze", &["security", "--offline=yes"]).arg(unit).current_dir(scratch), secs(60));
        let exposure: f64 = out
            .lines()
            .find_map(|l| l.split("exposure level for ").nth(1))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("systemd-analyze security {unit:?}: {status}\n{out}{err}"));
        assert!(exposure <= 2.0, "{unit:?}: exposure {exposure}\n{out}");
    }
    for unit in [UNIT, TEMPLATE] {
        let s = service_settings(unit);
        assert_eq!(one(&s, "Restart"), "on-failure", "{unit}");
        for (key, value) in [
            ("User", "mutt"),
            ("Environment", "MUTT_CONFIG=/etc/mutt/mutt.toml"),
            ("EnvironmentFile", "-/etc/mutt/env"),
            ("WorkingDirectory", "/var/lib/mutt"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ReadWritePaths", "/var/lib/mutt"),
            ("PrivateTmp", "yes"),
            ("ProtectHome", "yes"),
            ("CapabilityBoundingSet", ""),
            ("AmbientCapabilities", ""),
        ] {
            assert_eq!(one(&s, key), value, "{unit}: {key}=");
        }
    }
    assert_eq!(one(&service_settings(UNIT), "ExecStart"), "/usr/bin/muttd run");
    assert_eq!(one(&service_settings(TEMPLATE), "ExecStart"), "/usr/bin/muttd %i");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// muttd run as muttd.service runs it, an alert through it, and its system calls checked.
fn alert_through_the_installed_muttd(scratch: &Path) {
    let settings = service_settings(UNIT);
    let unit = unit_exec(&settings);
    assert_eq!(unit.argv, ["/usr/bin/muttd", "run"]);
    // Loopback ports of its own instead of the packaged 8080…8090.
    let port = free_port().to_string();
    let ports: Vec<(String, String)> = [
        ("MUTT_INGESTOR__PORT", port.as_str()),
        ("MUTT_ALERTER__PORT", "0"),
        ("MUTT_FORWARDER__PORT", "0"),
        ("MUTT_WEB__PORT", "0"),
        ("MUTT_INGESTOR__RUN_SYSLOG_ADDRESS", "127.0.0.1:0"),
        ("MUTT_INGESTOR__RUN_TRAPS_ADDRESS", "127.0.0.1:0"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    // Where the alerts go, as muttd reads the packaged configuration.
    let env: HashMap<String, String> = unit.env.iter().chain(&ports).cloned().collect();
    let config = config::load(env.get("MUTT_CONFIG").map(Path::new), &env).unwrap();
    let alerts = config.alerts_file();
    assert!(alerts.starts_with("/var/lib/mutt"), "{alerts:?}");

    let trace_dir = scratch.join("trace");
    std::fs::create_dir(&trace_dir).unwrap();
    ok(&mut cmd("chown", &[&unit.user, trace_dir.to_str().unwrap()]));
    let (trace, log) = (trace_dir.join("strace.out"), scratch.join("muttd.log"));
    let mut running = Running::start(&unit, &ports, &trace, &log);

    let muttd = |args: &[&str]| ok(&mut unit.command(&[&["/usr/bin/muttd"][..], args].concat(), &ports));
    let imported = muttd(&["rules", "import", "/usr/share/doc/muttd/examples/rules.yaml"]);
    assert!(imported.contains("5 created"), "{imported}");
    let sent = muttd(&["send", "--hostname", "router1", "--message", "LINK-DOWN on Gi0/1"]);
    assert!(sent.starts_with("200"), "{sent}");
    let deadline = Instant::now() + secs(30);
    let line = loop {
        let text = std::fs::read_to_string(&alerts).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("LINK-DOWN on Gi0/1")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no alert in {alerts:?}: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(line.contains("NetOps"), "the LINK-DOWN rule's team: {line}");
    let uid: u32 = getent("passwd", "mutt").unwrap()[2].parse().unwrap();
    assert_eq!(std::fs::metadata(&alerts).unwrap().uid(), uid, "muttd ran as mutt");

    let status = running.stop().expect("muttd stops on SIGTERM within 60 s");
    assert!(status.success(), "muttd exits 0 on SIGTERM: {status}\n{}", std::fs::read_to_string(&log).unwrap());
    check_trace_against_unit(&std::fs::read_to_string(&trace).unwrap(), &settings, &unit.dir);
}

/// `dpkg --purge`: nothing of the package is left, not even the links of enabled units.
fn purge_and_check() {
    ok(&mut cmd("systemctl", &["enable", "muttd.service", "muttd@alerter.service"]));
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants");
    assert!(wants.join("muttd@alerter.service").is_symlink());
    ok(&mut cmd("dpkg", &["--purge", "muttd"]));
    assert!(!package_present(), "muttd is purged");
    assert!(getent("passwd", "mutt").is_none(), "the mutt user is removed on purge");
    assert!(getent("group", "mutt").is_none(), "the mutt group is removed on purge");
    for path in ["/etc/mutt", "/var/lib/mutt", "/usr/bin/muttd", UNIT, TEMPLATE] {
        assert!(!Path::new(path).exists(), "{path} is left after purge");
    }
    for link in ["muttd.service", "muttd@alerter.service"] {
        assert!(!wants.join(link).is_symlink(), "{link} is still enabled after purge");
    }
}

#[test]
fn the_package_installs_runs_an_alert_through_as_mutt_and_purges_cleanly() {
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        mutt_testkit::skip_or_fail(
            "the_package_installs_runs_an_alert_through_as_mutt_and_purges_cleanly",
            "installing a package needs root",
        );
        return;
    }
    for tool in ["dpkg-deb", "systemd-analyze", "strace", "runuser", "man"] {
        assert!(have(tool), "{tool} is missing: scripts/test-services.sh start installs it");
    }
    let _lock = machine_lock();
    assert!(
        !package_present(),
        "a muttd package is installed on this machine (by hand, or left by a killed run of this test): \
         `dpkg --purge muttd` before running this test"
    );
    assert!(getent("passwd", "mutt").is_none(), "a mutt user exists already; this test would remove it on purge");
    let scratch = tempfile::tempdir().unwrap();
    let deb = build_package(scratch.path());

    let _purge = PurgeOnDrop;
    let installed = ok(&mut cmd("dpkg", &["-i", deb.to_str().unwrap()]));
    assert!(installed.contains("Setting up muttd"), "{installed}");
    // Nothing is started on installation.
    let uid: u32 = getent("passwd", "mutt").expect("the mutt user")[2].parse().unwrap();
    assert_eq!(processes_of(uid), Vec::<u32>::new(), "a process runs as mutt after dpkg -i");
    let (_, enabled, _) = run(&mut cmd("systemctl", &["is-enabled", "muttd.service"]), secs(30));
    assert_eq!(enabled.trim(), "disabled");
    check_user_and_files();
    check_version_completions_and_man();
    verify_units(scratch.path());
    alert_through_the_installed_muttd(scratch.path());
    purge_and_check();
}
