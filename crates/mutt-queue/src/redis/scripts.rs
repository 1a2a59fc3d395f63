//! The Lua scripts of the Redis queue protocol, each one atomic on the server.
//!
//! Written by hand because no client crate implements this protocol (processing lists per
//! worker, atomic settle, janitor recovery with a heartbeat check, delayed retries).
//! List orientation, as in the original: producers `LPUSH` (left = back of the queue),
//! consumers take from the right (the front).

use std::sync::LazyLock;

/// Leases without blocking. KEYS: source queue, the worker's processing list, the role's lease
/// tokens (hash: pod -> token). ARGV: how many to move, how many the processing list holds
/// already (0, or 1 after a BLMOVE), the pod, the new lease's token.
///
/// Refuses (nil) when the processing list does not hold exactly that many: a lease never joins
/// messages leased before, whose settle could then remove the wrong ones. Otherwise moves up
/// to ARGV[1] messages from the front of the source and returns them oldest first; when the
/// list is not empty afterwards the token is recorded, so that only this lease's settle (once)
/// removes them.
pub static LEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[2]) then return false end
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not v then break end
  out[#out + 1] = v
end
if #out + tonumber(ARGV[2]) > 0 then redis.call('HSET', KEYS[3], ARGV[3], ARGV[4]) end
return out
",
    )
});

/// Settles one lease. KEYS: processing list, source queue, delayed set, DLQ, output queue,
/// lease tokens. ARGV: pod, token, counts (ack, emit, put back, delayed, dead), then the
/// messages in that order; delayed entries are (delay in ms, message) pairs.
///
/// Only the current lease's token settles, once: a settle retried after a lost reply, or one
/// whose lease was handed back or recovered by a janitor (both remove the token), does
/// nothing and returns 0, so nothing is pushed twice and no other lease's messages are
/// touched. Each leased message is removed by value (LREM from the tail, where the oldest
/// lies, so each removal finds its message first).
pub static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HGET', KEYS[6], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[6], ARGV[1])
if redis.call('LLEN', KEYS[1]) == 0 then return 0 end
local nack, nemit, nback, ndelay, ndead =
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 8
for _ = 1, nack do redis.call('LREM', KEYS[1], -1, ARGV[i]); i = i + 1 end
for _ = 1, nemit do redis.call('LPUSH', KEYS[5], ARGV[i]); i = i + 1 end
for _ = 1, nback do redis.call('RPUSH', KEYS[2], ARGV[i]); i = i + 1 end
if ndelay > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for _ = 1, ndelay do
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[i]), ARGV[i + 1]); i = i + 2
  end
end
for _ = 1, ndead do redis.call('LPUSH', KEYS[4], ARGV[i]); i = i + 1 end
return 1
",
    )
});

/// Moves up to ARGV[2] messages of a processing list (KEYS[1]) back to the front of the
/// source queue (KEYS[3]), oldest ending up first in line. With ARGV[1] = '1' it first checks
/// the owner's heartbeat (KEYS[2]) and returns -1 if the owner is alive; the check and the
/// move are one atomic step, so a worker that starts heartbeating is never robbed half-way.
///
/// With ARGV[3] = '1' the owner died holding these messages: each one's crash count (hash
/// KEYS[5], field = SHA-1 of the message, kept 24 h) goes up, and a message whose worker died
/// more than ARGV[4] times goes to the DLQ (KEYS[4]) wrapped with the reason and ARGV[5] (the
/// time), instead of killing the next worker too.
///
/// The owner's lease token (field ARGV[6] of hash KEYS[6]) goes too: a settle of the
/// recovered lease must not apply any more.
pub static RECOVER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('HDEL', KEYS[6], ARGV[6])
local count_crash, max = ARGV[3] == '1', tonumber(ARGV[4])
local n = 0
for _ = 1, tonumber(ARGV[2]) do
  local v = redis.call('LPOP', KEYS[1])
  if not v then break end
  local poisoned = false
  if count_crash then
    local id = redis.sha1hex(v)
    local crashes = redis.call('HINCRBY', KEYS[5], id, 1)
    redis.call('EXPIRE', KEYS[5], 86400)
    if crashes > max then
      poisoned = true
      redis.call('HDEL', KEYS[5], id)
      redis.call('LPUSH', KEYS[4], cjson.encode({
        _dlq_reason = 'worker_crashed',
        _dlq_error = 'the worker holding this message died ' .. crashes .. ' times',
        failed_at = ARGV[5],
        raw = v
      }))
    end
  end
  if not poisoned then redis.call('RPUSH', KEYS[3], v) end
  n = n + 1
