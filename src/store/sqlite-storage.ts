// The embedded storage: apps, admins, the message log with its targets and receipts,
// and clients, in one SQLite file (better-sqlite3). Every call is a short synchronous
// statement or transaction; the methods are async only because the interface also fits
// a networked store (Redis).
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { asApiKey, asClientId, asMessageId, type ApiKey, type ClientId, type MessageId } from '../ids.js';
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
  Target,
} from './store.js';
import { isNtfyAnonymousAccess } from './store.js';
import { generateApiKey, generateSecret, graceUntil, hashPassword, verifyNoPassword, verifyPassword } from './secrets.js';
import { MAX_CLIENT_TAGS, MAX_TAG_LENGTH, StoreError, StoreErrorCode, addTagsTo, invalid, requireCount, requireTime } from './validate.js';

export { MAX_CLIENT_TAGS, MAX_TAG_LENGTH, StoreError, StoreErrorCode };

function wrap(what: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new StoreError('STORE_FAILED', `${what}: ${reason}`, { cause: err });
}

/** Runs one synchronous database step; anything it throws becomes a StoreError. */
function attempt<T>(what: string, step: () => T): T {
  try {
    return step();
  } catch (err) {
    throw wrap(what, err);
  }
}

/** The same for an asynchronous step (password hashing). */
async function attemptAsync<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw wrap(what, err);
  }
}

/** @default 86400 seconds (one day): the TTL of an app created without one. */
export const DEFAULT_MESSAGE_TTL_SECONDS = 86400;

/**
 * How long a client unseen (no `touch`) is kept, with its tags and positions, before
 * `sweepExpired` deletes it; when it comes back it is a new client.
 * @default 30 days, in milliseconds
 */
export const CLIENT_RETENTION_MS = 30 * 24 * 3600 * 1000;

