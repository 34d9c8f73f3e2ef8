import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ShaddockClient,
  createNodeClient,
  memoryStore,
  nodeTransport,
  type ClientState,
  type ShaddockClientError,
  type StateChange,
  type Transport,
  type TransportEvents,
  type TransportFactory,
} from '../../src/client/node.js';
import { formatMessage } from '../../src/cli/listen.js';
import { asClientId } from '../../src/ids.js';
import { encodePackage, PackageReader, PackageType, HEARTBEAT_PACKAGE, encodeKick } from '../../src/protocol/pomelo/package.js';
import { decodeMessage, encodePushPackage, encodeResponsePackage, MessageType } from '../../src/protocol/pomelo/message.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor, withTimeout } from '../fixtures/wait.js';

const ROOT = new URL('../..', import.meta.url).pathname;

type Events = { onMsg: { title: string; msg: string }; onNews: { n: number } };

/** A transport wrapper whose current connection the test can drop, as a network failure would. */
function droppable(inner: TransportFactory): { factory: TransportFactory; drop(): boolean; opened: number } {
  let current: { t: Transport; events: TransportEvents } | undefined;
  const w = {
    opened: 0,
    factory: ((url, events) => {
      const t = inner(url, events);
      current = { t, events };
      w.opened++;
      return t;
    }) as TransportFactory,
    drop(): boolean {
      const c = current;
      if (!c) return false;
      current = undefined;
      // The client learns of the loss first; bytes still in flight are lost with it.
      c.events.close('dropped by the test');
      c.t.close();
      return true;
    },
  };
  return w;
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('shaddock/client SDK', () => {
  let t: TestServer;
  const clients: ShaddockClient<Events>[] = [];

  before(async () => {
    t = await startTestServer({ heartbeatSeconds: 1, heartbeatTimeoutSeconds: 2 });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await t.close();
  });

  const url = (scheme: 'tcp' | 'ws'): string => `${scheme}://127.0.0.1:${t.server.hybridPort}`;

  function client(opts: Partial<Parameters<typeof createNodeClient>[0]> & { clientId: string }): ShaddockClient<Events> {
    const c = createNodeClient<Events>({ urls: url('tcp'), apikey: t.app.apikey, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, ...opts });
    clients.push(c);
    return c;
  }

  async function httpPush(body: unknown): Promise<{ id: number; targeted: number }> {
    const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 202, await res.clone().text());
    return (await res.json()) as { id: number; targeted: number };
  }

  async function receipt(id: number): Promise<{ receipt: { acked: number }; recipients: { clientId: string; state: string }[] }> {
    const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages/${id}`, { headers: { authorization: `Bearer ${t.app.secret}` } });
    assert.equal(res.status, 200);
    return (await res.json()) as { receipt: { acked: number }; recipients: { clientId: string; state: string }[] };
  }

  it('the browser entry (src/client/index.ts) imports nothing Node-only and nothing outside src/client', () => {
    const clientDir = join(ROOT, 'src/client');
    const seen = new Set<string>();
    const problems: string[] = [];
    const walk = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      const name = relative(ROOT, file);
      if (/\bBuffer\b/.test(source)) problems.push(`${name} mentions Buffer`);
      // Static imports and re-exports (type-only too), dynamic imports and require.
      const specs = [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]!);
      for (const spec of specs) {
        if (!spec.startsWith('.')) {
          problems.push(`${name} imports "${spec}"`);
          continue;
        }
        const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
        if (!target.startsWith(clientDir + '/')) problems.push(`${name} imports ${spec}, outside src/client`);
        else walk(target);
      }
    };
    walk(join(clientDir, 'index.ts'));
    assert.ok(seen.size >= 5, `walked ${[...seen].join(', ')}`);
    assert.ok(!seen.has(join(clientDir, 'node.ts')));
    assert.deepEqual(problems, []);
    // The walker does see a Node import where there is one.
    assert.match(readFileSync(join(clientDir, 'node.ts'), 'utf8'), /from 'node:net'/);
  });

  for (const scheme of ['tcp', 'ws'] as const) {
    it(`over ${scheme}: a typed handler gets data and id, and the ack reaches the server`, async () => {
      const clientId = `typed-${scheme}`;
      const c = client({ urls: url(scheme), clientId });
      const got: { data: Events['onMsg']; id: number; event: string }[] = [];
      const all: number[] = [];
      c.on('onMsg', (data, meta) => {
        got.push({ data, id: meta.id, event: meta.event });
      });
      c.on('message', (m) => {
        all.push(m.id);
      });
      const states: ClientState[] = [];
      c.on('state', (s) => states.push(s.state));
      await withTimeout(c.connect(), 5000, 'connect');
      assert.equal(c.state, 'connected');
      assert.deepEqual(states, ['connecting', 'connected']);

      const data = { title: '通知', msg: `hello over ${scheme} 🚀` };
      const { id, targeted } = await httpPush({ data, to: { clientIds: [clientId] } });
      assert.equal(targeted, 1);
      await waitFor(() => got.length === 1, { timeoutMs: 5000, message: 'the push' });
      assert.deepEqual(got[0], { data, id, event: 'onMsg' });
      assert.deepEqual(all, [id]);
      assert.equal(c.lastId, id);

      await waitFor(
        async () => {
          await t.server.hub.flush();
          const r = await receipt(id);
          return r.receipt.acked >= 1 && r.recipients.some((x) => x.clientId === clientId && x.state === 'acked');
        },
        { timeoutMs: 5000, message: 'the ack in the receipt' },
      );
      await c.close();
      assert.equal(c.state, 'closed');
    });
  }

  it('subscribes and unsubscribes tags; tags given at enter work', async () => {
    const c = client({ clientId: 'tagged', tags: ['sport'] });
    const got: { event: string; data: unknown }[] = [];
    c.on('message', (m) => {
      got.push({ event: m.event, data: m.data });
    });
    await c.connect();
    await httpPush({ data: 'sport 1', to: { tags: ['sport'] } });
    await c.subscribe(['news']);
    assert.deepEqual([...c.tags].sort(), ['news', 'sport']);
    await httpPush({ event: 'onNews', data: { n: 1 }, to: { tags: ['news'] } });
    await c.unsubscribe(['news']);
    await httpPush({ event: 'onNews', data: { n: 2 }, to: { tags: ['news'] } });
    await httpPush({ data: 'last', to: { clientIds: ['tagged'] } });
    await waitFor(() => got.some((g) => g.data === 'last'), { timeoutMs: 5000, message: 'the last push' });
    assert.deepEqual(got, [
      { event: 'onMsg', data: 'sport 1' },
      { event: 'onNews', data: { n: 1 } },
      { event: 'onMsg', data: 'last' },
    ]);
    await assert.rejects(c.subscribe(['']), { code: 'CLIENT_BAD_OPTIONS' });
  });

  it('reconnects in the middle of a 2,000-message stream: every id exactly once, in order', async (tc) => {
    const clientId = 'streamer';
    const net = droppable(nodeTransport());
    const acks: number[] = [];
    const hubAck = t.server.hub.ack.bind(t.server.hub);
    t.server.hub.ack = (conn, id) => {
      if (t.server.hub.identity(conn)?.clientId === clientId) acks.push(id);
      hubAck(conn, id);
    };
    tc.after(() => {
      t.server.hub.ack = hubAck;
    });
    const c = client({ clientId, transport: net.factory, reconnect: { initialDelayMs: 5, maxDelayMs: 50 } });
    const seen: number[] = [];
    const disconnects: string[] = [];
    let drops = 0;
    c.on('disconnected', (d) => disconnects.push(d.reason));
    c.on('onMsg', async (_data, meta) => {
      seen.push(meta.id);
      // Some handlers are async: processing must still be one at a time, in order.
      if (seen.length % 150 === 0) await delay(1);
      // Drop the connection now and then, with messages in flight.
      if (seen.length % 300 === 0 && net.drop()) drops++;
    });
    await c.connect();

    const published: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const { message } = await t.server.hub.publish({
        apikey: t.app.apikey,
        target: { all: false, clientIds: [asClientId(clientId)], tags: [] },
        event: 'onMsg',
        data: { title: 'n', msg: String(i) },
      });
      published.push(message.id);
      // And drop it from the publishing side too, between publishes.
      if ((i === 250 || i === 1100) && net.drop()) drops++;
      // Let deliveries interleave with publishing.
      if (i % 100 === 0) await delay(2);
    }
    await waitFor(() => seen.length >= 2000, { timeoutMs: 15_000, message: `all 2000 messages (got ${seen.length})` });
    assert.deepEqual(seen, published);
    assert.ok(drops >= 4, `dropped ${drops} times`);
    if (process.env['SDK_TEST_VERBOSE']) console.log({ drops, opened: net.opened, disconnects: disconnects.length, duplicates: c.duplicatesDropped });
    assert.ok(net.opened >= drops, `${net.opened} connections`);
    assert.ok(disconnects.length >= 2);
    assert.equal(c.lastId, published.at(-1));
    // Acked up to the last one (the hub keeps the client's position from acks). Not
    // checked in the receipt: the hub counts an ack in receipts only on the connection
    // that delivered the message, and the last one may have come on a dropped one.
    await waitFor(() => acks.at(-1) === published.at(-1), { timeoutMs: 5000, message: `the last ack (acks: ${acks.slice(-3).join()})` });
    assert.deepEqual(
      acks,
      [...acks].sort((a, b) => a - b),
      'acks only move forward',
    );
    assert.ok(acks.length < 200, `acks are coalesced: ${acks.length} for 2000 messages`);
  });

  it('a handler that falls behind: the queue stays bounded, the connection is reopened, nothing is lost', async () => {
    const clientId = 'slowpoke';
    const c = client({ clientId, maxQueuedMessages: 20, reconnect: { initialDelayMs: 5 } });
    const seen: number[] = [];
    const reasons: string[] = [];
    let maxQueued = 0;
    c.on('disconnected', (d) => reasons.push(d.reason));
    c.on('onMsg', async (_d, meta) => {
      maxQueued = Math.max(maxQueued, c.queued);
      seen.push(meta.id);
      await delay(1);
    });
    await c.connect();
    const published: number[] = [];
    for (let i = 0; i < 150; i++) {
      published.push((await t.server.hub.publish({ apikey: t.app.apikey, target: { all: false, clientIds: [asClientId(clientId)], tags: [] }, event: 'onMsg', data: { title: '', msg: '' } })).message.id);
    }
    await waitFor(() => seen.length >= 150, { timeoutMs: 10_000, message: `150 messages (got ${seen.length})` });
    assert.deepEqual(seen, published);
    assert.ok(maxQueued <= 20, `queued up to ${maxQueued}`);
    assert.ok(reasons.includes('client queue full'), reasons.join());
  });

  it('fails over: the first URL is a closed port, the client ends on the second', async () => {
    const dead = `tcp://127.0.0.1:${await closedPort()}`;
    const c = client({ clientId: 'failover', urls: [dead, url('ws')], reconnect: { initialDelayMs: 10, maxDelayMs: 50, jitter: 0 } });
    const changes: StateChange[] = [];
    c.on('state', (s) => changes.push(s));
    await withTimeout(c.connect(), 5000, 'connect');
    assert.equal(c.url, url('ws'));
    assert.deepEqual(
      changes.map((s) => [s.state, s.url]),
      [
        ['connecting', dead],
        ['reconnecting', dead],
        ['connecting', url('ws')],
        ['connected', url('ws')],
      ],
    );
    assert.equal(changes[1]!.delayMs, 10);
  });

  it('a server that goes away: kicked "server shutting down", then retries with growing backoff, no errors', async () => {
    const t2 = await startTestServer({ heartbeatSeconds: 1 });
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown): void => void unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      const c = createNodeClient<Events>({
        urls: [`tcp://127.0.0.1:${t2.server.hybridPort}`, `ws://127.0.0.1:${t2.server.hybridPort}`],
        apikey: t2.app.apikey,
        clientId: 'orphan',
        reconnect: { initialDelayMs: 20, maxDelayMs: 160, factor: 2, jitter: 0 },
      });
      const errors: ShaddockClientError[] = [];
      const kicks: string[] = [];
      const disconnected: boolean[] = [];
      const waits: number[] = [];
      c.on('error', (e) => errors.push(e));
      c.on('kicked', (k) => kicks.push(k.reason));
      c.on('disconnected', (d) => disconnected.push(d.willReconnect));
      c.on('state', (s) => {
        if (s.state === 'reconnecting') waits.push(s.delayMs!);
      });
      await c.connect();
      await t2.close();
      await waitFor(() => waits.length >= 5, { timeoutMs: 5000, message: 'five retries' });
      assert.deepEqual(kicks, ['server shutting down']);
      assert.deepEqual(disconnected, [true]);
      assert.deepEqual(waits.slice(0, 5), [20, 40, 80, 160, 160]);
      assert.equal(c.state === 'reconnecting' || c.state === 'connecting', true);
      await c.close();
      assert.equal(c.state, 'closed');
      assert.deepEqual(errors, []);
      await assert.rejects(c.connect(), { code: 'CLIENT_CLOSED' });
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(unhandled, []);
  });

  it('entering with lastId delivers only what comes after it; a store keeps the position', async () => {
    const clientId = 'resumer';
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await httpPush({ data: { title: 't', msg: String(i) }, to: { clientIds: [clientId] } })).id);
    const store = memoryStore();
    const c = client({ clientId, lastId: ids[2]!, store });
    const seen: number[] = [];
    c.on('onMsg', (_d, meta) => void seen.push(meta.id));
    const resumed: (number | undefined)[] = [];
    c.on('connected', (i) => resumed.push(i.resumedAfter));
    await c.connect();
    await waitFor(() => seen.length === 2, { timeoutMs: 5000, message: 'the two newer messages' });
    assert.deepEqual(seen, ids.slice(3));
    assert.deepEqual(resumed, [ids[2]]);
    assert.equal(store.value, ids[4]);
    await c.close();

    // A new client object with the same store resumes after it, whatever `lastId` says.
    const newer = (await httpPush({ data: { title: 't', msg: 'newer' }, to: { clientIds: [clientId] } })).id;
    const again = client({ clientId, lastId: 0, store });
    const seen2: number[] = [];
    again.on('onMsg', (_d, meta) => void seen2.push(meta.id));
    await again.connect();
    await waitFor(() => seen2.length === 1, { timeoutMs: 5000, message: 'the newer message' });
    await delay(50);
    assert.deepEqual(seen2, [newer]);
  });

  it('a throwing handler is reported as an error; later messages still arrive and are acked', async () => {
    const clientId = 'clumsy';
    const c = client({ clientId });
    const errors: ShaddockClientError[] = [];
    const seen: string[] = [];
    c.on('error', (e) => errors.push(e));
    c.on('onMsg', async (data) => {
      seen.push(data.msg);
      if (data.msg === 'bad') throw new Error('handler broke');
    });
    await c.connect();
    const bad = await httpPush({ data: { title: '', msg: 'bad' }, to: { clientIds: [clientId] } });
    const good = await httpPush({ data: { title: '', msg: 'good' }, to: { clientIds: [clientId] } });
    await waitFor(() => seen.length === 2, { timeoutMs: 5000, message: 'both messages' });
    assert.deepEqual(seen, ['bad', 'good']);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'CLIENT_HANDLER_FAILED');
    assert.equal(errors[0]!.messageId, bad.id);
    assert.equal((errors[0]!.cause as Error).message, 'handler broke');
    await waitFor(
      async () => {
        await t.server.hub.flush();
        return (await receipt(good.id)).receipt.acked === 1;
      },
      { timeoutMs: 5000, message: 'the ack' },
    );
  });

  it('kick "replaced" stops the client for good; an unknown apikey is refused at once', async () => {
    const first = client({ clientId: 'twin' });
    const kicked: string[] = [];
    first.on('kicked', (k) => kicked.push(k.reason));
    await first.connect();
    const second = client({ clientId: 'twin' });
    await second.connect();
    await waitFor(() => first.state === 'closed', { timeoutMs: 5000, message: 'the first twin to stop' });
    assert.deepEqual(kicked, ['replaced']);
    assert.equal(second.state, 'connected');

    const stranger = createNodeClient({ urls: url('tcp'), apikey: 'no-such-app', clientId: 'x' });
    const errors: ShaddockClientError[] = [];
    stranger.on('error', (e) => errors.push(e));
    await assert.rejects(withTimeout(stranger.connect(), 5000, 'connect'), { code: 'CLIENT_ENTER_REFUSED', serverCode: 'APP_UNKNOWN' });
    assert.equal(stranger.state, 'closed');
    assert.equal(errors[0]?.code, 'CLIENT_ENTER_REFUSED');
  });

  it('the browser entry works with a WHATWG WebSocket (globalThis.WebSocket)', async () => {
    const child = spawn(
      process.execPath,
      ['--experimental-websocket', '--import', 'tsx', join(ROOT, 'test/client/browser-client.ts'), url('ws'), t.app.apikey, 'browser-1'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Uint8Array) => (out += String(b)));
    child.stderr.on('data', (b: Uint8Array) => (err += String(b)));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    try {
      await waitFor(() => out.includes('connected\n'), { timeoutMs: 15_000, message: `the browser client to connect: ${err}` });
      const { id } = await httpPush({ data: { title: 'web', msg: '浏览器' }, to: { clientIds: ['browser-1'] } });
      await waitFor(() => out.includes('"id"'), { timeoutMs: 5000, message: `the message: ${out} ${err}` });
      assert.deepEqual(JSON.parse(out.split('\n')[1]!), { id, event: 'onMsg', data: { title: 'web', msg: '浏览器' } });
      child.kill('SIGTERM');
      assert.equal(await withTimeout(exited, 5000, 'browser client exit'), 0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('shaddock listen prints messages, acks them, and exits 0 on SIGINT', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'test/client/listen-cli.ts'), 'listen', '--app', t.app.apikey, '--client', 'cli-listener', '--url', url('tcp'), '--tags', 'cli'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Uint8Array) => (out += String(b)));
    child.stderr.on('data', (b: Uint8Array) => (err += String(b)));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    try {
      await waitFor(() => err.includes('connected to'), { timeoutMs: 15_000, message: `listen to connect: ${err}` });
      const a = await httpPush({ data: { title: 'hi', msg: '你好' }, to: { clientIds: ['cli-listener'] } });
      const b = await httpPush({ event: 'onNews', data: { n: 7 }, to: { tags: ['cli'] } });
      await waitFor(() => out.split('\n').length >= 3, { timeoutMs: 5000, message: `two lines: ${out}` });
      assert.equal(out, `${a.id} onMsg {"title":"hi","msg":"你好"}\n${b.id} onNews {"n":7}\n`);
      await waitFor(
        async () => {
          await t.server.hub.flush();
          return (await receipt(a.id)).receipt.acked === 1;
        },
        { timeoutMs: 5000, message: 'the CLI to ack' },
      );
      child.kill('SIGINT');
      assert.equal(await withTimeout(exited, 5000, 'listen exit'), 0);
    } finally {
      child.kill('SIGKILL');
    }
    assert.equal(formatMessage({ id: 3, event: 'onMsg', data: { a: [1] } }, true), '{"id":3,"event":"onMsg","data":{"a":[1]}}');
    assert.equal(formatMessage({ id: 4, event: 'onMsg', data: undefined }, false), '4 onMsg null');
  });
});

