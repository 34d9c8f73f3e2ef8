/**
 * Cross-checks against the real reference codecs (dev dependencies, CommonJS):
 * pomelo-protocol 0.1.6 and pomelo-protobuf 0.4.0 (Node codec and browser codec).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { PackageType, decodeSinglePackage, encodePackage, MAX_BODY } from '../../../src/protocol/pomelo/package.js';
import {
  MessageType,
  decodeMessage,
  encodeNotify,
  encodePush,
  encodeRequest,
  encodeResponse,
} from '../../../src/protocol/pomelo/message.js';
import { decodeProtobuf, encodeProtobuf, parseProtos, type ParsedProtos } from '../../../src/protocol/pomelo/protobuf.js';
import { loadVectors, protoMessageArbitrary } from '../vectors.js';

// ---------------------------------------------------------------- the reference, typed as we use it

interface RefPackage {
  encode(type: number, body?: Buffer): Buffer;
  decode(buf: Buffer): { type: number; body: Buffer | null } | { type: number; body: Buffer | null }[];
}
interface RefMessage {
  encode(id: number, type: number, compressRoute: number, route: string | number | null, msg: Buffer | null): Buffer;
  decode(buf: Buffer): {
    id: number;
    type: number;
    compressRoute: number;
    route: string | number | null;
    body: Buffer;
    compressGzip: number;
  };
}
interface RefProtobuf {
  parse(source: unknown): Record<string, unknown>;
  init(opts: { encoderProtos: unknown; decoderProtos: unknown }): void;
  encode(route: string, msg: unknown): Buffer | Uint8Array | null;
  decode(route: string, buf: Buffer | Uint8Array): Record<string, unknown> | null;
}

const require = createRequire(import.meta.url);
const { Package, Message } = require('pomelo-protocol') as { Package: RefPackage; Message: RefMessage };
const nodePb = require('pomelo-protobuf') as RefProtobuf;
const browserPb = require('pomelo-protobuf/lib/client/protobuf.js') as RefProtobuf;

/** The reference logs on every null result; keep the test output clean. */
function quiet<T>(fn: () => T): T {
  const { warn, log } = console;
  console.warn = () => undefined;
  console.log = () => undefined;
  try {
    return fn();
  } finally {
    console.warn = warn;
    console.log = log;
  }
}

const LIMITS = { maxPackage: MAX_BODY };
const P = loadVectors().protos;
const OURS = { server: parseProtos(P.serverProtosSource), client: parseProtos(P.clientProtosSource) };
const REFS = { server: nodePb.parse(P.serverProtosSource), client: nodePb.parse(P.clientProtosSource) };

// ---------------------------------------------------------------- package and message layers

describe('reference pomelo-protocol 0.1.6', () => {
  it('packages: same bytes both ways', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.uint8Array({ maxLength: 200 }), (type, bytes) => {
        const body = Buffer.from(bytes);
        const ours = encodePackage(type as PackageType, body);
        const ref = Package.encode(type, body.length > 0 ? body : undefined);
        assert.deepEqual(ours, Buffer.from(ref));
        const back = Package.decode(ours);
        assert.ok(!Array.isArray(back));
        assert.equal(back.type, type);
        assert.deepEqual(back.body ?? Buffer.alloc(0), body);
        const mine = decodeSinglePackage(Buffer.from(ref), LIMITS);
        assert.equal(mine.type, type);
        assert.deepEqual(mine.body, body);
      }),
      { numRuns: 300 },
    );
  });

  const route = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 100 }).filter((s) => Buffer.byteLength(s) <= 255),
    fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
    fc.integer({ min: 0, max: 0xffff }),
  );
  const message = fc.record({
    type: fc.integer({ min: 0, max: 3 }),
    id: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    route,
    body: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  });

  function ours(m: { type: number; id: number; route: string | number; body: Buffer }): Buffer {
    switch (m.type) {
      case MessageType.REQUEST:
        return encodeRequest(m.id, m.route, m.body);
      case MessageType.NOTIFY:
        return encodeNotify(m.route, m.body);
      case MessageType.RESPONSE:
        return encodeResponse(m.id, m.body);
      default:
        return encodePush(m.route, m.body);
    }
  }

  it('messages (ids 1..2^31-1, routes <= 255 bytes, codes): same bytes, and each decodes the other', () => {
    fc.assert(
      fc.property(message, (m) => {
        const hasRoute = m.type !== MessageType.RESPONSE;
        const compress = hasRoute && typeof m.route === 'number' ? 1 : 0;
        const ref = Buffer.from(Message.encode(m.id, m.type, compress, hasRoute ? m.route : null, m.body));
        const mine = ours(m);
        assert.deepEqual(mine, ref);

        const theirs = Message.decode(mine);
        const decoded = decodeMessage(ref);
        assert.equal(decoded.type, theirs.type);
        assert.equal(decoded.id, theirs.id);
        assert.equal(decoded.route, theirs.route);
        assert.equal(decoded.compressRoute, theirs.compressRoute === 1);
        assert.deepEqual(decoded.body, Buffer.from(theirs.body));
      }),
      { numRuns: 500 },
    );
  });

  it('arbitrary message bytes: where we decode, the reference agrees', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (bytes) => {
        const buf = Buffer.from(bytes);
        let mine;
        try {
          mine = decodeMessage(buf);
        } catch {
          return; // we reject more than the reference (truncation, >2^31 ids, bad UTF-8)
        }
        const theirs = Message.decode(buf);
        assert.equal(mine.type, theirs.type);
        if (mine.id < 2 ** 31) assert.equal(mine.id, theirs.id);
        assert.equal(mine.route, theirs.route);
        assert.deepEqual(mine.body, Buffer.from(theirs.body));
      }),
      { numRuns: 2000 },
    );
  });
});

