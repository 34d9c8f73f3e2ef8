/**
 * One benchmark run: start the target (or use one already started), spread the
 * connections over load workers, run the scenario, and measure the server from
 * outside (/proc CPU time and RSS) and the load generator from inside (its own CPU).
 *
 *   idle    N connections, paced; server RSS per connection, connect rate, idle CPU.
 *   fanout  N subscribers, M pushes of S bytes (as fast as accepted or at a rate);
 *           deliveries/s, server CPU µs per delivery, push→delivery latency, lost and
 *           duplicated messages.
 *   storm   N connections all at once; connect latency, rate, server CPU per connection.
 */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CONNECTORS, SOURCE_PORT_COUNT, SOURCE_PORT_LOW, type ClientConfig, type ConnectorKind } from './clients.js';
import { monoUs, type LatencySummary } from './histogram.js';
import { Progress } from './progress.js';
import {
  affinityOf,
  checkSourceAddresses,
  hasTaskset,
  machineInfo,
  pinSelf,
  processAlive,
  processCpuUs,
  processRssKB,
  sourceAddresses,
  type MachineInfo,
} from './proc.js';
import type { WorkerStats } from './protocol.js';
import { publish } from './publisher.js';
import { mergeReports, WorkerPool } from './worker-pool.js';
import { startTarget, TARGET_CONNECTORS, TARGETS, type NodeMemoryUsage, type StartOptions, type Target, type TargetKind } from './targets.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SCENARIOS = ['idle', 'fanout', 'storm'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Cores: the server on one, the load generator on the other (2-core machine). */
export const SERVER_CORE = 0;
export const LOAD_CORE = 1;
/** Sockets one worker holds at most (each process is capped at 20,000 open files). */
export const MAX_PER_WORKER = 15_000;
/** Connections per source address (well inside the ephemeral port range). */
export const PER_SOURCE_ADDRESS = 5_000;

export interface BenchParams {
  readonly target: TargetKind;
  readonly connector: ConnectorKind;
  readonly scenario: Scenario;
  readonly connections: number;
  /** fanout: messages pushed, and their payload size in bytes (of the pushed data's JSON). */
  readonly messages: number;
  readonly size: number;
  /** fanout: messages per second, 0 = as fast as accepted. */
  readonly rate: number;
  /** fanout: pushes in flight (as fast as accepted) or at most (at a rate). */
  readonly window: number;
  /** How the publisher pushes: the target's HTTP API or MQTT. */
  readonly push: 'http' | 'mqtt' | 'auto';
  /** MQTT subscription QoS. */
  readonly qos: 0 | 1;
  readonly workers: number;
  /** Connects in flight per worker for idle and fanout (storm: all at once). */
  readonly connectConcurrency: number;
  readonly connectTimeoutMs: number;
  /** Wait after connecting before measuring memory / publishing. */
  readonly settleMs: number;
  /** idle: how long to hold the connections (idle CPU is measured over it). */
  readonly holdMs: number;
  /** fanout: stop waiting when no message arrived for this long. */
  readonly drainTimeoutMs: number;
  /** The whole run stops by itself after this long. */
  readonly timeoutMs: number;
  /** Pin the server to core 0 and the load generator to core 1 (taskset). */
  readonly pin: boolean;
  readonly entry: StartOptions['entry'];
  readonly peersDir: string | undefined;
  readonly heartbeatSeconds: number;
  readonly quick: boolean;
  readonly quiet: boolean;
}

/** Parameters as given: anything left out (or undefined) takes its default. */
export type BenchInput = { readonly [K in keyof BenchParams]?: BenchParams[K] | undefined };

export const DEFAULTS: BenchParams = {
  target: 'shaddock',
  connector: 'hybrid-tcp',
  scenario: 'fanout',
  connections: 1000,
  messages: 100,
  size: 256,
  rate: 0,
  window: 8,
  push: 'auto',
  qos: 0,
  workers: 0,
  connectConcurrency: 200,
  connectTimeoutMs: 30_000,
  settleMs: 2000,
  holdMs: 5000,
  drainTimeoutMs: 10_000,
  timeoutMs: 300_000,
  pin: true,
  entry: 'auto',
  peersDir: process.env['BENCH_PEERS_DIR'] || undefined,
  heartbeatSeconds: 25,
  quick: false,
  quiet: false,
};

