//! A delivery attempt's outcome, decided from the response alone. Any 2xx is delivered;
//! 408, 429 and 5xx are worth retrying (429 honours `Retry-After`); 401 and 403 (our
//! credentials refused) and a 3xx (a redirect to another host, never followed: it would carry
//! the credentials there) say our configuration is wrong, not the alerts, which are held; any
//! other status is a rejection that retrying will not fix.

use std::time::Duration;

/// The most of a rejection's response body kept in the dead letter.
pub const MAX_BODY_KEPT: usize = 1024;
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Try again later; `after` is the receiver's `Retry-After`, when it gave one.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Do not retry; dead-letter with the status and (the start of) the body.
    Reject {
        status: u16,
        body: String,
    },
    /// Our side is wrong (credentials refused, a redirect not followed): the alerts are put
    /// back unchanged and the circuit breaker is opened until the configuration is fixed.
    Hold {
        status: u16,
        reason: String,
    },
}

impl Delivery {
    /// Whether the receiver's answer says our credentials were refused.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Delivery::Hold { status: 401 | 403, .. })
    }
}

pub fn classify(status: u16, retry_after: Option<&str>, body: &str) -> Delivery {
    match status {
        200..=299 => Delivery::Delivered,
        408 | 429 | 500..=599 => Delivery::Retry {
            after: retry_after.and_then(parse_retry_after),
            reason: format!("HTTP {status}: {}", mutt_core::text::truncate_utf8(body, 200)),
        },
        401 | 403 => Delivery::Hold {
            status,
            reason: format!(
                "HTTP {status}: the receiver refused our credentials (check MOOG_API_KEY and forwarder.lam_auth): {}",
                mutt_core::text::truncate_utf8(body, 200)
            ),
        },
        300..=399 => Delivery::Hold {
            status,
            reason: format!(
                "HTTP {status}: redirected to another host, not followed (it would carry the credentials there; \
                 check MOOG_WEBHOOK_URL)"
            ),
        },
        _ => Delivery::Reject { status, body: mutt_core::text::truncate_utf8(body, MAX_BODY_KEPT).to_owned() },
    }
}

/// `Retry-After` as delay-seconds, or as an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_table() {
        for s in [200, 201, 202, 204] {
            assert_eq!(classify(s, None, ""), Delivery::Delivered, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 599] {
            assert!(matches!(classify(s, None, ""), Delivery::Retry { .. }), "{s}");
        }
        for s in [400, 404, 413, 422] {
            assert!(matches!(classify(s, None, "nope"), Delivery::Reject { .. }), "{s}");
        }
        for s in [301, 302, 307, 308, 401, 403] {
            assert!(matches!(classify(s, None, "nope"), Delivery::Hold { .. }), "{s}");
        }
        assert!(classify(401, None, "").is_unauthorized() && classify(403, None, "").is_unauthorized());
        assert!(!classify(307, None, "").is_unauthorized());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            classify(429, Some("7"), ""),
            Delivery::Retry { after: Some(Duration::from_secs(7)), reason: "HTTP 429: ".into() }
        );
        assert_eq!(parse_retry_after("99999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn rejection_keeps_first_kib_of_body() {
        let body = "x".repeat(5000);
        match classify(400, None, &body) {
            Delivery::Reject { status: 400, body } => assert_eq!(body.len(), MAX_BODY_KEPT),
            other => panic!("{other:?}"),
        }
    }
}
