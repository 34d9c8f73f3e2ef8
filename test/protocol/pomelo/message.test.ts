import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.js';
import { MAX_BODY, PackageType, decodeSinglePackage, encodePackage } from '../../../src/protocol/pomelo/package.js';
import {
  MessageType,
  decodeMessage,
  decodeVarint,
  encodeNotify,
  encodePush,
  encodePushPackage,
  encodeRequest,
  encodeResponse,
  encodeResponsePackage,
  encodeVarint,
  type Message,
} from '../../../src/protocol/pomelo/message.js';
import { hex, vectorById, vectorsOf, type DecodedMessageView } from '../vectors.js';

const LIMITS = { maxPackage: MAX_BODY };

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a throw');
}

function assertMessage(m: Message, d: DecodedMessageView): void {
  assert.equal(m.type, d.type);
  assert.equal(m.id, d.id);
  assert.equal(m.compressRoute, d.compressRoute === 1);
  assert.equal(m.route, d.route);
  assert.equal(m.body.toString('hex'), d.bodyHex);
  if (d.type === MessageType.REQUEST || d.type === MessageType.RESPONSE) {
    assert.deepEqual(decodeVarint(m.idBytes, 0), { value: d.id, used: m.idBytes.length });
  } else {
    assert.equal(m.idBytes.length, 0);
  }
}

/** Our encoder for a vector's input (types 0..3). */
function encodeFor(type: number, id: number, route: string | number | null, body: Buffer): Buffer {
  switch (type) {
    case MessageType.REQUEST:
      return encodeRequest(id, route!, body);
    case MessageType.NOTIFY:
      return encodeNotify(route!, body);
    case MessageType.RESPONSE:
      return encodeResponse(id, body);
    case MessageType.PUSH:
      return encodePush(route!, body);
    default:
      throw new Error(`no encoder for type ${type}`);
  }
}

describe('message vectors', () => {
  for (const v of vectorsOf('message')) {
    it(`${v.id}: decode`, () => {
      assertMessage(decodeMessage(hex(v.messageHex)), v.decoded);
      const pkg = decodeSinglePackage(hex(v.hex), LIMITS);
      assert.equal(pkg.type, PackageType.DATA);
      assertMessage(decodeMessage(pkg.body), v.decoded);
    });

    // Our encoders never set the gzip bit (pomelo 2.2.7 never does either).
    if (v.input.compressGzip === 1) continue;
    it(`${v.id}: encode`, () => {
      const body = Buffer.from(v.input.bodyJson ?? '', 'utf8');
      const msg = encodeFor(v.input.type, v.input.id, v.input.route, body);
      assert.equal(msg.toString('hex'), v.messageHex);
      assert.equal(encodePackage(PackageType.DATA, msg).toString('hex'), v.hex);
      if (v.input.type === MessageType.PUSH) {
        assert.equal(encodePushPackage(v.input.route!, body).toString('hex'), v.hex);
      }
      if (v.input.type === MessageType.RESPONSE) {
        assert.equal(encodeResponsePackage(v.input.id, body).toString('hex'), v.hex);
        // Echoing the received id bytes gives the same message.
        const idBytes = decodeMessage(hex(v.messageHex)).idBytes;
        assert.equal(encodeResponse(idBytes, body).toString('hex'), v.messageHex);
      }
    });
  }

  it('msg-request-route-256-rejected: a 256-byte route is refused', () => {
    vectorById('message-error', 'msg-request-route-256-rejected');
    const route = 'a.b.' + 'c'.repeat(252);
    assert.equal(Buffer.byteLength(route), 256);
    assert.equal(codeOf(() => encodeRequest(1, route, Buffer.from('{}'))), 'PROTO_BAD_ROUTE');
    assert.equal(codeOf(() => encodePush(route, Buffer.alloc(0))), 'PROTO_BAD_ROUTE');
    assert.equal(codeOf(() => encodeNotify(route, Buffer.alloc(0))), 'PROTO_BAD_ROUTE');
    // 255 bytes of multi-byte characters are fine, 256 are not.
    assert.equal(encodePush('好'.repeat(85), Buffer.alloc(0)).length, 2 + 255);
    assert.equal(codeOf(() => encodePush('好'.repeat(85) + 'x', Buffer.alloc(0))), 'PROTO_BAD_ROUTE');
  });

  it('message-decode vectors', () => {
    const vs = vectorsOf('message-decode');
    assert.ok(vs.length > 0);
    for (const v of vs) assertMessage(decodeMessage(hex(v.hex)), v.decoded);
  });
});

