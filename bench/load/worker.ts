/**
 * A load worker: holds its share of the connections, counts every marked message per
 * connection (lost and duplicate ids through a per-connection "next expected" counter,
 * with a bitset only for a connection that ever sees one out of order), and records
 * push→delivery latency in a histogram. Talks to the coordinator over IPC.
 *
 * Started by run.ts (never by hand): node [--import tsx] bench/load/worker.ts
 */
import { createClient, type Client, type ClientConfig, type Sink } from './clients.js';
import { Histogram, monoUs } from './histogram.js';
import { readMark, type FromWorker, type ToWorker, type WorkerInit, type WorkerReport, type WorkerStats } from './protocol.js';

const PROGRESS_MS = 250;
const TICK_MS = 1000;
const MAX_ERROR_KINDS = 20;

class Worker implements Sink {
  readonly cfg: ClientConfig;
  readonly #init: WorkerInit;
  readonly #clients: (Client | undefined)[];
  readonly #startedUs: Float64Array;
  /** Next expected seq per connection; -1 = not tracked. */
  readonly #expected: Int32Array;
  readonly #unique: Int32Array;
  readonly #bits = new Map<number, Uint8Array>();
  readonly #latency = new Histogram();
  readonly #connectLatency = new Histogram();
  readonly #errors = new Map<string, number>();
  readonly #mark = new Float64Array(3);
  #runId = -1;
  #messages = 0;
  #next = 0;
  #inflight = 0;
  #entered = 0;
  #failed = 0;
  #dropped = 0;
  #received = 0;
  #uniqueTotal = 0;
  #duplicated = 0;
  #foreign = 0;
  #unmarked = 0;
  #tracked = 0;
  #connecting = false;
  #connectedSent = false;
  #heartbeatS = 0;
  #tick = 0;
  #firstEnteredUs = 0;
  #lastEnteredUs = 0;
  #lastMessageUs = 0;
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(init: WorkerInit) {
    this.#init = init;
    this.cfg = init.cfg;
    this.#clients = new Array<Client | undefined>(init.count);
    this.#startedUs = new Float64Array(init.count);
    this.#expected = new Int32Array(init.count).fill(-1);
    this.#unique = new Int32Array(init.count);
    if (init.cfg.kind === 'mqtt') this.#heartbeatS = 60;
    this.#timers.push(setInterval(() => this.#progress(), PROGRESS_MS));
    this.#timers.push(setInterval(() => this.#onTick(), TICK_MS));
  }

  // ------------------------------------------------------------ Sink

