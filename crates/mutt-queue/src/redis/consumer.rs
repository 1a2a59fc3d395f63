//! One worker's consumer on the Redis backend: lease, settle, release, heartbeat, janitor,
//! delayed-retry mover.

use super::AnyConnection;
use super::connection::RESPONSE_TIMEOUT;
use super::{RedisQueue, envelope, redis_err, scripts};
use crate::periodic::{FirstRun, spawn_every};
use crate::{Consumer, ConsumerConfig, Lease, QueueError, Settlement, WorkerRole};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Upper bound of one lease (Lua argument lists and reply sizes stay small).
pub const MAX_LEASE: usize = 1000;

/// From how many events per element a lease moves elements natively (several round trips)
/// instead of moving them in one script call. A script hashes every byte it moves (Lua interns
/// strings): ~2.7 ns per byte here, against ~25 µs of client and server CPU per extra round
/// trip, so the script wins for small elements (single events, a few alerts) and loses from
/// envelopes of a few dozen events (10–50 KB).
const NATIVE_FROM: usize = 32;
/// Messages moved per janitor/release script call, so that a huge list never blocks Redis.
const RECOVER_CHUNK: usize = 1000;
/// Due delayed retries moved per mover call.
const MOVE_DUE_CHUNK: usize = 500;
/// How much longer than its own wait a BLMOVE may take before the call is given up (and its
/// connection dropped): a connection whose peer vanished without a reset never answers.
pub const BLOCKING_MARGIN: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
struct Keys {
    source: String,
    /// The source's and the output's event counters (`<queue>:events`).
    source_events: String,
    output_events: Option<String>,
    processing: String,
    heartbeat: String,
    delayed: String,
    dlq: String,
    output: Option<String>,
    /// The role's lease tokens (hash: pod -> token of the lease being held).
    leases: String,
    /// The role's redelivered hash, when the role tells redeliveries apart (the forwarder:
    /// only a redelivered alert can have been delivered before).
    redelivered: Option<String>,
}

/// Whether a role's leases say which messages were leased before.
fn tracks_redeliveries(role: WorkerRole) -> bool {
    role == WorkerRole::Forwarder
}

pub struct RedisConsumer {
    queue: RedisQueue,
    config: ConsumerConfig,
    keys: Keys,
    /// Dedicated connection for BLMOVE, opened on first use and dropped after an error.
    blocking: Option<AnyConnection>,
    /// Dedicated connection for native settles (`WATCH` holds per connection, so nothing else
    /// may send on it), opened on first use and dropped after an error.
    settling: Option<AnyConnection>,
    /// The token of the lease handed out and not settled yet: if the worker gives up on it
    /// (an error between lease and settle), the next lease hands it back first.
    held: Option<u64>,
    /// Set when a lease call failed: a call whose reply was lost may still have moved
    /// messages, so the processing list is handed back before the next lease.
    dirty: bool,
    /// Lease by native moves (the last lease's first element was an envelope of at least
    /// [`NATIVE_FROM`] events) rather than by one script call.
    native_moves: bool,
    /// Stops the heartbeat, janitor and delayed-retry tasks.
    stop: CancellationToken,
}

impl RedisConsumer {
    pub(crate) async fn start(queue: RedisQueue, config: ConsumerConfig) -> Result<Self, QueueError> {
        let k = queue.keys();
        let pod = config.pod.as_ref().to_owned();
        let pod = pod.as_str();
        let keys = Keys {
            source: k.queue(config.role.source()).to_owned(),
            source_events: k.events(config.role.source()),
            output_events: config.role.output().map(|q| k.events(q)),
            processing: k.processing_list(config.role, pod),
            heartbeat: k.heartbeat(config.role, pod),
            delayed: k.delayed(config.role.source()),
            dlq: k.dead_letter_queue(config.role).to_owned(),
            output: config.role.output().map(|q| k.queue(q).to_owned()),
            leases: lease_tokens(k, config.role),
            redelivered: tracks_redeliveries(config.role).then(|| k.redelivered(config.role)),
        };
        let consumer = Self {
            queue,
            config,
            keys,
            blocking: None,
            settling: None,
            held: None,
            dirty: false,
            native_moves: false,
            stop: CancellationToken::new(),
        };
        // Heartbeat first, so no other worker's janitor takes this worker's list from now on.
        write_heartbeat(&mut consumer.queue.connection(), &consumer.keys.heartbeat, consumer.config.heartbeat_ttl)
            .await?;
        redis::cmd("SADD")
            .arg(consumer.queue.keys().workers(consumer.config.role))
            .arg(pod)
            .query_async::<()>(&mut consumer.queue.connection())
            .await
            .map_err(redis_err("registering the worker"))?;
        // Whatever a previous process with this pod name left leased is ours to hand back.
        let mine = consumer.hand_back(true).await?;
        if mine > 0 {
            tracing::info!(pod, moved = mine, "handed back messages left leased by this pod's previous run");
        }
        consumer.recover_dead_workers().await?;
        consumer.spawn_tasks();
        Ok(consumer)
    }

