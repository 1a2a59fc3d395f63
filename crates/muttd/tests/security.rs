//! Security of muttd's connections and secrets, as processes against real servers: TLS to
//! PostgreSQL (a private CA made with openssl) in verify-full and against a certificate for
//! another name, TLS to Redis by default for the original's variables, secret files open to
//! every user, `muttd config show`, and a whole pipeline run whose logs, queues, dead letters
//! and audit tables are searched for every configured secret value.

mod common;

use common::{muttd, spawn_run};
use mutt_testkit::{PostgresServer, ReceiverMode, RedisServer, TestCertificates, WebhookReceiver};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DB_PASS: &str = "db-pass-Q7v2xL9k";
const REDIS_PASS: &str = "redis-pass-M4t8pW1z";
const INGEST_KEY: &str = "ingest-key-H3n6cR5y";
const WEBUI_KEY: &str = "webui-key-B9d1sF2u";
const MOOG_KEY: &str = "moog-key-K5j0gT8e";

/// Runs a muttd command to its end (killed after 60 s): success, stdout, stderr (the log).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn muttd");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("muttd did not finish within 60 s");
    };
    let Output { status, stdout, stderr } = out.expect("muttd's output");
    (status.success(), String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

fn pg_url(server: &PostgresServer, params: &str) -> String {
    format!("postgres://mutt@127.0.0.1:{}/postgres?{params}", server.port())
}

#[test]
fn migrate_connects_in_verify_full_and_refuses_a_certificate_for_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate().expect("openssl");
    let good = PostgresServer::start_tls(&certs.cert, &certs.key, DB_PASS).expect("TLS PostgreSQL");
    let (cert, key) = certs.issue("wrong", "DNS:wrong.example").unwrap();
    let wrong = PostgresServer::start_tls(&cert, &key, DB_PASS).expect("TLS PostgreSQL, wrong name");
    let full = format!("sslmode=verify-full&sslrootcert={}", certs.ca.display());

    let (ok, _, log) = run(muttd(dir.path())
        .arg("migrate")
        .env("MUTT_DATABASE__URL", pg_url(&good, &full))
        .env("DB_PASS_CURRENT", DB_PASS));
    assert!(ok, "{log}");
    assert!(log.contains("sslmode=verify-full: TLS, certificate and host name checked against CA file"), "{log}");

    let (ok, _, log) = run(muttd(dir.path())
        .arg("migrate")
        .env("MUTT_DATABASE__URL", pg_url(&wrong, &full))
        .env("DB_PASS_CURRENT", DB_PASS));
    assert!(!ok, "a certificate for wrong.example is refused for 127.0.0.1");
    assert!(log.contains("not issued for the host muttd connects to"), "the error says what is wrong: {log}");
    assert!(log.contains("wrong.example") || log.contains("NotValidForName"), "{log}");
    assert!(!log.contains(DB_PASS));
    // The original's variables with its CA variable: require + CA = the chain is checked, the
    // name not (as libpq), so the same server is accepted.
    let (ok, _, log) = run(muttd(dir.path())
        .arg("migrate")
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", wrong.port().to_string())
        .env("DB_NAME", "postgres")
        .env("DB_USER", "mutt")
        .env("DB_TLS_CA_CERT_PATH", &certs.ca)
        .env("DB_PASS_CURRENT", DB_PASS));
    assert!(ok, "{log}");
    assert!(log.contains("sslmode=require: TLS, certificate checked against CA file"), "{log}");
}

#[test]
fn a_client_certificate_from_the_settings_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate().expect("openssl");
    let server = PostgresServer::start_tls_client_auth(&certs.cert, &certs.key, &certs.ca).expect("TLS PostgreSQL");
    let (cert, key) = certs.issue_client("client", "mutt").unwrap();
    let migrate = |key_mode: u32| {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(key_mode)).unwrap();
        run(muttd(dir.path())
            .arg("migrate")
            .env("MUTT_DATABASE__URL", pg_url(&server, "sslmode=verify-full"))
            .env("MUTT_DATABASE__CA_FILE", &certs.ca)
            .env("MUTT_DATABASE__CLIENT_CERT_FILE", &cert)
            .env("MUTT_DATABASE__CLIENT_KEY_FILE", &key))
    };
    let (ok, _, log) = migrate(0o600);
    assert!(ok, "{log}");
    assert!(log.contains("certificate and host name checked") && log.contains("client certificate"), "{log}");
    // The key is a secret file: open to everyone, it is refused.
    let (ok, _, log) = migrate(0o644);
    assert!(!ok && log.contains("0644") && log.contains("the client key"), "{log}");
}

