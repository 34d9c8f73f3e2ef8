/**
 * Connections at scale (issue #7, "connections at scale"): N Shaddock nodes on one
 * Redis, each its own process, hold C hybrid TCP connections between them, idle and
 * heartbeating; then K broadcasts pushed through node 1's HTTP API reach every one.
 *
 *   npm run bench:scale -- --nodes 6 --connections 100000     # the cluster run
 *   npm run bench:scale -- --nodes 1 --connections 19000      # one node, 19k heartbeating
 *
 * Measured: each node's RSS (VmRSS) before the first client and with all of them in →
 * memory per connection; connections dropped while holding (a missed heartbeat closes a
 * connection after 2 × --heartbeat); per broadcast, push sent → last delivery on any
 * node; lost and duplicated deliveries. Every process here is capped at 20,000 open
 * files, so a node holds at most 19,000 connections and a load worker (worker.ts, the
 * same lean clients as run.ts) at most 15,000; clients bind 127.0.0.2, 127.0.0.3, … with
 * explicit source ports below the ephemeral range (bench/README.md, "How the load is made").
 *
 * Starts everything it needs on free ports and a fresh random Redis key prefix, stops it
 * all by itself (after --timeout, and on Ctrl-C) and deletes the prefix's keys. Exits 0
 * when every connection entered, none dropped, and every broadcast reached every client
 * exactly once; 1 otherwise; 2 when it could not run.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Redis } from 'ioredis';
import { unlinkByPrefix } from '../../src/redis/client.js';
import { SOURCE_PORT_COUNT, SOURCE_PORT_LOW, type ClientConfig } from './clients.js';
import { monoUs, type LatencySummary } from './histogram.js';
import {
  checkSourceAddresses,
  ephemeralPortRange,
  killTrackedChildren,
  machineInfo,
  Proc,
  processAlive,
  processCpuUs,
  processRssKB,
  sourceAddresses,
  trackCleanup,
  wrapCommand,
  type MachineInfo,
} from './proc.js';
import { Progress } from './progress.js';
import { BENCH_LIMITS_OFF } from './targets.js';
import type { ConnectMetrics } from './bench.js';
import { mergeReports, WorkerPool } from './worker-pool.js';
import { payloadMaker } from './protocol.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** A node holds at most this many connections: 20,000 open files, less its own (Redis, listeners, files). */
export const MAX_PER_NODE = 19_000;
/** Sockets per load worker (the same cap as run.ts, bench.ts MAX_PER_WORKER). */
export const MAX_PER_WORKER = 15_000;
/** Connections per source address; with 22,000 source ports each, well clear of running out. */
export const PER_SOURCE_ADDRESS = 5_000;
const HOST = '127.0.0.1';

export interface ScaleParams {
  readonly nodes: number;
  readonly connections: number;
  /** Broadcasts pushed one after the other, each waited for, and their payload size (bytes of the data's JSON). */
  readonly broadcasts: number;
  readonly size: number;
  /** Pomelo heartbeat the nodes announce, seconds; a client silent for twice this is closed. */
  readonly heartbeatSeconds: number;
  /** Load workers per node; 0: ⌈node's share ÷ 15,000⌉ (never fewer). */
  readonly workersPerNode: number;
  /** Connects in flight at once, over all workers. */
  readonly connectConcurrency: number;
  readonly connectTimeoutMs: number;
  /** Wait after the last connection entered before reading RSS. */
  readonly settleMs: number;
  /** Hold the connections idle (heartbeating) this long before the broadcasts. */
  readonly holdMs: number;
  /** Pause between broadcasts. */
  readonly gapMs: number;
  /** A broadcast is given up when no delivery arrived for this long. */
  readonly broadcastTimeoutMs: number;
  /** The whole run stops by itself after this long. */
  readonly timeoutMs: number;
  readonly redisUrl: string;
  /** Shaddock from dist/ or src/ through tsx; auto: dist/ when it is there. */
  readonly entry: 'auto' | 'dist' | 'tsx';
  /** Pin the nodes to core 0 and the load workers to core 1 (off: the run is about capacity, not one core's CPU). */
  readonly pin: boolean;
  readonly quiet: boolean;
}

export type ScaleInput = { readonly [K in keyof ScaleParams]?: ScaleParams[K] | undefined };

export const SCALE_DEFAULTS: ScaleParams = {
  nodes: 6,
  connections: 100_000,
  broadcasts: 5,
  size: 100,
  heartbeatSeconds: 5,
  // The enter path costs ~0.7 ms of node CPU per connection: 200 in flight keeps every
  // node busy without queueing enters past the handshake timeout (10 s).
  connectConcurrency: 200,
  workersPerNode: 0,
  connectTimeoutMs: 60_000,
  settleMs: 3000,
  holdMs: 30_000,
  gapMs: 1000,
  broadcastTimeoutMs: 30_000,
  timeoutMs: 0,
  redisUrl: process.env['SHADDOCK_TEST_REDIS'] ?? process.env['SHADDOCK_REDIS_URL'] ?? 'redis://127.0.0.1:6379',
  entry: 'auto',
  pin: false,
  quiet: false,
};

