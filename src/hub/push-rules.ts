// What a push may hold, for every way in (HTTP, Pomelo routes, socket.io, /ws, MQTT):
// checked once, by Hub.publish, before anything is stored. A message that some
// connector cannot carry would be accepted and then refused at every delivery and
// every replay (docs/api.md "Push rules"). Pure: imports nothing of ours but types.
import type { Target } from '../store/store.js';

/**
 * The longest event name, in UTF-8 bytes. The binding limit is Pomelo's: a push
 * carries its route behind a one-byte length (the Pomelo message header, see
 * docs/pomelo.md), so at most 255 bytes. The others are wider: an MQTT message carries the
 * event in its JSON payload (the topic is the client's or the tag's), socket.io in its
 * JSON packet, SSE on its `event:` line, plain WebSocket in its JSON frame.
 */
export const MAX_EVENT_BYTES = 255;
/**
 * The deepest nesting of arrays and objects in `data` (a scalar is 0, `{}` is 1).
 * Clients parse what they receive, and Pomelo clients get it one level deeper
 * (`{msg: data, id}`); 64 is far beyond real payloads and far below any parser's stack.
 */
export const MAX_DATA_DEPTH = 64;
/** Client ids one push may name. */
export const MAX_PUSH_CLIENT_IDS = 10_000;
/** Tags one push may name (a client holds at most as many). */
export const MAX_PUSH_TAGS = 256;
/** A client id, in characters (as the hub's enter). */
export const MAX_PUSH_CLIENT_ID_LENGTH = 256;
/** A tag, in characters (as the hub's subscribe). */
export const MAX_PUSH_TAG_LENGTH = 128;
/** The longest time to live a push may ask for: one year. */
export const MAX_PUSH_TTL_SECONDS = 365 * 24 * 3600;

/**
 * The stable code of a refused push (HTTP 400, `error` in Pomelo and socket.io answers,
 * the ws error frame's `code`); the message starts with the field's name.
 */
export const PUSH_INVALID = 'PUSH_INVALID';

/** Why a push is refused: the field, and a message that starts with the field's name. */
export interface PushViolation {
  readonly field: 'event' | 'data' | 'to' | 'ttl';
  readonly message: string;
}

/** The fields of a push, as they reach the hub from any way in. */
export interface PushFields {
  readonly event: unknown;
  readonly data: unknown;
  readonly target: Target;
  readonly ttlSeconds?: number | undefined;
}

/** The first rule `push` breaks, or undefined when every connector can carry it. */
export function checkPush(push: PushFields): PushViolation | undefined {
  return checkEvent(push.event) ?? checkTarget(push.target) ?? checkTtl(push.ttlSeconds) ?? checkData(push.data);
}

/** An event name: 1 to MAX_EVENT_BYTES UTF-8 bytes of well-formed Unicode, no C0 control or DEL. */
export function checkEvent(event: unknown): PushViolation | undefined {
  if (typeof event !== 'string' || event.length === 0) return violation('event', 'event: expected a non-empty string');
  // Bytes, not characters: 130 × "é" is 130 characters and 260 bytes.
  const bytes = Buffer.byteLength(event, 'utf8');
  if (bytes > MAX_EVENT_BYTES) {
    return violation('event', `event: ${bytes} bytes in UTF-8, at most ${MAX_EVENT_BYTES} (a Pomelo route's length is one byte)`);
  }
  // An SSE `event:` line ends at CR or LF; NUL and the rest have no place in a route.
  if (hasControlCharacter(event)) return violation('event', 'event: must not contain control characters (U+0000–U+001F, U+007F)');
  // A lone surrogate has no UTF-8 form: a Pomelo client would read U+FFFD, another name.
  if (hasLoneSurrogate(event)) return violation('event', 'event: must be well-formed Unicode (a lone surrogate has no UTF-8 form)');
  return undefined;
}

function checkTarget(target: Target): PushViolation | undefined {
  const { clientIds, tags } = target;
  if (clientIds.length > MAX_PUSH_CLIENT_IDS) return violation('to', `to.clientIds: at most ${MAX_PUSH_CLIENT_IDS} client ids`);
  for (const id of clientIds) {
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_PUSH_CLIENT_ID_LENGTH) {
      return violation('to', `to.clientIds: a client id is 1 to ${MAX_PUSH_CLIENT_ID_LENGTH} characters`);
    }
  }
  if (tags.length > MAX_PUSH_TAGS) return violation('to', `to.tags: at most ${MAX_PUSH_TAGS} tags`);
  for (const tag of tags) {
    if (typeof tag !== 'string' || tag.length === 0 || tag.length > MAX_PUSH_TAG_LENGTH) {
      return violation('to', `to.tags: a tag is 1 to ${MAX_PUSH_TAG_LENGTH} characters`);
    }
  }
  if (!target.all && clientIds.length === 0 && tags.length === 0) {
    return violation('to', 'to: name clientIds or tags, or leave "to" out to push to every client');
  }
  return undefined;
}

function checkTtl(ttl: number | undefined): PushViolation | undefined {
  if (ttl === undefined) return undefined;
  // 0 is "now or never": delivered to who is online, never replayed (ntfy's `X-Cache: no`,
  // RFC 8030 §5.2's TTL 0); the message is still stored, for its id, history and receipt.
  if (!Number.isSafeInteger(ttl) || ttl < 0 || ttl > MAX_PUSH_TTL_SECONDS) {
    return violation('ttl', `ttl: whole seconds from 0 to ${MAX_PUSH_TTL_SECONDS}`);
  }
  return undefined;
}

/**
 * `data` must be there (JSON null is fine) and nested at most MAX_DATA_DEPTH deep.
 * Walked with a stack of our own, not by recursion: a value nested 5,000 deep must
 * get a clear refusal, not overflow the call stack.
 */
export function checkData(data: unknown): PushViolation | undefined {
  if (data === undefined) return violation('data', 'data: required (any JSON value)');
  if (dataDepthOver(data, MAX_DATA_DEPTH)) {
    return violation('data', `data: nested deeper than ${MAX_DATA_DEPTH} levels of arrays and objects`);
  }
  return undefined;
}

/** True when `value` nests arrays and objects more than `limit` deep; stops as soon as it knows. */
export function dataDepthOver(value: unknown, limit: number): boolean {
  if (!isContainer(value)) return false;
  const values: object[] = [value];
  const depths: number[] = [1];
  while (values.length > 0) {
    const v = values.pop()!;
    const depth = depths.pop()!;
    if (depth > limit) return true;
    const children = Array.isArray(v) ? (v as unknown[]) : Object.values(v);
    for (const child of children) {
      if (isContainer(child)) {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/** An array or a plain object; a Buffer (a socket.io binary attachment) is a leaf. */
function isContainer(v: unknown): v is object {
  return typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer);
}

/** C0 controls and DEL (U+0000–U+001F, U+007F). */
export function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = s.charCodeAt(i + 1);
    // A high surrogate followed by a low one is a pair; anything else stands alone.
    if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) i++;
    else return true;
  }
  return false;
}

function violation(field: PushViolation['field'], message: string): PushViolation {
  return { field, message };
}
