//! The Vault client against the testkit's stub of Vault's documented API: start-up, renewal,
//! expiry and re-login, a rotated secret picked up within the refresh interval, HTTPS trusted
//! through VAULT_CACERT.

use mutt_secrets::{VaultConfig, VaultSecrets};
use mutt_testkit::VaultStub;
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Setup {
    stub: VaultStub,
    config: VaultConfig,
    _dir: tempfile::TempDir,
}

async fn setup(ttl: Duration) -> Setup {
    let stub = VaultStub::start("role-1", "secret-id-1", ttl).await.unwrap();
    // Where the original's default path points once the mount is understood (spec §11.3).
    stub.put("secret", "mutt", json!({ "INGEST_API_KEY": "key-one", "DB_PASS_CURRENT": "pw", "PORTISH": 5 }));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret_id");
    std::fs::write(&file, "secret-id-1\n").unwrap();
    let mut config = VaultConfig::new(stub.url(), "role-1");
    config.secret_id_file = file;
    config.check_interval = Duration::from_millis(200);
    config.refresh_interval = Duration::from_millis(300);
    config.renew_threshold = ttl / 2;
    Setup { stub, config, _dir: dir }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn start_up_reads_the_secret_at_the_mount_aware_path() {
    let s = setup(Duration::from_secs(60)).await;
    let stop = CancellationToken::new();
    let v = VaultSecrets::start(s.config.clone(), stop.clone()).await.unwrap();
    assert_eq!(v.get("INGEST_API_KEY").unwrap().expose(), "key-one");
    assert_eq!(v.get("PORTISH").unwrap().expose(), "5");
    assert!(v.get("WEBUI_API_KEY").is_none());
    let c = s.stub.counts();
    assert_eq!((c.logins, c.lookups, c.reads), (1, 1, 1));
    // `mutt` without the mount reads the same secret.
    let mut short = s.config.clone();
    short.secrets_path = "mutt".into();
    assert!(VaultSecrets::start(short, stop.clone()).await.is_ok());
    // A path with nothing behind it, a wrong secret-id and an empty file stop the start.
    let mut missing = s.config.clone();
    missing.secrets_path = "secret/mutt/prod".into();
    let e = VaultSecrets::start(missing, stop.clone()).await.err().unwrap().to_string();
    assert!(e.contains("secret/data/mutt/prod"), "{e}");
    std::fs::write(&s.config.secret_id_file, "wrong").unwrap();
    let e = VaultSecrets::start(s.config.clone(), stop.clone()).await.err().unwrap().to_string();
    assert!(e.contains("invalid role or secret ID") && !e.contains("wrong"), "{e}");
    std::fs::write(&s.config.secret_id_file, "  \n").unwrap();
    let e = VaultSecrets::start(s.config.clone(), stop.clone()).await.err().unwrap().to_string();
    assert!(e.contains("VAULT_SECRET_ID_FILE") && e.contains("empty"), "{e}");
    stop.cancel();
}

#[tokio::test]
async fn the_token_is_renewed_before_it_expires() {
    let s = setup(Duration::from_secs(2)).await;
    let stop = CancellationToken::new();
    let v = VaultSecrets::start(s.config.clone(), stop.clone()).await.unwrap();
    // Three lifetimes: without renewals the token would have expired twice.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let c = s.stub.counts();
    assert!(c.renewals >= 3, "{c:?}");
    assert_eq!(c.logins, 1, "renewal kept the first token: {c:?}");
    assert_eq!(c.refused, 0, "{c:?}");
    assert_eq!(v.get("INGEST_API_KEY").unwrap().expose(), "key-one");
    stop.cancel();
}

#[tokio::test]
async fn a_failed_renewal_or_an_expired_token_means_a_new_login() {
    let s = setup(Duration::from_secs(2)).await;
    let stop = CancellationToken::new();
    let v = VaultSecrets::start(s.config.clone(), stop.clone()).await.unwrap();
    s.stub.fail_renewals(true);
    eventually("a login after a failed renewal", || s.stub.counts().logins >= 2).await;
    assert!(s.stub.counts().failed_renewals >= 1);
    s.stub.fail_renewals(false);
    // Every token expires at once (as after a Vault restart without persistence of tokens).
    let before = s.stub.counts().logins;
    s.stub.expire_tokens();
    eventually("a login after expiry", || s.stub.counts().logins > before).await;
    // The secret is still read with the new token.
    s.stub.put("secret", "mutt", json!({ "INGEST_API_KEY": "key-two" }));
    eventually("the value read with the new token", || v.get("INGEST_API_KEY").unwrap().expose() == "key-two").await;
    stop.cancel();
}

#[tokio::test]
async fn a_rotated_secret_is_used_within_the_refresh_interval() {
    let s = setup(Duration::from_secs(60)).await;
    let stop = CancellationToken::new();
    let v = VaultSecrets::start(s.config.clone(), stop.clone()).await.unwrap();
    let mut changes = v.subscribe();
    s.stub.put("secret", "mutt", json!({ "INGEST_API_KEY": "key-two", "DB_PASS_CURRENT": "pw" }));
    let t0 = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), changes.changed()).await.unwrap().unwrap();
    // The refresh interval is 300 ms, checked every 200 ms: well under a second.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(v.get("INGEST_API_KEY").unwrap().expose(), "key-two");
    assert!(v.get("PORTISH").is_none(), "a key removed from the secret is gone");
    // Vault unreachable: the last values stay in use.
    drop(s.stub);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(v.get("INGEST_API_KEY").unwrap().expose(), "key-two");
    stop.cancel();
}

