// RedisBus against a real Redis: two buses on one prefix stand for two nodes.
// Uses REDIS_URL (default redis://127.0.0.1:6379); the outage test runs its own redis-server.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { freePort, startRedis, stopRedis } from '../fixtures/redis-server.js';
import { RedisMonitor } from '../fixtures/redis-monitor.js';
import type { BusEvent } from '../../src/bus/bus.js';
import { decodeBusEvent, RedisBus } from '../../src/bus/redis-bus.js';
import { asApiKey, asClientId, asMessageId } from '../../src/ids.js';
import type { StoredMessage } from '../../src/store/store.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const freshPrefix = (): string => `shaddock-test:${randomUUID()}:`;
const app = asApiKey('app-1');

function stored(id: number, data: unknown = { n: id }): StoredMessage {
  return {
    apikey: app,
    id: asMessageId(id),
    targeted: 2,
    target: { all: false, clientIds: [asClientId('c1'), asClientId('设备')], tags: ['vip'] },
    event: 'onMsg',
    data,
    ttlSeconds: 60,
    createdAt: 1_700_000_000_000,
    expiresAt: 1_700_000_060_000,
  };
}

const message = (id: number, data?: unknown): BusEvent => ({ kind: 'message', msg: stored(id, data) });

/** Collects a bus's events; `until(n)` waits (with a deadline) until it has n. */
function collect(bus: RedisBus): { events: BusEvent[]; until: (n: number, ms?: number) => Promise<void> } {
  const events: BusEvent[] = [];
  const waiters: (() => void)[] = [];
  bus.subscribe((e) => {
    events.push(e);
    for (const w of waiters.splice(0)) w();
  });
  return {
    events,
    until: async (n, ms = 3000) => {
      const deadline = Date.now() + ms;
      while (events.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`got ${events.length} of ${n} events`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

void describe('RedisBus', () => {
  void it('carries every kind of event to every node, the publisher included, each node in publish order', async () => {
    const prefix = freshPrefix();
    const a = await RedisBus.open({ url: REDIS_URL, prefix });
    const b = await RedisBus.open({ url: REDIS_URL, prefix });
    try {
      const atA = collect(a);
      const atB = collect(b);
      const fromA: BusEvent[] = [
        message(1, { text: '你好 🍊', nested: [1, null, { ok: true }] }),
        { kind: 'presence', change: 'entered', apikey: app, clientId: asClientId('c1'), node: 'a', connector: 'mqtt', at: 1700000000000 },
        { kind: 'kick', apikey: app, clientId: asClientId('c1'), exceptNode: 'a', reason: 'replaced' },
        { kind: 'kick', apikey: app, exceptNode: 'a', reason: 'app deleted' },
        ...Array.from({ length: 100 }, (_, i) => message(i + 2)),
      ];
      const fromB: BusEvent[] = Array.from({ length: 100 }, (_, i) => message(1000 + i));
      // Interleaved, without waiting in between: each node's own order must still hold.
      await Promise.all([...fromA.map((e) => a.publish(e)), ...fromB.map((e) => b.publish(e))]);
      const total = fromA.length + fromB.length;
      await Promise.all([atA.until(total), atB.until(total)]);
      for (const seen of [atA.events, atB.events]) {
        const ids = (events: readonly BusEvent[]): number[] => events.map((e) => (e.kind === 'message' ? e.msg.id : -1));
        assert.deepEqual(seen.filter((e) => fromA.some((x) => JSON.stringify(x) === JSON.stringify(e))), fromA);
        assert.deepEqual(ids(seen.filter((e) => e.kind === 'message' && e.msg.id >= 1000)), ids(fromB));
        assert.equal(seen.length, total);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  void it('sends one PUBLISH per event, whatever the number of nodes (MONITOR)', async () => {
    const prefix = freshPrefix();
    const channel = `${prefix}bus`;
    const nodes = await Promise.all([1, 2, 3].map(() => RedisBus.open({ url: REDIS_URL, prefix })));
    const monitor = await RedisMonitor.open(REDIS_URL);
    try {
      const publishes: string[][] = [];
      monitor.onCommand((args) => {
        if (args[0]?.toLowerCase() === 'publish' && args[1] === channel) publishes.push(args);
      });
      const counters = nodes.map((n) => collect(n));
      for (let i = 1; i <= 20; i++) await nodes[i % 3]?.publish(message(i));
      await Promise.all(counters.map((c) => c.until(20)));
      // MONITOR lines can trail the subscribers' copies a little.
      const deadline = Date.now() + 2000;
      while (publishes.length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(publishes.length, 20);
      // Three subscribers (one per node) on the one channel: each PUBLISH reached all three.
      const probe = new Redis(REDIS_URL);
      try {
        assert.deepEqual(await probe.pubsub('NUMSUB', channel), [channel, 3]);
      } finally {
        probe.disconnect();
      }
    } finally {
      monitor.close();
      await Promise.all(nodes.map((n) => n.close()));
    }
  });

  void it('ignores what is not a bus event, and keeps delivering', async () => {
    const prefix = freshPrefix();
    const bus = await RedisBus.open({ url: REDIS_URL, prefix });
    const raw = new Redis(REDIS_URL);
    try {
      const seen = collect(bus);
      let thrown = 0;
      bus.subscribe(() => {
        thrown++;
        throw new Error('a failing handler');
      });
      for (const junk of ['not json', '[]', '{"kind":"message","msg":{"id":"1"}}', '{"kind":"future"}', '{"kind":"presence","change":"entered"}']) {
        await raw.publish(`${prefix}bus`, junk);
      }
      await bus.publish(message(7));
      await seen.until(1);
      assert.deepEqual(seen.events, [message(7)]);
      assert.equal(thrown, 1);
    } finally {
      raw.disconnect();
      await bus.close();
    }
  });

  void it('keeps prefixes apart', async () => {
    const a = await RedisBus.open({ url: REDIS_URL, prefix: freshPrefix() });
    const b = await RedisBus.open({ url: REDIS_URL, prefix: freshPrefix() });
    try {
      const atA = collect(a);
      const atB = collect(b);
      await b.publish(message(2));
      await a.publish(message(1));
      await atA.until(1);
      await atB.until(1);
      assert.deepEqual(atA.events, [message(1)]);
      assert.deepEqual(atB.events, [message(2)]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  void it('decodes only well-formed events', () => {
    assert.deepEqual(decodeBusEvent(JSON.stringify(message(3))), message(3));
    assert.equal(decodeBusEvent(JSON.stringify({ ...message(3), msg: { ...stored(3), id: 1.5 } })), undefined);
    assert.equal(decodeBusEvent(JSON.stringify({ kind: 'presence', change: 'entered', apikey: 'a', clientId: 'c', node: 'n', connector: 'telnet' })), undefined);
    assert.equal(decodeBusEvent(JSON.stringify({ kind: 'kick', apikey: 'a', clientId: 7, exceptNode: 'n', reason: 'r' })), undefined);
    assert.equal(decodeBusEvent('{"kind":"message"}'), undefined);
  });
});

// ---- outage: a redis-server of our own --------------------------------------------------

void describe('RedisBus: when Redis goes away', () => {
  void it('rejects publish at once, then resubscribes and says so when Redis is back', async () => {
    const port = await freePort();
    let server = await startRedis(port);
    const options = { url: `redis://127.0.0.1:${port}`, prefix: freshPrefix(), reconnectMaxDelayMs: 100 };
    const a = await RedisBus.open(options);
    const b = await RedisBus.open(options);
    try {
      const atB = collect(b);
      let resubscribed = 0;
      b.onResubscribed(() => resubscribed++);
      await a.publish(message(1));
      await atB.until(1);

      await stopRedis(server);
      const started = Date.now();
      await assert.rejects(a.publish(message(2)), { name: 'RedisUnavailableError', code: 'REDIS_UNAVAILABLE' });
      assert.ok(Date.now() - started < 1000);

      server = await startRedis(port);
      const deadline = Date.now() + 5000;
      while (resubscribed === 0) {
        assert.ok(Date.now() < deadline, 'the subscriber did not come back');
        await new Promise((r) => setTimeout(r, 20));
      }
      // The publisher reconnects on its own too.
      for (;;) {
        try {
          await a.publish(message(3));
          break;
        } catch (err) {
          assert.ok(Date.now() < deadline, String(err));
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      await atB.until(2);
      assert.deepEqual(atB.events, [message(1), message(3)]);
      assert.equal(resubscribed, 1);
    } finally {
      await a.close();
      await b.close();
      await stopRedis(server);
    }
  });
});
