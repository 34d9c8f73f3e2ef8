// Isolation between apps, and between clients of one app (issue #8 item 2): nothing of
// app A can see, push to, list or kick anything of app B, on any connector or HTTP
// endpoint; a client never receives another client's private messages, cannot
// subscribe to topics that are not its own, and its acks move only its own position.
//
// One table of peers, one per wire protocol, all driven the same way: hybrid TCP,
// hybrid WebSocket, socket.io 2 with the Pomelo framing, socket.io 4 native, MQTT,
// plain WebSocket, SSE. Every negative check has a positive control that proves the
// path works, and "never arrived" is checked after a later fence message of the same
// app did arrive (delivery is in id order), never after a sleep.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { io as ioV4, type Socket as SocketV4 } from 'socket.io-client';
import mqtt, { type MqttClient } from 'mqtt';
import { generate as mqttGenerate } from 'mqtt-packet';
import { WebSocket } from 'ws';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { adminAuth, startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';
import { readSseEvents } from '../fixtures/sse-events.js';

const KINDS = ['hybrid-tcp', 'hybrid-ws', 'sio-v2', 'sio-v4', 'mqtt', 'ws', 'sse'] as const;
type Kind = (typeof KINDS)[number];
/** Connectors where a manager (role server) can enter. */
const MANAGER_KINDS = ['hybrid-tcp', 'hybrid-ws', 'sio-v2', 'sio-v4', 'mqtt', 'ws'] as const satisfies readonly Kind[];
/** SSE has no way back: a message counts as acked once written. */
const ACKING_KINDS = ['hybrid-tcp', 'hybrid-ws', 'sio-v2', 'sio-v4', 'mqtt', 'ws'] as const satisfies readonly Kind[];

interface Msg {
  readonly event: string;
  readonly id: number | undefined;
  readonly data: unknown;
}

type Entered = { readonly ok: true; readonly users: readonly string[] | undefined } | { readonly ok: false; readonly why: string };

interface Peer {
  readonly kind: Kind;
  readonly msgs: Msg[];
  readonly entered: Entered;
  readonly kicked: () => string | undefined;
  /** Sends an ack for `id` the way this protocol does (MQTT: a raw PUBACK for packet id `id`). */
  ack(id: number): void;
  /** A manager's push with the protocol's own push request (`body` as that protocol takes it). */
  push(body: Record<string, unknown>, route?: string): Promise<{ readonly ok: boolean; readonly why: string }>;
  close(): Promise<void>;
}

interface Who {
  readonly apikey: string;
  readonly clientId?: string;
  readonly token?: string;
  /** Makes a manager. */
  readonly secret?: string;
  readonly tags?: readonly string[];
  /** Ack every message as it arrives. @default true */
  readonly autoAck?: boolean;
}

const require = createRequire(import.meta.url);
interface V2Socket {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  emit(event: string, ...args: unknown[]): unknown;
  close(): unknown;
  readonly connected: boolean;
}
const ioV2 = require('socket.io-client-v2') as (url: string, opts: Readonly<Record<string, unknown>>) => V2Socket;

function pomeloFrame(id: number, route: string, body: unknown): string {
  return String.fromCharCode((id >>> 24) & 0xff, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff, route.length) + route + JSON.stringify(body);
}

function asRecord(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
}

/** A Pomelo push body `{msg, id}` or a presence event body. */
function pomeloMsg(route: string, body: unknown): Msg {
  const b = asRecord(body);
  // Presence (onAdd/onLeave) carries `msg: "add ok"` next to `users`: keep the whole body.
  const presence = route === 'onAdd' || route === 'onLeave';
  return { event: route, id: typeof b['id'] === 'number' ? b['id'] : undefined, data: 'msg' in b && !presence ? b['msg'] : body };
}

function answer(res: unknown): { ok: boolean; why: string } {
  const r = asRecord(res);
  return { ok: r['code'] === 200, why: String(r['msg'] ?? r['message'] ?? r['error'] ?? JSON.stringify(res)) };
}

const ENTER = 'connector.entryHandler.enter';

/** A Pomelo-framed enter body; the seed's socket.io connector spells the key `apiKey`. */
function pomeloEnter(who: Who, apikeyField: 'apikey' | 'apiKey'): Record<string, unknown> {
  if (who.secret !== undefined) return { [apikeyField]: who.apikey, role: 'server', password: who.secret };
  return { [apikeyField]: who.apikey, clientId: who.clientId, role: 'client', ...(who.token ? { token: who.token } : {}), ...(who.tags ? { tags: who.tags } : {}) };
}

/** A peer of a Pomelo-framed connector (hybrid, socket.io v2), from its enter answer and its ways to ack, request and close. */
function pomeloPeer(
  kind: Kind,
  msgs: Msg[],
  enterAnswer: unknown,
  kicked: () => string | undefined,
  ack: (id: number) => void,
  request: (route: string, body: unknown) => Promise<unknown>,
  close: () => Promise<void>,
): Peer {
  const a = answer(enterAnswer);
  return {
    kind,
    msgs,
    entered: a.ok ? { ok: true, users: asRecord(enterAnswer)['users'] as string[] | undefined } : { ok: false, why: a.why },
    kicked,
    ack,
    push: async (body, route = 'pushserver.pushHandler.pushAll') => answer(await request(route, body)),
    close,
  };
}

async function openPeer(t: TestServer, kind: Kind, who: Who): Promise<Peer> {
  const msgs: Msg[] = [];
  let kicked: string | undefined;
  const autoAck = who.autoAck ?? true;
  const manager = who.secret !== undefined;
  switch (kind) {
    case 'hybrid-tcp':
    case 'hybrid-ws': {
      const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: kind === 'hybrid-tcp' ? 'tcp' : 'ws', requestTimeoutMs: 10_000 });
      c.on('push', (route: string, body: unknown) => {
        const m = pomeloMsg(route, body);
        msgs.push(m);
        if (autoAck && !manager && m.id !== undefined) c.notify('shaddock.client.ack', { id: m.id });
      });
      c.on('kick', (reason: unknown) => (kicked = String(reason)));
      const res = await c.request(ENTER, pomeloEnter(who, 'apikey'));
      return pomeloPeer(
        kind,
        msgs,
        res,
        () => kicked,
        (id) => c.notify('shaddock.client.ack', { id }),
        (route, body) => c.request(route, body),
        () => c.close(),
      );
    }
    case 'sio-v2': {
      const s = ioV2(`http://127.0.0.1:${t.server.sioPort}`, { path: '/socket.io', transports: ['websocket'], forceNew: true, reconnection: false, timeout: 5000 });
      const pending = new Map<number, (body: unknown) => void>();
      let nextId = 1;
      s.on('message', (raw: unknown) => {
        const j = asRecord(JSON.parse(String(raw)));
        if (typeof j['id'] === 'number') pending.get(j['id'])?.(j['body']);
        else if (j['route'] === 'onKick') kicked = String(j['reason']);
        else if (typeof j['route'] === 'string') {
          const m = pomeloMsg(j['route'], j['body']);
          msgs.push(m);
          if (autoAck && !manager && m.id !== undefined) s.emit('message', pomeloFrame(0, 'shaddock.client.ack', { id: m.id }));
        }
      });
      await new Promise<void>((resolve, reject) => {
        s.on('connect', () => resolve());
        s.on('connect_error', (e: unknown) => reject(e instanceof Error ? e : new Error(String(e))));
      });
      const request = (route: string, body: unknown): Promise<unknown> => {
        const id = nextId++;
        const p = new Promise<unknown>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`sio-v2 ${route}: no answer`)), 10_000);
          pending.set(id, (b) => {
            clearTimeout(timer);
            pending.delete(id);
            resolve(b);
          });
        });
        s.emit('message', pomeloFrame(id, route, body));
        return p;
      };
      const res = await request('sio-connector.entryHandler.enter', pomeloEnter(who, 'apiKey'));
      return pomeloPeer(
        kind,
        msgs,
        res,
        () => kicked,
        (id) => s.emit('message', pomeloFrame(0, 'shaddock.client.ack', { id })),
        request,
        async () => {
          s.close();
        },
      );
    }
    case 'sio-v4': {
      const s: SocketV4 = ioV4(`http://127.0.0.1:${t.server.sioPort}`, { transports: ['websocket'], reconnection: false, forceNew: true });
      s.onAny((event: string, ...args: unknown[]) => {
        if (event === 'kick') {
          kicked = String(asRecord(args[0])['reason']);
          return;
        }
        const p = asRecord(args[0]);
        msgs.push({ event, id: typeof p['id'] === 'number' ? p['id'] : undefined, data: 'data' in p ? p['data'] : args[0] });
        const cb = args[1];
        if (autoAck && typeof cb === 'function') (cb as () => void)();
      });
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', (e: Error) => reject(e));
      });
      const res: unknown = await s
        .timeout(10_000)
        .emitWithAck('enter', manager ? { role: 'manager', apikey: who.apikey, secret: who.secret } : { apikey: who.apikey, clientId: who.clientId, ...(who.token ? { token: who.token } : {}), ...(who.tags ? { tags: who.tags } : {}) });
      const a = answer(res);
      return {
        kind,
        msgs,
        entered: a.ok ? { ok: true, users: asRecord(res)['users'] as string[] | undefined } : { ok: false, why: a.why },
        kicked: () => kicked,
        ack: (id) => s.emit('ack', { id }),
        push: async (body) => answer(await s.timeout(10_000).emitWithAck('push', body)),
        close: async () => {
          if (!s.connected) return;
          const gone = new Promise<void>((r) => s.once('disconnect', () => r()));
          s.disconnect();
          await gone;
        },
      };
    }
    case 'mqtt': {
      const clientId = who.clientId ?? `mgr-${Math.random().toString(36).slice(2)}`;
      const password = who.secret ?? who.token;
      let c: MqttClient;
      try {
        c = await mqtt.connectAsync(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, {
          username: who.apikey,
          clientId,
          ...(password !== undefined ? { password } : {}),
          clean: true,
          protocolVersion: 5,
          reconnectPeriod: 0,
          connectTimeout: 10_000,
        });
      } catch (err) {
        return refusedPeer(kind, err instanceof Error ? err.message : String(err));
      }
      c.on('message', (_topic: string, payload: Buffer) => {
        const m = asRecord(JSON.parse(payload.toString()));
        msgs.push({ event: String(m['event']), id: typeof m['id'] === 'number' ? m['id'] : undefined, data: m['data'] });
      });
      c.on('disconnect', (p: { reasonCode?: number; properties?: { reasonString?: string } }) => (kicked = p.properties?.reasonString ?? String(p.reasonCode)));
      if (manager) await c.subscribeAsync(`apps/${who.apikey}/presence`, { qos: 1 });
      else {
        const topics = [`apps/${who.apikey}/all`, `apps/${who.apikey}/clients/${clientId}`, ...(who.tags ?? []).map((tag) => `apps/${who.apikey}/tags/${tag}`)];
        await c.subscribeAsync(topics, { qos: autoAck ? 1 : 0 });
      }
      return {
        kind,
        msgs,
        entered: { ok: true, users: undefined },
        kicked: () => kicked,
        // A PUBACK is per connection: for a packet id this connection never got, nothing moves.
        ack: (id) => c.stream.write(mqttGenerate({ cmd: 'puback', messageId: id & 0xffff || 1 }, { protocolVersion: 5 })),
        push: async (body) => {
          await c.publishAsync(`apps/${who.apikey}/push`, JSON.stringify(body), { qos: 1 });
          return { ok: true, why: '' };
        },
        close: async () => {
          await c.endAsync(true);
        },
      };
    }
    case 'ws': {
      const ws = new WebSocket(`ws://127.0.0.1:${t.server.httpPort}/ws`);
      const frames: Record<string, unknown>[] = [];
      ws.on('message', (raw: Buffer) => {
        const f = asRecord(JSON.parse(raw.toString()));
        frames.push(f);
        if (f['type'] === 'kick') kicked = String(f['reason']);
        else if (f['type'] === 'message' || f['type'] === 'event') {
          const id = typeof f['id'] === 'number' ? f['id'] : undefined;
          msgs.push({ event: String(f['event']), id, data: f['data'] });
          if (autoAck && id !== undefined) ws.send(JSON.stringify({ type: 'ack', id }));
        }
      });
      await once(ws, 'open');
      let ref = 0;
      const call = async (frame: Record<string, unknown>): Promise<Record<string, unknown>> => {
        const r = ++ref;
        ws.send(JSON.stringify({ ...frame, ref: r }));
        await waitFor(() => frames.some((f) => f['ref'] === r), { timeoutMs: 10_000, message: `ws ${String(frame['type'])} answer` });
        return frames.find((f) => f['ref'] === r)!;
      };
      const res = await call(
        manager ? { type: 'enter', role: 'manager', apikey: who.apikey, secret: who.secret } : { type: 'enter', apikey: who.apikey, clientId: who.clientId, ...(who.token ? { token: who.token } : {}), ...(who.tags ? { tags: who.tags } : {}) },
      );
      return {
        kind,
        msgs,
        entered: res['type'] === 'entered' ? { ok: true, users: res['users'] as string[] | undefined } : { ok: false, why: `${String(res['code'])}: ${String(res['message'])}` },
        kicked: () => kicked,
        ack: (id) => ws.send(JSON.stringify({ type: 'ack', id })),
        push: async (body) => {
          const f = await call({ type: 'push', ...body });
          return { ok: f['type'] === 'pushed', why: String(f['message'] ?? '') };
        },
        close: async () => {
          if (ws.readyState === ws.CLOSED) return;
          const gone = once(ws, 'close');
          ws.close();
          await gone;
        },
      };
    }
    case 'sse': {
      if (manager) throw new Error('SSE has no managers');
      const ac = new AbortController();
      const params = new URLSearchParams();
      if (who.token) params.set('token', who.token);
      if (who.tags) params.set('tags', who.tags.join(','));
      const q = params.size > 0 ? `?${params.toString()}` : '';
      const res = await fetch(`${t.httpUrl}/api/v1/apps/${encodeURIComponent(who.apikey)}/clients/${encodeURIComponent(who.clientId ?? '')}/events${q}`, { signal: ac.signal });
      if (res.status !== 200 || !res.body) {
        const text = await res.text();
        return refusedPeer(kind, `${res.status} ${text}`);
      }
      const reader = res.body.getReader();
      const pump = readSseEvents(reader, (fields) => {
        if (fields['event'] === 'kick') kicked = String(asRecord(JSON.parse(fields['data'] ?? '{}'))['reason']);
        else if (fields['data'] !== undefined) {
          msgs.push({ event: fields['event'] ?? 'message', id: fields['id'] !== undefined ? Number(fields['id']) : undefined, data: JSON.parse(fields['data']) as unknown });
        }
      });
      const apikey = who.apikey;
      await waitFor(() => t.server.hub.onlineClients(apikey as never).some((c) => c.clientId === who.clientId && c.connector === 'sse'), {
        timeoutMs: 10_000,
        message: 'SSE client to enter',
      });
      return {
        kind,
        msgs,
        entered: { ok: true, users: undefined },
        kicked: () => kicked,
        ack: () => undefined,
        push: () => Promise.reject(new Error('SSE cannot push')),
        close: async () => {
          ac.abort();
          await reader.cancel().catch(() => undefined);
          await pump;
        },
      };
    }
  }
}

