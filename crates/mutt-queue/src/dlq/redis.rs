//! Dead letters on Redis: the DLQs are lists, newest at the head (`LPUSH`), oldest at the
//! tail, as the original had them.

use super::{DeadLetterStore, Dlq, End, Move, RawEntry, Target};
use crate::redis::{RedisQueue, redis_err};
use crate::{QueueError, QueueId};
use async_trait::async_trait;

/// KEYS: the DLQ, then the destinations. ARGV: pairs of (old bytes, destination index, new
/// bytes) flattened as triples; index 0 drops. Removes one copy of each old entry, nearest the
/// tail (oldest) first, and pushes its new form only if it was there; returns 1/0 per move.
static TAKE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(TAKE_LUA));

const TAKE_LUA: &str = r"
local out = {}
local n = (#ARGV) / 3
for i = 0, n - 1 do
  local old, dest, new = ARGV[3*i + 1], tonumber(ARGV[3*i + 2]), ARGV[3*i + 3]
  local removed = redis.call('LREM', KEYS[1], -1, old)
  if removed > 0 and dest > 0 then redis.call('LPUSH', KEYS[dest + 1], new) end
  out[i + 1] = removed
end
return out
";

impl RedisQueue {
    fn target_key(&self, target: Target) -> Option<String> {
        match target {
            Target::Queue(q) => Some(self.keys().queue(q).to_owned()),
            Target::Dlq(d) => Some(self.keys().dlq(d).to_owned()),
            Target::Drop => None,
        }
    }
}

#[async_trait]
impl DeadLetterStore for RedisQueue {
    fn dlq_name(&self, dlq: Dlq) -> String {
        self.keys().dlq(dlq).to_owned()
    }

    fn queue_name(&self, queue: QueueId) -> String {
        self.keys().queue(queue).to_owned()
    }

    async fn dlq_depth(&self, dlq: Dlq) -> Result<u64, QueueError> {
        let mut c = self.connection();
        redis::cmd("LLEN").arg(self.keys().dlq(dlq)).query_async(&mut c).await.map_err(redis_err("reading DLQ depth"))
    }

    async fn dlq_push(&self, dlq: Dlq, entries: &[Vec<u8>]) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut c = self.connection();
        let _: u64 = redis::cmd("LPUSH")
            .arg(self.keys().dlq(dlq))
            .arg(entries)
            .query_async(&mut c)
            .await
            .map_err(redis_err("adding DLQ entries"))?;
        Ok(())
    }

    async fn dlq_range(&self, dlq: Dlq, end: End, offset: u64, count: u64) -> Result<Vec<RawEntry>, QueueError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let (offset, count) = (offset as i64, count as i64);
        // Oldest first means counting from the tail (-1) and reversing what LRANGE returns.
        let (start, stop) = match end {
            End::Newest => (offset, offset + count - 1),
            End::Oldest => (-(offset + count), -(offset + 1)),
        };
        let mut c = self.connection();
        let mut items: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.keys().dlq(dlq))
            .arg(start)
            .arg(stop)
            .query_async(&mut c)
            .await
            .map_err(redis_err("reading DLQ entries"))?;
        if end == End::Oldest {
            items.reverse();
        }
        Ok(items.into_iter().map(|body| RawEntry { handle: None, body }).collect())
    }

    async fn dlq_take(&self, dlq: Dlq, moves: &[Move]) -> Result<Vec<bool>, QueueError> {
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = vec![self.keys().dlq(dlq).to_owned()];
        let mut script = TAKE.prepare_invoke();
        for m in moves {
            let index = match self.target_key(m.target) {
                None => 0,
                Some(k) => match keys.iter().skip(1).position(|x| *x == k) {
                    Some(i) => i + 1,
                    None => {
                        keys.push(k);
                        keys.len() - 1
                    }
                },
            };
            script.arg(&m.old.body).arg(index).arg(&m.new);
        }
        for k in &keys {
            script.key(k);
        }
        let mut c = self.connection();
        let removed: Vec<i64> = script.invoke_async(&mut c).await.map_err(redis_err("moving DLQ entries"))?;
        if removed.len() != moves.len() {
            return Err(QueueError::Protocol(format!(
                "DLQ move answered {} results for {}",
                removed.len(),
                moves.len()
            )));
        }
        Ok(removed.into_iter().map(|n| n > 0).collect())
    }
}
