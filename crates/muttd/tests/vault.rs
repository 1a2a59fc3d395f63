//! `muttd run` with its secrets in Vault (the testkit's stub of Vault's documented API): the
//! ingest key is read at start through AppRole and KV v2, the token is renewed while it runs,
//! and a key rotated in Vault is accepted within the refresh interval while the old one is
//! refused from then on, without a restart; the log holds no secret value.

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
