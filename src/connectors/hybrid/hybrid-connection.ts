import type { Socket } from 'node:net';
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
import { CLOSE_REASONS, allocateConnectionId, type Connection, type ConnectorName } from '../../hub/connection.js';
import type { WheelItem } from '../deadline-wheel.js';
import { handlePomeloRoute } from '../pomelo-routes.js';
import type { HybridContext } from './hybrid-context.js';

/** How long a closing connection may take to finish before it is dropped, ms. */
const CLOSE_GRACE_MS = 2000;

/** spec §4.1 */
const State = { INITED: 0, WAIT_ACK: 1, WORKING: 2, CLOSED: 3 } as const;
type State = (typeof State)[keyof typeof State];

/** WebSocket close codes (RFC 6455 §7.4.1) by why we close. */
const WS_CLOSE = {
  normal: 1000,
  protocol: 1002,
  policy: 1008,
  tooBig: 1009,
} as const;

/**
 * One Pomelo hybrid connection, TCP or WebSocket: handshake, heartbeats, kick, and
 * the one place where its bytes become hub calls (STYLE §4).
 */
export abstract class HybridConnection implements Connection<Buffer>, WheelItem {
  readonly id = allocateConnectionId();
  abstract readonly connector: ConnectorName;
  readonly connectedAt = Date.now();
  wheelSlot = -1;
  #state: State = State.INITED;
  readonly ctx: HybridContext;

  constructor(ctx: HybridContext) {
    this.ctx = ctx;
    ctx.wheel.arm(this, ctx.handshakeTimeoutMs);
  }

  get encoder(): HybridContext['encoder'] {
    return this.ctx.encoder;
  }

  get closed(): boolean {
    return this.#state === State.CLOSED;
  }

