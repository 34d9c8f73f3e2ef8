import type { Logger } from '../log.js';
import { asApiKey, asClientId, type ClientId } from '../ids.js';
import { HubError, type Hub } from '../hub/hub.js';
import type { Connection } from '../hub/connection.js';
import { PUSH_INVALID } from '../hub/push-rules.js';

/**
 * The seed push platform's routes, shared by the Pomelo hybrid and socket.io
 * connectors (docs/pomelo.md, docs/pomelo-protocol.md §15).
 */
export const ROUTES = {
  hybridEnter: 'hybrid-connector.entryHandler.enter',
  sioEnter: 'sio-connector.entryHandler.enter',
  connectorEnter: 'connector.entryHandler.enter',
  pushAll: 'pushserver.pushHandler.pushAll',
  pushByClientId: 'pushserver.pushHandler.pushByClientId',
  // Shaddock's own routes (docs/pomelo.md): delivery features the seed did not have.
  ack: 'shaddock.client.ack',
  subscribe: 'shaddock.client.subscribe',
  unsubscribe: 'shaddock.client.unsubscribe',
  push: 'shaddock.manager.push',
} as const;

/** Handler routes, as Pomelo would number them in the route dictionary (docs/pomelo-protocol.md §8.1). */
export const HANDLER_ROUTES: readonly string[] = Object.values(ROUTES);

/** What a route answers: always an object with a numeric `code`. */
export type RouteResponse = { readonly code: number; readonly msg?: string } & Readonly<Record<string, unknown>>;

export type RouteBody = Readonly<Record<string, unknown>>;

/**
 * Runs one Pomelo request or notify. Never throws: every failure becomes
 * `{code: 500, msg}` with a clear reason (the reference answered some requests
 * with silence, e.g. pushByClientId; we answer every one).
 */
export async function handlePomeloRoute(
  hub: Hub,
  conn: Connection,
  route: string,
  body: unknown,
  log: Logger,
): Promise<RouteResponse> {
  try {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new HubError('BAD_REQUEST', 'the request body must be a JSON object');
    }
    const b = body as RouteBody;
    switch (route) {
      case ROUTES.hybridEnter:
      case ROUTES.sioEnter:
      case ROUTES.connectorEnter:
        return await enter(hub, conn, route, b);
      case ROUTES.pushAll:
        return await push(hub, conn, b, false);
      case ROUTES.pushByClientId:
        return await push(hub, conn, b, true);
      case ROUTES.ack: {
        const id = b['id'];
        if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw new HubError('BAD_REQUEST', '"id" must be a message id');
        if (!hub.identity(conn)) throw new HubError('NOT_ENTERED', 'enter before acking');
        hub.ack(conn, id);
        return { code: 200 };
      }
      case ROUTES.subscribe:
        await hub.subscribeTags(conn, tagList(b));
        return { code: 200 };
      case ROUTES.unsubscribe:
        await hub.unsubscribeTags(conn, tagList(b));
        return { code: 200 };
      case ROUTES.push:
        return await managerPush(hub, conn, b);
      default:
        return { code: 500, msg: `unknown route "${route.slice(0, 255)}"`, error: 'ROUTE_UNKNOWN' };
    }
  } catch (err) {
    if (err instanceof HubError) {
      hub.observer.refused(conn.connector, err.code, err.message, conn);
      return { code: 500, msg: err.message, error: err.code };
    }
    const errorId = crypto.randomUUID();
    log.error({ err, conn: conn.id, route, errorId }, 'route handler failed');
    return { code: 500, msg: `internal error (id ${errorId})`, error: 'INTERNAL' };
  }
}

