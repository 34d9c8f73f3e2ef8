import Fastify, { type FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Logger } from '../log.js';
import { asApiKey, asClientId } from '../ids.js';
import type { Hub } from '../hub/hub.js';
import { MAX_CLIENT_ID_LENGTH } from '../hub/hub.js';
import type { App, Storage } from '../store/store.js';
import { requireAdmin, requireAppAccess } from './auth.js';
import { ApiError, badRequestFromZod, makeErrorHandler } from './errors.js';

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
}

const MAX_TTL_SECONDS = 30 * 86400;

const PushBody = z
  .object({
    event: z.string().min(1).max(255).optional(),
    data: z.unknown(),
    to: z
      .object({
        clientIds: z.array(z.string().min(1).max(MAX_CLIENT_ID_LENGTH)).min(1).max(10_000).optional(),
      })
      .strict()
      .optional(),
    ttl: z.number().int().min(1).max(MAX_TTL_SECONDS).optional(),
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
  })
  .strict();

const ApikeyParams = z.object({ apikey: z.string().min(1).max(200) });

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw badRequestFromZod(result.error, what);
  return result.data;
}

/** An app as admins see it: with its secret. */
function appView(app: App): Record<string, unknown> {
  return {
    apikey: app.apikey,
    secret: app.secret,
    name: app.name,
    messageTtlSeconds: app.messageTtlSeconds,
    requireClientToken: app.requireClientToken,
    createdAt: new Date(app.createdAt).toISOString(),
  };
}

/** The HTTP API of ARCHITECTURE.md: push, clients online, apps, health. */
export function buildHttpApi(opts: HttpApiOptions) {
  const { hub, storage } = opts;
  const app = Fastify({
    // Fastify's own per-request lines stay out of the log; our handlers log what matters.
    loggerInstance: opts.log.child({ component: 'http' }, { level: 'warn' }),
    bodyLimit: opts.bodyLimit,
    // A push server sits behind proxies often enough; trust only explicit config later.
    trustProxy: false,
  });
  app.setErrorHandler(makeErrorHandler(opts.log));
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}` });
  });

  const apikeyOf = (req: FastifyRequest): string => parse(ApikeyParams, req.params, 'apikey').apikey;

  app.get('/healthz', async () => ({ status: 'ok', connections: hub.connectionCount, ...(opts.health?.() ?? {}) }));

  app.post('/api/v1/apps/:apikey/messages', async (req, reply) => {
    const { app: target } = await requireAppAccess(req, storage, apikeyOf(req));
    if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
      throw new ApiError('BAD_REQUEST', 'body: expected a JSON object like {"data": ...}');
    }
    const body = parse(PushBody, req.body, 'body');
    if (!('data' in req.body)) throw new ApiError('BAD_REQUEST', 'data: required (any JSON value)');
    const clientIds = body.to?.clientIds?.map(asClientId) ?? [];
    const result = await hub.publish({
      apikey: target.apikey,
      target: { all: clientIds.length === 0, clientIds, tags: [] },
      event: body.event ?? 'onMsg',
      data: body.data ?? null,
      ...(body.ttl !== undefined ? { ttlSeconds: body.ttl } : {}),
    });
    return reply.status(202).send({ id: result.message.id, targeted: result.targeted });
  });

  app.get('/api/v1/apps/:apikey/clients', async (req) => {
    const { app: target } = await requireAppAccess(req, storage, apikeyOf(req));
    const clients = hub.onlineClients(target.apikey).map((c) => ({
      clientId: c.clientId,
      connector: c.connector,
      connectedAt: new Date(c.connectedAt).toISOString(),
    }));
    return { total: clients.length, clients };
  });

  app.post('/api/v1/apps', async (req, reply) => {
    await requireAdmin(req, storage);
    const body = parse(NewAppBody, req.body ?? {}, 'body');
    const created = await storage.apps.createApp({
      name: body.name,
      messageTtlSeconds: body.messageTtlSeconds ?? opts.defaultMessageTtlSeconds,
    });
    return reply.status(201).send(appView(created));
  });

  app.get('/api/v1/apps', async (req) => {
    await requireAdmin(req, storage);
    const apps = await storage.apps.listApps();
    return { apps: apps.map(appView) };
  });

  app.get('/api/v1/apps/:apikey', async (req) => {
    await requireAdmin(req, storage);
    const found = await storage.apps.getApp(asApiKey(apikeyOf(req)));
    if (!found) throw new ApiError('NOT_FOUND', 'no such app');
    return appView(found);
  });

  app.patch('/api/v1/apps/:apikey', async (req) => {
    await requireAdmin(req, storage);
    const body = parse(AppSettingsBody, req.body ?? {}, 'body');
    const updated = await storage.apps.updateApp(asApiKey(apikeyOf(req)), {
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.messageTtlSeconds !== undefined ? { messageTtlSeconds: body.messageTtlSeconds } : {}),
      ...(body.requireClientToken !== undefined ? { requireClientToken: body.requireClientToken } : {}),
    });
    if (!updated) throw new ApiError('NOT_FOUND', 'no such app');
    return appView(updated);
  });

  app.post('/api/v1/apps/:apikey/rotate-secret', async (req) => {
    await requireAdmin(req, storage);
    const rotated = await storage.apps.rotateSecret(asApiKey(apikeyOf(req)));
    if (!rotated) throw new ApiError('NOT_FOUND', 'no such app');
    return appView(rotated);
  });

  app.delete('/api/v1/apps/:apikey', async (req, reply) => {
    await requireAdmin(req, storage);
    const apikey = asApiKey(apikeyOf(req));
    if (!(await storage.apps.deleteApp(apikey))) throw new ApiError('NOT_FOUND', 'no such app');
    hub.dropApp(apikey);
    return reply.status(204).send();
  });

  return app;
}

export type HttpApi = ReturnType<typeof buildHttpApi>;
