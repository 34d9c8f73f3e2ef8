import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CONNECTORS, connectAny, type AnyClient, type ConnectorKind } from '../fixtures/any-client.js';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

const push = async (t: TestServer, body: unknown): Promise<{ id: number; targeted: number }> => {
  const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 202);
  return (await res.json()) as { id: number; targeted: number };
};

describe('one hub for every connector', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  it('a manager sees clients of every connector in one list; one push reaches all of them', async () => {
    const manager = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'ws' });
    await manager.request('connector.entryHandler.enter', { apikey: t.app.apikey, role: 'server', password: t.app.secret });
    const clients: AnyClient[] = [];
    try {
      const allAdded = manager.waitFor('onAdd', (b) => (b as { users: string[] }).users.length === CONNECTORS.length, 20_000);
      for (const kind of CONNECTORS) clients.push(await connectAny(t, kind, `all-${kind}`));
      const lastAdd = (await allAdded)[0] as { users: string[] };
      assert.deepEqual([...lastAdd.users].sort(), CONNECTORS.map((k) => `all-${k}`).sort());
      const listed = (await (await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/clients`, { headers: { authorization: `Bearer ${t.app.secret}` } })).json()) as {
        clients: { clientId: string; connector: string }[];
      };
      assert.deepEqual(
        Object.fromEntries(listed.clients.map((c) => [c.clientId, c.connector])),
        Object.fromEntries(CONNECTORS.map((k) => [`all-${k}`, k])),
      );
      const { id, targeted } = await push(t, { data: { title: '通知', msg: '全部' } });
      assert.equal(targeted, CONNECTORS.length);
      for (const c of clients) {
        await waitFor(() => c.received.some((r) => r.id === id), { timeoutMs: 5000, message: `${c.kind} did not get the push` });
        assert.deepEqual(c.received.find((r) => r.id === id)?.data, { title: '通知', msg: '全部' }, c.kind);
      }
      const one = await push(t, { event: 'onPrivate', data: 'only mqtt', to: { clientIds: ['all-mqtt'] } });
      await waitFor(() => clients.find((c) => c.kind === 'mqtt')!.received.some((r) => r.id === one.id), { timeoutMs: 5000, message: 'mqtt missed its message' });
      for (const c of clients) if (c.kind !== 'mqtt') assert.ok(!c.received.some((r) => r.id === one.id), `${c.kind} got another client's message`);
    } finally {
      for (const c of clients) await c.close();
      await manager.close();
    }
  });

  it('a clientId that reconnects over another connector takes over; the first is told "replaced"', async () => {
    const kinds: ConnectorKind[] = ['mqtt', 'ws', 'sio', 'hybrid-tcp', 'sse', 'hybrid-ws', 'mqtt'];
    let previous = await connectAny(t, kinds[0]!, 'roamer');
    for (const kind of kinds.slice(1)) {
      const next = await connectAny(t, kind, 'roamer');
      const reason = await Promise.race([previous.closedReason, new Promise<string>((r) => setTimeout(() => r('timeout'), 5000))]);
      // MQTT 3.1.1 has no server DISCONNECT: the old connection is simply closed.
      assert.ok(reason === 'replaced' || (previous.kind === 'mqtt' && reason === 'closed'), `${previous.kind} → ${kind}: ${reason}`);
      const online = t.server.hub.onlineClients(t.app.apikey).filter((c) => c.clientId === 'roamer');
      assert.deepEqual(online.map((c) => c.connector), [kind]);
      await previous.close();
      previous = next;
    }
    await previous.close();
  });
});

/**
 * Issue #4's proof, connector by connector: a reconnect in the middle of a long stream
 * loses nothing and, after dropping repeats by id, delivers every message once, in order.
 */
describe('a reconnect in the middle of a 10,000-message stream, on every connector', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxBufferedBytes: 64 * 1024 * 1024 });
  });
  after(async () => {
    await t.close();
  });

  for (const kind of CONNECTORS) {
    it(kind, async () => {
      const clientId = `stream-${kind}`;
      const total = 10_000;
      let client = await connectAny(t, kind, clientId);
      const seen: number[] = [];
      const first = (await t.server.storage.messages.lastId(t.app.apikey)) + 1;
      const publishing = (async () => {
        for (let i = 0; i < total; i++) {
          await t.server.hub.publish({ apikey: t.app.apikey, target: { all: false, clientIds: [clientId as never], tags: [] }, event: 'onMsg', data: i });
          if (i % 250 === 0) await new Promise((r) => setImmediate(r));
        }
      })();
      await waitFor(() => client.received.length > 2500, { timeoutMs: 30_000, message: `${kind}: stream did not start` });
      await client.close();
      seen.push(...client.received.map((r) => r.id));
      const lastId = seen.at(-1);
      client = await connectAny(t, kind, clientId, lastId !== undefined ? { lastId } : {});
      await publishing;
      await waitFor(() => new Set([...seen, ...client.received.map((r) => r.id)]).size >= total, {
        timeoutMs: 60_000,
        message: `${kind}: got ${new Set([...seen, ...client.received.map((r) => r.id)]).size} of ${total}`,
      });
      seen.push(...client.received.map((r) => r.id));
      await client.close();
      const deduped = seen.filter((id, i) => i === 0 || id > seen[i - 1]!);
      assert.deepEqual(deduped, Array.from({ length: total }, (_, i) => first + i), 'in order, none missing');
    });
  }
});
