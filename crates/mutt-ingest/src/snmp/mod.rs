//! The SNMP notification listener: v1/v2c/v3 traps and informs on one UDP port, each turned
//! into an ingest event and queued through [`Ingest::accept_admitted`] (native listeners are
//! governed by queue backpressure and their own `max_messages_per_second`, not by the HTTP
//! API's request rate limit).
//!
//! async-snmp (pinned, a young 0.x API) does the protocol: decoding, the USM (auth/priv,
//! timeliness, the authoritative engine v3 informs need) and inform responses. It stays
//! behind [`TrapListener`]; nothing of its API appears in MUTT's configuration.
//!
//! Informs are acknowledged only after their event is queued: the push happens inside
//! async-snmp's acceptance hook, which runs before it sends the Response (see
//! `ListenerState::queue_inform`). A refused inform goes unanswered and the agent resends.
//! Traps are accepted by the hook and queued by the receive loop in bursts (what arrived
//! while the previous burst was being pushed is one submission); refused ones are dropped
//! and counted in `mutt_ingest_dropped_total{listener,reason}`.

pub mod event;
mod spy;
mod state;

use crate::{Ingest, Submission};
use async_snmp::notification::NotificationReceiver;
use async_snmp::{AuthProtocol, AuthoritativeEngine, PrivProtocol};
use mutt_core::Secret;
use state::{EngineFile, ListenerState};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;

pub use state::{SnmpMetrics, parse_hex};

/// How often the USM failure counters are re-read.
pub const USM_CHECK: Duration = Duration::from_millis(250);

/// Traps received but not yet pushed, at most; beyond, they are dropped (`reason="overload"`).
const PENDING: usize = 8192;

/// Traps in one submission at most.
const BURST: usize = 1000;

/// One SNMPv3 USM user. Passwords come from secrets, never from the configuration file.
#[derive(Clone, Debug)]
pub struct TrapUser {
    pub name: String,
    /// Authentication protocol (`MD5`, `SHA`, `SHA-256`, …) and password; `None`: noAuthNoPriv.
    pub auth: Option<(String, Secret)>,
    /// Privacy protocol (`DES`, `AES`, `AES-256`, …) and password; needs `auth`.
    pub privacy: Option<(String, Secret)>,
}

