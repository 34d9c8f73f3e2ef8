import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { ProtocolError, isProtocolError, PROTOCOL_ERROR_CODES } from '../../../src/protocol/errors.js';
import {
  HANDSHAKE_ACK_PACKAGE,
  HEARTBEAT_PACKAGE,
  MAX_BODY,
  PackageReader,
  PackageType,
  decodeSinglePackage,
  encodeKick,
  encodePackage,
  readPackage,
  type Package,
  type PackageLimits,
} from '../../../src/protocol/pomelo/package.js';
import { hex, vectorById, vectorsOf, type DecodedPackageView } from '../vectors.js';

const LIMITS: PackageLimits = { maxPackage: MAX_BODY };

/** Deterministic PRNG (mulberry32) so random splits are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Outcome {
  readonly packages: readonly { readonly type: number; readonly body: string }[];
  readonly error: string | null;
}

const view = (p: Package): { type: number; body: string } => ({ type: p.type, body: p.body.toString('hex') });

/** Feeds chunks to a fresh reader until the first error. */
function feed(chunks: readonly Buffer[], limits: PackageLimits = LIMITS): Outcome {
  const reader = new PackageReader(limits);
  const packages: { type: number; body: string }[] = [];
  for (const chunk of chunks) {
    try {
      packages.push(...reader.push(chunk).map(view));
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `non-ProtocolError from PackageReader: ${String(err)}`);
      return { packages, error: err.code };
    }
  }
  return { packages, error: null };
}

/** The oracle: readPackage in a loop over the whole input. */
function oracle(buf: Buffer, limits: PackageLimits = LIMITS): Outcome {
  const packages: { type: number; body: string }[] = [];
  let rest = buf;
  for (;;) {
    if (rest.length === 0) return { packages, error: null };
    let step;
    try {
      step = readPackage(rest, limits);
    } catch (err) {
      assert.ok(err instanceof ProtocolError);
      return { packages, error: err.code };
    }
    if (step.kind === 'need') return { packages, error: null };
    packages.push(view(step.value));
    rest = rest.subarray(step.used);
  }
}

function split(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    out.push(buf.subarray(last, p));
    last = p;
  }
  out.push(buf.subarray(last));
  return out;
}

function randomSplits(buf: Buffer, rnd: () => number, maxPiece: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const n = 1 + Math.floor(rnd() * maxPiece);
    out.push(buf.subarray(at, at + n));
    at += n;
  }
  return out;
}

