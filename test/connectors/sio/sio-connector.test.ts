// The socket.io connector over loopback with real clients: socket.io-client 2.x (what
// Pomelo 2.x sio clients are) speaking the Pomelo framing, and socket.io-client 4 on the
// native API (docs/conventions.md §8).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { WebSocket } from 'ws';
import { io as ioV4, type Socket as V4Socket } from 'socket.io-client';
import { SioConnector } from '../../../src/connectors/sio/sio-connector.js';
import { NativeSioEncoder, PomeloSioEncoder } from '../../../src/connectors/sio/sio-encoders.js';
import { Hub, type ClientEnter } from '../../../src/hub/hub.js';
import { LocalBus } from '../../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../../src/store/sqlite-storage.js';
import { createLogger } from '../../../src/log.js';
import { asClientId } from '../../../src/ids.js';
import type { App, Storage, Target } from '../../../src/store/store.js';
import { waitFor, withTimeout } from '../../fixtures/wait.js';

// ------------------------------------------------------------------ test clients

/** The part of a socket.io-client 2.x socket the tests use (the package has no types). */
interface V2Socket {
  readonly connected: boolean;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  emit(event: string, ...args: unknown[]): unknown;
  close(): unknown;
}
type V2Connect = (url: string, opts: Readonly<Record<string, unknown>>) => V2Socket;

const require = createRequire(import.meta.url);
const ioV2 = require('socket.io-client-v2') as V2Connect;

interface Received {
  readonly event: string;
  readonly args: readonly unknown[];
}

/** Everything a client received, with waiting by predicate and deadline. */
class Inbox {
  readonly items: Received[] = [];
  readonly #waiters = new Set<{ readonly pred: (r: Received) => boolean; readonly resolve: (r: Received) => void }>();

  add(event: string, args: readonly unknown[]): void {
    const item = { event, args };
    this.items.push(item);
    for (const w of [...this.#waiters]) {
      if (w.pred(item)) {
        this.#waiters.delete(w);
        w.resolve(item);
      }
    }
  }

  /** The first item, received already or later, that matches. */
  async waitFor(pred: (r: Received) => boolean, what: string, timeoutMs = 3000): Promise<Received> {
    const found = this.items.find(pred);
    if (found) return found;
    let waiter: { readonly pred: (r: Received) => boolean; readonly resolve: (r: Received) => void } | undefined;
    try {
      return await withTimeout(
        new Promise<Received>((resolve) => {
          waiter = { pred, resolve };
          this.#waiters.add(waiter);
        }),
        timeoutMs,
        what,
      );
    } finally {
      if (waiter) this.#waiters.delete(waiter);
    }
  }
}

/** The JSON object inside a Pomelo-framed `message` string. */
function pomeloJson(r: Received): Record<string, unknown> {
  const raw = r.args[0];
  if (typeof raw !== 'string') throw new Error(`"message" carried a ${typeof raw}, not a string`);
  return JSON.parse(raw) as Record<string, unknown>;
}

interface SioClient {
  readonly inbox: Inbox;
  /** The reason of the disconnect, once disconnected. */
  readonly disconnectReason: string | undefined;
  close(): void;
}

/** The client side of Pomelo's sio framing (docs/pomelo-protocol.md §11.3), as the seed's Android app builds it. */
function pomeloFrame(id: number, route: string, body: unknown): string {
  const header = String.fromCharCode((id >>> 24) & 0xff, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff, route.length);
  return header + route + JSON.stringify(body);
}

/** socket.io-client 2.5 (EIO3) with the Pomelo sioconnector framing. */
class PomeloV2Client implements SioClient {
  readonly socket: V2Socket;
  readonly inbox = new Inbox();
  disconnectReason: string | undefined;
  #nextId = 1;

  private constructor(socket: V2Socket) {
    this.socket = socket;
    socket.on('message', (...args: unknown[]) => this.inbox.add('message', args));
    socket.on('disconnect', (reason: unknown) => {
      this.disconnectReason = String(reason);
    });
  }

