//! Security settings of muttd's own listeners: `tls_*` of `[ingestor]` and `[web]` (HTTPS on
//! the ingest and management API ports, reloaded on SIGHUP) and `ingestor.key_rate_limits`
//! (per-key request budgets, by key name).

use super::error::Namer;
use super::{Config, ConfigError};
use mutt_service::tls::{ClientAuth, TlsFiles};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A listener's TLS settings (`tls_*` of `[ingestor]` and `[web]`): off unless `cert_file`
/// and `key_file` are set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListenerTlsSection {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuthSetting,
}

impl super::IngestorSection {
    pub fn tls(&self) -> ListenerTlsSection {
        ListenerTlsSection {
            cert_file: self.tls_cert_file.clone(),
            key_file: self.tls_key_file.clone(),
            client_ca_file: self.tls_client_ca_file.clone(),
            client_auth: self.tls_client_auth,
        }
    }
}

impl super::WebSection {
    pub fn tls(&self) -> ListenerTlsSection {
        ListenerTlsSection {
            cert_file: self.tls_cert_file.clone(),
            key_file: self.tls_key_file.clone(),
            client_ca_file: self.tls_client_ca_file.clone(),
            client_auth: self.tls_client_auth,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthSetting {
    #[default]
    None,
    Optional,
    Required,
}

impl From<ClientAuthSetting> for ClientAuth {
    fn from(setting: ClientAuthSetting) -> Self {
        match setting {
            ClientAuthSetting::None => ClientAuth::None,
            ClientAuthSetting::Optional => ClientAuth::Optional,
            ClientAuthSetting::Required => ClientAuth::Required,
        }
    }
}

impl ListenerTlsSection {
    /// The files to load, `None` when TLS is off.
    pub fn files(&self) -> Option<TlsFiles> {
        let (cert, key) = (self.cert_file.clone()?, self.key_file.clone()?);
        Some(TlsFiles {
            cert_file: cert,
            key_file: key,
            client_ca_file: self.client_ca_file.clone(),
            client_auth: self.client_auth.into(),
        })
    }

    fn check(&self, section: &str, n: &Namer<'_>) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{section}.tls_{k}");
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => return Err(n.refuse(&key("key_file"), "is needed with tls_cert_file")),
            (None, Some(_)) => return Err(n.refuse(&key("cert_file"), "is needed with tls_key_file")),
            (None, None) if self.client_auth != ClientAuthSetting::None || self.client_ca_file.is_some() => {
                return Err(n.refuse(&key("cert_file"), "is needed for client certificates (TLS is off without it)"));
            }
            _ => {}
        }
        if self.client_auth != ClientAuthSetting::None && self.client_ca_file.is_none() {
            return Err(n.refuse(&key("client_ca_file"), "is needed when tls_client_auth is optional or required"));
        }
        Ok(())
    }
}

/// Checks the listeners' TLS settings and `ingestor.key_rate_limits`.
pub(super) fn check(config: &Config, n: &Namer<'_>) -> Result<(), ConfigError> {
    config.ingestor.tls().check("ingestor", n)?;
    config.web.tls().check("web", n)?;
    for (i, s) in config.ingestor.syslog.iter().enumerate() {
        check_syslog(s, &format!("ingestor.syslog[{i}]"), n)?;
    }
    for entry in &config.ingestor.key_rate_limits {
        if parse_rate(entry).is_none() {
            let problem = format!("{entry:?} is not name:rate (a key name of 1-64 of A-Z a-z 0-9 _ . -, a rate >= 1)");
            return Err(n.refuse("ingestor.key_rate_limits", problem));
        }
    }
    Ok(())
}

/// Client certificates of a syslog listener: only on `tls`, and with a CA to check them against.
fn check_syslog(s: &super::SyslogSection, section: &str, n: &Namer<'_>) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{section}.tls_{k}");
    let wants_clients = s.tls_client_auth != ClientAuthSetting::None || s.tls_client_ca_file.is_some();
    if wants_clients && s.protocol != super::SyslogProtocol::Tls {
        return Err(n.refuse(&key("client_auth"), "client certificates need protocol \"tls\""));
    }
    if s.tls_client_auth != ClientAuthSetting::None && s.tls_client_ca_file.is_none() {
        return Err(n.refuse(&key("client_ca_file"), "is needed when tls_client_auth is optional or required"));
    }
    Ok(())
}

/// `name:rate` with a valid key name and a rate of at least 1.
fn parse_rate(entry: &str) -> Option<(&str, u64)> {
    let (name, rate) = entry.split_once(':')?;
    let rate = rate.trim().parse::<u64>().ok().filter(|r| *r > 0)?;
    mutt_service::auth::valid_key_name(name.trim()).then_some((name.trim(), rate))
}

/// The per-key limits as the ingest API takes them: `rate` requests per `rate_window_secs`
/// (entries that do not parse were refused by [`check`]).
pub fn key_rate_limits(entries: &[String], window_secs: u64) -> BTreeMap<String, mutt_ingest::RateLimit> {
    let window = Duration::from_secs(window_secs);
    entries
        .iter()
        .filter_map(|e| parse_rate(e))
        .map(|(name, limit)| (name.to_owned(), mutt_ingest::RateLimit { limit, window }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_checked() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        assert!(c.ingestor.tls().files().is_none());
        c.ingestor.tls_cert_file = Some("/x/cert.pem".into());
        assert!(c.validate().unwrap_err().to_string().contains("ingestor.tls_key_file"));
        c.ingestor.tls_key_file = Some("/x/key.pem".into());
        c.ingestor.tls_client_auth = ClientAuthSetting::Required;
        assert!(c.validate().unwrap_err().to_string().contains("ingestor.tls_client_ca_file"));
        c.ingestor.tls_client_ca_file = Some("/x/ca.pem".into());
        assert!(c.validate().is_ok());
        let files = c.ingestor.tls().files().unwrap();
        assert_eq!(files.client_auth, ClientAuth::Required);
        c.web.tls_client_auth = ClientAuthSetting::Optional;
        assert!(c.validate().unwrap_err().to_string().contains("web.tls_cert_file"));
    }

    #[test]
    fn syslog_client_certificate_settings_are_checked() {
        use crate::config::{SyslogProtocol, SyslogSection};
        let mut c = Config::default();
        let tls = SyslogSection { protocol: SyslogProtocol::Tls, ..SyslogSection::default() };
        c.ingestor.syslog = vec![SyslogSection::default(), tls];
        assert!(c.validate().is_ok());
        c.ingestor.syslog[1].tls_client_auth = ClientAuthSetting::Required;
        assert!(c.validate().unwrap_err().to_string().contains("ingestor.syslog[1].tls_client_ca_file"));
        c.ingestor.syslog[1].tls_client_ca_file = Some("/x/ca.pem".into());
        assert!(c.validate().is_ok());
        c.ingestor.syslog[1].tls_client_auth = ClientAuthSetting::Optional;
        assert!(c.validate().is_ok());
        // Not on UDP or TCP: nothing would check them.
        c.ingestor.syslog[0].tls_client_ca_file = Some("/x/ca.pem".into());
        assert!(c.validate().unwrap_err().to_string().contains("ingestor.syslog[0].tls_client_auth"));
        c.ingestor.syslog[0] = SyslogSection { protocol: SyslogProtocol::Tcp, ..SyslogSection::default() };
        c.ingestor.syslog[0].tls_client_auth = ClientAuthSetting::Required;
        assert!(c.validate().unwrap_err().to_string().contains("need protocol"));
        assert_eq!(ClientAuth::from(ClientAuthSetting::Optional), ClientAuth::Optional);
    }

    #[test]
    fn key_rate_limits_are_checked() {
        let mut c = Config::default();
        c.ingestor.key_rate_limits = vec!["ops:10".into(), "ci: 5".into()];
        assert!(c.validate().is_ok());
        let limits = key_rate_limits(&c.ingestor.key_rate_limits, 60);
        assert_eq!(limits["ops"], mutt_ingest::RateLimit { limit: 10, window: Duration::from_secs(60) });
        assert_eq!(limits["ci"].limit, 5);
        for bad in ["bad name:10", "zero:0", "ops", "ops:x"] {
            c.ingestor.key_rate_limits = vec![bad.into()];
            assert!(c.validate().unwrap_err().to_string().contains("key_rate_limits"), "{bad}");
        }
    }
}
