import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Logger } from '../log.js';
import { asApiKey, asClientId, asMessageId } from '../ids.js';
import type { Hub } from '../hub/hub.js';
import { MAX_CLIENT_ID_LENGTH } from '../hub/hub.js';
import type { Storage, StoredMessage } from '../store/store.js';
import { NTFY_ANONYMOUS_ACCESS } from '../store/store.js';
import { adminFromRequest, requireAdmin, requireAppAccess } from './auth.js';
import { CONSOLE_DIST_DIR, serveConsoleFile } from './console-files.js';
import { appView } from './views.js';
import { signClientToken } from '../hub/client-tokens.js';
import { SESSION_COOKIE, SESSION_TTL_MS, SessionStore, basicAuthUsername, readCookie, sessionCookie, type LoginLimiter } from './sessions.js';
import { MAX_SECRET_GRACE_SECONDS } from '../store/secrets.js';
import { ApiError, badRequestFromZod, makeClientErrorHandler, makeErrorHandler, makeFrameworkErrorHandler } from './errors.js';
import { registerMetricsRoute, type Metrics } from './metrics.js';
import { tlsServerOptions, type TlsListenOptions } from '../tls.js';

export interface HttpApiOptions {
  readonly hub: Hub;
  readonly storage: Storage;
  readonly log: Logger;
  /** Largest request body, bytes. */
  readonly bodyLimit: number;
  /** Default message TTL for apps created without one, seconds. */
  readonly defaultMessageTtlSeconds: number;
  /** Extra facts for /healthz (ports, node id). */
  readonly health?: () => Record<string, unknown>;
  /** Mark the session cookie Secure (the API is served over HTTPS). */
  readonly secureCookies?: boolean;
  /** The SSE connector: takes over the raw request and response of an event stream. */
  readonly sse?: (req: IncomingMessage, res: ServerResponse, apikey: string, clientId: string) => void;
  /** Served at GET /metrics (Prometheus); no route when absent. */
  readonly metrics?: Metrics;
  /** When set, /metrics needs `Authorization: Bearer <metricsToken>`. */
  readonly metricsToken?: string;
  /** Counts failed admin logins (console and Basic auth); shared with the hub's manager logins. */
  readonly loginLimiter?: LoginLimiter;
  /** Per-connection rate of HTTP pushes (the connectors' `requestsPerSecond`): a bucket per keep-alive connection, none when exempt. */
  readonly pushRate?: { requestBucket(address: string): { request(): boolean } | undefined };
  /** Serve HTTPS only (and so wss:// for /ws), docs/tls.md; plain HTTP when absent. */
  readonly tls?: TlsListenOptions | undefined;
  /**
   * Builds the HTTP(S) server around fastify's handler (the listener with its limits and
   * timeouts, src/connectors/listen.ts); fastify's own when absent. It then serves TLS
   * when `tls` is set.
   */
  readonly serverFactory?: (handler: (req: IncomingMessage, res: ServerResponse) => void) => HttpServer;
}

const MAX_TTL_SECONDS = 30 * 86400;

// The body's shape. What `event`, `data`, `to` and `ttl` may hold is the hub's rule for
// every way in (src/hub/push-rules.ts), checked by hub.publish: PUSH_INVALID, 400.
const PushBody = z
  .object({
    event: z.string().optional(),
    data: z.unknown(),
    to: z
      .object({
        // At least one: an empty list must not turn into "every client".
        clientIds: z.array(z.string()).min(1).optional(),
        tags: z.array(z.string()).min(1).optional(),
      })
      .strict()
      .optional(),
    ttl: z.number().optional(),
  })
  .strict();

const NewAppBody = z
  .object({
    name: z.string().min(1).max(200),
    messageTtlSeconds: z.number().int().min(1).max(MAX_TTL_SECONDS).optional(),
  })
  .strict();

const AppSettingsBody = z
  .object({
    name: z.string().min(1).max(200).optional(),
    messageTtlSeconds: z.number().int().min(1).max(MAX_TTL_SECONDS).optional(),
    requireClientToken: z.boolean().optional(),
    ntfyAnonymousAccess: z.enum(NTFY_ANONYMOUS_ACCESS).optional(),
    ntfyTokensCanPublish: z.boolean().optional(),
  })
  .strict();

