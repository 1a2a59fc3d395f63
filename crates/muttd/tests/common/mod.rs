//! Set-up shared by muttd's process tests: child processes that do not outlive their test,
//! `muttd` with a clean environment and ports the OS picks, the addresses `muttd run` prints,
//! and a private Prometheus (the Debian package) on loopback.

// Each test file is a crate of its own and uses only some of these helpers.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// SIGTERM; the exit status once it has exited, or `None` if it still runs after `within`.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        self.wait_for_exit(within)
    }

    /// The exit status once the process has exited by itself, or `None` after `within`.
    pub fn wait_for_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

impl Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `cmd` in `dir` with nothing of the test's environment but PATH, every role on a port the
/// OS picks, and workers that block on an empty queue for 0.2 s at most.
pub fn in_dir<'a>(cmd: &'a mut Command, dir: &Path) -> &'a mut Command {
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MUTT_INGESTOR__PORT", "0")
        .env("MUTT_ALERTER__PORT", "0")
        .env("MUTT_FORWARDER__PORT", "0")
        .env("MUTT_WEB__PORT", "0")
        // `muttd run`'s trap listener (127.0.0.1:1162 by default) on a port of its own too.
        .env("MUTT_INGESTOR__RUN_TRAPS_ADDRESS", "127.0.0.1:0")
        // And its syslog listeners (127.0.0.1:5514 UDP and TCP by default).
        .env("MUTT_INGESTOR__RUN_SYSLOG_ADDRESS", "127.0.0.1:0")
        .env("MUTT_WORKER__BLOCK_TIMEOUT_SECS", "0.2")
}

/// The binary under test, [`in_dir`] `dir`.
pub fn muttd(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_muttd"));
    in_dir(&mut cmd, dir);
    cmd
}

/// `cmd run` with its stdout read line by line (on a thread of its own, so that the pipe
/// never fills); stderr as `cmd` says.
pub fn spawn_run(cmd: &mut Command) -> (KillOnDrop, Stdout) {
    let mut child = KillOnDrop(cmd.arg("run").stdout(Stdio::piped()).spawn().expect("spawn muttd run"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, Stdout(rx))
}

/// The lines `muttd run` writes on stdout.
pub struct Stdout(Receiver<String>);

impl Stdout {
    /// Hands each line to `done` until it returns true; fails the test after 30 s without
    /// `what`.
    pub fn read_until(&self, what: &str, mut done: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = self.0.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            if done(&line.unwrap_or_else(|_| panic!("muttd run prints {what}"))) {
                return;
            }
        }
    }

    /// The ingestor's `/ingest` URL, from `muttd: ingestor listening on http://…`.
    pub fn ingest_url(&self) -> String {
        let mut url = String::new();
        self.read_until("the ingestor's address", |line| {
            if let Some(addr) = line.strip_prefix("muttd: ingestor listening on ") {
                url = format!("{}/ingest", addr.trim());
            }
            !url.is_empty()
        });
        url
    }
}

/// The role and address of a line `muttd: <role> listening on http://<address>`.
pub fn listening(line: &str) -> Option<(&str, SocketAddr)> {
    let (role, addr) = line.strip_prefix("muttd: ")?.split_once(" listening on http://")?;
    Some((role, addr.parse().expect("an address")))
}

/// A private Prometheus on a free loopback port, reading `config`, its data in `dir`; its
/// base URL.
pub fn start_prometheus(dir: &Path, config: &Path) -> (KillOnDrop, String) {
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn prometheus (Debian package `prometheus`, installed by scripts/lib/services.sh)");
    (KillOnDrop(child), format!("http://127.0.0.1:{port}"))
}

/// Waits (30 s at most) until the Prometheus at `base` says it is ready.
pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/-/ready")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "prometheus did not become ready at {base}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Prometheus API answer's `data` (fails the test on an error status).
pub async fn prometheus_api(http: &reqwest::Client, base: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let url = reqwest::Url::parse_with_params(&format!("{base}{path}"), params).unwrap();
    let body: Value = http.get(url).send().await.expect("ask prometheus").json().await.expect("JSON");
    assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
    body["data"].clone()
}

/// [`muttd`] in `dir` on `site`'s backend: its Redis and PostgreSQL, or its embedded data
/// directory.
pub fn on_site(site: &mutt_testapp::Site, dir: &Path) -> Command {
    let mut cmd = muttd(dir);
    match site.kind() {
        mutt_testapp::BackendKind::Embedded => cmd.env("MUTT_DATA_DIR", site.data_dir().unwrap()),
        mutt_testapp::BackendKind::RedisPostgres => cmd
            .env("MUTT_REDIS__URL", site.redis_url().unwrap())
            .env("MUTT_REDIS__KEY_PREFIX", site.key_prefix().unwrap())
            .env("MUTT_DATABASE__URL", site.database_url().unwrap()),
    };
    cmd
}

/// An in-process muttd's configuration on `site` (its Redis and PostgreSQL, or its embedded
/// data directory) delivering to `webhook_url`: as [`in_dir`], every role on a port the OS
/// picks and workers that block on an empty queue for 0.2 s at most.
pub fn site_config(site: &mutt_testapp::Site, webhook_url: String) -> muttd::config::Config {
    let mut c = muttd::config::Config::default();
    c.redis.url = site.redis_url().map(str::to_owned);
    // Embedded: the default prefix, the queue names `Site::open` and `muttd run` use too.
    if let Some(prefix) = site.key_prefix() {
        c.redis.key_prefix = prefix.to_owned();
    }
    c.database.url = site.database_url().map(str::to_owned);
    if let Some(dir) = site.data_dir() {
        c.data_dir = dir.to_owned();
    }
    c.forwarder.webhook_url = Some(webhook_url);
    (c.ingestor.port, c.alerter.port, c.forwarder.port, c.web.port) = (0, 0, 0, 0);
    c.worker.block_timeout_secs = 0.2;
    c
}

/// Every role in this process on `config` (`app::start` as `muttd run` does it, migrating)
/// with `secrets`: the app, a client of the ingestor sending `ingest_key`, and the web role's
/// base URL.
pub async fn start_all(
    config: &muttd::config::Config,
    secrets: &[(&str, &str)],
    ingest_key: &str,
) -> (muttd::app::App, mutt_testapp::ApiClient, String) {
    use muttd::app::{Role, StartOptions};
    let secrets =
        muttd::secrets::EnvSecrets::new(secrets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    let roles = [Role::Ingestor, Role::Alerter, Role::Forwarder, Role::Web];
    let app =
        muttd::app::start(config, &secrets, &roles, StartOptions { migrate: true }).await.expect("pipeline starts");
    let ingest =
        mutt_testapp::ApiClient::new(format!("http://{}", app.address(Role::Ingestor).unwrap()), Some(ingest_key));
    let web = format!("http://{}", app.address(Role::Web).unwrap());
    (app, ingest, web)
}
