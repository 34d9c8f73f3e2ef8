/**
 * Starts the server under test — Shaddock or a peer — as a child process on 127.0.0.1,
 * pinned to the server core and capped at NOFILE_CAP open files, waits until it
 * serves, and says how its clients connect and how to push to it.
 *
 * | target    | what runs                                          | connectors           | push                         |
 * | shaddock  | `shaddock start` (dist/ or src/ through tsx)        | all                  | HTTP API (or MQTT manager)   |
 * | mosquitto | Debian's mosquitto, private config on a free port  | mqtt                 | MQTT publish                 |
 * | socketio  | bench/peers/sio-broadcast.cjs (socket.io 4 room)   | sio                  | HTTP POST /push              |
 * | ws        | bench/peers/ws-broadcast.cjs (pre-framed ws 8)     | ws                   | HTTP POST /push              |
 * | pomelo    | bench/peers/pomelo/app.cjs (Pomelo 2.2.7 hybrid)   | hybrid-ws            | HTTP POST /push (channel)    |
 * | net       | bench/peers/net-idle.cjs (bare `net`, idle only)   | tcp                  | — (idle scenario only)       |
 *
 * With `gcProbe`, every Node server starts with its inspector on a free loopback port,
 * and `collectGarbage()` runs a full GC in it (HeapProfiler.collectGarbage) — so memory
 * is read without the garbage a connect phase leaves behind, the same way for every
 * Node server, with no hook in any of them. Mosquitto (C) has no GC: it returns undefined.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { ClientConfig, ConnectorKind } from './clients.js';
import { Proc, processAlive, trackCleanup, wrapCommand } from './proc.js';

export const TARGETS = ['shaddock', 'mosquitto', 'socketio', 'ws', 'pomelo', 'net'] as const;
export type TargetKind = (typeof TARGETS)[number];

/** What each target serves; the first is its default connector. */
export const TARGET_CONNECTORS: Readonly<Record<TargetKind, readonly ConnectorKind[]>> = {
  shaddock: ['hybrid-tcp', 'hybrid-ws', 'sio', 'sio-pomelo', 'mqtt', 'ws', 'ntfy'],
  mosquitto: ['mqtt'],
  socketio: ['sio'],
  ws: ['ws'],
  // Pomelo 2.2.7's TCP write path breaks on Node 20: its hybrid connector is measured over WebSocket.
  pomelo: ['hybrid-ws'],
  net: ['tcp'],
};

export type PushEndpoint =
  | {
      readonly kind: 'http';
      readonly host: string;
      readonly port: number;
      readonly path: string;
      readonly headers: Readonly<Record<string, string>>;
    }
  | {
      readonly kind: 'mqtt';
      readonly host: string;
      readonly port: number;
      /** PUBLISH topic; the payload is `{"data":…}` for Shaddock, the data itself for a broker. */
      readonly topic: string;
      readonly username: string;
      readonly password: string;
      /** Wrap the data as `{"data":…}` (Shaddock's push topic) or send it bare (a broker). */
      readonly wrap: boolean;
    };

export type ConnectTarget = Omit<ClientConfig, 'kind' | 'qos' | 'clientIdPrefix' | 'srcAddrs' | 'portLow' | 'portCount' | 'portOffset'>;

export interface Target {
  readonly kind: TargetKind;
  /** "shaddock 0.1.0", "mosquitto 2.0.11", … */
  readonly version: string;
  readonly pid: number;
  /** CPU list the server may run on. */
  readonly cpus: string;
  endpoint(connector: ConnectorKind): ConnectTarget;
  /** How to push to the clients of `connector` (ntfy subscribers: through the ntfy port). */
  push(mode: 'http' | 'mqtt', connector?: ConnectorKind): PushEndpoint;
  /** The default push mode of this target. */
  readonly defaultPush: 'http' | 'mqtt';
  /** The last lines it wrote to stderr (for error messages). */
  stderrTail(): string;
  /**
   * A full GC in the server through its inspector (`gcProbe`), then its
   * `process.memoryUsage()`; undefined when it has no inspector (Mosquitto).
   */
  collectGarbage(): Promise<NodeMemoryUsage | undefined>;
  stop(): Promise<void>;
}

