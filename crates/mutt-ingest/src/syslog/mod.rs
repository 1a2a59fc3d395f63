//! Native syslog listeners: UDP, TCP and TLS (RFC 3164/5424 messages, RFC 6587 framing).
//!
//! Each read burst (a batch of datagrams, the frames of one TCP read) becomes one
//! [`Submission`] to [`Ingest::accept_admitted`], so syslog events are checked, counted and
//! backpressured exactly like HTTP ones. The HTTP API's request rate limit does not apply (it
//! is the original's per-request limit); a listener's own `max_messages_per_second` does, when
//! set. When the queue refuses or the rate is exceeded, TCP and TLS stop reading (the sender's
//! own queue holds the data); UDP drops and counts `mutt_ingest_dropped_total{listener,reason}`.
//!
//! TCP/TLS connections per listener are limited (`max_connections`): one over the limit is
//! closed at once and counted as `mutt_ingest_dropped_total{listener,reason="connection_limit"}`
//! (a connection, not an event); a connection silent for `idle_timeout` is closed.
//!
//! Metrics, one series per listener (`listener` = `syslog/<protocol>/<address>`):
//! `mutt_ingest_syslog_messages_total`, `mutt_ingest_syslog_bytes_total`,
//! `mutt_ingest_syslog_parse_errors_total` (not valid 3164/5424: queued leniently parsed),
//! `mutt_ingest_syslog_connections_total`; bad and oversize frames count as drops.

pub mod framing;
pub mod parse;
mod tcp;
mod udp;

use crate::{Ingest, Submission};
pub use mutt_service::tls::ClientAuth;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Transport of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
    Tls,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Tls => "tls",
        }
    }
}

/// One syslog listener.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    pub protocol: Protocol,
    /// PEM certificate chain and private key (TLS only).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) client certificates are checked against (TLS only; needed
    /// unless `tls_client_auth` is [`ClientAuth::None`]).
    pub tls_client_ca_file: Option<PathBuf>,
    /// Whether senders must present a certificate signed by `tls_client_ca_file`.
    pub tls_client_auth: ClientAuth,
    /// Largest frame (TCP/TLS) or datagram accepted.
    pub max_frame_bytes: usize,
    /// `SO_RCVBUF` for UDP (the kernel may cap it at `net.core.rmem_max`); `None` keeps the default.
    pub recv_buffer_bytes: Option<usize>,
    /// Open TCP/TLS connections at most (0: no limit); more are closed at once.
    pub max_connections: usize,
    /// A TCP/TLS connection that sends nothing for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// Messages per second at most (0: no limit): UDP drops the rest, TCP/TLS slow down.
    pub max_messages_per_second: u32,
}

impl ListenerConfig {
    /// A listener with the defaults of `[[ingestor.syslog]]`.
    pub fn new(address: SocketAddr, protocol: Protocol) -> Self {
        Self {
            address,
            protocol,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_auth: ClientAuth::None,
            max_frame_bytes: 65_536,
            recv_buffer_bytes: None,
            max_connections: 1000,
            idle_timeout: std::time::Duration::from_secs(600),
            max_messages_per_second: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error("syslog listener on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error("syslog TLS listener on {address}: {reason}")]
    Tls { address: SocketAddr, reason: String },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: String,
}

/// The syslog listeners' own counters (drops go to `mutt_ingest_dropped_total`).
#[derive(Clone)]
pub struct SyslogMetrics {
    pub messages: Family<ListenerLabel, Counter>,
    pub bytes: Family<ListenerLabel, Counter>,
    pub parse_errors: Family<ListenerLabel, Counter>,
    pub connections: Family<ListenerLabel, Counter>,
}

impl SyslogMetrics {
    pub fn register(metrics: &mutt_service::Metrics) -> Self {
        let m = Self {
            messages: Family::default(),
            bytes: Family::default(),
            parse_errors: Family::default(),
            connections: Family::default(),
        };
        metrics.register(|r| {
            r.register("mutt_ingest_syslog_messages", "Syslog messages received", m.messages.clone());
            r.register("mutt_ingest_syslog_bytes", "Syslog bytes received", m.bytes.clone());
            r.register(
                "mutt_ingest_syslog_parse_errors",
                "Syslog messages not valid RFC 3164/5424",
                m.parse_errors.clone(),
            );
            r.register("mutt_ingest_syslog_connections", "Syslog TCP/TLS connections accepted", m.connections.clone());
        });
        m
    }
}

/// A bound listener.
pub struct Listener {
    pub local_addr: SocketAddr,
    pub protocol: Protocol,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds the listener and runs it until `shutdown`.
pub async fn spawn(
    ingest: Ingest,
    metrics: SyslogMetrics,
    config: ListenerConfig,
    shutdown: CancellationToken,
) -> Result<Listener, SyslogError> {
    let name = format!("syslog/{}/{}", config.protocol.as_str(), config.address);
    let rate = crate::rate::MessageRate::new(config.max_messages_per_second);
    let label = ListenerLabel { listener: name };
    let cx = Arc::new(Shared { ingest, metrics, label, warn: LogLimiter::default(), rate });
    let (local_addr, task) = match config.protocol {
        Protocol::Udp => udp::spawn(cx, &config, shutdown)?,
        Protocol::Tcp | Protocol::Tls => tcp::spawn(cx, &config, shutdown).await?,
    };
    tracing::info!(address = %local_addr, protocol = config.protocol.as_str(), "syslog listener ready");
    Ok(Listener { local_addr, protocol: config.protocol, task })
}

/// What a listener's tasks share.
struct Shared {
    ingest: Ingest,
    metrics: SyslogMetrics,
    label: ListenerLabel,
    warn: LogLimiter,
    rate: Option<crate::rate::MessageRate>,
}

impl Shared {
    fn name(&self) -> &str {
        &self.label.listener
    }

    /// Parses the frames of one burst into a submission, counting messages, bytes and parse errors.
    fn submission<'a>(&self, frames: impl IntoIterator<Item = (&'a [u8], IpAddr)>) -> Submission {
        let now = chrono::Utc::now();
        let mut events = Vec::new();
        let (mut bytes, mut errors) = (0u64, 0u64);
        for (frame, sender) in frames {
            bytes += frame.len() as u64;
            let parsed = parse::to_event(frame, sender, now);
            if parsed.lenient {
                errors += 1;
                self.warn.warn(sender, self.name(), "not RFC 3164/5424 syslog; queued as plain text");
            }
            events.push(parsed.event.into());
        }
        self.metrics.messages.get_or_create(&self.label).inc_by(events.len() as u64);
        self.metrics.bytes.get_or_create(&self.label).inc_by(bytes);
        if errors > 0 {
            self.metrics.parse_errors.get_or_create(&self.label).inc_by(errors);
        }
        let correlation_id = uuid::Uuid::new_v4().to_string();
        Submission { events, batch: true, correlation_id }
    }

    fn dropped(&self, reason: &str, n: u64) {
        self.ingest.metrics().drop_events(self.name(), reason, n);
    }
}

/// Logs a problem at most once per source per minute (see [`crate::log_limit`]).
#[derive(Default)]
struct LogLimiter(crate::log_limit::PerSource);

impl LogLimiter {
    fn warn(&self, source: IpAddr, listener: &str, problem: &str) {
        if self.0.first_this_minute(source) {
            tracing::warn!(%source, listener, problem, "syslog input refused or repaired (logged once a minute per source)");
        }
    }
}