#[test]
fn the_originals_variables_mean_tls_and_a_plain_server_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let plain = PostgresServer::start().expect("PostgreSQL");
    let legacy = |cmd: &mut Command| {
        cmd.arg("migrate")
            .env("DB_HOST", "127.0.0.1")
            .env("DB_PORT", plain.port().to_string())
            .env("DB_NAME", "postgres")
            .env("DB_USER", "mutt");
    };
    let mut cmd = muttd(dir.path());
    legacy(&mut cmd);
    let (ok, _, log) = run(&mut cmd);
    assert!(!ok, "no silent downgrade to plain text");
    assert!(log.contains("DB_TLS_ENABLED=false") && log.contains("does not support TLS"), "{log}");
    let mut cmd = muttd(dir.path());
    legacy(&mut cmd);
    let (ok, _, log) = run(cmd.env("DB_TLS_ENABLED", "false"));
    assert!(ok, "{log}");
    assert!(log.contains("no TLS (sslmode=disable)"), "the log says the connection is not encrypted: {log}");
    // require without a CA: encrypted, certificate not checked.
    let certs = TestCertificates::generate().expect("openssl");
    let tls = PostgresServer::start_tls(&certs.cert, &certs.key, DB_PASS).expect("TLS PostgreSQL");
    let (ok, _, log) = run(muttd(dir.path())
        .arg("migrate")
        .env("MUTT_DATABASE__URL", pg_url(&tls, "sslmode=require"))
        .env("DB_PASS_CURRENT", DB_PASS));
    assert!(ok, "{log}");
    assert!(log.contains("sslmode=require: TLS, server certificate not checked"), "{log}");
}

#[test]
fn redis_is_reached_over_tls_by_default_with_the_originals_variables() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate().expect("openssl");
    let tls = RedisServer::start_tls(&certs).expect("TLS redis-server");
    let (ok, out, log) = run(muttd(dir.path())
        .args(["status", "--json"])
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", tls.port().to_string())
        .env("REDIS_CA_CERT_PATH", &certs.ca));
    assert!(ok, "{log}");
    assert!(out.contains("queues"), "{out}");
    assert!(log.contains("TLS, server certificate checked against CA file"), "{log}");

    // A Redis without TLS, the same variables: refused, naming the switch.
    let plain = RedisServer::start(false).expect("redis-server");
    let (ok, _, log) = run(muttd(dir.path())
        .args(["status", "--json"])
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", plain.port().to_string()));
    assert!(!ok, "no silent downgrade to plain text");
    assert!(log.contains("REDIS_TLS_ENABLED=false"), "{log}");
    let (ok, _, log) = run(muttd(dir.path())
        .args(["status", "--json"])
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", plain.port().to_string())
        .env("REDIS_TLS_ENABLED", "false"));
    assert!(ok, "{log}");
    assert!(log.contains("no TLS (redis://)"), "{log}");
}

fn secret_file(dir: &Path, name: &str, value: &str, mode: u32) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

#[test]
fn secret_files_open_to_everyone_are_refused_unless_told_to_warn() {
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(dir.path(), "ingest_key", INGEST_KEY, 0o644);
    let mut cmd = muttd(dir.path());
    cmd.env("MUTT_DATA_DIR", dir.path()).env("INGEST_API_KEY_FILE", &file);
    let (ok, _, log) = run(cmd.arg("run"));
    assert!(!ok, "a world-readable key file stops the start");
    assert!(
        log.contains(&file) && log.contains("0644") && log.contains("MUTT_SECRETS__FILE_PERMISSIONS=warn"),
        "{log}"
    );
    assert!(!log.contains(INGEST_KEY));

    let mut cmd = muttd(dir.path());
    cmd.env("MUTT_DATA_DIR", dir.path())
        .env("INGEST_API_KEY_FILE", &file)
        .env("MUTT_SECRETS__FILE_PERMISSIONS", "warn")
        .stderr(Stdio::piped());
    let (mut child, stdout) = spawn_run(&mut cmd);
    stdout.ingest_url();
    assert!(child.terminate(Duration::from_secs(20)).is_some_and(|s| s.success()));
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(log.contains("WARN") && log.contains(&file), "{log}");
    assert!(!log.contains(INGEST_KEY));
}

