import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generate, type Packet } from 'mqtt-packet';
import { MqttPacketReader, UnsupportedVersionError, packetBytes } from '../../../src/connectors/mqtt/mqtt-reader.js';
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

  it('counts the whole packet, fixed header included (MQTT 5 §2.1.4)', () => {
    assert.equal(packetBytes(0), 2);
    assert.equal(packetBytes(127), 129);
    assert.equal(packetBytes(128), 131);
    assert.equal(packetBytes(16_383), 16_386);
    assert.equal(packetBytes(16_384), 16_388);
    assert.equal(packetBytes(2_097_152), 2_097_157);
  });
});