function byteByByte(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
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

function expectedViews(decoded: DecodedPackageView | readonly DecodedPackageView[]): readonly DecodedPackageView[] {
  return Array.isArray(decoded) ? decoded : [decoded as DecodedPackageView];
}

describe('errors', () => {
  it('ProtocolError carries code, name, cause', () => {
    const cause = new Error('inner');
    const e = new ProtocolError('PROTO_BAD_TYPE', 'bad', { cause });
    assert.equal(e.name, 'ProtocolError');
    assert.equal(e.code, 'PROTO_BAD_TYPE');
    assert.equal(e.message, 'bad');
    assert.equal(e.cause, cause);
    assert.ok(e instanceof Error);
    assert.ok(isProtocolError(e));
    assert.ok(!isProtocolError(new Error('x')));
    assert.ok(!isProtocolError('PROTO_BAD_TYPE'));
    // A copy from another module instance is recognised by name and code.
    const foreign = Object.assign(new Error('x'), { name: 'ProtocolError', code: 'LIMIT_PAYLOAD' });
    assert.ok(isProtocolError(foreign));
    assert.ok(!isProtocolError(Object.assign(new Error('x'), { name: 'ProtocolError', code: 'NOPE' })));
  });

  it('codes are unique SCREAMING_SNAKE strings', () => {
    assert.equal(new Set(PROTOCOL_ERROR_CODES).size, PROTOCOL_ERROR_CODES.length);
    for (const c of PROTOCOL_ERROR_CODES) assert.match(c, /^[A-Z]+(_[A-Z]+)+$/);
  });
});

describe('package vectors', () => {
  for (const v of vectorsOf('package')) {
    it(`${v.id}: decode`, () => {
      const bytes = hex(v.hex);
      const expected = expectedViews(v.decoded);
      const got = oracle(bytes);
      assert.equal(got.error, null);
      assert.equal(got.packages.length, expected.length);
      expected.forEach((e, i) => {
        const p = got.packages[i]!;
        assert.equal(p.type, e.type);
        if (e.bodyHex !== undefined) assert.equal(p.body, e.bodyHex);
        if (e.bodyLength !== undefined) assert.equal(p.body.length / 2, e.bodyLength);
      });
      if (expected.length === 1) {
        const single = decodeSinglePackage(bytes, LIMITS);
        assert.equal(single.type, expected[0]!.type);
        assert.equal(single.body.toString('hex'), got.packages[0]!.body);
        // Views, not copies.
        assert.equal(single.body.buffer, bytes.buffer);
      } else {
        // One WebSocket message must hold exactly one package (docs/pomelo-protocol.md §2.3).
        assert.equal(codeOf(() => decodeSinglePackage(bytes, LIMITS)), 'PROTO_TRAILING');
      }
      if (v.sha256 !== undefined) assert.equal(createHash('sha256').update(bytes).digest('hex'), v.sha256);
      if (v.headerHex !== undefined) assert.equal(bytes.subarray(0, 4).toString('hex'), v.headerHex);
      if (v.length !== undefined) assert.equal(bytes.length, v.length);
    });

    it(`${v.id}: encode`, () => {
      const bytes = hex(v.hex);
      // Re-encode what was decoded (covers the 70,000-byte body, given only by length).
      const parts = oracle(bytes).packages.map((p) =>
        encodePackage(p.type as PackageType, p.body === '' ? undefined : hex(p.body)),
      );
      assert.equal(Buffer.concat(parts).toString('hex'), v.hex);
      if (v.input.bodyJson !== undefined && v.input.type !== undefined) {
        assert.equal(encodePackage(v.input.type as PackageType, Buffer.from(v.input.bodyJson)).toString('hex'), v.hex);
      }
    });

    it(`${v.id}: byte by byte and random splits give the same packages`, () => {
      const bytes = hex(v.hex);
      const whole = feed([bytes]);
      assert.deepEqual(feed(byteByByte(bytes)), whole);
      const rnd = prng(0x5eed + bytes.length);
      for (let i = 0; i < 20; i++) assert.deepEqual(feed(randomSplits(bytes, rnd, 1 + (i % 7) * 50)), whole);
    });
  }

  it('pkg-length-max: a 0xFFFFFF body encodes with header 04ffffff', () => {
    const v = vectorById('package-header', 'pkg-length-max');
    const out = encodePackage(PackageType.DATA, Buffer.alloc(v.input.bodyLength, 0x20));
    assert.equal(out.subarray(0, 4).toString('hex'), v.headerHex);
    assert.equal(out.length, v.length);
    const step = readPackage(out.subarray(0, 4), LIMITS);
    assert.deepEqual(step, { kind: 'need', atLeast: v.length });
    assert.equal(decodeSinglePackage(out, LIMITS).body.length, v.input.bodyLength);
  });

  it('pkg-length-wrap: a body over 0xFFFFFF is refused instead of wrapping', () => {
    const v = vectorById('package-header', 'pkg-length-wrap');
    assert.equal(codeOf(() => encodePackage(PackageType.DATA, Buffer.alloc(v.input.bodyLength))), 'LIMIT_PAYLOAD');
    assert.equal(codeOf(() => encodePackage(PackageType.DATA, Buffer.alloc(MAX_BODY + 1))), 'LIMIT_PAYLOAD');
  });
});

describe('package constants and kick', () => {
  it('pre-encoded packages', () => {
    assert.equal(HEARTBEAT_PACKAGE.toString('hex'), vectorById('package', 'pkg-heartbeat').hex);
    assert.equal(HANDSHAKE_ACK_PACKAGE.toString('hex'), vectorById('package', 'pkg-handshake-ack').hex);
  });

  it('encodeKick matches every kick vector', () => {
    const kicks = vectorsOf('package').filter((v) => v.id.startsWith('pkg-kick-'));
    assert.equal(kicks.length, 3);
    for (const v of kicks) {
      const reason = (JSON.parse(v.input.bodyJson!) as { reason: string }).reason;
      assert.equal(encodeKick(reason).toString('hex'), v.hex);
    }
  });

  it('encodePackage refuses unknown types', () => {
    for (const t of [0, 6, 255, 1.5, -1]) assert.equal(codeOf(() => encodePackage(t as PackageType)), 'PROTO_BAD_TYPE');
  });
});

describe('package error fixtures', () => {
  const cases: readonly [string, string, string][] = [
    // [description, hex, code]
    ['type 0', '00000000', 'PROTO_BAD_TYPE'],
    ['type 6', '06000000', 'PROTO_BAD_TYPE'],
    ['type ff', 'ff000000', 'PROTO_BAD_TYPE'],
    ['"GET " misread as TCP (docs/pomelo-protocol.md §10.1)', '47455420', 'PROTO_BAD_TYPE'],
    ['bad type after a good package', '03000000' + '09', 'PROTO_BAD_TYPE'],
  ];
  for (const [name, h, code] of cases) {
    it(`${name} => ${code}`, () => {
      const bytes = hex(h);
      const whole = feed([bytes]);
      assert.equal(whole.error, code);
      assert.deepEqual(feed(byteByByte(bytes)).error, code);
      // Nothing emitted by the chunk that failed; earlier chunks are kept.
      assert.equal(whole.packages.length, 0);
      assert.equal(oracle(bytes).error, code);
    });
  }

  it('a bad type byte is rejected as soon as it arrives', () => {
    const reader = new PackageReader(LIMITS);
    assert.equal(codeOf(() => reader.push(Buffer.from([0x09]))), 'PROTO_BAD_TYPE');
    assert.equal(codeOf(() => readPackage(Buffer.from([0x00]), LIMITS)), 'PROTO_BAD_TYPE');
  });

  it('the reader stays failed after an error', () => {
    const reader = new PackageReader(LIMITS);
    assert.equal(codeOf(() => reader.push(hex('07000000'))), 'PROTO_BAD_TYPE');
    assert.equal(codeOf(() => reader.push(hex('03000000'))), 'PROTO_BAD_TYPE');
    assert.equal(codeOf(() => reader.push(Buffer.alloc(0))), 'PROTO_BAD_TYPE');
    assert.equal(reader.bufferedBytes, 0);
  });

  it('decodeSinglePackage: empty, short header, short body, trailing bytes', () => {
    assert.equal(codeOf(() => decodeSinglePackage(Buffer.alloc(0), LIMITS)), 'PROTO_TRUNCATED');
    assert.equal(codeOf(() => decodeSinglePackage(hex('0400'), LIMITS)), 'PROTO_TRUNCATED');
    assert.equal(codeOf(() => decodeSinglePackage(hex('040000027b'), LIMITS)), 'PROTO_TRUNCATED');
    assert.equal(codeOf(() => decodeSinglePackage(hex('0300000000'), LIMITS)), 'PROTO_TRAILING');
    assert.equal(codeOf(() => decodeSinglePackage(hex('08000000'), LIMITS)), 'PROTO_BAD_TYPE');
    assert.equal(codeOf(() => decodeSinglePackage(hex('04000011'), { maxPackage: 16 })), 'LIMIT_PAYLOAD');
  });

  it('an oversized declared length is rejected from the header alone', () => {
    const limits = { maxPackage: 1000 };
    assert.equal(codeOf(() => readPackage(hex('040003e9'), limits)), 'LIMIT_PAYLOAD');
    assert.deepEqual(readPackage(hex('040003e8'), limits), { kind: 'need', atLeast: 1004 });
    const reader = new PackageReader(limits);
    assert.deepEqual(reader.push(hex('0400')), []);
    assert.equal(codeOf(() => reader.push(hex('03e9'))), 'LIMIT_PAYLOAD');
  });

  it('limit 0 accepts only empty packages', () => {
    const limits = { maxPackage: 0 };
    assert.deepEqual(feed([hex('0300000002000000')], limits).packages.length, 2);
    assert.equal(feed([hex('040000017b')], limits).error, 'LIMIT_PAYLOAD');
  });
});

describe('PackageReader', () => {
  it('returns views for packages inside one chunk and copies those spanning chunks', () => {
    const a = encodePackage(PackageType.DATA, Buffer.from('hello'));
    const b = encodePackage(PackageType.DATA, Buffer.from('world!'));
    const chunk = Buffer.concat([a, b.subarray(0, 6)]);
    const reader = new PackageReader(LIMITS);
    const first = reader.push(chunk);
    assert.equal(first.length, 1);
    assert.equal(first[0]!.body.buffer, chunk.buffer);
    assert.equal(reader.bufferedBytes, 2);
    const second = reader.push(b.subarray(6, 8));
    assert.deepEqual(second, []);
    assert.equal(reader.bufferedBytes, 4);
    const third = reader.push(b.subarray(8));
    assert.equal(third.length, 1);
    assert.equal(third[0]!.body.toString(), 'world!');
    assert.equal(reader.bufferedBytes, 0);
  });

  it('a header split from its body still gets a view when the body comes whole', () => {
    const p = encodePackage(PackageType.DATA, Buffer.from('abcdef'));
    const reader = new PackageReader(LIMITS);
    assert.deepEqual(reader.push(p.subarray(0, 4)), []);
    const tail = Buffer.from(p.subarray(4));
    const out = reader.push(tail);
    assert.equal(out[0]!.body.buffer, tail.buffer);
  });

  it('zero-length packages complete with the header', () => {
    const reader = new PackageReader(LIMITS);
    assert.deepEqual(reader.push(hex('0300')), []);
    const out = reader.push(hex('0000'));
    assert.deepEqual(out.map(view), [{ type: 3, body: '' }]);
  });

  it('never holds more than limit + 4 bytes', () => {
    const limit = 300;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 30 }), (bytes, cuts) => {
        const buf = Buffer.from(bytes);
        buf[0] = 4; // keep the stream alive past the first byte more often
        const reader = new PackageReader({ maxPackage: limit });
        for (const chunk of split(buf, cuts)) {
          try {
            reader.push(chunk);
          } catch (err) {
            assert.ok(err instanceof ProtocolError);
            return;
          }
          assert.ok(reader.bufferedBytes <= limit + 4, `held ${reader.bufferedBytes}`);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('package properties', () => {
  const packageArb = fc.record({
    type: fc.integer({ min: 1, max: 5 }),
    body: fc.uint8Array({ maxLength: 300 }),
  });

  it('decode(encode(x)) = x', () => {
    fc.assert(
      fc.property(packageArb, ({ type, body }) => {
        const bytes = encodePackage(type as PackageType, Buffer.from(body));
        const p = decodeSinglePackage(bytes, LIMITS);
        assert.equal(p.type, type);
        assert.deepEqual(new Uint8Array(p.body), body);
      }),
      { numRuns: 300 },
    );
  });

  it('a stream of packages comes back whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(packageArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (pkgs, cuts) => {
        const stream = Buffer.concat(pkgs.map((p) => encodePackage(p.type as PackageType, Buffer.from(p.body))));
        const expected = pkgs.map((p) => ({ type: p.type, body: Buffer.from(p.body).toString('hex') }));
        assert.deepEqual(feed(split(stream, cuts)), { packages: expected, error: null });
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes: only values or ProtocolError, and chunking never changes the result', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer({ min: 0, max: 64 }),
        (bytes, cuts, maxPackage) => {
          const buf = Buffer.from(bytes);
          const limits = { maxPackage };
          const expected = oracle(buf, limits);
          assert.deepEqual(feed([buf], limits), expected);
          assert.deepEqual(feed(split(buf, cuts), limits), expected);
          try {
            decodeSinglePackage(buf, limits);
          } catch (err) {
            assert.ok(err instanceof ProtocolError, String(err));
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('an oversized length is rejected after exactly 4 bytes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: MAX_BODY - 1 }), (type, limit) => {
        const length = limit + 1;
        const header = Buffer.from([type, length >>> 16, (length >>> 8) & 0xff, length & 0xff]);
        const reader = new PackageReader({ maxPackage: limit });
        assert.deepEqual(reader.push(header.subarray(0, 3)), []);
        assert.equal(codeOf(() => reader.push(header.subarray(3))), 'LIMIT_PAYLOAD');
        assert.equal(codeOf(() => readPackage(header, { maxPackage: limit })), 'LIMIT_PAYLOAD');
      }),
      { numRuns: 200 },
    );
  });
});
