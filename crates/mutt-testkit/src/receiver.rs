//! A webhook receiver standing in for Moogsoft.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers the next requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiverMode {
    /// 200 with `{"success":true}`.
    Succeed,
    /// The given status with a short body.
    Status(u16),
    /// 429 with `Retry-After: <secs>`.
    RateLimit { retry_after_secs: u64 },
    /// Never answers (the request waits until the client gives up).
    Hang,
    /// 200 unless an alert of the body (a REST LAM body's `events`, or the body itself) has
    /// `field` equal to one of `values`: then `status` with `{"error":…,"rejected":[values]}`
    /// and none of the body's alerts is accepted (as a receiver validating a whole batch).
    RejectEvents { field: String, values: Vec<String>, status: u16 },
    /// `status` (301, 302, 307, 308) with `Location: location` for requests to `/events`
    /// ([`WebhookReceiver::url`]); requests to any other path succeed, so that a redirect to
    /// another path of the same receiver can be followed.
    Redirect { status: u16, location: String },
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Bytes,
    /// Whether the receiver answered it with a 2xx.
    pub accepted: bool,
    pub at: Instant,
}

/// What the receiver counted so far (kept in every mode, cheaply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverCounts {
    /// Every request, answered or not (a hanging one counts on arrival).
    pub requests: u64,
    /// Answered with a 2xx.
    pub accepted: u64,
    /// Answered with an error status (`Status`, `RateLimit`).
    pub refused: u64,
    /// Alerts in the accepted requests: a REST LAM body's `events`, or one per other body.
    pub events: u64,
}

/// Called with the alerts of each accepted request (a REST LAM body's `events`, or the body
/// itself) and its arrival time, outside the receiver's lock.
pub type EventHook = Arc<dyn Fn(&[Value], Instant) + Send + Sync>;

/// Called with the raw body of each request answered in [`ReceiverMode::Succeed`] by a
/// receiver that keeps no request, instead of parsing it into a [`Value`]; returns how many
/// alerts it found (for [`ReceiverCounts::events`]). For load runs: a `Value` per alert with a
/// map per object cost the pipeline bench's sink about a quarter of a core at 10,000 alerts/s,
/// on the machine the pipeline is measured on.
pub type BodyHook = Arc<dyn Fn(&[u8], Instant) -> u64 + Send + Sync>;

/// How a receiver is started.
#[derive(Clone)]
pub struct ReceiverOptions {
    pub addr: String,
    /// Keep every request for [`WebhookReceiver::requests`]; off for load runs, which only
    /// count (and whose hook may look at the events).
    pub keep_requests: bool,
    pub on_events: Option<EventHook>,
    /// Takes the place of `on_events` for the bodies it is called with (see [`BodyHook`]).
    pub on_body: Option<BodyHook>,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        Self { addr: "127.0.0.1:0".into(), keep_requests: true, on_events: None, on_body: None }
    }
}

impl ReceiverOptions {
    /// For benchmarks: counts only, keeps no request.
    pub fn counting() -> Self {
        Self { keep_requests: false, ..Self::default() }
    }

    pub fn on_events(mut self, hook: impl Fn(&[Value], Instant) + Send + Sync + 'static) -> Self {
        self.on_events = Some(Arc::new(hook));
        self
    }

    pub fn on_body(mut self, hook: impl Fn(&[u8], Instant) -> u64 + Send + Sync + 'static) -> Self {
        self.on_body = Some(Arc::new(hook));
        self
    }
}

#[derive(Default)]
struct Inner {
    mode: Option<ReceiverMode>,
    requests: Vec<Recorded>,
    counts: ReceiverCounts,
}

struct Shared {
    inner: Mutex<Inner>,
    keep_requests: bool,
    on_events: Option<EventHook>,
    on_body: Option<BodyHook>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Starts a receiver on a free loopback port; it answers 200 until told otherwise.
    pub async fn start() -> Self {
        Self::start_with(ReceiverOptions::default()).await
    }

    pub async fn start_on(addr: &str) -> Self {
        Self::start_with(ReceiverOptions { addr: addr.into(), ..ReceiverOptions::default() }).await
    }

    pub async fn start_with(options: ReceiverOptions) -> Self {
        Self::try_start_with(options).await.expect("start the webhook receiver")
    }

