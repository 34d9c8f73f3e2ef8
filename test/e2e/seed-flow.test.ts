import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

type Transport = 'tcp' | 'ws';

const CHINESE = { title: '通知', msg: '你好，世界！推送消息 🚀' };

/**
 * The seed push platform's whole flow, with a Pomelo client built on the npm reference
 * codec (`pomelo-protocol`), over raw TCP and over WebSocket.
 */
for (const transport of ['tcp', 'ws'] as const) {
  describe(`seed flow over hybrid ${transport}`, () => {
    let t: TestServer;
    const open: PomeloClient[] = [];

    before(async () => {
      t = await startTestServer({ heartbeatSeconds: 1, heartbeatTimeoutSeconds: 2 });
    });
    after(async () => {
      await Promise.all(open.map((c) => c.close()));
      await t.close();
    });

    async function client(opts: { legacyIds?: boolean; compressRoutes?: boolean; autoHeartbeat?: boolean } = {}): Promise<PomeloClient> {
      const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: transport as Transport, ...opts });
      open.push(c);
      return c;
    }

    async function manager(): Promise<{ c: PomeloClient; users: unknown }> {
      const c = await client({ legacyIds: true }); // the seed's web console bundle
      const res = (await c.request('hybrid-connector.entryHandler.enter', {
        apiKey: t.app.apikey,
        userId: 'ignored',
        role: 'server',
        password: t.app.secret,
      })) as Record<string, unknown>;
      assert.equal(res['code'], 200, JSON.stringify(res));
      assert.equal(res['msg'], 'push server is ok.');
      return { c, users: res['users'] };
    }

    async function device(clientId: string, route = 'sio-connector.entryHandler.enter'): Promise<PomeloClient> {
      const c = await client();
      const res = await c.request(route, { clientId, role: 'client', apiKey: t.app.apikey, timestamp: Date.now() });
      assert.deepEqual(res, route === 'hybrid-connector.entryHandler.enter' ? { code: 200, msg: 'add ok', users: null } : { code: 200, msg: 'add ok' });
      return c;
    }

    it('handshake carries the heartbeat and the route dictionary', async () => {
      const c = await client();
      assert.equal(c.handshake.code, 200);
      assert.equal(c.handshake.sys['heartbeat'], 1);
      assert.equal(c.handshake.sys['useDict'], true);
      const dict = c.handshake.sys['dict'] as Record<string, number>;
      assert.equal(typeof dict['pushserver.pushHandler.pushAll'], 'number');
    });

    it('manager sees clients enter and leave; pushAll and pushByClientId reach the right clients', async () => {
      const { c: console_, users } = await manager();
      assert.deepEqual(users, []);
      const added = console_.waitFor('onAdd', (body) => JSON.stringify(body).includes('"phone-1"'));
      const phone1 = await device(`phone-1`);
      assert.deepEqual((await added)[0], { msg: 'add ok', users: ['phone-1'] });
      const phone2 = await device('phone-2', 'hybrid-connector.entryHandler.enter');
      await console_.waitFor('onAdd', (body) => JSON.stringify(body).includes('phone-2'));

      // pushAll: every client gets onMsg with the exact payload.
      const got1 = phone1.waitFor('onMsg');
      const got2 = phone2.waitFor('onMsg');
      const res = (await console_.request('pushserver.pushHandler.pushAll', { msg: CHINESE, apikey: t.app.apikey })) as Record<string, unknown>;
      assert.equal(res['code'], 200);
      assert.equal(res['msg'], 'push is ok.');
      for (const got of [await got1, await got2]) {
        const body = got[0] as Record<string, unknown>;
        assert.deepEqual(body['msg'], CHINESE);
        assert.equal(body['id'], res['id']);
      }

      // pushByClientId: only that client, and the request is answered (the reference hung).
      let phone2Got = 0;
      phone2.on('onMsg', () => phone2Got++);
      const only1 = phone1.waitFor('onMsg', (body) => JSON.stringify(body).includes('for one'));
      const byId = (await console_.request('pushserver.pushHandler.pushByClientId', {
        msg: { title: 't', msg: 'for one' },
        apikey: t.app.apikey,
        clientId: 'phone-1',
      })) as Record<string, unknown>;
      assert.equal(byId['code'], 200);
      await only1;

      // An HTTP push reaches the client, as {msg: data}.
      const viaHttp = phone2.waitFor('onMsg', (body) => JSON.stringify(body).includes('from http'));
      const http = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: { title: 'h', msg: 'from http 中文' } }),
      });
      assert.equal(http.status, 202);
      const accepted = (await http.json()) as { id: number; targeted: number };
      assert.equal(accepted.targeted, 2);
      const [body] = await viaHttp;
      assert.deepEqual(body, { msg: { title: 'h', msg: 'from http 中文' }, id: accepted.id });
      assert.equal(phone2Got, 1, 'phone-2 got only the HTTP push, not the one for phone-1');

      // A client that disconnects is reported gone.
      const left = console_.waitFor('onLeave', (b) => (b as { clientId?: string }).clientId === 'phone-1');
      await phone1.close();
      assert.deepEqual((await left)[0], { clientId: 'phone-1', users: ['phone-2'] });
      const left2 = console_.waitFor('onLeave', (b) => (b as { clientId?: string }).clientId === 'phone-2');
      await phone2.close();
      assert.deepEqual((await left2)[0], { clientId: 'phone-2', users: [] });
    });

    it('a client that stops heartbeating is reported gone', async () => {
      const { c: console_ } = await manager();
      const silent = await client({ autoHeartbeat: false });
      await silent.request('connector.entryHandler.enter', { clientId: 'silent', role: 'client', apikey: t.app.apikey });
      const [body] = await console_.waitFor('onLeave', (b) => (b as { clientId?: string }).clientId === 'silent', 6000);
      assert.deepEqual((body as { users: string[] }).users.includes('silent'), false);
      await waitFor(() => silent.closed, { timeoutMs: 2000, message: 'the silent client was not closed' });
    });

    it('a second connection with the same clientId takes over; the first is kicked with "replaced"', async () => {
      const first = await device('twin');
      const kicked = first.waitFor('kick');
      const second = await device('twin');
      const [reason] = await kicked;
      assert.equal(reason, 'replaced');
      const got = second.waitFor('onMsg');
      await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: 'to the twin', to: { clientIds: ['twin'] } }),
      });
      assert.deepEqual((await got)[0], { msg: 'to the twin', id: ((await got)[0] as { id: number }).id });
    });

    it('wrong secret, unknown apikey, missing fields and unknown routes get {code: 500, msg, error} and never echo the password', async () => {
      const c = await client();
      const wrong = (await c.request('hybrid-connector.entryHandler.enter', {
        apiKey: t.app.apikey,
        role: 'server',
        userId: 'admin',
        password: 'hunter2-wrong',
      })) as Record<string, unknown>;
      assert.equal(wrong['code'], 500);
      assert.match(String(wrong['msg']), /wrong app secret/);
      assert.equal(wrong['error'], 'AUTH_FAILED');
      assert.ok(!JSON.stringify(wrong).includes('hunter2'), 'the password is not echoed');
      const unknownApp = (await c.request('sio-connector.entryHandler.enter', { apiKey: 'nope', clientId: 'x', role: 'client' })) as Record<string, unknown>;
      assert.equal(unknownApp['code'], 500);
      assert.match(String(unknownApp['msg']), /unknown apikey/);
      assert.equal(unknownApp['error'], 'APP_UNKNOWN');
      const missing = (await c.request('sio-connector.entryHandler.enter', { apiKey: t.app.apikey, role: 'client' })) as Record<string, unknown>;
      assert.deepEqual(missing['code'], 500);
      assert.match(String(missing['msg']), /clientId/);
      assert.equal(missing['error'], 'BAD_REQUEST');
      const unknownRoute = (await c.request('chat.chatHandler.send', { a: 1 })) as Record<string, unknown>;
      assert.equal(unknownRoute['code'], 500);
      assert.match(String(unknownRoute['msg']), /unknown route "chat.chatHandler.send"/);
      // docs/pomelo.md: every error answer carries a stable `error` code, this one too.
      assert.equal(unknownRoute['error'], 'ROUTE_UNKNOWN');
      const notManager = (await c.request('pushserver.pushHandler.pushAll', { apikey: t.app.apikey, msg: 'x' })) as Record<string, unknown>;
      assert.equal(notManager['code'], 500);
      assert.match(String(notManager['msg']), /manager/);
      assert.equal(typeof notManager['error'], 'string');
      assert.equal(c.closed, false, 'refusals do not close the connection');
    });

    it('compressed routes from newer clients work', async () => {
      const c = await client({ compressRoutes: true });
      const res = await c.request('connector.entryHandler.enter', { clientId: 'compressed', role: 'client', apikey: t.app.apikey });
      assert.deepEqual(res, { code: 200, msg: 'add ok' });
    });

    it('a legacy browser bundle gets an answer to every one of thousands of requests', async () => {
      const c = await client({ legacyIds: true });
      const n = 2000;
      let answered = 0;
      for (let i = 0; i < n; i += 200) {
        const batch = Array.from({ length: 200 }, () =>
          c.request('hybrid-connector.entryHandler.enter', { apiKey: t.app.apikey, role: 'client', clientId: 'legacy' }),
        );
        for (const r of await Promise.all(batch)) {
          assert.equal((r as { code: number }).code, 200);
          answered++;
        }
      }
      assert.equal(answered, n);
    });

    it('a malformed package closes only the offender, with a reason; others keep receiving', async () => {
      const bystander = await device('bystander');
      const offender = await client();
      const kicked = offender.waitFor('kick');
      // Package type 9 does not exist (docs/pomelo-protocol.md §2.2).
      offender.sendRaw(Buffer.from([0x09, 0x00, 0x00, 0x01, 0x00]));
      const [reason] = await kicked;
      assert.match(String(reason), /PROTO_BAD_TYPE/);
      await waitFor(() => offender.closed, { timeoutMs: 3000, message: 'offender not closed' });
      const got = bystander.waitFor('onMsg');
      const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: 'still here', to: { clientIds: ['bystander'] } }),
      });
      assert.equal(res.status, 202);
      assert.equal(((await got)[0] as { msg: string }).msg, 'still here');
    });

    it('an oversized package is refused from its header alone', async () => {
      const offender = await client();
      const kicked = offender.waitFor('kick');
      // DATA with a declared 16 MiB body: refused before any body byte is buffered.
      offender.sendRaw(Buffer.from([0x04, 0xff, 0xff, 0xff]));
      if (transport === 'tcp') {
        const [reason] = await kicked;
        assert.match(String(reason), /LIMIT_PAYLOAD/);
      }
      await waitFor(() => offender.closed, { timeoutMs: 3000, message: 'offender not closed' });
    });
  });
}