function refusedPeer(kind: Kind, why: string): Peer {
  return {
    kind,
    msgs: [],
    entered: { ok: false, why },
    kicked: () => undefined,
    ack: () => undefined,
    push: () => Promise.reject(new Error('refused')),
    close: async () => undefined,
  };
}

// ---------------------------------------------------------------- HTTP helpers

interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

async function http(t: TestServer, method: string, path: string, auth: string | undefined, body?: unknown): Promise<Reply> {
  const res = await fetch(`${t.httpUrl}${path}`, {
    method,
    headers: { ...(auth ? { authorization: auth } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : asRecord(JSON.parse(text)) };
}

const bearer = (secret: string): string => `Bearer ${secret}`;

/** True when the server refused the filter: a SUBACK failure code (mqtt.js rejects with it). */
async function subscribeRefused(c: MqttClient, filter: string): Promise<boolean> {
  try {
    const granted = await c.subscribeAsync(filter, { qos: 1 });
    return (granted[0]?.qos ?? 0) >= 0x80;
  } catch (err) {
    if (err instanceof Error && err.name === 'ErrorWithSubackPacket') return true;
    throw err;
  }
}

async function push(t: TestServer, apikey: string, secret: string, body: Record<string, unknown>): Promise<number> {
  const r = await http(t, 'POST', `/api/v1/apps/${apikey}/messages`, bearer(secret), body);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  return r.body['id'] as number;
}

function markers(p: Peer): string[] {
  return p.msgs.map((m) => asRecord(m.data)['marker']).filter((x): x is string => typeof x === 'string');
}

async function waitMarker(p: Peer, marker: string): Promise<void> {
  await waitFor(() => markers(p).includes(marker), { timeoutMs: 15_000, message: `${p.kind} to receive ${marker} (has ${markers(p).join(',')})` });
}

// ---------------------------------------------------------------- the matrix

describe('isolation between apps and between clients', () => {
  let t: TestServer;
  let A: { apikey: string; secret: string };
  let B: { apikey: string; secret: string };
  const open: Peer[] = [];
  const peer = async (kind: Kind, who: Who): Promise<Peer> => {
    const p = await openPeer(t, kind, who);
    open.push(p);
    return p;
  };

  before(async () => {
    t = await startTestServer();
    A = { apikey: t.app.apikey, secret: t.app.secret };
    const created = await http(t, 'POST', '/api/v1/apps', adminAuth(), { name: 'app-b' });
    assert.equal(created.status, 201);
    B = { apikey: String(created.body['apikey']), secret: String(created.body['secret']) };
  });
  after(async () => {
    for (const p of open) await p.close().catch(() => undefined);
    await t.close();
  });

  it("HTTP: A's secret opens no endpoint of B, and admin-only endpoints refuse an app secret", async () => {
    const secretMsg = await push(t, B.apikey, B.secret, { data: { marker: 'b-private-http' }, to: { clientIds: ['b-only'] } });
    const b = `/api/v1/apps/${B.apikey}`;
    const a = `/api/v1/apps/${A.apikey}`;
    const table: readonly [string, string, unknown?][] = [
      ['POST', `${b}/messages`, { data: { marker: 'a-into-b' } }],
      ['GET', `${b}/messages`],
      ['GET', `${b}/messages/${secretMsg}`],
      ['GET', `${b}/clients`],
      ['GET', `${b}/clients?search=b`],
      ['GET', `${b}/stats`],
      ['POST', `${b}/tokens`, { clientId: 'b-only' }],
      ['GET', b],
      ['PATCH', b, { name: 'taken' }],
      ['POST', `${b}/rotate-secret`, {}],
      ['DELETE', b],
      // Admin-only even for A's own app: an app secret manages its messages, not apps.
      ['GET', a],
      ['PATCH', a, { requireClientToken: true }],
      ['POST', `${a}/rotate-secret`, {}],
      ['DELETE', a],
      ['GET', '/api/v1/apps'],
      ['POST', '/api/v1/apps', { name: 'by-a' }],
    ];
    for (const [method, path, body] of table) {
      const r = await http(t, method, path, bearer(A.secret), body);
      assert.equal(r.status, 401, `${method} ${path} with A's secret answered ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.body['code'], 'UNAUTHORIZED');
      assert.ok(!JSON.stringify(r.body).includes('b-private-http'), `${method} ${path} leaked B's data`);
    }
    // Also without credentials, and with B's apikey as if it were a secret.
    for (const auth of [undefined, bearer(B.apikey), 'Basic ' + Buffer.from(`${A.apikey}:${A.secret}`).toString('base64')]) {
      const r = await http(t, 'GET', `${b}/messages`, auth);
      assert.equal(r.status, 401);
    }
    // Nothing of B changed: its own secret still works, A's push never landed, its secret is the same.
    const history = await http(t, 'GET', `${b}/messages`, bearer(B.secret));
    assert.equal(history.status, 200);
    const all = JSON.stringify(history.body);
    assert.ok(all.includes('b-private-http'));
    assert.ok(!all.includes('a-into-b'), "A's push landed in B");
    const app = await http(t, 'GET', b, adminAuth());
    assert.equal(app.body['secret'], B.secret);
    assert.equal(app.body['name'], 'app-b');
    // A's message with B's message id is A's own (ids are per app) or 404, never B's.
    const same = await http(t, 'GET', `${a}/messages/${secretMsg}`, bearer(A.secret));
    assert.ok(same.status === 404 || same.status === 200);
    assert.ok(!JSON.stringify(same.body).includes('b-private-http'), "A read B's message by id");
  });

  it('every connector: same clientId in both apps, private pushes, tags — nothing crosses', async () => {
    const peers = new Map<string, Peer>();
    for (const kind of KINDS) {
      // B's client first: A's client with the same id must not take it over.
      const bp = await peer(kind, { apikey: B.apikey, clientId: `${kind}-same`, tags: ['b-tag'] });
      assert.ok(bp.entered.ok, `${kind}: B client entered`);
      peers.set(`B:${kind}`, bp);
      const ap = await peer(kind, { apikey: A.apikey, clientId: `${kind}-same` });
      assert.ok(ap.entered.ok, `${kind}: A client entered`);
      peers.set(`A:${kind}`, ap);
      const other = await peer(kind, { apikey: A.apikey, clientId: `${kind}-other` });
      assert.ok(other.entered.ok);
      peers.set(`A2:${kind}`, other);
    }
    // B's clients carry a tag that A pushes to.
    const listB = await http(t, 'GET', `/api/v1/apps/${B.apikey}/clients`, bearer(B.secret));
    assert.equal(listB.body['total'], KINDS.length);
    // Lists, search and stats of A show only A's clients.
    const listA = await http(t, 'GET', `/api/v1/apps/${A.apikey}/clients?limit=10000`, bearer(A.secret));
    assert.equal(listA.body['total'], KINDS.length * 2);
    const searchA = await http(t, 'GET', `/api/v1/apps/${A.apikey}/clients?search=same`, bearer(A.secret));
    assert.equal(searchA.body['total'], KINDS.length);
    const statsA = await http(t, 'GET', `/api/v1/apps/${A.apikey}/stats`, bearer(A.secret));
    assert.equal(statsA.body['online'], KINDS.length * 2);

    await push(t, B.apikey, B.secret, { data: { marker: 'B-all' } });
    await push(t, B.apikey, B.secret, { data: { marker: 'B-to-same' }, to: { clientIds: KINDS.map((k) => `${k}-same`) } });
    await push(t, A.apikey, A.secret, { event: 'secretEvent', data: { marker: 'A-to-same' }, to: { clientIds: KINDS.map((k) => `${k}-same`) } });
    await push(t, A.apikey, A.secret, { data: { marker: 'A-to-other' }, to: { clientIds: KINDS.map((k) => `${k}-other`) } });
    await push(t, A.apikey, A.secret, { data: { marker: 'A-tag' }, to: { tags: ['b-tag'] } });
    await push(t, B.apikey, B.secret, { data: { marker: 'B-tag' }, to: { tags: ['b-tag'] } });
    await push(t, A.apikey, A.secret, { data: { marker: 'A-fence' } });
    await push(t, B.apikey, B.secret, { data: { marker: 'B-fence' } });
    for (const kind of KINDS) {
      const a = peers.get(`A:${kind}`)!;
      const a2 = peers.get(`A2:${kind}`)!;
      const b = peers.get(`B:${kind}`)!;
      await waitMarker(a, 'A-fence');
      await waitMarker(a2, 'A-fence');
      await waitMarker(b, 'B-fence');
      assert.deepEqual(markers(a), ['A-to-same', 'A-fence'], `${kind}: A's client got ${markers(a).join(',')}`);
      assert.deepEqual(markers(a2), ['A-to-other', 'A-fence'], `${kind}: A's other client got ${markers(a2).join(',')}`);
      assert.deepEqual(markers(b), ['B-all', 'B-to-same', 'B-tag', 'B-fence'], `${kind}: B's client got ${markers(b).join(',')}`);
      // Named pushes keep their event name only for their target.
      assert.ok(a.msgs.some((m) => m.event === 'secretEvent'));
      assert.ok(!a2.msgs.some((m) => m.event === 'secretEvent') && !b.msgs.some((m) => m.event === 'secretEvent'));
      assert.equal(b.kicked(), undefined, `${kind}: B's client was kicked by A's client with the same id`);
    }
    const online: string[] = t.server.hub.onlineClients(B.apikey as never).map((c) => c.clientId);
    for (const kind of KINDS) assert.ok(online.includes(`${kind}-same`), `${kind}: B's client is still online`);
    for (const p of peers.values()) await p.close();
  });

  it('every connector with managers: A\'s manager cannot enter B, push into B, or hear B\'s presence', async () => {
    for (const kind of MANAGER_KINDS) {
      // A's secret for B's apikey.
      const wrong = await peer(kind, { apikey: B.apikey, secret: A.secret });
      assert.equal(wrong.entered.ok, false, `${kind}: A's secret entered B as a manager`);
      await wrong.close();
    }
    const bPresent = await peer('ws', { apikey: B.apikey, clientId: 'b-present' });
    const aPresent = await peer('ws', { apikey: A.apikey, clientId: 'a-present' });
    assert.ok(bPresent.entered.ok && aPresent.entered.ok);
    const managers = new Map<Kind, Peer>();
    for (const kind of MANAGER_KINDS) {
      const m = await peer(kind, { apikey: A.apikey, secret: A.secret });
      assert.ok(m.entered.ok, `${kind}: A's manager entered A (${m.entered.ok ? '' : m.entered.why})`);
      if (m.entered.users !== undefined) {
        assert.ok(m.entered.users.includes('a-present'), `${kind}: users ${m.entered.users.join(',')}`);
        assert.ok(!m.entered.users.includes('b-present'), `${kind}: A's manager was told of B's client`);
      }
      managers.set(kind, m);
    }
    // B's messages without their receipts: those of earlier messages still move (acks are
    // written in batches), and they are not what A could change.
    const messagesOfB = async (): Promise<string> => {
      const body = (await http(t, 'GET', `/api/v1/apps/${B.apikey}/messages?limit=500`, bearer(B.secret))).body as { messages?: { receipt?: unknown }[] };
      return JSON.stringify((body.messages ?? []).map(({ receipt: _receipt, ...m }) => m));
    };
    const before = await messagesOfB();
    // The Pomelo push routes take an apikey in the body: B's must be refused.
    for (const kind of ['hybrid-tcp', 'hybrid-ws', 'sio-v2'] as const) {
      const res = await managers.get(kind)!.push({ apikey: B.apikey, msg: { marker: `${kind}-a-into-b` } });
      assert.equal(res.ok, false, `${kind}: A's manager pushed into B`);
      const named = await managers.get(kind)!.push({ apikey: B.apikey, clientId: 'b-present', msg: { marker: `${kind}-a-into-b-named` } }, 'pushserver.pushHandler.pushByClientId');
      assert.equal(named.ok, false, `${kind}: A's manager pushed to B's client by id`);
    }
    // Managers whose push names no app: B's client id in A's push reaches A's client of that id, not B's.
    for (const kind of ['ws', 'sio-v4'] as const) {
      const res = await managers.get(kind)!.push({ data: { marker: `${kind}-a-to-b-present` }, to: { clientIds: ['b-present'] } });
      assert.ok(res.ok, `${kind}: ${res.why}`);
    }
    // MQTT: publishing on B's push topic (the server does not route it to B).
    await managers.get('mqtt')!.push({ data: { marker: 'mqtt-own-push' } });
    const mq = await mqtt.connectAsync(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, { username: A.apikey, password: A.secret, clientId: 'mgr-raw', protocolVersion: 5, reconnectPeriod: 0 });
    await mq.publishAsync(`apps/${B.apikey}/push`, JSON.stringify({ data: { marker: 'mqtt-a-into-b' } }), { qos: 1 }).catch(() => undefined);
    assert.ok(await subscribeRefused(mq, `apps/${B.apikey}/presence`), "A's MQTT manager subscribed to B's presence");
    assert.ok(await subscribeRefused(mq, `apps/+/presence`), "A's MQTT manager subscribed to every app's presence");
    await mq.endAsync(true).catch(() => undefined);
    // Positive controls: A's managers push into A (so the refusals above are not broken pushes).
    assert.ok((await managers.get('hybrid-tcp')!.push({ apikey: A.apikey, msg: { marker: 'a-own' } })).ok);
    assert.ok((await managers.get('ws')!.push({ data: { marker: 'ws-own' } })).ok);
    await waitMarker(aPresent, 'a-own');
    await waitMarker(aPresent, 'ws-own');
    await waitMarker(aPresent, 'mqtt-own-push');
    const after = await messagesOfB();
    assert.equal(after, before, "B's history changed after A's managers pushed");
    assert.ok(!markers(bPresent).some((m) => m.includes('a-')), `B's client got ${markers(bPresent).join(',')}`);

    // Presence: B's client arriving is not told to A's managers; A's fence client is.
    const bLate = await peer('ws', { apikey: B.apikey, clientId: 'b-late' });
    const aLate = await peer('ws', { apikey: A.apikey, clientId: 'a-late' });
    assert.ok(bLate.entered.ok && aLate.entered.ok);
    for (const [kind, m] of managers) {
      const seen = (): string => JSON.stringify(m.msgs.map((x) => x.data));
      await waitFor(() => seen().includes('a-late'), { timeoutMs: 10_000, message: `${kind} manager to hear a-late` });
      assert.ok(!seen().includes('b-late') && !seen().includes('b-present'), `${kind}: A's manager heard of B's clients: ${seen()}`);
    }
    for (const p of [bPresent, aPresent, bLate, aLate, ...managers.values()]) await p.close();
  });

  it('MQTT: a client may subscribe only to its own app\'s all, its own clients/{id} and tags', async () => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, { username: A.apikey, clientId: 'mq-a', protocolVersion: 5, reconnectPeriod: 0 });
    try {
      const forbidden = [
        `apps/${B.apikey}/all`,
        `apps/${B.apikey}/clients/mq-a`,
        `apps/${B.apikey}/tags/x`,
        `apps/${B.apikey}/presence`,
        `apps/${A.apikey}/clients/someone-else`,
        `apps/${A.apikey}/presence`,
        `apps/${A.apikey}/push`,
        '#',
        'apps/#',
        `apps/+/all`,
        `apps/${A.apikey}/#`,
        `apps/${A.apikey}/clients/+`,
        `apps/${A.apikey}/+/mq-a`,
        `$share/g/apps/${A.apikey}/all`,
        `$SYS/#`,
        `apps/${A.apikey}/all/extra`,
      ];
      for (const filter of forbidden) {
        assert.ok(await subscribeRefused(c, filter), `subscribing ${filter} was granted`);
      }
      const ok = await c.subscribeAsync([`apps/${A.apikey}/all`, `apps/${A.apikey}/clients/mq-a`, `apps/${A.apikey}/tags/t1`], { qos: 1 });
      assert.deepEqual(ok.map((g) => g.qos), [1, 1, 1]);
      // A client publishing a push (only managers may) changes nothing in A or B.
      const got: string[] = [];
      c.on('message', (_t: string, payload: Buffer) => got.push(payload.toString()));
      await c.publishAsync(`apps/${A.apikey}/push`, JSON.stringify({ data: { marker: 'client-push' } }), { qos: 1 }).catch(() => undefined);
      if (c.connected) {
        await push(t, A.apikey, A.secret, { data: { marker: 'mq-fence' } });
        await waitFor(() => got.some((g) => g.includes('mq-fence')), { timeoutMs: 10_000, message: 'the fence' });
        assert.ok(!got.some((g) => g.includes('client-push')));
      }
      const historyA = JSON.stringify((await http(t, 'GET', `/api/v1/apps/${A.apikey}/messages?limit=500`, bearer(A.secret))).body);
      assert.ok(!historyA.includes('client-push'), 'an MQTT client pushed');
    } finally {
      await c.endAsync(true).catch(() => undefined);
    }
  });

  it("every connector with acks: a client's acks move only its own receipts", async () => {
    for (const kind of ACKING_KINDS) {
      const me = await peer(kind, { apikey: A.apikey, clientId: `ack-${kind}-me` });
      // The victims do not ack (on plain WebSocket: MQTT's client library acks QoS 1 by itself).
      const victim = await peer('ws', { apikey: A.apikey, clientId: `ack-${kind}-victim`, autoAck: false });
      const bSame = await peer('ws', { apikey: B.apikey, clientId: `ack-${kind}-victim`, autoAck: false });
      assert.ok(me.entered.ok && victim.entered.ok && bSame.entered.ok);
      const victimMsg = await push(t, A.apikey, A.secret, { data: { marker: 'victim-only' }, to: { clientIds: [`ack-${kind}-victim`] } });
      const bMsg = await push(t, B.apikey, B.secret, { data: { marker: 'b-victim-only' }, to: { clientIds: [`ack-${kind}-victim`] } });
      await waitMarker(victim, 'victim-only');
      await waitMarker(bSame, 'b-victim-only');
      // Spoofed acks: the victim's message id, far-future ids, B's id; also from a client of B.
      for (const id of [victimMsg, victimMsg + 1, 2 ** 40, bMsg]) me.ack(id);
      const mine = await push(t, A.apikey, A.secret, { data: { marker: 'mine' }, to: { clientIds: [`ack-${kind}-me`] } });
      await waitMarker(me, 'mine');
      me.ack(2 ** 40);
      // Positive control: my own message becomes acked (the acks do flow).
      await waitFor(
        async () => {
          const r = await http(t, 'GET', `/api/v1/apps/${A.apikey}/messages/${mine}`, bearer(A.secret));
          return JSON.stringify(r.body['recipients']).includes('"acked"');
        },
        { timeoutMs: 10_000, intervalMs: 100, message: `${kind}: my own ack to show in the receipt` },
      );
      const victimReceipt = await http(t, 'GET', `/api/v1/apps/${A.apikey}/messages/${victimMsg}`, bearer(A.secret));
      const recipients = victimReceipt.body['recipients'] as { clientId: string; state: string }[];
      assert.deepEqual(
        recipients.map((r) => [r.clientId, r.state]),
        [[`ack-${kind}-victim`, 'delivered']],
        `${kind}: another client's ack moved the victim's receipt`,
      );
      const bReceipt = await http(t, 'GET', `/api/v1/apps/${B.apikey}/messages/${bMsg}`, bearer(B.secret));
      assert.deepEqual((bReceipt.body['recipients'] as { state: string }[]).map((r) => r.state), ['delivered'], `${kind}: A's client acked B's message`);
      // The victim reconnects and still gets its unacked message again (its position did not move).
      await victim.close();
      const again = await peer('ws', { apikey: A.apikey, clientId: `ack-${kind}-victim` });
      await waitMarker(again, 'victim-only');
      for (const p of [me, again, bSame]) await p.close();
    }
  });

  it("tokens: a token signed by A (or for another client) does not enter an app that requires tokens, on any connector", async () => {
    const created = await http(t, 'POST', '/api/v1/apps', adminAuth(), { name: 'app-c' });
    const C = { apikey: String(created.body['apikey']), secret: String(created.body['secret']) };
    assert.equal((await http(t, 'PATCH', `/api/v1/apps/${C.apikey}`, adminAuth(), { requireClientToken: true })).status, 200);
    const token = async (app: { apikey: string; secret: string }, clientId: string, format: 'jwt' | 'compact'): Promise<string> => {
      const r = await http(t, 'POST', `/api/v1/apps/${app.apikey}/tokens`, bearer(app.secret), { clientId, format });
      assert.equal(r.status, 200);
      return String(r.body['token']);
    };
    for (const kind of KINDS) {
      const clientId = `tok-${kind}`;
      for (const format of ['compact', 'jwt'] as const) {
        const fromA = await peer(kind, { apikey: C.apikey, clientId, token: await token(A, clientId, format) });
        assert.equal(fromA.entered.ok, false, `${kind}: A's ${format} token entered C`);
        await fromA.close();
        const otherClient = await peer(kind, { apikey: C.apikey, clientId, token: await token(C, `${clientId}-x`, format) });
        assert.equal(otherClient.entered.ok, false, `${kind}: another client's ${format} token entered`);
        await otherClient.close();
      }
      const good = await peer(kind, { apikey: C.apikey, clientId, token: await token(C, clientId, 'compact') });
      assert.ok(good.entered.ok, `${kind}: C's own token was refused (${good.entered.ok ? '' : good.entered.why})`);
      await good.close();
    }
  });
});
