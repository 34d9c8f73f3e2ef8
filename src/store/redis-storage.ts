// The cluster storage: apps, admins, the message log with its targets and receipts, and
// clients, in one Redis (6.2 or newer) shared by every node. Each method is one round
// trip (a Lua script, which Redis runs atomically, or a single command) except
// deleteApp and sweepExpired, which walk in batches. Key layout, and what each operation
// costs in Redis commands: docs/cluster.md.
//
// Behaviour matches the SQLite storage (test/store/contract.ts runs on both). Durability
// is Redis's own: a message is in Redis's memory when append resolves, and on disk only
// as its AOF/RDB settings say (appendonly yes + appendfsync everysec loses at most about
// a second on a crash of the Redis machine; without AOF a restart loses everything since
// the last RDB snapshot).
import type { Redis } from 'ioredis';
import { asApiKey, asClientId, asMessageId, type ApiKey, type ClientId, type MessageId } from '../ids.js';
import {
  connectRedis,
  disconnectRedis,
  isUnavailableError,
  unlinkByPrefix,
  type RedisConnectionOptions,
  RedisScript,
} from '../redis/client.js';
import { storageKeys, type StorageKeys } from '../redis/keys.js';
import {
  decodeList,
  encodeList,
  MalformedReplyError,
  replyArray,
  replyInteger,
  replyOptionalString,
  replyPairs,
  replyString,
} from '../redis/reply.js';
import {
  APPEND,
  DELETE_APP,
  HISTORY,
  LIST_ADMINS,
  LIST_APPS,
  READ_AFTER,
  READ_FOR,
  RECEIPT,
  RECORD_ACKS,
  RECORD_RECEIPTS,
  RECORD_SKIPS,
  SAVE_POSITIONS,
  SET_TAGS,
  SWEEP,
  TOUCH,
  UPDATE_APP,
} from '../redis/storage-lua.js';
import { addTagsTo, invalid, requireCount, requireTime } from './validate.js';
import { generateApiKey, generateSecret, graceUntil, hashPassword, verifyNoPassword, verifyPassword } from './secrets.js';
import { CLIENT_RETENTION_MS, DEFAULT_MESSAGE_TTL_SECONDS } from './sqlite-storage.js';
import { MAX_CLIENT_TAGS, StoreError, StoreErrorCode } from './validate.js';
import type {
  Admin,
  AdminStore,
  App,
  AppSettings,
  AppStore,
  AckRange,
  ClientRef,
  ClientState,
  ClientStore,
  MessageStore,
  MessageWithReceipt,
  NewApp,
  NewMessage,
  PositionUpdate,
  Receipt,
  ReceiptUpdate,
  RecipientState,
  RotateOptions,
  SkipUpdate,
  Storage,
  StoredMessage,
} from './store.js';
import { DEFAULT_NTFY_ANONYMOUS_ACCESS, isNtfyAnonymousAccess } from './store.js';

/**
 * The code of a StoreError raised because Redis cannot be reached or is not serving
 * (down, restarting, loading, a failover in progress).
 */
export const STORE_UNAVAILABLE: StoreErrorCode = StoreErrorCode.STORE_UNAVAILABLE;

function wrap(what: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  if (isUnavailableError(err)) return new StoreError(STORE_UNAVAILABLE, `Redis unavailable: ${what}: ${reason}`, { cause: err });
  return new StoreError('STORE_FAILED', `${what}: ${reason}`, { cause: err });
}

async function attempt<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw wrap(what, err);
  }
}

// ---- input: checked once, before anything is sent (the same rules as SQLite) ---------

function requireStrings(what: string, v: unknown): readonly string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw invalid(`${what} must be an array of strings`);
  return v as readonly string[];
}

/** A count for a page: anything that is not a positive number reads nothing. */
function count(limit: number): number {
  return Number.isFinite(limit) && limit > 0 ? Math.floor(limit) : 0;
}

/** An id bound as Redis reads it (decimal, no exponent); ids are safe integers. */
function idArg(id: number): string {
  return Number.isFinite(id) ? Math.max(0, Math.floor(id)).toString() : '0';
}

// ---- replies -----------------------------------------------------------------------------

