// Access and limits on the ntfy port. Auth forms are ntfy's (https://docs.ntfy.sh/publish/#authentication:
// Basic, Bearer, `-u :token`, `?auth=`), mapped onto Shaddock credentials (docs/ntfy.md, "Access");
// refusals are ntfy's 401 {"code":40101} / 403 {"code":40301} / 429 {"code":42901}.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { unlinkByPrefix } from '../../../src/redis/client.js';
import { adminAuth, startTestServer, type TestServer } from '../../fixtures/test-server.js';
import { signClientToken } from '../../../src/hub/client-tokens.js';
import { once, waitFor } from '../../fixtures/wait.js';
import { curl, CurlStream } from './ntfy-helpers.js';

type Msg = { readonly [k: string]: unknown };
const REDIS = process.env['SHADDOCK_TEST_REDIS'] ?? 'redis://127.0.0.1:6379';

/** Removes every key a test wrote under its prefix. */
async function deletePrefix(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await r.connect();
    await unlinkByPrefix(r, prefix);
  } finally {
    r.disconnect();
  }
}
const FORBIDDEN = { code: 40301, http: 403, error: 'forbidden', link: 'https://ntfy.sh/docs/publish/#authentication' };

/** ntfy's `?auth=`: the Authorization header value, base64 (raw URL alphabet). */
const authParam = (header: string): string => Buffer.from(header).toString('base64url');

