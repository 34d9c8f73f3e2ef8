import { describe, it, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Hub, HubError } from '../../../src/hub/hub.js';
import { LocalBus } from '../../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../../src/store/sqlite-storage.js';
import { createLogger } from '../../../src/log.js';
import { asClientId } from '../../../src/ids.js';
import type { App, Storage } from '../../../src/store/store.js';
import type { Connection } from '../../../src/hub/connection.js';
import { SseConnector, SSE_ENCODER, type SseConnectorOptions } from '../../../src/connectors/sse/index.js';
import { once, waitFor } from '../../fixtures/wait.js';

const EVENTS_PATH = /^\/api\/v1\/apps\/([^/]+)\/clients\/([^/]+)\/events$/;
const ALL = { all: true, clientIds: [], tags: [] };

interface Harness {
  readonly storage: Storage;
  readonly hub: Hub;
  readonly app: App;
  readonly connector: SseConnector;
  readonly base: string;
  url(clientId: string, query?: string, apikey?: string): string;
  /** Waits until `n` clients are online in the hub. */
  online(n: number): Promise<void>;
  stop(): Promise<void>;
}

async function start(opts: Partial<SseConnectorOptions> = {}, maxBufferedBytes = 1 << 20): Promise<Harness> {
  const storage = openSqliteStorage(':memory:');
  const log = createLogger('silent');
  const hub = new Hub({ storage, bus: new LocalBus(), logger: log, maxBufferedBytes });
  const app = await storage.apps.createApp({ name: 'sse-test' });
  const connector = new SseConnector({ hub, log, ...opts });
  // The test's own tiny router, standing in for the HTTP API's.
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const m = EVENTS_PATH.exec(path);
    if (req.method !== 'GET' || !m) {
      res.writeHead(404);
      res.end();
      return;
    }
    connector.handle(req, res, decodeURIComponent(m[1]!), decodeURIComponent(m[2]!));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening', 2000);
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const children: ChildProcess[] = [];
  return {
    storage,
    hub,
    app,
    connector,
    base,
    url: (clientId, query = '', apikey = app.apikey) =>
      `${base}/api/v1/apps/${encodeURIComponent(apikey)}/clients/${encodeURIComponent(clientId)}/events${query}`,
    online: (n) =>
      waitFor(() => hub.onlineClients(app.apikey).length === n, { timeoutMs: 3000, message: `${n} client(s) online` }),
    async stop() {
      for (const c of children) c.kill();
      await connector.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await hub.close();
      await storage.close();
    },
  };
}

/** `curl -sN --max-time 5 …`, its stdout collected as it streams. */
class Curl {
  readonly proc: ChildProcess;
  out = '';
  exitCode: number | null | undefined;

  constructor(args: readonly string[]) {
    this.proc = spawn('curl', ['-sN', '--max-time', '5', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stdout!.on('data', (chunk: string) => {
      this.out += chunk;
    });
    this.proc.once('exit', (code) => {
      this.exitCode = code;
    });
  }

  async until(text: string, timeoutMs = 4000): Promise<void> {
    await waitFor(() => this.out.includes(text), { timeoutMs, message: `curl output to contain ${JSON.stringify(text)}; got ${JSON.stringify(this.out)}` });
  }

  async exited(timeoutMs = 4000): Promise<void> {
    await waitFor(() => this.exitCode !== undefined, { timeoutMs, message: 'curl to exit' });
  }

  async kill(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.proc.kill();
    await this.exited();
  }
}

/** A streaming `fetch` reader of an SSE response. */
class Stream {
  text = '';
  done = false;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(readonly res: Response) {
    this.#reader = res.body!.getReader();
    void this.#pump();
  }

  static async open(url: string, init: RequestInit = {}): Promise<Stream> {
    return new Stream(await fetch(url, init));
  }

  async #pump(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        this.text += decoder.decode(value, { stream: true });
      }
    } catch {
      // Aborted or cut by the server: `done` says so.
    }
    this.done = true;
  }

  async until(text: string, timeoutMs = 3000): Promise<void> {
    await waitFor(() => this.text.includes(text), { timeoutMs, message: `the stream to contain ${JSON.stringify(text)}; got ${JSON.stringify(this.text)}` });
  }

  async ended(timeoutMs = 3000): Promise<void> {
    await waitFor(() => this.done, { timeoutMs, message: 'the stream to end' });
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel();
  }
}

