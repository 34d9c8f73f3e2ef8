import Database from 'better-sqlite3';
import type { ApiKey } from '../ids.js';
import type { NewScheduled, ScheduledMessage, ScheduledStore } from './scheduled-store.js';

interface Row {
  readonly id: number;
  readonly apikey: string;
  readonly due_at: number;
  readonly created_at: number;
  readonly tags: string;
  readonly event: string;
  readonly data: string;
  readonly ttl: number | null;
}

/**
 * Scheduled messages in the node's SQLite file, on a handle of their own (the table is
 * this file's alone; the message store's schema is not touched). `next_try_at` is the
 * lease: a claim moves it to the lease's end, so a claimed entry is not due for anyone
 * else until then.
 */
export class SqliteScheduledStore implements ScheduledStore {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #due: Database.Statement;
  readonly #lease: Database.Statement;
  readonly #delete: Database.Statement;
  readonly #pending: Database.Statement;
  readonly #claim: (now: number, leaseMs: number, limit: number) => Row[];

  constructor(path: string) {
    this.#db = new Database(path, { timeout: 5000 });
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS scheduled_messages (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      apikey TEXT NOT NULL,
      due_at INTEGER NOT NULL,
      next_try_at INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      tags TEXT NOT NULL,
      event TEXT NOT NULL,
      data TEXT NOT NULL,
      ttl INTEGER
    );
    CREATE INDEX IF NOT EXISTS scheduled_messages_next ON scheduled_messages (next_try_at);`);
    this.#insert = this.#db.prepare(
      'INSERT INTO scheduled_messages (apikey, due_at, next_try_at, created_at, tags, event, data, ttl) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#due = this.#db.prepare('SELECT * FROM scheduled_messages WHERE next_try_at <= ? ORDER BY due_at, id LIMIT ?');
    this.#lease = this.#db.prepare('UPDATE scheduled_messages SET next_try_at = ? WHERE id = ?');
    this.#delete = this.#db.prepare('DELETE FROM scheduled_messages WHERE id = ?');
    this.#pending = this.#db.prepare('SELECT * FROM scheduled_messages WHERE apikey = ? ORDER BY due_at, id');
    // IMMEDIATE: the write lock is taken before the read, so two processes on one file
    // cannot both read an entry as due and both lease it.
    const claim = this.#db.transaction((now: number, leaseMs: number, limit: number): Row[] => {
      const rows = this.#due.all(now, limit) as Row[];
      for (const r of rows) this.#lease.run(now + leaseMs, r.id);
      return rows;
    });
    this.#claim = (now, leaseMs, limit) => claim.immediate(now, leaseMs, limit);
  }

  add(entry: NewScheduled, now: number): Promise<ScheduledMessage> {
    const info = this.#insert.run(entry.apikey, entry.dueAt, entry.dueAt, now, JSON.stringify(entry.tags), entry.event, JSON.stringify(entry.data ?? null), entry.ttlSeconds ?? null);
    return Promise.resolve({ ...entry, id: Number(info.lastInsertRowid), createdAt: now });
  }

  claimDue(now: number, leaseMs: number, limit: number): Promise<readonly ScheduledMessage[]> {
    return Promise.resolve(this.#claim(now, leaseMs, limit).map(fromRow));
  }

  done(id: number): Promise<void> {
    this.#delete.run(id);
    return Promise.resolve();
  }

  pending(apikey: ApiKey, tags: readonly string[], limit: number): Promise<readonly ScheduledMessage[]> {
    const out: ScheduledMessage[] = [];
    for (const row of this.#pending.iterate(apikey) as IterableIterator<Row>) {
      const m = fromRow(row);
      if (m.tags.some((t) => tags.includes(t))) out.push(m);
      if (out.length >= limit) break;
    }
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }
}

function fromRow(r: Row): ScheduledMessage {
  return {
    id: r.id,
    apikey: r.apikey as ApiKey,
    dueAt: r.due_at,
    createdAt: r.created_at,
    tags: JSON.parse(r.tags) as string[],
    event: r.event,
    data: JSON.parse(r.data) as unknown,
    ...(r.ttl !== null && { ttlSeconds: r.ttl }),
  };
}

export function openSqliteScheduledStore(path: string): SqliteScheduledStore {
  return new SqliteScheduledStore(path);
}