/** Stream entry id `{id}-0` → id. */
function entryId(v: unknown): MessageId {
  const s = replyString(v, 'message id');
  const m = /^(\d{1,16})-0$/.exec(s);
  const id = m?.[1] === undefined ? Number.NaN : Number(m[1]);
  if (!Number.isSafeInteger(id)) throw new MalformedReplyError(`malformed message id ${JSON.stringify(s)}`);
  return asMessageId(id);
}

function field(fields: ReadonlyMap<string, string>, name: string): string {
  const v = fields.get(name);
  if (v === undefined) throw new MalformedReplyError(`message entry without field ${name}`);
  return v;
}

/** A stream entry [id, [field, value, …]] of the app's log → the message. */
function toMessage(apikey: ApiKey, entry: unknown): StoredMessage {
  const [rawId, rawFields] = replyArray(entry, 'message entry');
  const id = entryId(rawId);
  const fields = new Map(replyPairs(rawFields, 'message fields'));
  const all = field(fields, 'all');
  if (all !== '0' && all !== '1') throw new MalformedReplyError('message entry: all is not 0 or 1');
  return {
    apikey,
    id,
    targeted: replyInteger(field(fields, 'n'), 'message targeted'),
    target: {
      all: all === '1',
      clientIds: decodeList(field(fields, 'c'), 'message clientIds').map(asClientId),
      tags: decodeList(field(fields, 't'), 'message tags'),
    },
    event: field(fields, 'e'),
    data: JSON.parse(field(fields, 'd')) as unknown,
    ttlSeconds: replyInteger(field(fields, 'ttl'), 'message ttl'),
    createdAt: replyInteger(field(fields, 'at'), 'message createdAt'),
    expiresAt: replyInteger(field(fields, 'x'), 'message expiresAt'),
  };
}

/**
 * [secret, name, ttl, token, created, nanon, npub] (the scripts' APP_FIELDS order);
 * undefined when missing. The ntfy fields came later: an app written before them has
 * none, and has the defaults.
 */
function toApp(apikey: ApiKey, v: unknown): App | undefined {
  if (v === null) return undefined;
  const [secret, name, ttl, token, created, nanon, npub] = replyArray(v, 'app');
  if (created === null) return undefined;
  const flag = replyString(token, 'app token');
  if (flag !== '0' && flag !== '1') throw new MalformedReplyError('app: token is not 0 or 1');
  const anonymous = replyOptionalString(nanon, 'app ntfy anonymous access') ?? DEFAULT_NTFY_ANONYMOUS_ACCESS;
  if (!isNtfyAnonymousAccess(anonymous)) throw new MalformedReplyError('app: ntfy anonymous access is not one of the values');
  const publish = replyOptionalString(npub, 'app ntfy tokens can publish') ?? '0';
  if (publish !== '0' && publish !== '1') throw new MalformedReplyError('app: ntfy tokens can publish is not 0 or 1');
  return {
    apikey,
    secret: replyString(secret, 'app secret'),
    name: replyString(name, 'app name'),
    messageTtlSeconds: replyInteger(ttl, 'app ttl'),
    requireClientToken: flag === '1',
    ntfyAnonymousAccess: anonymous,
    ntfyTokensCanPublish: publish === '1',
    createdAt: replyInteger(created, 'app created'),
  };
}

const APP_FIELDS = ['secret', 'name', 'ttl', 'token', 'created', 'nanon', 'npub'] as const;

/**
 * Moves the secret to `prev` with its grace end `prevUntil` (ms) and sets the new one;
 * returns the app (APP_FIELDS order), nil when there is no such app.
 * KEYS: app hash. ARGV: new secret, grace end.
 */
const ROTATE_SECRET = new RedisScript(
  'rotate-secret',
  String.raw`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local old = redis.call('HGET', KEYS[1], 'secret')
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'prev', old, 'prevUntil', ARGV[2])
return redis.call('HMGET', KEYS[1], ${APP_FIELDS.map((f) => `'${f}'`).join(', ')})
`,
);

/** A script's {cursor, entries} page reply. */
function toPage(apikey: ApiKey, v: unknown): { readonly cursor: string; readonly messages: StoredMessage[] } {
  const [cursor, entries] = replyArray(v, 'page');
  return {
    cursor: replyString(cursor, 'page cursor'),
    messages: replyArray(entries, 'page entries').map((e) => toMessage(apikey, e)),
  };
}

