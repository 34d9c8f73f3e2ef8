// Rotating an app's secret with a grace period (docs/security.md): client tokens signed
// with the old secret and managers presenting it keep working until the grace ends,
// then are refused. Without a grace period the old secret stops at once.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { WebSocket } from 'ws';
import { signClientToken } from '../../src/hub/client-tokens.js';
import { adminAuth, requireClientTokens, startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;

/** One enter on a fresh plain-WebSocket connection: the server's first answer. */
async function wsEnter(t: TestServer, body: Record<string, unknown>): Promise<{ type: string; code?: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${t.server.httpPort}/ws`);
  await once(ws, 'open');
  ws.send(JSON.stringify({ type: 'enter', apikey: t.app.apikey, ...body }));
  const [raw] = (await once(ws, 'message')) as [Buffer];
  const closed = once(ws, 'close');
  ws.close();
  await closed;
  return JSON.parse(raw.toString()) as { type: string; code?: string };
}

async function rotate(t: TestServer, graceSeconds?: number): Promise<{ secret: string; previousSecretValidUntil: string | null }> {
  const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/rotate-secret`, {
    method: 'POST',
    headers: { authorization: adminAuth(), 'content-type': 'application/json' },
    body: JSON.stringify(graceSeconds === undefined ? {} : { graceSeconds }),
  });
  assert.equal(res.status, 200);
  return (await res.json()) as { secret: string; previousSecretValidUntil: string | null };
}

describe('secret rotation with a grace period', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
    await requireClientTokens(t);
  });
  after(async () => {
    await t.close();
  });

  const tokenFor = async (secret: string, clientId: string): Promise<string> =>
    (await signClientToken({ secret, apikey: t.app.apikey, clientId, ttlSeconds: 600 })).token;

  it('during the grace both secrets work: tokens signed with either, managers with either', async () => {
    const old = (await t.server.storage.apps.getApp(t.app.apikey))!.secret;
    const oldToken = await tokenFor(old, 'c-old');
    const oldJwt = (await signClientToken({ secret: old, apikey: t.app.apikey, clientId: 'c-jwt', ttlSeconds: 600, format: 'jwt' })).token;
    const before = Date.now();
    const rotated = await rotate(t, 300);
    assert.notEqual(rotated.secret, old);
    const until = Date.parse(rotated.previousSecretValidUntil ?? '');
    assert.ok(until >= before + 300_000 && until <= Date.now() + 300_000, `previousSecretValidUntil ${rotated.previousSecretValidUntil}`);

    assert.equal((await wsEnter(t, { clientId: 'c-old', token: oldToken })).type, 'entered');
    assert.equal((await wsEnter(t, { clientId: 'c-jwt', token: oldJwt })).type, 'entered');
    assert.equal((await wsEnter(t, { clientId: 'c-new', token: await tokenFor(rotated.secret, 'c-new') })).type, 'entered');
    assert.equal((await wsEnter(t, { role: 'manager', secret: old })).type, 'entered');
    assert.equal((await wsEnter(t, { role: 'manager', secret: rotated.secret })).type, 'entered');
    // MQTT: the old secret as password makes a manager.
    const m = mqtt.connect(`mqtt://127.0.0.1:${t.server.mqttPort ?? 0}`, { username: t.app.apikey, password: old, clientId: 'mgr', reconnectPeriod: 0 });
    await new Promise<void>((resolve, reject) => {
      m.once('connect', () => resolve());
      m.once('error', reject);
    });
    await m.endAsync();
    // A wrong secret is still wrong.
    assert.equal((await wsEnter(t, { role: 'manager', secret: 'x'.repeat(43) })).code, 'AUTH_FAILED');
  });

  it('a rotation without grace ends the old secret at once; an expired grace refuses it', async () => {
    const current = (await t.server.storage.apps.getApp(t.app.apikey))!.secret;
    const token = await tokenFor(current, 'c1');
    const rotated = await rotate(t);
    assert.equal(rotated.previousSecretValidUntil, null);
    assert.equal((await wsEnter(t, { clientId: 'c1', token })).code, 'AUTH_FAILED');
    assert.equal((await wsEnter(t, { role: 'manager', secret: current })).code, 'AUTH_FAILED');

    // One second of grace: accepted, then (within a deadline) refused.
    const shortToken = await tokenFor(rotated.secret, 'c2');
    await rotate(t, 1);
    await waitFor(async () => (await wsEnter(t, { clientId: 'c2', token: shortToken })).code === 'AUTH_FAILED', {
      timeoutMs: 10_000,
      intervalMs: 200,
      message: 'the old secret to stop working when its grace ends',
    });
    assert.equal((await wsEnter(t, { role: 'manager', secret: rotated.secret })).code, 'AUTH_FAILED');
  });

  it('refuses a bad graceSeconds with 400 naming the field', async () => {
    const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/rotate-secret`, {
      method: 'POST',
      headers: { authorization: adminAuth(), 'content-type': 'application/json' },
      body: JSON.stringify({ graceSeconds: -5 }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { code: string; message: string };
    assert.equal(body.code, 'BAD_REQUEST');
    assert.match(body.message, /graceSeconds/);
  });

  it('CLI: shaddock app rotate-secret --grace keeps the old secret valid', async () => {
    const old = (await t.server.storage.apps.getApp(t.app.apikey))!.secret;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'app', 'rotate-secret', t.app.apikey, '--grace', '600', '--data', t.dataDir, '--json'], {
      cwd: ROOT,
      env: { ...process.env, SHADDOCK_CONFIG: '' },
    });
    const out = JSON.parse(stdout) as { secret: string; previousSecretValidUntil: string };
    assert.notEqual(out.secret, old);
    assert.ok(Date.parse(out.previousSecretValidUntil) > Date.now() + 500_000);
    assert.equal((await wsEnter(t, { role: 'manager', secret: old })).type, 'entered');
    assert.equal((await wsEnter(t, { role: 'manager', secret: out.secret })).type, 'entered');
  });
});