const ApikeyParams = z.object({ apikey: z.string().min(1).max(200) });
const ClientsQuery = z
  .object({
    search: z.string().max(MAX_CLIENT_ID_LENGTH).optional(),
    offset: z.coerce.number().int().min(0).optional(),
    limit: z.coerce.number().int().min(1).max(10_000).optional(),
  })
  .strict();
const TokenBody = z
  .object({
    clientId: z.string().min(1).max(MAX_CLIENT_ID_LENGTH),
    ttl: z.number().int().min(1).max(365 * 86400).optional(),
    format: z.enum(['compact', 'jwt']).optional(),
  })
  .strict();
const RotateBody = z.object({ graceSeconds: z.number().int().min(0).max(MAX_SECRET_GRACE_SECONDS).optional() }).strict();
const LoginBody = z.object({ username: z.string().min(1).max(200), password: z.string().min(1).max(1000) }).strict();
const MessageIdParams = z.object({ id: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER) });
const HistoryQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(500).optional(),
    before: z.coerce.number().int().min(1).optional(),
  })
  .strict();

function messageView(m: StoredMessage): Record<string, unknown> {
  return {
    id: m.id,
    event: m.event,
    data: m.data,
    target: m.target,
    ttl: m.ttlSeconds,
    createdAt: new Date(m.createdAt).toISOString(),
    expiresAt: new Date(m.expiresAt).toISOString(),
  };
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw badRequestFromZod(result.error, what);
  return result.data;
}


