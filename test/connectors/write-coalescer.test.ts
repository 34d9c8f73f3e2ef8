import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket, type AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { corkForTurn, corkedCount } from '../../src/connectors/write-coalescer.js';
import { once, waitFor } from '../fixtures/wait.js';

/** A connected pair over loopback: the server's socket and what its peer reads. */
async function pair(): Promise<{ server: Socket; received: () => string; close: () => Promise<void> }> {
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const accepted = once(listener, 'connection', 5000);
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
  const [server] = (await accepted) as [Socket];
  let text = '';
  client.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return {
    server,
    received: () => text,
    close: async () => {
      client.destroy();
      server.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

describe('corkForTurn', () => {
  it('holds one turn of writes and sends them as one writev, in order', async () => {
    const p = await pair();
    try {
      let writev = 0;
      let write = 0;
      const socket = p.server as unknown as { _writev: (...a: unknown[]) => unknown; _write: (...a: unknown[]) => unknown };
      const writevOf = socket._writev.bind(p.server);
      const writeOf = socket._write.bind(p.server);
      socket._writev = (...a: unknown[]) => (writev++, writevOf(...a));
      socket._write = (...a: unknown[]) => (write++, writeOf(...a));
      for (const part of ['a', 'b', 'c']) {
        corkForTurn(p.server);
        p.server.write(part);
      }
      assert.equal(p.server.writableCorked, 1, 'corked once, however many writes');
      assert.equal(corkedCount(), 1);
      assert.equal(p.server.writableLength, 3, 'held bytes count as buffered');
      await nextTurn();
      assert.equal(p.server.writableCorked, 0);
      assert.equal(corkedCount(), 0);
      assert.deepEqual([writev, write], [1, 0], 'one writev for the turn');
      await waitFor(() => p.received() === 'abc', { timeoutMs: 5000, message: 'abc' });
    } finally {
      await p.close();
    }
  });

  it('end() flushes what is held; a destroyed socket is only forgotten', async () => {
    const a = await pair();
    const b = await pair();
    try {
      corkForTurn(a.server);
      a.server.write('bye');
      a.server.end();
      corkForTurn(b.server);
      b.server.write('lost');
      b.server.destroy();
      await nextTurn();
      assert.equal(corkedCount(), 0);
      await waitFor(() => a.received() === 'bye', { timeoutMs: 5000, message: 'bye' });
      assert.equal(b.received(), '');
    } finally {
      await a.close();
      await b.close();
    }
  });
});
