#!/usr/bin/env node
// Writes test/fixtures/pomelo-vectors.json: the Pomelo wire-format test vectors that the
// codec, client and connector tests check our code against (docs/pomelo-protocol.md §17).
//
//   node scripts/make-pomelo-vectors.mjs            # rewrite the file
//   node scripts/make-pomelo-vectors.mjs --stdout   # print it instead
//
// Every byte comes from the reference npm packages in devDependencies, run here:
//   - pomelo-protocol 0.1.6: Package and Message encoders and decoders;
//   - pomelo-protobuf 0.4.0: its Node codec, and its browser codec (lib/client) loaded in Node;
//   - socket.io-client v2's socket.io-parser and engine.io-parser: the socket.io text framing.
// Pomelo's server (pomelo 2.2.7) is not a dependency. What it adds on top of those
// libraries is small and deterministic, and is written out below where it is used, each
// piece naming the pomelo 2.2.7 file it follows: the route dictionary (§8.1), the
// handshake reply's JSON (§4.3), the hybrid coder's choice of route code and body
// encoding (§9.1), and sioconnector's string framing (§11). The values these produce were
// compared byte for byte with the output of pomelo 2.2.7's own modules when this script
// was written. The one literal is the engine.io open packet of `sio-engineio-open`,
// observed on a live pomelo server and kept as text.
//
// Sections (§N) are those of docs/pomelo-protocol.md. The output is deterministic;
// test/fixtures/pomelo-vectors.test.ts checks that the committed file is exactly what
// this script writes, so the two cannot drift apart.

import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';

const require = createRequire(import.meta.url);
const OUT = fileURLToPath(new URL('../test/fixtures/pomelo-vectors.json', import.meta.url));

// pomelo-protobuf warns on stdout (a missing required field, §9.4); keep stdout for the JSON.
const stdoutWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => process.stderr.write(chunk, ...rest);

const { Package, Message } = require('pomelo-protocol');
const protobuf = require('pomelo-protobuf'); // the Node codec, as a server uses it
const browserPb = require('pomelo-protobuf/lib/client/protobuf.js'); // the codec browsers load
const requireFromSio = createRequire(require.resolve('socket.io-client-v2'));
const sioParser = requireFromSio('socket.io-parser');
const eioParser = createRequire(requireFromSio.resolve('engine.io-client'))('engine.io-parser');

const versionOf = (req, name) => req(`${name}/package.json`).version;
const versions = {
  'pomelo-protocol': versionOf(require, 'pomelo-protocol'),
  'pomelo-protobuf': versionOf(require, 'pomelo-protobuf'),
  'socket.io-parser': versionOf(requireFromSio, 'socket.io-parser'),
  'engine.io-parser': versionOf(createRequire(requireFromSio.resolve('engine.io-client')), 'engine.io-parser'),
};

// ---------------------------------------------------------------- helpers
const hex = (b) => (b == null ? null : Buffer.from(b).toString('hex'));
const utf8 = (s) => Buffer.from(s, 'utf8');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const md5base64 = (s) => crypto.createHash('md5').update(s).digest('base64');
const vectors = [];
const ids = new Set();
function add(v) {
  if (ids.has(v.id)) throw new Error(`duplicate vector id ${v.id}`);
  ids.add(v.id);
  vectors.push(v);
  return v;
}
function check(cond, what) {
  if (!cond) throw new Error(`self-check failed: ${what}`);
}
const sameJson = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const MESSAGE_TYPE_NAMES = ['request', 'notify', 'response', 'push'];
const PACKAGE_TYPE_NAMES = { 1: 'handshake', 2: 'handshakeAck', 3: 'heartbeat', 4: 'data', 5: 'kick' };

/** A package buffer as the reference decoder reads it (an array for several, §2.1). */
function viewPackage(buf) {
  const decoded = Package.decode(Buffer.from(buf));
  const one = (p) => ({ type: p.type, typeName: PACKAGE_TYPE_NAMES[p.type] || null, bodyHex: hex(p.body) || '' });
  return Array.isArray(decoded) ? decoded.map(one) : one(decoded);
}
/** A message buffer as the reference decoder reads it (§3). */
function viewMessage(buf) {
  const m = Message.decode(Buffer.from(buf));
  return {
    id: m.id,
    type: m.type,
    typeName: MESSAGE_TYPE_NAMES[m.type] || null,
    compressRoute: m.compressRoute,
    compressGzip: m.compressGzip,
    route: m.route,
    bodyHex: hex(m.body) || '',
  };
}

