//! What a worker decided about the messages of one lease, applied atomically by
//! [`crate::Consumer::settle`].
//!
//! Leased bytes are never rewritten in place: a retry or a dead letter is a new message (the
//! old one is removed by the same atomic settle), so the bytes removed are always exactly the
//! bytes leased.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::time::Duration;

/// The longest error text kept in a dead letter.
const MAX_ERROR_BYTES: usize = 1024;

/// How many failed attempts a role allows before a message is dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The counter field in the message (`_retry_count`, `_moog_retry_count`).
    pub field: &'static str,
    /// Retries allowed after the first attempt (alerter 3, forwarder 5, as the original).
    pub max_retries: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Re-queued with the counter set to `attempt`.
    Retried { attempt: u64 },
    /// Retries exhausted (or the message was unreadable): dead-lettered.
    DeadLettered,
}

/// The outcome of one lease. Every leased message is removed at settle; this says what is
/// pushed in its place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// New messages for the role's output queue (the alerter's alerts).
    pub(crate) emit: Vec<Vec<u8>>,
    /// Messages put back at the front of the source queue unchanged (e.g. rate limited).
    pub(crate) put_back: Vec<Vec<u8>>,
    /// Messages to return to the source queue after a delay.
    pub(crate) delayed: Vec<(Vec<u8>, Duration)>,
    /// Annotated dead letters.
    pub(crate) dead: Vec<Vec<u8>>,
}

impl Settlement {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn emitted(&self) -> usize {
        self.emit.len()
    }

    pub fn dead_lettered(&self) -> usize {
        self.dead.len()
    }

    pub fn retried(&self) -> usize {
        self.delayed.len()
    }

    pub fn put_back_count(&self) -> usize {
        self.put_back.len()
    }

    /// Pushes a new message to the role's output queue.
    pub fn emit(&mut self, message: impl Into<Vec<u8>>) {
        self.emit.push(message.into());
    }

    /// Returns a message to the front of its source queue as it is, without counting an attempt.
    pub fn put_back(&mut self, raw: &[u8]) {
        self.put_back.push(raw.to_vec());
    }

    /// Schedules another attempt after `delay` with the retry counter incremented, or
    /// dead-letters the message when the policy's retries are exhausted.
    pub fn retry(&mut self, policy: RetryPolicy, raw: &[u8], delay: Duration, error: &str) -> RetryOutcome {
        let Some(mut object) = parse_object(raw) else {
            self.dead_letter(raw, "invalid_json", error);
            return RetryOutcome::DeadLettered;
        };
        let attempt = object.get(policy.field).and_then(Value::as_u64).unwrap_or(0) + 1;
        if attempt > u64::from(policy.max_retries) {
            self.dead_letter(raw, "retries_exhausted", error);
            return RetryOutcome::DeadLettered;
        }
        object.insert(policy.field.to_owned(), Value::from(attempt));
        let bytes = serde_json::to_vec(&object).unwrap_or_else(|_| raw.to_vec());
        self.delayed.push((bytes, delay));
        RetryOutcome::Retried { attempt }
    }

    /// Dead-letters a message, recording why, when and the last error in it.
    pub fn dead_letter(&mut self, raw: &[u8], reason: &str, error: &str) {
        self.dead.push(annotate_dead_letter(raw, reason, error));
    }
}

fn parse_object(raw: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(raw) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The dead-letter form of a message: the original object plus `_dlq_reason`, `_dlq_error`
/// and `failed_at` (the field the original's retention job reads). A message that is not a
/// JSON object is wrapped, its bytes kept as text under `raw`.
pub fn annotate_dead_letter(raw: &[u8], reason: &str, error: &str) -> Vec<u8> {
    let mut object = parse_object(raw).unwrap_or_else(|| {
        let mut m = Map::new();
        m.insert("raw".into(), Value::from(String::from_utf8_lossy(raw).into_owned()));
        m
    });
    object.insert("_dlq_reason".into(), Value::from(reason));
    object.insert("_dlq_error".into(), Value::from(mutt_core::text::truncate_utf8(error, MAX_ERROR_BYTES)));
    object.insert("failed_at".into(), Value::from(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)));
    serde_json::to_vec(&object).unwrap_or_else(|_| raw.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy { field: "_retry_count", max_retries: 2 };

    fn json(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn retry_counts_up_then_dead_letters() {
        let mut s = Settlement::new();
        let d = Duration::from_secs(1);
        assert_eq!(s.retry(POLICY, br#"{"a":1}"#, d, "e"), RetryOutcome::Retried { attempt: 1 });
        assert_eq!(json(&s.delayed[0].0)["_retry_count"], 1);
        assert_eq!(s.retry(POLICY, br#"{"a":1,"_retry_count":1}"#, d, "e"), RetryOutcome::Retried { attempt: 2 });
        assert_eq!(s.retry(POLICY, br#"{"a":1,"_retry_count":2}"#, d, "boom"), RetryOutcome::DeadLettered);
        let dead = json(&s.dead[0]);
        assert_eq!(dead["_dlq_reason"], "retries_exhausted");
        assert_eq!(dead["_dlq_error"], "boom");
        assert_eq!(dead["a"], 1);
        assert!(dead["failed_at"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn unreadable_messages_are_wrapped() {
        let mut s = Settlement::new();
        assert_eq!(s.retry(POLICY, b"\xffnot json", Duration::ZERO, "x"), RetryOutcome::DeadLettered);
        let dead = json(&s.dead[0]);
        assert_eq!(dead["_dlq_reason"], "invalid_json");
        assert!(dead["raw"].as_str().unwrap().contains("not json"));
    }

    #[test]
    fn long_errors_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(2000);
        let dead = json(&annotate_dead_letter(b"{}", "r", &long));
        assert!(dead["_dlq_error"].as_str().unwrap().len() <= MAX_ERROR_BYTES);
    }
}
