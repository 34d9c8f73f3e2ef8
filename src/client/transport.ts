/**
 * How the SDK moves bytes. The client speaks Pomelo packages over any transport that
 * carries bytes in order: WebSocket in browsers (here), raw TCP and the `ws` package
 * in Node (node.ts), or your own (a test double, a proxy).
 */
import { ShaddockClientError } from './errors.js';

/** What a transport tells the client. The transport calls `close` exactly once. */
export interface TransportEvents {
  /** The connection is open: bytes can be sent. */
  open(): void;
  /** Bytes arrived: one or more whole packages, or any slice of the stream (TCP). */
  data(bytes: Uint8Array): void;
  /** The connection is gone (or never opened); `reason` is for humans. */
  close(reason: string): void;
}

/** One connection attempt. */
export interface Transport {
  /** Sends bytes; the client sends one whole package per call. Never blocks. */
  send(bytes: Uint8Array): void;
  /** Closes after flushing what was sent; `close` follows (if it has not already). */
  close(): void;
}

/**
 * Opens a connection to `url` and reports through `events`. It may throw
 * ShaddockClientError CLIENT_BAD_URL for a URL it cannot handle.
 */
export type TransportFactory = (url: string, events: TransportEvents) => Transport;

/**
 * The part of the WHATWG WebSocket the SDK uses: the browser's `WebSocket`, and
 * anything shaped like it.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { readonly data: unknown }) => void) | null;
  onclose: ((ev: { readonly code: number; readonly reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** WebSocket readyState OPEN (WHATWG). */
const OPEN = 1;

/** The global `WebSocket` (browsers, Deno, Bun, Node ≥ 22), if there is one. */
export function globalWebSocket(): WebSocketConstructor | undefined {
  const ws = (globalThis as { WebSocket?: unknown }).WebSocket;
  return typeof ws === 'function' ? (ws as WebSocketConstructor) : undefined;
}

/**
 * A transport over a WHATWG WebSocket (`ws://` and `wss://` URLs). Pomelo sends
 * binary frames (docs/pomelo-protocol.md §2.3); text frames are ignored.
 * @param WebSocketImpl the constructor to use. @default globalThis.WebSocket
 */
export function webSocketTransport(WebSocketImpl?: WebSocketConstructor): TransportFactory {
  return (url, events) => {
    if (!/^wss?:\/\//i.test(url)) {
      throw new ShaddockClientError('CLIENT_BAD_URL', `"${url}" is not a ws:// or wss:// URL (raw TCP needs shaddock/client/node)`, { url });
    }
    const Impl = WebSocketImpl ?? globalWebSocket();
    if (Impl === undefined) {
      throw new ShaddockClientError('CLIENT_BAD_OPTIONS', 'no global WebSocket: pass `webSocket`, or use connectNode from shaddock/client/node', { url });
    }
    let closed = false;
    const finish = (reason: string): void => {
      if (closed) return;
      closed = true;
      events.close(reason);
    };
    const ws = new Impl(url);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => events.open();
    ws.onmessage = (ev) => {
      if (closed) return;
      const { data } = ev;
      if (data instanceof ArrayBuffer) events.data(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) events.data(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    };
    // Browsers hide the cause of an error; the close event that follows has the code.
    ws.onerror = () => undefined;
    ws.onclose = (ev) => finish(`websocket closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`);
    return {
      send(bytes) {
        if (!closed && ws.readyState === OPEN) ws.send(bytes);
      },
      close() {
        try {
          ws.close(1000);
        } catch {
          // already closing
        }
        finish('closed by the client');
      },
    };
  };
}
