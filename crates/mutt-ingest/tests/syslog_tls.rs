//! The native syslog TLS listener with client certificates (RFC 5425 mutual TLS): a private CA
//! made with openssl at test time; `required` refuses senders without a certificate from that
//! CA (nothing is queued), `optional` admits anonymous senders but still refuses a bad
//! certificate. In process, on both backends.

use mutt_ingest::syslog::{self, ClientAuth, ListenerConfig, Protocol, SyslogMetrics};
use mutt_ingest::{Ingest, IngestConfig, IngestMetrics};
use mutt_queue::{ConsumerConfig, Settlement, WorkerRole};
use mutt_testapp::{BackendKind, Site, TestBackend};
use mutt_testkit::TestCertificates;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

struct Rig {
    _site: Site,
    b: TestBackend,
    stop: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A TLS syslog listener on a loopback port with the private CA's server certificate.
async fn listen(kind: BackendKind, certs: &TestCertificates, auth: ClientAuth) -> (Rig, SocketAddr) {
    let site = Site::fresh(kind).await;
    let b = site.open().await;
    let metrics = mutt_service::Metrics::new();
    let config = IngestConfig { rate_limit: None, ..IngestConfig::default() };
    let ingest = Ingest::new(b.queue.clone(), b.coordination.clone(), config, IngestMetrics::register(&metrics));
    let listener = ListenerConfig {
        tls_cert_file: Some(certs.cert.clone()),
        tls_key_file: Some(certs.key.clone()),
        tls_client_ca_file: Some(certs.ca.clone()),
        tls_client_auth: auth,
        ..ListenerConfig::new("127.0.0.1:0".parse().unwrap(), Protocol::Tls)
    };
    let stop = CancellationToken::new();
    let sm = SyslogMetrics::register(&metrics);
    let bound = syslog::spawn(ingest, sm, listener, stop.clone()).await.expect("listener");
    (Rig { _site: site, b, stop }, bound.local_addr)
}

/// Sends one RFC 5424 line over TLS (trusting `ca`, presenting `identity` if any) and waits
/// until the server closes the connection. Err: the handshake or the write failed.
async fn send(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    msg: &str,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(cert).unwrap()],
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let attempt = async {
        let mut tls =
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
        let line = format!("<13>1 2025-11-08T12:00:00Z host-tls tlsapp 42 ID1 - {msg}\n");
        tls.write_all(line.as_bytes()).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        // TLS 1.3: the server checks the client certificate after the client's handshake is
        // done, so a refusal shows up here, as an alert instead of the server's close.
        tls.shutdown().await.map_err(|e| e.to_string())?;
        let mut rest = Vec::new();
        match tls.read_to_end(&mut rest).await {
            // The listener closes without close_notify once the sender is done: delivered.
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), attempt).await.map_err(|_| "timed out".to_owned())?
}

/// What is queued, waiting up to `within` for `n` events.
async fn queued(b: &TestBackend, n: usize, within: Duration) -> Vec<Value> {
    let mut c =
        b.queue.consumer(ConsumerConfig::new(WorkerRole::Alerter, mutt_core::PodName::random("t"))).await.unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n && tokio::time::Instant::now() < deadline {
        if let Some(lease) = c.lease(100, Duration::from_millis(200)).await.unwrap() {
            out.extend(lease.messages.iter().map(|m| serde_json::from_slice::<Value>(m).unwrap()));
            c.settle(&lease, &Settlement::new()).await.unwrap();
        }
    }
    c.release().await.unwrap();
    c.shutdown().await.unwrap();
    out
}

fn messages(q: &[Value]) -> Vec<&str> {
    let mut m: Vec<&str> = q.iter().filter_map(|e| e["message"].as_str()).collect();
    m.sort_unstable();
    m
}

mutt_testapp::both_backends!(
    required_client_certificates_refuse_anonymous_and_foreign_senders,
    optional_client_certificates_admit_anonymous_senders,
);

async fn required_client_certificates_refuse_anonymous_and_foreign_senders(kind: BackendKind) {
    let certs = TestCertificates::generate().unwrap();
    let good = certs.issue_client("client", "sender-1").unwrap();
    let other = TestCertificates::generate().unwrap();
    let foreign = other.issue_client("client", "intruder").unwrap();
    let (r, addr) = listen(kind, &certs, ClientAuth::Required).await;

    let anonymous = send(addr, &certs.ca, None, "anonymous").await;
    assert!(anonymous.is_err(), "no client certificate: refused, got {anonymous:?}");
    let intruder = send(addr, &certs.ca, Some(&foreign), "intruder").await;
    assert!(intruder.is_err(), "certificate from another CA: refused, got {intruder:?}");
    send(addr, &certs.ca, Some(&good), "authenticated").await.unwrap();

    // Only the authenticated sender's message (the refused ones had their connections closed
    // before this one was sent, so they cannot arrive later).
    let q = queued(&r.b, 3, Duration::from_secs(3)).await;
    assert_eq!(messages(&q), ["authenticated"], "{q:?}");
    let e = &q[0];
    assert_eq!(e["source"], "syslog", "{e}");
    assert_eq!(e["source_ip"], "127.0.0.1");
    assert_eq!(e["hostname"], "host-tls");
    assert_eq!(e["app_name"], "tlsapp");
    assert_eq!(e["msg_id"], "ID1");
    assert_eq!(e["syslog_severity"], 5);
    assert_eq!(e["facility"], "user");
}

async fn optional_client_certificates_admit_anonymous_senders(kind: BackendKind) {
    let certs = TestCertificates::generate().unwrap();
    let good = certs.issue_client("client", "sender-1").unwrap();
    let other = TestCertificates::generate().unwrap();
    let foreign = other.issue_client("client", "intruder").unwrap();
    let (r, addr) = listen(kind, &certs, ClientAuth::Optional).await;

    send(addr, &certs.ca, None, "anonymous").await.unwrap();
    let intruder = send(addr, &certs.ca, Some(&foreign), "intruder").await;
    assert!(intruder.is_err(), "a certificate that does not verify is still refused, got {intruder:?}");
    send(addr, &certs.ca, Some(&good), "authenticated").await.unwrap();

    let q = queued(&r.b, 3, Duration::from_secs(3)).await;
    assert_eq!(messages(&q), ["anonymous", "authenticated"], "{q:?}");
    assert!(q.iter().all(|e| e["hostname"] == "host-tls" && e["source"] == "syslog"), "{q:?}");
}
