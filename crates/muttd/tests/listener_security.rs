//! `muttd run` with the listeners' security settings: HTTPS on the ingest and web ports
//! (a private CA made by openssl; the web port requires client certificates), named API keys
//! (names in the log and the metrics, never the keys), and SIGHUP reloading the certificate:
//! new connections get the new one, an open keep-alive connection keeps working.

mod common;

use common::KillOnDrop;
use mutt_testkit::TestCertificates;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const OPS_KEY: &str = "ops-ingest-key-7f3a9c";
const CI_KEY: &str = "ci-ingest-key-b41e";
const WEB_KEY: &str = "admin-web-key-55d0e2";

fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut b = reqwest::Client::builder().tls_certs_only([ca]).tls_info(true).timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// The DER of the certificate in a PEM file (`openssl x509 -outform DER`).
fn der(pem: &Path) -> Vec<u8> {
    let out = std::process::Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(pem).output().unwrap();
    assert!(out.status.success() && !out.stdout.is_empty());
    out.stdout
}

/// The certificate a TLS server at `addr` presents (`openssl s_client`, then DER).
fn presented(addr: SocketAddr) -> Vec<u8> {
    use std::io::Write;
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (Some(a), Some(b)) = (text.find("-----BEGIN CERTIFICATE-----"), text.find("-----END CERTIFICATE-----")) else {
        panic!("no certificate from {addr}: {text}");
    };
    let mut x509 = std::process::Command::new("openssl")
        .args(["x509", "-outform", "DER"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    x509.stdin.take().unwrap().write_all(text[a..b + 25].as_bytes()).unwrap();
    x509.wait_with_output().unwrap().stdout
}

/// The status and the server certificate a request was answered with.
async fn get(client: &reqwest::Client, url: &str, key: &str) -> (u16, Vec<u8>, String) {
    let r = client.get(url).header("x-api-key", key).send().await.unwrap();
    let cert =
        r.extensions().get::<reqwest::tls::TlsInfo>().and_then(|t| t.peer_certificate()).unwrap_or_default().to_vec();
    (r.status().as_u16(), cert, r.text().await.unwrap())
}

async fn ingest(client: &reqwest::Client, base: &str, key: &str) -> u16 {
    let event = serde_json::json!({"hostname": "h1", "message": "m", "timestamp": "2025-11-08T12:00:00Z"});
    client.post(format!("{base}/ingest")).header("x-api-key", key).json(&event).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muttd_run_serves_https_with_named_keys_and_reloads_certificates_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate().unwrap();
    let (cert2, key2) = certs.issue("second", "IP:127.0.0.1,DNS:localhost").unwrap();
    let (client_cert, client_key) = certs.issue_client("operator", "operator").unwrap();
    let (live_cert, live_key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    std::fs::copy(&certs.cert, &live_cert).unwrap();
    std::fs::copy(&certs.key, &live_key).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let config = dir.path().join("mutt.toml");
    let syslog = format!(
        "[ingestor]\nsyslog = [{{ address = \"127.0.0.1\", port = 0, protocol = \"tls\", tls_cert_file = \"{}\", \
         tls_key_file = \"{}\" }}]\n",
        live_cert.display(),
        live_key.display()
    );
    std::fs::write(&config, syslog).unwrap();
    let mut cmd = common::muttd(dir.path());
    cmd.env("MUTT_CONFIG", &config)
        .env("INGEST_API_KEY", format!("ops:{OPS_KEY},ci:{CI_KEY}"))
        .env("WEBUI_API_KEY", format!("admin:{WEB_KEY}"))
        .env("MUTT_INGESTOR__TLS_CERT_FILE", &live_cert)
        .env("MUTT_INGESTOR__TLS_KEY_FILE", &live_key)
        .env("MUTT_WEB__TLS_CERT_FILE", &live_cert)
        .env("MUTT_WEB__TLS_KEY_FILE", &live_key)
        .env("MUTT_WEB__TLS_CLIENT_CA_FILE", &certs.ca)
        .env("MUTT_WEB__TLS_CLIENT_AUTH", "required")
        .env("MUTT_LOG__LEVEL", "info")
        .stderr(Stdio::from(stderr));
    let (mut child, stdout): (KillOnDrop, _) = common::spawn_run(&mut cmd);
    let mut addrs: Vec<(String, SocketAddr)> = Vec::new();
    stdout.read_until("the ingestor's and web's addresses", |line| {
        if let Some((role, addr)) = common::listening(line) {
            addrs.push((role.to_owned(), addr));
        }
        // `muttd: ingestor syslog (tls) on tls://127.0.0.1:<port>`
        if let Some(addr) = line.strip_prefix("muttd: ingestor syslog (tls) on ").and_then(|u| u.split_once("://")) {
            addrs.push(("syslog".to_owned(), addr.1.trim().parse().unwrap()));
        }
        ["ingestor", "web"].iter().all(|r| addrs.iter().any(|(a, _)| a == r))
    });
    let at = |role: &str| format!("https://{}", addrs.iter().find(|(r, _)| r == role).unwrap().1);
    let (ingest_base, web_base) = (at("ingestor"), at("web"));
    let syslog = addrs.iter().find(|(r, _)| r == "syslog").expect("the syslog TLS listener's address").1;
    assert_eq!(presented(syslog), der(&certs.cert));

    // Named keys over HTTPS.
    let anon = client(&certs.ca, None);
    assert_eq!(ingest(&anon, &ingest_base, OPS_KEY).await, 200);
    assert_eq!(ingest(&anon, &ingest_base, CI_KEY).await, 200);
    assert_eq!(ingest(&anon, &ingest_base, "ops-ingest-key-7f3a9d").await, 401, "one character off");
    let (_, _, metrics) = get(&anon, &format!("{ingest_base}/metrics"), "").await;
    assert!(metrics.contains(r#"mutt_ingest_key_requests_total{key="ops",status="success"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"mutt_ingest_key_requests_total{key="ci",status="success"} 1"#), "{metrics}");

    // The web port requires a client certificate.
    assert!(anon.get(format!("{web_base}/health")).send().await.is_err(), "no client certificate: refused");
    let operator = client(&certs.ca, Some((&client_cert, &client_key)));
    let (status, old_cert, body) = get(&operator, &format!("{web_base}/api/v2/rules"), WEB_KEY).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(old_cert, der(&certs.cert));

    // SIGHUP with new files: new connections get the new certificate; the operator's pooled
    // keep-alive connection, opened before, keeps working (and keeps its certificate).
    let (status, _, _) = get(&anon, &format!("{ingest_base}/live"), "").await;
    assert_eq!(status, 200);
    std::fs::copy(&cert2, &live_cert).unwrap();
    std::fs::copy(&key2, &live_key).unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &child.0.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, cert, _) = get(&client(&certs.ca, None), &format!("{ingest_base}/live"), "").await;
        if cert == der(&cert2) {
            break;
        }
        assert!(Instant::now() < deadline, "the ingestor still serves the old certificate 10 s after SIGHUP");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, cert, _) =
        get(&client(&certs.ca, Some((&client_cert, &client_key))), &format!("{web_base}/live"), "").await;
    assert_eq!(cert, der(&cert2), "web reloaded too");
    assert_eq!(presented(syslog), der(&cert2), "the syslog TLS listener reloaded too");
    let (status, cert, _) = get(&operator, &format!("{web_base}/api/v2/rules"), WEB_KEY).await;
    assert_eq!((status, cert == old_cert), (200, true), "the open connection keeps working with its session");
    let (status, cert, _) = get(&anon, &format!("{ingest_base}/live"), "").await;
    assert_eq!((status, cert == old_cert), (200, true));
    assert_eq!(ingest(&anon, &ingest_base, OPS_KEY).await, 200);
    let (status, _, body) = get(&operator, &format!("{web_base}/api/v2/rules"), "admin-web-key-55d0e3").await;
    assert_eq!(status, 401, "{body}");
    assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok(), "a JSON 401: {body}");
    let (_, _, metrics) = get(&operator, &format!("{web_base}/metrics"), "").await;
    assert!(metrics.contains(r#"mutt_webui_api_key_requests_total{key="admin",status="success"} 2"#), "{metrics}");

    assert!(child.terminate(Duration::from_secs(20)).is_some_and(|s| s.success()), "graceful stop");
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    assert!(log.contains("ops,ci") && log.contains("admin"), "the key names are logged: {log}");
    for secret in [OPS_KEY, CI_KEY, WEB_KEY] {
        assert!(!log.contains(secret), "a key reached the log");
    }
}
