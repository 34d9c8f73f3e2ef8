/**
 * The load workers (worker.ts) of a run, seen from the coordinator: start them, talk to
 * them over IPC, sum their latest stats, stop them. Used by one run (bench.ts) and by the
 * cluster-scale run (scale.ts), which tags each worker with the node it loads.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { trackChild, wrapCommand } from './proc.js';
import { Histogram } from './histogram.js';
import type { FromWorker, ToWorker, WorkerReport, WorkerStats } from './protocol.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type WorkerReply = FromWorker & { t: 'reply' };

/** The workers' final reports added up: counts summed, histograms merged, the latest times kept. */
export interface MergedReport {
  readonly latency: Histogram;
  readonly connectLatency: Histogram;
  readonly errors: Record<string, number>;
  readonly received: number;
  readonly unique: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly foreign: number;
  readonly complete: number;
  readonly dropped: number;
  readonly lastMessageUs: number;
  readonly lastEnteredUs: number;
}

export function mergeReports(replies: Iterable<WorkerReply>): MergedReport {
  const latency = new Histogram();
  const connectLatency = new Histogram();
  const errors: Record<string, number> = {};
  let received = 0;
  let unique = 0;
  let lost = 0;
  let duplicated = 0;
  let foreign = 0;
  let complete = 0;
  let dropped = 0;
  let lastMessageUs = 0;
  let lastEnteredUs = 0;
  for (const reply of replies) {
    const r: WorkerReport | undefined = reply.report;
    if (r === undefined) continue;
    latency.merge(r.latency);
    connectLatency.merge(r.connectLatency);
    for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    received += r.received;
    unique += r.unique;
    lost += r.lost;
    duplicated += r.duplicated;
    foreign += r.foreign;
    complete += r.complete;
    dropped += r.dropped;
    lastMessageUs = Math.max(lastMessageUs, r.lastMessageUs);
    lastEnteredUs = Math.max(lastEnteredUs, r.lastEnteredUs);
  }
  return { latency, connectLatency, errors, received, unique, lost, duplicated, foreign, complete, dropped, lastMessageUs, lastEnteredUs };
}

export interface WorkerSlot<Tag> {
  readonly child: ChildProcess;
  /** What the caller needs to know of this worker (scale.ts: its node and share). */
  readonly tag: Tag;
  stats: WorkerStats | undefined;
  connected: boolean;
  readonly ready: Promise<void>;
}

export class WorkerPool<Tag = undefined> {
  readonly slots: WorkerSlot<Tag>[] = [];
  readonly #pending = new Map<number, { need: number; replies: Map<WorkerSlot<Tag>, WorkerReply>; resolve: (r: Map<WorkerSlot<Tag>, WorkerReply>) => void }>();
  #nextId = 1;

  /** Starts one worker, pinned to `core` when given. */
  add(core: number | undefined, tag: Tag): WorkerSlot<Tag> {
    const file = fileURLToPath(new URL('./worker.ts', import.meta.url));
    // BENCH_WORKER_PROF=DIR: a V8 CPU profile of every worker, written to DIR.
    const prof = process.env['BENCH_WORKER_PROF'];
    const profArgs = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
    const cmd = wrapCommand(process.execPath, [...profArgs, '--import', 'tsx', file], core);
    const child = spawn(cmd.file, cmd.args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    trackChild(child);
    let onReady: () => void = () => undefined;
    const slot: WorkerSlot<Tag> = {
      child,
      tag,
      stats: undefined,
      connected: false,
      ready: new Promise<void>((resolve, reject) => {
        onReady = resolve;
        child.once('exit', (code) => reject(new Error(`load worker exited (code ${code}) before it was ready`)));
        child.once('error', reject);
      }),
    };
    // A worker that exits later must not leave an unhandled rejection behind.
    slot.ready.catch(() => undefined);
    child.on('message', (raw: unknown) => this.#onMessage(slot, raw as FromWorker, onReady));
    this.slots.push(slot);
    return slot;
  }

  #onMessage(slot: WorkerSlot<Tag>, msg: FromWorker, onReady: () => void): void {
    switch (msg.t) {
      case 'ready':
        onReady();
        return;
      case 'progress': {
        const { t: _t, ...stats } = msg;
        slot.stats = stats;
        return;
      }
      case 'connected':
        slot.stats = msg.stats;
        slot.connected = true;
        return;
      case 'reply': {
        slot.stats = msg.stats;
        const p = this.#pending.get(msg.id);
        if (p === undefined) return;
        p.replies.set(slot, msg);
        if (p.replies.size === p.need) {
          this.#pending.delete(msg.id);
          p.resolve(p.replies);
        }
        return;
      }
    }
  }

  /** Every worker has started (rejects if one exited first). */
  async ready(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.ready));
  }

  send(slot: WorkerSlot<Tag>, msg: ToWorker): void {
    slot.child.send(msg);
  }

  broadcast(msg: ToWorker): void {
    for (const s of this.slots) if (s.child.connected) s.child.send(msg);
  }

  /** Asks every live worker; resolves with each one's reply (or rejects after `timeoutMs`). */
  async ask(t: 'stats' | 'report' | 'close', timeoutMs = 15_000): Promise<Map<WorkerSlot<Tag>, WorkerReply>> {
    const live = this.slots.filter((s) => s.child.connected);
    if (live.length === 0) return new Map();
    const id = this.#nextId++;
    const result = new Promise<Map<WorkerSlot<Tag>, WorkerReply>>((resolve) => this.#pending.set(id, { need: live.length, replies: new Map(), resolve }));
    for (const s of live) s.child.send({ t, id });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`load workers did not answer "${t}" within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([result, timeout]);
    } finally {
      clearTimeout(timer);
      this.#pending.delete(id);
    }
  }

  get allConnected(): boolean {
    return this.slots.every((s) => s.connected);
  }

  /** The latest stats of every worker, summed (RSS and last message: the largest). */
  totals(): WorkerStats {
    const t = { entered: 0, failed: 0, dropped: 0, received: 0, unique: 0, cpuUs: 0, rssKB: 0, lastMessageUs: 0 };
    for (const s of this.slots) {
      const x = s.stats;
      if (x === undefined) continue;
      t.entered += x.entered;
      t.failed += x.failed;
      t.dropped += x.dropped;
      t.received += x.received;
      t.unique += x.unique;
      t.cpuUs += x.cpuUs;
      t.rssKB = Math.max(t.rssKB, x.rssKB);
      t.lastMessageUs = Math.max(t.lastMessageUs, x.lastMessageUs);
    }
    return t;
  }

  /** Asks the workers to close their connections and exit; kills those that do not within 3 s. */
  async close(): Promise<void> {
    try {
      await this.ask('close', 10_000);
    } catch {
      // killed below
    }
    await Promise.all(
      this.slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.child.exitCode !== null || s.child.signalCode !== null) {
              resolve();
              return;
            }
            const timer = setTimeout(() => s.child.kill('SIGKILL'), 3000);
            s.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }

  kill(): void {
    for (const s of this.slots) if (s.child.exitCode === null) s.child.kill('SIGKILL');
  }
}
