/**
 * The fuzz loop every decoder shares (docs/conventions.md §8): seeded inputs (random bytes, byte
 * mutations of valid seeds, structured JSON mutations), a decoder-specific verdict on
 * what was thrown, and crashers saved so that `npm test` replays them forever.
 *
 * A crasher file is `[pick seed: uint32 BE][input bytes]`: the seed drives every choice
 * the decoder makes besides the bytes (chunking, limits, route), so a replay runs
 * exactly what crashed. Nothing here knows any decoder; see decoders.ts.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rng, type Rng } from './pomelo-fuzz.js';

export { rng, type Rng };

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** test/fixtures/fuzz-crashers/<decoder>/ holds every input that ever crashed a decoder. */
export const FUZZ_CRASHERS_DIR = join(REPO_ROOT, 'test/fixtures/fuzz-crashers');

/** One decoder under fuzz, opened once per run (the HTTP one holds a server). */
export interface DecoderInstance {
  /** Valid or nearly valid inputs: 70% of inputs are mutations of these. */
  readonly seeds: readonly Buffer[];
  /** The seeds are JSON text (or hold JSON): mutate their structure too. */
  readonly json?: boolean;
  /**
   * Feeds one input. Returns normally for a value; throws the decoder's documented
   * refusal for bad input; anything else it throws is a crash. `pick` drives every
   * other choice (chunking, limits, which route), so a replay is exact.
   */
  run(input: Buffer, pick: Rng): void | Promise<void>;
  /** The stable code of a documented refusal, or undefined: the error is a crash. */
  classify(err: unknown): string | undefined;
  close?(): Promise<void>;
}

export interface DecoderSpec {
  readonly name: string;
  readonly about: string;
  /** Inputs/s is much lower (an HTTP request per input): the quick suite runs fewer. */
  readonly slow?: boolean;
  open(): Promise<DecoderInstance>;
}

// ---------------------------------------------------------------- inputs

const INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0d, 0x1e, 0x22, 0x2c, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x7f, 0x80, 0xc0, 0xff];

export function randomBytes(r: Rng): Buffer {
  const big = r() % 16 === 0;
  const length = big ? r() % 2048 : r() % (1 + (r() % 64));
  const out = Buffer.allocUnsafe(length);
  const biased = r() % 2 === 0;
  for (let i = 0; i < length; i++) out[i] = biased && r() % 3 === 0 ? INTERESTING[r() % INTERESTING.length]! : r() & 0xff;
  return out;
}

/** Byte-level mutations: flips, interesting bytes, inserts, deletes, truncation, splices. */
export function mutateBytes(seed: Buffer, others: readonly Buffer[], r: Rng): Buffer {
  let b = Buffer.from(seed);
  const ops = 1 + (r() % 4);
  for (let k = 0; k < ops; k++) {
    const at = b.length === 0 ? 0 : r() % b.length;
    switch (r() % 10) {
      case 0:
        if (b.length > 0) b[at] = b[at]! ^ (1 << (r() % 8));
        break;
      case 1:
        if (b.length > 0) b[at] = r() & 0xff;
        break;
      case 2:
        if (b.length > 0) b[at] = INTERESTING[r() % INTERESTING.length]!;
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), randomBytes(r).subarray(0, 1 + (r() % 8)), b.subarray(at)]);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + (r() % 8)))]);
        break;
      case 5:
        b = b.subarray(0, at);
        break;
      case 6:
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + (r() % 16)), b.subarray(at)]);
        break;
      case 7: {
        const other = others[r() % Math.max(1, others.length)];
        if (other !== undefined && other.length > 0) {
          const from = r() % other.length;
          b = Buffer.concat([b.subarray(0, at), other.subarray(from, from + 1 + (r() % 32))]);
        }
        break;
      }
      case 8:
        // Length-ish fields: one up or down.
        if (b.length > 0) b[at] = (b[at]! + (r() % 2 === 0 ? 1 : 255)) & 0xff;
        break;
      default:
        // Oversize: repeat a slice many times (limits, super-linear paths).
        if (b.length > 0) {
          const piece = b.subarray(at, at + 1 + (r() % 8));
          b = Buffer.concat([b.subarray(0, at), Buffer.alloc(piece.length * (16 + (r() % 512)), piece), b.subarray(at)]);
        }
    }
  }
  return b;
}

const ODD_STRINGS = ['', ' ', '\u0000', '\n', '\r\n', '\u2028', '\ud800', '😀', 'apps/+/all', '#', '$share/x', '../', '__proto__', 'constructor', 'toString', '%00', 'a'.repeat(300)];
const ODD_NUMBERS = [0, -0, -1, 1, 0.5, 1e308, -1e308, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, 1e-300, 255, 256, 65535, 65536];