// ---------------------------------------------------------------- protobuf

/** Random proto descriptions in the source format, including keys the parser ignores. */
const protoSource = fc.letrec((tie) => ({
  message: fc.dictionary(
    fc.oneof(
      fc
        .tuple(
          fc.constantFrom('required', 'optional', 'repeated', 'other'),
          fc.constantFrom('uInt32', 'sInt32', 'int32', 'float', 'double', 'string', 'bool', 'M', 'User'),
          fc.constantFrom('a', 'b', 'msg', 'users', '1', '20', 'x y', '', 'constructor'),
        )
        .map((p) => p.join(' ')),
      fc.constantFrom('message M', 'message N', 'message M N', 'message'),
      fc.string({ maxLength: 6 }).filter((s) => s !== '__proto__'),
    ),
    fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 0, max: 6 }) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>('1', 'x', null, true, 2.5, [], [3], {}) },
      { weight: 2, arbitrary: tie('message') },
    ),
    { maxKeys: 6, noNullPrototype: true },
  ),
})).message;

const protoTable = fc.dictionary(
  fc.oneof(fc.constantFrom('onMsg', 'a.b.c', 'message User', '7'), fc.string({ maxLength: 8 }).filter((s) => s !== '__proto__')),
  fc.oneof({ weight: 4, arbitrary: protoSource }, { weight: 1, arbitrary: fc.constantFrom<unknown>(1, 'str', null, []) }),
  { maxKeys: 5, noNullPrototype: true },
);

/**
 * The reference sizes its scratch buffer from JSON.stringify and throws when float-heavy
 * messages overflow it (vector pb-scratch-buffer-overflow); null means nothing to compare.
 */
function refEncode(pb: RefProtobuf, encoderProtos: unknown, route: string, msg: unknown): Buffer | null | 'threw' {
  try {
    const out = quiet(() => {
      pb.init({ encoderProtos, decoderProtos: encoderProtos });
      return pb.encode(route, msg);
    });
    return out === null || out === undefined ? null : Buffer.from(out);
  } catch {
    return 'threw';
  }
}

function refDecode(pb: RefProtobuf, decoderProtos: unknown, route: string, buf: Buffer): Record<string, unknown> | null {
  pb.init({ encoderProtos: decoderProtos, decoderProtos });
  return pb.decode(route, pb === browserPb ? new Uint8Array(buf) : buf);
}

/**
 * True when a message description (or one nested in it) gives two fields the same tag.
 * Such a proto is ambiguous (protobuf requires unique field numbers): the two codecs
 * write the same bytes, but which field a tag decodes to is anyone's guess, and ours
 * may refuse the bytes with a ProtocolError where the reference returns garbage.
 */