  entered(i: number): void {
    this.#entered++;
    this.#inflight--;
    const now = monoUs();
    if (this.#firstEnteredUs === 0) this.#firstEnteredUs = now;
    this.#lastEnteredUs = now;
    this.#connectLatency.record(now - this.#startedUs[i]!);
    this.#pump();
  }

  failed(i: number, why: string): void {
    this.#failed++;
    this.#inflight--;
    this.#clients[i] = undefined;
    this.#error(why);
    this.#pump();
  }

  dropped(i: number, why: string): void {
    this.#dropped++;
    this.#error(`dropped: ${why}`);
    this.#clients[i] = undefined;
  }

  heartbeatSeconds(seconds: number): void {
    if (this.#heartbeatS === 0 && seconds > 0) this.#heartbeatS = seconds;
  }

  message(i: number, buf: Buffer, start: number, end: number, now: number): void {
    const mark = this.#mark;
    if (!readMark(buf, start, end, mark)) {
      this.#unmarked++;
      return;
    }
    const seq = mark[1]!;
    if (mark[0] !== this.#runId || seq >= this.#messages) {
      this.#foreign++;
      return;
    }
    this.#received++;
    this.#lastMessageUs = now;
    this.#latency.record(now - mark[2]!);
    const expected = this.#expected[i]!;
    if (expected < 0) {
      this.#foreign++;
      return;
    }
    let bits = this.#bits.get(i);
    if (bits === undefined) {
      if (seq === expected) {
        this.#expected[i] = expected + 1;
        this.#unique[i]!++;
        this.#uniqueTotal++;
        return;
      }
      // Out of order or repeated: from here on this connection keeps a bitset.
      bits = new Uint8Array((this.#messages + 7) >> 3);
      for (let s = 0; s < expected; s++) bits[s >> 3]! |= 1 << (s & 7);
      this.#bits.set(i, bits);
    }
    const byte = seq >> 3;
    const bit = 1 << (seq & 7);
    if ((bits[byte]! & bit) !== 0) {
      this.#duplicated++;
      return;
    }
    bits[byte]! |= bit;
    this.#unique[i]!++;
    this.#uniqueTotal++;
  }

  // ------------------------------------------------------------ commands

  connect(): void {
    this.#connecting = true;
    this.#pump();
  }

  expect(runId: number, messages: number): void {
    this.#runId = runId;
    this.#messages = messages;
    this.#tracked = 0;
    this.#bits.clear();
    this.#latency.reset();
    this.#received = 0;
    this.#uniqueTotal = 0;
    this.#duplicated = 0;
    this.#foreign = 0;
    this.#lastMessageUs = 0;
    for (let i = 0; i < this.#clients.length; i++) {
      const c = this.#clients[i];
      this.#unique[i] = 0;
      if (c !== undefined && c.entered) {
        this.#expected[i] = 0;
        this.#tracked++;
      } else {
        this.#expected[i] = -1;
      }
    }
  }

  stats(): WorkerStats {
    const cpu = process.cpuUsage();
    return {
      entered: this.#entered,
      failed: this.#failed,
      dropped: this.#dropped,
      received: this.#received,
      unique: this.#uniqueTotal,
      cpuUs: cpu.user + cpu.system,
      rssKB: Math.round(process.memoryUsage.rss() / 1024),
      lastMessageUs: this.#lastMessageUs,
    };
  }

  report(): WorkerReport {
    let lost = 0;
    let complete = 0;
    for (let i = 0; i < this.#clients.length; i++) {
      if (this.#expected[i]! < 0) continue;
      const missing = this.#messages - this.#unique[i]!;
      lost += missing;
      if (missing === 0) complete++;
    }
    return {
      ...this.stats(),
      lost,
      duplicated: this.#duplicated,
      foreign: this.#foreign,
      unmarked: this.#unmarked,
      tracked: this.#tracked,
      complete,
      latency: this.#latency.toData(),
      connectLatency: this.#connectLatency.toData(),
      errors: Object.fromEntries(this.#errors),
      firstEnteredUs: this.#firstEnteredUs,
      lastEnteredUs: this.#lastEnteredUs,
    };
  }

  close(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#connecting = false;
    for (let i = 0; i < this.#clients.length; i++) {
      this.#clients[i]?.close();
      this.#clients[i] = undefined;
    }
  }

  // ------------------------------------------------------------ internals

  #pump(): void {
    if (!this.#connecting) return;
    const limit = this.#init.concurrency > 0 ? this.#init.concurrency : Infinity;
    while (this.#next < this.#init.count && this.#inflight < limit) {
      const i = this.#next++;
      this.#inflight++;
      this.#startedUs[i] = monoUs();
      const client = createClient(this, i, this.#init.first + i);
      this.#clients[i] = client;
      client.start();
    }
    if (!this.#connectedSent && this.#next === this.#init.count && this.#inflight === 0) {
      this.#connectedSent = true;
      send({ t: 'connected', stats: this.stats() });
    }
  }

  #error(why: string): void {
    const key = why.length > 160 ? why.slice(0, 160) : why;
    const n = this.#errors.get(key);
    if (n !== undefined) this.#errors.set(key, n + 1);
    else if (this.#errors.size < MAX_ERROR_KINDS) this.#errors.set(key, 1);
    else this.#errors.set('(other)', (this.#errors.get('(other)') ?? 0) + 1);
  }

  #progress(): void {
    send({ t: 'progress', ...this.stats() });
  }

  #onTick(): void {
    this.#tick++;
    const now = monoUs();
    // Connections stuck before entering past the timeout count as failed.
    if (this.#inflight > 0) {
      const limitUs = this.#init.connectTimeoutMs * 1000;
      for (let i = 0; i < this.#next; i++) {
        const c = this.#clients[i];
        if (c !== undefined && !c.entered && now - this.#startedUs[i]! > limitUs) {
          this.#clients[i] = undefined;
          c.close();
          this.failed(i, 'timed out before entering');
        }
      }
    }
    // Heartbeats: every connection once per period, a slice each second (one timer, docs/conventions.md §5).
    const period = this.#heartbeatS;
    if (period <= 0) return;
    const slots = Math.max(1, Math.floor(period * 0.8));
    const slot = this.#tick % slots;
    for (let i = slot; i < this.#next; i += slots) this.#clients[i]?.heartbeat();
  }
}

function send(msg: FromWorker): void {
  process.send?.(msg);
}

let worker: Worker | undefined;

process.on('message', (raw: unknown) => {
  const msg = raw as ToWorker;
  switch (msg.t) {
    case 'init':
      worker = new Worker(msg);
      return;
    case 'connect':
      worker?.connect();
      return;
    case 'expect':
      worker?.expect(msg.runId, msg.messages);
      return;
    case 'stats':
      if (worker !== undefined) send({ t: 'reply', id: msg.id, stats: worker.stats() });
      return;
    case 'report':
      if (worker !== undefined) send({ t: 'reply', id: msg.id, stats: worker.stats(), report: worker.report() });
      return;
    case 'close':
      if (worker !== undefined) {
        worker.close();
        send({ t: 'reply', id: msg.id, stats: worker.stats() });
      }
      // Let the reply go out, then leave.
      setTimeout(() => process.exit(0), 50).unref();
      return;
  }
});
process.on('disconnect', () => process.exit(0));
send({ t: 'ready' });