    /// As [`WebhookReceiver::start_with`], returning a failure to bind.
    pub async fn try_start_with(options: ReceiverOptions) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            keep_requests: options.keep_requests,
            on_events: options.on_events,
            on_body: options.on_body,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(&options.addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task: Arc::new(task) })
    }

    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_mode(&self, mode: ReceiverMode) {
        self.shared.lock().mode = Some(mode);
    }

    /// Every request received so far, answered or not (none with `keep_requests` off).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.shared.lock().requests.iter().filter(|r| r.accepted).cloned().collect()
    }

    pub fn counts(&self) -> ReceiverCounts {
        self.shared.lock().counts
    }

    /// Waits until at least `n` requests were accepted, or the timeout passes; returns them.
    pub async fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.accepted();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, raw: Bytes) -> Response {
    let mode = match shared.lock().mode.clone().unwrap_or(ReceiverMode::Succeed) {
        ReceiverMode::Redirect { .. } if uri.path() != "/events" => ReceiverMode::Succeed,
        mode => mode,
    };
    let at = Instant::now();
    let body_hook = shared.on_body.as_ref().filter(|_| !shared.keep_requests && mode == ReceiverMode::Succeed);
    // Counting only: a refused body is never read, and one for the body hook is not parsed here.
    let read = body_hook.is_none()
        && (shared.keep_requests || matches!(mode, ReceiverMode::Succeed | ReceiverMode::RejectEvents { .. }));
    let body = read.then(|| serde_json::from_slice::<Value>(&raw).unwrap_or(Value::Null));
    let rejected = match (&mode, &body) {
        (ReceiverMode::RejectEvents { field, values, .. }, Some(body)) => rejected_values(body, field, values),
        _ => Vec::new(),
    };
    let accepted =
        mode == ReceiverMode::Succeed || matches!(mode, ReceiverMode::RejectEvents { .. }) && rejected.is_empty();
    let events = match &body {
        Some(body) if accepted => alerts_in(body),
        _ => &[],
    };
    // The hooks first: once the counts show an alert, a hook has seen it.
    let n_events = match body_hook {
        Some(hook) => hook(&raw, at),
        None => {
            if let Some(hook) = &shared.on_events
                && !events.is_empty()
            {
                hook(events, at);
            }
            events.len() as u64
        }
    };
    {
        let mut g = shared.lock();
        g.counts.requests += 1;
        g.counts.accepted += u64::from(accepted);
        g.counts.refused +=
            u64::from(matches!(mode, ReceiverMode::Status(_) | ReceiverMode::RateLimit { .. }) || !rejected.is_empty());
        g.counts.events += n_events;
        if shared.keep_requests {
            g.requests.push(Recorded { headers, body: body.unwrap_or(Value::Null), raw, accepted, at });
        }
    }
    respond(mode, rejected).await
}

/// The alerts of a body: a REST LAM body's `events`, or the body itself (a legacy
/// one-alert body).
pub fn alerts_in(body: &Value) -> &[Value] {
    match body.get("events").and_then(Value::as_array) {
        Some(batch) => batch.as_slice(),
        None => std::slice::from_ref(body),
    }
}

/// The `field` values of the body's alerts that are among `values`.
fn rejected_values(body: &Value, field: &str, values: &[String]) -> Vec<String> {
    alerts_in(body)
        .iter()
        .filter_map(|a| a.get(field).and_then(Value::as_str))
        .filter(|v| values.iter().any(|x| x == v))
        .map(str::to_owned)
        .collect()
}

