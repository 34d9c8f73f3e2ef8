import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket as NetSocket } from 'node:net';
import { Server, type Socket } from 'socket.io';
import type { Logger } from '../../log.js';
import type { Hub } from '../../hub/hub.js';
import { CLOSE_REASONS } from '../../hub/connection.js';
import { DeadlineWheel } from '../deadline-wheel.js';
import { closeFailedHandshakes, listen, tlsServerOptions, type TlsListenOptions } from '../listen.js';
import { NativeSioEncoder, PomeloSioEncoder } from './sio-encoders.js';
import { SioConnection } from './sio-connection.js';
import { settlePendingPollingClose } from './sio-internals.js';
import type { SioContext } from './sio-context.js';
import { LimitError, releaseTicketOn, type Admission } from '../admission.js';

export interface SioConnectorOptions {
  readonly hub: Hub;
  readonly log: Logger;
  readonly host: string;
  /** 0 picks a free port. The seed's `sio-connector` used 3010. */
  readonly port: number;
  /** Largest socket.io message a client may send (engine.io `maxHttpBufferSize`), bytes; bigger ones close the connection. */
  readonly maxPayloadBytes: number;
  /** engine.io ping interval, milliseconds. @default 25000 (socket.io's default) */
  readonly pingIntervalMs?: number;
  /** engine.io ping timeout, milliseconds. @default 20000 (socket.io's default) */
  readonly pingTimeoutMs?: number;
  /** A socket that has not entered (client or manager) by then is kicked, milliseconds. @default 10000 */
  readonly enterTimeoutMs?: number;
  /** Serve HTTPS/WSS only (docs/tls.md); the TLS handshake has `tls.handshakeTimeoutMs`. */
  readonly tls?: TlsListenOptions | undefined;
  /** Connection limits shared by every connector (docs/security.md#limits); none when absent. */
  readonly admission?: Admission;
}

/** The path the seed's sioconnector served (docs/pomelo-protocol.md §11.1). */
export const SIO_PATH = '/socket.io';

/** How long shutdown waits for kicked clients to take their kick, milliseconds. */
const SHUTDOWN_GRACE_MS = 1000;

/**
 * The socket.io connector (the seed's `sio-connector`): a socket.io v4 server that
 * also accepts socket.io 1.x/2.x clients (EIO3, docs/pomelo-protocol.md §11.1), with two APIs on one
 * port: Pomelo's sioconnector framing (`message` strings, docs/pomelo-protocol.md §11.3/§11.4) and a
 * native event API (docs/connectors.md).
 */
export class SioConnector {
  readonly #opts: SioConnectorOptions;
  readonly #http: HttpServer | HttpsServer;
  readonly #io: Server;
  readonly #ctx: SioContext;
  #port = 0;
  #closing: Promise<void> | undefined;