// ---------------------------------------------------------------- packages (§2)
// The handshake the bundled browser client (pomelo-jsclient-websocket) sends (§4.2).
const BROWSER_HANDSHAKE = { sys: { type: 'js-websocket', version: '0.0.1' } };
{
  const body = utf8(JSON.stringify(BROWSER_HANDSHAKE));
  const pkg = Package.encode(Package.TYPE_HANDSHAKE, body);
  add({
    id: 'pkg-handshake-request-demo-browser', kind: 'package', direction: 'client->server',
    description: 'Handshake package as the bundled browser client (pomelo-jsclient-websocket) sends it when its WebSocket opens. The body is UTF-8 JSON (docs/pomelo-protocol.md §4.2).',
    input: { type: 1, bodyJson: JSON.stringify(BROWSER_HANDSHAKE) }, hex: hex(pkg), decoded: viewPackage(pkg),
  });
  const ack = Package.encode(Package.TYPE_HANDSHAKE_ACK);
  add({
    id: 'pkg-handshake-ack', kind: 'package', direction: 'client->server',
    description: 'Handshake ACK: type 2, length 0. The server then starts the connection and, with a heartbeat configured, sends a heartbeat at once (§4.5).',
    input: { type: 2 }, hex: hex(ack), decoded: viewPackage(ack),
  });
  const heartbeat = Package.encode(Package.TYPE_HEARTBEAT);
  add({
    id: 'pkg-heartbeat', kind: 'package', direction: 'both',
    description: 'Heartbeat: type 3, length 0, the same both ways (§5).',
    input: { type: 3 }, hex: hex(heartbeat), decoded: viewPackage(heartbeat),
  });
  for (const reason of ['kick', 'attack', '被踢']) {
    const kick = Package.encode(Package.TYPE_KICK, utf8(JSON.stringify({ reason })));
    add({
      id: `pkg-kick-${Buffer.from(reason).toString('hex')}`, kind: 'package', direction: 'server->client',
      description: 'Kick package sent before the server closes the connection: the body is JSON {"reason": <string>} (§7).',
      input: { type: 5, bodyJson: JSON.stringify({ reason }) }, hex: hex(kick), decoded: viewPackage(kick),
    });
  }
  const emptyData = Package.encode(Package.TYPE_DATA);
  add({
    id: 'pkg-data-empty', kind: 'package', direction: 'client->server',
    description: 'A DATA package of length 0: the reference decoder gives body null, and there is no message in it (§2.2). Never sent by a correct peer.',
    input: { type: 4 }, hex: hex(emptyData), decoded: viewPackage(emptyData),
  });
  const two = Buffer.concat([Package.encode(3), Package.encode(4, utf8('{}'))]);
  check(Array.isArray(Package.decode(two)) && Package.decode(two).length === 2, 'two packages decode as an array');
  add({
    id: 'pkg-two-in-one-buffer', kind: 'package', direction: 'both',
    description: 'Two packages back to back in one buffer: the reference Package.decode returns an array then, one object otherwise. On TCP the stream is split by length (§2.1); one WebSocket message carries one package (§2.3).',
    input: { packages: [{ type: 3 }, { type: 4, bodyUtf8: '{}' }] }, hex: hex(two), decoded: viewPackage(two),
  });

  // A DATA package whose body is 70,000 bytes: all three length bytes are used.
  const route = 'onMsg';
  const overhead = 1 + 1 + route.length + utf8('{"msg":""}').length;
  const body70k = utf8(JSON.stringify({ msg: 'x'.repeat(70000 - overhead) }));
  const msg70k = Message.encode(0, Message.TYPE_PUSH, 0, route, body70k);
  check(msg70k.length === 70000, 'the message is 70000 bytes');
  const big = Package.encode(Package.TYPE_DATA, msg70k);
  const bigDecoded = Package.decode(big);
  add({
    id: 'pkg-data-70000', kind: 'package', direction: 'server->client',
    description: 'DATA package whose body is exactly 70,000 bytes (0x011170): the 3-byte big-endian length is 01 11 70 (§2). The body is a push, route "onMsg", JSON {"msg":"xxx…x"} (69,988 x).',
    input: { type: 4, body: { message: { type: 3, compressRoute: 0, route, bodyJson: '{"msg":"x…x (69988 times)"}' } }, bodyLength: 70000 },
    headerHex: hex(big.subarray(0, 4)), sha256: sha256(big), length: big.length,
    hex: hex(big), decoded: { type: bigDecoded.type, typeName: 'data', bodyLength: bigDecoded.body.length },
  });

  const maxPkg = Package.encode(Package.TYPE_DATA, Buffer.alloc(0xffffff, 0x20));
  add({
    id: 'pkg-length-max', kind: 'package-header', direction: 'both',
    description: 'The largest body a package can carry: 16,777,215 bytes (0xFFFFFF). Only the 4-byte header is given.',
    input: { type: 4, bodyLength: 0xffffff }, headerHex: hex(maxPkg.subarray(0, 4)), length: maxPkg.length,
  });
  const wrapPkg = Package.encode(Package.TYPE_DATA, Buffer.alloc(0x1000000 + 5, 0x20));
  add({
    id: 'pkg-length-wrap', kind: 'package-header', direction: 'both',
    description: 'A body of 2^24 + 5 bytes: the reference encoder does not refuse it, the length wraps to 5 (04 00 00 05) while every byte is still appended, which corrupts the stream. A correct encoder refuses bodies over 0xFFFFFF (§2.2).',
    input: { type: 4, bodyLength: 0x1000000 + 5 }, headerHex: hex(wrapPkg.subarray(0, 4)), length: wrapPkg.length,
  });
}

// ---------------------------------------------------------------- messages (§3)
function messageVector(id, description, { msgId = 0, type, compressRoute = 0, route = null, body = null, bodyJson, compressGzip }) {
  const b = bodyJson !== undefined ? utf8(bodyJson) : body;
  const m = Message.encode(msgId, type, compressRoute, route, b, compressGzip);
  const decoded = viewMessage(m);
  check(decoded.type === type, `${id}: type`);
  if (type === Message.TYPE_REQUEST || type === Message.TYPE_RESPONSE) check(decoded.id === msgId, `${id}: id`);
  return add({
    id, kind: 'message', direction: type === 0 || type === 1 ? 'client->server' : 'server->client', description,
    input: {
      id: msgId, type, typeName: MESSAGE_TYPE_NAMES[type], compressRoute, route,
      bodyJson: bodyJson !== undefined ? bodyJson : undefined,
      bodyHex: bodyJson === undefined && b ? hex(b) : undefined,
      compressGzip,
    },
    messageHex: hex(m), hex: hex(Package.encode(Package.TYPE_DATA, m)), decoded,
  });
}

const CONSOLE_ENTER = { apiKey: 'a1b2c3', userId: 'admin', role: 'server', password: 'secret' };
messageVector('msg-request-id1-route-string', 'Request id 1 with the route as a length-prefixed string, as the seed\'s web console sends hybrid-connector.entryHandler.enter. Flag 0x00 (§3.1).',
  { msgId: 1, type: 0, route: 'hybrid-connector.entryHandler.enter', bodyJson: JSON.stringify(CONSOLE_ENTER) });
messageVector('msg-request-id1-route-code', 'The same request with the route compressed to dictionary code 1 (2 bytes, big-endian). Flag 0x01 (§3.3, §8.2).',
  { msgId: 1, type: 0, compressRoute: 1, route: 1, bodyJson: JSON.stringify(CONSOLE_ENTER) });
for (const n of [127, 128, 300, 16383, 16384, 2097151, 2097152, 268435455, 268435456, 2147483647]) {
  messageVector(`msg-request-id${n}`, `Request id ${n}: the id is a base-128 varint, low 7 bits first, bit 7 set on every byte but the last (§3.2).`,
    { msgId: n, type: 0, route: 'a.b.c', bodyJson: '{}' });
}
messageVector('msg-notify-route-string', 'Notify (no id) with the route as a string. Flag 0x02.',
  { type: 1, route: 'chat.chatHandler.send', bodyJson: '{"content":"hi"}' });
