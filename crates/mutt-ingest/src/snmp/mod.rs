//! The SNMP notification listener: v1/v2c/v3 traps and informs on one UDP port, each turned
//! into an ingest event and handed to [`Ingest::accept`].
//!
//! async-snmp (pinned, a young 0.x API) does the protocol: decoding, the USM (auth/priv,
//! timeliness, the authoritative engine v3 informs need) and inform responses. It stays
//! behind [`TrapListener`]; nothing of its API appears in MUTT's configuration.
//!
//! Informs: async-snmp sends the response before it hands the notification over, so the
//! acknowledgement is decided in its acceptance hook, from whether the ingest queue accepts
//! (depth below `max_ingest_queue_size`, re-checked every [`QUEUE_CHECK`] and after every
//! refusal). While it refuses, informs go unanswered (the agent resends) and traps are dropped
//! and counted in `mutt_ingest_dropped_total{listener,reason}`.

pub mod event;
mod state;

use crate::{Ingest, Rejection, Submission};
use async_snmp::notification::NotificationReceiver;
use async_snmp::{AuthProtocol, AuthoritativeEngine, PrivProtocol};
use mutt_core::Secret;
use state::{EngineFile, ListenerState};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use state::{SnmpMetrics, parse_hex};

/// How often the queue's acceptance (for informs) and the USM failure counters are re-read.
pub const QUEUE_CHECK: Duration = Duration::from_millis(250);

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
    ingest: Ingest,
}

impl TrapListener {
    /// Binds the socket and sets up the USM users and engine.
    pub async fn bind(
        config: TrapListenerConfig,
        ingest: Ingest,
        metrics: SnmpMetrics,
    ) -> Result<Self, TrapSetupError> {
        let err = |detail: String| TrapSetupError::Config { listener: config.name.clone(), detail };
        let state =
            Arc::new(ListenerState::new(&config.name, config.communities.clone(), metrics, ingest.metrics().clone()));
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
        Ok(Self { receiver, state, ingest })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.receiver.local_addr()
    }

    /// Receives until `shutdown`: each notification becomes one submission.
    pub async fn run(self, shutdown: CancellationToken) {
        let watcher =
            tokio::spawn(watch(self.receiver.clone(), self.state.clone(), self.ingest.clone(), shutdown.clone()));
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.receiver.recv() => r,
            };
            match received {
                Ok(n) => {
                    let event = event::to_event(&n.notification, n.source, chrono::Utc::now());
                    self.submit(event, n.notification.is_confirmed()).await;
                }
                Err(e) => {
                    // Local socket or engine-state failures; back off so a persistent one
                    // cannot spin.
                    tracing::error!(listener = %self.state.name, error = %e, "SNMP receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        watcher.abort();
    }

    async fn submit(&self, event: serde_json::Map<String, serde_json::Value>, inform: bool) {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let submission = Submission { events: vec![event], batch: false, correlation_id };
        match self.ingest.accept(submission).await {
            Ok(_) => self.state.metrics.received(&self.state.name, if inform { "inform" } else { "trap" }),
            Err(rejection) => {
                if matches!(rejection, Rejection::QueueFull { .. } | Rejection::Unavailable(_)) {
                    self.state.open.store(false, Ordering::Relaxed);
                }
                self.ingest.metrics().drop_events(&self.state.name, rejection.metric_reason(), 1);
            }
        }
    }
}

/// Keeps the queue's acceptance flag and the USM failure counters current.
async fn watch(receiver: NotificationReceiver, state: Arc<ListenerState>, ingest: Ingest, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(QUEUE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let limit = ingest.settings().await.max_queue_size;
        let open = match ingest.queue().depth(mutt_queue::QueueId::Ingest).await {
            Ok(depth) => depth < limit,
            Err(_) => false,
        };
        state.open.store(open, Ordering::Relaxed);
        state.usm_failures(usm_failures(&receiver));
    }
}

fn usm_failures(r: &NotificationReceiver) -> u64 {
    [
        r.usm_unknown_engine_ids(),
        r.usm_unknown_usernames(),
        r.usm_wrong_digests(),
        r.usm_not_in_time_windows(),
        r.usm_unsupported_sec_levels(),
        r.usm_decryption_errors(),
    ]
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
