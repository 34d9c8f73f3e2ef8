// What every storage implementation refuses, and how: one set of rules, so that the
// SQLite and Redis stores answer the same input with the same StoreError.

export const StoreErrorCode = {
  /** The database failed or returned something it should not have; details in `cause`. */
  STORE_FAILED: 'STORE_FAILED',
  /** A message was appended (or a client stored) for an app that does not exist (or was deleted). */
  STORE_UNKNOWN_APP: 'STORE_UNKNOWN_APP',
  /** The store cannot be reached now (a networked store that is down); retry later. */
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
  /** The caller passed a value the store refuses: a bad TTL, count, id or tag, data that is not JSON. */
  STORE_INVALID: 'STORE_INVALID',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** A tag is 1 to 128 characters (UTF-16 code units, as `String.length` counts). */
export const MAX_TAG_LENGTH = 128;
/** Tags one client may have. */
export const MAX_CLIENT_TAGS = 256;

export function invalid(message: string): StoreError {
  return new StoreError('STORE_INVALID', message);
}

/** A whole number >= 0 (an id, a counter, a TTL). */
export function requireCount(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalid(`${what} must be a whole number >= 0, got ${String(v)}`);
  }
  return v;
}

/** A time in milliseconds since the epoch. */
export function requireTime(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(`${what} must be a whole number of ms, got ${String(v)}`);
  return v;
}

/** Checks each tag and appends the new ones to `into`, keeping the order of first appearance. */
export function addTagsTo(into: string[], tags: readonly unknown[], what: string): string[] {
  if (!Array.isArray(tags)) throw invalid(`${what}: tags must be an array`);
  const seen = new Set(into);
  for (const tag of tags) {
    if (typeof tag !== 'string' || tag.length < 1 || tag.length > MAX_TAG_LENGTH) {
      throw invalid(`${what}: a tag must be a string of 1 to ${MAX_TAG_LENGTH} characters, got ${JSON.stringify(tag)}`);
    }
    if (seen.has(tag)) continue;
    seen.add(tag);
    into.push(tag);
  }
  if (into.length > MAX_CLIENT_TAGS) throw invalid(`${what}: a client has at most ${MAX_CLIENT_TAGS} tags, got ${into.length}`);
  return into;
}
