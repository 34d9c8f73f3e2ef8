// The Redis connection every cluster implementation (storage, bus, presence) opens, with
// one set of options: fail fast while Redis is away, reconnect on its own when it is back.
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';

/** Where connection trouble is reported; a pino Logger fits. */
export interface RedisLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface RedisConnectionOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. */
  readonly url: string;
  /**
   * Prepended to every key and channel, e.g. `shaddock:`; several deployments (or tests)
   * can share one Redis under different prefixes.
   */
  readonly prefix: string;
  /**
   * A command that got no reply by then fails (a Redis that hangs, a network that drops
   * packets without resetting the connection), in ms.
   * @default 5000
   */
  readonly commandTimeoutMs?: number;
  /** How long opening waits for the first connection before it fails, in ms. @default 5000 */
  readonly connectTimeoutMs?: number;
  /** The longest wait between two reconnect attempts, in ms. @default 2000 */
  readonly reconnectMaxDelayMs?: number;
  /** Connection lost / back. Silent when absent. */
  readonly logger?: RedisLogger;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 5000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 2000;

/** Redis cannot be reached (or is not serving yet); the call did not happen, or its fate is unknown. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
  readonly code = 'REDIS_UNAVAILABLE';
}

/** What a failed command becomes outside the storage (which has StoreError): unavailable, or as it was. */
export function toRedisError(what: string, err: unknown): Error {
  if (err instanceof RedisUnavailableError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  if (isUnavailableError(err)) return new RedisUnavailableError(`Redis unavailable: ${what}: ${reason}`, { cause: err });
  return err instanceof Error ? err : new Error(`${what}: ${reason}`);
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable Redis URL)';
  }
}

// Reply errors that mean "not now" rather than "this is wrong": a server loading its
// data set, a replica after a failover, a script running too long.
const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/;

/**
 * Whether `err` (from a command) means Redis could not be reached or could not serve.
 * ioredis rejects with plain errors for connection trouble ("Stream isn't writeable…",
 * "Connection is closed.", "Command timed out", MaxRetriesPerRequestError) and with a
 * ReplyError for what the server answered.
 */
export function isUnavailableError(err: unknown): boolean {
  if (err instanceof RedisUnavailableError) return true;
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError') return UNAVAILABLE_REPLIES.test(err.message);
  if (err.name === 'MaxRetriesPerRequestError') return true;
  return /Stream isn't writeable|Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND/.test(
    err.message,
  );
}

/**
 * Opens a connection and waits until it is ready (retrying while Redis is not there yet)
 * for at most `connectTimeoutMs`.
 *
 * Options, and why:
 * - `enableOfflineQueue: false`: while disconnected a command fails at once instead of
 *   waiting in memory for a Redis that may not come back.
 * - `maxRetriesPerRequest: 0` and `autoResendUnfulfilledCommands: false`: a command in
 *   flight when the connection drops fails at once and is never sent again on its own.
 *   Resending is not safe here: the lost reply may belong to an append that did run, and
 *   running it again would store the message twice under two ids. The caller gets
 *   STORE_UNAVAILABLE and decides (an API client retries, a receipt batch is dropped).
 * - `retryStrategy`: reconnects forever, 50 ms more per attempt up to
 *   `reconnectMaxDelayMs`; when Redis is back the same objects work again, no restart.
 * - `commandTimeout`: bounds the wait on a connection that is open but silent.
 */
export async function connectRedis(
  options: RedisConnectionOptions,
  role: string,
  overrides: Pick<RedisOptions, 'autoResubscribe'> = {},
): Promise<Redis> {
  const maxDelay = options.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS;
  const connectTimeout = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const redis = new Redis(options.url, {
    lazyConnect: true,
    connectionName: `shaddock-${role}`,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    connectTimeout,
    retryStrategy: (attempt) => Math.min(50 * attempt, maxDelay),
    ...overrides,
  });
  const where = redactUrl(options.url);
  let lastError: Error | undefined;
  let lost = false;
  // Without a listener ioredis prints every failed attempt; report each outage once.
  redis.on('error', (err: Error) => {
    lastError = err;
    if (!lost && redis.status !== 'ready') {
      lost = true;
      options.logger?.warn({ err, redis: where, role }, 'Redis unreachable; commands fail fast until it is back');
    }
  });
  redis.on('ready', () => {
    if (lost) options.logger?.info({ redis: where, role }, 'Redis connection back');
    lost = false;
  });

  await new Promise<void>((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      redis.off('ready', ready);
      redis.disconnect();
      reject(new RedisUnavailableError(`cannot connect to Redis at ${where} ${why}${lastError ? `: ${lastError.message}` : ''}`, { cause: lastError }));
    };
    const timer = setTimeout(() => fail(`within ${connectTimeout} ms`), connectTimeout);
    const ready = (): void => {
      clearTimeout(timer);
      lost = false;
      resolve();
    };
    redis.once('ready', ready);
    // A failed first attempt is retried by retryStrategy; the timer decides when to stop.
    redis.connect().catch(() => undefined);
  });
  return redis;
}

/** Closes politely when possible (QUIT), at once when not. */
export async function disconnectRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status === 'ready') {
    try {
      await redis.quit();
      return;
    } catch {
      // Fall through: the connection went away meanwhile.
    }
  }
  redis.disconnect();
}

/** A Lua script run by EVALSHA, loaded with EVAL when the server does not know it (NOSCRIPT). */
export class RedisScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;

  constructor(name: string, source: string) {
    this.name = name;
    this.source = source;
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      // After a restart (or SCRIPT FLUSH) the cache is empty; EVAL loads it again.
      if (err instanceof Error && err.name === 'ReplyError' && err.message.startsWith('NOSCRIPT')) {
        return redis.eval(this.source, keys.length, ...keys, ...args);
      }
      throw err;
    }
  }
}

/** Escapes Redis glob characters (`* ? [ ] \`), for a literal prefix in SCAN MATCH. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, '\\$&');
}

const SCAN_COUNT = 1000;

/**
 * Deletes every key that starts with `literalPrefix` (SCAN MATCH + UNLINK, in batches);
 * returns how many. SCAN walks the whole key space, a page at a time, without blocking
 * Redis; UNLINK frees memory in the background.
 */
export async function unlinkByPrefix(redis: Redis, literalPrefix: string): Promise<number> {
  const pattern = `${escapeGlob(literalPrefix)}*`;
  let cursor = '0';
  let total = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
    cursor = next;
    if (keys.length > 0) total += await redis.unlink(...keys);
  } while (cursor !== '0');
  return total;
}
