//! TLS on the ingest listener (`mutt_service::serve_with_tls`): a private CA made with openssl
//! at test time, client certificates required or optional, and a certificate reload that new
//! connections see while an open keep-alive connection keeps working. Against a real Redis.

use mutt_core::Secret;
use mutt_ingest::IngestConfig;
use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_service::tls::{ClientAuth, ListenerTls, TlsFiles};
use mutt_testkit::TestCertificates;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

const KEY: &str = "tls-test-key";

/// The ingest API over TLS on a loopback port; `https://127.0.0.1:<port>`.
async fn serve(files: TlsFiles) -> (String, tokio_util::sync::DropGuard) {
    let redis = RedisConfig::single(mutt_testkit::redis_url(), KeySpace::with_prefix(&mutt_testkit::unique_prefix()));
    let queue = RedisQueue::connect(&redis).await.unwrap();
    let config = IngestConfig { api_keys: vec![Secret::new(KEY).into()], ..IngestConfig::default() };
    let router =
        mutt_ingest::router(Arc::new(queue.clone()), Arc::new(queue), config, mutt_service::Metrics::new()).unwrap();
    let tls = ListenerTls::load("ingestor", files).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let stop = CancellationToken::new();
    let limits = mutt_service::HttpLimits::default();
    tokio::spawn(mutt_service::serve_with_tls(listener, router, stop.clone(), limits, Some(tls)));
    (base, stop.drop_guard())
}

fn files(certs: &TestCertificates, client_auth: ClientAuth) -> TlsFiles {
    TlsFiles {
        cert_file: certs.cert.clone(),
        key_file: certs.key.clone(),
        client_ca_file: Some(certs.ca.clone()),
        client_auth,
    }
}

fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut b = reqwest::Client::builder().tls_certs_only([ca]).timeout(std::time::Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

async fn ingest(client: &reqwest::Client, base: &str) -> Result<u16, reqwest::Error> {
    let event = serde_json::json!({"hostname": "h1", "message": "m", "timestamp": "2025-11-08T12:00:00Z"});
    let r = client.post(format!("{base}/ingest")).header("x-api-key", KEY).json(&event).send().await?;
    Ok(r.status().as_u16())
}

#[tokio::test]
async fn https_with_a_private_ca_and_plain_http_refused() {
    let certs = TestCertificates::generate().unwrap();
    let (base, _stop) = serve(files(&certs, ClientAuth::None)).await;
    assert_eq!(ingest(&client(&certs.ca, None), &base).await.unwrap(), 200);
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = base.replace("https://", "http://");
    assert!(ingest(&reqwest::Client::new(), &plain).await.is_err(), "plain HTTP must not be served");
    // A client that does not trust the private CA refuses the server.
    let other = TestCertificates::generate().unwrap();
    assert!(ingest(&client(&other.ca, None), &base).await.is_err());
}

#[tokio::test]
async fn client_certificates_required_or_optional() {
    let certs = TestCertificates::generate().unwrap();
    let (cert, key) = certs.issue_client("client", "sender-1").unwrap();
    let (base, _stop) = serve(files(&certs, ClientAuth::Required)).await;
    let refused = ingest(&client(&certs.ca, None), &base).await;
    assert!(refused.is_err(), "no client certificate: refused, got {refused:?}");
    assert_eq!(ingest(&client(&certs.ca, Some((&cert, &key))), &base).await.unwrap(), 200);
    // A client certificate from another CA is refused too.
    let other = TestCertificates::generate().unwrap();
    let (ocert, okey) = other.issue_client("client", "intruder").unwrap();
    assert!(ingest(&client(&certs.ca, Some((&ocert, &okey))), &base).await.is_err());

    let (base, _stop2) = serve(files(&certs, ClientAuth::Optional)).await;
    assert_eq!(ingest(&client(&certs.ca, None), &base).await.unwrap(), 200, "optional: anonymous admitted");
    assert_eq!(ingest(&client(&certs.ca, Some((&cert, &key))), &base).await.unwrap(), 200);
    assert!(ingest(&client(&certs.ca, Some((&ocert, &okey))), &base).await.is_err(), "a bad one is still refused");
}

/// A TLS connection by hand, to send several requests on it and see the server's certificate.
struct Conn(tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

impl Conn {
    async fn open(base: &str, ca: &Path) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let addr = base.trim_start_matches("https://");
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        Self(tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap())
    }

    fn server_certificate(&self) -> Vec<u8> {
        self.0.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// `GET /live` on this connection (keep-alive); the status line.
    async fn live(&mut self) -> String {
        self.0.write_all(b"GET /live HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        // The body is {"status":"alive"}: read until it has arrived.
        while !buf.ends_with(b"}") {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), self.0.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "connection closed: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).lines().next().unwrap_or_default().to_owned()
    }
}

fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections_and_keeps_open_ones() {
    let certs = TestCertificates::generate().unwrap();
    let (cert2, key2) = certs.issue("second", "IP:127.0.0.1,DNS:localhost").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (live_cert, live_key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    std::fs::copy(&certs.cert, &live_cert).unwrap();
    std::fs::copy(&certs.key, &live_key).unwrap();
    let tls = TlsFiles {
        cert_file: live_cert.clone(),
        key_file: live_key.clone(),
        client_ca_file: None,
        client_auth: ClientAuth::None,
    };
    let (base, _stop) = serve(tls).await;

    let mut old = Conn::open(&base, &certs.ca).await;
    assert_eq!(old.server_certificate(), der(&certs.cert));
    assert_eq!(old.live().await, "HTTP/1.1 200 OK");

    // A broken file: the reload fails and the certificate in use stays.
    std::fs::write(&live_cert, "not a certificate").unwrap();
    mutt_service::tls::reload_all();
    assert_eq!(Conn::open(&base, &certs.ca).await.server_certificate(), der(&certs.cert));

    std::fs::copy(&cert2, &live_cert).unwrap();
    std::fs::copy(&key2, &live_key).unwrap();
    assert!(mutt_service::tls::reload_all() >= 1);
    let mut new = Conn::open(&base, &certs.ca).await;
    assert_eq!(new.server_certificate(), der(&cert2), "a new connection gets the new certificate");
    assert_eq!(new.live().await, "HTTP/1.1 200 OK");
    // The connection opened before the reload still answers, with its own session.
    assert_eq!(old.live().await, "HTTP/1.1 200 OK");
    assert_eq!(old.live().await, "HTTP/1.1 200 OK");
    assert_eq!(old.server_certificate(), der(&certs.cert));
}
