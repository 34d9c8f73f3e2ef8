/**
 * `shaddock/client/node`: the SDK plus Node transports. Node 20 has no global
 * WebSocket, and raw TCP (Pomelo's other hybrid transport, docs/pomelo-protocol.md §2.1) needs `node:net`:
 * `nodeTransport()` opens `tcp://`, `tls://`, `ws://` and `wss://` URLs.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import { ShaddockClient, type ShaddockClientOptions } from './client.js';
import { ShaddockClientError } from './errors.js';
import type { Transport, TransportEvents, TransportFactory } from './transport.js';

export * from './index.js';

/** The hybrid connector's default port (docs/connectors.md). */
export const DEFAULT_HYBRID_PORT = 3011;

/** A socket that does not finish closing within this long after `end()` is destroyed, ms. */
const END_GRACE_MS = 2000;

export interface NodeTransportOptions {
  /** Options for `tls://` and `wss://` (a CA, a client certificate, …). */
  readonly tls?: { readonly ca?: string | readonly string[]; readonly rejectUnauthorized?: boolean; readonly servername?: string };
}

/** Opens `tcp://host:port`, `tls://host:port`, `ws://…` and `wss://…` URLs from Node. */
export function nodeTransport(opts: NodeTransportOptions = {}): TransportFactory {
  return (url, events) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      throw new ShaddockClientError('CLIENT_BAD_URL', `"${url}" is not a URL`, { url, cause: err });
    }
    switch (parsed.protocol) {
      case 'tcp:':
      case 'tls:':
        return socketTransport(parsed, opts, events);
      case 'ws:':
      case 'wss:':
        return wsTransport(url, opts, events);
      default:
        throw new ShaddockClientError('CLIENT_BAD_URL', `"${url}": use tcp://, tls://, ws:// or wss://`, { url });
    }
  };
}

function socketTransport(url: URL, opts: NodeTransportOptions, events: TransportEvents): Transport {
  // URL keeps the brackets of an IPv6 literal: [::1]
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = url.port === '' ? DEFAULT_HYBRID_PORT : Number(url.port);
  let socket: Socket;
  if (url.protocol === 'tls:') {
    const tls = opts.tls ?? {};
    socket = tlsConnect({
      host,
      port,
      // SNI carries host names only; Node warns (DEP0123) when given an IP address.
      ...(tls.servername !== undefined ? { servername: tls.servername } : isIP(host) === 0 ? { servername: host } : {}),
      ...(tls.ca !== undefined ? { ca: typeof tls.ca === 'string' ? tls.ca : [...tls.ca] } : {}),
      ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
    });
    socket.once('secureConnect', () => events.open());
  } else {
    socket = netConnect({ host, port });
    socket.once('connect', () => events.open());
  }
  socket.setNoDelay(true);
  let closed = false;
  let lastError = '';
  const finish = (reason: string): void => {
    if (closed) return;
    closed = true;
    events.close(reason);
  };
  socket.on('data', (chunk: Uint8Array) => {
    if (!closed) events.data(chunk);
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    lastError = err.code ?? err.message;
  });
  socket.once('close', () => finish(lastError !== '' ? `socket error ${lastError}` : 'socket closed'));
  return {
    send(bytes) {
      if (!closed && !socket.destroyed) socket.write(bytes);
    },
    close() {
      // Still connecting: nothing to flush, and end() would wait for the connection.
      if (socket.connecting) socket.destroy();
      else if (!socket.destroyed) {
        socket.end();
        setTimeout(() => socket.destroy(), END_GRACE_MS).unref();
      }
      finish('closed by the client');
    },
  };
}

function wsTransport(url: string, opts: NodeTransportOptions, events: TransportEvents): Transport {
  const tls = opts.tls ?? {};
  const ws = new WebSocket(url, {
    perMessageDeflate: false,
    ...(tls.ca !== undefined ? { ca: typeof tls.ca === 'string' ? tls.ca : [...tls.ca] } : {}),
    ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
  });
  let closed = false;
  let lastError = '';
  const finish = (reason: string): void => {
    if (closed) return;
    closed = true;
    events.close(reason);
  };
  ws.on('open', () => events.open());
  ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
    // docs/pomelo-protocol.md §2.3: Pomelo sends binary frames only.
    if (closed || !isBinary) return;
    if (Array.isArray(data)) for (const part of data) events.data(part);
    else events.data(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
  });
  ws.on('error', (err: Error) => {
    lastError = err.message;
  });
  ws.once('close', (code: number, reason: Uint8Array) => {
    const text = new TextDecoder().decode(reason);
    finish(lastError !== '' ? `websocket error: ${lastError}` : `websocket closed (${code}${text !== '' ? ` ${text}` : ''})`);
  });
  return {
    send(bytes) {
      if (!closed && ws.readyState === WebSocket.OPEN) ws.send(bytes, { binary: true });
    },
    close() {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      finish('closed by the client');
    },
  };
}

/** A ShaddockClient with `nodeTransport()` (unless `transport` is given). Not connected yet. */
export function createNodeClient<Events extends object = Record<string, unknown>>(
  options: ShaddockClientOptions & { readonly tls?: NodeTransportOptions['tls'] },
): ShaddockClient<Events> {
  const { tls, ...rest } = options;
  return new ShaddockClient<Events>({ ...rest, transport: options.transport ?? nodeTransport(tls !== undefined ? { tls } : {}) });
}

/** `createNodeClient(options)`, connected: resolves once it has entered its app. */
export async function connectNode<Events extends object = Record<string, unknown>>(
  options: ShaddockClientOptions & { readonly tls?: NodeTransportOptions['tls'] },
): Promise<ShaddockClient<Events>> {
  const client = createNodeClient<Events>(options);
  await client.connect();
  return client;
}
