import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../../../src/protocol/errors.js';
import { encodePush, encodeResponse } from '../../../src/protocol/pomelo/message.js';
import { encodePackage, PackageType } from '../../../src/protocol/pomelo/package.js';
import {
  MAX_PROTOBUF_DEPTH,
  decodeProtobuf,
  encodeProtobuf,
  hasProto,
  parseProtos,
  type ParsedProtos,
} from '../../../src/protocol/pomelo/protobuf.js';
import { protosVersion } from '../../../src/protocol/pomelo/handshake.js';
import { expectedDecode, hex, loadVectors, protoMessageArbitrary, vectorById, vectorsOf } from '../vectors.js';

const P = loadVectors().protos;
const SERVER = parseProtos(P.serverProtosSource);
const CLIENT = parseProtos(P.clientProtosSource);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a throw');
}

const hexOf = (b: Buffer | null): string | null => (b === null ? null : b.toString('hex'));

describe('parseProtos', () => {
  it('gives the reference parse, byte for byte as JSON', () => {
    assert.equal(JSON.stringify(SERVER), JSON.stringify(P.serverProtosParsed));
    assert.equal(JSON.stringify(CLIENT), JSON.stringify(P.clientProtosParsed));
    assert.equal(protosVersion(CLIENT, SERVER), P.version);
  });

  it('ignores keys with the wrong word count and duplicate tags, like the reference', () => {
    const parsed = parseProtos({
      r: {
        'required string a': 1,
        'optional string b': 1, // duplicate tag
        'required string': 2, // two words
        'message M N': { 'required string x': 1 }, // three words
        'message M': { 'optional uInt32 y': 3 },
        'other uInt32 z': 4,
        'repeated M ms': 5,
      },
    });
    assert.equal(
      JSON.stringify(parsed),
      '{"r":{"a":{"option":"required","type":"string","tag":1},"ms":{"option":"repeated","type":"M","tag":5},' +
        '"__messages":{"M":{"y":{"option":"optional","type":"uInt32","tag":3},"__messages":{},"__tags":{"3":"y"}}},' +
        '"__tags":{"1":"a","5":"ms"}}}',
    );
  });

  it('rejects a source that is not an object', () => {
    for (const bad of [null, 1, 'x', [], undefined, true]) assert.equal(codeOf(() => parseProtos(bad)), 'PROTO_BAD_PROTOBUF');
  });

  it('results are frozen with null prototypes', () => {
    assert.ok(Object.isFrozen(SERVER));
    assert.equal(Object.getPrototypeOf(SERVER), null);
    assert.equal((SERVER as Record<string, unknown>)['constructor'], undefined);
    assert.ok(hasProto(SERVER, 'onMsg'));
    assert.ok(!hasProto(SERVER, 'constructor'));
    assert.ok(!hasProto(SERVER, '__proto__'));
  });
});

