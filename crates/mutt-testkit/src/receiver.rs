//! A webhook receiver standing in for Moogsoft.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
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

#[derive(Default)]
struct Inner {
    mode: Option<ReceiverMode>,
    requests: Vec<Recorded>,
}

#[derive(Clone)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Starts a receiver on a free loopback port; it answers 200 until told otherwise.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner, task: Arc::new(task) }
    }

    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_mode(&self, mode: ReceiverMode) {
        self.lock().mode = Some(mode);
    }

    /// Every request received so far, answered or not.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.lock().requests.iter().filter(|r| r.accepted).cloned().collect()
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, raw: Bytes) -> Response {
    let mode = {
        let g = inner.lock().unwrap_or_else(|p| p.into_inner());
        g.mode.clone().unwrap_or(ReceiverMode::Succeed)
    };
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let accepted = mode == ReceiverMode::Succeed;
    inner.lock().unwrap_or_else(|p| p.into_inner()).requests.push(Recorded {
        headers,
        body,
        raw,
        accepted,
        at: Instant::now(),
    });
    match mode {
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
