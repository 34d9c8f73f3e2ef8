/**
 * Every decoder that reads bytes from the network, wrapped for the fuzz loop
 * (fuzz-core.ts) the way its connector uses it. Each says what a documented refusal
 * is; anything else thrown is a crash.
 *
 *   pomelo      Pomelo package/message/protobuf/handshake (delegates to pomelo-fuzz.ts)
 *   sio-frame   Pomelo framing over socket.io "message" strings (pomelo-sio-frame.ts)
 *   sio-packet  engine.io v4 and v3 (EIO3) packets and payloads → socket.io-parser →
 *               the Pomelo framing of "message" events, as a socket.io session reads them
 *   mqtt        MqttPacketReader over mqtt-packet, in random chunks, then what the
 *               connection does with each packet: push requests, topic filters
 *   mqtt-push   the JSON of a manager's push published on apps/{apikey}/push
 *   ws-json     the plain-WebSocket JSON frame schema (src/protocol/json/frames.ts)
 *   sse-params  an SSE request's Last-Event-ID, lastEventId, token and tags
 *   http        HTTP bodies and queries of the push, tokens, apps, session, history and
 *               clients routes, through fastify `inject` into the real API
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { IncomingMessage } from 'node:http';
import { decodePacket as eioDecodePacket, decodePayload as eioDecodePayload } from 'engine.io-parser';
import { Decoder as SioDecoder, PacketType } from 'socket.io-parser';
import { generate as mqttGenerate, type Packet as MqttPacket } from 'mqtt-packet';
import { isProtocolError } from '../../src/protocol/errors.js';
import { decodePomeloSioRequest, readRequestId } from '../../src/connectors/sio/pomelo-sio-frame.js';
import { MqttPacketReader } from '../../src/connectors/mqtt/mqtt-reader.js';
import { parsePushRequest } from '../../src/connectors/mqtt/push-request.js';
import { checkPush as pushRuleViolation } from '../../src/hub/push-rules.js';
import { classifyFilter, type TopicOwner } from '../../src/connectors/mqtt/mqtt-topics.js';
import { decodeJson, parseClientFrame, readRef } from '../../src/protocol/json/frames.js';
import { readSseParams } from '../../src/connectors/sse/sse-request.js';
import { HubError, Hub } from '../../src/hub/hub.js';
import { LocalBus } from '../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../src/store/sqlite-storage.js';
import { createLogger } from '../../src/log.js';
import { buildHttpApi } from '../../src/api/http-api.js';
import { TARGETS as POMELO_TARGETS, replay as pomeloReplay } from './pomelo-fuzz.js';
import type { DecoderInstance, DecoderSpec, Rng } from './fuzz-core.js';

function protocolCode(err: unknown): string | undefined {
  return isProtocolError(err) ? err.code : undefined;
}

function chunks(input: Buffer, pick: Rng): Buffer[] {
  const out: Buffer[] = [];
  if (pick() % 4 === 0) return [input];
  let at = 0;
  while (at < input.length) {
    const n = 1 + (pick() % (pick() % 2 === 0 ? 4 : 128));
    out.push(input.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** An invariant of our own code broke (not a refusal): always a crash. */
class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

// ---------------------------------------------------------------- pomelo

/**
 * The Pomelo decoders of pomelo-fuzz.ts, one picked per input; the bytes come from
 * our own generator (pomelo-fuzz.ts keeps its own long run and corpus too).
 */
const pomelo: DecoderSpec = {
  name: 'pomelo',
  about: 'Pomelo package reader, message, varint, protobuf, handshake (src/protocol/pomelo)',
  async open() {
    const seeds = [
      '03000000040000027b7d', // data package: request 2, route code
      '010000317b22737973223a7b2274797065223a226a732d776562736f636b6574222c2276657273696f6e223a22302e302e31227d7d',
      '00ac0205612e622e637b7d',
      '0700057b7d',
      '0400000a0001026f6e4d73677b7d',
      '020000000300000102000000',
    ].map((h) => Buffer.from(h, 'hex'));
    seeds.push(Buffer.from('{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0},"user":{}}'));
    return {
      seeds,
      run(input, pick) {
        const target = POMELO_TARGETS[pick() % POMELO_TARGETS.length]!;
        target.run(input, pick);
      },
      classify: protocolCode,
    };
  },
};