#[test]
fn config_show_prints_the_configuration_without_secret_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(dir.path(), "db_pass", DB_PASS, 0o600);
    let (ok, out, log) = run(muttd(dir.path())
        .args(["config", "show"])
        .env("REDIS_HOST", "redis.internal")
        .env("DB_HOST", "pg.internal")
        .env("MUTT_DATABASE__URL", format!("postgres://mutt:{DB_PASS}@pg.internal/mutt?sslmode=verify-full"))
        .env("MOOG_WEBHOOK_URL", format!("https://moog.example/events?token={MOOG_KEY}"))
        .env("DB_PASS_CURRENT_FILE", &file)
        .env("INGEST_API_KEY", INGEST_KEY)
        .env("MOOG_API_KEY", MOOG_KEY));
    assert!(ok, "{log}");
    for secret in [DB_PASS, INGEST_KEY, MOOG_KEY] {
        assert!(!out.contains(secret) && !log.contains(secret), "{secret} shown:\n{out}");
    }
    assert!(out.contains("url = \"postgres://mutt:[redacted]@pg.internal/mutt?sslmode=verify-full\""), "{out}");
    assert!(out.contains("token=[redacted]"), "{out}");
    assert!(out.contains("url = \"rediss://redis.internal:6379/0\""), "{out}");
    assert!(out.contains("#   INGEST_API_KEY: environment variable INGEST_API_KEY"), "{out}");
    assert!(out.contains(&format!("#   DB_PASS_CURRENT: file {file} (DB_PASS_CURRENT_FILE, mode 0600)")), "{out}");
    assert!(out.contains("#   WEBUI_API_KEY: not set"), "{out}");
    assert!(out.contains("#   PostgreSQL: sslmode=verify-full"), "{out}");
    // What it prints is a configuration muttd reads back.
    let toml = dir.path().join("shown.toml");
    std::fs::write(&toml, &out).unwrap();
    let (ok, _, log) = run(muttd(dir.path()).args(["-c", toml.to_str().unwrap(), "config", "show", "--json"]));
    assert!(ok, "config show's output loads as a configuration file: {log}");
}

/// Every value in the Redis database, as text.
fn redis_dump(url: &str) -> (String, u64) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    let mut out = String::new();
    let mut dead = 0;
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
        // As bytes: some values are binary (the delivered ids' records); a secret would still
        // show as its text in the lossy conversion.
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "list" => redis::cmd("LRANGE").arg(&k).arg(0).arg(-1).query(&mut c).unwrap(),
            "zset" => redis::cmd("ZRANGE").arg(&k).arg(0).arg(-1).query(&mut c).unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&k).query(&mut c).unwrap(),
            "hash" => redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap(),
            // A short-lived key (a marker with a TTL) may expire between KEYS and GET.
            "string" => redis::cmd("GET").arg(&k).query::<Option<Vec<u8>>>(&mut c).unwrap().into_iter().collect(),
            _ => Vec::new(),
        };
        let values: Vec<String> = values.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect();
        if k.contains("dlq") {
            dead += values.len() as u64;
        }
        out.push_str(&format!("{k}: {}\n", values.join("\n")));
    }
    (out, dead)
}

/// Every row of the audit tables, as JSON text.
async fn audit_dump(server: &PostgresServer) -> String {
    let url = format!("host=127.0.0.1 port={} user=mutt dbname=postgres sslmode=disable", server.port());
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let mut out = String::new();
    for table in ["event_audit_log", "config_audit_log", "alert_rules"] {
        for row in c.query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[]).await.unwrap() {
            out.push_str(&row.get::<_, String>(0));
            out.push('\n');
        }
    }
    out
}

/// The environment `cmd` sets (it clears the rest).
fn env_of(cmd: &Command) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    cmd.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))).collect()
}