    fn spawn_tasks(&self) {
        let (conn, stop) = (self.queue.connection(), self.stop.clone());
        let (key, ttl) = (self.keys.heartbeat.clone(), self.config.heartbeat_ttl);
        let c = conn.clone();
        // The heartbeat was written and the janitor run by `start`.
        spawn_every(
            "heartbeat refresh",
            self.config.heartbeat_interval,
            FirstRun::AfterInterval,
            stop.clone(),
            move || {
                let (mut c, key) = (c.clone(), key.clone());
                async move { write_heartbeat(&mut c, &key, ttl).await }
            },
        );
        let janitor = Arc::new(self.janitor(false));
        spawn_every("janitor run", self.config.janitor_interval, FirstRun::AfterInterval, stop.clone(), move || {
            let janitor = janitor.clone();
            async move { janitor.run().await.map(|_| ()) }
        });
        let keys = Arc::new(self.keys.clone());
        spawn_every("moving due retries", self.config.delayed_poll_interval, FirstRun::Now, stop, move || {
            let (mut c, keys) = (conn.clone(), keys.clone());
            async move {
                while move_due(&mut c, &keys).await? == MOVE_DUE_CHUNK {}
                Ok::<_, QueueError>(())
            }
        });
    }

    fn janitor(&self, deep: bool) -> Janitor {
        Janitor {
            queue: self.queue.clone(),
            deep,
            max_crashes: self.config.max_crashes,
            metrics: self.config.metrics.clone(),
            role: self.config.role,
            own_pod: self.config.pod.as_ref().to_owned(),
            source: self.keys.source.clone(),
        }
    }

    /// Moves this worker's own processing list back to the source; `crashed` when it is what a
    /// previous process under this pod name died holding.
    async fn hand_back(&self, crashed: bool) -> Result<u64, QueueError> {
        let mut c = self.queue.connection();
        let crashes = self.queue.keys().crashes(self.config.role);
        let how = Recovery {
            check_heartbeat: false,
            owner_crashed: crashed,
            dlq: &self.keys.dlq,
            crashes: &crashes,
            max_crashes: self.config.max_crashes,
            leases: &self.keys.leases,
            pod: self.config.pod.as_ref(),
            redelivered: self.keys.redelivered.as_deref(),
            source_events: &self.keys.source_events,
        };
        Ok(recover_list(&mut c, &self.keys.processing, &self.keys.heartbeat, &self.keys.source, how)
            .await?
            .unwrap_or(0))
    }

