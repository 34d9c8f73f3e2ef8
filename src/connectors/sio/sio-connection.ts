import type { Member } from '../../hub/members.js';
import type { EnteredAs } from '../../hub/observer.js';
import type { Socket } from 'socket.io';
import { ProtocolError, isProtocolError } from '../../protocol/errors.js';
import { HubError, MAX_CLIENT_ID_LENGTH, MAX_TAG_LENGTH, MAX_TAGS_PER_CLIENT } from '../../hub/hub.js';
import { PUSH_INVALID } from '../../hub/push-rules.js';
import {
  CLOSE_REASONS,
  allocateConnectionId,
  type CloseReason,
  type Connection,
  type PushEncoder,
  compactTime,
  expandTime,
} from '../../hub/connection.js';
import { PEER_CLOSED } from '../../hub/observer.js';
import { asClientId, type ClientId } from '../../ids.js';
import type { WheelItem } from '../deadline-wheel.js';
import { ROUTES, handlePomeloRoute } from '../pomelo-routes.js';
import {
  decodePomeloSioRequest,
  encodePomeloSioKick,
  encodePomeloSioResponse,
  readRequestId,
  type PomeloSioRequest,
} from './pomelo-sio-frame.js';
import type { SioPush } from './sio-encoders.js';
import { pendingAckCallbacks, settlePendingPollingClose, writeAckedEvent, writePreframedPacket, wsBufferedAmount, wsTransportSocket } from './sio-internals.js';
import { corkForTurn } from '../write-coalescer.js';
import type { SioContext } from './sio-context.js';
import { LimitError, type AdmissionTicket } from '../admission.js';

/** Bounds on what one socket may do (docs/conventions.md §4, §5). */
export const SIO_LIMITS = {
  /** Events a socket may send before it has entered, enter attempts included; past it the socket is closed. */
  eventsBeforeEnter: 16,
  /** Requests of one socket waiting for their answer; more are refused at once with code 500. */
  requestsInFlight: 256,
  /**
   * Ack callbacks socket.io keeps for one socket whose client does not ack (one per
   * native push). Past it the oldest are forgotten: acks are cumulative, so a later
   * ack covers them, and memory stays bounded.
   */
  pendingAckCallbacks: 1000,
  /** After a kick, how long the peer has to take it before the transport is dropped, ms. */
  closeGraceMs: 2000,
  /** Tags in one enter/subscribe/push request (a client has at most that many). */
  tagsPerRequest: MAX_TAGS_PER_CLIENT,
  /** Client ids in one native push (as the HTTP API). */
  clientIdsPerPush: 10_000,
  /** The longest time to live a push may ask for, seconds (one year, as the other connectors). */
  ttlSeconds: 365 * 24 * 3600,
} as const;

/** Pomelo routes that enter the hub: their answer goes before what the hub writes meanwhile. */
const ENTER_ROUTES: ReadonlySet<string> = new Set([ROUTES.hybridEnter, ROUTES.sioEnter, ROUTES.connectorEnter]);

/** The native API's client → server events; anything else is answered "unknown event". */
export const NATIVE_EVENTS = ['enter', 'ack', 'subscribe', 'unsubscribe', 'push'] as const;
type NativeEvent = (typeof NATIVE_EVENTS)[number];
const NATIVE_EVENT_SET: ReadonlySet<string> = new Set(NATIVE_EVENTS);

/** The Pomelo framing's only event (docs/pomelo-protocol.md §11.3). */
const POMELO_EVENT = 'message';

/**
 * How this connector says no (docs/conventions.md §4), by API:
 *
 * | what | Pomelo framing (`message`) | native API |
 * | --- | --- | --- |
 * | refused request | `{"id":N,"body":{"code":500,"msg":…,"error":CODE}}` | ack `{code: 500, msg, error: CODE}`, or event `error` with it when the client gave no callback |
 * | malformed frame with no readable request id, notify included | `{"route":"onKick","reason":"PROTO_…: …"}`, then DISCONNECT | — |
 * | close (replaced, shutdown, timeout, too many events before enter) | `{"route":"onKick","reason":…}`, then DISCONNECT | event `kick` `{reason}`, then DISCONNECT |
 * | slow consumer | transport dropped at once, nothing more is queued | the same |
 *
 * A socket that used neither API yet gets both kick forms.
 */
type Api = 'pomelo' | 'native';

/** A socket.io ack callback the client passed with its event. */
type Ack = (...args: unknown[]) => void;