describe('protobuf vectors', () => {
  for (const v of vectorsOf('protobuf-push')) {
    it(`${v.id}`, () => {
      const body = encodeProtobuf(SERVER, v.input.route, v.input.message);
      assert.equal(hexOf(body), v.protobufHex);
      assert.deepEqual(decodeProtobuf(SERVER, v.input.route, hex(v.protobufHex)), v.decodedByBrowserCodec ?? v.input.message);
      if (v.messageHex !== undefined) {
        const msg = encodePush(v.input.routeCode ?? v.input.route, body!);
        assert.equal(msg.toString('hex'), v.messageHex);
        assert.equal(encodePackage(PackageType.DATA, msg).toString('hex'), v.hex);
      }
    });
  }

  it('pb-field-order-follows-object-keys', () => {
    const v = vectorById('protobuf-note', 'pb-field-order-follows-object-keys');
    assert.equal(hexOf(encodeProtobuf(SERVER, v.input.route, v.input.first)), v.firstHex);
    assert.equal(hexOf(encodeProtobuf(SERVER, v.input.route, v.input.second)), v.secondHex);
    assert.deepEqual(decodeProtobuf(SERVER, v.input.route, hex(v.secondHex!)), v.input.first);
  });

  it('pb-missing-required: null, then an empty body', () => {
    const v = vectorById('protobuf-note', 'pb-missing-required');
    const body = encodeProtobuf(SERVER, v.input.route, v.input.message);
    assert.equal(body, null);
    const msg = encodeResponse(9, body ?? Buffer.alloc(0));
    assert.equal(msg.toString('hex'), v.messageHex);
    assert.equal(encodePackage(PackageType.DATA, msg).toString('hex'), v.hex);
  });

  it('pb-empty-repeated-and-unknown-key', () => {
    const v = vectorById('protobuf-note', 'pb-empty-repeated-and-unknown-key');
    assert.equal(hexOf(encodeProtobuf(SERVER, v.input.route, v.input.message)), v.protobufHex);
  });

  it('pb-scratch-buffer-overflow: we size exactly, so float-heavy messages encode', () => {
    const v = vectorById('protobuf-note', 'pb-scratch-buffer-overflow');
    const body = encodeProtobuf(SERVER, v.input.route, v.input.message);
    assert.ok(body !== null);
    assert.equal(body.length, 2 + 1 + 1 + 20 * 8);
    assert.deepEqual(decodeProtobuf(SERVER, v.input.route, body), v.input.message);
  });

  for (const v of vectorsOf('protobuf-request')) {
    it(`${v.id}`, () => {
      // Both codecs' bytes decode to what pomelo sees, whatever the key wire types.
      assert.deepEqual(decodeProtobuf(CLIENT, v.input.route, hex(v.browserCodecHex)), v.decodedByServer);
      assert.deepEqual(decodeProtobuf(CLIENT, v.input.route, hex(v.nodeCodecHex)), v.decodedByServer);
      assert.equal(hexOf(encodeProtobuf(CLIENT, v.input.route, v.input.message)), v.nodeCodecHex);
    });
  }
});

// ---------------------------------------------------------------- dialect details

const DIALECT = parseProtos({
  'message Node': { 'optional uInt32 v': 1, 'optional Node next': 2 },
  list: { 'required Node head': 1 },
  scoped: {
    'message A': { 'optional B b': 1, 'optional uInt32 n': 2 },
    'message B': { 'optional uInt32 m': 1 },
    'optional A a': 1,
    'optional B b': 2,
  },
  odd: { 'optional bool flag': 1, 'optional uInt64 big': 2, 'optional Missing gone': 3, 'optional string s': 4 },
  ints: { 'optional int32 i': 1, 'optional sInt32 s': 2, 'optional uInt32 u': 3, 'repeated float f': 4, 'repeated int32 is': 5 },
});

function chain(depth: number): Record<string, unknown> {
  let node: Record<string, unknown> = { v: depth };
  for (let i = depth - 1; i >= 0; i--) node = { v: i, next: node };
  return node;
}