    /// The one-call lease: the script pops elements carrying up to `max` events into the
    /// processing list, which must hold `already` elements (it refuses otherwise: `None`;
    /// `already_events` is what the one there carries), and records `token`. Returns the
    /// elements popped and, when the role tracks them, one redelivery flag per element of the
    /// lease (the `already` one first).
    async fn lease_moving(
        &self,
        max: usize,
        (already, already_events): (usize, usize),
        token: u64,
    ) -> Result<Option<(Vec<Vec<u8>>, Vec<bool>)>, QueueError> {
        let mut c = self.queue.connection();
        let reply: Option<(Vec<Vec<u8>>, String)> = self
            .lease_call(&scripts::LEASE_MOVING, (max, already), token)
            .arg(already_events)
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("leasing messages"))?;
        Ok(reply.map(|(messages, flags)| (messages, redelivery_flags(&flags))))
    }

    /// Records `token` as the lease of the `moved` elements (carrying `events`) the processing
    /// list must hold (the script refuses otherwise: `None`). Returns, when the role tracks
    /// them, one redelivery flag per element, oldest first.
    async fn complete_lease(&self, moved: usize, events: usize, token: u64) -> Result<Option<Vec<bool>>, QueueError> {
        let mut c = self.queue.connection();
        let flags: Option<String> = self
            .lease_call(&scripts::LEASE, (moved, events), token)
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("leasing messages"))?;
        Ok(flags.as_deref().map(redelivery_flags))
    }

    /// A lease script's call with what both take: its five keys, then the two counts, the pod,
    /// `token` and whether the role tracks redeliveries.
    fn lease_call<'s>(
        &self,
        script: &'s redis::Script,
        (first, second): (usize, usize),
        token: u64,
    ) -> redis::ScriptInvocation<'s> {
        let mut inv = script.prepare_invoke();
        inv.key(&self.keys.source)
            .key(&self.keys.processing)
            .key(&self.keys.leases)
            // Any key of the role when it does not track (the script does not touch it then).
            .key(self.keys.redelivered.as_deref().unwrap_or(&self.keys.leases))
            .key(&self.keys.source_events)
            .arg(first)
            .arg(second)
            .arg(self.config.pod.as_ref())
            .arg(token_text(token))
            .arg(if self.keys.redelivered.is_some() { "1" } else { "0" });
        inv
    }

    /// Moves more elements behind `elements` (the lease so far, oldest first, `events` events)
    /// until they carry `max` events or the source is empty, each by a native `LMOVE`; as many
    /// as should fit, judging by the last one's size, go in one round trip, and none when one
    /// that size would not fit (envelopes of a batch each come in similar sizes). What goes past
    /// `max` (the newest, at the processing list's head) moves back to the source's front the
    /// same way, never the first element (it is taken whatever its size, so none is stuck).
    async fn take_more(
        &self,
        elements: &mut Vec<Vec<u8>>,
        mut events: usize,
        max: usize,
        mut left: Option<usize>,
    ) -> Result<usize, QueueError> {
        let mut c = self.queue.connection();
        while events < max {
            let last = elements.last().map_or(1, |e| envelope::count(e)).max(1);
            let fit = ((max - events) / last).min(MAX_LEASE);
            if fit == 0 {
                break;
            }
            // Never more moves than elements: a near-empty queue would answer most with nil.
            let left_now = match left {
                Some(n) => n,
                None => redis::cmd("LLEN")
                    .arg(&self.keys.source)
                    .query_async(&mut c)
                    .await
                    .map_err(redis_err("leasing messages (LLEN)"))?,
            };
            let n = fit.min(left_now);
            if n == 0 {
                break;
            }
            let mut pipe = redis::pipe();
            for _ in 0..n {
                pipe.cmd("LMOVE").arg(&self.keys.source).arg(&self.keys.processing).arg("RIGHT").arg("LEFT");
            }
            pipe.cmd("LLEN").arg(&self.keys.source);
            let mut replies: Vec<redis::Value> =
                pipe.query_async(&mut c).await.map_err(redis_err("leasing messages (LMOVE)"))?;
            let unexpected =
                |v: &redis::Value| QueueError::Protocol(format!("unexpected reply to a lease move: {v:?}"));
            left = match replies.pop() {
                Some(redis::Value::Int(n)) => Some(usize::try_from(n).unwrap_or(0)),
                other => return Err(unexpected(&other.unwrap_or(redis::Value::Nil))),
            };
            let mut empty = false;
            for v in replies {
                match v {
                    redis::Value::BulkString(e) => {
                        events += envelope::count(&e);
                        elements.push(e);
                    }
                    redis::Value::Nil => empty = true,
                    other => return Err(unexpected(&other)),
                }
            }
            if empty {
                break;
            }
        }
        let mut back = 0;
        while events > max && elements.len() - back > 1 {
            back += 1;
            events -= envelope::count(&elements[elements.len() - back]);
        }
        if back > 0 {
            let mut pipe = redis::pipe();
            for _ in 0..back {
                pipe.cmd("LMOVE").arg(&self.keys.processing).arg(&self.keys.source).arg("LEFT").arg("RIGHT");
            }
            let returned: Vec<Option<Vec<u8>>> =
                pipe.query_async(&mut c).await.map_err(redis_err("returning what did not fit (LMOVE)"))?;
            // Newest first: each must be the element this lease moved last.
            for r in returned {
                if r.as_ref() != elements.last() {
                    return Err(QueueError::Protocol("the processing list changed during a lease".into()));
                }
                elements.pop();
            }
        }
        Ok(events)
    }

    /// Hands back what an unsettled lease or a failed lease call left in the processing list.
    async fn hand_back_unsettled(&mut self) -> Result<(), QueueError> {
        let moved = self.hand_back(false).await?;
        if moved > 0 {
            tracing::warn!(list = %self.keys.processing, moved, "handed back an unsettled lease before leasing again");
        }
        self.held = None;
        self.dirty = false;
        Ok(())
    }

    /// Moves the source's front element into the processing list with a native `LMOVE`, without
    /// waiting; with it, how many elements the source holds after it.
    async fn move_front(&self) -> Result<(Option<Vec<u8>>, usize), QueueError> {
        let mut c = self.queue.connection();
        redis::pipe()
            .cmd("LMOVE")
            .arg(&self.keys.source)
            .arg(&self.keys.processing)
            .arg("RIGHT")
            .arg("LEFT")
            .cmd("LLEN")
            .arg(&self.keys.source)
            .query_async(&mut c)
            .await
            .map_err(redis_err("leasing messages (LMOVE)"))
    }

    /// A lease call failed: its reply may have been lost after it moved messages, so the
    /// processing list is handed back before the next lease.
    fn failed_call<T>(&mut self, e: QueueError) -> Result<T, QueueError> {
        self.dirty = true;
        Err(e)
    }

    /// The settle as one script call (see `scripts::SETTLE`); whether it applied.
    async fn settle_by_script(
        &self,
        lease: &Lease,
        output: &str,
        (emit, put_back): (&[Vec<u8>], &[Vec<u8>]),
        s: &Settlement,
    ) -> Result<bool, QueueError> {
        let mut inv = scripts::SETTLE.prepare_invoke();
        inv.key(&self.keys.processing)
            .key(&self.keys.source)
            .key(&self.keys.delayed)
            .key(&self.keys.dlq)
            .key(output)
            .key(&self.keys.leases)
            .key(&self.keys.source_events)
            .key(self.keys.output_events.as_deref().unwrap_or(&self.keys.source_events))
            .arg(self.config.pod.as_ref())
            .arg(token_text(lease.token()));
        inv.arg(lease.leased_elements()).arg(emit.len()).arg(put_back.len()).arg(s.delayed.len()).arg(s.dead.len());
        for m in emit.iter().chain(put_back) {
            inv.arg(m.as_slice());
        }
        for (m, delay) in &s.delayed {
            inv.arg(delay.as_millis() as u64).arg(m.as_slice());
        }
        for m in &s.dead {
            inv.arg(m.as_slice());
        }
        let mut c = self.queue.connection();
        // On an error the token stays held: the caller retries, or the next lease hands it back.
        let applied: i64 = inv.invoke_async(&mut c).await.map_err(redis_err("settling a lease"))?;
        Ok(applied != 0)
    }

    /// The settle without a script, for settlements of large messages (an alerter's envelope
    /// of 50 alerts is ~80 KB): a script hashes every byte passed to it (Lua interns strings),
    /// native commands only copy them. The script's lease check becomes an optimistic
    /// transaction on a connection of its own: `WATCH` the processing list and read the
    /// lease's token, then `MULTI` … `EXEC`. A janitor or hand-back that takes the lease in
    /// between changes the list, so `EXEC` writes nothing and the check runs again (and finds
    /// the token gone). One more round trip than the script. Whether it applied.
    async fn settle_natively(&mut self, s: &NativeSettle<'_>) -> Result<bool, QueueError> {
        let mut conn = match self.settling.take() {
            Some(c) => c,
            None => self.queue.blocking_connection().await?,
        };
        let pod = self.config.pod.as_ref();
        match tokio::time::timeout(RESPONSE_TIMEOUT, settle_watched(&mut conn, &self.keys, pod, s)).await {
            // The connection is kept only after a clean exchange: after an error or a timeout
            // it may still hold a WATCH or an open MULTI.
            Ok(Ok(applied)) => {
                self.settling = Some(conn);
                Ok(applied)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(QueueError::Redis {
                context: "settling a lease (MULTI/EXEC)",
                source: redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no reply within the response timeout",
                )),
            }),
        }
    }

    async fn block_for_one(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, QueueError> {
        if self.blocking.is_none() {
            self.blocking = Some(self.queue.blocking_connection().await?);
        }
        let Some(conn) = self.blocking.as_mut() else {
            return Ok(None);
        };
        // BLMOVE's timeout 0 means "forever"; keep a floor so shutdown stays prompt.
        let secs = wait.as_secs_f64().max(0.01);
        let mut cmd = redis::cmd("BLMOVE");
        cmd.arg(&self.keys.source).arg(&self.keys.processing).arg("RIGHT").arg("LEFT").arg(secs);
        let call = cmd.query_async::<Option<Vec<u8>>>(conn);
        let result = match tokio::time::timeout(wait + BLOCKING_MARGIN, call).await {
            Ok(r) => r,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no reply to BLMOVE within its wait plus the margin",
            ))),
        };
        result.map_err(|e| {
            self.blocking = None;
            QueueError::Redis { context: "waiting for messages (BLMOVE)", source: e }
        })
    }
}