// ---------------------------------------------------------------- socket.io

/** What a client could put in the 4 id characters and route-length character (docs/pomelo-protocol.md §11.3). */
function sioFrame(id: number, route: string, body: unknown): string {
  const head = String.fromCharCode((id >>> 24) & 0xff, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff, route.length);
  return head + route + JSON.stringify(body);
}

const SIO_FRAMES = [
  sioFrame(1, 'sio-connector.entryHandler.enter', { role: 'client', apiKey: 'k', apikey: 'k', clientId: 'c1' }),
  sioFrame(2, 'connector.entryHandler.enter', { role: 'server', apikey: 'k', password: 's' }),
  sioFrame(3, 'pushserver.pushHandler.pushAll', { apikey: 'k', msg: { title: 't', msg: 'm' } }),
  sioFrame(300, 'pushserver.pushHandler.pushByClientId', { apikey: 'k', clientId: 'c1', msg: 'x' }),
  sioFrame(0, 'shaddock.client.ack', { id: 7 }),
  sioFrame(0x7fffffff, 'shaddock.manager.push', { event: 'onMsg', data: [1, 2], to: { clientIds: ['a'], tags: ['t'] }, ttl: 60 }),
];

/** Characters of a string from bytes: mostly one per byte (latin1), sometimes UTF-8 or UTF-16. */
function bytesToString(input: Buffer, pick: Rng): string {
  switch (pick() % 4) {
    case 0:
      return input.toString('utf8');
    case 1:
      return input.toString('utf16le');
    default:
      return input.toString('latin1');
  }
}

const sioFrameDecoder: DecoderSpec = {
  name: 'sio-frame',
  about: 'Pomelo framing of socket.io "message" strings (src/connectors/sio/pomelo-sio-frame.ts)',
  async open() {
    return {
      seeds: SIO_FRAMES.map((s) => Buffer.from(s, 'latin1')),
      json: true,
      run(input, pick) {
        const str = bytesToString(input, pick);
        const id = readRequestId(str);
        if (id !== undefined && (!Number.isInteger(id) || id < -0x80000000 || id > 0x7fffffff)) throw new InvariantError(`request id ${id} is not a signed 32-bit integer`);
        const req = decodePomeloSioRequest(str);
        if (req.id !== id) throw new InvariantError(`decoded id ${req.id} differs from readRequestId ${String(id)}`);
        if (req.route.length > 255) throw new InvariantError(`route of ${req.route.length} characters`);
      },
      classify: protocolCode,
    };
  },
};

interface EioPacket {
  readonly type: string;
  readonly data?: unknown;
}
interface EioParserV3 {
  decodePacket(data: string | Buffer, binaryType?: string, utf8decode?: boolean): EioPacket;
  decodePayload(data: string | Buffer, callback: (packet: EioPacket, index: number, total: number) => boolean | void): void;
}

/**
 * engine.io's protocol-3 parser, which it uses for EIO3 (socket.io 2.x) clients. It is
 * not exported (`engine.io`'s package exports only its entry), so it is loaded by file
 * path next to that entry; if engine.io moves it, this throws at open.
 */
function loadEioParserV3(): EioParserV3 {
  const require = createRequire(import.meta.url);
  const file = join(dirname(require.resolve('engine.io')), 'parser-v3', 'index.js');
  const mod: unknown = require(file);
  if (typeof mod !== 'object' || mod === null || typeof Reflect.get(mod, 'decodePayload') !== 'function') {
    throw new Error(`engine.io's parser-v3 is not at ${file} any more: update bench/fuzz/decoders.ts`);
  }
  return mod as EioParserV3;
}

