// The cluster bus: Redis pub/sub on one channel, `{prefix}bus`. One PUBLISH per event
// (per message per node, never per client), JSON-encoded; every node, the publishing one
// included, receives it on a dedicated subscriber connection and hands it to its hub.
//
// Pub/sub delivers at most once: what is published while a node's subscriber is
// disconnected never reaches that node. That is safe because every message is stored
// before it is published: `onResubscribed` tells the hub that it may have missed events,
// and the hub re-reads the store for its connections (resume), as a client does.
import type { Redis } from 'ioredis';
import { asApiKey, asClientId, asMessageId } from '../ids.js';
import { CONNECTOR_NAMES, type ConnectorName } from '../hub/connection.js';
import { connectRedis, disconnectRedis, toRedisError, type RedisConnectionOptions, type RedisLogger } from '../redis/client.js';
import { busChannel } from '../redis/keys.js';
import type { StoredMessage, Target } from '../store/store.js';
import type { Bus, BusEvent } from './bus.js';

export type RedisBusOptions = RedisConnectionOptions;

type Fields = { readonly [key: string]: unknown };

function isObject(v: unknown): v is Fields {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isInteger = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isStrings = (v: unknown): v is readonly string[] => Array.isArray(v) && v.every(isString);
const isConnector = (v: unknown): v is ConnectorName => (CONNECTOR_NAMES as readonly unknown[]).includes(v);

function toTarget(v: unknown): Target | undefined {
  if (!isObject(v)) return undefined;
  const { all, clientIds, tags } = v;
  if (typeof all !== 'boolean' || !isStrings(clientIds) || !isStrings(tags)) return undefined;
  return { all, clientIds: clientIds.map(asClientId), tags: [...tags] };
}

function toMessage(v: unknown): StoredMessage | undefined {
  if (!isObject(v)) return undefined;
  const target = toTarget(v['target']);
  const { apikey, id, targeted, event, ttlSeconds, createdAt, expiresAt } = v;
  if (!target || !isString(apikey) || !isInteger(id) || !isInteger(targeted) || !isString(event)) return undefined;
  if (!isInteger(ttlSeconds) || !isInteger(createdAt) || !isInteger(expiresAt) || !('data' in v)) return undefined;
  return { apikey: asApiKey(apikey), id: asMessageId(id), targeted, target, event, data: v['data'], ttlSeconds, createdAt, expiresAt };
}

/** A bus event from its JSON, checked field by field; undefined when it is not one. */
export function decodeBusEvent(json: string): BusEvent | undefined {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!isObject(v)) return undefined;
  switch (v['kind']) {
    case 'message': {
      const msg = toMessage(v['msg']);
      return msg && { kind: 'message', msg };
    }
    case 'presence': {
      const { change, apikey, clientId, node, connector, at } = v;
      if (change !== 'entered' && change !== 'left') return undefined;
      if (!isString(apikey) || !isString(clientId) || !isString(node) || !isConnector(connector) || !isInteger(at)) return undefined;
      return { kind: 'presence', change, apikey: asApiKey(apikey), clientId: asClientId(clientId), node, connector, at };
    }
    case 'kick': {
      const { apikey, clientId, exceptNode, reason } = v;
      if (!isString(apikey) || !isString(exceptNode) || !isString(reason)) return undefined;
      if (clientId !== undefined && !isString(clientId)) return undefined;
      return {
        kind: 'kick',
        apikey: asApiKey(apikey),
        ...(clientId === undefined ? {} : { clientId: asClientId(clientId) }),
        exceptNode,
        reason,
      };
    }
    default:
      // An event kind this build does not know (a newer node): not ours to handle.
      return undefined;
  }
}

export class RedisBus implements Bus {
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #channel: string;
  readonly #logger: RedisLogger | undefined;
  readonly #handlers: ((event: BusEvent) => void)[] = [];
  readonly #resubscribed: (() => void)[] = [];
  #closed = false;

  private constructor(pub: Redis, sub: Redis, channel: string, logger: RedisLogger | undefined) {
    this.#pub = pub;
    this.#sub = sub;
    this.#channel = channel;
    this.#logger = logger;
    sub.on('message', (from: string, json: string) => {
      if (from === channel) this.#dispatch(json);
    });
    // autoResubscribe is off: resubscribing here lets us say when it is done, and only
    // then may the hub look for what it missed (anything later arrives on the channel).
    let lost = false;
    sub.on('close', () => (lost = true));
    sub.on('ready', () => {
      if (!lost || this.#closed) return;
      lost = false;
      sub.subscribe(channel).then(
        () => {
          for (const handler of this.#resubscribed) handler();
        },
        // The connection dropped again; the next 'ready' retries.
        (err: unknown) => this.#logger?.warn({ err }, 'bus: resubscribe failed'),
      );
    });
  }

  /** Connects the publisher and the subscriber and subscribes; rejects when Redis cannot be reached. */
  static async open(options: RedisBusOptions): Promise<RedisBus> {
    const pub = await connectRedis(options, 'bus-pub');
    let sub: Redis | undefined;
    try {
      sub = await connectRedis(options, 'bus-sub', { autoResubscribe: false });
      const channel = busChannel(options.prefix);
      const bus = new RedisBus(pub, sub, channel, options.logger);
      await sub.subscribe(channel);
      return bus;
    } catch (err) {
      if (sub) await disconnectRedis(sub);
      await disconnectRedis(pub);
      throw toRedisError('open bus', err);
    }
  }

  /**
   * One PUBLISH. Resolves once Redis has taken it (every subscribed node has it or will
   * read it from its socket); rejects at once with RedisUnavailableError while Redis is away.
   */
  async publish(event: BusEvent): Promise<void> {
    try {
      await this.#pub.publish(this.#channel, JSON.stringify(event));
    } catch (err) {
      throw toRedisError('bus publish', err);
    }
  }

  subscribe(handler: (event: BusEvent) => void): void {
    this.#handlers.push(handler);
  }

  /**
   * Called each time the subscriber is back after its connection dropped: events
   * published meanwhile were lost for this node.
   */
  onResubscribed(handler: () => void): void {
    this.#resubscribed.push(handler);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#handlers.length = 0;
    this.#resubscribed.length = 0;
    await Promise.all([disconnectRedis(this.#sub), disconnectRedis(this.#pub)]);
  }

  #dispatch(json: string): void {
    const event = decodeBusEvent(json);
    if (event === undefined) {
      this.#logger?.warn({ bytes: json.length }, 'bus: ignored a malformed or unknown event');
      return;
    }
    for (const handler of this.#handlers) {
      try {
        handler(event);
      } catch (err) {
        // One failing handler must not keep the event from the others.
        this.#logger?.warn({ err, kind: event.kind }, 'bus: a handler failed');
      }
    }
  }
}

/** Opens a RedisBus (see RedisBus.open). */
export function openRedisBus(options: RedisBusOptions): Promise<RedisBus> {
  return RedisBus.open(options);
}
