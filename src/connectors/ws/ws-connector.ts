import { LinkedSet } from '../linked-set.js';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../log.js';
import type { Hub } from '../../hub/hub.js';
import { CLOSE_REASONS } from '../../hub/connection.js';
import { DeadlineWheel } from '../deadline-wheel.js';
import { WsConnection, type EnterDeadline, type WsContext } from './ws-connection.js';
import { LimitError, refuseUpgrade, releaseTicketOn, stopReleasingTicketOn, type Admission, type AdmissionTicket } from '../admission.js';
import { peerAddress } from '../listen.js';
import { MAX_DATA_DEPTH } from '../../hub/push-rules.js';

export interface WsConnectorOptions {
  readonly hub: Hub;
  readonly log: Logger;
  /** Largest frame a client may send, bytes; larger ones close the connection with 1009. */
  readonly maxFrameBytes: number;
  /** Milliseconds between keep-alive pings; a connection that missed the last pong is dropped. @default 25000 */
  readonly pingIntervalMs?: number;
  /** Milliseconds a connection may stay open without entering. @default 10000 */
  readonly enterTimeoutMs?: number;
  /** Refused frames (bad JSON, bad fields, hub refusals) before the connection is closed 1008. @default 10 */
  readonly maxBadFrames?: number;
  /** The upgrade path served; other paths are answered 404. @default '/ws' */
  readonly path?: string;
  /** Milliseconds `close()` waits for close handshakes before dropping sockets. @default 2000 */
  readonly closeGraceMs?: number;
  /** Connection limits shared by every connector (docs/security.md#limits); none when absent. */
  readonly admission?: Admission;
}

/**
 * Plain WebSocket with JSON text frames (docs/connectors.md, "Plain WebSocket"), on the
 * HTTP API's server: the owner of that server hands us its 'upgrade' events.
 */
export class WsConnector {
  readonly #wss: WebSocketServer;
  readonly #ctx: WsContext;
  readonly #connections = new LinkedSet<WsConnection>();
  readonly #path: string;
  readonly #closeGraceMs: number;
  readonly #pingTimer: NodeJS.Timeout;
  readonly #admission: Admission | undefined;
  readonly #log: Logger;
  #closing = false;
  #drained: (() => void) | undefined;

  constructor(opts: WsConnectorOptions) {
    this.#path = opts.path ?? '/ws';
    this.#closeGraceMs = opts.closeGraceMs ?? 2000;
    this.#admission = opts.admission;
    this.#log = opts.log;
    const enterTimeoutMs = opts.enterTimeoutMs ?? 10_000;
    // Deadlines are coarse by design (deadline-wheel.ts); a short test timeout gets finer slots.
    const wheel = new DeadlineWheel<EnterDeadline>((d) => d.conn.expire(), Math.min(1000, Math.max(25, enterTimeoutMs / 4)));
    this.#ctx = {
      hub: opts.hub,
      log: opts.log,
      wheel,
      // A push frame holds its data one level down: the frame may nest as deep as the
      // push rule lets data nest, plus one (src/hub/push-rules.ts).
      limits: { maxBytes: opts.maxFrameBytes, maxDepth: MAX_DATA_DEPTH + 1 },
      maxBadFrames: opts.maxBadFrames ?? 10,
      enterTimeoutMs,
      removed: (conn) => {
        this.#connections.delete(conn);
        if (this.#connections.size === 0) this.#drained?.();
      },
    };
    // Compression is off: a broadcast is one shared Buffer, and deflating it per
    // recipient would cost CPU and memory per connection (docs/conventions.md §5).
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
    });
    wheel.start();
    // One interval pings every connection (the classic isAlive sweep), not a timer each.
    this.#pingTimer = setInterval(() => this.#sweep(), opts.pingIntervalMs ?? 25_000);
    this.#pingTimer.unref();
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** For the HTTP server's 'upgrade' event. Paths other than `path` get a 404. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closing) {
      abortUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    if (pathOf(req.url) !== this.#path) {
      abortUpgrade(socket, 404, 'Not Found');
      return;
    }
    let ticket: AdmissionTicket | undefined;
    try {
      ticket = this.#admission?.admit(req.socket.remoteAddress ?? '', { listener: 'http' });
    } catch (err) {
      if (!(err instanceof LimitError)) throw err;
      // Before the upgrade, HTTP says no: 429 or 503 with Retry-After and {code, message}.
      this.#log.debug({ remote: req.socket.remoteAddress, code: err.code }, 'ws upgrade refused');
      this.#ctx.hub.observer.refused('ws', err.code, err.message, undefined, req.socket.remoteAddress);
      refuseUpgrade(socket, err);
      return;
    }
    // Not an arrow here: it would share this call's closure context with the one below,
    // which holds `req`, and keep the whole request alive as long as the socket (~1 KB each).
    if (ticket) releaseTicketOn(socket, 'close', ticket);
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req, ticket));
  }

  /** Stops accepting, kicks every connection with `reason` and waits until they are gone. */
  async close(reason: string = CLOSE_REASONS.shutdown): Promise<void> {
    this.#closing = true;
    clearInterval(this.#pingTimer);
    this.#ctx.wheel.stop();
    for (const conn of [...this.#connections]) conn.close(reason);
    if (this.#connections.size > 0) {
      const drained = new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
      // A peer that never answers the close frame is dropped after the grace period.
      const grace = setTimeout(() => {
        for (const conn of [...this.#connections]) conn.terminate();
      }, this.#closeGraceMs);
      await drained;
      clearTimeout(grace);
    }
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  #accept(ws: WebSocket, req: IncomingMessage, ticket: AdmissionTicket | undefined): void {
    if (this.#closing) {
      ws.close(1001, CLOSE_REASONS.shutdown);
      return;
    }
    const address = peerAddress(req.socket);
    const conn = new WsConnection(this.#ctx, ws, req.socket, ticket?.address ?? address);
    // The connection releases its ticket from here on: the socket's own listener goes,
    // and with it a second 'close' listener (an array) on every socket.
    if (ticket) stopReleasingTicketOn(req.socket, 'close');
    conn.admission = ticket;
    this.#connections.add(conn);
  }

  #sweep(): void {
    for (const conn of this.#connections) conn.heartbeat();
  }
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** Refuses an upgrade with a plain HTTP answer (RFC 6455 §4.2.2: any non-101 status). */
function abortUpgrade(socket: Duplex, status: number, text: string): void {
  const body = `${text}\n`;
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
