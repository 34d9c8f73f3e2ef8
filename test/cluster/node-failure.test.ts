// kill -9 of a node holding 1,000 SDK clients while pushes continue: the clients move to
// the other node (their SDK has both URLs) and resume; no message is lost; the dead
// node leaves the presence within its timeout.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createNodeClient, type ShaddockClient } from '../../src/client/node.js';
import { deletePrefix, pushVia, startNode, TEST_REDIS, type NodeProcess } from '../fixtures/cluster-nodes.js';
import { waitFor } from '../fixtures/wait.js';

const CLIENTS = 1000;
const MESSAGES = 150;
const NODE_TIMEOUT_SECONDS = 3;

describe('a node killed with 1,000 clients', () => {
  const prefix = `shaddock-test:${randomUUID()}:`;
  let survivor: NodeProcess;
  let victim: NodeProcess;
  const sdk: ShaddockClient[] = [];
  let redis: Redis;

  before(async () => {
    survivor = await startNode({ prefix, name: 'survivor', nodeTimeoutSeconds: NODE_TIMEOUT_SECONDS });
    victim = await startNode({ prefix, name: 'victim', app: survivor.app, nodeTimeoutSeconds: NODE_TIMEOUT_SECONDS });
    redis = new Redis(TEST_REDIS);
  });
  after(async () => {
    await Promise.all(sdk.map((c) => c.close().catch(() => undefined)));
    await Promise.all([survivor.stop(), victim.stop('SIGKILL')]);
    redis.disconnect();
    await deletePrefix(prefix);
  });

  it('the clients reconnect to the other node and resume with nothing lost; the dead node leaves the presence', async (t) => {
    const received = new Map<string, number[]>();
    const urls = [`tcp://127.0.0.1:${victim.server.hybridPort}`, `tcp://127.0.0.1:${survivor.server.hybridPort}`];
    for (let i = 0; i < CLIENTS; i++) {
      const clientId = `device-${i}`;
      const ids: number[] = [];
      received.set(clientId, ids);
      const c = createNodeClient({ urls, apikey: survivor.app.apikey, clientId, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
      c.on('message', (m) => void ids.push(m.id));
      sdk.push(c);
    }
    // All on the victim first (the first URL).
    for (let i = 0; i < sdk.length; i += 100) await Promise.all(sdk.slice(i, i + 100).map((c) => c.connect()));
    assert.ok(sdk.every((c) => c.url === urls[0]));

    // The victim's heartbeat stops; within its timeout (plus one beat of the survivor,
    // which drains it) its node entry and its presence set are gone.
    let killedAt = 0;
    let presenceGoneAfterMs = -1;
    const presenceGone = (async () => {
      await waitFor(() => killedAt > 0, { timeoutMs: 60_000, message: 'the kill' });
      await waitFor(
        async () => (await redis.zscore(`${prefix}nodes`, 'victim')) === null && (await redis.scard(`${prefix}node:victim:presence`)) === 0,
        { timeoutMs: NODE_TIMEOUT_SECONDS * 1000 + 5000, intervalMs: 100, message: 'the dead node to leave the presence' },
      );
      presenceGoneAfterMs = Date.now() - killedAt;
    })();

    const pushed: number[] = [];
    for (let n = 0; n < MESSAGES; n++) {
      pushed.push(await pushVia(survivor, { data: { n } }));
      if (n === 40) {
        victim.child.kill('SIGKILL');
        killedAt = Date.now();
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await victim.exit;

    for (const [clientId, ids] of received) {
      await waitFor(() => ids.length >= pushed.length, { timeoutMs: 30_000, message: `${clientId}: ${ids.length} of ${pushed.length}` });
      assert.deepEqual(ids, pushed, `${clientId} got every message once, in order`);
    }
    assert.ok(sdk.every((c) => c.url === urls[1]), 'every client moved to the survivor');

    await presenceGone;
    t.diagnostic(`presence of the dead node gone ${presenceGoneAfterMs} ms after kill -9 (timeout ${NODE_TIMEOUT_SECONDS} s)`);
    const res = await fetch(`${survivor.httpUrl}/api/v1/apps/${survivor.app.apikey}/clients?limit=1`, {
      headers: { authorization: `Bearer ${survivor.app.secret}` },
    });
    const list = (await res.json()) as { total: number };
    assert.equal(list.total, CLIENTS);
  });
});
