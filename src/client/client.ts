/**
 * ShaddockClient: a Pomelo hybrid connection that enters its app as a client, takes
 * pushes in id order, drops repeats, acks what the app processed, and reconnects with
 * backoff across several servers, resuming after the last id it saw
 * (docs/delivery.md, docs/delivery.md).
 */
import { decodeJson } from './codec.js';
import { ShaddockClientError } from './errors.js';
import { HybridSession } from './session.js';
import { webSocketTransport, type TransportFactory, type WebSocketConstructor } from './transport.js';

/** Shaddock's client routes (docs/pomelo.md). */
const ROUTES = {
  enter: 'hybrid-connector.entryHandler.enter',
  ack: 'shaddock.client.ack',
  subscribe: 'shaddock.client.subscribe',
  unsubscribe: 'shaddock.client.unsubscribe',
} as const;

/** Server error codes that retrying cannot fix: the client stops (src/hub/hub.ts HUB_ERROR_CODES). */
const FATAL_ENTER_CODES: ReadonlySet<string> = new Set(['APP_UNKNOWN', 'AUTH_FAILED', 'BAD_REQUEST', 'FORBIDDEN']);
/** Kick reason for "the same clientId entered on another connection" (docs/pomelo.md). */
const KICK_REPLACED = 'replaced';

/** As the server checks them (src/hub/hub.ts), so that a bad tag fails here, not at enter. */
export const MAX_TAG_LENGTH = 128;
export const MAX_TAGS = 256;

/** `sys.type` / `sys.version` in the handshake (docs/pomelo-protocol.md §4.2); the server only logs them. */
export const CLIENT_TYPE = 'shaddock-js';
export const CLIENT_VERSION = '0.1.0';

export interface ReconnectOptions {
  /** Delay before the first retry, ms. @default 250 */
  readonly initialDelayMs?: number;
  /** Longest delay between retries, ms. @default 30000 */
  readonly maxDelayMs?: number;
  /** Growth per failed attempt. @default 2 */
  readonly factor?: number;
  /**
   * Share of each delay that is random, 0 to 1: the delay is `d × (1 − jitter × random())`
   * for the exponential `d`. 1 is "full jitter". @default 0.5
   */
  readonly jitter?: number;
}

/**
 * Keeps the last processed id across restarts (a page load, a process restart), so the
 * server resumes right after it. `get` is read once, at `connect()`; `set` after every
 * processed message (keep it cheap, e.g. localStorage).
 */
export interface LastIdStore {
  get(): number | undefined | Promise<number | undefined>;
  set(id: number): void | Promise<void>;
}

export interface ShaddockClientOptions {
  /** One server or several (tried in turn on reconnect): `ws://host:3011`, `wss://…`; `tcp://…` in Node. */
  readonly urls: string | readonly string[];
  /** The app's public key. */
  readonly apikey: string;
  /** This device or browser, stable across reconnects. */
  readonly clientId: string;
  /** A signed client token, for apps that require one. */
  readonly token?: string;
  /** Tags to subscribe when entering (kept by the server across connections). */
  readonly tags?: readonly string[];
  /**
   * Resume after this id when `store` has none. Without both, the server resumes after
   * the client's last acked id (a client never seen starts with new messages).
   */
  readonly lastId?: number;
  readonly store?: LastIdStore;
  /** Backoff between connection attempts; `false` stops after the first connection ends. */
  readonly reconnect?: ReconnectOptions | false;
  /** Answer deadline of requests (enter, subscribe), ms. @default 10000 */
  readonly requestTimeoutMs?: number;
  /** Deadline to open a connection and finish the handshake, ms. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Acks are sent at most this often (each acks everything processed so far), ms. @default 100 */
  readonly ackIntervalMs?: number;
  /**
   * Messages received and not yet processed, at most. Past it the connection is dropped
   * and reopened (resuming after the last queued id) once the app has caught up. @default 10000
   */
  readonly maxQueuedMessages?: number;
  /** Largest package accepted from the server, bytes. @default 16777215 */
  readonly maxPackageBytes?: number;
  /** The WebSocket constructor for the default transport. @default globalThis.WebSocket */
  readonly webSocket?: WebSocketConstructor;
  /** How to open connections; overrides `webSocket`. Node: `nodeTransport()` from shaddock/client/node. */
  readonly transport?: TransportFactory;
}

