// The hub as one node of a cluster, driven by a bus we control: events from "other
// nodes", events lost while the subscription was down, and the order of two enters.
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../../src/hub/hub.js';
import type { Bus, BusEvent } from '../../src/bus/bus.js';
import { LocalPresence } from '../../src/presence/local-presence.js';
import { openSqliteStorage } from '../../src/store/sqlite-storage.js';
import { createLogger } from '../../src/log.js';
import { asClientId, type ApiKey } from '../../src/ids.js';
import type { App, Storage } from '../../src/store/store.js';
import { CountingEncoder, FakeConnection } from './fake-connection.js';
import { waitFor } from '../fixtures/wait.js';

/** A bus whose delivery to this node can be cut (a lost subscription) and restored. */
class ControlledBus implements Bus {
  readonly published: BusEvent[] = [];
  #handlers: ((event: BusEvent) => void)[] = [];
  #resubscribed: (() => void)[] = [];
  connected = true;

  publish(event: BusEvent): Promise<void> {
    this.published.push(event);
    if (this.connected) for (const h of this.#handlers) h(event);
    return Promise.resolve();
  }
  /** An event published by another node. */
  fromElsewhere(event: BusEvent): void {
    if (this.connected) for (const h of this.#handlers) h(event);
  }
  subscribe(handler: (event: BusEvent) => void): void {
    this.#handlers.push(handler);
  }
  onResubscribed(handler: () => void): void {
    this.#resubscribed.push(handler);
  }
  restore(): void {
    this.connected = true;
    for (const h of this.#resubscribed) h();
  }
  close(): Promise<void> {
    this.#handlers = [];
    return Promise.resolve();
  }
}

/** The single-node presence, with the live nodes set by the test. */
class TestPresence extends LocalPresence {
  live: string[] = ['here', 'there'];
  override nodes(): Promise<readonly string[]> {
    return Promise.resolve(this.live);
  }
}

describe('Hub in a cluster', () => {
  let storage: Storage;
  let bus: ControlledBus;
  let presence: TestPresence;
  let hub: Hub;
  let app: App;
  const all = { all: true, clientIds: [], tags: [] };

  beforeEach(async () => {
    storage = openSqliteStorage(':memory:');
    bus = new ControlledBus();
    presence = new TestPresence('here');
    hub = new Hub({ storage, bus, logger: createLogger('silent'), maxBufferedBytes: 1 << 20, cluster: { nodeId: 'here', presence, nodeCheckMs: 20 } });
    app = await storage.apps.createApp({ name: 'a' });
  });
  afterEach(async () => {
    await hub.close();
    await storage.close();
  });

  const ids = (c: FakeConnection): number[] => c.written.filter((w) => w.kind === 'message').map((w) => (w.body as { id: number }).id);

  it('after a lost subscription, every client gets from the store what the bus did not bring', async () => {
    const enc = new CountingEncoder();
    const a = new FakeConnection(enc);
    const b = new FakeConnection(enc);
    await (await hub.enterClient(a, { apikey: app.apikey, clientId: 'a' })).replayed;
    await (await hub.enterClient(b, { apikey: app.apikey, clientId: 'b' })).replayed;
    await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 1 });
    bus.connected = false;
    // Published while this node heard nothing (here, or on another node: it is in the store).
    await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 2 });
    await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 3 });
    assert.deepEqual(ids(a), [1]);
    bus.restore();
    await waitFor(() => ids(a).length === 3 && ids(b).length === 3, { timeoutMs: 5000, message: `a: ${ids(a).join()}, b: ${ids(b).join()}` });
    // The next message shows the bus's gap (2, 3), which is filled from the store: members
    // that already replayed them skip them, and 4 follows.
    await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 4 });
    await waitFor(() => ids(a).length === 4 && ids(b).length === 4, { timeoutMs: 5000, message: `a: ${ids(a).join()}, b: ${ids(b).join()}` });
    assert.deepEqual(ids(a), [1, 2, 3, 4]);
    assert.deepEqual(ids(b), [1, 2, 3, 4]);
  });

  it('an older message arriving after a newer one is not skipped by a client that entered before either', async () => {
    const c = new FakeConnection(new CountingEncoder());
    await (await hub.enterClient(c, { apikey: app.apikey, clientId: 'c' })).replayed;
    // Two messages stored by other nodes, whose bus events arrive in the wrong order.
    const m1 = await storage.messages.append({ apikey: app.apikey, targeted: 1, target: all, event: 'onMsg', data: 1, ttlSeconds: 60 });
    const m2 = await storage.messages.append({ apikey: app.apikey, targeted: 1, target: all, event: 'onMsg', data: 2, ttlSeconds: 60 });
    bus.fromElsewhere({ kind: 'message', msg: m2 });
    bus.fromElsewhere({ kind: 'message', msg: m1 });
    await waitFor(() => ids(c).length === 2, { timeoutMs: 2000, message: `got ${ids(c).join()}` });
    assert.deepEqual(ids(c), [m1.id, m2.id]);
  });

  it('a message whose bus copy arrives while the gap filler reads it from the store is delivered once, and the order goes on', async () => {
    const c = new FakeConnection(new CountingEncoder());
    await (await hub.enterClient(c, { apikey: app.apikey, clientId: 'c' })).replayed;
    const append = (data: number) => storage.messages.append({ apikey: app.apikey, targeted: 1, target: all, event: 'onMsg', data, ttlSeconds: 60 });
    const [m1, m2, m3] = [await append(1), await append(2), await append(3)];
    // A slow store read, during which the message's own bus copy comes in (as from a busy node).
    const get = storage.messages.get.bind(storage.messages);
    storage.messages.get = async (apikey, id) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (id === m1!.id) bus.fromElsewhere({ kind: 'message', msg: m1! });
      return get(apikey, id);
    };
    bus.fromElsewhere({ kind: 'message', msg: m2! }); // 2 before 1: a gap, filled from the store
    await waitFor(() => ids(c).length === 2, { timeoutMs: 2000, message: 'messages 1 and 2' });
    bus.fromElsewhere({ kind: 'message', msg: m3! });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Two more, whose bus events arrive in the wrong order: they must still be put in order.
    const m4 = await append(4);
    const m5 = await append(5);
    bus.fromElsewhere({ kind: 'message', msg: m5 });
    bus.fromElsewhere({ kind: 'message', msg: m4 });
    await waitFor(() => ids(c).length >= 5, { timeoutMs: 2000, message: 'five messages' }).catch(() => undefined);
    assert.deepEqual(ids(c), [1, 2, 3, 4, 5]);
  });

  it('a client entering on another node replaces the one here only if ours was announced first', async () => {
    const enc = new CountingEncoder();
    const older = new FakeConnection(enc);
    await hub.enterClient(older, { apikey: app.apikey, clientId: 'phone' });
    const at = Date.now() - 60_000; // another node's clock, far behind: clocks play no part
    bus.fromElsewhere({ kind: 'presence', change: 'entered', apikey: app.apikey, clientId: asClientId('phone'), node: 'there', connector: 'mqtt', at });
    assert.equal(older.closedWith, 'replaced');

    // Our enter not yet seen on the bus when theirs arrives: ours is the later one and stays.
    bus.connected = false;
    const newer = new FakeConnection(enc);
    await hub.enterClient(newer, { apikey: app.apikey, clientId: 'tablet' });
    bus.connected = true;
    bus.fromElsewhere({ kind: 'presence', change: 'entered', apikey: app.apikey, clientId: asClientId('tablet'), node: 'there', connector: 'ws', at: Date.now() });
    assert.equal(newer.closed, false);
  });

  it('managers here see clients of other nodes join and leave, and lose them when their node dies', async () => {
    const apikey: ApiKey = app.apikey;
    await presence.set(apikey, { clientId: asClientId('far-1'), node: 'there', connector: 'ws', connectedAt: 1 });
    const manager = new FakeConnection(new CountingEncoder());
    const users = await hub.enterManager(manager, apikey, app.secret, undefined);
    assert.deepEqual([...users], ['far-1']);
    bus.fromElsewhere({ kind: 'presence', change: 'entered', apikey, clientId: asClientId('far-2'), node: 'there', connector: 'sio', at: 2 });
    assert.deepEqual(manager.events('onAdd').at(-1), { msg: 'add ok', users: ['far-1', 'far-2'] });
    // A late leave from a node that no longer holds the client changes nothing.
    bus.fromElsewhere({ kind: 'presence', change: 'left', apikey, clientId: asClientId('far-2'), node: 'elsewhere', connector: 'sio', at: 2 });
    assert.equal(manager.events('onLeave').length, 0);
    bus.fromElsewhere({ kind: 'presence', change: 'left', apikey, clientId: asClientId('far-2'), node: 'there', connector: 'sio', at: 2 });
    assert.deepEqual(manager.events('onLeave').at(-1), { clientId: 'far-2', users: ['far-1'] });
    presence.live = ['here']; // "there" stopped heartbeating
    await waitFor(() => manager.events('onLeave').length === 2, { timeoutMs: 5000, message: 'onLeave for the dead node' });
    assert.deepEqual(manager.events('onLeave').at(-1), { clientId: 'far-1', users: [] });
  });

  it('announces enters and leaves once each: a presence entry and one bus event', async () => {
    const c = new FakeConnection(new CountingEncoder());
    await hub.enterClient(c, { apikey: app.apikey, clientId: 'solo' });
    assert.deepEqual(
      (await presence.list(app.apikey)).map((e) => [e.clientId, e.node]),
      [['solo', 'here']],
    );
    hub.leave(c);
    await waitFor(async () => (await presence.count(app.apikey)) === 0, { timeoutMs: 1000, message: 'presence removed' });
    const changes = bus.published.filter((e) => e.kind === 'presence').map((e) => (e.kind === 'presence' ? e.change : ''));
    assert.deepEqual(changes, ['entered', 'left']);
  });
});