export function resolveScaleParams(input: ScaleInput): ScaleParams {
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<ScaleParams>;
  const p: ScaleParams = { ...SCALE_DEFAULTS, ...given };
  const whole = (name: string, v: number, min: number): void => {
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be a whole number ≥ ${min}`);
  };
  whole('--nodes', p.nodes, 1);
  whole('--connections', p.connections, 1);
  whole('--broadcasts', p.broadcasts, 0);
  whole('--size', p.size, 1);
  whole('--heartbeat', p.heartbeatSeconds, 1);
  whole('--connect-concurrency', p.connectConcurrency, 1);
  whole('--workers-per-node', p.workersPerNode, 0);
  if (p.nodes > 32) throw new Error('--nodes: at most 32 on one machine');
  if (Math.ceil(p.connections / p.nodes) > MAX_PER_NODE) {
    throw new Error(
      `--connections: ${p.connections} over ${p.nodes} node(s) is ${Math.ceil(p.connections / p.nodes)} per node; ` +
        `at most ${MAX_PER_NODE} (every process here is capped at 20,000 open files): use --nodes ${Math.ceil(p.connections / MAX_PER_NODE)} or more`,
    );
  }
  if (!/^rediss?:\/\//.test(p.redisUrl)) throw new Error('--redis must be a redis:// URL');
  // Time enough to connect at a slow 500/s, hold, and push: a bound, not a target.
  const timeoutMs = p.timeoutMs > 0 ? p.timeoutMs : 180_000 + p.connections * 3 + p.holdMs + p.broadcasts * (p.gapMs + p.broadcastTimeoutMs);
  return { ...p, timeoutMs };
}

// ---------------------------------------------------------------- result

export interface NodeResult {
  readonly name: string;
  readonly pid: number;
  readonly httpPort: number;
  readonly hybridPort: number;
  /** Connections assigned to this node, and those that entered. */
  readonly connections: number;
  readonly entered: number;
  readonly rssBaselineKB: number;
  readonly rssConnectedKB: number;
  readonly rssAfterHoldKB: number;
  readonly rssEndKB: number;
  readonly rssPerConnectionKB: number;
  readonly cpuConnectUs: number;
  /** CPU while holding the connections idle (heartbeats, presence beats), % of one core. */
  readonly idleCpuPercent: number;
  /** CPU over the broadcasts (each from its push to its last delivery), µs. */
  readonly cpuBroadcastUs: number;
}

export interface BroadcastResult {
  readonly seq: number;
  /** The message id the API answered (-1: refused). */
  readonly id: number;
  readonly status: number;
  readonly error: string | undefined;
  /** Push sent → HTTP answer (stored, accepted), ms. */
  readonly acceptMs: number;
  /** Push sent → the last delivery on any node, ms. */
  readonly lastDeliveryMs: number;
  /** The same per node (node 1 first): where the time goes. */
  readonly perNodeLastDeliveryMs: readonly number[];
  /** Distinct deliveries of this broadcast, of `subscribers`. */
  readonly delivered: number;
  readonly complete: boolean;
}

export interface ScaleResult {
  readonly schema: 1;
  readonly kind: 'scale';
  readonly date: string;
  readonly machine: MachineInfo;
  readonly params: ScaleParams & {
    readonly srcAddrs: readonly string[];
    readonly workers: number;
    readonly target: string;
    readonly redisPrefix: string;
  };
  readonly nodes: readonly NodeResult[];
  readonly metrics: {
    readonly connect: ConnectMetrics;
    readonly memory: {
      readonly rssBaselineKB: number;
      readonly rssConnectedKB: number;
      /** Σ(node RSS connected − before) ÷ connections entered. */
      readonly rssPerConnectionKB: number;
      readonly maxNodeRssPerConnectionKB: number;
      readonly peakWorkerRssKB: number;
    };
    readonly hold: {
      readonly ms: number;
      readonly heartbeatSeconds: number;
      readonly held: number;
      /** Connections closed while holding (a missed heartbeat, a kick…). */
      readonly dropped: number;
      /** All nodes together, % of one core. */
      readonly idleCpuPercent: number;
    };
    readonly broadcast: {
      readonly broadcasts: number;
      readonly size: number;
      /** Connections live when the first broadcast went out, and the deliveries they expect. */
      readonly subscribers: number;
      readonly expected: number;
      readonly delivered: number;
      readonly unique: number;
      readonly lost: number;
      readonly duplicated: number;
      readonly foreign: number;
      /** Connections closed during the broadcasts. */
      readonly dropped: number;
      readonly publishErrors: number;
      readonly pushes: readonly BroadcastResult[];
      /** Median and worst push → last delivery over the broadcasts, ms. */
      readonly medianMs: number;
      readonly maxMs: number;
      /** Push sent → each delivery, µs (every delivery of every broadcast). */
      readonly latencyUs: LatencySummary;
      /** All nodes' CPU over the broadcasts ÷ deliveries, µs. */
      readonly cpuUsPerDelivery: number | undefined;
    };
    readonly loadgen: { readonly workers: number; readonly cpuUs: number; readonly peakWorkerRssKB: number };
  };
  readonly redis: { readonly url: string; readonly prefix: string; readonly keysDeleted: number };
  readonly warnings: readonly string[];
  readonly ok: boolean;
}

// ---------------------------------------------------------------- nodes

interface App {
  readonly apikey: string;
  readonly secret: string;
}

/** A Shaddock node of the run: a watched child (proc.ts) with its ports, app and data folder. */
class NodeProc extends Proc {
  readonly pid: number;
  httpPort = 0;
  hybridPort = 0;
  app: App | undefined;

  constructor(
    readonly name: string,
    file: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv,
    readonly dataDir: string,
  ) {
    super(file, args, REPO_ROOT, env);
    if (this.child.pid === undefined) throw new Error(`${name}: could not start`);
    this.pid = this.child.pid;
  }

  stderrTail(): string {
    return this.stderr.slice(-2000);
  }

  /** Waits for the banner's last line, then reads the ports (and the demo app on a first start) from it. */
  async ready(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!/^Ready\. Press Ctrl-C/m.test(this.stdout)) {
      if (this.exited) throw new Error(`${this.name} exited before it was ready:\n${this.stderrTail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} not ready after ${timeoutMs} ms:\n${this.stderrTail()}`);
      await sleep(50);
    }
    const out = this.stdout;
    const num = (re: RegExp, what: string): number => {
      const m = re.exec(out);
      if (m === null) throw new Error(`${this.name}: no ${what} port in its banner:\n${out}`);
      return Number(m[1]);
    };
    this.httpPort = num(/HTTP API\s+http:\/\/[^:\s]+:(\d+)/, 'HTTP');
    this.hybridPort = num(/Pomelo hybrid\s+tcp:\/\/[^:\s]+:(\d+)/, 'hybrid');
    const apikey = /^\s*apikey\s+(\S+)/m.exec(out)?.[1];
    const secret = /^\s*secret\s+(\S+)/m.exec(out)?.[1];
    if (apikey !== undefined && secret !== undefined) this.app = { apikey, secret };
  }

  /** SIGTERM (a clean leave), SIGKILL after `graceMs`; then its data folder goes. */
  override async stop(graceMs: number): Promise<void> {
    await super.stop(graceMs);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Newest modification time under `dir` (files ending in .ts), ms. */
function newestTs(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) newest = Math.max(newest, newestTs(path));
    else if (name.endsWith('.ts')) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
}

function nodeCommand(entry: ScaleParams['entry'], warnings: string[]): { args: string[]; label: string } {
  const dist = join(REPO_ROOT, 'dist/cli/index.js');
  const useDist = entry === 'dist' || (entry === 'auto' && existsSync(dist));
  if (useDist && entry === 'auto' && statSync(dist).mtimeMs < newestTs(join(REPO_ROOT, 'src'))) {
    warnings.push('dist/ is older than src/: the nodes run the last build (npm run build, or --entry tsx)');
  }
  return useDist ? { args: [dist], label: 'dist' } : { args: ['--import', 'tsx', join(REPO_ROOT, 'src/cli/index.ts')], label: 'tsx' };
}

// ---------------------------------------------------------------- load workers

/** Each load worker holds a share of one node's connections. */
interface NodeShare {
  /** Index of the node its connections go to. */
  readonly node: number;
  readonly count: number;
}

// ---------------------------------------------------------------- the run

/** What a run started, so that a stop (the end, an error, Ctrl-C, the time limit) takes it all down once. */
class Cluster {
  readonly nodes: NodeProc[] = [];
  readonly pool = new WorkerPool<NodeShare>();
  #stopped: Promise<number> | undefined;

  constructor(
    readonly redisUrl: string,
    readonly prefix: string,
  ) {}

  /** Workers first (their sockets close), then the nodes, then the prefix's keys; returns how many keys went. */
  stop(): Promise<number> {
    this.#stopped ??= (async () => {
      await this.pool.close();
      await Promise.all(this.nodes.map((n) => n.stop(10_000)));
      return deletePrefix(this.redisUrl, this.prefix);
    })();
    return this.#stopped;
  }
}

async function withRedis<T>(url: string, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 3000, retryStrategy: () => null });
  // ioredis reports the cause (ECONNREFUSED…) as an event and rejects with "Connection is closed".
  let cause: Error | undefined;
  r.on('error', (err: Error) => (cause ??= err));
  try {
    try {
      await r.connect();
    } catch (err) {
      throw cause ?? err;
    }
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** Throws a clear error when Redis does not answer PING. */
export async function checkRedis(url: string): Promise<void> {
  try {
    await withRedis(url, async (r) => {
      await r.ping();
    });
  } catch (err) {
    throw new Error(`Redis at ${url} is unreachable (${(err as Error).message}); start one or pass --redis URL`, { cause: err });
  }
}

async function deletePrefix(url: string, prefix: string): Promise<number> {
  try {
    return await withRedis(url, (r) => unlinkByPrefix(r, prefix));
  } catch {
    return -1;
  }
}

/** Pushes one broadcast through a node's HTTP API; never throws. */
async function pushOnce(node: NodeProc, app: App, body: string): Promise<{ status: number; id: number; error: string | undefined }> {
  try {
    const res = await fetch(`http://${HOST}:${node.httpPort}/api/v1/apps/${app.apikey}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${app.secret}`, 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let id = -1;
    try {
      const parsed = JSON.parse(text) as { id?: unknown };
      if (typeof parsed.id === 'number') id = parsed.id;
    } catch {
      // not JSON: reported below
    }
    const ok = res.status >= 200 && res.status < 300 && id >= 0;
    return { status: res.status, id, error: ok ? undefined : `HTTP ${res.status}: ${text.slice(0, 200)}` };
  } catch (err) {
    return { status: 0, id: -1, error: (err as Error).message };
  }
}

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Splits `total` into `parts` shares that differ by at most one. */
function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, k) => Math.floor(total / parts) + (k < total % parts ? 1 : 0));
}

