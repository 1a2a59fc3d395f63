//! `muttd run` with its secrets in Vault (the testkit's stub of Vault's documented API): the
//! ingest key is read at start through AppRole and KV v2, the token is renewed while it runs,
//! and a key rotated in Vault is accepted within the refresh interval while the old one is
//! refused from then on, without a restart; so are a rotated WEBUI_API_KEY (the management
//! API) and MOOG_API_KEY (the forwarder's bearer to the webhook); the log holds no secret value.

mod common;

use mutt_testkit::VaultStub;
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};

const OLD_KEY: &str = "ingest-old-2b7e51";
const NEW_KEY: &str = "ingest-new-9c04da";
const WEB_KEY: &str = "web-key-61f3aa";
const SECRET_ID: &str = "approle-secret-id-d41e";

/// A secret file as an operator should leave it: readable by its owner only.
fn secret_file(path: &std::path::Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

async fn post(http: &reqwest::Client, url: &str, key: &str) -> u16 {
    let event = json!({ "hostname": "vault-host", "message": "rotation check", "timestamp": "2026-12-01T00:00:00Z" });
    http.post(url).header("X-API-KEY", key).json(&event).send().await.expect("ingest answers").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_in_vault_is_used_within_the_refresh_interval() {
    let stub = VaultStub::start("mutt-role", SECRET_ID, Duration::from_secs(3)).await.unwrap();
    // Written where scripts/vault-init.sh puts it; read as VAULT_SECRETS_PATH=secret/mutt/prod.
    stub.put("secret", "mutt/prod", json!({ "INGEST_API_KEY": OLD_KEY, "WEBUI_API_KEY": WEB_KEY }));
    let dir = tempfile::tempdir().unwrap();
    let secret_id = dir.path().join("vault_secret_id");
    secret_file(&secret_id, &format!("{SECRET_ID}\n"));
    let log_path = dir.path().join("muttd.log");
    let mut cmd = common::muttd(dir.path());
    cmd.env("VAULT_ADDR", stub.url())
        .env("VAULT_ROLE_ID", "mutt-role")
        .env("VAULT_SECRET_ID_FILE", &secret_id)
        .env("VAULT_SECRETS_PATH", "secret/mutt/prod")
        .env("VAULT_SECRETS_REFRESH_INTERVAL", "1")
        .env("VAULT_RENEW_CHECK_INTERVAL", "1")
        .env("VAULT_TOKEN_RENEW_THRESHOLD", "2")
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let (mut child, stdout) = common::spawn_run(&mut cmd);
    let url = stdout.ingest_url();
    let http = reqwest::Client::new();

    assert_eq!(post(&http, &url, OLD_KEY).await, 200, "the key read from Vault at start");
    assert_eq!(post(&http, &url, NEW_KEY).await, 401);
    stub.put("secret", "mutt/prod", json!({ "INGEST_API_KEY": NEW_KEY, "WEBUI_API_KEY": WEB_KEY }));
    let t0 = Instant::now();
    while post(&http, &url, NEW_KEY).await != 200 {
        assert!(t0.elapsed() < Duration::from_secs(15), "the rotated key was never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = t0.elapsed();
    // Refresh every second, checked every second: two seconds plus the request.
    assert!(took < Duration::from_secs(4), "accepted after {took:?}");
    assert_eq!(post(&http, &url, OLD_KEY).await, 401, "the old key is refused once the new one is in use");
    // Tokens live 3 s: the process keeps one by renewing it (and logs in again if it must).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(post(&http, &url, NEW_KEY).await, 200);
    let counts = stub.counts();
    assert!(counts.renewals >= 1, "{counts:?}");
    assert_eq!(counts.logins, 1, "renewals kept the first token: {counts:?}");
    assert!(child.terminate(Duration::from_secs(20)).is_some(), "muttd stops on SIGTERM");

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("vault: logged in"), "{log}");
    assert!(log.contains("INGEST_API_KEY changed"), "{log}");
    for secret in [OLD_KEY, NEW_KEY, WEB_KEY, SECRET_ID] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    println!("rotated key accepted after {took:?}; vault calls: {counts:?}");
}

#[test]
fn a_vault_that_refuses_the_login_stops_the_start() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stub = rt.block_on(VaultStub::start("mutt-role", SECRET_ID, Duration::from_secs(60))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret_id = dir.path().join("vault_secret_id");
    secret_file(&secret_id, "not-the-secret-id-77");
    let out = common::muttd(dir.path())
        .env("VAULT_ADDR", stub.url())
        .env("VAULT_ROLE_ID", "mutt-role")
        .env("VAULT_SECRET_ID_FILE", &secret_id)
        .arg("run")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Vault") && err.contains("invalid role or secret ID"), "{err}");
    assert!(!err.contains("not-the-secret-id-77"), "{err}");
    // A secret-id file every user may read is refused like any other secret file.
    std::fs::set_permissions(&secret_id, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = common::muttd(dir.path())
        .env("VAULT_ADDR", stub.url())
        .env("VAULT_ROLE_ID", "mutt-role")
        .env("VAULT_SECRET_ID_FILE", &secret_id)
        .arg("run")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("Vault secret-id") && err.contains("0644"), "{err}");
    assert_eq!(stub.counts().failed_logins, 1, "no login with a file open to everyone");
    drop(rt);
}

const WEB_OLD: &str = "web-old-5e27c0";
const WEB_NEW: &str = "web-new-a81f3d";
const MOOG_OLD: &str = "moog-old-0d93be";
const MOOG_NEW: &str = "moog-new-47ca12";

/// The ingestor's `/ingest` and the web role's `/api/v2/rules` URLs from `muttd run`'s stdout.
fn ingest_and_rules_urls(stdout: &common::Stdout) -> (String, String) {
    let (mut ingest, mut web) = (None, None);
    stdout.read_until("the ingestor's and the web role's addresses", |line| {
        match common::listening(line) {
            Some(("ingestor", addr)) => ingest = Some(format!("http://{addr}/ingest")),
            Some(("web", addr)) => web = Some(format!("http://{addr}/api/v2/rules")),
            _ => {}
        }
        ingest.is_some() && web.is_some()
    });
    (ingest.unwrap_or_default(), web.unwrap_or_default())
}

async fn get_status(http: &reqwest::Client, url: &str, key: &str) -> u16 {
    http.get(url).header("X-API-KEY", key).send().await.expect("web answers").status().as_u16()
}

/// Two unhandled events of one host and text (threshold 2): one meta-alert to the webhook.
async fn raise_meta_alert(http: &reqwest::Client, url: &str, host: &str) {
    let event =
        json!({ "hostname": host, "message": "no rule matches this", "timestamp": chrono::Utc::now().to_rfc3339() });
    let resp = http.post(url).header("X-API-KEY", OLD_KEY).json(&json!([event, event])).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// The `Authorization` headers of the accepted webhook requests once one about `host` arrived.
async fn bearer_for(receiver: &mutt_testkit::WebhookReceiver, host: &str) -> String {
    let t0 = Instant::now();
    loop {
        let got = receiver.accepted();
        if let Some(r) = got.iter().find(|r| r.raw.windows(host.len()).any(|w| w == host.as_bytes())) {
            return r.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no alert about {host} reached the webhook");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_and_moog_keys_rotated_in_vault_are_used_without_a_restart() {
    let stub = VaultStub::start("mutt-role", SECRET_ID, Duration::from_secs(60)).await.unwrap();
    let secrets = |web: &str, moog: &str| json!({ "INGEST_API_KEY": OLD_KEY, "WEBUI_API_KEY": format!("ops:{web}"), "MOOG_API_KEY": moog });
    stub.put("secret", "mutt/prod", secrets(WEB_OLD, MOOG_OLD));
    let receiver = mutt_testkit::WebhookReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_id = dir.path().join("vault_secret_id");
    secret_file(&secret_id, SECRET_ID);
    let log_path = dir.path().join("muttd.log");
    let mut cmd = common::muttd(dir.path());
    cmd.env("VAULT_ADDR", stub.url())
        .env("VAULT_ROLE_ID", "mutt-role")
        .env("VAULT_SECRET_ID_FILE", &secret_id)
        .env("VAULT_SECRETS_PATH", "secret/mutt/prod")
        .env("VAULT_SECRETS_REFRESH_INTERVAL", "1")
        .env("MOOG_WEBHOOK_URL", receiver.url())
        .env("MUTT_FORWARDER__FORMAT", "legacy")
        .env("UNHANDLED_THRESHOLD", "2")
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let (mut child, stdout) = common::spawn_run(&mut cmd);
    let (ingest, rules) = ingest_and_rules_urls(&stdout);
    let http = reqwest::Client::new();

    assert_eq!(get_status(&http, &rules, WEB_OLD).await, 200, "the web key read from Vault at start");
    assert_eq!(get_status(&http, &rules, WEB_NEW).await, 401);
    raise_meta_alert(&http, &ingest, "vault-before").await;
    assert_eq!(bearer_for(&receiver, "vault-before").await, format!("Bearer {MOOG_OLD}"));

    stub.put("secret", "mutt/prod", secrets(WEB_NEW, MOOG_NEW));
    let t0 = Instant::now();
    while get_status(&http, &rules, WEB_NEW).await != 200 {
        assert!(t0.elapsed() < Duration::from_secs(15), "the rotated web key was never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = t0.elapsed();
    // Refresh every second: the new key within two seconds plus the request.
    assert!(took < Duration::from_secs(4), "web key accepted after {took:?}");
    assert_eq!(get_status(&http, &rules, WEB_OLD).await, 401, "the old web key is refused from then on");
    // The forwarder read the same secret version in the same refresh.
    raise_meta_alert(&http, &ingest, "vault-after").await;
    assert_eq!(bearer_for(&receiver, "vault-after").await, format!("Bearer {MOOG_NEW}"));
    assert!(child.terminate(Duration::from_secs(20)).is_some(), "muttd stops on SIGTERM");

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("WEBUI_API_KEY changed") && log.contains("MOOG_API_KEY changed"), "{log}");
    for secret in [WEB_OLD, WEB_NEW, MOOG_OLD, MOOG_NEW, OLD_KEY, SECRET_ID] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    println!("rotated web key accepted after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_over_https_needs_the_ca_in_vault_cacert() {
    let certs = mutt_testkit::TestCertificates::generate().unwrap();
    let stub = VaultStub::start_tls("mutt-role", SECRET_ID, Duration::from_secs(60), &certs).await.unwrap();
    stub.put("secret", "mutt/prod", json!({ "INGEST_API_KEY": OLD_KEY, "WEBUI_API_KEY": WEB_KEY }));
    let dir = tempfile::tempdir().unwrap();
    let secret_id = dir.path().join("vault_secret_id");
    secret_file(&secret_id, SECRET_ID);
    let muttd = || {
        let mut cmd = common::muttd(dir.path());
        cmd.env("VAULT_ADDR", stub.url())
            .env("VAULT_ROLE_ID", "mutt-role")
            .env("VAULT_SECRET_ID_FILE", &secret_id)
            .env("VAULT_SECRETS_PATH", "secret/mutt/prod");
        cmd
    };
    // Without VAULT_CACERT the stub's private CA is not trusted: the start stops, saying why.
    let out = tokio::task::spawn_blocking({
        let mut cmd = muttd();
        move || cmd.arg("run").output().unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("VAULT_CACERT") && err.contains("certificate"), "{err}");
    assert_eq!(stub.counts().logins, 0);
    // With it, the secrets are read over HTTPS.
    let (mut child, stdout) = common::spawn_run(muttd().env("VAULT_CACERT", &certs.ca).stderr(Stdio::null()));
    let url = stdout.ingest_url();
    assert_eq!(post(&reqwest::Client::new(), &url, OLD_KEY).await, 200);
    assert_eq!(stub.counts().logins, 1);
    assert!(child.terminate(Duration::from_secs(20)).is_some(), "muttd stops on SIGTERM");
}
