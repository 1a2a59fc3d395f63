//! The Vault settings, from the original's environment variables (spec §11.1, §11.3).

use crate::VaultError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The original's default place for the AppRole secret-id.
pub const DEFAULT_SECRET_ID_FILE: &str = "/etc/mutt/secrets/vault_secret_id";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultConfig {
    /// `VAULT_ADDR`, e.g. `https://vault.example.com:8200`.
    pub addr: String,
    /// `VAULT_ROLE_ID`.
    pub role_id: String,
    /// `VAULT_SECRET_ID_FILE`: read at start and at every new login (a rotated secret-id is
    /// picked up).
    pub secret_id_file: PathBuf,
    /// `VAULT_KV_MOUNT` (default `secret`): the KV v2 engine's mount.
    pub kv_mount: String,
    /// `VAULT_SECRETS_PATH` (default `secret/mutt`): the secret's path, with or without the
    /// mount in front.
    pub secrets_path: String,
    /// `VAULT_CACERT`: PEM CA bundle for Vault's certificate (default: the system's CAs).
    pub ca_file: Option<PathBuf>,
    /// `VAULT_TOKEN_RENEW_THRESHOLD` (default 3600 s): renew when less time than this is left.
    pub renew_threshold: Duration,
    /// `VAULT_RENEW_CHECK_INTERVAL` (default 300 s): how often the token's time left is looked up.
    pub check_interval: Duration,
    /// `VAULT_SECRETS_REFRESH_INTERVAL` (default 300 s): how often the secret is read again.
    pub refresh_interval: Duration,
    /// Each HTTP call's time limit.
    pub timeout: Duration,
}

impl VaultConfig {
    /// A configuration with the original's defaults.
    pub fn new(addr: impl Into<String>, role_id: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            role_id: role_id.into(),
            secret_id_file: DEFAULT_SECRET_ID_FILE.into(),
            kv_mount: "secret".into(),
            secrets_path: "secret/mutt".into(),
            ca_file: None,
            renew_threshold: Duration::from_secs(3600),
            check_interval: Duration::from_secs(300),
            refresh_interval: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }

    /// `None` when `VAULT_ADDR` is unset or empty (secrets then come from the environment).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Option<Self>, VaultError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let Some(addr) = get("VAULT_ADDR") else { return Ok(None) };
        let role_id = get("VAULT_ROLE_ID")
            .ok_or_else(|| VaultError::Config("VAULT_ADDR is set, so VAULT_ROLE_ID is required".into()))?;
        let mut c = Self::new(addr, role_id);
        if let Some(v) = get("VAULT_SECRET_ID_FILE") {
            c.secret_id_file = v.into();
        }
        if let Some(v) = get("VAULT_KV_MOUNT") {
            c.kv_mount = v.trim_matches('/').to_owned();
        }
        if let Some(v) = get("VAULT_SECRETS_PATH") {
            c.secrets_path = v.to_owned();
        }
        c.ca_file = get("VAULT_CACERT").map(PathBuf::from);
        let secs = |name: &str, default: Duration| -> Result<Duration, VaultError> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
                    _ => Err(VaultError::Config(format!("{name}={v:?}: a whole number of seconds above 0"))),
                },
            }
        };
        c.renew_threshold = secs("VAULT_TOKEN_RENEW_THRESHOLD", c.renew_threshold)?;
        c.check_interval = secs("VAULT_RENEW_CHECK_INTERVAL", c.check_interval)?;
        c.refresh_interval = secs("VAULT_SECRETS_REFRESH_INTERVAL", c.refresh_interval)?;
        Ok(Some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env() {
        let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(VaultConfig::from_env(&env(&[])).unwrap(), None);
        assert!(VaultConfig::from_env(&env(&[("VAULT_ADDR", "http://v")])).is_err());
        let c = VaultConfig::from_env(&env(&[
            ("VAULT_ADDR", "https://v:8200"),
            ("VAULT_ROLE_ID", "r"),
            ("VAULT_KV_MOUNT", "kv/"),
            ("VAULT_SECRETS_REFRESH_INTERVAL", "30"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((c.kv_mount.as_str(), c.secrets_path.as_str()), ("kv", "secret/mutt"));
        assert_eq!(c.refresh_interval, Duration::from_secs(30));
        assert_eq!(c.secret_id_file, PathBuf::from(DEFAULT_SECRET_ID_FILE));
        let bad = VaultConfig::from_env(&env(&[
            ("VAULT_ADDR", "x"),
            ("VAULT_ROLE_ID", "r"),
            ("VAULT_RENEW_CHECK_INTERVAL", "5m"),
        ]));
        assert!(bad.unwrap_err().to_string().contains("VAULT_RENEW_CHECK_INTERVAL"));
    }
}