/// One trap listener.
#[derive(Clone, Debug)]
pub struct TrapListenerConfig {
    /// The `listener` label of its metrics (e.g. `snmp`).
    pub name: String,
    pub address: SocketAddr,
    /// Accepted v1/v2c communities; empty: v1/v2c are refused.
    pub communities: Vec<Secret>,
    pub users: Vec<TrapUser>,
    /// The local SNMP engine id (hex in configuration); `None`: generated once and kept in
    /// `engine_file`.
    pub engine_id: Option<Vec<u8>>,
    /// Where the v3 engine id and boots counter are kept across restarts (needed with users).
    pub engine_file: Option<PathBuf>,
    /// Notifications accepted per second at most (0: no limit); over it traps are dropped and
    /// informs go unanswered.
    pub max_messages_per_second: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TrapSetupError {
    #[error("SNMP listener {listener}: {detail}")]
    Config { listener: String, detail: String },
    #[error("SNMP listener {listener}: cannot listen on {address}: {detail}")]
    Bind { listener: String, address: SocketAddr, detail: String },
}

/// A bound trap listener; [`TrapListener::run`] serves it.
pub struct TrapListener {
    receiver: NotificationReceiver,
    state: Arc<ListenerState>,
}

impl TrapListener {
    /// Binds the socket and sets up the USM users and engine. Needs tokio's multi-threaded
    /// runtime (an inform's push blocks in place, see `ListenerState::queue_inform`).
    pub async fn bind(
        config: TrapListenerConfig,
        ingest: Ingest,
        metrics: SnmpMetrics,
    ) -> Result<Self, TrapSetupError> {
        let err = |detail: String| TrapSetupError::Config { listener: config.name.clone(), detail };
        if tokio::runtime::Handle::current().runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(err("needs tokio's multi-threaded runtime".into()));
        }
        let state = Arc::new(ListenerState::new(
            &config.name,
            config.communities.clone(),
            metrics,
            ingest,
            config.max_messages_per_second,
        ));
        let policy_state = state.clone();
        let mut builder = NotificationReceiver::builder()
            .bind(config.address.to_string())
            .acceptance_policy(move |envelope| policy_state.decide(envelope));
        if !config.users.is_empty() {
            let file = config
                .engine_file
                .clone()
                .ok_or_else(|| err("SNMPv3 users need a data directory for the engine state".into()))?;
            builder = builder.authoritative_engine(engine(EngineFile(file), config.engine_id.clone()).map_err(err)?);
        }
        for user in &config.users {
            builder = add_user(builder, user).map_err(|e| err(format!("user {}: {e}", user.name)))?;
        }
        let receiver = builder.build().await.map_err(|e| TrapSetupError::Bind {
            listener: config.name.clone(),
            address: config.address,
            detail: e.to_string(),
        })?;
        Ok(Self { receiver, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.receiver.local_addr()
    }

    /// Receives until `shutdown`; traps are handed to the burst submitter, informs were
    /// already queued by the acceptance hook.
    pub async fn run(self, shutdown: CancellationToken) {
        let watcher = tokio::spawn(watch(self.receiver.clone(), self.state.clone(), shutdown.clone()));
        let (tx, rx) = mpsc::channel(PENDING);
        let submitter = tokio::spawn(submit_bursts(self.state.clone(), rx));
        let spy = spy::Spy::dispatch(self.state.clone());
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.receiver.recv().with_subscriber(spy.clone()) => r,
            };
            match received {
                Ok(n) => {
                    let bytes = n.notification.varbinds().iter().map(|v| v.encoded_size() as u64).sum();
                    self.state.metrics.bytes(&self.state.name, bytes);
                    if !n.notification.is_confirmed() {
                        // Turned into an event by the submitter, so this loop only receives.
                        if tx.try_send((n.notification, n.source, chrono::Utc::now())).is_err() {
                            self.state.ingest.metrics().drop_events(&self.state.name, "overload", 1);
                        }
                    }
                }
                Err(e) => {
                    // Local socket or engine-state failures; back off so a persistent one
                    // cannot spin.
                    tracing::error!(listener = %self.state.name, error = %e, "SNMP receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        // What was received before the stop is still pushed (bounded: the queue may be down).
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), submitter).await;
        watcher.abort();
    }
}

/// A received trap: the notification, its sender and when it arrived.
type Received = (async_snmp::notification::Notification, SocketAddr, chrono::DateTime<chrono::Utc>);

/// Queues the traps waiting in `rx` as one submission per burst.
async fn submit_bursts(state: Arc<ListenerState>, mut rx: mpsc::Receiver<Received>) {
    let max = state.ingest.config().max_batch_events.clamp(1, BURST);
    let mut burst = Vec::with_capacity(max);
    while rx.recv_many(&mut burst, max).await > 0 {
        let events: Vec<crate::IngestEvent> =
            burst.drain(..).map(|(n, source, at)| event::to_event(&n, source, at).into()).collect();
        let n = events.len() as u64;
        let submission = Submission { events, batch: true, correlation_id: uuid::Uuid::new_v4().to_string() };
        match state.ingest.accept_admitted(submission).await {
            Ok(_) => state.metrics.received(&state.name, "trap", n),
            Err(rejection) => state.ingest.metrics().drop_events(&state.name, rejection.metric_reason(), n),
        }
    }
}

/// Keeps the USM failure counters current and writes the log spy's lines.
async fn watch(receiver: NotificationReceiver, state: Arc<ListenerState>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(USM_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        state.usm_failures(u64::from(receiver.usm_not_in_time_windows()), usm_failures(&receiver));
        state.write_pending();
    }
}

/// USM failures other than the time window. Unknown engine ids are left out: every v3 inform
/// sender's engine discovery counts one.
fn usm_failures(r: &NotificationReceiver) -> u64 {
    [r.usm_unknown_usernames(), r.usm_wrong_digests(), r.usm_unsupported_sec_levels(), r.usm_decryption_errors()]
        .iter()
        .map(|&n| u64::from(n))
        .sum()
}

fn add_user(
    builder: async_snmp::notification::NotificationReceiverBuilder,
    user: &TrapUser,
) -> Result<async_snmp::notification::NotificationReceiverBuilder, String> {
    let auth = match &user.auth {
        Some((p, pw)) => Some((p.parse::<AuthProtocol>().map_err(|e| format!("auth protocol {p}: {e}"))?, pw.clone())),
        None => None,
    };
    let privacy = match &user.privacy {
        Some((p, pw)) => {
            Some((p.parse::<PrivProtocol>().map_err(|e| format!("privacy protocol {p}: {e}"))?, pw.clone()))
        }
        None => None,
    };
    let result = builder.usm_user(user.name.clone(), move |u| match (auth, privacy) {
        (Some((a, apw)), Some((p, ppw))) => u.auth_priv(a, apw.expose(), p, ppw.expose()),
        (Some((a, apw)), None) => u.auth(a, apw.expose()),
        (None, _) => Ok(u),
    });
    if user.auth.is_none() && user.privacy.is_some() {
        return Err("a privacy protocol needs an authentication protocol".into());
    }
    // The crypto error names the protocol or length problem, never the password.
    result.map_err(|e| e.to_string())
}

/// The authoritative engine: restarted from its file (boots + 1), or installed with the
/// configured or a generated id.
fn engine(file: EngineFile, configured_id: Option<Vec<u8>>) -> Result<AuthoritativeEngine, String> {
    let persist = {
        let file = file.clone();
        move |state: &async_snmp::PersistedAuthoritativeEngine| file.store(state.engine_id(), state.engine_boots())
    };
    match file.load().map_err(|e| e.to_string())? {
        Some((id, boots)) if configured_id.as_ref().is_none_or(|c| *c == id) => {
            let previous = async_snmp::PersistedAuthoritativeEngine::new(id, boots).map_err(|e| e.to_string())?;
            AuthoritativeEngine::restart(previous, persist).map_err(|e| e.to_string())
        }
        _ => {
            let id = configured_id.unwrap_or_else(state::generated_engine_id);
            AuthoritativeEngine::install(id, persist).map_err(|e| e.to_string())
        }
    }
}
