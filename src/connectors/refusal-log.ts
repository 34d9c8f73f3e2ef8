import type { Logger } from '../log.js';
import type { LimitCode, RefusalReporter } from './admission.js';

/** One log line per listener and reason per this many ms, at most. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

interface Window {
  /** When the last line for this listener and reason was written, ms. */
  at: number;
  /** Refusals since then, not yet in a line. */
  unlogged: number;
}

/**
 * Reports refusals at the listeners: every one is counted (`count`, the metrics), and
 * logged at warn — the first of a kind at once, then at most one line per listener
 * and reason every REFUSAL_LOG_INTERVAL_MS with how many came meanwhile, so that a
 * flood writes a few lines, not one per connection.
 */
export function refusalReporter(log: Logger, count: (listener: string, code: LimitCode) => void, now: () => number = Date.now): RefusalReporter {
  const windows = new Map<string, Window>();
  return (listener, code, address) => {
    count(listener, code);
    const key = `${listener} ${code}`;
    const t = now();
    let w = windows.get(key);
    if (w === undefined) {
      w = { at: -Infinity, unlogged: 0 };
      windows.set(key, w);
    }
    w.unlogged++;
    if (t - w.at < REFUSAL_LOG_INTERVAL_MS) return;
    log.warn(
      { event: 'refused', listener, code, remote: address, refused: w.unlogged, sinceMs: Number.isFinite(w.at) ? t - w.at : 0 },
      code === 'LIMIT_DESCRIPTORS' ? 'connections refused: the process is near its open-files limit' : 'connections refused at the limits',
    );
    w.at = t;
    w.unlogged = 0;
  };
}
