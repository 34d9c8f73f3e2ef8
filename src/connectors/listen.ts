import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Logger } from '../log.js';
import { tlsServerOptions, type TlsListenOptions } from '../tls.js';
import { LimitError, httpRefusal, type Admission, type AdmissionTicket } from './admission.js';
import { DESCRIPTOR_ROOM } from './descriptors.js';

export type { TlsListenOptions };
export { tlsServerOptions };

/**
 * Connections the kernel may queue for us before we accept them (the listen(2) backlog;
 * Linux caps it at `net.core.somaxconn`, so the operator's setting decides). Node's
 * default, 511, overflows in a reconnect storm: every SYN dropped costs its client a
 * 1 s, then 3 s retransmission — in 10,000-connection storms here, connects took 1.3 s
 * at the median for that reason alone (`nstat`: TcpExtListenOverflows), not for CPU.
 */
export const LISTEN_BACKLOG = 65_535;

/** Listens and resolves with the bound port, or rejects with a clear error. */
export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const why = err.code === 'EADDRINUSE' ? `port ${port} on ${host} is already in use` : err.message;
      reject(new Error(why, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

/** Stops accepting and resolves when every connection is gone. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}

/**
 * A stream listener: plain TCP, or TLS when `tls` is given. `onSocket` sees a socket
 * only once it can carry our protocol, so for TLS only after a completed handshake: a
 * failed or abandoned handshake never reaches a connector nor counts as a connection.
 */
export function createSocketServer(
  onSocket: (socket: Socket) => void,
  opts: {
    readonly tls?: TlsListenOptions | undefined;
    readonly log?: Logger;
    readonly name?: string;
    /** The node's limits: the listener's door checks the descriptor budget (the connector admits each connection itself). */
    readonly admission?: Admission | undefined;
  } = {},
): Server {
  const server = opts.tls === undefined ? createNetServer(onSocket) : createTlsServer(tlsServerOptions(opts.tls), onSocket);
  if (opts.tls !== undefined) closeFailedHandshakes(server as TlsServer, opts.log, opts.name ?? 'tls');
  if (opts.admission) guardListener(server, opts.admission, { name: opts.name ?? 'tcp', kind: 'stream' });
  return server;
}

/** Timeouts of an HTTP listener (docs/security.md#limits), milliseconds. */
export interface HttpTimeouts {
  /** A connection must send a request's headers within this (from accept, or from its last answer). */
  readonly headersMs: number;
  /** A request must arrive whole within this (not the answer: long polls and streams are unaffected). */
  readonly requestMs: number;
  /** A keep-alive connection idle this long after an answer is closed. */
  readonly keepAliveMs: number;
}

/**
 * An HTTP (or HTTPS) listener with explicit timeouts and, given the node's limits, its
 * door (guardListener): every HTTP port is built here, so a port added later is
 * counted by construction. With `reserve`, connections admitted on the descriptor
 * reserve reach `handler` only for the requests `reserve` allows; the rest are
 * answered 503 `LIMIT_DESCRIPTORS`.
 */
export function createHttpListener(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  opts: {
    readonly name: string;
    readonly timeouts: HttpTimeouts;
    readonly tls?: TlsListenOptions | undefined;
    readonly log?: Logger;
    readonly admission?: Admission | undefined;
    /** Which requests a connection on the descriptor reserve may make; no reserve when absent. */
    readonly reserve?: (method: string, path: string) => boolean;
    /** The listener's own shape of a limit's refusal; `{code, message}` when absent. */
    readonly refusal?: HttpRefusal;
  },
): HttpServer | HttpsServer {
  const reserve = opts.reserve;
  const serve = reserve
    ? (req: IncomingMessage, res: ServerResponse): void => {
        const refusal = reserveRefusal(req.socket);
        if (refusal !== undefined) {
          // One answer, then the connection goes: the reserve is for a few short requests.
          res.shouldKeepAlive = false;
          if (!reserve(req.method ?? 'GET', pathOf(req.url))) {
            const { status, headers, body } = httpRefusal(refusal);
            res.writeHead(status, { ...headers, connection: 'close' });
            res.end(body);
            return;
          }
        }
        handler(req, res);
      }
    : handler;
  // The check that enforces headersTimeout and requestTimeout runs this often (Node's
  // default, 30 s, would let a silent connection live 40 s instead of 10).
  const checking = { connectionsCheckingInterval: Math.max(250, Math.min(1000, Math.floor(opts.timeouts.headersMs / 4))) };
  let server: HttpServer | HttpsServer;
  if (opts.tls) {
    const https = createHttpsServer({ ...tlsServerOptions(opts.tls), ...checking }, serve);
    closeFailedHandshakes(https, opts.log, opts.name);
    server = https;
  } else {
    server = createHttpServer(checking, serve);
  }
  server.headersTimeout = opts.timeouts.headersMs;
  server.requestTimeout = Math.max(opts.timeouts.requestMs, opts.timeouts.headersMs);
  server.keepAliveTimeout = opts.timeouts.keepAliveMs;
  if (opts.admission) {
    guardListener(server, opts.admission, {
      name: opts.name,
      kind: 'http',
      tls: opts.tls !== undefined,
      reserve: reserve !== undefined,
      ...(opts.refusal !== undefined && { refusal: opts.refusal }),
    });
  }
  return server;
}

/** What a listener's door does at accept. */
export interface DoorOptions {
  /** The listener's name: the metrics label and log field (`http`, `sio`, `hybrid`, `mqtt`, …). */
  readonly name: string;
  /**
   * `stream`: the connector admits every connection in its accept callback and says no
   * in its own protocol (hybrid, MQTT); the door checks the descriptor budget.
   * `http`: the door also counts every TCP connection per address in the listener's
   * socket pool (maxConnectionsPerIp, connectsPerSecondPerIp) and says no with an HTTP
   * answer (`{code, message}`, Retry-After) before a byte is parsed.
   */
  readonly kind: 'stream' | 'http';
  /** The listener speaks TLS: a refusal closes without an answer (a plain-text one would be noise to the peer). */
  readonly tls?: boolean;
  /** Connections past the clients' share of descriptors may use the reserve (see createHttpListener). */
  readonly reserve?: boolean;
  /** An HTTP listener's refusal in its own protocol's shape (ntfy's error JSON); `httpRefusal` when absent. */
  readonly refusal?: HttpRefusal;
}

/** How an HTTP listener says no to a connection past a limit: status, headers, body. */
export type HttpRefusal = (err: LimitError) => { status: number; headers: Record<string, string>; body: string };

/** Connections one address (not exempt) may hold on the descriptor reserve at once. */
const RESERVE_PER_ADDRESS = 4;

/**
 * The one door of every listener: each accepted TCP connection passes here before
 * the server sees it (its 'connection' event), so a refused one never reaches a
 * parser, a handshake or a connector. It checks the process's descriptor budget and,
 * for HTTP listeners, the per-address count and connect rate of the listener's
 * sockets; every refusal is reported (`Admission.report`: metrics and a rate-limited
 * log line).
 */
export function guardListener(server: Server, admission: Admission, door: DoorOptions): void {
  const budget = admission.descriptors;
  budget?.track(() => openConnections(server));
  const pool = door.kind === 'http' ? admission.socketPool(door.name) : undefined;
  // With neither per-address limit on (the benchmarks), or for an exempt address, a
  // socket carries no ticket: nothing to count, and no bytes per connection spent on it.
  const counting = pool !== undefined && (admission.limits.maxConnectionsPerIp > 0 || admission.limits.connectsPerSecondPerIp > 0);
  const reserved = new Map<string, number>();
  const refuse = (socket: Socket, err: LimitError, address: string, answer: boolean): false => {
    admission.report(door.name, err.code, address);
    if (answer && door.kind === 'http' && door.tls !== true) refuseHttpConnection(socket, err, door.refusal);
    else socket.destroy();
    return false;
  };
  const admit = (socket: Socket): boolean => {
    const address = socket.remoteAddress ?? '';
    const room = budget?.room() ?? DESCRIPTOR_ROOM.CLIENTS;
    // At the edge: not even an answer (it could need the descriptors that are left).
    if (room === DESCRIPTOR_ROOM.NONE) return refuse(socket, new LimitError('LIMIT_DESCRIPTORS', 1), address, false);
    if (room === DESCRIPTOR_ROOM.RESERVE && (door.reserve !== true || pool === undefined)) {
      return refuse(socket, new LimitError('LIMIT_DESCRIPTORS', 1), address, true);
    }
    let ticket: AdmissionTicket | undefined;
    if (pool !== undefined && counting && !admission.isExempt(address)) {
      try {
        ticket = pool.admit(address, { pending: false });
      } catch (err) {
        if (!(err instanceof LimitError)) throw err;
        return refuse(socket, err, address, true);
      }
      // Its own slot and listener: a connector may hang its connection's ticket on the
      // same socket (TICKET, admission.ts) — a /ws upgrade does.
      (socket as DoorSocket)[DOOR_TICKET] = ticket;
      socket.on('close', releaseDoorTicket);
    }
    if (room === DESCRIPTOR_ROOM.RESERVE) {
      const exempt = admission.isExempt(address);
      const held = reserved.get(address) ?? 0;
      if (!exempt && held >= RESERVE_PER_ADDRESS) {
        socket.destroy();
        admission.report(door.name, 'LIMIT_DESCRIPTORS', address);
        return false;
      }
      reserved.set(address, held + 1);
      (socket as ReserveSocket)[RESERVE] = new LimitError('LIMIT_DESCRIPTORS', 1);
      socket.once('close', () => {
        const n = (reserved.get(address) ?? 1) - 1;
        if (n <= 0) reserved.delete(address);
        else reserved.set(address, n);
      });
    }
    return true;
  };
  // The server's own 'connection' listeners (the HTTP parser, TLS, the connector) must
  // not see a refused socket at all, so the event itself is gated rather than listened to.
  const emit = server.emit;
  server.emit = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'connection' && !admit(args[0] as Socket)) return false;
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as Server['emit'];
}

/** Where a connection carries its ticket of the listener's socket pool, released by one shared listener (no closure per socket). */
const DOOR_TICKET = Symbol('door ticket');
interface DoorSocket {
  [DOOR_TICKET]?: AdmissionTicket | undefined;
}

function releaseDoorTicket(this: DoorSocket): void {
  this[DOOR_TICKET]?.release();
  this[DOOR_TICKET] = undefined;
}

/** Where a connection admitted on the descriptor reserve carries why it may only use the reserve. */
const RESERVE = Symbol('descriptor reserve');
interface ReserveSocket {
  [RESERVE]?: LimitError;
}

/**
 * Why the connection under a request is on the descriptor reserve (so limited to
 * health, metrics, login), or undefined. With TLS the request's socket is the TLSSocket
 * that wraps the TCP socket the door saw: Node keeps that one as `_parent`
 * (test/connectors/listen.test.ts checks it over TLS).
 */
export function reserveRefusal(socket: Socket): LimitError | undefined {
  const own = (socket as ReserveSocket)[RESERVE];
  if (own !== undefined) return own;
  const parent: unknown = Reflect.get(socket, '_parent');
  return typeof parent === 'object' && parent !== null ? (parent as ReserveSocket)[RESERVE] : undefined;
}

/**
 * Accepted sockets of a server that are not yet closed: net.Server's own count
 * (`_connections`, kept for `maxConnections` and `getConnections`), read without the
 * callback of getConnections. test/connectors/listen.test.ts fails if Node moves it.
 */
export function openConnections(server: Server): number {
  const n: unknown = Reflect.get(server, '_connections');
  return typeof n === 'number' ? n : 0;
}

/** Refuses a TCP connection on an HTTP port before reading it: the limit's HTTP answer, then close. */
/** Answers a connection refused before any request with the listener's HTTP refusal, then closes it. */
export function refuseHttpConnection(socket: Socket, err: LimitError, refusal: HttpRefusal = httpRefusal): void {
  const { status, headers, body } = refusal(err);
  const text = status === 429 ? 'Too Many Requests' : 'Service Unavailable';
  const lines = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.on('error', destroyOnError);
  // The request may already be on its way: read and drop it, so that closing does not
  // reset the connection before the peer has read the answer.
  socket.resume();
  socket.once('finish', destroyOnError);
  socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\n${lines}\r\n${body}`);
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * Closes every socket whose TLS handshake fails (a plain-TCP client, a client that does
 * not trust us) or passes the deadline, with a debug line. tls.Server leaves the socket
 * open after a handshake timeout; https.Server closes it itself (a second destroy does
 * nothing), so the same listener serves both.
 */
export function closeFailedHandshakes(server: TlsServer, log: Logger | undefined, listener: string): void {
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    log?.debug({ listener, remote: socket.remoteAddress, code: err.code ?? 'TLS_HANDSHAKE_FAILED', reason: err.message }, 'TLS handshake failed');
    socket.destroy();
  });
}

/**
 * The peer's address of an accepted socket, read once. Node caches it on the socket
 * (`_peername`: an object and a string held for the socket's life, ~90 bytes a
 * connection); the connection keeps the string itself, so the cache is let go. Should
 * Node stop reading `_peername` this way, the only cost is the cache being rebuilt.
 */
export function peerAddress(socket: Socket): string {
  const address = socket.remoteAddress ?? '';
  (socket as unknown as { _peername?: unknown })._peername = undefined;
  return address;
}

/**
 * The 'error' listener of an accepted socket, shared by every socket (no closure per
 * connection): the error ends it; its 'close' does the rest.
 */
export function destroyOnError(this: Socket): void {
  this.destroy();
}