/** Small and short: a few hundred connections, seconds; for `npm test`. */
export const QUICK: Partial<BenchParams> = {
  connections: 200,
  messages: 20,
  size: 128,
  settleMs: 300,
  holdMs: 500,
  drainTimeoutMs: 5000,
  timeoutMs: 60_000,
  workers: 1,
  pin: false,
  quick: true,
};

export interface ConnectMetrics {
  readonly attempted: number;
  readonly entered: number;
  readonly failed: number;
  /** From the connect command to the last connection entered, ms. */
  readonly durationMs: number;
  readonly perSecond: number;
  /** Per connection: socket opened → entered (answer to enter / SUBACK), µs. */
  readonly latencyUs: LatencySummary;
  readonly errors: Readonly<Record<string, number>>;
}

export interface AfterGcBreakdown {
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** RSS − V8's reserved heap − external. */
  readonly other: number;
}

export interface ServerMetrics {
  readonly rssBaselineKB: number;
  readonly rssConnectedKB: number;
  /** (RSS with the connections − RSS before) / connections entered. */
  readonly rssPerConnectionKB: number;
  /**
   * idle, Node servers: the same after a full GC at both ends (inspector), so garbage the
   * connect phase left is not counted as what a connection holds. Undefined for
   * Mosquitto (no GC) and other scenarios.
   */
  readonly rssPerConnectionAfterGcKB: number | undefined;
  /**
   * idle, Node servers: where the after-GC figure lies, bytes per connection, from
   * `process.memoryUsage()` at both ends: V8's heap in use and reserved, memory outside
   * it that V8 knows of (`external`, Buffers' backing stores among it), and the rest of
   * RSS (the allocator's heap, thread stacks, code).
   */
  readonly afterGcBytesPerConnection: AfterGcBreakdown | undefined;
  readonly rssEndKB: number;
  readonly cpuConnectUs: number;
  readonly cpuPerConnectionUs: number;
  /** idle: server CPU while holding the connections, % of one core. */
  readonly idleCpuPercent: number | undefined;
  /** fanout: server CPU over the fan-out, µs, per delivery, and % of one core. */
  readonly cpuFanoutUs: number | undefined;
  readonly cpuUsPerDelivery: number | undefined;
  readonly fanoutCpuPercent: number | undefined;
}

export interface FanoutMetrics {
  readonly messages: number;
  readonly size: number;
  readonly rate: number;
  readonly accepted: number;
  readonly publishErrors: number;
  readonly publishErrorSamples: readonly string[];
  readonly publishMs: number;
  /** Push request → accepted (HTTP answer / PUBACK), µs. */
  readonly acceptP50Us: number;
  readonly acceptP99Us: number;
  /** Connections entered when the first push went out, and the deliveries they expect. */
  readonly subscribers: number;
  readonly expected: number;
  /** Deliveries counted, duplicates included; distinct ones. */
  readonly delivered: number;
  readonly unique: number;
  readonly lost: number;
  readonly duplicated: number;
  /** Subscribers that got every message. */
  readonly complete: number;
  /** Connections that closed during the run (kicked as slow consumers, reset…). */
  readonly dropped: number;
  /** Deliveries / (last delivery − first push), per second. */
  readonly deliveredPerSecond: number;
  readonly durationMs: number;
  /** Push sent → delivered, µs. */
  readonly latencyUs: LatencySummary;
  readonly foreign: number;
}

export interface LoadgenMetrics {
  readonly workers: number;
  readonly pinned: string;
  /** CPU of the workers and the coordinator (the publisher) over the measured phase, µs. */
  readonly cpuUs: number;
  /** Of which the workers (the clients) and the coordinator (the publisher). */
  readonly workerCpuUs: number;
  readonly coordinatorCpuUs: number;
  readonly wallMs: number;
  /** % of one core: the load generator runs on one core when pinned. */
  readonly cpuPercent: number;
  readonly peakWorkerRssKB: number;
  /** True when the load generator used ≥ 85 % of its core: the numbers may be its limit. */
  readonly saturated: boolean;
}

export interface BenchResult {
  readonly schema: 1;
  readonly date: string;
  readonly machine: MachineInfo;
  readonly params: BenchParams & { readonly srcAddrs: readonly string[]; readonly push: 'http' | 'mqtt' };
  readonly target: { readonly kind: TargetKind; readonly version: string; readonly pid: number; readonly cpus: string };
  readonly metrics: {
    readonly connect: ConnectMetrics;
    readonly server: ServerMetrics;
    readonly fanout: FanoutMetrics | undefined;
    readonly loadgen: LoadgenMetrics;
  };
  readonly warnings: readonly string[];
  /** No failed connection, and for fan-out no loss, no duplicate, no publish error. */
  readonly ok: boolean;
}

