/**
 * The client side of Pomelo's hybrid protocol (docs/pomelo-protocol.md §2–§4),
 * over Uint8Array only so that it runs in browsers: the package layer with a stream
 * reader, the message layer for what a client sends (REQUEST, NOTIFY) and receives
 * (RESPONSE, PUSH), and JSON bodies. Protobuf bodies are not supported (docs/delivery.md).
 *
 * Pure: no sockets, timers or globals beyond TextEncoder/TextDecoder.
 */
import { ShaddockClientError } from './errors.js';

/** docs/pomelo-protocol.md §2 */
export const PackageType = { HANDSHAKE: 1, HANDSHAKE_ACK: 2, HEARTBEAT: 3, DATA: 4, KICK: 5 } as const;
export type PackageType = (typeof PackageType)[keyof typeof PackageType];

/** docs/pomelo-protocol.md §3.1 */
export const MessageType = { REQUEST: 0, NOTIFY: 1, RESPONSE: 2, PUSH: 3 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export interface Package {
  readonly type: PackageType;
  /** May be a view into the received bytes: read it, never keep it past the callback. */
  readonly body: Uint8Array;
}

/** What the server sends on the message layer. */
export type ServerMessage =
  | { readonly type: typeof MessageType.RESPONSE; readonly id: number; readonly body: Uint8Array }
  | { readonly type: typeof MessageType.PUSH; readonly route: string | number; readonly body: Uint8Array };

/** Largest body the 24-bit length field can describe (docs/pomelo-protocol.md §2). */
export const MAX_BODY = 0xffffff;
const HEADER_BYTES = 4;
/** docs/pomelo-protocol.md §3.2: request ids are 1 to 2^31-1 in practice. */
export const MAX_REQUEST_ID = 0x7fffffff;

const utf8Encoder = new TextEncoder();
// fatal: a route or JSON body that is not UTF-8 is a protocol error, not U+FFFD.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function isPackageType(n: number): n is PackageType {
  return n >= 1 && n <= 5;
}

function bad(message: string): ShaddockClientError {
  return new ShaddockClientError('PROTO_BAD_MESSAGE', message);
}

/**
 * Encodes one package: type, 24-bit big-endian body length, body (docs/pomelo-protocol.md §2).
 * @throws ShaddockClientError LIMIT_PAYLOAD for a body over 0xFFFFFF bytes.
 */
export function encodePackage(type: PackageType, body?: Uint8Array): Uint8Array {
  const length = body?.length ?? 0;
  if (length > MAX_BODY) throw new ShaddockClientError('LIMIT_PAYLOAD', `package body of ${length} B exceeds ${MAX_BODY} B`);
  const out = new Uint8Array(HEADER_BYTES + length);
  out[0] = type;
  out[1] = (length >>> 16) & 0xff;
  out[2] = (length >>> 8) & 0xff;
  out[3] = length & 0xff;
  if (body !== undefined && length > 0) out.set(body, HEADER_BYTES);
  return out;
}

/**
 * Splits a byte stream into packages (docs/pomelo-protocol.md §2.1). Used for raw TCP and for WebSocket
 * alike: a WebSocket message holds one package, or several (the `buffer` scheduler,
 * §2.3), and a stream reader handles both. Header checks come before buffering the
 * body: a bad type byte or an oversized length fails at once.
 */
export class PackageReader {
  readonly #maxPackage: number;
  #pending: Uint8Array = new Uint8Array(0);

  /** @param maxPackage largest body accepted, bytes. @default 0xFFFFFF */
  constructor(maxPackage: number = MAX_BODY) {
    this.#maxPackage = Math.min(maxPackage, MAX_BODY);
  }

  /** Bytes held for an incomplete package. */
  get pendingBytes(): number {
    return this.#pending.length;
  }

