//! TLS to PostgreSQL against real servers with certificates from a private CA (openssl): each
//! sslmode connects or refuses as libpq's would, and the session really is encrypted.

use mutt_core::Secret;
use mutt_store::Store;
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_testkit::{PostgresServer, TestCertificates};

const PASSWORD: &str = "tls-pass-7f3a9c";

fn store(url: String, password: &str) -> PgStore {
    PgStore::new(&PostgresConfig { url, password: Some(Secret::new(password)), pool_size: 1 }).expect("store config")
}

/// Whether the pooled session is encrypted, as the server sees it.
async fn encrypted(store: &PgStore) -> bool {
    let client = store.pool().get().await.expect("connection");
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.expect("pg_stat_ssl").get(0)
}

fn url(server: &PostgresServer, host: &str, params: &str) -> String {
    format!("postgres://mutt@{host}:{}/postgres?{params}", server.port())
}

#[tokio::test]
async fn each_sslmode_against_a_server_with_a_matching_certificate() {
    let certs = TestCertificates::generate().expect("openssl");
    let server = PostgresServer::start_tls(&certs.cert, &certs.key, PASSWORD).expect("TLS PostgreSQL");
    let ca = certs.ca.display().to_string();
    for (host, params, want_tls) in [
        ("127.0.0.1", format!("sslmode=verify-full&sslrootcert={ca}"), true),
        ("localhost", format!("sslmode=verify-full&sslrootcert={ca}"), true),
        ("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={ca}"), true),
        ("127.0.0.1", "sslmode=require".to_owned(), true),
        ("127.0.0.1", "sslmode=prefer".to_owned(), true),
        ("127.0.0.1", "".to_owned(), true),
        ("127.0.0.1", "sslmode=disable".to_owned(), false),
    ] {
        let s = store(url(&server, host, &params), PASSWORD);
        s.ping().await.unwrap_or_else(|e| panic!("{host} {params}: {e}"));
        assert_eq!(encrypted(&s).await, want_tls, "{host} {params}");
    }
    // The password is checked over TLS (SCRAM), and a refusal does not repeat it.
    let s = store(url(&server, "127.0.0.1", "sslmode=require"), "not-the-password");
    let err = s.ping().await.expect_err("wrong password refused").to_string();
    assert!(err.contains("password") && !err.contains("not-the-password"), "{err}");
    // verify-full without the private CA: the system's CAs do not know it.
    let err = store(url(&server, "127.0.0.1", "sslmode=verify-full"), PASSWORD).ping().await.expect_err("unknown CA");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name() {
    let certs = TestCertificates::generate().expect("openssl");
    let (cert, key) = certs.issue("wrong", "DNS:wrong.example").expect("wrong-name certificate");
    let server = PostgresServer::start_tls(&cert, &key, PASSWORD).expect("TLS PostgreSQL");
    let ca = certs.ca.display().to_string();
    let full = store(url(&server, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")), PASSWORD);
    let err = full.ping().await.expect_err("name mismatch refused").to_string();
    assert!(err.contains("NotValidForName") || err.contains("not valid for name"), "{err}");
    assert!(err.contains("TLS"), "the error says it is about TLS: {err}");
    // The chain is fine, so verify-ca and require connect, encrypted.
    for params in [format!("sslmode=verify-ca&sslrootcert={ca}"), "sslmode=require".to_owned()] {
        let s = store(url(&server, "127.0.0.1", &params), PASSWORD);
        s.ping().await.unwrap_or_else(|e| panic!("{params}: {e}"));
        assert!(encrypted(&s).await);
    }
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let server = PostgresServer::start().expect("PostgreSQL");
    let s = store(url(&server, "127.0.0.1", "sslmode=require"), PASSWORD);
    let err = s.ping().await.expect_err("no TLS on the server").to_string();
    assert!(err.contains("does not support TLS"), "{err}");
    // prefer falls back to plain, as libpq does.
    let s = store(url(&server, "127.0.0.1", "sslmode=prefer"), PASSWORD);
    s.ping().await.expect("prefer connects in plain");
    assert!(!encrypted(&s).await);
}

#[tokio::test]
async fn migrations_run_over_tls() {
    let certs = TestCertificates::generate().expect("openssl");
    let server = PostgresServer::start_tls(&certs.cert, &certs.key, PASSWORD).expect("TLS PostgreSQL");
    let ca = certs.ca.display().to_string();
    let s = store(url(&server, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")), PASSWORD);
    assert!(!s.migrate().await.expect("migrate over TLS").is_empty());
    s.load_rules().await.expect("rules readable after migration");
}

#[tokio::test]
async fn a_client_certificate_authenticates() {
    let certs = TestCertificates::generate().expect("openssl");
    let server = PostgresServer::start_tls_client_auth(&certs.cert, &certs.key, &certs.ca).expect("TLS PostgreSQL");
    let (cert, key) = certs.issue_client("client", "mutt").expect("client certificate");
    let (other_cert, other_key) = certs.issue_client("other", "someone-else").expect("client certificate");
    let ca = certs.ca.display().to_string();
    let with = |c: &std::path::Path, k: &std::path::Path| {
        format!("sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}", c.display(), k.display())
    };
    let s = store(url(&server, "127.0.0.1", &with(&cert, &key)), "");
    s.ping().await.expect("the client certificate is accepted");
    assert!(encrypted(&s).await);
    let err = store(url(&server, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")), "")
        .ping()
        .await
        .expect_err("no client certificate, no connection");
    assert!(err.to_string().contains("certificate"), "{err}");
    let err = store(url(&server, "127.0.0.1", &with(&other_cert, &other_key)), "")
        .ping()
        .await
        .expect_err("a certificate for another user is refused");
    assert!(err.to_string().contains("mutt"), "{err}");
}
