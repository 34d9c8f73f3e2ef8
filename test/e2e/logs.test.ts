import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as ioV4, type Socket as SocketV4 } from 'socket.io-client';
import mqtt from 'mqtt';
import { WebSocket } from 'ws';
import { loadConfig, type ConfigInput } from '../../src/config.js';
import { startServer, type ShaddockServer } from '../../src/server.js';
import { closeCode, createLogger } from '../../src/log.js';
import { CLOSE_REASONS } from '../../src/hub/connection.js';
import { PEER_CLOSED } from '../../src/hub/observer.js';
import type { App } from '../../src/store/store.js';
import { CONNECTORS, type ConnectorKind } from '../fixtures/any-client.js';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { waitFor, once } from '../fixtures/wait.js';

/** Every secret string is distinctive, so finding it anywhere in the output means it leaked. */
const ADMIN_PASSWORD = 'Adm1n-Pa55word-never-in-logs';
const WRONG_ADMIN_PASSWORD = 'Wr0ng-admin-pa55word-never-logged';
const WRONG_SECRET = 'wr0ng-app-secret-never-logged-0123456789';
const FORGED_TOKEN = 'f0rged-client-token-never-logged';
const METRICS_TOKEN = 'metrics-bearer-token-never-logged';

type Line = Readonly<Record<string, unknown>>;

interface Node {
  readonly server: ShaddockServer;
  readonly app: App;
  readonly url: string;
  /** Everything the logger wrote, as written. */
  readonly output: () => string;
  readonly lines: () => Line[];
  close(): Promise<void>;
}

/** A node whose logger writes into memory, at `logLevel` (trace: every line there is). */
async function startLoggedNode(overrides: Partial<ConfigInput>): Promise<Node> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shaddock-logs-'));
  let output = '';
  const config = loadConfig({
    env: {},
    flags: { host: '127.0.0.1', httpPort: 0, hybridPort: 0, sioPort: 0, mqttPort: 0, ntfyPort: 0, adminPassword: ADMIN_PASSWORD, dataDir, ...overrides },
  });
  const log = createLogger(config.logLevel, {
    write(s: string) {
      output += s;
    },
  });
  const server = await startServer(config, { log });
  const app = (await server.storage.apps.listApps())[0];
  assert.ok(app, 'the demo app');
  return {
    server,
    app,
    url: `http://127.0.0.1:${server.httpPort}`,
    output: () => output,
    lines: () =>
      output
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Line),
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function has(lines: readonly Line[], fields: Readonly<Record<string, unknown>>): boolean {
  return lines.some((l) => Object.entries(fields).every(([k, v]) => l[k] === v));
}

