import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import { WebSocket, WebSocketServer, type ServerOptions } from 'ws';
import {
  WS_OPCODE,
  encodeServerFrame,
  encodeServerFrameHeader,
  framePayload,
  frameOpcode,
  resetWsInternalsVerdict,
  sendPreframed,
  wsInternalsProblem,
} from '../../src/connectors/ws-frames.js';
import { once, waitFor } from '../fixtures/wait.js';

// ws's own framing, the reference our frames must match byte for byte.
const wsSender = (createRequire(import.meta.url)('ws') as { Sender: { frame(data: Buffer, opts: Record<string, unknown>): Buffer[] } }).Sender;
function referenceFrame(payload: Buffer, opcode: number): Buffer {
  return Buffer.concat(wsSender.frame(payload, { fin: true, opcode, mask: false, readOnly: false, rsv1: false }));
}

/** The version these internals were checked against; a new one must pass this file before it ships. */
const WS_VERSION_CHECKED = /^8\./;

describe('encodeServerFrame', () => {
  for (const length of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
    it(`matches ws's framing for a ${length}-byte payload (binary and text)`, () => {
      const payload = Buffer.alloc(length, 0x61);
      for (const opcode of [WS_OPCODE.binary, WS_OPCODE.text]) {
        const frame = encodeServerFrame(payload, opcode);
        assert.deepEqual(frame, referenceFrame(payload, opcode));
        assert.equal(frameOpcode(frame), opcode);
        assert.deepEqual(framePayload(frame), payload);
      }
    });
  }

  it('writes a string payload as UTF-8', () => {
    const text = '{"msg":"推送 ✓"}';
    const frame = encodeServerFrame(text, WS_OPCODE.text);
    assert.deepEqual(frame, referenceFrame(Buffer.from(text), WS_OPCODE.text));
    assert.equal(framePayload(frame).toString('utf8'), text);
  });

  it('a header alone leaves room for a prefix and states the whole length', () => {
    const { buf, headerLength } = encodeServerFrameHeader(300, WS_OPCODE.text, 3);
    assert.equal(headerLength, 4);
    assert.equal(buf.length, 7);
    assert.deepEqual(buf.subarray(0, 4), referenceFrame(Buffer.alloc(300), WS_OPCODE.text).subarray(0, 4));
  });
});