function randomJsonValue(r: Rng, depth: number): unknown {
  switch (r() % (depth > 3 ? 6 : 9)) {
    case 0:
      return null;
    case 1:
      return r() % 2 === 0;
    case 2:
      return ODD_NUMBERS[r() % ODD_NUMBERS.length];
    case 3:
      return (r() % 2 === 0 ? 1 : -1) * (r() % 100_000) / (r() % 4 === 0 ? 7 : 1);
    case 4:
      return ODD_STRINGS[r() % ODD_STRINGS.length];
    case 5: {
      const n = r() % 24;
      let s = '';
      for (let i = 0; i < n; i++) s += String.fromCharCode(r() % 8 === 0 ? r() % 0x10000 : 0x20 + (r() % 95));
      return s;
    }
    case 6: {
      const n = r() % 4;
      return Array.from({ length: n }, () => randomJsonValue(r, depth + 1));
    }
    case 7: {
      // Deep nesting: depth limits and recursive walkers.
      let v: unknown = r() % 2 === 0 ? [] : {};
      const levels = 1 + (r() % 80);
      for (let i = 0; i < levels; i++) v = r() % 2 === 0 ? [v] : { a: v };
      return v;
    }
    default: {
      const o: Record<string, unknown> = {};
      const n = r() % 4;
      for (let i = 0; i < n; i++) o[String(randomJsonValue(r, 4))] = randomJsonValue(r, depth + 1);
      return o;
    }
  }
}

/** Replaces, removes or adds one node of a parsed JSON value, keeping the rest. */
function mutateJsonValue(v: unknown, r: Rng, depth: number): unknown {
  const stop = depth > 6 || r() % 3 === 0;
  if (Array.isArray(v)) {
    if (stop || v.length === 0) {
      const copy = [...(v as unknown[])];
      const at = copy.length === 0 ? 0 : r() % copy.length;
      switch (r() % 4) {
        case 0:
          copy.splice(at, 1);
          break;
        case 1:
          copy.splice(at, 0, randomJsonValue(r, depth));
          break;
        case 2: {
          // Many items: count limits. Primitives only: repeating a shared object here would
          // let a later round nest such lists and make the JSON text grow exponentially.
          const kind = r() % 3;
          return Array.from({ length: 100 + (r() % 10_000) }, (_, i) => (kind === 0 ? i : kind === 1 ? `x${i}` : null));
        }
        default:
          return randomJsonValue(r, depth);
      }
      return copy;
    }
    const copy = [...(v as unknown[])];
    const at = r() % copy.length;
    copy[at] = mutateJsonValue(copy[at], r, depth + 1);
    return copy;
  }
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v);
    if (stop || entries.length === 0) {
      const copy: Record<string, unknown> = Object.fromEntries(entries);
      const keys = Object.keys(copy);
      switch (r() % 4) {
        case 0:
          if (keys.length > 0) delete copy[keys[r() % keys.length]!];
          break;
        case 1:
          copy[String(randomJsonValue(r, 4))] = randomJsonValue(r, depth);
          break;
        case 2:
          if (keys.length > 0) copy[keys[r() % keys.length]!] = randomJsonValue(r, depth);
          break;
        default:
          return randomJsonValue(r, depth);
      }
      return copy;
    }
    const [key, value] = entries[r() % entries.length]!;
    return { ...Object.fromEntries(entries), [key]: mutateJsonValue(value, r, depth + 1) };
  }
  return r() % 2 === 0 ? randomJsonValue(r, depth) : v;
}

/**
 * A structural mutation of a JSON seed. The seed may carry a binary prefix (a Pomelo
 * sio header, an engine.io type digit): everything before the first `{` or `[` is kept.
 */
export function mutateJson(seed: Buffer, r: Rng): Buffer | undefined {
  const text = seed.toString('utf8');
  const start = text.search(/[[{]/);
  if (start < 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text.slice(start));
  } catch {
    return undefined;
  }
  const rounds = 1 + (r() % 3);
  for (let i = 0; i < rounds; i++) value = mutateJsonValue(value, r, 0);
  let out = JSON.stringify(value) ?? 'null';
  // Keys JSON.stringify cannot emit from an object literal (setting them changes the prototype).
  if (r() % 16 === 0 && out.startsWith('{')) out = `{"__proto__":{"polluted":1},${out.slice(1)}`.replace(',}', '}');
  return Buffer.from(text.slice(0, start) + out, 'utf8');
}

/** One input for a decoder: a mutated seed (byte or JSON level) or random bytes. */
export function nextInput(d: DecoderInstance, all: readonly Buffer[], r: Rng): Buffer {
  const seeds = d.seeds;
  if (seeds.length === 0 || r() % 10 >= 7) return randomBytes(r);
  const seed = seeds[r() % seeds.length]!;
  if (d.json === true && r() % 2 === 0) {
    const m = mutateJson(seed, r);
    if (m !== undefined) return r() % 4 === 0 ? mutateBytes(m, all, r) : m;
  }
  return mutateBytes(seed, all, r);
}

// ---------------------------------------------------------------- crashers

export function crasherBytes(pickSeed: number, input: Buffer): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(pickSeed >>> 0, 0);
  return Buffer.concat([head, input]);
}

