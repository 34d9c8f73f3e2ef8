import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WS_ENCODER } from '../../../src/connectors/ws/ws-encoder.js';
import { WS_OPCODE, framePayload, frameOpcode } from '../../../src/connectors/ws-frames.js';
import { encodeEventFrame, encodeMessageFrame } from '../../../src/protocol/json/frames.js';
import { asApiKey, asMessageId } from '../../../src/ids.js';
import type { StoredMessage } from '../../../src/store/store.js';

describe('WsEncoder', () => {
  it('produces whole text frames around the JSON frames of protocol/json', () => {
    const msg: StoredMessage = {
      apikey: asApiKey('k'),
      id: asMessageId(9),
      targeted: 1,
      target: { all: true, clientIds: [], tags: [] },
      event: 'onMsg',
      data: { t: 'x'.repeat(300) },
      ttlSeconds: 60,
      createdAt: 0,
      expiresAt: 60_000,
    };
    const frame = WS_ENCODER.encodeMessage(msg);
    assert.equal(frameOpcode(frame), WS_OPCODE.text);
    assert.equal(frame[1], 126, '16-bit length for a payload over 125 bytes');
    assert.deepEqual(framePayload(frame), encodeMessageFrame(msg));
    assert.deepEqual(framePayload(WS_ENCODER.encodeEvent('onAdd', { users: [] })), encodeEventFrame('onAdd', { users: [] }));
  });
});
