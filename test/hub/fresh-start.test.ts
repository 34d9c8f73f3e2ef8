// The hub's `resumeAfter: 'fresh'` (a new session: MQTT clean session / clean start) against
// 'latest' (from now on, the stored position kept), and `ClientMember.resumed` (MQTT's
// "session present").
import { describe, it, beforeEach, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Hub, type ClientEnter } from '../../src/hub/hub.js';
import { LocalBus } from '../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../src/store/sqlite-storage.js';
import { openRedisStorage } from '../../src/store/redis-storage.js';
import { unlinkByPrefix } from '../../src/redis/client.js';
import { createLogger } from '../../src/log.js';
import { asClientId } from '../../src/ids.js';
import type { App, Storage, Target } from '../../src/store/store.js';
import type { Connection } from '../../src/hub/connection.js';
import { CountingEncoder, FakeConnection } from './fake-connection.js';
import { waitFor } from '../fixtures/wait.js';

const all: Target = { all: true, clientIds: [], tags: [] };
const to = (...ids: string[]): Target => ({ all: false, clientIds: ids.map(asClientId), tags: [] });
const ids = (c: FakeConnection): number[] => c.written.filter((w) => w.kind === 'message').map((w) => (w.body as { id: number }).id);

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
// For deleting a Redis storage's keys after each test (the shared Redis is never flushed).
const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
after(async () => {
  await admin.quit();
});

/** Both stores: the session's position and "seen before" come from the store's touch. */
const STORES: readonly (readonly [string, () => Promise<Storage>])[] = [
  ['SQLite', () => Promise.resolve(openSqliteStorage(':memory:'))],
  [
    'Redis',
    async () => {
      const prefix = `shaddock-test:${randomUUID()}:`;
      const storage = await openRedisStorage({ url: REDIS_URL, prefix });
      return {
        apps: storage.apps,
        admins: storage.admins,
        messages: storage.messages,
        clients: storage.clients,
        close: async () => {
          await storage.close();
          await unlinkByPrefix(admin, prefix);
        },
      };
    },
  ],
];

for (const [storeName, openStorage] of STORES) {
  describe(`Hub (${storeName}): a fresh start discards the client's stored position`, () => {
    let storage: Storage;
    let hub: Hub;
    let app: App;
    const enc = new CountingEncoder();

    beforeEach(async () => {
      storage = await openStorage();
      hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 30, receiptFlushMs: 10_000 });
      app = await storage.apps.createApp({ name: 'fresh' });
    });
    afterEach(async () => {
      await hub.close();
      await storage.close();
    });

    const publish = async (target: Target): Promise<number> => (await hub.publish({ apikey: app.apikey, target, event: 'onMsg', data: 'x' })).message.id;

    async function enter(clientId: string, resumeAfter: ClientEnter['resumeAfter']): Promise<FakeConnection> {
      const conn = new FakeConnection(enc);
      const r = await hub.enterClient(conn, { apikey: app.apikey, clientId, ...(resumeAfter !== undefined ? { resumeAfter } : {}) });
      await r.replayed;
      return conn;
    }
    const leave = (conn: FakeConnection): void => {
      conn.close('gone');
      hub.leave(conn);
    };
    const resumed = (conn: FakeConnection): boolean => {
      const m = (conn as Connection).hubMember;
      return m?.role === 'client' && m.resumed;
    };

    for (const flushed of [false, true]) {
      it(`a later 'stored' enter does not get what was pushed before the fresh one (${flushed ? 'from the store' : 'from this node'})`, async () => {
        leave(await enter('dev', 'stored'));
        await publish(to('dev'));
        await publish(all);
        const fresh = await enter('dev', 'fresh');
        assert.deepEqual(ids(fresh), []);
        leave(fresh);
        if (flushed) {
          await hub.flush();
          assert.equal((await storage.clients.get(app.apikey, asClientId('dev')))?.lastAckedId, 2);
        }
        const again = await enter('dev', 'stored');
        const live = await publish(to('dev'));
        assert.deepEqual(ids(again), [live]);
      });
    }

    it("'latest' skips what is stored but keeps the position: a later 'stored' enter gets it", async () => {
      leave(await enter('dev', 'stored'));
      const queued = await publish(to('dev'));
      const latest = await enter('dev', 'latest');
      assert.deepEqual(ids(latest), []);
      leave(latest);
      await hub.flush();
      const again = await enter('dev', 'stored');
      assert.deepEqual(ids(again), [queued]);
    });

    it("reports 'resumed' only for a 'stored' enter of a client the store knew", async () => {
      const first = await enter('dev', 'stored');
      const firstAt = Date.now(); // not before the store's touch
      assert.equal(resumed(first), false, 'never seen');
      leave(first);
      // The hub tells a new client by its first-seen time being this enter's (the store's
      // touch sets it so): a client first seen in the same millisecond counts as new.
      await waitFor(() => Date.now() > firstAt, { timeoutMs: 1000, message: 'the clock to move on' });
      const second = await enter('dev', 'stored');
      assert.equal(resumed(second), true);
      leave(second);
      const fresh = await enter('dev', 'fresh');
      assert.equal(resumed(fresh), false);
      // The same client replacing its own connection on this node resumes from it.
      const replacing = await enter('dev', 'stored');
      assert.equal(resumed(replacing), true);
      assert.equal(fresh.closedWith, 'replaced');
    });
  });
}