export interface ScaleHooks {
  /** Called once the cluster exists, with a stop that tears it down (for Ctrl-C). */
  readonly onStarted?: (stop: () => Promise<number>) => void;
}

/** One run. Starts and stops everything itself; resolves with the result (also when it is not ok). */
export async function runScale(input: ScaleInput, hooks: ScaleHooks = {}): Promise<ScaleResult> {
  const p = resolveScaleParams(input);
  const progress = new Progress(p.quiet);
  const warnings: string[] = [];
  await checkRedis(p.redisUrl);
  const srcAddrs = sourceAddresses(p.connections, PER_SOURCE_ADDRESS, SOURCE_PORT_COUNT);
  await checkSourceAddresses(srcAddrs);
  const range = ephemeralPortRange();
  if (range.low < SOURCE_PORT_LOW + SOURCE_PORT_COUNT) {
    warnings.push(`the ephemeral port range ${range.low}-${range.high} overlaps the source ports ${SOURCE_PORT_LOW}+: taken ports are retried`);
  }
  if (p.holdMs <= 2 * p.heartbeatSeconds * 1000) {
    // The nodes close a client silent for 2 × heartbeat: a shorter hold cannot show heartbeats keep them.
    warnings.push(`--hold ${p.holdMs} ms is within the heartbeat timeout (${2 * p.heartbeatSeconds} s): it does not show heartbeating holds the connections`);
  }
  const nodeCores = p.pin ? 0 : undefined;
  const workerCores = p.pin ? 1 : undefined;
  const prefix = `shaddock-scale:${randomBytes(6).toString('hex')}:`;
  const cluster = new Cluster(p.redisUrl, prefix);
  hooks.onStarted?.(() => cluster.stop());
  const deadline = Date.now() + p.timeoutMs;
  const remaining = (): number => Math.max(0, deadline - Date.now());
  let timedOut = false;
  const hardStop = setTimeout(() => {
    timedOut = true;
    progress.note(`bench:scale: the run passed its time limit of ${p.timeoutMs} ms; stopping`);
    void cluster.stop();
  }, p.timeoutMs + 30_000);
  hardStop.unref();
  const checkTime = (what: string): void => {
    if (timedOut || remaining() === 0) throw new Error(`the run timed out ${what}`);
  };
  const checkNodes = (): void => {
    for (const n of cluster.nodes) if (n.exited || !processAlive(n.pid)) throw new Error(`${n.name} (pid ${n.pid}) is gone:\n${n.stderrTail()}`);
    for (const s of cluster.pool.slots) if (s.child.exitCode !== null || s.child.signalCode !== null) throw new Error(`a load worker of node-${s.tag.node + 1} exited (${s.child.signalCode ?? `code ${s.child.exitCode}`})`);
  };

  let keysDeleted = -1;
  try {
    // ---- nodes: the first alone (its first start creates the admin and the demo app), then the rest.
    const cmd = nodeCommand(p.entry, warnings);
    const env = { ...process.env, NODE_ENV: 'production', SHADDOCK_CONFIG: '', ...BENCH_LIMITS_OFF };
    const startNode = (i: number): NodeProc => {
      const name = `node-${i + 1}`;
      const data = mkdtempSync(join(tmpdir(), 'shaddock-scale-'));
      trackCleanup(() => rmSync(data, { recursive: true, force: true }));
      const args = [...cmd.args, 'start', '--data', data, '--host', HOST, '--redis', p.redisUrl, '--redis-prefix', prefix, '--node-id', name];
      args.push('--http-port', '0', '--hybrid-port', '0', '--sio-port', '0', '--mqtt-port', '0', '--ntfy-port', '0');
      args.push('--heartbeat', String(p.heartbeatSeconds), '--log-level', 'warn');
      const w = wrapCommand(process.execPath, args, nodeCores);
      const node = new NodeProc(name, w.file, w.args, env, data);
      cluster.nodes.push(node);
      return node;
    };
    progress.phase('nodes');
    progress.update(`starting node-1 of ${p.nodes} (${cmd.label}) on ${p.redisUrl}, prefix ${prefix}`);
    const first = startNode(0);
    await first.ready(Math.min(remaining(), 60_000));
    const app = first.app;
    if (app === undefined) throw new Error('node-1 printed no demo app: was the prefix not fresh?');
    progress.update(`starting ${p.nodes - 1} more node(s)`);
    const rest = Array.from({ length: p.nodes - 1 }, (_, k) => startNode(k + 1));
    await Promise.all(rest.map((n) => n.ready(Math.min(remaining(), 90_000))));
    const nodes = cluster.nodes;

    // ---- workers: each node's connections split over ⌈n / 15,000⌉ workers; global
    // indices are contiguous, so every connection has its own source address and port.
    progress.phase('workers');
    const perNode = shares(p.connections, p.nodes);
    const runId = 1 + Math.floor(Math.random() * 999_999);
    const portOffset = Math.floor(Math.random() * SOURCE_PORT_COUNT);
    const plan: { node: number; first: number; count: number }[] = [];
    let g = 0;
    perNode.forEach((n, k) => {
      for (const count of shares(n, Math.max(1, p.workersPerNode, Math.ceil(n / MAX_PER_WORKER)))) {
        if (count === 0) continue;
        plan.push({ node: k, first: g, count });
        g += count;
      }
    });
    const pool = cluster.pool;
    for (const w of plan) pool.add(workerCores, { node: w.node, count: w.count });
    await pool.ready();
    const concurrency = Math.max(1, Math.ceil(p.connectConcurrency / plan.length));
    plan.forEach((w, k) => {
      const node = nodes[w.node]!;
      const cfg: ClientConfig = {
        kind: 'hybrid-tcp',
        host: HOST,
        port: node.hybridPort,
        path: '/',
        apikey: app.apikey,
        enterRoute: 'connector.entryHandler.enter',
        mqttTopic: '',
        mqttUsername: '',
        qos: 0,
        clientIdPrefix: `s${runId}-`,
        srcAddrs,
        portLow: SOURCE_PORT_LOW,
        portCount: SOURCE_PORT_COUNT,
        portOffset,
      };
      pool.send(pool.slots[k]!, { t: 'init', cfg, first: w.first, count: w.count, concurrency, connectTimeoutMs: p.connectTimeoutMs });
    });

    // ---- baseline memory, then connect.
    await sleep(1000);
    const rssBaseline = nodes.map((n) => processRssKB(n.pid));
    const cpuBeforeConnect = nodes.map((n) => processCpuUs(n.pid));
    const lgCpu0 = [...(await pool.ask('stats')).values()].reduce((a, r) => a + r.stats.cpuUs, 0);
    progress.phase('connect');
    const connectStartUs = monoUs();
    pool.broadcast({ t: 'connect' });
    while (!pool.allConnected) {
      checkTime('while connecting');
      checkNodes();
      const t = pool.totals();
      const rate = Math.round(t.entered / ((monoUs() - connectStartUs) / 1e6));
      progress.update(`${t.entered}/${p.connections} entered (${rate}/s), ${t.failed} failed, ${t.dropped} dropped`);
      await sleep(200);
    }
    const cpuAfterConnect = nodes.map((n) => processCpuUs(n.pid));
    const afterConnect = pool.totals();
    progress.update(`${afterConnect.entered}/${p.connections} entered, ${afterConnect.failed} failed`);
    await sleep(p.settleMs);
    const rssConnected = nodes.map((n) => processRssKB(n.pid));

    // ---- hold, idle and heartbeating.
    progress.phase('hold');
    const droppedBeforeHold = pool.totals().dropped;
    const cpuBeforeHold = nodes.map((n) => processCpuUs(n.pid));
    const holdStartUs = monoUs();
    const holdEnd = Date.now() + Math.min(p.holdMs, remaining());
    while (Date.now() < holdEnd) {
      checkNodes();
      const t = pool.totals();
      const left = Math.ceil((holdEnd - Date.now()) / 1000);
      progress.update(`holding ${t.entered - t.dropped} connections, heartbeat ${p.heartbeatSeconds} s, ${t.dropped} dropped, ${left} s left`);
      await sleep(Math.min(250, Math.max(0, holdEnd - Date.now())));
    }
    await pool.ask('stats');
    const holdUs = monoUs() - holdStartUs;
    const idleCpu = nodes.map((n, k) => round(((processCpuUs(n.pid) - cpuBeforeHold[k]!) / holdUs) * 100, 2));
    const rssAfterHold = nodes.map((n) => processRssKB(n.pid));
    const afterHold = pool.totals();
    const droppedInHold = afterHold.dropped - droppedBeforeHold;

    // ---- broadcasts, one at a time: each waited for to its last delivery.
    progress.phase('push');
    pool.broadcast({ t: 'expect', runId, messages: p.broadcasts });
    const startReports = await pool.ask('report');
    const subscribers = [...startReports.values()].reduce((a, r) => a + (r.report?.tracked ?? 0), 0);
    const make = payloadMaker(runId, p.size);
    // Warm the client's HTTP stack (undici loads lazily), so the first push is not timed with it.
    await fetch(`http://${HOST}:${first.httpPort}/healthz`).then((r) => r.arrayBuffer()).catch(() => undefined);
    const pushes: BroadcastResult[] = [];
    const cpuBroadcast = nodes.map(() => 0);
    let publishErrors = 0;
    for (let seq = 0; seq < p.broadcasts; seq++) {
      checkTime('during the broadcasts');
      const before = await pool.ask('stats');
      const cpu0 = nodes.map((n) => processCpuUs(n.pid));
      const sentUs = monoUs();
      const target = subscribers * (seq + 1);
      let answer: Awaited<ReturnType<typeof pushOnce>> | undefined;
      let acceptUs = 0;
      void pushOnce(first, app, `{"data":${make(seq, sentUs)}}`).then((a) => {
        acceptUs = monoUs() - sentUs;
        answer = a;
      });
      let last = -1;
      let lastChange = Date.now();
      let replies = before;
      for (;;) {
        replies = await pool.ask('stats');
        const unique = [...replies.values()].reduce((a, r) => a + r.stats.unique, 0);
        progress.update(`broadcast ${seq + 1}/${p.broadcasts}: ${unique - subscribers * seq}/${subscribers} delivered`);
        if (answer !== undefined && (unique >= target || answer.error !== undefined)) break;
        if (unique !== last) {
          last = unique;
          lastChange = Date.now();
        } else if (Date.now() - lastChange > p.broadcastTimeoutMs) {
          warnings.push(`broadcast ${seq + 1}: gave up after ${p.broadcastTimeoutMs} ms without a delivery`);
          break;
        }
        if (remaining() === 0 || timedOut) break;
        await sleep(10);
      }
      nodes.forEach((n, k) => {
        cpuBroadcast[k]! += processCpuUs(n.pid) - cpu0[k]!;
      });
      // The last delivery of this broadcast, per node: the newest message time of its workers.
      const perNodeUs = nodes.map(() => 0);
      let delivered = 0;
      for (const [slot, r] of replies) {
        perNodeUs[slot.tag.node] = Math.max(perNodeUs[slot.tag.node]!, r.stats.lastMessageUs);
        delivered += r.stats.unique - (before.get(slot)?.stats.unique ?? 0);
      }
      const lastUs = Math.max(...perNodeUs);
      const a = answer ?? { status: 0, id: -1, error: 'no answer before the broadcast was given up' };
      if (a.error !== undefined) publishErrors++;
      pushes.push({
        seq,
        id: a.id,
        status: a.status,
        error: a.error,
        acceptMs: round(acceptUs / 1000, 2),
        lastDeliveryMs: lastUs > sentUs ? round((lastUs - sentUs) / 1000, 2) : -1,
        perNodeLastDeliveryMs: perNodeUs.map((us) => (us > sentUs ? round((us - sentUs) / 1000, 2) : -1)),
        delivered,
        complete: delivered === subscribers,
      });
      const b = pushes[pushes.length - 1]!;
      progress.update(`broadcast ${seq + 1}/${p.broadcasts}: ${delivered}/${subscribers} delivered, last after ${b.lastDeliveryMs} ms`);
      if (seq + 1 < p.broadcasts) await sleep(p.gapMs);
    }

    // ---- the workers' final word: losses, duplicates, latencies, connect figures.
    const final = await pool.ask('report');
    const { latency, connectLatency, errors, received, unique, lost, duplicated, foreign, lastEnteredUs } = mergeReports(final.values());
    const endTotals = pool.totals();
    const rssEnd = nodes.map((n) => processRssKB(n.pid));
    const lgCpuUs = [...final.values()].reduce((a, r) => a + r.stats.cpuUs, 0) - lgCpu0;

    const entered = afterConnect.entered;
    const enteredPerNode = nodes.map((_, k) => pool.slots.filter((s) => s.tag.node === k).reduce((a, s) => a + (s.stats?.entered ?? 0), 0));
    const nodeResults: NodeResult[] = nodes.map((n, k) => ({
      name: n.name,
      pid: n.pid,
      httpPort: n.httpPort,
      hybridPort: n.hybridPort,
      connections: perNode[k]!,
      entered: enteredPerNode[k]!,
      rssBaselineKB: rssBaseline[k]!,
      rssConnectedKB: rssConnected[k]!,
      rssAfterHoldKB: rssAfterHold[k]!,
      rssEndKB: rssEnd[k]!,
      rssPerConnectionKB: round((rssConnected[k]! - rssBaseline[k]!) / Math.max(1, enteredPerNode[k]!), 2),
      cpuConnectUs: Math.round(cpuAfterConnect[k]! - cpuBeforeConnect[k]!),
      idleCpuPercent: idleCpu[k]!,
      cpuBroadcastUs: Math.round(cpuBroadcast[k]!),
    }));
    const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
    const connectMs = lastEnteredUs > 0 ? (lastEnteredUs - connectStartUs) / 1000 : 0;
    const times = pushes.map((b) => b.lastDeliveryMs).filter((ms) => ms >= 0);
    const droppedInBroadcast = endTotals.dropped - afterHold.dropped;
    if (afterConnect.failed > 0) warnings.push(`${afterConnect.failed} of ${p.connections} connections failed: ${JSON.stringify(errors)}`);
    if (droppedInHold > 0) warnings.push(`${droppedInHold} connections dropped while holding: ${JSON.stringify(errors)}`);
    if (publishErrors > 0) warnings.push(`${publishErrors} broadcasts refused or failed: ${pushes.map((b) => b.error).filter((e) => e !== undefined).join(' | ')}`);
    const ok =
      afterConnect.failed === 0 &&
      entered === p.connections &&
      endTotals.dropped === 0 &&
      lost === 0 &&
      duplicated === 0 &&
      foreign === 0 &&
      publishErrors === 0 &&
      pushes.every((b) => b.complete);
    progress.done();
    keysDeleted = await cluster.stop();
    return {
      schema: 1,
      kind: 'scale',
      date: new Date().toISOString(),
      machine: machineInfo(REPO_ROOT),
      params: { ...p, srcAddrs, workers: plan.length, target: `shaddock (${cmd.label})`, redisPrefix: prefix },
      nodes: nodeResults,
      metrics: {
        connect: {
          attempted: p.connections,
          entered,
          failed: afterConnect.failed,
          durationMs: round(connectMs),
          perSecond: connectMs > 0 ? Math.round(entered / (connectMs / 1000)) : 0,
          latencyUs: connectLatency.summary(),
          errors,
        },
        memory: {
          rssBaselineKB: sum(rssBaseline),
          rssConnectedKB: sum(rssConnected),
          rssPerConnectionKB: round((sum(rssConnected) - sum(rssBaseline)) / Math.max(1, entered), 2),
          maxNodeRssPerConnectionKB: Math.max(...nodeResults.map((n) => n.rssPerConnectionKB)),
          peakWorkerRssKB: endTotals.rssKB,
        },
        hold: {
          ms: round(holdUs / 1000),
          heartbeatSeconds: p.heartbeatSeconds,
          held: afterHold.entered - afterHold.dropped,
          dropped: droppedInHold,
          idleCpuPercent: round(sum(idleCpu), 2),
        },
        broadcast: {
          broadcasts: p.broadcasts,
          size: p.size,
          subscribers,
          expected: subscribers * p.broadcasts,
          delivered: received,
          unique,
          lost,
          duplicated,
          foreign,
          dropped: droppedInBroadcast,
          publishErrors,
          pushes,
          medianMs: round(median(times), 2),
          maxMs: times.length > 0 ? Math.max(...times) : 0,
          latencyUs: latency.summary(),
          cpuUsPerDelivery: received > 0 ? round(sum(cpuBroadcast) / received, 2) : undefined,
        },
        loadgen: { workers: plan.length, cpuUs: Math.round(lgCpuUs), peakWorkerRssKB: endTotals.rssKB },
      },
      redis: { url: p.redisUrl, prefix, keysDeleted },
      warnings,
      ok,
    };
  } finally {
    clearTimeout(hardStop);
    progress.done();
    await cluster.stop();
  }
}

