// Receipts with real clients (docs/delivery.md, "Receipts"): every delivery and every
// ack of a backlog is counted, however long the backlog, once per client.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { once, waitFor } from '../fixtures/wait.js';

interface ReceiptView {
  readonly targeted: number;
  readonly delivered: number;
  readonly acked: number;
  readonly skipped: number;
}

const api = (t: TestServer, path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
  });

/** The receipts of the messages with ids in [from, to], through the history API (500 a page). */
async function receipts(t: TestServer, from: number, to: number): Promise<Map<number, ReceiptView>> {
  const out = new Map<number, ReceiptView>();
  let before = to + 1;
  while (before > from) {
    const res = await api(t, `/messages?limit=500&before=${before}`);
    assert.equal(res.status, 200);
    const page = (await res.json()) as { messages: { id: number; receipt: ReceiptView }[]; nextBefore: number | null };
    for (const m of page.messages) if (m.id >= from) out.set(m.id, m.receipt);
    if (page.nextBefore === null) break;
    before = page.nextBefore;
  }
  return out;
}

function sum(rs: Map<number, ReceiptView>): ReceiptView {
  let targeted = 0;
  let delivered = 0;
  let acked = 0;
  let skipped = 0;
  for (const r of rs.values()) {
    targeted += r.targeted;
    delivered += r.delivered;
    acked += r.acked;
    skipped += r.skipped;
  }
  return { targeted, delivered, acked, skipped };
}

describe('receipts of a long backlog (issue 15 item 4)', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  const connect = () => PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp', requestTimeoutMs: 15_000 });
  const enter = (c: PomeloClient, clientId: string, extra: Record<string, unknown> = {}) =>
    c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId, role: 'client', ...extra });

  it('1,500 messages to an offline MQTT 5 session, acked by PUBACK on reconnect: every one delivered and acked once', async () => {
    const clientId = 'backlog-mqtt';
    const session = async (): Promise<MqttClient> => {
      const c = mqttConnect(`mqtt://127.0.0.1:${t.server.mqttPort}`, {
        protocolVersion: 5,
        clientId,
        username: t.app.apikey,
        clean: false,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        properties: { sessionExpiryInterval: 3600 },
      });
      await once(c as unknown as EventEmitter, 'connect', 5000);
      return c;
    };
    const first = await session();
    await first.subscribeAsync(`apps/${t.app.apikey}/clients/${clientId}`, { qos: 1 });
    await first.endAsync();
    const total = 1500;
    const ids: number[] = [];
    for (let i = 0; i < total; i++) {
      const res = await api(t, '/messages', { method: 'POST', body: JSON.stringify({ data: i, to: { clientIds: [clientId] } }) });
      ids.push(((await res.json()) as { id: number }).id);
    }
    const got: number[] = [];
    const back = mqttConnect(`mqtt://127.0.0.1:${t.server.mqttPort}`, {
      protocolVersion: 5,
      clientId,
      username: t.app.apikey,
      clean: false,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      properties: { sessionExpiryInterval: 3600 },
    });
    back.on('message', (_topic, payload) => got.push((JSON.parse(payload.toString('utf8')) as { id: number }).id));
    try {
      await once(back as unknown as EventEmitter, 'connect', 5000);
      await back.subscribeAsync(`apps/${t.app.apikey}/clients/${clientId}`, { qos: 1 });
      await waitFor(() => got.length >= total, { timeoutMs: 20_000, message: 'the backlog over MQTT' });
      assert.deepEqual(got, ids);
      let totals: ReceiptView | undefined;
      await waitFor(
        async () => {
          await t.server.hub.flush();
          totals = sum(await receipts(t, ids[0]!, ids.at(-1)!));
          return totals.acked >= total;
        },
        { timeoutMs: 10_000, message: 'every PUBACK counted' },
      ).catch(() => undefined);
      assert.deepEqual(totals, { targeted: total, delivered: total, acked: total, skipped: 0 });
    } finally {
      await back.endAsync();
    }
  });

  for (const [label, to] of [
    ['named', (id: string) => ({ clientIds: [id] })],
    ['tag', (id: string) => ({ tags: [`tag-of-${id}`] })],
  ] as const) {
    it(`1,500 ${label} messages to an offline client, all acked on reconnect with one ack: every one delivered and acked once`, async () => {
      const clientId = `backlog-${label}`;
      const c1 = await connect();
      assert.deepEqual(await enter(c1, clientId, { tags: [`tag-of-${clientId}`] }), { code: 200, msg: 'add ok' });
      await c1.close();
      const total = 1500;
      let first = 0;
      let last = 0;
      for (let i = 0; i < total; i++) {
        const res = await api(t, '/messages', { method: 'POST', body: JSON.stringify({ data: i, to: to(clientId) }) });
        assert.equal(res.status, 202);
        const { id } = (await res.json()) as { id: number };
        if (i === 0) first = id;
        last = id;
      }
      const c2 = await connect();
      const got: number[] = [];
      c2.on('onMsg', (body: unknown) => got.push((body as { id: number }).id));
      await enter(c2, clientId);
      await waitFor(() => got.length === total, { timeoutMs: 20_000, message: `backlog: got ${got.length} of ${total}` });
      assert.deepEqual(got, Array.from({ length: total }, (_, i) => first + i));
      // One cumulative ack for the whole backlog.
      c2.notify('shaddock.client.ack', { id: last });
      let totals: ReceiptView | undefined;
      await waitFor(
        async () => {
          await t.server.hub.flush();
          totals = sum(await receipts(t, first, last));
          return totals.acked >= total;
        },
        { timeoutMs: 5000, message: 'every ack counted' },
      ).catch(() => undefined);
      assert.deepEqual(totals, { targeted: label === 'named' ? total : 0, delivered: total, acked: total, skipped: 0 });
      const rs = await receipts(t, first, last);
      assert.equal(rs.size, total);
      for (const [id, r] of rs) assert.deepEqual({ delivered: r.delivered, acked: r.acked, skipped: r.skipped }, { delivered: 1, acked: 1, skipped: 0 }, `message ${id}`);
      // A reconnect gets nothing again, and counts nothing again.
      await c2.close();
      const c3 = await connect();
      let again = 0;
      c3.on('onMsg', () => again++);
      await enter(c3, clientId);
      const marker = await api(t, '/messages', { method: 'POST', body: JSON.stringify({ data: 'next', to: to(clientId) }) });
      const { id: next } = (await marker.json()) as { id: number };
      await waitFor(() => again === 1, { timeoutMs: 5000, message: 'the next message' });
      c3.notify('shaddock.client.ack', { id: next });
      await waitFor(
        async () => {
          await t.server.hub.flush();
          return (await receipts(t, next, next)).get(next)?.acked === 1;
        },
        { timeoutMs: 5000, message: 'the next ack' },
      );
      assert.deepEqual(sum(await receipts(t, first, last)), { targeted: label === 'named' ? total : 0, delivered: total, acked: total, skipped: 0 });
      await c3.close();
    });
  }
});