export function parseCrasher(file: Buffer): { pickSeed: number; input: Buffer } {
  if (file.length < 4) throw new Error('a crasher file starts with a 4-byte pick seed');
  return { pickSeed: file.readUInt32BE(0), input: file.subarray(4) };
}

export function saveCrasher(decoder: string, pickSeed: number, input: Buffer, dir = FUZZ_CRASHERS_DIR): string {
  const folder = join(dir, decoder);
  mkdirSync(folder, { recursive: true });
  const bytes = crasherBytes(pickSeed, input);
  const file = join(folder, `${createHash('sha1').update(bytes).digest('hex').slice(0, 16)}.bin`);
  writeFileSync(file, bytes);
  return file;
}

// ---------------------------------------------------------------- the loop

export interface Crash {
  readonly decoder: string;
  readonly index: number;
  readonly pickSeed: number;
  readonly inputHex: string;
  readonly error: string;
  readonly file: string | null;
}

export interface DecoderCounts {
  inputs: number;
  values: number;
  /** Documented refusals by code. */
  errors: Record<string, number>;
  /** The slowest single input, ms, and its index (super-linear paths show here). */
  slowestMs: number;
  slowestIndex: number;
  elapsedMs: number;
}

export interface LoopOptions {
  readonly count: number;
  readonly seed: number;
  /** Save crashers here (a folder per decoder); null: only report them. */
  readonly crashDir: string | null;
  /** Stop at the first crash. @default false */
  readonly stopOnCrash?: boolean;
  /** Called before each input (the watchdog's view of what is running). */
  readonly onInput?: (index: number, pickSeed: number, input: Buffer) => void;
  readonly onProgress?: (done: number, counts: DecoderCounts) => void;
  readonly progressEvery?: number;
  /** Asked every 1,024 inputs: true ends the run early (a time budget). */
  readonly shouldStop?: () => boolean;
}

/** Error text for a report: the stack for Errors, a description for anything else thrown. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  try {
    return `non-Error thrown: ${JSON.stringify(err)}`;
  } catch {
    return `non-Error thrown: ${String(err)}`;
  }
}

/** Feeds `count` seeded inputs to one decoder. Crashes are collected, not thrown. */
export async function fuzzDecoder(spec: DecoderSpec, d: DecoderInstance, opts: LoopOptions): Promise<{ counts: DecoderCounts; crashes: Crash[] }> {
  // Per-decoder stream: the same seed gives the same inputs whatever else runs.
  let nameHash = 0x811c9dc5;
  for (let i = 0; i < spec.name.length; i++) nameHash = Math.imul(nameHash ^ spec.name.charCodeAt(i), 0x01000193);
  const r = rng((opts.seed ^ nameHash) >>> 0);
  const counts: DecoderCounts = { inputs: 0, values: 0, errors: {}, slowestMs: 0, slowestIndex: -1, elapsedMs: 0 };
  const crashes: Crash[] = [];
  const started = performance.now();
  for (let i = 0; i < opts.count; i++) {
    const input = nextInput(d, d.seeds, r);
    const pickSeed = r();
    opts.onInput?.(i, pickSeed, input);
    const t0 = performance.now();
    let crashed: unknown;
    let isCrash = false;
    try {
      const p = d.run(input, rng(pickSeed));
      if (p !== undefined) await p;
      counts.values++;
    } catch (err) {
      const code = d.classify(err);
      if (code !== undefined) counts.errors[code] = (counts.errors[code] ?? 0) + 1;
      else {
        isCrash = true;
        crashed = err;
      }
    }
    const took = performance.now() - t0;
    if (took > counts.slowestMs) {
      counts.slowestMs = took;
      counts.slowestIndex = i;
    }
    counts.inputs++;
    if (isCrash) {
      const file = opts.crashDir === null ? null : saveCrasher(spec.name, pickSeed, input, opts.crashDir);
      crashes.push({ decoder: spec.name, index: i, pickSeed, inputHex: input.toString('hex').slice(0, 4096), error: describeError(crashed), file });
      if (opts.stopOnCrash === true) break;
    }
    if (opts.onProgress && opts.progressEvery !== undefined && (i + 1) % opts.progressEvery === 0) {
      counts.elapsedMs = performance.now() - started;
      opts.onProgress(i + 1, counts);
    }
    if ((i & 1023) === 1023 && opts.shouldStop?.() === true) break;
  }
  counts.elapsedMs = performance.now() - started;
  return { counts, crashes };
}

/** Replays one crasher file's input with its pick seed. Throws what the decoder threw if it is still a crash. */
export async function replayCrasher(d: DecoderInstance, file: Buffer): Promise<string> {
  const { pickSeed, input } = parseCrasher(file);
  try {
    const p = d.run(input, rng(pickSeed));
    if (p !== undefined) await p;
    return 'value';
  } catch (err) {
    const code = d.classify(err);
    if (code === undefined) throw err;
    return code;
  }
}
