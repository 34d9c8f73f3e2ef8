import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { asApiKey, asMessageId, type ApiKey } from '../../src/ids.js';
import { verifyPassword } from '../../src/store/secrets.js';
import { SCHEMA_VERSION, StoreError, openSqliteStorage } from '../../src/store/sqlite-storage.js';
import type { NewMessage } from '../../src/store/store.js';
import { runStorageContract } from './contract.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('../fixtures/store-append-child.ts', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'shaddock-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const freshPath = (): string => join(dir, `db-${++files}.sqlite`);

function message(apikey: ApiKey, data: unknown, ttlSeconds = 3600): NewMessage {
  return { apikey, target: { all: true, clientIds: [], tags: [] }, event: 'onMsg', data, ttlSeconds };
}

/** A plain better-sqlite3 handle, to look at (or damage) the file behind the store's back. */
function raw<T>(path: string, use: (db: Database.Database) => T): T {
  const db = new Database(path, { timeout: 5000 });
  try {
    return use(db);
  } finally {
    db.close();
  }
}

runStorageContract('sqlite :memory:', () => openSqliteStorage(':memory:'));
runStorageContract('sqlite file', () => openSqliteStorage(freshPath()));

void describe('SqliteStorage', () => {
  void it('creates the parent directory and uses WAL', async () => {
    const path = join(dir, 'nested', 'deeper', 'shaddock.db');
    const s = openSqliteStorage(path);
    await s.apps.createApp({ name: 'x' });
    assert.ok(existsSync(`${path}-wal`));
    raw(path, (db) => assert.equal(db.pragma('journal_mode', { simple: true }), 'wal'));
    await s.close();
  });

  void it('keeps apps, admins and messages across a reopen and continues ids', async () => {
    const path = freshPath();
    const first = openSqliteStorage(path);
    const app = await first.apps.createApp({ name: '持久', messageTtlSeconds: 600 });
    await first.admins.setAdminPassword('root', 'pw');
    for (let i = 1; i <= 3; i++) await first.messages.append(message(app.apikey, { i }));
    await first.close();

    const second = openSqliteStorage(path);
    assert.deepEqual(await second.apps.getApp(app.apikey), app);
    assert.equal(await second.admins.verifyAdmin('root', 'pw'), true);
    const kept = await second.messages.readAfter(app.apikey, asMessageId(0), 10);
    assert.deepEqual(
      kept.map((m) => m.data),
      [{ i: 1 }, { i: 2 }, { i: 3 }],
    );
    assert.equal((await second.messages.append(message(app.apikey, 'next'))).id, 4);
    await second.close();
  });

  void it('continues ids after the newest row was deleted and the file reopened', async () => {
    const path = freshPath();
    const s = openSqliteStorage(path);
    const { apikey } = await s.apps.createApp({ name: 'x' });
    for (let i = 0; i < 3; i++) await s.messages.append(message(apikey, i));
    await s.close();
    raw(path, (db) => db.prepare('DELETE FROM messages WHERE id = 3').run());
    const reopened = openSqliteStorage(path);
    assert.equal((await reopened.messages.append(message(apikey, 'after'))).id, 4);
    await reopened.close();
  });

  void it('shares the file with a second handle, as the CLI does while a server runs', async () => {
    const path = freshPath();
    const server = openSqliteStorage(path);
    const cli = openSqliteStorage(path);
    try {
      const made = await server.apps.createApp({ name: 'from server' });
      assert.deepEqual(await cli.apps.getApp(made.apikey), made);
      const byCli = await cli.apps.createApp({ name: 'from cli' });
      assert.deepEqual(await server.apps.getApp(byCli.apikey), byCli);
      const rotated = await cli.apps.rotateSecret(made.apikey);
      assert.equal((await server.apps.getApp(made.apikey))?.secret, rotated?.secret);

      const both = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? server : cli).messages.append(message(made.apikey, i))),
      );
      assert.deepEqual(
        both.map((m) => m.id).sort((a, b) => a - b),
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      assert.equal((await server.messages.readAfter(made.apikey, asMessageId(0), 100)).length, 50);
    } finally {
      await cli.close();
      await server.close();
    }
  });

  void it('applies migrations once and reopens idempotently', async () => {
    const path = freshPath();
    const schema = (): unknown =>
      raw(path, (db) => ({
        version: db.pragma('user_version', { simple: true }),
        objects: db.prepare("SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all(),
      }));
    await openSqliteStorage(path).close();
    const once1 = schema();
    assert.equal((once1 as { version: unknown }).version, SCHEMA_VERSION);
    for (let i = 0; i < 3; i++) {
      const s = openSqliteStorage(path);
      await s.apps.createApp({ name: `open ${i}` });
      await s.close();
    }
    assert.deepEqual(schema(), once1);
    const s = openSqliteStorage(path);
    assert.equal((await s.apps.listApps()).length, 3);
    await s.close();
  });

  void it('refuses a database written by a newer version', () => {
    const path = freshPath();
    raw(path, (db) => db.pragma(`user_version = ${SCHEMA_VERSION + 1}`));
    assert.throws(
      () => openSqliteStorage(path),
      (err) => err instanceof StoreError && err.code === 'STORE_FAILED' && /newer/.test(err.message),
    );
  });

  void it('stores admin passwords as salted scrypt hashes', async () => {
    const path = freshPath();
    const s = openSqliteStorage(path);
    await s.admins.setAdminPassword('a', 'same password');
    await s.admins.setAdminPassword('b', 'same password');
    await s.close();
    const rows = raw(path, (db) => db.prepare('SELECT username, salt, hash FROM admins ORDER BY username').all());
    const [a, b] = rows as { salt: string; hash: string }[];
    assert.ok(a && b);
    assert.equal(Buffer.from(a.salt, 'base64url').length, 16);
    assert.equal(Buffer.from(a.hash, 'base64url').length, 64);
    assert.notEqual(a.salt, b.salt);
    assert.notEqual(a.hash, b.hash);
    assert.ok(!JSON.stringify(rows).includes('same password'));
    assert.equal(await verifyPassword('same password', a.salt, a.hash), true);
  });

  void it('reports a malformed row as a StoreError', async () => {
    const path = freshPath();
    const s = openSqliteStorage(path);
    const { apikey } = await s.apps.createApp({ name: 'x' });
    await s.messages.append(message(apikey, 1));
    raw(path, (db) => db.prepare(`UPDATE messages SET target = '"all"'`).run());
    await assert.rejects(s.messages.get(apikey, asMessageId(1)), { name: 'StoreError', code: 'STORE_FAILED' });
    raw(path, (db) => db.prepare(`UPDATE messages SET target = 'not json'`).run());
    await assert.rejects(s.messages.readAfter(apikey, asMessageId(0), 1), { name: 'StoreError', code: 'STORE_FAILED' });
    await s.close();
  });

  void it('rejects bad input and use after close with a StoreError', async () => {
    const s = openSqliteStorage(':memory:');
    const { apikey } = await s.apps.createApp({ name: 'x' });
    await assert.rejects(s.messages.append(message(apikey, undefined)), { code: 'STORE_FAILED' });
    await assert.rejects(s.messages.append(message(apikey, 1, -1)), { code: 'STORE_FAILED' });
    await assert.rejects(s.messages.append(message(apikey, 1, 1.5)), { code: 'STORE_FAILED' });
    await assert.rejects(s.messages.append(message(apikey, 1, Number.MAX_SAFE_INTEGER)), { code: 'STORE_FAILED' });
    // Nothing was stored, and no id was spent.
    assert.equal((await s.messages.append(message(apikey, 1))).id, 1);
    await s.close();
    await assert.rejects(s.apps.getApp(asApiKey(apikey)), { name: 'StoreError', code: 'STORE_FAILED' });
  });

  void it('sweeps more expired messages than one batch', async () => {
    const path = freshPath();
    const s = openSqliteStorage(path);
    const { apikey } = await s.apps.createApp({ name: 'x' });
    await s.messages.append(message(apikey, 'kept'));
    const expired = 12_345;
    raw(path, (db) => {
      const insert = db.prepare(
        `INSERT INTO messages (apikey, id, target, event, data, ttl_seconds, created_at, expires_at)
         VALUES (?, ?, '{"all":true,"clientIds":[],"tags":[]}', 'onMsg', 'null', 0, 0, 0)`,
      );
      db.transaction(() => {
        for (let i = 0; i < expired; i++) insert.run(apikey, 1000 + i);
      })();
    });
    assert.equal(await s.messages.sweepExpired(Date.now()), expired);
    assert.equal((await s.messages.history(apikey, { limit: 10 })).length, 1);
    await s.close();
  });

  void it('keeps every append it acknowledged when the process is killed with SIGKILL', { timeout: 15_000 }, async () => {
    const path = freshPath();
    const setup = openSqliteStorage(path);
    const { apikey } = await setup.apps.createApp({ name: 'kill -9' });
    await setup.close();

    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, path, apikey], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const closed = once(child, 'close');
    const printed: number[] = [];
    let stderr = '';
    try {
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => (stderr += chunk));
      child.stdout.setEncoding('utf8');
      let partial = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`child printed ${printed.length} ids in 10 s: ${stderr}`)), 10_000);
        child.stdout.on('data', (chunk: string) => {
          const lines = (partial + chunk).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) printed.push(Number(line));
          if (printed.length >= 500) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`child exited with ${code} before it was killed: ${stderr}`));
        });
      });
      // Kill it mid-stream, with appends in flight.
      child.kill('SIGKILL');
      const [, signal] = await closed;
      assert.equal(signal, 'SIGKILL');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }

    assert.deepEqual(
      printed,
      printed.map((_, i) => i + 1),
    );
    const s = openSqliteStorage(path);
    try {
      const stored = await s.messages.readAfter(asApiKey(apikey), asMessageId(0), printed.length + 1000);
      const byId = new Map(stored.map((m) => [m.id as number, m.data]));
      for (const id of printed) assert.deepEqual(byId.get(id), { n: id, text: `消息 ${id}` }, `message ${id} was lost`);
      // It may have committed one more than it printed, never fewer.
      assert.ok(stored.length >= printed.length);
    } finally {
      await s.close();
    }
  });
});
