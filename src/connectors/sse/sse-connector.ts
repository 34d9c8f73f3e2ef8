import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../log.js';
import { HubError, type Hub, type HubErrorCode } from '../../hub/hub.js';
import { CLOSE_REASONS } from '../../hub/connection.js';
import { encodeSseRetry } from '../../protocol/json/sse.js';
import { SseConnection, type SseContext } from './sse-connection.js';
import { readSseParams } from './sse-request.js';
import { LimitError, httpRefusal, releaseTicketOn, type Admission, type AdmissionTicket } from '../admission.js';

export interface SseConnectorOptions {
  readonly hub: Hub;
  readonly log: Logger;
  /** Milliseconds between keep-alive comment lines. @default 25000 */
  readonly keepAliveMs?: number;
  /** Milliseconds EventSource waits before reconnecting (the `retry:` line). @default 3000 */
  readonly retryMs?: number;
  /** Milliseconds `close()` waits for streams to end before dropping them. @default 2000 */
  readonly closeGraceMs?: number;
  /** Connection limits shared by every connector (docs/security.md#limits); none when absent. */
  readonly admission?: Admission;
}

/** How a hub refusal reads over HTTP, before the stream starts. */
const STATUS_BY_CODE: Readonly<Record<HubErrorCode, number>> = {
  APP_UNKNOWN: 404,
  AUTH_FAILED: 401,
  BAD_REQUEST: 400,
  NOT_ENTERED: 403,
  FORBIDDEN: 403,
  LIMIT_APP_CONNECTIONS: 503,
  LIMIT_LOGIN_RATE: 429,
  PUSH_INVALID: 400,
};

/**
 * Server-Sent Events: receive-only clients on the HTTP API's server. The owner of that
 * server routes `GET /api/v1/apps/:apikey/clients/:clientId/events` here with the raw
 * request and response.
 */
export class SseConnector {
  readonly #ctx: SseContext;
  readonly #connections = new Set<SseConnection>();
  readonly #closeGraceMs: number;
  readonly #keepAliveTimer: NodeJS.Timeout;
  readonly #admission: Admission | undefined;
  #closing = false;
  #drained: (() => void) | undefined;

  constructor(opts: SseConnectorOptions) {
    this.#closeGraceMs = opts.closeGraceMs ?? 2000;
    this.#admission = opts.admission;
    this.#ctx = {
      hub: opts.hub,
      log: opts.log,
      retryLine: encodeSseRetry(opts.retryMs ?? 3000),
      removed: (conn) => {
        this.#connections.delete(conn);
        if (this.#connections.size === 0) this.#drained?.();
      },
    };
    // One interval for every stream's keep-alive, not a timer each.
    this.#keepAliveTimer = setInterval(() => this.#keepAlive(), opts.keepAliveMs ?? 25_000);
    this.#keepAliveTimer.unref();
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Serves one SSE request; answers an HTTP error instead when the hub refuses the client. */
  handle(req: IncomingMessage, res: ServerResponse, apikey: string, clientId: string): void {
    if (res.destroyed) return;
    const conn = new SseConnection(this.#ctx, req, res);
    this.#connections.add(conn);
    if (this.#closing) {
      conn.refuse(503, 'UNAVAILABLE', 'the server is shutting down');
      return;
    }
    let ticket: AdmissionTicket | undefined;
    try {
      ticket = this.#admission?.admit(conn.remoteAddress, { listener: 'http' });
    } catch (err) {
      if (!(err instanceof LimitError)) throw err;
      // HTTP says no before the stream starts: 429 or 503, Retry-After, {code, message}.
      this.#ctx.log.debug({ conn: conn.id, code: err.code }, 'sse client refused');
      const { status, headers } = httpRefusal(err);
      conn.refuse(status, err.code, err.message, { 'retry-after': headers['retry-after'] ?? '1' });
      return;
    }
    if (ticket) releaseTicketOn(res, 'close', ticket);
    void this.#enter(conn, req, apikey, clientId, ticket);
  }

  /** Stops accepting, kicks every stream with `reason` and waits until they are gone. */
  async close(reason: string = CLOSE_REASONS.shutdown): Promise<void> {
    this.#closing = true;
    clearInterval(this.#keepAliveTimer);
    for (const conn of [...this.#connections]) conn.close(reason);
    if (this.#connections.size === 0) return;
    const drained = new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
    const grace = setTimeout(() => {
      for (const conn of [...this.#connections]) conn.terminate();
    }, this.#closeGraceMs);
    await drained;
    clearTimeout(grace);
  }

  /** Never rejects: every failure becomes an HTTP answer. */
  async #enter(conn: SseConnection, req: IncomingMessage, apikey: string, clientId: string, ticket: AdmissionTicket | undefined): Promise<void> {
    try {
      const params = readSseParams(req);
      await this.#ctx.hub.enterClient(conn, { apikey, clientId, ...params });
      ticket?.entered();
      // A client that went away meanwhile was not registered (or has left): start() does nothing.
      conn.start();
    } catch (err) {
      if (err instanceof HubError) {
        this.#ctx.log.debug({ conn: conn.id, code: err.code, err: err.message }, 'sse client refused');
        conn.refuse(STATUS_BY_CODE[err.code], err.code, err.message);
        return;
      }
      const errorId = crypto.randomUUID();
      this.#ctx.log.error({ err, conn: conn.id, errorId }, 'sse enter failed');
      conn.refuse(500, 'INTERNAL', `internal error (id ${errorId})`);
    }
  }

  #keepAlive(): void {
    for (const conn of this.#connections) conn.keepAlive();
  }
}
