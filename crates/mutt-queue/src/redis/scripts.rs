//! The Lua scripts of the Redis queue protocol, each one atomic on the server.
//!
//! Written by hand because no client crate implements this protocol (processing lists per
//! worker, atomic settle, janitor recovery with a heartbeat check, delayed retries).
//! List orientation, as in the original: producers `LPUSH` (left = back of the queue),
//! consumers take from the right (the front).

use super::envelope;
use std::sync::LazyLock;

/// Completes a lease whose elements the caller moved into the worker's processing list with
/// native `LMOVE`/`BLMOVE` (natively because every byte a script touches costs Redis a hash of
/// it: Lua interns strings). KEYS: source queue, the worker's processing list, the role's lease
/// tokens (hash: pod -> token), the role's redelivered hash, the source's event counter. ARGV:
/// how many elements the caller moved, the events they carry, the pod, the new lease's token,
/// '1' to tell redeliveries from first deliveries.
///
/// Refuses (nil) when the processing list does not hold exactly those elements: a lease never
/// joins messages leased before, whose settle could then remove the wrong ones. Otherwise
/// records the token, so that only this lease's settle (once) removes them, and subtracts the
/// events from the counter, which is dropped when the source is empty (so it never drifts for
/// long). Returns one '1' or '0' per element with ARGV[5] = '1', oldest (first moved) first:
/// '1' for an element the redelivered hash holds (one copy is taken off); the hash is only read
/// when it exists, i.e. while recovered ones wait.
pub static LEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local moved = tonumber(ARGV[1])
if redis.call('LLEN', KEYS[2]) ~= moved then return false end
if redis.call('DECRBY', KEYS[5], ARGV[2]) < 0 or redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[5])
end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
if ARGV[5] ~= '1' then return '' end
if redis.call('EXISTS', KEYS[4]) == 0 then return string.rep('0', moved) end
local all = redis.call('LRANGE', KEYS[2], 0, -1)
local flags = {}
for i = #all, 1, -1 do
  local v = all[i]
  local n = tonumber(redis.call('HGET', KEYS[4], v) or '0')
  if n > 0 then
    if n == 1 then redis.call('HDEL', KEYS[4], v) else redis.call('HINCRBY', KEYS[4], v, -1) end
    flags[#flags + 1] = '1'
  else
    flags[#flags + 1] = '0'
  end
end
return table.concat(flags)
",
    )
});

/// Leases without blocking, moving inside the script: one round trip, for queues of small
/// elements (a script hashes every byte it moves, which costs more than round trips only for
/// envelopes of many events: [`LEASE`] then). KEYS: source queue, the worker's processing list,
/// the role's lease tokens (hash: pod -> token), the role's redelivered hash, the source's event
/// counter. ARGV: how many events to move, how many elements the
/// processing list holds already (0, or 1 after a BLMOVE), the pod, the new lease's token, '1'
/// to tell redeliveries from first deliveries, the events of the element already there.
///
/// Refuses (nil) when the processing list does not hold exactly that many: a lease never joins
/// messages leased before, whose settle could then remove the wrong ones. Otherwise moves
/// elements from the front of the source until they carry ARGV[1] events (an envelope counts
/// its events; the first one is taken whatever its size, so that no envelope is stuck, and one
/// that does not fit after it goes back to the front; each by `LMOVE`); when the list is not
/// empty afterwards the token is recorded, so that only this lease's settle (once) removes them.
/// The events taken (the BLMOVEd one's too) are subtracted from the counter, which is dropped when the source is empty (so it never drifts for long). Returns {the
/// moved elements oldest first, flags}: with ARGV[5] = '1' one '1' or '0' per element of the
/// lease (the one already there first), '1' for an element the redelivered hash holds (one
/// copy is taken off); the hash is only read when it exists, i.e. while recovered ones wait.
pub static LEASE_MOVING: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[envelope::LUA_COUNT_FN],
        r"