/** `process.memoryUsage()` of a Node server, bytes. */
export interface NodeMemoryUsage {
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

export interface StartOptions {
  readonly repoRoot: string;
  /** Core to pin the server to; undefined: no pinning. */
  readonly core: number | undefined;
  /** Shaddock: run dist/ (built) or src/ through tsx; auto = dist when it is there. */
  readonly entry: 'auto' | 'dist' | 'tsx';
  /** Folder with node_modules holding peers not installed in the repo (BENCH_PEERS_DIR). */
  readonly peersDir: string | undefined;
  /** Shaddock's Pomelo heartbeat, seconds. */
  readonly heartbeatSeconds: number;
  readonly startTimeoutMs: number;
  /** Start Node servers with their inspector on a free loopback port, for `collectGarbage()`. */
  readonly gcProbe?: boolean;
}

const HOST = '127.0.0.1';
/** The topic every ntfy subscriber of a run listens on. */
const NTFY_BENCH_TOPIC = 'bench';

/** A port nobody listens on now (the OS picks it; a race with other programs is unlikely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Why a peer cannot run here, or undefined when it can. */
export function peerUnavailable(kind: TargetKind, opts: Pick<StartOptions, 'repoRoot' | 'peersDir'>): string | undefined {
  switch (kind) {
    case 'shaddock':
      return undefined;
    case 'mosquitto':
      return mosquittoPath() === undefined ? 'mosquitto is not installed (apt-get install mosquitto)' : undefined;
    case 'socketio':
      return resolvePeer('socket.io', opts) === undefined ? 'socket.io is not installed (npm i -D socket.io@4, or set BENCH_PEERS_DIR)' : undefined;
    case 'ws':
      return resolvePeer('ws', opts) === undefined ? 'ws is not installed (npm i -D ws@8, or set BENCH_PEERS_DIR)' : undefined;
    case 'net':
      return undefined;
    case 'pomelo':
      return resolvePeer('pomelo', opts) === undefined
        ? 'pomelo is not installed (npm i -D pomelo@2.2.7, or install it in a folder named by BENCH_PEERS_DIR)'
        : undefined;
  }
}

function resolvePeer(name: string, opts: Pick<StartOptions, 'repoRoot' | 'peersDir'>): string | undefined {
  for (const dir of [opts.repoRoot, opts.peersDir]) {
    if (dir === undefined) continue;
    try {
      return createRequire(join(dir, 'package.json')).resolve(name);
    } catch {
      // not there
    }
  }
  return undefined;
}

function peerVersion(name: string, opts: Pick<StartOptions, 'repoRoot' | 'peersDir'>): string {
  const entry = resolvePeer(name, opts);
  if (entry === undefined) return '?';
  // Walk up from the entry file to the package's own package.json.
  let dir = entry;
  for (let k = 0; k < 6; k++) {
    dir = join(dir, '..');
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      const parsed = JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown; version?: unknown };
      if (parsed.name === name) return String(parsed.version);
    }
  }
  return '?';
}