describe('ntfy access: anonymous setting, app secret, client tokens', () => {
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });
  const start = async (overrides: Parameters<typeof startTestServer>[0] = {}): Promise<{ t: TestServer; base: string }> => {
    const t = await startTestServer(overrides);
    servers.push(t);
    return { t, base: `http://127.0.0.1:${t.server.ntfyPort}` };
  };

  it('deny: anonymous publish and subscribe get 403 40301; the app secret works as Bearer, Basic password (-u :secret) and ?auth=', async () => {
    const { t, base } = await start({ ntfyAnonymousAccess: 'deny' });
    const secret = t.server.ntfyApp.secret;
    let r = await curl(['-d', 'Look ma, with auth', `${base}/mysecrets`]);
    assert.equal(r.status, 403);
    assert.deepEqual(r.json, FORBIDDEN);
    r = await curl([`${base}/mysecrets/json?poll=1`]);
    assert.deepEqual([r.status, r.json], [403, FORBIDDEN]);
    const ws = new WebSocket(`ws://127.0.0.1:${t.server.ntfyPort}/mysecrets/ws`);
    ws.on('error', () => undefined);
    const [, res] = (await once(ws, 'unexpected-response', 5000)) as [unknown, { statusCode: number; destroy(): void }];
    assert.equal(res.statusCode, 403);
    res.destroy();

    r = await curl(['-H', `Authorization: Bearer ${secret}`, '-d', 'bearer', `${base}/mysecrets`]);
    assert.equal(r.status, 200, r.body);
    r = await curl(['-u', `:${secret}`, '-d', 'basic, empty user', `${base}/mysecrets`]);
    assert.equal(r.status, 200, r.body);
    r = await curl(['-u', `anyone:${secret}`, '-d', 'basic, some user', `${base}/mysecrets`]);
    assert.equal(r.status, 200, r.body);
    const basic = `Basic ${Buffer.from(`:${secret}`).toString('base64')}`;
    r = await curl(['-d', 'query auth', `${base}/mysecrets?auth=${authParam(basic)}`]);
    assert.equal(r.status, 200, r.body);
    r = await curl([`${base}/mysecrets/json?poll=1&auth=${authParam(`Bearer ${secret}`)}`]);
    assert.deepEqual(r.body.trim().split('\n').map((l) => (JSON.parse(l) as Msg)['message']), ['bearer', 'basic, empty user', 'basic, some user', 'query auth']);
    // A wrong credential is 401 whatever anonymous users may do.
    r = await curl(['-H', 'Authorization: Bearer tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2', '-d', 'x', `${base}/mysecrets`]);
    assert.deepEqual([r.status, r.json], [401, { code: 40101, http: 401, error: 'unauthorized', link: 'https://ntfy.sh/docs/publish/#authentication' }]);
    r = await curl(['-u', 'testuser:fakepassword', '-d', 'x', `${base}/mysecrets`]);
    assert.equal(r.status, 401);
    r = await curl(['-d', 'x', `${base}/mysecrets?auth=***`]);
    assert.equal(r.status, 401);
    // A ws subscriber with ?auth=, as the web app authenticates (browsers' WebSocket sets no headers).
    const authed = new WebSocket(`ws://127.0.0.1:${t.server.ntfyPort}/mysecrets/ws?auth=${authParam(basic)}`);
    const frames: Msg[] = [];
    authed.on('message', (d) => frames.push(JSON.parse(String(d)) as Msg));
    await waitFor(() => frames.length >= 1, { timeoutMs: 5000, message: 'open over ws with ?auth=' });
    assert.equal(frames[0]!['event'], 'open');
    const closed = once(authed, 'close', 5000);
    authed.close();
    await closed;
  });

  // The access settings are the app's (docs/ntfy.md, "Access"): an admin PATCHes them and
  // the next ntfy request is answered per the new setting, no restart; on both stores.
  for (const store of ['sqlite', 'redis'] as const) {
    it(`${store}: ntfyAnonymousAccess and ntfyTokensCanPublish changed by PATCH /api/v1/apps/:apikey take effect at the next request`, async () => {
      const prefix = `shaddock-test:${randomUUID()}:`;
      const { t, base } = await start(store === 'redis' ? { redisUrl: REDIS, redisPrefix: prefix } : {});
      try {
        const app = t.server.ntfyApp;
        const patch = async (body: unknown): Promise<{ status: number; json: Msg }> => {
          const res = await fetch(`${t.httpUrl}/api/v1/apps/${app.apikey}`, {
            method: 'PATCH',
            headers: { authorization: adminAuth(), 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
          return { status: res.status, json: (await res.json()) as Msg };
        };
        // The default is ntfy's: read-write.
        assert.equal((await curl(['-d', 'x', `${base}/t1`])).status, 200);
        assert.equal((await curl([`${base}/t1/json?poll=1`])).status, 200);

        let p = await patch({ ntfyAnonymousAccess: 'deny' });
        assert.deepEqual([p.status, p.json['ntfyAnonymousAccess'], p.json['ntfyTokensCanPublish']], [200, 'deny', false]);
        assert.deepEqual(await curl(['-d', 'x', `${base}/t1`]).then((r) => [r.status, r.json]), [403, FORBIDDEN]);
        assert.deepEqual(await curl([`${base}/t1/json?poll=1`]).then((r) => [r.status, r.json]), [403, FORBIDDEN]);

        assert.equal((await patch({ ntfyAnonymousAccess: 'read-only' })).status, 200);
        assert.equal((await curl(['-d', 'x', `${base}/t1`])).status, 403);
        assert.equal((await curl([`${base}/t1/json?poll=1`])).status, 200);

        assert.equal((await patch({ ntfyAnonymousAccess: 'write-only' })).status, 200);
        assert.equal((await curl(['-d', 'x', `${base}/t1`])).status, 200);
        assert.deepEqual((await curl([`${base}/t1/json?poll=1`])).json, FORBIDDEN);
        assert.deepEqual((await curl([`${base}/t1/auth`])).json, FORBIDDEN);

        // A client token reads; it publishes only once the app allows it.
        const { token } = await signClientToken({ secret: app.secret, apikey: app.apikey, clientId: 'svc', ttlSeconds: 600 });
        assert.equal((await curl(['-H', `Authorization: Bearer ${token}`, `${base}/t1/json?poll=1`])).status, 200);
        assert.deepEqual((await curl(['-u', `:${token}`, '-d', 'not yet', `${base}/t1`])).json, FORBIDDEN);
        p = await patch({ ntfyTokensCanPublish: true });
        assert.deepEqual([p.status, p.json['ntfyTokensCanPublish']], [200, true]);
        assert.equal((await curl(['-u', `:${token}`, '-d', 'allowed', `${base}/t1`])).status, 200);
        assert.equal((await patch({ ntfyTokensCanPublish: false })).status, 200);
        assert.deepEqual((await curl(['-u', `:${token}`, '-d', 'no more', `${base}/t1`])).json, FORBIDDEN);

        // Bad values: 400 naming the field; nothing changes.
        for (const body of [{ ntfyAnonymousAccess: 'everyone' }, { ntfyTokensCanPublish: 'yes' }]) {
          p = await patch(body);
          assert.equal(p.status, 400);
          assert.equal(p.json['code'], 'BAD_REQUEST');
          assert.match(String(p.json['message']), new RegExp(Object.keys(body)[0]!));
        }
        const now = await t.server.storage.apps.getApp(app.apikey);
        assert.deepEqual([now?.ntfyAnonymousAccess, now?.ntfyTokensCanPublish], ['write-only', false]);
      } finally {
        if (store === 'redis') await deletePrefix(REDIS, prefix);
      }
    });
  }

  it('the config keys are the values the ntfy app starts with on the first start, and only then', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'shaddock-ntfy-'));
    try {
      const first = await startTestServer({ dataDir, ntfyAnonymousAccess: 'read-only', ntfyTokensCanPublish: true });
      const app = first.server.ntfyApp;
      assert.deepEqual([app.ntfyAnonymousAccess, app.ntfyTokensCanPublish], ['read-only', true]);
      await first.server.storage.apps.updateApp(app.apikey, { ntfyAnonymousAccess: 'deny' });
      await first.close();
      // The app's setting wins over the config on the next start.
      const second = await startTestServer({ dataDir, ntfyAnonymousAccess: 'read-write' });
      try {
        assert.equal(second.server.ntfyApp.apikey, app.apikey);
        assert.equal(second.server.ntfyApp.ntfyAnonymousAccess, 'deny');
        assert.equal((await curl([`http://127.0.0.1:${second.server.ntfyPort}/t1/json?poll=1`])).status, 403);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('client tokens: read their topics as their own client; publish only when ntfyTokensCanPublish; a token of another app is 401', async () => {
    const { t, base } = await start({ ntfyAnonymousAccess: 'deny' });
    const app = t.server.ntfyApp;
    const { token } = await signClientToken({ secret: app.secret, apikey: app.apikey, clientId: 'phone-1', ttlSeconds: 600 });
    const sub = new CurlStream(['-H', `Authorization: Bearer ${token}`, `${base}/alerts/json`]);
    try {
      await sub.waitFor((s) => s.events.length >= 1, 'open');
      const online = await t.server.hub.listClients(app.apikey);
      assert.deepEqual(online.map((c) => [c.clientId, c.connector]), [['phone-1', 'ntfy']], 'the token holder is its client');
      let r = await curl(['-u', `:${token}`, '-d', 'from the phone', `${base}/alerts`]);
      assert.deepEqual([r.status, r.json], [403, FORBIDDEN]);
      r = await curl(['-H', `Authorization: Bearer ${app.secret}`, '-d', 'to the phone', `${base}/alerts`]);
      await sub.waitFor((s) => s.messages().length === 1, 'the message');
    } finally {
      sub.stop();
    }
    const jwt = await signClientToken({ secret: app.secret, apikey: app.apikey, clientId: 'phone-2', ttlSeconds: 600, format: 'jwt' });
    assert.equal((await curl(['-H', `Authorization: Bearer ${jwt.token}`, `${base}/alerts/json?poll=1`])).status, 200);
    const other = await signClientToken({ secret: 'another-apps-secret', apikey: app.apikey, clientId: 'x', ttlSeconds: 600 });
    const r = await curl(['-H', `Authorization: Bearer ${other.token}`, `${base}/alerts/json?poll=1`]);
    assert.equal(r.status, 401);
    assert.match((r.json as Msg)['error'] as string, /^unauthorized; the client token signature is wrong/);
    const expired = await signClientToken({ secret: app.secret, apikey: app.apikey, clientId: 'x', ttlSeconds: 1, now: Date.now() - 10_000 });
    assert.equal((await curl(['-H', `Authorization: Bearer ${expired.token}`, `${base}/alerts/json?poll=1`])).status, 401);

    const pub = await start({ ntfyAnonymousAccess: 'deny', ntfyTokensCanPublish: true });
    const pubApp = pub.t.server.ntfyApp;
    const tok = await signClientToken({ secret: pubApp.secret, apikey: pubApp.apikey, clientId: 'svc', ttlSeconds: 600 });
    assert.equal((await curl(['-u', `:${tok.token}`, '-d', 'allowed', `${pub.base}/alerts`])).status, 200);
  });

  it('an app that requires client tokens lets no anonymous reader in; the secret still subscribes', async () => {
    const { t, base } = await start();
    const app = t.server.ntfyApp;
    await t.server.storage.apps.updateApp(app.apikey, { requireClientToken: true });
    assert.deepEqual((await curl([`${base}/locked/json?poll=1`])).json, FORBIDDEN);
    assert.equal((await curl(['-d', 'anonymous publish is the write setting', `${base}/locked`])).status, 200);
    const r = await curl(['-H', `Authorization: Bearer ${app.secret}`, `${base}/locked/json?poll=1`]);
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body.trim()) as Msg)['message'], 'anonymous publish is the write setting');
  });
});