/** socket.io's Decoder throws plain Errors for malformed packets; socket.io catches them (Client#ondata) and closes. */
const SIO_PARSER_REFUSALS: readonly [RegExp, string][] = [
  [/^invalid payload$/, 'SIO_INVALID_PAYLOAD'],
  [/^unknown packet type/, 'SIO_UNKNOWN_TYPE'],
  [/^illegal attachments$/i, 'SIO_ILLEGAL_ATTACHMENTS'],
  [/^too many attachments$/, 'SIO_TOO_MANY_ATTACHMENTS'],
  [/^got plaintext data when reconstructing a packet$/, 'SIO_PLAINTEXT_IN_BINARY'],
  [/^got binary data when not reconstructing a packet$/, 'SIO_UNEXPECTED_BINARY'],
  [/^Unknown type: /, 'SIO_UNKNOWN_INPUT'],
];

const sioPacketDecoder: DecoderSpec = {
  name: 'sio-packet',
  about: 'engine.io v4/v3 packets and payloads, socket.io-parser, then the Pomelo sio framing',
  async open() {
    const v3 = loadEioParserV3();
    const pomeloMsg = (id: number, route: string, body: unknown): string => JSON.stringify(sioFrame(id, route, body));
    const seeds = [
      // engine.io v4 websocket frames, separated by 0x1e (also the v4 polling payload separator)
      '40\x1e42["message",' + pomeloMsg(1, 'sio-connector.entryHandler.enter', { apiKey: 'k', clientId: 'c' }) + ']',
      '40{"token":"x"}\x1e42["enter",{"apikey":"k","clientId":"c","lastId":3,"tags":["a"]}]',
      '42["ack",{"id":5}]\x1e421["push",{"data":{"a":1},"to":{"clientIds":["c"]}}]',
      '40/admin,\x1e42/admin,["x"]\x1e41\x1e2\x1e3probe\x1e5\x1e6',
      '451-["push",{"data":{"_placeholder":true,"num":0}}]\x1e4\u00ff\u0001\u0002',
      // EIO3 polling payloads: <length>:<packet>
      '2:40' + `${pomeloMsg(0, 'shaddock.client.ack', { id: 1 }).length + 13}:42["message",${pomeloMsg(0, 'shaddock.client.ack', { id: 1 })}]`,
      '13:42["ack",{"id":2}]',
      '6:40/x?a',
    ].map((s) => Buffer.from(s, 'utf8'));
    return {
      seeds,
      json: true,
      run(input, pick) {
        const decoder = new SioDecoder();
        const events: unknown[][] = [];
        decoder.on('decoded', (packet: { type: PacketType; nsp: string; data?: unknown; id?: number }) => {
          // Client#_parseNamespace: a v2 client may append a query to the namespace.
          if (typeof packet.nsp !== 'string') throw new InvariantError('decoded packet without a namespace');
          if ((packet.type === PacketType.EVENT || packet.type === PacketType.BINARY_EVENT) && Array.isArray(packet.data)) {
            events.push(packet.data as unknown[]);
          }
        });
        const feed = (data: unknown): void => {
          if (typeof data !== 'string' && !Buffer.isBuffer(data) && !(data instanceof ArrayBuffer)) return;
          decoder.add(data instanceof ArrayBuffer ? Buffer.from(data) : data);
        };
        const onPacket = (p: EioPacket): void => {
          if (p.type === 'message') feed(p.data);
        };
        switch (pick() % 4) {
          case 0: {
            // v4 websocket: one engine.io packet per frame, text or binary.
            let at = 0;
            while (at <= input.length) {
              const end = input.indexOf(0x1e, at);
              const frame = input.subarray(at, end < 0 ? input.length : end);
              onPacket(eioDecodePacket(pick() % 8 === 0 ? frame : frame.toString('utf8'), 'nodebuffer') as EioPacket);
              if (end < 0) break;
              at = end + 1;
            }
            break;
          }
          case 1:
            for (const p of eioDecodePayload(input.toString('utf8'), 'nodebuffer')) onPacket(p as EioPacket);
            break;
          case 2:
            v3.decodePayload(pick() % 4 === 0 ? input : input.toString('utf8'), (p) => onPacket(p));
            break;
          default:
            onPacket(v3.decodePacket(input.toString('utf8'), 'nodebuffer', pick() % 2 === 0));
        }
        decoder.destroy();
        // What the connection does with a "message" event: the Pomelo framing.
        for (const args of events) {
          if (args[0] === 'message' && args.length === 2 && typeof args[1] === 'string') decodePomeloSioRequest(args[1]);
        }
      },
      classify(err) {
        const code = protocolCode(err);
        if (code !== undefined) return code;
        if (err instanceof Error && err.constructor === Error) {
          for (const [re, c] of SIO_PARSER_REFUSALS) if (re.test(err.message)) return c;
        }
        return undefined;
      },
    };
  },
};

