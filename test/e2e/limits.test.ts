// Connection limits (docs/security.md#limits) against real clients of every connector:
// over a limit each one hears its protocol's own refusal with the reason code, and
// clients within their limits keep working.
//
// Limits per source address are tested with `limitsExemptIps: []`, so that ordinary
// test clients on 127.0.0.1 count; a client bound to 127.0.0.3 plays "someone else".
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, request, type IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { io as ioV4 } from 'socket.io-client';
import { WebSocket } from 'ws';
import { PomeloClient, reference } from '../fixtures/pomelo-client.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

const { Package } = reference.protocol;

/** The first argument of the next `event` of a socket.io or mqtt.js client (typed emitters `events.once` does not take). */
function nextEvent<T = unknown>(emitter: { once(event: string, listener: (arg: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (arg: T) => resolve(arg)));
}
const HANDSHAKE = Package.encode(Package.TYPE_HANDSHAKE, Buffer.from(JSON.stringify({ sys: { type: 'limits-test', version: '0.0.1' } })));

/** A TCP connection to the hybrid port that says nothing: it counts as open and pending. */
async function silentSocket(t: TestServer, localAddress = '127.0.0.1'): Promise<Socket> {
  const s = netConnect({ host: '127.0.0.1', port: t.server.hybridPort, localAddress });
  await once(s, 'connect');
  return s;
}

async function closeSocket(s: Socket): Promise<void> {
  if (s.destroyed) return;
  const closed = once(s, 'close');
  s.destroy();
  await closed;
}

/** Hybrid TCP, spoken with the reference codec: sends a handshake, returns the kick reason the server gives before closing. */
async function hybridTcpKick(t: TestServer): Promise<string> {
  const s = netConnect({ host: '127.0.0.1', port: t.server.hybridPort });
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => undefined);
  await once(s, 'connect');
  s.write(HANDSHAKE);
  await once(s, 'close');
  const decoded = Package.decode(Buffer.concat(chunks));
  const packages = Array.isArray(decoded) ? decoded : [decoded];
  const kick = packages.find((p) => p.type === Package.TYPE_KICK);
  assert.ok(kick?.body, `expected a KICK package, got types ${packages.map((p) => p.type).join(',')}`);
  return (JSON.parse(kick.body.toString('utf8')) as { reason: string }).reason;
}

/** A WebSocket upgrade the server refuses over HTTP: its status, Retry-After and `{code}`. */
async function upgradeRefusal(url: string): Promise<{ status: number; retryAfter: string | undefined; code: string }> {
  const ws = new WebSocket(url);
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.terminate();
      reject(new Error(`${url}: the upgrade was accepted`));
    });
    ws.on('error', () => undefined);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const header = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, retryAfter: typeof header === 'string' ? header : undefined, code: (JSON.parse(body) as { code: string }).code });
        ws.terminate();
      });
    });
  });
}

/**
 * A socket.io session refused at its engine.io handshake (src/connectors/sio): engine.io's
 * `allowRequest` answer, 403 with `{code: 4, message: "LIMIT_…: …"}` — the session is
 * never created. Returns the message; a socket.io-client sees a connect_error.
 */
async function sioRefusal(t: TestServer): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${t.server.sioPort}/socket.io/?EIO=4&transport=polling`);
  const body = (await res.json()) as { code: number; message: string };
  assert.equal(res.status, 403, `socket.io handshake answered ${res.status} ${JSON.stringify(body)}`);
  assert.equal(body.code, 4, 'engine.io error code 4: forbidden');
  const s = ioV4(`http://127.0.0.1:${t.server.sioPort}`, { transports: ['polling'], reconnection: false, forceNew: true });
  try {
    const err = await nextEvent<Error & { description?: unknown }>(s, 'connect_error');
    // 403: the session refused; 429/503: its TCP connection already, at the port's door.
    assert.ok([403, 429, 503].includes(Number(err.description)), `socket.io-client: refused, not ${String(err.description)}`);
  } finally {
    s.disconnect();
  }
  return body.message;
}

