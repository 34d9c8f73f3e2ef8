import type { Redis } from 'ioredis';
import type { ApiKey } from '../ids.js';
import { RedisScript, connectRedis, disconnectRedis, type RedisConnectionOptions } from '../redis/client.js';
import type { NewScheduled, ScheduledMessage, ScheduledStore } from './scheduled-store.js';

/**
 * Scheduled messages on the cluster's Redis:
 * - `{prefix}sched:seq` STRING, the id counter;
 * - `{prefix}sched:due` ZSET, id → next try (ms): the due time, then the end of a claim's lease;
 * - `{prefix}sched:e` HASH, id → the entry's JSON.
 * A claim is one Lua script (atomic on the server): the entries due are moved to the
 * lease's end in the same step that returns them, so no two nodes claim one entry.
 */
const CLAIM = new RedisScript(
  'sched-claim',
  `local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local e = redis.call('HGET', KEYS[2], id)
  if e then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = e
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out`,
);

export class RedisScheduledStore implements ScheduledStore {
  readonly #redis: Redis;
  readonly #seq: string;
  readonly #due: string;
  readonly #entries: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#seq = `${prefix}sched:seq`;
    this.#due = `${prefix}sched:due`;
    this.#entries = `${prefix}sched:e`;
  }

  async add(entry: NewScheduled, now: number): Promise<ScheduledMessage> {
    const id = await this.#redis.incr(this.#seq);
    const stored: ScheduledMessage = { ...entry, id, createdAt: now };
    // MULTI: the entry and its place in the queue together, or neither.
    await this.#redis.multi().hset(this.#entries, String(id), JSON.stringify(stored)).zadd(this.#due, entry.dueAt, String(id)).exec();
    return stored;
  }

  async claimDue(now: number, leaseMs: number, limit: number): Promise<readonly ScheduledMessage[]> {
    const raw = (await CLAIM.run(this.#redis, [this.#due, this.#entries], [now, now + leaseMs, limit])) as string[];
    return raw.map((s) => JSON.parse(s) as ScheduledMessage).sort((a, b) => a.dueAt - b.dueAt || a.id - b.id);
  }

  async done(id: number): Promise<void> {
    await this.#redis.multi().zrem(this.#due, String(id)).hdel(this.#entries, String(id)).exec();
  }

  async pending(apikey: ApiKey, tags: readonly string[], limit: number): Promise<readonly ScheduledMessage[]> {
    const all = await this.#redis.hvals(this.#entries);
    return all
      .map((s) => JSON.parse(s) as ScheduledMessage)
      .filter((m) => m.apikey === apikey && m.tags.some((t) => tags.includes(t)))
      .sort((a, b) => a.dueAt - b.dueAt || a.id - b.id)
      .slice(0, limit);
  }

  close(): Promise<void> {
    return disconnectRedis(this.#redis);
  }
}

export async function openRedisScheduledStore(options: RedisConnectionOptions): Promise<RedisScheduledStore> {
  return new RedisScheduledStore(await connectRedis(options, 'scheduled'), options.prefix);
}