const sse = (id: number, event: string, data: unknown): string => `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

describe('SseConnector', () => {
  let h: Harness | undefined;
  const curls: Curl[] = [];
  const streams: Stream[] = [];
  const curl = (args: readonly string[]): Curl => {
    const c = new Curl(args);
    curls.push(c);
    return c;
  };
  const stream = async (url: string, init?: RequestInit): Promise<Stream> => {
    const s = await Stream.open(url, init);
    streams.push(s);
    return s;
  };

  afterEach(async () => {
    mock.restoreAll();
    for (const c of curls.splice(0)) await c.kill();
    for (const s of streams.splice(0)) if (!s.done) await s.cancel();
    await h?.stop();
    h = undefined;
  });

  it('streams a message to curl -N in SSE format, after the headers and the retry line', async () => {
    h = await start();
    const c = curl(['-i', h.url('c1')]);
    await h.online(1);
    const { message } = await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data: { t: '推送', n: 1 } });
    await c.until(sse(message.id, 'onMsg', { t: '推送', n: 1 }));
    const [head, body] = c.out.split('\r\n\r\n') as [string, string];
    assert.match(head, /^HTTP\/1\.1 200 OK/);
    assert.match(head, /\r\ncontent-type: text\/event-stream\r\n/i);
    assert.match(head, /\r\ncache-control: no-cache\r\n/i);
    assert.match(head, /\r\nx-accel-buffering: no(\r\n|$)/i);
    assert.equal(body, `retry: 3000\n\n${sse(message.id, 'onMsg', { t: '推送', n: 1 })}`);
    assert.deepEqual(
      h.hub.onlineClients(h.app.apikey).map((o) => [o.clientId, o.connector]),
      [['c1', 'sse']],
    );
  });

  it('resumes after Last-Event-ID, or the lastEventId parameter; the header wins; else "stored"', async () => {
    h = await start();
    const enter = mock.method(h.hub, 'enterClient');
    const withHeader = curl(['-H', 'Last-Event-ID: 5', h.url('a', '?lastEventId=3')]);
    await h.online(1);
    const withQuery = curl([h.url('b', '?lastEventId=3&token=tok&tags=news,%20sport,,x')]);
    await h.online(2);
    const plain = curl([h.url('c')]);
    await h.online(3);
    const byClient = new Map(enter.mock.calls.map((call) => [call.arguments[1].clientId, call.arguments[1]]));
    assert.deepEqual(byClient.get('a'), { apikey: h.app.apikey, clientId: 'a', resumeAfter: 5 });
    assert.deepEqual(byClient.get('b'), { apikey: h.app.apikey, clientId: 'b', resumeAfter: 3, token: 'tok', tags: ['news', 'sport', 'x'] });
    assert.deepEqual(byClient.get('c'), { apikey: h.app.apikey, clientId: 'c', resumeAfter: 'stored' });
    for (const c of [withHeader, withQuery, plain]) await c.until('retry: 3000\n\n');
  });

  it('replays what was missed after Last-Event-ID, and after what it was written without one', async () => {
    h = await start();
    const publish = async (data: number): Promise<number> =>
      (await h!.hub.publish({ apikey: h!.app.apikey, target: ALL, event: 'onMsg', data })).message.id;
    const first = await stream(h.url('r'));
    await h.online(1);
    const ids = [await publish(1), await publish(2), await publish(3)];
    await first.until(`id: ${ids[2]}\n`);
    await first.cancel();
    await h.online(0);
    ids.push(await publish(4)); // while offline

    const resumed = curl(['-H', `Last-Event-ID: ${ids[0]}`, h.url('r')]);
    await resumed.until(sse(ids[3]!, 'onMsg', 4));
    assert.equal(resumed.out, `retry: 3000\n\n${sse(ids[1]!, 'onMsg', 2)}${sse(ids[2]!, 'onMsg', 3)}${sse(ids[3]!, 'onMsg', 4)}`);
    await resumed.kill();
    await h.online(0);
    ids.push(await publish(5));

    // No Last-Event-ID: after the last message written (SSE acks on write).
    const plain = curl([h.url('r')]);
    await plain.until(sse(ids[4]!, 'onMsg', 5));
    assert.equal(plain.out, `retry: 3000\n\n${sse(ids[4]!, 'onMsg', 5)}`);
  });

  it('refuses before streaming with a JSON error and the right status', async () => {
    h = await start();
    const unknown = curl(['-w', '\n%{http_code} %{content_type}', h.url('c1', '', 'no-such-app')]);
    await unknown.exited();
    const [json, status] = unknown.out.split('\n') as [string, string];
    assert.equal(status, '404 application/json; charset=utf-8');
    assert.deepEqual(JSON.parse(json), { code: 'APP_UNKNOWN', message: 'unknown apikey "no-such-app"' });

    const long = await fetch(h.url('x'.repeat(300)));
    assert.equal(long.status, 400);
    assert.equal(((await long.json()) as { code: string }).code, 'BAD_REQUEST');

    const badId = await fetch(h.url('c1'), { headers: { 'last-event-id': 'yesterday' } });
    assert.equal(badId.status, 400);
    assert.deepEqual(await badId.json(), { code: 'BAD_REQUEST', message: 'Last-Event-ID: expected a message id (a non-negative integer)' });

    const badTag = await fetch(h.url('c1', `?tags=ok,${'x'.repeat(129)}`));
    assert.equal(badTag.status, 400);
    assert.equal(((await badTag.json()) as { code: string }).code, 'BAD_REQUEST');

    const badQuery = await fetch(h.url('c1', '?lastEventId=-1'));
    assert.equal(badQuery.status, 400);
    assert.match(((await badQuery.json()) as { message: string }).message, /^lastEventId: /);

    mock.method(h.hub, 'enterClient', () => Promise.reject(new HubError('AUTH_FAILED', 'bad client token')));
    const badToken = await fetch(h.url('c1', '?token=forged'));
    assert.equal(badToken.status, 401);
    assert.deepEqual(await badToken.json(), { code: 'AUTH_FAILED', message: 'bad client token' });

    mock.method(h.hub, 'enterClient', () => Promise.reject(new Error('disk on fire')));
    const internal = await fetch(h.url('c1'));
    assert.equal(internal.status, 500);
    const body = (await internal.json()) as { code: string; message: string };
    assert.equal(body.code, 'INTERNAL');
    assert.match(body.message, /^internal error \(id [0-9a-f-]{36}\)$/);
    assert.doesNotMatch(body.message, /disk/);

    assert.equal(h.connector.connectionCount, 0);
    assert.equal(h.hub.connectionCount, 0);
  });

  it('reads with fetch: messages in order, acked once written, keep-alive comments, leave on abort', async () => {
    h = await start({ keepAliveMs: 100 });
    const ack = mock.method(h.hub, 'ack');
    const leave = mock.method(h.hub, 'leave');
    const controller = new AbortController();
    const s = await stream(h.url('reader'), { signal: controller.signal });
    assert.equal(s.res.status, 200);
    assert.equal(s.res.headers.get('content-type'), 'text/event-stream');
    await h.online(1);
    const m1 = await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data: 'one' });
    const m2 = await h.hub.publish({
      apikey: h.app.apikey,
      target: { all: false, clientIds: [asClientId('reader')], tags: [] },
      event: 'onNews',
      data: { lines: 'a\nb\r\nc' },
    });
    await s.until(sse(m2.message.id, 'onNews', { lines: 'a\nb\r\nc' }));
    assert.ok(s.text.startsWith(`retry: 3000\n\n`));
    assert.ok(s.text.indexOf(sse(m1.message.id, 'onMsg', 'one')) < s.text.indexOf(`id: ${m2.message.id}\n`));
    assert.deepEqual(ack.mock.calls.map((c) => c.arguments[1]), [m1.message.id, m2.message.id]);
    assert.equal((ack.mock.calls[0]!.arguments[0] as Connection).connector, 'sse');
    await s.until(':\n\n');
    controller.abort();
    await waitFor(() => h!.connector.connectionCount === 0, { timeoutMs: 3000, message: 'the stream to be gone' });
    await h.online(0);
    assert.equal(leave.mock.callCount(), 1);
  });

  it('encodes a broadcast once for every SSE client', async () => {
    h = await start();
    const readers = [await stream(h.url('a')), await stream(h.url('b')), await stream(h.url('c'))];
    await h.online(3);
    const encode = mock.method(SSE_ENCODER, 'encodeMessage');
    const { message } = await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data: 7 });
    for (const r of readers) await r.until(sse(message.id, 'onMsg', 7));
    assert.equal(encode.mock.callCount(), 1);
  });

  it('kicks the first stream with "replaced" when the same clientId connects again', async () => {
    h = await start();
    const first = await stream(h.url('same'));
    await h.online(1);
    const second = await stream(h.url('same'));
    await first.until('event: kick\ndata: {"reason":"replaced"}\n\n');
    await first.ended();
    await second.until('retry: 3000\n\n');
    const { message } = await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data: 2 });
    await second.until(sse(message.id, 'onMsg', 2));
    assert.ok(!first.text.includes(`id: ${message.id}`));
    assert.equal(h.hub.onlineClients(h.app.apikey).length, 1);
  });

  it('cuts a slow consumer without a kick; another stream keeps everything', async () => {
    h = await start({}, 256 * 1024);
    // A fetch whose body is never read: undici stops reading, the kernel buffers fill.
    const slowRes = await fetch(h.url('slow'));
    assert.equal(slowRes.status, 200);
    const fast = await stream(h.url('fast'));
    await h.online(2);
    const data = 'x'.repeat(64 * 1024);
    const ids: number[] = [];
    for (let i = 0; i < 400 && h.hub.onlineClients(h.app.apikey).length === 2; i++) {
      ids.push((await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data })).message.id);
      await nextTurn();
    }
    await h.online(1);
    assert.deepEqual(h.hub.onlineClients(h.app.apikey).map((c) => c.clientId), ['fast']);
    await fast.until(`id: ${ids.at(-1)}\n`);
    const seen = [...fast.text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(seen, ids);
    await slowRes.body?.cancel();
  });

  it('close() ends every stream with a kick event and waits until they are gone', async () => {
    h = await start();
    const c = curl([h.url('a')]);
    const s = await stream(h.url('b'));
    await h.online(2);
    await c.until('retry: 3000\n\n');
    await h.connector.close('server shutting down');
    assert.equal(h.connector.connectionCount, 0);
    assert.equal(h.hub.connectionCount, 0);
    await s.until('event: kick\ndata: {"reason":"server shutting down"}\n\n');
    await s.ended();
    await c.until('event: kick\ndata: {"reason":"server shutting down"}\n\n');
    await c.exited();
    assert.equal(c.exitCode, 0); // the stream ended cleanly, not at --max-time
    const late = await fetch(h.url('late'));
    assert.equal(late.status, 503);
    assert.equal(((await late.json()) as { code: string }).code, 'UNAVAILABLE');
  });
});