  /**
   * Adds a chunk; returns the packages it completes, in order.
   * @throws ShaddockClientError PROTO_BAD_TYPE, LIMIT_PAYLOAD. The reader is unusable after.
   */
  push(chunk: Uint8Array): Package[] {
    let buf: Uint8Array;
    if (this.#pending.length === 0) buf = chunk;
    else {
      buf = new Uint8Array(this.#pending.length + chunk.length);
      buf.set(this.#pending, 0);
      buf.set(chunk, this.#pending.length);
    }
    const out: Package[] = [];
    let offset = 0;
    while (offset < buf.length) {
      const type = buf[offset]!;
      if (!isPackageType(type)) throw new ShaddockClientError('PROTO_BAD_TYPE', `unknown package type ${type}`);
      if (buf.length - offset < HEADER_BYTES) break;
      const length = (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!;
      if (length > this.#maxPackage) {
        throw new ShaddockClientError('LIMIT_PAYLOAD', `package body of ${length} B exceeds the limit of ${this.#maxPackage} B`);
      }
      const end = offset + HEADER_BYTES + length;
      if (end > buf.length) break;
      out.push({ type, body: buf.subarray(offset + HEADER_BYTES, end) });
      offset = end;
    }
    // Copy the tail, so that a large chunk is not kept alive for a few leftover bytes
    // (`new Uint8Array(view)` copies; a Node chunk's own slice() would not).
    this.#pending = offset === buf.length ? new Uint8Array(0) : new Uint8Array(buf.subarray(offset));
    return out;
  }
}

/** docs/pomelo-protocol.md §3.2: varint, low 7-bit group first. */
function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(out: Uint8Array, offset: number, n: number): number {
  while (n >= 0x80) {
    out[offset++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[offset++] = n;
  return offset;
}

/**
 * Encodes a REQUEST (with `id`) or a NOTIFY (without) as a whole DATA package
 * (docs/pomelo-protocol.md §3). A number `route` is a dictionary code sent compressed (§8.2).
 * @throws ShaddockClientError PROTO_BAD_MESSAGE for a route over 255 bytes or a bad id.
 */
export function encodeClientMessage(id: number | undefined, route: string | number, body: Uint8Array): Uint8Array {
  const type = id === undefined ? MessageType.NOTIFY : MessageType.REQUEST;
  if (id !== undefined && !(Number.isInteger(id) && id >= 1 && id <= MAX_REQUEST_ID)) throw bad(`request id ${id} is not 1 to 2^31-1`);
  let routeBytes: Uint8Array | undefined;
  let routeLength: number;
  if (typeof route === 'number') {
    if (!(Number.isInteger(route) && route >= 1 && route <= 0xffff)) throw bad(`route code ${route} is not 1 to 65535`);
    routeLength = 2;
  } else {
    routeBytes = utf8Encoder.encode(route);
    if (routeBytes.length > 255) throw bad(`route of ${routeBytes.length} B is longer than 255 B`);
    routeLength = 1 + routeBytes.length;
  }
  const idLength = id === undefined ? 0 : varintLength(id);
  const messageLength = 1 + idLength + routeLength + body.length;
  if (messageLength > MAX_BODY) throw new ShaddockClientError('LIMIT_PAYLOAD', `message of ${messageLength} B exceeds ${MAX_BODY} B`);
  const out = new Uint8Array(HEADER_BYTES + messageLength);
  out[0] = PackageType.DATA;
  out[1] = (messageLength >>> 16) & 0xff;
  out[2] = (messageLength >>> 8) & 0xff;
  out[3] = messageLength & 0xff;
  let o = HEADER_BYTES;
  out[o++] = (type << 1) | (typeof route === 'number' ? 1 : 0);
  if (id !== undefined) o = writeVarint(out, o, id);
  if (typeof route === 'number') {
    out[o++] = (route >>> 8) & 0xff;
    out[o++] = route & 0xff;
  } else {
    out[o++] = routeBytes!.length;
    out.set(routeBytes!, o);
    o += routeBytes!.length;
  }
  out.set(body, o);
  return out;
}

/**
 * Decodes the body of a DATA package from the server: a RESPONSE or a PUSH (docs/pomelo-protocol.md §3).
 * Bit 4 of the flag (gzip) is masked off, as docs/pomelo-protocol.md §3.1 requires.
 * @throws ShaddockClientError PROTO_BAD_MESSAGE
 */
export function decodeServerMessage(bytes: Uint8Array): ServerMessage {
  if (bytes.length === 0) throw bad('empty DATA package');
  const flag = bytes[0]!;
  const type = (flag >> 1) & 7;
  let o = 1;
  if (type === MessageType.RESPONSE) {
    let id = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      // 5 groups carry 35 bits: more than any id a client sends (§3.2).
      if (i >= 5 || o >= bytes.length) throw bad('bad or truncated message id');
      const b = bytes[o++]!;
      id += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) break;
    }
    return { type: MessageType.RESPONSE, id, body: bytes.subarray(o) };
  }
  if (type === MessageType.PUSH) {
    let route: string | number;
    if ((flag & 1) === 1) {
      if (o + 2 > bytes.length) throw bad('truncated route code');
      route = (bytes[o]! << 8) | bytes[o + 1]!;
      o += 2;
    } else {
      if (o >= bytes.length) throw bad('truncated route');
      const len = bytes[o++]!;
      if (o + len > bytes.length) throw bad('truncated route');
      try {
        route = utf8Decoder.decode(bytes.subarray(o, o + len));
      } catch {
        throw bad('route is not UTF-8');
      }
      o += len;
    }
    return { type: MessageType.PUSH, route, body: bytes.subarray(o) };
  }
  throw bad(`a server does not send message type ${type}`);
}

export function encodeJson(value: unknown): Uint8Array {
  return utf8Encoder.encode(JSON.stringify(value));
}

/** @throws ShaddockClientError PROTO_BAD_JSON */
export function decodeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8Decoder.decode(bytes)) as unknown;
  } catch (err) {
    throw new ShaddockClientError('PROTO_BAD_JSON', 'the body is not UTF-8 JSON', { cause: err });
  }
}

/** What the SDK needs from a handshake reply (docs/pomelo-protocol.md §4.3). */
export interface HandshakeReply {
  /** Seconds; absent when the server wants no heartbeats (docs/pomelo-protocol.md §5). */
  readonly heartbeatSeconds: number | undefined;
  /** Route → code, when the server uses a route dictionary (§8). */
  readonly routeToCode: ReadonlyMap<string, number>;
  /** Code → route, to read compressed push routes (§8.2). */
  readonly codeToRoute: ReadonlyMap<number, string>;
  /** Routes whose server→client bodies are protobuf (§9.1): the SDK cannot read them. */
  readonly protobufRoutes: ReadonlySet<string>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Reads a handshake reply. A code other than 200 is a refusal (docs/pomelo-protocol.md §4.4).
 * @throws ShaddockClientError PROTO_BAD_JSON, CLIENT_HANDSHAKE_FAILED
 */
export function parseHandshakeReply(body: Uint8Array): HandshakeReply {
  const reply = decodeJson(body);
  if (!isRecord(reply)) throw new ShaddockClientError('CLIENT_HANDSHAKE_FAILED', 'the handshake reply is not a JSON object');
  const code = reply['code'];
  if (code !== 200) throw new ShaddockClientError('CLIENT_HANDSHAKE_FAILED', `the server refused the handshake (code ${String(code)})`);
  const sys = isRecord(reply['sys']) ? reply['sys'] : {};
  const hb = sys['heartbeat'];
  const heartbeatSeconds = typeof hb === 'number' && Number.isFinite(hb) && hb > 0 ? hb : undefined;
  const routeToCode = new Map<string, number>();
  const dict = isRecord(sys['routeToCode']) ? sys['routeToCode'] : isRecord(sys['dict']) ? sys['dict'] : {};
  for (const [route, c] of Object.entries(dict)) {
    if (typeof c === 'number' && Number.isInteger(c) && c >= 1 && c <= 0xffff) routeToCode.set(route, c);
  }
  const codeToRoute = new Map<number, string>();
  if (isRecord(sys['codeToRoute'])) {
    for (const [c, route] of Object.entries(sys['codeToRoute'])) {
      const n = Number(c);
      if (typeof route === 'string' && Number.isInteger(n)) codeToRoute.set(n, route);
    }
  } else {
    for (const [route, c] of routeToCode) codeToRoute.set(c, route);
  }
  const protobufRoutes = new Set<string>();
  const protos = sys['protos'];
  if (isRecord(protos) && isRecord(protos['server'])) {
    for (const route of Object.keys(protos['server'])) if (!route.startsWith('message ')) protobufRoutes.add(route);
  }
  return { heartbeatSeconds, routeToCode, codeToRoute, protobufRoutes };
}

/** The handshake request (docs/pomelo-protocol.md §4.2). The server only needs `sys`. */
export function encodeHandshake(type: string, version: string): Uint8Array {
  return encodePackage(PackageType.HANDSHAKE, encodeJson({ sys: { type, version }, user: {} }));
}

export const HANDSHAKE_ACK_PACKAGE: Uint8Array = encodePackage(PackageType.HANDSHAKE_ACK);
export const HEARTBEAT_PACKAGE: Uint8Array = encodePackage(PackageType.HEARTBEAT);

/** A KICK body is `{"reason": "..."}` (docs/pomelo-protocol.md §7); anything else reads as "kick". */
export function parseKick(body: Uint8Array): string {
  try {
    const v = decodeJson(body);
    if (isRecord(v) && typeof v['reason'] === 'string') return v['reason'];
  } catch {
    // an unreadable kick is still a kick
  }
  return 'kick';
}
