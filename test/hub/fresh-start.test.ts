// The hub's `resumeAfter: 'fresh'` (a new session: MQTT clean session / clean start) against
// 'latest' (from now on, the stored position kept), and `ClientMember.resumed` (MQTT's
// "session present").
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Hub, type ClientEnter } from '../../src/hub/hub.js';
import { LocalBus } from '../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../src/store/sqlite-storage.js';
import { createLogger } from '../../src/log.js';
import { asClientId } from '../../src/ids.js';
import type { App, Storage, Target } from '../../src/store/store.js';
import type { Connection } from '../../src/hub/connection.js';
import { CountingEncoder, FakeConnection } from './fake-connection.js';

const all: Target = { all: true, clientIds: [], tags: [] };
const to = (...ids: string[]): Target => ({ all: false, clientIds: ids.map(asClientId), tags: [] });
const ids = (c: FakeConnection): number[] => c.written.filter((w) => w.kind === 'message').map((w) => (w.body as { id: number }).id);

describe("Hub: a fresh start discards the client's stored position", () => {
  let storage: Storage;
  let hub: Hub;
  let app: App;
  const enc = new CountingEncoder();

  beforeEach(async () => {
    storage = openSqliteStorage(':memory:');
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
    assert.equal(resumed(first), false, 'never seen');
    leave(first);
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
