//! TLS of the connections to PostgreSQL and Redis, PostgreSQL's time-outs, and showing
//! settings without the secrets a URL may carry ([`redacted`]: `Debug` of the sections with
//! URLs, `muttd config show`).
//!
//! The original's variables keep their meaning (spec §11.1, §11.5): `REDIS_TLS_ENABLED` and
//! `DB_TLS_ENABLED` are true unless set otherwise, so an env file written for MUTT v2.5 without
//! them connects encrypted, never silently in clear. `DB_TLS_ENABLED` gives `sslmode=require`
//! (with `DB_TLS_CA_CERT_PATH`, libpq and muttd then also check the CA); muttd's own
//! `database.url` takes any libpq `sslmode` (default `prefer`, as libpq's).

use super::error::Namer;
use super::{Config, ConfigError, DatabaseSection, RedisSection};
use mutt_store::postgres::PgTimeouts;
use mutt_store::postgres::connect::{TlsSettings, split_url};
use std::collections::HashMap;
use std::time::Duration;

/// Keys whose values are secrets wherever they appear (settings name secrets, but a value
/// written in by mistake must not be shown).
const SECRET_KEYS: [&str; 5] = ["password", "passwd", "token", "api_key", "apikey"];

/// A configuration value fit to show: no nulls (TOML has none), URL passwords and
/// secret-named values replaced by `[redacted]`.
pub fn redacted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let secret = SECRET_KEYS.iter().any(|s| k.to_ascii_lowercase().ends_with(s));
                    let v = if secret && v.is_string() { Value::from("[redacted]") } else { redacted(v) };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().filter(|v| !v.is_null()).map(redacted).collect()),
        Value::String(s) if s.contains("://") || s.contains('=') => Value::from(mutt_core::secret::redact_url(&s)),
        other => other,
    }
}

/// `Debug` for settings that may hold URLs: the redacted serialised form.
pub fn debug_redacted<T: serde::Serialize>(name: &str, value: &T, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match serde_json::to_value(value) {
        Ok(v) => write!(f, "{name} {}", redacted(v)),
        Err(_) => write!(f, "{name} {{ .. }}"),
    }
}

macro_rules! redacted_debug {
    ($($t:ident),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                tls::debug_redacted(stringify!($t), self, f)
            }
        }
    )*};
}
pub(super) use redacted_debug;

/// The original's reading of its TLS switches: on unless set to anything but `true`.
pub(super) fn legacy_tls_enabled(env: &HashMap<String, String>, name: &str) -> bool {
    env.get(name).is_none_or(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The `sslmode` the original's `DB_*` variables ask for.
pub(super) fn legacy_sslmode(env: &HashMap<String, String>) -> &'static str {
    if legacy_tls_enabled(env, "DB_TLS_ENABLED") { "require" } else { "disable" }
}

/// What to set when TLS fails against a server that does not speak it.
const PG_NO_TLS: &str = "the PostgreSQL server does not accept TLS. TLS is on by default for DB_HOST-style \
settings, as in MUTT v2.5: turn on ssl in postgresql.conf, or set DB_TLS_ENABLED=false to connect \
unencrypted (in database.url: sslmode=disable)";

/// A hint for a failed PostgreSQL connection, from the error's text.
pub fn postgres_hint(error: &str) -> Option<&'static str> {
    if error.contains("does not support TLS") {
        Some(PG_NO_TLS)
    } else if error.contains("NotValidForName") || error.contains("not valid for name") {
        Some(
            "the server's certificate is not issued for the host muttd connects to (sslmode=verify-full): \
             use a host name the certificate names, or sslmode=verify-ca to check the CA only",
        )
    } else if error.contains("UnknownIssuer") {
        Some(
            "the server's certificate is not signed by a CA muttd trusts: set DB_TLS_CA_CERT_PATH \
             (database.ca_file) to the CA's PEM file",
        )
    } else {
        None
    }
}

/// A hint for a failed Redis connection over TLS (not when the server refused the password:
/// then TLS worked).
pub fn redis_hint(redis: &RedisSection, error: &str) -> Option<&'static str> {
    let auth = ["WRONGPASS", "NOAUTH", "invalid username-password", "AuthenticationFailed"];
    (redis.uses_tls() && !auth.iter().any(|a| error.contains(a))).then_some(
        "Redis is reached over TLS (rediss://; REDIS_TLS_ENABLED is true by default, as in MUTT v2.5). \
         For a Redis without TLS set REDIS_TLS_ENABLED=false (or redis:// in redis.url); for a private CA \
         set REDIS_CA_CERT_PATH (redis.ca_file)",
    )
}