  abstract readonly remoteAddress: string;
  abstract get bufferedBytes(): number;
  write(bytes: Buffer): void {
    if (this.#state === State.WORKING) this.writeRaw(bytes);
  }
  protected abstract writeRaw(bytes: Buffer): void;
  /** Ends the transport; `wsCode` for WebSocket, `hard` drops what is buffered. */
  protected abstract endTransport(wsCode: number, reason: string, hard: boolean): void;

  /** The wheel says a deadline passed: no handshake in time, no heartbeat, or a close that did not finish. */
  expire(): void {
    if (this.#state === State.CLOSED) this.destroyTransport();
    else if (this.#state === State.WORKING) this.close(CLOSE_REASONS.heartbeatTimeout);
    else this.close(CLOSE_REASONS.handshakeTimeout);
  }

  /** Drops the transport at once (a peer that never finished closing). */
  protected abstract destroyTransport(): void;

  /** Kick with a reason (spec §7), then close. */
  close(reason: string): void {
    if (this.#state === State.CLOSED) return;
    const slow = reason === CLOSE_REASONS.slowConsumer;
    // A slow reader would never get the kick through its full buffer: drop at once.
    if (!slow) this.writeRaw(encodeKick(reason));
    this.#finish(slow ? WS_CLOSE.policy : WS_CLOSE.normal, reason, slow);
  }

  /** Bad input: the protocol's own "no" with a reason, then close (STYLE §4). */
  reject(err: unknown): void {
    if (this.#state === State.CLOSED) return;
    const code = isProtocolError(err) ? err.code : 'PROTO_BAD_MESSAGE';
    const message = err instanceof Error ? err.message : String(err);
    const reason = `${code}: ${message}`.slice(0, 120);
    this.ctx.log.debug({ conn: this.id, code, reason }, 'connection rejected');
    this.writeRaw(encodeKick(reason));
    this.#finish(code === 'LIMIT_PAYLOAD' ? WS_CLOSE.tooBig : WS_CLOSE.protocol, reason, false);
  }

  /** The transport closed, from either side. */
  onTransportClosed(): void {
    if (this.#state !== State.CLOSED) this.#state = State.CLOSED;
    this.ctx.wheel.disarm(this);
    this.ctx.connections.delete(this);
    this.ctx.hub.leave(this);
  }

  #finish(wsCode: number, reason: string, hard: boolean): void {
    this.#state = State.CLOSED;
    // A peer that never reads would keep a half-closed socket: the wheel drops it after a grace period.
    if (hard) this.ctx.wheel.disarm(this);
    else this.ctx.wheel.arm(this, CLOSE_GRACE_MS);
    this.endTransport(wsCode, reason, hard);
  }

  /** Handles one complete package. Throws ProtocolError for input that ends the connection. */
  protected handlePackage(pkg: Package): void {
    switch (pkg.type) {
      case PackageType.HANDSHAKE:
        if (this.#state === State.INITED) this.#handshake(pkg.body);
        // spec §4.1: a second handshake is ignored.
        return;
      case PackageType.HANDSHAKE_ACK:
        if (this.#state !== State.WAIT_ACK) return;
        this.#state = State.WORKING;
        this.#heartbeat();
        return;
      case PackageType.HEARTBEAT:
        if (this.#state === State.WORKING) this.#heartbeat();
        return;
      case PackageType.DATA:
        if (this.#state !== State.WORKING) {
          throw new ProtocolError('PROTO_BAD_MESSAGE', 'data before the handshake completed');
        }
        this.#data(pkg.body);
        return;
      case PackageType.KICK:
        throw new ProtocolError('PROTO_BAD_TYPE', 'clients may not send KICK packages');
      default:
        return assertNever(pkg.type);
    }
  }

  #handshake(body: Buffer): void {
    let request;
    try {
      request = parseHandshakeRequest(body);
    } catch (err) {
      // spec §4.4: code 500, then close.
      this.ctx.log.debug({ conn: this.id, err: (err as Error).message }, 'handshake refused');
      this.writeRaw(encodeHandshakeFailure(500));
      this.#finish(WS_CLOSE.protocol, 'bad handshake', false);
      return;
    }
    const { dictionary, protos } = this.ctx;
    const reply = encodeHandshakeReply({
      heartbeatSeconds: this.ctx.heartbeatSeconds,
      ...(dictionary ? { dictionary } : {}),
      sendDictionary: dictionary !== undefined && request.sys.dictVersion !== dictionary.version,
      ...(protos ? { protos } : {}),
      sendProtos: protos !== undefined && request.sys.protoVersion !== protos.version,
    });
    this.writeRaw(reply);
    this.#state = State.WAIT_ACK;
  }

  // spec §5: answer at once, then expect the next heartbeat within the timeout.
  #heartbeat(): void {
    this.writeRaw(HEARTBEAT_PACKAGE);
    this.ctx.wheel.arm(this, this.ctx.heartbeatTimeoutMs);
  }

  #data(body: Buffer): void {
    const msg = decodeMessage(body);
    if (msg.type !== MessageType.REQUEST && msg.type !== MessageType.NOTIFY) {
      throw new ProtocolError('PROTO_BAD_MESSAGE', `clients send requests and notifies, not message type ${msg.type}`);
    }
    const route = this.#route(msg);
    if (route === undefined) {
      this.#answer(msg, '', { code: 500, msg: `unknown route code ${String(msg.route)}` });
      return;
    }
    let decoded: unknown;
    try {
      decoded = this.#decodeBody(route, msg.body);
    } catch (err) {
      const why = isProtocolError(err) ? err.message : 'undecodable body';
      this.#answer(msg, route, { code: 500, msg: `bad request body: ${why}` });
      return;
    }
    void handlePomeloRoute(this.ctx.hub, this, route, decoded, this.ctx.log).then((resp) => this.#answer(msg, route, resp));
  }

  #route(msg: Message): string | undefined {
    if (typeof msg.route === 'string') return msg.route;
    if (typeof msg.route === 'number') return this.ctx.dictionary?.codeToRoute[String(msg.route)];
    return undefined;
  }

  #decodeBody(route: string, body: Buffer): unknown {
    const clientProtos = this.ctx.protos?.client;
    if (clientProtos !== undefined && hasProto(clientProtos, route)) return decodeProtobuf(clientProtos, route, body);
    try {
      return JSON.parse(body.toString('utf8')) as unknown;
    } catch {
      throw new ProtocolError('PROTO_BAD_JSON', 'the body is not valid JSON');
    }
  }

  /** Responds to a request (spec §6); a notify gets nothing. */
  #answer(msg: Message, route: string, response: unknown): void {
    if (msg.type !== MessageType.REQUEST || this.#state !== State.WORKING) return;
    // Echo the id bytes as received: canonical ids are unchanged and the seed's
    // legacy big-endian ids come back as the client wrote them (spec §16.2).
    const id = msg.idBytes.length > 0 ? msg.idBytes : msg.id;
    const body = this.ctx.encoder.encodeBody(route, response);
    this.writeRaw(encodeResponsePackage(id, body));
  }
}

/** Raw TCP: a byte stream split into packages (spec §2.1). */
export class TcpHybridConnection extends HybridConnection {
  readonly connector = 'hybrid-tcp' as const;
  readonly remoteAddress: string;
  readonly #socket: Socket;
  readonly #reader: PackageReader;

  constructor(ctx: HybridContext, socket: Socket) {
    super(ctx);
    this.#socket = socket;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.#reader = new PackageReader({ maxPackage: ctx.maxPackageBytes });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.onTransportClosed());
  }

  get bufferedBytes(): number {
    return this.#socket.writableLength;
  }

  onData(chunk: Buffer): void {
    if (this.closed) return;
    let packages: Package[];
    try {
      packages = this.#reader.push(chunk);
    } catch (err) {
      this.reject(err);
      return;
    }
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
    if (!this.#socket.destroyed) this.#socket.write(bytes);
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

/** WebSocket: one package per message (spec §2.3), binary frames out. */
export class WsHybridConnection extends HybridConnection {
  readonly connector = 'hybrid-ws' as const;
  readonly remoteAddress: string;
  readonly #ws: WebSocket;

  constructor(ctx: HybridContext, ws: WebSocket, remoteAddress: string) {
    super(ctx);
    this.#ws = ws;
    this.remoteAddress = remoteAddress;
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('error', () => ws.terminate());
    ws.once('close', () => this.onTransportClosed());
  }

  get bufferedBytes(): number {
    return this.#ws.bufferedAmount;
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
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.send(bytes, { binary: true });
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