/** MQTT CONNACK refusal code (3.1.1 return code or 5 reason code) as mqtt.js reports it. */
async function mqttRefusal(t: TestServer, protocolVersion: 4 | 5, clientId: string): Promise<number> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, { username: t.app.apikey, clientId, protocolVersion, reconnectPeriod: 0, connectTimeout: 10_000 });
  try {
    const err = await Promise.race([
      nextEvent<Error & { code?: number }>(c, 'error'),
      nextEvent(c, 'connect').then(() => assert.fail(`MQTT ${clientId}: let in, not refused`)),
    ]);
    return err.code ?? -1;
  } finally {
    await c.endAsync(true);
  }
}

async function sseRefusal(t: TestServer, clientId: string): Promise<{ status: number; retryAfter: string | null; code: string }> {
  const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/clients/${clientId}/events`);
  const body = (await res.json()) as { code: string };
  return { status: res.status, retryAfter: res.headers.get('retry-after'), code: body.code };
}

/** A plain-WebSocket client that enters; resolves once entered, from `localAddress`. */
async function wsEnter(t: TestServer, clientId: string, localAddress = '127.0.0.1'): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${t.server.httpPort}/ws`, { localAddress });
  await once(ws, 'open');
  ws.send(JSON.stringify({ type: 'enter', apikey: t.app.apikey, clientId }));
  const [raw] = (await once(ws, 'message')) as [Buffer];
  const frame = JSON.parse(raw.toString()) as { type: string; code?: string };
  assert.equal(frame.type, 'entered', `ws enter of ${clientId}: ${raw.toString()}`);
  return ws;
}

async function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === ws.CLOSED) return;
  const closed = once(ws, 'close');
  ws.close();
  await closed;
}

