import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HybridEncoder } from '../../../src/connectors/hybrid/hybrid-encoder.js';
import { WS_OPCODE, framePayload, frameOpcode } from '../../../src/connectors/ws-frames.js';
import { decodeSinglePackage, PackageType } from '../../../src/protocol/pomelo/package.js';
import { decodeMessage } from '../../../src/protocol/pomelo/message.js';
import { asApiKey, asMessageId } from '../../../src/ids.js';
import type { StoredMessage } from '../../../src/store/store.js';

function message(id: number, data: unknown): StoredMessage {
  return {
    apikey: asApiKey('k'),
    id: asMessageId(id),
    targeted: 1,
    target: { all: true, clientIds: [], tags: [] },
    event: 'onMsg',
    data,
    ttlSeconds: 60,
    createdAt: 0,
    expiresAt: 60_000,
  };
}

function body(pkg: Buffer): unknown {
  const p = decodeSinglePackage(pkg, { maxPackage: 1 << 20 });
  assert.equal(p.type, PackageType.DATA);
  return JSON.parse(decodeMessage(p.body).body.toString('utf8')) as unknown;
}

describe('HybridEncoder', () => {
  it('TCP gets the DATA package; WebSocket the same package as one unmasked binary frame', () => {
    const encoder = new HybridEncoder(undefined, undefined);
    const msg = message(7, { t: '推送' });
    const pkg = encoder.encodeMessage(msg);
    assert.deepEqual(body(pkg), { msg: { t: '推送' }, id: 7 });
    const frame = encoder.ws.encodeMessage(msg);
    assert.equal(frameOpcode(frame), WS_OPCODE.binary);
    assert.equal(frame[0]! & 0x80, 0x80, 'FIN');
    assert.equal(frame[1]! & 0x80, 0, 'a server frame is not masked');
    assert.deepEqual(framePayload(frame), pkg);
    const event = encoder.ws.encodeEvent('onAdd', { users: ['a'] });
    assert.deepEqual(framePayload(event), encoder.encodeEvent('onAdd', { users: ['a'] }));
  });

  it('serialises a message once for both groups, and never hands one message the bytes of another', () => {
    const encoder = new HybridEncoder(undefined, undefined);
    const a = message(1, 'a');
    const b = message(2, 'b');
    const first = encoder.encodeMessage(a);
    assert.equal(encoder.encodeMessage(a), first, 'the same message: the same Buffer');
    assert.deepEqual(framePayload(encoder.ws.encodeMessage(a)), first);
    assert.deepEqual(body(encoder.encodeMessage(b)), { msg: 'b', id: 2 });
    // An equal-looking but distinct message object is encoded on its own.
    const a2 = message(1, 'changed');
    assert.deepEqual(body(encoder.encodeMessage(a2)), { msg: 'changed', id: 1 });
    assert.deepEqual(body(framePayload(encoder.ws.encodeMessage(b))), { msg: 'b', id: 2 });
  });
});
