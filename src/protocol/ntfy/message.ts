// ntfy's message JSON (docs: https://docs.ntfy.sh/subscribe/api/#json-message-format;
// server/types.go `message` of binwiederhier/ntfy) and how a Shaddock message reads as
// one. Pure: values in, values out.
import { createHash } from 'node:crypto';
import { NtfyError } from './errors.js';

/** ntfy's topic rule (server.go topicRegex): 1 to 64 of `-_A-Za-z0-9`. */
export const TOPIC_RE = /^[-_A-Za-z0-9]{1,64}$/;
/** ntfy's message ids: 12 characters of [A-Za-z0-9] (types.go messageIDLength, util.ValidRandomString). */
export const MESSAGE_ID_LENGTH = 12;
/** The body ntfy gives a message published without one (server.go emptyMessageBody). */
export const EMPTY_MESSAGE_BODY = 'triggered';

export interface NtfyAction {
  readonly id: string;
  readonly action: string;
  readonly label: string;
  readonly clear: boolean;
  readonly url?: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly intent?: string;
  readonly extras?: Readonly<Record<string, string>>;
}

export interface NtfyAttachment {
  readonly name: string;
  readonly type?: string;
  readonly size?: number;
  readonly expires?: number;
  readonly url: string;
}

/**
 * What a push published through ntfy carries in its `data` (event `ntfy`): the fields of
 * ntfy's message that are not derived from the stored message (id, time, expires, topic).
 * A native push reads through `ntfyContent`.
 */
export interface NtfyContent {
  readonly message: string;
  readonly title?: string;
  readonly priority?: number;
  readonly tags?: readonly string[];
  readonly click?: string;
  readonly icon?: string;
  readonly actions?: readonly NtfyAction[];
  readonly attachment?: NtfyAttachment;
  readonly content_type?: string;
  readonly encoding?: string;
}

/** The event name of pushes published through ntfy (what native clients receive). */
export const NTFY_EVENT = 'ntfy';

/** A Shaddock message as the mapping needs it (a StoredMessage fits). */
export interface MessageLike {
  readonly id: number;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly data: unknown;
  readonly target: { readonly all: boolean; readonly tags: readonly string[] };
}

// ---- ids ----------------------------------------------------------------------------

const B62 = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const B62_INDEX = new Map([...B62].map((c, i) => [c, i] as const));
/** 62^9 > 2^53: nine digits hold every safe integer id. */
const ID_DIGITS = 9;

/** The kind character of an id: a stored message, or a scheduled message not yet due. */
export type IdKind = 'message' | 'scheduled';
const KIND_CHAR: Readonly<Record<IdKind, string>> = { message: 'm', scheduled: 's' };

/**
 * Two characters that differ between apps: an ntfy client that dedups by id (the
 * Android app does, per subscription) never mistakes a message of a recreated app for
 * one it already has.
 */
export function idSalt(apikey: string): string {
  const h = createHash('sha256').update(apikey).digest();
  return B62[h[0]! % 62]! + B62[h[1]! % 62]!;
}

/**
 * ntfy id of a Shaddock message (or scheduled entry): salt (2) + kind (1) + base62 of the
 * number (9) = 12 characters of [A-Za-z0-9], as ntfy's own. Reversible (`decodeId`), so
 * `since=<id>` resumes from the store.
 */
export function encodeId(salt: string, n: number, kind: IdKind = 'message'): string {
  let digits = '';
  let v = n;
  for (let i = 0; i < ID_DIGITS; i++) {
    digits = B62[v % 62]! + digits;
    v = Math.floor(v / 62);
  }
  return salt + KIND_CHAR[kind] + digits;
}

/** The number and kind of an id made by `encodeId` with this salt; undefined for any other string. */
export function decodeId(salt: string, id: string): { readonly n: number; readonly kind: IdKind } | undefined {
  if (id.length !== MESSAGE_ID_LENGTH || !id.startsWith(salt)) return undefined;
  const kindChar = id[2];
  const kind: IdKind | undefined = kindChar === 'm' ? 'message' : kindChar === 's' ? 'scheduled' : undefined;
  if (kind === undefined) return undefined;
  let n = 0;
  for (const c of id.slice(3)) {
    const d = B62_INDEX.get(c);
    if (d === undefined) return undefined;
    n = n * 62 + d;
  }
  return Number.isSafeInteger(n) ? { n, kind } : undefined;
}

/** ntfy's validMessageID: 12 characters of its random-string alphabet. */
export function isMessageIdShape(s: string): boolean {
  return s.length === MESSAGE_ID_LENGTH && /^[A-Za-z0-9]+$/.test(s);
}

// ---- Shaddock message → ntfy fields ----------------------------------------------------

