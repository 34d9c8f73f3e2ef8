import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

const api = (t: TestServer, path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
  });

/** Collects the ids of onMsg pushes a client receives, and acks each one. */
function collect(c: PomeloClient, into: number[], ack = true): void {
  c.on('onMsg', (body: unknown) => {
    const id = (body as { id: number }).id;
    into.push(id);
    if (ack) c.notify('shaddock.client.ack', { id });
  });
}

for (const transport of ['tcp', 'ws'] as const) {
  describe(`delivery over hybrid ${transport}`, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer();
    });
    after(async () => {
      await t.close();
    });

    const connect = () => PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport, requestTimeoutMs: 15_000 });
    const enter = (c: PomeloClient, clientId: string, extra: Record<string, unknown> = {}) =>
      c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId, role: 'client', ...extra });

    it('a reconnect in the middle of a 10,000-message stream: every message exactly once after dedupe, in order', async () => {
      const clientId = `stream-${transport}`;
      const seen: number[] = [];
      let c = await connect();
      collect(c, seen);
      assert.deepEqual(await enter(c, clientId), { code: 200, msg: 'add ok' });
      const total = 10_000;
      const first = await t.server.hub.publish({ apikey: t.app.apikey, target: { all: false, clientIds: [], tags: ['none'] }, event: 'marker', data: 0 });
      const publishing = (async () => {
        for (let i = 0; i < total; i++) {
          await t.server.hub.publish({ apikey: t.app.apikey, target: { all: true, clientIds: [], tags: [] }, event: 'onMsg', data: i });
          if (i % 500 === 0) await new Promise((r) => setImmediate(r));
        }
      })();
      await waitFor(() => seen.length > 2000, { timeoutMs: 20_000, message: 'stream did not start' });
      // Drop the connection mid-stream, then come back with the last id processed.
      await c.close();
      const lastId = seen.at(-1) ?? 0;
      c = await connect();
      collect(c, seen);
      await enter(c, clientId, { lastId });
      await publishing;
      const expected = Array.from({ length: total }, (_, i) => first.message.id + 1 + i);
      await waitFor(() => new Set(seen).size >= total, { timeoutMs: 30_000, message: `got ${new Set(seen).size} of ${total}` });
      const deduped = seen.filter((id, i) => i === 0 || id > seen[i - 1]!);
      assert.deepEqual(deduped, expected, 'in order, none missing');
      await c.close();
    });

    it('an offline client gets what was queued on its next connect; acks and receipts', async () => {
      const clientId = `offline-${transport}`;
      const c1 = await connect();
      await enter(c1, clientId);
      await c1.close();
      const res = await api(t, '/messages', { method: 'POST', body: JSON.stringify({ data: { title: 't', msg: '离线' }, to: { clientIds: [clientId] } }) });
      assert.equal(res.status, 202);
      const { id } = (await res.json()) as { id: number };
      const c2 = await connect();
      const got = c2.waitFor('onMsg');
      await enter(c2, clientId);
      const [body] = await got;
      assert.deepEqual(body, { msg: { title: 't', msg: '离线' }, id });
      c2.notify('shaddock.client.ack', { id });
      await waitFor(
        async () => {
          await t.server.hub.flush();
          const r = (await (await api(t, `/messages/${id}`)).json()) as { receipt: { acked: number } };
          return r.receipt.acked === 1;
        },
        { timeoutMs: 5000, message: 'ack did not reach the receipt' },
      );
      const receipt = (await (await api(t, `/messages/${id}`)).json()) as Record<string, unknown>;
      assert.deepEqual(receipt['receipt'], { targeted: 1, delivered: 1, acked: 1, skipped: 0 });
      assert.equal((receipt['recipients'] as { state: string }[])[0]?.state, 'acked');
      await c2.close();
      // Acked: a new connection does not get it again.
      const c3 = await connect();
      const again: number[] = [];
      collect(c3, again, false);
      await enter(c3, clientId);
      await t.server.hub.publish({ apikey: t.app.apikey, target: { all: false, clientIds: [clientId as never], tags: [] }, event: 'onMsg', data: 'next' });
      await waitFor(() => again.length === 1, { timeoutMs: 5000, message: 'next message not received' });
      assert.ok(again[0]! > id);
      await c3.close();
    });

    it('tags through the routes, and a manager pushing to a tag', async () => {
      const manager = await connect();
      await manager.request('connector.entryHandler.enter', { apikey: t.app.apikey, role: 'server', password: t.app.secret });
      const fan = await connect();
      const bystander = await connect();
      await enter(fan, `fan-${transport}`, { tags: ['football'] });
      await enter(bystander, `by-${transport}`);
      assert.deepEqual(await fan.request('shaddock.client.subscribe', { tags: ['tennis'] }), { code: 200 });
      let bystanderGot = 0;
      bystander.on('onMsg', () => bystanderGot++);
      const got = fan.waitFor('onGoal', (b) => (b as { msg: string }).msg === 'goal');
      const res = (await manager.request('shaddock.manager.push', { event: 'onGoal', data: 'goal', to: { tags: ['football'] } })) as Record<string, unknown>;
      assert.equal(res['code'], 200);
      assert.equal(res['targeted'], 1);
      await got;
      const tennis = fan.waitFor('onMsg');
      const httpRes = await api(t, '/messages', { method: 'POST', body: JSON.stringify({ data: 'ace', to: { tags: ['tennis'] } }) });
      assert.equal(httpRes.status, 202);
      assert.equal(((await tennis)[0] as { msg: string }).msg, 'ace');
      assert.deepEqual(await fan.request('shaddock.client.unsubscribe', { tags: ['tennis'] }), { code: 200 });
      const clients = (await (await api(t, '/clients')).json()) as { clients: { clientId: string; tags: string[] }[] };
      assert.deepEqual(clients.clients.find((x) => x.clientId === `fan-${transport}`)?.tags, ['football']);
      assert.equal(bystanderGot, 0);
      const bad = (await fan.request('shaddock.client.subscribe', { tags: 'nope' })) as Record<string, unknown>;
      assert.equal(bad['code'], 500);
      assert.match(String(bad['msg']), /tags/);
      for (const c of [manager, fan, bystander]) await c.close();
    });

    it('history pages newest first with receipts', async () => {
      for (let i = 0; i < 5; i++) await api(t, '/messages', { method: 'POST', body: JSON.stringify({ data: i, to: { clientIds: ['nobody'] } }) });
      const page1 = (await (await api(t, '/messages?limit=2')).json()) as { messages: { id: number; receipt: unknown }[]; nextBefore: number };
      assert.equal(page1.messages.length, 2);
      assert.ok(page1.messages[0]!.id > page1.messages[1]!.id);
      assert.deepEqual(page1.messages[0]!.receipt, { targeted: 1, delivered: 0, acked: 0, skipped: 0 });
      const page2 = (await (await api(t, `/messages?limit=2&before=${page1.nextBefore}`)).json()) as { messages: { id: number }[] };
      assert.equal(page2.messages[0]!.id, page1.messages[1]!.id - 1);
      assert.equal((await api(t, '/messages/999999')).status, 404);
      assert.equal((await api(t, '/messages?limit=9999')).status, 400);
    });
  });
}