  static async connect(url: string, transports: readonly string[] = ['websocket']): Promise<PomeloV2Client> {
    const socket = ioV2(url, { path: '/socket.io', transports, forceNew: true, reconnection: false, timeout: 3000 });
    const client = new PomeloV2Client(socket);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.on('connect', () => resolve());
        socket.on('connect_error', (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))));
      }),
      3000,
      'socket.io v2 connect',
    );
    return client;
  }

  /** Sends a request; resolves with the raw answer string and its parsed body. */
  async request(route: string, body: unknown): Promise<{ readonly id: number; readonly raw: string; readonly body: Record<string, unknown> }> {
    const id = this.#nextId++;
    this.socket.emit('message', pomeloFrame(id, route, body));
    const got = await this.inbox.waitFor((r) => typeof r.args[0] === 'string' && pomeloJson(r)['id'] === id, `answer to ${route} #${id}`);
    const raw = got.args[0] as string;
    return { id, raw, body: pomeloJson(got)['body'] as Record<string, unknown> };
  }

  notify(route: string, body: unknown): void {
    this.socket.emit('message', pomeloFrame(0, route, body));
  }

  /** The next push (or kick) on `route` that matches. */
  async push(route: string, pred: (json: Record<string, unknown>) => boolean = () => true): Promise<{ raw: string; json: Record<string, unknown> }> {
    const got = await this.inbox.waitFor(
      (r) => typeof r.args[0] === 'string' && pomeloJson(r)['route'] === route && pred(pomeloJson(r)),
      `push ${route}`,
    );
    return { raw: got.args[0] as string, json: pomeloJson(got) };
  }

  close(): void {
    this.socket.close();
  }
}

/** socket.io-client 4 on the native API. */
class NativeV4Client implements SioClient {
  readonly socket: V4Socket;
  readonly inbox = new Inbox();
  disconnectReason: string | undefined;

  private constructor(socket: V4Socket) {
    this.socket = socket;
    socket.onAny((event: string, ...args: unknown[]) => this.inbox.add(event, args));
    socket.on('disconnect', (reason) => {
      this.disconnectReason = reason;
    });
  }

  static async connect(url: string, transports: readonly string[] = ['websocket']): Promise<NativeV4Client> {
    const socket = ioV4(url, { path: '/socket.io', transports: [...transports], forceNew: true, reconnection: false, timeout: 3000 });
    const client = new NativeV4Client(socket);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.on('connect', () => resolve());
        socket.on('connect_error', (err) => reject(err));
      }),
      3000,
      'socket.io v4 connect',
    );
    return client;
  }

  /** Emits with an ack callback and resolves with what the server answered. */
  async call(event: string, arg?: unknown): Promise<Record<string, unknown>> {
    const answer: unknown = await this.socket.timeout(3000).emitWithAck(event, arg);
    return answer as Record<string, unknown>;
  }

  async event(event: string, pred: (payload: unknown) => boolean = () => true): Promise<Received> {
    return this.inbox.waitFor((r) => r.event === event && pred(r.args[0]), `event ${event}`);
  }

  close(): void {
    this.socket.close();
  }
}

// ------------------------------------------------------------------ the tests

const CHINESE = { title: '通知', msg: '中文' };
const SEED_ENTER = 'sio-connector.entryHandler.enter';

interface Setup {
  readonly storage: Storage;
  readonly hub: Hub;
  readonly app: App;
  readonly connector: SioConnector;
  readonly url: string;
  /** Opens clients that `close()` closes. */
  v2(transports?: readonly string[]): Promise<PomeloV2Client>;
  v4(transports?: readonly string[]): Promise<NativeV4Client>;
  close(): Promise<void>;
}

async function setup(opts: { maxBufferedBytes?: number; enterTimeoutMs?: number; maxPayloadBytes?: number } = {}): Promise<Setup> {
  const storage = openSqliteStorage(':memory:');
  const log = createLogger((process.env['SHADDOCK_TEST_LOG'] as 'debug' | undefined) ?? 'silent');
  const hub = new Hub({ storage, bus: new LocalBus(), logger: log, maxBufferedBytes: opts.maxBufferedBytes ?? 1 << 20 });
  const app = await storage.apps.createApp({ name: 'sio' });
  await storage.admins.setAdminPassword('admin', 'admin-password');
  const connector = new SioConnector({
    hub,
    log,
    host: '127.0.0.1',
    port: 0,
    maxPayloadBytes: opts.maxPayloadBytes ?? 64 * 1024,
    ...(opts.enterTimeoutMs !== undefined ? { enterTimeoutMs: opts.enterTimeoutMs } : {}),
  });
  const port = await connector.listen();
  const url = `http://127.0.0.1:${port}`;
  const open: SioClient[] = [];
  return {
    storage,
    hub,
    app,
    connector,
    url,
    async v2(transports) {
      const c = await PomeloV2Client.connect(url, transports);
      open.push(c);
      return c;
    },
    async v4(transports) {
      const c = await NativeV4Client.connect(url, transports);
      open.push(c);
      return c;
    },
    async close() {
      for (const c of open) c.close();
      await connector.close();
      await hub.close();
      await storage.close();
    },
  };
}

const to = (...clientIds: string[]): Target => ({ all: false, clientIds: clientIds.map(asClientId), tags: [] });

