import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../../src/hub/hub.js';
import { LocalBus } from '../../src/bus/local-bus.js';
import { openSqliteStorage } from '../../src/store/sqlite-storage.js';
import { createLogger } from '../../src/log.js';
import { asClientId, asMessageId } from '../../src/ids.js';
import type { App, Storage, StoredMessage, Target } from '../../src/store/store.js';
import { CountingEncoder, FakeConnection, type Encoded } from './fake-connection.js';
import { waitFor } from '../fixtures/wait.js';

const all: Target = { all: true, clientIds: [], tags: [] };
const to = (...ids: string[]): Target => ({ all: false, clientIds: ids.map(asClientId), tags: [] });
const tagged = (...tags: string[]): Target => ({ all: false, clientIds: [], tags });

/** Message ids a fake connection received, in order. */
const ids = (c: FakeConnection): number[] =>
  c.written.filter((w) => w.kind === 'message').map((w) => (w.body as { id: number }).id);

describe('Hub delivery: resume, offline, acks, tags, receipts', () => {
  let storage: Storage;
  let hub: Hub;
  let app: App;
  const enc = new CountingEncoder();

  beforeEach(async () => {
    storage = openSqliteStorage(':memory:');
    hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 30, receiptFlushMs: 10_000 });
    app = await storage.apps.createApp({ name: 'a' });
  });
  afterEach(async () => {
    await hub.close();
    await storage.close();
  });

  const publish = (target: Target, data: unknown = 'x') => hub.publish({ apikey: app.apikey, target, event: 'onMsg', data });

  async function enter(clientId: string, opts: { resumeAfter?: number | 'stored' | 'latest'; tags?: string[] } = {}) {
    const conn = new FakeConnection(enc);
    const r = await hub.enterClient(conn, { apikey: app.apikey, clientId, ...opts });
    await r.replayed;
    return conn;
  }

  it('a new client starts at the newest message; a known one gets what was pushed while it was offline', async () => {
    await publish(all, 'before anyone');
    const first = await enter('phone');
    assert.deepEqual(ids(first), []);
    await publish(all);
    assert.deepEqual(ids(first), [2]);
    hub.ack(first, 2);
    first.close('gone');
    hub.leave(first);
    await publish(all);
    await publish(to('phone'));
    await publish(to('someone-else'));
    const again = await enter('phone');
    assert.deepEqual(ids(again), [3, 4], 'offline messages, in order, none of another client');
  });

  it('resume after a given id replays in order, then goes live with no gap and no duplicate', async () => {
    for (let i = 0; i < 1200; i++) await publish(all, i);
    const conn = new FakeConnection(enc);
    const entering = hub.enterClient(conn, { apikey: app.apikey, clientId: 'r', resumeAfter: 100 });
    const r = await entering;
    // Pushes arrive while the replay runs.
    const live = Array.from({ length: 50 }, (_, i) => publish(all, `live ${i}`));
    await Promise.all(live);
    await r.replayed;
    const got = ids(conn);
    assert.equal(got.length, 1150);
    assert.deepEqual(got, Array.from({ length: 1150 }, (_, i) => 101 + i));
  });

  it('"latest" skips what is stored; a position past the newest id is clamped', async () => {
    await publish(all);
    await publish(all);
    const a = await enter('a', { resumeAfter: 'latest' });
    const b = await enter('b', { resumeAfter: 999 });
    await publish(all);
    assert.deepEqual(ids(a), [3]);
    assert.deepEqual(ids(b), [3]);
  });

  it('expired messages are not replayed', async () => {
    const known = await enter('k');
    known.close('x');
    hub.leave(known);
    await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 'short', ttlSeconds: 1 });
    await publish(all, 'long');
    // Wait (with a deadline) until the store itself no longer offers the 1 s message.
    await waitFor(async () => (await storage.messages.readFor(app.apikey, { clientId: asClientId('k'), tags: [] }, asMessageId(0), 10)).length === 1, {
      timeoutMs: 5000,
      message: 'the 1 s message did not expire',
    });
    const conn = await enter('k');
    assert.deepEqual(ids(conn), [2]);
  });

  it('tags: subscribe, push to a tag, unsubscribe; stored across connections', async () => {
    const c = await enter('t', { tags: ['news'] });
    const other = await enter('o');
    await publish(tagged('news'));
    await hub.subscribeTags(c, ['sport']);
    await publish(tagged('sport', 'news'));
    await hub.unsubscribeTags(c, ['news']);
    await publish(tagged('news'));
    assert.deepEqual(ids(c), [1, 2]);
    assert.deepEqual(ids(other), []);
    hub.ack(c, 2);
    c.close('x');
    hub.leave(c);
    await publish(tagged('sport'));
    const back = await enter('t');
    assert.deepEqual(ids(back), [4], 'offline tag message, via the stored tags');
    assert.deepEqual(hub.onlineClients(app.apikey).find((x) => x.clientId === 't')?.tags, ['sport']);
  });

  it('a target of client ids and tags delivers once to a client matching both', async () => {
    const c = await enter('both', { tags: ['x'] });
    const r = await publish({ all: false, clientIds: [asClientId('both')], tags: ['x'] });
    assert.equal(r.targeted, 1);
    assert.deepEqual(ids(c), [1]);
  });

  it('receipts: targeted, delivered once per client, acked; per-client state for named pushes', async () => {
    const a = await enter('a');
    const b = await enter('b');
    const broadcast = await publish(all);
    const named = await publish(to('a', 'b', 'offline'));
    assert.equal(broadcast.targeted, 2);
    assert.equal(named.targeted, 3);
    hub.ack(a, named.message.id);
    hub.ack(b, broadcast.message.id);
    hub.ack(b, 1); // stale: ignored
    await hub.flush();
    assert.deepEqual((await storage.messages.receipt(app.apikey, broadcast.message.id))?.receipt, { targeted: 2, delivered: 2, acked: 2, skipped: 0 });
    const r = await storage.messages.receipt(app.apikey, named.message.id);
    assert.deepEqual(r?.receipt, { targeted: 3, delivered: 2, acked: 1, skipped: 0 });
    const byClient = Object.fromEntries((r?.recipients ?? []).map((x) => [x.clientId, [x.deliveredAt !== undefined, x.ackedAt !== undefined]]));
    assert.deepEqual(byClient, { a: [true, true], b: [true, false], offline: [false, false] });
    // A reconnect resends b's unacked message: delivered is not counted twice, the ack is.
    b.close('x');
    hub.leave(b);
    const b2 = await enter('b');
    assert.deepEqual(ids(b2), [named.message.id]);
    hub.ack(b2, named.message.id);
    await hub.flush();
    assert.deepEqual((await storage.messages.receipt(app.apikey, named.message.id))?.receipt, { targeted: 3, delivered: 2, acked: 2, skipped: 0 });
  });

  it('acks are clamped to what was sent and survive in the store', async () => {
    const c = await enter('c');
    await publish(all);
    hub.ack(c, 9999);
    await hub.flush();
    assert.equal((await storage.clients.get(app.apikey, asClientId('c')))?.lastAckedId, 1);
  });

  it('a takeover keeps the position of the connection it replaces', async () => {
    const first = await enter('same');
    await publish(all);
    hub.ack(first, 1);
    await publish(all);
    const second = await enter('same');
    assert.equal(first.closedWith, 'replaced');
    assert.deepEqual(ids(second), [2], 'resumes after the ack made on the first connection, not yet flushed');
  });

  it('a replaying client that floods its pending queue still gets everything in order', async () => {
    for (let i = 0; i < 600; i++) await publish(all);
    const conn = new FakeConnection(enc);
    const r = await hub.enterClient(conn, { apikey: app.apikey, clientId: 'p', resumeAfter: 0 });
    for (let i = 0; i < 6000; i++) await publish(all);
    await r.replayed;
    const got = ids(conn);
    assert.equal(got.length, 6600);
    assert.ok(got.every((id, i) => id === i + 1));
    assert.equal(asMessageId(got.length), 6600);
  });
});

