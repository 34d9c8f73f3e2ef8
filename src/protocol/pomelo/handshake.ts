/**
 * Pomelo handshake bodies (docs/pomelo-protocol.md §4): the client's JSON request and the server's reply,
 * byte-identical to pomelo 2.2.7's `handshake.js` (vectors `hs-reply-*`).
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { ProtocolError } from '../errors.js';
import type { RouteDictionary } from './dictionary.js';
import { HEADER_BYTES, MAX_BODY, PackageType, writeHeader } from './package.js';
import type { ParsedProtos } from './protobuf.js';

export interface HandshakeRequest {
  readonly sys: {
    /** Client kind, free text ("js-websocket", "unity-socket"...). */
    readonly type?: string;
    readonly version?: string;
    /** Cached dictionary version; the reply omits the dictionary when it matches. */
    readonly dictVersion?: string;
    /** Cached protos version (newer JS clients send 0 when they have none). */
    readonly protoVersion?: string | number;
    /** `{rsa_n, rsa_e}` from clients that use crypto (docs/pomelo-protocol.md §4.6); unchecked. */
    readonly rsa?: unknown;
  };
  readonly user?: unknown;
}

function badHandshake(message: string, cause?: unknown): ProtocolError {
  return new ProtocolError('PROTO_BAD_HANDSHAKE', message, cause === undefined ? undefined : { cause });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses a HANDSHAKE package body. Fields of `sys` with an unexpected type are dropped,
 * not rejected: only `checkClient`-style hooks ever look at them (docs/pomelo-protocol.md §4.2).
 * @throws ProtocolError PROTO_BAD_HANDSHAKE for a body that is not JSON or has no `sys`
 *   object; the connector answers `encodeHandshakeFailure(500)` (docs/pomelo-protocol.md §4.4).
 */
export function parseHandshakeRequest(body: Buffer): HandshakeRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw badHandshake('handshake body is not valid JSON', err);
  }
  if (!isRecord(parsed)) throw badHandshake('handshake body is not a JSON object');
  const rawSys = Object.hasOwn(parsed, 'sys') ? parsed['sys'] : undefined;
  if (!isRecord(rawSys)) throw badHandshake('handshake has no "sys" object');
  const sys: {
    type?: string;
    version?: string;
    dictVersion?: string;
    protoVersion?: string | number;
    rsa?: unknown;
  } = {};
  const type = rawSys['type'];
  if (typeof type === 'string') sys.type = type;
  const version = rawSys['version'];
  if (typeof version === 'string') sys.version = version;
  const dictVersion = rawSys['dictVersion'];
  if (typeof dictVersion === 'string') sys.dictVersion = dictVersion;
  const protoVersion = rawSys['protoVersion'];
  if (typeof protoVersion === 'string' || typeof protoVersion === 'number') sys.protoVersion = protoVersion;
  if (Object.hasOwn(rawSys, 'rsa') && rawSys['rsa'] !== undefined) sys.rsa = rawSys['rsa'];
  const user = Object.hasOwn(parsed, 'user') ? parsed['user'] : undefined;
  return user === undefined ? { sys } : { sys, user };
}

/** Spec §4.3: send the dictionary unless the client already holds this version. */
export function shouldSendDictionary(request: HandshakeRequest, dictionary: RouteDictionary): boolean {
  return request.sys.dictVersion !== dictionary.version;
}

/** Spec §4.3: send the protos unless the client already holds this version. */
export function shouldSendProtos(request: HandshakeRequest, version: string): boolean {
  return request.sys.protoVersion !== version;
}

export interface HandshakeReplyOptions {
  /** Heartbeat interval in SECONDS (docs/pomelo-protocol.md §5); omitted from the reply when undefined. */
  readonly heartbeatSeconds?: number;
  /** The route dictionary, when route compression is on (`useDict`). */
  readonly dictionary?: RouteDictionary;
  /** Include dict/routeToCode/codeToRoute/dictVersion (client's dictVersion differs). */
  readonly sendDictionary: boolean;
  /** Parsed protos and their version, when protobuf is on (`useProtobuf`). */
  readonly protos?: { readonly server: ParsedProtos; readonly client: ParsedProtos; readonly version: string };
  /** Include the protos (client's protoVersion differs). */
  readonly sendProtos: boolean;
  /** Sent as top-level `user` (what a handshake hook returned). */
  readonly user?: unknown;
}

