/**
 * Long random + mutation fuzz run over every Pomelo decoder (docs/conventions.md §8).
 *
 *   node --import tsx bench/fuzz/pomelo-fuzz.ts [inputsPerDecoder=10000000] [seed]
 *
 * A decoder may return a value or throw a ProtocolError; anything else is a crash. The
 * first crash is written to test/fixtures/pomelo-crashers/<target>-<sha1>.bin (replayed
 * forever by test/protocol/pomelo/crashers.test.ts) and the run exits 1.
 *
 * The quick test suite imports `runFuzz` with a small count (test/protocol/pomelo/fuzz.test.ts).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isProtocolError } from '../../src/protocol/errors.js';
import { PackageReader, decodeSinglePackage, readPackage } from '../../src/protocol/pomelo/package.js';
import { decodeMessage, decodeVarint } from '../../src/protocol/pomelo/message.js';
import { decodeProtobuf, encodeProtobuf, parseProtos, type ParsedProtos } from '../../src/protocol/pomelo/protobuf.js';
import { parseHandshakeRequest } from '../../src/protocol/pomelo/handshake.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CRASHERS_DIR = join(REPO_ROOT, 'test/fixtures/pomelo-crashers');
// The Pomelo test vectors (scripts/make-pomelo-vectors.mjs) seed the mutations.
const VECTORS_PATH = join(REPO_ROOT, 'test/fixtures/pomelo-vectors.json');

// ---------------------------------------------------------------- randomness

export type Rng = () => number;

/** mulberry32: small, fast, deterministic. Returns uint32. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** FNV-1a of the input: replays derive their choices (chunking, limits) from the bytes. */
function fnv1a(buf: Buffer): number {
  let h = 0x811c9dc5;
  for (const b of buf) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}

// ---------------------------------------------------------------- protos under test

/** The vectors' proto set plus dialect corners: global recursion, unsupported types, int32. */
const PROTO_SOURCE = {
  onMsg: { 'message Msg': { 'required string title': 1, 'required string msg': 2 }, 'required Msg msg': 1 },
  onAdd: { 'required string msg': 1, 'repeated string users': 2 },
  onStats: {
    'message Entry': { 'required string name': 1, 'optional uInt32 count': 2 },
    'required uInt32 total': 1,
    'repeated uInt32 counts': 2,
    'optional sInt32 delta': 3,
    'optional float ratio': 4,
    'optional double avg': 5,
    'repeated Entry entries': 6,
    'repeated string tags': 7,
    'repeated double samples': 8,
    'repeated float fs': 9,
    'repeated int32 is': 10,
  },
  'message User': { 'required string id': 1, 'optional uInt32 age': 2 },
  onUsers: { 'repeated User users': 1 },
  'message Node': { 'optional uInt32 v': 1, 'optional Node next': 2, 'repeated Node kids': 3 },
  tree: { 'required Node root': 1 },
  odd: { 'optional bool flag': 1, 'optional uInt64 big': 2, 'optional Missing gone': 3, 'repeated sInt64 xs': 4 },
  move: { 'required uInt32 x': 1, 'required uInt32 y': 2, 'optional sInt32 dz': 3, 'repeated uInt32 path': 4 },
};
const PROTOS: ParsedProtos = parseProtos(PROTO_SOURCE);
const ROUTES = Object.keys(PROTO_SOURCE);
const LIMITS = { maxPackage: 1 << 16 };

// ---------------------------------------------------------------- targets

export interface FuzzTarget {
  readonly name: string;
  /** Runs the decoder; `pick` drives any choice (limits, chunking, route). */
  run(input: Buffer, pick: Rng): void;
}

function chunks(input: Buffer, pick: Rng): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < input.length) {
    const n = 1 + (pick() % (pick() % 2 === 0 ? 4 : 64));
    out.push(input.subarray(at, at + n));
    at += n;
  }
  return out;
}

