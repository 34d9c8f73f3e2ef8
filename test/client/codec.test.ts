import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MessageType,
  PackageReader,
  decodeServerMessage,
  encodeClientMessage,
  encodePackage,
  parseHandshakeReply,
  parseKick,
  type Package,
} from '../../src/client/codec.js';
import { decodeMessage } from '../../src/protocol/pomelo/message.js';
import { vectorsOf } from '../protocol/vectors.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const view = (p: Package): { type: number; body: string } => ({ type: p.type, body: hex(p.body) });

/** Feeds `input` to a fresh reader split at `cuts`; returns every package. */
function readSplit(input: Uint8Array, cuts: readonly number[]): { type: number; body: string }[] {
  const reader = new PackageReader();
  const out: { type: number; body: string }[] = [];
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    out.push(...reader.push(input.slice(from, cut)).map(view));
    from = cut;
  }
  assert.equal(reader.pendingBytes, 0);
  return out;
}

describe('client codec (Uint8Array) against the reference vectors', () => {
  it('encodes every client→server request and notify vector byte for byte', () => {
    let n = 0;
    for (const v of vectorsOf('message')) {
      const { type, id, route, bodyJson } = v.input;
      if (type !== MessageType.REQUEST && type !== MessageType.NOTIFY) continue;
      if (route === null || v.input.compressGzip) continue;
      const out = encodeClientMessage(type === MessageType.REQUEST ? id : undefined, route, utf8(bodyJson ?? ''));
      assert.equal(hex(out), v.hex, v.id);
      n++;
    }
    assert.ok(n >= 10, `${n} vectors`);
  });

  it('decodes every server→client response and push vector', () => {
    let n = 0;
    for (const v of vectorsOf('message')) {
      const { type } = v.decoded;
      if (type !== MessageType.RESPONSE && type !== MessageType.PUSH) continue;
      const m = decodeServerMessage(bytes(v.messageHex));
      if (m.type === MessageType.RESPONSE) assert.equal(m.id, v.decoded.id, v.id);
      else assert.equal(m.route, v.decoded.route, v.id);
      assert.equal(hex(m.body), v.decoded.bodyHex, v.id);
      n++;
    }
    assert.ok(n >= 5, `${n} vectors`);
  });

  it('reads every package vector whole, one byte at a time, and in two pieces', () => {
    for (const v of vectorsOf('package')) {
      const input = bytes(v.hex);
      const want = (Array.isArray(v.decoded) ? v.decoded : [v.decoded]).map((d: { type: number; bodyHex?: string }) => d.type);
      const whole = readSplit(input, []);
      assert.deepEqual(
        whole.map((p) => p.type),
        want,
        v.id,
      );
      const byteByByte = readSplit(
        input,
        Array.from({ length: input.length - 1 }, (_, i) => i + 1),
      );
      assert.deepEqual(byteByByte, whole, v.id);
      assert.deepEqual(readSplit(input, [Math.floor(input.length / 2)]), whole, v.id);
    }
  });

  it('reads handshake replies: heartbeat and the route dictionary', () => {
    let n = 0;
    for (const v of vectorsOf('handshake')) {
      const body = JSON.parse(v.bodyJson) as { code: number; sys?: { heartbeat?: number; dict?: Record<string, number> } };
      if (body.code !== 200) {
        assert.throws(() => parseHandshakeReply(utf8(v.bodyJson)), { code: 'CLIENT_HANDSHAKE_FAILED' }, v.id);
        continue;
      }
      const reply = parseHandshakeReply(utf8(v.bodyJson));
      assert.equal(reply.heartbeatSeconds, body.sys?.heartbeat, v.id);
      for (const [route, code] of Object.entries(body.sys?.dict ?? {})) {
        assert.equal(reply.routeToCode.get(route), code, v.id);
        assert.equal(reply.codeToRoute.get(code), route, v.id);
      }
      n++;
    }
    assert.ok(n >= 3);
  });

  it('fails at once on a bad type byte or an oversized length, before buffering the body', () => {
    assert.throws(() => new PackageReader().push(bytes('09')), { code: 'PROTO_BAD_TYPE' });
    assert.throws(() => new PackageReader(1000).push(bytes('040003e9')), { code: 'LIMIT_PAYLOAD' });
    // Packages before a bad byte in the same chunk are not half-delivered: the chunk fails.
    assert.throws(() => new PackageReader().push(bytes('03000000ff')), { code: 'PROTO_BAD_TYPE' });
    assert.throws(() => decodeServerMessage(bytes('00017b7d')), { code: 'PROTO_BAD_MESSAGE' }); // a request from the server
    assert.throws(() => decodeServerMessage(bytes('0605616263')), { code: 'PROTO_BAD_MESSAGE' }); // route runs past the end
    assert.throws(() => decodeServerMessage(bytes('04ffffffffff01')), { code: 'PROTO_BAD_MESSAGE' }); // id varint too long
    assert.throws(() => encodeClientMessage(1, 'r'.repeat(256), utf8('{}')), { code: 'PROTO_BAD_MESSAGE' });
    assert.throws(() => encodePackage(4, new Uint8Array(0x1000000)), { code: 'LIMIT_PAYLOAD' });
  });

  it('reads kicks', () => {
    assert.equal(parseKick(utf8('{"reason":"replaced"}')), 'replaced');
    assert.equal(parseKick(utf8('not json')), 'kick');
  });

  it('property: what the SDK encodes, the server decodes to the same id, route and body', () => {
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 1, max: 0x7fffffff }), { nil: undefined }),
        fc.oneof(fc.string({ maxLength: 80 }), fc.integer({ min: 1, max: 0xffff })),
        fc.jsonValue(),
        (id, route, body) => {
          const pkg = encodeClientMessage(id, route, utf8(JSON.stringify(body)));
          const [p] = new PackageReader().push(pkg);
          const m = decodeMessage(Buffer.from(p!.body));
          assert.equal(m.type, id === undefined ? MessageType.NOTIFY : MessageType.REQUEST);
          if (id !== undefined) assert.equal(m.id, id);
          assert.equal(m.route, route);
          assert.deepEqual(JSON.parse(m.body.toString('utf8')), JSON.parse(JSON.stringify(body)));
        },
      ),
    );
  });

  it('property: chunking never changes the packages', () => {
    const pkgs = fc.array(
      fc.record({ type: fc.constantFrom(1, 2, 3, 4, 5) as fc.Arbitrary<1 | 2 | 3 | 4 | 5>, body: fc.uint8Array({ maxLength: 300 }) }),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(pkgs, fc.array(fc.nat(), { maxLength: 8 }), (list, rawCuts) => {
        const parts = list.map((p) => encodePackage(p.type, p.body));
        const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) {
          all.set(p, o);
          o += p.length;
        }
        const cuts = [...new Set(rawCuts.map((c) => (all.length === 0 ? 0 : c % all.length)))].sort((a, b) => a - b);
        assert.deepEqual(
          readSplit(all, cuts),
          list.map((p) => ({ type: p.type, body: hex(p.body) })),
        );
      }),
    );
  });
});
