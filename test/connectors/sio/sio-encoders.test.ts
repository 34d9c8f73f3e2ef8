import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { NativeSioEncoder, PomeloSioEncoder } from '../../../src/connectors/sio/sio-encoders.js';
import { asApiKey, asMessageId } from '../../../src/ids.js';
import type { StoredMessage } from '../../../src/store/store.js';

// socket.io's own packet encoder, the reference (resolved from socket.io, as the server uses it).
const parser = createRequire(createRequire(import.meta.url).resolve('socket.io'))('socket.io-parser') as {
  Encoder: new () => { encode(packet: { type: number; nsp: string; data: unknown[]; id?: number }): unknown[] };
};
const reference = new parser.Encoder();

function message(event: string, data: unknown): StoredMessage {
  return {
    apikey: asApiKey('k'),
    id: asMessageId(12),
    targeted: 1,
    target: { all: true, clientIds: [], tags: [] },
    event,
    data,
    ttlSeconds: 60,
    createdAt: 0,
    expiresAt: 60_000,
  };
}

describe('socket.io encoders', () => {
  it('native message: the shared JSON behind a per-socket ack id is what socket.io encodes for emit(event, payload, ack)', () => {
    const encoder = new NativeSioEncoder(() => undefined);
    for (const msg of [message('onMsg', { t: '推送', n: [1, null] }), message('connect', 'reserved'), message('e', undefined)]) {
      const push = encoder.encodeMessage(msg);
      assert.equal(push.kind, 'acked');
      if (push.kind !== 'acked') return;
      assert.deepEqual(push.jsonBytes, Buffer.from(push.json));
      const theirs = reference.encode({ type: 2, nsp: '/', data: [push.event, push.payload], id: 77 });
      assert.deepEqual(theirs, [`277${push.json}`]);
    }
    const reserved = encoder.encodeMessage(message('connect', 'r'));
    assert.ok(reserved.kind === 'acked' && reserved.event === 'message');
    assert.deepEqual(reserved.kind === 'acked' && reserved.payload, { id: 12, data: 'r', event: 'connect' });
  });

  it('native events and Pomelo pushes are whole packets, framed once', () => {
    const native = new NativeSioEncoder(() => undefined).encodeEvent('onAdd', { users: ['a'] });
    assert.ok(native.kind === 'packet');
    assert.deepEqual([native.packet], reference.encode({ type: 2, nsp: '/', data: ['onAdd', { users: ['a'] }] }));
    assert.equal(native.options.wsPreEncodedFrame.length, 1);
    assert.equal(Buffer.concat(native.options.wsPreEncodedFrame).subarray(2).toString(), `4${native.packet}`);
    const pomelo = new PomeloSioEncoder().encodeMessage(message('onMsg', { t: 1 }));
    assert.ok(pomelo.kind === 'packet');
    assert.equal(pomelo.packet, `2${JSON.stringify(['message', JSON.stringify({ route: 'onMsg', body: { msg: { t: 1 }, id: 12 } })])}`);
  });
});