messageVector('msg-notify-route-code', 'Notify with route code 0x0102 (258). Flag 0x03.',
  { type: 1, compressRoute: 1, route: 258, bodyJson: '{"content":"hi"}' });
messageVector('msg-response-id1', 'Response to request 1 (the seed\'s enter, role "server"): no route on the wire, the client knows it from the id. Flag 0x04.',
  { msgId: 1, type: 2, bodyJson: JSON.stringify({ code: 200, msg: 'push server is ok.', users: ['00:11:22:33:44:55'] }) });
messageVector('msg-response-id300', 'Response with a 2-byte id (300 = ac 02).',
  { msgId: 300, type: 2, bodyJson: '{"code":200}' });
messageVector('msg-response-error-500', 'The answer a client gets from a handler that failed without a body of its own: {"code":500} (§14.2).',
  { msgId: 7, type: 2, bodyJson: '{"code":500}' });
messageVector('msg-push-route-string', 'Push with the route "onAdd" as a string (the seed\'s presence push to the console). Flag 0x06.',
  { type: 3, route: 'onAdd', bodyJson: JSON.stringify({ msg: 'add ok', users: ['00:11:22:33:44:55', 'aa:bb:cc:dd:ee:ff'] }) });
messageVector('msg-push-route-code', 'Push with route code 5. Flag 0x07.',
  { type: 3, compressRoute: 1, route: 5, bodyJson: JSON.stringify({ msg: { title: 'hello', msg: 'world' } }) });
messageVector('msg-push-utf8-chinese', 'Push "onMsg" whose JSON body holds Chinese text: bodies are plain UTF-8 (3 bytes per CJK character).',
  { type: 3, route: 'onMsg', bodyJson: JSON.stringify({ msg: { title: '通知', msg: '你好，世界' } }) });
messageVector('msg-request-utf8-chinese', 'Request whose body holds Chinese text (UTF-8).',
  { msgId: 2, type: 0, route: 'pushserver.pushHandler.pushAll', bodyJson: JSON.stringify({ msg: { title: '标题', msg: '推送内容' }, apikey: 'a1b2c3' }) });
messageVector('msg-request-empty-route', 'Request with an empty route: route length byte 00. No server serves that route.',
  { msgId: 3, type: 0, route: '', bodyJson: '{}' });
messageVector('msg-response-gzip-flag', 'The reference encoder can set flag bit 4 (0x10, "compressGzip"); Pomelo servers never set it and ignore it. Here so that decoders do not read 0x14 as an unknown type (§3.1).',
  { msgId: 1, type: 2, bodyJson: '{}', compressGzip: 1 });
{
  const route255 = `a.b.${'c'.repeat(251)}`;
  messageVector('msg-request-route-255', 'The longest route as a string: 255 UTF-8 bytes (length byte ff) (§3.3).',
    { msgId: 1, type: 0, route: route255, bodyJson: '{}' });
  let threw = null;
  try {
    Message.encode(1, 0, 0, `${route255}c`, utf8('{}'));
  } catch (e) {
    threw = e.message;
  }
  check(threw, 'a 256-byte route throws');
  add({
    id: 'msg-request-route-256-rejected', kind: 'message-error', direction: 'client->server',
    description: 'The reference encoder throws on a 256-byte route.', input: { route: '(256 bytes)' }, throws: threw,
  });
}
{
  const unknownType = Buffer.from([0x0a, 0x7b, 0x7d]);
  add({
    id: 'msg-decode-unknown-type', kind: 'message-decode', direction: 'both',
    description: 'The reference Message.decode of flag 0x0a (type 5): neither id nor route, the body is every byte after the flag. No server accepts type 5 (§3.1).',
    hex: hex(unknownType), decoded: viewMessage(unknownType),
  });
}

// ---------------------------------------------------------------- legacy ids (§16.2)
// Old browser bundles (pomelo-protocol 0.1.1 and before, still shipped in the seed's web
// console) write the request id big-endian base-128, high group first. Only that id
// writer is ours; the server side is the reference 0.1.6 decoder and encoder.
function legacyIdBytes(id) {
  const groups = [];
  do {
    groups.unshift(id & 0x7f);
    id >>>= 7;
  } while (id > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? g | 0x80 : g));
}
for (const n of [5, 128, 256, 300, 16384, 20000]) {
  const route = utf8('hybrid-connector.entryHandler.enter');
  const m = Buffer.concat([Buffer.from([0x00]), Buffer.from(legacyIdBytes(n)), Buffer.from([route.length]), route, utf8('{}')]);
  const seen = Message.decode(m);
  const reply = Message.encode(seen.id, Message.TYPE_RESPONSE, 0, null, utf8('{}'));
  const replyIdBytes = reply.subarray(1, reply.length - 2);
  let back = 0;
  for (const b of replyIdBytes) back = (back << 7) | (b & 0x7f); // how the old bundle reads it
  add({
    id: `legacy-id-${n}`, kind: 'legacy-id', direction: 'client->server->client',
    description: `An old browser bundle sends request id ${n} big-endian; pomelo-protocol 0.1.6 reads it as ${seen.id} and answers with id bytes ${hex(replyIdBytes)}, which the old bundle reads back as ${back}. ${back === n ? 'Round-trips by accident (the same bytes).' : `BROKEN: the callback for ${n} never fires.`}`,
    input: { legacyRequestId: n }, legacyIdHex: hex(Buffer.from(legacyIdBytes(n))), requestMessageHex: hex(m),
    serverDecodedId: seen.id, serverResponseMessageHex: hex(reply), legacyClientReadsId: back, roundTrips: back === n,
  });
}