describe('Hub receipts across connections', () => {
  it('an ack on a new connection counts for messages received on the dropped one', async () => {
    const storage = openSqliteStorage(':memory:');
    const hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 30, receiptFlushMs: 10_000 });
    const app = await storage.apps.createApp({ name: 'a' });
    const enc = new CountingEncoder();
    const first = new FakeConnection(enc);
    await (await hub.enterClient(first, { apikey: app.apikey, clientId: 'c' })).replayed;
    const r = await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 1 });
    first.close('dropped');
    hub.leave(first);
    // The client processed the message but its ack was lost with the connection.
    const second = new FakeConnection(enc);
    await (await hub.enterClient(second, { apikey: app.apikey, clientId: 'c', resumeAfter: r.message.id })).replayed;
    assert.deepEqual(ids(second), []);
    hub.ack(second, r.message.id);
    await hub.flush();
    assert.deepEqual((await storage.messages.receipt(app.apikey, r.message.id))?.receipt, { targeted: 1, delivered: 1, acked: 1, skipped: 0 });
    await hub.close();
    await storage.close();
  });
});

describe('Hub receipts of a backlog of any length (issue 15 item 4)', () => {
  const receiptsOf = async (storage: Storage, app: App, from: number, to: number) => {
    const out: { delivered: number; acked: number }[] = [];
    for (let id = from; id <= to; id++) {
      const r = await storage.messages.receipt(app.apikey, asMessageId(id));
      out.push({ delivered: r?.receipt.delivered ?? -1, acked: r?.receipt.acked ?? -1 });
    }
    return out;
  };

  it('one ack covering 2,500 messages of every kind counts each that targets the client, once', async () => {
    const storage = openSqliteStorage(':memory:');
    const hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 30, receiptFlushMs: 10_000 });
    const app = await storage.apps.createApp({ name: 'a' });
    const enc = new CountingEncoder();
    try {
      const first = new FakeConnection(enc);
      await (await hub.enterClient(first, { apikey: app.apikey, clientId: 'c', tags: ['t'] })).replayed;
      first.close('offline');
      hub.leave(first);
      const kinds: Target[] = [all, to('c'), tagged('t'), to('someone-else')];
      for (let i = 0; i < 2500; i++) await hub.publish({ apikey: app.apikey, target: kinds[i % 4]!, event: 'onMsg', data: i });
      const conn = new FakeConnection(enc);
      await (await hub.enterClient(conn, { apikey: app.apikey, clientId: 'c' })).replayed;
      const got = ids(conn);
      assert.equal(got.length, 1875);
      hub.ack(conn, got.at(-1)!);
      await hub.flush();
      const rs = await receiptsOf(storage, app, 1, 2500);
      rs.forEach((r, i) => assert.deepEqual(r, i % 4 === 3 ? { delivered: 0, acked: 0 } : { delivered: 1, acked: 1 }, `message ${i + 1}`));
      // Acked again on a new connection (the ack was lost, say): nothing counts twice.
      conn.close('x');
      hub.leave(conn);
      const again = new FakeConnection(enc);
      await (await hub.enterClient(again, { apikey: app.apikey, clientId: 'c', resumeAfter: 0 })).replayed;
      hub.ack(again, 2500);
      await hub.flush();
      assert.deepEqual(await receiptsOf(storage, app, 1, 2500), rs);
    } finally {
      await hub.close();
      await storage.close();
    }
  });

  it('a client that starts at the newest id does not ack what came before; two nodes acking overlapping ranges count once', async () => {
    const storage = openSqliteStorage(':memory:');
    const opts = { storage, logger: createLogger('silent'), maxBufferedBytes: 1 << 30, receiptFlushMs: 10_000 };
    const hub = new Hub({ ...opts, bus: new LocalBus() });
    const other = new Hub({ ...opts, bus: new LocalBus() });
    const app = await storage.apps.createApp({ name: 'a' });
    const enc = new CountingEncoder();
    try {
      const known = new FakeConnection(enc);
      await (await hub.enterClient(known, { apikey: app.apikey, clientId: 'c' })).replayed;
      known.close('x');
      hub.leave(known);
      await hub.flush();
      for (let i = 0; i < 3; i++) await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: i });
      const fresh = new FakeConnection(enc);
      await (await hub.enterClient(fresh, { apikey: app.apikey, clientId: 'c', resumeAfter: 'latest' })).replayed;
      const live = await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 'live' });
      hub.ack(fresh, live.message.id);
      await hub.flush();
      assert.deepEqual(
        (await receiptsOf(storage, app, 1, 4)).map((r) => r.acked),
        [0, 0, 0, 1],
      );
      // One client on two nodes at once (the takeover has not reached the first yet):
      // both ack everything, each from its own position; each message counts once.
      const app2 = await storage.apps.createApp({ name: 'b' });
      const d1 = new FakeConnection(enc);
      await (await hub.enterClient(d1, { apikey: app2.apikey, clientId: 'd' })).replayed;
      for (let i = 0; i < 3; i++) await hub.publish({ apikey: app2.apikey, target: all, event: 'onMsg', data: i });
      const d2 = new FakeConnection(enc);
      await (await other.enterClient(d2, { apikey: app2.apikey, clientId: 'd', resumeAfter: 0 })).replayed;
      assert.deepEqual([ids(d1), ids(d2)], [[1, 2, 3], [1, 2, 3]]);
      hub.ack(d1, 3);
      other.ack(d2, 3);
      await other.flush();
      await hub.flush();
      assert.deepEqual((await receiptsOf(storage, app2, 1, 3)).map((r) => r.acked), [1, 1, 1]);
    } finally {
      await hub.close();
      await other.close();
      await storage.close();
    }
  });
});