#[tokio::test]
async fn a_token_that_expired_between_checks_is_refused_and_replaced_by_a_new_login() {
    let s = setup(Duration::from_secs(1)).await;
    let mut config = s.config.clone();
    // The token lives 1 s but is looked at only every 5 s: the secret read meets it expired.
    config.check_interval = Duration::from_secs(5);
    config.refresh_interval = Duration::from_millis(300);
    let stop = CancellationToken::new();
    let v = VaultSecrets::start(config, stop.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    s.stub.put("secret", "mutt", json!({ "INGEST_API_KEY": "key-three" }));
    eventually("the value read after a new login", || v.get("INGEST_API_KEY").unwrap().expose() == "key-three").await;
    let c = s.stub.counts();
    assert!(c.refused >= 1, "the expired token was refused: {c:?}");
    assert!(c.logins >= 2, "{c:?}");
    assert_eq!(c.renewals, 0, "{c:?}");
    stop.cancel();
}

/// A stub over HTTPS (certificate for 127.0.0.1 signed by `certs.ca`) and a config for it.
async fn setup_tls(certs: &mutt_testkit::TestCertificates, ca_file: Option<std::path::PathBuf>) -> Setup {
    let stub = VaultStub::start_tls("role-1", "secret-id-1", Duration::from_secs(60), certs).await.unwrap();
    stub.put("secret", "mutt", json!({ "INGEST_API_KEY": "key-over-tls" }));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret_id");
    std::fs::write(&file, "secret-id-1\n").unwrap();
    let mut config = VaultConfig::new(stub.url(), "role-1");
    config.secret_id_file = file;
    config.ca_file = ca_file;
    config.timeout = Duration::from_secs(5);
    Setup { stub, config, _dir: dir }
}

#[tokio::test]
async fn vault_over_https_is_trusted_with_vault_cacert_only() {
    let certs = mutt_testkit::TestCertificates::generate().unwrap();
    let stop = CancellationToken::new();
    // VAULT_CACERT naming the CA that signed Vault's certificate: logged in and read.
    let s = setup_tls(&certs, Some(certs.ca.clone())).await;
    assert!(s.stub.url().starts_with("https://"), "{}", s.stub.url());
    let v = VaultSecrets::start(s.config.clone(), stop.clone()).await.unwrap();
    assert_eq!(v.get("INGEST_API_KEY").unwrap().expose(), "key-over-tls");
    assert_eq!(s.stub.counts().logins, 1);

    // Without VAULT_CACERT (the system's CAs) and with another CA: refused before any login,
    // saying that Vault's certificate is not trusted.
    let other = mutt_testkit::TestCertificates::generate().unwrap();
    for (ca, case) in [(None, "no VAULT_CACERT"), (Some(other.ca.clone()), "another CA")] {
        let mut config = s.config.clone();
        config.ca_file = ca;
        let e = VaultSecrets::start(config, stop.clone()).await.err().expect(case).to_string();
        assert!(
            e.contains("invalid peer certificate") && e.contains("not signed by a CA in VAULT_CACERT"),
            "{case}: {e}"
        );
        assert!(!e.contains("secret-id-1"), "{case}: {e}");
    }
    assert_eq!(s.stub.counts().logins, 1, "no login over an untrusted connection");

    // A VAULT_CACERT that is missing or not PEM is a configuration error naming the variable.
    let junk = s._dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    for path in [s._dir.path().join("missing.pem"), junk] {
        let mut config = s.config.clone();
        config.ca_file = Some(path.clone());
        let e = VaultSecrets::start(config, stop.clone()).await.err().unwrap().to_string();
        assert!(e.contains("VAULT_CACERT") && e.contains(&path.display().to_string()), "{e}");
    }
    stop.cancel();
}