/// What a native settle writes (see [`RedisConsumer::settle_natively`]): the lease's token and
/// element count, and the elements to push.
struct NativeSettle<'a> {
    token: String,
    leased: usize,
    output: &'a str,
    emit: Vec<Vec<u8>>,
    put_back: Vec<Vec<u8>>,
    dead: &'a [Vec<u8>],
}

/// How many times a native settle starts over when the processing list changed between its
/// check and its write. A recovery makes the next check fail; only an element that this
/// worker's own given-up BLMOVE delivered late makes it write again.
const NATIVE_SETTLE_ATTEMPTS: usize = 5;

/// The transaction of [`RedisConsumer::settle_natively`], with the same effects and checks as
/// `scripts::SETTLE` (which `mutt_queue`'s conformance suite runs both ways).
async fn settle_watched(
    c: &mut AnyConnection,
    keys: &Keys,
    pod: &str,
    s: &NativeSettle<'_>,
) -> Result<bool, QueueError> {
    let ours = Some(s.token.as_str());
    for _ in 0..NATIVE_SETTLE_ATTEMPTS {
        let (len, held): (usize, Option<String>) = redis::pipe()
            .cmd("WATCH")
            .arg(&keys.processing)
            .ignore()
            .cmd("LLEN")
            .arg(&keys.processing)
            .cmd("HGET")
            .arg(&keys.leases)
            .arg(pod)
            .query_async(c)
            .await
            .map_err(redis_err("settling a lease (WATCH)"))?;
        if held.as_deref() != ours || len == 0 {
            let mut p = redis::pipe();
            p.cmd("UNWATCH").ignore();
            // As the script: a lease whose list is gone is over, whatever its token says.
            if held.as_deref() == ours {
                p.cmd("HDEL").arg(&keys.leases).arg(pod).ignore();
            }
            p.query_async::<()>(c).await.map_err(redis_err("settling a lease (UNWATCH)"))?;
            return Ok(false);
        }
        let mut tx = redis::pipe();
        tx.atomic();
        tx.cmd("HDEL").arg(&keys.leases).arg(pod);
        if s.leased >= len {
            tx.cmd("DEL").arg(&keys.processing);
        } else {
            tx.cmd("LTRIM").arg(&keys.processing).arg(0).arg(-(s.leased as i64) - 1);
        }
        let output_events = keys.output_events.as_deref().unwrap_or(&keys.source_events);
        push_counted(&mut tx, "LPUSH", (s.output, output_events), &s.emit);
        push_counted(&mut tx, "RPUSH", (&keys.source, &keys.source_events), &s.put_back);
        if !s.dead.is_empty() {
            let cmd = tx.cmd("LPUSH").arg(&keys.dlq);
            for m in s.dead {
                cmd.arg(m.as_slice());
            }
        }
        let replies: Option<Vec<redis::Value>> =
            tx.query_async(c).await.map_err(redis_err("settling a lease (MULTI/EXEC)"))?;
        let Some(replies) = replies else {
            continue; // the list changed after WATCH: check again
        };
        if let Some(e) = replies.iter().find(|v| matches!(v, redis::Value::ServerError(_))) {
            return Err(QueueError::Protocol(format!("a settle's command failed: {e:?}")));
        }
        return Ok(true);
    }
    Err(QueueError::Protocol("the processing list kept changing while settling".into()))
}

