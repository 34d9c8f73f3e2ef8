import type { SetLinks } from '../linked-set.js';
import type { Member } from '../../hub/members.js';
import type { EnteredAs } from '../../hub/observer.js';
import type { Socket } from 'node:net';
import { destroyOnError } from '../listen.js';
import type { WebSocket } from 'ws';
import {
  HEARTBEAT_PACKAGE,
  PackageReader,
  PackageType,
  decodeSinglePackage,
  encodeKick,
  type Package,
} from '../../protocol/pomelo/package.js';
import { MessageType, decodeMessage, encodeResponsePackage, type Message } from '../../protocol/pomelo/message.js';
import { decodeProtobuf, hasProto } from '../../protocol/pomelo/protobuf.js';
import {
  encodeHandshakeFailure,
  encodeHandshakeReply,
  parseHandshakeRequest,
} from '../../protocol/pomelo/handshake.js';
import { ProtocolError, isProtocolError } from '../../protocol/errors.js';
import { PEER_CLOSED } from '../../hub/observer.js';
import { CLOSE_REASONS, allocateConnectionId, type Connection, type ConnectorName, type PushEncoder, compactTime, expandTime } from '../../hub/connection.js';
import type { WheelItem } from '../deadline-wheel.js';
import { sendPreframed } from '../ws-frames.js';
import { corkForTurn } from '../write-coalescer.js';
import { ROUTES, handlePomeloRoute } from '../pomelo-routes.js';
import { LimitError, admissionEntered, admissionIdle, countRequest, releaseAdmission, type AdmissionTicket } from '../admission.js';
import type { HybridContext } from './hybrid-context.js';

/** How long a closing connection may take to finish before it is dropped, ms. */
const CLOSE_GRACE_MS = 2000;

/**
 * docs/pomelo-protocol.md §4.1, and ENTERED: working, and entered the hub as a client or manager (the enter
 * deadline no longer applies) — a state, not a second field per connection.
 */
const State = { INITED: 0, WAIT_ACK: 1, WORKING: 2, CLOSED: 3, ENTERED: 4 } as const;
type State = (typeof State)[keyof typeof State];

/** Past the handshake and not closed: requests and pushes flow. */
function isWorking(state: State): boolean {
  return state === State.WORKING || state === State.ENTERED;
}

/** Routes that enter the hub: their answer goes before what the hub writes meanwhile. */
const ENTER_ROUTES: ReadonlySet<string> = new Set([ROUTES.hybridEnter, ROUTES.sioEnter, ROUTES.connectorEnter]);

/** Handshake replies of each listener, by (sendDictionary ? 2 : 0) | (sendProtos ? 1 : 0). */
const HANDSHAKE_REPLIES = new WeakMap<HybridContext, Buffer[]>();

/** WebSocket close codes (RFC 6455 §7.4.1) by why we close. */
const WS_CLOSE = {
  normal: 1000,
  protocol: 1002,
  policy: 1008,
  tooBig: 1009,
} as const;

/**
 * One Pomelo hybrid connection, TCP or WebSocket: handshake, heartbeats, kick, and
 * the one place where its bytes become hub calls (docs/conventions.md §4).
 */
