// The ntfy front door (docs/ntfy.md): ntfy's HTTP protocol on a port of its own, its
// topics being tags of one Shaddock app. Publishing is a push to the topic's tag;
// subscribing is a receive-only client tagged with its topics (NtfyConnection).
// Behaviour follows ntfy's documentation (https://docs.ntfy.sh/publish/,
// https://docs.ntfy.sh/subscribe/api/) and, where the docs are silent, its server
// (server/server.go of binwiederhier/ntfy).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ApiKey } from '../../ids.js';
import type { Logger } from '../../log.js';
import type { App } from '../../store/store.js';
import type { ScheduledMessage, ScheduledStore } from '../../store/scheduled-store.js';
import { HubError, type Hub } from '../../hub/hub.js';
import { CLOSE_REASONS } from '../../hub/connection.js';
import { signClientToken } from '../../hub/client-tokens.js';
import { NtfyError } from '../../protocol/ntfy/errors.js';
import {
  NTFY_EVENT,
  TOPIC_RE,
  decodeId,
  encodeId,
  idSalt,
  messageJson,
  ntfyContent,
  parsePriority,
  parseSince,
  toBool,
  type Filters,
  type NtfyContent,
} from '../../protocol/ntfy/message.js';
import { paramReader, readJsonPublish, readPublish, type ParamReader, type PublishDraft } from '../../protocol/ntfy/publish.js';
import { LISTEN_BACKLOG, createHttpListener, refuseHttpConnection, type HttpTimeouts, type TlsListenOptions } from '../listen.js';
import { LimitError, admissionEntered, countRequest, releaseAdmission, type Admission, type AdmissionHolder } from '../admission.js';
import { authenticate, authorize, credentialOf, readAuthorization, type NtfyAccess } from './ntfy-auth.js';
import { NtfyConnection, type NtfyStreamContext, type StreamFormat, type StreamOptions } from './ntfy-connection.js';

export interface NtfyConnectorOptions {
  readonly hub: Hub;
  readonly log: Logger;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** The app whose tags are the topics. */
  readonly apikey: ApiKey;
  /** ntfy's message-size-limit, bytes. @default 4096 */
  readonly maxMessageBytes?: number;
  /** ntfy's keepalive-interval, ms. @default 45000 */
  readonly keepAliveMs?: number;
  /** The public URL of this listener (ntfy's base-url), for the Matrix gateway's push keys. */
  readonly baseUrl?: string;
  /** Scheduled delivery (X-Delay); refused with ntfy's "unable to parse delay" when absent. */
  readonly scheduled?: ScheduledStore;
  /** How often due scheduled messages are looked for, ms. @default 1000 */
  readonly schedulerIntervalMs?: number;
  /** Bounds of X-Delay, ms (ntfy: 10 s and 3 days). */
  readonly delayMinMs?: number;
  readonly delayMaxMs?: number;
  /** The secret the app's last rotation replaced, while its grace period lasts. */
  readonly previousSecret?: (apikey: ApiKey, now: number) => Promise<string | undefined>;
  /** Connection and request limits shared by every connector (docs/security.md#limits). */
  readonly admission?: Admission;
  readonly tls?: TlsListenOptions | undefined;
  /** Header, request and keep-alive timeouts of the port (the HTTP API's settings). */
  readonly timeouts?: HttpTimeouts;
  /** Milliseconds `close()` waits for streams to end before dropping them. @default 2000 */
  readonly closeGraceMs?: number;
}

/** When the node passes none: the HTTP API's defaults (config.ts). */
const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5_000 };

/**
 * A connection limit's refusal in ntfy's shape: 429 `{"code":42901,…}` past a rate or
 * cap (server/errors.go errHTTPTooManyRequests*), 503 when the server is full.
 */
function ntfyRefusal(err: LimitError): { status: number; headers: Record<string, string>; body: string } {
  const full = err.code === 'LIMIT_PENDING' || err.code === 'LIMIT_DESCRIPTORS';
  const e = full ? new NtfyError('NTFY_UNAVAILABLE') : new NtfyError('NTFY_TOO_MANY_REQUESTS', err.message);
  const body = e.body();
  return {
    status: e.http,
    headers: { 'content-type': 'application/json', 'retry-after': String(err.retryAfterSeconds ?? 1), 'content-length': String(Buffer.byteLength(body)) },
    body,
  };
}

