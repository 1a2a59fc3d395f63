//! Flap suppression on Redis (see `crate::flap`): one hash per open window,
//! `<prefix>flap:<rule>:<host>` (fields `rule`, `host`, `window`, `until`, `count`,
//! `suppressed`, `event`, and `e:<event id>` → `f`/`s` for redeliveries), and the sorted set
//! `<prefix>flap:due` of windows that suppressed something, scored by when they close, or,
//! once claimed, by when the claim's lease expires.
//!
//! A closed window moves to `<window key>:<until>` (same hash slot under a hash-tagged
//! prefix) when the next event opens a new one or when it is claimed, whichever comes first,
//! keeping only its summary's fields and `closed`: the verdicts are needed only while the
//! window is open (a redelivery after the close counts in the next window), so a window's
//! memory grows with its events only until it closes. A claim writes its lease's end into the
//! window's `lease` field and is named `<closed key>#<lease end>`; the acknowledgement pushes
//! the summary onto the alert queue and deletes the window only while `lease` is still that
//! claim's (the alert queue shares the prefix, hence the slot). A window that held nothing
//! back expires when it closes; one that
//! did lives a day past its close or its latest claim, so that a summary survives a while
//! without any alerter.

use super::{RedisQueue, redis_err};
use crate::flap::{FlapAck, FlapEvent, FlapSummary, FlapVerdict};
use crate::{QueueError, QueueId};
use std::sync::LazyLock;
use std::time::Duration;

/// Lua shared by the scripts: the server's clock in ms, how long a window with a summary is
/// kept, and `close(src, dst, until)`, which copies a closed window's summary fields to `dst`
/// and unlinks `src` with its verdicts (freed in the background).
const FLAP_LUA_COMMON: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = 86400000
local function close(src, dst, until_ms)
  local v = redis.call('HMGET', src, 'rule', 'host', 'window', 'count', 'suppressed', 'event')
  redis.call('HSET', dst, 'rule', v[1] or '', 'host', v[2] or '', 'window', v[3] or '0', 'until', until_ms,
             'count', v[4] or '0', 'suppressed', v[5] or '0', 'event', v[6] or '', 'closed', '1')
  redis.call('PEXPIREAT', dst, math.max(until_ms, now) + keep)
  redis.call('UNLINK', src)
end
";

/// KEYS[1]: the due set; KEYS[1 + i]: event i's window. ARGV per event (6 each): rule id,
/// host, threshold, window ms, event id, event. Server time, so alerters' clocks do not
/// matter. Returns per event `f` (forward) or `s` (suppress).
static FLAP_COUNT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{FLAP_LUA_COMMON}{}",
        r"
local due = KEYS[1]
local out = {}
for i = 2, #KEYS do
  local key, a = KEYS[i], (i - 2) * 6
  local threshold, window, event = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
  local until_ms = tonumber(redis.call('HGET', key, 'until') or '0')
  if until_ms > 0 and until_ms <= now then
    if tonumber(redis.call('HGET', key, 'suppressed') or '0') > 0 then
      local closed = key .. ':' .. until_ms
      close(key, closed, until_ms)
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
"
    ))
});

/// KEYS[1]: the due set; ARGV[1]: at most this many; ARGV[2]: the lease in ms. Takes the
/// windows whose close, or whose claim's lease, has passed: each moves to its closed key (if
/// not there yet), records its new lease's end as `lease` and is scored by it, so no one else
/// gets it before then. A member whose window is gone or held nothing back is dropped.
/// Returns per window {closed key, lease end, rule, host, count, suppressed, window ms, until,
/// event}.
static FLAP_CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{FLAP_LUA_COMMON}{}",
        r"
local due, lease_end = KEYS[1], now + tonumber(ARGV[2])
local members = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, m in ipairs(members) do
  local v = redis.call('HMGET', m, 'rule', 'host', 'count', 'suppressed', 'window', 'until', 'event', 'closed')
  if v[1] and v[6] and v[7] and tonumber(v[4] or '0') > 0 then
    local claim = m
    if v[8] ~= '1' then
      claim = m .. ':' .. v[6]
      close(m, claim, tonumber(v[6]))
      redis.call('ZREM', due, m)
    else
      redis.call('PEXPIREAT', claim, lease_end + keep)
    end
    redis.call('HSET', claim, 'lease', lease_end)
    redis.call('ZADD', due, lease_end, claim)
    out[#out + 1] = {claim, lease_end, v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
  else
    redis.call('ZREM', due, m)
    redis.call('DEL', m)
  end
end
return out
"
    ))
});

/// KEYS[1]: the due set; KEYS[2]: the alert queue; ARGV per claim (3 each): closed key, lease
/// end, summary (empty: none). For each claimed window whose `lease` is still this claim's:
/// pushes the summary and deletes the window. Returns summaries pushed.
static FLAP_ACK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local pushed = 0
for i = 1, #ARGV, 3 do
  local key, lease, summary = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('TYPE', key)['ok'] == 'hash' then
    local v = redis.call('HMGET', key, 'closed', 'lease')
    if v[1] == '1' and v[2] == lease then
      if summary ~= '' then
        redis.call('LPUSH', KEYS[2], summary)
        pushed = pushed + 1
      end
      redis.call('UNLINK', key)
      redis.call('ZREM', KEYS[1], key)
    end
  end
end
return pushed
",
    )
});

impl RedisQueue {
    fn flap_key_prefix(&self) -> String {
        format!("{}flap:", self.keys.prefix)
    }

    fn flap_key(&self, rule_id: i32, hostname: &str) -> String {
        format!("{}{rule_id}:{hostname}", self.flap_key_prefix())
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

    pub(super) async fn claim_flaps(&self, limit: usize, lease: Duration) -> Result<Vec<FlapSummary>, QueueError> {
        let mut c = self.connection();
        type Row = (String, i64, String, String, u64, u64, u64, i64, Vec<u8>);
        let rows: Vec<Row> = FLAP_CLAIM
            .key(self.flap_due())
            .arg(limit.max(1))
            .arg(lease.as_millis().max(1) as u64)
            .invoke_async(&mut c)
            .await
            .map_err(redis_err("claiming closed flap windows"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, lease_end, rule, hostname, count, suppressed, window_ms, until, last_event)| {
                Some(FlapSummary {
                    claim: format!("{key}#{lease_end}"),
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

    pub(super) async fn ack_flaps(&self, acks: &[FlapAck]) -> Result<u64, QueueError> {
        let prefix = self.flap_key_prefix();
        let mut inv = FLAP_ACK.prepare_invoke();
        inv.key(self.flap_due()).key(self.keys.queue(QueueId::Alert));
        let mut any = false;
        for a in acks {
            // Only claims of flap windows: an ack cannot touch any other key.
            let Some((key, lease)) = a.claim.rsplit_once('#') else { continue };
            if !key.starts_with(&prefix) || lease.parse::<i64>().is_err() {
                continue;
            }
            inv.arg(key).arg(lease).arg(a.summary.as_deref().unwrap_or_default());
            any = true;
        }
        if !any {
            return Ok(0);
        }
        let mut c = self.connection();
        inv.invoke_async(&mut c).await.map_err(redis_err("queuing flap summaries"))
    }
}
