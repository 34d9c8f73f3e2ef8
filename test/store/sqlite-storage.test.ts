import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { asApiKey, asClientId, asMessageId, type ApiKey } from '../../src/ids.js';
import { verifyPassword } from '../../src/store/secrets.js';
import { SCHEMA_VERSION, StoreError, TOUCH_PROBE_EVERY, TouchPacer, explainReadFor, openSqliteStorage } from '../../src/store/sqlite-storage.js';
import type { NewMessage, Target } from '../../src/store/store.js';
import { runStorageContract } from './contract.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('../fixtures/store-append-child.ts', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'shaddock-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const freshPath = (): string => join(dir, `db-${++files}.sqlite`);

const ALL: Target = { all: true, clientIds: [], tags: [] };

function message(apikey: ApiKey, data: unknown, ttlSeconds = 3600, target: Target = ALL): NewMessage {
  return { apikey, targeted: 0, target, event: 'onMsg', data, ttlSeconds };
}

const cid = asClientId;
const mid = asMessageId;

/** A plain better-sqlite3 handle, to look at (or damage) the file behind the store's back. */
function raw<T>(path: string, use: (db: Database.Database) => T): T {
  const db = new Database(path, { timeout: 5000 });
  try {
    return use(db);
  } finally {
    db.close();
  }
}

// Migration 1 exactly as version 1 of shaddock wrote it: a file to upgrade from. A copy,
// not an import, so that it stays what shipped.
const V1_SCHEMA = `
  CREATE TABLE apps (
    apikey               TEXT    NOT NULL PRIMARY KEY,
    secret               TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    message_ttl_seconds  INTEGER NOT NULL DEFAULT 86400 CHECK (message_ttl_seconds >= 0),
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
  `;

/** The schema objects of a file, to compare two files. */
function schemaOf(path: string): unknown {
  return raw(path, (db) => ({
    version: db.pragma('user_version', { simple: true }),
    objects: db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all(),
  }));
}

runStorageContract('sqlite :memory:', () => openSqliteStorage(':memory:'));
runStorageContract('sqlite file', () => openSqliteStorage(freshPath()));