/// Adds to `tx` the push of `elements` to `list` and the count of their events to `counter`.
fn push_counted(tx: &mut redis::Pipeline, command: &str, (list, counter): (&str, &str), elements: &[Vec<u8>]) {
    if elements.is_empty() {
        return;
    }
    let cmd = tx.cmd(command).arg(list);
    for m in elements {
        cmd.arg(m.as_slice());
    }
    tx.cmd("INCRBY").arg(counter).arg(elements.iter().map(|e| envelope::count(e)).sum::<usize>());
}

impl Drop for RedisConsumer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn write_heartbeat(c: &mut AnyConnection, key: &str, ttl: Duration) -> Result<(), QueueError> {
    redis::cmd("SET")
        .arg(key)
        .arg("alive")
        .arg("EX")
        .arg(ttl.as_secs().max(1))
        .query_async::<()>(c)
        .await
        .map_err(redis_err("writing heartbeat"))
}

async fn move_due(c: &mut AnyConnection, keys: &Keys) -> Result<usize, QueueError> {
    scripts::MOVE_DUE
        .key(&keys.delayed)
        .key(&keys.source)
        .key(&keys.source_events)
        .arg(MOVE_DUE_CHUNK)
        .invoke_async(c)
        .await
        .map_err(redis_err("moving due retries"))
}

