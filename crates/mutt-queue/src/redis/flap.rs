//! Flap suppression on Redis (see `crate::flap`): one hash per open window,
//! `<prefix>flap:<rule>:<host>` (fields `rule`, `host`, `window`, `until`, `count`,
//! `suppressed`, `event`, and `e:<event id>` → `f`/`s` for redeliveries), and the sorted set
//! `<prefix>flap:due` of windows that suppressed something, scored by when they close. A
//! closed window still waiting for its claim is renamed `<window key>:<until>` when the next
//! event opens a new one (same hash slot under a hash-tagged prefix). A window that held
//! nothing back expires when it closes; one that did lives a day past its close, so that a
//! summary survives a while without any alerter.

use super::{RedisQueue, redis_err};
use crate::QueueError;
use crate::flap::{FlapEvent, FlapSummary, FlapVerdict};
use std::sync::LazyLock;
use std::time::Duration;

/// KEYS[1]: the due set; KEYS[1 + i]: event i's window. ARGV per event (6 each): rule id,
/// host, threshold, window ms, event id, event. Server time, so alerters' clocks do not
/// matter. Returns per event `f` (forward) or `s` (suppress).
static FLAP_COUNT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due, keep = KEYS[1], 86400000
local out = {}
for i = 2, #KEYS do
  local key, a = KEYS[i], (i - 2) * 6
  local threshold, window, event = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
  local until_ms = tonumber(redis.call('HGET', key, 'until') or '0')
  if until_ms > 0 and until_ms <= now then
    if tonumber(redis.call('HGET', key, 'suppressed') or '0') > 0 then
      local closed = key .. ':' .. until_ms
      redis.call('RENAME', key, closed)
      redis.call('ZREM', due, key)
      redis.call('ZADD', due, until_ms, closed)
    else
      redis.call('DEL', key)
    end
    until_ms = 0
  end
  local verdict = redis.call('HGET', key, 'e:' .. event)
  if not verdict then
    if until_ms == 0 then
      until_ms = now + window
      redis.call('HSET', key, 'rule', ARGV[a + 1], 'host', ARGV[a + 2], 'window', window,
                 'until', until_ms, 'count', 0, 'suppressed', 0)
      redis.call('PEXPIREAT', key, until_ms)
    end
    verdict = 'f'
    if redis.call('HINCRBY', key, 'count', 1) > threshold then
      verdict = 's'
      redis.call('HINCRBY', key, 'suppressed', 1)
      redis.call('HSET', key, 'event', ARGV[a + 6])
      redis.call('ZADD', due, until_ms, key)
      redis.call('PEXPIREAT', key, until_ms + keep)
    end
    redis.call('HSET', key, 'e:' .. event, verdict)
  end
  out[#out + 1] = verdict
end
return out
",
    )
});

/// KEYS[1]: the due set; ARGV[1]: at most this many. Removes each closed window from the set
/// and deletes it in the same step, so exactly one caller gets it. Returns per window {rule,
/// host, count, suppressed, window ms, until, event}.
static FLAP_CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, m in ipairs(members) do
  redis.call('ZREM', KEYS[1], m)
  local v = redis.call('HMGET', m, 'rule', 'host', 'count', 'suppressed', 'window', 'until', 'event')
  redis.call('DEL', m)
  if v[1] and v[7] and tonumber(v[4] or '0') > 0 then
    out[#out + 1] = v
  end
end
return out
",
    )
});

impl RedisQueue {
    fn flap_key(&self, rule_id: i32, hostname: &str) -> String {
        format!("{}flap:{rule_id}:{hostname}", self.keys.prefix)
    }

    fn flap_due(&self) -> String {
        format!("{}flap:due", self.keys.prefix)
    }

    pub(super) async fn count_flaps(&self, events: &[FlapEvent]) -> Result<Vec<FlapVerdict>, QueueError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = FLAP_COUNT.prepare_invoke();
        inv.key(self.flap_due());
        for e in events {
            inv.key(self.flap_key(e.rule_id, &e.hostname));
            inv.arg(e.rule_id)
                .arg(&e.hostname)
                .arg(e.threshold.max(1))
                .arg(e.window.as_millis().max(1) as u64)
                .arg(&e.event_id)
                .arg(&e.raw);
        }
        let mut c = self.connection();
        let codes: Vec<String> = inv.invoke_async(&mut c).await.map_err(redis_err("counting flapping events"))?;
        if codes.len() != events.len() {
            return Err(QueueError::Protocol(format!(
                "flap count: {} verdicts for {} events",
                codes.len(),
                events.len()
            )));
        }
        Ok(codes.iter().map(|c| FlapVerdict::from_code(c)).collect())
    }

    pub(super) async fn claim_flaps(&self, limit: usize) -> Result<Vec<FlapSummary>, QueueError> {
        let mut c = self.connection();
        type Row = (String, String, u64, u64, u64, i64, Vec<u8>);
        let rows: Vec<Row> = FLAP_CLAIM
            .key(self.flap_due())
            .arg(limit.max(1))
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("claiming closed flap windows"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(rule, hostname, count, suppressed, window_ms, until, last_event)| {
                Some(FlapSummary {
                    rule_id: rule.parse().ok()?,
                    hostname,
                    count,
                    suppressed,
                    window: Duration::from_millis(window_ms),
                    closed_at_ms: until,
                    last_event,
                })
            })
            .collect())
    }
}