// Schema migrations, applied in order; `PRAGMA user_version` is how many have run.
// Append only: never edit a migration that has shipped, add the next one.
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE apps (
    apikey               TEXT    NOT NULL PRIMARY KEY,
    secret               TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    message_ttl_seconds  INTEGER NOT NULL DEFAULT ${DEFAULT_MESSAGE_TTL_SECONDS} CHECK (message_ttl_seconds >= 0),
    require_client_token INTEGER NOT NULL DEFAULT 0 CHECK (require_client_token IN (0, 1)),
    -- The id of the app's latest message ever appended. Messages are deleted (sweep),
    -- this counter never goes back, so an id is never handed out twice.
    last_message_id      INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE admins (
    username   TEXT    NOT NULL PRIMARY KEY,
    salt       TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE messages (
    apikey      TEXT    NOT NULL REFERENCES apps (apikey) ON DELETE CASCADE,
    id          INTEGER NOT NULL,
    target      TEXT    NOT NULL,  -- JSON {all, clientIds, tags}
    event       TEXT    NOT NULL,
    data        TEXT    NOT NULL,  -- JSON
    ttl_seconds INTEGER NOT NULL CHECK (ttl_seconds >= 0),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (apikey, id)
  ) STRICT;

  CREATE INDEX messages_by_expiry ON messages (expires_at);
  `,
  // 2: delivery. A message's target becomes rows (readFor is an index search, not a scan
  // of the app's messages parsing JSON), messages carry receipt counters, messages to
  // named clients a row per recipient, and clients are kept between connections.
  `
  -- NULL only until the backfill below; append always writes 0 or 1.
  ALTER TABLE messages ADD COLUMN target_all INTEGER CHECK (target_all IN (0, 1));
  ALTER TABLE messages ADD COLUMN targeted   INTEGER NOT NULL DEFAULT 0 CHECK (targeted >= 0);
  ALTER TABLE messages ADD COLUMN delivered  INTEGER NOT NULL DEFAULT 0 CHECK (delivered >= 0);
  ALTER TABLE messages ADD COLUMN acked      INTEGER NOT NULL DEFAULT 0 CHECK (acked >= 0);

  -- readFor's "all" arm. Partial: an app whose pushes are mostly to named clients or
  -- tags has few entries here; expires_at makes the arm covering (no table lookups).
  CREATE INDEX messages_for_all ON messages (apikey, id, expires_at) WHERE target_all = 1;

  -- One row per distinct named clientId ('c') and per distinct tag ('t') of a message.
  -- The primary key is readFor's index: (apikey, kind, value) gives the messages that
  -- name a client or tag, already in id order.
  CREATE TABLE message_targets (
    apikey     TEXT    NOT NULL,
    message_id INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('c', 't')),
    value      TEXT    NOT NULL,
    PRIMARY KEY (apikey, kind, value, message_id),
    FOREIGN KEY (apikey, message_id) REFERENCES messages (apikey, id) ON DELETE CASCADE
  ) STRICT, WITHOUT ROWID;
  -- The cascade looks a deleted message's rows up by this; without it every deleted
  -- message would scan the table (a sweep of 100k messages would never end).
  CREATE INDEX message_targets_by_message ON message_targets (apikey, message_id);

  -- Per-client state of a message to named clients, one row per distinct clientId
  -- (rowid order = order of first appearance in the target). The primary key also
  -- serves the cascade.
  CREATE TABLE message_recipients (
    apikey       TEXT    NOT NULL,
    message_id   INTEGER NOT NULL,
    client_id    TEXT    NOT NULL,
    delivered_at INTEGER,
    acked_at     INTEGER,
    PRIMARY KEY (apikey, message_id, client_id),
    FOREIGN KEY (apikey, message_id) REFERENCES messages (apikey, id) ON DELETE CASCADE
  ) STRICT;

  CREATE TABLE clients (
    apikey            TEXT    NOT NULL REFERENCES apps (apikey) ON DELETE CASCADE,
    client_id         TEXT    NOT NULL,
    tags              TEXT    NOT NULL DEFAULT '[]',  -- JSON array of strings, in order of first appearance
    last_acked_id     INTEGER NOT NULL DEFAULT 0,
    last_delivered_id INTEGER NOT NULL DEFAULT 0,
    first_seen_at     INTEGER NOT NULL,
    last_seen_at      INTEGER NOT NULL,
    PRIMARY KEY (apikey, client_id)
  ) STRICT;
  CREATE INDEX clients_by_last_seen ON clients (last_seen_at);

  -- Backfill from the JSON target that version 1 wrote. A row whose target is not valid
  -- JSON (it could not be read anyway) targets nobody. Messages written before this
  -- version have no receipts: targeted 0, no recipient rows.
  UPDATE messages SET target_all =
    CASE WHEN json_valid(target) THEN json_extract(target, '$.all') IS 1 ELSE 0 END;

  WITH old (apikey, id, target) AS (
    SELECT apikey, id, CASE WHEN json_valid(target) THEN target ELSE '{}' END FROM messages
  )
  INSERT OR IGNORE INTO message_targets (apikey, message_id, kind, value)
    SELECT old.apikey, old.id, 'c', j.value FROM old, json_each(old.target, '$.clientIds') AS j
    WHERE json_type(old.target, '$.clientIds') = 'array' AND j.type = 'text'
    UNION ALL
    SELECT old.apikey, old.id, 't', j.value FROM old, json_each(old.target, '$.tags') AS j
    WHERE json_type(old.target, '$.tags') = 'array' AND j.type = 'text';
  `,
  `
  -- Secret rotation with a grace period (docs/security.md): the replaced secret and
  -- until when (ms since the epoch) it is still accepted.
  ALTER TABLE apps ADD COLUMN previous_secret TEXT;
  ALTER TABLE apps ADD COLUMN previous_secret_until INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- Skipped deliveries (docs/delivery.md, "Skipped"): a message one connection of a
  -- client could not carry. Rare, so a row each, for every kind of target: it counts the
  -- skip once per client, shows a named recipient's state, and keeps the message out of
  -- the client's acks.
  ALTER TABLE messages ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0 CHECK (skipped >= 0);
  CREATE TABLE message_skips (
    apikey     TEXT    NOT NULL,
    message_id INTEGER NOT NULL,
    client_id  TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    skipped_at INTEGER NOT NULL,
    PRIMARY KEY (apikey, message_id, client_id),
    FOREIGN KEY (apikey, message_id) REFERENCES messages (apikey, id) ON DELETE CASCADE
  ) STRICT, WITHOUT ROWID;
  -- A client's skips in an id range: what its acks leave out.
  CREATE INDEX message_skips_by_client ON message_skips (apikey, client_id, message_id);
  `,
  `
  -- The ntfy port's access settings, per app (docs/ntfy.md, "Access").
  ALTER TABLE apps ADD COLUMN ntfy_anonymous_access TEXT NOT NULL DEFAULT 'read-write'
    CHECK (ntfy_anonymous_access IN ('read-write', 'read-only', 'write-only', 'deny'));
  ALTER TABLE apps ADD COLUMN ntfy_tokens_can_publish INTEGER NOT NULL DEFAULT 0 CHECK (ntfy_tokens_can_publish IN (0, 1));
  `,
];

/** The schema version this build writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

// Sweeping deletes in batches and yields between them, so that a large backlog of
// expired messages does not hold the write lock (the CLI waits on it) or the event loop
// for long. Each message also deletes its target and recipient rows (cascade): about
// 17 µs per message with two targets and a recipient, so a batch holds the lock ~35 ms.
const SWEEP_BATCH = 2000;

// ---- rows: everything SQLite returns is checked before it is typed -------------------

type Row = { readonly [column: string]: unknown };

function asRow(table: string, value: unknown): Row {
  if (typeof value !== 'object' || value === null) {
    throw new StoreError('STORE_FAILED', `malformed ${table} row`);
  }
  return value as Row;
}

function text(table: string, row: Row, column: string): string {
  const v = row[column];
  if (typeof v !== 'string') throw new StoreError('STORE_FAILED', `malformed ${table} row: ${column} is not text`);
  return v;
}

function integer(table: string, row: Row, column: string): number {
  const v = row[column];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new StoreError('STORE_FAILED', `malformed ${table} row: ${column} is not an integer`);
  }
  return v;
}

function optionalInteger(table: string, row: Row, column: string): number | undefined {
  return row[column] === null ? undefined : integer(table, row, column);
}

function isStringArray(v: unknown): v is readonly string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

function parseTarget(json: string): Target {
  const v: unknown = JSON.parse(json);
  if (typeof v !== 'object' || v === null) throw new StoreError('STORE_FAILED', 'malformed messages row: target');
  const { all, clientIds, tags } = v as { readonly [key: string]: unknown };
  if (typeof all !== 'boolean' || !isStringArray(clientIds) || !isStringArray(tags)) {
    throw new StoreError('STORE_FAILED', 'malformed messages row: target');
  }
  return { all, clientIds: clientIds.map(asClientId), tags: [...tags] };
}

function parseTags(json: string): readonly string[] {
  const v: unknown = JSON.parse(json);
  if (!isStringArray(v)) throw new StoreError('STORE_FAILED', 'malformed clients row: tags');
  return [...v];
}

const APP_COLUMNS =
  'apikey, secret, name, message_ttl_seconds, require_client_token, ntfy_anonymous_access, ntfy_tokens_can_publish, created_at';

function toApp(value: unknown): App {
  const row = asRow('apps', value);
  const flag = integer('apps', row, 'require_client_token');
  if (flag !== 0 && flag !== 1) throw new StoreError('STORE_FAILED', 'malformed apps row: require_client_token');
  const anonymous = text('apps', row, 'ntfy_anonymous_access');
  if (!isNtfyAnonymousAccess(anonymous)) throw new StoreError('STORE_FAILED', 'malformed apps row: ntfy_anonymous_access');
  const publish = integer('apps', row, 'ntfy_tokens_can_publish');
  if (publish !== 0 && publish !== 1) throw new StoreError('STORE_FAILED', 'malformed apps row: ntfy_tokens_can_publish');
  return {
    apikey: asApiKey(text('apps', row, 'apikey')),
    secret: text('apps', row, 'secret'),
    name: text('apps', row, 'name'),
    messageTtlSeconds: integer('apps', row, 'message_ttl_seconds'),
    requireClientToken: flag === 1,
    ntfyAnonymousAccess: anonymous,
    ntfyTokensCanPublish: publish === 1,
    createdAt: integer('apps', row, 'created_at'),
  };
}

function toAdmin(value: unknown): Admin {
  const row = asRow('admins', value);
  return { username: text('admins', row, 'username'), createdAt: integer('admins', row, 'created_at') };
}

interface Credentials {
  readonly salt: string;
  readonly hash: string;
}

function toCredentials(value: unknown): Credentials {
  const row = asRow('admins', value);
  return { salt: text('admins', row, 'salt'), hash: text('admins', row, 'hash') };
}

const MESSAGE_FIELDS = ['apikey', 'id', 'target', 'targeted', 'event', 'data', 'ttl_seconds', 'created_at', 'expires_at'];
const MESSAGE_COLUMNS = MESSAGE_FIELDS.join(', ');
const RECEIPT_COLUMNS = 'delivered, acked, skipped';

function toMessage(value: unknown): StoredMessage {
  const row = asRow('messages', value);
  return {
    apikey: asApiKey(text('messages', row, 'apikey')),
    id: asMessageId(integer('messages', row, 'id')),
    targeted: integer('messages', row, 'targeted'),
    target: parseTarget(text('messages', row, 'target')),
    event: text('messages', row, 'event'),
    data: JSON.parse(text('messages', row, 'data')) as unknown,
    ttlSeconds: integer('messages', row, 'ttl_seconds'),
    createdAt: integer('messages', row, 'created_at'),
    expiresAt: integer('messages', row, 'expires_at'),
  };
}

function toReceipt(value: unknown): Receipt {
  const row = asRow('messages', value);
  return {
    targeted: integer('messages', row, 'targeted'),
    delivered: integer('messages', row, 'delivered'),
    acked: integer('messages', row, 'acked'),
    skipped: integer('messages', row, 'skipped'),
  };
}

function toMessageWithReceipt(value: unknown): MessageWithReceipt {
  return { ...toMessage(value), receipt: toReceipt(value) };
}

function toRecipient(value: unknown): RecipientState {
  const row = asRow('message_recipients', value);
  const deliveredAt = optionalInteger('message_recipients', row, 'delivered_at');
  const ackedAt = optionalInteger('message_recipients', row, 'acked_at');
  const skippedAt = optionalInteger('message_recipients', row, 'skipped_at');
  return {
    clientId: asClientId(text('message_recipients', row, 'client_id')),
    ...(deliveredAt === undefined ? {} : { deliveredAt }),
    ...(ackedAt === undefined ? {} : { ackedAt }),
    ...(skippedAt === undefined ? {} : { skippedAt, skipReason: text('message_recipients', row, 'reason') }),
  };
}

const CLIENT_COLUMNS = 'client_id, tags, last_acked_id, last_delivered_id, first_seen_at, last_seen_at';

function toClient(value: unknown): ClientState {
  const row = asRow('clients', value);
  return {
    clientId: asClientId(text('clients', row, 'client_id')),
    tags: parseTags(text('clients', row, 'tags')),
    lastAckedId: asMessageId(integer('clients', row, 'last_acked_id')),
    lastDeliveredId: asMessageId(integer('clients', row, 'last_delivered_id')),
    firstSeenAt: integer('clients', row, 'first_seen_at'),
    lastSeenAt: integer('clients', row, 'last_seen_at'),
  };
}

/** A count for LIMIT: SQLite reads a negative LIMIT as "no limit", so clamp at 0. */
function count(limit: number): number {
  return Number.isFinite(limit) && limit > 0 ? Math.floor(limit) : 0;
}

// ---- input: what callers pass is checked once, before any statement runs -------------

function distinct<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

// ---- apps ------------------------------------------------------------------------------

/** Apps kept read at most (a node serves a few; the map starts over past this). */
const APP_CACHE_MAX = 1000;

export class SqliteAppStore implements AppStore {
  readonly #insert;
  readonly #get;
  readonly #list;
  readonly #update;
  readonly #rotate;
  readonly #previous;
  readonly #delete;
  readonly #dataVersion;
  /**
   * Apps read, by apikey: every enter and every push looks its app up, and the row read
   * was the largest part of an enter's SQLite time in a connect storm. Valid while the
   * file's `data_version` is unchanged — it moves when another handle (the CLI, another
   * process) commits — and this handle's own app writes drop their entry.
   */
  readonly #cache = new Map<string, App>();
  #cacheVersion = -1;

  constructor(db: Database.Database) {
    this.#dataVersion = db.prepare<[]>('PRAGMA data_version').pluck();
    this.#insert = db.prepare<{
      apikey: string;
      secret: string;
      name: string;
      ttl: number;
      createdAt: number;
    }>(
      `INSERT INTO apps (apikey, secret, name, message_ttl_seconds, require_client_token, created_at)
       VALUES (@apikey, @secret, @name, @ttl, 0, @createdAt)
       RETURNING ${APP_COLUMNS}`,
    );
    this.#get = db.prepare<[string]>(`SELECT ${APP_COLUMNS} FROM apps WHERE apikey = ?`);
    this.#list = db.prepare<[]>(`SELECT ${APP_COLUMNS} FROM apps ORDER BY created_at, rowid`);
    // A NULL parameter keeps the column as it is.
    this.#update = db.prepare<{
      apikey: string;
      name: string | null;
      ttl: number | null;
      requireClientToken: number | null;
      ntfyAnonymousAccess: string | null;
      ntfyTokensCanPublish: number | null;
    }>(
      `UPDATE apps SET
         name = coalesce(@name, name),
         message_ttl_seconds = coalesce(@ttl, message_ttl_seconds),
         require_client_token = coalesce(@requireClientToken, require_client_token),
         ntfy_anonymous_access = coalesce(@ntfyAnonymousAccess, ntfy_anonymous_access),
         ntfy_tokens_can_publish = coalesce(@ntfyTokensCanPublish, ntfy_tokens_can_publish)
       WHERE apikey = @apikey
       RETURNING ${APP_COLUMNS}`,
    );
    // SET expressions read the row as it was before the UPDATE: the old secret moves over.
    this.#rotate = db.prepare<{ apikey: string; secret: string; until: number }>(
      `UPDATE apps SET previous_secret = secret, previous_secret_until = @until, secret = @secret
       WHERE apikey = @apikey RETURNING ${APP_COLUMNS}`,
    );
    this.#previous = db.prepare<[string, number]>(
      'SELECT previous_secret FROM apps WHERE apikey = ? AND previous_secret IS NOT NULL AND previous_secret_until > ?',
    );
    // Its messages (with their targets and recipients) and clients go with it (ON DELETE
    // CASCADE; foreign keys are on in every handle).
    this.#delete = db.prepare<[string]>('DELETE FROM apps WHERE apikey = ?');
  }

  async createApp(app: NewApp): Promise<App> {
    return attempt('create app', () =>
      toApp(
        this.#insert.get({
          apikey: generateApiKey(),
          secret: generateSecret(),
          name: app.name,
          ttl: app.messageTtlSeconds ?? DEFAULT_MESSAGE_TTL_SECONDS,
          createdAt: Date.now(),
        }),
      ),
    );
  }

  async getApp(apikey: ApiKey): Promise<App | undefined> {
    return attempt('get app', () => {
      const version = this.#dataVersion.get();
      if (version !== this.#cacheVersion) {
        this.#cache.clear();
        this.#cacheVersion = typeof version === 'number' ? version : -1;
      }
      const cached = this.#cache.get(apikey);
      if (cached !== undefined) return cached;
      const row = this.#get.get(apikey);
      if (row === undefined) return undefined; // unknown keys are not kept: a flood of them would fill the map
      const app = Object.freeze(toApp(row));
      if (this.#cache.size >= APP_CACHE_MAX) this.#cache.clear();
      this.#cache.set(apikey, app);
      return app;
    });
  }

  async listApps(): Promise<readonly App[]> {
    return attempt('list apps', () => this.#list.all().map(toApp));
  }

  async updateApp(apikey: ApiKey, settings: AppSettings): Promise<App | undefined> {
    return attempt('update app', () => {
      this.#cache.delete(apikey);
      const row = this.#update.get({
        apikey,
        name: settings.name ?? null,
        ttl: settings.messageTtlSeconds ?? null,
        requireClientToken: settings.requireClientToken === undefined ? null : Number(settings.requireClientToken),
        ntfyAnonymousAccess: settings.ntfyAnonymousAccess ?? null,
        ntfyTokensCanPublish: settings.ntfyTokensCanPublish === undefined ? null : Number(settings.ntfyTokensCanPublish),
      });
      return row === undefined ? undefined : toApp(row);
    });
  }

  async rotateSecret(apikey: ApiKey, opts: RotateOptions = {}): Promise<App | undefined> {
    return attempt('rotate secret', () => {
      this.#cache.delete(apikey);
      const until = graceUntil(opts);
      const row = this.#rotate.get({ apikey, secret: generateSecret(), until });
      return row === undefined ? undefined : toApp(row);
    });
  }

  async previousSecret(apikey: ApiKey, now: number): Promise<string | undefined> {
    return attempt('previous secret', () => {
      const row = this.#previous.get(apikey, now);
      return row === undefined ? undefined : text('apps', asRow('apps', row), 'previous_secret');
    });
  }

  async deleteApp(apikey: ApiKey): Promise<boolean> {
    return attempt('delete app', () => {
      this.#cache.delete(apikey);
      return this.#delete.run(apikey).changes > 0;
    });
  }
}

// ---- admins ----------------------------------------------------------------------------

export class SqliteAdminStore implements AdminStore {
  readonly #upsert;
  readonly #credentials;
  readonly #list;

  constructor(db: Database.Database) {
    // Replacing a password keeps the account's created_at.
    this.#upsert = db.prepare<{ username: string; salt: string; hash: string; createdAt: number }>(
      `INSERT INTO admins (username, salt, hash, created_at) VALUES (@username, @salt, @hash, @createdAt)
       ON CONFLICT (username) DO UPDATE SET salt = excluded.salt, hash = excluded.hash`,
    );
    this.#credentials = db.prepare<[string]>('SELECT salt, hash FROM admins WHERE username = ?');
    this.#list = db.prepare<[]>('SELECT username, created_at FROM admins ORDER BY username');
  }

  async setAdminPassword(username: string, password: string): Promise<void> {
    const { salt, hash } = await attemptAsync('hash password', () => hashPassword(password));
    attempt('set admin password', () => this.#upsert.run({ username, salt, hash, createdAt: Date.now() }));
  }

  async verifyAdmin(username: string, password: string): Promise<boolean> {
    const stored = attempt('verify admin', () => {
      const row = this.#credentials.get(username);
      return row === undefined ? undefined : toCredentials(row);
    });
    return attemptAsync('verify admin', () =>
      stored === undefined ? verifyNoPassword(password) : verifyPassword(password, stored.salt, stored.hash),
    );
  }

  async listAdmins(): Promise<readonly Admin[]> {
    return attempt('list admins', () => this.#list.all().map(toAdmin));
  }
}

// ---- messages --------------------------------------------------------------------------

// readFor is a UNION with one arm per way a message can target the client: `all`, its
// clientId, each of its first MERGED_TAGS tags, and one arm for the rest of its tags.
// Every arm but the last reads one index range already in id order and checks expiry on
// the way, so SQLite merges the arms (MERGE (UNION), which also drops a message matched
// twice) and stops after `limit` rows: a page costs the rows it returns plus the expired
// ones it skips, however many messages the app has and however far behind the client
// is. The plan, with one tag (EXPLAIN QUERY PLAN; checked by test/store/sqlite-storage.test.ts):
//
//   CO-ROUTINE hit
//     MERGE (UNION)
//       LEFT  MERGE (UNION)
//         LEFT  SEARCH messages USING COVERING INDEX messages_for_all (apikey=? AND id>?)
//         RIGHT SEARCH t USING PRIMARY KEY (apikey=? AND kind=? AND value=? AND message_id>?)
//               SEARCH m USING INDEX sqlite_autoindex_messages_1 (apikey=? AND id=?)
//       RIGHT SEARCH t USING PRIMARY KEY (apikey=? AND kind=? AND value=? AND message_id>?)
//             SEARCH m USING INDEX sqlite_autoindex_messages_1 (apikey=? AND id=?)
//   SCAN hit
//   SEARCH m USING INDEX sqlite_autoindex_messages_1 (apikey=? AND id=?)
//   USE TEMP B-TREE FOR ORDER BY          (of at most `limit` rows)
//
// With more than MERGED_TAGS tags the last arm is
//   SCAN r VIRTUAL TABLE INDEX 1:         (json_each of the remaining tags)
//   SEARCH t USING PRIMARY KEY (apikey=? AND kind=? AND value=? AND message_id>?)
//   SEARCH m USING INDEX sqlite_autoindex_messages_1 (apikey=? AND id=?)
//   USE TEMP B-TREE FOR ORDER BY
//
// Measured on 100k messages (prototype, this machine): 0.4 ms for a page of 100 for a
// client with two tags each on 1000 messages, against 6 ms for one arm with
// `value IN (json_each(tags))`, which must read and sort every match before its LIMIT.
// Past MERGED_TAGS, that is what the remaining tags get: an arm per tag makes the
// statement grow with the tags (a 256-arm merge took 57 ms), and clients with many tags
// are rare. Statements are prepared per arm count, on first use.
const MERGED_TAGS = 8;

/**
 * Ack ranges (AckRange) of one app, a batch at once: `@ranges` is JSON
 * [[clientId, after, upTo, [tags…]], …], each client at most once. Each range starts
 * after the larger of its `after` and the client's stored position: its span. Spans go
 * to the next statements the same way, as `@spans`.
 */
const ACK_SPANS_SQL = `WITH r (client, after, up_to, tags) AS (
    SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value -> 3 FROM json_each(@ranges) AS j)
  SELECT r.client AS client, max(r.after, coalesce(c.last_acked_id, 0)) AS after, r.up_to AS up_to, r.tags AS tags
  FROM r LEFT JOIN clients AS c ON c.apikey = @apikey AND c.client_id = r.client
  WHERE r.up_to > max(r.after, coalesce(c.last_acked_id, 0))`;

const ACK_RANGES_CTE = `p (client, after, up_to, tags) AS (
    SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value -> 3 FROM json_each(@spans) AS j)`;

/**
 * Broadcasts in a span of ids: each is counted once per range that holds it (a sweep
 * over the ranges' ends, in JS), not once per (client, message) pair — a broadcast acked
 * by 10,000 clients costs one row here, not 10,000.
 */
const ACK_BROADCASTS_SQL = `SELECT id FROM messages
  WHERE apikey = ? AND target_all = 1 AND id > ? AND id <= ? AND expires_at > ? ORDER BY id`;

/** Broadcasts of the ranges that their client skipped: taken off the sweep's counts (few). */
const ACK_SKIPPED_BROADCASTS_SQL = `WITH ${ACK_RANGES_CTE}
  SELECT s.message_id AS id FROM p
  CROSS JOIN message_skips AS s ON s.apikey = @apikey AND s.client_id = p.client AND s.message_id > p.after AND s.message_id <= p.up_to
  CROSS JOIN messages AS m ON m.apikey = @apikey AND m.id = s.message_id AND m.target_all = 1 AND m.expires_at > @now`;

/**
 * The other messages of the ranges, by client: those naming it (`named` 1: it has a
 * recipient row) or one of its tags, each (client, message) once, skips left out.
 */
const ACK_TARGETED_SQL = `WITH ${ACK_RANGES_CTE},
  hit (client, id, named) AS (
    SELECT p.client, t.message_id, 1 FROM p
    JOIN message_targets AS t ON t.apikey = @apikey AND t.kind = 'c' AND t.value = p.client
      AND t.message_id > p.after AND t.message_id <= p.up_to
    UNION ALL
    SELECT p.client, t.message_id, 0 FROM p CROSS JOIN json_each(p.tags) AS g
    CROSS JOIN message_targets AS t ON t.apikey = @apikey AND t.kind = 't' AND t.value = g.value
      AND t.message_id > p.after AND t.message_id <= p.up_to)
  SELECT hit.client AS client, hit.id AS id, max(hit.named) AS named FROM hit
  CROSS JOIN messages AS m ON m.apikey = @apikey AND m.id = hit.id AND m.target_all = 0 AND m.expires_at > @now
  WHERE NOT EXISTS (SELECT 1 FROM message_skips AS s WHERE s.apikey = @apikey AND s.message_id = hit.id AND s.client_id = hit.client)
  GROUP BY hit.client, hit.id`;

/** The union of `spans` (after, upTo] as disjoint spans, in order. */
function union(spans: readonly (readonly [number, number])[]): [number, number][] {
  const out: [number, number][] = [];
  for (const [after, upTo] of [...spans].sort((a, b) => a[0] - b[0])) {
    const last = out.at(-1);
    if (last !== undefined && after <= last[1]) last[1] = Math.max(last[1], upTo);
    else out.push([after, upTo]);
  }
  return out;
}

/** How many of `spans` (after, upTo] hold each id of `ids` (ascending), by a sweep over their ends. */
function coverage(ids: readonly number[], spans: readonly (readonly [number, number])[]): number[] {
  const starts = spans.map((x) => x[0]).sort((a, b) => a - b);
  const ends = spans.map((x) => x[1]).sort((a, b) => a - b);
  const out: number[] = [];
  let s = 0;
  let e = 0;
  for (const id of ids) {
    while (s < starts.length && starts[s]! < id) s++;
    while (e < ends.length && ends[e]! < id) e++;
    out.push(s - e);
  }
  return out;
}

function readForSql(tagArms: number, rest: boolean): string {
  const viaTargets = (kind: 'c' | 't', value: string, from = 'message_targets AS t'): string =>
    `SELECT t.message_id AS id FROM ${from}
       JOIN messages AS m ON m.apikey = t.apikey AND m.id = t.message_id
       WHERE t.apikey = @apikey AND t.kind = '${kind}' AND t.value = ${value} AND t.message_id > @after AND m.expires_at > @now`;
  const arms = [
    'SELECT id FROM messages WHERE apikey = @apikey AND target_all = 1 AND id > @after AND expires_at > @now',
    viaTargets('c', '@clientId'),
  ];
  for (let i = 0; i < tagArms; i++) arms.push(viaTargets('t', `@tag${i}`));
  // CROSS JOIN makes the tags the outer loop, each a primary-key search. Left to itself
  // the planner reads message_targets_by_message instead, which is in id order (no sort)
  // but reads every target row of the app after `after`.
  if (rest) arms.push(viaTargets('t', 'r.value', 'json_each(@rest) AS r CROSS JOIN message_targets AS t'));
  // CROSS JOIN keeps `hit` (at most `limit` ids) the outer loop; a plain join let the
  // planner scan all the app's messages and probe `hit` for each.
  return `SELECT ${MESSAGE_FIELDS.map((f) => `m.${f}`).join(', ')}
    FROM (${arms.join('\n    UNION\n    ')}
          ORDER BY 1 LIMIT @limit) AS hit
    CROSS JOIN messages AS m
    WHERE m.apikey = @apikey AND m.id = hit.id
    ORDER BY m.id`;
}

type ReadForParams = Record<string, string | number>;

function readForQuery(
  apikey: ApiKey,
  client: ClientRef,
  after: MessageId,
  limit: number,
  now: number,
): { readonly key: string; readonly sql: () => string; readonly params: ReadForParams } {
  const tags = distinct(client.tags);
  const merged = tags.slice(0, MERGED_TAGS);
  const rest = tags.slice(MERGED_TAGS);
  const params: ReadForParams = { apikey, clientId: client.clientId, after, now, limit };
  merged.forEach((tag, i) => (params[`tag${i}`] = tag));
  if (rest.length > 0) params['rest'] = JSON.stringify(rest);
  return {
    key: `${merged.length}${rest.length > 0 ? '+' : ''}`,
    sql: () => readForSql(merged.length, rest.length > 0),
    params,
  };
}

/**
 * The plan SQLite picks for `readFor` with these arguments, one EXPLAIN QUERY PLAN line
 * each, indented by depth. For tests and for looking at a slow database by hand.
 */
export function explainReadFor(
  db: Database.Database,
  apikey: ApiKey,
  client: ClientRef,
  after: MessageId,
  limit: number,
): readonly string[] {
  const q = readForQuery(apikey, client, after, limit, Date.now());
  const rows = db.prepare(`EXPLAIN QUERY PLAN ${q.sql()}`).all(q.params);
  const depth = new Map<number, number>([[0, -1]]);
  return rows.map((value) => {
    const row = asRow('plan', value);
    const d = (depth.get(integer('plan', row, 'parent')) ?? 0) + 1;
    depth.set(integer('plan', row, 'id'), d);
    return `${'  '.repeat(d)}${text('plan', row, 'detail')}`;
  });
}

/** [clientId, after, upTo, tags, at] */
type AckRow = [string, number, number, readonly string[], number];

/**
 * Ack ranges grouped by app, in rounds where each client appears once: a client with two
 * ranges in one batch (a connection that left, and the next) has them counted one after
 * the other, the second after the position the first moved.
 */
function ackRounds(acks: readonly AckRange[]): Map<string, AckRow[]>[] {
  const rounds: Map<string, AckRow[]>[] = [];
  const seen = new Map<string, number>();
  for (const a of acks) {
    const key = `${a.apikey}\u0000${a.client.clientId}`;
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    const round = (rounds[n] ??= new Map());
    let rows = round.get(a.apikey);
    if (!rows) round.set(a.apikey, (rows = []));
    rows.push([a.client.clientId, a.after, a.upTo, distinct(a.client.tags), a.at]);
  }
  return rounds;
}

export class SqliteMessageStore implements MessageStore {
  readonly #db: Database.Database;
  readonly #append;
  readonly #get;
  readonly #history;
  readonly #readAfter;
  readonly #readFor = new Map<string, Database.Statement<ReadForParams>>();
  readonly #lastId;
  readonly #recordReceipts;
  readonly #recordSkips;
  readonly #recordAcks;
  readonly #receipt;
  readonly #sweep;
  readonly #sweepClients;
  readonly #clientRetentionMs: number;

  constructor(db: Database.Database, clientRetentionMs = CLIENT_RETENTION_MS) {
    this.#db = db;
    this.#clientRetentionMs = clientRetentionMs;
    // The counter lives in the app's row and is bumped in the same transaction as the
    // insert: ids stay dense under concurrent writers (other handles wait on the write
    // lock), and deleting the newest message cannot make its id come back.
    const nextId = db.prepare<[string]>(
      'UPDATE apps SET last_message_id = last_message_id + 1 WHERE apikey = ? RETURNING last_message_id',
    );
    const insert = db.prepare<{
      apikey: string;
      id: number;
      target: string;
      all: number;
      targeted: number;
      event: string;
      data: string;
      ttl: number;
      createdAt: number;
      expiresAt: number;
    }>(
      `INSERT INTO messages (apikey, id, target, target_all, targeted, event, data, ttl_seconds, created_at, expires_at)
       VALUES (@apikey, @id, @target, @all, @targeted, @event, @data, @ttl, @createdAt, @expiresAt)`,
    );
    const insertTarget = db.prepare<[string, number, 'c' | 't', string]>(
      'INSERT INTO message_targets (apikey, message_id, kind, value) VALUES (?, ?, ?, ?)',
    );
    const insertRecipient = db.prepare<[string, number, string]>(
      'INSERT INTO message_recipients (apikey, message_id, client_id) VALUES (?, ?, ?)',
    );
    this.#append = db.transaction((msg: NewMessage, target: string, data: string): StoredMessage => {
      const bumped = nextId.get(msg.apikey);
      if (bumped === undefined) throw new StoreError('STORE_UNKNOWN_APP', `no app with apikey ${msg.apikey}`);
      const id = asMessageId(integer('apps', asRow('apps', bumped), 'last_message_id'));
      const createdAt = Date.now();
      const expiresAt = createdAt + msg.ttlSeconds * 1000;
      // Rejected here, not on every later read: a row that cannot be read back is a
      // poison message. Throwing rolls the id back too.
      if (!Number.isSafeInteger(expiresAt)) throw invalid(`append message: ttlSeconds ${msg.ttlSeconds} is too large`);
      insert.run({
        apikey: msg.apikey,
        id,
        target,
        all: msg.target.all ? 1 : 0,
        targeted: msg.targeted,
        event: msg.event,
        data,
        ttl: msg.ttlSeconds,
        createdAt,
        expiresAt,
      });
      const clientIds = distinct(msg.target.clientIds);
      for (const clientId of clientIds) insertTarget.run(msg.apikey, id, 'c', clientId);
      for (const tag of distinct(msg.target.tags)) insertTarget.run(msg.apikey, id, 't', tag);
      for (const clientId of clientIds) insertRecipient.run(msg.apikey, id, clientId);
      return {
        apikey: msg.apikey,
        id,
        targeted: msg.targeted,
        target: { all: msg.target.all, clientIds: [...msg.target.clientIds], tags: [...msg.target.tags] },
        event: msg.event,
        data: msg.data,
        ttlSeconds: msg.ttlSeconds,
        createdAt,
        expiresAt,
      };
    });
    this.#get = db.prepare<[string, number]>(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE apikey = ? AND id = ?`);
    this.#history = db.prepare<[string, number, number]>(
      `SELECT ${MESSAGE_COLUMNS}, ${RECEIPT_COLUMNS} FROM messages WHERE apikey = ? AND id < ? ORDER BY id DESC LIMIT ?`,
    );
    this.#readAfter = db.prepare<[string, number, number, number]>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages
       WHERE apikey = ? AND id > ? AND expires_at > ? ORDER BY id LIMIT ?`,
    );
    this.#lastId = db.prepare<[string]>('SELECT last_message_id FROM apps WHERE apikey = ?');

    const bump = db.prepare<{ apikey: string; id: number; delivered: number; acked: number }>(
      `UPDATE messages SET delivered = delivered + @delivered, acked = acked + @acked
       WHERE apikey = @apikey AND id = @id`,
    );
    // Only the first time counts: a message delivered again after a reconnect keeps the
    // time it first reached the client.
    const deliveredTo = db.prepare<{ apikey: string; id: number; clientId: string; at: number }>(
      `UPDATE message_recipients SET delivered_at = coalesce(delivered_at, @at)
       WHERE apikey = @apikey AND message_id = @id AND client_id = @clientId`,
    );
    const ackedBy = db.prepare<{ apikey: string; id: number; clientId: string; at: number }>(
      `UPDATE message_recipients SET acked_at = coalesce(acked_at, @at)
       WHERE apikey = @apikey AND message_id = @id AND client_id = @clientId`,
    );
    this.#recordReceipts = db.transaction((updates: readonly ReceiptUpdate[]) => {
      for (const u of updates) {
        if (u.delivered > 0 || u.acked > 0) bump.run({ apikey: u.apikey, id: u.id, delivered: u.delivered, acked: u.acked });
        for (const clientId of u.deliveredTo ?? []) deliveredTo.run({ apikey: u.apikey, id: u.id, clientId, at: u.at });
        for (const clientId of u.ackedBy ?? []) ackedBy.run({ apikey: u.apikey, id: u.id, clientId, at: u.at });
      }
    });

    // A skip counts once per message and client: the row is the proof (ON CONFLICT:
    // a repeat changes nothing). None for a message that no longer exists.
    const insertSkip = db.prepare<{ apikey: string; id: number; clientId: string; reason: string; at: number }>(
      `INSERT INTO message_skips (apikey, message_id, client_id, reason, skipped_at)
       SELECT @apikey, @id, @clientId, @reason, @at WHERE EXISTS (SELECT 1 FROM messages WHERE apikey = @apikey AND id = @id)
       ON CONFLICT DO NOTHING`,
    );
    const bumpSkipped = db.prepare<[string, number]>('UPDATE messages SET skipped = skipped + 1 WHERE apikey = ? AND id = ?');
    this.#recordSkips = db.transaction((skips: readonly SkipUpdate[]) => {
      for (const k of skips) {
        if (insertSkip.run({ apikey: k.apikey, id: k.id, clientId: k.clientId, reason: k.reason, at: k.at }).changes === 1) {
          bumpSkipped.run(k.apikey, k.id);
        }
      }
    });

    // Ack ranges: the stored position is the line between counted and not (AckRange).
    type AckParams = { apikey: string; spans: string; now: number };
    const ackSpans = db.prepare<{ apikey: string; ranges: string }>(ACK_SPANS_SQL);
    const ackBroadcasts = db.prepare<[string, number, number, number]>(ACK_BROADCASTS_SQL).pluck();
    const ackSkippedBroadcasts = db.prepare<AckParams>(ACK_SKIPPED_BROADCASTS_SQL).pluck();
    const ackTargeted = db.prepare<AckParams>(ACK_TARGETED_SQL);
    const bumpAcked = db.prepare<[number, string, number]>('UPDATE messages SET acked = acked + ? WHERE apikey = ? AND id = ?');
    const ackRecipient = db.prepare<[number, string, number, string]>(
      'UPDATE message_recipients SET acked_at = ? WHERE apikey = ? AND message_id = ? AND client_id = ? AND acked_at IS NULL',
    );
    // Then the positions: what was counted is behind them now.
    const moveAcked = db.prepare<[number, string, string]>(
      'UPDATE clients SET last_acked_id = max(last_acked_id, ?) WHERE apikey = ? AND client_id = ?',
    );
    const countRanges = (apikey: string, ranges: string, at: number): void => {
      const counts = new Map<number, number>();
      const add = (id: number, n: number): void => {
        counts.set(id, (counts.get(id) ?? 0) + n);
      };
      const rows = ackSpans.all({ apikey, ranges }).map((row): AckRow => {
        const span = asRow('acks', row);
        const tags: unknown = JSON.parse(text('acks', span, 'tags'));
        if (!isStringArray(tags)) throw new StoreError('STORE_FAILED', 'malformed ack range: tags');
        return [text('acks', span, 'client'), integer('acks', span, 'after'), integer('acks', span, 'up_to'), tags, at];
      });
      if (rows.length === 0) return;
      const spans = rows.map((x): [number, number] => [x[1], x[2]]);
      // The broadcasts of the spans' union, read a stretch at a time: none between them.
      const ids: number[] = [];
      for (const [from, to] of union(spans)) for (const v of ackBroadcasts.all(apikey, from, to, at)) ids.push(integer('acks', { id: v }, 'id'));
      const held = coverage(ids, spans);
      ids.forEach((id, i) => add(id, held[i]!));
      const params = { apikey, spans: JSON.stringify(rows), now: at };
      for (const v of ackSkippedBroadcasts.all(params)) add(integer('acks', { id: v }, 'id'), -1);
      for (const row of ackTargeted.all(params)) {
        const hit = asRow('acks', row);
        const id = integer('acks', hit, 'id');
        add(id, 1);
        if (integer('acks', hit, 'named') === 1) ackRecipient.run(at, apikey, id, text('acks', hit, 'client'));
      }
      for (const [id, n] of counts) if (n > 0) bumpAcked.run(n, apikey, id);
    };
    this.#recordAcks = db.transaction((acks: readonly AckRange[]) => {
      for (const round of ackRounds(acks)) {
        for (const [apikey, rows] of round) {
          // Ranges of one batch share their time, but for those of members that left
          // before it: grouped by it, so each recipient gets its own range's time.
          for (const at of new Set(rows.map((x) => x[4]))) {
            countRanges(apikey, JSON.stringify(rows.filter((x) => x[4] === at)), at);
          }
          for (const [clientId, , upTo] of rows) moveAcked.run(upTo, apikey, clientId);
        }
      }
    });

    const counters = db.prepare<[string, number]>('SELECT targeted, delivered, acked, skipped FROM messages WHERE apikey = ? AND id = ?');
    const recipients = db.prepare<[string, number]>(
      `SELECT r.client_id, r.delivered_at, r.acked_at, s.skipped_at, s.reason FROM message_recipients AS r
       LEFT JOIN message_skips AS s ON s.apikey = r.apikey AND s.message_id = r.message_id AND s.client_id = r.client_id
       WHERE r.apikey = ? AND r.message_id = ? ORDER BY r.rowid`,
    );
    // A transaction, so that counters and recipients are one snapshot.
    this.#receipt = db.transaction((apikey: ApiKey, id: MessageId) => {
      const row = counters.get(apikey, id);
      if (row === undefined) return undefined;
      return { receipt: toReceipt(row), recipients: recipients.all(apikey, id).map(toRecipient) };
    });

    // Target and recipient rows go with their message (ON DELETE CASCADE, indexed).
    this.#sweep = db.prepare<[number, number]>(
      'DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE expires_at <= ? LIMIT ?)',
    );
    this.#sweepClients = db.prepare<[number, number]>(
      'DELETE FROM clients WHERE rowid IN (SELECT rowid FROM clients WHERE last_seen_at < ? LIMIT ?)',
    );
  }

  /**
   * Durable once resolved: the transaction has committed to the WAL. A killed process
   * loses nothing it was told was stored (see `synchronous` in openSqliteStorage).
   * Also stores a target row per distinct named clientId and tag, and a recipient row
   * per distinct named clientId (receipts), in the same transaction.
   */
  async append(msg: NewMessage): Promise<StoredMessage> {
    return attempt('append message', () => {
      requireCount('append message: ttlSeconds', msg.ttlSeconds);
      requireCount('append message: targeted', msg.targeted);
      const data: unknown = JSON.stringify(msg.data);
      if (typeof data !== 'string') throw invalid('append message: data is not a JSON value');
      const target = JSON.stringify({ all: msg.target.all, clientIds: msg.target.clientIds, tags: msg.target.tags });
      // IMMEDIATE takes the write lock up front, so a second handle waits (busy_timeout)
      // instead of failing to upgrade a read lock.
      return this.#append.immediate(msg, target, data);
    });
  }

  async get(apikey: ApiKey, id: MessageId): Promise<StoredMessage | undefined> {
    return attempt('get message', () => {
      const row = this.#get.get(apikey, id);
      return row === undefined ? undefined : toMessage(row);
    });
  }

  /** Newest first. Includes expired messages that have not been swept yet. */
  async history(
    apikey: ApiKey,
    opts: { readonly limit: number; readonly before?: MessageId },
  ): Promise<readonly MessageWithReceipt[]> {
    const limit = count(opts.limit);
    if (limit === 0) return [];
    return attempt('read history', () =>
      this.#history.all(apikey, opts.before ?? Number.MAX_SAFE_INTEGER, limit).map(toMessageWithReceipt),
    );
  }

  async readAfter(apikey: ApiKey, after: MessageId, limit: number): Promise<readonly StoredMessage[]> {
    const n = count(limit);
    if (n === 0) return [];
    return attempt('read messages', () => this.#readAfter.all(apikey, after, Date.now(), n).map(toMessage));
  }

  async readFor(apikey: ApiKey, client: ClientRef, after: MessageId, limit: number): Promise<readonly StoredMessage[]> {
    const n = count(limit);
    if (n === 0) return [];
    return attempt('read messages for client', () => {
      const q = readForQuery(apikey, client, after, n, Date.now());
      let statement = this.#readFor.get(q.key);
      if (statement === undefined) {
        statement = this.#db.prepare<ReadForParams>(q.sql());
        this.#readFor.set(q.key, statement);
      }
      return statement.all(q.params).map(toMessage);
    });
  }

  async lastId(apikey: ApiKey): Promise<MessageId> {
    return attempt('read last id', () => {
      const row = this.#lastId.get(apikey);
      return asMessageId(row === undefined ? 0 : integer('apps', asRow('apps', row), 'last_message_id'));
    });
  }

  /** All updates in one transaction; updates for messages that no longer exist are ignored. */
  async recordReceipts(updates: readonly ReceiptUpdate[]): Promise<void> {
    attempt('record receipts', () => {
      for (const u of updates) {
        requireCount('record receipts: delivered', u.delivered);
        requireCount('record receipts: acked', u.acked);
        requireTime('record receipts: at', u.at);
      }
      if (updates.length > 0) this.#recordReceipts.immediate(updates);
    });
  }

  async receipt(
    apikey: ApiKey,
    id: MessageId,
  ): Promise<{ readonly receipt: Receipt; readonly recipients: readonly RecipientState[] } | undefined> {
    return attempt('read receipt', () => this.#receipt(apikey, id));
  }

  /** All in one transaction; skips of messages that no longer exist are ignored. */
  async recordSkips(skips: readonly SkipUpdate[]): Promise<void> {
    attempt('record skips', () => {
      for (const k of skips) {
        requireCount('record skips: id', k.id);
        requireTime('record skips: at', k.at);
        if (typeof k.reason !== 'string' || k.reason === '') throw invalid('record skips: reason must be a non-empty string');
      }
      if (skips.length > 0) this.#recordSkips.immediate(skips);
    });
  }

  /** All in one transaction (AckRange: each range with the client's position). */
  async recordAcks(acks: readonly AckRange[]): Promise<void> {
    attempt('record acks', () => {
      for (const a of acks) {
        requireCount('record acks: after', a.after);
        requireCount('record acks: upTo', a.upTo);
        requireTime('record acks: at', a.at);
      }
      if (acks.length > 0) this.#recordAcks.immediate(acks);
    });
  }

  /**
   * Deletes messages with `expiresAt <= now` (with their targets and recipients) and
   * clients last seen before `now - clientRetentionMs`; returns how many messages.
   */
  async sweepExpired(now: number): Promise<number> {
    requireTime('sweep: now', now);
    let total = 0;
    for (;;) {
      const deleted = attempt('sweep expired messages', () => this.#sweep.run(now, SWEEP_BATCH).changes);
      total += deleted;
      if (deleted < SWEEP_BATCH) break;
      await nextTurn();
    }
    const unseenSince = now - this.#clientRetentionMs;
    while (attempt('sweep unseen clients', () => this.#sweepClients.run(unseenSince, SWEEP_BATCH).changes) === SWEEP_BATCH) {
      await nextTurn();
    }
    return total;
  }
}

// ---- clients ---------------------------------------------------------------------------

/** One touch of a batch that threw: its error, kept apart from the others' results. */
class TouchFailure {
  constructor(readonly cause: unknown) {}
}

/** A touch waiting for the batch of its event-loop turn. */
interface PendingTouch {
  readonly apikey: ApiKey;
  readonly clientId: ClientId;
  readonly addTags: readonly string[];
  readonly startAfter: number;
  readonly now: number;
  readonly resolve: (state: ClientState) => void;
  readonly reject: (err: unknown) => void;
}

/** A lone touch within this long of the last batch may be a storm's, ms. */
const TOUCH_STORM_GAP_MS = 5;
/** A gathering batch waits this long for more touches to share its transaction, ms. */
const TOUCH_GATHER_MS = 2;
/** After a gathering batch that found no company, this many batches run at once before trying again. */
export const TOUCH_PROBE_EVERY = 16;

/**
 * Whether the next batch of client touches waits TOUCH_GATHER_MS for company. In a
 * connect storm, where a turn holds one or two enters, waiting lets the enters of a few
 * turns share one transaction (its commit is most of its cost); one client entering
 * after another gains nothing by it. So: gathering goes on while it finds company; a
 * batch of several found at once starts it; a lone touch soon after the last batch
 * tries it (a storm of one enter per turn), at most once every TOUCH_PROBE_EVERY batches.
 */
export class TouchPacer {
  #lastAt = -Infinity;
  #gathering = false;
  #probeIn = 0;

  get gathering(): boolean {
    return this.#gathering;
  }

  /** A batch of `size` touches ran at `at` (ms, monotonic); `gathered`: it had waited for company. */
  ran(size: number, gathered: boolean, at: number): void {
    if (gathered) {
      this.#gathering = size > 1;
      if (!this.#gathering) this.#probeIn = TOUCH_PROBE_EVERY;
    } else if (size > 1) {
      this.#gathering = true;
    } else if (at - this.#lastAt < TOUCH_STORM_GAP_MS) {
      if (this.#probeIn > 0) this.#probeIn--;
      else this.#gathering = true;
    }
    this.#lastAt = at;
  }
}

export class SqliteClientStore implements ClientStore {
  readonly #get;
  readonly #touch;
  /** The touches of this turn, run together in one transaction (see `touch`). */
  readonly #touchBatch;
  #pendingTouches: PendingTouch[] = [];
  readonly #pacer = new TouchPacer();
  #flushScheduled = false;
  readonly #setTags;
  readonly #savePositions;

  constructor(db: Database.Database) {
    const appExists = db.prepare<[string]>('SELECT 1 FROM apps WHERE apikey = ?');
    const unknownApp = (apikey: ApiKey): StoreError => new StoreError('STORE_UNKNOWN_APP', `no app with apikey ${apikey}`);
    const get = db.prepare<[string, string]>(`SELECT ${CLIENT_COLUMNS} FROM clients WHERE apikey = ? AND client_id = ?`);
    this.#get = get;

    const insert = db.prepare<{ apikey: string; clientId: string; tags: string; position: number; now: number }>(
      `INSERT INTO clients (apikey, client_id, tags, last_acked_id, last_delivered_id, first_seen_at, last_seen_at)
       VALUES (@apikey, @clientId, @tags, @position, @position, @now, @now)
       RETURNING ${CLIENT_COLUMNS}`,
    );
    const seen = db.prepare<{ apikey: string; clientId: string; tags: string; now: number }>(
      `UPDATE clients SET tags = @tags, last_seen_at = @now
       WHERE apikey = @apikey AND client_id = @clientId
       RETURNING ${CLIENT_COLUMNS}`,
    );
    // Read, merge the tags, write: one IMMEDIATE transaction, so that two handles
    // touching the same client at once cannot lose each other's tags.
    this.#touch = db.transaction(
      (apikey: ApiKey, clientId: ClientId, addTags: readonly string[], startAfter: number, now: number): ClientState => {
        const row = get.get(apikey, clientId);
        if (row === undefined) {
          if (appExists.get(apikey) === undefined) throw unknownApp(apikey);
          const tags = JSON.stringify(addTagsTo([], addTags, 'touch client'));
          return toClient(insert.get({ apikey, clientId, tags, position: startAfter, now }));
        }
        const tags = addTagsTo([...toClient(row).tags], addTags, 'touch client');
        return toClient(seen.get({ apikey, clientId, tags: JSON.stringify(tags), now }));
      },
    );

    // Each touch in its own savepoint (a nested transaction): one that fails (an unknown
    // app) is undone alone and rejected; the others commit together.
    const touchOne = this.#touch;
    this.#touchBatch = db.transaction((batch: readonly PendingTouch[]): unknown[] => {
      const outcomes: unknown[] = [];
      for (const t of batch) {
        try {
          outcomes.push(touchOne(t.apikey, t.clientId, t.addTags, t.startAfter, t.now));
        } catch (err) {
          outcomes.push(new TouchFailure(err));
        }
      }
      return outcomes;
    });

    // A client named before it ever connected starts at 0: it gets every unexpired
    // message for it on its first connect.
    const upsertTags = db.prepare<{ apikey: string; clientId: string; tags: string; now: number }>(
      `INSERT INTO clients (apikey, client_id, tags, last_acked_id, last_delivered_id, first_seen_at, last_seen_at)
       VALUES (@apikey, @clientId, @tags, 0, 0, @now, @now)
       ON CONFLICT (apikey, client_id) DO UPDATE SET tags = excluded.tags`,
    );
    this.#setTags = db.transaction((apikey: ApiKey, clientId: ClientId, tags: string, now: number) => {
      if (appExists.get(apikey) === undefined) throw unknownApp(apikey);
      upsertTags.run({ apikey, clientId, tags, now });
    });

    // An absent position is passed as 0, which max() ignores.
    const forward = db.prepare<{ apikey: string; clientId: string; acked: number; delivered: number }>(
      `UPDATE clients SET
         last_acked_id = max(last_acked_id, @acked),
         last_delivered_id = max(last_delivered_id, @delivered)
       WHERE apikey = @apikey AND client_id = @clientId`,
    );
    this.#savePositions = db.transaction((updates: readonly PositionUpdate[]) => {
      for (const u of updates) {
        forward.run({ apikey: u.apikey, clientId: u.clientId, acked: u.ackedId ?? 0, delivered: u.deliveredId ?? 0 });
      }
    });
  }

  async get(apikey: ApiKey, clientId: ClientId): Promise<ClientState | undefined> {
    return attempt('get client', () => {
      const row = this.#get.get(apikey, clientId);
      return row === undefined ? undefined : toClient(row);
    });
  }

  async touch(
    apikey: ApiKey,
    clientId: ClientId,
    opts: { readonly startAfter: MessageId; readonly addTags?: readonly string[]; readonly now: number },
  ): Promise<ClientState> {
    return attempt('touch client', () => {
      const startAfter = requireCount('touch client: startAfter', opts.startAfter);
      const now = requireTime('touch client: now', opts.now);
      // Checked before the transaction too, so that bad tags never take the write lock.
      const addTags = addTagsTo([], opts.addTags ?? [], 'touch client');
      // Every enter touches its client. A reconnect storm brings thousands in a second,
      // and a write transaction each was the largest cost of an enter (~100 µs of a
      // ~265 µs enter in a connect-storm profile): the touches of one event-loop turn
      // share one transaction, run right after the turn's I/O (setImmediate) — or, in a
      // storm, a little later, so that the enters of a few turns share one (TouchPacer).
      return new Promise<ClientState>((resolve, reject) => {
        this.#pendingTouches.push({ apikey, clientId, addTags, startAfter, now, resolve, reject });
        if (!this.#flushScheduled) {
          this.#flushScheduled = true;
          if (this.#pacer.gathering) setTimeout(() => this.runBatch(true), TOUCH_GATHER_MS);
          else setImmediate(() => this.runBatch(false));
        }
      });
    });
  }

  /** Runs the touches waiting for their turn's batch now. Called before the handle closes. */
  flush(): void {
    this.runBatch(false);
  }

  /** Runs the waiting touches; `gathered`: the batch waited for company (TouchPacer). */
  private runBatch(gathered: boolean): void {
    this.#flushScheduled = false;
    const batch = this.#pendingTouches;
    if (batch.length === 0) return;
    this.#pacer.ran(batch.length, gathered, performance.now());
    this.#pendingTouches = [];
    let outcomes: unknown[];
    try {
      outcomes = this.#touchBatch.immediate(batch);
    } catch (err) {
      const failure = wrap('touch client', err);
      for (const t of batch) t.reject(failure);
      return;
    }
    batch.forEach((t, i) => {
      const outcome = outcomes[i];
      if (outcome instanceof TouchFailure) t.reject(wrap('touch client', outcome.cause));
      else t.resolve(outcome as ClientState);
    });
  }

  /** Replaces the client's tags; creates the client (positions 0) when it is unknown. */
  async setTags(apikey: ApiKey, clientId: ClientId, tags: readonly string[]): Promise<void> {
    attempt('set client tags', () => {
      const checked = JSON.stringify(addTagsTo([], tags, 'set client tags'));
      this.#setTags.immediate(apikey, clientId, checked, Date.now());
    });
  }

  /** One transaction; updates for unknown clients are ignored. */
  async savePositions(updates: readonly PositionUpdate[]): Promise<void> {
    attempt('save positions', () => {
      for (const u of updates) {
        if (u.ackedId !== undefined) requireCount('save positions: ackedId', u.ackedId);
        if (u.deliveredId !== undefined) requireCount('save positions: deliveredId', u.deliveredId);
      }
      if (updates.length > 0) this.#savePositions.immediate(updates);
    });
  }
}

// ---- the whole storage -----------------------------------------------------------------

export interface SqliteStorageOptions {
  /**
   * Clients not seen (touched) for this long are deleted by `sweepExpired`, in ms.
   * @default CLIENT_RETENTION_MS (30 days)
   */
  readonly clientRetentionMs?: number;
}

export class SqliteStorage implements Storage {
  readonly apps: SqliteAppStore;
  readonly admins: SqliteAdminStore;
  readonly messages: SqliteMessageStore;
  readonly clients: SqliteClientStore;
  readonly #db: Database.Database;

  constructor(db: Database.Database, options: SqliteStorageOptions = {}) {
    this.#db = db;
    this.apps = new SqliteAppStore(db);
    this.admins = new SqliteAdminStore(db);
    this.messages = new SqliteMessageStore(db, options.clientRetentionMs ?? CLIENT_RETENTION_MS);
    this.clients = new SqliteClientStore(db);
  }

  /** Closes the handle. In WAL mode the last handle to close checkpoints the file. */
  async close(): Promise<void> {
    this.clients.flush();
    attempt('close', () => this.#db.close());
  }
}

function migrate(db: Database.Database): void {
  const version = (): number => {
    const v = db.pragma('user_version', { simple: true });
    if (typeof v !== 'number') throw new StoreError('STORE_FAILED', 'user_version is not a number');
    return v;
  };
  if (version() === SCHEMA_VERSION) return;
  // IMMEDIATE, and read the version again under the write lock: two processes that
  // open a new file at once must not both run the same migration.
  db.transaction(() => {
    const from = version();
    if (from > SCHEMA_VERSION) {
      throw new StoreError(
        'STORE_FAILED',
        `database schema version ${from} is newer than this build of shaddock (${SCHEMA_VERSION}); upgrade shaddock`,
      );
    }
    for (let v = from; v < SCHEMA_VERSION; v++) {
      db.exec(MIGRATIONS[v] ?? '');
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}

/**
 * SQLite page cache per database handle, KiB (PRAGMA cache_size). A fixed cost, not one
 * per connection — but at 19,000 connections every 100 KB of it reads as 5 bytes per
 * connection, and the 2 MB of SQLite's own default filled up with client rows during a
 * connect storm and showed as 0.1–0.2 KB of RSS per connection (BENCHMARKS.md).
 */
export const PAGE_CACHE_KIB = 512;

/**
 * Opens (creating if needed) the SQLite storage at `path`, creating its directory and
 * bringing its schema up to date. `':memory:'` gives a private in-memory database.
 * Several handles may open the same file at once (a server and the CLI).
 */
export function openSqliteStorage(path: string, options: SqliteStorageOptions = {}): SqliteStorage {
  return attempt(`open ${path}`, () => {
    const inMemory = path === ':memory:' || path === '';
    if (!inMemory) mkdirSync(dirname(path), { recursive: true });
    // busy_timeout: another handle on the file (the CLI while the server runs) waits up
    // to 5 s for the write lock instead of failing at once with SQLITE_BUSY.
    const db = new Database(path, { timeout: 5000 });
    try {
      // WAL: readers never block the writer nor the writer the readers.
      db.pragma('journal_mode = WAL');
      // NORMAL (not FULL): in WAL mode a commit is written to the WAL file but not
      // fsynced. A process killed with kill -9 loses nothing, because committed WAL
      // frames are already in the OS page cache; only an OS crash or power loss can lose
      // the last transactions (never corrupt the file). https://sqlite.org/pragma.html#pragma_synchronous
      db.pragma('synchronous = NORMAL');
      // The page cache: 512 KB, where better-sqlite3 builds with 16 MB and SQLite's own
      // default is 2 MB. What a node reads again soon is small and hot (apps, the newest
      // messages and the B-tree's upper pages); other pages come from the OS's file
      // cache at the cost of a read() (microseconds), and a node holding 100,000 clients
      // does not keep its clients table in process memory too.
      db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
      // Off by default and per connection; messages and clients reference their app,
      // target and recipient rows their message (the cascades delete them).
      db.pragma('foreign_keys = ON');
      migrate(db);
      return new SqliteStorage(db, options);
    } catch (err) {
      db.close();
      throw err;
    }
  });
}