/** ntfy's disallowed-topics default (config.go DefaultDisallowedTopics): paths of its own. */
const DISALLOWED_TOPICS = new Set(['docs', 'static', 'file', 'app', 'metrics', 'account', 'settings', 'signup', 'login', 'v1']);
const TOPICS_PART = '[-_A-Za-z0-9]{1,64}(?:,[-_A-Za-z0-9]{1,64})*';
// ntfy's path patterns (server.go topicPathRegex, jsonPathRegex, …, publishPathRegex).
const TOPIC_PATH = /^\/([-_A-Za-z0-9]{1,64})$/;
const STREAM_PATH = new RegExp(`^/(${TOPICS_PART})/(json|sse|raw|ws|auth)$`);
const PUBLISH_PATH = /^\/([-_A-Za-z0-9]{1,64})\/(publish|send|trigger)$/;
const MATRIX_PATH = '/_matrix/push/v1/notify';
/** How long a claimed scheduled message is ours before another node may take it, ms. */
const SCHEDULE_LEASE_MS = 60_000;
const SCHEDULE_BATCH = 100;
/** Scheduled messages listed per `scheduled=1` subscription. */
const PENDING_LIMIT = 1000;
/** A socket's admission ticket (a symbol property: no map entry per connection). */
const HOLDER = Symbol('ntfy admission');
type HeldSocket = Socket & { [HOLDER]?: AdmissionHolder };

/** ntfy's publish/subscribe over HTTP, on its own listener. */
export class NtfyConnector {
  readonly #opts: NtfyConnectorOptions;
  readonly #hub: Hub;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 64, perMessageDeflate: false });
  readonly #connections = new Set<NtfyConnection>();
  readonly #ctx: NtfyStreamContext;
  readonly #salt: string;
  readonly #maxMessageBytes: number;
  #keepAlive: NodeJS.Timeout | undefined;
  #scheduler: NodeJS.Timeout | undefined;
  #scheduling: Promise<void> | undefined;
  #closing = false;
  #drained: (() => void) | undefined;
  /** Messages accepted through this listener since start (ntfy's /v1/stats). */
  #published = 0;