/**
 * - `idle`: not started; `connecting`: opening a connection, handshake, enter;
 * - `connected`: entered, receiving; `reconnecting`: waiting `delayMs` before the next attempt;
 * - `closed`: for good (`close()`, a fatal refusal, kick `replaced`, or `reconnect: false`).
 */
export type ClientState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface StateChange {
  readonly state: ClientState;
  readonly previous: ClientState;
  /** The server being tried (connecting) or in use (connected). */
  readonly url: string | undefined;
  /** Failed attempts since the last successful enter. */
  readonly attempt: number;
  /** `reconnecting` only: how long until the next attempt, ms. */
  readonly delayMs?: number;
  /** `reconnecting` only: why the last attempt or connection ended. */
  readonly reason?: string;
}

export interface MessageMeta<K extends string = string> {
  /** The message id, increasing within the app; the client processes ids in order. */
  readonly id: number;
  /** The event name (Pomelo push route), `onMsg` unless the pusher chose another. */
  readonly event: K;
}

/** A message as `on('message')` sees it: for typed events, a union over them. */
export type ReceivedMessage<Events extends object = Record<string, unknown>> = {
  readonly [K in keyof Events & string]: { readonly id: number; readonly event: K; readonly data: Events[K] };
}[keyof Events & string];

export type MessageHandler<T, K extends string = string> = (data: T, meta: MessageMeta<K>) => void | Promise<void>;

/** Events about the client itself. Their names cannot be used as message events with `on`. */
export interface ClientEvents<Events extends object = Record<string, unknown>> {
  /** Every message, before the handlers of its event; awaited like them. */
  message: (message: ReceivedMessage<Events>) => void | Promise<void>;
  connected: (info: { readonly url: string; readonly resumedAfter: number | undefined }) => void;
  disconnected: (info: { readonly url: string; readonly reason: string; readonly willReconnect: boolean }) => void;
  kicked: (info: { readonly url: string; readonly reason: string }) => void;
  error: (error: ShaddockClientError) => void;
  state: (change: StateChange) => void;
}

export type ClientEventName = keyof ClientEvents;
const CLIENT_EVENT_NAMES: ReadonlySet<string> = new Set<ClientEventName>(['message', 'connected', 'disconnected', 'kicked', 'error', 'state']);

type AnyListener = (...args: never[]) => unknown;
type Timer = ReturnType<typeof setTimeout>;

interface Queued {
  readonly id: number;
  readonly event: string;
  readonly data: unknown;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (err: ShaddockClientError) => void;
}

/** How one connection attempt ended. */
interface AttemptEnd {
  readonly entered: boolean;
  readonly reason: string;
  /** Set when retrying cannot help. */
  readonly fatal: ShaddockClientError | undefined;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkTags(tags: readonly string[]): string[] {
  for (const t of tags) {
    if (typeof t !== 'string' || t.length === 0 || t.length > MAX_TAG_LENGTH) {
      throw new ShaddockClientError('CLIENT_BAD_OPTIONS', `a tag is 1 to ${MAX_TAG_LENGTH} characters, got ${JSON.stringify(t)}`);
    }
  }
  return [...new Set(tags)];
}

function positiveNumber(v: number | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new ShaddockClientError('CLIENT_BAD_OPTIONS', `${name} must be a number ≥ 0`);
  return v;
}

/**
 * A Shaddock client over Pomelo's hybrid protocol. `Events` maps event names to
 * their data: `new ShaddockClient<{ onMsg: { title: string } }>(…)`.
 */
export class ShaddockClient<Events extends object = Record<string, unknown>> {
  readonly #urls: readonly string[];
  readonly #opts: ShaddockClientOptions;
  readonly #transport: TransportFactory;
  readonly #reconnect: Required<ReconnectOptions> | false;
  readonly #requestTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #ackIntervalMs: number;
  readonly #maxQueued: number;
  readonly #maxPackageBytes: number;
  readonly #listeners = new Map<string, Set<AnyListener>>();

