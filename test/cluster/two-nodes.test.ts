import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { unlinkByPrefix } from '../../src/redis/client.js';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';
import { freePort, startRedis, stopRedis } from '../fixtures/redis-server.js';

const REDIS = process.env['SHADDOCK_TEST_REDIS'] ?? 'redis://127.0.0.1:6379';

/** Removes every key a test wrote under its prefix (the same helper the stores use). */
async function deletePrefix(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await r.connect();
    await unlinkByPrefix(r, prefix);
  } finally {
    r.disconnect();
  }
}

describe('two nodes on one Redis', () => {
  const prefix = `shaddock-test:${randomUUID()}:`;
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    a = await startTestServer({ redisUrl: REDIS, redisPrefix: prefix, nodeId: 'a' });
    b = await startTestServer({ redisUrl: REDIS, redisPrefix: prefix, nodeId: 'b' });
  });
  after(async () => {
    await b.close();
    await a.close();
    await deletePrefix(REDIS, prefix);
  });

  it('the second node shares the apps of the first', () => {
    assert.equal(b.app.apikey, a.app.apikey);
  });

  it('a push accepted by one node reaches a client on the other, and pushes from both arrive in id order', async () => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: b.server.hybridPort, transport: 'tcp' });
    try {
      await c.request('connector.entryHandler.enter', { apikey: a.app.apikey, clientId: 'on-b', role: 'client' });
      const ids: number[] = [];
      c.on('onMsg', (body: unknown) => ids.push((body as { id: number }).id));
      const res = await fetch(`${a.httpUrl}/api/v1/apps/${a.app.apikey}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${a.app.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: { msg: '跨节点' } }),
      });
      assert.equal(res.status, 202);
      await waitFor(() => ids.length === 1, { timeoutMs: 5000, message: 'push from node a did not reach node b' });
      const target = { all: true, clientIds: [], tags: [] };
      await Promise.all(
        Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).server.hub.publish({ apikey: a.app.apikey, target, event: 'onMsg', data: i })),
      );
      await waitFor(() => ids.length === 201, { timeoutMs: 10_000, message: `got ${ids.length} of 201` });
      assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'in id order');
      assert.equal(new Set(ids).size, 201);
    } finally {
      await c.close();
    }
  });
});

describe('when Redis goes down', () => {
  let redis: ChildProcess | undefined;
  let port = 0;
  let node: TestServer | undefined;
  before(async () => {
    port = await freePort();
    redis = await startRedis(port);
    node = await startTestServer({ redisUrl: `redis://127.0.0.1:${port}`, redisPrefix: 'down-test:' });
  });
  after(async () => {
    await node?.close();
    if (redis) await stopRedis(redis);
  });

  it('pushes fail fast with 503 (never a silent accept) and work again when Redis returns, with no restart', async () => {
    const t = node!;
    const push = () =>
      fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: 1 }),
      });
    assert.equal((await push()).status, 202);
    await stopRedis(redis!);
    const started = Date.now();
    const down = await push();
    assert.equal(down.status, 503);
    assert.ok(Date.now() - started < 6000, 'failed fast');
    assert.equal(((await down.json()) as { code: string }).code, 'UNAVAILABLE');
    redis = await startRedis(port);
    // A fresh Redis (no persistence here) has lost the app: the node is back when it answers 404, not 503.
    await waitFor(async () => (await push()).status !== 503, { timeoutMs: 15_000, message: 'the node did not recover' });
  });
});
