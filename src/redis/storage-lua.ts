// The Lua scripts of RedisStorage. Each runs atomically in Redis (nothing else runs
// in between), so each is one consistent step: what a transaction is in the SQLite
// storage. Key layout and fields: docs/cluster.md.
//
// Conventions:
// - `sub` (an ARGV) is the app's key prefix with its trailing colon, `{prefix}app:{apikey}:`;
//   scripts derive per-message and per-target keys from it (their names depend on the id
//   the script assigns or on the target list). That is fine on one Redis server, which
//   is what the cluster mode runs on; Redis Cluster is not supported.
// - Numbers travel as decimal strings and are written back as received, never through a
//   Lua number (tostring() prints one of more than 14 digits in exponent form);
//   tonumber() is used only to compare.
// - Lists of strings (target client ids and tags, client tags) are stored in the form of
//   encodeList/decodeList (src/redis/reply.ts), LUA_LIST here.
// - `unpack` is bounded by Lua's C stack (about 8000 values), so long argument lists are
//   written in chunks.
import { RedisScript } from './client.js';
import { LUA_LIST } from './lua.js';

const LIST = LUA_LIST;

const CHUNKED = String.raw`
local function call_chunked(cmd, key, items)
  for i = 1, #items, 1000 do
    redis.call(cmd, key, unpack(items, i, math.min(i + 999, #items)))
  end
end
`;

/** Sets a named recipient's first delivery ('d') or ack ('a') time; no field (not named): nothing. */
const MARK = String.raw`
local function mark(key, client, slot, at)
  local v = redis.call('HGET', key, client)
  if not v then return end
  local idx, d, a = string.match(v, '^([^|]*)|([^|]*)|([^|]*)$')
  if not idx then return end
  if slot == 'd' then
    if d ~= '' then return end
    d = at
  else
    if a ~= '' then return end
    a = at
  end
  redis.call('HSET', key, client, idx .. '|' .. d .. '|' .. a)
end
`;

/**
 * Appends one message: bumps the app's counter, adds the stream entry `{id}-0`, its
 * expiry, one member `{id}:{expiresAt}` per target set, its receipt counters and, for
 * named clients, a recipient field each. Returns the id, or 0 when the app is unknown.
 *
 * KEYS: app hash, log stream, expiry index.
 * ARGV: sub, expiresAt, createdAt, ttlSeconds, targeted, event, data (JSON), all ('1'|'0'),
 *       clientIds (list), tags (list).
 */
export const APPEND = new RedisScript(
  'append',
  String.raw`${LIST}${CHUNKED}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local id = redis.call('HINCRBY', KEYS[1], 'last', 1)
local sid = string.format('%d', id)
local sub = ARGV[1]
redis.call('XADD', KEYS[2], sid .. '-0', 'x', ARGV[2], 'at', ARGV[3], 'ttl', ARGV[4], 'n', ARGV[5],
  'e', ARGV[6], 'd', ARGV[7], 'all', ARGV[8], 'c', ARGV[9], 't', ARGV[10])
redis.call('ZADD', KEYS[3], ARGV[2], sid)
local member = sid .. ':' .. ARGV[2]
if ARGV[8] == '1' then redis.call('ZADD', sub .. 'target:all', sid, member) end
local seen, recipients, n = {}, {}, 0
for _, c in ipairs(list_decode(ARGV[9])) do
  if not seen[c] then
    seen[c] = true
    n = n + 1
    redis.call('ZADD', sub .. 'target:c:' .. c, sid, member)
    recipients[#recipients + 1] = c
    recipients[#recipients + 1] = string.format('%d||', n)
  end
end
seen = {}
for _, t in ipairs(list_decode(ARGV[10])) do
  if not seen[t] then
    seen[t] = true
    redis.call('ZADD', sub .. 'target:t:' .. t, sid, member)
  end
end
redis.call('HSET', sub .. 'msg:' .. sid .. ':receipt', 'n', ARGV[5], 'd', '0', 'a', '0')
if n > 0 then call_chunked('HSET', sub .. 'msg:' .. sid .. ':recipients', recipients) end
return id
`,
);

