// What an ntfy publish asks for (docs: https://docs.ntfy.sh/publish/; server.go
// parsePublishParams, handlePublishBody, transformBodyJSON of binwiederhier/ntfy). Pure:
// the request's parameters and body in, a draft push or an NtfyError out.
import { parseActions } from './actions.js';
import { NtfyError } from './errors.js';
import { EMPTY_MESSAGE_BODY, TOPIC_RE, parseFutureTime, parsePriority, toBool, type NtfyAttachment, type NtfyContent } from './message.js';

/**
 * ntfy's readParam: the first non-empty header among `names`, else the first non-empty
 * query parameter among them (lowercased), trimmed.
 */
export type ParamReader = (...names: string[]) => string;

export interface PublishLimits {
  /** Largest message body, bytes (ntfy's message-size-limit, 4096 by default). */
  readonly maxMessageBytes: number;
  /** Scheduled delivery bounds, ms (ntfy: message-delay-limit min 10 s, max 3 days). */
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
}

/** A publish, read: the push's ntfy content and how to deliver it. */
export interface PublishDraft extends NtfyContent {
  /** False for `X-Cache: no`: delivered live only, never replayed. */
  readonly cache: boolean;
  /** Scheduled delivery time, epoch ms (X-Delay / X-At / X-In). */
  readonly at?: number;
  readonly unifiedpush: boolean;
}

const URL_RE = /^https?:\/\//;
/** RFC 9218's `Priority` header (Cloudflare adds it) is not ntfy's priority: util.go maybeIgnoreSpecialHeader. */
const RFC9218_PRIORITY = /^u=\d,\s*(i|\d)$|^u=\d$/;

