//! The one ingest step every listener calls: rate limit, required fields, normalisation,
//! stamping, backpressure, push and counters (spec §2.2). The HTTP handler only reads the body
//! and maps the outcome to a response; the syslog and SNMP listeners call the same step after
//! the rate limit, [`Ingest::accept_admitted`], so an event is checked the same way whichever
//! door it came in by. The shared rate limit (`ingest_max_rate`) is the original's limit on API
//! requests; native listeners are governed by backpressure and their own
//! `max_messages_per_second` ([`crate::rate`]) instead.

use crate::admit::Admitter;
use crate::pusher::{PushError, Pusher};
use crate::raw_event::{self, IngestEvent, SeenTimestamps};
use crate::{IngestConfig, IngestMetrics, IngestSettings};
use mutt_core::EventId;
use mutt_core::event::{CORRELATION_ID, EVENT_ID, is_truthy};
use mutt_queue::log_ids::join_ids;
use mutt_queue::{Coordination, Queue, QueueError, RateDecision, SettingsCache};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Events handed in together: one request, one syslog frame, one trap.
#[derive(Debug)]
pub struct Submission {
    pub events: Vec<IngestEvent>,
    /// Whether the sender sent a batch (array or NDJSON): a batch is accepted or refused whole,
    /// and refusals name each bad element's index.
    pub batch: bool,
    /// Stamped on every event as `_correlation_id` (a batch shares one).
    pub correlation_id: String,
}

/// What was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub count: usize,
    /// The ingest queue's depth after the push.
    pub queue_depth: u64,
}

/// What is wrong with one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Required fields absent or empty (names in configuration order).
    MissingFields(Vec<String>),
    /// The event cannot be normalised (wrong type, bad severity or timestamp).
    Invalid(String),
    /// The event as it would be queued (with the fields MUTT adds) is larger than
    /// [`crate::IngestConfig::max_event_bytes`].
    TooLarge { size: usize, limit: usize },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingFields(fields) => write!(f, "missing or empty required fields: {}", python_list(fields)),
            Problem::Invalid(reason) => f.write_str(reason),
            Problem::TooLarge { size, limit } => {
                write!(f, "event is {size} bytes, larger than the limit of {limit} bytes per event (max_event_bytes)")
            }
        }
    }
}

/// One refused element of a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementRejection {
    pub index: usize,
    pub problem: Problem,
}

/// Why nothing of a submission was queued.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("rate limit exceeded; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("{count} events in one batch, at most {max}")]
    TooManyEvents { count: usize, max: usize },
    #[error("{} element(s) rejected", .0.len())]
    Invalid(Vec<ElementRejection>),
    #[error("ingest queue full ({depth} of {limit})")]
    QueueFull { depth: u64, limit: u64 },
    /// Shared: one failed push fails every submission coalesced into it.
    #[error("queue unavailable: {0}")]
    Unavailable(#[source] Arc<QueueError>),
}

impl From<QueueError> for Rejection {
    fn from(e: QueueError) -> Self {
        Rejection::Unavailable(Arc::new(e))
    }
}

impl Rejection {
    /// The `reason` label of `mutt_ingest_requests_total` (the original's values).
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Rejection::RateLimited { .. } => "rate_limit",
            Rejection::TooManyEvents { .. } => "too_large",
            Rejection::Invalid(_) => "validation",
            Rejection::QueueFull { .. } => "queue_full",
            Rejection::Unavailable(e) if e.backend() == "redis" => "redis",
            Rejection::Unavailable(_) => "queue",
        }
    }
}

/// The ingest step with what it needs; cheap to share between listeners. One reference count
/// to clone: axum clones the state for every request (the middleware and the handler).
#[derive(Clone)]
pub struct Ingest {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Arc<dyn Queue>,
    coordination: Arc<dyn Coordination>,
    config: Arc<IngestConfig>,
    /// The queue and rate limits in force (dynamic configuration over `config`).
    settings: Arc<SettingsCache<IngestSettings>>,
    metrics: IngestMetrics,
    /// The accepted keys: `config.api_keys` at start, replaced when the secret is rotated.
    api_keys: Arc<std::sync::RwLock<Arc<Vec<mutt_service::auth::ApiKey>>>>,
    /// Concurrent submissions' events pushed together ([`crate::pusher`]).
    pusher: Arc<Pusher>,
    /// Concurrent requests' rate-limit checks made together ([`crate::admit`]).
    admitter: Arc<Admitter>,
}