export const TARGETS: readonly FuzzTarget[] = [
  {
    name: 'readPackage',
    run(input, pick) {
      let rest = input;
      const limits = { maxPackage: pick() % 2 === 0 ? LIMITS.maxPackage : pick() % 64 };
      for (;;) {
        const step = readPackage(rest, limits);
        if (step.kind === 'need') return;
        rest = rest.subarray(step.used);
      }
    },
  },
  {
    name: 'PackageReader',
    run(input, pick) {
      const limits = { maxPackage: pick() % 2 === 0 ? LIMITS.maxPackage : pick() % 64 };
      const reader = new PackageReader(limits);
      for (const c of chunks(input, pick)) {
        reader.push(c);
        if (reader.bufferedBytes > limits.maxPackage + 4) throw new Error(`reader holds ${reader.bufferedBytes} B`);
      }
    },
  },
  {
    name: 'decodeSinglePackage',
    run(input) {
      decodeSinglePackage(input, LIMITS);
    },
  },
  {
    name: 'decodeMessage',
    run(input) {
      const m = decodeMessage(input);
      if (!(m.id >= 0 && m.id <= 0xffffffff)) throw new Error(`id ${m.id} out of range`);
    },
  },
  {
    name: 'decodeVarint',
    run(input, pick) {
      decodeVarint(input, input.length === 0 ? 0 : pick() % input.length);
    },
  },
  {
    name: 'decodeProtobuf',
    run(input, pick) {
      const route = ROUTES[pick() % ROUTES.length]!;
      const value = decodeProtobuf(PROTOS, route, input);
      // What we decode we can encode again (or refuse with null), never crash.
      encodeProtobuf(PROTOS, route, value);
    },
  },
  {
    name: 'parseHandshakeRequest',
    run(input) {
      parseHandshakeRequest(input);
    },
  },
];

/** Runs every target on an input with every choice that matters (crasher replay). */
export function replay(input: Buffer): void {
  const seed = fnv1a(input);
  for (const t of TARGETS) {
    if (t.name === 'decodeProtobuf') {
      for (const route of ROUTES) {
        try {
          decodeProtobuf(PROTOS, route, input);
        } catch (err) {
          if (!isProtocolError(err)) throw err;
        }
      }
      continue;
    }
    for (let i = 0; i < 4; i++) {
      try {
        t.run(input, rng(seed + i));
      } catch (err) {
        if (!isProtocolError(err)) throw err;
      }
    }
  }
}

// ---------------------------------------------------------------- corpus and mutation