void describe('SqliteStorage', () => {
  it('touches of one turn share a transaction: each gets its own state, a failing one fails alone, all are written', async () => {
    const path = freshPath();
    const s = openSqliteStorage(path);
    const { apikey } = await s.apps.createApp({ name: 'storm' });
    const now = Date.now();
    const touches = Array.from({ length: 50 }, (_, i) =>
      s.clients.touch(apikey, cid(`c${i}`), { startAfter: mid(i), addTags: i % 2 === 0 ? ['even'] : [], now }),
    );
    const stranger = s.clients.touch(asApiKey('no-such-app'), cid('x'), { startAfter: mid(0), now });
    const states = await Promise.all(touches);
    await assert.rejects(stranger, (err: unknown) => err instanceof StoreError && err.code === 'STORE_UNKNOWN_APP');
    states.forEach((state, i) => {
      assert.equal(state.lastAckedId, i, `client c${i} starts at its own position`);
      assert.deepEqual([...state.tags], i % 2 === 0 ? ['even'] : []);
    });
    // A touch queued right before close is written, not lost.
    const last = s.clients.touch(apikey, cid('late'), { startAfter: mid(7), now });
    await s.close();
    assert.equal((await last).lastAckedId, 7);
    const count = raw(path, (db) => db.prepare('SELECT count(*) AS n FROM clients').get() as { n: number });
    assert.equal(count.n, 51);
  });

  it('in a storm (a batch ran moments ago) touches of several turns share one batch, and each gets its own state', async () => {
    const s = openSqliteStorage(freshPath());
    const { apikey } = await s.apps.createApp({ name: 'storm' });
    const now = Date.now();
    await s.clients.touch(apikey, cid('first'), { startAfter: mid(0), now }); // the batch that starts the storm
    // One touch per event-loop turn, as enters arrive in a connect storm; note the turn each resolves in.
    let turn = 0;
    const resolvedIn: number[] = [];
    const touches: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      touches.push(
        s.clients.touch(apikey, cid(`c${i}`), { startAfter: mid(i), now }).then((state) => {
          assert.equal(state.lastAckedId, i);
          resolvedIn.push(turn);
        }),
      );
      await new Promise((resolve) => setImmediate(resolve));
      turn++;
    }
    await Promise.all(touches);
    const batches = new Set(resolvedIn).size;
    assert.ok(batches < 20, `20 touches in 20 turns ran in ${batches} batches: none waited for the next turn's`);
    assert.equal((await s.clients.get(apikey, cid('c19')))?.lastAckedId, 19);
    await s.close();
  });

  it('touch pacing: gathers while batches find company, never for touches far apart, and retries a lone one seldom', () => {
    const p = new TouchPacer();
    let t = 0;
    for (let i = 0; i < 5; i++) p.ran(1, false, (t += 100));
    assert.equal(p.gathering, false, 'one enter now and then: every batch at once');
    p.ran(3, false, (t += 100));
    assert.equal(p.gathering, true, 'several touches in one turn: a storm');
    p.ran(6, true, (t += 2));
    assert.equal(p.gathering, true, 'the wait found company: go on');
    p.ran(1, true, (t += 2));
    assert.equal(p.gathering, false, 'the wait found none: stop');
    // One client entering after another, each soon after the last: a retry only every TOUCH_PROBE_EVERY batches.
    for (let i = 0; i < TOUCH_PROBE_EVERY; i++) {
      p.ran(1, false, (t += 1));
      assert.equal(p.gathering, false, `batch ${i} after a wait that found nobody`);
    }
    p.ran(1, false, (t += 1));
    assert.equal(p.gathering, true, 'then it tries again');
  });

  it('an app changed through another handle on the same file is read anew; its own changes at once', async () => {
    const path = freshPath();
    const server = openSqliteStorage(path);
    const cli = openSqliteStorage(path);
    const { apikey, secret } = await server.apps.createApp({ name: 'before' });
    assert.equal((await server.apps.getApp(apikey))?.name, 'before');
    assert.equal((await server.apps.getApp(apikey))?.name, 'before'); // read again: the kept copy
    await cli.apps.updateApp(apikey, { name: 'after' });
    assert.equal((await server.apps.getApp(apikey))?.name, 'after');
    const rotated = await cli.apps.rotateSecret(apikey);
    assert.notEqual(rotated?.secret, secret);
    assert.equal((await server.apps.getApp(apikey))?.secret, rotated?.secret);
    const own = await server.apps.rotateSecret(apikey);
    assert.equal((await server.apps.getApp(apikey))?.secret, own?.secret);
    await server.apps.updateApp(apikey, { requireClientToken: true });
    assert.equal((await server.apps.getApp(apikey))?.requireClientToken, true);
    await cli.apps.deleteApp(apikey);
    assert.equal(await server.apps.getApp(apikey), undefined);
    const other = await cli.apps.createApp({ name: 'other' });
    assert.equal((await server.apps.getApp(other.apikey))?.name, 'other');
    await server.apps.deleteApp(other.apikey);
    assert.equal(await server.apps.getApp(other.apikey), undefined);
    await cli.close();
    await server.close();
  });

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

  void it('fails with a StoreError after close', async () => {
    const s = openSqliteStorage(':memory:');
    const { apikey } = await s.apps.createApp({ name: 'x' });
    await s.close();
    await assert.rejects(s.apps.getApp(asApiKey(apikey)), { name: 'StoreError', code: 'STORE_FAILED' });
    await assert.rejects(s.messages.readFor(apikey, { clientId: cid('c'), tags: ['t'] }, mid(0), 1), { code: 'STORE_FAILED' });
    await assert.rejects(s.clients.get(apikey, cid('c')), { code: 'STORE_FAILED' });
  });

  void it('sweeps more expired messages than one batch, with their targets and recipients', async () => {
    const path = freshPath();
    const s = openSqliteStorage(path);
    const { apikey } = await s.apps.createApp({ name: 'x' });
    await s.messages.append(message(apikey, 'kept', 3600, { all: false, clientIds: [cid('c1')], tags: ['vip'] }));
    const expired = 12_345;
    raw(path, (db) => {
      const insert = db.prepare(
        `INSERT INTO messages (apikey, id, target, target_all, event, data, ttl_seconds, created_at, expires_at)
         VALUES (?, ?, '{"all":false,"clientIds":["c1"],"tags":["vip"]}', 0, 'onMsg', 'null', 0, 0, 0)`,
      );
      const target = db.prepare('INSERT INTO message_targets (apikey, message_id, kind, value) VALUES (?, ?, ?, ?)');
      const recipient = db.prepare('INSERT INTO message_recipients (apikey, message_id, client_id) VALUES (?, ?, ?)');
      db.transaction(() => {
        for (let id = 1000; id < 1000 + expired; id++) {
          insert.run(apikey, id);
          target.run(apikey, id, 'c', 'c1');
          target.run(apikey, id, 't', 'vip');
          recipient.run(apikey, id, 'c1');
        }
      })();
    });
    assert.equal(await s.messages.sweepExpired(Date.now()), expired);
    assert.equal((await s.messages.history(apikey, { limit: 10 })).length, 1);
    const left = raw(path, (db) => ({
      targets: db.prepare('SELECT message_id, kind, value FROM message_targets ORDER BY kind').all(),
      recipients: db.prepare('SELECT message_id, client_id FROM message_recipients').all(),
    }));
    assert.deepEqual(left, {
      targets: [
        { message_id: 1, kind: 'c', value: 'c1' },
        { message_id: 1, kind: 't', value: 'vip' },
      ],
      recipients: [{ message_id: 1, client_id: 'c1' }],
    });
    await s.close();
  });

  void it('reads for a client through the target indexes, never scanning the messages', async () => {
    const path = freshPath();
    const s = openSqliteStorage(path);
    const { apikey } = await s.apps.createApp({ name: 'x' });
    // Many messages, few for c1; with ANALYZE statistics too, the plan must not change.
    raw(path, (db) => {
      const insert = db.prepare(
        `INSERT INTO messages (apikey, id, target, target_all, event, data, ttl_seconds, created_at, expires_at)
         VALUES (?, ?, ?, ?, 'onMsg', 'null', 3600, 0, 9e15)`,
      );
      const target = db.prepare('INSERT INTO message_targets (apikey, message_id, kind, value) VALUES (?, ?, ?, ?)');
      db.transaction(() => {
        for (let id = 1; id <= 5000; id++) {
          const all = id % 500 === 0;
          const [clientId, tag] = [`client-${id % 1000}`, `tag-${id % 50}`];
          insert.run(apikey, id, JSON.stringify({ all, clientIds: [clientId], tags: [tag] }), all ? 1 : 0);
          target.run(apikey, id, 'c', clientId);
          target.run(apikey, id, 't', tag);
        }
        db.prepare('UPDATE apps SET last_message_id = 5000').run();
      })();
    });
    const arm = 'SEARCH t USING PRIMARY KEY (apikey=? AND kind=? AND value=? AND message_id>?)';
    const check = (db: Database.Database, label: string): void => {
      for (const n of [0, 1, 2, 8, 9, 20]) {
        const tags = Array.from({ length: n }, (_, i) => `tag-${i}`);
        const plan = explainReadFor(db, apikey, { clientId: cid('client-7'), tags }, mid(0), 100);
        const shown = `${label}, ${n} tags:\n${plan.join('\n')}`;
        assert.ok(!plan.some((line) => /\bSCAN (messages|m|t)\b/.test(line)), shown);
        // That index is in id order but holds every target row of the app: reading it is a scan.
        assert.ok(!plan.some((line) => line.includes('message_targets_by_message')), shown);
        assert.ok(plan.some((line) => line.includes('SEARCH messages USING COVERING INDEX messages_for_all (apikey=? AND id>?)')), shown);
        // One arm for the clientId, one per tag up to 8, one for the rest.
        assert.equal(plan.filter((line) => line.includes(arm)).length, 1 + Math.min(n, 8) + (n > 8 ? 1 : 0), shown);
        assert.ok(plan.some((line) => line.includes('MERGE (UNION)')), shown);
      }
    };
    raw(path, (db) => check(db, 'no statistics'));
    raw(path, (db) => db.exec('ANALYZE'));
    raw(path, (db) => check(db, 'after ANALYZE'));
    // What the cascades do for each deleted message: an index search, not a table scan.
    raw(path, (db) => {
      const plan = (sql: string): string[] =>
        db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all('k', 1).map((r) => (r as { detail: string }).detail);
      assert.match(
        plan('DELETE FROM message_targets WHERE apikey = ? AND message_id = ?').join('\n'),
        /^SEARCH message_targets USING (COVERING )?INDEX message_targets_by_message \(apikey=\? AND message_id=\?\)$/,
      );
      assert.match(
        plan('DELETE FROM message_recipients WHERE apikey = ? AND message_id = ?').join('\n'),
        /^SEARCH message_recipients USING (COVERING )?INDEX sqlite_autoindex_message_recipients_1 \(apikey=\? AND message_id=\?\)$/,
      );
    });
    // And it reads the right ones.
    const read = await s.messages.readFor(apikey, { clientId: cid('client-7'), tags: [] }, mid(0), 100);
    assert.deepEqual(
      read.map((m) => m.id),
      [7, 500, 1000, 1007, 1500, 2000, 2007, 2500, 3000, 3007, 3500, 4000, 4007, 4500, 5000],
    );
    await s.close();
  });

  void it('migrates a version-1 file: backfills targets, then reads for clients', async () => {
    const path = freshPath();
    const target = (t: Target): string => JSON.stringify(t);
    raw(path, (db) => {
      db.pragma('journal_mode = WAL');
      db.exec(V1_SCHEMA);
      db.pragma('user_version = 1');
      db.prepare(`INSERT INTO apps (apikey, secret, name, last_message_id, created_at) VALUES ('old-app', 's', 'old', 6, 0)`).run();
      const insert = db.prepare(
        `INSERT INTO messages (apikey, id, target, event, data, ttl_seconds, created_at, expires_at)
         VALUES ('old-app', ?, ?, 'onMsg', ?, 3600, 0, ?)`,
      );
      const live = 9e15;
      insert.run(1, target(ALL), '"all"', live);
      insert.run(2, target({ all: false, clientIds: [cid('c1'), cid('c1')], tags: [] }), '"c1"', live);
      insert.run(3, target({ all: false, clientIds: [], tags: ['vip', 'gold'] }), '"vip gold"', live);
      insert.run(4, target({ all: false, clientIds: [], tags: [] }), '"nobody"', live);
      insert.run(5, target({ all: false, clientIds: [cid('c1')], tags: [] }), '"expired"', 0);
      // Could never be read back; the migration must not stop on it.
      insert.run(6, 'not json', '"broken"', live);
    });

    const s = openSqliteStorage(path);
    const apikey = asApiKey('old-app');
    try {
      const rows = raw(path, (db) => ({
        version: db.pragma('user_version', { simple: true }),
        messages: db.prepare('SELECT id, target_all, targeted, delivered, acked FROM messages ORDER BY id').raw().all(),
        targets: db.prepare('SELECT message_id, kind, value FROM message_targets ORDER BY message_id, kind, value').raw().all(),
        recipients: db.prepare('SELECT count(*) FROM message_recipients').pluck().get(),
      }));
      assert.deepEqual(rows, {
        version: SCHEMA_VERSION,
        messages: [
          [1, 1, 0, 0, 0],
          [2, 0, 0, 0, 0],
          [3, 0, 0, 0, 0],
          [4, 0, 0, 0, 0],
          [5, 0, 0, 0, 0],
          [6, 0, 0, 0, 0],
        ],
        targets: [
          [2, 'c', 'c1'],
          [3, 't', 'gold'],
          [3, 't', 'vip'],
          [5, 'c', 'c1'],
        ],
        recipients: 0,
      });
      const read = async (clientId: string, tags: string[] = []): Promise<unknown[]> =>
        (await s.messages.readFor(apikey, { clientId: cid(clientId), tags }, mid(0), 10)).map((m) => m.data);
      assert.deepEqual(await read('c1'), ['all', 'c1']);
      assert.deepEqual(await read('c2', ['gold']), ['all', 'vip gold']);
      assert.deepEqual(await read('c2'), ['all']);
      // Old messages have no receipts to report, but take new ones.
      assert.deepEqual(await s.messages.receipt(apikey, mid(2)), { receipt: { targeted: 0, delivered: 0, acked: 0, skipped: 0 }, recipients: [] });
      await s.messages.recordReceipts([{ apikey, id: mid(2), delivered: 1, acked: 1, deliveredTo: [cid('c1')], at: 1 }]);
      assert.deepEqual((await s.messages.receipt(apikey, mid(2)))?.receipt, { targeted: 0, delivered: 1, acked: 1, skipped: 0 });
      // New messages continue the ids and are read alongside the old ones.
      assert.equal(await s.messages.lastId(apikey), 6);
      const next = await s.messages.append(message(apikey, 'new c1', 3600, { all: false, clientIds: [cid('c1')], tags: [] }));
      assert.equal(next.id, 7);
      assert.deepEqual(await read('c1'), ['all', 'c1', 'new c1']);
      await s.clients.touch(apikey, cid('c1'), { startAfter: mid(6), now: 1 });
    } finally {
      await s.close();
    }
    // The upgraded file has exactly the schema of a new one.
    const fresh = freshPath();
    await openSqliteStorage(fresh).close();
    assert.deepEqual(schemaOf(path), schemaOf(fresh));
  });

  void it('sweeps clients after the retention it was opened with', async () => {
    const s = openSqliteStorage(':memory:', { clientRetentionMs: 1000 });
    const { apikey } = await s.apps.createApp({ name: 'x' });
    await s.clients.touch(apikey, cid('c1'), { startAfter: mid(0), now: 5000 });
    await s.messages.sweepExpired(6000);
    assert.ok(await s.clients.get(apikey, cid('c1')));
    await s.messages.sweepExpired(6001);
    assert.equal(await s.clients.get(apikey, cid('c1')), undefined);
    await s.close();
  });

  void it('reports a malformed clients row as a StoreError', async () => {
    const path = freshPath();
    const s = openSqliteStorage(path);
    const { apikey } = await s.apps.createApp({ name: 'x' });
    await s.clients.touch(apikey, cid('c1'), { startAfter: mid(0), addTags: ['a'], now: 1 });
    raw(path, (db) => db.prepare(`UPDATE clients SET tags = '{"a":1}'`).run());
    await assert.rejects(s.clients.get(apikey, cid('c1')), { name: 'StoreError', code: 'STORE_FAILED' });
    await assert.rejects(s.clients.touch(apikey, cid('c1'), { startAfter: mid(0), now: 2 }), { code: 'STORE_FAILED' });
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
