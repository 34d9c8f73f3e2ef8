/**
 * The demo and hybrid-coder vectors: whole packages as pomelo 2.2.7's hybrid coder
 * produces and reads them, reproduced by composing our codecs the way a connector does.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_BODY, PackageType, decodeSinglePackage } from '../../../src/protocol/pomelo/package.js';
import {
  MessageType,
  decodeMessage,
  encodePushPackage,
  encodeResponsePackage,
  type Message,
} from '../../../src/protocol/pomelo/message.js';
import { decodeProtobuf, encodeProtobuf, hasProto, parseProtos, type ParsedProtos } from '../../../src/protocol/pomelo/protobuf.js';
import { buildRouteDictionary, type RouteDictionary } from '../../../src/protocol/pomelo/dictionary.js';
import {
  DEMO_HANDLER_ROUTES,
  SPEC_EXTRA_ROUTES,
  hex,
  loadVectors,
  vectorsOf,
  type DecodedMessageView,
  type ServerSees,
} from '../vectors.js';

const LIMITS = { maxPackage: MAX_BODY };
const file = loadVectors();

interface App {
  readonly dictionary: RouteDictionary;
  readonly server: ParsedProtos;
  readonly client: ParsedProtos;
}

const DEMO: App = {
  dictionary: buildRouteDictionary(DEMO_HANDLER_ROUTES),
  server: parseProtos({}),
  client: parseProtos({}),
};
const SPEC: App = {
  dictionary: buildRouteDictionary(DEMO_HANDLER_ROUTES, SPEC_EXTRA_ROUTES),
  server: parseProtos(file.protos.serverProtosSource),
  client: parseProtos(file.protos.clientProtosSource),
};

/** Server side of pomelo's coder.encode: protobuf when a server proto exists, else JSON. */
function body(app: App, route: string, msg: unknown): Buffer {
  if (hasProto(app.server, route)) return encodeProtobuf(app.server, route, msg) ?? Buffer.alloc(0);
  return Buffer.from(JSON.stringify(msg), 'utf8');
}

function push(app: App, route: string, msg: unknown): Buffer {
  return encodePushPackage(app.dictionary.routeToCode[route] ?? route, body(app, route, msg));
}

function respond(app: App, id: number, requestRoute: string, msg: unknown): Buffer {
  return encodeResponsePackage(id, body(app, requestRoute, msg));
}

/** Server side of coder.decode: expand the route code, then protobuf or JSON ({} when invalid). */
function serverSees(app: App, pkgHex: string): ServerSees & { readonly message: Message } {
  const pkg = decodeSinglePackage(hex(pkgHex), LIMITS);
  assert.equal(pkg.type, PackageType.DATA);
  const message = decodeMessage(pkg.body);
  const route = typeof message.route === 'number' ? app.dictionary.codeToRoute[String(message.route)] : message.route;
  assert.equal(typeof route, 'string');
  let decoded: unknown;
  if (hasProto(app.client, route!)) {
    decoded = decodeProtobuf(app.client, route!, message.body);
  } else {
    try {
      decoded = JSON.parse(message.body.toString('utf8'));
    } catch {
      decoded = {}; // docs/pomelo-protocol.md §9.1: invalid JSON becomes {}
    }
  }
  return { id: message.id, route: route!, compressRoute: message.compressRoute ? 1 : 0, body: decoded, message };
}

function assertDecoded(pkgHex: string, d: DecodedMessageView): void {
  const m = decodeMessage(decodeSinglePackage(hex(pkgHex), LIMITS).body);
  assert.equal(m.type, d.type);
  assert.equal(m.id, d.id);
  assert.equal(m.route, d.route);
  assert.equal(m.compressRoute, d.compressRoute === 1);
  assert.equal(m.body.toString('hex'), d.bodyHex);
  if (d.bodyUtf8 !== undefined) assert.equal(m.body.toString('utf8'), d.bodyUtf8);
}

describe('demo vectors (pomelo-pushServer-Demo traffic)', () => {
  for (const v of vectorsOf('demo')) {
    it(v.id, () => {
      assertDecoded(v.hex, v.decoded);
      if (v.serverSees !== undefined) {
        const seen = serverSees(DEMO, v.hex);
        assert.deepEqual({ id: seen.id, route: seen.route, body: seen.body }, v.serverSees);
      } else {
        // Server -> client: re-encode from the decoded JSON, as the server would send it.
        const msg: unknown = JSON.parse(v.decoded.bodyUtf8!);
        const out =
          v.decoded.type === MessageType.RESPONSE
            ? respond(DEMO, v.decoded.id, 'any.route.here', msg)
            : push(DEMO, v.decoded.route as string, msg);
        assert.equal(out.toString('hex'), v.hex);
      }
    });
  }
});

describe('hybrid-coder vectors (spec config: dictionary.json + protos)', () => {
  const PUSH_ONMSG = { msg: { title: '通知', msg: '你好' } };
  const encoders: Record<string, () => Buffer> = {
    'coder-push-compressed-by-dictionary': () => push(SPEC, 'onMsg', PUSH_ONMSG),
    'coder-push-not-in-dictionary': () => push(SPEC, 'onChat', { from: 'a', text: 'b' }),
    'coder-response-protobuf': () =>
      respond(SPEC, 5, 'hybrid-connector.entryHandler.enter', { code: 200, msg: 'add ok', users: ['u1'] }),
    'coder-response-json': () => respond(SPEC, 6, 'pushserver.pushHandler.pushAll', { code: 200, msg: 'push is ok.' }),
  };
  const vs = vectorsOf('hybrid-coder');
  it('covers all six', () => assert.equal(vs.length, 6));
  for (const v of vs) {
    it(v.id, () => {
      if (v.dictionary !== undefined) {
        for (const [route, code] of Object.entries(v.dictionary)) assert.equal(SPEC.dictionary.routeToCode[route], code);
      }
      if (v.decoded !== undefined) assertDecoded(v.hex, v.decoded);
      const encode = encoders[v.id];
      if (encode !== undefined) assert.equal(encode().toString('hex'), v.hex);
      if (v.serverSees !== undefined) {
        const seen = serverSees(SPEC, v.hex);
        assert.equal(seen.id, v.serverSees.id);
        assert.equal(seen.route, v.serverSees.route);
        if (v.serverSees.compressRoute !== undefined) assert.equal(seen.compressRoute, v.serverSees.compressRoute);
        assert.deepEqual(seen.body, v.serverSees.body);
      }
    });
  }
});