/// How a processing list is being recovered.
#[derive(Clone, Copy)]
struct Recovery<'a> {
    /// Only if the owner's heartbeat is gone (janitor), or unconditionally (own list).
    check_heartbeat: bool,
    /// The owner died holding the messages (count towards poison), or handed them back.
    owner_crashed: bool,
    dlq: &'a str,
    crashes: &'a str,
    max_crashes: u32,
    /// The lease tokens hash and the owner's field in it (removed with the list).
    leases: &'a str,
    pod: &'a str,
    /// Where recovered messages are counted as redeliveries, for a role that tracks them.
    redelivered: Option<&'a str>,
    /// The source's event counter.
    source_events: &'a str,
}

/// A lease script's redelivery flags ('1' or '0' per element) as booleans.
fn redelivery_flags(flags: &str) -> Vec<bool> {
    flags.bytes().map(|f| f == b'1').collect()
}

/// The lease of `elements`: their messages (an envelope's events; see [`envelope`]), each with
/// its element's redelivery flag, and how many elements the settle removes.
fn unpacked_lease(elements: Vec<Vec<u8>>, flags: Vec<bool>, token: u64) -> Lease {
    if elements.iter().all(|e| envelope::count(e) == 1) {
        return Lease::with_token(elements, token).with_redeliveries(flags);
    }
    let count = elements.len();
    let (mut messages, mut per_message) = (Vec::new(), Vec::new());
    for (i, e) in elements.into_iter().enumerate() {
        envelope::unpack_into(e, &mut messages);
        if let Some(f) = flags.get(i) {
            per_message.resize(messages.len(), *f);
        }
    }
    let lease = Lease::with_token(messages, token).with_elements(count);
    if flags.is_empty() { lease } else { lease.with_redeliveries(per_message) }
}

/// The hash of a role's lease tokens: `<workers_prefix>:<role>:leases`.
fn lease_tokens(keys: &super::KeySpace, role: WorkerRole) -> String {
    format!("{}:leases", keys.workers(role))
}

fn token_text(token: u64) -> String {
    format!("{token:016x}")
}

