//! The web role's API under the `[http]` limits: a JSON body sent too slowly gets a 408 JSON
//! error (not a 400 for a broken connection), and the listener keeps serving others.

use mutt_core::Secret;
use mutt_testapp::{BackendKind, Site, serve_web};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "body-timeout-key";

#[tokio::test]
async fn a_rule_body_sent_slowly_gets_408() {
    let site = Site::fresh(BackendKind::Embedded).await;
    let backend = site.open().await;
    let config = mutt_web::WebConfig { api_keys: vec![Secret::new(KEY).into()], ..Default::default() };
    let limits = mutt_service::HttpLimits { body_read_timeout: Duration::from_millis(500), ..Default::default() };
    let web = serve_web(&backend, config, limits).await;
    let addr = web.addr;

    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v2/rules HTTP/1.1\r\nHost: x\r\nX-API-KEY: {KEY}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for _ in 0..40 {
            if s.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), trickle).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains(r#"{"error":"request body not received in time"}"#), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}
