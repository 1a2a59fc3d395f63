//! The CURRENT/NEXT Redis password pair at run time (spec §11.4 and its [ADD]), for a single
//! server: every new connection (the shared one and its replacements, each consumer's blocking
//! one, the notification subscriber) asks [`Credentials`] for the passwords, tries them in
//! order, moves on only when Redis refused the password, and logs which one worked when that
//! changes (the secret's name, never its value). The shared connection's manager reconnects by
//! itself with the password it was built with; when that is refused it is replaced through
//! here ([`super::connection`]'s `Healing`). Sentinel and Cluster keep the password chosen at
//! start.

use mutt_core::credentials::Credentials;
use redis::{Client, ErrorKind, RedisResult};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

/// Whether Redis refused the credentials (AUTH failed, or a command needs them).
pub(crate) fn is_refused(e: &redis::RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}

/// How to build a client for one server with any of the candidate passwords.
pub(crate) struct Rotating {
    pub(crate) url: String,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) credentials: Arc<Credentials>,
}

impl Rotating {
    /// A client with the password that worked last (or the URL's own when there is none).
    pub(crate) fn preferred(&self) -> RedisResult<Client> {
        let password = self.credentials.candidates().into_iter().next().map(|c| c.password);
        super::connection::client(&self.url, &password, &self.ca_file)
    }

    /// Runs `open` with a client per candidate until one is not refused; returns its result
    /// and the client that worked.
    pub(crate) async fn open<T, F, Fut>(&self, open: F) -> RedisResult<(T, Client)>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let candidates = self.credentials.candidates();
        if candidates.is_empty() {
            let client = super::connection::client(&self.url, &None, &self.ca_file)?;
            return Ok((open(client.clone()).await?, client));
        }
        let mut refused = None;
        for c in &candidates {
            let client = super::connection::client(&self.url, &Some(c.password.clone()), &self.ca_file)?;
            match open(client.clone()).await {
                Ok(v) => {
                    match self.credentials.worked(&c.name) {
                        Some(before) if before.is_empty() => tracing::info!("redis: authenticated with {}", c.name),
                        Some(before) => tracing::warn!(
                            refused = %before,
                            "redis: the password in use was refused; authenticated with {}", c.name
                        ),
                        None => {}
                    }
                    return Ok((v, client));
                }
                Err(e) if is_refused(&e) => {
                    tracing::warn!("redis: the server refused the password {}", c.name);
                    refused = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(refused.unwrap_or_else(|| (ErrorKind::AuthenticationFailed, "no password accepted").into()))
    }
}
