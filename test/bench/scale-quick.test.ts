/**
 * The connections-at-scale benchmark (bench/load/scale.ts), tiny: two nodes on the test
 * Redis hold a few hundred hybrid TCP connections through a few heartbeat timeouts,
 * then two broadcasts reach every client exactly once; everything it started is gone
 * afterwards, Redis keys included. Correctness only: no assertion on any time or rate.
 * Skipped, with the reason, when Redis is unreachable.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { checkRedis, REPO_ROOT, runScale, type ScaleResult } from '../../bench/load/scale.js';

const REDIS = process.env['SHADDOCK_TEST_REDIS'] ?? 'redis://127.0.0.1:6379';

async function keysUnder(prefix: string): Promise<number> {
  const r = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await r.connect();
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  } finally {
    r.disconnect();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every connection entered and stayed; every broadcast reached every client once; nothing left behind. */
async function checkRun(r: ScaleResult, nodes: number, connections: number, broadcasts: number): Promise<void> {
  const m = r.metrics;
  assert.equal(r.schema, 1);
  assert.equal(r.kind, 'scale');
  assert.equal(m.connect.failed, 0, `failed connections: ${JSON.stringify(m.connect.errors)}`);
  assert.equal(m.connect.entered, connections);
  assert.equal(r.nodes.length, nodes);
  // Spread evenly: shares differ by at most one, and each node's clients entered there.
  for (const n of r.nodes) {
    assert.ok(Math.abs(n.connections - connections / nodes) < 1, `${n.name} got ${n.connections}`);
    assert.equal(n.entered, n.connections);
    for (const k of ['rssBaselineKB', 'rssConnectedKB', 'rssPerConnectionKB', 'idleCpuPercent', 'cpuBroadcastUs'] as const) {
      assert.equal(typeof n[k], 'number', `${n.name}.${k}`);
      assert.ok(Number.isFinite(n[k]), `${n.name}.${k} is ${n[k]}`);
    }
  }
  assert.ok(Number.isFinite(m.memory.rssPerConnectionKB));
  assert.equal(m.hold.dropped, 0, 'no connection dropped while holding (heartbeats kept them)');
  assert.equal(m.hold.held, connections);
  const b = m.broadcast;
  assert.equal(b.subscribers, connections);
  assert.equal(b.pushes.length, broadcasts);
  for (const push of b.pushes) {
    assert.equal(push.error, undefined);
    assert.equal(push.status, 202);
    assert.ok(push.id > 0);
    assert.equal(push.delivered, connections, `broadcast ${push.seq}`);
    assert.equal(push.complete, true);
    assert.ok(push.lastDeliveryMs >= 0, 'a last delivery was seen');
    assert.equal(push.perNodeLastDeliveryMs.length, nodes);
  }
  assert.equal(b.expected, connections * broadcasts);
  assert.equal(b.unique, connections * broadcasts);
  assert.equal(b.lost, 0, 'no message lost');
  assert.equal(b.duplicated, 0, 'no message duplicated');
  assert.equal(b.foreign, 0);
  assert.equal(b.latencyUs.count, connections * broadcasts);
  assert.equal(r.ok, true, r.warnings.join('; '));
  assert.ok(r.params.srcAddrs.every((a) => /^127\.0\.0\.\d+$/.test(a) && a !== '127.0.0.1'));
  // Stopped by itself: nodes gone, their keys deleted.
  for (const n of r.nodes) assert.equal(alive(n.pid), false, `${n.name} (pid ${n.pid}) still runs`);
  assert.ok(r.redis.keysDeleted > 0, 'the run wrote keys and deleted them');
  assert.equal(await keysUnder(r.redis.prefix), 0);
}

describe('connections-at-scale benchmark, quick mode (correctness only, no timing)', { timeout: 180_000 }, () => {
  let redisDown: string | undefined;
  before(async () => {
    try {
      await checkRedis(REDIS);
    } catch (err) {
      redisDown = (err as Error).message;
    }
  });

  it('2 nodes, 200 connections held through heartbeat timeouts, 2 broadcasts reach all, once', { timeout: 90_000 }, async (t) => {
    if (redisDown !== undefined) {
      t.skip(`needs Redis: ${redisDown}`);
      return;
    }
    // Heartbeat 2 s: a client that stopped heartbeating would be closed after 4 s, so
    // holding 5 s with none dropped shows the heartbeats flow.
    const r = await runScale({
      nodes: 2,
      connections: 200,
      broadcasts: 2,
      size: 100,
      heartbeatSeconds: 2,
      holdMs: 5000,
      settleMs: 300,
      gapMs: 100,
      broadcastTimeoutMs: 10_000,
      timeoutMs: 80_000,
      redisUrl: REDIS,
      entry: 'tsx',
      quiet: true,
    });
    await checkRun(r, 2, 200, 2);
  });

  it('the CLI writes its JSON result, exits 0 and stops everything', { timeout: 60_000 }, async (t) => {
    if (redisDown !== undefined) {
      t.skip(`needs Redis: ${redisDown}`);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'scale-quick-'));
    try {
      const out = join(dir, 'r.json');
      const args = ['--import', 'tsx', 'bench/load/scale.ts', '--nodes', '1', '--connections', '50', '--broadcasts', '1', '--hold', '300'];
      args.push('--settle', '200', '--redis', REDIS, '--entry', 'tsx', '--quiet', '--json', out);
      const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdout.resume();
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 0, stderr);
      assert.match(stderr, /50 entered, 0 failed/);
      const r = JSON.parse(readFileSync(out, 'utf8')) as ScaleResult;
      await checkRun(r, 1, 50, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses more connections than the nodes can hold, before starting anything (exit 2)', { timeout: 30_000 }, async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/load/scale.ts', '--nodes', '1', '--connections', '20000', '--quiet'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 2, stderr);
    assert.match(stderr, /at most 19000.*--nodes 2/s);
  });
});