describe('protobuf dialect', () => {
  it('int32 is zig-zag like sInt32 (docs/pomelo-protocol.md §9.3)', () => {
    assert.equal(hexOf(encodeProtobuf(DIALECT, 'ints', { i: -1, s: -1, u: 1 })), '080110011801');
    assert.equal(hexOf(encodeProtobuf(DIALECT, 'ints', { i: 1 })), '0802');
    assert.deepEqual(decodeProtobuf(DIALECT, 'ints', hex('0801100218ac02')), { i: -1, s: 1, u: 300 });
  });

  it('repeated simple types are count-prefixed with the element wire type', () => {
    assert.equal(hexOf(encodeProtobuf(DIALECT, 'ints', { f: [0.5, -2] })), '2502' + '0000003f' + '000000c0');
    assert.equal(hexOf(encodeProtobuf(DIALECT, 'ints', { is: [-1, 1] })), '28020102');
    // Two runs of the same repeated field append.
    assert.deepEqual(decodeProtobuf(DIALECT, 'ints', hex('2801012801' + '02')), { is: [-1, 1] });
  });

  it('global messages are visible everywhere, nested ones only in their parent', () => {
    assert.deepEqual(decodeProtobuf(DIALECT, 'list', encodeProtobuf(DIALECT, 'list', { head: chain(3) })!), { head: chain(3) });
    // Inside A, B is neither nested in A nor global: the reference cannot encode it.
    assert.equal(encodeProtobuf(DIALECT, 'scoped', { a: { b: { m: 1 } } }), null);
    assert.equal(hexOf(encodeProtobuf(DIALECT, 'scoped', { a: { n: 1 }, b: { m: 2 } })), '0a021001' + '12020802');
    assert.equal(codeOf(() => decodeProtobuf(DIALECT, 'scoped', hex('0a020a00'))), 'PROTO_BAD_PROTOBUF');
  });

  it('depth is bounded at 32 both ways', () => {
    const ok = encodeProtobuf(DIALECT, 'list', { head: chain(MAX_PROTOBUF_DEPTH - 1) });
    assert.ok(ok !== null);
    assert.deepEqual(decodeProtobuf(DIALECT, 'list', ok), { head: chain(MAX_PROTOBUF_DEPTH - 1) });
    assert.equal(encodeProtobuf(DIALECT, 'list', { head: chain(MAX_PROTOBUF_DEPTH) }), null);
    // Hand-built bytes 40 levels deep.
    let inner = Buffer.from('0801', 'hex');
    for (let i = 0; i < 40; i++) inner = Buffer.concat([Buffer.from([0x12, inner.length]), inner]);
    const deep = Buffer.concat([Buffer.from([0x0a, inner.length]), inner]);
    assert.equal(codeOf(() => decodeProtobuf(DIALECT, 'list', deep)), 'PROTO_BAD_PROTOBUF');
    // A cyclic object does not recurse forever.
    const cyc: Record<string, unknown> = { v: 1 };
    cyc['next'] = cyc;
    assert.equal(encodeProtobuf(DIALECT, 'list', { head: cyc }), null);
  });

  it('encode returns null for values the proto cannot carry', () => {
    const nulls: readonly [string, unknown][] = [
      ['odd', { flag: true }],
      ['odd', { big: 1 }],
      ['odd', { gone: {} }],
      ['odd', { s: 1 }],
      ['ints', { u: -1 }],
      ['ints', { u: 'abc' }],
      ['ints', { u: 2 ** 53 }],
      ['ints', { u: {} }],
      ['ints', { f: 'x' }],
      ['ints', { f: [{}] }],
      ['list', { head: 'x' }],
      ['list', { head: [] }],
      ['list', {}],
      ['list', null],
      ['list', 'str'],
      ['list', [1]],
      ['nope', {}],
      ['constructor', {}],
    ];
    for (const [route, msg] of nulls) assert.equal(encodeProtobuf(DIALECT, route, msg), null, JSON.stringify([route, msg]));
  });

  it('encode coerces like the reference where the reference works', () => {
    // parseInt for integers, unary plus for floats.
    assert.equal(hexOf(encodeProtobuf(DIALECT, 'ints', { u: '300', s: -1.7 })), '18ac021001');
    assert.equal(hexOf(encodeProtobuf(DIALECT, 'ints', { f: ['0.5'] })), '25010000003f');
    // undefined is absent; null/empty repeated write nothing; unknown keys are dropped.
    assert.equal(hexOf(encodeProtobuf(DIALECT, 'ints', { u: undefined, f: null, is: [], zz: 1 })), '');
  });

  it('decode skips unknown tags by wire type and rejects malformed input', () => {
    assert.deepEqual(decodeProtobuf(DIALECT, 'ints', hex('4896011801')), { u: 1 }); // tag 9 varint
    assert.deepEqual(decodeProtobuf(DIALECT, 'ints', hex('4a02abcd1801')), { u: 1 }); // tag 9 length-delimited
    assert.deepEqual(decodeProtobuf(DIALECT, 'ints', hex('4d000000001801')), { u: 1 }); // tag 9 fixed32
    assert.deepEqual(decodeProtobuf(DIALECT, 'ints', hex('4900000000000000001801')), { u: 1 }); // tag 9 fixed64
    const bad: readonly [string, string][] = [
      ['ints', '4b'], // unknown tag, wire type 3
      ['ints', '4e'], // unknown tag, wire type 6
      ['ints', '18'], // value missing
      ['ints', '1880'], // varint runs off
      ['ints', '18' + 'ff'.repeat(10) + '01'], // varint too long
      ['ints', '18ffffffffffffffff7f'], // above 2^53
      ['ints', '2502000000'], // float cut short
      ['ints', '25ffffffff0f'], // count cannot fit
      ['odd', '2205ab'], // string longer than the rest
      ['odd', '0801'], // bool is not supported
      ['odd', '1a00'], // unresolved message type
      ['list', '0a05'], // nested length past the end
      ['list', '0a0208'], // nested field cut short inside its length
      ['nope', ''], // no proto
    ];
    for (const [route, h] of bad) assert.equal(codeOf(() => decodeProtobuf(DIALECT, route, hex(h))), 'PROTO_BAD_PROTOBUF', h);
  });

  it('field names that are Object.prototype members or __proto__ are plain data', () => {
    const t = parseProtos({ r: { 'optional string __proto__': 1, 'optional uInt32 constructor': 2 } });
    const d = decodeProtobuf(t, 'r', hex('0a01781002'));
    assert.equal(Object.getPrototypeOf(d), Object.prototype);
    assert.deepEqual(Object.keys(d), ['__proto__', 'constructor']);
    assert.equal(Object.getOwnPropertyDescriptor(d, '__proto__')?.value, 'x');
    assert.equal(hexOf(encodeProtobuf(t, 'r', JSON.parse('{"__proto__":"x","constructor":2}'))), '0a01781002');
  });

  it('tolerates hand-made parsed protos (as a client SDK receives them)', () => {
    const hand = JSON.parse(JSON.stringify(SERVER)) as ParsedProtos;
    const v = vectorById('protobuf-push', 'pb-push-onStats-all-types');
    assert.equal(hexOf(encodeProtobuf(hand, 'onStats', v.input.message)), v.protobufHex);
    const weird = { r: { a: { option: 'required', type: 'string', tag: 'x' }, __messages: null, __tags: 5 } } as unknown as ParsedProtos;
    assert.equal(encodeProtobuf(weird, 'r', { a: 'v' }), null);
    assert.deepEqual(decodeProtobuf(weird, 'r', hex('0a0176')), {}); // no tag table: tag 1 unknown, skipped
  });
});

