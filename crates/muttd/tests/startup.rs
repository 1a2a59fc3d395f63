//! Starting `muttd` processes with the original's variables: values the original refused at
//! start (spec §1.3, §11.1) make muttd exit with status 1 naming the variable, and the
//! original's separate probe ports (`HEALTH_PORT_ALERTER`, `HEALTH_PORT_MOOG`) answer
//! `/health` and `/live`; a second SIGTERM ends a slow stop.

mod common;

use common::KillOnDrop as Proc;
use mutt_testkit::WebhookReceiver;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `muttd <args>` in `dir` with nothing in its environment but PATH and `env`.
fn muttd(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_muttd"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUTT_LOG__LEVEL", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a command that must refuse to start: its exit status and stderr, within 20 s.
fn refused(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = Proc(cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn muttd"));
    let stderr = child.0.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = child.wait_for_exit(Duration::from_secs(20)).expect("muttd exits instead of starting");
    (status.code(), reader.join().unwrap_or_default())
}

/// Starts a long-running `muttd`; returns it with the lines it printed up to `last` (a line
/// containing it).
fn started(mut cmd: Command, last: &str) -> (Proc, Vec<String>) {
    let mut child = Proc(cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn muttd"));
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines.iter().any(|l: &String| l.contains(last)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("muttd did not print {last:?}; printed {lines:?}"),
        }
    }
    (child, lines)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A command line, its environment, and what stderr must say.
type Refusal<'a> = (&'a [&'a str], Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn the_originals_invalid_variables_exit_1_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let redis = mutt_testkit::redis_url();
    let prefix = mutt_testkit::unique_prefix();
    let on_redis = [("MUTT_REDIS__URL", redis.as_str()), ("MUTT_REDIS__KEY_PREFIX", prefix.as_str())];
    let cases: Vec<Refusal> = vec![
        (&["ingestor"], vec![("SERVER_PORT_INGESTOR", "0")], "SERVER_PORT_INGESTOR=\"0\" is not a port"),
        (&["ingestor"], vec![("SERVER_PORT_INGESTOR", "65536")], "SERVER_PORT_INGESTOR=\"65536\" is not a port"),
        (&["alerter"], vec![("METRICS_PORT_ALERTER", "0")], "METRICS_PORT_ALERTER=\"0\" is not a port"),
        (&["alerter"], vec![("HEALTH_PORT_ALERTER", "70000")], "HEALTH_PORT_ALERTER=\"70000\" is not a port"),
        (&["forwarder"], vec![("METRICS_PORT_MOOG", "99999")], "METRICS_PORT_MOOG=\"99999\" is not a port"),
        (&["forwarder"], vec![("HEALTH_PORT_MOOG", "0")], "HEALTH_PORT_MOOG=\"0\" is not a port"),
        (&["web"], vec![("SERVER_PORT_WEBUI", "0")], "SERVER_PORT_WEBUI=\"0\" is not a port"),
        (
            &["alerter"],
            vec![("DB_POOL_MIN_CONN", "5"), ("DB_POOL_MAX_CONN", "2")],
            "DB_POOL_MIN_CONN=\"5\": must not be above DB_POOL_MAX_CONN=\"2\"",
        ),
        (&["forwarder"], vec![("MOOG_RATE_LIMIT", "0")], "MOOG_RATE_LIMIT=\"0\": must be at least 1"),
        (&["forwarder"], on_redis.to_vec(), "MOOG_WEBHOOK_URL is not set"),
        (&["run"], on_redis.to_vec(), "MOOG_WEBHOOK_URL is not set"),
    ];
    for (args, env, expected) in cases {
        let (code, stderr) = refused(muttd(dir.path(), args, &env));
        assert_eq!(code, Some(1), "muttd {args:?} with {env:?}: {stderr}");
        assert!(stderr.contains(expected), "muttd {args:?} with {env:?} says {stderr:?}");
    }
    // A forwarder on Redis without a webhook wrote no local alerts file behind the user's back.
    assert!(!dir.path().join("mutt-data/alerts.jsonl").exists());
}

#[test]
fn a_forwarder_on_redis_may_write_an_alerts_file_chosen_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, prefix) = (mutt_testkit::redis_url(), mutt_testkit::unique_prefix());
    let file = dir.path().join("alerts.jsonl");
    let env = [
        ("MUTT_REDIS__URL", redis.as_str()),
        ("MUTT_REDIS__KEY_PREFIX", prefix.as_str()),
        ("MUTT_FORWARDER__ALERTS_FILE", file.to_str().unwrap()),
        ("MUTT_FORWARDER__PORT", "0"),
    ];
    let (mut forwarder, _) = started(muttd(dir.path(), &["forwarder"], &env), "forwarder listening on");
    assert_eq!(forwarder.terminate(Duration::from_secs(20)).and_then(|s| s.code()), Some(0));
}

#[test]
fn a_forwarder_whose_authentication_sends_moog_api_key_refuses_to_start_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, prefix) = (mutt_testkit::redis_url(), mutt_testkit::unique_prefix());
    let data = dir.path().join("data");
    let base = [
        ("MUTT_REDIS__URL", redis.as_str()),
        ("MUTT_REDIS__KEY_PREFIX", prefix.as_str()),
        ("MOOG_WEBHOOK_URL", "http://127.0.0.1:9/events"),
        ("MUTT_FORWARDER__PORT", "0"),
    ];
    let embedded = [
        ("MUTT_DATA_DIR", data.to_str().unwrap()),
        ("MUTT_FORWARDER__WEBHOOK_URL", "http://127.0.0.1:9/events"),
        ("MUTT_FORWARDER__FORMAT", "legacy"),
        ("MUTT_INGESTOR__RUN_SYSLOG_ADDRESS", "127.0.0.1:0"),
        ("MUTT_INGESTOR__RUN_TRAPS_ADDRESS", "127.0.0.1:0"),
        ("MUTT_INGESTOR__PORT", "0"),
        ("MUTT_ALERTER__PORT", "0"),
        ("MUTT_FORWARDER__PORT", "0"),
        ("MUTT_WEB__PORT", "0"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| [&base[..], extra].concat();
    let cases: Vec<Refusal> = vec![
        (&["forwarder"], base.to_vec(), "forwarder.lam_auth = token sends it as the REST LAM auth_token"),
        (&["forwarder"], with(&[("MUTT_FORWARDER__LAM_AUTH", "basic")]), "lam_auth = basic sends it as the password"),
        (&["forwarder"], with(&[("MUTT_FORWARDER__FORMAT", "legacy")]), "format = legacy sends it as Authorization"),
        (&["run"], embedded.to_vec(), "format = legacy sends it as Authorization"),
    ];
    for (args, env, expected) in cases {
        let (code, stderr) = refused(muttd(dir.path(), args, &env));
        assert_eq!(code, Some(1), "muttd {args:?} with {env:?}: {stderr}");
        assert!(stderr.contains("MOOG_API_KEY is not set: "), "names the variable: {stderr:?}");
        assert!(stderr.contains(expected), "muttd {args:?} with {env:?} says {stderr:?}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A receiver without authentication, said on purpose: starts.
    let open = with(&[("MUTT_FORWARDER__LAM_AUTH", "none")]);
    let (mut forwarder, _) = started(muttd(dir.path(), &["forwarder"], &open), "forwarder listening on");
    assert_eq!(forwarder.terminate(Duration::from_secs(20)).and_then(|s| s.code()), Some(0));
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The probe port answers `/health` and `/live` (and nothing else); the role's own port keeps
/// `/health` and `/metrics`.
async fn check_probe_port(lines: &[String], role: &str, probe: u16, port: u16, service: &str) {
    let said = format!("muttd: {role} probes (/health, /live) also on http://127.0.0.1:{probe}");
    assert!(lines.contains(&said), "start-up output names the probe port: {lines:?}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let (status, body) = get(&http, format!("http://127.0.0.1:{probe}/health")).await;
    assert_eq!((status, &body["status"], &body["service"]), (200, &json!("healthy"), &json!(service)), "{body}");
    assert_eq!(get(&http, format!("http://127.0.0.1:{probe}/live")).await, (200, json!({"status": "alive"})));
    assert_eq!(get(&http, format!("http://127.0.0.1:{probe}/metrics")).await.0, 404, "metrics stay on {port}");
    assert_eq!(get(&http, format!("http://127.0.0.1:{port}/health")).await.0, 200);
    let metrics = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_port_moog_serves_the_forwarders_probes() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = WebhookReceiver::start().await;
    let (redis, prefix) = (mutt_testkit::redis_url(), mutt_testkit::unique_prefix());
    let (probe, port) = (free_port(), free_port());
    let (probe_s, port_s, url) = (probe.to_string(), port.to_string(), receiver.url());
    let env = [
        ("MUTT_REDIS__URL", redis.as_str()),
        ("MUTT_REDIS__KEY_PREFIX", prefix.as_str()),
        ("MOOG_WEBHOOK_URL", url.as_str()),
        ("MOOG_API_KEY", "startup-moog-key"),
        ("METRICS_PORT_MOOG", port_s.as_str()),
        ("HEALTH_PORT_MOOG", probe_s.as_str()),
    ];
    let (mut forwarder, lines) = started(muttd(dir.path(), &["forwarder"], &env), "probes (/health, /live)");
    check_probe_port(&lines, "forwarder", probe, port, "mutt-moog-forwarder").await;
    assert_eq!(forwarder.terminate(Duration::from_secs(20)).and_then(|s| s.code()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_port_alerter_serves_the_alerters_probes() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, prefix) = (mutt_testkit::redis_url(), mutt_testkit::unique_prefix());
    let database = mutt_testkit::fresh_database().await;
    let (probe, port) = (free_port(), free_port());
    let (probe_s, port_s) = (probe.to_string(), port.to_string());
    let env = [
        ("MUTT_REDIS__URL", redis.as_str()),
        ("MUTT_REDIS__KEY_PREFIX", prefix.as_str()),
        ("MUTT_DATABASE__URL", database.as_str()),
        ("METRICS_PORT_ALERTER", port_s.as_str()),
        ("HEALTH_PORT_ALERTER", probe_s.as_str()),
    ];
    let (mut alerter, lines) = started(muttd(dir.path(), &["alerter", "--migrate"], &env), "probes (/health, /live)");
    check_probe_port(&lines, "alerter", probe, port, "mutt-alerter").await;
    assert_eq!(alerter.terminate(Duration::from_secs(20)).and_then(|s| s.code()), Some(0));
}

/// The host's glibc as (major, minor), from `getconf GNU_LIBC_VERSION`.
fn host_glibc() -> (u32, u32) {
    let out = Command::new("getconf").arg("GNU_LIBC_VERSION").output().expect("run getconf");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let version = text.strip_prefix("glibc ").unwrap_or_else(|| panic!("unexpected getconf output {text:?}"));
    let mut parts = version.split('.').map(|p| p.parse::<u32>().expect("numeric glibc version"));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// build.rs links with packed relative relocations where the host's glibc loads them (2.36+),
/// which keeps ~1.9 MB of relocation records out of every role's RSS, and not elsewhere, where
/// the binary would not start.
#[test]
fn the_binary_packs_its_relocations_only_where_the_hosts_glibc_loads_them() {
    let bin = env!("CARGO_BIN_EXE_muttd");
    let dynamic = Command::new("readelf").args(["-d", bin]).output().expect("run readelf (binutils)");
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    let packed = dynamic.lines().any(|l| l.contains("(RELR)"));
    let glibc = host_glibc();
    assert_eq!(packed, glibc >= (2, 36), "glibc {glibc:?}, DT_RELR present: {packed}");
    let headers = Command::new("readelf").args(["-SW", bin]).output().expect("run readelf -S");
    let headers = String::from_utf8_lossy(&headers.stdout);
    let rela = headers
        .lines()
        .find(|l| l.contains(".rela.dyn"))
        .and_then(|l| l.split_whitespace().skip_while(|w| !w.ends_with(".rela.dyn")).nth(4))
        .and_then(|size| u64::from_str_radix(size, 16).ok())
        .expect(".rela.dyn's size");
    if packed {
        assert!(rela < 64 * 1024, "relative relocations left unpacked: .rela.dyn is {rela} bytes");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = muttd(dir.path(), &["--version"], &[]).output().expect("run muttd --version");
    assert!(out.status.success(), "the loader refused the binary: {}", String::from_utf8_lossy(&out.stderr));
}

/// A stop waiting for a Redis that no longer answers (the forwarder hands back its lease first):
/// a second SIGTERM ends the process at once, with status 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_ends_a_slow_stop_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = mutt_testkit::redis_url();
    let rest = url.trim_start_matches("redis://");
    let (target, db) = rest.split_once('/').map_or((rest.to_owned(), String::new()), |(h, d)| (h.into(), d.into()));
    let proxy = mutt_testkit::FaultProxy::start(target).await.unwrap();
    let (redis, prefix) = (format!("redis://{}/{db}", proxy.addr()), mutt_testkit::unique_prefix());
    let receiver = WebhookReceiver::start().await;
    let webhook = receiver.url();
    let env = [
        ("MUTT_REDIS__URL", redis.as_str()),
        ("MUTT_REDIS__KEY_PREFIX", prefix.as_str()),
        ("MUTT_FORWARDER__WEBHOOK_URL", webhook.as_str()),
        ("MOOG_API_KEY", "moog-key"),
        ("MUTT_FORWARDER__PORT", "0"),
    ];
    let (mut child, _) = started(muttd(dir.path(), &["forwarder"], &env), "forwarder listening on");
    proxy.set_mode(mutt_testkit::FaultMode::Blackhole);
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(child.wait_for_exit(Duration::from_secs(1)).is_none(), "the stop waits for the silent Redis");
    let status = child.terminate(Duration::from_secs(3)).expect("a second SIGTERM ends muttd at once");
    assert_eq!(status.code(), Some(1), "{status:?}");
}
