//! The ids a log line names for queued messages: `_correlation_id` and `_event_id` (the
//! fields the ingestor stamps on every event and the alerter copies into its alert), read
//! from the bytes as far as they are readable. Only for lines about failures and for debug
//! lines: reading them parses the message again.

use mutt_core::event::{CORRELATION_ID, EVENT_ID};
use serde_json::{Map, Value};

/// How many event ids a line about a whole batch lists.
pub const LOGGED_IDS: usize = 5;

/// What a log line shows for an id it cannot read (the original's word for a missing
/// correlation id).
pub const UNKNOWN: &str = "unknown";

/// The ids of one queued message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageIds {
    pub correlation_id: Option<String>,
    pub event_id: Option<String>,
}

impl MessageIds {
    /// Reads the ids of a message; an unreadable message (not JSON, not an object, ids that
    /// are not strings) has none.
    pub fn of(raw: &[u8]) -> Self {
        match serde_json::from_slice::<Map<String, Value>>(raw) {
            Ok(object) => Self::of_object(&object),
            Err(_) => Self::default(),
        }
    }

    pub fn of_object(object: &Map<String, Value>) -> Self {
        let text = |k: &str| object.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        Self { correlation_id: text(CORRELATION_ID), event_id: text(EVENT_ID) }
    }

    /// The correlation id, or [`UNKNOWN`].
    pub fn correlation_id(&self) -> &str {
        self.correlation_id.as_deref().unwrap_or(UNKNOWN)
    }

    /// The event id, or [`UNKNOWN`].
    pub fn event_id(&self) -> &str {
        self.event_id.as_deref().unwrap_or(UNKNOWN)
    }
}

/// The event ids of the first [`LOGGED_IDS`] messages, comma-separated, for a line about a
/// whole batch (its size goes in a field of its own).
pub fn first_event_ids<'a>(messages: impl IntoIterator<Item = &'a Vec<u8>>) -> String {
    join_ids(messages.into_iter().take(LOGGED_IDS).map(|m| MessageIds::of(m).event_id().to_owned()))
}

/// The first [`LOGGED_IDS`] of `ids`, comma-separated.
pub fn join_ids<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> String {
    let mut out = String::new();
    for id in ids.into_iter().take(LOGGED_IDS) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(id.as_ref());
    }
    out
}

/// A batch that failed, with what the log line about it names: how many messages were
/// leased (0 when the lease itself failed) and the first few event ids.
#[derive(Debug)]
pub struct BatchFailure<E> {
    pub error: E,
    pub events: usize,
    pub event_ids: String,
}

impl<E> BatchFailure<E> {
    /// Nothing was leased.
    pub fn unleased(error: impl Into<E>) -> Self {
        Self { error: error.into(), events: 0, event_ids: String::new() }
    }

    /// `lease` was being processed.
    pub fn of(error: impl Into<E>, lease: &crate::Lease) -> Self {
        Self { error: error.into(), events: lease.len(), event_ids: first_event_ids(&lease.messages) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_as_far_as_readable() {
        let ids = MessageIds::of(br#"{"_correlation_id":"c1","_event_id":"e1","x":1}"#);
        assert_eq!((ids.correlation_id(), ids.event_id()), ("c1", "e1"));
        let partial = MessageIds::of(br#"{"_correlation_id":"c1","_event_id":7}"#);
        assert_eq!((partial.correlation_id(), partial.event_id()), ("c1", UNKNOWN));
        for unreadable in [&b"not json"[..], b"[1]", b""] {
            assert_eq!(MessageIds::of(unreadable), MessageIds::default());
        }
    }

    #[test]
    fn batch_lines_list_the_first_few() {
        let messages: Vec<Vec<u8>> =
            (0..8).map(|n| format!(r#"{{"_event_id":"e{n}"}}"#).into_bytes()).chain([b"x".to_vec()]).collect();
        assert_eq!(first_event_ids(&messages), "e0,e1,e2,e3,e4");
        assert_eq!(first_event_ids(&messages[7..]), "e7,unknown");
        assert_eq!(join_ids(["a", "b"]), "a,b");
    }
}
