// The socket.io / engine.io details the connector relies on beyond their documented
// API (src/connectors/sio/sio-internals.ts). These tests fail loudly when an upgrade
// changes one of them (docs/conventions.md §3).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server as HttpServer } from 'node:http';
import { Socket as NetSocket } from 'node:net';
import { createRequire } from 'node:module';
import { Server, type Socket } from 'socket.io';
import { io as ioV4, type Socket as V4Socket } from 'socket.io-client';
import {
  encodeEventPacket,
  pendingAckCallbacks,
  preframedOptions,
  settlePendingPollingClose,
  writeAckedEvent,
  writePreframedPacket,
  wsBufferedAmount,
  wsTransportSocket,
} from '../../../src/connectors/sio/sio-internals.js';
import { vectorById } from '../../protocol/vectors.js';
import { waitFor, withTimeout } from '../../fixtures/wait.js';

interface V2Socket {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  close(): unknown;
}
const require = createRequire(import.meta.url);
const ioV2 = require('socket.io-client-v2') as (url: string, opts: Readonly<Record<string, unknown>>) => V2Socket;

describe('socket.io internals the sio connector uses', () => {
  let http: HttpServer;
  let io: Server;
  let url: string;
  const sockets: Socket[] = [];

  before(async () => {
    http = createServer();
    io = new Server(http, { path: '/socket.io', allowEIO3: true, transports: ['polling', 'websocket'] });
    io.on('connection', (s) => sockets.push(s));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const address = http.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });
  after(async () => {
    await io.close();
  });

  async function v4(transports: string[]): Promise<{ client: V4Socket; server: Socket }> {
    const before = sockets.length;
    const client = ioV4(url, { path: '/socket.io', transports, forceNew: true, reconnection: false });
    await withTimeout(new Promise<void>((resolve) => client.on('connect', () => resolve())), 3000, 'v4 connect');
    await waitFor(() => sockets.length > before, { timeoutMs: 3000, message: 'server socket' });
    const server = sockets.at(-1);
    assert.ok(server);
    return { client, server };
  }

  it('encodeEventPacket is what socket.io encodes for emit("message", str), and the seed vectors', () => {
    for (const s of ['', 'plain', '{"route":"onMsg","body":{"msg":"中文 🚀"}}', 'quotes " and \\ and \u0000\u0001\u2028']) {
      const theirs = io.encoder.encode({ type: 2, nsp: '/', data: ['message', s] });
      assert.deepEqual([encodeEventPacket('message', s)], theirs);
    }
    for (const id of ['sio-response', 'sio-push-onMsg', 'sio-kick']) {
      const v = vectorById('sio', id) as unknown as { messageString: string; wsTextFrame: string };
      // The vectors are whole engine.io text frames: "4" (MESSAGE) then the socket.io packet.
      assert.equal(`4${encodeEventPacket('message', v.messageString)}`, v.wsTextFrame);
    }
  });

  it('Socket#acks is a Map of pending ack callbacks, oldest first', async () => {
    const { client, server } = await v4(['websocket']);
    try {
      const acks = pendingAckCallbacks(server);
      assert.ok(acks instanceof Map, 'socket.io no longer keeps Socket#acks as a Map');
      const noop = (): void => undefined;
      server.emit('a', 1, noop);
      server.emit('a', 2, noop);
      assert.equal(acks.size, 2);
      const [first] = acks.keys();
      // The client answers the first callback: socket.io drops its entry.
      client.once('a', (_n: unknown, cb: () => void) => cb());
      server.emit('a', 3, noop);
      await waitFor(() => !acks.has(first) || acks.size < 3, { timeoutMs: 3000, message: 'ack entry removed' });
    } finally {
      client.close();
    }
  });

  it('the websocket transport exposes the ws socket and its bufferedAmount; polling has none', async () => {
    const ws = await v4(['websocket']);
    const polling = await v4(['polling']);
    try {
      const wsSocket: unknown = Reflect.get(ws.server.conn.transport, 'socket');
      assert.equal(typeof Reflect.get(wsSocket as object, 'bufferedAmount'), 'number', 'engine.io websocket transport lost transport.socket.bufferedAmount');
      assert.equal(wsBufferedAmount(ws.server), 0);
      assert.equal(polling.server.conn.transport.name, 'polling');
      assert.equal(wsBufferedAmount(polling.server), 0);
      // bufferedBytes counts engine.io packets from these two events.
      const created: unknown[] = [];
      let flushed = 0;
      polling.server.conn.on('packetCreate', (p: { data?: unknown }) => created.push(p.data));
      polling.server.conn.on('flush', () => flushed++);
      polling.server.emit('x', 'y');
      assert.deepEqual(created, ['2["x","y"]']);
      await waitFor(() => flushed > 0, { timeoutMs: 3000, message: 'flush event' });
    } finally {
      ws.client.close();
      polling.client.close();
    }
  });

  it('a polling transport closed by the server keeps a pending close; settlePendingPollingClose ends it', async () => {
    const before = sockets.length;
    const client = ioV2(url, { path: '/socket.io', transports: ['polling'], forceNew: true, reconnection: false });
    let reason: unknown;
    client.on('disconnect', (r: unknown) => {
      reason = r;
    });
    await waitFor(() => sockets.length > before, { timeoutMs: 3000, message: 'server socket' });
    const server = sockets.at(-1);
    assert.ok(server);
    const engine = server.conn;
    await waitFor(() => Reflect.get(engine.transport, 'writable') === true, { timeoutMs: 3000, message: 'a pending GET' });
    server.emit('message', 'bye');
    server.disconnect(true);
    await waitFor(() => reason !== undefined && engine.readyState === 'closed', { timeoutMs: 3000, message: 'the client to leave' });
    // The engine.io behaviour worked around: still waiting, with a 30 s timer, for a GET that will never come.
    assert.equal(typeof Reflect.get(engine.transport, 'shouldClose'), 'function', 'engine.io no longer leaves a pending close: remove the workaround');
    settlePendingPollingClose(engine);
    assert.equal(Reflect.get(engine.transport, 'shouldClose'), null);
    assert.equal(engine.transport.readyState, 'closed');
    client.close();
  });

  it('wsTransportSocket: the net.Socket under the websocket transport (ws#_socket); none for polling', async () => {
    const ws = await v4(['websocket']);
    const polling = await v4(['polling']);
    try {
      const raw = wsTransportSocket(ws.server);
      assert.ok(raw instanceof NetSocket, 'engine.io transport.socket._socket is no longer the net.Socket');
      assert.equal(raw, Reflect.get(Reflect.get(ws.server.conn.transport, 'socket') as object, '_socket'));
      assert.equal(wsTransportSocket(polling.server), undefined);
    } finally {
      ws.client.close();
      polling.client.close();
    }
  });

  it('preframedOptions: the engine.io MESSAGE frame socket.io-adapter would pre-compute', () => {
    const wsOfEngine = createRequire(require.resolve('engine.io'))('ws') as { Sender: { frame(d: Buffer, o: Record<string, unknown>): Buffer[] } };
    for (const packet of ['2["onAdd",{"users":[]}]', `2${JSON.stringify(['message', 'x'.repeat(300)])}`, '2["推送",null]']) {
      const reference = Buffer.concat(wsOfEngine.Sender.frame(Buffer.from(`4${packet}`), { readOnly: false, mask: false, rsv1: false, opcode: 1, fin: true }));
      const options = preframedOptions(packet);
      assert.deepEqual(Buffer.concat(options.wsPreEncodedFrame), reference);
      assert.equal(options.compress, true, 'set already: engine.io writes it on the shared object');
    }
  });

  for (const [name, connect] of [
    ['v4 websocket', () => v4(['websocket'])],
    ['v4 polling', () => v4(['polling'])],
  ] as const) {
    it(`writeAckedEvent and writePreframedPacket (${name}): the events arrive, the ack callbacks fire once, ids shared with emit`, async () => {
      const { client, server } = await connect();
      try {
        const got: unknown[] = [];
        client.on('onMsg', (payload: unknown, cb: (...a: unknown[]) => void) => {
          got.push(payload);
          cb('done', got.length);
        });
        client.on('plain', (payload: unknown, cb: unknown) => got.push(['plain', payload, typeof cb]));
        const calls: unknown[][] = [];
        const ack = function (this: unknown, ...args: unknown[]): void {
          calls.push([this === server, ...args]);
        };
        const before = Reflect.get(server.nsp, '_ids') as number;
        server.emit('onMsg', { id: 1, data: 'a' }, ack);
        const json = JSON.stringify(['onMsg', { id: 2, data: { t: '推送 ✓' } }]);
        assert.equal(writeAckedEvent(server, json, Buffer.from(json), ack), true);
        const packet = `2${JSON.stringify(['plain', { users: ['x'] }])}`;
        writePreframedPacket(server, packet, preframedOptions(packet));
        server.emit('onMsg', { id: 3, data: 'c' }, ack);
        assert.equal(Reflect.get(server.nsp, '_ids'), before + 3, 'Namespace#_ids: one id per acked packet, ours included');
        await waitFor(() => calls.length === 3, { timeoutMs: 3000, message: 'three acks' });
        assert.deepEqual(got, [{ id: 1, data: 'a' }, { id: 2, data: { t: '推送 ✓' } }, ['plain', { users: ['x'] }, 'undefined'], { id: 3, data: 'c' }]);
        assert.deepEqual(calls, [[true, 'done', 1], [true, 'done', 2], [true, 'done', 4]]);
        assert.equal(pendingAckCallbacks(server)?.size, 0);
      } finally {
        client.close();
      }
    });
  }

  it('writeAckedEvent reaches socket.io 2 clients (EIO3) with a working callback', async () => {
    const before = sockets.length;
    const client = ioV2(url, { path: '/socket.io', transports: ['websocket'], forceNew: true, reconnection: false });
    try {
      await waitFor(() => sockets.length > before, { timeoutMs: 3000, message: 'server socket' });
      const server = sockets.at(-1)!;
      const got: unknown[] = [];
      client.on('onMsg', (payload: unknown, cb: unknown) => {
        got.push(payload);
        if (typeof cb === 'function') (cb as () => void)();
      });
      let acked = 0;
      const json = JSON.stringify(['onMsg', { id: 5, data: 'v2' }]);
      await waitFor(() => server.conn.transport.name === 'websocket', { timeoutMs: 3000, message: 'websocket transport' });
      assert.equal(writeAckedEvent(server, json, Buffer.from(json), () => acked++), true);
      await waitFor(() => acked === 1, { timeoutMs: 3000, message: 'the v2 ack' });
      assert.deepEqual(got, [{ id: 5, data: 'v2' }]);
    } finally {
      client.close();
    }
  });
});