// ---------------------------------------------------------------- protobuf (§9)
// A small proto set in pomelo-protobuf's JSON format (§9.2): every scalar type, nested and
// top-level messages, repeated fields.
const SERVER_PROTOS_SRC = {
  onMsg: {
    'message Msg': { 'required string title': 1, 'required string msg': 2 },
    'required Msg msg': 1,
  },
  onAdd: { 'required string msg': 1, 'repeated string users': 2 },
  onStats: {
    'message Entry': { 'required string name': 1, 'optional uInt32 count': 2 },
    'required uInt32 total': 1,
    'repeated uInt32 counts': 2,
    'optional sInt32 delta': 3,
    'optional float ratio': 4,
    'optional double avg': 5,
    'repeated Entry entries': 6,
    'repeated string tags': 7,
    'repeated double samples': 8,
  },
  'message User': { 'required string id': 1, 'optional uInt32 age': 2 },
  onUsers: { 'repeated User users': 1 },
  'hybrid-connector.entryHandler.enter': { 'required uInt32 code': 1, 'optional string msg': 2, 'repeated string users': 3 },
};
const CLIENT_PROTOS_SRC = {
  'hybrid-connector.entryHandler.enter': {
    'optional string role': 1, 'optional string apiKey': 2, 'optional string clientId': 3,
    'optional string userId': 4, 'optional string password': 5,
  },
  'pushserver.pushHandler.pushAll': {
    'message Msg': { 'required string title': 1, 'required string msg': 2 },
    'required string apikey': 1,
    'required Msg msg': 2,
  },
  'area.playerHandler.move': { 'required uInt32 x': 1, 'required uInt32 y': 2, 'optional sInt32 dz': 3, 'repeated uInt32 path': 4 },
};
const SERVER_PROTOS = protobuf.parse(SERVER_PROTOS_SRC);
const CLIENT_PROTOS = protobuf.parse(CLIENT_PROTOS_SRC);
// §4.3: the protos' cache token.
const protosVersion = (client, server) => md5base64(JSON.stringify(client) + JSON.stringify(server));
const PROTOS_VERSION = protosVersion(CLIENT_PROTOS, SERVER_PROTOS);

// A server encodes pushes and responses with the server protos and decodes requests with
// the client protos; a client the other way round (§9.1).
function serverEncode(route, msg) {
  protobuf.init({ encoderProtos: SERVER_PROTOS, decoderProtos: CLIENT_PROTOS });
  return protobuf.encode(route, msg);
}
function serverDecodeRequest(route, buf) {
  protobuf.init({ encoderProtos: SERVER_PROTOS, decoderProtos: CLIENT_PROTOS });
  return protobuf.decode(route, Buffer.from(buf));
}
function browserEncodeRequest(route, msg) {
  browserPb.init({ encoderProtos: CLIENT_PROTOS, decoderProtos: SERVER_PROTOS });
  const r = browserPb.encode(route, msg);
  return r ? Buffer.from(r) : null;
}
function browserDecodePush(route, buf) {
  browserPb.init({ encoderProtos: CLIENT_PROTOS, decoderProtos: SERVER_PROTOS });
  return browserPb.decode(route, new Uint8Array(buf));
}
function nodeEncodeRequest(route, msg) {
  protobuf.init({ encoderProtos: CLIENT_PROTOS, decoderProtos: SERVER_PROTOS });
  return protobuf.encode(route, msg);
}

function protobufPushVector(id, description, route, msg, { routeCode } = {}) {
  const body = serverEncode(route, msg);
  check(body, `${id}: encodes`);
  const back = browserDecodePush(route, body);
  check(sameJson(back, msg), `${id}: the browser codec decodes it back`);
  const m = Message.encode(0, Message.TYPE_PUSH, routeCode ? 1 : 0, routeCode || route, body);
  return add({
    id, kind: 'protobuf-push', direction: 'server->client', description,
    input: { route, routeCode, message: msg, protoSet: 'serverProtos' },
    protobufHex: hex(body), messageHex: hex(m), hex: hex(Package.encode(4, m)), decodedByBrowserCodec: back,
  });
}
protobufPushVector('pb-push-onMsg-nested', 'Push onMsg with the server protos: the nested message Msg is key 0a, a length, then its fields. Strings are UTF-8 with a byte-length prefix.',
  'onMsg', { msg: { title: '通知', msg: '你好' } });
protobufPushVector('pb-push-onMsg-nested-route-code', 'The same push with its route compressed to code 22 (flag 07, route 00 16).',
  'onMsg', { msg: { title: '通知', msg: '你好' } }, { routeCode: 22 });
protobufPushVector('pb-push-onAdd-repeated-string', 'A repeated string: one key and one length-delimited value per element (key 12 repeated).',
  'onAdd', { msg: 'add ok', users: ['00:11:22:33:44:55', 'aa:bb:cc:dd:ee:ff'] });
protobufPushVector('pb-push-onStats-all-types', 'Every scalar type: uInt32 varint; a repeated uInt32 is "Pomelo-packed": one key with wire type 0 (not 2), a varint element count, then the varints; sInt32 zig-zag; float 4 bytes LE; double 8 bytes LE; repeated messages one key per element; repeated strings (§9.4).',
  'onStats', { total: 300, counts: [1, 2, 300], delta: -3, ratio: 0.5, avg: 1.25, entries: [{ name: 'a', count: 1 }, { name: '甲' }], tags: ['x', 'y'] });
protobufPushVector('pb-push-onUsers-global-message', 'A field whose type is a top-level "message User". The Node codec and the npm 0.4.0 browser codec resolve it; older browser bundles do not.',
  'onUsers', { users: [{ id: 'u1', age: 30 }, { id: 'u2' }] });