local already = tonumber(ARGV[2])
if redis.call('LLEN', KEYS[2]) ~= already then return false end
local want = tonumber(ARGV[1])
local out = {}
-- One LMOVE per element rather than RPOP then LPUSH: the AOF and replicas then get a short
-- LMOVE per element instead of every leased message's bytes a second time (at 10,000 single
-- events/s that was a third of the AOF, and its once-a-second fsync stalls PostgreSQL's
-- commits on a shared disk). The layout is the same: the oldest ends up at the tail.
local total = 0
while total < want do
  local front = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not front then break end
  local n = mutt_count(front)
  -- Only the lease's first element is taken whatever its size (already == 1: BLMOVE took it);
  -- an envelope that would go past `want` goes back to the front.
  if (total > 0 or already == 1) and total + n > want then
    redis.call('LMOVE', KEYS[2], KEYS[1], 'LEFT', 'RIGHT')
    break
  end
  out[#out + 1] = front
  total = total + n
end
if already == 1 then total = total + tonumber(ARGV[6]) end
if redis.call('DECRBY', KEYS[5], total) < 0 or redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[5])
end
if #out + already > 0 then redis.call('HSET', KEYS[3], ARGV[3], ARGV[4]) end
if ARGV[5] ~= '1' then return {out, ''} end
if redis.call('EXISTS', KEYS[4]) == 0 then return {out, string.rep('0', already + #out)} end
local all = {}
if already == 1 then all[1] = redis.call('LINDEX', KEYS[2], -1) end
for _, v in ipairs(out) do all[#all + 1] = v end
local flags = {}
for i, v in ipairs(all) do
  local n = tonumber(redis.call('HGET', KEYS[4], v) or '0')
  if n > 0 then
    if n == 1 then redis.call('HDEL', KEYS[4], v) else redis.call('HINCRBY', KEYS[4], v, -1) end
    flags[i] = '1'
  else
    flags[i] = '0'
  end
end
return {out, table.concat(flags)}
",
    )
});

/// Settles one lease. KEYS: processing list, source queue, delayed set, DLQ, output queue,
/// lease tokens, and the source's and the output's event counters (what is put back or emitted
/// is counted there). ARGV: pod, token, counts (leased elements, emit, put back, delayed,
/// dead), then the messages to push in that order; delayed entries are (delay in ms, message)
/// pairs.
///
/// Only the current lease's token settles, once: a settle retried after a lost reply, or one
/// whose lease was handed back or recovered by a janitor (both remove the token), does
/// nothing and returns 0, so nothing is pushed twice and no other lease's messages are
/// touched. The leased elements are the tail of the processing list (a lease only starts in
/// an empty list, and the only thing that can arrive later, a BLMOVE whose reply was given up,
/// lands at the head), so one LTRIM removes exactly them without sending their bytes back:
/// every byte a script touches costs Redis a hash of it (Lua interns strings). Pushes go out
/// one command per destination.
pub static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[envelope::LUA_COUNT_FN],
        r"
local function count_into(key, from, n)
  if n == 0 then return end
  local total = 0
  for k = from, from + n - 1 do total = total + mutt_count(ARGV[k]) end
  redis.call('INCRBY', key, total)
end
if redis.call('HGET', KEYS[6], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[6], ARGV[1])
local len = redis.call('LLEN', KEYS[1])
if len == 0 then return 0 end
local nack, nemit, nback, ndelay, ndead =
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if nack >= len then
  redis.call('DEL', KEYS[1])
elseif nack > 0 then
  redis.call('LTRIM', KEYS[1], 0, -(nack + 1))
end
local i = 8
if nemit > 0 then
  redis.call('LPUSH', KEYS[5], unpack(ARGV, i, i + nemit - 1))
  count_into(KEYS[8], i, nemit)
  i = i + nemit
end
if nback > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, i + nback - 1))
  count_into(KEYS[7], i, nback)
  i = i + nback
end
if ndelay > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for _ = 1, ndelay do
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[i]), ARGV[i + 1]); i = i + 2
  end
end
if ndead > 0 then redis.call('LPUSH', KEYS[4], unpack(ARGV, i, i + ndead - 1)) end
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
/// recovered lease must not apply any more. With ARGV[7] = '1' every message moved (or
/// dead-lettered, which a replay may bring back) is counted in the redelivered hash KEYS[7]
/// (kept 24 h after the last recovery), so that the lease that takes it again says so. With
/// batch envelopes, KEYS[8] is the source's event counter.
pub static RECOVER: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[envelope::LUA_COUNT_FN],
        r"
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('HDEL', KEYS[6], ARGV[6])
local track = ARGV[7] == '1'
local count_crash, max = ARGV[3] == '1', tonumber(ARGV[4])
local events = 0
local function restore(v)
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
  if not poisoned then
    redis.call('RPUSH', KEYS[3], v)
    events = events + mutt_count(v)
  end
  if track then redis.call('HINCRBY', KEYS[7], v, 1) end