/// Moves a processing list back to its source in chunks; `check_heartbeat` makes each chunk
/// conditional on the owner being dead. Returns the count moved, `None` if the owner is alive.
async fn recover_list(
    c: &mut AnyConnection,
    list: &str,
    heartbeat: &str,
    source: &str,
    how: Recovery<'_>,
) -> Result<Option<u64>, QueueError> {
    let mut total = 0u64;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    loop {
        let moved: i64 = scripts::RECOVER
            .key(list)
            .key(heartbeat)
            .key(source)
            .key(how.dlq)
            .key(how.crashes)
            .key(how.leases)
            .key(how.redelivered.unwrap_or(how.leases))
            .key(how.source_events)
            .arg(if how.check_heartbeat { "1" } else { "0" })
            .arg(RECOVER_CHUNK)
            .arg(if how.owner_crashed { "1" } else { "0" })
            .arg(how.max_crashes)
            .arg(&now)
            .arg(how.pod)
            .arg(if how.redelivered.is_some() { "1" } else { "0" })
            .invoke_async(c)
            .await
            .map_err(redis_err("recovering a processing list"))?;
        if moved < 0 {
            return Ok(None);
        }
        total += moved as u64;
        if (moved as usize) < RECOVER_CHUNK {
            return Ok(Some(total));
        }
    }
}

/// Finds processing lists of `role` whose owner's heartbeat is gone and moves their messages
/// back to the source queue.
struct Janitor {
    queue: RedisQueue,
    /// SCAN the keyspace too (at start), or only the worker registry (periodic runs).
    deep: bool,
    max_crashes: u32,
    metrics: crate::QueueMetrics,
    role: WorkerRole,
    own_pod: String,
    source: String,
}

impl Janitor {
    async fn run(&self) -> Result<u64, QueueError> {
        let keys = self.queue.keys();
        let mut c = self.queue.connection();
        let mut total = 0;
        for pod in self.queue.known_pods(self.role, self.deep).await? {
            if pod == self.own_pod {
                continue;
            }
            let list = keys.processing_list(self.role, &pod);
            let heartbeat = keys.heartbeat(self.role, &pod);
            let (crashes, leases) = (keys.crashes(self.role), lease_tokens(keys, self.role));
            let redelivered = tracks_redeliveries(self.role).then(|| keys.redelivered(self.role));
            let source_events = keys.events(self.role.source());
            let how = Recovery {
                check_heartbeat: true,
                owner_crashed: true,
                dlq: keys.dead_letter_queue(self.role),
                crashes: &crashes,
                max_crashes: self.max_crashes,
                leases: &leases,
                pod: &pod,
                redelivered: redelivered.as_deref(),
                source_events: &source_events,
            };
            let Some(moved) = recover_list(&mut c, &list, &heartbeat, &self.source, how).await? else {
                continue;
            };
            if moved > 0 {
                tracing::warn!(list = %list, moved, "janitor: recovered messages of a dead worker");
            }
            total += moved;
            // The dead worker's list is empty now: forget it.
            redis::cmd("SREM")
                .arg(keys.workers(self.role))
                .arg(&pod)
                .query_async::<()>(&mut c)
                .await
                .map_err(redis_err("updating the worker registry"))?;
        }
        self.metrics.recovered(self.role, total);
        Ok(total)
    }
}

