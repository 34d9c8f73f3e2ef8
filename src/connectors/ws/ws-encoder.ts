import type { PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';
import { encodeEventFrame, encodeMessageFrame } from '../../protocol/json/frames.js';

/**
 * The plain WebSocket wire format: one JSON text frame per push. The hub encodes a
 * broadcast once per encoder, so every WebSocket client is given the same Buffer.
 */
export class WsEncoder implements PushEncoder<Buffer> {
  encodeMessage(msg: StoredMessage): Buffer {
    return encodeMessageFrame(msg);
  }

  encodeEvent(event: string, body: unknown): Buffer {
    return encodeEventFrame(event, body);
  }
}

/** One encoder for every WsConnector of the process: one hub group, one encoding per message. */
export const WS_ENCODER = new WsEncoder();
