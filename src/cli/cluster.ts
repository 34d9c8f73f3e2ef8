// `shaddock cluster`: several nodes on one Redis, on this machine, for trying a cluster
// out (and for failure drills: kill one and watch its clients move). Each node is a
// child process running `shaddock start`, so each has its own event loop, as in
// production; this process only starts them, prefixes their output and stops them.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Command } from 'commander';
import { CliError, intOption, print } from './output.js';

interface ClusterOptions {
  nodes: number;
  redis?: string;
  redisPrefix?: string;
  basePort: number;
  host?: string;
  logLevel?: string;
  nodeTimeout?: number;
}

/** Ports of node `index` (0-based): a block of ten from the base port. */
export function nodePorts(basePort: number, index: number): { http: number; hybrid: number; sio: number; mqtt: number } {
  const base = basePort + 10 * index;
  return { http: base, hybrid: base + 1, sio: base + 2, mqtt: base + 3 };
}

export function addClusterCommand(program: Command): void {
  program
    .command('cluster')
    .description('start several local nodes on one Redis, on consecutive port blocks (for trying a cluster out)')
    .requiredOption('--nodes <n>', 'how many nodes', intOption('--nodes'))
    .option('--redis <url>', 'the Redis every node uses (also SHADDOCK_REDIS_URL)')
    .option('--redis-prefix <prefix>', 'key prefix, default shaddock: (also SHADDOCK_REDIS_PREFIX)')
    .option('--base-port <n>', 'node k listens on base+10k (HTTP), +1 (hybrid), +2 (socket.io), +3 (MQTT)', intOption('--base-port'), 4000)
    .option('--host <addr>', 'address to listen on (also SHADDOCK_HOST)')
    .option('--node-timeout <seconds>', 'a silent node is dead after this, default 15', intOption('--node-timeout'))
    .option('--log-level <level>', 'log level of every node (also SHADDOCK_LOG_LEVEL)')
    .action(async (opts: ClusterOptions) => {
      const redis = opts.redis ?? process.env['SHADDOCK_REDIS_URL'];
      if (redis === undefined || redis === '') throw new CliError('give the Redis URL: --redis redis://HOST:PORT (or SHADDOCK_REDIS_URL)');
      if (!(opts.nodes >= 1 && opts.nodes <= 64)) throw new CliError('--nodes must be 1 to 64');
      const last = nodePorts(opts.basePort, opts.nodes - 1).mqtt;
      if (opts.basePort < 1 || last > 65535) throw new CliError(`--base-port ${opts.basePort} leaves no room for ${opts.nodes} nodes`);
      await runCluster({ ...opts, redis });
    });
}

async function runCluster(opts: ClusterOptions & { readonly redis: string }): Promise<void> {
  const children: ChildProcess[] = [];
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const exits: Promise<void>[] = [];
  // One after the other: the first node's first start creates the admin and demo app,
  // and the others find them.
  for (let i = 0; i < opts.nodes && !stopping; i++) {
    const name = `node-${i + 1}`;
    const ports = nodePorts(opts.basePort, i);
    const args = [
      ...process.execArgv,
      process.argv[1] ?? '',
      'start',
      '--redis',
      opts.redis,
      '--node-id',
      name,
      '--http-port',
      String(ports.http),
      '--hybrid-port',
      String(ports.hybrid),
      '--sio-port',
      String(ports.sio),
      '--mqtt-port',
      String(ports.mqtt),
      ...(opts.redisPrefix !== undefined ? ['--redis-prefix', opts.redisPrefix] : []),
      ...(opts.host !== undefined ? ['--host', opts.host] : []),
      ...(opts.logLevel !== undefined ? ['--log-level', opts.logLevel] : []),
      ...(opts.nodeTimeout !== undefined ? ['--node-timeout', String(opts.nodeTimeout)] : []),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    children.push(child);
    const ready = prefixLines(child, name);
    exits.push(
      new Promise((resolve) =>
        child.on('close', (code, signal) => {
          print(`[${name}] exited (${signal ?? `code ${code}`})`);
          resolve();
        }),
      ),
    );
    const started = await Promise.race([ready.then(() => true), new Promise<boolean>((resolve) => child.once('close', () => resolve(false)))]);
    if (!started) {
      stop();
      await Promise.all(exits);
      throw new CliError(`${name} did not start (see its output above)`);
    }
  }
  if (!stopping) {
    print();
    print(`Cluster of ${opts.nodes} on ${opts.redis}: Ctrl-C stops every node; stop one (kill PID) to watch its clients move.`);
    print('  node      pid      HTTP   hybrid  socket.io  MQTT');
    children.forEach((child, i) => {
      const p = nodePorts(opts.basePort, i);
      print(`  node-${String(i + 1).padEnd(4)}${String(child.pid).padEnd(9)}${String(p.http).padEnd(7)}${String(p.hybrid).padEnd(8)}${String(p.sio).padEnd(11)}${p.mqtt}`);
    });
    print('Ready. Press Ctrl-C to stop.');
  }
  await Promise.all(exits);
}

/** Copies a child's output with its name in front; resolves when its banner says it is ready. */
function prefixLines(child: ChildProcess, name: string): Promise<void> {
  return new Promise((resolve) => {
    const pipe = (stream: NodeJS.ReadableStream | null, out: NodeJS.WritableStream): void => {
      let rest = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (line.startsWith('Ready. Press Ctrl-C')) resolve();
          else out.write(`[${name}] ${line}\n`);
        }
      });
    };
    pipe(child.stdout, process.stdout);
    pipe(child.stderr, process.stderr);
  });
}