  constructor(opts: SioConnectorOptions) {
    this.#opts = opts;
    const enterTimeoutMs = opts.enterTimeoutMs ?? 10_000;
    const connections = new Map<Socket, SioConnection>();
    this.#ctx = {
      hub: opts.hub,
      log: opts.log,
      pomeloEncoder: new PomeloSioEncoder(),
      nativeEncoder: new NativeSioEncoder((socket, id) => {
        connections.get(socket as Socket)?.ackFromCallback(id);
      }),
      // One coarse clock for every enter deadline (docs/conventions.md §5), fine enough for short test timeouts.
      wheel: new DeadlineWheel<SioConnection>((c) => c.expire(), Math.min(1000, Math.max(50, Math.floor(enterTimeoutMs / 4)))),
      connections,
      enterTimeoutMs,
    };
    const notSocketIo = (_req: IncomingMessage, res: ServerResponse): void => {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`This is the socket.io connector: connect with a socket.io client (v2 to v4) on path ${SIO_PATH}.\n`);
    };
    if (opts.tls) {
      const https = createHttpsServer(tlsServerOptions(opts.tls), notSocketIo);
      closeFailedHandshakes(https, opts.log, 'sio');
      this.#http = https;
    } else {
      this.#http = createHttpServer(notSocketIo);
    }
    this.#http.on('clientError', (_err, socket: NetSocket) => socket.destroy());
    this.#io = new Server(this.#http, {
      path: SIO_PATH,
      serveClient: false,
      // docs/pomelo-protocol.md §11.1: Pomelo 2.x clients are socket.io-client 1.x/2.x, engine.io protocol 3.
      allowEIO3: true,
      // docs/pomelo-protocol.md §11.2: the transports must be listed, or nothing connects.
      transports: ['polling', 'websocket'],
      maxHttpBufferSize: opts.maxPayloadBytes,
      ...(opts.pingIntervalMs !== undefined ? { pingInterval: opts.pingIntervalMs } : {}),
      ...(opts.pingTimeoutMs !== undefined ? { pingTimeout: opts.pingTimeoutMs } : {}),
      // An engine.io session that never joins the namespace is dropped as fast as one that never enters.
      connectTimeout: enterTimeoutMs,
      // Clients authenticate with their apikey or secret in a message, never with
      // cookies, so any page may use the polling transport (browsers need CORS for it).
      cors: { origin: '*' },
    });
    this.#io.on('connection', (socket: Socket) => this.#accept(socket));
    // Every engine.io session, also one that never reached socket.io (a bad POST kills
    // it first): a polling close left pending holds a 30 s timer, and the process with it.
    this.#io.engine.on('connection', (engine: Socket['conn']) => engine.once('close', () => settlePendingPollingClose(engine)));
    this.#io.engine.on('connection_error', (err: { code?: unknown; message?: unknown }) => {
      opts.log.debug({ code: err.code, message: err.message }, 'engine.io connection refused');
    });
  }

  get port(): number {
    return this.#port;
  }

  /** Live socket.io connections, entered or not. */
  get connectionCount(): number {
    return this.#ctx.connections.size;
  }

  async listen(): Promise<number> {
    this.#port = await listen(this.#http, this.#opts.host, this.#opts.port);
    this.#ctx.wheel.start();
    return this.#port;
  }

  /**
   * Stops accepting, kicks every connection with a reason, gives them a moment to
   * take the kick, then closes what is left and the HTTP server.
   */
  close(reason: string = CLOSE_REASONS.shutdown): Promise<void> {
    this.#closing ??= this.#close(reason);
    return this.#closing;
  }

  async #close(reason: string): Promise<void> {
    this.#ctx.wheel.stop();
    const engines = [...this.#ctx.connections.keys()].map((s) => s.conn);
    for (const conn of [...this.#ctx.connections.values()]) conn.close(reason);
    // Kicks to polling clients wait for the client's next GET: let them go out.
    const pending = engines
      .filter((e) => e.readyState !== 'closed')
      .map((e) => new Promise<void>((resolve) => e.once('close', () => resolve())));
    if (pending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(pending),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const engine of engines) settlePendingPollingClose(engine);
    // Ends every engine.io session left, then closes the HTTP server and waits for its
    // sockets; idle keep-alive sockets of polling clients would hold it until they time
    // out, so they are dropped once engine.io has answered every pending request.
    const closing = this.#io.close();
    setImmediate(() => this.#http.closeAllConnections());
    await closing;
  }

  #accept(socket: Socket): void {
    const conn = new SioConnection(this.#ctx, socket);
    this.#ctx.connections.set(socket, conn);
    if (this.#closing !== undefined) {
      conn.close(CLOSE_REASONS.shutdown);
      return;
    }
    try {
      const ticket = this.#opts.admission?.admit(socket.handshake.address);
      if (ticket) {
        conn.admission = ticket;
        releaseTicketOn(socket, 'disconnect', ticket);
      }
    } catch (err) {
      if (!(err instanceof LimitError)) throw err;
      // The socket.io way to say no: a kick with the reason in both APIs, then DISCONNECT.
      conn.reject(err);
    }
  }
}
