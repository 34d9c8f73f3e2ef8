// ntfy's action buttons (docs: https://docs.ntfy.sh/publish/#action-buttons; server/actions.go
// of binwiederhier/ntfy): the short form `view, Open, https://…, clear=true; http, …` and
// the JSON array form. Pure. Errors are NTFY_ACTIONS_INVALID with ntfy's reason appended.
import { randomBytes } from 'node:crypto';
import { NtfyError } from './errors.js';
import type { NtfyAction } from './message.js';

const ACTIONS_MAX = 3;
const ACTION_ID_LENGTH = 10;
const ALL = ['view', 'broadcast', 'http'];
const WITH_URL = ['view', 'http'];
const KEY_RE = /^([-.\w]+)\s*=\s*/;
const B62 = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

interface Draft {
  action: string;
  label: string;
  clear: boolean;
  url?: string;
  method?: string;
  body?: string;
  intent?: string;
  headers: Record<string, string>;
  extras: Record<string, string>;
}

/** Parses X-Actions; throws NtfyError NTFY_ACTIONS_INVALID. */
export function parseActions(input: string): NtfyAction[] {
  const s = input.trim();
  const drafts = s.startsWith('[') ? fromJson(s) : new SimpleParser(s).parse();
  if (drafts.length > ACTIONS_MAX) fail(`only ${ACTIONS_MAX} actions allowed`);
  return drafts.map((d) => {
    const action = d.action.toLowerCase();
    const method = d.method?.toUpperCase();
    if (!ALL.includes(action)) fail(`parameter 'action' cannot be '${d.action}', valid values are 'view', 'broadcast' and 'http'`);
    if (d.label === '') fail(`parameter 'label' is required`);
    if (WITH_URL.includes(action) && (d.url === undefined || d.url === '')) fail(`parameter 'url' is required for action '${action}'`);
    if (action === 'http' && (method === 'GET' || method === 'HEAD') && d.body !== undefined && d.body !== '') {
      fail(`parameter 'body' cannot be set if method is ${method}`);
    }
    return {
      id: randomId(),
      action,
      label: d.label,
      clear: d.clear,
      ...(d.url !== undefined && d.url !== '' && { url: d.url }),
      ...(method !== undefined && method !== '' && { method }),
      ...(Object.keys(d.headers).length > 0 && { headers: d.headers }),
      ...(d.body !== undefined && d.body !== '' && { body: d.body }),
      ...(d.intent !== undefined && d.intent !== '' && { intent: d.intent }),
      ...(Object.keys(d.extras).length > 0 && { extras: d.extras }),
    };
  });
}

function fail(reason: string): never {
  throw new NtfyError('NTFY_ACTIONS_INVALID', reason);
}

function randomId(): string {
  const bytes = randomBytes(ACTION_ID_LENGTH);
  let s = '';
  for (const b of bytes) s += B62[b % 62];
  return s;
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return out;
  for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
  return out;
}

function fromJson(s: string): Draft[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(s);
  } catch (err) {
    fail(`JSON error: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) fail('JSON error: expected an array');
  return parsed.map((a: unknown) => {
    if (typeof a !== 'object' || a === null || Array.isArray(a)) fail('JSON error: expected an array of objects');
    const r = a as Record<string, unknown>;
    const str = (k: string): string | undefined => (typeof r[k] === 'string' ? r[k] : undefined);
    const draft: Draft = { action: str('action') ?? '', label: str('label') ?? '', clear: r['clear'] === true, headers: stringMap(r['headers']), extras: stringMap(r['extras']) };
    for (const k of ['url', 'method', 'body', 'intent'] as const) {
      const v = str(k);
      if (v !== undefined) draft[k] = v;
    }
    return draft;
  });
}

/** The short form, as ntfy's actionParser reads it: `;` ends an action, `,` a section, quotes allowed. */
class SimpleParser {
  #pos = 0;
  constructor(private readonly input: string) {}

  parse(): Draft[] {
    const out: Draft[] = [];
    while (!this.#eof()) out.push(this.#action());
    return out;
  }

  #action(): Draft {
    const d: Draft = { action: '', label: '', clear: false, headers: {}, extras: {} };
    for (let section = 0; ; section++) {
      const { key, value, last } = this.#section();
      populate(d, section, key, value);
      this.#spaces();
      if (last) return d;
    }
  }

  #section(): { key: string; value: string; last: boolean } {
    this.#spaces();
    const m = KEY_RE.exec(this.input.slice(this.#pos));
    let key = '';
    if (m) {
      key = m[1]!;
      this.#pos += m[0].length;
    }
    const c = this.#peek();
    if (isEnd(c)) {
      this.#pos += c === '' ? 0 : 1;
      return { key, value: '', last: c === '' || c === ';' };
    }
    if (c === '"' || c === "'") return { key, ...this.#quoted(c) };
    const start = this.#pos;
    for (;;) {
      const r = this.#peek();
      if (isEnd(r)) {
        const value = this.input.slice(start, this.#pos).trim();
        this.#pos += r === '' ? 0 : 1;
        return { key, value, last: r === '' || r === ';' };
      }
      this.#pos++;
    }
  }

  #quoted(quote: string): { value: string; last: boolean } {
    this.#pos++;
    const start = this.#pos;
    let prev = '';
    for (;;) {
      const r = this.#peek();
      if (r === '') fail(`unexpected end of input, quote started at position ${start}`);
      if (r === quote && prev !== '\\') {
        const value = this.input.slice(start, this.#pos).replaceAll(`\\${quote}`, quote);
        this.#pos++;
        this.#spaces();
        const next = this.#peek();
        if (!isEnd(next)) fail(`unexpected character '${next}' at position ${this.#pos}`);
        this.#pos += next === '' ? 0 : 1;
        return { value, last: next === '' || next === ';' };
      }
      prev = r;
      this.#pos++;
    }
  }

  #spaces(): void {
    while (/[ \t\r\n]/.test(this.#peek()) && this.#peek() !== '') this.#pos++;
  }

  #peek(): string {
    return this.#pos < this.input.length ? this.input[this.#pos]! : '';
  }

  #eof(): boolean {
    return this.#pos >= this.input.length;
  }
}

function isEnd(c: string): boolean {
  return c === '' || c === ';' || c === ',';
}

function populate(d: Draft, section: number, rawKey: string, value: string): void {
  let key = rawKey;
  if (key === '' && section === 0) key = 'action';
  else if (key === '' && section === 1) key = 'label';
  else if (key === '' && section === 2 && WITH_URL.includes(d.action.toLowerCase())) key = 'url';
  if (key === '') fail(`term '${value}' unknown`);
  if (key.startsWith('headers.')) {
    d.headers[key.slice('headers.'.length)] = value;
    return;
  }
  if (key.startsWith('extras.')) {
    d.extras[key.slice('extras.'.length)] = value;
    return;
  }
  switch (key.toLowerCase()) {
    case 'action':
      d.action = value;
      return;
    case 'label':
      d.label = value;
      return;
    case 'clear': {
      const v = value.toLowerCase();
      if (!['true', 'yes', '1', 'false', 'no', '0'].includes(v)) {
        fail(`parameter 'clear' cannot be '${value}', only boolean values are allowed (true/yes/1/false/no/0)`);
      }
      d.clear = v === 'true' || v === 'yes' || v === '1';
      return;
    }
    case 'url':
      d.url = value;
      return;
    case 'method':
      d.method = value;
      return;
    case 'body':
      d.body = value;
      return;
    case 'intent':
      d.intent = value;
      return;
    default:
      fail(`key '${key}' unknown`);
  }
}
