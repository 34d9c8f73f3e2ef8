import type { StoredMessage } from '../store/store.js';
import type { Member } from './members.js';
import type { EnteredAs } from './observer.js';

/**
 * Timestamps a connection keeps for its whole life are stored as milliseconds since
 * this origin: small integers, where a `Date.now()` value is a boxed 16-byte number on
 * 64-bit Node (past the small-integer range) — per connection, that adds up. They stay
 * small for 24 days of uptime; later ones are boxed again, which costs memory, not
 * correctness.
 */
const TIME_ORIGIN = Date.now();

/** `ms` (whole epoch milliseconds) as a small number to keep. */
export function compactTime(ms: number): number {
  return smallInteger(ms - TIME_ORIGIN);
}

/**
 * `n` (a whole number) as V8 keeps it unboxed when it fits in 32 bits. Arithmetic on
 * boxed numbers (every `Date.now()` value) gives a boxed result even when it is small,
 * and a field that holds one costs a 16-byte heap number per object: `| 0` makes it a
 * small integer again. Past 32 bits, `n` as it is (correct, boxed).
 */
export function smallInteger(n: number): number {
  return n >= -0x80000000 && n <= 0x7fffffff ? n | 0 : n;
}

/**
 * `flags` with `bit` set or cleared. Objects kept per connection pack their booleans
 * into one small integer this way: one slot instead of one per flag.
 */
export function withFlag(flags: number, bit: number, on: boolean): number {
  return on ? flags | bit : flags & ~bit;
}

/** `flags` with the field of `mask` bits at bit `at` set to `value` (cut to the mask). */
export function withBits(flags: number, at: number, mask: number, value: number): number {
  return (flags & ~(mask << at)) | ((value & mask) << at);
}

/** Epoch milliseconds back from `compactTime`. */
export function expandTime(compact: number): number {
  return compact + TIME_ORIGIN;
}

/** The wire protocols a connection can speak; shown to managers and in metrics. */
export const CONNECTOR_NAMES = ['hybrid-tcp', 'hybrid-ws', 'sio', 'mqtt', 'ws', 'sse', 'ntfy'] as const;
export type ConnectorName = (typeof CONNECTOR_NAMES)[number];

/**
 * Turns what the hub sends into one wire format's bytes. There is one encoder per
 * format (not per connection): the hub encodes a broadcast once per encoder among its
 * recipients and writes the same value to every connection with that encoder.
 *
 * Encoded values are shared by all recipients and must never be mutated.
 */
export interface PushEncoder<E> {
  /**
   * A stored message as the client receives it. Throws UnfitMessageError when the wire
   * format cannot carry it (the hub then skips it for every connection of this encoder).
   */
  encodeMessage(msg: StoredMessage): E;
  /** A hub event that is not a stored message (presence events to managers). */
  encodeEvent(event: string, body: unknown): E;
}

/**
 * Why a connection could not take a message (docs/delivery.md, "Skipped"): stable codes,
 * shown in the message's receipt.
 */
export const SKIP_REASONS = {
  /** MQTT 5: the PUBLISH is over the Maximum Packet Size the client announced (MQTT-3.1.2-25). */
  clientMaxPacket: 'LIMIT_CLIENT_MAX_PACKET',
  /** Pomelo protobuf: a proto is configured for the message's route and the message does not fit it. */
  protoDoesNotFit: 'PROTO_DOES_NOT_FIT',
  /** The wire format cannot carry the message for another reason (its encoder failed). */
  encodeFailed: 'PROTO_ENCODE_FAILED',
} as const;
export type SkipReason = (typeof SKIP_REASONS)[keyof typeof SKIP_REASONS];

/**
 * Thrown by `PushEncoder.encodeMessage` for a message its wire format cannot carry:
 * every connection with that encoder skips the message (the hub records why); other
 * formats still get it.
 */
export class UnfitMessageError extends Error {
  override readonly name = 'UnfitMessageError';
  constructor(
    readonly code: SkipReason,
    message: string,
  ) {
    super(message);
  }
}

/** Why a connection is being closed by the server; stable codes, see docs. */
export const CLOSE_REASONS = {
  replaced: 'replaced',
  slowConsumer: 'slow consumer',
  shutdown: 'server shutting down',
  appDeleted: 'app deleted',
  heartbeatTimeout: 'heartbeat timeout',
  handshakeTimeout: 'handshake timeout',
  protocolError: 'protocol error',
  kicked: 'kick',
} as const;
export type CloseReason = (typeof CLOSE_REASONS)[keyof typeof CLOSE_REASONS] | (string & {});

/**
 * One live transport connection, as the hub sees it. Connectors implement it; the
 * hub never sees a socket.
 */
export interface Connection<E = unknown> {
  /** Unique within this node for the life of the process. */
  readonly id: number;
  readonly connector: ConnectorName;
  readonly encoder: PushEncoder<E>;
  readonly remoteAddress: string;
  /** Milliseconds since the epoch. */
  readonly connectedAt: number;
  /** Bytes accepted by `write` and not yet handed to the kernel. */
  readonly bufferedBytes: number;
  /** True once the connection is closing or closed; `write` then does nothing. */
  readonly closed: boolean;
  /**
   * Writes without waiting; the slow-consumer policy watches `bufferedBytes`. Returns a
   * reason when this connection cannot take a stored message (a limit the peer set, such
   * as MQTT's Maximum Packet Size): nothing was written, and the hub records the message
   * as skipped for this client and moves on to the next. Nothing (undefined) otherwise.
   * The check must be made here, synchronously, not when a queued message is sent later.
   */
  write(encoded: E): SkipReason | void;
  /** Tells the peer why (the protocol's own way: kick, close code, DISCONNECT) and closes. */
  close(reason: CloseReason): void;
  /**
   * Owned by the hub, as `wheelSlot` is by the wheel: the member the connection entered
   * as while the hub counts it — unset before it enters, and again once it leaves or is
   * replaced. A slot here instead of a map keyed by connection: a hash-table entry per
   * connection costs several times this one field (BENCHMARKS.md, idle memory).
   * Connectors declare it (initialised, so every connection has the same shape) and
   * never write it.
   */
  hubMember?: Member | undefined;
  /** Owned by the hub's observer: who the connection entered as, kept after it leaves for the close report. */
  enteredAs?: EnteredAs | undefined;
}

let nextConnectionId = 1;
/** Node-unique connection ids, shared by every connector. */
export function allocateConnectionId(): number {
  return nextConnectionId++;
}
