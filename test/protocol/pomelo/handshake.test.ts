import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.js';
import { MAX_BODY, PackageType, decodeSinglePackage } from '../../../src/protocol/pomelo/package.js';
import { buildRouteDictionary, type RouteDictionary } from '../../../src/protocol/pomelo/dictionary.js';
import { parseProtos } from '../../../src/protocol/pomelo/protobuf.js';
import {
  encodeHandshakeFailure,
  encodeHandshakeReply,
  parseHandshakeRequest,
  protosVersion,
  shouldSendDictionary,
  shouldSendProtos,
  type HandshakeReplyOptions,
  type HandshakeRequest,
} from '../../../src/protocol/pomelo/handshake.js';
import {
  DEMO_HANDLER_ROUTES,
  SPEC_EXTRA_ROUTES,
  hex,
  loadVectors,
  vectorById,
  vectorsOf,
  type HandshakeVector,
} from '../vectors.js';

const LIMITS = { maxPackage: MAX_BODY };
const file = loadVectors();

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a throw');
}

const json = (s: string): Buffer => Buffer.from(s, 'utf8');

/** The reply our connector would build for a vector's server config and client handshake. */
function replyFor(v: HandshakeVector): Buffer {
  if (v.id === 'hs-reply-error-501') return encodeHandshakeFailure(501); // checkClient said no
  const cfg = v.input.connectorConfig ?? {};
  // The template vector was produced for a client holding the current versions.
  const client =
    v.input.clientHandshake ?? { sys: { dictVersion: file.demoApp.dictVersion, protoVersion: file.demoApp.protosVersion } };
  let request: HandshakeRequest;
  try {
    request = parseHandshakeRequest(json(JSON.stringify(client)));
  } catch (err) {
    assert.ok(err instanceof ProtocolError && err.code === 'PROTO_BAD_HANDSHAKE');
    return encodeHandshakeFailure(500);
  }
  const spec = v.id === 'hs-reply-with-dictionary-and-protos';
  const dictionary = cfg.useDict ? buildRouteDictionary(DEMO_HANDLER_ROUTES, spec ? SPEC_EXTRA_ROUTES : []) : undefined;
  let protos: HandshakeReplyOptions['protos'];
  if (cfg.useProtobuf) {
    const server = parseProtos(spec ? file.protos.serverProtosSource : {});
    const clientProtos = parseProtos(spec ? file.protos.clientProtosSource : {});
    protos = { server, client: clientProtos, version: protosVersion(clientProtos, server) };
  }
  const user = request.user as { name?: string } | undefined;
  return encodeHandshakeReply({
    ...(cfg.heartbeat !== undefined ? { heartbeatSeconds: cfg.heartbeat } : {}),
    ...(dictionary !== undefined ? { dictionary } : {}),
    sendDictionary: dictionary !== undefined && shouldSendDictionary(request, dictionary),
    ...(protos !== undefined ? { protos } : {}),
    sendProtos: protos !== undefined && shouldSendProtos(request, protos.version),
    ...(cfg.handshake !== undefined ? { user: { greeting: 'hi ' + String(user?.name) } } : {}),
  });
}

describe('handshake reply vectors', () => {
  const vs = vectorsOf('handshake');
  it('covers all eight', () => assert.equal(vs.length, 8));
  for (const v of vs) {
    it(v.id, () => {
      const out = replyFor(v);
      const pkg = decodeSinglePackage(out, LIMITS);
      assert.equal(pkg.type, PackageType.HANDSHAKE);
      assert.equal(pkg.body.toString('utf8'), v.bodyJson);
      assert.equal(out.toString('hex'), v.hex);
    });
  }

  it('the demo app protos version is that of two empty tables', () => {
    assert.equal(protosVersion(parseProtos({}), parseProtos({})), file.demoApp.protosVersion);
  });

  it('repeated replies reuse cached fragments and stay identical', () => {
    const v = vectorById('handshake', 'hs-reply-with-dictionary-and-protos');
    assert.equal(replyFor(v).toString('hex'), v.hex);
    assert.equal(replyFor(v).toString('hex'), v.hex);
  });

  it('a dictionary that is not frozen is never served stale', () => {
    const routeToCode: Record<string, number> = { 'a.b.c': 1 };
    const d: RouteDictionary = { routeToCode, codeToRoute: { '1': 'a.b.c' }, version: 'v1' };
    const first = encodeHandshakeReply({ dictionary: d, sendDictionary: true, sendProtos: false });
    routeToCode['x.y.z'] = 2;
    const second = encodeHandshakeReply({ dictionary: d, sendDictionary: true, sendProtos: false });
    assert.notEqual(first.toString(), second.toString());
  });

  it('a user that cannot be serialised is a ProtocolError; undefined is omitted', () => {
    assert.equal(codeOf(() => encodeHandshakeReply({ sendDictionary: false, sendProtos: false, user: 1n })), 'PROTO_BAD_HANDSHAKE');
    const out = encodeHandshakeReply({ sendDictionary: false, sendProtos: false, user: () => 1 });
    assert.equal(out.subarray(4).toString(), '{"code":200,"sys":{}}');
  });

  it('failure replies', () => {
    assert.equal(encodeHandshakeFailure(500).toString('hex'), vectorById('handshake', 'hs-reply-error-500').hex);
    assert.equal(encodeHandshakeFailure(501).toString('hex'), vectorById('handshake', 'hs-reply-error-501').hex);
  });
});

