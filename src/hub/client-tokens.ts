import { createHmac } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { safeEqual } from '../safe-equal.js';

/**
 * Client tokens: an app's back end signs, with the app secret, that a clientId may
 * enter that app until a time. Two forms, checked the same way (docs/security.md):
 *
 * - compact, for small devices: `v1.<clientId, base64url>.<expiry, unix seconds>.<signature>`,
 *   signature = base64url(HMAC-SHA256(secret, "v1.<apikey>.<clientId>.<expiry>"));
 * - a JWT (HS256) with `aud` = apikey, `sub` = clientId and `exp`.
 *
 * Rotating the app secret invalidates every token signed with the old one, at once or,
 * when the rotation gave a grace period, once that period ends (`previousSecret`).
 */
export type TokenFormat = 'compact' | 'jwt';

export const TOKEN_REFUSALS = {
  missing: 'this app requires a client token',
  malformed: 'the client token is malformed',
  signature: 'the client token signature is wrong (another app, or a rotated secret)',
  expired: 'the client token has expired',
  client: 'the client token was issued for another clientId',
} as const;
export type TokenRefusal = keyof typeof TOKEN_REFUSALS;

export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(readonly refusal: TokenRefusal) {
    super(TOKEN_REFUSALS[refusal]);
  }
}

function compactSignature(secret: string, apikey: string, clientId: string, exp: number): string {
  return createHmac('sha256', secret).update(`v1.${apikey}.${clientId}.${exp}`).digest('base64url');
}

/** Signs a token for `clientId` of the app, valid `ttlSeconds` from `now` (ms). */
export async function signClientToken(opts: {
  readonly secret: string;
  readonly apikey: string;
  readonly clientId: string;
  readonly ttlSeconds: number;
  readonly format?: TokenFormat;
  readonly now?: number;
}): Promise<{ token: string; expiresAt: number }> {
  const exp = Math.floor((opts.now ?? Date.now()) / 1000) + opts.ttlSeconds;
  if (opts.format === 'jwt') {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setAudience(opts.apikey)
      .setSubject(opts.clientId)
      .setIssuedAt(Math.floor((opts.now ?? Date.now()) / 1000))
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(opts.secret));
    return { token, expiresAt: exp * 1000 };
  }
  const id = Buffer.from(opts.clientId).toString('base64url');
  return { token: `v1.${id}.${exp}.${compactSignature(opts.secret, opts.apikey, opts.clientId, exp)}`, expiresAt: exp * 1000 };
}

/**
 * Checks a token for this app and clientId; throws TokenError with the reason. A
 * signature that fails with the app's secret is tried once more with the secret the
 * last rotation replaced, while its grace period lasts (`previousSecret` is asked only
 * then, so the common case costs no extra lookup).
 */
export async function verifyClientToken(opts: {
  readonly token: string | undefined;
  readonly secret: string;
  readonly apikey: string;
  readonly clientId: string;
  readonly now?: number;
  /** The replaced secret while it is still valid, else undefined. */
  readonly previousSecret?: () => Promise<string | undefined>;
}): Promise<void> {
  try {
    await verifyWith(opts, opts.secret);
  } catch (err) {
    if (!(err instanceof TokenError && err.refusal === 'signature') || opts.previousSecret === undefined) throw err;
    const previous = await opts.previousSecret();
    if (previous === undefined) throw err;
    await verifyWith(opts, previous);
  }
}

async function verifyWith(
  opts: { readonly token: string | undefined; readonly apikey: string; readonly clientId: string; readonly now?: number },
  secret: string,
): Promise<void> {
  const { token } = opts;
  if (token === undefined || token === '') throw new TokenError('missing');
  if (token.length > 4096) throw new TokenError('malformed');
  const nowSeconds = Math.floor((opts.now ?? Date.now()) / 1000);
  if (token.startsWith('v1.')) {
    const parts = token.split('.');
    if (parts.length !== 4) throw new TokenError('malformed');
    const [, id, expText, signature] = parts as [string, string, string, string];
    const clientId = Buffer.from(id, 'base64url').toString('utf8');
    const exp = Number(expText);
    if (!/^\d{1,12}$/.test(expText) || !Number.isSafeInteger(exp)) throw new TokenError('malformed');
    if (!safeEqual(signature, compactSignature(secret, opts.apikey, clientId, exp))) throw new TokenError('signature');
    if (exp <= nowSeconds) throw new TokenError('expired');
    if (clientId !== opts.clientId) throw new TokenError('client');
    return;
  }
  let payload: { sub?: unknown };
  try {
    ({ payload } = await jwtVerify(token, new TextEncoder().encode(secret), {
      algorithms: ['HS256'],
      audience: opts.apikey,
      currentDate: new Date(nowSeconds * 1000),
      requiredClaims: ['exp', 'sub'],
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw new TokenError('expired');
    if (err instanceof joseErrors.JWSSignatureVerificationFailed || err instanceof joseErrors.JWTClaimValidationFailed) {
      throw new TokenError('signature');
    }
    throw new TokenError('malformed');
  }
  if (payload.sub !== opts.clientId) throw new TokenError('client');
}
