import type { PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';
import { encodePomeloSioPush } from './pomelo-sio-frame.js';
import { encodeEventPacket, preframedOptions, type PreframedOptions } from './sio-internals.js';

/**
 * What the two socket.io encoders produce. The hub encodes a broadcast once per
 * encoder and writes the same value to every socket of that format; values are
 * shared and never mutated.
 */
export type SioPush = SioPacketPush | SioAckedPush;

/**
 * A whole socket.io packet, the same for every recipient: Pomelo-framed pushes, and
 * native events without an ack (presence to managers). Encoded once, with its
 * WebSocket frame built once (sio-internals.ts `preframedOptions`).
 */
export interface SioPacketPush {
  readonly kind: 'packet';
  /** E.g. `2["message","{\"route\":…,\"body\":…}"]`, handed to engine.io as is. */
  readonly packet: string;
  readonly options: PreframedOptions;
}

/**
 * A native push: the event named after the message, `{id, data}`, with an ack
 * callback. socket.io gives every such packet its own per-socket ack id, so the
 * packet differs per socket only in that id: the `[event, payload]` JSON is encoded
 * once (string and UTF-8 bytes) and each socket gets a few bytes of head before it
 * (sio-internals.ts `writeAckedEvent`). `event` and `payload` are kept for
 * `socket.emit`, should socket.io's internals ever be missing.
 */
export interface SioAckedPush {
  readonly kind: 'acked';
  readonly event: string;
  readonly payload: unknown;
  /** `JSON.stringify([event, payload])`, as socket.io's parser writes it. */
  readonly json: string;
  readonly jsonBytes: Buffer;
  /** Called by socket.io with `this` = the server-side socket when the client acks. */
  readonly ack: NativeAck;
}

export type NativeAck = (this: unknown, ...args: unknown[]) => void;

/** The Pomelo framing (docs/pomelo-protocol.md §11.4): `message` with `{"route","body"}` as a JSON string. */
export class PomeloSioEncoder implements PushEncoder<SioPush> {
  /** Same body as the hybrid encoder: seed clients read `body.msg`; `id` lets them ack and resume. */
  encodeMessage(msg: StoredMessage): SioPush {
    return this.encodeEvent(msg.event, { msg: msg.data, id: msg.id });
  }

  encodeEvent(event: string, body: unknown): SioPush {
    const packet = encodeEventPacket('message', encodePomeloSioPush(event, body));
    return { kind: 'packet', packet, options: preframedOptions(packet) };
  }
}

/**
 * Event names socket.io will not emit (`socket.emit` throws for them) and that its
 * clients treat as their own. A message published under one of them reaches native
 * clients as event `message` with `{id, data, event}` (docs/connectors.md).
 */
export const SIO_RESERVED_EVENTS: ReadonlySet<string> = new Set([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
]);

/** Where a native push whose event name is reserved goes instead. */
export const RESERVED_FALLBACK_EVENT = 'message';

/**
 * The native API: a message is the event named after it with `{id, data}` and an ack
 * callback; presence events carry their body as is, without a callback.
 */
export class NativeSioEncoder implements PushEncoder<SioPush> {
  readonly #onAck: (socket: unknown, id: number) => void;

  /** @param onAck called when a client acks message `id` through the callback. */
  constructor(onAck: (socket: unknown, id: number) => void) {
    this.#onAck = onAck;
  }

  encodeMessage(msg: StoredMessage): SioPush {
    const id = msg.id;
    const onAck = this.#onAck;
    // One function per message, shared by every recipient: socket.io calls it with
    // `this` bound to the socket that answered, which tells us whose ack it is.
    const ack: NativeAck = function (this: unknown) {
      onAck(this, id);
    };
    const reserved = SIO_RESERVED_EVENTS.has(msg.event);
    const event = reserved ? RESERVED_FALLBACK_EVENT : msg.event;
    const payload = reserved ? { id, data: msg.data, event: msg.event } : { id, data: msg.data };
    const json = JSON.stringify([event, payload]);
    return { kind: 'acked', event, payload, json, jsonBytes: Buffer.from(json, 'utf8'), ack };
  }

  encodeEvent(event: string, body: unknown): SioPush {
    const name = SIO_RESERVED_EVENTS.has(event) ? RESERVED_FALLBACK_EVENT : event;
    // socket.io-parser: the type digit, then JSON.stringify of [event, ...args] (main namespace, no ack id).
    const packet = `2${JSON.stringify([name, body])}`;
    return { kind: 'packet', packet, options: preframedOptions(packet) };
  }
}