/** What a request is answered with. */
type Answer = { readonly code: number; readonly msg?: string } & Readonly<Record<string, unknown>>;

const OK: Answer = { code: 200 };

/**
 * One socket.io socket: both APIs, kick and close, buffered bytes, and the one place
 * where its events become hub calls (`#onEvent`, docs/conventions.md §4).
 *
 * The API (and so the encoder) is fixed by the socket's first Pomelo or native event
 * and never changes; the hub sees the connection only after that.
 */
export class SioConnection implements Connection<SioPush>, WheelItem {
  readonly id = allocateConnectionId();
  /** The hub's and its observer's slots (Connection.hubMember, .enteredAs). */
  hubMember: Member | undefined = undefined;
  enteredAs: EnteredAs | undefined = undefined;
  // A getter, not a field: one less slot per connection.
  get connector(): 'sio' {
    return 'sio';
  }
  readonly #connectedAt = compactTime(Date.now());
  get connectedAt(): number {
    return expandTime(this.#connectedAt);
  }
  readonly remoteAddress: string;
  wheelSlot = -1;
  wheelNext: WheelItem | undefined = undefined;
  wheelPrev: WheelItem | undefined = undefined;
  /** Limits bookkeeping (src/connectors/admission.ts), set by the connector. */
  admission: AdmissionTicket | undefined;
  readonly #ctx: SioContext;
  readonly #socket: Socket;
  readonly #acks: Map<unknown, unknown> | undefined;
  #api: Api | undefined;
  #closed = false;
  #gone = false;
  #entered = false;
  #eventsBeforeEnter = 0;
  #inFlight = 0;
  /** Characters in engine.io packets created and not yet flushed to the transport. */
  #queuedChars = 0;
  /** Why the server closed it, for the close report; unset: the peer went first. */
  #closeReason: string | undefined;
  /**
   * While an enter is in flight: the hub's writes that wait for its answer (the backlog,
   * live messages, presence), so the answer goes first, as on the other connectors.
   */
  #held: SioPush[] | undefined;

  constructor(ctx: SioContext, socket: Socket) {
    this.#ctx = ctx;
    this.#socket = socket;
    this.remoteAddress = socket.handshake.address;
    this.#acks = pendingAckCallbacks(socket);
    ctx.wheel.arm(this, ctx.enterTimeoutMs);
    socket.onAny((event: unknown, ...args: unknown[]) => this.#onEvent(event, args));
    // A client may send an event named "error"; socket.io emits it, and an EventEmitter
    // with no "error" listener would throw it out of the process.
    socket.on('error', (err: unknown) => {
      ctx.log.debug({ conn: this.id, err: err instanceof Error ? err.message : String(err) }, 'socket.io socket error');
    });
    socket.once('disconnect', (reason: string) => this.#onDisconnect(reason));
    socket.conn.on('packetCreate', this.#onPacketCreate);
    socket.conn.on('flush', this.#onFlush);
    socket.conn.once('close', () => settlePendingPollingClose(socket.conn));
    ctx.hub.observer.opened(this);
  }

  get encoder(): PushEncoder<SioPush> {
    switch (this.#api) {
      case 'pomelo':
        return this.#ctx.pomeloEncoder;
      case 'native':
        return this.#ctx.nativeEncoder;
      case undefined:
        // The API is fixed before the first hub call, which is the hub's first sight of us.
        throw new Error(`bug: sio connection ${this.id} has no API yet`);
      default:
        return assertNever(this.#api);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * engine.io's own queue (packets waiting for the transport to become writable: for
   * a slow WebSocket reader, or a polling client between two GETs), counted from its
   * `packetCreate` and `flush` events, plus the ws socket's `bufferedAmount` under
   * the websocket transport. Queued packets are counted in UTF-16 code units, which is
   * their byte size for ASCII and under it by at most 3x for other text; V8 holds such
   * strings in 1 or 2 bytes per unit, so it is close to the memory they take.
   */
  get bufferedBytes(): number {
    return this.#queuedChars + wsBufferedAmount(this.#socket) + this.#heldChars();
  }

  write(push: SioPush): void {
    if (this.#closed) return;
    if (this.#held !== undefined) {
      this.#held.push(push);
      return;
    }
    if (push.kind === 'packet') {
      // Encoded and framed once for every recipient; written as socket.io's broadcasts write.
      writePreframedPacket(this.#socket, push.packet, push.options);
    } else {
      // The shared JSON behind a per-socket ack id; socket.emit only if socket.io's internals moved.
      if (!writeAckedEvent(this.#socket, push.json, push.jsonBytes, push.ack)) this.#socket.emit(push.event, push.payload, push.ack);
      const acks = this.#acks;
      if (acks !== undefined && acks.size > SIO_LIMITS.pendingAckCallbacks) {
        const oldest = acks.keys().next();
        if (oldest.done !== true) acks.delete(oldest.value);
      }
    }
  }

  /** Holds the hub's writes until the enter now starting is answered; false when one already holds them. */
  #holdForEnter(): boolean {
    if (this.#entered || this.#held !== undefined) return false;
    this.#held = [];
    return true;
  }

  /** The enter was answered: what the hub wrote meanwhile goes out, in order. */
  #releaseHeld(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) for (const push of held) this.write(push);
  }

  #heldChars(): number {
    let n = 0;
    for (const push of this.#held ?? []) n += push.kind === 'packet' ? push.packet.length : push.json.length;
    return n;
  }

  /** Kick with a reason in the socket's API, then DISCONNECT (docs/pomelo-protocol.md §11.4). */
  close(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    this.#ctx.wheel.disarm(this);
    const slow = reason === CLOSE_REASONS.slowConsumer;
    this.#ctx.log.debug({ conn: this.id, reason }, 'closing sio connection');
    // A slow reader would never take the kick through its full buffer: drop at once.
    if (!slow) this.#kick(reason);
    // DISCONNECT ("41"), then engine.io closes the transport once its queue has drained.
    this.#socket.disconnect(true);
    if (slow) this.#socket.conn.close(true);
    else if (this.#socket.conn.readyState !== 'closed') this.#ctx.wheel.arm(this, SIO_LIMITS.closeGraceMs);
  }

  /** Input that is not the protocol: the reason as a kick, then close (docs/conventions.md §4). */
  reject(err: unknown): void {
    if (this.#closed) return;
    const code = isProtocolError(err) || err instanceof LimitError ? err.code : 'PROTO_BAD_MESSAGE';
    const message = err instanceof Error ? err.message : String(err);
    const reason = `${code}: ${message}`.slice(0, 160);
    this.#ctx.log.debug({ conn: this.id, code, reason }, 'sio connection rejected');
    this.#ctx.hub.observer.refused('sio', code, message, this);
    this.close(reason);
  }

  /** The wheel says a deadline passed: no enter in time, or a kicked peer that does not drain. */
  expire(): void {
    if (!this.#closed) {
      this.close(CLOSE_REASONS.handshakeTimeout);
      return;
    }
    if (this.#socket.conn.readyState !== 'closed') this.#socket.conn.close(true);
  }

  /** The client acked message `id` through a push's callback. */
  ackFromCallback(id: number): void {
    if (!this.#closed) this.#ctx.hub.ack(this, id);
  }

  readonly #onPacketCreate = (packet: { readonly data?: unknown }): void => {
    const data = packet.data;
    const size = typeof data === 'string' || Buffer.isBuffer(data) ? data.length : 0;
    this.#queuedChars += size;
    this.#ctx.hub.observer.wrote('sio', size);
  };

  // engine.io flushes its whole queue to the transport at once.
  readonly #onFlush = (): void => {
    this.#queuedChars = 0;
    // engine.io writes each packet of a flush separately: held together with the rest of
    // this turn's writes to the socket, they go out as one writev (write-coalescer.ts).
    const raw = wsTransportSocket(this.#socket);
    if (raw !== undefined) corkForTurn(raw);
  };

  #onDisconnect(reason: string): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#closed = true;
    this.#queuedChars = 0;
    this.#ctx.wheel.disarm(this);
    this.#socket.conn.off('packetCreate', this.#onPacketCreate);
    this.#socket.conn.off('flush', this.#onFlush);
    this.#ctx.connections.delete(this.#socket);
    this.#ctx.log.debug({ conn: this.id, reason }, 'sio connection gone');
    this.#ctx.hub.leave(this);
    // socket.io's own reasons: 'ping timeout' is ours to report; the rest mean the client went.
    this.#ctx.hub.observer.closed(this, this.#closeReason ?? (reason === 'ping timeout' ? CLOSE_REASONS.heartbeatTimeout : PEER_CLOSED));
  }

  #kick(reason: string): void {
    switch (this.#api) {
      case 'pomelo':
        this.#socket.emit(POMELO_EVENT, encodePomeloSioKick(reason));
        return;
      case 'native':
        this.#socket.emit('kick', { reason });
        return;
      case undefined:
        // We do not know which API the client speaks: say it both ways.
        this.#socket.emit('kick', { reason });
        this.#socket.emit(POMELO_EVENT, encodePomeloSioKick(reason));
        return;
      default:
        assertNever(this.#api);
    }
  }

  // ------------------------------------------------------------------ input

  /** Every event the client sends comes through here. */
  #onEvent(event: unknown, args: unknown[]): void {
    if (this.#closed) return;
    const last = args.at(-1);
    const ack = typeof last === 'function' ? (args.pop() as Ack) : undefined;
    if (!this.#entered && ++this.#eventsBeforeEnter > SIO_LIMITS.eventsBeforeEnter) {
      this.reject(new ProtocolError('PROTO_BAD_MESSAGE', `more than ${SIO_LIMITS.eventsBeforeEnter} events before entering`));
      return;
    }
    // Acks (native `ack`, or Pomelo's ack route, checked once decoded) answer what we sent: not counted.
    if (event !== 'ack' && event !== POMELO_EVENT && !this.#takeRequest()) return;
    try {
      if (event === POMELO_EVENT) this.#onPomelo(args, ack);
      else this.#onNative(String(event), args, ack);
    } catch (err) {
      this.#reply(ack, this.#errorAnswer(err));
    }
  }

  #onPomelo(args: unknown[], ack: Ack | undefined): void {
    if (this.#api === 'native') {
      this.#fail(ack, 'BAD_REQUEST', 'this connection uses the native API; the Pomelo framing ("message" events) needs a connection of its own');
      return;
    }
    this.#api = 'pomelo';
    const str = args[0];
    if (args.length !== 1 || typeof str !== 'string') {
      this.reject(new ProtocolError('PROTO_BAD_MESSAGE', `a "message" event carries one string (docs/pomelo-protocol.md §11.3), got (${describeArgs(args)})`));
      return;
    }
    let req: PomeloSioRequest;
    try {
      req = decodePomeloSioRequest(str);
    } catch (err) {
      // A request whose id we can read gets an answer; a notify or an unreadable id
      // leaves no way to answer, so the offender is kicked with the reason.
      const id = readRequestId(str);
      if (id === undefined || id === 0) {
        this.reject(err);
        return;
      }
      const code = isProtocolError(err) ? err.code : 'PROTO_BAD_MESSAGE';
      this.#respond(id, { code: 500, msg: `bad request: ${err instanceof Error ? err.message : String(err)}`, error: code });
      return;
    }
    const { id, route, body } = req;
    if (route !== ROUTES.ack && !this.#takeRequest()) return;
    if (id !== 0 && this.#inFlight >= SIO_LIMITS.requestsInFlight) {
      this.#respond(id, tooManyInFlight());
      return;
    }
    this.#inFlight++;
    const holding = ENTER_ROUTES.has(route) && this.#holdForEnter();
    void handlePomeloRoute(this.#ctx.hub, this, route, body, this.#ctx.log)
      .then(
        (answer) => answer,
        (err: unknown) => this.#errorAnswer(err),
      )
      .then((answer) => {
        this.#inFlight--;
        this.#checkEntered();
        // docs/pomelo-protocol.md §11.3: a notify (id 0) is never answered.
        if (id !== 0) this.#respond(id, answer);
        if (holding) this.#releaseHeld();
      });
  }

  #onNative(event: string, args: unknown[], ack: Ack | undefined): void {
    if (!isNativeEvent(event)) {
      this.#fail(ack, 'BAD_REQUEST', `unknown event "${event.slice(0, 64)}": send enter, ack, subscribe, unsubscribe or push (or Pomelo-framed "message")`);
      return;
    }
    if (this.#api === 'pomelo') {
      this.#fail(ack, 'BAD_REQUEST', 'this connection uses the Pomelo framing ("message" events); the native API needs a connection of its own');
      return;
    }
    this.#api = 'native';
    const arg = args[0];
    switch (event) {
      case 'enter': {
        const holding = this.#holdForEnter();
        this.#run(ack, () => this.#enter(arg), holding ? () => this.#releaseHeld() : undefined);
        return;
      }
      case 'ack':
        this.#ack(arg, ack);
        return;
      case 'subscribe':
        this.#run(ack, async () => {
          await this.#ctx.hub.subscribeTags(this, tagList(objectArg(arg, 'subscribe takes {tags: [..]}')['tags'], true));
          return OK;
        });
        return;
      case 'unsubscribe':
        this.#run(ack, async () => {
          await this.#ctx.hub.unsubscribeTags(this, tagList(objectArg(arg, 'unsubscribe takes {tags: [..]}')['tags'], true));
          return OK;
        });
        return;
      case 'push':
        this.#run(ack, () => this.#push(arg));
        return;
      default:
        assertNever(event);
    }
  }

  async #enter(arg: unknown): Promise<Answer> {
    const p = objectArg(arg, 'enter takes {apikey, clientId, token?, lastId?, tags?} or {role: "manager", apikey, secret}');
    const apikey = str(p, 'apikey') ?? str(p, 'apiKey');
    if (apikey === undefined) throw badRequest('missing "apikey"');
    const role = p['role'];
    if (role === 'manager') {
      // The app's secret, or an admin's userId and password (as the other connectors).
      const secret = str(p, 'secret');
      const userId = str(p, 'userId');
      const password = str(p, 'password');
      if (secret === undefined && (userId === undefined || password === undefined)) {
        throw badRequest('missing "secret" (or "userId" and "password" of an admin)');
      }
      const users = await this.#ctx.hub.enterManager(this, apikey, secret ?? password, secret === undefined ? userId : undefined);
      return { code: 200, users };
    }
    if (role !== undefined && role !== 'client') throw badRequest('"role" is "client" (the default) or "manager"');
    const clientId = str(p, 'clientId');
    if (clientId === undefined) throw badRequest('missing "clientId"');
    const token = p['token'];
    if (token !== undefined && token !== null && typeof token !== 'string') throw badRequest('"token" must be a string');
    const lastId = p['lastId'];
    if (lastId !== undefined && lastId !== null && !(typeof lastId === 'number' && Number.isSafeInteger(lastId) && lastId >= 0)) {
      throw badRequest('"lastId" is the id of the last message received: a non-negative integer');
    }
    const tags = p['tags'] === undefined ? undefined : tagList(p['tags'], false);
    await this.#ctx.hub.enterClient(this, {
      apikey,
      clientId,
      resumeAfter: typeof lastId === 'number' ? lastId : 'stored',
      ...(tags !== undefined ? { tags } : {}),
      ...(typeof token === 'string' ? { token } : {}),
    });
    return { code: 200, msg: 'add ok' };
  }

  #ack(arg: unknown, ack: Ack | undefined): void {
    const raw = typeof arg === 'object' && arg !== null ? (arg as Record<string, unknown>)['id'] : arg;
    if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 1) {
      this.#fail(ack, 'BAD_REQUEST', 'ack takes {id: <message id>}');
      return;
    }
    if (this.#ctx.hub.identity(this)?.role !== 'client') {
      this.#fail(ack, 'NOT_ENTERED', 'enter as a client before acking');
      return;
    }
    this.#ctx.hub.ack(this, raw);
    if (ack !== undefined) ack(OK);
  }

  async #push(arg: unknown): Promise<Answer> {
    const p = objectArg(arg, 'push takes {event?, data, to?: {clientIds?, tags?}, ttl?}');
    const identity = this.#ctx.hub.identity(this);
    if (identity === undefined) throw new HubError('NOT_ENTERED', 'enter as a manager before pushing');
    const event = p['event'] ?? 'onMsg';
    // What the name may hold is the hub's rule for every way in (src/hub/push-rules.ts).
    if (typeof event !== 'string') throw new HubError(PUSH_INVALID, 'event: expected a string');
    if (!('data' in p) || p['data'] === undefined) throw badRequest('missing "data"');
    const ttl = p['ttl'];
    if (ttl !== undefined && !(typeof ttl === 'number' && Number.isSafeInteger(ttl) && ttl > 0 && ttl <= SIO_LIMITS.ttlSeconds)) {
      throw badRequest(`"ttl" must be whole seconds from 1 to ${SIO_LIMITS.ttlSeconds}`);
    }
    const result = await this.#ctx.hub.publishAsManager(this, {
      apikey: identity.apikey,
      target: targetOf(p['to']),
      event,
      data: p['data'],
      ...(typeof ttl === 'number' ? { ttlSeconds: ttl } : {}),
    });
    return { code: 200, id: result.message.id, targeted: result.targeted };
  }

  /** Runs one native request with a bound on how many wait at once, and answers it; then `answered`. */
  #run(ack: Ack | undefined, work: () => Promise<Answer>, answered?: () => void): void {
    if (this.#inFlight >= SIO_LIMITS.requestsInFlight) {
      this.#reply(ack, tooManyInFlight());
      answered?.();
      return;
    }
    this.#inFlight++;
    void work()
      .then(
        (answer) => answer,
        (err: unknown) => this.#errorAnswer(err),
      )
      .then((answer) => {
        this.#inFlight--;
        this.#checkEntered();
        this.#reply(ack, answer);
        answered?.();
      });
  }

