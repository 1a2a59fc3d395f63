//! The dead-letter toolbox: list, show, replay, park, purge, export and trim the three
//! dead-letter queues (`mutt:dlq:alerter`, `mutt:dlq:moog`, `mutt:dlq:dead`) on both backends.
//!
//! Layout: this file has the plain, serde-serialisable types the CLI and the management API
//! print; [`entry`] reads one dead letter (reason, error, age, host, where it came from) and
//! builds its replayed or parked form; [`ops`] holds the operations, written once over the
//! [`DeadLetterStore`] primitives that `redis` and `sqlite` implement.
//!
//! Nothing is lost or duplicated: every move is "remove exactly these bytes from the DLQ and,
//! only if they were there, push the new message", one atomic step per chunk on both backends,
//! so two operators (or an operator and the remediation role) replaying at once never both
//! move the same entry.

pub mod entry;
pub mod ops;
mod redis;
mod sqlite;

use crate::{QueueError, QueueId};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use entry::{DlqEntry, EntryInfo};
pub use ops::{
    ApplyReport, Decision, DlqSummary, MoveReport, Page, Pass, Progress, Selection, apply, export_jsonl, list, park,
    purge, replay, show, trim,
};

/// One of the three dead-letter queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dlq {
    /// Events the alerter could not process (`mutt:dlq:alerter`): retries spent, shed,
    /// unreadable, a worker died holding them.
    Alerter,
    /// Alerts the forwarder could not deliver (`mutt:dlq:moog`).
    Moog,
    /// Parked poison (`mutt:dlq:dead`): terminal until an operator replays it.
    Dead,
}

impl Dlq {
    pub const ALL: [Dlq; 3] = [Dlq::Alerter, Dlq::Moog, Dlq::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Dlq::Alerter => "alerter",
            Dlq::Moog => "moog",
            Dlq::Dead => "dead",
        }
    }

    /// The queue an entry of this DLQ goes back to when nothing in it says otherwise.
    pub fn home(self) -> QueueId {
        match self {
            Dlq::Moog => QueueId::Alert,
            Dlq::Alerter | Dlq::Dead => QueueId::Ingest,
        }
    }
}

impl crate::redis::KeySpace {
    /// The name of a DLQ (a Redis list, or a queue of the embedded file).
    pub(crate) fn dlq(&self, dlq: Dlq) -> &str {
        match dlq {
            Dlq::Alerter => &self.alerter_dlq,
            Dlq::Moog => &self.moog_dlq,
            Dlq::Dead => &self.dead_dlq,
        }
    }
}

impl std::str::FromStr for Dlq {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let short = s.rsplit(':').next().unwrap_or(&s);
        match short {
            "alerter" => Ok(Dlq::Alerter),
            "moog" | "forwarder" => Ok(Dlq::Moog),
            "dead" => Ok(Dlq::Dead),
            _ => Err(format!("{s:?} is not a dead-letter queue (alerter, moog, dead)")),
        }
    }
}

impl std::fmt::Display for Dlq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which end of a DLQ to start from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum End {
    /// The entries that failed first.
    #[default]
    Oldest,
    Newest,
}

/// One stored dead letter: its exact bytes, and where the backend keeps it (the embedded row
/// id, which makes removing it cheap; Redis finds it by its bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    pub(crate) handle: Option<i64>,
    pub body: Vec<u8>,
}

/// Where a removed entry's new form goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The back of a work queue (a replay).
    Queue(QueueId),
    /// Another DLQ (parking in `mutt:dlq:dead`).
    Dlq(Dlq),
    /// Nowhere (a purge).
    Drop,
}

/// Remove `old` from the DLQ; if it was there, push `new` to `target`.
#[derive(Clone, Debug)]
pub struct Move {
    pub old: RawEntry,
    pub new: Vec<u8>,
    pub target: Target,
}

/// What a backend offers for dead letters. The operations in [`ops`] are written once over it.
#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    /// The key (Redis) or queue name (embedded) of a DLQ, e.g. `mutt:dlq:alerter`.
    fn dlq_name(&self, dlq: Dlq) -> String;

    /// The key or name of a work queue, e.g. `mutt:ingest_queue`.
    fn queue_name(&self, queue: QueueId) -> String;

    async fn dlq_depth(&self, dlq: Dlq) -> Result<u64, QueueError>;

    /// Adds entries at the newest end, as they are (an import, or entries of the original's
    /// form in tests).
    async fn dlq_push(&self, dlq: Dlq, entries: &[Vec<u8>]) -> Result<(), QueueError>;

    /// Up to `count` entries starting `offset` entries from `end`, in that order.
    async fn dlq_range(&self, dlq: Dlq, end: End, offset: u64, count: u64) -> Result<Vec<RawEntry>, QueueError>;

    /// Applies the moves in one atomic step: each entry still in the DLQ is removed and its new
    /// form pushed; returns, per move, whether its entry was still there.
    async fn dlq_take(&self, dlq: Dlq, moves: &[Move]) -> Result<Vec<bool>, QueueError>;
}
