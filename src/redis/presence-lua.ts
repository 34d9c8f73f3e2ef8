// The Lua scripts of RedisPresence. Liveness is judged by the Redis server's clock
// (now_ms), so that node clocks may differ. An entry is the JSON
// {"node":…,"clientId":…,"connector":…,"connectedAt":…}, node first: a script tells whose
// entry it is by comparing its beginning with `{"node":<JSON of the node id>,`, with no
// JSON decoding in Lua. A node's set holds its entries as list-encoded [apikey, clientId].
import { RedisScript } from './client.js';
import { LUA_LIST, LUA_NOW } from './lua.js';

/**
 * A node's heartbeat. KEYS: nodes. ARGV: nodeId, nodeTimeoutMs.
 * Returns {1 if the node was in the set before (0: first beat, or it had been swept as
 * dead), {up to 100 other dead nodes}}.
 */
export const HEARTBEAT = new RedisScript(
  'presence-heartbeat',
  String.raw`${LUA_NOW}
local now = now_ms()
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - tonumber(ARGV[2])), 'LIMIT', 0, 100)
return {known and 1 or 0, dead}
`,
);

/** Writes (replaces) an entry. KEYS: app presence hash, node set. ARGV: clientId, entry, member. */
export const SET = new RedisScript(
  'presence-set',
  String.raw`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
`,
);

/**
 * Removes the client's entry if it belongs to the node, and the member from the node's set.
 * KEYS: app presence hash, node set. ARGV: clientId, node prefix, member. Returns 1 if removed.
 */
export const REMOVE = new RedisScript(
  'presence-remove',
  String.raw`
local v = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[3])
if v and string.sub(v, 1, #ARGV[2]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`,
);

/**
 * Restores entries of this node that are missing (after it was swept as dead while
 * alive): HSETNX, so an entry written since by another node wins.
 * KEYS: node set. ARGV: per entry, app presence hash key, clientId, entry, node set member.
 */
export const RESTORE = new RedisScript(
  'presence-restore',
  String.raw`
for i = 1, #ARGV, 4 do
  if redis.call('HSETNX', ARGV[i], ARGV[i + 1], ARGV[i + 2]) == 1 then redis.call('SADD', KEYS[1], ARGV[i + 3]) end
end
return 1
`,
);

/**
 * The live nodes and the app's entries, one snapshot.
 * KEYS: app presence hash, nodes. ARGV: nodeTimeoutMs. Returns {{live node ids}, {clientId, entry, …}}.
 */
export const LIST = new RedisScript(
  'presence-list',
  String.raw`${LUA_NOW}
local since = string.format('%d', now_ms() - tonumber(ARGV[1]))
return {redis.call('ZRANGEBYSCORE', KEYS[2], since, '+inf'), redis.call('HGETALL', KEYS[1])}
`,
);

/**
 * How many entries, when no node is dead: HLEN. Returns -1 when some node is dead (the
 * caller counts from LIST instead, which leaves the dead node's entries out).
 * KEYS: app presence hash, nodes. ARGV: nodeTimeoutMs.
 */
export const COUNT = new RedisScript(
  'presence-count',
  String.raw`${LUA_NOW}
local before = '(' .. string.format('%d', now_ms() - tonumber(ARGV[1]))
if redis.call('ZCOUNT', KEYS[2], '-inf', before) > 0 then return -1 end
return redis.call('HLEN', KEYS[1])
`,
);

/** The live nodes. KEYS: nodes. ARGV: nodeTimeoutMs. */
export const NODES = new RedisScript(
  'presence-nodes',
  String.raw`${LUA_NOW}
return redis.call('ZRANGEBYSCORE', KEYS[1], string.format('%d', now_ms() - tonumber(ARGV[1])), '+inf')
`,
);

/**
 * Deletes entries a reader found on a dead node, if that node is still dead (or gone)
 * and the entry is still exactly what the reader saw. KEYS: app presence hash, nodes.
 * ARGV: nodeTimeoutMs, then triples (clientId, nodeId, entry as read).
 */
export const REMOVE_DEAD = new RedisScript(
  'presence-remove-dead',
  String.raw`${LUA_NOW}
local since = now_ms() - tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  local score = redis.call('ZSCORE', KEYS[2], ARGV[i + 1])
  if (not score or tonumber(score) < since) and redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 2] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 1
`,
);

/**
 * One step of removing a node's entries: pops up to `batch` members of its set and
 * deletes those entries that still belong to it. When the set is empty the node leaves
 * the nodes set. Unless `force` (a node leaving on its own), does nothing if the node
 * is alive again. KEYS: nodes, node set. ARGV: nodeId, node prefix, nodeTimeoutMs,
 * prefix of app hash keys (`{prefix}app:`), batch, force ('1'|'0').
 * Returns -1 (alive again), 0 (done) or how many members it popped (more may be left).
 */
export const DRAIN_NODE = new RedisScript(
  'presence-drain-node',
  String.raw`${LUA_LIST}${LUA_NOW}
if ARGV[6] ~= '1' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if score and tonumber(score) >= now_ms() - tonumber(ARGV[3]) then return -1 end
end
local batch = tonumber(ARGV[5])
local members = redis.call('SPOP', KEYS[2], batch)
local prefix = ARGV[2]
for _, m in ipairs(members) do
  local p = list_decode(m)
  if p[1] and p[2] then
    local key = ARGV[4] .. p[1] .. ':presence'
    local v = redis.call('HGET', key, p[2])
    if v and string.sub(v, 1, #prefix) == prefix then redis.call('HDEL', key, p[2]) end
  end
end
if #members < batch then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
return #members
`,
);
