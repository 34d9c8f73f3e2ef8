// The JSON protocol of the plain WebSocket connector (docs/connectors.md, "Plain
// WebSocket"): one JSON object per text frame, told apart by `type`. Pure: bytes in,
// typed values or a ProtocolError out; server frames out as strings or Buffers.
import { z } from 'zod';
import { ProtocolError } from '../errors.js';

/** A client-chosen request tag, echoed in the reply. */
export type Ref = string | number;

export interface EnterClientFrame {
  readonly type: 'enter';
  readonly role: 'client';
  readonly apikey: string;
  readonly clientId: string;
  readonly token: string | undefined;
  /** The last message id the client saw; delivery resumes after it. */
  readonly lastId: number | undefined;
  readonly tags: readonly string[] | undefined;
  readonly ref: Ref | undefined;
}

export interface EnterManagerFrame {
  readonly type: 'enter';
  readonly role: 'manager';
  readonly apikey: string;
  /** The app's secret; or an admin's `userId` and `password`. */
  readonly secret: string | undefined;
  readonly userId: string | undefined;
  readonly password: string | undefined;
  readonly ref: Ref | undefined;
}

export interface AckFrame {
  readonly type: 'ack';
  readonly id: number;
  readonly ref: Ref | undefined;
}

export interface TagsFrame {
  readonly type: 'subscribe' | 'unsubscribe';
  readonly tags: readonly string[];
  readonly ref: Ref | undefined;
}

export interface PushFrame {
  readonly type: 'push';
  readonly event: string;
  readonly data: unknown;
  /** Undefined: every client of the app. */
  readonly to: { readonly clientIds: readonly string[]; readonly tags: readonly string[] } | undefined;
  /** Seconds; the app's default when undefined. */
  readonly ttl: number | undefined;
  readonly ref: Ref | undefined;
}

export interface PingFrame {
  readonly type: 'ping';
  readonly ref: Ref | undefined;
}

/** Every frame a client may send. */
export type ClientFrame = EnterClientFrame | EnterManagerFrame | AckFrame | TagsFrame | PushFrame | PingFrame;
export type ClientFrameType = ClientFrame['type'];

/**
 * Frames the server sends. `ref` is present only when the request carried one (an
 * undefined `ref` is left out by JSON.stringify).
 */
export type ServerFrame =
  | { readonly type: 'entered'; readonly ref?: Ref | undefined; readonly clientId?: string; readonly users?: readonly string[] }
  | { readonly type: 'message'; readonly id: number; readonly event: string; readonly data: unknown }
  | { readonly type: 'event'; readonly event: string; readonly data: unknown }
  | { readonly type: 'pushed'; readonly ref?: Ref | undefined; readonly id: number; readonly targeted: number }
  | { readonly type: 'ok'; readonly ref?: Ref | undefined }
  | { readonly type: 'pong'; readonly ref?: Ref | undefined }
  | { readonly type: 'error'; readonly ref?: Ref | undefined; readonly code: string; readonly message: string }
  | { readonly type: 'kick'; readonly reason: string };

export interface JsonLimits {
  /** Largest frame accepted, bytes (UTF-8). */
  readonly maxBytes: number;
  /** Deepest nesting of arrays and objects accepted. @default 32 */
  readonly maxDepth?: number;
}

export const DEFAULT_MAX_DEPTH = 32;
export const MAX_TAGS = 256;
export const MAX_TAG_LENGTH = 128;
export const MAX_REF_LENGTH = 128;
export const MAX_TARGET_CLIENT_IDS = 10_000;
export const MAX_TTL_SECONDS = 365 * 24 * 3600;
export const DEFAULT_EVENT = 'onMsg';

const ref = z
  .union([z.string().max(MAX_REF_LENGTH), z.number()], { error: `expected a number or a string of at most ${MAX_REF_LENGTH} characters` })
  .optional();
const tags = z.array(z.string().min(1).max(MAX_TAG_LENGTH)).max(MAX_TAGS);
// Ids are positive safe integers (zod's int() stops at 2^53 - 1); 0 means "before the first".
const messageId = z.number().int().min(0);
// What an event name may hold is the hub's rule for every way in (src/hub/push-rules.ts):
// the frame only has to carry a string.
const eventName = z.string();

const SCHEMAS = {
  enterClient: z.object({
    apikey: z.string(),
    clientId: z.string(),
    token: z.string().optional(),
    lastId: messageId.optional(),
    tags: tags.optional(),
    ref,
  }),
  enterManager: z.object({
    apikey: z.string(),
    secret: z.string().optional(),
    userId: z.string().optional(),
    password: z.string().optional(),
    ref,
  }),
  ack: z.object({ id: messageId, ref }),
  tags: z.object({ tags, ref }),
  push: z.object({
    event: eventName.optional(),
    data: z.unknown(),
    to: z
      .object({
        clientIds: z.array(z.string().min(1)).max(MAX_TARGET_CLIENT_IDS).optional(),
        tags: tags.optional(),
      })
      .optional(),
    ttl: z.number().int().min(1).max(MAX_TTL_SECONDS).optional(),
    ref,
  }),
  ping: z.object({ ref }),
} as const;

const TYPES: readonly ClientFrameType[] = ['enter', 'ack', 'subscribe', 'unsubscribe', 'push', 'ping'];

/**
 * Parses one text frame into JSON. Throws LIMIT_PAYLOAD (too many bytes, nested too
 * deep: checked before parsing) or PROTO_BAD_JSON.
 */