  #state: ClientState = 'idle';
  #url: string | undefined;
  #session: HybridSession | undefined;
  #entered = false;
  #stopping = false;
  #connectWaiters: Waiter[] = [];
  #running: Promise<void> | undefined;
  #cancelSleep: (() => void) | undefined;

  /** Desired tags, sent at every enter; unsubscribes not yet confirmed by the server. */
  readonly #tags: Set<string>;
  readonly #pendingUnsubscribe = new Set<string>();

  /** Highest id processed by the handlers (the app's position). */
  #processedId: number | undefined;
  /** Highest id received: processed, or queued and to be processed before anything newer. */
  #seenId: number | undefined;
  #queue: (Queued | undefined)[] = [];
  #queueHead = 0;
  #draining = false;
  #overflowed = false;
  #queueWaiters: (() => void)[] = [];
  #duplicates = 0;

  #ackTimer: Timer | undefined;
  #lastAckAt = 0;
  /** Highest id acked on the current connection. */
  #ackedOnSession = 0;

  constructor(options: ShaddockClientOptions) {
    const urls = typeof options.urls === 'string' ? [options.urls] : [...options.urls];
    if (urls.length === 0) throw new ShaddockClientError('CLIENT_BAD_OPTIONS', 'give at least one server URL in `urls`');
    if (typeof options.apikey !== 'string' || options.apikey === '') throw new ShaddockClientError('CLIENT_BAD_OPTIONS', '`apikey` is required');
    if (typeof options.clientId !== 'string' || options.clientId === '') throw new ShaddockClientError('CLIENT_BAD_OPTIONS', '`clientId` is required');
    if (options.lastId !== undefined && !(Number.isSafeInteger(options.lastId) && options.lastId >= 0)) {
      throw new ShaddockClientError('CLIENT_BAD_OPTIONS', '`lastId` must be a message id (a whole number ≥ 0)');
    }
    this.#urls = urls;
    this.#opts = options;
    this.#transport = options.transport ?? webSocketTransport(options.webSocket);
    const r = options.reconnect;
    this.#reconnect =
      r === false
        ? false
        : {
            initialDelayMs: positiveNumber(r?.initialDelayMs, 250, 'reconnect.initialDelayMs'),
            maxDelayMs: positiveNumber(r?.maxDelayMs, 30_000, 'reconnect.maxDelayMs'),
            factor: Math.max(1, positiveNumber(r?.factor, 2, 'reconnect.factor')),
            jitter: Math.min(1, positiveNumber(r?.jitter, 0.5, 'reconnect.jitter')),
          };
    this.#requestTimeoutMs = positiveNumber(options.requestTimeoutMs, 10_000, 'requestTimeoutMs');
    this.#connectTimeoutMs = positiveNumber(options.connectTimeoutMs, 10_000, 'connectTimeoutMs');
    this.#ackIntervalMs = positiveNumber(options.ackIntervalMs, 100, 'ackIntervalMs');
    this.#maxQueued = Math.max(1, positiveNumber(options.maxQueuedMessages, 10_000, 'maxQueuedMessages'));
    this.#maxPackageBytes = positiveNumber(options.maxPackageBytes, 0xffffff, 'maxPackageBytes');
    this.#tags = new Set(checkTags(options.tags ?? []));
    this.#processedId = options.lastId;
    this.#seenId = options.lastId;
  }

  get state(): ClientState {
    return this.#state;
  }

  /** The server in use, or being tried. */
  get url(): string | undefined {
    return this.#url;
  }

  /** Highest message id the handlers have processed (what the server resumes after). */
  get lastId(): number | undefined {
    return this.#processedId;
  }

  /** Messages received again after a reconnect and dropped by id. */
  get duplicatesDropped(): number {
    return this.#duplicates;
  }

  /** Messages received and not yet processed. */
  get queued(): number {
    return this.#queue.length - this.#queueHead;
  }

