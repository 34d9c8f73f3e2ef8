// The embedded storage: apps, admins and the message log in one SQLite file
// (better-sqlite3). Every call is a short synchronous statement or transaction; the
// methods are async only because the interface also fits a networked store (Redis).
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { asApiKey, asClientId, asMessageId, type ApiKey, type MessageId } from '../ids.js';
import type {
  Admin,
  AdminStore,
  App,
  AppSettings,
  AppStore,
  MessageStore,
  NewApp,
  NewMessage,
  Storage,
  StoredMessage,
  Target,
} from './store.js';
import { generateApiKey, generateSecret, hashPassword, verifyNoPassword, verifyPassword } from './secrets.js';

export const StoreErrorCode = {
  /** The database failed or returned something it should not have; details in `cause`. */
  STORE_FAILED: 'STORE_FAILED',
  /** A message was appended to an app that does not exist (or was deleted). */
  STORE_UNKNOWN_APP: 'STORE_UNKNOWN_APP',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

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

// Schema migrations, applied in order; `PRAGMA user_version` is how many have run.
// Append only: never edit a migration that has shipped, add the next one.
// (Coming: acks, tags, receipts, sessions.)
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
];

/** The schema version this build writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

// Sweeping deletes in batches and yields between them, so that a large backlog of
// expired messages does not hold the write lock (the CLI waits on it) or the event loop
// for long.
const SWEEP_BATCH = 5000;

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

const APP_COLUMNS = 'apikey, secret, name, message_ttl_seconds, require_client_token, created_at';

function toApp(value: unknown): App {
  const row = asRow('apps', value);
  const flag = integer('apps', row, 'require_client_token');
  if (flag !== 0 && flag !== 1) throw new StoreError('STORE_FAILED', 'malformed apps row: require_client_token');
  return {
    apikey: asApiKey(text('apps', row, 'apikey')),
    secret: text('apps', row, 'secret'),
    name: text('apps', row, 'name'),
    messageTtlSeconds: integer('apps', row, 'message_ttl_seconds'),
    requireClientToken: flag === 1,
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

const MESSAGE_COLUMNS = 'apikey, id, target, event, data, ttl_seconds, created_at, expires_at';

function toMessage(value: unknown): StoredMessage {
  const row = asRow('messages', value);
  return {
    apikey: asApiKey(text('messages', row, 'apikey')),
    id: asMessageId(integer('messages', row, 'id')),
    target: parseTarget(text('messages', row, 'target')),
    event: text('messages', row, 'event'),
    data: JSON.parse(text('messages', row, 'data')) as unknown,
    ttlSeconds: integer('messages', row, 'ttl_seconds'),
    createdAt: integer('messages', row, 'created_at'),
    expiresAt: integer('messages', row, 'expires_at'),
  };
}

/** A count for LIMIT: SQLite reads a negative LIMIT as "no limit", so clamp at 0. */
function count(limit: number): number {
  return Number.isFinite(limit) && limit > 0 ? Math.floor(limit) : 0;
}

// ---- apps ------------------------------------------------------------------------------

export class SqliteAppStore implements AppStore {
  readonly #insert;
  readonly #get;
  readonly #list;
  readonly #update;
  readonly #rotate;
  readonly #delete;

