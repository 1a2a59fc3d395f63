//! Coalesced rate-limit checks: concurrent requests asking the same shared limit (the
//! ingestor's `ingest_max_rate`, a key's own budget) take their slots in one
//! [`Coordination::rate_limit_take`] call instead of one each.
//!
//! The decisions are the ones separate calls would have got: a call for `n` slots grants what
//! is free now, so of `n` requests checked together the first `granted` are admitted and the
//! rest refused with the limit's `retry_after`, as if they had reached the backend just after
//! the admitted ones. As with [`crate::pusher`], a lone request is checked at once; requests
//! arriving while a check is in flight gather behind it. An error reaches every request of the
//! call (each fails open, as before).

use mutt_queue::{Coordination, QueueError, RateDecision};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most requests one call decides.
const MAX_ASKS: usize = 1_000;

type Answer = Result<RateDecision, Arc<QueueError>>;

/// One limit: the bucket's name, its limit and window.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bucket {
    name: String,
    limit: u64,
    window: Duration,
}

struct Ask {
    bucket: Bucket,
    reply: oneshot::Sender<Answer>,
}

/// The handle requests ask through; the task starts with the first ask (inside the runtime)
/// and ends when the last handle is dropped.
pub(crate) struct Admitter {
    coordination: Arc<dyn Coordination>,
    tx: OnceLock<mpsc::UnboundedSender<Ask>>,
}

impl Admitter {
    pub(crate) fn new(coordination: Arc<dyn Coordination>) -> Self {
        Self { coordination, tx: OnceLock::new() }
    }

    /// Takes one slot of the shared limit `name` (`limit` per `window`).
    pub(crate) async fn rate_limit(&self, name: &str, limit: u64, window: Duration) -> Answer {
        let tx = self.tx.get_or_init(|| {
            // Unbounded: each waiting request holds at most one ask.
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.coordination.clone(), rx));
            tx
        });
        let bucket = Bucket { name: name.to_owned(), limit, window };
        let (reply, answer) = oneshot::channel();
        if tx.send(Ask { bucket, reply }).is_err() {
            // The task is gone (its runtime shut down): ask alone.
            return self.coordination.rate_limit(name, limit, window).await.map_err(Arc::new);
        }
        answer.await.unwrap_or_else(|_| Err(Arc::new(QueueError::Protocol("the rate-limit task stopped".into()))))
    }
}

async fn run(coordination: Arc<dyn Coordination>, mut rx: mpsc::UnboundedReceiver<Ask>) {
    while let Some(first) = rx.recv().await {
        // Asks grouped by bucket, in arrival order within each.
        let mut groups: Vec<(Bucket, Vec<oneshot::Sender<Answer>>)> = Vec::new();
        let mut taken = 0;
        let mut next = Some(first);
        while let Some(ask) = next.take() {
            match groups.iter_mut().find(|(b, _)| *b == ask.bucket) {
                Some((_, replies)) => replies.push(ask.reply),
                None => groups.push((ask.bucket, vec![ask.reply])),
            }
            taken += 1;
            if taken < MAX_ASKS {
                next = rx.try_recv().ok();
            }
        }
        for (bucket, replies) in groups {
            decide(coordination.as_ref(), &bucket, replies).await;
        }
    }
}

/// One call for the group's slots; the first `granted` requests are admitted.
async fn decide(coordination: &dyn Coordination, b: &Bucket, replies: Vec<oneshot::Sender<Answer>>) {
    let want = replies.len() as u64;
    match coordination.rate_limit_take(&b.name, b.limit, b.window, want).await {
        Ok(grant) => {
            for (i, reply) in replies.into_iter().enumerate() {
                let decision = if (i as u64) < grant.granted {
                    RateDecision::Allowed
                } else {
                    RateDecision::Limited { retry_after: grant.retry_after }
                };
                let _ = reply.send(Ok(decision));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