// ---------------------------------------------------------------- MQTT

function mqttSeeds(): Buffer[] {
  const g = (p: Record<string, unknown>): Buffer => mqttGenerate(p as unknown as MqttPacket, { protocolVersion: p['protocolVersion'] === 5 ? 5 : 4 });
  const connect4 = g({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: 'c1', keepalive: 30, username: 'apikey', password: Buffer.from('secret') });
  const connect5 = g({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 5,
    clean: true,
    clientId: 'c2',
    keepalive: 0,
    username: 'apikey',
    properties: { sessionExpiryInterval: 3600, receiveMaximum: 10, maximumPacketSize: 1000, userProperties: { a: 'b' } },
    will: { topic: 'apps/apikey/all', payload: Buffer.from('bye'), qos: 1, retain: false, properties: { willDelayInterval: 5 } },
  });
  const connect31 = g({ cmd: 'connect', protocolId: 'MQIsdp', protocolVersion: 3, clean: true, clientId: 'c3', keepalive: 10 });
  const rest4 = [
    g({ cmd: 'publish', topic: 'apps/apikey/push', payload: Buffer.from('{"event":"onMsg","data":{"a":1},"to":{"clientIds":["c1"],"tags":["t"]},"ttl":60}'), qos: 1, messageId: 7, retain: false, dup: false }),
    g({ cmd: 'publish', topic: 'apps/apikey/push', payload: Buffer.from('{"data":"x"}'), qos: 0, retain: false, dup: false }),
    g({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'apps/apikey/all', qos: 1 }, { topic: 'apps/apikey/clients/c1', qos: 0 }, { topic: 'apps/apikey/tags/t', qos: 1 }] }),
    g({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['apps/apikey/tags/t'] }),
    g({ cmd: 'puback', messageId: 9 }),
    g({ cmd: 'pubrec', messageId: 9 }),
    g({ cmd: 'pubrel', messageId: 9 }),
    g({ cmd: 'pubcomp', messageId: 9 }),
    g({ cmd: 'pingreq' }),
    g({ cmd: 'disconnect' }),
  ];
  const rest5 = [
    g({ cmd: 'publish', protocolVersion: 5, topic: 'apps/apikey/push', payload: Buffer.from('{"data":[1,2,3]}'), qos: 1, messageId: 3, retain: false, dup: false, properties: { payloadFormatIndicator: true, contentType: 'application/json', topicAlias: 1, userProperties: { x: ['1', '2'] } } }),
    g({ cmd: 'subscribe', protocolVersion: 5, messageId: 4, subscriptions: [{ topic: 'apps/apikey/presence', qos: 1, nl: true, rap: false, rh: 0 }], properties: { subscriptionIdentifier: 7 } }),
    g({ cmd: 'puback', protocolVersion: 5, messageId: 3, reasonCode: 0x10, properties: { reasonString: 'ok' } }),
    g({ cmd: 'auth', protocolVersion: 5, reasonCode: 0x18, properties: { authenticationMethod: 'x', authenticationData: Buffer.from([1, 2]) } }),
    g({ cmd: 'disconnect', protocolVersion: 5, reasonCode: 0x8e, properties: { sessionExpiryInterval: 0, reasonString: 'bye' } }),
  ];
  return [
    connect4,
    connect5,
    connect31,
    Buffer.concat([connect4, ...rest4]),
    Buffer.concat([connect5, ...rest5]),
    ...rest4.map((p) => Buffer.concat([connect4, p])),
    ...rest5.map((p) => Buffer.concat([connect5, p])),
  ];
}

