//! Opening connections to PostgreSQL: libpq's five `sslmode`s over rustls, and the time-outs.
//!
//! tokio-postgres knows `disable`, `prefer` and `require` only, and leaves verification to the
//! TLS connector. This module takes `sslmode`, `sslrootcert`, `sslcert` and `sslkey` out of the
//! database URL (query string, or the `key=value` form), gives tokio-postgres the rest, and
//! builds the rustls configuration that gives each mode libpq's meaning:
//!
//! | sslmode | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (default) | if the server offers it | no |
//! | `require` | yes | no (with `sslrootcert`: as `verify-ca`, as libpq does) |
//! | `verify-ca` | yes | signed by a trusted CA |
//! | `verify-full` | yes | signed by a trusted CA and issued for the host name |
//!
//! Trusted CAs: the `sslrootcert` file, else the system's.

use crate::StoreError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::Config(format!(
                    "sslmode={other:?} in the database url: use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }
}

/// The TLS part of a database URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// PEM file of the CA(s) to trust (`sslrootcert`).
    pub root_cert: Option<PathBuf>,
    /// PEM client certificate chain and key (`sslcert`, `sslkey`), for servers that ask for one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self { mode: SslMode::Prefer, root_cert: None, client_cert: None, client_key: None }
    }
}

impl TlsSettings {
    /// The check actually made: `require` with a CA file checks the chain (libpq does the same).
    pub fn effective_mode(&self) -> SslMode {
        match self.mode {
            SslMode::Require if self.root_cert.is_some() => SslMode::VerifyCa,
            m => m,
        }
    }

    /// One line for the start-up log: how this connection is protected.
    pub fn describe(&self) -> String {
        let cas = match &self.root_cert {
            Some(p) => format!("CA file {}", p.display()),
            None => "the system's CAs".to_owned(),
        };
        let client = if self.client_cert.is_some() { ", client certificate" } else { "" };
        match self.effective_mode() {
            SslMode::Disable => "no TLS (sslmode=disable): traffic and password in clear".to_owned(),
            SslMode::Prefer => format!(
                "sslmode=prefer: TLS if the server offers it, else plain; server certificate not checked{client}"
            ),
            SslMode::Require => format!("sslmode=require: TLS, server certificate not checked{client}"),
            SslMode::VerifyCa => {
                format!(
                    "sslmode={}: TLS, certificate checked against {cas} (host name not checked){client}",
                    self.mode.as_str()
                )
            }
            SslMode::VerifyFull => {
                format!("sslmode=verify-full: TLS, certificate and host name checked against {cas}{client}")
            }
        }
    }
}

/// How long to wait for the server: `connect_timeout` applies when the URL sets none;
/// `statement_timeout` (None: the server's setting) is set on every pooled connection, so a
/// stuck statement fails instead of holding a worker. Migrations run without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgTimeouts {
    pub connect_timeout: Duration,
    pub statement_timeout: Option<Duration>,
}

impl Default for PgTimeouts {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(5), statement_timeout: Some(Duration::from_secs(60)) }
    }
}

const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Splits a database URL into what tokio-postgres reads and the TLS settings.
pub fn split_url(url: &str) -> Result<(String, TlsSettings), StoreError> {
    let mut found: Vec<(String, String)> = Vec::new();
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_query(url, &mut found)
    } else {
        split_key_values(url, &mut found)
    };
    let mut tls = TlsSettings::default();
    for (k, v) in found {
        match k.as_str() {
            "sslmode" => tls.mode = SslMode::parse(&v)?,
            // libpq's `system`: the system's CAs, as with no file.
            "sslrootcert" => tls.root_cert = (v != "system").then(|| v.into()),
            "sslcert" => tls.client_cert = Some(v.into()),
            _ => tls.client_key = Some(v.into()),
        }
    }
    if tls.client_cert.is_some() != tls.client_key.is_some() {
        return Err(StoreError::Config("the database url needs both sslcert and sslkey, or neither".into()));
    }
    Ok((rest, tls))
}

/// URL form: takes the TLS keys out of the query string.
fn split_query(url: &str, found: &mut Vec<(String, String)>) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if TLS_KEYS.contains(&k) {
            found.push((k.to_owned(), percent_decode(v)));
        } else {
            kept.push(pair);
        }
    }
    if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
}

/// `key=value` form: takes out unquoted `ssl…=value` words, leaving the rest as written.
fn split_key_values(conn: &str, found: &mut Vec<(String, String)>) -> String {
    let mut rest = String::with_capacity(conn.len());
    let mut last = 0;
    for (start, end) in words(conn) {
        let word = &conn[start..end];
        if let Some((k, v)) = word.split_once('=')
            && TLS_KEYS.contains(&k.trim())
            && !v.starts_with('\'')
        {
            found.push((k.trim().to_owned(), v.to_owned()));
            rest.push_str(&conn[last..start]);
            last = end;
        }
    }
    rest.push_str(&conn[last..]);
    rest.trim().to_owned()
}