#[async_trait]
impl Consumer for RedisConsumer {
    fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    async fn lease(&mut self, max: usize, wait: Duration) -> Result<Option<Lease>, QueueError> {
        let max = max.clamp(1, MAX_LEASE);
        if self.held.is_some() || self.dirty {
            self.hand_back_unsettled().await?;
        }
        let token = rand::random::<u64>() | 1;
        // Small elements: one script call pops them. Envelopes of many events: they move
        // natively (their bytes never enter Lua) and the script then checks that the
        // processing list holds exactly them and records the token. Either way the first
        // element is waited for by BLMOVE when there is none. A processing list that held
        // something already (a crash of this code between two calls, or a given-up BLMOVE
        // landing late) is handed back and the lease tried once more.
        for attempt in 0..2 {
            let mut fronted = None;
            if self.native_moves {
                match self.move_front().await {
                    Ok((Some(m), left)) => fronted = Some((m, Some(left))),
                    Ok((None, _)) => {}
                    Err(e) => return self.failed_call(e),
                }
            } else {
                match self.lease_moving(max, (0, 0), token).await {
                    Ok(Some((elements, flags))) if !elements.is_empty() => {
                        self.native_moves = envelope::count(&elements[0]) >= NATIVE_FROM;
                        self.held = Some(token);
                        return Ok(Some(unpacked_lease(elements, flags, token)));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) if attempt == 0 => {
                        self.hand_back_unsettled().await?;
                        continue;
                    }
                    Ok(None) => break,
                    Err(e) => return self.failed_call(e),
                }
            }
            let (first, left) = match fronted {
                Some(f) => f,
                None => match self.block_for_one(wait).await {
                    Ok(Some(m)) => (m, None),
                    Ok(None) => return Ok(None),
                    Err(e) => return self.failed_call(e),
                },
            };
            let first_events = envelope::count(&first);
            self.native_moves = first_events >= NATIVE_FROM;
            let mut elements = vec![first];
            let taken = if self.native_moves {
                match self.take_more(&mut elements, first_events, max, left).await {
                    Ok(events) => self.complete_lease(elements.len(), events, token).await,
                    Err(e) => Err(e),
                }
            } else {
                match self.lease_moving(max.saturating_sub(first_events), (1, first_events), token).await {
                    Ok(Some((more, flags))) => {
                        elements.extend(more);
                        Ok(Some(flags))
                    }
                    other => other.map(|_| None),
                }
            };
            match taken {
                Ok(Some(redelivered)) => {
                    self.held = Some(token);
                    return Ok(Some(unpacked_lease(elements, redelivered, token)));
                }
                Ok(None) if attempt == 0 => self.hand_back_unsettled().await?,
                Ok(None) => {}
                Err(e) => return self.failed_call(e),
            }
        }
        self.failed_call(QueueError::Protocol("the processing list is not empty after handing it back".into()))
    }

    async fn settle(&mut self, lease: &Lease, s: &Settlement) -> Result<(), QueueError> {
        if lease.is_empty() {
            return Ok(());
        }
        let output = match (&self.keys.output, s.emit.is_empty()) {
            (Some(o), _) => o.as_str(),
            (None, true) => self.keys.source.as_str(), // unused by the script
            (None, false) => {
                return Err(QueueError::Config(format!("role {:?} has no output queue", self.config.role)));
            }
        };
        let (emit, put_back) = (self.queue.pack(&s.emit), self.queue.pack(&s.put_back));
        let leased = lease.leased_elements();
        let bytes: usize = emit.iter().chain(&put_back).chain(&s.dead).map(Vec::len).sum();
        let applied = if s.delayed.is_empty() && self.queue.settles_natively(bytes) {
            let output = output.to_owned();
            let native = NativeSettle {
                token: token_text(lease.token()),
                leased,
                output: &output,
                emit,
                put_back,
                dead: &s.dead,
            };
            self.settle_natively(&native).await?
        } else {
            self.settle_by_script(lease, output, (&emit, &put_back), s).await?
        };
        if self.held == Some(lease.token()) {
            self.held = None;
        }
        if !applied {
            tracing::warn!(
                list = %self.keys.processing,
                events = lease.len(),
                event_ids = crate::log_ids::first_event_ids(&lease.messages),
                "lease was no longer held (already settled, handed back, or recovered by a janitor)"
            );
        }
        Ok(())
    }

    async fn release(&mut self) -> Result<u64, QueueError> {
        let moved = self.hand_back(false).await?;
        self.held = None;
        self.dirty = false;
        Ok(moved)
    }

    async fn recover_dead_workers(&self) -> Result<u64, QueueError> {
        self.janitor(true).run().await
    }

    async fn shutdown(&mut self) -> Result<(), QueueError> {
        self.stop.cancel();
        let moved = self.release().await?;
        if moved > 0 {
            tracing::info!(moved, "handed leased messages back at shutdown");
        }
        let mut c = self.queue.connection();
        redis::cmd("SREM")
            .arg(self.queue.keys().workers(self.config.role))
            .arg(self.config.pod.as_ref())
            .query_async::<()>(&mut c)
            .await
            .map_err(redis_err("unregistering the worker"))?;
        redis::cmd("DEL")
            .arg(&self.keys.heartbeat)
            .query_async::<()>(&mut c)
            .await
            .map_err(redis_err("removing heartbeat"))
    }
}
