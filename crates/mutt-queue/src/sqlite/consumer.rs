//! One worker's consumer on the embedded backend: lease, settle, release, heartbeat, janitor,
//! delayed-retry mover.

use super::{Deltas, SqliteQueue, append, append_packed, db_err, now_ms, prepend, recover_owner};
use crate::periodic::{FirstRun, spawn_every};
use crate::{Consumer, ConsumerConfig, Lease, QueueError, QueueId, Settlement, WorkerRole};
use async_trait::async_trait;
use mutt_sqlite::rusqlite::params;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Upper bound of one lease (as the Redis backend).
pub const MAX_LEASE: usize = 1000;
/// Due delayed retries moved per mover call.
const MOVE_DUE_CHUNK: i64 = 500;

pub struct SqliteConsumer {
    queue: SqliteQueue,
    config: ConsumerConfig,
    source: QueueId,
    /// `<role>:<pod>`: the owner its lease rows name (`queue_lease`).
    owner: String,
    source_name: String,
    output_name: Option<String>,
    dlq_name: String,
    /// Row ids of the current lease.
    leased: Vec<i64>,
    /// The current lease's token: only a settle of that lease applies, once.
    token: u64,
    /// Stops the heartbeat, janitor and delayed-retry tasks.
    stop: CancellationToken,
}

impl SqliteConsumer {
    pub(crate) async fn start(queue: SqliteQueue, config: ConsumerConfig) -> Result<Self, QueueError> {
        let keys = queue.keys().clone();
        let role = config.role;
        let mut consumer = Self {
            owner: format!("{}:{}", role.key_tag(), config.pod.as_ref()),
            source: role.source(),
            source_name: keys.queue(role.source()).to_owned(),
            output_name: role.output().map(|q| keys.queue(q).to_owned()),
            dlq_name: keys.dead_letter_queue(role).to_owned(),
            queue,
            config,
            leased: Vec::new(),
            token: 0,
            stop: CancellationToken::new(),
        };
        // Heartbeat first, so no other worker's janitor takes this worker's leases from now on.
        write_heartbeat(&consumer.queue, &consumer.config).await?;
        let mine = consumer.hand_back(true).await?;
        if mine > 0 {
            tracing::info!(pod = %consumer.config.pod, moved = mine, "handed back messages left leased by this pod's previous run");
        }
        consumer.recover_dead_workers().await?;
        consumer.spawn_tasks();
        Ok(consumer)
    }

    fn spawn_tasks(&self) {
        let stop = self.stop.clone();
        let (queue, config) = (self.queue.clone(), self.config.clone());
        // The heartbeat was written and the janitor run by `start`.
        spawn_every("heartbeat refresh", config.heartbeat_interval, FirstRun::AfterInterval, stop.clone(), move || {
            let (queue, config) = (queue.clone(), config.clone());
            async move { write_heartbeat(&queue, &config).await }
        });
        let janitor = Arc::new(self.janitor());
        spawn_every("janitor run", self.config.janitor_interval, FirstRun::AfterInterval, stop.clone(), move || {
            let janitor = janitor.clone();
            async move { janitor.run().await.map(|_| ()) }
        });
        let (queue, source) = (self.queue.clone(), self.source_name.clone());
        spawn_every("moving due retries", self.config.delayed_poll_interval, FirstRun::Now, stop, move || {
            let (queue, source) = (queue.clone(), source.clone());
            async move {
                while move_due(&queue, &source).await? == MOVE_DUE_CHUNK {}
                Ok::<_, QueueError>(())
            }
        });
    }

    fn janitor(&self) -> Janitor {
        Janitor {
            queue: self.queue.clone(),
            config: self.config.clone(),
            source_name: self.source_name.clone(),
            dlq_name: self.dlq_name.clone(),
        }
    }

