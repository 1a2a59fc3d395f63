//! `GET /api/v{1,2}/slo` through the web router: both shapes of the original's report in one
//! object, measured where the role was told to; 503 when it was told nowhere.

use mutt_core::Secret;
use mutt_slo::SloSource;
use mutt_testapp::{ApiClient, BackendKind, Served, Site, serve_web};

const KEY: &str = "slo-key";

async fn serve(site: &Site, slo: Option<SloSource>) -> (ApiClient, Served) {
    let backend = site.open().await;
    let config = mutt_web::WebConfig { api_keys: vec![Secret::new(KEY).into()], slo, ..Default::default() };
    let web = serve_web(&backend, config, Default::default()).await;
    (ApiClient::new(web.base_url.clone(), Some(KEY)), web)
}

#[tokio::test]
async fn slo_report_from_unreachable_metrics_is_critical_with_both_shapes() {
    let site = Site::fresh(BackendKind::Embedded).await;
    // A port nobody listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let source = SloSource::Metrics(vec![format!("http://{closed}/metrics")]);
    let (client, _stop) = serve(&site, Some(source)).await;
    let (v1, v2) = (client.get("/api/v1/slo").await, client.get("/api/v2/slo").await);
    assert_eq!(v1.status, 200, "{}", v1.text);
    assert_eq!(v1.body["slos"], v2.body["slos"]);
    let slos = v1.body["slos"].as_array().expect("the code shape");
    assert!(!slos.is_empty());
    for s in slos {
        assert_eq!(s["status"], "critical", "{s}");
        assert!(s["message"].as_str().unwrap().contains("No metrics"), "{s}");
        assert!(s["slo_name"].is_string());
    }
    assert!(v1.body["window_hours"].is_u64(), "the documented shape: {}", v1.text);
    assert!(v1.body["components"].is_object(), "{}", v1.text);
    assert!(v1.body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(client.with_key(None).get("/api/v2/slo").await.status, 401);
}

#[tokio::test]
async fn slo_without_a_source_is_503() {
    let site = Site::fresh(BackendKind::Embedded).await;
    let (client, _stop) = serve(&site, None).await;
    let r = client.get("/api/v2/slo").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.body["error"].as_str().unwrap().contains("SLO"));
}
