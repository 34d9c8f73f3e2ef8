import type { PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';
import { encodeEventFrame, encodeMessageFrame } from '../../protocol/json/frames.js';
import { WS_OPCODE, encodeServerFrame } from '../ws-frames.js';

/**
 * The plain WebSocket wire format: one JSON text message per push, produced as a whole
 * WebSocket frame (RFC 6455 §5.2, unmasked). The hub encodes a broadcast once per
 * encoder, so every WebSocket client is given the same frame Buffer, written to its
 * socket without `ws` framing it again (ws-frames.ts).
 */
export class WsEncoder implements PushEncoder<Buffer> {
  encodeMessage(msg: StoredMessage): Buffer {
    // Once per message, not per recipient: the extra copy of the JSON is not worth a second encoder.
    return encodeServerFrame(encodeMessageFrame(msg), WS_OPCODE.text);
  }

  encodeEvent(event: string, body: unknown): Buffer {
    return encodeServerFrame(encodeEventFrame(event, body), WS_OPCODE.text);
  }
}

/** One encoder for every WsConnector of the process: one hub group, one encoding per message. */
export const WS_ENCODER = new WsEncoder();
