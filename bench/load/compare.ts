/**
 * The comparison matrix: each Shaddock connector and the peer people would otherwise
 * run for that protocol, every run set up the same way (bench.ts), repeated (≥ 3,
 * interleaved so drift hits everyone alike), medians taken. Writes
 * bench/results/latest.json, bench/results/chart.png (server CPU µs per delivery and
 * KB of server memory per connection), and the CSV rows of every run.
 *
 *   node --import tsx bench/load/compare.ts --repeat 3 --connections 10000 --messages 200
 *   node --import tsx bench/load/compare.ts --quick            # a few seconds per run
 *   node --import tsx bench/load/compare.ts --chart-only bench/results/latest.json
 *
 * See bench/README.md.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { appendCsv, DEFAULT_CSV, REPO_ROOT, runBenchmark, summarize, type BenchInput, type BenchResult, type Scenario } from './bench.js';
import type { ConnectorKind } from './clients.js';
import { installChildCleanup, machineInfo, type MachineInfo } from './proc.js';
import { barChart, type Bar, type Rgb } from './png.js';
import { peerUnavailable, type TargetKind } from './targets.js';

export interface MatrixEntry {
  readonly target: TargetKind;
  readonly connector: ConnectorKind;
  /** For a Shaddock entry: the peer it is compared with. */
  readonly peer?: { readonly target: TargetKind; readonly connector: ConnectorKind };
  /** The scenarios it takes part in (default: all); the bare `net` server takes no pushes. */
  readonly scenarios?: readonly Scenario[];
}

/** Our connectors, each beside the server people would otherwise pick for that protocol. */
export const MATRIX: readonly MatrixEntry[] = [
  { target: 'shaddock', connector: 'hybrid-tcp', peer: { target: 'net', connector: 'tcp' } },
  { target: 'net', connector: 'tcp', scenarios: ['idle'] },
  { target: 'shaddock', connector: 'hybrid-ws', peer: { target: 'pomelo', connector: 'hybrid-ws' } },
  { target: 'pomelo', connector: 'hybrid-ws' },
  { target: 'shaddock', connector: 'sio', peer: { target: 'socketio', connector: 'sio' } },
  { target: 'socketio', connector: 'sio' },
  { target: 'shaddock', connector: 'mqtt', peer: { target: 'mosquitto', connector: 'mqtt' } },
  { target: 'mosquitto', connector: 'mqtt' },
  { target: 'shaddock', connector: 'ws', peer: { target: 'ws', connector: 'ws' } },
  { target: 'ws', connector: 'ws' },
  // ntfy's HTTP JSON stream (docs/ntfy.md); ntfy itself (Go) is not among the installed peers.
  { target: 'shaddock', connector: 'ntfy' },
];

/** The numbers kept per run, and their medians. */
export interface Sample {
  readonly ok: boolean;
  readonly entered: number;
  readonly connectPerSecond: number;
  readonly connectP99Us: number;
  readonly rssPerConnectionKB: number;
  /** idle, Node servers: RSS per connection after a full GC at both ends. */
  readonly rssPerConnectionAfterGcKB: number | undefined;
  /** The same, split (bytes per connection): V8's heap in use, and RSS outside V8's heap and external memory. */
  readonly heapUsedPerConnectionB: number | undefined;
  readonly otherPerConnectionB: number | undefined;
  readonly cpuPerConnectionUs: number;
  readonly deliveredPerSecond: number | undefined;
  readonly cpuUsPerDelivery: number | undefined;
  readonly latencyP50Us: number | undefined;
  readonly latencyP99Us: number | undefined;
  readonly latencyMaxUs: number | undefined;
  readonly lost: number | undefined;
  readonly duplicated: number | undefined;
  readonly loadgenCpuPercent: number;
  readonly serverCpuPercent: number | undefined;
}