/**
 * Unexpired entries after an id, in id order, at most `limit`, looking at no more than
 * `budget` entries (expired ones included) per call. Returns {cursor, entries}: cursor
 * '' when the log holds nothing more, else the id to continue after.
 *
 * KEYS: log stream. ARGV: after, limit, now, budget.
 */
export const READ_AFTER = new RedisScript(
  'read-after',
  String.raw`
local limit, now, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local start = '(' .. ARGV[1] .. '-0'
local out, examined = {}, 0
while #out < limit do
  local need = limit - #out
  local r = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', need)
  for _, e in ipairs(r) do
    local f = e[2]
    if f[1] == 'x' and tonumber(f[2]) > now then out[#out + 1] = e end
  end
  if #r < need then return {'', out} end
  start = '(' .. r[#r][1]
  examined = examined + #r
  if examined >= budget and #out < limit then return {string.match(r[#r][1], '^(%d+)-'), out} end
end
return {'', out}
`,
);

/**
 * What targets a client, after an id, in id order, at most `limit`: merges the target
 * sets (all, the client's, each of its tags) by id. Each round reads at most `need`
 * members per set past the cursor; the smallest `need` distinct ids of their union are
 * exactly the next `need` ids that target the client. Members carry their expiry
 * (`{id}:{expiresAt}`), so expired ones are skipped without reading the log; the live
 * ones are read from the stream (XRANGE id id). Stops after `budget` ids per call.
 * Returns {cursor, entries} as READ_AFTER.
 *
 * KEYS: log stream, then the target sets. ARGV: after, limit, now, budget.
 */
export const READ_FOR = new RedisScript(
  'read-for',
  String.raw`
local limit, now, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cursor = ARGV[1]
local out, examined = {}, 0
while #out < limit do
  local need = limit - #out
  local seen, cand = {}, {}
  for k = 2, #KEYS do
    local r = redis.call('ZRANGEBYSCORE', KEYS[k], '(' .. cursor, '+inf', 'LIMIT', 0, need)
    for _, m in ipairs(r) do
      local sid, exp = string.match(m, '^(%d+):(.*)$')
      if sid and not seen[sid] then
        seen[sid] = true
        cand[#cand + 1] = {tonumber(sid), sid, tonumber(exp)}
      end
    end
  end
  if #cand == 0 then return {'', out} end
  table.sort(cand, function(a, b) return a[1] < b[1] end)
  local n = math.min(need, #cand)
  for j = 1, n do
    local c = cand[j]
    if c[3] and c[3] > now then
      local e = redis.call('XRANGE', KEYS[1], c[2] .. '-0', c[2] .. '-0')[1]
      if e then out[#out + 1] = e end
    end
  end
  -- Fewer candidates than asked for: every set is exhausted past the last one.
  if n < need then return {'', out} end
  cursor = cand[n][2]
  examined = examined + n
  if examined >= budget and #out < limit then return {cursor, out} end
end
return {'', out}
`,
);

/**
 * Newest first, ids below a bound, with receipt counters.
 * KEYS: log stream. ARGV: sub, end ('+' or '(N-0'), count.
 * Returns {{entryId, fields, delivered, acked, skipped}, …}.
 */
export const HISTORY = new RedisScript(
  'history',
  String.raw`
local r = redis.call('XREVRANGE', KEYS[1], ARGV[2], '-', 'COUNT', ARGV[3])
for i, e in ipairs(r) do
  local sid = string.match(e[1], '^(%d+)-')
  local c = redis.call('HMGET', ARGV[1] .. 'msg:' .. sid .. ':receipt', 'd', 'a', 's')
  r[i] = {e[1], e[2], c[1] or '0', c[2] or '0', c[3] or '0'}
end
return r
`,
);