const OWNERS: readonly TopicOwner[] = [
  { apikey: 'apikey', clientId: 'c1' },
  { apikey: 'apikey', clientId: undefined },
];

/** The isolation promises of classifyFilter, checked on every filter the fuzzer reaches. */
function checkFilter(filter: string, owner: TopicOwner): void {
  const kind = classifyFilter(filter, owner);
  if (kind.kind === 'forbidden') return;
  const prefix = `apps/${owner.apikey}/`;
  if (!filter.startsWith(prefix) || filter.includes('+') || filter.includes('#')) {
    throw new InvariantError(`filter ${JSON.stringify(filter)} of another app or with a wildcard classified ${kind.kind}`);
  }
  const rest = filter.slice(prefix.length);
  if (kind.kind === 'own' && rest !== `clients/${String(owner.clientId)}`) throw new InvariantError(`filter ${JSON.stringify(filter)} classified own`);
  if (kind.kind === 'presence' && owner.clientId !== undefined) throw new InvariantError('a client may not subscribe to presence');
  if (kind.kind === 'tag' && (owner.clientId === undefined || kind.tag.length === 0)) throw new InvariantError(`bad tag classification of ${JSON.stringify(filter)}`);
}

function checkPush(payload: Buffer): void {
  const parsed = parsePushRequest(payload);
  if (!parsed.ok) return;
  const v = parsed.value;
  // The parser checks the payload's shape; what its fields may hold is the push rule
  // Hub.publish applies to every way in. What both accept must be a well-formed push.
  if (pushRuleViolation(v) !== undefined) return;
  if (typeof v.event !== 'string' || v.event.length === 0) throw new InvariantError('push without an event name');
  if (v.target.all !== (v.target.clientIds.length === 0 && v.target.tags.length === 0)) throw new InvariantError('inconsistent push target');
}

const mqttDecoder: DecoderSpec = {
  name: 'mqtt',
  about: 'MqttPacketReader (mqtt-packet) in random chunks, then push requests and topic filters',
  async open() {
    return {
      seeds: mqttSeeds(),
      run(input, pick) {
        const limit = pick() % 4 === 0 ? 16 + (pick() % 256) : 1 << 16;
        const reader = new MqttPacketReader(limit);
        for (const c of chunks(input, pick)) {
          for (const p of reader.push(c)) {
            if (p.cmd === 'publish') {
              checkPush(typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload);
              if (typeof p.topic !== 'string') throw new InvariantError('publish without a string topic');
            } else if (p.cmd === 'subscribe') {
              for (const s of p.subscriptions) for (const owner of OWNERS) checkFilter(s.topic, owner);
            } else if (p.cmd === 'unsubscribe') {
              for (const f of p.unsubscriptions) for (const owner of OWNERS) checkFilter(f, owner);
            } else if (p.cmd === 'connect') {
              if (p.username !== undefined && typeof p.username !== 'string') throw new InvariantError('connect username is not a string');
              if (typeof p.clientId !== 'string') throw new InvariantError('connect clientId is not a string');
            }
          }
        }
      },
      classify(err) {
        // The reader wraps what the parser throws (rather than emits) as PROTO_BAD_MESSAGE
        // and closes; a TypeError or RangeError in there is still a parser bug to report.
        const cause: unknown = err instanceof Error ? err.cause : undefined;
        if (cause instanceof Error && cause.constructor !== Error) return undefined;
        return protocolCode(err);
      },
    };
  },
};

const PUSH_SEEDS = [
  '{"event":"onMsg","data":{"title":"t","msg":"m"},"to":{"clientIds":["a","b"],"tags":["vip"]},"ttl":3600}',
  '{"data":null}',
  '{"data":[1,2,{"x":"y"}],"to":{}}',
  '{"event":"e","data":"x","to":{"tags":["a"]}}',
];

