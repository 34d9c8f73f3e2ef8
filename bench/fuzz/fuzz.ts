/**
 * The fuzz runner for every decoder (decoders.ts), kept apart from the quick suite.
 *
 *   npm run fuzz -- --decoder NAME|all --count N [--seed S] [--max-seconds T] [--hang-ms MS] [--json FILE]
 *   npm run fuzz:long              (10,000,000 inputs per decoder, all decoders)
 *
 * Each decoder runs in a worker thread with a watchdog in the main thread: before every
 * input the worker copies it into shared memory, so when an input hangs (no progress for
 * --hang-ms) the main thread still knows it, saves it as a crasher and stops the worker.
 * Crashers go to test/fixtures/fuzz-crashers/<decoder>/ and test/fuzz/crashers.test.ts
 * replays them on every `npm test`. Same --seed, same inputs: runs are reproducible.
 * Exit status 1 when anything crashed or hung.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FUZZ_CRASHERS_DIR, fuzzDecoder, saveCrasher, type Crash, type DecoderCounts } from './fuzz-core.js';
import { DECODERS, decoderByName } from './decoders.js';

/** Bytes of an input the watchdog keeps; a longer one is saved truncated (and says so). */
const WATCH_BYTES = 256 * 1024;
const HEADER_INTS = 4; // [inputs started, input length, pick seed, truncated]

interface WorkerJob {
  readonly decoder: string;
  readonly count: number;
  readonly seed: number;
  readonly maxSeconds: number;
  readonly shared: SharedArrayBuffer;
  readonly progressEvery: number;
  readonly crashDir: string;
}

type WorkerReport =
  | { readonly kind: 'progress'; readonly done: number; readonly counts: DecoderCounts }
  | { readonly kind: 'done'; readonly counts: DecoderCounts; readonly crashes: Crash[] };

export interface DecoderRun {
  readonly decoder: string;
  readonly counts: DecoderCounts;
  readonly crashes: readonly Crash[];
  readonly hang?: { readonly index: number; readonly file: string | null; readonly afterMs: number };
  readonly inputsPerSecond: number;
}

async function workerMain(job: WorkerJob): Promise<void> {
  const spec = decoderByName(job.decoder);
  if (!spec) throw new Error(`no decoder ${job.decoder}`);
  const header = new Int32Array(job.shared, 0, HEADER_INTS);
  const bytes = new Uint8Array(job.shared, HEADER_INTS * 4);
  const d = await spec.open();
  const deadline = job.maxSeconds > 0 ? Date.now() + job.maxSeconds * 1000 : Infinity;
  try {
    const { counts, crashes } = await fuzzDecoder(spec, d, {
      count: job.count,
      seed: job.seed,
      crashDir: job.crashDir,
      onInput: (index, pickSeed, input) => {
        const n = Math.min(input.length, WATCH_BYTES);
        bytes.set(input.subarray(0, n));
        header[1] = n;
        header[2] = pickSeed | 0;
        header[3] = input.length > WATCH_BYTES ? 1 : 0;
        Atomics.store(header, 0, index + 1);
      },
      progressEvery: job.progressEvery,
      onProgress: (done, c) => parentPort?.postMessage({ kind: 'progress', done, counts: c } satisfies WorkerReport),
      shouldStop: () => Date.now() > deadline,
    });
    parentPort?.postMessage({ kind: 'done', counts, crashes } satisfies WorkerReport);
  } finally {
    await d.close?.();
  }
}

/** Runs one decoder in a worker, watching it. */
export function runDecoderInWorker(
  opts: { decoder: string; count: number; seed: number; maxSeconds: number; hangMs: number; progressEvery: number; crashDir?: string },
  onProgress: (done: number, counts: DecoderCounts) => void,
): Promise<DecoderRun> {
  const shared = new SharedArrayBuffer(HEADER_INTS * 4 + WATCH_BYTES);
  const header = new Int32Array(shared, 0, HEADER_INTS);
  const worker = new Worker(fileURLToPath(new URL('./worker-boot.mjs', import.meta.url)), {
    workerData: {
      decoder: opts.decoder,
      count: opts.count,
      seed: opts.seed,
      maxSeconds: opts.maxSeconds,
      shared,
      progressEvery: opts.progressEvery,
      crashDir: opts.crashDir ?? FUZZ_CRASHERS_DIR,
    } satisfies WorkerJob,
  });
  const started = Date.now();
  let latest: DecoderCounts | undefined;
  return new Promise<DecoderRun>((resolveRun, reject) => {
    let lastIndex = -1;
    let lastChange = Date.now();
    let settled = false;
    const finish = (run: DecoderRun): void => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      resolveRun(run);
    };
    const watch = setInterval(() => {
      const index = Atomics.load(header, 0);
      // Still opening the decoder (the HTTP one starts a server): not a hang yet.
      if (index !== lastIndex || index === 0) {
        lastIndex = index;
        lastChange = Date.now();
        return;
      }
      if (Date.now() - lastChange < opts.hangMs) return;
      // No input finished for hangMs: the one in shared memory hangs.
      const length = header[1]!;
      const input = Buffer.from(new Uint8Array(shared, HEADER_INTS * 4, length));
      const file = header[3] === 1 ? null : saveCrasher(opts.decoder, header[2]! >>> 0, input, opts.crashDir ?? FUZZ_CRASHERS_DIR);
      void worker.terminate();
      const counts = latest ?? { inputs: index - 1, values: 0, errors: {}, slowestMs: 0, slowestIndex: -1, elapsedMs: Date.now() - started };
      finish({
        decoder: opts.decoder,
        counts,
        crashes: [],
        hang: { index: index - 1, file, afterMs: Date.now() - lastChange },
        inputsPerSecond: (index - 1) / ((Date.now() - started) / 1000),
      });
    }, Math.min(1000, Math.max(50, opts.hangMs / 4)));
    worker.on('message', (m: WorkerReport) => {
      latest = m.counts;
      if (m.kind === 'progress') onProgress(m.done, m.counts);
      else {
        finish({
          decoder: opts.decoder,
          counts: m.counts,
          crashes: m.crashes,
          inputsPerSecond: m.counts.inputs / (m.counts.elapsedMs / 1000),
        });
        void worker.terminate();
      }
    });
    worker.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      reject(err);
    });
    worker.on('exit', (code) => {
      if (!settled) {
        settled = true;
        clearInterval(watch);
        reject(new Error(`fuzz worker for ${opts.decoder} exited with ${code} before reporting`));
      }
    });
  });
}