/**
 * Counters and recipients of one message, one snapshot; nil when it does not exist.
 * ARGV: sub, id. Returns {targeted, delivered, acked, skipped,
 * {client, 'index|deliveredAt|ackedAt', …}, {client, 'skippedAt|reason', …}}.
 */
export const RECEIPT = new RedisScript(
  'receipt',
  String.raw`
local m = ARGV[1] .. 'msg:' .. ARGV[2]
local c = redis.call('HMGET', m .. ':receipt', 'n', 'd', 'a', 's')
if not c[1] then return false end
return {c[1], c[2] or '0', c[3] or '0', c[4] or '0', redis.call('HGETALL', m .. ':recipients'), redis.call('HGETALL', m .. ':skips')}
`,
);

/**
 * A batch of skips (SkipUpdate), each counted once per message and client: the field
 * in `msg:{id}:skips` is the proof (HSETNX). Messages that do not exist are ignored.
 *
 * ARGV, per skip: sub, id, clientId, at, reason.
 */
export const RECORD_SKIPS = new RedisScript(
  'record-skips',
  String.raw`
for i = 1, #ARGV, 5 do
  local m = ARGV[i] .. 'msg:' .. ARGV[i + 1]
  if redis.call('EXISTS', m .. ':receipt') == 1
    and redis.call('HSETNX', m .. ':skips', ARGV[i + 2], ARGV[i + 3] .. '|' .. ARGV[i + 4]) == 1 then
    redis.call('HINCRBY', m .. ':receipt', 's', 1)
  end
end
return 1
`,
);

/**
 * A batch of ack ranges (AckRange), each with the client's acked position: a range
 * starts after max(after, stored acked), and every unexpired message of it that targets
 * the client (all, its own set, its tags; each message once) and that it did not skip
 * gets one ack, a named recipient its ack time; the position moves to upTo. Ranges run
 * in order, so a client's second range starts where its first left the position.
 * Broadcasts are read once per app for the whole batch and counted by a sweep over the
 * ranges' ends (a broadcast acked by 10,000 clients: one read, one HINCRBY), not per
 * client; the client's own set and tag sets are read per range (ZRANGEBYSCORE). The
 * counts of the batch are summed per message and written once each.
 *
 * ARGV, per range: sub, clientId, after, upTo, at, n, n × tag.
 */