end
return n
",
    )
});

/// The original's unhandled-event counter (spec §3.6a), for a whole batch in one call.
/// KEYS come in pairs (counter, triggered); ARGV: threshold, expiry seconds, then one event id
/// per pair. Returns 1 for the pair whose count reached the threshold. Deviation: the
/// triggered key holds the triggering event's id (not the renamed count), so a redelivery of
/// that event after a crash fires again (same meta-alert id; the forwarder drops the duplicate)
/// instead of losing the meta-alert.
pub static UNHANDLED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local threshold, expiry = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 2 do
  local counter, triggered, event = KEYS[2 * i - 1], KEYS[2 * i], ARGV[2 + i]
  local fire = 0
  local t = redis.call('GET', triggered)
  if t then
    if t == event then fire = 1 end
  else
    local n = redis.call('INCR', counter)
    if n == 1 then redis.call('EXPIRE', counter, expiry) end
    if n == threshold then
      redis.call('DEL', counter)
      redis.call('SET', triggered, event, 'EX', expiry)
      fire = 1
    end
  end
  out[i] = fire
end
return out
",
    )
});

/// Moves up to ARGV[1] delayed messages that are due (score <= server time in ms) from the
/// delayed set (KEYS[1]) to the front of the source queue (KEYS[2]).
pub static MOVE_DUE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  redis.call('RPUSH', KEYS[2], m)
  redis.call('ZREM', KEYS[1], m)
end
return #due
",
    )
});

/// Sliding-window rate limit shared by every replica (spec §3.6b/c, with server time in ms so
/// that replicas' clocks do not matter). KEYS[1]: the sorted set; ARGV: limit, window in ms,
/// a unique member prefix, how many slots are wanted. Grants as many as are free now and
/// returns {granted, ms until the next slot frees (0 if all were granted)}.
pub static SLIDING_WINDOW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, window, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local free = limit - redis.call('ZCARD', KEYS[1])
local granted = math.max(0, math.min(free, want))
for i = 1, granted do redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. i) end
if granted > 0 then redis.call('PEXPIRE', KEYS[1], window + 1000) end
if granted == want then return {granted, 0} end
local wait = window
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then wait = tonumber(oldest[2]) + window - now end
return {granted, math.max(wait, 1)}
",
    )
});

/// Circuit breaker admission (spec §5.5 keys, with a real half-open state). KEYS: state,
/// failures, open_time (epoch seconds, as the original), probe lock. ARGV: open period in ms,
/// probe lock TTL in ms, a unique token. Returns {1, 0} closed: go; {2, 0} half-open and this
/// caller holds the single probe; {0, ms} open (or another probe in flight): wait.
pub static BREAKER_ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('GET', KEYS[1])
if not state then redis.call('SET', KEYS[1], 'CLOSED'); state = 'CLOSED' end
if state == 'CLOSED' then return {1, 0} end
if state == 'OPEN' then
  local opened = tonumber(redis.call('GET', KEYS[3]) or '0') * 1000
  local left = opened + tonumber(ARGV[1]) - now
  if left > 0 then return {0, left} end
  redis.call('SET', KEYS[1], 'HALF_OPEN')
end
if redis.call('SET', KEYS[4], ARGV[3], 'NX', 'PX', tonumber(ARGV[2])) then return {2, 0} end
return {0, 200}
",
    )
});

/// Records a delivery outcome. KEYS as BREAKER_ACQUIRE; ARGV: 'success' or 'failure', the
/// failure threshold. A success closes the breaker and zeroes the count; a failure in
/// half-open re-opens it; in closed, the threshold-th consecutive failure opens it.
/// Returns the state after.
pub static BREAKER_RECORD: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now_s = tostring(tonumber(t[1]) + tonumber(t[2]) / 1000000)
local state = redis.call('GET', KEYS[1]) or 'CLOSED'
if ARGV[1] == 'success' then
  redis.call('SET', KEYS[2], 0)
  if state ~= 'CLOSED' then
    redis.call('SET', KEYS[1], 'CLOSED')
    redis.call('DEL', KEYS[3], KEYS[4])
  end
  return 'CLOSED'
end
if state == 'HALF_OPEN' then
  redis.call('SET', KEYS[1], 'OPEN')
  redis.call('SET', KEYS[3], now_s)
  redis.call('DEL', KEYS[4])
  return 'OPEN'
end
local n = redis.call('INCR', KEYS[2])
if state == 'CLOSED' and n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], 'OPEN')
  redis.call('SET', KEYS[3], now_s)
  return 'OPEN'
end
return state
",
    )
});
