// The app page samples GET /stats once a second; the header and the charts read the
// samples from here. The server's counters are cumulative, so a rate is the difference
// of two samples over the server time between them.
import type { Stats } from './api.js';

/** @default 5 minutes of 1 s samples. */
export const WINDOW_SECONDS = 300;

export interface Sample {
  /** Seconds since the epoch (server time), as uPlot wants its x values. */
  readonly t: number;
  readonly online: number;
  /** Per second, since the previous sample; null for the first sample after a gap. */
  readonly delivered: number | null;
  readonly accepted: number | null;
  readonly acked: number | null;
}

export class StatsSeries {
  #last: Stats | undefined;
  #samples: Sample[] = [];
  readonly #listeners = new Set<() => void>();

  get samples(): readonly Sample[] {
    return this.#samples;
  }

  get latest(): Sample | undefined {
    return this.#samples[this.#samples.length - 1];
  }

  add(s: Stats): void {
    const prev = this.#last;
    this.#last = s;
    const dt = prev === undefined ? 0 : (s.at - prev.at) / 1000;
    // A gap (the tab was hidden, the server restarted and its counters went back) has no rate.
    const rated = prev !== undefined && dt > 0 && dt < 5 && s.delivered >= prev.delivered && s.accepted >= prev.accepted && s.acked >= prev.acked;
    const rate = (now: number, before: number): number | null => (rated ? (now - before) / dt : null);
    this.#samples.push({
      t: s.at / 1000,
      online: s.online,
      delivered: rate(s.delivered, prev?.delivered ?? 0),
      accepted: rate(s.accepted, prev?.accepted ?? 0),
      acked: rate(s.acked, prev?.acked ?? 0),
    });
    const oldest = s.at / 1000 - WINDOW_SECONDS;
    let drop = 0;
    while (drop < this.#samples.length && this.#samples[drop]!.t < oldest) drop++;
    if (drop > 0) this.#samples = this.#samples.slice(drop);
    for (const fn of this.#listeners) fn();
  }

  subscribe(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => {
      this.#listeners.delete(fn);
    };
  }
}

const byApp = new Map<string, StatsSeries>();

/** One series per app for the life of the page, so leaving and coming back keeps the chart. */
export function seriesFor(apikey: string): StatsSeries {
  let s = byApp.get(apikey);
  if (s === undefined) {
    s = new StatsSeries();
    byApp.set(apikey, s);
  }
  return s;
}