protobufPushVector('pb-push-negative-and-large', 'uInt32 4294967295 is ffffffff0f (the Node codec does float arithmetic, so values up to 2^53 encode); the zig-zag sInt32 of -64 is 7f.',
  'onStats', { total: 4294967295, delta: -64 });
{
  const first = serverEncode('onAdd', { msg: 'm', users: ['u'] });
  const second = serverEncode('onAdd', { users: ['u'], msg: 'm' });
  add({
    id: 'pb-field-order-follows-object-keys', kind: 'protobuf-note', direction: 'server->client',
    description: 'The encoder follows the object\'s key order, so {msg,users} and {users,msg} give different bytes. Decoders accept any field order (§9.5).',
    input: { route: 'onAdd', first: { msg: 'm', users: ['u'] }, second: { users: ['u'], msg: 'm' } },
    firstHex: hex(first), secondHex: hex(second),
  });
  const none = serverEncode('onAdd', { users: ['u'] });
  const emptyResponse = Message.encode(9, Message.TYPE_RESPONSE, 0, null, none);
  add({
    id: 'pb-missing-required', kind: 'protobuf-note', direction: 'server->client',
    description: 'A required field missing: pomelo-protobuf returns null (and warns), and the message goes out with an empty body (§9.4).',
    input: { route: 'onAdd', message: { users: ['u'] } }, protobufHex: hex(none), messageHex: hex(emptyResponse), hex: hex(Package.encode(4, emptyResponse)),
  });
  const dropped = serverEncode('onAdd', { msg: 'm', users: [], extra: 1 });
  add({
    id: 'pb-empty-repeated-and-unknown-key', kind: 'protobuf-note', direction: 'server->client',
    description: 'An empty repeated field writes nothing; keys that are not in the proto are dropped.',
    input: { route: 'onAdd', message: { msg: 'm', users: [], extra: 1 } }, protobufHex: hex(dropped),
  });
  const zeros = new Array(20).fill(0);
  let overflow = null;
  try {
    serverEncode('onStats', { total: 1, samples: zeros });
  } catch (e) {
    overflow = `${e.name}: ${e.message}`;
  }
  check(overflow, 'twenty doubles overflow the scratch buffer');
  const doubles = serverEncode('onStats', { total: 1, samples: [0.5, 1.5] });
  add({
    id: 'pb-repeated-double', kind: 'protobuf-push', direction: 'server->client',
    description: 'A repeated double: one key with wire type 1 (0x41 for tag 8), a varint element count, then 8-byte little-endian values.',
    input: { route: 'onStats', message: { total: 1, samples: [0.5, 1.5] } }, protobufHex: hex(doubles),
  });
  add({
    id: 'pb-scratch-buffer-overflow', kind: 'protobuf-note', direction: 'server->client',
    description: 'The Node encoder sizes its scratch buffer as twice the UTF-8 length of JSON.stringify(msg). Float- and double-heavy messages can need more: {total:1, samples:[twenty 0]} needs 164 bytes, the buffer has 126, and the encoder throws (§9.4).',
    input: { route: 'onStats', message: { total: 1, samples: zeros } }, throws: overflow,
  });
}

function protobufRequestVector(id, description, route, msg, { routeCode, reqId = 1 } = {}) {
  const browser = browserEncodeRequest(route, msg);
  const node = nodeEncodeRequest(route, msg);
  check(browser && node, `${id}: encodes`);
  const seen = serverDecodeRequest(route, browser);
  check(sameJson(seen, serverDecodeRequest(route, node)), `${id}: both codecs' bytes decode the same`);
  const m = Message.encode(reqId, Message.TYPE_REQUEST, routeCode ? 1 : 0, routeCode || route, browser);
  return add({
    id, kind: 'protobuf-request', direction: 'client->server', description,
    input: { route, routeCode, id: reqId, message: msg, protoSet: 'clientProtos' },
    browserCodecHex: hex(browser), nodeCodecHex: hex(node), messageHex: hex(m), hex: hex(Package.encode(4, m)), decodedByServer: seen,
  });
}
protobufRequestVector('pb-request-enter-strings', 'A request body with the client protos, strings only: the browser and Node codecs agree.',
  'hybrid-connector.entryHandler.enter', { role: 'client', apiKey: 'a1b2c3', clientId: '00:11:22:33:44:55' });
protobufRequestVector('pb-request-pushAll-nested', 'A request with a nested message.',
  'pushserver.pushHandler.pushAll', { apikey: 'a1b2c3', msg: { title: '标题', msg: '内容' } });
protobufRequestVector('pb-request-move-varints-wiretype-quirk', 'Varint fields: the browser codec writes their keys with wire type 2 (0a,12,1a,22: its "TYPES[type] || 2" turns 0 into 2), the Node codec with wire type 0 (08,10,18,20). The reference decoder reads only key >> 3, so both decode alike, and so must ours (§9.5).',
  'area.playerHandler.move', { x: 300, y: 5, dz: -3, path: [1, 2, 300] }, { routeCode: 3, reqId: 5 });

// ---------------------------------------------------------------- the route dictionary (§8.1)
// pomelo 2.2.7 lib/components/dictionary.js: every handler route of every server type,
// sorted with JavaScript's default sort and numbered from 1, then config/dictionary.json's
// routes in file order; the version is base64(md5(JSON.stringify(dict))).
const SEED_HANDLER_ROUTES = [
  // The seed push app's handlers (app/servers/<type>/handler/<name>.js, methods).
  'sio-connector.entryHandler.enter',
  'hybrid-connector.entryHandler.enter',
  'pushserver.pushHandler.pushAll',
  'pushserver.pushHandler.pushByClientId',
];
function makeDictionary(handlerRoutes, userRoutes) {
  const dict = {};
  const abbrs = {};
  let code = 1;
  for (const route of [...handlerRoutes].sort().concat(userRoutes)) {
    dict[route] = code;
    abbrs[code] = route;
    code++;
  }
  return { dict, abbrs, version: md5base64(JSON.stringify(dict)) };
}
// The seed app's own config: dictionary.json and both proto files are {} (adding nothing).
const SEED = { dictionary: makeDictionary(SEED_HANDLER_ROUTES, []), serverProtos: protobuf.parse({}), clientProtos: protobuf.parse({}) };
SEED.protosVersion = protosVersion(SEED.clientProtos, SEED.serverProtos);
// The vectors' "spec" app: the same handlers, dictionary.json ["onMsg","onAdd","onKick"], the protos above.
const SPEC = { dictionary: makeDictionary(SEED_HANDLER_ROUTES, ['onMsg', 'onAdd', 'onKick']), serverProtos: SERVER_PROTOS, clientProtos: CLIENT_PROTOS, protosVersion: PROTOS_VERSION };

