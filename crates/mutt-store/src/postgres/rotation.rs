//! Opening a connection with the CURRENT/NEXT password pair (spec §11.4, and its [ADD]): every
//! new pooled connection (and the migrations' own) asks [`Credentials`] for the passwords, tries
//! them in order, moves on only when the server refused the password (SQLSTATE 28P01 or 28000),
//! and logs which one worked when that changes — the secret's name, never its value. So a
//! password rotated while the process runs costs the connections that were refused, not a
//! restart.

use deadpool_postgres::Connect;
use mutt_core::credentials::Credentials;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

type TlsStream = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<Socket>>::Stream;
/// A connection as tokio-postgres returns it with our TLS connector.
pub(crate) type PgConnection = Connection<Socket, TlsStream>;

/// Whether the server refused the password (or the role).
fn is_refused(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
}

/// Connects with the first password the server accepts.
pub(crate) async fn connect(
    credentials: &Credentials,
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
) -> Result<(Client, PgConnection), tokio_postgres::Error> {
    let candidates = credentials.candidates();
    let Some(first) = candidates.first() else {
        return config.connect(tls.clone()).await;
    };
    let mut refused = None;
    for c in &candidates {
        let mut attempt = config.clone();
        attempt.password(c.password.expose());
        match attempt.connect(tls.clone()).await {
            Ok(pair) => {
                match credentials.worked(&c.name) {
                    Some(before) if before.is_empty() => {
                        tracing::info!("PostgreSQL: authenticated with {}", c.name)
                    }
                    Some(before) => tracing::warn!(
                        refused = %before,
                        "PostgreSQL: the password in use was refused; authenticated with {}", c.name
                    ),
                    None if c.name != first.name => {
                        tracing::warn!("PostgreSQL: authenticated with {}", c.name)
                    }
                    None => {}
                }
                return Ok(pair);
            }
            Err(e) if is_refused(&e) => {
                tracing::warn!("PostgreSQL refused the password {}", c.name);
                refused = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match refused {
        Some(e) => Err(e),
        // Unreachable: at least one candidate was tried, and each returned or was refused.
        None => config.connect(tls.clone()).await,
    }
}

/// The pool's way of opening connections: [`connect`], with the connection driven by a task.
pub(crate) struct RotatingConnect {
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) tls: MakeRustlsConnect,
}

type Connected = Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>;

impl Connect for RotatingConnect {
    fn connect(&self, pg_config: &tokio_postgres::Config) -> Pin<Box<dyn Future<Output = Connected> + Send + '_>> {
        let config = pg_config.clone();
        Box::pin(async move {
            let (client, connection) = connect(&self.credentials, &config, &self.tls).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(target: "deadpool.postgres", "Connection error: {}", e);
                }
            });
            Ok((client, task))
        })
    }
}