describe('ntfy limits: per-address connections and request rate (ntfy\'s 429 shape)', () => {
  it('past maxConnectionsPerIp: 429 {"code":42901}; past requestsPerSecond on a connection: 429 42901; others unaffected', async () => {
    const t = await startTestServer({ limitsExemptIps: [], maxConnectionsPerIp: 2, connectsPerSecondPerIp: 0, requestsPerSecond: 2 });
    const base = `http://127.0.0.1:${t.server.ntfyPort}`;
    const subs = [new CurlStream([`${base}/lim/json`]), new CurlStream([`${base}/lim/json`])];
    try {
      for (const s of subs) await s.waitFor((x) => x.events.length >= 1, 'open');
      const r = await curl([`${base}/lim/json?poll=1`]);
      assert.equal(r.status, 429);
      assert.deepEqual(r.json, { code: 42901, http: 429, error: `limit reached: too many requests; too many connections from this address`, link: 'https://ntfy.sh/docs/publish/#limitations' });
      // The port's one door (listen.ts) counted it, as every listener's refusals are.
      const metrics = await (await fetch(`http://127.0.0.1:${t.server.httpPort}/metrics`)).text();
      assert.match(metrics, /shaddock_listener_refusals_total\{[^}]*listener="ntfy"[^}]*\} [1-9]/);
      subs[0]!.stop();
      await waitFor(async () => (await curl([`${base}/v1/health`])).status === 200, { timeoutMs: 5000, message: 'a slot again' });
      assert.equal(subs[1]!.exited, false, 'the other subscriber was not touched');
      for (const s of subs) s.stop();
      // Several requests on one keep-alive connection: a bucket of 2/s, bursts of 4.
      const statuses: number[] = [];
      const out = await curl(['-s', '-o', '/dev/null', ...Array.from({ length: 8 }, () => [`${base}/v1/health`, '-o', '/dev/null', '-w', '%{http_code} ']).flat()]);
      statuses.push(...out.body.trim().split(/\s+/).map(Number));
      assert.ok(statuses.includes(429), `some requests refused: ${statuses.join(',')}`);
      assert.equal(statuses[0], 200);
    } finally {
      for (const s of subs) s.stop();
      await t.close();
    }
  });
});