  constructor(opts: NtfyConnectorOptions) {
    this.#opts = opts;
    this.#hub = opts.hub;
    this.#log = opts.log;
    this.#salt = idSalt(opts.apikey);
    this.#maxMessageBytes = opts.maxMessageBytes ?? 4096;
    this.#ctx = {
      hub: opts.hub,
      log: opts.log,
      salt: this.#salt,
      removed: (conn) => {
        this.#connections.delete(conn);
        if (this.#connections.size === 0) this.#drained?.();
      },
    };
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    };
    // Built at the one door of every HTTP listener (listen.ts): the TCP connections of
    // each address counted and rate-limited there, the descriptor budget checked, HTTP
    // timeouts set, every refusal counted under listener="ntfy". `#admit` then counts the
    // connection among the address's client connections, as /ws and SSE are.
    this.#server = createHttpListener(handler, {
      name: 'ntfy',
      timeouts: opts.timeouts ?? DEFAULT_HTTP_TIMEOUTS,
      tls: opts.tls,
      log: opts.log,
      admission: opts.admission,
      refusal: ntfyRefusal,
    });
    // Admission once per connection, where its protocol can be spoken (after TLS).
    this.#server.on(opts.tls ? 'secureConnection' : 'connection', (socket: Socket) => this.#admit(socket));
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#upgrade(req, socket, head).catch((err: unknown) => {
        this.#log.error({ err }, 'ntfy websocket upgrade failed');
        socket.destroy();
      });
    });
    this.#server.on('clientError', (_err, socket: Duplex) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** The ntfy id of a Shaddock message of the app (tests, docs). */
  ntfyId(messageId: number): string {
    return encodeId(this.#salt, messageId);
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const why = err.code === 'EADDRINUSE' ? `port ${this.#opts.port} on ${this.#opts.host} is already in use` : err.message;
        reject(new Error(why, { cause: err }));
      };
      this.#server.once('error', onError);
      this.#server.listen({ host: this.#opts.host, port: this.#opts.port, backlog: LISTEN_BACKLOG }, () => {
        this.#server.off('error', onError);
        this.#keepAlive = setInterval(() => {
          for (const c of this.#connections) c.keepAlive();
        }, this.#opts.keepAliveMs ?? 45_000);
        this.#keepAlive.unref();
        if (this.#opts.scheduled) {
          this.#scheduler = setInterval(() => {
            this.#scheduling ??= this.#sendDue().finally(() => {
              this.#scheduling = undefined;
            });
          }, this.#opts.schedulerIntervalMs ?? 1000);
          this.#scheduler.unref();
        }
        const address = this.#server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : this.#opts.port);
      });
    });
  }

  /** Stops accepting, ends every stream and waits until they are gone. */
  async close(reason: string = CLOSE_REASONS.shutdown): Promise<void> {
    this.#closing = true;
    clearInterval(this.#keepAlive);
    clearInterval(this.#scheduler);
    await this.#scheduling;
    this.#server.close();
    for (const conn of [...this.#connections]) conn.close(reason);
    if (this.#connections.size > 0) {
      const drained = new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
      const grace = setTimeout(() => {
        for (const conn of [...this.#connections]) conn.terminate();
      }, this.#opts.closeGraceMs ?? 2000);
      await drained;
      clearTimeout(grace);
    }
    this.#server.closeAllConnections();
    this.#wss.close();
  }

  // ---- limits ---------------------------------------------------------------------------

  /**
   * The one place this listener meets the shared admission (docs/security.md#limits):
   * per-address connection cap and connect rate here, per connection request rate in
   * `#overRate`. Plain HTTP has no enter step, so the connection enters at once.
   */
  #admit(socket: HeldSocket): void {
    const admission = this.#opts.admission;
    if (!admission) return;
    try {
      const holder: AdmissionHolder = { admission: admission.admit(socket.remoteAddress ?? '') };
      admissionEntered(holder);
      socket[HOLDER] = holder;
      socket.once('close', () => releaseAdmission(holder));
    } catch (err) {
      if (!(err instanceof LimitError)) throw err;
      this.#hub.observer.refused('ntfy', err.code, err.message, undefined, socket.remoteAddress ?? '');
      refuseHttpConnection(socket, err, ntfyRefusal);
    }
  }

  /** Counts one request on its connection; true when over the rate (ntfy's 42901). */
  #overRate(req: IncomingMessage): boolean {
    const holder = (req.socket as HeldSocket)[HOLDER];
    return holder !== undefined && !countRequest(holder);
  }

  // ---- routing --------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const query = url.searchParams;
    if (this.#closing) throw new NtfyError('NTFY_UNAVAILABLE');
    if (this.#overRate(req)) throw new NtfyError('NTFY_TOO_MANY_REQUESTS');
    if (method === 'OPTIONS') {
      // server.go handleOptions: CORS for the web app.
      res.writeHead(200, {
        'access-control-allow-methods': 'GET, PUT, POST, PATCH, DELETE',
        'access-control-allow-origin': '*',
        'access-control-allow-headers': '*',
        'content-length': '0',
      });
      res.end();
      return;
    }
    if (method === 'HEAD' && path === '/') return this.#json(res, 200, undefined);
    if (method === 'GET') {
      switch (path) {
        case '/':
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
          res.end('Shaddock: ntfy publish/subscribe API (no web app here). See docs/ntfy.md.\n');
          return;
        case '/v1/health':
          return this.#json(res, 200, { healthy: true });
        case '/v1/stats':
          return this.#json(res, 200, { messages: this.#published, messages_rate: 0 });
        case '/v1/config':
          return this.#json(res, 200, this.#webConfig());
        case '/config.js':
          res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-cache' });
          res.end(`// Generated server configuration\nvar config = ${JSON.stringify(this.#webConfig(), null, 2)};\n`);
          return;
        case '/v1/account':
          return this.#json(res, 200, this.#anonymousAccount());
        case '/v1/tiers':
          return this.#json(res, 200, []);
        case MATRIX_PATH:
          // server_matrix.go writeMatrixDiscoveryResponse.
          return this.#json(res, 200, { unifiedpush: { gateway: 'matrix' } });
      }
    }
    if ((method === 'PUT' || method === 'POST') && path === '/') {
      const body = await this.#readBody(req, this.#maxMessageBytes * 2, 'NTFY_JSON_TOO_LARGE');
      const json = readJsonPublish(body, this.#maxMessageBytes);
      return this.#publish(req, res, query, json.topic, json.read, json.body);
    }
    if (method === 'POST' && path === MATRIX_PATH) return this.#matrix(req, res, query);
    let m = TOPIC_PATH.exec(path);
    if (m && (method === 'PUT' || method === 'POST')) {
      const body = await this.#readBody(req, this.#maxMessageBytes, 'NTFY_ATTACHMENT_TOO_LARGE');
      return this.#publish(req, res, query, m[1]!, paramReader(req.headers, query), body);
    }
    if (method === 'GET' && (m = PUBLISH_PATH.exec(path))) {
      return this.#publish(req, res, query, m[1]!, paramReader(req.headers, query), Buffer.alloc(0));
    }
    if (method === 'GET' && (m = STREAM_PATH.exec(path))) {
      const topics = this.#topics(m[1]!);
      const kind = m[2]!;
      const app = await this.#hub.app(this.#opts.apikey);
      const access = await this.#access(req, query, app);
      authorize(access, 'read', app);
      if (kind === 'auth') return this.#json(res, 200, { success: true });
      // ntfy: /ws without an Upgrade header is 40016.
      if (kind === 'ws') throw new NtfyError('NTFY_WS_UPGRADE_MISSING');
      return this.#subscribe(req, query, { res }, kind as StreamFormat, topics, m[1]!, app, access);
    }
    if (method === 'GET' && (m = TOPIC_PATH.exec(path))) {
      // server.go handleTopic: UnifiedPush discovery; otherwise ntfy's web app, which is not here.
      if (toBool(paramReader(req.headers, query)('x-unifiedpush', 'unifiedpush', 'up'))) {
        return this.#json(res, 200, { unifiedpush: { version: 1 } });
      }
    }
    throw new NtfyError('NTFY_NOT_FOUND');
  }

  async #access(req: IncomingMessage, query: URLSearchParams, app: App): Promise<NtfyAccess> {
    const credential = credentialOf(readAuthorization(req, query));
    const previous = this.#opts.previousSecret;
    return authenticate(app, credential, () => (previous ? previous(app.apikey, Date.now()) : Promise.resolve(undefined)));
  }

  /** `a,b` as ntfy's topicsFromPath reads it; its disallowed names are refused (40010). */
  #topics(text: string): string[] {
    const topics = [...new Set(text.split(',').filter((t) => t !== ''))];
    for (const t of topics) {
      if (!TOPIC_RE.test(t)) throw new NtfyError('NTFY_TOPIC_INVALID');
      if (DISALLOWED_TOPICS.has(t)) throw new NtfyError('NTFY_TOPIC_DISALLOWED');
    }
    return topics;
  }

  // ---- publishing -----------------------------------------------------------------------

  async #publish(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, topic: string, read: ParamReader, body: Buffer): Promise<void> {
    const [t] = this.#topics(topic);
    const app = await this.#hub.app(this.#opts.apikey);
    const access = await this.#access(req, query, app);
    authorize(access, 'write', app);
    const now = Date.now();
    const draft = readPublish(read, body, { maxMessageBytes: this.#maxMessageBytes, delayMinMs: this.#opts.delayMinMs ?? 10_000, delayMaxMs: this.#opts.delayMaxMs ?? 3 * 86_400_000 }, now);
    const answer = await this.publishDraft(app, t!, draft, now);
    this.#json(res, 200, undefined, answer);
  }

  /** Stores the push (or schedules it) and returns ntfy's message JSON of it. */
  async publishDraft(app: App, topic: string, draft: PublishDraft, now: number): Promise<string> {
    const content = contentOf(draft);
    if (draft.at !== undefined) {
      const scheduled = this.#opts.scheduled;
      if (!scheduled) throw new NtfyError('NTFY_DELAY_CANNOT_PARSE', 'scheduled delivery is off on this server');
      const entry = await scheduled.add({ apikey: app.apikey, dueAt: draft.at, tags: [topic], event: NTFY_EVENT, data: content }, now);
      this.#published++;
      return this.#scheduledJson(entry, topic, app.messageTtlSeconds);
    }
    const { message } = await this.#hub.publish({
      apikey: app.apikey,
      target: { all: false, clientIds: [], tags: [topic] },
      event: NTFY_EVENT,
      data: content,
      // X-Cache: no — stored (history, receipts) with no time to live: delivered live, never replayed.
      ...(!draft.cache && { ttlSeconds: 0 }),
    });
    this.#published++;
    const time = Math.floor(message.createdAt / 1000);
    const expires = message.expiresAt > message.createdAt ? Math.floor(message.expiresAt / 1000) : undefined;
    return messageJson(encodeId(this.#salt, message.id), time, expires, 'message', topic, content);
  }

  #scheduledJson(entry: ScheduledMessage, topic: string, ttlSeconds: number): string {
    const time = Math.floor(entry.dueAt / 1000);
    return messageJson(encodeId(this.#salt, entry.id, 'scheduled'), time, time + (entry.ttlSeconds ?? ttlSeconds), 'message', topic, ntfyContent(entry.data));
  }

  /**
   * ntfy's Matrix push gateway (server_matrix.go): the push key is the topic's URL; the
   * whole Matrix notification is the message, published as UnifiedPush. A push key that
   * is not ours is answered `{"rejected":[key]}` so the homeserver drops it.
   */
  async #matrix(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const body = await this.#readBody(req, this.#maxMessageBytes, 'NTFY_MATRIX_TOO_LARGE');
    let pushKey: string | undefined;
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { notification?: { devices?: { pushkey?: unknown }[] } };
      const key = parsed.notification?.devices?.[0]?.pushkey;
      if (typeof key === 'string' && key !== '') pushKey = key;
    } catch {
      pushKey = undefined;
    }
    if (pushKey === undefined) throw new NtfyError('NTFY_MATRIX_INVALID');
    const rejected = (): void => this.#json(res, 200, { rejected: [pushKey] });
    const base = this.#opts.baseUrl?.replace(/\/+$/, '');
    if (base !== undefined && !pushKey.startsWith(`${base}/`)) return rejected();
    let keyUrl: URL;
    try {
      keyUrl = new URL(pushKey);
    } catch {
      return rejected();
    }
    // Without a base URL: a key naming another host than the one asked is not ours.
    if (base === undefined && req.headers.host !== undefined && keyUrl.host !== req.headers.host) return rejected();
    const m = TOPIC_PATH.exec(keyUrl.pathname);
    if (!m) return rejected();
    const [topic] = this.#topics(m[1]!);
    const app = await this.#hub.app(this.#opts.apikey);
    const access = await this.#access(req, query, app);
    authorize(access, 'write', app);
    const read = paramReader({}, new URLSearchParams({ up: '1' }));
    const draft = readPublish(read, body, { maxMessageBytes: this.#maxMessageBytes, delayMinMs: 0, delayMaxMs: 0 }, Date.now());
    await this.publishDraft(app, topic!, draft, Date.now());
    this.#json(res, 200, { rejected: [] });
  }

  /** Pushes the scheduled messages that are due (one node claims each: ScheduledStore.claimDue). */
  async #sendDue(): Promise<void> {
    const store = this.#opts.scheduled;
    if (!store || this.#closing) return;
    let due: readonly ScheduledMessage[];
    try {
      due = await store.claimDue(Date.now(), SCHEDULE_LEASE_MS, SCHEDULE_BATCH);
    } catch (err) {
      this.#log.warn({ err }, 'ntfy: cannot read scheduled messages');
      return;
    }
    for (const e of due) {
      try {
        await this.#hub.publish({
          apikey: e.apikey,
          target: { all: false, clientIds: [], tags: [...e.tags] },
          event: e.event,
          data: e.data,
          ...(e.ttlSeconds !== undefined && { ttlSeconds: e.ttlSeconds }),
        });
        await store.done(e.id);
      } catch (err) {
        if (err instanceof HubError && err.code === 'APP_UNKNOWN') {
          // The app is gone: nobody to deliver to.
          this.#log.info({ id: e.id, app: e.apikey }, 'ntfy: scheduled message of a deleted app dropped');
          await store.done(e.id).catch(() => undefined);
          continue;
        }
        // Its lease runs out and it is tried again (here or on another node).
        this.#log.warn({ err, id: e.id }, 'ntfy: scheduled message not pushed yet; retrying after its lease');
      }
    }
  }

  // ---- subscribing ----------------------------------------------------------------------

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const refuse = (err: NtfyError): void => {
      const body = err.body();
      socket.on('error', () => socket.destroy());
      socket.end(`HTTP/1.1 ${err.http} ${err.http === 429 ? 'Too Many Requests' : 'Error'}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    };
    try {
      if (this.#closing) throw new NtfyError('NTFY_UNAVAILABLE');
      if (this.#overRate(req)) throw new NtfyError('NTFY_TOO_MANY_REQUESTS');
      const url = new URL(req.url ?? '/', 'http://localhost');
      const m = STREAM_PATH.exec(url.pathname);
      if (!m || m[2] !== 'ws') throw new NtfyError('NTFY_NOT_FOUND');
      const topics = this.#topics(m[1]!);
      const app = await this.#hub.app(this.#opts.apikey);
      const access = await this.#access(req, url.searchParams, app);
      authorize(access, 'read', app);
      // Parameters are checked before the upgrade, so a bad one is still an HTTP answer.
      const stream = this.#streamOptions(req, url.searchParams, 'ws', topics, m[1]!);
      this.#wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        // ntfy reads only to see pongs and closes (wsReadLimit 64): anything else is ignored.
        ws.on('message', () => {
          if (this.#overRate(req)) ws.close(1008, 'limit reached: too many requests');
        });
        void this.#enter(new NtfyConnection(this.#ctx, stream.opts, req.socket.remoteAddress ?? '', { ws }), stream, app, access);
      });
    } catch (err) {
      if (err instanceof NtfyError) return refuse(err);
      if (err instanceof HubError) return refuse(new NtfyError('NTFY_INTERNAL', err.message));
      throw err;
    }
  }

  async #subscribe(
    req: IncomingMessage,
    query: URLSearchParams,
    transport: { readonly res: ServerResponse },
    format: StreamFormat,
    topics: readonly string[],
    topicsText: string,
    app: App,
    access: NtfyAccess,
  ): Promise<void> {
    const stream = this.#streamOptions(req, query, format, topics, topicsText);
    const conn = new NtfyConnection(this.#ctx, stream.opts, req.socket.remoteAddress ?? '', transport);
    await this.#enter(conn, stream, app, access);
  }

  /** Subscribe parameters (server.go parseSubscribeParams); throws NtfyError. */
  #streamOptions(
    req: IncomingMessage,
    query: URLSearchParams,
    format: StreamFormat,
    topics: readonly string[],
    topicsText: string,
  ): { readonly opts: StreamOptions; readonly resumeAfter: number | 'latest'; readonly poll: boolean; readonly scheduled: boolean } {
    const read = paramReader(req.headers, query);
    const poll = toBool(read('x-poll', 'poll', 'po'));
    const scheduled = toBool(read('x-scheduled', 'scheduled', 'sched'));
    let sinceText = read('x-since', 'since', 'si');
    // Ours: EventSource's reconnect presents the last `id:` it saw (ntfy sends none).
    const lastEventId = req.headers['last-event-id'];
    if (format === 'sse' && typeof lastEventId === 'string' && lastEventId.trim() !== '') sinceText = lastEventId.trim();
    const since = parseSince(sinceText, poll, Date.now());
    const priorities = read('x-priority', 'priority', 'prio', 'p')
      .split(',')
      .filter((p) => p.trim() !== '')
      .map((p) => parsePriority(p) ?? 3);
    const tags = read('x-tags', 'tags', 'tag', 'ta')
      .split(',')
      .filter((t) => t !== '');
    const filters: Filters = {
      ...nonEmpty('id', read('x-id', 'id')),
      ...nonEmpty('message', read('x-message', 'message', 'm')),
      ...nonEmpty('title', read('x-title', 'title', 't')),
      ...(tags.length > 0 && { tags }),
      ...(priorities.length > 0 && { priorities }),
    };
    let resumeAfter: number | 'latest' = 'latest';
    let notBefore: number | undefined;
    let latestOnly = false;
    switch (since.kind) {
      case 'none':
        break;
      case 'all':
        resumeAfter = 0;
        break;
      case 'latest':
        resumeAfter = 0;
        latestOnly = true;
        break;
      case 'time':
        resumeAfter = 0;
        notBefore = since.unix * 1000;
        break;
      case 'id': {
        // ntfy: an id it does not know means every cached message (message_cache.go messagesSinceID).
        const decoded = decodeId(this.#salt, since.id);
        resumeAfter = decoded?.kind === 'message' ? decoded.n : 0;
        break;
      }
    }
    return {
      opts: { format, topics, topicsText, filters, ...(notBefore !== undefined && { notBefore }), ...(latestOnly && { latestOnly }), ...(poll && { poll }) },
      resumeAfter,
      poll,
      scheduled,
    };
  }

  /** Never rejects: every failure becomes ntfy's error answer (or a close, on ws). */
  async #enter(
    conn: NtfyConnection,
    stream: { readonly opts: StreamOptions; readonly resumeAfter: number | 'latest'; readonly poll: boolean; readonly scheduled: boolean },
    app: App,
    access: NtfyAccess,
  ): Promise<void> {
    this.#connections.add(conn);
    try {
      if (this.#closing) throw new NtfyError('NTFY_UNAVAILABLE');
      // A client token's holder is that client; anyone else a client of its own for this stream.
      let clientId: string;
      let token: string | undefined;
      if (access.kind === 'token') {
        clientId = access.clientId;
        token = access.token;
      } else {
        clientId = `ntfy-${randomBytes(12).toString('base64url')}`;
        // Already authorized here; an app requiring client tokens gets one for this client.
        if (app.requireClientToken) token = (await signClientToken({ secret: app.secret, apikey: app.apikey, clientId, ttlSeconds: 300 })).token;
      }
      conn.clientId = clientId;
      const entered = await this.#hub.enterClient(conn, {
        apikey: app.apikey,
        clientId,
        resumeAfter: stream.resumeAfter,
        tags: stream.opts.topics,
        ...(token !== undefined && { token }),
      });
      conn.start();
      await entered.replayed;
      conn.replayDone();
      if (stream.scheduled && this.#opts.scheduled) {
        for (const e of await this.#opts.scheduled.pending(app.apikey, stream.opts.topics, PENDING_LIMIT)) {
          const topic = e.tags.find((t) => stream.opts.topics.includes(t)) ?? stream.opts.topics[0]!;
          conn.writeExtra(this.#scheduledJson(e, topic, app.messageTtlSeconds), encodeId(this.#salt, e.id, 'scheduled'), ntfyContent(e.data));
        }
      }
      if (stream.poll) conn.finish();
    } catch (err) {
      conn.refuse(this.#asNtfyError(err));
    }
  }

  #asNtfyError(err: unknown): NtfyError {
    if (err instanceof NtfyError) return err;
    if (err instanceof HubError) {
      switch (err.code) {
        case 'AUTH_FAILED':
          return new NtfyError('NTFY_UNAUTHORIZED', err.message);
        case 'FORBIDDEN':
        case 'NOT_ENTERED':
          return new NtfyError('NTFY_FORBIDDEN', err.message);
        case 'LIMIT_APP_CONNECTIONS':
          return new NtfyError('NTFY_TOO_MANY_SUBSCRIPTIONS', err.message);
        case 'LIMIT_LOGIN_RATE':
          return new NtfyError('NTFY_TOO_MANY_REQUESTS', err.message);
        case 'BAD_REQUEST':
        case 'PUSH_INVALID':
          return new NtfyError('NTFY_BAD_REQUEST', err.message);
        case 'APP_UNKNOWN':
          return new NtfyError('NTFY_INTERNAL', `the ntfy app is gone: ${err.message}`);
      }
    }
    const errorId = randomBytes(6).toString('hex');
    this.#log.error({ err, errorId }, 'ntfy request failed');
    return new NtfyError('NTFY_INTERNAL', `error id ${errorId}`);
  }

  // ---- answers --------------------------------------------------------------------------

  #fail(res: ServerResponse, err: unknown): void {
    const e = this.#asNtfyError(err);
    if (e.http >= 500 || e.http === 429) this.#log.debug({ code: e.errorName, err: e.message }, 'ntfy request refused');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = e.body();
    const headers: Record<string, string> = { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'content-length': String(Buffer.byteLength(body)) };
    if (e.http === 429 || e.http === 503) headers['retry-after'] = '1';
    // A body we stopped reading (too large) cannot be followed by another request.
    if (!res.req.complete) headers['connection'] = 'close';
    res.writeHead(e.http, headers);
    res.end(body);
  }

  /** ntfy's writeJSON: `application/json`, CORS open, the JSON and a newline. */
  #json(res: ServerResponse, status: number, value: unknown, raw?: string): void {
    const body = raw !== undefined ? `${raw}\n` : value === undefined ? '' : `${JSON.stringify(value)}\n`;
    res.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  /**
   * The body, at most `limit` bytes: a larger one (by Content-Length, or as it streams)
   * is refused with `tooLarge` before more of it is read.
   */
  #readBody(req: IncomingMessage, limit: number, tooLarge: 'NTFY_ATTACHMENT_TOO_LARGE' | 'NTFY_JSON_TOO_LARGE' | 'NTFY_MATRIX_TOO_LARGE'): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    const detail = tooLarge === 'NTFY_ATTACHMENT_TOO_LARGE' ? `the message is larger than ${this.#maxMessageBytes} bytes; this server stores no attachments` : undefined;
    if (Number.isFinite(declared) && declared > limit) return Promise.reject(new NtfyError(tooLarge, detail));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size > limit) {
          req.off('data', onData);
          req.pause();
          reject(new NtfyError(tooLarge, detail));
          return;
        }
        chunks.push(chunk);
      };
      req.on('data', onData);
      req.once('end', () => resolve(Buffer.concat(chunks)));
      req.once('error', reject);
      // The client went away mid-body: nothing to answer, nothing kept waiting.
      req.once('close', () => {
        if (!req.complete) reject(new NtfyError('NTFY_BAD_REQUEST', 'the request body was cut short'));
      });
    });
  }

  /** ntfy's /v1/config (apiConfigResponse): what the web app asks for; nothing of accounts here. */
  #webConfig(): Record<string, unknown> {
    return {
      base_url: '',
      app_root: '/',
      enable_login: false,
      enable_signup: false,
      enable_payments: false,
      enable_calls: false,
      enable_emails: false,
      enable_reservations: false,
      enable_web_push: false,
      billing_contact: '',
      web_push_public_key: '',
      disallowed_topics: [...DISALLOWED_TOPICS],
    };
  }

  /** ntfy's GET /v1/account for a visitor without an account (server_account.go): user `*`, role anonymous. */
  #anonymousAccount(): Record<string, unknown> {
    return {
      username: '*',
      role: 'anonymous',
      limits: {
        basis: 'ip',
        messages: 0,
        messages_expiry_duration: 0,
        emails: 0,
        calls: 0,
        reservations: 0,
        attachment_total_size: 0,
        attachment_file_size: 0,
        attachment_expiry_duration: 0,
        attachment_bandwidth: 0,
      },
      stats: {
        messages: 0,
        messages_remaining: 0,
        emails: 0,
        emails_remaining: 0,
        calls: 0,
        calls_remaining: 0,
        reservations: 0,
        reservations_remaining: 0,
        attachment_total_size: 0,
        attachment_total_size_remaining: 0,
      },
    };
  }
}

function nonEmpty<K extends 'id' | 'message' | 'title'>(key: K, value: string): { [P in K]?: string } {
  return (value === '' ? {} : { [key]: value }) as { [P in K]?: string };
}

/** The push's `data`: the draft's ntfy fields (docs/ntfy.md, "What a push holds"). */
function contentOf(d: PublishDraft): NtfyContent {
  return {
    message: d.message,
    ...(d.title !== undefined && { title: d.title }),
    ...(d.priority !== undefined && { priority: d.priority }),
    ...(d.tags !== undefined && { tags: d.tags }),
    ...(d.click !== undefined && { click: d.click }),
    ...(d.icon !== undefined && { icon: d.icon }),
    ...(d.actions !== undefined && { actions: d.actions }),
    ...(d.attachment !== undefined && { attachment: d.attachment }),
    ...(d.content_type !== undefined && { content_type: d.content_type }),
    ...(d.encoding !== undefined && { encoding: d.encoding }),
  };
}
