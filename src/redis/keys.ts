// Key names, in one place. `{prefix}` is the deployment's prefix (e.g. `shaddock:`).
// Every key of an app starts with `{prefix}app:{apikey}:` (besides the app's own hash,
// `{prefix}app:{apikey}`), which is how deleteApp finds them all. The full table, with
// types and sizes, is in docs/cluster.md.
import type { ApiKey, ClientId } from '../ids.js';

export interface AppKeys {
  /** HASH: secret, name, ttl, token, created, last (the id counter), prev and prevUntil (a rotated secret in its grace period). */
  readonly hash: string;
  /** Prefix of every other key of the app, with its trailing colon. */
  readonly sub: string;
  /** STREAM: the message log, entry id `{id}-0`. */
  readonly log: string;
  /** ZSET: message id → expiresAt (what the sweep reads). */
  readonly expiry: string;
  /** ZSET: broadcasts, member `{id}:{expiresAt}`, score id. */
  readonly targetAll: string;
  targetClient(clientId: string): string;
  targetTag(tag: string): string;
  /** HASH per client: tags, acked, delivered, first, last. */
  client(clientId: ClientId): string;
  /** ZSET: clientId → last seen (what the sweep reads). */
  readonly clients: string;
  /** HASH: clientId → presence entry (RedisPresence). */
  readonly presence: string;
}

export interface StorageKeys {
  /** ZSET: apikey → createdAt. */
  readonly apps: string;
  /** What precedes an apikey in an app's hash key. */
  readonly appHashPrefix: string;
  app(apikey: ApiKey): AppKeys;
  /** ZSET: username, score 0 (so ordered by bytes). */
  readonly admins: string;
  readonly adminHashPrefix: string;
  /** HASH: salt, hash, created. */
  admin(username: string): string;
}

export function appKeys(prefix: string, apikey: string): AppKeys {
  const hash = `${prefix}app:${apikey}`;
  const sub = `${hash}:`;
  return {
    hash,
    sub,
    log: `${sub}log`,
    expiry: `${sub}expiry`,
    targetAll: `${sub}target:all`,
    targetClient: (clientId) => `${sub}target:c:${clientId}`,
    targetTag: (tag) => `${sub}target:t:${tag}`,
    client: (clientId) => `${sub}client:${clientId}`,
    clients: `${sub}clients`,
    presence: `${sub}presence`,
  };
}

export function storageKeys(prefix: string): StorageKeys {
  return {
    apps: `${prefix}apps`,
    appHashPrefix: `${prefix}app:`,
    app: (apikey) => appKeys(prefix, apikey),
    admins: `${prefix}admins`,
    adminHashPrefix: `${prefix}admin:`,
    admin: (username) => `${prefix}admin:${username}`,
  };
}

/** The bus's one pub/sub channel. */
export const busChannel = (prefix: string): string => `${prefix}bus`;

export interface PresenceKeys {
  /** ZSET: node id → its last heartbeat, ms by the Redis server's clock. */
  readonly nodes: string;
  /** SET per node: JSON [apikey, clientId] of the entries it wrote. */
  node(nodeId: string): string;
  app(apikey: ApiKey): string;
}

export function presenceKeys(prefix: string): PresenceKeys {
  return {
    nodes: `${prefix}nodes`,
    node: (nodeId) => `${prefix}node:${nodeId}:presence`,
    app: (apikey) => appKeys(prefix, apikey).presence,
  };
}
