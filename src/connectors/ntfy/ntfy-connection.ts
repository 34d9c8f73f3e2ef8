import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Member } from '../../hub/members.js';
import type { EnteredAs } from '../../hub/observer.js';
import type { Hub } from '../../hub/hub.js';
import type { Logger } from '../../log.js';
import { CLOSE_REASONS, allocateConnectionId, compactTime, expandTime, type CloseReason, type Connection } from '../../hub/connection.js';
import { PEER_CLOSED } from '../../hub/observer.js';
import { messageJson, messageTimes, passes, topicFor, type Filters, type NtfyContent } from '../../protocol/ntfy/message.js';
import type { NtfyError } from '../../protocol/ntfy/errors.js';
import { corkForTurn } from '../write-coalescer.js';
import { NTFY_ENCODER, type NtfyEncoder, type NtfyFrame } from './ntfy-encoder.js';

/** How a subscription streams (docs: https://docs.ntfy.sh/subscribe/api/). */
export type StreamFormat = 'json' | 'sse' | 'raw' | 'ws';

export interface NtfyStreamContext {
  readonly hub: Hub;
  readonly log: Logger;
  /** The ntfy app's id salt (protocol/ntfy/message.ts idSalt). */
  readonly salt: string;
  /** The stream ended: forget it. */
  readonly removed: (conn: NtfyConnection) => void;
}

export interface StreamOptions {
  readonly format: StreamFormat;
  readonly topics: readonly string[];
  /** The topics as given in the path (`a,b`): the `topic` of open and keepalive events. */
  readonly topicsText: string;
  readonly filters: Filters;
  /** Messages older than this (epoch ms) are not shown (`since=<time or duration>`). */
  readonly notBefore?: number;
  /** `since=latest`: only each topic's newest cached message, then live ones. */
  readonly latestOnly?: boolean;
  /** `poll=1`: the cached messages, then the end; no `open` event (server.go handleSubscribeHTTP). */
  readonly poll?: boolean;
}

/** ntfy's HTTP streams: Content-Type with a charset ("Android/Volley client needs charset!", server.go). */
const CONTENT_TYPES: Readonly<Record<Exclude<StreamFormat, 'ws'>, string>> = {
  json: 'application/x-ndjson; charset=utf-8',
  sse: 'text/event-stream; charset=utf-8',
  raw: 'text/plain; charset=utf-8',
};

const State = { ENTERING: 0, STREAMING: 1, CLOSED: 2 } as const;
type State = (typeof State)[keyof typeof State];

/**
 * One ntfy subscription (json, sse, raw or ws stream): a receive-only Shaddock client
 * tagged with its topics. Like SSE, a message counts as acked once written (ntfy has no
 * acks; a client resumes with `since=<last id>`).
 */
