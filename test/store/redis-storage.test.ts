// RedisStorage: the Storage contract against a real Redis, plus what only Redis has —
// the stream layout, key cleanup, and failing fast / recovering when Redis goes away.
//
// Uses REDIS_URL (default redis://127.0.0.1:6379). Every storage gets its own key
// prefix and deletes its keys when closed; the outage tests run their own redis-server.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { freePort, startRedis, stopRedis } from '../fixtures/redis-server.js';
import { asClientId, asMessageId, type ApiKey } from '../../src/ids.js';
import { unlinkByPrefix } from '../../src/redis/client.js';
import { openRedisStorage, STORE_UNAVAILABLE, type RedisStorage } from '../../src/store/redis-storage.js';
import type { NewMessage, Storage, Target } from '../../src/store/store.js';
import { runStorageContract } from './contract.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const ALL: Target = { all: true, clientIds: [], tags: [] };
const cid = asClientId;
const mid = asMessageId;

const freshPrefix = (): string => `shaddock-test:${randomUUID()}:`;

// One plain connection for looking at keys behind the storage's back, and cleaning up.
const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
after(async () => {
  await admin.quit();
});

async function keysUnder(prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found.sort();
}

/** A storage on a fresh prefix whose close also deletes every key under that prefix. */
async function openFresh(prefix = freshPrefix()): Promise<{ storage: RedisStorage; prefix: string; close: () => Promise<void> }> {
  const storage = await openRedisStorage({ url: REDIS_URL, prefix });
  return {
    storage,
    prefix,
    close: async () => {
      await storage.close();
      await unlinkByPrefix(admin, prefix);
    },
  };
}

runStorageContract('RedisStorage', async (): Promise<Storage> => {
  const { storage, close } = await openFresh();
  return { apps: storage.apps, admins: storage.admins, messages: storage.messages, clients: storage.clients, close };
});

function message(apikey: ApiKey, data: unknown, over: Partial<NewMessage> = {}): NewMessage {
  return { apikey, targeted: 0, target: ALL, event: 'onMsg', data, ttlSeconds: 3600, ...over };
}

