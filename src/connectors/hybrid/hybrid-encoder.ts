import { encodePushPackage } from '../../protocol/pomelo/message.js';
import { encodeProtobuf, hasProto, type ParsedProtos } from '../../protocol/pomelo/protobuf.js';
import type { RouteDictionary } from '../../protocol/pomelo/dictionary.js';
import { SKIP_REASONS, UnfitMessageError, type PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';
import { WS_OPCODE, encodeServerFrame } from '../ws-frames.js';

/**
 * Pomelo's hybrid wire format: a whole DATA package per push, written as is to TCP
 * connections. WebSocket connections get the same package inside a binary frame,
 * from the sibling encoder `ws` (its own hub group, so the frame too is built once).
 */
export class HybridEncoder implements PushEncoder<Buffer> {
  readonly #dictionary: RouteDictionary | undefined;
  readonly #serverProtos: ParsedProtos | undefined;
  /** The package inside a WebSocket frame (docs/pomelo-protocol.md §2.3: one package per binary message). */
  readonly ws: HybridWsEncoder;
  // The hub encodes a broadcast once per encoder, TCP then WebSocket (or the other way):
  // the last message's package is kept so the WebSocket frame reuses it instead of
  // serialising the body a second time. Messages are immutable, so identity is enough.
  #lastMsg: StoredMessage | undefined;
  #lastPackage: Buffer | undefined;

  constructor(dictionary: RouteDictionary | undefined, serverProtos: ParsedProtos | undefined) {
    this.#dictionary = dictionary;
    this.#serverProtos = serverProtos;
    this.ws = new HybridWsEncoder(this);
  }

  /**
   * Seed clients read `body.msg`; `id` lets them ack and resume (docs/pomelo.md). A
   * message that does not fit the proto configured for its route is not sent with an
   * empty body (what `encodeBody` does for replies, as the reference does): the client
   * could not tell it from a real message and would ack it. It throws
   * UnfitMessageError, and the hub records it skipped (PROTO_DOES_NOT_FIT) for these
   * connections.
   */
  encodeMessage(msg: StoredMessage): Buffer {
    if (msg === this.#lastMsg) return this.#lastPackage!;
    const body = { msg: msg.data, id: msg.id };
    const protos = this.#serverProtos;
    let pkg: Buffer;
    if (protos !== undefined && hasProto(protos, msg.event)) {
      const encoded = encodeProtobuf(protos, msg.event, body);
      if (encoded === null) {
        throw new UnfitMessageError(SKIP_REASONS.protoDoesNotFit, `message ${msg.id} does not fit the proto of route "${msg.event}"`);
      }
      pkg = encodePushPackage(this.#dictionary?.routeToCode[msg.event] ?? msg.event, encoded);
    } else {
      pkg = this.encodeEvent(msg.event, body);
    }
    this.#lastMsg = msg;
    this.#lastPackage = pkg;
    return pkg;
  }

  encodeEvent(event: string, body: unknown): Buffer {
    // docs/pomelo-protocol.md §8.2: a push route in the dictionary goes out as its 2-byte code.
    const code = this.#dictionary?.routeToCode[event];
    return encodePushPackage(code ?? event, this.encodeBody(event, body));
  }

  /** docs/pomelo-protocol.md §9.1: protobuf when the server protos name the route, JSON otherwise. */
  encodeBody(route: string, body: unknown): Buffer {
    if (this.#serverProtos !== undefined && hasProto(this.#serverProtos, route)) {
      // A message the proto cannot express goes out with an empty body, as the reference does.
      return encodeProtobuf(this.#serverProtos, route, body) ?? Buffer.alloc(0);
    }
    return Buffer.from(JSON.stringify(body));
  }
}

/**
 * Hybrid over WebSocket: the package as a whole binary WebSocket frame (RFC 6455
 * §5.2, unmasked), written to every socket as the same Buffer (ws-frames.ts).
 */
export class HybridWsEncoder implements PushEncoder<Buffer> {
  readonly #packages: HybridEncoder;

  constructor(packages: HybridEncoder) {
    this.#packages = packages;
  }

  encodeMessage(msg: StoredMessage): Buffer {
    return encodeServerFrame(this.#packages.encodeMessage(msg), WS_OPCODE.binary);
  }

  encodeEvent(event: string, body: unknown): Buffer {
    return encodeServerFrame(this.#packages.encodeEvent(event, body), WS_OPCODE.binary);
  }
}