describe('parseHandshakeRequest', () => {
  it('the demo browser handshake', () => {
    const pkg = decodeSinglePackage(hex(vectorById('package', 'pkg-handshake-request-demo-browser').hex), LIMITS);
    assert.deepEqual(parseHandshakeRequest(pkg.body), { sys: { type: 'js-websocket', version: '0.0.1' } });
  });

  it('the newer JS client and the Unity client (docs/pomelo-protocol.md §4.2)', () => {
    assert.deepEqual(
      parseHandshakeRequest(json('{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0},"user":{"a":1}}')),
      { sys: { type: 'js-websocket', version: '0.0.1', rsa: {}, protoVersion: 0 }, user: { a: 1 } },
    );
    assert.deepEqual(parseHandshakeRequest(json('{"sys":{"version":"0.3.0","type":"unity-socket"},"user":{}}')), {
      sys: { type: 'unity-socket', version: '0.3.0' },
      user: {},
    });
  });

  it('protoVersion 0 (nothing cached) always gets the protos', () => {
    const req = parseHandshakeRequest(json('{"sys":{"protoVersion":0,"dictVersion":"x"}}'));
    assert.ok(shouldSendProtos(req, file.demoApp.protosVersion));
    assert.ok(shouldSendDictionary(req, buildRouteDictionary(DEMO_HANDLER_ROUTES)));
    const cached = parseHandshakeRequest(
      json(JSON.stringify({ sys: { protoVersion: file.demoApp.protosVersion, dictVersion: file.demoApp.dictVersion } })),
    );
    assert.ok(!shouldSendProtos(cached, file.demoApp.protosVersion));
    assert.ok(!shouldSendDictionary(cached, buildRouteDictionary(DEMO_HANDLER_ROUTES)));
  });

  it('drops sys fields of the wrong type', () => {
    assert.deepEqual(
      parseHandshakeRequest(json('{"sys":{"type":5,"version":null,"dictVersion":[],"protoVersion":true,"extra":1}}')),
      { sys: {} },
    );
  });

  const bad: readonly [string, Buffer][] = [
    ['empty', json('')],
    ['not JSON', json('hello')],
    ['truncated JSON', json('{"sys":{')],
    ['null', json('null')],
    ['an array', json('[{"sys":{}}]')],
    ['a string', json('"sys"')],
    ['no sys (vector hs-reply-error-500)', json('{"user":{}}')],
    ['sys null', json('{"sys":null}')],
    ['sys an array', json('{"sys":[]}')],
    ['sys a string', json('{"sys":"x"}')],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
  ];
  for (const [name, body] of bad) {
    it(`${name} => PROTO_BAD_HANDSHAKE`, () => assert.equal(codeOf(() => parseHandshakeRequest(body)), 'PROTO_BAD_HANDSHAKE'));
  }

  it('arbitrary bytes and JSON: only values or ProtocolError', () => {
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)),
      fc.jsonValue().map((j) => json(JSON.stringify(j) ?? '')),
      fc.record({ sys: fc.jsonValue(), user: fc.jsonValue() }).map((j) => json(JSON.stringify(j))),
    );
    fc.assert(
      fc.property(input, (body) => {
        try {
          const req = parseHandshakeRequest(body);
          assert.equal(typeof req.sys, 'object');
        } catch (err) {
          assert.ok(err instanceof ProtocolError && err.code === 'PROTO_BAD_HANDSHAKE', String(err));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