const mqttPushDecoder: DecoderSpec = {
  name: 'mqtt-push',
  about: 'the JSON push request a manager publishes on apps/{apikey}/push (push-request.ts), and topic filters',
  async open() {
    return {
      seeds: PUSH_SEEDS.map((s) => Buffer.from(s)),
      json: true,
      run(input, pick) {
        checkPush(input);
        // The same bytes as a topic filter: the other string an MQTT client controls.
        checkFilter(bytesToString(input, pick), OWNERS[pick() % OWNERS.length]!);
        checkFilter(`apps/apikey/${input.toString('utf8')}`, OWNERS[pick() % OWNERS.length]!);
      },
      classify: () => undefined,
    };
  },
};

// ---------------------------------------------------------------- plain WebSocket JSON

const WS_SEEDS = [
  { type: 'enter', apikey: 'k', clientId: 'c', token: 't', lastId: 5, tags: ['a', 'b'], ref: 1 },
  { type: 'enter', role: 'manager', apikey: 'k', secret: 's', ref: 'r' },
  { type: 'enter', role: 'manager', apikey: 'k', userId: 'admin', password: 'p' },
  { type: 'ack', id: 12, ref: 2 },
  { type: 'subscribe', tags: ['x'] },
  { type: 'unsubscribe', tags: ['x', 'y'], ref: 'u' },
  { type: 'push', event: 'onMsg', data: { a: [1, 2] }, to: { clientIds: ['c'], tags: ['t'] }, ttl: 60, ref: 3 },
  { type: 'ping', ref: 4 },
];

const wsJsonDecoder: DecoderSpec = {
  name: 'ws-json',
  about: 'plain-WebSocket JSON frames: decodeJson limits, then the zod frame schema (src/protocol/json/frames.ts)',
  async open() {
    return {
      seeds: WS_SEEDS.map((f) => Buffer.from(JSON.stringify(f))),
      json: true,
      run(input, pick) {
        const limits = { maxBytes: pick() % 4 === 0 ? pick() % 256 : 1 << 16, ...(pick() % 4 === 0 ? { maxDepth: pick() % 8 } : {}) };
        const asString = pick() % 2 === 0;
        // The connector echoes the ref of a frame that failed validation.
        try {
          readRef(decodeJson(asString ? input.toString('utf8') : input, limits));
        } catch (err) {
          if (!isProtocolError(err)) throw err;
        }
        const frame = parseClientFrame(asString ? input.toString('utf8') : input, limits);
        if (frame.type === 'ack' && !(Number.isSafeInteger(frame.id) && frame.id >= 0)) throw new InvariantError(`ack id ${frame.id}`);
      },
      classify: protocolCode,
    };
  },
};

// ---------------------------------------------------------------- SSE request

const sseParamsDecoder: DecoderSpec = {
  name: 'sse-params',
  about: "an SSE request's query (lastEventId, token, tags) and Last-Event-ID header (sse-request.ts)",
  async open() {
    return {
      seeds: ['lastEventId=5&token=abc.def&tags=a,b&tags=c', 'tags=%20x%20,,y', 'lastEventId=99999999999999999', 'token=&lastEventId='].map((s) => Buffer.from(s)),
      run(input, pick) {
        const text = input.toString('latin1');
        const split = text.indexOf('\n');
        const query = split < 0 ? text : text.slice(0, split);
        const header = split < 0 ? undefined : text.slice(split + 1);
        const headers: Record<string, string | string[]> = {};
        if (header !== undefined) headers['last-event-id'] = pick() % 8 === 0 ? [header, 'x'] : header;
        const req = { url: `/api/v1/apps/k/clients/c/events?${query}`, headers };
        const params = readSseParams(req as unknown as IncomingMessage);
        if (typeof params.resumeAfter === 'number' && !(Number.isSafeInteger(params.resumeAfter) && params.resumeAfter >= 0)) {
          throw new InvariantError(`resumeAfter ${params.resumeAfter}`);
        }
      },
      classify: (err) => (err instanceof HubError ? `HUB_${err.code}` : undefined),
    };
  },
};

// ---------------------------------------------------------------- HTTP

interface HttpRoute {
  readonly method: 'GET' | 'POST' | 'PATCH';
  /** `{k}` is the apikey (sometimes mutated), `{q}` a query built from the input, `{id}` a message id from it. */
  readonly path: string;
  readonly auth: 'app' | 'admin' | 'none';
  /** Relative weight: login runs scrypt on every well-shaped body, so it is rare. */
  readonly weight: number;
  readonly bodies: readonly unknown[];
}

