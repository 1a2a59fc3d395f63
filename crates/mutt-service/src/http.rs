//! Serving a role's router so that slow or numerous clients cannot starve it: a deadline for
//! the request head ([`HttpLimits::header_read_timeout`], also the idle time allowed between
//! keep-alive requests), one for the body ([`HttpLimits::body_read_timeout`], handlers answer
//! 408 when [`is_body_timeout`] says a read failed for it), one for the whole request
//! ([`HttpLimits::request_timeout`], answered 503), a cap on open connections
//! ([`HttpLimits::max_connections`]: past it, new connections wait in the listen backlog until
//! one closes, so accepted ones are never harmed) and one on each connection's read buffer,
//! which is also the largest request head ([`HttpLimits::max_head_bytes`], 431 past it).
//!
//! Every HTTP listener of muttd goes through [`serve_with`] (ingest, web, metrics and probe
//! ports), so the limits hold everywhere.

/// The router type [`serve_with`] takes (re-exported for callers without axum of their own).
pub use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The limits every HTTP listener applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time for a client to send a request's head (line and headers); also how long an idle
    /// keep-alive connection is kept. Past it the connection is closed without an answer.
    pub header_read_timeout: Duration,
    /// Time for a client to send a request's body, counted from its head; past it the
    /// request gets 408.
    pub body_read_timeout: Duration,
    /// Time for a whole request, body and handling; past it the request gets 503.
    pub request_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// The largest request head (line and headers), also the most a connection reads ahead
    /// into its buffer; a larger head gets 431. At least [`MIN_HEAD_BYTES`].
    pub max_head_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(90),
            max_connections: 4096,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
        }
    }
}

/// The default of [`HttpLimits::max_head_bytes`]. Why not more: hyper reads up to this much
/// ahead per connection, and a connection's buffer keeps its size; at 64 KiB, 96 busy
/// connections posting 55 KB batches held 12.6 MB of a 22 MB heap peak in these buffers, and
/// 16 KiB lowered the ingestor's peak RSS by ~9 MiB (docs/benchmarks.md). A body is not bounded
/// by it: it is read in pieces of at most this size. Node.js's default head limit is also 16 KiB.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// The smallest [`HttpLimits::max_head_bytes`] (hyper's smallest read buffer).
pub const MIN_HEAD_BYTES: usize = 8 * 1024;

/// A request body that did not arrive within [`HttpLimits::body_read_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body was not received within {} s", self.0.as_secs_f64())
    }
}

impl std::error::Error for BodyTimeout {}

/// Whether reading a body failed because of [`BodyTimeout`] (anywhere in the error's chain:
/// axum wraps body errors).
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A body that fails with [`BodyTimeout`] once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` with the default [`HttpLimits`].
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, HttpLimits::default()).await
}

/// Serves `router` on `listener` within `limits` until `shutdown` is cancelled, then lets
/// in-flight requests finish (bounded by [`crate::DRAIN_TIMEOUT`]).
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: HttpLimits,
) -> std::io::Result<()> {
    serve_with_tls(listener, router, shutdown, limits, None).await
}

/// [`serve_with`], over TLS when `tls` is given: each connection's handshake must finish
/// within [`HttpLimits::header_read_timeout`], with the certificate in force when it was
/// accepted ([`crate::tls::ListenerTls::reload`] does not touch open connections).
pub async fn serve_with_tls(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    limits: HttpLimits,
    tls: Option<Arc<crate::tls::ListenerTls>>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A connection's read buffer (and so its request head) is capped: hyper's default of
    // ~400 KiB times max_connections would be a lot of memory held by slow clients. Below
    // MIN_HEAD_BYTES hyper panics, so a smaller value (refused by muttd's configuration) is
    // raised to it.
    let head = limits.max_head_bytes.max(MIN_HEAD_BYTES);
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(head)
        .max_header_size(head);
    loop {
        // A slot first, then the accept: past the limit, connections wait in the backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p,
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = permit else { break };
        let stream = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.cancelled() => break,
        };
        let stream = match stream {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |req| handle(router.clone(), limits, req));
        let Some(tls) = &tls else {
            let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                drop(permit);
            });
            continue;
        };
        let (acceptor, watcher, builder) = (tls.acceptor(), graceful.watcher(), builder.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    if let Err(e) = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await {
                        tracing::debug!(error = %e, "HTTPS connection ended with an error");
                    }
                }
                // A client's failed handshake (wrong CA, no client certificate) is its problem.
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(crate::DRAIN_TIMEOUT) => {
            tracing::warn!("in-flight requests did not finish within the drain timeout");
        }
    }
    Ok(())
}

/// One request: its body under the body deadline, the whole under the request deadline.
async fn handle(router: Router, limits: HttpLimits, req: Request<Incoming>) -> Result<Response, Infallible> {
    let deadline = Box::pin(tokio::time::sleep(limits.body_read_timeout));
    let req =
        req.map(|inner| Body::new(DeadlineBody { inner: Body::new(inner), deadline, limit: limits.body_read_timeout }));
    match tokio::time::timeout(limits.request_timeout, router.oneshot(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_secs = limits.request_timeout.as_secs_f64(), "request timed out");
            let message =
                format!("Service Unavailable - request not handled within {} s", limits.request_timeout.as_secs_f64());
            Ok((
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "error", "message": message})),
            )
                .into_response())
        }
    }
}

/// Errors of one connection (reset, aborted) are skipped; others, such as running out of file
/// descriptors, are logged and retried after a pause rather than spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "cannot accept HTTP connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
