import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_DATA_DEPTH, MAX_EVENT_BYTES, checkData, checkEvent, checkPush, dataDepthOver } from '../../src/hub/push-rules.js';
import { Hub, HubError } from '../../src/hub/hub.js';
import { LocalBus } from '../../src/bus/local-bus.js';
import type { Bus, BusEvent } from '../../src/bus/bus.js';
import { openSqliteStorage } from '../../src/store/sqlite-storage.js';
import { openRedisStorage } from '../../src/store/redis-storage.js';
import { unlinkByPrefix } from '../../src/redis/client.js';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { createLogger } from '../../src/log.js';
import { asClientId, asMessageId } from '../../src/ids.js';
import type { App, Storage, StoredMessage } from '../../src/store/store.js';
import type { PushEncoder } from '../../src/hub/connection.js';
import { CountingEncoder, FakeConnection, type Encoded } from './fake-connection.js';

const all = { all: true, clientIds: [], tags: [] };
const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** `{"a":{"a":…}}` nested `n` deep, built without recursion. */
function nested(n: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = { a: v };
  return v;
}

describe('push rules', () => {
  it('counts an event name in UTF-8 bytes, not characters (a Pomelo route length is one byte)', () => {
    assert.equal(checkEvent('é'.repeat(127)), undefined); // 254 bytes
    const bad = checkEvent('é'.repeat(130)); // 130 characters, 260 bytes
    assert.equal(bad?.field, 'event');
    assert.match(bad!.message, /^event: 260 bytes in UTF-8, at most 255/);
    assert.equal(checkEvent('e'.repeat(MAX_EVENT_BYTES)), undefined);
    assert.equal(checkEvent('e'.repeat(MAX_EVENT_BYTES + 1))?.field, 'event');
    assert.equal(checkEvent('😀'.repeat(64))?.field, 'event'); // 256 bytes
  });

  it('refuses empty names, non-strings, C0 controls, DEL and lone surrogates', () => {
    for (const bad of ['', 5, null, 'a\nid: 9', 'a\r', 'tab\there', 'nul\u0000', 'del\u007f', 'x\ud800', '\udc00y']) {
      assert.equal(checkEvent(bad)?.field, 'event', JSON.stringify(bad));
    }
    for (const good of ['onMsg', 'news.推送', '😀', 'a b', 'é'.repeat(100)]) assert.equal(checkEvent(good), undefined, good);
  });

  it('measures nesting without recursion: 5,000 deep is refused, not a stack overflow', () => {
    assert.equal(dataDepthOver(1, 0), false);
    assert.equal(dataDepthOver({}, 0), true);
    assert.equal(dataDepthOver([[1]], 2), false);
    assert.equal(dataDepthOver([[1]], 1), true);
    assert.equal(checkData(nested(MAX_DATA_DEPTH)), undefined);
    assert.match(checkData(nested(MAX_DATA_DEPTH + 1))!.message, /^data: nested deeper than 64/);
    let deep: unknown = [];
    for (let i = 0; i < 200_000; i++) deep = [deep];
    assert.equal(checkData(deep)?.field, 'data');
    // A Buffer (a socket.io binary attachment) is a value, not 1,000 children.
    assert.equal(checkData({ b: Buffer.alloc(1000) }), undefined);
    assert.equal(checkData(undefined)?.field, 'data');
    assert.equal(checkData(null), undefined);
  });

  it('checks the target and the ttl', () => {
    const push = { event: 'onMsg', data: 1 };
    assert.equal(checkPush({ ...push, target: all }), undefined);
    assert.equal(checkPush({ ...push, target: { all: false, clientIds: [], tags: [] } })?.field, 'to');
    assert.equal(checkPush({ ...push, target: { all: false, clientIds: [asClientId('x'.repeat(257))], tags: [] } })?.field, 'to');
    assert.equal(checkPush({ ...push, target: { all: false, clientIds: [], tags: ['t'.repeat(129)] } })?.field, 'to');
    assert.equal(checkPush({ ...push, target: all, ttlSeconds: -1 })?.field, 'ttl');
    assert.equal(checkPush({ ...push, target: all, ttlSeconds: 0 }), undefined, 'ttl 0: delivered now or never');
    assert.equal(checkPush({ ...push, target: all, ttlSeconds: 1.5 })?.field, 'ttl');
    assert.equal(checkPush({ ...push, target: all, ttlSeconds: 366 * 86400 })?.field, 'ttl');
    assert.equal(checkPush({ ...push, target: all, ttlSeconds: 3600 }), undefined);
  });
});

