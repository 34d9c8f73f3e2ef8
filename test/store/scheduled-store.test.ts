// The scheduled-message stores (src/store/scheduled-*.ts): durable once added, due in
// order, and each due entry claimed by one caller at a time — two handles on one SQLite
// file, or two nodes on one Redis, never both get it (the lease is the claim).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { ApiKey } from '../../src/ids.js';
import type { ScheduledStore } from '../../src/store/scheduled-store.js';
import { openSqliteScheduledStore } from '../../src/store/scheduled-sqlite.js';
import { openRedisScheduledStore } from '../../src/store/scheduled-redis.js';
import { unlinkByPrefix } from '../../src/redis/client.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const APP = 'app-1' as ApiKey;
const T0 = 1_800_000_000_000;

interface Backend {
  readonly name: string;
  /** Two stores over the same data (two processes / two nodes), and a way to reopen. */
  open(): Promise<{ a: ScheduledStore; b: ScheduledStore; reopen(): Promise<ScheduledStore>; cleanup(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'shaddock-sched-'));
      const path = join(dir, 'shaddock.db');
      const a = openSqliteScheduledStore(path);
      const b = openSqliteScheduledStore(path);
      return {
        a,
        b,
        reopen: () => Promise.resolve(openSqliteScheduledStore(path)),
        async cleanup() {
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'Redis',
    async open() {
      const prefix = `shaddock-test:${randomUUID()}:`;
      const a = await openRedisScheduledStore({ url: REDIS_URL, prefix });
      const b = await openRedisScheduledStore({ url: REDIS_URL, prefix });
      return {
        a,
        b,
        reopen: () => openRedisScheduledStore({ url: REDIS_URL, prefix }),
        async cleanup() {
          const admin = new Redis(REDIS_URL);
          await unlinkByPrefix(admin, prefix);
          admin.disconnect();
        },
      };
    },
  },
];

for (const backend of backends) {
  describe(`${backend.name} scheduled-message store`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    after(async () => {
      for (const c of cleanups) await c();
    });

    it('add is durable (a reopened store sees it); claimDue returns only what is due, by due time', async () => {
      const { a, b, reopen, cleanup } = await backend.open();
      cleanups.push(cleanup);
      const late = await a.add({ apikey: APP, dueAt: T0 + 20_000, tags: ['t'], event: 'ntfy', data: { message: 'late' } }, T0);
      const early = await a.add({ apikey: APP, dueAt: T0 + 10_000, tags: ['t'], event: 'ntfy', data: { message: 'early' }, ttlSeconds: 60 }, T0);
      assert.ok(early.id > late.id, 'ids increase');
      await a.close();
      await b.close();
      const c = await reopen();
      assert.deepEqual(await c.claimDue(T0 + 5_000, 60_000, 10), [], 'nothing due yet');
      assert.deepEqual((await c.pending(APP, ['t'], 10)).map((m) => m.data), [{ message: 'early' }, { message: 'late' }]);
      assert.deepEqual(await c.pending(APP, ['other'], 10), []);
      const due = await c.claimDue(T0 + 30_000, 60_000, 10);
      assert.deepEqual(due.map((m) => [m.id, m.dueAt, m.tags, m.event, m.data, m.ttlSeconds]), [
        [early.id, T0 + 10_000, ['t'], 'ntfy', { message: 'early' }, 60],
        [late.id, T0 + 20_000, ['t'], 'ntfy', { message: 'late' }, undefined],
      ]);
      await c.close();
    });

    it('a due entry is claimed once: the other handle gets nothing until the lease runs out; done forgets it', async () => {
      const { a, b, cleanup } = await backend.open();
      cleanups.push(cleanup);
      const entries = [];
      for (let i = 0; i < 20; i++) entries.push(await a.add({ apikey: APP, dueAt: T0 + i, tags: ['t'], event: 'ntfy', data: i }, T0));
      // Both race for the same due entries.
      const [x, y] = await Promise.all([a.claimDue(T0 + 100, 60_000, 50), b.claimDue(T0 + 100, 60_000, 50)]);
      const ids = [...x, ...y].map((m) => m.id).sort((p, q) => p - q);
      assert.deepEqual(ids, entries.map((e) => e.id), 'every entry claimed exactly once between the two');
      assert.deepEqual(await b.claimDue(T0 + 100, 60_000, 50), [], 'leased');
      // A claimer that died: after the lease another takes it.
      const retaken = await b.claimDue(T0 + 100 + 60_001, 60_000, 50);
      assert.equal(retaken.length, 20);
      for (const m of retaken) await b.done(m.id);
      assert.deepEqual(await a.claimDue(T0 + 10 * 60_000, 60_000, 50), []);
      assert.deepEqual(await a.pending(APP, ['t'], 50), []);
      await a.close();
      await b.close();
    });
  });
}
