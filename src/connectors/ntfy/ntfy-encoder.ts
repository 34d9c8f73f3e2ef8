import type { PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';
import { encodeId, ntfyContent, type NtfyContent } from '../../protocol/ntfy/message.js';

/**
 * One message on its way to ntfy subscribers, shared by all of them. What they see
 * differs (the topic it shows under, the stream's format), so connections pick their
 * bytes here by a key; what is shared is computed once, on first use, and kept: the
 * message's ntfy fields, its ntfy id, and its bytes per format and topic (a stream of
 * 10,000 subscribers of one topic encodes a message once, as the other connectors do).
 * Those memos are the frame's own and the same for every reader, so sharing it stays safe.
 */
export class NtfyFrame {
  readonly msg: StoredMessage | undefined;
  #content: NtfyContent | undefined;
  #id: string | undefined;
  #bytes: Map<string, Buffer> | undefined;

  constructor(msg: StoredMessage | undefined) {
    this.msg = msg;
  }

  get content(): NtfyContent {
    return (this.#content ??= ntfyContent(this.msg?.data));
  }

  /** The message's ntfy id (one app, so one salt, per frame). */
  ntfyId(salt: string): string {
    return (this.#id ??= encodeId(salt, this.msg?.id ?? 0));
  }

  /** The bytes under `key` (format and topic), made by `make` the first time. */
  bytes(key: string, make: () => Buffer): Buffer {
    let b = this.#bytes?.get(key);
    if (b === undefined) {
      b = make();
      (this.#bytes ??= new Map()).set(key, b);
    }
    return b;
  }
}

/** Hub events that are not messages (presence, for managers) mean nothing to ntfy subscribers. */
const NOT_A_MESSAGE = new NtfyFrame(undefined);

export class NtfyEncoder implements PushEncoder<NtfyFrame> {
  encodeMessage(msg: StoredMessage): NtfyFrame {
    return new NtfyFrame(msg);
  }

  encodeEvent(): NtfyFrame {
    return NOT_A_MESSAGE;
  }
}

/** One encoder for the process: one hub group, one frame per message. */
export const NTFY_ENCODER = new NtfyEncoder();
