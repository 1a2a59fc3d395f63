//! Secrets: API keys and passwords, read from environment variables or files (`NAME_FILE`
//! holds a path whose trimmed content is the value; handy for Kubernetes secrets and systemd
//! credentials), or from Vault when `VAULT_ADDR` is set ([`vault`]).
//!
//! A secret file that every user of the machine may read is refused (or, with
//! `secrets.file_permissions = "warn"`, logged): the key in it is as good as published.

pub mod vault;

use mutt_core::Secret;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// `[secrets]`: how secret files are treated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsSection {
    /// A secret file (`<NAME>_FILE`, the data directory's generated keys) readable or writable
    /// by every user: `refuse` (default) stops the start, `warn` logs it and goes on.
    pub file_permissions: FilePermissions,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilePermissions {
    #[default]
    Refuse,
    Warn,
}

/// Checks that `path` (holding the secret `name`) is not open to every user.
pub fn check_file_mode(path: &Path, name: &str, policy: FilePermissions) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| SecretError::File {
            name: name.to_owned(),
            path: path.display().to_string(),
            reason: e.to_string(),
        })?
        .permissions()
        .mode();
    if mode & 0o007 == 0 {
        return Ok(());
    }
    let problem = format!(
        "{} (holding {name}) is open to every user (mode {:04o}): chmod o-rwx it (0600, or 0640 with the \
         service's group), or set secrets.file_permissions = \"warn\" (MUTT_SECRETS__FILE_PERMISSIONS=warn)",
        path.display(),
        mode & 0o7777
    );
    match policy {
        FilePermissions::Refuse => Err(SecretError::Permissions(problem)),
        FilePermissions::Warn => {
            tracing::warn!("{problem}");
            Ok(())
        }
    }
}

/// The secret names of the original (spec §11.2).
pub const SECRET_NAMES: &[&str] = &[
    "INGEST_API_KEY",
    "WEBUI_API_KEY",
    "MOOG_API_KEY",
    "REDIS_PASS_CURRENT",
    "REDIS_PASS_NEXT",
    "REDIS_PASS",
    "DB_PASS_CURRENT",
    "DB_PASS_NEXT",
    "DB_PASS",
];

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{name}_FILE: cannot read {path}: {reason}")]
    File { name: String, path: String, reason: String },
    #[error("{0}")]
    Permissions(String),
}

pub trait SecretSource: Send + Sync {
    fn get(&self, name: &str) -> Result<Option<Secret>, SecretError>;

    /// Where `name` would come from, in words, never its value (`muttd config show`).
    fn origin(&self, _name: &str) -> Option<String> {
        None
    }

    /// For a source whose values change while the process runs (Vault): how to hear of it.
    fn refresh(&self) -> Option<vault::Refresh> {
        None
    }
}

/// Reads `NAME`, or else the file named by `NAME_FILE`.
pub struct EnvSecrets {
    env: HashMap<String, String>,
    permissions: FilePermissions,
}

impl EnvSecrets {
    /// Files open to every user are logged, not refused: `muttd` sets the configured policy
    /// with [`EnvSecrets::with_file_permissions`].
    pub fn new(env: HashMap<String, String>) -> Self {
        Self { env, permissions: FilePermissions::Warn }
    }

    pub fn with_file_permissions(mut self, policy: FilePermissions) -> Self {
        self.permissions = policy;
        self
    }
}

impl SecretSource for EnvSecrets {
    fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        if let Some(v) = self.env.get(name).filter(|v| !v.is_empty()) {
            return Ok(Some(Secret::new(v.clone())));
        }
        let Some(path) = self.env.get(&format!("{name}_FILE")).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        check_file_mode(Path::new(path), name, self.permissions)?;
        let content = std::fs::read_to_string(path).map_err(|e| SecretError::File {
            name: name.to_owned(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let value = content.trim();
        Ok((!value.is_empty()).then(|| Secret::new(value)))
    }

    fn origin(&self, name: &str) -> Option<String> {
        if self.env.get(name).is_some_and(|v| !v.is_empty()) {
            return Some(format!("environment variable {name}"));
        }
        let path = self.env.get(&format!("{name}_FILE")).filter(|v| !v.is_empty())?;
        use std::os::unix::fs::PermissionsExt;
        Some(match std::fs::metadata(path) {
            Ok(m) => format!("file {path} ({name}_FILE, mode {:04o})", m.permissions().mode() & 0o7777),
            Err(e) => format!("file {path} ({name}_FILE): {e}"),
        })
    }
}

/// The first of several names that is set (e.g. `DB_PASS_CURRENT`, then legacy `DB_PASS`).
pub fn first_of(source: &dyn SecretSource, names: &[&str]) -> Result<Option<Secret>, SecretError> {
    for n in names {
        if let Some(s) = source.get(n)? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// A list secret: keys separated by commas or newlines (`INGEST_API_KEY=key1,key2`; a
/// `_FILE` may hold one per line), so keys can be rotated without downtime. API keys may be
/// named (`name:key`, [`mutt_service::auth::split_entry`]).
pub fn key_list(source: &dyn SecretSource, name: &str) -> Result<Vec<Secret>, SecretError> {
    Ok(source
        .get(name)?
        .map(|s| s.expose().split([',', '\n']).map(str::trim).filter(|k| !k.is_empty()).map(Secret::new).collect())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "  from-file\n").unwrap();
        let s = EnvSecrets::new(HashMap::from([
            ("A".to_string(), "direct".to_string()),
            ("B_FILE".to_string(), f.display().to_string()),
            ("C_FILE".to_string(), "/nonexistent/x".to_string()),
            ("K".to_string(), "k1, k2,,".to_string()),
        ]));
        assert_eq!(s.get("A").unwrap().unwrap().expose(), "direct");
        assert_eq!(s.get("B").unwrap().unwrap().expose(), "from-file");
        assert!(s.get("C").is_err());
        assert!(s.get("D").unwrap().is_none());
        let keys = key_list(&s, "K").unwrap();
        assert_eq!(keys.iter().map(|k| k.expose()).collect::<Vec<_>>(), vec!["k1", "k2"]);
        let named = EnvSecrets::new(HashMap::from([("L".to_string(), "ops:k1\nci:k2,\n k3 \n".to_string())]));
        let keys = key_list(&named, "L").unwrap();
        assert_eq!(keys.iter().map(|k| k.expose()).collect::<Vec<_>>(), vec!["ops:k1", "ci:k2", "k3"]);
        let err = s.get("C").unwrap_err().to_string();
        assert!(err.contains("C_FILE"));
    }

    #[test]
    fn files_open_to_everyone_are_refused_or_logged() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "s3cret-value\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let env = HashMap::from([("INGEST_API_KEY_FILE".to_string(), f.display().to_string())]);
        let strict = EnvSecrets::new(env.clone()).with_file_permissions(FilePermissions::Refuse);
        let err = strict.get("INGEST_API_KEY").unwrap_err().to_string();
        assert!(err.contains("0644") && err.contains("INGEST_API_KEY") && err.contains("file_permissions"), "{err}");
        assert!(!err.contains("s3cret-value"));
        let lax = EnvSecrets::new(env.clone()).with_file_permissions(FilePermissions::Warn);
        assert_eq!(lax.get("INGEST_API_KEY").unwrap().unwrap().expose(), "s3cret-value");
        for ok in [0o600, 0o640, 0o400] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(ok)).unwrap();
            assert!(strict.get("INGEST_API_KEY").unwrap().is_some(), "{ok:o}");
        }
    }
}
