import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { CONNECTORS, connectAny, type AnyClient } from '../fixtures/any-client.js';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { waitFor, once } from '../fixtures/wait.js';
import { Metrics } from '../../src/api/metrics.js';
import { CLOSE_REASONS, type Connection } from '../../src/hub/connection.js';
import { asApiKey, asClientId } from '../../src/ids.js';
import { PackageReader, PackageType, encodePackage } from '../../src/protocol/pomelo/package.js';
import { decodeMessage, encodeRequest } from '../../src/protocol/pomelo/message.js';

/** One scrape: every sample by `name{label="value",…}` with labels sorted by name. */
type Samples = ReadonlyMap<string, number>;

/** Parses the Prometheus text format (exposition format 0.0.4): comments, samples, escaped label values. */
function parseText(text: string): Samples {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: [string, string][] = [];
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/y;
    let consumed = 0;
    for (let l = re.exec(body); l !== null; l = re.exec(body)) {
      labels.push([l[1]!, l[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c))]);
      consumed = re.lastIndex;
    }
    assert.equal(consumed, body.length, `unparsed labels in: ${line}`);
    labels.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    out.set(key(m[1]!, Object.fromEntries(labels)), Number(m[3]));
  }
  return out;
}

function key(name: string, labels: Readonly<Record<string, string>> = {}): string {
  const parts = Object.entries(labels)
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([k, v]) => `${k}="${v}"`);
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`;
}

function value(s: Samples, name: string, labels: Readonly<Record<string, string>> = {}): number {
  return s.get(key(name, labels)) ?? 0;
}

async function scrape(t: TestServer, headers: Record<string, string> = {}): Promise<Samples> {
  const res = await fetch(`${t.httpUrl}/metrics`, { headers });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseText(await res.text());
}

describe('/metrics with real clients on every connector', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  test('connections, handshakes, messages, fan-out, bytes, store and bus move by what happened', async () => {
    const app = t.app.apikey;
    const s0 = await scrape(t);
    // Every connector's series exist before any traffic, so alerts see zeros, not gaps.
    for (const connector of CONNECTORS) {
      assert.ok(s0.has(key('shaddock_connections_open', { connector })), `connections_open for ${connector}`);
      assert.ok(s0.has(key('shaddock_slow_consumer_closes_total', { connector })));
    }
    assert.ok(s0.has('shaddock_nodejs_eventloop_lag_seconds'), 'default metrics carry the prefix');
    assert.ok(s0.has('shaddock_process_cpu_user_seconds_total'));

    const clients: AnyClient[] = [];
    for (const kind of CONNECTORS) clients.push(await connectAny(t, kind, `m-${kind}`));
    const s1 = await scrape(t);
    for (const connector of CONNECTORS) {
      assert.equal(value(s1, 'shaddock_connections', { app, connector, role: 'client' }), 1, `${connector} client gauge`);
      assert.equal(
        value(s1, 'shaddock_handshakes_total', { connector, outcome: 'entered' }) - value(s0, 'shaddock_handshakes_total', { connector, outcome: 'entered' }),
        1,
        `${connector} handshake entered`,
      );
      assert.ok(value(s1, 'shaddock_connections_open', { connector }) >= 1, `${connector} open`);
    }

    const res = await fetch(`${t.httpUrl}/api/v1/apps/${app}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ data: { n: 1 } }),
    });
    assert.equal(res.status, 202);
    const { id } = (await res.json()) as { id: number };
    await waitFor(() => clients.every((c) => c.received.some((r) => r.id === id)), { timeoutMs: 10_000, message: 'every client got the push' });
    // Acks travel back on each protocol that has a way back (SSE has none: the server
    // acks for it, see docs/connectors.md); wait until the clients' five are counted.
    let s2 = await scrape(t);
    const acked = (): number => value(s2, 'shaddock_messages_acked_total', { app }) - value(s1, 'shaddock_messages_acked_total', { app });
    await waitFor(
      async () => {
        s2 = await scrape(t);
        return acked() >= CONNECTORS.length - 1;
      },
      { timeoutMs: 10_000, intervalMs: 50, message: 'the acks of the clients counted' },
    );
    assert.ok(acked() <= CONNECTORS.length, 'one ack per client at most');
    const delta = (name: string, labels: Readonly<Record<string, string>> = {}): number => value(s2, name, labels) - value(s1, name, labels);
    assert.equal(delta('shaddock_messages_accepted_total', { app }), 1);
    assert.equal(delta('shaddock_messages_delivered_total', { app }), CONNECTORS.length);
    assert.equal(delta('shaddock_fanout_seconds_count'), 1, 'one fan-out per message per node');
    assert.ok(delta('shaddock_fanout_seconds_sum') >= 0);
    assert.equal(delta('shaddock_bus_round_trip_seconds_count'), 1);
    assert.ok(delta('shaddock_store_seconds_count', { operation: 'messages.append' }) >= 1);
    for (const connector of CONNECTORS) assert.ok(delta('shaddock_bytes_out_total', { connector }) > 0, `bytes out on ${connector}`);

    for (const c of clients) await c.close();
    await waitFor(
      async () => {
        const s = await scrape(t);
        return CONNECTORS.every((connector) => value(s, 'shaddock_connections', { app, connector, role: 'client' }) === 0 && value(s, 'shaddock_connections_open', { connector }) === 0);
      },
      { timeoutMs: 10_000, intervalMs: 50, message: 'gauges back to zero after the clients left' },
    );
  });

  test('refusals are counted by connector and stable code', async () => {
    const s0 = await scrape(t);
    // A plain WebSocket client names an app that does not exist.
    const ws = new WebSocket(`ws://127.0.0.1:${t.server.httpPort}/ws`);
    await once(ws, 'open', 5000);
    const answered = once(ws, 'message', 5000);
    ws.send(JSON.stringify({ type: 'enter', apikey: 'no-such-app', clientId: 'x' }));
    const [frame] = await answered;
    assert.equal((JSON.parse(String(frame)) as { code: string }).code, 'APP_UNKNOWN');
    const closed = once(ws, 'close', 5000);
    ws.close();
    await closed;
    // A Pomelo manager with a wrong secret.
    const pomelo = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'tcp' });
    const reply = (await pomelo.request('connector.entryHandler.enter', { apiKey: t.app.apikey, role: 'server', password: 'wrong-secret' })) as { code: number };
    assert.equal(reply.code, 500);
    await pomelo.close();

    await waitFor(
      async () => {
        const s = await scrape(t);
        return (
          value(s, 'shaddock_refusals_total', { connector: 'ws', code: 'APP_UNKNOWN' }) - value(s0, 'shaddock_refusals_total', { connector: 'ws', code: 'APP_UNKNOWN' }) === 1 &&
          value(s, 'shaddock_refusals_total', { connector: 'hybrid-tcp', code: 'AUTH_FAILED' }) - value(s0, 'shaddock_refusals_total', { connector: 'hybrid-tcp', code: 'AUTH_FAILED' }) === 1 &&
          value(s, 'shaddock_handshakes_total', { connector: 'ws', outcome: 'refused' }) - value(s0, 'shaddock_handshakes_total', { connector: 'ws', outcome: 'refused' }) === 1 &&
          value(s, 'shaddock_handshakes_total', { connector: 'hybrid-tcp', outcome: 'refused' }) - value(s0, 'shaddock_handshakes_total', { connector: 'hybrid-tcp', outcome: 'refused' }) === 1
        );
      },
      { timeoutMs: 10_000, intervalMs: 50, message: 'refusals and refused handshakes counted' },
    );
  });
});