  constructor(db: Database.Database) {
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
    }>(
      `UPDATE apps SET
         name = coalesce(@name, name),
         message_ttl_seconds = coalesce(@ttl, message_ttl_seconds),
         require_client_token = coalesce(@requireClientToken, require_client_token)
       WHERE apikey = @apikey
       RETURNING ${APP_COLUMNS}`,
    );
    this.#rotate = db.prepare<[string, string]>(`UPDATE apps SET secret = ? WHERE apikey = ? RETURNING ${APP_COLUMNS}`);
    // Its messages go with it (ON DELETE CASCADE, foreign keys are on in every handle).
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
      const row = this.#get.get(apikey);
      return row === undefined ? undefined : toApp(row);
    });
  }

  async listApps(): Promise<readonly App[]> {
    return attempt('list apps', () => this.#list.all().map(toApp));
  }

  async updateApp(apikey: ApiKey, settings: AppSettings): Promise<App | undefined> {
    return attempt('update app', () => {
      const row = this.#update.get({
        apikey,
        name: settings.name ?? null,
        ttl: settings.messageTtlSeconds ?? null,
        requireClientToken: settings.requireClientToken === undefined ? null : Number(settings.requireClientToken),
      });
      return row === undefined ? undefined : toApp(row);
    });
  }

  async rotateSecret(apikey: ApiKey): Promise<App | undefined> {
    return attempt('rotate secret', () => {
      const row = this.#rotate.get(generateSecret(), apikey);
      return row === undefined ? undefined : toApp(row);
    });
  }

  async deleteApp(apikey: ApiKey): Promise<boolean> {
    return attempt('delete app', () => this.#delete.run(apikey).changes > 0);
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

export class SqliteMessageStore implements MessageStore {
  readonly #append;
  readonly #get;
  readonly #history;
  readonly #readAfter;
  readonly #sweep;

  constructor(db: Database.Database) {
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
      event: string;
      data: string;
      ttl: number;
      createdAt: number;
      expiresAt: number;
    }>(
      `INSERT INTO messages (apikey, id, target, event, data, ttl_seconds, created_at, expires_at)
       VALUES (@apikey, @id, @target, @event, @data, @ttl, @createdAt, @expiresAt)`,
    );
    this.#append = db.transaction((msg: NewMessage, target: string, data: string): StoredMessage => {
      const bumped = nextId.get(msg.apikey);
      if (bumped === undefined) throw new StoreError('STORE_UNKNOWN_APP', `no app with apikey ${msg.apikey}`);
      const id = asMessageId(integer('apps', asRow('apps', bumped), 'last_message_id'));
      const createdAt = Date.now();
      const expiresAt = createdAt + msg.ttlSeconds * 1000;
      // Rejected here, not on every later read: a row that cannot be read back is a
      // poison message. Throwing rolls the id back too.
      if (!Number.isSafeInteger(expiresAt)) {
        throw new StoreError('STORE_FAILED', `append message: ttlSeconds ${msg.ttlSeconds} is too large`);
      }
      insert.run({ apikey: msg.apikey, id, target, event: msg.event, data, ttl: msg.ttlSeconds, createdAt, expiresAt });
      return {
        apikey: msg.apikey,
        id,
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
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE apikey = ? AND id < ? ORDER BY id DESC LIMIT ?`,
    );
    this.#readAfter = db.prepare<[string, number, number, number]>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages
       WHERE apikey = ? AND id > ? AND expires_at > ? ORDER BY id LIMIT ?`,
    );
    this.#sweep = db.prepare<[number, number]>(
      'DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE expires_at <= ? LIMIT ?)',
    );
  }

  /**
   * Durable once resolved: the transaction has committed to the WAL. A killed process
   * loses nothing it was told was stored (see `synchronous` in openSqliteStorage).
   */
  async append(msg: NewMessage): Promise<StoredMessage> {
    return attempt('append message', () => {
      if (!Number.isSafeInteger(msg.ttlSeconds) || msg.ttlSeconds < 0) {
        throw new StoreError('STORE_FAILED', `append message: ttlSeconds must be a whole number >= 0, got ${msg.ttlSeconds}`);
      }
      const data: unknown = JSON.stringify(msg.data);
      if (typeof data !== 'string') throw new StoreError('STORE_FAILED', 'append message: data is not a JSON value');
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
  ): Promise<readonly StoredMessage[]> {
    const limit = count(opts.limit);
    if (limit === 0) return [];
    return attempt('read history', () =>
      this.#history.all(apikey, opts.before ?? Number.MAX_SAFE_INTEGER, limit).map(toMessage),
    );
  }

  async readAfter(apikey: ApiKey, after: MessageId, limit: number): Promise<readonly StoredMessage[]> {
    const n = count(limit);
    if (n === 0) return [];
    return attempt('read messages', () => this.#readAfter.all(apikey, after, Date.now(), n).map(toMessage));
  }

  async sweepExpired(now: number): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = attempt('sweep expired messages', () => this.#sweep.run(now, SWEEP_BATCH).changes);
      total += deleted;
      if (deleted < SWEEP_BATCH) return total;
      await nextTurn();
    }
  }
}

// ---- the whole storage -----------------------------------------------------------------

export class SqliteStorage implements Storage {
  readonly apps: SqliteAppStore;
  readonly admins: SqliteAdminStore;
  readonly messages: SqliteMessageStore;
  readonly #db: Database.Database;

  constructor(db: Database.Database) {
    this.#db = db;
    this.apps = new SqliteAppStore(db);
    this.admins = new SqliteAdminStore(db);
    this.messages = new SqliteMessageStore(db);
  }

  /** Closes the handle. In WAL mode the last handle to close checkpoints the file. */
  async close(): Promise<void> {
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
 * Opens (creating if needed) the SQLite storage at `path`, creating its directory and
 * bringing its schema up to date. `':memory:'` gives a private in-memory database.
 * Several handles may open the same file at once (a server and the CLI).
 */
export function openSqliteStorage(path: string): SqliteStorage {
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
      // Off by default and per connection; messages reference their app.
      db.pragma('foreign_keys = ON');
      migrate(db);
      return new SqliteStorage(db);
    } catch (err) {
      db.close();
      throw err;
    }
  });
}
