//! TLS on a role's own HTTP listener ([`crate::http::serve_with_tls`]): a certificate and key
//! from PEM files, optionally client certificates checked against a CA (required, or optional
//! with anonymous clients let through to the API key check), reloadable at run time.
//!
//! [`ListenerTls::reload`] reads the files again and swaps in a new server configuration for
//! the connections accepted from then on; connections already open keep the session they
//! negotiated. Every [`ListenerTls`] of the process is reloaded by [`reload_all`], which
//! muttd calls on SIGHUP. A reload that fails (a missing or mismatched file) keeps the
//! configuration in use and says why.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

/// Whether clients must present a certificate signed by the configured CA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates are asked for.
    #[default]
    None,
    /// Asked for and checked when presented; clients without one are admitted.
    Optional,
    /// The handshake fails without a valid client certificate.
    Required,
}

/// Where a listener's TLS material is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA certificates (PEM) client certificates are checked against; needed unless
    /// `client_auth` is [`ClientAuth::None`].
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("client_auth {0:?} needs client_ca_file")]
    NoClientCa(ClientAuth),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A listener's TLS configuration, swapped whole on reload.
pub struct ListenerTls {
    files: TlsFiles,
    /// Which listener, for log lines (e.g. `ingestor`).
    name: String,
    current: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls").field("name", &self.name).field("files", &self.files).finish()
    }
}

/// The listeners [`reload_all`] reloads (weak: a stopped listener drops out).
static REGISTRY: Mutex<Vec<Weak<ListenerTls>>> = Mutex::new(Vec::new());

impl ListenerTls {
    /// Loads `files` for the listener `name` and registers it for [`reload_all`].
    pub fn load(name: &str, files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let config = build(&files)?;
        let tls = Arc::new(Self { files, name: name.to_owned(), current: RwLock::new(config) });
        let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        registry.retain(|w| w.strong_count() > 0);
        registry.push(Arc::downgrade(&tls));
        Ok(tls)
    }

    /// Reads the files again; new connections use them, open ones are not touched.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// An acceptor with the configuration in force now (one per accepted connection).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Reloads every listener's TLS files (SIGHUP); logs each outcome. Returns how many
/// listeners were reloaded successfully.
pub fn reload_all() -> usize {
    let live: Vec<Arc<ListenerTls>> = {
        let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        registry.retain(|w| w.strong_count() > 0);
        registry.iter().filter_map(Weak::upgrade).collect()
    };
    let mut ok = 0;
    for tls in live {
        match tls.reload() {
            Ok(()) => {
                ok += 1;
                tracing::info!(listener = %tls.name, cert_file = %tls.files.cert_file.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(listener = %tls.name, error = %e, "TLS reload failed; the previous certificate stays in use")
            }
        }
    }
    ok
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.display().to_string(), reason: e.to_string() }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// A server configuration from `files` (aws-lc-rs, the safe default protocol versions).
fn build(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certs(&files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| file_error(&files.key_file, e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (files.client_auth, &files.client_ca_file) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (mode, None) => return Err(TlsError::NoClientCa(mode)),
        (mode, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| file_error(ca, e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Config(e.to_string()))?)
        }
    };
    // No ALPN: HTTP/1.1 and syslog clients both work without it.
    let config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}
