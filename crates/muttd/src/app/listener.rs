//! TLS on the ingest and management API ports, and the named API keys they accept.

use super::Context;
use crate::config::listener::ListenerTlsSection;
use anyhow::{Context as _, Result};
use mutt_service::auth::ApiKey;
use mutt_service::tls::{ClientAuth, ListenerTls};
use std::sync::Arc;

/// The listener's TLS, loaded now (so a bad file fails the start), or `None` when it is off.
pub(super) fn load_tls(role: &str, section: &ListenerTlsSection) -> Result<Option<Arc<ListenerTls>>> {
    let Some(files) = section.files() else { return Ok(None) };
    let clients = match files.client_auth {
        ClientAuth::None => "no client certificates",
        ClientAuth::Optional => "client certificates checked when presented",
        ClientAuth::Required => "client certificates required",
    };
    let tls = ListenerTls::load(role, files).with_context(|| format!("[{role}.tls]"))?;
    println!("muttd: {role} serves HTTPS ({clients}; the certificate is reloaded on SIGHUP)");
    Ok(Some(tls))
}

/// The configured keys of `secret` with their names; logs the names (never the keys).
pub(super) fn named_keys(secret: &str, keys: Vec<mutt_core::Secret>) -> Vec<ApiKey> {
    let keys: Vec<ApiKey> = keys.into_iter().map(ApiKey::from).collect();
    let mut names: Vec<&str> = keys.iter().map(ApiKey::name).collect();
    names.dedup();
    tracing::info!(keys = keys.len(), names = %names.join(","), "{secret}: keys configured");
    keys
}

impl Context<'_> {
    /// Serves a role's router within the `[http]` limits, over TLS when `tls` is given.
    pub(super) fn serve_tls(
        &self,
        listener: tokio::net::TcpListener,
        router: mutt_service::http::Router,
        tls: Option<Arc<ListenerTls>>,
    ) -> impl Future<Output = std::io::Result<()>> + use<> {
        mutt_service::serve_with_tls(listener, router, self.shutdown.clone(), self.config.http.limits(), tls)
    }
}
