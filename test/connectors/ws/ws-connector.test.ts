import { describe, it, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { WebSocket, type ClientOptions } from 'ws';
import { Hub } from '../../../src/hub/hub.js';
import { LocalBus } from '../../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../../src/store/sqlite-storage.js';
import { createLogger } from '../../../src/log.js';
import { asClientId } from '../../../src/ids.js';
import type { App, Storage } from '../../../src/store/store.js';
import type { Connection } from '../../../src/hub/connection.js';
import { WsConnector, WS_ENCODER, type WsConnectorOptions } from '../../../src/connectors/ws/index.js';
import { Admission } from '../../../src/connectors/admission.js';
import { once, waitFor } from '../../fixtures/wait.js';

/** A server frame as the test reads it: the fields it asserts on, and whatever else came. */
interface Frame {
  readonly type: string;
  readonly ref?: unknown;
  readonly code?: unknown;
  readonly message?: unknown;
  readonly id?: unknown;
  readonly event?: unknown;
  readonly targeted?: unknown;
  readonly data?: unknown;
  readonly [field: string]: unknown;
}

interface Harness {
  readonly storage: Storage;
  readonly hub: Hub;
  readonly app: App;
  readonly connector: WsConnector;
  readonly server: Server;
  readonly url: string;
  readonly peers: Peer[];
  connect(path?: string, options?: ClientOptions): Promise<Peer>;
  /** Connects and enters as a client, resolving after `entered`. */
  client(clientId: string, extra?: Record<string, unknown>): Promise<Peer>;
  manager(): Promise<Peer>;
  stop(): Promise<void>;
}

/** A `ws` client that records every frame and how it was closed. */
class Peer {
  readonly frames: Frame[] = [];
  closedWith: { code: number; reason: string } | undefined;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      assert.equal(isBinary, false, 'the server sends text frames only');
      this.frames.push(JSON.parse(data.toString('utf8')) as Frame);
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closedWith = { code, reason: reason.toString() };
    });
    ws.on('error', () => undefined);
  }

  send(frame: Record<string, unknown> | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  of(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  /** Waits for the `n`-th frame (1-based) of a type. */
  async nth(type: string, n = 1, timeoutMs = 3000): Promise<Frame> {
    await waitFor(() => this.of(type).length >= n, { timeoutMs, message: `${n} "${type}" frame(s); got ${JSON.stringify(this.frames)}` });
    return this.of(type)[n - 1]!;
  }

  async closed(timeoutMs = 3000): Promise<{ code: number; reason: string }> {
    await waitFor(() => this.closedWith !== undefined, { timeoutMs, message: 'the connection to close' });
    return this.closedWith!;
  }

  /** A round trip: every frame the server sent before the pong has arrived. */
  async sync(): Promise<void> {
    const n = this.of('pong').length;
    this.send({ type: 'ping' });
    await this.nth('pong', n + 1);
  }
}

async function start(opts: Partial<WsConnectorOptions> = {}, maxBufferedBytes = 1 << 20): Promise<Harness> {
  const storage = openSqliteStorage(':memory:');
  const log = createLogger('silent');
  const hub = new Hub({ storage, bus: new LocalBus(), logger: log, maxBufferedBytes });
  const app = await storage.apps.createApp({ name: 'ws-test' });
  const connector = new WsConnector({ hub, log, maxFrameBytes: 4096, ...opts });
  const server = createServer((_req, res) => {
    res.writeHead(404);
    res.end();
  });
  server.on('upgrade', (req, socket, head: Buffer) => connector.handleUpgrade(req, socket, head));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening', 2000);
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const peers: Peer[] = [];
  const h: Harness = {
    storage,
    hub,
    app,
    connector,
    server,
    url,
    peers,
    async connect(path = '/ws', options = {}) {
      const ws = new WebSocket(`${url}${path}`, options);
      const peer = new Peer(ws);
      peers.push(peer);
      await once(ws, 'open', 2000);
      return peer;
    },
    async client(clientId, extra = {}) {
      const peer = await h.connect();
      peer.send({ type: 'enter', apikey: app.apikey, clientId, ...extra });
      await peer.nth('entered');
      return peer;
    },
    async manager() {
      const peer = await h.connect();
      peer.send({ type: 'enter', role: 'manager', apikey: app.apikey, secret: app.secret });
      await peer.nth('entered');
      return peer;
    },
    async stop() {
      for (const p of peers) p.ws.terminate();
      await connector.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await hub.close();
      await storage.close();
    },
  };
  return h;
}

const ALL = { all: true, clientIds: [], tags: [] };

describe('WsConnector', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    mock.restoreAll();
    await h?.stop();
    h = undefined;
  });

  it('counts a connection against its address until the WebSocket closes, then makes room', async () => {
    const admission = new Admission({ maxConnectionsPerIp: 1, connectsPerSecondPerIp: 0, maxPendingConnections: 0, requestsPerSecond: 0 });
    h = await start({ admission });
    const first = await h.client('first');
    assert.equal(admission.openFrom('127.0.0.1'), 1);
    assert.equal(admission.pending, 0);
    // A second connection from the address is refused before the upgrade (HTTP 429).
    const refused = new WebSocket(`${h.url}/ws`);
    refused.on('error', () => undefined);
    const [, response] = (await once(refused, 'unexpected-response', 2000)) as [unknown, { statusCode: number }];
    assert.equal(response.statusCode, 429);
    refused.terminate();
    first.ws.close();
    await waitFor(() => admission.openFrom('127.0.0.1') === 0, { timeoutMs: 3000, message: 'the closed connection to be released' });
    await h.client('second');
    assert.equal(admission.openFrom('127.0.0.1'), 1);
    admission.close();
  });

  it('lets a client enter and answers with its clientId and ref', async () => {
    h = await start();
    const peer = await h.connect();
    peer.send({ type: 'enter', apikey: h.app.apikey, clientId: 'c1', ref: 'r1' });
    assert.deepEqual(await peer.nth('entered'), { type: 'entered', ref: 'r1', clientId: 'c1' });
    assert.equal(h.connector.connectionCount, 1);
    assert.deepEqual(
      h.hub.onlineClients(h.app.apikey).map((c) => [c.clientId, c.connector, c.remoteAddress]),
      [['c1', 'ws', '127.0.0.1']],
    );
  });

  it('delivers broadcasts to every client, encoded once, and per-client messages to their client only', async () => {
    h = await start();
    const a = await h.client('a');
    const b = await h.client('b');
    const c = await h.client('c');
    const encode = mock.method(WS_ENCODER, 'encodeMessage');
    const r1 = await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data: { t: '推送' } });
    assert.equal(r1.targeted, 3);
    assert.equal(encode.mock.callCount(), 1);
    for (const p of [a, b, c]) {
      assert.deepEqual(await p.nth('message'), { type: 'message', id: r1.message.id, event: 'onMsg', data: { t: '推送' } });
    }
    const r2 = await h.hub.publish({
      apikey: h.app.apikey,
      target: { all: false, clientIds: [asClientId('b')], tags: [] },
      event: 'onNews',
      data: 'only b',
    });
    assert.deepEqual(await b.nth('message', 2), { type: 'message', id: r2.message.id, event: 'onNews', data: 'only b' });
    await a.sync();
    await c.sync();
    assert.equal(a.of('message').length, 1);
    assert.equal(c.of('message').length, 1);
  });

  it('passes acks to the hub', async () => {
    h = await start();
    const ack = mock.method(h.hub, 'ack');
    const peer = await h.client('c1');
    const { message } = await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data: 1 });
    await peer.nth('message');
    peer.send({ type: 'ack', id: message.id });
    await waitFor(() => ack.mock.callCount() === 1, { timeoutMs: 2000, message: 'hub.ack' });
    const [conn, id] = ack.mock.calls[0]!.arguments;
    assert.equal((conn as Connection).connector, 'ws');
    assert.equal(id, message.id);
  });

  it('passes resumeAfter (lastId, else "stored"), tags and token to the hub', async () => {
    h = await start();
    const enter = mock.method(h.hub, 'enterClient');
    await h.client('c1', { lastId: 41, tags: ['x', 'y'], token: 'tok' });
    await h.client('c2');
    assert.deepEqual(enter.mock.calls[0]!.arguments[1], { apikey: h.app.apikey, clientId: 'c1', resumeAfter: 41, tags: ['x', 'y'], token: 'tok' });
    assert.deepEqual(enter.mock.calls[1]!.arguments[1], { apikey: h.app.apikey, clientId: 'c2', resumeAfter: 'stored' });
  });

  it('resumes after lastId, and after the last ack without it', async () => {
    h = await start();
    const publish = async (data: number): Promise<number> =>
      (await h!.hub.publish({ apikey: h!.app.apikey, target: ALL, event: 'onMsg', data })).message.id;
    const first = await h.client('r');
    const ids = [await publish(1), await publish(2), await publish(3)];
    await first.nth('message', 3);
    first.send({ type: 'ack', id: ids[1] });
    await first.sync();
    first.ws.close();
    await first.closed();
    await waitFor(() => h!.hub.onlineClients(h!.app.apikey).length === 0, { timeoutMs: 2000, message: 'the client to leave' });
    ids.push(await publish(4)); // while offline: stored and forwarded

    const byLastId = await h.client('r', { lastId: ids[2] });
    await byLastId.nth('message');
    await byLastId.sync();
    assert.deepEqual(byLastId.of('message').map((m) => m.data), [4]);
    byLastId.ws.close();
    await byLastId.closed();
    await waitFor(() => h!.hub.onlineClients(h!.app.apikey).length === 0, { timeoutMs: 2000, message: 'the client to leave' });

    const byAck = await h.client('r');
    await byAck.nth('message', 2);
    await byAck.sync();
    assert.deepEqual(byAck.of('message').map((m) => m.id), [ids[2], ids[3]]);
  });

  it('subscribes and unsubscribes tags, answering ok with the ref', async () => {
    h = await start();
    const subscribe = mock.method(h.hub, 'subscribeTags');
    const unsubscribe = mock.method(h.hub, 'unsubscribeTags');
    const peer = await h.client('c1');
    peer.send({ type: 'subscribe', tags: ['news', 'sport'], ref: 5 });
    assert.deepEqual(await peer.nth('ok'), { type: 'ok', ref: 5 });
    peer.send({ type: 'unsubscribe', tags: ['sport'] });
    assert.deepEqual(await peer.nth('ok', 2), { type: 'ok' });
    assert.deepEqual(subscribe.mock.calls[0]!.arguments[1], ['news', 'sport']);
    assert.deepEqual(unsubscribe.mock.calls[0]!.arguments[1], ['sport']);
  });

  it('refuses everything but enter and ping before enter, with NOT_ENTERED', async () => {
    h = await start();
    const peer = await h.connect();
    peer.send({ type: 'subscribe', tags: ['a'], ref: 1 });
    peer.send({ type: 'ack', id: 1, ref: 2 });
    peer.send({ type: 'push', data: 1, ref: 3 });
    peer.send({ type: 'ping', ref: 4 });
    assert.deepEqual(await peer.nth('pong'), { type: 'pong', ref: 4 });
    await waitFor(() => peer.of('error').length === 3, { timeoutMs: 2000, message: '3 errors' });
    assert.deepEqual(
      peer.of('error').map((e) => [e.ref, e.code]).sort(),
      [
        [1, 'NOT_ENTERED'],
        [2, 'NOT_ENTERED'],
        [3, 'NOT_ENTERED'],
      ],
    );
    assert.equal(peer.closedWith, undefined);
  });

  it('lets a manager enter, see presence, and push to all or to chosen clients', async () => {
    h = await start();
    const manager = await h.manager();
    assert.deepEqual(manager.of('entered')[0], { type: 'entered', users: [] });
    const a = await h.client('a');
    assert.deepEqual(await manager.nth('event'), { type: 'event', event: 'onAdd', data: { msg: 'add ok', users: ['a'] } });
    const b = await h.client('b');
    await manager.nth('event', 2);

    manager.send({ type: 'push', data: { hello: 'all' }, ref: 'p1' });
    const pushed = await manager.nth('pushed');
    assert.equal(pushed.ref, 'p1');
    assert.equal(pushed.targeted, 2);
    assert.equal(typeof pushed.id, 'number');
    for (const p of [a, b]) assert.deepEqual(await p.nth('message'), { type: 'message', id: pushed.id, event: 'onMsg', data: { hello: 'all' } });

    manager.send({ type: 'push', event: 'onNote', data: 'to b', to: { clientIds: ['b'] }, ttl: 60 });
    const pushed2 = await manager.nth('pushed', 2);
    assert.equal(pushed2.targeted, 1);
    assert.deepEqual(await b.nth('message', 2), { type: 'message', id: pushed2.id, event: 'onNote', data: 'to b' });
    await a.sync();
    assert.equal(a.of('message').length, 1);

    a.ws.close();
    assert.deepEqual(await manager.nth('event', 3), { type: 'event', event: 'onLeave', data: { clientId: 'a', users: ['b'] } });
  });

  it('answers hub refusals with the hub code and keeps the connection open', async () => {
    h = await start();
    const peer = await h.connect();
    peer.send({ type: 'enter', role: 'manager', apikey: h.app.apikey, secret: 'wrong', ref: 1 });
    assert.deepEqual(await peer.nth('error'), {
      type: 'error',
      ref: 1,
      code: 'AUTH_FAILED',
      message: 'wrong app secret or admin credentials',
    });
    peer.send({ type: 'enter', apikey: 'nope', clientId: 'c', ref: 2 });
    const unknown = await peer.nth('error', 2);
    assert.equal(unknown.code, 'APP_UNKNOWN');
    assert.equal(unknown.ref, 2);
    peer.send({ type: 'enter', apikey: h.app.apikey, clientId: 'x'.repeat(300), ref: 3 });
    assert.equal((await peer.nth('error', 3)).code, 'BAD_REQUEST');
    // Still open, and may now enter properly.
    peer.send({ type: 'enter', apikey: h.app.apikey, clientId: 'c', ref: 4 });
    assert.deepEqual(await peer.nth('entered'), { type: 'entered', ref: 4, clientId: 'c' });
    peer.send({ type: 'enter', apikey: h.app.apikey, clientId: 'c', ref: 5 });
    assert.deepEqual(await peer.nth('error', 4), { type: 'error', ref: 5, code: 'BAD_REQUEST', message: 'this connection has already entered' });
    peer.send({ type: 'push', data: 1, ref: 6 });
    assert.equal((await peer.nth('error', 5)).code, 'FORBIDDEN');
    assert.equal(peer.closedWith, undefined);
  });

  it('answers bad frames with error codes naming the field, echoing a readable ref', async () => {
    h = await start();
    const peer = await h.connect();
    peer.send('{not json');
    assert.equal((await peer.nth('error', 1)).code, 'PROTO_BAD_JSON');
    peer.send({ type: 'teleport', ref: 'x' });
    const unknown = await peer.nth('error', 2);
    assert.equal(unknown.code, 'PROTO_BAD_MESSAGE');
    assert.equal(unknown.ref, 'x');
    assert.match(String(unknown.message), /^type: unknown type "teleport"/);
    peer.send({ type: 'enter', apikey: h.app.apikey, ref: 9 });
    assert.deepEqual(await peer.nth('error', 3), { type: 'error', ref: 9, code: 'PROTO_BAD_MESSAGE', message: 'clientId: required' });
    peer.send({ type: 'enter', apikey: h.app.apikey, clientId: 'c', lastId: 'yesterday' });
    assert.match(String((await peer.nth('error', 4)).message), /^lastId: /);
    assert.equal(peer.closedWith, undefined);
  });

  it('closes 1008 after 10 bad frames, and garbage does not disturb another client', async () => {
    h = await start();
    const good = await h.client('good');
    const bad = await h.connect();
    for (let i = 0; i < 12; i++) bad.send(i % 2 === 0 ? 'garbage' : '{"type":1}');
    assert.deepEqual(await bad.closed(), { code: 1008, reason: 'too many bad frames' });
    assert.equal(bad.of('error').length, 10);
    const { message } = await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data: 'still here' });
    assert.deepEqual(await good.nth('message'), { type: 'message', id: message.id, event: 'onMsg', data: 'still here' });
    assert.equal(good.closedWith, undefined);
    await waitFor(() => h!.connector.connectionCount === 1, { timeoutMs: 2000, message: 'the bad connection to be gone' });
  });

  it('answers a binary frame with an error, then closes 1003', async () => {
    h = await start();
    const peer = await h.client('c');
    peer.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
    assert.equal((await peer.nth('error')).code, 'PROTO_BAD_MESSAGE');
    const closed = await peer.closed();
    assert.equal(closed.code, 1003);
    assert.equal(closed.reason, 'binary frames are not accepted');
    await waitFor(() => h!.hub.onlineClients(h!.app.apikey).length === 0, { timeoutMs: 2000, message: 'the client to leave' });
  });

  it('lets ws close an oversized frame with 1009', async () => {
    h = await start({ maxFrameBytes: 1024 });
    const peer = await h.client('c');
    peer.send({ type: 'ping', ref: 'x'.repeat(2000) });
    assert.equal((await peer.closed()).code, 1009);
    await waitFor(() => h!.connector.connectionCount === 0, { timeoutMs: 2000, message: 'the connection to be gone' });
    assert.equal(h.hub.connectionCount, 0);
  });

  it('closes a connection that does not enter in time with a kick and 1008; ping does not extend it', async () => {
    h = await start({ enterTimeoutMs: 300 });
    const idle = await h.connect();
    const pinging = await h.connect();
    const entered = await h.client('c');
    const pinger = setInterval(() => pinging.send({ type: 'ping' }), 50);
    try {
      for (const p of [idle, pinging]) {
        assert.deepEqual(await p.closed(3000), { code: 1008, reason: 'handshake timeout' });
        assert.deepEqual(p.of('kick'), [{ type: 'kick', reason: 'handshake timeout' }]);
      }
    } finally {
      clearInterval(pinger);
    }
    assert.ok(pinging.of('pong').length > 0);
    await entered.sync();
    assert.equal(entered.closedWith, undefined);
  });

  it('kicks the first connection with "replaced" when the same clientId enters again', async () => {
    h = await start();
    const manager = await h.manager();
    const first = await h.client('same');
    const second = await h.client('same');
    assert.deepEqual(await first.nth('kick'), { type: 'kick', reason: 'replaced' });
    assert.deepEqual(await first.closed(), { code: 1000, reason: 'replaced' });
    const { message } = await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data: 2 });
    assert.equal((await second.nth('message')).id, message.id);
    assert.equal(first.of('message').length, 0);
    await manager.sync();
    // Managers see two adds and no leave: the client never went offline.
    assert.deepEqual(manager.of('event').map((e) => e.event), ['onAdd', 'onAdd']);
    assert.equal(h.hub.onlineClients(h.app.apikey).length, 1);
  });

  it('pings every connection from one interval and drops the one that stops answering', async () => {
    h = await start({ pingIntervalMs: 100 });
    const alive = await h.client('alive');
    const silent = await h.connect('/ws', { autoPong: false });
    silent.send({ type: 'enter', apikey: h.app.apikey, clientId: 'silent' });
    await silent.nth('entered');
    let pings = 0;
    alive.ws.on('ping', () => pings++);
    const closed = await silent.closed(3000);
    assert.equal(closed.code, 1006); // terminated: no close frame
    assert.ok(pings >= 1, 'the live client was pinged');
    await alive.sync();
    assert.equal(alive.closedWith, undefined);
    assert.deepEqual(h.hub.onlineClients(h.app.apikey).map((c) => c.clientId), ['alive']);
  });

  it('terminates a slow consumer, and others keep receiving', async () => {
    h = await start({}, 256 * 1024);
    const slow = await h.client('slow');
    const fast = await h.client('fast');
    // A reader that stops reading: the kernel buffers fill, then ws's own buffer grows.
    slow.ws.pause();
    const data = 'x'.repeat(64 * 1024);
    const ids: number[] = [];
    for (let i = 0; i < 400 && h.hub.onlineClients(h.app.apikey).length === 2; i++) {
      ids.push((await h.hub.publish({ apikey: h.app.apikey, target: ALL, event: 'onMsg', data })).message.id);
      // Let the event loop turn, so that the fast client reads what it is sent.
      await nextTurn();
    }
    await waitFor(() => h!.hub.onlineClients(h!.app.apikey).length === 1, { timeoutMs: 3000, message: 'the slow client to be dropped' });
    slow.ws.resume();
    assert.equal((await slow.closed()).code, 1006);
    assert.equal(slow.of('kick').length, 0);
    await fast.sync();
    assert.equal(fast.closedWith, undefined);
    // The fast reader got every message, in order.
    assert.deepEqual(fast.of('message').map((m) => m.id), ids);
  });

  it('calls hub.leave exactly once per connection, whoever closes', async () => {
    h = await start();
    const leave = mock.method(h.hub, 'leave');
    const byClient = await h.client('a');
    const byKick = await h.client('b');
    const bad = await h.connect();
    byClient.ws.close();
    await byClient.closed();
    h.hub.dropApp(h.app.apikey);
    await byKick.closed();
    bad.ws.send(Buffer.from([1]), { binary: true });
    await bad.closed();
    await waitFor(() => h!.connector.connectionCount === 0, { timeoutMs: 2000, message: 'all connections gone' });
    const ids = leave.mock.calls.map((c) => (c.arguments[0] as Connection).id);
    assert.equal(ids.length, 3);
    assert.equal(new Set(ids).size, 3);
    assert.deepEqual(byKick.of('kick'), [{ type: 'kick', reason: 'app deleted' }]);
    assert.equal(byKick.closedWith?.code, 1000);
  });

  it('close() kicks every connection with the reason and waits until they are gone', async () => {
    h = await start();
    const a = await h.client('a');
    const m = await h.manager();
    await h.connector.close('server shutting down');
    assert.equal(h.connector.connectionCount, 0);
    assert.equal(h.hub.connectionCount, 0);
    for (const p of [a, m]) {
      assert.deepEqual(await p.nth('kick'), { type: 'kick', reason: 'server shutting down' });
      assert.deepEqual(await p.closed(), { code: 1000, reason: 'server shutting down' });
    }
    // New upgrades are refused.
    const late = new WebSocket(`${h.url}/ws`);
    late.on('error', () => undefined);
    const [, res] = (await once(late, 'unexpected-response', 2000)) as [unknown, { statusCode: number }];
    assert.equal(res.statusCode, 503);
    late.terminate();
  });

  it('close() drops a peer that never answers the close frame after the grace period', async () => {
    h = await start({ closeGraceMs: 200 });
    const deaf = await h.client('deaf');
    deaf.ws.pause(); // reads nothing more: the close frame goes unanswered
    const started = Date.now();
    await h.connector.close();
    assert.equal(h.connector.connectionCount, 0);
    assert.ok(Date.now() - started < 2000, `close() took ${Date.now() - started} ms`);
    deaf.ws.resume();
    await deaf.closed();
  });

  it('answers upgrades on other paths with 404', async () => {
    h = await start();
    const ws = new WebSocket(`${h.url}/elsewhere`);
    ws.on('error', () => undefined);
    const [, res] = (await once(ws, 'unexpected-response', 2000)) as [unknown, { statusCode: number }];
    assert.equal(res.statusCode, 404);
    ws.terminate();
    // A query string does not change the path.
    const ok = await h.connect('/ws?v=1');
    await ok.sync();
  });
});
