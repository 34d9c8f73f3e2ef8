// Every request of the console goes through here. The console uses only the public
// HTTP API (docs/api.md) with the admin session cookie; state-changing requests carry
// the session's CSRF token in a header a cross-site page cannot set. A 401 anywhere
// means the session is gone: the console shows the login page.

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// ------------------------------------------------------------------ checked shapes

export interface Session {
  readonly username: string;
  readonly csrfToken: string;
}

export interface AppInfo {
  readonly apikey: string;
  readonly secret: string;
  readonly name: string;
  readonly messageTtlSeconds: number;
  readonly requireClientToken: boolean;
  /** What a request without credentials may do on the ntfy port (docs/ntfy.md, "Access"). */
  readonly ntfyAnonymousAccess: NtfyAnonymousAccess;
  readonly ntfyTokensCanPublish: boolean;
  readonly createdAt: string;
}

export const NTFY_ANONYMOUS_ACCESS = ['read-write', 'read-only', 'write-only', 'deny'] as const;
export type NtfyAnonymousAccess = (typeof NTFY_ANONYMOUS_ACCESS)[number];
function ntfyAccess(r: Rec): NtfyAnonymousAccess {
  const v = str(r, 'ntfyAnonymousAccess');
  const known = NTFY_ANONYMOUS_ACCESS.find((a) => a === v);
  if (known === undefined) throw new Error(`app: unknown ntfyAnonymousAccess "${v}"`);
  return known;
}

export interface OnlineClient {
  readonly clientId: string;
  readonly connector: string;
  readonly connectedAt: string;
  readonly tags: readonly string[];
}

export interface ClientPage {
  readonly total: number;
  readonly clients: readonly OnlineClient[];
}

export interface Receipt {
  readonly targeted: number;
  readonly delivered: number;
  readonly acked: number;
}

export interface Target {
  readonly all: boolean;
  readonly clientIds: readonly string[];
  readonly tags: readonly string[];
}

export interface Message {
  readonly id: number;
  readonly event: string;
  readonly data: unknown;
  readonly target: Target;
  readonly ttl: number;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly receipt: Receipt;
}

export interface HistoryPage {
  readonly messages: readonly Message[];
  readonly nextBefore: number | null;
}

export interface Recipient {
  readonly clientId: string;
  readonly state: string;
  readonly deliveredAt?: string;
  readonly ackedAt?: string;
  /** State `skipped`: when, and why the client's connection could not take it. */
  readonly skippedAt?: string;
  readonly reason?: string;
}

export interface MessageDetail extends Message {
  readonly recipients: readonly Recipient[];
}

export interface Stats {
  readonly online: number;
  readonly accepted: number;
  readonly delivered: number;
  readonly acked: number;
  /** Milliseconds since the epoch, on the server. */
  readonly at: number;
}

export interface PushRequest {
  readonly event?: string;
  readonly data: unknown;
  readonly to?: { readonly clientIds?: readonly string[]; readonly tags?: readonly string[] };
  readonly ttl?: number;
}

export interface PushResult {
  readonly id: number;
  readonly targeted: number;
}

// Small checkers: what the server sends is `unknown` until one of these says otherwise.

type Rec = Readonly<Record<string, unknown>>;

function bad(what: string): never {
  throw new ApiError(0, 'BAD_RESPONSE', `unexpected answer from the server (${what})`);
}
function rec(v: unknown, what: string): Rec {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(what);
  return v as Rec;
}
function str(r: Rec, key: string): string {
  const v = r[key];
  return typeof v === 'string' ? v : bad(key);
}
function num(r: Rec, key: string): number {
  const v = r[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : bad(key);
}
function bool(r: Rec, key: string): boolean {
  const v = r[key];
  return typeof v === 'boolean' ? v : bad(key);
}
function list<T>(v: unknown, what: string, each: (x: unknown) => T): T[] {
  return Array.isArray(v) ? v.map(each) : bad(what);
}
function strings(v: unknown, what: string): string[] {
  if (v === undefined) return [];
  return list(v, what, (x) => (typeof x === 'string' ? x : bad(what)));
}

function toSession(v: unknown): Session {
  const r = rec(v, 'session');
  return { username: str(r, 'username'), csrfToken: str(r, 'csrfToken') };
}
function toApp(v: unknown): AppInfo {
  const r = rec(v, 'app');
  return {
    apikey: str(r, 'apikey'),
    secret: str(r, 'secret'),
    name: str(r, 'name'),
    messageTtlSeconds: num(r, 'messageTtlSeconds'),
    requireClientToken: bool(r, 'requireClientToken'),
    ntfyAnonymousAccess: ntfyAccess(r),
    ntfyTokensCanPublish: bool(r, 'ntfyTokensCanPublish'),
    createdAt: str(r, 'createdAt'),
  };
}
function toClient(v: unknown): OnlineClient {
  const r = rec(v, 'client');
  return { clientId: str(r, 'clientId'), connector: str(r, 'connector'), connectedAt: str(r, 'connectedAt'), tags: strings(r['tags'], 'tags') };
}
function toReceipt(v: unknown): Receipt {
  const r = rec(v, 'receipt');
  return { targeted: num(r, 'targeted'), delivered: num(r, 'delivered'), acked: num(r, 'acked') };
}
function toTarget(v: unknown): Target {
  const r = rec(v, 'target');
  return { all: bool(r, 'all'), clientIds: strings(r['clientIds'], 'target.clientIds'), tags: strings(r['tags'], 'target.tags') };
}
function toMessage(v: unknown): Message {
  const r = rec(v, 'message');
  return {
    id: num(r, 'id'),
    event: str(r, 'event'),
    data: r['data'],
    target: toTarget(r['target']),
    ttl: num(r, 'ttl'),
    createdAt: str(r, 'createdAt'),
    expiresAt: str(r, 'expiresAt'),
    receipt: toReceipt(r['receipt']),
  };
}
function toRecipient(v: unknown): Recipient {
  const r = rec(v, 'recipient');
  const d = r['deliveredAt'];
  const a = r['ackedAt'];
  const k = r['skippedAt'];
  const why = r['reason'];
  return {
    clientId: str(r, 'clientId'),
    state: str(r, 'state'),
    ...(typeof d === 'string' ? { deliveredAt: d } : {}),
    ...(typeof a === 'string' ? { ackedAt: a } : {}),
    ...(typeof k === 'string' ? { skippedAt: k } : {}),
    ...(typeof why === 'string' ? { reason: why } : {}),
  };
}

// ------------------------------------------------------------------ transport

let csrfToken: string | undefined;
const unauthorizedListeners = new Set<() => void>();

/** Called when the server says the session is gone (expired, logged out elsewhere, restarted). */
export function onUnauthorized(fn: () => void): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

async function call(method: Method, path: string, body?: unknown, opts: { quiet401?: boolean } = {}): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken !== undefined) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch {
    throw new ApiError(0, 'NETWORK', 'the server cannot be reached');
  }
  if (res.status === 204) return undefined;
  let payload: unknown;
  try {
    payload = await res.json();
  } catch {
    payload = undefined;
  }
  if (res.ok) return payload;
  const r = typeof payload === 'object' && payload !== null ? (payload as Rec) : {};
  const code = typeof r['code'] === 'string' ? r['code'] : `HTTP_${res.status}`;
  const message = typeof r['message'] === 'string' ? r['message'] : `${res.status} ${res.statusText}`;
  if (res.status === 401 && opts.quiet401 !== true) {
    csrfToken = undefined;
    for (const fn of unauthorizedListeners) fn();
  }
  throw new ApiError(res.status, code, message);
}