describe('limits: connections per source address', () => {
  let t: TestServer;
  let held: Socket[] = [];
  before(async () => {
    t = await startTestServer({ limitsExemptIps: [], maxConnectionsPerIp: 2, connectsPerSecondPerIp: 0, handshakeTimeoutSeconds: 60 });
    held = [await silentSocket(t), await silentSocket(t)];
  });
  after(async () => {
    for (const s of held) await closeSocket(s);
    await t.close();
  });

  it('refuses the next connection on every connector, each in its own way, with LIMIT_CONNECTIONS_PER_IP', async () => {
    assert.match(await hybridTcpKick(t), /^LIMIT_CONNECTIONS_PER_IP: /);
    const hybridWs = await upgradeRefusal(`ws://127.0.0.1:${t.server.hybridPort}/`);
    assert.deepEqual(hybridWs, { status: 429, retryAfter: '1', code: 'LIMIT_CONNECTIONS_PER_IP' });
    assert.match(await sioRefusal(t), /^LIMIT_CONNECTIONS_PER_IP: /);
    assert.equal(await mqttRefusal(t, 5, 'm5'), 0x97, 'MQTT 5: quota exceeded');
    assert.equal(await mqttRefusal(t, 4, 'm4'), 3, 'MQTT 3.1.1: server unavailable');
    assert.deepEqual(await upgradeRefusal(`ws://127.0.0.1:${t.server.httpPort}/ws`), { status: 429, retryAfter: '1', code: 'LIMIT_CONNECTIONS_PER_IP' });
    const sse = await sseRefusal(t, 'sse1');
    assert.equal(sse.status, 429);
    assert.equal(sse.code, 'LIMIT_CONNECTIONS_PER_IP');
    assert.ok(sse.retryAfter !== null);
  });

  it('others are unaffected, and a closed connection makes room', async () => {
    const other = await wsEnter(t, 'from-elsewhere', '127.0.0.3');
    await closeWs(other);
    await closeSocket(held.pop()!);
    await waitFor(() => t.server.hub.connectionCount === 0, { timeoutMs: 5000, message: 'the other client to leave' });
    // The held socket's close is seen by the server a moment after ours.
    let ws: WebSocket | undefined;
    await waitFor(
      async () => {
        try {
          ws = await wsEnter(t, 'back-in');
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 5000, intervalMs: 50, message: 'room for one more connection from 127.0.0.1' },
    );
    await closeWs(ws!);
  });
});

describe('limits: connects per second per source address', () => {
  let t: TestServer;
  before(async () => {
    // 0.001 per second: a bucket of one connect, refilled only after 1000 s.
    t = await startTestServer({ limitsExemptIps: [], connectsPerSecondPerIp: 0.001 });
    await closeSocket(await silentSocket(t));
  });
  after(async () => {
    await t.close();
  });

  it('refuses further connects from the address on every connector with LIMIT_CONNECT_RATE', async () => {
    assert.match(await hybridTcpKick(t), /^LIMIT_CONNECT_RATE: /);
    const hybridWs = await upgradeRefusal(`ws://127.0.0.1:${t.server.hybridPort}/`);
    assert.equal(hybridWs.status, 429);
    assert.equal(hybridWs.code, 'LIMIT_CONNECT_RATE');
    assert.ok(Number(hybridWs.retryAfter) >= 1);
    assert.match(await sioRefusal(t), /^LIMIT_CONNECT_RATE: /);
    assert.equal(await mqttRefusal(t, 5, 'r5'), 0x9f, 'MQTT 5: connection rate exceeded');
    assert.equal(await mqttRefusal(t, 4, 'r4'), 3);
    const ws = await upgradeRefusal(`ws://127.0.0.1:${t.server.httpPort}/ws`);
    assert.equal(ws.status, 429);
    assert.equal(ws.code, 'LIMIT_CONNECT_RATE');
    const sse = await sseRefusal(t, 'sse1');
    assert.equal(sse.status, 429);
    assert.equal(sse.code, 'LIMIT_CONNECT_RATE');
  });

  it('another address still connects', async () => {
    await closeWs(await wsEnter(t, 'elsewhere', '127.0.0.3'));
  });
});

describe('limits: pending (not yet entered) connections', () => {
  let t: TestServer;
  let held: Socket[] = [];
  before(async () => {
    // Loopback stays exempt from per-address limits, but pending connections count for everyone.
    t = await startTestServer({ maxPendingConnections: 2, handshakeTimeoutSeconds: 60 });
    held = [await silentSocket(t), await silentSocket(t)];
  });
  after(async () => {
    for (const s of held) await closeSocket(s);
    await t.close();
  });

  it('refuses new connections while the node holds its maximum of pending ones, with LIMIT_PENDING', async () => {
    assert.match(await hybridTcpKick(t), /^LIMIT_PENDING: /);
    assert.deepEqual(await upgradeRefusal(`ws://127.0.0.1:${t.server.hybridPort}/`), { status: 503, retryAfter: '1', code: 'LIMIT_PENDING' });
    assert.match(await sioRefusal(t), /^LIMIT_PENDING: /);
    assert.equal(await mqttRefusal(t, 5, 'p5'), 0x89, 'MQTT 5: server busy');
    assert.equal(await mqttRefusal(t, 4, 'p4'), 3);
    assert.deepEqual(await upgradeRefusal(`ws://127.0.0.1:${t.server.httpPort}/ws`), { status: 503, retryAfter: '1', code: 'LIMIT_PENDING' });
    const sse = await sseRefusal(t, 's1');
    assert.equal(sse.status, 503);
    assert.equal(sse.code, 'LIMIT_PENDING');
  });

  it('an entered connection is no longer pending: once a slot frees, clients enter and others can follow', async () => {
    await closeSocket(held.pop()!);
    let first: WebSocket | undefined;
    await waitFor(
      async () => {
        try {
          first = await wsEnter(t, 'first');
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 5000, intervalMs: 50, message: 'a pending slot to free' },
    );
    // `first` entered, so it holds no pending slot: one more can connect and enter.
    const second = await wsEnter(t, 'second');
    await closeWs(first!);
    await closeWs(second);
  });
});

describe('limits: requests per second per connection', () => {
  let t: TestServer;
  before(async () => {
    // 0.001 per second: one request per connection (the enter), then none for 1000 s.
    t = await startTestServer({ limitsExemptIps: [], requestsPerSecond: 0.001 });
  });
  after(async () => {
    await t.close();
  });

  it('hybrid: the request after the allowance is answered with a kick LIMIT_REQUEST_RATE; acks are not counted', async () => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
    const kicked = once(c, 'kick') as Promise<[string]>;
    assert.deepEqual(await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'h1', role: 'client' }), { code: 200, msg: 'add ok' });
    for (let i = 0; i < 5; i++) c.notify('shaddock.client.ack', { id: 0 });
    c.notify('shaddock.client.subscribe', { tags: ['a'] });
    const [reason] = await kicked;
    assert.match(reason, /^LIMIT_REQUEST_RATE: /);
    await c.close();
  });

  it('socket.io: kick LIMIT_REQUEST_RATE', async () => {
    const s = ioV4(`http://127.0.0.1:${t.server.sioPort}`, { transports: ['websocket'], reconnection: false, forceNew: true });
    await nextEvent(s, 'connect');
    const entered = (await s.timeout(5000).emitWithAck('enter', { apikey: t.app.apikey, clientId: 's1' })) as { code: number };
    assert.equal(entered.code, 200);
    const kicked = nextEvent<{ reason: string }>(s, 'kick');
    s.emit('subscribe', { tags: ['a'] });
    const kick = await kicked;
    assert.match(kick.reason, /^LIMIT_REQUEST_RATE: /);
    s.disconnect();
  });

  it('MQTT 5: DISCONNECT 0x96 (message rate too high)', async () => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, { username: t.app.apikey, clientId: 'q1', protocolVersion: 5, reconnectPeriod: 0 });
    await nextEvent(c, 'connect');
    const disconnected = nextEvent<{ reasonCode?: number; properties?: { reasonString?: string } }>(c, 'disconnect');
    c.subscribe(`apps/${t.app.apikey}/all`, { qos: 1 });
    const packet = await disconnected;
    assert.equal(packet.reasonCode, 0x96);
    assert.match(packet.properties?.reasonString ?? '', /^LIMIT_REQUEST_RATE: /);
    await c.endAsync(true);
  });

  it('HTTP push: 429 LIMIT_REQUEST_RATE on the same keep-alive connection; a new connection has its own allowance', async () => {
    const push = async (agent: Agent): Promise<{ status: number; code?: string; retryAfter?: string }> => {
      const body = JSON.stringify({ data: 'hi' });
      const req = request(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      req.end(body);
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      let text = '';
      res.setEncoding('utf8');
      for await (const chunk of res) text += chunk as string;
      const retry = res.headers['retry-after'];
      return { status: res.statusCode ?? 0, ...(typeof retry === 'string' ? { retryAfter: retry } : {}), ...((JSON.parse(text) as { code?: string }).code !== undefined ? { code: (JSON.parse(text) as { code: string }).code } : {}) };
    };
    // One socket per agent: every push of an agent goes over the same connection.
    const one = new Agent({ keepAlive: true, maxSockets: 1 });
    const two = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await push(one)).status, 202);
      assert.deepEqual(await push(one), { status: 429, retryAfter: '1', code: 'LIMIT_REQUEST_RATE' });
      assert.equal((await push(two)).status, 202);
    } finally {
      one.destroy();
      two.destroy();
    }
  });

  it('plain WebSocket: an error frame LIMIT_REQUEST_RATE, then close 1008', async () => {
    const ws = await wsEnter(t, 'w1');
    const frames: { type: string; code?: string }[] = [];
    ws.on('message', (raw: Buffer) => frames.push(JSON.parse(raw.toString()) as { type: string; code?: string }));
    const closed = once(ws, 'close') as Promise<[number, Buffer]>;
    ws.send(JSON.stringify({ type: 'ack', id: 0 }));
    ws.send(JSON.stringify({ type: 'subscribe', tags: ['a'], ref: 7 }));
    const [code, reason] = await closed;
    assert.equal(code, 1008);
    assert.match(reason.toString(), /^LIMIT_REQUEST_RATE/);
    assert.deepEqual(frames.map((f) => f.code), ['LIMIT_REQUEST_RATE']);
  });
});

