//! Secrets (API keys, passwords) wrapped so that `Debug`/`Display` never reveal them.

use std::fmt;

/// A secret value. Formatting prints `[redacted]`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret itself; call it only where the value is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Query and `key=value` parameters whose value is a secret.
const SECRET_PARAMS: [&str; 7] = ["password", "pass", "passwd", "sslpassword", "token", "api_key", "apikey"];

/// A URL or connection string safe to log: the password of `scheme://user:password@host` and
/// the values of password-like parameters become `[redacted]`; the rest (user, host, path)
/// stays, because an operator needs it to see where a connection goes.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = out[auth_start..].find(['/', '?', '#']).map_or(out.len(), |i| auth_start + i);
        if let Some(at) = out[auth_start..auth_end].rfind('@')
            && let Some(colon) = out[auth_start..auth_start + at].find(':')
        {
            out.replace_range(auth_start + colon + 1..auth_start + at, "[redacted]");
        }
    }
    redact_params(&out)
}

/// `password=…` in a query string (`&` separated) or a libpq `key=value` string.
fn redact_params(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq].rfind(['?', '&', ' ', ';']).map_or(0, |i| i + 1);
        let key = rest[key_start..eq].trim().to_ascii_lowercase();
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        if SECRET_PARAMS.contains(&key.as_str()) {
            let end = value_end(rest);
            out.push_str("[redacted]");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Where a parameter's value ends: at `&`/`#`/whitespace, or after its closing quote.
fn value_end(v: &str) -> usize {
    if let Some(quoted) = v.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return i + 2,
                _ => {}
            }
        }
        return v.len();
    }
    v.find(|c: char| c == '&' || c == '#' || c == ';' || c.is_whitespace()).unwrap_or(v.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn urls_lose_their_passwords() {
        let cases = [
            (
                "postgres://mutt:s3cret@db:5432/mutt?sslmode=require",
                "postgres://mutt:[redacted]@db:5432/mutt?sslmode=require",
            ),
            ("rediss://:s3cret@redis:6379/0", "rediss://:[redacted]@redis:6379/0"),
            ("redis://redis:6379/0", "redis://redis:6379/0"),
            ("https://moog/api?token=s3cret&x=1", "https://moog/api?token=[redacted]&x=1"),
            ("host=db password='s3 cret' user=mutt", "host=db password=[redacted] user=mutt"),
            ("postgres://u@h/db?password=s3cret", "postgres://u@h/db?password=[redacted]"),
            ("http://u:p@ss@h/x", "http://u:[redacted]@h/x"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
