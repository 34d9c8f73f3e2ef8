import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import type { Logger } from '../../log.js';
import type { Hub } from '../../hub/hub.js';
import { CLOSE_REASONS } from '../../hub/connection.js';
import { buildRouteDictionary } from '../../protocol/pomelo/dictionary.js';
import { protosVersion } from '../../protocol/pomelo/handshake.js';
import type { ParsedProtos } from '../../protocol/pomelo/protobuf.js';
import { LinkedSet } from '../linked-set.js';
import { DeadlineWheel, type ExpiringItem, type WheelItem } from '../deadline-wheel.js';
import { HANDLER_ROUTES } from '../pomelo-routes.js';
import { listen, closeServer, createSocketServer, destroyOnError, peerAddress, type TlsListenOptions } from '../listen.js';
import { LimitError, refuseUpgrade, type Admission, type AdmissionTicket } from '../admission.js';
import { encodeKick } from '../../protocol/pomelo/package.js';
import { HybridEncoder } from './hybrid-encoder.js';
import { HybridConnection, TcpHybridConnection, WsHybridConnection, onAcceptedSocketClose, takeHeldTicket, holdTicket } from './hybrid-connection.js';
import type { HybridContext } from './hybrid-context.js';

export interface HybridConnectorOptions {
  readonly hub: Hub;
  readonly log: Logger;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Sent to clients in the handshake, seconds. */
  readonly heartbeatSeconds: number;
  readonly heartbeatTimeoutSeconds: number;
  readonly handshakeTimeoutSeconds: number;
  /** Largest package body accepted, bytes. */
  readonly maxPackageBytes: number;
  /** Extra dictionary routes (docs/pomelo-protocol.md §8.1 step 4), e.g. push events. */
  readonly dictionaryRoutes: readonly string[];
  /** Pomelo protobuf protos, already parsed; JSON bodies when absent. */
  readonly protos?: { readonly server: ParsedProtos; readonly client: ParsedProtos };
  /**
   * Serve TLS only (docs/tls.md): raw TCP becomes TLS and WebSocket becomes wss://, still
   * told apart by the first decrypted bytes.
   */
  readonly tls?: TlsListenOptions | undefined;
  /** Connection limits shared by every connector (docs/security.md#limits); none when absent. */
  readonly admission?: Admission;
}

/** A refused socket has this long to show whether it speaks TCP or WebSocket before it is dropped, ms. */
const REFUSAL_WAIT_MS = 1000;

/**
 * Pomelo's hybrid connector: raw TCP and WebSocket on one port, told apart by the
 * first bytes (docs/pomelo-protocol.md §10.1).
 */
export class HybridConnector {
  readonly #net: NetServer;
  readonly #http: HttpServer;
  readonly #wss: WebSocketServer;
  readonly #ctx: HybridContext;
  readonly #opts: HybridConnectorOptions;
  readonly #refusals = new WeakMap<Socket, LimitError>();
  /** WebSocket sockets whose upgrade request is not complete yet, with their handshake deadline. */
  readonly #upgrading = new WeakMap<Socket, PendingSocket>();
  #port = 0;

