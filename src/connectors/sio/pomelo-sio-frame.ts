import { ProtocolError } from '../../protocol/errors.js';

/**
 * Pomelo's sioconnector framing (docs/pomelo-protocol.md §11.3, §11.4): pure functions over the string a
 * socket.io `message` event carries. No sockets, no clock, no logging (docs/conventions.md §3);
 * socket.io itself does the framing underneath.
 */

/** A request (id > 0, or negative: see `readRequestId`) or a notify (id 0). */
export interface PomeloSioRequest {
  readonly id: number;
  readonly route: string;
  /** The parsed JSON body, unchecked. */
  readonly body: unknown;
}

/** 4 id characters and 1 route-length character (docs/pomelo-protocol.md §11.3). */
const HEADER_CHARS = 5;
/** Each header "byte" is one character with a code 0 to 255 (docs/pomelo-protocol.md §11.3). */
const MAX_BYTE_CHAR = 0xff;

/**
 * The request id of a message, when its first four characters can be one: a 32-bit
 * big-endian value, one byte per character, read as a *signed* 32-bit integer as the
 * reference does (docs/pomelo-protocol.md §11.3), so an id is echoed exactly as Pomelo echoed it.
 * Undefined when there are fewer than four characters or one is above 255.
 */
export function readRequestId(str: string): number | undefined {
  if (str.length < 4) return undefined;
  let id = 0;
  for (let i = 0; i < 4; i++) {
    const c = str.charCodeAt(i);
    if (c > MAX_BYTE_CHAR) return undefined;
    id = (id << 8) | c;
  }
  return id;
}

/** Reads one request or notify. Throws ProtocolError, nothing else. */
export function decodePomeloSioRequest(str: string): PomeloSioRequest {
  const id = readRequestId(str);
  if (id === undefined) {
    if (str.length < 4) {
      throw new ProtocolError('PROTO_TRUNCATED', `a request starts with 4 id characters and 1 route-length character; got ${str.length} characters`);
    }
    throw new ProtocolError('PROTO_BAD_MESSAGE', 'the 4 id characters must each have a code from 0 to 255');
  }
  if (str.length < HEADER_CHARS) {
    throw new ProtocolError('PROTO_TRUNCATED', `a request needs a route-length character after the 4 id characters; got ${str.length} characters`);
  }
  const routeLength = str.charCodeAt(4);
  if (routeLength > MAX_BYTE_CHAR) {
    throw new ProtocolError('PROTO_BAD_ROUTE', `the route-length character has code ${routeLength}, above 255`);
  }
  const routeEnd = HEADER_CHARS + routeLength;
  if (routeEnd > str.length) {
    throw new ProtocolError('PROTO_TRUNCATED', `route length ${routeLength} runs past the end of the ${str.length}-character message`);
  }
  const route = str.slice(HEADER_CHARS, routeEnd);
  let body: unknown;
  try {
    // docs/pomelo-protocol.md §11.3: the body MUST be JSON; the reference threw and answered nothing.
    body = JSON.parse(str.slice(routeEnd)) as unknown;
  } catch {
    throw new ProtocolError('PROTO_BAD_JSON', `the body after route "${route.slice(0, 64)}" is not valid JSON`);
  }
  return { id, route, body };
}

/** The string a request is answered with (docs/pomelo-protocol.md §11.4): `{"id":…,"body":…}`. */
export function encodePomeloSioResponse(id: number, body: unknown): string {
  return JSON.stringify({ id, body });
}

/** The string of a push (docs/pomelo-protocol.md §11.4): `{"route":…,"body":…}`. */
export function encodePomeloSioPush(route: string, body: unknown): string {
  return JSON.stringify({ route, body });
}

/** The kick string (docs/pomelo-protocol.md §11.4): note `reason`, not `body`. */
export function encodePomeloSioKick(reason: string): string {
  return JSON.stringify({ route: 'onKick', reason });
}
