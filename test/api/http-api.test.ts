import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { waitFor } from '../fixtures/wait.js';
import { promisify } from 'node:util';
import { startTestServer, adminAuth, type TestServer } from '../fixtures/test-server.js';
import { PomeloClient } from '../fixtures/pomelo-client.js';

const run = promisify(execFile);

describe('HTTP API', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxHttpBodyBytes: 4096 });
  });
  after(async () => {
    await t.close();
  });

  const push = (body: unknown, auth = `Bearer ${t.app.secret}`, apikey: string = t.app.apikey): Promise<Response> =>
    fetch(`${t.httpUrl}/api/v1/apps/${apikey}/messages`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('GET /healthz answers ok', async () => {
    const res = await fetch(`${t.httpUrl}/healthz`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { status: string };
    assert.equal(body.status, 'ok');
  });

  it('push with curl: 202 {id, targeted} and ids increase', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '-X',
      'POST',
      `${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`,
      '-H',
      `Authorization: Bearer ${t.app.secret}`,
      '-H',
      'content-type: application/json',
      '-d',
      '{"data":{"title":"hi","msg":"curl 中文"}}',
      '-w',
      '\n%{http_code}',
    ]);
    const [json, status] = stdout.trim().split('\n');
    assert.equal(status, '202');
    const first = JSON.parse(json ?? '') as { id: number; targeted: number };
    assert.equal(first.targeted, 0);
    const second = (await (await push({ data: 1 })).json()) as { id: number };
    assert.equal(second.id, first.id + 1);
  });

  it('refuses bad input with the right status and a {code, message} naming the field', async () => {
    const cases: [Response, number, string, RegExp][] = [
      [await push({ data: 1 }, 'Bearer wrong'), 401, 'UNAUTHORIZED', /secret/],
      [await push({ data: 1 }, ''), 401, 'UNAUTHORIZED', /Bearer/],
      [await push({ data: 1 }, `Bearer ${t.app.secret}`, 'no-such-app'), 404, 'NOT_FOUND', /no app/],
      [await push({}), 400, 'BAD_REQUEST', /data/],
      [await push({ data: 1, ttl: -5 }), 400, 'PUSH_INVALID', /^ttl:/],
      [await push({ data: 1, to: { clientIds: [] } }), 400, 'BAD_REQUEST', /to\.clientIds/],
      [await push({ data: 1, extra: true }), 400, 'BAD_REQUEST', /extra|Unrecognized/i],
      [await push('{not json'), 400, 'BAD_REQUEST', /JSON/i],
      [await push([1, 2]), 400, 'BAD_REQUEST', /object/],
      [await push({ data: 'x'.repeat(5000) }), 413, 'LIMIT_PAYLOAD', /larger/],
    ];
    for (const [res, status, code, message] of cases) {
      assert.equal(res.status, status, `${status} expected for ${code}`);
      const body = (await res.json()) as { code: string; message: string };
      assert.equal(body.code, code);
      assert.match(body.message, message);
    }
  });

  it('lists the clients online with their connector', async () => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'ws' });
    try {
      await c.request('connector.entryHandler.enter', { clientId: 'listed', role: 'client', apikey: t.app.apikey });
      const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/clients`, { headers: { authorization: `Bearer ${t.app.secret}` } });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { total: number; clients: { clientId: string; connector: string }[] };
      assert.equal(body.total, 1);
      assert.equal(body.clients[0]?.clientId, 'listed');
      assert.equal(body.clients[0]?.connector, 'hybrid-ws');
    } finally {
      await c.close();
    }
  });

  it('admins create, list, get, update, rotate and delete apps', async () => {
    const admin = { authorization: adminAuth(), 'content-type': 'application/json' };
    const noAuth = await fetch(`${t.httpUrl}/api/v1/apps`);
    assert.equal(noAuth.status, 401);
    const wrong = await fetch(`${t.httpUrl}/api/v1/apps`, { headers: { authorization: adminAuth('nope') } });
    assert.equal(wrong.status, 401);

    const created = await fetch(`${t.httpUrl}/api/v1/apps`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'shop', messageTtlSeconds: 60 }) });
    assert.equal(created.status, 201);
    const app = (await created.json()) as { apikey: string; secret: string; name: string; messageTtlSeconds: number };
    assert.equal(app.name, 'shop');
    assert.equal(app.messageTtlSeconds, 60);
    assert.ok(app.secret.length >= 43);

    const list = (await (await fetch(`${t.httpUrl}/api/v1/apps`, { headers: admin })).json()) as { apps: { apikey: string }[] };
    assert.ok(list.apps.some((a) => a.apikey === app.apikey));
    const got = await fetch(`${t.httpUrl}/api/v1/apps/${app.apikey}`, { headers: admin });
    assert.equal(got.status, 200);

    const patched = await fetch(`${t.httpUrl}/api/v1/apps/${app.apikey}`, { method: 'PATCH', headers: admin, body: JSON.stringify({ messageTtlSeconds: 120 }) });
    assert.equal(((await patched.json()) as { messageTtlSeconds: number }).messageTtlSeconds, 120);
    const badPatch = await fetch(`${t.httpUrl}/api/v1/apps/${app.apikey}`, { method: 'PATCH', headers: admin, body: JSON.stringify({ messageTtlSeconds: 'soon' }) });
    assert.equal(badPatch.status, 400);

    const rotated = (await (await fetch(`${t.httpUrl}/api/v1/apps/${app.apikey}/rotate-secret`, { method: 'POST', headers: { authorization: adminAuth() } })).json()) as { secret: string };
    assert.notEqual(rotated.secret, app.secret);
    assert.equal((await push({ data: 1 }, `Bearer ${app.secret}`, app.apikey)).status, 401, 'old secret stops working');
    assert.equal((await push({ data: 1 }, `Bearer ${rotated.secret}`, app.apikey)).status, 202);

    const deleted = await fetch(`${t.httpUrl}/api/v1/apps/${app.apikey}`, { method: 'DELETE', headers: { authorization: adminAuth() } });
    assert.equal(deleted.status, 204);
    assert.equal((await fetch(`${t.httpUrl}/api/v1/apps/${app.apikey}`, { headers: admin })).status, 404);
    assert.equal((await push({ data: 1 }, `Bearer ${rotated.secret}`, app.apikey)).status, 404);
  });

  it('an admin may push with Basic auth too', async () => {
    const res = await push({ data: 'from admin' }, adminAuth());
    assert.equal(res.status, 202);
  });

  it('unknown routes get a JSON 404', async () => {
    const res = await fetch(`${t.httpUrl}/api/v1/nothing`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { code: string }).code, 'NOT_FOUND');
  });
});

describe('HTTP API: console sessions, client paging, stats', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  async function login(password = 'test-admin-password'): Promise<{ res: Response; cookie: string; csrf: string }> {
    const res = await fetch(`${t.httpUrl}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password }),
    });
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const body = res.ok ? ((await res.json()) as { csrfToken: string }) : { csrfToken: '' };
    return { res, cookie, csrf: body.csrfToken };
  }

  it('login sets an HttpOnly SameSite cookie; wrong passwords are refused', async () => {
    const bad = await login('nope');
    assert.equal(bad.res.status, 401);
    assert.match(((await bad.res.json()) as { message: string }).message, /wrong admin username or password/);
    const { res, cookie } = await login();
    assert.equal(res.status, 200);
    const setCookie = res.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    const me = await fetch(`${t.httpUrl}/api/v1/session`, { headers: { cookie } });
    assert.equal(((await me.json()) as { username: string }).username, 'admin');
  });

  it('state-changing requests with the cookie need the CSRF header; logout ends the session', async () => {
    const { cookie, csrf } = await login();
    const create = (headers: Record<string, string>) =>
      fetch(`${t.httpUrl}/api/v1/apps`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ name: 'x' }) });
    const forged = await create({});
    assert.equal(forged.status, 403);
    assert.match(((await forged.json()) as { message: string }).message, /x-csrf-token/);
    assert.equal((await create({ 'x-csrf-token': 'wrong' })).status, 403);
    assert.equal((await create({ 'x-csrf-token': csrf })).status, 201);
    assert.equal((await fetch(`${t.httpUrl}/api/v1/apps`, { headers: { cookie } })).status, 200, 'reads need no CSRF header');
    assert.equal((await fetch(`${t.httpUrl}/api/v1/session`, { method: 'DELETE', headers: { cookie } })).status, 403);
    assert.equal((await fetch(`${t.httpUrl}/api/v1/session`, { method: 'DELETE', headers: { cookie, 'x-csrf-token': csrf } })).status, 204);
    assert.equal((await fetch(`${t.httpUrl}/api/v1/apps`, { headers: { cookie } })).status, 401);
  });

  it('clients are paged, sorted and searchable; stats count accepted, delivered and acked', async () => {
    const clients = await Promise.all(
      ['delta', 'Alpha', 'charlie', 'bravo'].map(async (id) => {
        const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
        await c.request('connector.entryHandler.enter', { clientId: id, role: 'client', apikey: t.app.apikey });
        return c;
      }),
    );
    try {
      const auth = { authorization: `Bearer ${t.app.secret}` };
      const page = (await (await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/clients?offset=1&limit=2`, { headers: auth })).json()) as { total: number; clients: { clientId: string }[] };
      assert.equal(page.total, 4);
      assert.deepEqual(page.clients.map((c) => c.clientId), ['bravo', 'charlie']);
      const found = (await (await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/clients?search=ALP`, { headers: auth })).json()) as { total: number; clients: { clientId: string }[] };
      assert.deepEqual(found.clients.map((c) => c.clientId), ['Alpha']);
      const got = clients[0]!.waitFor('onMsg');
      await t.server.hub.publish({ apikey: t.app.apikey, target: { all: true, clientIds: [], tags: [] }, event: 'onMsg', data: 1 });
      const [body] = await got;
      clients[0]!.notify('shaddock.client.ack', { id: (body as { id: number }).id });
      await waitFor(async () => {
        const s = (await (await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/stats`, { headers: auth })).json()) as Record<string, number>;
        return s['online'] === 4 && s['accepted'] === 1 && s['delivered'] === 4 && s['acked'] === 1;
      }, { timeoutMs: 5000, message: 'stats did not add up' });
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('an SSE stream on the API port receives pushes (curl -N)', async () => {
    const url = `${t.httpUrl}/api/v1/apps/${t.app.apikey}/clients/sse-1/events`;
    const curl = spawn('curl', ['-sN', '--max-time', '10', url]);
    let out = '';
    curl.stdout.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor(() => t.server.hub.onlineClients(t.app.apikey).some((c) => c.clientId === 'sse-1'), { timeoutMs: 5000, message: 'SSE client did not enter' });
      const r = await t.server.hub.publish({ apikey: t.app.apikey, target: { all: false, clientIds: ['sse-1' as never], tags: [] }, event: 'onMsg', data: { msg: '你好' } });
      await waitFor(() => out.includes(`id: ${r.message.id}`), { timeoutMs: 5000, message: `no SSE event: ${out}` });
      assert.match(out, new RegExp(`id: ${r.message.id}\\nevent: onMsg\\ndata: \\{"msg":"你好"\\}`));
    } finally {
      curl.kill();
    }
  });

  it('plain WebSocket on /ws of the API port', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${t.server.httpPort}/ws`);
    const frames: Record<string, unknown>[] = [];
    ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString()) as Record<string, unknown>));
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'enter', apikey: t.app.apikey, clientId: 'ws-1' }));
    await waitFor(() => frames.some((f) => f['type'] === 'entered'), { timeoutMs: 5000, message: 'not entered' });
    const r = await t.server.hub.publish({ apikey: t.app.apikey, target: { all: false, clientIds: ['ws-1' as never], tags: [] }, event: 'onMsg', data: 'hi' });
    await waitFor(() => frames.some((f) => f['type'] === 'message' && f['id'] === r.message.id), { timeoutMs: 5000, message: 'no message' });
    ws.close();
    await once(ws, 'close');
  });
});
