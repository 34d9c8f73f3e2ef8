import type { IncomingMessage } from 'node:http';
import { HubError, type ClientEnter } from '../../hub/hub.js';

/** What an SSE request asks for, besides the apikey and clientId of its path. */
export type SseEnterParams = Pick<ClientEnter, 'resumeAfter' | 'tags' | 'token'>;

const DECIMAL_ID = /^\d{1,16}$/;

/**
 * Reads the resume position, token and tags of an SSE request. Throws HubError
 * BAD_REQUEST naming the header or parameter that is wrong.
 *
 * - `Last-Event-ID` (the header EventSource sends when it reconnects) wins over the
 *   `lastEventId` query parameter, which a page sets for its first connect: after a
 *   reconnect the URL still carries the first value, the header the newest one.
 * - Neither: `'stored'`, delivery starts after the client's last acked message.
 */
export function readSseParams(req: IncomingMessage): SseEnterParams {
  const query = new URL(req.url ?? '/', 'http://localhost').searchParams;
  const header = req.headers['last-event-id'];
  const fromHeader = Array.isArray(header) ? header[0] : header;
  let resumeAfter: number | 'stored' = 'stored';
  if (fromHeader !== undefined && fromHeader.trim() !== '') {
    resumeAfter = parseId(fromHeader.trim(), 'Last-Event-ID');
  } else {
    const fromQuery = query.get('lastEventId');
    if (fromQuery !== null && fromQuery !== '') resumeAfter = parseId(fromQuery, 'lastEventId');
  }
  const token = query.get('token');
  const tags = readTags(query.getAll('tags'));
  return {
    resumeAfter,
    ...(token !== null && token !== '' && { token }),
    ...(tags.length > 0 && { tags }),
  };
}

function parseId(s: string, field: string): number {
  const n = DECIMAL_ID.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n)) throw new HubError('BAD_REQUEST', `${field}: expected a message id (a non-negative integer)`);
  return n;
}

/**
 * `?tags=a,b` (and repeated `tags=` parameters), empty items ignored. The hub checks
 * their count and length; the URL's own size limit bounds the work here.
 */
function readTags(values: readonly string[]): string[] {
  const tags: string[] = [];
  for (const value of values) {
    for (const raw of value.split(',')) {
      const tag = raw.trim();
      if (tag !== '') tags.push(tag);
    }
  }
  return tags;
}