impl Ingest {
    pub fn new(
        queue: Arc<dyn Queue>,
        coordination: Arc<dyn Coordination>,
        config: IngestConfig,
        metrics: IngestMetrics,
    ) -> Self {
        let defaults = IngestSettings { max_queue_size: config.max_queue_size, rate_limit: config.rate_limit };
        let settings = Arc::new(SettingsCache::new(defaults).watching(coordination.clone()));
        let api_keys = Arc::new(std::sync::RwLock::new(Arc::new(config.api_keys.clone())));
        let pusher = Arc::new(Pusher::new(queue.clone()));
        let admitter = Arc::new(Admitter::new(coordination.clone()));
        let config = Arc::new(config);
        Self { shared: Arc::new(Shared { queue, coordination, config, settings, metrics, api_keys, pusher, admitter }) }
    }

    /// The static configuration.
    pub fn config(&self) -> &IngestConfig {
        &self.shared.config
    }

    /// The API keys accepted now.
    pub fn api_keys(&self) -> Arc<Vec<mutt_service::auth::ApiKey>> {
        self.shared.api_keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the accepted keys (a rotated `INGEST_API_KEY`): the next request is checked
    /// against the new ones only.
    pub fn set_api_keys(&self, keys: Vec<mutt_service::auth::ApiKey>) {
        *self.shared.api_keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }

    /// The limits in force: the static ones with dynamic configuration applied.
    pub async fn settings(&self) -> IngestSettings {
        self.shared.settings.get(self.shared.coordination.as_ref()).await
    }

    pub fn metrics(&self) -> &IngestMetrics {
        &self.shared.metrics
    }

    /// The coordination backend (rate limits, dynamic configuration).
    pub fn coordination(&self) -> &Arc<dyn Coordination> {
        &self.shared.coordination
    }

    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.shared.queue
    }

    /// Admits the submission through the shared rate limit, then checks, stamps and queues it.
    pub async fn accept(&self, submission: Submission) -> Result<Accepted, Rejection> {
        self.admit(&submission.correlation_id).await?;
        self.accept_admitted(submission).await
    }

    /// The shared rate limit alone (one submission's worth). HTTP calls it before reading the
    /// body, as the original did: a malformed request uses budget too. Fails open: with the
    /// backend unreachable the push fails with 503 anyway. `correlation_id` is for log lines.
    pub async fn admit(&self, correlation_id: &str) -> Result<(), Rejection> {
        let Some(rl) = self.settings().await.rate_limit else {
            return Ok(());
        };
        match self.rate_limit("ingestor", rl.limit, rl.window).await {
            Ok(RateDecision::Allowed) => Ok(()),
            Ok(RateDecision::Limited { retry_after }) => {
                self.shared.metrics.rate_limit_hits.inc();
                Err(self.refuse(Rejection::RateLimited { retry_after }, correlation_id, None))
            }
            Err(e) => {
                tracing::warn!(correlation_id, error = %e, "rate limiter unavailable; allowing the request");
                Ok(())
            }
        }
    }

    /// Takes one slot of the shared limit `name`, together with concurrent requests.
    pub(crate) async fn rate_limit(
        &self,
        name: &str,
        limit: u64,
        window: Duration,
    ) -> Result<RateDecision, Arc<QueueError>> {
        self.shared.admitter.rate_limit(name, limit, window).await
    }

