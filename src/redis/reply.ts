// Redis replies are `unknown` until checked (docs/conventions.md §11). ioredis hands back strings for
// bulk replies (UTF-8 decoded), numbers for integer replies, arrays, and null; a Lua
// `false`/nil becomes null. These guards turn a reply into a typed value or throw
// MalformedReplyError, which every implementation reports as a failure of the server,
// never as bad input.

export class MalformedReplyError extends Error {
  override readonly name = 'MalformedReplyError';
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v;
}

export function replyArray(v: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(v)) throw new MalformedReplyError(`${what}: expected an array, got ${describe(v)}`);
  return v as readonly unknown[];
}

export function replyString(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new MalformedReplyError(`${what}: expected a string, got ${describe(v)}`);
  return v;
}

export function replyOptionalString(v: unknown, what: string): string | undefined {
  return v === null ? undefined : replyString(v, what);
}

/** An integer reply, or a bulk string holding a decimal safe integer (what HGET returns). */
export function replyInteger(v: unknown, what: string): number {
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) return v;
  } else if (typeof v === 'string' && /^-?\d{1,16}$/.test(v)) {
    const n = Number(v);
    if (Number.isSafeInteger(n)) return n;
  }
  throw new MalformedReplyError(`${what}: expected an integer, got ${typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : describe(v)}`);
}

/** A flat [field, value, field, value…] reply (HGETALL, a stream entry's fields) as pairs. */
export function replyPairs(v: unknown, what: string): readonly (readonly [string, string])[] {
  const flat = replyArray(v, what);
  if (flat.length % 2 !== 0) throw new MalformedReplyError(`${what}: expected field/value pairs, got ${flat.length} items`);
  const pairs: (readonly [string, string])[] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([replyString(flat[i], what), replyString(flat[i + 1], what)]);
  return pairs;
}

/**
 * A list of strings in one Redis string: each item followed by "\n", with "\\" and
 * "\n" inside an item escaped as "\\\\" and "\\n". Lua scripts read and write the same
 * form (LUA_LIST in lua.ts): unlike JSON it needs no decoder on the Redis
 * side (cjson rejects lone surrogates that JSON.stringify writes as escapes), and it
 * keeps every string as it is, empty ones included.
 */
export function encodeList(items: readonly string[]): string {
  let out = '';
  for (const item of items) out += `${item.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`;
  return out;
}

export function decodeList(encoded: string, what: string): string[] {
  if (encoded === '') return [];
  if (!encoded.endsWith('\n')) throw new MalformedReplyError(`${what}: malformed list`);
  const parts = encoded.split('\n');
  parts.pop();
  return parts.map((p) => p.replace(/\\([\s\S])/g, (_, c: string) => (c === 'n' ? '\n' : c)));
}
