//! [`spawn_app`]: the web role over a fresh site, served on `127.0.0.1:0`.

use crate::client::ApiClient;
use crate::site::{BackendKind, Site, TestBackend};
use mutt_core::Secret;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// The API key every [`spawn_app`] configures.
pub const TEST_API_KEY: &str = "test-web-api-key";

/// A running web role. Stopped when dropped (the site's data goes with it).
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    pub api_key: String,
    /// Sends [`TestApp::api_key`]; `client.with_key(None)` sends none.
    pub client: ApiClient,
    /// The handles the web role was given, for setting up and checking data behind its back.
    pub backend: TestBackend,
    pub site: Site,
    shutdown: CancellationToken,
}

impl TestApp {
    pub fn kind(&self) -> BackendKind {
        self.site.kind()
    }

    /// A client that sends no key.
    pub fn anonymous(&self) -> ApiClient {
        self.client.with_key(None)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the web role (`mutt_web::router`, as muttd wires it) on a fresh site of `kind`.
pub async fn spawn_app(kind: BackendKind) -> TestApp {
    let site = Site::fresh(kind).await;
    let backend = site.open().await;
    let config = mutt_web::WebConfig {
        api_keys: vec![Secret::new(TEST_API_KEY).into()],
        // No role to measure: `/slo` answers with every SLO critical ("no role answered").
        slo: Some(mutt_slo::SloSource::Metrics(Vec::new())),
        // Tests read the ingest counters they have just written: no cached answer.
        metrics_cache_ttl: std::time::Duration::ZERO,
        ..Default::default()
    };
    let router = mutt_web::router(
        backend.queue.clone(),
        backend.coordination.clone(),
        backend.store.clone(),
        config,
        mutt_service::Metrics::new(),
    )
    .expect("the web router builds with a key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    let addr = listener.local_addr().expect("the bound address");
    let shutdown = CancellationToken::new();
    tokio::spawn(mutt_service::serve(listener, router, shutdown.clone()));
    let base_url = format!("http://{addr}");
    let client = ApiClient::new(base_url.clone(), Some(TEST_API_KEY));
    TestApp { addr, base_url, api_key: TEST_API_KEY.to_owned(), client, backend, site, shutdown }
}
