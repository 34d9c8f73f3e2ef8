/**
 * Linux process and machine facts for the benchmark: CPU time and RSS of another
 * process from /proc, CPU pinning with taskset, the open-files cap, the ephemeral port
 * range, and the machine description stored with every result.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, release, totalmem, type as osType } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** The open-files cap of every process the benchmark starts (the machine's rule). */
export const NOFILE_CAP = 20_000;

let clkTck: number | undefined;

/** Clock ticks per second of /proc/PID/stat times (usually 100). */
export function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** User + system CPU time of a process (all its threads), µs; NaN when it is gone. */
export function processCpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return ((utime + stime) * 1e6) / clockTicks();
  } catch {
    return NaN;
  }
}

/** Resident set size of a process, KiB (VmRSS); NaN when it is gone. */
export function processRssKB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return m === null ? NaN : Number(m[1]);
  } catch {
    return NaN;
  }
}

export function processAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}/stat`);
}

export function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return cpus().length >= 2;
  } catch {
    return false;
  }
}

/** Pins this process and all its threads (and so the children it starts) to `core`. */
export function pinSelf(core: number): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The CPU list a process may run on, as taskset prints it ("0", "0-1"…). */
export function affinityOf(pid: number): string {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return /^Cpus_allowed_list:\s+(\S+)/m.exec(status)?.[1] ?? '?';
  } catch {
    return '?';
  }
}

/**
 * A command line that runs `file args` with open files capped at NOFILE_CAP (soft and
 * hard, or the hard limit when it is lower and cannot be raised), pinned to `core`
 * when taskset is there. `exec` keeps the PID: the returned PID is the program's.
 */
export function wrapCommand(file: string, args: readonly string[], core: number | undefined): { file: string; args: string[] } {
  const script = `ulimit -n ${NOFILE_CAP} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"`;
  const sh = ['sh', '-c', script, file, ...args];
  if (core !== undefined) return { file: 'taskset', args: ['-c', String(core), ...sh] };
  return { file: sh[0]!, args: sh.slice(1) };
}

export function openFilesLimit(pid: number | 'self' = 'self'): { soft: number; hard: number } {
  try {
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
    const n = (s: string | undefined): number => (s === undefined || s === 'unlimited' ? Infinity : Number(s));
    return { soft: n(m?.[1]), hard: n(m?.[2]) };
  } catch {
    return { soft: NaN, hard: NaN };
  }
}

export function ephemeralPortRange(): { low: number; high: number; size: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && high >= low) return { low, high, size: high - low + 1 };
  } catch {
    // not Linux: assume the IANA range
  }
  return { low: 49152, high: 65535, size: 16384 };
}

function readSysctl(path: string): number | undefined {
  try {
    return Number(readFileSync(path, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** Checks that this machine can bind each address (all of 127.0.0.0/8 on Linux). */
export async function checkSourceAddresses(addrs: readonly string[]): Promise<void> {
  for (const addr of addrs) {
    await new Promise<void>((resolve, reject) => {
      const s = createServer();
      s.once('error', (err) => reject(new Error(`cannot use source address ${addr}: ${err.message}`)));
      s.listen(0, addr, () => s.close(() => resolve()));
    });
  }
}

/**
 * Source addresses 127.0.0.2, 127.0.0.3, … enough that none holds more than
 * `perAddress` connections, which must fit the source ports each address has.
 */
export function sourceAddresses(connections: number, perAddress: number, portsPerAddress: number): string[] {
  const per = Math.min(perAddress, Math.floor(portsPerAddress * 0.9));
  const n = Math.max(1, Math.ceil(connections / per));
  if (n > 250) throw new Error(`${connections} connections need ${n} source addresses; at most 250 (127.0.0.2–127.0.0.251)`);
  return Array.from({ length: n }, (_, k) => `127.0.0.${k + 2}`);
}

export function gitCommit(cwd: string): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryMB: number;
  readonly os: string;
  readonly kernel: string;
  readonly node: string;
  readonly commit: string;
  readonly dirty: boolean;
  readonly portRange: string;
  readonly somaxconn: number | undefined;
  readonly tcpMaxSynBacklog: number | undefined;
  readonly nofile: { readonly soft: number; readonly hard: number };
  readonly taskset: boolean;
}

export function machineInfo(repoRoot: string): MachineInfo {
  const c = cpus();
  const range = ephemeralPortRange();
  const git = gitCommit(repoRoot);
  return {
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    cpus: c.length,
    memoryMB: Math.round(totalmem() / 2 ** 20),
    os: osType(),
    kernel: release(),
    node: process.version,
    commit: git.commit,
    dirty: git.dirty,
    portRange: `${range.low}-${range.high}`,
    somaxconn: readSysctl('/proc/sys/net/core/somaxconn'),
    tcpMaxSynBacklog: readSysctl('/proc/sys/net/ipv4/tcp_max_syn_backlog'),
    nofile: openFilesLimit(),
    taskset: hasTaskset(),
  };
}

// ---------------------------------------------------------------- children

const children = new Set<ChildProcess>();

/** Remembers a child process so that an interrupted run still stops it. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

const cleanups = new Set<() => void>();

/** A synchronous cleanup (a temporary folder) to run if the run is interrupted; returns its remover. */
export function trackCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** SIGKILLs every tracked child still running and runs the cleanups (synchronous: safe in an 'exit' handler). */
export function killTrackedChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
  cleanups.clear();
}

let cleanupInstalled = false;

/** On Ctrl-C, SIGTERM or exit, the servers and workers this process started go too. */
export function installChildCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.once('exit', killTrackedChildren);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping what it started\n`);
      killTrackedChildren();
      process.exit(130);
    });
  }
}

/** A started child with its output watched (the servers under test, the scale run's nodes). */
export class Proc {
  readonly child: ChildProcess;
  #stdout = '';
  #stderr = '';
  #exited = false;
  #exit: Promise<void>;

  constructor(file: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv) {
    this.child = spawn(file, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(this.child);
    this.child.stdout?.setEncoding('utf8').on('data', (s: string) => {
      this.#stdout = (this.#stdout + s).slice(-65536);
    });
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.#stderr = (this.#stderr + s).slice(-16384);
    });
    this.#exit = new Promise((resolve) => {
      this.child.once('exit', () => {
        this.#exited = true;
        resolve();
      });
      this.child.once('error', (err) => {
        this.#stderr += `\n${err.message}`;
        this.#exited = true;
        resolve();
      });
    });
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Waits until `test(stdout)` returns a value, the process exits, or the time is up. */
  async waitFor<T>(what: string, test: (stdout: string) => T | undefined, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = test(this.#stdout);
      if (v !== undefined) return v;
      if (this.#exited) throw new Error(`${what}: the process exited before it was ready.\n${this.#stderr.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms.\n${this.#stderr.slice(-2000)}`);
      await sleep(50);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.#exited) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.#exit;
    clearTimeout(timer);
  }
}
