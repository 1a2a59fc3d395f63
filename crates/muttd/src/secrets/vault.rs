//! Secrets from Vault when `VAULT_ADDR` is set (spec §11.2–11.3): AppRole login, the KV v2
//! secret, token renewal and periodic re-reading, all in `mutt-secrets`. A name the Vault
//! secret does not hold falls back to the environment and `NAME_FILE` ([`EnvSecrets`]).
//!
//! Rotation without a restart: [`SecretSource::refresh`] hands out a [`Refresh`], and
//! [`rotating_credentials`] builds the CURRENT/NEXT password pair a Redis or PostgreSQL pool
//! asks on every new connection, updated whenever the Vault secret changes.

use super::{EnvSecrets, FilePermissions, SecretError, SecretSource};
use anyhow::{Context, Result};
use mutt_core::Secret;
use mutt_core::credentials::{Candidate, Credentials};
use mutt_secrets::{VaultConfig, VaultSecrets};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Vault first, then the environment.
#[derive(Clone)]
pub struct VaultSource {
    vault: VaultSecrets,
    path: String,
    env: Arc<EnvSecrets>,
}

/// How a holder of a secret learns that values changed, and reads them again.
#[derive(Clone)]
pub struct Refresh {
    pub changes: watch::Receiver<u64>,
    pub source: Arc<dyn SecretSource>,
}

impl SecretSource for VaultSource {
    fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        match self.vault.get(name).filter(|s| !s.is_empty()) {
            Some(s) => Ok(Some(s)),
            None => self.env.get(name),
        }
    }

    fn origin(&self, name: &str) -> Option<String> {
        if self.vault.get(name).is_some() {
            return Some(format!("Vault {} (key {name}, re-read periodically)", self.path));
        }
        self.env.origin(name)
    }

    fn refresh(&self) -> Option<Refresh> {
        Some(Refresh { changes: self.vault.subscribe(), source: Arc::new(self.clone()) })
    }
}

/// The secrets source for this process: Vault when `env` sets `VAULT_ADDR` (logged in and read
/// before anything starts; a failure stops the start, as in the original), else `env_secrets`.
/// The secret-id file is held to `permissions` like every other secret file.
pub async fn source(
    env_secrets: EnvSecrets,
    env: &HashMap<String, String>,
    permissions: FilePermissions,
    stop: CancellationToken,
) -> Result<Box<dyn SecretSource>> {
    let Some(config) = VaultConfig::from_env(env)? else {
        return Ok(Box::new(env_secrets));
    };
    if config.secret_id_file.exists() {
        super::check_file_mode(&config.secret_id_file, "the Vault secret-id", permissions)?;
    }
    let path = format!(
        "{}/{}",
        config.addr.trim_end_matches('/'),
        mutt_secrets::client::kv2_data_path(&config.kv_mount, &config.secrets_path)
    );
    let vault = VaultSecrets::start(config, stop).await.context("reading secrets from Vault (VAULT_ADDR)")?;
    Ok(Box::new(VaultSource { vault, path, env: Arc::new(env_secrets) }))
}

/// The password pair `current` (the first of these names that is set) and `next`, as the
/// connection pools ask for it; kept up to date from `secrets` while it can change.
pub fn rotating_credentials(secrets: &dyn SecretSource, current: &[&str], next: &str) -> Result<Arc<Credentials>> {
    let credentials = Arc::new(Credentials::new(candidates(secrets, current, next)?));
    if let Some(mut refresh) = secrets.refresh() {
        let (held, current, next) =
            (credentials.clone(), current.iter().map(|s| s.to_string()).collect::<Vec<_>>(), next.to_owned());
        tokio::spawn(async move {
            while refresh.changes.changed().await.is_ok() {
                let names: Vec<&str> = current.iter().map(String::as_str).collect();
                match candidates(refresh.source.as_ref(), &names, &next) {
                    Ok(c) => held.set(c),
                    Err(e) => tracing::warn!(error = %e, "reading the new {next} pair failed; the old values stay"),
                }
            }
        });
    }
    Ok(credentials)
}

fn candidates(secrets: &dyn SecretSource, current: &[&str], next: &str) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for name in current {
        if let Some(s) = secrets.get(name)? {
            // Named as the operator knows it: CURRENT even when the legacy name gave it.
            out.push(Candidate::new(current[0], s));
            break;
        }
    }
    if let Some(s) = secrets.get(next)? {
        out.push(Candidate::new(next, s));
    }
    Ok(out)
}

/// A value read again whenever the secrets change (an API key list): `apply` gets the new
/// value each time it differs.
pub fn follow(secrets: &dyn SecretSource, name: &'static str, apply: impl Fn(Option<Secret>) + Send + 'static) {
    let Some(mut refresh) = secrets.refresh() else { return };
    tokio::spawn(async move {
        let mut last = refresh.source.get(name).ok().flatten();
        while refresh.changes.changed().await.is_ok() {
            match refresh.source.get(name) {
                Ok(now) if now != last => {
                    tracing::info!(secret = name, "{name} changed; the new value is in use");
                    apply(now.clone());
                    last = now;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "re-reading {name} failed; the old value stays"),
            }
        }
    });
}

/// The process's chosen source, boxed, is a source too.
impl SecretSource for Box<dyn SecretSource> {
    fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        self.as_ref().get(name)
    }

    fn origin(&self, name: &str) -> Option<String> {
        self.as_ref().origin(name)
    }

    fn refresh(&self) -> Option<Refresh> {
        self.as_ref().refresh()
    }
}