describe('hybrid connector edge cases', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ handshakeTimeoutSeconds: 1 });
  });
  after(async () => {
    await t.close();
  });

  it('a TCP peer that never completes the handshake is closed at the deadline', async () => {
    const socket = netConnect(t.server.hybridPort, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(Buffer.from([0x03, 0x00, 0x00, 0x00])); // a heartbeat, but no handshake
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'close');
    assert.match(Buffer.concat(chunks).toString(), /"reason":"handshake timeout"/);
  });

  it('a bad handshake gets code 500 and is closed', async () => {
    const socket = netConnect(t.server.hybridPort, '127.0.0.1');
    await once(socket, 'connect');
    const body = Buffer.from('not json');
    socket.write(Buffer.concat([Buffer.from([0x01, 0x00, 0x00, body.length]), body]));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'close');
    assert.equal(Buffer.concat(chunks).toString('hex'), '0100000c7b22636f6465223a3530307d');
  });

  it('plain HTTP on the hybrid port gets a clear 426, not silence', async () => {
    const res = await fetch(`http://127.0.0.1:${t.server.hybridPort}/`);
    assert.equal(res.status, 426);
    assert.match(await res.text(), /Pomelo hybrid connector/);
  });
});

describe('hybrid connector with Pomelo protobuf and a push dictionary', () => {
  let t: TestServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shaddock-protos-'));
    const serverProtos = join(dir, 'serverProtos.json');
    const clientProtos = join(dir, 'clientProtos.json');
    writeFileSync(serverProtos, JSON.stringify({ onMsg: { 'message Msg': { 'required string title': 1, 'required string msg': 2 }, 'required Msg msg': 1, 'optional uInt32 id': 2 } }));
    writeFileSync(clientProtos, JSON.stringify({ 'connector.entryHandler.enter': { 'required string apikey': 1, 'required string clientId': 2, 'required string role': 3 } }));
    t = await startTestServer({ serverProtosFile: serverProtos, clientProtosFile: clientProtos, dictionaryRoutes: ['onMsg'] });
  });
  after(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  // The reference browser codec (pomelo-protobuf lib/client) cannot decode 4-byte UTF-8
  // (emoji): it is the client's limit, so this payload stays in the Basic Multilingual Plane.
  const BMP = { title: '通知', msg: '你好，世界！推送消息' };
  for (const [transport, codec] of [['tcp', 'node'], ['ws', 'browser']] as const) {
    it(`protobuf request and push bodies, compressed push route (${transport}, ${codec} codec)`, async () => {
      const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport, protobufCodec: codec });
      try {
        assert.equal(c.handshake.sys['useProto'], true);
        assert.ok(c.handshake.sys['protos'], 'the handshake carries the protos');
        // Configured dictionary routes come after the handler routes (docs/pomelo-protocol.md §8.1).
        const dict = c.handshake.sys['dict'] as Record<string, number>;
        assert.equal(dict['onMsg'], Object.keys(dict).length);
        // The enter body goes out as protobuf (the client encodes by clientProtos).
        const res = await c.request('connector.entryHandler.enter', { apikey: t.app.apikey, clientId: `pb-${transport}`, role: 'client' });
        assert.deepEqual(res, { code: 200, msg: 'add ok' });
        const got = c.waitFor('onMsg');
        const r = await t.server.hub.publish({ apikey: t.app.apikey, target: { all: true, clientIds: [], tags: [] }, event: 'onMsg', data: BMP });
        assert.deepEqual((await got)[0], { msg: BMP, id: r.message.id });
      } finally {
        await c.close();
      }
    });
  }
});