  #checkEntered(): void {
    if (this.#entered || this.#closed || this.#ctx.hub.identity(this) === undefined) return;
    this.#entered = true;
    this.admission?.entered();
    this.#ctx.wheel.disarm(this);
  }

  /** Counts a request; over the rate, the socket is kicked with LIMIT_REQUEST_RATE and false returned. */
  #takeRequest(): boolean {
    if (this.admission === undefined || this.admission.request()) return true;
    this.reject(new LimitError('LIMIT_REQUEST_RATE'));
    return false;
  }

  #respond(id: number, body: unknown): void {
    if (!this.#closed) this.#socket.emit(POMELO_EVENT, encodePomeloSioResponse(id, body));
  }

  /** Answers a native request: through its callback, or as an `error` event when it failed and had none. */
  #reply(ack: Ack | undefined, answer: Answer): void {
    if (this.#closed) return;
    if (ack !== undefined) ack(answer);
    else if (answer.code !== 200) this.#socket.emit('error', answer);
  }

  #fail(ack: Ack | undefined, code: string, msg: string): void {
    this.#ctx.hub.observer.refused('sio', code, msg, this);
    this.#reply(ack, { code: 500, msg, error: code });
  }

  #errorAnswer(err: unknown): Answer {
    if (err instanceof HubError) {
      this.#ctx.hub.observer.refused('sio', err.code, err.message, this);
      return { code: 500, msg: err.message, error: err.code };
    }
    const errorId = crypto.randomUUID();
    this.#ctx.log.error({ err, conn: this.id, errorId }, 'sio request failed');
    return { code: 500, msg: `internal error (id ${errorId})`, error: 'INTERNAL' };
  }
}