// ---------------------------------------------------------------- output

function ms(us: number): string {
  return us >= 1000 ? `${round(us / 1000, 1)} ms` : `${us} µs`;
}

export function summarizeScale(r: ScaleResult): string {
  const m = r.metrics;
  const b = m.broadcast;
  const lines = [
    `${r.params.target} · ${r.params.nodes} node(s) on Redis · ${r.params.connections} hybrid TCP connections${r.ok ? '' : '  (NOT OK)'}`,
    `  connect    ${m.connect.entered} entered, ${m.connect.failed} failed in ${m.connect.durationMs} ms (${m.connect.perSecond}/s), p50 ${ms(m.connect.latencyUs.p50Us)} p99 ${ms(m.connect.latencyUs.p99Us)}`,
    `  memory     ${m.memory.rssPerConnectionKB} KB RSS per connection (nodes ${Math.round(m.memory.rssBaselineKB / 1024)} → ${Math.round(m.memory.rssConnectedKB / 1024)} MB; worst node ${m.memory.maxNodeRssPerConnectionKB} KB)`,
    `  hold       ${m.hold.held} held ${round(m.hold.ms / 1000)} s, heartbeat ${m.hold.heartbeatSeconds} s, ${m.hold.dropped} dropped; nodes' idle CPU ${m.hold.idleCpuPercent}% of a core`,
    `  broadcast  ${b.broadcasts} × ${b.size} B to ${b.subscribers}: last delivery median ${b.medianMs} ms, max ${b.maxMs} ms [${b.pushes.map((x) => x.lastDeliveryMs).join(', ')}]`,
    `             ${b.unique}/${b.expected} delivered, lost ${b.lost}, duplicated ${b.duplicated}, dropped ${b.dropped}; push→delivery p50 ${ms(b.latencyUs.p50Us)} p99 ${ms(b.latencyUs.p99Us)}; ${b.cpuUsPerDelivery ?? '?'} µs node CPU/delivery`,
  ];
  for (const n of r.nodes) {
    lines.push(`  ${n.name.padEnd(9)}  ${n.entered} entered, ${n.rssPerConnectionKB} KB/conn (${Math.round(n.rssBaselineKB / 1024)} → ${Math.round(n.rssConnectedKB / 1024)} MB), idle CPU ${n.idleCpuPercent}%`);
  }
  lines.push(`  redis      ${r.redis.keysDeleted} keys deleted under prefix ${r.redis.prefix}`);
  for (const w of r.warnings) lines.push(`  warning    ${w}`);
  return lines.join('\n');
}

