import { asClientId } from '../../ids.js';
import { MAX_CLIENT_ID_LENGTH } from '../../hub/hub.js';
import type { Target } from '../../store/store.js';
import { MAX_PUSH_CLIENT_IDS, MAX_PUSH_TAGS } from '../../hub/push-rules.js';

/** A manager's push, as published on `apps/{apikey}/push`. */
export interface PushRequest {
  readonly event: string;
  readonly data: unknown;
  readonly target: Target;
  readonly ttlSeconds?: number;
}

export type PushParse = { readonly ok: true; readonly value: PushRequest } | { readonly ok: false; readonly why: string };

// The shape of the payload; what its fields may hold is the hub's rule for every way in
// (src/hub/push-rules.ts), checked by Hub.publish.
const MAX_CLIENT_IDS = MAX_PUSH_CLIENT_IDS;
const MAX_TAGS = MAX_PUSH_TAGS;

/**
 * Reads `{"event"?: string, "data": any, "to"?: {"clientIds"?: [..], "tags"?: [..]}, "ttl"?: seconds}`.
 * No `to` (or an empty one) is a broadcast. Tag names are checked by the hub.
 */
export function parsePushRequest(payload: Buffer): PushParse {
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch {
    return fail('the payload is not JSON');
  }
  if (!isObject(body)) return fail('the payload must be a JSON object');
  if (!('data' in body) || body['data'] === undefined) return fail('"data" is required');
  const event = body['event'] ?? 'onMsg';
  if (typeof event !== 'string') return fail('"event" must be a string');
  const to = body['to'] ?? {};
  if (!isObject(to)) return fail('"to" must be an object');
  const clientIds = stringList(to['clientIds'], MAX_CLIENT_IDS, MAX_CLIENT_ID_LENGTH);
  if (clientIds === undefined) return fail(`"to.clientIds" must be at most ${MAX_CLIENT_IDS} client ids of 1 to ${MAX_CLIENT_ID_LENGTH} characters`);
  const tags = stringList(to['tags'], MAX_TAGS, Number.MAX_SAFE_INTEGER);
  if (tags === undefined) return fail(`"to.tags" must be at most ${MAX_TAGS} non-empty strings`);
  const ttl = body['ttl'];
  if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 1)) {
    return fail('"ttl" must be whole seconds ≥ 1');
  }
  return {
    ok: true,
    value: {
      event,
      data: body['data'],
      target: { all: clientIds.length === 0 && tags.length === 0, clientIds: clientIds.map(asClientId), tags },
      ...(typeof ttl === 'number' ? { ttlSeconds: ttl } : {}),
    },
  };
}

function fail(why: string): PushParse {
  return { ok: false, why };
}

function isObject(v: unknown): v is Readonly<Record<string, unknown>> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, maxItems: number, maxLength: number): string[] | undefined {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > maxItems) return undefined;
  const out: string[] = [];
  for (const x of v as unknown[]) {
    if (typeof x !== 'string' || x.length === 0 || x.length > maxLength) return undefined;
    out.push(x);
  }
  return out;
}