export class NtfyConnection implements Connection<NtfyFrame> {
  readonly id = allocateConnectionId();
  hubMember: Member | undefined = undefined;
  enteredAs: EnteredAs | undefined = undefined;
  get connector(): 'ntfy' {
    return 'ntfy';
  }
  readonly #connectedAt = compactTime(Date.now());
  get connectedAt(): number {
    return expandTime(this.#connectedAt);
  }
  readonly remoteAddress: string;
  readonly #ctx: NtfyStreamContext;
  readonly #opts: StreamOptions;
  readonly #res: ServerResponse | undefined;
  readonly #ws: WebSocket | undefined;
  /** HTTP streams, once started: the socket the message bytes go to, each already framed as an HTTP chunk. */
  #socket: Duplex | undefined;
  /** Whether the response is chunked (HTTP/1.1); an HTTP/1.0 client reads the bytes as they are. */
  #chunked = false;
  #state: State = State.ENTERING;
  #left = false;
  #pending: NtfyFrame[] | undefined;
  /** `since=latest` while the replay runs: each topic's newest message so far. */
  #latest: Map<string, NtfyFrame> | undefined;
  /** When the subscription began (`since=latest` tells cached messages from live ones by it). */
  readonly #subscribedAt = Date.now();
  #closeReason: string | undefined;
  /** The client this stream entered as (a message to it by id shows under the first topic). */
  clientId = '';
  /** ws: a ping went out and no pong came back yet. */
  #awaitingPong = false;

  constructor(ctx: NtfyStreamContext, opts: StreamOptions, remoteAddress: string, transport: { readonly res: ServerResponse } | { readonly ws: WebSocket }) {
    this.#ctx = ctx;
    this.#opts = opts;
    this.remoteAddress = remoteAddress;
    if (opts.latestOnly === true) this.#latest = new Map();
    if ('res' in transport) {
      this.#res = transport.res;
      this.#ws = undefined;
      transport.res.once('close', () => this.#onTransportClosed());
      transport.res.on('error', (err) => ctx.log.debug({ conn: this.id, err: err.message }, 'ntfy response error'));
    } else {
      this.#res = undefined;
      this.#ws = transport.ws;
      transport.ws.once('close', () => this.#onTransportClosed());
      transport.ws.on('error', (err) => ctx.log.debug({ conn: this.id, err: err.message }, 'ntfy websocket error'));
      transport.ws.on('pong', () => {
        this.#awaitingPong = false;
      });
    }
    ctx.hub.observer.opened(this);
  }

  get encoder(): NtfyEncoder {
    return NTFY_ENCODER;
  }

  get closed(): boolean {
    return this.#state === State.CLOSED;
  }

  get bufferedBytes(): number {
    return (this.#socket?.writableLength ?? this.#res?.writableLength ?? 0) + (this.#ws?.bufferedAmount ?? 0);
  }

  write(frame: NtfyFrame): void {
    const msg = frame.msg;
    if (msg === undefined) return;
    if (this.#state === State.ENTERING) {
      (this.#pending ??= []).push(frame);
      return;
    }
    if (this.#state !== State.STREAMING) return;
    if (this.#latest && msg.createdAt < this.#subscribedAt) {
      // `since=latest`: a cached message; only each topic's newest is kept for now.
      const topic = topicFor(msg, this.#opts.topics, msg.target.clientIds.includes(this.clientId as never));
      if (topic !== undefined) this.#latest.set(topic, frame);
    } else {
      // A message published since the subscription began: the cached ones (older) first.
      if (this.#latest) this.replayDone();
      this.#show(frame);
    }
    const id = msg.id;
    // After the hub's write returns (it records the id as sent only then), as SSE does.
    queueMicrotask(() => this.#ctx.hub.ack(this, id));
  }

  /** Writes the message if this subscriber is to see it (its topics, `since` time, filters). */
  #show(frame: NtfyFrame): void {
    const msg = frame.msg!;
    const topic = topicFor(msg, this.#opts.topics, msg.target.clientIds.includes(this.clientId as never));
    if (topic === undefined) return;
    if (this.#opts.notBefore !== undefined && msg.createdAt < this.#opts.notBefore) return;
    const id = frame.ntfyId(this.#ctx.salt);
    const content = frame.content;
    if (!passes(this.#opts.filters, id, content)) return;
    const format = this.#opts.format;
    const bytes = frame.bytes(`${format}${this.#chunked ? '+' : ''}:${topic}`, () => {
      const { time, expires } = messageTimes(msg);
      return this.#encode('message', messageJson(id, time, expires, 'message', topic, content), content, id);
    });
    this.#send(bytes);
  }

  /** A message that is not in the log (a scheduled one, `scheduled=1`), already as ntfy JSON. */
  writeExtra(line: string, id: string, content: NtfyContent): void {
    if (this.#state !== State.STREAMING || !passes(this.#opts.filters, id, content)) return;
    this.#send(this.#encode('message', line, content, id));
  }

  /** One event in the stream's format (server.go handleSubscribeJSON/SSE/Raw, WriteJSON on ws), framed for the transport. */
  #encode(event: 'message' | 'open' | 'keepalive', line: string, content: NtfyContent | undefined, id?: string): Buffer {
    let text: string;
    switch (this.#opts.format) {
      case 'json':
      case 'ws':
        text = `${line}\n`;
        break;
      case 'sse':
        // ntfy: `data:` only for messages (EventSource's onmessage), `event:` for the rest.
        // The `id:` line is ours: EventSource sends it back as Last-Event-ID when it
        // reconnects, which resumes as `since=<id>` would.
        text = event === 'message' && id !== undefined ? `id: ${id}\ndata: ${line}\n\n` : `event: ${event}\ndata: ${line}\n\n`;
        break;
      case 'raw':
        // ntfy: the message with newlines as spaces; open and keepalive are an empty line.
        text = event === 'message' && content ? `${content.message.replaceAll('\n', ' ')}\n` : '\n';
        break;
    }
    if (!this.#chunked) return Buffer.from(text);
    // An HTTP/1.1 chunk (RFC 9112 §7.1): size in hex, CRLF, data, CRLF — one buffer, one write.
    const size = Buffer.byteLength(text);
    const head = `${size.toString(16)}\r\n`;
    const out = Buffer.allocUnsafe(head.length + size + 2);
    out.write(head, 0, 'latin1');
    out.write(text, head.length, 'utf8');
    out.write('\r\n', head.length + size, 'latin1');
    return out;
  }

  #send(bytes: Buffer): void {
    const socket = this.#socket;
    if (this.#ws) this.#ws.send(bytes, { binary: false });
    else if (socket !== undefined && !socket.destroyed) {
      // Coalesced with this turn's other writes to the socket into one writev (write-coalescer.ts).
      corkForTurn(socket);
      socket.write(bytes);
    }
    this.#ctx.hub.observer.wrote('ntfy', bytes.length);
  }

  /** The hub let the client in: headers, the `open` event, then what arrived meanwhile. */
  start(): void {
    if (this.#state !== State.ENTERING) return;
    this.#state = State.STREAMING;
    const res = this.#res;
    if (res && !res.headersSent) {
      res.writeHead(200, {
        'content-type': CONTENT_TYPES[this.#opts.format as Exclude<StreamFormat, 'ws'>],
        'access-control-allow-origin': '*',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      });
      // From here on the stream's bytes go to the socket as chunks framed once per
      // message for every subscriber (NtfyFrame); the response only ends the stream
      // (`res.end()` writes the last chunk).
      res.flushHeaders();
      this.#chunked = res.chunkedEncoding;
      this.#socket = res.socket ?? undefined;
    }
    if (this.#opts.poll !== true) this.#event('open');
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending) for (const frame of pending) this.write(frame);
  }

  /** `since=latest`: the replay is over; each topic's newest message, in id order, then live ones. */
  replayDone(): void {
    const latest = this.#latest;
    if (!latest) return;
    this.#latest = undefined;
    for (const frame of [...latest.values()].sort((a, b) => a.msg!.id - b.msg!.id)) this.#show(frame);
  }

  /** ntfy's open and keepalive events: `{"id","time","event","topic"}`. */
  #event(event: 'open' | 'keepalive'): void {
    if (this.#opts.format === 'ws' && event === 'keepalive') return;
    const line = messageJson(randomId(), Math.floor(Date.now() / 1000), undefined, event, this.#opts.topicsText, undefined);
    this.#send(this.#encode(event, line, undefined));
  }

  /**
   * From the connector's one interval: the keepalive event (HTTP streams) or a ping (ws:
   * ntfy pings every keepalive interval and closes a socket whose pong does not come).
   */
  keepAlive(): void {
    if (this.#state !== State.STREAMING) return;
    if (this.#ws) {
      if (this.#awaitingPong) {
        this.#closeReason = CLOSE_REASONS.heartbeatTimeout;
        this.#ws.terminate();
        return;
      }
      this.#awaitingPong = true;
      this.#ws.ping();
      return;
    }
    this.#event('keepalive');
  }

  /** `poll=1`: the cached messages were sent; the response ends. */
  finish(): void {
    if (this.#state === State.CLOSED) return;
    this.#state = State.CLOSED;
    this.#closeReason = 'poll done';
    this.#res?.end();
    this.#ws?.close(1000);
    this.#leave();
  }

  /** The hub (or a limit) refused the subscriber: ntfy's error answer, no stream. */
  refuse(err: NtfyError): void {
    if (this.#state !== State.ENTERING) return;
    this.#state = State.CLOSED;
    this.#pending = undefined;
    this.#closeReason = `${err.errorName}: ${err.message}`;
    this.#ctx.hub.observer.refused('ntfy', err.errorName, err.message, this);
    if (this.#res && !this.#res.headersSent) {
      const body = err.body();
      this.#res.writeHead(err.http, { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'content-length': Buffer.byteLength(body) });
      this.#res.end(body);
    } else {
      // ws, already upgraded: 1008 (policy) or 1011 (server error) with ntfy's error text.
      this.#ws?.close(err.http >= 500 ? 1011 : 1008, err.message.slice(0, 120));
    }
    this.#leave();
  }

  close(reason: CloseReason): void {
    if (this.#state === State.CLOSED) return;
    this.#state = State.CLOSED;
    this.#pending = undefined;
    this.#closeReason ??= reason;
    if (reason === CLOSE_REASONS.slowConsumer) {
      this.#res?.destroy();
      this.#ws?.terminate();
    } else {
      if (this.#res && !this.#res.headersSent) this.#res.writeHead(200, { 'content-type': CONTENT_TYPES[this.#opts.format as Exclude<StreamFormat, 'ws'>] });
      this.#res?.end();
      this.#ws?.close(reason === CLOSE_REASONS.shutdown ? 1001 : 1000, String(reason).slice(0, 120));
    }
    this.#leave();
  }

  terminate(): void {
    this.#state = State.CLOSED;
    this.#closeReason ??= CLOSE_REASONS.shutdown;
    this.#res?.destroy();
    this.#ws?.terminate();
    this.#leave();
  }

  #onTransportClosed(): void {
    this.#state = State.CLOSED;
    this.#pending = undefined;
    this.#leave();
    this.#ctx.removed(this);
    this.#ctx.hub.observer.closed(this, this.#closeReason ?? PEER_CLOSED);
  }

  #leave(): void {
    if (this.#left) return;
    this.#left = true;
    this.#ctx.hub.leave(this);
  }
}

const B62 = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
/** ntfy gives open and keepalive events a random 12-character id of their own. */
function randomId(): string {
  let s = '';
  for (let i = 0; i < 12; i++) s += B62[Math.floor(Math.random() * 62)];
  return s;
}
