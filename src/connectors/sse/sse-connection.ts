import type { Member } from '../../hub/members.js';
import type { EnteredAs } from '../../hub/observer.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../log.js';
import type { Hub } from '../../hub/hub.js';
import { CLOSE_REASONS, allocateConnectionId, type CloseReason, type Connection, compactTime, expandTime } from '../../hub/connection.js';
import { PEER_CLOSED } from '../../hub/observer.js';
import { SSE_KEEPALIVE, encodeSseEvent } from '../../protocol/json/sse.js';
import { SSE_ENCODER, type SseEncoder, type SseFrame } from './sse-encoder.js';

/** What every connection of one SseConnector shares. */
export interface SseContext {
  readonly hub: Hub;
  readonly log: Logger;
  /** The first bytes of every stream: `retry: <ms>`. */
  readonly retryLine: Buffer;
  /** The response of `conn` closed: forget it. */
  readonly removed: (conn: SseConnection) => void;
}

const STREAM_HEADERS = {
  'content-type': 'text/event-stream',
  // No cache or proxy may hold events back: nginx buffers unless told not to.
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;

const State = { ENTERING: 0, STREAMING: 1, CLOSED: 2 } as const;
type State = (typeof State)[keyof typeof State];

/**
 * One Server-Sent Events stream: a receive-only client. The response starts only
 * once the hub let the client in, so a refusal can still be an HTTP status.
 */
export class SseConnection implements Connection<SseFrame> {
  readonly id = allocateConnectionId();
  /** The hub's and its observer's slots (Connection.hubMember, .enteredAs). */
  hubMember: Member | undefined = undefined;
  enteredAs: EnteredAs | undefined = undefined;
  // A getter, not a field: one less slot per connection.
  get connector(): 'sse' {
    return 'sse';
  }
  readonly #connectedAt = compactTime(Date.now());
  get connectedAt(): number {
    return expandTime(this.#connectedAt);
  }
  readonly remoteAddress: string;
  readonly #res: ServerResponse;
  readonly #ctx: SseContext;
  #state: State = State.ENTERING;
  #left = false;
  /** Hub writes that arrive before the stream started (resume during enter). */
  #pending: SseFrame[] | undefined;
  #pendingBytes = 0;
  /** Why the server closed it, for the close report; unset: the peer went first. */
  #closeReason: string | undefined;

  constructor(ctx: SseContext, req: IncomingMessage, res: ServerResponse) {
    this.#ctx = ctx;
    this.#res = res;
    this.remoteAddress = req.socket.remoteAddress ?? '';
    // 'close' comes when the response ends or the client goes away, whichever is first.
    res.once('close', () => this.onTransportClosed());
    res.on('error', (err) => ctx.log.debug({ conn: this.id, err: err.message }, 'sse response error'));
    ctx.hub.observer.opened(this);
  }

  get encoder(): SseEncoder {
    return SSE_ENCODER;
  }

  get closed(): boolean {
    return this.#state === State.CLOSED;
  }

  get bufferedBytes(): number {
    return this.#res.writableLength + this.#pendingBytes;
  }

  /**
   * SSE has no way back from the client, so a message counts as acked once it is
   * written here (docs/connectors.md, "Server-Sent Events"). A browser that reconnects
   * presents Last-Event-ID, which is what it really saw, and resumes from there.
   */
  write(frame: SseFrame): void {
    if (this.#state === State.STREAMING) {
      this.#res.write(frame.bytes);
      this.#ctx.hub.observer.wrote('sse', frame.bytes.length);
      // After the hub's write returns: it records the id as sent only then, and an ack
      // above what was sent is clamped away.
      const id = frame.id;
      if (id !== undefined) queueMicrotask(() => this.#ctx.hub.ack(this, id));
    } else if (this.#state === State.ENTERING) {
      (this.#pending ??= []).push(frame);
      this.#pendingBytes += frame.bytes.length;
    }
  }

  /** The hub let the client in: status 200, `retry:`, then what arrived meanwhile. */
  start(): void {
    if (this.#state !== State.ENTERING) return;
    this.#state = State.STREAMING;
    this.#res.writeHead(200, STREAM_HEADERS);
    this.#res.write(this.#ctx.retryLine);
    const pending = this.#pending;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    if (pending) for (const frame of pending) this.write(frame);
  }

  /** The hub (or a limit) refused the client: an HTTP error with `{code, message}`, no stream. */
  refuse(status: number, code: string, message: string, headers: Readonly<Record<string, string>> = {}): void {
    if (this.#state !== State.ENTERING) return;
    this.#state = State.CLOSED;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    this.#closeReason = `${code}: ${message}`;
    this.#ctx.hub.observer.refused('sse', code, message, this);
    const body = JSON.stringify({ code, message });
    this.#res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    this.#res.end(body);
    this.leave();
  }

  /** Comment line from the connector's one keep-alive interval. */
  keepAlive(): void {
    if (this.#state === State.STREAMING) this.#res.write(SSE_KEEPALIVE);
  }

  /**
   * `event: kick` with the reason, then the end of the stream. A slow consumer is cut
   * at once instead: a kick would only queue behind what it does not read.
   */
  close(reason: CloseReason): void {
    if (this.#state === State.CLOSED) return;
    const wasStreaming = this.#state === State.STREAMING;
    this.#state = State.CLOSED;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    this.#closeReason ??= reason;
    this.#ctx.log.debug({ conn: this.id, reason }, 'sse connection closing');
    if (reason === CLOSE_REASONS.slowConsumer) {
      this.#res.destroy();
    } else {
      if (!wasStreaming && !this.#res.headersSent) {
        this.#res.writeHead(200, STREAM_HEADERS);
        this.#res.write(this.#ctx.retryLine);
      }
      this.#res.end(encodeSseEvent('kick', { reason }));
    }
    this.leave();
  }

  /** Drops the response (shutdown grace period over). */
  terminate(): void {
    this.#state = State.CLOSED;
    this.#closeReason ??= CLOSE_REASONS.shutdown;
    this.#res.destroy();
    this.leave();
  }

  private onTransportClosed(): void {
    this.#state = State.CLOSED;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    this.leave();
    this.#ctx.removed(this);
    this.#ctx.hub.observer.closed(this, this.#closeReason ?? PEER_CLOSED);
  }

  private leave(): void {
    if (this.#left) return;
    this.#left = true;
    this.#ctx.hub.leave(this);
  }
}