// ---------------------------------------------------------------- handshake replies (§4.3, §4.4)
// pomelo 2.2.7 lib/connectors/commands/handshake.js: 500 without `sys`, 501 when the
// checkClient hook refuses; else sys gets, in this order, heartbeat (seconds, when set),
// the dictionary unless the client already holds its version, useDict, the protos unless
// the client holds their version, useProto; the user hook's answer goes to `user`.
function handshakeReply(app, options, clientMessage) {
  const reply = (body) => Package.encode(Package.TYPE_HANDSHAKE, utf8(JSON.stringify(body)));
  if (!clientMessage.sys) return reply({ code: 500 });
  if (typeof options.checkClient === 'function' && !options.checkClient(clientMessage.sys.type, clientMessage.sys.version)) return reply({ code: 501 });
  const sys = { heartbeat: options.heartbeat };
  if (options.useDict) {
    if (clientMessage.sys.dictVersion !== app.dictionary.version) {
      sys.dict = app.dictionary.dict;
      sys.routeToCode = app.dictionary.dict;
      sys.codeToRoute = app.dictionary.abbrs;
      sys.dictVersion = app.dictionary.version;
    }
    sys.useDict = true;
  }
  if (options.useProtobuf) {
    if (clientMessage.sys.protoVersion !== app.protosVersion) {
      sys.protos = { server: app.serverProtos, client: app.clientProtos, version: app.protosVersion };
    }
    sys.useProto = true;
  }
  const body = { code: 200, sys };
  if (typeof options.handshake === 'function') body.user = options.handshake(clientMessage);
  return reply(body);
}
function handshakeVector(id, description, input, buf) {
  return add({ id, kind: 'handshake', direction: 'server->client', description, input, bodyJson: buf.subarray(4).toString('utf8'), hex: hex(buf) });
}
{
  const seedOptions = { heartbeat: 1000, useDict: true, useProtobuf: true }; // the seed's connectorConfig
  const cached = { sys: { type: 'js-websocket', version: '0.0.1', dictVersion: SEED.dictionary.version, protoVersion: SEED.protosVersion } };
  handshakeVector('hs-reply-demo-app', 'Handshake reply of the seed push app (hybrid connector: heartbeat 1000 — seconds —, useDict, useProtobuf; empty dictionary.json and protos) to the browser handshake. The dictionary is its sorted handler routes (§8.1).',
    { connectorConfig: seedOptions, clientHandshake: BROWSER_HANDSHAKE }, handshakeReply(SEED, seedOptions, BROWSER_HANDSHAKE));
  handshakeVector('hs-reply-demo-app-cached', 'The same server to a client that holds the current dictVersion and protoVersion: the dictionary and protos are left out, the use* flags stay.',
    { connectorConfig: seedOptions, clientHandshake: cached }, handshakeReply(SEED, seedOptions, cached));
  const template = { heartbeat: 3, useDict: true, useProtobuf: true };
  handshakeVector('hs-reply-template-heartbeat3', 'pomelo 2.2.7\'s template connectorConfig (heartbeat 3) with a cached dictionary and protos: the smallest usual success reply.',
    { connectorConfig: template }, handshakeReply(SEED, template, cached));
  handshakeVector('hs-reply-no-options', 'A hybrid connector without heartbeat, useDict or useProtobuf: sys is {} (an undefined heartbeat is dropped by JSON.stringify), and the client never sends heartbeats.',
    { connectorConfig: {} }, handshakeReply(SEED, {}, BROWSER_HANDSHAKE));
  const withUser = { sys: { type: 'js-websocket', version: '0.0.1' }, user: { name: 'bob' } };
  handshakeVector('hs-reply-with-user', 'With a connectorConfig.handshake(msg, cb) hook: what it answers goes out as the top-level "user". The hook gets the whole client handshake.',
    { connectorConfig: { heartbeat: 3, handshake: '(msg, cb) => cb(null, {greeting: "hi " + msg.user.name})' }, clientHandshake: withUser },
    handshakeReply(SEED, { heartbeat: 3, handshake: (msg) => ({ greeting: `hi ${msg.user.name}` }) }, withUser));
  handshakeVector('hs-reply-error-500', 'A handshake without "sys" (or whose body is not JSON): {"code":500}, then the server closes the connection (§4.4).',
    { clientHandshake: { user: {} } }, handshakeReply(SEED, seedOptions, { user: {} }));
  handshakeVector('hs-reply-error-501', 'connectorConfig.checkClient(type, version) said no: {"code":501} ("old client"), then close (§4.4).',
    { connectorConfig: { checkClient: '(type, version) => version !== "0.0.1"' }, clientHandshake: BROWSER_HANDSHAKE },
    handshakeReply(SEED, { heartbeat: 3, checkClient: (type, version) => version !== '0.0.1' }, BROWSER_HANDSHAKE));
}

