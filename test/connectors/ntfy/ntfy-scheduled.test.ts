// Scheduled delivery (https://docs.ntfy.sh/publish/#scheduled-delivery): durable across a
// restart and delivered once at its time, on one node and in a cluster. ntfy's shortest
// delay is 10 s (server.go DefaultMessageDelayMin), so these tests take that long.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer } from '../../fixtures/test-server.js';
import { deletePrefix, startNode, type NodeProcess } from '../../fixtures/cluster-nodes.js';
import { curl, CurlStream } from './ntfy-helpers.js';

type Msg = { readonly [k: string]: unknown };

describe('ntfy scheduled delivery', () => {
  it('survives a restart (embedded SQLite) and is delivered once, at its time', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'shaddock-ntfy-sched-'));
    try {
      const first = await startTestServer({ dataDir });
      const r = await curl(['-H', 'Delay: 10s', '-d', 'Good morning', `http://127.0.0.1:${first.server.ntfyPort}/hello`]);
      assert.equal(r.status, 200, r.body);
      const due = (r.json as Msg)['time'] as number;
      await first.close();

      const second = await startTestServer({ dataDir });
      const base = `http://127.0.0.1:${second.server.ntfyPort}`;
      const pending = await curl([`${base}/hello/json?poll=1&scheduled=1`]);
      assert.equal((JSON.parse(pending.body.trim()) as Msg)['id'], (r.json as Msg)['id'], 'still scheduled after the restart');
      const sub = new CurlStream([`${base}/hello/json`]);
      try {
        await sub.waitFor((s) => s.messages().length === 1, 'the scheduled message', 20_000);
        const got = sub.messages()[0]!;
        assert.equal(got.message, 'Good morning');
        assert.ok(Date.now() >= due * 1000 - 1000, 'not before its time');
        assert.ok((got['time'] as number) >= due - 1);
      } finally {
        sub.stop();
      }
      // Once: one message in the cache, nothing scheduled any more.
      const cached = await curl([`${base}/hello/json?poll=1&scheduled=1`]);
      assert.deepEqual(cached.body.trim().split('\n').map((l) => (JSON.parse(l) as Msg)['message']), ['Good morning']);
      await second.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  describe('in a cluster (two nodes on Redis)', () => {
    const prefix = `shaddock-test:${randomUUID()}:`;
    const nodes: NodeProcess[] = [];
    after(async () => {
      for (const n of nodes) await n.stop().catch(() => undefined);
      await deletePrefix(prefix);
    });

    it('one node pushes each due message: subscribers on both nodes get it once', async () => {
      // One after the other: the first creates the ntfy app, the second finds it.
      nodes.push(await startNode({ prefix, name: 'sched-a' }));
      nodes.push(await startNode({ prefix, name: 'sched-b', app: nodes[0]!.app }));
      const [a, b] = nodes as [NodeProcess, NodeProcess];
      const subs = [new CurlStream([`http://127.0.0.1:${a.ntfyPort}/cluster-sched/json`]), new CurlStream([`http://127.0.0.1:${b.ntfyPort}/cluster-sched/json`])];
      try {
        for (const s of subs) await s.waitFor((x) => x.events.length >= 1, 'open');
        const r = await curl(['-H', 'In: 10s', '-d', 'from the cluster', `http://127.0.0.1:${a.ntfyPort}/cluster-sched`]);
        assert.equal(r.status, 200, r.body);
        for (const s of subs) await s.waitFor((x) => x.messages().length >= 1, 'the scheduled message on each node', 25_000);
        // Both nodes' schedulers ran every second meanwhile; the log holds it once.
        const cached = await curl([`http://127.0.0.1:${b.ntfyPort}/cluster-sched/json?poll=1`]);
        assert.deepEqual(cached.body.trim().split('\n').map((l) => (JSON.parse(l) as Msg)['message']), ['from the cluster']);
        for (const s of subs) assert.equal(s.messages().length, 1);
      } finally {
        for (const s of subs) s.stop();
      }
    });
  });
});