describe('limits: an idle connection gives up its own admission ticket', () => {
  // With no request rate, an entered connection holds its address's shared ticket from
  // the enter on (src/connectors/admission.ts): its close must still free its place once.
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ limitsExemptIps: [], maxConnectionsPerIp: 1, connectsPerSecondPerIp: 0, requestsPerSecond: 0 });
  });
  after(async () => {
    await t.close();
  });

  const gone = (): Promise<void> => waitFor(() => t.server.hub.connectionCount === 0, { timeoutMs: 5000, message: 'the server to see the close' });
  const enterHybrid = async (transport: 'tcp' | 'ws', clientId: string): Promise<PomeloClient> => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport });
    assert.deepEqual(await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId, role: 'client' }), { code: 200, msg: 'add ok' });
    return c;
  };
  const enterMqtt = async (clientId: string): Promise<mqtt.MqttClient> => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, { username: t.app.apikey, clientId, protocolVersion: 5, reconnectPeriod: 0 });
    await nextEvent(c, 'connect');
    return c;
  };

  it('every connector: a closed connection makes room once — the next is let in, the one after it refused', async () => {
    for (const transport of ['tcp', 'ws'] as const) {
      await (await enterHybrid(transport, `h-${transport}-1`)).close();
      await gone();
      const second = await enterHybrid(transport, `h-${transport}-2`);
      if (transport === 'tcp') assert.match(await hybridTcpKick(t), /^LIMIT_CONNECTIONS_PER_IP: /);
      else assert.equal((await upgradeRefusal(`ws://127.0.0.1:${t.server.hybridPort}/`)).code, 'LIMIT_CONNECTIONS_PER_IP');
      await second.close();
      await gone();
    }

    await (await enterMqtt('m1')).endAsync();
    await gone();
    const m2 = await enterMqtt('m2');
    assert.equal(await mqttRefusal(t, 5, 'm3'), 0x97);
    await m2.endAsync();
    await gone();

    await closeWs(await wsEnter(t, 'w1'));
    await gone();
    const w2 = await wsEnter(t, 'w2');
    assert.equal((await upgradeRefusal(`ws://127.0.0.1:${t.server.httpPort}/ws`)).code, 'LIMIT_CONNECTIONS_PER_IP');
    await closeWs(w2);
  });
});