const appPath = (apikey: string): string => `/api/v1/apps/${encodeURIComponent(apikey)}`;

export const api = {
  /** The current session, or undefined when not logged in. */
  async session(): Promise<Session | undefined> {
    try {
      const s = toSession(await call('GET', '/api/v1/session', undefined, { quiet401: true }));
      csrfToken = s.csrfToken;
      return s;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return undefined;
      throw err;
    }
  },
  async login(username: string, password: string): Promise<Session> {
    const s = toSession(await call('POST', '/api/v1/session', { username, password }, { quiet401: true }));
    csrfToken = s.csrfToken;
    return s;
  },
  async logout(): Promise<void> {
    try {
      await call('DELETE', '/api/v1/session', undefined, { quiet401: true });
    } finally {
      csrfToken = undefined;
    }
  },

  async apps(): Promise<AppInfo[]> {
    const r = rec(await call('GET', '/api/v1/apps'), 'apps');
    return list(r['apps'], 'apps', toApp);
  },
  async app(apikey: string): Promise<AppInfo> {
    return toApp(await call('GET', appPath(apikey)));
  },
  async createApp(name: string, messageTtlSeconds?: number): Promise<AppInfo> {
    return toApp(await call('POST', '/api/v1/apps', { name, ...(messageTtlSeconds !== undefined ? { messageTtlSeconds } : {}) }));
  },
  async updateApp(
    apikey: string,
    patch: { name?: string; messageTtlSeconds?: number; requireClientToken?: boolean; ntfyAnonymousAccess?: NtfyAnonymousAccess; ntfyTokensCanPublish?: boolean },
  ): Promise<AppInfo> {
    return toApp(await call('PATCH', appPath(apikey), patch));
  },
  async rotateSecret(apikey: string): Promise<AppInfo> {
    return toApp(await call('POST', `${appPath(apikey)}/rotate-secret`));
  },
  async deleteApp(apikey: string): Promise<void> {
    await call('DELETE', appPath(apikey));
  },

  async clients(apikey: string, q: { search: string; offset: number; limit: number }): Promise<ClientPage> {
    const qs = new URLSearchParams({ offset: String(q.offset), limit: String(q.limit) });
    if (q.search !== '') qs.set('search', q.search);
    const r = rec(await call('GET', `${appPath(apikey)}/clients?${qs.toString()}`), 'clients');
    return { total: num(r, 'total'), clients: list(r['clients'], 'clients', toClient) };
  },
  async stats(apikey: string): Promise<Stats> {
    const r = rec(await call('GET', `${appPath(apikey)}/stats`), 'stats');
    return { online: num(r, 'online'), accepted: num(r, 'accepted'), delivered: num(r, 'delivered'), acked: num(r, 'acked'), at: num(r, 'at') };
  },

  async push(apikey: string, req: PushRequest): Promise<PushResult> {
    const r = rec(await call('POST', `${appPath(apikey)}/messages`, req), 'push');
    return { id: num(r, 'id'), targeted: num(r, 'targeted') };
  },
  async history(apikey: string, q: { limit: number; before?: number }): Promise<HistoryPage> {
    const qs = new URLSearchParams({ limit: String(q.limit) });
    if (q.before !== undefined) qs.set('before', String(q.before));
    const r = rec(await call('GET', `${appPath(apikey)}/messages?${qs.toString()}`), 'history');
    const next = r['nextBefore'];
    return { messages: list(r['messages'], 'messages', toMessage), nextBefore: typeof next === 'number' ? next : null };
  },
  async message(apikey: string, id: number): Promise<MessageDetail> {
    const v = await call('GET', `${appPath(apikey)}/messages/${id}`);
    const r = rec(v, 'message');
    return { ...toMessage(v), recipients: list(r['recipients'] ?? [], 'recipients', toRecipient) };
  },
};

/** A user-facing sentence for any error. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
