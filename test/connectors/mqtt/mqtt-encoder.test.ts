import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { generate, writeToStream } from 'mqtt-packet';
import { MqttEncoder, packetIdOffset } from '../../../src/connectors/mqtt/mqtt-encoder.js';
import { asApiKey, asClientId, asMessageId } from '../../../src/ids.js';
import type { StoredMessage } from '../../../src/store/store.js';

function message(data: unknown, clientIds: string[] = []): StoredMessage {
  return {
    apikey: asApiKey('k'),
    id: asMessageId(42),
    targeted: 1,
    target: { all: clientIds.length === 0, clientIds: clientIds.map(asClientId), tags: [] },
    event: 'onMsg',
    data,
    ttlSeconds: 60,
    createdAt: 0,
    expiresAt: 60_000,
  };
}

describe('MqttEncoder', () => {
  const encoder = new MqttEncoder();

  it("leaves mqtt-packet's number cache (65,536 Buffers, ~7 MB a process) ungenerated", () => {
    const numbers = createRequire(import.meta.url)('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> };
    assert.equal(writeToStream.cacheNumbers, false);
    // Packets with a packet id write it as a number: with the cache on, the first one builds it.
    assert.deepEqual([...generate({ cmd: 'puback', messageId: 513 })], [0x40, 2, 2, 1]);
    assert.equal(Object.keys(numbers.cache).length, 0);
  });

  it('encodes the topic-independent payload once: {"id","event","data"}, events without id', () => {
    const push = encoder.encodeMessage(message({ t: '推送' }));
    assert.deepEqual(JSON.parse(push.payload.toString('utf8')), { id: 42, event: 'onMsg', data: { t: '推送' } });
    const event = encoder.encodeEvent('onAdd', { users: ['a'] });
    assert.equal(event.message, undefined);
    assert.deepEqual(JSON.parse(event.payload.toString('utf8')), { event: 'onAdd', data: { users: ['a'] } });
  });

  // The header fast path relies on how mqtt-packet writes a PUBLISH (payload last, one
  // buffer) and on the packet id's place (MQTT §3.3.2). This fails loudly if either changes.
  it('header + payload equals mqtt-packet generate() byte for byte, at varint boundaries, with the packet id patched in', () => {
    const topics = ['apps/k/all', 'apps/k/tags/ニュース', `apps/k/clients/${'c'.repeat(200)}`];
    // Payload sizes around the remaining-length varint steps (127, 16 383) and beyond.
    const sizes = [0, 1, 100, 110, 127, 128, 16_300, 16_383, 16_400, 200_000];
    for (const v5 of [false, true]) {
      for (const qos of [0, 1] as const) {
        for (const topic of topics) {
          for (const size of sizes) {
            const push = encoder.encodeMessage(message('x'.repeat(size)));
            const header = push.header(v5, qos, topic);
            let bytes = header;
            if (qos === 1) {
              bytes = Buffer.from(header);
              bytes.writeUInt16BE(0xbeef, packetIdOffset(bytes, v5));
            }
            const expected = generate(
              { cmd: 'publish', topic, qos, dup: false, retain: false, payload: push.payload, ...(qos === 1 ? { messageId: 0xbeef } : {}) },
              { protocolVersion: v5 ? 5 : 4 },
            );
            assert.deepEqual(Buffer.concat([bytes, push.payload]), expected, `v5=${v5} qos=${qos} topic=${topic.length} size=${size}`);
          }
        }
      }
    }
  });

  it('reuses the header while the topic stays the same', () => {
    const push = encoder.encodeMessage(message(1));
    const a = push.header(false, 1, 'apps/k/all');
    assert.equal(push.header(false, 1, 'apps/k/all'), a);
    assert.notEqual(push.header(true, 1, 'apps/k/all'), a);
    assert.notDeepEqual(push.header(false, 1, 'apps/k/clients/x'), a);
  });

  it('knows which client ids a message names, also for long lists', () => {
    const few = encoder.encodeMessage(message(1, ['a', 'b']));
    assert.equal(few.targetsClient('a'), true);
    assert.equal(few.targetsClient('c'), false);
    const many = encoder.encodeMessage(message(1, Array.from({ length: 100 }, (_, i) => `c${i}`)));
    assert.equal(many.targetsClient('c99'), true);
    assert.equal(many.targetsClient('c100'), false);
    assert.equal(encoder.encodeMessage(message(1)).targetsClient('a'), false);
  });
});