async function enter(hub: Hub, conn: Connection, route: string, b: RouteBody): Promise<RouteResponse> {
  // Real clients send `apiKey` to enter and `apikey` to push: accept either (docs/pomelo-protocol.md §15.1).
  const apikey = str(b, 'apiKey') ?? str(b, 'apikey');
  if (apikey === undefined) throw new HubError('BAD_REQUEST', 'missing "apiKey"');
  if (b['role'] === 'server') {
    const users = await hub.enterManager(conn, apikey, str(b, 'password'), str(b, 'userId'));
    return { code: 200, msg: 'push server is ok.', users };
  }
  const clientId = str(b, 'clientId');
  if (clientId === undefined) throw new HubError('BAD_REQUEST', 'missing "clientId"');
  const lastId = b['lastId'];
  if (lastId !== undefined && (typeof lastId !== 'number' || !Number.isSafeInteger(lastId) || lastId < 0)) {
    throw new HubError('BAD_REQUEST', '"lastId" must be the id of the last message the client saw');
  }
  const token = str(b, 'token');
  await hub.enterClient(conn, {
    apikey,
    clientId,
    ...(typeof lastId === 'number' ? { resumeAfter: lastId } : {}),
    ...(b['tags'] !== undefined ? { tags: tagList(b) } : {}),
    ...(token !== undefined ? { token } : {}),
  });
  // The seed's hybrid route answered `users: null` to clients; its sio route had no key.
  return route === ROUTES.hybridEnter ? { code: 200, msg: 'add ok', users: null } : { code: 200, msg: 'add ok' };
}

async function push(hub: Hub, conn: Connection, b: RouteBody, byClientId: boolean): Promise<RouteResponse> {
  const identity = hub.identity(conn);
  const apikey = str(b, 'apikey') ?? str(b, 'apiKey') ?? identity?.apikey;
  if (apikey === undefined) throw new HubError('BAD_REQUEST', 'missing "apikey"');
  if (!('msg' in b)) throw new HubError('BAD_REQUEST', 'missing "msg"');
  let clientIds: ClientId[] = [];
  if (byClientId) {
    const clientId = str(b, 'clientId');
    if (clientId === undefined) throw new HubError('BAD_REQUEST', 'missing "clientId"');
    clientIds = [asClientId(clientId)];
  }
  const result = await hub.publishAsManager(conn, {
    apikey: asApiKey(apikey),
    target: { all: !byClientId, clientIds, tags: [] },
    event: 'onMsg',
    data: b['msg'],
  });
  return { code: 200, msg: 'push is ok.', id: result.message.id, targeted: result.targeted };
}

/** `shaddock.manager.push {event?, data, to?: {clientIds?, tags?}, ttl?}`: pushes with any target. */
async function managerPush(hub: Hub, conn: Connection, b: RouteBody): Promise<RouteResponse> {
  const identity = hub.identity(conn);
  if (!identity) throw new HubError('NOT_ENTERED', 'enter as a manager (role "server") before pushing');
  if (!('data' in b)) throw new HubError('BAD_REQUEST', 'missing "data"');
  const event = b['event'] ?? 'onMsg';
  // What the name may hold is the hub's rule for every way in (src/hub/push-rules.ts).
  if (typeof event !== 'string') throw new HubError(PUSH_INVALID, 'event: expected a string');
  const to = b['to'] ?? {};
  if (typeof to !== 'object' || to === null || Array.isArray(to)) throw new HubError('BAD_REQUEST', '"to" must be an object');
  const target = to as RouteBody;
  const clientIds = stringList(target['clientIds'], 'to.clientIds').map(asClientId);
  const tags = stringList(target['tags'], 'to.tags');
  const ttl = b['ttl'];
  if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 1)) throw new HubError('BAD_REQUEST', '"ttl" must be whole seconds ≥ 1');
  const result = await hub.publishAsManager(conn, {
    apikey: identity.apikey,
    target: { all: clientIds.length === 0 && tags.length === 0, clientIds, tags },
    event,
    data: b['data'],
    ...(typeof ttl === 'number' ? { ttlSeconds: ttl } : {}),
  });
  return { code: 200, msg: 'push is ok.', id: result.message.id, targeted: result.targeted };
}

function tagList(b: RouteBody): string[] {
  return stringList(b['tags'], 'tags');
}

function stringList(v: unknown, name: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x): x is string => typeof x === 'string')) throw new HubError('BAD_REQUEST', `"${name}" must be an array of strings`);
  return v;
}

function str(b: RouteBody, key: string): string | undefined {
  const v = b[key];
  return typeof v === 'string' ? v : undefined;
}
