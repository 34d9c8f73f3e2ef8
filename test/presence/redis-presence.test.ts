// RedisPresence against a real Redis: two presences with two node ids on one prefix
// stand for two nodes. Small heartbeats and timeouts; waits have deadlines.
// Uses REDIS_URL (default redis://127.0.0.1:6379); every test deletes its keys.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { asApiKey, asClientId } from '../../src/ids.js';
import type { PresenceEntry } from '../../src/presence/presence.js';
import { RedisPresence, type RedisPresenceOptions } from '../../src/presence/redis-presence.js';
import { unlinkByPrefix } from '../../src/redis/client.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const app = asApiKey('app-1');
const other = asApiKey('app-2');
const cid = asClientId;

const raw = new Redis(REDIS_URL);
after(async () => {
  await raw.quit();
});

function entry(clientId: string, node: string, connectedAt = 1000): PresenceEntry {
  return { clientId: cid(clientId), node, connector: 'ws', connectedAt };
}

const byClient = (entries: readonly PresenceEntry[]): PresenceEntry[] => [...entries].sort((a, b) => a.clientId.localeCompare(b.clientId));

/** Retries `check` until it passes, for at most `ms`. */
async function eventually(ms: number, check: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Two nodes on a fresh prefix; `done` closes whatever is still open and deletes the keys. */
async function cluster(over: Partial<RedisPresenceOptions> = {}, overB: Partial<RedisPresenceOptions> = {}) {
  const prefix = `shaddock-test:${randomUUID()}:`;
  const base = { url: REDIS_URL, prefix, heartbeatMs: 50, nodeTimeoutMs: 300, ...over };
  const a = await RedisPresence.open({ ...base, nodeId: 'node-a' });
  const b = await RedisPresence.open({ ...base, nodeId: 'node-b', ...overB }).catch(async (err: unknown) => {
    await a.close();
    await unlinkByPrefix(raw, prefix);
    throw err;
  });
  const open = new Set([a, b]);
  return {
    a,
    b,
    prefix,
    forget: (p: RedisPresence) => open.delete(p),
    done: async () => {
      for (const p of open) await p.close();
      await unlinkByPrefix(raw, prefix);
    },
  };
}

void describe('RedisPresence', () => {
  void it('shows entries written on either node to both, per app', async () => {
    const { a, b, done } = await cluster();
    try {
      await a.set(app, entry('c1', 'node-a'));
      await b.set(app, entry('c2', 'node-b', 2000));
      await b.set(other, entry('c1', 'node-b'));
      for (const p of [a, b]) {
        assert.deepEqual(byClient(await p.list(app)), [entry('c1', 'node-a'), entry('c2', 'node-b', 2000)]);
        assert.equal(await p.count(app), 2);
        assert.deepEqual(await p.list(other), [entry('c1', 'node-b')]);
        assert.deepEqual([...(await p.nodes())].sort(), ['node-a', 'node-b']);
      }
      assert.deepEqual(await a.list(asApiKey('nobody')), []);
      assert.equal(await a.count(asApiKey('nobody')), 0);
    } finally {
      await done();
    }
  });

  void it('replaces a client entry on set, and removes it only for the node that holds it', async () => {
    const { a, b, done } = await cluster();
    try {
      await a.set(app, entry('c1', 'node-a'));
      await b.set(app, entry('c1', 'node-b', 5000));
      assert.deepEqual(await a.list(app), [entry('c1', 'node-b', 5000)]);
      // A late leave on the old node does not erase the newer entry.
      await a.remove(app, cid('c1'), 'node-a');
      assert.deepEqual(await b.list(app), [entry('c1', 'node-b', 5000)]);
      await a.remove(app, cid('c1'), 'node-b');
      assert.deepEqual(await b.list(app), []);
      assert.equal(await b.count(app), 0);
    } finally {
      await done();
    }
  });

  void it('drops a node that stops heartbeating, and its entries, within the timeout', async () => {
    const { a, b, prefix, forget, done } = await cluster();
    try {
      await a.set(app, entry('a1', 'node-a'));
      for (let i = 0; i < 3; i++) await b.set(app, entry(`b${i}`, 'node-b'));
      assert.equal(await a.count(app), 4);
      const crashed = Date.now();
      await b.abandon(); // no goodbye: what a killed process leaves
      forget(b);
      await eventually(2000, async () => {
        assert.deepEqual(await a.list(app), [entry('a1', 'node-a')]);
        assert.equal(await a.count(app), 1);
        assert.deepEqual(await a.nodes(), ['node-a']);
      });
      const took = Date.now() - crashed;
      assert.ok(took >= 200, `gone after ${took} ms, before the 300 ms timeout`);
      // Cleaned up in Redis too: entries, the node's set, the node.
      await eventually(2000, async () => {
        assert.deepEqual(await raw.hkeys(`${prefix}app:${app}:presence`), ['a1']);
        assert.equal(await raw.exists(`${prefix}node:node-b:presence`), 0);
        assert.equal(await raw.zscore(`${prefix}nodes`, 'node-b'), null);
      });
    } finally {
      await done();
    }
  });

  void it('leaves a dead node out of list and count before any sweep; the next heartbeat drains it', async () => {
    // No timers: both nodes beat only when told to.
    const { a, b, prefix, forget, done } = await cluster({ heartbeatMs: 0, nodeTimeoutMs: 300 });
    try {
      await a.set(app, entry('a1', 'node-a'));
      await b.set(app, entry('b1', 'node-b'));
      await b.set(other, entry('b2', 'node-b'));
      await b.abandon();
      forget(b);
      await new Promise((r) => setTimeout(r, 200));
      await a.heartbeat();
      assert.equal(await a.count(app), 2, 'b is not dead yet');
      await new Promise((r) => setTimeout(r, 150));
      // b's last beat is 350 ms old, a's 150 ms: b is dead, a is not.
      assert.equal(await a.count(app), 1);
      assert.deepEqual(await a.list(other), []);
      assert.deepEqual(await a.nodes(), ['node-a']);
      assert.equal(await raw.zscore(`${prefix}nodes`, 'node-b') !== null, true, 'not swept yet');
      await a.heartbeat();
      assert.equal(await raw.zscore(`${prefix}nodes`, 'node-b'), null);
      assert.equal(await raw.exists(`${prefix}node:node-b:presence`), 0);
      assert.deepEqual(await raw.hkeys(`${prefix}app:${app}:presence`), ['a1']);
      assert.equal(await raw.exists(`${prefix}app:${other}:presence`), 0);
    } finally {
      await done();
    }
  });

  void it('excludes a silent node from list and count at once (lazy delete)', async () => {
    const prefix = `shaddock-test:${randomUUID()}:`;
    const reader = await RedisPresence.open({ url: REDIS_URL, prefix, nodeId: 'reader', heartbeatMs: 0, nodeTimeoutMs: 60_000 });
    try {
      // Another node's entries, with its heartbeat 2 minutes old.
      const t = await raw.time();
      await raw.zadd(`${prefix}nodes`, Number(t[0]) * 1000 - 120_000, 'ghost');
      await raw.hset(`${prefix}app:${app}:presence`, 'g1', JSON.stringify(entry('g1', 'ghost')));
      await reader.set(app, entry('r1', 'reader'));
      assert.equal(await raw.hlen(`${prefix}app:${app}:presence`), 2);
      assert.equal(await reader.count(app), 1);
      assert.deepEqual(await reader.list(app), [entry('r1', 'reader')]);
      assert.deepEqual(await reader.nodes(), ['reader']);
      await eventually(1000, async () => assert.deepEqual(await raw.hkeys(`${prefix}app:${app}:presence`), ['r1']));
    } finally {
      await reader.close();
      await unlinkByPrefix(raw, prefix);
    }
  });

  void it('writes its entries back when it was taken for dead while only slow, unless the client moved', async () => {
    // b beats only when told to: silent long enough, a sweeps it.
    const { a, b, prefix, done } = await cluster({}, { heartbeatMs: 0 });
    try {
      await b.set(app, entry('stays', 'node-b'));
      await b.set(app, entry('moves', 'node-b'));
      await eventually(2000, async () => {
        assert.deepEqual(await a.list(app), []);
        assert.equal(await raw.zscore(`${prefix}nodes`, 'node-b'), null);
      });
      await a.set(app, entry('moves', 'node-a', 9000));
      await b.heartbeat();
      assert.deepEqual(byClient(await a.list(app)), [entry('moves', 'node-a', 9000), entry('stays', 'node-b')]);
    } finally {
      await done();
    }
  });

  void it('removes its entries and itself on close', async () => {
    const { a, b, prefix, forget, done } = await cluster();
    try {
      await a.set(app, entry('a1', 'node-a'));
      await b.set(app, entry('b1', 'node-b'));
      await b.set(other, entry('b2', 'node-b'));
      await b.close();
      forget(b);
      assert.deepEqual(await a.list(app), [entry('a1', 'node-a')]);
      assert.deepEqual(await a.list(other), []);
      assert.deepEqual(await a.nodes(), ['node-a']);
      assert.equal(await raw.exists(`${prefix}node:node-b:presence`), 0);
    } finally {
      await done();
    }
  });

  void it('rejects a timeout no longer than the heartbeat', async () => {
    for (const [heartbeatMs, nodeTimeoutMs] of [[100, 100], [-1, 100], [0, 0]] as const) {
      await assert.rejects(
        RedisPresence.open({ url: REDIS_URL, prefix: 'shaddock-test:never:', nodeId: 'x', heartbeatMs, nodeTimeoutMs }),
        RangeError,
      );
    }
  });
});
