//! The server-side Lua scripts. Each runs atomically on the shard that owns
//! its topic's hash tag; every key a script touches is passed in `KEYS`, and
//! the channel it publishes on carries the same tag, so they are valid in a
//! Redis Cluster. The publish command (`PUBLISH` or `SPUBLISH`) is an argument.

use fred::types::scripts::Script;

/// The epoch a topic without a stream gets, defined once for [`READ`] and
/// [`PUBLISH`]: a function of the topic, the Redis server's run (a server
/// that restarted empty never reuses an epoch) and the time bucket of the
/// topic's meta TTL (a stream that expired after being idle that long is
/// never followed by one with the same epoch). A read of a never-published
/// topic thus creates no key, and still agrees with the first publication
/// on the epoch, unless a bucket boundary falls between them (then the
/// subscriber at offset 0 is told `recovered: false` when it recovers:
/// reported, never silent).
macro_rules! fresh_epoch {
    () => {
        r#"
local function fresh_epoch(key, ttl_ms)
  local info = redis.call('INFO', 'server')
  local run = string.match(info, 'run_id:(%x+)') or ''
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local bucket = math.floor(ms / tonumber(ttl_ms))
  return string.sub(redis.sha1hex(key .. '\n' .. run .. '\n' .. bucket), 1, 16)
end
"#
    };
}

/// Publish one publication.
///
/// KEYS: meta, history, idempotency record.
/// ARGV: 1 channel, 2 publish command, 3 history size, 4 history TTL ms,
/// 5 meta TTL ms, 6 idempotency window ms (0: no key), 7 ts, 8 id, 9 event,
/// 10 data JSON; with webhook sinks (standalone Redis only), KEYS 4.. are
/// the matching sinks' streams and ARGV 11 the topic.
/// Returns `{offset, epoch}` (the first publication's with a repeated key).
pub(crate) const PUBLISH: &str = concat!(
    fresh_epoch!(),
    r#"
if ARGV[6] ~= '0' then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local o, e = string.match(seen, '^(%d+):(.*)$')
    return {tonumber(o), e}
  end
end
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = fresh_epoch(KEYS[1], ARGV[5])
  redis.call('HSET', KEYS[1], 'e', epoch)
  redis.call('DEL', KEYS[2])
end
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local msg = 'p\n' .. epoch .. '\n' .. offset .. '\n' .. ARGV[7] .. '\n' .. ARGV[8] .. '\n'
  .. string.len(ARGV[9]) .. '\n' .. ARGV[9] .. ARGV[10]
local size = tonumber(ARGV[3])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, '0-' .. offset, 'm', msg)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
if ARGV[6] ~= '0' then
  redis.call('SET', KEYS[3], offset .. ':' .. epoch, 'PX', ARGV[6])
end
-- >>> webhook sinks (issue 10, owner: hub/src/sinks/redis.rs) >>>
-- KEYS[4..]: the streams of the sinks that want this publication; ARGV[11]:
-- the topic. Queued in the same atomic step that stores the publication.
for i = 4, #KEYS do
  redis.call('XADD', KEYS[i], '*', 't', ARGV[11], 'm', msg)
end
-- <<< webhook sinks <<<
redis.call(ARGV[2], ARGV[1], msg)
return {offset, epoch}
"#
);

/// Read a topic's position and some of its history in one snapshot. A topic
/// without a stream is at offset 0 in its `fresh_epoch` epoch, and the
/// read writes nothing.
///
/// KEYS: meta, history.
/// ARGV: 1 meta TTL ms, 2 mode (`none`, `after`, `newest`), 3 offset (for
/// `after`), 4 count.
/// Returns `{epoch, offset, {encoded publications, oldest first}}`
/// (`newest` returns them newest first).
pub(crate) const READ: &str = concat!(
    fresh_epoch!(),
    r#"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  return {fresh_epoch(KEYS[1], ARGV[1]), 0, {}}
end
local offset = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
local entries = {}
if ARGV[2] == 'after' then
  entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[3], '+', 'COUNT', ARGV[4])
elseif ARGV[2] == 'newest' then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[4])
end
local out = {}
for i, e in ipairs(entries) do out[i] = e[2][2] end
return {epoch, offset, out}
"#
);

/// Move a topic whose offset went backwards (Redis restored an older
/// snapshot, a lagging replica took over) to a new epoch, so that positions
/// in the lost stretch are answered `recovered: false` instead of being
/// "recovered" from reused offsets. Only when the topic is still in the
/// epoch that went backwards (the first node to notice does it). The offset
/// keeps counting; the stream of the old epoch is dropped.
///
/// KEYS: meta, history. ARGV: 1 the epoch that went backwards, 2 the new epoch.
/// Returns 1 when it moved the topic, 0 otherwise.
pub(crate) const NEW_EPOCH: &str = r#"
if redis.call('HGET', KEYS[1], 'e') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'e', ARGV[2])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"#;

/// Add (or refresh) a presence member, optionally announcing it.
///
/// KEYS: members hash, expiry zset.
/// ARGV: 1 client id, 2 stored member (`1` or `0`, whether its leave is
/// announced, then its JSON), 3 expiry (ms since the Unix epoch), 4 key TTL
/// ms, 5 channel, 6 publish command, 7 announce now (`1`/`0`), 8 join event.
pub(crate) const JOIN: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if ARGV[7] == '1' then redis.call(ARGV[6], ARGV[5], ARGV[8]) end
return 1
"#;

/// Remove a presence member, announcing it when it was present.
///
/// KEYS: members hash, expiry zset.
/// ARGV: 1 client id, 2 channel, 3 publish command, 4 announce, 5 leave event.
pub(crate) const LEAVE: &str = r#"
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if n == 1 and ARGV[4] == '1' then redis.call(ARGV[3], ARGV[2], ARGV[5]) end
return n
"#;

/// Drop expired members (announcing their `leave` when their namespace has
/// join/leave: nobody else will, their node is gone) and list the rest.
///
/// KEYS: members hash, expiry zset. ARGV: 1 now (ms since the Unix epoch),
/// 2 channel, 3 publish command.
/// Returns the live members as stored (flag byte, then JSON).
pub(crate) const PRESENCE: &str = r#"
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, id in ipairs(dead) do
  local v = redis.call('HGET', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], id)
  if v and string.sub(v, 1, 1) == '1' then
    redis.call(ARGV[3], ARGV[2], 'l\n' .. string.sub(v, 2))
  end
end
local live = redis.call('ZRANGE', KEYS[2], 0, -1)
local out = {}
for i, id in ipairs(live) do
  out[i] = redis.call('HGET', KEYS[1], id)
end
return out
"#;

/// The scripts, with their SHA1s for `EVALSHA`.
#[derive(Debug, Clone)]
pub(crate) struct Scripts {
    pub(crate) publish: Script,
    pub(crate) read: Script,
    pub(crate) new_epoch: Script,
    pub(crate) join: Script,
    pub(crate) leave: Script,
    pub(crate) presence: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            publish: Script::from_lua(PUBLISH),
            read: Script::from_lua(READ),
            new_epoch: Script::from_lua(NEW_EPOCH),
            join: Script::from_lua(JOIN),
            leave: Script::from_lua(LEAVE),
            presence: Script::from_lua(PRESENCE),
        }
    }
}