/**
 * A scripted Pomelo server over TCP, built on the server's codec: it answers the
 * handshake and the enter, then sends whatever the test tells it to.
 */
class FakeServer {
  readonly #server: Server;
  readonly sockets: Socket[] = [];
  readonly enters: Record<string, unknown>[] = [];
  readonly heartbeatsReceived: number[] = [];
  port = 0;

  constructor(
    readonly heartbeat: number,
    readonly onEntered: (socket: Socket, n: number) => void,
  ) {
    this.#server = createServer((socket) => {
      this.sockets.push(socket);
      const reader = new PackageReader({ maxPackage: 1 << 20 });
      socket.on('error', () => socket.destroy());
      socket.on('data', (chunk: Buffer) => {
        for (const pkg of reader.push(chunk)) {
          if (pkg.type === PackageType.HANDSHAKE) {
            socket.write(encodePackage(PackageType.HANDSHAKE, Buffer.from(JSON.stringify({ code: 200, sys: { heartbeat: this.heartbeat, dict: { onMsg: 30 }, codeToRoute: { 30: 'onMsg' } } }))));
          } else if (pkg.type === PackageType.HANDSHAKE_ACK) {
            socket.write(HEARTBEAT_PACKAGE);
          } else if (pkg.type === PackageType.HEARTBEAT) {
            this.heartbeatsReceived.push(Date.now()); // and never answer
          } else if (pkg.type === PackageType.DATA) {
            const msg = decodeMessage(pkg.body);
            if (msg.type === MessageType.REQUEST && msg.route === 'hybrid-connector.entryHandler.enter') {
              this.enters.push(JSON.parse(msg.body.toString()) as Record<string, unknown>);
              socket.write(encodeResponsePackage(msg.id, Buffer.from('{"code":200,"msg":"add ok","users":null}')));
              this.onEntered(socket, this.enters.length);
            }
          }
        }
      });
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

function push(id: number, msg: string, route: string | number = 'onMsg'): Buffer {
  return encodePushPackage(route, Buffer.from(JSON.stringify({ msg: { title: 't', msg }, id })));
}

describe('shaddock/client against a scripted server', () => {
  it('drops repeated and old ids, reads compressed routes, and resumes after the highest id', async () => {
    const fake = new FakeServer(30, (socket, n) => {
      if (n === 1) {
        // Routes as strings and as dictionary codes; 2 and 1 again are repeats.
        socket.write(Buffer.concat([push(1, 'a'), push(2, 'b', 30), push(2, 'b again'), push(1, 'a again'), push(3, 'c', 30)]));
        setTimeout(() => socket.write(encodeKick('slow consumer')), 20);
      } else {
        socket.write(Buffer.concat([push(3, 'c again'), push(4, 'd')]));
      }
    });
    await fake.listen();
    const c = new ShaddockClient<Events>({ urls: `tcp://127.0.0.1:${fake.port}`, apikey: 'k', clientId: 'dup', transport: nodeTransport(), reconnect: { initialDelayMs: 5 } });
    const seen: string[] = [];
    c.on('onMsg', (d) => void seen.push(d.msg));
    try {
      await c.connect();
      await waitFor(() => seen.length === 4, { timeoutMs: 5000, message: `4 messages, got ${seen.join()}` });
      await delay(30);
      assert.deepEqual(seen, ['a', 'b', 'c', 'd']);
      assert.equal(c.duplicatesDropped, 3);
      assert.equal(fake.enters[0]!['lastId'], undefined);
      assert.equal(fake.enters[1]!['lastId'], 3);
      assert.equal(fake.enters[1]!['apikey'], 'k');
      assert.equal(fake.enters[1]!['role'], 'client');
    } finally {
      await c.close();
      await fake.close();
    }
  });

  it('a server that stops answering heartbeats is dropped after 2 × heartbeat, and the client reconnects', async () => {
    const fake = new FakeServer(0.1, () => undefined);
    await fake.listen();
    const c = createNodeClient<Events>({ urls: `tcp://127.0.0.1:${fake.port}`, apikey: 'k', clientId: 'hb', reconnect: { initialDelayMs: 5 } });
    const reasons: string[] = [];
    c.on('disconnected', (d) => reasons.push(d.reason));
    try {
      const start = Date.now();
      await c.connect();
      await waitFor(() => fake.enters.length >= 2, { timeoutMs: 3000, message: 'a second connection' });
      assert.equal(reasons[0], 'heartbeat timeout');
      // One heartbeat after 100 ms, then 200 ms of silence (± the 100 ms tolerance).
      assert.ok(Date.now() - start >= 250, `${Date.now() - start} ms`);
      assert.ok(fake.heartbeatsReceived.length >= 1);
    } finally {
      await c.close();
      await fake.close();
    }
  });
});
