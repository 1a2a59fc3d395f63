//! Coalesced pushes: the events of concurrent submissions go to the ingest queue in one
//! [`Queue::push_ingest`] call instead of one each.
//!
//! A submission hands its messages to one task per [`crate::Ingest`] with the queue limit in
//! force and waits for the answer. The task takes whatever is waiting when it is free (no
//! delay: a lone request is pushed at once; while a push is in flight the next requests gather
//! behind it), checks backpressure once for all of them, pushes them in one call and answers
//! each: the new depth once its events are in the queue, or the one push's error, so a failed
//! push fails exactly the submissions that were in it. Each submission's events stay together
//! and in order.
//!
//! Backpressure reads the depth the last push returned (or the last `LLEN`) while it is younger
//! than [`DEPTH_FRESH`] and below the limit, and asks the queue otherwise: under load the depth
//! check costs no command, and a queue at its limit is read again every time, so room is seen
//! at once. Submissions checked together may overshoot the limit by what they carry, as
//! concurrent requests could before (and in the original).

use mutt_queue::{Queue, QueueError, QueueId};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most events one coalesced push carries; a larger submission is pushed alone, as before.
const MAX_EVENTS: usize = 1_000;
/// Most bytes one coalesced push carries; a larger submission is pushed alone.
const MAX_BYTES: usize = 4 << 20;
/// How long a depth below the limit stands in for a new read: other producers (other
/// ingestors, replays) may add this long's worth of events past the limit.
pub const DEPTH_FRESH: Duration = Duration::from_millis(5);

/// Why a submission's events were not pushed.
#[derive(Debug)]
pub(crate) enum PushError {
    /// At the limit: the depth seen and the limit in force.
    Full { depth: u64, limit: u64 },
    /// The depth read or the push failed (shared by every submission of that push).
    Unavailable(Arc<QueueError>),
}

type Reply = Result<u64, PushError>;

struct Job {
    messages: Vec<Vec<u8>>,
    limit: u64,
    reply: oneshot::Sender<Reply>,
}

/// The handle submissions push through; the task starts with the first push (inside the
/// runtime) and ends when the last handle is dropped.
pub(crate) struct Pusher {
    queue: Arc<dyn Queue>,
    tx: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl Pusher {
    pub(crate) fn new(queue: Arc<dyn Queue>) -> Self {
        Self { queue, tx: OnceLock::new() }
    }

    /// Pushes `messages` unless the queue holds `limit` or more; the depth after the push.
    pub(crate) async fn push(&self, messages: Vec<Vec<u8>>, limit: u64) -> Reply {
        let tx = self.tx.get_or_init(|| {
            // Unbounded: each waiting submission holds at most one job, so the requests in
            // flight bound it.
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.queue.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = tx.send(Job { messages, limit, reply }) {
            // The task is gone (its runtime shut down): push alone, as before coalescing.
            let mut cache = DepthCache::default();
            return push_alone(self.queue.as_ref(), &mut cache, job.messages, job.limit).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(PushError::Unavailable(Arc::new(QueueError::Protocol("the ingest push task stopped".into()))))
        })
    }
}

/// The last depth known and when it was learnt.
#[derive(Default)]
struct DepthCache {
    depth: u64,
    at: Option<Instant>,
}

impl DepthCache {
    fn set(&mut self, depth: u64) {
        *self = Self { depth, at: Some(Instant::now()) };
    }

    /// The depth to check against `limit`: the cached one while fresh and below it, else read.
    async fn current(&mut self, queue: &dyn Queue, limit: u64) -> Result<u64, QueueError> {
        if self.at.is_some_and(|t| t.elapsed() < DEPTH_FRESH) && self.depth < limit {
            return Ok(self.depth);
        }
        let depth = queue.depth(QueueId::Ingest).await?;
        self.set(depth);
        Ok(depth)
    }
}

async fn push_alone(queue: &dyn Queue, cache: &mut DepthCache, messages: Vec<Vec<u8>>, limit: u64) -> Reply {
    let depth = cache.current(queue, limit).await.map_err(|e| PushError::Unavailable(Arc::new(e)))?;
    if depth >= limit {
        return Err(PushError::Full { depth, limit });
    }
    queue.push_ingest(&messages, chrono::Utc::now()).await.map_err(|e| PushError::Unavailable(Arc::new(e)))
}

async fn run(queue: Arc<dyn Queue>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut cache = DepthCache::default();
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let (mut events, mut bytes) = size(&first);
        let mut jobs = vec![first];
        while let Ok(job) = rx.try_recv() {
            let (e, b) = size(&job);
            if events + e > MAX_EVENTS || bytes + b > MAX_BYTES {
                carried = Some(job);
                break;
            }
            (events, bytes) = (events + e, bytes + b);
            jobs.push(job);
        }
        round(queue.as_ref(), &mut cache, jobs).await;
    }
}

fn size(job: &Job) -> (usize, usize) {
    (job.messages.len(), job.messages.iter().map(Vec::len).sum())
}

/// One depth check and one push for the jobs taken together.
async fn round(queue: &dyn Queue, cache: &mut DepthCache, jobs: Vec<Job>) {
    let lowest = jobs.iter().map(|j| j.limit).min().unwrap_or(u64::MAX);
    let depth = match cache.current(queue, lowest).await {
        Ok(d) => d,
        Err(e) => return fail(jobs, Arc::new(e)),
    };
    let mut messages = Vec::new();
    let mut pushed = Vec::with_capacity(jobs.len());
    for job in jobs {
        if depth >= job.limit {
            let _ = job.reply.send(Err(PushError::Full { depth, limit: job.limit }));
        } else {
            messages.extend(job.messages);
            pushed.push(job.reply);
        }
    }
    if pushed.is_empty() {
        return;
    }
    match queue.push_ingest(&messages, chrono::Utc::now()).await {
        Ok(depth) => {
            cache.set(depth);
            // A submission whose request was dropped meanwhile has nobody to answer.
            for reply in pushed {
                let _ = reply.send(Ok(depth));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for reply in pushed {
                let _ = reply.send(Err(PushError::Unavailable(e.clone())));
            }
        }
    }
}

fn fail(jobs: Vec<Job>, e: Arc<QueueError>) {
    for job in jobs {
        let _ = job.reply.send(Err(PushError::Unavailable(e.clone())));
    }
}
