// The cluster presence: who is online on which node, in Redis.
//
// - `{prefix}app:{apikey}:presence` HASH clientId → entry JSON (node first, see
//   presence-lua.ts). One entry per client: `set` replaces.
// - `{prefix}nodes` ZSET node id → last heartbeat (ms, Redis server clock). Every node
//   beats every `heartbeatMs` from one unref'ed timer; a node whose last beat is older
//   than `nodeTimeoutMs` is dead.
// - `{prefix}node:{nodeId}:presence` SET of the entries a node wrote, so that its
//   entries can be removed when it dies without scanning every app.
//
// Readers leave a dead node's entries out at once (and delete those they saw); each
// heartbeat also drains the entries of dead nodes it finds and drops them from `nodes`.
// A node that was declared dead while it was only slow (a long GC pause, a partition)
// notices on its next beat and writes its own entries back, unless its clients have
// meanwhile connected elsewhere.
import type { Redis } from 'ioredis';
import { asClientId, type ApiKey, type ClientId } from '../ids.js';
import { CONNECTOR_NAMES, type ConnectorName } from '../hub/connection.js';
import {
  connectRedis,
  disconnectRedis,
  toRedisError,
  type RedisConnectionOptions,
  type RedisLogger,
  type RedisScript,
} from '../redis/client.js';
import { presenceKeys, storageKeys, type PresenceKeys } from '../redis/keys.js';
import { COUNT, DRAIN_NODE, HEARTBEAT, LIST, NODES, REMOVE, REMOVE_DEAD, RESTORE, SET } from '../redis/presence-lua.js';
import { encodeList, replyArray, replyInteger, replyPairs, replyString } from '../redis/reply.js';
import type { Presence, PresenceEntry } from './presence.js';

/** @default 2000 ms */
export const DEFAULT_HEARTBEAT_MS = 2000;
/** @default 15000 ms */
export const DEFAULT_NODE_TIMEOUT_MS = 15_000;

export interface RedisPresenceOptions extends RedisConnectionOptions {
  /** This node's id, unique in the cluster (two live processes must never share one). */
  readonly nodeId: string;
  /**
   * How often this node writes its heartbeat, in ms. 0: no timer, the owner calls
   * `heartbeat()` itself (tests with their own clock).
   * @default 2000
   */
  readonly heartbeatMs?: number;
  /**
   * A node whose last heartbeat is older than this is dead: its entries are left out of
   * `list`/`count` and deleted, and it leaves `nodes()`. Several heartbeats long, so
   * that one late beat does not kill a node; in ms.
   * @default 15000
   */
  readonly nodeTimeoutMs?: number;
}

// Members one drain step pops from a dead node's set.
const DRAIN_BATCH = 500;

function isObject(v: unknown): v is { readonly [key: string]: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isConnector = (v: unknown): v is ConnectorName => (CONNECTOR_NAMES as readonly unknown[]).includes(v);

/** The beginning of every entry of `node` (entries are JSON with node first). */
const nodePrefix = (node: string): string => `{"node":${JSON.stringify(node)},`;

function encodeEntry(entry: PresenceEntry): string {
  return JSON.stringify({
    node: entry.node,
    clientId: entry.clientId,
    connector: entry.connector,
    connectedAt: entry.connectedAt,
    remoteAddress: entry.remoteAddress,
    tags: entry.tags,
  });
}

function decodeEntry(json: string): PresenceEntry | undefined {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!isObject(v)) return undefined;
  const { node, clientId, connector, connectedAt, remoteAddress, tags } = v;
  if (typeof node !== 'string' || typeof clientId !== 'string' || !isConnector(connector)) return undefined;
  if (typeof connectedAt !== 'number' || !Number.isSafeInteger(connectedAt)) return undefined;
  const entry: PresenceEntry = { clientId: asClientId(clientId), node, connector, connectedAt };
  // Optional fields written by newer nodes; ignored when malformed rather than dropping the entry.
  const address = typeof remoteAddress === 'string' ? { remoteAddress } : {};
  const tagList = Array.isArray(tags) && tags.every((t) => typeof t === 'string') ? { tags: tags as string[] } : {};
  return { ...entry, ...address, ...tagList };
}