export function defaultResultPath(r: Pick<ScaleResult, 'date' | 'params'>): string {
  const stamp = r.date.replace(/[:.]/g, '-').replace(/-\d\d\dZ$/, 'Z');
  return join(REPO_ROOT, 'bench/results', `scale-${r.params.nodes}x${r.params.connections}-${stamp}.json`);
}

// ---------------------------------------------------------------- CLI

function int(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be a whole number ≥ ${min}`);
    return n;
  };
}

async function main(): Promise<void> {
  const d = SCALE_DEFAULTS;
  const program = new Command('bench:scale')
    .description('connections at scale: N Shaddock nodes on Redis hold C hybrid TCP connections, heartbeating, and broadcast to all (bench/README.md)')
    .option('--nodes <n>', `Shaddock nodes, each its own process (default ${d.nodes})`, int('--nodes', 1))
    .option('--connections <n>', `hybrid TCP connections, spread evenly over the nodes (default ${d.connections})`, int('--connections', 1))
    .option('--broadcasts <n>', `broadcasts pushed through node 1's HTTP API, one at a time (default ${d.broadcasts})`, int('--broadcasts'))
    .option('--size <bytes>', `payload size (default ${d.size})`, int('--size', 1))
    .option('--heartbeat <s>', `Pomelo heartbeat of the nodes (default ${d.heartbeatSeconds})`, int('--heartbeat', 1))
    .option('--hold <ms>', `hold the connections idle this long (default ${d.holdMs})`, int('--hold'))
    .option('--settle <ms>', `wait after connecting before reading RSS (default ${d.settleMs})`, int('--settle'))
    .option('--gap <ms>', `pause between broadcasts (default ${d.gapMs})`, int('--gap'))
    .option('--connect-concurrency <n>', `connects in flight over all workers (default ${d.connectConcurrency})`, int('--connect-concurrency', 1))
    .option('--workers-per-node <n>', 'load workers per node (default: enough for ≤ 15,000 sockets each)', int('--workers-per-node', 1))
    .option('--connect-timeout <ms>', `a connection not entered by then fails (default ${d.connectTimeoutMs})`, int('--connect-timeout', 1000))
    .option('--broadcast-timeout <ms>', `give a broadcast up after this long without a delivery (default ${d.broadcastTimeoutMs})`, int('--broadcast-timeout', 100))
    .option('--timeout <ms>', 'the whole run stops by itself after this long (default: from the size of the run)', int('--timeout', 1000))
    .option('--redis <url>', `the Redis the nodes share (default ${d.redisUrl}; SHADDOCK_TEST_REDIS)`)
    .addOption(new Option('--entry <how>', 'Shaddock from dist/ or src/ through tsx (auto: dist/ when built)').choices(['auto', 'dist', 'tsx']))
    .option('--pin', 'pin the nodes to core 0 and the load workers to core 1')
    .option('--json <file>', 'write the JSON result here (default bench/results/scale-NODESxCONNECTIONS-DATE.json)')
    .option('--quiet', 'no progress line')
    .parse();
  const o = program.opts<{
    nodes?: number;
    connections?: number;
    broadcasts?: number;
    size?: number;
    heartbeat?: number;
    hold?: number;
    settle?: number;
    gap?: number;
    connectConcurrency?: number;
    workersPerNode?: number;
    connectTimeout?: number;
    broadcastTimeout?: number;
    timeout?: number;
    redis?: string;
    entry?: ScaleParams['entry'];
    pin?: boolean;
    json?: string;
    quiet?: boolean;
  }>();
  const input: ScaleInput = {
    nodes: o.nodes,
    connections: o.connections,
    broadcasts: o.broadcasts,
    size: o.size,
    heartbeatSeconds: o.heartbeat,
    holdMs: o.hold,
    settleMs: o.settle,
    gapMs: o.gap,
    connectConcurrency: o.connectConcurrency,
    workersPerNode: o.workersPerNode,
    connectTimeoutMs: o.connectTimeout,
    broadcastTimeoutMs: o.broadcastTimeout,
    timeoutMs: o.timeout,
    redisUrl: o.redis,
    entry: o.entry,
    pin: o.pin === true,
    quiet: o.quiet === true,
  };

  // Ctrl-C or SIGTERM: stop the workers and nodes and delete the keys (bounded), then
  // leave; a second signal, or anything still running at exit, is SIGKILLed.
  let stop: (() => Promise<number>) | undefined;
  process.once('exit', killTrackedChildren);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stop === undefined || process.exitCode === 130) {
        killTrackedChildren();
        process.exit(130);
      }
      process.exitCode = 130;
      process.stderr.write(`\nbench:scale: ${signal}, stopping what it started\n`);
      const force = setTimeout(() => process.exit(130), 20_000);
      void stop().finally(() => {
        clearTimeout(force);
        process.exit(130);
      });
    });
  }

  try {
    resolveScaleParams(input); // bad flags: exit 2 before anything starts
    const result = await runScale(input, { onStarted: (s) => (stop = s) });
    const json = JSON.stringify(result, null, 2);
    const out = o.json !== undefined ? resolve(o.json) : defaultResultPath(result);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${json}\n`);
    process.stderr.write(`${summarizeScale(result)}\n  result     ${out}\n`);
    process.exitCode = result.ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`bench:scale: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