/** A raw-TCP Pomelo client: handshake, then (optionally) enter; it can stop reading. */
function rawHybrid(port: number, enter: { apikey: string; clientId: string } | undefined): { socket: Socket; entered: Promise<void>; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  const reader = new PackageReader({ maxPackage: 1 << 24 });
  let entered: () => void = () => undefined;
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    for (const pkg of reader.push(chunk)) {
      if (pkg.type === PackageType.HANDSHAKE && enter !== undefined) {
        socket.write(encodePackage(PackageType.HANDSHAKE_ACK));
        const body = Buffer.from(JSON.stringify({ ...enter, role: 'client' }));
        socket.write(encodePackage(PackageType.DATA, encodeRequest(1, 'connector.entryHandler.enter', body)));
      } else if (pkg.type === PackageType.DATA && decodeMessage(pkg.body).type === 2) entered();
    }
  });
  socket.write(encodePackage(PackageType.HANDSHAKE, Buffer.from('{"sys":{"type":"raw","version":"1"}}')));
  return {
    socket,
    entered: new Promise<void>((r) => (entered = r)),
    closed: new Promise<void>((r) => socket.once('close', () => r())),
  };
}

describe('/metrics: slow consumers and handshake timeouts', () => {
  test('a client that stops reading is counted as a slow-consumer close; one that never enters as a timeout', async () => {
    const t = await startTestServer({ maxBufferedBytes: 64 * 1024, handshakeTimeoutSeconds: 1, heartbeatSeconds: 600 });
    try {
      const s0 = await scrape(t);
      const slow = rawHybrid(t.server.hybridPort, { apikey: t.app.apikey, clientId: 'slow-1' });
      await slow.entered;
      slow.socket.pause();
      // Handshakes, then silence: no enter within handshakeTimeoutSeconds.
      const silent = rawHybrid(t.server.hybridPort, undefined);
      const big = 'x'.repeat(64 * 1024);
      let gone = false;
      void slow.closed.then(() => (gone = true));
      await waitFor(
        async () => {
          if (!gone) await t.server.hub.publish({ apikey: t.app.apikey, target: { all: false, clientIds: [asClientId('slow-1')], tags: [] }, event: 'onMsg', data: big });
          return gone;
        },
        { timeoutMs: 15_000, message: 'the stalled client closed as a slow consumer' },
      );
      await silent.closed;
      slow.socket.destroy();
      await waitFor(
        async () => {
          const s = await scrape(t);
          const d = (name: string, labels: Readonly<Record<string, string>>): number => value(s, name, labels) - value(s0, name, labels);
          return (
            d('shaddock_slow_consumer_closes_total', { connector: 'hybrid-tcp' }) === 1 &&
            d('shaddock_handshakes_total', { connector: 'hybrid-tcp', outcome: 'timeout' }) === 1 &&
            value(s, 'shaddock_connections_open', { connector: 'hybrid-tcp' }) === 0
          );
        },
        { timeoutMs: 10_000, intervalMs: 50, message: 'slow-consumer close and handshake timeout counted' },
      );
    } finally {
      await t.close();
    }
  });
});

