import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket as NetSocket } from 'node:net';
import { Server, type Socket } from 'socket.io';
import type { Logger } from '../../log.js';
import type { Hub } from '../../hub/hub.js';
import { CLOSE_REASONS } from '../../hub/connection.js';
import { DeadlineWheel } from '../deadline-wheel.js';
import { createHttpListener, listen, type HttpTimeouts, type TlsListenOptions } from '../listen.js';
import { NativeSioEncoder, PomeloSioEncoder } from './sio-encoders.js';
import { SioConnection } from './sio-connection.js';
import { settlePendingPollingClose } from './sio-internals.js';
import type { SioContext } from './sio-context.js';
import { LimitError, TICKET, releaseTicketOn, type Admission, type AdmissionTicket, type TicketHolder } from '../admission.js';

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
  /**
   * Connection limits shared by every connector (docs/security.md#limits); none when
   * absent. Every TCP connection to the port is counted at accept (listen.ts), and
   * every engine.io session — polling or WebSocket — from its handshake, as a
   * connection of its address, pending until it enters.
   */
  readonly admission?: Admission;
  /** HTTP timeouts of the port. @default headers: enterTimeoutMs, request: 30 s, keep-alive: 5 s */
  readonly http?: HttpTimeouts;
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
    this.#http = createHttpListener(notSocketIo, {
      name: 'sio',
      timeouts: opts.http ?? { headersMs: enterTimeoutMs, requestMs: 30_000, keepAliveMs: 5000 },
      tls: opts.tls,
      log: opts.log,
      admission: opts.admission,
    });
    this.#http.on('clientError', (_err, socket: NetSocket) => socket.destroy());
    const admission = opts.admission;
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
      // A new engine.io session (the handshake: no sid yet) is a connection of its
      // address, polling or not: a polling session holds no socket between its
      // requests, so counting sockets alone would let one address open sessions without
      // end. A refusal is engine.io's 403 with our reason as the message.
      ...(admission
        ? {
            allowRequest: (req: IncomingMessage, callback: (err: string | null | undefined, success: boolean) => void): void => {
              try {
                const ticket = admission.admit(req.socket.remoteAddress ?? '', { listener: 'sio' });
                (req as TicketHolder)[TICKET] = ticket;
              } catch (err) {
                if (!(err instanceof LimitError)) throw err;
                callback(err.reason, false);
                return;
              }
              callback(null, true);
            },
          }
        : {}),
    });
    this.#io.on('connection', (socket: Socket) => this.#accept(socket));
    // Every engine.io session, also one that never reached socket.io (a bad POST kills
    // it first): a polling close left pending holds a 30 s timer, and the process with it.
    this.#io.engine.on('connection', (engine: Socket['conn']) => {
      engine.once('close', () => settlePendingPollingClose(engine));
      // The session's admission ticket moves from its handshake request to the session,
      // which releases it when it closes, whatever its transports did meanwhile.
      const req = engine.request as TicketHolder;
      const ticket = req[TICKET];
      if (ticket !== undefined) {
        req[TICKET] = undefined;
        releaseTicketOn(engine, 'close', ticket);
      }
    });
    this.#io.engine.on('connection_error', (err: { req?: IncomingMessage; code?: unknown; message?: unknown }) => {
      // A handshake admitted, then failed (a bad transport, an id error): its ticket goes.
      const req = err.req as TicketHolder | undefined;
      if (req !== undefined) {
        req[TICKET]?.release();
        req[TICKET] = undefined;
      }
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
    // The session's ticket (admitted at its handshake): this connection counts its
    // requests and its enter on it; the session releases it.
    conn.admission = sessionTicket(socket.conn);
  }
}

/** The admission ticket an engine.io session holds (see the 'connection' listener above). */
function sessionTicket(engine: Socket['conn']): AdmissionTicket | undefined {
  return (engine as unknown as TicketHolder)[TICKET];
}