describe('legacy big-endian ids (docs/pomelo-protocol.md §3.2, §16.2)', () => {
  for (const v of vectorsOf('legacy-id')) {
    it(v.id, () => {
      const m = decodeMessage(hex(v.requestMessageHex));
      assert.equal(m.type, MessageType.REQUEST);
      assert.equal(m.id, v.serverDecodedId);
      assert.equal(m.idBytes.toString('hex'), v.legacyIdHex);
      // Re-encoding the decoded number reproduces the reference (and its bug).
      assert.equal(encodeResponse(m.id, Buffer.from('{}')).toString('hex'), v.serverResponseMessageHex);
      // Echoing the raw bytes gives the legacy client its own id back, always.
      const echoed = encodeResponse(m.idBytes, Buffer.from('{}'));
      const back = echoed.subarray(1, 1 + m.idBytes.length);
      let legacyRead = 0;
      for (const b of back) legacyRead = legacyRead * 128 + (b & 0x7f);
      assert.equal(legacyRead, v.input.legacyRequestId);
      if (v.roundTrips) assert.equal(legacyRead, v.legacyClientReadsId);
    });
  }
});

describe('varints', () => {
  const table: readonly [number, string][] = [
    [0, '00'],
    [1, '01'],
    [127, '7f'],
    [128, '8001'],
    [300, 'ac02'],
    [16384, '808001'],
    [2147483647, 'ffffffff07'],
    [2147483648, '8080808008'],
    [4294967295, 'ffffffff0f'],
  ];
  for (const [n, h] of table) {
    it(`${n} <=> ${h}`, () => {
      assert.equal(encodeVarint(n).toString('hex'), h);
      assert.deepEqual(decodeVarint(hex('aa' + h + 'bb'), 1), { value: n, used: h.length / 2 });
    });
  }

  it('rejects bad ids and bad bytes', () => {
    for (const n of [-1, 1.5, 2 ** 32, NaN, Infinity]) assert.equal(codeOf(() => encodeVarint(n)), 'PROTO_BAD_VARINT');
    assert.equal(codeOf(() => decodeVarint(hex('80'), 0)), 'PROTO_TRUNCATED');
    assert.equal(codeOf(() => decodeVarint(hex(''), 0)), 'PROTO_TRUNCATED');
    assert.equal(codeOf(() => decodeVarint(hex('8080808080'), 0)), 'PROTO_BAD_VARINT');
    assert.equal(codeOf(() => decodeVarint(hex('ffffffff10'), 0)), 'PROTO_BAD_VARINT');
  });
});

