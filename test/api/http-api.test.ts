import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
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
      [await push({ data: 1, ttl: -5 }), 400, 'BAD_REQUEST', /ttl/],
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
