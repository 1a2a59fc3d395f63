//! Secrets from HashiCorp Vault (spec §11.2–11.3): AppRole login, the KV v2 secret read at the
//! mount-aware path, the token kept alive (renewed before it expires, a new login when renewal
//! fails), and the secret re-read periodically so that a rotated API key or password is used
//! without a restart.
//!
//! - [`config`]: the original's `VAULT_*` variables ([`VaultConfig::from_env`]).
//! - [`client`]: the four HTTP calls, nothing else.
//! - [`source`]: [`VaultSecrets`], the values in memory and the task that keeps them current.

pub mod client;
pub mod config;
pub mod source;

pub use client::{Token, VaultClient};
pub use config::VaultConfig;
pub use source::VaultSecrets;

/// What went wrong talking to Vault. Never holds a token, secret-id or secret value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault configuration: {0}")]
    Config(String),
    #[error("VAULT_SECRET_ID_FILE {path}: {reason}")]
    SecretIdFile { path: String, reason: String },
    #[error("vault {what}: {reason}")]
    Unreachable { what: &'static str, reason: String },
    /// 403: the token is unknown, expired or revoked (or the policy forbids the path).
    #[error("vault {what}: permission denied")]
    Denied { what: &'static str },
    #[error("vault {what}: nothing at {path} (is VAULT_SECRETS_PATH / VAULT_KV_MOUNT right?)")]
    NotFound { what: &'static str, path: String },
    #[error("vault {what}: HTTP {status}: {errors}")]
    Status { what: &'static str, status: u16, errors: String },
    #[error("vault {what}: unexpected answer: {reason}")]
    Protocol { what: &'static str, reason: String },
}