    /// Hands this worker's leased messages back to their queue; `crashed` when it is what a
    /// previous process under this pod name died holding.
    async fn hand_back(&mut self, crashed: bool) -> Result<u64, QueueError> {
        let (owner, dlq, max) = (self.owner.clone(), self.dlq_name.clone(), self.config.max_crashes);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let r = self
            .queue
            .db
            .write_unsynced(move |c| recover_owner(c, &owner, crashed, max, &dlq, &now))
            .await
            .map_err(db_err("handing back leased messages"))?;
        self.leased.clear();
        self.token = 0;
        let moved = r.requeued + r.dead;
        self.queue.committed(r.deltas);
        Ok(moved)
    }

    async fn try_lease(&mut self, max: usize) -> Result<Vec<Vec<u8>>, QueueError> {
        let (source, owner) = (self.source_name.clone(), self.owner.clone());
        // Unsynced (see `Database::write_unsynced`): a lease is known only inside the file.
        let (rows, deltas) = self
            .queue
            .db
            .write_unsynced(move |c| {
                // Rows until they carry `max` events (an envelope counts its events); the first
                // is taken whatever its size, so that no envelope is stuck behind a small lease.
                let mut rows: Vec<(i64, Vec<u8>)> = Vec::new();
                let mut events = 0i64;
                {
                    let mut s = c.prepare_cached(
                        "SELECT id, body, events FROM queue_ready WHERE queue = ?1 ORDER BY seq, id LIMIT ?2",
                    )?;
                    let mut found = s.query(params![source, max as i64])?;
                    while let Some(r) = found.next()? {
                        let n: i64 = r.get(2)?;
                        if !rows.is_empty() && events + n > max as i64 {
                            break;
                        }
                        rows.push((r.get(0)?, r.get(1)?));
                        events += n;
                    }
                }
                // A lease row, not an update of the message: see queue migration V5.
                let mut take = c.prepare_cached("INSERT INTO queue_lease (message_id, owner) VALUES (?1, ?2)")?;
                for (id, _) in &rows {
                    take.execute(params![id, owner])?;
                }
                let mut d = Deltas::default();
                d.add(&source, -events);
                Ok((rows, d))
            })
            .await
            .map_err(db_err("leasing messages"))?;
        self.queue.committed(deltas);
        self.leased = rows.iter().map(|(id, _)| *id).collect();
        let mut messages = Vec::with_capacity(rows.len());
        for (_, body) in rows {
            crate::envelope::unpack_into(body, &mut messages);
        }
        Ok(messages)
    }
}

impl Drop for SqliteConsumer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn write_heartbeat(queue: &SqliteQueue, config: &ConsumerConfig) -> Result<(), QueueError> {
    let (role, pod) = (config.role.key_tag(), config.pod.as_ref().to_owned());
    let until = now_ms() + config.heartbeat_ttl.as_millis() as i64;
    queue
        .db
        .write_unsynced(move |c| {
            c.prepare_cached(
                "INSERT INTO queue_worker (role, pod, heartbeat_until_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (role, pod) DO UPDATE SET heartbeat_until_ms = excluded.heartbeat_until_ms",
            )?
            .execute(params![role, pod, until])
        })
        .await
        .map(|_| ())
        .map_err(db_err("writing heartbeat"))
}

