import type { PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';
import { ntfyContent, type NtfyContent } from '../../protocol/ntfy/message.js';

/**
 * One message on its way to ntfy subscribers, shared by all of them. What they see
 * differs (the topic it shows under, the stream's format), so each connection encodes
 * its own line; what they share is computed once here, on first use, and kept: the
 * message's ntfy fields and its JSON line per topic. Those memos are the frame's own
 * and the same for every reader, so sharing the frame stays safe.
 */
export class NtfyFrame {
  readonly msg: StoredMessage | undefined;
  #content: NtfyContent | undefined;
  #lines: Map<string, string> | undefined;

  constructor(msg: StoredMessage | undefined) {
    this.msg = msg;
  }

  get content(): NtfyContent {
    return (this.#content ??= ntfyContent(this.msg?.data));
  }

  /** The JSON line under `topic`, made by `make` the first time. */
  line(topic: string, make: () => string): string {
    let line = this.#lines?.get(topic);
    if (line === undefined) {
      line = make();
      (this.#lines ??= new Map()).set(topic, line);
    }
    return line;
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