function seedCorpus(): Map<string, Buffer[]> {
  const corpus = new Map<string, Buffer[]>(TARGETS.map((t) => [t.name, []]));
  const add = (names: readonly string[], b: Buffer): void => {
    if (b.length > 4096) return; // mutating big inputs costs more than it finds
    for (const n of names) corpus.get(n)!.push(b);
  };
  const pkgTargets = ['readPackage', 'PackageReader', 'decodeSinglePackage'];
  const msgTargets = ['decodeMessage', 'decodeVarint'];
  // Built-in seeds, so the run works without the vector file.
  add(pkgTargets, Buffer.from('03000000040000027b7d', 'hex'));
  add(pkgTargets, Buffer.from('010000317b22737973223a7b2274797065223a226a732d776562736f636b6574222c2276657273696f6e223a22302e302e31227d7d', 'hex'));
  add(msgTargets, Buffer.from('00ac0205612e622e637b7d', 'hex'));
  add(msgTargets, Buffer.from('0700057b7d', 'hex'));
  add(['parseHandshakeRequest'], Buffer.from('{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0},"user":{}}'));
  const samples: readonly [string, unknown][] = [
    ['onStats', { total: 300, counts: [1, 2, 300], delta: -3, ratio: 0.5, avg: 1.25, entries: [{ name: 'a', count: 1 }], tags: ['x'], samples: [1.5], fs: [2], is: [-1] }],
    ['onUsers', { users: [{ id: 'u1', age: 30 }, { id: 'u2' }] }],
    ['tree', { root: { v: 1, next: { v: 2, next: { v: 3 } }, kids: [{ v: 4 }, { kids: [{ v: 5 }] }] } }],
    ['onMsg', { msg: { title: '通知', msg: '你好' } }],
    ['move', { x: 300, y: 5, dz: -3, path: [1, 2, 300] }],
  ];
  for (const [route, msg] of samples) add(['decodeProtobuf'], encodeProtobuf(PROTOS, route, msg)!);
  {
    const file = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as { vectors: Record<string, unknown>[] };
    for (const v of file.vectors) {
      const h = (k: string): Buffer | null => (typeof v[k] === 'string' ? Buffer.from(v[k], 'hex') : null);
      const pkg = h('hex');
      if (pkg !== null) {
        add(pkgTargets, pkg);
        if (pkg.length > 4) add(pkg[0] === 1 ? ['parseHandshakeRequest'] : msgTargets, pkg.subarray(4));
      }
      for (const k of ['messageHex', 'requestMessageHex', 'serverResponseMessageHex']) {
        const m = h(k);
        if (m !== null) add(msgTargets, m);
      }
      for (const k of ['protobufHex', 'browserCodecHex', 'nodeCodecHex', 'firstHex', 'secondHex']) {
        const p = h(k);
        if (p !== null) add(['decodeProtobuf'], p);
      }
      if (typeof v['bodyJson'] === 'string') add(['parseHandshakeRequest'], Buffer.from(v['bodyJson']));
    }
  }
  return corpus;
}

const INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0a, 0x12, 0x7f, 0x80, 0xff, 0x22, 0x7b, 0x7d];

function randomBytes(r: Rng): Buffer {
  const big = r() % 16 === 0;
  const length = big ? r() % 1024 : r() % (1 + (r() % 48));
  const out = Buffer.allocUnsafe(length);
  const biased = r() % 2 === 0;
  for (let i = 0; i < length; i++) out[i] = biased && r() % 3 === 0 ? INTERESTING[r() % INTERESTING.length]! : r() & 0xff;
  return out;
}

function mutate(seed: Buffer, others: readonly Buffer[], r: Rng): Buffer {
  let b = Buffer.from(seed);
  const ops = 1 + (r() % 4);
  for (let k = 0; k < ops; k++) {
    const at = b.length === 0 ? 0 : r() % b.length;
    switch (r() % 9) {
      case 0:
        if (b.length > 0) b[at] = b[at]! ^ (1 << (r() % 8));
        break;
      case 1:
        if (b.length > 0) b[at] = r() & 0xff;
        break;
      case 2:
        if (b.length > 0) b[at] = INTERESTING[r() % INTERESTING.length]!;
        break;
      case 3: {
        const ins = randomBytes(r).subarray(0, 1 + (r() % 8));
        b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
        break;
      }
      case 4:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + (r() % 8)))]);
        break;
      case 5:
        b = b.subarray(0, at);
        break;
      case 6: {
        const dup = b.subarray(at, at + 1 + (r() % 16));
        b = Buffer.concat([b.subarray(0, at), dup, b.subarray(at)]);
        break;
      }
      case 7: {
        const other = others[r() % others.length];
        if (other !== undefined && other.length > 0) {
          const from = r() % other.length;
          b = Buffer.concat([b.subarray(0, at), other.subarray(from, from + 1 + (r() % 32))]);
        }
        break;
      }
      default:
        // Length-ish fields: bump a byte up or down by one.
        if (b.length > 0) b[at] = (b[at]! + (r() % 2 === 0 ? 1 : 255)) & 0xff;
    }
  }
  return b;
}

// ---------------------------------------------------------------- the run

export interface TargetCounts {
  inputs: number;
  values: number;
  errors: Record<string, number>;
}

