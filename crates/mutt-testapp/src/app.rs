//! [`spawn_app`]: the web role over a fresh site, served on `127.0.0.1:0`; [`serve_web`]:
//! the web role as a test configures it, over a site it opened.

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
    web: Served,
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
        self.web.stop.cancel();
    }
}

/// A web role started by [`serve_web`]. Stopped when dropped.
pub struct Served {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    /// Its accepted keys: [`mutt_web::auth::ApiKeys::set`] replaces them while it serves.
    pub keys: mutt_web::auth::ApiKeys,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves the web role (`mutt_web::service`, as muttd wires it) over `backend` with `config`
/// as given, within `limits`, on `127.0.0.1:0`.
pub async fn serve_web(backend: &TestBackend, config: mutt_web::WebConfig, limits: mutt_service::HttpLimits) -> Served {
    let (keys, router) = mutt_web::service(
        backend.queue.clone(),
        backend.coordination.clone(),
        backend.store.clone(),
        config,
        mutt_service::Metrics::new(),
    )
    .expect("the web router builds with a key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a port");
    let addr = listener.local_addr().expect("the bound address");
    let stop = CancellationToken::new();
    tokio::spawn(mutt_service::serve_with(listener, router, stop.clone(), limits));
    Served { addr, base_url: format!("http://{addr}"), keys, stop }
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
    let web = serve_web(&backend, config, mutt_service::HttpLimits::default()).await;
    let client = ApiClient::new(web.base_url.clone(), Some(TEST_API_KEY));
    TestApp {
        addr: web.addr,
        base_url: web.base_url.clone(),
        api_key: TEST_API_KEY.to_owned(),
        client,
        backend,
        site,
        web,
    }
}