describe('message error fixtures', () => {
  const cases: readonly [string, string, string][] = [
    // [description, message hex, code]
    ['empty', '', 'PROTO_TRUNCATED'],
    ['request without id', '00', 'PROTO_TRUNCATED'],
    ['response without id', '04', 'PROTO_TRUNCATED'],
    ['id runs past the end', '0080', 'PROTO_TRUNCATED'],
    ['6-byte id varint', '00' + '808080808001' + '00', 'PROTO_BAD_VARINT'],
    ['id above 2^32-1', '04' + 'ffffffff1f', 'PROTO_BAD_VARINT'],
    ['request without route length', '0001', 'PROTO_TRUNCATED'],
    ['route past the end', '00010561', 'PROTO_TRUNCATED'],
    ['notify route past the end', '02ff', 'PROTO_TRUNCATED'],
    ['compressed route with one byte', '010100', 'PROTO_TRUNCATED'],
    ['push compressed route missing', '07', 'PROTO_TRUNCATED'],
    ['route not UTF-8 (lone continuation byte)', '00010280617b7d', 'PROTO_BAD_ROUTE'],
    ['route not UTF-8 (overlong)', '000102c0af', 'PROTO_BAD_ROUTE'],
    ['route not UTF-8 (surrogate)', '000103eda080', 'PROTO_BAD_ROUTE'],
  ];
  for (const [name, h, code] of cases) {
    it(`${name} => ${code}`, () => assert.equal(codeOf(() => decodeMessage(hex(h))), code));
  }

  it('flag bits above the gzip bit are ignored, as the reference does', () => {
    const m = decodeMessage(hex('e6056f6e4d73677b7d'));
    assert.equal(m.type, MessageType.PUSH);
    assert.equal(m.route, 'onMsg');
  });

  it('encoders validate ids, raw id bytes and route codes', () => {
    const body = Buffer.alloc(0);
    assert.equal(codeOf(() => encodeResponse(-1, body)), 'PROTO_BAD_VARINT');
    assert.equal(codeOf(() => encodeResponse(Buffer.alloc(0), body)), 'PROTO_BAD_VARINT');
    assert.equal(codeOf(() => encodeResponse(hex('80'), body)), 'PROTO_BAD_VARINT');
    assert.equal(codeOf(() => encodeResponse(hex('0101'), body)), 'PROTO_BAD_VARINT');
    assert.equal(codeOf(() => encodeResponse(hex('808080808001'), body)), 'PROTO_BAD_VARINT');
    assert.equal(codeOf(() => encodePush(65536, body)), 'PROTO_BAD_ROUTE');
    assert.equal(codeOf(() => encodePush(-1, body)), 'PROTO_BAD_ROUTE');
    assert.equal(codeOf(() => encodePush(1.5, body)), 'PROTO_BAD_ROUTE');
    assert.equal(codeOf(() => encodePushPackage('r', Buffer.alloc(MAX_BODY))), 'LIMIT_PAYLOAD');
  });
});

// ---------------------------------------------------------------- properties

const routeString = fc
  .string({ unit: 'binary', maxLength: 120 })
  .filter((s) => Buffer.byteLength(s) <= 255);
const route = fc.oneof(routeString, fc.integer({ min: 0, max: 0xffff }));
const body = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b));
const id = fc.integer({ min: 1, max: 2 ** 31 - 1 });

describe('message properties', () => {
  it('decode(encode(x)) = x for every message type', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), route, body, (type, n, r, b) => {
        const m = decodeMessage(encodeFor(type, n, r, b));
        assert.equal(m.type, type);
        assert.equal(m.id, type === MessageType.REQUEST || type === MessageType.RESPONSE ? n : 0);
        assert.equal(m.route, type === MessageType.RESPONSE ? null : r);
        assert.equal(m.compressRoute, type !== MessageType.RESPONSE && typeof r === 'number');
        assert.deepEqual(m.body, b);
      }),
      { numRuns: 500 },
    );
  });

  it('ids 1..2^31-1 encode canonically and echo byte for byte', () => {
    fc.assert(
      fc.property(id, body, (n, b) => {
        const m = decodeMessage(encodeRequest(n, 'a.b.c', b));
        assert.deepEqual(m.idBytes, encodeVarint(n));
        assert.deepEqual(encodeResponse(m.idBytes, b), encodeResponse(n, b));
      }),
      { numRuns: 300 },
    );
  });

  it('one-allocation package encoders equal encodePackage(encode...)', () => {
    fc.assert(
      fc.property(route, fc.oneof(id, fc.uint8Array({ minLength: 1, maxLength: 1 }).map((x) => Buffer.from([x[0]! & 0x7f]))), body, (r, n, b) => {
        assert.deepEqual(encodePushPackage(r, b), encodePackage(PackageType.DATA, encodePush(r, b)));
        assert.deepEqual(encodeResponsePackage(n, b), encodePackage(PackageType.DATA, encodeResponse(n, b)));
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes: only values or ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          const m = decodeMessage(Buffer.from(bytes));
          assert.ok(m.id >= 0 && m.id <= 2 ** 32 - 1);
        } catch (err) {
          assert.ok(err instanceof ProtocolError, String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