void describe('RedisStorage: Redis layout', () => {
  void it('keeps the log as a stream whose entry ids are the message ids, in order, also with two nodes appending', async () => {
    const a = await openFresh();
    const b = await openFresh(a.prefix);
    try {
      const app = (await a.storage.apps.createApp({ name: 'stream' })).apikey;
      const stored = await Promise.all(
        Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).storage.messages.append(message(app, i))),
      );
      const entries = await admin.xrange(`${a.prefix}app:${app}:log`, '-', '+');
      assert.deepEqual(
        entries.map(([id]) => id),
        Array.from({ length: 100 }, (_, i) => `${i + 1}-0`),
      );
      const byId = new Map(stored.map((m) => [m.id as number, m.data]));
      const read = await b.storage.messages.readAfter(app, mid(0), 200);
      assert.deepEqual(read.map((m) => m.data), read.map((m) => byId.get(m.id)));
      assert.equal(await a.storage.messages.lastId(app), 100);
    } finally {
      await b.storage.close();
      await a.close();
    }
  });

  void it('sweeps expired messages between live ones (different TTLs interleave), with their target and receipt keys', async () => {
    const { storage: s, prefix, close } = await openFresh();
    try {
      const app = (await s.apps.createApp({ name: 'ttl' })).apikey;
      const long = await s.messages.append(message(app, 'long', { target: { all: false, clientIds: [cid('c1')], tags: ['vip'] } }));
      const short = await s.messages.append(
        message(app, 'short', { ttlSeconds: 60, target: { all: false, clientIds: [cid('c2')], tags: ['gold'] } }),
      );
      const broadcast = await s.messages.append(message(app, 'short all', { ttlSeconds: 60 }));
      const later = await s.messages.append(message(app, 'later', { target: { all: false, clientIds: [cid('c1')], tags: [] } }));
      const sub = `${prefix}app:${app}:`;
      assert.ok((await keysUnder(sub)).includes(`${sub}target:c:c2`));

      assert.equal(await s.messages.sweepExpired(Math.max(short.expiresAt, broadcast.expiresAt)), 2);
      assert.deepEqual(
        (await admin.xrange(`${sub}log`, '-', '+')).map(([id]) => id),
        [`${long.id}-0`, `${later.id}-0`],
      );
      const keys = await keysUnder(sub);
      for (const gone of ['target:c:c2', 'target:t:gold', 'target:all', `msg:${short.id}:receipt`, `msg:${short.id}:recipients`, `msg:${broadcast.id}:receipt`]) {
        assert.ok(!keys.includes(`${sub}${gone}`), `${gone} should be gone`);
      }
      for (const kept of ['target:c:c1', 'target:t:vip', `msg:${long.id}:receipt`, `msg:${later.id}:recipients`]) {
        assert.ok(keys.includes(`${sub}${kept}`), `${kept} should be kept`);
      }
      assert.deepEqual(
        (await s.messages.readFor(app, { clientId: cid('c1'), tags: ['vip', 'gold'] }, mid(0), 10)).map((m) => m.id),
        [long.id, later.id],
      );
    } finally {
      await close();
    }
  });

  void it('reads past a long run of expired messages (more than one script call) without counting them', async () => {
    const { storage: s, close } = await openFresh();
    try {
      const app = (await s.apps.createApp({ name: 'backlog' })).apikey;
      const vip: Target = { all: false, clientIds: [], tags: ['vip'] };
      for (let i = 0; i < 2500; i += 500) {
        await Promise.all(Array.from({ length: 500 }, () => s.messages.append(message(app, 'dead', { ttlSeconds: 0, target: vip }))));
      }
      const live = await s.messages.append(message(app, 'live', { target: vip }));
      assert.deepEqual((await s.messages.readFor(app, { clientId: cid('x'), tags: ['vip'] }, mid(0), 1)).map((m) => m.id), [live.id]);
      assert.deepEqual((await s.messages.readAfter(app, mid(0), 1)).map((m) => m.id), [live.id]);
      assert.equal(await s.messages.sweepExpired(Date.now()), 2500);
    } finally {
      await close();
    }
  });

  void it('deletes every key of a deleted app and none of another', async () => {
    const { storage: s, prefix, close } = await openFresh();
    try {
      const gone = (await s.apps.createApp({ name: 'gone' })).apikey;
      const kept = (await s.apps.createApp({ name: 'kept' })).apikey;
      for (const app of [gone, kept]) {
        const m = await s.messages.append(message(app, 'x', { target: { all: false, clientIds: [cid('c1')], tags: ['vip'] } }));
        await s.messages.append(message(app, 'y'));
        await s.clients.touch(app, cid('c1'), { startAfter: mid(0), addTags: ['vip'], now: Date.now() });
        await s.messages.recordReceipts([{ apikey: app, id: m.id, delivered: 1, acked: 1, deliveredTo: [cid('c1')], at: 1 }]);
      }
      const keptBefore = await keysUnder(`${prefix}app:${kept}`);
      assert.ok((await keysUnder(`${prefix}app:${gone}`)).length >= 10);
      assert.equal(await s.apps.deleteApp(gone), true);
      assert.deepEqual(await keysUnder(`${prefix}app:${gone}`), []);
      assert.deepEqual(await keysUnder(`${prefix}app:${kept}`), keptBefore);
      // Late writes for the deleted app create nothing.
      await s.messages.recordReceipts([{ apikey: gone, id: mid(1), delivered: 1, acked: 1, deliveredTo: [cid('c1')], at: 1 }]);
      await s.clients.savePositions([{ apikey: gone, clientId: cid('c1'), ackedId: mid(5) }]);
      await assert.rejects(s.clients.touch(gone, cid('c1'), { startAfter: mid(0), now: 1 }), { code: 'STORE_UNKNOWN_APP' });
      assert.deepEqual(await keysUnder(`${prefix}app:${gone}`), []);
    } finally {
      await close();
    }
  });

  void it('reads an app written before the ntfy settings (no nanon/npub fields) with their defaults, and updates it', async () => {
    const { storage, prefix, close } = await openFresh();
    try {
      const app = await storage.apps.createApp({ name: 'older' });
      assert.equal(await admin.hdel(`${prefix}app:${app.apikey}`, 'nanon', 'npub'), 2);
      assert.deepEqual(await storage.apps.getApp(app.apikey), app);
      assert.deepEqual((await storage.apps.listApps()).find((a) => a.apikey === app.apikey), app);
      const updated = await storage.apps.updateApp(app.apikey, { ntfyAnonymousAccess: 'read-only' });
      assert.deepEqual(updated, { ...app, ntfyAnonymousAccess: 'read-only' });
    } finally {
      await close();
    }
  });

  void it('keeps keys of two prefixes apart', async () => {
    const a = await openFresh();
    const b = await openFresh();
    try {
      const app = (await a.storage.apps.createApp({ name: 'only in a' })).apikey;
      assert.equal(await b.storage.apps.getApp(app), undefined);
      assert.deepEqual(await b.storage.apps.listApps(), []);
      await assert.rejects(b.storage.messages.append(message(app, 1)), { code: 'STORE_UNKNOWN_APP' });
    } finally {
      await a.close();
      await b.close();
    }
  });

  void it('stores tags and target names with newlines and backslashes exactly', async () => {
    const { storage: s, prefix, close } = await openFresh();
    try {
      const app = (await s.apps.createApp({ name: 'odd' })).apikey;
      const odd = ['a\nb', 'back\\slash', '\\n', '\n', 'tail\\', 'x|y:z'];
      await s.clients.setTags(app, cid('c\n1'), odd);
      assert.deepEqual((await s.clients.get(app, cid('c\n1')))?.tags, odd);
      const touched = await s.clients.touch(app, cid('c\n1'), { startAfter: mid(0), addTags: ['new', 'a\nb'], now: Date.now() });
      assert.deepEqual(touched.tags, [...odd, 'new']);
      const m = await s.messages.append(message(app, 1, { target: { all: false, clientIds: [cid('c\n1'), cid('\\')], tags: odd } }));
      assert.deepEqual((await s.messages.get(app, m.id))?.target, m.target);
      assert.deepEqual((await s.messages.readFor(app, { clientId: cid('other'), tags: ['\\n'] }, mid(0), 5)).map((x) => x.id), [m.id]);
      assert.deepEqual((await s.messages.receipt(app, m.id))?.recipients, [{ clientId: 'c\n1' }, { clientId: '\\' }]);
      assert.equal(await s.messages.sweepExpired(m.expiresAt), 1);
      // Left: the (now empty) stream, and the client.
      assert.deepEqual(await keysUnder(`${prefix}app:${app}:`), [`${prefix}app:${app}:client:c\n1`, `${prefix}app:${app}:clients`, `${prefix}app:${app}:log`]);
    } finally {
      await close();
    }
  });

  void it('stores a message to 10 000 named clients (past Lua unpack limits)', async () => {
    const { storage: s, close } = await openFresh();
    try {
      const app = (await s.apps.createApp({ name: 'wide' })).apikey;
      const clientIds = Array.from({ length: 10_000 }, (_, i) => cid(`client-${i}`));
      const m = await s.messages.append(message(app, 'wide', { targeted: 10_000, target: { all: false, clientIds, tags: [] } }));
      assert.deepEqual((await s.messages.readFor(app, { clientId: cid('client-9999'), tags: [] }, mid(0), 5)).map((x) => x.id), [m.id]);
      const r = await s.messages.receipt(app, m.id);
      assert.equal(r?.recipients.length, 10_000);
      assert.equal(r?.recipients[9999]?.clientId, 'client-9999');
      await s.messages.recordReceipts([{ apikey: app, id: m.id, delivered: 10_000, acked: 0, deliveredTo: clientIds, at: 9 }]);
      assert.deepEqual((await s.messages.receipt(app, m.id))?.receipt, { targeted: 10_000, delivered: 10_000, acked: 0, skipped: 0 });
    } finally {
      await close();
    }
  });
});