async fn respond(mode: ReceiverMode, rejected: Vec<String>) -> Response {
    match mode {
        ReceiverMode::RejectEvents { status, .. } if !rejected.is_empty() => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let body = serde_json::json!({"error": "events rejected", "rejected": rejected});
            (status, body.to_string()).into_response()
        }
        ReceiverMode::RejectEvents { .. } => (StatusCode::OK, r#"{"success":true}"#).into_response(),
        ReceiverMode::Redirect { status, location } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
            (status, [("location", location)], "").into_response()
        }
        ReceiverMode::Succeed => (StatusCode::OK, r#"{"success":true}"#).into_response(),
        ReceiverMode::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, format!("{{\"error\":\"told to answer {code}\"}}")).into_response()
        }
        ReceiverMode::RateLimit { retry_after_secs } => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after_secs.to_string())], "slow down")
                .into_response()
        }
        ReceiverMode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Posts `body` with a bare HTTP/1.1 request; returns the status line.
    async fn post(addr: SocketAddr, body: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "POST /events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.lines().next().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn counting_keeps_no_request_and_hands_events_to_the_hook() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let options = ReceiverOptions::counting().on_events(move |events, _| {
            s2.lock().unwrap().extend(events.iter().map(|e| e["external_id"].clone()));
        });
        let r = WebhookReceiver::start_with(options).await;
        let lam = r#"{"events":[{"external_id":"a"},{"external_id":"b"},{"external_id":"c"}]}"#;
        assert!(post(r.addr(), lam).await.contains("200"));
        assert!(post(r.addr(), r#"{"external_id":"d"}"#).await.contains("200"), "a one-alert body");
        r.set_mode(ReceiverMode::Status(503));
        assert!(post(r.addr(), r#"{"external_id":"e"}"#).await.contains("503"));
        assert_eq!(r.counts(), ReceiverCounts { requests: 3, accepted: 2, refused: 1, events: 4 });
        assert!(r.requests().is_empty(), "counting only");
        assert_eq!(*seen.lock().unwrap(), vec!["a", "b", "c", "d"]);
    }

    #[tokio::test]
    async fn a_body_hook_gets_the_accepted_bodies_unparsed_and_counts_their_alerts() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let events_hook_called = Arc::new(Mutex::new(false));
        let e2 = events_hook_called.clone();
        let options =
            ReceiverOptions::counting().on_events(move |_, _| *e2.lock().unwrap() = true).on_body(move |raw, _| {
                s2.lock().unwrap().push(String::from_utf8_lossy(raw).into_owned());
                u64::try_from(raw.len()).unwrap()
            });
        let r = WebhookReceiver::start_with(options).await;
        assert!(post(r.addr(), "abc").await.contains("200"), "not even JSON: the hook decides");
        r.set_mode(ReceiverMode::Status(500));
        assert!(post(r.addr(), "refused").await.contains("500"));
        r.set_mode(ReceiverMode::RejectEvents { field: "external_id".into(), values: vec!["x".into()], status: 422 });
        assert!(post(r.addr(), r#"{"events":[{"external_id":"y"}]}"#).await.contains("200"));
        assert_eq!(*seen.lock().unwrap(), vec!["abc"], "only bodies answered in Succeed mode");
        assert_eq!(r.counts(), ReceiverCounts { requests: 3, accepted: 2, refused: 1, events: 3 + 1 });
        assert!(*events_hook_called.lock().unwrap(), "other modes parse and call on_events");
    }

    #[tokio::test]
    async fn reject_events_refuses_bodies_naming_them_and_redirect_points_elsewhere() {
        let r = WebhookReceiver::start().await;
        let values = vec!["bad".to_owned()];
        r.set_mode(ReceiverMode::RejectEvents { field: "external_id".into(), values, status: 422 });
        let lam = r#"{"events":[{"external_id":"a"},{"external_id":"bad"}]}"#;
        assert!(post(r.addr(), lam).await.contains("422"));
        assert!(post(r.addr(), r#"{"events":[{"external_id":"a"}]}"#).await.contains("200"));
        assert!(post(r.addr(), r#"{"external_id":"bad"}"#).await.contains("422"), "a one-alert body");
        assert_eq!(r.counts(), ReceiverCounts { requests: 3, accepted: 1, refused: 2, events: 1 });
        r.set_mode(ReceiverMode::Redirect { status: 307, location: "http://elsewhere/x".into() });
        assert!(post(r.addr(), "{}").await.contains("307"));
    }

    #[tokio::test]
    async fn by_default_every_request_is_kept() {
        let r = WebhookReceiver::start().await;
        r.set_mode(ReceiverMode::RateLimit { retry_after_secs: 3 });
        assert!(post(r.addr(), r#"{"x":1}"#).await.contains("429"));
        r.set_mode(ReceiverMode::Succeed);
        assert!(post(r.addr(), r#"{"x":2}"#).await.contains("200"));
        let all = r.requests();
        assert_eq!((all.len(), r.accepted().len()), (2, 1));
        assert_eq!(all[0].body["x"], 1);
        assert_eq!(r.counts(), ReceiverCounts { requests: 2, accepted: 1, refused: 1, events: 1 });
    }
}