export const RECORD_ACKS = new RedisScript(
  'record-acks',
  String.raw`${MARK}
local counts, order, exists, hasSkips = {}, {}, {}, {}
local function live(m)
  local e = exists[m]
  if e == nil then
    e = redis.call('EXISTS', m .. ':receipt') == 1
    exists[m] = e
  end
  return e
end
local function skipped(m, client)
  local k = hasSkips[m]
  if k == nil then
    k = redis.call('EXISTS', m .. ':skips') == 1
    hasSkips[m] = k
  end
  return k and redis.call('HEXISTS', m .. ':skips', client) == 1
end
local function add(m, n)
  if counts[m] == nil then
    counts[m] = 0
    order[#order + 1] = m
  end
  counts[m] = counts[m] + n
end
-- Pass 1, range by range: the span, the client's own and tag sets, the position.
local spans, apps, positions = {}, {}, {}
local i = 1
while i <= #ARGV do
  local sub, client, upTo, at = ARGV[i], ARGV[i + 1], ARGV[i + 3], ARGV[i + 4]
  local nt = tonumber(ARGV[i + 5])
  local ck = sub .. 'client:' .. client
  local stored = positions[ck]
  if stored == nil then
    local cur = redis.call('HMGET', ck, 'acked', 'first')
    stored = cur[2] and (cur[1] or '0') or false
    positions[ck] = stored
  end
  local from = ARGV[i + 2]
  if stored and tonumber(stored) > tonumber(from) then from = stored end
  if tonumber(upTo) > tonumber(from) then
    local now = tonumber(at)
    local list = spans[sub]
    if list == nil then
      list = {}
      spans[sub] = list
      apps[#apps + 1] = sub
    end
    list[#list + 1] = {tonumber(from), tonumber(upTo), now, client}
    local sets = {sub .. 'target:c:' .. client}
    for j = i + 6, i + 5 + nt do sets[#sets + 1] = sub .. 'target:t:' .. ARGV[j] end
    local seen = {}
    for s, set in ipairs(sets) do
      for _, member in ipairs(redis.call('ZRANGEBYSCORE', set, '(' .. from, upTo)) do
        local sid, exp = string.match(member, '^(%d+):(.*)$')
        if sid and not seen[sid] then
          seen[sid] = true
          local m = sub .. 'msg:' .. sid
          local e = tonumber(exp)
          -- A broadcast in a tag or client set is the sweep's to count.
          if e and e > now and live(m) and not skipped(m, client)
            and redis.call('ZSCORE', sub .. 'target:all', member) == false then
            add(m, 1)
            -- Only the client's own set holds messages that name it (recipients).
            if s == 1 then mark(m .. ':recipients', client, 'a', at) end
          end
        end
      end
    end
    if stored then
      redis.call('HSET', ck, 'acked', upTo)
      positions[ck] = upTo
    end
  end
  i = i + 6 + nt
end
-- Pass 2, app by app: the broadcasts of all its spans, each counted once per span that
-- holds it (ends sorted; a span (from, upTo] holds id when from < id <= upTo).
for _, sub in ipairs(apps) do
  local list = spans[sub]
  local starts, ends, now = {}, {}, math.huge
  for k, span in ipairs(list) do
    starts[k] = span[1]
    ends[k] = span[2]
    if span[3] < now then now = span[3] end
  end
  table.sort(starts)
  table.sort(ends)
  -- The broadcasts of the spans' union, a stretch at a time: none between them.
  local byStart = {}
  for k, span in ipairs(list) do byStart[k] = span end
  table.sort(byStart, function(a, b) return a[1] < b[1] end)
  local members, stretch = {}, nil
  local function readStretch()
    if stretch == nil then return end
    local r = redis.call('ZRANGEBYSCORE', sub .. 'target:all', '(' .. string.format('%d', stretch[1]), string.format('%d', stretch[2]))
    for _, member in ipairs(r) do members[#members + 1] = member end
  end
  for _, span in ipairs(byStart) do
    if stretch ~= nil and span[1] <= stretch[2] then
      if span[2] > stretch[2] then stretch[2] = span[2] end
    else
      readStretch()
      stretch = {span[1], span[2]}
    end
  end
  readStretch()
  local si, ei, n = 0, 0, #list
  for _, member in ipairs(members) do
    local sid, exp = string.match(member, '^(%d+):(.*)$')
    local id, e = tonumber(sid), tonumber(exp)
    while si < n and starts[si + 1] < id do si = si + 1 end
    while ei < n and ends[ei + 1] < id do ei = ei + 1 end
    local m = sub .. 'msg:' .. sid
    -- Expiry against the batch's earliest time (ranges of members that left before the
    -- flush carry their own, a moment earlier).
    if si - ei > 0 and e and e > now and live(m) then
      if hasSkips[m] == nil then hasSkips[m] = redis.call('EXISTS', m .. ':skips') == 1 end
      if hasSkips[m] then
        -- Rare: some client skipped it. Then span by span.
        local held = 0
        for _, span in ipairs(list) do
          if span[1] < id and id <= span[2] and not skipped(m, span[4]) then held = held + 1 end
        end
        add(m, held)
      else
        add(m, si - ei)
      end
    end
  end
end
for _, m in ipairs(order) do
  if counts[m] > 0 then redis.call('HINCRBY', m .. ':receipt', 'a', counts[m]) end
end
return 1
`,
);

/**
 * A batch of receipt updates. Messages that do not exist (swept, never were, app
 * deleted) are skipped and no key is created for them. A recipient keeps the first
 * delivery and ack times; clients that were not named have no field and are skipped.
 *
 * ARGV, per update: sub, id, delivered, acked, at, n, n × deliveredTo, m, m × ackedBy.
 */
