// Subscribing through the ntfy front door as ntfy's clients do
// (https://docs.ntfy.sh/subscribe/api/): curl on the JSON and raw streams, a Node client
// reading the SSE stream's raw lines (test/fixtures/sse-events.ts; the `eventsource`
// package itself is in ntfy-eventsource.test.ts), and `ws` on /ws as ntfy's web app does.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startTestServer, type TestServer } from '../../fixtures/test-server.js';
import { readSseEvents, type SseFields } from '../../fixtures/sse-events.js';
import { once, waitFor } from '../../fixtures/wait.js';
import { curl, CurlStream } from './ntfy-helpers.js';

type Msg = { readonly [k: string]: unknown };

/** A ws subscriber collecting ntfy's JSON frames. */
async function wsSubscribe(url: string): Promise<{ ws: WebSocket; frames: Msg[] }> {
  const ws = new WebSocket(url);
  const frames: Msg[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Msg));
  await once(ws, 'open', 5000);
  return { ws, frames };
}

async function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = once(ws, 'close', 5000);
  ws.close();
  await closed;
}

describe('ntfy subscribing (docs.ntfy.sh/subscribe/api)', () => {
  let t: TestServer;
  let base: string;
  let wsBase: string;
  const publish = async (topic: string, ...args: string[]): Promise<Msg> => {
    const r = await curl([...args, `${base}/${topic}`]);
    assert.equal(r.status, 200, r.body);
    return r.json as Msg;
  };
  const poll = async (path: string): Promise<Msg[]> => {
    const r = await curl([`${base}/${path}`]);
    assert.equal(r.status, 200, r.body);
    return r.body
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Msg);
  };

  before(async () => {
    t = await startTestServer({ ntfyKeepaliveSeconds: 1 });
    base = `http://127.0.0.1:${t.server.ntfyPort}`;
    wsBase = `ws://127.0.0.1:${t.server.ntfyPort}`;
  });
  after(() => t.close());

  it('curl -s <server>/disk-alerts/json: an open event, then every message in order, live; keepalive events', async () => {
    const sub = new CurlStream([`${base}/disk-alerts/json`]);
    try {
      await sub.waitFor((s) => s.events.length >= 1, 'open');
      const open = sub.events[0]!;
      assert.equal(open.event, 'open');
      assert.equal(open['topic'], 'disk-alerts');
      assert.match(open['id'] as string, /^[A-Za-z0-9]{12}$/);
      assert.equal(open['expires'], undefined, 'open events have no expiry');
      const sent: Msg[] = [];
      for (let i = 0; i < 30; i++) sent.push(await publish('disk-alerts', '-d', `Disk full ${i}`));
      await sub.waitFor((s) => s.messages().length === 30, '30 messages');
      assert.deepEqual(
        sub.messages().map((m) => [m.id, m.message]),
        sent.map((m) => [m['id'], m['message']]),
        'in publish order, the ids the publisher was answered with',
      );
      // ntfy's keepalive-interval (1 s here): {"event":"keepalive","topic":…}.
      await sub.waitFor((s) => s.events.some((e) => e.event === 'keepalive'), 'a keepalive event', 5000);
      assert.equal(sub.events.find((e) => e.event === 'keepalive')!['topic'], 'disk-alerts');
    } finally {
      sub.stop();
    }
  });

  it('several topics at once (a,b): each message under its own topic; /raw prints one line per message', async () => {
    const sub = new CurlStream([`${base}/topic-a,topic-b/json`]);
    const raw = new CurlStream([`${base}/topic-a/raw`]);
    try {
      await sub.waitFor((s) => s.events.length >= 1, 'open');
      assert.equal(sub.events[0]!['topic'], 'topic-a,topic-b', 'open names the topics as given');
      await raw.waitFor((s) => s.lines.length >= 1, 'raw open line');
      await publish('topic-a', '-d', 'to a\nsecond line');
      await publish('topic-b', '-d', 'to b');
      await publish('topic-c', '-d', 'to c');
      await sub.waitFor((s) => s.messages().length === 2, 'a and b');
      assert.deepEqual(sub.messages().map((m) => [m.topic, m.message]), [['topic-a', 'to a\nsecond line'], ['topic-b', 'to b']]);
      // server.go handleSubscribeRaw: newlines become spaces; open/keepalive are empty lines.
      await raw.waitFor((s) => s.lines.includes('to a second line'), 'the raw line');
      assert.equal(raw.lines[0], '');
    } finally {
      sub.stop();
      raw.stop();
    }
  });

  it('SSE as EventSource reads it: `event: open`, messages as `data:` (onmessage), and Last-Event-ID resumes after a reconnect', async () => {
    const events: SseFields[] = [];
    let ctrl = new AbortController();
    let res = await fetch(`${base}/sse-topic/sse`, { signal: ctrl.signal });
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    let reading = readSseEvents(res.body!.getReader(), (f) => events.push(f));
    await waitFor(() => events.length >= 1, { timeoutMs: 5000, message: 'open' });
    assert.equal(events[0]!['event'], 'open');
    const first = await publish('sse-topic', '-d', 'one');
    await waitFor(() => events.some((e) => e['data']?.includes('"one"') === true), { timeoutMs: 5000, message: 'one' });
    const msgEvent = events.find((e) => e['data']?.includes('"one"') === true)!;
    assert.equal(msgEvent['event'], undefined, 'no event field: EventSource fires onmessage');
    assert.equal(msgEvent['id'], first['id']);
    ctrl.abort();
    await reading;
    // Offline: two more. The reconnect presents the last id it saw, as EventSource does.
    await publish('sse-topic', '-d', 'two');
    await publish('sse-topic', '-d', 'three');
    const resumed: SseFields[] = [];
    ctrl = new AbortController();
    res = await fetch(`${base}/sse-topic/sse`, { signal: ctrl.signal, headers: { 'last-event-id': msgEvent['id']! } });
    reading = readSseEvents(res.body!.getReader(), (f) => resumed.push(f));
    await waitFor(() => resumed.filter((e) => e['event'] === undefined).length === 2, { timeoutMs: 5000, message: 'two and three' });
    assert.deepEqual(
      resumed.filter((e) => e['event'] === undefined).map((e) => (JSON.parse(e['data']!) as Msg)['message']),
      ['two', 'three'],
    );
    ctrl.abort();
    await reading;
  });

  it('WebSocket /ws as ntfy\'s web app: open, message frames; since=<last id> after a reconnect resumes with no gap and no repeat', async () => {
    let { ws, frames } = await wsSubscribe(`${wsBase}/ws-topic/ws`);
    await waitFor(() => frames.length >= 1, { timeoutMs: 5000, message: 'open' });
    assert.equal(frames[0]!['event'], 'open');
    for (let i = 0; i < 5; i++) await publish('ws-topic', '-d', `m${i}`);
    await waitFor(() => frames.filter((f) => f['event'] === 'message').length === 5, { timeoutMs: 5000, message: '5 frames' });
    const seen = frames.filter((f) => f['event'] === 'message');
    const lastId = seen.at(-1)!['id'] as string;
    await closeWs(ws);
    for (let i = 5; i < 8; i++) await publish('ws-topic', '-d', `m${i}`);
    ({ ws, frames } = await wsSubscribe(`${wsBase}/ws-topic/ws?since=${lastId}`));
    await waitFor(() => frames.filter((f) => f['event'] === 'message').length === 3, { timeoutMs: 5000, message: 'the 3 missed' });
    await publish('ws-topic', '-d', 'm8');
    await waitFor(() => frames.filter((f) => f['event'] === 'message').length === 4, { timeoutMs: 5000, message: 'then live' });
    assert.deepEqual(frames.filter((f) => f['event'] === 'message').map((f) => f['message']), ['m5', 'm6', 'm7', 'm8']);
    await closeWs(ws);
    // /ws without an upgrade: ntfy's 40016.
    const r = await curl([`${base}/ws-topic/ws`]);
    assert.equal((r.json as Msg)['code'], 40016);
  });

  it('since=all, <id>, <unix time>, <duration>, latest, none; poll=1 returns the cache and ends (no open event)', async () => {
    const m1 = await publish('since-topic', '-d', 'old');
    const m2 = await publish('since-topic', '-d', 'middle');
    const m3 = await publish('since-topic', '-d', 'new');
    const text = (ms: Msg[]): unknown[] => ms.map((m) => m['message']);
    assert.deepEqual(text(await poll('since-topic/json?poll=1')), ['old', 'middle', 'new'], 'poll without since: all');
    assert.deepEqual(text(await poll('since-topic/json?poll=1&since=all')), ['old', 'middle', 'new']);
    assert.deepEqual(text(await poll(`since-topic/json?poll=1&since=${m1['id'] as string}`)), ['middle', 'new']);
    assert.deepEqual(text(await poll(`since-topic/json?poll=1&since=${m3['id'] as string}`)), []);
    // ntfy: an id it does not know means everything (message_cache.go messagesSinceID).
    assert.deepEqual(text(await poll('since-topic/json?poll=1&since=AAAAAAAAAAAA')), ['old', 'middle', 'new']);
    assert.deepEqual(text(await poll(`since-topic/json?poll=1&since=${(m2['time'] as number) + 3600}`)), []);
    assert.deepEqual(text(await poll(`since-topic/json?poll=1&since=${(m2['time'] as number) - 60}`)), ['old', 'middle', 'new']);
    assert.deepEqual(text(await poll('since-topic/json?poll=1&since=10m')), ['old', 'middle', 'new']);
    assert.deepEqual(text(await poll('since-topic/json?poll=1&since=latest')), ['new']);
    assert.deepEqual(text(await poll('since-topic/json?poll=1&since=none')), []);
    // Headers work as well as the query (X-Since, X-Poll).
    const viaHeaders = await curl(['-H', 'X-Poll: 1', '-H', `X-Since: ${m2['id'] as string}`, `${base}/since-topic/json`]);
    assert.deepEqual(viaHeaders.body.trim().split('\n').map((l) => (JSON.parse(l) as Msg)['message']), ['new']);
    assert.equal(((await curl([`${base}/since-topic/json?poll=1&since=yesterday`])).json as Msg)['code'], 40008);
    // A streaming since=latest over two topics: each topic's newest cached message, then every live one.
    await publish('since-other', '-d', 'other old');
    await publish('since-other', '-d', 'other newest');
    const latest = new CurlStream([`${base}/since-topic,since-other/json?since=latest`]);
    try {
      await latest.waitFor((s) => s.messages().length === 2, 'the two newest');
      await publish('since-other', '-d', 'live 1');
      await publish('since-other', '-d', 'live 2');
      await latest.waitFor((s) => s.messages().length === 4, 'both live ones');
      assert.deepEqual(latest.messages().map((m) => m.message), ['new', 'other newest', 'live 1', 'live 2']);
    } finally {
      latest.stop();
    }
    // A streaming subscription with since=<id>: the cached rest first, then live.
    const sub = new CurlStream([`${base}/since-topic/json?since=${m2['id'] as string}`]);
    try {
      await sub.waitFor((s) => s.messages().length === 1, 'new');
      await publish('since-topic', '-d', 'live');
      await sub.waitFor((s) => s.messages().length === 2, 'live');
      assert.deepEqual(sub.messages().map((m) => m.message), ['new', 'live']);
      assert.equal(sub.events[0]!.event, 'open');
    } finally {
      sub.stop();
    }
  });

  it('filters (id, message, title, priority, tags) apply to messages only', async () => {
    const a = await publish('filters', '-H', 'Title: Alert', '-H', 'Priority: high', '-H', 'Tags: error,db', '-d', 'db down');
    await publish('filters', '-H', 'Priority: urgent', '-H', 'Tags: error', '-d', 'disk full');
    await publish('filters', '-d', 'all good');
    const text = async (q: string): Promise<unknown[]> => (await poll(`filters/json?poll=1&${q}`)).map((m) => m['message']);
    assert.deepEqual(await text('priority=high,urgent'), ['db down', 'disk full']);
    assert.deepEqual(await text('priority=3'), ['all good'], 'no priority counts as the default, 3');
    assert.deepEqual(await text('tags=error,db'), ['db down']);
    assert.deepEqual(await text('title=Alert'), ['db down']);
    assert.deepEqual(await text('message=all%20good'), ['all good']);
    assert.deepEqual(await text(`id=${a['id'] as string}`), ['db down']);
    assert.equal(((await curl([`${base}/filters/json?poll=1&priority=9`])).json as Msg)['code'], 40007);
  });

  it('scheduled=1 lists messages not yet due (docs "Scheduled delivery"), with the time they are due', async () => {
    const r = await curl(['-H', 'In: 30min', '-d', "It's 30 minutes later now", `${base}/reminder`]);
    const m = r.json as Msg;
    assert.equal(r.status, 200, r.body);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs((m['time'] as number) - (now + 1800)) <= 2, 'time is the delivery time');
    assert.deepEqual(await poll('reminder/json?poll=1'), [], 'not delivered yet');
    const pending = await poll('reminder/json?poll=1&scheduled=1');
    assert.deepEqual(pending.map((p) => [p['id'], p['message'], p['time']]), [[m['id'], "It's 30 minutes later now", m['time']]]);
    const unix = await curl(['-H', `Delay: ${now + 3600}`, '-d', 'Unix timestamps are awesome', `${base}/itsaunixsystem`]);
    assert.equal((unix.json as Msg)['time'], now + 3600);
  });

  it('a native push to tag T reaches ntfy subscribers of T: a string as the message, {message,title,…} as fields, other data as JSON text; a broadcast too', async () => {
    const apikey = t.server.ntfyApp.apikey;
    const push = async (body: unknown): Promise<void> => {
      const res = await fetch(`${t.httpUrl}/api/v1/apps/${apikey}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.server.ntfyApp.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 202, await res.text());
    };
    const sub = new CurlStream([`${base}/native/json`]);
    try {
      await sub.waitFor((s) => s.events.length >= 1, 'open');
      await push({ to: { tags: ['native'] }, data: 'plain text' });
      await push({ to: { tags: ['native'] }, event: 'alert', data: { message: 'with fields', title: 'T', priority: 5, tags: ['x'], click: 'https://c' } });
      await push({ to: { tags: ['native'] }, data: { temperature: 21 } });
      await push({ to: { tags: ['elsewhere'] }, data: 'not for native' });
      await push({ data: 'to every client of the app' });
      await sub.waitFor((s) => s.messages().length === 4, '4 messages');
      const got = sub.messages();
      assert.deepEqual(got.map((m) => m.message), ['plain text', 'with fields', '{"temperature":21}', 'to every client of the app']);
      assert.deepEqual([got[1]!['title'], got[1]!['priority'], got[1]!['tags'], got[1]!['click']], ['T', 5, ['x'], 'https://c']);
      assert.ok(got.every((m) => m.topic === 'native'));
    } finally {
      sub.stop();
    }
  });

  it('subscribers are Shaddock clients: in the live list with connector ntfy and their topics as tags, counted in receipts', async () => {
    const apikey = t.server.ntfyApp.apikey;
    const auth = { authorization: `Bearer ${t.server.ntfyApp.secret}` };
    const subs = [new CurlStream([`${base}/receipts/json`]), new CurlStream([`${base}/receipts,other/json`])];
    try {
      for (const s of subs) await s.waitFor((x) => x.events.length >= 1, 'open');
      const list = (await (await fetch(`${t.httpUrl}/api/v1/apps/${apikey}/clients`, { headers: auth })).json()) as { clients: { connector: string; tags: string[] }[] };
      const ntfyClients = list.clients.filter((c) => c.connector === 'ntfy' && c.tags.includes('receipts'));
      assert.equal(ntfyClients.length, 2);
      const m = await publish('receipts', '-d', 'count me');
      for (const s of subs) await s.waitFor((x) => x.messages().length === 1, 'delivered');
      const history = (await (await fetch(`${t.httpUrl}/api/v1/apps/${apikey}/messages?limit=1`, { headers: auth })).json()) as {
        messages: { id: number; receipt: { targeted: number; delivered: number; acked: number } }[];
      };
      assert.equal(t.server.ntfy!.ntfyId(history.messages[0]!.id), m['id']);
      assert.equal(history.messages[0]!.receipt.targeted, 2);
      await waitFor(
        async () => {
          const r = (await (await fetch(`${t.httpUrl}/api/v1/apps/${apikey}/messages/${history.messages[0]!.id}`, { headers: auth })).json()) as { receipt: { delivered: number; acked: number } };
          return r.receipt.delivered === 2 && r.receipt.acked === 2;
        },
        { timeoutMs: 5000, message: 'delivered 2, acked 2 in the receipt' },
      );
    } finally {
      for (const s of subs) s.stop();
    }
    await waitFor(async () => !(await t.server.hub.listClients(apikey)).some((c) => c.connector === 'ntfy' && c.tags.includes('receipts')), {
      timeoutMs: 5000,
      message: 'subscribers gone from the live list',
    });
  });

  it('UnifiedPush: GET ?up=1 discovery; POST ?up=1 binary bodies as base64 with encoding; Matrix gateway; /v1 endpoints the apps call', async () => {
    assert.deepEqual((await curl([`${base}/upAbCdEf123?up=1`])).json, { unifiedpush: { version: 1 } });
    const sub = new CurlStream([`${base}/upAbCdEf123/json`]);
    try {
      await sub.waitFor((s) => s.events.length >= 1, 'open');
      const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f]);
      const res = await fetch(`${base}/upAbCdEf123?up=1`, { method: 'POST', body: bytes });
      const m = (await res.json()) as Msg;
      assert.deepEqual([m['message'], m['encoding']], [bytes.toString('base64'), 'base64']);
      // UTF-8 bodies stay as they are, untrimmed.
      await fetch(`${base}/upAbCdEf123?up=1`, { method: 'POST', body: ' {"a":1} ' });
      // Matrix: the push key is the topic's URL; the notification JSON is the message.
      const matrix = { notification: { devices: [{ pushkey: `${base}/upAbCdEf123?up=1` }], counts: { unread: 1 } } };
      const mr = await fetch(`${base}/_matrix/push/v1/notify`, { method: 'POST', body: JSON.stringify(matrix) });
      assert.deepEqual(await mr.json(), { rejected: [] });
      const foreign = await fetch(`${base}/_matrix/push/v1/notify`, { method: 'POST', body: JSON.stringify({ notification: { devices: [{ pushkey: 'https://elsewhere.example/x' }] } }) });
      assert.deepEqual(await foreign.json(), { rejected: ['https://elsewhere.example/x'] });
      assert.equal(((await curl(['-d', '{}', `${base}/_matrix/push/v1/notify`])).json as Msg)['code'], 40019);
      await sub.waitFor((s) => s.messages().length === 3, 'three UnifiedPush messages');
      assert.equal(sub.messages()[1]!.message, ' {"a":1} ');
      assert.equal(sub.messages()[1]!['encoding'], undefined);
      assert.deepEqual(JSON.parse(sub.messages()[2]!.message), matrix);
    } finally {
      sub.stop();
    }
    assert.deepEqual((await curl([`${base}/_matrix/push/v1/notify`])).json, { unifiedpush: { gateway: 'matrix' } });
    assert.deepEqual((await curl([`${base}/v1/health`])).json, { healthy: true });
    const account = (await curl([`${base}/v1/account`])).json as Msg;
    assert.deepEqual([account['username'], account['role']], ['*', 'anonymous']);
    assert.equal(typeof ((await curl([`${base}/v1/stats`])).json as Msg)['messages'], 'number');
    assert.equal(((await curl([`${base}/v1/config`])).json as Msg)['enable_login'], false);
    assert.deepEqual((await curl([`${base}/sometopic/auth`])).json, { success: true });
    assert.deepEqual((await curl([`${base}/nope/nope/nope`])).json, { code: 40401, http: 404, error: 'page not found' });
  });
});