    /// Everything after the rate limit: size, required fields, normalisation, stamping,
    /// backpressure, push, counters. A submission is queued whole or not at all.
    pub async fn accept_admitted(&self, submission: Submission) -> Result<Accepted, Rejection> {
        let Submission { mut events, correlation_id, .. } = submission;
        let (cid, count) = (correlation_id.as_str(), Some(events.len()));
        let max = self.shared.config.max_batch_events;
        if events.len() > max {
            return Err(self.refuse(Rejection::TooManyEvents { count: events.len(), max }, cid, count));
        }
        let rejected = self.check(&mut events);
        if !rejected.is_empty() {
            return Err(self.refuse(Rejection::Invalid(rejected), cid, count));
        }
        // The ids for the debug line, gathered only when it is written (cost per event).
        let mut ids = tracing::enabled!(tracing::Level::DEBUG).then(Vec::new);
        // Each event is written into one scratch buffer and copied out at its exact size: a
        // `to_vec` per event grows by doubling (three reallocations for a 550-byte event) and
        // keeps up to twice the bytes while the messages wait for their push.
        let mut scratch = Vec::with_capacity(1024);
        let max_event_bytes = self.shared.config.max_event_bytes;
        let mut id_text = uuid::Uuid::encode_buffer();
        let messages: Vec<Vec<u8>> = events
            .into_iter()
            .map(|ev| {
                let id: &str = EventId::new().as_uuid().hyphenated().encode_lower(&mut id_text);
                if let Some(ids) = ids.as_mut() {
                    ids.push(id.to_owned());
                }
                scratch.clear();
                write_event(&mut scratch, &ev, cid, id, max_event_bytes);
                scratch.clone()
            })
            .collect();
        let too_large = self.oversized(&messages);
        if !too_large.is_empty() {
            return Err(self.refuse(Rejection::Invalid(too_large), cid, count));
        }
        let accepted = self.push(messages).await.map_err(|r| self.refuse(r, cid, count))?;
        if let Some(ids) = ids {
            let event_id = if let [one] = ids.as_slice() { Some(one.as_str()) } else { None };
            tracing::debug!(
                correlation_id = cid,
                event_id,
                events = accepted.count,
                event_ids = join_ids(&ids),
                queue_depth = accepted.queue_depth,
                "events queued"
            );
        }
        Ok(accepted)
    }

    /// Required fields first (every event), then normalisation, as the original orders them.
    /// A raw event that passes both unchanged stays raw; any other is read into a map first.
    fn check(&self, events: &mut [IngestEvent]) -> Vec<ElementRejection> {
        check_events(events, &self.shared.config.required_fields, self.shared.config.normalize, chrono::Utc::now())
    }

    /// Events larger than the per-event limit, measured as queued: a worker leases and settles
    /// a batch of them in one command, which must stay well within what Redis accepts.
    fn oversized(&self, messages: &[Vec<u8>]) -> Vec<ElementRejection> {
        let limit = self.shared.config.max_event_bytes;
        messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.len() > limit)
            .map(|(index, m)| ElementRejection { index, problem: Problem::TooLarge { size: m.len(), limit } })
            .collect()
    }

    /// Backpressure, then the push, together with concurrent submissions ([`crate::pusher`]:
    /// not atomic with each other, so concurrent submissions may overshoot the limit slightly,
    /// as in the original). Answers once the events are in the queue.
    async fn push(&self, messages: Vec<Vec<u8>>) -> Result<Accepted, Rejection> {
        let limit = self.settings().await.max_queue_size;
        let count = messages.len();
        let queue_depth = match self.shared.pusher.push(messages, limit).await {
            Ok(depth) => depth,
            Err(PushError::Full { depth, limit }) => {
                self.shared.metrics.queue_depth.set(depth as i64);
                return Err(Rejection::QueueFull { depth, limit });
            }
            Err(PushError::Unavailable(e)) => return Err(Rejection::Unavailable(e)),
        };
        self.shared.metrics.request("success", "");
        self.shared.metrics.events.inc_by(count as u64);
        self.shared.metrics.queue_depth.set(queue_depth as i64);
        Ok(Accepted { count, queue_depth })
    }

    /// Counts a refusal under the original's metric labels and logs it with the correlation id
    /// (refused events have no event id yet) and how many events the submission held (`None`
    /// before the body is read).
    fn refuse(&self, rejection: Rejection, correlation_id: &str, events: Option<usize>) -> Rejection {
        let reason = rejection.metric_reason();
        self.shared.metrics.request("fail", reason);
        match &rejection {
            // Expected under overload and counted by mutt_ingest_rate_limit_hits_total: one line
            // per request at info would grow the logs fastest exactly then.
            Rejection::RateLimited { .. } => {
                tracing::debug!(correlation_id, reason, detail = %refusal_detail(&rejection), "events refused")
            }
            Rejection::TooManyEvents { .. } | Rejection::Invalid(_) => {
                tracing::info!(correlation_id, events, reason, detail = %refusal_detail(&rejection), "events refused")
            }
            Rejection::QueueFull { .. } => {
                tracing::warn!(correlation_id, events, reason, detail = %refusal_detail(&rejection), "events refused")
            }
            Rejection::Unavailable(_) => {
                tracing::error!(correlation_id, events, reason, detail = %refusal_detail(&rejection), "could not queue events")
            }
        }
        rejection
    }
}

