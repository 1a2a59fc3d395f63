//! [`VaultSecrets`]: the secret's values in memory, and one background task that keeps the
//! token alive and re-reads the secret.
//!
//! Token: every `check_interval` its time left is looked up (`lookup-self`); below
//! `renew_threshold` it is renewed (`renew-self`); a renewal that fails, or a token Vault no
//! longer knows (403: expired, revoked), means a new AppRole login with the secret-id file read
//! again. Secret: read every `refresh_interval`; a 403 there also logs in again and reads once
//! more. Changed values replace the old ones at once and [`VaultSecrets::subscribe`]rs hear of
//! it; the log names the keys that changed, never a value. A Vault that cannot be reached
//! leaves the last values in use and is tried again at the next tick.

use crate::{Token, VaultClient, VaultConfig, VaultError};
use mutt_core::Secret;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The values read from Vault; cheap to clone.
#[derive(Clone)]
pub struct VaultSecrets {
    values: Arc<RwLock<BTreeMap<String, Secret>>>,
    changes: watch::Receiver<u64>,
}

struct Session {
    client: VaultClient,
    config: VaultConfig,
    token: Token,
}

fn read_secret_id(config: &VaultConfig) -> Result<Secret, VaultError> {
    let path = config.secret_id_file.display().to_string();
    let text = std::fs::read_to_string(&config.secret_id_file)
        .map_err(|e| VaultError::SecretIdFile { path: path.clone(), reason: e.to_string() })?;
    let id = text.trim();
    if id.is_empty() {
        return Err(VaultError::SecretIdFile { path, reason: "the file is empty".into() });
    }
    Ok(Secret::new(id))
}

impl Session {
    async fn login(client: VaultClient, config: VaultConfig) -> Result<Self, VaultError> {
        let token = client.login_approle(&config.role_id, &read_secret_id(&config)?).await?;
        Ok(Self { client, config, token })
    }

    async fn relogin(&mut self) -> Result<(), VaultError> {
        self.token = self.client.login_approle(&self.config.role_id, &read_secret_id(&self.config)?).await?;
        tracing::info!(ttl_secs = self.token.lease.as_secs(), "vault: logged in again (AppRole)");
        Ok(())
    }

    async fn read(&mut self) -> Result<BTreeMap<String, Secret>, VaultError> {
        let (mount, path) = (self.config.kv_mount.clone(), self.config.secrets_path.clone());
        match self.client.kv2_read(&self.token.value, &mount, &path).await {
            Err(VaultError::Denied { .. }) => {
                tracing::warn!("vault: the token was refused reading the secret; logging in again");
                self.relogin().await?;
                self.client.kv2_read(&self.token.value, &mount, &path).await
            }
            other => other,
        }
    }

    /// Renews the token when little time is left; logs in again when that fails.
    async fn keep_token(&mut self) -> Result<(), VaultError> {
        let left = match self.client.lookup_self(&self.token.value).await {
            Ok(left) => left,
            Err(VaultError::Denied { .. }) => {
                tracing::warn!("vault: the token is no longer valid (expired or revoked); logging in again");
                return self.relogin().await;
            }
            Err(e) => return Err(e),
        };
        if left > self.config.renew_threshold {
            return Ok(());
        }
        match self.client.renew_self(&self.token.value).await {
            Ok(t) => {
                tracing::info!(ttl_secs = t.lease.as_secs(), "vault: token renewed");
                self.token = t;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "vault: token renewal failed; logging in again");
                self.relogin().await
            }
        }
    }
}

impl VaultSecrets {
    /// Logs in, checks the token, reads the secret (any failure here stops the start, as in the
    /// original), then keeps it current until `stop`.
    pub async fn start(config: VaultConfig, stop: CancellationToken) -> Result<Self, VaultError> {
        let client = VaultClient::new(&config.addr, config.ca_file.as_deref(), config.timeout)?;
        let mut session = Session::login(client, config).await?;
        session.client.lookup_self(&session.token.value).await?;
        let values = session.read().await?;
        tracing::info!(
            path = %crate::client::kv2_data_path(&session.config.kv_mount, &session.config.secrets_path),
            keys = %values.keys().cloned().collect::<Vec<_>>().join(","),
            ttl_secs = session.token.lease.as_secs(),
            "vault: logged in (AppRole) and read the secrets"
        );
        let values = Arc::new(RwLock::new(values));
        let (tx, rx) = watch::channel(0);
        tokio::spawn(maintain(session, values.clone(), tx, stop));
        Ok(Self { values, changes: rx })
    }

    /// The current value of `name`, if the secret has it.
    pub fn get(&self, name: &str) -> Option<Secret> {
        self.values.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Changes whenever a re-read found a different value for any key.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

/// Replaces the values; returns the names whose value changed (added, removed or different).
fn store(values: &RwLock<BTreeMap<String, Secret>>, fresh: BTreeMap<String, Secret>) -> Vec<String> {
    let mut held = values.write().unwrap_or_else(|p| p.into_inner());
    let mut changed: Vec<String> =
        fresh.iter().filter(|(k, v)| held.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    changed.extend(held.keys().filter(|k| !fresh.contains_key(*k)).cloned());
    *held = fresh;
    changed
}

async fn maintain(
    mut session: Session,
    values: Arc<RwLock<BTreeMap<String, Secret>>>,
    changes: watch::Sender<u64>,
    stop: CancellationToken,
) {
    let (check, refresh) = (session.config.check_interval, session.config.refresh_interval);
    let tick = check.min(refresh).min(Duration::from_secs(60));
    let mut next_check = Instant::now() + check;
    let mut next_refresh = Instant::now() + refresh;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let now = Instant::now();
        if now >= next_check {
            next_check = now + check;
            if let Err(e) = session.keep_token().await {
                tracing::error!(error = %e, "vault: cannot keep a valid token; the secrets in memory stay in use");
            }
        }
        if now >= next_refresh {
            next_refresh = now + refresh;
            match session.read().await {
                Ok(fresh) => {
                    let changed = store(&values, fresh);
                    if !changed.is_empty() {
                        tracing::info!(changed = %changed.join(","), "vault: secrets changed; the new values are in use");
                        changes.send_modify(|v| *v += 1);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "vault: re-reading the secrets failed; the values in memory stay in use")
                }
            }
        }
    }
}