end
-- An envelope whose worker died goes back as its events, newest pushed first so that the
-- oldest is first in line: from then on each event's crashes count alone, and a poison event
-- is dead-lettered without its neighbours.
local function split(v)
  local out, start = {}, string.find(v, '\n', 1, true) + 1
  while true do
    local nl = string.find(v, '\n', start, true)
    if not nl then out[#out + 1] = string.sub(v, start); break end
    out[#out + 1] = string.sub(v, start, nl - 1)
    start = nl + 1
  end
  for k = #out, 1, -1 do restore(out[k]) end
end
local n = 0
for _ = 1, tonumber(ARGV[2]) do
  local v = redis.call('LPOP', KEYS[1])
  if not v then break end
  if count_crash and mutt_count(v) > 1 then split(v) else restore(v) end
  n = n + 1
end
if track and n > 0 then redis.call('EXPIRE', KEYS[7], 86400) end
if KEYS[8] ~= nil and events > 0 then redis.call('INCRBY', KEYS[8], events) end
return n
",
    )
});

/// The ingest counters of a push (run with `EVAL` inside the push's MULTI, after the native
/// LPUSH: event bytes never pass through Lua, where Redis would hash every byte). KEYS: the
/// minute, hour and day counters, the queue's event counter. ARGV: the event count, the three
/// counters' TTLs in seconds. A counter's TTL is set when this call created it (the original's
/// keys: set once, so a bucket expires a fixed time after its first event). Returns the queue's
/// event count.
pub const INGEST_COUNTERS: &str = r"
local n = tonumber(ARGV[1])
for i = 1, 3 do
  if redis.call('INCRBY', KEYS[i], n) == n then redis.call('EXPIRE', KEYS[i], ARGV[i + 1]) end
end
return redis.call('INCRBY', KEYS[4], n)
";

/// Appends list elements (envelopes or plain messages) to a queue and adds their events to the
/// queue's counter. KEYS: the queue, its event counter. ARGV: the elements. Returns the depth
/// in events.
pub static PUSH_COUNTED: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[envelope::LUA_COUNT_FN],
        r"
local depth = redis.call('LPUSH', KEYS[1], unpack(ARGV))
local n = 0
for _, v in ipairs(ARGV) do n = n + mutt_count(v) end
return math.max(depth, redis.call('INCRBY', KEYS[2], n))
",
    )
});

/// A queue's depth in events with batch envelopes: its counter, never less than its length.
/// KEYS: the queue, its event counter.
pub static DEPTH_COUNTED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local len = redis.call('LLEN', KEYS[1])
if len == 0 then return 0 end
return math.max(len, tonumber(redis.call('GET', KEYS[2]) or '0') or 0)
",
    )
});

/// The original's unhandled-event counter (spec §3.6a), for a whole batch in one call.
/// KEYS come in pairs (counter, triggered); ARGV: threshold, expiry seconds, then one event id
/// per pair. Returns per pair 1 when its count reached the threshold, plus 2 when an example of
/// the message should be kept (`<counter>:sample` does not exist and the counter is not at
/// exactly 1: a message seen once so far gets none, since one-off messages are most of what goes
/// unhandled and a key each for a day costs Redis more than their counting). The caller then
/// sends only those messages: every byte passed to a script costs Redis a hash of it.
/// A counter is created by `SET … EX … NX` (the original: `INCR`, then `EXPIRE` at 1): the
/// same key, value and expiry in one command.
/// Deviation: the triggered key holds the triggering event's id (not the renamed count), so a
/// redelivery of that event after a crash fires again (same meta-alert id; the forwarder drops
/// the duplicate) instead of losing the meta-alert.
pub static UNHANDLED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
-- The expiry goes to Redis as the string it came as: a Lua number would be formatted by
-- sprintf for every command (visible in redis-server's profile).
local threshold, expiry = tonumber(ARGV[1]), ARGV[2]
local out = {}
for i = 1, #KEYS / 2 do
  local counter, triggered, event = KEYS[2 * i - 1], KEYS[2 * i], ARGV[2 + i]
  local fire, once = 0, false
  local t = redis.call('GET', triggered)
  if t then
    if t == event then fire = 1 end
  else
    -- The first count creates the counter with its expiry in one command (INCR then EXPIRE
    -- before: most unhandled messages are seen once, and each command is also an AOF entry).
    local n = 1
    if not redis.call('SET', counter, '1', 'EX', expiry, 'NX') then n = redis.call('INCR', counter) end
    if n == threshold then
      redis.call('DEL', counter)
      redis.call('SET', triggered, event, 'EX', expiry)
      fire = 1
    else
      once = n == 1
    end
  end
  if not once and redis.call('EXISTS', counter .. ':sample') == 0 then fire = fire + 2 end
  out[i] = fire
end
return out
",
    )
});

