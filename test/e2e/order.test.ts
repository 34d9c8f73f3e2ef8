// Order as docs/connectors.md "Order" promises it, with real clients: the pushes one
// manager connection sends are stored in the order it sent them, on every connector;
// a hybrid client that re-enters gets its enter answer before its backlog.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createRequire } from 'node:module';
import { WebSocket } from 'ws';
import { io as ioV4 } from 'socket.io-client';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { connectManager, type ManagerKind } from '../fixtures/any-manager.js';
import { reference, type RefPackage } from '../fixtures/pomelo-client.js';
import { waitFor } from '../fixtures/wait.js';

const { Package, Message } = reference.protocol;

/** Every connection-oriented way a manager pushes (HTTP requests carry no connection order). */
const KINDS: readonly ManagerKind[] = ['hybrid-tcp', 'hybrid-ws', 'sio', 'sio-v2-pomelo', 'ws', 'mqtt-5', 'mqtt-3'];
const PUSHES = 40;

interface StoredView {
  readonly id: number;
  readonly data: { readonly kind?: string; readonly seq?: number } | null;
}

describe('order on every connector', () => {
  let t: TestServer;

  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  async function history(): Promise<StoredView[]> {
    const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages?limit=500`, { headers: { authorization: `Bearer ${t.app.secret}` } });
    return ((await res.json()) as { messages: StoredView[] }).messages;
  }

  async function push(body: unknown): Promise<number> {
    const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 202);
    return ((await res.json()) as { id: number }).id;
  }

  for (const kind of KINDS) {
    it(`${kind}: a manager's interleaved broadcasts and targeted pushes are stored in the order it sent them`, async () => {
      const m = await connectManager(t, kind);
      try {
        // Sent back to back, no answer awaited: a broadcast awaits an online count that a
        // targeted push does not, which let targeted pushes overtake broadcasts.
        const answers = [];
        for (let seq = 0; seq < PUSHES; seq++) {
          const to = seq % 2 === 0 ? {} : { to: seq % 4 === 1 ? { clientIds: ['someone'] } : { tags: ['news'] } };
          answers.push(m.push({ event: 'onMsg', data: { kind, seq }, ...to }));
        }
        for (const a of await Promise.all(answers)) assert.equal(a.ok, true, JSON.stringify(a));
        let mine: StoredView[] = [];
        await waitFor(
          async () => {
            mine = (await history()).filter((h) => h.data?.kind === kind);
            return mine.length === PUSHES;
          },
          { timeoutMs: 5000, message: `the ${PUSHES} pushes of ${kind} in the history` },
        );
        const byId = [...mine].sort((a, b) => a.id - b.id).map((h) => h.data?.seq);
        assert.deepEqual(byId, Array.from({ length: PUSHES }, (_, i) => i));
      } finally {
        await m.close();
      }
    });
  }

  for (const transport of ['tcp', 'ws'] as const) {
    it(`hybrid-${transport}: a client re-entering with lastId gets the enter answer before its backlog (bytes read with the pomelo-protocol codec)`, async () => {
      const clientId = `reenter-${transport}`;
      const ids: number[] = [];
      for (let i = 0; i < 20; i++) ids.push(await push({ event: 'onMsg', data: { i }, to: { clientIds: [clientId] } }));
      const peer = await RawPomeloPeer.connect(t.server.hybridPort, transport);
      try {
        peer.send(Package.encode(Package.TYPE_HANDSHAKE, reference.protocol.strencode(JSON.stringify({ sys: { type: 'js-websocket', version: '0.0.1' }, user: {} }))));
        await peer.waitFor((p) => p.type === Package.TYPE_HANDSHAKE, 'the handshake reply');
        peer.send(Package.encode(Package.TYPE_HANDSHAKE_ACK));
        const enter = { apikey: t.app.apikey, clientId, role: 'client', lastId: ids[0]! - 1 };
        const request = Message.encode(1, Message.TYPE_REQUEST, 0, 'hybrid-connector.entryHandler.enter', reference.protocol.strencode(JSON.stringify(enter)));
        peer.send(Package.encode(Package.TYPE_DATA, request));
        await peer.waitFor(() => peer.data().length === 1 + ids.length, 'the enter answer and the backlog');
        const messages = peer.data();
        // The first DATA package is the RESPONSE to request 1, and only then the PUSHes.
        assert.equal(messages[0]!.type, Message.TYPE_RESPONSE, `first was message type ${messages[0]!.type}`);
        assert.equal(messages[0]!.id, 1);
        assert.deepEqual(JSON.parse(messages[0]!.body.toString()), { code: 200, msg: 'add ok', users: null });
        const pushed = messages.slice(1).map((m) => {
          assert.equal(m.type, Message.TYPE_PUSH);
          return (JSON.parse(m.body.toString()) as { id: number }).id;
        });
        assert.deepEqual(pushed, ids);
      } finally {
        await peer.close();
      }
    });
  }

  it('sio (socket.io-client 4, native): a client re-entering with lastId gets the enter callback before its backlog', async () => {
    const clientId = 'reenter-sio';
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) ids.push(await push({ event: 'onMsg', data: { i }, to: { clientIds: [clientId] } }));
    const s = ioV4(`http://127.0.0.1:${t.server.sioPort}`, { transports: ['websocket'], reconnection: false, forceNew: true });
    try {
      // What arrives, in arrival order: socket.io calls an ack callback and onAny
      // listeners as each packet is read.
      const seen: string[] = [];
      s.onAny((event: string, payload: { id?: number }) => seen.push(`${event} ${payload.id}`));
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      s.emit('enter', { apikey: t.app.apikey, clientId, lastId: ids[0]! - 1 }, (res: { code: number }) => seen.push(`answer ${res.code}`));
      await waitFor(() => seen.length === 1 + ids.length, { timeoutMs: 5000, message: 'the enter answer and the backlog' });
      assert.deepEqual(seen, ['answer 200', ...ids.map((id) => `onMsg ${id}`)]);
    } finally {
      s.disconnect();
    }
  });

  it('sio (socket.io-client 2, Pomelo framing): a client re-entering with lastId gets the enter answer before its backlog', async () => {
    const clientId = 'reenter-sio-v2';
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) ids.push(await push({ event: 'onMsg', data: { i }, to: { clientIds: [clientId] } }));
    const s = ioV2(`http://127.0.0.1:${t.server.sioPort}`, { path: '/socket.io', transports: ['websocket'], forceNew: true, reconnection: false });
    try {
      const seen: string[] = [];
      s.on('message', (raw: unknown) => {
        const m = JSON.parse(String(raw)) as { id?: number; route?: string; body?: { id?: number; code?: number } };
        seen.push(m.route === undefined ? `answer ${m.id} ${m.body?.code}` : `${m.route} ${m.body?.id}`);
      });
      await new Promise<void>((resolve) => s.on('connect', () => resolve()));
      const route = 'sio-connector.entryHandler.enter';
      const body = JSON.stringify({ apiKey: t.app.apikey, clientId, lastId: ids[0]! - 1 });
      // The Pomelo sio framing: 4-byte request id, route length, route, JSON body.
      s.emit('message', `\u0000\u0000\u0000\u0001${String.fromCharCode(route.length)}${route}${body}`);
      await waitFor(() => seen.length === 1 + ids.length, { timeoutMs: 5000, message: 'the enter answer and the backlog' });
      assert.deepEqual(seen, ['answer 1 200', ...ids.map((id) => `onMsg ${id}`)]);
    } finally {
      s.close();
    }
  });
});