async function disconnected(c: SioClient, what: string): Promise<string> {
  await waitFor(() => c.disconnectReason !== undefined, { timeoutMs: 3000, message: `${what} to be disconnected` });
  return c.disconnectReason ?? '';
}

describe('sio connector: Pomelo framing with socket.io-client 2 (the seed Android app)', () => {
  let t: Setup;
  before(async () => {
    t = await setup();
  });
  after(async () => {
    await t.close();
  });

  async function manager(): Promise<PomeloV2Client> {
    const m = await t.v2();
    const res = await m.request(SEED_ENTER, { apiKey: t.app.apikey, userId: 'ignored', role: 'server', password: t.app.secret });
    assert.deepEqual(res.body, { code: 200, msg: 'push server is ok.', users: res.body['users'] });
    return m;
  }

  async function device(clientId: string, transports?: readonly string[]): Promise<PomeloV2Client> {
    const d = await t.v2(transports);
    const res = await d.request(SEED_ENTER, { clientId, role: 'client', apiKey: t.app.apikey, timestamp: Date.now() });
    // The exact string the seed's Android app parses.
    assert.equal(res.raw, `{"id":${res.id},"body":{"code":200,"msg":"add ok"}}`);
    return d;
  }

  it('enter, onAdd, pushAll, pushByClientId, HTTP-path publish, custom events, onLeave', async () => {
    const mgr = await manager();
    const phone1 = await device('00:11:22:33:44:55');
    const added = await mgr.push('onAdd', (j) => JSON.stringify(j).includes('00:11:22:33:44:55'));
    assert.equal(added.raw, '{"route":"onAdd","body":{"msg":"add ok","users":["00:11:22:33:44:55"]}}');
    const phone2 = await device('phone-2');

    // pushAll: the seed console's request, lower-case apikey, msg an object.
    const got1 = phone1.push('onMsg');
    const got2 = phone2.push('onMsg');
    const res = await mgr.request('pushserver.pushHandler.pushAll', { msg: CHINESE, apikey: t.app.apikey });
    assert.equal(res.body['code'], 200);
    assert.equal(res.body['msg'], 'push is ok.');
    const id = res.body['id'] as number;
    for (const got of [await got1, await got2]) {
      assert.equal(got.raw, `{"route":"onMsg","body":{"msg":{"title":"通知","msg":"中文"},"id":${id}}}`);
    }

    // pushByClientId: only that client; answered (the reference hung).
    const only1 = phone1.push('onMsg', (j) => JSON.stringify(j).includes('for one'));
    const byId = await mgr.request('pushserver.pushHandler.pushByClientId', {
      msg: { title: 't', msg: 'for one' },
      apikey: t.app.apikey,
      clientId: '00:11:22:33:44:55',
    });
    assert.equal(byId.body['code'], 200);
    await only1;

    // The HTTP API's path: hub.publish. Custom event names become the route.
    const viaHub = phone2.push('news');
    const published = await t.hub.publish({ apikey: t.app.apikey, target: to('phone-2'), event: 'news', data: { title: 'h', msg: 'from http 中文' } });
    assert.deepEqual((await viaHub).json, { route: 'news', body: { msg: { title: 'h', msg: 'from http 中文' }, id: published.message.id } });
    const phone2Msgs = phone2.inbox.items.filter((r) => pomeloJson(r)['route'] === 'onMsg').length;
    assert.equal(phone2Msgs, 1, 'phone-2 got pushAll but not the push for phone-1');

    // A client that disconnects is reported gone.
    const left = mgr.push('onLeave', (j) => (j['body'] as { clientId?: string }).clientId === 'phone-2');
    phone2.close();
    assert.deepEqual((await left).json, { route: 'onLeave', body: { clientId: 'phone-2', users: ['00:11:22:33:44:55'] } });
  });

  it('a second connection with the same clientId kicks the first with "replaced"', async () => {
    const first = await device('twin');
    const kicked = first.push('onKick');
    const second = await device('twin');
    assert.equal((await kicked).raw, '{"route":"onKick","reason":"replaced"}');
    assert.equal(await disconnected(first, 'the replaced connection'), 'io server disconnect');
    const got = second.push('onMsg', (j) => JSON.stringify(j).includes('to the twin'));
    await t.hub.publish({ apikey: t.app.apikey, target: to('twin'), event: 'onMsg', data: 'to the twin' });
    await got;
  });

  it('works over the polling transport (socket.io-client-java 1.x starts there)', async () => {
    const d = await device('poller', ['polling']);
    const got = d.push('onMsg');
    const r = await t.hub.publish({ apikey: t.app.apikey, target: to('poller'), event: 'onMsg', data: CHINESE });
    assert.deepEqual((await got).json, { route: 'onMsg', body: { msg: CHINESE, id: r.message.id } });
  });

  it('acks through the shaddock.client.ack notify', async () => {
    const acks: number[] = [];
    const realAck = t.hub.ack.bind(t.hub);
    t.hub.ack = (conn, id) => {
      acks.push(id);
      realAck(conn, id);
    };
    try {
      const d = await device('acker');
      const got = d.push('onMsg');
      const r = await t.hub.publish({ apikey: t.app.apikey, target: to('acker'), event: 'onMsg', data: 'ack me' });
      await got;
      d.notify('shaddock.client.ack', { id: r.message.id });
      await waitFor(() => acks.includes(r.message.id), { timeoutMs: 3000, message: 'hub.ack from the Pomelo notify' });
    } finally {
      t.hub.ack = realAck;
    }
  });

  it('malformed strings: answered when the id is readable, kicked when not; others keep receiving', async () => {
    const bystander = await device('bystander');
    const bad = await t.v2();

    // Route length 50 runs past the end: the id (7) is readable, so it is answered.
    bad.socket.emit('message', '\u0000\u0000\u0000\u0007\u0032abc');
    const truncated = await bad.inbox.waitFor((r) => pomeloJson(r)['id'] === 7, 'answer to the truncated request');
    assert.deepEqual(pomeloJson(truncated)['body'], {
      code: 500,
      msg: 'bad request: route length 50 runs past the end of the 8-character message',
      error: 'PROTO_TRUNCATED',
    });
    // Not JSON after the route.
    bad.socket.emit('message', `${pomeloFrame(8, SEED_ENTER, {}).slice(0, -2)}{nope`);
    const badJson = await bad.inbox.waitFor((r) => pomeloJson(r)['id'] === 8, 'answer to the bad-JSON request');
    assert.equal((pomeloJson(badJson)['body'] as { error: string }).error, 'PROTO_BAD_JSON');
    // The connection still works.
    const ok = await bad.request(SEED_ENTER, { clientId: 'was-bad', role: 'client', apiKey: t.app.apikey });
    assert.equal(ok.body['code'], 200);
    // Too short to hold an id: kicked with the reason, then disconnected.
    const kicked = bad.push('onKick');
    bad.socket.emit('message', 'ab');
    assert.match(String((await kicked).json['reason']), /^PROTO_TRUNCATED: /);
    assert.equal(await disconnected(bad, 'the offender'), 'io server disconnect');

    // A notify (id 0) cannot be answered: a bad one is kicked too.
    const badNotify = await t.v2();
    const kicked2 = badNotify.push('onKick');
    badNotify.socket.emit('message', '\u0000\u0000\u0000\u0000\u0001a{');
    assert.match(String((await kicked2).json['reason']), /^PROTO_BAD_JSON: /);

    // Not a string.
    for (const args of [[{ a: 1 }], [], ['\u0000\u0000\u0000\u0001\u0000{}', 'extra'], [12345]]) {
      const c = await t.v2();
      const k = c.push('onKick');
      c.socket.emit('message', ...args);
      assert.match(String((await k).json['reason']), /^PROTO_BAD_MESSAGE: a "message" event carries one string/);
      await disconnected(c, 'the non-string sender');
    }

    const got = bystander.push('onMsg');
    await t.hub.publish({ apikey: t.app.apikey, target: to('bystander'), event: 'onMsg', data: 'still here' });
    assert.equal(((await got).json['body'] as { msg: string }).msg, 'still here');
  });

  it('unknown apikey, wrong password, push before enter, native events: clear 500s, never the password', async () => {
    const c = await t.v2();
    const unknown = await c.request(SEED_ENTER, { clientId: 'x', role: 'client', apiKey: 'nope' });
    assert.deepEqual(unknown.body, { code: 500, msg: 'unknown apikey "nope"', error: 'APP_UNKNOWN' });
    const wrong = await c.request(SEED_ENTER, { apiKey: t.app.apikey, role: 'server', userId: 'admin', password: 'hunter2-wrong' });
    assert.equal(wrong.body['error'], 'AUTH_FAILED');
    assert.ok(!wrong.raw.includes('hunter2'));
    const early = await c.request('pushserver.pushHandler.pushAll', { apikey: t.app.apikey, msg: 'x' });
    assert.equal(early.body['code'], 500);
    assert.equal(early.body['error'], 'NOT_ENTERED');
    // A Pomelo-framed connection cannot switch to the native API.
    const answer = await new Promise<unknown>((resolve) => c.socket.emit('enter', { apikey: t.app.apikey, clientId: 'x' }, resolve));
    assert.match(String((answer as { msg: string }).msg), /Pomelo framing/);
    assert.equal(c.disconnectReason, undefined, 'refusals do not close the connection');
  });
});

