import type { PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';
import { encodeSseEvent, encodeSseMessage } from '../../protocol/json/sse.js';

/**
 * One encoded SSE event, shared by every SSE client it goes to. `id` is carried
 * beside the bytes so that each connection can ack what it wrote without parsing.
 */
export interface SseFrame {
  readonly bytes: Buffer;
  /** The message id; undefined for events that are not stored messages. */
  readonly id: number | undefined;
}

/** Server-Sent Events: `id:`, `event:` and one `data:` line of JSON per message. */
export class SseEncoder implements PushEncoder<SseFrame> {
  encodeMessage(msg: StoredMessage): SseFrame {
    return { bytes: encodeSseMessage(msg), id: msg.id };
  }

  encodeEvent(event: string, body: unknown): SseFrame {
    return { bytes: encodeSseEvent(event, body), id: undefined };
  }
}

/** One encoder for every SseConnector of the process: one hub group, one encoding per message. */
export const SSE_ENCODER = new SseEncoder();