/** Reads a PUT/POST/GET publish; throws NtfyError. */
export function readPublish(read: ParamReader, body: Buffer, limits: PublishLimits, now: number): PublishDraft {
  const cache = readBool(read, true, 'x-cache', 'cache');
  const title = read('x-title', 'title', 't');
  const click = read('x-click', 'click');
  const icon = read('x-icon', 'icon');
  const filename = read('x-filename', 'filename', 'file', 'f');
  const attach = read('x-attach', 'attach', 'a');
  let attachment: NtfyAttachment | undefined;
  if (attach !== '') {
    if (!URL_RE.test(attach)) throw new NtfyError('NTFY_ATTACHMENT_URL_INVALID');
    let name = filename;
    if (name === '') {
      try {
        const base = new URL(attach).pathname.split('/').pop() ?? '';
        name = base === '.' || base === '/' ? '' : decodeURIComponent(base);
      } catch {
        name = '';
      }
    }
    attachment = { name: name === '' ? 'attachment' : name, url: attach };
  } else if (filename !== '') {
    // An upload (`curl -T file -H "Filename: …"`): this server stores no files (docs/ntfy.md).
    throw new NtfyError('NTFY_ATTACHMENTS_DISALLOWED');
  }
  if (icon !== '' && !URL_RE.test(icon)) throw new NtfyError('NTFY_ICON_URL_INVALID');
  // No e-mail or phone calls here: ntfy's answers when they are not configured.
  if (read('x-email', 'x-e-mail', 'email', 'e-mail', 'mail', 'e') !== '') throw new NtfyError('NTFY_EMAIL_DISABLED');
  if (read('x-call', 'call') !== '') throw new NtfyError('NTFY_CALLS_DISABLED');
  let message = read('x-message', 'message', 'm').replaceAll('\\n', '\n');
  const priorityText = read('x-priority', 'priority', 'prio', 'p');
  const priority = parsePriority(priorityText);
  const tags = read('x-tags', 'tags', 'tag', 'ta')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const delay = read('x-delay', 'delay', 'x-at', 'at', 'x-in', 'in');
  let at: number | undefined;
  if (delay !== '') {
    if (!cache) throw new NtfyError('NTFY_DELAY_NO_CACHE');
    at = parseFutureTime(delay, now);
    if (at === undefined) throw new NtfyError('NTFY_DELAY_CANNOT_PARSE');
    if (Math.floor(at / 1000) < Math.floor((now + limits.delayMinMs) / 1000)) throw new NtfyError('NTFY_DELAY_TOO_SMALL');
    if (Math.floor(at / 1000) > Math.floor((now + limits.delayMaxMs) / 1000)) throw new NtfyError('NTFY_DELAY_TOO_LARGE');
  }
  const actionsText = read('x-actions', 'actions', 'action');
  const actions = actionsText !== '' ? parseActions(actionsText) : undefined;
  const markdown = readBool(read, false, 'x-markdown', 'markdown', 'md') || read('content-type', 'content_type').toLowerCase() === 'text/markdown';
  const unifiedpush = readBool(read, false, 'x-unifiedpush', 'unifiedpush', 'up') || read('content-encoding') === 'aes128gcm';
  // ntfy's message templates (X-Template) are not implemented: said, rather than the
  // template sent as the message.
  const template = read('x-template', 'template', 'tpl');
  if (template !== '' && template.toLowerCase() !== 'no' && template !== '0' && template.toLowerCase() !== 'false') {
    throw new NtfyError('NTFY_BAD_REQUEST', 'message templates (X-Template) are not supported by this server');
  }

  // The body (handlePublishBody): UnifiedPush bodies as they are (base64 when not UTF-8);
  // otherwise a text message, trimmed, or — past the size limit or not UTF-8 — what ntfy
  // would store as an attachment, which this server does not.
  let encoding: string | undefined;
  if (body.length > limits.maxMessageBytes) {
    throw new NtfyError('NTFY_ATTACHMENT_TOO_LARGE', `the message is larger than ${limits.maxMessageBytes} bytes; this server stores no attachments`);
  }
  const utf8 = isUtf8(body);
  if (unifiedpush) {
    if (utf8) message = body.toString('utf8');
    else {
      message = body.toString('base64');
      encoding = 'base64';
    }
  } else if (!utf8) {
    throw attachment ? new NtfyError('NTFY_MESSAGE_NOT_UTF8') : new NtfyError('NTFY_ATTACHMENTS_DISALLOWED', 'the body is not UTF-8 text');
  } else if (body.length > 0) {
    // An empty body does not override `message=` (publish via GET).
    message = body.toString('utf8').trim();
  }
  if (message === '') message = EMPTY_MESSAGE_BODY;
  return {
    message,
    ...(title !== '' && { title }),
    ...(priority !== undefined && { priority }),
    ...(tags.length > 0 && { tags }),
    ...(click !== '' && { click }),
    ...(icon !== '' && { icon }),
    ...(actions !== undefined && actions.length > 0 && { actions }),
    ...(attachment !== undefined && { attachment }),
    ...(markdown && { content_type: 'text/markdown' }),
    ...(encoding !== undefined && { encoding }),
    cache,
    ...(at !== undefined && { at }),
    unifiedpush,
  };
}

function readBool(read: ParamReader, dflt: boolean, ...names: string[]): boolean {
  const v = read(...names);
  return v === '' ? dflt : toBool(v);
}