// How many ids one read script looks at (expired ones included) before it hands back a
// cursor, so that a backlog of unswept expired messages never holds Redis for long:
// the caller continues from the cursor in another call.
const READ_BUDGET = 1000;

// Messages (and clients) one sweep step removes; one step of 500 messages with two
// targets each runs about 5000 commands inside Redis, a few milliseconds.
const SWEEP_BATCH = 500;

// ---- apps --------------------------------------------------------------------------------

/** State every part of the storage shares: the connection and the key names. */
interface Context {
  readonly redis: Redis;
  readonly keys: StorageKeys;
  run(script: RedisScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown>;
}

export class RedisAppStore implements AppStore {
  readonly #c: Context;

  constructor(context: Context) {
    this.#c = context;
  }

  async createApp(app: NewApp): Promise<App> {
    return attempt('create app', async () => {
      const ttl = requireCount('create app: messageTtlSeconds', app.messageTtlSeconds ?? DEFAULT_MESSAGE_TTL_SECONDS);
      const created: App = {
        apikey: generateApiKey(),
        secret: generateSecret(),
        name: app.name,
        messageTtlSeconds: ttl,
        requireClientToken: false,
        ntfyAnonymousAccess: DEFAULT_NTFY_ANONYMOUS_ACCESS,
        ntfyTokensCanPublish: false,
        createdAt: Date.now(),
      };
      const k = this.#c.keys.app(created.apikey);
      const replies = await this.#c.redis
        .multi()
        .hset(k.hash, 'secret', created.secret, 'name', created.name, 'ttl', ttl, 'token', '0', 'created', created.createdAt, 'last', 0, 'nanon', created.ntfyAnonymousAccess, 'npub', '0')
        .zadd(this.#c.keys.apps, created.createdAt, created.apikey)
        .exec();
      if (replies === null) throw new MalformedReplyError('create app: transaction aborted');
      for (const [err] of replies) if (err) throw err;
      return created;
    });
  }

  async getApp(apikey: ApiKey): Promise<App | undefined> {
    return attempt('get app', async () => toApp(apikey, await this.#c.redis.hmget(this.#c.keys.app(apikey).hash, ...APP_FIELDS)));
  }

  /** In order of creation time (ties: by apikey). */
  async listApps(): Promise<readonly App[]> {
    return attempt('list apps', async () => {
      const rows = replyArray(await this.#c.run(LIST_APPS, [this.#c.keys.apps], [this.#c.keys.appHashPrefix]), 'apps');
      const apps: App[] = [];
      for (const row of rows) {
        const [apikey, ...fields] = replyArray(row, 'app');
        const app = toApp(asApiKey(replyString(apikey, 'apikey')), fields);
        if (app) apps.push(app);
      }
      return apps;
    });
  }

  async updateApp(apikey: ApiKey, settings: AppSettings): Promise<App | undefined> {
    return attempt('update app', async () => {
      const pairs: (string | number)[] = [];
      if (settings.name !== undefined) pairs.push('name', settings.name);
      if (settings.messageTtlSeconds !== undefined) {
        pairs.push('ttl', requireCount('update app: messageTtlSeconds', settings.messageTtlSeconds));
      }
      if (settings.requireClientToken !== undefined) pairs.push('token', settings.requireClientToken ? '1' : '0');
      if (settings.ntfyAnonymousAccess !== undefined) pairs.push('nanon', settings.ntfyAnonymousAccess);
      if (settings.ntfyTokensCanPublish !== undefined) pairs.push('npub', settings.ntfyTokensCanPublish ? '1' : '0');
      return toApp(apikey, await this.#c.run(UPDATE_APP, [this.#c.keys.app(apikey).hash], pairs));
    });
  }

  async rotateSecret(apikey: ApiKey, opts: RotateOptions = {}): Promise<App | undefined> {
    return attempt('rotate secret', async () => {
      const until = graceUntil(opts);
      return toApp(apikey, await this.#c.run(ROTATE_SECRET, [this.#c.keys.app(apikey).hash], [generateSecret(), until]));
    });
  }

  async previousSecret(apikey: ApiKey, now: number): Promise<string | undefined> {
    return attempt('previous secret', async () => {
      const [prev, until] = replyArray(await this.#c.redis.hmget(this.#c.keys.app(apikey).hash, 'prev', 'prevUntil'), 'previous secret');
      const secret = replyOptionalString(prev, 'previous secret');
      const end = replyOptionalString(until, 'previous secret until');
      if (secret === undefined || end === undefined || !(Number(end) > now)) return undefined;
      return secret;
    });
  }

  /**
   * Removes the app at once (no append, touch or receipt for it succeeds afterwards),
   * then unlinks the rest of its keys: messages, targets, receipts, clients, presence.
   * That walks the key space with SCAN, so it takes time with the size of the database.
   */
  async deleteApp(apikey: ApiKey): Promise<boolean> {
    return attempt('delete app', async () => {
      const k = this.#c.keys.app(apikey);
      const existed = replyInteger(await this.#c.run(DELETE_APP, [k.hash, this.#c.keys.apps], [apikey]), 'delete app') === 1;
      if (!existed) return false;
      await unlinkByPrefix(this.#c.redis, k.sub);
      return true;
    });
  }
}

// ---- admins ------------------------------------------------------------------------------

export class RedisAdminStore implements AdminStore {
  readonly #c: Context;

  constructor(context: Context) {
    this.#c = context;
  }

  async setAdminPassword(username: string, password: string): Promise<void> {
    const { salt, hash } = await attempt('hash password', () => hashPassword(password));
    await attempt('set admin password', async () => {
      const key = this.#c.keys.admin(username);
      // Replacing a password keeps the account's creation time (HSETNX).
      const replies = await this.#c.redis
        .multi()
        .hset(key, 'salt', salt, 'hash', hash)
        .hsetnx(key, 'created', Date.now())
        .zadd(this.#c.keys.admins, 0, username)
        .exec();
      if (replies === null) throw new MalformedReplyError('set admin password: transaction aborted');
      for (const [err] of replies) if (err) throw err;
    });
  }

  async verifyAdmin(username: string, password: string): Promise<boolean> {
    const stored = await attempt('verify admin', async () => {
      const [salt, hash] = await this.#c.redis.hmget(this.#c.keys.admin(username), 'salt', 'hash');
      const s = replyOptionalString(salt ?? null, 'admin salt');
      const h = replyOptionalString(hash ?? null, 'admin hash');
      return s === undefined || h === undefined ? undefined : { salt: s, hash: h };
    });
    return attempt('verify admin', () =>
      stored === undefined ? verifyNoPassword(password) : verifyPassword(password, stored.salt, stored.hash),
    );
  }

  /** By username, in byte order of its UTF-8 (as SQLite's BINARY collation). */
  async listAdmins(): Promise<readonly Admin[]> {
    return attempt('list admins', async () => {
      const pairs = replyPairs(await this.#c.run(LIST_ADMINS, [this.#c.keys.admins], [this.#c.keys.adminHashPrefix]), 'admins');
      return pairs.map(([username, created]) => ({ username, createdAt: replyInteger(created, 'admin created') }));
    });
  }
}

// ---- messages ----------------------------------------------------------------------------

export class RedisMessageStore implements MessageStore {
  readonly #c: Context;
  readonly #clientRetentionMs: number;

  constructor(context: Context, clientRetentionMs = CLIENT_RETENTION_MS) {
    this.#c = context;
    this.#clientRetentionMs = clientRetentionMs;
  }

  /**
   * One script: the next id from the app's counter (HINCRBY: contiguous, never reused,
   * also after a sweep or a restart of the node), the stream entry `{id}-0` (stream order
   * is id order), its expiry, target and receipt entries. In Redis once resolved; on disk
   * as Redis's persistence settings say.
   */
  async append(msg: NewMessage): Promise<StoredMessage> {
    return attempt('append message', async () => {
      const ttlSeconds = requireCount('append message: ttlSeconds', msg.ttlSeconds);
      const targeted = requireCount('append message: targeted', msg.targeted);
      const data: unknown = JSON.stringify(msg.data);
      if (typeof data !== 'string') throw invalid('append message: data is not a JSON value');
      if (typeof msg.event !== 'string') throw invalid('append message: event must be a string');
      const clientIds = requireStrings('append message: target.clientIds', msg.target.clientIds);
      const tags = requireStrings('append message: target.tags', msg.target.tags);
      const createdAt = Date.now();
      const expiresAt = createdAt + ttlSeconds * 1000;
      if (!Number.isSafeInteger(expiresAt)) throw invalid(`append message: ttlSeconds ${ttlSeconds} is too large`);
      const all = msg.target.all === true;
      const k = this.#c.keys.app(msg.apikey);
      const reply = await this.#c.run(
        APPEND,
        [k.hash, k.log, k.expiry],
        [k.sub, expiresAt, createdAt, ttlSeconds, targeted, msg.event, data, all ? '1' : '0', encodeList(clientIds), encodeList(tags)],
      );
      const id = replyInteger(reply, 'append');
      if (id === 0) throw new StoreError('STORE_UNKNOWN_APP', `no app with apikey ${msg.apikey}`);
      return {
        apikey: msg.apikey,
        id: asMessageId(id),
        targeted,
        target: { all, clientIds: clientIds.map(asClientId), tags: [...tags] },
        event: msg.event,
        data: msg.data,
        ttlSeconds,
        createdAt,
        expiresAt,
      };
    });
  }

  /** Also an expired message that has not been swept yet. */
  async get(apikey: ApiKey, id: MessageId): Promise<StoredMessage | undefined> {
    return attempt('get message', async () => {
      if (!Number.isSafeInteger(id) || id < 1) return undefined;
      const entries = await this.#c.redis.xrange(this.#c.keys.app(apikey).log, `${id}-0`, `${id}-0`);
      return entries[0] === undefined ? undefined : toMessage(apikey, entries[0]);
    });
  }

  /** Newest first. Includes expired messages that have not been swept yet. */
  async history(
    apikey: ApiKey,
    opts: { readonly limit: number; readonly before?: MessageId },
  ): Promise<readonly MessageWithReceipt[]> {
    const limit = count(opts.limit);
    if (limit === 0) return [];
    const before = opts.before;
    let end = '+';
    if (before !== undefined && !(before > Number.MAX_SAFE_INTEGER)) {
      // Ids are whole numbers: "below 2.5" is "up to 2", "below 3".
      const bound = Math.ceil(before);
      if (!(bound > 1)) return [];
      end = `(${bound}-0`;
    }
    return attempt('read history', async () => {
      const k = this.#c.keys.app(apikey);
      const rows = replyArray(await this.#c.run(HISTORY, [k.log], [k.sub, end, limit]), 'history');
      return rows.map((row) => {
        const [id, fields, delivered, acked, skipped] = replyArray(row, 'history row');
        const m = toMessage(apikey, [id, fields]);
        const receipt: Receipt = {
          targeted: m.targeted,
          delivered: replyInteger(delivered, 'receipt delivered'),
          acked: replyInteger(acked, 'receipt acked'),
          skipped: replyInteger(skipped, 'receipt skipped'),
        };
        return { ...m, receipt };
      });
    });
  }

  async readAfter(apikey: ApiKey, after: MessageId, limit: number): Promise<readonly StoredMessage[]> {
    const n = count(limit);
    if (n === 0) return [];
    return attempt('read messages', async () => {
      const log = this.#c.keys.app(apikey).log;
      return this.#pages(apikey, after, n, (from, need, now) => this.#c.run(READ_AFTER, [log], [from, need, now, READ_BUDGET]));
    });
  }

  /**
   * Merges the client's target sets (all, its clientId, each of its tags) by id, inside
   * one script per page of up to READ_BUDGET ids looked at; see READ_FOR.
   */
  async readFor(apikey: ApiKey, client: ClientRef, after: MessageId, limit: number): Promise<readonly StoredMessage[]> {
    const n = count(limit);
    if (n === 0) return [];
    return attempt('read messages for client', async () => {
      const k = this.#c.keys.app(apikey);
      const sets = [k.targetAll, k.targetClient(client.clientId), ...[...new Set(client.tags)].map((t) => k.targetTag(t))];
      return this.#pages(apikey, after, n, (from, need, now) =>
        this.#c.run(READ_FOR, [k.log, ...sets], [from, need, now, READ_BUDGET]),
      );
    });
  }

  /** Runs a paging read script until it has `limit` messages or says the log is done. */
  async #pages(
    apikey: ApiKey,
    after: MessageId,
    limit: number,
    read: (from: string, need: number, now: number) => Promise<unknown>,
  ): Promise<StoredMessage[]> {
    const now = Date.now();
    const out: StoredMessage[] = [];
    let from = idArg(after);
    for (;;) {
      const page = toPage(apikey, await read(from, limit - out.length, now));
      out.push(...page.messages);
      if (page.cursor === '' || out.length >= limit) return out;
      from = page.cursor;
    }
  }

  async lastId(apikey: ApiKey): Promise<MessageId> {
    return attempt('read last id', async () => {
      const last = await this.#c.redis.hget(this.#c.keys.app(apikey).hash, 'last');
      return asMessageId(last === null ? 0 : replyInteger(last, 'app last id'));
    });
  }

  /** One script for the batch; updates for messages that no longer exist are ignored. */
  async recordReceipts(updates: readonly ReceiptUpdate[]): Promise<void> {
    await attempt('record receipts', async () => {
      const args: (string | number)[] = [];
      for (const u of updates) {
        const delivered = requireCount('record receipts: delivered', u.delivered);
        const acked = requireCount('record receipts: acked', u.acked);
        const at = requireTime('record receipts: at', u.at);
        if (!Number.isSafeInteger(u.id) || u.id < 1) continue;
        const deliveredTo = u.deliveredTo ?? [];
        const ackedBy = u.ackedBy ?? [];
        if (delivered === 0 && acked === 0 && deliveredTo.length === 0 && ackedBy.length === 0) continue;
        args.push(this.#c.keys.app(u.apikey).sub, u.id, delivered, acked, at, deliveredTo.length, ...deliveredTo, ackedBy.length, ...ackedBy);
      }
      if (args.length > 0) await this.#c.run(RECORD_RECEIPTS, [], args);
    });
  }

  /** One script for the batch; skips of messages that no longer exist are ignored. */
  async recordSkips(skips: readonly SkipUpdate[]): Promise<void> {
    await attempt('record skips', async () => {
      const args: (string | number)[] = [];
      for (const k of skips) {
        const id = requireCount('record skips: id', k.id);
        const at = requireTime('record skips: at', k.at);
        if (typeof k.reason !== 'string' || k.reason === '') throw invalid('record skips: reason must be a non-empty string');
        const [clientId] = requireStrings('record skips: clientId', [k.clientId]);
        args.push(this.#c.keys.app(k.apikey).sub, id, clientId!, at, k.reason);
      }
      if (args.length > 0) await this.#c.run(RECORD_SKIPS, [], args);
    });
  }

  /** One script for the batch (RECORD_ACKS: each range with the client's position). */
  async recordAcks(acks: readonly AckRange[]): Promise<void> {
    await attempt('record acks', async () => {
      const args: (string | number)[] = [];
      for (const a of acks) {
        const after = requireCount('record acks: after', a.after);
        const upTo = requireCount('record acks: upTo', a.upTo);
        const at = requireTime('record acks: at', a.at);
        const [clientId] = requireStrings('record acks: clientId', [a.client.clientId]);
        const tags = [...new Set(requireStrings('record acks: tags', a.client.tags))];
        if (upTo <= after) continue;
        args.push(this.#c.keys.app(a.apikey).sub, clientId!, idArg(after), idArg(upTo), at, tags.length, ...tags);
      }
      if (args.length > 0) await this.#c.run(RECORD_ACKS, [], args);
    });
  }

  async receipt(
    apikey: ApiKey,
    id: MessageId,
  ): Promise<{ readonly receipt: Receipt; readonly recipients: readonly RecipientState[] } | undefined> {
    return attempt('read receipt', async () => {
      if (!Number.isSafeInteger(id) || id < 1) return undefined;
      const reply = await this.#c.run(RECEIPT, [], [this.#c.keys.app(apikey).sub, id]);
      if (reply === null) return undefined;
      const [targeted, delivered, acked, skipped, rawRecipients, rawSkips] = replyArray(reply, 'receipt');
      const skips = new Map(replyPairs(rawSkips, 'skips'));
      const recipients = replyPairs(rawRecipients, 'recipients').map(([clientId, state]) => {
        const m = /^(\d+)\|(-?\d*)\|(-?\d*)$/.exec(state);
        if (!m) throw new MalformedReplyError(`malformed recipient state ${JSON.stringify(state)}`);
        const order = Number(m[1]);
        const deliveredAt = m[2] ? replyInteger(m[2], 'deliveredAt') : undefined;
        const ackedAt = m[3] ? replyInteger(m[3], 'ackedAt') : undefined;
        const skip = skips.get(clientId);
        const s = skip === undefined ? undefined : /^(-?\d+)\|(.+)$/s.exec(skip);
        if (skip !== undefined && !s) throw new MalformedReplyError(`malformed skip ${JSON.stringify(skip)}`);
        const r: RecipientState = {
          clientId: asClientId(clientId),
          ...(deliveredAt === undefined ? {} : { deliveredAt }),
          ...(ackedAt === undefined ? {} : { ackedAt }),
          ...(s ? { skippedAt: replyInteger(s[1], 'skippedAt'), skipReason: s[2]! } : {}),
        };
        return { order, r };
      });
      recipients.sort((a, b) => a.order - b.order);
      return {
        receipt: {
          targeted: replyInteger(targeted, 'receipt targeted'),
          delivered: replyInteger(delivered, 'receipt delivered'),
          acked: replyInteger(acked, 'receipt acked'),
          skipped: replyInteger(skipped, 'receipt skipped'),
        },
        recipients: recipients.map((x) => x.r),
      };
    });
  }

  /**
   * Deletes messages with `expiresAt <= now` (with their targets and receipts) and
   * clients last seen before `now - clientRetentionMs`, app by app, in batches of
   * SWEEP_BATCH; returns how many messages. Each batch is atomic; a sweep cut short
   * (Redis gone) leaves the rest to the next one.
   */
  async sweepExpired(now: number): Promise<number> {
    requireTime('sweep: now', now);
    const unseenSince = now - this.#clientRetentionMs;
    const apikeys = await attempt('sweep: list apps', () => this.#c.redis.zrange(this.#c.keys.apps, 0, -1));
    let total = 0;
    for (const apikey of apikeys) {
      const k = this.#c.keys.app(asApiKey(apikey));
      for (;;) {
        const reply = await attempt('sweep expired messages', () =>
          this.#c.run(SWEEP, [k.expiry, k.log, k.clients], [k.sub, now, SWEEP_BATCH, unseenSince]),
        );
        const [deleted, looked, clients] = replyArray(reply, 'sweep').map((v) => replyInteger(v, 'sweep'));
        total += deleted ?? 0;
        if ((looked ?? 0) < SWEEP_BATCH && (clients ?? 0) < SWEEP_BATCH) break;
      }
    }
    return total;
  }
}

// ---- clients -----------------------------------------------------------------------------

function unknownApp(apikey: ApiKey): StoreError {
  return new StoreError('STORE_UNKNOWN_APP', `no app with apikey ${apikey}`);
}

export class RedisClientStore implements ClientStore {
  readonly #c: Context;

  constructor(context: Context) {
    this.#c = context;
  }

  async get(apikey: ApiKey, clientId: ClientId): Promise<ClientState | undefined> {
    return attempt('get client', async () => {
      const k = this.#c.keys.app(apikey);
      const [tags, acked, delivered, first, last] = await this.#c.redis.hmget(
        k.client(clientId),
        'tags',
        'acked',
        'delivered',
        'first',
        'last',
      );
      if (first === null || first === undefined) return undefined;
      return toClient(clientId, [tags, acked, delivered, first, last]);
    });
  }

  async touch(
    apikey: ApiKey,
    clientId: ClientId,
    opts: { readonly startAfter: MessageId; readonly addTags?: readonly string[]; readonly now: number },
  ): Promise<ClientState> {
    return attempt('touch client', async () => {
      const startAfter = requireCount('touch client: startAfter', opts.startAfter);
      const now = requireTime('touch client: now', opts.now);
      const addTags = addTagsTo([], opts.addTags ?? [], 'touch client');
      const k = this.#c.keys.app(apikey);
      const reply = replyArray(
        await this.#c.run(TOUCH, [k.hash, k.client(clientId), k.clients], [clientId, startAfter, now, MAX_CLIENT_TAGS, ...addTags]),
        'touch',
      );
      const status = replyString(reply[0], 'touch status');
      if (status === 'unknown-app') throw unknownApp(apikey);
      if (status === 'too-many-tags') {
        throw invalid(`touch client: a client has at most ${MAX_CLIENT_TAGS} tags, got ${String(reply[1])}`);
      }
      if (status !== 'ok') throw new MalformedReplyError(`touch: unexpected status ${status}`);
      return toClient(clientId, reply.slice(1));
    });
  }

  /** Replaces the client's tags; creates the client (positions 0) when it is unknown. */
  async setTags(apikey: ApiKey, clientId: ClientId, tags: readonly string[]): Promise<void> {
    await attempt('set client tags', async () => {
      const checked = addTagsTo([], tags, 'set client tags');
      const k = this.#c.keys.app(apikey);
      const ok = await this.#c.run(SET_TAGS, [k.hash, k.client(clientId), k.clients], [clientId, encodeList(checked), Date.now()]);
      if (replyInteger(ok, 'set tags') === 0) throw unknownApp(apikey);
    });
  }

  /** One script for the batch; updates for unknown clients are ignored. */
  async savePositions(updates: readonly PositionUpdate[]): Promise<void> {
    await attempt('save positions', async () => {
      const args: string[] = [];
      for (const u of updates) {
        const acked = u.ackedId === undefined ? '' : String(requireCount('save positions: ackedId', u.ackedId));
        const delivered = u.deliveredId === undefined ? '' : String(requireCount('save positions: deliveredId', u.deliveredId));
        if (acked === '' && delivered === '') continue;
        args.push(this.#c.keys.app(u.apikey).client(u.clientId), acked, delivered);
      }
      if (args.length > 0) await this.#c.run(SAVE_POSITIONS, [], args);
    });
  }
}

/** [tags (list), acked, delivered, first, last] → the client. */
function toClient(clientId: ClientId, fields: readonly unknown[]): ClientState {
  const [tags, acked, delivered, first, last] = fields;
  return {
    clientId,
    tags: decodeList(replyString(tags, 'client tags'), 'client tags'),
    lastAckedId: asMessageId(replyInteger(acked, 'client acked')),
    lastDeliveredId: asMessageId(replyInteger(delivered, 'client delivered')),
    firstSeenAt: replyInteger(first, 'client first seen'),
    lastSeenAt: replyInteger(last, 'client last seen'),
  };
}

// ---- the whole storage -----------------------------------------------------------------

export interface RedisStorageOptions extends RedisConnectionOptions {
  /**
   * Clients not seen (touched) for this long are deleted by `sweepExpired`, in ms.
   * @default CLIENT_RETENTION_MS (30 days)
   */
  readonly clientRetentionMs?: number;
}

export class RedisStorage implements Storage {
  readonly apps: RedisAppStore;
  readonly admins: RedisAdminStore;
  readonly messages: RedisMessageStore;
  readonly clients: RedisClientStore;
  readonly #redis: Redis;

  constructor(redis: Redis, options: Pick<RedisStorageOptions, 'prefix' | 'clientRetentionMs'>) {
    this.#redis = redis;
    const context: Context = {
      redis,
      keys: storageKeys(options.prefix),
      run: (script, keys, args) => script.run(redis, keys, args),
    };
    this.apps = new RedisAppStore(context);
    this.admins = new RedisAdminStore(context);
    this.messages = new RedisMessageStore(context, options.clientRetentionMs ?? CLIENT_RETENTION_MS);
    this.clients = new RedisClientStore(context);
  }

  /** The connection, for tests and health checks; do not write to it. */
  get redis(): Redis {
    return this.#redis;
  }

  async close(): Promise<void> {
    await disconnectRedis(this.#redis);
  }
}

/**
 * Connects to Redis (waiting up to `connectTimeoutMs` for it) and returns the storage.
 * Nothing needs creating: keys appear as they are written. While Redis is away every
 * method rejects at once with STORE_UNAVAILABLE; when it is back they work again.
 */
export async function openRedisStorage(options: RedisStorageOptions): Promise<RedisStorage> {
  const redis = await attempt('open', () => connectRedis(options, 'storage'));
  return new RedisStorage(redis, options);
}

