/**
 * Messages between the coordinator (run.ts) and its load workers (worker.ts), over
 * the child process IPC channel, and the payload marker both sides agree on.
 */
import type { ClientConfig } from './clients.js';
import type { HistogramData } from './histogram.js';

export interface WorkerInit {
  readonly t: 'init';
  readonly cfg: ClientConfig;
  /** Global index of this worker's first connection, and how many it holds. */
  readonly first: number;
  readonly count: number;
  /** Connects in flight at once per worker; 0 = all at once (connect storm). */
  readonly concurrency: number;
  /** A connection not entered by then counts as failed, milliseconds. */
  readonly connectTimeoutMs: number;
}

export type ToWorker =
  | WorkerInit
  | { readonly t: 'connect' }
  /** From now on count messages of run `runId`, seq 0..messages-1, on the connections entered now. */
  | { readonly t: 'expect'; readonly runId: number; readonly messages: number }
  | { readonly t: 'stats'; readonly id: number }
  | { readonly t: 'report'; readonly id: number }
  | { readonly t: 'close'; readonly id: number };

export interface WorkerStats {
  readonly entered: number;
  readonly failed: number;
  /** Connections that closed after entering (kicked, reset…). */
  readonly dropped: number;
  /** Marked messages received (duplicates included) and distinct ones. */
  readonly received: number;
  readonly unique: number;
  /** process.cpuUsage() user+system, µs, cumulative. */
  readonly cpuUs: number;
  readonly rssKB: number;
  /** monoUs() when the last marked message arrived (0: none yet). */
  readonly lastMessageUs: number;
}

export interface WorkerReport extends WorkerStats {
  /** Messages expected by the tracked connections and not received. */
  readonly lost: number;
  readonly duplicated: number;
  /** Marked messages of another run or out of range (should be 0). */
  readonly foreign: number;
  /** Messages without a marker (presence events and the like). */
  readonly unmarked: number;
  readonly tracked: number;
  /** Tracked connections that got every expected message. */
  readonly complete: number;
  readonly latency: HistogramData;
  /** From starting the connect to entered, µs. */
  readonly connectLatency: HistogramData;
  /** Failure reasons → count (the first 20 distinct). */
  readonly errors: Readonly<Record<string, number>>;
  /** monoUs() of the first and last connection entered. */
  readonly firstEnteredUs: number;
  readonly lastEnteredUs: number;
}

export type FromWorker =
  | { readonly t: 'ready' }
  | ({ readonly t: 'progress' } & WorkerStats)
  | { readonly t: 'connected'; readonly stats: WorkerStats }
  | { readonly t: 'reply'; readonly id: number; readonly stats: WorkerStats; readonly report?: WorkerReport };

/**
 * Every benchmark payload carries `"_b":[runId,seq,sentUs]`: the run, the publisher's
 * sequence number (0..M-1) and its send time on CLOCK_MONOTONIC (µs), found in the
 * bytes by the workers without parsing the JSON around it.
 */
export const MARK = Buffer.from('_b');

/**
 * Builds a payload object's JSON of about `size` bytes: `{"_b":[run,seq,us],"p":"xxx…"}`.
 * Returns a function that fills in seq and time; the padding string is built once.
 */
export function payloadMaker(runId: number, size: number): (seq: number, us: number) => string {
  // {"_b":[RUN,SEQ,US],"p":""} with a 16-digit time and ~6-digit ids ≈ 46 bytes.
  const overhead = 20 + String(runId).length + 6 + 16;
  const pad = 'x'.repeat(Math.max(0, size - overhead));
  const head = `{"_b":[${runId},`;
  const tail = `],"p":"${pad}"}`;
  return (seq, us) => head + seq + ',' + us + tail;
}

/** Reads [runId, seq, us] after the marker; returns false when there is none. */
export function readMark(buf: Buffer, start: number, end: number, out: Float64Array): boolean {
  const at = buf.indexOf(MARK, start);
  if (at < 0 || at >= end) return false;
  let k = at + 2;
  // `"_b":[` or, inside a JSON string (sio Pomelo framing), `\"_b\":[`.
  const limit = Math.min(end, k + 6);
  while (k < limit && buf[k] !== 0x5b /* [ */) k++;
  if (buf[k] !== 0x5b) return false;
  k++;
  for (let f = 0; f < 3; f++) {
    let v = 0;
    let digits = 0;
    while (k < end) {
      const c = buf[k]!;
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      digits++;
      k++;
    }
    if (digits === 0) return false;
    out[f] = v;
    k++; // ',' or ']'
  }
  return true;
}