const HTTP_ROUTES: readonly HttpRoute[] = [
  {
    method: 'POST',
    path: '/api/v1/apps/{k}/messages',
    auth: 'app',
    weight: 30,
    bodies: [{ event: 'onMsg', data: { title: 'a', msg: 'b' }, to: { clientIds: ['c1'], tags: ['t'] }, ttl: 60 }, { data: [1, 'x', null] }, { data: 'x', to: { tags: ['vip'] } }],
  },
  { method: 'POST', path: '/api/v1/apps/{k}/tokens', auth: 'app', weight: 20, bodies: [{ clientId: 'c1', ttl: 3600, format: 'jwt' }, { clientId: 'c2', format: 'compact' }] },
  { method: 'PATCH', path: '/api/v1/apps/{k}', auth: 'admin', weight: 10, bodies: [{ name: 'renamed', messageTtlSeconds: 600, requireClientToken: false }] },
  { method: 'POST', path: '/api/v1/apps', auth: 'admin', weight: 5, bodies: [{ name: 'fuzz', messageTtlSeconds: 60 }] },
  { method: 'POST', path: '/api/v1/session', auth: 'none', weight: 1, bodies: [{ username: 'admin', password: 'wrong' }] },
  { method: 'GET', path: '/api/v1/apps/{k}/messages?{q}', auth: 'app', weight: 10, bodies: ['limit=10&before=5'] },
  { method: 'GET', path: '/api/v1/apps/{k}/messages/{id}', auth: 'app', weight: 5, bodies: ['1'] },
  { method: 'GET', path: '/api/v1/apps/{k}/clients?{q}', auth: 'app', weight: 10, bodies: ['search=c&offset=0&limit=5'] },
  { method: 'GET', path: '/api/v1/apps/{k}/stats', auth: 'app', weight: 2, bodies: [''] },
];
const WEIGHT_TOTAL = HTTP_ROUTES.reduce((n, r) => n + r.weight, 0);
const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream', 'APPLICATION/JSON', ''];

function pickRoute(pick: Rng): HttpRoute {
  let n = pick() % WEIGHT_TOTAL;
  for (const r of HTTP_ROUTES) {
    if (n < r.weight) return r;
    n -= r.weight;
  }
  return HTTP_ROUTES[0]!;
}

