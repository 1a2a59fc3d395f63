//! Syslog over TCP and TLS (RFC 6587 framing). The frames decoded from one read are one
//! submission; while the queue refuses it (or the listener's rate is exceeded), the
//! connection is not read (TCP flow control pushes back to the sender) and the same
//! submission is retried. Connections are limited per listener and closed when idle.

use super::framing::SyslogCodec;
use super::{ListenerConfig, Protocol, Shared, SyslogError};
use crate::Rejection;
use bytes::BytesMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

pub(super) async fn spawn(
    cx: Arc<Shared>,
    config: &ListenerConfig,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), SyslogError> {
    let address = config.address;
    let tls = match config.protocol {
        Protocol::Tls => Some(acceptor(config)?),
        _ => None,
    };
    let bind = |source| SyslogError::Bind { address, source };
    let listener = TcpListener::bind(address).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    let max = config.max_frame_bytes;
    // 0: no limit.
    let limit = if config.max_connections == 0 { Semaphore::MAX_PERMITS } else { config.max_connections };
    let (slots, idle) = (Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))), config.idle_timeout);
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: pause instead of spinning.
                        tracing::warn!(listener = cx.name(), error = %e, "syslog accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Over max_connections: closed at once (dropping the stream), counted.
                cx.dropped("connection_limit", 1);
                cx.warn.warn(peer.ip(), cx.name(), "connection refused: max_connections reached");
                continue;
            };
            cx.metrics.connections.get_or_create(&cx.label).inc();
            // The certificate in force now (mutt_service::tls reloads it on SIGHUP).
            let (cx, tls, stop) = (cx.clone(), tls.as_ref().map(|t| t.acceptor()), shutdown.clone());
            tokio::spawn(async move {
                let _slot = slot;
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = connection(cx, stream, tls, peer.ip(), Limits { max, idle }) => {}
                }
            });
        }
    });
    Ok((local, task))
}

/// A connection's frame size limit and idle timeout.
#[derive(Clone, Copy)]
struct Limits {
    max: usize,
    idle: Duration,
}

async fn connection(cx: Arc<Shared>, stream: tokio::net::TcpStream, tls: Option<TlsAcceptor>, peer: IpAddr, l: Limits) {
    let Some(tls) = tls else { return read_frames(&cx, stream, peer, l).await };
    match tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await {
        Ok(Ok(stream)) => read_frames(&cx, stream, peer, l).await,
        Ok(Err(e)) => cx.warn.warn(peer, cx.name(), &format!("TLS handshake failed: {e}")),
        Err(_) => cx.warn.warn(peer, cx.name(), "TLS handshake timed out"),
    }
}

/// Reads, decodes and submits until the peer closes, sends garbage or stays silent for the
/// idle timeout.
async fn read_frames<S: AsyncRead + Unpin>(cx: &Shared, mut stream: S, peer: IpAddr, limits: Limits) {
    let mut codec = SyslogCodec::new(limits.max);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let chunk = cx.ingest.config().max_batch_events.clamp(1, 1000);
    loop {
        let eof = match tokio::time::timeout(limits.idle, stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) => true,
            Ok(Ok(_)) => false,
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!(listener = cx.name(), %peer, "idle syslog connection closed");
                return;
            }
        };
        let mut frames = Vec::new();
        let mut failed = None;
        loop {
            let next = if eof { codec.decode_eof(&mut buf) } else { codec.decode(&mut buf) };
            match next {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        for part in frames.chunks(chunk) {
            submit(cx, part.iter().map(|f| (&f[..], peer))).await;
        }
        if let Some(e) = failed {
            // The stream cannot be resynchronised: close it (the sender reconnects).
            cx.dropped(e.reason(), 1);
            cx.warn.warn(peer, cx.name(), &format!("closing connection: {e}"));
            return;
        }
        if eof {
            return;
        }
    }
}

/// Submits one burst, retrying with backoff while the queue refuses (nothing is read meanwhile).
async fn submit<'a>(cx: &Shared, frames: impl IntoIterator<Item = (&'a [u8], IpAddr)>) {
    let submission = cx.submission(frames);
    let (events, cid) = (submission.events, submission.correlation_id);
    if let Some(rate) = &cx.rate {
        // Over the listener's rate: wait (nothing is read meanwhile, so the sender slows down).
        tokio::time::sleep(rate.reserve(events.len() as u64)).await;
    }
    let mut delay = Duration::from_millis(50);
    loop {
        let attempt = crate::Submission { events: events.clone(), batch: true, correlation_id: cid.clone() };
        let n = attempt.events.len() as u64;
        match cx.ingest.accept_admitted(attempt).await {
            Ok(_) => return,
            // Cannot succeed on retry.
            Err(r @ (Rejection::Invalid(_) | Rejection::TooManyEvents { .. })) => {
                return cx.dropped(r.metric_reason(), n);
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The listener's TLS files, loaded now and reloaded with every listener's on SIGHUP
/// ([`mutt_service::tls::reload_all`]).
fn acceptor(config: &ListenerConfig) -> Result<Arc<mutt_service::tls::ListenerTls>, SyslogError> {
    let address = config.address;
    let fail = |reason: String| SyslogError::Tls { address, reason };
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Err(fail("tls_cert_file and tls_key_file are required".into()));
    };
    let files = mutt_service::tls::TlsFiles {
        cert_file: cert.clone(),
        key_file: key.clone(),
        client_ca_file: config.tls_client_ca_file.clone(),
        client_auth: config.tls_client_auth,
    };
    mutt_service::tls::ListenerTls::load(&format!("syslog {address}"), files).map_err(|e| fail(e.to_string()))
}
