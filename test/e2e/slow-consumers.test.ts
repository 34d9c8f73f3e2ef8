import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { PackageReader, PackageType, encodePackage } from '../../src/protocol/pomelo/package.js';
import { decodeMessage, encodeRequest } from '../../src/protocol/pomelo/message.js';
import { asClientId } from '../../src/ids.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

/** A lean raw-TCP Pomelo client: handshake, enter, then count onMsg ids (or stop reading). */
class RawClient {
  readonly ids: number[] = [];
  closed = false;
  readonly #socket: Socket;
  readonly #reader = new PackageReader({ maxPackage: 1 << 24 });
  #entered: () => void = () => undefined;
  readonly entered = new Promise<void>((r) => (this.#entered = r));

  constructor(port: number, apikey: string, clientId: string) {
    this.#socket = connect(port, '127.0.0.1');
    this.#socket.on('error', () => undefined);
    this.#socket.on('close', () => (this.closed = true));
    this.#socket.on('data', (chunk: Buffer) => {
      for (const pkg of this.#reader.push(chunk)) {
        if (pkg.type === PackageType.HANDSHAKE) {
          this.#socket.write(encodePackage(PackageType.HANDSHAKE_ACK));
          const body = Buffer.from(JSON.stringify({ apikey, clientId, role: 'client' }));
          this.#socket.write(encodePackage(PackageType.DATA, encodeRequest(1, 'connector.entryHandler.enter', body)));
        } else if (pkg.type === PackageType.DATA) {
          const msg = decodeMessage(pkg.body);
          if (msg.type === 2) this.#entered();
          else if (msg.route === 'onMsg') this.ids.push((JSON.parse(msg.body.toString()) as { id: number }).id);
        }
      }
    });
    this.#socket.write(encodePackage(PackageType.HANDSHAKE, Buffer.from('{"sys":{"type":"raw","version":"1"}}')));
  }

  /** Never read again: the kernel buffers fill, then the server's buffer does. */
  stopReading(): void {
    this.#socket.pause();
  }

  async close(): Promise<void> {
    if (this.#socket.destroyed) return;
    this.#socket.destroy();
    await once(this.#socket, 'close');
  }
}

describe('slow consumers', () => {
  let t: TestServer;
  const cap = 256 * 1024;
  before(async () => {
    t = await startTestServer({ maxBufferedBytes: cap, heartbeatSeconds: 600 });
  });
  after(async () => {
    await t.close();
  });

  it('100 clients that never read are closed as slow consumers; 1,000 others get everything, in order; memory stays bounded', async () => {
    const port = t.server.hybridPort;
    const apikey = t.app.apikey;
    const slow = Array.from({ length: 100 }, (_, i) => new RawClient(port, apikey, `slow-${i}`));
    const fast = Array.from({ length: 1000 }, (_, i) => new RawClient(port, apikey, `fast-${i}`));
    try {
      await Promise.all([...slow, ...fast].map((c) => c.entered));
      for (const c of slow) c.stopReading();
      const rssBefore = process.memoryUsage().rss;
      const big = 'x'.repeat(128 * 1024);
      const slowIds = slow.map((_, i) => asClientId(`slow-${i}`));
      const broadcastIds: number[] = [];
      // Heavy traffic for the stalled clients, small broadcasts for everyone in between.
      for (let round = 0; round < 60; round++) {
        await t.server.hub.publish({ apikey, target: { all: false, clientIds: slowIds, tags: [] }, event: 'onMsg', data: big });
        if (round % 3 === 0) {
          const r = await t.server.hub.publish({ apikey, target: { all: true, clientIds: [], tags: [] }, event: 'onMsg', data: round });
          broadcastIds.push(r.message.id);
        }
        await new Promise((r) => setImmediate(r));
      }
      await waitFor(() => fast.every((c) => c.ids.length === broadcastIds.length), {
        timeoutMs: 30_000,
        message: `fast clients got ${Math.min(...fast.map((c) => c.ids.length))} of ${broadcastIds.length}`,
      });
      for (const c of fast) assert.deepEqual(c.ids, broadcastIds);
      await waitFor(() => !t.server.hub.onlineClients(apikey).some((c) => c.clientId.startsWith('slow-')), {
        timeoutMs: 10_000,
        message: 'slow clients still online',
      });
      const online = t.server.hub.onlineClients(apikey);
      assert.equal(online.length, 1000, 'every fast client is still connected');
      // Unbounded, the server would hold 100 × 60 × 128 KiB = 750 MiB for the stalled clients.
      const grew = process.memoryUsage().rss - rssBefore;
      assert.ok(grew < 300 * 1024 * 1024, `RSS grew by ${Math.round(grew / 1048576)} MiB`);
    } finally {
      await Promise.all([...slow, ...fast].map((c) => c.close()));
    }
  });

  it('a slow consumer that comes back resumes from the store with everything, in order', async () => {
    const apikey = t.app.apikey;
    const stalled = new RawClient(t.server.hybridPort, apikey, 'comeback');
    await stalled.entered;
    stalled.stopReading();
    const ids: number[] = [];
    const big = 'y'.repeat(64 * 1024);
    for (let i = 0; i < 200; i++) {
      const r = await t.server.hub.publish({ apikey, target: { all: false, clientIds: [asClientId('comeback')], tags: [] }, event: 'onMsg', data: big });
      ids.push(r.message.id);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => !t.server.hub.onlineClients(apikey).some((c) => c.clientId === 'comeback'), { timeoutMs: 10_000, message: 'not closed as slow' });
    await stalled.close();
    const back = new RawClient(t.server.hybridPort, apikey, 'comeback');
    await back.entered;
    await waitFor(() => back.ids.length >= ids.length, { timeoutMs: 20_000, message: `got ${back.ids.length} of ${ids.length}` });
    assert.deepEqual(back.ids, ids, 'nothing acked, so everything comes again, in order');
    await back.close();
  });
});
