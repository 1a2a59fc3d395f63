//! The API-key check every role's HTTP gate uses (the ingestor's `X-API-KEY`, the management
//! API's `X-API-KEY` / `?api_key=`): one implementation, so both compare keys the same way.

use mutt_core::Secret;
use subtle::ConstantTimeEq;

/// Whether `given` equals one of the configured `keys`, compared in constant time: every key is
/// compared even after a match, so the time taken does not tell which key (or how much of one)
/// matched. Empty configured keys never match, so an unset key cannot be "guessed" by sending
/// nothing.
pub fn key_matches(given: &[u8], keys: &[Secret]) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for k in keys {
        // `is_empty` leaks only whether a key is configured, which is not secret.
        if !k.is_empty() {
            ok |= given.ct_eq(k.expose().as_bytes());
        }
    }
    bool::from(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_key_matches() {
        let keys = vec![Secret::new("alpha"), Secret::new("beta")];
        assert!(key_matches(b"beta", &keys));
        assert!(key_matches(b"alpha", &keys));
        assert!(!key_matches(b"alph", &keys));
        assert!(!key_matches(b"", &[Secret::new("")]));
    }

    #[test]
    fn empty_keys_never_match() {
        assert!(!key_matches(b"", &[]));
        assert!(!key_matches(b"", &[Secret::new(""), Secret::new("gamma")]));
        assert!(!key_matches(b"x", &[Secret::new("")]));
        assert!(key_matches(b"gamma", &[Secret::new(""), Secret::new("gamma")]));
    }
}
