// The file-descriptor budget (docs/security.md#file-descriptors). Every socket costs a
// descriptor, and past the process's limit accept(2) fails with EMFILE: libuv then
// accepts and closes each new connection at once, so nobody — not `/healthz`, not an
// operator — gets in until clients leave. So client connections are refused *before*
// the limit, and the last descriptors are kept for the HTTP port's health, metrics and
// admin login.
import { readFileSync, readdirSync } from 'node:fs';

/** The soft RLIMIT_NOFILE of this process (Node raised it to the hard limit at start), or undefined when unknown or unlimited. */
export function readOpenFilesLimit(path = '/proc/self/limits'): number | undefined {
  try {
    const m = /^Max open files\s+(\S+)/m.exec(readFileSync(path, 'utf8'));
    const n = Number(m?.[1]);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Descriptors this process has open now (Linux), or undefined when that cannot be read. */
export function countOpenDescriptors(): number | undefined {
  try {
    // The directory's own descriptor is in the listing while it is read.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}

/** Where the process stands: room for clients, only the reserve left, or nothing left. */
export const DESCRIPTOR_ROOM = { CLIENTS: 0, RESERVE: 1, NONE: 2 } as const;
export type DescriptorRoom = (typeof DESCRIPTOR_ROOM)[keyof typeof DESCRIPTOR_ROOM];

export interface DescriptorBudgetOptions {
  /** The open-files limit. */
  readonly limit: number;
  /** Descriptors kept back from clients (capped at a quarter of the limit). */
  readonly reserve: number;
  /** Sockets held now besides those of tracked listeners (tests). */
  readonly sockets?: () => number;
  /** Descriptors open in the process now; undefined when unknown. */
  readonly countOpen?: () => number | undefined;
  readonly now?: () => number;
}

/** How often, at most, the descriptors that are not sockets are counted again near the limit, ms. */
const RECOUNT_MS = 500;
/** How old the count of the other descriptors may get anywhere, ms (they may grow while sockets are few). */
const STALE_MS = 10_000;

/**
 * Accepted sockets are counted by the listeners themselves (cheap, exact); the rest of
 * the process's descriptors (the database, log files, Redis, listening sockets, libuv's
 * own) are counted from /proc when the process gets near its ceiling, since they can
 * change (a Redis reconnect, SQLite's WAL).
 */
export class DescriptorBudget {
  readonly limit: number;
  readonly reserve: number;
  /** Client connections are refused past this many descriptors in use. */
  readonly clientCeiling: number;
  /** Nothing is accepted past this many: a few stay free for the process's own files. */
  readonly hardCeiling: number;
  readonly #sockets: () => number;
  readonly #tracked: (() => number)[] = [];
  readonly #countOpen: () => number | undefined;
  readonly #now: () => number;
  #others = -1;
  #countedAt = 0;

  constructor(opts: DescriptorBudgetOptions) {
    this.limit = opts.limit;
    this.reserve = Math.min(opts.reserve, Math.floor(opts.limit / 4));
    this.clientCeiling = this.limit - this.reserve;
    this.hardCeiling = this.limit - Math.max(4, Math.floor(this.reserve / 4));
    this.#sockets = opts.sockets ?? (() => 0);
    this.#countOpen = opts.countOpen ?? countOpenDescriptors;
    this.#now = opts.now ?? Date.now;
  }

  /** Counts a listener's open sockets in (listen.ts guardListener does, for every listener). */
  track(openSockets: () => number): void {
    this.#tracked.push(openSockets);
  }

  /** Sockets the tracked listeners hold now (accepted, not yet closed). */
  sockets(): number {
    let n = this.#sockets();
    for (const count of this.#tracked) n += count();
    return n;
  }

  /** Descriptors in use: the listeners' sockets plus the others, as last counted. */
  inUse(): number {
    const sockets = this.sockets();
    if (this.#others < 0) this.#recount(sockets);
    let used = sockets + this.#others;
    // Near the ceiling the estimate must be right: count again (at most every RECOUNT_MS);
    // elsewhere, every STALE_MS (a connection arriving asks).
    const age = this.#now() - this.#countedAt;
    if (age >= STALE_MS || (used >= this.clientCeiling - this.reserve && age >= RECOUNT_MS)) {
      this.#recount(sockets);
      used = sockets + this.#others;
    }
    return used;
  }

  /** Room for one more socket (already accepted and counted in `sockets`). */
  room(): DescriptorRoom {
    if (this.reserve <= 0) return DESCRIPTOR_ROOM.CLIENTS;
    const used = this.inUse();
    if (used <= this.clientCeiling) return DESCRIPTOR_ROOM.CLIENTS;
    if (used <= this.hardCeiling) return DESCRIPTOR_ROOM.RESERVE;
    return DESCRIPTOR_ROOM.NONE;
  }

  #recount(sockets: number): void {
    this.#countedAt = this.#now();
    const open = this.#countOpen();
    // Unknown (not Linux): only the sockets are counted, with the reserve as the margin.
    this.#others = open === undefined ? 0 : Math.max(0, open - sockets);
  }
}