describe('Hub: a message a connection cannot take is skipped for it only (issue 15 item 1)', () => {
  /** A wire format that cannot carry one message: its encoder throws, as a codec's limit would. */
  class PickyEncoder extends CountingEncoder {
    override encodeMessage(msg: StoredMessage): Encoded {
      if (msg.data === 'poison') throw new Error('this format cannot carry it');
      return super.encodeMessage(msg);
    }
  }

  it('skipped with its reason, live and in a replay, once per client; other formats get it; later messages flow', async () => {
    const storage = openSqliteStorage(':memory:');
    const hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 30, receiptFlushMs: 10_000 });
    const app = await storage.apps.createApp({ name: 'a' });
    const picky = new PickyEncoder();
    try {
      const enter = async (enc: CountingEncoder, clientId: string, resumeAfter?: number) => {
        const conn = new FakeConnection(enc);
        await (await hub.enterClient(conn, { apikey: app.apikey, clientId, ...(resumeAfter !== undefined ? { resumeAfter } : {}) })).replayed;
        return conn;
      };
      const p = await enter(picky, 'picky');
      const plain = await enter(new CountingEncoder(), 'plain');
      const sent: number[] = [];
      for (const data of ['a', 'poison', 'b']) sent.push((await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data })).message.id);
      assert.deepEqual(ids(p), [sent[0], sent[2]]);
      assert.deepEqual(ids(plain), sent);
      hub.ack(p, sent[2]!);
      hub.ack(plain, sent[2]!);
      // A replay meets it again: passed over, not counted again, no "resume failed".
      p.close('x');
      hub.leave(p);
      const back = await enter(picky, 'picky', 0);
      assert.equal(back.closedWith, undefined);
      assert.deepEqual(ids(back), [sent[0], sent[2]]);
      await hub.flush();
      const r = await storage.messages.receipt(app.apikey, asMessageId(sent[1]!));
      assert.deepEqual(r?.receipt, { targeted: 2, delivered: 1, acked: 1, skipped: 1 });
      for (const id of [sent[0]!, sent[2]!]) {
        assert.deepEqual((await storage.messages.receipt(app.apikey, asMessageId(id)))?.receipt, { targeted: 2, delivered: 2, acked: 2, skipped: 0 });
      }
    } finally {
      await hub.close();
      await storage.close();
    }
  });

  it('a skip at the end of what was sent does not hold the position back', async () => {
    const storage = openSqliteStorage(':memory:');
    const hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 30, receiptFlushMs: 10_000 });
    const app = await storage.apps.createApp({ name: 'a' });
    const picky = new PickyEncoder();
    try {
      const conn = new FakeConnection(picky);
      await (await hub.enterClient(conn, { apikey: app.apikey, clientId: 'c' })).replayed;
      const a = await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 'a' });
      const poison = await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 'poison' });
      // The client acks the last message it got: that covers the skipped one after it.
      hub.ack(conn, a.message.id);
      await hub.flush();
      assert.equal((await storage.clients.get(app.apikey, asClientId('c')))?.lastAckedId, poison.message.id);
      // Skipped with everything before it acked: the position moves at once.
      const poison2 = await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 'poison' });
      await hub.flush();
      assert.equal((await storage.clients.get(app.apikey, asClientId('c')))?.lastAckedId, poison2.message.id);
      assert.deepEqual((await storage.messages.receipt(app.apikey, poison.message.id))?.receipt, { targeted: 1, delivered: 0, acked: 0, skipped: 1 });
      assert.deepEqual((await storage.messages.receipt(app.apikey, a.message.id))?.receipt, { targeted: 1, delivered: 1, acked: 1, skipped: 0 });
    } finally {
      await hub.close();
      await storage.close();
    }
  });
});