/** What a node's set holds for an entry. */
const member = (apikey: ApiKey, clientId: ClientId): string => encodeList([apikey, clientId]);

export class RedisPresence implements Presence {
  readonly nodeId: string;
  readonly #redis: Redis;
  readonly #keys: PresenceKeys;
  readonly #appHashPrefix: string;
  readonly #timeoutMs: number;
  readonly #logger: RedisLogger | undefined;
  /** This node's own entries (member → where and what), to write back after a false death. */
  readonly #mine = new Map<string, { readonly key: string; readonly clientId: ClientId; readonly json: string }>();
  readonly #pending = new Set<Promise<unknown>>();
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #beats = 0;

  private constructor(redis: Redis, options: RedisPresenceOptions) {
    this.nodeId = options.nodeId;
    this.#redis = redis;
    this.#keys = presenceKeys(options.prefix);
    this.#appHashPrefix = storageKeys(options.prefix).appHashPrefix;
    this.#timeoutMs = options.nodeTimeoutMs ?? DEFAULT_NODE_TIMEOUT_MS;
    this.#logger = options.logger;
  }

  /** Connects, writes the first heartbeat (so the node is live before its first `set`) and starts beating. */
  static async open(options: RedisPresenceOptions): Promise<RedisPresence> {
    const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const timeoutMs = options.nodeTimeoutMs ?? DEFAULT_NODE_TIMEOUT_MS;
    if (!(heartbeatMs >= 0 && timeoutMs > heartbeatMs)) {
      throw new RangeError(`nodeTimeoutMs (${timeoutMs}) must be longer than heartbeatMs (${heartbeatMs})`);
    }
    const redis = await connectRedis(options, 'presence').catch((err: unknown) => {
      throw toRedisError('open presence', err);
    });
    const presence = new RedisPresence(redis, options);
    try {
      await presence.heartbeat();
    } catch (err) {
      await disconnectRedis(redis);
      throw err;
    }
    if (heartbeatMs === 0) return presence;
    presence.#timer = setInterval(() => {
      // A beat still running (a slow drain) is not doubled.
      if (presence.#beating) return;
      presence.#beating = presence
        .heartbeat()
        .catch((err: unknown) => presence.#logger?.warn({ err, node: presence.nodeId }, 'presence: heartbeat failed'))
        .finally(() => (presence.#beating = undefined));
    }, heartbeatMs);
    presence.#timer.unref();
    return presence;
  }

  async #run(what: string, script: RedisScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await script.run(this.#redis, keys, args);
    } catch (err) {
      throw toRedisError(`presence ${what}`, err);
    }
  }