// ---------------------------------------------------------------- properties

const TABLES: readonly [string, ParsedProtos, Record<string, unknown>][] = [
  ['server', SERVER, P.serverProtosParsed],
  ['client', CLIENT, P.clientProtosParsed],
];

describe('protobuf properties', () => {
  for (const [name, table, raw] of TABLES) {
    for (const route of Object.keys(raw)) {
      it(`${name} ${route}: decode(encode(x)) = x`, () => {
        fc.assert(
          fc.property(protoMessageArbitrary(raw, route), (msg) => {
            const bytes = encodeProtobuf(table, route, msg);
            assert.ok(bytes !== null, JSON.stringify(msg));
            assert.deepEqual(decodeProtobuf(table, route, bytes), expectedDecode(raw, route, msg));
          }),
          { numRuns: 150 },
        );
      });

      it(`${name} ${route}: arbitrary and mutated bytes give values or ProtocolError`, () => {
        const valid = fc.uint8Array({ maxLength: 80 });
        const mutated = fc
          .tuple(protoMessageArbitrary(raw, route), fc.nat(), fc.integer({ min: 0, max: 255 }))
          .map(([msg, at, byte]) => {
            const b = Buffer.from(encodeProtobuf(table, route, msg) ?? Buffer.alloc(0));
            if (b.length > 0) b[at % b.length] = byte;
            return new Uint8Array(b);
          });
        fc.assert(
          fc.property(fc.oneof(valid, mutated), (bytes) => {
            try {
              decodeProtobuf(table, route, Buffer.from(bytes));
            } catch (err) {
              assert.ok(err instanceof ProtocolError, String(err));
            }
          }),
          { numRuns: 400 },
        );
      });
    }
  }
});
