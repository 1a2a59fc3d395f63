//! The embedded queue backend: the queues in the SQLite data file (DESIGN.md §3, "embedded").
//!
//! Same semantics as the Redis backend: batch leases owned by a worker (`<role>:<pod>`) with a
//! heartbeat, atomic settle, janitor recovery with poison detection, delayed retries,
//! dead-letter queues. One process owns the file (a lock file next to it): that is what lets
//! the rate limiter and circuit breaker live in memory, wake-ups go through in-process
//! notifications instead of blocking commands, and the owner take back at start every lease a
//! crashed previous owner left behind.

mod consumer;
mod coordination;
mod flap;
// The dead-letter toolbox's access to the queue tables is in `crate::dlq::sqlite`.

use crate::redis::KeySpace;
use crate::{
    Consumer, ConsumerConfig, NamedDepth, ProcessingList, Queue, QueueError, QueueId, QueueStatus, WorkerRole,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mutt_sqlite::rusqlite::{self, Connection, params};
use mutt_sqlite::{Database, DbError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub use consumer::SqliteConsumer;

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// The queue tables have their own migration history, so the store's migrations (same file,
/// `refinery_schema_history`) and the queue's never see each other's versions.
const MIGRATION_TABLE: &str = "mutt_queue_schema_history";

pub(crate) fn db_err(context: &'static str) -> impl FnOnce(DbError) -> QueueError {
    move |source| QueueError::Sqlite { context, source }
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Ready events per queue (`queue_ready`: messages no lease row names, queue migration V5).
const READY_BY_QUEUE: &str = "SELECT queue, sum(events) FROM queue_ready GROUP BY queue";

/// How often the owner recounts its depth counts from the file (see `Shared::recounted`).
const RECOUNT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The embedded queue: cheap to clone.
#[derive(Clone)]
pub struct SqliteQueue {
    db: Database,
    keys: KeySpace,
    shared: Arc<Shared>,
    /// The most events one row carries (`embedded.batch_envelope`, see [`crate::envelope`]);
    /// ≤ 1: one event per row. Reading accepts both whatever this says.
    envelope: usize,
}

struct Shared {
    /// Whether this handle owns the file (workers run here); a non-owner (`muttd status`)
    /// only reads.
    owner: bool,
    /// Ready messages per queue name, kept by the owner after every commit so that the
    /// ingestor's per-request depth check costs no query.
    depths: Mutex<HashMap<String, i64>>,
    /// When `depths` was last recounted from the file: another process (`muttd dlq replay`)
    /// may have written to it, which no commit of this one accounts for.
    recounted: Mutex<std::time::Instant>,
    /// Wakes consumers waiting on a queue (ingest, alert).
    wake: [Notify; 2],
    local: coordination::Local,
    _lock: Option<std::fs::File>,
}

/// Net changes of ready-message counts made by one committed write.
#[derive(Default, Debug)]
pub(crate) struct Deltas(Vec<(String, i64)>);

impl Deltas {
    pub(crate) fn add(&mut self, queue: &str, n: i64) {
        if n != 0 {
            self.0.push((queue.to_owned(), n));
        }
    }
}

impl SqliteQueue {
    /// Opens the queue as the file's owner: takes the lock file `<db>.lock` (refusing if
    /// another process holds it), creates or migrates the queue tables, and hands back every
    /// message a previous owner left leased (it died holding them: each counts as a crash).
    pub async fn open(db: Database, keys: KeySpace) -> Result<Self, QueueError> {
        let lock = take_owner_lock(&db)?;
        migrate(&db).await?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let dlqs: Vec<(String, String)> = [WorkerRole::Alerter, WorkerRole::Forwarder]
            .into_iter()
            .map(|r| (format!("{}:", r.key_tag()), keys.dead_letter_queue(r).to_owned()))
            .collect();
        let max_crashes = ConsumerConfig::DEFAULT_MAX_CRASHES;
        let (recovered, dead) = db
            .write(move |c| {
                let owners: Vec<String> = {
                    let mut s = c.prepare("SELECT DISTINCT owner FROM queue_lease")?;
                    s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
                };
                let mut total = (0u64, 0u64);
                for owner in owners {
                    let Some((_, dlq)) = dlqs.iter().find(|(tag, _)| owner.starts_with(tag.as_str())) else {
                        continue;
                    };
                    let r = recover_owner(c, &owner, true, max_crashes, dlq, &now)?;
                    total.0 += r.requeued;
                    total.1 += r.dead;
                }
                c.execute("DELETE FROM queue_worker", [])?;
                Ok(total)
            })
            .await
            .map_err(db_err("taking back leases of the previous run"))?;
        if recovered + dead > 0 {
            tracing::warn!(
                recovered,
                dead_lettered = dead,
                "took back messages the previous muttd left leased (it did not stop cleanly)"
            );
        }
        let queue = Self::build(db, keys, true, Some(lock));
        queue.load_depths().await?;
        Ok(queue)
    }

    /// Attaches to a file another process owns (`muttd status`, `muttd config`): depths,
    /// workers and dynamic configuration; it cannot consume.
    pub async fn attach(db: Database, keys: KeySpace) -> Result<Self, QueueError> {
        // A file made by `muttd rules import` before the first run has no queue tables yet.
        migrate(&db).await?;
        let queue = Self::build(db, keys, false, None);
        queue.ping().await?;
        Ok(queue)
    }

    fn build(db: Database, keys: KeySpace, owner: bool, lock: Option<std::fs::File>) -> Self {
        Self {
            db,
            keys,
            envelope: 1,
            shared: Arc::new(Shared {
                owner,
                depths: Mutex::new(HashMap::new()),
                recounted: Mutex::new(std::time::Instant::now()),
                wake: [Notify::new(), Notify::new()],
                local: coordination::Local::default(),
                _lock: lock,
            }),
        }
    }

    /// Writes up to `max` events per row on the bulk paths (ingest pushes, the alerter's
    /// alerts; see [`crate::envelope`]); ≤ 1 writes one event per row.
    pub fn with_batch_envelope(mut self, max: usize) -> Self {
        self.envelope = max;
        self
    }

    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    async fn load_depths(&self) -> Result<(), QueueError> {
        let counts: Vec<(String, i64)> = self
            .db
            .read(|c| {
                let mut s = c.prepare(READY_BY_QUEUE)?;
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
            })
            .await
            .map_err(db_err("counting queued messages"))?;
        *self.shared.depths.lock().unwrap_or_else(|p| p.into_inner()) = counts.into_iter().collect();
        Ok(())
    }

    /// Applies the depth changes of a committed write and wakes the consumers of the queues
    /// that grew.
    pub(crate) fn committed(&self, deltas: Deltas) {
        let mut depths = self.shared.depths.lock().unwrap_or_else(|p| p.into_inner());
        for (queue, n) in deltas.0 {
            *depths.entry(queue.clone()).or_insert(0) += n;
            if n > 0 {
                for q in [QueueId::Ingest, QueueId::Alert] {
                    if self.keys.queue(q) == queue {
                        self.waker(q).notify_waiters();
                    }
                }
            }
        }
    }

    pub(crate) fn waker(&self, q: QueueId) -> &Notify {
        match q {
            QueueId::Ingest => &self.shared.wake[0],
            QueueId::Alert => &self.shared.wake[1],
        }
    }

    /// Whether the owner's depth counts are due for a recount (every few seconds).
    fn recount_due(&self) -> bool {
        let mut at = self.shared.recounted.lock().unwrap_or_else(|p| p.into_inner());
        if at.elapsed() < RECOUNT_EVERY {
            return false;
        }
        *at = std::time::Instant::now();
        true
    }

    async fn ready_depth(&self, name: &str) -> Result<u64, QueueError> {
        if self.shared.owner {
            if self.recount_due() {
                // Best effort: a failed recount leaves the counts as they were.
                let _ = self.load_depths().await;
            }
            let depths = self.shared.depths.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(depths.get(name).copied().unwrap_or(0).max(0) as u64);
        }
        let name = name.to_owned();
        self.db
            .read(move |c| {
                c.query_row("SELECT coalesce(sum(events), 0) FROM queue_ready WHERE queue = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .await
            .map(|n| n.max(0) as u64)
            .map_err(db_err("reading queue depth"))
    }
}

fn take_owner_lock(db: &Database) -> Result<std::fs::File, QueueError> {
    use std::io::{Read, Seek, Write};
    let mut path = db.path().as_os_str().to_owned();
    path.push(".lock");
    let path = std::path::PathBuf::from(path);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| QueueError::Config(format!("cannot open the lock file {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(QueueError::Config(format!(
                "another muttd process (pid {}) is using {}: the embedded backend runs every role in one \
                 `muttd run`; configure Redis and PostgreSQL to run roles in several processes",
                holder.trim(),
                db.path().display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(QueueError::Config(format!("cannot lock {}: {e}", path.display())));
        }
    }
    // The pid is only for the message above; the lock itself is what counts.
    let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| write!(file, "{}", std::process::id()));
    Ok(file)
}

async fn migrate(db: &Database) -> Result<(), QueueError> {
    let report = db
        .exclusive(|c| {
            embedded::migrations::runner().set_migration_table_name(MIGRATION_TABLE).run(c).map_err(|e| e.to_string())
        })
        .await
        .map_err(db_err("migrating the queue tables"))?
        .map_err(|e| QueueError::Config(format!("migrating the queue tables: {e}")))?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "queue tables migrated");
    }
    Ok(())
}

/// The next sequence numbers at the back of a queue.
pub(crate) fn back_seq(c: &Connection, queue: &str) -> rusqlite::Result<i64> {
    let max: Option<i64> =
        c.prepare_cached("SELECT max(seq) FROM queue_message WHERE queue = ?1")?.query_row([queue], |r| r.get(0))?;
    Ok(max.unwrap_or(0) + 1)
}

/// The sequence number before the first message of a queue.
pub(crate) fn front_seq(c: &Connection, queue: &str) -> rusqlite::Result<i64> {
    let min: Option<i64> =
        c.prepare_cached("SELECT min(seq) FROM queue_message WHERE queue = ?1")?.query_row([queue], |r| r.get(0))?;
    Ok(min.unwrap_or(0) - 1)
}

/// Appends messages to the back of a queue, one row each.
pub(crate) fn append(c: &Connection, queue: &str, messages: &[Vec<u8>], deltas: &mut Deltas) -> rusqlite::Result<()> {
    append_packed(c, queue, messages, 1, deltas)
}

/// Appends messages to the back of a queue, up to `envelope` events per row (see
/// [`crate::envelope`]).
pub(crate) fn append_packed(
    c: &Connection,
    queue: &str,
    messages: &[Vec<u8>],
    envelope: usize,
    deltas: &mut Deltas,
) -> rusqlite::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let first = back_seq(c, queue)?;
    let mut insert =
        c.prepare_cached("INSERT INTO queue_message (queue, seq, body, events) VALUES (?1, ?2, ?3, ?4)")?;
    if envelope <= 1 {
        for (seq, m) in (first..).zip(messages) {
            insert.execute(params![queue, seq, m, 1])?;
        }
    } else {
        for (seq, row) in (first..).zip(crate::envelope::pack(messages, envelope)) {
            insert.execute(params![queue, seq, row, crate::envelope::count(&row) as i64])?;
        }
    }
    deltas.add(queue, messages.len() as i64);
    Ok(())
}

/// Puts messages at the front of a queue, the first of them first in line.
pub(crate) fn prepend(c: &Connection, queue: &str, messages: &[Vec<u8>], deltas: &mut Deltas) -> rusqlite::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let first = front_seq(c, queue)? - messages.len() as i64 + 1;
    let mut insert = c.prepare_cached("INSERT INTO queue_message (queue, seq, body) VALUES (?1, ?2, ?3)")?;
    for (i, m) in messages.iter().enumerate() {
        insert.execute(params![queue, first + i as i64, m])?;
    }
    deltas.add(queue, messages.len() as i64);
    Ok(())
}

#[derive(Default)]
pub(crate) struct Recovered {
    pub requeued: u64,
    pub dead: u64,
    pub deltas: Deltas,
}

/// Hands every message leased by `owner` back to its queue, in place. With `crashed`, the
/// owner died holding them: each one's crash count goes up, and one whose workers died more
/// than `max_crashes` times goes to `dlq` instead (reason `worker_crashed`).
pub(crate) fn recover_owner(
    c: &Connection,
    owner: &str,
    crashed: bool,
    max_crashes: u32,
    dlq: &str,
    now: &str,
) -> rusqlite::Result<Recovered> {
    let rows: Vec<(i64, String, i64, Vec<u8>, i64, i64)> = {
        let mut s = c.prepare_cached(
            "SELECT m.id, m.queue, m.seq, m.body, m.crashes, m.events
             FROM queue_lease l JOIN queue_message m ON m.id = l.message_id
             WHERE l.owner = ?1 ORDER BY m.seq, m.id",
        )?;
        s.query_map([owner], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
            .collect::<Result<_, _>>()?
    };
    c.prepare_cached("DELETE FROM queue_lease WHERE owner = ?1")?.execute([owner])?;
    let mut out = Recovered::default();
    let mut poison = Vec::new();
    for (id, queue, seq, body, crashes, events) in rows {
        let crashes = crashes + i64::from(crashed);
        if crashed && events > 1 {
            // An envelope whose worker died comes back as its events, in its place in line
            // (same `seq`, ascending ids): one of them may be what killed the worker, and
            // poison is counted and dead-lettered per event, as without envelopes.
            c.prepare_cached("DELETE FROM queue_message WHERE id = ?1")?.execute([id])?;
            let mut unpacked = Vec::new();
            crate::envelope::unpack_into(body, &mut unpacked);
            let mut insert = c.prepare_cached(
                "INSERT INTO queue_message (queue, seq, body, crashes, events) VALUES (?1, ?2, ?3, ?4, 1)",
            )?;
            for event in unpacked {
                if crashes > i64::from(max_crashes) {
                    poison.push(poison_letter(&event, crashes, now));
                } else {
                    insert.execute(params![queue, seq, event, crashes])?;
                    out.deltas.add(&queue, 1);
                    out.requeued += 1;
                }
            }
            continue;
        }
        if crashed && crashes > i64::from(max_crashes) {
            c.prepare_cached("DELETE FROM queue_message WHERE id = ?1")?.execute([id])?;
            poison.push(poison_letter(&body, crashes, now));
            continue;
        }
        if crashed {
            c.prepare_cached("UPDATE queue_message SET crashes = ?2 WHERE id = ?1")?.execute([id, crashes])?;
        }
        out.deltas.add(&queue, events);
        out.requeued += events as u64;
    }
    out.dead = poison.len() as u64;
    append(c, dlq, &poison, &mut out.deltas)?;
    Ok(out)
}

/// The dead letter of a message that kept killing its workers (the Redis backend's form).
fn poison_letter(body: &[u8], crashes: i64, now: &str) -> Vec<u8> {
    serde_json::json!({
        "_dlq_reason": "worker_crashed",
        "_dlq_error": format!("the worker holding this message died {crashes} times"),
        "failed_at": now,
        "raw": String::from_utf8_lossy(body),
    })
    .to_string()
    .into_bytes()
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn push(&self, queue: QueueId, messages: &[Vec<u8>]) -> Result<u64, QueueError> {
        let name = self.keys.queue(queue).to_owned();
        if !messages.is_empty() {
            let messages = messages.to_vec();
            let n = name.clone();
            let deltas = self
                .db
                .write(move |c| {
                    let mut d = Deltas::default();
                    append(c, &n, &messages, &mut d)?;
                    Ok(d)
                })
                .await
                .map_err(db_err("pushing messages"))?;
            self.committed(deltas);
        }
        self.ready_depth(&name).await
    }

    async fn push_ingest(&self, messages: &[Vec<u8>], now: DateTime<Utc>) -> Result<u64, QueueError> {
        let name = self.keys.ingest_queue.clone();
        let p = &self.keys.metrics_prefix;
        let buckets = [
            (format!("{p}:1m:{}", now.format("%Y-%m-%dT%H:%M")), 7_200_000i64),
            (format!("{p}:1h:{}", now.format("%Y-%m-%dT%H")), 172_800_000),
            (format!("{p}:24h:{}", now.format("%Y-%m-%d")), 2_592_000_000),
        ];
        let messages = messages.to_vec();
        let n = name.clone();
        let (at, envelope) = (now.timestamp_millis(), self.envelope);
        let deltas = self
            .db
            .write(move |c| {
                let mut d = Deltas::default();
                append_packed(c, &n, &messages, envelope, &mut d)?;
                let mut count = c.prepare_cached(
                    "INSERT INTO ingest_counter (bucket, count, expires_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (bucket) DO UPDATE SET count = count + excluded.count",
                )?;
                for (bucket, ttl) in &buckets {
                    count.execute(params![bucket, messages.len() as i64, at + ttl])?;
                }
                // Forget old counters as Redis expires them.
                c.prepare_cached("DELETE FROM ingest_counter WHERE expires_ms < ?1")?.execute([at])?;
                Ok(d)
            })
            .await
            .map_err(db_err("enqueueing events"))?;
        self.committed(deltas);
        self.ready_depth(&name).await
    }

    async fn depth(&self, queue: QueueId) -> Result<u64, QueueError> {
        self.ready_depth(self.keys.queue(queue)).await
    }

    async fn dead_letter_depth(&self, role: WorkerRole) -> Result<u64, QueueError> {
        self.ready_depth(self.keys.dead_letter_queue(role)).await
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.db
            .read(|c| c.query_row("SELECT count(*) FROM queue_worker", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|_| ())
            .map_err(db_err("ping"))
    }

    async fn status(&self) -> Result<QueueStatus, QueueError> {
        let keys = self.keys.clone();
        let now = now_ms();
        let (ready, delayed, leased, workers) = self
            .db
            .read(move |c| {
                let ready: HashMap<String, i64> = c
                    .prepare(READY_BY_QUEUE)?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let delayed: HashMap<String, i64> = c
                    .prepare("SELECT queue, count(*) FROM queue_delayed GROUP BY queue")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let leased: Vec<(String, i64)> = c
                    .prepare(
                        "SELECT l.owner, sum(m.events) FROM queue_lease l JOIN queue_message m ON m.id = l.message_id
                         GROUP BY l.owner",
                    )?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let workers: Vec<(String, String, i64)> = c
                    .prepare("SELECT role, pod, heartbeat_until_ms - ?1 FROM queue_worker")?
                    .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                Ok((ready, delayed, leased, workers))
            })
            .await
            .map_err(db_err("reading queue status"))?;
        let depth = |m: &HashMap<String, i64>, name: &str| m.get(name).copied().unwrap_or(0).max(0) as u64;
        let mut status = QueueStatus::default();
        for q in [QueueId::Ingest, QueueId::Alert] {
            let name = keys.queue(q).to_owned();
            status.queues.push(NamedDepth { depth: depth(&ready, &name), name: name.clone() });
            status.delayed_retries.push(NamedDepth { depth: depth(&delayed, &name), name: keys.delayed(q) });
        }
        for role in [WorkerRole::Alerter, WorkerRole::Forwarder] {
            let name = keys.dead_letter_queue(role).to_owned();
            status.dead_letter_queues.push(NamedDepth { depth: depth(&ready, &name), name });
            let tag = role.key_tag();
            let mut pods: Vec<String> = workers.iter().filter(|w| w.0 == tag).map(|w| w.1.clone()).collect();
            let prefix = format!("{tag}:");
            pods.extend(leased.iter().filter_map(|(o, _)| o.strip_prefix(&prefix).map(str::to_owned)));
            pods.sort();
            pods.dedup();
            for pod in pods {
                let owner = format!("{tag}:{pod}");
                let held = leased.iter().find(|(o, _)| *o == owner).map(|(_, n)| *n).unwrap_or(0).max(0) as u64;
                // The heartbeat's time left, while it has some.
                let left = workers.iter().find(|w| w.0 == tag && w.1 == pod && w.2 > 0).map(|w| w.2 as u64);
                status.processing_lists.push(ProcessingList {
                    name: keys.processing_list(role, &pod),
                    role: tag.to_owned(),
                    pod,
                    depth: held,
                    alive: left.is_some(),
                    heartbeat_expires_in_ms: left,
                });
            }
        }
        // Parked poison (the remediation's and `muttd dlq park`'s), after the two workers' DLQs.
        let dead = keys.dead_dlq.clone();
        status.dead_letter_queues.push(NamedDepth { depth: depth(&ready, &dead), name: dead });
        Ok(status)
    }

    async fn consumer(&self, config: ConsumerConfig) -> Result<Box<dyn Consumer>, QueueError> {
        if !self.shared.owner {
            return Err(QueueError::Config("a read-only view of the embedded queue cannot consume".into()));
        }
        Ok(Box::new(SqliteConsumer::start(self.clone(), config).await?))
    }

    fn dead_letters(&self) -> Arc<dyn crate::dlq::DeadLetterStore> {
        Arc::new(self.clone())
    }

    fn ingest_counters(&self) -> Arc<dyn crate::ingest_rate::IngestCounters> {
        Arc::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data file written before queue migration V5 (leases as `queue_message.owner`), left by
    /// a muttd that died holding leases: the upgrade keeps every message, and the open takes the
    /// leases back as a crashed owner's.
    #[tokio::test]
    async fn a_file_with_owner_column_leases_upgrades_without_losing_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("mutt.db"), Default::default()).unwrap();
        let envelope = crate::envelope::pack(&[b"{\"n\":1}".to_vec(), b"{\"n\":2}".to_vec()], 100).remove(0);
        db.exclusive(move |c| {
            let mut runner = embedded::migrations::runner().set_target(refinery::Target::Version(4));
            runner.set_migration_table_name(MIGRATION_TABLE).run(c).map_err(|e| e.to_string())?;
            let mut insert = c
                .prepare("INSERT INTO queue_message (queue, seq, body, owner, events) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(|e| e.to_string())?;
            for (seq, body, owner, events) in [
                (1, envelope.clone(), Some("alerter:old-pod"), 2),
                (2, b"{\"n\":3}".to_vec(), Some("alerter:old-pod"), 1),
                (3, b"{\"n\":4}".to_vec(), None, 1),
            ] {
                insert.execute(params!["mutt:ingest_queue", seq, body, owner, events]).map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        })
        .await
        .unwrap()
        .unwrap();

        let q = SqliteQueue::open(db.clone(), KeySpace::default()).await.unwrap();
        assert_eq!(q.depth(QueueId::Ingest).await.unwrap(), 4, "every event is ready again");
        let (columns, leases, crashes): (Vec<String>, i64, Vec<i64>) = db
            .read(|c| {
                let columns = c
                    .prepare("SELECT name FROM pragma_table_info('queue_message') ORDER BY cid")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let leases = c.query_row("SELECT count(*) FROM queue_lease", [], |r| r.get(0))?;
                let crashes = c
                    .prepare("SELECT crashes FROM queue_message ORDER BY seq, id")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok((columns, leases, crashes))
            })
            .await
            .unwrap();
        assert_eq!(columns, ["id", "queue", "seq", "events", "crashes", "body"], "no owner, the body last");
        assert_eq!(leases, 0);
        assert_eq!(crashes, [1, 1, 1, 0], "the dead owner's envelope came back as its events, each with a crash");

        let mut c =
            q.consumer(ConsumerConfig::new(WorkerRole::Alerter, mutt_core::PodName::random("a"))).await.unwrap();
        let lease = c.lease(100, std::time::Duration::from_millis(100)).await.unwrap().unwrap();
        let order: Vec<&[u8]> = lease.messages.iter().map(Vec::as_slice).collect();
        assert_eq!(order, [&b"{\"n\":1}"[..], b"{\"n\":2}", b"{\"n\":3}", b"{\"n\":4}"], "in their place in line");
    }
}