describe('sendPreframed on a live ws server', () => {
  let wss: WebSocketServer;
  let deflating: WebSocketServer;
  const accepted: WebSocket[] = [];

  function listen(options: ServerOptions): Promise<WebSocketServer> {
    return new Promise((resolve) => {
      const server: WebSocketServer = new WebSocketServer({ ...options, host: '127.0.0.1', port: 0 }, () => resolve(server));
      server.on('connection', (ws) => accepted.push(ws));
    });
  }

  /** A client, its server-side peer, and the messages the client received in order. */
  async function pair(server: WebSocketServer, clientOptions: { perMessageDeflate?: boolean } = {}): Promise<{
    client: WebSocket;
    peer: WebSocket;
    got: { data: string; binary: boolean }[];
  }> {
    const before = accepted.length;
    const port = (server.address() as AddressInfo).port;
    const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: clientOptions.perMessageDeflate ?? false });
    const got: { data: string; binary: boolean }[] = [];
    client.on('message', (data: Buffer, binary: boolean) => got.push({ data: data.toString('utf8'), binary }));
    await once(client, 'open', 5000);
    await waitFor(() => accepted.length > before, { timeoutMs: 5000, message: 'the server-side socket' });
    return { client, peer: accepted[accepted.length - 1]!, got };
  }

  before(async () => {
    wss = await listen({ perMessageDeflate: false });
    deflating = await listen({ perMessageDeflate: { threshold: 0 } });
  });

  after(async () => {
    for (const ws of accepted) ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    await new Promise<void>((resolve) => deflating.close(() => resolve()));
  });

  it(`the ws internals it relies on are there, with the expected types (ws ${String(wsVersion())})`, async () => {
    assert.match(wsVersion(), WS_VERSION_CHECKED, 'a new ws major: re-check src/connectors/ws-frames.ts against its lib/sender.js and lib/websocket.js');
    const { client, peer } = await pair(wss);
    assert.equal(wsInternalsProblem(peer), undefined);
    const w = peer as unknown as Record<string, unknown>;
    assert.ok(w['_socket'] instanceof Socket, 'WebSocket#_socket is the net.Socket');
    const sender = w['_sender'] as Record<string, unknown>;
    assert.equal(sender['_state'], 0, 'an idle Sender is in state DEFAULT (0)');
    assert.deepEqual(sender['_queue'], []);
    assert.equal(sender['_firstFragment'], true);
    assert.equal(sender['_bufferedBytes'], 0);
    assert.deepEqual(w['_extensions'], {});
    client.terminate();
  });

  it('the bytes it writes count in bufferedAmount (socket writableLength), as the slow-consumer policy needs', async () => {
    const { client, peer } = await pair(wss);
    client.pause(); // stop reading: the server's socket buffer fills
    const frame = encodeServerFrame(Buffer.alloc(64 * 1024, 0x62), WS_OPCODE.binary);
    const socket = (peer as unknown as { _socket: Socket })._socket;
    for (let i = 0; i < 200 && socket.writableLength === 0; i++) sendPreframed(peer, frame);
    assert.ok(socket.writableLength > 0, 'bytes are held (corked for this turn, or the kernel buffer is full)');
    assert.equal(peer.bufferedAmount, socket.writableLength);
    const held = peer.bufferedAmount;
    sendPreframed(peer, frame);
    assert.equal(peer.bufferedAmount, held + frame.length);
    // Past this turn (uncorked), whatever the kernel did not take is still counted.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(socket.writableCorked, 0);
    for (let i = 0; i < 200 && socket.writableLength < 1024 * 1024; i++) {
      sendPreframed(peer, frame);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(socket.writableLength > 0, 'the kernel buffer filled up');
    assert.equal(peer.bufferedAmount, socket.writableLength);
    client.terminate();
  });

  it('delivers frames in order, interleaved with ws.send, with the right message types', async () => {
    const { client, peer, got } = await pair(wss);
    sendPreframed(peer, encodeServerFrame('one', WS_OPCODE.text));
    peer.send('two');
    sendPreframed(peer, encodeServerFrame(Buffer.from('three'), WS_OPCODE.binary));
    sendPreframed(peer, encodeServerFrame('x'.repeat(70_000), WS_OPCODE.text));
    peer.send(Buffer.from('five'), { binary: true });
    await waitFor(() => got.length === 5, { timeoutMs: 5000, message: 'five messages' });
    assert.deepEqual(
      got.map((m) => [m.data.length > 10 ? `${m.data.length}` : m.data, m.binary]),
      [['one', false], ['two', false], ['three', true], ['70000', false], ['five', true]],
    );
    client.terminate();
  });

  it('queues behind a send ws has not written yet (a Blob being read): order is kept', async () => {
    const { client, peer, got } = await pair(wss);
    peer.send(new Blob(['blob first']));
    const sender = (peer as unknown as { _sender: { _state: number } })._sender;
    assert.notEqual(sender._state, 0, 'ws is reading the Blob: its sender is not idle');
    sendPreframed(peer, encodeServerFrame('then the frame', WS_OPCODE.text));
    await waitFor(() => got.length === 2, { timeoutMs: 5000, message: 'two messages' });
    assert.deepEqual(got.map((m) => m.data), ['blob first', 'then the frame']);
    client.terminate();
  });

  it('inside a fragmented message it goes through ws.send (a whole frame there would break the message)', async () => {
    const { client, peer, got } = await pair(wss);
    peer.send('a', { fin: false });
    sendPreframed(peer, encodeServerFrame('b', WS_OPCODE.text));
    peer.send('c');
    // Through ws.send the frame ends the message ws had started; written raw, it would
    // have been a new message inside a fragmented one, and the client would close 1002.
    await waitFor(() => got.length >= 2, { timeoutMs: 5000, message: 'two messages' });
    sendPreframed(peer, encodeServerFrame('d', WS_OPCODE.text));
    await waitFor(() => got.length >= 3, { timeoutMs: 5000, message: 'the next message' });
    assert.deepEqual(got, [
      { data: 'ab', binary: false },
      { data: 'c', binary: false },
      { data: 'd', binary: false },
    ]);
    assert.equal(client.readyState, WebSocket.OPEN);
    client.terminate();
  });

  it('with permessage-deflate negotiated it lets ws compress, and the client reads the message', async () => {
    const { client, peer, got } = await pair(deflating, { perMessageDeflate: true });
    assert.equal(peer.extensions, 'permessage-deflate');
    const socket = (peer as unknown as { _socket: Socket })._socket;
    const written: Buffer[] = [];
    const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
    const spy = (chunk: Buffer): boolean => {
      written.push(chunk);
      return write(chunk);
    };
    Object.defineProperty(socket, 'write', { value: spy, configurable: true });
    const frame = encodeServerFrame('compress me '.repeat(20), WS_OPCODE.text);
    sendPreframed(peer, frame);
    await waitFor(() => got.length === 1, { timeoutMs: 5000, message: 'one message' });
    assert.equal(got[0]!.data, 'compress me '.repeat(20));
    assert.ok(!written.some((c) => c.equals(frame)), 'the uncompressed frame was not written raw');
    client.terminate();
  });

  it('does nothing once the WebSocket is closing', async () => {
    const { client, peer, got } = await pair(wss);
    const closed = once(client, 'close', 5000);
    peer.close(1000, 'bye');
    sendPreframed(peer, encodeServerFrame('late', WS_OPCODE.text));
    await closed;
    assert.deepEqual(got, []);
  });

  it('falls back to ws.send when the internals are not what it expects', async () => {
    const { client, peer, got } = await pair(wss);
    const w = peer as unknown as { _socket: unknown };
    const socket = w._socket;
    // What a ws that renamed WebSocket#_socket would look like to us (its Sender keeps its own reference).
    Object.defineProperty(peer, '_socket', { value: { renamed: true }, configurable: true, writable: true });
    resetWsInternalsVerdict();
    try {
      assert.match(wsInternalsProblem(peer) ?? '', /WebSocket#_socket/);
      sendPreframed(peer, encodeServerFrame('still works', WS_OPCODE.text));
    } finally {
      Object.defineProperty(peer, '_socket', { value: socket, configurable: true, writable: true });
      resetWsInternalsVerdict();
    }
    await waitFor(() => got.length === 1, { timeoutMs: 5000, message: 'one message' });
    assert.equal(got[0]!.data, 'still works');
    client.terminate();
  });
});

function wsVersion(): string {
  return (createRequire(import.meta.url)('ws/package.json') as { version: string }).version;
}
