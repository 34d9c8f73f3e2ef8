import type { SetLinks } from '../linked-set.js';
import type { Member } from '../../hub/members.js';
import type { EnteredAs } from '../../hub/observer.js';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import type { Logger } from '../../log.js';
import { asClientId, type ApiKey } from '../../ids.js';
import { HubError, type Hub } from '../../hub/hub.js';
import { CLOSE_REASONS, allocateConnectionId, type CloseReason, type Connection, compactTime, expandTime, withBits } from '../../hub/connection.js';
import { PEER_CLOSED } from '../../hub/observer.js';
import type { Target } from '../../store/store.js';
import { isProtocolError } from '../../protocol/errors.js';
import {
  decodeJson,
  encodeServerFrameBytes,
  readRef,
  toClientFrame,
  type ClientFrame,
  type EnterClientFrame,
  type EnterManagerFrame,
  type JsonLimits,
  type PushFrame,
  type Ref,
  type ServerFrame,
} from '../../protocol/json/frames.js';
import type { DeadlineWheel, WheelItem } from '../deadline-wheel.js';
import { WS_ENCODER, type WsEncoder } from './ws-encoder.js';
import { sendPreframed } from '../ws-frames.js';
import { LimitError, admissionEntered, admissionIdle, countRequest, releaseAdmission, type AdmissionTicket } from '../admission.js';

/** What every connection of one WsConnector shares (one object, not one per connection). */
export interface WsContext {
  readonly hub: Hub;
  readonly log: Logger;
  /** Enter deadlines. */
  readonly wheel: DeadlineWheel<EnterDeadline>;
  readonly limits: JsonLimits;
  readonly maxBadFrames: number;
  readonly enterTimeoutMs: number;
  /** The transport of `conn` closed: forget it. */
  readonly removed: (conn: WsConnection) => void;
}

/** A server-side WebSocket with the connection it carries. */
const OWNER = Symbol('ws connection');
interface OwnedWebSocket extends WebSocket {
  [OWNER]?: WsConnection;
}

/** WebSocket close codes (RFC 6455 §7.4.1) by why we close. */
export const WS_CLOSE = {
  normal: 1000,
  /** §7.4.1: "a type of data it cannot accept (e.g., … binary data)". */
  unsupported: 1003,
  policy: 1008,
  tooBig: 1009,
} as const;

/**
 * How each server-side close reason reaches the peer: a `kick` frame and a close code,
 * or `terminate` when nothing can get through (a full buffer, a peer that stopped
 * answering pings). Reasons not listed close with 1000.
 */
const CLOSE_BY_REASON: Readonly<Record<string, number | 'terminate'>> = {
  [CLOSE_REASONS.replaced]: WS_CLOSE.normal,
  [CLOSE_REASONS.shutdown]: WS_CLOSE.normal,
  [CLOSE_REASONS.appDeleted]: WS_CLOSE.normal,
  [CLOSE_REASONS.kicked]: WS_CLOSE.normal,
  [CLOSE_REASONS.handshakeTimeout]: WS_CLOSE.policy,
  [CLOSE_REASONS.protocolError]: WS_CLOSE.policy,
  [CLOSE_REASONS.slowConsumer]: 'terminate',
  [CLOSE_REASONS.heartbeatTimeout]: 'terminate',
};

export const TOO_MANY_BAD_FRAMES = 'too many bad frames';

const State = { NEW: 0, ENTERING: 1, ENTERED: 2, CLOSED: 3 } as const;
type State = (typeof State)[keyof typeof State];
/** `#stateAndBadFrames`: the State in the low two bits, the bad frame count above them. */
const STATE_BITS = 3;
const BAD_FRAMES_SHIFT = 2;

const TEXT = { binary: false } as const;
/** RFC 6455 §5.5: a close frame's body is at most 125 bytes, 2 of them the code. */
const MAX_CLOSE_REASON_BYTES = 123;

/**
 * One plain WebSocket (JSON) connection: the one place where its frames become hub
 * calls (docs/conventions.md §4), and the way the hub's writes and closes reach the socket.
 */