export function decodeJson(input: Buffer | string, limits: JsonLimits): unknown {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  if (bytes.length > limits.maxBytes) {
    throw new ProtocolError('LIMIT_PAYLOAD', `frame of ${bytes.length} B > ${limits.maxBytes} B`);
  }
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (nestingDepth(bytes, maxDepth) > maxDepth) {
    throw new ProtocolError('LIMIT_PAYLOAD', `JSON nested deeper than ${maxDepth} levels`);
  }
  try {
    return JSON.parse(typeof input === 'string' ? input : input.toString('utf8')) as unknown;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new ProtocolError('PROTO_BAD_JSON', `the frame is not valid JSON: ${why.slice(0, 100)}`, { cause: err });
  }
}

/**
 * Checks a parsed frame against the schema. Throws PROTO_BAD_MESSAGE with a message
 * naming the field: `type: unknown type "x"`, `clientId: required`, `tags.1: …`.
 * Unknown fields are ignored (newer clients may send more).
 */
export function toClientFrame(value: unknown): ClientFrame {
  if (!isRecord(value)) throw bad('a frame must be a JSON object');
  const type = value['type'];
  if (type === undefined) throw bad('type: required');
  if (typeof type !== 'string') throw bad('type: expected a string');
  switch (type) {
    case 'enter': {
      const role = value['role'];
      if (role === 'manager') {
        const f = check(SCHEMAS.enterManager, value);
        if (f.secret === undefined && (f.userId === undefined || f.password === undefined)) {
          throw bad('secret: required (or userId and password of an admin)');
        }
        return { type, role, apikey: f.apikey, secret: f.secret, userId: f.userId, password: f.password, ref: f.ref };
      }
      if (role !== undefined && role !== 'client') throw bad('role: expected "client" or "manager"');
      const f = check(SCHEMAS.enterClient, value);
      return { type, role: 'client', apikey: f.apikey, clientId: f.clientId, token: f.token, lastId: f.lastId, tags: f.tags, ref: f.ref };
    }
    case 'ack': {
      const f = check(SCHEMAS.ack, value);
      return { type, id: f.id, ref: f.ref };
    }
    case 'subscribe':
    case 'unsubscribe': {
      const f = check(SCHEMAS.tags, value);
      return { type, tags: f.tags, ref: f.ref };
    }
    case 'push': {
      const f = check(SCHEMAS.push, value);
      let to: PushFrame['to'];
      if (f.to !== undefined) {
        to = { clientIds: f.to.clientIds ?? [], tags: f.to.tags ?? [] };
        if (to.clientIds.length === 0 && to.tags.length === 0) {
          throw bad('to: name clientIds or tags, or leave "to" out to push to every client');
        }
      }
      return { type, event: f.event ?? DEFAULT_EVENT, data: f.data, to, ttl: f.ttl, ref: f.ref };
    }
    case 'ping':
      return { type, ref: check(SCHEMAS.ping, value).ref };
    default:
      throw bad(`type: unknown type "${type.slice(0, 32)}" (expected ${TYPES.join(', ')})`);
  }
}

/** `decodeJson` then `toClientFrame`. */
export function parseClientFrame(input: Buffer | string, limits: JsonLimits): ClientFrame {
  return toClientFrame(decodeJson(input, limits));
}

/** The `ref` of a frame that failed validation, if it carried a usable one, to echo in the error. */
export function readRef(value: unknown): Ref | undefined {
  if (!isRecord(value)) return undefined;
  const r = value['ref'];
  if (typeof r === 'string' && r.length <= MAX_REF_LENGTH) return r;
  if (typeof r === 'number' && Number.isFinite(r)) return r;
  return undefined;
}

/** A server frame as JSON text. */
export function encodeServerFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/** A server frame as UTF-8 bytes, for writing the same Buffer to many sockets. */
export function encodeServerFrameBytes(frame: ServerFrame): Buffer {
  return Buffer.from(JSON.stringify(frame), 'utf8');
}

/** What a pushed message carries on the wire (a StoredMessage fits). */
export interface WireMessage {
  readonly id: number;
  readonly event: string;
  readonly data: unknown;
}

/** `{"type":"message","id","event","data"}`: encoded once per message, shared by every WebSocket client. */
export function encodeMessageFrame(msg: WireMessage): Buffer {
  // JSON has no `undefined`: a message without data reads as null, not as a missing key.
  return encodeServerFrameBytes({ type: 'message', id: msg.id, event: msg.event, data: msg.data ?? null });
}

/** `{"type":"event","event","data"}`: a hub event (presence) to managers. */
export function encodeEventFrame(event: string, data: unknown): Buffer {
  return encodeServerFrameBytes({ type: 'event', event, data: data ?? null });
}

function check<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value, { error: requiredMessage });
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : 'frame';
  throw bad(`${path}: ${issue?.message ?? 'invalid'}`);
}

// zod's message for a missing key is "expected nonoptional, received undefined".
function requiredMessage(issue: z.core.$ZodRawIssue): string | undefined {
  return issue.input === undefined ? 'required' : undefined;
}

function bad(message: string): ProtocolError {
  return new ProtocolError('PROTO_BAD_MESSAGE', message);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * The deepest nesting of `{` and `[` outside strings, stopping early past `limit`.
 * Works on UTF-8 bytes: every byte of a multi-byte character is >= 0x80, so it never
 * looks like a bracket or a quote. Malformed JSON gives some number; JSON.parse then
 * rejects it.
 */
function nestingDepth(bytes: Buffer, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) {
      inString = true;
    } else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
      depth--;
    }
  }
  return max;
}