/** A client of `kind` enters with a token; resolves with a function that closes it. */
async function enterWithToken(n: Node, kind: ConnectorKind, clientId: string, token: string): Promise<() => Promise<void>> {
  const apikey = n.app.apikey;
  switch (kind) {
    case 'hybrid-tcp':
    case 'hybrid-ws': {
      const c = await PomeloClient.connect({ host: '127.0.0.1', port: n.server.hybridPort, transport: kind === 'hybrid-tcp' ? 'tcp' : 'ws' });
      const res = (await c.request('connector.entryHandler.enter', { apiKey: apikey, clientId, role: 'client', token })) as { code: number };
      assert.equal(res.code, 200, `${kind} enter`);
      return () => c.close();
    }
    case 'sio': {
      const s = await sioConnect(n);
      const res = (await s.timeout(10_000).emitWithAck('enter', { apikey, clientId, token })) as { code: number };
      assert.equal(res.code, 200, 'sio enter');
      return () => sioClose(s);
    }
    case 'mqtt': {
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${n.server.mqttPort ?? 0}`, { username: apikey, clientId, password: token, protocolVersion: 4, reconnectPeriod: 0 });
      return () => c.endAsync();
    }
    case 'ws': {
      const ws = await wsEnter(n, { type: 'enter', apikey, clientId, token });
      return () => wsClose(ws);
    }
    case 'sse': {
      const ac = new AbortController();
      const res = await fetch(`${n.url}/api/v1/apps/${apikey}/clients/${clientId}/events?token=${encodeURIComponent(token)}`, { signal: ac.signal });
      assert.equal(res.status, 200, 'sse enter');
      return async () => {
        ac.abort();
        await res.body?.cancel().catch(() => undefined);
      };
    }
  }
}

async function sioConnect(n: Node): Promise<SocketV4> {
  const s = ioV4(`http://127.0.0.1:${n.server.sioPort}`, { transports: ['websocket'], reconnection: false, forceNew: true });
  await new Promise<void>((resolve) => s.once('connect', () => resolve()));
  return s;
}

async function sioClose(s: SocketV4): Promise<void> {
  if (!s.connected) return;
  const gone = new Promise<void>((resolve) => s.once('disconnect', () => resolve()));
  s.disconnect();
  await gone;
}

/** Opens a plain WebSocket, sends `enter`, resolves once it is answered (entered or error). */
async function wsEnter(n: Node, frame: Record<string, unknown>, expect: 'entered' | 'error' = 'entered'): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${n.server.httpPort}/ws`);
  await once(ws, 'open', 5000);
  const answered = once(ws, 'message', 5000);
  ws.send(JSON.stringify(frame));
  const [raw] = await answered;
  assert.equal((JSON.parse(String(raw)) as { type: string }).type, expect);
  return ws;
}

async function wsClose(ws: WebSocket): Promise<void> {
  if (ws.readyState === ws.CLOSED) return;
  const gone = once(ws, 'close', 5000);
  ws.close();
  await gone;
}

describe('connection logs (logConnections on, every line captured)', () => {
  let n: Node;
  const tokens: string[] = [];
  before(async () => {
    n = await startLoggedNode({ logLevel: 'trace', metricsToken: METRICS_TOKEN });
  });
  after(async () => {
    await n.close();
  });

  test('lifecycle and refusal lines on every connector, and no secret anywhere', async () => {
    const { apikey, secret } = n.app;
    const admin = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
    // The app requires signed client tokens; the back end mints one per client over HTTP.
    const patched = await fetch(`${n.url}/api/v1/apps/${apikey}`, {
      method: 'PATCH',
      headers: { authorization: admin, 'content-type': 'application/json' },
      body: JSON.stringify({ requireClientToken: true }),
    });
    assert.equal(patched.status, 200);
    const closers: (() => Promise<void>)[] = [];
    for (const kind of CONNECTORS) {
      const minted = await fetch(`${n.url}/api/v1/apps/${apikey}/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ clientId: `log-${kind}`, format: kind === 'ws' ? 'jwt' : 'compact' }),
      });
      assert.equal(minted.status, 200);
      const { token } = (await minted.json()) as { token: string };
      tokens.push(token);
      closers.push(await enterWithToken(n, kind, `log-${kind}`, token));
    }

    // Managers: the app secret on each connector that has managers, an admin login on one.
    const mgrTcp = await PomeloClient.connect({ host: '127.0.0.1', port: n.server.hybridPort, transport: 'tcp' });
    assert.equal(((await mgrTcp.request('connector.entryHandler.enter', { apiKey: apikey, role: 'server', password: secret })) as { code: number }).code, 200);
    const mgrWs = await PomeloClient.connect({ host: '127.0.0.1', port: n.server.hybridPort, transport: 'ws' });
    assert.equal(
      ((await mgrWs.request('connector.entryHandler.enter', { apiKey: apikey, role: 'server', userId: 'admin', password: ADMIN_PASSWORD })) as { code: number }).code,
      200,
    );
    const mgrPlain = await wsEnter(n, { type: 'enter', role: 'manager', apikey, secret });
    const mgrSio = await sioConnect(n);
    assert.equal(((await mgrSio.timeout(10_000).emitWithAck('enter', { role: 'manager', apikey, secret })) as { code: number }).code, 200);
    const mgrMqtt = await mqtt.connectAsync(`mqtt://127.0.0.1:${n.server.mqttPort ?? 0}`, { username: apikey, clientId: 'log-manager', password: secret, protocolVersion: 4, reconnectPeriod: 0 });
    // The console login.
    const login = await fetch(`${n.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) });
    assert.equal(login.status, 200);
    await login.body?.cancel();
    const scraped = await fetch(`${n.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(scraped.status, 200);
    await scraped.body?.cancel();

    // Refusals, each carrying a wrong credential that must not be logged either.
    const badTcp = await PomeloClient.connect({ host: '127.0.0.1', port: n.server.hybridPort, transport: 'tcp' });
    assert.equal(((await badTcp.request('connector.entryHandler.enter', { apiKey: apikey, clientId: 'log-forger', role: 'client', token: FORGED_TOKEN })) as { code: number }).code, 500);
    await badTcp.close();
    const badHybridWs = await PomeloClient.connect({ host: '127.0.0.1', port: n.server.hybridPort, transport: 'ws' });
    const badAdmin = (await badHybridWs.request('connector.entryHandler.enter', { apiKey: apikey, role: 'server', userId: 'admin', password: WRONG_ADMIN_PASSWORD })) as { code: number };
    assert.equal(badAdmin.code, 500);
    await badHybridWs.close();
    await wsClose(await wsEnter(n, { type: 'enter', role: 'manager', apikey, secret: WRONG_SECRET }, 'error'));
    const badSio = await sioConnect(n);
    assert.equal(((await badSio.timeout(10_000).emitWithAck('enter', { apikey, clientId: 'log-no-token' })) as { code: number }).code, 500);
    await sioClose(badSio);
    await assert.rejects(mqtt.connectAsync(`mqtt://127.0.0.1:${n.server.mqttPort ?? 0}`, { username: apikey, clientId: 'log-forger', password: FORGED_TOKEN, protocolVersion: 4, reconnectPeriod: 0 }));
    const badSse = await fetch(`${n.url}/api/v1/apps/${apikey}/clients/log-forger/events?token=${FORGED_TOKEN}`);
    assert.equal(badSse.status, 401);
    await badSse.body?.cancel();
    const badLogin = await fetch(`${n.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: WRONG_ADMIN_PASSWORD }) });
    assert.equal(badLogin.status, 401);
    await badLogin.body?.cancel();

    for (const close of closers) await close();
    await mgrTcp.close();
    await mgrWs.close();
    await wsClose(mgrPlain);
    await sioClose(mgrSio);
    await mgrMqtt.endAsync();

    await waitFor(() => CONNECTORS.every((connector) => has(n.lines(), { event: 'connection-closed', connector, clientId: `log-${connector}` })), {
      timeoutMs: 10_000,
      message: 'a closed line for every client',
    });
    const lines = n.lines();
    for (const l of lines) {
      assert.equal(typeof l['level'], 'number');
      assert.equal(typeof l['time'], 'number');
      assert.equal(typeof l['msg'], 'string');
    }
    for (const connector of CONNECTORS) {
      const clientId = `log-${connector}`;
      assert.ok(has(lines, { event: 'connection-opened', connector, level: 30 }), `${connector}: opened`);
      assert.ok(has(lines, { event: 'client-entered', connector, app: apikey, clientId, level: 30 }), `${connector}: entered`);
      // The peer closed: a stable code, and who it was.
      assert.ok(has(lines, { event: 'connection-closed', connector, app: apikey, clientId, code: 'CLIENT_CLOSED', level: 30 }), `${connector}: closed`);
    }
    for (const connector of ['hybrid-tcp', 'hybrid-ws', 'ws', 'sio', 'mqtt']) {
      assert.ok(has(lines, { event: 'manager-entered', connector, app: apikey }), `${connector}: manager entered`);
    }
    for (const connector of ['hybrid-tcp', 'hybrid-ws', 'ws', 'sio', 'mqtt', 'sse']) {
      assert.ok(has(lines, { event: 'refused', connector, code: 'AUTH_FAILED', level: 30 }), `${connector}: refused AUTH_FAILED`);
    }
    // An MQTT client that was refused at CONNECT closes with the refusal's code.
    assert.ok(has(lines, { event: 'connection-closed', connector: 'mqtt', code: 'AUTH_FAILED' }), 'mqtt: closed with the refusal code');

    const output = n.output();
    const secrets = [secret, ADMIN_PASSWORD, WRONG_ADMIN_PASSWORD, WRONG_SECRET, FORGED_TOKEN, METRICS_TOKEN, ...tokens];
    assert.equal(tokens.length, CONNECTORS.length);
    for (const s of secrets) assert.ok(!output.includes(s), `a secret reached the log: ${s.slice(0, 4)}…`);
    // Nor a token's signature alone (the part after the last dot of either form).
    for (const t of tokens) {
      const signature = t.slice(t.lastIndexOf('.') + 1);
      assert.ok(signature.length >= 16 && !output.includes(signature), 'a token signature reached the log');
    }
  });
});

describe('connection log levels', () => {
  test('logConnections false: lifecycle lines go to debug, so the info level shows none', async () => {
    const n = await startLoggedNode({ logLevel: 'info', logConnections: false });
    try {
      const ws = await wsEnter(n, { type: 'enter', apikey: n.app.apikey, clientId: 'quiet' });
      await wsEnter(n, { type: 'enter', apikey: 'no-such-app', clientId: 'x' }, 'error').then(wsClose);
      await wsClose(ws);
      // The close is reported when the transport is gone; the hub forgets the client at once.
      await waitFor(() => n.server.hub.connectionCount === 0 && n.server.ws.connectionCount === 0, { timeoutMs: 5000, message: 'connections gone' });
      const events = n.lines().filter((l) => typeof l['event'] === 'string');
      assert.deepEqual(events, []);
    } finally {
      await n.close();
    }
  });

  test('logConnections false at logLevel debug: the same lines, at debug', async () => {
    const n = await startLoggedNode({ logLevel: 'debug', logConnections: false });
    try {
      const ws = await wsEnter(n, { type: 'enter', apikey: n.app.apikey, clientId: 'verbose' });
      await wsClose(ws);
      await waitFor(() => has(n.lines(), { event: 'connection-closed', clientId: 'verbose' }), { timeoutMs: 5000, message: 'closed line' });
      const lines = n.lines();
      assert.ok(has(lines, { event: 'connection-opened', connector: 'ws', level: 20 }));
      assert.ok(has(lines, { event: 'client-entered', clientId: 'verbose', level: 20 }));
      assert.ok(has(lines, { event: 'connection-closed', clientId: 'verbose', code: 'CLIENT_CLOSED', level: 20 }));
    } finally {
      await n.close();
    }
  });
});

describe('a replaced connection', () => {
  test('its closed line says REPLACED and still names the app and client', async () => {
    const n = await startLoggedNode({ logLevel: 'info' });
    try {
      const first = await wsEnter(n, { type: 'enter', apikey: n.app.apikey, clientId: 'twice' });
      const firstGone = once(first, 'close', 5000);
      const second = await wsEnter(n, { type: 'enter', apikey: n.app.apikey, clientId: 'twice' });
      await firstGone;
      await waitFor(() => has(n.lines(), { event: 'connection-closed', code: 'REPLACED' }), { timeoutMs: 5000, message: 'the replaced line' });
      assert.ok(has(n.lines(), { event: 'connection-closed', code: 'REPLACED', reason: 'replaced', app: n.app.apikey, clientId: 'twice', connector: 'ws' }));
      await wsClose(second);
    } finally {
      await n.close();
    }
  });
});

describe('close codes', () => {
  test('every server close reason has a stable code; CODE: reasons keep theirs; the rest is CLOSED', () => {
    const codes = Object.values(CLOSE_REASONS).map(closeCode);
    assert.deepEqual(codes, ['REPLACED', 'SLOW_CONSUMER', 'SHUTDOWN', 'APP_DELETED', 'HEARTBEAT_TIMEOUT', 'HANDSHAKE_TIMEOUT', 'PROTO_ERROR', 'KICKED']);
    assert.equal(closeCode(PEER_CLOSED), 'CLIENT_CLOSED');
    assert.equal(closeCode('LIMIT_CONNECT_RATE: connecting too often from this address; retry later'), 'LIMIT_CONNECT_RATE');
    assert.equal(closeCode('PROTO_BAD_JSON: the body is not valid JSON'), 'PROTO_BAD_JSON');
    assert.equal(closeCode('something else'), 'CLOSED');
  });

  test('the logger redacts credential fields whatever the call site passes', () => {
    let out = '';
    const log = createLogger('info', {
      write(s: string) {
        out += s;
      },
    });
    log.info({ secret: 's3cret-a', password: 'pa55-b', token: 't0ken-c', req: { headers: { authorization: 'Bearer auth-d', cookie: 'sid=cookie-e' } }, nested: { metricsToken: 'mt-f' } }, 'x');
    for (const s of ['s3cret-a', 'pa55-b', 't0ken-c', 'auth-d', 'cookie-e', 'mt-f']) assert.ok(!out.includes(s), s);
    assert.match(out, /\[redacted\]/);
  });
});