/// Byte spans of the whitespace-separated words, a quoted value (with `\` escapes) kept whole.
fn words(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (None, false, false);
    for (i, c) in s.char_indices() {
        match (start, c) {
            (None, c) if c.is_whitespace() => {}
            (None, _) => {
                start = Some(i);
                quoted = c == '\'';
            }
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(_), '\'') => quoted = !quoted,
            (Some(b), c) if c.is_whitespace() && !quoted => {
                out.push((b, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(b) = start {
        out.push((b, s.len()));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// tokio-postgres's own mode for ours: it only decides whether TLS is attempted and required.
pub(crate) fn driver_mode(mode: SslMode) -> tokio_postgres::config::SslMode {
    match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    }
}

/// Sets `statement_timeout` on each new pooled connection (a `SET` rather than the startup
/// packet's `options`, which PgBouncer refuses by default).
pub(crate) fn statement_timeout_hook(limit: Duration) -> deadpool_postgres::Hook {
    let sql = format!("SET statement_timeout = {}", limit.as_millis().max(1));
    deadpool_postgres::Hook::async_fn(move |client, _| {
        let sql = sql.clone();
        Box::pin(async move {
            client.simple_query(&sql).await.map_err(deadpool_postgres::HookError::Backend)?;
            Ok(())
        })
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls connector for these settings (also for `disable`, where it is never used).
pub fn connector(tls: &TlsSettings) -> Result<MakeRustlsConnect, StoreError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS to PostgreSQL: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match tls.effective_mode() {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(Relaxed { provider, chain: None }),
        mode => {
            let roots = Arc::new(root_store(tls.root_cert.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| StoreError::Config(format!("TLS to PostgreSQL: {e}")))?;
            if mode == SslMode::VerifyCa { Arc::new(Relaxed { provider, chain: Some(webpki) }) } else { webpki }
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| StoreError::Config(format!("sslkey {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| StoreError::Config(format!("sslcert/sslkey: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let bad = |e: String| StoreError::Config(format!("{what} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

fn root_store(file: Option<&Path>) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    match file {
        Some(path) => {
            for cert in read_certs(path, "sslrootcert")? {
                roots.add(cert).map_err(|e| StoreError::Config(format!("sslrootcert {}: {e}", path.display())))?;
            }
        }
        None => {
            let (added, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return Err(StoreError::Config(
                    "sslmode verify-ca/verify-full: no system CA certificates found; set sslrootcert in the database url \
                     (DB_TLS_CA_CERT_PATH)"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// The verifier for the modes webpki alone does not cover. Without `chain` (`prefer`, `require`
/// without a CA): encryption only (libpq's meaning). With `chain` (`verify-ca`): the chain must
/// lead to a trusted CA; the name may differ. webpki checks the chain before the name, so a name
/// error means the chain passed. Either way the handshake's signatures are checked with the
/// provider's algorithms (what webpki's verifier does too), so the peer holds the key of the
/// certificate it sent.
#[derive(Debug)]
struct Relaxed {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_form() {
        let (rest, tls) =
            split_url("postgres://u@h:5432/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u@h:5432/db?application_name=x");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
        let (rest, tls) = split_url("postgres://u@h/db").unwrap();
        assert_eq!((rest.as_str(), tls), ("postgres://u@h/db", TlsSettings::default()));
        let (rest, tls) = split_url("postgresql://u@h/db?sslmode=require").unwrap();
        assert_eq!((rest.as_str(), tls.mode), ("postgresql://u@h/db", SslMode::Require));
    }

    #[test]
    fn key_value_form() {
        let (rest, tls) =
            split_url("host=h password='a b  c' sslmode=verify-ca sslcert=/c.pem sslkey=/k.pem dbname=x").unwrap();
        assert_eq!(rest, "host=h password='a b  c'    dbname=x");
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert_eq!(tls.client_key.as_deref(), Some(Path::new("/k.pem")));
    }

    #[test]
    fn refusals() {
        assert!(split_url("postgres://h/db?sslmode=allow").unwrap_err().to_string().contains("verify-full"));
        assert!(split_url("postgres://h/db?sslcert=/c.pem").is_err());
    }

    #[test]
    fn require_with_a_ca_checks_the_chain() {
        let tls = TlsSettings { mode: SslMode::Require, root_cert: Some("/ca.pem".into()), ..Default::default() };
        assert_eq!(tls.effective_mode(), SslMode::VerifyCa);
        assert!(tls.describe().contains("/ca.pem"));
    }
}