describe('/metrics access', () => {
  test('with metricsToken set, only the bearer of that token may scrape', async () => {
    const token = 'metrics-token-0123456789';
    const t = await startTestServer({ metricsToken: token });
    try {
      const none = await fetch(`${t.httpUrl}/metrics`);
      assert.equal(none.status, 401);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal(((await none.json()) as { code: string }).code, 'UNAUTHORIZED');
      const wrong = await fetch(`${t.httpUrl}/metrics`, { headers: { authorization: 'Bearer metrics-token-0123456780' } });
      assert.equal(wrong.status, 401);
      await wrong.body?.cancel();
      const s = await scrape(t, { authorization: `Bearer ${token}` });
      assert.ok(s.has('shaddock_nodejs_eventloop_lag_seconds'));
    } finally {
      await t.close();
    }
  });

  test('a metricsToken shorter than 16 characters is a configuration error', async () => {
    await assert.rejects(startTestServer({ metricsToken: 'short' }), { code: 'CONFIG_INVALID' });
  });
});

describe('Metrics (the sink)', () => {
  const conn = (connector: Connection['connector']): Connection =>
    ({ id: 1, connector, encoder: undefined, remoteAddress: '127.0.0.1', connectedAt: Date.now(), bufferedBytes: 0, closed: false, write() {}, close() {} }) as unknown as Connection;

  test('a connection that never entered ends as timeout, refused or abandoned', async () => {
    const m = new Metrics();
    const timedOut = conn('mqtt');
    m.opened(timedOut);
    m.closed(timedOut, CLOSE_REASONS.handshakeTimeout, undefined);
    const refused = conn('mqtt');
    m.opened(refused);
    m.refused({ connector: 'mqtt', code: 'AUTH_FAILED', message: 'no', conn: refused });
    m.closed(refused, 'AUTH_FAILED: no', undefined);
    const gone = conn('mqtt');
    m.opened(gone);
    m.closed(gone, 'peer closed', undefined);
    const entered = conn('mqtt');
    m.opened(entered);
    const as = { role: 'client' as const, apikey: asApiKey('k') };
    m.entered(entered, as);
    m.left(entered, as);
    m.closed(entered, 'peer closed', as);
    const s = parseText((await m.render()).body);
    for (const outcome of ['timeout', 'refused', 'abandoned', 'entered']) {
      assert.equal(value(s, 'shaddock_handshakes_total', { connector: 'mqtt', outcome }), 1, outcome);
    }
    assert.equal(value(s, 'shaddock_connections_open', { connector: 'mqtt' }), 0);
    assert.equal(value(s, 'shaddock_connections', { app: 'k', connector: 'mqtt', role: 'client' }), 0);
  });

  test('slow consumers, expiry, store failures; codes that are not codes become OTHER', async () => {
    const m = new Metrics();
    m.slowConsumer('ws');
    m.expired(7);
    m.storeCall('messages.append', 0.002, false);
    m.refused({ connector: 'sse', code: 'not a code {"x"}', message: 'free text' });
    m.wrote('hybrid-tcp', 100);
    m.wrote('hybrid-tcp', 23);
    const first = parseText((await m.render()).body);
    assert.equal(value(first, 'shaddock_slow_consumer_closes_total', { connector: 'ws' }), 1);
    assert.equal(value(first, 'shaddock_messages_expired_total'), 7);
    assert.equal(value(first, 'shaddock_store_errors_total', { operation: 'messages.append' }), 1);
    assert.equal(value(first, 'shaddock_store_seconds_count', { operation: 'messages.append' }), 1);
    assert.equal(value(first, 'shaddock_refusals_total', { connector: 'sse', code: 'OTHER' }), 1);
    assert.equal(value(first, 'shaddock_bytes_out_total', { connector: 'hybrid-tcp' }), 123);
    // Bytes are handed over once: a second scrape does not count them again.
    m.wrote('hybrid-tcp', 1);
    const second = parseText((await m.render()).body);
    assert.equal(value(second, 'shaddock_bytes_out_total', { connector: 'hybrid-tcp' }), 124);
  });
});

