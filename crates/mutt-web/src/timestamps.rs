//! How the API writes timestamps: RFC 3339 UTC (`2025-11-11T14:34:50.644928Z`, the default), or
//! the original's RFC 1123 in GMT (`Tue, 11 Nov 2025 14:34:50 GMT`, sub-seconds dropped: what
//! Flask made of a `datetime`) for clients that parse that (`[web] timestamp_format`).
//!
//! Handlers always build RFC 3339; with `rfc1123` one layer over the API rewrites the answer:
//! every string member named like a timestamp (`event_timestamp`, `*_at`) that holds an RFC 3339
//! time: the members that were `datetime`s in the original. The SLO report's `timestamp` was
//! ISO 8601 text there and stays so. Events and messages carried inside an answer (`message`,
//! `raw_message`, `event`, …) are the sender's data and stay as they were.

use crate::WebState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// `[web] timestamp_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampFormat {
    /// `2025-11-11T14:34:50.644928Z`.
    #[default]
    Rfc3339,
    /// `Tue, 11 Nov 2025 14:34:50 GMT` (the original's).
    Rfc1123,
}

impl TimestampFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rfc3339 => "rfc3339",
            Self::Rfc1123 => "rfc1123",
        }
    }

    /// A time in this format.
    pub fn format(self, t: DateTime<Utc>) -> String {
        match self {
            Self::Rfc3339 => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            Self::Rfc1123 => t.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        }
    }
}

impl std::str::FromStr for TimestampFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rfc3339" => Ok(Self::Rfc3339),
            "rfc1123" => Ok(Self::Rfc1123),
            other => Err(format!("timestamp_format must be \"rfc3339\" or \"rfc1123\", not {other:?}")),
        }
    }
}

/// Members holding data from outside (events, stored messages): never rewritten.
const OPAQUE: &[&str] = &["message", "raw_message", "raw_json", "event", "payload", "body", "raw"];

fn is_time_key(key: &str) -> bool {
    key == "event_timestamp" || key.ends_with("_at")
}

/// Rewrites the timestamps of an answer in place (see the module doc).
pub fn rewrite(v: &mut Value, format: TimestampFormat) {
    if format == TimestampFormat::Rfc3339 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, item) in m.iter_mut() {
                if OPAQUE.contains(&k.as_str()) {
                    continue;
                }
                match item {
                    Value::String(s) if is_time_key(k) => {
                        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                            *s = format.format(t.with_timezone(&Utc));
                        }
                    }
                    _ => rewrite(item, format),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite(i, format)),
        _ => {}
    }
}

/// Answers above this are passed through unchanged rather than held in memory twice.
const MAX_REWRITE: usize = 32 << 20;

/// Layer over the API routes: the JSON answers' timestamps in the configured format.
pub(crate) async fn layer(State(state): State<Arc<WebState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let format = state.config.timestamp_format;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if format == TimestampFormat::Rfc3339 || !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REWRITE).await else {
        return crate::ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the answer could not be read for timestamp rewriting",
        )
        .into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    rewrite(&mut value, format);
    let out = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc1123_as_flask_wrote_it() {
        let t = "2025-11-11T14:34:50.644928Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(TimestampFormat::Rfc1123.format(t), "Tue, 11 Nov 2025 14:34:50 GMT");
        assert_eq!(TimestampFormat::Rfc3339.format(t), "2025-11-11T14:34:50.644928Z");
        assert_eq!("RFC1123".parse::<TimestampFormat>(), Ok(TimestampFormat::Rfc1123));
        assert!("iso".parse::<TimestampFormat>().is_err());
    }

    #[test]
    fn only_timestamp_members_outside_carried_data_change() {
        let mut v = json!({
            "logs": [{"changed_at": "2025-11-11T14:34:50+01:00", "reason": "2025-11-11T14:34:50Z",
                      "raw_message": "{\"timestamp\": \"2025-11-11T14:34:50Z\"}"}],
            "timestamp": "2025-11-11T14:34:50Z",
            "entry": {"failed_at": "not a time", "message": {"timestamp": "2025-11-11T14:34:50Z"}},
        });
        rewrite(&mut v, TimestampFormat::Rfc1123);
        assert_eq!(v["logs"][0]["changed_at"], "Tue, 11 Nov 2025 13:34:50 GMT");
        assert_eq!(v["logs"][0]["reason"], "2025-11-11T14:34:50Z", "not a timestamp member");
        assert_eq!(v["timestamp"], "2025-11-11T14:34:50Z", "ISO text in the original's SLO report too");
        assert_eq!(v["entry"]["failed_at"], "not a time");
        assert_eq!(v["entry"]["message"]["timestamp"], "2025-11-11T14:34:50Z", "the event's own data");
    }
}