/// Moves due delayed retries to the front of the source queue; returns how many.
async fn move_due(queue: &SqliteQueue, source: &str) -> Result<i64, QueueError> {
    let source = source.to_owned();
    let now = now_ms();
    let (n, deltas) = queue
        .db
        .write_unsynced(move |c| {
            let due: Vec<(i64, Vec<u8>)> = {
                let mut s = c.prepare_cached(
                    "SELECT id, body FROM queue_delayed WHERE queue = ?1 AND due_ms <= ?2 ORDER BY due_ms LIMIT ?3",
                )?;
                s.query_map(params![source, now, MOVE_DUE_CHUNK], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?
            };
            let mut delete = c.prepare_cached("DELETE FROM queue_delayed WHERE id = ?1")?;
            for (id, _) in &due {
                delete.execute([id])?;
            }
            let mut d = Deltas::default();
            let bodies: Vec<Vec<u8>> = due.into_iter().map(|(_, b)| b).collect();
            prepend(c, &source, &bodies, &mut d)?;
            Ok((bodies.len() as i64, d))
        })
        .await
        .map_err(db_err("moving due retries"))?;
    queue.committed(deltas);
    Ok(n)
}

/// Finds workers of this role whose heartbeat is gone while they hold leases and hands their
/// messages back.
struct Janitor {
    queue: SqliteQueue,
    config: ConsumerConfig,
    source_name: String,
    dlq_name: String,
}

impl Janitor {
    async fn run(&self) -> Result<u64, QueueError> {
        let tag = self.config.role.key_tag();
        let own = format!("{tag}:{}", self.config.pod.as_ref());
        let (source, dlq, max) = (self.source_name.clone(), self.dlq_name.clone(), self.config.max_crashes);
        let now_text = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let now = now_ms();
        // The heartbeat check and the move are one write, so a worker is never robbed half-way.
        let (moved, deltas, dead_owners) = self
            .queue
            .db
            .write_unsynced(move |c| {
                let owners: Vec<String> = {
                    let mut s = c.prepare_cached(
                        "SELECT DISTINCT l.owner FROM queue_lease l JOIN queue_message m ON m.id = l.message_id
                         WHERE m.queue = ?1",
                    )?;
                    s.query_map([&source], |r| r.get(0))?.collect::<Result<_, _>>()?
                };
                let mut alive = c.prepare_cached(
                    "SELECT count(*) FROM queue_worker WHERE role = ?1 AND pod = ?2 AND heartbeat_until_ms > ?3",
                )?;
                let mut forget = c.prepare_cached("DELETE FROM queue_worker WHERE role = ?1 AND pod = ?2")?;
                let (mut moved, mut deltas, mut dead_owners) = (0u64, Deltas::default(), Vec::new());
                for owner in owners {
                    let Some(pod) = owner.strip_prefix(&format!("{tag}:")).map(str::to_owned) else { continue };
                    if owner == own || alive.query_row(params![tag, pod, now], |r| r.get::<_, i64>(0))? > 0 {
                        continue;
                    }
                    let r = recover_owner(c, &owner, true, max, &dlq, &now_text)?;
                    moved += r.requeued + r.dead;
                    deltas.0.extend(r.deltas.0);
                    forget.execute(params![tag, pod])?;
                    dead_owners.push(owner);
                }
                Ok((moved, deltas, dead_owners))
            })
            .await
            .map_err(db_err("recovering leases of dead workers"))?;
        self.queue.committed(deltas);
        for owner in dead_owners {
            tracing::warn!(owner = %owner, "janitor: recovered messages of a dead worker");
        }
        self.config.metrics.recovered(self.config.role, moved);
        Ok(moved)
    }
}

#[async_trait]
impl Consumer for SqliteConsumer {
    fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    async fn lease(&mut self, max: usize, wait: Duration) -> Result<Option<Lease>, QueueError> {
        let max = max.clamp(1, MAX_LEASE);
        if !self.leased.is_empty() {
            // A lease that was never settled: hand it back rather than hold it forever.
            self.hand_back(false).await?;
        }
        let deadline = Instant::now() + wait;
        let queue = self.queue.clone();
        loop {
            // Registered before looking, so a push between the look and the wait still wakes us.
            let woken = queue.waker(self.source).notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let messages = self.try_lease(max).await?;
            if !messages.is_empty() {
                let lease = Lease::new(messages);
                self.token = lease.token();
                return Ok(Some(lease));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let _ = tokio::time::timeout(left, woken).await;
        }
    }

    async fn settle(&mut self, lease: &Lease, s: &Settlement) -> Result<(), QueueError> {
        if lease.is_empty() {
            return Ok(());
        }
        if self.leased.is_empty() || lease.token() != self.token {
            tracing::warn!(
                owner = %self.owner,
                events = lease.len(),
                event_ids = crate::log_ids::first_event_ids(&lease.messages),
                "lease was no longer held (already settled, handed back, or recovered by a janitor)"
            );
            return Ok(());
        }
        if !s.emit.is_empty() && self.output_name.is_none() {
            return Err(QueueError::Config(format!("role {:?} has no output queue", self.config.role)));
        }
        let ids = self.leased.clone();
        let owner = self.owner.clone();
        let (source, output, dlq) = (self.source_name.clone(), self.output_name.clone(), self.dlq_name.clone());
        let (emit, put_back, dead) = (s.emit.clone(), s.put_back.clone(), s.dead.clone());
        let envelope = self.queue.envelope;
        let now = now_ms();
        let delayed: Vec<(i64, Vec<u8>)> =
            s.delayed.iter().map(|(m, d)| (now + d.as_millis() as i64, m.clone())).collect();
        let apply = move |c: &mutt_sqlite::rusqlite::Connection| {
            let mut d = Deltas::default();
            let mut release = c.prepare_cached("DELETE FROM queue_lease WHERE message_id = ?1 AND owner = ?2")?;
            let mut ack = c.prepare_cached("DELETE FROM queue_message WHERE id = ?1")?;
            let mut removed = 0;
            for id in &ids {
                if release.execute(params![id, owner])? > 0 {
                    removed += ack.execute([id])?;
                }
            }
            if removed == 0 {
                // Already settled (a retry after a lost reply) or recovered by a janitor.
                return Ok((false, d));
            }
            if let Some(output) = &output {
                append_packed(c, output, &emit, envelope, &mut d)?;
            }
            prepend(c, &source, &put_back, &mut d)?;
            let mut later = c.prepare_cached("INSERT INTO queue_delayed (queue, due_ms, body) VALUES (?1, ?2, ?3)")?;
            for (due, m) in &delayed {
                later.execute(params![source, due, m])?;
            }
            append(c, &dlq, &dead, &mut d)?;
            Ok((true, d))
        };
        // The forwarder settles what it delivered: that waits for the disk, so a power loss
        // cannot undo a settle whose alerts Moogsoft has. The alerter's settle only moves
        // work within the file (see `Database::write_unsynced`).
        let settled = if self.config.role == WorkerRole::Forwarder {
            self.queue.db.write(apply).await
        } else {
            self.queue.db.write_unsynced(apply).await
        };
        let (applied, deltas) = settled.map_err(db_err("settling a lease"))?;
        self.queue.committed(deltas);
        self.leased.clear();
        self.token = 0;
        if !applied {
            tracing::warn!(
                owner = %self.owner,
                events = lease.len(),
                event_ids = crate::log_ids::first_event_ids(&lease.messages),
                "lease was no longer held (already settled, or recovered by a janitor)"
            );
        }
        Ok(())
    }

    async fn release(&mut self) -> Result<u64, QueueError> {
        self.hand_back(false).await
    }

    async fn recover_dead_workers(&self) -> Result<u64, QueueError> {
        self.janitor().run().await
    }

    async fn shutdown(&mut self) -> Result<(), QueueError> {
        self.stop.cancel();
        let moved = self.release().await?;
        if moved > 0 {
            tracing::info!(moved, "handed leased messages back at shutdown");
        }
        let (role, pod) = (self.config.role.key_tag(), self.config.pod.as_ref().to_owned());
        self.queue
            .db
            .write(move |c| c.execute("DELETE FROM queue_worker WHERE role = ?1 AND pod = ?2", params![role, pod]))
            .await
            .map(|_| ())
            .map_err(db_err("unregistering the worker"))
    }
}