export const RECORD_RECEIPTS = new RedisScript(
  'record-receipts',
  String.raw`${MARK}
local i = 1
while i <= #ARGV do
  local m = ARGV[i] .. 'msg:' .. ARGV[i + 1]
  local delivered, acked, at = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local nd = tonumber(ARGV[i + 5])
  local na = tonumber(ARGV[i + 6 + nd])
  if redis.call('EXISTS', m .. ':receipt') == 1 then
    if delivered ~= '0' then redis.call('HINCRBY', m .. ':receipt', 'd', delivered) end
    if acked ~= '0' then redis.call('HINCRBY', m .. ':receipt', 'a', acked) end
    for j = i + 6, i + 5 + nd do mark(m .. ':recipients', ARGV[j], 'd', at) end
    for j = i + 7 + nd, i + 6 + nd + na do mark(m .. ':recipients', ARGV[j], 'a', at) end
  end
  i = i + 7 + nd + na
end
return 1
`,
);

/**
 * One batch of an app's sweep: up to `batch` messages with expiresAt <= now (their
 * entry, target members, receipt and recipients) and up to `batch` clients last seen
 * before `unseenSince`. Expired messages are found through the expiry index, not the
 * stream: TTLs differ, so expired entries are not a prefix of the log (XTRIM MINID
 * would drop live messages that sit behind a long-lived one). XDEL removes exactly the
 * expired entries.
 *
 * KEYS: expiry index, log stream, clients index. ARGV: sub, now, batch, unseenSince.
 * Returns {messages deleted, expired ids looked at, clients deleted}.
 */
export const SWEEP = new RedisScript(
  'sweep',
  String.raw`${LIST}
local sub = ARGV[1]
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local deleted = 0
for _, sid in ipairs(expired) do
  local e = redis.call('XRANGE', KEYS[2], sid .. '-0', sid .. '-0')[1]
  if e then
    local f = e[2]
    local exp, all, cs, ts = '', '0', '', ''
    for i = 1, #f, 2 do
      local k = f[i]
      if k == 'x' then exp = f[i + 1] elseif k == 'all' then all = f[i + 1]
      elseif k == 'c' then cs = f[i + 1] elseif k == 't' then ts = f[i + 1] end
    end
    local member = sid .. ':' .. exp
    if all == '1' then redis.call('ZREM', sub .. 'target:all', member) end
    for _, c in ipairs(list_decode(cs)) do redis.call('ZREM', sub .. 'target:c:' .. c, member) end
    for _, t in ipairs(list_decode(ts)) do redis.call('ZREM', sub .. 'target:t:' .. t, member) end
    deleted = deleted + redis.call('XDEL', KEYS[2], sid .. '-0')
  end
  redis.call('DEL', sub .. 'msg:' .. sid .. ':receipt', sub .. 'msg:' .. sid .. ':recipients', sub .. 'msg:' .. sid .. ':skips')
end
if #expired > 0 then redis.call('ZREM', KEYS[1], unpack(expired)) end
local unseen = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[4], 'LIMIT', 0, ARGV[3])
for _, c in ipairs(unseen) do redis.call('DEL', sub .. 'client:' .. c) end
if #unseen > 0 then redis.call('ZREM', KEYS[3], unpack(unseen)) end
return {deleted, #expired, #unseen}
`,
);

/**
 * A client connected: creates it at `startAfter` or keeps its positions, adds tags
 * (union in order of first appearance, at most maxTags), sets last seen.
 *
 * KEYS: app hash, client hash, clients index.
 * ARGV: clientId, startAfter, now, maxTags, tags to add (checked and distinct).
 * Returns {'ok', tags (list), acked, delivered, first, last} | {'unknown-app'} | {'too-many-tags', n}.
 */