async fn events_delivered(receiver: &WebhookReceiver) -> usize {
    receiver.accepted().iter().map(|r| r.body["events"].as_array().map_or(1, Vec::len)).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_value_in_logs_queues_dead_letters_or_audit() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate().expect("openssl");
    let pg = PostgresServer::start_tls(&certs.cert, &certs.key, DB_PASS).expect("TLS PostgreSQL");
    let redis = RedisServer::start_with(false, &["--requirepass", REDIS_PASS]).expect("redis-server");
    let receiver = WebhookReceiver::start().await;
    let redis_pass_file = secret_file(dir.path(), "redis_pass", REDIS_PASS, 0o600);
    let ingest_file = secret_file(dir.path(), "ingest_key", INGEST_KEY, 0o640);
    let log_path = dir.path().join("muttd.log");
    let mut cmd = muttd(dir.path());
    cmd.env("MUTT_LOG__LEVEL", "debug")
        .env("MUTT_REDIS__URL", format!("redis://127.0.0.1:{}/0", redis.port()))
        .env("MUTT_DATABASE__URL", pg_url(&pg, &format!("sslmode=verify-full&sslrootcert={}", certs.ca.display())))
        .env("MUTT_FORWARDER__WEBHOOK_URL", receiver.url())
        .env("REDIS_PASS_CURRENT_FILE", &redis_pass_file)
        .env("DB_PASS_CURRENT", DB_PASS)
        .env("INGEST_API_KEY_FILE", &ingest_file)
        .env("WEBUI_API_KEY", WEBUI_KEY)
        .env("MOOG_API_KEY", MOOG_KEY);
    let (ok, _, migrate_log) = run(Command::new(cmd.get_program()).env_clear().envs(env_of(&cmd)).arg("migrate"));
    assert!(ok, "{migrate_log}");
    let (mut child, stdout) = spawn_run(cmd.stderr(std::fs::File::create(&log_path).unwrap()));
    let mut addrs = std::collections::HashMap::new();
    let mut printed = Vec::new();
    stdout.read_until("the ingestor's and web's addresses", |line| {
        printed.push(line.to_owned());
        if let Some((role, addr)) = common::listening(line) {
            addrs.insert(role.to_owned(), addr);
        }
        addrs.contains_key("ingestor") && addrs.contains_key("web")
    });
    let http = reqwest::Client::new();
    let rule = json!({"match_string": "CRITICAL", "trap_oid": null, "match_type": "contains", "priority": 10,
        "prod_handling": "Page_and_ticket", "dev_handling": "Ticket_only", "team_assignment": "NETO"});
    let r = http.post(format!("http://{}/api/v1/rules", addrs["web"])).header("X-API-KEY", WEBUI_KEY).json(&rule);
    assert_eq!(r.send().await.unwrap().status(), 201);
    let ingest = format!("http://{}/ingest", addrs["ingestor"]);
    let post = |n: usize| {
        let event = json!({"hostname": format!("host-{n}"), "message": format!("CRITICAL: failure {n}"),
            "timestamp": "2026-12-01T12:00:00Z"});
        http.post(&ingest).header("X-API-KEY", INGEST_KEY).json(&event).send()
    };
    // Until the alerter has the rule, events are unhandled; send until three are delivered.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while events_delivered(&receiver).await < 3 {
        assert!(Instant::now() < deadline, "events delivered to the webhook");
        assert_eq!(post(n).await.unwrap().status(), 200);
        n += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The receiver refuses the next ones for good: they go to the forwarder's dead letters.
    receiver.set_mode(ReceiverMode::Status(400));
    let redis_url = format!("redis://:{REDIS_PASS}@127.0.0.1:{}/0", redis.port());
    for i in 0..3 {
        assert_eq!(post(1000 + i).await.unwrap().status(), 200);
    }
    while redis_dump(&redis_url).1 < 3 {
        assert!(Instant::now() < deadline, "refused alerts dead-lettered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(child.terminate(Duration::from_secs(30)).is_some(), "muttd stops on SIGTERM");

    let log = std::fs::read_to_string(&log_path).unwrap();
    let (queues, dead) = redis_dump(&redis_url);
    let audit = audit_dump(&pg).await;
    // The run did what the search relies on: secrets in use, logs written, rows and dead letters.
    let bodies: Vec<_> = receiver.accepted().iter().map(|r| r.body.clone()).collect();
    assert!(bodies.iter().any(|b| b["auth_token"] == MOOG_KEY), "the Moog key was in use: {bodies:?}");
    assert!(log.lines().count() > 20 && log.contains("sslmode=verify-full"), "{log}");
    assert!(dead >= 3 && audit.contains("CRITICAL: failure"), "{queues}\n{audit}");
    let log = format!("{migrate_log}{log}");
    let haystacks = [("log", log.as_str()), ("stdout", &printed.join("\n")), ("redis", &queues), ("audit", &audit)];
    for secret in [DB_PASS, REDIS_PASS, INGEST_KEY, WEBUI_KEY, MOOG_KEY] {
        for (name, text) in haystacks {
            let line = text.lines().find(|l| l.contains(secret));
            assert!(line.is_none(), "{secret} found in the {name}: {}", line.unwrap_or_default());
        }
    }
}
