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