export const TOUCH = new RedisScript(
  'touch',
  String.raw`${LIST}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown-app'} end
local cur = redis.call('HMGET', KEYS[2], 'tags', 'acked', 'delivered', 'first')
local known = cur[4] ~= false
local tags = known and list_decode(cur[1] or '') or {}
local have, added = {}, false
for _, t in ipairs(tags) do have[t] = true end
for i = 5, #ARGV do
  local t = ARGV[i]
  if not have[t] then
    have[t] = true
    tags[#tags + 1] = t
    added = true
  end
end
if #tags > tonumber(ARGV[4]) then return {'too-many-tags', #tags} end
local enc = (known and not added) and (cur[1] or '') or list_encode(tags)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
if known then
  redis.call('HSET', KEYS[2], 'tags', enc, 'last', ARGV[3])
  return {'ok', enc, cur[2] or '0', cur[3] or '0', cur[4], ARGV[3]}
end
redis.call('HSET', KEYS[2], 'tags', enc, 'acked', ARGV[2], 'delivered', ARGV[2], 'first', ARGV[3], 'last', ARGV[3])
return {'ok', enc, ARGV[2], ARGV[2], ARGV[3], ARGV[3]}
`,
);

/**
 * Replaces a client's tags, creating it (positions 0, seen now) when unknown.
 * KEYS: app hash, client hash, clients index. ARGV: clientId, tags (list), now.
 * Returns 1, or 0 when the app is unknown.
 */
export const SET_TAGS = new RedisScript(
  'set-tags',
  String.raw`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[2], 'first') == 1 then
  redis.call('HSET', KEYS[2], 'tags', ARGV[2])
  return 1
end
redis.call('HSET', KEYS[2], 'tags', ARGV[2], 'acked', '0', 'delivered', '0', 'first', ARGV[3], 'last', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
`,
);

/**
 * Moves positions forward: max(stored, given). Unknown clients are skipped.
 * ARGV, per update: client hash key, ackedId ('' = none), deliveredId ('' = none).
 */
export const SAVE_POSITIONS = new RedisScript(
  'save-positions',
  String.raw`
for i = 1, #ARGV, 3 do
  local key, acked, delivered = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call('HMGET', key, 'acked', 'delivered', 'first')
  if cur[3] then
    if acked ~= '' and tonumber(acked) > tonumber(cur[1] or '0') then redis.call('HSET', key, 'acked', acked) end
    if delivered ~= '' and tonumber(delivered) > tonumber(cur[2] or '0') then redis.call('HSET', key, 'delivered', delivered) end
  end
end
return 1
`,
);

const APP_FIELDS = `'secret', 'name', 'ttl', 'token', 'created', 'nanon', 'npub'`;

/**
 * Sets fields of an existing app and returns them all (APP_FIELDS order); nil when
 * there is no such app. KEYS: app hash. ARGV: field/value pairs.
 */
export const UPDATE_APP = new RedisScript(
  'update-app',
  String.raw`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return redis.call('HMGET', KEYS[1], ${APP_FIELDS})
`,
);

/** Every app: {{apikey, APP_FIELDS…}, …}. KEYS: apps index. ARGV: prefix of app hashes. */
export const LIST_APPS = new RedisScript(
  'list-apps',
  String.raw`
local out = {}
for _, k in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. k, ${APP_FIELDS})
  if f[5] then out[#out + 1] = {k, f[1], f[2], f[3], f[4], f[5], f[6], f[7]} end
end
return out
`,
);

/**
 * Removes the app's hash and index entry; returns 0 when there was no such app. From
 * then on appends, touches and receipts for it fail or do nothing, so no new key of the
 * app appears while the caller unlinks the rest (SCAN).
 * KEYS: app hash, apps index. ARGV: apikey.
 */
export const DELETE_APP = new RedisScript(
  'delete-app',
  String.raw`
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`,
);

/** Every admin, by username (byte order): {username, createdAt, …}. KEYS: admins index. ARGV: prefix of admin hashes. */
export const LIST_ADMINS = new RedisScript(
  'list-admins',
  String.raw`
local out = {}
for _, u in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local c = redis.call('HGET', ARGV[1] .. u, 'created')
  if c then
    out[#out + 1] = u
    out[#out + 1] = c
  end
end
return out
`,
);
