import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generate, type Packet } from 'mqtt-packet';
import { MalformedStringError, MqttPacketReader, UnsupportedVersionError, packetBytes } from '../../../src/connectors/mqtt/mqtt-reader.js';
import { isProtocolError, type ProtocolErrorCode } from '../../../src/protocol/errors.js';

const LIMIT = 1024;

function throwsCode(fn: () => unknown, code: ProtocolErrorCode): void {
  assert.throws(fn, (err: unknown) => isProtocolError(err) && err.code === code);
}

const connect5 = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'c', keepalive: 30, username: 'k' }, { protocolVersion: 5 });
const subscribe5 = generate({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'apps/k/all', qos: 1 }] }, { protocolVersion: 5 });
const ping = generate({ cmd: 'pingreq' });

describe('MqttPacketReader', () => {
  it('reads the same packets whole and one byte at a time, at the protocol level CONNECT names', () => {
    const all = Buffer.concat([connect5, subscribe5, ping]);
    const whole = new MqttPacketReader(LIMIT).push(all);
    const reader = new MqttPacketReader(LIMIT);
    const bytewise: Packet[] = [];
    for (const b of all) bytewise.push(...reader.push(Buffer.from([b])));
    assert.deepEqual(
      whole.map((p) => p.cmd),
      ['connect', 'subscribe', 'pingreq'],
    );
    assert.deepEqual(bytewise, whole);
    const sub = whole[1];
    assert.equal(sub?.cmd === 'subscribe' && sub.subscriptions[0]?.topic, 'apps/k/all');
  });

  // Also the check that our one use of the parser's internals (the declared length of a
  // packet still arriving) works: five bytes must be enough to refuse 256 MB.
  it('refuses a packet on its declared length, before the body arrives', () => {
    throwsCode(() => new MqttPacketReader(LIMIT).push(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])), 'LIMIT_PAYLOAD');
    const reader = new MqttPacketReader(LIMIT);
    reader.push(connect5);
    // A PUBLISH declaring one byte more than the limit allows, body not yet sent.
    const over = LIMIT - 3 + 1; // 1 type byte + 2 length bytes + body
    throwsCode(() => reader.push(Buffer.from([0x30, (over & 0x7f) | 0x80, over >> 7])), 'LIMIT_PAYLOAD');
  });

  it('accepts a packet of exactly the limit and refuses one a byte over when it arrives whole', () => {
    const sized = (total: number): Buffer => {
      const topic = 't';
      // PUBLISH QoS 0 (MQTT 3.1.1): header 1 + 2 length bytes, topic 2 + 1, payload.
      return generate({ cmd: 'publish', topic, qos: 0, dup: false, retain: false, payload: Buffer.alloc(total - 6) });
    };
    assert.equal(sized(LIMIT).length, LIMIT);
    const ok = new MqttPacketReader(LIMIT);
    assert.equal(ok.push(Buffer.concat([generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'c', keepalive: 0 }), sized(LIMIT)])).length, 2);
    throwsCode(() => new MqttPacketReader(LIMIT).push(sized(LIMIT + 1)), 'LIMIT_PAYLOAD');
  });

  it('refuses malformed input, and stays refused', () => {
    const reader = new MqttPacketReader(LIMIT);
    throwsCode(() => reader.push(Buffer.from([0x00, 0x00])), 'PROTO_BAD_MESSAGE'); // packet type 0 is reserved
    throwsCode(() => reader.push(ping), 'PROTO_BAD_MESSAGE');
    // Reserved flag bits set on PINGREQ (MQTT-2.2.2-2).
    throwsCode(() => new MqttPacketReader(LIMIT).push(Buffer.from([0xc1, 0x00])), 'PROTO_BAD_MESSAGE');
  });

  it('names an unknown protocol level apart (MQTT-3.1.2-2 answers it with CONNACK 0x01)', () => {
    const connect = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'x', keepalive: 0 });
    connect[8] = 9;
    assert.throws(() => new MqttPacketReader(LIMIT).push(connect), (err: unknown) => err instanceof UnsupportedVersionError);
  });

  it('turns arbitrary bytes into packets or ProtocolError, nothing else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const reader = new MqttPacketReader(LIMIT);
        try {
          reader.push(connect5);
          for (const c of chunks) reader.push(Buffer.from(c));
        } catch (err) {
          assert.ok(isProtocolError(err), String(err));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('frames packets split at every byte boundary, and several in one chunk', () => {
    const publish5 = generate(
      { cmd: 'publish', topic: 'apps/k/push', qos: 1, messageId: 3, dup: false, retain: false, payload: Buffer.alloc(200, 7), properties: { contentType: 'x' } },
      { protocolVersion: 5 },
    );
    // 200 B of payload: a 2-byte remaining length, so splits fall inside the fixed header too.
    const all = Buffer.concat([connect5, subscribe5, publish5, ping, ping]);
    const expected = new MqttPacketReader(LIMIT).push(all);
    assert.deepEqual(
      expected.map((p) => p.cmd),
      ['connect', 'subscribe', 'publish', 'pingreq', 'pingreq'],
    );
    for (let i = 0; i <= all.length; i++) {
      for (const j of [i, Math.min(all.length, i + 1), Math.min(all.length, i + 3), all.length]) {
        const reader = new MqttPacketReader(LIMIT);
        const got = [...reader.push(all.subarray(0, i)), ...reader.push(all.subarray(i, j)), ...reader.push(all.subarray(j))];
        assert.deepEqual(got, expected, `split at ${i} and ${j}`);
      }
    }
  });

  it('keeps no view of the socket chunk a partial packet came in', () => {
    const reader = new MqttPacketReader(LIMIT);
    const chunk = Buffer.from(connect5);
    reader.push(chunk.subarray(0, 7));
    chunk.fill(0); // the socket may hand us a buffer it reuses
    const [packet] = reader.push(connect5.subarray(7));
    assert.equal(packet?.cmd === 'connect' && packet.clientId, 'c');
  });

  it('refuses a malformed remaining length (a fifth length byte), split or whole', () => {
    const bad = Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    for (let i = 1; i < bad.length; i++) {
      const reader = new MqttPacketReader(LIMIT);
      assert.throws(
        () => {
          reader.push(bad.subarray(0, i));
          reader.push(bad.subarray(i));
        },
        (err: unknown) => isProtocolError(err) && err.code === 'PROTO_BAD_MESSAGE' && /Invalid variable byte integer/.test(err.message),
        `split at ${i}`,
      );
    }
  });

  it('refuses a remaining length encoded longer than needed (MQTT-1.5.5-1), and takes the same value encoded right', () => {
    // PINGREQ with its remaining length 0 written as two bytes (0x80 0x00): refused, not misframed.
    const reader = new MqttPacketReader(LIMIT);
    assert.throws(
      () => reader.push(Buffer.from([0xc0, 0x80, 0x00])),
      (err: unknown) => isProtocolError(err) && err.code === 'PROTO_BAD_MESSAGE' && /Invalid variable byte integer/.test(err.message),
    );
    const [ping] = new MqttPacketReader(LIMIT).push(Buffer.from([0xc0, 0x00]));
    assert.equal(ping?.cmd, 'pingreq');
  });

  it('refuses an oversized declared length whether the header arrives split or whole', () => {
    // A PUBLISH declaring 1 MB: refused once the fourth byte tells the length, not later.
    const header = Buffer.from([0x30, 0x80, 0x80, 0x40]);
    for (let i = 1; i < header.length; i++) {
      const reader = new MqttPacketReader(LIMIT);
      assert.deepEqual(reader.push(header.subarray(0, i)), []);
      throwsCode(() => reader.push(header.subarray(i)), 'LIMIT_PAYLOAD');
    }
    // Whole packets in one chunk behind a good one: refused too, the good one with them.
    const big = generate({ cmd: 'publish', topic: 't', qos: 0, dup: false, retain: false, payload: Buffer.alloc(LIMIT) });
    throwsCode(() => new MqttPacketReader(LIMIT).push(Buffer.concat([connect5, big])), 'LIMIT_PAYLOAD');
  });

  it('refuses a bad first byte before its length arrives, as the parser did', () => {
    // PINGREQ with a reserved flag bit set (MQTT-2.2.2-2), nothing after it yet.
    throwsCode(() => new MqttPacketReader(LIMIT).push(Buffer.from([0xc1])), 'PROTO_BAD_MESSAGE');
    // PUBLISH with both QoS bits set, declaring far over the limit: malformed, not too large.
    throwsCode(() => new MqttPacketReader(LIMIT).push(Buffer.from([0x36, 0xff, 0xff, 0x7f])), 'PROTO_BAD_MESSAGE');
  });

  // The readers of all connections share one mqtt-packet parser: one connection's bad
  // packet, or its protocol level, must not leak into another's.
  it('leaves the shared parser clean after a parse error on another connection', () => {
    const good = new MqttPacketReader(LIMIT);
    good.push(connect5);
    const bad = new MqttPacketReader(LIMIT);
    bad.push(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'b', keepalive: 0 }));
    // A SUBSCRIBE whose only topic claims more bytes than the packet has.
    throwsCode(() => bad.push(Buffer.from([0x82, 0x05, 0x00, 0x01, 0x00, 0x09, 0x61])), 'PROTO_BAD_MESSAGE');
    // An error in the middle of a CONNECT (the parser's settings become the packet it reads).
    const connectBad = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'z', keepalive: 0 }, { protocolVersion: 5 });
    connectBad[9] = connectBad[9]! | 0x01; // reserved connect flag (MQTT-3.1.2-3)
    throwsCode(() => new MqttPacketReader(LIMIT).push(connectBad), 'PROTO_BAD_MESSAGE');
    const [sub] = good.push(subscribe5);
    assert.equal(sub?.cmd, 'subscribe');
    assert.deepEqual(sub?.cmd === 'subscribe' && sub.subscriptions[0], { topic: 'apps/k/all', qos: 1, nl: false, rap: false, rh: 0 });
    // A connection that has not sent CONNECT decodes with no protocol level at all.
    const fresh = new MqttPacketReader(LIMIT);
    const [ping1] = fresh.push(ping);
    assert.equal(ping1?.cmd, 'pingreq');
  });

  // Our reliance on the parser's `settings` field (mqtt-reader.ts): if mqtt-packet stops
  // reading it, MQTT 5 properties stop decoding and this fails.
  it('decodes each connection at its own protocol level, interleaved on the shared parser', () => {
    const v5 = new MqttPacketReader(LIMIT);
    const v4 = new MqttPacketReader(LIMIT);
    v5.push(connect5);
    v4.push(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'd', keepalive: 0 }));
    const pub5 = generate({ cmd: 'publish', topic: 'a', qos: 0, dup: false, retain: false, payload: Buffer.from('p'), properties: { topicAlias: 3 } }, { protocolVersion: 5 });
    const pub4 = generate({ cmd: 'publish', topic: 'a', qos: 0, dup: false, retain: false, payload: Buffer.from('p') });
    for (let round = 0; round < 3; round++) {
      const [a] = v5.push(pub5);
      const [b] = v4.push(pub4);
      assert.equal(a?.cmd === 'publish' && a.properties?.topicAlias, 3);
      assert.equal(a?.cmd === 'publish' && a.payload.toString(), 'p');
      assert.equal(b?.cmd === 'publish' && b.properties, undefined);
      assert.equal(b?.cmd === 'publish' && b.payload.toString(), 'p');
    }
  });

  // Also the check that our wrap of the parser's `_parseString` (mqtt-reader.ts,
  // assumption 3) still sees every string: it fails loudly if mqtt-packet changes.
  describe('strings: well-formed UTF-8 without U+0000 (MQTT-1.5.3-1/-2, MQTT 5 MQTT-1.5.4-1/-2)', () => {
    const BAD: readonly (readonly [string, Buffer])[] = [
      ['not UTF-8', Buffer.from([0x61, 0xff])],
      ['a surrogate', Buffer.from([0xed, 0xbf, 0xbf])],
      ['an overlong form', Buffer.from([0xe0, 0x80, 0xaf])],
      ['a truncated sequence', Buffer.from([0x61, 0xe2, 0x82])],
      ['U+0000', Buffer.from([0x61, 0x00])],
    ];
    const connect = (version: 4 | 5, fields: { clientId?: string; username?: string; will?: string; userProperty?: string; password?: Buffer }): Buffer =>
      generate(
        {
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: version,
          clean: true,
          keepalive: 0,
          clientId: fields.clientId ?? 'client',
          username: fields.username ?? 'user',
          ...(fields.password !== undefined ? { password: fields.password } : {}),
          ...(fields.will !== undefined ? { will: { topic: fields.will, payload: Buffer.from('w'), qos: 0, retain: false } } : {}),
          ...(fields.userProperty !== undefined ? { properties: { userProperties: { [fields.userProperty]: 'v' } } } : {}),
        },
        { protocolVersion: version },
      );
    const afterConnect = (version: 4 | 5, packet: Buffer): Packet[] => {
      const reader = new MqttPacketReader(LIMIT);
      reader.push(connect(version, {}));
      return reader.push(packet);
    };
    const refused = (fn: () => unknown, inClientId: boolean): void => {
      assert.throws(fn, (err: unknown) => err instanceof MalformedStringError && err.code === 'PROTO_BAD_MESSAGE' && err.inClientId === inClientId);
    };

    for (const [what, bytes] of BAD) {
      it(`refuses ${what} in any string, and says when it was the client id`, () => {
        for (const version of [4, 5] as const) {
          refused(() => new MqttPacketReader(LIMIT).push(withString(connect(version, { clientId: 'MARK' }), 'MARK', bytes)), true);
          refused(() => new MqttPacketReader(LIMIT).push(withString(connect(version, { username: 'MARK' }), 'MARK', bytes)), false);
          refused(() => new MqttPacketReader(LIMIT).push(withString(connect(version, { will: 'MARK' }), 'MARK', bytes)), false);
          const sub = generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'MARK', qos: 1 }] }, { protocolVersion: version });
          refused(() => afterConnect(version, withString(sub, 'MARK', bytes)), false);
          const unsub = generate({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: ['MARK'] }, { protocolVersion: version });
          refused(() => afterConnect(version, withString(unsub, 'MARK', bytes)), false);
          const pub = generate({ cmd: 'publish', topic: 'MARK', qos: 1, messageId: 1, dup: false, retain: false, payload: Buffer.from([0xff, 0x00]) }, { protocolVersion: version });
          refused(() => afterConnect(version, withString(pub, 'MARK', bytes)), false);
        }
        refused(() => new MqttPacketReader(LIMIT).push(withString(connect(5, { userProperty: 'MARK' }), 'MARK', bytes)), false);
      });
    }

    it('takes U+FFFD and every other well-formed character, and a binary payload and password as they are', () => {
      const text = 'a\uFFFD€😀\u007f';
      const [p] = new MqttPacketReader(LIMIT).push(connect(4, { clientId: text, username: text, password: Buffer.from([0xff, 0x00]) }));
      assert.equal(p?.cmd === 'connect' && p.clientId, text);
      assert.deepEqual(p?.cmd === 'connect' && p.password, Buffer.from([0xff, 0x00]));
      const [pub] = afterConnect(5, generate({ cmd: 'publish', topic: text, qos: 0, dup: false, retain: false, payload: Buffer.from([0xff, 0x00, 0xfe]) }, { protocolVersion: 5 }));
      assert.equal(pub?.cmd === 'publish' && pub.topic, text);
    });

    it('refuses a bad string split across chunks too, and learns the level of a CONNECT it refuses', () => {
      const bytes = withString(connect(5, { clientId: 'MARK' }), 'MARK', Buffer.from([0xc3, 0x28]));
      const reader = new MqttPacketReader(LIMIT);
      refused(() => {
        for (const b of bytes) reader.push(Buffer.from([b]));
      }, true);
      // The connection answers the refused CONNECT at the level it named (CONNACK 0x85).
      assert.equal(reader.settings.protocolVersion, 5);
    });
  });

  it('refuses a PINGREQ with a non-zero remaining length (MQTT 3.1.1 §3.12, MQTT 5 §3.12)', () => {
    for (const version of [4, 5] as const) {
      const reader = new MqttPacketReader(LIMIT);
      reader.push(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, clientId: 'p', keepalive: 0 }, { protocolVersion: version }));
      assert.deepEqual(
        reader.push(Buffer.from([0xc0, 0x00])).map((p) => p.cmd),
        ['pingreq'],
      );
      throwsCode(() => reader.push(Buffer.from([0xc0, 0x01, 0x00])), 'PROTO_BAD_MESSAGE');
    }
  });

  it('counts the whole packet, fixed header included (MQTT 5 §2.1.4)', () => {
    assert.equal(packetBytes(0), 2);
    assert.equal(packetBytes(127), 129);
    assert.equal(packetBytes(128), 131);
    assert.equal(packetBytes(16_383), 16_386);
    assert.equal(packetBytes(16_384), 16_388);
    assert.equal(packetBytes(2_097_152), 2_097_157);
  });
});

/**
 * The packet with its string `text` (found by length prefix and content, once) replaced
 * by `bytes`, padded in front with "a" to the same length: no length (remaining length,
 * string length, properties length) changes.
 */
function withString(packet: Buffer, text: string, bytes: Buffer): Buffer {
  const content = Buffer.from(text);
  assert.ok(bytes.length <= content.length);
  const prefixed = Buffer.concat([Buffer.from([content.length >> 8, content.length & 0xff]), content]);
  const at = packet.indexOf(prefixed);
  assert.ok(at >= 0 && packet.indexOf(prefixed, at + 1) === -1, `the string ${text} once in the packet`);
  const out = Buffer.from(packet);
  out.fill(0x61, at + 2, at + prefixed.length);
  bytes.copy(out, at + prefixed.length - bytes.length);
  return out;
}
