// `shaddock cluster --nodes 2`: two node processes on consecutive port blocks, sharing
// one Redis prefix; a push through one reaches a client on the other; Ctrl-C stops all.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { nodePorts } from '../../src/cli/cluster.js';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { deletePrefix, pushVia, TEST_REDIS } from '../fixtures/cluster-nodes.js';
import { waitFor, withTimeout } from '../fixtures/wait.js';

const ROOT = new URL('../..', import.meta.url).pathname;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port whose two blocks of ten are free right now. */
async function freeBlock(nodes: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + 10 * Math.floor(Math.random() * 3000);
    const ports = Array.from({ length: nodes }, (_, i) => Object.values(nodePorts(base, i))).flat();
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error('no free block of ports');
}

describe('shaddock cluster', () => {
  const prefix = `shaddock-test:${randomUUID()}:`;
  after(() => deletePrefix(prefix));

  it('starts the nodes on consecutive port blocks, they form one cluster, and Ctrl-C stops them all', async () => {
    const base = await freeBlock(2);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'src/cli/index.ts'), 'cluster', '--nodes', '2', '--redis', TEST_REDIS, '--redis-prefix', prefix, '--base-port', String(base), '--host', '127.0.0.1', '--log-level', 'warn'],
      { cwd: ROOT, env: { ...process.env, SHADDOCK_CONFIG: '', SHADDOCK_ADMIN_PASSWORD: 'test-admin-password' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor(() => out.includes('Ready. Press Ctrl-C to stop.'), { timeoutMs: 40_000, message: `the cluster banner:\n${out}` });
      assert.match(out, /\[node-1\] .*cluster\s+node node-1/);
      assert.match(out, /\[node-2\] .*cluster\s+node node-2/);
      const apikey = /apikey\s+(\S+)/.exec(out)?.[1];
      const secret = /secret\s+(\S+)/.exec(out)?.[1];
      assert.ok(apikey !== undefined && secret !== undefined, 'the first node printed the demo app');

      const [one, two] = [nodePorts(base, 0), nodePorts(base, 1)];
      const client = await PomeloClient.connect({ host: '127.0.0.1', port: two.hybrid, transport: 'tcp' });
      try {
        const entered = (await client.request('connector.entryHandler.enter', { apikey, clientId: 'on-node-2', role: 'client' })) as { code: number };
        assert.equal(entered.code, 200);
        const got: number[] = [];
        client.on('onMsg', (body: unknown) => got.push((body as { id: number }).id));
        const id = await pushVia({ app: { apikey, secret }, httpUrl: `http://127.0.0.1:${one.http}`, server: { hybridPort: one.hybrid, sioPort: one.sio, mqttPort: one.mqtt, httpPort: one.http } }, { data: 'via node 1' });
        await waitFor(() => got.includes(id), { timeoutMs: 5000, message: 'the push through node 1' });
      } finally {
        await client.close();
      }
    } finally {
      child.kill('SIGINT');
      assert.equal(await withTimeout(exit, 20_000, 'the cluster to stop'), 0);
    }
    assert.match(out, /\[node-1\] exited/);
    assert.match(out, /\[node-2\] exited/);
  });
});