describe('Hub receipts: a crowd of acks waits for the positions flush', () => {
  /** `size` clients ack a broadcast; whether the acks were written by the ticks (before an explicit flush), and the final count. */
  async function crowd(size: number): Promise<{ eager: boolean; acked: number | undefined }> {
    const storage = openSqliteStorage(':memory:');
    // Once the acks are in, only the receipt ticks read the clock: counting its reads
    // tells when ticks have run.
    let reads = 0;
    const now = (): number => {
      reads++;
      return Date.now();
    };
    const hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 30, now, receiptFlushMs: 20, positionFlushMs: 600_000 });
    const app = await storage.apps.createApp({ name: 'a' });
    const enc = new CountingEncoder();
    try {
      const conns: FakeConnection[] = [];
      for (let i = 0; i < size; i++) {
        const c = new FakeConnection(enc);
        await (await hub.enterClient(c, { apikey: app.apikey, clientId: `c${i}` })).replayed;
        conns.push(c);
      }
      await hub.flush(); // the positions' flush now; the next one is 10 minutes away
      const r = await hub.publish({ apikey: app.apikey, target: all, event: 'onMsg', data: 1 });
      for (const c of conns) hub.ack(c, r.message.id);
      const from = reads;
      await waitFor(() => reads >= from + 8, { timeoutMs: 5000, message: 'a few receipt ticks' });
      const eager = (await storage.messages.receipt(app.apikey, r.message.id))?.receipt.acked === size;
      await hub.flush();
      return { eager, acked: (await storage.messages.receipt(app.apikey, r.message.id))?.receipt.acked };
    } finally {
      await hub.close();
      await storage.close();
    }
  }

  it('up to 1,000 clients that acked are counted at the next tick; more, at the positions flush, none lost', async () => {
    assert.deepEqual(await crowd(1000), { eager: true, acked: 1000 });
    assert.deepEqual(await crowd(1001), { eager: false, acked: 1001 });
  });
});