/// The events a processing list holds (its elements' counts; lists are at most one lease).
/// KEYS: the list.
pub static LIST_EVENTS: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[envelope::LUA_COUNT_FN],
        r"
local n = 0
for _, v in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do n = n + mutt_count(v) end
return n
",
    )
});

/// Moves up to ARGV[1] delayed messages that are due (score <= server time in ms) from the
/// delayed set (KEYS[1]) to the front of the source queue (KEYS[2]); with batch envelopes
/// KEYS[3] is the source's event counter.
pub static MOVE_DUE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[envelope::LUA_COUNT_FN],
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local events = 0
for _, m in ipairs(due) do
  redis.call('RPUSH', KEYS[2], m)
  redis.call('ZREM', KEYS[1], m)
  events = events + mutt_count(m)
end
if KEYS[3] ~= nil and events > 0 then redis.call('INCRBY', KEYS[3], events) end
return #due
",
    )
});

/// The shared rate limit as one GCRA key (generic cell rate algorithm; spec §3.6b/c keep their
/// names and settings, with server time in ms so that replicas' clocks do not matter): `limit`
/// slots per `window` ms, bursts up to the whole limit, then one slot freeing every
/// window/limit. The key holds the theoretical arrival time (ms). Grants as many of `want` as
/// fit now with one read and one write, whatever the count; returns {granted, ms until the next
/// slot frees (0 if all were granted)}.
const GCRA_FN: &str = r"
local function gcra(key, limit, window, want)
  if want <= 0 then return {0, 0} end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  local interval = window / limit
  -- The sliding window's sorted set (an earlier muttd, the original) is replaced, not an error.
  local ok, stored = pcall(redis.call, 'GET', key)
  if not ok then redis.call('DEL', key); stored = false end
  local tat = math.max(tonumber(stored or '0') or 0, now)
  -- A slot fits while tat - now stays within the window; the epsilon absorbs float rounding.
  local granted = math.max(0, math.min(want, math.floor((now + window - tat) / interval + 1e-9)))
  if granted > 0 then
    tat = tat + granted * interval
    redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
  end
  if granted == want then return {granted, 0} end
  return {granted, math.max(math.ceil(tat + interval - window - now), 1)}
end
";

/// Circuit breaker admission (spec §5.5 keys, with a real half-open state). Keys: state,
/// failures, open_time (epoch seconds, as the original), probe lock; the open period and the
/// probe lock's TTL in ms, a unique token. Returns {1, 0} closed: go; {2, 0} half-open and this
/// caller holds the single probe; {0, ms} open (or another probe in flight): wait.
const BREAKER_ACQUIRE_FN: &str = r"
local function breaker_acquire(k1, k3, k4, open_ms, probe_ttl, token)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local state = redis.call('GET', k1)
  if not state then redis.call('SET', k1, 'CLOSED'); state = 'CLOSED' end
  if state == 'CLOSED' then return {1, 0} end
  if state == 'OPEN' then
    local opened = tonumber(redis.call('GET', k3) or '0') * 1000
    local left = opened + open_ms - now
    if left > 0 then return {0, left} end
    redis.call('SET', k1, 'HALF_OPEN')
  end
  if redis.call('SET', k4, token, 'NX', 'PX', probe_ttl) then return {2, 0} end
  return {0, 200}
end
";

