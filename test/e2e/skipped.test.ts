// A message one connection cannot take is skipped for that connection only (issue 15,
// item 1): recorded in its receipt as `skipped` with the reason, never counted delivered
// or acked, and it holds back nothing — not the next message, not a resume. Real
// clients: MQTT.js at MQTT 5 with a small Maximum Packet Size (MQTT-3.1.2-25), and the
// reference pomelo-protocol / pomelo-protobuf codecs with a proto the message does not fit.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { once, waitFor } from '../fixtures/wait.js';

interface MessageView {
  readonly receipt: { readonly targeted: number; readonly delivered: number; readonly acked: number; readonly skipped: number };
  readonly recipients: readonly { readonly clientId: string; readonly state: string; readonly reason?: string; readonly skippedAt?: string }[];
}

function api(t: TestServer, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
}

async function push(t: TestServer, body: unknown): Promise<number> {
  const res = await api(t, '/messages', { method: 'POST', body: JSON.stringify(body) });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { id: number }).id;
}

async function view(t: TestServer, id: number): Promise<MessageView> {
  const res = await api(t, `/messages/${id}`);
  assert.equal(res.status, 200);
  return (await res.json()) as MessageView;
}

/** Waits until the flushed receipt of `id` matches `check`, then returns its view. */
async function settled(t: TestServer, id: number, check: (v: MessageView) => boolean, what: string): Promise<MessageView> {
  let last: MessageView | undefined;
  await waitFor(
    async () => {
      await t.server.hub.flush();
      last = await view(t, id);
      return check(last);
    },
    { timeoutMs: 5000, message: what },
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}; last: ${JSON.stringify(last)}`);
  });
  return last!;
}

describe("skipped: a message one connection cannot take (MQTT 5 client's Maximum Packet Size)", () => {
  let t: TestServer;
  const open: MqttClient[] = [];
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
    await t.close();
  });

  /** A persistent MQTT 5 session with a 300-byte Maximum Packet Size, subscribed to its own topic at QoS 1. */
  async function small(clientId: string, got: number[]): Promise<MqttClient> {
    const c = mqttConnect(`mqtt://127.0.0.1:${t.server.mqttPort}`, {
      protocolVersion: 5,
      clientId,
      username: t.app.apikey,
      clean: false,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      properties: { maximumPacketSize: 300, sessionExpiryInterval: 3600 },
    });
    open.push(c);
    c.on('message', (_topic, payload) => got.push((JSON.parse(payload.toString('utf8')) as { id: number }).id));
    await once(c as unknown as EventEmitter, 'connect', 5000);
    await c.subscribeAsync(`apps/${t.app.apikey}/clients/${clientId}`, { qos: 1 });
    return c;
  }

  it('gets the small messages before and after a big one, which its receipt shows skipped with the reason; a resume does not stall', async () => {
    const clientId = 'mqtt-small';
    const to = { clientIds: [clientId] };
    const got: number[] = [];
    const c = await small(clientId, got);
    const first = await push(t, { data: 'small one', to });
    const big = await push(t, { data: 'x'.repeat(1000), to });
    const second = await push(t, { data: 'small two', to });
    await waitFor(() => got.length === 2, { timeoutMs: 5000, message: 'the two small messages' });
    assert.deepEqual(got, [first, second]);

    const skipped = await settled(t, big, (v) => v.receipt.skipped === 1, 'the big one skipped');
    assert.deepEqual(skipped.receipt, { targeted: 1, delivered: 0, acked: 0, skipped: 1 });
    assert.equal(skipped.recipients[0]?.state, 'skipped');
    assert.equal(skipped.recipients[0]?.reason, 'LIMIT_CLIENT_MAX_PACKET');
    assert.ok(skipped.recipients[0]?.skippedAt, 'with its time');
    // The small ones are delivered and acked (PUBACK), nothing else.
    for (const id of [first, second]) {
      const v = await settled(t, id, (x) => x.receipt.acked === 1, `message ${id} acked`);
      assert.deepEqual(v.receipt, { targeted: 1, delivered: 1, acked: 1, skipped: 0 });
    }

    // Offline: a big one last, then back. The session resumes past the skipped messages,
    // and what comes after them arrives.
    await c.endAsync();
    const third = await push(t, { data: 'small three', to });
    const big2 = await push(t, { data: 'y'.repeat(1000), to });
    const got2: number[] = [];
    const back = await small(clientId, got2);
    const fourth = await push(t, { data: 'small four', to });
    await waitFor(() => got2.includes(fourth), { timeoutMs: 5000, message: 'the message after the resume' });
    assert.deepEqual(got2, [third, fourth]);
    const v2 = await settled(t, big2, (v) => v.receipt.skipped === 1, 'the second big one skipped');
    assert.deepEqual(v2.receipt, { targeted: 1, delivered: 0, acked: 0, skipped: 1 });
    await settled(t, fourth, (v) => v.receipt.acked === 1, 'the last message acked');
    // Skipped once, for good: the first big one was not counted again by the resume.
    assert.deepEqual((await view(t, big)).receipt, { targeted: 1, delivered: 0, acked: 0, skipped: 1 });
    await back.endAsync();

    // The position went past both big ones: a third connection gets nothing old.
    const got3: number[] = [];
    const third3 = await small(clientId, got3);
    const fifth = await push(t, { data: 'small five', to });
    await waitFor(() => got3.includes(fifth), { timeoutMs: 5000, message: 'the next message' });
    assert.deepEqual(got3, [fifth]);
    await third3.endAsync();
  });
});