const httpDecoder: DecoderSpec = {
  name: 'http',
  about: 'HTTP bodies and queries of push, tokens, apps, session, history, clients: fastify inject into the real API',
  slow: true,
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'shaddock-fuzz-http-'));
    const log = createLogger('silent');
    const storage = openSqliteStorage(join(dir, 'fuzz.db'));
    const bus = new LocalBus();
    const hub = new Hub({ storage, bus, logger: log, maxBufferedBytes: 1 << 20 });
    const api = buildHttpApi({ hub, storage, log, bodyLimit: 64 * 1024, defaultMessageTtlSeconds: 60 });
    await api.ready();
    const password = 'fuzz-admin-password';
    await storage.admins.setAdminPassword('admin', password);
    const app = await storage.apps.createApp({ name: 'fuzz', messageTtlSeconds: 60 });
    // One login, then the session cookie and CSRF token: Basic auth would run scrypt per request.
    const login = await api.inject({ method: 'POST', url: '/api/v1/session', payload: { username: 'admin', password } });
    const cookie = String(login.headers['set-cookie'] ?? '').split(';')[0] ?? '';
    const csrf = (login.json() as { csrfToken: string }).csrfToken;
    const seeds: Buffer[] = [];
    for (const r of HTTP_ROUTES) for (const b of r.bodies) seeds.push(Buffer.from(typeof b === 'string' ? b : JSON.stringify(b)));
    return {
      seeds,
      json: true,
      async run(input, pick) {
        const route = pickRoute(pick);
        const apikey = pick() % 16 === 0 ? encodeURIComponent(input.subarray(0, 1 + (pick() % 16)).toString('latin1')) || 'x' : app.apikey;
        const text = input.toString('latin1');
        const url = route.path
          .replace('{k}', apikey)
          .replace('{q}', pick() % 2 === 0 ? text.replace(/[#\s]/g, '') : encodeURI(text))
          .replace('{id}', encodeURIComponent(text.slice(0, 40)) || '0');
        const headers: Record<string, string> = {};
        if (route.auth === 'app') headers['authorization'] = pick() % 32 === 0 ? `Bearer ${text.slice(0, 20).replace(/[^\x20-\x7e]/g, '')}` : `Bearer ${app.secret}`;
        if (route.auth === 'admin') {
          headers['cookie'] = cookie;
          headers['x-csrf-token'] = csrf;
        }
        const ct = CONTENT_TYPES[pick() % CONTENT_TYPES.length]!;
        if (route.method !== 'GET' && ct !== '') headers['content-type'] = ct;
        let res;
        try {
          res = await api.inject({ method: route.method, url, headers, ...(route.method !== 'GET' ? { payload: input } : {}) });
        } catch (err) {
          // inject refuses URLs that no HTTP client could send (light-my-request's own check).
          if (err instanceof Error && /invalid|URL|path/i.test(err.message) && err.name !== 'InvariantError') throw new HttpRefusal('INJECT_BAD_URL');
          throw err;
        }
        if (res.statusCode >= 500) throw new InvariantError(`${route.method} ${url} answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
        if (res.statusCode >= 400) {
          let code: unknown;
          try {
            code = (JSON.parse(res.body) as { code?: unknown }).code;
          } catch {
            throw new InvariantError(`${route.method} ${url} answered ${res.statusCode} without a JSON body`);
          }
          if (typeof code !== 'string' || !/^[A-Z][A-Z0-9_]+$/.test(code)) throw new InvariantError(`${res.statusCode} without a SCREAMING_SNAKE code`);
          throw new HttpRefusal(`${res.statusCode}_${code}`);
        }
      },
      classify: (err) => (err instanceof HttpRefusal ? err.code : undefined),
      async close() {
        await api.close();
        await hub.close();
        await bus.close();
        await storage.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

/** A 4xx with a proper `{code, message}`: the API's documented refusal. */
class HttpRefusal extends Error {
  override readonly name = 'HttpRefusal';
  constructor(readonly code: string) {
    super(code);
  }
}

export const DECODERS: readonly DecoderSpec[] = [pomelo, sioFrameDecoder, sioPacketDecoder, mqttDecoder, mqttPushDecoder, wsJsonDecoder, sseParamsDecoder, httpDecoder];

/**
 * Decoders that exist to test the runner itself (test/fuzz/runner.test.ts), never run by
 * `--decoder all`: one hangs on inputs starting with 0x42, one throws a TypeError on
 * inputs starting with 0x43.
 */
export const SELFTEST_DECODERS: readonly DecoderSpec[] = [
  {
    name: 'selftest-hang',
    about: 'runner self-test: loops forever on inputs starting with 0x42',
    async open() {
      return {
        seeds: [],
        run(input) {
          if (input[0] === 0x42) for (;;);
        },
        classify: () => undefined,
      };
    },
  },
  {
    name: 'selftest-crash',
    about: 'runner self-test: a TypeError on inputs starting with 0x43',
    async open() {
      return {
        seeds: [],
        run(input) {
          if (input[0] === 0x43) throw new TypeError('selftest crash');
          if (input[0] === 0x44) throw new ProtocolErrorLike('refused');
        },
        classify: (err) => (err instanceof ProtocolErrorLike ? 'SELFTEST_REFUSED' : undefined),
      };
    },
  },
];

class ProtocolErrorLike extends Error {}

export function decoderByName(name: string): DecoderSpec | undefined {
  return DECODERS.find((d) => d.name === name) ?? SELFTEST_DECODERS.find((d) => d.name === name);
}

/**
 * Replays a Pomelo crasher (a raw input without a pick seed, as pomelo-fuzz.ts saves
 * them) through every Pomelo decoder; our own format goes through `replayCrasher`.
 */
export { pomeloReplay };

export type { DecoderInstance };