describe('limits: a connection that went idle is still held to its request rate', () => {
  let t: TestServer;
  before(async () => {
    // 20 requests per second, bursts of 40; a heartbeat every second is the idle moment.
    t = await startTestServer({ limitsExemptIps: [], requestsPerSecond: 20, heartbeatSeconds: 1 });
  });
  after(async () => {
    await t.close();
  });

  it('hybrid: after its heartbeats, the 41st request in a burst is answered with a kick LIMIT_REQUEST_RATE', async () => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
    assert.deepEqual(await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'h1', role: 'client' }), { code: 200, msg: 'add ok' });
    await waitFor(() => c.heartbeatsReceived >= 2, { timeoutMs: 5000, message: 'two heartbeats' });
    const kicked = once(c, 'kick') as Promise<[string]>;
    for (let i = 0; i < 41; i++) c.notify('shaddock.client.subscribe', { tags: ['a'] });
    const [reason] = await kicked;
    assert.match(reason, /^LIMIT_REQUEST_RATE: /);
    await c.close();
  });

  it('MQTT: after a PINGREQ, the 41st request in a burst gets DISCONNECT 0x96', async () => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, { username: t.app.apikey, clientId: 'q1', protocolVersion: 5, reconnectPeriod: 0, keepalive: 1 });
    await nextEvent(c, 'connect');
    await new Promise<void>((resolve) => {
      const onPacket = (p: { cmd: string }): void => {
        if (p.cmd !== 'pingresp') return;
        c.off('packetreceive', onPacket);
        resolve();
      };
      c.on('packetreceive', onPacket);
    });
    const disconnected = nextEvent<{ reasonCode?: number }>(c, 'disconnect');
    for (let i = 0; i < 41; i++) c.subscribe(`apps/${t.app.apikey}/all`, { qos: 0 });
    assert.equal((await disconnected).reasonCode, 0x96);
    await c.endAsync(true);
  });
});