/// Records a delivery outcome on the breaker (keys as above; `success`, the failure
/// threshold). A success closes the breaker and zeroes the count; a failure in half-open
/// re-opens it; in closed, the threshold-th consecutive failure opens it. Returns the state
/// after.
const BREAKER_RECORD_FN: &str = r"
local function breaker_record(k1, k2, k3, k4, success, threshold)
  local t = redis.call('TIME')
  local now_s = tostring(tonumber(t[1]) + tonumber(t[2]) / 1000000)
  local state = redis.call('GET', k1) or 'CLOSED'
  if success then
    redis.call('SET', k2, 0)
    if state ~= 'CLOSED' then
      redis.call('SET', k1, 'CLOSED')
      redis.call('DEL', k3, k4)
    end
    return 'CLOSED'
  end
  if state == 'HALF_OPEN' then
    redis.call('SET', k1, 'OPEN')
    redis.call('SET', k3, now_s)
    redis.call('DEL', k4)
    return 'OPEN'
  end
  local n = redis.call('INCR', k2)
  if state == 'CLOSED' and n >= threshold then
    redis.call('SET', k1, 'OPEN')
    redis.call('SET', k3, now_s)
    return 'OPEN'
  end
  return state
end
";

fn script(functions: &[&str], body: &str) -> redis::Script {
    redis::Script::new(&format!("{}\n{body}", functions.concat()))
}

/// The shared rate limit (see `GCRA_FN`). KEYS[1]: the key; ARGV: limit, window in ms, (unused,
/// kept from the sliding window's arguments), how many slots are wanted.
pub static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    script(&[GCRA_FN], "return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4]))")
});

/// KEYS: state, failures, open_time, probe lock. ARGV: open period in ms, probe lock TTL in ms,
/// a unique token. See `BREAKER_ACQUIRE_FN`.
pub static BREAKER_ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[BREAKER_ACQUIRE_FN],
        "return breaker_acquire(KEYS[1], KEYS[3], KEYS[4], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3])",
    )
});

/// KEYS as BREAKER_ACQUIRE; ARGV: 'success' or 'failure', the failure threshold. See
/// `BREAKER_RECORD_FN`.
pub static BREAKER_RECORD: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[BREAKER_RECORD_FN],
        "return breaker_record(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1] == 'success', tonumber(ARGV[2]))",
    )
});

/// A batch's admission in one call: the breaker, then the rate limit for what the breaker lets
/// through. KEYS: the breaker's four keys, the rate limit's key. ARGV: breaker on ('1'/'0'),
/// open period ms, probe TTL ms, token, rate limit on ('1'/'0'), limit, window ms, wanted, the
/// most one probe may carry. Returns {verdict (1 go, 2 probe, 0 wait), breaker wait ms,
/// granted, rate wait ms}.
pub static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[BREAKER_ACQUIRE_FN, GCRA_FN],
        r"
local verdict, wait = 1, 0
if ARGV[1] == '1' then
  local b = breaker_acquire(KEYS[1], KEYS[3], KEYS[4], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
  verdict, wait = b[1], b[2]
end
local want = tonumber(ARGV[8])
if verdict == 0 then want = 0 elseif verdict == 2 then want = math.min(want, tonumber(ARGV[9])) end
if ARGV[5] ~= '1' then return {verdict, wait, want, 0} end
local g = gcra(KEYS[5], tonumber(ARGV[6]), tonumber(ARGV[7]), want)
return {verdict, wait, g[1], g[2]}
",
    )
});

/// A batch's outcomes on the breaker in one call: each request's in order, then (optionally)
/// opening it whatever the count. KEYS: the breaker's four keys. ARGV: outcomes ('1' success,
/// '0' failure per request, may be empty), trip ('1'/'0'), failure threshold. Returns {the
/// breaker's state after each outcome (and the trip), its failure count}. The delivered ids go
/// by native commands in the same round trip (`RedisQueue::record_batch`): through Lua, Redis
/// would intern each id and build an argument table for them (~0.6 µs per id measured).
pub static RECORD_DELIVERY: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        &[BREAKER_RECORD_FN],
        r"
local states = {}
local threshold = tonumber(ARGV[3])
for i = 1, #ARGV[1] do
  local success = string.sub(ARGV[1], i, i) == '1'
  states[#states + 1] = breaker_record(KEYS[1], KEYS[2], KEYS[3], KEYS[4], success, threshold)
end
if ARGV[2] == '1' then states[#states + 1] = breaker_record(KEYS[1], KEYS[2], KEYS[3], KEYS[4], false, 1) end
local failures = 0
if #states > 0 then failures = tonumber(redis.call('GET', KEYS[2]) or '0') or 0 end
return {states, failures}
",
    )
});
