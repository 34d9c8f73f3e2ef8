import type { IncomingMessage } from 'node:http';
import { NTFY_ANONYMOUS_ACCESS, type App, type NtfyAnonymousAccess } from '../../store/store.js';
import { safeEqual } from '../../safe-equal.js';
import { TokenError, verifyClientToken } from '../../hub/client-tokens.js';
import { NtfyError } from '../../protocol/ntfy/errors.js';

/** Who is asking (docs/ntfy.md, "Access"). */
export type NtfyAccess =
  | { readonly kind: 'secret' }
  | { readonly kind: 'token'; readonly clientId: string; readonly token: string }
  | { readonly kind: 'anonymous' };

/** The ntfy app's setting for requests without credentials (ntfy's auth-default-access). */
export const ANONYMOUS_ACCESS = NTFY_ANONYMOUS_ACCESS;
export type AnonymousAccess = NtfyAnonymousAccess;

/**
 * The Authorization value as ntfy reads it (server.go readAuthHeader): the header, or the
 * `auth`/`authorization` query parameter holding it base64-encoded (raw URL alphabet; the
 * way browsers' WebSocket, which cannot set headers, authenticates). Throws 401 when the
 * parameter is not base64.
 */
export function readAuthorization(req: IncomingMessage, query: URLSearchParams): string {
  let value = (req.headers.authorization ?? '').trim();
  const param = query.get('authorization') ?? query.get('auth');
  if (param !== null && param.trim() !== '') {
    const p = param.trim();
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(p)) throw new NtfyError('NTFY_UNAUTHORIZED');
    value = Buffer.from(p, 'base64url').toString('utf8').trim();
  }
  return value;
}

/**
 * The credential in an Authorization value: `Bearer <x>`, or `Basic` with `<x>` as the
 * password (ntfy: "Basic with an empty username treats the password as a token"; here
 * any username, since Shaddock has no ntfy users). Undefined when there is none: ntfy
 * treats other schemes as no credentials too (supportedAuthHeader).
 */
export function credentialOf(authorization: string): string | undefined {
  const lower = authorization.toLowerCase();
  if (lower.startsWith('bearer ')) return authorization.slice(7).trim();
  if (lower.startsWith('basic ')) {
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new NtfyError('NTFY_UNAUTHORIZED');
    return decoded.slice(colon + 1);
  }
  return undefined;
}

/** The clientId a client token names (compact `v1.<id>.…` or a JWT's `sub`), unverified. */
export function tokenClientId(token: string): string | undefined {
  if (token.length > 4096) return undefined;
  const parts = token.split('.');
  try {
    if (token.startsWith('v1.') && parts.length === 4) return Buffer.from(parts[1]!, 'base64url').toString('utf8');
    if (parts.length === 3) {
      const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { sub?: unknown };
      return typeof payload.sub === 'string' ? payload.sub : undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * Maps a credential onto Shaddock's: the app secret (everything), a client token of the
 * app (checked like at any enter), or a 401 — ntfy answers a wrong credential with
 * 40101 whatever anonymous users may do.
 */
export async function authenticate(app: App, credential: string | undefined, previousSecret: () => Promise<string | undefined>): Promise<NtfyAccess> {
  if (credential === undefined) return { kind: 'anonymous' };
  if (credential !== '' && safeEqual(credential, app.secret)) return { kind: 'secret' };
  const clientId = tokenClientId(credential);
  if (clientId === undefined || clientId === '') {
    const previous = credential === '' ? undefined : await previousSecret();
    if (previous !== undefined && safeEqual(credential, previous)) return { kind: 'secret' };
    throw new NtfyError('NTFY_UNAUTHORIZED');
  }
  try {
    await verifyClientToken({ token: credential, secret: app.secret, apikey: app.apikey, clientId, previousSecret });
  } catch (err) {
    if (err instanceof TokenError) throw new NtfyError('NTFY_UNAUTHORIZED', err.message);
    throw err;
  }
  return { kind: 'token', clientId, token: credential };
}

/**
 * Throws ntfy's 403 when `access` may not read (or write) the app's topics. The policy is
 * the app's own settings (`ntfyAnonymousAccess`, `ntfyTokensCanPublish`), read from the
 * app of this request, so that a PATCH of the app takes effect at the next request.
 */
export function authorize(access: NtfyAccess, op: 'read' | 'write', app: App): void {
  if (access.kind === 'secret') return;
  if (access.kind === 'token') {
    if (op === 'read' || app.ntfyTokensCanPublish) return;
    throw new NtfyError('NTFY_FORBIDDEN');
  }
  // An app that requires client tokens lets nobody read without one (docs/security.md).
  const a = app.ntfyAnonymousAccess;
  const ok = op === 'read' ? (a === 'read-write' || a === 'read-only') && !app.requireClientToken : a === 'read-write' || a === 'write-only';
  if (!ok) throw new NtfyError('NTFY_FORBIDDEN');
}