/**
 * How any push reads to an ntfy subscriber (docs/ntfy.md, "Native pushes"):
 * - `data` an object with a string `message` (what ntfy publishes store, and what a
 *   back end can send on purpose): its ntfy fields, each kept only when of ntfy's type;
 * - `data` a string: the message;
 * - anything else: its JSON text as the message (`null` → ntfy's "triggered").
 */
export function ntfyContent(data: unknown): NtfyContent {
  if (typeof data === 'string') return { message: data };
  if (typeof data === 'object' && data !== null && !Array.isArray(data)) {
    const d = data as Record<string, unknown>;
    if (typeof d['message'] === 'string') {
      const str = (k: string): string | undefined => (typeof d[k] === 'string' && d[k] !== '' ? d[k] : undefined);
      const priority = d['priority'];
      const tags = Array.isArray(d['tags']) && d['tags'].every((t) => typeof t === 'string') ? (d['tags'] as string[]) : undefined;
      const actions = Array.isArray(d['actions']) ? (d['actions'].filter(isAction) as NtfyAction[]) : undefined;
      const attachment = isAttachment(d['attachment']) ? d['attachment'] : undefined;
      return {
        message: d['message'],
        ...optional('title', str('title')),
        ...(typeof priority === 'number' && Number.isInteger(priority) && priority >= 1 && priority <= 5 && { priority }),
        ...(tags && tags.length > 0 && { tags }),
        ...optional('click', str('click')),
        ...optional('icon', str('icon')),
        ...(actions && actions.length > 0 && { actions }),
        ...(attachment && { attachment }),
        ...optional('content_type', str('content_type')),
        ...optional('encoding', str('encoding')),
      };
    }
  }
  if (data === null || data === undefined) return { message: EMPTY_MESSAGE_BODY };
  return { message: JSON.stringify(data) };
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

function isAction(a: unknown): boolean {
  if (typeof a !== 'object' || a === null) return false;
  const r = a as Record<string, unknown>;
  return typeof r['action'] === 'string' && typeof r['label'] === 'string';
}

function isAttachment(a: unknown): a is NtfyAttachment {
  if (typeof a !== 'object' || a === null) return false;
  const r = a as Record<string, unknown>;
  return typeof r['name'] === 'string' && typeof r['url'] === 'string';
}

/**
 * The topic a message shows under to a subscriber of `topics`: the first of its tags the
 * subscriber has; a message to every client (or to this client by id) shows under the
 * subscriber's first topic. Undefined: not for this subscriber (it was delivered to the
 * client for a tag it held from before, say) — not shown.
 */
export function topicFor(msg: MessageLike, topics: readonly string[], byClientId: boolean): string | undefined {
  for (const tag of msg.target.tags) if (topics.includes(tag)) return tag;
  if (msg.target.all || byClientId) return topics[0];
  return undefined;
}

/** The message JSON of ntfy, its fields in ntfy's order (Go's struct order, empty ones omitted). */
export function messageJson(id: string, time: number, expires: number | undefined, event: string, topic: string, c: NtfyContent | undefined): string {
  const o: Record<string, unknown> = { id, time };
  if (expires !== undefined && expires !== 0) o['expires'] = expires;
  o['event'] = event;
  o['topic'] = topic;
  if (c) {
    if (c.title !== undefined) o['title'] = c.title;
    if (c.message !== '') o['message'] = c.message;
    if (c.priority !== undefined) o['priority'] = c.priority;
    if (c.tags !== undefined) o['tags'] = c.tags;
    if (c.click !== undefined) o['click'] = c.click;
    if (c.icon !== undefined) o['icon'] = c.icon;
    if (c.actions !== undefined) o['actions'] = c.actions;
    if (c.attachment !== undefined) o['attachment'] = c.attachment;
    if (c.content_type !== undefined) o['content_type'] = c.content_type;
    if (c.encoding !== undefined) o['encoding'] = c.encoding;
  }
  return JSON.stringify(o);
}

/**
 * ntfy's `time`/`expires` of a stored message, Unix seconds. A message published with
 * `X-Cache: no` is stored with no time to live (expiresAt = createdAt): ntfy sends no
 * `expires` for such a message.
 */
export function messageTimes(msg: MessageLike): { readonly time: number; readonly expires: number | undefined } {
  const time = Math.floor(msg.createdAt / 1000);
  return { time, expires: msg.expiresAt > msg.createdAt ? Math.floor(msg.expiresAt / 1000) : undefined };
}

// ---- parameters -----------------------------------------------------------------------

/** ntfy's util.ParsePriority: 1–5 or min/low/default/high/max/urgent; '' → undefined. */
export function parsePriority(s: string): number | undefined {
  switch (s.trim().toLowerCase()) {
    case '':
      return undefined;
    case '1':
    case 'min':
      return 1;
    case '2':
    case 'low':
      return 2;
    case '3':
    case 'default':
      return 3;
    case '4':
    case 'high':
      return 4;
    case '5':
    case 'max':
    case 'urgent':
      return 5;
    default:
      throw new NtfyError('NTFY_PRIORITY_INVALID');
  }
}

/** ntfy's toBool: 1/yes/true (any case). */
export function toBool(s: string): boolean {
  const v = s.toLowerCase();
  return v === '1' || v === 'yes' || v === 'true';
}

const GO_UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/**
 * Go's duration syntax. Every element must start with a digit or a dot and digits: were
 * the number optional, `1ms` would also read as `1m` + `s`, and a string of many `1ms`
 * would be tried in exponentially many ways (a ReDoS from one header).
 */
const GO_DURATION_RE = /^(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h))+$/;
const GO_ELEMENT_RE = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)/g;
const DAYS_RE = /^(\d+)\s*(d|days?|h|hours?|m|mins?|minutes?|s|secs?|seconds?)$/i;
/** Longer than any duration or time anyone writes: refused before a regular expression sees it. */
const MAX_TIME_TEXT = 64;