export interface EntryResult {
  readonly target: TargetKind;
  readonly connector: ConnectorKind;
  readonly scenario: Scenario;
  readonly version: string;
  readonly runs: readonly Sample[];
  /** Medians of the runs (lost/duplicated: totals; loadgen CPU: the highest). */
  readonly median: Sample | undefined;
  readonly skipped?: string;
  readonly warnings: readonly string[];
}

export interface Ratio {
  readonly connector: ConnectorKind;
  readonly peer: string;
  readonly scenario: Scenario;
  /** Shaddock ÷ peer: below 1 means Shaddock uses less. */
  readonly cpuPerDelivery: number | undefined;
  readonly memoryPerConnection: number | undefined;
  readonly memoryPerConnectionAfterGc: number | undefined;
  readonly cpuPerConnection: number | undefined;
  /** Shaddock ÷ peer: above 1 means Shaddock delivers more per second. */
  readonly deliveredPerSecond: number | undefined;
}

export interface CompareResult {
  readonly schema: 1;
  readonly date: string;
  readonly machine: MachineInfo;
  readonly params: Record<string, unknown>;
  readonly entries: readonly EntryResult[];
  readonly ratios: readonly Ratio[];
}

export function sampleOf(r: BenchResult): Sample {
  const f = r.metrics.fanout;
  return {
    ok: r.ok,
    entered: r.metrics.connect.entered,
    connectPerSecond: r.metrics.connect.perSecond,
    connectP99Us: r.metrics.connect.latencyUs.p99Us,
    rssPerConnectionKB: r.metrics.server.rssPerConnectionKB,
    rssPerConnectionAfterGcKB: r.metrics.server.rssPerConnectionAfterGcKB,
    heapUsedPerConnectionB: r.metrics.server.afterGcBytesPerConnection?.heapUsed,
    otherPerConnectionB: r.metrics.server.afterGcBytesPerConnection?.other,
    cpuPerConnectionUs: r.metrics.server.cpuPerConnectionUs,
    deliveredPerSecond: f?.deliveredPerSecond,
    cpuUsPerDelivery: r.metrics.server.cpuUsPerDelivery,
    latencyP50Us: f?.latencyUs.p50Us,
    latencyP99Us: f?.latencyUs.p99Us,
    latencyMaxUs: f?.latencyUs.maxUs,
    lost: f?.lost,
    duplicated: f?.duplicated,
    loadgenCpuPercent: r.metrics.loadgen.cpuPercent,
    serverCpuPercent: r.metrics.server.fanoutCpuPercent,
  };
}

