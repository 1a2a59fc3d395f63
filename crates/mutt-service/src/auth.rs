//! The API-key check every role's HTTP gate uses (the ingestor's `X-API-KEY`, the management
//! API's `X-API-KEY` / `?api_key=`): one implementation, so both compare keys the same way.
//!
//! Keys have names: a configured entry `name:key` is the key `key` named `name`; an entry
//! without a valid name before its first `:` is a plain key named `default`. The name is what
//! logs, metrics and the audit show of a key, never the key itself.
//!
//! The comparison does not leak key lengths: the SHA-256 digest of what the client sent is
//! compared, in constant time, with the digest of every configured key (32 bytes each), with
//! no early exit, so neither the time taken nor its variation tells which key matched or how
//! long any key is.

use mutt_core::Secret;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The name of a key configured without one.
pub const DEFAULT_KEY_NAME: &str = "default";

/// One accepted key: its name and the digest of its value (the value itself is not kept).
#[derive(Clone)]
pub struct ApiKey {
    name: Arc<str>,
    digest: [u8; 32],
    empty: bool,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Whether `s` may be a key's name: 1–64 of `A-Z a-z 0-9 _ . -` (safe in logs and labels).
pub fn valid_key_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Splits a configured entry into its name and key: `name:key`, or a plain key named
/// `default` (also when the part before the first `:` is no valid name).
pub fn split_entry(entry: &str) -> (&str, &str) {
    match entry.split_once(':') {
        Some((name, key)) if valid_key_name(name) && !key.is_empty() => (name, key),
        _ => (DEFAULT_KEY_NAME, entry),
    }
}

impl ApiKey {
    /// The key `key` named `name`.
    pub fn new(name: &str, key: &str) -> Self {
        Self { name: Arc::from(name), digest: Sha256::digest(key.as_bytes()).into(), empty: key.is_empty() }
    }

    /// A configured entry, `name:key` or a plain key ([`split_entry`]).
    pub fn from_entry(entry: &Secret) -> Self {
        let (name, key) = split_entry(entry.expose());
        Self::new(name, key)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shared name (cheap to clone into request extensions and labels).
    pub fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    /// An empty key never matches (nothing configured).
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Whether `other` is the same key (name and value; digests compared in constant time):
    /// the console's sessions end when their key is rotated away.
    pub fn same_as(&self, other: &ApiKey) -> bool {
        bool::from(self.digest.ct_eq(&other.digest)) && self.name == other.name && !self.empty
    }
}

impl From<Secret> for ApiKey {
    fn from(s: Secret) -> Self {
        Self::from_entry(&s)
    }
}

/// The name of the key a request was admitted with (a request extension: the ingestor and
/// the management API insert it, handlers and the audit read it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyName(pub Arc<str>);

/// The configured key equal to `given`, compared as described in the module doc: every key's
/// digest is compared, the index of the match chosen without branching on it.
pub fn find_key<'a>(given: &[u8], keys: &'a [ApiKey]) -> Option<&'a ApiKey> {
    let digest: [u8; 32] = Sha256::digest(given).into();
    let mut found = subtle::Choice::from(0u8);
    let mut index = 0u32;
    for (i, k) in keys.iter().enumerate() {
        // `empty` leaks only whether a key is configured, which is not secret.
        let hit = digest.ct_eq(&k.digest) & subtle::Choice::from(u8::from(!k.empty));
        index.conditional_assign(&u32::try_from(i).unwrap_or(u32::MAX), hit & !found);
        found |= hit;
    }
    if bool::from(found) { keys.get(index as usize) } else { None }
}

/// Whether `given` equals one of `secrets` (unnamed: SNMP communities), compared the same way
/// as [`find_key`] (digests, every secret, no early exit).
pub fn key_matches(given: &[u8], secrets: &[Secret]) -> bool {
    let digest: [u8; 32] = Sha256::digest(given).into();
    let mut ok = subtle::Choice::from(0u8);
    for s in secrets {
        let d: [u8; 32] = Sha256::digest(s.expose().as_bytes()).into();
        ok |= digest.ct_eq(&d) & subtle::Choice::from(u8::from(!s.is_empty()));
    }
    bool::from(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(entries: &[&str]) -> Vec<ApiKey> {
        entries.iter().map(|e| ApiKey::from(Secret::new(*e))).collect()
    }

    #[test]
    fn any_configured_key_matches() {
        let ks = keys(&["alpha", "beta"]);
        assert!(find_key(b"beta", &ks).is_some());
        assert!(find_key(b"alpha", &ks).is_some());
        assert!(find_key(b"alph", &ks).is_none());
        assert!(find_key(b"", &[ApiKey::new("default", "")]).is_none());
        let secrets = vec![Secret::new("alpha"), Secret::new("beta")];
        assert!(key_matches(b"beta", &secrets));
        assert!(!key_matches(b"alph", &secrets));
    }

    #[test]
    fn empty_keys_never_match() {
        assert!(!key_matches(b"", &[]));
        assert!(find_key(b"", &[]).is_none());
        let ks = keys(&["", "gamma"]);
        assert!(find_key(b"", &ks).is_none());
        assert!(find_key(b"x", &keys(&[""])).is_none());
        assert_eq!(find_key(b"gamma", &ks).map(ApiKey::name), Some("default"));
        assert!(!key_matches(b"", &[Secret::new(""), Secret::new("gamma")]));
        assert!(key_matches(b"gamma", &[Secret::new(""), Secret::new("gamma")]));
    }

    #[test]
    fn named_keys_are_found_by_value_and_named() {
        let ks = keys(&["ops:k-ops-1", "plain-key", "ci:k:with:colons", "bad name:x", "ops:k-ops-2"]);
        assert_eq!(find_key(b"k-ops-1", &ks).map(ApiKey::name), Some("ops"));
        assert_eq!(find_key(b"k-ops-2", &ks).map(ApiKey::name), Some("ops"));
        assert_eq!(find_key(b"plain-key", &ks).map(ApiKey::name), Some("default"));
        assert_eq!(find_key(b"k:with:colons", &ks).map(ApiKey::name), Some("ci"));
        assert_eq!(find_key(b"bad name:x", &ks).map(ApiKey::name), Some("default"));
        assert!(find_key(b"ops:k-ops-1", &ks).is_none(), "the name is not part of the key");
        assert!(find_key(b"k-ops-3", &ks).is_none());
        assert_eq!(format!("{:?}", ks[0]), "ApiKey { name: \"ops\", .. }");
    }

    #[test]
    fn names_are_restricted() {
        assert!(valid_key_name("ops-team_1.a"));
        assert!(!valid_key_name(""));
        assert!(!valid_key_name("a b"));
        assert!(!valid_key_name(&"a".repeat(65)));
        assert_eq!(split_entry("name:"), ("default", "name:"));
    }
}
