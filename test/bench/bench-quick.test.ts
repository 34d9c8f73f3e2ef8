/**
 * The load benchmark, once, tiny and quick: a few hundred connections per connector
 * against our server (and against each peer that is installed), checking that every
 * connection enters, every message arrives once, and the JSON result has its fields.
 * Correctness only: no assertion on any timing or rate (docs/conventions.md §9; bench/README.md).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, runBenchmark, type BenchInput, type BenchResult } from '../../bench/load/bench.js';
import { peerUnavailable, startTarget, TARGET_CONNECTORS, type Target, type TargetKind } from '../../bench/load/targets.js';
import { renderChart, type CompareResult } from '../../bench/load/compare.js';

const PEERS_DIR = process.env['BENCH_PEERS_DIR'] || undefined;
const QUICK: BenchInput = { quick: true, quiet: true, connections: 200, messages: 20, size: 128, peersDir: PEERS_DIR, entry: 'tsx' };

function checkShape(r: BenchResult): void {
  assert.equal(r.schema, 1);
  assert.match(r.date, /^\d{4}-\d\d-\d\dT/);
  assert.equal(r.machine.node, process.version);
  assert.equal(typeof r.machine.commit, 'string');
  assert.ok(r.machine.cpus >= 1);
  assert.ok(r.params.srcAddrs.length >= 1 && r.params.srcAddrs.every((a) => a.startsWith('127.0.0.')));
  assert.ok(r.target.pid > 0);
  const m = r.metrics;
  for (const k of ['attempted', 'entered', 'failed', 'durationMs', 'perSecond'] as const) assert.equal(typeof m.connect[k], 'number', `connect.${k}`);
  for (const k of ['p50Us', 'p99Us', 'maxUs'] as const) assert.equal(typeof m.connect.latencyUs[k], 'number', `connect.latencyUs.${k}`);
  for (const k of ['rssBaselineKB', 'rssConnectedKB', 'rssPerConnectionKB', 'cpuConnectUs', 'cpuPerConnectionUs'] as const) {
    assert.equal(typeof m.server[k], 'number', `server.${k}`);
  }
  for (const k of ['workers', 'cpuUs', 'workerCpuUs', 'coordinatorCpuUs', 'cpuPercent'] as const) assert.equal(typeof m.loadgen[k], 'number', `loadgen.${k}`);
  // What a JSON file keeps is what we checked.
  assert.deepEqual(JSON.parse(JSON.stringify(r)).metrics.connect.entered, m.connect.entered);
}

/** Every connection entered; for a fan-out, every message arrived exactly once. */
function checkDelivery(r: BenchResult, connections: number, messages: number): void {
  checkShape(r);
  const { connect, fanout, server } = r.metrics;
  assert.equal(connect.failed, 0, `failed connections: ${JSON.stringify(connect.errors)}`);
  assert.equal(connect.entered, connections);
  if (r.params.scenario !== 'fanout') return;
  assert.ok(fanout !== undefined, 'a fan-out result');
  assert.equal(fanout.publishErrors, 0, fanout.publishErrorSamples.join(' | '));
  assert.equal(fanout.accepted, messages);
  assert.equal(fanout.subscribers, connections);
  assert.equal(fanout.expected, connections * messages);
  assert.equal(fanout.lost, 0, 'no message lost');
  assert.equal(fanout.duplicated, 0, 'no message duplicated');
  assert.equal(fanout.foreign, 0);
  assert.equal(fanout.unique, connections * messages);
  assert.equal(fanout.complete, connections);
  assert.equal(typeof fanout.latencyUs.p99Us, 'number');
  assert.equal(typeof server.cpuUsPerDelivery, 'number');
  assert.equal(r.ok, true, r.warnings.join('; '));
}

