/**
 * One connection to a Pomelo hybrid server: handshake, heartbeats, requests and
 * notifies, pushes and kicks (docs/pomelo-protocol.md §4–§7). It knows
 * nothing of Shaddock's routes or of reconnecting; client.ts does.
 */
import {
  HANDSHAKE_ACK_PACKAGE,
  HEARTBEAT_PACKAGE,
  MAX_REQUEST_ID,
  MessageType,
  PackageReader,
  PackageType,
  decodeJson,
  decodeServerMessage,
  encodeClientMessage,
  encodeHandshake,
  encodeJson,
  parseHandshakeReply,
  parseKick,
  type HandshakeReply,
  type Package,
} from './codec.js';
import { ShaddockClientError } from './errors.js';
import type { Transport, TransportFactory } from './transport.js';

type Timer = ReturnType<typeof setTimeout>;

export interface SessionOptions {
  readonly url: string;
  readonly transport: TransportFactory;
  /** Opening the transport plus the handshake, ms. */
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Largest package body accepted, bytes. */
  readonly maxPackageBytes: number;
  /** `sys.type` and `sys.version` of the handshake (docs/pomelo-protocol.md §4.2). */
  readonly clientType: string;
  readonly clientVersion: string;
}

export interface SessionEvents {
  /** A push: its route and its raw body (JSON unless the route has a proto). */
  push(route: string, body: Uint8Array): void;
  /** The server kicked this connection (docs/pomelo-protocol.md §7); `closed` follows. */
  kicked(reason: string): void;
  /** Called once, whatever ended the session (also a failed open). */
  closed(reason: string, error: ShaddockClientError | undefined): void;
}

interface PendingRequest {
  readonly resolve: (body: unknown) => void;
  readonly reject: (err: ShaddockClientError) => void;
  readonly timer: Timer;
  readonly route: string;
}

const State = { OPENING: 0, HANDSHAKING: 1, WORKING: 2, CLOSED: 3 } as const;
type State = (typeof State)[keyof typeof State];

/** docs/pomelo-protocol.md §5: the reference client checks its heartbeat deadline with 100 ms of tolerance. */
const HEARTBEAT_GAP_MS = 100;

export class HybridSession {
  readonly url: string;
  readonly #opts: SessionOptions;
  readonly #events: SessionEvents;
  readonly #reader: PackageReader;
  readonly #pending = new Map<number, PendingRequest>();
  #transport: Transport | undefined;
  #state: State = State.OPENING;
  #handshake: HandshakeReply | undefined;
  #nextId = 1;
  #openTimer: Timer | undefined;
  #opened: { resolve: () => void; reject: (err: ShaddockClientError) => void } | undefined;
  #heartbeatMs = 0;
  #heartbeatTimer: Timer | undefined;
  #deadlineTimer: Timer | undefined;
  #deadline = 0;

  constructor(opts: SessionOptions, events: SessionEvents) {
    this.url = opts.url;
    this.#opts = opts;
    this.#events = events;
    this.#reader = new PackageReader(opts.maxPackageBytes);
  }

  get closed(): boolean {
    return this.#state === State.CLOSED;
  }

