/**
 * `npm run bench -- …`: one benchmark run against Shaddock or a peer.
 *
 *   node --import tsx bench/load/run.ts --target shaddock --connector hybrid-tcp \
 *     --scenario fanout --connections 5000 --messages 100 --size 256 --json out.json
 *
 * Prints a summary on stderr (with a progress line while it runs) and the JSON result
 * on stdout (and to --json FILE); appends a CSV row to bench/results/results.csv.
 * Exits 1 when the run is not ok (failed connections, lost or duplicated messages).
 * See bench/README.md.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { appendCsv, DEFAULT_CSV, DEFAULTS, runBenchmark, SCENARIOS, summarize, type BenchInput, type BenchParams } from './bench.js';
import { CONNECTORS } from './clients.js';
import { installChildCleanup } from './proc.js';
import { TARGETS } from './targets.js';

function int(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be a whole number ≥ ${min}`);
    return n;
  };
}

const program = new Command('bench')
  .description('Shaddock load benchmark: one run of one scenario against one target (bench/README.md)')
  .addOption(new Option('--target <name>', 'server under test').choices(TARGETS).default(DEFAULTS.target))
  .addOption(new Option('--connector <name>', 'client protocol (default: the target\'s first)').choices(CONNECTORS))
  .addOption(new Option('--scenario <name>', 'idle | fanout | storm').choices(SCENARIOS).default(DEFAULTS.scenario))
  .option('--connections <n>', 'client connections', int('--connections', 1))
  .option('--messages <n>', 'fanout: messages to push', int('--messages'))
  .option('--size <bytes>', 'fanout: payload size', int('--size'))
  .option('--rate <n>', 'fanout: messages per second, 0 = as fast as accepted', int('--rate'))
  .option('--window <n>', 'fanout: pushes in flight', int('--window', 1))
  .addOption(new Option('--push <how>', 'how the publisher pushes (auto: HTTP, MQTT for mosquitto)').choices(['auto', 'http', 'mqtt']))
  .addOption(new Option('--qos <n>', 'MQTT subscription QoS').choices(['0', '1']))
  .option('--workers <n>', `load worker processes (default: enough for ≤ 15,000 sockets each)`, int('--workers', 1))
  .option('--connect-concurrency <n>', 'connects in flight (idle, fanout)', int('--connect-concurrency', 1))
  .option('--settle <ms>', 'wait after connecting before measuring', int('--settle'))
  .option('--hold <ms>', 'idle: how long to hold the connections', int('--hold'))
  .option('--drain-timeout <ms>', 'fanout: give up after this long without a delivery', int('--drain-timeout'))
  .option('--timeout <ms>', 'the whole run stops by itself after this long', int('--timeout', 1000))
  .option('--no-pin', 'do not pin the server (core 0) and the load generator (core 1)')
  .addOption(new Option('--entry <how>', 'Shaddock from dist/ or src/ through tsx').choices(['auto', 'dist', 'tsx']))
  .option('--peers-dir <dir>', 'folder whose node_modules hold peers not in the repo (also BENCH_PEERS_DIR)')
  .option('--heartbeat <s>', 'Pomelo heartbeat the servers announce', int('--heartbeat', 1))
  .option('--quick', 'tiny and short (a few hundred connections): a correctness check')
  .option('--json <file>', 'also write the JSON result to FILE')
  .option('--csv <file>', 'append the CSV row here', DEFAULT_CSV)
  .option('--no-csv', 'do not append a CSV row')
  .option('--quiet', 'no progress line')
  .parse();

const o = program.opts<{
  target: BenchParams['target'];
  connector?: BenchParams['connector'];
  scenario: BenchParams['scenario'];
  connections?: number;
  messages?: number;
  size?: number;
  rate?: number;
  window?: number;
  push?: BenchParams['push'];
  qos?: '0' | '1';
  workers?: number;
  connectConcurrency?: number;
  settle?: number;
  hold?: number;
  drainTimeout?: number;
  timeout?: number;
  pin: boolean;
  entry?: BenchParams['entry'];
  peersDir?: string;
  heartbeat?: number;
  quick?: boolean;
  json?: string;
  csv: string | false;
  quiet?: boolean;
}>();

const params: BenchInput = {
  target: o.target,
  connector: o.connector,
  scenario: o.scenario,
  connections: o.connections,
  messages: o.messages,
  size: o.size,
  rate: o.rate,
  window: o.window,
  push: o.push,
  qos: o.qos === undefined ? undefined : o.qos === '1' ? 1 : 0,
  workers: o.workers,
  connectConcurrency: o.connectConcurrency,
  settleMs: o.settle,
  holdMs: o.hold,
  drainTimeoutMs: o.drainTimeout,
  timeoutMs: o.timeout,
  entry: o.entry,
  peersDir: o.peersDir === undefined ? undefined : resolve(o.peersDir),
  heartbeatSeconds: o.heartbeat,
  quick: o.quick === true,
  quiet: o.quiet === true,
  ...(o.pin ? {} : { pin: false }),
};

installChildCleanup();
try {
  const result = await runBenchmark(params);
  const json = JSON.stringify(result, null, 2);
  process.stderr.write(`${summarize(result)}\n`);
  if (o.json !== undefined) writeFileSync(o.json, `${json}\n`);
  if (o.csv !== false) appendCsv(o.csv, result);
  process.stdout.write(`${json}\n`);
  process.exitCode = result.ok ? 0 : 1;
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