/** A bus that fails to take a message (a Redis outage), and one whose subscribers throw. */
class FailingBus implements Bus {
  publish(_event: BusEvent): Promise<void> {
    return Promise.reject(new Error('bus down'));
  }
  subscribe(): void {}
  onResubscribed(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** An encoder that cannot encode messages (what an over-long Pomelo route did). */
class ThrowingEncoder extends CountingEncoder implements PushEncoder<Encoded> {
  override encodeMessage(): Encoded {
    throw new Error('cannot encode');
  }
}

describe('Hub.publish: the door of every push', () => {
  let storage: Storage;
  let app: App;

  beforeEach(async () => {
    storage = openSqliteStorage(':memory:');
    app = await storage.apps.createApp({ name: 'a' });
  });
  afterEach(async () => {
    await storage.close();
  });

  it('refuses a push that breaks a rule with PUSH_INVALID, and stores nothing', async () => {
    const hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 20 });
    for (const req of [
      { event: 'é'.repeat(130), data: 1 },
      { event: 'a\nb', data: 1 },
      { event: 'onMsg', data: nested(5000) },
    ]) {
      await assert.rejects(
        hub.publish({ apikey: app.apikey, target: all, ...req }),
        (err: unknown) => err instanceof HubError && err.code === 'PUSH_INVALID',
      );
    }
    assert.equal(await storage.messages.lastId(app.apikey), 0);
    await hub.close();
  });

  it('never answers an error once the message is stored: bus and fan-out failures are logged', async () => {
    const logged: string[] = [];
    const logger = createLogger('silent');
    logger.error = ((obj: unknown, msg?: string) => {
      logged.push(msg ?? String(obj));
    }) as typeof logger.error;
    const hub = new Hub({ storage, bus: new FailingBus(), logger, maxBufferedBytes: 1 << 20 });
    const r = await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 1 });
    assert.equal(r.message.id, 1);
    assert.equal(logged.length, 1);
    await hub.close();

    // The local bus delivers synchronously: a throw in the fan-out used to reject publish.
    const local = new Hub({ storage, bus: new LocalBus(), logger, maxBufferedBytes: 1 << 20 });
    await local.enterClient(new FakeConnection(new ThrowingEncoder()), { apikey: app.apikey, clientId: 'c' });
    const r2 = await local.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 2 });
    assert.equal(r2.message.id, 2);
    assert.equal((await storage.messages.get(app.apikey, r2.message.id))?.data, 2);
    // The encoder's failure is that connection's alone: recorded as skipped, not thrown.
    await local.flush();
    assert.equal((await storage.messages.receipt(app.apikey, r2.message.id))?.receipt.skipped, 1);
    await local.close();
  });

  for (const backend of ['sqlite', 'redis'] as const) {
    it(`stores one manager connection's pushes in the order it made them, whatever each awaits (${backend})`, async () => {
      // Redis: ids follow the order append sends its scripts on the one connection.
      const prefix = `shaddock-test:${randomUUID()}:`;
      const store = backend === 'sqlite' ? storage : await openRedisStorage({ url: REDIS_URL, prefix });
      const own = backend === 'sqlite' ? app : await store.apps.createApp({ name: 'a' });
      const hub = new Hub({ storage: store, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 20 });
      try {
        const manager = new FakeConnection(new CountingEncoder());
        await hub.enterManager(manager, own.apikey, own.secret, undefined);
        // A broadcast awaits an online count a targeted push does not; a bad push in the
        // middle is refused without letting the next one overtake those before it.
        const pushes: Promise<unknown>[] = [];
        for (let i = 0; i < 30; i++) {
          const target = i % 2 === 0 ? all : { all: false, clientIds: [asClientId('c')], tags: [] };
          const event = i === 15 ? 'bad\n' : 'onMsg';
          pushes.push(hub.publishAsManager(manager, { apikey: own.apikey, target, event, data: { seq: i } }).catch(() => undefined));
        }
        await Promise.all(pushes);
        const stored: StoredMessage[] = [];
        for (let id = 1; id <= 29; id++) stored.push((await store.messages.get(own.apikey, asMessageId(id)))!);
        assert.deepEqual(
          stored.map((m) => (m.data as { seq: number }).seq),
          Array.from({ length: 30 }, (_, i) => i).filter((i) => i !== 15),
        );
      } finally {
        await hub.close();
        if (store !== storage) {
          await store.close();
          const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
          await unlinkByPrefix(admin, prefix);
          admin.disconnect();
        }
      }
    });
  }
});