function hasDuplicateTags(message: unknown): boolean {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return false;
  const tags = new Set<unknown>();
  for (const [key, value] of Object.entries(message)) {
    if (key.startsWith('message')) {
      if (hasDuplicateTags(value)) return true;
      continue;
    }
    if (tags.has(value)) return true;
    tags.add(value);
  }
  return false;
}

describe('reference pomelo-protobuf 0.4.0', () => {
  it('parse: same JSON for random proto descriptions', () => {
    fc.assert(
      fc.property(protoTable, (source) => {
        assert.equal(JSON.stringify(parseProtos(source)), JSON.stringify(nodePb.parse(source)));
      }),
      { numRuns: 500 },
    );
  });

  it('encode and decode: random protos and messages agree with the Node codec', () => {
    const tableAndMessage = protoTable
      .map((source) => ({ source, routes: Object.keys(source).filter((k) => typeof source[k] === 'object' && source[k] !== null && !Array.isArray(source[k])) }))
      .map(({ source, routes }) => ({ source, routes: routes.filter((r) => !hasDuplicateTags(source[r])) }))
      .filter(({ routes }) => routes.length > 0)
      .chain(({ source, routes }) =>
        fc.constantFrom(...routes).chain((route) => {
          const plain = JSON.parse(JSON.stringify(parseProtos(source))) as Record<string, unknown>;
          return protoMessageArbitrary(plain, route, { maxDepth: 2, maxItems: 3 }).map((msg) => ({ source, route, msg }));
        }),
      );
    let compared = 0;
    fc.assert(
      fc.property(tableAndMessage, ({ source, route, msg }) => {
        const ours = parseProtos(source);
        const mine = encodeProtobuf(ours, route, msg);
        if (mine === null) return; // a tag or type the dialect cannot carry: we refuse, the reference writes garbage
        const refTable = nodePb.parse(source);
        const theirs = refEncode(nodePb, refTable, route, msg);
        if (theirs === 'threw' || theirs === null) return;
        assert.deepEqual(mine, theirs);
        let back: Record<string, unknown> | null;
        try {
          back = quiet(() => refDecode(nodePb, refTable, route, mine));
        } catch {
          return; // e.g. a field named "constructor": the reference decoder trips on Object.prototype
        }
        assert.deepEqual(back, decodeProtobuf(ours, route, mine));
        compared++;
      }),
      { numRuns: 1000 },
    );
    // Most random tables carry at least one usable route; make sure the check is not vacuous.
    assert.ok(compared > 60, `only ${compared} messages compared`);
  });

  const sets: readonly ['server' | 'client', Record<string, unknown>][] = [
    ['server', P.serverProtosParsed],
    ['client', P.clientProtosParsed],
  ];
  for (const [set, raw] of sets) {
    for (const route of Object.keys(raw)) {
      it(`${set} ${route}: Node codec gives the same bytes and decodes ours identically`, () => {
        const ourTable: ParsedProtos = OURS[set];
        fc.assert(
          fc.property(protoMessageArbitrary(raw, route), (msg) => {
            const mine = encodeProtobuf(ourTable, route, msg);
            assert.ok(mine !== null);
            const theirs = refEncode(nodePb, REFS[set], route, msg);
            if (theirs === 'threw') return;
            // The reference returns null for a message that encodes to nothing.
            assert.deepEqual(mine, theirs ?? Buffer.alloc(0));
            if (mine.length === 0) return;
            assert.deepEqual(quiet(() => refDecode(nodePb, REFS[set], route, mine)), decodeProtobuf(ourTable, route, mine));
          }),
          { numRuns: 200 },
        );
      });

      it(`${set} ${route}: browser codec bytes (wire type 2 for varints) decode the same`, () => {
        const ourTable: ParsedProtos = OURS[set];
        fc.assert(
          fc.property(protoMessageArbitrary(raw, route, { bmpStrings: true }), (msg) => {
            const theirs = refEncode(browserPb, REFS[set], route, msg);
            if (theirs === 'threw' || theirs === null) return;
            const mine = decodeProtobuf(ourTable, route, theirs);
            assert.deepEqual(mine, quiet(() => refDecode(browserPb, REFS[set], route, theirs)));
            const ourBytes = encodeProtobuf(ourTable, route, msg)!;
            assert.deepEqual(quiet(() => refDecode(browserPb, REFS[set], route, ourBytes)), decodeProtobuf(ourTable, route, ourBytes));
          }),
          { numRuns: 150 },
        );
      });
    }
  }
});
