/**
 * Pomelo message layer (docs/pomelo-protocol.md §3): the body of a DATA package.
 *
 *   flag (1 B) | id (LE varint, REQUEST/RESPONSE only) | route (REQUEST/NOTIFY/PUSH) | body
 *
 * Encoders size their output up front (one allocation, no intermediate buffers): a
 * push is encoded once per broadcast and the same Buffer goes to every recipient.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { ProtocolError } from '../errors.js';
import { HEADER_BYTES, MAX_BODY, PackageType, writeHeader } from './package.js';

export const MessageType = { REQUEST: 0, NOTIFY: 1, RESPONSE: 2, PUSH: 3 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export interface Message {
  /** `(flag >> 1) & 7`, as the reference decodes it; types 4..7 carry neither id nor route. */
  readonly type: MessageType | 4 | 5 | 6 | 7;
  /** The id read as an unsigned LE varint; 0 when the type has no id. */
  readonly id: number;
  /**
   * The id's varint bytes exactly as received (empty when absent). Echo these in the
   * response: canonical ids come back unchanged and the legacy big-endian browser
   * bundle gets its own bytes back (docs/pomelo-protocol.md §3.2, §16.2, vectors `legacy-id-*`).
   */
  readonly idBytes: Buffer;
  /** string route, number = compressed route code (not resolved), null when the type has none. */
  readonly route: string | number | null;
  /** Flag bit 0, as received (the reference reports it for every type). */
  readonly compressRoute: boolean;
  /** View of the bytes after the route (or id); treat as read-only. */
  readonly body: Buffer;
}

const FLAG_COMPRESS_ROUTE = 0x01;
/** Largest id a message varint may carry: 5 bytes, unsigned 32-bit. */
export const MAX_MESSAGE_ID = 0xffffffff;
const MAX_ID_BYTES = 5;
const MAX_ROUTE_BYTES = 255;
const MAX_ROUTE_CODE = 0xffff;
const EMPTY = Buffer.alloc(0);

function hasId(type: number): boolean {
  return type === MessageType.REQUEST || type === MessageType.RESPONSE;
}

function hasRoute(type: number): boolean {
  return type === MessageType.REQUEST || type === MessageType.NOTIFY || type === MessageType.PUSH;
}

function truncated(what: string): ProtocolError {
  return new ProtocolError('PROTO_TRUNCATED', `message ends inside the ${what}`);
}

/**
 * Reads a message id varint (low group first) at `offset`.
 * @throws ProtocolError PROTO_TRUNCATED when the input ends inside it, PROTO_BAD_VARINT
 *   when it is longer than 5 bytes or above 2^32-1.
 */
export function decodeVarint(buf: Buffer, offset: number): { value: number; used: number } {
  let value = 0;
  for (let i = 0; i < MAX_ID_BYTES; i++) {
    const at = offset + i;
    if (at >= buf.length) throw truncated('message id');
    const b = buf[at]!;
    // Multiplication, not shifts: the reference's 32-bit shifts turn ids >= 2^31 negative.
    value += (b & 0x7f) * 2 ** (7 * i);
    if (b < 0x80) {
      if (value > MAX_MESSAGE_ID) throw new ProtocolError('PROTO_BAD_VARINT', `message id ${value} is above 2^32-1`);
      return { value, used: i + 1 };
    }
  }
  throw new ProtocolError('PROTO_BAD_VARINT', 'message id varint is longer than 5 bytes');
}

/** Bytes `encodeVarint(n)` produces; `n` must be a valid id. */
export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  return 5;
}

function checkId(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_MESSAGE_ID) {
    throw new ProtocolError('PROTO_BAD_VARINT', `message id ${n} is not an integer in 0..2^32-1`);
  }
}

function writeVarint(out: Buffer, offset: number, n: number): number {
  while (n >= 0x80) {
    out[offset++] = (n & 0x7f) | 0x80;
    n = n >>> 7; // n <= 2^32-1, so the unsigned shift is exact
  }
  out[offset++] = n;
  return offset;
}