export class WsConnection implements Connection<Buffer> {
  // Methods are TypeScript-`private`, not `#`-private: a class with `#` methods costs a
  // brand slot in every instance (hybrid-connection.ts).
  readonly id = allocateConnectionId();
  /** The hub's and its observer's slots (Connection.hubMember, .enteredAs). */
  hubMember: Member | undefined = undefined;
  enteredAs: EnteredAs | undefined = undefined;
  // A getter, not a field: one less slot per connection.
  get connector(): 'ws' {
    return 'ws';
  }
  readonly #connectedAt = compactTime(Date.now());
  get connectedAt(): number {
    return expandTime(this.#connectedAt);
  }
  readonly remoteAddress: string;
  /**
   * The enter deadline's place in the wheel, only until the connection enters or closes:
   * an entered one is kept alive by the ping sweep, so its three wheel fields would be
   * dead weight in every idle connection.
   */
  #enterDeadline: EnterDeadline | undefined;
  /** The connector's LinkedSet of open connections owns these. */
  setNext: SetLinks | undefined = undefined;
  setPrev: SetLinks | undefined = undefined;
  /**
   * The socket's byte count at the keep-alive sweep's last ping, -1 before the first:
   * a pong or any frame since then moved it. Counting bytes instead of listening for
   * 'pong' saves the listener, whose fourth entry doubles the WebSocket's event table
   * (~100 bytes a connection, BENCHMARKS.md).
   */
  #bytesAtPing = -1;
  readonly #socket: Socket;
  /** Limits bookkeeping (src/connectors/admission.ts), set by the connector. */
  admission: AdmissionTicket | undefined;
  readonly #ws: WebSocket;
  readonly #ctx: WsContext;
  /** The State and the count of bad frames, in one small integer: one slot, not two. */
  #stateAndBadFrames: number = State.NEW;
  /**
   * One slot for two things that never overlap: while an enter is in flight, the hub
   * writes that wait for it (so `entered` goes first; their bytes are summed when asked:
   * a wait this short holds a few frames); once closed by the server, why.
   */
  #pendingOrReason: Buffer[] | string | undefined;

  /** `socket`: the upgraded request's socket, under `ws`. */
  constructor(ctx: WsContext, ws: WebSocket, socket: Socket, remoteAddress: string) {
    this.#ctx = ctx;
    this.#ws = ws;
    this.#socket = socket;
    this.remoteAddress = remoteAddress;
    this.#enterDeadline = new EnterDeadline(this);
    ctx.wheel.arm(this.#enterDeadline, ctx.enterTimeoutMs);
    // Listeners shared by every connection, which find theirs on the WebSocket: no
    // closures or once-wrapper per idle connection (bench/micro/heap-summary.ts).
    (ws as OwnedWebSocket)[OWNER] = this;
    ws.on('message', WsConnection.#onOwnedMessage);
    // ws closes the socket itself after a protocol error (1002, 1007, 1009 for a frame
    // above maxPayload); 'close' follows. We only need to keep the error from throwing.
    ws.on('error', WsConnection.#onOwnedError);
    ws.on('close', WsConnection.#onOwnedClose); // 'close' comes once
    ctx.hub.observer.opened(this);
  }

  static readonly #onOwnedMessage = function (this: OwnedWebSocket, data: RawData, isBinary: boolean): void {
    const conn = this[OWNER];
    if (conn) conn.onMessage(data, isBinary);
  };
  static readonly #onOwnedError = function (this: OwnedWebSocket, err: Error): void {
    const conn = this[OWNER];
    if (conn) conn.#ctx.log.debug({ conn: conn.id, err: err.message }, 'ws error');
  };
  static readonly #onOwnedClose = function (this: OwnedWebSocket): void {
    const conn = this[OWNER];
    if (conn) conn.onTransportClosed();
  };

  get encoder(): WsEncoder {
    return WS_ENCODER;
  }

  get closed(): boolean {
    return this.state === State.CLOSED;
  }

  get bufferedBytes(): number {
    let pending = 0;
    const waiting = this.#pendingOrReason;
    if (Array.isArray(waiting)) for (const frame of waiting) pending += frame.length;
    return this.#ws.bufferedAmount + pending;
  }

  private get state(): State {
    return (this.#stateAndBadFrames & STATE_BITS) as State;
  }
  private set state(state: State) {
    this.#stateAndBadFrames = withBits(this.#stateAndBadFrames, 0, STATE_BITS, state);
  }

  /** `frame`: a whole WebSocket frame from WS_ENCODER, shared by every recipient. */
  write(frame: Buffer): void {
    if (this.state === State.ENTERED) {
      sendPreframed(this.#ws, frame);
      this.#ctx.hub.observer.wrote('ws', frame.length);
    } else if (this.state === State.ENTERING) {
      const waiting = this.#pendingOrReason;
      if (Array.isArray(waiting)) waiting.push(frame);
      else this.#pendingOrReason = [frame];
    }
  }

  /** Server-side close: `kick` with the reason and a close code, or terminate (see CLOSE_BY_REASON). */
  close(reason: CloseReason): void {
    if (this.state === State.CLOSED) return;
    const how = CLOSE_BY_REASON[reason] ?? WS_CLOSE.normal;
    if (how === 'terminate') {
      this.end(reason, 'terminate');
      return;
    }
    this.send(encodeServerFrameBytes({ type: 'kick', reason }));
    this.end(reason, how);
  }

  /** The keep-alive sweep: terminate when the last ping went unanswered, else ping again. */
  heartbeat(): void {
    if (this.state === State.CLOSED) return;
    const read = this.#socket.bytesRead;
    if (read === this.#bytesAtPing) {
      this.close(CLOSE_REASONS.heartbeatTimeout);
      return;
    }
    this.#bytesAtPing = read;
    this.#ws.ping();
    // An idle moment: the connection's own admission ticket can go (admission.ts).
    admissionIdle(this);
  }

  /** The wheel says the enter deadline passed. */
  expire(): void {
    if (this.state !== State.ENTERED) this.close(CLOSE_REASONS.handshakeTimeout);
  }

  /** Drops the socket, also one whose close handshake never finished (shutdown grace period over). */
  terminate(): void {
    this.end(CLOSE_REASONS.shutdown, 'terminate');
    this.#ws.terminate();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === State.CLOSED) return;
    if (isBinary) {
      const message = 'binary frames are not accepted: send JSON in text frames';
      this.#ctx.hub.observer.refused('ws', 'PROTO_BAD_MESSAGE', message, this);
      this.reply({ type: 'error', code: 'PROTO_BAD_MESSAGE', message });
      this.end('binary frames are not accepted', WS_CLOSE.unsupported);
      return;
    }
    let value: unknown;
    let frame: ClientFrame;
    try {
      value = decodeJson(toBuffer(data), this.#ctx.limits);
      frame = toClientFrame(value);
    } catch (err) {
      this.refuse(err, readRef(value));
      return;
    }
    // Acks answer what we sent: not counted as requests.
    if (frame.type !== 'ack' && !countRequest(this)) {
      const limit = new LimitError('LIMIT_REQUEST_RATE');
      this.#ctx.hub.observer.refused('ws', limit.code, limit.message, this);
      this.reply({ type: 'error', ref: frame.ref, code: limit.code, message: limit.message });
      this.end(limit.reason, WS_CLOSE.policy);
      return;
    }
    void this.dispatch(frame);
  }

  /** Runs one frame against the hub. Never rejects: every failure is answered. */
  private async dispatch(frame: ClientFrame): Promise<void> {
    try {
      switch (frame.type) {
        case 'ping':
          this.reply({ type: 'pong', ref: frame.ref });
          return;
        case 'enter':
          await this.enter(frame);
          return;
        case 'ack':
          this.requireEntered();
          this.#ctx.hub.ack(this, frame.id);
          return;
        case 'subscribe':
          await this.#ctx.hub.subscribeTags(this, frame.tags);
          this.reply({ type: 'ok', ref: frame.ref });
          return;
        case 'unsubscribe':
          await this.#ctx.hub.unsubscribeTags(this, frame.tags);
          this.reply({ type: 'ok', ref: frame.ref });
          return;
        case 'push':
          await this.push(frame);
          return;
        default:
          return assertNever(frame);
      }
    } catch (err) {
      this.refuse(err, frame.ref);
    }
  }

  private async enter(frame: EnterClientFrame | EnterManagerFrame): Promise<void> {
    if (this.state !== State.NEW) {
      throw new HubError('BAD_REQUEST', this.state === State.ENTERING ? 'an enter is already in progress' : 'this connection has already entered');
    }
    this.state = State.ENTERING;
    let reply: ServerFrame;
    try {
      if (frame.role === 'manager') {
        const users = await this.#ctx.hub.enterManager(this, frame.apikey, frame.secret ?? frame.password, frame.userId);
        reply = { type: 'entered', ref: frame.ref, users };
      } else {
        await this.#ctx.hub.enterClient(this, {
          apikey: frame.apikey,
          clientId: frame.clientId,
          resumeAfter: frame.lastId ?? 'stored',
          ...(frame.tags !== undefined && { tags: frame.tags }),
          ...(frame.token !== undefined && { token: frame.token }),
        });
        reply = { type: 'entered', ref: frame.ref, clientId: frame.clientId };
      }
    } catch (err) {
      if (this.state === State.ENTERING) {
        this.state = State.NEW;
        this.#pendingOrReason = undefined;
      }
      throw err;
    }
    // Closed while the hub awaited the store: the hub registered nothing, or leave() undid it.
    if (this.state !== State.ENTERING) return;
    this.state = State.ENTERED;
    admissionEntered(this);
    this.dropEnterDeadline();
    this.send(encodeServerFrameBytes(reply));
    const pending = this.#pendingOrReason;
    this.#pendingOrReason = undefined;
    if (Array.isArray(pending)) for (const frame of pending) sendPreframed(this.#ws, frame);
  }

  private async push(frame: PushFrame): Promise<void> {
    const identity = this.requireEntered();
    const target: Target = frame.to
      ? { all: false, clientIds: frame.to.clientIds.map(asClientId), tags: frame.to.tags }
      : { all: true, clientIds: [], tags: [] };
    const result = await this.#ctx.hub.publishAsManager(this, {
      apikey: identity.apikey,
      target,
      event: frame.event,
      data: frame.data,
      ...(frame.ttl !== undefined && { ttlSeconds: frame.ttl }),
    });
    this.reply({ type: 'pushed', ref: frame.ref, id: result.message.id, targeted: result.targeted });
  }

  private requireEntered(): { readonly apikey: ApiKey } {
    const identity = this.state === State.ENTERED ? this.#ctx.hub.identity(this) : undefined;
    if (!identity) throw new HubError('NOT_ENTERED', 'send "enter" and wait for "entered" first');
    return identity;
  }

  /**
   * Answers a frame that was refused with an `error` frame. Protocol errors and hub
   * refusals count as bad frames; past `maxBadFrames` the connection is closed 1008.
   * Anything else is our failure: logged with an id, answered generically.
   */
  private refuse(err: unknown, ref: Ref | undefined): void {
    if (this.state === State.CLOSED) return;
    if (isProtocolError(err) || err instanceof HubError) {
      this.#ctx.log.debug({ conn: this.id, code: err.code, err: err.message }, 'ws frame refused');
      this.#ctx.hub.observer.refused('ws', err.code, err.message, this);
      this.reply({ type: 'error', ref, code: err.code, message: err.message });
      this.#stateAndBadFrames += 1 << BAD_FRAMES_SHIFT;
      if (this.#stateAndBadFrames >> BAD_FRAMES_SHIFT >= this.#ctx.maxBadFrames) this.end(TOO_MANY_BAD_FRAMES, WS_CLOSE.policy);
      return;
    }
    const errorId = crypto.randomUUID();
    this.#ctx.log.error({ err, conn: this.id, errorId }, 'ws frame handler failed');
    this.reply({ type: 'error', ref, code: 'INTERNAL', message: `internal error (id ${errorId})` });
  }

  private reply(frame: ServerFrame): void {
    if (this.state !== State.CLOSED) this.send(encodeServerFrameBytes(frame));
  }

  private send(bytes: Buffer): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    this.#ws.send(bytes, TEXT);
    this.#ctx.hub.observer.wrote('ws', bytes.length);
  }

  private end(reason: string, how: number | 'terminate'): void {
    if (this.state === State.CLOSED) return;
    this.state = State.CLOSED;
    this.#pendingOrReason = reason;
    this.dropEnterDeadline();
    this.#ctx.log.debug({ conn: this.id, reason, how }, 'ws connection closing');
    if (how === 'terminate') this.#ws.terminate();
    else this.#ws.close(how, truncateReason(reason));
    // Leave now, not when the close handshake ends (up to ws's closeTimeout with a
    // silent peer): presence is right at once, and writes already stopped above.
    this.#ctx.hub.leave(this);
  }

  private onTransportClosed(): void {
    // CLOSED already: end() ran, and left the hub then.
    if (this.state !== State.CLOSED) this.#ctx.hub.leave(this);
    this.state = State.CLOSED;
    const reason = typeof this.#pendingOrReason === 'string' ? this.#pendingOrReason : PEER_CLOSED;
    this.#pendingOrReason = undefined;
    this.dropEnterDeadline();
    releaseAdmission(this);
    this.#ctx.removed(this);
    this.#ctx.hub.observer.closed(this, reason);
  }

  private dropEnterDeadline(): void {
    if (this.#enterDeadline === undefined) return;
    this.#ctx.wheel.disarm(this.#enterDeadline);
    this.#enterDeadline = undefined;
  }
}

/** A connection's enter deadline in the wheel (WsConnection.#enterDeadline). */
export class EnterDeadline implements WheelItem {
  wheelSlot = -1;
  wheelNext: WheelItem | undefined = undefined;
  wheelPrev: WheelItem | undefined = undefined;
  constructor(readonly conn: WsConnection) {}
}

function toBuffer(data: RawData): Buffer {
  // The server's binaryType is 'nodebuffer': a whole message arrives as one Buffer.
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function truncateReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  // Cut by characters, conservatively: 4 bytes is the most one UTF-8 character takes.
  return reason.slice(0, Math.floor(MAX_CLOSE_REASON_BYTES / 4));
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