function isUtf8(b: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

/**
 * A reader over headers and the query string, as ntfy's readParam: headers first
 * (RFC 2047 encoded-words decoded, RFC 9218 `Priority` ignored), then query parameters.
 */
export function paramReader(headers: Readonly<Record<string, string | string[] | undefined>>, query: URLSearchParams): ParamReader {
  return (...names) => {
    for (const name of names) {
      const raw = headers[name.toLowerCase()];
      const value = (Array.isArray(raw) ? raw[0] : raw)?.trim();
      if (value === undefined || value === '') continue;
      const decoded = decodeEncodedWords(value).trim();
      if (name.toLowerCase() === 'priority' && RFC9218_PRIORITY.test(decoded)) continue;
      if (decoded !== '') return decoded;
    }
    for (const name of names) {
      const value = query.get(name.toLowerCase());
      if (value !== null && value.trim() !== '') return value.trim();
    }
    return '';
  };
}

/** RFC 2047 encoded-words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`), as Go's mime.WordDecoder reads headers. */
export function decodeEncodedWords(s: string): string {
  if (!s.includes('=?')) return s;
  return s.replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=(\s+(?==\?))?/g, (whole, charset: string, enc: string, text: string) => {
    const cs = charset.toLowerCase();
    if (cs !== 'utf-8' && cs !== 'us-ascii' && cs !== 'iso-8859-1') return whole;
    const bytes = enc.toLowerCase() === 'b' ? Buffer.from(text, 'base64') : qDecode(text);
    return cs === 'iso-8859-1' ? bytes.toString('latin1') : bytes.toString('utf8');
  });
}

function qDecode(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '_') out.push(0x20);
    else if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(c.charCodeAt(0) & 0xff);
  }
  return Buffer.from(out);
}

/**
 * A JSON publish to `/` (docs: "Publish as JSON"; transformBodyJSON): the body's fields
 * become the parameters of a publish to its `topic`. Throws NtfyError.
 */
export function readJsonPublish(body: Buffer, maxMessageBytes: number): { readonly topic: string; readonly read: ParamReader; readonly body: Buffer } {
  // "2x to account for JSON format overhead" (transformBodyJSON).
  if (body.length > maxMessageBytes * 2) throw new NtfyError('NTFY_JSON_TOO_LARGE');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new NtfyError('NTFY_JSON_INVALID');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new NtfyError('NTFY_JSON_INVALID');
  const m = parsed as Record<string, unknown>;
  const str = (k: string): string => {
    const v = m[k];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new NtfyError('NTFY_JSON_INVALID');
    return v;
  };
  const topic = str('topic');
  if (!TOPIC_RE.test(topic)) throw new NtfyError('NTFY_TOPIC_INVALID');
  const params = new Map<string, string>();
  const set = (k: string, v: string): void => {
    if (v !== '') params.set(k, v);
  };
  set('x-title', str('title'));
  const priority = m['priority'];
  if (priority !== undefined && priority !== null && priority !== 0) {
    if (typeof priority !== 'number' || !Number.isInteger(priority)) throw new NtfyError('NTFY_JSON_INVALID');
    set('x-priority', String(priority));
  }
  const tags = m['tags'];
  if (tags !== undefined && tags !== null) {
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new NtfyError('NTFY_JSON_INVALID');
    set('x-tags', tags.join(','));
  }
  set('x-attach', str('attach'));
  set('x-filename', str('filename'));
  set('x-click', str('click'));
  set('x-icon', str('icon'));
  // Go's json.Unmarshal into ntfy's publishMessage refuses a field of the wrong type: 40024.
  const markdown = m['markdown'];
  if (markdown !== undefined && markdown !== null && typeof markdown !== 'boolean') throw new NtfyError('NTFY_JSON_INVALID');
  if (markdown === true) set('x-markdown', 'yes');
  const actions = m['actions'];
  if (actions !== undefined && actions !== null && !Array.isArray(actions)) throw new NtfyError('NTFY_JSON_INVALID');
  if (Array.isArray(actions) && actions.length > 0) set('x-actions', JSON.stringify(actions));
  set('x-email', str('email'));
  set('x-delay', str('delay'));
  set('x-call', str('call'));
  set('x-cache', str('cache'));
  const message = str('message');
  const read: ParamReader = (...names) => {
    for (const n of names) {
      const v = params.get(n.toLowerCase());
      if (v !== undefined) return v;
    }
    return '';
  };
  return { topic, read, body: Buffer.from(message === '' ? EMPTY_MESSAGE_BODY : message, 'utf8') };
}