/// [`Ingest::check`] with the settings given (tests compare raw and map events through it).
fn check_events(
    events: &mut [IngestEvent],
    required: &[String],
    normalize: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<ElementRejection> {
    let mut seen = SeenTimestamps::default();
    let mut unreadable = Vec::new();
    for (index, ev) in events.iter_mut().enumerate() {
        let IngestEvent::Raw(raw) = ev else { continue };
        if raw_event::passes_as_is(raw, required, normalize, now, &mut seen) {
            continue;
        }
        // Checked to read into a map when the body was parsed; an error here is a defect,
        // refused with its reason rather than a panic.
        match raw_event::read_fields(raw) {
            Ok(fields) => *ev = IngestEvent::Fields(fields),
            Err(e) => unreadable.push(ElementRejection { index, problem: Problem::Invalid(e.to_string()) }),
        }
    }
    if !unreadable.is_empty() {
        return unreadable;
    }
    let fields = || {
        events.iter().enumerate().filter_map(|(i, ev)| match ev {
            IngestEvent::Fields(m) => Some((i, m)),
            IngestEvent::Raw(_) => None,
        })
    };
    let missing: Vec<ElementRejection> = fields()
        .filter_map(|(index, ev)| {
            let absent: Vec<String> =
                required.iter().filter(|f| !ev.get(f.as_str()).is_some_and(is_truthy)).cloned().collect();
            (!absent.is_empty()).then_some(ElementRejection { index, problem: Problem::MissingFields(absent) })
        })
        .collect();
    if !missing.is_empty() || !normalize {
        return missing;
    }
    events
        .iter_mut()
        .enumerate()
        .filter_map(|(index, ev)| match ev {
            IngestEvent::Fields(ev) => mutt_core::normalize::normalize(ev, now)
                .err()
                .map(|reason| ElementRejection { index, problem: Problem::Invalid(reason) }),
            IngestEvent::Raw(_) => None,
        })
        .collect()
}

/// A refusal as a log line names it: the first bad element of an invalid submission, within
/// the 200 characters the original kept of a message in its logs.
fn refusal_detail(rejection: &Rejection) -> String {
    let text = match rejection {
        Rejection::Invalid(elements) => match elements.first() {
            Some(first) if elements.len() > 1 => {
                format!("{} elements rejected; element {}: {}", elements.len(), first.index, first.problem)
            }
            Some(first) => format!("element {}: {}", first.index, first.problem),
            None => rejection.to_string(),
        },
        other => other.to_string(),
    };
    mutt_core::text::truncate_utf8(&text, 200).to_owned()
}

/// Writes `ev` as serde_json writes the map (compact, keys in order) with the reserved fields
/// added: a client-supplied `_correlation_id` is overwritten (as the original), a client's
/// `_event_id` too, since ids must be unique. The two fields are written in their place rather
/// than inserted into the map first: four allocations and two tree inserts less per event.
fn write_stamped(out: &mut Vec<u8>, ev: &Map<String, Value>, cid: &str, event_id: &str) {
    // In key order, as the map iterates (CORRELATION_ID < EVENT_ID).
    let stamped = [(CORRELATION_ID, cid), (EVENT_ID, event_id)];
    let mut pending = stamped.iter().peekable();
    out.push(b'{');
    let mut first = true;
    for (key, value) in ev {
        if key == CORRELATION_ID || key == EVENT_ID {
            continue;
        }
        while let Some((k, v)) = pending.next_if(|(k, _)| *k < key.as_str()) {
            json_field(out, &mut first, k, v);
        }
        json_field(out, &mut first, key, value);
    }
    for (k, v) in pending {
        json_field(out, &mut first, k, v);
    }
    out.push(b'}');
}

/// Writes one event as queued, its ids stamped: a raw event as the client wrote it unless that is
/// over `max_event_bytes` (the limit applies to an event written compact, as it did before raw
/// events: a client's spacing must not push one over it).
fn write_event(out: &mut Vec<u8>, ev: &IngestEvent, cid: &str, event_id: &str, max_event_bytes: usize) {
    match ev {
        IngestEvent::Fields(fields) => write_stamped(out, fields, cid, event_id),
        IngestEvent::Raw(raw) => {
            let start = out.len();
            raw_event::write_stamped(out, raw, cid, event_id);
            if out.len() - start > max_event_bytes
                && let Ok(fields) = raw_event::read_fields(raw)
            {
                out.truncate(start);
                write_stamped(out, &fields, cid, event_id);
            }
        }
    }
}

/// Appends `"key":value`, after a comma unless it is the object's first field.
fn json_field(out: &mut Vec<u8>, first: &mut bool, key: &str, value: &(impl serde::Serialize + ?Sized)) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    // Serialising a string or a JSON value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, value);
}