function mosquittoPath(): string | undefined {
  for (const p of ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto']) if (existsSync(p)) return p;
  try {
    return execFileSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

async function waitForPort(port: number, proc: Proc, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: HOST, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (proc.exited) throw new Error(`${what}: the process exited before it was ready.\n${proc.stderr.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${what}: port ${port} not open after ${timeoutMs} ms`);
    await sleep(50);
  }
}

function readyLine(stdout: string): Record<string, unknown> | undefined {
  const m = /^READY (\{.*\})$/m.exec(stdout);
  return m === null ? undefined : (JSON.parse(m[1]!) as Record<string, unknown>);
}

function unsupported(kind: TargetKind, connector: ConnectorKind): Error {
  return new Error(`target ${kind} has no ${connector} connector (it has: ${TARGET_CONNECTORS[kind].join(', ')})`);
}

function baseTarget(
  kind: TargetKind,
  version: string,
  proc: Proc,
  cleanup: () => void,
  core: number | undefined,
): Pick<Target, 'kind' | 'version' | 'pid' | 'cpus' | 'stderrTail' | 'collectGarbage' | 'stop'> {
  const pid = proc.child.pid;
  if (pid === undefined) throw new Error(`${kind}: no PID`);
  return {
    kind,
    version,
    pid,
    cpus: core === undefined ? 'any' : String(core),
    stderrTail: () => proc.stderr.slice(-2000),
    collectGarbage: () => inspectorGc(proc.stderr),
    async stop() {
      await proc.stop();
      cleanup();
    },
  };
}

/**
 * Shaddock's abuse limits (docs/security.md#limits) are off in the benchmark: its load
 * comes from a few loopback addresses at thousands of connections per second, which
 * the per-address defaults rightly refuse, and the peers have no such limits. 0 turns
 * a limit off; variables for limits this build does not have are ignored.
 */
export const BENCH_LIMITS_OFF = {
  SHADDOCK_MAX_CONNECTIONS_PER_IP: '0',
  SHADDOCK_CONNECTS_PER_SECOND_PER_IP: '0',
  SHADDOCK_REQUESTS_PER_SECOND: '0',
  SHADDOCK_MAX_PENDING_CONNECTIONS: '0',
} as const;

export async function startTarget(kind: TargetKind, opts: StartOptions): Promise<Target> {
  const why = peerUnavailable(kind, opts);
  if (why !== undefined) throw new Error(why);
  switch (kind) {
    case 'shaddock':
      return startShaddock(opts);
    case 'mosquitto':
      return startMosquitto(opts);
    case 'socketio':
    case 'ws':
      return startNodePeer(kind, opts);
    case 'pomelo':
      return startPomelo(opts);
    case 'net':
      return startNetPeer(opts);
  }
}

/** Node flags every Node server gets: the inspector when the run reads memory after a GC. */
function nodeProbeFlags(opts: StartOptions): string[] {
  return [...(opts.gcProbe === true ? [`--inspect=${HOST}:0`] : []), ...serverNodeArgs()];
}

/**
 * BENCH_SERVER_NODE_ARGS: extra node flags for the server under test only (every Node
 * server, peers too), e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" or
 * "--heapsnapshot-signal=SIGUSR2" (not allowed in NODE_OPTIONS), to profile it under load.
 */
function serverNodeArgs(): string[] {
  return (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(/\s+/).filter((a) => a !== '');
}

/**
 * Runs a full garbage collection in a Node process through the inspector address it
 * printed on stderr ("Debugger listening on ws://…"). Twice: the first pass can leave
 * objects that only a second one frees (weak references, finalizers).
 */
async function inspectorGc(stderr: string): Promise<NodeMemoryUsage | undefined> {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
  if (url === undefined) return undefined;
  const socket = new WebSocket(url);
  const call = (id: number, method: string, params?: object): Promise<unknown> =>
    new Promise<unknown>((resolve, reject) => {
      const onMessage = (data: Buffer): void => {
        const reply = JSON.parse(data.toString('utf8')) as { id?: number; error?: { message?: string }; result?: unknown };
        if (reply.id !== id) return;
        socket.off('message', onMessage);
        if (reply.error !== undefined) reject(new Error(`inspector: ${reply.error.message ?? 'error'}`));
        else resolve(reply.result);
      };
      socket.on('message', onMessage);
      socket.send(JSON.stringify({ id, method, params }));
    });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    await call(1, 'HeapProfiler.collectGarbage');
    await call(2, 'HeapProfiler.collectGarbage');
    const result = (await call(3, 'Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
      result?: { value?: unknown };
    };
    const value = result.result?.value;
    if (typeof value !== 'string') throw new Error('inspector: process.memoryUsage() gave no string');
    const m = JSON.parse(value) as Partial<Record<keyof NodeMemoryUsage, unknown>>;
    const num = (k: keyof NodeMemoryUsage): number => {
      const v = m[k];
      if (typeof v !== 'number') throw new Error(`inspector: process.memoryUsage().${k} is not a number`);
      return v;
    };
    return { rss: num('rss'), heapTotal: num('heapTotal'), heapUsed: num('heapUsed'), external: num('external'), arrayBuffers: num('arrayBuffers') };
  } finally {
    socket.close();
  }
}

async function startShaddock(opts: StartOptions): Promise<Target> {
  const dist = join(opts.repoRoot, 'dist/cli/index.js');
  const useDist = opts.entry === 'dist' || (opts.entry === 'auto' && existsSync(dist));
  const nodeArgs = [...nodeProbeFlags(opts), ...(useDist ? [dist] : ['--import', 'tsx', join(opts.repoRoot, 'src/cli/index.ts')])];
  const data = mkdtempSync(join(tmpdir(), 'shaddock-bench-'));
  const args = [
    ...nodeArgs,
    'start',
    '--data',
    data,
    '--host',
    HOST,
    '--http-port',
    '0',
    '--hybrid-port',
    '0',
    '--sio-port',
    '0',
    '--mqtt-port',
    '0',
    '--ntfy-port',
    '0',
    '--heartbeat',
    String(opts.heartbeatSeconds),
    '--log-level',
    'warn',
  ];
  const cmd = wrapCommand(process.execPath, args, opts.core);
  const env = { ...process.env, NODE_ENV: 'production', SHADDOCK_CONFIG: '', ...BENCH_LIMITS_OFF };
  const proc = new Proc(cmd.file, cmd.args, opts.repoRoot, env);
  const untrack = trackCleanup(() => rmSync(data, { recursive: true, force: true }));
  const cleanup = (): void => {
    untrack();
    rmSync(data, { recursive: true, force: true });
  };
  try {
    const banner = await proc.waitFor(
      'shaddock',
      (out) => {
        const http = /HTTP API\s+http:\/\/[^:\s]+:(\d+)/.exec(out);
        const apikey = /^\s*apikey\s+(\S+)/m.exec(out);
        const secret = /^\s*secret\s+(\S+)/m.exec(out);
        return http && apikey && secret ? { httpPort: Number(http[1]), apikey: apikey[1]!, secret: secret[1]! } : undefined;
      },
      opts.startTimeoutMs,
    );
    const health = (await (await fetch(`http://${HOST}:${banner.httpPort}/healthz`)).json()) as { ports?: Record<string, unknown> };
    const ports = health.ports ?? {};
    const port = (name: string, fallback: RegExp): number => {
      const v = ports[name];
      if (typeof v === 'number') return v;
      const m = fallback.exec(proc.stdout);
      if (m === null) throw new Error(`shaddock: cannot tell its ${name}`);
      return Number(m[1]);
    };
    const hybridPort = port('hybridPort', /Pomelo hybrid\s+tcp:\/\/[^:\s]+:(\d+)/);
    const sioPort = port('sioPort', /socket\.io\s+http:\/\/[^:\s]+:(\d+)/);
    const mqttPort = port('mqttPort', /MQTT\s+mqtt:\/\/[^:\s]+:(\d+)/);
    const ntfyPort = Number(/ntfy\s+http:\/\/[^:\s]+:(\d+)/.exec(proc.stdout)?.[1] ?? 0);
    const version = /Shaddock (\S+) is running/.exec(proc.stdout)?.[1] ?? '?';
    const { apikey, secret, httpPort } = banner;
    const common = { host: HOST, apikey, enterRoute: 'connector.entryHandler.enter', mqttTopic: `apps/${apikey}/all`, mqttUsername: apikey };
    return {
      ...baseTarget('shaddock', `shaddock ${version} (${useDist ? 'dist' : 'tsx'})`, proc, cleanup, opts.core),
      defaultPush: 'http',
      endpoint(connector) {
        switch (connector) {
          case 'hybrid-tcp':
          case 'hybrid-ws':
            return { ...common, port: hybridPort, path: '/' };
          case 'sio':
          case 'sio-pomelo':
            return { ...common, port: sioPort, path: '/socket.io/?EIO=4&transport=websocket' };
          case 'mqtt':
            return { ...common, port: mqttPort, path: '' };
          case 'ws':
            return { ...common, port: httpPort, path: '/ws' };
          case 'ntfy':
            return { ...common, port: ntfyPort, path: `/${NTFY_BENCH_TOPIC}/json` };
          case 'tcp':
            throw unsupported('shaddock', connector);
        }
      },
      push(mode, connector) {
        if (connector === 'ntfy') {
          // An ntfy publish (the body, `{"data":…}`, is the message text) to the subscribers' topic.
          return { kind: 'http', host: HOST, port: ntfyPort, path: `/${NTFY_BENCH_TOPIC}`, headers: { 'content-type': 'text/plain' } };
        }
        if (mode === 'mqtt') {
          return { kind: 'mqtt', host: HOST, port: mqttPort, topic: `apps/${apikey}/push`, username: apikey, password: secret, wrap: true };
        }
        return {
          kind: 'http',
          host: HOST,
          port: httpPort,
          path: `/api/v1/apps/${apikey}/messages`,
          headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        };
      },
    };
  } catch (err) {
    await proc.stop();
    cleanup();
    throw err;
  }
}

async function startMosquitto(opts: StartOptions): Promise<Target> {
  const bin = mosquittoPath()!;
  const dir = mkdtempSync(join(tmpdir(), 'mosquitto-bench-'));
  const port = await freePort();
  // A private broker: loopback only, anonymous, nothing persisted, quiet, no limit on
  // connections or queued bytes, Nagle off like Shaddock's sockets.
  writeFileSync(
    join(dir, 'mosquitto.conf'),
    [
      `listener ${port} ${HOST}`,
      'allow_anonymous true',
      'persistence false',
      'max_connections -1',
      'set_tcp_nodelay true',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'connection_messages false',
      '',
    ].join('\n'),
  );
  const version = (() => {
    try {
      return /mosquitto version (\S+)/.exec(execFileSync(bin, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }))?.[1] ?? '?';
    } catch (err) {
      const out = String((err as { stdout?: unknown }).stdout ?? '');
      return /mosquitto version (\S+)/.exec(out)?.[1] ?? '?';
    }
  })();
  const cmd = wrapCommand(bin, ['-c', join(dir, 'mosquitto.conf')], opts.core);
  const proc = new Proc(cmd.file, cmd.args, dir, process.env);
  const untrack = trackCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const cleanup = (): void => {
    untrack();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, proc, 'mosquitto', opts.startTimeoutMs);
  } catch (err) {
    await proc.stop();
    cleanup();
    throw err;
  }
  return {
    ...baseTarget('mosquitto', `mosquitto ${version}`, proc, cleanup, opts.core),
    defaultPush: 'mqtt',
    endpoint(connector) {
      if (connector !== 'mqtt') throw unsupported('mosquitto', connector);
      return { host: HOST, port, path: '', apikey: 'bench', enterRoute: '', mqttTopic: 'apps/bench/all', mqttUsername: '' };
    },
    push(mode) {
      if (mode !== 'mqtt') throw new Error('mosquitto takes pushes over MQTT only (--push mqtt)');
      return { kind: 'mqtt', host: HOST, port, topic: 'apps/bench/all', username: '', password: '', wrap: false };
    },
  };
}

function peerEnv(opts: StartOptions): NodeJS.ProcessEnv {
  return { ...process.env, NODE_ENV: 'production', ...(opts.peersDir !== undefined ? { BENCH_PEERS_DIR: opts.peersDir } : {}) };
}

function httpPush(port: number): PushEndpoint {
  return { kind: 'http', host: HOST, port, path: '/push', headers: { 'content-type': 'application/json' } };
}

/** Starts a Node peer script (pinned like the server) and waits for its READY line. */
async function startNodeScript(name: string, script: string, args: readonly string[], opts: StartOptions): Promise<Proc> {
  const cmd = wrapCommand(process.execPath, [...nodeProbeFlags(opts), join(opts.repoRoot, script), ...args], opts.core);
  const proc = new Proc(cmd.file, cmd.args, opts.repoRoot, peerEnv(opts));
  try {
    await proc.waitFor(name, readyLine, opts.startTimeoutMs);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

async function startNodePeer(kind: 'socketio' | 'ws', opts: StartOptions): Promise<Target> {
  const script = kind === 'ws' ? 'bench/peers/ws-broadcast.cjs' : 'bench/peers/sio-broadcast.cjs';
  const port = await freePort();
  const proc = await startNodeScript(kind, script, ['--port', String(port), '--host', HOST], opts);
  const pkg = kind === 'ws' ? 'ws' : 'socket.io';
  const connector: ConnectorKind = kind === 'ws' ? 'ws' : 'sio';
  return {
    ...baseTarget(kind, `${pkg} ${peerVersion(pkg, opts)}`, proc, () => undefined, opts.core),
    defaultPush: 'http',
    endpoint(c) {
      if (c !== connector) throw unsupported(kind, c);
      const path = kind === 'ws' ? '/ws' : '/socket.io/?EIO=4&transport=websocket';
      return { host: HOST, port, path, apikey: 'bench', enterRoute: '', mqttTopic: '', mqttUsername: '' };
    },
    push(mode) {
      if (mode !== 'http') throw new Error(`${kind} takes pushes over HTTP only (--push http)`);
      return httpPush(port);
    },
  };
}

async function startPomelo(opts: StartOptions): Promise<Target> {
  const [port, rpcPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const args = ['--port', String(port), '--rpc-port', String(rpcPort), '--http-port', String(httpPort), '--heartbeat', String(opts.heartbeatSeconds)];
  const proc = await startNodeScript('pomelo', 'bench/peers/pomelo/app.cjs', args, opts);
  return {
    ...baseTarget('pomelo', `pomelo ${peerVersion('pomelo', opts)}`, proc, () => undefined, opts.core),
    defaultPush: 'http',
    endpoint(c) {
      if (c !== 'hybrid-ws') throw unsupported('pomelo', c);
      return { host: HOST, port, path: '/', apikey: 'bench', enterRoute: 'connector.entryHandler.enter', mqttTopic: '', mqttUsername: '' };
    },
    push(mode) {
      if (mode !== 'http') throw new Error('pomelo takes pushes over HTTP only (--push http)');
      return httpPush(httpPort);
    },
  };
}

async function startNetPeer(opts: StartOptions): Promise<Target> {
  const port = await freePort();
  const proc = await startNodeScript('net', 'bench/peers/net-idle.cjs', ['--port', String(port), '--host', HOST], opts);
  return {
    ...baseTarget('net', `node ${process.version} net`, proc, () => undefined, opts.core),
    defaultPush: 'http',
    endpoint(c) {
      if (c !== 'tcp') throw unsupported('net', c);
      return { host: HOST, port, path: '', apikey: 'bench', enterRoute: '', mqttTopic: '', mqttUsername: '' };
    },
    push() {
      throw new Error('the bare net server takes no pushes: it is measured in the idle scenario only');
    },
  };
}

/** True while the target's process runs. */
export function targetAlive(t: Target): boolean {
  return processAlive(t.pid);
}