  /** The tags this client asks for. */
  get tags(): readonly string[] {
    return [...this.#tags];
  }

  on<K extends ClientEventName>(event: K, listener: ClientEvents<Events>[K]): this;
  on<K extends Exclude<keyof Events & string, ClientEventName>>(event: K, handler: MessageHandler<Events[K], K>): this;
  on(event: string, listener: AnyListener): this {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return this;
  }

  off<K extends ClientEventName>(event: K, listener: ClientEvents<Events>[K]): this;
  off<K extends Exclude<keyof Events & string, ClientEventName>>(event: K, handler: MessageHandler<Events[K], K>): this;
  off(event: string, listener: AnyListener): this {
    this.#listeners.get(event)?.delete(listener);
    return this;
  }

  /**
   * Starts the client. Resolves once it has entered its app on some server; until then
   * it keeps trying (unless `reconnect: false`). Rejects if it stops for good first:
   * `close()`, a refused enter (CLIENT_ENTER_REFUSED), or kick `replaced`.
   */
  connect(): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(new ShaddockClientError('CLIENT_CLOSED', 'the client is closed'));
    if (this.#state === 'connected') return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    if (this.#running === undefined) {
      this.#running = this.#run().catch((err: unknown) => {
        // #run handles its own failures; this is a bug, reported rather than thrown away.
        this.#emitError(new ShaddockClientError('CLIENT_CLOSED', `client stopped: ${String(err)}`, { cause: err }));
        this.#finish(new ShaddockClientError('CLIENT_CLOSED', 'the client stopped'));
      });
    }
    return p;
  }

  /**
   * Adds tags. Resolves when the server has them; while offline, at once (the next
   * enter carries them).
   */
  async subscribe(tags: readonly string[]): Promise<void> {
    const add = checkTags(tags);
    if (this.#tags.size + add.filter((t) => !this.#tags.has(t)).length > MAX_TAGS) {
      throw new ShaddockClientError('CLIENT_BAD_OPTIONS', `a client has at most ${MAX_TAGS} tags`);
    }
    for (const t of add) {
      this.#tags.add(t);
      this.#pendingUnsubscribe.delete(t);
    }
    const session = this.#workingSession();
    if (session && add.length > 0) await this.#tagRequest(session, ROUTES.subscribe, add);
  }

  /** Removes tags. Resolves when the server dropped them; while offline, once it reconnects it will. */
  async unsubscribe(tags: readonly string[]): Promise<void> {
    const drop = checkTags(tags);
    for (const t of drop) {
      this.#tags.delete(t);
      this.#pendingUnsubscribe.add(t);
    }
    const session = this.#workingSession();
    if (!session || drop.length === 0) return;
    await this.#tagRequest(session, ROUTES.unsubscribe, drop);
    for (const t of drop) if (!this.#tags.has(t)) this.#pendingUnsubscribe.delete(t);
  }

  /**
   * Stops for good: acks what was processed, closes the connection, stops retrying.
   * A handler that is running finishes (its message counts as processed) but is not
   * waited for, and queued messages are left for the next connect (they were not acked).
   */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#stopping = true;
    this.#cancelSleep?.();
    this.#clearAckTimer();
    this.#sendAck();
    this.#session?.close('closed by the client');
    if (this.#running) await this.#running;
    this.#finish(new ShaddockClientError('CLIENT_CLOSED', 'the client was closed'));
  }

  // ------------------------------------------------------------------ connection loop

  async #run(): Promise<void> {
    const stored = await this.#readStore();
    if (stored !== undefined) {
      this.#processedId = stored;
      this.#seenId = Math.max(stored, this.#seenId ?? 0);
    }
    let attempt = 0;
    let next = 0;
    while (!this.#stopping) {
      const url = this.#urls[next % this.#urls.length]!;
      next++;
      this.#setState('connecting', url, attempt);
      const end = await this.#attempt(url);
      if (end.entered) attempt = 0;
      const willReconnect = !this.#stopping && end.fatal === undefined && this.#reconnect !== false;
      if (end.entered) this.#emit('disconnected', { url, reason: end.reason, willReconnect });
      if (this.#stopping) break;
      if (end.fatal) {
        this.#finish(end.fatal);
        return;
      }
      if (this.#reconnect === false) {
        this.#finish(new ShaddockClientError('CLIENT_DISCONNECTED', `connection to ${url} ended (${end.reason}) and reconnect is off`, { url }));
        return;
      }
      const delayMs = this.#backoff(attempt);
      attempt++;
      this.#setState('reconnecting', url, attempt, { delayMs, reason: end.reason });
      await this.#sleep(delayMs);
      // Dropped because the app fell behind: reopen once it has worked through half.
      if (this.#overflowed) await this.#queueBelow(Math.floor(this.#maxQueued / 2));
      this.#overflowed = false;
    }
  }

  /** One connection: open, handshake, enter, then receive until it ends. */
  async #attempt(url: string): Promise<AttemptEnd> {
    let closedReason = 'closed';
    let ended!: () => void;
    const endedP = new Promise<void>((resolve) => (ended = resolve));
    let fatal: ShaddockClientError | undefined;
    const session = new HybridSession(
      {
        url,
        transport: this.#transport,
        connectTimeoutMs: this.#connectTimeoutMs,
        requestTimeoutMs: this.#requestTimeoutMs,
        maxPackageBytes: this.#maxPackageBytes,
        clientType: CLIENT_TYPE,
        clientVersion: CLIENT_VERSION,
      },
      {
        push: (route, body) => this.#onPush(session, route, body),
        kicked: (reason) => {
          if (reason === KICK_REPLACED) {
            fatal = new ShaddockClientError('CLIENT_REPLACED', `another connection entered as "${this.#opts.clientId}" (kicked: replaced)`, { url });
          }
          this.#emit('kicked', { url, reason });
        },
        closed: (reason) => {
          closedReason = reason;
          if (this.#session === session) {
            this.#session = undefined;
            this.#entered = false;
            this.#clearAckTimer();
          }
          ended();
        },
      },
    );
    this.#session = session;
    this.#entered = false;
    try {
      await session.open();
    } catch {
      // The session has ended: closedReason says why (refused, timed out, …).
      return { entered: false, reason: closedReason, fatal: undefined };
    }
    const lastId = this.#seenId;
    let answer: unknown;
    try {
      answer = await session.request(ROUTES.enter, {
        role: 'client',
        apikey: this.#opts.apikey,
        clientId: this.#opts.clientId,
        ...(lastId !== undefined ? { lastId } : {}),
        ...(this.#tags.size > 0 ? { tags: [...this.#tags] } : {}),
        ...(this.#opts.token !== undefined ? { token: this.#opts.token } : {}),
      });
    } catch (err) {
      session.close('enter failed');
      await endedP;
      return { entered: false, reason: `enter: ${(err as Error).message}`, fatal };
    }
    if (!isRecord(answer) || answer['code'] !== 200) {
      const msg = isRecord(answer) && typeof answer['msg'] === 'string' ? answer['msg'] : JSON.stringify(answer);
      const serverCode = isRecord(answer) && typeof answer['error'] === 'string' ? answer['error'] : undefined;
      session.close('enter refused');
      await endedP;
      if (serverCode !== undefined && FATAL_ENTER_CODES.has(serverCode)) {
        const err = new ShaddockClientError('CLIENT_ENTER_REFUSED', `${url} refused to let "${this.#opts.clientId}" enter: ${msg}`, { url, serverCode });
        this.#emitError(err);
        return { entered: false, reason: msg, fatal: err };
      }
      return { entered: false, reason: `enter refused: ${msg}`, fatal };
    }
    if (session.closed) {
      await endedP;
      return { entered: false, reason: closedReason, fatal };
    }
    this.#entered = true;
    this.#ackedOnSession = 0;
    this.#setState('connected', url, 0);
    this.#emit('connected', { url, resumedAfter: lastId });
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.resolve();
    // What was processed while offline, and unsubscribes the server has not confirmed.
    this.#scheduleAck();
    if (this.#pendingUnsubscribe.size > 0) {
      const drop = [...this.#pendingUnsubscribe];
      this.#tagRequest(session, ROUTES.unsubscribe, drop).then(
        () => {
          for (const t of drop) if (!this.#tags.has(t)) this.#pendingUnsubscribe.delete(t);
        },
        (err: unknown) => this.#emitError(err as ShaddockClientError),
      );
    }
    await endedP;
    return { entered: true, reason: closedReason, fatal };
  }

  /** Exponential backoff with jitter (ReconnectOptions.jitter). */
  #backoff(attempt: number): number {
    const r = this.#reconnect;
    if (r === false) return 0;
    const d = Math.min(r.maxDelayMs, r.initialDelayMs * r.factor ** Math.min(attempt, 64));
    return Math.round(d * (1 - r.jitter * Math.random()));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#cancelSleep = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#cancelSleep = done;
    });
  }

  #finish(err: ShaddockClientError): void {
    this.#stopping = true;
    this.#clearAckTimer();
    this.#session?.close('client stopped');
    this.#setState('closed', this.#url, 0);
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.reject(err);
    this.#wakeQueueWaiters();
  }

  #setState(state: ClientState, url: string | undefined, attempt: number, wait?: { delayMs: number; reason: string }): void {
    if (this.#state === 'closed') return;
    const previous = this.#state;
    this.#state = state;
    this.#url = url;
    this.#emit('state', { state, previous, url, attempt, ...wait });
  }

  #workingSession(): HybridSession | undefined {
    return this.#entered && this.#session !== undefined && !this.#session.closed ? this.#session : undefined;
  }

  async #tagRequest(session: HybridSession, route: string, tags: string[]): Promise<void> {
    const answer = await session.request(route, { tags });
    if (!isRecord(answer) || answer['code'] !== 200) {
      const msg = isRecord(answer) && typeof answer['msg'] === 'string' ? answer['msg'] : JSON.stringify(answer);
      throw new ShaddockClientError('CLIENT_REQUEST_FAILED', `${route}: ${msg}`, {
        url: session.url,
        ...(isRecord(answer) && typeof answer['error'] === 'string' ? { serverCode: answer['error'] } : {}),
      });
    }
  }

  // ------------------------------------------------------------------ messages

  #onPush(session: HybridSession, route: string, body: Uint8Array): void {
    if (session !== this.#session || this.#stopping) return;
    if (session.isProtobufRoute(route)) {
      this.#emitError(new ShaddockClientError('CLIENT_BAD_PUSH', `"${route}" is sent as protobuf; the SDK reads JSON bodies only`, { event: route, url: session.url }));
      return;
    }
    let parsed: unknown;
    try {
      parsed = decodeJson(body);
    } catch (err) {
      this.#emitError(new ShaddockClientError('CLIENT_BAD_PUSH', `"${route}" push is not JSON`, { event: route, url: session.url, cause: err }));
      return;
    }
    const id = isRecord(parsed) ? parsed['id'] : undefined;
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
      this.#emitError(new ShaddockClientError('CLIENT_BAD_PUSH', `"${route}" push has no message id`, { event: route, url: session.url }));
      return;
    }
    // At least once (docs/delivery.md): a repeat is recognised by its id.
    if (this.#seenId !== undefined && id <= this.#seenId) {
      this.#duplicates++;
      return;
    }
    if (this.queued >= this.#maxQueued) {
      // Drop this connection rather than grow without bound; the next one resumes
      // after #seenId, so what is dropped here comes again.
      this.#overflowed = true;
      session.close('client queue full');
      return;
    }
    this.#seenId = id;
    this.#queue.push({ id, event: route, data: (parsed as Record<string, unknown>)['msg'] });
    if (!this.#draining) void this.#drain();
  }

  /** Processes queued messages one at a time, in order, awaiting async handlers. */
  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#queueHead < this.#queue.length) {
        const m = this.#queue[this.#queueHead]!;
        this.#queue[this.#queueHead++] = undefined;
        if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#queueHead);
          this.#queueHead = 0;
        }
        await this.#dispatch(m);
        this.#processedId = m.id;
        this.#writeStore(m.id);
        if (!this.#stopping) this.#scheduleAck();
        if (this.#queueWaiters.length > 0) this.#wakeQueueWaiters();
        if (this.#stopping) break;
      }
    } finally {
      this.#draining = false;
    }
    // A stopped client leaves the rest for the next connect; drop it from memory.
    if (this.#stopping) {
      this.#queue = [];
      this.#queueHead = 0;
    }
  }

  async #dispatch(m: Queued): Promise<void> {
    const meta: MessageMeta = { id: m.id, event: m.event };
    const all = this.#listeners.get('message');
    if (all !== undefined && all.size > 0) {
      for (const l of [...all]) await this.#callHandler(m, () => (l as (msg: Queued) => unknown)({ id: m.id, event: m.event, data: m.data }));
    }
    // The lifecycle names are not message events: a push named "error" reaches only 'message'.
    if (CLIENT_EVENT_NAMES.has(m.event)) return;
    const own = this.#listeners.get(m.event);
    if (own !== undefined && own.size > 0) {
      for (const l of [...own]) await this.#callHandler(m, () => (l as (data: unknown, meta: MessageMeta) => unknown)(m.data, meta));
    }
  }

  // Decision (docs/delivery.md): a handler that fails is reported and the message still
  // counts as processed and is acked. Holding it back would stop every later message
  // for this client for good; an app that wants a retry catches and retries inside.
  async #callHandler(m: Queued, call: () => unknown): Promise<void> {
    try {
      const r = call();
      if (isThenable(r)) await r;
    } catch (err) {
      this.#emitError(
        new ShaddockClientError('CLIENT_HANDLER_FAILED', `the handler of message ${m.id} (${m.event}) failed: ${err instanceof Error ? err.message : String(err)}`, {
          messageId: m.id,
          event: m.event,
          cause: err,
        }),
      );
    }
  }

  #queueBelow(n: number): Promise<void> {
    if (this.queued <= n || this.#stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.queued <= n || this.#stopping) resolve();
        else this.#queueWaiters.push(check);
      };
      this.#queueWaiters.push(check);
    });
  }

  #wakeQueueWaiters(): void {
    const waiters = this.#queueWaiters;
    this.#queueWaiters = [];
    for (const w of waiters) w();
  }

  // ------------------------------------------------------------------ acks

  // Coalesced: one ack covers everything processed so far (acks are cumulative), sent
  // at most every ackIntervalMs; the first after a quiet spell goes at once.
  #scheduleAck(): void {
    if (this.#ackTimer !== undefined) return;
    const wait = this.#lastAckAt + this.#ackIntervalMs - Date.now();
    if (wait <= 0) {
      this.#sendAck();
      return;
    }
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.#sendAck();
    }, wait);
  }

  #sendAck(): void {
    const session = this.#workingSession();
    const id = this.#processedId;
    if (!session || id === undefined || id <= this.#ackedOnSession) return;
    try {
      session.notify(ROUTES.ack, { id });
    } catch (err) {
      this.#emitError(err as ShaddockClientError);
      return;
    }
    this.#ackedOnSession = id;
    this.#lastAckAt = Date.now();
  }

  #clearAckTimer(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  // ------------------------------------------------------------------ store

  async #readStore(): Promise<number | undefined> {
    const store = this.#opts.store;
    if (!store) return undefined;
    try {
      const v = await store.get();
      if (v === undefined) return undefined;
      if (Number.isSafeInteger(v) && v >= 0) return v;
      this.#emitError(new ShaddockClientError('CLIENT_STORE_FAILED', `the store returned ${JSON.stringify(v)}, not a message id; ignored`));
    } catch (err) {
      this.#emitError(new ShaddockClientError('CLIENT_STORE_FAILED', `reading the last id failed: ${String(err)}`, { cause: err }));
    }
    return undefined;
  }

  #writeStore(id: number): void {
    const store = this.#opts.store;
    if (!store) return;
    const failed = (err: unknown): void => this.#emitError(new ShaddockClientError('CLIENT_STORE_FAILED', `saving the last id failed: ${String(err)}`, { cause: err }));
    try {
      const r = store.set(id);
      if (isThenable(r)) r.then(undefined, failed);
    } catch (err) {
      failed(err);
    }
  }

  // ------------------------------------------------------------------ events

  #emit<K extends Exclude<ClientEventName, 'message'>>(event: K, arg: Parameters<ClientEvents<Events>[K]>[0]): void {
    const set = this.#listeners.get(event);
    if (set === undefined || set.size === 0) return;
    for (const l of [...set]) {
      try {
        (l as (a: unknown) => unknown)(arg);
      } catch (err) {
        if (event !== 'error') this.#emitError(new ShaddockClientError('CLIENT_HANDLER_FAILED', `a "${event}" listener threw: ${String(err)}`, { cause: err }));
      }
    }
  }

  // With no 'error' listener the error is dropped: the SDK never throws from a callback.
  #emitError(err: ShaddockClientError): void {
    this.#emit('error', err);
  }
}