/// `['a', 'b']`, the original's (Python) rendering of a field list.
pub(crate) fn python_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the stamped event was before [`write_stamped`]: the fields inserted, the map
    /// serialised.
    fn inserted_then_serialised(ev: &Map<String, Value>, cid: &str, event_id: &str) -> Vec<u8> {
        let mut ev = ev.clone();
        ev.insert(CORRELATION_ID.into(), Value::from(cid));
        ev.insert(EVENT_ID.into(), Value::from(event_id));
        serde_json::to_vec(&ev).unwrap()
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z\"\\\\\u{1}é\u{2028} ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("[a-c_]{1,2}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An event field by field: the values each check reads, in the forms that pass it, fail
    /// it, or that normalisation rewrites.
    fn arb_event() -> impl Strategy<Value = Map<String, Value>> {
        let text = |v: &[&str]| proptest::sample::select(v.iter().map(|s| Value::from(*s)).collect::<Vec<_>>());
        let opt = |s: BoxedStrategy<Value>| proptest::option::weighted(0.8, s);
        (
            opt(prop_oneof![
                text(&["sw1.example.net", "", "h\"q", "h\u{1}", "é-host", "h\\"]),
                Just(Value::from("h".repeat(256))),
                Just(Value::from(5)),
                Just(Value::Null),
            ]
            .boxed()),
            opt(prop_oneof![
                text(&["LINK DOWN", "", "tab\there", "\u{2028}"]),
                Just(Value::from(1)),
                Just(Value::Null)
            ]
            .boxed()),
            opt(prop_oneof![
                text(&[
                    "2025-11-08T12:00:00Z",
                    "2025-11-08T12:00:00.123Z",
                    "2025-11-08T13:00:00+01:00",
                    "Nov  8 12:00:00",
                    "2025-11-08 12:00:00",
                    "",
                    "yesterday"
                ]),
                Just(Value::from(1_700_000_000)),
                Just(Value::Null),
            ]
            .boxed()),
            opt(prop_oneof![
                (0i64..9).prop_map(Value::from),
                Just(Value::from(4.0)),
                Just(Value::from(-1)),
                text(&["Warning", "4", "loud"]),
                Just(Value::Null),
            ]
            .boxed()),
            opt(prop_oneof![text(&["err", "Major", ""]), Just(Value::from(5))].boxed()),
            opt(prop_oneof![text(&[".1.3.6", ""]), Just(Value::from(1.5))].boxed()),
            opt(text(&["client-cid", ""]).boxed()),
            proptest::collection::btree_map("[a-d_]{1,3}", arb_value(), 0..3),
        )
            .prop_map(|(hostname, message, timestamp, sev, severity, oid, cid, extra)| {
                let mut m: Map<String, Value> = extra.into_iter().collect();
                for (k, v) in [
                    ("hostname", hostname),
                    ("message", message),
                    ("timestamp", timestamp),
                    ("syslog_severity", sev),
                    ("severity", severity),
                    ("trap_oid", oid),
                    (CORRELATION_ID, cid),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                m
            })
    }

    /// What a submission comes to: the refusals, or each event stamped and read back.
    fn outcome(
        mut events: Vec<IngestEvent>,
        required: &[String],
        normalize: bool,
    ) -> Result<Vec<Value>, Vec<ElementRejection>> {
        let now: chrono::DateTime<chrono::Utc> = "2025-11-26T10:00:00Z".parse().unwrap();
        let refused = check_events(&mut events, required, normalize, now);
        if !refused.is_empty() {
            return Err(refused);
        }
        Ok(events
            .iter()
            .map(|ev| {
                let mut out = Vec::new();
                write_event(&mut out, ev, "cid-1", "id-1", usize::MAX);
                serde_json::from_slice(&out).unwrap()
            })
            .collect())
    }

    proptest! {
        /// Raw events come to what reading them into maps came to: the same refusals (element
        /// and text), or the same events queued; whether the body is an object, an array, NDJSON
        /// or pretty-printed, with normalisation on or off, with the default required fields or
        /// none.
        #[test]
        fn raw_events_come_to_what_maps_did(
            events in proptest::collection::vec(arb_event(), 1..4),
            shape in 0..4usize,
            normalize in any::<bool>(),
            required in any::<bool>(),
        ) {
            use crate::http::body::{self, BodyFormat};
            let (bytes, format) = match shape {
                0 => (serde_json::to_vec(&events[0]).unwrap(), BodyFormat::Json),
                1 => (serde_json::to_vec(&events).unwrap(), BodyFormat::Json),
                2 => (serde_json::to_vec_pretty(&events).unwrap(), BodyFormat::Json),
                _ => {
                    let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
                    (lines.join("\n").into_bytes(), BodyFormat::NdJson)
                }
            };
            let required: Vec<String> =
                if required { vec!["hostname".into(), "message".into(), "timestamp".into()] } else { Vec::new() };
            let raw = body::parse(&bytes, format, 100).unwrap();
            let fields = body::parse_as_fields(&bytes, format, 100).unwrap();
            prop_assert_eq!(raw.batch, fields.batch);
            prop_assert_eq!(raw.total, fields.total);
            prop_assert_eq!(outcome(raw.events, &required, normalize), outcome(fields.events, &required, normalize));
        }

        /// Byte for byte what inserting the fields and serialising the map gave, with keys
        /// around the reserved ones and client-sent reserved fields (overwritten).
        #[test]
        fn written_in_place_equals_inserted(
            fields in proptest::collection::btree_map(
                prop_oneof![
                    Just("_correlation_id".to_string()), Just("_event_id".to_string()),
                    Just("_correlation_ie".to_string()), Just("_event_ic".to_string()),
                    Just("_".to_string()), Just("".to_string()), Just("é".to_string()),
                    "[A-Za-z_]{1,3}",
                ],
                arb_value(),
                0..8,
            ),
            cid in "[a-z0-9\"-]{0,12}",
        ) {
            let ev: Map<String, Value> = fields.into_iter().collect();
            let id = "01900000-0000-7000-8000-000000000001";
            let mut out = Vec::new();
            write_stamped(&mut out, &ev, &cid, id);
            prop_assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(inserted_then_serialised(&ev, &cid, id)).unwrap());
        }
    }
}
