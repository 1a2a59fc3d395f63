//! Secrets: API keys and passwords, read from environment variables or files (`NAME_FILE`
//! holds a path whose trimmed content is the value; handy for Kubernetes secrets and systemd
//! credentials). Vault will be another [`SecretSource`] behind the same interface.

use mutt_core::Secret;
use std::collections::HashMap;

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
}

pub trait SecretSource: Send + Sync {
    fn get(&self, name: &str) -> Result<Option<Secret>, SecretError>;
}

/// Reads `NAME`, or else the file named by `NAME_FILE`.
pub struct EnvSecrets {
    env: HashMap<String, String>,
}

impl EnvSecrets {
    pub fn new(env: HashMap<String, String>) -> Self {
        Self { env }
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
        let content = std::fs::read_to_string(path).map_err(|e| SecretError::File {
            name: name.to_owned(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let value = content.trim();
        Ok((!value.is_empty()).then(|| Secret::new(value)))
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

/// A list secret: comma-separated keys (`INGEST_API_KEY=key1,key2`), so keys can be rotated
/// without downtime.
pub fn key_list(source: &dyn SecretSource, name: &str) -> Result<Vec<Secret>, SecretError> {
    Ok(source
        .get(name)?
        .map(|s| s.expose().split(',').map(str::trim).filter(|k| !k.is_empty()).map(Secret::new).collect())
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
        let err = s.get("C").unwrap_err().to_string();
        assert!(err.contains("C_FILE"));
    }
}