/// Percent-encodes a path for a URL query value.
fn query_value(path: &std::path::Path) -> String {
    let mut out = String::new();
    for b in path.display().to_string().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl DatabaseSection {
    /// The URL the store connects with: `url`, plus `ca_file` and the client certificate as
    /// libpq's `sslrootcert`, `sslcert`, `sslkey` (the URL's own win).
    pub fn connection_url(&self) -> Option<String> {
        let url = self.url.clone()?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Some(self.key_value_url(url));
        }
        let mut extra = Vec::new();
        for (key, file) in self.tls_files() {
            if let Some(f) = file
                && !url.contains(&format!("{key}="))
            {
                extra.push(format!("{key}={}", query_value(f)));
            }
        }
        if extra.is_empty() {
            return Some(url);
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(format!("{url}{sep}{}", extra.join("&")))
    }

    fn key_value_url(&self, mut url: String) -> String {
        for (key, file) in self.tls_files() {
            if let Some(f) = file
                && !url.contains(&format!("{key}="))
            {
                url.push_str(&format!(" {key}='{}'", f.display().to_string().replace('\'', "\\'")));
            }
        }
        url
    }

    fn tls_files(&self) -> [(&'static str, Option<&std::path::PathBuf>); 3] {
        [
            ("sslrootcert", self.ca_file.as_ref()),
            ("sslcert", self.client_cert_file.as_ref()),
            ("sslkey", self.client_key_file.as_ref()),
        ]
    }

    /// The TLS settings the connection will use (None: no database configured).
    pub fn tls_settings(&self) -> Option<Result<TlsSettings, mutt_store::StoreError>> {
        self.connection_url().map(|u| split_url(&u).map(|(_, tls)| tls))
    }

    pub fn timeouts(&self) -> PgTimeouts {
        PgTimeouts {
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            statement_timeout: (self.statement_timeout_secs > 0)
                .then(|| Duration::from_secs(self.statement_timeout_secs)),
        }
    }
}

impl RedisSection {
    /// Whether the connection is TLS (`rediss://`, for every node of a Sentinel or Cluster).
    pub fn uses_tls(&self) -> bool {
        let mut urls = self.url.iter().chain(&self.sentinel_urls).chain(&self.cluster_nodes);
        urls.next().is_some_and(|u| u.starts_with("rediss://"))
    }

    /// One line for the start-up log: how the Redis connection is protected.
    pub fn tls_description(&self) -> String {
        match (self.uses_tls(), &self.ca_file) {
            (false, _) => "no TLS (redis://): traffic and password in clear".into(),
            (true, Some(ca)) => format!("TLS, server certificate checked against CA file {}", ca.display()),
            (true, None) => "TLS, server certificate checked against the system's CAs (no REDIS_CA_CERT_PATH)".into(),
        }
    }
}

/// Before connecting: the files named for TLS exist (checked here rather than at load, so
/// that commands which do not connect work on another machine's configuration).
pub fn check_files(config: &Config, postgres: bool) -> Result<(), ConfigError> {
    let db = &config.database;
    let files = [
        ("redis.ca_file (REDIS_CA_CERT_PATH)", config.redis.ca_file.as_ref(), !postgres),
        ("database.ca_file (DB_TLS_CA_CERT_PATH)", db.ca_file.as_ref(), postgres),
        ("database.client_cert_file", db.client_cert_file.as_ref(), postgres),
        ("database.client_key_file", db.client_key_file.as_ref(), postgres),
    ];
    for (name, file, wanted) in files {
        if let Some(f) = file.filter(|_| wanted)
            && !f.is_file()
        {
            return Err(ConfigError::Invalid(format!("{name}: {} is not a readable file", f.display())));
        }
    }
    Ok(())
}

/// Load-time checks: the database URL's TLS part parses, a client certificate comes with its
/// key, the connect time-out is not zero.
pub(super) fn check(config: &Config, n: &Namer<'_>) -> Result<(), ConfigError> {
    let db = &config.database;
    if db.client_cert_file.is_some() != db.client_key_file.is_some() {
        return Err(n.refuse("database.client_cert_file", "needs database.client_key_file too (or neither)"));
    }
    if let Some(Err(e)) = db.tls_settings() {
        return Err(n.refuse("database.url", e.to_string()));
    }
    if db.connect_timeout_secs == 0 {
        return Err(n.refuse("database.connect_timeout_secs", "must be at least 1"));
    }
    Ok(())
}

/// How the PostgreSQL connection is protected, for the log (also when the URL is refused).
pub fn describe_postgres(db: &DatabaseSection) -> String {
    match db.tls_settings() {
        Some(Ok(tls)) => tls.describe(),
        Some(Err(e)) => e.to_string(),
        None => "not configured".into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_originals_variables_default_to_tls() {
        let c = load(None, &env(&[("REDIS_HOST", "r"), ("DB_HOST", "pg")])).unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("rediss://r:6379/0"));
        assert_eq!(c.database.url.as_deref(), Some("postgres://mutt_user@pg:5432/mutt_db?sslmode=require"));
        assert!(c.redis.tls_description().contains("system's CAs"));
        assert!(super::describe_postgres(&c.database).contains("sslmode=require"));
    }

    #[test]
    fn the_originals_variables_turn_tls_off_and_name_cas() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("my ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let ca_s = ca.display().to_string();
        let c = load(
            None,
            &env(&[
                ("REDIS_HOST", "r"),
                ("REDIS_TLS_ENABLED", "False"),
                ("DB_HOST", "pg"),
                ("DB_TLS_CA_CERT_PATH", &ca_s),
                ("REDIS_CA_CERT_PATH", &ca_s),
            ]),
        )
        .unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("redis://r:6379/0"));
        assert!(c.redis.tls_description().contains("no TLS"));
        let url = c.database.connection_url().unwrap();
        assert!(url.ends_with(&format!("?sslmode=require&sslrootcert={}", ca_s.replace(' ', "%20"))), "{url}");
        assert!(super::describe_postgres(&c.database).contains("my ca.pem"));
        let c = load(None, &env(&[("DB_HOST", "pg"), ("DB_TLS_ENABLED", "false")])).unwrap();
        assert!(c.database.url.unwrap().ends_with("?sslmode=disable"));
    }

    #[test]
    fn refusals_name_the_variable() {
        let c = load(None, &env(&[("DB_HOST", "pg"), ("DB_TLS_CA_CERT_PATH", "/nonexistent/ca.pem")])).unwrap();
        let err = super::check_files(&c, true).unwrap_err().to_string();
        assert!(err.contains("DB_TLS_CA_CERT_PATH") && err.contains("/nonexistent/ca.pem"), "{err}");
        let c = load(None, &env(&[("REDIS_HOST", "r"), ("REDIS_CA_CERT_PATH", "/nonexistent/ca.pem")])).unwrap();
        super::check_files(&c, true).unwrap();
        let err = super::check_files(&c, false).unwrap_err().to_string();
        assert!(err.contains("REDIS_CA_CERT_PATH"), "{err}");
        let err = load(None, &env(&[("MUTT_DATABASE__URL", "postgres://u:pw-s3cret@h/db?sslmode=allow")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MUTT_DATABASE__URL") && err.contains("verify-full"), "{err}");
        assert!(!err.contains("pw-s3cret"), "the error names the variable without its password: {err}");
        let err = load(None, &env(&[("MUTT_DATABASE__CONNECT_TIMEOUT_SECS", "0")])).unwrap_err().to_string();
        assert!(err.contains("MUTT_DATABASE__CONNECT_TIMEOUT_SECS"), "{err}");
    }

    #[test]
    fn debug_output_hides_url_passwords() {
        let c = load(
            None,
            &env(&[
                ("MUTT_DATABASE__URL", "postgres://u:pg-s3cret@h/db"),
                ("MUTT_REDIS__URL", "redis://:redis-s3cret@h/0"),
                ("MOOG_WEBHOOK_URL", "https://moog/x?token=moog-s3cret"),
            ]),
        )
        .unwrap();
        for shown in [format!("{c:?}"), format!("{:?}{:?}{:?}", c.database, c.redis, c.forwarder)] {
            assert!(!shown.contains("s3cret") && shown.contains("[redacted]"), "{shown}");
        }
    }

    #[test]
    fn timeouts_and_hints() {
        let c = load(None, &env(&[("MUTT_DATABASE__STATEMENT_TIMEOUT_SECS", "0")])).unwrap();
        assert_eq!(c.database.timeouts().statement_timeout, None);
        assert_eq!(c.database.timeouts().connect_timeout.as_secs(), 5);
        let hint = super::postgres_hint("error performing TLS handshake: server does not support TLS").unwrap();
        assert!(hint.contains("DB_TLS_ENABLED=false"));
    }
}