// ---------------------------------------------------------------- the hybrid coder (§8.2, §9.1)
// pomelo 2.2.7 lib/connectors/common/coder.js. Encoding: a response is the body alone; a
// push's route becomes its dictionary code when useDict is on and the route has one; the
// body is protobuf when the server protos name the route (for a response: the request's
// route), JSON otherwise. Decoding: a route code is looked up in the dictionary, then the
// body is protobuf when the client protos name the route, else JSON, and {} when that
// JSON does not parse.
function coderEncode(app, reqId, route, body) {
  const encoded = app.serverProtos[route] ? serverEncodeWith(app, route, body) : utf8(JSON.stringify(body));
  if (reqId) return Message.encode(reqId, Message.TYPE_RESPONSE, 0, null, encoded);
  const code = app.dictionary.dict[route];
  return code ? Message.encode(0, Message.TYPE_PUSH, 1, code, encoded) : Message.encode(0, Message.TYPE_PUSH, 0, route, encoded);
}
function serverEncodeWith(app, route, body) {
  protobuf.init({ encoderProtos: app.serverProtos, decoderProtos: app.clientProtos });
  return protobuf.encode(route, body);
}
function coderDecode(app, pkg) {
  const m = Message.decode(Package.decode(pkg).body);
  if (m.compressRoute) m.route = app.dictionary.abbrs[m.route];
  if (app.clientProtos[m.route]) {
    protobuf.init({ encoderProtos: app.serverProtos, decoderProtos: app.clientProtos });
    m.body = protobuf.decode(m.route, m.body);
  } else {
    try {
      m.body = JSON.parse(m.body.toString('utf8'));
    } catch {
      m.body = {};
    }
  }
  return m;
}
{
  // The seed app's traffic (JSON bodies: its protos are empty).
  const request = (reqId, route, body) => Package.encode(4, Message.encode(reqId, reqId ? 0 : 1, 0, route, utf8(JSON.stringify(body))));
  const traffic = [
    ['demo-web-enter-request', 'The seed\'s web console (browser, hybrid WebSocket) enters as a manager. Note "apiKey" in camel case. The bundled client never compresses routes.', 'c',
      request(1, 'hybrid-connector.entryHandler.enter', { apiKey: 'a1b2c3', userId: 'admin', role: 'server', password: 'secret' })],
    ['demo-web-enter-response', 'The answer for role "server": users are the client ids in the channel named after the apikey (§15.2).', 's',
      coderEncode(SEED, 1, 'hybrid-connector.entryHandler.enter', { code: 200, msg: 'push server is ok.', users: ['00:11:22:33:44:55'] })],
    ['demo-web-pushAll-request', 'The console pushes to every client of its apikey. Note "apikey" in lower case here, and msg is an object {title,msg}.', 'c',
      request(2, 'pushserver.pushHandler.pushAll', { msg: { title: '通知', msg: '你好' }, apikey: 'a1b2c3' })],
    ['demo-web-pushAll-response', 'The pushAll answer.', 's',
      coderEncode(SEED, 2, 'pushserver.pushHandler.pushAll', { code: 200, msg: 'push is ok.' })],
    ['demo-web-pushByClientId-request', 'The console pushes to one client. The seed never answered this request; Shaddock does (docs/pomelo.md).', 'c',
      request(3, 'pushserver.pushHandler.pushByClientId', { msg: { title: 't', msg: 'm' }, apikey: 'a1b2c3', clientId: '00:11:22:33:44:55' })],
    ['demo-push-onAdd', 'Presence push to the console when a client enters. The route goes as a string: "onAdd" is not in the seed\'s dictionary.', 's',
      coderEncode(SEED, null, 'onAdd', { msg: 'add ok', users: ['00:11:22:33:44:55'] })],
    ['demo-push-onMsg', 'The push each client of the channel gets, in the hybrid encoding (the seed\'s Android clients get it over socket.io: see the sio vectors).', 's',
      coderEncode(SEED, null, 'onMsg', { msg: { title: '通知', msg: '你好' } })],
    ['demo-web-enter-auth-failed-response', 'The seed\'s refusal of a wrong manager password: its error handler echoed the request body with __route__, users: [] and msg " Error: invalid password", and pomelo added code 500.', 's',
      coderEncode(SEED, 1, 'hybrid-connector.entryHandler.enter', { apiKey: 'a1b2c3', userId: 'admin', role: 'server', password: 'secret', __route__: 'hybrid-connector.entryHandler.enter', users: [], msg: ' Error: invalid password', code: 500 })],
  ];
  for (const [id, description, direction, buf] of traffic) {
    const pkg = direction === 's' ? Package.encode(4, buf) : buf;
    const v = { id, kind: 'demo', direction: direction === 's' ? 'server->client' : 'client->server', description, hex: hex(pkg), decoded: viewMessage(Package.decode(pkg).body) };
    v.decoded.bodyUtf8 = Buffer.from(v.decoded.bodyHex, 'hex').toString('utf8');
    if (direction === 'c') {
      const seen = coderDecode(SEED, pkg);
      v.serverSees = { id: seen.id, route: seen.route, body: seen.body };
    }
    add(v);
  }
}
{
  // The spec app: a dictionary with push routes, and protos, through the same coder.
  const cases = [
    ['coder-push-compressed-by-dictionary', 'A push of "onMsg" with useDict: the route is in dictionary.json, so it goes as a 2-byte code; the body is protobuf because the server protos name "onMsg".',
      coderEncode(SPEC, null, 'onMsg', { msg: { title: '通知', msg: '你好' } })],
    ['coder-push-not-in-dictionary', 'A push whose route is neither a handler route nor in dictionary.json: the route as a string; no server proto, so a JSON body.',
      coderEncode(SPEC, null, 'onChat', { from: 'a', text: 'b' })],
    ['coder-response-protobuf', 'The answer to hybrid-connector.entryHandler.enter: a protobuf body, because the server protos name the request\'s route (answers are looked up by it).',
      coderEncode(SPEC, 5, 'hybrid-connector.entryHandler.enter', { code: 200, msg: 'add ok', users: ['u1'] })],
    ['coder-response-json', 'The answer for a route without a server proto: a JSON body.',
      coderEncode(SPEC, 6, 'pushserver.pushHandler.pushAll', { code: 200, msg: 'push is ok.' })],
  ];
  for (const [id, description, buf] of cases) {
    add({
      id, kind: 'hybrid-coder', direction: 'server->client', description,
      dictionary: id.includes('dictionary') ? { onMsg: SPEC.dictionary.dict.onMsg } : undefined,
      hex: hex(Package.encode(4, buf)), decoded: viewMessage(buf),
    });
  }
  const enterCode = SPEC.dictionary.dict['hybrid-connector.entryHandler.enter'];
  const enterBody = browserEncodeRequest('hybrid-connector.entryHandler.enter', { role: 'client', apiKey: 'a1b2c3', clientId: 'c1' });
  const enter = Package.encode(4, Message.encode(7, 0, 1, enterCode, enterBody));
  const seenEnter = coderDecode(SPEC, enter);
  add({
    id: 'coder-decode-compressed-protobuf-request', kind: 'hybrid-coder', direction: 'client->server',
    description: `A request with route code ${enterCode} (hybrid-connector.entryHandler.enter in the sorted handler routes) and a protobuf body (client protos): the code is looked up in the dictionary, then the body decoded with the client protos.`,
    hex: hex(enter), serverSees: { id: seenEnter.id, route: seenEnter.route, compressRoute: seenEnter.compressRoute, body: seenEnter.body },
  });
  const junk = Package.encode(4, Message.encode(8, 0, 0, 'pushserver.pushHandler.pushByClientId', utf8('not json')));
  const seenJunk = coderDecode(SPEC, junk);
  add({
    id: 'coder-decode-invalid-json', kind: 'hybrid-coder', direction: 'client->server',
    description: 'A route without a client proto whose body is not JSON: pomelo silently took {} and still ran the handler. (Shaddock answers such a request with an error instead: docs/connectors.md.)',
    hex: hex(junk), serverSees: { id: seenJunk.id, route: seenJunk.route, body: seenJunk.body },
  });
  const options = { heartbeat: 3, useDict: true, useProtobuf: true };
  handshakeVector('hs-reply-with-dictionary-and-protos', 'The handshake reply for the spec protos and dictionary.json ["onMsg","onAdd","onKick"]: sys.protos carries the parsed protos (field → {option,type,tag}, with __messages and __tags) of server and client, and their version.',
    { connectorConfig: options }, handshakeReply(SPEC, options, BROWSER_HANDSHAKE));
}