describe('Hub receipts when tags change between a delivery and its ack', () => {
  it('an ack counts what was sent under the tags of its time: a tag left since still counts, one joined later does not', async () => {
    const storage = openSqliteStorage(':memory:');
    const hub = new Hub({ storage, bus: new LocalBus(), logger: createLogger('silent'), maxBufferedBytes: 1 << 30, receiptFlushMs: 10_000 });
    const app = await storage.apps.createApp({ name: 'a' });
    try {
      const conn = new FakeConnection(new CountingEncoder());
      await (await hub.enterClient(conn, { apikey: app.apikey, clientId: 'c', tags: ['news'] })).replayed;
      const publish = (target: Target) => hub.publish({ apikey: app.apikey, target, event: 'onMsg', data: 1 });
      const news = await publish(tagged('news')); // sent: the client has the tag
      const sport = await publish(tagged('sport')); // not sent: it has not
      await hub.unsubscribeTags(conn, ['news']);
      await hub.subscribeTags(conn, ['sport']);
      const later = await publish(tagged('sport')); // sent, under the new tags
      assert.deepEqual(ids(conn), [news.message.id, later.message.id]);
      hub.ack(conn, later.message.id);
      await hub.flush();
      const acked = async (id: number) => (await storage.messages.receipt(app.apikey, asMessageId(id)))?.receipt.acked;
      assert.deepEqual([await acked(news.message.id), await acked(sport.message.id), await acked(later.message.id)], [1, 0, 1]);
    } finally {
      await hub.close();
      await storage.close();
    }
  });
});