  constructor(opts: HybridConnectorOptions) {
    this.#opts = opts;
    const dictionary = buildRouteDictionary(HANDLER_ROUTES, opts.dictionaryRoutes);
    const protos = opts.protos
      ? { server: opts.protos.server, client: opts.protos.client, version: protosVersion(opts.protos.client, opts.protos.server) }
      : undefined;
    const connections = new LinkedSet<HybridConnection>();
    this.#ctx = {
      hub: opts.hub,
      log: opts.log,
      encoder: new HybridEncoder(dictionary, protos?.server),
      wheel: new DeadlineWheel<ExpiringItem>((item) => item.expire(), 1000),
      connections,
      heartbeatSeconds: opts.heartbeatSeconds,
      heartbeatTimeoutMs: opts.heartbeatTimeoutSeconds * 1000,
      handshakeTimeoutMs: opts.handshakeTimeoutSeconds * 1000,
      maxPackageBytes: opts.maxPackageBytes,
      dictionary,
      protos,
    };
    // No client tracking: the connector keeps its connections itself, and ws's tracking
    // costs a set entry, a closure and a second 'close' listener per WebSocket (~200 bytes).
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPackageBytes + 4, perMessageDeflate: false, clientTracking: false });
    this.#http = createHttpServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close', upgrade: 'websocket' });
      res.end('This is the Pomelo hybrid connector: connect with WebSocket or raw TCP.\n');
    });
    this.#http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const upgrading = this.#upgrading.get(socket);
      if (upgrading !== undefined) {
        this.#upgrading.delete(socket);
        this.#ctx.wheel.disarm(upgrading);
      }
      const refusal = this.#refusals.get(socket);
      if (refusal) {
        opts.hub.observer.refused('hybrid-ws', refusal.code, refusal.message, undefined, socket.remoteAddress);
        refuseUpgrade(socket, refusal);
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        const address = peerAddress(req.socket);
        const ticket = takeHeldTicket(socket);
        const conn = new WsHybridConnection(this.#ctx, ws, ticket?.address ?? address);
        // The connection releases the ticket from here on (its close comes once): the
        // socket's listener goes, and with it a second 'close' listener (an array) per socket.
        socket.off('close', onAcceptedSocketClose);
        // ws handles the socket's errors now: ours would make its 'error' listeners an array.
        socket.off('error', destroyOnError);
        conn.admission = ticket;
        connections.add(conn);
      });
    });
    this.#http.on('clientError', (_err, socket: Socket) => socket.destroy());
    // With TLS, #accept sees the socket after its handshake, and sniffs the cleartext.
    this.#net = createSocketServer((socket) => this.#accept(socket), { tls: opts.tls, log: opts.log, name: 'hybrid', admission: opts.admission });
  }

  get port(): number {
    return this.#port;
  }

  get connectionCount(): number {
    return this.#ctx.connections.size;
  }

  async listen(): Promise<number> {
    this.#port = await listen(this.#net, this.#opts.host, this.#opts.port);
    this.#ctx.wheel.start();
    return this.#port;
  }

  /** Stops accepting, kicks every connection with a reason and waits for them to close. */
  async close(reason: string = CLOSE_REASONS.shutdown): Promise<void> {
    this.#ctx.wheel.stop();
    const closing = closeServer(this.#net);
    for (const conn of [...this.#ctx.connections]) conn.close(reason);
    await closing;
    this.#wss.close();
    this.#http.close();
  }

  // The first chunk decides: an HTTP method means WebSocket, anything else is
  // Pomelo's package framing (whose first byte is a package type, 1 to 5).
  #accept(socket: Socket): void {
    // A shared function, not a closure: a closure here would keep this call's context
    // (the pending state below) alive for the connection's life.
    socket.on('error', destroyOnError);
    // One shared 'close' listener for the socket's whole life (hybrid-connection.ts):
    // the ticket rides on the socket, so no closure or map entry per connection.
    socket.on('close', onAcceptedSocketClose);
    const remoteAddress = peerAddress(socket);
    let ticket: AdmissionTicket | undefined;
    let refusal: LimitError | undefined;
    try {
      ticket = this.#opts.admission?.admit(remoteAddress, { listener: 'hybrid' });
    } catch (err) {
      if (!(err instanceof LimitError)) throw err;
      refusal = err;
    }
    if (ticket) holdTicket(socket, ticket);
    if (refusal) this.#refusals.set(socket, refusal);
    // A socket that sends nothing at all is dropped at the handshake deadline.
    const pending = new PendingSocket(socket);
    this.#ctx.wheel.arm(pending, refusal ? REFUSAL_WAIT_MS : this.#ctx.handshakeTimeoutMs);
    const disarm = (): void => this.#ctx.wheel.disarm(pending);
    socket.once('close', disarm);
    socket.once('data', (chunk: Buffer) => {
      // Not kept for the connection's life: the listener held the PendingSocket and two closures per idle connection.
      socket.off('close', disarm);
      disarm();
      const first = chunk[0];
      if (first === 0x47 /* G */ || first === 0x50 /* P */ || first === 0x48 /* H */) {
        // The HTTP parser below enforces no header timeout (its server never listens):
        // the handshake deadline stays armed until the upgrade request is complete, so
        // headers sent a byte at a time cannot hold the connection open.
        this.#ctx.wheel.arm(pending, refusal ? REFUSAL_WAIT_MS : this.#ctx.handshakeTimeoutMs);
        this.#upgrading.set(socket, pending);
        socket.pause();
        socket.unshift(chunk);
        this.#http.emit('connection', socket);
        process.nextTick(() => socket.resume());
        return;
      }
      if (refusal) {
        // Pomelo's way to say why: a kick with the reason (docs/pomelo-protocol.md §7), then close.
        this.#opts.log.debug({ remote: remoteAddress, code: refusal.code }, 'hybrid connection refused');
        this.#opts.hub.observer.refused('hybrid-tcp', refusal.code, refusal.message, undefined, remoteAddress);
        socket.end(encodeKick(refusal.reason));
        return;
      }
      const conn = new TcpHybridConnection(this.#ctx, socket, ticket?.address ?? remoteAddress);
      conn.admission = ticket;
      this.#ctx.connections.add(conn);
      conn.onData(chunk);
    });
  }
}


/** A socket that has not sent its first bytes yet (we do not know TCP from WebSocket). */
class PendingSocket implements ExpiringItem {
  wheelSlot = -1;
  wheelNext: WheelItem | undefined = undefined;
  wheelPrev: WheelItem | undefined = undefined;
  constructor(readonly socket: Socket) {}
  expire(): void {
    this.socket.destroy();
  }
}