describe('skipped: a message that does not fit the Pomelo proto of its route', () => {
  let t: TestServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shaddock-protos-'));
    const serverProtos = join(dir, 'serverProtos.json');
    const clientProtos = join(dir, 'clientProtos.json');
    // onMsg carries {msg: {title, msg}, id} (docs/pomelo.md); anything else does not fit.
    writeFileSync(serverProtos, JSON.stringify({ onMsg: { 'message Msg': { 'required string title': 1, 'required string msg': 2 }, 'required Msg msg': 1, 'optional uInt32 id': 2 } }));
    writeFileSync(clientProtos, JSON.stringify({}));
    t = await startTestServer({ serverProtosFile: serverProtos, clientProtosFile: clientProtos });
  });
  after(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = () => PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp', protobufCodec: 'node', requestTimeoutMs: 10_000 });

  it('the hybrid client gets the messages around it, its receipt says PROTO_DOES_NOT_FIT, and a resume replays past it', async () => {
    const clientId = 'pb-client';
    const to = { clientIds: [clientId] };
    const c = await connect();
    const got: { id: number; msg: unknown }[] = [];
    c.on('onMsg', (body: unknown) => got.push(body as { id: number; msg: unknown }));
    assert.deepEqual(await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId, role: 'client' }), { code: 200, msg: 'add ok' });
    const fits = { title: 't', msg: 'm' };
    const first = await push(t, { data: fits, to });
    const unfit = await push(t, { data: 'a string, not a Msg', to });
    const second = await push(t, { data: fits, to });
    await waitFor(() => got.length === 2, { timeoutMs: 5000, message: 'the two messages that fit' });
    assert.deepEqual(got, [
      { msg: fits, id: first },
      { msg: fits, id: second },
    ]);
    const v = await settled(t, unfit, (x) => x.receipt.skipped === 1, 'the unfit message skipped');
    assert.deepEqual(v.receipt, { targeted: 1, delivered: 0, acked: 0, skipped: 1 });
    assert.equal(v.recipients[0]?.state, 'skipped');
    assert.equal(v.recipients[0]?.reason, 'PROTO_DOES_NOT_FIT');
    await c.close();

    // Resume from before it: replayed in order around it, no `resume failed` kick.
    const again = await connect();
    const replayed: number[] = [];
    again.on('onMsg', (body: unknown) => replayed.push((body as { id: number }).id));
    let kicked = false;
    again.on('onKick', () => (kicked = true));
    await again.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId, role: 'client', lastId: first - 1 });
    const third = await push(t, { data: fits, to });
    await waitFor(() => replayed.includes(third), { timeoutMs: 5000, message: 'the message after the resume' });
    assert.deepEqual(replayed, [first, second, third]);
    assert.equal(kicked, false);
    again.notify('shaddock.client.ack', { id: third });
    await settled(t, third, (x) => x.receipt.acked === 1, 'the ack after the resume');
    // The ack covered the range around it, not it.
    assert.deepEqual((await view(t, unfit)).receipt, { targeted: 1, delivered: 0, acked: 0, skipped: 1 });
    await again.close();
  });

  it('a stored message whose event no hybrid package can carry is skipped on replay, not a `resume failed` kick', async () => {
    const clientId = 'long-event';
    const c = await connect();
    assert.deepEqual(await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId, role: 'client' }), { code: 200, msg: 'add ok' });
    await c.close();
    // Stored as an older version accepted it (260 bytes of route: over Pomelo's 255, spec
    // §4.1), behind the door's checks: what a replay may still meet.
    const poison = await t.server.storage.messages.append({
      apikey: t.app.apikey,
      targeted: 1,
      target: { all: false, clientIds: [clientId as never], tags: [] },
      event: 'é'.repeat(130),
      data: 'x',
      ttlSeconds: 3600,
    });
    const after = await push(t, { data: { title: 't', msg: 'after' }, to: { clientIds: [clientId] } });
    const back = await connect();
    const got: number[] = [];
    back.on('onMsg', (body: unknown) => got.push((body as { id: number }).id));
    let kicked: unknown;
    back.on('onKick', (why: unknown) => (kicked = why));
    await back.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId, role: 'client', lastId: poison.id - 1 });
    await waitFor(() => got.includes(after), { timeoutMs: 5000, message: 'the message after the one no package can carry' });
    assert.equal(kicked, undefined);
    const v = await settled(t, poison.id, (x) => x.receipt.skipped === 1, 'the unencodable message skipped');
    assert.equal(v.recipients[0]?.reason, 'PROTO_ENCODE_FAILED');
    await back.close();
  });
});