describe('sio connector: native API with socket.io-client 4', () => {
  let t: Setup;
  before(async () => {
    t = await setup();
  });
  after(async () => {
    await t.close();
  });

  async function client(clientId: string, extra: Record<string, unknown> = {}): Promise<NativeV4Client> {
    const c = await t.v4();
    assert.deepEqual(await c.call('enter', { apikey: t.app.apikey, clientId, ...extra }), { code: 200, msg: 'add ok' });
    return c;
  }

  async function manager(): Promise<{ c: NativeV4Client; users: unknown }> {
    const c = await t.v4();
    const res = await c.call('enter', { role: 'manager', apikey: t.app.apikey, secret: t.app.secret });
    assert.equal(res['code'], 200);
    return { c, users: res['users'] };
  }

  it('enter, onAdd/onLeave to managers, push with ack callback and ack event, subscribe, manager push', async () => {
    const acks: number[] = [];
    const enters: ClientEnter[] = [];
    const tagCalls: string[][] = [];
    const realAck = t.hub.ack.bind(t.hub);
    const realEnter = t.hub.enterClient.bind(t.hub);
    const realSubscribe = t.hub.subscribeTags.bind(t.hub);
    t.hub.ack = (conn, id) => {
      acks.push(id);
      realAck(conn, id);
    };
    t.hub.enterClient = (conn, req) => {
      enters.push(req);
      return realEnter(conn, req);
    };
    t.hub.subscribeTags = (conn, tags) => {
      tagCalls.push([...tags]);
      return realSubscribe(conn, tags);
    };
    try {
      const { c: mgr, users } = await manager();
      assert.deepEqual(users, []);
      const web1 = await client('web-1', { lastId: 0, tags: ['news'], token: undefined });
      assert.equal(enters.at(-1)?.resumeAfter, 0);
      assert.deepEqual(enters.at(-1)?.tags, ['news']);
      const [onAdd] = (await mgr.event('onAdd', (b) => JSON.stringify(b).includes('web-1'))).args;
      assert.deepEqual(onAdd, { msg: 'add ok', users: ['web-1'] });
      const web2 = await client('web-2');
      assert.equal(enters.at(-1)?.resumeAfter, 'stored', 'no lastId: resume from the stored position');

      // A manager pushes to one client; the push carries {id, data} and an ack callback.
      const pushed = await mgr.call('push', { data: { hello: '世界' }, to: { clientIds: ['web-1'] } });
      assert.equal(pushed['code'], 200);
      assert.equal(pushed['targeted'], 1);
      const id = pushed['id'] as number;
      const got = await web1.event('onMsg');
      assert.deepEqual(got.args[0], { id, data: { hello: '世界' } });
      const ackFn = got.args[1];
      assert.equal(typeof ackFn, 'function', 'the push has an ack callback');
      (ackFn as () => void)();
      await waitFor(() => acks.includes(id), { timeoutMs: 3000, message: 'hub.ack from the callback' });

      // Or ack with an event.
      const r2 = await t.hub.publish({ apikey: t.app.apikey, target: to('web-1'), event: 'onMsg', data: 2 });
      await web1.event('onMsg', (p) => (p as { id: number }).id === r2.message.id);
      assert.deepEqual(await web1.call('ack', { id: r2.message.id }), { code: 200 });
      assert.ok(acks.includes(r2.message.id));

      // Tags.
      assert.deepEqual(await web2.call('subscribe', { tags: ['sports', 'weather'] }), { code: 200 });
      assert.deepEqual(tagCalls.at(-1), ['sports', 'weather']);
      assert.deepEqual(await web2.call('unsubscribe', { tags: ['weather'] }), { code: 200 });
      const sports = await mgr.call('push', { event: 'score', data: '2:1', to: { tags: ['sports'] } });
      assert.equal(sports['targeted'], 1);
      assert.deepEqual((await web2.event('score')).args[0], { id: sports['id'], data: '2:1' });

      // Everyone, under a custom event; a reserved socket.io name arrives as "message".
      const everyone = await mgr.call('push', { event: 'news', data: 'all' });
      assert.equal(everyone['targeted'], 2);
      await web1.event('news', (p) => (p as { id: number }).id === everyone['id']);
      await web2.event('news', (p) => (p as { id: number }).id === everyone['id']);
      const reserved = await t.hub.publish({ apikey: t.app.apikey, target: to('web-2'), event: 'disconnect', data: 'odd' });
      assert.deepEqual((await web2.event('message')).args[0], { id: reserved.message.id, data: 'odd', event: 'disconnect' });
      assert.equal(web2.disconnectReason, undefined);

      // Leaving is reported.
      web1.close();
      const [onLeave] = (await mgr.event('onLeave', (b) => (b as { clientId: string }).clientId === 'web-1')).args;
      assert.deepEqual(onLeave, { clientId: 'web-1', users: ['web-2'] });
    } finally {
      t.hub.ack = realAck;
      t.hub.enterClient = realEnter;
      t.hub.subscribeTags = realSubscribe;
    }
  });

  it('resume: without lastId, what was pushed after the last ack; with lastId, everything after it, in order', async () => {
    const first = await client('resumer');
    const r1 = await t.hub.publish({ apikey: t.app.apikey, target: to('resumer'), event: 'onMsg', data: 'one' });
    await first.event('onMsg', (p) => (p as { id: number }).id === r1.message.id);
    assert.deepEqual(await first.call('ack', { id: r1.message.id }), { code: 200 });
    first.close();
    await waitFor(() => t.hub.onlineClients(t.app.apikey).every((c) => c.clientId !== 'resumer'), { timeoutMs: 3000, message: 'resumer to leave' });
    const r2 = await t.hub.publish({ apikey: t.app.apikey, target: to('resumer'), event: 'onMsg', data: 'two' });
    const r3 = await t.hub.publish({ apikey: t.app.apikey, target: to('resumer'), event: 'onMsg', data: 'three' });
    const ids = (c: NativeV4Client): number[] => c.inbox.items.filter((r) => r.event === 'onMsg').map((r) => (r.args[0] as { id: number }).id);

    const stored = await client('resumer');
    await stored.event('onMsg', (p) => (p as { id: number }).id === r3.message.id);
    assert.deepEqual(ids(stored), [r2.message.id, r3.message.id], 'store and forward after the last ack');

    const fromZero = await client('resumer', { lastId: 0 });
    await fromZero.event('onMsg', (p) => (p as { id: number }).id === r3.message.id);
    assert.deepEqual(ids(fromZero), [r1.message.id, r2.message.id, r3.message.id], 'everything after lastId 0');
    assert.deepEqual((await stored.event('kick')).args[0], { reason: 'replaced' });
  });

  it('an admin may enter as a manager; managers and clients of both APIs see each other', async () => {
    const admin = await t.v4();
    const res = await admin.call('enter', { role: 'manager', apikey: t.app.apikey, userId: 'admin', password: 'admin-password' });
    assert.equal(res['code'], 200);
    const pomeloMgr = await t.v2();
    assert.equal((await pomeloMgr.request(SEED_ENTER, { apiKey: t.app.apikey, role: 'server', password: t.app.secret })).body['code'], 200);
    const phone = await t.v2();
    await phone.request(SEED_ENTER, { clientId: 'mixed-phone', role: 'client', apiKey: t.app.apikey });
    await admin.event('onAdd', (b) => JSON.stringify(b).includes('mixed-phone'));
    const web = await client('mixed-web');
    await pomeloMgr.push('onAdd', (j) => JSON.stringify(j).includes('mixed-web'));

    // One pushAll from the Pomelo manager reaches both formats, each encoded once.
    let pomeloEncodes = 0;
    let nativeEncodes = 0;
    const realPomelo = PomeloSioEncoder.prototype.encodeMessage;
    const realNative = NativeSioEncoder.prototype.encodeMessage;
    PomeloSioEncoder.prototype.encodeMessage = function (this: PomeloSioEncoder, m) {
      pomeloEncodes++;
      return realPomelo.call(this, m);
    };
    NativeSioEncoder.prototype.encodeMessage = function (this: NativeSioEncoder, m) {
      nativeEncodes++;
      return realNative.call(this, m);
    };
    try {
      const extraPhone = await t.v2();
      await extraPhone.request(SEED_ENTER, { clientId: 'mixed-phone-2', role: 'client', apiKey: t.app.apikey });
      const gotPhone = phone.push('onMsg');
      const gotWeb = web.event('onMsg');
      const all = await pomeloMgr.request('pushserver.pushHandler.pushAll', { apikey: t.app.apikey, msg: CHINESE });
      const id = all.body['id'];
      assert.deepEqual((await gotPhone).json, { route: 'onMsg', body: { msg: CHINESE, id } });
      assert.deepEqual((await gotWeb).args[0], { id, data: CHINESE });
      await extraPhone.push('onMsg');
      assert.equal(pomeloEncodes, 1, 'one Pomelo encoding for every Pomelo socket');
      assert.equal(nativeEncodes, 1, 'one native encoding for every native socket');
    } finally {
      PomeloSioEncoder.prototype.encodeMessage = realPomelo;
      NativeSioEncoder.prototype.encodeMessage = realNative;
    }
  });

  it('refusals: before enter, bad arguments, unknown apikey, wrong secret, clients pushing, unknown events', async () => {
    const c = await t.v4();
    const expectError = async (event: string, arg: unknown, code: string, msg: RegExp): Promise<void> => {
      const res = await c.call(event, arg);
      assert.equal(res['code'], 500, `${event}: ${JSON.stringify(res)}`);
      assert.equal(res['error'], code, `${event}: ${JSON.stringify(res)}`);
      assert.match(String(res['msg']), msg);
    };
    await expectError('push', { data: 1 }, 'NOT_ENTERED', /enter as a manager/);
    await expectError('subscribe', { tags: ['a'] }, 'NOT_ENTERED', /enter as a client/);
    await expectError('ack', { id: 1 }, 'NOT_ENTERED', /enter as a client/);
    await expectError('ack', 'one', 'BAD_REQUEST', /ack takes \{id/);
    await expectError('enter', 'x', 'BAD_REQUEST', /enter takes/);
    await expectError('enter', { apikey: t.app.apikey }, 'BAD_REQUEST', /missing "clientId"/);
    await expectError('enter', { apikey: t.app.apikey, clientId: 'a', lastId: -1 }, 'BAD_REQUEST', /lastId/);
    await expectError('enter', { apikey: 'nope', clientId: 'a' }, 'APP_UNKNOWN', /unknown apikey "nope"/);
    await expectError('enter', { role: 'manager', apikey: t.app.apikey, secret: 'wrong-secret' }, 'AUTH_FAILED', /wrong app secret/);
    await expectError('hello', {}, 'BAD_REQUEST', /unknown event "hello"/);
    // Without a callback the refusal comes as an "error" event.
    c.socket.emit('hello', {});
    assert.deepEqual((await c.event('error')).args[0], {
      code: 500,
      msg: 'unknown event "hello": send enter, ack, subscribe, unsubscribe or push (or Pomelo-framed "message")',
      error: 'BAD_REQUEST',
    });
    // A client-sent "error" event does not take the server down.
    c.socket.emit('error', 'boom');
    await c.inbox.waitFor((r) => r.event === 'error' && JSON.stringify(r.args[0]).includes('unknown event \\"error\\"'), 'answer to "error"');
    // A native connection cannot switch to the Pomelo framing.
    await expectError('message', pomeloFrame(1, SEED_ENTER, {}), 'BAD_REQUEST', /native API/);

    // Entered as a client: pushing is for managers.
    const d = await client('pusher');
    const res = await d.call('push', { data: 1 });
    assert.equal(res['error'], 'FORBIDDEN');
    const badEvent = await (await manager()).c.call('push', { event: 'a\nb', data: 1 });
    // The push rules of every way in (src/hub/push-rules.ts).
    assert.equal(badEvent['error'], 'PUSH_INVALID');
    assert.match(String(badEvent['msg']), /^event: .*control characters/);
    assert.equal(c.disconnectReason, undefined, 'refusals do not close the connection');
  });

  it('more than 16 events before entering closes the socket with a reason', async () => {
    const c = await t.v4();
    for (let i = 0; i < 17; i++) c.socket.emit('ack', { id: 1 });
    const [kick] = (await c.event('kick')).args;
    assert.match(String((kick as { reason: string }).reason), /more than 16 events before entering/);
    assert.equal(await disconnected(c, 'the chatty socket'), 'io server disconnect');
  });
});

describe('sio connector: limits, timeouts, shutdown', () => {
  it('an oversized message closes only its sender; the server and other clients go on', async () => {
    const t = await setup({ maxPayloadBytes: 16 * 1024 });
    try {
      const bystander = await t.v4();
      await bystander.call('enter', { apikey: t.app.apikey, clientId: 'bystander' });
      const big = await t.v4();
      big.socket.emit('enter', { apikey: t.app.apikey, clientId: 'x'.repeat(20 * 1024) });
      assert.match(await disconnected(big, 'the v4 sender of 20 KiB'), /transport (close|error)/);
      const bigV2 = await t.v2();
      bigV2.socket.emit('message', pomeloFrame(1, SEED_ENTER, { pad: 'x'.repeat(20 * 1024) }));
      assert.match(await disconnected(bigV2, 'the v2 sender of 20 KiB'), /transport (close|error)/);
      const got = bystander.event('onMsg');
      await t.hub.publish({ apikey: t.app.apikey, target: to('bystander'), event: 'onMsg', data: 'still here' });
      assert.deepEqual(((await got).args[0] as { data: unknown }).data, 'still here');
      assert.equal(t.connector.connectionCount, 1);
    } finally {
      await t.close();
    }
  });

  it('a socket that does not enter in time is kicked ("handshake timeout"), in its API; entered ones stay', async () => {
    const t = await setup({ enterTimeoutMs: 300 });
    try {
      const entered = await t.v4();
      await entered.call('enter', { apikey: t.app.apikey, clientId: 'in-time' });
      const idleNative = await t.v4();
      const idlePomelo = await t.v2();
      const started = Date.now();
      const [kick] = (await idleNative.event('kick')).args;
      assert.deepEqual(kick, { reason: 'handshake timeout' });
      assert.ok(Date.now() - started >= 200, 'not before the deadline');
      // A socket that used no API yet gets the kick in both forms.
      assert.equal((await idlePomelo.push('onKick')).raw, '{"route":"onKick","reason":"handshake timeout"}');
      await disconnected(idleNative, 'the idle v4 socket');
      await disconnected(idlePomelo, 'the idle v2 socket');
      assert.equal(entered.disconnectReason, undefined);
      assert.equal(t.connector.connectionCount, 1);
    } finally {
      await t.close();
    }
  });

  it('a reader that stops reading is closed as a slow consumer; memory stays bounded', async () => {
    const t = await setup({ maxBufferedBytes: 256 * 1024 });
    let ws: WebSocket | undefined;
    try {
      const fast = await t.v4();
      await fast.call('enter', { apikey: t.app.apikey, clientId: 'fast' });
      // A raw EIO4 client, so the test can stop reading at the TCP level.
      ws = new WebSocket(`ws://127.0.0.1:${t.connector.port}/socket.io/?EIO=4&transport=websocket`);
      const frames: string[] = [];
      ws.on('message', (data: Buffer) => frames.push(data.toString()));
      await waitFor(() => frames.some((f) => f.startsWith('0{')), { timeoutMs: 3000, message: 'engine.io open' });
      ws.send('40');
      await waitFor(() => frames.some((f) => f.startsWith('40{')), { timeoutMs: 3000, message: 'socket.io connect' });
      ws.send(`420${JSON.stringify(['enter', { apikey: t.app.apikey, clientId: 'slow' }])}`);
      await waitFor(() => frames.some((f) => f.startsWith('430[{"code":200')), { timeoutMs: 3000, message: 'enter answer' });
      assert.equal(t.connector.connectionCount, 2);
      ws.pause();
      const chunk = 'x'.repeat(64 * 1024);
      let sent = 0;
      for (; sent < 600 && t.connector.connectionCount === 2; sent++) {
        await t.hub.publish({ apikey: t.app.apikey, target: to('slow'), event: 'onMsg', data: chunk });
      }
      assert.equal(t.connector.connectionCount, 1, `the slow reader was closed (after ${sent} pushes of 64 KiB)`);
      assert.equal(t.hub.onlineClients(t.app.apikey).map((c) => c.clientId).join(), 'fast');
      const got = fast.event('onMsg');
      await t.hub.publish({ apikey: t.app.apikey, target: to('fast'), event: 'onMsg', data: 'unaffected' });
      await got;
    } finally {
      ws?.terminate();
      await t.close();
    }
  });

  it('close() kicks every client with "server shutting down", polling ones included', async () => {
    const t = await setup();
    const native = await t.v4();
    await native.call('enter', { apikey: t.app.apikey, clientId: 'n' });
    const ws2 = await t.v2();
    await ws2.request(SEED_ENTER, { clientId: 'p', role: 'client', apiKey: t.app.apikey });
    const polling = await t.v2(['polling']);
    await polling.request(SEED_ENTER, { clientId: 'q', role: 'client', apiKey: t.app.apikey });
    const started = Date.now();
    await t.connector.close();
    assert.ok(Date.now() - started < 2500, `close took ${Date.now() - started} ms`);
    await t.close();
    assert.deepEqual((await native.event('kick')).args[0], { reason: 'server shutting down' });
    assert.equal((await ws2.push('onKick')).raw, '{"route":"onKick","reason":"server shutting down"}');
    assert.equal((await polling.push('onKick')).raw, '{"route":"onKick","reason":"server shutting down"}');
    assert.equal(t.connector.connectionCount, 0);
  });

  it('plain HTTP on the port gets a clear answer', async () => {
    const t = await setup();
    try {
      const res = await fetch(`${t.url}/`);
      assert.equal(res.status, 404);
      assert.match(await res.text(), /socket\.io connector/);
    } finally {
      await t.close();
    }
  });
});