/** The HTTP API of docs/architecture.md: push, clients online, apps, health. */
export function buildHttpApi(opts: HttpApiOptions) {
  const { hub, storage } = opts;
  const sessions = new SessionStore();
  const app = Fastify({
    // Fastify's own per-request lines stay out of the log; our handlers log what matters.
    loggerInstance: opts.log.child({ component: 'http' }, { level: 'warn' }),
    bodyLimit: opts.bodyLimit,
    // On shutdown the connectors have already kicked their clients: close every socket,
    // including keep-alive and hijacked (SSE) ones, instead of waiting for peers.
    forceCloseConnections: true,
    // A push server sits behind proxies often enough; trust only explicit config later.
    trustProxy: false,
    // null: plain HTTP. Either way the instance is typed for https.Server, whose requests
    // and responses are the same IncomingMessage and ServerResponse as http's.
    https: opts.tls && !opts.serverFactory ? tlsServerOptions(opts.tls) : null,
    // The factory's server is an http.Server or an https.Server (by `tls`); fastify's
    // types tie the factory to the `https` option's server type, hence the cast.
    ...(opts.serverFactory ? { serverFactory: opts.serverFactory as never } : {}),
    // The longest path parameter we accept is a client id (apikeys are shorter): fastify's
    // default of 100 refused longer client ids on SSE with its own 414 (issue 15, item 7).
    // find-my-way compares the decoded value, so this is characters, like the schemas.
    routerOptions: { maxParamLength: MAX_CLIENT_ID_LENGTH },
    // Every refusal, fastify's and node's own included, answers `{code, message}` (docs/api.md).
    frameworkErrors: makeFrameworkErrorHandler(opts.log, MAX_CLIENT_ID_LENGTH),
    clientErrorHandler: makeClientErrorHandler(opts.log),
  });
  // Bodies are JSON only: fastify's default text/plain parser let a plain-text body reach
  // the routes as a string (a 400 where docs/api.md promises 415), and text/plain is what
  // a cross-site form may send without a CORS preflight.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(makeErrorHandler(opts.log));
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    // The web console: every GET outside the API is one of its files (or its index page).
    if ((req.method === 'GET' || req.method === 'HEAD') && !/^\/(api|healthz|ws|metrics)(\/|$)/.test(path)) {
      const file = serveConsoleFile(CONSOLE_DIST_DIR, req.url);
      if (file) {
        void reply
          .status(file.status)
          .headers({ ...file.headers, 'content-type': file.contentType, 'cache-control': file.cacheControl })
          .send(file.body);
        return;
      }
    }
    void reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${req.method} ${path}` });
  });

  const apikeyOf = (req: FastifyRequest): string => parse(ApikeyParams, req.params, 'apikey').apikey;

  // Admin passwords are guessable, app secrets (256 bits) are not: failed admin logins
  // are counted per address and username, console and Basic auth alike (docs/security.md).
  const limiter = opts.loginLimiter;
  const tooManyLogins = (reply: FastifyReply, wait: number): FastifyReply =>
    reply
      .status(429)
      .header('retry-after', String(wait))
      .send({ code: 'LIMIT_LOGIN_RATE', message: `too many failed admin logins; retry in ${wait} s` });
  if (limiter) {
    app.addHook('onRequest', async (req, reply) => {
      const username = basicAuthUsername(req.headers.authorization);
      if (username === undefined) return;
      const wait = limiter.retryAfter(req.ip, username);
      if (wait > 0) return tooManyLogins(reply, wait);
    });
    app.addHook('onResponse', async (req, reply) => {
      const username = basicAuthUsername(req.headers.authorization);
      if (username === undefined) return;
      if (reply.statusCode === 401) limiter.failed(req.ip, username);
      else if (reply.statusCode < 400) limiter.succeeded(req.ip, username);
    });
  }

  app.get('/healthz', async () => ({ status: 'ok', connections: hub.connectionCount, ...(opts.health?.() ?? {}) }));
  if (opts.metrics) registerMetricsRoute(app, opts.metrics, opts.metricsToken);

  // One bucket per keep-alive connection, like any other connection's requests (docs/security.md#limits).
  const pushBuckets = new WeakMap<object, { request(): boolean } | null>();
  const overPushRate = (req: FastifyRequest): boolean => {
    if (!opts.pushRate) return false;
    let bucket = pushBuckets.get(req.socket);
    if (bucket === undefined) {
      bucket = opts.pushRate.requestBucket(req.socket.remoteAddress ?? '') ?? null;
      pushBuckets.set(req.socket, bucket);
    }
    return bucket !== null && !bucket.request();
  };

  app.post('/api/v1/apps/:apikey/messages', async (req, reply) => {
    if (overPushRate(req)) {
      return reply
        .status(429)
        .header('retry-after', '1')
        .send({ code: 'LIMIT_REQUEST_RATE', message: 'too many pushes on this connection; slow down or open another connection' });
    }
    const { app: target } = await requireAppAccess(req, storage, apikeyOf(req), sessions);
    if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
      throw new ApiError('BAD_REQUEST', 'body: expected a JSON object like {"data": ...}');
    }
    const body = parse(PushBody, req.body, 'body');
    if (!('data' in req.body)) throw new ApiError('BAD_REQUEST', 'data: required (any JSON value)');
    const clientIds = body.to?.clientIds?.map(asClientId) ?? [];
    const tags = body.to?.tags ?? [];
    const result = await hub.publish({
      apikey: target.apikey,
      target: { all: clientIds.length === 0 && tags.length === 0, clientIds, tags },
      event: body.event ?? 'onMsg',
      data: body.data ?? null,
      ...(body.ttl !== undefined ? { ttlSeconds: body.ttl } : {}),
    });
    return reply.status(202).send({ id: result.message.id, targeted: result.targeted });
  });

  app.get('/api/v1/apps/:apikey/messages', async (req) => {
    const { app: target } = await requireAppAccess(req, storage, apikeyOf(req), sessions);
    const q = parse(HistoryQuery, req.query, 'query');
    const limit = q.limit ?? 50;
    const items = await storage.messages.history(target.apikey, { limit, ...(q.before !== undefined ? { before: asMessageId(q.before) } : {}) });
    const last = items.at(-1);
    return {
      messages: items.map((m) => ({ ...messageView(m), receipt: m.receipt })),
      // Paging: pass `before` = nextBefore for the next (older) page; null at the end.
      nextBefore: items.length === limit && last ? last.id : null,
    };
  });

  app.get('/api/v1/apps/:apikey/messages/:id', async (req) => {
    const { app: target } = await requireAppAccess(req, storage, apikeyOf(req), sessions);
    const { id } = parse(MessageIdParams, req.params, 'id');
    const message = await storage.messages.get(target.apikey, asMessageId(id));
    const receipt = await storage.messages.receipt(target.apikey, asMessageId(id));
    if (!message || !receipt) throw new ApiError('NOT_FOUND', `no message ${id} (never sent, or expired and swept)`);
    return {
      ...messageView(message),
      receipt: receipt.receipt,
      recipients: receipt.recipients.map((r) => ({
        clientId: r.clientId,
        state: r.ackedAt !== undefined ? 'acked' : r.deliveredAt !== undefined ? 'delivered' : r.skippedAt !== undefined ? 'skipped' : 'pending',
        ...(r.deliveredAt !== undefined ? { deliveredAt: new Date(r.deliveredAt).toISOString() } : {}),
        ...(r.ackedAt !== undefined ? { ackedAt: new Date(r.ackedAt).toISOString() } : {}),
        ...(r.skippedAt !== undefined ? { skippedAt: new Date(r.skippedAt).toISOString(), reason: r.skipReason } : {}),
      })),
    };
  });

  const sse = opts.sse;
  if (sse) {
    const SseParams = z.object({ apikey: z.string().min(1).max(200), clientId: z.string().min(1).max(MAX_CLIENT_ID_LENGTH) });
    // Server-Sent Events: the connector owns the response from here on (docs/connectors.md).
    app.get('/api/v1/apps/:apikey/clients/:clientId/events', (req, reply) => {
      const { apikey, clientId } = parse(SseParams, req.params, 'params');
      reply.hijack();
      sse(req.raw, reply.raw, apikey, clientId);
    });
  }

  app.get('/api/v1/apps/:apikey/clients', async (req) => {
    const { app: target } = await requireAppAccess(req, storage, apikeyOf(req), sessions);
    const q = parse(ClientsQuery, req.query, 'query');
    const search = q.search?.toLowerCase();
    let online = await hub.listClients(target.apikey);
    if (search !== undefined && search !== '') online = online.filter((c) => c.clientId.toLowerCase().includes(search));
    online.sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
    const offset = q.offset ?? 0;
    const page = online.slice(offset, offset + (q.limit ?? 1000));
    return {
      total: online.length,
      clients: page.map((c) => ({
        clientId: c.clientId,
        connector: c.connector,
        connectedAt: new Date(c.connectedAt).toISOString(),
        tags: c.tags,
        node: c.node,
      })),
    };
  });

  // Client tokens for apps that require them: the app's back end asks, a device presents.
  app.post('/api/v1/apps/:apikey/tokens', async (req) => {
    const { app: target } = await requireAppAccess(req, storage, apikeyOf(req), sessions);
    const body = parse(TokenBody, req.body ?? {}, 'body');
    const { token, expiresAt } = await signClientToken({
      secret: target.secret,
      apikey: target.apikey,
      clientId: body.clientId,
      ttlSeconds: body.ttl ?? 86400,
      format: body.format ?? 'compact',
    });
    return { token, clientId: body.clientId, expiresAt: new Date(expiresAt).toISOString() };
  });

  app.get('/api/v1/apps/:apikey/stats', async (req) => {
    const { app: target } = await requireAppAccess(req, storage, apikeyOf(req), sessions);
    // Counters are this node's; `online` is the app's across the cluster.
    return { ...hub.stats(target.apikey), online: await hub.onlineCount(target.apikey), at: Date.now() };
  });

  // Console login: a session cookie (HttpOnly, SameSite=Strict) plus a CSRF token that
  // state-changing requests send back in a header.
  app.post('/api/v1/session', async (req, reply) => {
    const body = parse(LoginBody, req.body ?? {}, 'body');
    const wait = limiter?.retryAfter(req.ip, body.username) ?? 0;
    if (wait > 0) return tooManyLogins(reply, wait);
    if (!(await storage.admins.verifyAdmin(body.username, body.password))) {
      limiter?.failed(req.ip, body.username);
      throw new ApiError('UNAUTHORIZED', 'wrong admin username or password');
    }
    limiter?.succeeded(req.ip, body.username);
    const { token, session } = sessions.create(body.username);
    void reply.header('set-cookie', sessionCookie(token, Math.floor(SESSION_TTL_MS / 1000), opts.secureCookies === true));
    return { username: session.username, csrfToken: session.csrfToken };
  });

  app.get('/api/v1/session', async (req) => {
    const session = sessions.get(readCookie(req.headers.cookie, SESSION_COOKIE));
    if (!session) throw new ApiError('UNAUTHORIZED', 'not logged in');
    return { username: session.username, csrfToken: session.csrfToken };
  });

  app.delete('/api/v1/session', async (req, reply) => {
    // Logging out is state-changing too: it needs the CSRF header like any other.
    if (!(await adminFromRequest(req, storage, sessions))) throw new ApiError('UNAUTHORIZED', 'not logged in');
    sessions.delete(readCookie(req.headers.cookie, SESSION_COOKIE));
    void reply.header('set-cookie', sessionCookie('', 0, opts.secureCookies === true));
    return reply.status(204).send();
  });

  app.post('/api/v1/apps', async (req, reply) => {
    await requireAdmin(req, storage, sessions);
    const body = parse(NewAppBody, req.body ?? {}, 'body');
    const created = await storage.apps.createApp({
      name: body.name,
      messageTtlSeconds: body.messageTtlSeconds ?? opts.defaultMessageTtlSeconds,
    });
    return reply.status(201).send(appView(created));
  });

  app.get('/api/v1/apps', async (req) => {
    await requireAdmin(req, storage, sessions);
    const apps = await storage.apps.listApps();
    return { apps: apps.map(appView) };
  });

  app.get('/api/v1/apps/:apikey', async (req) => {
    await requireAdmin(req, storage, sessions);
    const found = await storage.apps.getApp(asApiKey(apikeyOf(req)));
    if (!found) throw new ApiError('NOT_FOUND', 'no such app');
    return appView(found);
  });

  app.patch('/api/v1/apps/:apikey', async (req) => {
    await requireAdmin(req, storage, sessions);
    const body = parse(AppSettingsBody, req.body ?? {}, 'body');
    const updated = await storage.apps.updateApp(asApiKey(apikeyOf(req)), {
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.messageTtlSeconds !== undefined ? { messageTtlSeconds: body.messageTtlSeconds } : {}),
      ...(body.requireClientToken !== undefined ? { requireClientToken: body.requireClientToken } : {}),
      ...(body.ntfyAnonymousAccess !== undefined ? { ntfyAnonymousAccess: body.ntfyAnonymousAccess } : {}),
      ...(body.ntfyTokensCanPublish !== undefined ? { ntfyTokensCanPublish: body.ntfyTokensCanPublish } : {}),
    });
    if (!updated) throw new ApiError('NOT_FOUND', 'no such app');
    return appView(updated);
  });

  // With graceSeconds, the replaced secret (and client tokens signed with it) keep
  // working that long, so back ends and devices can move over (docs/security.md).
  app.post('/api/v1/apps/:apikey/rotate-secret', async (req) => {
    await requireAdmin(req, storage, sessions);
    const { graceSeconds = 0 } = parse(RotateBody, req.body ?? {}, 'body');
    const now = Date.now();
    const rotated = await storage.apps.rotateSecret(asApiKey(apikeyOf(req)), { graceSeconds, now });
    if (!rotated) throw new ApiError('NOT_FOUND', 'no such app');
    return { ...appView(rotated), previousSecretValidUntil: graceSeconds > 0 ? new Date(now + graceSeconds * 1000).toISOString() : null };
  });

  app.delete('/api/v1/apps/:apikey', async (req, reply) => {
    await requireAdmin(req, storage, sessions);
    const apikey = asApiKey(apikeyOf(req));
    if (!(await storage.apps.deleteApp(apikey))) throw new ApiError('NOT_FOUND', 'no such app');
    hub.dropApp(apikey);
    return reply.status(204).send();
  });

  return app;
}

export type HttpApi = ReturnType<typeof buildHttpApi>;