  /**
   * One beat: marks this node alive, drains the entries of dead nodes, and writes this
   * node's entries back if it had been taken for dead. Run by the timer; exposed for tests.
   */
  async heartbeat(): Promise<void> {
    const reply = replyArray(await this.#run('heartbeat', HEARTBEAT, [this.#keys.nodes], [this.nodeId, this.#timeoutMs]), 'heartbeat');
    const known = replyInteger(reply[0], 'heartbeat') === 1;
    const dead = replyArray(reply[1], 'heartbeat dead nodes').map((n) => replyString(n, 'node id'));
    if (!known && this.#beats > 0 && this.#mine.size > 0) {
      this.#logger?.warn({ node: this.nodeId, entries: this.#mine.size }, 'presence: this node was taken for dead; writing its entries back');
      const args: string[] = [];
      for (const [m, e] of this.#mine) args.push(e.key, e.clientId, e.json, m);
      for (let i = 0; i < args.length; i += 4 * DRAIN_BATCH) {
        await this.#run('restore', RESTORE, [this.#keys.node(this.nodeId)], args.slice(i, i + 4 * DRAIN_BATCH));
      }
    }
    this.#beats++;
    for (const node of dead) await this.#drain(node, false);
  }

  /** Removes a node's entries (dead, or this one leaving) and, when done, the node. */
  async #drain(node: string, force: boolean): Promise<void> {
    const args = [node, nodePrefix(node), this.#timeoutMs, this.#appHashPrefix, DRAIN_BATCH, force ? '1' : '0'];
    for (;;) {
      const left = replyInteger(await this.#run('drain node', DRAIN_NODE, [this.#keys.nodes, this.#keys.node(node)], args), 'drain');
      if (left <= 0) return;
    }
  }

  /** Replaces the client's entry, wherever it was. One script: HSET + SADD. */
  async set(apikey: ApiKey, entry: PresenceEntry): Promise<void> {
    const key = this.#keys.app(apikey);
    const m = member(apikey, entry.clientId);
    const json = encodeEntry(entry);
    await this.#run('set', SET, [key, this.#keys.node(entry.node)], [entry.clientId, json, m]);
    if (entry.node === this.nodeId) this.#mine.set(m, { key, clientId: entry.clientId, json });
    else this.#mine.delete(m);
  }

  /** Removes the client's entry only if it is `node`'s (a late leave never erases a newer entry elsewhere). */
  async remove(apikey: ApiKey, clientId: ClientId, node: string): Promise<void> {
    const m = member(apikey, clientId);
    await this.#run('remove', REMOVE, [this.#keys.app(apikey), this.#keys.node(node)], [clientId, nodePrefix(node), m]);
    if (node === this.nodeId) this.#mine.delete(m);
  }

  /** The app's entries on live nodes; entries of dead nodes are left out and deleted in the background. */
  async list(apikey: ApiKey): Promise<readonly PresenceEntry[]> {
    const key = this.#keys.app(apikey);
    const [rawLive, rawEntries] = replyArray(await this.#run('list', LIST, [key, this.#keys.nodes], [this.#timeoutMs]), 'presence list');
    const live = new Set(replyArray(rawLive, 'live nodes').map((n) => replyString(n, 'node id')));
    const entries: PresenceEntry[] = [];
    const stale: string[] = [];
    for (const [clientId, json] of replyPairs(rawEntries, 'presence entries')) {
      const entry = decodeEntry(json);
      if (entry === undefined) {
        this.#logger?.warn({ apikey, clientId }, 'presence: ignored a malformed entry');
      } else if (live.has(entry.node)) {
        entries.push(entry);
      } else {
        stale.push(clientId, entry.node, json);
      }
    }
    if (stale.length > 0) this.#background(this.#run('remove dead', REMOVE_DEAD, [key, this.#keys.nodes], [this.#timeoutMs, ...stale]));
    return entries;
  }

  /** HLEN when every node is live (the common case, O(1)); counted from `list` otherwise. */
  async count(apikey: ApiKey): Promise<number> {
    const n = replyInteger(await this.#run('count', COUNT, [this.#keys.app(apikey), this.#keys.nodes], [this.#timeoutMs]), 'presence count');
    return n >= 0 ? n : (await this.list(apikey)).length;
  }

  async nodes(): Promise<readonly string[]> {
    const reply = await this.#run('nodes', NODES, [this.#keys.nodes], [this.#timeoutMs]);
    return replyArray(reply, 'nodes').map((n) => replyString(n, 'node id'));
  }

  /**
   * Leaves: stops beating, removes this node's entries and the node itself, then
   * disconnects. If Redis is away, only disconnects; the entries go when the node times out.
   */
  async close(): Promise<void> {
    await this.#stop();
    try {
      await this.#drain(this.nodeId, true);
    } catch (err) {
      this.#logger?.warn({ err, node: this.nodeId }, 'presence: could not remove this node; its entries expire with it');
    }
    this.#mine.clear();
    await disconnectRedis(this.#redis);
  }

  /**
   * Stops beating and disconnects, removing nothing: what a crashed node leaves behind.
   * For tests and failure drills.
   */
  async abandon(): Promise<void> {
    await this.#stop();
    this.#mine.clear();
    await disconnectRedis(this.#redis);
  }

  async #stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#beating;
    await Promise.allSettled([...this.#pending]);
  }

  #background(work: Promise<unknown>): void {
    const p = work.catch((err: unknown) => this.#logger?.warn({ err }, 'presence: background cleanup failed'));
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }
}

/** Opens a RedisPresence (see RedisPresence.open). */
export function openRedisPresence(options: RedisPresenceOptions): Promise<RedisPresence> {
  return RedisPresence.open(options);
}