function isNativeEvent(event: string): event is NativeEvent {
  return NATIVE_EVENT_SET.has(event);
}

function badRequest(msg: string): HubError {
  return new HubError('BAD_REQUEST', msg);
}

function tooManyInFlight(): Answer {
  return {
    code: 500,
    msg: `more than ${SIO_LIMITS.requestsInFlight} requests waiting for their answer; wait for answers before sending more`,
    error: 'LIMIT_IN_FLIGHT',
  };
}

function objectArg(arg: unknown, usage: string): Readonly<Record<string, unknown>> {
  if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) throw badRequest(usage);
  return arg as Readonly<Record<string, unknown>>;
}

function str(p: Readonly<Record<string, unknown>>, key: string): string | undefined {
  const v = p[key];
  return typeof v === 'string' ? v : undefined;
}

function tagList(v: unknown, required: boolean): string[] {
  if (v === undefined && !required) return [];
  if (!Array.isArray(v) || v.length > SIO_LIMITS.tagsPerRequest || !v.every((t) => typeof t === 'string' && t.length > 0 && t.length <= MAX_TAG_LENGTH)) {
    throw badRequest(`"tags" must be a list of at most ${SIO_LIMITS.tagsPerRequest} strings of 1 to ${MAX_TAG_LENGTH} characters`);
  }
  return v as string[];
}

/** No `to`: every client of the app; otherwise the named clients and tags. */
function targetOf(to: unknown): { all: boolean; clientIds: ClientId[]; tags: string[] } {
  if (to === undefined || to === null) return { all: true, clientIds: [], tags: [] };
  const t = objectArg(to, '"to" is {clientIds?: [..], tags?: [..]}');
  const ids = t['clientIds'] ?? [];
  if (
    !Array.isArray(ids) ||
    ids.length > SIO_LIMITS.clientIdsPerPush ||
    !ids.every((c) => typeof c === 'string' && c.length > 0 && c.length <= MAX_CLIENT_ID_LENGTH)
  ) {
    throw badRequest(`"to.clientIds" must be a list of at most ${SIO_LIMITS.clientIdsPerPush} client ids`);
  }
  const tags = tagList(t['tags'], false);
  if (ids.length === 0 && tags.length === 0) throw badRequest('"to" names no clientIds and no tags; leave it out to push to every client');
  return { all: false, clientIds: (ids as string[]).map(asClientId), tags };
}

function describeArgs(args: readonly unknown[]): string {
  if (args.length === 0) return 'nothing';
  return args.map((a) => (a === null ? 'null' : Array.isArray(a) ? 'array' : typeof a)).join(', ');
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
