import type { ApiKey } from '../ids.js';

/**
 * Messages to be pushed later (ntfy's scheduled delivery: X-Delay / X-At / X-In). Kept
 * apart from the message log: they get their message id, and so their place in the
 * log, only when they are due.
 */
export interface NewScheduled {
  readonly apikey: ApiKey;
  /** When to push, ms since the epoch. */
  readonly dueAt: number;
  readonly tags: readonly string[];
  readonly event: string;
  /** Any JSON value. */
  readonly data: unknown;
  /** The pushed message's time to live, seconds; the app's default when absent. */
  readonly ttlSeconds?: number;
}

export interface ScheduledMessage extends NewScheduled {
  /** Unique in the store, increasing, never reused. */
  readonly id: number;
  readonly createdAt: number;
}

/**
 * Guarantees every implementation keeps:
 * - `add` resolves once the entry is durable (it survives a restart);
 * - `claimDue` hands a due entry to one caller at a time, across processes and nodes:
 *   the claim is a lease until `now + leaseMs`; the caller pushes it and calls `done`.
 *   Only a caller that died between claim and `done` lets the lease run out, after
 *   which the entry is claimed again (so at most a duplicate then, never a loss).
 */
export interface ScheduledStore {
  add(entry: NewScheduled, now: number): Promise<ScheduledMessage>;
  /** Due entries (dueAt ≤ now) not claimed by anyone else, oldest first, at most `limit`. */
  claimDue(now: number, leaseMs: number, limit: number): Promise<readonly ScheduledMessage[]>;
  /** The entry was pushed: forget it. */
  done(id: number): Promise<void>;
  /** Entries of the app not yet pushed that target any of `tags`, by due time, at most `limit`. */
  pending(apikey: ApiKey, tags: readonly string[], limit: number): Promise<readonly ScheduledMessage[]>;
  close(): Promise<void>;
}