describe('load benchmark, quick mode (correctness only, no timing)', { timeout: 120_000 }, () => {
  let shaddock: Target;
  before(async () => {
    shaddock = await startTarget('shaddock', {
      repoRoot: REPO_ROOT,
      core: undefined,
      entry: 'tsx',
      peersDir: PEERS_DIR,
      heartbeatSeconds: 25,
      startTimeoutMs: 30_000,
    });
  });
  after(async () => {
    await shaddock?.stop();
  });

  for (const connector of TARGET_CONNECTORS.shaddock) {
    it(`shaddock ${connector}: 200 subscribers get 20 pushes each, once`, { timeout: 30_000 }, async () => {
      const r = await runBenchmark({ ...QUICK, target: 'shaddock', connector, scenario: 'fanout' }, shaddock);
      checkDelivery(r, 200, 20);
    });
  }

  it('shaddock idle and connect storm: every connection enters', { timeout: 30_000 }, async () => {
    const idle = await runBenchmark({ ...QUICK, target: 'shaddock', connector: 'ws', scenario: 'idle', connections: 300 }, shaddock);
    checkDelivery(idle, 300, 0);
    assert.equal(typeof idle.metrics.server.idleCpuPercent, 'number');
    const storm = await runBenchmark({ ...QUICK, target: 'shaddock', connector: 'hybrid-tcp', scenario: 'storm', connections: 300 }, shaddock);
    checkDelivery(storm, 300, 0);
  });

  for (const [target, connector] of [
    ['net', 'tcp'],
    ['shaddock', 'hybrid-tcp'],
  ] as const) {
    it(`${target} idle: memory is also read after a full GC in the server (inspector)`, { timeout: 40_000 }, async () => {
      const r = await runBenchmark({ ...QUICK, target, connector, scenario: 'idle', connections: 200 });
      checkDelivery(r, 200, 0);
      const gc = r.metrics.server.rssPerConnectionAfterGcKB;
      assert.equal(typeof gc, 'number', 'a Node server started by the bench answers the GC probe');
      assert.ok(Number.isFinite(gc));
      // Where it lies: the server's own process.memoryUsage(), read through the inspector.
      const parts = r.metrics.server.afterGcBytesPerConnection;
      assert.ok(parts !== undefined, 'the after-GC figure is split into heap and the rest');
      assert.ok(parts.heapUsed > 0, `every idle socket keeps some V8 heap: ${JSON.stringify(parts)}`);
      for (const v of Object.values(parts)) assert.ok(Number.isInteger(v), JSON.stringify(parts));
    });
  }

  it('the CLI starts its own server, writes the JSON result and stops everything', { timeout: 40_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-quick-'));
    try {
      const out = join(dir, 'r.json');
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'bench/load/run.ts', '--quick', '--quiet', '--no-csv', '--entry', 'tsx', '--connections', '100', '--messages', '10', '--json', out],
        { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdout.resume();
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 0, stderr);
      const r = JSON.parse(readFileSync(out, 'utf8')) as BenchResult;
      checkDelivery(r, 100, 10);
      // The server it started is gone.
      assert.throws(() => process.kill(r.target.pid, 0));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const peers: readonly TargetKind[] = ['ws', 'socketio', 'mosquitto', 'pomelo'];
  for (const peer of peers) {
    const connector = TARGET_CONNECTORS[peer][0]!;
    it(`peer ${peer} (${connector}): set up the same way, same checks`, { timeout: 30_000 }, async (t) => {
      const why = peerUnavailable(peer, { repoRoot: REPO_ROOT, peersDir: PEERS_DIR });
      if (why !== undefined) {
        t.skip(`peer ${peer} skipped: ${why}`);
        return;
      }
      const r = await runBenchmark({ ...QUICK, target: peer, connector, scenario: 'fanout' });
      checkDelivery(r, 200, 20);
    });
  }

  it('the chart renders as a PNG from a comparison result', () => {
    const sample = { ok: true, entered: 1, connectPerSecond: 1, connectP99Us: 1, rssPerConnectionKB: 3.5, rssPerConnectionAfterGcKB: 2.5, heapUsedPerConnectionB: 1300, otherPerConnectionB: 700, cpuPerConnectionUs: 9, deliveredPerSecond: 10, cpuUsPerDelivery: 4.2, latencyP50Us: 1, latencyP99Us: 2, latencyMaxUs: 3, lost: 0, duplicated: 0, loadgenCpuPercent: 5, serverCpuPercent: 50 };
    const result: CompareResult = {
      schema: 1,
      date: new Date().toISOString(),
      machine: { cpuModel: 'x', cpus: 2, memoryMB: 1, os: 'Linux', kernel: 'k', node: process.version, commit: 'c', dirty: false, portRange: '1-2', somaxconn: 1, tcpMaxSynBacklog: 1, nofile: { soft: 1, hard: 1 }, taskset: false },
      params: { connections: 1, messages: 1, size: 1, rate: 0, repeat: 1 },
      entries: [
        { target: 'shaddock', connector: 'mqtt', scenario: 'fanout', version: 'shaddock 0.1.0', runs: [sample], median: sample, warnings: [] },
        { target: 'mosquitto', connector: 'mqtt', scenario: 'fanout', version: 'mosquitto 2', runs: [sample], median: { ...sample, cpuUsPerDelivery: 2 }, warnings: [] },
      ],
      ratios: [],
    };
    const png = renderChart(result);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.subarray(12, 16).toString('ascii'), 'IHDR');
    assert.ok(png.length > 1000);
  });
});
