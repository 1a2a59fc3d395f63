//! Configuration errors that name the setting the way the user wrote it: the environment
//! variable (`MUTT_INGESTOR__MAX_RATE="0"`, `MAX_INGEST_QUEUE_SIZE="abc"`), or the key and the
//! TOML file it is in, never figment's internal key (`default.ingestor.max_rate`) or a
//! source-code location.

use super::env::EnvOrigins;
use figment::Figment;
use figment::error::Kind;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    /// One setting's value is refused; `setting` is what the user wrote (a variable, or a key
    /// and its file).
    #[error("{setting}: {problem}")]
    Setting { setting: String, problem: String },
}

/// Names settings by where their value came from.
pub(super) struct Namer<'a> {
    pub env: Option<&'a EnvOrigins>,
    /// The merged sources (defaults, file, environment), to find a key's file.
    pub figment: Option<&'a Figment>,
}

impl Namer<'_> {
    /// Names only by key (for a `Config` built in code, not loaded).
    pub const PLAIN: Namer<'static> = Namer { env: None, figment: None };

    /// `key` as the user wrote it: the variable that set it (or one of its parents), else the
    /// key and the file it is in, else the key itself (a default).
    pub fn name(&self, key: &str) -> String {
        let mut prefix = key;
        loop {
            if let Some(var) = self.env.and_then(|e| e.get(prefix)) {
                return var.clone();
            }
            match prefix.rsplit_once('.') {
                Some((parent, _)) => prefix = parent,
                None => break,
            }
        }
        let file = self.figment.and_then(|f| f.find_metadata(key)).and_then(|m| m.source.as_ref()?.file_path());
        match file {
            Some(file) => format!("{key} in {}", file.display()),
            None => key.to_owned(),
        }
    }

    pub fn refuse(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Setting { setting: self.name(key), problem: problem.into() }
    }

    /// Every error figment found, each naming its setting.
    pub fn figment_error(&self, error: figment::Error) -> ConfigError {
        let mut errors: Vec<ConfigError> = error.into_iter().map(|e| self.one_figment_error(&e)).collect();
        if errors.len() == 1 {
            return errors.remove(0);
        }
        ConfigError::Invalid(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    }

    fn one_figment_error(&self, e: &figment::Error) -> ConfigError {
        let problem = describe(&e.kind);
        if e.path.is_empty() {
            // A file that does not parse: no key, but its provider knows the file.
            let file = e.metadata.as_ref().and_then(|m| m.source.as_ref()?.file_path());
            return match file {
                Some(file) => ConfigError::Setting { setting: file.display().to_string(), problem },
                None => ConfigError::Invalid(problem),
            };
        }
        self.refuse(&e.path.join("."), problem)
    }
}

/// serde's complaint in words for someone editing a file or an environment.
fn describe(kind: &Kind) -> String {
    match kind {
        Kind::UnknownField(_, known) => format!("no such setting (settings here: {})", known.join(", ")),
        Kind::UnknownVariant(found, allowed) => format!("{found:?} is not one of {}", allowed.join(", ")),
        Kind::InvalidType(found, expected) | Kind::InvalidValue(found, expected) => {
            format!("expected {expected}, found {found}")
        }
        other => other.to_string(),
    }
}