/** The part of a socket.io-client 2.x socket used here (the package has no types). */
interface V2Socket {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  emit(event: string, ...args: unknown[]): unknown;
  close(): unknown;
}
const ioV2 = createRequire(import.meta.url)('socket.io-client-v2') as (url: string, opts: Readonly<Record<string, unknown>>) => V2Socket;

/** A hybrid client built from the reference codec alone, keeping every package in arrival order. */
class RawPomeloPeer {
  readonly packages: RefPackage[] = [];
  #rx = Buffer.alloc(0);

  private constructor(
    readonly send: (bytes: Buffer) => void,
    readonly close: () => Promise<void>,
  ) {}

  static async connect(port: number, transport: 'tcp' | 'ws'): Promise<RawPomeloPeer> {
    if (transport === 'tcp') {
      const socket = net.connect(port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const peer = new RawPomeloPeer(
        (b) => socket.write(b),
        () => new Promise<void>((resolve) => socket.end(() => socket.destroy()).once('close', () => resolve())),
      );
      socket.on('data', (chunk: Buffer) => peer.#take(chunk));
      return peer;
    }
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const peer = new RawPomeloPeer(
      (b) => ws.send(b),
      () =>
        new Promise<void>((resolve) => {
          if (ws.readyState === ws.CLOSED) resolve();
          else ws.once('close', () => resolve()).close();
        }),
    );
    // One package per WebSocket message (Pomelo over WebSocket).
    ws.on('message', (data: Buffer) => peer.#take(data));
    return peer;
  }

  /** Whole packages out of a byte stream: 1-byte type, 3-byte length, body. */
  #take(chunk: Buffer): void {
    this.#rx = Buffer.concat([this.#rx, chunk]);
    while (this.#rx.length >= 4) {
      const length = this.#rx.readUIntBE(1, 3);
      if (this.#rx.length < 4 + length) break;
      const decoded = Package.decode(this.#rx.subarray(0, 4 + length));
      this.packages.push(...(Array.isArray(decoded) ? decoded : [decoded]));
      this.#rx = this.#rx.subarray(4 + length);
    }
  }

  /** The DATA packages' messages, in arrival order. */
  data(): ReturnType<typeof Message.decode>[] {
    return this.packages.filter((p) => p.type === Package.TYPE_DATA && p.body !== null).map((p) => Message.decode(p.body!));
  }

  async waitFor(check: (p: RefPackage) => boolean, what: string): Promise<void> {
    await waitFor(() => this.packages.some(check), { timeoutMs: 5000, intervalMs: 5, message: what });
  }
}