function usage(): never {
  console.error(
    'usage: npm run fuzz -- --decoder NAME|all --count N [--seed S] [--max-seconds T] [--hang-ms MS] [--json FILE]\n' +
      `decoders: ${DECODERS.map((d) => d.name).join(', ')}`,
  );
  process.exit(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      decoder: { type: 'string', default: 'all' },
      count: { type: 'string' },
      long: { type: 'boolean', default: false },
      seed: { type: 'string' },
      'max-seconds': { type: 'string', default: '0' },
      'hang-ms': { type: 'string', default: '10000' },
      json: { type: 'string' },
      list: { type: 'boolean', default: false },
    },
  });
  if (values.list) {
    for (const d of DECODERS) console.log(`${d.name.padEnd(12)} ${d.about}`);
    return;
  }
  const count = Number(values.count ?? (values.long ? 10_000_000 : 100_000));
  const seed = Number(values.seed ?? (Date.now() & 0x7fffffff));
  const maxSeconds = Number(values['max-seconds']);
  const hangMs = Number(values['hang-ms']);
  if (![count, seed, maxSeconds, hangMs].every((n) => Number.isSafeInteger(n) && n >= 0)) usage();
  const names = values.decoder === 'all' ? DECODERS.map((d) => d.name) : values.decoder.split(',');
  for (const n of names) if (!decoderByName(n)) usage();

  console.log(`fuzz: ${names.join(', ')}; ${count} inputs each; seed ${seed}; node ${process.version}; ${cpus().length} cpus`);
  console.log(`reproduce: npm run fuzz -- --decoder ${values.decoder} --count ${count} --seed ${seed}`);
  const runs: DecoderRun[] = [];
  let failed = false;
  for (const name of names) {
    const started = Date.now();
    const run = await runDecoderInWorker(
      { decoder: name, count, seed, maxSeconds, hangMs, progressEvery: Math.max(1000, Math.min(1_000_000, Math.floor(count / 10))) },
      (done) => {
        const s = (Date.now() - started) / 1000;
        console.log(`  ${name}: ${done} inputs, ${s.toFixed(0)} s, ${Math.round(done / s)}/s`);
      },
    );
    runs.push(run);
    const c = run.counts;
    const errs = Object.entries(c.errors)
      .sort((a, b) => b[1] - a[1])
      .map(([code, n]) => `${code}=${n}`)
      .join(' ');
    console.log(
      `${name.padEnd(11)} inputs=${c.inputs} values=${c.values} ${Math.round(run.inputsPerSecond)}/s slowest=${c.slowestMs.toFixed(1)}ms(#${c.slowestIndex}) crashes=${run.crashes.length}${run.hang ? ' HANG' : ''}\n            ${errs}`,
    );
    for (const crash of run.crashes) {
      failed = true;
      console.error(`CRASH in ${crash.decoder} at input #${crash.index} (pick seed ${crash.pickSeed}): saved to ${crash.file ?? '(not saved)'}\n${crash.error}`);
    }
    if (run.hang) {
      failed = true;
      console.error(`HANG in ${name} at input #${run.hang.index} (no progress for ${run.hang.afterMs} ms): saved to ${run.hang.file ?? '(too large to save)'}`);
    }
  }
  if (values.json !== undefined) {
    writeFileSync(resolve(values.json), `${JSON.stringify({ seed, count, node: process.version, at: new Date().toISOString(), runs }, null, 2)}\n`);
  }
  process.exit(failed ? 1 : 0);
}

if (!isMainThread && parentPort && (workerData as { shared?: unknown } | null)?.shared instanceof SharedArrayBuffer) {
  await workerMain(workerData as WorkerJob);
} else if (isMainThread && process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