// ---- outages: a redis-server of our own, killed and started again -----------------------

/** Retries `probe` until it resolves, for at most `ms`. */
async function eventually<T>(ms: number, probe: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await probe();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

void describe('RedisStorage: when Redis goes away', () => {
  void it('rejects every method at once with STORE_UNAVAILABLE, and works again when Redis is back, without a restart', async () => {
    const port = await freePort();
    let server = await startRedis(port);
    const s = await openRedisStorage({ url: `redis://127.0.0.1:${port}`, prefix: freshPrefix(), reconnectMaxDelayMs: 200 });
    try {
      const app = (await s.apps.createApp({ name: 'before' })).apikey;
      await s.messages.append(message(app, 'before'));

      await stopRedis(server);
      const calls: [string, () => Promise<unknown>][] = [
        ['createApp', () => s.apps.createApp({ name: 'x' })],
        ['getApp', () => s.apps.getApp(app)],
        ['listApps', () => s.apps.listApps()],
        ['updateApp', () => s.apps.updateApp(app, { name: 'y' })],
        ['rotateSecret', () => s.apps.rotateSecret(app)],
        ['deleteApp', () => s.apps.deleteApp(app)],
        ['setAdminPassword', () => s.admins.setAdminPassword('root', 'pw')],
        ['verifyAdmin', () => s.admins.verifyAdmin('root', 'pw')],
        ['listAdmins', () => s.admins.listAdmins()],
        ['append', () => s.messages.append(message(app, 'during'))],
        ['get', () => s.messages.get(app, mid(1))],
        ['history', () => s.messages.history(app, { limit: 10 })],
        ['readAfter', () => s.messages.readAfter(app, mid(0), 10)],
        ['readFor', () => s.messages.readFor(app, { clientId: cid('c1'), tags: ['t'] }, mid(0), 10)],
        ['lastId', () => s.messages.lastId(app)],
        ['recordReceipts', () => s.messages.recordReceipts([{ apikey: app, id: mid(1), delivered: 1, acked: 0, at: 1 }])],
        ['receipt', () => s.messages.receipt(app, mid(1))],
        ['sweepExpired', () => s.messages.sweepExpired(Date.now())],
        ['clients.get', () => s.clients.get(app, cid('c1'))],
        ['touch', () => s.clients.touch(app, cid('c1'), { startAfter: mid(0), now: 1 })],
        ['setTags', () => s.clients.setTags(app, cid('c1'), ['t'])],
        ['savePositions', () => s.clients.savePositions([{ apikey: app, clientId: cid('c1'), ackedId: mid(1) }])],
      ];
      for (const [name, call] of calls) {
        const started = Date.now();
        await assert.rejects(call(), (err: unknown) => {
          assert.ok(err instanceof Error);
          assert.equal((err as { code?: unknown }).code, STORE_UNAVAILABLE, `${name}: ${err.message}`);
          assert.match(err.message, /Redis unavailable/, name);
          return true;
        });
        assert.ok(Date.now() - started < 1000, `${name} took ${Date.now() - started} ms to fail`);
      }

      // Back on the same port (empty: no persistence): the same object works again.
      server = await startRedis(port);
      const again = await eventually(5000, () => s.apps.createApp({ name: 'after' }));
      assert.equal((await s.messages.append(message(again.apikey, 'after'))).id, 1);
      assert.deepEqual((await s.messages.readAfter(again.apikey, mid(0), 10)).map((m) => m.data), ['after']);
    } finally {
      await s.close();
      await stopRedis(server);
    }
  });

  void it('fails a command in flight when Redis stops answering (commandTimeoutMs), then recovers', async () => {
    const port = await freePort();
    const server = await startRedis(port);
    const s = await openRedisStorage({ url: `redis://127.0.0.1:${port}`, prefix: freshPrefix(), commandTimeoutMs: 300 });
    try {
      const app = (await s.apps.createApp({ name: 'hang' })).apikey;
      server.kill('SIGSTOP');
      const started = Date.now();
      await assert.rejects(s.messages.lastId(app), { code: STORE_UNAVAILABLE });
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 1000, `took ${took} ms`);
      server.kill('SIGCONT');
      assert.equal(await eventually(3000, () => s.messages.lastId(app)), 0);
    } finally {
      server.kill('SIGCONT');
      await s.close();
      await stopRedis(server);
    }
  });

  void it('fails to open with STORE_UNAVAILABLE when nothing listens', async () => {
    const port = await freePort();
    const started = Date.now();
    await assert.rejects(openRedisStorage({ url: `redis://127.0.0.1:${port}`, prefix: freshPrefix(), connectTimeoutMs: 300 }), {
      code: STORE_UNAVAILABLE,
    });
    assert.ok(Date.now() - started < 1500);
  });
});
