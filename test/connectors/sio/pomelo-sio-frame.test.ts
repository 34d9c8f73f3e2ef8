import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.js';
import {
  decodePomeloSioRequest,
  encodePomeloSioKick,
  encodePomeloSioPush,
  encodePomeloSioResponse,
  readRequestId,
} from '../../../src/connectors/sio/pomelo-sio-frame.js';
import { vectorById } from '../../protocol/vectors.js';

/** The fields of the `sio` vectors (docs/pomelo-protocol.md §17); test/protocol/vectors.ts leaves them untyped. */
interface SioVector {
  readonly messageString: string;
  readonly wsTextFrame: string;
  readonly serverSees?: { readonly id: number; readonly route: string; readonly body: unknown };
}

function sioVector(id: string): SioVector {
  return vectorById('sio', id) as unknown as SioVector;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a throw');
}

/** The client side of the framing (docs/pomelo-protocol.md §11.3), as the seed's Android and JS clients build it. */
function frame(id: number, route: string, bodyJson: string): string {
  const header = String.fromCharCode((id >>> 24) & 0xff, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff, route.length);
  return header + route + bodyJson;
}

describe('Pomelo sioconnector framing', () => {
  for (const id of ['sio-request-enter', 'sio-request-id300-chinese', 'sio-notify-id0']) {
    it(`decodes vector ${id} as the reference server saw it`, () => {
      const v = sioVector(id);
      assert.ok(v.serverSees);
      assert.deepEqual(decodePomeloSioRequest(v.messageString), v.serverSees);
    });
  }

  it('encodes responses, pushes and kicks as the reference strings', () => {
    assert.equal(encodePomeloSioResponse(2, { code: 200, msg: 'add ok' }), sioVector('sio-response').messageString);
    assert.equal(encodePomeloSioPush('onMsg', { msg: { title: '通知', msg: '你好' } }), sioVector('sio-push-onMsg').messageString);
    assert.equal(encodePomeloSioKick('kick'), sioVector('sio-kick').messageString);
  });

  it('reads ids as signed 32-bit big-endian, like the reference', () => {
    assert.equal(readRequestId('\u0000\u0000\u0001\u002c'), 300);
    assert.equal(readRequestId('\u0080\u0000\u0000\u0001'), -2147483647);
    assert.equal(readRequestId('\u00ff\u00ff\u00ff\u00ff'), -1);
    assert.equal(readRequestId('abc'), undefined, 'too short');
    assert.equal(readRequestId('\u0000\u0100\u0000\u0001'), undefined, 'a header char above 255');
  });

  it('refuses malformed strings with exact codes', () => {
    assert.equal(codeOf(() => decodePomeloSioRequest('')), 'PROTO_TRUNCATED');
    assert.equal(codeOf(() => decodePomeloSioRequest('\u0000\u0000\u0000')), 'PROTO_TRUNCATED');
    assert.equal(codeOf(() => decodePomeloSioRequest('\u0000\u0000\u0000\u0001')), 'PROTO_TRUNCATED');
    assert.equal(codeOf(() => decodePomeloSioRequest('\u4e2d\u0000\u0000\u0001\u0001a{}')), 'PROTO_BAD_MESSAGE');
    assert.equal(codeOf(() => decodePomeloSioRequest('\u0000\u0000\u0000\u0001\u0100a{}')), 'PROTO_BAD_ROUTE');
    assert.equal(codeOf(() => decodePomeloSioRequest('\u0000\u0000\u0000\u0001\u0032abc')), 'PROTO_TRUNCATED');
    assert.equal(codeOf(() => decodePomeloSioRequest(frame(5, 'a.b.c', '{nope'))), 'PROTO_BAD_JSON');
    assert.equal(codeOf(() => decodePomeloSioRequest(frame(5, 'a.b.c', ''))), 'PROTO_BAD_JSON');
  });

  it('round-trips any id, route and JSON body (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.string({ maxLength: 255 }), fc.jsonValue(), (id, route, body) => {
        const decoded = decodePomeloSioRequest(frame(id, route, JSON.stringify(body)));
        assert.equal(decoded.id, id);
        assert.equal(decoded.route, route);
        assert.deepEqual(decoded.body, JSON.parse(JSON.stringify(body)));
      }),
    );
  });

  it('arbitrary strings give a request or a ProtocolError, nothing else (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme-ascii' })), (s) => {
        try {
          decodePomeloSioRequest(s);
        } catch (err) {
          assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${String(err)}`);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