/**
 * ntfy's util.ParseDuration: Go's time.ParseDuration (`1h30m`, `90s`, `1.5h`), or a
 * number with a unit word (`2d`, `10 minutes`). Milliseconds, or undefined.
 */
export function parseDuration(s: string): number | undefined {
  if (s.length > MAX_TIME_TEXT) return undefined;
  if (GO_DURATION_RE.test(s)) {
    let total = 0;
    for (const m of s.matchAll(GO_ELEMENT_RE)) total += Number(m[1]) * GO_UNIT_MS[m[2]!]!;
    return total;
  }
  const m = DAYS_RE.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2]!.toLowerCase()[0];
  return n * (unit === 'd' ? 86_400_000 : unit === 'h' ? 3_600_000 : unit === 'm' ? 60_000 : 1000);
}

/**
 * ntfy's util.ParseFutureTime for X-Delay/X-At/X-In: a Unix timestamp not in the past,
 * or a duration from now. Epoch ms, or undefined. (ntfy also reads natural language —
 * "tomorrow, 10am" — through a library; we do not: docs/ntfy.md.)
 */
export function parseFutureTime(s: string, now: number): number | undefined {
  const t = s.trim();
  if (/^-?\d+$/.test(t)) {
    const unix = Number(t);
    return unix >= Math.floor(now / 1000) ? unix * 1000 : undefined;
  }
  const d = parseDuration(t);
  return d === undefined ? undefined : now + d;
}

/** Where a subscription starts (ntfy's sinceMarker). */
export type Since =
  | { readonly kind: 'none' }
  | { readonly kind: 'all' }
  | { readonly kind: 'latest' }
  | { readonly kind: 'id'; readonly id: string }
  | { readonly kind: 'time'; readonly unix: number };

/** ntfy's parseSince (server.go): ''/none, all, latest, a message id, Unix time, duration. */
export function parseSince(s: string, poll: boolean, now: number): Since {
  if (s === '') return poll ? { kind: 'all' } : { kind: 'none' };
  if (s === 'all') return { kind: 'all' };
  if (s === 'latest') return { kind: 'latest' };
  if (s === 'none') return { kind: 'none' };
  if (isMessageIdShape(s)) return { kind: 'id', id: s };
  if (/^[-+]?\d+$/.test(s)) return { kind: 'time', unix: Number(s) };
  // Go's time.ParseDuration here (no day units), as ntfy's parseSince.
  const d = s.length <= MAX_TIME_TEXT && GO_DURATION_RE.test(s) ? parseDuration(s) : undefined;
  if (d !== undefined) return { kind: 'time', unix: Math.floor((now - d) / 1000) };
  throw new NtfyError('NTFY_SINCE_INVALID');
}

/** ntfy's queryFilter: applies to `message` events only. */
export interface Filters {
  readonly id?: string;
  readonly message?: string;
  readonly title?: string;
  readonly tags?: readonly string[];
  readonly priorities?: readonly number[];
}

export function passes(f: Filters, id: string, c: NtfyContent): boolean {
  if (f.id !== undefined && id !== f.id) return false;
  if (f.message !== undefined && c.message !== f.message) return false;
  if (f.title !== undefined && (c.title ?? '') !== f.title) return false;
  // "For query filters, default priority (3) is the same as 'not set' (0)" (types.go).
  if (f.priorities !== undefined && !f.priorities.includes(c.priority ?? 3)) return false;
  if (f.tags !== undefined && !f.tags.every((t) => c.tags?.includes(t) === true)) return false;
  return true;
}