describe('limits: acks do not count as requests', () => {
  let t: TestServer;
  before(async () => {
    // One request per second, bursts of two: the enter and one more. Refills only help.
    t = await startTestServer({ limitsExemptIps: [], requestsPerSecond: 1 });
  });
  after(async () => {
    await t.close();
  });

  it('hybrid: many acks after the enter, and the next request is still answered', async () => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
    assert.deepEqual(await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'h1', role: 'client' }), { code: 200, msg: 'add ok' });
    for (let i = 0; i < 20; i++) c.notify('shaddock.client.ack', { id: 0 });
    assert.deepEqual(await c.request('shaddock.client.subscribe', { tags: ['a'] }), { code: 200 });
    await c.close();
  });

  it('plain WebSocket: the same', async () => {
    const ws = await wsEnter(t, 'w1');
    for (let i = 0; i < 20; i++) ws.send(JSON.stringify({ type: 'ack', id: 0 }));
    ws.send(JSON.stringify({ type: 'subscribe', tags: ['a'], ref: 1 }));
    const [raw] = (await once(ws, 'message')) as [Buffer];
    assert.deepEqual(JSON.parse(raw.toString()), { type: 'ok', ref: 1 });
    await closeWs(ws);
  });
});

describe('limits: connections per app, tags per client, the enter deadline', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxConnectionsPerApp: 2, maxTagsPerClient: 2, handshakeTimeoutSeconds: 1 });
  });
  after(async () => {
    await t.close();
  });

  it('refuses a third client of the app on every connector with LIMIT_APP_CONNECTIONS; a client replacing itself is let in', async () => {
    const a = await wsEnter(t, 'a');
    const b = await wsEnter(t, 'b');
    try {
      const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'ws' });
      const refused = (await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'c', role: 'client' })) as { code: number; error?: string };
      assert.equal(refused.code, 500);
      assert.equal(refused.error, 'LIMIT_APP_CONNECTIONS');
      await c.close();

      const s = ioV4(`http://127.0.0.1:${t.server.sioPort}`, { transports: ['websocket'], reconnection: false, forceNew: true });
      await nextEvent(s, 'connect');
      const sio = (await s.timeout(5000).emitWithAck('enter', { apikey: t.app.apikey, clientId: 'c' })) as { code: number; error?: string };
      assert.deepEqual([sio.code, sio.error], [500, 'LIMIT_APP_CONNECTIONS']);
      s.disconnect();

      assert.equal(await mqttRefusal(t, 5, 'c'), 0x97);
      assert.equal(await mqttRefusal(t, 4, 'c'), 3);

      const ws = new WebSocket(`ws://127.0.0.1:${t.server.httpPort}/ws`);
      await once(ws, 'open');
      ws.send(JSON.stringify({ type: 'enter', apikey: t.app.apikey, clientId: 'c', ref: 1 }));
      const [raw] = (await once(ws, 'message')) as [Buffer];
      assert.equal((JSON.parse(raw.toString()) as { code: string }).code, 'LIMIT_APP_CONNECTIONS');
      await closeWs(ws);

      const sse = await sseRefusal(t, 'c');
      assert.deepEqual([sse.status, sse.code], [503, 'LIMIT_APP_CONNECTIONS']);

      // "a" again, on a new connection: it replaces its old one, the app stays at two.
      const aAgain = await wsEnter(t, 'a');
      await closeWs(aAgain);
    } finally {
      await closeWs(a);
      await closeWs(b);
    }
  });

  it('refuses a subscription past maxTagsPerClient', async () => {
    const ws = await wsEnter(t, 'tagged');
    ws.send(JSON.stringify({ type: 'subscribe', tags: ['x', 'y', 'z'], ref: 1 }));
    const [raw] = (await once(ws, 'message')) as [Buffer];
    const frame = JSON.parse(raw.toString()) as { type: string; code: string; message: string };
    assert.equal(frame.code, 'BAD_REQUEST');
    assert.match(frame.message, /at most 2 tags/);
    await closeWs(ws);
  });

  it('hybrid: a connection that handshakes and heartbeats but never enters is closed at the handshake deadline', async () => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
    const [reason] = (await once(c, 'kick')) as [string];
    assert.equal(reason, 'handshake timeout');
    await c.close();
  });
});
