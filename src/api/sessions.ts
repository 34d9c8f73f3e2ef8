import { randomBytes } from 'node:crypto';

/** @default 12 hours: an admin session's lifetime, ms. */
export const SESSION_TTL_MS = 12 * 3600 * 1000;
export const SESSION_COOKIE = 'shaddock_session';
export const CSRF_HEADER = 'x-csrf-token';

export interface AdminSession {
  readonly username: string;
  /** Sent back by the console on every state-changing request (double submit). */
  readonly csrfToken: string;
  readonly expiresAt: number;
}

/**
 * Console login sessions, in this node's memory: a restart logs admins out, and in a
 * cluster a session is valid on the node that created it (put the console behind
 * sticky sessions, or log in again). Tokens are 256 random bits.
 */
export class SessionStore {
  readonly #sessions = new Map<string, AdminSession>();
  readonly #ttl: number;
  readonly #now: () => number;

  constructor(ttlMs = SESSION_TTL_MS, now: () => number = Date.now) {
    this.#ttl = ttlMs;
    this.#now = now;
  }

  create(username: string): { token: string; session: AdminSession } {
    this.#sweep();
    const token = randomBytes(32).toString('base64url');
    const session = { username, csrfToken: randomBytes(24).toString('base64url'), expiresAt: this.#now() + this.#ttl };
    this.#sessions.set(token, session);
    return { token, session };
  }

  get(token: string | undefined): AdminSession | undefined {
    if (token === undefined) return undefined;
    const session = this.#sessions.get(token);
    if (!session) return undefined;
    if (session.expiresAt <= this.#now()) {
      this.#sessions.delete(token);
      return undefined;
    }
    return session;
  }

  delete(token: string | undefined): void {
    if (token !== undefined) this.#sessions.delete(token);
  }

  /** Ends every session of an admin (password changed). */
  deleteUser(username: string): void {
    for (const [token, s] of this.#sessions) if (s.username === username) this.#sessions.delete(token);
  }

  #sweep(): void {
    const now = this.#now();
    for (const [token, s] of this.#sessions) if (s.expiresAt <= now) this.#sessions.delete(token);
  }
}

/** The value of one cookie from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function sessionCookie(token: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

/** @default one minute: the window failed logins are counted in, ms. */
export const LOGIN_WINDOW_MS = 60_000;
/** Addresses and usernames tracked at most; past it the oldest entries go (memory stays bounded). */
const MAX_LOGIN_KEYS = 100_000;

/**
 * Failed admin logins, per source address and per username, in a sliding window: past
 * `maxFailures` in the window, either key alone makes further attempts wait (HTTP 429
 * with Retry-After; LIMIT_LOGIN_RATE on connectors), whatever the password. A success
 * clears both keys. One instance per node serves the console login, Basic auth and
 * managers entering with admin credentials, so an attacker cannot add up their
 * allowances by switching door.
 *
 * Counting per username also slows a spread-out guessing attack on one account, at the
 * price that anyone can keep that account waiting for a minute at a time; the admin can
 * still get in from the server itself with `shaddock admin passwd`.
 */
export class LoginLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  /** Key → times of its recent failures, oldest first, at most `max` of them. */
  readonly #failures = new Map<string, number[]>();

  /** @param maxFailures failures allowed per window and key; 0 turns the limit off. */
  constructor(maxFailures: number, windowMs = LOGIN_WINDOW_MS, now: () => number = Date.now) {
    this.#max = maxFailures;
    this.#windowMs = windowMs;
    this.#now = now;
  }

  /** Seconds until this address and username may try again; 0: now. */
  retryAfter(address: string, username: string): number {
    if (this.#max <= 0) return 0;
    const now = this.#now();
    let waitMs = 0;
    for (const key of loginKeys(address, username)) {
      const times = this.#recent(key, now);
      if (times !== undefined && times.length >= this.#max) waitMs = Math.max(waitMs, times[0]! + this.#windowMs - now);
    }
    return waitMs > 0 ? Math.ceil(waitMs / 1000) : 0;
  }

  failed(address: string, username: string): void {
    if (this.#max <= 0) return;
    const now = this.#now();
    for (const key of loginKeys(address, username)) {
      const times = this.#recent(key, now) ?? [];
      times.push(now);
      if (times.length > this.#max) times.shift();
      // Re-inserted, so the Map's order is oldest-touched first.
      this.#failures.delete(key);
      this.#failures.set(key, times);
    }
    while (this.#failures.size > MAX_LOGIN_KEYS) {
      const oldest = this.#failures.keys().next();
      if (oldest.done === true) break;
      this.#failures.delete(oldest.value);
    }
  }

  succeeded(address: string, username: string): void {
    for (const key of loginKeys(address, username)) this.#failures.delete(key);
  }

  /** The key's failures still in the window (dropping older ones), or undefined. */
  #recent(key: string, now: number): number[] | undefined {
    const times = this.#failures.get(key);
    if (times === undefined) return undefined;
    while (times.length > 0 && times[0]! <= now - this.#windowMs) times.shift();
    if (times.length === 0) {
      this.#failures.delete(key);
      return undefined;
    }
    return times;
  }
}

function loginKeys(address: string, username: string): [string, string] {
  // An IPv4 client of a dual-stack socket shows up as ::ffff:a.b.c.d: one address, one key.
  return [`ip:${address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '')}`, `user:${username}`];
}

/** The username of an `Authorization: Basic` header, or undefined. */
export function basicAuthUsername(header: string | undefined): string | undefined {
  if (header === undefined || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(0, colon);
}
