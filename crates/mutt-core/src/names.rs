//! Names that become parts of Redis keys, parsed once so that invalid ones never reach a key.

use std::fmt;

/// A worker's pod name: the last segment of `mutt:processing:<role>:<pod>` and
/// `mutt:heartbeat:<role>:<pod>`. The janitor takes the text after the last `:` as the pod,
/// so a `:` inside the name would make it check the wrong heartbeat and steal live work.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PodNameError {
    #[error("pod name is empty")]
    Empty,
    #[error("pod name {0:?} contains ':' (it is the last segment of Redis keys)")]
    Colon(String),
    #[error("pod name {0:?} contains whitespace, '*', '?' or '[' (it is used in Redis key patterns)")]
    BadCharacter(String),
    #[error("pod name is longer than 200 characters")]
    TooLong,
}

impl PodName {
    pub fn parse(name: impl Into<String>) -> Result<Self, PodNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(PodNameError::Empty);
        }
        if name.len() > 200 {
            return Err(PodNameError::TooLong);
        }
        if name.contains(':') {
            return Err(PodNameError::Colon(name));
        }
        if name.chars().any(|c| c.is_whitespace() || matches!(c, '*' | '?' | '[' | ']')) {
            return Err(PodNameError::BadCharacter(name));
        }
        Ok(Self(name))
    }

    /// A random name like the original's `alerter-<6 hex>`, for processes started without one.
    pub fn random(role: &str) -> Self {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        Self(format!("{role}-{}", &hex[..6]))
    }
}

impl AsRef<str> for PodName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_colons_and_patterns() {
        assert!(matches!(PodName::parse("a:b"), Err(PodNameError::Colon(_))));
        assert!(matches!(PodName::parse("a*"), Err(PodNameError::BadCharacter(_))));
        assert_eq!(PodName::parse(""), Err(PodNameError::Empty));
        assert_eq!(PodName::parse("alerter-0").unwrap().as_ref(), "alerter-0");
    }

    #[test]
    fn random_names_are_valid() {
        let p = PodName::random("alerter");
        assert!(PodName::parse(p.as_ref()).is_ok());
        assert!(p.as_ref().starts_with("alerter-"));
    }
}