export function resolveParams(partial: BenchInput): BenchParams {
  const base = partial.quick === true ? { ...DEFAULTS, ...QUICK } : DEFAULTS;
  const given = stripUndefined(partial);
  const target = given.target ?? base.target;
  // No connector named: the target's own (the first it serves).
  const connector = given.connector ?? TARGET_CONNECTORS[target]?.[0] ?? base.connector;
  const p = { ...base, ...given, connector } as BenchParams;
  if (!TARGETS.includes(p.target)) throw new Error(`unknown target "${p.target}" (one of ${TARGETS.join(', ')})`);
  if (!CONNECTORS.includes(p.connector)) throw new Error(`unknown connector "${p.connector}" (one of ${CONNECTORS.join(', ')})`);
  if (!TARGET_CONNECTORS[p.target].includes(p.connector)) {
    throw new Error(`target ${p.target} has no ${p.connector} connector (it has: ${TARGET_CONNECTORS[p.target].join(', ')})`);
  }
  if (!SCENARIOS.includes(p.scenario)) throw new Error(`unknown scenario "${p.scenario}" (one of ${SCENARIOS.join(', ')})`);
  if (!Number.isInteger(p.connections) || p.connections < 1) throw new Error('--connections must be a whole number ≥ 1');
  if (p.connections > 19_000) throw new Error('--connections: at most 19,000 (the server, like every process here, is capped at 20,000 open files)');
  if (!Number.isInteger(p.messages) || p.messages < 0) throw new Error('--messages must be a whole number ≥ 0');
  if (p.workers === 0) return { ...p, workers: Math.max(1, Math.ceil(p.connections / MAX_PER_WORKER)) };
  if (Math.ceil(p.connections / p.workers) > MAX_PER_WORKER) throw new Error(`--workers: each worker holds at most ${MAX_PER_WORKER} connections`);
  return p;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---------------------------------------------------------------- the run

function sumStats(replies: ReadonlyMap<unknown, { readonly stats: WorkerStats }>): { cpuUs: number } {
  let cpuUs = 0;
  for (const r of replies.values()) cpuUs += r.stats.cpuUs;
  return { cpuUs };
}

function ownCpuUs(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * Runs one benchmark. Starts the target unless one is given (then leaves it running),
 * and always stops the workers it started.
 */
export async function runBenchmark(partial: BenchInput, given?: Target): Promise<BenchResult> {
  const p = resolveParams(partial);
  const progress = new Progress(p.quiet);
  const warnings: string[] = [];
  const pinning = p.pin && hasTaskset();
  if (p.pin && !pinning) warnings.push('taskset not available or fewer than 2 cores: server and load generator are not pinned');
  const srcAddrs = sourceAddresses(p.connections, PER_SOURCE_ADDRESS, SOURCE_PORT_COUNT);
  await checkSourceAddresses(srcAddrs);
  if (pinning) pinSelf(LOAD_CORE);

  const deadline = Date.now() + p.timeoutMs;
  const remaining = (): number => Math.max(0, deadline - Date.now());
  let target = given;
  let pool: WorkerPool | undefined;
  const hardStop = setTimeout(() => {
    process.stderr.write(`bench: the run passed its time limit of ${p.timeoutMs} ms; stopping\n`);
    pool?.kill();
    if (given === undefined) void target?.stop();
    process.exitCode = 1;
  }, p.timeoutMs + 30_000);
  hardStop.unref();

  try {
    if (target === undefined) {
      progress.phase('start');
      progress.update(`starting ${p.target}…`);
      target = await startTarget(p.target, {
        repoRoot: REPO_ROOT,
        core: pinning ? SERVER_CORE : undefined,
        entry: p.entry,
        peersDir: p.peersDir,
        heartbeatSeconds: p.heartbeatSeconds,
        startTimeoutMs: 30_000,
        // Idle memory is also read after a full GC (through the inspector), for every Node server alike.
        gcProbe: p.scenario === 'idle',
      });
    }
    const push = p.push === 'auto' ? target.defaultPush : p.push;
    const endpoint = target.endpoint(p.connector);
    const runId = 1 + Math.floor(Math.random() * 999_999);
    const cfg: ClientConfig = {
      ...endpoint,
      kind: p.connector,
      qos: p.qos,
      clientIdPrefix: `b${runId}-`,
      srcAddrs,
      portLow: SOURCE_PORT_LOW,
      portCount: SOURCE_PORT_COUNT,
      // A different lap of ports each run: no 4-tuple of the last run's TIME_WAITs again.
      portOffset: Math.floor(Math.random() * SOURCE_PORT_COUNT),
    };

    // Workers first: starting them costs the load core only.
    progress.phase('workers');
    const workers = new WorkerPool();
    pool = workers;
    for (let k = 0; k < p.workers; k++) workers.add(pinning ? LOAD_CORE : undefined, undefined);
    await workers.ready();
    const per = Math.ceil(p.connections / p.workers);
    const concurrency = p.scenario === 'storm' ? 0 : Math.max(1, Math.ceil(p.connectConcurrency / p.workers));
    for (let k = 0; k < p.workers; k++) {
      const first = k * per;
      const count = Math.max(0, Math.min(per, p.connections - first));
      pool.send(pool.slots[k]!, { t: 'init', cfg, first, count, concurrency, connectTimeoutMs: p.connectTimeoutMs });
    }

    // Baseline: the server before any client.
    await sleep(p.quick ? 200 : 1000);
    const pid = target.pid;
    const rssBaselineKB = processRssKB(pid);
    const baselineGc = p.scenario === 'idle' ? await rssAfterGc(target, pid) : undefined;
    const cpuBeforeConnect = processCpuUs(pid);
    const wBefore = sumStats(await pool.ask('stats')).cpuUs;
    const cBefore = ownCpuUs();
    const wallBefore = monoUs();

    // Connect.
    progress.phase(p.scenario === 'storm' ? 'storm' : 'connect');
    const connectStartUs = monoUs();
    pool.broadcast({ t: 'connect' });
    while (!pool.allConnected) {
      if (remaining() === 0) throw new Error('the run timed out while connecting');
      if (!processAlive(pid)) throw new Error(`the server (pid ${pid}) is gone:\n${target.stderrTail()}`);
      const t = pool.totals();
      progress.update(`connections ${t.entered}/${p.connections} entered, ${t.failed} failed`);
      await sleep(100);
    }
    const cpuAfterConnect = processCpuUs(pid);
    const afterConnect = pool.totals();
    progress.update(`connections ${afterConnect.entered}/${p.connections} entered, ${afterConnect.failed} failed`);

    // Settle, then memory.
    await sleep(p.settleMs);
    const rssConnectedKB = processRssKB(pid);
    const connectedGc = baselineGc !== undefined ? await rssAfterGc(target, pid) : undefined;

    let idleCpuPercent: number | undefined;
    let fanout: FanoutMetrics | undefined;
    let cpuFanoutUs: number | undefined;
    let fanoutCpuPercent: number | undefined;
    let workerCpuUs = 0;
    let coordinatorCpuUs = 0;
    let lgWallUs = 0;

    if (p.scenario === 'idle') {
      progress.phase('hold');
      const c0 = processCpuUs(pid);
      const w0 = monoUs();
      const holdEnd = Date.now() + Math.min(p.holdMs, remaining());
      while (Date.now() < holdEnd) {
        const t = pool.totals();
        progress.update(`holding ${t.entered - t.dropped} connections`);
        await sleep(Math.min(250, Math.max(0, holdEnd - Date.now())));
      }
      idleCpuPercent = round(((processCpuUs(pid) - c0) / (monoUs() - w0)) * 100, 2);
    }

    if (p.scenario === 'fanout') {
      progress.phase('fanout');
      pool.broadcast({ t: 'expect', runId, messages: p.messages });
      await pool.ask('stats'); // every worker has taken the expect
      const subscribers = pool.totals().entered - pool.totals().dropped;
      const expected = subscribers * p.messages;
      const c0 = processCpuUs(pid);
      const w0 = sumStats(await pool.ask('stats')).cpuUs;
      const co0 = ownCpuUs();
      let accepted = 0;
      const pubPromise = publish(target.push(push, p.connector), {
        runId,
        messages: p.messages,
        size: p.size,
        rate: p.rate,
        window: p.window,
        timeoutMs: remaining(),
        onProgress: (n) => {
          accepted = n;
        },
      });
      let pubDone = false;
      const pubResult = pubPromise.finally(() => {
        pubDone = true;
      });
      let lastReceived = -1;
      let lastChange = Date.now();
      for (;;) {
        const t = pool.totals();
        progress.update(`pushed ${accepted}/${p.messages}, delivered ${t.unique}/${expected}${t.dropped > 0 ? `, ${t.dropped} dropped` : ''}`);
        if (pubDone && t.unique >= expected) break;
        if (t.received !== lastReceived) {
          lastReceived = t.received;
          lastChange = Date.now();
        } else if (pubDone && Date.now() - lastChange > p.drainTimeoutMs) {
          warnings.push(`fan-out: gave up waiting after ${p.drainTimeoutMs} ms without a delivery`);
          break;
        }
        if (remaining() === 0) {
          warnings.push('fan-out: the run timed out');
          break;
        }
        await sleep(pubDone ? 50 : 100);
      }
      const pub = await pubResult;
      cpuFanoutUs = processCpuUs(pid) - c0;
      const replies = await pool.ask('report');
      workerCpuUs = sumStats(replies).cpuUs - w0;
      coordinatorCpuUs = ownCpuUs() - co0;
      const { latency, received: delivered, unique, lost, duplicated, complete, dropped, foreign, lastMessageUs: lastUs } = mergeReports(replies.values());
      const durationUs = Math.max(1, (lastUs > 0 ? lastUs : monoUs()) - pub.startUs);
      const accept = [...pub.acceptLatency].sort((a, b) => a - b);
      fanoutCpuPercent = round((cpuFanoutUs / durationUs) * 100, 1);
      lgWallUs = monoUs() - pub.startUs;
      fanout = {
        messages: p.messages,
        size: p.size,
        rate: p.rate,
        accepted: pub.accepted,
        publishErrors: pub.errors,
        publishErrorSamples: pub.errorSamples,
        publishMs: round((pub.endUs - pub.startUs) / 1000),
        acceptP50Us: Math.round(percentile(accept, 0.5)),
        acceptP99Us: Math.round(percentile(accept, 0.99)),
        subscribers,
        expected,
        delivered,
        unique,
        lost,
        duplicated,
        complete,
        dropped: dropped - afterConnect.dropped,
        deliveredPerSecond: Math.round(delivered / (durationUs / 1e6)),
        durationMs: round(durationUs / 1000),
        latencyUs: latency.summary(),
        foreign,
      };
      if (pub.errors > 0) warnings.push(`publisher: ${pub.errors} pushes refused or failed: ${pub.errorSamples.join(' | ')}`);
    }

    // Connect metrics (every scenario).
    const final = await pool.ask('report');
    const { connectLatency, errors, lastEnteredUs } = mergeReports(final.values());
    const connectMs = lastEnteredUs > 0 ? (lastEnteredUs - connectStartUs) / 1000 : 0;
    const connect: ConnectMetrics = {
      attempted: p.connections,
      entered: afterConnect.entered,
      failed: afterConnect.failed,
      durationMs: round(connectMs),
      perSecond: connectMs > 0 ? Math.round(afterConnect.entered / (connectMs / 1000)) : 0,
      latencyUs: connectLatency.summary(),
      errors,
    };
    if (p.scenario !== 'fanout') {
      workerCpuUs = sumStats(final).cpuUs - wBefore;
      coordinatorCpuUs = ownCpuUs() - cBefore;
      lgWallUs = monoUs() - wallBefore;
    }
    const lgCpuUs = workerCpuUs + coordinatorCpuUs;
    const loadgenPercent = lgWallUs > 0 ? (lgCpuUs / lgWallUs) * 100 : 0;
    const loadgen: LoadgenMetrics = {
      workers: p.workers,
      pinned: pinning ? affinityOf(process.pid) : 'no',
      cpuUs: Math.round(lgCpuUs),
      workerCpuUs: Math.round(workerCpuUs),
      coordinatorCpuUs: Math.round(coordinatorCpuUs),
      wallMs: round(lgWallUs / 1000),
      cpuPercent: round(loadgenPercent),
      peakWorkerRssKB: pool.totals().rssKB,
      saturated: loadgenPercent >= 85,
    };
    if (loadgen.saturated) warnings.push(`the load generator used ${loadgen.cpuPercent}% of its core: the results may be its limit, not the server's`);
    if (connect.failed > 0) warnings.push(`${connect.failed} of ${p.connections} connections failed: ${JSON.stringify(errors)}`);

    const entered = connect.entered > 0 ? connect.entered : NaN;
    const server: ServerMetrics = {
      rssBaselineKB,
      rssConnectedKB,
      rssPerConnectionKB: round((rssConnectedKB - rssBaselineKB) / entered, 2),
      rssPerConnectionAfterGcKB:
        baselineGc !== undefined && connectedGc !== undefined ? round((connectedGc.rssKB - baselineGc.rssKB) / entered, 2) : undefined,
      afterGcBytesPerConnection: baselineGc !== undefined && connectedGc !== undefined ? breakdown(baselineGc, connectedGc, entered) : undefined,
      rssEndKB: processRssKB(pid),
      cpuConnectUs: Math.round(cpuAfterConnect - cpuBeforeConnect),
      cpuPerConnectionUs: round((cpuAfterConnect - cpuBeforeConnect) / entered, 1),
      idleCpuPercent,
      cpuFanoutUs: cpuFanoutUs === undefined ? undefined : Math.round(cpuFanoutUs),
      cpuUsPerDelivery: fanout === undefined || fanout.delivered === 0 || cpuFanoutUs === undefined ? undefined : round(cpuFanoutUs / fanout.delivered, 3),
      fanoutCpuPercent,
    };
    progress.done();
    const ok =
      connect.failed === 0 &&
      (fanout === undefined || (fanout.lost === 0 && fanout.duplicated === 0 && fanout.publishErrors === 0 && fanout.foreign === 0));
    return {
      schema: 1,
      date: new Date().toISOString(),
      machine: machineInfo(REPO_ROOT),
      params: { ...p, push, srcAddrs },
      target: { kind: target.kind, version: target.version, pid: target.pid, cpus: affinityOf(target.pid) },
      metrics: { connect, server, fanout, loadgen },
      warnings,
      ok,
    };
  } finally {
    clearTimeout(hardStop);
    progress.done();
    await pool?.close();
    if (given === undefined && target !== undefined) await target.stop();
  }
}

// ---------------------------------------------------------------- output

export const CSV_COLUMNS = [
  'date',
  'commit',
  'dirty',
  'target',
  'version',
  'connector',
  'scenario',
  'connections',
  'messages',
  'size',
  'rate',
  'entered',
  'connectPerSec',
  'connectP99Us',
  'rssPerConnKB',
  'cpuPerConnUs',
  'deliveredPerSec',
  'cpuUsPerDelivery',
  'latencyP50Us',
  'latencyP99Us',
  'latencyMaxUs',
  'lost',
  'duplicated',
  'loadgenCpuPct',
  'node',
  'ok',
  'rssPerConnGcKB',
] as const;

export function csvRow(r: BenchResult): string {
  const f = r.metrics.fanout;
  const values: Record<(typeof CSV_COLUMNS)[number], string | number | boolean> = {
    date: r.date,
    commit: r.machine.commit,
    dirty: r.machine.dirty,
    target: r.target.kind,
    version: r.target.version,
    connector: r.params.connector,
    scenario: r.params.scenario,
    connections: r.params.connections,
    messages: f?.messages ?? '',
    size: f?.size ?? '',
    rate: f?.rate ?? '',
    entered: r.metrics.connect.entered,
    connectPerSec: r.metrics.connect.perSecond,
    connectP99Us: r.metrics.connect.latencyUs.p99Us,
    rssPerConnKB: r.metrics.server.rssPerConnectionKB,
    cpuPerConnUs: r.metrics.server.cpuPerConnectionUs,
    deliveredPerSec: f?.deliveredPerSecond ?? '',
    cpuUsPerDelivery: r.metrics.server.cpuUsPerDelivery ?? '',
    latencyP50Us: f?.latencyUs.p50Us ?? '',
    latencyP99Us: f?.latencyUs.p99Us ?? '',
    latencyMaxUs: f?.latencyUs.maxUs ?? '',
    lost: f?.lost ?? '',
    duplicated: f?.duplicated ?? '',
    loadgenCpuPct: r.metrics.loadgen.cpuPercent,
    node: r.machine.node,
    ok: r.ok,
    rssPerConnGcKB: r.metrics.server.rssPerConnectionAfterGcKB ?? '',
  };
  return CSV_COLUMNS.map((c) => {
    const v = String(values[c]);
    return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
  }).join(',');
}

export function appendCsv(path: string, r: BenchResult): void {
  mkdirSync(dirname(path), { recursive: true });
  if (!existsSync(path)) writeFileSync(path, `${CSV_COLUMNS.join(',')}\n`);
  appendFileSync(path, `${csvRow(r)}\n`);
}

export const DEFAULT_CSV = join(REPO_ROOT, 'bench/results/results.csv');

interface AfterGc {
  /** RSS from /proc, read 500 ms after the GC. */
  readonly rssKB: number;
  readonly usage: NodeMemoryUsage;
}

/** The server's RSS and memory usage after a full GC, or undefined when it has no inspector to ask (Mosquitto). */
async function rssAfterGc(target: Target, pid: number): Promise<AfterGc | undefined> {
  const usage = await target.collectGarbage();
  if (usage === undefined) return undefined;
  // Let the GC's freed pages go back to the OS before reading.
  await sleep(500);
  return { rssKB: processRssKB(pid), usage };
}

function breakdown(before: AfterGc, after: AfterGc, n: number): AfterGcBreakdown {
  const per = (k: keyof NodeMemoryUsage): number => Math.round((after.usage[k] - before.usage[k]) / n);
  const rss = Math.round(((after.rssKB - before.rssKB) * 1024) / n);
  return {
    heapUsed: per('heapUsed'),
    heapTotal: per('heapTotal'),
    external: per('external'),
    arrayBuffers: per('arrayBuffers'),
    other: rss - per('heapTotal') - per('external'),
  };
}

/** A few human lines about a result (stderr). */
export function summarize(r: BenchResult): string {
  const m = r.metrics;
  const lines = [
    `${r.target.version} · ${r.params.connector} · ${r.params.scenario} · ${r.params.connections} connections${r.ok ? '' : '  (NOT OK)'}`,
    `  connect   ${m.connect.entered} entered, ${m.connect.failed} failed in ${m.connect.durationMs} ms (${m.connect.perSecond}/s), p50 ${ms(m.connect.latencyUs.p50Us)} p99 ${ms(m.connect.latencyUs.p99Us)}`,
    `  server    ${m.server.rssPerConnectionKB} KB RSS/connection` +
      (m.server.rssPerConnectionAfterGcKB !== undefined ? ` (${m.server.rssPerConnectionAfterGcKB} KB after a full GC)` : '') +
      (m.server.afterGcBytesPerConnection !== undefined ? ` [B/conn after GC: ${formatBreakdown(m.server.afterGcBytesPerConnection)}]` : '') +
      `, ${m.server.cpuPerConnectionUs} µs CPU/connection` +
      (m.server.idleCpuPercent !== undefined ? `, idle CPU ${m.server.idleCpuPercent}%` : ''),
  ];
  const f = m.fanout;
  if (f !== undefined) {
    lines.push(
      `  fan-out   ${f.delivered}/${f.expected} delivered (${f.deliveredPerSecond}/s), ${m.server.cpuUsPerDelivery ?? '?'} µs server CPU/delivery (server ${m.server.fanoutCpuPercent}% of a core)`,
      `  latency   p50 ${ms(f.latencyUs.p50Us)} p99 ${ms(f.latencyUs.p99Us)} max ${ms(f.latencyUs.maxUs)}; lost ${f.lost}, duplicated ${f.duplicated}, dropped ${f.dropped}`,
    );
  }
  lines.push(
    `  loadgen   ${m.loadgen.cpuPercent}% of a core (workers ${ms(m.loadgen.workerCpuUs)}, coordinator ${ms(m.loadgen.coordinatorCpuUs)} CPU in ${m.loadgen.wallMs} ms; ${m.loadgen.workers} worker${m.loadgen.workers === 1 ? '' : 's'}, pinned ${m.loadgen.pinned})`,
  );
  for (const w of r.warnings) lines.push(`  warning   ${w}`);
  return lines.join('\n');
}

function ms(us: number): string {
  return us >= 1000 ? `${round(us / 1000, 1)} ms` : `${us} µs`;
}

function formatBreakdown(b: AfterGcBreakdown): string {
  return `heap used ${b.heapUsed} of ${b.heapTotal}, external ${b.external} (array buffers ${b.arrayBuffers}), other ${b.other}`;
}