  /** Opens the transport and completes the handshake (docs/pomelo-protocol.md §4). Rejects if that fails. */
  open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#opened = { resolve, reject };
      this.#openTimer = setTimeout(() => {
        this.#fail(new ShaddockClientError('CLIENT_HANDSHAKE_FAILED', `no handshake with ${this.url} within ${this.#opts.connectTimeoutMs} ms`, { url: this.url }));
      }, this.#opts.connectTimeoutMs);
      try {
        this.#transport = this.#opts.transport(this.url, {
          open: () => {
            if (this.#state !== State.OPENING) return;
            this.#state = State.HANDSHAKING;
            this.#send(encodeHandshake(this.#opts.clientType, this.#opts.clientVersion));
          },
          data: (bytes) => this.#onData(bytes),
          close: (reason) => this.#onTransportClosed(reason),
        });
      } catch (err) {
        this.#fail(
          err instanceof ShaddockClientError ? err : new ShaddockClientError('CLIENT_BAD_URL', `cannot open ${this.url}: ${String(err)}`, { url: this.url, cause: err }),
        );
      }
    });
  }

  /**
   * Sends a request and resolves with the decoded response body (docs/pomelo-protocol.md §6). Rejects
   * with CLIENT_REQUEST_TIMEOUT, or CLIENT_DISCONNECTED when the session ends first.
   */
  request(route: string, body: unknown): Promise<unknown> {
    if (this.#state !== State.WORKING) {
      return Promise.reject(new ShaddockClientError('CLIENT_DISCONNECTED', `not connected: cannot send ${route}`, { url: this.url }));
    }
    const id = this.#nextId;
    this.#nextId = id >= MAX_REQUEST_ID ? 1 : id + 1;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new ShaddockClientError('CLIENT_REQUEST_TIMEOUT', `no answer to ${route} within ${this.#opts.requestTimeoutMs} ms`, { url: this.url }));
      }, this.#opts.requestTimeoutMs);
      this.#pending.set(id, { resolve, reject, timer, route });
      try {
        this.#send(encodeClientMessage(id, this.#routeOnWire(route), encodeJson(body)));
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(err instanceof ShaddockClientError ? err : new ShaddockClientError('PROTO_BAD_MESSAGE', String(err), { cause: err }));
      }
    });
  }

  /** Sends a notify (no answer, docs/pomelo-protocol.md §6); does nothing unless the session is working. */
  notify(route: string, body: unknown): void {
    if (this.#state !== State.WORKING) return;
    this.#send(encodeClientMessage(undefined, this.#routeOnWire(route), encodeJson(body)));
  }

  /** Closes the transport (after flushing what was sent) and ends the session. */
  close(reason: string): void {
    if (this.#state === State.CLOSED) return;
    const t = this.#transport;
    this.#end(reason, undefined);
    t?.close();
  }

  // docs/pomelo-protocol.md §8.2: a route in the dictionary may be sent as its 2-byte code.
  #routeOnWire(route: string): string | number {
    return this.#handshake?.routeToCode.get(route) ?? route;
  }

  #send(bytes: Uint8Array): void {
    this.#transport?.send(bytes);
  }

  #onData(bytes: Uint8Array): void {
    if (this.#state === State.CLOSED) return;
    let packages: Package[];
    try {
      packages = this.#reader.push(bytes);
    } catch (err) {
      this.#fail(err as ShaddockClientError);
      return;
    }
    for (const pkg of packages) {
      try {
        this.#onPackage(pkg);
      } catch (err) {
        this.#fail(err instanceof ShaddockClientError ? err : new ShaddockClientError('PROTO_BAD_MESSAGE', String(err), { cause: err, url: this.url }));
        return;
      }
      // A kick or a failure above may have ended the session.
      if (this.closed) return;
    }
  }

  #onPackage(pkg: Package): void {
    // docs/pomelo-protocol.md §5: every package from the server proves the connection is alive.
    if (this.#deadlineTimer !== undefined) this.#deadline = Date.now() + 2 * this.#heartbeatMs;
    switch (pkg.type) {
      case PackageType.HANDSHAKE:
        this.#onHandshake(pkg.body);
        return;
      case PackageType.HEARTBEAT:
        this.#onHeartbeat();
        return;
      case PackageType.DATA:
        if (this.#state !== State.WORKING) return;
        this.#onMessage(pkg.body);
        return;
      case PackageType.KICK: {
        const reason = parseKick(pkg.body);
        this.#events.kicked(reason);
        this.close(`kicked: ${reason}`);
        return;
      }
      case PackageType.HANDSHAKE_ACK:
        // Only clients send it; ignore, as a server ignores what it does not expect (§4.1).
        return;
      default:
        return assertNever(pkg.type);
    }
  }

  #onHandshake(body: Uint8Array): void {
    if (this.#state !== State.HANDSHAKING) return;
    let reply: HandshakeReply;
    try {
      reply = parseHandshakeReply(body);
    } catch (err) {
      const e = err as ShaddockClientError;
      this.#fail(new ShaddockClientError('CLIENT_HANDSHAKE_FAILED', `${this.url}: ${e.message}`, { url: this.url, cause: e }));
      return;
    }
    this.#handshake = reply;
    this.#heartbeatMs = (reply.heartbeatSeconds ?? 0) * 1000;
    this.#send(HANDSHAKE_ACK_PACKAGE);
    this.#state = State.WORKING;
    clearTimeout(this.#openTimer);
    this.#openTimer = undefined;
    const opened = this.#opened;
    this.#opened = undefined;
    opened?.resolve();
  }

  // docs/pomelo-protocol.md §5, the reference client's rule: after a server heartbeat wait `heartbeat`
  // seconds, send one, then expect some package within 2 × heartbeat.
  #onHeartbeat(): void {
    if (this.#state !== State.WORKING || this.#heartbeatMs === 0) return;
    if (this.#heartbeatTimer !== undefined) return;
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.#heartbeatTimer = setTimeout(() => {
      this.#heartbeatTimer = undefined;
      if (this.#state !== State.WORKING) return;
      this.#send(HEARTBEAT_PACKAGE);
      this.#deadline = Date.now() + 2 * this.#heartbeatMs;
      this.#armDeadline(2 * this.#heartbeatMs);
    }, this.#heartbeatMs);
  }

  #armDeadline(ms: number): void {
    this.#deadlineTimer = setTimeout(() => {
      const left = this.#deadline - Date.now();
      if (left > HEARTBEAT_GAP_MS) {
        this.#armDeadline(left);
        return;
      }
      this.#deadlineTimer = undefined;
      this.close('heartbeat timeout');
    }, ms);
  }

  #onMessage(body: Uint8Array): void {
    const msg = decodeServerMessage(body);
    if (msg.type === MessageType.RESPONSE) {
      const req = this.#pending.get(msg.id);
      if (!req) return; // answered after its timeout
      this.#pending.delete(msg.id);
      clearTimeout(req.timer);
      try {
        req.resolve(decodeJson(msg.body));
      } catch (err) {
        req.reject(err as ShaddockClientError);
      }
      return;
    }
    const route = typeof msg.route === 'number' ? this.#handshake?.codeToRoute.get(msg.route) : msg.route;
    if (route === undefined) throw new ShaddockClientError('PROTO_BAD_MESSAGE', `push with unknown route code ${String(msg.route)}`, { url: this.url });
    this.#events.push(route, msg.body);
  }

  /** Whether the server encodes this push route as protobuf (the SDK reads JSON only). */
  isProtobufRoute(route: string): boolean {
    return this.#handshake?.protobufRoutes.has(route) ?? false;
  }

  #fail(err: ShaddockClientError): void {
    if (this.#state === State.CLOSED) return;
    const t = this.#transport;
    this.#end(err.message, err);
    t?.close();
  }

  #onTransportClosed(reason: string): void {
    this.#end(reason, undefined);
  }

  #end(reason: string, error: ShaddockClientError | undefined): void {
    if (this.#state === State.CLOSED) return;
    this.#state = State.CLOSED;
    clearTimeout(this.#openTimer);
    clearTimeout(this.#heartbeatTimer);
    clearTimeout(this.#deadlineTimer);
    this.#openTimer = this.#heartbeatTimer = this.#deadlineTimer = undefined;
    for (const [id, req] of this.#pending) {
      clearTimeout(req.timer);
      req.reject(new ShaddockClientError('CLIENT_DISCONNECTED', `connection closed before ${req.route} was answered (${reason})`, { url: this.url }));
      this.#pending.delete(id);
    }
    const opened = this.#opened;
    this.#opened = undefined;
    opened?.reject(error ?? new ShaddockClientError('CLIENT_DISCONNECTED', `${this.url}: ${reason}`, { url: this.url }));
    this.#events.closed(reason, error);
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