/** Canonical LE varint of a message id (0..2^32-1), e.g. 300 => `ac 02` (docs/pomelo-protocol.md §3.2). */
export function encodeVarint(n: number): Buffer {
  checkId(n);
  const out = Buffer.allocUnsafe(varintSize(n));
  writeVarint(out, 0, n);
  return out;
}

/**
 * Decodes one message (the whole body of a DATA package). Routes must be valid UTF-8.
 * @throws ProtocolError PROTO_TRUNCATED (empty input, id/route past the end),
 *   PROTO_BAD_VARINT (id over 5 bytes or above 2^32-1), PROTO_BAD_ROUTE (route not UTF-8).
 */
export function decodeMessage(buf: Buffer): Message {
  if (buf.length === 0) throw truncated('flag');
  const flag = buf[0]!;
  const type = ((flag >> 1) & 0x07) as Message['type'];
  const compressRoute = (flag & FLAG_COMPRESS_ROUTE) !== 0;
  let offset = 1;
  let id = 0;
  let idBytes: Buffer = EMPTY;
  if (hasId(type)) {
    const v = decodeVarint(buf, offset);
    id = v.value;
    idBytes = buf.subarray(offset, offset + v.used);
    offset += v.used;
  }
  let route: string | number | null = null;
  if (hasRoute(type)) {
    if (compressRoute) {
      if (offset + 2 > buf.length) throw truncated('route code');
      route = (buf[offset]! << 8) | buf[offset + 1]!;
      offset += 2;
    } else {
      if (offset >= buf.length) throw truncated('route length');
      const length = buf[offset++]!;
      if (offset + length > buf.length) throw truncated('route');
      const bytes = buf.subarray(offset, offset + length);
      if (!isUtf8(bytes)) throw new ProtocolError('PROTO_BAD_ROUTE', 'route is not valid UTF-8');
      route = length === 0 ? '' : bytes.toString('utf8');
      offset += length;
    }
  }
  return { type, id, idBytes, route, compressRoute, body: buf.subarray(offset) };
}

// ---------------------------------------------------------------- encoding

