// Failed admin logins are limited per source address and per username (docs/security.md):
// console login, Basic auth and managers entering with admin credentials share one count.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { LoginLimiter } from '../../src/api/sessions.js';
import { adminAuth, startTestServer, TEST_ADMIN_PASSWORD, type TestServer } from '../fixtures/test-server.js';

describe('LoginLimiter', () => {
  it('blocks a key after maxFailures in the window, says for how long, and forgets failures as they age', () => {
    const clock = { now: 1_000_000 };
    const l = new LoginLimiter(3, 60_000, () => clock.now);
    l.failed('10.0.0.1', 'admin');
    clock.now += 10_000;
    l.failed('10.0.0.1', 'admin');
    l.failed('10.0.0.1', 'admin');
    assert.equal(l.retryAfter('10.0.0.1', 'admin'), 50, 'until the oldest failure leaves the window');
    assert.equal(l.retryAfter('10.0.0.1', 'someone-else'), 50, 'the address is blocked for every username');
    assert.equal(l.retryAfter('10.0.0.2', 'admin'), 50, 'the username is blocked from every address');
    assert.equal(l.retryAfter('10.0.0.2', 'someone-else'), 0);
    clock.now += 50_000;
    assert.equal(l.retryAfter('10.0.0.1', 'admin'), 0, 'the first failure aged out');
    l.failed('10.0.0.1', 'admin');
    assert.equal(l.retryAfter('10.0.0.1', 'admin'), 10);
  });

  it('a success clears the address and the username', () => {
    const l = new LoginLimiter(2);
    l.failed('10.0.0.1', 'admin');
    l.succeeded('10.0.0.1', 'admin');
    l.failed('10.0.0.1', 'admin');
    assert.equal(l.retryAfter('10.0.0.1', 'admin'), 0);
    l.failed('::ffff:10.0.0.1', 'other');
    assert.ok(l.retryAfter('10.0.0.1', 'x') > 0, 'an IPv4-mapped address is the same address');
  });

  it('0 turns the limit off', () => {
    const l = new LoginLimiter(0);
    for (let i = 0; i < 100; i++) l.failed('10.0.0.1', 'admin');
    assert.equal(l.retryAfter('10.0.0.1', 'admin'), 0);
  });
});

/** POST /api/v1/session from a chosen local address (node:http, so the source can be bound). */
async function login(t: TestServer, username: string, password: string, localAddress = '127.0.0.1'): Promise<{ status: number; retryAfter: string | undefined; body: { code?: string } }> {
  const body = JSON.stringify({ username, password });
  const req = request(`${t.httpUrl}/api/v1/session`, { method: 'POST', localAddress, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
  req.end(body);
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  let text = '';
  res.setEncoding('utf8');
  for await (const chunk of res) text += chunk as string;
  const header = res.headers['retry-after'];
  return { status: res.statusCode ?? 0, retryAfter: typeof header === 'string' ? header : undefined, body: JSON.parse(text) as { code?: string } };
}

describe('admin login rate limit over HTTP and connectors', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ loginFailuresPerMinute: 3 });
  });
  after(async () => {
    await t.close();
  });

  it('console login: a success resets the count', async () => {
    assert.equal((await login(t, 'admin', 'wrong-1', '127.0.0.10')).status, 401);
    assert.equal((await login(t, 'admin', 'wrong-2', '127.0.0.10')).status, 401);
    assert.equal((await login(t, 'admin', TEST_ADMIN_PASSWORD, '127.0.0.10')).status, 200);
    assert.equal((await login(t, 'admin', 'wrong-3', '127.0.0.10')).status, 401);
    assert.equal((await login(t, 'admin', 'wrong-4', '127.0.0.10')).status, 401);
    assert.equal((await login(t, 'admin', TEST_ADMIN_PASSWORD, '127.0.0.10')).status, 200, 'two failures since the success: under the limit');
  });

  it('console login: past the limit, 429 with Retry-After and LIMIT_LOGIN_RATE, even with the right password; per address and per username', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await login(t, 'nobody', `guess-${i}`, '127.0.0.11')).status, 401);
    const blocked = await login(t, 'nobody', 'guess-4', '127.0.0.11');
    assert.equal(blocked.status, 429);
    assert.equal(blocked.body.code, 'LIMIT_LOGIN_RATE');
    assert.ok(Number(blocked.retryAfter) >= 1 && Number(blocked.retryAfter) <= 60, `Retry-After ${blocked.retryAfter}`);
    // The address is blocked for the real admin too…
    assert.equal((await login(t, 'admin', TEST_ADMIN_PASSWORD, '127.0.0.11')).status, 429);
    // …and the username from any address.
    assert.equal((await login(t, 'nobody', 'guess-5', '127.0.0.12')).status, 429);
    // Someone else, somewhere else, is not affected.
    assert.equal((await login(t, 'admin', TEST_ADMIN_PASSWORD, '127.0.0.13')).status, 200);
  });

  it('Basic auth counts the same way and is refused with 429 past the limit', async () => {
    const basic = (password: string, username = 'basic-user'): Promise<Response> =>
      fetch(`${t.httpUrl}/api/v1/apps`, { headers: { authorization: adminAuth(password, username) } });
    for (let i = 0; i < 3; i++) assert.equal((await basic(`bad-${i}`)).status, 401);
    const blocked = await basic('bad-4');
    assert.equal(blocked.status, 429);
    assert.equal(((await blocked.json()) as { code: string }).code, 'LIMIT_LOGIN_RATE');
    assert.ok(blocked.headers.get('retry-after'));
    // The console login of that username is blocked too: one count for every door.
    assert.equal((await login(t, 'basic-user', 'x', '127.0.0.14')).status, 429);
  });

  it('a manager entering with admin credentials: failures counted, then LIMIT_LOGIN_RATE; the app secret is not limited', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${t.server.httpPort}/ws`, { localAddress: '127.0.0.15' });
    await once(ws, 'open');
    const answers: { type: string; code?: string }[] = [];
    ws.on('message', (raw: Buffer) => answers.push(JSON.parse(raw.toString()) as { type: string; code?: string }));
    const enter = async (body: Record<string, unknown>): Promise<{ type: string; code?: string }> => {
      const n = answers.length;
      ws.send(JSON.stringify({ type: 'enter', role: 'manager', apikey: t.app.apikey, ref: n, ...body }));
      while (answers.length === n) await once(ws, 'message');
      return answers[n]!;
    };
    for (let i = 0; i < 3; i++) assert.equal((await enter({ userId: 'mgr-admin', password: `no-${i}` })).code, 'AUTH_FAILED');
    assert.equal((await enter({ userId: 'mgr-admin', password: 'no-4' })).code, 'LIMIT_LOGIN_RATE');
    // The console login of that username, from elsewhere, is blocked as well.
    assert.equal((await login(t, 'mgr-admin', 'x', '127.0.0.16')).status, 429);
    assert.equal((await enter({ secret: t.app.secret })).type, 'entered');
    const closed = once(ws, 'close');
    ws.close();
    await closed;
  });
});