export interface Crash {
  readonly target: string;
  readonly inputHex: string;
  readonly error: string;
  readonly file: string | null;
}

export interface FuzzOptions {
  /** Inputs per target. */
  readonly perTarget: number;
  readonly seed: number;
  /** Where to write crashing inputs; null to only report them. @default null */
  readonly crashDir?: string | null;
  /** Stop at the first crash. @default true */
  readonly stopOnCrash?: boolean;
  /** Called every `progressEvery` inputs of a target. */
  readonly onProgress?: (target: string, done: number) => void;
  readonly progressEvery?: number;
}

export interface FuzzResult {
  readonly counts: Record<string, TargetCounts>;
  readonly crashes: readonly Crash[];
}

function saveCrash(dir: string, target: string, input: Buffer): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${target}-${createHash('sha1').update(input).digest('hex').slice(0, 16)}.bin`);
  writeFileSync(file, input);
  return file;
}

export function runFuzz(opts: FuzzOptions): FuzzResult {
  const corpus = seedCorpus();
  const all = [...corpus.values()].flat();
  const counts: Record<string, TargetCounts> = {};
  const crashes: Crash[] = [];
  const stopOnCrash = opts.stopOnCrash ?? true;
  TARGETS.forEach((target, ti) => {
    const r = rng(opts.seed * 31 + ti);
    const seeds = corpus.get(target.name)!;
    const c: TargetCounts = { inputs: 0, values: 0, errors: {} };
    counts[target.name] = c;
    for (let i = 0; i < opts.perTarget; i++) {
      if (stopOnCrash && crashes.length > 0) return;
      const input = seeds.length > 0 && r() % 10 < 7 ? mutate(seeds[r() % seeds.length]!, all, r) : randomBytes(r);
      const pick = rng(r());
      c.inputs++;
      try {
        target.run(input, pick);
        c.values++;
      } catch (err) {
        if (isProtocolError(err)) {
          c.errors[err.code] = (c.errors[err.code] ?? 0) + 1;
        } else {
          const file = opts.crashDir ? saveCrash(opts.crashDir, target.name, input) : null;
          crashes.push({
            target: target.name,
            inputHex: input.toString('hex'),
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
            file,
          });
        }
      }
      if (opts.onProgress && opts.progressEvery && (i + 1) % opts.progressEvery === 0) opts.onProgress(target.name, i + 1);
    }
  });
  return { counts, crashes };
}

function main(): void {
  const perTarget = Number(process.argv[2] ?? 10_000_000);
  const seed = Number(process.argv[3] ?? (Date.now() & 0x7fffffff));
  if (!Number.isSafeInteger(perTarget) || perTarget < 0 || !Number.isSafeInteger(seed)) {
    console.error('usage: node --import tsx bench/fuzz/pomelo-fuzz.ts [inputsPerDecoder] [seed]');
    process.exit(2);
  }
  console.log(`pomelo fuzz: ${perTarget} inputs per decoder, seed ${seed}, node ${process.version}`);
  const started = Date.now();
  const result = runFuzz({
    perTarget,
    seed,
    crashDir: CRASHERS_DIR,
    progressEvery: 1_000_000,
    onProgress: (t, n) => console.log(`  ${t}: ${n} (${((Date.now() - started) / 1000).toFixed(0)} s)`),
  });
  for (const [name, c] of Object.entries(result.counts)) {
    const errs = Object.entries(c.errors)
      .sort((a, b) => b[1] - a[1])
      .map(([code, n]) => `${code}=${n}`)
      .join(' ');
    console.log(`${name.padEnd(22)} inputs=${c.inputs} values=${c.values} ${errs}`);
  }
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (result.crashes.length > 0) {
    for (const crash of result.crashes) {
      console.error(`CRASH in ${crash.target}: input ${crash.inputHex}\n  saved to ${crash.file ?? '(not saved)'}\n${crash.error}`);
    }
    process.exit(1);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
