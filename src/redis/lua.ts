// Lua snippets shared by the scripts (prepended to a script's source).

/**
 * list_decode / list_encode: the string-list form of encodeList/decodeList in reply.ts
 * (each item + "\n", "\\" and "\n" escaped). No JSON inside Lua: cjson rejects the lone
 * surrogates that JSON.stringify writes as escapes.
 */
export const LUA_LIST = String.raw`
local function list_decode(s)
  local out = {}
  if not s then return out end
  for raw in string.gmatch(s, '([^\n]*)\n') do
    out[#out + 1] = (string.gsub(raw, '\\(.)', function(c) if c == 'n' then return '\n' end return c end))
  end
  return out
end
local function list_encode(items)
  local parts = {}
  for i, s in ipairs(items) do
    parts[i] = (string.gsub(string.gsub(s, '\\', '\\\\'), '\n', '\\n')) .. '\n'
  end
  return table.concat(parts)
end
`;

/**
 * now_ms(): the Redis server's clock in ms. Presence compares heartbeats written by
 * different nodes, so it uses one clock, the server's, and node clocks may differ.
 */
export const LUA_NOW = String.raw`
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;