export abstract class HybridConnection implements Connection<Buffer>, WheelItem {
  // Helper methods are TypeScript-`private`, not `#`-private: V8 stamps a brand on every
  // instance of a class with `#` methods, one more slot per idle connection.
  readonly id = allocateConnectionId();
  /** The hub's and its observer's slots (Connection.hubMember, .enteredAs). */
  hubMember: Member | undefined = undefined;
  enteredAs: EnteredAs | undefined = undefined;
  abstract readonly connector: ConnectorName;
  readonly #connectedAt = compactTime(Date.now());
  get connectedAt(): number {
    return expandTime(this.#connectedAt);
  }
  wheelSlot = -1;
  wheelNext: WheelItem | undefined = undefined;
  wheelPrev: WheelItem | undefined = undefined;
  /** The connector's LinkedSet of open connections owns these. */
  setNext: SetLinks | undefined = undefined;
  setPrev: SetLinks | undefined = undefined;
  /** Limits bookkeeping (src/connectors/admission.ts), set by the connector. */
  admission: AdmissionTicket | undefined;
  #state: State = State.INITED;
  /**
   * One slot for two things that never overlap: while an enter is in flight, the hub's
   * writes that wait for its answer (so the answer goes first, then the backlog, as on
   * the plain WebSocket connector); once closed by the server, why (for the close
   * report; unset: the peer went first).
   */
  #heldOrCloseReason: Buffer[] | string | undefined;
  readonly ctx: HybridContext;

  constructor(ctx: HybridContext) {
    this.ctx = ctx;
    ctx.wheel.arm(this, ctx.handshakeTimeoutMs);
  }

  get encoder(): PushEncoder<Buffer> {
    return this.ctx.encoder;
  }

  get closed(): boolean {
    return this.#state === State.CLOSED;
  }

  abstract readonly remoteAddress: string;
  abstract get bufferedBytes(): number;
  write(bytes: Buffer): void {
    if (!isWorking(this.#state)) return;
    const held = this.#heldOrCloseReason;
    if (Array.isArray(held)) held.push(bytes);
    else this.writeEncoded(bytes);
  }

  /** Bytes of hub writes held until an enter is answered (part of `bufferedBytes`). */
  protected get heldBytes(): number {
    const held = this.#heldOrCloseReason;
    if (!Array.isArray(held)) return 0;
    let n = 0;
    for (const b of held) n += b.length;
    return n;
  }

  /** Writes what waited for the enter's answer, in the order the hub wrote it. */
  private releaseHeld(): void {
    const held = this.#heldOrCloseReason;
    if (!Array.isArray(held)) return;
    this.#heldOrCloseReason = undefined;
    if (isWorking(this.#state)) for (const bytes of held) this.writeEncoded(bytes);
  }
  /** Writes what `encoder` produced (the WebSocket side gets whole frames). */
  protected writeEncoded(bytes: Buffer): void {
    this.writeRaw(bytes);
  }
  protected abstract writeRaw(bytes: Buffer): void;
  /** Ends the transport; `wsCode` for WebSocket, `hard` drops what is buffered. */
  protected abstract endTransport(wsCode: number, reason: string, hard: boolean): void;

  /** The wheel says a deadline passed: no handshake in time, no heartbeat, or a close that did not finish. */
  expire(): void {
    if (this.#state === State.CLOSED) this.destroyTransport();
    else if (this.#state === State.ENTERED) this.close(CLOSE_REASONS.heartbeatTimeout);
    else this.close(CLOSE_REASONS.handshakeTimeout);
  }

  /** Drops the transport at once (a peer that never finished closing). */
  protected abstract destroyTransport(): void;

  /** Kick with a reason (docs/pomelo-protocol.md §7), then close. */
  close(reason: string): void {
    if (this.#state === State.CLOSED) return;
    const slow = reason === CLOSE_REASONS.slowConsumer;
    // A slow reader would never get the kick through its full buffer: drop at once.
    if (!slow) this.writeRaw(encodeKick(reason));
    this.finish(slow ? WS_CLOSE.policy : WS_CLOSE.normal, reason, slow);
  }

  /** Bad input: the protocol's own "no" with a reason, then close (docs/conventions.md §4). */
  reject(err: unknown): void {
    if (this.#state === State.CLOSED) return;
    const code = isProtocolError(err) || err instanceof LimitError ? err.code : 'PROTO_BAD_MESSAGE';
    const message = err instanceof Error ? err.message : String(err);
    const reason = `${code}: ${message}`.slice(0, 120);
    this.ctx.log.debug({ conn: this.id, code, reason }, 'connection rejected');
    this.ctx.hub.observer.refused(this.connector, code, message, this);
    this.writeRaw(encodeKick(reason));
    const wsCode = code === 'LIMIT_PAYLOAD' ? WS_CLOSE.tooBig : err instanceof LimitError ? WS_CLOSE.policy : WS_CLOSE.protocol;
    this.finish(wsCode, reason, false);
  }

  /** The transport closed, from either side. */
  onTransportClosed(): void {
    if (this.#state !== State.CLOSED) this.#state = State.CLOSED;
    this.ctx.wheel.disarm(this);
    this.ctx.connections.delete(this);
    this.ctx.hub.leave(this);
    releaseAdmission(this);
    const reason = this.#heldOrCloseReason;
    this.ctx.hub.observer.closed(this, typeof reason === 'string' ? reason : PEER_CLOSED);
  }

  private finish(wsCode: number, reason: string, hard: boolean): void {
    this.#state = State.CLOSED;
    // Held writes go with the connection: the client resumes from its last id.
    if (typeof this.#heldOrCloseReason !== 'string') this.#heldOrCloseReason = reason;
    // A peer that never reads would keep a half-closed socket: the wheel drops it after a grace period.
    if (hard) this.ctx.wheel.disarm(this);
    else this.ctx.wheel.arm(this, CLOSE_GRACE_MS);
    this.endTransport(wsCode, reason, hard);
  }

  /** Handles one complete package. Throws ProtocolError for input that ends the connection. */
  protected handlePackage(pkg: Package): void {
    switch (pkg.type) {
      case PackageType.HANDSHAKE:
        if (this.#state === State.INITED) this.handshake(pkg.body);
        // docs/pomelo-protocol.md §4.1: a second handshake is ignored.
        return;
      case PackageType.HANDSHAKE_ACK:
        if (this.#state !== State.WAIT_ACK) return;
        this.#state = State.WORKING;
        this.heartbeat();
        return;
      case PackageType.HEARTBEAT:
        if (isWorking(this.#state)) this.heartbeat();
        return;
      case PackageType.DATA:
        if (!isWorking(this.#state)) {
          throw new ProtocolError('PROTO_BAD_MESSAGE', 'data before the handshake completed');
        }
        this.data(pkg.body);
        return;
      case PackageType.KICK:
        throw new ProtocolError('PROTO_BAD_TYPE', 'clients may not send KICK packages');
      default:
        return assertNever(pkg.type);
    }
  }

  private handshake(body: Buffer): void {
    let request;
    try {
      request = parseHandshakeRequest(body);
    } catch (err) {
      // docs/pomelo-protocol.md §4.4: code 500, then close.
      this.ctx.log.debug({ conn: this.id, err: (err as Error).message }, 'handshake refused');
      this.ctx.hub.observer.refused(this.connector, 'PROTO_BAD_HANDSHAKE', (err as Error).message, this);
      this.#heldOrCloseReason = 'PROTO_BAD_HANDSHAKE: bad handshake';
      this.writeRaw(encodeHandshakeFailure(500));
      this.finish(WS_CLOSE.protocol, 'bad handshake', false);
      return;
    }
    const { dictionary, protos } = this.ctx;
    const sendDictionary = dictionary !== undefined && request.sys.dictVersion !== dictionary.version;
    const sendProtos = protos !== undefined && request.sys.protoVersion !== protos.version;
    // The reply depends on the listener and these two flags only: encoded once each, not
    // per connection (it carries the whole dictionary and protos; a connect-storm profile
    // had it at ~30 µs a handshake). Shared Buffers: never written into.
    let replies = HANDSHAKE_REPLIES.get(this.ctx);
    if (!replies) HANDSHAKE_REPLIES.set(this.ctx, (replies = []));
    const key = (sendDictionary ? 2 : 0) | (sendProtos ? 1 : 0);
    const reply = (replies[key] ??= encodeHandshakeReply({
      heartbeatSeconds: this.ctx.heartbeatSeconds,
      ...(dictionary ? { dictionary } : {}),
      sendDictionary,
      ...(protos ? { protos } : {}),
      sendProtos,
    }));
    this.writeRaw(reply);
    this.#state = State.WAIT_ACK;
  }

  // docs/pomelo-protocol.md §5: answer at once, then expect the next heartbeat within the timeout. Until
  // the connection has entered, the handshake deadline (counted from connect) still
  // holds: heartbeats alone do not keep an unauthenticated connection open.
  private heartbeat(): void {
    this.writeRaw(HEARTBEAT_PACKAGE);
    // An idle moment: the connection's own admission ticket can go (admission.ts).
    admissionIdle(this);
    const enterLeft = this.connectedAt + this.ctx.handshakeTimeoutMs - Date.now();
    this.ctx.wheel.arm(this, this.#state === State.ENTERED ? this.ctx.heartbeatTimeoutMs : Math.max(0, Math.min(this.ctx.heartbeatTimeoutMs, enterLeft)));
  }

  /** After a route: once the hub knows the connection, it is no longer pending. */
  private checkEntered(): void {
    if (this.#state !== State.WORKING || this.ctx.hub.identity(this) === undefined) return;
    this.#state = State.ENTERED;
    admissionEntered(this);
    this.ctx.wheel.arm(this, this.ctx.heartbeatTimeoutMs);
  }

  private data(body: Buffer): void {
    const msg = decodeMessage(body);
    if (msg.type !== MessageType.REQUEST && msg.type !== MessageType.NOTIFY) {
      throw new ProtocolError('PROTO_BAD_MESSAGE', `clients send requests and notifies, not message type ${msg.type}`);
    }
    const route = this.route(msg);
    // Acks answer what we sent, so they do not count as requests.
    if (route !== ROUTES.ack && !countRequest(this)) {
      throw new LimitError('LIMIT_REQUEST_RATE');
    }
    if (route === undefined) {
      this.answer(msg, '', { code: 500, msg: `unknown route code ${String(msg.route)}`, error: 'ROUTE_UNKNOWN' });
      return;
    }
    let decoded: unknown;
    try {
      decoded = this.decodeBody(route, msg.body);
    } catch (err) {
      const why = isProtocolError(err) ? err.message : 'undecodable body';
      this.answer(msg, route, { code: 500, msg: `bad request body: ${why}`, error: isProtocolError(err) ? err.code : 'PROTO_BAD_MESSAGE' });
      return;
    }
    // An enter's answer goes before anything the hub writes meanwhile (its backlog, live
    // messages, presence events): those wait until it is written.
    const entering = this.#state === State.WORKING && ENTER_ROUTES.has(route);
    if (entering && !Array.isArray(this.#heldOrCloseReason)) this.#heldOrCloseReason = [];
    void handlePomeloRoute(this.ctx.hub, this, route, decoded, this.ctx.log).then((resp) => {
      this.checkEntered();
      this.answer(msg, route, resp);
      if (entering) this.releaseHeld();
    });
  }

  private route(msg: Message): string | undefined {
    if (typeof msg.route === 'string') return msg.route;
    if (typeof msg.route === 'number') return this.ctx.dictionary?.codeToRoute[String(msg.route)];
    return undefined;
  }

  private decodeBody(route: string, body: Buffer): unknown {
    const clientProtos = this.ctx.protos?.client;
    if (clientProtos !== undefined && hasProto(clientProtos, route)) return decodeProtobuf(clientProtos, route, body);
    try {
      return JSON.parse(body.toString('utf8')) as unknown;
    } catch {
      throw new ProtocolError('PROTO_BAD_JSON', 'the body is not valid JSON');
    }
  }

  /** Responds to a request (docs/pomelo-protocol.md §6); a notify gets nothing. */
  private answer(msg: Message, route: string, response: unknown): void {
    if (msg.type !== MessageType.REQUEST || !isWorking(this.#state)) return;
    // Echo the id bytes as received: canonical ids are unchanged and the seed's
    // legacy big-endian ids come back as the client wrote them (docs/pomelo-protocol.md §16.2).
    const id = msg.idBytes.length > 0 ? msg.idBytes : msg.id;
    const body = this.ctx.encoder.encodeBody(route, response);
    this.writeRaw(encodeResponsePackage(id, body));
  }
}

/** Raw TCP: a byte stream split into packages (docs/pomelo-protocol.md §2.1). */
export class TcpHybridConnection extends HybridConnection {
  // A getter, not a field: one less slot per connection.
  get connector(): 'hybrid-tcp' {
    return 'hybrid-tcp';
  }
  readonly remoteAddress: string;
  readonly #socket: Socket;
  /** Only while a package is split across chunks: an idle connection holds no reader. */
  #reader: PackageReader | undefined = undefined;

  /**
   * `socket` is one the connector accepted: its one 'close' listener
   * (`onAcceptedSocketClose`) is already there, and `remoteAddress` was read once then.
   */
  constructor(ctx: HybridContext, socket: Socket, remoteAddress: string) {
    super(ctx);
    this.#socket = socket;
    this.remoteAddress = remoteAddress;
    socket.setNoDelay(true);
    // Listeners shared by every socket, which find their connection on the socket: no
    // closures, context or once-wrapper per idle connection (bench/micro/heap-summary.ts).
    (socket as HybridSocket)[HELD] = this;
    socket.on('data', onOwnedData);
    if (socket.listenerCount('error') === 0) socket.on('error', destroyOnError);
    ctx.hub.observer.opened(this);
  }

  get bufferedBytes(): number {
    return this.#socket.writableLength + this.heldBytes;
  }

  onData(chunk: Buffer): void {
    if (this.closed) return;
    let packages: Package[];
    const reader = this.#reader ?? new PackageReader({ maxPackage: this.ctx.maxPackageBytes });
    try {
      packages = reader.push(chunk);
    } catch (err) {
      this.reject(err);
      return;
    }
    this.#reader = reader.idle ? undefined : reader;
    for (const pkg of packages) {
      try {
        this.handlePackage(pkg);
      } catch (err) {
        this.reject(err);
        return;
      }
      if (this.closed) return;
    }
  }

  protected writeRaw(bytes: Buffer): void {
    if (this.#socket.destroyed) return;
    this.#socket.write(bytes);
    this.ctx.hub.observer.wrote(this.connector, bytes.length);
  }

  /** A push from the hub: coalesced with the other pushes of this turn into one writev (write-coalescer.ts). */
  protected override writeEncoded(bytes: Buffer): void {
    if (this.#socket.destroyed) return;
    corkForTurn(this.#socket);
    this.#socket.write(bytes);
    this.ctx.hub.observer.wrote(this.connector, bytes.length);
  }

  protected endTransport(_wsCode: number, _reason: string, hard: boolean): void {
    if (hard) {
      this.#socket.destroy();
      return;
    }
    this.#socket.end();
  }

  protected destroyTransport(): void {
    this.#socket.destroy();
  }
}

/**
 * What an accepted socket carries in its one symbol slot: its admission ticket, until a
 * TCP connection takes the slot (and holds the ticket itself). One property, not two:
 * each is a slot in every socket.
 */
const HELD = Symbol('hybrid socket');
export interface HybridSocket extends Socket {
  [HELD]?: AdmissionTicket | TcpHybridConnection | undefined;
}

/** Puts an accepted socket's ticket in its slot. */
export function holdTicket(socket: Socket, ticket: AdmissionTicket): void {
  (socket as HybridSocket)[HELD] = ticket;
}

/**
 * Takes the ticket out of an accepted socket's slot, for a WebSocket connection that
 * holds and releases it from here on (the socket's slot would keep it alive).
 */
export function takeHeldTicket(socket: Socket): AdmissionTicket | undefined {
  const held = (socket as HybridSocket)[HELD];
  if (held instanceof TcpHybridConnection) return undefined;
  (socket as HybridSocket)[HELD] = undefined;
  return held;
}

function onOwnedData(this: HybridSocket, chunk: Buffer): void {
  const held = this[HELD];
  if (held instanceof TcpHybridConnection) held.onData(chunk);
}

/**
 * The one 'close' listener of every accepted socket, shared: the TCP connection's close
 * once there is one, and the admission ticket's release (idempotent) in any case — a
 * WebSocket's raw socket, or one that closed before its first bytes, holds just the ticket.
 */
export function onAcceptedSocketClose(this: HybridSocket): void {
  const held = this[HELD];
  if (held instanceof TcpHybridConnection) held.onTransportClosed();
  else held?.release();
}

/** A WebSocket with the hybrid connection it carries. */
const OWNER = Symbol('hybrid connection');
interface OwnedWebSocket extends WebSocket {
  [OWNER]?: WsHybridConnection;
}

function onOwnedMessage(this: OwnedWebSocket, data: Buffer): void {
  this[OWNER]?.onMessage(data);
}

function onOwnedWsClose(this: OwnedWebSocket): void {
  this[OWNER]?.onTransportClosed();
}

function terminateOnError(this: WebSocket): void {
  this.terminate();
}

/** WebSocket: one package per message (docs/pomelo-protocol.md §2.3), binary frames out. */
export class WsHybridConnection extends HybridConnection {
  // A getter, not a field: one less slot per connection.
  get connector(): 'hybrid-ws' {
    return 'hybrid-ws';
  }
  readonly remoteAddress: string;
  readonly #ws: WebSocket;

  constructor(ctx: HybridContext, ws: WebSocket, remoteAddress: string) {
    super(ctx);
    this.#ws = ws;
    this.remoteAddress = remoteAddress;
    // Shared listeners that find their connection on the WebSocket (as for TCP above).
    (ws as OwnedWebSocket)[OWNER] = this;
    ws.on('message', onOwnedMessage);
    ws.on('error', terminateOnError);
    ws.on('close', onOwnedWsClose); // 'close' comes once
    ctx.hub.observer.opened(this);
  }

  override get encoder(): PushEncoder<Buffer> {
    return this.ctx.encoder.ws;
  }

  get bufferedBytes(): number {
    return this.#ws.bufferedAmount + this.heldBytes;
  }

  onMessage(data: Buffer): void {
    if (this.closed) return;
    try {
      this.handlePackage(decodeSinglePackage(data, { maxPackage: this.ctx.maxPackageBytes }));
    } catch (err) {
      this.reject(err);
    }
  }

  protected writeRaw(bytes: Buffer): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    this.#ws.send(bytes, { binary: true });
    this.ctx.hub.observer.wrote(this.connector, bytes.length);
  }

  /** A push from the hub: a whole binary frame built once for every socket (ws-frames.ts). */
  protected override writeEncoded(frame: Buffer): void {
    sendPreframed(this.#ws, frame);
    this.ctx.hub.observer.wrote(this.connector, frame.length);
  }

  protected destroyTransport(): void {
    this.#ws.terminate();
  }

  protected endTransport(wsCode: number, reason: string, hard: boolean): void {
    if (hard) this.#ws.terminate();
    else this.#ws.close(wsCode, Buffer.byteLength(reason) > 123 ? reason.slice(0, 60) : reason);
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