describe('ntfy slow subscribers', () => {
  it('a subscriber that stops reading is cut once its unsent bytes pass maxBufferedBytes; the others get everything', async () => {
    const { connect } = await import('node:net');
    const t = await startTestServer({ maxBufferedBytes: 1024 * 1024 });
    const base = `http://127.0.0.1:${t.server.ntfyPort}`;
    // A raw client that asks for the stream and then never reads: the kernel's buffers fill, then ours.
    const stalled = connect(t.server.ntfyPort!, '127.0.0.1');
    stalled.on('error', () => undefined);
    // (A paused socket never sees the server's close: the live list says when it is cut.)
    stalled.write('GET /slow/json HTTP/1.1\r\nHost: x\r\n\r\n');
    // It reads the headers and the open event, then nothing more.
    await once(stalled, 'data', 5000);
    stalled.pause();
    const healthy = new CurlStream([`${base}/slow/json`]);
    const apikey = t.server.ntfyApp.apikey;
    try {
      await healthy.waitFor((s) => s.events.length >= 1, 'open');
      await waitFor(async () => (await t.server.hub.listClients(apikey)).length === 2, { timeoutMs: 5000, message: 'both subscribed' });
      const body = 'x'.repeat(4000);
      let sent = 0;
      // Publish until the stalled one is cut (the kernel's buffers take a few MB first), at most 4,000 × 4 KB.
      while ((await t.server.hub.listClients(apikey)).length === 2 && sent < 4000) {
        const batch = [];
        for (let k = 0; k < 50; k++) batch.push(fetch(`${base}/slow`, { method: 'POST', body }).then((r) => r.arrayBuffer()));
        await Promise.all(batch);
        sent += 50;
      }
      const left = await t.server.hub.listClients(apikey);
      assert.equal(left.length, 1, `the stalled subscriber was cut after ${sent} messages`);
      const metrics = await (await fetch(`${t.httpUrl}/metrics`)).text();
      assert.match(metrics, /shaddock_slow_consumer_closes_total\{connector="ntfy"\} 1/);
      await healthy.waitFor((s) => s.messages().length === sent, `all ${sent} messages on the healthy stream`, 60_000);
      assert.equal(healthy.exited, false);
    } finally {
      healthy.stop();
      stalled.destroy();
      await t.close();
    }
  });
});
