// Credentials: app keys, app secrets and admin password hashes.
// Shared by every store implementation and by the CLI, so that an app created by
// one store (or by hand) looks the same as one created by another.
import { randomBytes, randomUUID, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { asApiKey, type ApiKey } from '../ids.js';
import type { RotateOptions } from './store.js';
import { invalid, requireTime } from './validate.js';

/** A public app key: a random v4 UUID (122 random bits; public, so only uniqueness matters). */
export function generateApiKey(): ApiKey {
  return asApiKey(randomUUID());
}

/** A private app secret: 32 random bytes (256 bits) as base64url, 43 characters. */
export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The longest a rotated secret may keep working, seconds (30 days). */
export const MAX_SECRET_GRACE_SECONDS = 30 * 86400;

/**
 * Until when (ms since the epoch) a secret replaced now stays valid. With no grace it
 * is `now`, already over: the old secret stops working at once.
 */
export function graceUntil(opts: RotateOptions): number {
  const now = requireTime('rotate secret: now', opts.now ?? Date.now());
  const grace = opts.graceSeconds ?? 0;
  if (!Number.isSafeInteger(grace) || grace < 0 || grace > MAX_SECRET_GRACE_SECONDS) {
    throw invalid(`rotate secret: graceSeconds must be a whole number from 0 to ${MAX_SECRET_GRACE_SECONDS}, got ${String(grace)}`);
  }
  return now + grace * 1000;
}

// scrypt with N=2^14, r=8, p=1 (Node's defaults, and the interactive-login setting
// suggested by scrypt's author): 16 MiB and tens of milliseconds per check. Changing
// these, the key length or the normalization below makes every stored hash
// unverifiable, so such a change needs a migration that stores them next to each hash.
const SCRYPT: ScryptOptions = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_BYTES = 64;
const SALT_BYTES = 16;

/** A salted scrypt hash of a password; both fields are base64url. */
export interface PasswordHash {
  readonly salt: string;
  readonly hash: string;
}

function derive(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // NIST SP 800-63B §5.1.1.2: normalize (NFKC) so that the same password typed on
    // different platforms hashes the same.
    scrypt(password.normalize('NFKC'), salt, KEY_BYTES, SCRYPT, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

/** Hashes a password with a fresh 16-byte random salt. */
export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt);
  return { salt: salt.toString('base64url'), hash: key.toString('base64url') };
}

/**
 * True when `password` hashes to `hash` under `salt`. Always spends one full scrypt,
 * also for a malformed stored hash, and compares in constant time.
 */
export async function verifyPassword(password: string, salt: string, hash: string): Promise<boolean> {
  const expected = Buffer.from(hash, 'base64url');
  const actual = await derive(password, Buffer.from(salt, 'base64url'));
  // timingSafeEqual throws on a length mismatch; a stored hash of the wrong length
  // cannot match, and its length is not a secret.
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

// Verified against when the username does not exist, so that an unknown user costs the
// same scrypt as a known one and the response time does not reveal which names exist.
const DUMMY: PasswordHash = {
  salt: randomBytes(SALT_BYTES).toString('base64url'),
  hash: randomBytes(KEY_BYTES).toString('base64url'),
};

/** Spends the same work as `verifyPassword` and returns false. */
export async function verifyNoPassword(password: string): Promise<false> {
  await verifyPassword(password, DUMMY.salt, DUMMY.hash);
  return false;
}