describe('the Grafana dashboard and docs/operations.md', () => {
  /** Metric families a scrape declares (`# TYPE name type`), plus the series names of histograms. */
  async function families(): Promise<Set<string>> {
    const m = new Metrics();
    const out = new Set<string>();
    for (const line of (await m.render()).body.split('\n')) {
      const t = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (!t) continue;
      out.add(t[1]!);
      if (t[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(t[1]! + s);
    }
    return out;
  }

  test('the dashboard is valid JSON whose every query names metrics the server exports', async () => {
    const dash = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
      panels: { id: number; type: string; targets?: { expr: string }[] }[];
      templating: { list: { query: { query: string } }[] };
    };
    const known = await families();
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    exprs.push(...dash.templating.list.map((v) => v.query.query));
    assert.ok(exprs.length >= 20);
    const ids = dash.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const expr of exprs) {
      const names = expr.match(/shaddock_[a-z0-9_]+/g) ?? [];
      assert.ok(names.length > 0, `no metric in ${expr}`);
      for (const name of names) assert.ok(known.has(name), `${name} (in ${expr}) is not exported`);
    }
  });

  test('every metric docs/operations.md names is exported', async () => {
    const known = await families();
    const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const names = new Set(doc.match(/shaddock_[a-z0-9_]+/g) ?? []);
    assert.ok(names.size >= 15);
    for (const name of names) assert.ok(known.has(name), `${name} is in the docs but not exported`);
  });
});