// ---------------------------------------------------------------- socket.io (§11)
// pomelo 2.2.7 lib/connectors/sioconnector.js: a request is one string, 4 characters of
// big-endian id, 1 character of route length, the route, the JSON body. An answer is
// {id, body}, which the socket JSON-stringifies; a push is the string {"route","body"}.
// Each goes as the argument of a socket.io "message" event, framed here by the
// socket.io-parser and engine.io-parser that socket.io-client v2 speaks (EIO 3).
function sioDecode(str) {
  let id = 0;
  for (let i = 0; i < 4; i++) id = (id << 8) | (str.charCodeAt(i) & 0xff);
  const routeLength = str.charCodeAt(4) & 0xff;
  return { id, route: str.substr(5, routeLength), body: JSON.parse(str.substr(5 + routeLength)) };
}
const sioAnswer = (id, body) => JSON.stringify({ id, body });
const sioPush = (route, body) => JSON.stringify({ route, body });
function sioFrame(str) {
  let packetText;
  new sioParser.Encoder().encode({ type: sioParser.EVENT, data: ['message', str], nsp: '/' }, (encoded) => {
    packetText = encoded[0];
  });
  let frame;
  eioParser.encodePacket({ type: 'message', data: packetText }, true, false, (p) => {
    frame = p;
  });
  check(typeof frame === 'string', 'socket.io framing is synchronous text');
  return frame;
}
function sioVector(id, description, direction, messageString, extra = {}) {
  const frame = sioFrame(messageString);
  return add({ id, kind: 'sio', direction, description, messageString, wsTextFrame: frame, wsTextFrameHex: hex(utf8(frame)), ...extra });
}
{
  // What the seed's socket.io client (pomeloclient.js) builds.
  const clientString = (reqId, route, body) =>
    String.fromCharCode((reqId >> 24) & 255, (reqId >> 16) & 255, (reqId >> 8) & 255, reqId & 255, route.length & 255) + route + JSON.stringify(body);
  const enter = clientString(2, 'sio-connector.entryHandler.enter', { clientId: '00:11:22:33:44:55', role: 'client', apiKey: 'a1b2c3', timestamp: 1371398400000 });
  sioVector('sio-request-enter', 'An Android/socket.io client\'s request: 4 characters of big-endian id, 1 of route length, the route, the JSON body, all in one string (header characters 0..255). Clients add "timestamp".', 'client->server', enter, { serverSees: sioDecode(enter) });
  const id300 = clientString(300, 'sio-connector.entryHandler.enter', { msg: '你好' });
  sioVector('sio-request-id300-chinese', 'Id 300: header characters \\u0000\\u0000\\u0001\\u002c. Non-ASCII body text stays ordinary characters (UTF-8 inside the socket.io JSON on the wire).', 'client->server', id300, { serverSees: sioDecode(id300) });
  const notify = clientString(0, 'sio-connector.entryHandler.enter', { a: 1 });
  sioVector('sio-notify-id0', 'Id 0 is a notify: the server runs it and never answers.', 'client->server', notify, { serverSees: sioDecode(notify) });
  sioVector('sio-response', 'An answer: {id, body}, JSON-stringified, as the "message" event\'s string argument.', 'server->client', sioAnswer(2, { code: 200, msg: 'add ok' }));
  sioVector('sio-response-duplicate-login', 'The seed\'s sio enter answer when the clientId was already bound on this server.', 'server->client', sioAnswer(3, { code: 500, msg: 'duplicate log in', error: true }));
  sioVector('sio-push-onMsg', 'A push: the string {"route","body"}.', 'server->client', sioPush('onMsg', { msg: { title: '通知', msg: '你好' } }));
  sioVector('sio-kick', 'A kick: {"route":"onKick","reason":…} ("reason", not "body"), then the socket is disconnected (socket.io DISCONNECT "41").', 'server->client', JSON.stringify({ route: 'onKick', reason: 'kick' }));
  sioVector('sio-batch', 'With pomelo\'s "buffer" push scheduler only: several messages in one JSON array string.', 'server->client', `[${[sioAnswer(4, { code: 200 }), sioPush('onMsg', { msg: 'a' })].join(',')}]`);
  add({
    id: 'sio-engineio-open', kind: 'sio-note', direction: 'server->client',
    description: 'Observed on a live pomelo 2.2.7 server, not generated: the engine.io v3 open packet and socket.io connect on a WebSocket transport (/socket.io/?EIO=3&transport=websocket) with heartbeatInterval 25000 and heartbeatTimeout 60000 (ms) in connectorConfig. The sid is random. With pomelo\'s defaults (25 and 60) they are 25 and 60 milliseconds.',
    frames: ['0{"sid":"<random>","upgrades":[],"pingInterval":25000,"pingTimeout":60000}', '40'], ping: '2', pong: '3',
  });
}

// ---------------------------------------------------------------- output
const doc = {
  title: 'Pomelo client protocol test vectors',
  generator: 'scripts/make-pomelo-vectors.mjs',
  spec: 'docs/pomelo-protocol.md',
  versions,
  conventions: {
    hex: 'lowercase, no separators; "hex" is always the complete wire bytes of a Pomelo package (4-byte header + body) unless the vector kind says otherwise (messageHex = message layer only, protobufHex = body only, headerHex = first 4 bytes).',
    json: 'bodyJson / bodyUtf8 strings are the exact UTF-8 text on the wire (key order matters for byte equality).',
    direction: 'client->server or server->client as seen by the server implementer.',
  },
  protos: {
    serverProtosSource: SERVER_PROTOS_SRC,
    clientProtosSource: CLIENT_PROTOS_SRC,
    serverProtosParsed: SERVER_PROTOS,
    clientProtosParsed: CLIENT_PROTOS,
    version: PROTOS_VERSION,
    versionAlgorithm: 'base64(md5(JSON.stringify(clientProtosParsed) + JSON.stringify(serverProtosParsed)))',
  },
  demoApp: {
    description: 'The seed push app (pomelo-pushServer-Demo) as pomelo 2.2.7 sees it: the handler routes of all its server types, empty dictionary.json and protos.',
    dictionary: SEED.dictionary.dict,
    codeToRoute: SEED.dictionary.abbrs,
    dictVersion: SEED.dictionary.version,
    dictVersionAlgorithm: 'base64(md5(JSON.stringify(dictionary)))',
    protosVersion: SEED.protosVersion,
    specConfigDictionary: SPEC.dictionary.dict,
  },
  skipped: [],
  vectors,
};
const json = `${JSON.stringify(doc, null, 2)}\n`;
process.stdout.write = stdoutWrite;
if (process.argv.includes('--stdout')) {
  process.stdout.write(json);
} else {
  writeFileSync(OUT, json);
  console.error(`wrote ${vectors.length} vectors to ${OUT}`);
}
