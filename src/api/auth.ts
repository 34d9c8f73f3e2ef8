import { safeEqual } from '../safe-equal.js';
import type { FastifyRequest } from 'fastify';
import type { App, Storage } from '../store/store.js';
import { ApiError } from './errors.js';
import { CSRF_HEADER, SESSION_COOKIE, readCookie, type SessionStore } from './sessions.js';

export type Principal = { readonly kind: 'admin'; readonly username: string } | { readonly kind: 'app'; readonly app: App };

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * An admin: by the console's session cookie (state-changing requests must also carry
 * the session's CSRF token in a header, which a cross-site page cannot read), or by
 * `Authorization: Basic` with an admin's username and password.
 */
export async function adminFromRequest(req: FastifyRequest, storage: Storage, sessions?: SessionStore): Promise<Principal | undefined> {
  const header = req.headers.authorization;
  if (header === undefined && sessions) {
    const session = sessions.get(readCookie(req.headers.cookie, SESSION_COOKIE));
    if (!session) return undefined;
    if (!SAFE_METHODS.has(req.method)) {
      const sent = req.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !safeEqual(sent, session.csrfToken)) {
        throw new ApiError('FORBIDDEN', `missing or wrong ${CSRF_HEADER} header`);
      }
    }
    return { kind: 'admin', username: session.username };
  }
  if (header === undefined || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new ApiError('UNAUTHORIZED', 'malformed Basic credentials');
  const username = decoded.slice(0, colon);
  if (!(await storage.admins.verifyAdmin(username, decoded.slice(colon + 1)))) {
    throw new ApiError('UNAUTHORIZED', 'wrong admin username or password');
  }
  return { kind: 'admin', username };
}

export async function requireAdmin(req: FastifyRequest, storage: Storage, sessions?: SessionStore): Promise<Principal> {
  const admin = await adminFromRequest(req, storage, sessions);
  if (!admin) throw new ApiError('UNAUTHORIZED', 'admin credentials required (log in, or Authorization: Basic)');
  return admin;
}

/**
 * The app's back end (`Authorization: Bearer <app secret>`) or an admin may act on
 * an app. Unknown apps are 404 only after the caller proved to be someone.
 */
export async function requireAppAccess(
  req: FastifyRequest,
  storage: Storage,
  apikey: string,
  sessions?: SessionStore,
): Promise<{ app: App; principal: Principal }> {
  const header = req.headers.authorization;
  const app = await storage.apps.getApp(apikey as App['apikey']);
  if (header !== undefined && /^bearer /i.test(header)) {
    const secret = header.slice(7).trim();
    if (!app) throw new ApiError('NOT_FOUND', `no app with apikey "${apikey.slice(0, 64)}"`);
    if (!safeEqual(secret, app.secret)) {
      // During a rotation's grace period the back end may still use the previous secret
      // (app management routes need an admin, never an app secret).
      const previous = await storage.apps.previousSecret(app.apikey, Date.now());
      if (previous === undefined || !safeEqual(secret, previous)) throw new ApiError('UNAUTHORIZED', 'wrong app secret');
    }
    return { app, principal: { kind: 'app', app } };
  }
  const admin = await adminFromRequest(req, storage, sessions);
  if (!admin) throw new ApiError('UNAUTHORIZED', 'send Authorization: Bearer <app secret>');
  if (!app) throw new ApiError('NOT_FOUND', `no app with apikey "${apikey.slice(0, 64)}"`);
  return { app, principal: admin };
}
