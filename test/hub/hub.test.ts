import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Hub, HubError } from '../../src/hub/hub.js';
import { LocalBus } from '../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../src/store/sqlite-storage.js';
import { createLogger } from '../../src/log.js';
import { asClientId } from '../../src/ids.js';
import type { App, Storage } from '../../src/store/store.js';
import { CountingEncoder, FakeConnection } from './fake-connection.js';

describe('Hub', () => {
  let storage: Storage;
  let hub: Hub;
  let app: App;
  let other: App;

  beforeEach(async () => {
    storage = openSqliteStorage(':memory:');
    hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1000 });
    app = await storage.apps.createApp({ name: 'a' });
    other = await storage.apps.createApp({ name: 'b' });
    await storage.admins.setAdminPassword('root', 'root-password');
  });
  afterEach(async () => {
    await storage.close();
  });

  const all = { all: true, clientIds: [], tags: [] };

  it('encodes a broadcast once per wire format and writes the same value to every client', async () => {
    const tcp = new CountingEncoder();
    const ws = new CountingEncoder();
    const conns = Array.from({ length: 100 }, (_, i) => new FakeConnection(i % 2 === 0 ? tcp : ws));
    for (const [i, c] of conns.entries()) await hub.enterClient(c, { apikey: app.apikey, clientId: `c${i}` });
    tcp.calls = 0;
    ws.calls = 0;
    const { message, targeted } = await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: { t: '推送' } });
    assert.equal(targeted, 100);
    assert.equal(message.id, 1);
    assert.equal(tcp.calls, 1);
    assert.equal(ws.calls, 1);
    const first = conns[0]!.written.at(-1);
    for (const c of conns) {
      assert.equal(c.written.length, 1);
      if (c.encoder === tcp) assert.equal(c.written[0], first);
      assert.deepEqual(c.written[0]!.body, { msg: { t: '推送' }, id: 1 });
    }
  });

  it('delivers to named clients only, once each, and never across apps', async () => {
    const enc = new CountingEncoder();
    const a1 = new FakeConnection(enc);
    const a2 = new FakeConnection(enc);
    const b1 = new FakeConnection(enc);
    await hub.enterClient(a1, { apikey: app.apikey, clientId: 'x' });
    await hub.enterClient(a2, { apikey: app.apikey, clientId: 'y' });
    await hub.enterClient(b1, { apikey: other.apikey, clientId: 'x' });
    const r = await hub.publish({ apikey: app.apikey, target: { all: false, clientIds: [asClientId('x'), asClientId('x'), asClientId('offline')], tags: [] }, event: 'onMsg', data: 1 });
    assert.equal(r.targeted, 2);
    assert.equal(a1.written.length, 1);
    assert.equal(a2.written.length, 0);
    assert.equal(b1.written.length, 0);
  });

  it('tells managers who joins and leaves, with the full list', async () => {
    const enc = new CountingEncoder();
    const manager = new FakeConnection(enc);
    assert.deepEqual(await hub.enterManager(manager, app.apikey, app.secret, undefined), []);
    const c1 = new FakeConnection(enc);
    const c2 = new FakeConnection(enc);
    await hub.enterClient(c1, { apikey: app.apikey, clientId: 'one' });
    await hub.enterClient(c2, { apikey: app.apikey, clientId: 'two' });
    assert.deepEqual(manager.events('onAdd'), [
      { msg: 'add ok', users: ['one'] },
      { msg: 'add ok', users: ['one', 'two'] },
    ]);
    hub.leave(c1);
    assert.deepEqual(manager.events('onLeave'), [{ clientId: 'one', users: ['two'] }]);
    const second = new FakeConnection(enc);
    assert.deepEqual(await hub.enterManager(second, app.apikey, 'root-password', 'root'), ['two']);
  });

  it('a second connection with the same clientId takes over; the first is kicked with "replaced"', async () => {
    const enc = new CountingEncoder();
    const manager = new FakeConnection(enc);
    await hub.enterManager(manager, app.apikey, app.secret, undefined);
    const first = new FakeConnection(enc);
    const second = new FakeConnection(enc, 'hybrid-ws');
    await hub.enterClient(first, { apikey: app.apikey, clientId: 'same' });
    await hub.enterClient(second, { apikey: app.apikey, clientId: 'same' });
    assert.equal(first.closedWith, 'replaced');
    hub.leave(first); // the connector reports the close afterwards
    assert.deepEqual(manager.events('onLeave'), []);
    assert.deepEqual(hub.onlineClients(app.apikey).map((c) => [c.clientId, c.connector]), [['same', 'hybrid-ws']]);
    await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 'x' });
    assert.equal(second.written.filter((w) => w.kind === 'message').length, 1);
    assert.equal(first.written.filter((w) => w.kind === 'message').length, 0);
  });

  it('refuses wrong secrets, unknown apps and pushes from non-managers with clear codes', async () => {
    const enc = new CountingEncoder();
    const c = new FakeConnection(enc);
    await assert.rejects(hub.enterManager(c, app.apikey, 'wrong', undefined), (e: HubError) => e.code === 'AUTH_FAILED');
    await assert.rejects(hub.enterManager(c, app.apikey, 'root-password', 'nobody'), (e: HubError) => e.code === 'AUTH_FAILED');
    await assert.rejects(hub.enterClient(c, { apikey: 'nope', clientId: 'x' }), (e: HubError) => e.code === 'APP_UNKNOWN');
    await assert.rejects(hub.enterClient(c, { apikey: app.apikey, clientId: '' }), (e: HubError) => e.code === 'BAD_REQUEST');
    const req = { apikey: app.apikey, target: all, event: 'onMsg', data: 1 };
    await assert.rejects(hub.publishAsManager(c, req), (e: HubError) => e.code === 'NOT_ENTERED');
    await hub.enterClient(c, { apikey: app.apikey, clientId: 'x' });
    await assert.rejects(hub.publishAsManager(c, req), (e: HubError) => e.code === 'FORBIDDEN');
    const m = new FakeConnection(enc);
    await hub.enterManager(m, other.apikey, other.secret, undefined);
    await assert.rejects(hub.publishAsManager(m, req), (e: HubError) => e.code === 'FORBIDDEN');
  });

  it('closes a slow consumer and keeps delivering to the others', async () => {
    const enc = new CountingEncoder();
    const slow = new FakeConnection(enc);
    slow.growPerWrite = 600;
    const fast = new FakeConnection(enc);
    await hub.enterClient(slow, { apikey: app.apikey, clientId: 'slow' });
    await hub.enterClient(fast, { apikey: app.apikey, clientId: 'fast' });
    for (let i = 0; i < 5; i++) await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: i });
    assert.equal(slow.closedWith, 'slow consumer');
    assert.equal(fast.written.length, 5);
  });

  it('does not register a connection that closed while its enter awaited the store', async () => {
    const c = new FakeConnection(new CountingEncoder());
    const entering = hub.enterClient(c, { apikey: app.apikey, clientId: 'ghost' });
    c.close('gone');
    hub.leave(c);
    await entering;
    assert.deepEqual(hub.onlineClients(app.apikey), []);
  });

  it('concurrent enters on one connection are idempotent, never a self-takeover', async () => {
    const c = new FakeConnection(new CountingEncoder());
    await Promise.all(Array.from({ length: 20 }, () => hub.enterClient(c, { apikey: app.apikey, clientId: 'same' })));
    assert.equal(c.closedWith, undefined);
    assert.equal(hub.onlineClients(app.apikey).length, 1);
    await assert.rejects(hub.enterClient(c, { apikey: app.apikey, clientId: 'other' }), (e: HubError) => e.code === 'BAD_REQUEST');
  });

  it('drops every connection of a deleted app', async () => {
    const enc = new CountingEncoder();
    const c = new FakeConnection(enc);
    const m = new FakeConnection(enc);
    await hub.enterClient(c, { apikey: app.apikey, clientId: 'x' });
    await hub.enterManager(m, app.apikey, app.secret, undefined);
    hub.dropApp(app.apikey);
    assert.equal(c.closedWith, 'app deleted');
    assert.equal(m.closedWith, 'app deleted');
  });
});