function median(values: readonly (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const m = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function total(values: readonly (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined);
  return v.length === 0 ? undefined : v.reduce((a, b) => a + b, 0);
}

export function medianSample(runs: readonly Sample[]): Sample | undefined {
  if (runs.length === 0) return undefined;
  const m = (k: keyof Sample): number | undefined => median(runs.map((r) => r[k] as number | undefined));
  return {
    ok: runs.every((r) => r.ok),
    entered: m('entered') ?? 0,
    connectPerSecond: m('connectPerSecond') ?? 0,
    connectP99Us: m('connectP99Us') ?? 0,
    rssPerConnectionKB: m('rssPerConnectionKB') ?? NaN,
    rssPerConnectionAfterGcKB: m('rssPerConnectionAfterGcKB'),
    heapUsedPerConnectionB: m('heapUsedPerConnectionB'),
    otherPerConnectionB: m('otherPerConnectionB'),
    cpuPerConnectionUs: m('cpuPerConnectionUs') ?? NaN,
    deliveredPerSecond: m('deliveredPerSecond'),
    cpuUsPerDelivery: m('cpuUsPerDelivery'),
    latencyP50Us: m('latencyP50Us'),
    latencyP99Us: m('latencyP99Us'),
    latencyMaxUs: m('latencyMaxUs'),
    lost: total(runs.map((r) => r.lost)),
    duplicated: total(runs.map((r) => r.duplicated)),
    loadgenCpuPercent: Math.max(...runs.map((r) => r.loadgenCpuPercent)),
    serverCpuPercent: m('serverCpuPercent'),
  };
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined;
  return Math.round((a / b) * 100) / 100;
}

export function ratios(entries: readonly EntryResult[]): Ratio[] {
  const out: Ratio[] = [];
  for (const e of entries) {
    if (e.target !== 'shaddock' || e.median === undefined) continue;
    const spec = MATRIX.find((m) => m.target === 'shaddock' && m.connector === e.connector)?.peer;
    if (spec === undefined) continue;
    const peer = entries.find((p) => p.target === spec.target && p.connector === spec.connector && p.scenario === e.scenario);
    if (peer?.median === undefined) continue;
    out.push({
      connector: e.connector,
      peer: peer.version,
      scenario: e.scenario,
      cpuPerDelivery: ratio(e.median.cpuUsPerDelivery, peer.median.cpuUsPerDelivery),
      memoryPerConnection: ratio(e.median.rssPerConnectionKB, peer.median.rssPerConnectionKB),
      memoryPerConnectionAfterGc: ratio(e.median.rssPerConnectionAfterGcKB, peer.median.rssPerConnectionAfterGcKB),
      cpuPerConnection: ratio(e.median.cpuPerConnectionUs, peer.median.cpuPerConnectionUs),
      deliveredPerSecond: ratio(e.median.deliveredPerSecond, peer.median.deliveredPerSecond),
    });
  }
  return out;
}

const SHADDOCK_COLOR: Rgb = [226, 112, 34];
const PEER_COLOR: Rgb = [86, 118, 168];

/** The chart: server CPU per delivery and memory per connection, Shaddock beside its peers. */
export function renderChart(result: CompareResult): Buffer {
  const fanout = result.entries.filter((e) => e.scenario === 'fanout' && e.skipped === undefined);
  // Memory from the idle runs (after a full GC where the server has one), else from whatever ran.
  const idle = result.entries.filter((e) => e.scenario === 'idle' && e.skipped === undefined);
  const memorySource = idle.length > 0 ? idle : fanout.length > 0 ? fanout : result.entries.filter((e) => e.skipped === undefined);
  const memoryOf = (e: EntryResult): number | undefined => e.median?.rssPerConnectionAfterGcKB ?? e.median?.rssPerConnectionKB;
  const bar = (e: EntryResult, value: number | undefined): Bar => ({
    label: e.target,
    label2: e.connector,
    sublabel: e.version.replace(/^\S+ /, 'v').replace(/[()]/g, ''),
    value,
    color: e.target === 'shaddock' ? SHADDOCK_COLOR : PEER_COLOR,
  });
  const p = result.params;
  const m = result.machine;
  const notes = [
    `${String(p['connections'])} connections, ${String(p['messages'])} messages of ${String(p['size'])} B ` +
      `${Number(p['rate']) > 0 ? `at ${String(p['rate'])}/s` : 'as fast as accepted'}; median of ${String(p['repeat'])} runs. Lower is better.`,
    `${m.cpuModel}, ${m.cpus} cores (server pinned to one, load to the other), Node ${m.node}, ${m.kernel}; ` +
      `commit ${m.commit.slice(0, 10)}${m.dirty ? '+' : ''}, ${result.date.slice(0, 10)}`,
  ];
  return barChart('Shaddock vs the servers people would otherwise run', notes, [
    { title: 'Server CPU per delivery', unit: 'µs', bars: fanout.map((e) => bar(e, e.median?.cpuUsPerDelivery)) },
    { title: 'Server memory per idle connection (after a full GC; Mosquitto as is)', unit: 'KB RSS', bars: memorySource.map((e) => bar(e, memoryOf(e))) },
  ]);
}

function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be a whole number ≥ ${min}`);
    return n;
  };
}

async function main(): Promise<void> {
  const program = new Command('bench:compare')
    .description('run Shaddock and its peers the same way, N times, and chart the medians (bench/README.md)')
    .option('--repeat <n>', 'runs of each entry (medians are taken)', int('--repeat', 1), 3)
    .option('--connections <n>', 'connections per run', int('--connections', 1))
    .option('--messages <n>', 'fanout: messages', int('--messages', 0))
    .option('--size <bytes>', 'fanout: payload size', int('--size', 0))
    .option('--rate <n>', 'fanout: messages per second, 0 = as fast as accepted', int('--rate', 0))
    .option('--scenarios <list>', 'comma-separated: fanout, idle, storm', 'fanout,storm')
    .option('--only <list>', 'comma-separated target:connector entries (e.g. shaddock:mqtt,mosquitto:mqtt)')
    .option('--peers-dir <dir>', 'folder whose node_modules hold peers not in the repo (also BENCH_PEERS_DIR)')
    .option('--entry <how>', 'Shaddock from dist/ or src/ through tsx: auto | dist | tsx', 'auto')
    .option('--quick', 'tiny runs: checks the whole pipeline in a minute')
    .option('--no-pin', 'do not pin server and load generator to separate cores')
    .option('--out <dir>', 'where latest.json and chart.png go', join(REPO_ROOT, 'bench/results'))
    .option('--no-csv', 'do not append CSV rows')
    .option('--chart-only <file>', 'only redraw the chart from a latest.json')
    .parse();
  const o = program.opts<{
    repeat: number;
    connections?: number;
    messages?: number;
    size?: number;
    rate?: number;
    scenarios: string;
    only?: string;
    peersDir?: string;
    entry: 'auto' | 'dist' | 'tsx';
    quick?: boolean;
    pin: boolean;
    out: string;
    csv: boolean;
    chartOnly?: string;
  }>();
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  if (o.chartOnly !== undefined) {
    const result = JSON.parse(readFileSync(o.chartOnly, 'utf8')) as CompareResult;
    writeFileSync(join(out, 'chart.png'), renderChart(result));
    process.stderr.write(`wrote ${join(out, 'chart.png')}\n`);
    return;
  }
  installChildCleanup();
  if (!['auto', 'dist', 'tsx'].includes(o.entry)) throw new InvalidArgumentError('--entry: auto, dist or tsx');
  const scenarios = o.scenarios.split(',').map((s) => s.trim()) as Scenario[];
  const only = o.only?.split(',').map((s) => s.trim());
  const matrix = only === undefined ? MATRIX : MATRIX.filter((m) => only.includes(`${m.target}:${m.connector}`));
  const peersDir = o.peersDir !== undefined ? resolve(o.peersDir) : process.env['BENCH_PEERS_DIR'] || undefined;
  const base: BenchInput = {
    connections: o.connections,
    messages: o.messages,
    size: o.size,
    rate: o.rate,
    quick: o.quick === true,
    peersDir,
    entry: o.entry,
    ...(o.pin ? {} : { pin: false }),
  };
  const keys = new Map<string, { entry: MatrixEntry; scenario: Scenario; runs: Sample[]; version: string; skipped?: string; warnings: string[] }>();
  for (const scenario of scenarios) {
    for (const entry of matrix) {
      if (entry.scenarios !== undefined && !entry.scenarios.includes(scenario)) continue;
      const skipped = peerUnavailable(entry.target, { repoRoot: REPO_ROOT, peersDir });
      const k = `${entry.target}:${entry.connector}:${scenario}`;
      keys.set(k, { entry, scenario, runs: [], version: entry.target, warnings: [], ...(skipped !== undefined ? { skipped } : {}) });
      if (skipped !== undefined) process.stderr.write(`skipping ${entry.target}: ${skipped}\n`);
    }
  }
  let params: Record<string, unknown> = {};
  for (let r = 1; r <= o.repeat; r++) {
    for (const [k, slot] of keys) {
      if (slot.skipped !== undefined) continue;
      process.stderr.write(`\n== run ${r}/${o.repeat}: ${k}\n`);
      try {
        const result = await runBenchmark({ ...base, target: slot.entry.target, connector: slot.entry.connector, scenario: slot.scenario });
        process.stderr.write(`${summarize(result)}\n`);
        if (o.csv) appendCsv(DEFAULT_CSV, result);
        slot.runs.push(sampleOf(result));
        slot.version = result.target.version;
        slot.warnings.push(...result.warnings);
        const rp = result.params;
        params = { connections: rp.connections, messages: rp.messages, size: rp.size, rate: rp.rate, window: rp.window, qos: rp.qos, quick: rp.quick, pin: rp.pin, repeat: o.repeat, scenarios };
      } catch (err) {
        const msg = (err as Error).message;
        process.stderr.write(`run failed: ${msg}\n`);
        slot.warnings.push(`run ${r} failed: ${msg.split('\n')[0] ?? msg}`);
      }
    }
  }
  const entries: EntryResult[] = [...keys.values()].map((s) => ({
    target: s.entry.target,
    connector: s.entry.connector,
    scenario: s.scenario,
    version: s.version,
    runs: s.runs,
    median: medianSample(s.runs),
    ...(s.skipped !== undefined ? { skipped: s.skipped } : {}),
    warnings: [...new Set(s.warnings)],
  }));
  const result: CompareResult = {
    schema: 1,
    date: new Date().toISOString(),
    machine: machineInfo(REPO_ROOT),
    params,
    entries,
    ratios: ratios(entries),
  };
  writeFileSync(join(out, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(out, 'chart.png'), renderChart(result));
  process.stderr.write(`\n${table(result)}\nwrote ${join(out, 'latest.json')} and ${join(out, 'chart.png')}${o.csv ? `; CSV rows in ${DEFAULT_CSV}` : ''}\n`);
}

/** A plain-text table of the medians and the ratios, for the terminal and BENCHMARKS.md. */
export function table(r: CompareResult): string {
  const rows = [['target', 'connector', 'scenario', 'conn/s', 'KB/conn', 'KB/conn GC', 'µs CPU/conn', 'deliv/s', 'µs CPU/deliv', 'p50 ms', 'p99 ms', 'lost', 'dup', 'loadgen %']];
  const n = (v: number | undefined, d = 1): string => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));
  for (const e of r.entries) {
    const m = e.median;
    if (m === undefined) {
      rows.push([e.version, e.connector, e.scenario, e.skipped ?? 'no run succeeded', '', '', '', '', '', '', '', '', '', '']);
      continue;
    }
    rows.push([
      e.version,
      e.connector,
      e.scenario,
      n(m.connectPerSecond, 0),
      n(m.rssPerConnectionKB, 2),
      n(m.rssPerConnectionAfterGcKB, 2),
      n(m.cpuPerConnectionUs, 0),
      n(m.deliveredPerSecond, 0),
      n(m.cpuUsPerDelivery, 2),
      n(m.latencyP50Us === undefined ? undefined : m.latencyP50Us / 1000),
      n(m.latencyP99Us === undefined ? undefined : m.latencyP99Us / 1000),
      n(m.lost, 0),
      n(m.duplicated, 0),
      n(m.loadgenCpuPercent, 0),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  const lines = rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  '));
  if (r.ratios.length > 0) {
    lines.push('', 'Shaddock ÷ peer (CPU, memory: lower is better; deliveries/s: higher is better)');
    for (const x of r.ratios) {
      lines.push(
        `  ${x.connector.padEnd(10)} vs ${x.peer.padEnd(18)} ${x.scenario.padEnd(7)} CPU/delivery ${n(x.cpuPerDelivery, 2)}  memory/conn ${n(x.memoryPerConnection, 2)} (after GC ${n(x.memoryPerConnectionAfterGc, 2)})  CPU/conn ${n(x.cpuPerConnection, 2)}  deliveries/s ${n(x.deliveredPerSecond, 2)}`,
      );
    }
  }
  return lines.join('\n');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(REPO_ROOT, 'bench/load/compare.ts')) {
  main().catch((err: unknown) => {
    process.stderr.write(`compare: ${(err as Error).message}\n`);
    process.exitCode = 2;
  });
}
