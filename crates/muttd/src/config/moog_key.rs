//! The forwarder refuses to start when its configured authentication needs the MOOG_API_KEY
//! secret and it is missing: every alert would otherwise be refused by Moogsoft (the original
//! required the key, spec §11.2).

use super::{ConfigError, ForwarderSection, LamAuthMode};
use mutt_core::Secret;
use mutt_forwarder::{Destination, OutputFormat};

/// Refuses a webhook destination whose format and `lam_auth` send MOOG_API_KEY when it is
/// unset. The alerts file and the `generic` format (a bearer key only when one is set) need none.
pub(super) fn check(
    section: &ForwarderSection,
    destination: &Destination,
    key: Option<&Secret>,
) -> Result<(), ConfigError> {
    if key.is_some() || !matches!(destination, Destination::Webhook(_)) {
        return Ok(());
    }
    let sends = match (section.format, section.lam_auth) {
        (OutputFormat::MoogRestLam, LamAuthMode::Token) => {
            "forwarder.lam_auth = token sends it as the REST LAM auth_token"
        }
        (OutputFormat::MoogRestLam, LamAuthMode::Basic) => "forwarder.lam_auth = basic sends it as the password",
        (OutputFormat::Legacy, _) => "forwarder.format = legacy sends it as Authorization: Bearer",
        (OutputFormat::MoogRestLam, LamAuthMode::None) | (OutputFormat::Generic, _) => return Ok(()),
    };
    Err(ConfigError::Invalid(format!(
        "MOOG_API_KEY is not set: {sends}; set MOOG_API_KEY (or MOOG_API_KEY_FILE), or set forwarder.lam_auth = \
         \"none\" (MUTT_FORWARDER__LAM_AUTH=none) for a receiver without authentication"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_needs_the_key_its_authentication_sends() {
        let hook = Destination::Webhook("http://moog/events".into());
        let file = Destination::File("alerts.jsonl".into());
        let key = Secret::new("k");
        let with = |format, lam_auth| ForwarderSection { format, lam_auth, ..ForwarderSection::default() };
        let refused = [
            with(OutputFormat::MoogRestLam, LamAuthMode::Token),
            with(OutputFormat::MoogRestLam, LamAuthMode::Basic),
            with(OutputFormat::Legacy, LamAuthMode::None),
        ];
        for s in &refused {
            let e = check(s, &hook, None).unwrap_err().to_string();
            assert!(e.starts_with("MOOG_API_KEY is not set: "), "{e}");
            assert!(check(s, &hook, Some(&key)).is_ok());
            assert!(check(s, &file, None).is_ok(), "the alerts file sends no key");
        }
        assert!(check(&with(OutputFormat::MoogRestLam, LamAuthMode::None), &hook, None).is_ok());
        assert!(check(&with(OutputFormat::Generic, LamAuthMode::Token), &hook, None).is_ok());
    }
}
