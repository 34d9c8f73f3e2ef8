import { encodePushPackage } from '../../protocol/pomelo/message.js';
import { encodeProtobuf, hasProto, type ParsedProtos } from '../../protocol/pomelo/protobuf.js';
import type { RouteDictionary } from '../../protocol/pomelo/dictionary.js';
import type { PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';

/**
 * Pomelo's hybrid wire format: a whole DATA package per push, shared by TCP and
 * WebSocket connections (both carry the same package bytes).
 */
export class HybridEncoder implements PushEncoder<Buffer> {
  readonly #dictionary: RouteDictionary | undefined;
  readonly #serverProtos: ParsedProtos | undefined;

  constructor(dictionary: RouteDictionary | undefined, serverProtos: ParsedProtos | undefined) {
    this.#dictionary = dictionary;
    this.#serverProtos = serverProtos;
  }

  /** Seed clients read `body.msg`; `id` lets them ack and resume (docs/pomelo.md). */
  encodeMessage(msg: StoredMessage): Buffer {
    return this.encodeEvent(msg.event, { msg: msg.data, id: msg.id });
  }

  encodeEvent(event: string, body: unknown): Buffer {
    // spec §8.2: a push route in the dictionary goes out as its 2-byte code.
    const code = this.#dictionary?.routeToCode[event];
    return encodePushPackage(code ?? event, this.encodeBody(event, body));
  }

  /** spec §9.1: protobuf when the server protos name the route, JSON otherwise. */
  encodeBody(route: string, body: unknown): Buffer {
    if (this.#serverProtos !== undefined && hasProto(this.#serverProtos, route)) {
      // A message the proto cannot express goes out with an empty body, as the reference does.
      return encodeProtobuf(this.#serverProtos, route, body) ?? Buffer.alloc(0);
    }
    return Buffer.from(JSON.stringify(body));
  }
}