/** A route measured once: its encoded size and how to write it. */
interface RouteSpec {
  readonly compressed: boolean;
  readonly size: number;
  /** Route code, or the byte length of a string route. */
  readonly code: number;
  readonly text: string;
  /** Every char is ASCII: written by a plain loop, cheaper than a native call for short routes. */
  readonly ascii: boolean;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

function routeSpec(route: string | number): RouteSpec {
  if (typeof route === 'number') {
    if (!Number.isInteger(route) || route < 0 || route > MAX_ROUTE_CODE) {
      throw new ProtocolError('PROTO_BAD_ROUTE', `route code ${route} is not an integer in 0..65535`);
    }
    return { compressed: true, size: 2, code: route, text: '', ascii: true };
  }
  const ascii = route.length <= MAX_ROUTE_BYTES && isAscii(route);
  const length = ascii ? route.length : Buffer.byteLength(route, 'utf8');
  if (length > MAX_ROUTE_BYTES) {
    throw new ProtocolError('PROTO_BAD_ROUTE', `route is ${length} B, at most ${MAX_ROUTE_BYTES} B fit (docs/pomelo-protocol.md §3.3)`);
  }
  return { compressed: false, size: 1 + length, code: length, text: route, ascii };
}

function writeRoute(out: Buffer, offset: number, r: RouteSpec): number {
  if (r.compressed) {
    out[offset] = r.code >>> 8;
    out[offset + 1] = r.code & 0xff;
    return offset + 2;
  }
  out[offset++] = r.code;
  if (r.ascii) {
    const text = r.text;
    for (let i = 0; i < text.length; i++) out[offset++] = text.charCodeAt(i);
    return offset;
  }
  return offset + out.write(r.text, offset, r.code, 'utf8');
}

/** A message id as a number (encoded canonically) or raw varint bytes (echoed verbatim). */
export type MessageIdInput = number | Buffer;

function idSize(id: MessageIdInput): number {
  if (typeof id === 'number') {
    checkId(id);
    return varintSize(id);
  }
  // Raw bytes must still be one complete varint, or the client misreads the route/body.
  const n = id.length;
  let ok = n >= 1 && n <= MAX_ID_BYTES && id[n - 1]! < 0x80;
  for (let i = 0; ok && i < n - 1; i++) ok = id[i]! >= 0x80;
  if (!ok) throw new ProtocolError('PROTO_BAD_VARINT', 'raw message id is not a complete varint of 1..5 bytes');
  return n;
}

function writeId(out: Buffer, offset: number, id: MessageIdInput): number {
  if (typeof id === 'number') return writeVarint(out, offset, id);
  return offset + id.copy(out, offset);
}

/**
 * Writes flag, optional id, optional route and body into one Buffer, optionally
 * preceded by a DATA package header (`withHeader`).
 */
function build(
  withHeader: boolean,
  flag: number,
  id: MessageIdInput | null,
  route: RouteSpec | null,
  body: Buffer,
): Buffer {
  const length = 1 + (id === null ? 0 : idSize(id)) + (route === null ? 0 : route.size) + body.length;
  const head = withHeader ? HEADER_BYTES : 0;
  if (withHeader && length > MAX_BODY) {
    throw new ProtocolError('LIMIT_PAYLOAD', `message of ${length} B does not fit in a package (max ${MAX_BODY} B)`);
  }
  const out = Buffer.allocUnsafe(head + length);
  if (withHeader) writeHeader(out, 0, PackageType.DATA, length);
  let offset = head;
  out[offset++] = flag;
  if (id !== null) offset = writeId(out, offset, id);
  if (route !== null) offset = writeRoute(out, offset, route);
  body.copy(out, offset);
  return out;
}

function routedFlag(type: MessageType, r: RouteSpec): number {
  return (type << 1) | (r.compressed ? FLAG_COMPRESS_ROUTE : 0);
}

/** RESPONSE message (flag `04`). A Buffer id is written verbatim (the raw `idBytes` echo). */
export function encodeResponse(id: number | Buffer, body: Buffer): Buffer {
  return build(false, MessageType.RESPONSE << 1, id, null, body);
}

/**
 * PUSH message: a number route is a dictionary code (flag `07`, 2 bytes BE), a string
 * route goes out as 1 length byte + UTF-8 (flag `06`).
 * @throws ProtocolError PROTO_BAD_ROUTE for a route over 255 bytes or a code outside 0..65535.
 */
export function encodePush(route: string | number, body: Buffer): Buffer {
  const r = routeSpec(route);
  return build(false, routedFlag(MessageType.PUSH, r), null, r, body);
}

/** REQUEST message (flag `00`/`01`), for tests and the SDK. */
export function encodeRequest(id: number, route: string | number, body: Buffer): Buffer {
  const r = routeSpec(route);
  return build(false, routedFlag(MessageType.REQUEST, r), id, r, body);
}

/** NOTIFY message (flag `02`/`03`), for tests and the SDK. */
export function encodeNotify(route: string | number, body: Buffer): Buffer {
  const r = routeSpec(route);
  return build(false, routedFlag(MessageType.NOTIFY, r), null, r, body);
}

/**
 * A whole DATA package holding a PUSH message, in one allocation: same bytes as
 * `encodePackage(PackageType.DATA, encodePush(route, body))` without the extra copy.
 */
export function encodePushPackage(route: string | number, body: Buffer): Buffer {
  const r = routeSpec(route);
  return build(true, routedFlag(MessageType.PUSH, r), null, r, body);
}

/** A whole DATA package holding a RESPONSE message, in one allocation. */
export function encodeResponsePackage(id: number | Buffer, body: Buffer): Buffer {
  return build(true, MessageType.RESPONSE << 1, id, null, body);
}