/**
 * JSON fragments that are the same for every connection, computed once per object.
 * Only frozen objects are cached (parseProtos and buildRouteDictionary freeze theirs),
 * so a table someone mutates is never served stale.
 */
const dictFragments = new WeakMap<RouteDictionary, string>();
const protoJson = new WeakMap<object, string>();

function dictFragment(d: RouteDictionary): string {
  let s = dictFragments.get(d);
  if (s === undefined) {
    const r2c = JSON.stringify(d.routeToCode);
    s = `"dict":${r2c},"routeToCode":${r2c},"codeToRoute":${JSON.stringify(d.codeToRoute)},"dictVersion":${JSON.stringify(d.version)}`;
    if (Object.isFrozen(d) && Object.isFrozen(d.routeToCode) && Object.isFrozen(d.codeToRoute)) dictFragments.set(d, s);
  }
  return s;
}

function protosJson(p: ParsedProtos): string {
  let s = protoJson.get(p);
  if (s === undefined) {
    s = JSON.stringify(p);
    if (Object.isFrozen(p)) protoJson.set(p, s);
  }
  return s;
}

function stringify(value: unknown, what: string): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw badHandshake(`${what} cannot be serialised as JSON`, err);
  }
}

function handshakePackage(json: string): Buffer {
  const length = Buffer.byteLength(json, 'utf8');
  if (length > MAX_BODY) throw new ProtocolError('LIMIT_PAYLOAD', `handshake reply of ${length} B exceeds ${MAX_BODY} B`);
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  writeHeader(out, 0, PackageType.HANDSHAKE, length);
  out.write(json, HEADER_BYTES, length, 'utf8');
  return out;
}

/**
 * The full HANDSHAKE package of a success reply (code 200). Key order is the
 * reference's (docs/pomelo-protocol.md §4.3): `code, sys, user`, and inside `sys` `heartbeat, dict,
 * routeToCode, codeToRoute, dictVersion, useDict, protos, useProto`. `useDict` is
 * present whenever a dictionary is configured and `useProto` whenever protos are.
 */
export function encodeHandshakeReply(opts: HandshakeReplyOptions): Buffer {
  const sys: string[] = [];
  if (opts.heartbeatSeconds !== undefined) sys.push(`"heartbeat":${stringify(opts.heartbeatSeconds, 'heartbeat')}`);
  if (opts.dictionary !== undefined && opts.sendDictionary) sys.push(dictFragment(opts.dictionary));
  if (opts.dictionary !== undefined) sys.push('"useDict":true');
  if (opts.protos !== undefined && opts.sendProtos) {
    const p = opts.protos;
    sys.push(
      `"protos":{"server":${protosJson(p.server)},"client":${protosJson(p.client)},"version":${JSON.stringify(p.version)}}`,
    );
  }
  if (opts.protos !== undefined) sys.push('"useProto":true');
  let json = `{"code":200,"sys":{${sys.join(',')}}`;
  const user = opts.user === undefined ? undefined : stringify(opts.user, 'handshake user');
  if (user !== undefined) json += `,"user":${user}`;
  return handshakePackage(json + '}');
}

const FAILURE_500 = handshakePackage('{"code":500}');
const FAILURE_501 = handshakePackage('{"code":501}');

/**
 * `{"code":500}` (bad handshake, hook error) or `{"code":501}` (old client) as a
 * HANDSHAKE package (docs/pomelo-protocol.md §4.4). Shared buffers: never write into them.
 */
export function encodeHandshakeFailure(code: 500 | 501): Buffer {
  return code === 501 ? FAILURE_501 : FAILURE_500;
}

/** `base64(md5(JSON.stringify(client) + JSON.stringify(server)))` (docs/pomelo-protocol.md §4.3). */
export function protosVersion(client: ParsedProtos, server: ParsedProtos): string {
  return createHash('md5').update(protosJson(client) + protosJson(server), 'utf8').digest('base64');
}
