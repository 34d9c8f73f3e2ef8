import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { WebSocket } from 'ws';
import { once } from 'node:events';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { requireClientTokens, startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;

describe('apps that require client tokens', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
    await requireClientTokens(t);
  });
  after(async () => {
    await t.close();
  });

  const token = async (clientId: string, format?: 'jwt'): Promise<string> => {
    const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ clientId, ttl: 600, ...(format ? { format } : {}) }),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  };

  it('hybrid: no token, another client\'s token → {code: 500} with the reason; a good token enters', async () => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
    try {
      const none = (await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'd1', role: 'client' })) as { code: number; msg: string };
      assert.equal(none.code, 500);
      assert.match(none.msg, /requires a client token/);
      const other = (await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'd1', role: 'client', token: await token('d2') })) as { code: number; msg: string };
      assert.match(other.msg, /another clientId/);
      const ok = await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'd1', role: 'client', token: await token('d1', 'jwt') });
      assert.deepEqual(ok, { code: 200, msg: 'add ok' });
    } finally {
      await c.close();
    }
  });

  it('MQTT: the token is the password; none, forged or another client\'s → CONNACK "bad user name or password" (0x04 / 0x86)', async () => {
    // docs/api.md and docs/connectors.md promise these codes: MQTT 3.1.1 §3.2.2.3 return
    // code 4, MQTT 5 §3.2.2.2 reason code 0x86 ("does not accept the User Name or Password").
    const refusal = async (protocolVersion: 4 | 5, password?: string): Promise<unknown> => {
      try {
        const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, {
          username: t.app.apikey,
          clientId: 'm1',
          reconnectPeriod: 0,
          protocolVersion,
          ...(password !== undefined ? { password } : {}),
        });
        await c.endAsync();
        return 'accepted';
      } catch (err) {
        return (err as { code?: unknown }).code;
      }
    };
    const forged = (await token('m1')).replace(/.$/, (ch) => (ch === 'A' ? 'B' : 'A'));
    for (const password of [undefined, forged, await token('m2')]) {
      assert.equal(await refusal(4, password), 0x04);
      assert.equal(await refusal(5, password), 0x86);
    }
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, {
      username: t.app.apikey,
      password: await token('m1'),
      clientId: 'm1',
      reconnectPeriod: 0,
      protocolVersion: 5,
    });
    await c.endAsync();
  });

  it('WebSocket and SSE: refused without, accepted with a token', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${t.server.httpPort}/ws`);
    const frames: Record<string, unknown>[] = [];
    ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString()) as Record<string, unknown>));
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'enter', apikey: t.app.apikey, clientId: 'w1' }));
    await waitFor(() => frames.some((f) => f['type'] === 'error'), { timeoutMs: 5000, message: 'no refusal' });
    assert.equal(frames.find((f) => f['type'] === 'error')?.['code'], 'AUTH_FAILED');
    ws.send(JSON.stringify({ type: 'enter', apikey: t.app.apikey, clientId: 'w1', token: await token('w1') }));
    await waitFor(() => frames.some((f) => f['type'] === 'entered'), { timeoutMs: 5000, message: 'not entered' });
    ws.close();
    const refused = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/clients/s1/events`);
    assert.equal(refused.status, 401);
    const ac = new AbortController();
    const ok = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/clients/s1/events?token=${encodeURIComponent(await token('s1'))}`, { signal: ac.signal });
    assert.equal(ok.status, 200);
    ac.abort();
  });

  it('shaddock token signs a token from the database; rotating the secret invalidates it', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'token', '--app', t.app.apikey, '--client', 'cli-1', '--ttl', '1h', '--data', t.dataDir], { cwd: ROOT });
    const signed = stdout.trim();
    assert.match(signed, /^v1\./);
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'ws' });
    try {
      assert.deepEqual(await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'cli-1', role: 'client', token: signed }), { code: 200, msg: 'add ok' });
      await t.server.storage.apps.rotateSecret(t.app.apikey);
      const c2 = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'ws' });
      const after = (await c2.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: 'cli-2', role: 'client', token: signed })) as { code: number; msg: string };
      assert.equal(after.code, 500);
      assert.match(after.msg, /signature is wrong/);
      await c2.close();
    } finally {
      await c.close();
    }
  });
});
