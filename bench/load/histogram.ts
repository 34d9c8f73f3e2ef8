/**
 * A compact log-linear latency histogram (the idea of HdrHistogram, without its
 * precision knobs): values are whole microseconds; each power of two is split in
 * 32 linear sub-buckets, so a reported percentile is within ~3 % of the value.
 * One Float64Array per worker, no per-sample objects; histograms merge by adding.
 */

const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
/** 2^40 µs ≈ 12.7 days: anything longer is clamped into the last bucket. */
const MAX_EXP = 40;
export const HISTOGRAM_BUCKETS = (MAX_EXP - SUB_BITS + 2) * SUB;

export interface LatencySummary {
  readonly count: number;
  readonly minUs: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly maxUs: number;
  readonly meanUs: number;
}

/** The serialisable form sent from a worker to the coordinator. */
export interface HistogramData {
  /** [bucketIndex, count] pairs of the non-empty buckets. */
  readonly buckets: readonly (readonly [number, number])[];
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
}

/** 2^k for k = 0..63, so the hot path does no Math.pow. */
const POW2 = Float64Array.from({ length: 64 }, (_, k) => 2 ** k);

function log2Floor(v: number): number {
  if (v < 2 ** 31) return 31 - Math.clz32(v);
  let e = 31;
  for (let x = v / 2 ** 31; x >= 2; x /= 2) e++;
  return e;
}

export function bucketOf(us: number): number {
  const v = us < 0 ? 0 : Math.floor(us);
  if (v < SUB) return v;
  const exp = log2Floor(v);
  if (exp > MAX_EXP) return HISTOGRAM_BUCKETS - 1;
  const shift = exp - SUB_BITS;
  return (shift + 1) * SUB + (Math.floor(v / POW2[shift]!) - SUB);
}

/** The lower edge of a bucket, in µs. */
export function bucketLow(index: number): number {
  if (index < SUB) return index;
  const shift = Math.floor(index / SUB) - 1;
  const sub = index % SUB;
  return (SUB + sub) * 2 ** shift;
}

/** The middle of a bucket, reported as its value. */
function bucketMid(index: number): number {
  if (index < SUB) return index;
  const shift = Math.floor(index / SUB) - 1;
  return bucketLow(index) + 2 ** shift / 2;
}

export class Histogram {
  readonly counts = new Float64Array(HISTOGRAM_BUCKETS);
  count = 0;
  sum = 0;
  min = Infinity;
  max = 0;

  record(us: number): void {
    this.counts[bucketOf(us)]! += 1;
    this.count += 1;
    this.sum += us;
    if (us < this.min) this.min = us;
    if (us > this.max) this.max = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }

  toData(): HistogramData {
    const buckets: [number, number][] = [];
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i]! > 0) buckets.push([i, this.counts[i]!]);
    return { buckets, count: this.count, sum: this.sum, min: this.count === 0 ? 0 : this.min, max: this.max };
  }

  merge(data: HistogramData): void {
    for (const [i, n] of data.buckets) this.counts[i]! += n;
    if (data.count === 0) return;
    this.count += data.count;
    this.sum += data.sum;
    if (data.min < this.min) this.min = data.min;
    if (data.max > this.max) this.max = data.max;
  }

  /** Value at quantile q (0..1): the bucket's middle, clamped to the exact min and max. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(Math.max(bucketMid(i), this.min), this.max);
    }
    return this.max;
  }

  summary(): LatencySummary {
    const r = (n: number): number => Math.round(n);
    return {
      count: this.count,
      minUs: this.count === 0 ? 0 : r(this.min),
      p50Us: r(this.quantile(0.5)),
      p90Us: r(this.quantile(0.9)),
      p99Us: r(this.quantile(0.99)),
      p999Us: r(this.quantile(0.999)),
      maxUs: r(this.max),
      meanUs: this.count === 0 ? 0 : r(this.sum / this.count),
    };
  }
}

/**
 * performance.now() counts from a process-local origin on the same clock as
 * process.hrtime() (CLOCK_MONOTONIC through libuv): the offset between them is fixed.
 */
const MONO_OFFSET_US = ((): number => {
  const t = process.hrtime();
  return t[0] * 1e6 + t[1] / 1000 - performance.now() * 1000;
})();

/**
 * Microseconds on CLOCK_MONOTONIC: the same clock in every process of this machine,
 * so a send time taken by the publisher compares with a receive time in a worker.
 * (performance.now() allocates nothing, unlike process.hrtime().)
 */
export function monoUs(): number {
  return Math.floor(MONO_OFFSET_US + performance.now() * 1000);
}
