// Server-Sent Events framing (HTML Living Standard §9.2 "Server-sent events",
// "Parsing an event stream"). Pure: values in, bytes out.
import type { WireMessage } from './frames.js';

/** A comment line: keeps proxies and the browser from timing the stream out. */
export const SSE_KEEPALIVE: Buffer = Buffer.from(':\n\n');

/** `retry: <ms>`: how long the browser's EventSource waits before reconnecting. */
export function encodeSseRetry(ms: number): Buffer {
  return Buffer.from(`retry: ${Math.max(0, Math.floor(ms))}\n\n`);
}

/**
 * One pushed message: `id: <id>\nevent: <event>\ndata: <JSON of data>\n\n`, encoded
 * once per message and shared by every SSE client.
 *
 * A `data:` line ends at the first CR or LF, so multi-line data would need one
 * `data:` line per line. JSON.stringify never emits a raw CR or LF (inside strings
 * they are escaped as \r and \n, and it adds no whitespace), so one line always
 * suffices. U+2028/U+2029 do pass through raw, but SSE does not split on them.
 */
export function encodeSseMessage(msg: WireMessage): Buffer {
  return Buffer.from(`id: ${msg.id}\nevent: ${eventField(msg.event)}\ndata: ${JSON.stringify(msg.data ?? null)}\n\n`);
}

/** An event without an id (the browser's lastEventId stays as it was). */
export function encodeSseEvent(event: string, data: unknown): Buffer {
  return Buffer.from(`event: ${eventField(event)}\ndata: ${JSON.stringify(data ?? null)}\n\n`);
}

// An event name with a line break would end the field and let the rest be read as
// fields of its own (an injected `id:` or `data:`); the JSON codec refuses such names,
// but messages also come from the HTTP API, so the framing defends itself.
function eventField(event: string): string {
  return /[\r\n]/.test(event) ? event.replace(/[\r\n]+/g, ' ') : event;
}
