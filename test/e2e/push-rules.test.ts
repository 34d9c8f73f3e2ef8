// One rule for every push, on every way in (src/hub/push-rules.ts, docs/api.md "Push
// rules"): a push some connector could not carry is refused before it is stored, with
// each connector's own "no", by real clients of each protocol.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { connectAny } from '../fixtures/any-client.js';
import { MANAGER_KINDS, connectManager, type ManagerKind, type ManagerPush } from '../fixtures/any-manager.js';
import { waitFor } from '../fixtures/wait.js';
import { PomeloClient, reference } from '../fixtures/pomelo-client.js';

/** `{"a":{"a":…}}` nested `n` deep, built without recursion. */
function nested(n: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = { a: v };
  return v;
}

/** Each kind's refusal of a push that breaks a rule. */
const REFUSED: Readonly<Record<ManagerKind, RegExp>> = {
  http: /^400 PUSH_INVALID$/,
  'hybrid-tcp': /^PUSH_INVALID$/,
  'hybrid-ws': /^PUSH_INVALID$/,
  sio: /^PUSH_INVALID$/,
  'sio-v2-pomelo': /^PUSH_INVALID$/,
  ws: /^PUSH_INVALID$/,
  // MQTT 5 §3.4.2.1: 0x99 Payload format invalid.
  'mqtt-5': /^0x99$/,
  // MQTT-3.3.5-2: 3.1.1 has no refusal in PUBACK; the server closes the connection.
  'mqtt-3': /^(closed|0x0)$/,
};

const POISON: readonly { readonly name: string; readonly push: ManagerPush; readonly field: RegExp }[] = [
  // 130 characters, 260 bytes: over a Pomelo route's one-byte length.
  { name: '130 × é as the event', push: { event: 'é'.repeat(130), data: 1 }, field: /^event: 260 bytes/ },
  { name: 'a line feed in the event', push: { event: 'a\nid: 9', data: 1 }, field: /^event: .*control characters/ },
  { name: 'NUL in the event', push: { event: 'a\u0000', data: 1 }, field: /^event: .*control characters/ },
  { name: 'data nested 100 deep', push: { event: 'onMsg', data: nested(100) }, field: /^data: nested deeper than 64/ },
];

describe('push rules on every way in', () => {
  let t: TestServer;

  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  async function history(): Promise<unknown[]> {
    const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, { headers: { authorization: `Bearer ${t.app.secret}` } });
    return ((await res.json()) as { messages: unknown[] }).messages;
  }

  for (const kind of MANAGER_KINDS) {
    it(`${kind}: refuses every poison push before storing it`, async () => {
      for (const poison of POISON) {
        // MQTT 3.1.1 closes on a refusal: one connection per push.
        const m = await connectManager(t, kind);
        try {
          const answer = await m.push(poison.push);
          assert.equal(answer.ok, false, `${kind} accepted ${poison.name}`);
          if (!answer.ok) {
            // A /ws frame nests its data one level down, and the frame's own depth limit
            // (the rule's plus one) refuses it before it is read: LIMIT_PAYLOAD.
            const frameTooDeep = kind === 'ws' && poison.field.source.startsWith('^data');
            const code = frameTooDeep ? /^LIMIT_PAYLOAD$/ : REFUSED[kind];
            const field = frameTooDeep ? /nested deeper than 65 levels/ : poison.field;
            assert.match(answer.code, code, `${kind}, ${poison.name}: ${answer.code} ${answer.message}`);
            // Those that carry a message name the field.
            if (!kind.startsWith('mqtt')) assert.match(answer.message, field, `${kind}, ${poison.name}`);
          }
        } finally {
          await m.close();
        }
      }
      assert.deepEqual(await history(), [], `${kind}: something was stored`);
    });
  }

  it('the same pushes within the rules are accepted every way (the refusals above are the rule, not the connector)', async () => {
    const before = (await history()).length;
    for (const kind of MANAGER_KINDS) {
      const m = await connectManager(t, kind);
      try {
        const answer = await m.push({ event: 'é'.repeat(127), data: nested(64) });
        assert.equal(answer.ok, true, `${kind}: ${JSON.stringify(answer)}`);
      } finally {
        await m.close();
      }
    }
    await waitFor(async () => (await history()).length === before + MANAGER_KINDS.length, { timeoutMs: 5000, message: 'every push stored' });
  });

  it("the seed's routes pushAll and pushByClientId follow the same rules, and 5,000-deep JSON over hybrid is refused (pomelo-protocol codec over TCP)", async () => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
    try {
      await c.request('hybrid-connector.entryHandler.enter', { apiKey: t.app.apikey, role: 'server', password: t.app.secret });
      const before = (await history()).length;
      for (const [route, body] of [
        ['pushserver.pushHandler.pushAll', { apikey: t.app.apikey, msg: nested(500) }],
        ['pushserver.pushHandler.pushByClientId', { apikey: t.app.apikey, clientId: 'x', msg: nested(65) }],
      ] as const) {
        const answer = (await c.request(route, body)) as { code: number; msg: string; error?: string };
        assert.deepEqual([answer.code, answer.error], [500, 'PUSH_INVALID'], `${route}: ${JSON.stringify(answer)}`);
        assert.match(answer.msg, /^data: nested deeper than 64/);
      }
      // 5,000 deep, written as bytes (a JS client's own encoder would overflow its stack).
      const { Package, Message, strencode } = reference.protocol;
      const json = `{"data":${'['.repeat(5000)}${']'.repeat(5000)}}`;
      const answered = c.waitFor('unmatched-response', (id) => id === 999, 5000);
      c.sendRaw(Package.encode(Package.TYPE_DATA, Message.encode(999, Message.TYPE_REQUEST, 0, 'shaddock.manager.push', strencode(json))));
      const [, raw] = await answered;
      const answer = JSON.parse(String(raw)) as { code: number; msg: string; error?: string };
      assert.deepEqual([answer.code, answer.error], [500, 'PUSH_INVALID'], JSON.stringify(answer));
      assert.equal((await history()).length, before);
    } finally {
      await c.close();
    }
  });

  it('HTTP: 5,000-deep JSON is a 400, not a stack overflow, and nothing is stored', async () => {
    const before = (await history()).length;
    const body = `{"data":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
      body,
    });
    assert.equal(res.status, 400);
    const answer = (await res.json()) as { code: string; message: string };
    assert.equal(answer.code, 'PUSH_INVALID');
    assert.match(answer.message, /^data: nested deeper than 64/);
    assert.equal((await history()).length, before);
  });

  it('with clients online, a poison push is a 400 and stored nowhere (it was a 500 after it was stored), and later messages arrive', async () => {
    const clients = await Promise.all([connectAny(t, 'hybrid-tcp', 'online-tcp'), connectAny(t, 'hybrid-ws', 'online-ws'), connectAny(t, 'sio', 'online-sio')]);
    try {
      const before = (await history()).length;
      const push = (body: unknown): Promise<Response> =>
        fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const bad = await push({ event: 'é'.repeat(130), data: 'poison' });
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { code: string }).code, 'PUSH_INVALID');
      assert.equal((await history()).length, before);
      const good = await push({ event: 'onMsg', data: 'after' });
      assert.equal(good.status, 202);
      const { id } = (await good.json()) as { id: number };
      await waitFor(() => clients.every((c) => c.received.some((r) => r.id === id)), { timeoutMs: 5000, message: 'the next message on every client' });
      for (const c of clients) assert.deepEqual(c.received.map((r) => r.data), ['after']);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });
});
