import type { PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';
import { encodePomeloSioPush } from './pomelo-sio-frame.js';
import { encodeEventPacket } from './sio-internals.js';

/**
 * What the two socket.io encoders produce. The hub encodes a broadcast once per
 * encoder and writes the same value to every socket of that format; values are
 * shared and never mutated.
 */
export type SioPush = PomeloSioPush | NativeSioPush;

/** A push in the Pomelo sioconnector framing: the whole socket.io packet, encoded once. */
export interface PomeloSioPush {
  readonly api: 'pomelo';
  /** `2["message","{\"route\":…,\"body\":…}"]`, written to engine.io as is. */
  readonly packet: string;
}

/**
 * A push on the native API: a socket.io event. socket.io gives every `emit` with a
 * callback its own per-socket ack id, so the packet cannot be encoded once for all
 * sockets without reaching into socket.io's ack bookkeeping; the payload object and
 * the ack function are built once per message, and socket.io serialises per socket.
 */
export interface NativeSioPush {
  readonly api: 'native';
  readonly event: string;
  readonly payload: unknown;
  /** Called by socket.io with `this` = the server-side socket when the client acks. */
  readonly ack: NativeAck | undefined;
}

export type NativeAck = (this: unknown, ...args: unknown[]) => void;

/** The Pomelo framing (spec §11.4): `message` with `{"route","body"}` as a JSON string. */
export class PomeloSioEncoder implements PushEncoder<SioPush> {
  /** Same body as the hybrid encoder: seed clients read `body.msg`; `id` lets them ack and resume. */
  encodeMessage(msg: StoredMessage): SioPush {
    return this.encodeEvent(msg.event, { msg: msg.data, id: msg.id });
  }

  encodeEvent(event: string, body: unknown): SioPush {
    return { api: 'pomelo', packet: encodeEventPacket('message', encodePomeloSioPush(event, body)) };
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
    if (SIO_RESERVED_EVENTS.has(msg.event)) {
      return { api: 'native', event: RESERVED_FALLBACK_EVENT, payload: { id, data: msg.data, event: msg.event }, ack };
    }
    return { api: 'native', event: msg.event, payload: { id, data: msg.data }, ack };
  }

  encodeEvent(event: string, body: unknown): SioPush {
    return { api: 'native', event: SIO_RESERVED_EVENTS.has(event) ? RESERVED_FALLBACK_EVENT : event, payload: body, ack: undefined };
  }
}
